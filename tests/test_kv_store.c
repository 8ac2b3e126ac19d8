/* test_kv_store.c - the kv state machine: every operation, sessions, and determinism. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/store.h"
#include "kv/store_internal.h"
#include "raft/raft.h"
#include "tests/lib/cu.h"
#include "tests/lib/flood.h"
#include "tests/lib/samples.h"

#define UID SAMPLES_UID
#define GID SAMPLES_GID
#define T0 1700000000000ULL

static struct kv_store *st;
static uint64_t next_index;
static uint64_t now_ms;

static int setup(void)
{
	next_index = 1;
	now_ms = T0;
	return kv_store_new(NULL, &st) == KV_OK ? 0 : 1;
}

static int teardown(void)
{
	kv_store_free(st);
	st = NULL;
	return 0;
}

static struct kv_cmd mk(int op, const char *key)
{
	return samples_kv_cmd(op, key, now_ms);
}

/* Encodes, applies at the next index, returns the status; *r (may be NULL) gets the result. */
static int run_on(struct kv_store *s, const struct kv_cmd *c, struct kv_result *r)
{
	return samples_kv_apply(s, next_index++, c, r);
}

static int run(const struct kv_cmd *c, struct kv_result *r)
{
	return run_on(st, c, r);
}

static int with_data(int op, const char *key, const char *data)
{
	struct kv_cmd c = mk(op, key);

	c.data = data;
	c.data_len = strlen(data);
	return run(&c, NULL);
}

static int put(const char *key, const char *v)
{
	return with_data(KV_OP_PUT, key, v);
}

static int append(const char *key, const char *v)
{
	return with_data(KV_OP_APPEND, key, v);
}

static int simple(int op, const char *key)
{
	struct kv_cmd c = mk(op, key);

	return run(&c, NULL);
}

static int rename_kv(const char *from, const char *to, uint32_t flags)
{
	struct kv_cmd c = mk(KV_OP_RENAME, from);

	c.key2 = to;
	c.key2_len = strlen(to);
	c.flags = flags;
	return run(&c, NULL);
}

/* The value of key as a NUL-terminated string (static buffer), "<missing>" or "<error>". */
static const char *get(const char *key)
{
	static char out[4096];
	void *v;
	size_t len;
	bool exists;

	if (kv_store_get(st, key, strlen(key), &v, &len, &exists, NULL) != KV_OK)
		return "<error>";
	if (!exists)
		return "<missing>";
	CU_ASSERT_FATAL(len < sizeof(out));
	memcpy(out, v ? v : "", len);
	out[len] = '\0';
	raft_buf_unref(v);
	return out;
}

static struct kv_attr attr_of(const char *key)
{
	struct kv_attr a;

	memset(&a, 0, sizeof(a));
	CU_ASSERT_EQUAL(kv_store_getattr(st, key, strlen(key), &a), KV_OK);
	return a;
}

static bool exists(const char *key)
{
	return kv_store_exists(st, key, strlen(key));
}

/* --- namespace ------------------------------------------------------------------------------ */

static void test_put_then_get_returns_the_value(void)
{
	struct kv_attr a;

	CU_ASSERT_EQUAL(put("k", "hello"), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("k"), "hello");
	CU_ASSERT_EQUAL(put("k", "bye"), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("k"), "bye");
	a = attr_of("k");
	CU_ASSERT_EQUAL(a.size, 3);
	CU_ASSERT_EQUAL(a.mode, KV_MODE_REG | 0644);
	CU_ASSERT_EQUAL(a.uid, UID);
	CU_ASSERT_EQUAL(a.gid, GID);
	CU_ASSERT_EQUAL(a.nlink, 1);
	CU_ASSERT_EQUAL(a.mtime_ns, T0 * 1000000ULL);
	CU_ASSERT_EQUAL(put("k", ""), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("k"), "");
	CU_ASSERT_EQUAL(attr_of("k").size, 0);
}

static void test_get_of_a_missing_key_returns_empty_and_not_exists(void)
{
	struct kv_cmd c = mk(KV_OP_GET, "nope");
	struct kv_result r;
	struct kv_attr a;

	CU_ASSERT_STRING_EQUAL(get("nope"), "<missing>");
	CU_ASSERT_STRING_EQUAL(get("no/such/dir"), "<missing>");
	CU_ASSERT_FALSE(exists("nope"));
	CU_ASSERT_EQUAL(kv_store_getattr(st, "nope", 4, &a), KV_ENOENT);
	CU_ASSERT_EQUAL(run(&c, &r), KV_OK);
	CU_ASSERT_FALSE(r.exists);
	CU_ASSERT_EQUAL(r.value_len, 0);
	kv_result_release(&r);
}

static void test_get_through_the_log_returns_value_and_attr(void)
{
	struct kv_cmd c = mk(KV_OP_GET, "a/b");
	struct kv_result r;

	CU_ASSERT_EQUAL(put("a/b", "xyz"), KV_OK);
	CU_ASSERT_EQUAL(run(&c, &r), KV_OK);
	CU_ASSERT(r.exists && r.has_attr);
	CU_ASSERT_EQUAL_FATAL(r.value_len, 3);
	CU_ASSERT(memcmp(r.value, "xyz", 3) == 0);
	CU_ASSERT_EQUAL(r.attr.size, 3);
	kv_result_release(&r);
	c = mk(KV_OP_GET, "a");
	CU_ASSERT_EQUAL(run(&c, NULL), KV_EISDIR);
}

/* A Read of offset, count through the log, as a string ("<missing>", "<error N>"); *size the
 * whole value's size it reports. */
static const char *read_at(const char *key, uint64_t off, uint32_t count, uint64_t *size)
{
	static char out[256];
	struct kv_cmd c = mk(KV_OP_READ, key);
	struct kv_result r;
	int rv;

	c.offset = off;
	c.count = count;
	rv = run(&c, &r);
	if (rv != KV_OK) {
		snprintf(out, sizeof(out), "<error %d>", rv);
	} else if (!r.exists) {
		snprintf(out, sizeof(out), "<missing>");
		CU_ASSERT_FALSE(r.has_attr);
	} else {
		CU_ASSERT_FATAL(r.value_len < sizeof(out) && r.value_len <= count);
		memcpy(out, r.value ? r.value : "", r.value_len);
		out[r.value_len] = '\0';
		CU_ASSERT(r.has_attr);
		*size = r.attr.size;
	}
	kv_result_release(&r);
	return out;
}

static void test_read_returns_a_slice_and_the_whole_size(void)
{
	uint64_t size = 0;
	char eisdir[32];

	snprintf(eisdir, sizeof(eisdir), "<error %d>", KV_EISDIR);
	CU_ASSERT_EQUAL(put("r", "0123456789"), KV_OK);
	CU_ASSERT_STRING_EQUAL(read_at("r", 0, 4, &size), "0123");
	CU_ASSERT_EQUAL(size, 10);
	CU_ASSERT_STRING_EQUAL(read_at("r", 3, 4, &size), "3456");
	CU_ASSERT_STRING_EQUAL(read_at("r", 8, 100, &size), "89"); /* clamped at the end */
	CU_ASSERT_STRING_EQUAL(read_at("r", 10, 100, &size), ""); /* at the end: empty */
	CU_ASSERT_STRING_EQUAL(read_at("r", UINT64_MAX, 100, &size), ""); /* far past it */
	CU_ASSERT_STRING_EQUAL(read_at("r", 2, 0, &size), "");
	CU_ASSERT_EQUAL(size, 10);
	CU_ASSERT_STRING_EQUAL(read_at("nope", 0, 10, &size), "<missing>");
	CU_ASSERT_EQUAL(simple(KV_OP_MKDIR, "dir"), KV_OK);
	CU_ASSERT_STRING_EQUAL(read_at("dir", 0, 10, &size), eisdir);
}

static void test_put_creates_missing_parent_directories(void)
{
	struct kv_attr a;

	CU_ASSERT_EQUAL(put("a/b/c", "v"), KV_OK);
	a = attr_of("a");
	CU_ASSERT_EQUAL(a.mode, KV_MODE_DIR | 0755);
	CU_ASSERT_EQUAL(a.uid, UID);
	CU_ASSERT_EQUAL(a.gid, GID);
	CU_ASSERT_EQUAL(a.nlink, 3);
	CU_ASSERT_EQUAL(attr_of("a/b").mode, KV_MODE_DIR | 0755);
	CU_ASSERT_STRING_EQUAL(get("a/b/c"), "v");
	CU_ASSERT_EQUAL(attr_of("").nlink, 3);
	CU_ASSERT_EQUAL(kv_store_key_count(st), 4);
}

