/* node.h - one replicated key/value node: Raft core + durable storage + state machine + requests. */
#ifndef KV_NODE_H
#define KV_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/cmd.h"
#include "kv/proto.h"
#include "kv/store.h"
#include "raft/raft.h"
#include "raft/storage.h"

/*
 * A node does no I/O of its own beyond its storage (through the storage's vfs) and the callbacks
 * of struct kv_node_env: the daemon drives it from its event loop, the whole-node simulator from
 * a seed. Every call runs to completion; results come back through request callbacks, which may
 * be called from inside any kv_node_* call (never from another thread).
 *
 * Requests (struct kv_req, owned by the caller, STYLE.md 3) carry an encoded command (kv/cmd.h):
 *   - writes: proposed on the leader; on a follower forwarded to the leader as an application
 *     frame (kv/proto.h) and answered from there;
 *   - reads (Get, GetAttr, ReadDir): a ReadIndex round (on a follower the leader is asked for
 *     the index), then served from this replica once it has applied that far; never logged.
 * Outcomes (req->status): KV_STATUS_OK with req->result; KV_STATUS_NOT_APPLIED when the command
 * certainly did not and will not take effect (no leader before the deadline, refused, a read that
 * timed out); KV_STATUS_UNKNOWN when it was proposed (or forwarded) but its fate was not learned
 * before the deadline; KV_STATUS_BAD_REQUEST; KV_STATUS_SHUTDOWN.
 *
 * Sending again. A forwarded frame or its answer can be lost (a link that breaks with it queued).
 * A write with a session (cmd.session != 0) is sent again, with the same bytes, to the current
 * leader when the leader changes and when no answer came for KV_NODE_RESEND_MS (then twice that,
 * up to KV_NODE_RESEND_MAX_MS); so is one a deposed leader proposed. The session applies a
 * (session, seq) once and answers every later copy from its record, so any copy's answer is the
 * request's. A leader that gets a copy of a request it is still working on proposes nothing new.
 * A write without a session (OpenSession included) is never sent again once a copy may have
 * arrived: it ends UNKNOWN at its deadline, or when the copy's answer is overdue
 * (KV_NODE_FORWARD_MAX_MS), whichever is first. A frame env.send_app refused was never sent: it
 * is no attempt, and the request is tried again shortly, with or without a session. Reads are
 * never forwarded (their read index is asked again after KV_NODE_READ_RETRY_MS).
 *
 * Expired sessions. The store answers a request on a session it does not know (expired, evicted,
 * closed) with result.status KV_ESESSION_EXPIRED and applies nothing. The node passes that on as
 * KV_STATUS_OK only when no other attempt of the request (an earlier copy, a proposal) may have
 * been applied: then the request certainly was not, and the caller may send it again in a new
 * session. Otherwise the answer is KV_STATUS_UNKNOWN: an earlier copy may have been applied
 * before the session went, and the record that would tell is gone.
 *
 * Time. The leader stamps time_ms into every command it proposes (kv_cmd_set_time, in req->cmd
 * itself: see struct kv_req), so a client's or a follower's clock never reaches the log (DESIGN.md
 * 9). The stamp is the node's wall clock (env.realtime_ms), clamped: never behind the log time
 * the node knows (the store's, and its own last stamp), so the log time never goes back; and never
 * more than KV_NODE_CLOCK_STEP_MAX_MS ahead of the wall clock as it was at kv_node_open carried
 * on by env.now_ms, so a wall clock that jumps ahead while the node runs (hours, say) moves the
 * log time at most that much and expires no session for it. A wall clock behind the log time
 * only holds the log time still while that node leads. Stepping back is always followed.
 * The cluster's settings (kv/store.h): cfg.store.settings are this node's options. A leader
 * whose store has none yet (a new cluster, or a log that predates them) proposes its own as a
 * Settings command once an entry of its term is applied, and proposes no write before they are
 * applied (writes wait, as for a leader). A node whose options differ from the settings its
 * store holds stops (kv_node_failed: "refusing to join the cluster: the cluster's
 * --max-value-bytes is X, this node's is Y ...") when it applies them, and kv_node_open fails
 * with that message when its snapshot holds them. A client's Settings command is a bad request.
 */

