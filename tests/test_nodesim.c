/* test_nodesim.c - whole-node simulation: clerks with sessions over faulty nodes, linearizable. */
#include <CUnit/CUnit.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/cmd.h"
#include "kv/node.h"
#include "kv/proto.h"
#include "kv/store.h"
#include "raft/raft.h"
#include "tests/lib/cu.h"
#include "tests/lib/lincheck.h"
#include "tests/lib/nodesim.h"
#include "tests/lib/simcli.h"

/*
 * One run (issue 6): 3 or 5 kv_nodes (tests/lib/nodesim.h) and 3-8 simulated clerks, all stepped
 * by one seed. Each clerk opens a session through a random node, then issues Put, Append, Get and
 * Delete on 2-4 keys with values no other operation uses. An attempt goes to a random up node with
 * its own timeout; NOT_APPLIED and UNKNOWN are retried on another node with the same command bytes
 * (the same (session, seq): the session applies it at most once) until the operation's deadline.
 * Every operation goes into a history: ok (call = first submission, return = final answer),
 * unknown (no definite answer: it may take effect any time after its call, or never), or failed
 * (every attempt certainly not applied). A read without an answer is left out.
 *
 * Each clerk runs on a machine with a node: its commands carry that node's wall clock, which the
 * leader must replace with its own (kv/node.h, Time). A quarter of the write attempts have no
 * deadline (a hard mount): one whose frame or answer is lost must still end, once the network
 * heals. In every mix but the clean one the nemesis may also lose and refuse application frames
 * (forwarded requests and their answers) and make a node's wall clock jump hours ahead; the
 * nodes' clocks are off by up to CLOCK_SKEW_MS in every mix. No session may expire (the log time
 * must never run more than KV_NODE_CLOCK_STEP_MAX_MS ahead of the clocks as they would be
 * without jumps: checked after every millisecond).
 *
 * A fault phase under one mix, then: heal, restart every crashed node, let the clerks finish,
 * wait until every replica applied the same index; then every node is read for every key (those
 * reads are in the history too, so every acknowledged write must be visible), every replica's
 * kv_store_hash must agree, and the history must be linearizable (lin_check; TIMEOUT fails).
 * The fixture checks election safety, state-machine safety and that no node refuses to restart
 * after each event.
 *
 * make check runs NODESIM_SEEDS_PER_MIX seeds of each mix (3 and 5 nodes alternating);
 * NODESIM_SEEDS_SCALE (environment) multiplies that. A failure prints the command replaying it.
 */

#define NODESIM_SEEDS_PER_MIX 300
#define MAX_CLERKS 8
#define MAX_KEYS 4
#define FAULT_MS 3000 /* simulated length of the fault phase */
#define DRAIN_MS 8000 /* clerks finish their operations within this after healing */
#define CONVERGE_MS 10000
#define FINAL_READ_TIMEOUT_MS 2000
#define LIN_TIMEOUT_MS 30000
#define VALUE_BYTES 24
#define CLOCK_SKEW_MS 1000 /* each node's wall clock is off by up to this */

enum mix {
	MIX_CLEAN,
	MIX_LOSSY,
	MIX_PARTITION,
	MIX_ONE_WAY,
	MIX_CRASH,
	MIX_DISK,
	MIX_ALL,
	MIX_COUNT
};

static const char *const mix_names[MIX_COUNT] = {"clean", "lossy", "partition", "one-way",
                                                 "crash", "disk",  "all"};

/* --- one run ------------------------------------------------------------------------------------ */

enum clerk_op { OP_NONE, OP_OPEN, OP_PUT, OP_APPEND, OP_GET, OP_DELETE };

struct clerk {
	unsigned id;
	struct nodesim_req r;
	bool busy; /* an attempt is pending on a node */
	enum clerk_op op; /* the operation in progress (OP_NONE: idle) */
	uint64_t session, seq;
	int key;
	char value[VALUE_BYTES];
	void *cmd; /* the encoded command (a raft_buf), the same bytes on every attempt */
	size_t cmd_len;
	uint64_t call_ms, deadline_ms, next_ms;
	int last_node;
	bool uncertain; /* an attempt ended UNKNOWN: the operation may have taken effect */
	unsigned attempts, ops;
};

struct run_stats {
	uint64_t ok, unknown, failed, reads_dropped, attempts, crashes, snapshots, events_ms;
	uint64_t tails_cut; /* crashes whose disk also lost a synced tail */
	uint64_t local_snapshots; /* background snapshots the nodes started */
	uint64_t history_ops;
	uint64_t clock_jumps, hard_attempts;
};

struct run {
	struct nodesim *s;
	uint64_t seed;
	enum mix mix;
	unsigned n, nc, nkeys;
	bool trace, stop;
	struct clerk c[MAX_CLERKS];
	struct lin_history *h;
	struct run_stats st;
	char err[1024];
	struct lin_result lr; /* of the last check */
	bool lin_failed;
};

static uint64_t rnd(struct run *t, uint64_t n)
{
	return n ? nodesim_random(t->s) % n : 0;
}

