/* storage.c - hard state files, the segmented write-ahead log, snapshots, and recovery. */
#include "raft/storage.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/codec.h"
#include "raft/crc32c.h"

#define META_FILE_1 "metadata1"
#define META_FILE_2 "metadata2"
#define SEG_PREFIX "wal-"
#define SNAP_PREFIX "snapshot-"
#define INCOMING_PREFIX "incoming-"
#define TMP_SUFFIX ".tmp"
#define DAMAGED_SUFFIX ".damaged" /* a snapshot found damaged at open, set aside */
#define NAME_BYTES 64 /* the longest name we make is 55 bytes */
#define READ_CHUNK_BYTES (64u << 10)
#define TPL_PREAMBLE_BYTES 8 /* "tpl", flags, u32 image length */
/* The highest metadata sequence number: one hard state write a nanosecond would take 292 years
 * to reach it. A record of a higher one is damage: the next write's number would wrap to 0 and
 * lose to it at the next start. */
#define META_MAX_SEQ (UINT64_MAX >> 1)

/* A log segment: entries first_index .. first_index + n_entries - 1. */
struct segment {
	uint64_t first_index;
	uint64_t n_entries;
	uint64_t size; /* bytes of its records, counting those still queued in wbuf */
	uint32_t *offsets; /* offsets[i]: where the record of first_index + i starts */
	size_t cap;
};

/* A snapshot image being written, by the application (local) or from chunks (incoming). */
struct snap_writer {
	bool active;
	struct raft_snapshot_meta meta;
	struct raft_vfs_file *f;
	char tmp_name[NAME_BYTES];
	uint64_t written;
	uint64_t synced; /* written bytes last made durable (RAFT_STORAGE_IMAGE_SYNC_BYTES) */
	uint32_t crc; /* of the written bytes */
	/* incoming: the image is whole, synced and matches the leader's metadata; it waits for
	 * raft_storage_persist_commit (or _abandon), and raft_storage_staged_read reads it */
	bool staged;
};

struct raft_storage {
	struct raft_vfs *vfs;
	bool own_vfs;
	uint64_t segment_max_bytes;
	void (*log)(void *ctx, int level, const char *msg);
	void *log_ctx;
	char *dir;
	char *path_a; /* scratch for full paths; two, for rename */
	char *path_b;
	size_t path_cap;
	bool opened;
	bool stopped; /* after a failure that may have left the disk in an unknown state */
	char errmsg[RAFT_STORAGE_ERRMSG_BYTES];

	/* hard state; meta_seq is the sequence number of the newest record (0: none yet) */
	struct raft_hard_state hs;
	uint64_t meta_seq;
	int meta_newest; /* 0 or 1: the file holding the record with meta_seq; -1: none */
	bool meta_exists[2];

	/* log: segments in index order; only the last one (the tail) is open and written.
	 * Invariant: last_index == snapshot index when there are no segments, else the last
	 * segment's last index; every segment but the tail holds at least one entry. */
	struct segment *segs;
	size_t n_segs;
	size_t cap_segs;
	struct raft_vfs_file *tail;
	uint64_t tail_written; /* bytes of the tail on disk; segs[n-1].size - tail_written queued */
	uint64_t tail_alloc; /* size of the tail file: zeros past tail_written (preallocated) */
	uint64_t prealloc_bytes; /* 0: no preallocation */
	bool prealloc_paused; /* allocate failed: not again in this segment */
	bool tail_dirty; /* written or truncated since its last fdatasync */
	struct raft_codec_buf wbuf; /* queued records of the tail */
	uint64_t last_index;

	/* the current snapshot (has_snap) and the ones being written */
	bool has_snap;
	struct raft_snapshot_meta snap;
	struct raft_vfs_file *snap_file; /* opened for reading on first use */
	struct snap_writer local;
	struct snap_writer incoming;
};

/* --- errors, logging, memory ------------------------------------------------------------------ */

static const char *errno_name(int err)
{
	switch (err) {
	case EIO:
		return "EIO";
	case ENOSPC:
		return "ENOSPC";
	case EDQUOT:
		return "EDQUOT";
	case ENOENT:
		return "ENOENT";
	case EEXIST:
		return "EEXIST";
	case EACCES:
		return "EACCES";
	case EPERM:
		return "EPERM";
	case EROFS:
		return "EROFS";
	case ENOMEM:
		return "ENOMEM";
	case EFBIG:
		return "EFBIG";
	case ENOTDIR:
		return "ENOTDIR";
	case EISDIR:
		return "EISDIR";
	case EBADF:
		return "EBADF";
	case EINVAL:
		return "EINVAL";
	default:
		return strerror(err);
	}
}

static int errno_to_raft(int err)
{
	switch (err) {
	case ENOSPC:
	case EDQUOT:
		return RAFT_ENOSPC;
	case ENOMEM:
		return RAFT_ENOMEM;
	case ENOENT:
		return RAFT_ENOENT;
	default:
		return RAFT_EIO;
	}
}

static void set_msg(struct raft_storage *st, const char *what, const char *fmt, va_list ap)
{
	int n = vsnprintf(st->errmsg, sizeof(st->errmsg), fmt, ap);

	if (n >= 0 && (size_t)n < sizeof(st->errmsg))
		snprintf(st->errmsg + n, sizeof(st->errmsg) - (size_t)n, ": %s", what);
}

/* A failed file call: stops the storage; returns the raft code for errno value err. */
__attribute__((format(printf, 3, 4))) static int fail_io(struct raft_storage *st, int err,
                                                         const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_msg(st, errno_name(err), fmt, ap);
	va_end(ap);
	st->stopped = true;
	return errno_to_raft(err);
}

/* Any other failure that leaves the disk in doubt (or a refused open): stops the storage. */
__attribute__((format(printf, 3, 4))) static int fail_raft(struct raft_storage *st, int rc,
                                                           const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_msg(st, raft_strerror(rc), fmt, ap);
	va_end(ap);
	st->stopped = true;
	return rc;
}

/* A bad argument: nothing was changed, the storage goes on. */
__attribute__((format(printf, 2, 3))) static int invalid(struct raft_storage *st, const char *fmt,
                                                         ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st->errmsg, sizeof(st->errmsg), fmt, ap);
	va_end(ap);
	return RAFT_EINVAL;
}

__attribute__((format(printf, 3, 4))) static void st_log(struct raft_storage *st, int level,
                                                         const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (st->log)
		st->log(st->log_ctx, level, msg);
	else if (level >= 1)
		fprintf(stderr, "raft storage: %s\n", msg);
}

/* Every allocation of this file goes through here, so tests can fail the Nth one. */
static void *st_realloc(struct raft_storage *st, void *p, size_t n)
{
	if (st->vfs->alloc_fails && st->vfs->alloc_fails(st->vfs))
		return NULL;
	return realloc(p, n ? n : 1);
}

static void *st_malloc(struct raft_storage *st, size_t n)
{
	return st_realloc(st, NULL, n);
}

/* The entry point check of every call that needs an open, working storage. */
static int usable(struct raft_storage *st)
{
	if (st->stopped)
		return RAFT_ESHUTDOWN;
	if (!st->opened)
		return invalid(st, "storage is not open");
	return RAFT_OK;
}

/* --- names ------------------------------------------------------------------------------------ */

static void seg_name(char *buf, uint64_t first_index)
{
	snprintf(buf, NAME_BYTES, SEG_PREFIX "%016" PRIx64, first_index);
}

static void snap_name(char *buf, const char *prefix, uint64_t index, uint64_t term,
                      const char *suffix)
{
	snprintf(buf, NAME_BYTES, "%s%016" PRIx64 "-%016" PRIx64 "%s", prefix, index, term, suffix);
}

/* The full path of name in the data directory, in one of the two scratch buffers. */
static const char *path_in(struct raft_storage *st, char *scratch, const char *name)
{
	snprintf(scratch, st->path_cap, "%s/%s", st->dir, name);
	return scratch;
}

