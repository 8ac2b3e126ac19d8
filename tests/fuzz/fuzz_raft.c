/* fuzz_raft.c - libFuzzer target: a three-node Raft cluster stepped by the input (structure aware). */
#include <stdlib.h>
#include <string.h>

#include "raft/crc32c.h"
#include "raft/raft.h"
#include "raft/storage.h"
#include "tests/fuzz/fuzzlib.h"
#include "tests/fuzz/raftops.h"
#include "tests/lib/sim.h"

/*
 * Input: byte 0 seeds the cluster's randomness (election timeouts, batch sizes); the rest is a
 * program of steps for the simulator's stepped cluster of three real cores with real storage
 * on memory disks (tests/lib/sim.h), each an opcode byte and its operands: ticks, client
 * proposals and reads, leadership transfers, crashes and restarts; running, dropping or
 * duplicating any message or persist completion waiting in the pool, in any order; replaying
 * any of the last messages sent; and messages made up from the bytes. After every step the
 * simulator checks its invariants; the run fails on the first violation, crash, leak or failed
 * assertion of the core (RAFT_DEBUG).
 *
 * The model: what may a message from outside say, and what must the core withstand?
 *
 * Raft's fault model is an asynchronous network and crash-stop nodes: messages are lost,
 * duplicated, reordered and delayed without bound, but a message that says it comes from node
 * 2 in term 7 was sent by node 2 in term 7. The pool and the replays cover that model fully,
 * and every safety property must hold under it. Peers are trusted, not verified: a follower
 * obeys an AppendEntries from whoever claims to lead a higher term, counts a vote because the
 * voter says it granted it, commits because a follower says it stored an entry. A message that
 * lies about its sender's state (a leadership it does not hold, a vote it did not cast, an entry
 * it did not store) breaks Raft in the paper as in this core: keeping liars out is
 * authentication's job (TLS, a separate issue), not the core's. So a made-up message is judged
 * by what it claims (judge() below), against the truth the simulator knows:
 *
 *   - must change nothing: from an id that is not a member, or the receiver's own, or
 *     addressed to another node (raft_step must refuse it with RAFT_EINVAL), or of a term
 *     below the receiver's (Raft: a stale request is rejected, a stale response ignored), or
 *     refused by raft_step as impossible (RAFT_EINVAL). Any content at all. Checked: the
 *     receiver's term, vote, role, leader, commit index, log and snapshot are as before;
 *   - claims nothing a peer could lie about, any content: pre-votes and their answers (they
 *     move no term, record no vote), refused votes, refused appends (with any hint), snapshot
 *     answers that are not "done" (the receiver checks offsets itself), TIMEOUT_NOW (the
 *     receiver campaigns with its own log), READ_INDEX requests (answered to the named peer;
 *     that answer is nobody's read), answers of a higher term than the receiver's (it steps
 *     down and reads no further), heartbeat answers with no read round, and the last index
 *     an append or heartbeat answer reports (below the match the leader recorded, it only
 *     sends again from there: it never lowers its commit index); a snapshot chunk whose image
 *     does not match its CRC is refused by the receiver's storage, which keeps its old state;
 *   - true claims: a vote request from a candidate of that term claiming no more log than it
 *     holds durably; a vote granted that the voter durably cast; an append acknowledged for an
 *     entry the sender durably holds with the leader's term; a heartbeat answer for a read round
 *     the sender saw; a snapshot "done" for an index the sender durably covers; an append, a
 *     heartbeat or a snapshot chunk from the leader of that term carrying its real log, a
 *     commit index no higher than the part of the receiver's log matching the leader's, a read
 *     round it started, its real snapshot's bytes. The synthesized leader steps make such
 *     messages with shapes a real leader may never send together (any prev index, overlaps,
 *     stale commits, chunks out of order).
 * Under all these, every check stays on. Anything else is a lie outside the trust model: it is
 * delivered too, and from then on the run keeps only the checks that hold of each node whatever
 * its peers say (sim.h): no crash, leak or assertion; a node's log terms rise and stay at or
 * below its term; nothing it knew to be committed changes or is truncated; its persistence is
 * sane; it writes only to members. In particular a forged message never makes a node accept an
 * entry contradicting one it knows committed, and never makes it stop or misbehave internally.
 */

