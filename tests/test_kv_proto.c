/* test_kv_proto.c - the client and forwarding frames: round trips and every refusal. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "kv/cmd.h"
#include "kv/proto.h"
#include "raft/raft.h"
#include "tests/lib/cu.h"

static void roundtrip(const struct kv_proto_frame *in, struct kv_proto_frame *out, void **buf)
{
	size_t len, flen;
	const char *why = NULL;

	CU_ASSERT_EQUAL_FATAL(kv_proto_encode(in, buf, &len), 0);
	CU_ASSERT_EQUAL(kv_proto_frame_length(*buf, len, &flen), 1);
	CU_ASSERT_EQUAL(flen, len);
	CU_ASSERT_EQUAL(kv_proto_frame_length(*buf, len - 1, &flen), 0);
	CU_ASSERT_EQUAL_FATAL(kv_proto_decode(*buf, len, out, &why), 0);
	CU_ASSERT_EQUAL(out->type, in->type);
	CU_ASSERT_EQUAL(out->id, in->id);
}

static void test_request_and_response_round_trip_with_their_bodies(void)
{
	struct kv_proto_frame in = {0}, out;
	void *buf;

	in.type = KV_PROTO_REQ;
	in.id = 0x1122334455667788ULL;
	in.timeout_ms = 1234;
	in.body = "command bytes";
	in.body_len = 13;
	roundtrip(&in, &out, &buf);
	CU_ASSERT_EQUAL(out.timeout_ms, 1234);
	CU_ASSERT_EQUAL(out.body_len, 13);
	CU_ASSERT_EQUAL(memcmp(out.body, "command bytes", 13), 0);
	free(buf);

	memset(&in, 0, sizeof(in));
	in.type = KV_PROTO_RESP;
	in.id = 7;
	in.status = KV_STATUS_UNKNOWN;
	in.leader = 3;
	roundtrip(&in, &out, &buf);
	CU_ASSERT_EQUAL(out.status, KV_STATUS_UNKNOWN);
	CU_ASSERT_EQUAL(out.leader, 3);
	CU_ASSERT_EQUAL(out.body_len, 0);
	free(buf);
}

static void test_status_response_round_trips_every_field_of_every_node(void)
{
	struct kv_proto_frame in = {0}, out;
	void *buf;

	in.type = KV_PROTO_STATUS_RESP;
	in.id = 9;
	in.n_status = 9;
	for (unsigned i = 0; i < 9; i++) {
		struct kv_proto_node_status *s = &in.status_of[i];
		s->id = i + 1;
		s->role = (uint8_t)(i % 4);
		s->leader = 2;
		s->term = 100 + i;
		s->commit = 200 + i;
		s->applied = 300 + i;
		s->last_index = 400 + i;
		s->snapshot_index = 500 + i;
		s->log_bytes = 600 + i;
		s->keys = 700 + i;
	}
	roundtrip(&in, &out, &buf);
	CU_ASSERT_EQUAL(out.n_status, 9);
	CU_ASSERT_EQUAL(memcmp(out.status_of, in.status_of, sizeof(in.status_of)), 0);
	free(buf);
}

static void test_response_carries_the_encoded_result_of_a_request(void)
{
	struct kv_result res = {0}, back = {0};
	struct kv_proto_frame out;
	const char *why;
	void *buf;
	size_t len;

	res.op = KV_OP_GET;
	res.status = KV_OK;
	res.exists = true;
	res.value = raft_buf_alloc(5);
	memcpy(res.value, "hello", 5);
	res.value_len = 5;
	CU_ASSERT_EQUAL_FATAL(kv_proto_encode_resp(42, KV_STATUS_OK, 1, &res, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(kv_proto_decode(buf, len, &out, &why), 0);
	CU_ASSERT_EQUAL(out.status, KV_STATUS_OK);
	CU_ASSERT_EQUAL_FATAL(kv_result_decode(out.body, out.body_len, &back), KV_OK);
	CU_ASSERT_EQUAL(back.value_len, 5);
	CU_ASSERT_EQUAL(memcmp(back.value, "hello", 5), 0);
	kv_result_release(&back);
	kv_result_release(&res);
	free(buf);
	/* a failed request carries no body */
	CU_ASSERT_EQUAL_FATAL(kv_proto_encode_resp(43, KV_STATUS_NOT_APPLIED, 0, NULL, &buf, &len),
	                      0);
	CU_ASSERT_EQUAL_FATAL(kv_proto_decode(buf, len, &out, &why), 0);
	CU_ASSERT_EQUAL(out.body_len, 0);
	free(buf);
}

static void test_every_truncation_and_every_flipped_byte_is_refused(void)
{
	struct kv_proto_frame in = {0}, out;
	const char *why;
	unsigned char *buf;
	size_t len;

	in.type = KV_PROTO_STATUS_RESP;
	in.id = 1;
	in.n_status = 2;
	CU_ASSERT_EQUAL_FATAL(kv_proto_encode(&in, (void **)&buf, &len), 0);
	for (size_t cut = 0; cut < len; cut++)
		CU_ASSERT_EQUAL(kv_proto_decode(buf, cut, &out, &why), -1);
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x40;
		CU_ASSERT_EQUAL(kv_proto_decode(buf, len, &out, &why), -1);
		buf[i] ^= 0x40;
	}
	CU_ASSERT_EQUAL(kv_proto_decode(buf, len, &out, &why), 0);
	free(buf);
}

static void test_impossible_lengths_and_types_are_refused(void)
{
	unsigned char tiny[4] = {4, 0, 0, 0}, huge[4] = {0xff, 0xff, 0xff, 0xff};
	struct kv_proto_frame in = {0}, out;
	const char *why;
	size_t flen;
	void *buf;
	size_t len;

	CU_ASSERT_EQUAL(kv_proto_frame_length(tiny, 4, &flen), -1);
	CU_ASSERT_EQUAL(kv_proto_frame_length(huge, 4, &flen), -1);
	CU_ASSERT_EQUAL(kv_proto_frame_length(tiny, 3, &flen), 0);
	in.type = 99;
	CU_ASSERT_EQUAL(kv_proto_encode(&in, &buf, &len), -1);
	in.type = KV_PROTO_STATUS_RESP;
	in.n_status = 10;
	CU_ASSERT_EQUAL(kv_proto_encode(&in, &buf, &len), -1);
	in.n_status = 0;
	in.type = KV_PROTO_STATUS_REQ;
	CU_ASSERT_EQUAL_FATAL(kv_proto_encode(&in, &buf, &len), 0);
	CU_ASSERT_EQUAL(kv_proto_decode(buf, len, &out, &why), 0);
	free(buf);
	CU_ASSERT_STRING_EQUAL(kv_status_name(KV_STATUS_UNKNOWN), "outcome unknown");
	CU_ASSERT_STRING_EQUAL(kv_status_name(99), "unknown status");
}

static CU_TestInfo tests[] = {
        {"test_request_and_response_round_trip_with_their_bodies",
         test_request_and_response_round_trip_with_their_bodies},
        {"test_status_response_round_trips_every_field_of_every_node",
         test_status_response_round_trips_every_field_of_every_node},
        {"test_response_carries_the_encoded_result_of_a_request",
         test_response_carries_the_encoded_result_of_a_request},
        {"test_every_truncation_and_every_flipped_byte_is_refused",
         test_every_truncation_and_every_flipped_byte_is_refused},
        {"test_impossible_lengths_and_types_are_refused",
         test_impossible_lengths_and_types_are_refused},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"kv_proto", NULL, NULL, NULL, NULL, tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	return cu_main(argc, argv, suites);
}
