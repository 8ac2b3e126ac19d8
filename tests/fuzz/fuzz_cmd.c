/* fuzz_cmd.c - libFuzzer target: kv commands decoded and applied as committed log entries. */
#include <stdlib.h>
#include <string.h>

#include "kv/cmd.h"
#include "kv/store.h"
#include "raft/le.h"
#include "tests/fuzz/fuzzlib.h"
#include "tests/lib/samples.h"

/*
 * Input: a sequence of log entries, each a u16 length (little endian) and that many bytes of an
 * encoded command (kv/cmd.h); a last entry cut short is ignored. Each entry goes where a
 * committed entry's bytes go in every replica: kv_store_apply at the next index, on a store
 * with small limits (values, sessions, session timeout) so that they are reached. Then:
 *   - a command that decodes encodes again to the same bytes; one that does not is consumed
 *     with KV_ECORRUPT or KV_EVERSION and changes nothing; a Settings command changes the
 *     settings in force once, and only when its values are valid;
 *   - the result encodes, and decodes to a result that encodes to the same bytes (what a
 *     session records and a client receives);
 *   - a read outside a session answers what the local read (kv_store_get / read / getattr /
 *     readdir: what a node serves after ReadIndex) answered just before;
 *   - the store holds together after each entry (fuzz_check_store);
 *   - a second store given the same entries, with another hash key, ends in the same state
 *     (kv_store_hash);
 *   - the store's snapshot restores (with a third hash key) to the same state, whose snapshot
 *     is the same bytes.
 */

/* The twin and the restored store place names with other hash keys: where a name sits must
 * never show in the state, the snapshot or a ReadDir (kv/store.h). */
static const struct kv_store_config config = {
        .settings = {.max_value_bytes = 512, .session_timeout_ms = 60000, .max_sessions = 4},
        .hash_key = {0, 0},
};
static const struct kv_store_config twin_config = {
        .settings = {.max_value_bytes = 512, .session_timeout_ms = 60000, .max_sessions = 4},
        .hash_key = {0x0123456789abcdefull, 0xfedcba9876543210ull},
};
static const struct kv_store_config restore_config = {
        .settings = {.max_value_bytes = 512, .session_timeout_ms = 60000, .max_sessions = 4},
        .hash_key = {0x5bd1e9955bd1e995ull, 0x9e3779b97f4a7c15ull},
};

static void check_result_round_trip(const struct kv_result *r)
{
	struct kv_result again;
	void *a, *b;
	size_t alen, blen;

	FUZZ_CHECK(kv_result_encode(r, &a, &alen) == KV_OK, "a result does not encode");
	FUZZ_CHECK(kv_result_decode(a, alen, &again) == KV_OK, "an encoded result does not decode");
	FUZZ_CHECK(kv_result_encode(&again, &b, &blen) == KV_OK,
	           "a decoded result does not encode");
	FUZZ_CHECK(alen == blen && memcmp(a, b, alen) == 0, "a result changed in a round trip");
	kv_result_release(&again);
	raft_buf_unref(a);
	raft_buf_unref(b);
}

static void check_cmd_round_trip(const uint8_t *buf, size_t len, const struct kv_cmd *c)
{
	void *again;
	size_t again_len;

	FUZZ_CHECK(kv_cmd_encode(c, &again, &again_len) == KV_OK,
	           "a decoded command does not encode");
	FUZZ_CHECK(again_len == len && memcmp(again, buf, len) == 0,
	           "a command does not encode to the bytes it was decoded from");
	raft_buf_unref(again);
}

/* What a node's local read answers for c (kv/node.c serve_read), before c is applied: Get,
 * Read, GetAttr and ReadDir (the reads a node serves itself). */
static void local_read(const struct kv_store *s, const struct kv_cmd *c, struct kv_result *out)
{
	int rv;

	memset(out, 0, sizeof(*out));
	switch (c->op) {
	case KV_OP_GET:
		rv = kv_store_get(s, c->key, c->key_len, &out->value, &out->value_len, &out->exists,
		                  &out->attr);
		out->has_attr = rv == KV_OK && out->exists;
		break;
	case KV_OP_READ:
		rv = kv_store_read(s, c->key, c->key_len, c->offset, c->count, &out->value,
		                   &out->value_len, &out->exists, &out->attr);
		out->has_attr = rv == KV_OK && out->exists;
		break;
	case KV_OP_GETATTR:
		rv = kv_store_getattr(s, c->key, c->key_len, &out->attr);
		out->has_attr = rv == KV_OK;
		out->exists = rv == KV_OK;
		break;
	default:
		rv = kv_store_readdir(s, c->key, c->key_len, out);
		break;
	}
	out->op = c->op;
	out->status = rv;
}

static bool same_answer(const struct kv_result *a, const struct kv_result *b)
{
	if (a->status != b->status || a->exists != b->exists || a->value_len != b->value_len ||
	    a->n_ents != b->n_ents)
		return false;
	if (a->value_len && memcmp(a->value, b->value, a->value_len) != 0)
		return false;
	if (a->status == KV_OK && a->has_attr && b->has_attr &&
	    (a->attr.ino != b->attr.ino || a->attr.size != b->attr.size ||
	     a->attr.mode != b->attr.mode))
		return false;
	for (size_t i = 0; i < a->n_ents; i++)
		if (a->ents[i].ino != b->ents[i].ino ||
		    a->ents[i].name_len != b->ents[i].name_len ||
		    memcmp(a->ents[i].name, b->ents[i].name, a->ents[i].name_len) != 0)
			return false;
	return true;
}

