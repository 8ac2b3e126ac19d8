/* snapshot.c - the kv store's snapshot stream: bounded, CRC-framed tpl records (see store.h). */
#include <stdlib.h>
#include <string.h>
#include <tpl.h>

#include "kv/store_internal.h"
#include "raft/crc32c.h"
#include "raft/le.h"
#include "raft/tplguard.h"

/*
 * How tpl is kept from exiting the process or leaking:
 *
 * - Every tpl call runs inside a section (snap_run, over raft/tplguard.h, shared with
 *   raft/codec.c): tpl's fatal hook returns to snap_run, which returns KV_ENOMEM (or
 *   KV_ECORRUPT), and everything tpl allocated in the section is freed when the section ends,
 *   normally or not; tpl_free is never called. What we keep is copied out first.
 * - A record is checked (magic, kind, length limit, CRC32C) before tpl_load sees it; tpl_load
 *   then checks the image's format string and lengths against the buffer; array counts are read
 *   with tpl_Alen and bounded; and every decoded field is validated before it enters the store.
 */

#define SNAP_MAGIC 0x3153564bu /* "KVS1" little-endian */
#define SNAP_VERSION 2u /* 1: no settings in the header (still loaded) */
#define SNAP_FRAME_BYTES 16u
#define SNAP_MIN_IMAGE_BYTES 9u
/* Room for a record's other keys beside its largest value (see KV_SNAPSHOT_RECORD_SOFT_BYTES). */
#define SNAP_RECORD_SLACK_BYTES (8u << 20)
/* A key is at most KV_MAX_KEY_BYTES, so at most this deep (one byte and a slash per level). */
#define SNAP_MAX_DEPTH (KV_MAX_KEY_BYTES / 2 + 1)

enum snap_kind { SNAP_HEADER = 1, SNAP_KEYS = 2, SNAP_SESSIONS = 3, SNAP_END = 4 };

#define FMT_HEADER "uUUUUUUu"
#define FMT_HEADER_V1 "uUUU"
#define FMT_KEYS "A(uUuuuUUBB)"
#define FMT_SESSIONS "A(UUUB)"
#define FMT_END "UU"

/* Per-record key overhead counted against KV_SNAPSHOT_RECORD_SOFT_BYTES. */
#define SNAP_KEY_OVERHEAD 48u

/* One section: lives in the frame of the caller of snap_run, so it is intact after a longjmp. */
struct snap_op {
	struct raft_tplguard guard;
	int (*body)(struct snap_op *op, void *arg); /* the record's work, run in the section */
	void *arg;
	unsigned char *img; /* encode: the image (ours, malloc); freed by the caller */
	size_t img_len;
};

static int op_body(void *arg)
{
	struct snap_op *op = arg;

	return op->body(op, op->arg);
}

/* Runs body(op, arg) as a section; a failed one leaves no image. */
static int snap_run(struct snap_op *op, int (*body)(struct snap_op *op, void *arg), void *arg)
{
	int rv;

	memset(op, 0, sizeof(*op));
	raft_tplguard_init(&op->guard, NULL, NULL);
	op->body = body;
	op->arg = arg;
	if (!raft_tplguard_run(&op->guard, op_body, op, &rv))
		rv = raft_tplguard_out_of_memory(&op->guard) ? KV_ENOMEM : KV_ECORRUPT;
	if (rv != KV_OK) {
		free(op->img);
		op->img = NULL;
	}
	return rv;
}

/* Serializes tn into op->img (a buffer of ours). */
static int dump_image(struct snap_op *op, tpl_node *tn)
{
	size_t sz = 0;

	if (tpl_dump(tn, TPL_GETSIZE, &sz) != 0 || sz == 0)
		return KV_ENOMEM;
	op->img = malloc(sz);
	if (!op->img)
		return KV_ENOMEM;
	if (tpl_dump(tn, TPL_MEM | TPL_PREALLOCD, op->img, sz) != 0)
		return KV_ENOMEM;
	op->img_len = sz;
	return KV_OK;
}

