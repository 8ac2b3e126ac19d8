/* test_kv_snapshot.c - kv snapshots: exact round trips, and bad streams refused without harm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/store.h"
#include "raft/crc32c.h"
#include "raft/le.h"
#include "raft/raft.h"
#include "tests/lib/cu.h"
#include "tests/lib/samples.h"

#define T0 1700000000000ULL
#define FRAME_BYTES 16

static uint64_t next_index;
static uint64_t now_ms;

static struct kv_cmd mk(int op, const char *key)
{
	return samples_kv_cmd(op, key, now_ms);
}

static int run(struct kv_store *s, const struct kv_cmd *c, struct kv_result *r)
{
	return samples_kv_apply(s, next_index++, c, r);
}

static void put(struct kv_store *s, const char *key, const void *v, size_t len)
{
	struct kv_cmd c = mk(KV_OP_PUT, key);

	c.data = v;
	c.data_len = len;
	CU_ASSERT_EQUAL(run(s, &c, NULL), KV_OK);
}

static uint64_t open_session(struct kv_store *s)
{
	struct kv_cmd c = mk(KV_OP_OPEN_SESSION, NULL);
	struct kv_result r;

	CU_ASSERT_EQUAL(run(s, &c, &r), KV_OK);
	return r.session;
}

static int in_session(struct kv_store *s, uint64_t id, uint64_t seq, int op, const char *key,
                      const char *data)
{
	struct kv_cmd c = mk(op, key);

	c.session = id;
	c.seq = seq;
	c.data = data;
	c.data_len = data ? strlen(data) : 0;
	return run(s, &c, NULL);
}

/* A small store with one of everything: files, directories, a symlink, attributes, sessions
 * with and without a recorded result. */
static struct kv_store *small_store(void)
{
	struct kv_store *s;
	struct kv_cmd c;
	uint64_t a, b;

	next_index = 1;
	now_ms = T0;
	CU_ASSERT_EQUAL_FATAL(kv_store_new(NULL, &s), KV_OK);
	put(s, "etc/hosts", "127.0.0.1 localhost\n", 20);
	put(s, "etc/empty", "", 0);
	put(s, "home/u/notes.txt", "remember", 8);
	c = mk(KV_OP_MKDIR, "tmp");
	c.mode = 01777;
	CU_ASSERT_EQUAL(run(s, &c, NULL), KV_OK);
	c = mk(KV_OP_SYMLINK, "home/u/link");
	c.data = "../../etc/hosts";
	c.data_len = strlen(c.data);
	CU_ASSERT_EQUAL(run(s, &c, NULL), KV_OK);
	c = mk(KV_OP_SETATTR, "etc/hosts");
	c.uid = 0;
	c.flags = KV_ATTR_UID | KV_ATTR_MTIME;
	c.attr.uid = 0;
	c.attr.mtime_ns = 42;
	CU_ASSERT_EQUAL(run(s, &c, NULL), KV_OK);
	now_ms += 1000;
	a = open_session(s);
	b = open_session(s);
	CU_ASSERT_EQUAL(in_session(s, a, 1, KV_OP_APPEND, "var/log", "boot\n"), KV_OK);
	CU_ASSERT_EQUAL(in_session(s, b, 1, KV_OP_GET, "etc/hosts", NULL), KV_OK);
	now_ms += 1000;
	open_session(s);
	return s;
}

/* A store with several key records: many keys, large values, deletions (so the layout of its
 * tables differs from a freshly restored one), and many sessions. */
static struct kv_store *big_store(void)
{
	struct kv_store *s = small_store();
	static unsigned char big[300 * 1024];
	char key[64];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7);
	for (int i = 0; i < 12000; i++) {
		snprintf(key, sizeof(key), "bulk/%d/k%05d", i % 7, i);
		put(s, key, key, strlen(key));
	}
	for (int i = 0; i < 12000; i += 3) {
		struct kv_cmd c;
		snprintf(key, sizeof(key), "bulk/%d/k%05d", i % 7, i);
		c = mk(KV_OP_DELETE, key);
		CU_ASSERT_EQUAL(run(s, &c, NULL), KV_OK);
	}
	for (int i = 0; i < 6; i++) {
		snprintf(key, sizeof(key), "large/%d", i);
		put(s, key, big, sizeof(big) - (size_t)i);
	}
	for (int i = 0; i < 5000; i++) {
		uint64_t id = open_session(s);
		if (i % 2)
			CU_ASSERT_EQUAL(in_session(s, id, 1, KV_OP_PUT, "x", "y"), KV_OK);
	}
	return s;
}

