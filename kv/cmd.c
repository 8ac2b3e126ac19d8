/* cmd.c - bounds-checked little-endian codec of kv commands and results, and the error table. */
#include <stdlib.h>
#include <string.h>

#include "kv/cmd.h"
#include "raft/raft.h"

static const char *const err_names[KV_ERR_COUNT] = {
        [KV_OK] = "success",
        [KV_ENOENT] = "no such key",
        [KV_EEXIST] = "key exists",
        [KV_ENOTDIR] = "not a directory",
        [KV_EISDIR] = "is a directory",
        [KV_ENOTEMPTY] = "directory not empty",
        [KV_EINVAL] = "invalid argument",
        [KV_ENAMETOOLONG] = "key or name too long",
        [KV_EFBIG] = "value too large",
        [KV_EPERM] = "operation not permitted",
        [KV_ESTALE] = "stale request number for the session",
        [KV_ESESSION_EXPIRED] = "session expired or unknown",
        [KV_ENOMEM] = "out of memory",
        [KV_ECORRUPT] = "malformed or corrupt data",
        [KV_EVERSION] = "unknown encoding version",
        [KV_EIO] = "snapshot I/O failed",
};

const char *kv_strerror(int err)
{
	if (err < 0 || err >= KV_ERR_COUNT || !err_names[err])
		return "unknown error";
	return err_names[err];
}

/* What each op carries: the one table both directions of the codec follow. */
static const struct {
	const char *name;
	unsigned fields;
	bool read;
} op_table[KV_OP_COUNT] = {
        [KV_OP_PUT] = {"put", KV_FIELD_KEY | KV_FIELD_DATA, false},
        [KV_OP_APPEND] = {"append", KV_FIELD_KEY | KV_FIELD_DATA, false},
        [KV_OP_GET] = {"get", KV_FIELD_KEY, true},
        [KV_OP_DELETE] = {"delete", KV_FIELD_KEY, false},
        [KV_OP_CREATE_EXCLUSIVE] = {"create-exclusive", KV_FIELD_KEY | KV_FIELD_DATA, false},
        [KV_OP_WRITE_AT] = {"write-at", KV_FIELD_KEY | KV_FIELD_DATA | KV_FIELD_OFFSET, false},
        [KV_OP_TRUNCATE] = {"truncate", KV_FIELD_KEY | KV_FIELD_OFFSET, false},
        [KV_OP_RENAME] = {"rename", KV_FIELD_KEY | KV_FIELD_KEY2 | KV_FIELD_FLAGS, false},
        [KV_OP_MKDIR] = {"mkdir", KV_FIELD_KEY, false},
        [KV_OP_RMDIR] = {"rmdir", KV_FIELD_KEY, false},
        [KV_OP_SETATTR] = {"setattr", KV_FIELD_KEY | KV_FIELD_FLAGS | KV_FIELD_ATTR, false},
        [KV_OP_SYMLINK] = {"symlink", KV_FIELD_KEY | KV_FIELD_DATA, false},
        [KV_OP_READDIR] = {"readdir", KV_FIELD_KEY, true},
        [KV_OP_GETATTR] = {"getattr", KV_FIELD_KEY, true},
        [KV_OP_OPEN_SESSION] = {"open-session", 0, false},
        [KV_OP_CLOSE_SESSION] = {"close-session", 0, false},
        [KV_OP_READ] = {"read", KV_FIELD_KEY | KV_FIELD_OFFSET | KV_FIELD_COUNT, true},
        [KV_OP_SETTINGS] = {"settings", KV_FIELD_SETTINGS, false},
};

static bool op_known(int op)
{
	return op > 0 && op < KV_OP_COUNT;
}

const char *kv_op_name(int op)
{
	return op_known(op) ? op_table[op].name : "unknown";
}

unsigned kv_op_fields(int op)
{
	return op_known(op) ? op_table[op].fields : 0;
}

bool kv_op_is_read(int op)
{
	return op_known(op) && op_table[op].read;
}

/* --- cursors -------------------------------------------------------------------------------- */

/* A writer over a buffer already sized by the matching *_encoded_size(): bounds were checked
 * there, the asserts-by-construction below only keep it honest. */
struct wcur {
	unsigned char *p;
	unsigned char *end;
};

static void put_u8(struct wcur *w, uint8_t v)
{
	*w->p++ = v;
}

