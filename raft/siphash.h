/* siphash.h - SipHash-2-4, a keyed hash for tables whose keys come from clients. */
#ifndef RAFT_SIPHASH_H
#define RAFT_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/*
 * SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012): a 64-bit
 * pseudorandom function of a 128-bit key. Without the key, nobody can choose inputs that
 * collide, which an unkeyed hash of names lets a client do at will (hash flooding: one chain
 * holding every name, each insert and lookup scanning it). The key is the 16 bytes k0 (bytes 0
 * to 7, little-endian) and k1 (bytes 8 to 15), as the paper's test vectors give it.
 */
struct raft_siphash_key {
	uint64_t k0;
	uint64_t k1;
};

/* The SipHash-2-4 of len bytes at buf under key. */
uint64_t raft_siphash24(const struct raft_siphash_key *key, const void *buf, size_t len);

#endif /* RAFT_SIPHASH_H */