static void test_key_under_a_file_is_enotdir(void)
{
	CU_ASSERT_EQUAL(put("f", "x"), KV_OK);
	CU_ASSERT_EQUAL(put("f/g", "y"), KV_ENOTDIR);
	CU_ASSERT_EQUAL(simple(KV_OP_MKDIR, "f/d"), KV_ENOTDIR);
	CU_ASSERT_STRING_EQUAL(get("f/g"), "<error>");
	CU_ASSERT_EQUAL(kv_store_key_count(st), 2);
}

static void test_invalid_keys_are_refused(void)
{
	static const char *const einval[] = {"/a", "a/",    "a//b",   ".",
	                                     "..", "a/./b", "a/../b", "a/."};
	char name[300], key[KV_MAX_KEY_BYTES + 10];
	struct kv_cmd c = mk(KV_OP_PUT, NULL);

	for (size_t i = 0; i < sizeof(einval) / sizeof(einval[0]); i++)
		CU_ASSERT_EQUAL(put(einval[i], "v"), KV_EINVAL);
	c.key = "a\0b";
	c.key_len = 3;
	CU_ASSERT_EQUAL(run(&c, NULL), KV_EINVAL);
	memset(name, 'n', sizeof(name));
	name[256] = '\0';
	CU_ASSERT_EQUAL(put(name, "v"), KV_ENAMETOOLONG);
	name[255] = '\0';
	CU_ASSERT_EQUAL(put(name, "v"), KV_OK);
	/* 4096 bytes in all is fine, 4097 is not */
	for (size_t i = 0; i < KV_MAX_KEY_BYTES; i += 2) {
		key[i] = 'd';
		key[i + 1] = '/';
	}
	key[KV_MAX_KEY_BYTES - 1] = 'x';
	c.key = key;
	c.key_len = KV_MAX_KEY_BYTES;
	CU_ASSERT_EQUAL(run(&c, NULL), KV_OK);
	CU_ASSERT_EQUAL(kv_key_check(key, KV_MAX_KEY_BYTES + 1), KV_ENAMETOOLONG);
	CU_ASSERT_EQUAL(kv_key_check("", 0), KV_OK);
	CU_ASSERT_EQUAL(put("", "v"), KV_EISDIR);
}

static void test_append_to_a_missing_key_acts_like_put(void)
{
	CU_ASSERT_EQUAL(append("log/app", "one"), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("log/app"), "one");
	CU_ASSERT_EQUAL(append("log/app", "+two"), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("log/app"), "one+two");
	CU_ASSERT_EQUAL(append("log/app", ""), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("log/app"), "one+two");
	CU_ASSERT_EQUAL(append("log", "x"), KV_EISDIR);
}

static void test_create_exclusive_refuses_an_existing_key(void)
{
	CU_ASSERT_EQUAL(with_data(KV_OP_CREATE_EXCLUSIVE, "d/lock", "pid"), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("d/lock"), "pid");
	CU_ASSERT_EQUAL(with_data(KV_OP_CREATE_EXCLUSIVE, "d/lock", "other"), KV_EEXIST);
	CU_ASSERT_STRING_EQUAL(get("d/lock"), "pid");
	CU_ASSERT_EQUAL(with_data(KV_OP_CREATE_EXCLUSIVE, "d", ""), KV_EEXIST);
}

static int write_at(const char *key, uint64_t off, const char *data)
{
	struct kv_cmd c = mk(KV_OP_WRITE_AT, key);

	c.offset = off;
	c.data = data;
	c.data_len = strlen(data);
	return run(&c, NULL);
}

static int truncate_kv(const char *key, uint64_t size)
{
	struct kv_cmd c = mk(KV_OP_TRUNCATE, key);

	c.offset = size;
	return run(&c, NULL);
}

static void test_write_at_overwrites_inside_and_zero_fills_past_the_end(void)
{
	void *v;
	size_t len;
	bool ex;

	CU_ASSERT_EQUAL(put("f", "abcdef"), KV_OK);
	CU_ASSERT_EQUAL(write_at("f", 2, "XY"), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("f"), "abXYef");
	CU_ASSERT_EQUAL(write_at("f", 4, "1234"), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("f"), "abXY1234");
	CU_ASSERT_EQUAL(write_at("f", 10, "Z"), KV_OK);
	CU_ASSERT_EQUAL_FATAL(kv_store_get(st, "f", 1, &v, &len, &ex, NULL), KV_OK);
	CU_ASSERT_EQUAL_FATAL(len, 11);
	CU_ASSERT(memcmp(v, "abXY1234\0\0Z", 11) == 0);
	raft_buf_unref(v);
	/* on a missing key: created, zeros before the offset */
	CU_ASSERT_EQUAL(write_at("new/g", 3, "q"), KV_OK);
	CU_ASSERT_EQUAL_FATAL(kv_store_get(st, "new/g", 5, &v, &len, &ex, NULL), KV_OK);
	CU_ASSERT_EQUAL_FATAL(len, 4);
	CU_ASSERT(memcmp(v, "\0\0\0q", 4) == 0);
	raft_buf_unref(v);
}

static void test_truncate_grows_with_zeros_and_shrinks(void)
{
	void *v;
	size_t len;
	bool ex;

	CU_ASSERT_EQUAL(put("f", "abcdef"), KV_OK);
	CU_ASSERT_EQUAL(truncate_kv("f", 3), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("f"), "abc");
	CU_ASSERT_EQUAL(truncate_kv("f", 5), KV_OK);
	CU_ASSERT_EQUAL_FATAL(kv_store_get(st, "f", 1, &v, &len, &ex, NULL), KV_OK);
	CU_ASSERT_EQUAL_FATAL(len, 5);
	CU_ASSERT(memcmp(v, "abc\0\0", 5) == 0);
	raft_buf_unref(v);
	CU_ASSERT_EQUAL(truncate_kv("f", 0), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("f"), "");
	CU_ASSERT_EQUAL(truncate_kv("missing", 0), KV_ENOENT);
	CU_ASSERT_EQUAL(simple(KV_OP_MKDIR, "d"), KV_OK);
	CU_ASSERT_EQUAL(truncate_kv("d", 0), KV_EISDIR);
}

static void test_values_over_max_value_bytes_are_efbig_and_change_nothing(void)
{
	struct kv_store_config cfg;
	struct kv_store *small;
	struct kv_cmd c;
	char big[17];

	kv_store_config_default(&cfg);
	cfg.settings.max_value_bytes = 16;
	CU_ASSERT_EQUAL_FATAL(kv_store_new(&cfg, &small), KV_OK);
	memset(big, 'b', 16);
	big[16] = '\0';
	c = mk(KV_OP_PUT, "k");
	c.data = big;
	c.data_len = 16;
	CU_ASSERT_EQUAL(run_on(small, &c, NULL), KV_OK);
	c.data_len = 17;
	CU_ASSERT_EQUAL(run_on(small, &c, NULL), KV_EFBIG);
	c = mk(KV_OP_PUT, "new/dir/k");
	c.data = big;
	c.data_len = 17;
	CU_ASSERT_EQUAL(run_on(small, &c, NULL), KV_EFBIG);
	CU_ASSERT_FALSE(kv_store_exists(small, "new", 3)); /* no parent left behind */
	c = mk(KV_OP_APPEND, "k");
	c.data = "x";
	c.data_len = 1;
	CU_ASSERT_EQUAL(run_on(small, &c, NULL), KV_EFBIG);
	c = mk(KV_OP_WRITE_AT, "k");
	c.data = "x";
	c.data_len = 1;
	c.offset = UINT64_MAX;
	CU_ASSERT_EQUAL(run_on(small, &c, NULL), KV_EFBIG);
	c = mk(KV_OP_TRUNCATE, "k");
	c.offset = 17;
	CU_ASSERT_EQUAL(run_on(small, &c, NULL), KV_EFBIG);
	CU_ASSERT_EQUAL(kv_store_key_count(small), 2);
	kv_store_free(small);
}

static void test_delete_removes_a_file_and_refuses_a_directory(void)
{
	CU_ASSERT_EQUAL(put("d/f", "x"), KV_OK);
	CU_ASSERT_EQUAL(simple(KV_OP_DELETE, "d"), KV_EISDIR);
	CU_ASSERT_EQUAL(simple(KV_OP_DELETE, "d/f"), KV_OK);
	CU_ASSERT_FALSE(exists("d/f"));
	CU_ASSERT_TRUE(exists("d"));
	CU_ASSERT_EQUAL(simple(KV_OP_DELETE, "d/f"), KV_ENOENT);
	CU_ASSERT_EQUAL(simple(KV_OP_DELETE, ""), KV_EISDIR);
}

