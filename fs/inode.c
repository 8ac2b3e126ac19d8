/* inode.c - the inode table (inode.h): two chained hash tables over the same entries. */
#include "fs/inode.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kv/cmd.h"

#define INODE_MIN_BUCKETS 256u

struct entry {
	uint64_t ino;
	uint64_t parent; /* 0: detached */
	uint64_t nlookup; /* > 0 while in the table */
	char *name; /* NUL-terminated, owned; NULL when detached */
	struct entry *by_ino; /* chain of buckets_ino[hash(ino)] */
	struct entry *by_name; /* chain of buckets_name[hash(parent, name)], when attached */
};

struct fs_inode_table {
	struct entry **by_ino;
	struct entry **by_name;
	size_t n_buckets; /* a power of two; both tables have as many */
	size_t count;
};

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t hash_ino(const struct fs_inode_table *t, uint64_t ino)
{
	return (size_t)(mix(ino) & (t->n_buckets - 1));
}

static size_t hash_name(const struct fs_inode_table *t, uint64_t parent, const char *name)
{
	uint64_t h = 1469598103934665603ULL ^ mix(parent);

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(mix(h) & (t->n_buckets - 1));
}

int fs_inode_table_new(struct fs_inode_table **out)
{
	struct fs_inode_table *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->n_buckets = INODE_MIN_BUCKETS;
	t->by_ino = calloc(t->n_buckets, sizeof(*t->by_ino));
	t->by_name = calloc(t->n_buckets, sizeof(*t->by_name));
	if (!t->by_ino || !t->by_name) {
		free(t->by_ino);
		free(t->by_name);
		free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

void fs_inode_table_free(struct fs_inode_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_buckets; i++) {
		struct entry *e = t->by_ino[i], *next;
		for (; e; e = next) {
			next = e->by_ino;
			free(e->name);
			free(e);
		}
	}
	free(t->by_ino);
	free(t->by_name);
	free(t);
}

static struct entry *find_ino(const struct fs_inode_table *t, uint64_t ino)
{
	struct entry *e = t->by_ino[hash_ino(t, ino)];

	while (e && e->ino != ino)
		e = e->by_ino;
	return e;
}

static struct entry *find_name(const struct fs_inode_table *t, uint64_t parent, const char *name)
{
	struct entry *e = t->by_name[hash_name(t, parent, name)];

	while (e && !(e->parent == parent && strcmp(e->name, name) == 0))
		e = e->by_name;
	return e;
}

static void name_unlink(struct fs_inode_table *t, struct entry *e)
{
	struct entry **pp;

	if (!e->name)
		return;
	for (pp = &t->by_name[hash_name(t, e->parent, e->name)]; *pp != e; pp = &(*pp)->by_name)
		;
	*pp = e->by_name;
	e->by_name = NULL;
}

static void detach(struct fs_inode_table *t, struct entry *e)
{
	name_unlink(t, e);
	free(e->name);
	e->name = NULL;
	e->parent = 0;
}

/* Attaches e at (parent, name), detaching the entry there; name becomes e's (owned). */
static void attach(struct fs_inode_table *t, struct entry *e, uint64_t parent, char *name)
{
	struct entry *old = find_name(t, parent, name);
	size_t b;

	if (old && old != e)
		detach(t, old);
	detach(t, e);
	e->parent = parent;
	e->name = name;
	b = hash_name(t, parent, name);
	e->by_name = t->by_name[b];
	t->by_name[b] = e;
}

/* Doubles both tables when the load passes 1 (a failed allocation keeps the old size). */
static void maybe_grow(struct fs_inode_table *t)
{
	size_t n = t->n_buckets * 2;
	struct entry **bi, **bn;

	if (t->count < t->n_buckets || n < t->n_buckets)
		return;
	bi = calloc(n, sizeof(*bi));
	bn = calloc(n, sizeof(*bn));
	if (!bi || !bn) {
		free(bi);
		free(bn);
		return;
	}
	for (size_t i = 0; i < t->n_buckets; i++) {
		struct entry *e = t->by_ino[i], *next;
		for (; e; e = next) {
			next = e->by_ino;
			size_t h = (size_t)(mix(e->ino) & (n - 1));
			e->by_ino = bi[h];
			bi[h] = e;
		}
	}
	free(t->by_ino);
	free(t->by_name);
	t->by_ino = bi;
	t->by_name = bn;
	t->n_buckets = n;
	for (size_t i = 0; i < n; i++)
		for (struct entry *e = bi[i]; e; e = e->by_ino)
			if (e->name) {
				size_t h = hash_name(t, e->parent, e->name);
				e->by_name = bn[h];
				bn[h] = e;
			}
}

int fs_inode_remember(struct fs_inode_table *t, uint64_t ino, uint64_t parent, const char *name,
                      size_t len)
{
	struct entry *e;
	char *copy;

	if (ino == FS_INODE_ROOT)
		return 0;
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, name, len);
	copy[len] = '\0';
	e = find_ino(t, ino);
	if (!e) {
		size_t b;
		e = calloc(1, sizeof(*e));
		if (!e) {
			free(copy);
			return -ENOMEM;
		}
		e->ino = ino;
		b = hash_ino(t, ino);
		e->by_ino = t->by_ino[b];
		t->by_ino[b] = e;
		t->count++;
	}
	e->nlookup++;
	attach(t, e, parent, copy);
	maybe_grow(t);
	return 0;
}

