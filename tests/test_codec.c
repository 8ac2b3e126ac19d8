/* test_codec.c - framed tpl records and messages: round trips, limits, and hostile input. */
#include <stdlib.h>
#include <string.h>

#include "raft/codec.h"
#include "raft/crc32c.h"
#include "raft/le.h"
#include "tests/lib/cu.h"
#include "tests/lib/samples.h"

/* --- helpers ---------------------------------------------------------------------------------- */

static void *buf_of(const char *s)
{
	void *b = raft_buf_alloc(strlen(s));

	CU_ASSERT_FATAL(b != NULL);
	memcpy(b, s, strlen(s));
	return b;
}

/* Recomputes the CRC of a frame whose image was edited, so that tpl sees the edit. */
static void reseal(unsigned char *frame, size_t len)
{
	uint32_t crc = raft_crc32c(0, frame, 4);

	crc = raft_crc32c(crc, frame + RAFT_CODEC_HEADER_BYTES, len - RAFT_CODEC_HEADER_BYTES);
	raft_le_put32(frame + 4, crc);
}

/* The sample message of type from 2 to 3; a snapshot chunk carries the 100 bytes of chunk. */
static void sample_msg(int type, struct raft_msg *m, struct raft_entry *entries,
                       unsigned char *chunk)
{
	samples_msg(type, 2, 3, m, entries);
	if (type == RAFT_MSG_SNAPSHOT) {
		m->u.snapshot.len = 100;
		m->u.snapshot.data = chunk;
	}
}

/* --- round trips ------------------------------------------------------------------------------ */

static void test_hard_state_round_trips(void)
{
	struct raft_codec_buf out;
	struct raft_hard_state hs = {.term = 0x7edcba9876543210ull, .vote = 5}, got;
	uint64_t seq = 0;

	raft_codec_buf_init(&out);
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_hard_state(&out, 42, &hs), RAFT_OK);
	CU_ASSERT_EQUAL(raft_codec_frame_check(out.data, out.len), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(raft_codec_decode_hard_state(out.data, out.len, &seq, &got), RAFT_OK);
	CU_ASSERT_EQUAL(seq, 42);
	CU_ASSERT_EQUAL(got.term, hs.term);
	CU_ASSERT_EQUAL(got.vote, 5);
	raft_codec_buf_free(&out);
}

/* A term past RAFT_MAX_TERM is no node's: on disk it is damage, as it would wrap to 0 at the
 * next election. */
static void test_records_of_a_term_past_the_last_are_corrupt(void)
{
	struct raft_hard_state hs = {.term = RAFT_MAX_TERM + 1, .vote = 5}, got;
	struct raft_entry e = {.term = RAFT_MAX_TERM + 1, .index = 3, .type = RAFT_ENTRY_NOOP}, ge;
	struct raft_snapshot_meta m = {.index = 9, .term = RAFT_MAX_TERM + 1, .size = 4}, gm;
	struct raft_codec_buf out;
	uint64_t seq;

	m.conf.n = 1;
	m.conf.ids[0] = 1;
	raft_codec_buf_init(&out);
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_hard_state(&out, 1, &hs), RAFT_OK);
	CU_ASSERT_EQUAL(raft_codec_decode_hard_state(out.data, out.len, &seq, &got), RAFT_ECORRUPT);
	out.len = 0;
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_entry(&out, &e), RAFT_OK);
	CU_ASSERT_EQUAL(raft_codec_decode_entry(out.data, out.len, &ge), RAFT_ECORRUPT);
	out.len = 0;
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_snapshot_meta(&out, &m), RAFT_OK);
	CU_ASSERT_EQUAL(raft_codec_decode_snapshot_meta(out.data, out.len, &gm), RAFT_ECORRUPT);
	out.len = 0;
	hs.term = RAFT_MAX_TERM;
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_hard_state(&out, 1, &hs), RAFT_OK);
	CU_ASSERT_EQUAL(raft_codec_decode_hard_state(out.data, out.len, &seq, &got), RAFT_OK);
	raft_codec_buf_free(&out);
}

