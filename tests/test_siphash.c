/* test_siphash.c - SipHash-2-4 against the paper's 64 published test vectors. */
#include <stdint.h>
#include <string.h>

#include "raft/siphash.h"
#include "tests/lib/cu.h"

/*
 * SipHash-2-4 of the messages 00, 00 01, ..., 00 01 .. 3e (lengths 0 to 63) under the key
 * 00 01 .. 0f: the vectors of the paper's reference implementation (appendix A gives the
 * 15-byte one step by step), as little-endian 64-bit values.
 */
static const uint64_t vectors[64] = {
        0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL, 0x85676696d7fb7e2dULL,
        0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL, 0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL,
        0x93f5f5799a932462ULL, 0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
        0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL, 0xa129ca6149be45e5ULL,
        0x3f2acc7f57c29bdbULL, 0x699ae9f52cbe4794ULL, 0x4bc1b3f0968dd39cULL, 0xbb6dc91da77961bdULL,
        0xbed65cf21aa2ee98ULL, 0xd0f2cbb02e3b67c7ULL, 0x93536795e3a33e88ULL, 0xa80c038ccd5ccec8ULL,
        0xb8ad50c6f649af94ULL, 0xbce192de8a85b8eaULL, 0x17d835b85bbb15f3ULL, 0x2f2e6163076bcfadULL,
        0xde4daaaca71dc9a5ULL, 0xa6a2506687956571ULL, 0xad87a3535c49ef28ULL, 0x32d892fad841c342ULL,
        0x7127512f72f27cceULL, 0xa7f32346f95978e3ULL, 0x12e0b01abb051238ULL, 0x15e034d40fa197aeULL,
        0x314dffbe0815a3b4ULL, 0x027990f029623981ULL, 0xcadcd4e59ef40c4dULL, 0x9abfd8766a33735cULL,
        0x0e3ea96b5304a7d0ULL, 0xad0c42d6fc585992ULL, 0x187306c89bc215a9ULL, 0xd4a60abcf3792b95ULL,
        0xf935451de4f21df2ULL, 0xa9538f0419755787ULL, 0xdb9acddff56ca510ULL, 0xd06c98cd5c0975ebULL,
        0xe612a3cb9ecba951ULL, 0xc766e62cfcadaf96ULL, 0xee64435a9752fe72ULL, 0xa192d576b245165aULL,
        0x0a8787bf8ecb74b2ULL, 0x81b3e73d20b49b6fULL, 0x7fa8220ba3b2eceaULL, 0x245731c13ca42499ULL,
        0xb78dbfaf3a8d83bdULL, 0xea1ad565322a1a0bULL, 0x60e61c23a3795013ULL, 0x6606d7e446282b93ULL,
        0x6ca4ecb15c5f91e1ULL, 0x9f626da15c9625f3ULL, 0xe51b38608ef25f57ULL, 0x958a324ceb064572ULL,
};

static const struct raft_siphash_key paper_key = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};

static void test_siphash24_matches_the_published_test_vectors(void)
{
	unsigned char msg[64];

	for (unsigned i = 0; i < 64; i++)
		msg[i] = (unsigned char)i;
	for (unsigned len = 0; len < 64; len++)
		CU_ASSERT_EQUAL(raft_siphash24(&paper_key, msg, len), vectors[len]);
}

/* The input's address does not matter (no aligned loads), and the result depends on every key
 * bit: flipping any one changes the hash of the same bytes. */
static void test_siphash24_reads_any_alignment_and_depends_on_every_key_bit(void)
{
	unsigned char buf[64 + 8];

	for (unsigned shift = 0; shift < 8; shift++) {
		for (unsigned i = 0; i < 64; i++)
			buf[shift + i] = (unsigned char)i;
		for (unsigned len = 0; len < 64; len++)
			CU_ASSERT_EQUAL(raft_siphash24(&paper_key, buf + shift, len), vectors[len]);
	}
	for (unsigned bit = 0; bit < 128; bit++) {
		struct raft_siphash_key k = paper_key;
		if (bit < 64)
			k.k0 ^= 1ULL << bit;
		else
			k.k1 ^= 1ULL << (bit - 64);
		CU_ASSERT_NOT_EQUAL(raft_siphash24(&k, buf + 7, 15), vectors[15]);
	}
}

static CU_TestInfo siphash_tests[] = {
        {"test_siphash24_matches_the_published_test_vectors",
         test_siphash24_matches_the_published_test_vectors},
        {"test_siphash24_reads_any_alignment_and_depends_on_every_key_bit",
         test_siphash24_reads_any_alignment_and_depends_on_every_key_bit},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"siphash", NULL, NULL, NULL, NULL, siphash_tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	return cu_main(argc, argv, suites);
}
