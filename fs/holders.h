/* holders.h - which descriptors a process holds on a file of this mount, read from /proc. */
#ifndef FS_HOLDERS_H
#define FS_HOLDERS_H

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

/*
 * How many of process tgid's descriptors are open for writing on inode ino of the mount m,
 * counting at most up to limit (a scan stops there). -1 when /proc cannot tell (the process is
 * gone or cannot be read): the caller chooses its safe answer.
 */
int fs_holders_writable(pid_t tgid, uint64_t ino, const struct fs_mount_id *m, int limit);

#endif
