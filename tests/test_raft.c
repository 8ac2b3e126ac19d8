/* test_raft.c - unit tests of the pure Raft core, one rule of the paper per test, on a hand-driven fixture. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"
#include "tests/lib/cu.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FX_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FX_ASAN 1
#endif
#ifdef FX_ASAN
/* from <sanitizer/allocator_interface.h>, which gcc does not install */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/*
 * The fixture: N cores (ids 1..N) stepped one event at a time by the test. Each node has
 *  - a fixed random sequence (node id k draws k-1 by default: election timeouts 10, 11, 12, ...
 *    ticks, so node 1 always times out first and elections are deterministic);
 *  - an in-memory disk (hard state, snapshot meta, log) written from each update's persistence
 *    work, synchronously unless the test sets delay_persist and releases it with fx_persist();
 *  - the committed entries and read states the application saw.
 * Every message a core sends lands in one mailbox; tests deliver, drop, edit or reorder messages
 * by hand. After each delivery the safety invariants are checked (STYLE.md 13).
 */

#define FX_MAX_NODES 5
#define FX_MAX_MAIL 4096
#define FX_MAX_APPLIED 256
#define FX_MAX_READS 64
#define FX_MAX_CHUNKS 32
#define FX_MAX_STEPS 100000
#define FX_ELECTION_TICKS 10
#define FX_ENTRY_BYTES 8

struct fx_applied {
	uint64_t index;
	uint64_t term;
	uint8_t type;
	uint32_t len;
	uint64_t tag; /* first 8 payload bytes */
};

/* One update's persistence work, copied out of the update (entries referenced). */
struct fx_pending {
	bool active;
	uint64_t seq;
	bool hs_changed;
	struct raft_hard_state hs;
	bool has_chunk;
	struct raft_snapshot_meta meta;
	uint64_t offset;
	uint32_t len;
	bool last;
	unsigned char *chunk;
	uint64_t truncate_from;
	struct raft_entry *entries;
	size_t n_entries;
};

struct fx_node {
	uint32_t id;
	struct raft *r;
	uint64_t rnd[8];
	unsigned n_rnd;
	unsigned i_rnd;
	bool delay_persist;
	struct fx_pending pending;
	/* the disk */
	struct raft_hard_state hs;
	struct raft_snapshot_meta snap;
	struct raft_entry *log; /* entries after snap.index, contiguous */
	size_t n_log;
	size_t cap_log;
	uint64_t in_bytes; /* bytes of an incoming snapshot held */
	unsigned n_persists;
	size_t last_persist_entries;
	unsigned n_chunks;
	uint64_t chunk_offset[FX_MAX_CHUNKS];
	uint32_t chunk_len[FX_MAX_CHUNKS];
	unsigned bad_chunks; /* chunks whose bytes or position were wrong */
	/* the application */
	struct fx_applied applied[FX_MAX_APPLIED]; /* the first FX_MAX_APPLIED applied */
	size_t n_applied;
	uint64_t last_applied; /* index of the last entry applied, recorded or not */
	struct raft_read_state reads[FX_MAX_READS];
	size_t n_reads;
};

struct fx_mail {
	struct raft_msg m;
	void *data; /* snapshot chunk filled by the "transport" */
};

struct fx {
	unsigned n;
	struct raft_conf conf;
	struct raft_config cfg; /* template; id is set per node */
	struct fx_node nodes[FX_MAX_NODES];
	struct fx_mail mail[FX_MAX_MAIL];
	size_t n_mail;
	uint32_t most_append_entries; /* the most entries an AppendEntries sent carried */
	bool cut[FX_MAX_NODES + 1][FX_MAX_NODES + 1]; /* cut[from][to]: messages dropped */
};

static struct fx F;

static struct fx_node *N(uint32_t id)
{
	return &F.nodes[id - 1];
}

static uint64_t fx_random(void *ctx)
{
	struct fx_node *nd = ctx;
	return nd->rnd[nd->i_rnd++ % nd->n_rnd];
}

/* The snapshot image of index is a byte pattern, so the receiver can check every chunk. */
static unsigned char snap_byte(uint64_t index, uint64_t offset)
{
	return (unsigned char)(index * 31 + offset * 7 + 1);
}

static void fx_init(unsigned n)
{
	memset(&F, 0, sizeof(F));
	F.n = n;
	F.conf.n = n;
	for (unsigned i = 0; i < n; i++)
		F.conf.ids[i] = i + 1;
	raft_config_default(&F.cfg, 1, &F.conf);
	F.cfg.election_ticks = FX_ELECTION_TICKS;
	F.cfg.heartbeat_ticks = 1;
	F.cfg.pre_vote = false;
	F.cfg.check_quorum = false;
	for (unsigned i = 0; i < n; i++) {
		F.nodes[i].id = i + 1;
		F.nodes[i].rnd[0] = i;
		F.nodes[i].n_rnd = 1;
	}
}

static void entry_release(struct raft_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		raft_buf_unref(e[i].data);
}

static void store_drop_from(struct fx_node *nd, uint64_t index)
{
	size_t keep = 0;

	while (keep < nd->n_log && nd->log[keep].index < index)
		keep++;
	if (keep < nd->n_log)
		entry_release(nd->log + keep, nd->n_log - keep);
	nd->n_log = keep;
}

static void store_append(struct fx_node *nd, const struct raft_entry *e)
{
	store_drop_from(nd, e->index);
	if (nd->n_log > 0)
		CU_ASSERT_EQUAL(nd->log[nd->n_log - 1].index + 1, e->index);
	if (nd->n_log == nd->cap_log) {
		nd->cap_log = nd->cap_log ? nd->cap_log * 2 : 32;
		nd->log = realloc(nd->log, nd->cap_log * sizeof(*nd->log));
		if (!nd->log)
			abort();
	}
	nd->log[nd->n_log++] = *e;
	raft_buf_ref(e->data);
}

static void pending_clear(struct fx_pending *p)
{
	free(p->chunk);
	entry_release(p->entries, p->n_entries);
	free(p->entries);
	memset(p, 0, sizeof(*p));
}

static void fx_process(uint32_t id);

/* Makes the pending persistence work durable on the in-memory disk and tells the core. */
static void fx_persist(uint32_t id)
{
	struct fx_node *nd = N(id);
	struct fx_pending *p = &nd->pending;
	uint64_t seq;

	if (!p->active)
		return;
	if (p->hs_changed)
		nd->hs = p->hs;
	if (p->has_chunk) {
		if (nd->n_chunks < FX_MAX_CHUNKS) {
			nd->chunk_offset[nd->n_chunks] = p->offset;
			nd->chunk_len[nd->n_chunks] = p->len;
		}
		nd->n_chunks++;
		if (p->offset != nd->in_bytes)
			nd->bad_chunks++;
		for (uint32_t k = 0; k < p->len; k++)
			if (p->chunk[k] != snap_byte(p->meta.index, p->offset + k)) {
				nd->bad_chunks++;
				break;
			}
		nd->in_bytes = p->offset + p->len;
		if (p->last) {
			if (nd->in_bytes != p->meta.size)
				nd->bad_chunks++;
			nd->snap = p->meta;
			store_drop_from(nd, 0);
			nd->in_bytes = 0;
			nd->n_applied = 0; /* the application state is the snapshot's now */
			nd->last_applied = p->meta.index;
		}
	}
	if (p->truncate_from)
		store_drop_from(nd, p->truncate_from);
	for (size_t i = 0; i < p->n_entries; i++)
		store_append(nd, &p->entries[i]);
	nd->n_persists++;
	nd->last_persist_entries = p->n_entries;
	seq = p->seq;
	pending_clear(p);
	raft_persisted(nd->r, seq);
	fx_process(id);
}

static void mail_push(const struct raft_msg *m)
{
	struct fx_mail *box;

	CU_ASSERT_FATAL(F.n_mail < FX_MAX_MAIL);
	box = &F.mail[F.n_mail++];
	box->m = *m;
	box->data = NULL;
	if (m->type == RAFT_MSG_APPEND && m->u.append.n_entries > F.most_append_entries)
		F.most_append_entries = m->u.append.n_entries;
	if (m->type == RAFT_MSG_APPEND && m->u.append.n_entries) {
		size_t sz = m->u.append.n_entries * sizeof(struct raft_entry);
		box->m.u.append.entries = malloc(sz);
		if (!box->m.u.append.entries)
			abort();
		memcpy(box->m.u.append.entries, m->u.append.entries, sz);
		for (uint32_t i = 0; i < m->u.append.n_entries; i++)
			raft_buf_ref(box->m.u.append.entries[i].data);
	}
	if (m->type == RAFT_MSG_SNAPSHOT) {
		/* the transport fills the chunk from the sender's snapshot image */
		const struct raft_msg_snapshot *s = &m->u.snapshot;
		unsigned char *d = raft_buf_alloc(s->len);
		if (!d)
			abort();
		for (uint32_t k = 0; k < s->len; k++)
			d[k] = snap_byte(s->meta.index, s->offset + k);
		box->data = d;
		box->m.u.snapshot.data = d;
	}
}

static void mail_release(struct fx_mail *box)
{
	if (box->m.type == RAFT_MSG_APPEND && box->m.u.append.entries) {
		entry_release(box->m.u.append.entries, box->m.u.append.n_entries);
		free(box->m.u.append.entries);
	}
	raft_buf_unref(box->data);
}

/* Takes message k out of the mailbox; the caller releases it. */
static struct fx_mail mail_take(size_t k)
{
	struct fx_mail box = F.mail[k];

	memmove(&F.mail[k], &F.mail[k + 1], (F.n_mail - k - 1) * sizeof(F.mail[0]));
	F.n_mail--;
	return box;
}

static void fx_process(uint32_t id)
{
	struct fx_node *nd = N(id);

	for (int rounds = 0; nd->r && raft_has_update(nd->r); rounds++) {
		struct raft_update u;
		bool persist;

		CU_ASSERT_FATAL(rounds < 1000);
		CU_ASSERT_EQUAL_FATAL(raft_update_get(nd->r, &u), RAFT_OK);
		persist = u.persist_seq != 0;
		if (persist) {
			struct fx_pending *p = &nd->pending;
			CU_ASSERT_FATAL(!p->active); /* one persistence work at a time */
			p->active = true;
			p->seq = u.persist_seq;
			p->hs_changed = u.hs_changed;
			p->hs = u.hs;
			p->truncate_from = u.truncate_from;
			if (u.has_snap_chunk) {
				p->has_chunk = true;
				p->meta = u.snap_meta;
				p->offset = u.snap_offset;
				p->len = u.snap_len;
				p->last = u.snap_last;
				p->chunk = malloc(u.snap_len + 1);
				if (!p->chunk)
					abort();
				memcpy(p->chunk, u.snap_data, u.snap_len);
			}
			if (u.n_entries) {
				p->entries = malloc(u.n_entries * sizeof(*p->entries));
				if (!p->entries)
					abort();
				memcpy(p->entries, u.entries, u.n_entries * sizeof(*p->entries));
				for (size_t i = 0; i < u.n_entries; i++)
					raft_buf_ref(p->entries[i].data);
				p->n_entries = u.n_entries;
			}
		}
		for (size_t i = 0; i < u.n_msgs; i++)
			mail_push(&u.msgs[i]);
		for (size_t i = 0; i < u.n_committed; i++) {
			const struct raft_entry *e = &u.committed[i];
			struct fx_applied a = {e->index, e->term, e->type, e->len, 0};
			if (nd->last_applied > 0)
				CU_ASSERT_EQUAL(nd->last_applied + 1, e->index);
			nd->last_applied = e->index;
			if (e->len >= 8)
				memcpy(&a.tag, e->data, 8);
			if (nd->n_applied < FX_MAX_APPLIED)
				nd->applied[nd->n_applied++] = a;
		}
		for (size_t i = 0; i < u.n_reads; i++)
			if (nd->n_reads < FX_MAX_READS)
				nd->reads[nd->n_reads++] = u.reads[i];
		raft_update_done(nd->r, &u);
		if (persist && !nd->delay_persist)
			fx_persist(id);
	}
}

/* Creates (or re-creates after a crash) node id's core from its disk. */
static int fx_start(uint32_t id)
{
	struct fx_node *nd = N(id);
	struct raft_config cfg = F.cfg;
	struct raft_env env = {nd, fx_random, NULL};
	struct raft_restore rs;

	cfg.id = id;
	cfg.conf = F.conf;
	memset(&rs, 0, sizeof(rs));
	rs.hs = nd->hs;
	rs.snap = nd->snap;
	rs.entries = nd->log;
	rs.n_entries = nd->n_log;
	nd->n_applied = 0;
	nd->last_applied = 0;
	nd->n_reads = 0;
	return raft_new(&cfg, &env, &rs, &nd->r);
}

static void fx_start_all(void)
{
	for (unsigned i = 1; i <= F.n; i++)
		CU_ASSERT_EQUAL_FATAL(fx_start(i), RAFT_OK);
}

/* A payload buffer whose first 8 bytes are tag. */
static void *payload(uint64_t tag, uint32_t len)
{
	unsigned char *b = raft_buf_alloc(len);

	if (!b)
		abort();
	memset(b, 0xab, len);
	if (len >= 8)
		memcpy(b, &tag, 8);
	return b;
}

