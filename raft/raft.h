/* raft.h - the Raft consensus core: a pure state machine with no I/O, clock or randomness of its own. */
#ifndef RAFT_RAFT_H
#define RAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * How the core is driven (one thread; the core never blocks and never calls out except through
 * struct raft_env):
 *
 *   raft_tick()         one unit of logical time (the daemon ticks every RAFT tick_ms);
 *   raft_step()         a message received from a peer;
 *   raft_propose()      a new command (leader only);
 *   raft_read_index()   ask for a linearizable read index;
 *   raft_transfer()     hand leadership to another node.
 *
 * After any of these the caller collects work with raft_update_get():
 *
 *   1. persistence work (persist_seq != 0): hard state, an incoming snapshot chunk, a log suffix
 *      to drop, entries to append. The caller makes it durable in that order, then calls
 *      raft_persisted(persist_seq). It may do so later (an fsync thread): meanwhile the core keeps
 *      running, and the next persistence work is handed out only after this one is reported.
 *   2. messages: every message in an update may be sent at once. A message that depends on state
 *      not yet durable (a vote, an append acknowledgement) is held inside the core and released in
 *      a later update once raft_persisted() covers it (paper Figure 2: "respond after updating
 *      stable storage"). A leader's AppendEntries are released before its own fsync completes
 *      (thesis 10.2.1): the leader counts itself in the commit quorum only once durable.
 *   3. committed entries to apply, in index order, only ones already durable on this node;
 *   4. read states: (ctx, index) pairs for raft_read_index() requests, answered once the
 *      application has applied up to index; or a failure status.
 *
 * then raft_update_done(), which releases the arrays and records the committed entries as applied.
 * Only one update may be outstanding (between get and done) at a time.
 *
 * Memory: entry payloads are refcounted buffers (raft_buf_*). The core takes its own references
 * to what it keeps; everything handed out in an update is valid until raft_update_done().
 */

#define RAFT_MAX_NODES 9
/*
 * The payload of one log entry, at most: the one limit storage, the codec (log records and
 * AppendEntries) and the transport's frames all accept, and the most raft_config.max_entry_bytes
 * may be. A 16 MiB value plus its command's framing (kv/cmd.h) fits. Storage refusing an entry
 * would stop the node, so nothing larger may ever be proposed or accepted from a peer.
 */
#define RAFT_MAX_ENTRY_BYTES ((16u << 20) + (64u << 10))
/* Entries in one AppendEntries, at most (the codec refuses more): a leader's batch stops there. */
#define RAFT_MAX_MSG_ENTRIES 65536u
/* The highest term: far beyond what elections reach in a cluster's life (one a nanosecond for
 * 292 years). A message of a higher term can only come from a broken or forged peer and is
 * refused (raft_step), and a node at this term does not campaign: the next would wrap to 0. */
#define RAFT_MAX_TERM (UINT64_MAX >> 1)

/* Errors of the raft layer (storage and transport reuse them). 0 is success. */
enum raft_err {
	RAFT_OK = 0,
	RAFT_ENOMEM, /* allocation failed */
	RAFT_EINVAL, /* bad argument or configuration */
	RAFT_ENOTLEADER, /* this node is not the leader (or lost leadership) */
	RAFT_EBUSY, /* a limit is reached (uncommitted bytes, update outstanding, transfer) */
	RAFT_ETOOBIG, /* entry or message over its limit */
	RAFT_ECORRUPT, /* checksum or decoding failure */
	RAFT_EIO, /* I/O error (storage) */
	RAFT_ENOSPC, /* disk full (storage) */
	RAFT_ENOENT, /* not found */
	RAFT_ESHUTDOWN, /* stopped after a fatal error */
	RAFT_ERR_COUNT
};

/* Static string describing an error; never NULL. */
const char *raft_strerror(int err);

enum raft_role { RAFT_FOLLOWER = 0, RAFT_PRE_CANDIDATE, RAFT_CANDIDATE, RAFT_LEADER };
const char *raft_role_name(enum raft_role role);

/* --- refcounted payload buffers ---------------------------------------------------------------- */

/* A buffer of len bytes with refcount 1, or NULL. len may be 0 (a valid, distinct pointer). */
void *raft_buf_alloc(size_t len);
/* Take another reference to a buffer from raft_buf_alloc (NULL is ignored). */
void raft_buf_ref(void *buf);
/* Drop a reference; the buffer is freed when the last one goes (NULL is ignored). */
void raft_buf_unref(void *buf);

/* --- configuration ------------------------------------------------------------------------------ */

/*
 * Cluster membership. Static for now, but the quorum rule is written for joint consensus: when
 * n_old != 0 a decision needs a majority of ids AND a majority of old_ids (thesis 4.3).
 */
struct raft_conf {
	unsigned n;
	uint32_t ids[RAFT_MAX_NODES];
	unsigned n_old;
	uint32_t old_ids[RAFT_MAX_NODES];
};

bool raft_conf_contains(const struct raft_conf *conf, uint32_t id);

enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 1, /* application command */
	RAFT_ENTRY_NOOP = 2, /* opens each leader's term (paper 5.4.2 / 8) */
	RAFT_ENTRY_CONF = 3 /* membership change (reserved) */
};

