/* walcut.c - cuts an acknowledged tail off a node's log (see walcut.h). */
#include "tests/lib/walcut.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/codec.h"
#include "raft/raft.h"

#define WALCUT_PATH_BYTES 4200

static bool seg_first(const char *name, uint64_t *first)
{
	char *end;

	if (strncmp(name, "wal-", 4) != 0 || strlen(name) != 20)
		return false;
	*first = strtoull(name + 4, &end, 16);
	return *end == '\0';
}

/* The whole file (malloc'd) in *buf, its size in *size. 0 or -1. */
static int slurp(struct raft_vfs *vfs, const char *path, unsigned char **buf, uint64_t *size)
{
	struct raft_vfs_file *f;
	size_t got = 0;
	int rc = -1;

	*buf = NULL;
	if (vfs->open(vfs, path, RAFT_VFS_READ, &f) != 0)
		return -1;
	if (vfs->size(vfs, f, size) == 0 && (*buf = malloc(*size + 1)) != NULL &&
	    vfs->pread(vfs, f, *buf, (size_t)*size, 0, &got) == 0 && got == *size)
		rc = 0;
	vfs->close(vfs, f);
	if (rc != 0) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

int walcut_scan(struct raft_vfs *vfs, const char *dir, struct walcut_tail *t)
{
	char path[WALCUT_PATH_BYTES], **names;
	unsigned char *buf;
	uint64_t best = 0, first, size, off = 0;
	size_t n, cap = 0;
	int rc = 1;

	memset(t, 0, sizeof(*t));
	if (vfs->readdir(vfs, dir, &names, &n) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (seg_first(names[i], &first) && first >= best) {
			best = first;
			snprintf(t->name, sizeof(t->name), "%s", names[i]);
			rc = 0;
		}
	}
	raft_vfs_names_free(names, n);
	if (rc != 0)
		return rc;
	snprintf(path, sizeof(path), "%s/%s", dir, t->name);
	if (slurp(vfs, path, &buf, &size) != 0)
		return -1;
	while (off < size && !all_zero(buf + off, (size_t)(size - off))) {
		struct raft_entry e;
		size_t need;
		if (raft_codec_frame_length(buf + off, (size_t)(size - off), &need) != RAFT_OK ||
		    need > size - off || raft_codec_decode_entry(buf + off, need, &e) != RAFT_OK)
			break; /* a torn record: the records end before it */
		raft_buf_unref(e.data);
		if (t->n == cap) {
			size_t ncap = cap ? 2 * cap : 64;
			struct walcut_rec *r = realloc(t->recs, ncap * sizeof(*r));
			if (!r) {
				free(buf);
				return -1;
			}
			t->recs = r;
			cap = ncap;
		}
		t->recs[t->n].index = e.index;
		t->recs[t->n].term = e.term;
		t->recs[t->n].offset = off;
		t->recs[t->n].len = need;
		t->n++;
		off += need;
	}
	t->end = off;
	free(buf);
	return 0;
}

void walcut_tail_free(struct walcut_tail *t)
{
	free(t->recs);
	memset(t, 0, sizeof(*t));
}

int walcut_cut_at(struct raft_vfs *vfs, const char *dir, const struct walcut_tail *t, uint64_t at)
{
	char path[WALCUT_PATH_BYTES];
	struct raft_vfs_file *f;
	int err;

	if (!t->name[0] || at > t->end)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, t->name);
	if (vfs->open(vfs, path, RAFT_VFS_WRITE, &f) != 0)
		return -1;
	err = vfs->truncate(vfs, f, at);
	if (!err)
		err = vfs->fsync(vfs, f);
	vfs->close(vfs, f);
	return err ? -1 : 0;
}
