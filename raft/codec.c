/* codec.c - framed tpl encoding of hard state, entries, snapshot metadata and messages. */
#include "raft/codec.h"

#include <stdlib.h>
#include <string.h>
#include <tpl.h>

#include "raft/crc32c.h"
#include "raft/le.h"
#include "raft/tplguard.h"

/*
 * How tpl is made safe to feed with untrusted bytes.
 *
 * 1. The frame's length and CRC are checked before tpl_load, and tpl_load reads from memory
 *    bounded by the image length (TPL_MEM, no TPL_EXCESS_OK); tpl_load then checks the format
 *    string and walks the whole image against that bound.
 * 2. Every codec call runs its tpl calls in a section (raft/tplguard.h): tpl's fatal hook, which
 *    it calls for out-of-memory and a few "internal errors", returns to codec_run, which then
 *    returns RAFT_ENOMEM or RAFT_ECORRUPT, and everything tpl allocated in the call is freed
 *    when it ends, on success and after a fatal error alike. Our own allocations made inside a
 *    call are recorded in the struct codec_op, which lives in the frame of the public function,
 *    so its fields are well defined after the longjmp.
 * 3. tpl trusts the element count of an A(...) array once tpl_load accepted the image, and a
 *    count >= 2^31 slips through its check as a negative int; we accept only counts in
 *    [0, limit] read with tpl_Alen, and use no nested arrays.
 */

#define FMT_HARD_STATE "uUUu"
#define FMT_ENTRY "uUUcB"
#define FMT_SNAPSHOT_META "uUUUuuu#uu#"
#define FMT_MSG "ucuuUcUUUU"
#define FMT_MSG_APPEND "ucuuUcUUUUA(UUcB)"
#define FMT_MSG_SNAPSHOT "ucuuUcUUUUUuu#uu#B"

struct codec_op {
	struct raft_tplguard guard;
	int (*body)(struct codec_op *op, void *arg); /* the call's work, run in the section */
	void *arg;
	struct raft_msg *msg; /* a message being decoded: freed if the call fails */
	struct raft_entry *entry; /* an entry being decoded: its data freed if the call fails */
};

static _Thread_local bool (*codec_fail_fn)(void *ctx);
static _Thread_local void *codec_fail_ctx;

void raft_codec_set_alloc_fault(bool (*fail)(void *ctx), void *ctx)
{
	codec_fail_fn = fail;
	codec_fail_ctx = ctx;
}

/* The test hook, asked before each of our own allocations (the section asks it for tpl's). */
static bool codec_alloc_fails(void)
{
	return codec_fail_fn && codec_fail_fn(codec_fail_ctx);
}

static void op_init(struct codec_op *op)
{
	memset(op, 0, sizeof(*op));
}

/* Undoes what a failed decode allocated into the caller's struct. */
static void op_discard(struct codec_op *op)
{
	if (op->msg)
		raft_codec_msg_free(op->msg);
	if (op->entry) {
		raft_buf_unref(op->entry->data);
		op->entry->data = NULL;
	}
}

static int op_body(void *arg)
{
	struct codec_op *op = arg;

	return op->body(op, op->arg);
}

/* Runs body(op, arg) in a section; a failed call undoes what it decoded into the caller's. */
static int codec_run(struct codec_op *op, int (*body)(struct codec_op *op, void *arg), void *arg)
{
	int rc;

	raft_tplguard_init(&op->guard, codec_fail_fn, codec_fail_ctx);
	op->body = body;
	op->arg = arg;
	if (!raft_tplguard_run(&op->guard, op_body, op, &rc))
		rc = raft_tplguard_out_of_memory(&op->guard) ? RAFT_ENOMEM : RAFT_ECORRUPT;
	if (rc != RAFT_OK)
		op_discard(op);
	return rc;
}

/* --- buffers and frames ----------------------------------------------------------------------- */

