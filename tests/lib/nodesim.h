/* nodesim.h - deterministic in-process cluster of whole kv_nodes: one seed drives every choice. */
#ifndef TESTS_LIB_NODESIM_H
#define TESTS_LIB_NODESIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/cmd.h"
#include "kv/node.h"

/*
 * A fixture of 1 to NODESIM_MAX_NODES kv_nodes (ids 1..n) in one process, each over its own
 * in-memory file system (raft_vfs_mem, data directory "/n<id>"), joined by a simulated network:
 * a queue of events ordered by simulated time (milliseconds) and, at equal times, by the order
 * they were scheduled. Every node is ticked every NODESIM_TICK_MS (at its own phase); messages
 * take delay_min_ms .. delay_min_ms + delay_jitter_ms, may be dropped or (Raft messages only)
 * duplicated, and never cross a blocked link (checked when sent and when delivered). Raft
 * messages are deep-copied (entries referenced, snapshot chunks filled from the sender's
 * snapshot through kv_node_fill_snapshot); application frames are copied bytes.
 *
 * The fixture runs one event at a time and checks after each one:
 *   - election safety: at most one leader per term;
 *   - state-machine safety: every node that has applied up to index i has the same
 *     kv_store_hash at i (checked whenever a node's applied index moves);
 *   - no node stopped (kv_node_failed) unless a disk fault was armed on it or may_stop_mask
 *     allows it; such a node is crashed at once (it must exit), and its reason is kept
 *     (nodesim_stop_reason()).
 * The first violation is kept (nodesim_error()) and stops the run functions.
 *
 * Application frames (forwarded requests and their answers) can be lost after they were queued
 * (a blocked link, drop_pm, app_drop_pm, an application-frame filter) or refused when sent (a link
 * that is down, app_refuse_pm: env.send_app returns false, as the transport does for a peer that
 * is not connected or a full queue). Nothing is ever delivered twice.
 *
 * Clocks: env.now_ms is the fixture's clock; env.realtime_ms (the wall clock) is
 * NODESIM_EPOCH_MS + the fixture's clock + the node's skew (drawn from the seed within
 * clock_skew_ms) + a jump made by nodesim_clock_jump, which lasts until the node restarts (as if
 * the clock were set right at boot, before the node starts).
 *
 * Snapshots are taken in the background (env.snapshot_start) unless sync_snapshots: the job runs at
 * once, through the node's vfs (the state it sees is the state at that instant, as in the daemon's
 * forked child), and kv_node_snapshot_done reaches the node 1..NODESIM_SNAPSHOT_MAX_MS later, so
 * that the log grows, InstallSnapshot arrives and crashes happen while a snapshot is in flight.
 * A crash drops the job with the node (its pending end is ignored).
 *
 * A crash is kv_node_close (pending requests end with SHUTDOWN or UNKNOWN) followed by
 * raft_vfs_mem_crash(vfs, torn_bytes): everything not synced is lost. A restart is kv_node_open
 * on the same vfs.
 *
 * Environment: KV_NODE_TRACE=1 prints every node's log lines (with the simulated time) to stderr.
 */

#define NODESIM_MAX_NODES 5
#define NODESIM_TICK_MS 10
#define NODESIM_ERROR_BYTES 512
/* The wall clocks' time when the fixture's clock is 0 (November 2023). */
#define NODESIM_EPOCH_MS 1700000000000ull