/* Parses exactly 16 lowercase hex digits. */
static bool parse_hex16(const char *s, uint64_t *v)
{
	uint64_t x = 0;

	for (int i = 0; i < 16; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9')
			x = x << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			x = x << 4 | (uint64_t)(c - 'a' + 10);
		else
			return false;
	}
	*v = x;
	return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* "wal-<16 hex>" */
static bool parse_seg_name(const char *name, uint64_t *first)
{
	size_t p = strlen(SEG_PREFIX);

	return strncmp(name, SEG_PREFIX, p) == 0 && strlen(name) == p + 16 &&
	        parse_hex16(name + p, first) && *first > 0;
}

/* "snapshot-<16 hex>-<16 hex>.meta" or ".data"; *is_meta tells which. */
static bool parse_snap_name(const char *name, uint64_t *index, uint64_t *term, bool *is_meta)
{
	size_t p = strlen(SNAP_PREFIX);

	if (strncmp(name, SNAP_PREFIX, p) != 0 || strlen(name) != p + 16 + 1 + 16 + 5)
		return false;
	if (!parse_hex16(name + p, index) || name[p + 16] != '-' ||
	    !parse_hex16(name + p + 17, term))
		return false;
	if (strcmp(name + p + 33, ".meta") == 0)
		*is_meta = true;
	else if (strcmp(name + p + 33, ".data") == 0)
		*is_meta = false;
	else
		return false;
	return true;
}

/* --- small file helpers ----------------------------------------------------------------------- */

/* Reads the whole file name (at most max bytes, else RAFT_ECORRUPT) into a new buffer. */
static int read_file(struct raft_storage *st, const char *name, uint64_t max, unsigned char **out,
                     size_t *len)
{
	struct raft_vfs_file *f = NULL;
	unsigned char *buf = NULL;
	uint64_t size;
	size_t got;
	int err, rc;

	err = st->vfs->open(st->vfs, path_in(st, st->path_a, name), RAFT_VFS_READ, &f);
	if (err)
		return fail_io(st, err, "open %s", name);
	err = st->vfs->size(st->vfs, f, &size);
	if (err) {
		rc = fail_io(st, err, "stat %s", name);
		goto close_file;
	}
	if (size > max) {
		rc = fail_raft(st, RAFT_ECORRUPT, "%s: %" PRIu64 " bytes, more than %" PRIu64, name,
		               size, max);
		goto close_file;
	}
	buf = st_malloc(st, (size_t)size);
	if (!buf) {
		rc = fail_raft(st, RAFT_ENOMEM, "read %s", name);
		goto close_file;
	}
	err = st->vfs->pread(st->vfs, f, buf, (size_t)size, 0, &got);
	if (err || got != size) {
		rc = fail_io(st, err ? err : EIO, "read %s", name);
		goto free_buf;
	}
	st->vfs->close(st->vfs, f);
	*out = buf;
	*len = (size_t)size;
	return RAFT_OK;

free_buf:
	free(buf);
close_file:
	st->vfs->close(st->vfs, f);
	return rc;
}

/* Creates (or replaces) name with len bytes and fsyncs it; the caller syncs the directory. */
static int write_file_synced(struct raft_storage *st, const char *name, const void *data,
                             size_t len)
{
	struct raft_vfs_file *f;
	int err;

	err = st->vfs->open(st->vfs, path_in(st, st->path_a, name),
	                    RAFT_VFS_WRITE | RAFT_VFS_CREATE | RAFT_VFS_TRUNC, &f);
	if (err)
		return fail_io(st, err, "create %s", name);
	err = st->vfs->pwrite(st->vfs, f, data, len, 0);
	if (err) {
		st->vfs->close(st->vfs, f);
		return fail_io(st, err, "write %s", name);
	}
	err = st->vfs->fsync(st->vfs, f);
	st->vfs->close(st->vfs, f);
	if (err)
		return fail_io(st, err, "fsync %s", name);
	return RAFT_OK;
}

static int remove_file(struct raft_storage *st, const char *name)
{
	int err = st->vfs->unlink(st->vfs, path_in(st, st->path_a, name));

	if (err && err != ENOENT)
		return fail_io(st, err, "remove %s", name);
	return RAFT_OK;
}

static int rename_file(struct raft_storage *st, const char *from, const char *to)
{
	int err = st->vfs->rename(st->vfs, path_in(st, st->path_a, from),
	                          path_in(st, st->path_b, to));

	if (err)
		return fail_io(st, err, "rename %s to %s", from, to);
	return RAFT_OK;
}

static int sync_dir(struct raft_storage *st)
{
	int err = st->vfs->sync_dir(st->vfs, st->dir);

	if (err)
		return fail_io(st, err, "fsync directory %s", st->dir);
	return RAFT_OK;
}

/* --- construction ----------------------------------------------------------------------------- */

int raft_storage_new(const struct raft_storage_options *opts, struct raft_storage **out)
{
	struct raft_storage *st;
	struct raft_storage_options defaults;

	if (!opts) {
		memset(&defaults, 0, sizeof(defaults));
		opts = &defaults;
	}
	if (opts->segment_max_bytes != 0 &&
	    (opts->segment_max_bytes < RAFT_STORAGE_MIN_SEGMENT_BYTES ||
	     opts->segment_max_bytes > RAFT_STORAGE_MAX_SEGMENT_BYTES))
		return RAFT_EINVAL;
	if (opts->vfs && opts->vfs->alloc_fails && opts->vfs->alloc_fails(opts->vfs))
		return RAFT_ENOMEM;
	st = calloc(1, sizeof(*st));
	if (!st)
		return RAFT_ENOMEM;
	st->vfs = opts->vfs;
	if (!st->vfs) {
		st->vfs = raft_vfs_posix_new();
		if (!st->vfs) {
			free(st);
			return RAFT_ENOMEM;
		}
		st->own_vfs = true;
	}
	st->segment_max_bytes =
	        opts->segment_max_bytes ? opts->segment_max_bytes : RAFT_STORAGE_SEGMENT_BYTES;
	st->prealloc_bytes = opts->prealloc_bytes == RAFT_STORAGE_PREALLOC_OFF ? 0
	        : opts->prealloc_bytes ? opts->prealloc_bytes
	                               : RAFT_STORAGE_PREALLOC_BYTES;
	st->log = opts->log;
	st->log_ctx = opts->log_ctx;
	st->meta_newest = -1;
	raft_codec_buf_init(&st->wbuf);
	*out = st;
	return RAFT_OK;
}

static void writer_close(struct raft_storage *st, struct snap_writer *w)
{
	st->vfs->close(st->vfs, w->f);
	w->f = NULL;
	w->active = false;
	w->staged = false;
}

static void segments_free(struct raft_storage *st)
{
	for (size_t i = 0; i < st->n_segs; i++)
		free(st->segs[i].offsets);
	free(st->segs);
	st->segs = NULL;
	st->n_segs = st->cap_segs = 0;
}

void raft_storage_free(struct raft_storage *st)
{
	if (!st)
		return;
	st->vfs->close(st->vfs, st->tail);
	st->vfs->close(st->vfs, st->snap_file);
	writer_close(st, &st->local);
	writer_close(st, &st->incoming);
	segments_free(st);
	raft_codec_buf_free(&st->wbuf);
	free(st->dir);
	free(st->path_a);
	free(st->path_b);
	if (st->own_vfs)
		raft_vfs_free(st->vfs);
	free(st);
}

bool raft_storage_stopped(const struct raft_storage *st)
{
	return st->stopped;
}

const char *raft_storage_errmsg(const struct raft_storage *st)
{
	return st->errmsg;
}

uint64_t raft_storage_last_index(const struct raft_storage *st)
{
	return st->last_index;
}

void raft_storage_restore_free(struct raft_restore *restore)
{
	struct raft_entry *entries = (struct raft_entry *)restore->entries;

	for (size_t i = 0; i < restore->n_entries; i++)
		raft_buf_unref(entries[i].data);
	free(entries);
	memset(restore, 0, sizeof(*restore));
}

/* --- segments in memory ----------------------------------------------------------------------- */

static struct segment *seg_push(struct raft_storage *st, uint64_t first_index)
{
	struct segment *s;

	if (st->n_segs == st->cap_segs) {
		size_t ncap = st->cap_segs ? st->cap_segs * 2 : 8;
		s = st_realloc(st, st->segs, ncap * sizeof(*s));
		if (!s)
			return NULL;
		st->segs = s;
		st->cap_segs = ncap;
	}
	s = &st->segs[st->n_segs++];
	memset(s, 0, sizeof(*s));
	s->first_index = first_index;
	return s;
}

/* Records that the next entry of s starts at byte offset. */
static int seg_add_offset(struct raft_storage *st, struct segment *s, uint64_t offset)
{
	if (s->n_entries == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		uint32_t *p = st_realloc(st, s->offsets, ncap * sizeof(*p));
		if (!p)
			return RAFT_ENOMEM;
		s->offsets = p;
		s->cap = ncap;
	}
	s->offsets[s->n_entries++] = (uint32_t)offset;
	return RAFT_OK;
}

static uint64_t seg_last_index(const struct segment *s)
{
	return s->first_index + s->n_entries - 1;
}

/* Removes segment i (file and memory); the caller syncs the directory. */
static int seg_remove(struct raft_storage *st, size_t i)
{
	char name[NAME_BYTES];

	if (i == st->n_segs - 1 && st->tail) {
		st->vfs->close(st->vfs, st->tail);
		st->tail = NULL;
		st->wbuf.len = 0;
		st->tail_dirty = false;
	}
	seg_name(name, st->segs[i].first_index);
	free(st->segs[i].offsets);
	memmove(&st->segs[i], &st->segs[i + 1], (st->n_segs - i - 1) * sizeof(st->segs[0]));
	st->n_segs--;
	return remove_file(st, name);
}

/* CRC32C of file name, which must be size bytes long: else RAFT_ECORRUPT, with *actual its size.
 * Reads 64 KiB at a time. A failed open or read stops the storage. */
static int file_crc(struct raft_storage *st, const char *name, uint64_t size, uint32_t *crc,
                    uint64_t *actual)
{
	struct raft_vfs_file *f;
	unsigned char *buf;
	uint64_t off = 0;
	size_t got;
	int err, rc = RAFT_OK;

	err = st->vfs->open(st->vfs, path_in(st, st->path_a, name), RAFT_VFS_READ, &f);
	if (err)
		return fail_io(st, err, "open %s", name);
	err = st->vfs->size(st->vfs, f, actual);
	if (err) {
		rc = fail_io(st, err, "stat %s", name);
		goto close_file;
	}
	if (*actual != size) {
		rc = RAFT_ECORRUPT;
		goto close_file;
	}
	buf = st_malloc(st, READ_CHUNK_BYTES);
	if (!buf) {
		rc = fail_raft(st, RAFT_ENOMEM, "read %s", name);
		goto close_file;
	}
	*crc = 0;
	while (off < size) {
		size_t want =
		        size - off < READ_CHUNK_BYTES ? (size_t)(size - off) : READ_CHUNK_BYTES;
		err = st->vfs->pread(st->vfs, f, buf, want, off, &got);
		if (err || got != want) {
			rc = fail_io(st, err ? err : EIO, "read %s", name);
			break;
		}
		*crc = raft_crc32c(*crc, buf, got);
		off += got;
	}
	free(buf);
close_file:
	st->vfs->close(st->vfs, f);
	return rc;
}

/* --- hard state ------------------------------------------------------------------------------- */

static const char *meta_file_name(int i)
{
	return i == 0 ? META_FILE_1 : META_FILE_2;
}

/* Writes hs with sequence number seq into the file that does not hold the newest record: if we
 * crash half way, the other one still has the previous hard state. */
static int meta_write(struct raft_storage *st, uint64_t seq, const struct raft_hard_state *hs)
{
	struct raft_codec_buf frame;
	int which = st->meta_newest == 0 ? 1 : 0, rc;

	raft_codec_buf_init(&frame);
	rc = raft_codec_encode_hard_state(&frame, seq, hs);
	if (rc != RAFT_OK) {
		rc = fail_raft(st, rc, "encode hard state");
		goto free_frame;
	}
	rc = write_file_synced(st, meta_file_name(which), frame.data, frame.len);
	if (rc != RAFT_OK)
		goto free_frame;
	if (!st->meta_exists[which]) {
		rc = sync_dir(st);
		if (rc != RAFT_OK)
			goto free_frame;
		st->meta_exists[which] = true;
	}
	st->meta_seq = seq;
	st->meta_newest = which;
	st->hs = *hs;
free_frame:
	raft_codec_buf_free(&frame);
	return rc;
}

int raft_storage_set_hard_state(struct raft_storage *st, const struct raft_hard_state *hs)
{
	int rc = usable(st);

	if (rc != RAFT_OK)
		return rc;
	if (st->meta_seq < META_MAX_SEQ)
		return meta_write(st, st->meta_seq + 1, hs);
	/* The numbers are used up (only a damaged or forged file gets here: see META_MAX_SEQ).
	 * Start again at 1 in the older file: a crash now leaves the newest record at
	 * META_MAX_SEQ, the previous hard state; then 2 in the file that held it, which a crash
	 * half way leaves to the record of 1, the new one. */
	rc = meta_write(st, 1, hs);
	return rc == RAFT_OK ? meta_write(st, 2, hs) : rc;
}

/* Loads one metadata file: RAFT_OK and *valid, or a hard error. */
static int meta_load_one(struct raft_storage *st, int which, bool *valid, uint64_t *seq,
                         struct raft_hard_state *hs)
{
	const char *name = meta_file_name(which);
	unsigned char *buf;
	size_t len, frame_len = 0;
	int rc;

	*valid = false;
	rc = read_file(st, name, RAFT_STORAGE_MAX_META_BYTES, &buf, &len);
	if (rc != RAFT_OK)
		return rc;
	if (len == 0) {
		st_log(st, 1, "%s is empty (created before a crash): ignored", name);
	} else if (raft_codec_frame_length(buf, len, &frame_len) == RAFT_OK && frame_len <= len) {
		rc = raft_codec_decode_hard_state(buf, frame_len, seq, hs);
		if (rc == RAFT_OK)
			*valid = *seq <= META_MAX_SEQ;
		else if (rc == RAFT_ENOMEM)
			rc = fail_raft(st, rc, "decode %s", name);
		else
			rc = RAFT_OK;
	}
	if (rc == RAFT_OK && !*valid && len > 0)
		st_log(st, 2, "%s: corrupt record at byte 0", name);
	free(buf);
	return rc;
}

static int meta_load(struct raft_storage *st, const bool present[2])
{
	struct raft_hard_state hs[2];
	uint64_t seq[2] = {0, 0};
	bool valid[2] = {false, false};
	int rc;

	memset(hs, 0, sizeof(hs));
	for (int i = 0; i < 2; i++) {
		st->meta_exists[i] = present[i];
		if (!present[i])
			continue;
		rc = meta_load_one(st, i, &valid[i], &seq[i], &hs[i]);
		if (rc != RAFT_OK)
			return rc;
	}
	if (!valid[0] && !valid[1]) {
		for (int i = 0; i < 2; i++) {
			uint64_t size = 0;
			struct raft_vfs_file *f;
			if (!present[i])
				continue;
			/* an empty file is a creation cut short by a crash; anything else is damage */
			if (st->vfs->open(st->vfs, path_in(st, st->path_a, meta_file_name(i)),
			                  RAFT_VFS_READ, &f) == 0) {
				st->vfs->size(st->vfs, f, &size);
				st->vfs->close(st->vfs, f);
			}
			if (size > 0)
				return fail_raft(st, RAFT_ECORRUPT,
				                 "%s: corrupt record at byte 0 (and no valid copy)",
				                 meta_file_name(i));
		}
		return RAFT_OK; /* a new node */
	}
	for (int i = 0; i < 2; i++) {
		if (valid[i] && (!valid[1 - i] || seq[i] > seq[1 - i])) {
			st->hs = hs[i];
			st->meta_seq = seq[i];
			st->meta_newest = i;
		}
	}
	return RAFT_OK;
}

/* --- log: appends, truncation, sync ----------------------------------------------------------- */

/*
 * Reserves the tail's space up to at least need bytes, one prealloc step ahead but not past the
 * segment bound. Not being able to is no failure: the log is whole, its appends just grow the
 * file as they would without preallocation (until the next segment tries again).
 */
static void tail_reserve(struct raft_storage *st, uint64_t need)
{
	char name[NAME_BYTES];
	uint64_t bound = need > st->segment_max_bytes ? need : st->segment_max_bytes;
	uint64_t want = need + st->prealloc_bytes < bound ? need + st->prealloc_bytes : bound;
	int err;

	if (st->prealloc_bytes == 0 || st->prealloc_paused || need <= st->tail_alloc)
		return;
	err = st->vfs->allocate(st->vfs, st->tail, want);
	if (err) {
		seg_name(name, st->segs[st->n_segs - 1].first_index);
		st_log(st, 2, "segment %s: cannot reserve space (%s)", name, errno_name(err));
		st->prealloc_paused = true;
		return;
	}
	st->tail_alloc = want;
}

/* Learns the tail file's size (preallocated space included) after opening it. */
static int tail_size(struct raft_storage *st, const char *name)
{
	int err = st->vfs->size(st->vfs, st->tail, &st->tail_alloc);

	return err ? fail_io(st, err, "size of segment %s", name) : RAFT_OK;
}

/* Writes the queued records of the tail (no sync). */
static int tail_flush(struct raft_storage *st)
{
	char name[NAME_BYTES];
	int err;

	if (st->wbuf.len == 0)
		return RAFT_OK;
	tail_reserve(st, st->tail_written + st->wbuf.len);
	err = st->vfs->pwrite(st->vfs, st->tail, st->wbuf.data, st->wbuf.len, st->tail_written);
	if (err) {
		seg_name(name, st->segs[st->n_segs - 1].first_index);
		return fail_io(st, err, "write segment %s", name);
	}
	st->tail_written += st->wbuf.len;
	st->wbuf.len = 0;
	st->tail_dirty = true;
	return RAFT_OK;
}

int raft_storage_sync(struct raft_storage *st)
{
	char name[NAME_BYTES];
	int err, rc = usable(st);

	if (rc != RAFT_OK)
		return rc;
	rc = tail_flush(st);
	if (rc != RAFT_OK || !st->tail_dirty)
		return rc;
	err = st->vfs->fdatasync(st->vfs, st->tail);
	if (err) {
		seg_name(name, st->segs[st->n_segs - 1].first_index);
		return fail_io(st, err, "fdatasync segment %s", name);
	}
	st->tail_dirty = false;
	return RAFT_OK;
}

/* Starts segment wal-<first_index> as the new tail. The previous tail must be closed. */
static int seg_create(struct raft_storage *st, uint64_t first_index)
{
	char name[NAME_BYTES];
	int err;

	seg_name(name, first_index);
	if (!seg_push(st, first_index))
		return fail_raft(st, RAFT_ENOMEM, "create segment %s", name);
	err = st->vfs->open(st->vfs, path_in(st, st->path_a, name),
	                    RAFT_VFS_READ | RAFT_VFS_WRITE | RAFT_VFS_CREATE | RAFT_VFS_TRUNC,
	                    &st->tail);
	if (err) {
		st->n_segs--;
		st->tail = NULL;
		return fail_io(st, err, "create segment %s", name);
	}
	st->tail_written = 0;
	st->tail_alloc = 0;
	st->prealloc_paused = false;
	st->tail_dirty = false;
	/* The new name must survive a crash before any entry in it is acknowledged. */
	return sync_dir(st);
}

/* Closes the full tail: its records are written and synced, and its unused space cut off,
 * before any later segment gets a byte, so that only the last segment can ever end in a torn
 * record or in zeros. */
static int seg_close_tail(struct raft_storage *st)
{
	char name[NAME_BYTES];
	int err, rc = raft_storage_sync(st);

	if (rc != RAFT_OK)
		return rc;
	if (st->tail_alloc > st->tail_written) {
		err = st->vfs->truncate(st->vfs, st->tail, st->tail_written);
		if (!err)
			err = st->vfs->fdatasync(st->vfs, st->tail);
		if (err) {
			seg_name(name, st->segs[st->n_segs - 1].first_index);
			return fail_io(st, err, "cut segment %s", name);
		}
		st->tail_alloc = st->tail_written;
	}
	st->vfs->close(st->vfs, st->tail);
	st->tail = NULL;
	return RAFT_OK;
}

/* Moves the last frame_len bytes of wbuf (a frame just encoded) to the front. */
static void wbuf_keep_last(struct raft_codec_buf *b, size_t frame_len)
{
	memmove(b->data, b->data + b->len - frame_len, frame_len);
	b->len = frame_len;
}

static int append_one(struct raft_storage *st, const struct raft_entry *e)
{
	size_t before = st->wbuf.len, frame_len;
	struct segment *s;
	int rc;

	rc = raft_codec_encode_entry(&st->wbuf, e);
	if (rc != RAFT_OK)
		return fail_raft(st, rc, "encode entry %" PRIu64, e->index);
	frame_len = st->wbuf.len - before;
	s = st->n_segs ? &st->segs[st->n_segs - 1] : NULL;
	if (s && st->tail && s->n_entries > 0 && s->size + frame_len > st->segment_max_bytes) {
		/* Rotate: write and sync what belongs to the full segment, then start the next.
		 * Flushing only resets wbuf.len, so the new frame's bytes stay where they are. */
		st->wbuf.len = before;
		rc = seg_close_tail(st);
		if (rc != RAFT_OK)
			return rc;
		st->wbuf.len = before + frame_len;
		wbuf_keep_last(&st->wbuf, frame_len);
		s = NULL;
	} else if (!st->tail) {
		s = NULL;
		if (before > 0) /* cannot happen: queued records always have a tail */
			return fail_raft(st, RAFT_EINVAL, "queued records without a segment");
	}
	if (!s) {
		/* wbuf now holds just this frame; it goes to a new segment */
		rc = seg_create(st, e->index);
		if (rc != RAFT_OK)
			return rc;
		s = &st->segs[st->n_segs - 1];
	}
	rc = seg_add_offset(st, s, s->size);
	if (rc != RAFT_OK)
		return fail_raft(st, rc, "append entry %" PRIu64, e->index);
	s->size += frame_len;
	st->last_index = e->index;
	return RAFT_OK;
}

static int entries_check(struct raft_storage *st, uint64_t next, const struct raft_entry *entries,
                         size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct raft_entry *e = &entries[i];
		if (e->index != next + i)
			return invalid(st,
			               "append: entry %" PRIu64 " where %" PRIu64 " was expected",
			               e->index, next + i);
		if (e->len > RAFT_CODEC_MAX_ENTRY_BYTES)
			return invalid(st, "append: entry %" PRIu64 " has %" PRIu32 " bytes",
			               e->index, e->len);
		if (e->len > 0 && !e->data)
			return invalid(st, "append: entry %" PRIu64 " has no data", e->index);
	}
	return RAFT_OK;
}

