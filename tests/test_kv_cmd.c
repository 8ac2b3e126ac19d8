/* test_kv_cmd.c - the kv command and result codecs: round trips and every malformed input. */
#include <stdlib.h>
#include <string.h>

#include "kv/cmd.h"
#include "raft/raft.h"
#include "tests/lib/cu.h"

/* Offset of the first op field: version, op, session, seq, time, uid, gid, mode. */
#define HEADER_BYTES 38

/* A command of op with every field set to something recognisable. */
static struct kv_cmd full_cmd(int op)
{
	static const char key[] = "dir/sub/file.txt";
	static const char key2[] = "other/place";
	static const char data[] = "some bytes\0with a NUL";
	struct kv_cmd c;

	memset(&c, 0, sizeof(c));
	c.op = (uint8_t)op;
	c.session = 0x1122334455667788ULL;
	c.seq = 42;
	c.time_ms = 1700000000123ULL;
	c.uid = 1000;
	c.gid = 100;
	c.mode = 0640;
	c.key = key;
	c.key_len = strlen(key);
	c.key2 = key2;
	c.key2_len = strlen(key2);
	c.data = data;
	c.data_len = sizeof(data);
	c.offset = 0xabcdef0123ULL;
	c.flags = KV_RENAME_NOREPLACE;
	c.attr.mode = 04755;
	c.attr.uid = 7;
	c.attr.gid = 8;
	c.attr.mtime_ns = 123456789;
	c.attr.ctime_ns = 987654321;
	c.count = 131072;
	c.settings.max_value_bytes = 0x0102030405060708ULL;
	c.settings.session_timeout_ms = 0x1112131415161718ULL;
	c.settings.max_sessions = 0x21222324u;
	return c;
}

static void check_same(const struct kv_cmd *a, const struct kv_cmd *b)
{
	unsigned f = kv_op_fields(a->op);

	CU_ASSERT_EQUAL(a->op, b->op);
	CU_ASSERT_EQUAL(a->session, b->session);
	CU_ASSERT_EQUAL(a->seq, b->seq);
	CU_ASSERT_EQUAL(a->time_ms, b->time_ms);
	CU_ASSERT_EQUAL(a->uid, b->uid);
	CU_ASSERT_EQUAL(a->gid, b->gid);
	CU_ASSERT_EQUAL(a->mode, b->mode);
	if (f & KV_FIELD_KEY) {
		CU_ASSERT_EQUAL_FATAL(a->key_len, b->key_len);
		CU_ASSERT(memcmp(a->key, b->key, a->key_len) == 0);
	} else {
		CU_ASSERT_EQUAL(b->key_len, 0);
	}
	if (f & KV_FIELD_KEY2) {
		CU_ASSERT_EQUAL_FATAL(a->key2_len, b->key2_len);
		CU_ASSERT(memcmp(a->key2, b->key2, a->key2_len) == 0);
	}
	if (f & KV_FIELD_DATA) {
		CU_ASSERT_EQUAL_FATAL(a->data_len, b->data_len);
		CU_ASSERT(memcmp(a->data, b->data, a->data_len) == 0);
	} else {
		CU_ASSERT_EQUAL(b->data_len, 0);
	}
	CU_ASSERT_EQUAL(b->offset, (f & KV_FIELD_OFFSET) ? a->offset : 0);
	CU_ASSERT_EQUAL(b->flags, (f & KV_FIELD_FLAGS) ? a->flags : 0);
	if (f & KV_FIELD_ATTR)
		CU_ASSERT(memcmp(&a->attr, &b->attr, sizeof(a->attr)) == 0);
	CU_ASSERT_EQUAL(b->count, (f & KV_FIELD_COUNT) ? a->count : 0);
	if (f & KV_FIELD_SETTINGS) {
		CU_ASSERT_EQUAL(a->settings.max_value_bytes, b->settings.max_value_bytes);
		CU_ASSERT_EQUAL(a->settings.session_timeout_ms, b->settings.session_timeout_ms);
		CU_ASSERT_EQUAL(a->settings.max_sessions, b->settings.max_sessions);
	} else {
		CU_ASSERT_EQUAL(b->settings.max_value_bytes, 0);
		CU_ASSERT_EQUAL(b->settings.max_sessions, 0);
	}
}