struct nodesim_options {
	unsigned n; /* nodes: 1..NODESIM_MAX_NODES */
	uint64_t seed; /* drives the network, tick phases and the nodes' randomness */
	uint64_t snapshot_bytes; /* cfg.snapshot_bytes; 0: the node's default */
	uint64_t snapshot_trailing; /* cfg.snapshot_trailing; 0: the node's default */
	unsigned delay_min_ms; /* 0: 1 */
	unsigned delay_jitter_ms; /* extra delay, uniform in [0, jitter] */
	unsigned drop_pm; /* per mille of messages dropped */
	unsigned dup_pm; /* per mille of Raft messages delivered twice */
	unsigned app_drop_pm; /* per mille of application frames lost after being queued */
	unsigned app_refuse_pm; /* per mille of application frames refused (send_app false) */
	unsigned clock_skew_ms; /* each node's wall clock is off by up to this, either way */
	uint64_t session_timeout_ms; /* the store's session timeout; 0: the default */
	bool sync_snapshots; /* no env.snapshot_start: snapshots inside the loop turn */
	/* cfg.store.max_value_bytes of node i (its --max-value-bytes); 0: the default */
	uint64_t max_value_bytes[NODESIM_MAX_NODES];
	/* nodes (bit i: node i) that may stop on their own, as a node started with options the
	 * cluster refuses must: such a stop is a crash (the process exits), not a violation */
	unsigned may_stop_mask;
};

void nodesim_options_default(struct nodesim_options *o, unsigned n, uint64_t seed);

struct nodesim;

/* Creates the cluster and opens every node. Returns 0, or -1 with a message in err. Free with
 * nodesim_free (NULL is ignored), which closes the nodes: pending requests end then. */
int nodesim_new(const struct nodesim_options *o, struct nodesim **out, char *err, size_t err_len);
void nodesim_free(struct nodesim *s);

unsigned nodesim_n(const struct nodesim *s);
uint64_t nodesim_seed(const struct nodesim *s);
uint64_t nodesim_now(const struct nodesim *s);
/* A value from the fixture's PRNG (for tests that want more seeded choices). */
uint64_t nodesim_random(struct nodesim *s);
/* The first violated property, or NULL. */
const char *nodesim_error(const struct nodesim *s);
/* Node i (0-based; its id is i + 1), or NULL while it is down. */
struct kv_node *nodesim_node(struct nodesim *s, unsigned i);
bool nodesim_up(const struct nodesim *s, unsigned i);

/* --- running ------------------------------------------------------------------------------------ */

/* Runs one event (time jumps to it). false when the queue is empty or after a violation. */
bool nodesim_step(struct nodesim *s);
/* Runs every event up to now + ms; the clock ends at now + ms. false after a violation. */
bool nodesim_run_for(struct nodesim *s, uint64_t ms);
/* Runs until done(s, arg) holds (checked before each event) or max_ms passed. Returns done's
 * last answer (false too after a violation). */
bool nodesim_run_until(struct nodesim *s, bool (*done)(struct nodesim *s, void *arg), void *arg,
                       uint64_t max_ms);
/* Runs until exactly one up node leads, has committed its entries and applied the cluster's
 * settings (so it proposes writes at once), and every up node that can reach it knows it, or
 * max_ms. Returns the leader's index, or -1. */
int nodesim_wait_leader(struct nodesim *s, uint64_t max_ms);
/* Index of an up node that leads in the highest term, or -1. */
int nodesim_leader(const struct nodesim *s);
/* Runs until every up node has applied everything the leader committed and all hashes agree,
 * or max_ms. */
bool nodesim_wait_converged(struct nodesim *s, uint64_t max_ms);

/* --- faults ------------------------------------------------------------------------------------- */

/* Blocks (or unblocks) the one-way link from i to j. */
void nodesim_block(struct nodesim *s, unsigned from, unsigned to, bool blocked);
/* Cuts node i off from every other node (both ways). */
void nodesim_isolate(struct nodesim *s, unsigned i);
/* Splits the cluster: nodes whose bit is set in side_mask on one side, the rest on the other. */
void nodesim_partition(struct nodesim *s, unsigned side_mask);
/* Takes the one-way link from i to j down (or up again): application frames are refused when
 * sent (env.send_app returns false) and Raft messages dropped, as by a transport whose peer is
 * not connected; frames in flight on it are lost. */
void nodesim_link_down(struct nodesim *s, unsigned from, unsigned to, bool down);
/* Unblocks every link and brings every link up. */
void nodesim_heal(struct nodesim *s);
void nodesim_set_drop(struct nodesim *s, unsigned drop_pm);
/* Sets app_drop_pm and app_refuse_pm (nodesim_options). */
void nodesim_set_app_faults(struct nodesim *s, unsigned drop_pm, unsigned refuse_pm);
/* A test's own rule for dropping messages: called for every message sent (m NULL for an
 * application frame), before the other rules; true drops it. NULL removes the rule. */
