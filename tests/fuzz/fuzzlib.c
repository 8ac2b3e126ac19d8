/* fuzzlib.c - the fuzz targets' shared pieces: CRC fixing, files on a memory disk, node loading. */
#include "tests/fuzz/fuzzlib.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/codec.h"
#include "raft/crc32c.h"
#include "raft/le.h"
#include "kv/proto.h"
#include "kv/store_internal.h"
#include "raft/storage.h"

void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

size_t fuzz_fix_codec_frames(uint8_t *data, size_t size)
{
	size_t off = 0, need;

	while (size - off >= RAFT_CODEC_HEADER_BYTES &&
	       raft_codec_frame_length(data + off, size - off, &need) == RAFT_OK &&
	       need <= size - off) {
		uint8_t *f = data + off;
		uint32_t crc = raft_crc32c(0, f, 4);

		crc = raft_crc32c(crc, f + RAFT_CODEC_HEADER_BYTES, need - RAFT_CODEC_HEADER_BYTES);
		raft_le_put32(f + 4, crc);
		off += need;
	}
	return off;
}

void fuzz_fix_codec_frames_after_layout(uint8_t *data, size_t size)
{
	if (size > 1)
		fuzz_fix_codec_frames(data + 1, size - 1);
}

size_t fuzz_fix_proto_frames(uint8_t *data, size_t size)
{
	size_t off = 0;

	while (size - off >= KV_PROTO_HEADER_BYTES) {
		uint32_t len = raft_le_get32(data + off);
		if (len < 4 || len > size - off - 4)
			break;
		raft_le_put32(data + off + 4, raft_crc32c(0, data + off + 8, len - 4));
		off += 4 + (size_t)len;
	}
	return off;
}

/* --- files ------------------------------------------------------------------------------------ */

static void path_of(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", FUZZ_DIR, name);
}

int fuzz_write_file(struct raft_vfs *vfs, const char *name, const void *buf, size_t len)
{
	char path[256];
	struct raft_vfs_file *f;
	int err = vfs->mkdir(vfs, FUZZ_DIR, 0700);

	if (err && err != EEXIST)
		return err;
	path_of(path, sizeof(path), name);
	err = vfs->open(vfs, path, RAFT_VFS_WRITE | RAFT_VFS_CREATE | RAFT_VFS_TRUNC, &f);
	if (err)
		return err;
	if (len)
		err = vfs->pwrite(vfs, f, buf, len, 0);
	if (!err)
		err = vfs->fsync(vfs, f);
	vfs->close(vfs, f);
	if (!err)
		err = vfs->sync_dir(vfs, FUZZ_DIR);
	return err;
}

int fuzz_read_file(struct raft_vfs *vfs, const char *name, unsigned char **buf, size_t *len)
{
	char path[256];
	struct raft_vfs_file *f;
	uint64_t size;
	size_t got = 0;
	int err;

	*buf = NULL;
	*len = 0;
	path_of(path, sizeof(path), name);
	err = vfs->open(vfs, path, RAFT_VFS_READ, &f);
	if (err)
		return err;
	err = vfs->size(vfs, f, &size);
	if (!err && !(*buf = malloc(size ? (size_t)size : 1)))
		err = ENOMEM;
	if (!err)
		err = vfs->pread(vfs, f, *buf, (size_t)size, 0, &got);
	if (!err && got != size)
		err = EIO;
	vfs->close(vfs, f);
	if (err) {
		free(*buf);
		*buf = NULL;
		return err;
	}
	*len = got;
	return 0;
}

/* --- a node ----------------------------------------------------------------------------------- */