static void put_le(struct wcur *w, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		*w->p++ = (unsigned char)(v >> (8 * i));
}

static void put_bytes(struct wcur *w, const void *b, size_t n)
{
	if (n)
		memcpy(w->p, b, n);
	w->p += n;
}

/* A reader that fails (sticky) instead of reading past the end. */
struct rcur {
	const unsigned char *p;
	size_t left;
	bool bad;
};

static uint64_t get_le(struct rcur *r, unsigned n)
{
	uint64_t v = 0;

	if (r->bad || r->left < n) {
		r->bad = true;
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += n;
	r->left -= n;
	return v;
}

/* Returns a pointer to n bytes in the input, or NULL (and marks r bad) when fewer remain. */
static const void *get_bytes(struct rcur *r, size_t n)
{
	const void *b = r->p;

	if (r->bad || r->left < n) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return b;
}

/* --- commands ------------------------------------------------------------------------------- */

#define CMD_HEADER_BYTES (1 + 1 + 8 + 8 + 8 + 4 + 4 + 4)
#define CMD_ATTR_BYTES (4 + 4 + 4 + 8 + 8)
#define CMD_SETTINGS_BYTES (8 + 8 + 4)

_Static_assert(KV_CMD_MAX_FRAMING_BYTES ==
                       CMD_HEADER_BYTES + 2 * (2 + KV_MAX_KEY_BYTES) + 4 + 8 + 4 + CMD_ATTR_BYTES +
                               CMD_SETTINGS_BYTES,
               "KV_CMD_MAX_FRAMING_BYTES counts every field");
_Static_assert((uint64_t)KV_VALUE_BYTES_LIMIT + KV_CMD_MAX_FRAMING_BYTES <= RAFT_MAX_ENTRY_BYTES,
               "the largest command fits one log entry");

static int cmd_check(const struct kv_cmd *cmd)
{
	unsigned f;

	if (!op_known(cmd->op))
		return KV_EINVAL;
	f = op_table[cmd->op].fields;
	if ((f & KV_FIELD_KEY) && cmd->key_len > KV_MAX_KEY_BYTES)
		return KV_ENAMETOOLONG;
	if ((f & KV_FIELD_KEY2) && cmd->key2_len > KV_MAX_KEY_BYTES)
		return KV_ENAMETOOLONG;
	if ((f & KV_FIELD_DATA) && cmd->data_len > KV_VALUE_BYTES_LIMIT)
		return KV_EFBIG;
	if ((f & KV_FIELD_COUNT) && cmd->count > KV_VALUE_BYTES_LIMIT)
		return KV_EFBIG;
	return KV_OK;
}

size_t kv_cmd_encoded_size(const struct kv_cmd *cmd)
{
	unsigned f;
	size_t n = CMD_HEADER_BYTES;

	if (cmd_check(cmd) != KV_OK)
		return 0;
	f = op_table[cmd->op].fields;
	if (f & KV_FIELD_KEY)
		n += 2 + cmd->key_len;
	if (f & KV_FIELD_KEY2)
		n += 2 + cmd->key2_len;
	if (f & KV_FIELD_DATA)
		n += 4 + cmd->data_len;
	if (f & KV_FIELD_OFFSET)
		n += 8;
	if (f & KV_FIELD_FLAGS)
		n += 4;
	if (f & KV_FIELD_ATTR)
		n += CMD_ATTR_BYTES;
	if (f & KV_FIELD_COUNT)
		n += 4;
	if (f & KV_FIELD_SETTINGS)
		n += CMD_SETTINGS_BYTES;
	return n;
}

int kv_cmd_encode(const struct kv_cmd *cmd, void **buf, size_t *len)
{
	struct wcur w;
	unsigned f;
	size_t n;
	int rv;

	rv = cmd_check(cmd);
	if (rv != KV_OK)
		return rv;
	n = kv_cmd_encoded_size(cmd);
	w.p = raft_buf_alloc(n);
	if (!w.p)
		return KV_ENOMEM;
	*buf = w.p;
	w.end = w.p + n;
	f = op_table[cmd->op].fields;
	put_u8(&w, KV_CMD_VERSION);
	put_u8(&w, cmd->op);
	put_le(&w, cmd->session, 8);
	put_le(&w, cmd->seq, 8);
	put_le(&w, cmd->time_ms, 8);
	put_le(&w, cmd->uid, 4);
	put_le(&w, cmd->gid, 4);
	put_le(&w, cmd->mode, 4);
	if (f & KV_FIELD_KEY) {
		put_le(&w, cmd->key_len, 2);
		put_bytes(&w, cmd->key, cmd->key_len);
	}
	if (f & KV_FIELD_KEY2) {
		put_le(&w, cmd->key2_len, 2);
		put_bytes(&w, cmd->key2, cmd->key2_len);
	}
	if (f & KV_FIELD_DATA) {
		put_le(&w, cmd->data_len, 4);
		put_bytes(&w, cmd->data, cmd->data_len);
	}
	if (f & KV_FIELD_OFFSET)
		put_le(&w, cmd->offset, 8);
	if (f & KV_FIELD_FLAGS)
		put_le(&w, cmd->flags, 4);
	if (f & KV_FIELD_ATTR) {
		put_le(&w, cmd->attr.mode, 4);
		put_le(&w, cmd->attr.uid, 4);
		put_le(&w, cmd->attr.gid, 4);
		put_le(&w, cmd->attr.mtime_ns, 8);
		put_le(&w, cmd->attr.ctime_ns, 8);
	}
	if (f & KV_FIELD_COUNT)
		put_le(&w, cmd->count, 4);
	if (f & KV_FIELD_SETTINGS) {
		put_le(&w, cmd->settings.max_value_bytes, 8);
		put_le(&w, cmd->settings.session_timeout_ms, 8);
		put_le(&w, cmd->settings.max_sessions, 4);
	}
	*len = n;
	return KV_OK;
}

/* Reads a u16/u32 length-prefixed byte string of at most max bytes. */
static const void *get_string(struct rcur *r, unsigned len_bytes, size_t max, size_t *len)
{
	uint64_t n = get_le(r, len_bytes);

	if (n > max) {
		r->bad = true;
		return NULL;
	}
	*len = (size_t)n;
	return get_bytes(r, (size_t)n);
}

int kv_cmd_decode(const void *buf, size_t len, struct kv_cmd *cmd)
{
	struct rcur r = {.p = buf, .left = len, .bad = false};
	unsigned f;

	memset(cmd, 0, sizeof(*cmd));
	if (len < 1)
		return KV_ECORRUPT;
	if (get_le(&r, 1) != KV_CMD_VERSION)
		return KV_EVERSION;
	cmd->op = (uint8_t)get_le(&r, 1);
	if (r.bad || !op_known(cmd->op))
		return KV_ECORRUPT;
	f = op_table[cmd->op].fields;
	cmd->session = get_le(&r, 8);
	cmd->seq = get_le(&r, 8);
	cmd->time_ms = get_le(&r, 8);
	cmd->uid = (uint32_t)get_le(&r, 4);
	cmd->gid = (uint32_t)get_le(&r, 4);
	cmd->mode = (uint32_t)get_le(&r, 4);
	if (f & KV_FIELD_KEY)
		cmd->key = get_string(&r, 2, KV_MAX_KEY_BYTES, &cmd->key_len);
	if (f & KV_FIELD_KEY2)
		cmd->key2 = get_string(&r, 2, KV_MAX_KEY_BYTES, &cmd->key2_len);
	if (f & KV_FIELD_DATA)
		cmd->data = get_string(&r, 4, KV_VALUE_BYTES_LIMIT, &cmd->data_len);
	if (f & KV_FIELD_OFFSET)
		cmd->offset = get_le(&r, 8);
	if (f & KV_FIELD_FLAGS)
		cmd->flags = (uint32_t)get_le(&r, 4);
	if (f & KV_FIELD_ATTR) {
		cmd->attr.mode = (uint32_t)get_le(&r, 4);
		cmd->attr.uid = (uint32_t)get_le(&r, 4);
		cmd->attr.gid = (uint32_t)get_le(&r, 4);
		cmd->attr.mtime_ns = get_le(&r, 8);
		cmd->attr.ctime_ns = get_le(&r, 8);
	}
	if (f & KV_FIELD_COUNT) {
		cmd->count = (uint32_t)get_le(&r, 4);
		r.bad = r.bad || cmd->count > KV_VALUE_BYTES_LIMIT;
	}
	if (f & KV_FIELD_SETTINGS) {
		cmd->settings.max_value_bytes = get_le(&r, 8);
		cmd->settings.session_timeout_ms = get_le(&r, 8);
		cmd->settings.max_sessions = (uint32_t)get_le(&r, 4);
	}
	if (r.bad || r.left != 0) {
		memset(cmd, 0, sizeof(*cmd));
		return KV_ECORRUPT;
	}
	return KV_OK;
}

_Static_assert(KV_CMD_TIME_OFFSET == 1 + 1 + 8 + 8, "time_ms follows version, op, session, seq");

int kv_cmd_set_time(void *buf, size_t len, uint64_t time_ms)
{
	struct wcur w;

	if (len < CMD_HEADER_BYTES)
		return KV_ECORRUPT;
	if (((const unsigned char *)buf)[0] != KV_CMD_VERSION)
		return KV_EVERSION;
	w.p = (unsigned char *)buf + KV_CMD_TIME_OFFSET;
	w.end = w.p + 8;
	put_le(&w, time_ms, 8);
	return KV_OK;
}

int kv_cmd_set_caller(void *buf, size_t len, uint32_t uid, uint32_t gid)
{
	struct wcur w;

	if (len < CMD_HEADER_BYTES)
		return KV_ECORRUPT;
	if (((const unsigned char *)buf)[0] != KV_CMD_VERSION)
		return KV_EVERSION;
	w.p = (unsigned char *)buf + KV_CMD_CALLER_OFFSET;
	w.end = w.p + 8;
	put_le(&w, uid, 4);
	put_le(&w, gid, 4);
	return KV_OK;
}

/* --- results -------------------------------------------------------------------------------- */

#define RES_HEADER_BYTES (1 + 1 + 2 + 1 + 8)
#define RES_ATTR_BYTES (8 + 4 + 4 + 4 + 4 + 8 + 8 + 8)
#define RES_DIRENT_BYTES (8 + 4 + 1)
#define RES_FLAG_EXISTS 0x1u
#define RES_FLAG_ATTR 0x2u

void kv_result_release(struct kv_result *r)
{
	if (!r)
		return;
	raft_buf_unref(r->value);
	free(r->ents);
	free(r->names);
	memset(r, 0, sizeof(*r));
}

size_t kv_result_encoded_size(const struct kv_result *r)
{
	size_t n = RES_HEADER_BYTES + 4 + 4;

	if (r->value_len > KV_VALUE_BYTES_LIMIT || r->n_ents > KV_MAX_DIR_ENTRIES)
		return 0;
	if (r->has_attr)
		n += RES_ATTR_BYTES;
	n += r->value_len;
	for (size_t i = 0; i < r->n_ents; i++)
		n += RES_DIRENT_BYTES + r->ents[i].name_len;
	return n;
}

static void result_write(const struct kv_result *r, struct wcur *w)
{
	unsigned flags = (r->exists ? RES_FLAG_EXISTS : 0) | (r->has_attr ? RES_FLAG_ATTR : 0);

	put_u8(w, KV_RESULT_VERSION);
	put_u8(w, r->op);
	put_le(w, (uint64_t)r->status, 2);
	put_u8(w, (uint8_t)flags);
	put_le(w, r->session, 8);
	if (r->has_attr) {
		put_le(w, r->attr.ino, 8);
		put_le(w, r->attr.mode, 4);
		put_le(w, r->attr.uid, 4);
		put_le(w, r->attr.gid, 4);
		put_le(w, r->attr.nlink, 4);
		put_le(w, r->attr.size, 8);
		put_le(w, r->attr.mtime_ns, 8);
		put_le(w, r->attr.ctime_ns, 8);
	}
	put_le(w, r->value_len, 4);
	put_bytes(w, r->value, r->value_len);
	put_le(w, r->n_ents, 4);
	for (size_t i = 0; i < r->n_ents; i++) {
		put_le(w, r->ents[i].ino, 8);
		put_le(w, r->ents[i].mode, 4);
		put_u8(w, r->ents[i].name_len);
		put_bytes(w, r->ents[i].name, r->ents[i].name_len);
	}
}

int kv_result_encode(const struct kv_result *r, void **buf, size_t *len)
{
	struct wcur w;
	size_t n = kv_result_encoded_size(r);

	if (n == 0)
		return KV_EFBIG;
	w.p = raft_buf_alloc(n);
	if (!w.p)
		return KV_ENOMEM;
	*buf = w.p;
	w.end = w.p + n;
	result_write(r, &w);
	*len = n;
	return KV_OK;
}

int kv_result_encode_to(const struct kv_result *r, void *out, size_t cap, size_t *len)
{
	struct wcur w;
	size_t n = kv_result_encoded_size(r);

	if (n == 0 || n > cap)
		return KV_EFBIG;
	w.p = out;
	w.end = w.p + n;
	result_write(r, &w);
	*len = n;
	return KV_OK;
}

static int result_read_ents(struct rcur *rc, struct kv_result *r)
{
	uint64_t n = get_le(rc, 4);
	size_t names_len = 0;
	struct rcur scan;

	if (rc->bad || n > KV_MAX_DIR_ENTRIES || n > rc->left / RES_DIRENT_BYTES)
		return KV_ECORRUPT;
	if (n == 0)
		return KV_OK;
	/* First pass: sizes only, so that one allocation holds every name. */
	scan = *rc;
	for (uint64_t i = 0; i < n; i++) {
		size_t nl;
		get_bytes(&scan, 8 + 4);
		nl = (size_t)get_le(&scan, 1);
		get_bytes(&scan, nl);
		names_len += nl;
	}
	if (scan.bad)
		return KV_ECORRUPT;
	r->ents = calloc((size_t)n, sizeof(*r->ents));
	r->names = malloc(names_len ? names_len : 1);
	if (!r->ents || !r->names)
		return KV_ENOMEM;
	r->n_ents = (size_t)n;
	names_len = 0;
	for (size_t i = 0; i < r->n_ents; i++) {
		struct kv_dirent *e = &r->ents[i];
		e->ino = get_le(rc, 8);
		e->mode = (uint32_t)get_le(rc, 4);
		e->name_len = (uint8_t)get_le(rc, 1);
		memcpy(r->names + names_len, get_bytes(rc, e->name_len), e->name_len);
		e->name = r->names + names_len;
		names_len += e->name_len;
	}
	return KV_OK;
}

int kv_result_decode(const void *buf, size_t len, struct kv_result *r)
{
	struct rcur rc = {.p = buf, .left = len, .bad = false};
	const void *value;
	size_t value_len = 0;
	unsigned flags;
	int rv;

	memset(r, 0, sizeof(*r));
	if (len < 1)
		return KV_ECORRUPT;
	if (get_le(&rc, 1) != KV_RESULT_VERSION)
		return KV_EVERSION;
	r->op = (uint8_t)get_le(&rc, 1);
	r->status = (int)get_le(&rc, 2);
	flags = (unsigned)get_le(&rc, 1);
	r->session = get_le(&rc, 8);
	if (rc.bad || (flags & ~(RES_FLAG_EXISTS | RES_FLAG_ATTR)) || r->status >= KV_ERR_COUNT)
		goto corrupt;
	r->exists = flags & RES_FLAG_EXISTS;
	r->has_attr = flags & RES_FLAG_ATTR;
	if (r->has_attr) {
		r->attr.ino = get_le(&rc, 8);
		r->attr.mode = (uint32_t)get_le(&rc, 4);
		r->attr.uid = (uint32_t)get_le(&rc, 4);
		r->attr.gid = (uint32_t)get_le(&rc, 4);
		r->attr.nlink = (uint32_t)get_le(&rc, 4);
		r->attr.size = get_le(&rc, 8);
		r->attr.mtime_ns = get_le(&rc, 8);
		r->attr.ctime_ns = get_le(&rc, 8);
	}
	value = get_string(&rc, 4, KV_VALUE_BYTES_LIMIT, &value_len);
	if (rc.bad)
		goto corrupt;
	rv = result_read_ents(&rc, r);
	if (rv != KV_OK)
		goto fail;
	if (rc.bad || rc.left != 0)
		goto corrupt;
	if (value_len) {
		r->value = raft_buf_alloc(value_len);
		if (!r->value) {
			rv = KV_ENOMEM;
			goto fail;
		}
		memcpy(r->value, value, value_len);
		r->value_len = value_len;
	}
	return KV_OK;
corrupt:
	rv = KV_ECORRUPT;
fail:
	kv_result_release(r);
	return rv;
}