static void test_every_op_survives_a_round_trip(void)
{
	for (int op = 1; op < KV_OP_COUNT; op++) {
		struct kv_cmd c = full_cmd(op), d;
		void *buf = NULL;
		size_t len = 0;

		CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
		CU_ASSERT_EQUAL(len, kv_cmd_encoded_size(&c));
		CU_ASSERT_EQUAL(kv_cmd_decode(buf, len, &d), KV_OK);
		check_same(&c, &d);
		CU_ASSERT_STRING_NOT_EQUAL(kv_op_name(op), "unknown");
		raft_buf_unref(buf);
	}
}

/* Settings: the header, then u64 max_value_bytes u64 session_timeout_ms u32 max_sessions. */
static void test_settings_are_encoded_as_documented(void)
{
	struct kv_cmd c = full_cmd(KV_OP_SETTINGS);
	unsigned char *buf;
	void *p;
	size_t len;

	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &p, &len), KV_OK);
	buf = p;
	CU_ASSERT_EQUAL_FATAL(len, HEADER_BYTES + 20);
	CU_ASSERT_EQUAL(buf[1], KV_OP_SETTINGS);
	CU_ASSERT_EQUAL(buf[HEADER_BYTES], 0x08);
	CU_ASSERT_EQUAL(buf[HEADER_BYTES + 7], 0x01);
	CU_ASSERT_EQUAL(buf[HEADER_BYTES + 8], 0x18);
	CU_ASSERT_EQUAL(buf[HEADER_BYTES + 15], 0x11);
	CU_ASSERT_EQUAL(buf[HEADER_BYTES + 16], 0x24);
	CU_ASSERT_EQUAL(buf[HEADER_BYTES + 19], 0x21);
	CU_ASSERT_STRING_EQUAL(kv_op_name(KV_OP_SETTINGS), "settings");
	CU_ASSERT_FALSE(kv_op_is_read(KV_OP_SETTINGS));
	raft_buf_unref(p);
}

static void test_empty_key_and_data_survive_a_round_trip(void)
{
	struct kv_cmd c = full_cmd(KV_OP_PUT), d;
	void *buf;
	size_t len;

	c.key_len = 0;
	c.data_len = 0;
	c.data = NULL;
	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
	CU_ASSERT_EQUAL(kv_cmd_decode(buf, len, &d), KV_OK);
	CU_ASSERT_EQUAL(d.key_len, 0);
	CU_ASSERT_EQUAL(d.data_len, 0);
	raft_buf_unref(buf);
}

static void test_truncated_command_is_refused_at_every_length(void)
{
	for (int op = 1; op < KV_OP_COUNT; op++) {
		struct kv_cmd c = full_cmd(op), d;
		void *buf;
		size_t len;

		CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
		for (size_t n = 0; n < len; n++) {
			/* a copy of exactly n bytes, so ASan sees any read past it */
			unsigned char *cut = malloc(n ? n : 1);
			memcpy(cut, buf, n);
			CU_ASSERT_EQUAL(kv_cmd_decode(cut, n, &d), KV_ECORRUPT);
			free(cut);
		}
		raft_buf_unref(buf);
	}
}

static void test_trailing_bytes_are_refused(void)
{
	struct kv_cmd c = full_cmd(KV_OP_APPEND), d;
	unsigned char *longer;
	void *buf;
	size_t len;

	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
	longer = malloc(len + 1);
	memcpy(longer, buf, len);
	longer[len] = 0;
	CU_ASSERT_EQUAL(kv_cmd_decode(longer, len + 1, &d), KV_ECORRUPT);
	free(longer);
	raft_buf_unref(buf);
}

static void test_unknown_version_is_refused(void)
{
	struct kv_cmd c = full_cmd(KV_OP_GET), d;
	unsigned char *p;
	size_t len;
	void *buf;

	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
	p = buf;
	p[0] = KV_CMD_VERSION + 1;
	CU_ASSERT_EQUAL(kv_cmd_decode(buf, len, &d), KV_EVERSION);
	p[0] = 0;
	CU_ASSERT_EQUAL(kv_cmd_decode(buf, len, &d), KV_EVERSION);
	raft_buf_unref(buf);
}

