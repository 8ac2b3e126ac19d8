/* samples.c - sample data for the tests (see samples.h). */
#include "tests/lib/samples.h"

#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

/* The data of the sample append's entries: 10 bytes, then 20. */
static unsigned char entry_bytes[] = "0123456789abcdefghij";

struct raft_conf samples_conf(void)
{
	struct raft_conf c;

	memset(&c, 0, sizeof(c));
	c.n = 3;
	c.ids[0] = 1;
	c.ids[1] = 2;
	c.ids[2] = 3;
	c.n_old = 2;
	c.old_ids[0] = 7;
	c.old_ids[1] = 9;
	return c;
}

static void sample_append(struct raft_msg_append *ap, struct raft_entry *entries)
{
	ap->prev_index = 10;
	ap->prev_term = 4;
	ap->commit = 9;
	ap->n_entries = SAMPLES_MSG_ENTRIES;
	ap->entries = entries;
	for (unsigned i = 0; i < SAMPLES_MSG_ENTRIES; i++) {
		entries[i].term = 5;
		entries[i].index = ap->prev_index + 1 + i;
		entries[i].type = i == 0 ? RAFT_ENTRY_NOOP : RAFT_ENTRY_NORMAL;
		entries[i].len = 10 * i;
		entries[i].data = i == 0 ? NULL : entry_bytes;
	}
}

void samples_msg(int type, uint32_t from, uint32_t to, struct raft_msg *m,
                 struct raft_entry *entries)
{
	memset(m, 0, sizeof(*m));
	m->type = (uint8_t)type;
	m->from = from;
	m->to = to;
	m->term = 0x0102030405060708ull + (uint64_t)type;
	switch (type) {
	case RAFT_MSG_VOTE:
		m->u.vote.last_log_index = 77;
		m->u.vote.last_log_term = 6;
		m->u.vote.pre_vote = true;
		m->u.vote.transfer = true;
		break;
	case RAFT_MSG_VOTE_RESP:
		m->u.vote_resp.pre_vote = true;
		m->u.vote_resp.granted = true;
		break;
	case RAFT_MSG_APPEND:
		sample_append(&m->u.append, entries);
		break;
	case RAFT_MSG_APPEND_RESP:
		m->u.append_resp.success = true;
		m->u.append_resp.index = 12;
		m->u.append_resp.hint_index = 3;
		m->u.append_resp.hint_term = 2;
		m->u.append_resp.last_index = 14;
		break;
	case RAFT_MSG_HEARTBEAT:
		m->u.heartbeat.commit = 99;
		m->u.heartbeat.read_seq = 5;
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		m->u.heartbeat_resp.read_seq = 5;
		m->u.heartbeat_resp.last_index = 77;
		break;
	case RAFT_MSG_SNAPSHOT:
		m->u.snapshot.meta.index = 1000;
		m->u.snapshot.meta.term = 8;
		m->u.snapshot.meta.conf = samples_conf();
		m->u.snapshot.meta.size = 1u << 20;
		m->u.snapshot.meta.crc = 0xfedcba98u;
		m->u.snapshot.offset = 4096;
		m->u.snapshot.last = true;
		break;
	case RAFT_MSG_SNAPSHOT_RESP:
		m->u.snapshot_resp.index = 1000;
		m->u.snapshot_resp.next_offset = 8192;
		m->u.snapshot_resp.done = true;
		m->u.snapshot_resp.reject = true;
		break;
	case RAFT_MSG_READ_INDEX:
		m->u.read_index.ctx = 0xdeadbeef;
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		m->u.read_index_resp.ctx = 0xdeadbeef;
		m->u.read_index_resp.index = 44;
		m->u.read_index_resp.ok = true;
		break;
	default: /* RAFT_MSG_TIMEOUT_NOW has nothing more */
		break;
	}
}

/* The members in use only: a decoder need not clear the rest of the arrays. */
static bool confs_equal(const struct raft_conf *a, const struct raft_conf *b)
{
	if (a->n != b->n || a->n_old != b->n_old || a->n > RAFT_MAX_NODES ||
	    a->n_old > RAFT_MAX_NODES)
		return false;
	return memcmp(a->ids, b->ids, a->n * sizeof(a->ids[0])) == 0 &&
	        memcmp(a->old_ids, b->old_ids, a->n_old * sizeof(a->old_ids[0])) == 0;
}

bool samples_entries_equal(const struct raft_entry *a, const struct raft_entry *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i].term != b[i].term || a[i].index != b[i].index || a[i].type != b[i].type ||
		    a[i].len != b[i].len)
			return false;
		if (a[i].len && memcmp(a[i].data, b[i].data, a[i].len) != 0)
			return false;
	}
	return true;
}

