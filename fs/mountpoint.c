/* mountpoint.c - the directory a node mounts on: checked before the mount, guarded while bare. */
#include "fs/mountpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/options.h"

/* The mode of a guarded directory where the immutable attribute is not available: nothing can
 * be created in it but by root, and a mount (which needs to enter it) still works. */
#define GUARD_MODE 0555
#define UNGUARDED_MODE 0755
/* How long to wait for the auto_unmount helpers of a previous daemon to exit. */
#define OLD_HELPER_WAIT_MS 5000

struct mp {
	const char *path;
	char abs[PATH_MAX];
	fs_mountpoint_log_fn log;
	void *ctx;
};

static void mlog(const struct mp *m, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void mlog(const struct mp *m, int level, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (!m->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	m->log(m->ctx, level, msg);
}

/* --- mounts already there ---------------------------------------------------------------------- */

/* Whether /proc/self/mountinfo lists a fuse.raftfs mount on the absolute path abs. */
static bool is_raftfs_mount(const char *abs)
{
	char line[4096], mnt[PATH_MAX];
	bool found = false;
	FILE *fp = fopen("/proc/self/mountinfo", "re");

	if (!fp)
		return false;
	while (!found && fgets(line, sizeof(line), fp)) {
		const char *sep = strstr(line, " - ");
		if (sep && sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 &&
		    strcmp(mnt, abs) == 0 && strncmp(sep + 3, "fuse.raftfs ", 12) == 0)
			found = true;
	}
	fclose(fp);
	return found;
}

/*
 * Whether process pid is a fusermount auto_unmount helper watching the absolute mountpoint abs
 * (its command line: fusermount3 ... -o ...auto_unmount... -- ABS).
 */
static bool is_auto_unmount_helper(const char *pid, const char *abs)
{
	char path[320], cmd[PATH_MAX + 1024];
	const char *arg, *last = NULL, *name;
	bool auto_unmount = false;
	size_t n;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
	fp = fopen(path, "re");
	if (!fp)
		return false;
	n = fread(cmd, 1, sizeof(cmd) - 1, fp);
	fclose(fp);
	if (n == 0 || n == sizeof(cmd) - 1)
		return false;
	cmd[n] = '\0';
	name = strrchr(cmd, '/') ? strrchr(cmd, '/') + 1 : cmd;
	if (strncmp(name, "fusermount", 10) != 0)
		return false;
	for (arg = cmd; arg < cmd + n; arg += strlen(arg) + 1) {
		if (strstr(arg, "auto_unmount"))
			auto_unmount = true;
		last = arg;
	}
	return auto_unmount && last && strcmp(last, abs) == 0;
}

/* Up to max pids of the auto_unmount helpers watching abs; how many were found. */
static unsigned find_auto_unmount_helpers(const char *abs, pid_t *pids, unsigned max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	unsigned n = 0;

	if (!d)
		return 0;
	while (n < max && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9' ||
		    strspn(de->d_name, "0123456789") != strlen(de->d_name))
			continue;
		if (is_auto_unmount_helper(de->d_name, abs))
			pids[n++] = (pid_t)atol(de->d_name);
	}
	closedir(d);
	return n;
}

/*
 * A previous daemon that ended without unmounting (killed, crashed, its connection aborted)
 * leaves a dead mount that answers ENOTCONN until its auto_unmount helper notices the exit and
 * takes it away, asynchronously. Mounting over it fails (fusermount3 cannot access the
 * mountpoint), so a quick restart on the same path lost the race.
 *
 * The helper checks "is it mounted, does opening it fail with ENOTCONN", then unmounts the path
 * by name: if we mount between its check and its umount2(), it detaches OUR new mount (seen under
 * ASan, reproduced by tests/remount.test.sh delaying the helper's umount2). So first wait for
 * every auto_unmount helper still watching this mountpoint to exit (they do as soon as their
 * daemon is gone), bounded by OLD_HELPER_WAIT_MS in case one is stopped; then give a dead mount
 * a moment more, and lazily unmount it ourselves, but only if it is a raftfs one. A helper that
 * stays stopped past the bound and resumes later checks again: it finds our live mount and
 * leaves it (only a helper stopped inside that window could still hit it).
 */
static void clear_dead_mount(const struct mp *m)
{
	struct stat st;
	pid_t pids[8];
	unsigned n;

	if (is_raftfs_mount(m->abs) && (n = find_auto_unmount_helpers(m->abs, pids, 8)) > 0) {
		mlog(m, FS_LOG_WARN,
		     "%s: waiting for the auto_unmount helper of a previous daemon (pid %ld)",
		     m->path, (long)pids[0]);
		for (int waited = 0; waited < OLD_HELPER_WAIT_MS; waited += 50) {
			unsigned alive = 0;
			for (unsigned i = 0; i < n; i++)
				alive += kill(pids[i], 0) == 0 || errno != ESRCH;
			if (alive == 0)
				break;
			usleep(50 * 1000);
		}
	}
	for (int i = 0; i < 20; i++) {
		if (stat(m->path, &st) == 0 || errno != ENOTCONN)
			return;
		usleep(100 * 1000);
	}
	if (!is_raftfs_mount(m->abs)) {
		mlog(m, FS_LOG_WARN, "%s is a dead mount, not raftfs's: leaving it", m->path);
		return;
	}
	mlog(m, FS_LOG_WARN, "%s is a dead raftfs mount (its daemon is gone): unmounting it",
	     m->path);
	if (umount2(m->path, MNT_DETACH) != 0)
		mlog(m, FS_LOG_ERROR, "unmount %s: %s", m->path, strerror(errno));
}

/* --- the directory itself ---------------------------------------------------------------------- */

/* 0 when path is a directory; else -1 with a message in err. */
static int check_dir(const char *path, char *err, size_t err_len)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, err_len, "%s is not a directory", path);
		return -1;
	}
	return 0;
}