static void trace(struct run *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void trace(struct run *t, const char *fmt, ...)
{
	va_list ap;

	if (!t->trace)
		return;
	fprintf(stderr, "%6llums ", (unsigned long long)nodesim_now(t->s));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static bool fail(struct run *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(struct run *t, const char *fmt, ...)
{
	va_list ap;

	if (t->err[0])
		return false;
	va_start(ap, fmt);
	vsnprintf(t->err, sizeof(t->err), fmt, ap);
	va_end(ap);
	return false;
}

static void key_name(char *buf, size_t cap, int k)
{
	snprintf(buf, cap, "k%d", k);
}

static const char *op_name(enum clerk_op op)
{
	static const char *const names[] = {"none", "open", "put", "append", "get", "delete"};
	return names[op];
}

/* A random up node, other than avoid when there is a choice; -1 when every node is down. */
static int pick_node(struct run *t, int avoid)
{
	unsigned start = (unsigned)rnd(t, t->n);
	int fallback = -1;

	for (unsigned k = 0; k < t->n; k++) {
		unsigned i = (start + k) % t->n;
		if (!nodesim_up(t->s, i))
			continue;
		if ((int)i != avoid)
			return (int)i;
		fallback = (int)i;
	}
	return fallback;
}

static bool record(struct run *t, struct clerk *cl, enum lin_status status, const void *out,
                   size_t out_len)
{
	static const enum lin_kind kinds[] = {LIN_GET,    LIN_GET, LIN_PUT,
	                                      LIN_APPEND, LIN_GET, LIN_DELETE};
	char key[16];
	struct lin_op o = {0};

	key_name(key, sizeof(key), cl->key);
	o.client = (int)cl->id;
	o.kind = kinds[cl->op];
	o.status = status;
	o.key = key;
	if (cl->op == OP_PUT || cl->op == OP_APPEND) {
		o.value = cl->value;
		o.value_len = strlen(cl->value);
	}
	o.output = out;
	o.output_len = out_len;
	o.call_time = (int64_t)cl->call_ms;
	o.return_time = (int64_t)nodesim_now(t->s);
	if (lin_history_add(t->h, &o) != LIN_OK)
		return fail(t, "cannot add to the history");
	t->st.history_ops++;
	return true;
}

/* Ends the clerk's operation (the history has it already, or it is left out). */
static void clerk_end(struct run *t, struct clerk *cl)
{
	raft_buf_unref(cl->cmd);
	cl->cmd = NULL;
	cl->op = OP_NONE;
	cl->next_ms = nodesim_now(t->s) + rnd(t, 20);
}

/* The operation got no definite answer by its deadline. */
static bool clerk_give_up(struct run *t, struct clerk *cl)
{
	bool ok = true;

	trace(t, "clerk %u %s k%d %s seq %llu: gives up (%s)", cl->id, op_name(cl->op), cl->key,
	      cl->value, (unsigned long long)cl->seq, cl->uncertain ? "unknown" : "failed");
	if (cl->op == OP_PUT || cl->op == OP_APPEND || cl->op == OP_DELETE) {
		if (cl->uncertain)
			t->st.unknown++;
		else
			t->st.failed++;
		ok = record(t, cl, cl->uncertain ? LIN_STATUS_UNKNOWN : LIN_STATUS_FAILED, NULL, 0);
	} else if (cl->op == OP_GET) {
		t->st.reads_dropped++;
	}
	clerk_end(t, cl);
	return ok;
}

static bool clerk_attempt(struct run *t, struct clerk *cl)
{
	int node = pick_node(t, cl->last_node);
	uint64_t timeout = 100 + rnd(t, 400);
	bool hard =
	        (cl->op == OP_PUT || cl->op == OP_APPEND || cl->op == OP_DELETE) && rnd(t, 4) == 0;

	if (hard)
		timeout = 0;
	if (node < 0 ||
	    nodesim_submit_bytes(t->s, (unsigned)node, cl->cmd, cl->cmd_len, timeout, &cl->r) !=
	            0) {
		cl->next_ms = nodesim_now(t->s) + 5; /* down or refused: not an attempt */
		return true;
	}
	cl->busy = true;
	cl->last_node = node;
	cl->attempts++;
	t->st.attempts++;
	t->st.hard_attempts += hard;
	trace(t, "clerk %u %s k%d %s seq %llu: attempt %u on n%d (timeout %llums)", cl->id,
	      op_name(cl->op), cl->key, cl->value, (unsigned long long)cl->seq, cl->attempts,
	      node + 1, (unsigned long long)timeout);
	return true;
}

static bool clerk_start(struct run *t, struct clerk *cl)
{
	struct kv_cmd c;
	char key[16];
	uint64_t pick;

	memset(&c, 0, sizeof(c));
	if (cl->session == 0) {
		cl->op = OP_OPEN;
	} else {
		pick = rnd(t, 100);
		cl->op = pick < 30  ? OP_GET
		        : pick < 55 ? OP_PUT
		        : pick < 85 ? OP_APPEND
		                    : OP_DELETE;
		cl->key = (int)rnd(t, t->nkeys);
	}
	cl->ops++;
	snprintf(cl->value, sizeof(cl->value), "%c%u.%u", cl->op == OP_PUT ? 'p' : 'a', cl->id,
	         cl->ops);
	key_name(key, sizeof(key), cl->key);
	nodesim_cmd(t->s, &c,
	            cl->op == OP_OPEN             ? KV_OP_OPEN_SESSION
	                    : cl->op == OP_PUT    ? KV_OP_PUT
	                    : cl->op == OP_APPEND ? KV_OP_APPEND
	                    : cl->op == OP_GET    ? KV_OP_GET
	                                          : KV_OP_DELETE,
	            cl->op == OP_OPEN ? NULL : key,
	            cl->op == OP_PUT || cl->op == OP_APPEND ? cl->value : NULL);
	if (cl->op == OP_PUT || cl->op == OP_APPEND || cl->op == OP_DELETE) {
		c.session = cl->session;
		c.seq = ++cl->seq;
	}
	c.time_ms = nodesim_realtime(t->s, (unsigned)rnd(t, t->n)); /* its machine's clock */
	if (kv_cmd_encode(&c, &cl->cmd, &cl->cmd_len) != KV_OK)
		return fail(t, "clerk %u: cannot encode a command", cl->id);
	cl->call_ms = nodesim_now(t->s);
	/* short deadlines leave operations unknown, long ones let retries find an answer */
	cl->deadline_ms = cl->call_ms + (rnd(t, 2) ? 150 + rnd(t, 850) : 1500 + rnd(t, 2500));
	cl->uncertain = false;
	cl->attempts = 0;
	cl->last_node = -1;
	return clerk_attempt(t, cl);
}

/* The answer of one attempt. */
static bool clerk_answer(struct run *t, struct clerk *cl)
{
	int st = cl->r.req.status;
	const struct kv_result *res = &cl->r.req.result;
	uint64_t now = nodesim_now(t->s);
	bool ok = true;

	cl->busy = false;
	trace(t, "clerk %u %s k%d %s seq %llu: %s%s%s from n%u", cl->id, op_name(cl->op), cl->key,
	      cl->value, (unsigned long long)cl->seq, kv_status_name(st),
	      st == KV_STATUS_OK ? " " : "", st == KV_STATUS_OK ? kv_strerror(res->status) : "",
	      cl->r.node + 1);
	switch (st) {
	case KV_STATUS_OK:
		break;
	case KV_STATUS_UNKNOWN:
		cl->uncertain = true;
		/* fall through */
	case KV_STATUS_NOT_APPLIED:
	case KV_STATUS_SHUTDOWN: /* never proposed: the node stopped first (node.h) */
		if (now >= cl->deadline_ms && (cl->op != OP_OPEN || t->stop))
			return clerk_give_up(t, cl);
		cl->next_ms = now + rnd(t, 10);
		return true;
	default:
		return fail(t, "clerk %u %s k%d: answer %s", cl->id, op_name(cl->op), cl->key,
		            kv_status_name(st));
	}
	switch (cl->op) {
	case OP_OPEN:
		if (res->status != KV_OK || res->session == 0)
			return fail(t, "clerk %u: open session: %s", cl->id,
			            kv_strerror(res->status));
		cl->session = res->session;
		cl->seq = 0;
		break;
	case OP_GET:
		if (res->status != KV_OK)
			return fail(t, "clerk %u get k%d: %s", cl->id, cl->key,
			            kv_strerror(res->status));
		t->st.ok++;
		ok = record(t, cl, LIN_STATUS_OK, res->value, res->value_len);
		break;
	default:
		if (res->status == KV_ESESSION_EXPIRED)
			return fail(t, "clerk %u %s k%d seq %llu: session %llu expired", cl->id,
			            op_name(cl->op), cl->key, (unsigned long long)cl->seq,
			            (unsigned long long)cl->session);
		if (res->status != KV_OK && !(cl->op == OP_DELETE && res->status == KV_ENOENT))
			return fail(t, "clerk %u %s k%d seq %llu: %s", cl->id, op_name(cl->op),
			            cl->key, (unsigned long long)cl->seq, kv_strerror(res->status));
		t->st.ok++;
		ok = record(t, cl, LIN_STATUS_OK, NULL, 0);
		break;
	}
	clerk_end(t, cl);
	return ok;
}

/* One millisecond of clerks. */
static bool clerks_step(struct run *t)
{
	uint64_t now = nodesim_now(t->s);

	for (unsigned k = 0; k < t->nc; k++) {
		struct clerk *cl = &t->c[k];
		if (cl->busy) {
			if (!cl->r.done)
				continue;
			if (!clerk_answer(t, cl))
				return false;
		}
		if (cl->busy || now < cl->next_ms)
			continue;
		if (cl->op != OP_NONE) {
			if (!clerk_attempt(t, cl))
				return false;
		} else if (!t->stop) {
			if (!clerk_start(t, cl))
				return false;
		}
	}
	return true;
}

static bool clerks_idle(const struct run *t)
{
	for (unsigned k = 0; k < t->nc; k++)
		if (t->c[k].op != OP_NONE || t->c[k].busy)
			return false;
	return true;
}

/* --- faults ------------------------------------------------------------------------------------- */

static unsigned down_count(struct run *t)
{
	unsigned down = 0;
	for (unsigned i = 0; i < t->n; i++)
		down += !nodesim_up(t->s, i);
	return down;
}

static void fault_network(struct run *t)
{
	uint64_t pick = rnd(t, 100);

	if (pick < 40) {
		unsigned drop = (unsigned)rnd(t, 250);
		nodesim_set_drop(t->s, drop);
		trace(t, "nemesis: drop %u per mille", drop);
	} else if (pick < 60) {
		nodesim_drop_in_flight(t->s);
		trace(t, "nemesis: drop every message in flight");
	} else {
		nodesim_set_drop(t->s, 0);
		trace(t, "nemesis: drop nothing");
	}
}

static void fault_partition(struct run *t)
{
	uint64_t pick = rnd(t, 100);

	if (pick < 40) {
		unsigned mask = 1u + (unsigned)rnd(t, (1u << t->n) - 2);
		nodesim_partition(t->s, mask);
		trace(t, "nemesis: partition %#x", mask);
	} else if (pick < 65) {
		unsigned i = (unsigned)rnd(t, t->n);
		int l = nodesim_leader(t->s);
		if (rnd(t, 2) && l >= 0)
			i = (unsigned)l;
		nodesim_isolate(t->s, i);
		trace(t, "nemesis: isolate n%u", i + 1);
	} else {
		nodesim_heal(t->s);
		trace(t, "nemesis: heal");
	}
}

static void fault_one_way(struct run *t)
{
	uint64_t pick = rnd(t, 100);

	if (pick < 70) {
		unsigned links = 1 + (unsigned)rnd(t, t->n);
		for (unsigned k = 0; k < links; k++) {
			unsigned a = (unsigned)rnd(t, t->n), b = (unsigned)rnd(t, t->n);
			int l = nodesim_leader(t->s);
			if (rnd(t, 3) == 0 && l >= 0)
				a = (unsigned)l; /* the leader cannot send: a deaf follower */
			nodesim_block(t->s, a, b, true);
			trace(t, "nemesis: block n%u -> n%u", a + 1, b + 1);
		}
	} else {
		nodesim_heal(t->s);
		trace(t, "nemesis: heal");
	}
}

static void fault_crash(struct run *t)
{
	uint64_t pick = rnd(t, 100);
	unsigned down = down_count(t);

	if (pick < 40) {
		unsigned i = (unsigned)rnd(t, t->n);
		size_t torn = (size_t)rnd(t, 400);
		int l = nodesim_leader(t->s);
		if (rnd(t, 2) && l >= 0)
			i = (unsigned)l;
		if (down < t->n / 2 || rnd(t, 10) == 0) { /* sometimes more than a minority */
			nodesim_crash(t->s, i, torn);
			trace(t, "nemesis: crash n%u (torn %zu)", i + 1, torn);
		}
	} else if (pick < 45) {
		size_t torn = (size_t)rnd(t, 400);
		for (unsigned i = 0; i < t->n; i++)
			nodesim_crash(t->s, i, torn);
		trace(t, "nemesis: power loss on every node (torn %zu)", torn);
	} else {
		for (unsigned i = 0; i < t->n; i++)
			if (!nodesim_up(t->s, i)) {
				nodesim_restart(t->s, i);
				trace(t, "nemesis: restart n%u", i + 1);
				break;
			}
	}
}

static void fault_disk(struct run *t)
{
	uint64_t pick = rnd(t, 100);
	unsigned i = (unsigned)rnd(t, t->n);

	if (pick < 30) {
		unsigned long nth = 1 + (unsigned long)rnd(t, 10);
		size_t torn = (size_t)rnd(t, 300);
		if (nodesim_up(t->s, i) && down_count(t) < t->n / 2) {
			nodesim_arm_sync_fault(t->s, i, nth, torn);
			trace(t, "nemesis: fsync %lu of n%u fails (torn %zu)", nth, i + 1, torn);
		}
	} else if (pick < 45) {
		/* a disk that loses synced records: the node's acknowledged tail is cut (only
		 * entries a majority of the others hold: nodesim_cut_tail) */
		if (nodesim_up(t->s, i) && down_count(t) < t->n / 2) {
			int cut;
			nodesim_crash(t->s, i, (size_t)rnd(t, 300));
			cut = nodesim_cut_tail(t->s, i, rnd(t, UINT64_MAX));
			trace(t, "nemesis: crash n%u, its disk loses %d synced entries", i + 1,
			      cut);
		}
	} else if (pick < 75) {
		uint64_t ms = 5 + rnd(t, rnd(t, 2) ? 60 : 600);
		nodesim_stall(t->s, i, ms);
		trace(t, "nemesis: n%u stalls %llums (slow disk)", i + 1, (unsigned long long)ms);
	} else {
		for (unsigned j = 0; j < t->n; j++)
			if (!nodesim_up(t->s, j)) {
				nodesim_restart(t->s, j);
				trace(t, "nemesis: restart n%u", j + 1);
				break;
			}
	}
}

/* Forwarded requests and their answers lost or refused (kv/node.h, Sending again). */
static void fault_app_frames(struct run *t)
{
	unsigned drop = rnd(t, 3) ? (unsigned)rnd(t, 300) : 0;
	unsigned refuse = rnd(t, 2) ? (unsigned)rnd(t, 200) : 0;

	nodesim_set_app_faults(t->s, drop, refuse);
	trace(t, "nemesis: application frames: %u per mille lost, %u refused", drop, refuse);
}

/* A node's wall clock jumps hours ahead (until it restarts): no session may expire for it. */
static void fault_clock(struct run *t)
{
	unsigned i = (unsigned)rnd(t, t->n);
	uint64_t ms = (1 + rnd(t, 10)) * 3600 * 1000;
	int l = nodesim_leader(t->s);

	if (rnd(t, 2) && l >= 0)
		i = (unsigned)l;
	nodesim_clock_jump(t->s, i, ms);
	t->st.clock_jumps++;
	trace(t, "nemesis: n%u's clock jumps %llu h ahead", i + 1,
	      (unsigned long long)(ms / 3600000));
}

static void nemesis(struct run *t)
{
	static void (*const all[])(struct run *) = {fault_network, fault_partition, fault_one_way,
	                                            fault_crash, fault_disk};
	uint64_t pick = t->mix == MIX_CLEAN ? 100 : rnd(t, 100);

	if (pick < 15)
		fault_app_frames(t);
	else if (pick < 20)
		fault_clock(t);
	switch (t->mix) {
	case MIX_CLEAN:
		break;
	case MIX_LOSSY:
		fault_network(t);
		break;
	case MIX_PARTITION:
		fault_partition(t);
		break;
	case MIX_ONE_WAY:
		fault_one_way(t);
		break;
	case MIX_CRASH:
		fault_crash(t);
		break;
	case MIX_DISK:
		fault_disk(t);
		break;
	default:
		all[rnd(t, 5)](t);
		break;
	}
}

/* --- the run ------------------------------------------------------------------------------------ */

static bool heal_all(struct run *t)
{
	nodesim_heal(t->s);
	nodesim_set_drop(t->s, 0);
	nodesim_set_app_faults(t->s, 0, 0);
	nodesim_disarm_faults(t->s);
	nodesim_unstall(t->s);
	for (unsigned i = 0; i < t->n; i++)
		if (!nodesim_up(t->s, i) && nodesim_restart(t->s, i) != 0)
			return fail(t, "node %u refused to restart", i + 1);
	trace(t, "heal everything, restart every node");
	return true;
}

/* The log time never runs more than KV_NODE_CLOCK_STEP_MAX_MS ahead of every clock as it would be
 * without its jumps (kv/node.h, Time). */
static bool check_log_time(struct run *t)
{
	uint64_t clock = 0;

	for (unsigned i = 0; i < t->n; i++)
		if (nodesim_realtime_unjumped(t->s, i) > clock)
			clock = nodesim_realtime_unjumped(t->s, i);
	for (unsigned i = 0; i < t->n; i++) {
		uint64_t lt;
		if (!nodesim_up(t->s, i))
			continue;
		lt = kv_store_now_ms(kv_node_store(nodesim_node(t->s, i)));
		if (lt > clock + KV_NODE_CLOCK_STEP_MAX_MS)
			return fail(t, "node %u's log time %llu is %llu ms ahead of the clocks",
			            i + 1, (unsigned long long)lt,
			            (unsigned long long)(lt - clock));
	}
	return true;
}

static bool step_ms(struct run *t)
{
	if (!clerks_step(t))
		return false;
	if (!nodesim_run_for(t->s, 1))
		return fail(t, "fixture: %s", nodesim_error(t->s));
	return check_log_time(t);
}

/* Every node reads every key; the answers go into the history. */
static bool final_reads(struct run *t)
{
	for (unsigned i = 0; i < t->n; i++) {
		for (unsigned k = 0; k < t->nkeys; k++) {
			struct clerk cl = {.id = 100 + i, .op = OP_GET, .key = (int)k};
			struct kv_cmd c;
			char key[16];
			int st;

			key_name(key, sizeof(key), (int)k);
			nodesim_cmd(t->s, &c, KV_OP_GET, key, NULL);
			cl.call_ms = nodesim_now(t->s);
			st = nodesim_call(t->s, i, &c, FINAL_READ_TIMEOUT_MS, &cl.r);
			if (st != KV_STATUS_OK || cl.r.req.result.status != KV_OK) {
				nodesim_req_release(&cl.r);
				return fail(t, "final read of %s on node %u: %s", key, i + 1,
				            st < 0 ? "no answer" : kv_status_name(st));
			}
			if (!record(t, &cl, LIN_STATUS_OK, cl.r.req.result.value,
			            cl.r.req.result.value_len)) {
				nodesim_req_release(&cl.r);
				return false;
			}
			nodesim_req_release(&cl.r);
		}
	}
	return true;
}

static bool run_body(struct run *t)
{
	uint64_t end, next_fault;

	end = nodesim_now(t->s) + FAULT_MS;
	next_fault = nodesim_now(t->s) + 100 + rnd(t, 300);
	while (nodesim_now(t->s) < end) {
		if (nodesim_now(t->s) >= next_fault) {
			nemesis(t);
			next_fault = nodesim_now(t->s) + 30 + rnd(t, 300);
		}
		if (!step_ms(t))
			return false;
	}
	t->stop = true;
	if (!heal_all(t))
		return false;
	for (uint64_t until = nodesim_now(t->s) + DRAIN_MS; !clerks_idle(t);) {
		if (nodesim_now(t->s) >= until)
			return fail(t, "clerks still busy %d ms after healing", DRAIN_MS);
		if (!step_ms(t))
			return false;
	}
	if (!nodesim_wait_converged(t->s, CONVERGE_MS))
		return fail(t, "%s",
		            nodesim_error(t->s) ? nodesim_error(t->s)
		                                : "no convergence after healing");
	for (unsigned i = 0; i < t->n; i++) {
		if (!nodesim_up(t->s, i))
			return fail(t, "node %u is down at the end", i + 1);
		if (nodesim_hash(t->s, i) != nodesim_hash(t->s, 0))
			return fail(
			        t, "node %u's namespace hash %016llx differs from node 1's %016llx",
			        i + 1, (unsigned long long)nodesim_hash(t->s, i),
			        (unsigned long long)nodesim_hash(t->s, 0));
	}
	if (!final_reads(t))
		return false;
	if (nodesim_error(t->s))
		return fail(t, "fixture: %s", nodesim_error(t->s));
	return true;
}

static bool run_check(struct run *t)
{
	struct lin_options opt = {.timeout_ms = LIN_TIMEOUT_MS};

	if (lin_check(t->h, &opt, &t->lr) != LIN_OK || t->lr.verdict != LIN_LINEARIZABLE) {
		t->lin_failed = true;
		return fail(t, "history of %zu operations is %s (key %s)", lin_history_count(t->h),
		            lin_verdict_name(t->lr.verdict), t->lr.key ? t->lr.key : "-");
	}
	return true;
}

struct run_params {
	uint64_t seed;
	enum mix mix;
	unsigned nodes;
};

/* The k-th seed of mix in the plan make check follows. */
static void plan(enum mix mix, unsigned k, struct run_params *p)
{
	p->mix = mix;
	p->seed = 1 + (uint64_t)mix * 1000003u + k;
	p->nodes = k % 2 ? 5 : 3;
}

/* Sets up and runs one seed; t is freed by run_free. Returns true when every check passed. */
static bool run_one(const struct run_params *p, bool trace_on, struct run *t)
{
	struct nodesim_options o;
	char err[256];

	memset(t, 0, sizeof(*t));
	t->seed = p->seed;
	t->mix = p->mix;
	t->n = p->nodes;
	t->trace = trace_on;
	t->h = lin_history_new();
	if (!t->h)
		return fail(t, "out of memory");
	nodesim_options_default(&o, p->nodes, p->seed);
	o.clock_skew_ms = CLOCK_SKEW_MS;
	/* a few fixture choices from the seed itself, before the fixture's PRNG exists */
	if (p->seed % 3 == 0) {
		o.snapshot_bytes =
		        2048; /* snapshots, and laggards catching up by InstallSnapshot */
		o.snapshot_trailing = 8;
	}
	if (p->mix == MIX_LOSSY || p->mix == MIX_ALL) {
		o.delay_min_ms = 1 + (unsigned)(p->seed % 3);
		o.delay_jitter_ms = 20; /* reordering */
		o.dup_pm = 100;
		o.drop_pm = 50;
	}
	if (nodesim_new(&o, &t->s, err, sizeof(err)) != 0)
		return fail(t, "cannot build the cluster: %s", err);
	t->nc = 3 + (unsigned)rnd(t, MAX_CLERKS - 2);
	t->nkeys = 2 + (unsigned)rnd(t, MAX_KEYS - 1);
	for (unsigned k = 0; k < t->nc; k++)
		t->c[k].id = k;
	trace(t, "seed %llu, mix %s, %u nodes, %u clerks, %u keys", (unsigned long long)p->seed,
	      mix_names[p->mix], t->n, t->nc, t->nkeys);
	if (!run_body(t))
		return false;
	return run_check(t);
}

static void run_free(struct run *t)
{
	if (t->s) {
		t->st.crashes = nodesim_crashes(t->s);
		t->st.tails_cut = nodesim_tails_cut(t->s);
		for (unsigned i = 0; i < t->n; i++)
			t->st.snapshots += nodesim_snapshots_received(t->s, i);
		for (unsigned i = 0; i < t->n; i++)
			t->st.local_snapshots += nodesim_snapshots_started(t->s, i);
		t->st.events_ms = nodesim_now(t->s);
	}
	nodesim_free(t->s); /* ends every pending attempt */
	t->s = NULL;
	for (unsigned k = 0; k < MAX_CLERKS; k++) {
		nodesim_req_release(&t->c[k].r);
		raft_buf_unref(t->c[k].cmd);
		t->c[k].cmd = NULL;
	}
	lin_history_free(t->h);
	t->h = NULL;
	lin_result_free(&t->lr);
}

/* Prints why a run failed and how to replay it; writes the history of a linearizability
 * failure to a file. */
static void report(const struct run_params *p, struct run *t)
{
	printf("\nnodesim: seed %llu (%s, %u nodes) FAILED: %s\n"
	       "  replay: tests/test_nodesim --seed=%llu --mix=%d --nodes=%u --trace\n",
	       (unsigned long long)p->seed, mix_names[p->mix], p->nodes, t->err,
	       (unsigned long long)p->seed, (int)p->mix, p->nodes);
	if (t->lin_failed && t->h) {
		char path[256];
		const char *dir = getenv("TMPDIR");
		FILE *f;
		snprintf(path, sizeof(path), "%s/nodesim-%llu-%d-%u.history",
		         dir && *dir ? dir : "/tmp", (unsigned long long)p->seed, (int)p->mix,
		         p->nodes);
		f = fopen(path, "w");
		if (f && lin_history_write(t->h, f) == LIN_OK && fclose(f) == 0)
			printf("  history: %s (tests/test_lincheck can read it)\n", path);
		else if (f)
			fclose(f);
		printf("%s\n", t->lr.explanation ? t->lr.explanation : "");
	}
	if (t->s)
		nodesim_dump(t->s);
}

/* --- make check and soak ------------------------------------------------------------------------ */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned seeds_per_mix(void)
{
	const char *scale = getenv("NODESIM_SEEDS_SCALE");
	double f = scale ? atof(scale) : 1.0;
	unsigned n = (unsigned)(NODESIM_SEEDS_PER_MIX * (f > 0 ? f : 1.0));
	return n ? n : 1;
}

/* Runs count seeds of mix (the plan's, or from first on); returns the failures. */
static unsigned run_mix(enum mix mix, uint64_t first, unsigned count)
{
	struct run_stats tot = {0};
	unsigned failures = 0;
	double t0 = now_s(), dt;

	for (unsigned k = 0; k < count; k++) {
		struct run_params p;
		struct run *t = malloc(sizeof(*t));
		bool ok;

		plan(mix, k, &p);
		if (first)
			p.seed = first + k;
		if (!t) {
			failures++;
			break;
		}
		ok = run_one(&p, false, t);
		if (!ok) {
			failures++;
			report(&p, t);
		}
		tot.ok += t->st.ok;
		tot.unknown += t->st.unknown;
		tot.failed += t->st.failed;
		tot.reads_dropped += t->st.reads_dropped;
		tot.attempts += t->st.attempts;
		tot.history_ops += t->st.history_ops;
		tot.clock_jumps += t->st.clock_jumps;
		tot.hard_attempts += t->st.hard_attempts;
		run_free(t);
		tot.crashes += t->st.crashes;
		tot.tails_cut += t->st.tails_cut;
		tot.snapshots += t->st.snapshots;
		tot.local_snapshots += t->st.local_snapshots;
		free(t);
		if (failures >= 5)
			break;
	}
	dt = now_s() - t0;
	printf("\n  nodesim %-9s %4u seeds in %6.2fs (%6.1f seeds/s): %llu ops ok, %llu unknown, "
	       "%llu failed, %llu reads dropped, %llu attempts, %llu history ops, %llu crashes "
	       "(%llu synced tails cut), %llu snapshots installed, %llu taken in the background, "
	       "%llu attempts without a deadline, %llu clock jumps",
	       mix_names[mix], count, dt, count / (dt > 0 ? dt : 1e-9), (unsigned long long)tot.ok,
	       (unsigned long long)tot.unknown, (unsigned long long)tot.failed,
	       (unsigned long long)tot.reads_dropped, (unsigned long long)tot.attempts,
	       (unsigned long long)tot.history_ops, (unsigned long long)tot.crashes,
	       (unsigned long long)tot.tails_cut, (unsigned long long)tot.snapshots,
	       (unsigned long long)tot.local_snapshots, (unsigned long long)tot.hard_attempts,
	       (unsigned long long)tot.clock_jumps);
	fflush(stdout);
	return failures;
}

#define MIX_TEST(name, mix)                                                                        \
	static void name(void)                                                                     \
	{                                                                                          \
		CU_ASSERT_EQUAL(run_mix(mix, 0, seeds_per_mix()), 0);                              \
	}

MIX_TEST(test_clerks_on_a_clean_network_see_a_linearizable_history, MIX_CLEAN)
MIX_TEST(test_clerks_through_drops_duplicates_and_reordering_see_a_linearizable_history, MIX_LOSSY)
MIX_TEST(test_clerks_through_symmetric_partitions_see_a_linearizable_history, MIX_PARTITION)
MIX_TEST(test_clerks_through_one_way_partitions_see_a_linearizable_history, MIX_ONE_WAY)
MIX_TEST(test_clerks_through_torn_crashes_and_restarts_see_a_linearizable_history, MIX_CRASH)
MIX_TEST(test_clerks_through_fsync_failures_and_slow_disks_see_a_linearizable_history, MIX_DISK)
MIX_TEST(test_clerks_through_every_fault_at_once_see_a_linearizable_history, MIX_ALL)

static void test_same_seed_replays_the_same_history(void)
{
	struct run_params p = {.seed = 77, .mix = MIX_ALL, .nodes = 5};
	struct run *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	bool oka, okb;

	CU_ASSERT_FATAL(a && b);
	oka = run_one(&p, false, a);
	okb = run_one(&p, false, b);
	CU_ASSERT_TRUE(oka && okb);
	CU_ASSERT_EQUAL(lin_history_count(a->h), lin_history_count(b->h));
	CU_ASSERT_TRUE(lin_history_count(a->h) > 0);
	for (size_t i = 0; oka && okb && i < lin_history_count(a->h); i++) {
		const struct lin_op *x = lin_history_op(a->h, i), *y = lin_history_op(b->h, i);
		CU_ASSERT_TRUE(x->call_time == y->call_time && x->return_time == y->return_time &&
		               x->status == y->status && x->output_len == y->output_len &&
		               strcmp(x->key, y->key) == 0);
	}
	CU_ASSERT_EQUAL(nodesim_hash(a->s, 0), nodesim_hash(b->s, 0));
	run_free(a);
	run_free(b);
	free(a);
	free(b);
}

/*
 * The check can fail: in a passing run's history, a Get that began after a Put P of key k returned
 * and after a later acknowledged write W of k returned is made to read P's value. Values are
 * unique, so after W the key can never hold P's value again: the history is not linearizable.
 */
static bool find_stale_read(const struct lin_history *h, size_t *get, size_t *put)
{
	size_t n = lin_history_count(h);

	for (size_t g = 0; g < n; g++) {
		const struct lin_op *G = lin_history_op(h, g);
		if (G->kind != LIN_GET || G->status != LIN_STATUS_OK)
			continue;
		for (size_t pi = 0; pi < n; pi++) {
			const struct lin_op *P = lin_history_op(h, pi);
			if (P->kind != LIN_PUT || P->status != LIN_STATUS_OK ||
			    strcmp(P->key, G->key) != 0 || P->return_time >= G->call_time)
				continue;
			if (G->output_len == P->value_len &&
			    memcmp(G->output, P->value, P->value_len) == 0)
				continue;
			for (size_t w = 0; w < n; w++) {
				const struct lin_op *W = lin_history_op(h, w);
				if (W->kind != LIN_GET && W->status == LIN_STATUS_OK &&
				    strcmp(W->key, G->key) == 0 && P->return_time < W->call_time &&
				    W->return_time < G->call_time) {
					*get = g;
					*put = pi;
					return true;
				}
			}
		}
	}
	return false;
}

static void test_a_stale_read_in_a_passing_history_is_found_not_linearizable(void)
{
	struct run *t = calloc(1, sizeof(*t));
	struct lin_history *bad = NULL;
	struct lin_result res;
	size_t get = 0, put = 0;
	bool found = false;

	memset(&res, 0, sizeof(res));
	CU_ASSERT_FATAL(t != NULL);
	for (uint64_t seed = 5; seed < 25 && !found; seed++) {
		struct run_params p = {.seed = seed, .mix = MIX_CLEAN, .nodes = 3};
		if (!run_one(&p, false, t)) {
			report(&p, t);
			CU_FAIL("a clean run failed");
			break;
		}
		found = find_stale_read(t->h, &get, &put);
		if (!found)
			run_free(t);
	}
	CU_ASSERT_FATAL(found);
	bad = lin_history_new();
	CU_ASSERT_FATAL(bad != NULL);
	for (size_t i = 0; i < lin_history_count(t->h); i++) {
		struct lin_op o = *lin_history_op(t->h, i);
		if (i == get) {
			const struct lin_op *P = lin_history_op(t->h, put);
			o.output = P->value;
			o.output_len = P->value_len;
		}
		CU_ASSERT_EQUAL_FATAL(lin_history_add(bad, &o), LIN_OK);
	}
	CU_ASSERT_EQUAL(lin_check(t->h, NULL, &res), LIN_OK);
	CU_ASSERT_EQUAL(res.verdict, LIN_LINEARIZABLE);
	lin_result_free(&res);
	CU_ASSERT_EQUAL(lin_check(bad, NULL, &res), LIN_OK);
	CU_ASSERT_EQUAL(res.verdict, LIN_NOT_LINEARIZABLE);
	lin_result_free(&res);
	lin_history_free(bad);
	run_free(t);
	free(t);
}

static CU_TestInfo nodesim_tests[] = {
        {"test_same_seed_replays_the_same_history", test_same_seed_replays_the_same_history},
        {"test_a_stale_read_in_a_passing_history_is_found_not_linearizable",
         test_a_stale_read_in_a_passing_history_is_found_not_linearizable},
        {"test_clerks_on_a_clean_network_see_a_linearizable_history",
         test_clerks_on_a_clean_network_see_a_linearizable_history},
        {"test_clerks_through_drops_duplicates_and_reordering_see_a_linearizable_history",
         test_clerks_through_drops_duplicates_and_reordering_see_a_linearizable_history},
        {"test_clerks_through_symmetric_partitions_see_a_linearizable_history",
         test_clerks_through_symmetric_partitions_see_a_linearizable_history},
        {"test_clerks_through_one_way_partitions_see_a_linearizable_history",
         test_clerks_through_one_way_partitions_see_a_linearizable_history},
        {"test_clerks_through_torn_crashes_and_restarts_see_a_linearizable_history",
         test_clerks_through_torn_crashes_and_restarts_see_a_linearizable_history},
        {"test_clerks_through_fsync_failures_and_slow_disks_see_a_linearizable_history",
         test_clerks_through_fsync_failures_and_slow_disks_see_a_linearizable_history},
        {"test_clerks_through_every_fault_at_once_see_a_linearizable_history",
         test_clerks_through_every_fault_at_once_see_a_linearizable_history},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"nodesim", NULL, NULL, NULL, NULL, nodesim_tests},
        CU_SUITE_INFO_NULL,
};

static int usage(void)
{
	fprintf(stderr,
	        "usage: tests/test_nodesim [SUITE[:TEST]]\n"
	        "       tests/test_nodesim --seed=N [--mix=M] [--nodes=3|5] [--trace]\n"
	        "       tests/test_nodesim --soak [--seeds=N] [--start=S]\n"
	        "mixes: 0 clean, 1 lossy, 2 partition, 3 one-way, 4 crash, 5 disk, 6 all\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct run_params p = {.mix = MIX_ALL, .nodes = 0};
	struct simcli cli = {.seeds = 10000};
	bool trace_on;

	if (simcli_parse(argc, argv, &cli, MIX_COUNT, false) != 0)
		return usage();
	if (cli.suites)
		return cu_main(argc, argv, suites);
	p.seed = cli.seed;
	if (cli.mix >= 0)
		p.mix = (enum mix)cli.mix;
	p.nodes = cli.nodes;
	trace_on = cli.trace != 0;
	if (cli.replay) {
		struct run *t = calloc(1, sizeof(*t));
		bool ok;
		if (!t)
			return 2;
		if (p.nodes == 0)
			p.nodes = p.seed % 2 ? 5 : 3;
		if (p.nodes < 1 || p.nodes > NODESIM_MAX_NODES)
			return usage();
		if (trace_on)
			setenv("KV_NODE_TRACE", "1", 1);
		ok = run_one(&p, trace_on, t);
		if (!ok)
			report(&p, t);
		printf("seed %llu (%s, %u nodes, %u clerks, %u keys): %s\n  %zu history ops, %llu ok, "
		       "%llu unknown, %llu failed, %llu reads dropped, %llu attempts\n",
		       (unsigned long long)p.seed, mix_names[p.mix], p.nodes, t->nc, t->nkeys,
		       ok ? "ok" : "FAILED", t->h ? lin_history_count(t->h) : 0,
		       (unsigned long long)t->st.ok, (unsigned long long)t->st.unknown,
		       (unsigned long long)t->st.failed, (unsigned long long)t->st.reads_dropped,
		       (unsigned long long)t->st.attempts);
		run_free(t);
		free(t);
		return ok ? 0 : 1;
	}
	if (cli.soak) {
		unsigned failures = 0;
		unsigned long long per = (cli.seeds + MIX_COUNT - 1) / MIX_COUNT;
		double t0 = now_s();
		for (int m = 0; m < MIX_COUNT; m++)
			failures += run_mix((enum mix)m,
			                    cli.start + (unsigned long long)m * 100000000ULL,
			                    (unsigned)per);
		printf("\nsoak: %llu seeds in %.1fs, %u failed\n", per * MIX_COUNT, now_s() - t0,
		       failures);
		return failures ? 1 : 0;
	}
	return cu_main(argc, argv, suites);
}
