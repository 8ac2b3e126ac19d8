/* node.c - one replicated key/value node: Raft core + storage + state machine + requests. */
#include "kv/node.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODE_LOG_BYTES 512
#define ENTRY_OVERHEAD_BYTES 40 /* framing of a log record, for the snapshot trigger */
#define FORWARD_MARGIN_MS 100 /* a leader answers a forwarded request this much early */
#define REFUSED_RETRY_MS 50 /* a forward the transport refused is tried again after this */
#define MAP_MIN_SLOTS 64

enum req_state {
	RS_IDLE = 0,
	RS_WAIT_LEADER, /* no leader known (or it refused): retried on ticks */
	RS_PROPOSED, /* latest attempt: in this leader's log at (index, term) */
	RS_FORWARDED, /* latest attempt: a copy sent to leader fwd_to, its answer awaited */
	RS_READ_INDEX, /* ReadIndex asked (key = ctx) */
	RS_READ_APPLY, /* waiting for applied >= index */
};

/* A small open-addressing map from nonzero u64 keys to requests. */
struct map {
	uint64_t *keys;
	struct kv_req **vals;
	size_t cap, n, used; /* used counts tombstones too */
};

#define MAP_TOMB UINT64_MAX

struct kv_node {
	struct kv_node_config cfg;
	struct kv_node_env env;
	struct raft *raft;
	struct raft_storage *storage;
	struct kv_store *store;
	char dir[4096];

	struct kv_req pending; /* list head of every request in flight */
	uint32_t n_pending;
	struct map props; /* proposal index -> request whose proposal there is awaited */
	struct map reads; /* ctx -> request in RS_READ_INDEX */
	struct map forwards; /* copy id -> request awaiting that copy's answer */
	struct map sessions; /* session -> the latest internal request of that session */
	/* forward ids and read contexts; starts at random: answers still in flight to an earlier
	 * incarnation of this node (before a crash) must not match this one's requests */
	uint64_t next_key;
	uint32_t reads_waiting; /* requests in RS_READ_APPLY */
	/* the leader's clock (kv/node.h, Time): the wall clock at open with the monotonic clock
	 * then, and the last stamp */
	uint64_t wall0_ms, mono0_ms, last_stamp_ms;
	bool clock_capped; /* the wall clock is further ahead than followed (logged once) */
	uint64_t completed; /* requests completed so far (sweep notices callbacks) */
	uint64_t log_bytes; /* written to the log since the last snapshot */
	/* the background snapshot (env.snapshot_start), at most one */
	struct kv_snapshot_job job;
	bool snap_in_flight; /* job started, kv_node_snapshot_done not called yet */
	bool snap_stale; /* a leader's snapshot was installed while the job was in flight */
	uint64_t snap_log_bytes; /* log_bytes when the job was made: the part it covers */
	uint64_t snap_grew_bytes; /* log written while the last successful job ran */
	unsigned snap_retry_ticks; /* after a failure: no new job until this many ticks passed */
	uint64_t settings_term; /* the term in which this node, leading, proposed its settings */
	uint64_t settings_seen; /* index of the cluster's settings last compared with the options */
	bool in_process;
	bool again;
	bool scheduled; /* env.schedule was called and kv_node_flush() has not run since */
	bool failed;
	char why[512];
};

/* --- helpers ------------------------------------------------------------------------------------ */

