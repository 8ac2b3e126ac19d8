/* test_storage.c - the durable storage: recovery, segments, snapshots, torn tails, corruption,
 * and fault sweeps on the in-memory file system. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raft/codec.h"
#include "raft/crc32c.h"
#include "raft/storage.h"
#include "raft/vfs.h"
#include "tests/lib/cu.h"

#define DIR "/data"

/* --- fixture ---------------------------------------------------------------------------------- */

struct fixture {
	struct raft_vfs *vfs;
	struct raft_storage *st;
	struct raft_restore r;
	uint64_t seg_bytes;
	uint64_t prealloc; /* raft_storage_options.prealloc_bytes */
	char last_warning[400];
	unsigned warnings;
};

static void fx_log(void *ctx, int level, const char *msg)
{
	struct fixture *fx = ctx;

	if (level >= 2) {
		snprintf(fx->last_warning, sizeof(fx->last_warning), "%s", msg);
		fx->warnings++;
	}
}

/* Opens a storage on fx->vfs; returns raft_storage_open's result (the storage stays in fx). */
static int fx_try_open(struct fixture *fx)
{
	struct raft_storage_options o = {.vfs = fx->vfs,
	                                 .segment_max_bytes = fx->seg_bytes,
	                                 .prealloc_bytes = fx->prealloc,
	                                 .log = fx_log,
	                                 .log_ctx = fx};
	int rc;

	rc = raft_storage_new(&o, &fx->st);
	if (rc != RAFT_OK) {
		fx->st = NULL;
		return rc;
	}
	return raft_storage_open(fx->st, DIR, &fx->r);
}

static void fx_close(struct fixture *fx)
{
	raft_storage_restore_free(&fx->r);
	raft_storage_free(fx->st);
	fx->st = NULL;
}

static void fx_open(struct fixture *fx)
{
	int rc = fx_try_open(fx);

	if (rc != RAFT_OK)
		fprintf(stderr, "open: %s\n", raft_storage_errmsg(fx->st));
	CU_ASSERT_EQUAL_FATAL(rc, RAFT_OK);
}

static void fx_reopen(struct fixture *fx)
{
	fx_close(fx);
	fx_open(fx);
}

/* A storage with segments of seg_bytes (0: the default) and preallocation steps of prealloc
 * (raft_storage_options.prealloc_bytes). */
static void fx_init_with(struct fixture *fx, uint64_t seg_bytes, uint64_t prealloc)
{
	memset(fx, 0, sizeof(*fx));
	fx->vfs = raft_vfs_mem_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(fx->vfs);
	fx->seg_bytes = seg_bytes;
	fx->prealloc = prealloc;
	fx_open(fx);
}

static void fx_init(struct fixture *fx, uint64_t seg_bytes)
{
	fx_init_with(fx, seg_bytes, 0);
}

static void fx_fini(struct fixture *fx)
{
	fx_close(fx);
	raft_vfs_free(fx->vfs);
}

/* Entry payloads are a function of (index, term), so any recovered entry can be checked. */
static uint32_t payload_len(uint64_t index)
{
	return (uint32_t)(20 + index % 50);
}

static unsigned char payload_byte(uint64_t index, uint64_t term, uint32_t j)
{
	return (unsigned char)(index * 31 + term * 7 + j);
}

static void entry_make(struct raft_entry *e, uint64_t index, uint64_t term)
{
	e->index = index;
	e->term = term;
	e->type = RAFT_ENTRY_NORMAL;
	e->len = payload_len(index);
	e->data = raft_buf_alloc(e->len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e->data);
	for (uint32_t j = 0; j < e->len; j++)
		((unsigned char *)e->data)[j] = payload_byte(index, term, j);
}

static bool entry_ok(const struct raft_entry *e, uint64_t index, uint64_t term)
{
	if (e->index != index || e->term != term || e->len != payload_len(index))
		return false;
	for (uint32_t j = 0; j < e->len; j++)
		if (((const unsigned char *)e->data)[j] != payload_byte(index, term, j))
			return false;
	return true;
}

/* Persists entries first..first+n-1 of term (and truncate_from, when not 0). */
static int persist_entries(struct raft_storage *st, uint64_t truncate_from, uint64_t first,
                           size_t n, uint64_t term)
{
	struct raft_entry *es = calloc(n ? n : 1, sizeof(*es));
	struct raft_update u;
	int rc;

	memset(&u, 0, sizeof(u));
	for (size_t i = 0; i < n; i++)
		entry_make(&es[i], first + i, term);
	u.persist_seq = 1;
	u.truncate_from = truncate_from;
	u.entries = es;
	u.n_entries = n;
	rc = raft_storage_persist(st, &u);
	for (size_t i = 0; i < n; i++)
		raft_buf_unref(es[i].data);
	free(es);
	return rc;
}

static int persist_hs(struct raft_storage *st, uint64_t term, uint32_t vote)
{
	struct raft_update u;

	memset(&u, 0, sizeof(u));
	u.persist_seq = 1;
	u.hs_changed = true;
	u.hs.term = term;
	u.hs.vote = vote;
	return raft_storage_persist(st, &u);
}

/* The image of a snapshot at index: bytes derived from the index. */
static unsigned char image_byte(uint64_t index, uint64_t j)
{
	return (unsigned char)(index ^ (j * 13));
}

/* CRC32C of the first size bytes of the image of index. */
static uint32_t image_crc(uint64_t index, uint64_t size)
{
	uint32_t crc = 0;

	for (uint64_t j = 0; j < size; j++) {
		unsigned char b = image_byte(index, j);
		crc = raft_crc32c(crc, &b, 1);
	}
	return crc;
}

static int snapshot_begin_at(struct raft_storage *st, uint64_t index, uint64_t term)
{
	struct raft_snapshot_meta m;

	memset(&m, 0, sizeof(m));
	m.index = index;
	m.term = term;
	m.conf.n = 3;
	m.conf.ids[0] = 1;
	m.conf.ids[1] = 2;
	m.conf.ids[2] = 3;
	return raft_storage_snapshot_begin(st, &m);
}

/* Writes image bytes [from, to) of the snapshot at index through img. */
static int image_fill(struct raft_storage_image *img, uint64_t index, uint64_t from, uint64_t to)
{
	unsigned char buf[61];
	int rc = RAFT_OK;

	while (rc == RAFT_OK && from < to) {
		size_t n = to - from < sizeof(buf) ? (size_t)(to - from) : sizeof(buf);
		for (size_t j = 0; j < n; j++)
			buf[j] = image_byte(index, from + j);
		rc = raft_storage_image_write(img, buf, n);
		from += n;
	}
	return rc;
}

/* A local snapshot at index whose image holds size image_byte()s, written inline. */
static int take_snapshot(struct raft_storage *st, uint64_t index, uint64_t term, size_t size)
{
	struct raft_storage_image img;
	int rc = snapshot_begin_at(st, index, term);

	if (rc != RAFT_OK)
		return rc;
	raft_storage_snapshot_image(st, &img);
	rc = image_fill(&img, index, 0, size);
	if (rc == RAFT_OK)
		rc = raft_storage_image_sync(&img);
	if (rc != RAFT_OK) {
		raft_storage_snapshot_abort(st);
		return rc;
	}
	return raft_storage_snapshot_install(st, img.size, img.crc);
}

/* A fixture (512-byte segments) whose log holds entries 1..n of term 1 and whose snapshot is
 * at index snap (term 1), of snap_bytes bytes. */
static void fx_init_with_snapshot(struct fixture *fx, uint64_t n, uint64_t snap, size_t snap_bytes)
{
	fx_init(fx, 512);
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx->st, 0, 1, n, 1), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(take_snapshot(fx->st, snap, 1, snap_bytes), RAFT_OK);
}

static bool image_ok(struct raft_storage *st, uint64_t index, uint64_t size)
{
	unsigned char buf[300];
	uint64_t off = 0;
	size_t got;

	for (;;) {
		if (raft_storage_snapshot_read(st, index, off, buf, sizeof(buf), &got) != RAFT_OK)
			return false;
		if (got == 0)
			break;
		for (size_t j = 0; j < got; j++)
			if (buf[j] != image_byte(index, off + j))
				return false;
		off += got;
	}
	return off == size;
}

/* Files in DIR whose names start with prefix. */
static size_t count_files(struct raft_vfs *vfs, const char *prefix)
{
	char **names;
	size_t n, count = 0;

	CU_ASSERT_EQUAL_FATAL(vfs->readdir(vfs, DIR, &names, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (strncmp(names[i], prefix, strlen(prefix)) == 0)
			count++;
	raft_vfs_names_free(names, n);
	return count;
}

static uint64_t file_size(struct raft_vfs *vfs, const char *name)
{
	char path[128];
	struct raft_vfs_file *f;
	uint64_t size = 0;

	snprintf(path, sizeof(path), DIR "/%s", name);
	if (vfs->open(vfs, path, RAFT_VFS_READ, &f) != 0)
		return UINT64_MAX;
	vfs->size(vfs, f, &size);
	vfs->close(vfs, f);
	return size;
}

/* XORs one byte of a file in place (synced, so it survives anything). */
static void file_flip(struct raft_vfs *vfs, const char *name, uint64_t off, unsigned char mask)
{
	char path[128];
	struct raft_vfs_file *f;
	unsigned char b;
	size_t got;

	snprintf(path, sizeof(path), DIR "/%s", name);
	CU_ASSERT_EQUAL_FATAL(vfs->open(vfs, path, RAFT_VFS_READ | RAFT_VFS_WRITE, &f), 0);
	CU_ASSERT_EQUAL_FATAL(vfs->pread(vfs, f, &b, 1, off, &got), 0);
	b ^= mask;
	CU_ASSERT_EQUAL_FATAL(vfs->pwrite(vfs, f, &b, 1, off), 0);
	CU_ASSERT_EQUAL_FATAL(vfs->fsync(vfs, f), 0);
	vfs->close(vfs, f);
}

/* --- recovery basics -------------------------------------------------------------------------- */

static void test_a_new_node_opens_with_nothing(void)
{
	struct fixture fx;

	fx_init(&fx, 0);
	CU_ASSERT_EQUAL(fx.r.hs.term, 0);
	CU_ASSERT_EQUAL(fx.r.hs.vote, 0);
	CU_ASSERT_EQUAL(fx.r.snap.index, 0);
	CU_ASSERT_EQUAL(fx.r.n_entries, 0);
	CU_ASSERT_EQUAL(raft_storage_last_index(fx.st), 0);
	fx_fini(&fx);
}

static void test_hard_state_and_entries_survive_a_clean_reopen(void)
{
	struct fixture fx;

	fx_init(&fx, 0);
	CU_ASSERT_EQUAL(persist_hs(fx.st, 3, 2), RAFT_OK);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 1, 10, 3), RAFT_OK);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 11, 5, 3), RAFT_OK);
	CU_ASSERT_EQUAL(persist_hs(fx.st, 4, 0), RAFT_OK);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.hs.term, 4);
	CU_ASSERT_EQUAL(fx.r.hs.vote, 0);
	CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, 15);
	for (size_t i = 0; i < 15; i++)
		CU_ASSERT_TRUE(entry_ok(&fx.r.entries[i], i + 1, 3));
	CU_ASSERT_EQUAL(raft_storage_last_index(fx.st), 15);
	/* and the log goes on where it stopped */
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 16, 1, 4), RAFT_OK);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, 16);
	CU_ASSERT_TRUE(entry_ok(&fx.r.entries[15], 16, 4));
	fx_fini(&fx);
}