/*
 * A snapshot whose image is written away from the event loop (env.snapshot_start). The node owns
 * it; it stays valid until kv_node_snapshot_done() for it returns or the node is closed.
 */
struct kv_snapshot_job {
	/*
	 * Writes the image of the state machine as it was when the job was made, and fsyncs it:
	 * 0, or -1 (job->err says why). Meant for a child forked right after snapshot_start was
	 * called: it reads the node's memory (the child's copy) and writes through the storage's
	 * vfs to a file opened before; it calls no env callback and logs nothing. Run it at most
	 * once.
	 */
	int (*run)(struct kv_snapshot_job *job);
	uint64_t index; /* the snapshot's index (the applied index when the job was made) */
	/* out of run: the image's size and CRC32C, and an errno value when it failed. An
	 * environment that ran the job in another process copies these three back before it
	 * calls kv_node_snapshot_done. */
	uint64_t size;
	uint32_t crc;
	int err;
	/* private to the node */
	struct kv_node *node;
	struct raft_storage_image image;
};

struct kv_node_env {
	void *ctx;
	uint64_t (*random)(void *ctx);
	uint64_t (*now_ms)(void *ctx); /* monotonic milliseconds: request deadlines */
	/* The wall clock, milliseconds since the epoch (CLOCK_REALTIME): the time a leader
	 * stamps into the commands it proposes (see "Time" above). Required. */
	uint64_t (*realtime_ms)(void *ctx);
	/* Sends m to m->to now (encode or copy it: m is valid only during the call). */
	void (*send)(void *ctx, const struct raft_msg *m);
	/* Queues an application frame (kv/proto.h) for node `to` (copy it: buf is valid only
	 * during the call). true when it was queued, though it may still be lost on the way;
	 * false when it was refused (not connected, the queue is full, too big): then it
	 * certainly never arrives, and the node treats the request it carried as not sent. */
	bool (*send_app)(void *ctx, uint32_t to, const void *buf, size_t len);
	/* Diagnostics: level 0 debug, 1 info, 2 warning, 3 fatal; one event, no newline. */
	void (*log)(void *ctx, int level, const char *msg);
	/*
	 * Optional: asks the caller to call kv_node_flush() soon, once the inputs at hand are in
	 * (a libevent loop: at the end of this turn). Then kv_node_submit(), kv_node_recv(),
	 * kv_node_recv_app() and kv_node_transfer() only hand their input to the core, and the work
	 * it makes (persisting with one fdatasync, sending, applying, answering) is done once per
	 * flush for everything that came in together: group commit, batched AppendEntries. Called
	 * at most once until the flush; NULL: every call does its work before returning.
	 */
	void (*schedule)(void *ctx);
	/* Optional: what send() and send_app() queued should leave now; called before the node
	 * blocks in an fdatasync, so that followers write while the leader does (thesis 10.2.1). */
	void (*flush_sends)(void *ctx);
	/*
	 * Optional: takes a snapshot in the background (the daemon: in a forked child, as Redis
	 * BGSAVE does). Returns 0 when job->run will run (in a child, or here: it may run inside
	 * this call) and kv_node_snapshot_done(node, job, ok) will be called later, from outside
	 * any kv_node_* call; -1 when it cannot start (the node retries later). Proposals,
	 * applies and reads go on meanwhile; at most one job is in flight. NULL: snapshots are
	 * written synchronously, inside the loop turn that crosses snapshot_bytes.
	 */
	int (*snapshot_start)(void *ctx, struct kv_snapshot_job *job);
};

