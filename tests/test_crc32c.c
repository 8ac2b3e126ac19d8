/* test_crc32c.c - CRC-32C against published check values, and the table and SSE4.2 paths agree. */
#include <stdint.h>
#include <string.h>

#include "raft/crc32c.h"
#include "tests/lib/cu.h"

static void test_crc32c_matches_the_standard_check_value(void)
{
	CU_ASSERT_EQUAL(raft_crc32c(0, "123456789", 9), 0xe3069283u);
	CU_ASSERT_EQUAL(raft_crc32c_sw(0, "123456789", 9), 0xe3069283u);
	CU_ASSERT_EQUAL(raft_crc32c(0, "", 0), 0u);
}

/* RFC 3720 (iSCSI) appendix B.4 test patterns. */
static void test_crc32c_matches_the_iscsi_test_patterns(void)
{
	unsigned char buf[32];

	memset(buf, 0, sizeof(buf));
	CU_ASSERT_EQUAL(raft_crc32c(0, buf, sizeof(buf)), 0x8a9136aau);
	memset(buf, 0xff, sizeof(buf));
	CU_ASSERT_EQUAL(raft_crc32c(0, buf, sizeof(buf)), 0x62a8ab43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)i;
	CU_ASSERT_EQUAL(raft_crc32c(0, buf, sizeof(buf)), 0x46dd794eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)(31 - i);
	CU_ASSERT_EQUAL(raft_crc32c(0, buf, sizeof(buf)), 0x113fdb5cu);
}

static void test_crc32c_table_and_hardware_agree_at_every_length_and_alignment(void)
{
	unsigned char buf[600];
	uint32_t x = 12345;

	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)(x >> 16);
	}
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len += 7)
			CU_ASSERT_EQUAL(raft_crc32c(0, buf + off, len),
			                raft_crc32c_sw(0, buf + off, len));
}

static void test_crc32c_of_pieces_equals_crc_of_the_whole(void)
{
	const char *s = "the quick brown fox jumps over the lazy dog";
	size_t n = strlen(s);
	uint32_t whole = raft_crc32c(0, s, n);

	for (size_t cut = 0; cut <= n; cut++) {
		CU_ASSERT_EQUAL(raft_crc32c(raft_crc32c(0, s, cut), s + cut, n - cut), whole);
		CU_ASSERT_EQUAL(raft_crc32c_sw(raft_crc32c_sw(0, s, cut), s + cut, n - cut), whole);
	}
}

static CU_TestInfo crc_tests[] = {
        {"test_crc32c_matches_the_standard_check_value",
         test_crc32c_matches_the_standard_check_value},
        {"test_crc32c_matches_the_iscsi_test_patterns",
         test_crc32c_matches_the_iscsi_test_patterns},
        {"test_crc32c_table_and_hardware_agree_at_every_length_and_alignment",
         test_crc32c_table_and_hardware_agree_at_every_length_and_alignment},
        {"test_crc32c_of_pieces_equals_crc_of_the_whole",
         test_crc32c_of_pieces_equals_crc_of_the_whole},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"crc32c", NULL, NULL, NULL, NULL, crc_tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	return cu_main(argc, argv, suites);
}
