/* holders.c - which descriptors a process holds on a file of this mount, read from /proc. */
#include "fs/holders.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MOUNTINFO_LINE_BYTES 8192
#define FDINFO_BYTES 512 /* pos, flags, mnt_id, ino (FUSE files add nothing) */

/* Reads up to cap - 1 bytes of a small /proc file into buf (NUL-terminated); its length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	do
		n = read(fd, buf, cap - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* The unsigned number after "name:" in text (base 8 or 10), or false. */
static bool field(const char *text, const char *name, int base, unsigned long long *v)
{
	size_t n = strlen(name);
	const char *p = text;
	char *end;

	while ((p = strstr(p, name)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ':') {
			errno = 0;
			*v = strtoull(p + n + 1, &end, base);
			return errno == 0 && end != p + n + 1;
		}
		p += n;
	}
	return false;
}

/*
 * One mountinfo line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE OPTS".
 * Returns true and fills what was asked for when the line parses.
 */
static bool parse_mountinfo(const char *line, uint64_t *id, unsigned *maj, unsigned *min, char *mnt,
                            size_t mnt_cap, char *fstype, size_t fstype_cap)
{
	unsigned long long mid;
	const char *sep = strstr(line, " - ");
	char mp[4096], ft[64];

	if (!sep || sscanf(line, "%llu %*u %u:%u %*s %4095s", &mid, maj, min, mp) != 4 ||
	    sscanf(sep + 3, "%63s", ft) != 1)
		return false;
	*id = mid;
	if (mnt)
		snprintf(mnt, mnt_cap, "%s", mp);
	if (fstype)
		snprintf(fstype, fstype_cap, "%s", ft);
	return true;
}

int fs_mount_id_find(const char *abs, struct fs_mount_id *out)
{
	char *line = malloc(MOUNTINFO_LINE_BYTES), mnt[4096], fstype[64];
	FILE *fp = fopen("/proc/self/mountinfo", "re");
	int rv = -1;

	memset(out, 0, sizeof(*out));
	if (!line || !fp) {
		free(line);
		if (fp)
			fclose(fp);
		return -1;
	}
	while (fgets(line, MOUNTINFO_LINE_BYTES, fp)) {
		uint64_t id;
		unsigned maj, min;
		if (parse_mountinfo(line, &id, &maj, &min, mnt, sizeof(mnt), fstype,
		                    sizeof(fstype)) &&
		    strcmp(mnt, abs) == 0 && strcmp(fstype, "fuse.raftfs") == 0) {
			/* the last one listed is the newest, the one on top */
			out->mnt_id = id;
			out->major = maj;
			out->minor = min;
			out->known = true;
			rv = 0;
		}
	}
	fclose(fp);
	free(line);
	return rv;
}

pid_t fs_holders_tgid(pid_t tid)
{
	char path[64], text[2048];
	unsigned long long v;

	if (tid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)tid);
	if (read_small(path, text, sizeof(text)) < 0 || !field(text, "Tgid", 10, &v))
		return 0;
	return (pid_t)v;
}

/* Whether mount mnt_id, as process tgid's mount namespace lists it, is the device of m. */
static bool foreign_mount_is(pid_t tgid, uint64_t mnt_id, const struct fs_mount_id *m)
{
	char path[64], *line = malloc(MOUNTINFO_LINE_BYTES);
	bool found = false, done = false;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%ld/mountinfo", (long)tgid);
	fp = line ? fopen(path, "re") : NULL;
	while (fp && !done && fgets(line, MOUNTINFO_LINE_BYTES, fp)) {
		uint64_t id;
		unsigned maj, min;
		if (parse_mountinfo(line, &id, &maj, &min, NULL, 0, NULL, 0) && id == mnt_id) {
			found = maj == m->major && min == m->minor;
			done = true;
		}
	}
	if (fp)
		fclose(fp);
	free(line);
	return found;
}

/* Whether descriptor fd (a decimal string) of tgid is writable, on inode ino of m, with the
 * open flags flags (masked). */
static bool fd_matches(pid_t tgid, const char *fd, uint64_t ino, const struct fs_mount_id *m,
                       int want)
{
	char path[96], text[FDINFO_BYTES];
	unsigned long long flags, mnt_id, fino;

	snprintf(path, sizeof(path), "/proc/%ld/fdinfo/%s", (long)tgid, fd);
	if (read_small(path, text, sizeof(text)) < 0 || !field(text, "flags", 8, &flags) ||
	    !field(text, "ino", 10, &fino) || fino != ino || (flags & O_ACCMODE) == O_RDONLY ||
	    (int)(flags & FS_HOLDERS_FLAGS_MASK) != (want & FS_HOLDERS_FLAGS_MASK))
		return false;
	if (!field(text, "mnt_id", 10, &mnt_id))
		return false;
	if (m->mnt_id && mnt_id == m->mnt_id)
		return true;
	/* another mount: a bind mount of this one in a container's namespace, or another file
	 * system whose inode number happens to be the same */
	return m->known && foreign_mount_is(tgid, mnt_id, m);
}

int fs_holders_writable(pid_t tgid, uint64_t ino, const struct fs_mount_id *m, int flags, int limit)
{
	char dir[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	if (tgid <= 0)
		return -1;
	/* a shell redirection puts it on stdout: one read before the whole table */
	if (fd_matches(tgid, "1", ino, m, flags) && ++n >= limit)
		return n;
	snprintf(dir, sizeof(dir), "/proc/%ld/fdinfo", (long)tgid);
	d = opendir(dir);
	if (!d)
		return errno == ENOENT || errno == ESRCH ? 0 : -1; /* gone: it holds nothing */
	while (n < limit && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, "1") == 0)
			continue;
		if (fd_matches(tgid, de->d_name, ino, m, flags))
			n++;
	}
	closedir(d);
	return n;
}