static void test_hard_state_alternates_files_and_a_torn_newest_falls_back(void)
{
	struct fixture fx;

	fx_init(&fx, 0);
	CU_ASSERT_EQUAL(persist_hs(fx.st, 1, 1), RAFT_OK);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "metadata"), 1);
	CU_ASSERT_EQUAL(persist_hs(fx.st, 2, 2), RAFT_OK);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "metadata"), 2);
	CU_ASSERT_EQUAL(persist_hs(fx.st, 3, 3), RAFT_OK); /* metadata1 again */
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.hs.term, 3);
	/* damage the newest (metadata1): the previous one (term 2) is used, with a warning */
	file_flip(fx.vfs, "metadata1", 20, 0x01);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.hs.term, 2);
	CU_ASSERT_EQUAL(fx.r.hs.vote, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(fx.last_warning, "metadata1"));
	/* the next write goes to the damaged file, not over the good one */
	CU_ASSERT_EQUAL(persist_hs(fx.st, 5, 1), RAFT_OK);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.hs.term, 5);
	/* both damaged: refuse */
	file_flip(fx.vfs, "metadata1", 20, 0x01);
	file_flip(fx.vfs, "metadata2", 20, 0x01);
	fx_close(&fx);
	CU_ASSERT_EQUAL(fx_try_open(&fx), RAFT_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(raft_storage_errmsg(fx.st), "metadata"));
	fx_fini(&fx);
}

/* Records that each decode, yet make a log Raft cannot have: recovery refuses the start and
 * names the file and the byte (DESIGN.md 8) rather than hand the core such a log. Writes a hard
 * state of hs_term, entries 1-3 of term 2 and entry 4 of term term4, then checks that opening
 * again is refused with a message holding each of the needles. */
static void check_refused_log(uint64_t hs_term, uint64_t term4, const char *const needles[2])
{
	struct fixture fx;

	fx_init(&fx, 0);
	CU_ASSERT_EQUAL(persist_hs(fx.st, hs_term, 1), RAFT_OK);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 1, 3, 2), RAFT_OK);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 4, 1, term4), RAFT_OK);
	fx_close(&fx);
	CU_ASSERT_EQUAL(fx_try_open(&fx), RAFT_ECORRUPT);
	for (int i = 0; i < 2; i++)
		CU_ASSERT_PTR_NOT_NULL(strstr(raft_storage_errmsg(fx.st), needles[i]));
	fx_fini(&fx);
}

static void test_a_log_whose_terms_fall_refuses_open_naming_the_segment_and_byte(void)
{
	static const char *const needles[2] = {"wal-0000000000000001", "entry 4 at byte "};

	check_refused_log(5, 1, needles);
}

static void test_an_entry_past_the_hard_state_term_refuses_open(void)
{
	static const char *const needles[2] = {"wal-0000000000000001", "has term 3"};

	check_refused_log(2, 3, needles);
}

static void test_an_empty_metadata_file_beside_a_log_refuses_open(void)
{
	struct fixture fx;
	struct raft_vfs_file *f;

	fx_init(&fx, 0);
	CU_ASSERT_EQUAL(persist_hs(fx.st, 2, 1), RAFT_OK);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 1, 3, 2), RAFT_OK);
	fx_close(&fx);
	CU_ASSERT_EQUAL_FATAL(fx.vfs->open(fx.vfs, DIR "/metadata1", RAFT_VFS_WRITE, &f), 0);
	CU_ASSERT_EQUAL(fx.vfs->truncate(fx.vfs, f, 0), 0);
	CU_ASSERT_EQUAL(fx.vfs->fsync(fx.vfs, f), 0);
	fx.vfs->close(fx.vfs, f);
	CU_ASSERT_EQUAL(fx_try_open(&fx), RAFT_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(
	        strstr(raft_storage_errmsg(fx.st), "metadata1: corrupt record at byte 0"));
	fx_fini(&fx);
}

/* Writes a hard state record of sequence number seq into metadata2, durably, as a node
 * would have (or as damage would leave it). */
static void write_metadata2(struct fixture *fx, uint64_t seq, const struct raft_hard_state *hs)
{
	struct raft_codec_buf b;
	struct raft_vfs_file *f;

	raft_codec_buf_init(&b);
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_hard_state(&b, seq, hs), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(
	        fx->vfs->open(fx->vfs, DIR "/metadata2", RAFT_VFS_WRITE | RAFT_VFS_CREATE, &f), 0);
	CU_ASSERT_EQUAL(fx->vfs->pwrite(fx->vfs, f, b.data, b.len, 0), 0);
	CU_ASSERT_EQUAL(fx->vfs->fsync(fx->vfs, f), 0);
	fx->vfs->close(fx->vfs, f);
	CU_ASSERT_EQUAL(fx->vfs->sync_dir(fx->vfs, DIR), 0);
	raft_codec_buf_free(&b);
}

/* A metadata record whose sequence number no node reaches is damage: the next hard state
 * (written with the number after it) would wrap to 0 and lose to it at the next start. */
static void test_a_metadata_sequence_number_past_the_last_is_corrupt(void)
{
	struct raft_hard_state hs = {.term = 9, .vote = 3};
	struct fixture fx;

	fx_init(&fx, 0);
	CU_ASSERT_EQUAL(persist_hs(fx.st, 2, 1), RAFT_OK); /* metadata1, sequence 1 */
	fx_close(&fx);
	write_metadata2(&fx, UINT64_MAX, &hs);
	fx_open(&fx);
	CU_ASSERT_EQUAL(fx.r.hs.term, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(fx.last_warning, "metadata2: corrupt record at byte 0"));
	/* and what is written next is what the next start finds */
	CU_ASSERT_EQUAL(persist_hs(fx.st, 12, 2), RAFT_OK);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.hs.term, 12);
	fx_fini(&fx);
}

/* The last sequence number (2^63 - 1) is a valid record; the hard state written after it starts
 * the numbers again, in both files, so that the next start finds it and not the old one. */
static void test_the_hard_state_after_the_last_sequence_number_is_found_again(void)
{
	struct raft_hard_state hs = {.term = 9, .vote = 3};
	struct fixture fx;

	fx_init(&fx, 0);
	CU_ASSERT_EQUAL(persist_hs(fx.st, 2, 1), RAFT_OK); /* metadata1, sequence 1 */
	fx_close(&fx);
	write_metadata2(&fx, UINT64_MAX >> 1, &hs);
	fx_open(&fx);
	CU_ASSERT_EQUAL(fx.r.hs.term, 9);
	CU_ASSERT_EQUAL(persist_hs(fx.st, 12, 2), RAFT_OK);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.hs.term, 12);
	CU_ASSERT_EQUAL(fx.r.hs.vote, 2);
	CU_ASSERT_EQUAL(persist_hs(fx.st, 13, 1),
	                RAFT_OK); /* and the numbering goes on from there */
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.hs.term, 13);
	fx_fini(&fx);
}

/* --- segments --------------------------------------------------------------------------------- */

static void test_segments_rotate_at_the_size_bound(void)
{
	struct fixture fx;
	char **names;
	size_t n;

	fx_init(&fx, 1024);
	for (uint64_t i = 1; i <= 200; i += 10)
		CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, i, 10, 1), RAFT_OK);
	CU_ASSERT(count_files(fx.vfs, "wal-") >= 10);
	CU_ASSERT_EQUAL_FATAL(fx.vfs->readdir(fx.vfs, DIR, &names, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (strncmp(names[i], "wal-", 4) == 0)
			CU_ASSERT(file_size(fx.vfs, names[i]) <= 1024);
	raft_vfs_names_free(names, n);
	CU_ASSERT_EQUAL(file_size(fx.vfs, "wal-0000000000000001") > 0, true);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, 200);
	for (size_t i = 0; i < 200; i++)
		CU_ASSERT_TRUE(entry_ok(&fx.r.entries[i], i + 1, 1));
	fx_fini(&fx);
}

static void test_a_record_bigger_than_a_segment_gets_one_of_its_own(void)
{
	struct fixture fx;
	struct raft_entry e = {.index = 3, .term = 1, .type = RAFT_ENTRY_NORMAL, .len = 5000};

	fx_init(&fx, 1024);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 1, 2, 1), RAFT_OK);
	e.data = raft_buf_alloc(e.len);
	memset(e.data, 0x77, e.len);
	CU_ASSERT_EQUAL(raft_storage_append(fx.st, &e, 1), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_sync(fx.st), RAFT_OK);
	raft_buf_unref(e.data);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 4, 1, 1), RAFT_OK);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "wal-"), 3);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, 4);
	CU_ASSERT_EQUAL(fx.r.entries[2].len, 5000);
	CU_ASSERT_TRUE(entry_ok(&fx.r.entries[3], 4, 1));
	fx_fini(&fx);
}

static void test_suffix_truncation_across_segment_boundaries(void)
{
	struct fixture fx;

	fx_init(&fx, 512);
	for (uint64_t i = 1; i <= 100; i += 10)
		CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, i, 10, 2), RAFT_OK);
	CU_ASSERT(count_files(fx.vfs, "wal-") >= 8);
	/* a new leader overwrites from 37 on: later segments go, the one holding 37 is cut */
	CU_ASSERT_EQUAL(persist_entries(fx.st, 37, 37, 3, 5), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_last_index(fx.st), 39);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, 39);
	for (uint64_t i = 1; i <= 39; i++)
		CU_ASSERT_TRUE(entry_ok(&fx.r.entries[i - 1], i, i < 37 ? 2 : 5));
	/* truncating exactly at a segment's first index removes that segment too */
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 40, 30, 5), RAFT_OK);
	{
		char **names;
		size_t n;
		uint64_t cut = 0;
		CU_ASSERT_EQUAL_FATAL(fx.vfs->readdir(fx.vfs, DIR, &names, &n), 0);
		for (size_t i = 0; i < n; i++) {
			unsigned long long v;
			if (sscanf(names[i], "wal-%llx", &v) == 1 && v > 40 &&
			    (cut == 0 || v < cut))
				cut = v;
		}
		raft_vfs_names_free(names, n);
		CU_ASSERT_FATAL(cut > 40);
		CU_ASSERT_EQUAL(persist_entries(fx.st, cut, cut, 1, 6), RAFT_OK);
		fx_reopen(&fx);
		CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, cut);
		CU_ASSERT_TRUE(entry_ok(&fx.r.entries[cut - 1], cut, 6));
		CU_ASSERT_TRUE(entry_ok(&fx.r.entries[cut - 2], cut - 1, 5));
	}
	/* truncating everything after the snapshot-less start leaves an empty log */
	CU_ASSERT_EQUAL(persist_entries(fx.st, 1, 1, 0, 0), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_last_index(fx.st), 0);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "wal-"), 0);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.n_entries, 0);
	fx_fini(&fx);
}

static void test_appends_out_of_order_are_refused_without_stopping(void)
{
	struct fixture fx;

	fx_init(&fx, 0);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 1, 3, 1), RAFT_OK);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 5, 1, 1), RAFT_EINVAL);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 3, 1, 1), RAFT_EINVAL);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 4, 1, 1), RAFT_OK);
	fx_fini(&fx);
}

/* --- snapshots -------------------------------------------------------------------------------- */

static void test_a_snapshot_removes_the_segments_it_covers(void)
{
	struct fixture fx;
	struct raft_snapshot_meta m;
	size_t before;

	fx_init(&fx, 512);
	for (uint64_t i = 1; i <= 100; i += 10)
		CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, i, 10, 2), RAFT_OK);
	before = count_files(fx.vfs, "wal-");
	CU_ASSERT_EQUAL(take_snapshot(fx.st, 50, 2, 1000), RAFT_OK);
	CU_ASSERT(count_files(fx.vfs, "wal-") < before);
	CU_ASSERT(count_files(fx.vfs, "wal-") > 0);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "snapshot-"), 2);
	CU_ASSERT_EQUAL(raft_storage_snapshot_meta(fx.st, &m), RAFT_OK);
	CU_ASSERT_EQUAL(m.size, 1000);
	CU_ASSERT_TRUE(image_ok(fx.st, 50, 1000));
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.snap.index, 50);
	CU_ASSERT_EQUAL(fx.r.snap.term, 2);
	CU_ASSERT_EQUAL(fx.r.snap.size, 1000);
	CU_ASSERT_EQUAL(fx.r.snap.conf.n, 3);
	CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, 50);
	CU_ASSERT_TRUE(entry_ok(&fx.r.entries[0], 51, 2));
	CU_ASSERT_TRUE(image_ok(fx.st, 50, 1000));
	/* a snapshot covering the whole log removes every segment; appends continue after it */
	CU_ASSERT_EQUAL(take_snapshot(fx.st, 100, 2, 10), RAFT_OK);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "wal-"), 0);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "snapshot-"), 2);
	CU_ASSERT_EQUAL(raft_storage_snapshot_read(fx.st, 50, 0, &m, 1, &before), RAFT_ENOENT);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 101, 2, 3), RAFT_OK);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.snap.index, 100);
	CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, 2);
	CU_ASSERT_TRUE(entry_ok(&fx.r.entries[1], 102, 3));
	/* truncation into the snapshot is refused, but does not stop the storage */
	CU_ASSERT_EQUAL(raft_storage_truncate(fx.st, 100), RAFT_EINVAL);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 103, 1, 3), RAFT_OK);
	fx_fini(&fx);
}