void fs_inode_forget(struct fs_inode_table *t, uint64_t ino, uint64_t n)
{
	struct entry *e = find_ino(t, ino), **pp;

	if (!e)
		return;
	if (e->nlookup > n) {
		e->nlookup -= n;
		return;
	}
	detach(t, e);
	for (pp = &t->by_ino[hash_ino(t, ino)]; *pp != e; pp = &(*pp)->by_ino)
		;
	*pp = e->by_ino;
	t->count--;
	free(e);
}

void fs_inode_unlinked(struct fs_inode_table *t, uint64_t parent, const char *name)
{
	struct entry *e = find_name(t, parent, name);

	if (e)
		detach(t, e);
}

int fs_inode_renamed(struct fs_inode_table *t, uint64_t parent, const char *name,
                     uint64_t new_parent, const char *new_name)
{
	struct entry *e = find_name(t, parent, name), *dst;
	char *copy;

	dst = find_name(t, new_parent, new_name);
	if (dst && dst != e)
		detach(t, dst);
	if (!e)
		return 0;
	copy = strdup(new_name);
	if (!copy) {
		detach(t, e);
		return -ENOMEM;
	}
	attach(t, e, new_parent, copy);
	return 0;
}

uint64_t fs_inode_parent(const struct fs_inode_table *t, uint64_t ino)
{
	const struct entry *e = ino == FS_INODE_ROOT ? NULL : find_ino(t, ino);

	return e && e->parent ? e->parent : FS_INODE_ROOT;
}

int fs_inode_key(const struct fs_inode_table *t, uint64_t ino, const char *name, char *buf,
                 size_t cap, size_t *len)
{
	/* built backwards from the end of a scratch buffer, then moved to the front */
	size_t pos = cap, n;
	unsigned depth = 0;

	if (cap < 2)
		return -ENAMETOOLONG;
	buf[--pos] = '\0';
	if (name) {
		n = strlen(name);
		if (n > KV_MAX_NAME_BYTES)
			return -ENAMETOOLONG;
		if (n > pos)
			return -ENAMETOOLONG;
		pos -= n;
		memcpy(buf + pos, name, n);
	}
	while (ino != FS_INODE_ROOT) {
		const struct entry *e = find_ino(t, ino);
		if (!e || !e->name || ++depth > KV_MAX_KEY_BYTES / 2)
			return -ESTALE;
		n = strlen(e->name);
		if (pos != cap - 1) {
			if (pos == 0)
				return -ENAMETOOLONG;
			buf[--pos] = '/';
		}
		if (n > pos)
			return -ENAMETOOLONG;
		pos -= n;
		memcpy(buf + pos, e->name, n);
		ino = e->parent;
	}
	n = cap - 1 - pos;
	if (n > KV_MAX_KEY_BYTES)
		return -ENAMETOOLONG;
	memmove(buf, buf + pos, n + 1);
	*len = n;
	return 0;
}
