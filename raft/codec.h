/* codec.h - framed tpl records and messages: the on-disk and on-the-wire encoding of raft state. */
#ifndef RAFT_CODEC_H
#define RAFT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

/*
 * Every record and message is one frame (man raftfs(5)):
 *
 *   u32 image_len (little endian) | u32 crc32c(image_len bytes, image) | tpl image
 *
 * A decoder checks the length bounds and the CRC before tpl sees a byte, then loads the image
 * with tpl from memory (tpl_load TPL_MEM, bounded by image_len). The first field of every image
 * is its kind (enum raft_codec_kind). In raft/ only codec.c and tplguard.c (the hooks that keep
 * tpl from exiting the process) include <tpl.h>.
 *
 * Errors: RAFT_ECORRUPT for anything malformed (bad CRC, bad length, undecodable image, a field
 * out of range), RAFT_ETOOBIG for a frame, entry, chunk or entry count over its limit,
 * RAFT_EINVAL for a bad argument to an encoder, RAFT_ENOMEM. An encoder that fails leaves the
 * output buffer as it was.
 */

#define RAFT_CODEC_HEADER_BYTES 8u
#define RAFT_CODEC_MIN_IMAGE_BYTES 9u /* the smallest tpl image: magic, flags, length, NUL */
#define RAFT_CODEC_MAX_FRAME_BYTES (64u << 20) /* header + image */
#define RAFT_CODEC_MAX_ENTRY_BYTES RAFT_MAX_ENTRY_BYTES /* payload of one entry (raft.h) */
#define RAFT_CODEC_MAX_MSG_ENTRIES RAFT_MAX_MSG_ENTRIES /* entries in one AppendEntries */
#define RAFT_CODEC_MAX_CHUNK_BYTES (16u << 20) /* data of one InstallSnapshot chunk */

enum raft_codec_kind {
	RAFT_CODEC_KIND_HARD_STATE = 1,
	RAFT_CODEC_KIND_ENTRY = 2,
	RAFT_CODEC_KIND_SNAPSHOT_META = 3,
	RAFT_CODEC_KIND_MSG = 4
};

/* A growable output buffer. Zero-initialise it (or raft_codec_buf_init); the bytes belong to
 * the owner of the struct, released by raft_codec_buf_free. */
struct raft_codec_buf {
	unsigned char *data;
	size_t len; /* bytes in use, <= cap */
	size_t cap;
};

void raft_codec_buf_init(struct raft_codec_buf *b);
void raft_codec_buf_free(struct raft_codec_buf *b);
/* Makes room for extra more bytes after len. RAFT_ENOMEM or RAFT_ETOOBIG (size_t overflow). */
int raft_codec_buf_reserve(struct raft_codec_buf *b, size_t extra);

/*
 * How many bytes the frame starting at buf needs in all (header + image), from the avail bytes
 * present. When avail < RAFT_CODEC_HEADER_BYTES, *frame_len is the header size. A caller that
 * sees *frame_len > avail reads more (a stream) or has a torn record (a file). Errors:
 * RAFT_ECORRUPT (image length below the tpl minimum), RAFT_ETOOBIG (over
 * RAFT_CODEC_MAX_FRAME_BYTES). Reads only the header; the CRC is checked by the decoders.
 */
int raft_codec_frame_length(const void *buf, size_t avail, size_t *frame_len);

/* Checks length and CRC of exactly one frame of len bytes: RAFT_OK or RAFT_ECORRUPT. */
int raft_codec_frame_check(const void *frame, size_t len);

/* Encoders append one frame to out. Decoders take exactly one frame (frame, len). */

/* Hard state with its metadata sequence number (the newer of the two metadata files wins). */
int raft_codec_encode_hard_state(struct raft_codec_buf *out, uint64_t seq,
                                 const struct raft_hard_state *hs);
int raft_codec_decode_hard_state(const void *frame, size_t len, uint64_t *seq,
                                 struct raft_hard_state *hs);

/* One log entry. e->data must hold e->len bytes (NULL when len is 0). On decode, e->data is a
 * new raft_buf (one reference, the caller's: raft_buf_unref it) or NULL when len is 0. */
int raft_codec_encode_entry(struct raft_codec_buf *out, const struct raft_entry *e);
int raft_codec_decode_entry(const void *frame, size_t len, struct raft_entry *e);

/* Snapshot metadata, with meta->crc the CRC32C of the image bytes it describes. */
int raft_codec_encode_snapshot_meta(struct raft_codec_buf *out,
                                    const struct raft_snapshot_meta *meta);
int raft_codec_decode_snapshot_meta(const void *frame, size_t len, struct raft_snapshot_meta *meta);

/*
 * A message of any RAFT_MSG_* type. Entry payloads of an append and the data of a snapshot
 * chunk are copied into the frame; a snapshot chunk with len > 0 needs data (the core leaves it
 * NULL: the transport fills it from raft_storage_snapshot_read first).
 * On decode, *m owns what it points to: entries (a malloc'd array whose data are raft_bufs, one
 * reference each) and snapshot data (a raft_buf); release them with raft_codec_msg_free. On
 * error *m holds nothing that needs freeing (raft_codec_msg_free on it is harmless).
 */
int raft_codec_encode_msg(struct raft_codec_buf *out, const struct raft_msg *m);
int raft_codec_decode_msg(const void *frame, size_t len, struct raft_msg *m);
/* Releases what raft_codec_decode_msg allocated into m and zeroes those fields. */
void raft_codec_msg_free(struct raft_msg *m);

/*
 * Test hook: when set, fail(ctx) is asked before each allocation the codec makes on this
 * thread (its own and tpl's); true makes that allocation fail. NULL removes the hook.
 */
void raft_codec_set_alloc_fault(bool (*fail)(void *ctx), void *ctx);

#endif /* RAFT_CODEC_H */