/* The CRC covers magic, kind and length as well as the image. */
static uint32_t frame_crc(const unsigned char *hdr, const void *img, size_t len)
{
	return raft_crc32c(raft_crc32c(0, hdr, 12), img, len);
}

/* --- save ----------------------------------------------------------------------------------- */

struct saver {
	const struct kv_store *s;
	kv_snapshot_write_fn write;
	void *ctx;
	const struct kv_node **keys; /* pending keys of the next record */
	uint32_t *depths;
	size_t n_keys;
	size_t bytes;
	const struct kv_session *sess_first; /* sessions record: first and count */
	size_t n_sess;
};

static int write_frame(struct saver *sv, enum snap_kind kind, const void *img, size_t len)
{
	unsigned char hdr[SNAP_FRAME_BYTES];

	raft_le_put32(hdr, SNAP_MAGIC);
	raft_le_put32(hdr + 4, kind);
	raft_le_put32(hdr + 8, (uint32_t)len);
	raft_le_put32(hdr + 12, frame_crc(hdr, img, len));
	if (sv->write(sv->ctx, hdr, sizeof(hdr)) != 0 || sv->write(sv->ctx, img, len) != 0)
		return KV_EIO;
	return KV_OK;
}

/* tpl reads B fields from addr even for 0 bytes: give it a valid one. */
static const unsigned char empty_bin[1];

static void bin_set(tpl_bin *b, const void *p, size_t len)
{
	b->addr = len ? (void *)p : (void *)empty_bin;
	b->sz = (uint32_t)len;
}

static int pack_header(struct snap_op *op, void *arg)
{
	const struct kv_store *s = ((struct saver *)arg)->s;
	uint32_t version = SNAP_VERSION, max_sessions = 0;
	uint64_t applied = s->applied_index, now = s->now_ms, next_ino = s->next_ino;
	uint64_t settings_index = s->settings_index, max_value = 0, timeout = 0;
	tpl_node *tn;

	/* a store's own settings are no part of its state: only the cluster's are saved */
	if (settings_index) {
		max_value = s->set.max_value_bytes;
		timeout = s->set.session_timeout_ms;
		max_sessions = s->set.max_sessions;
	}
	tn = tpl_map(FMT_HEADER, &version, &applied, &now, &next_ino, &settings_index, &max_value,
	             &timeout, &max_sessions);
	if (!tn || tpl_pack(tn, 0) != 0)
		return KV_ENOMEM;
	return dump_image(op, tn);
}

static int pack_keys(struct snap_op *op, void *arg)
{
	struct saver *sv = arg;
	uint32_t depth, mode, uid, gid;
	uint64_t ino, mtime, ctime;
	tpl_bin name, data;
	tpl_node *tn =
	        tpl_map(FMT_KEYS, &depth, &ino, &mode, &uid, &gid, &mtime, &ctime, &name, &data);

	if (!tn)
		return KV_ENOMEM;
	for (size_t i = 0; i < sv->n_keys; i++) {
		const struct kv_node *n = sv->keys[i];
		depth = sv->depths[i];
		ino = n->ino;
		mode = n->mode;
		uid = n->uid;
		gid = n->gid;
		mtime = n->mtime_ns;
		ctime = n->ctime_ns;
		bin_set(&name, n->name, n->name_len);
		if (kv_node_is_dir(n))
			bin_set(&data, NULL, 0);
		else
			bin_set(&data, n->u.file.data, n->u.file.size);
		if (tpl_pack(tn, 1) != 0)
			return KV_ENOMEM;
	}
	return dump_image(op, tn);
}

