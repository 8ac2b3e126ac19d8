/* raft.c - the Raft consensus core: elections, replication, commit, snapshots, reads, transfer. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h> /* vsnprintf only: formatting log lines, no I/O */
#include <stdlib.h>
#include <string.h>

#include "raft/core_log.h"
#include "raft/raft.h"

/* Named limits of the core (STYLE.md 11). */
#define RAFT_MAX_PENDING_READS 65536 /* read requests waiting for a round */
#define RAFT_MAX_HELD_MSGS 65536 /* messages waiting for persistence */
#define RAFT_MAX_APPLY_BATCH 4096 /* committed entries handed out per update */
#define RAFT_LOG_LINE_BYTES 256

#ifdef RAFT_DEBUG
#define RAFT_ASSERT(x) assert(x)
#else
#define RAFT_ASSERT(x) ((void)0)
#endif

#ifdef RAFT_MUTANTS
int raft_mutant; /* the broken rule in force (raft.h): tests/test_sim_mutant only */
#define RAFT_MUTANT_ON(m) (raft_mutant == (m))
#else
#define RAFT_MUTANT_ON(m) false
#endif

enum progress_state {
	PR_PROBE = 0, /* one AppendEntries at a time until the follower's log position is found */
	PR_REPLICATE, /* pipelined: next advances optimistically as messages go out */
	PR_SNAPSHOT /* sending an InstallSnapshot, one chunk at a time */
};

/* The leader's view of one member (paper Figure 2, "volatile state on leaders"). */
struct progress {
	uint32_t id;
	uint64_t match; /* highest index known replicated there; for self: durable here */
	uint64_t next; /* next index to send */
	enum progress_state state;
	bool probe_sent; /* PR_PROBE: an append is outstanding */
	bool recent_active; /* heard from within this election timeout (check-quorum) */
	bool vote_responded;
	bool vote_granted;
	uint64_t read_seq_acked;
	/* PR_REPLICATE in-flight window: last index and payload bytes of each outstanding append */
	uint64_t *infl_index;
	uint64_t *infl_bytes;
	uint32_t infl_start;
	uint32_t infl_count;
	uint64_t infl_total_bytes;
	/* PR_SNAPSHOT */
	uint64_t snap_index;
	uint64_t snap_offset;
	bool snap_chunk_out;
	unsigned snap_wait_ticks;
};

struct held_msg {
	struct raft_msg msg;
	uint64_t dep_seq; /* sendable once persisted_seq >= dep_seq */
};

struct pending_read {
	uint64_t ctx;
	uint32_t from; /* 0: local request */
	uint64_t index;
	uint64_t seq; /* read round; 0 until one is started */
};

/* A growable array of fixed-size items. */
struct vec {
	void *items;
	size_t n;
	size_t cap;
};

struct raft {
	struct raft_config cfg;
	struct raft_env env;
	uint32_t id;
	struct raft_conf conf;

	/* persistent state (paper Figure 2) */
	uint64_t term;
	uint32_t vote;
	struct core_log log;

	enum raft_role role;
	uint32_t leader;
	uint64_t commit; /* invariant: applied <= commit <= last index */
	uint64_t applied; /* last index the application applied */
	uint64_t stable; /* last index durable here; invariant: stable <= last index */
	/* follower: entries up to here are known to match the leader's log (its last successful
	 * AppendEntries or snapshot in this term); a read index answer may commit up to it */
	uint64_t leader_match;

	/* latest local snapshot (what the leader sends to laggards) */
	struct raft_snapshot_meta snap;

	/* timers, in ticks */
	unsigned election_elapsed;
	unsigned heartbeat_elapsed;
	unsigned randomized_timeout;

	/* members: progress for every voter, self included */
	struct progress prs[2 * RAFT_MAX_NODES];
	unsigned n_prs;

	/* persistence pipeline */
	bool dirty; /* state changed since the last hand-out */
	struct raft_hard_state hs_handed; /* hard state as of the last hand-out */
	uint64_t unstable_from; /* first entry index not yet handed out for persisting */
	uint64_t pending_truncate; /* 0 or lowest index to drop from disk at the next hand-out */
	uint64_t handed_seq; /* persistence work handed out so far */
	uint64_t persisted_seq; /* ... and reported durable */
	bool persist_inflight;
	uint64_t inflight_last; /* last entry index in the in-flight work (0: none) */
	uint64_t inflight_trunc_min; /* lowest truncation made while it was in flight */
	uint64_t inflight_snap_index; /* snapshot installed by the in-flight work (0: none) */
	struct raft_snapshot_meta inflight_snap_meta;

	/* incoming snapshot (follower) */
	bool in_snap_active;
	struct raft_snapshot_meta in_snap;
	uint64_t in_snap_offset; /* bytes accepted */
	bool chunk_pending; /* a chunk waits to be handed out */
	uint64_t chunk_offset;
	uint32_t chunk_len;
	void *chunk_data;
	bool chunk_last;
	bool restore_pending; /* installed snapshot not yet durable: apply nothing */

	/* leader */
	bool need_bcast; /* new entries to send */
	uint64_t uncommitted_bytes;
	uint64_t read_seq;
	uint32_t transfer_target;
	unsigned transfer_elapsed;

	struct vec held; /* struct held_msg */
	struct vec reads; /* struct pending_read (leader) */
	struct vec read_states; /* struct raft_read_state, to hand out */

	/* the outstanding update */
	bool update_out;
	struct vec out_msgs; /* struct raft_msg */
	struct vec out_entries; /* struct raft_entry (persist) */
	struct vec out_committed; /* struct raft_entry (apply) */
	struct vec out_reads; /* struct raft_read_state */
	void *out_chunk;
};

/* --- small helpers ------------------------------------------------------------------------------ */

static int vec_push(struct vec *v, const void *item, size_t size)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		void *a = realloc(v->items, cap * size);
		if (!a)
			return RAFT_ENOMEM;
		v->items = a;
		v->cap = cap;
	}
	memcpy((char *)v->items + v->n * size, item, size);
	v->n++;
	return RAFT_OK;
}

static void vec_free(struct vec *v)
{
	free(v->items);
	memset(v, 0, sizeof(*v));
}

