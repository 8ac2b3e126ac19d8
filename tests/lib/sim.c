/* sim.c - deterministic cluster simulator for the Raft core (see sim.h). */
#include "tests/lib/sim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"
#include "raft/storage.h"
#include "raft/vfs.h"
#include "tests/lib/heap.h"
#include "tests/lib/walcut.h"

#define SIM_MAX_NODES 5
#define SIM_TICK_MS 10
#define SIM_ELECTION_TICKS 10
#define SIM_LIVENESS_MS 12000 /* after healing: a leader and a commit within this */
#define SIM_ATTEMPT_MS 2000 /* a client's timeout before it retries */
#define SIM_MAX_EVENTS 4000000 /* a run that does not end by itself is a bug too */
#define SIM_CHUNK_BYTES 200 /* small chunks so snapshots take several */
#define SIM_TRAILING 4 /* entries kept behind a snapshot: laggards need snapshots */
#define SIM_PAYLOAD_BYTES 16
#define CHURN_AFTER_COMMIT_PM 30 /* per mille of a churn leader's commits followed by a strike */
#define SIM_POWER_CUT_PM 15 /* crash mixes: per mille of persists cut by a power loss */
#define SIM_DISK_FAULT_PM 250 /* crash mixes: per mille of nemesis turns arming an I/O error */
#define SIM_SLOW_DISK_PM 250 /* crash mixes: per mille of nodes with a slow disk */
#define SIM_TORN_MAX_BYTES 300 /* a crash keeps up to this much of an unsynced appended tail */
#define SIM_SPOIL_CHUNK_PM 30 /* lossy mixes: per mille of snapshot chunks spoiled on their way */
#define SIM_CUT_TAIL_PM 500 /* crash and churn mixes: per mille of crashes cutting a synced tail */
#define SIM_SETTLED_CUT_PM 500 /* ... and of runs whose settled cluster then loses a tail */
#define SIM_POOL_MAX 1024 /* stepped: deliveries waiting; beyond, the oldest is lost */
#define SIM_HISTORY 64 /* stepped: messages kept for replays */
#define SIM_TERMS_INDEXED 65536 /* terms below this find their leader in an array */

