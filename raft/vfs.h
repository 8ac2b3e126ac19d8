/* vfs.h - the file-system interface of the storage layer: POSIX, and in-memory with faults. */
#ifndef RAFT_VFS_H
#define RAFT_VFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Every file call of raft_storage goes through a struct raft_vfs, so that tests and the cluster
 * simulator can run it on memory and inject faults (SQLite's sqlite3_vfs). Paths are full paths
 * as the caller builds them ("dir/name").
 *
 * Every function returns 0 or a positive errno value (EIO, ENOSPC, ENOENT, EEXIST, ENOMEM...).
 * pwrite writes all len bytes or fails; after a failure an unknown prefix may have been written.
 */

/* open flags */
#define RAFT_VFS_READ 0x1
#define RAFT_VFS_WRITE 0x2
#define RAFT_VFS_CREATE 0x4 /* create if missing (mode 0600) */
#define RAFT_VFS_EXCL 0x8 /* with CREATE: fail with EEXIST if present */
#define RAFT_VFS_TRUNC 0x10

/* An open file; its fields belong to the implementation. */
struct raft_vfs_file;

struct raft_vfs {
	int (*open)(struct raft_vfs *vfs, const char *path, int flags, struct raft_vfs_file **out);
	/* Releases f (NULL is ignored). Never writes: nothing is buffered above the kernel. */
	void (*close)(struct raft_vfs *vfs, struct raft_vfs_file *f);
	/* Reads up to len bytes at off; *got < len only at end of file. */
	int (*pread)(struct raft_vfs *vfs, struct raft_vfs_file *f, void *buf, size_t len,
	             uint64_t off, size_t *got);
	int (*pwrite)(struct raft_vfs *vfs, struct raft_vfs_file *f, const void *buf, size_t len,
	              uint64_t off);
	int (*size)(struct raft_vfs *vfs, struct raft_vfs_file *f, uint64_t *size);
	int (*truncate)(struct raft_vfs *vfs, struct raft_vfs_file *f, uint64_t size);
	/* Grows f to at least size bytes of zeros with their blocks allocated and written, so
	 * that a later write there and its fdatasync need not change the file's metadata. Never
	 * shrinks; after a failure part of the zeros may be there. The size is durable after a
	 * sync. */
	int (*allocate)(struct raft_vfs *vfs, struct raft_vfs_file *f, uint64_t size);
	int (*fsync)(struct raft_vfs *vfs, struct raft_vfs_file *f);
	int (*fdatasync)(struct raft_vfs *vfs, struct raft_vfs_file *f);
	int (*rename)(struct raft_vfs *vfs, const char *from, const char *to);
	int (*unlink)(struct raft_vfs *vfs, const char *path);
	/* EEXIST when present. */
	int (*mkdir)(struct raft_vfs *vfs, const char *path, unsigned mode);
	/* The names in directory path (without "." and ".."), in no particular order, as a
	 * malloc'd array of malloc'd strings: free with raft_vfs_names_free. */
	int (*readdir)(struct raft_vfs *vfs, const char *path, char ***names, size_t *n);
	/* Makes the directory's entries (creations, renames, removals) durable. */
	int (*sync_dir)(struct raft_vfs *vfs, const char *path);
	/* Optional test hook, NULL in production: asked before each allocation of the storage
	 * layer; true makes it fail. */
	bool (*alloc_fails)(struct raft_vfs *vfs);
	/* Frees the vfs itself (raft_vfs_free calls it). */
	void (*destroy)(struct raft_vfs *vfs);
	void *impl;
};

/* Frees a vfs made by one of the constructors below (NULL is ignored). */
void raft_vfs_free(struct raft_vfs *vfs);
/* Frees a readdir result. */
void raft_vfs_names_free(char **names, size_t n);

/* The real file system. Returns NULL when out of memory; free with raft_vfs_free. */
struct raft_vfs *raft_vfs_posix_new(void);

/*
 * The in-memory file system with fault injection. Deterministic (no clock, no randomness, no
 * global state: one instance per simulated node) and cheap: a sync after appends copies nothing.
 *
 * Durability model: every file has its current bytes and its synced bytes (as of its last fsync
 * or fdatasync); a directory has its current entries and its durable entries (as of its last
 * sync_dir). raft_vfs_mem_crash() throws away everything not durable. mkdir is durable at once.
 * Returns NULL when out of memory; free with raft_vfs_free (open files must be closed first).
 */
struct raft_vfs *raft_vfs_mem_new(void);

/* Kinds of call that faults are counted and injected by. */
enum raft_vfs_op {
	RAFT_VFS_OP_OPEN = 0,
	RAFT_VFS_OP_READ,
	RAFT_VFS_OP_WRITE,
	RAFT_VFS_OP_TRUNCATE,
	RAFT_VFS_OP_SYNC, /* fsync and fdatasync */
	RAFT_VFS_OP_SYNC_DIR,
	RAFT_VFS_OP_RENAME,
	RAFT_VFS_OP_UNLINK,
	RAFT_VFS_OP_MKDIR,
	RAFT_VFS_OP_READDIR,
	RAFT_VFS_OP_ALLOC, /* the alloc_fails hook (and the codec's, see raft_vfs_mem_alloc_hook) */
	RAFT_VFS_OP_ALLOCATE, /* allocate (file space, not memory) */
	RAFT_VFS_OP_COUNT
};

/*
 * Arms one fault: the nth call of kind op from now (1: the next one) fails with err (an errno
 * value; ignored for RAFT_VFS_OP_ALLOC). With short_write (RAFT_VFS_OP_WRITE only) the failing
 * write first stores half of its bytes. One fault per kind; arming replaces the previous one.
 */
void raft_vfs_mem_fail(struct raft_vfs *vfs, enum raft_vfs_op op, unsigned long nth, int err,
                       bool short_write);
/* Disarms every fault. */
void raft_vfs_mem_clear_faults(struct raft_vfs *vfs);
/* True once an armed fault has fired (cleared by raft_vfs_mem_clear_faults). */
bool raft_vfs_mem_fault_fired(const struct raft_vfs *vfs);
/* Calls of kind op so far. */
unsigned long raft_vfs_mem_calls(const struct raft_vfs *vfs, enum raft_vfs_op op);

/*
 * A power loss: every directory reverts to its durable entries and every file to its synced
 * bytes, except that up to torn_bytes of what was written since the last sync past the synced
 * data survive (a torn write). The synced data ends at the last byte ever written by pwrite as
 * of the sync: a write into synced zeros past it (space from allocate or a grow) tears the same
 * way as an append, leaving the rest of the space zero. Files open before the crash fail every call with EIO except
 * close.
 */
void raft_vfs_mem_crash(struct raft_vfs *vfs, size_t torn_bytes);

/* The codec's allocation hook bound to this vfs's RAFT_VFS_OP_ALLOC counter: pass it with the
 * vfs as ctx to raft_codec_set_alloc_fault so that one sweep covers both layers. */
bool raft_vfs_mem_alloc_hook(void *vfs);

#endif /* RAFT_VFS_H */