static void nlog(struct kv_node *n, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void nlog(struct kv_node *n, int level, const char *fmt, ...)
{
	char line[NODE_LOG_BYTES];
	va_list ap;

	if (!n->env.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n->env.log(n->env.ctx, level, line);
}

static uint64_t now_ms(struct kv_node *n)
{
	return n->env.now_ms(n->env.ctx);
}

static size_t map_slot(const struct map *m, uint64_t key)
{
	uint64_t h = key * 0x9e3779b97f4a7c15ULL;
	return (size_t)(h >> 7) & (m->cap - 1);
}

static int map_grow(struct map *m)
{
	struct map g = {0};
	size_t cap = m->cap ? m->cap * 2 : MAP_MIN_SLOTS;

	if (m->cap && m->n * 4 < m->cap)
		cap = m->cap; /* mostly tombstones: rehash at the same size */
	g.keys = calloc(cap, sizeof(*g.keys));
	g.vals = calloc(cap, sizeof(*g.vals));
	if (!g.keys || !g.vals) {
		free(g.keys);
		free(g.vals);
		return -1;
	}
	g.cap = cap;
	for (size_t i = 0; i < m->cap; i++) {
		if (m->keys[i] == 0 || m->keys[i] == MAP_TOMB)
			continue;
		size_t j = map_slot(&g, m->keys[i]);
		while (g.keys[j])
			j = (j + 1) & (g.cap - 1);
		g.keys[j] = m->keys[i];
		g.vals[j] = m->vals[i];
		g.n++;
	}
	g.used = g.n;
	free(m->keys);
	free(m->vals);
	*m = g;
	return 0;
}

static int map_put(struct map *m, uint64_t key, struct kv_req *req)
{
	size_t i;

	if ((m->used + 1) * 2 > m->cap && map_grow(m) != 0)
		return -1;
	i = map_slot(m, key);
	while (m->keys[i] && m->keys[i] != MAP_TOMB)
		i = (i + 1) & (m->cap - 1);
	if (m->keys[i] == 0)
		m->used++;
	m->keys[i] = key;
	m->vals[i] = req;
	m->n++;
	return 0;
}

static struct kv_req *map_get(const struct map *m, uint64_t key)
{
	if (!m->cap || key == 0 || key == MAP_TOMB)
		return NULL;
	for (size_t i = map_slot(m, key); m->keys[i]; i = (i + 1) & (m->cap - 1))
		if (m->keys[i] == key)
			return m->vals[i];
	return NULL;
}

static struct kv_req *map_take(struct map *m, uint64_t key)
{
	size_t i;

	if (!m->cap || key == 0 || key == MAP_TOMB)
		return NULL;
	for (i = map_slot(m, key); m->keys[i]; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			struct kv_req *r = m->vals[i];
			m->keys[i] = MAP_TOMB;
			m->vals[i] = NULL;
			m->n--;
			return r;
		}
	}
	return NULL;
}

static void map_free(struct map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

static void list_add(struct kv_node *n, struct kv_req *r)
{
	r->prev = n->pending.prev;
	r->next = &n->pending;
	n->pending.prev->next = r;
	n->pending.prev = r;
	n->n_pending++;
}

static void list_del(struct kv_node *n, struct kv_req *r)
{
	r->prev->next = r->next;
	r->next->prev = r->prev;
	r->prev = r->next = NULL;
	n->n_pending--;
}

/* n->raft and n->storage are NULL only in a node stopped by a failed node_reload. */
uint32_t kv_node_leader(const struct kv_node *n)
{
	struct raft_status st;

	if (!n->raft)
		return 0;
	raft_status(n->raft, &st);
	return st.leader;
}

bool kv_node_is_leader(const struct kv_node *n)
{
	struct raft_status st;

	if (!n->raft)
		return false;
	raft_status(n->raft, &st);
	return st.role == RAFT_LEADER;
}

/* Stops awaiting r's local proposal (it may still be applied: it stays uncertain). */
static void forget_proposal(struct kv_node *n, struct kv_req *r)
{
	if (!r->proposed)
		return;
	r->proposed = false;
	if (map_get(&n->props, r->index) == r)
		map_take(&n->props, r->index);
}

/* Stops awaiting copy k of r (its answer is ignored from now on). */
static void forget_copy(struct kv_node *n, struct kv_req *r, unsigned k)
{
	map_take(&n->forwards, r->copies[k].id);
	r->n_copies--;
	memmove(&r->copies[k], &r->copies[k + 1], (r->n_copies - k) * sizeof(r->copies[0]));
}

/* An attempt of r whose answer may still come: a proposal or a copy. */
static bool awaiting(const struct kv_req *r)
{
	return r->proposed || r->n_copies > 0;
}

/* Sent again safely: the session applies a (session, seq) once. The origin of a copy does it,
 * never the leader that got it. */
static bool resendable(const struct kv_req *r)
{
	return r->has_session && !r->internal;
}

/* Ends a request: takes it off every index and runs its callback (last: it may free it). */
static void complete(struct kv_node *n, struct kv_req *r, int status)
{
	if (r->state == RS_READ_INDEX)
		map_take(&n->reads, r->key);
	else if (r->state == RS_READ_APPLY)
		n->reads_waiting--;
	forget_proposal(n, r);
	while (r->n_copies > 0)
		forget_copy(n, r, r->n_copies - 1);
	if (r->internal && r->session && map_get(&n->sessions, r->session) == r)
		map_take(&n->sessions, r->session);
	list_del(n, r);
	n->completed++;
	r->state = RS_IDLE;
	r->status = status;
	r->leader = kv_node_leader(n);
	if (status != KV_STATUS_OK)
		kv_result_release(&r->result);
	r->cb(r);
}

/* --- failure ------------------------------------------------------------------------------------ */

/* What a request that will get no answer ends with: while any attempt (a proposal, a forward)
 * may still be applied, UNKNOWN; otherwise it certainly will not be. */
static int abandon_status(const struct kv_req *r, int never_status)
{
	return r->uncertain > 0 ? KV_STATUS_UNKNOWN : never_status;
}

static void fail_all(struct kv_node *n, int never_status)
{
	while (n->pending.next != &n->pending) {
		struct kv_req *r = n->pending.next;
		complete(n, r, abandon_status(r, never_status));
	}
}

/* A storage failure stops the node for good: nothing after it may be acknowledged. */
static void node_fail(struct kv_node *n, const char *what)
{
	if (n->failed)
		return;
	n->failed = true;
	snprintf(n->why, sizeof(n->why), "%s: %s", what, raft_storage_errmsg(n->storage));
	nlog(n, 3, "%s; the node stops", n->why);
	fail_all(n, KV_STATUS_SHUTDOWN);
}

/* --- forwarding between nodes ------------------------------------------------------------------- */

/* true when the frame was queued (it may still be lost), false when it was refused or could not
 * be encoded: then it certainly never arrives. */
static bool send_frame(struct kv_node *n, uint32_t to, const struct kv_proto_frame *f)
{
	void *buf;
	size_t len;
	bool queued;

	if (kv_proto_encode(f, &buf, &len) != 0) {
		nlog(n, 2, "cannot encode a frame for node %u", to);
		return false;
	}
	queued = n->env.send_app(n->env.ctx, to, buf, len);
	free(buf);
	return queued;
}

static uint64_t remaining_ms(struct kv_node *n, const struct kv_req *r)
{
	uint64_t now = now_ms(n);

	if (!r->deadline_ms)
		return 0;
	return r->deadline_ms > now ? r->deadline_ms - now : 1;
}

/* How long the leader may work on a copy (REQ.timeout_ms): the request's time left, at most
 * KV_NODE_FORWARD_MAX_MS, so that a leader holds no copy forever and a copy whose answer is
 * overdue can be told from one still being worked on. */
static uint64_t copy_timeout_ms(struct kv_node *n, const struct kv_req *r)
{
	uint64_t left = remaining_ms(n, r);

	return left && left < KV_NODE_FORWARD_MAX_MS ? left : KV_NODE_FORWARD_MAX_MS;
}

/* Waits for a leader (or for the transport to take a frame again), tried again from sweep. */
static void wait_leader(struct kv_req *r, uint64_t retry_ms)
{
	r->state = RS_WAIT_LEADER;
	r->retry_ms = retry_ms;
}

/* Sends a copy of r to leader. A refused frame is no attempt: r waits and tries again soon. */
static void forward(struct kv_node *n, struct kv_req *r, uint32_t leader)
{
	struct kv_proto_frame f = {0};
	uint64_t now = now_ms(n), timeout = copy_timeout_ms(n, r), id = ++n->next_key;

	if (map_put(&n->forwards, id, r) != 0) {
		wait_leader(r, now + REFUSED_RETRY_MS);
		return;
	}
	f.type = KV_PROTO_REQ;
	f.id = id;
	f.timeout_ms = (uint32_t)timeout;
	f.body = r->cmd;
	f.body_len = r->cmd_len;
	if (!send_frame(n, leader, &f)) {
		map_take(&n->forwards, id);
		wait_leader(r, now + REFUSED_RETRY_MS);
		return;
	}
	if (r->n_copies == KV_NODE_MAX_COPIES)
		forget_copy(n, r, 0);
	r->copies[r->n_copies].id = id;
	r->copies[r->n_copies].to = leader;
	r->n_copies++;
	r->uncertain++;
	r->state = RS_FORWARDED;
	r->fwd_to = leader;
	r->attempt_ms = now;
	r->answer_by_ms = now + timeout + FORWARD_MARGIN_MS;
}

/* The answer to a copy a peer forwarded here goes back to it. */
static void internal_done(struct kv_req *r)
{
	struct kv_node *n = r->data;
	void *buf;
	size_t len;

	if (kv_proto_encode_resp(r->fwd_id, r->status, r->leader, &r->result, &buf, &len) == 0) {
		/* refused: lost, as on the way; the sender asks again or gives up (above) */
		if (!n->env.send_app(n->env.ctx, r->fwd_from, buf, len))
			nlog(n, 0, "answer %llu to node %u refused", (unsigned long long)r->fwd_id,
			     r->fwd_from);
		free(buf);
	} else {
		nlog(n, 2, "cannot encode the answer for node %u", r->fwd_from);
	}
	kv_result_release(&r->result);
	raft_buf_unref(r->cmd);
	free(r);
}

/* A copy of a request from `from` that this leader is still working on (proposed in its term,
 * or waiting to be): proposing it again would only make an entry whose result is a replay. */
static struct kv_req *copy_in_hand(struct kv_node *n, uint32_t from, const struct kv_cmd *cmd)
{
	struct kv_req *r = cmd->session ? map_get(&n->sessions, cmd->session) : NULL;
	struct raft_status st;

	if (!r || r->fwd_from != from || r->seq != cmd->seq)
		return NULL;
	raft_status(n->raft, &st);
	if (st.role != RAFT_LEADER)
		return NULL;
	if (r->state == RS_WAIT_LEADER || (r->proposed && r->term == st.term))
		return r;
	return NULL;
}

/* The time a leader gives a copy: its sender's, less a margin, so that the answer arrives before
 * the sender gives up and it learns the outcome. */
static uint64_t answer_timeout_ms(uint32_t timeout_ms)
{
	if (!timeout_ms)
		return 0;
	return timeout_ms > 2 * FORWARD_MARGIN_MS ? timeout_ms - FORWARD_MARGIN_MS
	                                          : timeout_ms / 2 + 1;
}

static void recv_forwarded_request(struct kv_node *n, uint32_t from, const struct kv_proto_frame *f)
{
	struct kv_proto_frame resp = {.type = KV_PROTO_RESP, .id = f->id};
	uint64_t timeout = answer_timeout_ms(f->timeout_ms);
	struct kv_req *r, *held;
	struct kv_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	held = kv_cmd_decode(f->body, f->body_len, &cmd) == KV_OK ? copy_in_hand(n, from, &cmd)
	                                                          : NULL;
	if (held) {
		/* its answer goes to this copy, the sender's newest (it awaits its older ones too),
		 * within this copy's time */
		uint64_t until = now_ms(n) + timeout;
		held->fwd_id = f->id;
		if (!timeout)
			held->deadline_ms = 0;
		else if (held->deadline_ms && until > held->deadline_ms)
			held->deadline_ms = until;
		return;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		goto refuse;
	r->cmd = raft_buf_alloc(f->body_len);
	if (!r->cmd) {
		free(r);
		goto refuse;
	}
	if (f->body_len)
		memcpy(r->cmd, f->body, f->body_len);
	r->cmd_len = f->body_len;
	r->data = n;
	r->cb = internal_done;
	r->internal = true;
	r->fwd_from = from;
	r->fwd_id = f->id;
	r->timeout_ms = timeout;
	r->session = cmd.session;
	if (r->session) {
		/* the latest request of the session from now on (the one before, if any, goes on
		 * unlisted: its sender has moved on, or sent it from elsewhere) */
		map_take(&n->sessions, r->session);
		if (map_put(&n->sessions, r->session, r) != 0)
			r->session = 0;
	}
	if (kv_node_submit(n, r) == 0)
		return; /* r may be freed already */
	if (r->session && map_get(&n->sessions, r->session) == r)
		map_take(&n->sessions, r->session);
	raft_buf_unref(r->cmd);
	free(r);
refuse:
	resp.status = KV_STATUS_NOT_APPLIED;
	resp.leader = kv_node_leader(n);
	send_frame(n, from, &resp);
}

static void complete_applied(struct kv_node *n, struct kv_req *r);

/* An attempt of r was certainly not applied. */
static void attempt_refused(struct kv_req *r)
{
	if (r->uncertain > 0)
		r->uncertain--;
	if (!awaiting(r))
		wait_leader(r, 0); /* tried again on the next tick */
}

/* An attempt of r ended without its fate: it may still be applied. A request with a session is
 * sent again; one without waits for what else it awaits, or ends UNKNOWN. */
static void attempt_lost(struct kv_node *n, struct kv_req *r)
{
	if (awaiting(r))
		return;
	if (resendable(r))
		wait_leader(r, 0);
	else
		complete(n, r, KV_STATUS_UNKNOWN);
}

static void recv_forward_answer(struct kv_node *n, uint32_t from, const struct kv_proto_frame *f)
{
	struct kv_req *r = map_get(&n->forwards, f->id);
	unsigned k = 0;

	if (!r)
		return; /* answered already, forgotten, cancelled or timed out */
	while (k < r->n_copies && r->copies[k].id != f->id)
		k++;
	if (k == r->n_copies || r->copies[k].to != from) {
		/* not a node a copy went to: not its answer */
		nlog(n, 2, "answer %llu from node %u ignored: sent to node %u",
		     (unsigned long long)f->id, from, k < r->n_copies ? r->copies[k].to : 0);
		return;
	}
	forget_copy(n, r, k);
	switch (f->status) {
	case KV_STATUS_OK:
		if (kv_result_decode(f->body, f->body_len, &r->result) != KV_OK) {
			/* applied, but the answer is unreadable */
			complete(n, r, KV_STATUS_UNKNOWN);
			return;
		}
		complete_applied(n, r);
		return;
	case KV_STATUS_NOT_APPLIED:
	case KV_STATUS_SHUTDOWN:
		/* that node did not take it (not leader any more): that copy is settled */
		attempt_refused(r);
		return;
	case KV_STATUS_UNKNOWN:
		attempt_lost(n, r);
		return;
	default:
		if (r->uncertain > 0)
			r->uncertain--;
		complete(n, r, abandon_status(r, f->status));
		return;
	}
}

void kv_node_recv_app(struct kv_node *n, uint32_t from, const void *buf, size_t len)
{
	struct kv_proto_frame f;
	const char *why;

	if (n->failed)
		return;
	if (kv_proto_decode(buf, len, &f, &why) != 0) {
		nlog(n, 2, "frame from node %u refused: %s", from, why);
		return;
	}
	if (f.type == KV_PROTO_REQ)
		recv_forwarded_request(n, from, &f);
	else if (f.type == KV_PROTO_RESP)
		recv_forward_answer(n, from, &f);
	else
		nlog(n, 2, "frame of type %u from node %u ignored", f.type, from);
}

/* --- the leader's clock ------------------------------------------------------------------------- */

/* The time this node stamps into a command it proposes (kv/node.h, Time). */
static uint64_t stamp_ms(struct kv_node *n)
{
	uint64_t wall = n->env.realtime_ms(n->env.ctx), mono = now_ms(n);
	uint64_t cap = n->wall0_ms + (mono - n->mono0_ms) + KV_NODE_CLOCK_STEP_MAX_MS;
	uint64_t floor = kv_store_now_ms(n->store), t = wall;

	if (wall > cap) {
		if (!n->clock_capped)
			nlog(n, 2,
			     "the wall clock is %llu ms ahead of where it was at start: the time "
			     "stamped runs on from %u ms ahead of that",
			     (unsigned long long)(wall - cap + KV_NODE_CLOCK_STEP_MAX_MS),
			     KV_NODE_CLOCK_STEP_MAX_MS);
		n->clock_capped = true;
		t = cap;
	} else {
		n->clock_capped = false;
	}
	if (floor < n->last_stamp_ms)
		floor = n->last_stamp_ms;
	if (t < floor)
		t = floor; /* never behind the log */
	n->last_stamp_ms = t;
	return t;
}

/* --- starting requests -------------------------------------------------------------------------- */

static void serve_read(struct kv_node *n, struct kv_req *r);

static void propose(struct kv_node *n, struct kv_req *r)
{
	struct kv_req *old;
	int rv;

	forget_proposal(n, r); /* one of another term: awaited no more, still uncertain */
	if (!r->stamped) {
		/* once: the bytes of a proposal are a log entry's, never rewritten after */
		if (kv_cmd_set_time(r->cmd, r->cmd_len, stamp_ms(n)) != KV_OK) {
			complete(n, r, abandon_status(r, KV_STATUS_BAD_REQUEST));
			return;
		}
		r->stamped = true;
	}
	raft_buf_ref(r->cmd); /* raft_propose takes one reference */
	rv = raft_propose(n->raft, r->cmd, (uint32_t)r->cmd_len, &r->index, &r->term);
	if (rv == RAFT_ETOOBIG) {
		complete(n, r, abandon_status(r, KV_STATUS_BAD_REQUEST));
		return;
	}
	if (rv != RAFT_OK) {
		wait_leader(r, 0); /* busy (transfer, limit): retried on ticks */
		return;
	}
	old = map_take(&n->props, r->index);
	if (old) {
		/* our earlier entry at this index was overwritten here, but another node may
		 * still hold it and commit it as leader (Figure 8): its fate cannot be learned by
		 * index any more */
		old->proposed = false;
		attempt_lost(n, old);
	}
	if (map_put(&n->props, r->index, r) != 0) {
		r->uncertain++;
		complete(n, r, KV_STATUS_UNKNOWN);
		return;
	}
	r->proposed = true;
	r->uncertain++;
	r->state = RS_PROPOSED;
	r->attempt_ms = now_ms(n);
}

static void start_write(struct kv_node *n, struct kv_req *r)
{
	struct raft_status st;

	raft_status(n->raft, &st);
	if (st.role == RAFT_LEADER && !kv_store_settings(n->store, NULL)) {
		r->state = RS_WAIT_LEADER; /* nothing goes before the cluster's settings */
		return;
	}
	if (st.role == RAFT_LEADER) {
		propose(n, r);
		return;
	}
	if (r->internal) {
		/* a forwarded copy reached a node that is no longer leader: refuse it, the
		 * forwarding node retries with the leader it learns of */
		complete(n, r, abandon_status(r, KV_STATUS_NOT_APPLIED));
		return;
	}
	if (st.leader) {
		forward(n, r, st.leader);
		return;
	}
	wait_leader(r, 0);
}

static void start_read(struct kv_node *n, struct kv_req *r)
{
	r->fwd_to = kv_node_leader(n);
	r->attempt_ms = now_ms(n);
	r->key = ++n->next_key;
	if (raft_read_index(n->raft, r->key) != RAFT_OK || map_put(&n->reads, r->key, r) != 0) {
		r->state = RS_WAIT_LEADER;
		return;
	}
	r->state = RS_READ_INDEX;
}

static void start(struct kv_node *n, struct kv_req *r)
{
	if (kv_op_is_read(r->op))
		start_read(n, r);
	else
		start_write(n, r);
}

/* --- applying and reading ----------------------------------------------------------------------- */

static void apply_entry(struct kv_node *n, const struct raft_entry *e)
{
	struct kv_result res;
	struct kv_req *r;
	int rv;

	if (e->type != RAFT_ENTRY_NORMAL)
		return;
	rv = kv_store_apply(n->store, e->index, e->data, e->len, &res);
	if (rv == KV_ENOMEM) {
		snprintf(n->why, sizeof(n->why), "apply entry %llu: out of memory",
		         (unsigned long long)e->index);
		n->failed = true;
		nlog(n, 3, "%s; the node stops", n->why);
		fail_all(n, KV_STATUS_SHUTDOWN);
		return;
	}
	if (rv != KV_OK) {
		nlog(n, 2, "apply entry %llu: %s", (unsigned long long)e->index, kv_strerror(rv));
		return;
	}
	r = map_take(&n->props, e->index);
	if (!r) {
		kv_result_release(&res);
		return;
	}
	r->proposed = false;
	if (r->term != e->term) {
		/* another entry was committed in our slot: ours never will be */
		kv_result_release(&res);
		if (r->uncertain > 0)
			r->uncertain--;
		if (!awaiting(r))
			complete(n, r, abandon_status(r, KV_STATUS_NOT_APPLIED));
		return;
	}
	r->result = res;
	complete_applied(n, r);
}

/*
 * An attempt of r was applied, r->result holding its result. A session the store did not know
 * means that attempt changed nothing; the request certainly changed nothing only if no other
 * attempt (still awaited, or forgotten) may have been applied before the session went: then
 * the answer says so (OK, KV_ESESSION_EXPIRED) and the caller may send it again in a new
 * session. Otherwise its outcome is unknown (kv/node.h, Expired sessions).
 */
static void complete_applied(struct kv_node *n, struct kv_req *r)
{
	if (r->has_session && r->result.status == KV_ESESSION_EXPIRED && r->uncertain > 1) {
		complete(n, r, KV_STATUS_UNKNOWN);
		return;
	}
	complete(n, r, KV_STATUS_OK);
}

static void on_read_state(struct kv_node *n, const struct raft_read_state *rs)
{
	struct kv_req *r = map_take(&n->reads, rs->ctx);
	struct raft_status st;

	if (!r)
		return; /* a duplicate answer, or the request is gone */
	if (rs->status != RAFT_OK) {
		r->state = RS_WAIT_LEADER; /* leadership moved: ask again on the next tick */
		return;
	}
	r->index = rs->index;
	r->state = RS_READ_APPLY;
	n->reads_waiting++;
	raft_status(n->raft, &st);
	if (st.applied >= r->index)
		serve_read(n, r);
}

static void serve_read(struct kv_node *n, struct kv_req *r)
{
	struct kv_cmd cmd;
	struct kv_result *out = &r->result;
	int rv;

	n->reads_waiting--; /* r leaves RS_READ_APPLY */
	r->state = RS_IDLE;
	memset(out, 0, sizeof(*out));
	if (kv_cmd_decode(r->cmd, r->cmd_len, &cmd) != KV_OK) {
		complete(n, r, KV_STATUS_BAD_REQUEST);
		return;
	}
	switch (cmd.op) {
	case KV_OP_GET:
		rv = kv_store_get(n->store, cmd.key, cmd.key_len, &out->value, &out->value_len,
		                  &out->exists, &out->attr);
		out->has_attr = rv == KV_OK && out->exists;
		break;
	case KV_OP_READ:
		rv = kv_store_read(n->store, cmd.key, cmd.key_len, cmd.offset, cmd.count,
		                   &out->value, &out->value_len, &out->exists, &out->attr);
		out->has_attr = rv == KV_OK && out->exists;
		break;
	case KV_OP_GETATTR:
		rv = kv_store_getattr(n->store, cmd.key, cmd.key_len, &out->attr);
		out->has_attr = rv == KV_OK;
		out->exists = rv == KV_OK;
		break;
	default:
		rv = kv_store_readdir(n->store, cmd.key, cmd.key_len, out);
		break;
	}
	out->op = cmd.op;
	out->status = rv;
	complete(n, r, KV_STATUS_OK);
}

static void serve_ready_reads(struct kv_node *n)
{
	struct raft_status st;
	struct kv_req *r, *next;

	if (n->reads_waiting == 0)
		return; /* the common case: nothing to scan on the apply path */
	raft_status(n->raft, &st);
	for (r = n->pending.next; r != &n->pending && n->reads_waiting > 0; r = next) {
		next = r->next;
		if (r->state == RS_READ_APPLY && r->index <= st.applied) {
			serve_read(n, r);
			next = n->pending.next; /* callbacks may have changed the list */
		}
	}
}

/* Gives memory freed in bulk (a whole state) back to the system: glibc keeps freed chunks in
 * its heap, where the resident size would stay at its peak. */
static void release_freed_memory(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

/* --- snapshots ---------------------------------------------------------------------------------- */

struct snap_io {
	struct kv_node *n;
	uint64_t index;
	uint64_t offset;
	bool staged; /* the image staged by raft_storage_persist_stage, not the current one */
};

static int snap_read(void *ctx, void *buf, size_t len)
{
	struct snap_io *io = ctx;
	size_t got = 0;
	int rc = io->staged
	        ? raft_storage_staged_read(io->n->storage, io->index, io->offset, buf, len, &got)
	        : raft_storage_snapshot_read(io->n->storage, io->index, io->offset, buf, len, &got);

	if (rc != RAFT_OK || got != len)
		return -1;
	io->offset += len;
	return 0;
}

/*
 * Loads the state machine from a snapshot image: the storage's current one (at start), or the one
 * a leader sent, staged and checked but not installed yet (staged: handle_update). The old state
 * goes first: the snapshot replaces it whole, and holding both at once doubled a follower's
 * memory when it installed a second snapshot (mem-restart.sh: 692 MiB for 252 MiB of data, kept
 * after the old state was freed). If the new state cannot be loaded, the old one is still on
 * disk, untouched (node_reload takes it up again), or the node does not start; an empty state
 * takes its place meanwhile, so that n->store is never NULL. A failure is described in why: the
 * byte offset of the record that failed and what was wrong with it, and for the current image
 * its file (DESIGN.md 8; a staged image is removed once refused).
 */
static int restore_store(struct kv_node *n, uint64_t index, bool staged, char *why, size_t why_len)
{
	struct snap_io io = {n, index, 0, staged};
	struct kv_store *fresh = NULL;
	struct kv_snapshot_failure f;
	char file[64] = "snapshot image";
	int rv;

	if (n->store) {
		kv_store_free(n->store);
		n->store = NULL;
		release_freed_memory();
	}
	rv = kv_snapshot_load(&n->cfg.store, snap_read, &io, &fresh, &f);
	if (rv != KV_OK) {
		int k;
		if (staged) {
			k = snprintf(why, why_len, "snapshot %llu from the leader",
			             (unsigned long long)index);
		} else {
			raft_storage_snapshot_file(n->storage, file, sizeof(file));
			k = snprintf(why, why_len, "%s/%s: snapshot %llu", n->dir, file,
			             (unsigned long long)index);
		}
		if (k >= 0 && (size_t)k < why_len)
			snprintf(why + k, why_len - (size_t)k,
			         " cannot be loaded: %s at byte %llu (%s)", kv_strerror(rv),
			         (unsigned long long)f.offset, f.why);
		/* out of memory: kv_node_open fails, or the node has stopped */
		if (kv_store_new(&n->cfg.store, &n->store) != KV_OK)
			n->store = NULL;
		return rv;
	}
	n->store = fresh;
	return KV_OK;
}

/* After an installed snapshot, proposals it covers can no longer be matched to their entries. */
static void abandon_proposals_to(struct kv_node *n, uint64_t index)
{
	struct kv_req *r, *next;

	for (r = n->pending.next; r != &n->pending; r = next) {
		next = r->next;
		if (r->proposed && r->index <= index) {
			forget_proposal(n, r);
			attempt_lost(n, r);
			next = n->pending.next;
		}
	}
}

static int image_write(void *ctx, const void *buf, size_t len)
{
	return raft_storage_image_write(ctx, buf, len) == RAFT_OK ? 0 : -1;
}

/* job->run: possibly in a forked child, so it touches only the job, the store and the image
 * file (no env callback, no log line). */
static int snapshot_job_run(struct kv_snapshot_job *job)
{
	int rv = kv_snapshot_save(job->node->store, image_write, &job->image);

	if (rv == KV_OK && raft_storage_image_sync(&job->image) != RAFT_OK)
		rv = KV_EIO;
	job->size = job->image.size;
	job->crc = job->image.crc;
	job->err = rv == KV_OK ? 0 : job->image.err ? job->image.err : ENOMEM;
	return rv == KV_OK ? 0 : -1;
}

/*
 * The log size that triggers a snapshot. In the background the log keeps growing while the
 * job runs, and none of it can be dropped before the job is done: the trigger is lowered by
 * what the last job saw written meanwhile (at most half of snapshot_bytes), so that at a steady
 * load the log (on disk and in memory) peaks near snapshot_bytes rather than snapshot_bytes plus
 * a job's worth (DESIGN.md 5). The nodes of a cluster, which cross it together, are also
 * staggered a little so that they do not all fork and write at once: downwards, 0 to 3/16 less
 * by node id.
 */
static uint64_t snapshot_trigger_bytes(const struct kv_node *n)
{
	uint64_t bytes = n->cfg.snapshot_bytes, ahead = n->snap_grew_bytes;

	if (!n->env.snapshot_start)
		return bytes;
	if (ahead > bytes / 2)
		ahead = bytes / 2;
	return bytes - ahead - bytes / 16 * ((n->cfg.id + 3) % 4);
}

/* Starts a snapshot at meta: its image is written by job->run, in the background when the
 * environment can (env.snapshot_start), else here and now; kv_node_snapshot_done() installs it.
 * Either way a failed image is a warning and a retry later: the log is all there still. */
static void snapshot_start(struct kv_node *n, const struct raft_snapshot_meta *meta)
{
	struct kv_snapshot_job *job = &n->job;

	if (raft_storage_snapshot_begin(n->storage, meta) != RAFT_OK) {
		node_fail(n, "begin snapshot");
		return;
	}
	memset(job, 0, sizeof(*job));
	job->run = snapshot_job_run;
	job->index = meta->index;
	job->node = n;
	raft_storage_snapshot_image(n->storage, &job->image);
	n->snap_in_flight = true;
	n->snap_stale = false;
	n->snap_log_bytes = n->log_bytes;
	if (!n->env.snapshot_start) {
		kv_node_snapshot_done(n, job, job->run(job) == 0);
		return;
	}
	if (n->env.snapshot_start(n->env.ctx, job) != 0) {
		n->snap_in_flight = false;
		raft_storage_snapshot_abort(n->storage);
		n->snap_retry_ticks = KV_NODE_SNAPSHOT_RETRY_TICKS;
		nlog(n, 2, "background snapshot at %llu cannot start; trying again later",
		     (unsigned long long)meta->index);
		return;
	}
	nlog(n, 0, "background snapshot at %llu started (%llu log bytes)",
	     (unsigned long long)meta->index, (unsigned long long)n->log_bytes);
}

/* Compaction (DESIGN.md 5): once the log written since the last snapshot passes snapshot_bytes,
 * the state at the applied index goes into a new snapshot and the log before it is dropped. */
static void maybe_snapshot(struct kv_node *n)
{
	struct raft_status st;
	struct raft_snapshot_meta meta;

	if (n->log_bytes < snapshot_trigger_bytes(n) || n->snap_in_flight ||
	    n->snap_retry_ticks > 0)
		return;
	raft_status(n->raft, &st);
	if (st.applied <= st.snapshot_index)
		return;
	memset(&meta, 0, sizeof(meta));
	meta.index = st.applied;
	meta.term = raft_term_at(n->raft, st.applied);
	meta.conf = n->cfg.conf;
	snapshot_start(n, &meta);
}

/* --- the cluster's settings (kv/store.h) ------------------------------------------------------- */

/* How the cluster's settings differ from this node's, as a message into buf; false if they don't. */
static bool settings_differ(const struct kv_settings *mine, const struct kv_settings *theirs,
                            char *buf, size_t cap)
{
	if (mine->max_value_bytes != theirs->max_value_bytes)
		snprintf(
		        buf, cap,
		        "the cluster's --max-value-bytes is %llu, this node's is %llu (start it with "
		        "--max-value-bytes=%llu)",
		        (unsigned long long)theirs->max_value_bytes,
		        (unsigned long long)mine->max_value_bytes,
		        (unsigned long long)theirs->max_value_bytes);
	else if (mine->session_timeout_ms != theirs->session_timeout_ms)
		snprintf(buf, cap,
		         "the cluster's session timeout is %llu ms, this node's is %llu ms",
		         (unsigned long long)theirs->session_timeout_ms,
		         (unsigned long long)mine->session_timeout_ms);
	else if (mine->max_sessions != theirs->max_sessions)
		snprintf(buf, cap, "the cluster's session limit is %u, this node's is %u",
		         theirs->max_sessions, mine->max_sessions);
	else
		return false;
	return true;
}

/*
 * Once the store holds the cluster's settings (a Settings entry applied, or a snapshot that has
 * them), a node whose options differ must not serve: it would refuse or admit values, and lead,
 * by rules the log does not follow. Returns true (and the reason in n->why) when it must stop.
 */
static bool settings_refused(struct kv_node *n)
{
	struct kv_settings st;
	uint64_t index = kv_store_settings(n->store, &st);
	char diff[256];

	if (index == 0 || index == n->settings_seen)
		return false;
	n->settings_seen = index;
	if (!settings_differ(&n->cfg.store.settings, &st, diff, sizeof(diff))) {
		nlog(n, 1,
		     "cluster settings of entry %llu: max-value-bytes %llu, session timeout %llu ms, "
		     "%u sessions",
		     (unsigned long long)index, (unsigned long long)st.max_value_bytes,
		     (unsigned long long)st.session_timeout_ms, st.max_sessions);
		return false;
	}
	snprintf(n->why, sizeof(n->why), "refusing to join the cluster: %s", diff);
	return true;
}

/*
 * The first leader of a cluster (or of one whose log predates settings) makes its own the
 * cluster's: once an entry of its term is applied, everything committed before is in the store,
 * and none of it set them, so it proposes a Settings command, once per term. Writes wait for
 * it (start_write); a second one, from a leader that did not see the first, changes nothing.
 */
static void maybe_propose_settings(struct kv_node *n)
{
	struct raft_status st;
	struct kv_cmd c;
	uint64_t term;
	void *buf;
	size_t len;

	if (kv_store_settings(n->store, NULL) != 0)
		return;
	raft_status(n->raft, &st);
	if (st.role != RAFT_LEADER || n->settings_term == st.term || st.applied == 0 ||
	    raft_term_at(n->raft, st.applied) != st.term)
		return;
	memset(&c, 0, sizeof(c));
	c.op = KV_OP_SETTINGS;
	c.settings = n->cfg.store.settings;
	if (kv_cmd_encode(&c, &buf, &len) != KV_OK)
		return;
	if (raft_propose(n->raft, buf, (uint32_t)len, NULL, &term) != RAFT_OK)
		return; /* a transfer, or the uncommitted limit: tried again on the next turn */
	n->settings_term = term;
	nlog(n, 1, "proposing the cluster's settings: max-value-bytes %llu",
	     (unsigned long long)c.settings.max_value_bytes);
}

/* --- the update loop ---------------------------------------------------------------------------- */

static void node_reload(struct kv_node *n, uint64_t refused);

enum persist_outcome {
	PERSIST_DONE,
	PERSIST_FAILED, /* the storage failed: the node has stopped */
	PERSIST_REFUSED /* a leader's snapshot could not be installed: the old state is on disk */
};

/*
 * Makes an update's persistence work durable. An InstallSnapshot's last chunk must not cost the
 * follower its state when the image is bad (issue 15): the image is checked whole against the
 * leader's size and CRC on disk first (raft_storage_persist_stage, streaming: no memory), and
 * loaded into the state machine before the old snapshot and log are dropped (commit). Freeing the
 * old state before loading the new one keeps a second install at one state's memory (6fbcfd7);
 * that is safe because the old state does not need memory to survive: its snapshot and log stay
 * on disk until the new state is loaded, and a failed load (a bad image whose CRC checks, out of
 * memory) ends in PERSIST_REFUSED, after which node_reload takes them up again.
 */
static enum persist_outcome persist(struct kv_node *n, const struct raft_update *u)
{
	bool install = u->has_snap_chunk && u->snap_last;
	uint64_t index = u->snap_meta.index;
	int rc = raft_storage_persist_stage(n->storage, u), rv;

	if (rc == RAFT_ECORRUPT && install && !raft_storage_stopped(n->storage)) {
		nlog(n, 2, "snapshot %llu from the leader refused: %s", (unsigned long long)index,
		     raft_storage_errmsg(n->storage));
		return PERSIST_REFUSED;
	}
	if (rc != RAFT_OK) {
		node_fail(n, "persist");
		return PERSIST_FAILED;
	}
	if (install) {
		char why[512];
		rv = restore_store(n, index, true, why, sizeof(why));
		if (rv != KV_OK) {
			nlog(n, 2, "%s", why);
			raft_storage_persist_abandon(n->storage);
			return PERSIST_REFUSED;
		}
	}
	if (raft_storage_persist_commit(n->storage, u) != RAFT_OK) {
		node_fail(n, "persist");
		return PERSIST_FAILED;
	}
	return PERSIST_DONE;
}

static void handle_update(struct kv_node *n)
{
	struct raft_update u;
	uint64_t seq;

	if (raft_update_get(n->raft, &u) != RAFT_OK)
		return;
	/* messages first: the core holds back whatever must wait for this persist (raft.h) */
	for (size_t i = 0; i < u.n_msgs; i++)
		n->env.send(n->env.ctx, &u.msgs[i]);
	if (u.persist_seq && u.n_msgs && n->env.flush_sends)
		n->env.flush_sends(n->env.ctx);
	if (u.persist_seq) {
		/* durable before anything that depends on it leaves (raft.h, persistence) */
		enum persist_outcome po = persist(n, &u);
		if (po != PERSIST_DONE) {
			uint64_t refused = u.snap_meta.index; /* raft_update_done() clears u */
			raft_update_done(n->raft, &u);
			if (po == PERSIST_REFUSED)
				node_reload(n, refused);
			return;
		}
		for (size_t i = 0; i < u.n_entries; i++)
			n->log_bytes += u.entries[i].len + ENTRY_OVERHEAD_BYTES;
		if (u.has_snap_chunk && u.snap_last) {
			abandon_proposals_to(n, u.snap_meta.index);
			n->log_bytes = 0;
			n->snap_log_bytes = 0;
			n->snap_stale = n->snap_in_flight; /* the leader's snapshot wins */
			nlog(n, 1, "installed snapshot %llu from the leader",
			     (unsigned long long)u.snap_meta.index);
		}
	}
	for (size_t i = 0; i < u.n_committed && !n->failed; i++)
		apply_entry(n, &u.committed[i]);
	if (!n->failed && settings_refused(n)) {
		n->failed = true;
		nlog(n, 3, "%s; the node stops", n->why);
		fail_all(n, KV_STATUS_SHUTDOWN);
	}
	for (size_t i = 0; i < u.n_reads; i++)
		on_read_state(n, &u.reads[i]);
	seq = u.persist_seq; /* raft_update_done() clears u */
	raft_update_done(n->raft, &u);
	if (seq)
		raft_persisted(n->raft, seq);
	if (n->failed)
		return;
	serve_ready_reads(n);
	maybe_snapshot(n);
	maybe_propose_settings(n);
}

static void process(struct kv_node *n)
{
	if (n->in_process) {
		n->again = true;
		return;
	}
	n->in_process = true;
	do {
		n->again = false;
		while (!n->failed && raft_has_update(n->raft))
			handle_update(n);
	} while (n->again && !n->failed);
	n->in_process = false;
}

/* Work to do for an input: now, or at the flush the caller schedules (group commit). */
static void kick(struct kv_node *n)
{
	if (!n->env.schedule) {
		process(n);
		return;
	}
	if (!n->scheduled) {
		n->scheduled = true;
		n->env.schedule(n->env.ctx);
	}
}

void kv_node_flush(struct kv_node *n)
{
	if (!n->scheduled)
		return;
	n->scheduled = false;
	if (!n->failed)
		process(n);
}

/* --- the caller's entry points ------------------------------------------------------------------ */

uint64_t kv_node_max_value_bytes(const struct kv_node *n)
{
	struct kv_settings st;

	kv_store_settings(n->store, &st);
	return st.max_value_bytes;
}

/* A write whose value is over the limit whatever the key holds: the state machine would answer
 * KV_EFBIG and change nothing, so the node it reaches answers so at once, and it costs no
 * proposal (nor reaches Raft's entry limit, which would make it a bad request). Append and
 * WriteAt may still exceed it with what the key already holds: that is decided when applied. */
static bool value_over_limit(const struct kv_node *n, const struct kv_cmd *c)
{
	uint64_t max = kv_node_max_value_bytes(n);

	switch (c->op) {
	case KV_OP_PUT:
	case KV_OP_APPEND:
	case KV_OP_CREATE_EXCLUSIVE:
		return c->data_len > max;
	case KV_OP_WRITE_AT:
		return c->offset > max || c->data_len > max - c->offset;
	default:
		return false;
	}
}

int kv_node_submit(struct kv_node *n, struct kv_req *req)
{
	struct kv_cmd cmd;

	if (n->failed || n->n_pending >= n->cfg.max_pending)
		return -1;
	memset(&req->result, 0, sizeof(req->result));
	req->status = KV_STATUS_OK;
	req->state = RS_IDLE;
	req->deadline_ms = req->timeout_ms ? now_ms(n) + req->timeout_ms : 0;
	req->uncertain = 0;
	req->proposed = false;
	req->stamped = false;
	req->n_copies = 0;
	req->retry_ms = 0;
	req->resend_ms = KV_NODE_RESEND_MS;
	list_add(n, req);
	if (!req->cmd || kv_cmd_decode(req->cmd, req->cmd_len, &cmd) != KV_OK) {
		complete(n, req, KV_STATUS_BAD_REQUEST);
		return 0;
	}
	req->op = cmd.op;
	req->has_session = cmd.session != 0;
	req->session = cmd.session;
	req->seq = cmd.seq;
	if (cmd.op == KV_OP_SETTINGS) {
		complete(n, req, KV_STATUS_BAD_REQUEST); /* the nodes' own (cluster settings) */
		return 0;
	}
	if (value_over_limit(n, &cmd)) {
		req->result.op = cmd.op;
		req->result.status = KV_EFBIG;
		complete(n, req, KV_STATUS_OK);
		return 0;
	}
	start(n, req);
	kick(n);
	return 0;
}

void kv_node_cancel(struct kv_node *n, struct kv_req *req)
{
	if (!req->prev)
		return; /* not pending */
	complete(n, req, abandon_status(req, KV_STATUS_NOT_APPLIED));
}

static void sweep_read(struct kv_node *n, struct kv_req *r, uint32_t leader, uint64_t now)
{
	if (r->state == RS_WAIT_LEADER) {
		start_read(n, r);
	} else if (r->state == RS_READ_INDEX &&
	           (r->fwd_to != leader || now - r->attempt_ms >= KV_NODE_READ_RETRY_MS)) {
		/* the leader asked is gone, or the answer is lost: ask again under a new ctx (an
		 * answer to the old one is then ignored) */
		map_take(&n->reads, r->key);
		r->state = RS_IDLE;
		start_read(n, r);
	}
}

/* A write that awaits answers: sent again when that is safe and due (kv/node.h, Sending again);
 * one that cannot be ends when its answer is overdue. */
static void sweep_write(struct kv_node *n, struct kv_req *r, const struct raft_status *st,
                        uint64_t now)
{
	bool deposed = st->role != RAFT_LEADER || st->term != r->term;

	switch (r->state) {
	case RS_WAIT_LEADER:
		if (now >= r->retry_ms)
			start_write(n, r);
		return;
	case RS_FORWARDED:
		if (!resendable(r)) {
			if (now < r->answer_by_ms)
				return;
			/* its copy (or the answer) is lost, or the leader never answers */
			while (r->n_copies > 0)
				forget_copy(n, r, r->n_copies - 1);
			attempt_lost(n, r);
		} else if (st->leader && st->leader != r->fwd_to) {
			/* the leader changed: at once (if the new leader is this node, it proposes) */
			r->resend_ms = KV_NODE_RESEND_MS;
			start_write(n, r);
		} else if (now - r->attempt_ms >= r->resend_ms) {
			r->resend_ms = r->resend_ms * 2 < KV_NODE_RESEND_MAX_MS
			        ? r->resend_ms * 2
			        : KV_NODE_RESEND_MAX_MS;
			start_write(n, r);
		}
		return;
	case RS_PROPOSED:
		if (!deposed || r->internal)
			return; /* a copy's sender sends again, not the leader it reached */
		if (resendable(r)) {
			/* the entry may still commit under the next leader, or be overwritten */
			if (st->leader) {
				r->resend_ms = KV_NODE_RESEND_MS;
				start_write(n, r);
			}
		} else if (!r->deadline_ms && r->proposed &&
		           raft_term_at(n->raft, r->index) != r->term) {
			/* gone from this log, its index may not be applied for long: without a
			 * deadline it would wait for that (another node may still commit it) */
			forget_proposal(n, r);
			attempt_lost(n, r);
		}
		return;
	default:
		return;
	}
}

/* Retries what waits for a leader, sends again what may be lost, ends what passed its deadline.
 * A callback may change the list: after any completion the walk starts again (each one removes a
 * request, so that ends). */
static void sweep(struct kv_node *n)
{
	uint64_t now = now_ms(n), done;
	struct raft_status st;
	struct kv_req *r, *next;

	raft_status(n->raft, &st);
	for (r = n->pending.next; r != &n->pending; r = next) {
		next = r->next;
		done = n->completed;
		if (r->deadline_ms && now >= r->deadline_ms)
			complete(n, r, abandon_status(r, KV_STATUS_NOT_APPLIED));
		else if (kv_op_is_read(r->op))
			sweep_read(n, r, st.leader, now);
		else
			sweep_write(n, r, &st, now);
		if (n->completed != done)
			next = n->pending.next;
	}
}

void kv_node_snapshot_done(struct kv_node *n, struct kv_snapshot_job *job, bool ok)
{
	uint64_t index = job->index;
	int rc;

	if (job != &n->job || !n->snap_in_flight) {
		nlog(n, 2, "snapshot done for a job not in flight: ignored");
		return;
	}
	n->snap_in_flight = false;
	if (n->failed) {
		if (n->storage)
			raft_storage_snapshot_abort(n->storage);
		return;
	}
	if (!ok) {
		/* the log is all there still: nothing is lost, the next try comes later */
		raft_storage_snapshot_abort(n->storage);
		n->snap_retry_ticks = KV_NODE_SNAPSHOT_RETRY_TICKS;
		nlog(n, 2, "snapshot at %llu failed: %s; trying again later",
		     (unsigned long long)index, strerror(job->err ? job->err : EIO));
		return;
	}
	if (n->snap_stale) {
		raft_storage_snapshot_abort(n->storage);
		nlog(n, 1, "snapshot at %llu discarded: the leader's was installed",
		     (unsigned long long)index);
		return;
	}
	rc = raft_storage_snapshot_install(n->storage, job->size, job->crc);
	if (rc != RAFT_OK) {
		if (raft_storage_stopped(n->storage)) {
			node_fail(n, "install snapshot");
			return;
		}
		if (rc != RAFT_ENOENT)
			n->snap_retry_ticks = KV_NODE_SNAPSHOT_RETRY_TICKS;
		nlog(n, rc == RAFT_ENOENT ? 1 : 2, "snapshot at %llu not installed: %s",
		     (unsigned long long)index, raft_storage_errmsg(n->storage));
		return;
	}
	if (raft_snapshot_taken(n->raft, index, job->size, job->crc) != RAFT_OK)
		nlog(n, 3, "snapshot at index %llu: the core refused it",
		     (unsigned long long)index);
	nlog(n, 1, "snapshot at index %llu (%llu bytes), log compacted", (unsigned long long)index,
	     (unsigned long long)job->size);
	/* what was written while the job ran is not covered by it */
	n->log_bytes = n->log_bytes > n->snap_log_bytes ? n->log_bytes - n->snap_log_bytes : 0;
	n->snap_log_bytes = 0;
	n->snap_grew_bytes = n->log_bytes;
}

bool kv_node_snapshot_in_flight(const struct kv_node *n)
{
	return n->snap_in_flight;
}

void kv_node_tick(struct kv_node *n)
{
	if (n->failed)
		return;
	if (n->snap_retry_ticks > 0)
		n->snap_retry_ticks--;
	raft_tick(n->raft);
	process(n);
	sweep(n);
	process(n);
}

void kv_node_recv(struct kv_node *n, const struct raft_msg *m)
{
	if (n->failed)
		return;
	raft_step(n->raft, m);
	kick(n);
}

void kv_node_transfer(struct kv_node *n)
{
	if (n->failed)
		return;
	raft_transfer(n->raft, 0);
	kick(n);
}

int kv_node_fill_snapshot(struct kv_node *n, uint64_t index, uint64_t offset, void *buf, size_t len)
{
	size_t got = 0;

	if (!n->storage ||
	    raft_storage_snapshot_read(n->storage, index, offset, buf, len, &got) != RAFT_OK ||
	    got != len)
		return -1;
	return 0;
}

void kv_node_status(const struct kv_node *n, struct kv_proto_node_status *out)
{
	struct raft_status st;

	memset(out, 0, sizeof(*out));
	if (!n->raft) {
		out->id = n->cfg.id;
		return;
	}
	raft_status(n->raft, &st);
	out->id = st.id;
	out->role = (uint8_t)st.role;
	out->leader = st.leader;
	out->term = st.term;
	out->commit = st.commit;
	out->applied = st.applied;
	out->last_index = st.last_index;
	out->snapshot_index = st.snapshot_index;
	out->log_bytes = n->log_bytes;
	out->keys = n->store ? kv_store_key_count(n->store) : 0;
}

bool kv_node_failed(const struct kv_node *n, const char **why)
{
	if (why)
		*why = n->why;
	return n->failed;
}

const struct kv_store *kv_node_store(const struct kv_node *n)
{
	return n->store;
}

const struct raft *kv_node_raft(const struct kv_node *n)
{
	return n->raft;
}

void kv_node_config_default(struct kv_node_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	kv_store_config_default(&cfg->store);
	cfg->election_ticks = 10;
	cfg->heartbeat_ticks = 1;
	cfg->snapshot_bytes = KV_NODE_DEFAULT_SNAPSHOT_BYTES;
	cfg->snapshot_trailing = 1024;
	cfg->max_pending = KV_NODE_DEFAULT_MAX_PENDING;
}

static uint64_t raft_random_cb(void *ctx)
{
	struct kv_node *n = ctx;
	return n->env.random(n->env.ctx);
}

static void raft_log_cb(void *ctx, int level, const char *msg)
{
	nlog(ctx, level, "raft: %s", msg);
}

/*
 * Loads the node's durable state into n (whose cfg, env and dir are set): the storage opened and
 * recovered, the state machine restored from its snapshot, a core over the log. At the start, and
 * again by node_reload. On failure (a message in err) n holds none of the three.
 */
static int node_load(struct kv_node *n, char *err, size_t err_len)
{
	const struct kv_node_config *cfg = &n->cfg;
	struct raft_restore restore;
	struct raft_config rc;
	struct raft_env renv;
	int rv;

	memset(&restore, 0, sizeof(restore));
	rv = raft_storage_new(&cfg->storage, &n->storage);
	if (rv != RAFT_OK) {
		snprintf(err, err_len, "storage: %s", raft_strerror(rv));
		n->storage = NULL;
		return rv;
	}
	rv = raft_storage_open(n->storage, n->dir, &restore);
	if (rv != RAFT_OK) {
		snprintf(err, err_len, "%s", raft_storage_errmsg(n->storage));
		goto err_storage;
	}
	if (restore.snap.index > 0) {
		rv = restore_store(n, restore.snap.index, false, err, err_len);
		if (rv != KV_OK)
			goto err_store; /* the empty state restore_store left */
	} else {
		rv = kv_store_new(&n->cfg.store, &n->store);
		if (rv != KV_OK) {
			snprintf(err, err_len, "state machine: %s", kv_strerror(rv));
			goto err_restore;
		}
	}
	if (settings_refused(n)) {
		snprintf(err, err_len, "%s", n->why);
		n->why[0] = '\0';
		rv = RAFT_EINVAL;
		goto err_store;
	}
	n->log_bytes = 0;
	for (size_t i = 0; i < restore.n_entries; i++)
		n->log_bytes += restore.entries[i].len + ENTRY_OVERHEAD_BYTES;
	raft_config_default(&rc, cfg->id, &cfg->conf);
	if (cfg->election_ticks)
		rc.election_ticks = cfg->election_ticks;
	if (cfg->heartbeat_ticks)
		rc.heartbeat_ticks = cfg->heartbeat_ticks;
	rc.snapshot_trailing = cfg->snapshot_trailing;
	/* An entry larger than max_msg_bytes travels alone in its AppendEntries (raft.c
	 * send_append), so max_msg_bytes stays small: a follower catching up gets its entries in
	 * messages the leader encodes in a few milliseconds each, not in 4 MiB ones whose encoding
	 * held the loop long enough to cost it its leadership. */
	rc.max_entry_bytes = RAFT_MAX_ENTRY_BYTES; /* values are held to their limit at submit */
	renv.ctx = n;
	renv.random = raft_random_cb;
	renv.log = raft_log_cb;
	rv = raft_new(&rc, &renv, &restore, &n->raft);
	if (rv != RAFT_OK) {
		snprintf(err, err_len, "raft: %s", raft_strerror(rv));
		n->raft = NULL;
		goto err_store;
	}
	nlog(n, 1, "node %u open: snapshot %llu, log up to %llu", cfg->id,
	     (unsigned long long)restore.snap.index,
	     (unsigned long long)raft_storage_last_index(n->storage));
	raft_storage_restore_free(&restore); /* zeroes restore: after the log line */
	return RAFT_OK;

err_store:
	kv_store_free(n->store);
	n->store = NULL;
err_restore:
	raft_storage_restore_free(&restore);
err_storage:
	raft_storage_free(n->storage);
	n->storage = NULL;
	return rv;
}

/*
 * A snapshot from the leader was refused (its image did not match the leader's CRC, or did not
 * load): the node goes back to the snapshot and log it has on disk, which nothing touched, as a
 * restart would, without exiting. Its core replaced its log with the snapshot when the last
 * chunk arrived, so a new one is made rather than the old one told: what the old core held in
 * memory only was never acknowledged (raft.h: nothing is, before it is durable), the messages it
 * held back are lost as messages are, and term and vote are on disk. The leader, hearing nothing
 * for its last chunk, sends it again; this node answers that it holds no transfer, and the leader
 * starts over from offset 0. Requests in flight stay: their proposals and reads are matched by
 * index and term, as after any change of leader. The state machine is loaded again from the old
 * snapshot (an image the CRC refused left it intact, but it may be ahead of that snapshot, and
 * the new core applies the log from there); it is freed first, so that memory stays at one state.
 */
static void node_reload(struct kv_node *n, uint64_t refused)
{
	char err[384];

	raft_free(n->raft);
	n->raft = NULL;
	/* a background snapshot's temporary file goes with the storage (removed at the reopen) */
	n->snap_stale = n->snap_in_flight;
	raft_storage_free(n->storage);
	n->storage = NULL;
	kv_store_free(n->store);
	n->store = NULL;
	release_freed_memory();
	if (node_load(n, err, sizeof(err)) != RAFT_OK) {
		snprintf(n->why, sizeof(n->why), "snapshot %llu refused, then: %s",
		         (unsigned long long)refused, err);
		n->failed = true;
		nlog(n, 3, "%s; the node stops", n->why);
		fail_all(n, KV_STATUS_SHUTDOWN);
		return;
	}
	nlog(n, 2, "snapshot %llu refused: the node goes on from its own snapshot and log",
	     (unsigned long long)refused);
}

int kv_node_open(const struct kv_node_config *cfg, const struct kv_node_env *env,
                 struct kv_node **out, char *err, size_t err_len)
{
	struct kv_node *n;
	int rv;

	n = calloc(1, sizeof(*n));
	if (!n) {
		snprintf(err, err_len, "out of memory");
		return RAFT_ENOMEM;
	}
	n->cfg = *cfg;
	n->env = *env;
	n->next_key = (env->random(env->ctx) >> 2) | 1u; /* never wraps to 0 */
	n->wall0_ms = env->realtime_ms(env->ctx);
	n->mono0_ms = env->now_ms(env->ctx);
	/* the store's table key: this process's secret (kv_store_config.hash_key) */
	n->cfg.store.hash_key.k0 = env->random(env->ctx);
	n->cfg.store.hash_key.k1 = env->random(env->ctx);
	n->pending.next = n->pending.prev = &n->pending;
	if (!cfg->dir || strlen(cfg->dir) >= sizeof(n->dir)) {
		snprintf(err, err_len, "bad data directory");
		free(n);
		return RAFT_EINVAL;
	}
	strcpy(n->dir, cfg->dir);
	n->cfg.dir = n->dir;
	rv = node_load(n, err, err_len);
	if (rv != RAFT_OK) {
		free(n);
		return rv;
	}
	*out = n;
	return RAFT_OK;
}

void kv_node_close(struct kv_node *n)
{
	if (!n)
		return;
	fail_all(n, KV_STATUS_SHUTDOWN);
	if (n->snap_in_flight && n->storage) /* its process was stopped: remove its file */
		raft_storage_snapshot_abort(n->storage);
	raft_free(n->raft);
	kv_store_free(n->store);
	raft_storage_free(n->storage);
	map_free(&n->props);
	map_free(&n->reads);
	map_free(&n->forwards);
	map_free(&n->sessions);
	free(n);
}