/* --- deterministic randomness (splitmix64) ------------------------------------------------------ */

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *g)
{
	uint64_t z = (g->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rng_below(struct rng *g, uint64_t n)
{
	return n ? rng_next(g) % n : 0;
}

/* true with probability per_mille / 1000 */
static bool rng_chance(struct rng *g, unsigned per_mille)
{
	return rng_below(g, 1000) < per_mille;
}

/* --- events ------------------------------------------------------------------------------------- */

enum ev_kind {
	EV_TICK,
	EV_DELIVER,
	EV_PERSIST,
	EV_CLIENT,
	EV_NEMESIS,
	EV_RESTART,
	EV_CRASH,
	EV_ISOLATE,
	EV_HEAL
};

struct event {
	uint64_t at;
	uint64_t seq;
	enum ev_kind kind;
	unsigned node;
	uint64_t epoch;
	struct raft_msg *msg; /* EV_DELIVER: owned by the event */
	void *snap_data; /* EV_DELIVER of a snapshot chunk: raft_buf */
	bool spoiled; /* EV_DELIVER of a snapshot chunk whose bytes were spoiled on the way */
};

/* The queue's order: by time, and at one instant by the order of scheduling. */
static bool ev_before(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	return x->at < y->at || (x->at == y->at && x->seq < y->seq);
}

/* --- nodes -------------------------------------------------------------------------------------- */

/* Persistence work between its hand-out and its (simulated) fsync completion: copies of what
 * the update held, since its arrays die at raft_update_done. */
struct pending_persist {
	bool active;
	uint64_t seq;
	bool hs_changed;
	struct raft_hard_state hs;
	bool has_chunk;
	struct raft_snapshot_meta chunk_meta;
	uint64_t chunk_offset;
	uint32_t chunk_len;
	unsigned char *chunk;
	bool chunk_last;
	uint64_t truncate_from;
	struct raft_entry *entries;
	size_t n_entries;
};

struct sim;

/*
 * A node keeps its durable state in a real struct raft_storage over its own in-memory,
 * fault-injecting file system: a crash throws away exactly what the storage had not synced.
 * Beside it the simulator keeps a shadow of what must be durable (hard state, snapshot, the
 * terms of the log after it), updated when a persist or a snapshot succeeds: the commit-safety
 * check reads it (a down node's storage is closed), and a restart after a clean crash must
 * recover exactly it.
 */
struct node {
	struct sim *sim;
	uint32_t id;
	bool up;
	uint64_t epoch; /* bumped by a crash: events of the old incarnation are ignored */
	struct raft *r;
	enum raft_role last_role;
	uint64_t last_term;

	/* the disk */
	struct raft_vfs *vfs;
	struct raft_storage *st; /* open while up; while down, already recovered for the restart */
	struct raft_restore rs; /* while down: what the next start hands to raft_new */
	char dir[16];
	uint64_t segment_max_bytes;
	unsigned persist_ms; /* a sync takes 0 .. persist_ms - 1 ms (more on a slow disk) */
	bool disk_fault_armed; /* an I/O error waits in the vfs: the node stops when it fires */
	bool chunk_spoiled; /* a spoiled chunk reached it since its last install or restart */
	bool power_cut_armed; /* a sync fault stands for power lost in the middle of a persist */

	/* shadow of the durable state; dterm[k] is the term of entry dfirst + k, and
	 * dfirst == snap.index + 1 (the log after the snapshot) */
	struct raft_hard_state hs;
	struct raft_snapshot_meta snap; /* index 0: none */
	uint64_t *dterm;
	size_t dn, dcap;
	uint64_t dfirst;

	struct pending_persist pp;

	/* the application: a hash chain over applied entries */
	uint64_t applied;
	uint64_t app_hash;
	uint64_t snap_every; /* take a snapshot every this many applied entries */
	uint64_t commit_checked; /* highest commit index checked by check_commit_safety */
};

struct applied_rec {
	uint64_t term;
	uint64_t payload; /* proposal id, 0 for a no-op */
};

struct proposal {
	uint64_t id;
	unsigned node;
	uint64_t index, term;
	bool acked, failed;
};

struct read_req {
	uint64_t ctx;
	unsigned node;
	uint64_t min_index; /* highest commit index anywhere when the read was asked */
	bool done;
};

/* The leader of a term too high to index an array by. */
struct far_term {
	uint64_t term;
	uint32_t leader;
};

/* Stepped mode: an entry some node persisted or sent, known by its index and term. */
struct entry_rec {
	uint64_t index, term;
	uint8_t type;
	uint32_t len;
	void *data; /* raft_buf reference */
};

/* Stepped mode: the newest term of heartbeats seen on one link, and their highest read_seq. */
struct hb_rec {
	uint64_t term;
	uint64_t read_seq;
};

struct sim {
	struct sim_options opt;
	struct sim_result *res;
	struct rng rng;
	struct rng disk_rng; /* disk faults draw apart, so a mix without them replays as before */
	struct heap heap;
	uint64_t now;
	uint64_t ev_seq;
	unsigned n;
	struct node nodes[SIM_MAX_NODES];
	struct raft_conf conf;

	/* network */
	bool blocked[SIM_MAX_NODES][SIM_MAX_NODES]; /* from -> to */
	unsigned drop_pm, dup_pm; /* per mille */
	unsigned delay_min_ms, delay_jitter_ms;
	bool healed;

	/* checks */
	struct applied_rec *applied; /* by index, first application anywhere */
	uint64_t applied_cap, applied_max;
	uint32_t *leader_of_term; /* by term, below SIM_TERMS_INDEXED */
	uint64_t leader_of_term_cap;
	struct far_term *far_terms; /* leaders of terms above (a forged term brings them) */
	size_t n_far_terms;
	struct proposal *props;
	size_t n_props, cap_props;
	struct read_req *reads;
	size_t n_reads, cap_reads;
	uint64_t next_payload;
	bool failed;

	/* stepped mode (sim_open): no clock, the caller makes every event happen */
	bool stepped;
	bool untrusted; /* a message outside Raft's trust model was delivered: see sim_inject */
	struct event *pool; /* deliveries and persist completions waiting, in the order made */
	size_t n_pool;
	struct raft_msg *history[SIM_HISTORY]; /* the last messages sent (copies), for replays */
	void *history_data[SIM_HISTORY]; /* their snapshot chunks (raft_bufs) */
	size_t n_history; /* sent so far; history[n % SIM_HISTORY] is the next slot */
	struct entry_rec *recs; /* every entry persisted or sent */
	size_t n_recs, cap_recs;
	uint64_t *forged_ctx; /* read contexts of injected READ_INDEX requests */
	size_t n_forged_ctx, cap_forged_ctx;
	struct hb_rec hb_sent[SIM_MAX_NODES]; /* heartbeats node i sent */
	struct hb_rec hb_seen[SIM_MAX_NODES][SIM_MAX_NODES]; /* [to][from]: heartbeats delivered */
	/* per node, this incarnation: the terms of the entries it knew committed, by index */
	uint64_t *committed_term[SIM_MAX_NODES];
	uint64_t committed_cap[SIM_MAX_NODES];
	uint64_t committed_seen[SIM_MAX_NODES]; /* highest index recorded */
};

static void fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct sim *s, const char *fmt, ...)
{
	va_list ap;
	char msg[400];

	if (s->failed)
		return;
	s->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(s->res->error, sizeof(s->res->error), "t=%llums: %s", (unsigned long long)s->now,
	         msg);
}

static void trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void trace(struct sim *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->opt.trace)
		return;
	fprintf(stderr, "%8llu ", (unsigned long long)s->now);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void msg_free(struct raft_msg *m);
static void stepped_add(struct sim *s, const struct event *e);
static void stepped_record_entry(struct sim *s, const struct raft_entry *e);
static void stepped_record_sent(struct sim *s, unsigned src, const struct raft_msg *copy,
                                void *data);

static void schedule_event(struct sim *s, uint64_t delay, enum ev_kind kind, unsigned node,
                           struct raft_msg *msg, void *snap_data, bool spoiled)
{
	struct event e = {s->now + delay, s->ev_seq++, kind, node, 0, msg, snap_data, spoiled};

	if (node < s->n)
		e.epoch = s->nodes[node].epoch;
	if (s->stepped) {
		stepped_add(s, &e); /* the caller picks when it happens */
		return;
	}
	if (heap_push(&s->heap, &e) != 0)
		fail(s, "out of memory scheduling an event");
}

static void schedule(struct sim *s, uint64_t delay, enum ev_kind kind, unsigned node,
                     struct raft_msg *msg, void *snap_data)
{
	schedule_event(s, delay, kind, node, msg, snap_data, false);
}

static uint64_t sim_random(void *ctx)
{
	return rng_next(&((struct node *)ctx)->sim->rng);
}

static void sim_log(void *ctx, int level, const char *msg)
{
	struct node *nd = ctx;

	(void)level;
	trace(nd->sim, "node %u: %s", nd->id, msg);
}

static uint64_t mix64(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

/* --- the application and its snapshots ---------------------------------------------------------- */

static unsigned char pad_byte(uint64_t applied, uint64_t hash, uint64_t pos)
{
	return (unsigned char)(mix64(mix64(applied, hash), pos) >> 56);
}

/* Snapshot image: applied (8) | hash (8) | padding derived from both, so a misassembled or
 * corrupted image is noticed on restore. */
static unsigned char *app_snapshot(struct sim *s, struct node *nd, uint64_t *size)
{
	uint64_t len = 16 + rng_below(&s->rng, 3 * SIM_CHUNK_BYTES);
	unsigned char *b = malloc(len);

	if (!b)
		return NULL;
	memcpy(b, &nd->applied, 8);
	memcpy(b + 8, &nd->app_hash, 8);
	for (uint64_t i = 16; i < len; i++)
		b[i] = pad_byte(nd->applied, nd->app_hash, i);
	*size = len;
	return b;
}

static bool app_restore(struct sim *s, struct node *nd, const unsigned char *b, uint64_t len,
                        uint64_t expect_index)
{
	uint64_t applied, hash;

	if (len < 16 && s->untrusted) {
		nd->applied = expect_index;
		return true;
	}
	if (len < 16) {
		fail(s, "node %u: snapshot of %llu bytes is too short", nd->id,
		     (unsigned long long)len);
		return false;
	}
	memcpy(&applied, b, 8);
	memcpy(&hash, b + 8, 8);
	if (s->untrusted) {
		/* an image a forged message sent: the application takes what it says */
		nd->applied = expect_index;
		nd->app_hash = hash;
		return true;
	}
	for (uint64_t i = 16; i < len; i++) {
		if (b[i] != pad_byte(applied, hash, i)) {
			fail(s, "node %u: snapshot %llu corrupt at byte %llu", nd->id,
			     (unsigned long long)expect_index, (unsigned long long)i);
			return false;
		}
	}
	if (applied != expect_index) {
		fail(s, "node %u: snapshot for index %llu holds state of index %llu", nd->id,
		     (unsigned long long)expect_index, (unsigned long long)applied);
		return false;
	}
	nd->applied = applied;
	nd->app_hash = hash;
	return true;
}

/* --- durable state ------------------------------------------------------------------------------ */

static void node_crash(struct sim *s, unsigned i);
static void node_reload(struct sim *s, unsigned i);
static void storage_failed(struct sim *s, struct node *nd, const char *what, int rv);
static bool mix_has(const struct sim *s, enum sim_mix m);

static void storage_log(void *ctx, int level, const char *msg)
{
	struct node *nd = ctx;

	(void)level;
	trace(nd->sim, "node %u storage: %s", nd->id, msg);
}

/* The shadow: the durable log after the snapshot, by term. */
static void shadow_last(const struct node *nd, uint64_t *index, uint64_t *term)
{
	if (nd->dn > 0) {
		*index = nd->dfirst + nd->dn - 1;
		*term = nd->dterm[nd->dn - 1];
	} else {
		*index = nd->snap.index;
		*term = nd->snap.term;
	}
}

static bool shadow_has(const struct node *nd, uint64_t index, uint64_t term)
{
	if (index <= nd->snap.index)
		return true;
	if (index < nd->dfirst || index >= nd->dfirst + nd->dn)
		return false;
	return nd->dterm[index - nd->dfirst] == term;
}

static void shadow_truncate(struct node *nd, uint64_t from)
{
	if (from <= nd->dfirst)
		nd->dn = 0;
	else if (from - nd->dfirst < nd->dn)
		nd->dn = (size_t)(from - nd->dfirst);
}

static void shadow_append(struct sim *s, struct node *nd, uint64_t index, uint64_t term)
{
	if (index != nd->dfirst + nd->dn) {
		fail(s, "node %u: persisted entry %llu does not follow %llu", nd->id,
		     (unsigned long long)index, (unsigned long long)(nd->dfirst + nd->dn - 1));
		return;
	}
	if (nd->dn == nd->dcap) {
		size_t cap = nd->dcap ? nd->dcap * 2 : 64;
		uint64_t *a = realloc(nd->dterm, cap * sizeof(*a));
		if (!a) {
			fail(s, "out of memory");
			return;
		}
		nd->dterm = a;
		nd->dcap = cap;
	}
	nd->dterm[nd->dn++] = term;
}

/* A snapshot became durable: the log it covers goes (all of it for an installed one). */
static void shadow_snapshot(struct node *nd, const struct raft_snapshot_meta *meta, bool drop_all)
{
	if (drop_all || meta->index + 1 >= nd->dfirst + nd->dn) {
		nd->dn = 0;
	} else if (meta->index >= nd->dfirst) {
		size_t k = (size_t)(meta->index + 1 - nd->dfirst);
		memmove(nd->dterm, nd->dterm + k, (nd->dn - k) * sizeof(*nd->dterm));
		nd->dn -= k;
	}
	nd->snap = *meta;
	nd->dfirst = meta->index + 1;
}

/*
 * Opens the node's storage and recovers (at the first start, and at once after a crash, so that
 * a down node's shadow is what it will restart with). After a crash that injected no fault,
 * the storage must recover exactly the shadow: nothing that was synced may be lost, nothing
 * that was not may appear. After a fault (work cut short) the hard state may only have moved
 * forward, and the synced log up to keep_to (below the interrupted work's truncation) must still
 * be there unless a snapshot covers it, or, when may_install, an incoming snapshot the work was
 * installing replaced it. A failed open fails the run: no run corrupts a disk on purpose.
 */
static int node_recover(struct sim *s, struct node *nd, bool exact, uint64_t keep_to,
                        bool may_install)
{
	struct raft_storage_options o = {.vfs = nd->vfs,
	                                 .segment_max_bytes = nd->segment_max_bytes,
	                                 .log = storage_log,
	                                 .log_ctx = nd};
	const struct raft_restore *rs = &nd->rs;
	uint64_t li, lt;
	int rv;

	rv = raft_storage_new(&o, &nd->st);
	if (rv != RAFT_OK) {
		nd->st = NULL;
		fail(s, "node %u: raft_storage_new: %s", nd->id, raft_strerror(rv));
		return -1;
	}
	rv = raft_storage_open(nd->st, nd->dir, &nd->rs);
	if (rv != RAFT_OK) {
		fail(s, "node %u: recovery failed: %s (%s)", nd->id, raft_strerror(rv),
		     raft_storage_errmsg(nd->st));
		return -1;
	}
	if (rs->n_entries && rs->entries[0].index != rs->snap.index + 1) {
		fail(s, "node %u: durable log starts at %llu after snapshot %llu", nd->id,
		     (unsigned long long)rs->entries[0].index, (unsigned long long)rs->snap.index);
		return -1;
	}
	if (exact) {
		bool same = rs->hs.term == nd->hs.term && rs->hs.vote == nd->hs.vote &&
		        rs->snap.index == nd->snap.index && rs->snap.term == nd->snap.term &&
		        rs->snap.size == nd->snap.size && rs->n_entries == nd->dn;
		for (size_t k = 0; same && k < rs->n_entries; k++)
			same = rs->entries[k].term == nd->dterm[k];
		if (!same) {
			shadow_last(nd, &li, &lt);
			fail(s,
			     "node %u: recovered term %llu vote %u, snapshot %llu@%llu (%llu bytes), "
			     "%zu entries; synced were term %llu vote %u, snapshot %llu@%llu (%llu "
			     "bytes), log to %llu@%llu",
			     nd->id, (unsigned long long)rs->hs.term, rs->hs.vote,
			     (unsigned long long)rs->snap.index, (unsigned long long)rs->snap.term,
			     (unsigned long long)rs->snap.size, rs->n_entries,
			     (unsigned long long)nd->hs.term, nd->hs.vote,
			     (unsigned long long)nd->snap.index, (unsigned long long)nd->snap.term,
			     (unsigned long long)nd->snap.size, (unsigned long long)li,
			     (unsigned long long)lt);
			return -1;
		}
	} else if (rs->hs.term < nd->hs.term ||
	           (rs->hs.term == nd->hs.term && nd->hs.vote && rs->hs.vote != nd->hs.vote)) {
		fail(s, "node %u: recovered term %llu vote %u, but term %llu vote %u was synced",
		     nd->id, (unsigned long long)rs->hs.term, rs->hs.vote,
		     (unsigned long long)nd->hs.term, nd->hs.vote);
		return -1;
	} else if (rs->snap.index < nd->snap.index) {
		fail(s, "node %u: recovered snapshot %llu, but snapshot %llu was synced", nd->id,
		     (unsigned long long)rs->snap.index, (unsigned long long)nd->snap.index);
		return -1;
	} else if (!(may_install && rs->snap.index > nd->snap.index)) {
		shadow_last(nd, &li, &lt);
		for (uint64_t i = rs->snap.index + 1; i <= li && i <= keep_to; i++) {
			uint64_t k = i - rs->snap.index - 1;
			if (k >= rs->n_entries ||
			    rs->entries[k].term != nd->dterm[i - nd->dfirst]) {
				fail(s, "node %u: synced entry %llu (term %llu) lost by recovery",
				     nd->id, (unsigned long long)i,
				     (unsigned long long)nd->dterm[i - nd->dfirst]);
				return -1;
			}
		}
	}
	nd->hs = rs->hs;
	nd->snap = rs->snap;
	nd->dfirst = rs->snap.index + 1;
	nd->dn = 0;
	for (size_t k = 0; k < rs->n_entries; k++)
		shadow_append(s, nd, rs->entries[k].index, rs->entries[k].term);
	return s->failed ? -1 : 0;
}

/* The application restores its state from the storage's current snapshot image, or (staged)
 * from the one a leader sent, checked but not installed yet. */
static bool app_restore_stored(struct sim *s, struct node *nd, const struct raft_snapshot_meta *m,
                               bool staged)
{
	unsigned char *b = malloc(m->size + 1);
	size_t got = 0;
	int rv;
	bool ok;

	if (!b) {
		fail(s, "out of memory");
		return false;
	}
	rv = staged ? raft_storage_staged_read(nd->st, m->index, 0, b, (size_t)m->size, &got)
	            : raft_storage_snapshot_read(nd->st, m->index, 0, b, (size_t)m->size, &got);
	if (rv == RAFT_EIO && raft_vfs_mem_fault_fired(nd->vfs)) {
		free(b);
		storage_failed(s, nd, "read snapshot", rv); /* the node stops */
		return false;
	}
	if (rv != RAFT_OK || got != m->size) {
		fail(s, "node %u: reading snapshot %llu: %s, %zu of %llu bytes (%s)", nd->id,
		     (unsigned long long)m->index, raft_strerror(rv), got,
		     (unsigned long long)m->size, raft_storage_errmsg(nd->st));
		free(b);
		return false;
	}
	ok = app_restore(s, nd, b, m->size, m->index);
	free(b);
	return ok;
}

/*
 * A storage call failed. When it was an injected fault (an I/O error or the power cut it stands
 * for), the node stops like a process that exits, before it acknowledges anything more, and
 * restarts later from what was synced. Any other failure is a bug.
 */
static void storage_failed(struct sim *s, struct node *nd, const char *what, int rv)
{
	unsigned i = (unsigned)(nd - s->nodes);

	if (rv != RAFT_EINVAL && (nd->disk_fault_armed || nd->power_cut_armed) &&
	    raft_vfs_mem_fault_fired(nd->vfs)) {
		trace(s, "node %u stops: %s: %s (%s)", nd->id, what, raft_strerror(rv),
		      nd->power_cut_armed ? "power cut" : raft_storage_errmsg(nd->st));
		s->res->disk_faults++;
		node_crash(s, i);
		schedule(s, 5 + rng_below(&s->rng, 300), EV_RESTART, i, NULL, NULL);
		return;
	}
	fail(s, "node %u: %s: %s (%s)", nd->id, what, raft_strerror(rv),
	     raft_storage_errmsg(nd->st));
}

static void pp_clear(struct pending_persist *pp)
{
	for (size_t i = 0; i < pp->n_entries; i++)
		raft_buf_unref(pp->entries[i].data);
	free(pp->entries);
	free(pp->chunk);
	memset(pp, 0, sizeof(*pp));
}

/* In the crash mixes some persists are cut by a power loss: the Nth write (half written) or
 * sync from now fails, and the node crashes with a torn tail. */
static void maybe_arm_power_cut(struct sim *s, struct node *nd)
{
	bool write = rng_chance(&s->disk_rng, 500);

	nd->power_cut_armed = true;
	raft_vfs_mem_fail(nd->vfs, write ? RAFT_VFS_OP_WRITE : RAFT_VFS_OP_SYNC,
	                  1 + rng_below(&s->disk_rng, 3), EIO, write);
}

/* The simulated fsync completed: the storage carries out the work, then the core is told. */
static void persist_complete(struct sim *s, struct node *nd)
{
	struct pending_persist *pp = &nd->pp;
	struct raft_update u;
	unsigned ni = (unsigned)(nd - s->nodes);
	bool install = pp->has_chunk && pp->chunk_last, spoiled = nd->chunk_spoiled;
	int rv;

	if (pp->hs_changed && pp->hs.term < nd->hs.term) {
		fail(s, "node %u: term went back from %llu to %llu", nd->id,
		     (unsigned long long)nd->hs.term, (unsigned long long)pp->hs.term);
		return;
	}
	memset(&u, 0, sizeof(u));
	u.persist_seq = pp->seq;
	u.hs_changed = pp->hs_changed;
	u.hs = pp->hs;
	u.has_snap_chunk = pp->has_chunk;
	u.snap_meta = pp->chunk_meta;
	u.snap_offset = pp->chunk_offset;
	u.snap_len = pp->chunk_len;
	u.snap_data = pp->chunk;
	u.snap_last = pp->chunk_last;
	u.truncate_from = pp->truncate_from;
	u.entries = pp->entries;
	u.n_entries = pp->n_entries;
	if (!s->healed && !nd->disk_fault_armed && mix_has(s, SIM_MIX_CRASH) &&
	    rng_chance(&s->disk_rng, SIM_POWER_CUT_PM))
		maybe_arm_power_cut(s, nd);
	/* as kv/node.c does: the image is checked, then loaded, and only then does it replace the
	 * old snapshot and log (the application restores before the core is told) */
	rv = raft_storage_persist_stage(nd->st, &u);
	if (rv == RAFT_ECORRUPT && install && (spoiled || s->untrusted) &&
	    !raft_storage_stopped(nd->st)) {
		/* a chunk was spoiled on its way, or may have been forged (stepped mode: any
		 * untrusted message): refused, the old state stays; the node takes it up again
		 * (kv/node.c node_reload: a restart in place) */
		trace(s, "node %u refused snapshot %llu: %s", nd->id,
		      (unsigned long long)pp->chunk_meta.index, raft_storage_errmsg(nd->st));
		s->res->snapshots_refused++;
		if (pp->hs_changed)
			nd->hs = pp->hs;
		node_reload(s, ni);
		return;
	}
	if (rv == RAFT_OK && install && !app_restore_stored(s, nd, &pp->chunk_meta, true))
		return;
	if (rv == RAFT_OK)
		rv = raft_storage_persist_commit(nd->st, &u);
	if (rv != RAFT_OK) {
		storage_failed(s, nd, "persist", rv);
		return;
	}
	if (nd->power_cut_armed) {
		/* the cut did not land inside this persist */
		raft_vfs_mem_clear_faults(nd->vfs);
		nd->power_cut_armed = false;
	}
	if (pp->hs_changed)
		nd->hs = pp->hs;
	if (install) {
		struct raft_snapshot_meta m;
		if (raft_storage_snapshot_meta(nd->st, &m) != RAFT_OK ||
		    m.index != pp->chunk_meta.index || m.size != pp->chunk_meta.size ||
		    m.crc != pp->chunk_meta.crc) {
			fail(s, "node %u: snapshot %llu persisted but not current", nd->id,
			     (unsigned long long)pp->chunk_meta.index);
			return;
		}
		shadow_snapshot(nd, &m, true);
		nd->chunk_spoiled = false;
		s->res->snapshots_installed++;
		trace(s, "node %u installed snapshot %llu", nd->id, (unsigned long long)m.index);
	}
	if (pp->truncate_from)
		shadow_truncate(nd, pp->truncate_from);
	for (size_t i = 0; i < pp->n_entries; i++)
		shadow_append(s, nd, pp->entries[i].index, pp->entries[i].term);
	if (raft_storage_last_index(nd->st) != (nd->dn ? nd->dfirst + nd->dn - 1 : nd->snap.index))
		fail(s, "node %u: storage ends at %llu, the persisted log at %llu", nd->id,
		     (unsigned long long)raft_storage_last_index(nd->st),
		     (unsigned long long)(nd->dfirst + nd->dn - 1));
	if (s->failed)
		return;
	uint64_t seq = pp->seq;
	pp_clear(pp);
	raft_persisted(nd->r, seq);
}

static void persist_start(struct sim *s, struct node *nd, const struct raft_update *u)
{
	struct pending_persist *pp = &nd->pp;

	if (pp->active) {
		fail(s, "node %u: persistence handed out while %llu is in flight", nd->id,
		     (unsigned long long)pp->seq);
		return;
	}
	pp->active = true;
	pp->seq = u->persist_seq;
	pp->hs_changed = u->hs_changed;
	pp->hs = u->hs;
	pp->truncate_from = u->truncate_from;
	if (u->has_snap_chunk) {
		pp->has_chunk = true;
		pp->chunk_meta = u->snap_meta;
		pp->chunk_offset = u->snap_offset;
		pp->chunk_len = u->snap_len;
		pp->chunk_last = u->snap_last;
		pp->chunk = malloc(u->snap_len + 1);
		if (!pp->chunk) {
			fail(s, "out of memory");
			return;
		}
		memcpy(pp->chunk, u->snap_data, u->snap_len);
	}
	if (u->n_entries) {
		pp->entries = malloc(u->n_entries * sizeof(*pp->entries));
		if (!pp->entries) {
			fail(s, "out of memory");
			return;
		}
		for (size_t i = 0; i < u->n_entries; i++) {
			pp->entries[i] = u->entries[i];
			raft_buf_ref(pp->entries[i].data);
			if (s->stepped)
				stepped_record_entry(s, &u->entries[i]);
		}
		pp->n_entries = u->n_entries;
	}
	/* a disk takes 0-3 ms to sync (a slow one longer); the core keeps running meanwhile */
	schedule(s, rng_below(&s->rng, nd->persist_ms), EV_PERSIST, (unsigned)(nd - s->nodes), NULL,
	         NULL);
}

/* --- the network -------------------------------------------------------------------------------- */

static struct raft_msg *msg_copy(const struct raft_msg *m)
{
	struct raft_msg *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	*c = *m;
	if (m->type == RAFT_MSG_APPEND && m->u.append.n_entries) {
		c->u.append.entries = malloc(m->u.append.n_entries * sizeof(struct raft_entry));
		if (!c->u.append.entries) {
			free(c);
			return NULL;
		}
		for (uint32_t i = 0; i < m->u.append.n_entries; i++) {
			c->u.append.entries[i] = m->u.append.entries[i];
			raft_buf_ref(c->u.append.entries[i].data);
		}
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

static unsigned node_index(const struct sim *s, uint32_t id)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->nodes[i].id == id)
			return i;
	return s->n;
}

static void net_send(struct sim *s, struct node *from, const struct raft_msg *m)
{
	unsigned src = (unsigned)(from - s->nodes), dst = node_index(s, m->to);
	unsigned copies = 1;

	if (dst >= s->n) {
		fail(s, "node %u sent %s to unknown node %u", from->id, raft_msg_type_name(m->type),
		     m->to);
		return;
	}
	if (s->blocked[src][dst] || rng_chance(&s->rng, s->drop_pm))
		return;
	if (rng_chance(&s->rng, s->dup_pm))
		copies = 2;
	for (unsigned c = 0; c < copies; c++) {
		struct raft_msg *copy = msg_copy(m);
		void *data = NULL;
		bool spoiled = false;
		if (!copy) {
			fail(s, "out of memory");
			return;
		}
		if (m->type == RAFT_MSG_SNAPSHOT) {
			/* the transport fills the chunk from the durable snapshot */
			const struct raft_msg_snapshot *sn = &m->u.snapshot;
			size_t got = 0;
			data = raft_buf_alloc(sn->len);
			if (!data) {
				msg_free(copy);
				fail(s, "out of memory");
				return;
			}
			int rv = raft_storage_snapshot_read(from->st, sn->meta.index, sn->offset,
			                                    data, sn->len, &got);
			if (rv == RAFT_EIO && raft_vfs_mem_fault_fired(from->vfs)) {
				/* an injected read error stops nothing: the disk is unchanged */
				raft_vfs_mem_clear_faults(from->vfs);
				from->disk_fault_armed = false;
			}
			if (rv != RAFT_OK || got != sn->len) {
				raft_buf_unref(data);
				msg_free(copy);
				return; /* that snapshot is gone: the core resends later */
			}
			copy->u.snapshot.data = data;
			/* the lossy mixes spoil a few chunks on their way: the receiver must refuse
			 * the image (its CRC) and keep its old state */
			if (sn->len > 0 && !s->healed && mix_has(s, SIM_MIX_LOSSY) &&
			    rng_chance(&s->rng, SIM_SPOIL_CHUNK_PM)) {
				((unsigned char *)data)[rng_below(&s->rng, sn->len)] ^= 0x20;
				spoiled = true;
			}
		}
		uint64_t delay = s->delay_min_ms + rng_below(&s->rng, s->delay_jitter_ms + 1);
		if (s->stepped && c == 0)
			stepped_record_sent(s, src, copy, data);
		schedule_event(s, delay, EV_DELIVER, dst, copy, data, spoiled);
	}
}

/* --- checks ------------------------------------------------------------------------------------- */

static uint64_t payload_of(const struct raft_entry *e)
{
	uint64_t p = 0;

	if (e->type == RAFT_ENTRY_NORMAL && e->len >= 8)
		memcpy(&p, e->data, 8);
	return p;
}

static bool grow(void **arr, uint64_t *cap, uint64_t need, size_t size)
{
	if (need < *cap)
		return true;
	uint64_t c = *cap ? *cap : 256;
	while (c <= need)
		c *= 2;
	void *a = realloc(*arr, c * size);
	if (!a)
		return false;
	memset((char *)a + *cap * size, 0, (c - *cap) * size);
	*arr = a;
	*cap = c;
	return true;
}

static void check_apply(struct sim *s, struct node *nd, const struct raft_entry *e)
{
	uint64_t payload = payload_of(e);

	if (e->index != nd->applied + 1) {
		fail(s, "node %u applied index %llu after %llu", nd->id,
		     (unsigned long long)e->index, (unsigned long long)nd->applied);
		return;
	}
	if (!grow((void **)&s->applied, &s->applied_cap, e->index, sizeof(*s->applied))) {
		fail(s, "out of memory");
		return;
	}
	struct applied_rec *rec = &s->applied[e->index];
	if (rec->term == 0) {
		rec->term = e->term;
		rec->payload = payload;
		if (e->index > s->applied_max)
			s->applied_max = e->index;
	} else if ((rec->term != e->term || rec->payload != payload) && !s->untrusted) {
		fail(s,
		     "state-machine safety: node %u applied (term %llu, payload %llu) at index "
		     "%llu where another node applied (term %llu, payload %llu)",
		     nd->id, (unsigned long long)e->term, (unsigned long long)payload,
		     (unsigned long long)e->index, (unsigned long long)rec->term,
		     (unsigned long long)rec->payload);
		return;
	}
	nd->applied = e->index;
	nd->app_hash = mix64(mix64(nd->app_hash, e->index), mix64(e->term, payload));
	/* acknowledge the proposal if this is the node that proposed it */
	for (size_t i = s->n_props; i-- > 0;) {
		struct proposal *p = &s->props[i];
		if (p->index != e->index || p->node != (unsigned)(nd - s->nodes) || p->acked ||
		    p->failed)
			continue;
		if (p->term == e->term && p->id == payload)
			p->acked = true;
		else
			p->failed = true; /* its slot went to another entry: not applied */
	}
}

static uint64_t max_commit(struct sim *s)
{
	uint64_t m = 0;

	for (unsigned i = 0; i < s->n; i++) {
		struct raft_status st;
		if (!s->nodes[i].up)
			continue;
		raft_status(s->nodes[i].r, &st);
		if (st.commit > m)
			m = st.commit;
	}
	return m;
}

static void check_read(struct sim *s, struct node *nd, const struct raft_read_state *rs)
{
	struct read_req *rq = NULL;

	for (size_t i = 0; i < s->n_forged_ctx; i++)
		if (s->forged_ctx[i] == rs->ctx)
			return; /* the answer to a request injected in this node's name */
	if (s->untrusted)
		return; /* a forged answer may say anything */
	for (size_t i = 0; i < s->n_reads; i++)
		if (s->reads[i].ctx == rs->ctx)
			rq = &s->reads[i];
	if (!rq) {
		fail(s, "node %u: read state for unknown ctx %llu", nd->id,
		     (unsigned long long)rs->ctx);
		return;
	}
	if (rq->node != (unsigned)(nd - s->nodes)) {
		fail(s, "node %u: read ctx %llu answered on the wrong node", nd->id,
		     (unsigned long long)rs->ctx);
		return;
	}
	/* a duplicated request may be answered twice: every answer must still be safe */
	rq->done = true;
	if (rs->status != RAFT_OK)
		return;
	if (rs->index < rq->min_index)
		fail(s,
		     "read safety: node %u got read index %llu for ctx %llu, but index %llu was "
		     "committed before the read began",
		     nd->id, (unsigned long long)rs->index, (unsigned long long)rs->ctx,
		     (unsigned long long)rq->min_index);
	s->res->reads_ok++;
}

/* Where the leader of term is recorded (0: none yet); NULL when out of memory. */
static uint32_t *leader_slot(struct sim *s, uint64_t term)
{
	struct far_term *a;

	if (term < SIM_TERMS_INDEXED)
		return grow((void **)&s->leader_of_term, &s->leader_of_term_cap, term,
		            sizeof(*s->leader_of_term))
		        ? &s->leader_of_term[term]
		        : NULL;
	for (size_t i = 0; i < s->n_far_terms; i++)
		if (s->far_terms[i].term == term)
			return &s->far_terms[i].leader;
	a = realloc(s->far_terms, (s->n_far_terms + 1) * sizeof(*a));
	if (!a)
		return NULL;
	s->far_terms = a;
	a[s->n_far_terms] = (struct far_term){term, 0};
	return &a[s->n_far_terms++].leader;
}

static void check_leader(struct sim *s, struct node *nd)
{
	struct raft_status st;
	uint32_t *l;

	raft_status(nd->r, &st);
	if (st.role != RAFT_LEADER)
		return;
	l = leader_slot(s, st.term);
	if (!l) {
		fail(s, "out of memory");
		return;
	}
	if (s->untrusted) {
		/* forged messages may make two leaders of a term: remember the first */
		if (*l == 0)
			*l = nd->id;
		return;
	}
	if (*l == 0) {
		*l = nd->id;
		s->res->elections++;
		trace(s, "node %u is leader of term %llu", nd->id, (unsigned long long)st.term);
		/* Figure 8's schedule: a new leader replicates older entries, then dies before
		 * its own term's entries spread */
		if (!s->healed && mix_has(s, SIM_MIX_CRASH) && rng_chance(&s->rng, 300))
			schedule(s, rng_below(&s->rng, 40), EV_CRASH, (unsigned)(nd - s->nodes),
			         NULL, NULL);
		if (!s->healed && s->opt.mix == SIM_MIX_CHURN && rng_chance(&s->rng, 700)) {
			/* one draw per statement: argument order is unspecified in C, and gcc and
			 * clang differ, which made a seed's run depend on the compiler */
			enum ev_kind kind = rng_chance(&s->rng, 500) ? EV_CRASH : EV_ISOLATE;
			uint64_t delay = 1 + rng_below(&s->rng, 80);
			schedule(s, delay, kind, (unsigned)(nd - s->nodes), NULL, NULL);
		}
		/* leader completeness: it holds every entry anyone applied */
		for (uint64_t i = st.first_index > st.snapshot_index + 1 ? st.first_index : 1;
		     i <= s->applied_max; i++) {
			if (i <= st.snapshot_index)
				continue;
			uint64_t t = raft_term_at(nd->r, i);
			if (t != s->applied[i].term) {
				fail(s,
				     "leader completeness: leader %u of term %llu has term %llu at "
				     "index %llu, applied with term %llu",
				     nd->id, (unsigned long long)st.term, (unsigned long long)t,
				     (unsigned long long)i, (unsigned long long)s->applied[i].term);
				return;
			}
		}
	} else if (*l != nd->id) {
		fail(s, "election safety: nodes %u and %u both leaders of term %llu", *l, nd->id,
		     (unsigned long long)st.term);
	}
}

/* The last (index, term) of a node's log: in memory when up, on disk when down or when the
 * durable log is asked for. */
static void node_last(struct node *nd, bool durable, uint64_t *index, uint64_t *term)
{
	if (nd->up && !durable) {
		struct raft_status st;
		raft_status(nd->r, &st);
		*index = st.last_index;
		*term = st.last_term;
	} else {
		shadow_last(nd, index, term);
	}
}

static bool node_has(struct node *nd, uint64_t index, uint64_t term)
{
	if (nd->up) {
		struct raft_status st;
		raft_status(nd->r, &st);
		if (index <= st.snapshot_index || index < st.first_index)
			return index <= st.commit; /* compacted: committed, hence held */
		return raft_term_at(nd->r, index) == term;
	}
	return shadow_has(nd, index, term);
}

/*
 * Commit safety, checked at the moment a commit index advances (the argument of the paper's
 * Leader Completeness proof, 5.4.3): a node lacking a committed entry must never be able to
 * gather a majority of votes, i.e. fewer than a majority of voters' durable logs may be no more
 * up-to-date than its own. This fails at the commit itself when the commit rule is broken
 * (Figure 8), without waiting for the unlucky election that would lose the entry.
 */
static void check_commit_safety(struct sim *s, struct node *committer, uint64_t index)
{
	uint64_t term = raft_term_at(committer->r, index);

	if (term == 0 || s->untrusted)
		return; /* compacted already: it was checked when it was committed */
	for (unsigned a = 0; a < s->n; a++) {
		struct node *cand = &s->nodes[a];
		uint64_t ci, ct;
		unsigned votes = 0;
		if (node_has(cand, index, term))
			continue;
		node_last(cand, false, &ci, &ct);
		for (unsigned b = 0; b < s->n; b++) {
			uint64_t vi, vt;
			node_last(&s->nodes[b], true, &vi, &vt);
			if (ct > vt || (ct == vt && ci >= vi))
				votes++;
		}
		if (votes >= s->n / 2 + 1) {
			fail(s,
			     "commit safety: node %u committed index %llu (term %llu), but node %u, "
			     "which lacks it (last %llu@%llu), could win the votes of %u nodes",
			     committer->id, (unsigned long long)index, (unsigned long long)term,
			     cand->id, (unsigned long long)ci, (unsigned long long)ct, votes);
			return;
		}
	}
}

static void check_log_matching(struct sim *s)
{
	if (s->untrusted)
		return;
	for (unsigned a = 0; a < s->n; a++) {
		for (unsigned b = a + 1; b < s->n; b++) {
			struct node *x = &s->nodes[a], *y = &s->nodes[b];
			struct raft_status sx, sy;
			uint64_t lo, hi, i;
			if (!x->up || !y->up)
				continue;
			raft_status(x->r, &sx);
			raft_status(y->r, &sy);
			lo = sx.first_index > sy.first_index ? sx.first_index : sy.first_index;
			hi = sx.last_index < sy.last_index ? sx.last_index : sy.last_index;
			for (i = hi; i >= lo && i > 0; i--)
				if (raft_term_at(x->r, i) == raft_term_at(y->r, i))
					break;
			for (; i >= lo && i > 0; i--) {
				if (raft_term_at(x->r, i) != raft_term_at(y->r, i)) {
					fail(s,
					     "log matching: nodes %u and %u agree above index %llu "
					     "but differ at it (terms %llu, %llu)",
					     x->id, y->id, (unsigned long long)i,
					     (unsigned long long)raft_term_at(x->r, i),
					     (unsigned long long)raft_term_at(y->r, i));
					return;
				}
			}
		}
	}
}

/* --- driving a node ----------------------------------------------------------------------------- */

static void maybe_snapshot(struct sim *s, struct node *nd)
{
	struct raft_snapshot_meta meta;
	uint64_t size;
	uint32_t crc = 0;
	unsigned char *data;
	int rv;

	if (nd->applied < nd->snap.index + nd->snap_every || nd->applied == 0)
		return;
	data = app_snapshot(s, nd, &size);
	if (!data) {
		fail(s, "out of memory");
		return;
	}
	memset(&meta, 0, sizeof(meta));
	meta.index = nd->applied;
	meta.term = raft_term_at(nd->r, nd->applied);
	meta.conf = s->conf;
	meta.size = size;
	/* durable before the core hears of it (it may send it to a follower at once) */
	rv = raft_storage_snapshot_begin(nd->st, &meta);
	if (rv == RAFT_OK) {
		struct raft_storage_image img;

		raft_storage_snapshot_image(nd->st, &img);
		rv = raft_storage_image_write(&img, data, size);
		if (rv == RAFT_OK)
			rv = raft_storage_image_sync(&img);
		crc = img.crc;
		if (rv == RAFT_OK)
			rv = raft_storage_snapshot_install(nd->st, img.size, img.crc);
		else
			raft_storage_snapshot_abort(nd->st);
	}
	free(data);
	if (rv != RAFT_OK) {
		storage_failed(s, nd, "snapshot", rv);
		return;
	}
	shadow_snapshot(nd, &meta, false);
	rv = raft_snapshot_taken(nd->r, meta.index, size, crc);
	if (rv != RAFT_OK)
		fail(s, "node %u: raft_snapshot_taken(%llu): %s", nd->id,
		     (unsigned long long)meta.index, raft_strerror(rv));
	trace(s, "node %u took snapshot %llu (%llu bytes)", nd->id, (unsigned long long)meta.index,
	      (unsigned long long)size);
}

static bool node_is_leader(struct node *nd)
{
	struct raft_status st;

	raft_status(nd->r, &st);
	return st.role == RAFT_LEADER;
}

/* One loop turn of a node: collect and carry out every update. */
static void process(struct sim *s, struct node *nd)
{
	for (int rounds = 0; nd->up && !s->failed && raft_has_update(nd->r); rounds++) {
		struct raft_update u;
		if (rounds > 1000) {
			fail(s, "node %u: updates never run out", nd->id);
			return;
		}
		if (raft_update_get(nd->r, &u) != RAFT_OK) {
			fail(s, "node %u: raft_update_get failed", nd->id);
			return;
		}
		if (u.persist_seq)
			persist_start(s, nd, &u);
		for (size_t i = 0; i < u.n_msgs; i++)
			net_send(s, nd, &u.msgs[i]);
		for (size_t i = 0; i < u.n_committed && !s->failed; i++)
			check_apply(s, nd, &u.committed[i]);
		if (u.n_committed && s->opt.mix == SIM_MIX_CHURN && !s->healed &&
		    node_is_leader(nd) && rng_chance(&s->rng, CHURN_AFTER_COMMIT_PM))
		/* the nemesis strikes a leader that just committed, before its next
			 * messages spread: where commit-rule bugs become lost writes */
		{
			enum ev_kind kind =
			        rng_chance(&s->rng, 500) ? EV_CRASH : EV_ISOLATE; /* see above */
			uint64_t delay = rng_below(&s->rng, 6);
			schedule(s, delay, kind, (unsigned)(nd - s->nodes), NULL, NULL);
		}
		for (size_t i = 0; i < u.n_reads; i++)
			check_read(s, nd, &u.reads[i]);
		raft_update_done(nd->r, &u);
		{
			struct raft_status st;
			raft_status(nd->r, &st);
			if (st.commit > nd->commit_checked) {
				check_commit_safety(s, nd, st.commit);
				nd->commit_checked = st.commit;
			}
		}
		check_leader(s, nd);
		maybe_snapshot(s, nd);
	}
}

static int node_start(struct sim *s, unsigned i)
{
	struct node *nd = &s->nodes[i];
	struct raft_config cfg;
	struct raft_env env = {nd, sim_random, s->opt.trace ? sim_log : NULL};
	int rv;

	raft_config_default(&cfg, nd->id, &s->conf);
	cfg.election_ticks = SIM_ELECTION_TICKS;
	cfg.heartbeat_ticks = 2;
	/* one entry per message on some nodes: the no-op that opens a term then travels apart
	 * from the older entries before it, which is where commit-rule bugs show (Figure 8) */
	cfg.max_msg_bytes = (s->opt.mix == SIM_MIX_CHURN || rng_chance(&s->rng, 500))
	        ? 1
	        : 64 + (uint32_t)rng_below(&s->rng, 256);
	cfg.max_inflight_msgs = 1 + (uint32_t)rng_below(&s->rng, 8);
	cfg.snapshot_chunk_bytes = SIM_CHUNK_BYTES;
	cfg.snapshot_trailing = SIM_TRAILING;
	/* the first start opens the storage; a crash already reopened it (node_crash) */
	if (!nd->st && node_recover(s, nd, true, 0, false) != 0)
		return -1;
	nd->applied = 0;
	nd->app_hash = 0;
	if (nd->rs.snap.index && !app_restore_stored(s, nd, &nd->rs.snap, false))
		return -1;
	rv = raft_new(&cfg, &env, &nd->rs, &nd->r);
	raft_storage_restore_free(&nd->rs);
	if (rv != RAFT_OK) {
		fail(s, "node %u: raft_new: %s", nd->id, raft_strerror(rv));
		return -1;
	}
	nd->up = true;
	nd->commit_checked = nd->snap.index;
	nd->snap_every = 5 + rng_below(&s->rng, 40);
	/* ticks start at a random phase (stepped: the caller ticks) */
	if (!s->stepped)
		schedule(s, 1 + rng_below(&s->rng, SIM_TICK_MS), EV_TICK, i, NULL, NULL);
	return 0;
}

/*
 * Whether node y's durable state holds entry (index, term): in its log, or covered by its snapshot
 * (then the entry must be the one the cluster committed there).
 */
static bool durably_holds(const struct sim *s, const struct node *y, uint64_t index, uint64_t term)
{
	if (index == y->snap.index)
		return y->snap.term == term;
	if (index < y->snap.index)
		return index <= s->applied_max && s->applied[index].term == term;
	return shadow_has(y, index, term);
}

/*
 * A disk that loses synced bytes: the crashed node nd loses the last records of its last segment,
 * entries it may have acknowledged (recovery cannot tell a record damaged after its sync from a
 * torn one, and cuts it off: man raftfs(5), RECOVERY 5). The leader must notice the shorter log
 * and send them again (raft.c follower_log_ends).
 *
 * Losing acknowledged entries can break Raft itself: an entry committed on a bare majority that
 * included nd would then be on a minority, and a node lacking it could be elected. No system can
 * survive that, so the fault is kept to what the real system must survive: only entries that a
 * majority of the OTHER nodes hold durably are cut. Such an entry stays on a durable majority (a
 * later cut elsewhere checks the same), and an entry on a durable majority is in every later
 * leader's log (the voters' logs meet it: Figure 3, Leader Completeness), so it is never lost
 * and never truncated, and counting nd's old acknowledgement of it commits nothing unsafe. Every
 * safety check stays as strict as before; the cut is at a random byte of the first record cut,
 * so recovery sees a torn record (or, at byte 0, a clean end).
 */
static void cut_acknowledged_tail(struct sim *s, struct node *nd)
{
	struct walcut_tail t;
	unsigned quorum = s->n / 2 + 1;
	size_t k;
	int rc = walcut_scan(nd->vfs, nd->dir, &t);

	if (rc < 0)
		fail(s, "node %u: cannot read its last segment", nd->id);
	for (k = t.n; rc == 0 && k > 0; k--) {
		const struct walcut_rec *r = &t.recs[k - 1];
		unsigned holders = 0;
		if (r->index <= nd->snap.index)
			break;
		for (unsigned j = 0; j < s->n; j++)
			if (&s->nodes[j] != nd && durably_holds(s, &s->nodes[j], r->index, r->term))
				holders++;
		if (holders < quorum)
			break;
	}
	if (rc == 0 && k < t.n) {
		size_t c = k + (size_t)rng_below(&s->disk_rng, t.n - k);
		uint64_t at = t.recs[c].offset + rng_below(&s->disk_rng, t.recs[c].len);
		trace(s, "node %u: its disk loses entries %llu..%llu (%s cut at byte %llu)", nd->id,
		      (unsigned long long)t.recs[c].index,
		      (unsigned long long)t.recs[t.n - 1].index, t.name, (unsigned long long)at);
		if (walcut_cut_at(nd->vfs, nd->dir, &t, at) != 0) {
			fail(s, "node %u: cannot cut %s", nd->id, t.name);
		} else {
			s->res->tails_cut++;
			shadow_truncate(nd, t.recs[c].index);
			raft_storage_restore_free(&nd->rs);
			raft_storage_free(nd->st);
			nd->st = NULL;
			node_recover(s, nd, true, 0, false); /* exactly what is left */
		}
	}
	walcut_tail_free(&t);
}

/* A power loss on node i; with cut_tail its disk also loses a synced tail it may have
 * acknowledged (cut_acknowledged_tail). */
static void node_crash_cut(struct sim *s, unsigned i, bool cut_tail)
{
	struct node *nd = &s->nodes[i];

	if (!nd->up)
		return;
	trace(s, "node %u crashes", nd->id);
	s->res->crashes++;
	nd->up = false;
	nd->epoch++;
	/* what a fault may have cut short: the storage may hold any prefix of that work */
	uint64_t keep_to =
	        nd->pp.active && nd->pp.truncate_from ? nd->pp.truncate_from - 1 : UINT64_MAX;
	bool may_install = nd->pp.active && nd->pp.has_chunk && nd->pp.chunk_last;
	pp_clear(&nd->pp); /* work not yet handed to the storage is lost */
	raft_free(nd->r);
	nd->r = NULL;
	/* Power is lost: the storage is dropped without syncing anything, and the disk keeps
	 * only what was synced, plus (sometimes) part of an appended tail: a torn record. */
	bool faulted = raft_vfs_mem_fault_fired(nd->vfs);
	size_t torn =
	        rng_chance(&s->disk_rng, 500) ? 0 : 1 + rng_below(&s->disk_rng, SIM_TORN_MAX_BYTES);
	raft_storage_free(nd->st);
	nd->st = NULL;
	raft_vfs_mem_clear_faults(nd->vfs);
	nd->disk_fault_armed = false;
	nd->power_cut_armed = false;
	nd->chunk_spoiled = false;
	raft_vfs_mem_crash(nd->vfs, torn);
	if (node_recover(s, nd, !faulted, keep_to, may_install) == 0 && cut_tail)
		cut_acknowledged_tail(s, nd);
}

static bool mix_cuts_tails(const struct sim *s)
{
	return mix_has(s, SIM_MIX_CRASH) || s->opt.mix == SIM_MIX_CHURN;
}

static void node_crash(struct sim *s, unsigned i)
{
	bool cut = !s->healed && mix_cuts_tails(s) && rng_chance(&s->disk_rng, SIM_CUT_TAIL_PM);

	node_crash_cut(s, i, cut);
}

/*
 * kv/node.c node_reload: a node that refused a leader's snapshot goes back to the state on its
 * disk, which nothing touched: a new core over a reopened storage, without a power loss (what
 * was synced is all there is: the refused update wrote only its hard state, synced, and the
 * image, removed).
 */
static void node_reload(struct sim *s, unsigned i)
{
	struct node *nd = &s->nodes[i];

	trace(s, "node %u reloads its state from its disk", nd->id);
	nd->up = false;
	nd->epoch++;
	pp_clear(&nd->pp);
	raft_free(nd->r);
	nd->r = NULL;
	raft_storage_free(nd->st);
	nd->st = NULL;
	nd->chunk_spoiled = false;
	/* an I/O error still armed goes with the old storage, as at a crash */
	raft_vfs_mem_clear_faults(nd->vfs);
	nd->disk_fault_armed = false;
	nd->power_cut_armed = false;
	if (node_recover(s, nd, true, 0, false) == 0)
		node_start(s, i);
}

/* The nemesis arms an I/O error on a node's disk: some later call fails and the node stops. */
static void arm_disk_fault(struct sim *s)
{
	static const enum raft_vfs_op ops[] = {
	        RAFT_VFS_OP_WRITE,  RAFT_VFS_OP_SYNC, RAFT_VFS_OP_SYNC_DIR, RAFT_VFS_OP_RENAME,
	        RAFT_VFS_OP_UNLINK, RAFT_VFS_OP_OPEN, RAFT_VFS_OP_TRUNCATE,
	};
	struct rng *g = &s->disk_rng;
	unsigned i = (unsigned)rng_below(g, s->n);
	struct node *nd = &s->nodes[i];
	enum raft_vfs_op op = ops[rng_below(g, sizeof(ops) / sizeof(ops[0]))];
	unsigned long nth = 1 + rng_below(g, 40);
	int err = rng_chance(g, 500) ? ENOSPC : EIO;
	bool short_write = op == RAFT_VFS_OP_WRITE && rng_chance(g, 500);

	if (!nd->up || nd->disk_fault_armed)
		return;
	raft_vfs_mem_fail(nd->vfs, op, nth, err, short_write);
	nd->disk_fault_armed = true;
	trace(s, "node %u: disk fault armed (op %d, call %lu, %s%s)", nd->id, (int)op, nth,
	      err == ENOSPC ? "ENOSPC" : "EIO", short_write ? ", short write" : "");
}

/* --- clients and the nemesis -------------------------------------------------------------------- */

static int leader_index(struct sim *s)
{
	int best = -1;
	uint64_t best_term = 0;

	for (unsigned i = 0; i < s->n; i++) {
		struct raft_status st;
		if (!s->nodes[i].up)
			continue;
		raft_status(s->nodes[i].r, &st);
		if (st.role == RAFT_LEADER && st.term >= best_term) {
			best = (int)i;
			best_term = st.term;
		}
	}
	return best;
}

static void client_propose(struct sim *s, unsigned i)
{
	struct node *nd = &s->nodes[i];
	struct proposal p = {0};
	void *buf;
	int rv;

	if (!nd->up)
		return;
	buf = raft_buf_alloc(SIM_PAYLOAD_BYTES);
	if (!buf) {
		fail(s, "out of memory");
		return;
	}
	p.id = ++s->next_payload;
	memset(buf, 0, SIM_PAYLOAD_BYTES);
	memcpy(buf, &p.id, 8);
	p.node = i;
	rv = raft_propose(nd->r, buf, SIM_PAYLOAD_BYTES, &p.index, &p.term);
	if (rv != RAFT_OK)
		return;
	if (s->n_props == s->cap_props) {
		size_t cap = s->cap_props ? s->cap_props * 2 : 256;
		struct proposal *a = realloc(s->props, cap * sizeof(*a));
		if (!a) {
			fail(s, "out of memory");
			return;
		}
		s->props = a;
		s->cap_props = cap;
	}
	s->props[s->n_props++] = p;
	trace(s, "node %u: proposed %llu at index %llu term %llu", nd->id, (unsigned long long)p.id,
	      (unsigned long long)p.index, (unsigned long long)p.term);
}

static void client_read(struct sim *s, unsigned i)
{
	struct node *nd = &s->nodes[i];
	struct read_req rq = {0};

	if (!nd->up)
		return;
	rq.ctx = ++s->next_payload;
	rq.node = i;
	rq.min_index = max_commit(s);
	if (raft_read_index(nd->r, rq.ctx) != RAFT_OK)
		return;
	if (s->n_reads == s->cap_reads) {
		size_t cap = s->cap_reads ? s->cap_reads * 2 : 256;
		struct read_req *a = realloc(s->reads, cap * sizeof(*a));
		if (!a) {
			fail(s, "out of memory");
			return;
		}
		s->reads = a;
		s->cap_reads = cap;
	}
	s->reads[s->n_reads++] = rq;
}

static void on_client(struct sim *s)
{
	int l = leader_index(s);
	unsigned i = (l >= 0 && rng_chance(&s->rng, 800)) ? (unsigned)l
	                                                  : (unsigned)rng_below(&s->rng, s->n);
	unsigned burst = 1 + (unsigned)rng_below(&s->rng, 4);

	for (unsigned k = 0; k < burst; k++) {
		if (rng_chance(&s->rng, 300))
			client_read(s, i);
		else
			client_propose(s, i);
	}
	process(s, &s->nodes[i]);
	if (!s->healed || rng_chance(&s->rng, 500))
		schedule(s, 1 + rng_below(&s->rng, 15), EV_CLIENT, s->n, NULL, NULL);
}

static void heal_network(struct sim *s)
{
	memset(s->blocked, 0, sizeof(s->blocked));
}

static void isolate(struct sim *s, unsigned i)
{
	for (unsigned j = 0; j < s->n; j++) {
		if (j == i)
			continue;
		s->blocked[i][j] = true;
		s->blocked[j][i] = true;
	}
}

static void partition_random(struct sim *s)
{
	/* a random minority on one side: bit k set = node k on side A */
	unsigned mask = (unsigned)rng_below(&s->rng, 1u << s->n);

	heal_network(s);
	for (unsigned a = 0; a < s->n; a++)
		for (unsigned b = 0; b < s->n; b++)
			if (((mask >> a) & 1) != ((mask >> b) & 1))
				s->blocked[a][b] = true;
	trace(s, "partition %#x", mask);
}

static bool mix_has(const struct sim *s, enum sim_mix m)
{
	return s->opt.mix == (int)m || s->opt.mix == SIM_MIX_ALL;
}

static void on_nemesis(struct sim *s)
{
	unsigned pick = (unsigned)rng_below(&s->rng, 8);
	int l = leader_index(s);

	if (s->healed)
		return;
	if (mix_has(s, SIM_MIX_PARTITION)) {
		if (pick == 0)
			partition_random(s);
		else if (pick == 1 && l >= 0) {
			heal_network(s);
			isolate(s, (unsigned)l);
			trace(s, "isolate leader %u", s->nodes[l].id);
		} else if (pick == 2) {
			heal_network(s);
			trace(s, "heal");
		}
	}
	if (mix_has(s, SIM_MIX_ONE_WAY) && pick >= 3 && pick <= 5) {
		unsigned a = (unsigned)rng_below(&s->rng, s->n),
		         b = (unsigned)rng_below(&s->rng, s->n);
		if (pick == 5)
			heal_network(s);
		else if (a != b) {
			s->blocked[a][b] = true;
			trace(s, "block %u -> %u", s->nodes[a].id, s->nodes[b].id);
		}
	}
	if (mix_has(s, SIM_MIX_CRASH)) {
		unsigned down = 0;
		for (unsigned i = 0; i < s->n; i++)
			down += !s->nodes[i].up;
		if (pick == 6 || pick == 7) {
			/* the leader more often; keep crashes bounded so the run makes progress */
			unsigned victim = (l >= 0 && rng_chance(&s->rng, 600))
			        ? (unsigned)l
			        : (unsigned)rng_below(&s->rng, s->n);
			if (s->nodes[victim].up && down < s->n) {
				node_crash(s, victim);
				schedule(s, 5 + rng_below(&s->rng, 400), EV_RESTART, victim, NULL,
				         NULL);
			}
		} else if (pick == 3 && l >= 0) {
			raft_transfer(s->nodes[l].r, 0);
			process(s, &s->nodes[l]);
		}
		if (rng_chance(&s->disk_rng, SIM_DISK_FAULT_PM))
			arm_disk_fault(s);
	}
	if (mix_has(s, SIM_MIX_LOSSY) && pick == 4) {
		s->drop_pm = (unsigned)rng_below(&s->rng, 300);
		s->dup_pm = (unsigned)rng_below(&s->rng, 200);
		s->delay_jitter_ms = (unsigned)rng_below(&s->rng, 60);
	}
	if (!s->healed)
		schedule(s, 20 + rng_below(&s->rng, 300), EV_NEMESIS, s->n, NULL, NULL);
}

/* --- the run ------------------------------------------------------------------------------------ */

static void dispatch(struct sim *s, struct event *e)
{
	struct node *nd = e->node < s->n ? &s->nodes[e->node] : NULL;

	switch (e->kind) {
	case EV_TICK:
		if (!nd->up || e->epoch != nd->epoch)
			break;
		raft_tick(nd->r);
		process(s, nd);
		schedule(s, SIM_TICK_MS, EV_TICK, e->node, NULL, NULL);
		break;
	case EV_DELIVER:
		if (nd->up && !s->failed) {
			if (s->opt.trace > 1)
				trace(s, "deliver %s %u->%u term %llu",
				      raft_msg_type_name(e->msg->type), e->msg->from, e->msg->to,
				      (unsigned long long)e->msg->term);
			if (e->spoiled)
				nd->chunk_spoiled = true;
			if (s->stepped && e->msg->type == RAFT_MSG_HEARTBEAT &&
			    node_index(s, e->msg->from) < s->n) {
				struct hb_rec *h =
				        &s->hb_seen[e->node][node_index(s, e->msg->from)];
				if (e->msg->term > h->term)
					*h = (struct hb_rec){e->msg->term, 0};
				if (e->msg->term == h->term &&
				    e->msg->u.heartbeat.read_seq > h->read_seq)
					h->read_seq = e->msg->u.heartbeat.read_seq;
			}
			raft_step(nd->r, e->msg);
			process(s, nd);
		}
		break;
	case EV_PERSIST:
		if (!nd->up || e->epoch != nd->epoch || !nd->pp.active)
			break;
		persist_complete(s, nd);
		process(s, nd);
		break;
	case EV_CLIENT:
		on_client(s);
		break;
	case EV_NEMESIS:
		on_nemesis(s);
		break;
	case EV_CRASH:
		if (nd->up && e->epoch == nd->epoch && !s->healed) {
			node_crash(s, e->node);
			schedule(s, 5 + rng_below(&s->rng, 300), EV_RESTART, e->node, NULL, NULL);
		}
		break;
	case EV_ISOLATE:
		if (nd->up && e->epoch == nd->epoch && !s->healed) {
			trace(s, "isolate node %u", nd->id);
			isolate(s, e->node);
			schedule(s, 30 + rng_below(&s->rng, 200), EV_HEAL, s->n, NULL, NULL);
		}
		break;
	case EV_HEAL:
		if (!s->healed)
			heal_network(s);
		break;
	case EV_RESTART:
		if (!nd->up && e->epoch == nd->epoch) {
			trace(s, "node %u restarts", nd->id);
			node_start(s, e->node);
		}
		break;
	}
	if (e->kind == EV_DELIVER) {
		msg_free(e->msg);
		raft_buf_unref(e->snap_data);
	}
}

static bool run_until(struct sim *s, uint64_t until, bool (*done)(struct sim *))
{
	const struct event *next;

	while (!s->failed && (next = heap_top(&s->heap)) != NULL && next->at <= until) {
		struct event e;
		heap_pop(&s->heap, &e);
		s->now = e.at;
		dispatch(s, &e);
		if (++s->res->events > SIM_MAX_EVENTS) {
			fail(s, "more than %d events", SIM_MAX_EVENTS);
			return false;
		}
		if ((s->res->events & 63) == 0)
			check_log_matching(s);
		if (done && done(s))
			return true;
	}
	if (s->now < until)
		s->now = until;
	return false;
}

static bool stable_leader(struct sim *s)
{
	int l = leader_index(s);
	struct raft_status ls;

	if (l < 0)
		return false;
	raft_status(s->nodes[l].r, &ls);
	for (unsigned i = 0; i < s->n; i++) {
		struct raft_status st;
		raft_status(s->nodes[i].r, &st);
		if (st.term != ls.term || st.leader != ls.id)
			return false;
	}
	return true;
}

static uint64_t final_id;

static bool all_applied_final(struct sim *s)
{
	for (size_t i = 0; i < s->n_props; i++) {
		struct proposal *p = &s->props[i];
		if (p->id != final_id)
			continue;
		if (p->failed)
			return true; /* the caller retries */
		for (unsigned k = 0; k < s->n; k++)
			if (s->nodes[k].applied < p->index)
				return false;
		return true;
	}
	return false;
}

/* After healing, a client retries until its write is applied on every node, as a real one
 * would; the run fails if that takes longer than SIM_LIVENESS_MS. */
static bool final_failed(struct sim *s)
{
	for (size_t i = 0; i < s->n_props; i++)
		if (s->props[i].id == final_id)
			return s->props[i].failed;
	return true;
}

/*
 * What tests/lost-tail.test.sh does to a real cluster, once the cluster has healed and settled: a
 * follower killed in the middle of writes, its disk losing a synced tail, restarted at once. The
 * same leader stays, so only its lowering the follower's match brings the follower back: the
 * liveness check that follows must see the next write applied on every node.
 */
static void settled_follower_loses_tail(struct sim *s, unsigned l)
{
	unsigned f = (l + 1 + (unsigned)rng_below(&s->disk_rng, s->n - 1)) % s->n;

	trace(s, "node %u (a follower of %u) crashes during writes and loses a synced tail",
	      s->nodes[f].id, s->nodes[l].id);
	for (int k = 0; k < 3; k++)
		client_propose(s, l);
	process(s, &s->nodes[l]);
	run_until(s, s->now + 3 + rng_below(&s->disk_rng, 8), NULL);
	node_crash_cut(s, f, true);
	if (!s->failed)
		node_start(s, f);
}

static void heal_and_check_liveness(struct sim *s)
{
	uint64_t deadline;

	s->healed = true;
	heal_network(s);
	for (unsigned i = 0; i < s->n; i++) {
		/* disks heal too: a fault still armed would stop a node during the liveness check */
		raft_vfs_mem_clear_faults(s->nodes[i].vfs);
		s->nodes[i].disk_fault_armed = false;
	}
	s->drop_pm = 0;
	s->dup_pm = 0;
	s->delay_jitter_ms = 2;
	for (unsigned i = 0; i < s->n; i++)
		if (!s->nodes[i].up && node_start(s, i) != 0)
			return;
	deadline = s->now + SIM_LIVENESS_MS;
	bool tail_cut = !mix_cuts_tails(s) || !rng_chance(&s->disk_rng, SIM_SETTLED_CUT_PM);
	while (!s->failed && s->now < deadline) {
		int l;
		if (!run_until(s, deadline, stable_leader))
			break;
		l = leader_index(s);
		if (!tail_cut) {
			tail_cut = true;
			settled_follower_loses_tail(s, (unsigned)l);
			continue;
		}
		final_id = s->next_payload + 1;
		client_propose(s, (unsigned)l);
		if (s->n_props == 0 || s->props[s->n_props - 1].id != final_id) {
			/* refused (a transfer in progress, say): try again shortly */
			run_until(s, s->now + SIM_TICK_MS, NULL);
			continue;
		}
		process(s, &s->nodes[l]);
		/* like a client: wait a while for the answer, then retry (the entry may have been
		 * lost with a leader that stepped down, leaving nothing at its index) */
		uint64_t attempt_end =
		        s->now + SIM_ATTEMPT_MS < deadline ? s->now + SIM_ATTEMPT_MS : deadline;
		if (run_until(s, attempt_end, all_applied_final) && !final_failed(s))
			return;
	}
	if (!s->failed)
		fail(s, "liveness: no write applied on every node within %d ms of healing",
		     SIM_LIVENESS_MS);
}

static void final_checks(struct sim *s)
{
	uint64_t lowest = UINT64_MAX;

	if (s->untrusted)
		return;
	check_log_matching(s);
	for (unsigned i = 0; i < s->n; i++)
		if (s->nodes[i].applied < lowest)
			lowest = s->nodes[i].applied;
	s->res->committed = lowest;
	/* every acknowledged proposal is applied at its index on every node */
	for (size_t i = 0; i < s->n_props && !s->failed; i++) {
		struct proposal *p = &s->props[i];
		if (!p->acked)
			continue;
		s->res->proposals_acked++;
		if (p->index > s->applied_max || s->applied[p->index].payload != p->id)
			fail(s, "acknowledged proposal %llu at index %llu is lost",
			     (unsigned long long)p->id, (unsigned long long)p->index);
	}
	/* replicas that applied the same prefix reached the same state */
	for (unsigned i = 1; i < s->n && !s->failed; i++) {
		struct node *a = &s->nodes[0], *b = &s->nodes[i];
		if (a->applied == b->applied && a->app_hash != b->app_hash)
			fail(s, "nodes %u and %u applied up to %llu but differ", a->id, b->id,
			     (unsigned long long)a->applied);
	}
}

static void sim_free(struct sim *s)
{
	while (heap_len(&s->heap) > 0) {
		struct event e;
		heap_pop(&s->heap, &e);
		if (e.kind == EV_DELIVER) {
			msg_free(e.msg);
			raft_buf_unref(e.snap_data);
		}
	}
	heap_free(&s->heap);
	for (unsigned i = 0; i < s->n; i++) {
		struct node *nd = &s->nodes[i];
		if (nd->up)
			raft_free(nd->r);
		pp_clear(&nd->pp);
		raft_storage_restore_free(&nd->rs);
		raft_storage_free(nd->st);
		raft_vfs_free(nd->vfs);
		free(nd->dterm);
	}
	free(s->applied);
	free(s->leader_of_term);
	free(s->far_terms);
	free(s->props);
	free(s->reads);
	for (size_t i = 0; i < s->n_pool; i++) {
		msg_free(s->pool[i].msg);
		raft_buf_unref(s->pool[i].snap_data);
	}
	free(s->pool);
	for (size_t i = 0; i < SIM_HISTORY; i++) {
		msg_free(s->history[i]);
		raft_buf_unref(s->history_data[i]);
	}
	for (size_t i = 0; i < s->n_recs; i++)
		raft_buf_unref(s->recs[i].data);
	free(s->recs);
	free(s->forged_ctx);
	for (unsigned i = 0; i < SIM_MAX_NODES; i++)
		free(s->committed_term[i]);
}

static void dump_status(struct sim *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		struct node *nd = &s->nodes[i];
		struct raft_status st;
		uint64_t di, dt;
		shadow_last(nd, &di, &dt);
		fprintf(stderr,
		        "node %u: durable term %llu vote %u snapshot %llu@%llu log to %llu@%llu\n",
		        nd->id, (unsigned long long)nd->hs.term, nd->hs.vote,
		        (unsigned long long)nd->snap.index, (unsigned long long)nd->snap.term,
		        (unsigned long long)di, (unsigned long long)dt);
		if (!nd->up) {
			fprintf(stderr, "node %u: down\n", nd->id);
			continue;
		}
		raft_status(nd->r, &st);
		fprintf(stderr,
		        "node %u: %s term %llu leader %u commit %llu applied %llu (app %llu) stable "
		        "%llu log %llu..%llu snap %llu persist %s\n",
		        nd->id, raft_role_name(st.role), (unsigned long long)st.term, st.leader,
		        (unsigned long long)st.commit, (unsigned long long)st.applied,
		        (unsigned long long)nd->applied, (unsigned long long)st.stable,
		        (unsigned long long)st.first_index, (unsigned long long)st.last_index,
		        (unsigned long long)st.snapshot_index,
		        nd->pp.active ? "in flight" : "idle");
	}
}

const char *sim_mix_name(enum sim_mix mix)
{
	static const char *const names[SIM_MIX_COUNT] = {
	        [SIM_MIX_CLEAN] = "clean",         [SIM_MIX_LOSSY] = "lossy",
	        [SIM_MIX_PARTITION] = "partition", [SIM_MIX_ONE_WAY] = "one-way",
	        [SIM_MIX_CRASH] = "crash",         [SIM_MIX_ALL] = "all",
	        [SIM_MIX_CHURN] = "churn",
	};
	return (unsigned)mix < SIM_MIX_COUNT && names[mix] ? names[mix] : "unknown";
}

/* The cluster of opt, its nodes started. */
static void sim_setup(struct sim *s, const struct sim_options *opt, struct sim_result *res)
{
	s->opt = *opt;
	s->res = res;
	heap_init(&s->heap, sizeof(struct event), ev_before);
	s->rng.s = opt->seed * 0x2545f4914f6cdd1dULL + 1;
	s->disk_rng.s = mix64(opt->seed, 0xd15c);
	if (s->opt.mix < 0 || s->opt.mix >= SIM_MIX_COUNT)
		s->opt.mix = (int)(opt->seed % SIM_MIX_COUNT);
	s->n = opt->nodes ? opt->nodes : ((opt->seed / SIM_MIX_COUNT) % 2 ? 5 : 3);
	if (s->n > SIM_MAX_NODES)
		s->n = SIM_MAX_NODES;
	if (s->opt.fault_ms == 0)
		s->opt.fault_ms = 3000;
	res->mix = (unsigned)s->opt.mix;
	res->nodes = s->n;
	s->delay_min_ms = 1;
	s->delay_jitter_ms = mix_has(s, SIM_MIX_LOSSY) ? 30 : 2;
	if (mix_has(s, SIM_MIX_LOSSY)) {
		s->drop_pm = 50;
		s->dup_pm = 30;
	}
	if (s->opt.mix == SIM_MIX_CHURN) {
		/* lost messages let an old entry arrive without the new term's no-op behind it */
		s->drop_pm = 200 + (unsigned)rng_below(&s->rng, 200);
		s->delay_jitter_ms = 10;
	}
	s->conf.n = s->n;
	for (unsigned i = 0; i < s->n; i++) {
		struct node *nd = &s->nodes[i];
		nd->sim = s;
		nd->id = i + 1;
		s->conf.ids[i] = i + 1;
		snprintf(nd->dir, sizeof(nd->dir), "/n%u", nd->id);
		/* small segments, so that they rotate often; from the seed, not the run's rng */
		nd->segment_max_bytes = 1024 + mix64(opt->seed, nd->id) % 3072;
		nd->persist_ms = 4;
		if (mix_has(s, SIM_MIX_CRASH) && rng_chance(&s->disk_rng, SIM_SLOW_DISK_PM))
			nd->persist_ms = 10 + (unsigned)rng_below(&s->disk_rng, 60); /* slow disk */
		nd->vfs = raft_vfs_mem_new();
		if (!nd->vfs) {
			fail(s, "out of memory");
			break;
		}
	}
	for (unsigned i = 0; i < s->n && !s->failed; i++)
		node_start(s, i);
}

bool sim_run(const struct sim_options *opt, struct sim_result *res)
{
	struct sim *s = calloc(1, sizeof(*s));

	memset(res, 0, sizeof(*res));
	if (!s) {
		snprintf(res->error, sizeof(res->error), "out of memory");
		return false;
	}
	sim_setup(s, opt, res);
	schedule(s, 50, EV_CLIENT, s->n, NULL, NULL);
	if (s->opt.mix != SIM_MIX_CLEAN)
		schedule(s, 100 + rng_below(&s->rng, 200), EV_NEMESIS, s->n, NULL, NULL);
	run_until(s, s->opt.fault_ms, NULL);
	if (!s->failed)
		heal_and_check_liveness(s);
	if (!s->failed)
		final_checks(s);
	res->ok = !s->failed;
	if (s->failed && s->opt.trace)
		dump_status(s);
	sim_free(s);
	free(s);
	return res->ok;
}

void sim_plan(enum sim_mix mix, unsigned k, struct sim_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->seed = (uint64_t)(mix + 1) * 1000000 + k;
	opt->mix = (int)mix;
	opt->nodes = k % 2 ? 5 : 3;
}

/* --- stepped mode ------------------------------------------------------------------------------- */

static void pool_remove(struct sim *s, size_t k, bool release)
{
	if (release && s->pool[k].kind == EV_DELIVER) {
		msg_free(s->pool[k].msg);
		raft_buf_unref(s->pool[k].snap_data);
	}
	memmove(&s->pool[k], &s->pool[k + 1], (s->n_pool - k - 1) * sizeof(*s->pool));
	s->n_pool--;
}

static void stepped_add(struct sim *s, const struct event *e)
{
	if (e->kind != EV_DELIVER && e->kind != EV_PERSIST)
		return; /* time passes only by the caller's ticks */
	if (s->n_pool == SIM_POOL_MAX) {
		/* the network loses the oldest message it holds */
		size_t k = 0;
		while (k < s->n_pool && s->pool[k].kind != EV_DELIVER)
			k++;
		if (k == s->n_pool) {
			fail(s, "%d persist completions wait", SIM_POOL_MAX);
			return;
		}
		pool_remove(s, k, true);
	}
	s->pool[s->n_pool++] = *e;
}

static void stepped_record_entry(struct sim *s, const struct raft_entry *e)
{
	struct entry_rec *r;

	for (size_t i = 0; i < s->n_recs; i++) {
		r = &s->recs[i];
		if (r->index != e->index || r->term != e->term)
			continue;
		if (!s->untrusted &&
		    (r->type != e->type || r->len != e->len ||
		     (e->len && memcmp(r->data, e->data, e->len) != 0)))
			fail(s, "log matching: two different entries at index %llu of term %llu",
			     (unsigned long long)e->index, (unsigned long long)e->term);
		return;
	}
	if (s->n_recs == s->cap_recs) {
		size_t cap = s->cap_recs ? s->cap_recs * 2 : 64;
		struct entry_rec *a = realloc(s->recs, cap * sizeof(*a));
		if (!a) {
			fail(s, "out of memory");
			return;
		}
		s->recs = a;
		s->cap_recs = cap;
	}
	r = &s->recs[s->n_recs++];
	r->index = e->index;
	r->term = e->term;
	r->type = e->type;
	r->len = e->len;
	r->data = e->data;
	raft_buf_ref(r->data);
}

static void stepped_record_sent(struct sim *s, unsigned src, const struct raft_msg *copy,
                                void *data)
{
	size_t slot = s->n_history % SIM_HISTORY;
	struct raft_msg *h = msg_copy(copy);

	if (!h) {
		fail(s, "out of memory");
		return;
	}
	msg_free(s->history[slot]);
	raft_buf_unref(s->history_data[slot]);
	s->history[slot] = h;
	s->history_data[slot] = data;
	raft_buf_ref(data);
	s->n_history++;
	if (copy->type == RAFT_MSG_APPEND)
		for (uint32_t i = 0; i < copy->u.append.n_entries; i++)
			stepped_record_entry(s, &copy->u.append.entries[i]);
	if (copy->type == RAFT_MSG_HEARTBEAT) {
		struct hb_rec *hb = &s->hb_sent[src];
		if (copy->term > hb->term)
			*hb = (struct hb_rec){copy->term, 0};
		if (copy->term == hb->term && copy->u.heartbeat.read_seq > hb->read_seq)
			hb->read_seq = copy->u.heartbeat.read_seq;
	}
}

/*
 * What must hold of every node whatever its peers say (sim.h, stepped mode): its log's terms
 * rise, from the snapshot's on, and none is above its current term; and what it knew to be
 * committed stays: its commit index does not go back, and no entry up to it changes its term
 * or leaves the log other than into a snapshot.
 */
static void check_node_log(struct sim *s, unsigned i)
{
	struct node *nd = &s->nodes[i];
	struct raft_status st;
	uint64_t prev, from, *ct;

	raft_status(nd->r, &st);
	prev = st.snapshot_term;
	from = st.first_index > st.snapshot_index + 1 ? st.first_index : st.snapshot_index + 1;
	for (uint64_t k = from; k <= st.last_index && !s->failed; k++) {
		uint64_t t = raft_term_at(nd->r, k);
		if (t == 0 || t < prev || t > st.term)
			fail(s,
			     "node %u (term %llu): its log has term %llu at index %llu, after term "
			     "%llu",
			     nd->id, (unsigned long long)st.term, (unsigned long long)t,
			     (unsigned long long)k, (unsigned long long)prev);
		prev = t;
	}
	if (st.commit < s->committed_seen[i]) {
		fail(s, "node %u: its commit index went back from %llu to %llu", nd->id,
		     (unsigned long long)s->committed_seen[i], (unsigned long long)st.commit);
		return;
	}
	if (!grow((void **)&s->committed_term[i], &s->committed_cap[i], st.commit,
	          sizeof(*s->committed_term[i]))) {
		fail(s, "out of memory");
		return;
	}
	ct = s->committed_term[i];
	for (uint64_t k = s->committed_seen[i] + 1; k <= st.commit; k++)
		ct[k] = raft_term_at(nd->r, k); /* 0: compacted, unknown */
	s->committed_seen[i] = st.commit;
	for (uint64_t k = 1; k <= st.commit && !s->failed; k++) {
		uint64_t t;
		if (ct[k] == 0)
			continue;
		if (k == st.snapshot_index)
			t = st.snapshot_term;
		else if (k < from)
			continue; /* in the snapshot */
		else
			t = raft_term_at(nd->r, k);
		if (t != ct[k])
			fail(s,
			     "node %u: entry %llu, which it knew to be committed with term %llu, now "
			     "has term %llu",
			     nd->id, (unsigned long long)k, (unsigned long long)ct[k],
			     (unsigned long long)t);
	}
}

/* The checks after every step. */
static void stepped_check(struct sim *s)
{
	for (unsigned i = 0; i < s->n && !s->failed; i++)
		if (s->nodes[i].up)
			check_node_log(s, i);
	if (!s->failed)
		check_log_matching(s);
	s->res->events++;
}

struct sim *sim_open(unsigned nodes, uint64_t seed, struct sim_result *res)
{
	struct sim_options opt = {.seed = seed, .mix = SIM_MIX_CLEAN, .nodes = nodes};
	struct sim *s = calloc(1, sizeof(*s));

	memset(res, 0, sizeof(*res));
	if (!s || !(s->pool = calloc(SIM_POOL_MAX, sizeof(*s->pool)))) {
		free(s);
		return NULL;
	}
	s->stepped = true;
	sim_setup(s, &opt, res);
	if (!s->failed)
		stepped_check(s);
	return s;
}

bool sim_close(struct sim *s)
{
	bool ok;

	if (!s->failed)
		final_checks(s);
	ok = !s->failed;
	s->res->ok = ok;
	if (!ok && getenv("SIM_DUMP"))
		dump_status(s);
	sim_free(s);
	free(s);
	return ok;
}

bool sim_failed(const struct sim *s)
{
	return s->failed;
}

bool sim_untrusted(const struct sim *s)
{
	return s->untrusted;
}

unsigned sim_size(const struct sim *s)
{
	return s->n;
}

struct raft *sim_core(struct sim *s, unsigned i)
{
	return i < s->n && s->nodes[i].up ? s->nodes[i].r : NULL;
}

struct raft_storage *sim_storage(struct sim *s, unsigned i)
{
	return i < s->n && s->nodes[i].up ? s->nodes[i].st : NULL;
}

size_t sim_pending(const struct sim *s)
{
	return s->n_pool;
}

const struct raft_msg *sim_pending_msg(const struct sim *s, size_t k)
{
	return k < s->n_pool && s->pool[k].kind == EV_DELIVER ? s->pool[k].msg : NULL;
}

void sim_step_pending(struct sim *s, size_t k)
{
	struct event e;

	if (s->failed || k >= s->n_pool)
		return;
	e = s->pool[k];
	pool_remove(s, k, false);
	dispatch(s, &e); /* frees the message */
	stepped_check(s);
}

void sim_drop_pending(struct sim *s, size_t k)
{
	if (s->failed || k >= s->n_pool || s->pool[k].kind != EV_DELIVER)
		return; /* the disk does not forget a persist: only a crash does */
	pool_remove(s, k, true);
}

void sim_duplicate_pending(struct sim *s, size_t k)
{
	struct event e;

	if (s->failed || k >= s->n_pool || s->pool[k].kind != EV_DELIVER)
		return;
	e = s->pool[k];
	e.seq = s->ev_seq++;
	e.msg = msg_copy(s->pool[k].msg);
	if (!e.msg) {
		fail(s, "out of memory");
		return;
	}
	if (e.msg->type == RAFT_MSG_SNAPSHOT)
		raft_buf_ref(e.snap_data);
	else
		e.snap_data = NULL;
	stepped_add(s, &e);
}

void sim_step_replay(struct sim *s, size_t k)
{
	size_t n = s->n_history < SIM_HISTORY ? s->n_history : SIM_HISTORY;
	struct raft_msg *m;
	unsigned dst;

	if (s->failed || n == 0)
		return;
	m = s->history[(s->n_history - 1 - k % n) % SIM_HISTORY];
	dst = node_index(s, m->to);
	if (dst < s->n && s->nodes[dst].up) {
		raft_step(s->nodes[dst].r, m);
		process(s, &s->nodes[dst]);
	}
	stepped_check(s);
}

void sim_step_tick(struct sim *s, unsigned i)
{
	if (s->failed || i >= s->n || !s->nodes[i].up)
		return;
	raft_tick(s->nodes[i].r);
	process(s, &s->nodes[i]);
	stepped_check(s);
}

void sim_step_propose(struct sim *s, unsigned i)
{
	if (s->failed || i >= s->n)
		return;
	client_propose(s, i);
	if (s->nodes[i].up)
		process(s, &s->nodes[i]);
	stepped_check(s);
}

void sim_step_read(struct sim *s, unsigned i)
{
	if (s->failed || i >= s->n)
		return;
	client_read(s, i);
	if (s->nodes[i].up)
		process(s, &s->nodes[i]);
	stepped_check(s);
}

void sim_step_transfer(struct sim *s, unsigned i, uint32_t target)
{
	if (s->failed || i >= s->n || !s->nodes[i].up)
		return;
	raft_transfer(s->nodes[i].r, target);
	process(s, &s->nodes[i]);
	stepped_check(s);
}

void sim_step_crash(struct sim *s, unsigned i)
{
	if (s->failed || i >= s->n || !s->nodes[i].up)
		return;
	for (size_t k = s->n_pool; k-- > 0;)
		if (s->pool[k].kind == EV_PERSIST && s->pool[k].node == i)
			pool_remove(s, k, true); /* the fsync the power loss cut */
	node_crash(s, i);
	s->committed_seen[i] = 0; /* a restarted node knows nothing of its commit index */
	stepped_check(s);
}

void sim_step_restart(struct sim *s, unsigned i)
{
	if (s->failed || i >= s->n || s->nodes[i].up)
		return;
	node_start(s, i);
	stepped_check(s);
}

int sim_inject(struct sim *s, unsigned i, const struct raft_msg *m, bool trusted)
{
	int rv;

	if (s->failed || i >= s->n || !s->nodes[i].up)
		return RAFT_ESHUTDOWN;
	if (!trusted)
		s->untrusted = true;
	if (m->type == RAFT_MSG_READ_INDEX) {
		if (s->n_forged_ctx == s->cap_forged_ctx) {
			size_t cap = s->cap_forged_ctx ? s->cap_forged_ctx * 2 : 16;
			uint64_t *a = realloc(s->forged_ctx, cap * sizeof(*a));
			if (!a) {
				fail(s, "out of memory");
				return RAFT_ENOMEM;
			}
			s->forged_ctx = a;
			s->cap_forged_ctx = cap;
		}
		s->forged_ctx[s->n_forged_ctx++] = m->u.read_index.ctx;
	}
	rv = raft_step(s->nodes[i].r, m);
	process(s, &s->nodes[i]);
	stepped_check(s);
	return rv;
}

bool sim_durable_has(const struct sim *s, unsigned i, uint64_t index, uint64_t term)
{
	const struct node *nd = &s->nodes[i];

	if (index == nd->snap.index)
		return term == nd->snap.term;
	if (index < nd->snap.index)
		return false; /* compacted: its term is not known any more */
	return shadow_has(nd, index, term);
}

void sim_durable_last(const struct sim *s, unsigned i, uint64_t *index, uint64_t *term)
{
	shadow_last(&s->nodes[i], index, term);
}

struct raft_hard_state sim_durable_hard_state(const struct sim *s, unsigned i)
{
	return s->nodes[i].hs;
}

bool sim_entry(const struct sim *s, uint64_t index, uint64_t term, struct raft_entry *out)
{
	for (size_t i = 0; i < s->n_recs; i++) {
		const struct entry_rec *r = &s->recs[i];
		if (r->index == index && r->term == term) {
			out->index = index;
			out->term = term;
			out->type = r->type;
			out->len = r->len;
			out->data = r->data;
			return true;
		}
	}
	return false;
}

uint64_t sim_heartbeat_sent(const struct sim *s, unsigned i, uint64_t term)
{
	return s->hb_sent[i].term == term ? s->hb_sent[i].read_seq : 0;
}

bool sim_heartbeat_seen(const struct sim *s, unsigned to, unsigned from, uint64_t term,
                        uint64_t read_seq)
{
	const struct hb_rec *h = &s->hb_seen[to][from];

	return h->term == term && h->read_seq >= read_seq;
}

const char *sim_error(const struct sim *s)
{
	return s->res->error;
}
