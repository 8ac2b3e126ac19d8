/* storage.h - durable raft state: hard state, segmented write-ahead log, snapshots (raftfs(5)). */
#ifndef RAFT_STORAGE_H
#define RAFT_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"
#include "raft/vfs.h"

/*
 * One data directory per node (created 0700), laid out as raftfs(5) describes:
 *
 *   metadata1, metadata2        hard state, written alternately (the valid one with the higher
 *                               sequence number wins)
 *   wal-<first index, 16 hex>   log segments of at most segment_max_bytes, one record per entry
 *   snapshot-<index>-<term>.meta / .data   the current snapshot: metadata record and image
 *   *.tmp                       work in progress, removed at open
 *   snapshot-...*.damaged       a snapshot found damaged at open and set aside (never read)
 *
 * Use: raft_storage_new, raft_storage_open (recovery), then per loop turn raft_storage_persist
 * (or the pieces: set_hard_state, truncate, append, sync), and the snapshot calls.
 *
 * Errors are enum raft_err codes; raft_storage_errmsg() says what failed, with the file
 * ("write segment wal-000000000000000c: ENOSPC"). A failed write, fsync, rename or removal (or
 * running out of memory half way through a change) stops the storage: that call returns its
 * error and every later call RAFT_ESHUTDOWN; nothing is retried, because after a failed fsync
 * the page cache may have dropped the data. Bad arguments (RAFT_EINVAL) stop nothing.
 * Not thread-safe: one thread (the node's event loop) uses a storage.
 */

#define RAFT_STORAGE_SEGMENT_BYTES (8u << 20) /* default segment size bound */
#define RAFT_STORAGE_MIN_SEGMENT_BYTES 256u
#define RAFT_STORAGE_MAX_SEGMENT_BYTES (1u << 30)
#define RAFT_STORAGE_PREALLOC_BYTES (64u << 10) /* default step of space reserved ahead */
#define RAFT_STORAGE_PREALLOC_OFF UINT64_MAX
#define RAFT_STORAGE_MAX_META_BYTES 4096u /* a metadata or snapshot-meta file, at most */
#define RAFT_STORAGE_ERRMSG_BYTES 256u

struct raft_storage_options {
	/* File system; NULL: the real one (owned by the storage). Otherwise the caller's: it
	 * must outlive the storage. */
	struct raft_vfs *vfs;
	/* A segment is closed and a new one started when the next record would take it past this
	 * (a single larger record gets a segment of its own). 0: RAFT_STORAGE_SEGMENT_BYTES. */
	uint64_t segment_max_bytes;
	/* The tail segment's space is reserved (raft_vfs allocate: zeros written) this many bytes
	 * ahead of its records, so that the fdatasync after an append need not change the file's
	 * size or block map: on ext4 that saves a metadata write per sync. The unused rest reads as zeros, which recovery takes
	 * for the end of the log; a closed segment is cut to its records. 0:
	 * RAFT_STORAGE_PREALLOC_BYTES; RAFT_STORAGE_PREALLOC_OFF: never. */
	uint64_t prealloc_bytes;
	/* Diagnostics, one event per call, no trailing newline; level 0 debug, 1 info, 2 warn.
	 * NULL: warnings and info go to stderr. */
	void (*log)(void *ctx, int level, const char *msg);
	void *log_ctx;
};

struct raft_storage;

/* A storage not yet opened. opts may be NULL (defaults). RAFT_ENOMEM or RAFT_EINVAL. */
int raft_storage_new(const struct raft_storage_options *opts, struct raft_storage **out);

/*
 * Opens (creating if needed) the data directory dir and recovers: the newest valid snapshot,
 * the hard state, and the log entries after the snapshot. Fills *restore for raft_new(): its
 * entries array and their data (raft_bufs) belong to the caller, released with
 * raft_storage_restore_free() (after raft_new took its own references).
 * A torn last record (a crash in mid-write) is cut off and logged. A corrupt or undecodable
 * record elsewhere, or a gap in the indexes, fails with RAFT_ECORRUPT and a message naming the
 * file and the byte offset; nothing is dropped silently. A damaged snapshot newer than the one
 * used is set aside (renamed *.damaged, logged) when the log still holds its index and term,
 * else open fails with RAFT_ECORRUPT naming it (the file stays). On failure the storage is
 * stopped.
 */