#define NODES 3u
#define MAX_FORGED_ENTRIES 4u
#define PAYLOAD_BYTES 16u
#define MAX_CHUNK_BYTES 256u

struct cursor {
	const uint8_t *p;
	size_t left;
};

static uint8_t u8(struct cursor *c)
{
	if (c->left == 0)
		return 0;
	c->left--;
	return *c->p++;
}

/* A value near base: most bytes move it a little either way; a few give the extremes. */
static uint64_t near(struct cursor *c, uint64_t base)
{
	uint8_t b = u8(c);
	int64_t d = (int8_t)b;

	if (b == 0x7f)
		return UINT64_MAX;
	if (b == 0x80)
		return 0;
	if (d < 0 && (uint64_t)-d > base)
		return 0;
	return base + (uint64_t)d;
}

static uint64_t term_near(struct cursor *c, uint64_t cur)
{
	uint8_t b = u8(c);

	switch (b >> 5) {
	case 0:
		return cur ? cur - 1 : 0;
	case 1:
		return cur;
	case 2:
		return cur + 1;
	case 3:
		return cur + 2;
	case 4:
		return 0;
	case 5:
		return b & 31u;
	case 6:
		return cur > 2 ? cur - 2 : 0;
	default:
		return UINT64_MAX - (b & 1u);
	}
}

static bool up(struct sim *s, unsigned i, struct raft_status *st)
{
	struct raft *r = sim_core(s, i);

	if (!r)
		return false;
	raft_status(r, st);
	return true;
}

/* Node j leads term now. */
static bool leads(struct sim *s, unsigned j, uint64_t term)
{
	struct raft_status st;

	return up(s, j, &st) && st.role == RAFT_LEADER && st.term == term;
}

/* The term of index in node j's log as it knows it, its snapshot's own index included. */
static uint64_t term_of(struct raft *r, const struct raft_status *st, uint64_t index)
{
	if (index == 0)
		return 0;
	if (index == st->snapshot_index)
		return st->snapshot_term;
	return raft_term_at(r, index);
}

/* The highest commit index leader j may tell node i: none of j's log beyond its commit, and
 * nothing of i's log that does not match j's. */
static uint64_t safe_commit(struct sim *s, unsigned j, unsigned i)
{
	struct raft *lr = sim_core(s, j), *fr = sim_core(s, i);
	struct raft_status ls, fs;
	uint64_t k;

	raft_status(lr, &ls);
	raft_status(fr, &fs);
	k = ls.commit < fs.last_index ? ls.commit : fs.last_index;
	for (; k > fs.commit; k--) {
		uint64_t t = term_of(lr, &ls, k);
		if (t != 0 && t == term_of(fr, &fs, k))
			break;
	}
	return k;
}