static struct samples_stream save(const struct kv_store *s)
{
	struct samples_stream m;

	memset(&m, 0, sizeof(m));
	CU_ASSERT_EQUAL(kv_snapshot_save(s, samples_stream_write, &m), KV_OK);
	return m;
}

/* Restores from len bytes of buf; KV_OK stores are freed after their hash is taken. */
static int restore_bytes(const unsigned char *buf, size_t len, uint64_t *hash)
{
	struct samples_stream m = {.buf = (unsigned char *)buf, .len = len};
	struct kv_store *r = NULL;
	int rv = kv_snapshot_restore(NULL, samples_stream_read, &m, &r);

	if (rv == KV_OK) {
		if (hash)
			*hash = kv_store_hash(r);
		kv_store_free(r);
	} else {
		CU_ASSERT_PTR_NULL(r);
	}
	return rv;
}

/* The restore uses another hash key than s (as a replica restarting draws a new one): where
 * names sit in memory changes, the state and the bytes of its snapshot do not. */
static void check_round_trip(struct kv_store *s)
{
	struct samples_stream m1 = save(s), m2;
	struct kv_store *r = NULL;
	struct kv_store_config cfg;

	kv_store_config_default(&cfg);
	cfg.hash_key.k0 = 0x9e3779b97f4a7c15ULL;
	cfg.hash_key.k1 = 7;
	CU_ASSERT_EQUAL_FATAL(kv_snapshot_restore(&cfg, samples_stream_read, &m1, &r), KV_OK);
	CU_ASSERT_EQUAL(m1.pos, m1.len);
	CU_ASSERT_EQUAL(kv_store_hash(r), kv_store_hash(s));
	CU_ASSERT_EQUAL(kv_store_key_count(r), kv_store_key_count(s));
	CU_ASSERT_EQUAL(kv_store_session_count(r), kv_store_session_count(s));
	CU_ASSERT_EQUAL(kv_store_applied_index(r), kv_store_applied_index(s));
	CU_ASSERT_EQUAL(kv_store_now_ms(r), kv_store_now_ms(s));
	m2 = save(r);
	CU_ASSERT_EQUAL_FATAL(m2.len, m1.len);
	CU_ASSERT(memcmp(m1.buf, m2.buf, m1.len) == 0);
	free(m1.buf);
	free(m2.buf);
	kv_store_free(r);
}

static void test_a_new_store_survives_a_round_trip(void)
{
	struct kv_store *s;

	CU_ASSERT_EQUAL_FATAL(kv_store_new(NULL, &s), KV_OK);
	check_round_trip(s);
	kv_store_free(s);
}

static void test_a_small_store_survives_a_round_trip_with_identical_bytes(void)
{
	struct kv_store *s = small_store();

	check_round_trip(s);
	kv_store_free(s);
}

static void test_a_big_store_survives_a_round_trip_with_identical_bytes(void)
{
	struct kv_store *s = big_store();
	struct samples_stream m = save(s);

	/* several bounded records, not one image */
	CU_ASSERT(m.len > 6 * 300 * 1024);
	free(m.buf);
	check_round_trip(s);
	kv_store_free(s);
}