/* Fails the nth call of kind op during a snapshot commit, crashes, and checks that the old
 * snapshot or the new one is there, never neither. */
static void test_snapshot_replacement_keeps_the_old_one_until_the_new_is_durable(void)
{
	static const enum raft_vfs_op ops[] = {RAFT_VFS_OP_WRITE,    RAFT_VFS_OP_SYNC,
	                                       RAFT_VFS_OP_SYNC_DIR, RAFT_VFS_OP_RENAME,
	                                       RAFT_VFS_OP_UNLINK,   RAFT_VFS_OP_OPEN};
	unsigned saw_old = 0, saw_new = 0;

	for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
		for (unsigned long nth = 1;; nth++) {
			struct fixture fx;
			bool fired;
			int rc;
			fx_init_with_snapshot(&fx, 40, 10, 500);
			raft_vfs_mem_fail(fx.vfs, ops[k], nth, EIO, false);
			rc = take_snapshot(fx.st, 30, 1, 700);
			fired = raft_vfs_mem_fault_fired(fx.vfs);
			raft_vfs_mem_clear_faults(fx.vfs);
			if (fired)
				CU_ASSERT(rc != RAFT_OK);
			raft_vfs_mem_crash(fx.vfs, 0);
			fx_reopen(&fx);
			CU_ASSERT(fx.r.snap.index == 10 || fx.r.snap.index == 30);
			if (fx.r.snap.index == 10) {
				saw_old++;
				CU_ASSERT_TRUE(image_ok(fx.st, 10, 500));
				CU_ASSERT_EQUAL(fx.r.n_entries, 30);
			} else {
				saw_new++;
				CU_ASSERT_TRUE(image_ok(fx.st, 30, 700));
				CU_ASSERT_EQUAL(fx.r.n_entries, 10);
			}
			CU_ASSERT_EQUAL(fx.r.entries[fx.r.n_entries - 1].index, 40);
			CU_ASSERT_EQUAL(count_files(fx.vfs, "snapshot-"), 2);
			fx_fini(&fx);
			if (!fired)
				break;
		}
	}
	CU_ASSERT(saw_old > 0);
	CU_ASSERT(saw_new > 0);
}

static int persist_chunk(struct raft_storage *st, const struct raft_snapshot_meta *m,
                         uint64_t offset, uint32_t len, bool last)
{
	unsigned char *data = malloc(len ? len : 1);
	struct raft_update u;
	int rc;

	for (uint32_t j = 0; j < len; j++)
		data[j] = image_byte(m->index, offset + j);
	memset(&u, 0, sizeof(u));
	u.persist_seq = 1;
	u.has_snap_chunk = true;
	u.snap_meta = *m;
	u.snap_offset = offset;
	u.snap_len = len;
	u.snap_data = data;
	u.snap_last = last;
	rc = raft_storage_persist(st, &u);
	free(data);
	return rc;
}

/* --- snapshots written apart (raft_storage_snapshot_image: a forked child) -------------------- */

static void test_a_snapshot_image_written_apart_is_installed_after_more_appends(void)
{
	struct fixture fx;
	struct raft_storage_image img;
	struct raft_snapshot_meta m;
	size_t wal_before;

	fx_init(&fx, 512);
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 1, 40, 1), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(snapshot_begin_at(fx.st, 30, 1), RAFT_OK);
	raft_storage_snapshot_image(fx.st, &img);
	CU_ASSERT_EQUAL(image_fill(&img, 30, 0, 300), RAFT_OK);
	/* the loop goes on meanwhile: the log grows and is synced, a suffix is even replaced */
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 41, 20, 1), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 55, 55, 10, 2), RAFT_OK);
	CU_ASSERT_EQUAL(image_fill(&img, 30, 300, 700), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_image_sync(&img), RAFT_OK);
	CU_ASSERT_EQUAL(img.size, 700);
	CU_ASSERT_EQUAL(raft_storage_snapshot_meta(fx.st, &m), RAFT_ENOENT); /* not yet */
	wal_before = count_files(fx.vfs, "wal-");
	CU_ASSERT_EQUAL_FATAL(raft_storage_snapshot_install(fx.st, img.size, img.crc), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_snapshot_meta(fx.st, &m), RAFT_OK);
	CU_ASSERT_EQUAL(m.index, 30);
	CU_ASSERT_EQUAL(m.size, 700);
	CU_ASSERT_TRUE(image_ok(fx.st, 30, 700));
	CU_ASSERT(count_files(fx.vfs, "wal-") < wal_before);
	CU_ASSERT_EQUAL(raft_storage_last_index(fx.st), 64);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "snapshot-"), 2); /* .meta and .data, no .tmp */
	/* durable: a power loss right after install keeps the snapshot and the log after it */
	raft_vfs_mem_crash(fx.vfs, 0);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.snap.index, 30);
	CU_ASSERT_EQUAL(fx.r.snap.size, 700);
	CU_ASSERT_TRUE(image_ok(fx.st, 30, 700));
	CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, 34);
	CU_ASSERT_TRUE(entry_ok(&fx.r.entries[0], 31, 1));
	CU_ASSERT_TRUE(entry_ok(&fx.r.entries[24], 55, 2));
	CU_ASSERT_TRUE(entry_ok(&fx.r.entries[33], 64, 2));
	fx_fini(&fx);
}

static void test_a_snapshot_image_is_discarded_when_a_newer_snapshot_was_installed_meanwhile(void)
{
	struct fixture fx;
	struct raft_storage_image img;
	struct raft_snapshot_meta m, lm;

	fx_init(&fx, 512);
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 1, 40, 1), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(snapshot_begin_at(fx.st, 30, 1), RAFT_OK);
	raft_storage_snapshot_image(fx.st, &img);
	CU_ASSERT_EQUAL(image_fill(&img, 30, 0, 700), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_image_sync(&img), RAFT_OK);
	/* the leader's snapshot lands before the local one is installed: it wins */
	memset(&lm, 0, sizeof(lm));
	lm.index = 50;
	lm.term = 2;
	lm.size = 300;
	lm.crc = image_crc(50, 300);
	lm.conf.n = 3;
	lm.conf.ids[0] = 1;
	lm.conf.ids[1] = 2;
	lm.conf.ids[2] = 3;
	CU_ASSERT_EQUAL_FATAL(persist_chunk(fx.st, &lm, 0, 300, true), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_snapshot_install(fx.st, img.size, img.crc), RAFT_ENOENT);
	CU_ASSERT_EQUAL(raft_storage_snapshot_meta(fx.st, &m), RAFT_OK);
	CU_ASSERT_EQUAL(m.index, 50);
	CU_ASSERT_TRUE(image_ok(fx.st, 50, 300));
	CU_ASSERT_EQUAL(count_files(fx.vfs, "snapshot-"), 2); /* the local image is gone */
	/* the storage goes on: appends after the leader's snapshot, and a next local one */
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 51, 10, 2), RAFT_OK);
	CU_ASSERT_EQUAL(take_snapshot(fx.st, 55, 2, 100), RAFT_OK);
	/* an image whose file does not hold what was reported is refused, and removed */
	CU_ASSERT_EQUAL_FATAL(snapshot_begin_at(fx.st, 58, 2), RAFT_OK);
	raft_storage_snapshot_image(fx.st, &img);
	CU_ASSERT_EQUAL(image_fill(&img, 58, 0, 100), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_snapshot_install(fx.st, img.size + 1, img.crc), RAFT_ECORRUPT);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "snapshot-"), 2);
	CU_ASSERT_EQUAL(raft_storage_snapshot_meta(fx.st, &m), RAFT_OK);
	CU_ASSERT_EQUAL(m.index, 55);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.snap.index, 55);
	CU_ASSERT_TRUE(image_ok(fx.st, 55, 100));
	CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, 5);
	CU_ASSERT_TRUE(entry_ok(&fx.r.entries[4], 60, 2));
	fx_fini(&fx);
}

static void test_a_failed_image_write_stops_nothing_and_abort_removes_the_image(void)
{
	struct fixture fx;
	struct raft_storage_image img;
	struct raft_snapshot_meta m;

	fx_init(&fx, 512);
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 1, 40, 1), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(snapshot_begin_at(fx.st, 30, 1), RAFT_OK);
	raft_storage_snapshot_image(fx.st, &img);
	raft_vfs_mem_fail(fx.vfs, RAFT_VFS_OP_SYNC, 1, EIO, false);
	CU_ASSERT_EQUAL(image_fill(&img, 30, 0, 500), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_image_sync(&img), RAFT_EIO);
	CU_ASSERT_EQUAL(img.err, EIO);
	CU_ASSERT_EQUAL(raft_storage_image_write(&img, "x", 1), RAFT_EIO); /* sticky */
	raft_vfs_mem_clear_faults(fx.vfs);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "snapshot-"), 1);
	raft_storage_snapshot_abort(fx.st);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "snapshot-"), 0);
	/* the log was never in danger: appends and a later snapshot work */
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 41, 5, 1), RAFT_OK);
	CU_ASSERT_EQUAL(take_snapshot(fx.st, 42, 1, 64), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_snapshot_meta(fx.st, &m), RAFT_OK);
	CU_ASSERT_EQUAL(m.index, 42);
	fx_fini(&fx);
}

static void test_a_snapshot_image_left_by_a_crash_is_removed_at_open(void)
{
	struct fixture fx;
	struct raft_storage_image img;

	fx_init_with_snapshot(&fx, 40, 10, 200);
	CU_ASSERT_EQUAL_FATAL(snapshot_begin_at(fx.st, 30, 1), RAFT_OK);
	raft_storage_snapshot_image(fx.st, &img);
	CU_ASSERT_EQUAL(image_fill(&img, 30, 0, 700), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_image_sync(&img), RAFT_OK);
	/* the process dies with the image written, before install; its name is durable */
	CU_ASSERT_EQUAL_FATAL(fx.vfs->sync_dir(fx.vfs, DIR), 0);
	raft_vfs_mem_crash(fx.vfs, 0);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "snapshot-"), 3);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "snapshot-"), 2);
	CU_ASSERT_EQUAL(file_size(fx.vfs, "snapshot-000000000000001e-0000000000000001.data.tmp"),
	                UINT64_MAX);
	CU_ASSERT_EQUAL(fx.r.snap.index, 10);
	CU_ASSERT_TRUE(image_ok(fx.st, 10, 200));
	CU_ASSERT_EQUAL(fx.r.n_entries, 30);
	/* and the same snapshot can be taken again */
	CU_ASSERT_EQUAL(take_snapshot(fx.st, 30, 1, 700), RAFT_OK);
	CU_ASSERT_TRUE(image_ok(fx.st, 30, 700));
	fx_fini(&fx);
}

/* The metadata of a snapshot arriving from a leader: index 500, term 9, size bytes, config {4}. */
static struct raft_snapshot_meta leader_snapshot_meta(uint64_t size)
{
	struct raft_snapshot_meta m;

	memset(&m, 0, sizeof(m));
	m.index = 500;
	m.term = 9;
	m.size = size;
	m.crc = image_crc(500, size);
	m.conf.n = 1;
	m.conf.ids[0] = 4;
	return m;
}