/* Puts a log on node id's disk before it starts: entry i+1 has terms[i], payload tag i+1. */
static void fx_disk(uint32_t id, uint64_t term, uint32_t vote, const uint64_t *terms, size_t n)
{
	struct fx_node *nd = N(id);

	nd->hs.term = term;
	nd->hs.vote = vote;
	for (size_t i = 0; i < n; i++) {
		struct raft_entry e = {terms[i], i + 1, RAFT_ENTRY_NORMAL, FX_ENTRY_BYTES, NULL};
		e.data = payload(i + 1, FX_ENTRY_BYTES);
		store_append(nd, &e);
		raft_buf_unref(e.data);
	}
}

static void fx_free(void)
{
	for (unsigned i = 0; i < F.n; i++) {
		struct fx_node *nd = &F.nodes[i];
		raft_free(nd->r);
		nd->r = NULL;
		pending_clear(&nd->pending);
		store_drop_from(nd, 0);
		free(nd->log);
		nd->log = NULL;
	}
	for (size_t k = 0; k < F.n_mail; k++)
		mail_release(&F.mail[k]);
	F.n_mail = 0;
}

static void fx_restart(uint32_t id)
{
	struct fx_node *nd = N(id);

	raft_free(nd->r);
	nd->r = NULL;
	pending_clear(&nd->pending);
	CU_ASSERT_EQUAL_FATAL(fx_start(id), RAFT_OK);
}

static struct raft_status st(uint32_t id)
{
	struct raft_status s;
	raft_status(N(id)->r, &s);
	return s;
}

/* Safety invariants, checked after every step: Election Safety (one leader per term), State
 * Machine Safety on the committed prefixes, and commit/applied bounds. */
static void fx_check(void)
{
	for (unsigned a = 1; a <= F.n; a++) {
		struct raft_status sa;
		if (!N(a)->r)
			continue;
		sa = st(a);
		CU_ASSERT(sa.commit <= sa.last_index);
		CU_ASSERT(sa.applied <= sa.commit);
		for (unsigned b = a + 1; b <= F.n; b++) {
			struct raft_status sb;
			if (!N(b)->r)
				continue;
			sb = st(b);
			CU_ASSERT(!(sa.role == RAFT_LEADER && sb.role == RAFT_LEADER &&
			            sa.term == sb.term));
			uint64_t c = sa.commit < sb.commit ? sa.commit : sb.commit;
			for (uint64_t i = 1; i <= c; i++) {
				uint64_t ta = raft_term_at(N(a)->r, i),
				         tb = raft_term_at(N(b)->r, i);
				if (ta && tb)
					CU_ASSERT_EQUAL(ta, tb);
			}
		}
	}
}

/* Steps m into its destination (a hand-made message) and runs that node's loop turn. */
static int fx_step(const struct raft_msg *m)
{
	int rv = raft_step(N(m->to)->r, m);

	fx_process(m->to);
	fx_check();
	return rv;
}

static int fx_deliver(size_t k)
{
	struct fx_mail box = mail_take(k);
	int rv = fx_step(&box.m);

	mail_release(&box);
	return rv;
}

static void fx_drop(size_t k)
{
	struct fx_mail box = mail_take(k);
	mail_release(&box);
}

static bool mail_matches(size_t k, int type, uint32_t from, uint32_t to)
{
	const struct raft_msg *m = &F.mail[k].m;
	return (type == 0 || m->type == type) && (from == 0 || m->from == from) &&
	        (to == 0 || m->to == to);
}

/* Index of the first message matching (0 is a wildcard), or -1. */
static int fx_find(int type, uint32_t from, uint32_t to)
{
	for (size_t k = 0; k < F.n_mail; k++)
		if (mail_matches(k, type, from, to))
			return (int)k;
	return -1;
}

static unsigned fx_count(int type, uint32_t from, uint32_t to)
{
	unsigned c = 0;
	for (size_t k = 0; k < F.n_mail; k++)
		c += mail_matches(k, type, from, to);
	return c;
}

static unsigned fx_drop_matching(int type, uint32_t from, uint32_t to)
{
	unsigned c = 0;
	int k;
	while ((k = fx_find(type, from, to)) >= 0) {
		fx_drop((size_t)k);
		c++;
	}
	return c;
}

/* Delivers matching messages, including matching ones sent meanwhile. */
static void fx_deliver_matching(int type, uint32_t from, uint32_t to)
{
	int k, steps = 0;
	while ((k = fx_find(type, from, to)) >= 0) {
		CU_ASSERT_FATAL(++steps < FX_MAX_STEPS);
		fx_deliver((size_t)k);
	}
}

/* Delivers everything in order until the network is quiet; cut links drop. */
static void fx_deliver_all(void)
{
	int steps = 0;
	while (F.n_mail > 0) {
		const struct raft_msg *m = &F.mail[0].m;
		CU_ASSERT_FATAL(++steps < FX_MAX_STEPS);
		if (F.cut[m->from][m->to])
			fx_drop(0);
		else
			fx_deliver(0);
	}
}

static void fx_isolate(uint32_t id, bool cut)
{
	for (unsigned j = 1; j <= F.n; j++) {
		if (j == id)
			continue;
		F.cut[id][j] = cut;
		F.cut[j][id] = cut;
	}
}

static void fx_tick(uint32_t id, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(raft_tick(N(id)->r), RAFT_OK);
		fx_process(id);
	}
	fx_check();
}

/* Ticks node id until it starts an election, then lets the network settle: id is leader. One
 * heartbeat follows, so that every follower has learnt the commit of the term's no-op (a follower
 * whose probe was outstanding when the no-op committed only learns it from the next message). */
static void fx_elect(uint32_t id)
{
	for (int i = 0; i < 3 * FX_ELECTION_TICKS && st(id).role == RAFT_FOLLOWER; i++)
		fx_tick(id, 1);
	fx_deliver_all();
	CU_ASSERT_EQUAL_FATAL(st(id).role, RAFT_LEADER);
	fx_tick(id, 1);
	fx_deliver_all();
}

static int fx_propose(uint32_t id, uint64_t tag, uint32_t len, uint64_t *index)
{
	int rv = raft_propose(N(id)->r, payload(tag, len), len, index, NULL);
	fx_process(id);
	return rv;
}

/* One heartbeat from leader id, delivered with everything it leads to: followers learn the
 * leader's commit index (nothing is sent only to carry it: raft.c maybe_commit). */
static void fx_heartbeat(uint32_t id)
{
	fx_tick(id, F.cfg.heartbeat_ticks);
	fx_deliver_all();
}

static struct raft_msg mk(int type, uint32_t from, uint32_t to, uint64_t term)
{
	struct raft_msg m;

	memset(&m, 0, sizeof(m));
	m.type = (uint8_t)type;
	m.from = from;
	m.to = to;
	m.term = term;
	return m;
}

static const struct raft_msg *mail_at(int k)
{
	CU_ASSERT_FATAL(k >= 0 && (size_t)k < F.n_mail);
	return &F.mail[k].m;
}

/* A 3-node cluster with node 1 elected and its no-op committed everywhere. */
static void fx_cluster3_with_leader(void)
{
	fx_init(3);
	fx_start_all();
	fx_elect(1);
	CU_ASSERT_EQUAL_FATAL(st(1).commit, 1);
	CU_ASSERT_EQUAL_FATAL(st(2).commit, 1);
	CU_ASSERT_EQUAL_FATAL(st(3).commit, 1);
}

/* --- 5.2 leader election ------------------------------------------------------------------------ */

static void test_5_2_follower_becomes_candidate_after_election_timeout(void)
{
	fx_init(3);
	fx_start_all();
	fx_tick(1, FX_ELECTION_TICKS - 1);
	CU_ASSERT_EQUAL(st(1).role, RAFT_FOLLOWER);
	CU_ASSERT_EQUAL(st(1).term, 0);
	CU_ASSERT_EQUAL(F.n_mail, 0);

	fx_tick(1, 1);
	/* paper 5.2: "increments its current term and transitions to candidate state. It then
	 * votes for itself and issues RequestVote RPCs" */
	CU_ASSERT_EQUAL(st(1).role, RAFT_CANDIDATE);
	CU_ASSERT_EQUAL(st(1).term, 1);
	CU_ASSERT_EQUAL(st(1).vote, 1);
	CU_ASSERT_EQUAL(N(1)->hs.term, 1);
	CU_ASSERT_EQUAL(N(1)->hs.vote, 1);
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_VOTE, 1, 0), 2);
	for (size_t k = 0; k < F.n_mail; k++) {
		CU_ASSERT_EQUAL(F.mail[k].m.term, 1);
		CU_ASSERT_FALSE(F.mail[k].m.u.vote.pre_vote);
		CU_ASSERT_EQUAL(F.mail[k].m.u.vote.last_log_index, 0);
	}
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(1).role, RAFT_LEADER);
	CU_ASSERT_EQUAL(st(2).leader, 1);
	fx_free();
}

static void test_5_2_vote_is_granted_once_per_term(void)
{
	struct raft_msg v;
	int k;

	fx_init(3);
	fx_start_all();
	v = mk(RAFT_MSG_VOTE, 1, 3, 1);
	CU_ASSERT_EQUAL(fx_step(&v), RAFT_OK);
	k = fx_find(RAFT_MSG_VOTE_RESP, 3, 1);
	CU_ASSERT_TRUE(mail_at(k)->u.vote_resp.granted);
	CU_ASSERT_EQUAL(mail_at(k)->term, 1);
	CU_ASSERT_EQUAL(N(3)->hs.vote, 1);

	/* a second candidate of the same term is refused */
	v = mk(RAFT_MSG_VOTE, 2, 3, 1);
	fx_step(&v);
	k = fx_find(RAFT_MSG_VOTE_RESP, 3, 2);
	CU_ASSERT_FALSE(mail_at(k)->u.vote_resp.granted);
	CU_ASSERT_EQUAL(st(3).vote, 1);

	/* the same candidate asking again (a retransmission) gets the same answer */
	fx_drop_matching(0, 0, 0);
	v = mk(RAFT_MSG_VOTE, 1, 3, 1);
	fx_step(&v);
	k = fx_find(RAFT_MSG_VOTE_RESP, 3, 1);
	CU_ASSERT_TRUE(mail_at(k)->u.vote_resp.granted);

	/* a new term frees the vote */
	v = mk(RAFT_MSG_VOTE, 2, 3, 2);
	fx_step(&v);
	k = fx_find(RAFT_MSG_VOTE_RESP, 3, 2);
	CU_ASSERT_TRUE(mail_at(k)->u.vote_resp.granted);
	CU_ASSERT_EQUAL(N(3)->hs.term, 2);
	CU_ASSERT_EQUAL(N(3)->hs.vote, 2);
	fx_free();
}

/* --- 5.4.1 election restriction ----------------------------------------------------------------- */

static void test_5_4_1_vote_refused_when_candidate_log_is_behind(void)
{
	static const uint64_t terms[] = {1, 2};
	struct raft_msg v;
	int k;

	fx_init(3);
	fx_disk(3, 2, 0, terms, 2);
	fx_start_all();

	/* longer log but older last term: behind */
	v = mk(RAFT_MSG_VOTE, 1, 3, 3);
	v.u.vote.last_log_index = 5;
	v.u.vote.last_log_term = 1;
	fx_step(&v);
	k = fx_find(RAFT_MSG_VOTE_RESP, 3, 1);
	CU_ASSERT_FALSE(mail_at(k)->u.vote_resp.granted);
	CU_ASSERT_EQUAL(st(3).term, 3); /* the term is learnt anyway */
	CU_ASSERT_EQUAL(st(3).vote, 0);

	/* same last term, shorter log: behind */
	v = mk(RAFT_MSG_VOTE, 2, 3, 3);
	v.u.vote.last_log_index = 1;
	v.u.vote.last_log_term = 2;
	fx_step(&v);
	k = fx_find(RAFT_MSG_VOTE_RESP, 3, 2);
	CU_ASSERT_FALSE(mail_at(k)->u.vote_resp.granted);
	CU_ASSERT_EQUAL(st(3).vote, 0);
	fx_drop_matching(0, 0, 0);

	/* same last term and length: at least as up-to-date */
	v = mk(RAFT_MSG_VOTE, 2, 3, 3);
	v.u.vote.last_log_index = 2;
	v.u.vote.last_log_term = 2;
	fx_step(&v);
	k = fx_find(RAFT_MSG_VOTE_RESP, 3, 2);
	CU_ASSERT_TRUE(mail_at(k)->u.vote_resp.granted);
	CU_ASSERT_EQUAL(st(3).vote, 2);
	fx_free();
}

/* --- 5.3 log replication ------------------------------------------------------------------------ */

static void test_5_3_follower_rejects_append_when_prev_term_mismatches(void)
{
	static const uint64_t terms[] = {1, 1, 2};
	struct raft_msg a;
	const struct raft_msg *r;
	int k;

	fx_init(3);
	fx_disk(2, 3, 0, terms, 3);
	fx_start_all();
	a = mk(RAFT_MSG_APPEND, 1, 2, 3);
	a.u.append.prev_index = 3;
	a.u.append.prev_term = 3;
	fx_step(&a);
	k = fx_find(RAFT_MSG_APPEND_RESP, 2, 1);
	r = mail_at(k);
	CU_ASSERT_FALSE(r->u.append_resp.success);
	CU_ASSERT_EQUAL(r->u.append_resp.index, 3);
	CU_ASSERT_EQUAL(r->u.append_resp.hint_index, 3);
	CU_ASSERT_EQUAL(r->u.append_resp.hint_term, 2);
	CU_ASSERT_EQUAL(st(2).last_index, 3);
	CU_ASSERT_EQUAL(raft_term_at(N(2)->r, 3), 2);
	CU_ASSERT_EQUAL(st(2).leader, 1);
	CU_ASSERT_EQUAL(N(2)->n_log, 3);
	fx_drop_matching(0, 0, 0);

	/* a prev_index beyond the log is refused too, with the log's end as the hint */
	a.u.append.prev_index = 6;
	fx_step(&a);
	r = mail_at(fx_find(RAFT_MSG_APPEND_RESP, 2, 1));
	CU_ASSERT_FALSE(r->u.append_resp.success);
	CU_ASSERT_EQUAL(r->u.append_resp.index, 6);
	CU_ASSERT_EQUAL(r->u.append_resp.hint_index, 3);
	fx_free();
}