/* A log entry. data is NULL or a raft_buf; whoever holds a struct raft_entry holds a reference. */
struct raft_entry {
	uint64_t term;
	uint64_t index;
	uint8_t type;
	uint32_t len;
	void *data;
};

/* Durable per-node state (paper Figure 2 "persistent state on all servers", less the log). */
struct raft_hard_state {
	uint64_t term;
	uint32_t vote; /* 0: none */
};

/* Describes a state-machine snapshot covering the log up to and including index. */
struct raft_snapshot_meta {
	uint64_t index;
	uint64_t term;
	struct raft_conf conf;
	uint64_t size; /* bytes of the snapshot image */
	/* CRC32C of the whole image: every InstallSnapshot chunk carries it, and the follower
	 * checks the image it assembled against it before anything of its old state goes */
	uint32_t crc;
};

/* --- messages ----------------------------------------------------------------------------------- */

enum raft_msg_type {
	RAFT_MSG_VOTE = 1, /* RequestVote, or pre-vote when pre_vote is set */
	RAFT_MSG_VOTE_RESP,
	RAFT_MSG_APPEND, /* AppendEntries */
	RAFT_MSG_APPEND_RESP,
	RAFT_MSG_HEARTBEAT, /* empty AppendEntries that carries a safe commit and a read round */
	RAFT_MSG_HEARTBEAT_RESP,
	RAFT_MSG_SNAPSHOT, /* InstallSnapshot chunk */
	RAFT_MSG_SNAPSHOT_RESP,
	RAFT_MSG_TIMEOUT_NOW, /* leadership transfer: start an election now */
	RAFT_MSG_READ_INDEX, /* follower asks the leader for a read index */
	RAFT_MSG_READ_INDEX_RESP,
	RAFT_MSG_TYPE_COUNT
};
const char *raft_msg_type_name(int type);

struct raft_msg_vote {
	uint64_t last_log_index;
	uint64_t last_log_term;
	bool pre_vote;
	bool transfer; /* sent because of TIMEOUT_NOW: overrides the leader lease */
};

struct raft_msg_vote_resp {
	bool pre_vote;
	bool granted;
};

struct raft_msg_append {
	uint64_t prev_index;
	uint64_t prev_term;
	uint64_t commit;
	uint32_t n_entries;
	struct raft_entry *entries; /* owned by whoever owns the message */
};

struct raft_msg_append_resp {
	bool success;
	uint64_t index; /* success: last index now matching; failure: the rejected prev_index */
	uint64_t hint_index; /* failure: leader may retry from hint_index (log of hint_term) */
	uint64_t hint_term;
	/* the follower's last log index: below the match the leader recorded, the follower lost
	 * entries it had acknowledged (raft.c follower_log_ends) */
	uint64_t last_index;
};

struct raft_msg_heartbeat {
	uint64_t commit;
	uint64_t read_seq; /* read round being confirmed (0: none) */
};

struct raft_msg_heartbeat_resp {
	uint64_t read_seq;
	uint64_t last_index; /* the follower's last log index, as in an append response */
};

struct raft_msg_snapshot {
	struct raft_snapshot_meta meta;
	uint64_t offset;
	uint32_t len;
	bool last;
	/* The core leaves data NULL on send: the transport fills the chunk [offset, offset+len) from
	 * the snapshot with meta.index. On receive, data points to len bytes owned by the caller. */
	void *data;
};

struct raft_msg_snapshot_resp {
	uint64_t index; /* snapshot the response is about */
	uint64_t next_offset; /* bytes the follower holds; the leader continues from there */
	bool done; /* follower has installed it (or already had the state) */
	bool reject; /* follower cannot take it; leader restarts from offset 0 */
};

