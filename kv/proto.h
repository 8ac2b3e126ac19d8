/* proto.h - frames between clients and nodes, and between nodes forwarding client requests. */
#ifndef KV_PROTO_H
#define KV_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Every frame, on a client connection (after the transport's hello) or as the payload of a
 * transport application frame between nodes:
 *
 *   u32 len    bytes after this field (>= 5, <= KV_PROTO_MAX_FRAME_BYTES)
 *   u32 crc    CRC32C of the bytes after this field
 *   u8  type   enum kv_proto_type
 *   ...        the type's fields, little-endian, then an opaque body to the end of the frame
 *
 *   REQ          u64 id  u32 timeout_ms                     body: encoded command (kv/cmd.h)
 *   RESP         u64 id  u8 status  u32 leader              body: encoded result (status OK)
 *   STATUS_REQ   u64 id
 *   STATUS_RESP  u64 id  u32 n, n x struct kv_proto_node_status (fixed 65 bytes each)
 *
 * The length and CRC are checked before anything else is decoded; a frame that fails is
 * refused whole (the connection that sent it is closed).
 */

/* The largest command and a result with the largest value fit with room to spare (checked at
 * compile time in proto.c); the rest is for ReadDir results of large directories. */
#define KV_PROTO_MAX_FRAME_BYTES ((64u << 20) + 4096u)
#define KV_PROTO_HEADER_BYTES 8u

enum kv_proto_type {
	KV_PROTO_REQ = 1,
	KV_PROTO_RESP = 2,
	KV_PROTO_STATUS_REQ = 3,
	KV_PROTO_STATUS_RESP = 4,
};

/* How a request ended, as a client sees it. */
enum kv_status {
	KV_STATUS_OK = 0, /* applied (or read); the body holds the result */
	KV_STATUS_NOT_APPLIED, /* certainly not applied: no leader in time, refused, expired */
	KV_STATUS_UNKNOWN, /* proposed, but no answer in time: it may or may not apply */
	KV_STATUS_BAD_REQUEST, /* malformed or over a limit: never applied */
	KV_STATUS_SHUTDOWN, /* the node is stopping: never applied */
	KV_STATUS_COUNT
};

const char *kv_status_name(int status);

struct kv_proto_node_status {
	uint32_t id;
	uint8_t role; /* enum raft_role */
	uint32_t leader;
	uint64_t term;
	uint64_t commit;
	uint64_t applied;
	uint64_t last_index;
	uint64_t snapshot_index;
	uint64_t log_bytes;
	uint64_t keys;
};

struct kv_proto_frame {
	uint8_t type;
	uint64_t id;
	uint32_t timeout_ms; /* REQ */
	uint8_t status; /* RESP */
	uint32_t leader; /* RESP: leader known to the node, 0 if none */
	const void *body; /* REQ, RESP: points into the decoded buffer */
	size_t body_len;
	uint32_t n_status; /* STATUS_RESP */
	struct kv_proto_node_status status_of[9];
};

/* Length of the complete frame at buf if avail bytes hold it: 1 and *frame_len; 0 when more
 * bytes are needed; -1 when the length field is impossible (the stream is unusable). */
int kv_proto_frame_length(const void *buf, size_t avail, size_t *frame_len);

/* Decodes one complete frame (checking length and CRC first). body borrows from buf.
 * Returns 0, or -1 with *why set to a static reason. */
int kv_proto_decode(const void *buf, size_t len, struct kv_proto_frame *f, const char **why);

/* Encodes f into a malloc'd buffer the caller frees; 0 or -1 (out of memory, too big). */
int kv_proto_encode(const struct kv_proto_frame *f, void **out, size_t *out_len);

struct kv_result;

/* Encodes the RESP frame answering request id: status, leader hint and, when status is
 * KV_STATUS_OK, the encoded result (an unencodable result turns the status into
 * KV_STATUS_UNKNOWN: it was applied, but the answer cannot travel). 0 or -1. */
int kv_proto_encode_resp(uint64_t id, int status, uint32_t leader, const struct kv_result *result,
                         void **out, size_t *out_len);

#endif