static void test_5_3_conflicting_suffix_is_truncated_and_replaced(void)
{
	static const uint64_t terms[] = {1, 1, 2, 2};
	struct raft_entry e = {3, 3, RAFT_ENTRY_NORMAL, FX_ENTRY_BYTES, NULL};
	struct raft_msg a;
	const struct raft_msg *r;

	fx_init(3);
	fx_disk(2, 3, 0, terms, 4);
	fx_start_all();
	e.data = payload(333, FX_ENTRY_BYTES);
	a = mk(RAFT_MSG_APPEND, 1, 2, 3);
	a.u.append.prev_index = 2;
	a.u.append.prev_term = 1;
	a.u.append.commit = 2;
	a.u.append.n_entries = 1;
	a.u.append.entries = &e;
	fx_step(&a);
	raft_buf_unref(e.data);

	/* paper Figure 2, AppendEntries 3-4: delete the conflicting entry and all that follow */
	CU_ASSERT_EQUAL(st(2).last_index, 3);
	CU_ASSERT_EQUAL(raft_term_at(N(2)->r, 3), 3);
	CU_ASSERT_EQUAL(raft_term_at(N(2)->r, 4), 0);
	CU_ASSERT_EQUAL(st(2).commit, 2);
	/* ... on disk too */
	CU_ASSERT_EQUAL_FATAL(N(2)->n_log, 3);
	CU_ASSERT_EQUAL(N(2)->log[2].term, 3);
	CU_ASSERT_EQUAL(*(uint64_t *)N(2)->log[2].data, 333);
	r = mail_at(fx_find(RAFT_MSG_APPEND_RESP, 2, 1));
	CU_ASSERT_TRUE(r->u.append_resp.success);
	CU_ASSERT_EQUAL(r->u.append_resp.index, 3);
	CU_ASSERT_EQUAL(N(2)->n_applied, 2);
	fx_free();
}

static void test_5_3_leader_backs_off_quickly_with_conflict_hint(void)
{
	static const uint64_t leader_terms[] = {1, 1, 1, 4, 4, 4, 4, 4, 4, 4};
	static const uint64_t stale_terms[] = {1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2};
	const struct raft_msg *m;
	unsigned appends_to_2 = 0;

	fx_init(3);
	fx_disk(1, 4, 0, leader_terms, 10);
	fx_disk(2, 2, 0, stale_terms, 12);
	fx_disk(3, 4, 0, leader_terms, 10);
	fx_start_all();
	fx_tick(1, FX_ELECTION_TICKS);
	fx_deliver_matching(RAFT_MSG_VOTE, 1, 0);
	fx_deliver_matching(RAFT_MSG_VOTE_RESP, 0, 1);
	CU_ASSERT_EQUAL_FATAL(st(1).role, RAFT_LEADER);
	CU_ASSERT_EQUAL(st(1).term, 5);
	CU_ASSERT_EQUAL(st(1).last_index, 11); /* the term's no-op */

	m = mail_at(fx_find(RAFT_MSG_APPEND, 1, 2));
	CU_ASSERT_EQUAL(m->u.append.prev_index, 10);
	CU_ASSERT_EQUAL(m->u.append.prev_term, 4);
	fx_deliver((size_t)fx_find(RAFT_MSG_APPEND, 1, 2));
	appends_to_2++;
	m = mail_at(fx_find(RAFT_MSG_APPEND_RESP, 2, 1));
	CU_ASSERT_FALSE(m->u.append_resp.success);
	CU_ASSERT_EQUAL(m->u.append_resp.hint_index, 10);
	CU_ASSERT_EQUAL(m->u.append_resp.hint_term, 2);
	fx_deliver((size_t)fx_find(RAFT_MSG_APPEND_RESP, 2, 1));

	/* one step back over the whole term-2 run (and the leader's term-4 run): to index 3 */
	m = mail_at(fx_find(RAFT_MSG_APPEND, 1, 2));
	CU_ASSERT_EQUAL(m->u.append.prev_index, 3);
	CU_ASSERT_EQUAL(m->u.append.prev_term, 1);
	CU_ASSERT_EQUAL(m->u.append.n_entries, 8);
	fx_deliver((size_t)fx_find(RAFT_MSG_APPEND, 1, 2));
	appends_to_2++;
	m = mail_at(fx_find(RAFT_MSG_APPEND_RESP, 2, 1));
	CU_ASSERT_TRUE(m->u.append_resp.success);
	CU_ASSERT_EQUAL(m->u.append_resp.index, 11);
	CU_ASSERT_EQUAL(appends_to_2, 2);

	fx_deliver_all();
	fx_heartbeat(1);
	CU_ASSERT_EQUAL(st(2).last_index, 11);
	CU_ASSERT_EQUAL(raft_term_at(N(2)->r, 4), 4);
	CU_ASSERT_EQUAL(raft_term_at(N(2)->r, 11), 5);
	CU_ASSERT_EQUAL(N(2)->n_log, 11);
	CU_ASSERT_EQUAL(st(1).commit, 11);
	CU_ASSERT_EQUAL(st(2).commit, 11);
	fx_free();
}

/*
 * Paper 5.3: followers learn the commit index from "future AppendEntries RPCs". Nothing is sent
 * only to carry it: the next AppendEntries does (a write after a write), or the next heartbeat
 * (at most heartbeat_ticks later). At one client, a message per follower and its answer only
 * for the commit doubled the messages of each write. A follower's read does not wait for it:
 * test_6_4_follower_read_learns_commit_from_the_read_index.
 */
static void test_5_3_commit_index_travels_with_the_next_append_or_heartbeat(void)
{
	const struct raft_msg *m;

	fx_cluster3_with_leader();
	CU_ASSERT_EQUAL(fx_propose(1, 2, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(1).commit, 2);
	CU_ASSERT_EQUAL(N(1)->n_applied, 2);
	CU_ASSERT_EQUAL(F.n_mail, 0); /* the commit made no message */
	CU_ASSERT_EQUAL(st(2).last_index, 2);
	CU_ASSERT_EQUAL(st(2).commit, 1);
	CU_ASSERT_EQUAL(st(3).commit, 1);
	/* the next write carries it */
	CU_ASSERT_EQUAL(fx_propose(1, 3, FX_ENTRY_BYTES, NULL), RAFT_OK);
	m = mail_at(fx_find(RAFT_MSG_APPEND, 1, 2));
	CU_ASSERT_EQUAL(m->u.append.commit, 2);
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(1).commit, 3);
	CU_ASSERT_EQUAL(st(2).commit, 2);
	CU_ASSERT_EQUAL(st(3).commit, 2);
	CU_ASSERT_EQUAL(N(2)->n_applied, 2);
	/* and, when no write follows, the next heartbeat */
	fx_heartbeat(1);
	CU_ASSERT_EQUAL(st(2).commit, 3);
	CU_ASSERT_EQUAL(st(3).commit, 3);
	CU_ASSERT_EQUAL(N(3)->n_applied, 3);
	fx_free();
}

/* --- 5.4.2 committing entries from previous terms (Figure 8) ----------------------------------- */

/*
 * Figure 8 (c): S1 leads term 4 with log [1:1, 2:2]; S2 and S3 hold index 2 (term 2) too, S4 has
 * [1:1], S5 has [1:1, 2:3] (it led term 3). Index 2 is on a majority, yet S5 could still be elected
 * (its last term 3 beats 2) and overwrite it, so counting replicas must not commit it.
 */
static void fig8_elect_s1(void)
{
	static const uint64_t s1[] = {1, 2}, s4[] = {1}, s5[] = {1, 3};

	fx_init(5);
	fx_disk(1, 3, 0, s1, 2);
	fx_disk(2, 3, 0, s1, 2);
	fx_disk(3, 3, 0, s1, 2);
	fx_disk(4, 3, 0, s4, 1);
	fx_disk(5, 3, 5, s5, 2);
	fx_start_all();
	fx_tick(1, FX_ELECTION_TICKS);
	CU_ASSERT_EQUAL_FATAL(st(1).term, 4);
	fx_deliver_matching(RAFT_MSG_VOTE, 1, 0);
	fx_deliver_matching(RAFT_MSG_VOTE_RESP, 0, 1);
	CU_ASSERT_EQUAL_FATAL(st(1).role, RAFT_LEADER);
	CU_ASSERT_EQUAL(st(1).last_index, 3);
	CU_ASSERT_EQUAL(raft_term_at(N(1)->r, 3), 4);
}

static void test_5_4_2_entry_of_earlier_term_is_not_committed_by_counting_replicas(void)
{
	int k;

	fig8_elect_s1();
	/* S2 and S3 receive the leader's probe without its term-4 entry (as if it carried entry
	 * 2 alone): they acknowledge index 2 and no more */
	for (uint32_t to = 2; to <= 3; to++) {
		struct fx_mail box;
		k = fx_find(RAFT_MSG_APPEND, 1, to);
		CU_ASSERT_FATAL(k >= 0);
		box = mail_take((size_t)k);
		CU_ASSERT_EQUAL(box.m.u.append.prev_index, 2);
		entry_release(box.m.u.append.entries, box.m.u.append.n_entries);
		free(box.m.u.append.entries);
		box.m.u.append.entries = NULL;
		box.m.u.append.n_entries = 0;
		fx_step(&box.m);
		mail_release(&box);
		k = fx_find(RAFT_MSG_APPEND_RESP, to, 1);
		CU_ASSERT_TRUE(mail_at(k)->u.append_resp.success);
		CU_ASSERT_EQUAL(mail_at(k)->u.append_resp.index, 2);
		fx_deliver((size_t)k);
	}
	/* index 2 is on S1, S2, S3: a majority of five, but of term 2 < 4 */
	CU_ASSERT_EQUAL(st(1).commit, 0);
	CU_ASSERT_EQUAL(N(1)->n_applied, 0);
	for (size_t i = 0; i < F.n_mail; i++)
		if (F.mail[i].m.type == RAFT_MSG_APPEND || F.mail[i].m.type == RAFT_MSG_HEARTBEAT)
			CU_ASSERT_EQUAL(F.mail[i].m.u.append.commit, 0);
	fx_free();
}

static void test_5_4_2_noop_of_new_term_commits_earlier_entries(void)
{
	fig8_elect_s1();
	CU_ASSERT_EQUAL(st(1).commit, 0);
	fx_deliver_all();
	fx_heartbeat(1);
	/* the term-4 no-op reached a majority: it commits, and index 2 with it */
	CU_ASSERT_EQUAL(st(1).commit, 3);
	CU_ASSERT_EQUAL_FATAL(N(1)->n_applied, 3);
	CU_ASSERT_EQUAL(N(1)->applied[0].term, 1);
	CU_ASSERT_EQUAL(N(1)->applied[1].term, 2);
	CU_ASSERT_EQUAL(N(1)->applied[1].tag, 2);
	CU_ASSERT_EQUAL(N(1)->applied[2].term, 4);
	CU_ASSERT_EQUAL(N(1)->applied[2].type, RAFT_ENTRY_NOOP);
	for (uint32_t id = 2; id <= 5; id++) {
		CU_ASSERT_EQUAL(st(id).commit, 3);
		CU_ASSERT_EQUAL(raft_term_at(N(id)->r, 2), 2);
	}
	/* S5's term-3 entry was overwritten, on disk too */
	CU_ASSERT_EQUAL_FATAL(N(5)->n_log, 3);
	CU_ASSERT_EQUAL(N(5)->log[1].term, 2);
	fx_free();
}

/* --- 7 log compaction ---------------------------------------------------------------------------- */

/* Node 1 leads; node 3 misses entries 2..6, which node 1 then compacts into a 250-byte snapshot
 * sent in 100-byte chunks. Returns with node 3 reconnected and the leader's heartbeat out. */