int raft_storage_open(struct raft_storage *st, const char *dir, struct raft_restore *restore);

/* Releases what raft_storage_open put in *restore and zeroes it. */
void raft_storage_restore_free(struct raft_restore *restore);

/* Closes files and frees st (NULL is ignored). Appends not yet synced are discarded (they were
 * never durable, so never acknowledged); a snapshot being written is abandoned. */
void raft_storage_free(struct raft_storage *st);

/* True once a failure stopped the storage (every call then fails with RAFT_ESHUTDOWN). */
bool raft_storage_stopped(const struct raft_storage *st);

/* What the last failure was about; "" when none. Valid until the next call on st. */
const char *raft_storage_errmsg(const struct raft_storage *st);

/*
 * All persistence work of a core update, durable when this returns RAFT_OK, in the order the
 * core asks: hard state, snapshot chunk (on snap_last the image assembled from the chunks is
 * checked against u->snap_meta, size and CRC, then becomes the current snapshot and the whole
 * log is dropped; RAFT_ECORRUPT, nothing changed, when it does not match), suffix truncation,
 * entries. The entries go to disk with one write and one fdatasync (group commit). u is only
 * read; the caller then reports raft_persisted(u->persist_seq).
 */
int raft_storage_persist(struct raft_storage *st, const struct raft_update *u);

/*
 * raft_storage_persist in two steps, for an application that must load an incoming snapshot
 * before anything it replaces is dropped (kv/node.c):
 *   1. raft_storage_persist_stage: hard state, the snapshot chunk. With the last chunk the image
 *      is fsynced and read back whole: it must have the size and CRC of u->snap_meta, else it is
 *      removed and RAFT_ECORRUPT is returned, the storage going on, nothing else changed (the
 *      old snapshot and log are the node's state still). Then it is staged:
 *      raft_storage_staged_read reads it.
 *   2. raft_storage_persist_commit with the same u: a staged image becomes the current snapshot
 *      (metadata, renames, directory fsync), only then the old snapshot and the whole log go;
 *      then truncation, entries and the sync.
 *   Or, instead of 2, raft_storage_persist_abandon: the staged image is removed, the old state
 *   stays as it was (the application could not load the image).
 * A crash between the steps leaves the old state: the staged image is a temporary file.
 */
int raft_storage_persist_stage(struct raft_storage *st, const struct raft_update *u);
int raft_storage_persist_commit(struct raft_storage *st, const struct raft_update *u);
void raft_storage_persist_abandon(struct raft_storage *st);
/* Reads the staged image of the snapshot with this index, as raft_storage_snapshot_read does
 * the current one (RAFT_ENOENT when none is staged). */
int raft_storage_staged_read(struct raft_storage *st, uint64_t index, uint64_t offset, void *buf,
                             size_t len, size_t *got);

/* The pieces of raft_storage_persist. */

/* Writes hs to the older metadata file and fsyncs it: durable on return. */
int raft_storage_set_hard_state(struct raft_storage *st, const struct raft_hard_state *hs);
/* Drops entries >= index (whole segments are removed, the one holding index is cut). Made
 * durable by the next raft_storage_sync. index must be above the snapshot's. */
int raft_storage_truncate(struct raft_storage *st, uint64_t index);
/* Queues entries (copied; the caller keeps its references) that must follow the last index.
 * They are written by raft_storage_sync, except that a segment filling up is written, synced
 * and closed at once. */
int raft_storage_append(struct raft_storage *st, const struct raft_entry *entries, size_t n);
/* Writes the queued entries and makes everything appended or truncated durable. */
int raft_storage_sync(struct raft_storage *st);

/* Index of the last entry (the snapshot's index when the log is empty). */
uint64_t raft_storage_last_index(const struct raft_storage *st);