static void test_set_time_rewrites_time_ms_and_nothing_else(void)
{
	for (int op = KV_OP_PUT; op < KV_OP_COUNT; op++) {
		struct kv_cmd c = full_cmd(op), d;
		size_t len;
		void *buf;

		CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
		CU_ASSERT_EQUAL(kv_cmd_set_time(buf, len, 1800000000456ULL), KV_OK);
		CU_ASSERT_EQUAL_FATAL(kv_cmd_decode(buf, len, &d), KV_OK);
		CU_ASSERT_EQUAL(d.time_ms, 1800000000456ULL);
		c.time_ms = d.time_ms;
		check_same(&c, &d);
		raft_buf_unref(buf);
	}
}

static void test_set_time_refuses_a_short_or_unknown_command_and_leaves_it(void)
{
	struct kv_cmd c = full_cmd(KV_OP_PUT);
	unsigned char *p;
	size_t len;
	void *buf;

	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
	p = buf;
	CU_ASSERT_EQUAL(kv_cmd_set_time(buf, HEADER_BYTES - 1, 7), KV_ECORRUPT);
	p[0] = KV_CMD_VERSION + 1;
	CU_ASSERT_EQUAL(kv_cmd_set_time(buf, len, 7), KV_EVERSION);
	p[0] = KV_CMD_VERSION;
	CU_ASSERT_EQUAL(p[KV_CMD_TIME_OFFSET], 1700000000123ULL & 0xff); /* untouched */
	raft_buf_unref(buf);
}

static void test_set_caller_rewrites_uid_and_gid_and_nothing_else(void)
{
	for (int op = KV_OP_PUT; op < KV_OP_COUNT; op++) {
		struct kv_cmd c = full_cmd(op), d;
		size_t len;
		void *buf;

		CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
		CU_ASSERT_EQUAL(kv_cmd_set_caller(buf, len, 4242, 0xfffffffeu), KV_OK);
		CU_ASSERT_EQUAL_FATAL(kv_cmd_decode(buf, len, &d), KV_OK);
		CU_ASSERT_EQUAL(d.uid, 4242);
		CU_ASSERT_EQUAL(d.gid, 0xfffffffeu);
		c.uid = d.uid;
		c.gid = d.gid;
		check_same(&c, &d);
		raft_buf_unref(buf);
	}
}

static void test_set_caller_refuses_a_short_or_unknown_command_and_leaves_it(void)
{
	struct kv_cmd c = full_cmd(KV_OP_PUT), d;
	unsigned char *p;
	size_t len;
	void *buf;

	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
	p = buf;
	CU_ASSERT_EQUAL(kv_cmd_set_caller(buf, HEADER_BYTES - 1, 7, 7), KV_ECORRUPT);
	p[0] = KV_CMD_VERSION + 1;
	CU_ASSERT_EQUAL(kv_cmd_set_caller(buf, len, 7, 7), KV_EVERSION);
	p[0] = KV_CMD_VERSION;
	CU_ASSERT_EQUAL_FATAL(kv_cmd_decode(buf, len, &d), KV_OK);
	check_same(&c, &d); /* untouched */
	raft_buf_unref(buf);
}

static void test_unknown_op_is_refused(void)
{
	static const uint8_t bad[] = {0, KV_OP_COUNT, 200, 255};
	struct kv_cmd c = full_cmd(KV_OP_OPEN_SESSION), d;
	unsigned char *p;
	size_t len;
	void *buf;

	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
	p = buf;
	for (size_t i = 0; i < sizeof(bad); i++) {
		p[1] = bad[i];
		CU_ASSERT_EQUAL(kv_cmd_decode(buf, len, &d), KV_ECORRUPT);
		CU_ASSERT_STRING_EQUAL(kv_op_name(bad[i]), "unknown");
		CU_ASSERT_EQUAL(kv_op_fields(bad[i]), 0);
	}
	raft_buf_unref(buf);
	c.op = 0;
	CU_ASSERT_EQUAL(kv_cmd_encode(&c, &buf, &len), KV_EINVAL);
	CU_ASSERT_EQUAL(kv_cmd_encoded_size(&c), 0);
}