static void test_entries_with_and_without_data_round_trip(void)
{
	struct raft_codec_buf out;
	struct raft_entry e = {.term = 3, .index = 17, .type = RAFT_ENTRY_NORMAL, .len = 5};
	struct raft_entry noop = {.term = 4, .index = 18, .type = RAFT_ENTRY_NOOP};
	struct raft_entry got;
	size_t first;

	e.data = buf_of("hello");
	raft_codec_buf_init(&out);
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_entry(&out, &e), RAFT_OK);
	first = out.len;
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_entry(&out, &noop), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(raft_codec_decode_entry(out.data, first, &got), RAFT_OK);
	CU_ASSERT_TRUE(samples_entries_equal(&e, &got, 1));
	raft_buf_unref(got.data);
	CU_ASSERT_EQUAL_FATAL(raft_codec_decode_entry(out.data + first, out.len - first, &got),
	                      RAFT_OK);
	CU_ASSERT_TRUE(samples_entries_equal(&noop, &got, 1));
	CU_ASSERT_PTR_NULL(got.data);
	raft_buf_unref(e.data);
	raft_codec_buf_free(&out);
}

static void test_snapshot_meta_round_trips_with_its_configuration(void)
{
	struct raft_codec_buf out;
	struct raft_snapshot_meta m = {.index = 100, .term = 7, .size = 123456, .crc = 0xabcdef01u},
	                          got;

	m.conf = samples_conf();
	raft_codec_buf_init(&out);
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_snapshot_meta(&out, &m), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(raft_codec_decode_snapshot_meta(out.data, out.len, &got), RAFT_OK);
	CU_ASSERT_EQUAL(got.crc, 0xabcdef01u);
	CU_ASSERT_EQUAL(got.index, 100);
	CU_ASSERT_EQUAL(got.term, 7);
	CU_ASSERT_EQUAL(got.size, 123456);
	CU_ASSERT_EQUAL(memcmp(&got.conf, &m.conf, sizeof(m.conf)), 0);
	raft_codec_buf_free(&out);
}

static void test_every_message_type_round_trips(void)
{
	unsigned char chunk[100];

	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (unsigned char)(i * 7);
	for (int type = RAFT_MSG_VOTE; type < RAFT_MSG_TYPE_COUNT; type++) {
		struct raft_entry entries[SAMPLES_MSG_ENTRIES];
		struct raft_msg m, got;
		struct raft_codec_buf out;
		raft_codec_buf_init(&out);
		sample_msg(type, &m, entries, chunk);
		CU_ASSERT_EQUAL_FATAL(raft_codec_encode_msg(&out, &m), RAFT_OK);
		CU_ASSERT_EQUAL_FATAL(raft_codec_decode_msg(out.data, out.len, &got), RAFT_OK);
		CU_ASSERT_TRUE(samples_msgs_equal(&m, &got));
		raft_codec_msg_free(&got);
		raft_codec_buf_free(&out);
	}
}

static void test_an_empty_append_and_an_empty_snapshot_chunk_round_trip(void)
{
	struct raft_msg m, got;
	struct raft_codec_buf out;

	raft_codec_buf_init(&out);
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_APPEND;
	m.u.append.prev_index = 5;
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_msg(&out, &m), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(raft_codec_decode_msg(out.data, out.len, &got), RAFT_OK);
	CU_ASSERT_TRUE(samples_msgs_equal(&m, &got));
	CU_ASSERT_PTR_NULL(got.u.append.entries);
	raft_codec_msg_free(&got);
	out.len = 0;
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_SNAPSHOT;
	m.u.snapshot.meta.index = 3;
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_msg(&out, &m), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(raft_codec_decode_msg(out.data, out.len, &got), RAFT_OK);
	CU_ASSERT_EQUAL(got.u.snapshot.len, 0);
	CU_ASSERT_PTR_NULL(got.u.snapshot.data);
	raft_codec_msg_free(&got);
	raft_codec_buf_free(&out);
}

/* --- limits and bad input --------------------------------------------------------------------- */