static void snapshot_setup(void)
{
	fx_init(3);
	F.cfg.snapshot_chunk_bytes = 100;
	F.cfg.snapshot_trailing = 0;
	fx_start_all();
	fx_elect(1);
	fx_isolate(3, true);
	for (uint64_t t = 1; t <= 5; t++)
		CU_ASSERT_EQUAL(fx_propose(1, t, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	CU_ASSERT_EQUAL_FATAL(st(1).commit, 6);
	CU_ASSERT_EQUAL_FATAL(st(1).applied, 6);
	CU_ASSERT_EQUAL_FATAL(st(3).last_index, 1);
	CU_ASSERT_EQUAL_FATAL(raft_snapshot_taken(N(1)->r, 6, 250, 0x1234abcdu), RAFT_OK);
	CU_ASSERT_EQUAL(st(1).first_index, 7);
	CU_ASSERT_EQUAL(st(1).snapshot_index, 6);
	fx_isolate(3, false);
	fx_tick(1, 1);
}

static void test_7_lagging_follower_receives_snapshot_in_chunks(void)
{
	unsigned chunks_sent = 0;
	int steps = 0;

	snapshot_setup();
	while (F.n_mail > 0) {
		const struct raft_msg *m = &F.mail[0].m;
		CU_ASSERT_FATAL(++steps < 1000);
		if (m->type == RAFT_MSG_SNAPSHOT) {
			CU_ASSERT_EQUAL(m->to, 3);
			CU_ASSERT_EQUAL(m->u.snapshot.meta.index, 6);
			CU_ASSERT_EQUAL(m->u.snapshot.meta.term, 1);
			CU_ASSERT_EQUAL(m->u.snapshot.meta.size, 250);
			CU_ASSERT_EQUAL(m->u.snapshot.offset, 100 * chunks_sent);
			CU_ASSERT_EQUAL(m->u.snapshot.len, chunks_sent < 2 ? 100 : 50);
			CU_ASSERT_EQUAL(m->u.snapshot.last, chunks_sent == 2);
			chunks_sent++;
		}
		fx_deliver(0);
	}
	CU_ASSERT_EQUAL(chunks_sent, 3);
	CU_ASSERT_EQUAL_FATAL(N(3)->n_chunks, 3);
	CU_ASSERT_EQUAL(N(3)->chunk_offset[0], 0);
	CU_ASSERT_EQUAL(N(3)->chunk_offset[1], 100);
	CU_ASSERT_EQUAL(N(3)->chunk_offset[2], 200);
	CU_ASSERT_EQUAL(N(3)->chunk_len[2], 50);
	CU_ASSERT_EQUAL(N(3)->bad_chunks, 0);
	CU_ASSERT_EQUAL(N(3)->snap.index, 6);
	CU_ASSERT_EQUAL(st(3).snapshot_index, 6);
	CU_ASSERT_EQUAL(st(3).commit, 6);
	CU_ASSERT_EQUAL(st(3).applied, 6);
	CU_ASSERT_EQUAL(st(3).last_index, 6);

	/* replication resumes after the snapshot (the heartbeat carries the commit: see
	 * test_5_3_commit_index_travels_with_the_next_append_or_heartbeat) */
	CU_ASSERT_EQUAL(fx_propose(1, 7, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	fx_tick(1, 1);
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(3).last_index, 7);
	CU_ASSERT_EQUAL(st(3).commit, 7);
	CU_ASSERT_EQUAL_FATAL(N(3)->n_applied, 1);
	CU_ASSERT_EQUAL(N(3)->applied[0].index, 7);
	CU_ASSERT_EQUAL(N(3)->applied[0].tag, 7);
	fx_free();
}

static void test_7_snapshot_transfer_resumes_from_follower_offset(void)
{
	const struct raft_msg *m;
	int k, steps = 0;

	snapshot_setup();
	/* deliver until the first chunk is out */
	while ((k = fx_find(RAFT_MSG_SNAPSHOT, 1, 3)) < 0) {
		CU_ASSERT_FATAL(F.n_mail > 0 && ++steps < 1000);
		fx_deliver(0);
	}
	CU_ASSERT_EQUAL(mail_at(k)->u.snapshot.offset, 0);
	fx_deliver((size_t)k);
	/* node 3 holds 100 bytes; its answer is lost */
	k = fx_find(RAFT_MSG_SNAPSHOT_RESP, 3, 1);
	CU_ASSERT_EQUAL(mail_at(k)->u.snapshot_resp.next_offset, 100);
	fx_drop((size_t)k);
	CU_ASSERT_EQUAL(N(3)->n_chunks, 1);

	/* the leader resends the unanswered chunk after a timeout */
	for (int t = 0; t < 2 * FX_ELECTION_TICKS && fx_find(RAFT_MSG_SNAPSHOT, 1, 3) < 0; t++) {
		fx_tick(1, 1);
		fx_deliver_matching(RAFT_MSG_HEARTBEAT, 0, 0);
		fx_deliver_matching(RAFT_MSG_HEARTBEAT_RESP, 0, 0);
	}
	k = fx_find(RAFT_MSG_SNAPSHOT, 1, 3);
	CU_ASSERT_FATAL(k >= 0);
	CU_ASSERT_EQUAL(mail_at(k)->u.snapshot.offset, 0);
	fx_deliver((size_t)k);
	/* the follower does not store it again: it says where it is */
	m = mail_at(fx_find(RAFT_MSG_SNAPSHOT_RESP, 3, 1));
	CU_ASSERT_EQUAL(m->u.snapshot_resp.next_offset, 100);
	CU_ASSERT_FALSE(m->u.snapshot_resp.done);
	CU_ASSERT_FALSE(m->u.snapshot_resp.reject);
	CU_ASSERT_EQUAL(N(3)->n_chunks, 1);
	fx_deliver((size_t)fx_find(RAFT_MSG_SNAPSHOT_RESP, 3, 1));
	m = mail_at(fx_find(RAFT_MSG_SNAPSHOT, 1, 3));
	CU_ASSERT_EQUAL(m->u.snapshot.offset, 100);
	fx_deliver_all();

	CU_ASSERT_EQUAL_FATAL(N(3)->n_chunks, 3);
	CU_ASSERT_EQUAL(N(3)->chunk_offset[1], 100);
	CU_ASSERT_EQUAL(N(3)->chunk_offset[2], 200);
	CU_ASSERT_EQUAL(N(3)->bad_chunks, 0);
	CU_ASSERT_EQUAL(st(3).snapshot_index, 6);
	CU_ASSERT_EQUAL(st(3).commit, 6);
	fx_free();
}

/* A chunk that says it is the last but ends before the snapshot's size could never be installed
 * (storage refuses it, and that refusal would stop the node): the follower rejects it from
 * whoever sent it, hands nothing to persist, and takes the real chunks afterwards. */
static void test_7_a_chunk_marked_last_that_ends_before_the_size_is_rejected(void)
{
	struct raft_msg m = mk(RAFT_MSG_SNAPSHOT, 1, 3, 1);
	unsigned persists;
	int k;

	snapshot_setup();
	/* let the leader's first real chunk wait while a bad one arrives */
	while ((k = fx_find(RAFT_MSG_SNAPSHOT, 1, 3)) < 0)
		fx_deliver(0);
	m.u.snapshot.meta = mail_at(k)->u.snapshot.meta;
	m.u.snapshot.offset = 0;
	m.u.snapshot.len = 100;
	m.u.snapshot.last = true;
	m.u.snapshot.data = payload(0, 100);
	persists = N(3)->n_persists;
	fx_step(&m);
	raft_buf_unref(m.u.snapshot.data);
	CU_ASSERT_EQUAL(N(3)->n_chunks, 0);
	CU_ASSERT_EQUAL(N(3)->n_persists, persists);
	CU_ASSERT_EQUAL(st(3).snapshot_index, 0);
	k = fx_find(RAFT_MSG_SNAPSHOT_RESP, 3, 1);
	CU_ASSERT_FATAL(k >= 0);
	CU_ASSERT_TRUE(mail_at(k)->u.snapshot_resp.reject);
	CU_ASSERT_FALSE(mail_at(k)->u.snapshot_resp.done);
	fx_drop((size_t)k);
	fx_deliver_all();
	CU_ASSERT_EQUAL(N(3)->n_chunks, 3);
	CU_ASSERT_EQUAL(N(3)->bad_chunks, 0);
	CU_ASSERT_EQUAL(st(3).snapshot_index, 6);
	fx_free();
}

static void test_7_follower_keeps_log_after_snapshot_it_already_has(void)
{
	static const uint64_t terms[] = {1, 1, 1, 1, 1, 1, 1, 1};
	unsigned char data[100];
	struct raft_msg s;
	const struct raft_msg *r;

	fx_init(3);
	fx_disk(2, 1, 1, terms, 8);
	fx_start_all();
	for (unsigned k = 0; k < sizeof(data); k++)
		data[k] = snap_byte(5, k);
	s = mk(RAFT_MSG_SNAPSHOT, 1, 2, 1);
	s.u.snapshot.meta.index = 5;
	s.u.snapshot.meta.term = 1;
	s.u.snapshot.meta.conf = F.conf;
	s.u.snapshot.meta.size = sizeof(data);
	s.u.snapshot.len = sizeof(data);
	s.u.snapshot.last = true;
	s.u.snapshot.data = data;
	fx_step(&s);

	/* paper 7: "If existing log entry has same index and term as snapshot's last included
	 * entry, retain log entries following it and reply" */
	r = mail_at(fx_find(RAFT_MSG_SNAPSHOT_RESP, 2, 1));
	CU_ASSERT_TRUE(r->u.snapshot_resp.done);
	CU_ASSERT_EQUAL(r->u.snapshot_resp.index, 5);
	CU_ASSERT_EQUAL(N(2)->n_chunks, 0);
	CU_ASSERT_EQUAL(N(2)->n_log, 8);
	CU_ASSERT_EQUAL(st(2).last_index, 8);
	CU_ASSERT_EQUAL(st(2).snapshot_index, 0);
	CU_ASSERT_EQUAL(st(2).commit, 5);
	CU_ASSERT_EQUAL(N(2)->n_applied, 5);
	CU_ASSERT_EQUAL(raft_term_at(N(2)->r, 8), 1);
	fx_free();
}

/* --- pre-vote and check-quorum (thesis 9.6) ------------------------------------------------------ */

static void test_prevote_does_not_raise_term_when_election_would_fail(void)
{
	static const uint64_t behind[] = {1}, ahead[] = {1, 2};
	const struct raft_msg *m;

	fx_init(3);
	F.cfg.pre_vote = true;
	fx_disk(1, 2, 0, behind, 1);
	fx_disk(2, 2, 0, ahead, 2);
	fx_disk(3, 2, 0, ahead, 2);
	fx_start_all();

	/* isolated, node 1 times out again and again without raising its term */
	fx_tick(1, 3 * FX_ELECTION_TICKS);
	CU_ASSERT_EQUAL(st(1).term, 2);
	CU_ASSERT_EQUAL(N(1)->hs.term, 2);
	CU_ASSERT_EQUAL(st(1).role, RAFT_PRE_CANDIDATE);
	m = mail_at(fx_find(RAFT_MSG_VOTE, 1, 2));
	CU_ASSERT_TRUE(m->u.vote.pre_vote);
	CU_ASSERT_EQUAL(m->term, 3);
	fx_drop_matching(0, 0, 0);

	/* connected, its log is behind: the pre-vote fails and nobody's term moves */
	fx_tick(1, 2 * FX_ELECTION_TICKS);
	CU_ASSERT_FATAL(fx_find(RAFT_MSG_VOTE, 1, 0) >= 0);
	fx_deliver_all();
	for (uint32_t id = 1; id <= 3; id++) {
		CU_ASSERT_EQUAL(st(id).term, 2);
		CU_ASSERT_EQUAL(st(id).vote, 0);
		CU_ASSERT_NOT_EQUAL(st(id).role, RAFT_LEADER);
		CU_ASSERT_NOT_EQUAL(st(id).role, RAFT_CANDIDATE);
	}
	CU_ASSERT_EQUAL(st(1).role, RAFT_FOLLOWER);
	fx_free();
}

static void test_prevote_partitioned_node_rejoins_without_disrupting_leader(void)
{
	fx_init(3);
	F.cfg.pre_vote = true;
	F.cfg.check_quorum = true;
	fx_start_all();
	fx_elect(1);
	CU_ASSERT_EQUAL(st(1).term, 1);
	CU_ASSERT_EQUAL(fx_propose(1, 42, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	fx_tick(1, 1);
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(3).commit, 2); /* node 3's log is as up to date as any */

	fx_isolate(3, true);
	for (int t = 0; t < 5 * FX_ELECTION_TICKS; t++) {
		fx_tick(1, 1);
		fx_tick(2, 1);
		fx_tick(3, 1);
		fx_deliver_all();
	}
	CU_ASSERT_EQUAL(st(1).role, RAFT_LEADER);
	CU_ASSERT_EQUAL(st(3).term, 1); /* pre-votes only */
	CU_ASSERT_EQUAL(st(3).role, RAFT_PRE_CANDIDATE);

	/* rejoin with a pre-vote in flight: the others are in the leader's lease and ignore it */
	fx_isolate(3, false);
	for (int t = 0; t < 3 * FX_ELECTION_TICKS && fx_find(RAFT_MSG_VOTE, 3, 0) < 0; t++)
		fx_tick(3, 1);
	CU_ASSERT_FATAL(fx_find(RAFT_MSG_VOTE, 3, 0) >= 0);
	CU_ASSERT_TRUE(mail_at(fx_find(RAFT_MSG_VOTE, 3, 0))->u.vote.pre_vote);
	fx_deliver_all();
	fx_tick(1, 1);
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(1).role, RAFT_LEADER);
	CU_ASSERT_EQUAL(st(1).term, 1);
	CU_ASSERT_EQUAL(st(2).term, 1);
	CU_ASSERT_EQUAL(st(2).leader, 1);
	CU_ASSERT_EQUAL(st(3).term, 1);
	CU_ASSERT_EQUAL(st(3).role, RAFT_FOLLOWER);
	CU_ASSERT_EQUAL(st(3).leader, 1);
	CU_ASSERT_EQUAL(st(3).commit, 2);
	fx_free();
}

static void test_check_quorum_leader_steps_down_without_majority(void)
{
	fx_init(3);
	F.cfg.check_quorum = true;
	fx_start_all();
	fx_elect(1);
	fx_isolate(1, true);
	/* the followers answered during this election timeout: still leader after it */
	for (int t = 0; t < FX_ELECTION_TICKS; t++) {
		fx_tick(1, 1);
		fx_deliver_all();
	}
	CU_ASSERT_EQUAL(st(1).role, RAFT_LEADER);
	/* a whole election timeout without hearing from a majority: step down */
	for (int t = 0; t < FX_ELECTION_TICKS; t++) {
		fx_tick(1, 1);
		fx_deliver_all();
	}
	CU_ASSERT_EQUAL(st(1).role, RAFT_FOLLOWER);
	CU_ASSERT_EQUAL(st(1).leader, 0);
	CU_ASSERT_EQUAL(st(1).term, 1);
	CU_ASSERT_EQUAL(fx_propose(1, 1, FX_ENTRY_BYTES, NULL), RAFT_ENOTLEADER);
	fx_free();
}

/* --- linearizable reads (thesis 6.4) -------------------------------------------------------------- */

static void test_read_index_waits_for_heartbeat_round(void)
{
	const struct raft_msg *m;

	fx_cluster3_with_leader();
	CU_ASSERT_EQUAL(raft_read_index(N(1)->r, 42), RAFT_OK);
	fx_process(1);
	CU_ASSERT_EQUAL(N(1)->n_reads, 0);
	m = mail_at(fx_find(RAFT_MSG_HEARTBEAT, 1, 2));
	CU_ASSERT_EQUAL(m->u.heartbeat.read_seq, 1);
	fx_deliver((size_t)fx_find(RAFT_MSG_HEARTBEAT, 1, 2));
	CU_ASSERT_EQUAL(N(1)->n_reads, 0); /* the follower answered, the leader has not heard */
	fx_deliver((size_t)fx_find(RAFT_MSG_HEARTBEAT_RESP, 2, 1));
	CU_ASSERT_EQUAL_FATAL(N(1)->n_reads, 1);
	CU_ASSERT_EQUAL(N(1)->reads[0].ctx, 42);
	CU_ASSERT_EQUAL(N(1)->reads[0].index, 1);
	CU_ASSERT_EQUAL(N(1)->reads[0].status, RAFT_OK);
	/* the late third answer does not answer it twice */
	fx_deliver_all();
	CU_ASSERT_EQUAL(N(1)->n_reads, 1);
	fx_free();
}

static void test_read_index_batches_reads_in_one_round(void)
{
	uint64_t seq;

	fx_cluster3_with_leader();
	for (uint64_t ctx = 1; ctx <= 3; ctx++)
		CU_ASSERT_EQUAL(raft_read_index(N(1)->r, ctx), RAFT_OK);
	fx_process(1);
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_HEARTBEAT, 1, 0), 2);
	CU_ASSERT_EQUAL(F.n_mail, 2);
	seq = mail_at(0)->u.heartbeat.read_seq;
	CU_ASSERT_NOT_EQUAL(seq, 0);
	CU_ASSERT_EQUAL(mail_at(1)->u.heartbeat.read_seq, seq);
	fx_deliver_all();
	CU_ASSERT_EQUAL_FATAL(N(1)->n_reads, 3);
	for (size_t i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(N(1)->reads[i].ctx, i + 1);
		CU_ASSERT_EQUAL(N(1)->reads[i].index, 1);
		CU_ASSERT_EQUAL(N(1)->reads[i].status, RAFT_OK);
	}
	fx_free();
}

/*
 * A follower's read goes to the leader. Its request left after the read began, in the leader's
 * term, so it shows the requester was still in that term then: with the leader that makes a
 * majority of three, and the leader answers at once, without a heartbeat round
 * (ids_confirm_read in raft.c has the argument).
 */
static void test_read_index_forwarded_from_follower(void)
{
	const struct raft_msg *m;

	fx_init(3);
	fx_start_all();
	CU_ASSERT_EQUAL(raft_read_index(N(2)->r, 7), RAFT_ENOTLEADER); /* no leader known */
	fx_elect(1);
	CU_ASSERT_EQUAL(fx_propose(1, 5, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	CU_ASSERT_EQUAL(raft_read_index(N(2)->r, 7), RAFT_OK);
	fx_process(2);
	m = mail_at(fx_find(RAFT_MSG_READ_INDEX, 2, 1));
	CU_ASSERT_EQUAL(m->u.read_index.ctx, 7);
	fx_deliver((size_t)fx_find(RAFT_MSG_READ_INDEX, 2, 1));
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_READ_INDEX_RESP, 1, 2), 1);
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_HEARTBEAT, 1, 0), 0);
	CU_ASSERT_EQUAL(F.n_mail, 1);
	fx_deliver_all();
	CU_ASSERT_EQUAL_FATAL(N(2)->n_reads, 1);
	CU_ASSERT_EQUAL(N(2)->reads[0].ctx, 7);
	CU_ASSERT_EQUAL(N(2)->reads[0].index, 2);
	CU_ASSERT_EQUAL(N(2)->reads[0].status, RAFT_OK);
	CU_ASSERT_EQUAL(N(1)->n_reads, 0);
	fx_free();
}