static void test_key_length_over_the_limit_is_refused(void)
{
	struct kv_cmd c = full_cmd(KV_OP_GET), d;
	unsigned char *p;
	size_t len;
	void *buf;

	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
	p = buf;
	p[HEADER_BYTES] = (KV_MAX_KEY_BYTES + 1) & 0xff;
	p[HEADER_BYTES + 1] = (KV_MAX_KEY_BYTES + 1) >> 8;
	CU_ASSERT_EQUAL(kv_cmd_decode(buf, len, &d), KV_ECORRUPT);
	/* a length within the limit but past the end of the input */
	p[HEADER_BYTES] = 0xff;
	p[HEADER_BYTES + 1] = 0x0f;
	CU_ASSERT_EQUAL(kv_cmd_decode(buf, len, &d), KV_ECORRUPT);
	raft_buf_unref(buf);
}

static void test_data_length_over_the_limit_is_refused(void)
{
	struct kv_cmd c = full_cmd(KV_OP_PUT), d;
	size_t off = HEADER_BYTES + 2 + c.key_len;
	uint32_t big = KV_VALUE_BYTES_LIMIT + 1;
	unsigned char *p;
	size_t len;
	void *buf;

	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
	p = buf;
	for (unsigned i = 0; i < 4; i++)
		p[off + i] = (unsigned char)(big >> (8 * i));
	CU_ASSERT_EQUAL(kv_cmd_decode(buf, len, &d), KV_ECORRUPT);
	p[off] = 0xff; /* data_len - 1 + 256: past the input */
	p[off + 1] = 0x01;
	p[off + 2] = p[off + 3] = 0;
	CU_ASSERT_EQUAL(kv_cmd_decode(buf, len, &d), KV_ECORRUPT);
	raft_buf_unref(buf);
}

static void test_read_count_over_the_limit_is_refused(void)
{
	struct kv_cmd c = full_cmd(KV_OP_READ), d;
	uint32_t big = KV_VALUE_BYTES_LIMIT + 1;
	unsigned char *p;
	size_t len;
	void *buf = NULL;

	c.count = big; /* the encoder refuses it */
	CU_ASSERT_EQUAL(kv_cmd_encode(&c, &buf, &len), KV_EFBIG);
	CU_ASSERT_PTR_NULL(buf);
	c.count = KV_VALUE_BYTES_LIMIT; /* the limit itself is fine */
	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
	CU_ASSERT_EQUAL(kv_cmd_decode(buf, len, &d), KV_OK);
	CU_ASSERT_EQUAL(d.count, KV_VALUE_BYTES_LIMIT);
	p = buf; /* the count is the last field: one over the limit does not decode */
	for (unsigned i = 0; i < 4; i++)
		p[len - 4 + i] = (unsigned char)(big >> (8 * i));
	CU_ASSERT_EQUAL(kv_cmd_decode(buf, len, &d), KV_ECORRUPT);
	raft_buf_unref(buf);
}

static void test_encoder_refuses_oversized_fields(void)
{
	static char key[KV_MAX_KEY_BYTES + 1];
	struct kv_cmd c = full_cmd(KV_OP_PUT);
	void *buf = NULL;
	size_t len;

	memset(key, 'k', sizeof(key));
	c.key = key;
	c.key_len = sizeof(key);
	CU_ASSERT_EQUAL(kv_cmd_encode(&c, &buf, &len), KV_ENAMETOOLONG);
	c = full_cmd(KV_OP_RENAME);
	c.key2 = key;
	c.key2_len = sizeof(key);
	CU_ASSERT_EQUAL(kv_cmd_encode(&c, &buf, &len), KV_ENAMETOOLONG);
	c = full_cmd(KV_OP_PUT);
	c.data_len = (size_t)KV_VALUE_BYTES_LIMIT + 1; /* refused before data is read */
	CU_ASSERT_EQUAL(kv_cmd_encode(&c, &buf, &len), KV_EFBIG);
	CU_ASSERT_PTR_NULL(buf);
}

static void test_every_error_has_a_distinct_message(void)
{
	for (int i = 0; i < KV_ERR_COUNT; i++) {
		CU_ASSERT_PTR_NOT_NULL_FATAL(kv_strerror(i));
		CU_ASSERT_STRING_NOT_EQUAL(kv_strerror(i), "unknown error");
		for (int j = 0; j < i; j++)
			CU_ASSERT_STRING_NOT_EQUAL(kv_strerror(i), kv_strerror(j));
	}
	CU_ASSERT_STRING_EQUAL(kv_strerror(-1), "unknown error");
	CU_ASSERT_STRING_EQUAL(kv_strerror(KV_ERR_COUNT), "unknown error");
}