static void logf_(struct raft *r, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void logf_(struct raft *r, int level, const char *fmt, ...)
{
	char line[RAFT_LOG_LINE_BYTES];
	va_list ap;

	if (!r->env.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->env.log(r->env.ctx, level, line);
}

static struct progress *pr_find(struct raft *r, uint32_t id)
{
	for (unsigned i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

static uint64_t last_index(const struct raft *r)
{
	return core_log_last_index(&r->log);
}

static uint64_t last_term(const struct raft *r)
{
	return core_log_last_term(&r->log);
}

static void msg_release(struct raft_msg *m)
{
	if (m->type == RAFT_MSG_APPEND && m->u.append.entries) {
		for (uint32_t i = 0; i < m->u.append.n_entries; i++)
			raft_buf_unref(m->u.append.entries[i].data);
		free(m->u.append.entries);
		m->u.append.entries = NULL;
	}
}

/* Quorum arithmetic, written for joint consensus: a set of member flags wins when it holds a
 * majority of conf.ids and (if joint) of conf.old_ids. */
static bool ids_majority(const uint32_t *ids, unsigned n, struct raft *r,
                         bool (*pred)(const struct progress *))
{
	unsigned yes = 0;

	if (n == 0)
		return true;
	for (unsigned i = 0; i < n; i++) {
		struct progress *pr = pr_find(r, ids[i]);
		if (pr && pred(pr))
			yes++;
	}
	return yes >= n / 2 + 1;
}

static bool quorum(struct raft *r, bool (*pred)(const struct progress *))
{
	return ids_majority(r->conf.ids, r->conf.n, r, pred) &&
	        ids_majority(r->conf.old_ids, r->conf.n_old, r, pred);
}

static int cmp_u64_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* The largest value that a majority of ids has reached. */
static uint64_t ids_quorum_value(struct raft *r, const uint32_t *ids, unsigned n,
                                 uint64_t (*val)(const struct raft *, const struct progress *))
{
	uint64_t v[2 * RAFT_MAX_NODES];

	if (n == 0)
		return UINT64_MAX;
	for (unsigned i = 0; i < n; i++) {
		struct progress *pr = pr_find(r, ids[i]);
		v[i] = pr ? val(r, pr) : 0;
	}
	qsort(v, n, sizeof(v[0]), cmp_u64_desc);
	return v[n / 2];
}

static uint64_t quorum_value(struct raft *r,
                             uint64_t (*val)(const struct raft *, const struct progress *))
{
	uint64_t a = ids_quorum_value(r, r->conf.ids, r->conf.n, val);
	uint64_t b = ids_quorum_value(r, r->conf.old_ids, r->conf.n_old, val);
	return a < b ? a : b;
}

static uint64_t pr_match(const struct raft *r, const struct progress *pr)
{
	return pr->id == r->id ? r->stable : pr->match;
}

static uint64_t pr_read_seq(const struct raft *r, const struct progress *pr)
{
	return pr->id == r->id ? r->read_seq : pr->read_seq_acked;
}

static bool pr_granted(const struct progress *pr)
{
	return pr->vote_responded && pr->vote_granted;
}

static bool pr_not_rejected(const struct progress *pr)
{
	return !pr->vote_responded || pr->vote_granted;
}

static bool pr_active(const struct progress *pr)
{
	return pr->recent_active;
}

static void reset_randomized_timeout(struct raft *r)
{
	r->randomized_timeout = r->cfg.election_ticks +
	        (unsigned)(r->env.random(r->env.ctx) % r->cfg.election_ticks);
}

/* --- persistence bookkeeping -------------------------------------------------------------------- */

static void set_term_vote(struct raft *r, uint64_t term, uint32_t vote)
{
	if (r->term != term)
		r->leader_match = 0; /* it spoke of the previous term's leader */
	if (r->term != term || r->vote != vote) {
		r->term = term;
		r->vote = vote;
		r->dirty = true;
	}
}

/* The sequence number of the persistence work a message generated now depends on. */
static uint64_t current_dep(const struct raft *r)
{
	if (r->dirty)
		return r->handed_seq + 1;
	if (r->persist_inflight)
		return r->handed_seq;
	return 0;
}

/* A message that reports a log position must never outlive the entries it reports: when entries
 * >= index are dropped, held acknowledgements of them are dropped too (an old leader must not
 * count a replica that no longer holds what it acknowledged). */
static void drop_held_acks_from(struct raft *r, uint64_t index)
{
	struct held_msg *h = r->held.items;
	size_t j = 0;

	for (size_t i = 0; i < r->held.n; i++) {
		struct raft_msg *m = &h[i].msg;
		if (m->type == RAFT_MSG_APPEND_RESP && m->u.append_resp.success &&
		    m->u.append_resp.index >= index) {
			msg_release(m);
			continue;
		}
		h[j++] = h[i];
	}
	r->held.n = j;
}

static void log_truncate(struct raft *r, uint64_t index)
{
	RAFT_ASSERT(index > r->commit);
	core_log_truncate_from(&r->log, index);
	drop_held_acks_from(r, index);
	if (r->stable >= index)
		r->stable = index - 1;
	if (r->persist_inflight && index < r->inflight_trunc_min)
		r->inflight_trunc_min = index;
	if (index < r->unstable_from) {
		/* entries already handed out (maybe on disk) must go from disk too */
		if (r->pending_truncate == 0 || index < r->pending_truncate)
			r->pending_truncate = index;
		r->unstable_from = index;
	}
	r->dirty = true;
}

static int log_append(struct raft *r, const struct raft_entry *e)
{
	int rv = core_log_append(&r->log, e);
	if (rv == RAFT_OK)
		r->dirty = true;
	return rv;
}

/* --- messages ----------------------------------------------------------------------------------- */

static bool msg_is_leader_stream(uint8_t type)
{
	/* A leader may send these before its own log is durable (thesis 10.2.1): they acknowledge
	 * nothing, and the leader counts itself toward commit only once durable. */
	return type == RAFT_MSG_APPEND || type == RAFT_MSG_HEARTBEAT || type == RAFT_MSG_SNAPSHOT ||
	        type == RAFT_MSG_TIMEOUT_NOW || type == RAFT_MSG_READ_INDEX ||
	        type == RAFT_MSG_READ_INDEX_RESP;
}

/* Queues m (taking over its entries array). A message that cannot be queued is dropped: to Raft
 * that is a lost message. */
static void queue_msg(struct raft *r, struct raft_msg *m)
{
	struct held_msg h;

	m->from = r->id;
	if (m->term == 0)
		m->term = r->term;
	h.msg = *m;
	h.dep_seq = msg_is_leader_stream(m->type) ? 0 : current_dep(r);
	if (r->held.n >= RAFT_MAX_HELD_MSGS || vec_push(&r->held, &h, sizeof(h)) != RAFT_OK) {
		logf_(r, 2, "dropping %s to %u: message queue full", raft_msg_type_name(m->type),
		      m->to);
		msg_release(m);
	}
}

/* --- roles -------------------------------------------------------------------------------------- */

static void fail_pending_reads(struct raft *r)
{
	struct pending_read *pr = r->reads.items;

	for (size_t i = 0; i < r->reads.n; i++) {
		if (pr[i].from == 0) {
			struct raft_read_state rs = {pr[i].ctx, 0, RAFT_ENOTLEADER};
			vec_push(&r->read_states, &rs, sizeof(rs));
		} else {
			struct raft_msg m = {.type = RAFT_MSG_READ_INDEX_RESP, .to = pr[i].from};
			m.u.read_index_resp.ctx = pr[i].ctx;
			m.u.read_index_resp.ok = false;
			queue_msg(r, &m);
		}
	}
	r->reads.n = 0;
}

static void pr_reset(struct raft *r, struct progress *pr)
{
	pr->match = 0;
	pr->next = last_index(r) + 1;
	pr->state = PR_PROBE;
	pr->probe_sent = false;
	pr->recent_active = pr->id == r->id;
	pr->vote_responded = false;
	pr->vote_granted = false;
	pr->read_seq_acked = 0;
	pr->infl_start = 0;
	pr->infl_count = 0;
	pr->infl_total_bytes = 0;
	pr->snap_index = 0;
	pr->snap_offset = 0;
	pr->snap_chunk_out = false;
	pr->snap_wait_ticks = 0;
}

static void become_follower(struct raft *r, uint64_t term, uint32_t leader)
{
	bool was_leader = r->role == RAFT_LEADER;

	if (term != r->term)
		set_term_vote(r, term, 0);
	if (was_leader)
		fail_pending_reads(r);
	if (r->role != RAFT_FOLLOWER || r->leader != leader)
		logf_(r, 1, "follower in term %llu, leader %u", (unsigned long long)term, leader);
	r->role = RAFT_FOLLOWER;
	r->leader = leader;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	r->transfer_target = 0;
	r->need_bcast = false;
	reset_randomized_timeout(r);
}

static void send_vote_requests(struct raft *r, bool pre_vote, bool transfer)
{
	for (unsigned i = 0; i < r->n_prs; i++) {
		struct raft_msg m = {.type = RAFT_MSG_VOTE, .to = r->prs[i].id};
		if (r->prs[i].id == r->id)
			continue;
		/* pre-vote asks "would you vote for me in term+1" without bumping our term */
		m.term = pre_vote ? r->term + 1 : r->term;
		m.u.vote.last_log_index = last_index(r);
		m.u.vote.last_log_term = last_term(r);
		m.u.vote.pre_vote = pre_vote;
		m.u.vote.transfer = transfer;
		queue_msg(r, &m);
	}
}

static void become_leader(struct raft *r);

static void maybe_win_election(struct raft *r)
{
	if (quorum(r, pr_granted)) {
		if (r->role == RAFT_PRE_CANDIDATE && r->term >= RAFT_MAX_TERM) {
			become_follower(r, r->term, 0); /* no term after this one (campaign) */
		} else if (r->role == RAFT_PRE_CANDIDATE) {
			/* pre-vote won: now the real election (thesis 9.6) */
			r->role = RAFT_CANDIDATE;
			set_term_vote(r, r->term + 1, r->id);
			for (unsigned i = 0; i < r->n_prs; i++) {
				r->prs[i].vote_responded = r->prs[i].id == r->id;
				r->prs[i].vote_granted = r->prs[i].id == r->id;
			}
			logf_(r, 1, "candidate in term %llu", (unsigned long long)r->term);
			if (quorum(r, pr_granted))
				become_leader(r);
			else
				send_vote_requests(r, false, false);
		} else {
			become_leader(r);
		}
	} else if (!quorum(r, pr_not_rejected)) {
		/* a majority refused: wait for the next timeout as a follower */
		become_follower(r, r->term, 0);
	}
}

static void campaign(struct raft *r, bool transfer)
{
	bool pre = r->cfg.pre_vote && !transfer;

	if (!raft_conf_contains(&r->conf, r->id))
		return;
	if (r->term >= RAFT_MAX_TERM) {
		logf_(r, 2, "term %llu is the last: no election", (unsigned long long)r->term);
		return;
	}
	r->leader = 0;
	r->election_elapsed = 0;
	reset_randomized_timeout(r);
	for (unsigned i = 0; i < r->n_prs; i++) {
		r->prs[i].vote_responded = r->prs[i].id == r->id;
		r->prs[i].vote_granted = r->prs[i].id == r->id;
	}
	if (pre) {
		r->role = RAFT_PRE_CANDIDATE;
		logf_(r, 0, "pre-candidate in term %llu", (unsigned long long)r->term);
	} else {
		/* paper 5.2: increment currentTerm, vote for self, request votes */
		r->role = RAFT_CANDIDATE;
		set_term_vote(r, r->term + 1, r->id);
		logf_(r, 1, "candidate in term %llu%s", (unsigned long long)r->term,
		      transfer ? " (transfer)" : "");
	}
	if (quorum(r, pr_granted)) {
		maybe_win_election(r);
		return;
	}
	send_vote_requests(r, pre, transfer);
}

static void bcast_append(struct raft *r, bool allow_empty);

static void become_leader(struct raft *r)
{
	struct raft_entry noop;

	r->role = RAFT_LEADER;
	r->leader = r->id;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	r->transfer_target = 0;
	r->uncommitted_bytes = 0;
	r->reads.n = 0;
	for (unsigned i = 0; i < r->n_prs; i++)
		pr_reset(r, &r->prs[i]);
	logf_(r, 1, "leader in term %llu at index %llu", (unsigned long long)r->term,
	      (unsigned long long)last_index(r));
	/* paper 8 / thesis 6.4: a no-op opens the term so that entries of earlier terms commit
	 * (they are never committed by counting replicas, 5.4.2) and reads learn the commit index */
	noop.term = r->term;
	noop.index = last_index(r) + 1;
	noop.type = RAFT_ENTRY_NOOP;
	noop.len = 0;
	noop.data = NULL;
	if (log_append(r, &noop) != RAFT_OK)
		logf_(r, 2, "cannot append the term's no-op: out of memory");
	for (unsigned i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->id)
			r->prs[i].next = last_index(r);
	r->need_bcast = true;
}

/* --- replication (leader) ----------------------------------------------------------------------- */

static bool infl_full(const struct raft *r, const struct progress *pr)
{
	return pr->infl_count >= r->cfg.max_inflight_msgs ||
	        pr->infl_total_bytes >= r->cfg.max_inflight_bytes;
}

static void infl_add(struct raft *r, struct progress *pr, uint64_t index, uint64_t bytes)
{
	uint32_t slot = (pr->infl_start + pr->infl_count) % r->cfg.max_inflight_msgs;

	RAFT_ASSERT(pr->infl_count < r->cfg.max_inflight_msgs);
	pr->infl_index[slot] = index;
	pr->infl_bytes[slot] = bytes;
	pr->infl_count++;
	pr->infl_total_bytes += bytes;
}

/* Frees in-flight slots for appends whose last index <= index. */
static void infl_free_to(struct raft *r, struct progress *pr, uint64_t index)
{
	while (pr->infl_count > 0 && pr->infl_index[pr->infl_start] <= index) {
		pr->infl_total_bytes -= pr->infl_bytes[pr->infl_start];
		pr->infl_start = (pr->infl_start + 1) % r->cfg.max_inflight_msgs;
		pr->infl_count--;
	}
}

static void infl_free_first(struct raft *r, struct progress *pr)
{
	if (pr->infl_count > 0)
		infl_free_to(r, pr, pr->infl_index[pr->infl_start]);
}

/* Leaves pr in state with an empty in-flight window, sending again from match + 1. */
static void pr_become(struct progress *pr, enum progress_state state)
{
	pr->state = state;
	pr->probe_sent = false;
	pr->infl_start = 0;
	pr->infl_count = 0;
	pr->infl_total_bytes = 0;
	pr->next = pr->match + 1;
}

static void send_snapshot_chunk(struct raft *r, struct progress *pr)
{
	struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT, .to = pr->id};
	uint64_t left;

	if (pr->snap_index != r->snap.index) {
		/* a newer snapshot replaced the one being sent: restart with it */
		pr->snap_index = r->snap.index;
		pr->snap_offset = 0;
	}
	left = r->snap.size - pr->snap_offset;
	m.u.snapshot.meta = r->snap;
	m.u.snapshot.offset = pr->snap_offset;
	m.u.snapshot.len =
	        (uint32_t)(left < r->cfg.snapshot_chunk_bytes ? left : r->cfg.snapshot_chunk_bytes);
	m.u.snapshot.last = pr->snap_offset + m.u.snapshot.len == r->snap.size;
	m.u.snapshot.data = NULL; /* filled by the transport */
	pr->snap_chunk_out = true;
	pr->snap_wait_ticks = 0;
	queue_msg(r, &m);
}

static void start_snapshot(struct raft *r, struct progress *pr)
{
	if (r->snap.index == 0) {
		logf_(r, 2, "follower %u needs entries before %llu but there is no snapshot",
		      pr->id, (unsigned long long)core_log_first_index(&r->log));
		return;
	}
	logf_(r, 1, "sending snapshot %llu to %u", (unsigned long long)r->snap.index, pr->id);
	pr->state = PR_SNAPSHOT;
	pr->snap_index = r->snap.index;
	pr->snap_offset = 0;
	pr->infl_count = 0;
	pr->infl_start = 0;
	pr->infl_total_bytes = 0;
	send_snapshot_chunk(r, pr);
}

/* Sends the next AppendEntries to pr if its state allows; returns true if a message went out. */
static bool send_append(struct raft *r, struct progress *pr, bool allow_empty)
{
	struct raft_msg m = {.type = RAFT_MSG_APPEND, .to = pr->id};
	uint64_t prev = pr->next - 1, prev_term, last = last_index(r), bytes = 0;
	uint32_t n = 0;

	if (pr->state == PR_SNAPSHOT)
		return false;
	if (pr->state == PR_PROBE && pr->probe_sent)
		return false;
	if (pr->state == PR_REPLICATE && infl_full(r, pr))
		return false;
	if (prev < r->log.base_index) {
		start_snapshot(r, pr);
		return true;
	}
	prev_term = core_log_term(&r->log, prev);
	/* gather entries next.., at least one, at most max_msg_bytes of them (and at most
	 * RAFT_MAX_MSG_ENTRIES: a run of empty entries would otherwise make one the codec
	 * refuses, and that follower would never catch up) */
	for (uint64_t i = pr->next; i <= last && n < RAFT_MAX_MSG_ENTRIES; i++) {
		const struct raft_entry *e = core_log_get(&r->log, i);
		if (n > 0 && bytes + e->len > r->cfg.max_msg_bytes)
			break;
		bytes += e->len;
		n++;
	}
	if (n == 0 && !allow_empty)
		return false;
	if (n > 0) {
		m.u.append.entries = malloc(n * sizeof(struct raft_entry));
		if (!m.u.append.entries)
			return false;
		for (uint32_t k = 0; k < n; k++) {
			m.u.append.entries[k] = *core_log_get(&r->log, pr->next + k);
			raft_buf_ref(m.u.append.entries[k].data);
		}
	}
	m.u.append.n_entries = n;
	m.u.append.prev_index = prev;
	m.u.append.prev_term = prev_term;
	m.u.append.commit = r->commit;
	if (pr->state == PR_REPLICATE) {
		if (n > 0) {
			uint64_t sent_last = pr->next + n - 1;
			infl_add(r, pr, sent_last, bytes + n);
			pr->next = sent_last + 1;
		}
	} else {
		pr->probe_sent = true;
	}
	queue_msg(r, &m);
	return true;
}

static void bcast_append(struct raft *r, bool allow_empty)
{
	for (unsigned i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];
		if (pr->id == r->id)
			continue;
		/* keep the pipeline full: several messages while the window allows */
		if (!send_append(r, pr, allow_empty))
			continue;
		while (pr->state == PR_REPLICATE && pr->next <= last_index(r) &&
		       send_append(r, pr, false))
			;
	}
}

static void send_heartbeat(struct raft *r, struct progress *pr)
{
	struct raft_msg m = {.type = RAFT_MSG_HEARTBEAT, .to = pr->id};

	/* a follower may not hold the leader's whole committed prefix: only tell it what it is
	 * known to match (etcd's rule) */
	m.u.heartbeat.commit = pr->match < r->commit ? pr->match : r->commit;
	m.u.heartbeat.read_seq = r->read_seq;
	queue_msg(r, &m);
}

static void bcast_heartbeat(struct raft *r)
{
	for (unsigned i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->id)
			send_heartbeat(r, &r->prs[i]);
}

static void release_confirmed_reads(struct raft *r);

static bool committed_in_term(const struct raft *r)
{
	return core_log_term(&r->log, r->commit) == r->term ||
	        (r->commit == r->snap.index && r->snap.term == r->term && r->commit > 0);
}

/* Paper 5.3/5.4.2: commit the highest index replicated on a majority, but by counting replicas
 * only if its entry is of the current term (Figure 8). */
static void maybe_commit(struct raft *r)
{
	uint64_t q = quorum_value(r, pr_match);

	/* RAFT_MUTANT_COMMIT_OLD_TERMS: a broken rule, only in tests/test_sim_mutant */
	if (q <= r->commit ||
	    (core_log_term(&r->log, q) != r->term && !RAFT_MUTANT_ON(RAFT_MUTANT_COMMIT_OLD_TERMS)))
		return;
	for (uint64_t i = r->commit + 1; i <= q; i++) {
		const struct raft_entry *e = core_log_get(&r->log, i);
		if (e && e->term == r->term)
			r->uncommitted_bytes -=
			        e->len < r->uncommitted_bytes ? e->len : r->uncommitted_bytes;
	}
	/* Followers learn the new commit index from the next AppendEntries or heartbeat; nothing
	 * is sent only to carry it (at one client that doubled the messages and wake-ups of each
	 * write). A follower's read gets it sooner: handle_read_index_resp. */
	r->commit = q;
}

static void maybe_send_timeout_now(struct raft *r, struct progress *pr)
{
	if (r->transfer_target == pr->id && pr->match == last_index(r)) {
		struct raft_msg m = {.type = RAFT_MSG_TIMEOUT_NOW, .to = pr->id};
		logf_(r, 1, "transfer: %u is up to date, telling it to campaign", pr->id);
		queue_msg(r, &m);
	}
}

/* --- reads -------------------------------------------------------------------------------------- */

static void answer_read(struct raft *r, const struct pending_read *rd)
{
	if (rd->from == 0) {
		struct raft_read_state rs = {rd->ctx, rd->index, RAFT_OK};
		vec_push(&r->read_states, &rs, sizeof(rs));
	} else {
		struct raft_msg m = {.type = RAFT_MSG_READ_INDEX_RESP, .to = rd->from};
		m.u.read_index_resp.ctx = rd->ctx;
		m.u.read_index_resp.index = rd->index;
		m.u.read_index_resp.ok = true;
		queue_msg(r, &m);
	}
}

/*
 * Whether a majority of ids has shown, since read rd began, that it was still in this term,
 * counting this node, rd's requester and every node that answered rd's heartbeat round.
 *
 * The requester counts without a heartbeat: its ReadIndex request left after the read began,
 * in this term (raft_step drops requests of older terms). Why that is enough: the index of rd
 * is the commit index when the round started, after this term's first entry committed, so it
 * covers every write committed in this term or before it (leader completeness). A write of a
 * later term that completed before the read began needs a leader elected before that, by a
 * majority; a majority that has shown it was in this term after the read began contains a node
 * that was in this term then, so it had not voted in a later term before (terms only grow).
 * In a 3-node cluster this node and the requester are a majority: a follower's read is
 * answered at once, without a round of heartbeats to the third node.
 */
static bool ids_confirm_read(struct raft *r, const uint32_t *ids, unsigned n,
                             const struct pending_read *rd)
{
	unsigned yes = 0;

	if (n == 0)
		return true;
	for (unsigned i = 0; i < n; i++) {
		struct progress *pr = pr_find(r, ids[i]);

		if (ids[i] == r->id || ids[i] == rd->from || (pr && pr->read_seq_acked >= rd->seq))
			yes++;
	}
	return yes >= n / 2 + 1;
}

/* Thesis 6.4: a read may be served at the commit index recorded when its round started, once
 * a majority has shown that this node was still leader after the read began: the answers to a
 * heartbeat round started then, and the requester's own message (ids_confirm_read). */
static void release_confirmed_reads(struct raft *r)
{
	uint64_t confirmed = quorum_value(r, pr_read_seq);
	struct pending_read *rd = r->reads.items;
	size_t j = 0;

	for (size_t i = 0; i < r->reads.n; i++) {
		if (rd[i].seq != 0 &&
		    (rd[i].seq <= confirmed ||
		     (rd[i].from != 0 && ids_confirm_read(r, r->conf.ids, r->conf.n, &rd[i]) &&
		      ids_confirm_read(r, r->conf.old_ids, r->conf.n_old, &rd[i]))))
			answer_read(r, &rd[i]);
		else
			rd[j++] = rd[i];
	}
	r->reads.n = j;
}

/* Starts one heartbeat round for every read that has none yet (reads of one loop turn share it). */
static void start_read_round(struct raft *r)
{
	struct pending_read *rd = r->reads.items;
	bool any = false;

	if (r->role != RAFT_LEADER || !committed_in_term(r))
		return; /* thesis 6.4 step 1: wait for this term's no-op to commit */
	for (size_t i = 0; i < r->reads.n; i++) {
		if (rd[i].seq == 0) {
			if (!any)
				r->read_seq++;
			any = true;
			rd[i].seq = r->read_seq;
			rd[i].index = r->commit;
		}
	}
	if (!any)
		return;
	/* a single-node cluster, and a follower's read in a 3-node one, are confirmed at once */
	release_confirmed_reads(r);
	for (size_t i = 0; i < r->reads.n; i++) {
		if (rd[i].seq == r->read_seq) {
			bcast_heartbeat(r); /* some read of this round still needs the answers */
			break;
		}
	}
}

static int add_read(struct raft *r, uint64_t ctx, uint32_t from)
{
	struct pending_read rd = {ctx, from, 0, 0};

	if (r->reads.n >= RAFT_MAX_PENDING_READS)
		return RAFT_EBUSY;
	return vec_push(&r->reads, &rd, sizeof(rd));
}

/* --- message handlers --------------------------------------------------------------------------- */

static void handle_vote(struct raft *r, const struct raft_msg *m)
{
	const struct raft_msg_vote *v = &m->u.vote;
	struct raft_msg resp = {.type = RAFT_MSG_VOTE_RESP, .to = m->from};
	bool can_vote, up_to_date;

	/* paper 5.2: at most one vote per term, first come first served; pre-votes bind nothing */
	can_vote = r->vote == m->from || (r->vote == 0 && r->leader == 0) ||
	        (v->pre_vote && m->term > r->term);
	/* paper 5.4.1: only for a candidate whose log is at least as up-to-date as ours */
	up_to_date = v->last_log_term > last_term(r) ||
	        (v->last_log_term == last_term(r) && v->last_log_index >= last_index(r));
	resp.u.vote_resp.pre_vote = v->pre_vote;
	if (can_vote && up_to_date) {
		resp.term = m->term;
		resp.u.vote_resp.granted = true;
		if (!v->pre_vote) {
			r->election_elapsed = 0;
			set_term_vote(r, r->term, m->from);
		}
	} else {
		resp.term = r->term;
		resp.u.vote_resp.granted = false;
	}
	queue_msg(r, &resp);
}

static void handle_vote_resp(struct raft *r, const struct raft_msg *m)
{
	struct progress *pr = pr_find(r, m->from);
	bool pre = m->u.vote_resp.pre_vote;

	if ((pre && r->role != RAFT_PRE_CANDIDATE) || (!pre && r->role != RAFT_CANDIDATE))
		return;
	if (pre && m->u.vote_resp.granted && m->term != r->term + 1)
		return;
	if (!pre && m->term != r->term)
		return;
	if (!pr || pr->vote_responded)
		return;
	pr->vote_responded = true;
	pr->vote_granted = m->u.vote_resp.granted;
	maybe_win_election(r);
}

static void reply_append(struct raft *r, uint32_t to, bool success, uint64_t index,
                         uint64_t hint_index, uint64_t hint_term)
{
	struct raft_msg m = {.type = RAFT_MSG_APPEND_RESP, .to = to};

	m.u.append_resp.success = success;
	m.u.append_resp.index = index;
	m.u.append_resp.hint_index = hint_index;
	m.u.append_resp.hint_term = hint_term;
	m.u.append_resp.last_index = last_index(r);
	queue_msg(r, &m);
}

static void follower_commit_to(struct raft *r, uint64_t commit)
{
	if (commit > last_index(r))
		commit = last_index(r);
	if (commit > r->commit)
		r->commit = commit;
}

/* Paper Figure 2, AppendEntries receiver implementation. */
static void handle_append(struct raft *r, const struct raft_msg *m)
{
	const struct raft_msg_append *a = &m->u.append;
	uint64_t last_new;

	if (a->prev_index < r->commit) {
		/* everything up to commit already matches: say so, the leader moves on */
		reply_append(r, m->from, true, r->commit, 0, 0);
		return;
	}
	/* 2. reply false if log doesn't contain an entry at prevLogIndex matching prevLogTerm */
	if (core_log_term(&r->log, a->prev_index) != a->prev_term ||
	    a->prev_index > last_index(r)) {
		uint64_t hint = a->prev_index < last_index(r) ? a->prev_index : last_index(r);
		hint = core_log_find_conflict_by_term(&r->log, hint, a->prev_term);
		reply_append(r, m->from, false, a->prev_index, hint, core_log_term(&r->log, hint));
		return;
	}
	for (uint32_t i = 0; i < a->n_entries; i++) {
		const struct raft_entry *e = &a->entries[i];
		if (e->index <= last_index(r)) {
			if (core_log_term(&r->log, e->index) == e->term)
				continue;
			/* 3. an existing entry conflicts: delete it and all that follow */
			if (e->index <= r->commit) {
				logf_(r, 2, "refusing to truncate committed index %llu",
				      (unsigned long long)e->index);
				return;
			}
			log_truncate(r, e->index);
		}
		/* 4. append any new entries not already in the log */
		if (log_append(r, e) != RAFT_OK)
			return; /* out of memory: no acknowledgement, the leader retries */
	}
	last_new = a->prev_index + a->n_entries;
	if (last_new > r->leader_match)
		r->leader_match = last_new;
	/* 5. commitIndex = min(leaderCommit, index of last new entry) */
	follower_commit_to(r, a->commit < last_new ? a->commit : last_new);
	reply_append(r, m->from, true, last_new, 0, 0);
}

/*
 * A follower's answer says its log ends at `last`. Below the match recorded for it, the follower
 * has lost entries it acknowledged: its disk lost a synced tail (a last record damaged after it
 * was synced cannot be told from a torn write, and recovery cuts it off, raftfs(5)), or it
 * restarted from an older state. Paper Figure 2 has matchIndex "increase monotonically", which
 * holds where acknowledged entries stay on stable storage; here they did not, and a leader that
 * kept the old match would never send them again (it takes every rejection at or below its match
 * for a stale answer, and heartbeats carry no entries): the follower sat at its old commit until
 * the leader changed. So the match goes down to `last` and the follower is probed from there.
 *
 * Why that is safe (Figure 3):
 *  - The commit index never goes down: maybe_commit only raises it, and nothing here touches
 *    it. What is committed stays committed; applied entries are never taken back.
 *  - A lower match takes a replica out of the commit count (quorum_value over the matches), so
 *    no entry is committed on the strength of a copy that is gone (before, the lost copy still
 *    counted: test_a_lost_acknowledgement_is_not_counted_for_commit). The commit rule of 5.4.2
 *    is unchanged.
 *  - The new match is still true, a lower bound of what the follower holds of this leader's
 *    log: answers of this term come from a follower that took entries of this term only from
 *    this leader (Election Safety), so its log up to `last` is the prefix of what it had when
 *    it acknowledged the old match (a lost tail is a suffix; Log Matching does the rest). An
 *    answer that is merely old (one that a reordering network delivers after later ones; our
 *    TCP links deliver a node's messages in order, and a reconnecting node's new connection
 *    closes its old one) names a log end the follower has since passed: the match is then only
 *    pessimistic, and the probe that follows raises it again.
 *  - Heartbeats tell a follower at most its match as commit index (send_heartbeat), so a
 *    lower match also keeps the leader from telling it to commit what it no longer holds.
 * Returns true when the match was lowered (and a probe sent).
 */
static bool follower_log_ends(struct raft *r, struct progress *pr, uint64_t last)
{
	if (last >= pr->match || RAFT_MUTANT_ON(RAFT_MUTANT_KEEP_MATCH))
		return false;
	logf_(r, 2,
	      "follower %u's log ends at %llu, below the %llu it acknowledged: sending from there",
	      pr->id, (unsigned long long)last, (unsigned long long)pr->match);
	pr->match = last;
	if (pr->state == PR_SNAPSHOT)
		return true; /* the snapshot being sent brings it past what it lost */
	pr_become(pr, PR_PROBE); /* next = last + 1 */
	send_append(r, pr, true);
	return true;
}

static void handle_append_resp(struct raft *r, struct progress *pr, const struct raft_msg *m)
{
	const struct raft_msg_append_resp *a = &m->u.append_resp;

	pr->recent_active = true;
	if (!a->success) {
		uint64_t next;
		if (follower_log_ends(r, pr, a->last_index))
			return;
		if (pr->state == PR_REPLICATE) {
			if (a->index <= pr->match)
				return; /* stale */
			pr_become(pr, PR_PROBE);
		} else if (pr->state == PR_PROBE) {
			if (a->index != pr->next - 1)
				return; /* stale */
		} else {
			return;
		}
		/* fast back-off: skip every entry that cannot match the follower's hint */
		next = a->hint_index + 1;
		if (a->hint_term > 0)
			next = core_log_find_conflict_by_term(&r->log, a->hint_index,
			                                      a->hint_term) +
			        1;
		if (next > a->index)
			next = a->index; /* always make progress */
		if (next <= pr->match)
			next = pr->match + 1;
		if (next < 1)
			next = 1;
		pr->next = next;
		pr->probe_sent = false;
		send_append(r, pr, true);
		return;
	}
	if (a->index > last_index(r))
		return; /* impossible in this term: ignore */
	if (a->index > pr->match) {
		pr->match = a->index;
		if (pr->next < pr->match + 1)
			pr->next = pr->match + 1;
		if (pr->state == PR_PROBE)
			pr_become(pr, PR_REPLICATE);
		else if (pr->state == PR_REPLICATE)
			infl_free_to(r, pr, pr->match);
		maybe_commit(r);
		maybe_send_timeout_now(r, pr);
	} else if (pr->state == PR_PROBE) {
		pr->probe_sent = false;
	}
	while (pr->state == PR_REPLICATE && pr->next <= last_index(r) && send_append(r, pr, false))
		;
	if (pr->state == PR_PROBE)
		send_append(r, pr, false);
}

static void handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg resp = {.type = RAFT_MSG_HEARTBEAT_RESP, .to = m->from};

	follower_commit_to(r, m->u.heartbeat.commit);
	resp.u.heartbeat_resp.read_seq = m->u.heartbeat.read_seq;
	resp.u.heartbeat_resp.last_index = last_index(r);
	queue_msg(r, &resp);
}

static void handle_heartbeat_resp(struct raft *r, struct progress *pr, const struct raft_msg *m)
{
	pr->recent_active = true;
	if (m->u.heartbeat_resp.read_seq > pr->read_seq_acked) {
		pr->read_seq_acked = m->u.heartbeat_resp.read_seq;
		release_confirmed_reads(r);
	}
	/* an idle cluster sends nothing but heartbeats: their answers must tell a lost tail too */
	if (follower_log_ends(r, pr, m->u.heartbeat_resp.last_index))
		return;
	if (pr->state == PR_PROBE)
		pr->probe_sent = false;
	else if (pr->state == PR_REPLICATE && infl_full(r, pr))
		infl_free_first(r, pr); /* a lost append would otherwise stall the window */
	if (pr->match < last_index(r))
		send_append(r, pr, true);
}

static void reply_snapshot(struct raft *r, uint32_t to, uint64_t index, uint64_t next_offset,
                           bool done, bool reject)
{
	struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT_RESP, .to = to};

	m.u.snapshot_resp.index = index;
	m.u.snapshot_resp.next_offset = next_offset;
	m.u.snapshot_resp.done = done;
	m.u.snapshot_resp.reject = reject;
	queue_msg(r, &m);
}