static void test_incoming_snapshot_chunks_replace_the_snapshot_and_the_whole_log(void)
{
	struct fixture fx;
	struct raft_snapshot_meta m;

	fx_init_with_snapshot(&fx, 60, 20, 100);
	m = leader_snapshot_meta(2500);
	CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 0, 1000, false), RAFT_OK);
	/* a chunk that does not follow is refused, and the storage goes on */
	CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 1500, 1000, false), RAFT_EINVAL);
	CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 1000, 1000, true), RAFT_EINVAL);
	CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 1000, 1000, false), RAFT_OK);
	/* nothing changed yet */
	CU_ASSERT_EQUAL(raft_storage_last_index(fx.st), 60);
	CU_ASSERT_TRUE(image_ok(fx.st, 20, 100));
	CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 2000, 500, true), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_last_index(fx.st), 500);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "wal-"), 0);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "snapshot-"), 2);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "incoming-"), 0);
	CU_ASSERT_TRUE(image_ok(fx.st, 500, 2500));
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 501, 3, 9), RAFT_OK);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.snap.index, 500);
	CU_ASSERT_EQUAL(fx.r.snap.term, 9);
	CU_ASSERT_EQUAL(fx.r.snap.conf.ids[0], 4);
	CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, 3);
	CU_ASSERT_TRUE(entry_ok(&fx.r.entries[0], 501, 9));
	CU_ASSERT_TRUE(image_ok(fx.st, 500, 2500));
	fx_fini(&fx);
}

/* Chunks before the last are written without a sync of their own: a crash in the middle of a
 * transfer (keeping none, some or all of the unsynced bytes) leaves the old snapshot and log,
 * no temporary file, and a transfer that starts again from offset 0 installs cleanly. */
static void test_a_crash_in_the_middle_of_an_incoming_snapshot_leaves_the_old_state(void)
{
	for (int keep = 0; keep <= 2; keep++) {
		struct fixture fx;
		struct raft_snapshot_meta m;
		unsigned syncs;

		fx_init_with_snapshot(&fx, 60, 20, 100);
		m = leader_snapshot_meta(2500);
		syncs = raft_vfs_mem_calls(fx.vfs, RAFT_VFS_OP_SYNC);
		CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 0, 1000, false), RAFT_OK);
		CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 1000, 1000, false), RAFT_OK);
		/* the chunks cost no sync of the image */
		CU_ASSERT_EQUAL(raft_vfs_mem_calls(fx.vfs, RAFT_VFS_OP_SYNC), syncs);
		raft_vfs_mem_crash(fx.vfs, keep == 0 ? 0 : keep == 1 ? 700 : 100000);
		fx_reopen(&fx);
		CU_ASSERT_EQUAL(fx.r.snap.index, 20);
		CU_ASSERT_EQUAL(fx.r.n_entries, 40); /* 21..60 */
		CU_ASSERT_TRUE(image_ok(fx.st, 20, 100));
		CU_ASSERT_EQUAL(count_files(fx.vfs, "incoming-"), 0);
		CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 0, 1000, false), RAFT_OK);
		CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 1000, 1000, false), RAFT_OK);
		CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 2000, 500, true), RAFT_OK);
		raft_vfs_mem_crash(fx.vfs, 0); /* the install is durable */
		fx_reopen(&fx);
		CU_ASSERT_EQUAL(fx.r.snap.index, 500);
		CU_ASSERT_EQUAL(fx.r.n_entries, 0);
		CU_ASSERT_TRUE(image_ok(fx.st, 500, 2500));
		fx_fini(&fx);
	}
}

/* The state a refused or unfinished install must leave: snapshot 20, entries 21..60, no
 * temporary file (after a crash, once reopened). */
static void check_old_state_kept(struct fixture *fx, uint64_t segs, bool crashed)
{
	if (crashed)
		fx_reopen(fx);
	CU_ASSERT_FALSE(raft_storage_stopped(fx->st));
	CU_ASSERT_EQUAL(raft_storage_last_index(fx->st), 60);
	CU_ASSERT_TRUE(image_ok(fx->st, 20, 100));
	CU_ASSERT_EQUAL(count_files(fx->vfs, "wal-"), segs);
	CU_ASSERT_EQUAL(count_files(fx->vfs, "incoming-"), 0);
	fx_reopen(fx);
	CU_ASSERT_EQUAL(fx->r.snap.index, 20);
	CU_ASSERT_EQUAL_FATAL(fx->r.n_entries, 40);
	CU_ASSERT_TRUE(entry_ok(&fx->r.entries[39], 60, 1));
}

/* An image whose bytes or CRC differ from the leader's metadata is refused at its last chunk
 * (RAFT_ECORRUPT, the message naming the file and both CRCs); the storage goes on, the old
 * snapshot and log are untouched. Before, it replaced them. */
static void test_an_incoming_image_that_does_not_match_the_leaders_crc_is_refused(void)
{
	for (int how = 0; how < 3; how++) {
		struct fixture fx;
		struct raft_snapshot_meta m;
		size_t segs;

		fx_init_with_snapshot(&fx, 60, 20, 100);
		segs = count_files(fx.vfs, "wal-");
		m = leader_snapshot_meta(2500);
		if (how == 0)
			m.crc ^= 1; /* the leader's CRC is not the image's */
		CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 0, 1000, false), RAFT_OK);
		if (how == 1) /* a byte of the image spoiled on the disk after it was written */
			file_flip(fx.vfs, "incoming-00000000000001f4-0000000000000009.data.tmp",
			          777, 4);
		CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 1000, 1000, false), RAFT_OK);
		if (how == 2) { /* a chunk is lost: the last one ends short of the size */
			CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 2000, 499, true), RAFT_EINVAL);
		} else {
			CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 2000, 500, true), RAFT_ECORRUPT);
		}
		if (how < 2) {
			CU_ASSERT_PTR_NOT_NULL(strstr(raft_storage_errmsg(fx.st), "incoming-"));
			CU_ASSERT_PTR_NOT_NULL(strstr(raft_storage_errmsg(fx.st), "CRC"));
		}
		if (how == 2) /* the bad chunk changed nothing: a restart removes the transfer */
			raft_vfs_mem_crash(fx.vfs, 0);
		check_old_state_kept(&fx, segs, how == 2);
		/* and the next transfer, a good one, installs */
		m = leader_snapshot_meta(2500);
		CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 0, 2500, true), RAFT_OK);
		CU_ASSERT_TRUE(image_ok(fx.st, 500, 2500));
		CU_ASSERT_EQUAL(count_files(fx.vfs, "wal-"), 0);
		fx_fini(&fx);
	}
}

/* Stage, then commit or abandon: a staged image (checked) can be read while it replaces
 * nothing yet; abandoned, or cut by a crash, it leaves the old state as it was; committed, it
 * becomes the snapshot, and the old one and the log go. */
static void test_a_staged_image_replaces_nothing_until_committed(void)
{
	for (int end = 0; end < 3; end++) {
		struct fixture fx;
		struct raft_snapshot_meta m = leader_snapshot_meta(2500);
		struct raft_update u;
		unsigned char *data = malloc(2500), buf[100];
		size_t segs, got;

		CU_ASSERT_PTR_NOT_NULL_FATAL(data);
		for (uint32_t j = 0; j < 2500; j++)
			data[j] = image_byte(500, j);
		fx_init_with_snapshot(&fx, 60, 20, 100);
		segs = count_files(fx.vfs, "wal-");
		memset(&u, 0, sizeof(u));
		u.persist_seq = 1;
		u.has_snap_chunk = true;
		u.snap_meta = m;
		u.snap_len = 2500;
		u.snap_data = data;
		u.snap_last = true;
		CU_ASSERT_EQUAL_FATAL(raft_storage_persist_stage(fx.st, &u), RAFT_OK);
		CU_ASSERT_EQUAL(raft_storage_staged_read(fx.st, 500, 2400, buf, sizeof(buf), &got),
		                RAFT_OK);
		CU_ASSERT_EQUAL(got, 100);
		CU_ASSERT_EQUAL(buf[7], image_byte(500, 2407));
		CU_ASSERT_EQUAL(raft_storage_staged_read(fx.st, 499, 0, buf, 1, &got), RAFT_ENOENT);
		CU_ASSERT_EQUAL(raft_storage_last_index(fx.st), 60);
		CU_ASSERT_TRUE(image_ok(fx.st, 20, 100));
		/* nothing else is persisted while an image is staged */
		CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 61, 1, 1), RAFT_EINVAL);
		if (end == 0) {
			raft_storage_persist_abandon(fx.st);
			check_old_state_kept(&fx, segs, false);
		} else if (end == 1) {
			raft_vfs_mem_crash(fx.vfs, 0);
			check_old_state_kept(&fx, segs, true);
		} else {
			CU_ASSERT_EQUAL(raft_storage_persist_commit(fx.st, &u), RAFT_OK);
			CU_ASSERT_EQUAL(raft_storage_staged_read(fx.st, 500, 0, buf, 1, &got),
			                RAFT_ENOENT);
			CU_ASSERT_TRUE(image_ok(fx.st, 500, 2500));
			CU_ASSERT_EQUAL(count_files(fx.vfs, "wal-"), 0);
			fx_reopen(&fx);
			CU_ASSERT_EQUAL(fx.r.snap.index, 500);
			CU_ASSERT_EQUAL(fx.r.snap.crc, m.crc);
			CU_ASSERT_EQUAL(fx.r.n_entries, 0);
		}
		free(data);
		fx_fini(&fx);
	}
}

/* A large image, incoming or local, is fdatasynced every RAFT_STORAGE_IMAGE_SYNC_BYTES, so
 * that it never has much more than that ahead of the log's own syncs in the disk's queue. */
static void test_a_large_snapshot_image_is_synced_in_steps(void)
{
	const uint32_t chunk = 1u << 20, n = 2 * (RAFT_STORAGE_IMAGE_SYNC_BYTES / (1u << 20)) + 3;
	struct raft_storage_image img;
	struct raft_snapshot_meta m;
	struct fixture fx;
	unsigned long syncs;

	fx_init(&fx, 512);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 1, 60, 1), RAFT_OK);
	m = leader_snapshot_meta((uint64_t)n * chunk);
	syncs = raft_vfs_mem_calls(fx.vfs, RAFT_VFS_OP_SYNC);
	for (uint32_t i = 0; i + 1 < n; i++)
		CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, (uint64_t)i * chunk, chunk, false),
		                RAFT_OK);
	CU_ASSERT_EQUAL(raft_vfs_mem_calls(fx.vfs, RAFT_VFS_OP_SYNC) - syncs, 2);
	CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, (uint64_t)(n - 1) * chunk, chunk, true), RAFT_OK);
	CU_ASSERT_TRUE(image_ok(fx.st, 500, m.size));
	/* a local image written apart: the same steps */
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 501, 10, 9), RAFT_OK);
	CU_ASSERT_EQUAL(snapshot_begin_at(fx.st, 505, 9), RAFT_OK);
	raft_storage_snapshot_image(fx.st, &img);
	syncs = raft_vfs_mem_calls(fx.vfs, RAFT_VFS_OP_SYNC);
	CU_ASSERT_EQUAL(image_fill(&img, 505, 0, (uint64_t)n * chunk), RAFT_OK);
	CU_ASSERT_EQUAL(raft_vfs_mem_calls(fx.vfs, RAFT_VFS_OP_SYNC) - syncs, 2);
	/* image_fill writes 61 bytes at a time: each step ends within 61 bytes past its mark */
	CU_ASSERT(img.synced >= 2ull * RAFT_STORAGE_IMAGE_SYNC_BYTES);
	CU_ASSERT(img.synced < 2ull * RAFT_STORAGE_IMAGE_SYNC_BYTES + 2 * 61);
	CU_ASSERT_EQUAL(raft_storage_image_sync(&img), RAFT_OK);
	CU_ASSERT_EQUAL(raft_storage_snapshot_install(fx.st, img.size, img.crc), RAFT_OK);
	CU_ASSERT_TRUE(image_ok(fx.st, 505, (uint64_t)n * chunk));
	fx_fini(&fx);
}

/* A crash after an incoming snapshot became durable but before the old log was removed: the
 * conflicting log must not come back after the snapshot. */