typedef bool (*nodesim_filter_fn)(void *arg, unsigned from, unsigned to, const struct raft_msg *m);
void nodesim_set_filter(struct nodesim *s, nodesim_filter_fn fn, void *arg);
/* A test's own rule for application frames: called for every frame sent (its bytes, a kv/proto.h
 * frame), after the filter above; NODESIM_DROP loses it after it was queued, NODESIM_REFUSE
 * refuses it (env.send_app returns false). NULL removes the rule. */
enum nodesim_verdict { NODESIM_DELIVER, NODESIM_DROP, NODESIM_REFUSE };
typedef enum nodesim_verdict (*nodesim_app_filter_fn)(void *arg, unsigned from, unsigned to,
                                                      const void *buf, size_t len);
void nodesim_set_app_filter(struct nodesim *s, nodesim_app_filter_fn fn, void *arg);
/* Node i's wall clock jumps ahead by ms (once more for each call) until it restarts. */
void nodesim_clock_jump(struct nodesim *s, unsigned i, uint64_t ms);
/* Node i's wall clock now (what its env.realtime_ms answers), and the same without the jump:
 * the time as the node would have it had its clock not jumped. */
uint64_t nodesim_realtime(const struct nodesim *s, unsigned i);
uint64_t nodesim_realtime_unjumped(const struct nodesim *s, unsigned i);
/* A test's own rule for changing messages in flight: called for every Raft message copy about to
 * be queued (a snapshot chunk already filled: m->u.snapshot.data is the copy's, writable). NULL
 * removes the rule. */
typedef void (*nodesim_mangle_fn)(void *arg, unsigned from, unsigned to, struct raft_msg *m);
void nodesim_set_mangle(struct nodesim *s, nodesim_mangle_fn fn, void *arg);
/* Drops every message in flight (a network glitch). */
void nodesim_drop_in_flight(struct nodesim *s);
/* Crashes node i (no-op when down): kv_node_close, then raft_vfs_mem_crash(vfs, torn_bytes). */
void nodesim_crash(struct nodesim *s, unsigned i, size_t torn_bytes);
/* Arms a disk fault on node i: its nth fsync from now fails with EIO (the node then stops and is
 * crashed by the fixture, torn_bytes of its unsynced tail surviving). */
void nodesim_arm_sync_fault(struct nodesim *s, unsigned i, unsigned long nth, size_t torn_bytes);
/* Disarms every disk fault not fired yet. */
void nodesim_disarm_faults(struct nodesim *s);
/* A slow disk (or a stalled process): node i handles nothing (ticks, messages) until now + ms;
 * what arrives meanwhile waits for it, in order. Requests submitted meanwhile still start at
 * once. A crash ends the stall; nodesim_unstall ends every stall. */
void nodesim_stall(struct nodesim *s, unsigned i, uint64_t ms);
void nodesim_unstall(struct nodesim *s);
/*
 * A disk that lost synced bytes: down node i loses records at the end of its last segment (its
 * log, entries it may have acknowledged), the first of them cut at a byte chosen by pick, so
 * that recovery sees a torn record and cuts it off (or, at byte 0, a clean end). Only entries
 * that a majority of the OTHER nodes hold durably (in their cores' logs up to their stable
 * index; a down node counts as holding nothing) are cut: losing an entry that only a bare
 * majority including node i held would lose it for the cluster, which nothing survives, so the
 * fault stays within what the real system must survive (tests/lib/sim.c argues it). Returns the
 * entries cut (0: none could be), or -1 (recorded as a violation).
 */
int nodesim_cut_tail(struct nodesim *s, unsigned i, uint64_t pick);
/* Tails cut so far (nodesim_cut_tail calls that cut something). */
uint64_t nodesim_tails_cut(const struct nodesim *s);
/* Reopens a down node i from its vfs. 0, or -1 (recorded as a violation too, unless
 * may_stop_mask allows node i to refuse: then nodesim_stop_reason() says why). */
