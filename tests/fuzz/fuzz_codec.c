/* fuzz_codec.c - libFuzzer target: the frame, record and message decoders on hostile bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/codec.h"
#include "raft/crc32c.h"
#include "tests/fuzz/fuzzlib.h"

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

static bool metas_equal(const struct raft_snapshot_meta *a, const struct raft_snapshot_meta *b)
{
	if (a->index != b->index || a->term != b->term || a->size != b->size || a->crc != b->crc ||
	    a->conf.n != b->conf.n || a->conf.n_old != b->conf.n_old)
		return false;
	for (unsigned i = 0; i < a->conf.n && i < RAFT_MAX_NODES; i++)
		if (a->conf.ids[i] != b->conf.ids[i])
			return false;
	for (unsigned i = 0; i < a->conf.n_old && i < RAFT_MAX_NODES; i++)
		if (a->conf.old_ids[i] != b->conf.old_ids[i])
			return false;
	return true;
}

/* The fixed fields of each message type (entries and chunk data are compared apart). */
static bool scalars_equal(const struct raft_msg *a, const struct raft_msg *b)
{
	switch (a->type) {
	case RAFT_MSG_VOTE:
		return a->u.vote.last_log_index == b->u.vote.last_log_index &&
		        a->u.vote.last_log_term == b->u.vote.last_log_term &&
		        a->u.vote.pre_vote == b->u.vote.pre_vote &&
		        a->u.vote.transfer == b->u.vote.transfer;
	case RAFT_MSG_VOTE_RESP:
		return a->u.vote_resp.pre_vote == b->u.vote_resp.pre_vote &&
		        a->u.vote_resp.granted == b->u.vote_resp.granted;
	case RAFT_MSG_APPEND:
		return a->u.append.prev_index == b->u.append.prev_index &&
		        a->u.append.prev_term == b->u.append.prev_term &&
		        a->u.append.commit == b->u.append.commit;
	case RAFT_MSG_APPEND_RESP:
		return a->u.append_resp.success == b->u.append_resp.success &&
		        a->u.append_resp.index == b->u.append_resp.index &&
		        a->u.append_resp.hint_index == b->u.append_resp.hint_index &&
		        a->u.append_resp.hint_term == b->u.append_resp.hint_term &&
		        a->u.append_resp.last_index == b->u.append_resp.last_index;
	case RAFT_MSG_HEARTBEAT:
		return a->u.heartbeat.commit == b->u.heartbeat.commit &&
		        a->u.heartbeat.read_seq == b->u.heartbeat.read_seq;
	case RAFT_MSG_HEARTBEAT_RESP:
		return a->u.heartbeat_resp.read_seq == b->u.heartbeat_resp.read_seq &&
		        a->u.heartbeat_resp.last_index == b->u.heartbeat_resp.last_index;
	case RAFT_MSG_SNAPSHOT:
		return metas_equal(&a->u.snapshot.meta, &b->u.snapshot.meta) &&
		        a->u.snapshot.offset == b->u.snapshot.offset &&
		        a->u.snapshot.last == b->u.snapshot.last;
	case RAFT_MSG_SNAPSHOT_RESP:
		return a->u.snapshot_resp.index == b->u.snapshot_resp.index &&
		        a->u.snapshot_resp.next_offset == b->u.snapshot_resp.next_offset &&
		        a->u.snapshot_resp.done == b->u.snapshot_resp.done &&
		        a->u.snapshot_resp.reject == b->u.snapshot_resp.reject;
	case RAFT_MSG_READ_INDEX:
		return a->u.read_index.ctx == b->u.read_index.ctx;
	case RAFT_MSG_READ_INDEX_RESP:
		return a->u.read_index_resp.ctx == b->u.read_index_resp.ctx &&
		        a->u.read_index_resp.index == b->u.read_index_resp.index &&
		        a->u.read_index_resp.ok == b->u.read_index_resp.ok;
	default:
		return true; /* TIMEOUT_NOW: the header only */
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
	check(again.type == m->type && again.from == m->from && again.to == m->to &&
	              again.term == m->term,
	      "round trip changed the header");
	check(scalars_equal(m, &again), "round trip changed a field");
	if (m->type == RAFT_MSG_APPEND) {
		check(again.u.append.n_entries == m->u.append.n_entries, "entry count changed");
		for (uint32_t i = 0; i < m->u.append.n_entries; i++) {
			const struct raft_entry *a = &m->u.append.entries[i];
			const struct raft_entry *b = &again.u.append.entries[i];
			check(a->index == b->index && a->term == b->term && a->len == b->len &&
			              (a->len == 0 || memcmp(a->data, b->data, a->len) == 0),
			      "entry changed");
		}
	} else if (m->type == RAFT_MSG_SNAPSHOT) {
		check(again.u.snapshot.len == m->u.snapshot.len &&
		              (m->u.snapshot.len == 0 ||
		               memcmp(again.u.snapshot.data, m->u.snapshot.data,
		                      m->u.snapshot.len) == 0),
		      "chunk changed");
	}
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