struct kv_node_config {
	uint32_t id;
	struct raft_conf conf;
	const char *dir; /* data directory */
	struct raft_storage_options storage;
	struct kv_store_config store;
	unsigned election_ticks;
	unsigned heartbeat_ticks;
	uint64_t snapshot_bytes; /* snapshot when the log written since the last one passes this */
	uint64_t snapshot_trailing; /* entries kept behind a snapshot (raft_config) */
	uint32_t max_pending; /* requests in flight on this node; more are refused */
};

#define KV_NODE_DEFAULT_SNAPSHOT_BYTES (64u << 20)
/* After a background snapshot failed (or could not start), the next try waits this many ticks. */
#define KV_NODE_SNAPSHOT_RETRY_TICKS 20u
#define KV_NODE_DEFAULT_MAX_PENDING 65536u
/* A read whose read index has not come back within this is asked again (the message or its
 * answer may have been lost; the leader may have died): a read without a deadline must not
 * wait forever. */
#define KV_NODE_READ_RETRY_MS 1000u

/* A session write sent to the leader (or proposed by a leader since deposed) whose answer has not
 * come within this is sent again to the current leader, then after twice as long, up to
 * KV_NODE_RESEND_MAX_MS: the frame or its answer may be lost (the session applies it once). */
#define KV_NODE_RESEND_MS 500u
#define KV_NODE_RESEND_MAX_MS 2000u
/* The most a leader works on one forwarded copy of a request (the copy's REQ.timeout_ms when the
 * request has a later deadline or none). A write without a session, which cannot be sent again,
 * ends UNKNOWN once its copy's answer is this late: lost frames do not make it wait forever. */
#define KV_NODE_FORWARD_MAX_MS 10000u
/* How far ahead of its clock at start (carried on by the monotonic clock) a node's wall clock may
 * step and still be followed by the time it stamps as leader (see "Time" above). */
#define KV_NODE_CLOCK_STEP_MAX_MS 60000u

void kv_node_config_default(struct kv_node_config *cfg);

struct kv_req;
typedef void (*kv_req_cb)(struct kv_req *req);

/* Copies of one forwarded request whose answers are awaited; sending one more forgets the oldest
 * (it may still be applied: the request stays uncertain). */
#define KV_NODE_MAX_COPIES 4u

/* One copy of a request sent to a leader (private to the node). */
struct kv_req_copy {
	uint64_t id; /* the frame id its answer carries */
	uint32_t to;
};

struct kv_req {
	void *data; /* the caller's */
	kv_req_cb cb;
	/* in: a raft_buf holding an encoded command, kept alive by the caller until cb runs (the
	 * node takes its own references where it needs them). The node may rewrite its time_ms in
	 * place before it first proposes it (the leader's stamp), so it must not be shared with
	 * another request in flight or with anything that needs those bytes unchanged. */
	void *cmd;
	size_t cmd_len;
	uint64_t timeout_ms; /* 0: no deadline */
	/* out, valid in cb: status and, on KV_STATUS_OK, result (the caller releases it) */
	int status;
	struct kv_result result;
	uint32_t leader; /* leader this node knew when it answered (0: none) */
	/* private to the node */
	struct kv_req *prev, *next;
	int state;
	uint8_t op;
	bool has_session;
	bool internal; /* forwarded from a peer: the node frees it */
	bool proposed; /* a proposal of it is awaited at (index, term) */
	bool stamped; /* cmd carries this node's time stamp (it was proposed here) */
	uint64_t session, seq; /* the command's */
	uint64_t deadline_ms;
	uint64_t key; /* read ctx */
	uint64_t index; /* proposal index, or the read index */
	uint64_t term; /* proposal term */
	uint32_t fwd_from; /* internal: the peer and the frame id of its latest copy */
	uint64_t fwd_id;
	uint32_t fwd_to; /* the leader the latest copy went to; for a read: the leader asked */
	uint64_t attempt_ms; /* when the latest write attempt or read index attempt began */
	uint64_t retry_ms; /* a write waiting for a leader is not tried again before this */
	uint64_t resend_ms; /* a session write is sent again this long after its latest copy */
	uint64_t answer_by_ms; /* the latest copy's answer is overdue after this */
	unsigned n_copies;
	struct kv_req_copy copies[KV_NODE_MAX_COPIES]; /* awaited, oldest first */
	/* attempts (local proposals, copies) whose fate is not known: while any exists, giving
	 * up answers UNKNOWN, never NOT_APPLIED */
	unsigned uncertain;
};