/* --- results -------------------------------------------------------------------------------- */

static void full_result(struct kv_result *r)
{
	static const char *names[] = {"alpha", "b", "zeta-long-name"};

	memset(r, 0, sizeof(*r));
	r->status = KV_EEXIST;
	r->op = KV_OP_READDIR;
	r->exists = true;
	r->has_attr = true;
	r->session = 99;
	r->attr.ino = 5;
	r->attr.mode = KV_MODE_DIR | 0755;
	r->attr.uid = 1;
	r->attr.gid = 2;
	r->attr.nlink = 3;
	r->attr.size = 4;
	r->attr.mtime_ns = 6;
	r->attr.ctime_ns = 7;
	r->value = raft_buf_alloc(3);
	memcpy(r->value, "abc", 3);
	r->value_len = 3;
	r->n_ents = 3;
	r->ents = calloc(3, sizeof(*r->ents));
	for (size_t i = 0; i < 3; i++) {
		r->ents[i].ino = 10 + i;
		r->ents[i].mode = KV_MODE_REG | 0644;
		r->ents[i].name = names[i];
		r->ents[i].name_len = (uint8_t)strlen(names[i]);
	}
}

static void test_result_survives_a_round_trip(void)
{
	struct kv_result r, d;
	void *buf;
	size_t len;

	full_result(&r);
	CU_ASSERT_EQUAL_FATAL(kv_result_encode(&r, &buf, &len), KV_OK);
	CU_ASSERT_EQUAL(len, kv_result_encoded_size(&r));
	CU_ASSERT_EQUAL_FATAL(kv_result_decode(buf, len, &d), KV_OK);
	CU_ASSERT_EQUAL(d.status, r.status);
	CU_ASSERT_EQUAL(d.op, r.op);
	CU_ASSERT(d.exists && d.has_attr && !d.replayed);
	CU_ASSERT_EQUAL(d.session, 99);
	CU_ASSERT(memcmp(&d.attr, &r.attr, sizeof(d.attr)) == 0);
	CU_ASSERT_EQUAL_FATAL(d.value_len, 3);
	CU_ASSERT(memcmp(d.value, "abc", 3) == 0);
	CU_ASSERT_EQUAL_FATAL(d.n_ents, 3);
	for (size_t i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(d.ents[i].ino, r.ents[i].ino);
		CU_ASSERT_EQUAL(d.ents[i].mode, r.ents[i].mode);
		CU_ASSERT_EQUAL_FATAL(d.ents[i].name_len, r.ents[i].name_len);
		CU_ASSERT(memcmp(d.ents[i].name, r.ents[i].name, d.ents[i].name_len) == 0);
	}
	kv_result_release(&d);
	raft_buf_unref(buf);
	/* the names are the caller's in full_result: only free what it allocated */
	free(r.ents);
	r.ents = NULL;
	kv_result_release(&r);
}

static void test_empty_result_survives_a_round_trip(void)
{
	struct kv_result r, d;
	unsigned char small[64];
	size_t len;

	memset(&r, 0, sizeof(r));
	r.op = KV_OP_DELETE;
	r.status = KV_ENOENT;
	CU_ASSERT_EQUAL_FATAL(kv_result_encode_to(&r, small, sizeof(small), &len), KV_OK);
	CU_ASSERT_EQUAL_FATAL(kv_result_decode(small, len, &d), KV_OK);
	CU_ASSERT_EQUAL(d.status, KV_ENOENT);
	CU_ASSERT_EQUAL(d.op, KV_OP_DELETE);
	CU_ASSERT(!d.has_attr && !d.exists && d.value == NULL && d.n_ents == 0);
	kv_result_release(&d);
	CU_ASSERT_EQUAL(kv_result_encode_to(&r, small, 4, &len), KV_EFBIG);
}