/* Paper 7 / thesis 5: InstallSnapshot receiver, chunk by chunk (resumable: the response says
 * how many bytes are held, and the leader continues from there). */
static void handle_snapshot(struct raft *r, const struct raft_msg *m)
{
	const struct raft_msg_snapshot *s = &m->u.snapshot;
	bool same;

	if (s->meta.index <= r->commit) {
		/* already have everything it covers */
		reply_snapshot(r, m->from, s->meta.index, s->meta.size, true, false);
		return;
	}
	if (s->meta.index <= last_index(r) &&
	    core_log_term(&r->log, s->meta.index) == s->meta.term) {
		/* paper 7: "if existing log entry has same index and term as snapshot's last
		 * included entry, retain log entries following it": this log already holds what
		 * the snapshot covers, and may hold acknowledged entries after it, which an
		 * install would lose. Commit up to it instead (log matching makes it safe). */
		follower_commit_to(r, s->meta.index);
		if (s->meta.index > r->leader_match)
			r->leader_match = s->meta.index;
		reply_snapshot(r, m->from, s->meta.index, s->meta.size, true, false);
		return;
	}
	if (s->len > 0 && !s->data)
		return;
	if (s->len > s->meta.size || s->offset > s->meta.size - s->len || s->meta.conf.n == 0 ||
	    (s->last && s->offset + s->len != s->meta.size)) {
		/* inside the image (an end past 2^64 must not wrap into it), and a last chunk
		 * must end it: storage would refuse it, and stop */
		reply_snapshot(r, m->from, s->meta.index, 0, false, true);
		return;
	}
	same = r->in_snap_active && r->in_snap.index == s->meta.index &&
	        r->in_snap.term == s->meta.term && r->in_snap.size == s->meta.size &&
	        r->in_snap.crc == s->meta.crc;
	if (!same) {
		if (s->offset != 0) {
			reply_snapshot(r, m->from, s->meta.index, 0, false, false);
			return;
		}
		if (r->chunk_pending)
			return; /* still handing out a chunk of another snapshot: leader retries */
		r->in_snap_active = true;
		r->in_snap = s->meta;
		r->in_snap_offset = 0;
	}
	if (s->offset != r->in_snap_offset) {
		reply_snapshot(r, m->from, s->meta.index, r->in_snap_offset, false, false);
		return;
	}
	if (r->chunk_pending)
		return; /* one chunk per persistence round; the leader resends after a timeout */
	r->chunk_data = raft_buf_alloc(s->len);
	if (!r->chunk_data)
		return;
	if (s->len)
		memcpy(r->chunk_data, s->data, s->len);
	r->chunk_pending = true;
	r->chunk_offset = s->offset;
	r->chunk_len = s->len;
	r->chunk_last = s->last || s->offset + s->len == s->meta.size;
	r->in_snap_offset += s->len;
	r->dirty = true;
	if (r->chunk_last) {
		/* the snapshot replaces the whole log; entries are delivered again only after the
		 * install is durable and the application restored it (restore_pending) */
		logf_(r, 1, "installing snapshot %llu from %u", (unsigned long long)s->meta.index,
		      m->from);
		drop_held_acks_from(r, r->commit + 1);
		if (r->persist_inflight && r->commit + 1 < r->inflight_trunc_min)
			r->inflight_trunc_min = r->commit + 1;
		core_log_reset(&r->log, s->meta.index, s->meta.term);
		if (r->stable > r->commit)
			r->stable = r->commit;
		r->unstable_from = s->meta.index + 1;
		r->pending_truncate = 0; /* the install drops the whole log on disk */
		r->commit = s->meta.index;
		r->leader_match = s->meta.index;
		r->restore_pending = true;
		r->in_snap_active = false;
		r->conf = s->meta.conf;
	}
	reply_snapshot(r, m->from, s->meta.index, r->in_snap_offset, r->chunk_last, false);
}