struct kv_node;

/* Opens the data directory, recovers (snapshot, then log), and starts a follower. On failure
 * returns a raft or kv error and writes a message to err. */
int kv_node_open(const struct kv_node_config *cfg, const struct kv_node_env *env,
                 struct kv_node **out, char *err, size_t err_len);
/* Completes every pending request with KV_STATUS_SHUTDOWN and frees the node. NULL is ignored. */
void kv_node_close(struct kv_node *n);

/* Does the work scheduled through env.schedule (a no-op when nothing is scheduled). */
void kv_node_flush(struct kv_node *n);

/* One unit of logical time (the daemon calls it every tick). */
void kv_node_tick(struct kv_node *n);
/* A Raft message from a peer (only read). */
void kv_node_recv(struct kv_node *n, const struct raft_msg *m);
/* An application frame from a peer. */
void kv_node_recv_app(struct kv_node *n, uint32_t from, const void *buf, size_t len);

/* Starts req; its callback runs later (or before this returns, for an immediate answer).
 * Returns 0, or -1 (callback not called) when the node has stopped or is at max_pending. */
int kv_node_submit(struct kv_node *n, struct kv_req *req);
/* Abandons req (a FUSE interrupt): its callback runs now with NOT_APPLIED if it was never
 * proposed or forwarded, else UNKNOWN. */
void kv_node_cancel(struct kv_node *n, struct kv_req *req);

/*
 * The end of a background snapshot (env.snapshot_start): ok when job->run returned 0 (with the
 * job's size and crc as it set them). On success the image becomes the node's snapshot and the
 * log it covers is dropped, unless a newer snapshot (the leader's) was installed meanwhile: then
 * it is discarded. On failure a warning is logged and the node tries again later; the node does
 * not stop for it. The job's process must have ended (its writes are over) before this is
 * called. The environment must not call it after kv_node_close: kv_node_close abandons a job in
 * flight (the caller stops the job's process first) and removes its temporary file.
 */
void kv_node_snapshot_done(struct kv_node *n, struct kv_snapshot_job *job, bool ok);
/* True while a background snapshot is in flight. */
bool kv_node_snapshot_in_flight(const struct kv_node *n);

/* For the transport: fills an outgoing snapshot chunk. 0 or -1. */
int kv_node_fill_snapshot(struct kv_node *n, uint64_t index, uint64_t offset, void *buf,
                          size_t len);

/* The largest value a write may leave (the filesystem answers EFBIG beyond it). A write over it
 * is answered KV_STATUS_OK with result.status KV_EFBIG by the node it reaches, unproposed. */
uint64_t kv_node_max_value_bytes(const struct kv_node *n);

void kv_node_status(const struct kv_node *n, struct kv_proto_node_status *st);
bool kv_node_is_leader(const struct kv_node *n);
uint32_t kv_node_leader(const struct kv_node *n);
/* Hands leadership to the most up-to-date follower (before shutting down). */
void kv_node_transfer(struct kv_node *n);
/* A storage failure stopped the node (it must exit): why is a message. */
bool kv_node_failed(const struct kv_node *n, const char **why);
/* The state machine, for local inspection (tests, simulator). */
const struct kv_store *kv_node_store(const struct kv_node *n);
/* The Raft core, for local inspection (tests, simulator); NULL in a node stopped because it
 * could not reload its state (a refused snapshot, then a failed open). */
const struct raft *kv_node_raft(const struct kv_node *n);

#endif