int raft_storage_append(struct raft_storage *st, const struct raft_entry *entries, size_t n)
{
	int rc = usable(st);

	if (rc != RAFT_OK)
		return rc;
	rc = entries_check(st, st->last_index + 1, entries, n);
	for (size_t i = 0; i < n && rc == RAFT_OK; i++)
		rc = append_one(st, &entries[i]);
	return rc;
}

int raft_storage_truncate(struct raft_storage *st, uint64_t index)
{
	struct segment *s;
	char name[NAME_BYTES];
	bool removed = false;
	int err, rc = usable(st);

	if (rc != RAFT_OK)
		return rc;
	if (index == 0 || (st->has_snap && index <= st->snap.index))
		return invalid(st, "truncate at %" PRIu64 ": not above the snapshot", index);
	if (index > st->last_index)
		return RAFT_OK;
	rc = tail_flush(st);
	if (rc != RAFT_OK)
		return rc;
	/* Whole segments from the end backwards, so that a crash half way leaves a prefix. */
	while (st->n_segs > 0 && st->segs[st->n_segs - 1].first_index >= index) {
		rc = seg_remove(st, st->n_segs - 1);
		if (rc != RAFT_OK)
			return rc;
		removed = true;
	}
	if (removed && (rc = sync_dir(st)) != RAFT_OK)
		return rc;
	st->last_index = index - 1;
	if (st->n_segs == 0)
		return RAFT_OK;
	s = &st->segs[st->n_segs - 1];
	seg_name(name, s->first_index);
	if (!st->tail) {
		err = st->vfs->open(st->vfs, path_in(st, st->path_a, name),
		                    RAFT_VFS_READ | RAFT_VFS_WRITE, &st->tail);
		if (err) {
			st->tail = NULL;
			return fail_io(st, err, "open segment %s", name);
		}
		st->tail_written = s->size;
		st->prealloc_paused = false;
		if ((rc = tail_size(st, name)) != RAFT_OK)
			return rc;
	}
	if (index <= seg_last_index(s)) {
		/* Cut, not overwritten in place: records past the new end must not survive in the
		 * space that later appends reuse (zeros are the end of the log, old records are not). */
		uint64_t cut = s->offsets[index - s->first_index];
		err = st->vfs->truncate(st->vfs, st->tail, cut);
		if (err)
			return fail_io(st, err, "truncate segment %s", name);
		s->n_entries = index - s->first_index;
		s->size = st->tail_written = st->tail_alloc = cut;
		st->tail_dirty = true;
	}
	return RAFT_OK;
}

