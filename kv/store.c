/* store.c - the replicated key/value state machine: namespace, sessions and the apply dispatch. */
#include <stdlib.h>
#include <string.h>

#include "kv/store_internal.h"
#include "raft/raft.h"

#define MIN_BUCKETS 1024u
#define MIN_SESSION_BUCKETS 16u
#define NEW_PARENT_MODE 0755u

void kv_store_config_default(struct kv_store_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->settings.max_value_bytes = KV_DEFAULT_MAX_VALUE_BYTES;
	cfg->settings.session_timeout_ms = KV_SESSION_TIMEOUT_MS;
	cfg->settings.max_sessions = KV_DEFAULT_MAX_SESSIONS;
}

bool kv_settings_valid(const struct kv_settings *st)
{
	return st->max_value_bytes >= 1 && st->max_value_bytes <= KV_VALUE_BYTES_LIMIT &&
	        st->session_timeout_ms > 0 && st->max_sessions >= 1 &&
	        st->max_sessions <= KV_MAX_SESSIONS_LIMIT;
}

/* --- hashing ------------------------------------------------------------------------------- */

/* A fixed function for digests (kv_store_hash), which every replica must compute alike; the name
 * table uses the keyed name_hash below, since its inputs come from clients. */

static void le_put(unsigned char *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t hash_bytes(uint64_t seed, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t h = mix64(seed ^ (0x9e3779b97f4a7c15ULL * (len + 1)));

	while (len >= 8) {
		uint64_t w = 0;
		for (unsigned i = 0; i < 8; i++)
			w |= (uint64_t)p[i] << (8 * i);
		h = mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t w = 0;
		for (size_t i = 0; i < len; i++)
			w |= (uint64_t)p[i] << (8 * i);
		h = mix64(h ^ w ^ ((uint64_t)len << 59));
	}
	return mix64(h);
}

/* Where a name sits in the table: SipHash-2-4 of (parent ino, name) under the node's secret key,
 * so no client can choose names that collide (kv_store_config.hash_key). */
static uint32_t name_hash(const struct kv_store *s, uint64_t parent_ino, const char *name,
                          size_t len)
{
	unsigned char buf[8 + KV_MAX_NAME_BYTES];

	le_put(buf, parent_ino, 8);
	memcpy(buf + 8, name, len); /* len <= KV_MAX_NAME_BYTES: names are checked first */
	return (uint32_t)raft_siphash24(&s->hash_key, buf, 8 + len);
}

/* --- nodes and the (parent, name) table ------------------------------------------------------ */

struct kv_node *kv_node_new(const char *name, size_t name_len)
{
	struct kv_node *n;

	if (name_len > KV_MAX_NAME_BYTES)
		return NULL;
	n = malloc(sizeof(*n) + name_len);
	if (!n)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->name_len = (uint8_t)name_len;
	if (name_len)
		memcpy(n->name, name, name_len);
	return n;
}

void kv_node_free(struct kv_node *n)
{
	if (!n)
		return;
	if (!kv_node_is_dir(n))
		free(n->u.file.data);
	free(n);
}

static size_t bucket_of(size_t n_buckets, uint32_t h)
{
	return h & (n_buckets - 1);
}

static void hash_insert(struct kv_store *s, struct kv_node *n)
{
	size_t b = bucket_of(s->n_buckets, n->hash);

	n->hnext = s->buckets[b];
	s->buckets[b] = n;
}

static void hash_remove(struct kv_store *s, struct kv_node *n)
{
	struct kv_node **pp = &s->buckets[bucket_of(s->n_buckets, n->hash)];

	while (*pp != n)
		pp = &(*pp)->hnext;
	*pp = n->hnext;
	n->hnext = NULL;
}

/* Doubles the table when it holds more nodes than buckets. Failing to grow is harmless (chains get
 * longer), so it never turns into an error of the operation. */
static void hash_maybe_grow(struct kv_store *s)
{
	struct kv_node **nb;
	size_t n;

	if (s->n_nodes <= s->n_buckets || s->n_buckets >= ((size_t)1 << 31))
		return;
	n = s->n_buckets * 2;
	nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;
	for (size_t i = 0; i < s->n_buckets; i++) {
		struct kv_node *e = s->buckets[i], *next;
		for (; e; e = next) {
			size_t b = bucket_of(n, e->hash);
			next = e->hnext;
			e->hnext = nb[b];
			nb[b] = e;
		}
	}
	free(s->buckets);
	s->buckets = nb;
	s->n_buckets = n;
}

struct kv_node *kv_node_find(const struct kv_store *s, const struct kv_node *dir, const char *name,
                             size_t name_len)
{
	uint32_t h;
	struct kv_node *n;

	if (name_len > KV_MAX_NAME_BYTES)
		return NULL;
	h = name_hash(s, dir->ino, name, name_len);
	n = s->buckets[bucket_of(s->n_buckets, h)];

	for (; n; n = n->hnext)
		if (n->hash == h && n->parent == dir && n->name_len == name_len &&
		    memcmp(n->name, name, name_len) == 0)
			return n;
	return NULL;
}

void kv_node_link(struct kv_store *s, struct kv_node *parent, struct kv_node *n)
{
	n->parent = parent;
	n->hash = name_hash(s, parent->ino, n->name, n->name_len);
	hash_insert(s, n);
	n->sib_prev = NULL;
	n->sib_next = parent->u.dir.first;
	if (n->sib_next)
		n->sib_next->sib_prev = n;
	parent->u.dir.first = n;
	parent->u.dir.n_children++;
	if (kv_node_is_dir(n))
		parent->u.dir.n_subdirs++;
	s->n_nodes++;
	hash_maybe_grow(s);
}

static void node_unlink(struct kv_store *s, struct kv_node *n)
{
	struct kv_node *parent = n->parent;

	hash_remove(s, n);
	if (n->sib_prev)
		n->sib_prev->sib_next = n->sib_next;
	else
		parent->u.dir.first = n->sib_next;
	if (n->sib_next)
		n->sib_next->sib_prev = n->sib_prev;
	n->sib_prev = n->sib_next = NULL;
	parent->u.dir.n_children--;
	if (kv_node_is_dir(n))
		parent->u.dir.n_subdirs--;
	n->parent = NULL;
	s->n_nodes--;
}

static void node_attr(const struct kv_node *n, struct kv_attr *a)
{
	a->ino = n->ino;
	a->mode = n->mode;
	a->uid = n->uid;
	a->gid = n->gid;
	a->mtime_ns = n->mtime_ns;
	a->ctime_ns = n->ctime_ns;
	if (kv_node_is_dir(n)) {
		a->nlink = 2 + n->u.dir.n_subdirs;
		a->size = n->u.dir.n_children;
	} else {
		a->nlink = 1;
		a->size = n->u.file.size;
	}
}

static int name_cmp(const void *a, const void *b)
{
	const struct kv_node *x = *(struct kv_node *const *)a;
	const struct kv_node *y = *(struct kv_node *const *)b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, n);

	if (c)
		return c;
	return (int)x->name_len - (int)y->name_len;
}