static void test_frame_length_reports_what_a_stream_reader_needs(void)
{
	struct raft_codec_buf out;
	struct raft_hard_state hs = {1, 1};
	unsigned char bad[8] = {0};
	size_t need = 0;

	raft_codec_buf_init(&out);
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_hard_state(&out, 1, &hs), RAFT_OK);
	for (size_t avail = 0; avail <= out.len; avail++) {
		CU_ASSERT_EQUAL(raft_codec_frame_length(out.data, avail, &need), RAFT_OK);
		CU_ASSERT_EQUAL(
		        need, avail < RAFT_CODEC_HEADER_BYTES ? RAFT_CODEC_HEADER_BYTES : out.len);
	}
	CU_ASSERT_EQUAL(raft_codec_frame_length(bad, sizeof(bad), &need), RAFT_ECORRUPT);
	raft_le_put32(bad, RAFT_CODEC_MAX_FRAME_BYTES);
	CU_ASSERT_EQUAL(raft_codec_frame_length(bad, sizeof(bad), &need), RAFT_ETOOBIG);
	raft_codec_buf_free(&out);
}

static void test_encoders_refuse_what_is_over_a_limit(void)
{
	struct raft_codec_buf out;
	struct raft_entry e = {.term = 1, .index = 1, .type = RAFT_ENTRY_NORMAL};
	struct raft_msg m;
	unsigned char byte = 0;

	raft_codec_buf_init(&out);
	e.len = RAFT_CODEC_MAX_ENTRY_BYTES + 1;
	e.data = &byte; /* never read: the length is refused first */
	CU_ASSERT_EQUAL(raft_codec_encode_entry(&out, &e), RAFT_ETOOBIG);
	e.len = 3;
	e.data = NULL;
	CU_ASSERT_EQUAL(raft_codec_encode_entry(&out, &e), RAFT_EINVAL);
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_APPEND;
	m.u.append.n_entries = RAFT_CODEC_MAX_MSG_ENTRIES + 1;
	m.u.append.entries = &e;
	CU_ASSERT_EQUAL(raft_codec_encode_msg(&out, &m), RAFT_ETOOBIG);
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_SNAPSHOT;
	m.u.snapshot.len = RAFT_CODEC_MAX_CHUNK_BYTES + 1;
	m.u.snapshot.data = &byte;
	CU_ASSERT_EQUAL(raft_codec_encode_msg(&out, &m), RAFT_ETOOBIG);
	m.type = RAFT_MSG_TYPE_COUNT;
	CU_ASSERT_EQUAL(raft_codec_encode_msg(&out, &m), RAFT_EINVAL);
	m.type = RAFT_MSG_SNAPSHOT;
	m.u.snapshot.len = 0;
	m.u.snapshot.meta.conf.n = RAFT_MAX_NODES + 1;
	CU_ASSERT_EQUAL(raft_codec_encode_msg(&out, &m), RAFT_EINVAL);
	CU_ASSERT_EQUAL(out.len, 0);
	raft_codec_buf_free(&out);
}

/* The sample message of type as a frame in out (the caller frees it). */
static void encode_sample(int type, struct raft_codec_buf *out)
{
	unsigned char chunk[100];
	struct raft_entry entries[SAMPLES_MSG_ENTRIES];
	struct raft_msg m;

	memset(chunk, 0x5a, sizeof(chunk));
	raft_codec_buf_init(out);
	sample_msg(type, &m, entries, chunk);
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_msg(out, &m), RAFT_OK);
}

static void test_a_message_is_refused_at_every_truncation_and_every_flipped_byte(void)
{
	for (int type = RAFT_MSG_VOTE; type < RAFT_MSG_TYPE_COUNT; type++) {
		struct raft_msg got;
		struct raft_codec_buf out;
		encode_sample(type, &out);
		for (size_t len = 0; len < out.len; len++)
			CU_ASSERT_EQUAL(raft_codec_decode_msg(out.data, len, &got), RAFT_ECORRUPT);
		for (size_t i = 0; i < out.len; i++) {
			out.data[i] ^= 0x40;
			CU_ASSERT_EQUAL(raft_codec_decode_msg(out.data, out.len, &got),
			                RAFT_ECORRUPT);
			out.data[i] ^= 0x40;
		}
		raft_codec_buf_free(&out);
	}
}

/* With a valid CRC the bytes reach tpl: every flipped byte must still be refused or decode to
 * something sane, never crash (ASan watches). */