/*
 * With five nodes the leader and the requester are two: one more node must answer a heartbeat
 * round started after the read arrived. An answer to an older round does not count, and the
 * leader's own read in the same round waits for two answers.
 */
static void test_6_4_follower_read_in_five_nodes_waits_for_one_more_answer(void)
{
	const struct raft_msg *m;

	fx_init(5);
	fx_start_all();
	fx_elect(1);
	CU_ASSERT_EQUAL_FATAL(st(1).commit, 1);
	/* an older round's answers, still on their way, say nothing of reads after it */
	CU_ASSERT_EQUAL(raft_read_index(N(1)->r, 1), RAFT_OK);
	fx_process(1);
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_HEARTBEAT, 1, 0), 4);
	fx_deliver((size_t)fx_find(RAFT_MSG_HEARTBEAT, 1, 3));
	CU_ASSERT_EQUAL(raft_read_index(N(2)->r, 2), RAFT_OK);
	CU_ASSERT_EQUAL(raft_read_index(N(1)->r, 3), RAFT_OK);
	fx_process(2);
	fx_deliver((size_t)fx_find(RAFT_MSG_READ_INDEX, 2, 1));
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_READ_INDEX_RESP, 1, 2), 0);
	fx_deliver((size_t)fx_find(RAFT_MSG_HEARTBEAT_RESP, 3, 1)); /* round 1's answer */
	CU_ASSERT_EQUAL_FATAL(N(1)->n_reads, 0);
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_READ_INDEX_RESP, 1, 2), 0);
	/* round 2's heartbeat to node 4 and its answer: enough for node 2's read only */
	m = mail_at(fx_find(RAFT_MSG_HEARTBEAT, 1, 4));
	CU_ASSERT_EQUAL(m->u.heartbeat.read_seq, 1);
	fx_drop((size_t)fx_find(RAFT_MSG_HEARTBEAT, 1, 4));
	m = mail_at(fx_find(RAFT_MSG_HEARTBEAT, 1, 4));
	CU_ASSERT_EQUAL(m->u.heartbeat.read_seq, 2);
	fx_deliver((size_t)fx_find(RAFT_MSG_HEARTBEAT, 1, 4));
	fx_deliver((size_t)fx_find(RAFT_MSG_HEARTBEAT_RESP, 4, 1));
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_READ_INDEX_RESP, 1, 2), 1);
	/* the leader's reads: round 1 has nodes 3 and 4 now, round 2 only node 4 */
	CU_ASSERT_EQUAL_FATAL(N(1)->n_reads, 1);
	CU_ASSERT_EQUAL(N(1)->reads[0].ctx, 1);
	fx_drop_matching(RAFT_MSG_HEARTBEAT, 1, 3);
	fx_deliver_matching(RAFT_MSG_HEARTBEAT, 1, 5);
	fx_deliver_matching(RAFT_MSG_HEARTBEAT_RESP, 5, 1);
	CU_ASSERT_EQUAL_FATAL(N(1)->n_reads, 2);
	CU_ASSERT_EQUAL(N(1)->reads[1].ctx, 3);
	fx_deliver_all();
	CU_ASSERT_EQUAL_FATAL(N(2)->n_reads, 1);
	CU_ASSERT_EQUAL(N(2)->reads[0].ctx, 2);
	CU_ASSERT_EQUAL(N(2)->reads[0].status, RAFT_OK);
	fx_free();
}

/*
 * Thesis 6.4, a read on a follower: the leader's answer is its commit index, so the entries the
 * follower holds in common with the leader up to it are committed: the follower commits them at
 * once instead of waiting for the next heartbeat (test_5_3_commit_index_travels_with_the_next_
 * append_or_heartbeat) before it can serve the read.
 */
static void test_6_4_follower_read_learns_commit_from_the_read_index(void)
{
	const struct raft_msg *m;

	fx_cluster3_with_leader();
	CU_ASSERT_EQUAL(fx_propose(1, 2, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(1).commit, 2);
	CU_ASSERT_EQUAL(st(2).commit, 1);
	CU_ASSERT_EQUAL(raft_read_index(N(2)->r, 7), RAFT_OK);
	fx_process(2);
	fx_deliver((size_t)fx_find(RAFT_MSG_READ_INDEX, 2, 1));
	/* answered at once: no heartbeat goes out that could carry the commit index */
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_HEARTBEAT, 1, 0), 0);
	m = mail_at(fx_find(RAFT_MSG_READ_INDEX_RESP, 1, 2));
	CU_ASSERT_EQUAL(m->u.read_index_resp.index, 2);
	fx_deliver((size_t)fx_find(RAFT_MSG_READ_INDEX_RESP, 1, 2));
	CU_ASSERT_EQUAL_FATAL(N(2)->n_reads, 1);
	CU_ASSERT_EQUAL(N(2)->reads[0].index, 2);
	CU_ASSERT_EQUAL(N(2)->reads[0].status, RAFT_OK);
	CU_ASSERT_EQUAL(st(2).commit, 2);
	CU_ASSERT_EQUAL(st(2).applied, 2);
	fx_free();
}

/*
 * The same answer must not commit what the follower holds but the leader does not: node 3 keeps
 * index 2 of term 2 (from a leader that failed), node 1 wins term 3 without it and puts its
 * no-op at index 2. Node 3, which knows the leader but has received none of its entries, reads:
 * the answer (index 2) commits nothing on it, else it would apply the term-2 entry.
 */
static void test_6_4_read_index_answer_commits_only_what_matches_the_leader(void)
{
	static const uint64_t s12[] = {1}, s3[] = {1, 2};

	fx_init(3);
	fx_disk(1, 2, 0, s12, 1);
	fx_disk(2, 2, 0, s12, 1);
	fx_disk(3, 2, 0, s3, 2);
	fx_start_all();
	for (int t = 0; t < 3 * FX_ELECTION_TICKS && st(1).role == RAFT_FOLLOWER; t++)
		fx_tick(1, 1);
	CU_ASSERT_EQUAL_FATAL(st(1).role, RAFT_CANDIDATE);
	fx_deliver_matching(RAFT_MSG_VOTE, 1, 0);
	fx_deliver_matching(RAFT_MSG_VOTE_RESP, 0, 1); /* node 3 refuses: its log is newer */
	CU_ASSERT_EQUAL_FATAL(st(1).role, RAFT_LEADER);
	CU_ASSERT_EQUAL(st(1).term, 3);
	CU_ASSERT_EQUAL(raft_term_at(N(1)->r, 2), 3); /* the no-op */
	/* node 2 takes the no-op and it commits; node 3 receives nothing of it */
	fx_deliver_matching(RAFT_MSG_APPEND, 1, 2);
	fx_deliver_matching(RAFT_MSG_APPEND_RESP, 2, 1);
	CU_ASSERT_EQUAL(st(1).commit, 2);
	fx_drop_matching(RAFT_MSG_APPEND, 1, 3);
	/* a heartbeat tells node 3 who leads (and commit 0: the leader knows no match of it) */
	fx_tick(1, F.cfg.heartbeat_ticks);
	fx_deliver((size_t)fx_find(RAFT_MSG_HEARTBEAT, 1, 3));
	CU_ASSERT_EQUAL(st(3).leader, 1);
	fx_drop_matching(0, 0, 0);
	CU_ASSERT_EQUAL(raft_read_index(N(3)->r, 5), RAFT_OK);
	fx_process(3);
	fx_deliver((size_t)fx_find(RAFT_MSG_READ_INDEX, 3, 1));
	fx_deliver((size_t)fx_find(RAFT_MSG_READ_INDEX_RESP, 1, 3));
	CU_ASSERT_EQUAL_FATAL(N(3)->n_reads, 1);
	CU_ASSERT_EQUAL(N(3)->reads[0].index, 2);
	CU_ASSERT_EQUAL(N(3)->reads[0].status, RAFT_OK);
	CU_ASSERT_EQUAL(st(3).commit, 0);
	CU_ASSERT_EQUAL(N(3)->n_applied, 0);
	/* once the leader's entries arrive, the read can be served, from the leader's log */
	fx_deliver_all();
	fx_heartbeat(1);
	CU_ASSERT_EQUAL(st(3).commit, 2);
	CU_ASSERT_EQUAL_FATAL(N(3)->n_applied, 2);
	CU_ASSERT_EQUAL(N(3)->applied[1].term, 3);
	fx_free();
}