struct kv_node **kv_node_sorted_children(const struct kv_node *dir)
{
	struct kv_node **v;
	size_t i = 0;

	if (dir->u.dir.n_children == 0)
		return NULL;
	v = malloc(dir->u.dir.n_children * sizeof(*v));
	if (!v)
		return NULL;
	for (struct kv_node *c = dir->u.dir.first; c; c = c->sib_next)
		v[i++] = c;
	qsort(v, i, sizeof(*v), name_cmp);
	return v;
}

/* --- keys ----------------------------------------------------------------------------------- */

bool kv_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > KV_MAX_NAME_BYTES)
		return false;
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return false;
	if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')))
		return false;
	return true;
}

int kv_key_check(const char *key, size_t len)
{
	size_t pos = 0;

	if (len == 0)
		return KV_OK;
	if (len > KV_MAX_KEY_BYTES)
		return KV_ENAMETOOLONG;
	if (memchr(key, '\0', len))
		return KV_EINVAL;
	for (;;) {
		const char *c = key + pos;
		const char *slash = memchr(c, '/', len - pos);
		size_t clen = slash ? (size_t)(slash - c) : len - pos;

		if (clen > KV_MAX_NAME_BYTES)
			return KV_ENAMETOOLONG;
		if (!kv_name_valid(c, clen))
			return KV_EINVAL;
		if (!slash)
			return KV_OK;
		pos += clen + 1;
	}
}

/* Where a key leads: the node if it exists, else the deepest existing directory on the way. */
struct walk {
	struct kv_node *dir; /* the parent of node, or the deepest existing directory; NULL: root */
	struct kv_node *node; /* the key's node, NULL when missing */
	size_t missing; /* offset in the key of the first missing component */
	bool last_missing; /* node is missing, its parent exists */
	const char *name; /* the key's last component */
	size_t name_len;
};

static int walk(const struct kv_store *s, const char *key, size_t len, struct walk *w)
{
	struct kv_node *cur = s->root;
	size_t pos = 0;
	int rv = kv_key_check(key, len);

	memset(w, 0, sizeof(*w));
	if (rv != KV_OK)
		return rv;
	w->node = s->root;
	if (len == 0)
		return KV_OK;
	for (;;) {
		const char *c = key + pos;
		const char *slash = memchr(c, '/', len - pos);
		size_t clen = slash ? (size_t)(slash - c) : len - pos;
		struct kv_node *child;

		if (!kv_node_is_dir(cur))
			return KV_ENOTDIR;
		child = kv_node_find(s, cur, c, clen);
		if (!slash || !child) {
			size_t start = len;
			while (start > 0 && key[start - 1] != '/')
				start--;
			w->name = key + start;
			w->name_len = len - start;
			w->dir = cur;
			w->node = slash ? NULL : child;
			w->missing = pos;
			w->last_missing = !slash && !child;
			return KV_OK;
		}
		cur = child;
		pos += clen + 1;
	}
}

/* --- creation: allocate everything first, then link, so ENOMEM leaves no trace ------------- */

struct creation {
	struct kv_node *dirs; /* missing parents in path order, chained by sib_next */
	struct kv_node *leaf;
};

static void creation_abort(struct creation *cr)
{
	while (cr->dirs) {
		struct kv_node *n = cr->dirs;
		cr->dirs = n->sib_next;
		free(n);
	}
	kv_node_free(cr->leaf);
	cr->leaf = NULL;
}

/* Allocates the missing parents of w's key (parents: else KV_ENOENT when any is missing) and the
 * leaf node. */
static int creation_prepare(const struct walk *w, const char *key, size_t len, bool parents,
                            struct creation *cr)
{
	struct kv_node **tail = &cr->dirs;
	size_t pos = w->missing;