static void handle_snapshot_resp(struct raft *r, struct progress *pr, const struct raft_msg *m)
{
	const struct raft_msg_snapshot_resp *s = &m->u.snapshot_resp;

	pr->recent_active = true;
	if (pr->state != PR_SNAPSHOT || s->index != pr->snap_index)
		return;
	pr->snap_chunk_out = false;
	if (s->done) {
		if (s->index > pr->match)
			pr->match = s->index;
		pr_become(pr, PR_PROBE);
		maybe_commit(r);
		send_append(r, pr, true);
		return;
	}
	pr->snap_offset = s->reject ? 0 : s->next_offset;
	if (pr->snap_offset > r->snap.size)
		pr->snap_offset = 0;
	send_snapshot_chunk(r, pr);
}

static void handle_read_index(struct raft *r, const struct raft_msg *m)
{
	if (r->role != RAFT_LEADER || add_read(r, m->u.read_index.ctx, m->from) != RAFT_OK) {
		struct raft_msg resp = {.type = RAFT_MSG_READ_INDEX_RESP, .to = m->from};
		resp.u.read_index_resp.ctx = m->u.read_index.ctx;
		resp.u.read_index_resp.ok = false;
		queue_msg(r, &resp);
	}
}

static void handle_read_index_resp(struct raft *r, const struct raft_msg *m)
{
	struct raft_read_state rs;

	rs.ctx = m->u.read_index_resp.ctx;
	rs.index = m->u.read_index_resp.index;
	rs.status = m->u.read_index_resp.ok ? RAFT_OK : RAFT_ENOTLEADER;
	/* The index is the leader's commit index, so what this log holds of it in common with the
	 * leader's is committed: the read need not wait for the next heartbeat to learn it. */
	if (rs.status == RAFT_OK && r->role == RAFT_FOLLOWER && m->from == r->leader)
		follower_commit_to(r, rs.index < r->leader_match ? rs.index : r->leader_match);
	vec_push(&r->read_states, &rs, sizeof(rs));
}

