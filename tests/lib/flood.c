/* flood.c - names crafted to collide under the store's former unkeyed hash (flood.h). */
#include "tests/lib/flood.h"

#include <stdbool.h>
#include <string.h>

#define GOLDEN 0x9e3779b97f4a7c15ULL
#define MIX_C1 0xbf58476d1ce4e5b9ULL
#define MIX_C2 0x94d049bb133111ebULL

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= MIX_C1;
	x ^= x >> 27;
	x *= MIX_C2;
	x ^= x >> 31;
	return x;
}

/* The inverse of x ^= x >> s. */
static uint64_t unshift(uint64_t y, unsigned s)
{
	uint64_t x = y;

	for (unsigned k = s; k < 64; k += s)
		x ^= y >> k;
	return x;
}

/* The inverse of an odd multiplier modulo 2^64 (Newton: each step doubles the good bits). */
static uint64_t inverse(uint64_t c)
{
	uint64_t x = c;

	for (int i = 0; i < 6; i++)
		x *= 2 - c * x;
	return x;
}

static uint64_t unmix64(uint64_t x)
{
	x = unshift(x, 31);
	x *= inverse(MIX_C2);
	x = unshift(x, 27);
	x *= inverse(MIX_C1);
	return unshift(x, 30);
}

static uint64_t load_le(const unsigned char *p, size_t n)
{
	uint64_t w = 0;

	for (size_t i = 0; i < n; i++)
		w |= (uint64_t)p[i] << (8 * i);
	return w;
}

/* kv/store.c's hash_bytes and name_hash as they were. */
uint32_t flood_unkeyed_name_hash(uint64_t parent_ino, const char *name, size_t len)
{
	const unsigned char *p = (const unsigned char *)name;
	uint64_t h = mix64(parent_ino ^ (GOLDEN * (len + 1)));

	while (len >= 8) {
		h = mix64(h ^ load_le(p, 8)) + GOLDEN;
		p += 8;
		len -= 8;
	}
	if (len)
		h = mix64(h ^ load_le(p, len) ^ ((uint64_t)len << 59));
	return (uint32_t)mix64(h);
}

static uint64_t splitmix(uint64_t *s)
{
	return mix64(*s += GOLDEN);
}

static bool name_bytes_ok(uint64_t w)
{
	for (int i = 0; i < 8; i++) {
		unsigned char c = (unsigned char)(w >> (8 * i));
		if (c == 0 || c == '/')
			return false;
	}
	return true;
}

/*
 * A 16-byte name is two words w1, w2: hash = mix(mix(mix(h0 ^ w1) + G ^ w2) + G) with h0 fixed
 * by the parent and the length. Pick w1 and the high half of the hash freely, then solve for w2.
 */
void flood_names(uint64_t parent_ino, uint32_t target, uint64_t seed, size_t n, char *names)
{
	uint64_t h0 = mix64(parent_ino ^ (GOLDEN * (FLOOD_NAME_BYTES + 1))), rng = seed;

	for (size_t i = 0; i < n;) {
		uint64_t w1 = splitmix(&rng), hi = splitmix(&rng), h1, h2, w2;
		unsigned char *out = (unsigned char *)names + i * FLOOD_NAME_BYTES;

		/* the first word: printable, so names are easy to read in a failure */
		for (int k = 0; k < 8; k++)
			out[k] = (unsigned char)('a' + ((w1 >> (8 * k)) & 0xff) % 26);
		w1 = load_le(out, 8);
		h1 = mix64(h0 ^ w1) + GOLDEN;
		h2 = unmix64(((hi << 32) | target)) - GOLDEN;
		w2 = unmix64(h2) ^ h1;
		if (!name_bytes_ok(w2))
			continue;
		for (int k = 0; k < 8; k++)
			out[8 + k] = (unsigned char)(w2 >> (8 * k));
		i++;
	}
}
