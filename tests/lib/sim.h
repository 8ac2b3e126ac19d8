/* sim.h - deterministic cluster simulator for the Raft core: one seed drives every choice. */
#ifndef TESTS_LIB_SIM_H
#define TESTS_LIB_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

/*
 * A run simulates 3 or 5 cores over a network that drops, duplicates, reorders and delays
 * messages and partitions nodes (symmetric and one-way), with crashes that lose everything not
 * yet synced, restarts from what was synced, snapshots, InstallSnapshot, ReadIndex reads and
 * leadership transfers. Each node keeps its durable state in a real struct raft_storage over its
 * own in-memory file system (raft_vfs_mem): a crash keeps exactly what was synced, sometimes
 * with a torn last record, and a restart recovers through raft_storage_open. The crash mixes
 * also cut power in the middle of persists, arm I/O errors (EIO, ENOSPC) that stop a node, give
 * some nodes a slow disk, and cut synced records off the end of a crashed node's log (entries it
 * acknowledged; only ones a majority of the other nodes hold: sim.c cut_acknowledged_tail). The
 * lossy mixes spoil a few snapshot chunks on their way. Time is simulated milliseconds; events at the same instant run in the
 * order they were scheduled. After every event the safety properties are checked:
 *   - election safety: at most one leader per term;
 *   - state-machine safety: no two nodes apply different entries at one index, and each node
 *     applies indexes in order without gaps;
 *   - leader completeness: a new leader holds every entry any node has applied;
 *   - log matching (every 64 events and at the end): two logs with an entry of the same index and
 *     term agree on every term before it;
 *   - read safety: a read index is at least every commit index known when the read was asked.
 * After the fault phase everything heals and liveness is checked: a leader within a bounded
 * time, and a proposal committed on every node.
 */

enum sim_mix {
	SIM_MIX_CLEAN = 0, /* no faults: a baseline */
	SIM_MIX_LOSSY, /* drop, duplicate, reorder, delay */
	SIM_MIX_PARTITION, /* symmetric partitions, isolated leaders */
	SIM_MIX_ONE_WAY, /* one-way links */
	SIM_MIX_CRASH, /* kill and restart (unsynced state lost), disk faults, leadership transfer */
	SIM_MIX_ALL, /* all of the above at once */
	SIM_MIX_CHURN, /* new leaders crash or are cut off within milliseconds (Figure 8) */
	SIM_MIX_COUNT
};

const char *sim_mix_name(enum sim_mix mix);

struct sim_options {
	uint64_t seed;
	int mix; /* enum sim_mix, or -1: chosen from the seed */
	unsigned nodes; /* 3 or 5; 0: chosen from the seed */
	unsigned fault_ms; /* length of the fault phase (default 3000) */
	int trace; /* 1: print events to stderr; 2: also every message delivered */
};

struct sim_result {
	bool ok;
	char error[512]; /* first violated property, with the time and nodes involved */
	uint64_t events;
	uint64_t committed; /* highest index applied by every node at the end */
	uint64_t proposals_acked;
	uint64_t reads_ok;
	uint64_t elections; /* terms that had a leader */
	uint64_t snapshots_installed;
	uint64_t snapshots_refused; /* images spoiled on their way and refused by their CRC */
	uint64_t tails_cut; /* crashes whose disk also lost a synced (acknowledged) tail */
	uint64_t crashes; /* including nodes stopped by a disk fault */
	uint64_t
	        disk_faults; /* nodes stopped by an injected I/O error or a power cut mid-persist */
	unsigned mix;
	unsigned nodes;
};

/* The k-th run of mix in the plan that make check follows (seed, mix, 3 or 5 nodes). */
void sim_plan(enum sim_mix mix, unsigned k, struct sim_options *opt);

/* Runs one seed. Returns res->ok. */
bool sim_run(const struct sim_options *opt, struct sim_result *res);