bool samples_msgs_equal(const struct raft_msg *a, const struct raft_msg *b)
{
	if (a->type != b->type || a->from != b->from || a->to != b->to || a->term != b->term)
		return false;
	switch (a->type) {
	case RAFT_MSG_VOTE:
		return a->u.vote.last_log_index == b->u.vote.last_log_index &&
		        a->u.vote.last_log_term == b->u.vote.last_log_term &&
		        a->u.vote.pre_vote == b->u.vote.pre_vote &&
		        a->u.vote.transfer == b->u.vote.transfer;
	case RAFT_MSG_VOTE_RESP:
		return a->u.vote_resp.pre_vote == b->u.vote_resp.pre_vote &&
		        a->u.vote_resp.granted == b->u.vote_resp.granted;
	case RAFT_MSG_APPEND:
		return a->u.append.prev_index == b->u.append.prev_index &&
		        a->u.append.prev_term == b->u.append.prev_term &&
		        a->u.append.commit == b->u.append.commit &&
		        a->u.append.n_entries == b->u.append.n_entries &&
		        samples_entries_equal(a->u.append.entries, b->u.append.entries,
		                              a->u.append.n_entries);
	case RAFT_MSG_APPEND_RESP:
		return a->u.append_resp.success == b->u.append_resp.success &&
		        a->u.append_resp.index == b->u.append_resp.index &&
		        a->u.append_resp.hint_index == b->u.append_resp.hint_index &&
		        a->u.append_resp.hint_term == b->u.append_resp.hint_term &&
		        a->u.append_resp.last_index == b->u.append_resp.last_index;
	case RAFT_MSG_HEARTBEAT:
		return a->u.heartbeat.commit == b->u.heartbeat.commit &&
		        a->u.heartbeat.read_seq == b->u.heartbeat.read_seq;
	case RAFT_MSG_HEARTBEAT_RESP:
		return a->u.heartbeat_resp.read_seq == b->u.heartbeat_resp.read_seq &&
		        a->u.heartbeat_resp.last_index == b->u.heartbeat_resp.last_index;
	case RAFT_MSG_SNAPSHOT:
		return a->u.snapshot.meta.index == b->u.snapshot.meta.index &&
		        a->u.snapshot.meta.term == b->u.snapshot.meta.term &&
		        a->u.snapshot.meta.size == b->u.snapshot.meta.size &&
		        a->u.snapshot.meta.crc == b->u.snapshot.meta.crc &&
		        confs_equal(&a->u.snapshot.meta.conf, &b->u.snapshot.meta.conf) &&
		        a->u.snapshot.offset == b->u.snapshot.offset &&
		        a->u.snapshot.len == b->u.snapshot.len &&
		        a->u.snapshot.last == b->u.snapshot.last &&
		        (a->u.snapshot.len == 0 ||
		         memcmp(a->u.snapshot.data, b->u.snapshot.data, a->u.snapshot.len) == 0);
	case RAFT_MSG_SNAPSHOT_RESP:
		return a->u.snapshot_resp.index == b->u.snapshot_resp.index &&
		        a->u.snapshot_resp.next_offset == b->u.snapshot_resp.next_offset &&
		        a->u.snapshot_resp.done == b->u.snapshot_resp.done &&
		        a->u.snapshot_resp.reject == b->u.snapshot_resp.reject;
	case RAFT_MSG_TIMEOUT_NOW:
		return true;
	case RAFT_MSG_READ_INDEX:
		return a->u.read_index.ctx == b->u.read_index.ctx;
	case RAFT_MSG_READ_INDEX_RESP:
		return a->u.read_index_resp.ctx == b->u.read_index_resp.ctx &&
		        a->u.read_index_resp.index == b->u.read_index_resp.index &&
		        a->u.read_index_resp.ok == b->u.read_index_resp.ok;
	default:
		return false;
	}
}

struct kv_cmd samples_kv_cmd(int op, const char *key, uint64_t time_ms)
{
	struct kv_cmd c;

	memset(&c, 0, sizeof(c));
	c.op = (uint8_t)op;
	c.time_ms = time_ms;
	c.uid = SAMPLES_UID;
	c.gid = SAMPLES_GID;
	c.mode = 0644;
	c.key = key;
	c.key_len = key ? strlen(key) : 0;
	return c;
}

int samples_kv_apply(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                     struct kv_result *r)
{
	struct kv_result local;
	void *buf;
	size_t len;
	int rv;

	if (!r)
		r = &local;
	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(c, &buf, &len), KV_OK);
	CU_ASSERT_EQUAL(kv_store_apply(s, index, buf, len, r), KV_OK);
	raft_buf_unref(buf);
	rv = r->status;
	if (r == &local)
		kv_result_release(r);
	return rv;
}

int samples_stream_write(void *ctx, const void *p, size_t n)
{
	struct samples_stream *m = ctx;

	if (++m->calls == m->fail_at)
		return -1;
	if (m->len + n > m->cap) {
		size_t cap = (m->len + n) * 2;
		unsigned char *nb = realloc(m->buf, cap);
		if (!nb)
			return -1;
		m->buf = nb;
		m->cap = cap;
	}
	memcpy(m->buf + m->len, p, n);
	m->len += n;
	return 0;
}

int samples_stream_read(void *ctx, void *p, size_t n)
{
	struct samples_stream *m = ctx;

	if (n > m->len - m->pos)
		return -1;
	memcpy(p, m->buf + m->pos, n);
	m->pos += n;
	return 0;
}