	memset(cr, 0, sizeof(*cr));
	if (!w->last_missing && !parents)
		return KV_ENOENT;
	while (pos < (size_t)(w->name - key)) {
		const char *slash = memchr(key + pos, '/', len - pos);
		size_t clen = (size_t)(slash - (key + pos));
		struct kv_node *d = kv_node_new(key + pos, clen);
		if (!d)
			goto nomem;
		*tail = d;
		tail = &d->sib_next;
		pos += clen + 1;
	}
	cr->leaf = kv_node_new(w->name, w->name_len);
	if (!cr->leaf)
		goto nomem;
	return KV_OK;
nomem:
	creation_abort(cr);
	return KV_ENOMEM;
}

static uint64_t now_ns(const struct kv_store *s)
{
	return s->now_ms > UINT64_MAX / 1000000u ? UINT64_MAX : s->now_ms * 1000000u;
}

static void touch(const struct kv_store *s, struct kv_node *n)
{
	n->mtime_ns = n->ctime_ns = now_ns(s);
}

static void node_init(struct kv_store *s, struct kv_node *n, uint32_t mode, const struct kv_cmd *c)
{
	n->ino = s->next_ino++;
	n->mode = mode;
	n->uid = c->uid;
	n->gid = c->gid;
	touch(s, n);
}

/* Links what creation_prepare() allocated; returns the leaf. */
static struct kv_node *creation_commit(struct kv_store *s, const struct walk *w,
                                       const struct kv_cmd *c, uint32_t leaf_mode,
                                       struct creation *cr)
{
	struct kv_node *parent = w->dir, *leaf = cr->leaf;

	touch(s, parent);
	while (cr->dirs) {
		struct kv_node *d = cr->dirs;
		cr->dirs = d->sib_next;
		node_init(s, d, KV_MODE_DIR | NEW_PARENT_MODE, c);
		kv_node_link(s, parent, d);
		parent = d;
	}
	node_init(s, leaf, leaf_mode, c);
	kv_node_link(s, parent, leaf);
	cr->leaf = NULL;
	return leaf;
}

/* --- operations ----------------------------------------------------------------------------- */

typedef int (*op_fn)(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                     struct kv_result *out);

static bool is_lnk(const struct kv_node *n)
{
	return (n->mode & KV_MODE_TYPE) == KV_MODE_LNK;
}

/* POSIX: a write by someone other than the owner (or root) drops setuid/setgid (DESIGN.md 6). */
static void write_clears_setid(struct kv_node *n, const struct kv_cmd *c)
{
	if (c->uid != 0 && c->uid != n->uid)
		n->mode &= ~(KV_MODE_SUID | KV_MODE_SGID);
}

static void result_attr(struct kv_result *out, const struct kv_node *n)
{
	out->has_attr = true;
	node_attr(n, &out->attr);
}

enum write_kind { WRITE_PUT, WRITE_APPEND, WRITE_CREATE_EXCL, WRITE_AT };

/* Put, Append, CreateExclusive, WriteAt: one path, differing in where the bytes go. */
static int do_write(struct kv_store *s, const struct kv_cmd *c, struct kv_result *out,
                    enum write_kind kind)
{
	struct creation cr = {0};
	struct walk w;
	struct kv_node *n;
	uint64_t old_size, off, end, new_size;
	unsigned char *buf = NULL;
	bool in_place;
	int rv = walk(s, c->key, c->key_len, &w);

	if (rv != KV_OK)
		return rv;
	n = w.node;
	if (n && kind == WRITE_CREATE_EXCL)
		return KV_EEXIST;
	if (n && kv_node_is_dir(n))
		return KV_EISDIR;
	if (n && is_lnk(n))
		return KV_EINVAL;
	old_size = n ? n->u.file.size : 0;
	off = kind == WRITE_APPEND ? old_size : kind == WRITE_AT ? c->offset : 0;
	if (off > s->set.max_value_bytes || c->data_len > s->set.max_value_bytes - off)
		return KV_EFBIG;
	end = off + c->data_len;
	new_size = (kind == WRITE_APPEND || kind == WRITE_AT) && old_size > end ? old_size : end;
	/* Append and WriteAt keep the old bytes: grow the existing buffer. */
	in_place = n && (kind == WRITE_APPEND || kind == WRITE_AT);
	if (!n) {
		rv = creation_prepare(&w, c->key, c->key_len, true, &cr);
		if (rv != KV_OK)
			return rv;
	}
	if (in_place) {
		buf = n->u.file.data;
		if (new_size != old_size) {
			buf = realloc(buf, new_size);
			if (!buf)
				return KV_ENOMEM;
			n->u.file.data = buf;
		}
		if (off > old_size)
			memset(buf + old_size, 0, off - old_size);
	} else if (new_size) {
		buf = malloc(new_size);
		if (!buf) {
			creation_abort(&cr);
			return KV_ENOMEM;
		}
		memset(buf, 0, off);
	}
	if (c->data_len)
		memcpy(buf + off, c->data, c->data_len);
	if (!n) {
		n = creation_commit(s, &w, c, KV_MODE_REG | (c->mode & KV_MODE_PERM), &cr);
	} else {
		write_clears_setid(n, c);
		touch(s, n);
	}
	if (!in_place) {
		free(n->u.file.data);
		n->u.file.data = buf;
	}
	n->u.file.size = (uint32_t)new_size;
	if (!n->u.file.size && n->u.file.data) {
		free(n->u.file.data);
		n->u.file.data = NULL;
	}
	result_attr(out, n);
	return KV_OK;
}

static int op_put(struct kv_store *s, uint64_t index, const struct kv_cmd *c, struct kv_result *out)
{
	(void)index;
	return do_write(s, c, out, WRITE_PUT);
}