int nodesim_restart(struct nodesim *s, unsigned i);
/* Node i's --max-value-bytes from its next start on (0: the default). */
void nodesim_set_max_value_bytes(struct nodesim *s, unsigned i, uint64_t max_value_bytes);

/* While held, a background snapshot of node i that ends (its job has run) waits for
 * nodesim_release_snapshot instead of reaching the node after a random delay. */
void nodesim_hold_snapshots(struct nodesim *s, unsigned i, bool hold);
/* Node i has a held snapshot job waiting. */
bool nodesim_snapshot_held(const struct nodesim *s, unsigned i);
/* Ends node i's held job now: kv_node_snapshot_done with ok (false also when the job failed).
 * false when nothing was held. */
bool nodesim_release_snapshot(struct nodesim *s, unsigned i, bool ok);

/* --- inspection --------------------------------------------------------------------------------- */

void nodesim_status(struct nodesim *s, unsigned i, struct kv_proto_node_status *st);
uint64_t nodesim_hash(struct nodesim *s, unsigned i);
/* Snapshot chunks delivered to node i, and the ones carrying the last chunk. */
uint64_t nodesim_snapshot_chunks_received(const struct nodesim *s, unsigned i);
uint64_t nodesim_snapshots_received(const struct nodesim *s, unsigned i);
/* Background snapshots node i started (all its incarnations). */
uint64_t nodesim_snapshots_started(const struct nodesim *s, unsigned i);
/* Node i's file system (for tests that look at its files). */
struct raft_vfs *nodesim_vfs(struct nodesim *s, unsigned i);
/* Why node i stopped or refused to start on its own the last time (may_stop_mask), or NULL. */
const char *nodesim_stop_reason(const struct nodesim *s, unsigned i);
/* Crashes so far (nodesim_crash calls and nodes stopped by an injected disk fault). */
uint64_t nodesim_crashes(const struct nodesim *s);
/* Prints every node's status, the pending events and the last log lines to stdout. */
void nodesim_dump(struct nodesim *s);

/* --- requests ----------------------------------------------------------------------------------- */

/* One client request through the fixture. Zero it before the first use. */
struct nodesim_req {
	struct kv_req req; /* req.status and req.result are the outcome once done */
	struct nodesim *sim;
	unsigned node;
	bool pending; /* submitted, callback not run yet */
	bool done;
	uint64_t submitted_ms, done_ms;
};

/* A command for op on key with data (copied by the encoder), time_ms = NODESIM_EPOCH_MS + the
 * fixture clock (a client's clock: the leader stamps its own), caller 0:0, mode 0644, no
 * session. */
void nodesim_cmd(const struct nodesim *s, struct kv_cmd *c, int op, const char *key,
                 const char *data);

/*
 * Encodes cmd and submits it on node i with timeout_ms (0: none). r is reset first (its previous
 * result released). Returns 0 (r->done may already be true), or -1: node down, node refused
 * (max_pending), or the command did not encode.
 */
int nodesim_submit(struct nodesim *s, unsigned i, const struct kv_cmd *cmd, uint64_t timeout_ms,
                   struct nodesim_req *r);
/* The same with raw command bytes (copied). */
int nodesim_submit_bytes(struct nodesim *s, unsigned i, const void *bytes, size_t len,
                         uint64_t timeout_ms, struct nodesim_req *r);
/* Runs until r is done or max_ms passed. Returns r->done. */
bool nodesim_wait(struct nodesim *s, struct nodesim_req *r, uint64_t max_ms);
/* Submits and waits up to timeout_ms + 1000 ms. Returns r->req.status, or -1 when it could not
 * be submitted or no callback came. */
int nodesim_call(struct nodesim *s, unsigned i, const struct kv_cmd *cmd, uint64_t timeout_ms,
                 struct nodesim_req *r);
/* Cancels a pending request (kv_node_cancel on its node). */
void nodesim_cancel(struct nodesim *s, struct nodesim_req *r);
/* Releases r's result and command. r must not be pending. */
void nodesim_req_release(struct nodesim_req *r);

#endif