/* Randomness of a node: a fixed sequence, so that a run replays exactly. */
static uint64_t env_random(void *ctx)
{
	struct fuzz_node *fn = ctx;
	uint64_t z = (fn->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t env_now_ms(void *ctx)
{
	return ((struct fuzz_node *)ctx)->now_ms;
}

static void env_send(void *ctx, const struct raft_msg *m)
{
	(void)ctx;
	fuzz_fail("a one-node cluster sent %s to node %u", raft_msg_type_name(m->type),
	          (unsigned)m->to);
}

/* The wall clock: a fixed start carried on by the node's clock, so that a run replays exactly. */
static uint64_t env_realtime_ms(void *ctx)
{
	return FUZZ_WALL_CLOCK_MS + ((struct fuzz_node *)ctx)->now_ms;
}

static bool env_send_app(void *ctx, uint32_t to, const void *buf, size_t len)
{
	struct fuzz_node *fn = ctx;

	FUZZ_CHECK(fn->on_app != NULL, "a one-node cluster sent a %zu-byte frame to node %u", len,
	           (unsigned)to);
	fn->on_app(fn->app_ctx, to, buf, len);
	return true;
}

static void env_log(void *ctx, int level, const char *msg)
{
	struct fuzz_node *fn = ctx;

	if (fn->verbose || level >= 3)
		fprintf(stderr, "node: %s\n", msg);
}

static void storage_log(void *ctx, int level, const char *msg)
{
	struct fuzz_node *fn = ctx;

	if (fn->verbose)
		fprintf(stderr, "storage (%d): %s\n", level, msg);
}

static void storage_quiet(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "storage (%d): %s\n", level, msg);
}

void fuzz_node_config(struct kv_node_config *cfg, struct raft_vfs *vfs)
{
	kv_node_config_default(cfg);
	cfg->id = FUZZ_NODE_ID;
	cfg->conf.n = 1;
	cfg->conf.ids[0] = FUZZ_NODE_ID;
	cfg->dir = FUZZ_DIR;
	cfg->storage.vfs = vfs;
}

int fuzz_node_open(struct fuzz_node *fn, const struct kv_node_config *cfg, char *err,
                   size_t err_len)
{
	struct kv_node_env env = {
	        .ctx = fn,
	        .random = env_random,
	        .now_ms = env_now_ms,
	        .realtime_ms = env_realtime_ms,
	        .send = env_send,
	        .send_app = env_send_app,
	        .log = env_log,
	};
	struct kv_node_config c = *cfg;

	fn->rng = 42;
	fn->now_ms = 1;
	fn->verbose = getenv("FUZZ_VERBOSE") != NULL;
	c.storage.log = storage_log;
	c.storage.log_ctx = fn;
	return kv_node_open(&c, &env, &fn->n, err, err_len);
}

bool fuzz_node_settle(struct fuzz_node *fn, unsigned ticks)
{
	struct kv_proto_node_status st;
	const char *why;

	for (unsigned t = 0;; t++) {
		kv_node_status(fn->n, &st);
		if (kv_node_failed(fn->n, &why)) {
			if (fn->settings_may_differ && fuzz_is_settings_refusal(why)) {
				fn->refused_settings = true;
				return false;
			}
			fuzz_fail("the node stopped: %s", why);
		}
		if (st.role == RAFT_LEADER && st.applied == st.last_index)
			return true;
		if (t == ticks)
			return false;
		kv_node_tick(fn->n);
		fn->now_ms += 50;
	}
}

/* What a node left on its disk must be a log Raft can have: the storage recovers it, and its
 * terms rise from the snapshot's on, none above the hard state's term. */
static void check_disk_log(struct raft_vfs *vfs)
{
	struct raft_storage_options o = {.vfs = vfs, .log = storage_quiet};
	struct raft_storage *st;
	struct raft_restore rs;
	uint64_t prev;

	FUZZ_CHECK(raft_storage_new(&o, &st) == RAFT_OK, "raft_storage_new");
	FUZZ_CHECK(raft_storage_open(st, FUZZ_DIR, &rs) == RAFT_OK,
	           "what a node left on its disk does not open again: %s", raft_storage_errmsg(st));
	prev = rs.snap.term;
	FUZZ_CHECK(rs.snap.term <= rs.hs.term, "snapshot of term %llu, hard state of term %llu",
	           (unsigned long long)rs.snap.term, (unsigned long long)rs.hs.term);
	for (size_t i = 0; i < rs.n_entries; i++) {
		const struct raft_entry *e = &rs.entries[i];
		FUZZ_CHECK(e->index == rs.snap.index + 1 + i, "entry %llu after snapshot %llu",
		           (unsigned long long)e->index, (unsigned long long)rs.snap.index);
		FUZZ_CHECK(e->term >= prev && e->term <= rs.hs.term,
		           "the node left entry %llu of term %llu after term %llu (its term %llu)",
		           (unsigned long long)e->index, (unsigned long long)e->term,
		           (unsigned long long)prev, (unsigned long long)rs.hs.term);
		prev = e->term;
	}
	raft_storage_restore_free(&rs);
	raft_storage_free(st);
}

bool fuzz_is_settings_refusal(const char *msg)
{
	static const char prefix[] = "refusing to join the cluster: ";

	return strncmp(msg, prefix, sizeof(prefix) - 1) == 0 && msg[sizeof(prefix) - 1] != '\0';
}

bool fuzz_msg_names_file_and_offset(const char *msg)
{
	static const char *const files[] = {"metadata1", "metadata2", "wal-", "snapshot-"};
	const char *p;
	bool named = false;

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		named = named || strstr(msg, files[i]) != NULL;
	for (p = strstr(msg, "byte "); p; p = strstr(p + 1, "byte "))
		if (p[5] >= '0' && p[5] <= '9')
			return named;
	return false;
}

int fuzz_node_load(struct raft_vfs *vfs, char *err, size_t err_len)
{
	struct fuzz_node fn = {.settings_may_differ = true};
	struct kv_proto_node_status st;
	struct kv_node_config cfg;
	const char *why;

	fuzz_node_config(&cfg, vfs);
	if (fuzz_node_open(&fn, &cfg, err, err_len) != 0) {
		FUZZ_CHECK(fuzz_msg_names_file_and_offset(err) || fuzz_is_settings_refusal(err),
		           "refused without naming the file and offset: \"%s\"", err);
		return -1;
	}
	if (!fuzz_node_settle(&fn, FUZZ_ELECTION_TICKS)) {
		if (fn.refused_settings) {
			/* the log holds the cluster's settings, and they are not this node's */
			kv_node_failed(fn.n, &why);
			snprintf(err, err_len, "%s", why);
			kv_node_close(fn.n);
			return -1;
		}
		kv_node_status(fn.n, &st);
		if (st.term == RAFT_MAX_TERM && st.role != RAFT_LEADER) {
			/* loaded, at the last term: a node there does not campaign (raft.h) */
			fuzz_check_store(kv_node_store(fn.n));
			kv_node_close(fn.n);
			check_disk_log(vfs);
			return 0;
		}
		fuzz_fail("a loaded one-node cluster did not elect itself and apply its log in %u "
		          "ticks (%s, term %llu, applied %llu of %llu)",
		          FUZZ_ELECTION_TICKS, raft_role_name((enum raft_role)st.role),
		          (unsigned long long)st.term, (unsigned long long)st.applied,
		          (unsigned long long)st.last_index);
	}
	fuzz_check_store(kv_node_store(fn.n));
	kv_node_close(fn.n);
	check_disk_log(vfs);
	return 0;
}

/* --- the history of the storage targets' disks ---------------------------------------------- */

void fuzz_history_cmd(unsigned k, uint64_t session_id, struct kv_cmd *c)
{
	static const struct {
		uint8_t op;
		const char *key, *key2, *data;
		uint64_t offset;
		uint32_t flags;
		bool in_session;
	} h[FUZZ_HISTORY_CMDS] = {
	        {KV_OP_PUT, "a", NULL, "hello", 0, 0, false},
	        {KV_OP_APPEND, "a", NULL, " world", 0, 0, false},
	        {KV_OP_MKDIR, "d", NULL, NULL, 0, 0, false},
	        {KV_OP_PUT, "d/f", NULL, "x", 0, 0, false},
	        {KV_OP_SYMLINK, "d/l", NULL, "../a", 0, 0, false},
	        {KV_OP_WRITE_AT, "d/f", NULL, "yz", 3, 0, false},
	        {KV_OP_TRUNCATE, "d/f", NULL, NULL, 2, 0, false},
	        {KV_OP_SETATTR, "a", NULL, NULL, 0, KV_ATTR_MODE | KV_ATTR_MTIME, false},
	        {KV_OP_OPEN_SESSION, NULL, NULL, NULL, 0, 0, false},
	        {KV_OP_RENAME, "d/f", "g", NULL, 0, 0, true},
	        {KV_OP_CREATE_EXCLUSIVE, "e", NULL, "new", 0, 0, true},
	        {KV_OP_DELETE, "e", NULL, NULL, 0, 0, true},
	        {KV_OP_MKDIR, "r", NULL, NULL, 0, 0, false},
	        {KV_OP_RMDIR, "r", NULL, NULL, 0, 0, false},
	        {KV_OP_RENAME, "d", "dd", NULL, 0, KV_RENAME_NOREPLACE, false},
	        {KV_OP_CLOSE_SESSION, NULL, NULL, NULL, 0, 0, true},
	};
	unsigned i = k % FUZZ_HISTORY_CMDS;

	memset(c, 0, sizeof(*c));
	c->op = h[i].op;
	c->time_ms = 1700000000000ull + 1000ull * k;
	c->uid = 1000;
	c->gid = 100;
	c->mode = 0644;
	c->key = h[i].key;
	c->key_len = h[i].key ? strlen(h[i].key) : 0;
	c->key2 = h[i].key2;
	c->key2_len = h[i].key2 ? strlen(h[i].key2) : 0;
	c->data = h[i].data;
	c->data_len = h[i].data ? strlen(h[i].data) : 0;
	c->offset = h[i].offset;
	c->flags = h[i].flags;
	c->attr.mode = 0600;
	c->attr.mtime_ns = 1700000000123456789ull;
	if (h[i].in_session && session_id) {
		c->session = session_id;
		c->seq = k; /* ascending within the session */
	}
}

struct build {
	bool done;
	int status;
	struct kv_result result;
};

static void build_done(struct kv_req *req)
{
	struct build *b = req->data;

	b->done = true;
	b->status = req->status;
	b->result = req->result;
	memset(&req->result, 0, sizeof(req->result));
}

/* Opens the node of vfs with snapshot_bytes, applies history commands [from, to), closes it. */
static int build_phase(struct raft_vfs *vfs, uint64_t snapshot_bytes, unsigned from, unsigned to,
                       uint64_t *session_id)
{
	struct build b = {0};
	struct fuzz_node fn = {0};
	struct kv_node_config cfg;
	char err[256];
	int rv = -1;

	fuzz_node_config(&cfg, vfs);
	cfg.storage.segment_max_bytes = RAFT_STORAGE_MIN_SEGMENT_BYTES;
	cfg.storage.prealloc_bytes = RAFT_STORAGE_PREALLOC_OFF;
	cfg.snapshot_bytes = snapshot_bytes;
	cfg.snapshot_trailing = 0;
	if (fuzz_node_open(&fn, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_build_disk: %s\n", err);
		return -1;
	}
	if (!fuzz_node_settle(&fn, FUZZ_ELECTION_TICKS)) {
		fprintf(stderr, "fuzz_build_disk: no leader\n");
		goto out;
	}
	for (unsigned k = from; k < to; k++) {
		struct kv_req req = {.data = &b, .cb = build_done, .timeout_ms = 1000};
		struct kv_cmd c;
		size_t len;

		fuzz_history_cmd(k, *session_id, &c);
		if (kv_cmd_encode(&c, &req.cmd, &len) != KV_OK) {
			fprintf(stderr, "fuzz_build_disk: command %u does not encode\n", k);
			goto out;
		}
		req.cmd_len = len;
		b.done = false;
		if (kv_node_submit(fn.n, &req) != 0) {
			raft_buf_unref(req.cmd);
			fprintf(stderr, "fuzz_build_disk: command %u refused\n", k);
			goto out;
		}
		for (unsigned t = 0; t < FUZZ_ELECTION_TICKS && !b.done; t++) {
			kv_node_tick(fn.n);
			fn.now_ms += 50;
		}
		raft_buf_unref(req.cmd);
		if (!b.done || b.status != KV_STATUS_OK || b.result.status != KV_OK) {
			fprintf(stderr, "fuzz_build_disk: command %u (%s): %s, %s\n", k,
			        kv_op_name(c.op), b.done ? kv_status_name(b.status) : "no answer",
			        kv_strerror(b.result.status));
			kv_result_release(&b.result);
			goto out;
		}
		if (c.op == KV_OP_OPEN_SESSION)
			*session_id = b.result.session;
		kv_result_release(&b.result);
	}
	rv = fuzz_node_settle(&fn, FUZZ_ELECTION_TICKS) ? 0 : -1;
out:
	kv_node_close(fn.n);
	return rv;
}

int fuzz_build_disk(struct raft_vfs *vfs, bool snapshot)
{
	uint64_t session_id = 0;

	if (!snapshot)
		return build_phase(vfs, UINT64_MAX, 0, FUZZ_HISTORY_CMDS, &session_id);
	/* the snapshot: a node whose every entry crosses snapshot_bytes takes it at once */
	if (build_phase(vfs, UINT64_MAX, 0, FUZZ_SNAPSHOT_AFTER - 1, &session_id) != 0 ||
	    build_phase(vfs, 1, FUZZ_SNAPSHOT_AFTER - 1, FUZZ_SNAPSHOT_AFTER, &session_id) != 0 ||
	    build_phase(vfs, UINT64_MAX, FUZZ_SNAPSHOT_AFTER, FUZZ_HISTORY_CMDS, &session_id) != 0)
		return -1;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int fuzz_list(struct raft_vfs *vfs, const char *prefix, char ***names, size_t *n)
{
	char **all;
	size_t n_all, k = 0;
	int err = vfs->readdir(vfs, FUZZ_DIR, &all, &n_all);

	if (err)
		return err;
	for (size_t i = 0; i < n_all; i++) {
		if (strncmp(all[i], prefix, strlen(prefix)) == 0)
			all[k++] = all[i];
		else
			free(all[i]);
	}
	qsort(all, k, sizeof(*all), cmp_names);
	*names = all;
	*n = k;
	return 0;
}

/* --- template disks ------------------------------------------------------------------------- */

static struct fuzz_disk *disk_load(bool snapshot)
{
	struct raft_vfs *vfs = raft_vfs_mem_new();
	struct fuzz_disk *d = calloc(1, sizeof(*d));

	if (!vfs || !d || fuzz_build_disk(vfs, snapshot) != 0 ||
	    fuzz_list(vfs, "", &d->names, &d->n) != 0)
		fuzz_fail("cannot build the template disk");
	d->bufs = calloc(d->n ? d->n : 1, sizeof(*d->bufs));
	d->lens = calloc(d->n ? d->n : 1, sizeof(*d->lens));
	if (!d->bufs || !d->lens)
		fuzz_fail("out of memory");
	for (size_t i = 0; i < d->n; i++)
		if (fuzz_read_file(vfs, d->names[i], &d->bufs[i], &d->lens[i]) != 0)
			fuzz_fail("cannot read %s of the template disk", d->names[i]);
	raft_vfs_free(vfs);
	return d;
}

const struct fuzz_disk *fuzz_disk_template(bool snapshot)
{
	static struct fuzz_disk *disks[2];

	if (!disks[snapshot])
		disks[snapshot] = disk_load(snapshot);
	return disks[snapshot];
}

int fuzz_disk_pick(const struct fuzz_disk *d, const char *prefix, unsigned k)
{
	unsigned count = 0;

	for (size_t i = 0; i < d->n; i++)
		count += strncmp(d->names[i], prefix, strlen(prefix)) == 0;
	if (count == 0)
		return -1;
	k %= count;
	for (size_t i = 0; i < d->n; i++)
		if (strncmp(d->names[i], prefix, strlen(prefix)) == 0 && k-- == 0)
			return (int)i;
	return -1;
}

struct raft_vfs *fuzz_disk_vfs(const struct fuzz_disk *d, int replace, const void *buf, size_t len)
{
	struct raft_vfs *vfs = raft_vfs_mem_new();

	if (!vfs || vfs->mkdir(vfs, FUZZ_DIR, 0700) != 0)
		fuzz_fail("out of memory");
	for (size_t i = 0; i < d->n; i++) {
		int err;
		if ((int)i == replace && !buf)
			continue;
		if ((int)i == replace)
			err = fuzz_write_file(vfs, d->names[i], buf, len);
		else
			err = fuzz_write_file(vfs, d->names[i], d->bufs[i], d->lens[i]);
		if (err)
			fuzz_fail("cannot write %s: %s", d->names[i], strerror(err));
	}
	return vfs;
}

/* --- the store's structure ------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct walk {
	const struct kv_store *s;
	uint64_t *inos;
	size_t n;
};

static void walk_node(struct walk *w, const struct kv_node *n, size_t key_len, unsigned depth)
{
	const struct kv_store *s = w->s;
	uint32_t type = n->mode & KV_MODE_TYPE, children = 0, subdirs = 0;

	FUZZ_CHECK(w->n < s->n_nodes, "more keys reachable than the store counts (%zu)",
	           s->n_nodes);
	FUZZ_CHECK(type == KV_MODE_DIR || type == KV_MODE_REG || type == KV_MODE_LNK,
	           "key ino %llu has mode %o", (unsigned long long)n->ino, n->mode);
	FUZZ_CHECK((n->mode & ~(KV_MODE_TYPE | KV_MODE_PERM)) == 0, "key ino %llu has mode %o",
	           (unsigned long long)n->ino, n->mode);
	FUZZ_CHECK(n->ino >= 1 && n->ino < s->next_ino, "ino %llu, counter at %llu",
	           (unsigned long long)n->ino, (unsigned long long)s->next_ino);
	FUZZ_CHECK(key_len <= KV_MAX_KEY_BYTES, "a key of %zu bytes", key_len);
	w->inos[w->n++] = n->ino;
	if (n != s->root) {
		FUZZ_CHECK(kv_name_valid(n->name, n->name_len), "ino %llu has an invalid name",
		           (unsigned long long)n->ino);
		FUZZ_CHECK(kv_node_find(s, n->parent, n->name, n->name_len) == n,
		           "ino %llu is not found under its parent", (unsigned long long)n->ino);
	}
	if (type != KV_MODE_DIR) {
		/* a value stored before a Settings entry lowered max_value_bytes stays (store.h) */
		FUZZ_CHECK(n->u.file.size <= KV_VALUE_BYTES_LIMIT &&
		                   (n->u.file.size == 0) == (n->u.file.data == NULL),
		           "ino %llu holds %u bytes", (unsigned long long)n->ino, n->u.file.size);
		FUZZ_CHECK(type != KV_MODE_LNK ||
		                   (n->u.file.size > 0 && n->u.file.size <= KV_MAX_TARGET_BYTES),
		           "symlink ino %llu has a %u-byte target", (unsigned long long)n->ino,
		           n->u.file.size);
		return;
	}
	FUZZ_CHECK(depth <= KV_MAX_KEY_BYTES / 2 + 1, "a directory %u deep", depth);
	for (const struct kv_node *c = n->u.dir.first; c; c = c->sib_next) {
		FUZZ_CHECK(c->parent == n, "ino %llu is listed under another parent",
		           (unsigned long long)c->ino);
		FUZZ_CHECK(c->sib_next == NULL || c->sib_next->sib_prev == c,
		           "broken sibling list under ino %llu", (unsigned long long)n->ino);
		children++;
		subdirs += kv_node_is_dir(c);
		walk_node(w, c, key_len + (n == s->root ? 0 : 1) + c->name_len, depth + 1);
	}
	FUZZ_CHECK(children == n->u.dir.n_children && subdirs == n->u.dir.n_subdirs,
	           "directory ino %llu counts %u children, %u subdirectories; holds %u, %u",
	           (unsigned long long)n->ino, n->u.dir.n_children, n->u.dir.n_subdirs, children,
	           subdirs);
}

void fuzz_check_store(const struct kv_store *s)
{
	struct walk w = {.s = s};
	size_t n_sess = 0;
	const struct kv_session *prev = NULL;

	FUZZ_CHECK(s->root && s->root->ino == 1 && kv_node_is_dir(s->root) && !s->root->parent,
	           "the root is not directory ino 1");
	w.inos = malloc(s->n_nodes * sizeof(*w.inos));
	FUZZ_CHECK(w.inos != NULL, "out of memory");
	walk_node(&w, s->root, 0, 0);
	FUZZ_CHECK(w.n == s->n_nodes, "%zu keys reachable, the store counts %zu", w.n, s->n_nodes);
	qsort(w.inos, w.n, sizeof(*w.inos), cmp_u64);
	for (size_t i = 1; i < w.n; i++)
		FUZZ_CHECK(w.inos[i] != w.inos[i - 1], "ino %llu is used twice",
		           (unsigned long long)w.inos[i]);
	free(w.inos);
	for (const struct kv_session *ss = s->lru_head; ss; ss = ss->lru_next) {
		struct kv_result r;
		FUZZ_CHECK(ss->lru_prev == prev, "broken session list");
		FUZZ_CHECK(!prev || prev->last_used_ms <= ss->last_used_ms,
		           "the session list is not in last-use order");
		FUZZ_CHECK(ss->last_used_ms <= s->now_ms, "session %llu used after the clock",
		           (unsigned long long)ss->id);
		FUZZ_CHECK(kv_session_find(s, ss->id) == ss, "session %llu is not found",
		           (unsigned long long)ss->id);
		FUZZ_CHECK(ss->id != 0 && ss->id <= s->applied_index,
		           "session id %llu, applied index %llu", (unsigned long long)ss->id,
		           (unsigned long long)s->applied_index);
		if (ss->result_len) {
			FUZZ_CHECK(ss->result_len <= KV_SESSION_RESULT_BYTES &&
			                   kv_result_decode(ss->result, ss->result_len, &r) ==
			                           KV_OK,
			           "session %llu keeps an undecodable result",
			           (unsigned long long)ss->id);
			kv_result_release(&r);
		}
		prev = ss;
		n_sess++;
	}
	FUZZ_CHECK(prev == s->lru_tail, "broken session list tail");
	FUZZ_CHECK(n_sess == s->n_sessions && n_sess <= s->set.max_sessions,
	           "%zu sessions listed, %zu counted, at most %u", n_sess, s->n_sessions,
	           s->set.max_sessions);
	FUZZ_CHECK(kv_settings_valid(&s->set) && s->settings_index <= s->applied_index,
	           "settings in force from entry %llu, applied to %llu",
	           (unsigned long long)s->settings_index, (unsigned long long)s->applied_index);
}