static bool in_lease(const struct raft *r)
{
	/* check-quorum: a follower that heard from a live leader within the election timeout
	 * ignores vote requests, so a partitioned node cannot disrupt a working cluster */
	return r->cfg.check_quorum && r->leader != 0 && r->election_elapsed < r->cfg.election_ticks;
}

/* Paper Figure 2, "rules for all servers": the term comparison common to every message.
 * Returns false when the message is to be dropped. */
static bool step_term(struct raft *r, const struct raft_msg *m)
{
	bool vote_req = m->type == RAFT_MSG_VOTE;

	if (m->term > r->term) {
		if (vote_req && !m->u.vote.transfer && in_lease(r))
			return false;
		if (vote_req && m->u.vote.pre_vote)
			return true; /* a pre-vote does not move our term */
		if (m->type == RAFT_MSG_VOTE_RESP && m->u.vote_resp.pre_vote &&
		    m->u.vote_resp.granted)
			return true; /* granted pre-votes carry the term asked for */
		if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
		    m->type == RAFT_MSG_SNAPSHOT)
			become_follower(r, m->term, m->from);
		else
			become_follower(r, m->term, 0);
		return true;
	}
	if (m->term < r->term) {
		if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
		    (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)) {
			/* a stale leader (maybe back from a partition) learns our term and steps
			 * down; otherwise, with pre-vote, nobody would ever raise its term */
			reply_append(r, m->from, false, 0, 0, 0);
		} else if (vote_req && m->u.vote.pre_vote) {
			struct raft_msg resp = {.type = RAFT_MSG_VOTE_RESP, .to = m->from};
			resp.u.vote_resp.pre_vote = true;
			resp.u.vote_resp.granted = false;
			queue_msg(r, &resp);
		}
		return false;
	}
	return true;
}

