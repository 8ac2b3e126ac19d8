/* proto.c - frames between clients and nodes, and between nodes forwarding requests (proto.h). */
#include "kv/proto.h"

#include <stdlib.h>
#include <string.h>

#include "kv/cmd.h"
#include "raft/crc32c.h"
#include "raft/le.h"
#include "raft/raft.h"
#include "raft/transport.h"

#define STATUS_RECORD_BYTES 65u /* u32 id, u8 role, u32 leader, 7 x u64 */
/* Bytes of a result beside its value when it has no directory entries (kv/cmd.h), at most. */
#define RESULT_FRAMING_BYTES 256u

/* The length field counts what follows it: CRC, type, id, the type's fields, the body. */
_Static_assert(4u + 1u + 8u + 4u + (uint64_t)KV_VALUE_BYTES_LIMIT + KV_CMD_MAX_FRAMING_BYTES <=
                       KV_PROTO_MAX_FRAME_BYTES,
               "a request with the largest command fits a frame");
_Static_assert(4u + 1u + 8u + 1u + 4u + (uint64_t)KV_VALUE_BYTES_LIMIT + RESULT_FRAMING_BYTES <=
                       KV_PROTO_MAX_FRAME_BYTES,
               "an answer with the largest value fits a frame");
_Static_assert(4u + (uint64_t)KV_PROTO_MAX_FRAME_BYTES <= RAFT_TRANSPORT_MAX_PAYLOAD_BYTES,
               "a frame forwarded between nodes fits a transport frame");

static const char *const status_names[KV_STATUS_COUNT] = {
        [KV_STATUS_OK] = "ok",
        [KV_STATUS_NOT_APPLIED] = "not applied",
        [KV_STATUS_UNKNOWN] = "outcome unknown",
        [KV_STATUS_BAD_REQUEST] = "bad request",
        [KV_STATUS_SHUTDOWN] = "node shutting down",
};

const char *kv_status_name(int status)
{
	if (status < 0 || status >= KV_STATUS_COUNT)
		return "unknown status";
	return status_names[status];
}

static void put_u8(unsigned char **p, uint8_t v)
{
	*(*p)++ = v;
}

static void put_u32(unsigned char **p, uint32_t v)
{
	raft_le_put32(*p, v);
	*p += 4;
}

static void put_u64(unsigned char **p, uint64_t v)
{
	raft_le_put64(*p, v);
	*p += 8;
}

/* A bounded reader over the frame's payload. */
struct rd {
	const unsigned char *p;
	size_t left;
	bool bad;
};

static uint8_t rd_u8(struct rd *r)
{
	if (r->left < 1) {
		r->bad = true;
		return 0;
	}
	r->left--;
	return *r->p++;
}

static uint32_t rd_u32(struct rd *r)
{
	uint32_t v;

	if (r->left < 4) {
		r->bad = true;
		return 0;
	}
	v = raft_le_get32(r->p);
	r->p += 4;
	r->left -= 4;
	return v;
}

static uint64_t rd_u64(struct rd *r)
{
	uint64_t v;

	if (r->left < 8) {
		r->bad = true;
		return 0;
	}
	v = raft_le_get64(r->p);
	r->p += 8;
	r->left -= 8;
	return v;
}

int kv_proto_frame_length(const void *buf, size_t avail, size_t *frame_len)
{
	uint32_t len;

	if (avail < 4)
		return 0;
	len = raft_le_get32(buf);
	if (len < 5 || len > KV_PROTO_MAX_FRAME_BYTES)
		return -1;
	if (avail < 4 + (size_t)len)
		return 0;
	*frame_len = 4 + (size_t)len;
	return 1;
}

