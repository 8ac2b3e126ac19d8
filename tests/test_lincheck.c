/* test_lincheck.c - tests of the linearizability checker, and its command line (--check FILE). */
/*
 * Generated histories take their seeds from LINCHECK_SEED (default 1; three seeds from it), and
 * for exploring the checker's limits LINCHECK_CLIENTS, LINCHECK_KEYS and
 * LINCHECK_UNKNOWN_PERCENT override the shapes the tests use.
 */
#include "tests/lib/cu.h"
#include "tests/lib/lincheck.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OK LIN_STATUS_OK
#define FAIL LIN_STATUS_FAILED
#define UNK LIN_STATUS_UNKNOWN
#define INF LIN_TIME_INFINITY
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Exit codes of --check. */
#define CHECK_EXIT_LINEARIZABLE 0
#define CHECK_EXIT_VIOLATION 1
#define CHECK_EXIT_BAD_INPUT 2
#define CHECK_EXIT_TIMEOUT 3

/* The budget every generated history must be decided within. */
#define BIG_TIMEOUT_MS 10000
#define BIG_OPS 10000

/* ---- the command-line checker ---- */

static int check_usage(void)
{
	fprintf(stderr,
	        "usage: test_lincheck --check FILE [--timeout-ms=N]\n"
	        "exit 0 linearizable, 1 not linearizable, 2 bad input, 3 timeout\n");
	return CHECK_EXIT_BAD_INPUT;
}

/* tests/test_lincheck --check FILE [--timeout-ms=N]: checks a recorded history. */
static int check_file_main(int argc, char **argv)
{
	struct lin_options opt = {0};
	struct lin_history *h = NULL;
	struct lin_result res;
	const char *path = NULL;
	char err[512];
	int i, rc, status;

	for (i = 2; i < argc; i++) {
		if (strncmp(argv[i], "--timeout-ms=", 13) == 0) {
			char *end;
			long long v = strtoll(argv[i] + 13, &end, 10);
			if (*end != '\0' || end == argv[i] + 13 || v <= 0) {
				fprintf(stderr, "test_lincheck: bad %s\n", argv[i]);
				return check_usage();
			}
			opt.timeout_ms = v;
		} else if (!path && argv[i][0] != '-') {
			path = argv[i];
		} else {
			return check_usage();
		}
	}
	if (!path)
		return check_usage();
	rc = lin_history_load(path, &h, err, sizeof(err));
	if (rc != LIN_OK) {
		fprintf(stderr, "test_lincheck: %s\n", err);
		return CHECK_EXIT_BAD_INPUT;
	}
	rc = lin_check(h, &opt, &res);
	printf("%s: %s (%zu ops, %" PRIu64 " steps, %" PRId64 " ms)\n", path,
	       lin_verdict_name(res.verdict), lin_history_count(h), res.steps, res.elapsed_ms);
	if (res.explanation)
		fputs(res.explanation, stdout);
	if (rc != LIN_OK)
		fprintf(stderr, "test_lincheck: %s: %s\n", path, lin_strerror(rc));
	status = res.verdict == LIN_LINEARIZABLE      ? CHECK_EXIT_LINEARIZABLE
	        : res.verdict == LIN_NOT_LINEARIZABLE ? CHECK_EXIT_VIOLATION
	                                              : CHECK_EXIT_TIMEOUT;
	lin_result_free(&res);
	lin_history_free(h);
	return status;
}

/* ---- small hand-written histories ---- */

/* One op; val is the input of Put/Append and the result of Get (NULL: none). */
struct hop {
	int client;
	enum lin_kind kind;
	const char *key;
	const char *val;
	int64_t call;
	int64_t ret;
	enum lin_status status;
};

/*
 * One op of a history with WriteAt and Truncate: off is WriteAt's offset and Truncate's size;
 * val is len bytes when len is not 0 (so that it may hold NULs), else strlen(val).
 */
struct rop {
	int client;
	enum lin_kind kind;
	const char *key;
	uint64_t off;
	const char *val;
	size_t len;
	int64_t call;
	int64_t ret;
	enum lin_status status;
};

static struct lin_history *build(const struct hop *ops, size_t n)
{
	struct lin_history *h = lin_history_new();
	size_t i;

	CU_ASSERT_FATAL(h != NULL);
	for (i = 0; i < n; i++) {
		struct lin_op op = {
		        .client = ops[i].client,
		        .kind = ops[i].kind,
		        .status = ops[i].status,
		        .key = ops[i].key,
		        .call_time = ops[i].call,
		        .return_time = ops[i].ret,
		};
		size_t len = ops[i].val ? strlen(ops[i].val) : 0;
		op.value = op.output = ops[i].val;
		op.value_len = op.output_len = len;
		CU_ASSERT_FATAL(lin_history_add(h, &op) == LIN_OK);
	}
	return h;
}

/* The verdict on ops; res (when not NULL) receives the result, for the caller to free. */
static enum lin_verdict verdict_of(const struct hop *ops, size_t n, struct lin_result *res)
{
	struct lin_history *h = build(ops, n);
	struct lin_options opt = {.timeout_ms = 5000};
	struct lin_result r;
	enum lin_verdict v;

	CU_ASSERT(lin_check(h, &opt, &r) == LIN_OK);
	CU_ASSERT(r.explanation != NULL);
	v = r.verdict;
	if (res)
		*res = r;
	else
		lin_result_free(&r);
	lin_history_free(h);
	return v;
}

#define VERDICT(ops) verdict_of(ops, N_OF(ops), NULL)

static void test_empty_history_is_linearizable(void)
{
	struct lin_history *h = lin_history_new();
	struct lin_result res;

	CU_ASSERT_FATAL(h != NULL);
	CU_ASSERT(lin_check(h, NULL, &res) == LIN_OK);
	CU_ASSERT(res.verdict == LIN_LINEARIZABLE);
	lin_result_free(&res);
	lin_history_free(h);
}

static void test_sequential_history_is_linearizable(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},      {1, LIN_GET, "k", "a", 20, 30, OK},
	        {2, LIN_APPEND, "k", "b", 40, 50, OK},  {1, LIN_GET, "k", "ab", 60, 70, OK},
	        {2, LIN_DELETE, "k", NULL, 80, 90, OK}, {1, LIN_GET, "k", "", 100, 110, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
}