struct raft_msg_read_index {
	uint64_t ctx;
};

struct raft_msg_read_index_resp {
	uint64_t ctx;
	uint64_t index;
	bool ok;
};

struct raft_msg {
	uint8_t type; /* enum raft_msg_type */
	uint32_t from;
	uint32_t to;
	uint64_t term;
	union {
		struct raft_msg_vote vote;
		struct raft_msg_vote_resp vote_resp;
		struct raft_msg_append append;
		struct raft_msg_append_resp append_resp;
		struct raft_msg_heartbeat heartbeat;
		struct raft_msg_heartbeat_resp heartbeat_resp;
		struct raft_msg_snapshot snapshot;
		struct raft_msg_snapshot_resp snapshot_resp;
		struct raft_msg_read_index read_index;
		struct raft_msg_read_index_resp read_index_resp;
	} u;
};

/* --- the core ----------------------------------------------------------------------------------- */

/* Everything nondeterministic reaches the core through here (STYLE.md 1). */
struct raft_env {
	void *ctx;
	/* A uniformly distributed 64-bit value. Required. */
	uint64_t (*random)(void *ctx);
	/* Optional diagnostics: one event, no trailing newline. level: 0 debug, 1 info, 2 warn. */
	void (*log)(void *ctx, int level, const char *msg);
};

struct raft_config {
	uint32_t id; /* this node, a member of conf */
	struct raft_conf conf; /* used when the restored snapshot carries none */
	unsigned
	        election_ticks; /* election timeout is random in [election_ticks, 2*election_ticks) */
	unsigned heartbeat_ticks; /* leader heartbeat period, < election_ticks */
	bool pre_vote; /* thesis 9.6 */
	bool check_quorum; /* leader steps down without a majority for an election timeout */
	uint32_t max_msg_bytes; /* payload bytes per AppendEntries (one larger entry goes alone);
	                           1..RAFT_MAX_ENTRY_BYTES, so that a batch fits one frame */
	uint32_t max_inflight_msgs; /* pipelined AppendEntries per follower */
	uint64_t max_inflight_bytes; /* payload bytes in flight per follower */
	uint64_t max_uncommitted_bytes; /* raft_propose refuses with RAFT_EBUSY beyond this */
	uint32_t max_entry_bytes; /* a single proposal larger than this is RAFT_ETOOBIG;
	                             1..RAFT_MAX_ENTRY_BYTES */
	uint32_t snapshot_chunk_bytes; /* InstallSnapshot chunk size */
	uint64_t
	        snapshot_trailing; /* entries kept in memory behind a snapshot for slow followers */
};

/* Fills cfg with sane defaults for id and conf (10/1 ticks, pre-vote and check-quorum on, ...). */
void raft_config_default(struct raft_config *cfg, uint32_t id, const struct raft_conf *conf);

/* What the storage layer recovered; all zero for a new node. The core takes its own references
 * to entries[i].data; the caller keeps (and later drops) its own. entries must follow snap.index
 * contiguously. */
struct raft_restore {
	struct raft_hard_state hs;
	struct raft_snapshot_meta snap; /* index 0: no snapshot */
	const struct raft_entry *entries;
	size_t n_entries;
};

struct raft;

/* Creates a core (a follower). restore may be NULL. Returns RAFT_OK and sets *out, or an error.
 * env is copied. The application state must already reflect restore->snap. */
int raft_new(const struct raft_config *cfg, const struct raft_env *env,
             const struct raft_restore *restore, struct raft **out);
/* Frees the core, its log references and any outstanding update. NULL is ignored. */
void raft_free(struct raft *r);

int raft_tick(struct raft *r);
/* m is only read; the core references entry buffers it keeps and copies nothing else. Messages
 * from unknown nodes or with impossible fields are dropped with RAFT_EINVAL. */
int raft_step(struct raft *r, const struct raft_msg *m);

/* Appends a command to the leader's log. buf is a raft_buf of len bytes: ownership passes to the
 * core on success AND on failure. *index (may be NULL) and *term receive the entry's position: the
 * command took effect iff an entry with that index AND term is later applied. Errors:
 * RAFT_ENOTLEADER, RAFT_EBUSY (transfer running or uncommitted bytes over limit), RAFT_ETOOBIG. */