static void test_a_log_conflicting_with_the_snapshot_is_dropped_at_open(void)
{
	struct fixture fx;
	struct raft_snapshot_meta m;

	fx_init(&fx, 512);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 1, 60, 1), RAFT_OK);
	memset(&m, 0, sizeof(m));
	m.index = 30; /* inside the log, but with another term */
	m.term = 4;
	m.size = 10;
	m.crc = image_crc(30, 10);
	/* fail the removal of the first segment: the snapshot is durable, the log is still there */
	raft_vfs_mem_fail(fx.vfs, RAFT_VFS_OP_UNLINK, 1, EIO, false);
	CU_ASSERT_EQUAL(persist_chunk(fx.st, &m, 0, 10, true), RAFT_EIO);
	raft_vfs_mem_clear_faults(fx.vfs);
	raft_vfs_mem_crash(fx.vfs, 0);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.snap.index, 30);
	CU_ASSERT_EQUAL(fx.r.n_entries, 0);
	CU_ASSERT_EQUAL(raft_storage_last_index(fx.st), 30);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "wal-"), 0);
	fx_fini(&fx);
}

/* --- torn tails and corruption ---------------------------------------------------------------- */

/* The last record is written but its fdatasync fails; a crash keeps k of its bytes, for every
 * k from 0 to all of them. Open cuts the torn record (logging it) and keeps the rest. With
 * preallocation the record was written into zeros that stay behind the torn prefix. */
static void torn_last_record_at_every_byte_offset(uint64_t prealloc)
{
	uint64_t rec_start, rec_end, all;
	bool pre = prealloc != RAFT_STORAGE_PREALLOC_OFF;
	struct fixture fx;

	/* learn where the last record lies (records are the same with or without preallocation) */
	fx_init_with(&fx, 0, RAFT_STORAGE_PREALLOC_OFF);
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 1, 5, 1), RAFT_OK);
	rec_start = file_size(fx.vfs, "wal-0000000000000001");
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 6, 1, 1), RAFT_OK);
	rec_end = file_size(fx.vfs, "wal-0000000000000001");
	fx_fini(&fx);
	CU_ASSERT_FATAL(rec_end > rec_start + 20);
	all = rec_end - rec_start;

	for (uint64_t k = 0; k <= all; k++) {
		fx_init_with(&fx, 0, prealloc);
		CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 1, 5, 1), RAFT_OK);
		raft_vfs_mem_fail(fx.vfs, RAFT_VFS_OP_SYNC, 1, EIO, false);
		CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 6, 1, 1), RAFT_EIO);
		CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 6, 1, 1), RAFT_ESHUTDOWN);
		raft_vfs_mem_crash(fx.vfs, (size_t)k);
		if (pre) { /* the synced space outlives the crash */
			CU_ASSERT(file_size(fx.vfs, "wal-0000000000000001") >= rec_end);
		} else {
			CU_ASSERT_EQUAL(file_size(fx.vfs, "wal-0000000000000001"), rec_start + k);
		}
		fx.warnings = 0;
		fx_reopen(&fx);
		if (k == all) {
			CU_ASSERT_EQUAL(fx.r.n_entries, 6); /* all of it made it after all */
			CU_ASSERT_EQUAL(fx.warnings, 0);
		} else {
			CU_ASSERT_EQUAL(fx.r.n_entries, 5);
			if (k > 0) {
				CU_ASSERT_EQUAL(fx.warnings, 1);
				CU_ASSERT_PTR_NOT_NULL(strstr(fx.last_warning, "torn record"));
				CU_ASSERT_EQUAL(file_size(fx.vfs, "wal-0000000000000001"),
				                rec_start);
			} else {
				/* nothing of it reached the disk: zeros, or the end of the file */
				CU_ASSERT_EQUAL(fx.warnings, 0);
				if (!pre) {
					CU_ASSERT_EQUAL(file_size(fx.vfs, "wal-0000000000000001"),
					                rec_start);
				}
			}
		}
		for (size_t i = 0; i < 5; i++)
			CU_ASSERT_TRUE(entry_ok(&fx.r.entries[i], i + 1, 1));
		/* the repaired log takes appends and reopens cleanly */
		CU_ASSERT_EQUAL(persist_entries(fx.st, 0, fx.r.n_entries + 1, 1, 2), RAFT_OK);
		fx_reopen(&fx);
		CU_ASSERT_EQUAL(fx.warnings, k > 0 && k < all ? 1 : 0);
		CU_ASSERT_EQUAL(fx.r.n_entries, k == all ? 7 : 6);
		CU_ASSERT_TRUE(entry_ok(&fx.r.entries[fx.r.n_entries - 1], fx.r.n_entries, 2));
		fx_fini(&fx);
	}
}

static void test_a_torn_last_record_is_cut_at_every_byte_offset(void)
{
	torn_last_record_at_every_byte_offset(RAFT_STORAGE_PREALLOC_OFF);
}

static void test_a_torn_record_in_preallocated_space_is_cut_at_every_byte_offset(void)
{
	torn_last_record_at_every_byte_offset(0);
}

/* Preallocation: the tail file is longer than its records; the zeros are the end of the log,
 * not damage, and survive a reopen; closed segments are cut to their records. */
static void test_preallocated_space_ends_the_log_quietly_and_closed_segments_are_cut(void)
{
	struct fixture on, off;
	char name[64];

	fx_init_with(&on, 0, 4096);
	fx_init_with(&off, 0, RAFT_STORAGE_PREALLOC_OFF);
	CU_ASSERT_EQUAL_FATAL(persist_entries(on.st, 0, 1, 5, 1), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(persist_entries(off.st, 0, 1, 5, 1), RAFT_OK);
	CU_ASSERT_EQUAL(file_size(on.vfs, "wal-0000000000000001"),
	                file_size(off.vfs, "wal-0000000000000001") + 4096);
	fx_reopen(&on);
	CU_ASSERT_EQUAL(on.warnings, 0);
	CU_ASSERT_EQUAL(on.r.n_entries, 5);
	CU_ASSERT_EQUAL(file_size(on.vfs, "wal-0000000000000001"),
	                file_size(off.vfs, "wal-0000000000000001") + 4096);
	/* appends go on where the records end, not at the end of the file */
	CU_ASSERT_EQUAL_FATAL(persist_entries(on.st, 0, 6, 3, 1), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(persist_entries(off.st, 0, 6, 3, 1), RAFT_OK);
	fx_reopen(&on);
	CU_ASSERT_EQUAL(on.r.n_entries, 8);
	for (size_t i = 0; i < on.r.n_entries; i++)
		CU_ASSERT_TRUE(entry_ok(&on.r.entries[i], i + 1, 1));
	fx_fini(&on);
	fx_fini(&off);

	/* small segments: every closed one has exactly the bytes it has without preallocation */
	fx_init_with(&on, 300, 0);
	fx_init_with(&off, 300, RAFT_STORAGE_PREALLOC_OFF);
	for (uint64_t i = 1; i <= 40; i += 4) {
		CU_ASSERT_EQUAL_FATAL(persist_entries(on.st, 0, i, 4, 1), RAFT_OK);
		CU_ASSERT_EQUAL_FATAL(persist_entries(off.st, 0, i, 4, 1), RAFT_OK);
	}
	CU_ASSERT(count_files(on.vfs, "wal-") > 3);
	CU_ASSERT_EQUAL(count_files(on.vfs, "wal-"), count_files(off.vfs, "wal-"));
	{
		char **names;
		size_t n, tails = 0;
		uint64_t last = 0;
		CU_ASSERT_EQUAL_FATAL(on.vfs->readdir(on.vfs, DIR, &names, &n), 0);
		for (size_t i = 0; i < n; i++) { /* the tail is the name that sorts last */
			if (strncmp(names[i], "wal-", 4) == 0 &&
			    strtoull(names[i] + 4, NULL, 16) > last)
				last = strtoull(names[i] + 4, NULL, 16);
		}
		for (size_t i = 0; i < n; i++) {
			if (strncmp(names[i], "wal-", 4) != 0)
				continue;
			snprintf(name, sizeof(name), "%s", names[i]);
			if (strtoull(names[i] + 4, NULL, 16) == last) {
				tails++;
				CU_ASSERT(file_size(on.vfs, name) > file_size(off.vfs, name));
			} else {
				CU_ASSERT_EQUAL(file_size(on.vfs, name), file_size(off.vfs, name));
			}
		}
		raft_vfs_names_free(names, n);
		CU_ASSERT_EQUAL(tails, 1);
	}
	fx_reopen(&on);
	CU_ASSERT_EQUAL(on.warnings, 0);
	CU_ASSERT_EQUAL(on.r.n_entries, 40);
	fx_fini(&on);
	fx_fini(&off);
}

/* A suffix truncation inside preallocated space cuts the file: the dropped records must not
 * come back from behind the new, shorter ones after a crash. */
static void test_truncation_in_preallocated_space_leaves_no_old_records(void)
{
	struct fixture fx;

	fx_init_with(&fx, 0, 1u << 16);
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 1, 20, 1), RAFT_OK);
	/* a new leader's entries from 6 on, fewer of them, synced */
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 6, 6, 2, 2), RAFT_OK);
	raft_vfs_mem_crash(fx.vfs, 1u << 20);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.warnings, 0);
	CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, 7);
	for (size_t i = 0; i < 5; i++)
		CU_ASSERT_TRUE(entry_ok(&fx.r.entries[i], i + 1, 1));
	CU_ASSERT_TRUE(entry_ok(&fx.r.entries[5], 6, 2));
	CU_ASSERT_TRUE(entry_ok(&fx.r.entries[6], 7, 2));
	fx_fini(&fx);
}

/* A damaged record followed by another record in preallocated space is damage, not a torn
 * write: open refuses, naming the file and offset. */
static void test_a_bad_record_before_another_in_preallocated_space_refuses_open(void)
{
	struct fixture fx;
	uint64_t third;

	fx_init_with(&fx, 0, RAFT_STORAGE_PREALLOC_OFF);
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 1, 2, 1), RAFT_OK);
	third = file_size(fx.vfs, "wal-0000000000000001");
	fx_fini(&fx);
	fx_init_with(&fx, 0, 0);
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 1, 4, 1), RAFT_OK);
	file_flip(fx.vfs, "wal-0000000000000001", third + RAFT_CODEC_HEADER_BYTES + 12, 0x40);
	fx_close(&fx);
	CU_ASSERT_EQUAL(fx_try_open(&fx), RAFT_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(raft_storage_errmsg(fx.st), "wal-0000000000000001"));
	fx_fini(&fx);
}

/* A torn record that was the first of a new segment leaves that segment empty: it goes. */
static void test_a_torn_first_record_of_a_segment_removes_the_segment(void)
{
	struct fixture fx;

	fx_init(&fx, 300);
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 1, 3, 1), RAFT_OK);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "wal-"), 1);
	raft_vfs_mem_fail(fx.vfs, RAFT_VFS_OP_SYNC, 1, EIO, false);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 4, 1, 1), RAFT_EIO);
	raft_vfs_mem_crash(fx.vfs, 10);
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.n_entries, 3);
	CU_ASSERT_EQUAL(count_files(fx.vfs, "wal-"), 1);
	fx_fini(&fx);
}

static void test_a_flipped_byte_in_a_middle_record_refuses_open_naming_file_and_offset(void)
{
	uint64_t start, end;
	struct fixture fx;
	char expect[64];

	fx_init(&fx, 0);
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 1, 2, 1), RAFT_OK);
	start = file_size(fx.vfs, "wal-0000000000000001");
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 3, 1, 1), RAFT_OK);
	end = file_size(fx.vfs, "wal-0000000000000001");
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 4, 2, 1), RAFT_OK);
	snprintf(expect, sizeof(expect), "at byte %llu", (unsigned long long)start);
	for (uint64_t off = start; off < end; off++) {
		file_flip(fx.vfs, "wal-0000000000000001", off, 0xff);
		fx_close(&fx);
		CU_ASSERT_EQUAL(fx_try_open(&fx), RAFT_ECORRUPT);
		CU_ASSERT_PTR_NOT_NULL(strstr(raft_storage_errmsg(fx.st), "wal-0000000000000001"));
		CU_ASSERT_PTR_NOT_NULL(strstr(raft_storage_errmsg(fx.st), expect));
		CU_ASSERT_EQUAL(fx.r.n_entries, 0);
		file_flip(fx.vfs, "wal-0000000000000001", off, 0xff);
		/* a stopped storage refuses everything */
		CU_ASSERT_EQUAL(persist_hs(fx.st, 1, 1), RAFT_ESHUTDOWN);
	}
	/* the file itself was never changed by the refusals */
	fx_reopen(&fx);
	CU_ASSERT_EQUAL(fx.r.n_entries, 5);
	fx_fini(&fx);
}