int kv_proto_decode(const void *buf, size_t len, struct kv_proto_frame *f, const char **why)
{
	const unsigned char *b = buf;
	struct rd r;
	uint32_t flen;

	memset(f, 0, sizeof(*f));
	*why = "truncated frame";
	if (len < KV_PROTO_HEADER_BYTES + 1)
		return -1;
	flen = raft_le_get32(b);
	if (flen < 5 || flen > KV_PROTO_MAX_FRAME_BYTES || (size_t)flen + 4 != len) {
		*why = "bad frame length";
		return -1;
	}
	if (raft_crc32c(0, b + 8, len - 8) != raft_le_get32(b + 4)) {
		*why = "frame checksum mismatch";
		return -1;
	}
	r.p = b + 8;
	r.left = len - 8;
	r.bad = false;
	f->type = rd_u8(&r);
	f->id = rd_u64(&r);
	switch (f->type) {
	case KV_PROTO_REQ:
		f->timeout_ms = rd_u32(&r);
		break;
	case KV_PROTO_RESP:
		f->status = rd_u8(&r);
		f->leader = rd_u32(&r);
		if (f->status >= KV_STATUS_COUNT) {
			*why = "bad status";
			return -1;
		}
		break;
	case KV_PROTO_STATUS_REQ:
		break;
	case KV_PROTO_STATUS_RESP:
		f->n_status = rd_u32(&r);
		if (f->n_status > sizeof(f->status_of) / sizeof(f->status_of[0])) {
			*why = "too many node records";
			return -1;
		}
		for (uint32_t i = 0; i < f->n_status && !r.bad; i++) {
			struct kv_proto_node_status *s = &f->status_of[i];
			s->id = rd_u32(&r);
			s->role = rd_u8(&r);
			s->leader = rd_u32(&r);
			s->term = rd_u64(&r);
			s->commit = rd_u64(&r);
			s->applied = rd_u64(&r);
			s->last_index = rd_u64(&r);
			s->snapshot_index = rd_u64(&r);
			s->log_bytes = rd_u64(&r);
			s->keys = rd_u64(&r);
		}
		break;
	default:
		*why = "unknown frame type";
		return -1;
	}
	if (r.bad) {
		*why = "truncated frame";
		return -1;
	}
	f->body = r.left ? r.p : NULL;
	f->body_len = r.left;
	if (f->type != KV_PROTO_REQ && f->type != KV_PROTO_RESP && r.left) {
		*why = "trailing bytes";
		return -1;
	}
	return 0;
}

int kv_proto_encode(const struct kv_proto_frame *f, void **out, size_t *out_len)
{
	size_t fixed = 1 + 8, total;
	unsigned char *buf, *p;

	switch (f->type) {
	case KV_PROTO_REQ:
		fixed += 4 + f->body_len;
		break;
	case KV_PROTO_RESP:
		fixed += 1 + 4 + f->body_len;
		break;
	case KV_PROTO_STATUS_REQ:
		break;
	case KV_PROTO_STATUS_RESP:
		if (f->n_status > sizeof(f->status_of) / sizeof(f->status_of[0]))
			return -1;
		fixed += 4 + (size_t)f->n_status * STATUS_RECORD_BYTES;
		break;
	default:
		return -1;
	}
	if (fixed + 4 > KV_PROTO_MAX_FRAME_BYTES)
		return -1;
	total = KV_PROTO_HEADER_BYTES + fixed;
	buf = malloc(total);
	if (!buf)
		return -1;
	p = buf + KV_PROTO_HEADER_BYTES;
	put_u8(&p, f->type);
	put_u64(&p, f->id);
	switch (f->type) {
	case KV_PROTO_REQ:
		put_u32(&p, f->timeout_ms);
		break;
	case KV_PROTO_RESP:
		put_u8(&p, f->status);
		put_u32(&p, f->leader);
		break;
	case KV_PROTO_STATUS_RESP:
		put_u32(&p, f->n_status);
		for (uint32_t i = 0; i < f->n_status; i++) {
			const struct kv_proto_node_status *s = &f->status_of[i];
			put_u32(&p, s->id);
			put_u8(&p, s->role);
			put_u32(&p, s->leader);
			put_u64(&p, s->term);
			put_u64(&p, s->commit);
			put_u64(&p, s->applied);
			put_u64(&p, s->last_index);
			put_u64(&p, s->snapshot_index);
			put_u64(&p, s->log_bytes);
			put_u64(&p, s->keys);
		}
		break;
	}
	if (f->body_len && (f->type == KV_PROTO_REQ || f->type == KV_PROTO_RESP)) {
		memcpy(p, f->body, f->body_len);
		p += f->body_len;
	}
	{
		unsigned char *h = buf;
		put_u32(&h, (uint32_t)(total - 4));
		put_u32(&h, raft_crc32c(0, buf + 8, total - 8));
	}
	*out = buf;
	*out_len = total;
	return 0;
}

int kv_proto_encode_resp(uint64_t id, int status, uint32_t leader, const struct kv_result *result,
                         void **out, size_t *out_len)
{
	struct kv_proto_frame f = {0};
	void *body = NULL;
	size_t body_len = 0;
	int rv;

	f.type = KV_PROTO_RESP;
	f.id = id;
	f.status = (uint8_t)status;
	f.leader = leader;
	if (status == KV_STATUS_OK) {
		if (kv_result_encode(result, &body, &body_len) != KV_OK)
			f.status = KV_STATUS_UNKNOWN;
		f.body = body;
		f.body_len = body_len;
	}
	rv = kv_proto_encode(&f, out, out_len);
	raft_buf_unref(body);
	return rv;
}
