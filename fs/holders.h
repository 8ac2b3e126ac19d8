/* holders.h - which descriptors a process holds on a file of this mount, read from /proc. */
#ifndef FS_HOLDERS_H
#define FS_HOLDERS_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The FUSE protocol says which process sent a FLUSH, not how many descriptors still share the
 * open file description; only RELEASE is the last close. The mount's O_TRUNC rule (fs/fuse.c,
 * fs_flush) therefore asks /proc which descriptors the opener still holds.
 *
 * Deadlock rule: the process being asked about may be blocked in this very FLUSH, and the kernel
 * may hold that process's locks meanwhile: an exec(2) closes O_CLOEXEC descriptors, flushing
 * each, while holding the process's exec_update_lock, which readlink(/proc/PID/fd/N) waits for
 * (seen: the daemon hung in call_proc_get_link). So only /proc/PID/status, the fdinfo directory
 * and files, and mountinfo are read here: they take no lock a flushing process holds. Nothing
 * here may stat or open a path on the mount itself (that would wait for this thread).
 */

/* The mount as /proc names it: its mount id in the daemon's namespace and its device. */
struct fs_mount_id {
	uint64_t mnt_id; /* 0: unknown (matching then relies on the device) */
	unsigned major, minor;
	bool known; /* the device was found */
};

/* Finds the newest fuse.raftfs mount on the absolute path abs in /proc/self/mountinfo. 0 or -1. */
int fs_mount_id_find(const char *abs, struct fs_mount_id *out);

/* The thread group (process) of thread tid, from /proc/TID/status; 0 when it cannot tell. */
pid_t fs_holders_tgid(pid_t tid);

/* The open flags that tell two open file descriptions of one file apart in fdinfo: the access
 * mode, which never changes, and O_APPEND (fcntl F_SETFL can change it: a description whose
 * O_APPEND was changed after its open is then taken for another one). */
#define FS_HOLDERS_FLAGS_MASK (O_ACCMODE | O_APPEND)

/*
 * How many of process tgid's descriptors are open for writing on inode ino of the mount m with
 * open flags (masked by FS_HOLDERS_FLAGS_MASK) equal to flags, counting at most up to limit (a
 * scan stops there). -1 when /proc cannot tell (the process cannot be read): the caller chooses
 * its safe answer. A process that is gone holds nothing (0).
 */
int fs_holders_writable(pid_t tgid, uint64_t ino, const struct fs_mount_id *m, int flags,
                        int limit);

#endif