static void test_mkdir_needs_a_parent_and_a_free_name(void)
{
	struct kv_cmd c = mk(KV_OP_MKDIR, "d");

	c.mode = 0700;
	CU_ASSERT_EQUAL(run(&c, NULL), KV_OK);
	CU_ASSERT_EQUAL(attr_of("d").mode, KV_MODE_DIR | 0700);
	CU_ASSERT_EQUAL(simple(KV_OP_MKDIR, "d"), KV_EEXIST);
	CU_ASSERT_EQUAL(simple(KV_OP_MKDIR, "x/y"), KV_ENOENT);
	CU_ASSERT_FALSE(exists("x"));
	CU_ASSERT_EQUAL(simple(KV_OP_MKDIR, "d/e"), KV_OK);
	CU_ASSERT_EQUAL(simple(KV_OP_MKDIR, ""), KV_EEXIST);
}

static void test_rmdir_refuses_a_non_empty_directory(void)
{
	CU_ASSERT_EQUAL(put("d/f", "x"), KV_OK);
	CU_ASSERT_EQUAL(simple(KV_OP_RMDIR, "d"), KV_ENOTEMPTY);
	CU_ASSERT_EQUAL(simple(KV_OP_RMDIR, "d/f"), KV_ENOTDIR);
	CU_ASSERT_EQUAL(simple(KV_OP_DELETE, "d/f"), KV_OK);
	CU_ASSERT_EQUAL(simple(KV_OP_RMDIR, "d"), KV_OK);
	CU_ASSERT_FALSE(exists("d"));
	CU_ASSERT_EQUAL(simple(KV_OP_RMDIR, "d"), KV_ENOENT);
	CU_ASSERT_EQUAL(simple(KV_OP_RMDIR, ""), KV_EINVAL);
	CU_ASSERT_EQUAL(attr_of("").nlink, 2);
}

static void test_rename_over_an_existing_file_replaces_it(void)
{
	uint64_t ino;

	CU_ASSERT_EQUAL(put("a", "new"), KV_OK);
	CU_ASSERT_EQUAL(put("b", "old"), KV_OK);
	ino = attr_of("a").ino;
	CU_ASSERT_EQUAL(rename_kv("a", "b", 0), KV_OK);
	CU_ASSERT_FALSE(exists("a"));
	CU_ASSERT_STRING_EQUAL(get("b"), "new");
	CU_ASSERT_EQUAL(attr_of("b").ino, ino);
	CU_ASSERT_EQUAL(kv_store_key_count(st), 2);
}

static void test_rename_noreplace_refuses_an_existing_destination(void)
{
	CU_ASSERT_EQUAL(put("a", "1"), KV_OK);
	CU_ASSERT_EQUAL(put("b", "2"), KV_OK);
	CU_ASSERT_EQUAL(rename_kv("a", "b", KV_RENAME_NOREPLACE), KV_EEXIST);
	CU_ASSERT_STRING_EQUAL(get("a"), "1");
	CU_ASSERT_STRING_EQUAL(get("b"), "2");
	CU_ASSERT_EQUAL(rename_kv("a", "c", KV_RENAME_NOREPLACE), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("c"), "1");
	CU_ASSERT_EQUAL(rename_kv("c", "d", 0x80), KV_EINVAL);
}

static void test_rename_of_a_directory_moves_its_children(void)
{
	uint64_t ino_dir, ino_leaf;

	CU_ASSERT_EQUAL(put("src/x/1", "one"), KV_OK);
	CU_ASSERT_EQUAL(put("src/y", "two"), KV_OK);
	CU_ASSERT_EQUAL(simple(KV_OP_MKDIR, "dst"), KV_OK);
	ino_dir = attr_of("src").ino;
	ino_leaf = attr_of("src/x/1").ino;
	CU_ASSERT_EQUAL(rename_kv("src", "dst/moved", 0), KV_OK);
	CU_ASSERT_FALSE(exists("src"));
	CU_ASSERT_FALSE(exists("src/x/1"));
	CU_ASSERT_STRING_EQUAL(get("dst/moved/x/1"), "one");
	CU_ASSERT_STRING_EQUAL(get("dst/moved/y"), "two");
	CU_ASSERT_EQUAL(attr_of("dst/moved").ino, ino_dir);
	CU_ASSERT_EQUAL(attr_of("dst/moved/x/1").ino, ino_leaf);
	CU_ASSERT_EQUAL(attr_of("dst").nlink, 3);
	CU_ASSERT_EQUAL(attr_of("").nlink, 3);
	/* a longer and a shorter name: the node is remade, children follow */
	CU_ASSERT_EQUAL(rename_kv("dst/moved", "dst/a-much-longer-name-than-before", 0), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("dst/a-much-longer-name-than-before/x/1"), "one");
	CU_ASSERT_EQUAL(put("dst/a-much-longer-name-than-before/x/2", "2"), KV_OK);
	CU_ASSERT_EQUAL(rename_kv("dst/a-much-longer-name-than-before", "m", 0), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("m/x/2"), "2");
	CU_ASSERT_EQUAL(attr_of("m/x").size, 2);
	CU_ASSERT_EQUAL(kv_store_key_count(st), 7);
}

static void test_rename_of_a_directory_into_its_own_subtree_is_einval(void)
{
	CU_ASSERT_EQUAL(put("a/b/c", "v"), KV_OK);
	CU_ASSERT_EQUAL(rename_kv("a", "a/b/new", 0), KV_EINVAL);
	CU_ASSERT_EQUAL(rename_kv("a", "a/new", 0), KV_EINVAL);
	CU_ASSERT_EQUAL(rename_kv("a/b", "a/b/c/d", 0), KV_ENOTDIR);
	CU_ASSERT_STRING_EQUAL(get("a/b/c"), "v");
	CU_ASSERT_EQUAL(rename_kv("", "x", 0), KV_EINVAL);
	CU_ASSERT_EQUAL(rename_kv("a", "", 0), KV_EINVAL);
}

static void test_rename_follows_the_type_rules_of_rename2(void)
{
	CU_ASSERT_EQUAL(put("d1/f", "v"), KV_OK);
	CU_ASSERT_EQUAL(simple(KV_OP_MKDIR, "d2"), KV_OK);
	CU_ASSERT_EQUAL(put("file", "v"), KV_OK);
	CU_ASSERT_EQUAL(rename_kv("d2", "d1", 0), KV_ENOTEMPTY);
	CU_ASSERT_EQUAL(rename_kv("file", "d2", 0), KV_EISDIR);
	CU_ASSERT_EQUAL(rename_kv("d2", "file", 0), KV_ENOTDIR);
	CU_ASSERT_EQUAL(rename_kv("missing", "x", 0), KV_ENOENT);
	CU_ASSERT_EQUAL(rename_kv("file", "no/parent", 0), KV_ENOENT);
	CU_ASSERT_EQUAL(rename_kv("file", "file", 0), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("file"), "v");
	/* a directory over an empty directory replaces it */
	CU_ASSERT_EQUAL(rename_kv("d1", "d2", 0), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("d2/f"), "v");
	CU_ASSERT_FALSE(exists("d1"));
	CU_ASSERT_EQUAL(attr_of("").nlink, 3);
}

static int setattr(uint32_t caller, const char *key, uint32_t mask, const struct kv_cmd_attr *a)
{
	struct kv_cmd c = mk(KV_OP_SETATTR, key);

	c.uid = caller;
	c.flags = mask;
	c.attr = *a;
	return run(&c, NULL);
}

static void test_setattr_changes_only_the_masked_fields(void)
{
	struct kv_cmd_attr a = {.mode = 04711, .uid = 5, .gid = 6, .mtime_ns = 11, .ctime_ns = 22};
	struct kv_attr got;

	CU_ASSERT_EQUAL(put("f", "x"), KV_OK);
	CU_ASSERT_EQUAL(setattr(UID, "f", KV_ATTR_MODE | KV_ATTR_MTIME, &a), KV_OK);
	got = attr_of("f");
	CU_ASSERT_EQUAL(got.mode, KV_MODE_REG | 04711);
	CU_ASSERT_EQUAL(got.mtime_ns, 11);
	CU_ASSERT_EQUAL(got.ctime_ns, T0 * 1000000ULL);
	CU_ASSERT_EQUAL(got.uid, UID);
	CU_ASSERT_EQUAL(setattr(0, "f", KV_ATTR_UID | KV_ATTR_GID | KV_ATTR_CTIME, &a), KV_OK);
	got = attr_of("f");
	CU_ASSERT_EQUAL(got.uid, 5);
	CU_ASSERT_EQUAL(got.gid, 6);
	CU_ASSERT_EQUAL(got.ctime_ns, 22);
	CU_ASSERT_EQUAL(setattr(0, "f", 0x100, &a), KV_EINVAL);
	CU_ASSERT_EQUAL(setattr(0, "missing", KV_ATTR_MODE, &a), KV_ENOENT);
	CU_ASSERT_EQUAL(setattr(0, "", KV_ATTR_MODE, &a), KV_OK);
	CU_ASSERT_EQUAL(attr_of("").mode, KV_MODE_DIR | 04711);
}