/* Entries that follow prev_index one by one, with terms from prev_term on that never fall and
 * never pass the message's term (a leader's log holds no entry of a later term than its own),
 * and no term 0 (no leader has it). */
static bool append_valid(const struct raft_msg *m)
{
	const struct raft_msg_append *a = &m->u.append;
	uint64_t prev = a->prev_term;

	if (a->n_entries > 0 && !a->entries)
		return false;
	if ((a->prev_index == 0) != (a->prev_term == 0) || a->prev_term > m->term ||
	    a->n_entries > UINT64_MAX - a->prev_index)
		return false;
	for (uint32_t i = 0; i < a->n_entries; i++) {
		const struct raft_entry *e = &a->entries[i];
		if (e->index != a->prev_index + 1 + i || e->term == 0 || e->term < prev ||
		    e->term > m->term || (e->len > 0 && !e->data))
			return false;
		prev = e->term;
	}
	return true;
}

/* raft.h: messages with impossible fields are dropped. Beyond the addressing, what only a
 * broken or forged peer sends: a term above RAFT_MAX_TERM, a leader's message of term 0, an append whose entries cannot be
 * a leader's log, a snapshot of term 0 or of a later term than its sender's, a candidate with
 * log entries of a later term than its own. */
static bool msg_valid(const struct raft *r, const struct raft_msg *m)
{
	if (m->type <= 0 || m->type >= RAFT_MSG_TYPE_COUNT || m->to != r->id || m->from == r->id ||
	    m->from == 0 || m->term > RAFT_MAX_TERM)
		return false;
	switch (m->type) {
	case RAFT_MSG_APPEND:
		return m->term > 0 && append_valid(m);
	case RAFT_MSG_HEARTBEAT:
	case RAFT_MSG_TIMEOUT_NOW:
		return m->term > 0;
	case RAFT_MSG_SNAPSHOT:
		return m->term > 0 && m->u.snapshot.meta.index > 0 && m->u.snapshot.meta.term > 0 &&
		        m->u.snapshot.meta.term <= m->term;
	case RAFT_MSG_VOTE:
		return m->term > 0 && m->u.vote.last_log_term <= m->term &&
		        (m->u.vote.last_log_index == 0) == (m->u.vote.last_log_term == 0);
	default:
		return true;
	}
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
	struct progress *pr;

	if (!msg_valid(r, m) || !raft_conf_contains(&r->conf, m->from))
		return RAFT_EINVAL;
	if (!step_term(r, m))
		return RAFT_OK;
	pr = pr_find(r, m->from);
	switch (m->type) {
	case RAFT_MSG_VOTE:
		handle_vote(r, m);
		break;
	case RAFT_MSG_VOTE_RESP:
		handle_vote_resp(r, m);
		break;
	case RAFT_MSG_APPEND:
	case RAFT_MSG_HEARTBEAT:
	case RAFT_MSG_SNAPSHOT:
		if (r->role == RAFT_LEADER) {
			logf_(r, 2, "%s from %u in my own term %llu: ignored",
			      raft_msg_type_name(m->type), m->from, (unsigned long long)r->term);
			break;
		}
		if (r->role != RAFT_FOLLOWER || r->leader != m->from)
			become_follower(r, r->term, m->from);
		r->election_elapsed = 0;
		if (m->type == RAFT_MSG_APPEND)
			handle_append(r, m);
		else if (m->type == RAFT_MSG_HEARTBEAT)
			handle_heartbeat(r, m);
		else
			handle_snapshot(r, m);
		break;
	case RAFT_MSG_APPEND_RESP:
		if (r->role == RAFT_LEADER && pr)
			handle_append_resp(r, pr, m);
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		if (r->role == RAFT_LEADER && pr)
			handle_heartbeat_resp(r, pr, m);
		break;
	case RAFT_MSG_SNAPSHOT_RESP:
		if (r->role == RAFT_LEADER && pr)
			handle_snapshot_resp(r, pr, m);
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		if (r->role == RAFT_FOLLOWER && r->leader == m->from)
			campaign(r, true);
		break;
	case RAFT_MSG_READ_INDEX:
		handle_read_index(r, m);
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		if (r->role == RAFT_FOLLOWER)
			handle_read_index_resp(r, m);
		break;
	}
	return RAFT_OK;
}

/* --- ticks -------------------------------------------------------------------------------------- */