static int pack_sessions(struct snap_op *op, void *arg)
{
	struct saver *sv = arg;
	const struct kv_session *ss = sv->sess_first;
	uint64_t id, seq, used;
	tpl_bin result;
	tpl_node *tn = tpl_map(FMT_SESSIONS, &id, &seq, &used, &result);

	if (!tn)
		return KV_ENOMEM;
	for (size_t i = 0; i < sv->n_sess; i++, ss = ss->lru_next) {
		id = ss->id;
		seq = ss->last_seq;
		used = ss->last_used_ms;
		bin_set(&result, ss->result, ss->result_len);
		if (tpl_pack(tn, 1) != 0)
			return KV_ENOMEM;
	}
	return dump_image(op, tn);
}

static int pack_end(struct snap_op *op, void *arg)
{
	const struct kv_store *s = ((struct saver *)arg)->s;
	uint64_t n_keys = s->n_nodes, n_sess = s->n_sessions;
	tpl_node *tn = tpl_map(FMT_END, &n_keys, &n_sess);

	if (!tn || tpl_pack(tn, 0) != 0)
		return KV_ENOMEM;
	return dump_image(op, tn);
}

static int emit_record(struct saver *sv, enum snap_kind kind,
                       int (*pack)(struct snap_op *op, void *arg))
{
	struct snap_op op;
	int rv = snap_run(&op, pack, sv);

	if (rv != KV_OK)
		return rv;
	rv = write_frame(sv, kind, op.img, op.img_len);
	free(op.img);
	return rv;
}

static int flush_keys(struct saver *sv)
{
	int rv;

	if (sv->n_keys == 0)
		return KV_OK;
	rv = emit_record(sv, SNAP_KEYS, pack_keys);
	sv->n_keys = 0;
	sv->bytes = 0;
	return rv;
}

static int add_key(struct saver *sv, const struct kv_node *n, uint32_t depth)
{
	size_t bytes = SNAP_KEY_OVERHEAD + n->name_len + (kv_node_is_dir(n) ? 0 : n->u.file.size);
	int rv;

	if (sv->n_keys == KV_SNAPSHOT_RECORD_KEYS ||
	    (sv->n_keys && sv->bytes + bytes > KV_SNAPSHOT_RECORD_SOFT_BYTES)) {
		rv = flush_keys(sv);
		if (rv != KV_OK)
			return rv;
	}
	sv->keys[sv->n_keys] = n;
	sv->depths[sv->n_keys] = depth;
	sv->n_keys++;
	sv->bytes += bytes;
	return KV_OK;
}

struct dfs_frame {
	struct kv_node **kids;
	size_t n;
	size_t pos;
};

/* Depth-first, siblings by name: the order depends on the namespace only, and a parent always
 * comes before its children. */
static int save_keys(struct saver *sv)
{
	struct dfs_frame *st;
	size_t top = 0;
	int rv;

	st = calloc(SNAP_MAX_DEPTH + 1, sizeof(*st));
	if (!st)
		return KV_ENOMEM;
	rv = add_key(sv, sv->s->root, 0);
	if (rv == KV_OK && sv->s->root->u.dir.n_children) {
		st[0].kids = kv_node_sorted_children(sv->s->root);
		st[0].n = sv->s->root->u.dir.n_children;
		rv = st[0].kids ? KV_OK : KV_ENOMEM;
		top = 1;
	}
	while (rv == KV_OK && top) {
		struct dfs_frame *f = &st[top - 1];
		struct kv_node *n;

		if (f->pos == f->n) {
			free(f->kids);
			f->kids = NULL;
			top--;
			continue;
		}
		n = f->kids[f->pos++];
		rv = add_key(sv, n, (uint32_t)top);
		if (rv != KV_OK || !kv_node_is_dir(n) || !n->u.dir.n_children)
			continue;
		if (top > SNAP_MAX_DEPTH) {
			rv = KV_ECORRUPT; /* cannot happen: keys are bounded */
			break;
		}
		st[top].kids = kv_node_sorted_children(n);
		st[top].n = n->u.dir.n_children;
		st[top].pos = 0;
		rv = st[top].kids ? KV_OK : KV_ENOMEM;
		top++;
	}
	for (size_t i = 0; i <= SNAP_MAX_DEPTH; i++)
		free(st[i].kids);
	free(st);
	if (rv == KV_OK)
		rv = flush_keys(sv);
	return rv;
}