/* --- snapshots -------------------------------------------------------------------------------- */

static int writer_start(struct raft_storage *st, struct snap_writer *w, const char *prefix,
                        const struct raft_snapshot_meta *meta)
{
	int err;

	snap_name(w->tmp_name, prefix, meta->index, meta->term, ".data" TMP_SUFFIX);
	/* read too: an incoming image is read back (the check, the application's restore) */
	err = st->vfs->open(st->vfs, path_in(st, st->path_a, w->tmp_name),
	                    RAFT_VFS_READ | RAFT_VFS_WRITE | RAFT_VFS_CREATE | RAFT_VFS_TRUNC,
	                    &w->f);
	if (err) {
		w->f = NULL;
		return fail_io(st, err, "create %s", w->tmp_name);
	}
	w->active = true;
	w->meta = *meta;
	w->written = 0;
	w->synced = 0;
	w->crc = 0;
	w->staged = false;
	return RAFT_OK;
}

/* The step sync of an image being written (RAFT_STORAGE_IMAGE_SYNC_BYTES): fdatasyncs f once
 * written is that far past *synced. 0 or an errno value. */
static int image_sync_step(struct raft_vfs *vfs, struct raft_vfs_file *f, uint64_t written,
                           uint64_t *synced)
{
	int err;

	if (written - *synced < RAFT_STORAGE_IMAGE_SYNC_BYTES)
		return 0;
	err = vfs->fdatasync(vfs, f);
	if (!err)
		*synced = written;
	return err;
}

static int writer_write(struct raft_storage *st, struct snap_writer *w, uint64_t offset,
                        const void *buf, size_t len)
{
	int err = st->vfs->pwrite(st->vfs, w->f, buf, len, offset);

	if (err)
		return fail_io(st, err, "write %s", w->tmp_name);
	w->crc = raft_crc32c(w->crc, buf, len);
	w->written = offset + len;
	err = image_sync_step(st->vfs, w->f, w->written, &w->synced);
	if (err)
		return fail_io(st, err, "fdatasync %s", w->tmp_name);
	return RAFT_OK;
}

/*
 * Closes w and removes its temporary file. When must_remove, a failed removal stops the storage
 * like any failed write; else it is only logged: the file is a temporary one, removed at the next
 * open (scan_dir), and nothing depends on its going now.
 */
static int writer_remove(struct raft_storage *st, struct snap_writer *w, bool must_remove)
{
	int err;

	if (!w->active)
		return RAFT_OK;
	writer_close(st, w);
	if (must_remove)
		return remove_file(st, w->tmp_name);
	err = st->vfs->unlink(st->vfs, path_in(st, st->path_a, w->tmp_name));
	if (err && err != ENOENT)
		st_log(st, 2, "remove %s: %s (removed at the next open)", w->tmp_name,
		       errno_name(err));
	return RAFT_OK;
}

/* Removes the segments holding only entries <= index (all of them when drop_all). */
static int segs_drop_covered(struct raft_storage *st, uint64_t index, bool drop_all)
{
	int rc = RAFT_OK;

	while (rc == RAFT_OK && st->n_segs > 0 &&
	       (drop_all || seg_last_index(&st->segs[0]) <= index)) {
		if (st->n_segs == 1 && st->tail) {
			st->vfs->close(st->vfs, st->tail);
			st->tail = NULL;
			st->wbuf.len = 0;
			st->tail_dirty = false;
		}
		rc = seg_remove(st, 0);
	}
	return rc;
}

/*
 * Makes the written image of w the current snapshot: image fsynced (unless the caller's image
 * step did it: sync_image false), metadata written to a temporary file and fsynced, both
 * renamed, directory fsynced. Only then is the previous snapshot removed, with the log it
 * covers (all of it when drop_log).
 */
static int snapshot_install(struct raft_storage *st, struct snap_writer *w, bool drop_log,
                            bool sync_image)
{
	struct raft_codec_buf frame;
	struct raft_snapshot_meta meta = w->meta, old = st->snap;
	char data_name[NAME_BYTES], meta_name[NAME_BYTES], meta_tmp[NAME_BYTES];
	bool had_snap = st->has_snap;
	int err, rc;

	meta.size = w->written;
	meta.crc = w->crc;
	snap_name(data_name, SNAP_PREFIX, meta.index, meta.term, ".data");
	snap_name(meta_name, SNAP_PREFIX, meta.index, meta.term, ".meta");
	snap_name(meta_tmp, SNAP_PREFIX, meta.index, meta.term, ".meta" TMP_SUFFIX);
	err = sync_image ? st->vfs->fsync(st->vfs, w->f) : 0;
	if (err)
		return fail_io(st, err, "fsync %s", w->tmp_name);
	writer_close(st, w);
	raft_codec_buf_init(&frame);
	rc = raft_codec_encode_snapshot_meta(&frame, &meta);
	if (rc != RAFT_OK) {
		rc = fail_raft(st, rc, "encode %s", meta_name);
		goto free_frame;
	}
	rc = write_file_synced(st, meta_tmp, frame.data, frame.len);
	if (rc == RAFT_OK)
		rc = rename_file(st, w->tmp_name, data_name);
	if (rc == RAFT_OK)
		rc = rename_file(st, meta_tmp, meta_name);
	if (rc == RAFT_OK)
		rc = sync_dir(st);
	if (rc != RAFT_OK)
		goto free_frame;
	/* The new snapshot is durable: from here on the old one may go. */
	st->vfs->close(st->vfs, st->snap_file);
	st->snap_file = NULL;
	st->snap = meta;
	st->has_snap = true;
	if (had_snap) {
		snap_name(meta_name, SNAP_PREFIX, old.index, old.term, ".meta");
		snap_name(data_name, SNAP_PREFIX, old.index, old.term, ".data");
		rc = remove_file(st, meta_name);
		if (rc == RAFT_OK)
			rc = remove_file(st, data_name);
	}
	if (rc == RAFT_OK)
		rc = segs_drop_covered(st, meta.index, drop_log);
	if (rc == RAFT_OK)
		rc = sync_dir(st);
	if (rc == RAFT_OK && (drop_log || st->last_index < meta.index))
		st->last_index = meta.index;
free_frame:
	raft_codec_buf_free(&frame);
	return rc;
}

int raft_storage_snapshot_begin(struct raft_storage *st, const struct raft_snapshot_meta *meta)
{
	int rc = usable(st);

	if (rc != RAFT_OK)
		return rc;
	if (st->local.active)
		return invalid(st, "snapshot begin: a snapshot is already being written");
	if (meta->index == 0 || (st->has_snap && meta->index <= st->snap.index) ||
	    meta->index > st->last_index)
		return invalid(st, "snapshot begin: index %" PRIu64 " out of range", meta->index);
	if (meta->conf.n > RAFT_MAX_NODES || meta->conf.n_old > RAFT_MAX_NODES)
		return invalid(st, "snapshot begin: bad configuration");
	return writer_start(st, &st->local, SNAP_PREFIX, meta);
}