static void test_get_of_missing_key_returns_empty(void)
{
	static const struct hop ops[] = {
	        {1, LIN_GET, "k", "", 0, 10, OK},
	        {1, LIN_PUT, "other", "x", 20, 30, OK},
	        {1, LIN_GET, "k", "", 40, 50, OK},
	};
	static const struct hop bad[] = {
	        {1, LIN_GET, "k", "x", 0, 10, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
	CU_ASSERT(VERDICT(bad) == LIN_NOT_LINEARIZABLE);
}

static void test_append_to_missing_key_acts_like_put(void)
{
	static const struct hop ops[] = {
	        {1, LIN_APPEND, "k", "x", 0, 10, OK},   {1, LIN_GET, "k", "x", 20, 30, OK},
	        {1, LIN_DELETE, "k", NULL, 40, 50, OK}, {1, LIN_APPEND, "k", "y", 60, 70, OK},
	        {1, LIN_GET, "k", "y", 80, 90, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
}

static void test_delete_makes_get_return_empty(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},
	        {2, LIN_DELETE, "k", NULL, 20, 30, OK},
	        {3, LIN_GET, "k", "", 40, 50, OK},
	        {3, LIN_DELETE, "k", NULL, 60, 70, OK}, /* deleting a missing key is fine */
	        {3, LIN_GET, "k", "", 80, 90, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
}

/*
 * Calls in the order a, b, c but the only valid order is c, b, a: the search must reorder
 * concurrent ops against the order it tries them in.
 */
static void test_concurrent_ops_are_reordered_to_linearize(void)
{
	static const struct hop ops[] = {
	        {1, LIN_APPEND, "k", "a", 0, 100, OK}, {2, LIN_APPEND, "k", "b", 1, 100, OK},
	        {3, LIN_APPEND, "k", "c", 2, 100, OK}, {4, LIN_GET, "k", "c", 3, 100, OK},
	        {5, LIN_GET, "k", "cb", 4, 100, OK},   {6, LIN_GET, "k", "cba", 101, 110, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
}

static void test_concurrent_reads_may_see_old_or_new_value(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "old", 0, 10, OK},
	        {2, LIN_PUT, "k", "new", 20, 60, OK},
	        {3, LIN_GET, "k", "new", 25, 30, OK},
	        {4, LIN_GET, "k", "old", 20, 40, OK}, /* began before the first read saw new */
	        {5, LIN_GET, "k", "new", 70, 80, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
}

static void test_ops_touching_at_equal_times_count_as_concurrent(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},
	        {2, LIN_GET, "k", "", 10, 20, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
}

static void test_unknown_write_that_took_effect_is_accepted(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},
	        {2, LIN_APPEND, "k", "b", 20, INF, UNK},
	        {3, LIN_GET, "k", "ab", 30, 40, OK},
	        {3, LIN_GET, "k", "ab", 50, 60, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
}

static void test_unknown_write_that_never_took_effect_is_accepted(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},        {2, LIN_PUT, "k", "z", 20, INF, UNK},
	        {2, LIN_DELETE, "k", NULL, 25, INF, UNK}, {3, LIN_GET, "k", "a", 30, 40, OK},
	        {3, LIN_GET, "k", "a", 1000, 1010, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
}

static void test_unknown_write_may_take_effect_long_after_its_call(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},   {2, LIN_APPEND, "k", "x", 20, INF, UNK},
	        {3, LIN_GET, "k", "a", 30, 40, OK},  {3, LIN_APPEND, "k", "b", 50, 60, OK},
	        {3, LIN_GET, "k", "ab", 70, 80, OK}, {4, LIN_GET, "k", "abx", 500, 510, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
}

static void test_unknown_write_cannot_take_effect_before_its_call(void)
{
	static const struct hop ops[] = {
	        {1, LIN_GET, "k", "x", 0, 10, OK},
	        {2, LIN_PUT, "k", "x", 20, INF, UNK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

static void test_unknown_write_takes_effect_at_most_once(void)
{
	static const struct hop ops[] = {
	        {1, LIN_APPEND, "k", "x", 0, INF, UNK},
	        {2, LIN_GET, "k", "x", 10, 20, OK},
	        {2, LIN_DELETE, "k", NULL, 30, 40, OK},
	        {2, LIN_GET, "k", "x", 50, 60, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

static void test_unknown_and_failed_gets_are_not_checked(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},
	        {2, LIN_GET, "k", NULL, 20, INF, UNK},
	        {2, LIN_GET, "k", "garbage", 30, 40, FAIL},
	        {3, LIN_GET, "k", "a", 50, 60, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
}

static void test_failed_write_is_ignored_and_must_not_be_seen(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},
	        {2, LIN_PUT, "k", "z", 20, 30, FAIL},
	        {3, LIN_GET, "k", "a", 40, 50, OK},
	};
	static const struct hop seen[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},
	        {2, LIN_PUT, "k", "z", 20, 30, FAIL},
	        {3, LIN_GET, "k", "z", 40, 50, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
	CU_ASSERT(VERDICT(seen) == LIN_NOT_LINEARIZABLE);
}

static void test_keys_are_checked_independently(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "a", "1", 0, 10, OK},     {2, LIN_PUT, "b", "2", 5, 15, OK},
	        {1, LIN_GET, "b", "2", 20, 30, OK},    {2, LIN_GET, "a", "1", 20, 30, OK},
	        {3, LIN_APPEND, "a", "x", 40, 50, OK}, {3, LIN_GET, "b", "2", 60, 70, OK},
	        {3, LIN_GET, "a", "1x", 60, 70, OK},
	};
	static const struct hop bad[] = {
	        {1, LIN_PUT, "a", "1", 0, 10, OK},
	        {2, LIN_PUT, "b", "2", 5, 15, OK},
	        {1, LIN_GET, "b", "1", 20, 30, OK}, /* b never held a's value */
	};
	struct lin_result res;

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
	CU_ASSERT(verdict_of(bad, N_OF(bad), &res) == LIN_NOT_LINEARIZABLE);
	CU_ASSERT(res.key != NULL && strcmp(res.key, "b") == 0);
	lin_result_free(&res);
}

/* "ab" from one Put and "a" + "b" from Put and Append are the same value. */
static void test_equal_values_built_differently_are_equal(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},      {1, LIN_APPEND, "k", "b", 20, 30, OK},
	        {2, LIN_PUT, "k", "ab", 40, 100, OK},   {3, LIN_APPEND, "k", "c", 40, 100, OK},
	        {4, LIN_GET, "k", "abc", 110, 120, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_LINEARIZABLE);
}

static void test_values_may_hold_any_byte(void)
{
	struct lin_history *h = lin_history_new();
	struct lin_op put = {.kind = LIN_PUT,
	                     .key = "k",
	                     .value = "a\0b",
	                     .value_len = 3,
	                     .call_time = 0,
	                     .return_time = 1};
	struct lin_op get = {.kind = LIN_GET,
	                     .key = "k",
	                     .output = "a\0b",
	                     .output_len = 3,
	                     .call_time = 2,
	                     .return_time = 3};
	struct lin_op get2 = {.kind = LIN_GET,
	                      .key = "k",
	                      .output = "a\0c",
	                      .output_len = 3,
	                      .call_time = 4,
	                      .return_time = 5};
	struct lin_result res;

	CU_ASSERT_FATAL(h != NULL);
	CU_ASSERT(lin_history_add(h, &put) == LIN_OK);
	CU_ASSERT(lin_history_add(h, &get) == LIN_OK);
	CU_ASSERT(lin_check(h, NULL, &res) == LIN_OK);
	CU_ASSERT(res.verdict == LIN_LINEARIZABLE);
	lin_result_free(&res);
	CU_ASSERT(lin_history_add(h, &get2) == LIN_OK);
	CU_ASSERT(lin_check(h, NULL, &res) == LIN_OK);
	CU_ASSERT(res.verdict == LIN_NOT_LINEARIZABLE);
	lin_result_free(&res);
	lin_history_free(h);
}

static void test_stale_read_is_rejected(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},
	        {2, LIN_PUT, "k", "b", 20, 30, OK},
	        {3, LIN_GET, "k", "a", 40, 50, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

static void test_lost_append_is_rejected(void)
{
	static const struct hop ops[] = {
	        {1, LIN_APPEND, "k", "a", 0, 10, OK},
	        {2, LIN_APPEND, "k", "b", 5, 20, OK},
	        {3, LIN_APPEND, "k", "c", 30, 40, OK},
	        {4, LIN_GET, "k", "ac", 50, 60, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

static void test_duplicated_append_is_rejected(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "x", 0, 10, OK},
	        {2, LIN_APPEND, "k", "a", 20, 30, OK},
	        {3, LIN_GET, "k", "xaa", 40, 50, OK},
	};
	static const struct hop unknown[] = {
	        {1, LIN_PUT, "k", "x", 0, 10, OK},
	        {2, LIN_APPEND, "k", "a", 20, INF, UNK},
	        {3, LIN_GET, "k", "xaa", 40, 50, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_NOT_LINEARIZABLE);
	CU_ASSERT(VERDICT(unknown) == LIN_NOT_LINEARIZABLE);
}

static void test_read_of_a_value_never_written_is_rejected(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},
	        {2, LIN_APPEND, "k", "b", 5, 30, OK},
	        {3, LIN_GET, "k", "ba", 10, 40, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

static void test_read_seeing_a_write_that_began_after_it_returned_is_rejected(void)
{
	static const struct hop ops[] = {
	        {1, LIN_GET, "k", "v", 0, 10, OK},
	        {2, LIN_PUT, "k", "v", 11, 20, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

static void test_read_of_a_deleted_value_is_rejected(void)
{
	static const struct hop ops[] = {
	        {1, LIN_PUT, "k", "a", 0, 10, OK},
	        {2, LIN_DELETE, "k", NULL, 20, 30, OK},
	        {3, LIN_GET, "k", "a", 40, 50, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

static void test_reads_disagreeing_on_append_order_are_rejected(void)
{
	static const struct hop ops[] = {
	        {1, LIN_APPEND, "k", "a", 0, 100, OK},
	        {2, LIN_APPEND, "k", "b", 0, 100, OK},
	        {3, LIN_GET, "k", "ab", 0, 100, OK},
	        {4, LIN_GET, "k", "ba", 0, 100, OK},
	};

	CU_ASSERT(VERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

/* A violation names the key, the op that could not be placed and the prefix before it. */
/* ---- WriteAt and Truncate ---- */

#define WAT LIN_WRITE_AT
#define TRUNC LIN_TRUNCATE

static enum lin_verdict rverdict_of(const struct rop *ops, size_t n, struct lin_result *res)
{
	struct lin_history *h = lin_history_new();
	struct lin_options opt = {.timeout_ms = 5000};
	struct lin_result r;
	enum lin_verdict v;
	size_t i;

	CU_ASSERT_FATAL(h != NULL);
	for (i = 0; i < n; i++) {
		struct lin_op op = {
		        .client = ops[i].client,
		        .kind = ops[i].kind,
		        .status = ops[i].status,
		        .key = ops[i].key,
		        .offset = ops[i].off,
		        .value = ops[i].val,
		        .output = ops[i].val,
		        .call_time = ops[i].call,
		        .return_time = ops[i].ret,
		};
		op.value_len = op.output_len = ops[i].len ? ops[i].len
		        : ops[i].val                      ? strlen(ops[i].val)
		                                          : 0;
		CU_ASSERT_FATAL(lin_history_add(h, &op) == LIN_OK);
	}
	CU_ASSERT(lin_check(h, &opt, &r) == LIN_OK);
	CU_ASSERT(r.explanation != NULL);
	v = r.verdict;
	if (res)
		*res = r;
	else
		lin_result_free(&r);
	lin_history_free(h);
	return v;
}

#define RVERDICT(ops) rverdict_of(ops, N_OF(ops), NULL)

/* The verdict on ops when the last one, a Get, returns the len bytes at val (len 0: a string). */
static enum lin_verdict rverdict_if_last_reads(struct rop *ops, size_t n, const char *val,
                                               size_t len)
{
	ops[n - 1].val = val;
	ops[n - 1].len = len;
	return rverdict_of(ops, n, NULL);
}

#define READS(ops, val) rverdict_if_last_reads(ops, N_OF(ops), val, sizeof(val) - 1)

static void test_write_at_overwrites_in_place_and_keeps_the_rest(void)
{
	struct rop ops[] = {
	        {1, LIN_PUT, "k", 0, "abcdef", 0, 0, 10, OK},
	        {1, WAT, "k", 2, "XY", 0, 20, 30, OK},
	        {2, LIN_GET, "k", 0, NULL, 0, 40, 50, OK},
	};

	CU_ASSERT(READS(ops, "abXYef") == LIN_LINEARIZABLE);
	CU_ASSERT(READS(ops, "abXY") == LIN_NOT_LINEARIZABLE); /* the rest cut */
	CU_ASSERT(READS(ops, "abcdef") == LIN_NOT_LINEARIZABLE); /* the write lost */
}

static void test_write_at_past_the_end_fills_the_gap_with_zeros(void)
{
	struct rop ops[] = {
	        {1, LIN_PUT, "k", 0, "ab", 0, 0, 10, OK},
	        {1, WAT, "k", 4, "z", 0, 20, 30, OK},
	        {2, LIN_GET, "k", 0, NULL, 0, 40, 50, OK},
	};

	CU_ASSERT(READS(ops, "ab\0\0z") == LIN_LINEARIZABLE);
	CU_ASSERT(READS(ops, "ab  z") == LIN_NOT_LINEARIZABLE);
	CU_ASSERT(READS(ops, "abz") == LIN_NOT_LINEARIZABLE);
}

static void test_write_at_on_a_missing_key_creates_it(void)
{
	static const struct rop at0[] = {
	        {1, WAT, "k", 0, "ab", 0, 0, 10, OK},
	        {2, LIN_GET, "k", 0, "ab", 0, 20, 30, OK},
	};
	static const struct rop at2[] = {
	        {1, LIN_DELETE, "k", 0, NULL, 0, 0, 5, OK},
	        {1, WAT, "k", 2, "ab", 0, 10, 20, OK},
	        {2, LIN_GET, "k", 0, "\0\0ab", 4, 30, 40, OK},
	};

	CU_ASSERT(RVERDICT(at0) == LIN_LINEARIZABLE);
	CU_ASSERT(RVERDICT(at2) == LIN_LINEARIZABLE);
}

/* At the end a WriteAt is an append (the model shares the bytes), and appends follow it. */
static void test_write_at_at_the_end_extends_the_value(void)
{
	struct rop ops[] = {
	        {1, LIN_PUT, "k", 0, "ab", 0, 0, 10, OK},    {1, WAT, "k", 2, "cd", 0, 20, 30, OK},
	        {1, LIN_APPEND, "k", 0, "e", 0, 40, 50, OK}, {2, WAT, "k", 2, "C", 0, 60, 70, OK},
	        {2, LIN_GET, "k", 0, NULL, 0, 80, 90, OK},
	};

	CU_ASSERT(READS(ops, "abCde") == LIN_LINEARIZABLE);
	CU_ASSERT(READS(ops, "abcde") == LIN_NOT_LINEARIZABLE); /* the last WriteAt lost */
	CU_ASSERT(READS(ops, "abe") == LIN_NOT_LINEARIZABLE);
}

static void test_truncate_cuts_and_zero_fills(void)
{
	static const struct rop ok[] = {
	        {1, LIN_PUT, "k", 0, "abcdef", 0, 0, 10, OK},
	        {1, TRUNC, "k", 3, NULL, 0, 20, 30, OK},
	        {2, LIN_GET, "k", 0, "abc", 0, 40, 50, OK},
	        {1, TRUNC, "k", 5, NULL, 0, 60, 70, OK},
	        {2, LIN_GET, "k", 0, "abc\0\0", 5, 80, 90, OK},
	        {1, TRUNC, "k", 0, NULL, 0, 100, 110, OK},
	        {2, LIN_GET, "k", 0, "", 0, 120, 130, OK},
	};
	/* growing again does not bring the cut bytes back */
	static const struct rop regrown[] = {
	        {1, LIN_PUT, "k", 0, "abcdef", 0, 0, 10, OK},
	        {1, TRUNC, "k", 3, NULL, 0, 20, 30, OK},
	        {1, TRUNC, "k", 5, NULL, 0, 60, 70, OK},
	        {2, LIN_GET, "k", 0, "abcde", 0, 80, 90, OK},
	};
	static const struct rop not_applied[] = {
	        {1, LIN_PUT, "k", 0, "abcdef", 0, 0, 10, OK},
	        {1, TRUNC, "k", 1, NULL, 0, 20, 30, OK},
	        {2, LIN_GET, "k", 0, "abcdef", 0, 40, 50, OK},
	};

	CU_ASSERT(RVERDICT(ok) == LIN_LINEARIZABLE);
	CU_ASSERT(RVERDICT(regrown) == LIN_NOT_LINEARIZABLE);
	CU_ASSERT(RVERDICT(not_applied) == LIN_NOT_LINEARIZABLE);
}

/* A Truncate of a missing key fails (ENOENT): recorded as failed, it must not be seen. */
static void test_failed_truncate_of_a_missing_key_is_not_seen(void)
{
	struct rop ops[] = {
	        {1, TRUNC, "k", 3, NULL, 0, 0, 10, FAIL},
	        {2, LIN_GET, "k", 0, NULL, 0, 20, 30, OK},
	};

	CU_ASSERT(READS(ops, "") == LIN_LINEARIZABLE);
	CU_ASSERT(READS(ops, "\0\0\0") == LIN_NOT_LINEARIZABLE);
}

/* Concurrent WriteAt(0, "xy") and Truncate(1) on "abc": "x" or "xy" after both, never more. */
static void test_concurrent_write_at_and_truncate_are_ordered(void)
{
	struct rop ops[] = {
	        {1, LIN_PUT, "k", 0, "abc", 0, 0, 10, OK},
	        {1, WAT, "k", 0, "xy", 0, 20, 40, OK},
	        {2, TRUNC, "k", 1, NULL, 0, 25, 35, OK},
	        {3, LIN_GET, "k", 0, "x", 0, 50, 60, OK},
	};
	static const char *const ok[] = {"x", "xy"}, *const bad[] = {"xyc", "a", "abc", "xbc"};
	size_t i;

	for (i = 0; i < N_OF(ok); i++) {
		ops[3].val = ok[i];
		CU_ASSERT(RVERDICT(ops) == LIN_LINEARIZABLE);
	}
	for (i = 0; i < N_OF(bad); i++) {
		ops[3].val = bad[i];
		CU_ASSERT(RVERDICT(ops) == LIN_NOT_LINEARIZABLE);
	}
}

static void test_unknown_write_at_may_or_may_not_take_effect(void)
{
	struct rop ops[] = {
	        {1, LIN_PUT, "k", 0, "abc", 0, 0, 10, OK},
	        {2, WAT, "k", 1, "Z", 0, 20, INF, UNK},
	        {3, LIN_GET, "k", 0, "abc", 0, 30, 40, OK},
	        {3, LIN_GET, "k", 0, "aZc", 0, 50, 60, OK},
	        {3, LIN_GET, "k", 0, "aZc", 0, 70, 80, OK},
	};

	CU_ASSERT(RVERDICT(ops) == LIN_LINEARIZABLE);
	ops[4].val = "abc"; /* applied once, it stays */
	CU_ASSERT(RVERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

static void test_unknown_truncate_may_take_effect_long_after_its_call(void)
{
	struct rop ops[] = {
	        {1, LIN_PUT, "k", 0, "abcd", 0, 0, 10, OK},
	        {2, TRUNC, "k", 2, NULL, 0, 20, INF, UNK},
	        {3, LIN_GET, "k", 0, "abcd", 0, 30, 40, OK},
	        {3, LIN_GET, "k", 0, "ab", 0, 500, 510, OK},
	        {3, LIN_GET, "k", 0, "ab", 0, 600, 610, OK},
	};

	CU_ASSERT(RVERDICT(ops) == LIN_LINEARIZABLE);
	ops[4].val = "abcd";
	CU_ASSERT(RVERDICT(ops) == LIN_NOT_LINEARIZABLE);
	ops[4].val = "ab";
	ops[2].call = 5; /* before the truncation was called, and after the Put */
	ops[2].ret = 15;
	ops[2].val = "ab";
	CU_ASSERT(RVERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

/*
 * The reduction "a write whose input no Get read is dropped (unknown) or unreadable (definite)"
 * does not hold when a Truncate or WriteAt can come after it: "cd" appended to "ab", then cut to
 * 3 bytes, is read as "abc", and no Get holds "cd".
 */
static void test_write_cut_by_a_later_truncate_is_not_dropped(void)
{
	struct rop ops[] = {
	        {1, LIN_PUT, "k", 0, "ab", 0, 0, 10, OK},
	        {2, LIN_APPEND, "k", 0, "cd", 0, 20, INF, UNK},
	        {3, TRUNC, "k", 3, NULL, 0, 30, 40, OK},
	        {3, LIN_GET, "k", 0, "abc", 0, 50, 60, OK},
	};
	struct lin_result res;

	CU_ASSERT(rverdict_of(ops, N_OF(ops), &res) == LIN_LINEARIZABLE);
	CU_ASSERT(res.ops_dropped == 0);
	lin_result_free(&res);
	ops[1].status = OK; /* definite: its value is not "unreadable" either */
	ops[1].ret = 25;
	CU_ASSERT(RVERDICT(ops) == LIN_LINEARIZABLE);
	ops[1].kind = LIN_PUT; /* a Put's input cut */
	ops[1].val = "abcd";
	CU_ASSERT(RVERDICT(ops) == LIN_LINEARIZABLE);
	ops[1].kind = WAT; /* a WriteAt's, at the end */
	ops[1].val = "cd";
	ops[1].off = 2;
	CU_ASSERT(RVERDICT(ops) == LIN_LINEARIZABLE);
	ops[3].val = "abd"; /* no order makes this */
	CU_ASSERT(RVERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

/* Likewise a WriteAt over part of an unknown Put: the Get sees only the rest of its input. */
static void test_write_partly_overwritten_by_a_later_write_at_is_not_dropped(void)
{
	struct rop ops[] = {
	        {1, LIN_PUT, "k", 0, "wxyz", 0, 0, INF, UNK},
	        {2, WAT, "k", 0, "ab", 0, 10, 20, OK},
	        {3, LIN_GET, "k", 0, "abyz", 0, 30, 40, OK},
	};

	CU_ASSERT(RVERDICT(ops) == LIN_LINEARIZABLE);
	ops[0].status = OK;
	ops[0].ret = 5;
	CU_ASSERT(RVERDICT(ops) == LIN_LINEARIZABLE);
	ops[0].kind = WAT; /* an unknown WriteAt partly under an unknown WriteAt */
	ops[0].status = UNK;
	ops[0].ret = INF;
	ops[1].status = UNK;
	ops[1].ret = INF;
	CU_ASSERT(RVERDICT(ops) == LIN_LINEARIZABLE);
	ops[2].val = "abxyz"; /* no order of the two makes this */
	CU_ASSERT(RVERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

/* With no WriteAt or Truncate after it, an unseen unknown WriteAt is still dropped. */
static void test_unseen_unknown_write_at_with_nothing_after_it_is_dropped(void)
{
	static const struct rop ops[] = {
	        {1, LIN_PUT, "k", 0, "a", 0, 0, 10, OK},
	        {2, TRUNC, "k", 1, NULL, 0, 15, 18, OK},
	        {2, WAT, "k", 1, "q", 0, 20, INF, UNK},
	        {3, LIN_GET, "k", 0, "a", 0, 30, 40, OK},
	        {3, LIN_APPEND, "k", 0, "b", 0, 50, 60, OK},
	        {3, LIN_GET, "k", 0, "ab", 0, 70, 80, OK},
	};
	struct lin_result res;

	CU_ASSERT(rverdict_of(ops, N_OF(ops), &res) == LIN_LINEARIZABLE);
	CU_ASSERT(res.ops_dropped == 1);
	lin_result_free(&res);
}

/* A definite WriteAt that nothing can cut, and no Get read, must still be applied. */
static void test_unseen_definite_write_at_still_hides_older_values(void)
{
	static const struct rop ops[] = {
	        {1, LIN_PUT, "k", 0, "abc", 0, 0, 10, OK},
	        {2, WAT, "k", 1, "Q", 0, 20, 30, OK},
	        {3, LIN_GET, "k", 0, "abc", 0, 40, 50, OK},
	};

	CU_ASSERT(RVERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

/* An unknown write before a Truncate: a later Get sees its effect zero-filled or cut away. */
static void test_unknown_write_then_truncate(void)
{
	struct rop ops[] = {
	        {1, LIN_PUT, "k", 0, "abc", 0, 0, 10, OK},
	        {2, WAT, "k", 5, "z", 0, 20, INF, UNK},
	        {3, TRUNC, "k", 4, NULL, 0, 30, 40, OK},
	        {3, LIN_GET, "k", 0, "abc\0", 4, 50, 60, OK},
	};

	CU_ASSERT(RVERDICT(ops) == LIN_LINEARIZABLE);
	ops[3].val = "abc\0\0z"; /* only if the WriteAt came after the Truncate */
	ops[3].len = 6;
	CU_ASSERT(RVERDICT(ops) == LIN_LINEARIZABLE);
	ops[3].val = "abc\0z";
	ops[3].len = 5;
	CU_ASSERT(RVERDICT(ops) == LIN_NOT_LINEARIZABLE);
}

static void test_write_at_and_truncate_reports_name_offset_and_size(void)
{
	static const struct rop ops[] = {
	        {1, WAT, "k", 3, "ab", 0, 0, 10, OK},
	        {2, TRUNC, "k", 4, NULL, 0, 20, 30, OK},
	        {3, LIN_GET, "k", 0, "zz", 0, 40, 50, OK},
	};
	struct lin_result res;

	CU_ASSERT(rverdict_of(ops, N_OF(ops), &res) == LIN_NOT_LINEARIZABLE);
	CU_ASSERT(strstr(res.explanation, "client 1 writeat \"k\" at 3 \"ab\" [0, 10] ok") != NULL);
	CU_ASSERT(strstr(res.explanation, "client 2 truncate \"k\" to 4 bytes [20, 30] ok") !=
	          NULL);
	CU_ASSERT(strstr(res.explanation, "value after it: \"\\x00\\x00\\x00a\"") != NULL);
	printf("\n%s", res.explanation);
	lin_result_free(&res);
}

static void test_violation_report_names_key_prefix_and_blocked_op(void)
{
	static const struct hop ops[] = {
	        {9, LIN_PUT, "x", "1", 0, 10, OK},      {1, LIN_PUT, "dir/f", "a", 0, 10, OK},
	        {2, LIN_PUT, "dir/f", "b", 20, 30, OK}, {3, LIN_GET, "dir/f", "a", 40, 50, OK},
	        {4, LIN_GET, "dir/f", "b", 60, 70, OK},
	};
	struct lin_result res;

	CU_ASSERT_FATAL(verdict_of(ops, N_OF(ops), &res) == LIN_NOT_LINEARIZABLE);
	CU_ASSERT(res.key != NULL && strcmp(res.key, "dir/f") == 0);
	CU_ASSERT(res.blocked == 3);
	CU_ASSERT(res.prefix_len == 2);
	if (res.prefix_len == 2) {
		CU_ASSERT(res.prefix[0] == 1);
		CU_ASSERT(res.prefix[1] == 2);
	}
	CU_ASSERT(strstr(res.explanation, "\"dir/f\"") != NULL);
	CU_ASSERT(strstr(res.explanation, "op 3: client 3 get \"dir/f\" -> \"a\" [40, 50] ok") !=
	          NULL);
	CU_ASSERT(strstr(res.explanation, "value after it: \"b\"") != NULL);
	printf("\n%s", res.explanation);
	lin_result_free(&res);
}

static void test_invalid_ops_are_refused(void)
{
	struct lin_history *h = lin_history_new();
	struct lin_op op = {.kind = LIN_PUT,
	                    .key = "k",
	                    .value = "v",
	                    .value_len = 1,
	                    .call_time = 10,
	                    .return_time = 5};

	CU_ASSERT_FATAL(h != NULL);
	CU_ASSERT(lin_history_add(h, &op) == LIN_EINVAL); /* returns before its call */
	op.return_time = 20;
	op.key = NULL;
	CU_ASSERT(lin_history_add(h, &op) == LIN_EINVAL);
	op.key = "k";
	op.kind = (enum lin_kind)7;
	CU_ASSERT(lin_history_add(h, &op) == LIN_EINVAL);
	op.kind = LIN_PUT;
	op.client = -1;
	CU_ASSERT(lin_history_add(h, &op) == LIN_EINVAL);
	op.client = 0;
	op.value = NULL;
	CU_ASSERT(lin_history_add(h, &op) == LIN_EINVAL);
	op.value = "v";
	op.kind = LIN_WRITE_AT;
	op.offset = LIN_MAX_VALUE_BYTES; /* and one byte past it */
	CU_ASSERT(lin_history_add(h, &op) == LIN_EINVAL);
	op.kind = LIN_TRUNCATE;
	op.offset = LIN_MAX_VALUE_BYTES + 1;
	CU_ASSERT(lin_history_add(h, &op) == LIN_EINVAL);
	op.kind = (enum lin_kind)LIN_KIND_COUNT;
	CU_ASSERT(lin_history_add(h, &op) == LIN_EINVAL);
	op.kind = LIN_PUT;
	op.offset = UINT64_MAX; /* ignored for a Put */
	CU_ASSERT(lin_history_add(h, &op) == LIN_OK);
	op.status = UNK;
	op.return_time = 0; /* ignored for unknown */
	CU_ASSERT(lin_history_add(h, &op) == LIN_OK);
	CU_ASSERT(lin_history_count(h) == 2);
	CU_ASSERT(lin_history_op(h, 0)->offset == 0);
	CU_ASSERT(lin_history_op(h, 1)->return_time == INF);
	CU_ASSERT(lin_history_op(h, 2) == NULL);
	CU_ASSERT(strcmp(lin_strerror(LIN_EPARSE), "malformed history") == 0);
	CU_ASSERT(lin_strerror(-1) != NULL);
	lin_history_free(h);
}

/* ---- budget ---- */

/* n writers append concurrently, then a read sees none of them: exhausting it takes a while. */
static struct lin_history *hard_violation(int n)
{
	struct lin_history *h = lin_history_new();
	char val[16];
	int i;

	CU_ASSERT_FATAL(h != NULL);
	for (i = 0; i < n; i++) {
		struct lin_op op = {.client = i,
		                    .kind = LIN_APPEND,
		                    .key = "k",
		                    .value = val,
		                    .call_time = 0,
		                    .return_time = 100};
		op.value_len = (size_t)snprintf(val, sizeof(val), "[%d]", i);
		CU_ASSERT_FATAL(lin_history_add(h, &op) == LIN_OK);
	}
	{
		struct lin_op get = {.client = n,
		                     .kind = LIN_GET,
		                     .key = "k",
		                     .output = "nope",
		                     .output_len = 4,
		                     .call_time = 200,
		                     .return_time = 300};
		CU_ASSERT_FATAL(lin_history_add(h, &get) == LIN_OK);
	}
	return h;
}

static void test_check_out_of_budget_is_a_timeout_never_a_pass(void)
{
	struct lin_history *h = hard_violation(18);
	struct lin_options opt = {.max_steps = 1000};
	struct lin_result res;

	CU_ASSERT(lin_check(h, &opt, &res) == LIN_OK);
	CU_ASSERT(res.verdict == LIN_TIMEOUT);
	CU_ASSERT(res.key != NULL && strcmp(res.key, "k") == 0);
	CU_ASSERT(strstr(res.explanation, "step budget") != NULL);
	lin_result_free(&res);

	opt.max_steps = 0;
	opt.timeout_ms = 1;
	CU_ASSERT(lin_check(h, &opt, &res) == LIN_OK);
	CU_ASSERT(res.verdict == LIN_TIMEOUT);
	CU_ASSERT(strstr(res.explanation, "time budget") != NULL);
	lin_result_free(&res);
	lin_history_free(h);
}

/* A tiny memo cache forgets configurations but the verdict stays right. */
static void test_small_cache_overwrites_but_stays_correct(void)
{
	struct lin_history *h = hard_violation(10);
	struct lin_options opt = {.max_cache_bytes = 1};
	struct lin_result res;

	CU_ASSERT(lin_check(h, &opt, &res) == LIN_OK);
	CU_ASSERT(res.verdict == LIN_NOT_LINEARIZABLE);
	CU_ASSERT(res.cache_overflowed);
	lin_result_free(&res);
	lin_history_free(h);
}

/* ---- history files ---- */

static struct lin_history *parse_ok(const char *text)
{
	struct lin_history *h = NULL;
	char err[256];
	int rc = lin_history_parse(text, strlen(text), "h.txt", &h, err, sizeof(err));

	if (rc != LIN_OK)
		printf("\nunexpected parse error: %s\n", err);
	CU_ASSERT_FATAL(rc == LIN_OK && h != NULL);
	return h;
}

static char *write_to_string(const struct lin_history *h)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT(lin_history_write(h, f) == LIN_OK);
	fclose(f);
	return text;
}

static void test_history_file_round_trips(void)
{
	struct lin_history *h = lin_history_new(), *back = NULL;
	char all[256], err[256];
	char *text, *text2;
	size_t i;

	CU_ASSERT_FATAL(h != NULL);
	for (i = 0; i < sizeof(all); i++)
		all[i] = (char)i;
	{
		struct lin_op ops[] = {
		        {.client = 1,
		         .kind = LIN_PUT,
		         .key = "a/b c",
		         .value = all,
		         .value_len = sizeof(all),
		         .call_time = -5,
		         .return_time = 10},
		        {.client = 2,
		         .kind = LIN_GET,
		         .key = "a/b c",
		         .output = all,
		         .output_len = sizeof(all),
		         .call_time = 11,
		         .return_time = 12},
		        {.client = 3,
		         .kind = LIN_APPEND,
		         .key = "q\"\\",
		         .value = "",
		         .value_len = 0,
		         .call_time = 13,
		         .status = UNK},
		        {.client = 4,
		         .kind = LIN_DELETE,
		         .key = "k",
		         .call_time = 14,
		         .return_time = 15,
		         .status = FAIL},
		        {.client = 5, .kind = LIN_GET, .key = "k", .call_time = 16, .status = UNK},
		        {.client = 6,
		         .kind = LIN_GET,
		         .key = "k",
		         .output = "",
		         .call_time = INT64_MIN,
		         .return_time = INT64_MAX - 1},
		        {.client = 7,
		         .kind = LIN_WRITE_AT,
		         .key = "k",
		         .value = all,
		         .value_len = 3,
		         .offset = 5,
		         .call_time = 17,
		         .return_time = 18},
		        {.client = 8,
		         .kind = LIN_TRUNCATE,
		         .key = "k",
		         .offset = LIN_MAX_VALUE_BYTES,
		         .call_time = 19,
		         .status = UNK},
		};
		for (i = 0; i < N_OF(ops); i++)
			CU_ASSERT_FATAL(lin_history_add(h, &ops[i]) == LIN_OK);
	}
	text = write_to_string(h);
	CU_ASSERT_FATAL(lin_history_parse(text, strlen(text), "rt", &back, err, sizeof(err)) ==
	                LIN_OK);
	CU_ASSERT_FATAL(lin_history_count(back) == lin_history_count(h));
	for (i = 0; i < lin_history_count(h); i++) {
		const struct lin_op *a = lin_history_op(h, i), *b = lin_history_op(back, i);
		CU_ASSERT(a->client == b->client);
		CU_ASSERT(a->kind == b->kind);
		CU_ASSERT(a->status == b->status);
		CU_ASSERT(strcmp(a->key, b->key) == 0);
		CU_ASSERT(a->value_len == b->value_len &&
		          memcmp(a->value, b->value, a->value_len) == 0);
		CU_ASSERT(a->output_len == b->output_len &&
		          memcmp(a->output, b->output, a->output_len) == 0);
		CU_ASSERT(a->call_time == b->call_time);
		CU_ASSERT(a->return_time == b->return_time);
		CU_ASSERT(a->offset == b->offset);
		CU_ASSERT(b->line == i + 2); /* after the header comment */
	}
	text2 = write_to_string(back);
	CU_ASSERT(strcmp(text, text2) == 0);
	free(text);
	free(text2);
	lin_history_free(back);
	lin_history_free(h);
}

static void test_history_file_accepts_hex_comments_and_crlf(void)
{
	struct lin_history *h = parse_ok("# a comment\n"
	                                 "\n"
	                                 "   # indented comment\r\n"
	                                 "1 put x:6b x:00ff 0 10 ok\r\n"
	                                 "2\tget\t\"k\"\tx:00FF\t20\t30\tok\n"
	                                 "3 append \"k\" x: 40 - unknown");
	const struct lin_op *op;
	struct lin_result res;

	CU_ASSERT_FATAL(lin_history_count(h) == 3);
	op = lin_history_op(h, 0);
	CU_ASSERT(strcmp(op->key, "k") == 0);
	CU_ASSERT(op->value_len == 2 && memcmp(op->value, "\x00\xff", 2) == 0);
	CU_ASSERT(op->line == 4);
	op = lin_history_op(h, 1);
	CU_ASSERT(op->kind == LIN_GET && op->output_len == 2);
	op = lin_history_op(h, 2);
	CU_ASSERT(op->status == UNK && op->value_len == 0 && op->line == 6);
	CU_ASSERT(lin_check(h, NULL, &res) == LIN_OK);
	CU_ASSERT(res.verdict == LIN_LINEARIZABLE);
	lin_result_free(&res);
	lin_history_free(h);
}

static void test_malformed_lines_are_reported_with_their_line_number(void)
{
	static const struct {
		const char *line;
		const char *message;
	} cases[] = {
	        {"x put \"k\" \"v\" 0 1 ok", "h.txt:3: bad client id 'x'"},
	        {"-1 put \"k\" \"v\" 0 1 ok", "h.txt:3: bad client id '-1'"},
	        {"1 pt \"k\" \"v\" 0 1 ok",
	         "h.txt:3: bad kind 'pt' (want put, append, get, delete, writeat or truncate)"},
	        {"1 writeat \"k\" \"v\" 0 1 ok", "h.txt:3: bad offset '\"v\"'"},
	        {"1 writeat \"k\" -1 \"v\" 0 1 ok", "h.txt:3: bad offset '-1'"},
	        {"1 writeat \"k\" 67108864 \"v\" 0 1 ok", "h.txt:3: writeat past 67108864 bytes"},
	        {"1 writeat \"k\" 3 - 0 1 ok", "h.txt:3: writeat needs a value"},
	        {"1 truncate \"k\" 67108865 - 0 1 ok", "h.txt:3: bad size '67108865'"},
	        {"1 truncate \"k\" 3 \"v\" 0 1 ok", "h.txt:3: truncate takes no value"},
	        {"1 truncate \"k\" - 0 1 ok", "h.txt:3: bad size '-'"},
	        {"1 put k \"v\" 0 1 ok",
	         "h.txt:3: key must be a \"quoted string\" or x:HEX, got 'k'"},
	        {"1 put \"k \"v\" 0 1 ok", "h.txt:3: unexpected 'v' right after the string in key"},
	        {"1 put \"k\" \"v 0 1 ok", "h.txt:3: unterminated string in value"},
	        {"1 put \"k\" \"\\q\" 0 1 ok", "h.txt:3: unknown escape \\q in value"},
	        {"1 put \"k\" \"\\x4\" 0 1 ok", "h.txt:3: bad \\x escape in value"},
	        {"1 put \"k\" x:abc 0 1 ok", "h.txt:3: odd number of hex digits in value"},
	        {"1 put \"k\" x:zz 0 1 ok", "h.txt:3: bad hex digit in value"},
	        {"1 put \"k\\x00\" \"v\" 0 1 ok", "h.txt:3: key holds a NUL byte"},
	        {"1 put \"k\" - 0 1 ok", "h.txt:3: put needs a value"},
	        {"1 delete \"k\" \"v\" 0 1 ok", "h.txt:3: delete takes no value"},
	        {"1 get \"k\" - 0 1 ok", "h.txt:3: a get with status ok needs its result"},
	        {"1 put \"k\" \"v\" zero 1 ok", "h.txt:3: bad call time 'zero'"},
	        {"1 put \"k\" \"v\" 99999999999999999999 1 ok", "h.txt:3: bad call time"},
	        {"1 put \"k\" \"v\" 0 - ok", "h.txt:3: return time - is only for status unknown"},
	        {"1 put \"k\" \"v\" 5 1 ok", "h.txt:3: return time 1 is before call time 5"},
	        {"1 put \"k\" \"v\" 0 1 maybe",
	         "h.txt:3: bad status 'maybe' (want ok, fail or unknown)"},
	        {"1 put \"k\" \"v\" 0 1 ok extra", "h.txt:3: unexpected 'extra' after the status"},
	        {"1 put \"k\" \"v\" 0 1", "h.txt:3: missing status"},
	        {"1 put \"k\"", "h.txt:3: missing value"},
	        {"1", "h.txt:3: missing kind"},
	};
	size_t i;

	for (i = 0; i < N_OF(cases); i++) {
		struct lin_history *h = (struct lin_history *)&h;
		char text[256], err[256];
		int rc;
		snprintf(text, sizeof(text),
		         "# history\n1 get \"k\" \"\" 0 1 ok\n%s\n2 get \"k\" - 0 1 unknown\n",
		         cases[i].line);
		rc = lin_history_parse(text, strlen(text), "h.txt", &h, err, sizeof(err));
		CU_ASSERT(rc == LIN_EPARSE);
		CU_ASSERT(h == NULL);
		if (strncmp(err, cases[i].message, strlen(cases[i].message)) != 0) {
			printf("\nline   %s\nwanted %s\ngot    %s\n", cases[i].line,
			       cases[i].message, err);
			CU_FAIL("wrong parse error");
		}
	}
}

static void test_missing_history_file_is_reported(void)
{
	struct lin_history *h = NULL;
	char err[256];

	CU_ASSERT(lin_history_load("/nonexistent/history.txt", &h, err, sizeof(err)) == LIN_EIO);
	CU_ASSERT(h == NULL);
	CU_ASSERT(strstr(err, "/nonexistent/history.txt: No such file") != NULL);
}

/* Writes text to a new temporary file whose name is put in path (PATH_MAX-free: 64 bytes). */
static void temp_file(char path[64], const char *text)
{
	int fd;
	FILE *f;

	snprintf(path, 64, "/tmp/lincheck-test-XXXXXX");
	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	f = fdopen(fd, "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs(text, f);
	CU_ASSERT_FATAL(fclose(f) == 0);
}

static int run_check(const char *path, const char *extra)
{
	char *argv[] = {"test_lincheck", "--check", (char *)path, (char *)extra, NULL};

	fflush(stdout);
	return check_file_main(extra ? 4 : 3, argv);
}

static void test_command_line_check_exit_codes(void)
{
	char good[64], bad[64], broken[64], hard[64];
	struct lin_history *h = hard_violation(22);
	FILE *f;

	temp_file(good, "1 put \"k\" \"a\" 0 10 ok\n2 get \"k\" \"a\" 5 20 ok\n");
	temp_file(bad, "1 put \"k\" \"a\" 0 10 ok\n2 get \"k\" \"b\" 20 30 ok\n");
	temp_file(broken, "1 put \"k\" \"a\" 0 10 ok\n2 get \"k\" 20 30 ok\n");
	temp_file(hard, "");
	f = fopen(hard, "w");
	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT(lin_history_write(h, f) == LIN_OK);
	CU_ASSERT_FATAL(fclose(f) == 0);
	printf("\n");
	CU_ASSERT(run_check(good, NULL) == CHECK_EXIT_LINEARIZABLE);
	CU_ASSERT(run_check(bad, "--timeout-ms=5000") == CHECK_EXIT_VIOLATION);
	CU_ASSERT(run_check(broken, NULL) == CHECK_EXIT_BAD_INPUT);
	CU_ASSERT(run_check(hard, "--timeout-ms=20") == CHECK_EXIT_TIMEOUT);
	CU_ASSERT(run_check("/nonexistent/history.txt", NULL) == CHECK_EXIT_BAD_INPUT);
	CU_ASSERT(run_check(good, "--timeout-ms=x") == CHECK_EXIT_BAD_INPUT);
	CU_ASSERT(run_check(good, "--bogus") == CHECK_EXIT_BAD_INPUT);
	unlink(good);
	unlink(bad);
	unlink(broken);
	unlink(hard);
	lin_history_free(h);
}

/* ---- large generated histories ---- */

/*
 * A simulated linearizable store: clients issue ops one at a time; each op takes effect at a
 * random instant of its interval (an unknown-outcome one possibly much later, or never), and Gets
 * return the value at their instant. Every write carries a unique token "[cC.S]", so a value
 * spells which writes built it (until a WriteAt or Truncate cuts a token: rewrite_percent).
 */
struct gen_op {
	int client;
	enum lin_kind kind;
	int key;
	enum lin_status status;
	bool applied;
	int64_t call, ret, at;
	char *val; /* input of a write, result of an ok Get */
	size_t len;
	uint64_t off; /* WriteAt's offset, Truncate's size */
};

struct gen {
	struct gen_op *ops;
	size_t n;
	int keys;
};

struct gen_params {
	size_t ops;
	int keys;
	int clients;
	int max_duration;
	unsigned unknown_percent; /* of all ops: outcome unknown */
	unsigned failed_percent; /* of all ops: definitely not applied */
	unsigned rewrite_percent; /* of the writes: a WriteAt or a Truncate instead */
};

#define GEN_MAX_REWRITE_OFFSET 40 /* WriteAt offsets and Truncate sizes stay below it */

/* The value of one key while generating. */
struct gen_value {
	char *p;
	size_t len;
	size_t cap;
	bool exists; /* a Truncate of a missing key fails (ENOENT) */
};

static void gen_reserve(struct gen_value *v, size_t n)
{
	if (n <= v->cap)
		return;
	v->cap = 2 * n;
	v->p = realloc(v->p, v->cap);
	CU_ASSERT_FATAL(v->p != NULL);
}

/* Applies write o to v as the store does (kv/store.c); false for a Truncate of a missing key. */
static bool gen_apply(struct gen_value *v, const struct gen_op *o)
{
	size_t end;

	switch (o->kind) {
	case LIN_GET:
		return true;
	case LIN_DELETE:
		v->len = 0;
		v->exists = false;
		return true;
	case LIN_TRUNCATE:
		if (!v->exists)
			return false;
		gen_reserve(v, (size_t)o->off);
		if (o->off > v->len)
			memset(v->p + v->len, 0, (size_t)o->off - v->len);
		v->len = (size_t)o->off;
		return true;
	case LIN_PUT:
		v->len = 0;
		/* fall through */
	case LIN_APPEND:
	case LIN_WRITE_AT:
		end = (o->kind == LIN_WRITE_AT ? (size_t)o->off : v->len) + o->len;
		gen_reserve(v, end);
		if (o->kind == LIN_WRITE_AT && o->off > v->len)
			memset(v->p + v->len, 0, (size_t)o->off - v->len);
		memcpy(v->p + (end - o->len), o->val, o->len);
		if (end > v->len)
			v->len = end;
		v->exists = true;
		return true;
	}
	return true;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static unsigned rng_below(uint64_t *s, unsigned n)
{
	return (unsigned)(rng_next(s) % n);
}

static int gen_by_instant(const void *a, const void *b)
{
	const struct gen_op *x = *(const struct gen_op *const *)a;
	const struct gen_op *y = *(const struct gen_op *const *)b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return x < y ? -1 : x > y;
}

static char *dup_mem(const char *p, size_t n)
{
	char *c = malloc(n + 1);

	CU_ASSERT_FATAL(c != NULL);
	if (n)
		memcpy(c, p, n);
	c[n] = '\0';
	return c;
}

static void gen_history(uint64_t seed, const struct gen_params *gp, struct gen *g)
{
	int64_t *next_call = calloc((size_t)gp->clients, sizeof(*next_call));
	unsigned *seq = calloc((size_t)gp->clients, sizeof(*seq));
	struct gen_op **order = malloc(gp->ops * sizeof(*order));
	struct gen_value *value = calloc((size_t)gp->keys, sizeof(*value));
	size_t i, n_order = 0;
	int c;

	g->ops = calloc(gp->ops, sizeof(*g->ops));
	g->n = gp->ops;
	g->keys = gp->keys;
	CU_ASSERT_FATAL(next_call && seq && order && value && g->ops);
	for (c = 0; c < gp->clients; c++)
		next_call[c] = rng_below(&seed, 100);
	for (i = 0; i < gp->ops; i++) {
		struct gen_op *o = &g->ops[i];
		unsigned r = rng_below(&seed, 100), dur;
		char tok[32];
		int best = 0;
		for (c = 1; c < gp->clients; c++) {
			if (next_call[c] < next_call[best])
				best = c;
		}
		o->client = best;
		o->key = (int)rng_below(&seed, (unsigned)gp->keys);
		o->kind = r < 45 ? LIN_GET : r < 63 ? LIN_PUT : r < 92 ? LIN_APPEND : LIN_DELETE;
		if (gp->rewrite_percent > 0 && o->kind != LIN_GET &&
		    rng_below(&seed, 100) < gp->rewrite_percent) {
			o->kind = rng_below(&seed, 3) ? LIN_WRITE_AT : LIN_TRUNCATE;
			o->off = rng_below(&seed, GEN_MAX_REWRITE_OFFSET);
		}
		dur = 1 + rng_below(&seed, (unsigned)gp->max_duration);
		o->call = next_call[best];
		o->ret = o->call + dur;
		o->at = o->call + rng_below(&seed, dur);
		r = rng_below(&seed, 100);
		o->status = r < gp->unknown_percent                    ? UNK
		        : r < gp->unknown_percent + gp->failed_percent ? FAIL
		                                                       : OK;
		o->applied = o->status == OK;
		if (o->status == UNK && o->kind != LIN_GET && rng_below(&seed, 2)) {
			/* took effect, perhaps long after the client gave up */
			o->applied = true;
			o->at = o->call + rng_below(&seed, 10 * dur);
		}
		if (o->kind == LIN_PUT || o->kind == LIN_APPEND || o->kind == LIN_WRITE_AT) {
			int n = snprintf(tok, sizeof(tok), "[c%d.%u]", best, seq[best]++);
			o->val = dup_mem(tok, (size_t)n);
			o->len = (size_t)n;
		} else if (o->kind == LIN_GET && o->status == FAIL) {
			o->val = dup_mem("garbage", 7);
			o->len = 7;
		}
		if (o->applied)
			order[n_order++] = o;
		next_call[best] = o->ret + rng_below(&seed, 40);
	}
	qsort(order, n_order, sizeof(*order), gen_by_instant);
	for (i = 0; i < n_order; i++) {
		struct gen_op *o = order[i];
		struct gen_value *v = &value[o->key];
		if (o->kind == LIN_GET) {
			o->val = dup_mem(v->p, v->len);
			o->len = v->len;
			continue;
		}
		if (!gen_apply(v, o) && o->status == OK)
			o->status = FAIL; /* the store answered ENOENT */
	}
	for (c = 0; c < gp->keys; c++)
		free(value[c].p);
	free(value);
	free(order);
	free(seq);
	free(next_call);
}

static void gen_free(struct gen *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		free(g->ops[i].val);
	free(g->ops);
}

static struct lin_history *gen_to_history(const struct gen *g)
{
	struct lin_history *h = lin_history_new();
	size_t i;

	CU_ASSERT_FATAL(h != NULL);
	for (i = 0; i < g->n; i++) {
		const struct gen_op *o = &g->ops[i];
		char key[16];
		struct lin_op op = {.client = o->client,
		                    .kind = o->kind,
		                    .status = o->status,
		                    .key = key,
		                    .value = o->val,
		                    .value_len = o->len,
		                    .output = o->val,
		                    .output_len = o->len,
		                    .offset = o->off,
		                    .call_time = o->call,
		                    .return_time = o->ret};
		snprintf(key, sizeof(key), "key%d", o->key);
		CU_ASSERT_FATAL(lin_history_add(h, &op) == LIN_OK);
	}
	return h;
}

static int int64_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Most definite ops in flight at once, to show the history has real overlap. */
static int gen_max_overlap(const struct gen *g)
{
	int64_t *ev = malloc(2 * g->n * sizeof(*ev));
	size_t i, m = 0;
	int cur = 0, best = 0;

	CU_ASSERT_FATAL(ev != NULL);
	for (i = 0; i < g->n; i++) {
		if (g->ops[i].status != OK)
			continue;
		ev[m++] = g->ops[i].call * 2 + 1; /* an event's low bit: 1 call, 0 return */
		ev[m++] = g->ops[i].ret * 2 + 2; /* returns sort after calls at equal times */
	}
	qsort(ev, m, sizeof(*ev), int64_cmp);
	for (i = 0; i < m; i++) {
		cur += (ev[i] & 1) ? 1 : -1;
		if (cur > best)
			best = cur;
	}
	free(ev);
	return best;
}

static unsigned env_or(const char *name, unsigned dflt)
{
	const char *s = getenv(name);

	return s ? (unsigned)strtoul(s, NULL, 0) : dflt;
}

static uint64_t seed_base(void)
{
	const char *s = getenv("LINCHECK_SEED");

	return s ? strtoull(s, NULL, 0) : 1;
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static enum lin_verdict check_gen(const struct gen *g, const char *what, uint64_t seed)
{
	struct lin_history *h = gen_to_history(g);
	struct lin_options opt = {.timeout_ms = BIG_TIMEOUT_MS};
	struct lin_result res;
	enum lin_verdict v;
	double t0 = now_ms();

	CU_ASSERT(lin_check(h, &opt, &res) == LIN_OK);
	printf("\n  seed %" PRIu64 " %-22s %-16s %7.1f ms  %9" PRIu64 " steps  %8" PRIu64
	       " configs  %zu dropped",
	       seed, what, lin_verdict_name(res.verdict), now_ms() - t0, res.steps, res.configs,
	       res.ops_dropped);
	v = res.verdict;
	if (v == LIN_TIMEOUT)
		printf("\n%s", res.explanation);
	lin_result_free(&res);
	lin_history_free(h);
	return v;
}

/* ---- corruptions of a generated history, each one a certain violation ---- */

static bool is_ok_get(const struct gen_op *o)
{
	return o->kind == LIN_GET && o->status == OK;
}

static bool is_ok_write(const struct gen_op *o)
{
	return o->kind != LIN_GET && o->status == OK;
}

/* The op a corruption changed, printed with the verdict. */
static size_t corrupted_op;

static void set_output(struct gen_op *o, const char *p, size_t n)
{
	char *v = dup_mem(p, n);

	free(o->val);
	o->val = v;
	o->len = n;
}

/*
 * A Get g returns what an earlier Get g0 returned, though a write w ran wholly between them.
 * Tokens are unique, so once w is applied the value never spells g0's (non-empty) result again.
 */
static bool corrupt_stale_read(struct gen *g)
{
	size_t i, j, k;

	for (i = g->n / 2; i < g->n; i++) {
		struct gen_op *r = &g->ops[i];
		if (!is_ok_get(r))
			continue;
		for (j = i; j-- > 0;) { /* ops are in call order */
			const struct gen_op *w = &g->ops[j];
			if (w->key == r->key && is_ok_write(w) && w->ret < r->call)
				break;
		}
		if (j == SIZE_MAX)
			continue;
		for (k = j; k-- > 0;) {
			const struct gen_op *r0 = &g->ops[k];
			if (r0->key == r->key && is_ok_get(r0) && r0->ret < g->ops[j].call &&
			    r0->len > 0 && (r0->len != r->len || memcmp(r0->val, r->val, r->len))) {
				corrupted_op = i;
				set_output(r, r0->val, r0->len);
				return true;
			}
		}
	}
	return false;
}

/* Where the last token of a Get result starts, or SIZE_MAX. */
static size_t last_token(const struct gen_op *o)
{
	size_t p = o->len;

	while (p > 0 && o->val[p - 1] != '[')
		p--;
	return p > 0 ? p - 1 : SIZE_MAX;
}

/* The op whose token (of len bytes) is at p, or NULL. */
static const struct gen_op *token_writer(const struct gen *g, const char *p, size_t len)
{
	size_t j;

	for (j = 0; j < g->n; j++) {
		const struct gen_op *w = &g->ops[j];
		if (w->kind != LIN_GET && w->len == len && memcmp(w->val, p, len) == 0)
			return w;
	}
	return NULL;
}

/*
 * A Get misses the last append a in its result. To be a certain violation, a must have returned
 * before the Get began, and begun after the op f that wrote the first token returned: then a
 * comes after f, and once a is applied the value never again spells f's token without a's.
 * (Without the second condition, a could be ordered before f's Put and the read be fine.)
 */
static bool corrupt_lost_append(struct gen *g)
{
	size_t i;

	for (i = g->n / 2; i < g->n; i++) {
		struct gen_op *r = &g->ops[i];
		size_t p = is_ok_get(r) ? last_token(r) : SIZE_MAX, first_len;
		const struct gen_op *a, *f;
		if (p == SIZE_MAX || p == 0)
			continue;
		a = token_writer(g, r->val + p, r->len - p);
		first_len = (size_t)((const char *)memchr(r->val, ']', r->len) - r->val) + 1;
		f = token_writer(g, r->val, first_len);
		if (a && f && a->kind == LIN_APPEND && a->status == OK && f->status == OK &&
		    a->ret < r->call && f->ret < a->call) {
			corrupted_op = i;
			set_output(r, r->val, p);
			return true;
		}
	}
	return false;
}

/* A Get sees its last token twice: one write applied twice. */
static bool corrupt_duplicated_append(struct gen *g)
{
	size_t i;

	for (i = g->n / 2; i < g->n; i++) {
		struct gen_op *r = &g->ops[i];
		size_t p = is_ok_get(r) ? last_token(r) : SIZE_MAX;
		char *v;
		if (p == SIZE_MAX)
			continue;
		v = malloc(r->len + (r->len - p));
		CU_ASSERT_FATAL(v != NULL);
		memcpy(v, r->val, r->len);
		memcpy(v + r->len, r->val + p, r->len - p);
		corrupted_op = i;
		set_output(r, v, r->len + (r->len - p));
		free(v);
		return true;
	}
	return false;
}

static bool corrupt_never_written(struct gen *g)
{
	size_t i;

	for (i = g->n / 2; i < g->n; i++) {
		if (is_ok_get(&g->ops[i])) {
			corrupted_op = i;
			set_output(&g->ops[i], "[never]", 7);
			return true;
		}
	}
	return false;
}

/* A byte of a Get result becomes one no write holds. */
static bool corrupt_one_byte(struct gen *g)
{
	size_t i;

	for (i = g->n / 2; i < g->n; i++) {
		struct gen_op *r = &g->ops[i];
		if (is_ok_get(r) && r->len > 0) {
			corrupted_op = i;
			r->val[r->len / 2] = '#';
			return true;
		}
	}
	return false;
}

#define BIG_SEEDS 3

static const struct gen_params few_keys = {
        .ops = BIG_OPS,
        .keys = 4,
        .clients = 24,
        .max_duration = 300,
        .unknown_percent = 3,
        .failed_percent = 2,
};
static const struct gen_params hot_keys = {
        .ops = BIG_OPS,
        .keys = 2,
        .clients = 6,
        .max_duration = 300,
        .unknown_percent = 3,
        .failed_percent = 2,
};
/* Linearizable only: a violation among ~12 ops in flight per key can take the search long. */
static const struct gen_params crowd = {
        .ops = BIG_OPS,
        .keys = 2,
        .clients = 24,
        .max_duration = 300,
        .unknown_percent = 3,
        .failed_percent = 2,
};

/*
 * A quarter of the writes are WriteAt or Truncate (offsets and sizes below 40 bytes), on keys of
 * 250 and 500 ops. Those ops keep the checker from dropping unknown writes no Get read (they
 * could cut them: unobserved()), so unknown ops pile up on a key: a few thousand ops on one key
 * take the search minutes, which is why tests/nemesis.test.sh moves such clients to a new key
 * every few seconds (Jepsen's key rotation).
 */
static const struct gen_params rewrites = {
        .ops = BIG_OPS,
        .keys = 40,
        .clients = 12,
        .max_duration = 300,
        .unknown_percent = 3,
        .failed_percent = 2,
        .rewrite_percent = 25,
};
static const struct gen_params hot_rewrites = {
        .ops = BIG_OPS,
        .keys = 20,
        .clients = 6,
        .max_duration = 300,
        .unknown_percent = 3,
        .failed_percent = 2,
        .rewrite_percent = 25,
};

/* On a wrong verdict: the seed, the command that replays it and the history in a file. */
static void report_seed(const struct gen *g, uint64_t seed, const char *test)
{
	char path[64];
	struct lin_history *h = gen_to_history(g);
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/lincheck-seed-%" PRIu64 ".hist", seed);
	f = fopen(path, "w");
	if (f) {
		lin_history_write(h, f);
		fclose(f);
	}
	printf("\n  wrong verdict for seed %" PRIu64 ": replay with LINCHECK_SEED=%" PRIu64
	       " tests/test_lincheck lincheck:%s; history in %s (tests/test_lincheck --check %s)\n",
	       seed, seed, test, path, path);
	lin_history_free(h);
}

static void big_linearizable(const struct gen_params *gp0, const char *test)
{
	uint64_t s, base = seed_base();
	struct gen_params p = *gp0, *gp = &p;

	p.unknown_percent = env_or("LINCHECK_UNKNOWN_PERCENT", p.unknown_percent);
	p.clients = (int)env_or("LINCHECK_CLIENTS", (unsigned)p.clients);
	p.keys = (int)env_or("LINCHECK_KEYS", (unsigned)p.keys);

	for (s = base; s < base + BIG_SEEDS; s++) {
		struct gen g;
		gen_history(s, gp, &g);
		if (s == base)
			printf("\n  %zu ops, %d keys, %d clients, up to %d ops in flight at once",
			       g.n, gp->keys, gp->clients, gen_max_overlap(&g));
		if (check_gen(&g, "as generated", s) != LIN_LINEARIZABLE) {
			CU_FAIL("a generated linearizable history was not found LINEARIZABLE");
			report_seed(&g, s, test);
		}
		gen_free(&g);
	}
}

static void big_violation_of(bool (*corrupt)(struct gen *), const char *what, const char *test,
                             const struct gen_params *shape0, const struct gen_params *shape1)
{
	uint64_t s, base = seed_base();
	int p;

	for (p = 0; p < 2; p++) {
		struct gen_params gp_env = p == 0 ? *shape0 : *shape1, *gp = &gp_env;
		gp_env.clients = (int)env_or("LINCHECK_CLIENTS", (unsigned)gp_env.clients);
		gp_env.keys = (int)env_or("LINCHECK_KEYS", (unsigned)gp_env.keys);
		for (s = base; s < base + BIG_SEEDS; s++) {
			struct gen g;
			gen_history(s, gp, &g);
			CU_ASSERT_FATAL(corrupt(&g));
			printf("\n  seed %" PRIu64 " op %zu (line %zu) corrupted:", s, corrupted_op,
			       corrupted_op + 2);
			if (check_gen(&g, what, s) != LIN_NOT_LINEARIZABLE) {
				CU_FAIL("a corrupted history was not found NOT_LINEARIZABLE");
				report_seed(&g, s, test);
			}
			gen_free(&g);
		}
	}
}

static void big_violation(bool (*corrupt)(struct gen *), const char *what, const char *test)
{
	big_violation_of(corrupt, what, test, &few_keys, &hot_keys);
}

static void test_large_histories_of_a_linearizable_store_are_linearizable(void)
{
	big_linearizable(&few_keys,
	                 "test_large_histories_of_a_linearizable_store_are_linearizable");
}

static void test_large_histories_on_two_hot_keys_are_linearizable(void)
{
	big_linearizable(&hot_keys, "test_large_histories_on_two_hot_keys_are_linearizable");
}

static void test_large_histories_of_a_crowd_on_two_keys_are_linearizable(void)
{
	big_linearizable(&crowd, "test_large_histories_of_a_crowd_on_two_keys_are_linearizable");
}

static void test_large_history_with_a_stale_read_is_rejected(void)
{
	big_violation(corrupt_stale_read, "stale read",
	              "test_large_history_with_a_stale_read_is_rejected");
}

static void test_large_history_with_a_lost_append_is_rejected(void)
{
	big_violation(corrupt_lost_append, "lost append",
	              "test_large_history_with_a_lost_append_is_rejected");
}

static void test_large_history_with_a_duplicated_append_is_rejected(void)
{
	big_violation(corrupt_duplicated_append, "duplicated append",
	              "test_large_history_with_a_duplicated_append_is_rejected");
}

static void test_large_history_with_a_value_never_written_is_rejected(void)
{
	big_violation(corrupt_never_written, "value never written",
	              "test_large_history_with_a_value_never_written_is_rejected");
}

static void test_large_histories_with_write_at_and_truncate_are_linearizable(void)
{
	big_linearizable(&rewrites,
	                 "test_large_histories_with_write_at_and_truncate_are_linearizable");
	big_linearizable(&hot_rewrites,
	                 "test_large_histories_with_write_at_and_truncate_are_linearizable");
}

static void test_large_history_with_write_at_truncate_and_a_byte_never_written_is_rejected(void)
{
	static const char test[] =
	        "test_large_history_with_write_at_truncate_and_a_byte_never_written_is_rejected";

	big_violation_of(corrupt_one_byte, "byte never written", test, &rewrites, &hot_rewrites);
	big_violation_of(corrupt_never_written, "value never written", test, &rewrites,
	                 &hot_rewrites);
}

/* The generated histories survive the file format, and the verdict with them. */
static void test_large_history_file_round_trip_keeps_the_verdict(void)
{
	struct gen g;
	struct lin_history *h, *back = NULL;
	struct lin_result res;
	char *text, err[256];

	gen_history(seed_base(), &few_keys, &g);
	h = gen_to_history(&g);
	text = write_to_string(h);
	CU_ASSERT_FATAL(lin_history_parse(text, strlen(text), "big", &back, err, sizeof(err)) ==
	                LIN_OK);
	CU_ASSERT(lin_history_count(back) == g.n);
	CU_ASSERT(lin_check(back, NULL, &res) == LIN_OK);
	CU_ASSERT(res.verdict == LIN_LINEARIZABLE);
	lin_result_free(&res);
	free(text);
	lin_history_free(back);
	lin_history_free(h);
	gen_free(&g);
}

/* ---- runner ---- */

static CU_TestInfo lincheck_tests[] = {
        {"test_empty_history_is_linearizable", test_empty_history_is_linearizable},
        {"test_sequential_history_is_linearizable", test_sequential_history_is_linearizable},
        {"test_get_of_missing_key_returns_empty", test_get_of_missing_key_returns_empty},
        {"test_append_to_missing_key_acts_like_put", test_append_to_missing_key_acts_like_put},
        {"test_delete_makes_get_return_empty", test_delete_makes_get_return_empty},
        {"test_concurrent_ops_are_reordered_to_linearize",
         test_concurrent_ops_are_reordered_to_linearize},
        {"test_concurrent_reads_may_see_old_or_new_value",
         test_concurrent_reads_may_see_old_or_new_value},
        {"test_ops_touching_at_equal_times_count_as_concurrent",
         test_ops_touching_at_equal_times_count_as_concurrent},
        {"test_unknown_write_that_took_effect_is_accepted",
         test_unknown_write_that_took_effect_is_accepted},
        {"test_unknown_write_that_never_took_effect_is_accepted",
         test_unknown_write_that_never_took_effect_is_accepted},
        {"test_unknown_write_may_take_effect_long_after_its_call",
         test_unknown_write_may_take_effect_long_after_its_call},
        {"test_unknown_write_cannot_take_effect_before_its_call",
         test_unknown_write_cannot_take_effect_before_its_call},
        {"test_unknown_write_takes_effect_at_most_once",
         test_unknown_write_takes_effect_at_most_once},
        {"test_unknown_and_failed_gets_are_not_checked",
         test_unknown_and_failed_gets_are_not_checked},
        {"test_failed_write_is_ignored_and_must_not_be_seen",
         test_failed_write_is_ignored_and_must_not_be_seen},
        {"test_keys_are_checked_independently", test_keys_are_checked_independently},
        {"test_equal_values_built_differently_are_equal",
         test_equal_values_built_differently_are_equal},
        {"test_values_may_hold_any_byte", test_values_may_hold_any_byte},
        {"test_stale_read_is_rejected", test_stale_read_is_rejected},
        {"test_lost_append_is_rejected", test_lost_append_is_rejected},
        {"test_duplicated_append_is_rejected", test_duplicated_append_is_rejected},
        {"test_read_of_a_value_never_written_is_rejected",
         test_read_of_a_value_never_written_is_rejected},
        {"test_read_seeing_a_write_that_began_after_it_returned_is_rejected",
         test_read_seeing_a_write_that_began_after_it_returned_is_rejected},
        {"test_read_of_a_deleted_value_is_rejected", test_read_of_a_deleted_value_is_rejected},
        {"test_reads_disagreeing_on_append_order_are_rejected",
         test_reads_disagreeing_on_append_order_are_rejected},
        {"test_write_at_overwrites_in_place_and_keeps_the_rest",
         test_write_at_overwrites_in_place_and_keeps_the_rest},
        {"test_write_at_past_the_end_fills_the_gap_with_zeros",
         test_write_at_past_the_end_fills_the_gap_with_zeros},
        {"test_write_at_on_a_missing_key_creates_it", test_write_at_on_a_missing_key_creates_it},
        {"test_write_at_at_the_end_extends_the_value", test_write_at_at_the_end_extends_the_value},
        {"test_truncate_cuts_and_zero_fills", test_truncate_cuts_and_zero_fills},
        {"test_failed_truncate_of_a_missing_key_is_not_seen",
         test_failed_truncate_of_a_missing_key_is_not_seen},
        {"test_concurrent_write_at_and_truncate_are_ordered",
         test_concurrent_write_at_and_truncate_are_ordered},
        {"test_unknown_write_at_may_or_may_not_take_effect",
         test_unknown_write_at_may_or_may_not_take_effect},
        {"test_unknown_truncate_may_take_effect_long_after_its_call",
         test_unknown_truncate_may_take_effect_long_after_its_call},
        {"test_write_cut_by_a_later_truncate_is_not_dropped",
         test_write_cut_by_a_later_truncate_is_not_dropped},
        {"test_write_partly_overwritten_by_a_later_write_at_is_not_dropped",
         test_write_partly_overwritten_by_a_later_write_at_is_not_dropped},
        {"test_unseen_unknown_write_at_with_nothing_after_it_is_dropped",
         test_unseen_unknown_write_at_with_nothing_after_it_is_dropped},
        {"test_unseen_definite_write_at_still_hides_older_values",
         test_unseen_definite_write_at_still_hides_older_values},
        {"test_unknown_write_then_truncate", test_unknown_write_then_truncate},
        {"test_write_at_and_truncate_reports_name_offset_and_size",
         test_write_at_and_truncate_reports_name_offset_and_size},
        {"test_violation_report_names_key_prefix_and_blocked_op",
         test_violation_report_names_key_prefix_and_blocked_op},
        {"test_invalid_ops_are_refused", test_invalid_ops_are_refused},
        {"test_check_out_of_budget_is_a_timeout_never_a_pass",
         test_check_out_of_budget_is_a_timeout_never_a_pass},
        {"test_small_cache_overwrites_but_stays_correct",
         test_small_cache_overwrites_but_stays_correct},
        {"test_history_file_round_trips", test_history_file_round_trips},
        {"test_history_file_accepts_hex_comments_and_crlf",
         test_history_file_accepts_hex_comments_and_crlf},
        {"test_malformed_lines_are_reported_with_their_line_number",
         test_malformed_lines_are_reported_with_their_line_number},
        {"test_missing_history_file_is_reported", test_missing_history_file_is_reported},
        {"test_command_line_check_exit_codes", test_command_line_check_exit_codes},
        {"test_large_histories_of_a_linearizable_store_are_linearizable",
         test_large_histories_of_a_linearizable_store_are_linearizable},
        {"test_large_histories_on_two_hot_keys_are_linearizable",
         test_large_histories_on_two_hot_keys_are_linearizable},
        {"test_large_histories_of_a_crowd_on_two_keys_are_linearizable",
         test_large_histories_of_a_crowd_on_two_keys_are_linearizable},
        {"test_large_history_with_a_stale_read_is_rejected",
         test_large_history_with_a_stale_read_is_rejected},
        {"test_large_history_with_a_lost_append_is_rejected",
         test_large_history_with_a_lost_append_is_rejected},
        {"test_large_history_with_a_duplicated_append_is_rejected",
         test_large_history_with_a_duplicated_append_is_rejected},
        {"test_large_history_with_a_value_never_written_is_rejected",
         test_large_history_with_a_value_never_written_is_rejected},
        {"test_large_histories_with_write_at_and_truncate_are_linearizable",
         test_large_histories_with_write_at_and_truncate_are_linearizable},
        {"test_large_history_with_write_at_truncate_and_a_byte_never_written_is_rejected",
         test_large_history_with_write_at_truncate_and_a_byte_never_written_is_rejected},
        {"test_large_history_file_round_trip_keeps_the_verdict",
         test_large_history_file_round_trip_keeps_the_verdict},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"lincheck", NULL, NULL, NULL, NULL, lincheck_tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--check") == 0)
		return check_file_main(argc, argv);
	return cu_main(argc, argv, suites);
}