static void test_a_missing_segment_is_a_gap_that_refuses_open(void)
{
	struct fixture fx;
	char **names;
	size_t n;
	char victim[64] = "";

	fx_init(&fx, 400);
	CU_ASSERT_EQUAL_FATAL(persist_entries(fx.st, 0, 1, 40, 1), RAFT_OK);
	CU_ASSERT_FATAL(count_files(fx.vfs, "wal-") >= 3);
	CU_ASSERT_EQUAL_FATAL(fx.vfs->readdir(fx.vfs, DIR, &names, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (strncmp(names[i], "wal-", 4) == 0 && strcmp(names[i], "wal-0000000000000001") &&
		    (victim[0] == 0 || strcmp(names[i], victim) < 0))
			snprintf(victim, sizeof(victim), "%s", names[i]);
	raft_vfs_names_free(names, n);
	{
		char path[128];
		snprintf(path, sizeof(path), DIR "/%s", victim);
		CU_ASSERT_EQUAL_FATAL(fx.vfs->unlink(fx.vfs, path), 0);
	}
	fx_close(&fx);
	CU_ASSERT_EQUAL(fx_try_open(&fx), RAFT_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(raft_storage_errmsg(fx.st), "at byte 0"));
	fx_fini(&fx);
}

/* --- errors stop the storage ------------------------------------------------------------------ */

static void test_enospc_on_a_write_stops_the_storage_with_a_clear_message(void)
{
	struct fixture fx;

	fx_init(&fx, 0);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 1, 2, 1), RAFT_OK);
	raft_vfs_mem_fail(fx.vfs, RAFT_VFS_OP_WRITE, 1, ENOSPC, false);
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 3, 2, 1), RAFT_ENOSPC);
	CU_ASSERT_PTR_NOT_NULL(strstr(raft_storage_errmsg(fx.st), "write segment wal-"));
	CU_ASSERT_PTR_NOT_NULL(strstr(raft_storage_errmsg(fx.st), "ENOSPC"));
	CU_ASSERT_EQUAL(persist_entries(fx.st, 0, 3, 2, 1), RAFT_ESHUTDOWN);
	CU_ASSERT_EQUAL(persist_hs(fx.st, 1, 1), RAFT_ESHUTDOWN);
	CU_ASSERT_EQUAL(raft_storage_sync(fx.st), RAFT_ESHUTDOWN);
	CU_ASSERT_EQUAL(take_snapshot(fx.st, 1, 1, 1), RAFT_ESHUTDOWN);
	fx_fini(&fx);
}

/* --- damaged snapshots at open ---------------------------------------------------------------- */

#define SNAP30_DATA "snapshot-000000000000001e-0000000000000001.data"
#define SNAP30_META "snapshot-000000000000001e-0000000000000001.meta"

/* Snapshot 10 and its log (entries 1..60), then snapshot 30, whose install a failed removal
 * stopped before the old snapshot and the log went: both snapshots and the whole log are on disk
 * (as after a crash at that moment). */
static void fx_init_with_two_snapshots(struct fixture *fx)
{
	fx_init_with_snapshot(fx, 60, 10, 500);
	raft_vfs_mem_fail(fx->vfs, RAFT_VFS_OP_UNLINK, 1, EIO, false);
	CU_ASSERT_EQUAL(take_snapshot(fx->st, 30, 1, 700), RAFT_EIO);
	raft_vfs_mem_clear_faults(fx->vfs);
	raft_vfs_mem_crash(fx->vfs, 0);
	CU_ASSERT_EQUAL_FATAL(count_files(fx->vfs, "snapshot-"), 4);
}

/* The newest snapshot is damaged, but the older one and the log hold everything it covered:
 * the node starts from them, and the damaged files are renamed aside (not removed: an operator
 * may want them), with a warning naming the file. Before, they were deleted. */
static void test_a_damaged_newest_snapshot_is_set_aside_when_the_log_still_holds_it(void)
{
	for (int meta = 0; meta <= 1; meta++) {
		struct fixture fx;

		fx_init_with_two_snapshots(&fx);
		file_flip(fx.vfs, meta ? SNAP30_META : SNAP30_DATA, meta ? 20 : 321, 0x10);
		fx.warnings = 0;
		fx_reopen(&fx);
		CU_ASSERT_EQUAL(fx.r.snap.index, 10);
		CU_ASSERT_TRUE(image_ok(fx.st, 10, 500));
		CU_ASSERT_EQUAL_FATAL(fx.r.n_entries, 50); /* 11..60 */
		CU_ASSERT_TRUE(entry_ok(&fx.r.entries[0], 11, 1));
		CU_ASSERT_TRUE(entry_ok(&fx.r.entries[49], 60, 1));
		CU_ASSERT_EQUAL(file_size(fx.vfs, SNAP30_DATA), UINT64_MAX);
		CU_ASSERT_EQUAL(file_size(fx.vfs, SNAP30_DATA ".damaged"), 700);
		CU_ASSERT(file_size(fx.vfs, SNAP30_META ".damaged") != UINT64_MAX);
		CU_ASSERT(fx.warnings >= 2);
		CU_ASSERT_PTR_NOT_NULL(
		        strstr(fx.last_warning, "set aside: " SNAP30_META ".damaged"));
		CU_ASSERT_PTR_NOT_NULL(strstr(fx.last_warning, SNAP30_DATA ".damaged"));
		/* the next start is a plain one */
		fx.warnings = 0;
		fx_reopen(&fx);
		CU_ASSERT_EQUAL(fx.r.snap.index, 10);
		CU_ASSERT_EQUAL(fx.r.n_entries, 50);
		CU_ASSERT_EQUAL(fx.warnings, 0);
		fx_fini(&fx);
	}
}

/* The newest snapshot is damaged and the log no longer holds what it covered (its segments went
 * when it was installed): starting from anything older would lose what the node acknowledged.
 * Open refuses, naming the file, and leaves it in place, so that every start refuses the same
 * way. Before, the damaged snapshot was deleted. */
static void test_a_damaged_snapshot_the_log_does_not_cover_refuses_open_naming_it(void)
{
	for (int meta = 0; meta <= 1; meta++) {
		struct fixture fx;
		size_t segs;

		fx_init_with_snapshot(&fx, 60, 30, 700);
		CU_ASSERT_EQUAL(count_files(fx.vfs, "snapshot-"), 2);
		segs = count_files(fx.vfs, "wal-");
		file_flip(fx.vfs, meta ? SNAP30_META : SNAP30_DATA, meta ? 20 : 321, 0x10);
		for (int attempt = 0; attempt < 2; attempt++) {
			raft_storage_restore_free(&fx.r);
			raft_storage_free(fx.st);
			fx.st = NULL;
			CU_ASSERT_EQUAL(fx_try_open(&fx), RAFT_ECORRUPT);
			CU_ASSERT_PTR_NOT_NULL(strstr(raft_storage_errmsg(fx.st),
			                              meta ? SNAP30_META : SNAP30_DATA));
			CU_ASSERT_PTR_NOT_NULL(strstr(raft_storage_errmsg(fx.st), "not starting"));
			CU_ASSERT_EQUAL(file_size(fx.vfs, SNAP30_DATA), 700);
			CU_ASSERT(file_size(fx.vfs, SNAP30_META) != UINT64_MAX);
			CU_ASSERT_EQUAL(count_files(fx.vfs, "wal-"), segs);
		}
		fx_fini(&fx);
	}
}

/* --- fault sweep (STYLE.md 12) ---------------------------------------------------------------- */

/* What the workload has had acknowledged, to check after a crash. */
struct model {
	uint64_t terms[400]; /* terms[i]: term of acknowledged entry i (0: none) */
	uint64_t last; /* last acknowledged index */
	uint64_t snap_index; /* acknowledged snapshot */
	uint64_t trunc_try; /* truncation in the step that failed (0: none) */
	struct raft_hard_state hs; /* acknowledged */
	struct raft_hard_state hs_try; /* being written when the fault hit */
	bool image_failed; /* the fault hit a snapshot's image step, which stops nothing */
};

static int model_entries(struct fixture *fx, struct model *m, uint64_t trunc, uint64_t first,
                         size_t n, uint64_t term)
{
	int rc;

	m->trunc_try = trunc;
	rc = persist_entries(fx->st, trunc, first, n, term);
	if (rc == RAFT_OK) {
		m->trunc_try = 0;
		if (trunc)
			m->last = trunc - 1;
		for (size_t i = 0; i < n; i++)
			m->terms[first + i] = term;
		if (n)
			m->last = first + n - 1;
	}
	return rc;
}

static int model_hs(struct fixture *fx, struct model *m, uint64_t term, uint32_t vote)
{
	int rc;

	m->hs_try.term = term;
	m->hs_try.vote = vote;
	rc = persist_hs(fx->st, term, vote);
	if (rc == RAFT_OK)
		m->hs = m->hs_try;
	return rc;
}

/* A workload touching every path: hard state, rotation, truncation, local and incoming
 * snapshots, a reopen. Stops at the first failure and returns its code. */
static int workload(struct fixture *fx, struct model *m)
{
	struct raft_snapshot_meta sm;
	int rc;

	if ((rc = model_hs(fx, m, 1, 1)) != RAFT_OK)
		return rc;
	for (uint64_t i = 1; i <= 60; i += 12)
		if ((rc = model_entries(fx, m, 0, i, 12, 1)) != RAFT_OK)
			return rc;
	if ((rc = model_hs(fx, m, 2, 3)) != RAFT_OK)
		return rc;
	if ((rc = model_entries(fx, m, 41, 41, 5, 2)) != RAFT_OK)
		return rc;
	if ((rc = take_snapshot(fx->st, 30, 1, 300)) != RAFT_OK) {
		m->image_failed = !raft_storage_stopped(fx->st);
		return rc;
	}
	m->snap_index = 30;
	if ((rc = model_entries(fx, m, 0, 46, 20, 2)) != RAFT_OK)
		return rc;
	fx_close(fx);
	if ((rc = fx_try_open(fx)) != RAFT_OK)
		return rc;
	/* the leader of term 3 sends its snapshot: its term is durable first, as the core asks */
	if ((rc = model_hs(fx, m, 3, 0)) != RAFT_OK)
		return rc;
	memset(&sm, 0, sizeof(sm));
	sm.index = 100;
	sm.term = 3;
	sm.size = 400;
	sm.crc = image_crc(100, 400);
	if ((rc = persist_chunk(fx->st, &sm, 0, 250, false)) != RAFT_OK)
		return rc;
	if ((rc = persist_chunk(fx->st, &sm, 250, 150, true)) != RAFT_OK)
		return rc;
	m->snap_index = 100;
	memset(m->terms, 0, sizeof(m->terms));
	m->last = 100;
	return model_entries(fx, m, 0, 101, 30, 3);
}

