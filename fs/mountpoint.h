/* mountpoint.h - the directory a node mounts on: checked before the mount, guarded while bare. */
#ifndef FS_MOUNTPOINT_H
#define FS_MOUNTPOINT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * While a node is down, its mountpoint is a plain directory: a write there succeeds and is lost
 * to the cluster (a rolling restart lost 69 acknowledged appends that way). So the directory
 * under the mount refuses writes whenever raftfs is not mounted on it:
 *   - the immutable attribute (chattr +i: refused even to root) where the file system below
 *     supports it (ext4, xfs, btrfs, tmpfs);
 *   - otherwise mode 000 (refused to everyone but root).
 * The guard is put on before the first mount and stays after the node stops, cleanly or not: a
 * restart is the moment it exists for. `raftfs --unguard DIR` (or chattr -i DIR) takes it off.
 *
 * Before mounting, the directory must be empty (raftfs would hide what is there) and must not
 * carry a live raftfs mount (a second daemon on it); a dead raftfs mount (its daemon gone) is
 * taken away first.
 */

/* Diagnostics: level as in enum fs_log_level; one line, no newline. */
typedef void (*fs_mountpoint_log_fn)(void *ctx, int level, const char *msg);

enum fs_guard {
	FS_GUARD_NONE = 0, /* could not be guarded (a warning was logged) */
	FS_GUARD_IMMUTABLE,
	FS_GUARD_MODE, /* mode 000: the file system below has no immutable attribute */
};

/*
 * Makes path ready to be mounted on: a dead raftfs mount is cleared, then the directory must
 * exist, be a directory, hold nothing and carry no live raftfs mount; then it is guarded
 * (*guard says how). Returns 0, or -1 with a message in err (nothing changed but a dead mount
 * cleared).
 */
int fs_mountpoint_prepare(const char *path, fs_mountpoint_log_fn log, void *ctx,
                          enum fs_guard *guard, char *err, size_t err_len);

/* Takes the guard off directory path (immutable attribute, mode 000 -> 0755). 0 or -1 (err). */
int fs_mountpoint_unguard(const char *path, char *err, size_t err_len);

#endif