/*
 * --- stepped mode: the same cluster with no clock, driven by the caller ---------------------
 *
 * Nothing happens but what the caller makes happen, one step at a time (the structure-aware
 * fuzz target of the core, tests/fuzz/fuzz_raft.c): ticks of one node, client proposals and
 * reads, transfers, crashes (what was not synced is lost) and restarts. Every message sent and
 * every persist handed out waits in a pool, in the order made, until the caller runs it, in any
 * order: a schedule of an asynchronous network and disk. Messages may also be dropped,
 * duplicated, replayed from the last ones sent (arbitrarily late), or injected from outside.
 *
 * After every step the checks of sim_run run (election safety, state-machine safety, leader
 * completeness, commit safety, log matching, read safety), and these, which hold of each node
 * whatever its peers say: its log's terms rise and stay at or below its current term; its
 * commit index never goes back within an incarnation, and no entry it knew to be committed
 * changes its term or leaves its log other than into a snapshot; persistence work is
 * contiguous and accepted by the storage, terms never go back, a restart recovers exactly what
 * was synced; messages go only to members. A step after a failure does nothing.
 */
struct sim;

/* A stepped cluster of nodes (3 or 5) whose randomness (election timeouts, message batch
 * sizes) comes from seed; res receives the first failure. NULL when out of memory. */
struct sim *sim_open(unsigned nodes, uint64_t seed, struct sim_result *res);
/* Runs the final checks (acknowledged proposals kept, replicas that applied the same prefix
 * equal), frees s and returns res->ok. With SIM_DUMP set, a failure prints the nodes. */
bool sim_close(struct sim *s);
bool sim_failed(const struct sim *s);
const char *sim_error(const struct sim *s);
unsigned sim_size(const struct sim *s);

/* Node i's core and storage (to look at, between steps), NULL while it is down. */
struct raft *sim_core(struct sim *s, unsigned i);
struct raft_storage *sim_storage(struct sim *s, unsigned i);

/* The pool: how many wait; the message of the k-th (NULL: a persist completion). */
size_t sim_pending(const struct sim *s);
const struct raft_msg *sim_pending_msg(const struct sim *s, size_t k);
/* Runs the k-th (a delivery to a node that is down is lost), drops it (messages only: a
 * persist is lost only with a crash), or adds a copy of it. */
void sim_step_pending(struct sim *s, size_t k);
void sim_drop_pending(struct sim *s, size_t k);
void sim_duplicate_pending(struct sim *s, size_t k);
/* Delivers again the k-th newest message sent (of the last 64), now. */
void sim_step_replay(struct sim *s, size_t k);

void sim_step_tick(struct sim *s, unsigned i);
void sim_step_propose(struct sim *s, unsigned i);
void sim_step_read(struct sim *s, unsigned i);
void sim_step_transfer(struct sim *s, unsigned i, uint32_t target);
void sim_step_crash(struct sim *s, unsigned i);
void sim_step_restart(struct sim *s, unsigned i);

/*
 * Delivers m to node i now (whatever m->to says) and returns what raft_step returned. Entry
 * data in m must be raft_bufs. trusted says that m is within Raft's trust model: it says
 * nothing false about its sender's state (tests/fuzz/fuzz_raft.c argues which messages are).
 * An untrusted message may lie as a peer could only if it were broken or impersonated: from
 * then on the checks that depend on peers telling the truth (all but the per-node ones above)
 * are off for the rest of the run, and a snapshot whose assembled image does not match its CRC
 * may be refused (the node keeps its old state and reloads it, as kv/node.c does). The answer
 * to an injected READ_INDEX is not a client's.
 */
int sim_inject(struct sim *s, unsigned i, const struct raft_msg *m, bool trusted);
/* Whether an untrusted message was injected. */
bool sim_untrusted(const struct sim *s);

/* Truths for judging a message. What node i holds durably (synced): the entry (index, term)
 * (its snapshot's own index included), its last entry, its hard state. */
bool sim_durable_has(const struct sim *s, unsigned i, uint64_t index, uint64_t term);
void sim_durable_last(const struct sim *s, unsigned i, uint64_t *index, uint64_t *term);
struct raft_hard_state sim_durable_hard_state(const struct sim *s, unsigned i);
/* The entry (index, term) as some node persisted or sent it; its data is borrowed. */
bool sim_entry(const struct sim *s, uint64_t index, uint64_t term, struct raft_entry *out);
/* The highest read_seq of the heartbeats node i sent in term (0: none). */
uint64_t sim_heartbeat_sent(const struct sim *s, unsigned i, uint64_t term);
/* Whether node `to` received a heartbeat of term from node `from` with read_seq >= read_seq. */
bool sim_heartbeat_seen(const struct sim *s, unsigned to, unsigned from, uint64_t term,
                        uint64_t read_seq);

#endif