/* Five nodes, so that a follower's read also waits for the round (with three it would not). */
static void test_read_index_fails_when_leader_steps_down(void)
{
	const struct raft_msg *m;

	fx_init(5);
	fx_start_all();
	fx_elect(1);
	CU_ASSERT_EQUAL(raft_read_index(N(1)->r, 9), RAFT_OK);
	CU_ASSERT_EQUAL(raft_read_index(N(3)->r, 10), RAFT_OK);
	fx_process(3);
	fx_deliver((size_t)fx_find(RAFT_MSG_READ_INDEX, 3, 1));
	fx_process(1);
	CU_ASSERT_EQUAL(fx_drop_matching(RAFT_MSG_HEARTBEAT, 1, 0), 4); /* the round is lost */
	CU_ASSERT_EQUAL(F.n_mail, 0);

	/* node 2 campaigns in term 2: the leader steps down, and its pending reads fail */
	for (int t = 0; t < 3 * FX_ELECTION_TICKS && st(2).role == RAFT_FOLLOWER; t++)
		fx_tick(2, 1);
	CU_ASSERT_EQUAL_FATAL(st(2).role, RAFT_CANDIDATE);
	fx_deliver((size_t)fx_find(RAFT_MSG_VOTE, 2, 1));
	CU_ASSERT_EQUAL(st(1).role, RAFT_FOLLOWER);
	CU_ASSERT_EQUAL_FATAL(N(1)->n_reads, 1);
	CU_ASSERT_EQUAL(N(1)->reads[0].ctx, 9);
	CU_ASSERT_EQUAL(N(1)->reads[0].status, RAFT_ENOTLEADER);
	m = mail_at(fx_find(RAFT_MSG_READ_INDEX_RESP, 1, 3));
	CU_ASSERT_FALSE(m->u.read_index_resp.ok);
	CU_ASSERT_EQUAL(m->u.read_index_resp.ctx, 10);
	fx_deliver((size_t)fx_find(RAFT_MSG_READ_INDEX_RESP, 1, 3));
	CU_ASSERT_EQUAL_FATAL(N(3)->n_reads, 1);
	CU_ASSERT_EQUAL(N(3)->reads[0].ctx, 10);
	CU_ASSERT_EQUAL(N(3)->reads[0].status, RAFT_ENOTLEADER);
	fx_free();
}

/* --- leadership transfer (thesis 3.10) ------------------------------------------------------------ */

static void test_transfer_brings_target_up_to_date_then_times_out_now(void)
{
	bool saw_timeout_now = false, saw_transfer_vote = false;
	int steps = 0;

	fx_cluster3_with_leader();
	fx_isolate(3, true);
	CU_ASSERT_EQUAL(fx_propose(1, 1, FX_ENTRY_BYTES, NULL), RAFT_OK);
	CU_ASSERT_EQUAL(fx_propose(1, 2, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	CU_ASSERT_EQUAL_FATAL(st(1).commit, 3);
	CU_ASSERT_EQUAL_FATAL(st(3).last_index, 1);
	fx_isolate(3, false);

	CU_ASSERT_EQUAL(raft_transfer(N(1)->r, 3), RAFT_OK);
	CU_ASSERT_EQUAL(st(1).transfer_target, 3);
	fx_process(1);
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_TIMEOUT_NOW, 0, 0), 0);
	fx_tick(1, 1);
	while (F.n_mail > 0) {
		const struct raft_msg *m = &F.mail[0].m;
		CU_ASSERT_FATAL(++steps < 1000);
		if (m->type == RAFT_MSG_TIMEOUT_NOW) {
			/* only once the target holds the leader's whole log */
			CU_ASSERT_EQUAL(m->to, 3);
			CU_ASSERT_EQUAL(st(3).last_index, 3);
			CU_ASSERT_EQUAL(st(1).role, RAFT_LEADER);
			saw_timeout_now = true;
		}
		if (m->type == RAFT_MSG_VOTE && m->from == 3) {
			CU_ASSERT_TRUE(m->u.vote.transfer);
			CU_ASSERT_FALSE(m->u.vote.pre_vote);
			saw_transfer_vote = true;
		}
		fx_deliver(0);
	}
	CU_ASSERT_TRUE(saw_timeout_now);
	CU_ASSERT_TRUE(saw_transfer_vote);
	CU_ASSERT_EQUAL(st(3).role, RAFT_LEADER);
	CU_ASSERT_EQUAL(st(3).term, 2);
	CU_ASSERT_EQUAL(st(1).role, RAFT_FOLLOWER);
	CU_ASSERT_EQUAL(st(1).leader, 3);
	CU_ASSERT_EQUAL(st(3).commit, 4);
	fx_free();
}