static int op_append(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                     struct kv_result *out)
{
	(void)index;
	return do_write(s, c, out, WRITE_APPEND);
}

static int op_create_exclusive(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                               struct kv_result *out)
{
	(void)index;
	return do_write(s, c, out, WRITE_CREATE_EXCL);
}

static int op_write_at(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                       struct kv_result *out)
{
	(void)index;
	return do_write(s, c, out, WRITE_AT);
}

/* The existing node of c->key, or an error. */
static int find_existing(const struct kv_store *s, const char *key, size_t len, struct walk *w)
{
	int rv = walk(s, key, len, w);

	if (rv != KV_OK)
		return rv;
	return w->node ? KV_OK : KV_ENOENT;
}

static int op_truncate(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                       struct kv_result *out)
{
	struct walk w;
	struct kv_node *n;
	unsigned char *buf;
	uint64_t old_size;
	int rv = find_existing(s, c->key, c->key_len, &w);

	(void)index;
	if (rv != KV_OK)
		return rv;
	n = w.node;
	if (kv_node_is_dir(n))
		return KV_EISDIR;
	if (is_lnk(n))
		return KV_EINVAL;
	if (c->offset > s->set.max_value_bytes)
		return KV_EFBIG;
	old_size = n->u.file.size;
	if (c->offset == 0) {
		free(n->u.file.data);
		buf = NULL;
	} else if (c->offset != old_size) {
		buf = realloc(n->u.file.data, c->offset);
		if (!buf)
			return KV_ENOMEM;
		if (c->offset > old_size)
			memset(buf + old_size, 0, c->offset - old_size);
	} else {
		buf = n->u.file.data;
	}
	n->u.file.data = buf;
	n->u.file.size = (uint32_t)c->offset;
	write_clears_setid(n, c);
	touch(s, n);
	result_attr(out, n);
	return KV_OK;
}

static void remove_node(struct kv_store *s, struct kv_node *n)
{
	struct kv_node *parent = n->parent;

	node_unlink(s, n);
	kv_node_free(n);
	touch(s, parent);
}

static int op_delete(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                     struct kv_result *out)
{
	struct walk w;
	int rv = find_existing(s, c->key, c->key_len, &w);

	(void)index;
	(void)out;
	if (rv != KV_OK)
		return rv;
	if (kv_node_is_dir(w.node))
		return KV_EISDIR;
	remove_node(s, w.node);
	return KV_OK;
}

/* Mkdir and Symlink: a new leaf in an existing directory. */
static int create_leaf(struct kv_store *s, const struct kv_cmd *c, struct kv_result *out,
                       uint32_t mode)
{
	struct creation cr;
	struct walk w;
	struct kv_node *n;
	unsigned char *target = NULL;
	int rv = walk(s, c->key, c->key_len, &w);

	if (rv != KV_OK)
		return rv;
	if (w.node)
		return KV_EEXIST;
	rv = creation_prepare(&w, c->key, c->key_len, false, &cr);
	if (rv != KV_OK)
		return rv;
	if ((mode & KV_MODE_TYPE) == KV_MODE_LNK) {
		target = malloc(c->data_len);
		if (!target) {
			creation_abort(&cr);
			return KV_ENOMEM;
		}
		memcpy(target, c->data, c->data_len);
	}
	n = creation_commit(s, &w, c, mode, &cr);
	if (target) {
		n->u.file.data = target;
		n->u.file.size = (uint32_t)c->data_len;
	}
	result_attr(out, n);
	return KV_OK;
}

static int op_mkdir(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                    struct kv_result *out)
{
	(void)index;
	return create_leaf(s, c, out, KV_MODE_DIR | (c->mode & KV_MODE_PERM));
}

static int op_symlink(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                      struct kv_result *out)
{
	(void)index;
	if (c->data_len == 0 || memchr(c->data, '\0', c->data_len))
		return KV_EINVAL;
	if (c->data_len > KV_MAX_TARGET_BYTES)
		return KV_ENAMETOOLONG;
	return create_leaf(s, c, out, KV_MODE_LNK | 0777u);
}

static int op_rmdir(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                    struct kv_result *out)
{
	struct walk w;
	int rv = find_existing(s, c->key, c->key_len, &w);

	(void)index;
	(void)out;
	if (rv != KV_OK)
		return rv;
	if (!kv_node_is_dir(w.node))
		return KV_ENOTDIR;
	if (w.node == s->root)
		return KV_EINVAL;
	if (w.node->u.dir.n_children)
		return KV_ENOTEMPTY;
	remove_node(s, w.node);
	return KV_OK;
}

/* Checks rename(2)'s rules for moving src to (to.dir, to.name) over dst (may be NULL). */
static int rename_check(const struct kv_store *s, const struct kv_cmd *c, struct kv_node *src,
                        const struct walk *to)
{
	struct kv_node *dst = to->node;

	if (c->flags & ~KV_RENAME_NOREPLACE)
		return KV_EINVAL;
	if (src == s->root || c->key2_len == 0)
		return KV_EINVAL;
	if (!dst && !to->last_missing)
		return KV_ENOENT;
	if (dst && (c->flags & KV_RENAME_NOREPLACE))
		return KV_EEXIST;
	if (dst == src)
		return KV_OK;
	if (kv_node_is_dir(src))
		for (const struct kv_node *p = to->dir; p; p = p->parent)
			if (p == src)
				return KV_EINVAL;
	if (dst) {
		if (kv_node_is_dir(src) && !kv_node_is_dir(dst))
			return KV_ENOTDIR;
		if (!kv_node_is_dir(src) && kv_node_is_dir(dst))
			return KV_EISDIR;
		if (kv_node_is_dir(dst) && dst->u.dir.n_children)
			return KV_ENOTEMPTY;
	}
	return KV_OK;
}