static bool same_settings(const struct kv_settings *a, const struct kv_settings *b)
{
	return a->max_value_bytes == b->max_value_bytes &&
	        a->session_timeout_ms == b->session_timeout_ms &&
	        a->max_sessions == b->max_sessions;
}

static void apply_one(struct kv_store *s, struct kv_store *twin, uint64_t index, const uint8_t *buf,
                      size_t len)
{
	struct kv_result r, rt, before;
	struct kv_cmd c;
	uint64_t hash = kv_store_hash(s), now = kv_store_now_ms(s);
	int drv = kv_cmd_decode(buf, len, &c);
	bool read = drv == KV_OK && c.session == 0 && kv_op_is_read(c.op);
	struct kv_settings set_before, set_after;
	uint64_t set_index = kv_store_settings(s, &set_before);

	if (drv == KV_OK)
		check_cmd_round_trip(buf, len, &c);
	else
		FUZZ_CHECK(drv == KV_ECORRUPT || drv == KV_EVERSION, "decode: %s",
		           kv_strerror(drv));
	if (read)
		local_read(s, &c, &before);
	FUZZ_CHECK(kv_store_apply(s, index, buf, len, &r) == KV_OK, "entry %llu not consumed",
	           (unsigned long long)index);
	FUZZ_CHECK(kv_store_apply(twin, index, buf, len, &rt) == KV_OK, "entry %llu not consumed",
	           (unsigned long long)index);
	FUZZ_CHECK(r.status >= 0 && r.status < KV_ERR_COUNT, "result status %d", r.status);
	if (drv != KV_OK) {
		FUZZ_CHECK(r.status == drv && kv_store_hash(s) == hash,
		           "an undecodable command was applied");
	} else {
		FUZZ_CHECK(r.op == c.op, "the result of a %s is a %s", kv_op_name(c.op),
		           kv_op_name(r.op));
		if (kv_op_is_read(c.op) && c.time_ms <= now && c.session == 0)
			FUZZ_CHECK(kv_store_hash(s) == hash, "a %s changed the store",
			           kv_op_name(c.op));
	}
	if (kv_store_settings(s, &set_after) != set_index) {
		FUZZ_CHECK(set_index == 0 && drv == KV_OK && c.op == KV_OP_SETTINGS &&
		                   r.status == KV_OK && kv_settings_valid(&c.settings) &&
		                   kv_store_settings(s, NULL) == index &&
		                   same_settings(&set_after, &c.settings),
		           "the settings changed at entry %llu (a %s, %s)",
		           (unsigned long long)index,
		           drv == KV_OK ? kv_op_name(c.op) : "malformed command",
		           kv_strerror(r.status));
	} else {
		FUZZ_CHECK(same_settings(&set_after, &set_before),
		           "the settings in force changed without a Settings entry");
		FUZZ_CHECK(drv != KV_OK || c.op != KV_OP_SETTINGS || r.status != KV_OK,
		           "a Settings command applied without effect answered KV_OK");
	}
	if (read) {
		FUZZ_CHECK(same_answer(&r, &before), "a %s applied answers %s, served locally %s",
		           kv_op_name(c.op), kv_strerror(r.status), kv_strerror(before.status));
		kv_result_release(&before);
	}
	check_result_round_trip(&r);
	kv_result_release(&r);
	kv_result_release(&rt);
	fuzz_check_store(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kv_store *s, *twin, *restored;
	struct samples_stream a = {0}, b = {0};
	uint64_t index = 0;
	size_t off = 0;

	FUZZ_CHECK(kv_store_new(&config, &s) == KV_OK && kv_store_new(&twin_config, &twin) == KV_OK,
	           "kv_store_new");
	while (size - off >= 2) {
		size_t len = raft_le_get16(data + off);
		if (len > size - off - 2)
			break;
		apply_one(s, twin, ++index, data + off + 2, len);
		off += 2 + len;
	}
	FUZZ_CHECK(kv_store_hash(s) == kv_store_hash(twin), "two stores given the same log differ");
	FUZZ_CHECK(kv_snapshot_save(s, samples_stream_write, &a) == KV_OK, "snapshot save");
	FUZZ_CHECK(kv_snapshot_restore(&restore_config, samples_stream_read, &a, &restored) ==
	                   KV_OK,
	           "a store's own snapshot does not restore");
	FUZZ_CHECK(a.pos == a.len, "the restore read %zu of %zu bytes", a.pos, a.len);
	fuzz_check_store(restored);
	FUZZ_CHECK(kv_store_hash(restored) == kv_store_hash(s), "a restored snapshot differs");
	FUZZ_CHECK(kv_snapshot_save(restored, samples_stream_write, &b) == KV_OK, "snapshot save");
	FUZZ_CHECK(a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0,
	           "a restored store's snapshot is not the same bytes");
	free(a.buf);
	free(b.buf);
	kv_store_free(restored);
	kv_store_free(twin);
	kv_store_free(s);
	return 0;
}