static void tick_leader(struct raft *r)
{
	r->heartbeat_elapsed++;
	r->election_elapsed++;
	if (r->election_elapsed >= r->cfg.election_ticks) {
		r->election_elapsed = 0;
		if (r->cfg.check_quorum && !quorum(r, pr_active)) {
			logf_(r, 1,
			      "no contact with a majority for an election timeout: stepping down");
			become_follower(r, r->term, 0);
			return;
		}
		for (unsigned i = 0; i < r->n_prs; i++)
			r->prs[i].recent_active = r->prs[i].id == r->id;
	}
	if (r->transfer_target && ++r->transfer_elapsed >= r->cfg.election_ticks) {
		logf_(r, 1, "transfer to %u timed out", r->transfer_target);
		r->transfer_target = 0;
	}
	if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
		r->heartbeat_elapsed = 0;
		bcast_heartbeat(r);
	}
	for (unsigned i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];
		if (pr->state == PR_SNAPSHOT && pr->snap_chunk_out &&
		    ++pr->snap_wait_ticks >= r->cfg.election_ticks)
			send_snapshot_chunk(r, pr); /* lost chunk or response: resend it */
	}
}

int raft_tick(struct raft *r)
{
	if (r->role == RAFT_LEADER) {
		tick_leader(r);
		return RAFT_OK;
	}
	r->election_elapsed++;
	if (r->election_elapsed >= r->randomized_timeout)
		campaign(r, false);
	return RAFT_OK;
}

/* --- the application's calls -------------------------------------------------------------------- */

int raft_propose(struct raft *r, void *buf, uint32_t len, uint64_t *index, uint64_t *term)
{
	struct raft_entry e;
	int rv;

	if (r->role != RAFT_LEADER) {
		rv = RAFT_ENOTLEADER;
		goto err_unref;
	}
	if (r->transfer_target) {
		rv = RAFT_EBUSY;
		goto err_unref;
	}
	if (len > r->cfg.max_entry_bytes) {
		rv = RAFT_ETOOBIG;
		goto err_unref;
	}
	if (r->uncommitted_bytes > 0 && r->uncommitted_bytes + len > r->cfg.max_uncommitted_bytes) {
		rv = RAFT_EBUSY;
		goto err_unref;
	}
	e.term = r->term;
	e.index = last_index(r) + 1;
	e.type = RAFT_ENTRY_NORMAL;
	e.len = len;
	e.data = buf;
	rv = log_append(r, &e);
	if (rv != RAFT_OK)
		goto err_unref;
	raft_buf_unref(buf); /* the log holds its own reference now */
	r->uncommitted_bytes += len;
	r->need_bcast = true;
	if (index)
		*index = e.index;
	if (term)
		*term = e.term;
	return RAFT_OK;

err_unref:
	raft_buf_unref(buf);
	return rv;
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
	if (r->role == RAFT_LEADER)
		return add_read(r, ctx, 0);
	if (r->leader == 0)
		return RAFT_ENOTLEADER;
	{
		struct raft_msg m = {.type = RAFT_MSG_READ_INDEX, .to = r->leader};
		m.u.read_index.ctx = ctx;
		queue_msg(r, &m);
	}
	return RAFT_OK;
}

int raft_transfer(struct raft *r, uint32_t target)
{
	struct progress *pr;

	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	if (r->transfer_target)
		return RAFT_EBUSY;
	if (target == 0) {
		uint64_t best = 0;
		for (unsigned i = 0; i < r->n_prs; i++) {
			if (r->prs[i].id != r->id && r->prs[i].match >= best) {
				best = r->prs[i].match;
				target = r->prs[i].id;
			}
		}
	}
	pr = pr_find(r, target);
	if (!pr || target == r->id)
		return RAFT_EINVAL;
	/* thesis 3.10: stop accepting proposals, bring the target up to date, then TimeoutNow */
	r->transfer_target = target;
	r->transfer_elapsed = 0;
	logf_(r, 1, "transferring leadership to %u", target);
	if (pr->match == last_index(r)) {
		maybe_send_timeout_now(r, pr);
	} else {
		if (pr->state == PR_PROBE)
			pr->probe_sent = false; /* do not wait for a heartbeat to catch it up */
		send_append(r, pr, true);
	}
	return RAFT_OK;
}

int raft_snapshot_taken(struct raft *r, uint64_t index, uint64_t size, uint32_t crc)
{
	uint64_t term = raft_term_at(r, index);

	if (index > r->applied || index < r->snap.index || term == 0)
		return RAFT_EINVAL;
	r->snap.index = index;
	r->snap.term = term;
	r->snap.conf = r->conf;
	r->snap.size = size;
	r->snap.crc = crc;
	if (index > r->cfg.snapshot_trailing) {
		uint64_t to = index - r->cfg.snapshot_trailing;
		if (to > r->log.base_index)
			core_log_compact_to(&r->log, to);
	}
	return RAFT_OK;
}

/* --- updates ------------------------------------------------------------------------------------ */

static bool releasable(const struct raft *r)
{
	const struct held_msg *h = r->held.items;

	for (size_t i = 0; i < r->held.n; i++)
		if (h[i].dep_seq <= r->persisted_seq)
			return true;
	return false;
}

static uint64_t apply_limit(const struct raft *r)
{
	uint64_t to = r->commit < r->stable ? r->commit : r->stable;

	if (r->restore_pending || to <= r->applied ||
	    r->applied + 1 < core_log_first_index(&r->log))
		return r->applied;
	if (to - r->applied > RAFT_MAX_APPLY_BATCH)
		to = r->applied + RAFT_MAX_APPLY_BATCH;
	return to;
}

static bool unassigned_reads(const struct raft *r)
{
	const struct pending_read *rd = r->reads.items;

	if (r->role != RAFT_LEADER || !committed_in_term(r))
		return false;
	for (size_t i = 0; i < r->reads.n; i++)
		if (rd[i].seq == 0)
			return true;
	return false;
}

bool raft_has_update(const struct raft *r)
{
	if (r->update_out)
		return false;
	return (r->role == RAFT_LEADER && r->need_bcast) || (r->dirty && !r->persist_inflight) ||
	        releasable(r) || apply_limit(r) > r->applied || r->read_states.n > 0 ||
	        unassigned_reads(r);
}

static void hand_out_persistence(struct raft *r, struct raft_update *u)
{
	uint64_t last = last_index(r);

	r->persist_inflight = true;
	u->persist_seq = ++r->handed_seq;
	u->hs.term = r->term;
	u->hs.vote = r->vote;
	u->hs_changed = r->hs_handed.term != r->term || r->hs_handed.vote != r->vote;
	r->hs_handed = u->hs;
	r->inflight_snap_index = 0;
	if (r->chunk_pending) {
		u->has_snap_chunk = true;
		u->snap_meta = r->in_snap;
		u->snap_offset = r->chunk_offset;
		u->snap_len = r->chunk_len;
		u->snap_data = r->chunk_data;
		u->snap_last = r->chunk_last;
		r->out_chunk = r->chunk_data;
		r->chunk_data = NULL;
		r->chunk_pending = false;
		if (r->chunk_last) {
			r->inflight_snap_index = r->in_snap.index;
			r->inflight_snap_meta = r->in_snap;
		}
	}
	u->truncate_from = r->pending_truncate;
	r->pending_truncate = 0;
	r->inflight_last = 0;
	if (r->unstable_from < core_log_first_index(&r->log))
		r->unstable_from = core_log_first_index(&r->log);
	for (uint64_t i = r->unstable_from; i <= last; i++) {
		struct raft_entry e = *core_log_get(&r->log, i);
		raft_buf_ref(e.data);
		if (vec_push(&r->out_entries, &e, sizeof(e)) != RAFT_OK) {
			raft_buf_unref(e.data);
			break; /* the rest goes with the next hand-out */
		}
		r->inflight_last = i;
		r->unstable_from = i + 1;
	}
	u->entries = r->out_entries.items;
	u->n_entries = r->out_entries.n;
	r->inflight_trunc_min = UINT64_MAX;
	r->dirty = r->unstable_from <= last;
}

static void hand_out_messages(struct raft *r, struct raft_update *u)
{
	struct held_msg *h = r->held.items;
	size_t j = 0;

	for (size_t i = 0; i < r->held.n; i++) {
		if (h[i].dep_seq <= r->persisted_seq &&
		    vec_push(&r->out_msgs, &h[i].msg, sizeof(h[i].msg)) == RAFT_OK)
			continue;
		h[j++] = h[i];
	}
	r->held.n = j;
	u->msgs = r->out_msgs.items;
	u->n_msgs = r->out_msgs.n;
}

static void hand_out_committed(struct raft *r, struct raft_update *u)
{
	uint64_t to = apply_limit(r);

	for (uint64_t i = r->applied + 1; i <= to; i++) {
		struct raft_entry e = *core_log_get(&r->log, i);
		raft_buf_ref(e.data);
		if (vec_push(&r->out_committed, &e, sizeof(e)) != RAFT_OK) {
			raft_buf_unref(e.data);
			break;
		}
	}
	u->committed = r->out_committed.items;
	u->n_committed = r->out_committed.n;
}