static int op_rename(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                     struct kv_result *out)
{
	struct walk from, to;
	struct kv_node *src, *moved = NULL, *old_parent;
	int rv = find_existing(s, c->key, c->key_len, &from);

	(void)index;
	if (rv != KV_OK)
		return rv;
	rv = walk(s, c->key2, c->key2_len, &to);
	if (rv != KV_OK)
		return rv;
	src = from.node;
	rv = rename_check(s, c, src, &to);
	if (rv != KV_OK || to.node == src) {
		if (rv == KV_OK)
			result_attr(out, src);
		return rv;
	}
	/* The name lives inside the node: a different length needs a new node, made before any
	 * change so that running out of memory changes nothing. */
	if (to.name_len != src->name_len) {
		moved = malloc(sizeof(*moved) + to.name_len);
		if (!moved)
			return KV_ENOMEM;
	}
	if (to.node)
		remove_node(s, to.node);
	old_parent = src->parent;
	node_unlink(s, src);
	if (moved) {
		memcpy(moved, src, sizeof(*src));
		if (kv_node_is_dir(moved))
			for (struct kv_node *ch = moved->u.dir.first; ch; ch = ch->sib_next)
				ch->parent = moved;
		free(src);
		src = moved;
	}
	src->name_len = (uint8_t)to.name_len;
	memcpy(src->name, to.name, to.name_len);
	kv_node_link(s, to.dir, src);
	src->ctime_ns = now_ns(s);
	touch(s, old_parent);
	touch(s, to.dir);
	result_attr(out, src);
	return KV_OK;
}

/* Whether the caller of c may write node n by its permission bits (root always may). Only the
 * command's gid counts: supplementary groups are the kernel's to check (default_permissions). */
static bool may_write(const struct kv_node *n, const struct kv_cmd *c)
{
	if (c->uid == 0)
		return true;
	if (c->uid == n->uid)
		return (n->mode & 0200) != 0;
	if (c->gid == n->gid)
		return (n->mode & 0020) != 0;
	return (n->mode & 0002) != 0;
}

static int op_setattr(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                      struct kv_result *out)
{
	const struct kv_cmd_attr *a = &c->attr;
	struct walk w;
	struct kv_node *n;
	bool root, owner;
	int rv = find_existing(s, c->key, c->key_len, &w);

	(void)index;
	if (rv != KV_OK)
		return rv;
	if (c->flags & ~KV_ATTR_ALL)
		return KV_EINVAL;
	n = w.node;
	root = c->uid == 0;
	owner = root || c->uid == n->uid;
	if ((c->flags & (KV_ATTR_MODE | KV_ATTR_CTIME)) && !owner)
		return KV_EPERM;
	if ((c->flags & KV_ATTR_MTIME) && !owner &&
	    !((c->flags & KV_ATTR_TOUCH) && may_write(n, c)))
		return KV_EPERM;
	if ((c->flags & KV_ATTR_UID) && a->uid != n->uid && !root)
		return KV_EPERM;
	if ((c->flags & KV_ATTR_GID) && a->gid != n->gid && !root && !(owner && a->gid == c->gid))
		return KV_EPERM;
	if (c->flags & KV_ATTR_MODE)
		n->mode = (n->mode & KV_MODE_TYPE) | (a->mode & KV_MODE_PERM);
	if (c->flags & KV_ATTR_UID)
		n->uid = a->uid;
	if (c->flags & KV_ATTR_GID)
		n->gid = a->gid;
	if (c->flags & KV_ATTR_MTIME)
		n->mtime_ns = a->mtime_ns;
	n->ctime_ns = (c->flags & KV_ATTR_CTIME) ? a->ctime_ns : now_ns(s);
	result_attr(out, n);
	return KV_OK;
}

static int op_get(struct kv_store *s, uint64_t index, const struct kv_cmd *c, struct kv_result *out)
{
	int rv = kv_store_get(s, c->key, c->key_len, &out->value, &out->value_len, &out->exists,
	                      &out->attr);

	(void)index;
	out->has_attr = rv == KV_OK && out->exists;
	return rv;
}

static int op_read(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                   struct kv_result *out)
{
	int rv = kv_store_read(s, c->key, c->key_len, c->offset, c->count, &out->value,
	                       &out->value_len, &out->exists, &out->attr);

	(void)index;
	out->has_attr = rv == KV_OK && out->exists;
	return rv;
}

static int op_getattr(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                      struct kv_result *out)
{
	int rv = kv_store_getattr(s, c->key, c->key_len, &out->attr);

	(void)index;
	out->has_attr = rv == KV_OK;
	out->exists = rv == KV_OK;
	return rv;
}

static int op_readdir(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                      struct kv_result *out)
{
	(void)index;
	return kv_store_readdir(s, c->key, c->key_len, out);
}

/* --- sessions ------------------------------------------------------------------------------- */

/* Session ids are entry indexes, which no client chooses: a fixed mix spreads them. */
static size_t session_bucket(const struct kv_store *s, uint64_t id)
{
	return mix64(id) & (s->n_sbuckets - 1);
}