void raft_storage_snapshot_abort(struct raft_storage *st)
{
	if (st->local.active && !st->stopped)
		(void)writer_remove(st, &st->local, false);
	else
		writer_close(st, &st->local);
}

void raft_storage_snapshot_image(struct raft_storage *st, struct raft_storage_image *img)
{
	memset(img, 0, sizeof(*img));
	img->vfs = st->vfs;
	img->f = st->local.active ? st->local.f : NULL;
	if (!img->f)
		img->err = EBADF;
}

int raft_storage_image_write(struct raft_storage_image *img, const void *buf, size_t len)
{
	int err;

	if (img->err)
		return errno_to_raft(img->err);
	err = img->vfs->pwrite(img->vfs, img->f, buf, len, img->size);
	if (!err) {
		img->crc = raft_crc32c(img->crc, buf, len);
		img->size += len;
		err = image_sync_step(img->vfs, img->f, img->size, &img->synced);
	}
	if (err) {
		img->err = err;
		return errno_to_raft(err);
	}
	return RAFT_OK;
}

int raft_storage_image_sync(struct raft_storage_image *img)
{
	int err;

	if (img->err)
		return errno_to_raft(img->err);
	err = img->vfs->fsync(img->vfs, img->f);
	if (err) {
		img->err = err;
		return errno_to_raft(err);
	}
	return RAFT_OK;
}

int raft_storage_snapshot_install(struct raft_storage *st, uint64_t size, uint32_t crc)
{
	struct snap_writer *w = &st->local;
	uint64_t on_disk;
	int err, rc = usable(st);

	if (rc != RAFT_OK)
		return rc;
	if (!w->active)
		return invalid(st, "snapshot install: no snapshot begun");
	if (st->has_snap && w->meta.index <= st->snap.index) {
		/* an InstallSnapshot from the leader (or another newer snapshot) won meanwhile */
		snprintf(st->errmsg, sizeof(st->errmsg),
		         "snapshot %" PRIu64 " discarded: snapshot %" PRIu64 " installed meanwhile",
		         w->meta.index, st->snap.index);
		(void)writer_remove(st, w, false);
		return RAFT_ENOENT;
	}
	/* The image was written elsewhere: what it reports must be what the file holds. */
	err = st->vfs->size(st->vfs, w->f, &on_disk);
	if (err || on_disk != size) {
		if (err)
			snprintf(st->errmsg, sizeof(st->errmsg), "stat %s: %s", w->tmp_name,
			         errno_name(err));
		else
			snprintf(st->errmsg, sizeof(st->errmsg),
			         "%s: %" PRIu64 " bytes, the image step reported %" PRIu64,
			         w->tmp_name, on_disk, size);
		(void)writer_remove(st, w, false);
		return err ? RAFT_EIO : RAFT_ECORRUPT;
	}
	w->written = size;
	w->crc = crc;
	/* Entries the snapshot covers must be on disk before segments go; nothing queued is
	 * covered, but the queue belongs to the tail that may be removed. */
	rc = raft_storage_sync(st);
	if (rc != RAFT_OK)
		return rc;
	return snapshot_install(st, w, false, false);
}

int raft_storage_snapshot_meta(const struct raft_storage *st, struct raft_snapshot_meta *meta)
{
	if (!st->has_snap)
		return RAFT_ENOENT;
	*meta = st->snap;
	return RAFT_OK;
}

int raft_storage_snapshot_file(const struct raft_storage *st, char *buf, size_t len)
{
	char name[NAME_BYTES];

	if (!st->has_snap)
		return RAFT_ENOENT;
	snap_name(name, SNAP_PREFIX, st->snap.index, st->snap.term, ".data");
	snprintf(buf, len, "%s", name);
	return RAFT_OK;
}

int raft_storage_snapshot_read(struct raft_storage *st, uint64_t index, uint64_t offset, void *buf,
                               size_t len, size_t *got)
{
	char name[NAME_BYTES];
	int err, rc = usable(st);

	*got = 0;
	if (rc != RAFT_OK)
		return rc;
	if (!st->has_snap || st->snap.index != index)
		return RAFT_ENOENT;
	if (offset >= st->snap.size)
		return RAFT_OK;
	if (len > st->snap.size - offset)
		len = (size_t)(st->snap.size - offset);
	snap_name(name, SNAP_PREFIX, st->snap.index, st->snap.term, ".data");
	if (!st->snap_file) {
		err = st->vfs->open(st->vfs, path_in(st, st->path_a, name), RAFT_VFS_READ,
		                    &st->snap_file);
		if (err) {
			st->snap_file = NULL;
			snprintf(st->errmsg, sizeof(st->errmsg), "open %s: %s", name,
			         errno_name(err));
			return RAFT_EIO;
		}
	}
	err = st->vfs->pread(st->vfs, st->snap_file, buf, len, offset, got);
	if (err) {
		snprintf(st->errmsg, sizeof(st->errmsg), "read %s: %s", name, errno_name(err));
		return RAFT_EIO;
	}
	return RAFT_OK;
}

/* --- persist ---------------------------------------------------------------------------------- */

#ifdef RAFT_DEBUG
#include <assert.h>

/* The invariants stated on struct raft_storage, checked after every change in debug builds. */
static void check_invariants(const struct raft_storage *st)
{
	uint64_t snap_index = st->has_snap ? st->snap.index : 0;

	if (st->stopped || !st->opened)
		return;
	assert((st->tail != NULL) == (st->n_segs > 0));
	assert(st->n_segs > 0 || st->last_index == snap_index);
	for (size_t i = 0; i < st->n_segs; i++) {
		const struct segment *s = &st->segs[i];
		assert(i + 1 == st->n_segs || s->n_entries > 0);
		assert(i == 0 || s->first_index == seg_last_index(&st->segs[i - 1]) + 1);
	}
	if (st->n_segs > 0) {
		const struct segment *t = &st->segs[st->n_segs - 1];
		assert(t->n_entries == 0 || seg_last_index(t) == st->last_index);
		assert(t->size == st->tail_written + st->wbuf.len);
	}
}
#else
static void check_invariants(const struct raft_storage *st)
{
	(void)st;
}
#endif

/* Checks everything in u before any of it touches the disk. */
static int persist_check(struct raft_storage *st, const struct raft_update *u)
{
	uint64_t last = st->last_index, snap_index = st->has_snap ? st->snap.index : 0;

	if (u->has_snap_chunk) {
		const struct raft_snapshot_meta *m = &u->snap_meta;
		if (m->index <= snap_index || m->conf.n > RAFT_MAX_NODES ||
		    m->conf.n_old > RAFT_MAX_NODES)
			return invalid(st, "snapshot chunk: index %" PRIu64 " not above %" PRIu64,
			               m->index, snap_index);
		if (u->snap_len > 0 && !u->snap_data)
			return invalid(st, "snapshot chunk: no data");
		if (u->snap_offset != 0 &&
		    (!st->incoming.active || st->incoming.meta.index != m->index ||
		     st->incoming.meta.term != m->term || st->incoming.written != u->snap_offset))
			return invalid(st, "snapshot chunk: offset %" PRIu64 " does not follow",
			               u->snap_offset);
		if (u->snap_last && u->snap_offset + u->snap_len != m->size)
			return invalid(st,
			               "snapshot chunk: last chunk ends at %" PRIu64
			               ", size is %" PRIu64,
			               u->snap_offset + u->snap_len, m->size);
		if (u->snap_last) {
			last = m->index;
			snap_index = m->index;
		}
	}
	if (u->truncate_from) {
		if (u->truncate_from <= snap_index)
			return invalid(st, "truncate at %" PRIu64 ": not above the snapshot",
			               u->truncate_from);
		if (u->truncate_from <= last)
			last = u->truncate_from - 1;
	}
	return entries_check(st, last + 1, u->entries, u->n_entries);
}

/*
 * The last chunk of an incoming snapshot is written: the image is fsynced, then read back from
 * the disk whole (64 KiB at a time: no memory) and must have the size and the CRC32C the leader's
 * metadata give (raft_snapshot_meta.crc, sent with every chunk). The transport checks each frame,
 * but nothing else checked the image end to end: a chunk misplaced, a buffer spoiled in memory
 * or on the way, a disk that returns other bytes. An image that does not match is removed and
 * refused with RAFT_ECORRUPT, the storage goes on and nothing else changed: the old snapshot and
 * log are the node's state still. (A read that fails stops the storage, like any I/O error.)
 */
static int incoming_check(struct raft_storage *st, struct snap_writer *w)
{
	uint64_t actual = w->meta.size;
	uint32_t crc = 0;
	int err, rc;

	err = st->vfs->fsync(st->vfs, w->f);
	if (err)
		return fail_io(st, err, "fsync %s", w->tmp_name);
	rc = file_crc(st, w->tmp_name, w->meta.size, &crc, &actual);
	if (rc == RAFT_OK && (crc != w->meta.crc || w->crc != w->meta.crc))
		rc = RAFT_ECORRUPT;
	if (rc != RAFT_ECORRUPT) {
		w->staged = rc == RAFT_OK;
		return rc;
	}
	snprintf(st->errmsg, sizeof(st->errmsg),
	         "%s: %" PRIu64 " bytes with CRC %08" PRIx32 " (%08" PRIx32
	         " as received), the leader's image has %" PRIu64 " bytes with CRC %08" PRIx32,
	         w->tmp_name, actual, crc, w->crc, w->meta.size, w->meta.crc);
	(void)writer_remove(st, w, false);
	return RAFT_ECORRUPT;
}