static int save_sessions(struct saver *sv)
{
	const struct kv_session *ss = sv->s->lru_head;
	int rv;

	while (ss) {
		sv->sess_first = ss;
		sv->n_sess = 0;
		while (ss && sv->n_sess < KV_SNAPSHOT_RECORD_SESSIONS) {
			sv->n_sess++;
			ss = ss->lru_next;
		}
		rv = emit_record(sv, SNAP_SESSIONS, pack_sessions);
		if (rv != KV_OK)
			return rv;
	}
	return KV_OK;
}

int kv_snapshot_save(const struct kv_store *s, kv_snapshot_write_fn write, void *ctx)
{
	struct saver sv = {.s = s, .write = write, .ctx = ctx};
	int rv;

	sv.keys = malloc(KV_SNAPSHOT_RECORD_KEYS * sizeof(*sv.keys));
	sv.depths = malloc(KV_SNAPSHOT_RECORD_KEYS * sizeof(*sv.depths));
	if (!sv.keys || !sv.depths) {
		rv = KV_ENOMEM;
		goto out;
	}
	rv = emit_record(&sv, SNAP_HEADER, pack_header);
	if (rv == KV_OK)
		rv = save_keys(&sv);
	if (rv == KV_OK)
		rv = save_sessions(&sv);
	if (rv == KV_OK)
		rv = emit_record(&sv, SNAP_END, pack_end);
out:
	free(sv.keys);
	free(sv.depths);
	return rv;
}

/* --- restore -------------------------------------------------------------------------------- */

struct loader {
	struct kv_store *s; /* being built; freed by kv_snapshot_restore on error */
	const unsigned char *img;
	size_t img_len;
	struct kv_node **stack; /* stack[d]: the directory at depth d on the current path */
	size_t *path_len; /* path_len[d]: bytes of its key */
	struct kv_node **last; /* last[d]: the previous sibling at depth d (names must ascend) */
	size_t depth; /* entries of stack in use */
	uint64_t n_keys;
	uint64_t n_sess;
	uint64_t end_keys; /* from the end record */
	uint64_t end_sess;
	int err; /* a validation error found inside a section */
	uint64_t *inos; /* of every key loaded, to find two that share one */
	size_t n_inos, cap_inos;
	uint64_t pos; /* bytes of the stream read so far */
	uint64_t rec_pos; /* where the record being loaded starts */
	const char *why; /* what is wrong with it, when loading failed */
};

static int load_image(tpl_node *tn, const struct loader *ld)
{
	return tpl_load(tn, TPL_MEM, (void *)ld->img, ld->img_len) == 0 ? KV_OK : KV_ECORRUPT;
}

/* The settings of a version 2 header: none (all 0), or the cluster's, valid and applied at or
 * before the snapshot's index. They replace the store's own; the session table follows. */
static int header_settings(struct loader *ld, uint64_t index, const struct kv_settings *st)
{
	struct kv_store *s = ld->s;

	if (index == 0)
		return st->max_value_bytes || st->session_timeout_ms || st->max_sessions
		        ? KV_ECORRUPT
		        : KV_OK;
	if (index > s->applied_index || !kv_settings_valid(st))
		return KV_ECORRUPT;
	if (kv_store_size_sessions(s, st->max_sessions) != KV_OK)
		return KV_ENOMEM;
	s->set = *st;
	s->settings_index = index;
	return KV_OK;
}