int kv_store_size_sessions(struct kv_store *s, uint32_t max_sessions)
{
	struct kv_session **nb;
	size_t n = MIN_SESSION_BUCKETS;

	while (n < max_sessions)
		n *= 2;
	if (s->sbuckets && n == s->n_sbuckets)
		return KV_OK;
	nb = calloc(n, sizeof(*nb));
	if (!nb)
		return KV_ENOMEM;
	free(s->sbuckets);
	s->sbuckets = nb;
	s->n_sbuckets = n;
	for (struct kv_session *ss = s->lru_head; ss; ss = ss->lru_next) {
		size_t b = session_bucket(s, ss->id);
		ss->hnext = nb[b];
		nb[b] = ss;
	}
	return KV_OK;
}

struct kv_session *kv_session_find(const struct kv_store *s, uint64_t id)
{
	struct kv_session *ss = s->sbuckets[session_bucket(s, id)];

	while (ss && ss->id != id)
		ss = ss->hnext;
	return ss;
}

void kv_session_link(struct kv_store *s, struct kv_session *ss)
{
	size_t b = session_bucket(s, ss->id);

	ss->hnext = s->sbuckets[b];
	s->sbuckets[b] = ss;
	ss->lru_next = NULL;
	ss->lru_prev = s->lru_tail;
	if (s->lru_tail)
		s->lru_tail->lru_next = ss;
	else
		s->lru_head = ss;
	s->lru_tail = ss;
	s->n_sessions++;
}

static void lru_unlink(struct kv_store *s, struct kv_session *ss)
{
	if (ss->lru_prev)
		ss->lru_prev->lru_next = ss->lru_next;
	else
		s->lru_head = ss->lru_next;
	if (ss->lru_next)
		ss->lru_next->lru_prev = ss->lru_prev;
	else
		s->lru_tail = ss->lru_prev;
	ss->lru_prev = ss->lru_next = NULL;
}

static void session_remove(struct kv_store *s, struct kv_session *ss)
{
	struct kv_session **pp = &s->sbuckets[session_bucket(s, ss->id)];

	while (*pp != ss)
		pp = &(*pp)->hnext;
	*pp = ss->hnext;
	lru_unlink(s, ss);
	s->n_sessions--;
	free(ss);
}

/* Marks a use at the current log time: most recently used, so the list stays in last-use order. */
static void session_touch(struct kv_store *s, struct kv_session *ss)
{
	ss->last_used_ms = s->now_ms;
	if (s->lru_tail == ss)
		return;
	lru_unlink(s, ss);
	ss->lru_prev = s->lru_tail;
	s->lru_tail->lru_next = ss;
	s->lru_tail = ss;
}

static bool session_expired(const struct kv_store *s, const struct kv_session *ss)
{
	return s->now_ms - ss->last_used_ms >= s->set.session_timeout_ms;
}

/* Bounded work per entry: at most KV_SESSION_EXPIRE_BATCH removals; stragglers are caught on use. */
static void sessions_expire(struct kv_store *s)
{
	for (unsigned i = 0; i < KV_SESSION_EXPIRE_BATCH && s->lru_head; i++) {
		if (!session_expired(s, s->lru_head))
			break;
		session_remove(s, s->lru_head);
	}
}

static int op_open_session(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                           struct kv_result *out)
{
	struct kv_session *ss;

	(void)c;
	/* Evicting first and failing the allocation after is still safe to repeat: the repeat finds
	 * room and ends in the same state. */
	if (s->n_sessions >= s->set.max_sessions)
		session_remove(s, s->lru_head);
	ss = calloc(1, sizeof(*ss));
	if (!ss)
		return KV_ENOMEM;
	ss->id = index;
	ss->last_used_ms = s->now_ms;
	kv_session_link(s, ss);
	out->session = index;
	return KV_OK;
}

static struct kv_session *session_live(struct kv_store *s, uint64_t id)
{
	struct kv_session *ss = id ? kv_session_find(s, id) : NULL;

	if (ss && session_expired(s, ss)) {
		session_remove(s, ss);
		ss = NULL;
	}
	return ss;
}

static int op_close_session(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                            struct kv_result *out)
{
	struct kv_session *ss = session_live(s, c->session);

	(void)index;
	(void)out;
	if (!ss)
		return KV_ESESSION_EXPIRED;
	session_remove(s, ss);
	return KV_OK;
}

/* The cluster's settings, once (store.h). The table is resized first: failing there leaves the
 * store as it was, so the entry can be applied again. */
static int op_settings(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                       struct kv_result *out)
{
	(void)out;
	if (!kv_settings_valid(&c->settings))
		return KV_EINVAL;
	if (s->settings_index)
		return KV_EEXIST;
	if (kv_store_size_sessions(s, c->settings.max_sessions) != KV_OK)
		return KV_ENOMEM;
	s->set = c->settings;
	s->settings_index = index;
	while (s->n_sessions > s->set.max_sessions)
		session_remove(s, s->lru_head);
	return KV_OK;
}

static const op_fn op_fns[KV_OP_COUNT] = {
        [KV_OP_PUT] = op_put,
        [KV_OP_APPEND] = op_append,
        [KV_OP_GET] = op_get,
        [KV_OP_DELETE] = op_delete,
        [KV_OP_CREATE_EXCLUSIVE] = op_create_exclusive,
        [KV_OP_WRITE_AT] = op_write_at,
        [KV_OP_TRUNCATE] = op_truncate,
        [KV_OP_RENAME] = op_rename,
        [KV_OP_MKDIR] = op_mkdir,
        [KV_OP_RMDIR] = op_rmdir,
        [KV_OP_SETATTR] = op_setattr,
        [KV_OP_SYMLINK] = op_symlink,
        [KV_OP_READDIR] = op_readdir,
        [KV_OP_GETATTR] = op_getattr,
        [KV_OP_OPEN_SESSION] = op_open_session,
        [KV_OP_CLOSE_SESSION] = op_close_session,
        [KV_OP_READ] = op_read,
        [KV_OP_SETTINGS] = op_settings,
};

