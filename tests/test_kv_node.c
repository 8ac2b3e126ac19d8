/* test_kv_node.c - whole replicated nodes in one process (tests/lib/nodesim.h), seeded. */
#include <CUnit/CUnit.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/cmd.h"
#include "kv/node.h"
#include "kv/proto.h"
#include "kv/store.h"
#include "raft/crc32c.h"
#include "raft/raft.h"
#include "tests/lib/cu.h"
#include "tests/lib/nodesim.h"

#define LEADER_MS 3000 /* a fresh or healed cluster elects a leader within this */
#define CONVERGE_MS 10000 /* and every node catches up within this */
#define OP_TIMEOUT_MS 1000
#define RANDOM_SEEDS 50
#define RANDOM_FAULT_MS 8000
#define SNAPSHOT_END_MS 301 /* a background snapshot in the fixture ends within this */

/* Environment: KV_NODE_SEED=n replays one seed (every test, and one random run); KV_NODE_SEEDS=k
 * runs k random seeds (a soak); KV_NODE_TRACE=1 prints the nodes' logs. */

/* --- seeds and failure reports ------------------------------------------------------------------ */

static const char *current_test = "";

/* The seed of a test: KV_NODE_SEED (environment) replaces every default. */
static uint64_t test_seed(uint64_t dflt)
{
	const char *e = getenv("KV_NODE_SEED");
	return e && *e ? strtoull(e, NULL, 0) : dflt;
}

static void report(struct nodesim *s, uint64_t seed, const char *file, int line, const char *cond,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void report(struct nodesim *s, uint64_t seed, const char *file, int line, const char *cond,
                   const char *fmt, ...)
{
	va_list ap;

	printf("\n  FAILED %s:%d (%s) seed %llu: %s: ", file, line, current_test,
	       (unsigned long long)seed, cond);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n  replay: KV_NODE_SEED=%llu tests/test_kv_node <suite>:%s\n",
	       (unsigned long long)seed, current_test);
	if (s) {
		if (nodesim_error(s))
			printf("  fixture: %s\n", nodesim_error(s));
		nodesim_dump(s);
	}
}

/* Checks cond; on failure prints the seed, the details and the cluster, then leaves the test
 * through its `out` label (which frees the fixture). Uses `s` and `seed` of the test. */