static void test_setattr_by_a_non_owner_is_eperm(void)
{
	struct kv_cmd_attr a = {.mode = 0777, .uid = 2000, .gid = 7};

	CU_ASSERT_EQUAL(put("f", "x"), KV_OK);
	CU_ASSERT_EQUAL(setattr(2000, "f", KV_ATTR_MODE, &a), KV_EPERM);
	CU_ASSERT_EQUAL(setattr(2000, "f", KV_ATTR_MTIME, &a), KV_EPERM);
	CU_ASSERT_EQUAL(setattr(UID, "f", KV_ATTR_UID, &a), KV_EPERM); /* only root gives away */
	CU_ASSERT_EQUAL(setattr(UID, "f", KV_ATTR_GID, &a), KV_EPERM); /* not the caller's gid */
	a.gid = GID;
	CU_ASSERT_EQUAL(setattr(UID, "f", KV_ATTR_GID, &a), KV_OK);
	a.uid = UID;
	CU_ASSERT_EQUAL(setattr(UID, "f", KV_ATTR_UID, &a), KV_OK); /* no change is fine */
	CU_ASSERT_EQUAL(attr_of("f").mode, KV_MODE_REG | 0644);
}

static void test_touch_needs_write_permission_not_ownership(void)
{
	struct kv_cmd_attr a = {.mode = 0640, .mtime_ns = 77};

	CU_ASSERT_EQUAL(put("f", "x"), KV_OK); /* owner UID, group GID, mode 0644 */
	/* an explicit time still needs the owner; "now" needs write permission */
	CU_ASSERT_EQUAL(setattr(2000, "f", KV_ATTR_MTIME | KV_ATTR_TOUCH, &a), KV_EPERM);
	CU_ASSERT_EQUAL(setattr(UID, "f", KV_ATTR_MODE, &a), KV_OK);
	CU_ASSERT_EQUAL(setattr(UID, "f", KV_ATTR_MTIME | KV_ATTR_TOUCH, &a), KV_OK);
	a.mode = 0666;
	CU_ASSERT_EQUAL(setattr(UID, "f", KV_ATTR_MODE, &a), KV_OK);
	a.mtime_ns = 88;
	CU_ASSERT_EQUAL(setattr(2000, "f", KV_ATTR_MTIME, &a), KV_EPERM);
	CU_ASSERT_EQUAL(setattr(2000, "f", KV_ATTR_MTIME | KV_ATTR_TOUCH, &a), KV_OK);
	CU_ASSERT_EQUAL(attr_of("f").mtime_ns, 88);
	/* it does not open the other attributes to a non-owner */
	CU_ASSERT_EQUAL(setattr(2000, "f", KV_ATTR_MODE | KV_ATTR_MTIME | KV_ATTR_TOUCH, &a),
	                KV_EPERM);
	a.mode = 0444;
	CU_ASSERT_EQUAL(setattr(UID, "f", KV_ATTR_MODE, &a), KV_OK);
	CU_ASSERT_EQUAL(setattr(UID, "f", KV_ATTR_MTIME | KV_ATTR_TOUCH, &a), KV_OK); /* owner */
	CU_ASSERT_EQUAL(setattr(0, "f", KV_ATTR_MTIME | KV_ATTR_TOUCH, &a), KV_OK); /* root */
	CU_ASSERT_EQUAL(setattr(2000, "f", KV_ATTR_MTIME | KV_ATTR_TOUCH, &a), KV_EPERM);
}

static void test_a_write_by_a_non_owner_clears_setuid_and_setgid(void)
{
	struct kv_cmd_attr a = {.mode = 06755};
	struct kv_cmd c = mk(KV_OP_APPEND, "f");

	CU_ASSERT_EQUAL(put("f", "x"), KV_OK);
	CU_ASSERT_EQUAL(setattr(UID, "f", KV_ATTR_MODE, &a), KV_OK);
	CU_ASSERT_EQUAL(append("f", "by owner"), KV_OK);
	CU_ASSERT_EQUAL(attr_of("f").mode, KV_MODE_REG | 06755);
	c.uid = 2000;
	c.data = "y";
	c.data_len = 1;
	CU_ASSERT_EQUAL(run(&c, NULL), KV_OK);
	CU_ASSERT_EQUAL(attr_of("f").mode, KV_MODE_REG | 0755);
}

static void test_symlink_stores_its_target_and_is_never_followed(void)
{
	struct kv_cmd c = mk(KV_OP_SYMLINK, "d/link");
	struct kv_attr a;

	CU_ASSERT_EQUAL(simple(KV_OP_MKDIR, "d"), KV_OK);
	c.data = "../target/file";
	c.data_len = strlen(c.data);
	CU_ASSERT_EQUAL(run(&c, NULL), KV_OK);
	a = attr_of("d/link");
	CU_ASSERT_EQUAL(a.mode, KV_MODE_LNK | 0777);
	CU_ASSERT_EQUAL(a.size, 14);
	CU_ASSERT_STRING_EQUAL(get("d/link"), "../target/file");
	CU_ASSERT_EQUAL(run(&c, NULL), KV_EEXIST);
	CU_ASSERT_EQUAL(put("d/link/x", "v"), KV_ENOTDIR);
	CU_ASSERT_EQUAL(put("d/link", "v"), KV_EINVAL);
	c = mk(KV_OP_SYMLINK, "nodir/link");
	c.data = "t";
	c.data_len = 1;
	CU_ASSERT_EQUAL(run(&c, NULL), KV_ENOENT);
	c = mk(KV_OP_SYMLINK, "empty");
	c.data = "";
	CU_ASSERT_EQUAL(run(&c, NULL), KV_EINVAL);
	CU_ASSERT_EQUAL(simple(KV_OP_DELETE, "d/link"), KV_OK);
}

static void test_readdir_is_sorted_whatever_the_creation_order(void)
{
	static const char *const order[] = {"d/zz", "d/a", "d/m/x", "d/B", "d/aa", "d/\xff"};
	static const char *const sorted[] = {"B", "a", "aa", "m", "zz", "\xff"};
	struct kv_cmd c = mk(KV_OP_READDIR, "d");
	struct kv_result r;

	for (size_t i = 0; i < 6; i++)
		CU_ASSERT_EQUAL(put(order[i], "v"), KV_OK);
	CU_ASSERT_EQUAL_FATAL(kv_store_readdir(st, "d", 1, &r), KV_OK);
	CU_ASSERT_EQUAL_FATAL(r.n_ents, 6);
	for (size_t i = 0; i < 6; i++) {
		CU_ASSERT_EQUAL(r.ents[i].name_len, strlen(sorted[i]));
		CU_ASSERT(memcmp(r.ents[i].name, sorted[i], r.ents[i].name_len) == 0);
	}
	CU_ASSERT_EQUAL(r.ents[3].mode, KV_MODE_DIR | 0755);
	CU_ASSERT_EQUAL(r.ents[3].ino, attr_of("d/m").ino);
	kv_result_release(&r);
	/* the same through the log */
	CU_ASSERT_EQUAL(run(&c, &r), KV_OK);
	CU_ASSERT_EQUAL(r.n_ents, 6);
	kv_result_release(&r);
	CU_ASSERT_EQUAL(kv_store_readdir(st, "d/zz", 4, &r), KV_ENOTDIR);
	kv_result_release(&r);
	CU_ASSERT_EQUAL(kv_store_readdir(st, "none", 4, &r), KV_ENOENT);
	CU_ASSERT_EQUAL(kv_store_readdir(st, "", 0, &r), KV_OK);
	CU_ASSERT_EQUAL(r.n_ents, 1);
	kv_result_release(&r);
}

static void test_inode_numbers_are_unique_and_survive_rename(void)
{
	uint64_t a, b, c;

	CU_ASSERT_EQUAL(attr_of("").ino, 1);
	CU_ASSERT_EQUAL(put("x/a", "1"), KV_OK);
	CU_ASSERT_EQUAL(put("x/b", "2"), KV_OK);
	a = attr_of("x").ino;
	b = attr_of("x/a").ino;
	c = attr_of("x/b").ino;
	CU_ASSERT(a != b && b != c && a != c && a > 1 && b > 1 && c > 1);
	CU_ASSERT_EQUAL(simple(KV_OP_DELETE, "x/a"), KV_OK);
	CU_ASSERT_EQUAL(put("x/a", "again"), KV_OK);
	CU_ASSERT(attr_of("x/a").ino > c); /* never reused */
	CU_ASSERT_EQUAL(rename_kv("x/b", "y", 0), KV_OK);
	CU_ASSERT_EQUAL(attr_of("y").ino, c);
}