static int execute(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                   struct kv_result *out)
{
	int rv = op_fns[c->op](s, index, c, out);

	if (rv == KV_ENOMEM) {
		kv_result_release(out);
		return KV_ENOMEM;
	}
	out->op = c->op;
	out->status = rv;
	return KV_OK;
}

/* A request in a session: exactly once (see store.h). */
static int apply_in_session(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                            struct kv_result *out)
{
	struct kv_session *ss = session_live(s, c->session);
	size_t len;
	int rv;

	if (!ss) {
		out->status = KV_ESESSION_EXPIRED;
		return KV_OK;
	}
	if (c->seq == 0) {
		out->status = KV_EINVAL;
	} else if (c->seq < ss->last_seq) {
		out->status = KV_ESTALE;
	} else if (c->seq == ss->last_seq && ss->result_len) {
		rv = kv_result_decode(ss->result, ss->result_len, out);
		if (rv == KV_ENOMEM)
			return KV_ENOMEM;
		if (rv != KV_OK)
			out->status = KV_ECORRUPT; /* restore validates records: cannot happen */
		out->op = c->op;
		out->replayed = true;
	} else if (c->seq == ss->last_seq && !kv_op_is_read(c->op)) {
		/* the recorded request was a read: this is not its retry */
		out->status = KV_ESTALE;
	} else {
		rv = execute(s, index, c, out);
		if (rv != KV_OK)
			return rv;
		ss->last_seq = c->seq;
		ss->result_len = 0;
		if (!kv_op_is_read(c->op) &&
		    kv_result_encode_to(out, ss->result, sizeof(ss->result), &len) == KV_OK)
			ss->result_len = (uint8_t)len;
	}
	session_touch(s, ss);
	return KV_OK;
}

int kv_store_apply(struct kv_store *s, uint64_t index, const void *buf, size_t len,
                   struct kv_result *out)
{
	struct kv_cmd c;
	int rv;

	memset(out, 0, sizeof(*out));
	if (index <= s->applied_index)
		return KV_EINVAL;
	rv = kv_cmd_decode(buf, len, &c);
	if (rv != KV_OK) {
		out->status = rv;
		s->applied_index = index;
		return KV_OK;
	}
	out->op = c.op;
	/* The clock and expiry are idempotent, so doing them before a possible ENOMEM is safe. */
	if (c.time_ms > s->now_ms)
		s->now_ms = c.time_ms;
	sessions_expire(s);
	if (c.session && c.op != KV_OP_OPEN_SESSION && c.op != KV_OP_CLOSE_SESSION &&
	    c.op != KV_OP_SETTINGS)
		rv = apply_in_session(s, index, &c, out);
	else
		rv = execute(s, index, &c, out);
	if (rv != KV_OK)
		return rv;
	s->applied_index = index;
	return KV_OK;
}

/* --- reads ---------------------------------------------------------------------------------- */

int kv_store_read(const struct kv_store *s, const char *key, size_t len, uint64_t offset,
                  uint64_t count, void **value, size_t *value_len, bool *exists,
                  struct kv_attr *attr)
{
	struct walk w;
	struct kv_node *n;
	uint64_t size, take;
	int rv = walk(s, key, len, &w);

	*value = NULL;
	*value_len = 0;
	*exists = false;
	if (rv != KV_OK)
		return rv;
	n = w.node;
	if (!n)
		return KV_OK;
	if (kv_node_is_dir(n))
		return KV_EISDIR;
	size = n->u.file.size;
	take = offset < size ? size - offset : 0;
	if (take > count)
		take = count;
	if (take) {
		*value = raft_buf_alloc((size_t)take);
		if (!*value)
			return KV_ENOMEM;
		memcpy(*value, (const unsigned char *)n->u.file.data + offset, (size_t)take);
		*value_len = (size_t)take;
	}
	*exists = true;
	if (attr)
		node_attr(n, attr);
	return KV_OK;
}

int kv_store_get(const struct kv_store *s, const char *key, size_t len, void **value,
                 size_t *value_len, bool *exists, struct kv_attr *attr)
{
	return kv_store_read(s, key, len, 0, UINT64_MAX, value, value_len, exists, attr);
}

int kv_store_getattr(const struct kv_store *s, const char *key, size_t len, struct kv_attr *attr)
{
	struct walk w;
	int rv = find_existing(s, key, len, &w);

	if (rv == KV_OK)
		node_attr(w.node, attr);
	return rv;
}

bool kv_store_exists(const struct kv_store *s, const char *key, size_t len)
{
	struct walk w;

	return find_existing(s, key, len, &w) == KV_OK;
}

