/* fuzz_codec.c - libFuzzer target: the frame, record and message decoders on hostile bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/codec.h"
#include "raft/crc32c.h"
#include "tests/fuzz/fuzzlib.h"
#include "tests/lib/samples.h"

/*
 * Each input is tried twice: as it is (so the length and CRC checks are fuzzed), and wrapped in
 * a frame with a correct length and CRC (so the bytes reach tpl_load and our field checks).
 * A message that decodes must encode again and decode to the same message. Mutations keep the
 * frames' CRCs right most of the time (fuzz_mutate_fixing), so that they reach tpl_load.
 */

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_codec: %s\n", what);
		abort();
	}
}

static void msg_round_trip(const struct raft_msg *m)
{
	struct raft_codec_buf out;
	struct raft_msg again;
	int rc;

	raft_codec_buf_init(&out);
	rc = raft_codec_encode_msg(&out, m);
	check(rc == RAFT_OK, "a decoded message does not encode");
	rc = raft_codec_decode_msg(out.data, out.len, &again);
	check(rc == RAFT_OK, "a re-encoded message does not decode");
	check(samples_msgs_equal(m, &again), "round trip changed the message");
	raft_codec_msg_free(&again);
	raft_codec_buf_free(&out);
}

static void decode_all(const uint8_t *frame, size_t len)
{
	struct raft_msg m;
	struct raft_entry e;
	struct raft_hard_state hs;
	struct raft_snapshot_meta meta;
	uint64_t seq;

	if (raft_codec_decode_msg(frame, len, &m) == RAFT_OK) {
		msg_round_trip(&m);
		raft_codec_msg_free(&m);
	}
	if (raft_codec_decode_entry(frame, len, &e) == RAFT_OK) {
		check(e.len == 0 || e.data != NULL, "entry without data");
		raft_buf_unref(e.data);
	}
	(void)raft_codec_decode_hard_state(frame, len, &seq, &hs);
	if (raft_codec_decode_snapshot_meta(frame, len, &meta) == RAFT_OK)
		check(meta.conf.n <= RAFT_MAX_NODES && meta.conf.n_old <= RAFT_MAX_NODES,
		      "configuration out of bounds");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0, need;
	uint8_t *framed;
	uint32_t crc;

	/* as a stream of frames, the way the transport and recovery walk them */
	while (off < size && raft_codec_frame_length(data + off, size - off, &need) == RAFT_OK &&
	       need <= size - off) {
		decode_all(data + off, need);
		off += need;
	}
	decode_all(data, size);

	/* wrapped in a valid frame */
	if (size > RAFT_CODEC_MAX_FRAME_BYTES - RAFT_CODEC_HEADER_BYTES)
		return 0;
	framed = malloc(size + RAFT_CODEC_HEADER_BYTES);
	if (!framed)
		return 0;
	for (int i = 0; i < 4; i++)
		framed[i] = (uint8_t)(size >> (8 * i));
	memcpy(framed + RAFT_CODEC_HEADER_BYTES, data, size);
	crc = raft_crc32c(raft_crc32c(0, framed, 4), data, size);
	for (int i = 0; i < 4; i++)
		framed[4 + i] = (uint8_t)(crc >> (8 * i));
	decode_all(framed, size + RAFT_CODEC_HEADER_BYTES);
	free(framed);
	return 0;
}

static void fix(uint8_t *data, size_t size)
{
	fuzz_fix_codec_frames(data, size);
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	return fuzz_mutate_fixing(data, size, max_size, seed, fix);
}
