/* siphash.c - SipHash-2-4 (siphash.h). */
#include "raft/siphash.h"

static uint64_t rotl(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

/* Little-endian load of n (0..8) bytes. */
static uint64_t load_le(const unsigned char *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

struct sip_state {
	uint64_t v0, v1, v2, v3;
};

/* One SipRound (paper, section 2). */
static void sip_round(struct sip_state *s)
{
	s->v0 += s->v1;
	s->v1 = rotl(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = rotl(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = rotl(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = rotl(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = rotl(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = rotl(s->v2, 32);
}

/* Compression of one 64-bit message word: c = 2 rounds. */
static void sip_compress(struct sip_state *s, uint64_t m)
{
	s->v3 ^= m;
	sip_round(s);
	sip_round(s);
	s->v0 ^= m;
}

uint64_t raft_siphash24(const struct raft_siphash_key *key, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	/* the initial state: the key xored with "somepseudorandomlygeneratedbytes" */
	struct sip_state s = {
	        .v0 = key->k0 ^ 0x736f6d6570736575ULL,
	        .v1 = key->k1 ^ 0x646f72616e646f6dULL,
	        .v2 = key->k0 ^ 0x6c7967656e657261ULL,
	        .v3 = key->k1 ^ 0x7465646279746573ULL,
	};
	size_t left = len;

	for (; left >= 8; p += 8, left -= 8)
		sip_compress(&s, load_le(p, 8));
	/* the last word: the remaining bytes, and the length mod 256 in the top byte */
	sip_compress(&s, load_le(p, left) | ((uint64_t)(len & 0xff) << 56));
	/* finalization: d = 4 rounds */
	s.v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		sip_round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}