static void test_creation_and_removal_touch_the_parent_directory(void)
{
	CU_ASSERT_EQUAL(simple(KV_OP_MKDIR, "d"), KV_OK);
	now_ms += 5000;
	CU_ASSERT_EQUAL(put("d/f", "v"), KV_OK);
	CU_ASSERT_EQUAL(attr_of("d").mtime_ns, now_ms * 1000000ULL);
	now_ms += 5000;
	CU_ASSERT_EQUAL(put("d/f", "w"), KV_OK); /* a write changes the file only */
	CU_ASSERT_EQUAL(attr_of("d").mtime_ns, (now_ms - 5000) * 1000000ULL);
	CU_ASSERT_EQUAL(attr_of("d/f").mtime_ns, now_ms * 1000000ULL);
	now_ms += 5000;
	CU_ASSERT_EQUAL(simple(KV_OP_DELETE, "d/f"), KV_OK);
	CU_ASSERT_EQUAL(attr_of("d").ctime_ns, now_ms * 1000000ULL);
}

static void test_a_malformed_command_is_consumed_with_ecorrupt(void)
{
	static const unsigned char junk[] = {1, 200, 0, 0};
	struct kv_result r;
	uint64_t h = kv_store_hash(st);

	CU_ASSERT_EQUAL(kv_store_apply(st, 5, junk, sizeof(junk), &r), KV_OK);
	CU_ASSERT_EQUAL(r.status, KV_ECORRUPT);
	CU_ASSERT_EQUAL(kv_store_applied_index(st), 5);
	CU_ASSERT_EQUAL(kv_store_hash(st), h);
	CU_ASSERT_EQUAL(kv_store_apply(st, 6, NULL, 0, &r), KV_OK);
	CU_ASSERT_EQUAL(r.status, KV_ECORRUPT);
}

static void test_apply_refuses_an_index_not_above_the_last(void)
{
	struct kv_cmd c = mk(KV_OP_PUT, "k");
	struct kv_result r;
	void *buf;
	size_t len;

	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &buf, &len), KV_OK);
	CU_ASSERT_EQUAL(kv_store_apply(st, 10, buf, len, &r), KV_OK);
	CU_ASSERT_EQUAL(kv_store_apply(st, 10, buf, len, &r), KV_EINVAL);
	CU_ASSERT_EQUAL(kv_store_apply(st, 9, buf, len, &r), KV_EINVAL);
	CU_ASSERT_EQUAL(kv_store_applied_index(st), 10);
	raft_buf_unref(buf);
}

static void test_hash_changes_with_any_value_and_metadata(void)
{
	struct kv_cmd_attr a = {.mode = 0600};
	uint64_t h0, h1, h2, h3;

	CU_ASSERT_EQUAL(put("k", "abc"), KV_OK);
	h0 = kv_store_hash(st);
	CU_ASSERT_EQUAL(kv_store_hash(st), h0);
	CU_ASSERT_EQUAL(put("k", "abd"), KV_OK);
	h1 = kv_store_hash(st);
	CU_ASSERT_EQUAL(setattr(UID, "k", KV_ATTR_MODE | KV_ATTR_CTIME, &a), KV_OK);
	h2 = kv_store_hash(st);
	CU_ASSERT_EQUAL(rename_kv("k", "l", 0), KV_OK);
	h3 = kv_store_hash(st);
	CU_ASSERT(h0 != h1 && h1 != h2 && h2 != h3 && h0 != h3);
}

/* --- sessions ------------------------------------------------------------------------------- */

static uint64_t open_session(void)
{
	struct kv_cmd c = mk(KV_OP_OPEN_SESSION, NULL);
	struct kv_result r;
	uint64_t index = next_index;

	CU_ASSERT_EQUAL(run(&c, &r), KV_OK);
	CU_ASSERT_EQUAL(r.session, index);
	return r.session;
}

static int in_session(uint64_t session, uint64_t seq, int op, const char *key, const char *data,
                      struct kv_result *r)
{
	struct kv_cmd c = mk(op, key);

	c.session = session;
	c.seq = seq;
	c.data = data;
	c.data_len = data ? strlen(data) : 0;
	return run(&c, r);
}

static void test_open_session_returns_the_entry_index_as_its_id(void)
{
	uint64_t a, b;

	next_index = 77;
	a = open_session();
	b = open_session();
	CU_ASSERT_EQUAL(a, 77);
	CU_ASSERT_EQUAL(b, 78);
	CU_ASSERT_EQUAL(kv_store_session_count(st), 2);
}

static void test_a_retry_after_a_lost_reply_is_applied_once(void)
{
	uint64_t s = open_session();
	struct kv_result r1, r2;

	CU_ASSERT_EQUAL(in_session(s, 1, KV_OP_APPEND, "log", "line\n", &r1), KV_OK);
	CU_ASSERT_FALSE(r1.replayed);
	now_ms += 10;
	/* the reply was lost: the client proposes the same request again */
	CU_ASSERT_EQUAL(in_session(s, 1, KV_OP_APPEND, "log", "line\n", &r2), KV_OK);
	CU_ASSERT_TRUE(r2.replayed);
	CU_ASSERT_STRING_EQUAL(get("log"), "line\n");
	CU_ASSERT(r2.has_attr);
	CU_ASSERT(memcmp(&r1.attr, &r2.attr, sizeof(r1.attr)) == 0);
	CU_ASSERT_EQUAL(r2.op, KV_OP_APPEND);
	kv_result_release(&r1);
	kv_result_release(&r2);
	CU_ASSERT_EQUAL(in_session(s, 2, KV_OP_APPEND, "log", "more\n", NULL), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("log"), "line\nmore\n");
}

static void test_a_retried_create_exclusive_returns_its_first_answer(void)
{
	uint64_t s = open_session();

	CU_ASSERT_EQUAL(in_session(s, 1, KV_OP_CREATE_EXCLUSIVE, "lock", "me", NULL), KV_OK);
	CU_ASSERT_EQUAL(in_session(s, 1, KV_OP_CREATE_EXCLUSIVE, "lock", "me", NULL), KV_OK);
	CU_ASSERT_EQUAL(in_session(s, 2, KV_OP_CREATE_EXCLUSIVE, "lock", "me", NULL), KV_EEXIST);
	CU_ASSERT_EQUAL(in_session(s, 2, KV_OP_CREATE_EXCLUSIVE, "lock", "me", NULL), KV_EEXIST);
	CU_ASSERT_EQUAL(simple(KV_OP_DELETE, "lock"), KV_OK);
	/* still the recorded answer, although the key is gone now */
	CU_ASSERT_EQUAL(in_session(s, 2, KV_OP_CREATE_EXCLUSIVE, "lock", "me", NULL), KV_EEXIST);
	CU_ASSERT_FALSE(exists("lock"));
}

static void test_a_stale_sequence_number_is_refused(void)
{
	uint64_t s = open_session();

	CU_ASSERT_EQUAL(in_session(s, 5, KV_OP_PUT, "k", "five", NULL), KV_OK);
	CU_ASSERT_EQUAL(in_session(s, 4, KV_OP_PUT, "k", "four", NULL), KV_ESTALE);
	CU_ASSERT_STRING_EQUAL(get("k"), "five");
	CU_ASSERT_EQUAL(in_session(s, 0, KV_OP_PUT, "k", "zero", NULL), KV_EINVAL);
	CU_ASSERT_STRING_EQUAL(get("k"), "five");
}

static void test_a_read_retry_is_served_again_from_current_state(void)
{
	uint64_t s = open_session();
	struct kv_result r;

	CU_ASSERT_EQUAL(put("k", "v1"), KV_OK);
	CU_ASSERT_EQUAL(in_session(s, 1, KV_OP_GET, "k", NULL, &r), KV_OK);
	CU_ASSERT_EQUAL(r.value_len, 2);
	kv_result_release(&r);
	CU_ASSERT_EQUAL(put("k", "v22"), KV_OK);
	CU_ASSERT_EQUAL(in_session(s, 1, KV_OP_GET, "k", NULL, &r), KV_OK);
	CU_ASSERT_EQUAL(r.value_len, 3);
	kv_result_release(&r);
	/* a write reusing the read's number is not its retry */
	CU_ASSERT_EQUAL(in_session(s, 1, KV_OP_PUT, "k", "bad", NULL), KV_ESTALE);
	CU_ASSERT_STRING_EQUAL(get("k"), "v22");
}

static void test_an_unknown_or_closed_session_is_refused(void)
{
	uint64_t s;
	struct kv_cmd c;

	CU_ASSERT_EQUAL(in_session(12345, 1, KV_OP_PUT, "k", "v", NULL), KV_ESESSION_EXPIRED);
	CU_ASSERT_FALSE(exists("k"));
	s = open_session();
	c = mk(KV_OP_CLOSE_SESSION, NULL);
	c.session = s;
	CU_ASSERT_EQUAL(run(&c, NULL), KV_OK);
	CU_ASSERT_EQUAL(kv_store_session_count(st), 0);
	CU_ASSERT_EQUAL(run(&c, NULL), KV_ESESSION_EXPIRED);
	CU_ASSERT_EQUAL(in_session(s, 1, KV_OP_PUT, "k", "v", NULL), KV_ESESSION_EXPIRED);
	CU_ASSERT_FALSE(exists("k"));
}