static void test_resealed_images_with_flipped_bytes_never_crash_the_decoder(void)
{
	for (int type = RAFT_MSG_VOTE; type < RAFT_MSG_TYPE_COUNT; type++) {
		struct raft_msg got;
		struct raft_codec_buf out;
		encode_sample(type, &out);
		for (size_t i = RAFT_CODEC_HEADER_BYTES; i < out.len; i++) {
			for (int bit = 0; bit < 8; bit++) {
				int rc;
				out.data[i] ^= (unsigned char)(1u << bit);
				reseal(out.data, out.len);
				rc = raft_codec_decode_msg(out.data, out.len, &got);
				CU_ASSERT(rc == RAFT_OK || rc == RAFT_ECORRUPT ||
				          rc == RAFT_ETOOBIG);
				if (rc == RAFT_OK)
					raft_codec_msg_free(&got);
				out.data[i] ^= (unsigned char)(1u << bit);
			}
		}
		raft_codec_buf_free(&out);
	}
}

/* tpl accepts an A(...) count >= 2^31 (it reads it as a negative int): the codec must not. */
static void test_an_append_with_a_huge_entry_count_is_refused(void)
{
	struct raft_codec_buf out;
	struct raft_msg m, got;
	size_t count_at;

	raft_codec_buf_init(&out);
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_APPEND;
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_msg(&out, &m), RAFT_OK);
	/* the empty array's count is the image's last 4 bytes */
	count_at = out.len - 4;
	CU_ASSERT_EQUAL(out.data[count_at], 0);
	raft_le_put32(out.data + count_at, 0x80000000u);
	reseal(out.data, out.len);
	CU_ASSERT_EQUAL(raft_codec_decode_msg(out.data, out.len, &got), RAFT_ECORRUPT);
	raft_le_put32(out.data + count_at, 0xffffffffu);
	reseal(out.data, out.len);
	CU_ASSERT_EQUAL(raft_codec_decode_msg(out.data, out.len, &got), RAFT_ECORRUPT);
	raft_codec_buf_free(&out);
}

static void test_a_record_of_one_kind_does_not_decode_as_another(void)
{
	struct raft_codec_buf out;
	struct raft_hard_state hs = {2, 3};
	struct raft_entry e;
	struct raft_msg m;
	struct raft_snapshot_meta meta;

	raft_codec_buf_init(&out);
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_hard_state(&out, 1, &hs), RAFT_OK);
	CU_ASSERT_EQUAL(raft_codec_decode_entry(out.data, out.len, &e), RAFT_ECORRUPT);
	CU_ASSERT_EQUAL(raft_codec_decode_msg(out.data, out.len, &m), RAFT_ECORRUPT);
	CU_ASSERT_EQUAL(raft_codec_decode_snapshot_meta(out.data, out.len, &meta), RAFT_ECORRUPT);
	raft_codec_buf_free(&out);
}

static void test_a_message_with_flags_or_fields_its_type_lacks_is_refused(void)
{
	struct raft_codec_buf out;
	struct raft_msg m, got;

	/* encode a heartbeat-resp, then relabel it a timeout-now, which has no scalar fields */
	raft_codec_buf_init(&out);
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_HEARTBEAT_RESP;
	m.u.heartbeat_resp.read_seq = 9;
	CU_ASSERT_EQUAL_FATAL(raft_codec_encode_msg(&out, &m), RAFT_OK);
	CU_ASSERT_EQUAL_FATAL(raft_codec_decode_msg(out.data, out.len, &got), RAFT_OK);
	/* the type byte follows the 4-byte kind at the start of the data: find it by value */
	for (size_t i = RAFT_CODEC_HEADER_BYTES; i + 5 < out.len; i++) {
		if (out.data[i] == RAFT_CODEC_KIND_MSG && out.data[i + 1] == 0 &&
		    out.data[i + 2] == 0 && out.data[i + 3] == 0 &&
		    out.data[i + 4] == RAFT_MSG_HEARTBEAT_RESP) {
			out.data[i + 4] = RAFT_MSG_TIMEOUT_NOW;
			break;
		}
	}
	reseal(out.data, out.len);
	CU_ASSERT_EQUAL(raft_codec_decode_msg(out.data, out.len, &got), RAFT_ECORRUPT);
	raft_codec_buf_free(&out);
}

/* --- allocation failures ---------------------------------------------------------------------- */

struct alloc_countdown {
	unsigned long n; /* fail the nth allocation (1-based); 0: never */
	unsigned long calls;
	bool fired;
};

