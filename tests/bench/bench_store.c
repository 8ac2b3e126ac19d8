/* bench_store.c - apply speed of the kv state machine for ordinary names and for crafted ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/cmd.h"
#include "kv/store.h"
#include "raft/raft.h"
#include "tests/lib/flood.h"

/*
 * Usage: bench_store [--names=N]
 * Applies N Puts of one-byte values under the root to a new store, then N Gets of the same
 * keys, twice: with names of random letters, and with names crafted to share one bucket under
 * the store's former unkeyed hash (tests/lib/flood.h, issue 15 item 10). Prints the time of
 * each pass and per operation. With an unkeyed hash the crafted pass grows as N^2 (each insert
 * and lookup scans one chain of every name); with a keyed one both passes stay linear.
 * Asserts nothing about time. Default N: 20000.
 */

#define DEFAULT_NAMES 20000u
#define T0 1700000000000ULL

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void random_names(size_t n, char *names)
{
	uint64_t x = 88172645463325252ULL;

	for (size_t i = 0; i < n * FLOOD_NAME_BYTES; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		names[i] = (char)('a' + x % 26);
	}
}

/* Applies op on every name (index from *index on); returns the seconds it took, or -1. */
static double apply_all(struct kv_store *s, int op, const char *names, size_t n, uint64_t *index)
{
	struct kv_cmd c;
	double t0 = now_s();

	memset(&c, 0, sizeof(c));
	c.op = (uint8_t)op;
	c.time_ms = T0;
	c.mode = 0644;
	c.key_len = FLOOD_NAME_BYTES;
	if (op == KV_OP_PUT) {
		c.data = "v";
		c.data_len = 1;
	}
	for (size_t i = 0; i < n; i++) {
		struct kv_result r;
		void *buf;
		size_t len;
		int rv;

		c.key = names + i * FLOOD_NAME_BYTES;
		if (kv_cmd_encode(&c, &buf, &len) != KV_OK)
			return -1;
		rv = kv_store_apply(s, (*index)++, buf, len, &r);
		raft_buf_unref(buf);
		if (rv != KV_OK || r.status != KV_OK) {
			fprintf(stderr, "bench_store: %s %zu: %s\n", kv_op_name(op), i,
			        kv_strerror(rv != KV_OK ? rv : r.status));
			kv_result_release(&r);
			return -1;
		}
		kv_result_release(&r);
	}
	return now_s() - t0;
}

static int run(const char *what, const char *names, size_t n)
{
	struct kv_store *s;
	uint64_t index = 1;
	double put, get;

	if (kv_store_new(NULL, &s) != KV_OK)
		return -1;
	put = apply_all(s, KV_OP_PUT, names, n, &index);
	get = put < 0 ? -1 : apply_all(s, KV_OP_GET, names, n, &index);
	kv_store_free(s);
	if (put < 0 || get < 0)
		return -1;
	printf("%-8s %8zu | %9.3f %9.2f | %9.3f %9.2f\n", what, n, put, put / (double)n * 1e6, get,
	       get / (double)n * 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	size_t n = DEFAULT_NAMES;
	char *names;
	int rv = 0;

	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--names=", 8) == 0 && atol(argv[i] + 8) > 0) {
			n = (size_t)atol(argv[i] + 8);
		} else {
			fprintf(stderr, "usage: %s [--names=N]\n", argv[0]);
			return 2;
		}
	}
	names = malloc(n * FLOOD_NAME_BYTES);
	if (!names) {
		fprintf(stderr, "bench_store: out of memory\n");
		return 1;
	}
	printf("bench_store: Puts then Gets of %zu names of %d bytes under the root\n", n,
	       FLOOD_NAME_BYTES);
	printf("%-8s %8s | %9s %9s | %9s %9s\n", "names", "n", "put s", "put us/op", "get s",
	       "get us/op");
	random_names(n, names);
	rv |= run("random", names, n);
	flood_names(1, 0x5eed, 42, n, names);
	rv |= run("crafted", names, n);
	free(names);
	return rv ? 1 : 0;
}