static void test_a_session_expires_after_its_timeout_of_log_time(void)
{
	uint64_t s = open_session(), idle = open_session();

	CU_ASSERT_EQUAL(in_session(s, 1, KV_OP_PUT, "k", "v", NULL), KV_OK);
	now_ms += KV_SESSION_TIMEOUT_MS - 1;
	CU_ASSERT_EQUAL(in_session(s, 2, KV_OP_PUT, "k", "w", NULL), KV_OK); /* used: renewed */
	CU_ASSERT_EQUAL(kv_store_session_count(st), 2); /* idle is not quite expired */
	now_ms += 1;
	CU_ASSERT_EQUAL(in_session(s, 3, KV_OP_PUT, "k", "x", NULL), KV_OK);
	CU_ASSERT_EQUAL(kv_store_session_count(st), 1); /* idle expired on the way */
	CU_ASSERT_EQUAL(in_session(idle, 1, KV_OP_PUT, "k", "y", NULL), KV_ESESSION_EXPIRED);
	now_ms += KV_SESSION_TIMEOUT_MS;
	CU_ASSERT_EQUAL(in_session(s, 4, KV_OP_PUT, "k", "z", NULL), KV_ESESSION_EXPIRED);
	CU_ASSERT_STRING_EQUAL(get("k"), "x");
	CU_ASSERT_EQUAL(kv_store_session_count(st), 0);
}

static void test_log_time_never_goes_back(void)
{
	uint64_t s = open_session();

	now_ms += KV_SESSION_TIMEOUT_MS;
	CU_ASSERT_EQUAL(put("tick", "v"), KV_OK); /* expires s */
	now_ms = T0; /* a proposer with a slow clock */
	CU_ASSERT_EQUAL(in_session(s, 1, KV_OP_PUT, "k", "v", NULL), KV_ESESSION_EXPIRED);
	CU_ASSERT_EQUAL(kv_store_now_ms(st), T0 + KV_SESSION_TIMEOUT_MS);
	CU_ASSERT_EQUAL(put("k2", "v"), KV_OK);
	CU_ASSERT_EQUAL(attr_of("k2").mtime_ns, (T0 + KV_SESSION_TIMEOUT_MS) * 1000000ULL);
}

static void test_expiry_work_per_entry_is_bounded(void)
{
	for (int i = 0; i < 200; i++)
		open_session();
	now_ms += KV_SESSION_TIMEOUT_MS;
	CU_ASSERT_EQUAL(put("k", "v"), KV_OK);
	CU_ASSERT_EQUAL(kv_store_session_count(st), 200 - KV_SESSION_EXPIRE_BATCH);
	CU_ASSERT_EQUAL(put("k", "v"), KV_OK);
	CU_ASSERT_EQUAL(put("k", "v"), KV_OK);
	CU_ASSERT_EQUAL(put("k", "v"), KV_OK);
	CU_ASSERT_EQUAL(kv_store_session_count(st), 0);
}

static void test_max_sessions_evicts_the_least_recently_used(void)
{
	struct kv_store_config cfg;
	struct kv_store *saved = st;
	uint64_t a, b, c, d;

	kv_store_config_default(&cfg);
	cfg.settings.max_sessions = 3;
	CU_ASSERT_EQUAL_FATAL(kv_store_new(&cfg, &st), KV_OK);
	a = open_session();
	b = open_session();
	c = open_session();
	CU_ASSERT_EQUAL(in_session(a, 1, KV_OP_PUT, "k", "a", NULL), KV_OK); /* b is now oldest */
	d = open_session();
	CU_ASSERT_EQUAL(kv_store_session_count(st), 3);
	CU_ASSERT_EQUAL(in_session(b, 1, KV_OP_PUT, "k", "b", NULL), KV_ESESSION_EXPIRED);
	CU_ASSERT_EQUAL(in_session(a, 2, KV_OP_PUT, "k", "a", NULL), KV_OK);
	CU_ASSERT_EQUAL(in_session(c, 1, KV_OP_PUT, "k", "c", NULL), KV_OK);
	CU_ASSERT_EQUAL(in_session(d, 1, KV_OP_PUT, "k", "d", NULL), KV_OK);
	for (int i = 0; i < 100; i++)
		open_session();
	CU_ASSERT_EQUAL(kv_store_session_count(st), 3);
	kv_store_free(st);
	st = saved;
}

static void test_unsessioned_requests_are_applied_every_time(void)
{
	CU_ASSERT_EQUAL(append("k", "a"), KV_OK);
	CU_ASSERT_EQUAL(append("k", "a"), KV_OK);
	CU_ASSERT_STRING_EQUAL(get("k"), "aa");
}

/* --- the cluster's settings ------------------------------------------------------------------ */

static struct kv_settings settings_of(uint64_t max_value, uint32_t max_sessions)
{
	struct kv_settings set = {max_value, KV_SESSION_TIMEOUT_MS, max_sessions};
	return set;
}

static int apply_settings_on(struct kv_store *s, const struct kv_settings *set, uint64_t session)
{
	struct kv_cmd c = mk(KV_OP_SETTINGS, NULL);

	c.settings = *set;
	c.session = session;
	c.seq = session ? 1 : 0;
	return run_on(s, &c, NULL);
}

/* A store made with cfg in place of the suite's (freed by teardown). */
static void store_with(const struct kv_store_config *cfg)
{
	kv_store_free(st);
	st = NULL;
	CU_ASSERT_EQUAL_FATAL(kv_store_new(cfg, &st), KV_OK);
}

static const char sixteen[] = "0123456789abcdef", twenty[] = "0123456789abcdefghij";

/* A store follows its own settings until a Settings entry, then the cluster's for good: a later
 * one changes nothing, an invalid one is refused, and none is kept as a session's answer. */
static void test_the_first_settings_entry_replaces_the_stores_own_for_good(void)
{
	struct kv_store_config cfg;
	struct kv_settings set, big = settings_of(100, 8), small = settings_of(5, 8), bad = big;
	uint64_t session, at;

	kv_store_config_default(&cfg);
	cfg.settings.max_value_bytes = 16;
	store_with(&cfg);
	CU_ASSERT_EQUAL(kv_store_settings(st, &set), 0);
	CU_ASSERT_EQUAL(set.max_value_bytes, 16);
	CU_ASSERT_EQUAL(put("k", sixteen), KV_OK);
	CU_ASSERT_EQUAL(put("k", twenty), KV_EFBIG);
	bad.max_value_bytes = (uint64_t)KV_VALUE_BYTES_LIMIT + 1;
	CU_ASSERT_EQUAL(apply_settings_on(st, &bad, 0), KV_EINVAL);
	bad = big;
	bad.max_sessions = 0;
	CU_ASSERT_EQUAL(apply_settings_on(st, &bad, 0), KV_EINVAL);
	CU_ASSERT_EQUAL(kv_store_settings(st, NULL), 0);
	session = open_session();
	at = next_index;
	/* carried with a session by mistake: applied outside it, and the session is untouched */
	CU_ASSERT_EQUAL(apply_settings_on(st, &big, session), KV_OK);
	CU_ASSERT_EQUAL(kv_store_settings(st, &set), at);
	CU_ASSERT_EQUAL(set.max_value_bytes, 100);
	CU_ASSERT_EQUAL(put("k", twenty), KV_OK);
	CU_ASSERT_EQUAL(in_session(session, 1, KV_OP_PUT, "s", "v", NULL), KV_OK);
	CU_ASSERT_EQUAL(apply_settings_on(st, &small, 0), KV_EEXIST);
	CU_ASSERT_EQUAL(kv_store_settings(st, &set), at);
	CU_ASSERT_EQUAL(set.max_value_bytes, 100);
	CU_ASSERT_EQUAL(put("k", twenty), KV_OK);
	/* values stored before stay readable whatever the new limit */
	CU_ASSERT_STRING_EQUAL(get("k"), twenty);
}

/* Two replicas whose nodes were configured differently apply the same log alike once its
 * Settings entry is in: the same answers, the same hash, the same snapshot bytes. */
