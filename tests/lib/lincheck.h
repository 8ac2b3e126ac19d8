/* lincheck.h - linearizability checker for key/value histories: Put, Append, Get, Delete, WriteAt,
 * Truncate. */
#ifndef TESTS_LIB_LINCHECK_H
#define TESTS_LIB_LINCHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * The model: each key holds a byte string. Get of a missing key returns "" (so a missing key and an
 * empty value cannot be told apart, and the checker treats them as one state); Put sets the value;
 * Append concatenates (Append to a missing key acts like Put); Delete makes the key missing;
 * WriteAt(offset, bytes) writes the bytes at offset, zero-filling a gap past the end, so that the
 * value is max(old size, offset + length) bytes long (a missing key is created: kv/store.c
 * do_write); Truncate(size) cuts the value to size bytes or zero-fills it up to size (on a missing
 * key the real system answers ENOENT, so a Truncate that succeeded found the key: the model,
 * which cannot tell a missing key from an empty one, lets it act on "").
 *
 * A history is a list of completed or abandoned operations with their call and return times (any
 * monotone int64 clock). Two operations are ordered in real time when one returned strictly before
 * the other was called; at equal times they count as concurrent. Each operation has a status:
 *   LIN_STATUS_OK       it took effect exactly once between its call and its return;
 *   LIN_STATUS_FAILED   it definitely did not take effect (the checker drops it);
 *   LIN_STATUS_UNKNOWN  timeout, EIO, lost connection: it may have taken effect at any time after
 *                       its call, or never; its return time is ignored (infinite). An unknown Get
 *                       has nothing to check and is dropped.
 *
 * lin_check() searches for a linearization per key (linearizability is compositional, so a
 * history is linearizable when every key's sub-history is): a Wing-Gong search with Lowe's
 * memoization of (set of linearized ops, value), trying the op that must return first before the
 * others. Sound reductions keep it fast: a Get that matches the value now is placed at once; a
 * configuration is pruned when an explored one has the same definite ops and value but a subset
 * of the unknown-outcome ops, or when some pending Get can no longer read its result (a coarser
 * test when a WriteAt or Truncate may come before that Get, get_reachable_rewrites()); an
 * unknown write whose input no Get ever returned is dropped, and a definite one makes the value
 * an opaque "unreadable" state, both only when no WriteAt or Truncate can come after it (one
 * could cut or overwrite the input, leaving a Get that saw part of it). Values are interned
 * (hash, then real bytes compared), so equal states are found exactly; a WriteAt or Truncate
 * spells its value out, so keys written that way cost memory in proportion to their size, and
 * unknown ops pile up on such keys (none is dropped): keep them to a few hundred ops each (the
 * nemesis rotates its keys for them). The search has a wall-clock, step and memory budget;
 * running out gives LIN_TIMEOUT, which a caller must treat as a failure.
 */

/* Errors of the checker and the history reader. 0 is success. */
enum lin_err {
	LIN_OK = 0,
	LIN_ENOMEM, /* allocation failed */
	LIN_EINVAL, /* bad argument, or an operation that cannot be in a history */
	LIN_EIO, /* reading or writing a history file failed */
	LIN_EPARSE, /* a history file has a malformed line */
	LIN_ETOOBIG, /* a history or file over LIN_MAX_OPS or LIN_MAX_FILE_BYTES */
	LIN_ERR_COUNT
};

/* Static string describing an error; never NULL. */
const char *lin_strerror(int err);

/* Limits. */
#define LIN_MAX_OPS (1u << 24) /* operations in one history */
#define LIN_MAX_FILE_BYTES ((size_t)1 << 30) /* size of a history file */
#define LIN_TIME_INFINITY INT64_MAX /* return time of an operation whose outcome is unknown */
/* WriteAt: offset + length; Truncate: size (the model builds such values byte by byte) */
#define LIN_MAX_VALUE_BYTES ((uint64_t)1 << 26)

enum lin_kind { LIN_PUT, LIN_APPEND, LIN_GET, LIN_DELETE, LIN_WRITE_AT, LIN_TRUNCATE };
#define LIN_KIND_COUNT 6

enum lin_status { LIN_STATUS_OK, LIN_STATUS_FAILED, LIN_STATUS_UNKNOWN };

/* One operation of a history. Strings are borrowed by the caller of lin_history_add(). */
struct lin_op {
	int client; /* who issued it (only reported; >= 0) */
	enum lin_kind kind;
	enum lin_status status;
	const char *key; /* NUL-terminated */
	const char *
	        value; /* Put/Append/WriteAt input (value_len bytes, may hold NULs); else ignored */
	size_t value_len;
	uint64_t offset; /* WriteAt: where the input goes; Truncate: the new size; else ignored */
	const char *output; /* Get result (output_len bytes) when status is OK; else ignored */
	size_t output_len;
	int64_t call_time;
	int64_t return_time; /* >= call_time when status is not UNKNOWN; ignored when UNKNOWN */
	unsigned long
	        line; /* line in the history file it was read from; 0 if none (reports only) */
};

struct lin_history;

/* A new empty history, or NULL when out of memory. Free it with lin_history_free(). */
struct lin_history *lin_history_new(void);

/* Frees h and every operation it holds; NULL is allowed. */
void lin_history_free(struct lin_history *h);

/*
 * Appends a copy of *op: the key, value and output bytes are copied, so the caller keeps ownership
 * of its strings. Returns LIN_OK, LIN_EINVAL (unknown kind or status, NULL key, NULL value with a
 * non-zero length, return before call, negative client, an offset over LIN_MAX_VALUE_BYTES) or
 * LIN_ENOMEM / LIN_ETOOBIG (h unchanged).
 */
int lin_history_add(struct lin_history *h, const struct lin_op *op);

/* Number of operations in h. */
size_t lin_history_count(const struct lin_history *h);

/*
 * Operation i (< lin_history_count(h)) as stored: every string is owned by h and NUL-terminated
 * after its length; the pointer is valid until the next lin_history_add() or lin_history_free().
 */
const struct lin_op *lin_history_op(const struct lin_history *h, size_t i);

/*
 * History files: one operation per line, fields separated by spaces or tabs:
 *
 *     CLIENT KIND KEY VALUE CALL RETURN STATUS
 *     3 append "a/b" "x\n" 1200 1350 ok
 *     4 get "a/b" x:780a 1300 1400 ok
 *     5 put "a/b" "v" 1500 - unknown
 *     6 writeat "a/b" 2 "yz" 1600 1700 ok
 *     7 truncate "a/b" 1 - 1800 1900 ok
 *
 * KIND is put, append, get, delete, writeat or truncate; STATUS is ok, fail or unknown. writeat
 * and truncate have one more field after KEY: OFFSET (the offset of writeat, the size of
 * truncate), decimal, at most LIN_MAX_VALUE_BYTES together with the input's length. KEY and VALUE
 * are strings: a double-quoted string with the escapes \\ \" \n \r \t \xHH, or x: followed by an
 * even number of hex digits (easy to produce from a shell with xxd -p). VALUE is the input of
 * put, append and writeat, the result of a get whose status is ok, and - otherwise. CALL and
 * RETURN are decimal int64; RETURN is - for unknown. Blank lines and lines starting with # are
 * ignored. The writer always quotes.
 */

/*
 * Parses text (len bytes) into a new history stored in *out (the caller frees it with
 * lin_history_free()). name is used in messages. On error returns LIN_EPARSE (or LIN_ENOMEM,
 * LIN_ETOOBIG), leaves *out NULL and writes "NAME:LINE: what is wrong" into err (err_size bytes,
 * always NUL-terminated when err_size > 0).
 */
int lin_history_parse(const char *text, size_t len, const char *name, struct lin_history **out,
                      char *err, size_t err_size);

/* lin_history_parse() of the file at path; LIN_EIO with the reason in err when it cannot be read. */
int lin_history_load(const char *path, struct lin_history **out, char *err, size_t err_size);

/* Writes op as one line of the history file format. LIN_OK, LIN_EINVAL or LIN_EIO. */
int lin_op_write(FILE *f, const struct lin_op *op);

/* Writes a header comment and every operation of h. LIN_OK or LIN_EIO. */
int lin_history_write(const struct lin_history *h, FILE *f);

enum lin_verdict { LIN_LINEARIZABLE, LIN_NOT_LINEARIZABLE, LIN_TIMEOUT };

/* "LINEARIZABLE", "NOT_LINEARIZABLE" or "TIMEOUT"; never NULL. */
const char *lin_verdict_name(enum lin_verdict v);

/* Budget of one lin_check(); a zero field takes its default. */
struct lin_options {
	int64_t timeout_ms; /* wall clock for the whole check; default LIN_DEFAULT_TIMEOUT_MS */
	uint64_t max_steps; /* search steps over all keys; default unlimited */
	size_t max_cache_bytes; /* memo cache of one key; past it entries are overwritten */
	size_t max_state_bytes; /* interned values of one key, and apart the bytes of those a WriteAt
	                         * or Truncate made; past either the check gives up (TIMEOUT) */
};

#define LIN_DEFAULT_TIMEOUT_MS 10000
#define LIN_DEFAULT_CACHE_BYTES ((size_t)256 << 20)
#define LIN_DEFAULT_STATE_BYTES ((size_t)256 << 20)

/*
 * What lin_check() found. Every pointer is owned by the result and freed by lin_result_free().
 * Operation numbers are indices into the history (lin_history_op()).
 */
struct lin_result {
	enum lin_verdict verdict;
	char *key; /* NOT_LINEARIZABLE: the key that failed; TIMEOUT: the key being checked */
	size_t *prefix; /* NOT_LINEARIZABLE: the longest linearizable prefix found, in order */
	size_t prefix_len;
	size_t blocked; /* NOT_LINEARIZABLE: the operation that could not be placed after it */
	char *explanation; /* text for a person, several lines; never NULL after lin_check() */
	size_t keys_checked; /* keys fully decided linearizable */
	uint64_t steps; /* search steps taken over all keys */
	uint64_t configs; /* configurations memoized over all keys */
	size_t ops_dropped; /* failed ops, unknown Gets, unknown writes no Get could have seen */
	int cache_overflowed; /* the memo cache hit its bound and overwrote entries (still sound) */
	int64_t elapsed_ms;
};

/*
 * Checks h within the budget in opt (NULL: defaults) and fills *res (which the caller later
 * releases with lin_result_free(), whatever the return value). Returns LIN_OK with res->verdict
 * set, or LIN_ENOMEM / LIN_EINVAL (res->verdict is then LIN_TIMEOUT: never a pass).
 */
int lin_check(const struct lin_history *h, const struct lin_options *opt, struct lin_result *res);

/* Frees what res holds and zeroes it; the struct itself is the caller's. */
void lin_result_free(struct lin_result *res);

#endif
