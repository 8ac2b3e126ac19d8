/* nodesim.c - deterministic in-process cluster of whole kv_nodes (see nodesim.h). */
#include "tests/lib/nodesim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/proto.h"
#include "kv/store.h"
#include "raft/raft.h"
#include "raft/vfs.h"
#include "tests/lib/heap.h"
#include "tests/lib/walcut.h"

#define NODESIM_LOG_LINES 64
#define NODESIM_LOG_LINE_BYTES 200
#define NODESIM_MAX_EVENTS_PER_RUN 20000000ull /* a run that never ends is a bug too */
#define NODESIM_SNAPSHOT_MAX_MS 300 /* a background snapshot ends 1..this ms after it starts */

/* --- deterministic randomness (splitmix64) ------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* --- events ------------------------------------------------------------------------------------- */

enum ev_kind { EV_TICK, EV_RAFT, EV_APP, EV_FLUSH, EV_SNAPSHOT_DONE };

struct event {
	uint64_t at;
	uint64_t seq;
	enum ev_kind kind;
	unsigned to, from;
	uint64_t epoch; /* EV_TICK, EV_FLUSH, EV_SNAPSHOT_DONE: the incarnation it belongs to */
	bool ok; /* EV_SNAPSHOT_DONE: what the job's run returned */
	struct raft_msg *msg; /* EV_RAFT: owned by the event */
	void *bytes; /* EV_APP: malloc'd frame; EV_RAFT snapshot chunk: raft_buf */
	size_t len;
};

/* The queue's order: by time, and at one instant by the order of scheduling. */
static bool ev_before(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	return x->at < y->at || (x->at == y->at && x->seq < y->seq);
}

/* --- the fixture -------------------------------------------------------------------------------- */

struct snode {
	struct nodesim *s;
	unsigned idx;
	struct kv_node *kv; /* NULL while down */
	struct raft_vfs *vfs;
	char dir[16];
	uint64_t epoch; /* bumped by a crash: ticks of the old incarnation are ignored */
	bool fault_armed;
	size_t fault_torn;
	uint64_t checked_applied; /* applied index whose hash was last checked */
	uint64_t snap_chunks, snaps;
	uint64_t stall_until_ms; /* nodesim_stall: events for it wait until then */
	int64_t clock_skew_ms; /* its wall clock's error, fixed for the run */
	uint64_t clock_jump_ms; /* nodesim_clock_jump, until it restarts */
	/* the background snapshot of this incarnation: its job ran at start, its end is an
	 * EV_SNAPSHOT_DONE event (or held, see nodesim_hold_snapshots) */
	struct kv_snapshot_job *job;
	bool job_ok;
	bool hold_snapshots;
	bool job_held;
	uint64_t snapshots_started;
	char stop_reason[NODESIM_ERROR_BYTES]; /* the last stop allowed by may_stop_mask */
};

struct nodesim {
	struct nodesim_options o;
	uint64_t now, ev_seq, rng;
	struct heap q;
	struct snode nodes[NODESIM_MAX_NODES];
	struct raft_conf conf;
	bool blocked[NODESIM_MAX_NODES][NODESIM_MAX_NODES];
	bool down[NODESIM_MAX_NODES][NODESIM_MAX_NODES]; /* nodesim_link_down */
	char error[NODESIM_ERROR_BYTES];
	bool failed;
	bool trace;
	/* state-machine safety: hash of the state after applying up to index i (0: not seen) */
	uint64_t *hash_at;
	size_t hash_cap;
	/* election safety: leader id of each term (0: none seen) */
	uint32_t *leader_of;
	size_t leader_cap;
	nodesim_filter_fn filter;
	void *filter_arg;
	nodesim_app_filter_fn app_filter;
	void *app_filter_arg;
	nodesim_mangle_fn mangle;
	void *mangle_arg;
	uint64_t crashes;
	uint64_t tails_cut;
	char logs[NODESIM_LOG_LINES][NODESIM_LOG_LINE_BYTES];
	unsigned log_next;
};