static void test_replicas_configured_differently_agree_after_the_settings_entry(void)
{
	struct kv_store_config ca, cb;
	struct kv_store *a, *b;
	struct kv_settings set = settings_of(32, 4);
	struct samples_stream ma = {0}, mb = {0};
	char data[32];

	kv_store_config_default(&ca);
	kv_store_config_default(&cb);
	ca.settings.max_value_bytes = 8;
	ca.settings.max_sessions = 2;
	cb.settings.session_timeout_ms = 1000;
	cb.hash_key.k0 = 99;
	CU_ASSERT_EQUAL_FATAL(kv_store_new(&ca, &a), KV_OK);
	CU_ASSERT_EQUAL_FATAL(kv_store_new(&cb, &b), KV_OK);
	CU_ASSERT_EQUAL(kv_store_hash(a), kv_store_hash(b)); /* their own are not state */
	memset(data, 'd', sizeof(data));
	for (int step = 0; step < 40; step++) {
		struct kv_cmd c = mk(step % 3 ? KV_OP_PUT : KV_OP_OPEN_SESSION, "k");
		struct kv_result ra, rb;
		uint64_t index = next_index;

		if (step == 0) {
			c = mk(KV_OP_SETTINGS, NULL);
			c.settings = set;
		}
		c.data = data;
		c.data_len = (size_t)(step % 25); /* over a's own 8, within the cluster's 32 */
		now_ms += 700; /* past cb's own session timeout, within the cluster's */
		c.time_ms = now_ms;
		run_on(a, &c, &ra);
		next_index = index;
		run_on(b, &c, &rb);
		CU_ASSERT_EQUAL(ra.status, rb.status);
		kv_result_release(&ra);
		kv_result_release(&rb);
		CU_ASSERT_EQUAL(kv_store_hash(a), kv_store_hash(b));
		CU_ASSERT_EQUAL(kv_store_session_count(a), kv_store_session_count(b));
	}
	CU_ASSERT_EQUAL(kv_store_session_count(a), 4);
	CU_ASSERT_EQUAL(kv_snapshot_save(a, samples_stream_write, &ma), KV_OK);
	CU_ASSERT_EQUAL(kv_snapshot_save(b, samples_stream_write, &mb), KV_OK);
	CU_ASSERT_EQUAL_FATAL(ma.len, mb.len);
	CU_ASSERT(memcmp(ma.buf, mb.buf, ma.len) == 0);
	free(ma.buf);
	free(mb.buf);
	kv_store_free(a);
	kv_store_free(b);
}

/* A Settings entry with fewer sessions than the store holds evicts the least recently used. */
static void test_settings_with_fewer_sessions_evict_the_least_recently_used(void)
{
	struct kv_settings set = settings_of(KV_DEFAULT_MAX_VALUE_BYTES, 2);
	uint64_t s[5];

	for (int i = 0; i < 5; i++)
		s[i] = open_session();
	CU_ASSERT_EQUAL(in_session(s[1], 1, KV_OP_PUT, "k", "v", NULL), KV_OK); /* s[1] newest */
	CU_ASSERT_EQUAL(apply_settings_on(st, &set, 0), KV_OK);
	CU_ASSERT_EQUAL(kv_store_session_count(st), 2);
	CU_ASSERT_EQUAL(in_session(s[4], 1, KV_OP_PUT, "k", "v", NULL), KV_OK);
	CU_ASSERT_EQUAL(in_session(s[1], 2, KV_OP_PUT, "k", "v", NULL), KV_OK);
	for (int i = 0; i < 4; i++)
		if (i != 1)
			CU_ASSERT_EQUAL(in_session(s[i], 1, KV_OP_PUT, "k", "v", NULL),
			                KV_ESESSION_EXPIRED);
	open_session();
	CU_ASSERT_EQUAL(kv_store_session_count(st), 2);
}

/* --- randomized: two stores, one command sequence ------------------------------------------ */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: small, seedable, the same everywhere */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static void random_key(char *buf, size_t cap)
{
	static const char *const names[] = {"a", "b", "c", "dd", "e"};
	unsigned depth = 1 + (unsigned)(rng() % 3);
	size_t n = 0;

	for (unsigned i = 0; i < depth; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "/" : "", names[rng() % 5]);
}

static struct kv_cmd random_cmd(char *key, char *key2, char *data, uint64_t *sessions,
                                size_t n_sessions, uint64_t *seqs)
{
	struct kv_cmd c;
	size_t dlen = rng() % 40;
	int op = 1 + (int)(rng() % (KV_OP_COUNT - 1));

	random_key(key, 64);
	random_key(key2, 64);
	for (size_t i = 0; i < dlen; i++)
		data[i] = (char)('a' + rng() % 26);
	c = mk(op, key);
	c.key2 = key2;
	c.key2_len = strlen(key2);
	c.data = data;
	c.data_len = dlen;
	c.offset = rng() % 64;
	c.flags = op == KV_OP_RENAME ? (uint32_t)(rng() % 2) : (uint32_t)(rng() % 32);
	c.uid = rng() % 4 == 0 ? 0 : UID + (uint32_t)(rng() % 2);
	c.attr.mode = (uint32_t)(rng() % 07777);
	c.attr.uid = (uint32_t)(rng() % 3);
	c.attr.gid = GID;
	c.attr.mtime_ns = rng() % 1000;
	c.settings.max_value_bytes = 8 + rng() % 64;
	c.settings.session_timeout_ms = KV_SESSION_TIMEOUT_MS / (1 + rng() % 4);
	c.settings.max_sessions = 1 + (uint32_t)(rng() % 8);
	c.time_ms = now_ms;
	now_ms += rng() % (KV_SESSION_TIMEOUT_MS / 256);
	if (n_sessions && rng() % 2) {
		size_t i = (size_t)(rng() % n_sessions);
		c.session = sessions[i];
		if (rng() % 4) /* mostly new requests, some retries and stale ones */
			seqs[i]++;
		c.seq = seqs[i] - (rng() % 8 == 0 && seqs[i] > 1);
	}
	return c;
}

/* b replaced by a restored copy of itself (what a follower does on InstallSnapshot), saved and
 * restored under another hash key (as a replica restarting draws a new one). */
static struct kv_store *through_snapshot(struct kv_store *b)
{
	struct samples_stream m = {0};
	struct kv_store *r = NULL;
	struct kv_store_config cfg;

	kv_store_config_default(&cfg);
	cfg.hash_key.k0 = 0x0123456789abcdefULL;
	cfg.hash_key.k1 = 0xfedcba9876543210ULL;
	CU_ASSERT_EQUAL_FATAL(kv_snapshot_save(b, samples_stream_write, &m), KV_OK);
	CU_ASSERT_EQUAL_FATAL(kv_snapshot_restore(&cfg, samples_stream_read, &m, &r), KV_OK);
	free(m.buf);
	kv_store_free(b);
	return r;
}