static void test_a_restored_store_keeps_applying_like_the_original(void)
{
	struct kv_store *s = small_store(), *r = NULL;
	struct samples_stream m = save(s);
	struct kv_result ra, rb;
	struct kv_cmd c;
	uint64_t idx = next_index;

	CU_ASSERT_EQUAL_FATAL(kv_snapshot_restore(NULL, samples_stream_read, &m, &r), KV_OK);
	free(m.buf);
	/* the retry of session 7's append (recorded before the snapshot) is answered from the
	 * record on both, not applied again */
	c = mk(KV_OP_APPEND, "var/log");
	c.session = 7;
	c.seq = 1;
	c.data = "boot\n";
	c.data_len = 5;
	CU_ASSERT_EQUAL(samples_kv_apply(s, idx, &c, &ra), KV_OK);
	CU_ASSERT_EQUAL(samples_kv_apply(r, idx, &c, &rb), KV_OK);
	CU_ASSERT(ra.replayed && rb.replayed);
	CU_ASSERT(memcmp(&ra.attr, &rb.attr, sizeof(ra.attr)) == 0);
	CU_ASSERT_EQUAL(ra.attr.size, 5);
	kv_result_release(&ra);
	kv_result_release(&rb);
	idx++;
	/* expiry by log time on both */
	now_ms += KV_SESSION_TIMEOUT_MS;
	c = mk(KV_OP_RENAME, "etc");
	c.key2 = "etc2";
	c.key2_len = 4;
	CU_ASSERT_EQUAL(samples_kv_apply(s, idx, &c, NULL), KV_OK);
	CU_ASSERT_EQUAL(samples_kv_apply(r, idx, &c, NULL), KV_OK);
	CU_ASSERT_EQUAL(kv_store_session_count(s), 0);
	CU_ASSERT_EQUAL(kv_store_session_count(r), 0);
	CU_ASSERT_EQUAL(kv_store_hash(s), kv_store_hash(r));
	kv_store_free(s);
	kv_store_free(r);
}

static void test_every_truncation_is_refused(void)
{
	struct kv_store *s = small_store();
	struct samples_stream m = save(s);

	for (size_t n = 0; n < m.len; n++) {
		unsigned char *cut = malloc(n ? n : 1);
		memcpy(cut, m.buf, n);
		CU_ASSERT_EQUAL(restore_bytes(cut, n, NULL), KV_ECORRUPT);
		free(cut);
	}
	CU_ASSERT_EQUAL(restore_bytes(m.buf, m.len, NULL), KV_OK);
	free(m.buf);
	kv_store_free(s);
}

static void test_every_byte_flip_is_refused(void)
{
	struct kv_store *s = small_store();
	struct samples_stream m = save(s);

	for (size_t i = 0; i < m.len; i++) {
		unsigned char old = m.buf[i];
		m.buf[i] ^= (unsigned char)(1u << (i % 8));
		CU_ASSERT_NOT_EQUAL(restore_bytes(m.buf, m.len, NULL), KV_OK);
		m.buf[i] ^= 0xff;
		CU_ASSERT_NOT_EQUAL(restore_bytes(m.buf, m.len, NULL), KV_OK);
		m.buf[i] = old;
	}
	free(m.buf);
	kv_store_free(s);
}

static void fix_crc(unsigned char *frame)
{
	uint32_t len = raft_le_get32(frame + 8);
	uint32_t crc = raft_crc32c(raft_crc32c(0, frame, 12), frame + FRAME_BYTES, len);

	raft_le_put32(frame + 12, crc);
}

/* Restores buf and saves the result again: KV_OK and *same when the bytes come back unchanged. */
static int restore_resave(unsigned char *buf, size_t len, bool *same)
{
	struct samples_stream m = {.buf = buf, .len = len}, out;
	struct kv_store *r = NULL;
	int rv = kv_snapshot_restore(NULL, samples_stream_read, &m, &r);

	*same = false;
	if (rv != KV_OK)
		return rv;
	out = save(r);
	*same = out.len == len && memcmp(out.buf, buf, len) == 0;
	free(out.buf);
	kv_store_free(r);
	return KV_OK;
}

/*
 * Bytes changed inside tpl images with the checksum made right again: tpl and our checks must
 * refuse what is wrong, and whatever is accepted must be a sound store (ASan watches) that saves
 * back to exactly the bytes it came from (the format has no slack a change could hide in).
 */