/* 0 when directory path holds no entry but . and ..; else an errno (ENOTEMPTY when it does). */
static int dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int rv = 0;

	if (!d)
		return errno;
	while (rv == 0 && (de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, ".."))
			rv = ENOTEMPTY;
	closedir(d);
	return rv;
}

/* Sets (on) or clears the immutable attribute of directory path. 0 or an errno. */
static int set_immutable(const char *path, bool on)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), flags, rv = 0;

	if (fd < 0)
		return errno;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
		rv = errno;
	} else if (((flags & FS_IMMUTABLE_FL) != 0) != on) {
		flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
			rv = errno;
	}
	close(fd);
	return rv;
}

static enum fs_guard guard(const struct mp *m)
{
	int err = set_immutable(m->path, true);

	if (err == 0) {
		mlog(m, FS_LOG_INFO,
		     "%s is immutable while raftfs is not mounted on it: writes there fail "
		     "(raftfs --unguard %s takes that off)",
		     m->path, m->path);
		return FS_GUARD_IMMUTABLE;
	}
	if (chmod(m->path, GUARD_MODE) == 0) {
		mlog(m, FS_LOG_WARN,
		     "%s: no immutable attribute here (%s): mode %o instead while raftfs is not "
		     "mounted on it (root can still write there)",
		     m->path, strerror(err), GUARD_MODE);
		return FS_GUARD_MODE;
	}
	mlog(m, FS_LOG_WARN,
	     "%s cannot be guarded (%s): while raftfs is down, writes there succeed", m->path,
	     strerror(errno));
	return FS_GUARD_NONE;
}

int fs_mountpoint_prepare(const char *path, fs_mountpoint_log_fn log, void *ctx, enum fs_guard *g,
                          char *err, size_t err_len)
{
	struct mp m = {.path = path, .log = log, .ctx = ctx};
	int e;

	*g = FS_GUARD_NONE;
	if (!realpath(path, m.abs)) {
		/* a dead mount fails realpath with ENOTCONN: its path is the absolute form */
		if (errno != ENOTCONN || path[0] != '/') {
			snprintf(err, err_len, "%s: %s", path, strerror(errno));
			return -1;
		}
		snprintf(m.abs, sizeof(m.abs), "%s", path);
	}
	clear_dead_mount(&m);
	if (check_dir(path, err, err_len) != 0)
		return -1;
	if (is_raftfs_mount(m.abs)) {
		snprintf(err, err_len,
		         "%s is already mounted by a running raftfs: stop that node first "
		         "(fusermount3 -u %s)",
		         path, path);
		return -1;
	}
	e = dir_empty(path);
	if (e) {
		snprintf(err, err_len,
		         "%s %s: a mount would hide what is there (move it away first)", path,
		         e == ENOTEMPTY ? "is not empty" : strerror(e));
		return -1;
	}
	*g = guard(&m);
	return 0;
}

int fs_mountpoint_unguard(const char *path, char *err, size_t err_len)
{
	struct stat st;
	int e;

	if (check_dir(path, err, err_len) != 0 || stat(path, &st) != 0)
		return -1;
	e = set_immutable(path, false);
	if (e && e != ENOTTY && e != EOPNOTSUPP && e != EINVAL) {
		snprintf(err, err_len, "%s: clearing the immutable attribute: %s", path,
		         strerror(e));
		return -1;
	}
	if ((st.st_mode & 07777) == GUARD_MODE && chmod(path, UNGUARDED_MODE) != 0) {
		snprintf(err, err_len, "%s: chmod: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}