static int unpack_header(struct snap_op *op, void *arg)
{
	struct loader *ld = arg;
	uint32_t version = 0;
	uint64_t applied = 0, now = 0, next_ino = 0, settings_index = 0;
	struct kv_settings st = {0};
	bool v1;
	char *fmt;
	tpl_node *tn;

	(void)op;
	/* version 1 headers have no settings: their format string tells them apart (tpl_load
	 * refuses an image whose format is not the map's) */
	fmt = tpl_peek(TPL_MEM, (void *)ld->img, ld->img_len);
	if (!fmt)
		return KV_ECORRUPT;
	v1 = strcmp(fmt, FMT_HEADER_V1) == 0;
	if (v1)
		tn = tpl_map(FMT_HEADER_V1, &version, &applied, &now, &next_ino);
	else
		tn = tpl_map(FMT_HEADER, &version, &applied, &now, &next_ino, &settings_index,
		             &st.max_value_bytes, &st.session_timeout_ms, &st.max_sessions);
	if (!tn)
		return KV_ENOMEM;
	if (load_image(tn, ld) != KV_OK || tpl_unpack(tn, 0) < 0)
		return KV_ECORRUPT;
	if (version != (v1 ? 1u : SNAP_VERSION))
		return KV_EVERSION;
	if (next_ino < 2 || next_ino > KV_INO_LIMIT)
		return KV_ECORRUPT;
	ld->s->applied_index = applied;
	ld->s->now_ms = now;
	ld->s->next_ino = next_ino;
	if (v1)
		return KV_OK; /* the store keeps following the settings it was given */
	return header_settings(ld, settings_index, &st);
}

/* Compares a node's name with name bytewise, as kv_node_sorted_children() orders them. */
static int name_order(const struct kv_node *n, const void *name, size_t len)
{
	size_t min = n->name_len < len ? n->name_len : len;
	int c = memcmp(n->name, name, min);

	if (c)
		return c;
	return n->name_len < len ? -1 : n->name_len > len;
}

/* Everything a decoded key must satisfy before it joins the store. */
static int key_check(const struct loader *ld, uint32_t depth, uint64_t ino, uint32_t mode,
                     const tpl_bin *name, const tpl_bin *data)
{
	uint32_t type = mode & KV_MODE_TYPE;

	if (mode & ~(KV_MODE_TYPE | KV_MODE_PERM))
		return KV_ECORRUPT;
	if (type != KV_MODE_REG && type != KV_MODE_DIR && type != KV_MODE_LNK)
		return KV_ECORRUPT;
	if (depth == 0) {
		/* the root: first, once, a directory with ino 1 */
		if (ld->n_keys != 0 || type != KV_MODE_DIR || ino != 1 || name->sz || data->sz)
			return KV_ECORRUPT;
		return KV_OK;
	}
	if (ld->n_keys == 0 || depth > ld->depth || ino < 2 || ino >= ld->s->next_ino)
		return KV_ECORRUPT;
	if (!kv_name_valid(name->addr, name->sz))
		return KV_ECORRUPT;
	if (ld->path_len[depth - 1] + (depth > 1) + name->sz > KV_MAX_KEY_BYTES)
		return KV_ECORRUPT;
	if (type == KV_MODE_DIR && data->sz)
		return KV_ECORRUPT;
	if (type == KV_MODE_LNK &&
	    (data->sz == 0 || data->sz > KV_MAX_TARGET_BYTES || memchr(data->addr, '\0', data->sz)))
		return KV_ECORRUPT;
	/* not the settings' limit: values stored before the cluster's settings may pass it */
	if (type == KV_MODE_REG && data->sz > KV_VALUE_BYTES_LIMIT)
		return KV_EFBIG;
	/* Siblings in strictly ascending order: no duplicates, and one stream per state. */
	if (ld->last[depth] && name_order(ld->last[depth], name->addr, name->sz) >= 0)
		return KV_ECORRUPT;
	return KV_OK;
}