int raft_update_get(struct raft *r, struct raft_update *u)
{
	memset(u, 0, sizeof(*u));
	if (r->update_out)
		return RAFT_EBUSY;
	r->update_out = true;
	if (r->role == RAFT_LEADER) {
		if (r->need_bcast)
			bcast_append(r, false);
		r->need_bcast = false;
		start_read_round(r);
	}
	if (r->dirty && !r->persist_inflight)
		hand_out_persistence(r, u);
	hand_out_messages(r, u);
	hand_out_committed(r, u);
	if (r->read_states.n > 0) {
		struct vec tmp = r->out_reads;
		r->out_reads = r->read_states;
		r->read_states = tmp;
		r->read_states.n = 0;
		u->reads = r->out_reads.items;
		u->n_reads = r->out_reads.n;
	}
	return RAFT_OK;
}

void raft_update_done(struct raft *r, struct raft_update *u)
{
	struct raft_msg *m = r->out_msgs.items;
	struct raft_entry *e;

	if (!r->update_out)
		return;
	for (size_t i = 0; i < r->out_msgs.n; i++)
		msg_release(&m[i]);
	r->out_msgs.n = 0;
	e = r->out_entries.items;
	for (size_t i = 0; i < r->out_entries.n; i++)
		raft_buf_unref(e[i].data);
	r->out_entries.n = 0;
	e = r->out_committed.items;
	for (size_t i = 0; i < r->out_committed.n; i++) {
		if (e[i].index == r->applied + 1)
			r->applied = e[i].index;
		raft_buf_unref(e[i].data);
	}
	r->out_committed.n = 0;
	r->out_reads.n = 0;
	raft_buf_unref(r->out_chunk);
	r->out_chunk = NULL;
	r->update_out = false;
	memset(u, 0, sizeof(*u));
	RAFT_ASSERT(r->applied <= r->commit);
}

void raft_persisted(struct raft *r, uint64_t seq)
{
	uint64_t stable = r->stable;

	if (!r->persist_inflight || seq != r->handed_seq)
		return;
	r->persist_inflight = false;
	r->persisted_seq = seq;
	if (r->inflight_snap_index) {
		/* the installed snapshot is durable and (by contract) restored by the application */
		r->restore_pending = false;
		r->snap = r->inflight_snap_meta;
		if (r->applied < r->snap.index)
			r->applied = r->snap.index;
		if (stable < r->snap.index)
			stable = r->snap.index;
		r->inflight_snap_index = 0;
	}
	if (r->inflight_last > stable)
		stable = r->inflight_last;
	if (r->inflight_trunc_min != UINT64_MAX && stable >= r->inflight_trunc_min)
		stable = r->inflight_trunc_min - 1;
	if (stable > last_index(r))
		stable = last_index(r);
	if (stable > r->stable) {
		r->stable = stable;
		if (r->role == RAFT_LEADER) {
			maybe_commit(r);
			struct progress *self = pr_find(r, r->id);
			if (self)
				self->match = r->stable;
		}
	}
	r->inflight_last = 0;
	r->inflight_trunc_min = UINT64_MAX;
}

/* --- life cycle --------------------------------------------------------------------------------- */

static int config_check(const struct raft_config *c, const struct raft_conf *conf)
{
	if (c->id == 0 || conf->n == 0 || conf->n > RAFT_MAX_NODES || conf->n_old > RAFT_MAX_NODES)
		return RAFT_EINVAL;
	if (c->election_ticks < 2 || c->heartbeat_ticks == 0 ||
	    c->heartbeat_ticks >= c->election_ticks)
		return RAFT_EINVAL;
	if (c->max_inflight_msgs == 0 || c->max_msg_bytes == 0 || c->snapshot_chunk_bytes == 0)
		return RAFT_EINVAL;
	if (c->max_entry_bytes == 0 || c->max_entry_bytes > RAFT_MAX_ENTRY_BYTES ||
	    c->max_msg_bytes > RAFT_MAX_ENTRY_BYTES)
		return RAFT_EINVAL; /* storage, codec or transport would refuse what passed */
	for (unsigned i = 0; i < conf->n; i++)
		if (conf->ids[i] == 0)
			return RAFT_EINVAL;
	return RAFT_OK;
}

static int add_member(struct raft *r, uint32_t id)
{
	struct progress *pr;

	if (pr_find(r, id))
		return RAFT_OK;
	pr = &r->prs[r->n_prs];
	memset(pr, 0, sizeof(*pr));
	pr->id = id;
	pr->infl_index = calloc(r->cfg.max_inflight_msgs, sizeof(uint64_t));
	pr->infl_bytes = calloc(r->cfg.max_inflight_msgs, sizeof(uint64_t));
	if (!pr->infl_index || !pr->infl_bytes) {
		free(pr->infl_index);
		free(pr->infl_bytes);
		return RAFT_ENOMEM;
	}
	r->n_prs++;
	return RAFT_OK;
}

int raft_new(const struct raft_config *cfg, const struct raft_env *env,
             const struct raft_restore *restore, struct raft **out)
{
	struct raft *r;
	const struct raft_conf *conf = &cfg->conf;
	int rv;

	if (!env || !env->random || !out || (restore && restore->hs.term > RAFT_MAX_TERM))
		return RAFT_EINVAL;
	if (restore && restore->snap.index > 0 && restore->snap.conf.n > 0)
		conf = &restore->snap.conf;
	rv = config_check(cfg, conf);
	if (rv != RAFT_OK)
		return rv;
	r = calloc(1, sizeof(*r));
	if (!r)
		return RAFT_ENOMEM;
	r->cfg = *cfg;
	r->env = *env;
	r->id = cfg->id;
	r->conf = *conf;
	for (unsigned i = 0; i < conf->n; i++)
		if ((rv = add_member(r, conf->ids[i])) != RAFT_OK)
			goto err_free;
	for (unsigned i = 0; i < conf->n_old; i++)
		if ((rv = add_member(r, conf->old_ids[i])) != RAFT_OK)
			goto err_free;
	core_log_init(&r->log, 0, 0);
	if (restore) {
		r->term = restore->hs.term;
		r->vote = restore->hs.vote;
		if (restore->snap.index > 0) {
			r->snap = restore->snap;
			if (r->snap.conf.n == 0)
				r->snap.conf = r->conf;
			core_log_reset(&r->log, restore->snap.index, restore->snap.term);
			r->commit = r->applied = restore->snap.index;
		}
		for (size_t i = 0; i < restore->n_entries; i++) {
			rv = core_log_append(&r->log, &restore->entries[i]);
			if (rv != RAFT_OK)
				goto err_log;
		}
	}
	r->stable = last_index(r);
	r->unstable_from = last_index(r) + 1;
	r->hs_handed.term = r->term;
	r->hs_handed.vote = r->vote;
	r->inflight_trunc_min = UINT64_MAX;
	r->role = RAFT_FOLLOWER;
	reset_randomized_timeout(r);
	*out = r;
	return RAFT_OK;

err_log:
	core_log_free(&r->log);
err_free:
	for (unsigned i = 0; i < r->n_prs; i++) {
		free(r->prs[i].infl_index);
		free(r->prs[i].infl_bytes);
	}
	free(r);
	return rv;
}

void raft_free(struct raft *r)
{
	struct held_msg *h;

	if (!r)
		return;
	if (r->update_out) {
		struct raft_update u;
		raft_update_done(r, &u);
	}
	h = r->held.items;
	for (size_t i = 0; i < r->held.n; i++)
		msg_release(&h[i].msg);
	vec_free(&r->held);
	vec_free(&r->reads);
	vec_free(&r->read_states);
	vec_free(&r->out_msgs);
	vec_free(&r->out_entries);
	vec_free(&r->out_committed);
	vec_free(&r->out_reads);
	raft_buf_unref(r->chunk_data);
	raft_buf_unref(r->out_chunk);
	core_log_free(&r->log);
	for (unsigned i = 0; i < r->n_prs; i++) {
		free(r->prs[i].infl_index);
		free(r->prs[i].infl_bytes);
	}
	free(r);
}

void raft_status(const struct raft *r, struct raft_status *st)
{
	memset(st, 0, sizeof(*st));
	st->id = r->id;
	st->role = r->role;
	st->term = r->term;
	st->vote = r->vote;
	st->leader = r->leader;
	st->commit = r->commit;
	st->applied = r->applied;
	st->stable = r->stable;
	st->first_index = core_log_first_index(&r->log);
	st->last_index = last_index(r);
	st->last_term = last_term(r);
	st->snapshot_index = r->snap.index;
	st->snapshot_term = r->snap.term;
	st->transfer_target = r->transfer_target;
}

uint64_t raft_term_at(const struct raft *r, uint64_t index)
{
	if (index > 0 && index == r->snap.index)
		return r->snap.term;
	return core_log_term(&r->log, index);
}