/* After a crash: nothing acknowledged is lost and nothing recovered is garbage. */
static void check_recovered(struct fixture *fx, const struct model *m)
{
	const struct raft_restore *r = &fx->r;
	uint64_t first = r->snap.index + 1;
	/* A truncation cut short may have dropped some of the entries it was dropping: the core
	 * asked for them to go, and they conflict with the new leader, so none was committed. */
	uint64_t keep = m->trunc_try ? m->trunc_try - 1 : m->last;
	uint64_t need_last = keep < m->last ? keep : m->last;

	CU_ASSERT(r->snap.index >= m->snap_index);
	CU_ASSERT((r->hs.term == m->hs.term && r->hs.vote == m->hs.vote) ||
	          (r->hs.term == m->hs_try.term && r->hs.vote == m->hs_try.vote));
	CU_ASSERT(raft_storage_last_index(fx->st) >= need_last);
	for (size_t i = 0; i < r->n_entries; i++) {
		const struct raft_entry *e = &r->entries[i];
		CU_ASSERT_EQUAL(e->index, first + i);
		if (e->index <= need_last && m->terms[e->index]) {
			CU_ASSERT_TRUE(entry_ok(e, e->index, m->terms[e->index]));
		} else {
			CU_ASSERT_TRUE(entry_ok(e, e->index, e->term)); /* in flight: still whole */
		}
	}
	if (r->snap.index > 0)
		CU_ASSERT_TRUE(image_ok(fx->st, r->snap.index, r->snap.size));
}

static void sweep_one_kind(enum raft_vfs_op op, int err, bool short_write, size_t torn)
{
	unsigned long fired_count = 0;

	for (unsigned long nth = 1;; nth++) {
		struct fixture fx;
		struct model m;
		bool fired;
		int rc;
		memset(&m, 0, sizeof(m));
		fx_init(&fx, 700);
		raft_codec_set_alloc_fault(raft_vfs_mem_alloc_hook, fx.vfs);
		raft_vfs_mem_fail(fx.vfs, op, nth, err, short_write);
		rc = workload(&fx, &m);
		fired = raft_vfs_mem_fault_fired(fx.vfs);
		raft_codec_set_alloc_fault(NULL, NULL);
		raft_vfs_mem_clear_faults(fx.vfs);
		if (!fired) {
			CU_ASSERT_EQUAL(rc, RAFT_OK);
		} else {
			fired_count++;
			CU_ASSERT(rc == RAFT_EIO || rc == RAFT_ENOSPC || rc == RAFT_ENOMEM);
			if (fx.st && m.image_failed) {
				/* only a snapshot image's failure leaves the storage going */
				CU_ASSERT_EQUAL(raft_storage_sync(fx.st), RAFT_OK);
			} else if (fx.st) {
				CU_ASSERT(strlen(raft_storage_errmsg(fx.st)) > 0);
				CU_ASSERT_EQUAL(persist_hs(fx.st, 9, 9), RAFT_ESHUTDOWN);
				CU_ASSERT_EQUAL(raft_storage_sync(fx.st), RAFT_ESHUTDOWN);
			}
		}
		raft_vfs_mem_crash(fx.vfs, torn);
		fx_close(&fx);
		rc = fx_try_open(&fx);
		if (rc != RAFT_OK)
			fprintf(stderr, "\nsweep op %d nth %lu: reopen: %s\n", (int)op, nth,
			        fx.st ? raft_storage_errmsg(fx.st) : "(no storage)");
		CU_ASSERT_EQUAL_FATAL(rc, RAFT_OK);
		check_recovered(&fx, &m);
		fx_fini(&fx);
		if (!fired)
			break;
	}
	CU_ASSERT(fired_count > 0);
}

static void test_fault_sweep_failed_writes(void)
{
	sweep_one_kind(RAFT_VFS_OP_WRITE, EIO, false, 0);
	sweep_one_kind(RAFT_VFS_OP_WRITE, ENOSPC, false, 5);
}

static void test_fault_sweep_short_writes_leave_torn_records_that_are_cut(void)
{
	sweep_one_kind(RAFT_VFS_OP_WRITE, ENOSPC, true, 1u << 20);
}

static void test_fault_sweep_failed_fsyncs(void)
{
	sweep_one_kind(RAFT_VFS_OP_SYNC, EIO, false, 0);
	sweep_one_kind(RAFT_VFS_OP_SYNC, EIO, false, 1u << 20);
	sweep_one_kind(RAFT_VFS_OP_SYNC_DIR, EIO, false, 13);
}

static void test_fault_sweep_failed_file_operations(void)
{
	sweep_one_kind(RAFT_VFS_OP_OPEN, EIO, false, 0);
	sweep_one_kind(RAFT_VFS_OP_RENAME, EIO, false, 0);
	sweep_one_kind(RAFT_VFS_OP_UNLINK, EIO, false, 0);
	sweep_one_kind(RAFT_VFS_OP_TRUNCATE, EIO, false, 0);
	sweep_one_kind(RAFT_VFS_OP_READ, EIO, false, 0);
	sweep_one_kind(RAFT_VFS_OP_READDIR, EIO, false, 0);
}

static void test_fault_sweep_failed_allocations(void)
{
	sweep_one_kind(RAFT_VFS_OP_ALLOC, ENOMEM, false, 0);
}

/* Reserving file space is an optimization: when it fails (no space, an I/O error) the storage
 * warns and appends as it would without; nothing stops or is lost. */
static void test_fault_sweep_failed_preallocation_changes_nothing_but_a_warning(void)
{
	static const int errs[] = {ENOSPC, EIO};
	unsigned long fired_count = 0;

	for (size_t e = 0; e < sizeof(errs) / sizeof(errs[0]); e++) {
		for (unsigned long nth = 1;; nth++) {
			struct fixture fx;
			struct model m;
			bool fired;
			memset(&m, 0, sizeof(m));
			fx_init(&fx, 700);
			raft_vfs_mem_fail(fx.vfs, RAFT_VFS_OP_ALLOCATE, nth, errs[e], false);
			CU_ASSERT_EQUAL(workload(&fx, &m), RAFT_OK);
			fired = raft_vfs_mem_fault_fired(fx.vfs);
			raft_vfs_mem_clear_faults(fx.vfs);
			if (fired) {
				fired_count++;
				CU_ASSERT_PTR_NOT_NULL(
				        strstr(fx.last_warning, "cannot reserve space"));
			}
			raft_vfs_mem_crash(fx.vfs, 7);
			fx_close(&fx);
			CU_ASSERT_EQUAL_FATAL(fx_try_open(&fx), RAFT_OK);
			check_recovered(&fx, &m);
			fx_fini(&fx);
			if (!fired)
				break;
		}
	}
	CU_ASSERT(fired_count > 2);
}

/* --- the in-memory file system itself --------------------------------------------------------- */

static void test_mem_vfs_keeps_only_what_was_synced_across_a_crash(void)
{
	struct raft_vfs *vfs = raft_vfs_mem_new();
	struct raft_vfs_file *f, *g;
	char buf[16];
	size_t got;
	uint64_t size;

	CU_ASSERT_EQUAL_FATAL(vfs->mkdir(vfs, "/d", 0700), 0);
	CU_ASSERT_EQUAL(vfs->mkdir(vfs, "/d", 0700), EEXIST);
	CU_ASSERT_EQUAL(vfs->open(vfs, "/x/y", RAFT_VFS_WRITE | RAFT_VFS_CREATE, &f), ENOENT);
	CU_ASSERT_EQUAL_FATAL(vfs->open(vfs, "/d/a", RAFT_VFS_WRITE | RAFT_VFS_CREATE, &f), 0);
	CU_ASSERT_EQUAL(vfs->pwrite(vfs, f, "hello", 5, 0), 0);
	CU_ASSERT_EQUAL(vfs->fsync(vfs, f), 0);
	/* synced file, but its directory entry is not durable: gone after a crash */
	raft_vfs_mem_crash(vfs, 0);
	CU_ASSERT_EQUAL(vfs->pwrite(vfs, f, "x", 1, 0), EIO);
	vfs->close(vfs, f);
	CU_ASSERT_EQUAL(vfs->open(vfs, "/d/a", RAFT_VFS_READ, &f), ENOENT);
	/* now durably */
	CU_ASSERT_EQUAL_FATAL(
	        vfs->open(vfs, "/d/a", RAFT_VFS_READ | RAFT_VFS_WRITE | RAFT_VFS_CREATE, &f), 0);
	CU_ASSERT_EQUAL(vfs->pwrite(vfs, f, "hello", 5, 0), 0);
	CU_ASSERT_EQUAL(vfs->fdatasync(vfs, f), 0);
	CU_ASSERT_EQUAL(vfs->sync_dir(vfs, "/d"), 0);
	CU_ASSERT_EQUAL(vfs->pwrite(vfs, f, " world", 6, 5), 0); /* unsynced append */
	CU_ASSERT_EQUAL(vfs->pwrite(vfs, f, "J", 1, 0), 0); /* unsynced overwrite */
	/* a rename that is not synced is undone */
	CU_ASSERT_EQUAL(vfs->rename(vfs, "/d/a", "/d/b"), 0);
	raft_vfs_mem_crash(vfs, 3);
	vfs->close(vfs, f);
	CU_ASSERT_EQUAL(vfs->open(vfs, "/d/b", RAFT_VFS_READ, &g), ENOENT);
	CU_ASSERT_EQUAL_FATAL(vfs->open(vfs, "/d/a", RAFT_VFS_READ, &g), 0);
	CU_ASSERT_EQUAL(vfs->size(vfs, g, &size), 0);
	CU_ASSERT_EQUAL(size, 5); /* in-place overwrite since the sync: no torn tail kept */
	CU_ASSERT_EQUAL(vfs->pread(vfs, g, buf, sizeof(buf), 0, &got), 0);
	CU_ASSERT_EQUAL(got, 5);
	CU_ASSERT_EQUAL(memcmp(buf, "hello", 5), 0);
	vfs->close(vfs, g);
	/* a pure append keeps a torn prefix of the requested size */
	CU_ASSERT_EQUAL_FATAL(vfs->open(vfs, "/d/a", RAFT_VFS_WRITE, &f), 0);
	CU_ASSERT_EQUAL(vfs->pwrite(vfs, f, " world", 6, 5), 0);
	raft_vfs_mem_crash(vfs, 3);
	vfs->close(vfs, f);
	CU_ASSERT_EQUAL_FATAL(vfs->open(vfs, "/d/a", RAFT_VFS_READ, &g), 0);
	CU_ASSERT_EQUAL(vfs->pread(vfs, g, buf, sizeof(buf), 0, &got), 0);
	CU_ASSERT_EQUAL(got, 8);
	CU_ASSERT_EQUAL(memcmp(buf, "hello wo", 8), 0);
	vfs->close(vfs, g);
	/* allocated space: an unsynced allocate is undone; a synced one stays, and a write into
	 * it tears like an append, leaving zeros behind the kept prefix */
	CU_ASSERT_EQUAL_FATAL(vfs->open(vfs, "/d/a", RAFT_VFS_READ | RAFT_VFS_WRITE, &f), 0);
	CU_ASSERT_EQUAL(vfs->allocate(vfs, f, 12), 0);
	CU_ASSERT_EQUAL(vfs->allocate(vfs, f, 4), 0); /* never shrinks */
	CU_ASSERT_EQUAL(vfs->size(vfs, f, &size), 0);
	CU_ASSERT_EQUAL(size, 12);
	raft_vfs_mem_crash(vfs, 100);
	vfs->close(vfs, f);
	CU_ASSERT_EQUAL_FATAL(vfs->open(vfs, "/d/a", RAFT_VFS_READ | RAFT_VFS_WRITE, &f), 0);
	CU_ASSERT_EQUAL(vfs->size(vfs, f, &size), 0);
	CU_ASSERT_EQUAL(size, 8);
	CU_ASSERT_EQUAL(vfs->allocate(vfs, f, 14), 0);
	CU_ASSERT_EQUAL(vfs->fdatasync(vfs, f), 0);
	CU_ASSERT_EQUAL(vfs->pwrite(vfs, f, "rld!", 4, 8), 0);
	raft_vfs_mem_crash(vfs, 2);
	vfs->close(vfs, f);
	CU_ASSERT_EQUAL_FATAL(vfs->open(vfs, "/d/a", RAFT_VFS_READ, &g), 0);
	CU_ASSERT_EQUAL(vfs->pread(vfs, g, buf, sizeof(buf), 0, &got), 0);
	CU_ASSERT_EQUAL(got, 14);
	CU_ASSERT_EQUAL(memcmp(buf, "hello worl\0\0\0\0", 14), 0);
	vfs->close(vfs, g);
	raft_vfs_free(vfs);
}