/*
 * Snapshots taken by the local application, in three steps, so that the image may be written
 * away from the event loop (in a forked child, as Redis BGSAVE does) while the log goes on:
 *   1. raft_storage_snapshot_begin (the loop): metadata (meta->size is ignored: the size is
 *      what the image step wrote), temporary image file created. meta->index must be above the
 *      current snapshot's and at most the last index; one snapshot is written at a time;
 *   2. raft_storage_snapshot_image fills *img, then raft_storage_image_write (in order) and
 *      raft_storage_image_sync (fsync) fill and harden the image. These use only img: the vfs
 *      and positional writes to the open file, no allocation, no logging, nothing in st, so
 *      they may run in a child forked after step 1, or inline. A failure is returned (and kept
 *      in img->err, an errno value) and stops nothing;
 *   3. raft_storage_snapshot_install (the loop) with the size and CRC32C the image step
 *      reported (carried back from a child): checks the file's size, then makes the new
 *      snapshot durable (metadata written to a temporary file and fsynced, both renamed,
 *      directory fsynced) before it removes the previous snapshot and the log segments wholly
 *      covered by the new one. Or raft_storage_snapshot_abort when step 2 failed: it removes the
 *      temporary image (a failed removal stops nothing: the file is removed at the next open).
 * Between 1 and 3, entries may be appended, synced and truncated, and a snapshot from the
 * leader may be installed through raft_storage_persist. The newer snapshot wins: install
 * returns RAFT_ENOENT and removes the image when a snapshot at or above its index became
 * current meanwhile; RAFT_ECORRUPT or RAFT_EIO (image removed, storage not stopped) when the
 * file does not hold what the image step reported. A temporary image left by a crash is
 * removed at the next open.
 */
int raft_storage_snapshot_begin(struct raft_storage *st, const struct raft_snapshot_meta *meta);
void raft_storage_snapshot_abort(struct raft_storage *st);

/*
 * A snapshot image being written (a local one, or one arriving from the leader in chunks) is
 * fdatasynced every this many bytes, not only once at its end: hundreds of megabytes of dirty
 * pages flushed at once fill the disk's queue for seconds, and the log's fdatasyncs (of this
 * node, and of the others sharing the disk) wait behind them; a leader stalled that long loses
 * its leadership. Synced in steps, the image never has more than this much ahead of the log.
 */
#define RAFT_STORAGE_IMAGE_SYNC_BYTES (8u << 20)

struct raft_storage_image {
	struct raft_vfs *vfs;
	struct raft_vfs_file *f; /* the temporary file: the storage's (install or abort close it) */
	uint64_t size; /* bytes written so far */
	uint64_t synced; /* bytes fdatasynced so far (every RAFT_STORAGE_IMAGE_SYNC_BYTES) */
	uint32_t crc; /* CRC32C of them */
	int err; /* errno value of the first failure, 0: none (then every call fails with it) */
};

void raft_storage_snapshot_image(struct raft_storage *st, struct raft_storage_image *img);
int raft_storage_image_write(struct raft_storage_image *img, const void *buf, size_t len);
int raft_storage_image_sync(struct raft_storage_image *img);
int raft_storage_snapshot_install(struct raft_storage *st, uint64_t size, uint32_t crc);

/* The current snapshot's metadata: RAFT_OK, or RAFT_ENOENT when there is none. */
int raft_storage_snapshot_meta(const struct raft_storage *st, struct raft_snapshot_meta *meta);
/* The name of the current snapshot's image file in the data directory (snapshot-INDEX-TERM.data,
 * raftfs(5)) into buf of len bytes, for messages: RAFT_OK, or RAFT_ENOENT when there is none. */
int raft_storage_snapshot_file(const struct raft_storage *st, char *buf, size_t len);
/*
 * Reads up to len bytes at offset of the image of the current snapshot, which must be the one
 * with this index (else RAFT_ENOENT: it was replaced). *got < len only at the end of the image.
 * For the application restoring its state and for the transport filling InstallSnapshot
 * chunks. A failed read returns RAFT_EIO without stopping the storage.
 */
int raft_storage_snapshot_read(struct raft_storage *st, uint64_t index, uint64_t offset, void *buf,
                               size_t len, size_t *got);

#endif /* RAFT_STORAGE_H */