static void test_random_commands_give_identical_hashes_on_two_stores(void)
{
	const char *env = getenv("KV_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	struct kv_store *a, *b;
	struct kv_store_config cfg;
	uint64_t sessions[8], seqs[8];
	size_t n_sessions = 0;
	char key[64], key2[64], data[64];
	const int steps = 4000;

	printf("\n  kv random: seed %" PRIu64 " (replay: KV_SEED=%" PRIu64
	       " tests/test_kv_store kv_random)\n",
	       seed, seed);
	rng_state = seed * 2 + 1;
	CU_ASSERT_EQUAL_FATAL(kv_store_new(NULL, &a), KV_OK);
	/* b's node was configured otherwise and places names apart: after the first command, the
	 * cluster's settings, their states agree */
	kv_store_config_default(&cfg);
	cfg.settings.max_value_bytes = 1;
	cfg.settings.max_sessions = 1;
	cfg.hash_key.k0 = seed;
	CU_ASSERT_EQUAL_FATAL(kv_store_new(&cfg, &b), KV_OK);
	for (int i = 0; i < steps; i++) {
		struct kv_cmd c = random_cmd(key, key2, data, sessions, n_sessions, seqs);
		struct kv_result ra, rb;
		uint64_t index = next_index;

		if (i == 0) {
			c.op = KV_OP_SETTINGS;
			c.session = 0;
		}
		run_on(a, &c, &ra);
		next_index = index;
		run_on(b, &c, &rb);
		CU_ASSERT_EQUAL(ra.status, rb.status);
		CU_ASSERT_EQUAL(ra.replayed, rb.replayed);
		if (ra.status == KV_OK && c.op == KV_OP_OPEN_SESSION) {
			size_t slot = n_sessions < 8 ? n_sessions++ : (size_t)(rng() % 8);
			sessions[slot] = ra.session;
			seqs[slot] = 0;
		}
		kv_result_release(&ra);
		kv_result_release(&rb);
		if (i == steps / 2)
			b = through_snapshot(b);
		if (kv_store_hash(a) != kv_store_hash(b)) {
			CU_FAIL("replicas diverged");
			printf("  diverged at step %d (seed %" PRIu64 ")\n", i, seed);
			break;
		}
	}
	CU_ASSERT(kv_store_key_count(a) > 1);
	kv_store_free(a);
	kv_store_free(b);
}

/* --- hash flooding ------------------------------------------------------------------------- */

#define FLOOD_NAMES 4096u
/* Under a keyed hash FLOOD_NAMES names in at least as many buckets: the longest chain of a
 * uniform hash is about ln n / ln ln n (5 here); this bound leaves room and still fails loudly
 * when every name shares one chain. */
#define FLOOD_MAX_CHAIN 16u

static size_t longest_chain(const struct kv_store *s)
{
	size_t most = 0;

	for (size_t b = 0; b < s->n_buckets; b++) {
		size_t n = 0;
		for (const struct kv_node *e = s->buckets[b]; e; e = e->hnext)
			n++;
		if (n > most)
			most = n;
	}
	return most;
}

/*
 * Names a client crafted to share one bucket under the old unkeyed hash (tests/lib/flood.h)
 * spread over the table like any names: every replica's apply stays a probe per component
 * instead of a scan of every name (benchmark: tests/bench/bench_store --flood).
 */
static void test_names_crafted_to_collide_under_the_unkeyed_hash_spread_over_the_table(void)
{
	char *names = malloc(FLOOD_NAMES * FLOOD_NAME_BYTES);
	char key[FLOOD_NAME_BYTES + 1];

	CU_ASSERT_FATAL(names != NULL);
	flood_names(1, 0x5eed, 42, FLOOD_NAMES, names); /* under the root, ino 1 */
	CU_ASSERT_EQUAL(flood_unkeyed_name_hash(1, names, FLOOD_NAME_BYTES), 0x5eed);
	for (size_t i = 0; i < FLOOD_NAMES; i++) {
		memcpy(key, names + i * FLOOD_NAME_BYTES, FLOOD_NAME_BYTES);
		key[FLOOD_NAME_BYTES] = '\0';
		CU_ASSERT_EQUAL_FATAL(put(key, "v"), KV_OK);
	}
	CU_ASSERT_EQUAL(kv_store_key_count(st), FLOOD_NAMES + 1);
	CU_ASSERT(st->n_buckets >= FLOOD_NAMES);
	CU_ASSERT(longest_chain(st) <= FLOOD_MAX_CHAIN);
	printf("\n  %u crafted names: longest chain %zu of %zu buckets\n", FLOOD_NAMES,
	       longest_chain(st), st->n_buckets);
	free(names);
}

static CU_TestInfo flood_tests[] = {
        {"test_names_crafted_to_collide_under_the_unkeyed_hash_spread_over_the_table",
         test_names_crafted_to_collide_under_the_unkeyed_hash_spread_over_the_table},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo ns_tests[] = {
        {"put_then_get_returns_the_value", test_put_then_get_returns_the_value},
        {"get_of_a_missing_key_returns_empty_and_not_exists",
         test_get_of_a_missing_key_returns_empty_and_not_exists},
        {"get_through_the_log_returns_value_and_attr",
         test_get_through_the_log_returns_value_and_attr},
        {"read_returns_a_slice_and_the_whole_size", test_read_returns_a_slice_and_the_whole_size},
        {"put_creates_missing_parent_directories", test_put_creates_missing_parent_directories},
        {"key_under_a_file_is_enotdir", test_key_under_a_file_is_enotdir},
        {"invalid_keys_are_refused", test_invalid_keys_are_refused},
        {"append_to_a_missing_key_acts_like_put", test_append_to_a_missing_key_acts_like_put},
        {"create_exclusive_refuses_an_existing_key", test_create_exclusive_refuses_an_existing_key},
        {"write_at_overwrites_inside_and_zero_fills_past_the_end",
         test_write_at_overwrites_inside_and_zero_fills_past_the_end},
        {"truncate_grows_with_zeros_and_shrinks", test_truncate_grows_with_zeros_and_shrinks},
        {"values_over_max_value_bytes_are_efbig_and_change_nothing",
         test_values_over_max_value_bytes_are_efbig_and_change_nothing},
        {"delete_removes_a_file_and_refuses_a_directory",
         test_delete_removes_a_file_and_refuses_a_directory},
        {"mkdir_needs_a_parent_and_a_free_name", test_mkdir_needs_a_parent_and_a_free_name},
        {"rmdir_refuses_a_non_empty_directory", test_rmdir_refuses_a_non_empty_directory},
        {"rename_over_an_existing_file_replaces_it", test_rename_over_an_existing_file_replaces_it},
        {"rename_noreplace_refuses_an_existing_destination",
         test_rename_noreplace_refuses_an_existing_destination},
        {"rename_of_a_directory_moves_its_children", test_rename_of_a_directory_moves_its_children},
        {"rename_of_a_directory_into_its_own_subtree_is_einval",
         test_rename_of_a_directory_into_its_own_subtree_is_einval},
        {"rename_follows_the_type_rules_of_rename2", test_rename_follows_the_type_rules_of_rename2},
        {"setattr_changes_only_the_masked_fields", test_setattr_changes_only_the_masked_fields},
        {"setattr_by_a_non_owner_is_eperm", test_setattr_by_a_non_owner_is_eperm},
        {"touch_needs_write_permission_not_ownership",
         test_touch_needs_write_permission_not_ownership},
        {"a_write_by_a_non_owner_clears_setuid_and_setgid",
         test_a_write_by_a_non_owner_clears_setuid_and_setgid},
        {"symlink_stores_its_target_and_is_never_followed",
         test_symlink_stores_its_target_and_is_never_followed},
        {"readdir_is_sorted_whatever_the_creation_order",
         test_readdir_is_sorted_whatever_the_creation_order},
        {"inode_numbers_are_unique_and_survive_rename",
         test_inode_numbers_are_unique_and_survive_rename},
        {"creation_and_removal_touch_the_parent_directory",
         test_creation_and_removal_touch_the_parent_directory},
        {"a_malformed_command_is_consumed_with_ecorrupt",
         test_a_malformed_command_is_consumed_with_ecorrupt},
        {"apply_refuses_an_index_not_above_the_last",
         test_apply_refuses_an_index_not_above_the_last},
        {"hash_changes_with_any_value_and_metadata", test_hash_changes_with_any_value_and_metadata},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo session_tests[] = {
        {"open_session_returns_the_entry_index_as_its_id",
         test_open_session_returns_the_entry_index_as_its_id},
        {"a_retry_after_a_lost_reply_is_applied_once",
         test_a_retry_after_a_lost_reply_is_applied_once},
        {"a_retried_create_exclusive_returns_its_first_answer",
         test_a_retried_create_exclusive_returns_its_first_answer},
        {"a_stale_sequence_number_is_refused", test_a_stale_sequence_number_is_refused},
        {"a_read_retry_is_served_again_from_current_state",
         test_a_read_retry_is_served_again_from_current_state},
        {"an_unknown_or_closed_session_is_refused", test_an_unknown_or_closed_session_is_refused},
        {"a_session_expires_after_its_timeout_of_log_time",
         test_a_session_expires_after_its_timeout_of_log_time},
        {"log_time_never_goes_back", test_log_time_never_goes_back},
        {"expiry_work_per_entry_is_bounded", test_expiry_work_per_entry_is_bounded},
        {"max_sessions_evicts_the_least_recently_used",
         test_max_sessions_evicts_the_least_recently_used},
        {"unsessioned_requests_are_applied_every_time",
         test_unsessioned_requests_are_applied_every_time},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo settings_tests[] = {
        {"test_the_first_settings_entry_replaces_the_stores_own_for_good",
         test_the_first_settings_entry_replaces_the_stores_own_for_good},
        {"test_replicas_configured_differently_agree_after_the_settings_entry",
         test_replicas_configured_differently_agree_after_the_settings_entry},
        {"test_settings_with_fewer_sessions_evict_the_least_recently_used",
         test_settings_with_fewer_sessions_evict_the_least_recently_used},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo random_tests[] = {
        {"random_commands_give_identical_hashes_on_two_stores",
         test_random_commands_give_identical_hashes_on_two_stores},
        CU_TEST_INFO_NULL,
};

static int setup_suite(void)
{
	return 0;
}

static void setup_test(void)
{
	CU_ASSERT_EQUAL_FATAL(setup(), 0);
}

static void teardown_test(void)
{
	teardown();
}

static CU_SuiteInfo suites[] = {
        {"kv_store", setup_suite, NULL, setup_test, teardown_test, ns_tests},
        {"kv_sessions", setup_suite, NULL, setup_test, teardown_test, session_tests},
        {"kv_settings", setup_suite, NULL, setup_test, teardown_test, settings_tests},
        {"kv_random", setup_suite, NULL, setup_test, teardown_test, random_tests},
        {"kv_flood", setup_suite, NULL, setup_test, teardown_test, flood_tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	return cu_main(argc, argv, suites);
}