int raft_propose(struct raft *r, void *buf, uint32_t len, uint64_t *index, uint64_t *term);

/* Asks for a linearizable read index for ctx; the answer arrives as a read state. On a follower
 * the request goes to the leader (RAFT_ENOTLEADER at once when no leader is known; if the message
 * is lost no answer comes: the caller times out; if the network duplicates it, a second answer
 * for the same ctx may come: each answer is safe, use the first). */
int raft_read_index(struct raft *r, uint64_t ctx);

/* Leadership transfer to target (0: the most up-to-date follower). Leader only. */
int raft_transfer(struct raft *r, uint32_t target);

/* The application stored a durable snapshot of its state at applied index `index` (size bytes,
 * CRC32C crc). The core uses it for followers behind the log and drops in-memory entries up to
 * index - snapshot_trailing. index must be <= the applied index. */
int raft_snapshot_taken(struct raft *r, uint64_t index, uint64_t size, uint32_t crc);

struct raft_read_state {
	uint64_t ctx;
	uint64_t index; /* serve the read once applied >= index */
	int status; /* RAFT_OK, or RAFT_ENOTLEADER: the read failed, retry elsewhere */
};

struct raft_update {
	/* persistence work, in this order; persist_seq == 0 when there is none */
	uint64_t persist_seq;
	bool hs_changed;
	struct raft_hard_state hs;
	/* an incoming snapshot chunk to store; when snap_last, the snapshot replaces the application
	 * state and the whole log (drop every entry) once the chunk is durable and the assembled
	 * image matches snap_meta (size, crc). If it does not (or the application cannot load it),
	 * the caller keeps its old state and log and makes a new core from them: this one had
	 * replaced its log already (raft_persisted must not be called for this work) */
	bool has_snap_chunk;
	struct raft_snapshot_meta snap_meta;
	uint64_t snap_offset;
	uint32_t snap_len;
	const void *snap_data;
	bool snap_last;
	uint64_t
	        truncate_from; /* 0: none; else drop log entries >= truncate_from before appending */
	const struct raft_entry *entries;
	size_t n_entries;

	/* messages that may be sent now */
	const struct raft_msg *msgs;
	size_t n_msgs;

	/* committed entries to apply, in order */
	const struct raft_entry *committed;
	size_t n_committed;

	const struct raft_read_state *reads;
	size_t n_reads;
};

/* True when raft_update_get would hand out anything. */
bool raft_has_update(const struct raft *r);
/* Fills u with all work that is ready. RAFT_EBUSY if an update is outstanding. */
int raft_update_get(struct raft *r, struct raft_update *u);
/* Releases u; its committed entries count as applied. */
void raft_update_done(struct raft *r, struct raft_update *u);
/* The persistence work with sequence seq (and everything before it) is durable. If it held the
 * last chunk of a snapshot (snap_last), the application must have restored its state from that
 * snapshot before this call: the core then counts the snapshot's index as applied. */
void raft_persisted(struct raft *r, uint64_t seq);

struct raft_status {
	uint32_t id;
	enum raft_role role;
	uint64_t term;
	uint32_t vote;
	uint32_t leader; /* 0: unknown */
	uint64_t commit;
	uint64_t applied;
	uint64_t stable; /* last index durable on this node */
	uint64_t first_index; /* first index held in memory */
	uint64_t last_index;
	uint64_t last_term;
	uint64_t snapshot_index;
	uint64_t snapshot_term;
	uint32_t transfer_target; /* 0: none */
};
void raft_status(const struct raft *r, struct raft_status *st);

/* Term of the entry at index as this node knows it; 0 if unknown (compacted or beyond last). */
uint64_t raft_term_at(const struct raft *r, uint64_t index);

#ifdef RAFT_MUTANTS
/* Only in the core that tests/test_sim_mutant links (Makefile.in MUTANT_FLAGS): rules broken on
 * purpose, one at a time, which the simulator must catch. */
enum raft_mutant {
	RAFT_MUTANT_NONE = 0,
	RAFT_MUTANT_COMMIT_OLD_TERMS, /* entries of earlier terms committed by counting replicas */
	RAFT_MUTANT_KEEP_MATCH, /* the leader never lowers a match (a lost tail is never resent) */
	RAFT_MUTANT_COUNT
};
extern int raft_mutant; /* enum raft_mutant */
#endif

#endif /* RAFT_RAFT_H */