static int persist_chunk(struct raft_storage *st, const struct raft_update *u)
{
	struct snap_writer *w = &st->incoming;
	int rc;

	if (u->snap_offset == 0) {
		rc = writer_remove(st, w, true);
		if (rc == RAFT_OK)
			rc = writer_start(st, w, INCOMING_PREFIX, &u->snap_meta);
		if (rc != RAFT_OK)
			return rc;
	}
	rc = writer_write(st, w, u->snap_offset, u->snap_data, u->snap_len);
	if (rc != RAFT_OK)
		return rc;
	/* The image is fsynced once, whole, when it is checked. A chunk before the last needs no
	 * sync of its own: its acknowledgement promises nothing durable (the leader counts the
	 * snapshot only when the last chunk is installed), and after a crash the temporary file is
	 * removed at open and the transfer starts again from offset 0. */
	if (u->snap_last)
		return incoming_check(st, w);
	return RAFT_OK;
}

int raft_storage_persist_stage(struct raft_storage *st, const struct raft_update *u)
{
	int rc = usable(st);

	if (rc != RAFT_OK)
		return rc;
	if (st->incoming.staged)
		return invalid(st, "persist: a staged snapshot waits for its commit");
	rc = persist_check(st, u);
	if (rc != RAFT_OK)
		return rc;
	if (u->hs_changed && (rc = raft_storage_set_hard_state(st, &u->hs)) != RAFT_OK)
		return rc;
	if (u->has_snap_chunk && (rc = persist_chunk(st, u)) != RAFT_OK)
		return rc;
	check_invariants(st);
	return RAFT_OK;
}

int raft_storage_persist_commit(struct raft_storage *st, const struct raft_update *u)
{
	struct snap_writer *w = &st->incoming;
	int rc = usable(st);

	if (rc != RAFT_OK)
		return rc;
	if (u->has_snap_chunk && u->snap_last) {
		if (!w->staged || w->meta.index != u->snap_meta.index ||
		    w->meta.term != u->snap_meta.term)
			return invalid(st, "persist: snapshot %" PRIu64 " is not staged",
			               u->snap_meta.index);
		/* the image was synced by the check: metadata, renames, then the old state goes */
		rc = snapshot_install(st, w, true, false);
		if (rc != RAFT_OK)
			return rc;
	} else if (w->staged) {
		return invalid(st, "persist: a staged snapshot waits for its commit");
	}
	if (u->truncate_from && (rc = raft_storage_truncate(st, u->truncate_from)) != RAFT_OK)
		return rc;
	if (u->n_entries && (rc = raft_storage_append(st, u->entries, u->n_entries)) != RAFT_OK)
		return rc;
	rc = raft_storage_sync(st);
	check_invariants(st);
	return rc;
}

void raft_storage_persist_abandon(struct raft_storage *st)
{
	if (st->incoming.staged && !st->stopped)
		(void)writer_remove(st, &st->incoming, false);
	else if (st->incoming.staged)
		writer_close(st, &st->incoming);
}

int raft_storage_persist(struct raft_storage *st, const struct raft_update *u)
{
	int rc = raft_storage_persist_stage(st, u);

	if (rc == RAFT_OK)
		rc = raft_storage_persist_commit(st, u);
	return rc;
}

int raft_storage_staged_read(struct raft_storage *st, uint64_t index, uint64_t offset, void *buf,
                             size_t len, size_t *got)
{
	struct snap_writer *w = &st->incoming;
	int err, rc = usable(st);

	*got = 0;
	if (rc != RAFT_OK)
		return rc;
	if (!w->staged || w->meta.index != index)
		return RAFT_ENOENT;
	if (offset >= w->written)
		return RAFT_OK;
	if (len > w->written - offset)
		len = (size_t)(w->written - offset);
	err = st->vfs->pread(st->vfs, w->f, buf, len, offset, got);
	if (err) {
		snprintf(st->errmsg, sizeof(st->errmsg), "read %s: %s", w->tmp_name,
		         errno_name(err));
		return RAFT_EIO;
	}
	return RAFT_OK;
}

/* --- recovery --------------------------------------------------------------------------------- */

struct snap_cand {
	uint64_t index;
	uint64_t term;
	bool has_meta;
	bool has_data;
	bool damaged; /* both files there, failing their check: set aside, never removed */
};

/* What the directory listing holds. */
struct scan {
	char **names;
	size_t n_names;
	uint64_t *seg_firsts;
	size_t n_segs;
	struct snap_cand *snaps;
	size_t n_snaps;
	bool meta_present[2];
	/* the newest damaged snapshot, newer than the one used (NULL: none), and what is wrong */
	const struct snap_cand *damaged;
	char damaged_why[200];
};