/* Adds one decoded key to the store. */
static int key_add(struct loader *ld, uint32_t depth, struct kv_node *n, const tpl_bin *data)
{
	if (!kv_node_is_dir(n) && data->sz) {
		n->u.file.data = malloc(data->sz);
		if (!n->u.file.data) {
			kv_node_free(n);
			return KV_ENOMEM;
		}
		memcpy(n->u.file.data, data->addr, data->sz);
		n->u.file.size = data->sz;
	}
	if (depth == 0) {
		ld->s->root = n;
		ld->s->n_nodes = 1;
		ld->path_len[0] = 0;
	} else {
		kv_node_link(ld->s, ld->stack[depth - 1], n);
		ld->path_len[depth] = ld->path_len[depth - 1] + (depth > 1) + n->name_len;
	}
	if (ld->n_inos == ld->cap_inos) {
		size_t cap = ld->cap_inos ? ld->cap_inos * 2 : 256;
		uint64_t *a = realloc(ld->inos, cap * sizeof(*a));
		if (!a)
			return KV_ENOMEM; /* n is linked: the store frees it */
		ld->inos = a;
		ld->cap_inos = cap;
	}
	ld->inos[ld->n_inos++] = n->ino;
	ld->depth = depth;
	ld->last[depth] = n;
	ld->last[depth + 1] = NULL; /* its children, if any, start a new sibling list */
	if (kv_node_is_dir(n))
		ld->stack[ld->depth++] = n;
	ld->n_keys++;
	return KV_OK;
}

static int unpack_keys(struct snap_op *op, void *arg)
{
	struct loader *ld = arg;
	uint32_t depth, mode, uid, gid;
	uint64_t ino, mtime, ctime;
	tpl_bin name, data;
	tpl_node *tn =
	        tpl_map(FMT_KEYS, &depth, &ino, &mode, &uid, &gid, &mtime, &ctime, &name, &data);
	int count, rv;

	(void)op;
	if (!tn)
		return KV_ENOMEM;
	if (load_image(tn, ld) != KV_OK)
		return KV_ECORRUPT;
	count = tpl_Alen(tn, 1);
	if (count <= 0 || (unsigned)count > KV_SNAPSHOT_RECORD_KEYS)
		return KV_ECORRUPT;
	for (int i = 0; i < count; i++) {
		struct kv_node *n;

		name.addr = data.addr = NULL;
		if (tpl_unpack(tn, 1) <= 0)
			return KV_ECORRUPT;
		rv = key_check(ld, depth, ino, mode, &name, &data);
		if (rv == KV_OK) {
			n = kv_node_new(name.addr, name.sz);
			rv = n ? KV_OK : KV_ENOMEM;
		}
		if (rv == KV_OK) {
			n->ino = ino;
			n->mode = mode;
			n->uid = uid;
			n->gid = gid;
			n->mtime_ns = mtime;
			n->ctime_ns = ctime;
			rv = key_add(ld, depth, n, &data);
		}
		raft_tplguard_free(name.addr);
		raft_tplguard_free(data.addr);
		if (rv != KV_OK)
			return rv;
	}
	return KV_OK;
}

static int session_check(const struct loader *ld, uint64_t id, uint64_t used, const tpl_bin *result)
{
	const struct kv_store *s = ld->s;
	struct kv_result r;
	int rv;

	if (id == 0 || id > s->applied_index || used > s->now_ms)
		return KV_ECORRUPT;
	if (s->lru_tail && used < s->lru_tail->last_used_ms)
		return KV_ECORRUPT; /* the list is in last-use order */
	/* the cluster's settings bound the count (a Settings entry evicts down to it); a store that
	 * follows its own may hold more than those allow (made by a node configured otherwise) */
	if (s->settings_index && s->n_sessions >= s->set.max_sessions)
		return KV_ECORRUPT;
	if (s->n_sessions >= KV_MAX_SESSIONS_LIMIT)
		return KV_EFBIG;
	if (kv_session_find(s, id))
		return KV_ECORRUPT;
	if (result->sz > KV_SESSION_RESULT_BYTES)
		return KV_ECORRUPT;
	if (result->sz) {
		rv = kv_result_decode(result->addr, result->sz, &r);
		kv_result_release(&r);
		if (rv != KV_OK)
			return rv == KV_ENOMEM ? KV_ENOMEM : KV_ECORRUPT;
	}
	return KV_OK;
}