static bool countdown_fail(void *ctx)
{
	struct alloc_countdown *c = ctx;

	if (++c->calls == c->n) {
		c->fired = true;
		return true;
	}
	return false;
}

static void test_allocation_failures_are_clean_errors_at_every_point(void)
{
	unsigned char chunk[100];
	unsigned long sweeps = 0;

	memset(chunk, 1, sizeof(chunk));
	for (int type = RAFT_MSG_VOTE; type < RAFT_MSG_TYPE_COUNT; type++) {
		struct raft_entry entries[SAMPLES_MSG_ENTRIES];
		struct raft_msg m, got;
		struct raft_codec_buf good;
		raft_codec_buf_init(&good);
		sample_msg(type, &m, entries, chunk);
		CU_ASSERT_EQUAL_FATAL(raft_codec_encode_msg(&good, &m), RAFT_OK);
		for (unsigned long n = 1;; n++) {
			struct alloc_countdown c = {.n = n};
			struct raft_codec_buf out;
			int enc, dec;
			raft_codec_buf_init(&out);
			raft_codec_set_alloc_fault(countdown_fail, &c);
			enc = raft_codec_encode_msg(&out, &m);
			dec = raft_codec_decode_msg(good.data, good.len, &got);
			raft_codec_set_alloc_fault(NULL, NULL);
			CU_ASSERT(enc == RAFT_OK || enc == RAFT_ENOMEM);
			CU_ASSERT(dec == RAFT_OK || dec == RAFT_ENOMEM);
			if (enc != RAFT_OK)
				CU_ASSERT_EQUAL(out.len, 0);
			if (dec == RAFT_OK) {
				CU_ASSERT_TRUE(samples_msgs_equal(&m, &got));
				raft_codec_msg_free(&got);
			}
			raft_codec_buf_free(&out);
			sweeps++;
			if (!c.fired)
				break;
			CU_ASSERT(enc == RAFT_ENOMEM || dec == RAFT_ENOMEM);
		}
		raft_codec_buf_free(&good);
	}
	CU_ASSERT(sweeps > 2 * (RAFT_MSG_TYPE_COUNT - 1));
}

static CU_TestInfo round_trip_tests[] = {
        {"test_hard_state_round_trips", test_hard_state_round_trips},
        {"test_records_of_a_term_past_the_last_are_corrupt",
         test_records_of_a_term_past_the_last_are_corrupt},
        {"test_entries_with_and_without_data_round_trip",
         test_entries_with_and_without_data_round_trip},
        {"test_snapshot_meta_round_trips_with_its_configuration",
         test_snapshot_meta_round_trips_with_its_configuration},
        {"test_every_message_type_round_trips", test_every_message_type_round_trips},
        {"test_an_empty_append_and_an_empty_snapshot_chunk_round_trip",
         test_an_empty_append_and_an_empty_snapshot_chunk_round_trip},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo bad_input_tests[] = {
        {"test_frame_length_reports_what_a_stream_reader_needs",
         test_frame_length_reports_what_a_stream_reader_needs},
        {"test_encoders_refuse_what_is_over_a_limit", test_encoders_refuse_what_is_over_a_limit},
        {"test_a_message_is_refused_at_every_truncation_and_every_flipped_byte",
         test_a_message_is_refused_at_every_truncation_and_every_flipped_byte},
        {"test_resealed_images_with_flipped_bytes_never_crash_the_decoder",
         test_resealed_images_with_flipped_bytes_never_crash_the_decoder},
        {"test_an_append_with_a_huge_entry_count_is_refused",
         test_an_append_with_a_huge_entry_count_is_refused},
        {"test_a_record_of_one_kind_does_not_decode_as_another",
         test_a_record_of_one_kind_does_not_decode_as_another},
        {"test_a_message_with_flags_or_fields_its_type_lacks_is_refused",
         test_a_message_with_flags_or_fields_its_type_lacks_is_refused},
        {"test_allocation_failures_are_clean_errors_at_every_point",
         test_allocation_failures_are_clean_errors_at_every_point},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"round_trip", NULL, NULL, NULL, NULL, round_trip_tests},
        {"bad_input", NULL, NULL, NULL, NULL, bad_input_tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	return cu_main(argc, argv, suites);
}