static void test_checksummed_garbage_in_images_is_refused_or_sound(void)
{
	static const unsigned char patterns[] = {0xff, 0x80, 0x01, 0x00};
	struct kv_store *s = small_store();
	struct samples_stream m = save(s);
	unsigned refused = 0, accepted = 0, not_canonical = 0;
	size_t f = 0;
	bool same;

	while (f < m.len) {
		uint32_t len = raft_le_get32(m.buf + f + 8);
		unsigned char *img = m.buf + f + FRAME_BYTES;
		for (size_t i = 0; i < len; i++) {
			unsigned char old = img[i];
			for (size_t p = 0; p < sizeof(patterns); p++) {
				img[i] = p == 0 ? (unsigned char)(old ^ 0xff) : patterns[p];
				if (img[i] == old)
					continue;
				fix_crc(m.buf + f);
				if (restore_resave(m.buf, m.len, &same) != KV_OK)
					refused++;
				else if (same)
					accepted++;
				else
					not_canonical++;
			}
			img[i] = old;
		}
		fix_crc(m.buf + f);
		f += FRAME_BYTES + len;
	}
	CU_ASSERT_EQUAL(f, m.len);
	CU_ASSERT(refused > 0);
	CU_ASSERT(accepted > 0); /* e.g. a byte of a value */
	CU_ASSERT_EQUAL(not_canonical, 0);
	CU_ASSERT_EQUAL(restore_resave(m.buf, m.len, &same), KV_OK);
	CU_ASSERT_TRUE(same);
	free(m.buf);
	kv_store_free(s);
}

/* Loads len bytes of buf and returns the failure kv_snapshot_load reports (offset, why). */
static struct kv_snapshot_failure load_failure(const unsigned char *buf, size_t len)
{
	struct samples_stream m = {.buf = (unsigned char *)buf, .len = len};
	struct kv_snapshot_failure f = {UINT64_MAX, NULL};
	struct kv_store *r = NULL;

	CU_ASSERT_NOT_EQUAL(kv_snapshot_load(NULL, samples_stream_read, &m, &r, &f), KV_OK);
	CU_ASSERT_PTR_NULL(r);
	CU_ASSERT_PTR_NOT_NULL(f.why);
	return f;
}

/* A refused stream names the record it could not use by the offset of its first byte, and why
 * (so that a node that cannot start names the file and the offset, DESIGN.md 8). */
static void test_a_refused_stream_names_the_bad_record_and_why(void)
{
	struct kv_store *s = small_store();
	struct samples_stream m = save(s);
	size_t second = FRAME_BYTES + raft_le_get32(m.buf + 8), third;
	struct kv_snapshot_failure f;

	third = second + FRAME_BYTES + raft_le_get32(m.buf + second + 8);
	CU_ASSERT_FATAL(third < m.len);
	m.buf[second + FRAME_BYTES] ^= 1; /* the second record's image */
	f = load_failure(m.buf, m.len);
	CU_ASSERT_EQUAL(f.offset, second);
	CU_ASSERT_STRING_EQUAL(f.why, "checksum mismatch");
	m.buf[second + FRAME_BYTES] ^= 1;
	f = load_failure(m.buf, third + 3); /* cut in the third record's header */
	CU_ASSERT_EQUAL(f.offset, third);
	CU_ASSERT_STRING_EQUAL(f.why, "cut short");
	m.buf[0] ^= 0x20;
	f = load_failure(m.buf, m.len);
	CU_ASSERT_EQUAL(f.offset, 0);
	CU_ASSERT_STRING_EQUAL(f.why, "bad magic");
	free(m.buf);
	kv_store_free(s);
}

/* Two keys of one inode number would be one file to the kernel: a stream where the second
 * key took the first one's number (checksum made right) is refused. */