static int unpack_sessions(struct snap_op *op, void *arg)
{
	struct loader *ld = arg;
	uint64_t id, seq, used;
	tpl_bin result;
	tpl_node *tn = tpl_map(FMT_SESSIONS, &id, &seq, &used, &result);
	int count, rv;

	(void)op;
	if (!tn)
		return KV_ENOMEM;
	if (load_image(tn, ld) != KV_OK)
		return KV_ECORRUPT;
	count = tpl_Alen(tn, 1);
	if (count <= 0 || (unsigned)count > KV_SNAPSHOT_RECORD_SESSIONS)
		return KV_ECORRUPT;
	for (int i = 0; i < count; i++) {
		struct kv_session *ss = NULL;

		result.addr = NULL;
		if (tpl_unpack(tn, 1) <= 0)
			return KV_ECORRUPT;
		rv = session_check(ld, id, used, &result);
		if (rv == KV_OK) {
			ss = calloc(1, sizeof(*ss));
			rv = ss ? KV_OK : KV_ENOMEM;
		}
		if (rv == KV_OK) {
			ss->id = id;
			ss->last_seq = seq;
			ss->last_used_ms = used;
			ss->result_len = (uint8_t)result.sz;
			if (result.sz)
				memcpy(ss->result, result.addr, result.sz);
			kv_session_link(ld->s, ss);
			ld->n_sess++;
		}
		raft_tplguard_free(result.addr);
		if (rv != KV_OK)
			return rv;
	}
	return KV_OK;
}

static int unpack_end(struct snap_op *op, void *arg)
{
	struct loader *ld = arg;
	tpl_node *tn = tpl_map(FMT_END, &ld->end_keys, &ld->end_sess);

	(void)op;
	if (!tn)
		return KV_ENOMEM;
	if (load_image(tn, ld) != KV_OK || tpl_unpack(tn, 0) < 0)
		return KV_ECORRUPT;
	return KV_OK;
}

/* Reads one frame: its kind and image (ours, malloc; the caller frees). On failure ld->why
 * says what was wrong. */