int kv_store_readdir(const struct kv_store *s, const char *key, size_t len, struct kv_result *out)
{
	struct kv_node **v;
	struct walk w;
	size_t n, names = 0;
	int rv = find_existing(s, key, len, &w);

	memset(out, 0, sizeof(*out));
	if (rv != KV_OK)
		return rv;
	if (!kv_node_is_dir(w.node))
		return KV_ENOTDIR;
	result_attr(out, w.node);
	out->exists = true;
	n = w.node->u.dir.n_children;
	if (n == 0)
		return KV_OK;
	v = kv_node_sorted_children(w.node);
	if (!v)
		return KV_ENOMEM;
	for (size_t i = 0; i < n; i++)
		names += v[i]->name_len;
	out->ents = calloc(n, sizeof(*out->ents));
	out->names = malloc(names);
	if (!out->ents || !out->names) {
		free(v);
		free(out->ents);
		free(out->names);
		out->ents = NULL;
		out->names = NULL;
		return KV_ENOMEM;
	}
	names = 0;
	for (size_t i = 0; i < n; i++) {
		struct kv_dirent *e = &out->ents[i];
		e->ino = v[i]->ino;
		e->mode = v[i]->mode;
		e->name_len = v[i]->name_len;
		memcpy(out->names + names, v[i]->name, e->name_len);
		e->name = out->names + names;
		names += e->name_len;
	}
	out->n_ents = n;
	free(v);
	return KV_OK;
}

/* --- the store ------------------------------------------------------------------------------ */

int kv_store_alloc(const struct kv_store_config *cfg, bool with_root, struct kv_store **out)
{
	struct kv_store_config def;
	struct kv_store *s;

	if (!cfg) {
		kv_store_config_default(&def);
		cfg = &def;
	}
	if (!kv_settings_valid(&cfg->settings))
		return KV_EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto err;
	s->set = cfg->settings;
	s->hash_key = cfg->hash_key;
	s->n_buckets = MIN_BUCKETS;
	s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
	if (!s->buckets)
		goto err_store;
	if (kv_store_size_sessions(s, cfg->settings.max_sessions) != KV_OK)
		goto err_buckets;
	s->next_ino = 2;
	if (with_root) {
		s->root = kv_node_new("", 0);
		if (!s->root)
			goto err_sbuckets;
		s->root->ino = 1;
		s->root->mode = KV_MODE_DIR | 0755u;
		s->n_nodes = 1;
	}
	*out = s;
	return KV_OK;
err_sbuckets:
	free(s->sbuckets);
err_buckets:
	free(s->buckets);
err_store:
	free(s);
err:
	return KV_ENOMEM;
}

int kv_store_new(const struct kv_store_config *cfg, struct kv_store **out)
{
	return kv_store_alloc(cfg, true, out);
}

void kv_store_free(struct kv_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_buckets; i++) {
		struct kv_node *n = s->buckets[i], *next;
		for (; n; n = next) {
			next = n->hnext;
			kv_node_free(n);
		}
	}
	kv_node_free(s->root);
	while (s->lru_head) {
		struct kv_session *ss = s->lru_head;
		s->lru_head = ss->lru_next;
		free(ss);
	}
	free(s->buckets);
	free(s->sbuckets);
	free(s);
}

uint64_t kv_store_applied_index(const struct kv_store *s)
{
	return s->applied_index;
}

uint64_t kv_store_settings(const struct kv_store *s, struct kv_settings *out)
{
	if (out)
		*out = s->set;
	return s->settings_index;
}

uint64_t kv_store_now_ms(const struct kv_store *s)
{
	return s->now_ms;
}

size_t kv_store_key_count(const struct kv_store *s)
{
	return s->n_nodes;
}

size_t kv_store_session_count(const struct kv_store *s)
{
	return s->n_sessions;
}

static uint64_t node_digest(const struct kv_node *n)
{
	unsigned char b[8 * 5 + 4 * 3];
	uint64_t size = kv_node_is_dir(n) ? 0 : n->u.file.size;
	uint64_t d;

	le_put(b, n->parent ? n->parent->ino : 0, 8);
	le_put(b + 8, n->ino, 8);
	le_put(b + 16, n->mtime_ns, 8);
	le_put(b + 24, n->ctime_ns, 8);
	le_put(b + 32, size, 8);
	le_put(b + 40, n->mode, 4);
	le_put(b + 44, n->uid, 4);
	le_put(b + 48, n->gid, 4);
	d = hash_bytes(0x6b76, b, sizeof(b));
	d = hash_bytes(d, n->name, n->name_len);
	if (size)
		d = hash_bytes(d, n->u.file.data, size);
	return d;
}

uint64_t kv_store_hash(const struct kv_store *s)
{
	unsigned char b[8 * 8];
	uint64_t sum = node_digest(s->root), h;

	/* A sum of per-key digests does not depend on the order keys were made in. */
	for (size_t i = 0; i < s->n_buckets; i++)
		for (const struct kv_node *n = s->buckets[i]; n; n = n->hnext)
			sum += node_digest(n);
	memset(b, 0, 32);
	/* the settings are state once the cluster's: a store's own are not (store.h) */
	if (s->settings_index) {
		le_put(b, s->settings_index, 8);
		le_put(b + 8, s->set.max_value_bytes, 8);
		le_put(b + 16, s->set.session_timeout_ms, 8);
		le_put(b + 24, s->set.max_sessions, 8);
	}
	le_put(b + 32, s->now_ms, 8);
	le_put(b + 40, s->next_ino, 8);
	le_put(b + 48, s->n_nodes, 8);
	le_put(b + 56, sum, 8);
	h = hash_bytes(0x73657373, b, sizeof(b));
	/* Sessions in LRU order: the order decides who is evicted next, so it is state. */
	for (const struct kv_session *ss = s->lru_head; ss; ss = ss->lru_next) {
		le_put(b, ss->id, 8);
		le_put(b + 8, ss->last_seq, 8);
		le_put(b + 16, ss->last_used_ms, 8);
		h = hash_bytes(h, b, 24);
		h = hash_bytes(h, ss->result, ss->result_len);
	}
	return h;
}