static void test_truncated_result_is_refused_at_every_length(void)
{
	struct kv_result r, d;
	void *buf;
	size_t len;

	full_result(&r);
	CU_ASSERT_EQUAL_FATAL(kv_result_encode(&r, &buf, &len), KV_OK);
	for (size_t n = 0; n < len; n++) {
		unsigned char *cut = malloc(n ? n : 1);
		memcpy(cut, buf, n);
		CU_ASSERT_EQUAL(kv_result_decode(cut, n, &d), KV_ECORRUPT);
		CU_ASSERT_PTR_NULL(d.value);
		CU_ASSERT_PTR_NULL(d.ents);
		free(cut);
	}
	raft_buf_unref(buf);
	free(r.ents);
	r.ents = NULL;
	kv_result_release(&r);
}

static void test_malformed_result_fields_are_refused(void)
{
	struct kv_result r, d;
	unsigned char *p;
	void *buf;
	size_t len;

	full_result(&r);
	CU_ASSERT_EQUAL_FATAL(kv_result_encode(&r, &buf, &len), KV_OK);
	p = buf;
	p[0] = KV_RESULT_VERSION + 1;
	CU_ASSERT_EQUAL(kv_result_decode(buf, len, &d), KV_EVERSION);
	p[0] = KV_RESULT_VERSION;
	p[2] = KV_ERR_COUNT; /* status out of range */
	CU_ASSERT_EQUAL(kv_result_decode(buf, len, &d), KV_ECORRUPT);
	p[2] = KV_EEXIST;
	p[4] |= 0x80; /* unknown flag */
	CU_ASSERT_EQUAL(kv_result_decode(buf, len, &d), KV_ECORRUPT);
	p[4] &= 0x7f;
	/* entry count (after header 13, attr 48, value 4+3) far past the input */
	p[13 + 48 + 4 + 3 + 3] = 0x10;
	CU_ASSERT_EQUAL(kv_result_decode(buf, len, &d), KV_ECORRUPT);
	p[13 + 48 + 4 + 3 + 3] = 0;
	CU_ASSERT_EQUAL(kv_result_decode(buf, len, &d), KV_OK);
	kv_result_release(&d);
	raft_buf_unref(buf);
	free(r.ents);
	r.ents = NULL;
	kv_result_release(&r);
}

static CU_TestInfo cmd_tests[] = {
        {"every_op_survives_a_round_trip", test_every_op_survives_a_round_trip},
        {"settings_are_encoded_as_documented", test_settings_are_encoded_as_documented},
        {"empty_key_and_data_survive_a_round_trip", test_empty_key_and_data_survive_a_round_trip},
        {"truncated_command_is_refused_at_every_length",
         test_truncated_command_is_refused_at_every_length},
        {"trailing_bytes_are_refused", test_trailing_bytes_are_refused},
        {"unknown_version_is_refused", test_unknown_version_is_refused},
        {"unknown_op_is_refused", test_unknown_op_is_refused},
        {"set_time_rewrites_time_ms_and_nothing_else",
         test_set_time_rewrites_time_ms_and_nothing_else},
        {"set_time_refuses_a_short_or_unknown_command_and_leaves_it",
         test_set_time_refuses_a_short_or_unknown_command_and_leaves_it},
        {"set_caller_rewrites_uid_and_gid_and_nothing_else",
         test_set_caller_rewrites_uid_and_gid_and_nothing_else},
        {"set_caller_refuses_a_short_or_unknown_command_and_leaves_it",
         test_set_caller_refuses_a_short_or_unknown_command_and_leaves_it},
        {"key_length_over_the_limit_is_refused", test_key_length_over_the_limit_is_refused},
        {"data_length_over_the_limit_is_refused", test_data_length_over_the_limit_is_refused},
        {"encoder_refuses_oversized_fields", test_encoder_refuses_oversized_fields},
        {"read_count_over_the_limit_is_refused", test_read_count_over_the_limit_is_refused},
        {"every_error_has_a_distinct_message", test_every_error_has_a_distinct_message},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo result_tests[] = {
        {"result_survives_a_round_trip", test_result_survives_a_round_trip},
        {"empty_result_survives_a_round_trip", test_empty_result_survives_a_round_trip},
        {"truncated_result_is_refused_at_every_length",
         test_truncated_result_is_refused_at_every_length},
        {"malformed_result_fields_are_refused", test_malformed_result_fields_are_refused},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"kv_cmd", NULL, NULL, NULL, NULL, cmd_tests},
        {"kv_result", NULL, NULL, NULL, NULL, result_tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	return cu_main(argc, argv, suites);
}
