/* samples.h - sample data for the tests: raft messages, kv commands, an in-memory stream. */
#ifndef TESTS_LIB_SAMPLES_H
#define TESTS_LIB_SAMPLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/store.h"
#include "raft/raft.h"

/* --- raft messages (test_codec, test_transport) ------------------------------------------------ */

#define SAMPLES_MSG_ENTRIES 3 /* entries of the sample append */

/* A joint configuration: nodes 1, 2 and 3, coming from nodes 7 and 9. */
struct raft_conf samples_conf(void);

/*
 * Fills m with a message of type from -> to whose fields all hold distinct values (the term is
 * 0x0102030405060708 + type, so that messages of two types differ there too). An append
 * carries SAMPLES_MSG_ENTRIES entries written to entries (which may be NULL for the other
 * types): a no-op without data, then two normal entries of 10 and 20 bytes of static data that
 * no one frees. A snapshot chunk, of a snapshot of samples_conf(), is left without data (len 0,
 * data NULL) for the caller to give it some. Allocates nothing.
 */
void samples_msg(int type, uint32_t from, uint32_t to, struct raft_msg *m,
                 struct raft_entry *entries);

/* Compares entries, and messages field by field: the header, each type's fields, an append's
 * entries (index, term, type, bytes), a chunk's bytes (the union's padding is not compared). */
bool samples_entries_equal(const struct raft_entry *a, const struct raft_entry *b, size_t n);
bool samples_msgs_equal(const struct raft_msg *a, const struct raft_msg *b);

/* --- kv commands and snapshot streams (test_kv_store, test_kv_snapshot) ------------------------ */

#define SAMPLES_UID 1000
#define SAMPLES_GID 100

/* A command op on key (NULL: none; it must outlive the command) at time_ms, from
 * SAMPLES_UID:SAMPLES_GID with mode 0644; every other field zero. */
struct kv_cmd samples_kv_cmd(int op, const char *key, uint64_t time_ms);

/* Encodes c and applies it to s at index, asserting that both succeed (a failed encoding ends
 * the test). Returns the result's status; *r, when r is not NULL, gets the result, which the
 * caller releases (kv_result_release). */
int samples_kv_apply(struct kv_store *s, uint64_t index, const struct kv_cmd *c,
                     struct kv_result *r);

/* A growable byte stream in memory, for kv_snapshot_save and kv_snapshot_restore. Zero it
 * before use (or point buf and len at bytes to read); buf is the owner's to free. */
struct samples_stream {
	unsigned char *buf;
	size_t len; /* bytes written */
	size_t cap;
	size_t pos; /* bytes read */
	int fail_at; /* samples_stream_write fails its fail_at-th call (1-based); 0: never */
	int calls; /* samples_stream_write calls so far */
};

/* A kv_snapshot_write_fn over a struct samples_stream: appends n bytes. 0 or -1. */
int samples_stream_write(void *ctx, const void *p, size_t n);

/* A kv_snapshot_read_fn over a struct samples_stream: the next n bytes, or -1 (and nothing
 * read) when fewer are left. */
int samples_stream_read(void *ctx, void *p, size_t n);

#endif
