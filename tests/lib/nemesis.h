/* nemesis.h - what the nemesis clients (tests/tools/nemesis_client.c) and their audit share. */
#ifndef TESTS_LIB_NEMESIS_H
#define TESTS_LIB_NEMESIS_H

#include <stddef.h>
#include <stdint.h>

#define NEMESIS_KEY_BYTES 32 /* a key name and its NUL */
#define NEMESIS_NS_PER_S ((int64_t)1000000000)

/*
 * Client ids of a history: mount clients from 1, descriptor clients from 600, fork clients from
 * 700, clerk clients from 800, the key setup 900, final reads of mount i 1000 + i and of node
 * i's clerk 1100 + i.
 */
#define NEMESIS_CLIENT_FD_BASE 600
#define NEMESIS_CLIENT_FORK_BASE 700
#define NEMESIS_CLIENT_CLERK_BASE 800
#define NEMESIS_CLIENT_SETUP 900
#define NEMESIS_CLIENT_FINAL_BASE 1000
#define NEMESIS_CLIENT_FINAL_CLERK_BASE 1100

enum nemesis_client_kind {
	NEMESIS_MOUNT,
	NEMESIS_CLERK,
	NEMESIS_FD,
	NEMESIS_FORK,
	NEMESIS_CLIENT_KINDS
};

/* The kind of client id client, or -1 for the setup and the final reads. */
int nemesis_client_kind(int client);

/*
 * The keys of a run: k0..k(keys-1), then the rotated keys f<slot>.<generation> of fd_keys slots
 * for each of generations generations, generation by generation.
 */
struct nemesis_keys {
	int keys;
	int fd_keys;
	int generations;
};

int nemesis_key_count(const struct nemesis_keys *k);

/* Key i (< nemesis_key_count(k)) of the run into buf (NEMESIS_KEY_BYTES). */
void nemesis_key_name(const struct nemesis_keys *k, int i, char *buf);

/* Rotated key slot of generation gen into buf (NEMESIS_KEY_BYTES). */
void nemesis_rotated_name(int slot, int gen, char *buf);

/* A malloc'd copy of the n bytes at p with a NUL after them (the caller frees it), or NULL. */
char *nemesis_dup_bytes(const char *p, size_t n);

/*
 * Reads the history file back and prints operations per minute by kind and outcome and per
 * client kind, and the direct checks of the final values of k0..: every token in them was
 * written, none twice, a Put's token only first; no acknowledged Append or Put that nothing
 * could have overwritten is missing; every key was read back alike everywhere (the rotated ones,
 * whose tokens WriteAt and Truncate cut, are checked for that only). Returns 0, 1 when a check
 * failed, 2 when the history cannot be read.
 */
int nemesis_audit(const char *history, const struct nemesis_keys *keys);

#endif