static void test_two_keys_with_one_inode_number_are_refused(void)
{
	struct kv_store *s;
	struct samples_stream m;
	/* a key at depth 1 (u32) with ino 3 (u64), as the keys record's tpl image packs them */
	const unsigned char ino3[12] = {1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
	size_t keys, hits = 0, at = 0;

	next_index = 1;
	now_ms = T0;
	CU_ASSERT_EQUAL_FATAL(kv_store_new(NULL, &s), KV_OK);
	put(s, "a", "1", 1); /* ino 2 */
	put(s, "b", "2", 1); /* ino 3 */
	m = save(s);
	CU_ASSERT_EQUAL_FATAL(restore_bytes(m.buf, m.len, NULL), KV_OK);
	keys = FRAME_BYTES + raft_le_get32(m.buf + 8); /* the second record holds the keys */
	for (size_t i = keys + FRAME_BYTES;
	     i + 8 <= keys + FRAME_BYTES + raft_le_get32(m.buf + keys + 8); i++)
		if (memcmp(m.buf + i, ino3, 8) == 0) {
			hits++;
			at = i;
		}
	CU_ASSERT_EQUAL_FATAL(hits, 1);
	m.buf[at + 4] = 2;
	fix_crc(m.buf + keys);
	CU_ASSERT_EQUAL_FATAL(restore_bytes(m.buf, m.len, NULL), KV_ECORRUPT);
	CU_ASSERT_STRING_EQUAL(load_failure(m.buf, m.len).why, "two keys share an inode number");
	free(m.buf);
	kv_store_free(s);
}

static void test_a_failing_writer_aborts_the_save(void)
{
	struct kv_store *s = small_store();
	int n;

	for (n = 1;; n++) {
		struct samples_stream m;
		int rv;

		memset(&m, 0, sizeof(m));
		m.fail_at = n;
		rv = kv_snapshot_save(s, samples_stream_write, &m);
		free(m.buf);
		if (rv == KV_OK)
			break;
		CU_ASSERT_EQUAL(rv, KV_EIO);
	}
	CU_ASSERT(n > 8); /* header, keys, sessions, end: two writes each */
	kv_store_free(s);
}

static void test_restore_reads_exactly_the_snapshot(void)
{
	struct kv_store *s = small_store(), *r = NULL;
	struct samples_stream m = save(s);
	size_t len = m.len;

	samples_stream_write(&m, "trailing", 8);
	CU_ASSERT_EQUAL(kv_snapshot_restore(NULL, samples_stream_read, &m, &r), KV_OK);
	CU_ASSERT_EQUAL(m.pos, len);
	free(m.buf);
	kv_store_free(r);
	kv_store_free(s);
}

/* small_store() with the cluster's settings applied (a value limit of 64, 8 sessions). */
static struct kv_store *settled_store(void)
{
	struct kv_store *s = small_store();
	struct kv_cmd c = mk(KV_OP_SETTINGS, NULL);

	c.settings.max_value_bytes = 64;
	c.settings.session_timeout_ms = 3600000;
	c.settings.max_sessions = 8;
	CU_ASSERT_EQUAL(run(s, &c, NULL), KV_OK);
	return s;
}

static void test_a_store_with_the_clusters_settings_survives_a_round_trip(void)
{
	struct kv_store *s = settled_store();

	check_round_trip(s);
	kv_store_free(s);
}

static struct kv_store *restore_with(const struct samples_stream *from, uint64_t max_value,
                                     uint32_t max_sessions, int want)
{
	struct samples_stream m = *from;
	struct kv_store_config cfg;
	struct kv_store *r = NULL;

	m.pos = 0;
	kv_store_config_default(&cfg);
	cfg.settings.max_value_bytes = max_value;
	cfg.settings.max_sessions = max_sessions;
	CU_ASSERT_EQUAL(kv_snapshot_restore(&cfg, samples_stream_read, &m, &r), want);
	return r;
}

/*
 * The settings a snapshot holds win over the restoring node's, whatever those are: a follower
 * whose node has a smaller limit loads the leader's snapshot (it used to fail with KV_EFBIG, and
 * an install that fails stops the node) and applies what follows as the leader does. Whether the
 * node may serve with its options is the node's decision (kv_node refuses), not the loader's.
 */
static void test_a_snapshot_keeps_the_cluster_settings_whatever_the_restoring_node_has(void)
{
	struct kv_store *s = settled_store(), *r;
	struct samples_stream m = save(s);
	struct kv_settings set;
	struct kv_cmd c;
	char forty[41];

	r = restore_with(&m, 10, 2, KV_OK);
	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT_EQUAL(kv_store_settings(r, &set), kv_store_settings(s, NULL));
	CU_ASSERT_NOT_EQUAL(kv_store_settings(r, NULL), 0);
	CU_ASSERT_EQUAL(set.max_value_bytes, 64);
	CU_ASSERT_EQUAL(set.max_sessions, 8);
	CU_ASSERT_EQUAL(kv_store_hash(r), kv_store_hash(s));
	memset(forty, 'f', 40);
	forty[40] = '\0';
	c = mk(KV_OP_PUT, "forty");
	c.data = forty;
	c.data_len = 40;
	CU_ASSERT_EQUAL(samples_kv_apply(r, next_index, &c, NULL), KV_OK);
	CU_ASSERT_EQUAL(samples_kv_apply(s, next_index, &c, NULL), KV_OK);
	next_index++;
	for (int i = 0; i < 6; i++) { /* over the node's 2 sessions, within the cluster's 8 */
		c = mk(KV_OP_OPEN_SESSION, NULL);
		CU_ASSERT_EQUAL(samples_kv_apply(r, next_index, &c, NULL), KV_OK);
		CU_ASSERT_EQUAL(samples_kv_apply(s, next_index, &c, NULL), KV_OK);
		next_index++;
	}
	CU_ASSERT_EQUAL(kv_store_session_count(r), 8);
	CU_ASSERT_EQUAL(kv_store_hash(r), kv_store_hash(s));
	kv_store_free(r);
	CU_ASSERT_PTR_NULL(restore_with(&m, 0, 8, KV_EINVAL)); /* a bad node config is still bad */
	free(m.buf);
	kv_store_free(s);
}

/* A snapshot made before any Settings entry holds none: the store follows the restoring node's
 * own, as it did before (its values and sessions stay, even over those). */
static void test_a_snapshot_without_settings_follows_the_restoring_nodes_own(void)
{
	struct kv_store *s = small_store(), *r;
	struct samples_stream m = save(s);
	struct kv_settings set;
	struct kv_cmd c;

	r = restore_with(&m, 10, 2, KV_OK); /* holds a 20-byte value and 3 sessions */
	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT_EQUAL(kv_store_settings(r, &set), 0);
	CU_ASSERT_EQUAL(set.max_value_bytes, 10);
	CU_ASSERT_EQUAL(set.max_sessions, 2);
	CU_ASSERT_EQUAL(kv_store_hash(r), kv_store_hash(s));
	CU_ASSERT_EQUAL(kv_store_session_count(r), 3);
	c = mk(KV_OP_PUT, "k");
	c.data = "eleven byte";
	c.data_len = 11;
	CU_ASSERT_EQUAL(samples_kv_apply(r, next_index, &c, NULL), KV_EFBIG);
	kv_store_free(r);
	free(m.buf);
	kv_store_free(s);
}

/*
 * A version 1 stream (no settings), made by raftfs before the cluster's settings existed from
 * these commands, with the default configuration: OpenSession at 1 (T0), Mkdir d at 2 (T0 + 1,
 * 1000:100, 0755), Put d/f = 100 x 'x' in session 1 seq 1 at 3, Symlink l -> d/f at 4 (0777),
 * Put g = "hello" at 5 (0600), each at T0 + index - 1.
 */
static const unsigned char v1_snapshot[] = {
        0x4b, 0x56, 0x53, 0x31, 0x01, 0x00, 0x00, 0x00, 0x29, 0x00, 0x00, 0x00, 0x9c, 0x2c, 0xc6,
        0x47, 0x74, 0x70, 0x6c, 0x00, 0x29, 0x00, 0x00, 0x00, 0x75, 0x55, 0x55, 0x55, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x68, 0xe5, 0xcf,
        0x8b, 0x01, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4b, 0x56, 0x53,
        0x31, 0x02, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00, 0x00, 0xec, 0x7a, 0x07, 0x91, 0x74, 0x70,
        0x6c, 0x00, 0x79, 0x01, 0x00, 0x00, 0x41, 0x28, 0x75, 0x55, 0x75, 0x75, 0x75, 0x55, 0x55,
        0x42, 0x42, 0x29, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0xed, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x09, 0x67, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x00, 0x09, 0x67, 0x36, 0xfe,
        0x9c, 0x97, 0x17, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xed, 0x41, 0x00, 0x00, 0xe8, 0x03, 0x00,
        0x00, 0x64, 0x00, 0x00, 0x00, 0x80, 0x84, 0x48, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x80, 0x84,
        0x48, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x01, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa4, 0x81, 0x00,
        0x00, 0xe8, 0x03, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x80, 0x84, 0x48, 0x36, 0xfe, 0x9c,
        0x97, 0x17, 0x80, 0x84, 0x48, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x01, 0x00, 0x00, 0x00, 0x66,
        0x64, 0x00, 0x00, 0x00, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
        0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
        0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
        0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
        0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
        0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
        0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x01,
        0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x81, 0x00, 0x00,
        0xe8, 0x03, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x09, 0x67, 0x36, 0xfe, 0x9c, 0x97,
        0x17, 0x00, 0x09, 0x67, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x01, 0x00, 0x00, 0x00, 0x67, 0x05,
        0x00, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xa1, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00, 0x64, 0x00,
        0x00, 0x00, 0xc0, 0xc6, 0x57, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0xc0, 0xc6, 0x57, 0x36, 0xfe,
        0x9c, 0x97, 0x17, 0x01, 0x00, 0x00, 0x00, 0x6c, 0x03, 0x00, 0x00, 0x00, 0x64, 0x2f, 0x66,
        0x4b, 0x56, 0x53, 0x31, 0x03, 0x00, 0x00, 0x00, 0x75, 0x00, 0x00, 0x00, 0xfa, 0x24, 0xe3,
        0xf8, 0x74, 0x70, 0x6c, 0x00, 0x75, 0x00, 0x00, 0x00, 0x41, 0x28, 0x55, 0x55, 0x55, 0x42,
        0x29, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0x00, 0x00,
        0x45, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa4, 0x81, 0x00, 0x00, 0xe8,
        0x03, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x80, 0x84, 0x48, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x80, 0x84, 0x48,
        0x36, 0xfe, 0x9c, 0x97, 0x17, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4b, 0x56,
        0x53, 0x31, 0x04, 0x00, 0x00, 0x00, 0x1b, 0x00, 0x00, 0x00, 0x5d, 0xac, 0x54, 0x8d, 0x74,
        0x70, 0x6c, 0x00, 0x1b, 0x00, 0x00, 0x00, 0x55, 0x55, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};

static struct kv_store *v1_state(void)
{
	struct kv_store *s;
	struct kv_cmd c;
	char x[100];

	memset(x, 'x', sizeof(x));
	CU_ASSERT_EQUAL_FATAL(kv_store_new(NULL, &s), KV_OK);
	c = samples_kv_cmd(KV_OP_OPEN_SESSION, NULL, T0);
	c.uid = c.gid = c.mode = 0;
	CU_ASSERT_EQUAL(samples_kv_apply(s, 1, &c, NULL), KV_OK);
	c = samples_kv_cmd(KV_OP_MKDIR, "d", T0 + 1);
	c.mode = 0755;
	CU_ASSERT_EQUAL(samples_kv_apply(s, 2, &c, NULL), KV_OK);
	c = samples_kv_cmd(KV_OP_PUT, "d/f", T0 + 2);
	c.session = 1;
	c.seq = 1;
	c.data = x;
	c.data_len = sizeof(x);
	CU_ASSERT_EQUAL(samples_kv_apply(s, 3, &c, NULL), KV_OK);
	c = samples_kv_cmd(KV_OP_SYMLINK, "l", T0 + 3);
	c.mode = 0777;
	c.data = "d/f";
	c.data_len = 3;
	CU_ASSERT_EQUAL(samples_kv_apply(s, 4, &c, NULL), KV_OK);
	c = samples_kv_cmd(KV_OP_PUT, "g", T0 + 4);
	c.mode = 0600;
	c.data = "hello";
	c.data_len = 5;
	CU_ASSERT_EQUAL(samples_kv_apply(s, 5, &c, NULL), KV_OK);
	return s;
}

/* Old snapshots still load, into the state they were made from, following the restoring node's
 * settings (those they were made with, when the node kept its options), whatever its limits. */
static void test_a_version_1_snapshot_loads_and_follows_the_restoring_nodes_settings(void)
{
	struct samples_stream m = {.buf = (unsigned char *)v1_snapshot, .len = sizeof(v1_snapshot)};
	struct kv_store *want = v1_state(), *r;
	struct kv_settings set;
	void *v = NULL;
	size_t len = 0;
	bool exists = false;

	r = restore_with(&m, 16, 1, KV_OK);
	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT_EQUAL(kv_store_settings(r, &set), 0);
	CU_ASSERT_EQUAL(set.max_value_bytes, 16);
	CU_ASSERT_EQUAL(kv_store_applied_index(r), 5);
	CU_ASSERT_EQUAL(kv_store_hash(r), kv_store_hash(want));
	CU_ASSERT_EQUAL(kv_store_get(r, "d/f", 3, &v, &len, &exists, NULL), KV_OK);
	CU_ASSERT(exists && len == 100);
	raft_buf_unref(v);
	kv_store_free(r);
	r = restore_with(&m, KV_DEFAULT_MAX_VALUE_BYTES, KV_DEFAULT_MAX_SESSIONS, KV_OK);
	CU_ASSERT_FATAL(r != NULL);
	check_round_trip(r); /* saved again as version 2, the same state */
	kv_store_free(r);
	kv_store_free(want);
}

static CU_TestInfo tests[] = {
        {"a_new_store_survives_a_round_trip", test_a_new_store_survives_a_round_trip},
        {"a_small_store_survives_a_round_trip_with_identical_bytes",
         test_a_small_store_survives_a_round_trip_with_identical_bytes},
        {"a_big_store_survives_a_round_trip_with_identical_bytes",
         test_a_big_store_survives_a_round_trip_with_identical_bytes},
        {"a_restored_store_keeps_applying_like_the_original",
         test_a_restored_store_keeps_applying_like_the_original},
        {"every_truncation_is_refused", test_every_truncation_is_refused},
        {"every_byte_flip_is_refused", test_every_byte_flip_is_refused},
        {"checksummed_garbage_in_images_is_refused_or_sound",
         test_checksummed_garbage_in_images_is_refused_or_sound},
        {"a_refused_stream_names_the_bad_record_and_why",
         test_a_refused_stream_names_the_bad_record_and_why},
        {"two_keys_with_one_inode_number_are_refused",
         test_two_keys_with_one_inode_number_are_refused},
        {"a_failing_writer_aborts_the_save", test_a_failing_writer_aborts_the_save},
        {"restore_reads_exactly_the_snapshot", test_restore_reads_exactly_the_snapshot},
        {"a_store_with_the_clusters_settings_survives_a_round_trip",
         test_a_store_with_the_clusters_settings_survives_a_round_trip},
        {"a_snapshot_keeps_the_cluster_settings_whatever_the_restoring_node_has",
         test_a_snapshot_keeps_the_cluster_settings_whatever_the_restoring_node_has},
        {"a_snapshot_without_settings_follows_the_restoring_nodes_own",
         test_a_snapshot_without_settings_follows_the_restoring_nodes_own},
        {"a_version_1_snapshot_loads_and_follows_the_restoring_nodes_settings",
         test_a_version_1_snapshot_loads_and_follows_the_restoring_nodes_settings},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"kv_snapshot", NULL, NULL, NULL, NULL, tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	return cu_main(argc, argv, suites);
}