static bool same_entry(const struct raft_entry *a, const struct raft_entry *b)
{
	return a->index == b->index && a->term == b->term && a->type == b->type &&
	        a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* An append that node j, leading m->term, could send: its log, its commit. */
static bool append_is_true(struct sim *s, unsigned j, const struct raft_msg *m)
{
	const struct raft_msg_append *a = &m->u.append;
	struct raft *r = sim_core(s, j);
	struct raft_status st;

	if (!leads(s, j, m->term))
		return false;
	raft_status(r, &st);
	if (a->prev_index > st.last_index || a->commit > st.commit ||
	    (a->prev_index != 0 && term_of(r, &st, a->prev_index) == 0) ||
	    term_of(r, &st, a->prev_index) != a->prev_term)
		return false;
	for (uint32_t k = 0; k < a->n_entries; k++) {
		const struct raft_entry *e = &a->entries[k];
		struct raft_entry real;
		if (e->index != a->prev_index + 1 + k || e->index > st.last_index ||
		    !sim_entry(s, e->index, raft_term_at(r, e->index), &real) ||
		    !same_entry(e, &real))
			return false;
	}
	return true;
}

/* A chunk of node j's current snapshot, which j leads m->term with. */
static bool chunk_is_true(struct sim *s, unsigned j, const struct raft_msg *m)
{
	const struct raft_msg_snapshot *c = &m->u.snapshot;
	struct raft_storage *st = sim_storage(s, j);
	struct raft_snapshot_meta meta;
	unsigned char buf[MAX_CHUNK_BYTES];
	size_t got = 0;

	if (!leads(s, j, m->term) || raft_storage_snapshot_meta(st, &meta) != RAFT_OK ||
	    meta.index != c->meta.index || meta.term != c->meta.term || meta.size != c->meta.size ||
	    meta.crc != c->meta.crc || memcmp(&meta.conf, &c->meta.conf, sizeof(meta.conf)) != 0)
		return false;
	if (c->len > sizeof(buf) || c->offset > meta.size || c->len > meta.size - c->offset ||
	    (c->last && c->offset + c->len != meta.size) || (c->len && !c->data))
		return false;
	if (raft_storage_snapshot_read(st, meta.index, c->offset, buf, c->len, &got) != RAFT_OK ||
	    got != c->len)
		return false;
	return c->len == 0 || memcmp(buf, c->data, c->len) == 0;
}

enum verdict {
	V_NOOP, /* must change nothing */
	V_TRUSTED, /* claims nothing false: every check stays on */
	V_LIE, /* may lie: outside the trust model */
};

static enum verdict judge(struct sim *s, unsigned i, const struct raft_msg *m)
{
	struct raft_status rs, ss;
	unsigned j = m->from - 1; /* the sender, when it is a member */
	uint64_t t;

	up(s, i, &rs);
	if (m->from == 0 || m->from > NODES || m->from == rs.id || m->to != rs.id)
		return V_NOOP;
	if (m->term < rs.term)
		return V_NOOP;
	switch (m->type) {
	case RAFT_MSG_VOTE:
		if (m->u.vote.pre_vote)
			return V_TRUSTED;
		if (!up(s, j, &ss) || ss.role != RAFT_CANDIDATE || ss.term != m->term)
			return V_LIE;
		{
			uint64_t li, lt;
			sim_durable_last(s, j, &li, &lt);
			if (m->u.vote.last_log_term < lt ||
			    (m->u.vote.last_log_term == lt && m->u.vote.last_log_index <= li))
				return V_TRUSTED;
		}
		return V_LIE;
	case RAFT_MSG_VOTE_RESP:
		if (m->u.vote_resp.pre_vote || !m->u.vote_resp.granted || m->term > rs.term)
			return V_TRUSTED;
		{
			struct raft_hard_state hs = sim_durable_hard_state(s, j);
			return hs.term == m->term && hs.vote == rs.id ? V_TRUSTED : V_LIE;
		}
	case RAFT_MSG_APPEND:
		return append_is_true(s, j, m) ? V_TRUSTED : V_LIE;
	case RAFT_MSG_APPEND_RESP:
		if (!m->u.append_resp.success || m->term > rs.term)
			return V_TRUSTED;
		t = term_of(sim_core(s, i), &rs, m->u.append_resp.index);
		return m->u.append_resp.index == 0 ||
		                (t != 0 && sim_durable_has(s, j, m->u.append_resp.index, t))
		        ? V_TRUSTED
		        : V_LIE;
	case RAFT_MSG_HEARTBEAT:
		if (!leads(s, j, m->term) || m->u.heartbeat.commit > safe_commit(s, j, i) ||
		    m->u.heartbeat.read_seq > sim_heartbeat_sent(s, j, m->term))
			return V_LIE;
		return V_TRUSTED;
	case RAFT_MSG_HEARTBEAT_RESP:
		if (m->term > rs.term || m->u.heartbeat_resp.read_seq == 0)
			return V_TRUSTED;
		return sim_heartbeat_seen(s, j, i, m->term, m->u.heartbeat_resp.read_seq)
		        ? V_TRUSTED
		        : V_LIE;
	case RAFT_MSG_SNAPSHOT:
		return chunk_is_true(s, j, m) ? V_TRUSTED : V_LIE;
	case RAFT_MSG_SNAPSHOT_RESP:
		if (!m->u.snapshot_resp.done || m->term > rs.term)
			return V_TRUSTED;
		t = term_of(sim_core(s, i), &rs, m->u.snapshot_resp.index);
		return t != 0 && sim_durable_has(s, j, m->u.snapshot_resp.index, t) ? V_TRUSTED
		                                                                    : V_LIE;
	case RAFT_MSG_TIMEOUT_NOW:
	case RAFT_MSG_READ_INDEX:
		return V_TRUSTED;
	default: /* RAFT_MSG_READ_INDEX_RESP: the leader's commit index, taken on trust */
		return V_LIE;
	}
}

static void deliver(struct sim *s, unsigned i, const struct raft_msg *m)
{
	enum verdict v = judge(s, i, m);
	struct raft_status before, after;
	uint64_t before_terms[8] = {0};
	int rv;

	up(s, i, &before);
	for (unsigned k = 0; k < 8 && k < before.last_index; k++)
		before_terms[k] = raft_term_at(sim_core(s, i), before.last_index - k);
	rv = sim_inject(s, i, m, v != V_LIE);
	if (sim_failed(s) || !up(s, i, &after))
		return;
	if (m->from == 0 || m->from > NODES || m->from == before.id || m->to != before.id)
		FUZZ_CHECK(rv == RAFT_EINVAL, "raft_step of %s from %u to %u (node %u) returned %s",
		           raft_msg_type_name(m->type), (unsigned)m->from, (unsigned)m->to,
		           (unsigned)before.id, raft_strerror(rv));
	if (v != V_NOOP && rv != RAFT_EINVAL)
		return;
	FUZZ_CHECK(before.term == after.term && before.vote == after.vote &&
	                   before.role == after.role && before.leader == after.leader &&
	                   before.commit == after.commit && before.last_index == after.last_index &&
	                   before.last_term == after.last_term &&
	                   before.snapshot_index == after.snapshot_index,
	           "node %u changed on %s from %u of term %llu (its term %llu): term %llu->%llu, "
	           "vote %u->%u, role %s->%s, leader %u->%u, commit %llu->%llu, last %llu->%llu",
	           (unsigned)before.id, raft_msg_type_name(m->type), (unsigned)m->from,
	           (unsigned long long)m->term, (unsigned long long)before.term,
	           (unsigned long long)before.term, (unsigned long long)after.term, before.vote,
	           after.vote, raft_role_name(before.role), raft_role_name(after.role),
	           before.leader, after.leader, (unsigned long long)before.commit,
	           (unsigned long long)after.commit, (unsigned long long)before.last_index,
	           (unsigned long long)after.last_index);
	for (unsigned k = 0; k < 8 && k < before.last_index; k++)
		FUZZ_CHECK(raft_term_at(sim_core(s, i), before.last_index - k) == before_terms[k],
		           "node %u's log changed on a message it must ignore",
		           (unsigned)before.id);
}

/* --- made-up messages --------------------------------------------------------------------------- */

static uint32_t pick_from(struct cursor *c, unsigned i)
{
	uint8_t b = u8(c) % 8;

	if (b < NODES)
		return b + 1; /* a member, maybe the receiver itself */
	if (b == 3)
		return 0;
	if (b == 4)
		return NODES + 1 + (u8(c) % 8); /* not a member */
	return (i + 1 + (b & 1)) % NODES + 1; /* another member */
}

/* Byte pos of the image a forged snapshot claims: forged chunks of one snapshot agree. */
static unsigned char forged_image_byte(const struct raft_snapshot_meta *meta, uint64_t pos)
{
	return (unsigned char)(pos * 31 + meta->index);
}

static uint32_t forged_image_crc(const struct raft_snapshot_meta *meta)
{
	uint32_t crc = 0;

	for (uint64_t pos = 0; pos < meta->size; pos++) {
		unsigned char b = forged_image_byte(meta, pos);
		crc = raft_crc32c(crc, &b, 1);
	}
	return crc;
}

static void forge(struct sim *s, struct cursor *c)
{
	unsigned i = u8(c) % NODES;
	struct raft_entry entries[MAX_FORGED_ENTRIES];
	unsigned char chunk[MAX_CHUNK_BYTES];
	struct raft_status st;
	struct raft_msg m;
	struct raft *r = sim_core(s, i);

	if (!r)
		return;
	raft_status(r, &st);
	memset(&m, 0, sizeof(m));
	m.type = (uint8_t)(1 + u8(c) % (RAFT_MSG_TYPE_COUNT - 1));
	m.from = pick_from(c, i);
	m.to = u8(c) % 16 == 15 ? 99 : st.id;
	m.term = term_near(c, st.term);
	switch (m.type) {
	case RAFT_MSG_VOTE:
		m.u.vote.last_log_index = near(c, st.last_index);
		m.u.vote.last_log_term = term_near(c, st.last_term);
		m.u.vote.pre_vote = u8(c) & 1;
		m.u.vote.transfer = u8(c) & 1;
		break;
	case RAFT_MSG_VOTE_RESP:
		m.u.vote_resp.pre_vote = u8(c) & 1;
		m.u.vote_resp.granted = u8(c) & 1;
		break;
	case RAFT_MSG_APPEND: {
		struct raft_msg_append *a = &m.u.append;
		uint8_t shape;
		a->prev_index = near(c, st.last_index);
		a->prev_term = term_near(c, term_of(r, &st, a->prev_index));
		a->commit = near(c, st.commit);
		a->n_entries = u8(c) % (MAX_FORGED_ENTRIES + 1);
		a->entries = entries;
		shape = u8(c);
		for (uint32_t k = 0; k < a->n_entries; k++) {
			struct raft_entry *e = &entries[k];
			uint64_t id = 0xf0000000u + u8(c);
			e->index =
			        shape & 1 ? near(c, a->prev_index + 1 + k) : a->prev_index + 1 + k;
			e->term = shape & 2 ? term_near(c, m.term) : m.term;
			e->type = (uint8_t)(shape & 4 ? 1 + u8(c) % 3 : RAFT_ENTRY_NORMAL);
			e->len = e->type == RAFT_ENTRY_NORMAL ? PAYLOAD_BYTES : 0;
			e->data = e->len ? raft_buf_alloc(e->len) : NULL;
			FUZZ_CHECK(!e->len || e->data, "out of memory");
			if (e->len) {
				memset(e->data, 0, e->len);
				memcpy(e->data, &id, sizeof(id));
			}
		}
		break;
	}
	case RAFT_MSG_APPEND_RESP:
		m.u.append_resp.success = u8(c) & 1;
		m.u.append_resp.index = near(c, st.last_index);
		m.u.append_resp.hint_index = near(c, st.last_index);
		m.u.append_resp.hint_term = term_near(c, st.last_term);
		m.u.append_resp.last_index = near(c, st.last_index);
		break;
	case RAFT_MSG_HEARTBEAT:
		m.u.heartbeat.commit = near(c, st.commit);
		m.u.heartbeat.read_seq = u8(c) % 8;
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		m.u.heartbeat_resp.read_seq = u8(c) % 8;
		m.u.heartbeat_resp.last_index = near(c, st.last_index);
		break;
	case RAFT_MSG_SNAPSHOT: {
		struct raft_msg_snapshot *sn = &m.u.snapshot;
		uint8_t conf = u8(c) % 4;
		sn->meta.index = near(c, st.commit);
		sn->meta.term = term_near(c, m.term);
		sn->meta.conf.n = conf == 0 ? 0 : conf == 1 ? 1 : NODES;
		for (unsigned k = 0; k < sn->meta.conf.n; k++)
			sn->meta.conf.ids[k] = conf == 3 ? 7 + k : k + 1;
		sn->meta.size = 16 + u8(c) * 3u;
		sn->offset = u8(c) % 4 == 0 ? near(c, 0) : 0;
		sn->len = u8(c) % (sizeof(chunk) + 1);
		for (uint32_t k = 0; k < sn->len; k++)
			chunk[k] = forged_image_byte(&sn->meta, sn->offset + k);
		sn->data = sn->len ? chunk : NULL;
		sn->last = u8(c) & 1;
		/* the CRC of the image such chunks make, or another: the receiver checks it */
		sn->meta.crc = u8(c) & 1 ? forged_image_crc(&sn->meta) : (uint32_t)near(c, 0);
		break;
	}
	case RAFT_MSG_SNAPSHOT_RESP:
		m.u.snapshot_resp.index = near(c, st.commit);
		m.u.snapshot_resp.next_offset = u8(c) * 8u;
		m.u.snapshot_resp.done = u8(c) & 1;
		m.u.snapshot_resp.reject = u8(c) & 1;
		break;
	case RAFT_MSG_READ_INDEX:
		m.u.read_index.ctx = (1ull << 62) | u8(c);
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		m.u.read_index_resp.ctx = u8(c);
		m.u.read_index_resp.index = near(c, st.commit);
		m.u.read_index_resp.ok = u8(c) & 1;
		break;
	default: /* RAFT_MSG_TIMEOUT_NOW */
		break;
	}
	deliver(s, i, &m);
	if (m.type == RAFT_MSG_APPEND)
		for (uint32_t k = 0; k < m.u.append.n_entries; k++)
			raft_buf_unref(entries[k].data);
}

/* A leader (the byte picks among them) and another node, up; false when there is none. */
static bool leader_and_follower(struct sim *s, struct cursor *c, unsigned *l, unsigned *f)
{
	unsigned leaders[NODES], n = 0;

	for (unsigned i = 0; i < NODES; i++) {
		struct raft_status st;
		if (up(s, i, &st) && st.role == RAFT_LEADER)
			leaders[n++] = i;
	}
	if (n == 0)
		return false;
	*l = leaders[u8(c) % n];
	*f = (*l + 1 + u8(c) % (NODES - 1)) % NODES;
	return sim_core(s, *f) != NULL;
}

static void leader_append(struct sim *s, struct cursor *c)
{
	struct raft_entry entries[MAX_FORGED_ENTRIES];
	struct raft_status ls;
	struct raft_msg m;
	struct raft *r;
	unsigned l, f;
	uint64_t back;

	if (!leader_and_follower(s, c, &l, &f))
		return;
	r = sim_core(s, l);
	raft_status(r, &ls);
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_APPEND;
	m.from = ls.id;
	m.to = f + 1;
	m.term = ls.term;
	back = u8(c);
	m.u.append.prev_index = back > ls.last_index ? 0 : ls.last_index - back;
	if (m.u.append.prev_index != 0 && m.u.append.prev_index < ls.snapshot_index)
		m.u.append.prev_index = ls.snapshot_index;
	if (m.u.append.prev_index != 0 && term_of(r, &ls, m.u.append.prev_index) == 0)
		return;
	m.u.append.prev_term = term_of(r, &ls, m.u.append.prev_index);
	m.u.append.commit = ls.commit - u8(c) % (ls.commit + 1);
	m.u.append.entries = entries;
	for (unsigned k = u8(c) % (MAX_FORGED_ENTRIES + 1); k > 0; k--) {
		uint64_t index = m.u.append.prev_index + 1 + m.u.append.n_entries;
		if (index > ls.last_index ||
		    !sim_entry(s, index, raft_term_at(r, index), &entries[m.u.append.n_entries]))
			break;
		m.u.append.n_entries++;
	}
	deliver(s, f, &m);
}

static void leader_heartbeat(struct sim *s, struct cursor *c)
{
	struct raft_status ls;
	struct raft_msg m;
	unsigned l, f;
	uint64_t bound;

	if (!leader_and_follower(s, c, &l, &f))
		return;
	up(s, l, &ls);
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_HEARTBEAT;
	m.from = ls.id;
	m.to = f + 1;
	m.term = ls.term;
	bound = safe_commit(s, l, f);
	m.u.heartbeat.commit = bound - u8(c) % (bound + 1);
	m.u.heartbeat.read_seq = u8(c) & 1 ? sim_heartbeat_sent(s, l, ls.term) : 0;
	deliver(s, f, &m);
}

static void leader_snapshot(struct sim *s, struct cursor *c)
{
	unsigned char chunk[MAX_CHUNK_BYTES];
	struct raft_snapshot_meta meta;
	struct raft_status ls;
	struct raft_msg m;
	unsigned l, f;
	size_t got = 0;

	if (!leader_and_follower(s, c, &l, &f) ||
	    raft_storage_snapshot_meta(sim_storage(s, l), &meta) != RAFT_OK)
		return;
	up(s, l, &ls);
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_SNAPSHOT;
	m.from = ls.id;
	m.to = f + 1;
	m.term = ls.term;
	m.u.snapshot.meta = meta;
	m.u.snapshot.offset = u8(c) % 4 == 0 ? 0 : meta.size * u8(c) / 256;
	m.u.snapshot.len = 1 + u8(c) % sizeof(chunk);
	if (m.u.snapshot.len > meta.size - m.u.snapshot.offset)
		m.u.snapshot.len = (uint32_t)(meta.size - m.u.snapshot.offset);
	if (raft_storage_snapshot_read(sim_storage(s, l), meta.index, m.u.snapshot.offset, chunk,
	                               m.u.snapshot.len, &got) != RAFT_OK ||
	    got != m.u.snapshot.len)
		return;
	m.u.snapshot.data = m.u.snapshot.len ? chunk : NULL;
	m.u.snapshot.last = m.u.snapshot.offset + m.u.snapshot.len == meta.size;
	deliver(s, f, &m);
}

/* --- the program -------------------------------------------------------------------------------- */

static void step(struct sim *s, struct cursor *c)
{
	size_t pending = sim_pending(s);

	switch (u8(c) % FUZZ_OP_COUNT) {
	case FUZZ_OP_TICK:
		sim_step_tick(s, u8(c) % NODES);
		break;
	case FUZZ_OP_TICK_ALL:
		for (unsigned k = 1 + u8(c) % 16; k > 0; k--)
			for (unsigned i = 0; i < NODES; i++)
				sim_step_tick(s, i);
		break;
	case FUZZ_OP_RUN:
		if (pending)
			sim_step_pending(s, u8(c) % pending);
		break;
	case FUZZ_OP_RUN_FIRST:
		sim_step_pending(s, 0);
		break;
	case FUZZ_OP_RUN_MANY:
		for (unsigned k = 1 + u8(c) % 64; k > 0 && sim_pending(s); k--)
			sim_step_pending(s, 0);
		break;
	case FUZZ_OP_DROP:
		if (pending)
			sim_drop_pending(s, u8(c) % pending);
		break;
	case FUZZ_OP_DUPLICATE:
		if (pending)
			sim_duplicate_pending(s, u8(c) % pending);
		break;
	case FUZZ_OP_REPLAY:
		sim_step_replay(s, u8(c));
		break;
	case FUZZ_OP_PROPOSE:
		sim_step_propose(s, u8(c) % NODES);
		break;
	case FUZZ_OP_READ:
		sim_step_read(s, u8(c) % NODES);
		break;
	case FUZZ_OP_TRANSFER:
		sim_step_transfer(s, u8(c) % NODES, u8(c) % (NODES + 1));
		break;
	case FUZZ_OP_CRASH:
		sim_step_crash(s, u8(c) % NODES);
		break;
	case FUZZ_OP_RESTART:
		sim_step_restart(s, u8(c) % NODES);
		break;
	case FUZZ_OP_FORGE:
		forge(s, c);
		break;
	case FUZZ_OP_LEADER_APPEND:
		leader_append(s, c);
		break;
	case FUZZ_OP_LEADER_HEARTBEAT:
		leader_heartbeat(s, c);
		break;
	default:
		leader_snapshot(s, c);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cursor c = {data, size};
	struct sim_result res;
	struct sim *s;

	if (size < 1)
		return 0;
	s = sim_open(NODES, u8(&c), &res);
	FUZZ_CHECK(s != NULL, "out of memory");
	while (c.left > 0 && !sim_failed(s))
		step(s, &c);
	if (!sim_close(s))
		fuzz_fail("%s", res.error);
	return 0;
}