static void test_transfer_refuses_proposals_while_running(void)
{
	fx_cluster3_with_leader();
	fx_isolate(3, true);
	CU_ASSERT_EQUAL(fx_propose(1, 1, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	CU_ASSERT_EQUAL(raft_transfer(N(1)->r, 3), RAFT_OK);
	CU_ASSERT_EQUAL(raft_transfer(N(1)->r, 2), RAFT_EBUSY);
	CU_ASSERT_EQUAL(fx_propose(1, 2, FX_ENTRY_BYTES, NULL), RAFT_EBUSY);
	CU_ASSERT_EQUAL(st(1).last_index, 2);
	/* the target never catches up: the transfer times out and proposals resume */
	for (int t = 0; t < FX_ELECTION_TICKS; t++) {
		fx_tick(1, 1);
		fx_deliver_all();
	}
	CU_ASSERT_EQUAL(st(1).transfer_target, 0);
	CU_ASSERT_EQUAL(st(1).role, RAFT_LEADER);
	CU_ASSERT_EQUAL(fx_propose(1, 3, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(1).commit, 3);
	fx_free();
}

/* --- persistence ----------------------------------------------------------------------------------- */

static void test_persistence_messages_held_until_persisted(void)
{
	struct raft_entry e = {1, 1, RAFT_ENTRY_NORMAL, FX_ENTRY_BYTES, NULL};
	struct raft_msg m;
	const struct raft_msg *r;

	fx_init(3);
	fx_start_all();
	N(2)->delay_persist = true;

	/* a vote grant waits for the vote to be durable */
	m = mk(RAFT_MSG_VOTE, 1, 2, 1);
	fx_step(&m);
	CU_ASSERT_TRUE(N(2)->pending.active);
	CU_ASSERT_TRUE(N(2)->pending.hs_changed);
	CU_ASSERT_EQUAL(N(2)->pending.hs.term, 1);
	CU_ASSERT_EQUAL(N(2)->pending.hs.vote, 1);
	CU_ASSERT_EQUAL(F.n_mail, 0);
	fx_persist(2);
	CU_ASSERT_EQUAL(N(2)->hs.vote, 1);
	r = mail_at(fx_find(RAFT_MSG_VOTE_RESP, 2, 1));
	CU_ASSERT_TRUE(r->u.vote_resp.granted);
	fx_drop_matching(0, 0, 0);

	/* an append acknowledgement waits for the entries to be durable */
	e.data = payload(77, FX_ENTRY_BYTES);
	m = mk(RAFT_MSG_APPEND, 1, 2, 1);
	m.u.append.n_entries = 1;
	m.u.append.entries = &e;
	fx_step(&m);
	raft_buf_unref(e.data);
	CU_ASSERT_TRUE(N(2)->pending.active);
	CU_ASSERT_EQUAL(N(2)->pending.n_entries, 1);
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_APPEND_RESP, 2, 1), 0);
	CU_ASSERT_EQUAL(N(2)->n_log, 0);
	fx_persist(2);
	CU_ASSERT_EQUAL(N(2)->n_log, 1);
	r = mail_at(fx_find(RAFT_MSG_APPEND_RESP, 2, 1));
	CU_ASSERT_TRUE(r->u.append_resp.success);
	CU_ASSERT_EQUAL(r->u.append_resp.index, 1);
	fx_free();

	/* a leader's AppendEntries go out before its own write is durable (thesis 10.2.1) */
	fx_cluster3_with_leader();
	N(1)->delay_persist = true;
	CU_ASSERT_EQUAL(fx_propose(1, 9, FX_ENTRY_BYTES, NULL), RAFT_OK);
	CU_ASSERT_TRUE(N(1)->pending.active);
	CU_ASSERT_EQUAL(N(1)->pending.n_entries, 1);
	for (uint32_t to = 2; to <= 3; to++) {
		int k = fx_find(RAFT_MSG_APPEND, 1, to);
		CU_ASSERT_FATAL(k >= 0);
		CU_ASSERT_EQUAL_FATAL(mail_at(k)->u.append.n_entries, 1);
		CU_ASSERT_EQUAL(mail_at(k)->u.append.entries[0].index, 2);
	}
	fx_persist(1);
	fx_free();
}

static void test_leader_counts_itself_only_after_persisted(void)
{
	fx_cluster3_with_leader();
	N(1)->delay_persist = true;
	fx_isolate(3, true);
	CU_ASSERT_EQUAL(fx_propose(1, 1, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	/* node 2 has index 2 durable; the leader has not: one of three */
	CU_ASSERT_EQUAL(st(2).last_index, 2);
	CU_ASSERT_EQUAL(N(2)->n_log, 2);
	CU_ASSERT_EQUAL(st(1).stable, 1);
	CU_ASSERT_EQUAL(st(1).commit, 1);
	fx_persist(1);
	CU_ASSERT_EQUAL(st(1).stable, 2);
	CU_ASSERT_EQUAL(st(1).commit, 2);
	CU_ASSERT_EQUAL_FATAL(N(1)->n_applied, 2);
	CU_ASSERT_EQUAL(N(1)->applied[1].tag, 1);
	fx_free();
}

static void test_restart_from_persisted_state_continues(void)
{
	struct raft_msg v;

	fx_cluster3_with_leader();
	CU_ASSERT_EQUAL(fx_propose(1, 11, FX_ENTRY_BYTES, NULL), RAFT_OK);
	CU_ASSERT_EQUAL(fx_propose(1, 12, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	fx_heartbeat(1);
	CU_ASSERT_EQUAL_FATAL(st(2).commit, 3);

	fx_restart(2);
	CU_ASSERT_EQUAL(st(2).term, 1);
	CU_ASSERT_EQUAL(st(2).vote, 1);
	CU_ASSERT_EQUAL(st(2).role, RAFT_FOLLOWER);
	CU_ASSERT_EQUAL(st(2).last_index, 3);
	CU_ASSERT_EQUAL(st(2).stable, 3);
	CU_ASSERT_EQUAL(st(2).commit, 0); /* volatile: learnt again from the leader */
	for (uint64_t i = 1; i <= 3; i++)
		CU_ASSERT_EQUAL(raft_term_at(N(2)->r, i), 1);

	/* the vote of term 1 survived: another candidate of term 1 is refused */
	v = mk(RAFT_MSG_VOTE, 3, 2, 1);
	v.u.vote.last_log_index = 3;
	v.u.vote.last_log_term = 1;
	fx_step(&v);
	CU_ASSERT_FALSE(mail_at(fx_find(RAFT_MSG_VOTE_RESP, 2, 3))->u.vote_resp.granted);
	fx_drop_matching(0, 0, 0);

	fx_tick(1, 1);
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(2).commit, 3);
	CU_ASSERT_EQUAL_FATAL(N(2)->n_applied, 3);
	CU_ASSERT_EQUAL(N(2)->applied[1].tag, 11);
	CU_ASSERT_EQUAL(N(2)->applied[2].tag, 12);
	CU_ASSERT_EQUAL(fx_propose(1, 13, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	fx_heartbeat(1);
	CU_ASSERT_EQUAL(st(2).commit, 4);
	CU_ASSERT_EQUAL(N(2)->n_log, 4);
	fx_free();
}

/* --- a follower whose log lost acknowledged entries --------------------------------------------- */

/*
 * Node id's disk loses its log from index `from` on (a tail cut after a crash: the last record
 * of its last segment damaged after it was synced, which recovery cannot tell from a torn write),
 * and the node restarts from what is left. What it acknowledged before is gone.
 */
static void fx_lose_tail_and_restart(uint32_t id, uint64_t from)
{
	store_drop_from(N(id), from);
	fx_restart(id);
	CU_ASSERT_EQUAL(st(id).last_index, from - 1);
}

/*
 * The leader recorded match 4 for node 2, which then came back with its log ending at 2. On an
 * idle cluster nothing but heartbeats flows: the follower's answer says where its log ends, and
 * the leader sends the entries again at once (before: it kept match 4, sent only heartbeats, and
 * the follower sat at its old commit until the leader changed).
 */
static void test_leader_replicates_again_to_a_follower_that_lost_acknowledged_entries(void)
{
	uint64_t commit;

	fx_cluster3_with_leader();
	for (uint64_t tag = 11; tag <= 13; tag++)
		CU_ASSERT_EQUAL(fx_propose(1, tag, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	fx_heartbeat(1);
	CU_ASSERT_EQUAL_FATAL(st(2).commit, 4);
	commit = st(1).commit;

	fx_lose_tail_and_restart(2, 3);
	fx_heartbeat(1);
	fx_heartbeat(1);
	CU_ASSERT_EQUAL(st(1).role, RAFT_LEADER);
	CU_ASSERT_EQUAL(st(1).term, 1);
	CU_ASSERT(st(1).commit >= commit); /* a leader's commit index never goes down */
	CU_ASSERT_EQUAL(st(2).last_index, 4);
	CU_ASSERT_EQUAL(st(2).commit, 4);
	CU_ASSERT_EQUAL(N(2)->n_log, 4);
	CU_ASSERT_EQUAL_FATAL(N(2)->n_applied, 4);
	CU_ASSERT_EQUAL(N(2)->applied[3].tag, 13);

	/* and the writes that follow reach it as well */
	CU_ASSERT_EQUAL(fx_propose(1, 14, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	fx_heartbeat(1);
	CU_ASSERT_EQUAL(st(2).commit, 5);
	CU_ASSERT_EQUAL(st(2).last_index, 5);
	fx_free();
}

/* The same with writes going on: the follower's rejection of the next append says where its log
 * ends (before: the leader took it for a stale answer and probed at its old match forever). */
static void test_leader_backs_off_below_match_when_a_rejection_shows_a_shorter_log(void)
{
	const struct raft_msg *m;
	int k;

	fx_cluster3_with_leader();
	for (uint64_t tag = 11; tag <= 13; tag++)
		CU_ASSERT_EQUAL(fx_propose(1, tag, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_deliver_all();
	fx_heartbeat(1);
	fx_lose_tail_and_restart(2, 3);

	CU_ASSERT_EQUAL(fx_propose(1, 14, FX_ENTRY_BYTES, NULL), RAFT_OK);
	k = fx_find(RAFT_MSG_APPEND, 1, 2);
	CU_ASSERT_EQUAL(mail_at(k)->u.append.prev_index, 4);
	fx_deliver((size_t)k);
	m = mail_at(fx_find(RAFT_MSG_APPEND_RESP, 2, 1));
	CU_ASSERT_FALSE(m->u.append_resp.success);
	CU_ASSERT_EQUAL(m->u.append_resp.last_index, 2);
	fx_deliver((size_t)fx_find(RAFT_MSG_APPEND_RESP, 2, 1));
	/* the next try starts right after the follower's last entry */
	m = mail_at(fx_find(RAFT_MSG_APPEND, 1, 2));
	CU_ASSERT_EQUAL(m->u.append.prev_index, 2);
	CU_ASSERT_EQUAL(m->u.append.n_entries, 3);
	fx_deliver_all();
	fx_heartbeat(1);
	CU_ASSERT_EQUAL(st(2).last_index, 5);
	CU_ASSERT_EQUAL(st(2).commit, 5);
	CU_ASSERT_EQUAL(st(1).commit, 5);
	fx_free();
}

/*
 * Lowering the match must keep the lost entry out of the commit count. Five nodes, 4 and 5 cut
 * off; entry 2 reaches node 2 (acknowledged) but not node 3: not committed (2 of 5). Node 2 loses
 * it and restarts; its answer to a heartbeat says so. When node 3 then acknowledges entry 2 the
 * entry is on the leader and node 3 only: it must not commit on node 2's old acknowledgement
 * (before, it did: a commit held by 2 of 5 nodes, lost if those two failed). It commits once
 * node 2 holds it again.
 */
static void test_a_lost_acknowledgement_is_not_counted_for_commit(void)
{
	int k, steps = 0;

	fx_init(5);
	fx_start_all();
	fx_elect(1);
	CU_ASSERT_EQUAL_FATAL(st(1).commit, 1);
	fx_isolate(4, true);
	fx_isolate(5, true);
	CU_ASSERT_EQUAL(fx_propose(1, 11, FX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_drop_matching(RAFT_MSG_APPEND, 1, 3); /* node 3 does not get it (yet) */
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(2).last_index, 2);
	CU_ASSERT_EQUAL(st(1).commit, 1);

	fx_lose_tail_and_restart(2, 2);
	fx_tick(1, 1);
	fx_deliver_matching(RAFT_MSG_HEARTBEAT, 1, 2);
	k = fx_find(RAFT_MSG_HEARTBEAT_RESP, 2, 1);
	CU_ASSERT_EQUAL(mail_at(k)->u.heartbeat_resp.last_index, 1);
	fx_deliver((size_t)k);
	/* hold what the leader sends node 2 now; node 3 gets entry 2 and acknowledges it */
	fx_drop_matching(RAFT_MSG_APPEND, 1, 2);
	fx_drop_matching(RAFT_MSG_HEARTBEAT, 1, 2);
	while ((k = fx_find(0, 1, 3)) >= 0 || (k = fx_find(0, 3, 1)) >= 0) {
		CU_ASSERT_FATAL(++steps < FX_MAX_STEPS);
		fx_deliver((size_t)k);
	}
	CU_ASSERT_EQUAL(st(3).last_index, 2);
	CU_ASSERT_EQUAL(st(1).commit, 1);

	/* node 2 takes it again: now 3 of 5 hold it */
	fx_drop_matching(0, 1, 3);
	fx_heartbeat(1);
	CU_ASSERT_EQUAL(st(2).last_index, 2);
	CU_ASSERT_EQUAL(st(1).commit, 2);
	fx_free();
}

/* --- flow control ------------------------------------------------------------------------------ */

static void test_pipelined_appends_bounded_by_inflight_window(void)
{
	const struct raft_msg *m;
	int k;

	fx_init(3);
	F.cfg.max_inflight_msgs = 3;
	F.cfg.max_msg_bytes = FX_ENTRY_BYTES; /* one entry per message */
	fx_start_all();
	fx_elect(1);
	CU_ASSERT_EQUAL_FATAL(F.n_mail, 0);
	for (uint64_t t = 1; t <= 10; t++)
		CU_ASSERT_EQUAL(raft_propose(N(1)->r, payload(t, FX_ENTRY_BYTES), FX_ENTRY_BYTES,
		                             NULL, NULL),
		                RAFT_OK);
	fx_process(1);
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_APPEND, 1, 2), 3);
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_APPEND, 1, 3), 3);
	for (uint64_t prev = 1; prev <= 3; prev++) {
		bool found = false;
		for (size_t i = 0; i < F.n_mail; i++) {
			m = &F.mail[i].m;
			if (m->to == 2 && m->u.append.prev_index == prev) {
				CU_ASSERT_EQUAL(m->u.append.n_entries, 1);
				found = true;
			}
		}
		CU_ASSERT_TRUE(found);
	}
	/* one acknowledgement frees one slot: one more message */
	fx_deliver((size_t)fx_find(RAFT_MSG_APPEND, 1, 2));
	fx_deliver((size_t)fx_find(RAFT_MSG_APPEND_RESP, 2, 1));
	CU_ASSERT_EQUAL(fx_count(RAFT_MSG_APPEND, 1, 2), 3);
	k = -1;
	for (size_t i = 0; i < F.n_mail; i++)
		if (F.mail[i].m.type == RAFT_MSG_APPEND && F.mail[i].m.to == 2)
			k = (int)i;
	CU_ASSERT_EQUAL(mail_at(k)->u.append.prev_index, 4);
	fx_deliver_all();
	fx_heartbeat(1);
	CU_ASSERT_EQUAL(st(1).commit, 11);
	CU_ASSERT_EQUAL(st(2).commit, 11);
	CU_ASSERT_EQUAL(st(3).last_index, 11);
	fx_free();
}

static void test_proposals_batched_into_one_append(void)
{
	unsigned persists;
	const struct raft_msg *m;

	fx_cluster3_with_leader();
	persists = N(1)->n_persists;
	for (uint64_t t = 1; t <= 5; t++)
		CU_ASSERT_EQUAL(raft_propose(N(1)->r, payload(t, 16), 16, NULL, NULL), RAFT_OK);
	fx_process(1);
	CU_ASSERT_EQUAL(N(1)->n_persists, persists + 1);
	CU_ASSERT_EQUAL(N(1)->last_persist_entries, 5);
	CU_ASSERT_EQUAL(F.n_mail, 2);
	for (uint32_t to = 2; to <= 3; to++) {
		CU_ASSERT_EQUAL_FATAL(fx_count(RAFT_MSG_APPEND, 1, to), 1);
		m = mail_at(fx_find(RAFT_MSG_APPEND, 1, to));
		CU_ASSERT_EQUAL_FATAL(m->u.append.n_entries, 5);
		CU_ASSERT_EQUAL(m->u.append.prev_index, 1);
		for (uint32_t i = 0; i < 5; i++)
			CU_ASSERT_EQUAL(*(uint64_t *)m->u.append.entries[i].data, i + 1);
	}
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(1).commit, 6);
	fx_heartbeat(1);
	CU_ASSERT_EQUAL(N(2)->n_applied, 6);
	fx_free();
}

static void test_proposal_refused_over_uncommitted_byte_limit(void)
{
	fx_init(3);
	F.cfg.max_uncommitted_bytes = 100;
	F.cfg.max_entry_bytes = 200;
	fx_start_all();
	fx_elect(1);
	fx_isolate(1, true);
	CU_ASSERT_EQUAL(fx_propose(1, 1, 60, NULL), RAFT_OK);
	CU_ASSERT_EQUAL(fx_propose(1, 2, 60, NULL), RAFT_EBUSY);
	CU_ASSERT_EQUAL(fx_propose(1, 3, 40, NULL), RAFT_OK); /* exactly at the limit */
	CU_ASSERT_EQUAL(fx_propose(1, 4, 1, NULL), RAFT_EBUSY);
	CU_ASSERT_EQUAL(fx_propose(1, 5, 201, NULL), RAFT_ETOOBIG);
	CU_ASSERT_EQUAL(st(1).last_index, 3);
	fx_deliver_all();

	/* committing frees the budget */
	fx_isolate(1, false);
	fx_tick(1, 1);
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(1).commit, 3);
	CU_ASSERT_EQUAL(fx_propose(1, 6, 60, NULL), RAFT_OK);
	CU_ASSERT_EQUAL(fx_propose(1, 7, 40, NULL), RAFT_OK);
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(1).commit, 5);
	fx_free();
}

/* Storage refuses an entry over RAFT_MAX_ENTRY_BYTES and a refused append stops the node, so
 * the core must never take a proposal storage would refuse: a configuration that would let one
 * through is refused, and the largest entry storage takes is accepted. */
static void test_an_entry_limit_over_what_the_log_accepts_is_refused(void)
{
	struct raft_env env = {NULL, fx_random, NULL};
	struct raft_restore rs;
	struct raft *r = NULL;

	fx_init(1);
	memset(&rs, 0, sizeof(rs));
	env.ctx = N(1);
	F.cfg.max_entry_bytes = RAFT_MAX_ENTRY_BYTES + 1;
	CU_ASSERT_EQUAL(raft_new(&F.cfg, &env, &rs, &r), RAFT_EINVAL);
	CU_ASSERT_PTR_NULL(r);
	F.cfg.max_entry_bytes = RAFT_MAX_ENTRY_BYTES;
	F.cfg.max_uncommitted_bytes = 2ull * RAFT_MAX_ENTRY_BYTES;
	CU_ASSERT_EQUAL_FATAL(fx_start(1), RAFT_OK);
	fx_elect(1);
	CU_ASSERT_EQUAL(fx_propose(1, 1, RAFT_MAX_ENTRY_BYTES + 1, NULL), RAFT_ETOOBIG);
	CU_ASSERT_EQUAL(fx_propose(1, 2, RAFT_MAX_ENTRY_BYTES, NULL), RAFT_OK);
	fx_free();
}

/* Empty entries weigh nothing against max_msg_bytes, so only a count bounds a batch of them: a
 * follower far behind a run of them gets messages of at most RAFT_MAX_MSG_ENTRIES entries (the
 * codec refuses more, and a message that can never be encoded would leave it behind forever). */
static void test_append_batches_stop_at_the_entry_count_limit(void)
{
	const unsigned extra = 100;
	uint64_t want;

	fx_init(3);
	fx_start_all();
	fx_elect(1);
	fx_isolate(3, true);
	for (unsigned i = 0; i < RAFT_MAX_MSG_ENTRIES + extra; i++)
		CU_ASSERT_EQUAL_FATAL(raft_propose(N(1)->r, payload(0, 0), 0, NULL, NULL), RAFT_OK);
	fx_process(1);
	fx_deliver_all();
	want = st(1).last_index;
	CU_ASSERT_EQUAL_FATAL(st(2).last_index, want);
	fx_isolate(3, false);
	for (int t = 0; t < 3 * FX_ELECTION_TICKS && st(3).commit < want; t++) {
		fx_tick(1, 1);
		fx_deliver_all();
	}
	CU_ASSERT_EQUAL(st(3).commit, want);
	CU_ASSERT(F.most_append_entries <= RAFT_MAX_MSG_ENTRIES);
	fx_free();
}

/* --- robustness ------------------------------------------------------------------------------------ */

static void test_step_rejects_message_from_unknown_node(void)
{
	struct raft_msg m;

	fx_init(3);
	fx_start_all();
	m = mk(RAFT_MSG_VOTE, 7, 1, 5);
	CU_ASSERT_EQUAL(fx_step(&m), RAFT_EINVAL);
	m = mk(RAFT_MSG_APPEND, 7, 1, 5);
	CU_ASSERT_EQUAL(fx_step(&m), RAFT_EINVAL);
	m = mk(RAFT_MSG_HEARTBEAT, 1, 1, 5); /* from itself */
	CU_ASSERT_EQUAL(raft_step(N(1)->r, &m), RAFT_EINVAL);
	m = mk(RAFT_MSG_HEARTBEAT, 2, 9, 5); /* addressed to someone else */
	CU_ASSERT_EQUAL(raft_step(N(1)->r, &m), RAFT_EINVAL);
	m = mk(RAFT_MSG_TYPE_COUNT, 2, 1, 5);
	CU_ASSERT_EQUAL(raft_step(N(1)->r, &m), RAFT_EINVAL);
	fx_process(1);
	CU_ASSERT_EQUAL(st(1).term, 0);
	CU_ASSERT_EQUAL(st(1).leader, 0);
	CU_ASSERT_EQUAL(st(1).vote, 0);
	CU_ASSERT_EQUAL(F.n_mail, 0);
	CU_ASSERT_EQUAL(N(1)->n_persists, 0);
	fx_free();
}

/* A log a leader cannot have: entries of term 0, above the message's term, or falling. They are
 * refused whole, and the follower's log, term and commit stay as they were (raft.h). */
static void test_step_refuses_appends_whose_entries_no_leader_has(void)
{
	static const uint64_t bad_terms[][2] = {{0, 0}, {3, 4}, {3, 2}};
	static const uint64_t msg_terms[] = {0, 3, 3};
	struct raft_entry e[2];

	fx_init(3);
	fx_start_all();
	for (size_t k = 0; k < sizeof(msg_terms) / sizeof(msg_terms[0]); k++) {
		struct raft_msg a = mk(RAFT_MSG_APPEND, 1, 2, msg_terms[k]);
		for (unsigned i = 0; i < 2; i++) {
			e[i] = (struct raft_entry){bad_terms[k][i], i + 1, RAFT_ENTRY_NORMAL,
			                           FX_ENTRY_BYTES, payload(i + 1, FX_ENTRY_BYTES)};
		}
		a.u.append.n_entries = 2;
		a.u.append.entries = e;
		a.u.append.commit = 2;
		CU_ASSERT_EQUAL(fx_step(&a), RAFT_EINVAL);
		CU_ASSERT_EQUAL(st(2).last_index, 0);
		CU_ASSERT_EQUAL(st(2).term, 0);
		CU_ASSERT_EQUAL(st(2).commit, 0);
		CU_ASSERT_EQUAL(N(2)->n_persists, 0);
		entry_release(e, 2);
	}
	/* entries out of sequence after prev_index */
	{
		struct raft_msg a = mk(RAFT_MSG_APPEND, 1, 2, 3);
		e[0] = (struct raft_entry){3, 2, RAFT_ENTRY_NORMAL, FX_ENTRY_BYTES,
		                           payload(1, FX_ENTRY_BYTES)};
		a.u.append.n_entries = 1;
		a.u.append.entries = e;
		CU_ASSERT_EQUAL(fx_step(&a), RAFT_EINVAL);
		CU_ASSERT_EQUAL(st(2).last_index, 0);
		entry_release(e, 1);
	}
	fx_free();
}

/* A chunk that does not lie inside its snapshot, or says it is the last of a snapshot it does
 * not end, could never be installed (storage refuses the image, and that refusal stops the
 * node): each is rejected and no chunk is handed to persist, including one whose end wraps
 * past 2^64 into the snapshot. */
static void test_step_rejects_snapshot_chunks_outside_their_snapshot(void)
{
	static const struct {
		uint64_t offset;
		bool last;
	} bad[] = {
	        {0, true}, /* last, short of the size */
	        {95, false}, /* past the end */
	        {UINT64_MAX - 4, false}, /* its end wraps to 5 */
	        {UINT64_MAX - 9, true}, /* its end wraps to 0 */
	};
	static unsigned char chunk[10];
	struct raft_msg m;
	int k;

	fx_init(3);
	fx_start_all();
	m = mk(RAFT_MSG_SNAPSHOT, 1, 2, 2);
	m.u.snapshot.meta.index = 5;
	m.u.snapshot.meta.term = 1;
	m.u.snapshot.meta.size = 100;
	m.u.snapshot.meta.conf = F.conf;
	m.u.snapshot.len = sizeof(chunk);
	m.u.snapshot.data = chunk;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m.u.snapshot.offset = bad[i].offset;
		m.u.snapshot.last = bad[i].last;
		fx_step(&m);
		k = fx_find(RAFT_MSG_SNAPSHOT_RESP, 2, 1);
		CU_ASSERT_FATAL(k >= 0);
		CU_ASSERT_TRUE(mail_at(k)->u.snapshot_resp.reject);
		CU_ASSERT_FALSE(mail_at(k)->u.snapshot_resp.done);
		fx_drop((size_t)k);
	}
	CU_ASSERT_EQUAL(N(2)->n_chunks, 0);
	CU_ASSERT_EQUAL(st(2).snapshot_index, 0);
	fx_free();
}

/* A term past RAFT_MAX_TERM is refused; a node that reached the last term stays there rather
 * than wrapping to term 0 at its next election. */
static void test_terms_end_at_the_last_one_without_wrapping(void)
{
	struct raft_msg m;

	fx_init(3);
	fx_start_all();
	m = mk(RAFT_MSG_VOTE_RESP, 2, 1, RAFT_MAX_TERM + 1);
	CU_ASSERT_EQUAL(fx_step(&m), RAFT_EINVAL);
	CU_ASSERT_EQUAL(st(1).term, 0);
	m = mk(RAFT_MSG_VOTE_RESP, 2, 1, RAFT_MAX_TERM);
	CU_ASSERT_EQUAL(fx_step(&m), RAFT_OK);
	CU_ASSERT_EQUAL(st(1).term, RAFT_MAX_TERM);
	fx_drop_matching(0, 0, 0);
	fx_tick(1, 3 * FX_ELECTION_TICKS);
	CU_ASSERT_EQUAL(st(1).term, RAFT_MAX_TERM);
	CU_ASSERT_EQUAL(st(1).role, RAFT_FOLLOWER);
	CU_ASSERT_EQUAL(fx_find(RAFT_MSG_VOTE, 1, 0), -1);
	fx_free();
}

/* Bytes currently allocated from the heap (the sanitizer's allocator when there is one). */
static size_t heap_bytes(void)
{
#ifdef FX_ASAN
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
#endif
}

static void test_buf_refcount_frees_on_last_unref(void)
{
	const size_t big = 4u << 20;
	size_t base = heap_bytes();
	unsigned char *b = raft_buf_alloc(big);
	uint64_t index;
	bool counted; /* false under valgrind, whose allocator mallinfo2() does not see */

	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	counted = heap_bytes() >= base + big;
	raft_buf_ref(b);
	raft_buf_unref(b);
	memset(b, 1, big); /* still ours: ASan or valgrind would flag a use after free */
	if (counted)
		CU_ASSERT(heap_bytes() >= base + big);
	raft_buf_unref(b);
	if (counted)
		CU_ASSERT(heap_bytes() < base + big);
	raft_buf_unref(NULL);
	{
		void *z1 = raft_buf_alloc(0), *z2 = raft_buf_alloc(0);
		CU_ASSERT_PTR_NOT_NULL(z1);
		CU_ASSERT_PTR_NOT_NULL(z2);
		CU_ASSERT(z1 != z2);
		raft_buf_unref(z1);
		raft_buf_unref(z2);
	}

	/* through the core: the log, the disk and an extra holder each hold a reference */
	fx_cluster3_with_leader();
	b = payload(99, FX_ENTRY_BYTES);
	raft_buf_ref(b);
	CU_ASSERT_EQUAL(raft_propose(N(1)->r, b, FX_ENTRY_BYTES, &index, NULL), RAFT_OK);
	fx_process(1);
	fx_deliver_all();
	CU_ASSERT_EQUAL(st(1).commit, index);
	fx_free();
	/* every other holder is gone: ours is the last, and the bytes are intact */
	CU_ASSERT_EQUAL(*(uint64_t *)b, 99);
	raft_buf_unref(b);
}

static CU_TestInfo raft_tests[] = {
        {"test_5_2_follower_becomes_candidate_after_election_timeout",
         test_5_2_follower_becomes_candidate_after_election_timeout},
        {"test_5_2_vote_is_granted_once_per_term", test_5_2_vote_is_granted_once_per_term},
        {"test_5_4_1_vote_refused_when_candidate_log_is_behind",
         test_5_4_1_vote_refused_when_candidate_log_is_behind},
        {"test_5_3_follower_rejects_append_when_prev_term_mismatches",
         test_5_3_follower_rejects_append_when_prev_term_mismatches},
        {"test_5_3_conflicting_suffix_is_truncated_and_replaced",
         test_5_3_conflicting_suffix_is_truncated_and_replaced},
        {"test_5_3_leader_backs_off_quickly_with_conflict_hint",
         test_5_3_leader_backs_off_quickly_with_conflict_hint},
        {"test_5_3_commit_index_travels_with_the_next_append_or_heartbeat",
         test_5_3_commit_index_travels_with_the_next_append_or_heartbeat},
        {"test_5_4_2_entry_of_earlier_term_is_not_committed_by_counting_replicas",
         test_5_4_2_entry_of_earlier_term_is_not_committed_by_counting_replicas},
        {"test_5_4_2_noop_of_new_term_commits_earlier_entries",
         test_5_4_2_noop_of_new_term_commits_earlier_entries},
        {"test_7_lagging_follower_receives_snapshot_in_chunks",
         test_7_lagging_follower_receives_snapshot_in_chunks},
        {"test_7_snapshot_transfer_resumes_from_follower_offset",
         test_7_snapshot_transfer_resumes_from_follower_offset},
        {"test_7_a_chunk_marked_last_that_ends_before_the_size_is_rejected",
         test_7_a_chunk_marked_last_that_ends_before_the_size_is_rejected},
        {"test_7_follower_keeps_log_after_snapshot_it_already_has",
         test_7_follower_keeps_log_after_snapshot_it_already_has},
        {"test_prevote_does_not_raise_term_when_election_would_fail",
         test_prevote_does_not_raise_term_when_election_would_fail},
        {"test_prevote_partitioned_node_rejoins_without_disrupting_leader",
         test_prevote_partitioned_node_rejoins_without_disrupting_leader},
        {"test_check_quorum_leader_steps_down_without_majority",
         test_check_quorum_leader_steps_down_without_majority},
        {"test_read_index_waits_for_heartbeat_round", test_read_index_waits_for_heartbeat_round},
        {"test_read_index_batches_reads_in_one_round", test_read_index_batches_reads_in_one_round},
        {"test_read_index_forwarded_from_follower", test_read_index_forwarded_from_follower},
        {"test_6_4_follower_read_in_five_nodes_waits_for_one_more_answer",
         test_6_4_follower_read_in_five_nodes_waits_for_one_more_answer},
        {"test_6_4_follower_read_learns_commit_from_the_read_index",
         test_6_4_follower_read_learns_commit_from_the_read_index},
        {"test_6_4_read_index_answer_commits_only_what_matches_the_leader",
         test_6_4_read_index_answer_commits_only_what_matches_the_leader},
        {"test_read_index_fails_when_leader_steps_down",
         test_read_index_fails_when_leader_steps_down},
        {"test_transfer_brings_target_up_to_date_then_times_out_now",
         test_transfer_brings_target_up_to_date_then_times_out_now},
        {"test_transfer_refuses_proposals_while_running",
         test_transfer_refuses_proposals_while_running},
        {"test_persistence_messages_held_until_persisted",
         test_persistence_messages_held_until_persisted},
        {"test_leader_counts_itself_only_after_persisted",
         test_leader_counts_itself_only_after_persisted},
        {"test_restart_from_persisted_state_continues",
         test_restart_from_persisted_state_continues},
        {"test_leader_replicates_again_to_a_follower_that_lost_acknowledged_entries",
         test_leader_replicates_again_to_a_follower_that_lost_acknowledged_entries},
        {"test_leader_backs_off_below_match_when_a_rejection_shows_a_shorter_log",
         test_leader_backs_off_below_match_when_a_rejection_shows_a_shorter_log},
        {"test_a_lost_acknowledgement_is_not_counted_for_commit",
         test_a_lost_acknowledgement_is_not_counted_for_commit},
        {"test_pipelined_appends_bounded_by_inflight_window",
         test_pipelined_appends_bounded_by_inflight_window},
        {"test_proposals_batched_into_one_append", test_proposals_batched_into_one_append},
        {"test_proposal_refused_over_uncommitted_byte_limit",
         test_proposal_refused_over_uncommitted_byte_limit},
        {"test_an_entry_limit_over_what_the_log_accepts_is_refused",
         test_an_entry_limit_over_what_the_log_accepts_is_refused},
        {"test_append_batches_stop_at_the_entry_count_limit",
         test_append_batches_stop_at_the_entry_count_limit},
        {"test_step_rejects_message_from_unknown_node",
         test_step_rejects_message_from_unknown_node},
        {"test_step_refuses_appends_whose_entries_no_leader_has",
         test_step_refuses_appends_whose_entries_no_leader_has},
        {"test_step_rejects_snapshot_chunks_outside_their_snapshot",
         test_step_rejects_snapshot_chunks_outside_their_snapshot},
        {"test_terms_end_at_the_last_one_without_wrapping",
         test_terms_end_at_the_last_one_without_wrapping},
        {"test_buf_refcount_frees_on_last_unref", test_buf_refcount_frees_on_last_unref},
        CU_TEST_INFO_NULL,
};

/* A test that stops at a fatal assertion leaves its cluster behind: free it here. */
static void fx_teardown(void)
{
	fx_free();
}

static CU_SuiteInfo suites[] = {
        {"raft", NULL, NULL, NULL, fx_teardown, raft_tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	return cu_main(argc, argv, suites);
}