static void violation(struct nodesim *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void violation(struct nodesim *s, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (s->failed)
		return;
	s->failed = true;
	k = snprintf(s->error, sizeof(s->error),
	             "seed %llu, t=%llums: ", (unsigned long long)s->o.seed,
	             (unsigned long long)s->now);
	va_start(ap, fmt);
	vsnprintf(s->error + k, sizeof(s->error) - (size_t)k, fmt, ap);
	va_end(ap);
}

static void schedule(struct nodesim *s, uint64_t delay, const struct event *proto)
{
	struct event e = *proto;

	e.at = s->now + delay;
	e.seq = s->ev_seq++;
	if (heap_push(&s->q, &e) != 0)
		violation(s, "out of memory queueing an event");
}

static uint64_t below(struct nodesim *s, uint64_t n)
{
	return n ? rng_next(&s->rng) % n : 0;
}

static bool chance(struct nodesim *s, unsigned per_mille)
{
	return per_mille && below(s, 1000) < per_mille;
}

/* --- the network -------------------------------------------------------------------------------- */

static struct raft_msg *msg_copy(const struct raft_msg *m)
{
	struct raft_msg *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	*c = *m;
	if (m->type == RAFT_MSG_APPEND) {
		c->u.append.entries = NULL;
		if (m->u.append.n_entries) {
			c->u.append.entries =
			        malloc(m->u.append.n_entries * sizeof(struct raft_entry));
			if (!c->u.append.entries) {
				free(c);
				return NULL;
			}
			for (uint32_t i = 0; i < m->u.append.n_entries; i++) {
				c->u.append.entries[i] = m->u.append.entries[i];
				raft_buf_ref(c->u.append.entries[i].data);
			}
		}
	} else if (m->type == RAFT_MSG_SNAPSHOT) {
		c->u.snapshot.data = NULL;
	}
	return c;
}

static void msg_free(struct raft_msg *m)
{
	if (!m)
		return;
	if (m->type == RAFT_MSG_APPEND && m->u.append.entries) {
		for (uint32_t i = 0; i < m->u.append.n_entries; i++)
			raft_buf_unref(m->u.append.entries[i].data);
		free(m->u.append.entries);
	}
	free(m);
}

static void event_free(struct event *e)
{
	if (e->kind == EV_RAFT) {
		msg_free(e->msg);
		raft_buf_unref(e->bytes);
	} else if (e->kind == EV_APP) {
		free(e->bytes);
	}
}

static uint64_t delay_of(struct nodesim *s)
{
	return (s->o.delay_min_ms ? s->o.delay_min_ms : 1) + below(s, s->o.delay_jitter_ms + 1);
}

static void env_send(void *ctx, const struct raft_msg *m)
{
	struct snode *from = ctx;
	struct nodesim *s = from->s;
	unsigned to = m->to - 1, copies = 1;

	if (m->to == 0 || to >= s->o.n) {
		violation(s, "node %u sent %s to unknown node %u", from->idx + 1,
		          raft_msg_type_name(m->type), m->to);
		return;
	}
	if (m->from != from->idx + 1) {
		violation(s, "node %u sent a message from %u", from->idx + 1, m->from);
		return;
	}
	if (s->filter && s->filter(s->filter_arg, from->idx, to, m))
		return;
	if (s->blocked[from->idx][to] || s->down[from->idx][to] || chance(s, s->o.drop_pm))
		return;
	if (chance(s, s->o.dup_pm))
		copies = 2;
	for (unsigned c = 0; c < copies; c++) {
		struct event e = {.kind = EV_RAFT, .to = to, .from = from->idx};
		e.msg = msg_copy(m);
		if (!e.msg) {
			violation(s, "out of memory copying a message");
			return;
		}
		if (m->type == RAFT_MSG_SNAPSHOT) {
			const struct raft_msg_snapshot *sn = &m->u.snapshot;
			e.bytes = raft_buf_alloc(sn->len);
			if (!e.bytes) {
				msg_free(e.msg);
				violation(s, "out of memory copying a snapshot chunk");
				return;
			}
			if (sn->data) {
				memcpy(e.bytes, sn->data, sn->len);
			} else if (kv_node_fill_snapshot(from->kv, sn->meta.index, sn->offset,
			                                 e.bytes, sn->len) != 0) {
				/* that snapshot is gone already: the core sends again */
				raft_buf_unref(e.bytes);
				msg_free(e.msg);
				return;
			}
			e.msg->u.snapshot.data = e.bytes;
		}
		if (s->mangle)
			s->mangle(s->mangle_arg, from->idx, to, e.msg);
		schedule(s, delay_of(s), &e);
	}
}

/* true: queued (then maybe lost on the way); false: refused, as the transport refuses a frame
 * for a peer that is not connected or whose queue is full. */
static bool env_send_app(void *ctx, uint32_t to_id, const void *buf, size_t len)
{
	struct snode *from = ctx;
	struct nodesim *s = from->s;
	unsigned to = to_id - 1;
	struct event e = {.kind = EV_APP, .from = from->idx};
	enum nodesim_verdict v = NODESIM_DELIVER;

	if (to_id == 0 || to >= s->o.n) {
		violation(s, "node %u sent a frame to unknown node %u", from->idx + 1, to_id);
		return false;
	}
	if (s->filter && s->filter(s->filter_arg, from->idx, to, NULL))
		return true;
	if (s->app_filter)
		v = s->app_filter(s->app_filter_arg, from->idx, to, buf, len);
	if (v == NODESIM_REFUSE || s->down[from->idx][to] || chance(s, s->o.app_refuse_pm))
		return false;
	if (v == NODESIM_DROP || s->blocked[from->idx][to] || chance(s, s->o.drop_pm) ||
	    chance(s, s->o.app_drop_pm))
		return true;
	e.to = to;
	e.bytes = malloc(len ? len : 1);
	if (!e.bytes) {
		violation(s, "out of memory copying a frame");
		return true;
	}
	memcpy(e.bytes, buf, len);
	e.len = len;
	schedule(s, delay_of(s), &e);
	return true;
}

static uint64_t env_random(void *ctx)
{
	struct snode *nd = ctx;
	return rng_next(&nd->s->rng);
}

static uint64_t env_now_ms(void *ctx)
{
	struct snode *nd = ctx;
	return nd->s->now;
}

static uint64_t env_realtime_ms(void *ctx)
{
	struct snode *nd = ctx;
	return nodesim_realtime(nd->s, nd->idx);
}

static void env_log(void *ctx, int level, const char *msg)
{
	struct snode *nd = ctx;
	struct nodesim *s = nd->s;

	snprintf(s->logs[s->log_next], NODESIM_LOG_LINE_BYTES, "%6llums n%u [%d] %s",
	         (unsigned long long)s->now, nd->idx + 1, level, msg);
	if (s->trace)
		fprintf(stderr, "%s\n", s->logs[s->log_next]);
	s->log_next = (s->log_next + 1) % NODESIM_LOG_LINES;
}

/* kv_node_flush() after every event already queued for now: the end of a daemon's loop turn */
static void env_schedule(void *ctx)
{
	struct snode *nd = ctx;
	struct event e = {.kind = EV_FLUSH, .to = nd->idx, .epoch = nd->epoch};

	schedule(nd->s, 0, &e);
}

static void storage_log(void *ctx, int level, const char *msg)
{
	env_log(ctx, level, msg);
}

/*
 * env.snapshot_start: the job runs here and now (the "child" sees the state at this instant and
 * writes through the fault-injecting vfs); its end reaches the node later, after a delay drawn
 * from the seed, so the node goes on meanwhile (the daemon's forked child, deterministic).
 */
static int env_snapshot_start(void *ctx, struct kv_snapshot_job *job)
{
	struct snode *nd = ctx;
	struct event e = {.kind = EV_SNAPSHOT_DONE, .to = nd->idx, .epoch = nd->epoch};
	uint64_t delay = 1 + below(nd->s, NODESIM_SNAPSHOT_MAX_MS);

	nd->job = job;
	nd->snapshots_started++;
	e.ok = job->run(job) == 0;
	nd->job_ok = e.ok;
	if (nd->hold_snapshots) {
		nd->job_held = true;
		return 0;
	}
	schedule(nd->s, delay, &e);
	return 0;
}

/* --- nodes -------------------------------------------------------------------------------------- */

static int node_open(struct nodesim *s, unsigned i, char *err, size_t err_len)
{
	struct snode *nd = &s->nodes[i];
	struct kv_node_config cfg;
	struct kv_node_env env = {
	        .ctx = nd,
	        .random = env_random,
	        .now_ms = env_now_ms,
	        .realtime_ms = env_realtime_ms,
	        .send = env_send,
	        .send_app = env_send_app,
	        .log = env_log,
	        .schedule = env_schedule,
	        .snapshot_start = s->o.sync_snapshots ? NULL : env_snapshot_start,
	};
	struct event tick = {.kind = EV_TICK, .to = i};
	int rv;

	kv_node_config_default(&cfg);
	cfg.id = i + 1;
	cfg.conf = s->conf;
	cfg.dir = nd->dir;
	cfg.storage.vfs = nd->vfs;
	cfg.storage.log = storage_log;
	cfg.storage.log_ctx = nd;
	if (s->o.snapshot_bytes)
		cfg.snapshot_bytes = s->o.snapshot_bytes;
	if (s->o.snapshot_trailing)
		cfg.snapshot_trailing = s->o.snapshot_trailing;
	if (s->o.session_timeout_ms)
		cfg.store.settings.session_timeout_ms = s->o.session_timeout_ms;
	nd->clock_jump_ms = 0; /* set right at boot */
	if (s->o.max_value_bytes[i])
		cfg.store.settings.max_value_bytes = s->o.max_value_bytes[i];
	rv = kv_node_open(&cfg, &env, &nd->kv, err, err_len);
	if (rv != 0) {
		nd->kv = NULL;
		return -1;
	}
	nd->epoch++;
	nd->checked_applied = UINT64_MAX;
	nd->job = NULL;
	nd->job_held = false;
	tick.epoch = nd->epoch;
	schedule(s, 1 + below(s, NODESIM_TICK_MS), &tick);
	return 0;
}

void nodesim_options_default(struct nodesim_options *o, unsigned n, uint64_t seed)
{
	memset(o, 0, sizeof(*o));
	o->n = n;
	o->seed = seed;
	o->delay_min_ms = 1;
	o->delay_jitter_ms = 4;
}

int nodesim_new(const struct nodesim_options *o, struct nodesim **out, char *err, size_t err_len)
{
	struct nodesim *s;
	const char *trace = getenv("KV_NODE_TRACE");

	if (o->n == 0 || o->n > NODESIM_MAX_NODES) {
		snprintf(err, err_len, "bad node count %u", o->n);
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	s->o = *o;
	heap_init(&s->q, sizeof(struct event), ev_before);
	s->rng = o->seed * 0x2545f4914f6cdd1dULL + 17;
	s->trace = trace && *trace && strcmp(trace, "0") != 0;
	s->conf.n = o->n;
	for (unsigned i = 0; i < o->n; i++)
		s->conf.ids[i] = i + 1;
	for (unsigned i = 0; i < o->n; i++) {
		struct snode *nd = &s->nodes[i];
		nd->s = s;
		nd->idx = i;
		snprintf(nd->dir, sizeof(nd->dir), "/n%u", i + 1);
		if (o->clock_skew_ms)
			nd->clock_skew_ms = (int64_t)below(s, 2 * (uint64_t)o->clock_skew_ms + 1) -
			        (int64_t)o->clock_skew_ms;
		nd->vfs = raft_vfs_mem_new();
		if (!nd->vfs) {
			snprintf(err, err_len, "out of memory");
			nodesim_free(s);
			return -1;
		}
	}
	for (unsigned i = 0; i < o->n; i++) {
		if (node_open(s, i, err, err_len) != 0) {
			nodesim_free(s);
			return -1;
		}
	}
	*out = s;
	return 0;
}

void nodesim_free(struct nodesim *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->o.n; i++) {
		kv_node_close(s->nodes[i].kv);
		s->nodes[i].kv = NULL;
	}
	while (heap_len(&s->q)) {
		struct event e;
		heap_pop(&s->q, &e);
		event_free(&e);
	}
	heap_free(&s->q);
	for (unsigned i = 0; i < s->o.n; i++)
		raft_vfs_free(s->nodes[i].vfs);
	free(s->hash_at);
	free(s->leader_of);
	free(s);
}

unsigned nodesim_n(const struct nodesim *s)
{
	return s->o.n;
}

uint64_t nodesim_seed(const struct nodesim *s)
{
	return s->o.seed;
}

uint64_t nodesim_now(const struct nodesim *s)
{
	return s->now;
}

uint64_t nodesim_random(struct nodesim *s)
{
	return rng_next(&s->rng);
}

const char *nodesim_error(const struct nodesim *s)
{
	return s->failed ? s->error : NULL;
}

struct kv_node *nodesim_node(struct nodesim *s, unsigned i)
{
	return i < s->o.n ? s->nodes[i].kv : NULL;
}

bool nodesim_up(const struct nodesim *s, unsigned i)
{
	return i < s->o.n && s->nodes[i].kv != NULL;
}

/* --- checks after every event ------------------------------------------------------------------- */

static bool grow_u64(uint64_t **arr, size_t *cap, uint64_t need)
{
	size_t cap2 = *cap ? *cap : 256;
	uint64_t *a;

	if (need < *cap)
		return true;
	while (cap2 <= need)
		cap2 *= 2;
	a = realloc(*arr, cap2 * sizeof(*a));
	if (!a)
		return false;
	memset(a + *cap, 0, (cap2 - *cap) * sizeof(*a));
	*arr = a;
	*cap = cap2;
	return true;
}

static bool grow_u32(uint32_t **arr, size_t *cap, uint64_t need)
{
	size_t cap2 = *cap ? *cap : 64;
	uint32_t *a;

	if (need < *cap)
		return true;
	while (cap2 <= need)
		cap2 *= 2;
	a = realloc(*arr, cap2 * sizeof(*a));
	if (!a)
		return false;
	memset(a + *cap, 0, (cap2 - *cap) * sizeof(*a));
	*arr = a;
	*cap = cap2;
	return true;
}

static void check_node(struct nodesim *s, struct snode *nd)
{
	struct kv_proto_node_status st;
	const char *why = "";
	uint64_t h;

	if (!nd->kv)
		return;
	if (kv_node_failed(nd->kv, &why)) {
		if (nd->fault_armed && raft_vfs_mem_fault_fired(nd->vfs)) {
			/* a failed fsync stops the node; the process exits: a crash */
			nodesim_crash(s, nd->idx, nd->fault_torn);
			return;
		}
		if (s->o.may_stop_mask & (1u << nd->idx)) {
			snprintf(nd->stop_reason, sizeof(nd->stop_reason), "%s", why);
			nodesim_crash(s, nd->idx, 0);
			return;
		}
		violation(s, "node %u stopped without an injected fault: %s", nd->idx + 1, why);
		return;
	}
	kv_node_status(nd->kv, &st);
	if (st.role == RAFT_LEADER) {
		if (!grow_u32(&s->leader_of, &s->leader_cap, st.term)) {
			violation(s, "out of memory");
			return;
		}
		if (s->leader_of[st.term] && s->leader_of[st.term] != st.id) {
			violation(s, "two leaders in term %llu: nodes %u and %u",
			          (unsigned long long)st.term, s->leader_of[st.term], st.id);
			return;
		}
		s->leader_of[st.term] = st.id;
	}
	if (st.applied == nd->checked_applied)
		return;
	nd->checked_applied = st.applied;
	if (kv_store_applied_index(kv_node_store(nd->kv)) > st.applied) {
		violation(s, "node %u: store applied %llu past raft applied %llu", st.id,
		          (unsigned long long)kv_store_applied_index(kv_node_store(nd->kv)),
		          (unsigned long long)st.applied);
		return;
	}
	if (st.applied == 0)
		return;
	if (!grow_u64(&s->hash_at, &s->hash_cap, st.applied)) {
		violation(s, "out of memory");
		return;
	}
	h = kv_store_hash(kv_node_store(nd->kv)) | 1; /* never 0: 0 means unseen */
	if (s->hash_at[st.applied] && s->hash_at[st.applied] != h) {
		violation(s,
		          "state-machine safety: node %u has hash %016llx at applied index %llu, "
		          "another node had %016llx",
		          st.id, (unsigned long long)h, (unsigned long long)st.applied,
		          (unsigned long long)s->hash_at[st.applied]);
		return;
	}
	s->hash_at[st.applied] = h;
}

static void check_all(struct nodesim *s)
{
	for (unsigned i = 0; i < s->o.n && !s->failed; i++)
		check_node(s, &s->nodes[i]);
}

/* --- running ------------------------------------------------------------------------------------ */

static void dispatch(struct nodesim *s, struct event *e)
{
	struct snode *nd = &s->nodes[e->to];

	if (nd->kv && nd->stall_until_ms > s->now) {
		/* a stalled node: the event waits (re-queued in order behind the ones before it) */
		schedule(s, nd->stall_until_ms - s->now, e);
		return;
	}
	switch (e->kind) {
	case EV_TICK:
		if (!nd->kv || e->epoch != nd->epoch)
			break;
		kv_node_tick(nd->kv);
		if (nd->kv && e->epoch == nd->epoch) {
			struct event next = {.kind = EV_TICK, .to = e->to, .epoch = e->epoch};
			schedule(s, NODESIM_TICK_MS, &next);
		}
		break;
	case EV_RAFT:
		if (!nd->kv || s->blocked[e->from][e->to])
			break;
		if (e->msg->type == RAFT_MSG_SNAPSHOT) {
			nd->snap_chunks++;
			if (e->msg->u.snapshot.last)
				nd->snaps++;
		}
		kv_node_recv(nd->kv, e->msg);
		break;
	case EV_APP:
		if (!nd->kv || s->blocked[e->from][e->to] || s->down[e->from][e->to])
			break;
		kv_node_recv_app(nd->kv, e->from + 1, e->bytes, e->len);
		break;
	case EV_FLUSH:
		if (nd->kv && e->epoch == nd->epoch)
			kv_node_flush(nd->kv);
		break;
	case EV_SNAPSHOT_DONE:
		/* an earlier incarnation's job ended with it: the node it belonged to is gone */
		if (nd->kv && e->epoch == nd->epoch && nd->job) {
			struct kv_snapshot_job *job = nd->job;
			nd->job = NULL;
			kv_node_snapshot_done(nd->kv, job, e->ok);
		}
		break;
	}
	event_free(e);
}

bool nodesim_step(struct nodesim *s)
{
	struct event e;

	if (s->failed || heap_len(&s->q) == 0)
		return false;
	heap_pop(&s->q, &e);
	if (e.at > s->now)
		s->now = e.at;
	dispatch(s, &e);
	check_all(s);
	return !s->failed;
}

bool nodesim_run_until(struct nodesim *s, bool (*done)(struct nodesim *s, void *arg), void *arg,
                       uint64_t max_ms)
{
	uint64_t until = s->now + max_ms;
	uint64_t events = 0;

	for (;;) {
		const struct event *next;

		if (s->failed)
			return false;
		if (done && done(s, arg))
			return true;
		next = heap_top(&s->q);
		if (!next || next->at > until) {
			s->now = until;
			return done ? done(s, arg) : true;
		}
		if (++events > NODESIM_MAX_EVENTS_PER_RUN) {
			violation(s, "more than %llu events in one run",
			          (unsigned long long)NODESIM_MAX_EVENTS_PER_RUN);
			return false;
		}
		nodesim_step(s);
	}
}

bool nodesim_run_for(struct nodesim *s, uint64_t ms)
{
	return nodesim_run_until(s, NULL, NULL, ms) && !s->failed;
}

int nodesim_leader(const struct nodesim *s)
{
	int best = -1;
	uint64_t best_term = 0;

	for (unsigned i = 0; i < s->o.n; i++) {
		struct kv_proto_node_status st;
		if (!s->nodes[i].kv)
			continue;
		kv_node_status(s->nodes[i].kv, &st);
		if (st.role == RAFT_LEADER && (best < 0 || st.term > best_term)) {
			best = (int)i;
			best_term = st.term;
		}
	}
	return best;
}

static bool connected(const struct nodesim *s, unsigned a, unsigned b)
{
	return !s->blocked[a][b] && !s->blocked[b][a];
}

/* A leader that has committed its own entries, applied the cluster's settings (so that it
 * proposes a write at once: kv/node.h) and that every up node it reaches follows. */
static bool settled_leader(struct nodesim *s, void *arg)
{
	int l = nodesim_leader(s);
	struct kv_proto_node_status ls;

	(void)arg;
	if (l < 0)
		return false;
	kv_node_status(s->nodes[l].kv, &ls);
	if (ls.commit != ls.last_index || !kv_store_settings(kv_node_store(s->nodes[l].kv), NULL))
		return false;
	for (unsigned i = 0; i < s->o.n; i++) {
		struct kv_proto_node_status st;
		if (!s->nodes[i].kv || !connected(s, i, (unsigned)l))
			continue;
		kv_node_status(s->nodes[i].kv, &st);
		if (st.leader != ls.id || st.term != ls.term)
			return false;
	}
	return true;
}

int nodesim_wait_leader(struct nodesim *s, uint64_t max_ms)
{
	if (!nodesim_run_until(s, settled_leader, NULL, max_ms))
		return -1;
	return nodesim_leader(s);
}

static bool converged(struct nodesim *s, void *arg)
{
	int l;
	struct kv_proto_node_status ls;
	uint64_t h;

	if (!settled_leader(s, arg))
		return false;
	l = nodesim_leader(s);
	kv_node_status(s->nodes[l].kv, &ls);
	if (ls.applied != ls.commit)
		return false;
	h = kv_store_hash(kv_node_store(s->nodes[l].kv));
	for (unsigned i = 0; i < s->o.n; i++) {
		struct kv_proto_node_status st;
		if (!s->nodes[i].kv)
			continue;
		kv_node_status(s->nodes[i].kv, &st);
		if (st.applied != ls.commit || kv_store_hash(kv_node_store(s->nodes[i].kv)) != h)
			return false;
	}
	return true;
}

bool nodesim_wait_converged(struct nodesim *s, uint64_t max_ms)
{
	return nodesim_run_until(s, converged, NULL, max_ms);
}

/* --- faults ------------------------------------------------------------------------------------- */

void nodesim_block(struct nodesim *s, unsigned from, unsigned to, bool blocked)
{
	if (from < s->o.n && to < s->o.n && from != to)
		s->blocked[from][to] = blocked;
}

void nodesim_isolate(struct nodesim *s, unsigned i)
{
	for (unsigned j = 0; j < s->o.n; j++) {
		nodesim_block(s, i, j, true);
		nodesim_block(s, j, i, true);
	}
}

void nodesim_partition(struct nodesim *s, unsigned side_mask)
{
	for (unsigned a = 0; a < s->o.n; a++)
		for (unsigned b = 0; b < s->o.n; b++)
			nodesim_block(s, a, b, ((side_mask >> a) & 1) != ((side_mask >> b) & 1));
}

void nodesim_link_down(struct nodesim *s, unsigned from, unsigned to, bool down)
{
	if (from < s->o.n && to < s->o.n && from != to)
		s->down[from][to] = down;
}

void nodesim_heal(struct nodesim *s)
{
	memset(s->blocked, 0, sizeof(s->blocked));
	memset(s->down, 0, sizeof(s->down));
}

void nodesim_set_drop(struct nodesim *s, unsigned drop_pm)
{
	s->o.drop_pm = drop_pm;
}

void nodesim_set_app_faults(struct nodesim *s, unsigned drop_pm, unsigned refuse_pm)
{
	s->o.app_drop_pm = drop_pm;
	s->o.app_refuse_pm = refuse_pm;
}

void nodesim_set_filter(struct nodesim *s, nodesim_filter_fn fn, void *arg)
{
	s->filter = fn;
	s->filter_arg = arg;
}

void nodesim_set_app_filter(struct nodesim *s, nodesim_app_filter_fn fn, void *arg)
{
	s->app_filter = fn;
	s->app_filter_arg = arg;
}

void nodesim_clock_jump(struct nodesim *s, unsigned i, uint64_t ms)
{
	if (i < s->o.n && s->nodes[i].kv)
		s->nodes[i].clock_jump_ms += ms;
}

uint64_t nodesim_realtime_unjumped(const struct nodesim *s, unsigned i)
{
	int64_t skew = i < s->o.n ? s->nodes[i].clock_skew_ms : 0;

	return (uint64_t)((int64_t)(NODESIM_EPOCH_MS + s->now) + skew);
}

uint64_t nodesim_realtime(const struct nodesim *s, unsigned i)
{
	return nodesim_realtime_unjumped(s, i) + (i < s->o.n ? s->nodes[i].clock_jump_ms : 0);
}

void nodesim_set_mangle(struct nodesim *s, nodesim_mangle_fn fn, void *arg)
{
	s->mangle = fn;
	s->mangle_arg = arg;
}

void nodesim_drop_in_flight(struct nodesim *s)
{
	struct heap keep;

	heap_init(&keep, sizeof(struct event), ev_before);
	while (heap_len(&s->q)) {
		struct event e;
		heap_pop(&s->q, &e);
		if (e.kind == EV_TICK || e.kind == EV_FLUSH || e.kind == EV_SNAPSHOT_DONE) {
			/* not messages: a node's own work */
			if (heap_push(&keep, &e) != 0)
				violation(s, "out of memory");
		} else {
			event_free(&e);
		}
	}
	heap_free(&s->q);
	s->q = keep;
}

void nodesim_crash(struct nodesim *s, unsigned i, size_t torn_bytes)
{
	struct snode *nd;

	if (i >= s->o.n || !s->nodes[i].kv)
		return;
	nd = &s->nodes[i];
	kv_node_close(nd->kv); /* a snapshot in flight is abandoned (its child dies too) */
	nd->kv = NULL;
	nd->job = NULL;
	nd->job_held = false;
	nd->epoch++;
	nd->stall_until_ms = 0;
	s->crashes++;
	raft_vfs_mem_crash(nd->vfs, torn_bytes);
	raft_vfs_mem_clear_faults(nd->vfs);
	nd->fault_armed = false;
	if (s->trace)
		fprintf(stderr, "%6llums n%u CRASH (torn %zu)\n", (unsigned long long)s->now, i + 1,
		        torn_bytes);
}

void nodesim_arm_sync_fault(struct nodesim *s, unsigned i, unsigned long nth, size_t torn_bytes)
{
	if (i >= s->o.n || !s->nodes[i].kv)
		return;
	raft_vfs_mem_fail(s->nodes[i].vfs, RAFT_VFS_OP_SYNC, nth, EIO, false);
	s->nodes[i].fault_armed = true;
	s->nodes[i].fault_torn = torn_bytes;
}

void nodesim_disarm_faults(struct nodesim *s)
{
	for (unsigned i = 0; i < s->o.n; i++) {
		raft_vfs_mem_clear_faults(s->nodes[i].vfs);
		s->nodes[i].fault_armed = false;
	}
}

void nodesim_stall(struct nodesim *s, unsigned i, uint64_t ms)
{
	if (i < s->o.n && s->nodes[i].kv && s->now + ms > s->nodes[i].stall_until_ms)
		s->nodes[i].stall_until_ms = s->now + ms;
}

void nodesim_unstall(struct nodesim *s)
{
	for (unsigned i = 0; i < s->o.n; i++)
		s->nodes[i].stall_until_ms = 0;
}

/* Whether up node j's core holds entry (index, term) durably (up to its stable index). */
static bool durably_holds(struct nodesim *s, unsigned j, uint64_t index, uint64_t term)
{
	const struct raft *r = s->nodes[j].kv ? kv_node_raft(s->nodes[j].kv) : NULL;
	struct raft_status st;

	if (!r)
		return false;
	raft_status(r, &st);
	return index <= st.stable && raft_term_at(r, index) == term;
}

int nodesim_cut_tail(struct nodesim *s, unsigned i, uint64_t pick)
{
	struct snode *nd = &s->nodes[i];
	struct walcut_tail t;
	unsigned quorum = s->o.n / 2 + 1;
	size_t k;
	int rc, cut = 0;

	if (i >= s->o.n || nd->kv)
		return 0;
	rc = walcut_scan(nd->vfs, nd->dir, &t);
	if (rc < 0) {
		violation(s, "node %u: cannot read its last segment", i + 1);
		walcut_tail_free(&t);
		return -1;
	}
	for (k = t.n; rc == 0 && k > 0; k--) {
		unsigned holders = 0;
		for (unsigned j = 0; j < s->o.n; j++)
			if (j != i && durably_holds(s, j, t.recs[k - 1].index, t.recs[k - 1].term))
				holders++;
		if (holders < quorum)
			break;
	}
	if (rc == 0 && k < t.n) {
		size_t c = k + (size_t)(pick % (t.n - k));
		uint64_t at = t.recs[c].offset + (pick >> 20) % t.recs[c].len;
		if (walcut_cut_at(nd->vfs, nd->dir, &t, at) != 0) {
			violation(s, "node %u: cannot cut %s", i + 1, t.name);
			cut = -1;
		} else {
			cut = (int)(t.n - c);
			s->tails_cut++;
			if (s->trace)
				fprintf(stderr,
				        "%6llums n%u loses entries %llu..%llu (%s cut at %llu)\n",
				        (unsigned long long)s->now, i + 1,
				        (unsigned long long)t.recs[c].index,
				        (unsigned long long)t.recs[t.n - 1].index, t.name,
				        (unsigned long long)at);
		}
	}
	walcut_tail_free(&t);
	return cut;
}

uint64_t nodesim_tails_cut(const struct nodesim *s)
{
	return s->tails_cut;
}

int nodesim_restart(struct nodesim *s, unsigned i)
{
	char err[256];

	if (i >= s->o.n || s->nodes[i].kv)
		return -1;
	if (node_open(s, i, err, sizeof(err)) != 0) {
		if (s->o.may_stop_mask & (1u << i)) {
			snprintf(s->nodes[i].stop_reason, sizeof(s->nodes[i].stop_reason), "%s",
			         err);
			return -1;
		}
		violation(s, "node %u cannot restart: %s", i + 1, err);
		return -1;
	}
	if (s->trace)
		fprintf(stderr, "%6llums n%u RESTART\n", (unsigned long long)s->now, i + 1);
	check_node(s, &s->nodes[i]);
	return 0;
}

void nodesim_hold_snapshots(struct nodesim *s, unsigned i, bool hold)
{
	if (i < s->o.n)
		s->nodes[i].hold_snapshots = hold;
}

bool nodesim_snapshot_held(const struct nodesim *s, unsigned i)
{
	return i < s->o.n && s->nodes[i].job_held;
}

bool nodesim_release_snapshot(struct nodesim *s, unsigned i, bool ok)
{
	struct snode *nd;
	struct kv_snapshot_job *job;

	if (i >= s->o.n || !s->nodes[i].kv || !s->nodes[i].job_held)
		return false;
	nd = &s->nodes[i];
	job = nd->job;
	nd->job = NULL;
	nd->job_held = false;
	kv_node_snapshot_done(nd->kv, job, ok && nd->job_ok);
	check_all(s);
	return true;
}

/* --- inspection --------------------------------------------------------------------------------- */

void nodesim_status(struct nodesim *s, unsigned i, struct kv_proto_node_status *st)
{
	memset(st, 0, sizeof(*st));
	if (i < s->o.n && s->nodes[i].kv)
		kv_node_status(s->nodes[i].kv, st);
}

uint64_t nodesim_hash(struct nodesim *s, unsigned i)
{
	if (i >= s->o.n || !s->nodes[i].kv)
		return 0;
	return kv_store_hash(kv_node_store(s->nodes[i].kv));
}

uint64_t nodesim_snapshot_chunks_received(const struct nodesim *s, unsigned i)
{
	return i < s->o.n ? s->nodes[i].snap_chunks : 0;
}

uint64_t nodesim_snapshots_started(const struct nodesim *s, unsigned i)
{
	return i < s->o.n ? s->nodes[i].snapshots_started : 0;
}

struct raft_vfs *nodesim_vfs(struct nodesim *s, unsigned i)
{
	return i < s->o.n ? s->nodes[i].vfs : NULL;
}

void nodesim_set_max_value_bytes(struct nodesim *s, unsigned i, uint64_t max_value_bytes)
{
	if (i < s->o.n)
		s->o.max_value_bytes[i] = max_value_bytes;
}

const char *nodesim_stop_reason(const struct nodesim *s, unsigned i)
{
	return i < s->o.n && s->nodes[i].stop_reason[0] ? s->nodes[i].stop_reason : NULL;
}

uint64_t nodesim_crashes(const struct nodesim *s)
{
	return s->crashes;
}

uint64_t nodesim_snapshots_received(const struct nodesim *s, unsigned i)
{
	return i < s->o.n ? s->nodes[i].snaps : 0;
}

void nodesim_dump(struct nodesim *s)
{
	printf("\n  nodesim seed %llu at t=%llums%s%s\n", (unsigned long long)s->o.seed,
	       (unsigned long long)s->now, s->failed ? ": " : "", s->failed ? s->error : "");
	for (unsigned i = 0; i < s->o.n; i++) {
		struct kv_proto_node_status st;
		if (!s->nodes[i].kv) {
			printf("    n%u down\n", i + 1);
			continue;
		}
		kv_node_status(s->nodes[i].kv, &st);
		printf("    n%u %-13s term %llu leader %u commit %llu applied %llu last %llu snap %llu "
		       "keys %llu hash %016llx\n",
		       i + 1, raft_role_name((enum raft_role)st.role), (unsigned long long)st.term,
		       st.leader, (unsigned long long)st.commit, (unsigned long long)st.applied,
		       (unsigned long long)st.last_index, (unsigned long long)st.snapshot_index,
		       (unsigned long long)st.keys, (unsigned long long)nodesim_hash(s, i));
	}
	printf("    %zu events queued; last log lines:\n", heap_len(&s->q));
	for (unsigned k = 0; k < NODESIM_LOG_LINES; k++) {
		const char *line = s->logs[(s->log_next + k) % NODESIM_LOG_LINES];
		if (*line)
			printf("      %s\n", line);
	}
}

/* --- requests ----------------------------------------------------------------------------------- */

static void req_cb(struct kv_req *k)
{
	struct nodesim_req *r = k->data;

	r->pending = false;
	r->done = true;
	r->done_ms = r->sim->now;
}

void nodesim_cmd(const struct nodesim *s, struct kv_cmd *c, int op, const char *key,
                 const char *data)
{
	memset(c, 0, sizeof(*c));
	c->op = (uint8_t)op;
	c->time_ms = NODESIM_EPOCH_MS + s->now;
	c->mode = 0644;
	if (key) {
		c->key = key;
		c->key_len = strlen(key);
	}
	if (data) {
		c->data = data;
		c->data_len = strlen(data);
	}
}

void nodesim_req_release(struct nodesim_req *r)
{
	if (r->pending)
		return;
	kv_result_release(&r->req.result);
	raft_buf_unref(r->req.cmd);
	r->req.cmd = NULL;
}

static int submit_buf(struct nodesim *s, unsigned i, void *buf, size_t len, uint64_t timeout_ms,
                      struct nodesim_req *r)
{
	r->sim = s;
	r->node = i;
	r->done = false;
	r->pending = true;
	r->submitted_ms = s->now;
	r->done_ms = 0;
	memset(&r->req, 0, sizeof(r->req));
	r->req.data = r;
	r->req.cb = req_cb;
	r->req.cmd = buf;
	r->req.cmd_len = len;
	r->req.timeout_ms = timeout_ms;
	if (kv_node_submit(s->nodes[i].kv, &r->req) != 0) {
		r->pending = false;
		return -1;
	}
	/* the node may have answered (or stopped) inside submit */
	check_all(s);
	return 0;
}

int nodesim_submit_bytes(struct nodesim *s, unsigned i, const void *bytes, size_t len,
                         uint64_t timeout_ms, struct nodesim_req *r)
{
	void *buf;

	nodesim_req_release(r);
	r->done = false;
	if (i >= s->o.n || !s->nodes[i].kv)
		return -1;
	buf = raft_buf_alloc(len);
	if (!buf)
		return -1;
	if (len)
		memcpy(buf, bytes, len);
	return submit_buf(s, i, buf, len, timeout_ms, r);
}

int nodesim_submit(struct nodesim *s, unsigned i, const struct kv_cmd *cmd, uint64_t timeout_ms,
                   struct nodesim_req *r)
{
	void *buf;
	size_t len;

	nodesim_req_release(r);
	r->done = false;
	if (i >= s->o.n || !s->nodes[i].kv)
		return -1;
	if (kv_cmd_encode(cmd, &buf, &len) != KV_OK)
		return -1;
	return submit_buf(s, i, buf, len, timeout_ms, r);
}

static bool req_done(struct nodesim *s, void *arg)
{
	(void)s;
	return ((struct nodesim_req *)arg)->done;
}

bool nodesim_wait(struct nodesim *s, struct nodesim_req *r, uint64_t max_ms)
{
	return nodesim_run_until(s, req_done, r, max_ms);
}

int nodesim_call(struct nodesim *s, unsigned i, const struct kv_cmd *cmd, uint64_t timeout_ms,
                 struct nodesim_req *r)
{
	if (nodesim_submit(s, i, cmd, timeout_ms, r) != 0)
		return -1;
	if (!nodesim_wait(s, r, timeout_ms + 1000))
		return -1;
	return r->req.status;
}

void nodesim_cancel(struct nodesim *s, struct nodesim_req *r)
{
	if (!r->pending || r->node >= s->o.n || !s->nodes[r->node].kv)
		return;
	kv_node_cancel(s->nodes[r->node].kv, &r->req);
	check_all(s);
}