#define REQUIRE(cond, ...)                                                                         \
	do {                                                                                       \
		bool ok_ = (cond);                                                                 \
		CU_assertImplementation(ok_, __LINE__, #cond, __FILE__, "", CU_FALSE);             \
		if (!ok_) {                                                                        \
			report(s, seed, __FILE__, __LINE__, #cond, __VA_ARGS__);                   \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

/* The fixture has seen no violation of its invariants. */
#define REQUIRE_SAFE() REQUIRE(nodesim_error(s) == NULL, "%s", "invariant violated")

#define TEST(name) current_test = #name

/* --- helpers ------------------------------------------------------------------------------------ */

/* The cluster o describes, or NULL after printing why. */
static struct nodesim *cluster_from(const struct nodesim_options *o)
{
	struct nodesim *s = NULL;
	char err[256];

	if (nodesim_new(o, &s, err, sizeof(err)) != 0) {
		printf("\n  seed %llu: cannot build the cluster: %s\n", (unsigned long long)o->seed,
		       err);
		return NULL;
	}
	return s;
}

static struct nodesim *cluster_with(unsigned n, uint64_t seed, uint64_t snapshot_bytes,
                                    unsigned jitter_ms, unsigned dup_pm, bool sync_snapshots)
{
	struct nodesim_options o;

	nodesim_options_default(&o, n, seed);
	o.snapshot_bytes = snapshot_bytes;
	o.delay_jitter_ms = jitter_ms;
	o.dup_pm = dup_pm;
	o.sync_snapshots = sync_snapshots;
	if (snapshot_bytes && snapshot_bytes < 8192)
		o.snapshot_trailing = 16; /* laggards need InstallSnapshot */
	return cluster_from(&o);
}

static struct nodesim *cluster(unsigned n, uint64_t seed, uint64_t snapshot_bytes)
{
	return cluster_with(n, seed, snapshot_bytes, 4, 0, false);
}

static const char *status_name(int st)
{
	return st < 0 ? "no answer" : kv_status_name(st);
}

static int op(struct nodesim *s, unsigned i, int opcode, const char *key, const char *data,
              struct nodesim_req *r)
{
	struct kv_cmd c;

	nodesim_cmd(s, &c, opcode, key, data);
	return nodesim_call(s, i, &c, OP_TIMEOUT_MS, r);
}

static int session_op(struct nodesim *s, unsigned i, int opcode, const char *key, const char *data,
                      uint64_t session, uint64_t seq, struct nodesim_req *r)
{
	struct kv_cmd c;

	nodesim_cmd(s, &c, opcode, key, data);
	c.session = session;
	c.seq = seq;
	return nodesim_call(s, i, &c, OP_TIMEOUT_MS, r);
}

/* Non-overlapping occurrences of needle in hay. */
static unsigned count_in(const void *hay, size_t hay_len, const char *needle)
{
	size_t nl = strlen(needle);
	const char *p, *end;
	unsigned k = 0;

	if (!hay || !nl)
		return 0;
	p = hay;
	end = p + hay_len;
	while ((size_t)(end - p) >= nl) {
		const char *m = memmem(p, (size_t)(end - p), needle, nl);
		if (!m)
			break;
		k++;
		p = m + nl;
	}
	return k;
}

/* The value of key in node i's local store (no ReadIndex: for checks after convergence).
 * Returns a raft_buf (or NULL when empty) the caller unrefs. */
static void *local_value(struct nodesim *s, unsigned i, const char *key, size_t *len, bool *exists)
{
	void *v = NULL;

	*len = 0;
	*exists = false;
	if (!nodesim_node(s, i) ||
	    kv_store_get(kv_node_store(nodesim_node(s, i)), key, strlen(key), &v, len, exists,
	                 NULL) != KV_OK)
		return NULL;
	return v;
}

static bool value_is(const struct kv_result *res, const char *want)
{
	size_t n = strlen(want);
	return res->value_len == n && (n == 0 || memcmp(res->value, want, n) == 0);
}

static int follower_of(struct nodesim *s, int leader)
{
	for (unsigned i = 0; i < nodesim_n(s); i++)
		if ((int)i != leader && nodesim_up(s, i))
			return (int)i;
	return -1;
}

/* --- basic operation ---------------------------------------------------------------------------- */

static void test_three_nodes_elect_a_leader_and_a_put_through_it_is_read_on_every_node(void)
{
	uint64_t seed = test_seed(101);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	int l, st;

	TEST(test_three_nodes_elect_a_leader_and_a_put_through_it_is_read_on_every_node);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	st = op(s, (unsigned)l, KV_OP_PUT, "a/b", "hello", &r);
	REQUIRE(st == KV_STATUS_OK, "put on the leader: %s", status_name(st));
	REQUIRE(r.req.result.status == KV_OK, "put result %s", kv_strerror(r.req.result.status));
	REQUIRE(r.req.leader == (uint32_t)l + 1, "answer names leader %u", r.req.leader);
	for (unsigned i = 0; i < 3; i++) {
		st = op(s, i, KV_OP_GET, "a/b", NULL, &r);
		REQUIRE(st == KV_STATUS_OK, "get on node %u: %s", i + 1, status_name(st));
		REQUIRE(r.req.result.status == KV_OK && r.req.result.exists, "get on node %u: %s",
		        i + 1, kv_strerror(r.req.result.status));
		REQUIRE(value_is(&r.req.result, "hello"), "node %u read %.*s", i + 1,
		        (int)r.req.result.value_len, (const char *)r.req.result.value);
	}
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

static void test_a_put_on_a_follower_is_forwarded_and_a_get_or_read_on_a_follower_reads_it(void)
{
	uint64_t seed = test_seed(102);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	int l, f, f2, st;

	TEST(test_a_put_on_a_follower_is_forwarded_and_a_get_or_read_on_a_follower_reads_it);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	f = follower_of(s, l);
	f2 = 3 - l - f;
	st = op(s, (unsigned)f, KV_OP_PUT, "x", "from-follower", &r);
	REQUIRE(st == KV_STATUS_OK, "put on follower %d: %s", f + 1, status_name(st));
	REQUIRE(r.req.result.status == KV_OK, "put result %s", kv_strerror(r.req.result.status));
	/* straight after the ack, on the other follower: ReadIndex must make it wait to apply */
	st = op(s, (unsigned)f2, KV_OP_GET, "x", NULL, &r);
	REQUIRE(st == KV_STATUS_OK, "get on follower %d: %s", f2 + 1, status_name(st));
	REQUIRE(value_is(&r.req.result, "from-follower"), "follower %d read %.*s", f2 + 1,
	        (int)r.req.result.value_len, (const char *)r.req.result.value);
	/* a Read of a slice through a follower: the bytes asked for and the whole size */
	{
		struct kv_cmd c;
		nodesim_cmd(s, &c, KV_OP_READ, "x", NULL);
		c.offset = 5;
		c.count = 3;
		st = nodesim_call(s, (unsigned)f2, &c, OP_TIMEOUT_MS, &r);
	}
	REQUIRE(st == KV_STATUS_OK, "read on follower %d: %s", f2 + 1, status_name(st));
	REQUIRE(value_is(&r.req.result, "fol") && r.req.result.has_attr &&
	                r.req.result.attr.size == strlen("from-follower"),
	        "follower %d read %.*s (size %llu)", f2 + 1, (int)r.req.result.value_len,
	        (const char *)r.req.result.value, (unsigned long long)r.req.result.attr.size);
	/* a write on one follower then a read on the same one, many times: never stale */
	for (int k = 0; k < 20; k++) {
		char v[32];
		snprintf(v, sizeof(v), "v%d", k);
		st = op(s, (unsigned)(k % 2 ? f : f2), KV_OP_PUT, "y", v, &r);
		REQUIRE(st == KV_STATUS_OK, "put %d: %s", k, status_name(st));
		st = op(s, (unsigned)(k % 2 ? f2 : f), KV_OP_GET, "y", NULL, &r);
		REQUIRE(st == KV_STATUS_OK, "get %d: %s", k, status_name(st));
		REQUIRE(value_is(&r.req.result, v), "get %d read %.*s, want %s", k,
		        (int)r.req.result.value_len, (const char *)r.req.result.value, v);
	}
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

struct starve {
	struct nodesim *s;
	unsigned to;
	uint64_t until_ms;
};

/* Drops the AppendEntries going to one node for a while. */
static bool starve_appends(void *arg, unsigned from, unsigned to, const struct raft_msg *m)
{
	struct starve *sv = arg;

	(void)from;
	return m && m->type == RAFT_MSG_APPEND && to == sv->to && nodesim_now(sv->s) < sv->until_ms;
}

static void test_a_follower_read_waits_until_the_follower_has_applied_the_read_index(void)
{
	uint64_t seed = test_seed(115);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	struct starve sv;
	int l, f, st;

	TEST(test_a_follower_read_waits_until_the_follower_has_applied_the_read_index);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	f = follower_of(s, l);
	st = op(s, (unsigned)l, KV_OP_PUT, "w", "old", &r);
	REQUIRE(st == KV_STATUS_OK, "first put: %s", status_name(st));
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	/* f gets no entries for 300 ms: the new value commits with the other follower */
	sv.s = s;
	sv.to = (unsigned)f;
	sv.until_ms = nodesim_now(s) + 300;
	nodesim_set_filter(s, starve_appends, &sv);
	st = op(s, (unsigned)l, KV_OP_PUT, "w", "new", &r);
	REQUIRE(st == KV_STATUS_OK, "second put: %s", status_name(st));
	st = op(s, (unsigned)f, KV_OP_GET, "w", NULL, &r);
	REQUIRE(st == KV_STATUS_OK, "get on the starved follower: %s", status_name(st));
	REQUIRE(value_is(&r.req.result, "new"), "stale read on node %d: %.*s", f + 1,
	        (int)r.req.result.value_len, (const char *)r.req.result.value);
	REQUIRE(r.done_ms >= sv.until_ms, "served at %llu ms, before the entries could arrive",
	        (unsigned long long)r.done_ms);
	nodesim_set_filter(s, NULL, NULL);
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

static void test_append_to_a_missing_key_acts_as_put_and_get_of_a_missing_key_is_empty(void)
{
	uint64_t seed = test_seed(103);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	int l, st;

	TEST(test_append_to_a_missing_key_acts_as_put_and_get_of_a_missing_key_is_empty);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	st = op(s, (unsigned)l, KV_OP_GET, "nothing/here", NULL, &r);
	REQUIRE(st == KV_STATUS_OK, "get: %s", status_name(st));
	REQUIRE(r.req.result.status == KV_OK, "get result %s", kv_strerror(r.req.result.status));
	REQUIRE(!r.req.result.exists, "%s", "a missing key exists");
	REQUIRE(r.req.result.value_len == 0, "missing key has %zu bytes", r.req.result.value_len);
	st = op(s, (unsigned)follower_of(s, l), KV_OP_APPEND, "log", "one", &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "append: %s / %s",
	        status_name(st), kv_strerror(r.req.result.status));
	st = op(s, (unsigned)l, KV_OP_APPEND, "log", "+two", &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "append: %s", status_name(st));
	for (unsigned i = 0; i < 3; i++) {
		st = op(s, i, KV_OP_GET, "log", NULL, &r);
		REQUIRE(st == KV_STATUS_OK && r.req.result.exists, "get on %u: %s", i + 1,
		        status_name(st));
		REQUIRE(value_is(&r.req.result, "one+two"), "node %u read %.*s", i + 1,
		        (int)r.req.result.value_len, (const char *)r.req.result.value);
	}
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

static void test_a_retried_session_append_is_applied_once_and_its_answer_replayed(void)
{
	uint64_t seed = test_seed(104);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	uint64_t session;
	int l, f, st;
	size_t len;
	bool exists;
	void *v = NULL;

	TEST(test_a_retried_session_append_is_applied_once_and_its_answer_replayed);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	f = follower_of(s, l);
	st = op(s, (unsigned)f, KV_OP_OPEN_SESSION, NULL, NULL, &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "open session: %s",
	        status_name(st));
	session = r.req.result.session;
	REQUIRE(session != 0, "%s", "session id 0");
	st = session_op(s, (unsigned)f, KV_OP_APPEND, "once", "<exactly-once>", session, 1, &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "first append: %s / %s",
	        status_name(st), kv_strerror(r.req.result.status));
	REQUIRE(!r.req.result.replayed, "%s", "first answer marked replayed");
	/* the retry, once through the leader (which answers from the session) and once through
	 * the follower again (the result encoding forwarded back carries no replayed flag) */
	for (int k = 0; k < 2; k++) {
		unsigned via = (unsigned)(k ? f : l);
		st = session_op(s, via, KV_OP_APPEND, "once", "<exactly-once>", session, 1, &r);
		REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "retry %d: %s / %s", k,
		        status_name(st), kv_strerror(r.req.result.status));
		if (via == (unsigned)l)
			REQUIRE(r.req.result.replayed, "retry %d through the leader not replayed",
			        k);
	}
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	for (unsigned i = 0; i < 3; i++) {
		v = local_value(s, i, "once", &len, &exists);
		REQUIRE(count_in(v, len, "<exactly-once>") == 1, "node %u holds %.*s", i + 1,
		        (int)len, (const char *)v);
		raft_buf_unref(v);
		v = NULL;
	}
	/* an older request number is refused, not applied */
	st = session_op(s, (unsigned)l, KV_OP_APPEND, "once", "<second>", session, 2, &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "seq 2: %s", status_name(st));
	st = session_op(s, (unsigned)l, KV_OP_APPEND, "once", "<stale>", session, 1, &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_ESTALE, "seq 1 again: %s / %s",
	        status_name(st), kv_strerror(r.req.result.status));
	REQUIRE_SAFE();
out:
	raft_buf_unref(v);
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* --- without a quorum --------------------------------------------------------------------------- */

static bool not_leader(struct nodesim *s, void *arg)
{
	struct kv_proto_node_status st;

	nodesim_status(s, *(unsigned *)arg, &st);
	return st.role != RAFT_LEADER && st.leader == 0;
}

static void test_a_write_without_quorum_ends_unknown_if_proposed_and_not_applied_if_not(void)
{
	uint64_t seed = test_seed(105);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	unsigned l;
	int li, st;
	size_t len;
	bool exists;
	void *v = NULL;

	TEST(test_a_write_without_quorum_ends_unknown_if_proposed_and_not_applied_if_not);
	REQUIRE(s != NULL, "%s", "no cluster");
	li = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(li >= 0, "no leader after %d ms", LEADER_MS);
	l = (unsigned)li;
	nodesim_isolate(s, l);
	/* still the leader when the write arrives: proposed, never committed */
	st = op(s, l, KV_OP_APPEND, "q", "<proposed>", &r);
	REQUIRE(st == KV_STATUS_UNKNOWN, "isolated leader's write: %s", status_name(st));
	REQUIRE(r.done_ms - r.submitted_ms >= OP_TIMEOUT_MS, "answered after %llu ms",
	        (unsigned long long)(r.done_ms - r.submitted_ms));
	/* once it has stepped down and knows no leader: never reaches one */
	REQUIRE(nodesim_run_until(s, not_leader, &l, 2000), "%s", "old leader never stepped down");
	st = op(s, l, KV_OP_PUT, "q2", "<never>", &r);
	REQUIRE(st == KV_STATUS_NOT_APPLIED, "cut-off node's write: %s", status_name(st));
	/* a read there: no data, ever */
	st = op(s, l, KV_OP_GET, "q", NULL, &r);
	REQUIRE(st == KV_STATUS_NOT_APPLIED, "cut-off node's read: %s", status_name(st));
	REQUIRE(r.req.result.value == NULL && r.req.result.value_len == 0, "%s",
	        "a failed read carries data");
	nodesim_heal(s);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence after healing");
	for (unsigned i = 0; i < 3; i++) {
		v = local_value(s, i, "q", &len, &exists);
		REQUIRE(count_in(v, len, "<proposed>") == 0,
		        "node %u: the new leader's term "
		        "should have replaced %.*s",
		        i + 1, (int)len, (const char *)v);
		raft_buf_unref(v);
		v = local_value(s, i, "q2", &len, &exists);
		REQUIRE(!exists, "node %u: a NOT_APPLIED write was applied", i + 1);
		raft_buf_unref(v);
		v = NULL;
	}
	REQUIRE_SAFE();
out:
	raft_buf_unref(v);
	nodesim_req_release(&r);
	nodesim_free(s);
}

static void test_a_read_without_quorum_ends_not_applied_and_never_returns_data(void)
{
	uint64_t seed = test_seed(106);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	int l, f, st;

	TEST(test_a_read_without_quorum_ends_not_applied_and_never_returns_data);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	st = op(s, (unsigned)l, KV_OP_PUT, "r", "old", &r);
	REQUIRE(st == KV_STATUS_OK, "put: %s", status_name(st));
	f = follower_of(s, l);
	/* every node alone: nobody has a quorum */
	for (unsigned i = 0; i < 3; i++)
		nodesim_isolate(s, i);
	for (unsigned i = 0; i < 3; i++) {
		st = op(s, i, KV_OP_GET, "r", NULL, &r);
		REQUIRE(st == KV_STATUS_NOT_APPLIED, "read on node %u (leader %d): %s", i + 1,
		        l + 1, status_name(st));
		REQUIRE(r.req.result.value == NULL, "node %u returned data", i + 1);
	}
	/* a write through a follower whose forward is lost: proposed nowhere */
	st = op(s, (unsigned)f, KV_OP_PUT, "r", "lost", &r);
	REQUIRE(st == KV_STATUS_UNKNOWN || st == KV_STATUS_NOT_APPLIED, "write: %s",
	        status_name(st));
	nodesim_heal(s);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence after healing");
	st = op(s, (unsigned)f, KV_OP_GET, "r", NULL, &r);
	REQUIRE(st == KV_STATUS_OK && value_is(&r.req.result, "old"), "read after healing: %s %.*s",
	        status_name(st), (int)r.req.result.value_len, (const char *)r.req.result.value);
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* --- crashes ------------------------------------------------------------------------------------ */

static bool index_grew(struct nodesim *s, void *arg)
{
	uint64_t *want = arg; /* [node, last index before] */
	struct kv_proto_node_status st;

	nodesim_status(s, (unsigned)want[0], &st);
	return st.last_index > want[1];
}

/* One round: Append text on node `via` while the leader is `l`, crash the leader once the entry
 * is in its log (links from the leader blocked when `cut`), recover, and check the outcome. */
static int crash_round(struct nodesim *s, uint64_t seed, bool cut, bool use_session, int round)
{
	struct nodesim_req r = {0}, o = {0};
	struct kv_cmd c;
	char text[32];
	uint64_t session = 0, watch[2];
	struct kv_proto_node_status st;
	unsigned via;
	int l, rv = -1, status;
	size_t len;
	bool exists;
	void *v = NULL;

	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "round %d: no leader", round);
	if (use_session) {
		status = op(s, (unsigned)l, KV_OP_OPEN_SESSION, NULL, NULL, &o);
		REQUIRE(status == KV_STATUS_OK, "round %d: open session: %s", round,
		        status_name(status));
		session = o.req.result.session;
	}
	via = round % 3 == 0 ? (unsigned)l : (unsigned)follower_of(s, l);
	snprintf(text, sizeof(text), "<crash-%d>", round);
	if (cut)
		for (unsigned j = 0; j < nodesim_n(s); j++)
			nodesim_block(s, (unsigned)l, j, true);
	nodesim_status(s, (unsigned)l, &st);
	watch[0] = (uint64_t)l;
	watch[1] = st.last_index;
	nodesim_cmd(s, &c, KV_OP_APPEND, "crash", text);
	c.session = session;
	c.seq = 1;
	REQUIRE(nodesim_submit(s, via, &c, 2 * OP_TIMEOUT_MS, &r) == 0, "round %d: submit", round);
	REQUIRE(nodesim_run_until(s, index_grew, watch, 500), "round %d: never proposed", round);
	nodesim_crash(s, (unsigned)l, (size_t)(nodesim_random(s) % 300));
	nodesim_heal(s);
	REQUIRE(nodesim_wait(s, &r, 3 * OP_TIMEOUT_MS), "round %d: no answer", round);
	if (via == (unsigned)l)
		REQUIRE(r.req.status == KV_STATUS_UNKNOWN, "round %d: crashed leader answered %s",
		        round, status_name(r.req.status));
	REQUIRE(nodesim_wait_leader(s, LEADER_MS) >= 0, "round %d: no leader after the crash",
	        round);
	REQUIRE(nodesim_restart(s, (unsigned)l) == 0, "round %d: restart", round);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "round %d: no convergence", round);
	for (unsigned i = 0; i < nodesim_n(s); i++) {
		unsigned k;
		v = local_value(s, i, "crash", &len, &exists);
		k = count_in(v, len, text);
		REQUIRE(k <= 1, "round %d: node %u applied %s %u times", round, i + 1, text, k);
		if (r.req.status == KV_STATUS_OK)
			REQUIRE(k == 1, "round %d: acknowledged %s lost on node %u", round, text,
			        i + 1);
		if (r.req.status == KV_STATUS_NOT_APPLIED || r.req.status == KV_STATUS_SHUTDOWN)
			REQUIRE(k == 0, "round %d: %s answered %s but applied", round, text,
			        status_name(r.req.status));
		raft_buf_unref(v);
		v = NULL;
	}
	rv = r.req.status;
out:
	raft_buf_unref(v);
	nodesim_req_release(&r);
	nodesim_req_release(&o);
	return rv;
}

static void test_a_leader_crash_between_propose_and_commit_never_acknowledges_a_lost_write(void)
{
	uint64_t seed = test_seed(107);
	struct nodesim *s = cluster(3, seed, 0);
	unsigned seen[KV_STATUS_COUNT] = {0};

	TEST(test_a_leader_crash_between_propose_and_commit_never_acknowledges_a_lost_write);
	REQUIRE(s != NULL, "%s", "no cluster");
	for (int round = 0; round < 12; round++) {
		bool cut = (round / 3) % 2 == 1;
		bool session = round >= 6;
		int st = crash_round(s, seed, cut, session, round);
		REQUIRE(st >= 0 && nodesim_error(s) == NULL, "round %d failed", round);
		seen[st]++;
	}
	printf("\n    crash rounds: %u OK, %u UNKNOWN, %u NOT_APPLIED ", seen[KV_STATUS_OK],
	       seen[KV_STATUS_UNKNOWN], seen[KV_STATUS_NOT_APPLIED]);
	REQUIRE(seen[KV_STATUS_UNKNOWN] > 0, "%s", "no round ended UNKNOWN");
	REQUIRE_SAFE();
out:
	nodesim_free(s);
}

static void test_every_node_restarted_after_a_torn_crash_recovers_the_same_state(void)
{
	uint64_t seed = test_seed(108);
	struct nodesim *s = cluster(3, seed, 2048);
	struct nodesim_req r = {0};
	uint64_t before;
	int l, st;

	TEST(test_every_node_restarted_after_a_torn_crash_recovers_the_same_state);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	for (int k = 0; k < 120; k++) {
		char key[16], val[64];
		snprintf(key, sizeof(key), "d%d/f%d", k % 4, k % 9);
		snprintf(val, sizeof(val), "<%d>", k);
		st = op(s, (unsigned)k % 3, k % 2 ? KV_OP_APPEND : KV_OP_PUT, key, val, &r);
		REQUIRE(st == KV_STATUS_OK, "write %d: %s", k, status_name(st));
	}
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	before = nodesim_hash(s, 0);
	for (unsigned round = 0; round < 3; round++) {
		for (unsigned i = 0; i < 3; i++)
			nodesim_crash(s, i, (size_t)(nodesim_random(s) % 400));
		for (unsigned i = 0; i < 3; i++)
			REQUIRE(nodesim_restart(s, i) == 0, "restart of node %u", i + 1);
		REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "round %u: no convergence", round);
		for (unsigned i = 0; i < 3; i++)
			REQUIRE(nodesim_hash(s, i) == before,
			        "round %u: node %u hash %016llx, before "
			        "%016llx",
			        round, i + 1, (unsigned long long)nodesim_hash(s, i),
			        (unsigned long long)before);
	}
	st = op(s, 1, KV_OP_GET, "d1/f1", NULL, &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.exists, "read after restarts: %s",
	        status_name(st));
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

/*
 * Found by test_nodesim (seed 600100074, mix all): a follower forwarded writes, crashed and came
 * back at once; the leader's answers to the old incarnation's forwards arrived afterwards and,
 * ids restarting at 1, completed the new incarnation's first forwards: a write reported applied
 * that never was. Forward ids (and read contexts) now start at random.
 */
static void test_an_answer_to_a_forward_of_an_earlier_incarnation_completes_nothing(void)
{
	uint64_t seed = test_seed(119);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req w1 = {0}, w2 = {0};
	struct starve sv;
	struct kv_cmd c;
	int l, f, g;

	TEST(test_an_answer_to_a_forward_of_an_earlier_incarnation_completes_nothing);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	f = follower_of(s, l);
	g = 3 - l - f;
	/* g is cut off and f gets no entries: nothing the leader proposes can commit yet */
	nodesim_block(s, (unsigned)l, (unsigned)g, true);
	nodesim_block(s, (unsigned)g, (unsigned)l, true);
	nodesim_block(s, (unsigned)f, (unsigned)g, true);
	nodesim_block(s, (unsigned)g, (unsigned)f, true);
	sv.s = s;
	sv.to = (unsigned)f;
	sv.until_ms = UINT64_MAX;
	nodesim_set_filter(s, starve_appends, &sv);
	/* w1, answered "no such key", is forwarded by f's first incarnation */
	nodesim_cmd(s, &c, KV_OP_DELETE, "nothing", NULL);
	REQUIRE(nodesim_submit(s, (unsigned)f, &c, OP_TIMEOUT_MS, &w1) == 0, "%s", "submit w1");
	nodesim_run_for(s, 50);
	REQUIRE(!w1.done, "%s", "w1 answered without a quorum (test premise)");
	nodesim_crash(s, (unsigned)f, 0);
	REQUIRE(nodesim_restart(s, (unsigned)f) == 0, "restart: %s", nodesim_error(s));
	nodesim_run_for(s, 100); /* heartbeats: f learns the leader */
	/* w2, a put, is forwarded by the second incarnation */
	nodesim_cmd(s, &c, KV_OP_PUT, "after", "restart");
	REQUIRE(nodesim_submit(s, (unsigned)f, &c, OP_TIMEOUT_MS, &w2) == 0, "%s", "submit w2");
	nodesim_run_for(s, 50);
	REQUIRE(!w2.done, "%s", "w2 answered without a quorum (test premise)");
	nodesim_set_filter(s, NULL, NULL); /* both commit; w1's answer comes back to f too */
	REQUIRE(nodesim_wait(s, &w2, OP_TIMEOUT_MS), "%s", "w2 never answered");
	REQUIRE(w2.req.status == KV_STATUS_OK, "w2: %s", status_name(w2.req.status));
	REQUIRE(w2.req.result.status == KV_OK,
	        "the put was answered %s: the answer to the earlier incarnation's delete",
	        kv_strerror(w2.req.result.status));
	nodesim_heal(s);
	REQUIRE_SAFE();
out:
	nodesim_set_filter(s, NULL, NULL);
	nodesim_req_release(&w1);
	nodesim_req_release(&w2);
	nodesim_free(s);
}

static void test_a_node_stopped_by_a_failed_fsync_restarts_and_catches_up(void)
{
	uint64_t seed = test_seed(109);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	int l, st;

	TEST(test_a_node_stopped_by_a_failed_fsync_restarts_and_catches_up);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	nodesim_arm_sync_fault(s, (unsigned)l, 2, 100);
	for (int k = 0; k < 10; k++) {
		char val[16];
		snprintf(val, sizeof(val), "<%d>", k);
		op(s, (unsigned)k % 3, KV_OP_APPEND, "f", val, &r);
	}
	REQUIRE(!nodesim_up(s, (unsigned)l), "%s", "the leader survived its failed fsync");
	REQUIRE(nodesim_restart(s, (unsigned)l) == 0, "%s", "restart");
	st = op(s, (unsigned)l, KV_OP_APPEND, "f", "<last>", &r);
	REQUIRE(st == KV_STATUS_OK, "append after restart: %s", status_name(st));
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* --- snapshots ---------------------------------------------------------------------------------- */

/* With background snapshots (sync false), each batch waits until the jobs it started ended. */
static void snapshots_advance_and_a_cut_off_node_catches_up(bool sync)
{
	uint64_t seed = test_seed(110);
	/* default trailing: 1024 entries */
	struct nodesim *s = cluster_with(3, seed, 8192, 4, 0, sync);
	struct nodesim_req rs[64];
	struct nodesim_req r = {0};
	struct kv_proto_node_status st;
	uint64_t first_snap = 0;
	int l, p;

	memset(rs, 0, sizeof(rs));
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	p = follower_of(s, l);
	nodesim_isolate(s, (unsigned)p);
	/* more entries than the leader keeps behind a snapshot (raft snapshot_trailing, 1024) */
	for (int batch = 0; batch < 22; batch++) {
		for (int k = 0; k < 64; k++) {
			struct kv_cmd c;
			char key[16], val[80];
			snprintf(key, sizeof(key), "s/%d", k % 24);
			snprintf(val, sizeof(val),
			         "batch %d entry %d ..................................", batch, k);
			nodesim_cmd(s, &c, KV_OP_PUT, key, val);
			REQUIRE(nodesim_submit(s, (unsigned)l, &c, 5000, &rs[k]) == 0,
			        "submit %d/%d", batch, k);
		}
		for (int k = 0; k < 64; k++) {
			REQUIRE(nodesim_wait(s, &rs[k], 6000), "batch %d entry %d: no answer",
			        batch, k);
			REQUIRE(rs[k].req.status == KV_STATUS_OK, "batch %d entry %d: %s", batch, k,
			        status_name(rs[k].req.status));
		}
		if (!sync)
			REQUIRE(nodesim_run_for(s, SNAPSHOT_END_MS), "%s", "run");
		nodesim_status(s, (unsigned)l, &st);
		if (batch == 1)
			first_snap = st.snapshot_index;
	}
	nodesim_status(s, (unsigned)l, &st);
	REQUIRE(first_snap > 0, "%s", "no snapshot after 128 writes of 8 KiB snapshots");
	REQUIRE(st.snapshot_index > first_snap + 1024, "snapshot index %llu after %llu",
	        (unsigned long long)st.snapshot_index, (unsigned long long)first_snap);
	for (unsigned i = 0; i < 3; i++) {
		struct kv_proto_node_status o;
		nodesim_status(s, i, &o);
		if ((int)i != p)
			REQUIRE(o.snapshot_index > first_snap, "node %u never snapshotted", i + 1);
	}
	nodesim_heal(s);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence after healing");
	REQUIRE(nodesim_snapshots_received(s, (unsigned)p) >= 1,
	        "node %d caught up without InstallSnapshot (%llu chunks)", p + 1,
	        (unsigned long long)nodesim_snapshot_chunks_received(s, (unsigned)p));
	nodesim_status(s, (unsigned)p, &st);
	REQUIRE(st.snapshot_index > first_snap, "node %d snapshot index %llu", p + 1,
	        (unsigned long long)st.snapshot_index);
	REQUIRE(nodesim_hash(s, (unsigned)p) == nodesim_hash(s, (unsigned)l),
	        "hash %016llx on node %d, %016llx on the leader",
	        (unsigned long long)nodesim_hash(s, (unsigned)p), p + 1,
	        (unsigned long long)nodesim_hash(s, (unsigned)l));
	REQUIRE(op(s, (unsigned)p, KV_OP_GET, "s/5", NULL, &r) == KV_STATUS_OK, "%s",
	        "read on the caught-up node");
	REQUIRE(count_in(r.req.result.value, r.req.result.value_len, "batch 21 entry 53 ") == 1,
	        "node %d read %.*s", p + 1, (int)r.req.result.value_len,
	        (const char *)r.req.result.value);
	/* and it survives a restart from its installed snapshot */
	nodesim_crash(s, (unsigned)p, 0);
	REQUIRE(nodesim_restart(s, (unsigned)p) == 0, "%s", "restart");
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence after restart");
	REQUIRE_SAFE();
out:
	for (int k = 0; k < 64; k++)
		nodesim_req_release(&rs[k]);
	nodesim_req_release(&r);
	nodesim_free(s);
}

static void test_snapshots_advance_and_a_cut_off_node_catches_up_by_install_snapshot(void)
{
	TEST(test_snapshots_advance_and_a_cut_off_node_catches_up_by_install_snapshot);
	snapshots_advance_and_a_cut_off_node_catches_up(false);
}

static void test_synchronous_snapshots_advance_and_a_cut_off_node_catches_up(void)
{
	TEST(test_synchronous_snapshots_advance_and_a_cut_off_node_catches_up);
	snapshots_advance_and_a_cut_off_node_catches_up(true);
}

/* --- background snapshots ----------------------------------------------------------------------- */

/* Temporary files (*.tmp) in node i's data directory. */
static unsigned tmp_files(struct nodesim *s, unsigned i)
{
	struct raft_vfs *vfs = nodesim_vfs(s, i);
	char dir[16], **names;
	size_t n;
	unsigned k = 0;

	snprintf(dir, sizeof(dir), "/n%u", i + 1);
	if (vfs->readdir(vfs, dir, &names, &n) != 0)
		return 0;
	for (size_t j = 0; j < n; j++) {
		size_t len = strlen(names[j]);
		k += len > 4 && strcmp(names[j] + len - 4, ".tmp") == 0;
	}
	raft_vfs_names_free(names, n);
	return k;
}

/* Holds every node's background snapshots when they start (hold), or lets them all go: held
 * ones end with success, later ones after their usual delay. */
static void hold_snapshots(struct nodesim *s, unsigned n, bool hold)
{
	for (unsigned i = 0; i < n; i++)
		nodesim_hold_snapshots(s, i, hold);
	for (unsigned i = 0; !hold && i < n; i++)
		nodesim_release_snapshot(s, i, true);
}

/* Puts through node i until node w holds a finished background snapshot job (at most max).
 * Returns the puts done, or -1 when one failed or none was held. */
static int put_until_held(struct nodesim *s, unsigned i, unsigned w, int max, const char *tag)
{
	struct nodesim_req r = {0};
	char key[32], val[96];
	int k;

	for (k = 0; k < max && !nodesim_snapshot_held(s, w); k++) {
		snprintf(key, sizeof(key), "%s/%d", tag, k % 8);
		snprintf(val, sizeof(val), "%s value %d ................................", tag, k);
		if (op(s, i, KV_OP_PUT, key, val, &r) != KV_STATUS_OK) {
			nodesim_req_release(&r);
			return -1;
		}
	}
	nodesim_req_release(&r);
	return nodesim_snapshot_held(s, w) ? k : -1;
}

static void test_a_node_keeps_serving_while_its_background_snapshot_is_in_flight(void)
{
	uint64_t seed = test_seed(120);
	struct nodesim *s = cluster(3, seed, 4096);
	struct nodesim_req r = {0};
	struct kv_proto_node_status st0, st1, st2;
	int l, f, st;

	TEST(test_a_node_keeps_serving_while_its_background_snapshot_is_in_flight);
	REQUIRE(s != NULL, "%s", "no cluster");
	hold_snapshots(s, 3, true);
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	f = follower_of(s, l);
	REQUIRE(put_until_held(s, (unsigned)l, (unsigned)l, 400, "a") > 0, "%s",
	        "no background snapshot on the leader");
	REQUIRE(kv_node_snapshot_in_flight(nodesim_node(s, (unsigned)l)), "%s", "not in flight");
	nodesim_status(s, (unsigned)l, &st0);
	REQUIRE(st0.snapshot_index == 0, "snapshot %llu installed before its end",
	        (unsigned long long)st0.snapshot_index);
	/* writes through the leader and a follower, reads on the follower: all served */
	for (int k = 0; k < 60; k++) {
		char key[16], val[64];
		snprintf(key, sizeof(key), "b/%d", k % 5);
		snprintf(val, sizeof(val), "during %d ..............................", k);
		st = op(s, (unsigned)(k % 2 ? l : f), KV_OP_PUT, key, val, &r);
		REQUIRE(st == KV_STATUS_OK, "put %d while in flight: %s", k, status_name(st));
		st = op(s, (unsigned)f, KV_OP_GET, key, NULL, &r);
		REQUIRE(st == KV_STATUS_OK && value_is(&r.req.result, val),
		        "get %d while in flight: %s", k, status_name(st));
	}
	nodesim_status(s, (unsigned)l, &st1);
	REQUIRE(st1.applied >= st0.applied + 60, "applied %llu, was %llu",
	        (unsigned long long)st1.applied, (unsigned long long)st0.applied);
	REQUIRE(st1.snapshot_index == 0, "%s", "a snapshot installed while held");
	REQUIRE(nodesim_snapshots_started(s, (unsigned)l) == 1, "%llu jobs started: one at a time",
	        (unsigned long long)nodesim_snapshots_started(s, (unsigned)l));
	REQUIRE(st1.log_bytes > st0.log_bytes, "log bytes %llu, were %llu",
	        (unsigned long long)st1.log_bytes, (unsigned long long)st0.log_bytes);
	REQUIRE(nodesim_release_snapshot(s, (unsigned)l, true), "%s", "release");
	nodesim_status(s, (unsigned)l, &st2);
	REQUIRE(st2.snapshot_index > 0 && st2.snapshot_index <= st0.applied,
	        "snapshot index %llu, applied %llu when it started",
	        (unsigned long long)st2.snapshot_index, (unsigned long long)st0.applied);
	/* the log written while the job ran is still counted, the part it covers is not */
	REQUIRE(st2.log_bytes >= st1.log_bytes - st0.log_bytes && st2.log_bytes < st1.log_bytes,
	        "log bytes %llu after the snapshot: %llu at its start, %llu at its end",
	        (unsigned long long)st2.log_bytes, (unsigned long long)st0.log_bytes,
	        (unsigned long long)st1.log_bytes);
	REQUIRE(tmp_files(s, (unsigned)l) == 0, "%u temporary files left",
	        tmp_files(s, (unsigned)l));
	REQUIRE(!kv_node_snapshot_in_flight(nodesim_node(s, (unsigned)l)), "%s", "still in flight");
	/* every node ends with the same state, and the leader restarts from its snapshot */
	hold_snapshots(s, 3, false);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	nodesim_crash(s, (unsigned)l, 0);
	REQUIRE(nodesim_restart(s, (unsigned)l) == 0, "%s", "restart");
	nodesim_status(s, (unsigned)l, &st1);
	REQUIRE(st1.snapshot_index >= st2.snapshot_index, "restarted at snapshot %llu",
	        (unsigned long long)st1.snapshot_index);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence after restart");
	st = op(s, (unsigned)l, KV_OP_GET, "b/4", NULL, &r);
	REQUIRE(st == KV_STATUS_OK &&
	                count_in(r.req.result.value, r.req.result.value_len, "during 59 ") == 1,
	        "read after restart: %s", status_name(st));
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

/*
 * The log cannot be dropped before a background job is done, and it grows meanwhile: the next
 * job starts earlier by what the last one saw written (at most half of snapshot_bytes), so that
 * at a steady load the log peaks near snapshot_bytes instead of snapshot_bytes plus a job's
 * worth (mem-restart.sh: the node's peak memory).
 */
static void test_the_next_snapshot_starts_earlier_by_what_the_last_job_saw_written(void)
{
	uint64_t seed = test_seed(121), bytes = 4096, stagger, grown, plain, early;
	struct nodesim *s = cluster(3, seed, bytes);
	struct nodesim_req r = {0};
	struct kv_proto_node_status st0, st1, st2, st3;
	int l, st;

	TEST(test_the_next_snapshot_starts_earlier_by_what_the_last_job_saw_written);
	REQUIRE(s != NULL, "%s", "no cluster");
	hold_snapshots(s, 3, true);
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	stagger = bytes / 16 * (((unsigned)l + 1 + 3) % 4); /* node id l + 1 */
	plain = bytes - stagger;
	REQUIRE(put_until_held(s, (unsigned)l, (unsigned)l, 400, "a") > 0, "%s",
	        "no first snapshot");
	nodesim_status(s, (unsigned)l, &st0);
	REQUIRE(st0.log_bytes >= plain, "the first job started at %llu log bytes, below %llu",
	        (unsigned long long)st0.log_bytes, (unsigned long long)plain);
	/* about 1 KiB written while it runs */
	for (int k = 0; k < 8; k++) {
		st = op(s, (unsigned)l, KV_OP_PUT, "b", "..................................", &r);
		REQUIRE(st == KV_STATUS_OK, "put %d while in flight: %s", k, status_name(st));
	}
	nodesim_status(s, (unsigned)l, &st1);
	grown = st1.log_bytes - st0.log_bytes;
	REQUIRE(grown > 0 && grown < bytes / 2, "%llu bytes written while the job ran",
	        (unsigned long long)grown);
	REQUIRE(nodesim_release_snapshot(s, (unsigned)l, true), "%s", "release");
	nodesim_status(s, (unsigned)l, &st2);
	REQUIRE(st2.snapshot_index > 0 && st2.log_bytes == grown,
	        "after the install: snapshot %llu, log bytes %llu (grown %llu)",
	        (unsigned long long)st2.snapshot_index, (unsigned long long)st2.log_bytes,
	        (unsigned long long)grown);
	/* the next job: at the trigger less what the last one saw written */
	early = plain - grown;
	REQUIRE(put_until_held(s, (unsigned)l, (unsigned)l, 400, "c") > 0, "%s",
	        "no second snapshot");
	nodesim_status(s, (unsigned)l, &st3);
	REQUIRE(st3.log_bytes >= early && st3.log_bytes < plain,
	        "the second job started at %llu log bytes: want [%llu, %llu)",
	        (unsigned long long)st3.log_bytes, (unsigned long long)early,
	        (unsigned long long)plain);
	hold_snapshots(s, 3, false);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

static void test_a_failed_background_snapshot_stops_nothing_and_is_tried_again_later(void)
{
	uint64_t seed = test_seed(121);
	struct nodesim *s = cluster(3, seed, 4096);
	struct nodesim_req r = {0};
	struct kv_proto_node_status st0, st1;
	int l, st;

	TEST(test_a_failed_background_snapshot_stops_nothing_and_is_tried_again_later);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	nodesim_hold_snapshots(s, (unsigned)l, true);
	REQUIRE(put_until_held(s, (unsigned)l, (unsigned)l, 400, "a") > 0, "%s",
	        "no background snapshot on the leader");
	REQUIRE(tmp_files(s, (unsigned)l) == 1, "%u temporary files while in flight",
	        tmp_files(s, (unsigned)l));
	nodesim_status(s, (unsigned)l, &st0);
	REQUIRE(nodesim_release_snapshot(s, (unsigned)l, false), "%s", "release");
	/* the node goes on, its log intact and still counted; the image is gone */
	REQUIRE(!kv_node_failed(nodesim_node(s, (unsigned)l), NULL), "%s", "node stopped");
	REQUIRE(tmp_files(s, (unsigned)l) == 0, "%u temporary files after the failure",
	        tmp_files(s, (unsigned)l));
	st = op(s, (unsigned)l, KV_OP_PUT, "c", "after the failure", &r);
	REQUIRE(st == KV_STATUS_OK, "put after the failure: %s", status_name(st));
	nodesim_status(s, (unsigned)l, &st1);
	REQUIRE(st1.snapshot_index == 0 && st1.log_bytes > st0.log_bytes,
	        "snapshot %llu, log bytes %llu (were %llu)", (unsigned long long)st1.snapshot_index,
	        (unsigned long long)st1.log_bytes, (unsigned long long)st0.log_bytes);
	/* not at once (a failing disk is not hammered), but after the retry delay */
	REQUIRE(nodesim_snapshots_started(s, (unsigned)l) == 1, "%llu jobs started right away",
	        (unsigned long long)nodesim_snapshots_started(s, (unsigned)l));
	REQUIRE(nodesim_run_for(s, KV_NODE_SNAPSHOT_RETRY_TICKS * NODESIM_TICK_MS + 50), "%s",
	        "run");
	REQUIRE(put_until_held(s, (unsigned)l, (unsigned)l, 5, "d") >= 0, "%s",
	        "no new background snapshot after the retry delay");
	REQUIRE(nodesim_snapshots_started(s, (unsigned)l) == 2, "%llu jobs started",
	        (unsigned long long)nodesim_snapshots_started(s, (unsigned)l));
	REQUIRE(nodesim_release_snapshot(s, (unsigned)l, true), "%s", "release");
	nodesim_status(s, (unsigned)l, &st1);
	REQUIRE(st1.snapshot_index > st0.applied, "snapshot index %llu",
	        (unsigned long long)st1.snapshot_index);
	nodesim_hold_snapshots(s, (unsigned)l, false);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

static void test_a_background_snapshot_ending_after_the_leaders_was_installed_is_discarded(void)
{
	uint64_t seed = test_seed(122);
	struct nodesim *s = cluster(3, seed, 4096); /* trailing 16: laggards need InstallSnapshot */
	struct nodesim_req r = {0};
	struct kv_proto_node_status ps, ls;
	int l, p, st;

	TEST(test_a_background_snapshot_ending_after_the_leaders_was_installed_is_discarded);
	REQUIRE(s != NULL, "%s", "no cluster");
	hold_snapshots(s, 3, true);
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	p = follower_of(s, l);
	REQUIRE(put_until_held(s, (unsigned)l, (unsigned)p, 400, "a") > 0, "%s",
	        "no background snapshot on the follower");
	nodesim_isolate(s, (unsigned)p);
	nodesim_status(s, (unsigned)p, &ps);
	REQUIRE(ps.snapshot_index == 0, "follower snapshot %llu",
	        (unsigned long long)ps.snapshot_index);
	/* the others go on and snapshot well past what the follower has */
	for (int round = 0; round < 20; round++) {
		nodesim_status(s, (unsigned)l, &ls);
		if (ls.snapshot_index > ps.last_index + 64)
			break;
		for (unsigned i = 0; i < 3; i++)
			if ((int)i != p)
				nodesim_release_snapshot(s, i, true);
		for (int k = 0; k < 30; k++) {
			char key[16], val[64];
			snprintf(key, sizeof(key), "b/%d", k % 5);
			snprintf(val, sizeof(val), "round %d put %d .................", round, k);
			st = op(s, (unsigned)l, KV_OP_PUT, key, val, &r);
			REQUIRE(st == KV_STATUS_OK, "put: %s", status_name(st));
		}
	}
	nodesim_status(s, (unsigned)l, &ls);
	REQUIRE(ls.snapshot_index > ps.last_index + 64, "leader snapshot %llu, follower last %llu",
	        (unsigned long long)ls.snapshot_index, (unsigned long long)ps.last_index);
	for (unsigned i = 0; i < 3; i++)
		if ((int)i != p)
			nodesim_hold_snapshots(s, i, false);
	for (unsigned i = 0; i < 3; i++)
		if ((int)i != p)
			nodesim_release_snapshot(s, i, true);
	nodesim_heal(s);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence after healing");
	REQUIRE(nodesim_snapshots_received(s, (unsigned)p) >= 1, "%s",
	        "the follower caught up without InstallSnapshot");
	REQUIRE(kv_node_snapshot_in_flight(nodesim_node(s, (unsigned)p)), "%s",
	        "the follower's own snapshot ended already");
	nodesim_status(s, (unsigned)p, &ps);
	REQUIRE(ps.snapshot_index >= ls.snapshot_index, "follower snapshot %llu",
	        (unsigned long long)ps.snapshot_index);
	/* its own, older, snapshot ends now: discarded, the leader's stays */
	REQUIRE(nodesim_release_snapshot(s, (unsigned)p, true), "%s", "release");
	nodesim_status(s, (unsigned)p, &ls);
	REQUIRE(ls.snapshot_index == ps.snapshot_index, "follower snapshot %llu, was %llu",
	        (unsigned long long)ls.snapshot_index, (unsigned long long)ps.snapshot_index);
	REQUIRE(!kv_node_failed(nodesim_node(s, (unsigned)p), NULL), "%s", "follower stopped");
	REQUIRE(tmp_files(s, (unsigned)p) == 0, "%u temporary files", tmp_files(s, (unsigned)p));
	nodesim_hold_snapshots(s, (unsigned)p, false);
	nodesim_crash(s, (unsigned)p, 0);
	REQUIRE(nodesim_restart(s, (unsigned)p) == 0, "%s", "restart");
	nodesim_status(s, (unsigned)p, &ls);
	REQUIRE(ls.snapshot_index == ps.snapshot_index, "restarted at snapshot %llu, not %llu",
	        (unsigned long long)ls.snapshot_index, (unsigned long long)ps.snapshot_index);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence after restart");
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* --- an InstallSnapshot that cannot be installed ------------------------------------------------ */

/* Waits for a leader, puts value on prefix/0..nkeys-1 through it, n puts in all, and waits until
 * every node applied them. Returns the leader's index (and in *follower one of its followers),
 * or -1 (the reason printed). */
static int settle_with_puts(struct nodesim *s, int n, int nkeys, const char *prefix,
                            const char *value, int *follower)
{
	struct nodesim_req r = {0};
	int l = nodesim_wait_leader(s, LEADER_MS), st = KV_STATUS_OK;

	for (int k = 0; l >= 0 && k < n && st == KV_STATUS_OK; k++) {
		char key[32];
		snprintf(key, sizeof(key), "%s/%d", prefix, k % nkeys);
		st = op(s, (unsigned)l, KV_OP_PUT, key, value, &r);
	}
	nodesim_req_release(&r);
	if (l < 0 || st != KV_STATUS_OK || !nodesim_wait_converged(s, CONVERGE_MS)) {
		printf("\n  no leader, a put failed (%s) or no convergence\n", status_name(st));
		return -1;
	}
	*follower = follower_of(s, l);
	return l;
}

/* Spoils the first byte (the snapshot stream's magic) of every image sent to one follower while
 * on. With fix_crc the chunks also carry the CRC of the spoiled image, which then checks and
 * does not load (a leader whose image is bad from the start). */
struct spoiler {
	struct nodesim *s;
	unsigned to;
	bool on;
	bool fix_crc;
	uint64_t crc_index; /* the image the CRC below is for */
	uint32_t crc;
	unsigned spoiled; /* chunks spoiled */
	uint64_t old_last; /* the follower's last index before */
};

static void spoil_chunks(void *arg, unsigned from, unsigned to, struct raft_msg *m)
{
	struct spoiler *sp = arg;
	struct raft_msg_snapshot *sn = &m->u.snapshot;

	if (!sp->on || to != sp->to || m->type != RAFT_MSG_SNAPSHOT)
		return;
	if (sn->offset == 0 && sn->len > 0) {
		((unsigned char *)sn->data)[0] ^= 0x5a;
		sp->spoiled++;
	}
	if (sp->fix_crc && sp->crc_index != sn->meta.index) {
		/* the whole image as the leader has it, spoiled the same way */
		unsigned char *img = malloc(sn->meta.size + 1);
		if (img &&
		    kv_node_fill_snapshot(nodesim_node(sp->s, from), sn->meta.index, 0, img,
		                          sn->meta.size) == 0) {
			img[0] ^= 0x5a;
			sp->crc = raft_crc32c(0, img, sn->meta.size);
			sp->crc_index = sn->meta.index;
		}
		free(img);
	}
	if (sp->fix_crc && sp->crc_index == sn->meta.index)
		sn->meta.crc = sp->crc;
}

/* Three spoiled images sent, and the follower back on its old log after refusing the last. */
static bool spoiled_installs(struct nodesim *s, void *arg)
{
	struct spoiler *sp = arg;
	struct kv_proto_node_status st;

	nodesim_status(s, sp->to, &st);
	return nodesim_snapshots_received(s, sp->to) >= 3 && sp->spoiled >= 3 &&
	        st.last_index == sp->old_last && st.applied == sp->old_last;
}

/*
 * A follower cut off while the others write and snapshot far past it needs InstallSnapshot; every
 * image sent to it is spoiled. It must refuse each one and keep its old state and log untouched
 * (before: it deleted them and stopped, "install snapshot failed"), on disk too (a restart comes
 * back to them), and catch up once a good image comes.
 */
static void a_spoiled_snapshot_leaves_the_follower_on_its_old_state(bool fix_crc)
{
	uint64_t seed = test_seed(131);
	struct nodesim *s = cluster(3, seed, 4096); /* trailing 16: laggards need InstallSnapshot */
	struct spoiler sp = {0};
	struct nodesim_req r = {0};
	struct kv_proto_node_status before, ps, ls;
	void *v = NULL;
	size_t len;
	bool exists;
	int l, p, st;

	REQUIRE(s != NULL, "%s", "no cluster");
	l = settle_with_puts(s, 40, 10, "k", "before", &p);
	REQUIRE(l >= 0, "%s", "no settled cluster");
	nodesim_isolate(s, (unsigned)p);
	nodesim_status(s, (unsigned)p, &before);
	for (int round = 0; round < 40; round++) {
		nodesim_status(s, (unsigned)l, &ls);
		if (ls.snapshot_index > before.last_index + 64)
			break;
		for (int k = 0; k < 30; k++) {
			char key[16], val[64];
			snprintf(key, sizeof(key), "k/%d", k % 10);
			snprintf(val, sizeof(val), "after %d %d .........................", round,
			         k);
			st = op(s, (unsigned)l, KV_OP_PUT, key, val, &r);
			REQUIRE(st == KV_STATUS_OK, "put: %s", status_name(st));
		}
		REQUIRE(nodesim_run_for(s, SNAPSHOT_END_MS), "%s", "run");
	}
	nodesim_status(s, (unsigned)l, &ls);
	REQUIRE(ls.snapshot_index > before.last_index + 64,
	        "leader snapshot %llu, follower last %llu", (unsigned long long)ls.snapshot_index,
	        (unsigned long long)before.last_index);

	sp.s = s;
	sp.to = (unsigned)p;
	sp.on = true;
	sp.fix_crc = fix_crc;
	sp.old_last = before.last_index;
	nodesim_set_mangle(s, spoil_chunks, &sp);
	nodesim_heal(s);
	REQUIRE(nodesim_run_until(s, spoiled_installs, &sp, 20000), "%u images spoiled, %llu sent",
	        sp.spoiled, (unsigned long long)nodesim_snapshots_received(s, (unsigned)p));
	REQUIRE_SAFE();
	REQUIRE(nodesim_up(s, (unsigned)p) && !kv_node_failed(nodesim_node(s, (unsigned)p), NULL),
	        "%s", "the follower stopped");
	nodesim_status(s, (unsigned)p, &ps);
	/* its own state and log: a snapshot it took of them itself meanwhile is fine, the
	 * leader's is not (it would end past before.last_index) */
	REQUIRE(ps.snapshot_index <= before.last_index && ps.last_index == before.last_index,
	        "follower at snapshot %llu, log to %llu; it had %llu, %llu",
	        (unsigned long long)ps.snapshot_index, (unsigned long long)ps.last_index,
	        (unsigned long long)before.snapshot_index, (unsigned long long)before.last_index);
	v = local_value(s, (unsigned)p, "k/3", &len, &exists);
	REQUIRE(exists && len == 6 && memcmp(v, "before", 6) == 0, "%s",
	        "the follower's state is not the old one");
	raft_buf_unref(v);
	v = NULL;
	/* on disk as well: a restart comes back to the old state */
	nodesim_crash(s, (unsigned)p, 0);
	REQUIRE(nodesim_restart(s, (unsigned)p) == 0, "%s", "restart");
	nodesim_status(s, (unsigned)p, &ps);
	REQUIRE(ps.last_index == before.last_index, "restarted with its log to %llu, not %llu",
	        (unsigned long long)ps.last_index, (unsigned long long)before.last_index);
	REQUIRE(nodesim_run_until(s, spoiled_installs, &sp, 20000), "%s",
	        "the restarted follower did not apply its log again");
	v = local_value(s, (unsigned)p, "k/3", &len, &exists);
	REQUIRE(exists && len == 6 && memcmp(v, "before", 6) == 0, "%s",
	        "the restarted follower's state is not the old one");

	sp.on = false;
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence with good images");
	REQUIRE(nodesim_hash(s, (unsigned)p) == nodesim_hash(s, (unsigned)l), "%s",
	        "the follower's state differs from the leader's");
	REQUIRE_SAFE();
out:
	raft_buf_unref(v);
	nodesim_set_mangle(s, NULL, NULL);
	nodesim_req_release(&r);
	nodesim_free(s);
}

static void test_a_snapshot_damaged_on_its_way_is_refused_and_the_old_state_kept(void)
{
	TEST(test_a_snapshot_damaged_on_its_way_is_refused_and_the_old_state_kept);
	a_spoiled_snapshot_leaves_the_follower_on_its_old_state(false);
}

/* The image checks (a leader whose own image is bad carries its CRC) but does not load: the
 * follower has freed its state for it already, and takes it up again from its disk. */
static void test_a_snapshot_that_checks_but_does_not_load_is_refused_and_the_old_state_kept(void)
{
	TEST(test_a_snapshot_that_checks_but_does_not_load_is_refused_and_the_old_state_kept);
	a_spoiled_snapshot_leaves_the_follower_on_its_old_state(true);
}

/* --- a follower whose disk lost acknowledged entries -------------------------------------------- */

/*
 * A follower killed in the middle of writes, whose last segment then loses synced records (its
 * disk damaged them: recovery cuts them off as torn), restarts without entries it acknowledged.
 * The same leader must send them again at once. Before, the leader kept the match it had
 * recorded, took the follower's rejections for stale answers, and the follower sat at its old
 * commit (reads through it timing out) until the leader changed.
 */
static void test_a_follower_that_lost_acknowledged_entries_catches_up_under_the_same_leader(void)
{
	uint64_t seed = test_seed(141);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0}, w[10];
	struct kv_proto_node_status ls, now;
	int l, f, st, cut;

	TEST(test_a_follower_that_lost_acknowledged_entries_catches_up_under_the_same_leader);
	memset(w, 0, sizeof(w));
	REQUIRE(s != NULL, "%s", "no cluster");
	l = settle_with_puts(s, 20, 4, "c", "first", &f);
	REQUIRE(l >= 0, "%s", "no settled cluster");
	/* writes in flight, and the follower killed among them */
	for (int k = 0; k < 10; k++) {
		struct kv_cmd c;
		char key[16];
		snprintf(key, sizeof(key), "c/%d", k % 4);
		nodesim_cmd(s, &c, KV_OP_PUT, key, "second");
		REQUIRE(nodesim_submit(s, (unsigned)l, &c, 5000, &w[k]) == 0, "submit %d", k);
	}
	REQUIRE(nodesim_run_for(s, 3), "%s", "run");
	nodesim_crash(s, (unsigned)f, 0);
	for (int k = 0; k < 10; k++)
		REQUIRE(nodesim_wait(s, &w[k], 6000) && w[k].req.status == KV_STATUS_OK,
		        "write %d: %s", k, status_name(w[k].done ? w[k].req.status : -1));
	nodesim_status(s, (unsigned)l, &ls);
	cut = nodesim_cut_tail(s, (unsigned)f, seed * 0x9e3779b97f4a7c15ULL);
	REQUIRE(cut > 0, "%s", "nothing could be cut");
	REQUIRE(nodesim_restart(s, (unsigned)f) == 0, "%s", "restart");
	nodesim_status(s, (unsigned)f, &now);
	REQUIRE(now.last_index < ls.commit, "the follower restarted with its log to %llu",
	        (unsigned long long)now.last_index);
	/* within a second, under the same leader (before: not until another one) */
	REQUIRE(nodesim_wait_converged(s, 1000), "%s", "the follower did not catch up");
	nodesim_status(s, (unsigned)l, &now);
	REQUIRE(now.role == RAFT_LEADER && now.term == ls.term, "%s", "the leader changed");
	st = op(s, (unsigned)f, KV_OP_GET, "c/1", NULL, &r);
	REQUIRE(st == KV_STATUS_OK && value_is(&r.req.result, "second"), "read through it: %s",
	        status_name(st));
	REQUIRE_SAFE();
out:
	for (int k = 0; k < 10; k++)
		nodesim_req_release(&w[k]);
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* --- request edges ------------------------------------------------------------------------------ */

static void test_cancel_gives_not_applied_while_waiting_for_a_leader_and_unknown_once_proposed(void)
{
	uint64_t seed = test_seed(111);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	struct kv_cmd c;
	int l;

	TEST(test_cancel_gives_not_applied_while_waiting_for_a_leader_and_unknown_once_proposed);
	REQUIRE(s != NULL, "%s", "no cluster");
	/* time 0: no leader anywhere yet */
	nodesim_cmd(s, &c, KV_OP_PUT, "c", "v");
	REQUIRE(nodesim_submit(s, 0, &c, 0, &r) == 0, "%s", "submit");
	REQUIRE(!r.done, "answered %s without a leader", status_name(r.req.status));
	nodesim_cancel(s, &r);
	REQUIRE(r.done && r.req.status == KV_STATUS_NOT_APPLIED, "cancel: %s",
	        r.done ? status_name(r.req.status) : "no callback");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	nodesim_isolate(s, (unsigned)l);
	nodesim_cmd(s, &c, KV_OP_PUT, "c", "w");
	REQUIRE(nodesim_submit(s, (unsigned)l, &c, 0, &r) == 0, "%s", "submit");
	nodesim_run_for(s, 20);
	REQUIRE(!r.done, "answered %s", status_name(r.req.status));
	nodesim_cancel(s, &r);
	REQUIRE(r.done && r.req.status == KV_STATUS_UNKNOWN, "cancel of a proposal: %s",
	        r.done ? status_name(r.req.status) : "no callback");
	nodesim_heal(s);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* Drops the first `left` ReadIndex requests a node sends. */
struct drop_reads {
	unsigned left;
};

static bool drop_read_index(void *arg, unsigned from, unsigned to, const struct raft_msg *m)
{
	struct drop_reads *d = arg;

	(void)from;
	(void)to;
	if (m && m->type == RAFT_MSG_READ_INDEX && d->left > 0) {
		d->left--;
		return true;
	}
	return false;
}

static void test_a_read_without_deadline_is_asked_again_when_its_read_index_is_lost(void)
{
	uint64_t seed = test_seed(113);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	struct drop_reads drops = {1};
	struct kv_cmd c;
	unsigned f;
	int l;

	TEST(test_a_read_without_deadline_is_asked_again_when_its_read_index_is_lost);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	f = ((unsigned)l + 1) % 3;
	nodesim_cmd(s, &c, KV_OP_PUT, "r", "1");
	REQUIRE(nodesim_call(s, (unsigned)l, &c, OP_TIMEOUT_MS, &r) == KV_STATUS_OK, "%s", "put");
	/* 1. the request is lost, the leader lives: asked again after KV_NODE_READ_RETRY_MS */
	nodesim_set_filter(s, drop_read_index, &drops);
	nodesim_cmd(s, &c, KV_OP_GET, "r", NULL);
	REQUIRE(nodesim_submit(s, f, &c, 0, &r) == 0, "%s", "submit");
	REQUIRE(nodesim_wait(s, &r, KV_NODE_READ_RETRY_MS + 1000), "%s",
	        "a read whose read index request was lost was never answered");
	REQUIRE(r.req.status == KV_STATUS_OK && r.req.result.value_len == 1 &&
	                memcmp(r.req.result.value, "1", 1) == 0,
	        "read after a lost request: %s", status_name(r.req.status));
	/* 2. the request is lost and the leader it asked dies: asked again of the next leader */
	drops.left = 1;
	nodesim_cmd(s, &c, KV_OP_GET, "r", NULL);
	REQUIRE(nodesim_submit(s, f, &c, 0, &r) == 0, "%s", "submit");
	nodesim_run_for(s, 30);
	REQUIRE(!r.done, "answered %s before the request could arrive", status_name(r.req.status));
	nodesim_crash(s, (unsigned)l, 0);
	REQUIRE(nodesim_wait(s, &r, LEADER_MS + KV_NODE_READ_RETRY_MS + 1000), "%s",
	        "a read asked of a leader that died was never answered");
	REQUIRE(r.req.status == KV_STATUS_OK && r.req.result.value_len == 1,
	        "read after the leader died: %s", status_name(r.req.status));
	nodesim_set_filter(s, NULL, NULL);
	REQUIRE(nodesim_restart(s, (unsigned)l) == 0, "%s", "restart");
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

static void test_bad_command_bytes_give_bad_request(void)
{
	uint64_t seed = test_seed(112);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	static const unsigned char junk[] = {0xff, 0x01, 0x02, 0x03};
	unsigned char good_plus[256];
	struct kv_cmd c;
	void *buf = NULL;
	size_t len = 0;
	int l;

	TEST(test_bad_command_bytes_give_bad_request);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	for (unsigned i = 0; i < 3; i++) {
		REQUIRE(nodesim_submit_bytes(s, i, junk, sizeof(junk), OP_TIMEOUT_MS, &r) == 0,
		        "%s", "submit");
		REQUIRE(nodesim_wait(s, &r, 10) && r.req.status == KV_STATUS_BAD_REQUEST,
		        "junk on node %u: %s", i + 1,
		        r.done ? status_name(r.req.status) : "pending");
		REQUIRE(nodesim_submit_bytes(s, i, junk, 0, OP_TIMEOUT_MS, &r) == 0, "%s",
		        "submit");
		REQUIRE(nodesim_wait(s, &r, 10) && r.req.status == KV_STATUS_BAD_REQUEST,
		        "empty command on node %u: %s", i + 1,
		        r.done ? status_name(r.req.status) : "pending");
	}
	/* a valid command with a trailing byte */
	nodesim_cmd(s, &c, KV_OP_PUT, "k", "v");
	REQUIRE(kv_cmd_encode(&c, &buf, &len) == KV_OK && len < sizeof(good_plus), "%s", "encode");
	memcpy(good_plus, buf, len);
	good_plus[len] = 0;
	REQUIRE(nodesim_submit_bytes(s, (unsigned)l, good_plus, len + 1, OP_TIMEOUT_MS, &r) == 0,
	        "%s", "submit");
	REQUIRE(nodesim_wait(s, &r, 10) && r.req.status == KV_STATUS_BAD_REQUEST,
	        "trailing byte: %s", r.done ? status_name(r.req.status) : "pending");
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	REQUIRE(!kv_store_exists(kv_node_store(nodesim_node(s, (unsigned)l)), "k", 1), "%s",
	        "a bad request was applied");
	REQUIRE_SAFE();
out:
	raft_buf_unref(buf);
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* --- limits ------------------------------------------------------------------------------------ */

/* A cluster of n nodes whose --max-value-bytes is max_value_bytes on every node. */
static struct nodesim *cluster_limited(unsigned n, uint64_t seed, uint64_t max_value_bytes)
{
	struct nodesim_options o;

	nodesim_options_default(&o, n, seed);
	for (unsigned i = 0; i < n; i++)
		o.max_value_bytes[i] = max_value_bytes;
	return cluster_from(&o);
}

static uint64_t last_index_of(struct nodesim *s, unsigned i)
{
	struct kv_proto_node_status st;

	nodesim_status(s, i, &st);
	return st.last_index;
}

/*
 * The largest value the option allows, under the longest key, is one log entry the log
 * accepts: committed, replicated and read back on every node. (The value check and the log's
 * entry limit once disagreed: a 32M option let a 17 MiB value through to storage, whose refusal
 * stopped every node that appended it.)
 */
static void test_the_largest_value_under_the_longest_key_is_committed_on_every_node(void)
{
	uint64_t seed = test_seed(116);
	struct nodesim *s = cluster_limited(3, seed, KV_VALUE_BYTES_LIMIT);
	struct nodesim_req r = {0};
	char *key = malloc(KV_MAX_KEY_BYTES + 1), *big = malloc(KV_VALUE_BYTES_LIMIT);
	struct kv_cmd c;
	int l, st;

	TEST(test_the_largest_value_under_the_longest_key_is_committed_on_every_node);
	REQUIRE(s != NULL && key && big, "%s", "no cluster");
	/* 20 components of 200 bytes and one of 76: exactly KV_MAX_KEY_BYTES */
	memset(key, 'k', KV_MAX_KEY_BYTES);
	for (unsigned i = 200; i < KV_MAX_KEY_BYTES - 1; i += 201)
		key[i] = '/';
	key[KV_MAX_KEY_BYTES] = '\0';
	REQUIRE(kv_key_check(key, KV_MAX_KEY_BYTES) == KV_OK, "%s", "the key is not valid");
	for (size_t i = 0; i < KV_VALUE_BYTES_LIMIT; i++)
		big[i] = (char)('a' + i % 26);
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	nodesim_cmd(s, &c, KV_OP_PUT, key, NULL);
	c.data = big;
	c.data_len = KV_VALUE_BYTES_LIMIT;
	st = nodesim_call(s, (unsigned)follower_of(s, l), &c, 10 * OP_TIMEOUT_MS, &r);
	REQUIRE(st == KV_STATUS_OK, "put: %s", status_name(st));
	REQUIRE(r.req.result.status == KV_OK, "put result %s", kv_strerror(r.req.result.status));
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	for (unsigned i = 0; i < 3; i++) {
		size_t len;
		bool exists;
		void *v = local_value(s, i, key, &len, &exists);
		bool same = exists && len == KV_VALUE_BYTES_LIMIT && memcmp(v, big, len) == 0;
		raft_buf_unref(v);
		REQUIRE(same, "node %u holds %zu bytes", i + 1, len);
	}
	REQUIRE_SAFE();
out:
	free(key);
	free(big);
	nodesim_req_release(&r);
	nodesim_free(s);
}

/*
 * A value over the cluster's max_value_bytes is answered KV_EFBIG by the node it reaches,
 * leader or follower, before it is proposed: the log does not grow, and a value far over it
 * (past what Raft itself would carry) gets the same clear answer, not "bad request".
 */
static void test_a_value_over_max_value_bytes_is_efbig_before_it_is_proposed(void)
{
	uint64_t seed = test_seed(117);
	const uint64_t max = 1u << 20;
	struct nodesim *s = cluster_limited(3, seed, max);
	struct nodesim_req r = {0};
	char *big = calloc(1, 4 * max);
	const size_t sizes[] = {max + 1, 4 * max};
	struct kv_cmd c;
	uint64_t last;
	int l, st;

	TEST(test_a_value_over_max_value_bytes_is_efbig_before_it_is_proposed);
	REQUIRE(s != NULL && big, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	st = op(s, (unsigned)l, KV_OP_PUT, "first", "x", &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "put: %s", status_name(st));
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	last = last_index_of(s, (unsigned)l);
	for (unsigned k = 0; k < 2; k++) {
		for (unsigned t = 0; t < 2; t++) {
			unsigned i = t == 0 ? (unsigned)l : (unsigned)follower_of(s, l);
			int ops[] = {KV_OP_PUT, KV_OP_APPEND, KV_OP_CREATE_EXCLUSIVE,
			             KV_OP_WRITE_AT};
			for (unsigned o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
				nodesim_cmd(s, &c, ops[o], "big", NULL);
				c.data = big;
				c.data_len = sizes[k];
				st = nodesim_call(s, i, &c, OP_TIMEOUT_MS, &r);
				REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_EFBIG,
				        "%s of %zu bytes on node %u: %s / %s", kv_op_name(ops[o]),
				        sizes[k], i + 1, status_name(st),
				        kv_strerror(r.req.result.status));
			}
		}
	}
	REQUIRE(nodesim_run_for(s, 200), "%s", "run");
	REQUIRE(last_index_of(s, (unsigned)l) == last, "the log grew from %llu to %llu",
	        (unsigned long long)last, (unsigned long long)last_index_of(s, (unsigned)l));
	/* exactly at the limit is fine */
	nodesim_cmd(s, &c, KV_OP_PUT, "big", NULL);
	c.data = big;
	c.data_len = max;
	st = nodesim_call(s, (unsigned)l, &c, OP_TIMEOUT_MS, &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "put at the limit: %s / %s",
	        status_name(st), kv_strerror(r.req.result.status));
	REQUIRE_SAFE();
out:
	free(big);
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* --- the cluster's settings ---------------------------------------------------------------------- */

static bool node_is_down(struct nodesim *s, void *arg)
{
	return !nodesim_up(s, *(const unsigned *)arg);
}

static bool mentions(const char *why, const char *a, const char *b)
{
	return why && strstr(why, a) && strstr(why, b);
}

/*
 * The settings of the cluster's first leader are the cluster's. A node started with another
 * --max-value-bytes applies the same log by the cluster's settings and stops, naming both
 * values, rather than serve by its own (it used to apply the same entry differently: a value
 * within the cluster's limit and over its own was refused there, stored elsewhere). Restarted
 * with the cluster's value, it joins.
 */
static void test_a_node_whose_max_value_bytes_differs_refuses_to_join_naming_both(void)
{
	uint64_t seed = test_seed(118);
	struct nodesim_options o;
	struct nodesim *s = NULL;
	struct nodesim_req r = {0};
	char *big = calloc(1, 2u << 20);
	unsigned three = 2;
	struct kv_cmd c;
	int l, st;

	TEST(test_a_node_whose_max_value_bytes_differs_refuses_to_join_naming_both);
	nodesim_options_default(&o, 3, seed);
	o.max_value_bytes[2] = 1u << 20; /* node 3: 1 MiB; the others the default, 4 MiB */
	o.may_stop_mask = 1u << 2;
	s = cluster_from(&o);
	REQUIRE(big && s, "%s", "no cluster");
	nodesim_isolate(s, 2); /* the first leader is node 1 or 2 */
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l == 0 || l == 1, "leader %d", l);
	st = op(s, (unsigned)l, KV_OP_PUT, "a", "1", &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "put: %s", status_name(st));
	nodesim_heal(s);
	REQUIRE(nodesim_run_until(s, node_is_down, &three, CONVERGE_MS), "%s",
	        "node 3 serves with its own --max-value-bytes");
	REQUIRE(mentions(nodesim_stop_reason(s, 2), "4194304", "1048576"), "node 3 stopped: %s",
	        nodesim_stop_reason(s, 2) ? nodesim_stop_reason(s, 2) : "(no reason)");
	printf("\n  node 3: %s\n", nodesim_stop_reason(s, 2));
	/* a value over node 3's limit and within the cluster's */
	nodesim_cmd(s, &c, KV_OP_PUT, "big", NULL);
	c.data = big;
	c.data_len = 2u << 20;
	st = nodesim_call(s, (unsigned)l, &c, OP_TIMEOUT_MS, &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "put: %s / %s", status_name(st),
	        kv_strerror(r.req.result.status));
	nodesim_set_max_value_bytes(s, 2, 0);
	REQUIRE(nodesim_restart(s, 2) == 0, "%s", "restart with the cluster's value");
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	{
		size_t len;
		bool exists;
		void *v = local_value(s, 2, "big", &len, &exists);
		raft_buf_unref(v);
		REQUIRE(exists && len == (2u << 20), "node 3 holds %zu bytes of big", len);
	}
	REQUIRE_SAFE();
out:
	free(big);
	nodesim_req_release(&r);
	nodesim_free(s);
}

static bool some_leader(struct nodesim *s, void *arg)
{
	(void)arg;
	return nodesim_leader(s) >= 0;
}

static bool has_snapshot(struct nodesim *s, void *arg)
{
	struct kv_proto_node_status st;

	nodesim_status(s, *(const unsigned *)arg, &st);
	return st.snapshot_index > 0;
}

/* A node whose snapshot holds the cluster's settings refuses to start with other options, with
 * the same message, and starts with the cluster's. */
static void test_a_node_restarted_with_another_max_value_bytes_refuses_to_start(void)
{
	uint64_t seed = test_seed(123);
	struct nodesim_options o;
	struct nodesim *s = NULL;
	struct nodesim_req r = {0};
	char value[300], key[32];
	unsigned two = 1;
	int l, st;

	TEST(test_a_node_restarted_with_another_max_value_bytes_refuses_to_start);
	nodesim_options_default(&o, 3, seed);
	o.snapshot_bytes = 4096;
	o.snapshot_trailing = 16;
	o.may_stop_mask = 1u << 1;
	s = cluster_from(&o);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	memset(value, 'v', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	for (int k = 0; k < 40; k++) {
		snprintf(key, sizeof(key), "k%d", k);
		st = op(s, (unsigned)l, KV_OP_PUT, key, value, &r);
		REQUIRE(st == KV_STATUS_OK, "put %d: %s", k, status_name(st));
	}
	REQUIRE(nodesim_run_until(s, has_snapshot, &two, CONVERGE_MS), "%s",
	        "node 2 has no snapshot");
	nodesim_crash(s, 1, 0);
	nodesim_set_max_value_bytes(s, 1, 16u << 20);
	REQUIRE(nodesim_restart(s, 1) != 0, "%s", "node 2 started with --max-value-bytes=16M");
	REQUIRE(mentions(nodesim_stop_reason(s, 1), "4194304", "16777216"), "refused: %s",
	        nodesim_stop_reason(s, 1) ? nodesim_stop_reason(s, 1) : "(no reason)");
	nodesim_set_max_value_bytes(s, 1, 0);
	REQUIRE(nodesim_restart(s, 1) == 0, "%s", "restart with the cluster's value");
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* A new leader proposes nothing before the cluster's settings: a write that reaches it first
 * waits, and lands after them in the log. A Settings command from a client is refused. */
static void test_writes_wait_for_the_clusters_settings_and_clients_cannot_send_them(void)
{
	uint64_t seed = test_seed(124);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	struct kv_settings set;
	struct kv_cmd c;
	uint64_t at;
	int l, st;

	TEST(test_writes_wait_for_the_clusters_settings_and_clients_cannot_send_them);
	REQUIRE(s != NULL, "%s", "no cluster");
	/* the first moment a node leads (nodesim_wait_leader would wait for the settings) */
	REQUIRE(nodesim_run_until(s, some_leader, NULL, LEADER_MS), "no leader after %d ms",
	        LEADER_MS);
	l = nodesim_leader(s);
	REQUIRE(kv_store_settings(kv_node_store(nodesim_node(s, (unsigned)l)), NULL) == 0, "%s",
	        "the leader's settings were in before the test's write");
	nodesim_cmd(s, &c, KV_OP_PUT, "early", "bird");
	st = nodesim_call(s, (unsigned)l, &c, OP_TIMEOUT_MS, &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "put: %s", status_name(st));
	at = kv_store_settings(kv_node_store(nodesim_node(s, (unsigned)l)), &set);
	REQUIRE(at > 0 && at < r.req.index, "settings at %llu, the write at %llu",
	        (unsigned long long)at, (unsigned long long)r.req.index);
	REQUIRE(set.max_value_bytes == KV_DEFAULT_MAX_VALUE_BYTES, "max %llu",
	        (unsigned long long)set.max_value_bytes);
	for (unsigned i = 0; i < 3; i++) {
		nodesim_cmd(s, &c, KV_OP_SETTINGS, NULL, NULL);
		c.settings.max_value_bytes = 1;
		c.settings.session_timeout_ms = 1;
		c.settings.max_sessions = 1;
		st = nodesim_call(s, i, &c, OP_TIMEOUT_MS, &r);
		REQUIRE(st == KV_STATUS_BAD_REQUEST, "settings from a client on node %u: %s", i + 1,
		        status_name(st));
	}
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	for (unsigned i = 0; i < 3; i++) {
		REQUIRE(kv_store_settings(kv_node_store(nodesim_node(s, i)), &set) == at &&
		                set.max_value_bytes == KV_DEFAULT_MAX_VALUE_BYTES,
		        "node %u: settings changed", i + 1);
	}
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* --- cluster sizes ------------------------------------------------------------------------------ */

static void test_a_single_node_cluster_leads_alone_and_applies_writes(void)
{
	uint64_t seed = test_seed(113);
	struct nodesim *s = cluster(1, seed, 0);
	struct nodesim_req r = {0};
	int st;

	TEST(test_a_single_node_cluster_leads_alone_and_applies_writes);
	REQUIRE(s != NULL, "%s", "no cluster");
	REQUIRE(nodesim_wait_leader(s, LEADER_MS) == 0, "%s", "no leader");
	st = op(s, 0, KV_OP_PUT, "solo", "yes", &r);
	REQUIRE(st == KV_STATUS_OK, "put: %s", status_name(st));
	st = op(s, 0, KV_OP_GET, "solo", NULL, &r);
	REQUIRE(st == KV_STATUS_OK && value_is(&r.req.result, "yes"), "get: %s", status_name(st));
	nodesim_crash(s, 0, 50);
	REQUIRE(nodesim_restart(s, 0) == 0, "%s", "restart");
	st = op(s, 0, KV_OP_GET, "solo", NULL, &r);
	REQUIRE(st == KV_STATUS_OK && value_is(&r.req.result, "yes"), "get after restart: %s",
	        status_name(st));
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

static void test_a_five_node_cluster_serves_with_two_nodes_down(void)
{
	uint64_t seed = test_seed(114);
	struct nodesim *s = cluster(5, seed, 0);
	struct nodesim_req r = {0};
	int l, st;

	TEST(test_a_five_node_cluster_serves_with_two_nodes_down);
	REQUIRE(s != NULL, "%s", "no cluster");
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "no leader after %d ms", LEADER_MS);
	nodesim_crash(s, (unsigned)l, 10);
	nodesim_crash(s, (unsigned)(l + 1) % 5, 10);
	l = nodesim_wait_leader(s, LEADER_MS);
	REQUIRE(l >= 0, "%s", "no leader among three");
	for (unsigned i = 0; i < 5; i++) {
		if (!nodesim_up(s, i))
			continue;
		st = op(s, i, KV_OP_APPEND, "five", "+", &r);
		REQUIRE(st == KV_STATUS_OK, "append on node %u: %s", i + 1, status_name(st));
	}
	for (unsigned i = 0; i < 5; i++)
		if (!nodesim_up(s, i))
			REQUIRE(nodesim_restart(s, i) == 0, "restart %u", i + 1);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	st = op(s, (unsigned)(l + 1) % 5, KV_OP_GET, "five", NULL, &r);
	REQUIRE(st == KV_STATUS_OK && value_is(&r.req.result, "+++"), "get: %s %.*s",
	        status_name(st), (int)r.req.result.value_len, (const char *)r.req.result.value);
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* --- randomized --------------------------------------------------------------------------------- */

#define RND_MAX_CLIENTS 16
#define RND_APPEND_KEYS 4
#define RND_PUT_KEYS 3
#define RND_MAX_APPENDS 16384
#define RND_MAX_READS 8192

struct rnd_append {
	char text[32];
	int key;
	bool any_ok; /* an attempt answered OK */
	bool any_uncertain; /* an attempt answered UNKNOWN (or got no answer) */
	uint64_t ok_ms; /* when the first OK came */
};

struct rnd_read {
	int key;
	uint64_t call_ms;
	char *value; /* malloc'd copy */
	size_t len;
};

struct rnd_client {
	struct nodesim_req r;
	bool busy;
	bool uses_session;
	uint64_t session, seq;
	int kind; /* 0 open session, 1 append, 2 put, 3 get */
	int key;
	int append; /* index into appends */
	unsigned attempts;
	uint64_t next_ms;
};

struct rnd {
	struct nodesim *s;
	uint64_t seed;
	struct rnd_client c[RND_MAX_CLIENTS];
	unsigned nc;
	struct rnd_append *ap;
	unsigned n_ap;
	struct rnd_read *rd;
	unsigned n_rd;
	unsigned ok, unknown, not_applied;
	bool stop;
	unsigned *counts; /* RND_MAX_APPENDS: tally of one value */
	char *scratch;
	size_t scratch_cap;
};

static unsigned rnd_below(struct rnd *t, unsigned n)
{
	return n ? (unsigned)(nodesim_random(t->s) % n) : 0;
}

static int rnd_node(struct rnd *t)
{
	unsigned n = nodesim_n(t->s), start = rnd_below(t, n);

	for (unsigned k = 0; k < n; k++)
		if (nodesim_up(t->s, (start + k) % n))
			return (int)((start + k) % n);
	return -1;
}

static void rnd_key(char *buf, size_t cap, bool append_key, int k)
{
	snprintf(buf, cap, "%s/%d", append_key ? "app" : "put", k);
}

/* Starts the client's next request (or the retry of its current one). */
static void rnd_start(struct rnd *t, struct rnd_client *cl, bool retry)
{
	struct kv_cmd c;
	char key[32], val[48];
	int node = rnd_node(t);

	if (node < 0)
		return;
	if (!retry) {
		cl->attempts = 0;
		if (cl->uses_session && cl->session == 0) {
			cl->kind = 0;
		} else {
			unsigned pick = rnd_below(t, 10);
			cl->kind = pick < 5 ? 1 : pick < 7 ? 2 : 3;
			cl->key = (int)rnd_below(t, cl->kind == 2 ? RND_PUT_KEYS : RND_APPEND_KEYS);
			if (cl->kind == 3 && rnd_below(t, 4) == 0)
				cl->key = -1 - (int)rnd_below(t, RND_PUT_KEYS); /* a put key */
			if (cl->kind == 1) {
				if (t->n_ap >= RND_MAX_APPENDS)
					return;
				cl->append = (int)t->n_ap++;
				snprintf(t->ap[cl->append].text, sizeof(t->ap[cl->append].text),
				         "<%u.%u>", (unsigned)(cl - t->c), cl->append);
				t->ap[cl->append].key = cl->key;
			}
			if (cl->uses_session)
				cl->seq++;
		}
	}
	cl->attempts++;
	switch (cl->kind) {
	case 0:
		nodesim_cmd(t->s, &c, KV_OP_OPEN_SESSION, NULL, NULL);
		break;
	case 1:
		rnd_key(key, sizeof(key), true, cl->key);
		nodesim_cmd(t->s, &c, KV_OP_APPEND, key, t->ap[cl->append].text);
		break;
	case 2:
		rnd_key(key, sizeof(key), false, cl->key);
		snprintf(val, sizeof(val), "v%u", rnd_below(t, 1000));
		nodesim_cmd(t->s, &c, KV_OP_PUT, key, val);
		break;
	default:
		if (cl->key >= 0)
			rnd_key(key, sizeof(key), true, cl->key);
		else
			rnd_key(key, sizeof(key), false, -1 - cl->key);
		nodesim_cmd(t->s, &c, KV_OP_GET, key, NULL);
		break;
	}
	if (cl->kind != 0 && cl->uses_session) {
		c.session = cl->session;
		c.seq = cl->seq;
	}
	if (nodesim_submit(t->s, (unsigned)node, &c, 100 + rnd_below(t, 900), &cl->r) == 0)
		cl->busy = true;
}

/* Records the outcome of the client's request; returns true when it should be retried. */
static bool rnd_finish(struct rnd *t, struct rnd_client *cl)
{
	int st = cl->r.req.status;
	const struct kv_result *res = &cl->r.req.result;

	cl->busy = false;
	if (st == KV_STATUS_OK)
		t->ok++;
	else if (st == KV_STATUS_UNKNOWN)
		t->unknown++;
	else
		t->not_applied++;
	if (cl->kind == 1) {
		struct rnd_append *a = &t->ap[cl->append];
		if (st == KV_STATUS_OK && res->status == KV_OK && !a->any_ok) {
			a->any_ok = true;
			a->ok_ms = cl->r.done_ms;
		} else if (st == KV_STATUS_UNKNOWN) {
			a->any_uncertain = true;
		} else if (st == KV_STATUS_OK) {
			/* applied with an error (an expired session would be one): it must not show */
		}
	}
	if (cl->kind == 0 && st == KV_STATUS_OK && res->status == KV_OK) {
		cl->session = res->session;
		cl->seq = 0;
	}
	if (cl->kind == 3 && st == KV_STATUS_OK && cl->key >= 0 && t->n_rd < RND_MAX_READS &&
	    res->status == KV_OK) {
		struct rnd_read *rd = &t->rd[t->n_rd];
		rd->value = malloc(res->value_len + 1);
		if (rd->value) {
			if (res->value_len)
				memcpy(rd->value, res->value, res->value_len);
			rd->value[res->value_len] = '\0';
			rd->len = res->value_len;
			rd->key = cl->key;
			rd->call_ms = cl->r.submitted_ms;
			t->n_rd++;
		}
	}
	/* a session client retries the same (session, seq) until it has an answer */
	return cl->uses_session && st != KV_STATUS_OK && cl->attempts < 6 && !t->stop;
}

static bool rnd_clients_idle(struct nodesim *s, void *arg)
{
	struct rnd *t = arg;
	(void)s;
	for (unsigned k = 0; k < t->nc; k++)
		if (t->c[k].busy)
			return false;
	return true;
}

/* One millisecond of clients: finished requests are recorded, idle clients start new ones. */
static void rnd_clients(struct rnd *t)
{
	uint64_t now = nodesim_now(t->s);

	for (unsigned k = 0; k < t->nc; k++) {
		struct rnd_client *cl = &t->c[k];
		if (cl->busy && cl->r.done) {
			bool retry = rnd_finish(t, cl);
			cl->next_ms = now + rnd_below(t, 5);
			if (retry) {
				rnd_start(t, cl, true);
				continue;
			}
		}
		if (!cl->busy && !t->stop && now >= cl->next_ms)
			rnd_start(t, cl, false);
	}
}

static void rnd_nemesis(struct rnd *t)
{
	struct nodesim *s = t->s;
	unsigned n = nodesim_n(s), down = 0;
	unsigned pick = rnd_below(t, 100);

	for (unsigned i = 0; i < n; i++)
		down += !nodesim_up(s, i);
	if (pick < 20) {
		nodesim_partition(s, 1u + rnd_below(t, (1u << n) - 2));
	} else if (pick < 35) {
		nodesim_isolate(s, rnd_below(t, n));
	} else if (pick < 55) {
		nodesim_heal(s);
	} else if (pick < 70) {
		unsigned i =
		        rnd_below(t, n); /* one draw per statement: argument order is unspecified */
		size_t torn = rnd_below(t, 300);
		if (down < (n - 1) / 2 + (n == 3))
			nodesim_crash(s, i, torn);
	} else if (pick < 85) {
		for (unsigned i = 0; i < n; i++)
			if (!nodesim_up(s, i)) {
				nodesim_restart(s, i);
				break;
			}
	} else if (pick < 92) {
		unsigned i = rnd_below(t, n);
		unsigned long nth = 1 + rnd_below(t, 8);
		size_t torn = rnd_below(t, 200);
		if (nodesim_up(s, i) && down == 0)
			nodesim_arm_sync_fault(s, i, nth, torn);
	} else {
		nodesim_set_drop(s, rnd_below(t, 2) ? 0 : 30);
	}
}

/* Counts the append texts "<client.index>" in an append key's value into counts[index]
 * (zeroed first). false when the value holds anything else. */
static bool tally(const char *v, size_t len, unsigned *counts, unsigned n_ap)
{
	size_t i = 0;

	memset(counts, 0, n_ap * sizeof(*counts));
	while (i < len) {
		unsigned long c, a;
		char *end;
		if (v[i] != '<')
			return false;
		c = strtoul(v + i + 1, &end, 10);
		if (*end != '.')
			return false;
		a = strtoul(end + 1, &end, 10);
		if (*end != '>' || a >= n_ap)
			return false;
		(void)c;
		counts[a]++;
		i = (size_t)(end + 1 - v);
	}
	return true;
}

/* Runs one seed; returns NULL or a message (static buffer) describing the first problem. */
static const char *rnd_run(struct rnd *t, char *msg, size_t cap)
{
	struct nodesim *s = t->s;
	uint64_t end, next_nemesis;
	size_t len;
	bool exists;

	for (unsigned k = 0; k < t->nc; k++)
		t->c[k].uses_session = k % 2 == 1;
	end = nodesim_now(s) + RANDOM_FAULT_MS;
	next_nemesis = nodesim_now(s) + 100 + rnd_below(t, 200);
	while (nodesim_now(s) < end) {
		rnd_clients(t);
		if (nodesim_now(s) >= next_nemesis) {
			rnd_nemesis(t);
			next_nemesis = nodesim_now(s) + 50 + rnd_below(t, 300);
		}
		if (!nodesim_run_for(s, 1))
			return "invariant violated";
	}
	/* heal everything, let every request end, converge */
	t->stop = true;
	nodesim_heal(s);
	nodesim_set_drop(s, 0);
	nodesim_disarm_faults(s);
	for (unsigned i = 0; i < nodesim_n(s); i++)
		if (!nodesim_up(s, i))
			nodesim_restart(s, i);
	for (uint64_t until = nodesim_now(s) + 5000; nodesim_now(s) < until;) {
		rnd_clients(t);
		if (rnd_clients_idle(s, t))
			break;
		if (!nodesim_run_for(s, 1))
			return "invariant violated";
	}
	if (!rnd_clients_idle(s, t))
		return "a request got no answer within 5 s of its deadline";
	if (!nodesim_wait_converged(s, CONVERGE_MS))
		return nodesim_error(s) ? "invariant violated" : "no convergence after healing";
	for (unsigned i = 0; i < nodesim_n(s); i++) {
		if (!nodesim_up(s, i)) {
			snprintf(msg, cap, "node %u is down at the end", i + 1);
			return msg;
		}
		if (nodesim_hash(s, i) != nodesim_hash(s, 0)) {
			snprintf(msg, cap, "node %u hash differs from node 1", i + 1);
			return msg;
		}
	}
	/* exactly once: every acknowledged append once, nothing answered NOT_APPLIED at all */
	for (int k = 0; k < RND_APPEND_KEYS; k++) {
		char key[32];
		void *v;
		bool parsed;
		rnd_key(key, sizeof(key), true, k);
		v = local_value(s, 0, key, &len, &exists);
		/* the value must be NUL-free text for strtoul: copy it */
		parsed = len < t->scratch_cap &&
		        (memcpy(t->scratch, v ? v : "", len), t->scratch[len] = 0,
		         tally(t->scratch, len, t->counts, t->n_ap));
		raft_buf_unref(v);
		if (!parsed) {
			snprintf(msg, cap, "%s holds something else than append texts", key);
			return msg;
		}
		for (unsigned a = 0; a < t->n_ap; a++) {
			const struct rnd_append *ap = &t->ap[a];
			unsigned c = t->counts[a];
			if (ap->key != k) {
				if (c) {
					snprintf(msg, cap, "%s holds %s of another key", key,
					         ap->text);
					return msg;
				}
				continue;
			}
			if (c > 1 || (ap->any_ok && c != 1) ||
			    (!ap->any_ok && !ap->any_uncertain && c)) {
				snprintf(
				        msg, cap,
				        "append %s on %s: found %u times (acknowledged: %s, uncertain: "
				        "%s)",
				        ap->text, key, c, ap->any_ok ? "yes" : "no",
				        ap->any_uncertain ? "yes" : "no");
				return msg;
			}
		}
	}
	/* reads: never a duplicate, never missing an append acknowledged before the read began */
	for (unsigned q = 0; q < t->n_rd; q++) {
		const struct rnd_read *rd = &t->rd[q];
		if (!tally(rd->value, rd->len, t->counts, t->n_ap)) {
			snprintf(msg, cap,
			         "a read of app/%d returned something else than append texts",
			         rd->key);
			return msg;
		}
		for (unsigned a = 0; a < t->n_ap; a++) {
			const struct rnd_append *ap = &t->ap[a];
			unsigned c = t->counts[a];
			if (ap->key != rd->key)
				continue;
			if (c > 1 || (ap->any_ok && ap->ok_ms < rd->call_ms && c != 1) ||
			    (!ap->any_ok && !ap->any_uncertain && c)) {
				snprintf(
				        msg, cap,
				        "a read of app/%d called at %llums saw %s %u times (acked at "
				        "%llums)",
				        rd->key, (unsigned long long)rd->call_ms, ap->text, c,
				        (unsigned long long)ap->ok_ms);
				return msg;
			}
		}
	}
	return NULL;
}

static void test_random_operations_with_partitions_and_crashes_converge_exactly_once(void)
{
	const char *one = getenv("KV_NODE_SEED"), *many = getenv("KV_NODE_SEEDS");
	unsigned seeds = one && *one ? 1 : many && *many ? (unsigned)atoi(many) : RANDOM_SEEDS;
	uint64_t first = one && *one ? strtoull(one, NULL, 0) : 1000;
	unsigned failures = 0;
	uint64_t tot_ok = 0, tot_unknown = 0, tot_na = 0, tot_ap = 0, tot_rd = 0, tot_crash = 0,
	         tot_snap = 0;

	TEST(test_random_operations_with_partitions_and_crashes_converge_exactly_once);
	for (unsigned k = 0; k < seeds && failures < 3; k++) {
		uint64_t seed = first + k;
		unsigned n = seed % 2 ? 5 : 3;
		struct rnd t;
		const char *why;
		char msg[512];
		bool ok;

		memset(&t, 0, sizeof(t));
		t.seed = seed;
		t.nc = n == 5 ? 16 : 12;
		t.ap = calloc(RND_MAX_APPENDS, sizeof(*t.ap));
		t.rd = calloc(RND_MAX_READS, sizeof(*t.rd));
		t.counts = calloc(RND_MAX_APPENDS, sizeof(*t.counts));
		t.scratch_cap = 1u << 20;
		t.scratch = malloc(t.scratch_cap);
		t.s = cluster_with(n, seed, seed % 3 == 0 ? 4096 : 0, seed % 4 == 1 ? 20 : 4,
		                   seed % 4 == 1 ? 20 : 0, seed % 5 == 4);
		ok = t.ap && t.rd && t.counts && t.scratch && t.s;
		why = ok ? rnd_run(&t, msg, sizeof(msg)) : "setup failed";
		ok = why == NULL;
		CU_assertImplementation(ok, __LINE__, "random seed", __FILE__, "", CU_FALSE);
		if (!ok) {
			failures++;
			printf("\n  FAILED random seed %llu (%u nodes): %s\n  replay: KV_NODE_SEED=%llu "
			       "tests/test_kv_node kv_node_random\n",
			       (unsigned long long)seed, n, why, (unsigned long long)seed);
			if (t.s)
				nodesim_dump(t.s);
		}
		tot_ok += t.ok;
		tot_unknown += t.unknown;
		tot_na += t.not_applied;
		tot_ap += t.n_ap;
		tot_rd += t.n_rd;
		if (t.s) {
			tot_crash += nodesim_crashes(t.s);
			for (unsigned i = 0; i < n; i++)
				tot_snap += nodesim_snapshots_received(t.s, i);
		}
		nodesim_free(t.s); /* ends every pending request */
		for (unsigned k2 = 0; k2 < t.nc; k2++)
			nodesim_req_release(&t.c[k2].r);
		for (unsigned q = 0; q < t.n_rd; q++)
			free(t.rd[q].value);
		free(t.rd);
		free(t.ap);
		free(t.counts);
		free(t.scratch);
	}
	printf("\n    %u seeds from %llu: %llu OK, %llu UNKNOWN, %llu not applied; %llu appends, %llu "
	       "reads checked; %llu crashes, %llu snapshots installed ",
	       seeds, (unsigned long long)first, (unsigned long long)tot_ok,
	       (unsigned long long)tot_unknown, (unsigned long long)tot_na,
	       (unsigned long long)tot_ap, (unsigned long long)tot_rd,
	       (unsigned long long)tot_crash, (unsigned long long)tot_snap);
}

/* --- forwarding: lost frames, copies, the leader's clock ---------------------------------------- */

static struct nodesim *cluster_sessions(unsigned n, uint64_t seed, uint64_t session_timeout_ms)
{
	struct nodesim_options o;
	struct nodesim *s = NULL;
	char err[256];

	nodesim_options_default(&o, n, seed);
	o.session_timeout_ms = session_timeout_ms;
	if (nodesim_new(&o, &s, err, sizeof(err)) != 0) {
		printf("\n  seed %llu: cannot build the cluster: %s\n", (unsigned long long)seed,
		       err);
		return NULL;
	}
	return s;
}

/* What an application-frame rule does to the frames of one type on one link (from, to: -1 for
 * any node): the first `count` it sees after skipping `skip` get `verdict`, and so does every
 * one it sees before until_ms; the others are delivered. */
struct frame_rule {
	struct nodesim *s;
	int from, to;
	uint8_t type; /* enum kv_proto_type */
	unsigned skip, count;
	uint64_t until_ms;
	enum nodesim_verdict verdict;
	unsigned seen, hit;
};

static enum nodesim_verdict apply_frame_rule(void *arg, unsigned from, unsigned to, const void *buf,
                                             size_t len)
{
	struct frame_rule *fr = arg;
	struct kv_proto_frame f;
	const char *why;

	if (kv_proto_decode(buf, len, &f, &why) != 0 || f.type != fr->type ||
	    (fr->from >= 0 && (unsigned)fr->from != from) ||
	    (fr->to >= 0 && (unsigned)fr->to != to))
		return NODESIM_DELIVER;
	fr->seen++;
	if (nodesim_now(fr->s) < fr->until_ms ||
	    (fr->seen > fr->skip && fr->seen <= fr->skip + fr->count)) {
		fr->hit++;
		return fr->verdict;
	}
	return NODESIM_DELIVER;
}

static void rule(struct frame_rule *fr, struct nodesim *s, int from, int to, uint8_t type,
                 unsigned count, enum nodesim_verdict v)
{
	memset(fr, 0, sizeof(*fr));
	fr->s = s;
	fr->from = from;
	fr->to = to;
	fr->type = type;
	fr->count = count;
	fr->verdict = v;
	nodesim_set_app_filter(s, apply_frame_rule, fr);
}

/* Times text occurs in key on node i (after convergence). */
static unsigned copies_on(struct nodesim *s, unsigned i, const char *key, const char *text)
{
	size_t len;
	bool exists;
	void *v = local_value(s, i, key, &len, &exists);
	unsigned k = count_in(v, len, text);

	raft_buf_unref(v);
	return k;
}

/* NULL when every node holds text in key exactly `want` times, else what one holds (in msg). */
static const char *holding(struct nodesim *s, const char *key, const char *text, unsigned want,
                           char *msg, size_t cap)
{
	for (unsigned i = 0; i < nodesim_n(s); i++) {
		unsigned got = copies_on(s, i, key, text);
		if (got != want) {
			snprintf(msg, cap, "node %u holds %s in %s %u times, not %u", i + 1, text,
			         key, got, want);
			return msg;
		}
	}
	return NULL;
}

/* The end of the tests below: every filter off and the cluster converged. */
static bool settle(struct nodesim *s)
{
	nodesim_set_filter(s, NULL, NULL);
	nodesim_set_app_filter(s, NULL, NULL);
	return nodesim_wait_converged(s, CONVERGE_MS);
}

static int open_session(struct nodesim *s, unsigned via, uint64_t *session)
{
	struct nodesim_req o = {0};
	int st = op(s, via, KV_OP_OPEN_SESSION, NULL, NULL, &o);

	*session = st == KV_STATUS_OK && o.req.result.status == KV_OK ? o.req.result.session : 0;
	nodesim_req_release(&o);
	return *session ? 0 : -1;
}

/* The start of the tests below: a settled leader *l, a follower *f and, when session is not
 * NULL, a session opened through f. false with what failed in *why. */
static bool leader_and_follower(struct nodesim *s, int *l, int *f, uint64_t *session,
                                const char **why)
{
	*why = "no cluster";
	if (!s)
		return false;
	*why = "no leader";
	*l = nodesim_wait_leader(s, LEADER_MS);
	if (*l < 0)
		return false;
	*f = follower_of(s, *l);
	*why = "open session";
	return !session || open_session(s, (unsigned)*f, session) == 0;
}

static int submit_session(struct nodesim *s, unsigned via, int opcode, const char *key,
                          const char *data, uint64_t session, uint64_t seq, uint64_t timeout_ms,
                          struct nodesim_req *r)
{
	struct kv_cmd c;

	nodesim_cmd(s, &c, opcode, key, data);
	c.session = session;
	c.seq = seq;
	return nodesim_submit(s, via, &c, timeout_ms, r);
}

/*
 * Issue 15: a follower forwards a write to the leader and the frame is lost (a link that breaks
 * with the frame queued). Nothing sent it again until the leader changed: the write waited out its
 * deadline (a mount's 30 s) and ended UNKNOWN, and without a deadline (a hard mount) it waited
 * forever. A session write is sent again after KV_NODE_RESEND_MS; the session applies it once.
 */
static void test_a_forwarded_session_write_whose_frame_is_lost_is_sent_again_and_applied_once(void)
{
	uint64_t seed = test_seed(120);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	struct frame_rule fr;
	uint64_t session = 0;
	const char *why;
	char msg[160];
	int l, f;

	TEST(test_a_forwarded_session_write_whose_frame_is_lost_is_sent_again_and_applied_once);
	REQUIRE(leader_and_follower(s, &l, &f, &session, &why), "%s", why);
	for (uint64_t seq = 1; seq <= 2; seq++) {
		/* seq 1 with a mount's deadline, seq 2 without one */
		uint64_t timeout = seq == 1 ? 30000 : 0;
		rule(&fr, s, f, l, KV_PROTO_REQ, 1, NODESIM_DROP);
		REQUIRE(submit_session(s, (unsigned)f, KV_OP_APPEND, "lost",
		                       seq == 1 ? "<one>" : "<two>", session, seq, timeout,
		                       &r) == 0,
		        "%s", "submit");
		REQUIRE(nodesim_wait(s, &r, KV_NODE_RESEND_MS + 1000),
		        "seq %llu: no answer %u ms after a lost forward", (unsigned long long)seq,
		        KV_NODE_RESEND_MS + 1000);
		REQUIRE(fr.hit == 1, "%u frames dropped", fr.hit);
		REQUIRE(r.req.status == KV_STATUS_OK && r.req.result.status == KV_OK,
		        "seq %llu: %s / %s", (unsigned long long)seq, status_name(r.req.status),
		        kv_strerror(r.req.result.status));
	}
	REQUIRE(settle(s), "%s", "no convergence");
	REQUIRE(!holding(s, "lost", "<one>", 1, msg, sizeof(msg)), "%s", msg);
	REQUIRE(!holding(s, "lost", "<two>", 1, msg, sizeof(msg)), "%s", msg);
	REQUIRE_SAFE();
out:
	nodesim_set_app_filter(s, NULL, NULL);
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* The same with the leader's answer lost: the write was applied, its answer never came. */
static void
test_a_session_write_whose_answer_is_lost_is_sent_again_and_answered_from_the_session(void)
{
	uint64_t seed = test_seed(121);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	struct frame_rule fr;
	uint64_t session = 0;
	const char *why;
	char msg[160];
	int l, f;

	TEST(test_a_session_write_whose_answer_is_lost_is_sent_again_and_answered_from_the_session);
	REQUIRE(leader_and_follower(s, &l, &f, &session, &why), "%s", why);
	rule(&fr, s, l, f, KV_PROTO_RESP, 1, NODESIM_DROP);
	REQUIRE(submit_session(s, (unsigned)f, KV_OP_APPEND, "answer", "<once>", session, 1, 0,
	                       &r) == 0,
	        "%s", "submit");
	REQUIRE(nodesim_wait(s, &r, KV_NODE_RESEND_MS + 1000),
	        "no answer %u ms after a lost answer", KV_NODE_RESEND_MS + 1000);
	REQUIRE(fr.hit == 1, "%u answers dropped", fr.hit);
	REQUIRE(r.req.status == KV_STATUS_OK && r.req.result.status == KV_OK, "%s / %s",
	        status_name(r.req.status), kv_strerror(r.req.result.status));
	REQUIRE(settle(s), "%s", "no convergence");
	REQUIRE(!holding(s, "answer", "<once>", 1, msg, sizeof(msg)), "%s", msg);
	REQUIRE_SAFE();
out:
	nodesim_set_app_filter(s, NULL, NULL);
	nodesim_req_release(&r);
	nodesim_free(s);
}

/*
 * A write without a session cannot be sent again once a copy may have arrived (it would be
 * applied twice): its outcome stays unknown, and it ends UNKNOWN at its deadline, or without
 * one once the copy's answer is overdue (KV_NODE_FORWARD_MAX_MS), not never.
 */
static void
test_a_forwarded_write_without_session_whose_frame_is_lost_ends_unknown_unsent_again(void)
{
	uint64_t seed = test_seed(122);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	struct frame_rule fr;
	struct kv_cmd c;
	const char *why;
	char msg[160];
	int l, f;

	TEST(test_a_forwarded_write_without_session_whose_frame_is_lost_ends_unknown_unsent_again);
	REQUIRE(leader_and_follower(s, &l, &f, NULL, &why), "%s", why);
	for (int k = 0; k < 2; k++) {
		uint64_t timeout = k == 0 ? 1500 : 0;
		rule(&fr, s, f, l, KV_PROTO_REQ, 1, NODESIM_DROP);
		nodesim_cmd(s, &c, KV_OP_APPEND, "nosession", "<lost>");
		REQUIRE(nodesim_submit(s, (unsigned)f, &c, timeout, &r) == 0, "%s", "submit");
		REQUIRE(nodesim_wait(s, &r, KV_NODE_FORWARD_MAX_MS + 1000),
		        "attempt %d (timeout %llu): no answer", k, (unsigned long long)timeout);
		REQUIRE(r.req.status == KV_STATUS_UNKNOWN, "attempt %d: %s", k,
		        status_name(r.req.status));
		REQUIRE(fr.seen == 1, "attempt %d: the write was sent %u times", k, fr.seen);
		if (timeout)
			REQUIRE(r.done_ms - r.submitted_ms >= timeout, "answered after %llu ms",
			        (unsigned long long)(r.done_ms - r.submitted_ms));
	}
	REQUIRE(settle(s), "%s", "no convergence");
	REQUIRE(!holding(s, "nosession", "<lost>", 0, msg, sizeof(msg)), "%s", msg);
	REQUIRE_SAFE();
out:
	nodesim_set_app_filter(s, NULL, NULL);
	nodesim_req_release(&r);
	nodesim_free(s);
}

/*
 * A frame the transport refused (peer not connected, queue full: EBUSY) was never sent: the
 * request is not uncertain for it, and it is tried again, with or without a session. Before,
 * the refusal was ignored: the write waited for an answer that could not come and ended UNKNOWN.
 */
static void test_a_refused_forward_is_not_an_attempt_and_is_tried_again(void)
{
	uint64_t seed = test_seed(123);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	struct frame_rule fr;
	struct kv_cmd c;
	const char *why;
	char msg[160];
	int l, f;

	TEST(test_a_refused_forward_is_not_an_attempt_and_is_tried_again);
	REQUIRE(leader_and_follower(s, &l, &f, NULL, &why), "%s", why);
	/* refused three times, then sent: applied, once */
	rule(&fr, s, f, l, KV_PROTO_REQ, 3, NODESIM_REFUSE);
	nodesim_cmd(s, &c, KV_OP_APPEND, "refused", "<sent>");
	REQUIRE(nodesim_submit(s, (unsigned)f, &c, 2000, &r) == 0, "%s", "submit");
	REQUIRE(nodesim_wait(s, &r, 2000), "%s", "no answer");
	REQUIRE(fr.hit == 3, "%u frames refused", fr.hit);
	REQUIRE(r.req.status == KV_STATUS_OK && r.req.result.status == KV_OK,
	        "a write whose first sends were refused: %s", status_name(r.req.status));
	/* refused until its deadline: certainly not applied */
	rule(&fr, s, f, l, KV_PROTO_REQ, 0, NODESIM_REFUSE);
	fr.until_ms = UINT64_MAX;
	nodesim_cmd(s, &c, KV_OP_APPEND, "refused", "<never>");
	REQUIRE(nodesim_submit(s, (unsigned)f, &c, 600, &r) == 0, "%s", "submit");
	REQUIRE(nodesim_wait(s, &r, 1000), "%s", "no answer");
	REQUIRE(fr.hit > 1, "refused %u times", fr.hit);
	REQUIRE(r.req.status == KV_STATUS_NOT_APPLIED, "a write never sent: %s",
	        status_name(r.req.status));
	REQUIRE(settle(s), "%s", "no convergence");
	REQUIRE(!holding(s, "refused", "<sent>", 1, msg, sizeof(msg)), "%s", msg);
	REQUIRE(!holding(s, "refused", "<never>", 0, msg, sizeof(msg)), "%s", msg);
	REQUIRE_SAFE();
out:
	nodesim_set_app_filter(s, NULL, NULL);
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* Drops the AppendEntries that carry entries (heartbeats pass: no election), for a while. */
static bool starve_entries(void *arg, unsigned from, unsigned to, const struct raft_msg *m)
{
	struct starve *sv = arg;

	(void)from;
	(void)to;
	return m && m->type == RAFT_MSG_APPEND && m->u.append.n_entries > 0 &&
	        nodesim_now(sv->s) < sv->until_ms;
}

/*
 * Copies of one session write that reach the leader while it still works on the first (it cannot
 * commit: its followers get no entries) are not proposed again: one entry, one answer, applied
 * once.
 */
static void test_copies_of_a_write_reaching_a_slow_leader_are_proposed_once(void)
{
	uint64_t seed = test_seed(124);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	struct kv_proto_node_status before, after;
	struct frame_rule fr;
	struct starve sv;
	uint64_t session = 0;
	const char *why;
	char msg[160];
	int l, f;

	TEST(test_copies_of_a_write_reaching_a_slow_leader_are_proposed_once);
	REQUIRE(leader_and_follower(s, &l, &f, &session, &why), "%s", why);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	nodesim_status(s, (unsigned)l, &before);
	sv.s = s;
	sv.until_ms = nodesim_now(s) + 3 * KV_NODE_RESEND_MS + 200;
	nodesim_set_filter(s, starve_entries, &sv);
	rule(&fr, s, f, l, KV_PROTO_REQ, 0, NODESIM_DELIVER); /* counts the copies */
	REQUIRE(submit_session(s, (unsigned)f, KV_OP_APPEND, "slow", "<once>", session, 1, 0, &r) ==
	                0,
	        "%s", "submit");
	REQUIRE(nodesim_wait(s, &r, 3 * KV_NODE_RESEND_MS + 2000), "%s", "no answer");
	REQUIRE(r.req.status == KV_STATUS_OK && r.req.result.status == KV_OK, "%s / %s",
	        status_name(r.req.status), kv_strerror(r.req.result.status));
	REQUIRE(fr.seen >= 2, "sent %u times while the leader could not commit (test premise)",
	        fr.seen);
	nodesim_set_filter(s, NULL, NULL);
	REQUIRE(settle(s), "%s", "no convergence");
	nodesim_status(s, (unsigned)l, &after);
	REQUIRE(after.term == before.term, "%s", "the leader changed (test premise)");
	REQUIRE(after.last_index == before.last_index + 1, "%u copies made %llu entries", fr.seen,
	        (unsigned long long)(after.last_index - before.last_index));
	REQUIRE(!holding(s, "slow", "<once>", 1, msg, sizeof(msg)), "%s", msg);
	REQUIRE_SAFE();
out:
	nodesim_set_filter(s, NULL, NULL);
	nodesim_set_app_filter(s, NULL, NULL);
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* Drops every Raft message node `to` sends (its application frames pass). */
static bool mute_raft_of(void *arg, unsigned from, unsigned to, const struct raft_msg *m)
{
	(void)to;
	return m && from == *(unsigned *)arg;
}

/*
 * A session write proposed by a leader that is deposed before it commits is sent to the next
 * leader (the entry may still commit or be overwritten: the session applies it once either way),
 * instead of waiting for its index to be applied, which needs more writes to happen.
 */
static void test_a_session_write_of_a_deposed_leader_is_sent_to_the_next_one(void)
{
	uint64_t seed = test_seed(125);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	struct kv_proto_node_status st;
	uint64_t session = 0, watch[2];
	const char *why;
	char msg[160];
	unsigned muted;
	int l, f, l2;

	TEST(test_a_session_write_of_a_deposed_leader_is_sent_to_the_next_one);
	REQUIRE(leader_and_follower(s, &l, &f, &session, &why), "%s", why);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	muted = (unsigned)l;
	nodesim_set_filter(s, mute_raft_of, &muted);
	nodesim_status(s, (unsigned)l, &st);
	watch[0] = (uint64_t)l;
	watch[1] = st.last_index;
	REQUIRE(submit_session(s, (unsigned)l, KV_OP_APPEND, "deposed", "<once>", session, 1, 0,
	                       &r) == 0,
	        "%s", "submit");
	REQUIRE(nodesim_run_until(s, index_grew, watch, 500), "%s", "never proposed");
	/* the others elect a leader; its heartbeats reach l, which follows it */
	REQUIRE(nodesim_wait(s, &r, LEADER_MS + 2 * KV_NODE_RESEND_MS), "%s",
	        "the write of a deposed leader was never answered");
	REQUIRE(r.req.status == KV_STATUS_OK && r.req.result.status == KV_OK, "%s / %s",
	        status_name(r.req.status), kv_strerror(r.req.result.status));
	l2 = nodesim_leader(s);
	REQUIRE(l2 >= 0 && l2 != l, "leader %d (test premise: a new one)", l2 + 1);
	REQUIRE(settle(s), "%s", "no convergence");
	REQUIRE(!holding(s, "deposed", "<once>", 1, msg, sizeof(msg)), "%s", msg);
	REQUIRE_SAFE();
out:
	nodesim_set_filter(s, NULL, NULL);
	nodesim_req_release(&r);
	nodesim_free(s);
}

/*
 * A session the store no longer knows when the FIRST copy of a request arrives: that request was
 * certainly not applied, and the answer says so (OK with KV_ESESSION_EXPIRED; kv/node.h), so the
 * caller may send it again in a new session.
 */
static void test_a_write_on_an_expired_session_is_answered_certainly_not_applied(void)
{
	uint64_t seed = test_seed(126);
	struct nodesim *s = cluster_sessions(3, seed, 2000);
	struct nodesim_req r = {0};
	uint64_t session = 0;
	const char *why;
	char msg[160];
	int l, f, st;

	TEST(test_a_write_on_an_expired_session_is_answered_certainly_not_applied);
	REQUIRE(leader_and_follower(s, &l, &f, &session, &why), "%s", why);
	nodesim_run_for(s, 2500);
	st = op(s, (unsigned)l, KV_OP_PUT, "clock", "moves", &r); /* log time moves on */
	REQUIRE(st == KV_STATUS_OK, "put: %s", status_name(st));
	for (unsigned via = 0; via < 3; via++) {
		st = session_op(s, via, KV_OP_APPEND, "expired", "<never>", session, 1, &r);
		REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_ESESSION_EXPIRED,
		        "through node %u: %s / %s", via + 1, status_name(st),
		        kv_strerror(r.req.result.status));
	}
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	REQUIRE(!holding(s, "expired", "<never>", 0, msg, sizeof(msg)), "%s", msg);
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* A leader other than the nodes of mask, that the nodes it reaches follow. */
static bool leader_outside(struct nodesim *s, void *arg)
{
	unsigned mask = *(unsigned *)arg;
	int l = nodesim_leader(s);
	struct kv_proto_node_status ls, st;

	if (l < 0 || (mask >> l) & 1)
		return false;
	nodesim_status(s, (unsigned)l, &ls);
	if (ls.commit != ls.last_index)
		return false;
	for (unsigned i = 0; i < nodesim_n(s); i++) {
		if ((mask >> i) & 1 || !nodesim_up(s, i))
			continue;
		nodesim_status(s, i, &st);
		if (st.leader != ls.id)
			return false;
	}
	return true;
}

static bool holds_text(struct nodesim *s, void *arg)
{
	const char **kt = arg; /* node index as text, key, text */

	return copies_on(s, (unsigned)atoi(kt[0]), kt[1], kt[2]) > 0;
}

/*
 * Issue 15: a write was applied through its first copy, whose answer was lost; when a later copy
 * reached the next leader the session had expired, and that copy's "session expired" was passed
 * on as the request's answer: the FUSE layer then sent the write again in a new session and it was
 * applied twice. Now the answer is UNKNOWN: an earlier copy may have been applied.
 */
static void test_session_expired_after_an_unanswered_copy_is_unknown_not_a_refusal(void)
{
	uint64_t seed = test_seed(127);
	struct nodesim *s = cluster_sessions(5, seed, 2000);
	struct nodesim_req r = {0}, p = {0};
	struct frame_rule fr;
	uint64_t session = 0;
	char lname[16];
	const char *kt[3] = {lname, "expiry", "<x>"};
	const char *why;
	char msg[160];
	unsigned cut;
	int l, f, b, st;

	TEST(test_session_expired_after_an_unanswered_copy_is_unknown_not_a_refusal);
	REQUIRE(leader_and_follower(s, &l, &f, NULL, &why), "%s", why);
	snprintf(lname, sizeof(lname), "%d", l);
	REQUIRE(open_session(s, (unsigned)f, &session) == 0, "%s", "open session");
	/* the write is applied by the leader; its answers to f are lost */
	rule(&fr, s, l, f, KV_PROTO_RESP, 0, NODESIM_DROP);
	fr.until_ms = UINT64_MAX;
	REQUIRE(submit_session(s, (unsigned)f, KV_OP_APPEND, "expiry", "<x>", session, 1, 30000,
	                       &r) == 0,
	        "%s", "submit");
	REQUIRE(nodesim_run_until(s, holds_text, kt, 2000), "%s", "never applied on the leader");
	/* f and the leader are cut off; the other three elect a leader, whose log time passes the
	 * session's expiry */
	nodesim_isolate(s, (unsigned)f);
	nodesim_isolate(s, (unsigned)l);
	cut = 1u << l | 1u << f;
	REQUIRE(nodesim_run_until(s, leader_outside, &cut, LEADER_MS), "%s",
	        "no leader among the other three");
	b = nodesim_leader(s);
	nodesim_run_for(s, 2500);
	st = op(s, (unsigned)b, KV_OP_PUT, "clock", "moves", &p);
	REQUIRE(st == KV_STATUS_OK, "put on the new leader: %s", status_name(st));
	/* f comes back and sends the write to the new leader: the session is gone */
	nodesim_heal(s);
	nodesim_isolate(s, (unsigned)l);
	nodesim_set_app_filter(s, NULL, NULL);
	REQUIRE(nodesim_wait(s, &r, LEADER_MS + 2 * KV_NODE_RESEND_MAX_MS), "%s", "no answer");
	REQUIRE(!(r.req.status == KV_STATUS_OK && r.req.result.status == KV_ESESSION_EXPIRED), "%s",
	        "a write that was applied was answered 'session expired' (not applied)");
	REQUIRE(r.req.status == KV_STATUS_UNKNOWN, "%s / %s", status_name(r.req.status),
	        r.req.status == KV_STATUS_OK ? kv_strerror(r.req.result.status) : "-");
	nodesim_heal(s);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	REQUIRE(!holding(s, "expiry", "<x>", 1, msg, sizeof(msg)), "%s", msg);
	REQUIRE_SAFE();
out:
	nodesim_set_app_filter(s, NULL, NULL);
	nodesim_req_release(&r);
	nodesim_req_release(&p);
	nodesim_free(s);
}

/* The log time of every up node's store. */
static bool log_times_at_most(struct nodesim *s, uint64_t bound, uint64_t *worst)
{
	*worst = 0;
	for (unsigned i = 0; i < nodesim_n(s); i++)
		if (nodesim_up(s, i) && kv_store_now_ms(kv_node_store(nodesim_node(s, i))) > *worst)
			*worst = kv_store_now_ms(kv_node_store(nodesim_node(s, i)));
	return *worst <= bound;
}

/*
 * Issue 15: the log time was the largest time_ms any proposer put in a command, so one client's
 * clock hours ahead expired every session of the cluster. The leader stamps the time now.
 */
static void test_the_leader_stamps_the_time_and_a_client_clock_hours_ahead_expires_nothing(void)
{
	uint64_t seed = test_seed(128);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	struct kv_attr attr;
	struct kv_cmd c;
	uint64_t session = 0, worst, lclock;
	const char *why;
	int l, f, st;

	TEST(test_the_leader_stamps_the_time_and_a_client_clock_hours_ahead_expires_nothing);
	REQUIRE(leader_and_follower(s, &l, &f, &session, &why), "%s", why);
	/* another client, whose clock is 10 hours ahead */
	nodesim_cmd(s, &c, KV_OP_PUT, "future", "v");
	c.time_ms += 10ull * 3600 * 1000;
	lclock = nodesim_realtime(s, (unsigned)l);
	st = nodesim_call(s, (unsigned)f, &c, OP_TIMEOUT_MS, &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "put: %s", status_name(st));
	REQUIRE(r.req.result.has_attr, "%s", "no attributes in the answer");
	attr = r.req.result.attr;
	REQUIRE(attr.mtime_ns / 1000000 >= lclock && attr.mtime_ns / 1000000 <= lclock + 100,
	        "mtime %llu ms, the leader's clock %llu ms",
	        (unsigned long long)(attr.mtime_ns / 1000000), (unsigned long long)lclock);
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	REQUIRE(log_times_at_most(s, nodesim_realtime(s, (unsigned)l), &worst),
	        "log time %llu ahead of the leader's clock %llu", (unsigned long long)worst,
	        (unsigned long long)nodesim_realtime(s, (unsigned)l));
	st = session_op(s, (unsigned)f, KV_OP_APPEND, "future", "+", session, 1, &r);
	REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK,
	        "the first client's session after the other's clock: %s / %s", status_name(st),
	        kv_strerror(r.req.result.status));
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

/*
 * A leader whose own wall clock jumps hours ahead while it runs moves the log time at most
 * KV_NODE_CLOCK_STEP_MAX_MS ahead of the time it had: sessions do not expire for it. The next
 * leader, whose clock is behind that log time, never moves it back.
 */
static void test_a_leader_clock_jumping_hours_ahead_moves_the_log_time_at_most_the_bound(void)
{
	uint64_t seed = test_seed(129);
	struct nodesim *s = cluster(3, seed, 0);
	struct nodesim_req r = {0};
	uint64_t session = 0, worst, prev = 0;
	const char *why;
	int l, f, l2, st;

	TEST(test_a_leader_clock_jumping_hours_ahead_moves_the_log_time_at_most_the_bound);
	REQUIRE(leader_and_follower(s, &l, &f, &session, &why), "%s", why);
	nodesim_clock_jump(s, (unsigned)l, 5ull * 3600 * 1000);
	for (uint64_t seq = 1; seq <= 6; seq++) {
		if (seq == 4) { /* a leader change: the next one's clock is behind the log time */
			nodesim_crash(s, (unsigned)l, 0);
			l2 = nodesim_wait_leader(s, LEADER_MS);
			REQUIRE(l2 >= 0, "%s", "no leader after the crash");
			f = l2;
		}
		st = session_op(s, (unsigned)f, KV_OP_APPEND, "jump", "+", session, seq, &r);
		REQUIRE(st == KV_STATUS_OK && r.req.result.status == KV_OK, "seq %llu: %s / %s",
		        (unsigned long long)seq, status_name(st), kv_strerror(r.req.result.status));
		REQUIRE(log_times_at_most(s,
		                          nodesim_realtime_unjumped(s, (unsigned)l) +
		                                  KV_NODE_CLOCK_STEP_MAX_MS,
		                          &worst),
		        "seq %llu: log time %llu, more than %u ms ahead of %llu",
		        (unsigned long long)seq, (unsigned long long)worst,
		        KV_NODE_CLOCK_STEP_MAX_MS,
		        (unsigned long long)nodesim_realtime_unjumped(s, (unsigned)l));
		REQUIRE(r.req.result.attr.mtime_ns / 1000000 >= prev, "seq %llu: mtime went back",
		        (unsigned long long)seq);
		prev = r.req.result.attr.mtime_ns / 1000000;
		nodesim_run_for(s, 200);
	}
	REQUIRE(nodesim_restart(s, (unsigned)l) == 0, "%s", "restart");
	REQUIRE(nodesim_wait_converged(s, CONVERGE_MS), "%s", "no convergence");
	REQUIRE_SAFE();
out:
	nodesim_req_release(&r);
	nodesim_free(s);
}

/* --- registration ------------------------------------------------------------------------------- */

static CU_TestInfo basic_tests[] = {
        {"test_three_nodes_elect_a_leader_and_a_put_through_it_is_read_on_every_node",
         test_three_nodes_elect_a_leader_and_a_put_through_it_is_read_on_every_node},
        {"test_a_put_on_a_follower_is_forwarded_and_a_get_or_read_on_a_follower_reads_it",
         test_a_put_on_a_follower_is_forwarded_and_a_get_or_read_on_a_follower_reads_it},
        {"test_a_follower_read_waits_until_the_follower_has_applied_the_read_index",
         test_a_follower_read_waits_until_the_follower_has_applied_the_read_index},
        {"test_append_to_a_missing_key_acts_as_put_and_get_of_a_missing_key_is_empty",
         test_append_to_a_missing_key_acts_as_put_and_get_of_a_missing_key_is_empty},
        {"test_a_retried_session_append_is_applied_once_and_its_answer_replayed",
         test_a_retried_session_append_is_applied_once_and_its_answer_replayed},
        {"test_cancel_gives_not_applied_while_waiting_for_a_leader_and_unknown_once_proposed",
         test_cancel_gives_not_applied_while_waiting_for_a_leader_and_unknown_once_proposed},
        {"test_a_read_without_deadline_is_asked_again_when_its_read_index_is_lost",
         test_a_read_without_deadline_is_asked_again_when_its_read_index_is_lost},
        {"test_bad_command_bytes_give_bad_request", test_bad_command_bytes_give_bad_request},
        {"test_the_largest_value_under_the_longest_key_is_committed_on_every_node",
         test_the_largest_value_under_the_longest_key_is_committed_on_every_node},
        {"test_a_value_over_max_value_bytes_is_efbig_before_it_is_proposed",
         test_a_value_over_max_value_bytes_is_efbig_before_it_is_proposed},
        {"test_a_node_whose_max_value_bytes_differs_refuses_to_join_naming_both",
         test_a_node_whose_max_value_bytes_differs_refuses_to_join_naming_both},
        {"test_a_node_restarted_with_another_max_value_bytes_refuses_to_start",
         test_a_node_restarted_with_another_max_value_bytes_refuses_to_start},
        {"test_writes_wait_for_the_clusters_settings_and_clients_cannot_send_them",
         test_writes_wait_for_the_clusters_settings_and_clients_cannot_send_them},
        {"test_a_single_node_cluster_leads_alone_and_applies_writes",
         test_a_single_node_cluster_leads_alone_and_applies_writes},
        {"test_a_five_node_cluster_serves_with_two_nodes_down",
         test_a_five_node_cluster_serves_with_two_nodes_down},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo fault_tests[] = {
        {"test_a_write_without_quorum_ends_unknown_if_proposed_and_not_applied_if_not",
         test_a_write_without_quorum_ends_unknown_if_proposed_and_not_applied_if_not},
        {"test_a_read_without_quorum_ends_not_applied_and_never_returns_data",
         test_a_read_without_quorum_ends_not_applied_and_never_returns_data},
        {"test_a_leader_crash_between_propose_and_commit_never_acknowledges_a_lost_write",
         test_a_leader_crash_between_propose_and_commit_never_acknowledges_a_lost_write},
        {"test_every_node_restarted_after_a_torn_crash_recovers_the_same_state",
         test_every_node_restarted_after_a_torn_crash_recovers_the_same_state},
        {"test_a_node_stopped_by_a_failed_fsync_restarts_and_catches_up",
         test_a_node_stopped_by_a_failed_fsync_restarts_and_catches_up},
        {"test_an_answer_to_a_forward_of_an_earlier_incarnation_completes_nothing",
         test_an_answer_to_a_forward_of_an_earlier_incarnation_completes_nothing},
        {"test_snapshots_advance_and_a_cut_off_node_catches_up_by_install_snapshot",
         test_snapshots_advance_and_a_cut_off_node_catches_up_by_install_snapshot},
        {"test_synchronous_snapshots_advance_and_a_cut_off_node_catches_up",
         test_synchronous_snapshots_advance_and_a_cut_off_node_catches_up},
        {"test_a_node_keeps_serving_while_its_background_snapshot_is_in_flight",
         test_a_node_keeps_serving_while_its_background_snapshot_is_in_flight},
        {"test_the_next_snapshot_starts_earlier_by_what_the_last_job_saw_written",
         test_the_next_snapshot_starts_earlier_by_what_the_last_job_saw_written},
        {"test_a_failed_background_snapshot_stops_nothing_and_is_tried_again_later",
         test_a_failed_background_snapshot_stops_nothing_and_is_tried_again_later},
        {"test_a_background_snapshot_ending_after_the_leaders_was_installed_is_discarded",
         test_a_background_snapshot_ending_after_the_leaders_was_installed_is_discarded},
        {"test_a_snapshot_damaged_on_its_way_is_refused_and_the_old_state_kept",
         test_a_snapshot_damaged_on_its_way_is_refused_and_the_old_state_kept},
        {"test_a_snapshot_that_checks_but_does_not_load_is_refused_and_the_old_state_kept",
         test_a_snapshot_that_checks_but_does_not_load_is_refused_and_the_old_state_kept},
        {"test_a_follower_that_lost_acknowledged_entries_catches_up_under_the_same_leader",
         test_a_follower_that_lost_acknowledged_entries_catches_up_under_the_same_leader},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo forward_tests[] = {
        {"test_a_forwarded_session_write_whose_frame_is_lost_is_sent_again_and_applied_once",
         test_a_forwarded_session_write_whose_frame_is_lost_is_sent_again_and_applied_once},
        {"test_a_session_write_whose_answer_is_lost_is_sent_again_and_answered_from_the_session",
         test_a_session_write_whose_answer_is_lost_is_sent_again_and_answered_from_the_session},
        {"test_a_forwarded_write_without_session_whose_frame_is_lost_ends_unknown_unsent_again",
         test_a_forwarded_write_without_session_whose_frame_is_lost_ends_unknown_unsent_again},
        {"test_a_refused_forward_is_not_an_attempt_and_is_tried_again",
         test_a_refused_forward_is_not_an_attempt_and_is_tried_again},
        {"test_copies_of_a_write_reaching_a_slow_leader_are_proposed_once",
         test_copies_of_a_write_reaching_a_slow_leader_are_proposed_once},
        {"test_a_session_write_of_a_deposed_leader_is_sent_to_the_next_one",
         test_a_session_write_of_a_deposed_leader_is_sent_to_the_next_one},
        {"test_a_write_on_an_expired_session_is_answered_certainly_not_applied",
         test_a_write_on_an_expired_session_is_answered_certainly_not_applied},
        {"test_session_expired_after_an_unanswered_copy_is_unknown_not_a_refusal",
         test_session_expired_after_an_unanswered_copy_is_unknown_not_a_refusal},
        {"test_the_leader_stamps_the_time_and_a_client_clock_hours_ahead_expires_nothing",
         test_the_leader_stamps_the_time_and_a_client_clock_hours_ahead_expires_nothing},
        {"test_a_leader_clock_jumping_hours_ahead_moves_the_log_time_at_most_the_bound",
         test_a_leader_clock_jumping_hours_ahead_moves_the_log_time_at_most_the_bound},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo random_tests[] = {
        {"test_random_operations_with_partitions_and_crashes_converge_exactly_once",
         test_random_operations_with_partitions_and_crashes_converge_exactly_once},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"kv_node", NULL, NULL, NULL, NULL, basic_tests},
        {"kv_node_faults", NULL, NULL, NULL, NULL, fault_tests},
        {"kv_node_forward", NULL, NULL, NULL, NULL, forward_tests},
        {"kv_node_random", NULL, NULL, NULL, NULL, random_tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	return cu_main(argc, argv, suites);
}