static void scan_free(struct scan *sc)
{
	raft_vfs_names_free(sc->names, sc->n_names);
	free(sc->seg_firsts);
	free(sc->snaps);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Newest first. */
static int cmp_snap_desc(const void *a, const void *b)
{
	const struct snap_cand *x = a, *y = b;

	if (x->index != y->index)
		return x->index < y->index ? 1 : -1;
	return x->term < y->term ? 1 : x->term > y->term ? -1 : 0;
}

static struct snap_cand *snap_cand_get(struct scan *sc, uint64_t index, uint64_t term)
{
	for (size_t i = 0; i < sc->n_snaps; i++)
		if (sc->snaps[i].index == index && sc->snaps[i].term == term)
			return &sc->snaps[i];
	sc->snaps[sc->n_snaps].index = index;
	sc->snaps[sc->n_snaps].term = term;
	sc->snaps[sc->n_snaps].has_meta = false;
	sc->snaps[sc->n_snaps].has_data = false;
	sc->snaps[sc->n_snaps].damaged = false;
	return &sc->snaps[sc->n_snaps++];
}

/* Lists the directory, removes temporary files, and sorts what is left by kind. */
static int scan_dir(struct raft_storage *st, struct scan *sc)
{
	bool removed = false;
	int err, rc;

	err = st->vfs->readdir(st->vfs, st->dir, &sc->names, &sc->n_names);
	if (err)
		return fail_io(st, err, "list directory %s", st->dir);
	sc->seg_firsts = st_malloc(st, sc->n_names * sizeof(*sc->seg_firsts));
	sc->snaps = st_malloc(st, sc->n_names * sizeof(*sc->snaps));
	if (!sc->seg_firsts || !sc->snaps)
		return fail_raft(st, RAFT_ENOMEM, "list directory %s", st->dir);
	for (size_t i = 0; i < sc->n_names; i++) {
		const char *name = sc->names[i];
		uint64_t a, b;
		bool is_meta;
		if (has_suffix(name, TMP_SUFFIX)) {
			st_log(st, 1, "removing %s left over from before a restart", name);
			rc = remove_file(st, name);
			if (rc != RAFT_OK)
				return rc;
			removed = true;
		} else if (strcmp(name, META_FILE_1) == 0) {
			sc->meta_present[0] = true;
		} else if (strcmp(name, META_FILE_2) == 0) {
			sc->meta_present[1] = true;
		} else if (parse_seg_name(name, &a)) {
			sc->seg_firsts[sc->n_segs++] = a;
		} else if (parse_snap_name(name, &a, &b, &is_meta)) {
			struct snap_cand *c = snap_cand_get(sc, a, b);
			if (is_meta)
				c->has_meta = true;
			else
				c->has_data = true;
		}
	}
	qsort(sc->seg_firsts, sc->n_segs, sizeof(*sc->seg_firsts), cmp_u64);
	qsort(sc->snaps, sc->n_snaps, sizeof(*sc->snaps), cmp_snap_desc);
	return removed ? sync_dir(st) : RAFT_OK;
}

/*
 * Checks one snapshot candidate: RAFT_OK (valid, *meta filled), RAFT_ECORRUPT (not usable,
 * logged: *cut_short when a file is missing, else why says what is damaged), or a hard error.
 */
static int snap_check(struct raft_storage *st, const struct snap_cand *c,
                      struct raft_snapshot_meta *meta, bool *cut_short, char *why, size_t why_len)
{
	char meta_name[NAME_BYTES], data_name[NAME_BYTES];
	unsigned char *buf;
	size_t len, frame_len = 0;
	uint64_t actual = 0;
	uint32_t crc = 0;
	int rc;

	*cut_short = false;
	snap_name(meta_name, SNAP_PREFIX, c->index, c->term, ".meta");
	snap_name(data_name, SNAP_PREFIX, c->index, c->term, ".data");
	if (!c->has_meta || !c->has_data) {
		st_log(st, 2, "snapshot %s: %s missing (a commit cut short by a crash)",
		       c->has_meta ? meta_name : data_name, c->has_meta ? "image" : "metadata");
		*cut_short = true;
		return RAFT_ECORRUPT;
	}
	rc = read_file(st, meta_name, RAFT_STORAGE_MAX_META_BYTES, &buf, &len);
	if (rc != RAFT_OK)
		return rc;
	if (raft_codec_frame_length(buf, len, &frame_len) != RAFT_OK || frame_len > len)
		rc = RAFT_ECORRUPT;
	else
		rc = raft_codec_decode_snapshot_meta(buf, frame_len, meta);
	free(buf);
	if (rc == RAFT_ENOMEM)
		return fail_raft(st, rc, "decode %s", meta_name);
	if (rc != RAFT_OK || meta->index != c->index || meta->term != c->term) {
		snprintf(why, why_len, "%s: corrupt record at byte 0", meta_name);
		st_log(st, 2, "%s", why);
		return RAFT_ECORRUPT;
	}
	rc = file_crc(st, data_name, meta->size, &crc, &actual);
	if (rc == RAFT_ECORRUPT)
		snprintf(why, why_len,
		         "%s: %" PRIu64 " bytes, its metadata says %" PRIu64
		         " (damaged from byte %" PRIu64 ")",
		         data_name, actual, meta->size, actual < meta->size ? actual : meta->size);
	else if (rc == RAFT_OK && crc != meta->crc)
		snprintf(why, why_len,
		         "%s: CRC %08" PRIx32 ", its metadata says %08" PRIx32
		         " (damaged between bytes 0 and %" PRIu64 ")",
		         data_name, crc, meta->crc, meta->size);
	else
		return rc;
	st_log(st, 2, "%s", why);
	return RAFT_ECORRUPT;
}

/*
 * Picks the newest valid snapshot. The older ones were replaced before a restart and are removed;
 * so is one with a file missing: an install that a crash cut short (its files are renamed into
 * place before anything depends on them, and the older snapshot and log are removed only after
 * both are durable), so nothing was acknowledged on it and the older state is whole. A newer one
 * whose files are both there but fail their check is damaged, and may have been acknowledged:
 * it is not removed (nor used), and log_fit_snapshot decides whether the node may start from
 * the older state (then it is set aside) or not at all.
 */
static int snap_recover(struct raft_storage *st, struct scan *sc)
{
	char name[NAME_BYTES];
	bool found = false, removed = false, cut_short;
	int rc;

	for (size_t i = 0; i < sc->n_snaps; i++) {
		struct snap_cand *c = &sc->snaps[i];
		if (!found) {
			char why[sizeof(sc->damaged_why)];
			rc = snap_check(st, c, &st->snap, &cut_short, why, sizeof(why));
			if (rc == RAFT_OK) {
				found = true;
				continue;
			}
			if (rc != RAFT_ECORRUPT)
				return rc;
			if (!cut_short) {
				c->damaged = true;
				if (!sc->damaged) {
					sc->damaged = c;
					snprintf(sc->damaged_why, sizeof(sc->damaged_why), "%s",
					         why);
				}
				continue;
			}
		} else {
			st_log(st, 1,
			       "removing snapshot %016" PRIx64 "-%016" PRIx64
			       " replaced before a restart",
			       c->index, c->term);
		}
		snap_name(name, SNAP_PREFIX, c->index, c->term, ".meta");
		if (c->has_meta && (rc = remove_file(st, name)) != RAFT_OK)
			return rc;
		snap_name(name, SNAP_PREFIX, c->index, c->term, ".data");
		if (c->has_data && (rc = remove_file(st, name)) != RAFT_OK)
			return rc;
		removed = true;
	}
	st->has_snap = found;
	if (!found)
		memset(&st->snap, 0, sizeof(st->snap));
	return removed ? sync_dir(st) : RAFT_OK;
}

/* Renames the damaged snapshots aside (snapshot-...data -> snapshot-...data.damaged), so that
 * an operator finds them and no later start takes them for anything. */
static int snap_set_aside(struct raft_storage *st, const struct scan *sc)
{
	static const char *const kinds[2] = {".meta", ".data"};
	static const char *const aside[2] = {".meta" DAMAGED_SUFFIX, ".data" DAMAGED_SUFFIX};
	char from[NAME_BYTES], to[2][NAME_BYTES];
	int rc;

	for (size_t i = 0; i < sc->n_snaps; i++) {
		const struct snap_cand *c = &sc->snaps[i];
		if (!c->damaged)
			continue;
		for (int k = 0; k < 2; k++) {
			snap_name(from, SNAP_PREFIX, c->index, c->term, kinds[k]);
			snap_name(to[k], SNAP_PREFIX, c->index, c->term, aside[k]);
			if ((rc = rename_file(st, from, to[k])) != RAFT_OK)
				return rc;
		}
		st_log(st, 2, "damaged snapshot set aside: %s, %s", to[0], to[1]);
	}
	return sync_dir(st);
}

/* A growing array of recovered entries. */
struct entry_vec {
	struct raft_entry *v;
	size_t n;
	size_t cap;
};

static void entry_vec_free(struct entry_vec *ev)
{
	for (size_t i = 0; i < ev->n; i++)
		raft_buf_unref(ev->v[i].data);
	free(ev->v);
	memset(ev, 0, sizeof(*ev));
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Where the run of zeros that ends buf[0, size) starts (size when the last byte is not zero). */
static size_t zeros_from(const unsigned char *buf, size_t size)
{
	while (size > 0 && buf[size - 1] == 0)
		size--;
	return size;
}

/*
 * Whether the bad record at buf[off, size) of the last segment is a torn write rather than
 * damage. A record is written at the end of the records, into new file space or into zeros
 * reserved ahead (tail_reserve); a crash in mid-write leaves a prefix of it followed by zeros
 * or by the end of the file. So it is torn when: its header is cut short; it is all zeros;
 * it ends in zeros that run to the end of the file (the part never written: a wholly written
 * record cannot fail its check for being torn); or it runs past the end of the file while the tpl preamble that follows agrees with
 * its length. A bad record followed by other bytes is damage, as is one in any other segment.
 * (A last record damaged after it was synced, with only reserved zeros behind it, cannot be
 * told from a torn one: it is cut too, as etcd and canonical/raft do.)
 */
static bool is_torn(const unsigned char *buf, size_t size, size_t off)
{
	size_t remain = size - off, need, zeros = zeros_from(buf, size);
	const unsigned char *img = buf + off + RAFT_CODEC_HEADER_BYTES;
	uint32_t intl;

	if (remain < RAFT_CODEC_HEADER_BYTES || zeros < off + RAFT_CODEC_HEADER_BYTES)
		return true;
	if (raft_codec_frame_length(buf + off, remain, &need) != RAFT_OK)
		return false;
	if (need <= remain) /* whole, yet bad: torn only if its end was never written */
		return zeros < off + need;
	if (remain < RAFT_CODEC_HEADER_BYTES + TPL_PREAMBLE_BYTES)
		return true;
	intl = (uint32_t)img[4] | (uint32_t)img[5] << 8 | (uint32_t)img[6] << 16 |
	        (uint32_t)img[7] << 24;
	return memcmp(img, "tpl", 3) == 0 && intl == need - RAFT_CODEC_HEADER_BYTES;
}

/* Cuts segment name at byte off (a torn tail) and syncs it. */
static int seg_cut(struct raft_storage *st, const char *name, size_t off, size_t size)
{
	struct raft_vfs_file *f;
	int err;

	st_log(st, 2, "segment %s: torn record at byte %zu cut off (%zu bytes)", name, off,
	       size - off);
	err = st->vfs->open(st->vfs, path_in(st, st->path_a, name), RAFT_VFS_WRITE, &f);
	if (err)
		return fail_io(st, err, "open segment %s", name);
	err = st->vfs->truncate(st->vfs, f, off);
	if (!err)
		err = st->vfs->fdatasync(st->vfs, f);
	st->vfs->close(st->vfs, f);
	if (err)
		return fail_io(st, err, "truncate segment %s", name);
	return RAFT_OK;
}

/* Reads segment wal-<first>, appends its entries to ev and its record offsets to a new
 * struct segment. A bad record is cut when is_last and torn, else refused. */
static int seg_load(struct raft_storage *st, uint64_t first, bool is_last, struct entry_vec *ev)
{
	char name[NAME_BYTES];
	unsigned char *buf;
	size_t size, off = 0, need;
	struct segment *s;
	uint64_t prev_term;
	int rc;

	seg_name(name, first);
	rc = read_file(st, name,
	               (uint64_t)RAFT_STORAGE_MAX_SEGMENT_BYTES + RAFT_CODEC_MAX_FRAME_BYTES, &buf,
	               &size);
	if (rc != RAFT_OK)
		return rc;
	s = seg_push(st, first);
	if (!s) {
		rc = fail_raft(st, RAFT_ENOMEM, "load segment %s", name);
		goto free_buf;
	}
	while (off < size) {
		struct raft_entry e;
		uint64_t want = first + s->n_entries;
		if (is_last && all_zero(buf + off, size - off)) {
			/* space reserved ahead of the records (tail_reserve): the log ends here */
			st_log(st, 0, "segment %s: records end at byte %zu of %zu", name, off,
			       size);
			break;
		}
		rc = raft_codec_frame_length(buf + off, size - off, &need);
		if (rc == RAFT_OK && need <= size - off)
			rc = raft_codec_decode_entry(buf + off, need, &e);
		else if (rc == RAFT_OK)
			rc = RAFT_ECORRUPT;
		if (rc == RAFT_ENOMEM) {
			rc = fail_raft(st, rc, "decode segment %s at byte %zu", name, off);
			goto free_buf;
		}
		if (rc != RAFT_OK) {
			if (is_last && is_torn(buf, size, off)) {
				rc = seg_cut(st, name, off, size);
				goto free_buf;
			}
			rc = fail_raft(st, RAFT_ECORRUPT, "segment %s: corrupt record at byte %zu",
			               name, off);
			goto free_buf;
		}
		if (e.index != want) {
			raft_buf_unref(e.data);
			rc = fail_raft(st, RAFT_ECORRUPT,
			               "segment %s: entry %" PRIu64
			               " at byte %zu, expected %" PRIu64,
			               name, e.index, off, want);
			goto free_buf;
		}
		/* A log's terms never fall, and none passes the node's term (durable before any
		 * entry of that term is): otherwise the node would vote and lead on a log Raft
		 * cannot have. */
		prev_term = ev->n ? ev->v[ev->n - 1].term : 0;
		if (e.term == 0 || e.term < prev_term || (st->meta_seq && e.term > st->hs.term)) {
			raft_buf_unref(e.data);
			rc = fail_raft(st, RAFT_ECORRUPT,
			               "segment %s: entry %" PRIu64 " at byte %zu has term %" PRIu64
			               ", after term %" PRIu64 ", in term %" PRIu64,
			               name, e.index, off, e.term, prev_term, st->hs.term);
			goto free_buf;
		}
		if (ev->n == ev->cap) {
			size_t ncap = ev->cap ? ev->cap * 2 : 256;
			struct raft_entry *p = st_realloc(st, ev->v, ncap * sizeof(*p));
			if (!p) {
				raft_buf_unref(e.data);
				rc = fail_raft(st, RAFT_ENOMEM, "load segment %s", name);
				goto free_buf;
			}
			ev->v = p;
			ev->cap = ncap;
		}
		rc = seg_add_offset(st, s, off);
		if (rc != RAFT_OK) {
			raft_buf_unref(e.data);
			rc = fail_raft(st, rc, "load segment %s", name);
			goto free_buf;
		}
		ev->v[ev->n++] = e;
		off += need;
	}
	rc = RAFT_OK;
free_buf:
	if (rc == RAFT_OK && s)
		s->size = off;
	free(buf);
	return rc;
}

/* Loads every segment, checking that they follow each other without a gap. */
static int log_load(struct raft_storage *st, const struct scan *sc, struct entry_vec *ev)
{
	char name[NAME_BYTES];
	int rc;

	for (size_t i = 0; i < sc->n_segs; i++) {
		uint64_t first = sc->seg_firsts[i];
		if (st->n_segs > 0) {
			struct segment *prev = &st->segs[st->n_segs - 1];
			seg_name(name, first);
			if (prev->n_entries == 0 || first != seg_last_index(prev) + 1)
				return fail_raft(st, RAFT_ECORRUPT,
				                 "segment %s at byte 0: starts at index %" PRIu64
				                 ", expected %" PRIu64,
				                 name, first, prev->first_index + prev->n_entries);
		}
		rc = seg_load(st, first, i + 1 == sc->n_segs, ev);
		if (rc != RAFT_OK)
			return rc;
	}
	/* An empty last segment (created just before a crash) is removed. */
	if (st->n_segs > 0 && st->segs[st->n_segs - 1].n_entries == 0) {
		seg_name(name, st->segs[st->n_segs - 1].first_index);
		st_log(st, 1, "removing empty segment %s", name);
		if ((rc = seg_remove(st, st->n_segs - 1)) != RAFT_OK ||
		    (rc = sync_dir(st)) != RAFT_OK)
			return rc;
	}
	return RAFT_OK;
}

/* The segment holding entry index and where its record starts, for messages. */
static void entry_place(const struct raft_storage *st, uint64_t index, char *name, size_t *off)
{
	for (size_t i = 0; i < st->n_segs; i++) {
		const struct segment *g = &st->segs[i];
		if (index >= g->first_index && index - g->first_index < g->n_entries) {
			seg_name(name, g->first_index);
			*off = g->offsets[index - g->first_index];
			return;
		}
	}
	snprintf(name, NAME_BYTES, "?");
	*off = 0;
}

/*
 * A damaged snapshot (index d, term t) was found, newer than the one used (index s): the node may
 * start from the older snapshot and the log only if the log holds entry d of term t (then,
 * by Log Matching, every entry the damaged snapshot covered: nothing it may have acknowledged is
 * lost). Otherwise start fails naming the file, which is left in place (so that every start
 * refuses the same way until someone decides). Checked before anything is removed.
 */
static int damaged_covered(struct raft_storage *st, const struct scan *sc,
                           const struct entry_vec *ev, bool drop_all)
{
	const struct snap_cand *c = sc->damaged;
	uint64_t s = st->has_snap ? st->snap.index : 0, first, last;

	first = ev->n ? ev->v[0].index : s + 1;
	last = ev->n ? ev->v[ev->n - 1].index : s;
	if (!drop_all && first <= s + 1 && c->index >= first && c->index <= last &&
	    ev->v[c->index - first].term == c->term) {
		st_log(st, 2,
		       "%s; starting from snapshot %" PRIu64 " and the log to %" PRIu64
		       ", which holds its index %" PRIu64,
		       sc->damaged_why, s, last, c->index);
		return snap_set_aside(st, sc);
	}
	return fail_raft(st, RAFT_ECORRUPT,
	                 "%s; the older snapshot (%" PRIu64 ") and the log (to %" PRIu64
	                 ") do not reach its index %" PRIu64
	                 ": not starting without it (the file is left in place)",
	                 sc->damaged_why, s, last, c->index);
}

/*
 * Fits the log to the snapshot (index s, term t). Entries <= s are not needed. If the log holds
 * index s with another term, the snapshot came from a leader and replaced a conflicting log
 * whose removal a crash cut short: the whole log goes (Raft paper section 7: "If existing log
 * entry has same index and term as snapshot's last included entry, retain log entries
 * following it ... Discard the entire log"). A log starting after s + 1 has lost entries.
 */
static int log_fit_snapshot(struct raft_storage *st, struct entry_vec *ev, const struct scan *sc)
{
	uint64_t s = st->has_snap ? st->snap.index : 0, t = st->has_snap ? st->snap.term : 0;
	uint64_t first, last, skip;
	char name[NAME_BYTES];
	bool drop_all;
	int rc;

	st->last_index = s;
	if (st->meta_seq && t > st->hs.term) {
		snap_name(name, SNAP_PREFIX, s, t, ".meta");
		return fail_raft(st, RAFT_ECORRUPT,
		                 "%s: corrupt record at byte 0 (a snapshot of term %" PRIu64
		                 ", above the node's term %" PRIu64 ")",
		                 name, t, st->hs.term);
	}
	first = ev->n ? ev->v[0].index : s + 1;
	last = first + ev->n - 1;
	drop_all = ev->n > 0 && (last <= s || (s >= first && ev->v[s - first].term != t));
	if (sc->damaged && (rc = damaged_covered(st, sc, ev, drop_all)) != RAFT_OK)
		return rc;
	if (ev->n == 0)
		return RAFT_OK;
	if (first > s + 1) {
		seg_name(name, first);
		return fail_raft(st, RAFT_ECORRUPT,
		                 "segment %s at byte 0: log starts at index %" PRIu64
		                 " but the snapshot ends at %" PRIu64,
		                 name, first, s);
	}
	if (drop_all && last > s)
		st_log(st, 1,
		       "log holds index %" PRIu64 " with term %" PRIu64
		       ", the snapshot term %" PRIu64 ": log dropped",
		       s, ev->v[s - first].term, t);
	skip = drop_all ? ev->n : (size_t)(s + 1 - first);
	if (skip > 0) {
		rc = segs_drop_covered(st, s, drop_all);
		if (rc == RAFT_OK)
			rc = sync_dir(st);
		if (rc != RAFT_OK)
			return rc;
		for (size_t i = 0; i < skip; i++)
			raft_buf_unref(ev->v[i].data);
		memmove(ev->v, ev->v + skip, (ev->n - skip) * sizeof(*ev->v));
		ev->n -= skip;
	}
	if (ev->n > 0 && ev->v[0].term < t) {
		char seg[NAME_BYTES];
		size_t off = 0;
		entry_place(st, ev->v[0].index, seg, &off);
		return fail_raft(st, RAFT_ECORRUPT,
		                 "segment %s: entry %" PRIu64 " at byte %zu has term %" PRIu64
		                 ", below the term %" PRIu64 " of the snapshot before it",
		                 seg, ev->v[0].index, off, ev->v[0].term, t);
	}
	st->last_index = ev->n ? ev->v[ev->n - 1].index : s;
	return RAFT_OK;
}

static int tail_open(struct raft_storage *st)
{
	char name[NAME_BYTES];
	struct segment *s;
	int err;

	if (st->n_segs == 0)
		return RAFT_OK;
	s = &st->segs[st->n_segs - 1];
	seg_name(name, s->first_index);
	err = st->vfs->open(st->vfs, path_in(st, st->path_a, name), RAFT_VFS_READ | RAFT_VFS_WRITE,
	                    &st->tail);
	if (err) {
		st->tail = NULL;
		return fail_io(st, err, "open segment %s", name);
	}
	st->tail_written = s->size;
	return tail_size(st, name);
}

static int dir_prepare(struct raft_storage *st, const char *dir)
{
	size_t len = strlen(dir);
	int err;

	while (len > 1 && dir[len - 1] == '/')
		len--;
	st->dir = st_malloc(st, len + 1);
	st->path_cap = len + 1 + NAME_BYTES;
	st->path_a = st_malloc(st, st->path_cap);
	st->path_b = st_malloc(st, st->path_cap);
	if (!st->dir || !st->path_a || !st->path_b)
		return fail_raft(st, RAFT_ENOMEM, "open %s", dir);
	memcpy(st->dir, dir, len);
	st->dir[len] = '\0';
	err = st->vfs->mkdir(st->vfs, st->dir, 0700);
	if (err && err != EEXIST)
		return fail_io(st, err, "create directory %s", st->dir);
	return RAFT_OK;
}

int raft_storage_open(struct raft_storage *st, const char *dir, struct raft_restore *restore)
{
	struct scan sc;
	struct entry_vec ev;
	int rc;

	memset(restore, 0, sizeof(*restore));
	if (st->stopped)
		return RAFT_ESHUTDOWN;
	if (st->opened || st->dir)
		return invalid(st, "storage already opened");
	memset(&sc, 0, sizeof(sc));
	memset(&ev, 0, sizeof(ev));
	rc = dir_prepare(st, dir);
	if (rc == RAFT_OK)
		rc = scan_dir(st, &sc);
	if (rc == RAFT_OK)
		rc = meta_load(st, sc.meta_present);
	if (rc == RAFT_OK)
		rc = snap_recover(st, &sc);
	if (rc == RAFT_OK)
		rc = log_load(st, &sc, &ev);
	if (rc == RAFT_OK)
		rc = log_fit_snapshot(st, &ev, &sc);
	if (rc == RAFT_OK && st->meta_seq == 0 && (ev.n > 0 || st->has_snap) &&
	    (sc.meta_present[0] || sc.meta_present[1]))
		/* the first hard state is written before any entry: an empty metadata file beside
		 * a log is one that lost its contents, not one whose creation a crash cut short */
		rc = fail_raft(st, RAFT_ECORRUPT,
		               "%s: corrupt record at byte 0 (empty, and the log holds entries)",
		               sc.meta_present[0] ? META_FILE_1 : META_FILE_2);
	if (rc == RAFT_OK)
		rc = tail_open(st);
	scan_free(&sc);
	if (rc != RAFT_OK) {
		entry_vec_free(&ev);
		st->stopped = true;
		return rc;
	}
	restore->hs = st->hs;
	if (st->has_snap)
		restore->snap = st->snap;
	restore->entries = ev.v;
	restore->n_entries = ev.n;
	if (ev.n == 0) {
		free(ev.v);
		restore->entries = NULL;
	}
	st->opened = true;
	check_invariants(st);
	st_log(st, 0, "opened %s: term %" PRIu64 ", snapshot %" PRIu64 ", %zu entries to %" PRIu64,
	       st->dir, st->hs.term, restore->snap.index, ev.n, st->last_index);
	return RAFT_OK;
}