void raft_codec_buf_init(struct raft_codec_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void raft_codec_buf_free(struct raft_codec_buf *b)
{
	free(b->data);
	raft_codec_buf_init(b);
}

int raft_codec_buf_reserve(struct raft_codec_buf *b, size_t extra)
{
	size_t need, cap;
	unsigned char *p;

	if (extra > SIZE_MAX - b->len)
		return RAFT_ETOOBIG;
	need = b->len + extra;
	if (need <= b->cap)
		return RAFT_OK;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (codec_alloc_fails())
		return RAFT_ENOMEM;
	p = realloc(b->data, cap);
	if (!p)
		return RAFT_ENOMEM;
	b->data = p;
	b->cap = cap;
	return RAFT_OK;
}

int raft_codec_frame_length(const void *buf, size_t avail, size_t *frame_len)
{
	uint32_t image_len;

	if (avail < RAFT_CODEC_HEADER_BYTES) {
		*frame_len = RAFT_CODEC_HEADER_BYTES;
		return RAFT_OK;
	}
	image_len = raft_le_get32(buf);
	if (image_len < RAFT_CODEC_MIN_IMAGE_BYTES)
		return RAFT_ECORRUPT;
	if (image_len > RAFT_CODEC_MAX_FRAME_BYTES - RAFT_CODEC_HEADER_BYTES)
		return RAFT_ETOOBIG;
	*frame_len = RAFT_CODEC_HEADER_BYTES + (size_t)image_len;
	return RAFT_OK;
}

static uint32_t frame_crc(const unsigned char *frame, size_t image_len)
{
	uint32_t crc = raft_crc32c(0, frame, 4);

	return raft_crc32c(crc, frame + RAFT_CODEC_HEADER_BYTES, image_len);
}

int raft_codec_frame_check(const void *frame, size_t len)
{
	const unsigned char *p = frame;
	size_t need;
	int rc;

	if (len < RAFT_CODEC_HEADER_BYTES)
		return RAFT_ECORRUPT;
	rc = raft_codec_frame_length(frame, len, &need);
	if (rc != RAFT_OK || need != len)
		return RAFT_ECORRUPT;
	if (frame_crc(p, len - RAFT_CODEC_HEADER_BYTES) != raft_le_get32(p + 4))
		return RAFT_ECORRUPT;
	return RAFT_OK;
}

/* Packs the root of tn and dumps it as one frame at the end of out. */
static int frame_put(tpl_node *tn, struct raft_codec_buf *out)
{
	size_t image_len;
	unsigned char *p;
	int rc;

	if (tpl_pack(tn, 0) != 0)
		return RAFT_EINVAL;
	if (tpl_dump(tn, TPL_GETSIZE, &image_len) != 0)
		return RAFT_EINVAL;
	if (image_len > RAFT_CODEC_MAX_FRAME_BYTES - RAFT_CODEC_HEADER_BYTES)
		return RAFT_ETOOBIG;
	rc = raft_codec_buf_reserve(out, RAFT_CODEC_HEADER_BYTES + image_len);
	if (rc != RAFT_OK)
		return rc;
	p = out->data + out->len;
	if (tpl_dump(tn, TPL_MEM | TPL_PREALLOCD, p + RAFT_CODEC_HEADER_BYTES, image_len) != 0)
		return RAFT_EINVAL;
	raft_le_put32(p, (uint32_t)image_len);
	raft_le_put32(p + 4, frame_crc(p, image_len));
	out->len += RAFT_CODEC_HEADER_BYTES + image_len;
	return RAFT_OK;
}

/* Checks the frame, then loads its image into tn (mapped by the caller) and unpacks the root. */
static int frame_load(tpl_node *tn, const void *frame, size_t len)
{
	const unsigned char *p = frame;

	if (!tn)
		return RAFT_ECORRUPT;
	if (raft_codec_frame_check(frame, len) != RAFT_OK)
		return RAFT_ECORRUPT;
	if (tpl_load(tn, TPL_MEM, (void *)(p + RAFT_CODEC_HEADER_BYTES),
	             len - RAFT_CODEC_HEADER_BYTES) != 0)
		return RAFT_ECORRUPT;
	if (tpl_unpack(tn, 0) < 0)
		return RAFT_ECORRUPT;
	return RAFT_OK;
}

/* A new raft_buf holding a copy of bin, or NULL for an empty one (*out NULL, RAFT_OK). */
static int bin_to_buf(tpl_bin *bin, uint32_t max_bytes, void **out)
{
	*out = NULL;
	if (bin->sz > max_bytes)
		return RAFT_ETOOBIG;
	if (bin->sz == 0)
		return RAFT_OK;
	if (!bin->addr)
		return RAFT_ECORRUPT;
	if (codec_alloc_fails())
		return RAFT_ENOMEM;
	*out = raft_buf_alloc(bin->sz);
	if (!*out)
		return RAFT_ENOMEM;
	memcpy(*out, bin->addr, bin->sz);
	raft_tplguard_free(bin->addr); /* tpl's copy, from the arena: release it early */
	bin->addr = NULL;
	return RAFT_OK;
}

static bool entry_type_valid(unsigned type)
{
	return type == RAFT_ENTRY_NORMAL || type == RAFT_ENTRY_NOOP || type == RAFT_ENTRY_CONF;
}

static bool conf_valid(const struct raft_conf *conf)
{
	return conf->n <= RAFT_MAX_NODES && conf->n_old <= RAFT_MAX_NODES;
}

/* --- hard state ------------------------------------------------------------------------------- */

struct hs_args {
	struct raft_codec_buf *out;
	uint64_t *seq;
	struct raft_hard_state *hs;
	const void *frame;
	size_t len;
};

static int hs_encode_body(struct codec_op *op, void *arg)
{
	struct hs_args *a = arg;
	uint32_t kind = RAFT_CODEC_KIND_HARD_STATE, vote = a->hs->vote;
	uint64_t seq = *a->seq, term = a->hs->term;
	tpl_node *tn = tpl_map(FMT_HARD_STATE, &kind, &seq, &term, &vote);

	(void)op;
	if (!tn)
		return RAFT_EINVAL;
	return frame_put(tn, a->out);
}

int raft_codec_encode_hard_state(struct raft_codec_buf *out, uint64_t seq,
                                 const struct raft_hard_state *hs)
{
	struct codec_op op;
	struct hs_args a = {.out = out, .seq = &seq, .hs = (struct raft_hard_state *)hs};
	size_t len0 = out->len;
	int rc;

	op_init(&op);
	rc = codec_run(&op, hs_encode_body, &a);
	if (rc != RAFT_OK)
		out->len = len0;
	return rc;
}

static int hs_decode_body(struct codec_op *op, void *arg)
{
	struct hs_args *a = arg;
	uint32_t kind = 0, vote = 0;
	uint64_t seq = 0, term = 0;
	tpl_node *tn = tpl_map(FMT_HARD_STATE, &kind, &seq, &term, &vote);
	int rc;

	(void)op;
	rc = frame_load(tn, a->frame, a->len);
	if (rc != RAFT_OK)
		return rc;
	if (kind != RAFT_CODEC_KIND_HARD_STATE || term > RAFT_MAX_TERM)
		return RAFT_ECORRUPT;
	*a->seq = seq;
	a->hs->term = term;
	a->hs->vote = vote;
	return RAFT_OK;
}

int raft_codec_decode_hard_state(const void *frame, size_t len, uint64_t *seq,
                                 struct raft_hard_state *hs)
{
	struct codec_op op;
	struct hs_args a = {.seq = seq, .hs = hs, .frame = frame, .len = len};

	op_init(&op);
	return codec_run(&op, hs_decode_body, &a);
}

/* --- entries ---------------------------------------------------------------------------------- */

struct entry_args {
	struct raft_codec_buf *out;
	const struct raft_entry *in;
	struct raft_entry *e;
	const void *frame;
	size_t len;
};

static int entry_check(const struct raft_entry *e)
{
	if (e->len > RAFT_CODEC_MAX_ENTRY_BYTES)
		return RAFT_ETOOBIG;
	if ((e->len > 0 && !e->data) || !entry_type_valid(e->type) || e->index == 0)
		return RAFT_EINVAL;
	return RAFT_OK;
}

static int entry_encode_body(struct codec_op *op, void *arg)
{
	struct entry_args *a = arg;
	uint32_t kind = RAFT_CODEC_KIND_ENTRY;
	uint64_t term = a->in->term, index = a->in->index;
	char type = (char)a->in->type;
	tpl_bin bin = {.addr = a->in->len ? a->in->data : NULL, .sz = a->in->len};
	tpl_node *tn = tpl_map(FMT_ENTRY, &kind, &term, &index, &type, &bin);

	(void)op;
	if (!tn)
		return RAFT_EINVAL;
	return frame_put(tn, a->out);
}

int raft_codec_encode_entry(struct raft_codec_buf *out, const struct raft_entry *e)
{
	struct codec_op op;
	struct entry_args a = {.out = out, .in = e};
	size_t len0 = out->len;
	int rc = entry_check(e);

	if (rc != RAFT_OK)
		return rc;
	op_init(&op);
	rc = codec_run(&op, entry_encode_body, &a);
	if (rc != RAFT_OK)
		out->len = len0;
	return rc;
}

static int entry_decode_body(struct codec_op *op, void *arg)
{
	struct entry_args *a = arg;
	uint32_t kind = 0;
	uint64_t term = 0, index = 0;
	char type = 0;
	tpl_bin bin = {NULL, 0};
	tpl_node *tn = tpl_map(FMT_ENTRY, &kind, &term, &index, &type, &bin);
	int rc;

	rc = frame_load(tn, a->frame, a->len);
	if (rc != RAFT_OK)
		return rc;
	if (kind != RAFT_CODEC_KIND_ENTRY || !entry_type_valid((unsigned char)type) || index == 0 ||
	    term > RAFT_MAX_TERM)
		return RAFT_ECORRUPT;
	a->e->term = term;
	a->e->index = index;
	a->e->type = (uint8_t)type;
	a->e->len = bin.sz;
	op->entry = a->e;
	return bin_to_buf(&bin, RAFT_CODEC_MAX_ENTRY_BYTES, &a->e->data);
}

int raft_codec_decode_entry(const void *frame, size_t len, struct raft_entry *e)
{
	struct codec_op op;
	struct entry_args a = {.e = e, .frame = frame, .len = len};
	int rc;

	memset(e, 0, sizeof(*e));
	op_init(&op);
	rc = codec_run(&op, entry_decode_body, &a);
	if (rc != RAFT_OK)
		memset(e, 0, sizeof(*e));
	return rc;
}

/* --- snapshot metadata ------------------------------------------------------------------------ */

struct meta_args {
	struct raft_codec_buf *out;
	struct raft_snapshot_meta *meta;
	const void *frame;
	size_t len;
};

static int meta_encode_body(struct codec_op *op, void *arg)
{
	struct meta_args *a = arg;
	struct raft_conf conf = a->meta->conf;
	uint32_t kind = RAFT_CODEC_KIND_SNAPSHOT_META, crc = a->meta->crc;
	uint64_t index = a->meta->index, term = a->meta->term, size = a->meta->size;
	tpl_node *tn = tpl_map(FMT_SNAPSHOT_META, &kind, &index, &term, &size, &crc, &conf.n,
	                       conf.ids, RAFT_MAX_NODES, &conf.n_old, conf.old_ids, RAFT_MAX_NODES);

	(void)op;
	if (!tn)
		return RAFT_EINVAL;
	return frame_put(tn, a->out);
}

int raft_codec_encode_snapshot_meta(struct raft_codec_buf *out,
                                    const struct raft_snapshot_meta *meta)
{
	struct codec_op op;
	struct meta_args a = {.out = out, .meta = (struct raft_snapshot_meta *)meta};
	size_t len0 = out->len;
	int rc;

	if (!conf_valid(&meta->conf))
		return RAFT_EINVAL;
	op_init(&op);
	rc = codec_run(&op, meta_encode_body, &a);
	if (rc != RAFT_OK)
		out->len = len0;
	return rc;
}

static int meta_decode_body(struct codec_op *op, void *arg)
{
	struct meta_args *a = arg;
	struct raft_conf conf;
	uint32_t kind = 0, crc = 0;
	uint64_t index = 0, term = 0, size = 0;
	tpl_node *tn;
	int rc;

	(void)op;
	memset(&conf, 0, sizeof(conf));
	tn = tpl_map(FMT_SNAPSHOT_META, &kind, &index, &term, &size, &crc, &conf.n, conf.ids,
	             RAFT_MAX_NODES, &conf.n_old, conf.old_ids, RAFT_MAX_NODES);
	rc = frame_load(tn, a->frame, a->len);
	if (rc != RAFT_OK)
		return rc;
	if (kind != RAFT_CODEC_KIND_SNAPSHOT_META || !conf_valid(&conf) || term > RAFT_MAX_TERM)
		return RAFT_ECORRUPT;
	a->meta->index = index;
	a->meta->term = term;
	a->meta->size = size;
	a->meta->conf = conf;
	a->meta->crc = crc;
	return RAFT_OK;
}

int raft_codec_decode_snapshot_meta(const void *frame, size_t len, struct raft_snapshot_meta *meta)
{
	struct codec_op op;
	struct meta_args a = {.meta = meta, .frame = frame, .len = len};

	op_init(&op);
	return codec_run(&op, meta_decode_body, &a);
}

/* --- messages --------------------------------------------------------------------------------- */

/* The common head of every message image; a, b, c, d mean different fields per type. */
struct msg_fields {
	uint32_t kind;
	char type;
	uint32_t from;
	uint32_t to;
	uint64_t term;
	unsigned char flags;
	uint64_t a, b, c, d;
};

#define MSG_FLAG_PRE_VOTE (1u << 0)
#define MSG_FLAG_TRANSFER (1u << 1)
#define MSG_FLAG_GRANTED (1u << 2)
#define MSG_FLAG_SUCCESS (1u << 3)
#define MSG_FLAG_LAST (1u << 4)
#define MSG_FLAG_DONE (1u << 5)
#define MSG_FLAG_REJECT (1u << 6)
#define MSG_FLAG_OK (1u << 7)

/* Per type: the flags it may carry and how many of a, b, c, d it uses (the rest must be 0). */
static const struct {
	unsigned flags;
	unsigned n_scalars;
} msg_layout[RAFT_MSG_TYPE_COUNT] = {
        [RAFT_MSG_VOTE] = {MSG_FLAG_PRE_VOTE | MSG_FLAG_TRANSFER, 2},
        [RAFT_MSG_VOTE_RESP] = {MSG_FLAG_PRE_VOTE | MSG_FLAG_GRANTED, 0},
        [RAFT_MSG_APPEND] = {0, 3},
        [RAFT_MSG_APPEND_RESP] = {MSG_FLAG_SUCCESS, 4},
        [RAFT_MSG_HEARTBEAT] = {0, 2},
        [RAFT_MSG_HEARTBEAT_RESP] = {0, 2},
        [RAFT_MSG_SNAPSHOT] = {MSG_FLAG_LAST, 4},
        [RAFT_MSG_SNAPSHOT_RESP] = {MSG_FLAG_DONE | MSG_FLAG_REJECT, 2},
        [RAFT_MSG_TIMEOUT_NOW] = {0, 0},
        [RAFT_MSG_READ_INDEX] = {0, 1},
        [RAFT_MSG_READ_INDEX_RESP] = {MSG_FLAG_OK, 2},
};

static unsigned flag_if(bool b, unsigned flag)
{
	return b ? flag : 0;
}

/* The a, b, c and flags of m. */
static void msg_to_fields(const struct raft_msg *m, struct msg_fields *f)
{
	memset(f, 0, sizeof(*f));
	f->kind = RAFT_CODEC_KIND_MSG;
	f->type = (char)m->type;
	f->from = m->from;
	f->to = m->to;
	f->term = m->term;
	switch (m->type) {
	case RAFT_MSG_VOTE:
		f->a = m->u.vote.last_log_index;
		f->b = m->u.vote.last_log_term;
		f->flags = (unsigned char)(flag_if(m->u.vote.pre_vote, MSG_FLAG_PRE_VOTE) |
		                           flag_if(m->u.vote.transfer, MSG_FLAG_TRANSFER));
		break;
	case RAFT_MSG_VOTE_RESP:
		f->flags = (unsigned char)(flag_if(m->u.vote_resp.pre_vote, MSG_FLAG_PRE_VOTE) |
		                           flag_if(m->u.vote_resp.granted, MSG_FLAG_GRANTED));
		break;
	case RAFT_MSG_APPEND:
		f->a = m->u.append.prev_index;
		f->b = m->u.append.prev_term;
		f->c = m->u.append.commit;
		break;
	case RAFT_MSG_APPEND_RESP:
		f->a = m->u.append_resp.index;
		f->b = m->u.append_resp.hint_index;
		f->c = m->u.append_resp.hint_term;
		f->d = m->u.append_resp.last_index;
		f->flags = (unsigned char)flag_if(m->u.append_resp.success, MSG_FLAG_SUCCESS);
		break;
	case RAFT_MSG_HEARTBEAT:
		f->a = m->u.heartbeat.commit;
		f->b = m->u.heartbeat.read_seq;
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		f->a = m->u.heartbeat_resp.read_seq;
		f->b = m->u.heartbeat_resp.last_index;
		break;
	case RAFT_MSG_SNAPSHOT:
		f->a = m->u.snapshot.meta.index;
		f->b = m->u.snapshot.meta.term;
		f->c = m->u.snapshot.meta.size;
		f->d = m->u.snapshot.meta.crc;
		f->flags = (unsigned char)flag_if(m->u.snapshot.last, MSG_FLAG_LAST);
		break;
	case RAFT_MSG_SNAPSHOT_RESP:
		f->a = m->u.snapshot_resp.index;
		f->b = m->u.snapshot_resp.next_offset;
		f->flags = (unsigned char)(flag_if(m->u.snapshot_resp.done, MSG_FLAG_DONE) |
		                           flag_if(m->u.snapshot_resp.reject, MSG_FLAG_REJECT));
		break;
	case RAFT_MSG_READ_INDEX:
		f->a = m->u.read_index.ctx;
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		f->a = m->u.read_index_resp.ctx;
		f->b = m->u.read_index_resp.index;
		f->flags = (unsigned char)flag_if(m->u.read_index_resp.ok, MSG_FLAG_OK);
		break;
	default:
		break;
	}
}

/* The inverse of msg_to_fields, for a type whose layout check passed. */
static void msg_from_fields(const struct msg_fields *f, struct raft_msg *m)
{
	m->type = (uint8_t)f->type;
	m->from = f->from;
	m->to = f->to;
	m->term = f->term;
	switch (m->type) {
	case RAFT_MSG_VOTE:
		m->u.vote.last_log_index = f->a;
		m->u.vote.last_log_term = f->b;
		m->u.vote.pre_vote = f->flags & MSG_FLAG_PRE_VOTE;
		m->u.vote.transfer = f->flags & MSG_FLAG_TRANSFER;
		break;
	case RAFT_MSG_VOTE_RESP:
		m->u.vote_resp.pre_vote = f->flags & MSG_FLAG_PRE_VOTE;
		m->u.vote_resp.granted = f->flags & MSG_FLAG_GRANTED;
		break;
	case RAFT_MSG_APPEND:
		m->u.append.prev_index = f->a;
		m->u.append.prev_term = f->b;
		m->u.append.commit = f->c;
		break;
	case RAFT_MSG_APPEND_RESP:
		m->u.append_resp.index = f->a;
		m->u.append_resp.hint_index = f->b;
		m->u.append_resp.hint_term = f->c;
		m->u.append_resp.last_index = f->d;
		m->u.append_resp.success = f->flags & MSG_FLAG_SUCCESS;
		break;
	case RAFT_MSG_HEARTBEAT:
		m->u.heartbeat.commit = f->a;
		m->u.heartbeat.read_seq = f->b;
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		m->u.heartbeat_resp.read_seq = f->a;
		m->u.heartbeat_resp.last_index = f->b;
		break;
	case RAFT_MSG_SNAPSHOT:
		m->u.snapshot.meta.index = f->a;
		m->u.snapshot.meta.term = f->b;
		m->u.snapshot.meta.size = f->c;
		m->u.snapshot.meta.crc = (uint32_t)f->d;
		m->u.snapshot.last = f->flags & MSG_FLAG_LAST;
		break;
	case RAFT_MSG_SNAPSHOT_RESP:
		m->u.snapshot_resp.index = f->a;
		m->u.snapshot_resp.next_offset = f->b;
		m->u.snapshot_resp.done = f->flags & MSG_FLAG_DONE;
		m->u.snapshot_resp.reject = f->flags & MSG_FLAG_REJECT;
		break;
	case RAFT_MSG_READ_INDEX:
		m->u.read_index.ctx = f->a;
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		m->u.read_index_resp.ctx = f->a;
		m->u.read_index_resp.index = f->b;
		m->u.read_index_resp.ok = f->flags & MSG_FLAG_OK;
		break;
	default:
		break;
	}
}

static bool msg_type_valid(unsigned type)
{
	return type >= RAFT_MSG_VOTE && type < RAFT_MSG_TYPE_COUNT;
}

/* Flags and unused scalars as the type's layout allows. */
static bool msg_fields_valid(const struct msg_fields *f)
{
	unsigned type = (unsigned char)f->type;
	unsigned n;

	if (f->kind != RAFT_CODEC_KIND_MSG || !msg_type_valid(type))
		return false;
	if (f->flags & ~msg_layout[type].flags)
		return false;
	n = msg_layout[type].n_scalars;
	return (n >= 1 || f->a == 0) && (n >= 2 || f->b == 0) && (n >= 3 || f->c == 0) &&
	        (n >= 4 || f->d == 0);
}

/* An AppendEntries carries entries prev_index+1, prev_index+2, ... of valid types and sizes. */
static int append_check(const struct raft_msg_append *ap)
{
	if (ap->n_entries > RAFT_CODEC_MAX_MSG_ENTRIES)
		return RAFT_ETOOBIG;
	if (ap->n_entries > 0 && !ap->entries)
		return RAFT_EINVAL;
	for (uint32_t i = 0; i < ap->n_entries; i++) {
		int rc = entry_check(&ap->entries[i]);
		if (rc != RAFT_OK)
			return rc;
		if (ap->entries[i].index != ap->prev_index + 1 + i)
			return RAFT_EINVAL;
	}
	return RAFT_OK;
}

struct msg_args {
	struct raft_codec_buf *out;
	const struct raft_msg *in;
	struct raft_msg *m;
	const void *frame;
	size_t len;
};

static int msg_encode_append(struct msg_fields *f, const struct raft_msg_append *ap,
                             struct raft_codec_buf *out)
{
	uint64_t term = 0, index = 0;
	char type = 0;
	tpl_bin bin = {NULL, 0};
	tpl_node *tn = tpl_map(FMT_MSG_APPEND, &f->kind, &f->type, &f->from, &f->to, &f->term,
	                       &f->flags, &f->a, &f->b, &f->c, &f->d, &term, &index, &type, &bin);

	if (!tn)
		return RAFT_EINVAL;
	for (uint32_t i = 0; i < ap->n_entries; i++) {
		const struct raft_entry *e = &ap->entries[i];
		term = e->term;
		index = e->index;
		type = (char)e->type;
		bin.addr = e->len ? e->data : NULL;
		bin.sz = e->len;
		if (tpl_pack(tn, 1) != 0)
			return RAFT_EINVAL;
	}
	return frame_put(tn, out);
}

static int msg_encode_snapshot(struct msg_fields *f, const struct raft_msg_snapshot *s,
                               struct raft_codec_buf *out)
{
	struct raft_conf conf = s->meta.conf;
	uint64_t offset = s->offset;
	tpl_bin bin = {.addr = s->len ? s->data : NULL, .sz = s->len};
	tpl_node *tn = tpl_map(FMT_MSG_SNAPSHOT, &f->kind, &f->type, &f->from, &f->to, &f->term,
	                       &f->flags, &f->a, &f->b, &f->c, &f->d, &offset, &conf.n, conf.ids,
	                       RAFT_MAX_NODES, &conf.n_old, conf.old_ids, RAFT_MAX_NODES, &bin);

	if (!tn)
		return RAFT_EINVAL;
	return frame_put(tn, out);
}

static int msg_encode_body(struct codec_op *op, void *arg)
{
	struct msg_args *a = arg;
	struct msg_fields f;
	tpl_node *tn;

	(void)op;
	msg_to_fields(a->in, &f);
	if (a->in->type == RAFT_MSG_APPEND)
		return msg_encode_append(&f, &a->in->u.append, a->out);
	if (a->in->type == RAFT_MSG_SNAPSHOT)
		return msg_encode_snapshot(&f, &a->in->u.snapshot, a->out);
	tn = tpl_map(FMT_MSG, &f.kind, &f.type, &f.from, &f.to, &f.term, &f.flags, &f.a, &f.b, &f.c,
	             &f.d);
	if (!tn)
		return RAFT_EINVAL;
	return frame_put(tn, a->out);
}

static int msg_encode_check(const struct raft_msg *m)
{
	if (!msg_type_valid(m->type))
		return RAFT_EINVAL;
	if (m->type == RAFT_MSG_APPEND)
		return append_check(&m->u.append);
	if (m->type == RAFT_MSG_SNAPSHOT) {
		if (m->u.snapshot.len > RAFT_CODEC_MAX_CHUNK_BYTES)
			return RAFT_ETOOBIG;
		if ((m->u.snapshot.len > 0 && !m->u.snapshot.data) ||
		    !conf_valid(&m->u.snapshot.meta.conf))
			return RAFT_EINVAL;
	}
	return RAFT_OK;
}

int raft_codec_encode_msg(struct raft_codec_buf *out, const struct raft_msg *m)
{
	struct codec_op op;
	struct msg_args a = {.out = out, .in = m};
	size_t len0 = out->len;
	int rc = msg_encode_check(m);

	if (rc != RAFT_OK)
		return rc;
	op_init(&op);
	rc = codec_run(&op, msg_encode_body, &a);
	if (rc != RAFT_OK)
		out->len = len0;
	return rc;
}

static int msg_decode_append(struct codec_op *op, struct msg_args *a)
{
	struct msg_fields f = {0};
	struct raft_msg_append *ap = &a->m->u.append;
	uint64_t term = 0, index = 0;
	char type = 0;
	tpl_bin bin = {NULL, 0};
	tpl_node *tn = tpl_map(FMT_MSG_APPEND, &f.kind, &f.type, &f.from, &f.to, &f.term, &f.flags,
	                       &f.a, &f.b, &f.c, &f.d, &term, &index, &type, &bin);
	int n, rc;

	rc = frame_load(tn, a->frame, a->len);
	if (rc != RAFT_OK)
		return rc;
	if (!msg_fields_valid(&f) || f.type != RAFT_MSG_APPEND)
		return RAFT_ECORRUPT;
	n = tpl_Alen(tn, 1);
	if (n < 0)
		return RAFT_ECORRUPT;
	if ((unsigned)n > RAFT_CODEC_MAX_MSG_ENTRIES)
		return RAFT_ETOOBIG;
	msg_from_fields(&f, a->m);
	op->msg = a->m; /* from here on, a failure frees what we attached */
	if (n > 0) {
		if (codec_alloc_fails())
			return RAFT_ENOMEM;
		ap->entries = calloc((size_t)n, sizeof(*ap->entries));
		if (!ap->entries)
			return RAFT_ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		struct raft_entry *e = &ap->entries[i];
		if (tpl_unpack(tn, 1) <= 0)
			return RAFT_ECORRUPT;
		if (!entry_type_valid((unsigned char)type) ||
		    index != ap->prev_index + 1 + (unsigned)i)
			return RAFT_ECORRUPT;
		e->term = term;
		e->index = index;
		e->type = (uint8_t)type;
		rc = bin_to_buf(&bin, RAFT_CODEC_MAX_ENTRY_BYTES, &e->data);
		if (rc != RAFT_OK)
			return rc;
		e->len = bin.sz;
		ap->n_entries = (uint32_t)i + 1;
	}
	return RAFT_OK;
}

static int msg_decode_snapshot(struct codec_op *op, struct msg_args *a)
{
	struct msg_fields f = {0};
	struct raft_msg_snapshot *s = &a->m->u.snapshot;
	struct raft_conf conf;
	uint64_t offset = 0;
	tpl_bin bin = {NULL, 0};
	tpl_node *tn;
	int rc;

	memset(&conf, 0, sizeof(conf));
	tn = tpl_map(FMT_MSG_SNAPSHOT, &f.kind, &f.type, &f.from, &f.to, &f.term, &f.flags, &f.a,
	             &f.b, &f.c, &f.d, &offset, &conf.n, conf.ids, RAFT_MAX_NODES, &conf.n_old,
	             conf.old_ids, RAFT_MAX_NODES, &bin);
	rc = frame_load(tn, a->frame, a->len);
	if (rc != RAFT_OK)
		return rc;
	if (!msg_fields_valid(&f) || f.type != RAFT_MSG_SNAPSHOT || !conf_valid(&conf) ||
	    f.d > UINT32_MAX) /* d: the image's CRC32C */
		return RAFT_ECORRUPT;
	msg_from_fields(&f, a->m);
	s->meta.conf = conf;
	s->offset = offset;
	op->msg = a->m;
	rc = bin_to_buf(&bin, RAFT_CODEC_MAX_CHUNK_BYTES, &s->data);
	if (rc != RAFT_OK)
		return rc;
	s->len = bin.sz;
	return RAFT_OK;
}

static int msg_decode_body(struct codec_op *op, void *arg)
{
	struct msg_args *a = arg;
	struct msg_fields f = {0};
	tpl_node *tn;
	char *fmt;
	int rc;

	if (raft_codec_frame_check(a->frame, a->len) != RAFT_OK)
		return RAFT_ECORRUPT;
	/* The image's format string tells which of the three message layouts it has. */
	fmt = tpl_peek(TPL_MEM, (void *)((const unsigned char *)a->frame + RAFT_CODEC_HEADER_BYTES),
	               a->len - RAFT_CODEC_HEADER_BYTES);
	if (!fmt)
		return RAFT_ECORRUPT;
	if (strcmp(fmt, FMT_MSG_APPEND) == 0)
		return msg_decode_append(op, a);
	if (strcmp(fmt, FMT_MSG_SNAPSHOT) == 0)
		return msg_decode_snapshot(op, a);
	tn = tpl_map(FMT_MSG, &f.kind, &f.type, &f.from, &f.to, &f.term, &f.flags, &f.a, &f.b, &f.c,
	             &f.d);
	rc = frame_load(tn, a->frame, a->len);
	if (rc != RAFT_OK)
		return rc;
	if (!msg_fields_valid(&f) || f.type == RAFT_MSG_APPEND || f.type == RAFT_MSG_SNAPSHOT)
		return RAFT_ECORRUPT;
	msg_from_fields(&f, a->m);
	return RAFT_OK;
}

int raft_codec_decode_msg(const void *frame, size_t len, struct raft_msg *m)
{
	struct codec_op op;
	struct msg_args a = {.m = m, .frame = frame, .len = len};
	int rc;

	memset(m, 0, sizeof(*m));
	op_init(&op);
	rc = codec_run(&op, msg_decode_body, &a);
	if (rc != RAFT_OK)
		memset(m, 0, sizeof(*m));
	return rc;
}

void raft_codec_msg_free(struct raft_msg *m)
{
	if (m->type == RAFT_MSG_APPEND) {
		for (uint32_t i = 0; i < m->u.append.n_entries; i++)
			raft_buf_unref(m->u.append.entries[i].data);
		free(m->u.append.entries);
		m->u.append.entries = NULL;
		m->u.append.n_entries = 0;
	} else if (m->type == RAFT_MSG_SNAPSHOT) {
		raft_buf_unref(m->u.snapshot.data);
		m->u.snapshot.data = NULL;
		m->u.snapshot.len = 0;
	}
}