/* Writing nothing changes nothing, as pwrite(2): an empty file stays empty (and has no data
 * array its bytes would be copied into). */
static void test_mem_vfs_write_of_nothing_changes_nothing(void)
{
	struct raft_vfs *vfs = raft_vfs_mem_new();
	struct raft_vfs_file *f;
	uint64_t size = 1;

	CU_ASSERT_EQUAL_FATAL(vfs->mkdir(vfs, "/d", 0700), 0);
	CU_ASSERT_EQUAL_FATAL(vfs->open(vfs, "/d/a", RAFT_VFS_WRITE | RAFT_VFS_CREATE, &f), 0);
	CU_ASSERT_EQUAL(vfs->pwrite(vfs, f, "", 0, 0), 0);
	CU_ASSERT_EQUAL(vfs->pwrite(vfs, f, "", 0, 100), 0);
	CU_ASSERT_EQUAL(vfs->size(vfs, f, &size), 0);
	CU_ASSERT_EQUAL(size, 0);
	vfs->close(vfs, f);
	raft_vfs_free(vfs);
}

static void test_mem_vfs_injects_the_nth_fault_and_short_writes(void)
{
	struct raft_vfs *vfs = raft_vfs_mem_new();
	struct raft_vfs_file *f;
	uint64_t size;

	CU_ASSERT_EQUAL_FATAL(vfs->mkdir(vfs, "/d", 0700), 0);
	CU_ASSERT_EQUAL_FATAL(vfs->open(vfs, "/d/a", RAFT_VFS_WRITE | RAFT_VFS_CREATE, &f), 0);
	raft_vfs_mem_fail(vfs, RAFT_VFS_OP_WRITE, 2, ENOSPC, true);
	CU_ASSERT_EQUAL(vfs->pwrite(vfs, f, "abcd", 4, 0), 0);
	CU_ASSERT_FALSE(raft_vfs_mem_fault_fired(vfs));
	CU_ASSERT_EQUAL(vfs->pwrite(vfs, f, "efgh", 4, 4), ENOSPC);
	CU_ASSERT_TRUE(raft_vfs_mem_fault_fired(vfs));
	CU_ASSERT_EQUAL(vfs->size(vfs, f, &size), 0);
	CU_ASSERT_EQUAL(size, 6); /* half of the failing write landed */
	CU_ASSERT_EQUAL(vfs->pwrite(vfs, f, "ijkl", 4, 6), 0); /* one shot */
	CU_ASSERT_EQUAL(raft_vfs_mem_calls(vfs, RAFT_VFS_OP_WRITE), 3);
	raft_vfs_mem_fail(vfs, RAFT_VFS_OP_SYNC, 1, EIO, false);
	CU_ASSERT_EQUAL(vfs->fdatasync(vfs, f), EIO);
	vfs->close(vfs, f);
	raft_vfs_free(vfs);
}

/* --- the real file system --------------------------------------------------------------------- */

static void test_posix_storage_creates_its_directory_0700_and_recovers(void)
{
	char base[] = "/tmp/raft-storage-test-XXXXXX";
	char dir[128], cmd[200];
	struct raft_storage_options o;
	struct raft_storage *st;
	struct raft_restore r;
	struct stat sb;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/node1", base);
	memset(&o, 0, sizeof(o));
	o.segment_max_bytes = 600;
	CU_ASSERT_EQUAL_FATAL(raft_storage_new(&o, &st), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(raft_storage_open(st, dir, &r), RAFT_OK);
	CU_ASSERT_EQUAL(stat(dir, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 0777, 0700);
	CU_ASSERT_EQUAL(persist_hs(st, 7, 1), RAFT_OK);
	CU_ASSERT_EQUAL(persist_entries(st, 0, 1, 30, 7), RAFT_OK);
	CU_ASSERT_EQUAL(persist_hs(st, 8, 2), RAFT_OK);
	CU_ASSERT_EQUAL(persist_entries(st, 25, 25, 2, 8), RAFT_OK);
	CU_ASSERT_EQUAL(take_snapshot(st, 10, 7, 5000), RAFT_OK);
	raft_storage_free(st);
	raft_storage_restore_free(&r);

	CU_ASSERT_EQUAL_FATAL(raft_storage_new(&o, &st), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(raft_storage_open(st, dir, &r), RAFT_OK);
	CU_ASSERT_EQUAL(r.hs.term, 8);
	CU_ASSERT_EQUAL(r.snap.index, 10);
	CU_ASSERT_EQUAL_FATAL(r.n_entries, 16);
	CU_ASSERT_TRUE(entry_ok(&r.entries[0], 11, 7));
	CU_ASSERT_TRUE(entry_ok(&r.entries[15], 26, 8));
	CU_ASSERT_TRUE(image_ok(st, 10, 5000));
	raft_storage_free(st);
	raft_storage_restore_free(&r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static CU_TestInfo recovery_tests[] = {
        {"test_a_new_node_opens_with_nothing", test_a_new_node_opens_with_nothing},
        {"test_hard_state_and_entries_survive_a_clean_reopen",
         test_hard_state_and_entries_survive_a_clean_reopen},
        {"test_hard_state_alternates_files_and_a_torn_newest_falls_back",
         test_hard_state_alternates_files_and_a_torn_newest_falls_back},
        {"test_a_metadata_sequence_number_past_the_last_is_corrupt",
         test_a_metadata_sequence_number_past_the_last_is_corrupt},
        {"test_the_hard_state_after_the_last_sequence_number_is_found_again",
         test_the_hard_state_after_the_last_sequence_number_is_found_again},
        {"test_a_log_whose_terms_fall_refuses_open_naming_the_segment_and_byte",
         test_a_log_whose_terms_fall_refuses_open_naming_the_segment_and_byte},
        {"test_an_entry_past_the_hard_state_term_refuses_open",
         test_an_entry_past_the_hard_state_term_refuses_open},
        {"test_an_empty_metadata_file_beside_a_log_refuses_open",
         test_an_empty_metadata_file_beside_a_log_refuses_open},
        {"test_posix_storage_creates_its_directory_0700_and_recovers",
         test_posix_storage_creates_its_directory_0700_and_recovers},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo segment_tests[] = {
        {"test_segments_rotate_at_the_size_bound", test_segments_rotate_at_the_size_bound},
        {"test_a_record_bigger_than_a_segment_gets_one_of_its_own",
         test_a_record_bigger_than_a_segment_gets_one_of_its_own},
        {"test_suffix_truncation_across_segment_boundaries",
         test_suffix_truncation_across_segment_boundaries},
        {"test_appends_out_of_order_are_refused_without_stopping",
         test_appends_out_of_order_are_refused_without_stopping},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo snapshot_tests[] = {
        {"test_a_snapshot_removes_the_segments_it_covers",
         test_a_snapshot_removes_the_segments_it_covers},
        {"test_snapshot_replacement_keeps_the_old_one_until_the_new_is_durable",
         test_snapshot_replacement_keeps_the_old_one_until_the_new_is_durable},
        {"test_incoming_snapshot_chunks_replace_the_snapshot_and_the_whole_log",
         test_incoming_snapshot_chunks_replace_the_snapshot_and_the_whole_log},
        {"test_a_crash_in_the_middle_of_an_incoming_snapshot_leaves_the_old_state",
         test_a_crash_in_the_middle_of_an_incoming_snapshot_leaves_the_old_state},
        {"test_an_incoming_image_that_does_not_match_the_leaders_crc_is_refused",
         test_an_incoming_image_that_does_not_match_the_leaders_crc_is_refused},
        {"test_a_staged_image_replaces_nothing_until_committed",
         test_a_staged_image_replaces_nothing_until_committed},
        {"test_a_large_snapshot_image_is_synced_in_steps",
         test_a_large_snapshot_image_is_synced_in_steps},
        {"test_a_snapshot_image_written_apart_is_installed_after_more_appends",
         test_a_snapshot_image_written_apart_is_installed_after_more_appends},
        {"test_a_snapshot_image_is_discarded_when_a_newer_snapshot_was_installed_meanwhile",
         test_a_snapshot_image_is_discarded_when_a_newer_snapshot_was_installed_meanwhile},
        {"test_a_failed_image_write_stops_nothing_and_abort_removes_the_image",
         test_a_failed_image_write_stops_nothing_and_abort_removes_the_image},
        {"test_a_snapshot_image_left_by_a_crash_is_removed_at_open",
         test_a_snapshot_image_left_by_a_crash_is_removed_at_open},
        {"test_a_log_conflicting_with_the_snapshot_is_dropped_at_open",
         test_a_log_conflicting_with_the_snapshot_is_dropped_at_open},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo damage_tests[] = {
        {"test_a_damaged_newest_snapshot_is_set_aside_when_the_log_still_holds_it",
         test_a_damaged_newest_snapshot_is_set_aside_when_the_log_still_holds_it},
        {"test_a_damaged_snapshot_the_log_does_not_cover_refuses_open_naming_it",
         test_a_damaged_snapshot_the_log_does_not_cover_refuses_open_naming_it},
        {"test_a_torn_record_in_preallocated_space_is_cut_at_every_byte_offset",
         test_a_torn_record_in_preallocated_space_is_cut_at_every_byte_offset},
        {"test_preallocated_space_ends_the_log_quietly_and_closed_segments_are_cut",
         test_preallocated_space_ends_the_log_quietly_and_closed_segments_are_cut},
        {"test_truncation_in_preallocated_space_leaves_no_old_records",
         test_truncation_in_preallocated_space_leaves_no_old_records},
        {"test_a_bad_record_before_another_in_preallocated_space_refuses_open",
         test_a_bad_record_before_another_in_preallocated_space_refuses_open},
        {"test_a_torn_last_record_is_cut_at_every_byte_offset",
         test_a_torn_last_record_is_cut_at_every_byte_offset},
        {"test_a_torn_first_record_of_a_segment_removes_the_segment",
         test_a_torn_first_record_of_a_segment_removes_the_segment},
        {"test_a_flipped_byte_in_a_middle_record_refuses_open_naming_file_and_offset",
         test_a_flipped_byte_in_a_middle_record_refuses_open_naming_file_and_offset},
        {"test_a_missing_segment_is_a_gap_that_refuses_open",
         test_a_missing_segment_is_a_gap_that_refuses_open},
        {"test_enospc_on_a_write_stops_the_storage_with_a_clear_message",
         test_enospc_on_a_write_stops_the_storage_with_a_clear_message},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo sweep_tests[] = {
        {"test_fault_sweep_failed_writes", test_fault_sweep_failed_writes},
        {"test_fault_sweep_short_writes_leave_torn_records_that_are_cut",
         test_fault_sweep_short_writes_leave_torn_records_that_are_cut},
        {"test_fault_sweep_failed_fsyncs", test_fault_sweep_failed_fsyncs},
        {"test_fault_sweep_failed_file_operations", test_fault_sweep_failed_file_operations},
        {"test_fault_sweep_failed_allocations", test_fault_sweep_failed_allocations},
        {"test_fault_sweep_failed_preallocation_changes_nothing_but_a_warning",
         test_fault_sweep_failed_preallocation_changes_nothing_but_a_warning},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo vfs_tests[] = {
        {"test_mem_vfs_keeps_only_what_was_synced_across_a_crash",
         test_mem_vfs_keeps_only_what_was_synced_across_a_crash},
        {"test_mem_vfs_injects_the_nth_fault_and_short_writes",
         test_mem_vfs_injects_the_nth_fault_and_short_writes},
        {"test_mem_vfs_write_of_nothing_changes_nothing",
         test_mem_vfs_write_of_nothing_changes_nothing},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"recovery", NULL, NULL, NULL, NULL, recovery_tests},
        {"segments", NULL, NULL, NULL, NULL, segment_tests},
        {"snapshots", NULL, NULL, NULL, NULL, snapshot_tests},
        {"damage", NULL, NULL, NULL, NULL, damage_tests},
        {"fault_sweep", NULL, NULL, NULL, NULL, sweep_tests},
        {"mem_vfs", NULL, NULL, NULL, NULL, vfs_tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	return cu_main(argc, argv, suites);
}