static int read_frame(struct loader *ld, kv_snapshot_read_fn read, void *ctx, size_t max_len,
                      uint32_t *kind, unsigned char **img, size_t *len)
{
	unsigned char hdr[SNAP_FRAME_BYTES];
	uint32_t n;

	*img = NULL;
	ld->why = "cut short";
	if (read(ctx, hdr, sizeof(hdr)) != 0)
		return KV_ECORRUPT;
	ld->pos += sizeof(hdr);
	*kind = raft_le_get32(hdr + 4);
	n = raft_le_get32(hdr + 8);
	if (raft_le_get32(hdr) != SNAP_MAGIC) {
		ld->why = "bad magic";
		return KV_ECORRUPT;
	}
	if (*kind < SNAP_HEADER || *kind > SNAP_END) {
		ld->why = "unknown record kind";
		return KV_ECORRUPT;
	}
	if (n < SNAP_MIN_IMAGE_BYTES || n > max_len) {
		ld->why = "record length out of bounds";
		return KV_ECORRUPT;
	}
	*img = malloc(n);
	if (!*img) {
		ld->why = "out of memory";
		return KV_ENOMEM;
	}
	ld->why = read(ctx, *img, n) != 0                            ? "cut short"
	        : frame_crc(hdr, *img, n) != raft_le_get32(hdr + 12) ? "checksum mismatch"
	                                                             : NULL;
	if (ld->why) {
		free(*img);
		*img = NULL;
		return KV_ECORRUPT;
	}
	ld->pos += n;
	*len = n;
	return KV_OK;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Which record may come after which: header, keys..., sessions..., end. */
static bool kind_allowed(uint32_t prev, uint32_t kind)
{
	switch (kind) {
	case SNAP_HEADER:
		return prev == 0;
	case SNAP_KEYS:
		return prev == SNAP_HEADER || prev == SNAP_KEYS;
	case SNAP_SESSIONS:
	case SNAP_END:
		return prev == SNAP_KEYS || prev == SNAP_SESSIONS;
	default:
		return false;
	}
}

static int (*const unpackers[])(struct snap_op *op, void *arg) = {
        [SNAP_HEADER] = unpack_header,
        [SNAP_KEYS] = unpack_keys,
        [SNAP_SESSIONS] = unpack_sessions,
        [SNAP_END] = unpack_end,
};

static int restore_records(struct loader *ld, kv_snapshot_read_fn read, void *ctx)
{
	size_t max_len = (size_t)KV_VALUE_BYTES_LIMIT + SNAP_RECORD_SLACK_BYTES;
	uint32_t prev = 0, kind = 0;
	struct snap_op op;
	unsigned char *img;
	int rv;

	while (prev != SNAP_END) {
		ld->rec_pos = ld->pos;
		rv = read_frame(ld, read, ctx, max_len, &kind, &img, &ld->img_len);
		if (rv != KV_OK)
			return rv;
		if (!kind_allowed(prev, kind)) {
			ld->why = "record out of order";
			free(img);
			return KV_ECORRUPT;
		}
		ld->img = img;
		rv = snap_run(&op, unpackers[kind], ld);
		free(img);
		ld->img = NULL;
		if (rv != KV_OK) {
			ld->why = rv == KV_EVERSION ? "unknown version"
			        : rv == KV_EFBIG    ? "over a configured limit"
			        : rv == KV_ENOMEM   ? "out of memory"
			                            : "bad record contents";
			return rv;
		}
		prev = kind;
	}
	if (ld->end_keys != ld->n_keys || ld->end_sess != ld->n_sess) {
		ld->why = "the end record's counts differ from the records'";
		return KV_ECORRUPT;
	}
	/* every key has its own inode number (the filesystem's inode, never reused) */
	qsort(ld->inos, ld->n_inos, sizeof(*ld->inos), cmp_u64);
	for (size_t i = 1; i < ld->n_inos; i++) {
		if (ld->inos[i] == ld->inos[i - 1]) {
			ld->why = "two keys share an inode number";
			return KV_ECORRUPT;
		}
	}
	return KV_OK;
}

int kv_snapshot_restore(const struct kv_store_config *cfg, kv_snapshot_read_fn read, void *ctx,
                        struct kv_store **out)
{
	return kv_snapshot_load(cfg, read, ctx, out, NULL);
}

int kv_snapshot_load(const struct kv_store_config *cfg, kv_snapshot_read_fn read, void *ctx,
                     struct kv_store **out, struct kv_snapshot_failure *failure)
{
	struct loader ld;
	int rv;

	memset(&ld, 0, sizeof(ld));
	ld.why = "out of memory";
	rv = kv_store_alloc(cfg, false, &ld.s);
	if (rv != KV_OK) {
		if (failure)
			*failure = (struct kv_snapshot_failure){
			        0, rv == KV_EINVAL ? "bad configuration" : ld.why};
		return rv;
	}
	ld.stack = calloc(SNAP_MAX_DEPTH + 1, sizeof(*ld.stack));
	ld.path_len = calloc(SNAP_MAX_DEPTH + 1, sizeof(*ld.path_len));
	ld.last = calloc(SNAP_MAX_DEPTH + 2, sizeof(*ld.last));
	if (!ld.stack || !ld.path_len || !ld.last) {
		rv = KV_ENOMEM;
		goto out;
	}
	rv = restore_records(&ld, read, ctx);
out:
	free(ld.stack);
	free(ld.path_len);
	free(ld.last);
	free(ld.inos);
	if (rv != KV_OK) {
		if (failure)
			*failure = (struct kv_snapshot_failure){ld.rec_pos, ld.why};
		kv_store_free(ld.s);
		return rv;
	}
	*out = ld.s;
	return KV_OK;
}
