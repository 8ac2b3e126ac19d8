/* test_clerk.c - the clerk against scripted fake nodes: redirects, retries, deadlines, sessions. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kv/clerk.h"
#include "kv/cmd.h"
#include "kv/proto.h"
#include "raft/raft.h"
#include "raft/transport.h"
#include "tests/lib/cu.h"

/*
 * A fake cluster: up to FAKE_MAX_NODES listening sockets on 127.0.0.1 with ephemeral ports,
 * served by one thread that speaks the client hello and kv/proto.h frames. Each test gives a
 * script deciding, per request, what the node does: answer (a status, a leader hint and a
 * result), close the connection, or say nothing. Every request is logged for the test to check.
 */

#define FAKE_MAX_NODES 3
#define FAKE_MAX_CONNS 16
#define FAKE_MAX_LOG 128
#define FAKE_FIRST_SESSION 100
/* Slack allowed beyond a call's timeout (scheduling on a loaded 2-core machine). */
#define SLACK_MS 150

enum fake_act { ACT_REPLY, ACT_CLOSE, ACT_SILENT };

struct fake_req {
	int node; /* index of the node that received it */
	uint8_t op;
	uint64_t session, seq, time_ms;
	uint32_t timeout_ms;
	char key[64];
};

struct fake_answer {
	uint8_t status; /* enum kv_status */
	uint32_t leader;
	struct kv_result res; /* encoded when status is OK; .value borrowed */
};

struct fake;
/* Decides what node does with the nth request it received (from 0); a holds the default answer
 * (OK, leader 0, the state machine's natural result) for the script to change. */
typedef enum fake_act (*fake_script)(struct fake *f, int node, int nth, const struct kv_cmd *cmd,
                                     struct fake_answer *a);

struct fake_conn {
	int fd;
	int node;
	bool hello_done;
	unsigned char *buf;
	size_t len, cap;
};

struct fake {
	int n_nodes;
	int lfd[FAKE_MAX_NODES];
	uint16_t port[FAKE_MAX_NODES];
	char list[256];
	unsigned char hello[RAFT_TRANSPORT_HELLO_BYTES];
	int wake[2];
	pthread_t thread;
	pthread_mutex_t mu;
	fake_script script;
	/* under mu */
	struct fake_req log[FAKE_MAX_LOG];
	int n_log;
	int nth[FAKE_MAX_NODES];
	int accepted[FAKE_MAX_NODES];
	int bad_hellos;
	uint64_t next_session;
	struct fake_conn conns[FAKE_MAX_CONNS];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void send_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void conn_drop(struct fake_conn *c)
{
	close(c->fd);
	free(c->buf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void send_frame(int fd, const struct kv_proto_frame *fr)
{
	void *out;
	size_t len;

	if (kv_proto_encode(fr, &out, &len) == 0) {
		send_all(fd, out, len);
		free(out);
	}
}

/* The natural answer of a tiny state machine: sessions numbered from FAKE_FIRST_SESSION, Get
 * answers "value-of-KEY" except for keys starting with "missing". */
static void default_answer(struct fake *f, const struct kv_cmd *cmd, struct fake_answer *a)
{
	static const char prefix[] = "value-of-";
	static char value[128];

	memset(a, 0, sizeof(*a));
	a->status = KV_STATUS_OK;
	a->res.op = cmd->op;
	if (cmd->op == KV_OP_OPEN_SESSION)
		a->res.session = f->next_session++;
	if (cmd->op == KV_OP_GET && !(cmd->key_len >= 7 && memcmp(cmd->key, "missing", 7) == 0)) {
		size_t n = cmd->key_len < 64 ? cmd->key_len : 64;
		memcpy(value, prefix, sizeof(prefix) - 1);
		memcpy(value + sizeof(prefix) - 1, cmd->key, n);
		a->res.exists = true;
		a->res.value = value;
		a->res.value_len = sizeof(prefix) - 1 + n;
	}
}

/* Handles one complete frame from c; false when the connection is to be closed. */
static bool handle_frame(struct fake *f, struct fake_conn *c, const void *buf, size_t len)
{
	struct kv_proto_frame in, out;
	struct fake_answer a;
	struct kv_cmd cmd;
	enum fake_act act;
	const char *why;
	void *res_buf = NULL;
	size_t res_len = 0;

	if (kv_proto_decode(buf, len, &in, &why) < 0)
		return false;
	memset(&out, 0, sizeof(out));
	out.id = in.id;
	if (in.type == KV_PROTO_STATUS_REQ) {
		out.type = KV_PROTO_STATUS_RESP;
		out.n_status = 1;
		out.status_of[0].id = (uint32_t)c->node + 1;
		out.status_of[0].role = c->node == 0 ? RAFT_LEADER : RAFT_FOLLOWER;
		out.status_of[0].leader = 1;
		out.status_of[0].term = 7;
		out.status_of[0].commit = 40 + (uint64_t)c->node;
		out.status_of[0].applied = 30 + (uint64_t)c->node;
		out.status_of[0].log_bytes = 4096;
		out.status_of[0].snapshot_index = 5;
		send_frame(c->fd, &out);
		return true;
	}
	if (in.type != KV_PROTO_REQ || kv_cmd_decode(in.body, in.body_len, &cmd) != KV_OK)
		return false;
	pthread_mutex_lock(&f->mu);
	if (f->n_log < FAKE_MAX_LOG) {
		struct fake_req *r = &f->log[f->n_log++];
		size_t n = cmd.key_len < sizeof(r->key) - 1 ? cmd.key_len : sizeof(r->key) - 1;
		r->node = c->node;
		r->op = cmd.op;
		r->session = cmd.session;
		r->seq = cmd.seq;
		r->time_ms = cmd.time_ms;
		r->timeout_ms = in.timeout_ms;
		memcpy(r->key, cmd.key ? cmd.key : "", n);
		r->key[n] = '\0';
	}
	default_answer(f, &cmd, &a);
	act = f->script ? f->script(f, c->node, f->nth[c->node]++, &cmd, &a) : ACT_REPLY;
	pthread_mutex_unlock(&f->mu);
	if (act == ACT_CLOSE)
		return false;
	if (act == ACT_SILENT)
		return true;
	out.type = KV_PROTO_RESP;
	out.status = a.status;
	out.leader = a.leader;
	if (a.status == KV_STATUS_OK) {
		if (kv_result_encode(&a.res, &res_buf, &res_len) != KV_OK)
			return false; /* the client sees the connection close */
		out.body = res_buf;
		out.body_len = res_len;
	}
	send_frame(c->fd, &out);
	raft_buf_unref(res_buf);
	return true;
}

/* Reads what c has to say; false when it is to be closed. */
static bool conn_read(struct fake *f, struct fake_conn *c)
{
	size_t flen;
	ssize_t n;
	int r;

	if (c->cap - c->len < 4096) {
		size_t ncap = c->cap ? 2 * c->cap : 8192;
		unsigned char *nb = realloc(c->buf, ncap);
		if (!nb)
			return false;
		c->buf = nb;
		c->cap = ncap;
	}
	n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
	if (n <= 0)
		return false;
	c->len += (size_t)n;
	if (!c->hello_done) {
		if (c->len < RAFT_TRANSPORT_HELLO_BYTES)
			return true;
		if (memcmp(c->buf, f->hello, RAFT_TRANSPORT_HELLO_BYTES) != 0) {
			pthread_mutex_lock(&f->mu);
			f->bad_hellos++;
			pthread_mutex_unlock(&f->mu);
			return false;
		}
		c->hello_done = true;
		c->len -= RAFT_TRANSPORT_HELLO_BYTES;
		memmove(c->buf, c->buf + RAFT_TRANSPORT_HELLO_BYTES, c->len);
	}
	while ((r = kv_proto_frame_length(c->buf, c->len, &flen)) == 1) {
		if (!handle_frame(f, c, c->buf, flen))
			return false;
		c->len -= flen;
		memmove(c->buf, c->buf + flen, c->len);
	}
	return r == 0;
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	for (;;) {
		struct pollfd p[1 + FAKE_MAX_NODES + FAKE_MAX_CONNS];
		int np = 0, map[1 + FAKE_MAX_NODES + FAKE_MAX_CONNS];

		p[np].fd = f->wake[0];
		p[np].events = POLLIN;
		map[np++] = -1;
		for (int i = 0; i < f->n_nodes; i++) {
			p[np].fd = f->lfd[i];
			p[np].events = POLLIN;
			map[np++] = 1000 + i;
		}
		for (int i = 0; i < FAKE_MAX_CONNS; i++) {
			if (f->conns[i].fd < 0)
				continue;
			p[np].fd = f->conns[i].fd;
			p[np].events = POLLIN;
			map[np++] = i;
		}
		if (poll(p, (nfds_t)np, -1) < 0)
			continue;
		if (p[0].revents)
			break;
		for (int k = 1; k < np; k++) {
			if (!p[k].revents)
				continue;
			if (map[k] >= 1000) {
				int node = map[k] - 1000, fd = accept(f->lfd[node], NULL, NULL),
				    slot = -1;
				for (int i = 0; i < FAKE_MAX_CONNS && fd >= 0; i++)
					if (f->conns[i].fd < 0 && slot < 0)
						slot = i;
				if (fd >= 0 && slot < 0)
					close(fd);
				if (fd < 0 || slot < 0)
					continue;
				f->conns[slot].fd = fd;
				f->conns[slot].node = node;
				pthread_mutex_lock(&f->mu);
				f->accepted[node]++;
				pthread_mutex_unlock(&f->mu);
			} else if (!conn_read(f, &f->conns[map[k]])) {
				conn_drop(&f->conns[map[k]]);
			}
		}
	}
	for (int i = 0; i < FAKE_MAX_CONNS; i++)
		if (f->conns[i].fd >= 0)
			conn_drop(&f->conns[i]);
	return NULL;
}

/* Starts n fake nodes with script; their cluster list is f->list. */
static void fake_start(struct fake *f, int n, fake_script script)
{
	struct raft_transport_config cfg;
	size_t off = 0;

	memset(f, 0, sizeof(*f));
	f->n_nodes = n;
	f->script = script;
	f->next_session = FAKE_FIRST_SESSION;
	for (int i = 0; i < FAKE_MAX_CONNS; i++)
		f->conns[i].fd = -1;
	for (int i = 0; i < n; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		socklen_t sl = sizeof(sa);

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		f->lfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CU_ASSERT_FATAL(f->lfd[i] >= 0);
		CU_ASSERT_FATAL(bind(f->lfd[i], (struct sockaddr *)&sa, sizeof(sa)) == 0);
		CU_ASSERT_FATAL(listen(f->lfd[i], 16) == 0);
		CU_ASSERT_FATAL(getsockname(f->lfd[i], (struct sockaddr *)&sa, &sl) == 0);
		f->port[i] = ntohs(sa.sin_port);
		off += (size_t)snprintf(f->list + off, sizeof(f->list) - off, "%s%d=127.0.0.1:%u",
		                        i ? "," : "", i + 1, f->port[i]);
	}
	CU_ASSERT_FATAL(raft_transport_parse_cluster(f->list, &cfg, NULL, 0) == RAFT_OK);
	raft_transport_hello_encode(f->hello, RAFT_TRANSPORT_KIND_CLIENT, 0, 0);
	CU_ASSERT_FATAL(pipe(f->wake) == 0);
	pthread_mutex_init(&f->mu, NULL);
	CU_ASSERT_FATAL(pthread_create(&f->thread, NULL, fake_main, f) == 0);
}

static void fake_stop(struct fake *f)
{
	CU_ASSERT(write(f->wake[1], "x", 1) == 1);
	pthread_join(f->thread, NULL);
	for (int i = 0; i < f->n_nodes; i++)
		close(f->lfd[i]);
	close(f->wake[0]);
	close(f->wake[1]);
	pthread_mutex_destroy(&f->mu);
	CU_ASSERT(f->bad_hellos == 0);
}

/* Copies the log (the server thread may still be writing). */
static int fake_log(struct fake *f, struct fake_req *out)
{
	int n;

	pthread_mutex_lock(&f->mu);
	n = f->n_log;
	memcpy(out, f->log, sizeof(f->log));
	pthread_mutex_unlock(&f->mu);
	return n;
}

static struct kv_clerk *open_clerk(struct fake *f)
{
	char err[256];
	struct kv_clerk *c = kv_clerk_open(f->list, NULL, err, sizeof(err));

	CU_ASSERT_FATAL(c != NULL);
	return c;
}

/* --- scripts --------------------------------------------------------------------------------- */

/* Node 1 is a follower that knows node 3 leads and refuses everything. */
static enum fake_act script_node1_points_to_node3(struct fake *f, int node, int nth,
                                                  const struct kv_cmd *cmd, struct fake_answer *a)
{
	(void)f, (void)nth, (void)cmd;
	if (node == 0) {
		a->status = KV_STATUS_NOT_APPLIED;
		a->leader = 3;
	} else {
		a->leader = 3;
	}
	return ACT_REPLY;
}

static enum fake_act script_node1_closes(struct fake *f, int node, int nth,
                                         const struct kv_cmd *cmd, struct fake_answer *a)
{
	(void)f, (void)nth, (void)cmd, (void)a;
	return node == 0 ? ACT_CLOSE : ACT_REPLY;
}

/* Node 1 refuses puts (no leader), node 2 takes them. */
static enum fake_act script_node1_not_applied(struct fake *f, int node, int nth,
                                              const struct kv_cmd *cmd, struct fake_answer *a)
{
	(void)f, (void)nth;
	if (node == 0 && cmd->op == KV_OP_PUT)
		a->status = KV_STATUS_NOT_APPLIED;
	return ACT_REPLY;
}

/* The first put's fate is unknown; its retry is answered from the session. */
static enum fake_act script_first_put_unknown(struct fake *f, int node, int nth,
                                              const struct kv_cmd *cmd, struct fake_answer *a)
{
	(void)f, (void)node, (void)nth;
	if (cmd->op == KV_OP_PUT) {
		static int puts_seen;
		if (cmd->seq == 1 && puts_seen++ == 0)
			a->status = KV_STATUS_UNKNOWN;
		else
			a->res.replayed = true;
	}
	return ACT_REPLY;
}

static enum fake_act script_silent(struct fake *f, int node, int nth, const struct kv_cmd *cmd,
                                   struct fake_answer *a)
{
	(void)f, (void)node, (void)nth, (void)cmd, (void)a;
	return ACT_SILENT;
}

/* Sessions open, everything else goes unanswered. */
static enum fake_act script_silent_after_session(struct fake *f, int node, int nth,
                                                 const struct kv_cmd *cmd, struct fake_answer *a)
{
	(void)f, (void)node, (void)nth, (void)a;
	return cmd->op == KV_OP_OPEN_SESSION ? ACT_REPLY : ACT_SILENT;
}

/* The first session (FAKE_FIRST_SESSION) has expired by the time the put arrives. */
static enum fake_act script_first_session_expired(struct fake *f, int node, int nth,
                                                  const struct kv_cmd *cmd, struct fake_answer *a)
{
	(void)f, (void)node, (void)nth;
	if (cmd->op == KV_OP_PUT && cmd->session == FAKE_FIRST_SESSION)
		a->res.status = KV_ESESSION_EXPIRED;
	return ACT_REPLY;
}

/* The put's first attempt has an unknown fate, its retry finds the session expired. */
static enum fake_act script_unknown_then_expired(struct fake *f, int node, int nth,
                                                 const struct kv_cmd *cmd, struct fake_answer *a)
{
	(void)node, (void)nth;
	if (cmd->op == KV_OP_PUT) {
		bool first = true;
		for (int i = 0; i < f->n_log - 1; i++)
			if (f->log[i].op == KV_OP_PUT)
				first = false;
		if (first)
			a->status = KV_STATUS_UNKNOWN;
		else
			a->res.status = KV_ESESSION_EXPIRED;
	}
	return ACT_REPLY;
}

static enum fake_act script_put_exists(struct fake *f, int node, int nth, const struct kv_cmd *cmd,
                                       struct fake_answer *a)
{
	(void)f, (void)node, (void)nth;
	if (cmd->op == KV_OP_PUT)
		a->res.status = KV_EEXIST;
	if (cmd->op == KV_OP_DELETE)
		a->res.status = KV_ENOENT;
	return ACT_REPLY;
}

static enum fake_act script_bad_request(struct fake *f, int node, int nth, const struct kv_cmd *cmd,
                                        struct fake_answer *a)
{
	(void)f, (void)node, (void)nth;
	if (cmd->op == KV_OP_GET)
		a->status = KV_STATUS_BAD_REQUEST;
	return ACT_REPLY;
}

/* Node 1 is shutting down; node 2 answers. */
static enum fake_act script_node1_shutdown(struct fake *f, int node, int nth,
                                           const struct kv_cmd *cmd, struct fake_answer *a)
{
	(void)f, (void)nth, (void)cmd;
	if (node == 0)
		a->status = KV_STATUS_SHUTDOWN;
	return ACT_REPLY;
}

/* --- tests ----------------------------------------------------------------------------------- */

static void test_leader_hint_redirects_to_the_leader(void)
{
	struct fake f;
	struct fake_req log[FAKE_MAX_LOG];
	struct kv_result r;
	struct kv_clerk *c;
	int n, outcome;

	fake_start(&f, 3, script_node1_points_to_node3);
	c = open_clerk(&f);
	outcome = kv_clerk_put(c, "a/b", "v", 1, 2000, &r);
	CU_ASSERT_EQUAL(outcome, KV_CLERK_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_OK);
	kv_result_release(&r);
	CU_ASSERT_EQUAL(kv_clerk_put(c, "a/c", "w", 1, 2000, NULL), KV_CLERK_APPLIED);
	n = fake_log(&f, log);
	/* OpenSession to node 1 (refused, hint 3), then everything to node 3; node 2 never. */
	CU_ASSERT_EQUAL(n, 4);
	CU_ASSERT(n >= 4 && log[0].node == 0 && log[0].op == KV_OP_OPEN_SESSION);
	for (int i = 1; i < n; i++)
		CU_ASSERT_EQUAL(log[i].node, 2);
	CU_ASSERT_EQUAL(f.accepted[1], 0);
	kv_clerk_close(c);
	fake_stop(&f);
}

static void test_node_closing_the_connection_makes_the_clerk_try_the_next(void)
{
	struct fake f;
	struct fake_req log[FAKE_MAX_LOG];
	struct kv_result r;
	struct kv_clerk *c;
	int n;

	fake_start(&f, 2, script_node1_closes);
	c = open_clerk(&f);
	CU_ASSERT_EQUAL(kv_clerk_get(c, "k", 2000, &r), KV_CLERK_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_OK);
	CU_ASSERT(r.exists);
	CU_ASSERT(r.value_len == 10 && memcmp(r.value, "value-of-k", 10) == 0);
	kv_result_release(&r);
	n = fake_log(&f, log);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT(n == 2 && log[0].node == 0 && log[1].node == 1);
	CU_ASSERT(n == 2 && log[0].session == 0 && log[0].op == KV_OP_GET);
	kv_clerk_close(c);
	fake_stop(&f);
}

static void test_not_applied_then_next_node_applies_with_the_same_seq(void)
{
	struct fake f;
	struct fake_req log[FAKE_MAX_LOG];
	struct kv_clerk *c;
	int n, puts = 0;
	uint64_t seq = 0;

	fake_start(&f, 2, script_node1_not_applied);
	c = open_clerk(&f);
	CU_ASSERT_EQUAL(kv_clerk_put(c, "k", "v", 1, 2000, NULL), KV_CLERK_APPLIED);
	n = fake_log(&f, log);
	for (int i = 0; i < n; i++) {
		if (log[i].op != KV_OP_PUT)
			continue;
		CU_ASSERT_EQUAL(log[i].node, puts);
		if (puts++ == 0)
			seq = log[i].seq;
		CU_ASSERT_EQUAL(log[i].seq, seq);
	}
	CU_ASSERT_EQUAL(puts, 2);
	CU_ASSERT_EQUAL(seq, 1);
	kv_clerk_close(c);
	fake_stop(&f);
}

static void test_unknown_outcome_is_retried_with_the_same_seq(void)
{
	struct fake f;
	struct fake_req log[FAKE_MAX_LOG], put[2];
	struct kv_result r;
	struct kv_clerk *c;
	int n, puts = 0;

	fake_start(&f, 1, script_first_put_unknown);
	c = open_clerk(&f);
	CU_ASSERT_EQUAL(kv_clerk_put(c, "k", "v", 1, 3000, &r), KV_CLERK_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_OK);
	kv_result_release(&r);
	n = fake_log(&f, log);
	for (int i = 0; i < n; i++)
		if (log[i].op == KV_OP_PUT && puts < 2)
			put[puts++] = log[i];
	CU_ASSERT_EQUAL_FATAL(puts, 2);
	CU_ASSERT_EQUAL(put[0].session, FAKE_FIRST_SESSION);
	CU_ASSERT_EQUAL(put[1].session, put[0].session);
	CU_ASSERT_EQUAL(put[0].seq, 1);
	CU_ASSERT_EQUAL(put[1].seq, put[0].seq);
	CU_ASSERT_EQUAL(put[1].time_ms, put[0].time_ms);
	CU_ASSERT_EQUAL(kv_clerk_seq(c), 1);
	kv_clerk_close(c);
	fake_stop(&f);
}

static void test_silent_cluster_write_returns_not_applied_by_the_deadline(void)
{
	struct fake f;
	struct kv_result r;
	struct kv_clerk *c;
	uint64_t t0, dt;
	int outcome;

	fake_start(&f, 2, script_silent);
	c = open_clerk(&f);
	t0 = now_ms();
	/* The session never opened, so the put itself was never sent. */
	outcome = kv_clerk_put(c, "k", "v", 1, 400, &r);
	dt = now_ms() - t0;
	CU_ASSERT_EQUAL(outcome, KV_CLERK_NOT_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_EIO);
	CU_ASSERT(dt >= 390 && dt <= 400 + SLACK_MS);
	CU_ASSERT(strstr(kv_clerk_errmsg(c), "no leader reachable within 0.4 s") != NULL);
	kv_clerk_close(c);
	fake_stop(&f);
}

static void test_silent_cluster_after_sending_a_write_is_unknown_by_the_deadline(void)
{
	struct fake f;
	struct fake_req log[FAKE_MAX_LOG];
	struct kv_result r;
	struct kv_clerk *c;
	uint64_t t0, dt;
	int outcome, n;

	fake_start(&f, 2, script_silent_after_session);
	c = open_clerk(&f);
	t0 = now_ms();
	outcome = kv_clerk_put(c, "k", "v", 1, 600, &r);
	dt = now_ms() - t0;
	CU_ASSERT_EQUAL(outcome, KV_CLERK_UNKNOWN);
	CU_ASSERT_NOT_EQUAL(r.status, KV_OK);
	CU_ASSERT(dt >= 590 && dt <= 600 + SLACK_MS);
	n = fake_log(&f, log);
	/* Each node was asked to answer within what the call had left. */
	for (int i = 0; i < n; i++)
		CU_ASSERT(log[i].timeout_ms > 0 && log[i].timeout_ms <= 600);
	/* A read is never "unknown". */
	t0 = now_ms();
	CU_ASSERT_EQUAL(kv_clerk_get(c, "k", 300, &r), KV_CLERK_NOT_APPLIED);
	dt = now_ms() - t0;
	CU_ASSERT(dt <= 300 + SLACK_MS);
	kv_clerk_close(c);
	fake_stop(&f);
}

static void test_unreachable_nodes_fail_fast_as_not_applied(void)
{
	struct kv_clerk *c;
	struct kv_result r;
	char list[128], err[256];
	int fds[2];
	uint16_t ports[2];
	uint64_t t0, dt;

	/* Two ports that were just free: nothing listens there. */
	for (int i = 0; i < 2; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		socklen_t sl = sizeof(sa);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		CU_ASSERT_FATAL(bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) == 0);
		CU_ASSERT_FATAL(getsockname(fds[i], (struct sockaddr *)&sa, &sl) == 0);
		ports[i] = ntohs(sa.sin_port);
	}
	snprintf(list, sizeof(list), "1=127.0.0.1:%u,2=127.0.0.1:%u", ports[0], ports[1]);
	c = kv_clerk_open(list, NULL, err, sizeof(err));
	CU_ASSERT_FATAL(c != NULL);
	t0 = now_ms();
	CU_ASSERT_EQUAL(kv_clerk_put(c, "k", "v", 1, 300, &r), KV_CLERK_NOT_APPLIED);
	dt = now_ms() - t0;
	CU_ASSERT(dt <= 300 + SLACK_MS);
	CU_ASSERT(strstr(kv_clerk_errmsg(c), "no leader reachable within 0.3 s") != NULL);
	CU_ASSERT(strstr(kv_clerk_errmsg(c), "refused") != NULL);
	CU_ASSERT_EQUAL(kv_clerk_session(c), 0);
	kv_clerk_close(c);
	close(fds[0]);
	close(fds[1]);
}

static void test_session_is_opened_once_and_seq_increases(void)
{
	struct fake f;
	struct fake_req log[FAKE_MAX_LOG];
	struct kv_result r;
	struct kv_clerk *c;
	int n, opens = 0, writes = 0;

	fake_start(&f, 1, NULL);
	c = open_clerk(&f);
	CU_ASSERT_EQUAL(kv_clerk_session(c), 0);
	CU_ASSERT_EQUAL(kv_clerk_get(c, "x", 1000, &r), KV_CLERK_APPLIED);
	kv_result_release(&r);
	CU_ASSERT_EQUAL(kv_clerk_session(c), 0); /* reads need no session */
	CU_ASSERT_EQUAL(kv_clerk_put(c, "a", "1", 1, 1000, NULL), KV_CLERK_APPLIED);
	CU_ASSERT_EQUAL(kv_clerk_append(c, "a", "2", 1, 1000, NULL), KV_CLERK_APPLIED);
	CU_ASSERT_EQUAL(kv_clerk_get(c, "a", 1000, &r), KV_CLERK_APPLIED);
	kv_result_release(&r);
	CU_ASSERT_EQUAL(kv_clerk_del(c, "a", 1000, NULL), KV_CLERK_APPLIED);
	CU_ASSERT_EQUAL(kv_clerk_session(c), FAKE_FIRST_SESSION);
	CU_ASSERT_EQUAL(kv_clerk_seq(c), 3);
	kv_clerk_close(c);
	n = fake_log(&f, log);
	fake_stop(&f);
	for (int i = 0; i < n; i++) {
		if (log[i].op == KV_OP_OPEN_SESSION) {
			opens++;
			CU_ASSERT_EQUAL(log[i].session, 0);
		} else if (log[i].op == KV_OP_GET) {
			CU_ASSERT_EQUAL(log[i].session, 0);
			CU_ASSERT_EQUAL(log[i].seq, 0);
		} else if (log[i].op == KV_OP_CLOSE_SESSION) {
			CU_ASSERT_EQUAL(log[i].session, FAKE_FIRST_SESSION);
			CU_ASSERT_EQUAL(i, n - 1);
		} else {
			writes++;
			CU_ASSERT_EQUAL(log[i].session, FAKE_FIRST_SESSION);
			CU_ASSERT_EQUAL(log[i].seq, (uint64_t)writes);
			CU_ASSERT(log[i].time_ms > 1600000000000ull); /* the realtime clock */
		}
	}
	CU_ASSERT_EQUAL(opens, 1);
	CU_ASSERT_EQUAL(writes, 3);
	CU_ASSERT_EQUAL(log[n - 1].op, KV_OP_CLOSE_SESSION);
}

static void test_oversized_value_and_bad_keys_are_refused_locally(void)
{
	struct fake f;
	struct fake_req log[FAKE_MAX_LOG];
	struct kv_result r;
	struct kv_clerk *c;
	char *big = calloc(1, (size_t)KV_VALUE_BYTES_LIMIT + 1);
	char *long_key = malloc(KV_MAX_KEY_BYTES + 2);
	struct kv_cmd open = {.op = KV_OP_OPEN_SESSION};
	struct kv_cmd settings = {.op = KV_OP_SETTINGS, .settings = {1, 1, 1}};
	struct kv_cmd rename = {
	        .op = KV_OP_RENAME, .key = "a", .key_len = 1, .key2 = "b/../c", .key2_len = 6};

	CU_ASSERT_FATAL(big != NULL && long_key != NULL);
	memset(long_key, 'x', KV_MAX_KEY_BYTES + 1);
	long_key[KV_MAX_KEY_BYTES + 1] = '\0';
	fake_start(&f, 1, NULL);
	c = open_clerk(&f);
	CU_ASSERT_EQUAL(kv_clerk_put(c, "k", big, (size_t)KV_VALUE_BYTES_LIMIT + 1, 1000, &r),
	                KV_CLERK_NOT_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_EFBIG);
	CU_ASSERT_EQUAL(kv_clerk_put(c, "a/../b", "v", 1, 1000, &r), KV_CLERK_NOT_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_EINVAL);
	CU_ASSERT_EQUAL(kv_clerk_get(c, "/abs", 1000, &r), KV_CLERK_NOT_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_EINVAL);
	CU_ASSERT_EQUAL(kv_clerk_del(c, long_key, 1000, &r), KV_CLERK_NOT_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_ENAMETOOLONG);
	CU_ASSERT_EQUAL(kv_clerk_do(c, &open, 1000, &r), KV_CLERK_NOT_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_EINVAL);
	CU_ASSERT_EQUAL(kv_clerk_do(c, &settings, 1000, &r), KV_CLERK_NOT_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_EINVAL);
	CU_ASSERT_EQUAL(kv_clerk_do(c, &rename, 1000, &r), KV_CLERK_NOT_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_EINVAL);
	CU_ASSERT(kv_clerk_errmsg(c)[0] != '\0');
	CU_ASSERT_EQUAL(fake_log(&f, log), 0); /* nothing reached the cluster */
	CU_ASSERT_EQUAL(f.accepted[0], 0);
	kv_clerk_close(c);
	fake_stop(&f);
	free(big);
	free(long_key);
}

static void test_bad_cluster_lists_are_refused_with_a_message(void)
{
	static const char *const bad[] = {
	        "",
	        "garbage",
	        "1=127.0.0.1",
	        "1=127.0.0.1:0",
	        "1=127.0.0.1:70000",
	        "1=127.0.0.1:7001,1=127.0.0.2:7002",
	        "1=127.0.0.1:7001,,2=127.0.0.2:7002",
	        "0=127.0.0.1:7001",
	        "1=localhost:7001",
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(err, 0, sizeof(err));
		CU_ASSERT_PTR_NULL(kv_clerk_open(bad[i], NULL, err, sizeof(err)));
		CU_ASSERT(err[0] != '\0');
	}
	CU_ASSERT_PTR_NULL(kv_clerk_open(NULL, NULL, err, sizeof(err)));
	CU_ASSERT(err[0] != '\0');
	CU_ASSERT_PTR_NULL(kv_clerk_open("bad", NULL, NULL, 0));
}

static void test_expired_session_is_reopened_and_the_write_sent_again(void)
{
	struct fake f;
	struct kv_result r;
	struct kv_clerk *c;

	fake_start(&f, 1, script_first_session_expired);
	c = open_clerk(&f);
	CU_ASSERT_EQUAL(kv_clerk_put(c, "k", "v", 1, 2000, &r), KV_CLERK_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_OK);
	kv_result_release(&r);
	CU_ASSERT_EQUAL(kv_clerk_session(c), FAKE_FIRST_SESSION + 1);
	CU_ASSERT_EQUAL(kv_clerk_seq(c), 1);
	kv_clerk_close(c);
	fake_stop(&f);
}

static void test_expired_session_after_an_unknown_attempt_is_unknown(void)
{
	struct fake f;
	struct kv_result r;
	struct kv_clerk *c;

	fake_start(&f, 1, script_unknown_then_expired);
	c = open_clerk(&f);
	CU_ASSERT_EQUAL(kv_clerk_put(c, "k", "v", 1, 2000, &r), KV_CLERK_UNKNOWN);
	CU_ASSERT_EQUAL(r.status, KV_ESESSION_EXPIRED);
	CU_ASSERT_EQUAL(kv_clerk_session(c), 0); /* the next write opens a new one */
	/* Later sessions find every put expired too: refused twice for sure, so not applied. */
	CU_ASSERT_EQUAL(kv_clerk_put(c, "k", "v", 1, 2000, &r), KV_CLERK_NOT_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_ESESSION_EXPIRED);
	CU_ASSERT_EQUAL(kv_clerk_session(c), 0);
	kv_clerk_close(c);
	fake_stop(&f);
}

static void test_operation_errors_are_applied_outcomes(void)
{
	struct fake f;
	struct kv_result r;
	struct kv_clerk *c;

	fake_start(&f, 1, script_put_exists);
	c = open_clerk(&f);
	CU_ASSERT_EQUAL(kv_clerk_put(c, "k", "v", 1, 1000, &r), KV_CLERK_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_EEXIST);
	kv_result_release(&r);
	CU_ASSERT_EQUAL(kv_clerk_del(c, "k", 1000, &r), KV_CLERK_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_ENOENT);
	kv_result_release(&r);
	CU_ASSERT_EQUAL(kv_clerk_get(c, "missing", 1000, &r), KV_CLERK_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_OK);
	CU_ASSERT(!r.exists);
	CU_ASSERT_EQUAL(r.value_len, 0);
	kv_result_release(&r);
	kv_clerk_close(c);
	fake_stop(&f);
}

static void test_bad_request_is_not_retried(void)
{
	struct fake f;
	struct fake_req log[FAKE_MAX_LOG];
	struct kv_result r;
	struct kv_clerk *c;

	fake_start(&f, 2, script_bad_request);
	c = open_clerk(&f);
	CU_ASSERT_EQUAL(kv_clerk_get(c, "k", 1000, &r), KV_CLERK_NOT_APPLIED);
	CU_ASSERT_EQUAL(r.status, KV_EINVAL);
	CU_ASSERT_EQUAL(fake_log(&f, log), 1);
	kv_clerk_close(c);
	fake_stop(&f);
}

static void test_shutting_down_node_is_left_for_the_next(void)
{
	struct fake f;
	struct fake_req log[FAKE_MAX_LOG];
	struct kv_clerk *c;
	int n;

	fake_start(&f, 2, script_node1_shutdown);
	c = open_clerk(&f);
	CU_ASSERT_EQUAL(kv_clerk_put(c, "k", "v", 1, 1000, NULL), KV_CLERK_APPLIED);
	n = fake_log(&f, log);
	CU_ASSERT(n >= 2 && log[0].node == 0 && log[n - 1].node == 1);
	kv_clerk_close(c);
	fake_stop(&f);
}

static void test_status_reads_one_node_record(void)
{
	struct fake f;
	struct kv_proto_node_status st;
	struct kv_clerk *c;

	fake_start(&f, 2, NULL);
	c = open_clerk(&f);
	CU_ASSERT_EQUAL(kv_clerk_node_count(c), 2);
	CU_ASSERT(kv_clerk_node(c, 1) != NULL && kv_clerk_node(c, 1)->port == f.port[1]);
	CU_ASSERT_PTR_NULL(kv_clerk_node(c, 2));
	CU_ASSERT_EQUAL(kv_clerk_status(c, 2, &st, 1000), 0);
	CU_ASSERT_EQUAL(st.id, 2);
	CU_ASSERT_EQUAL(st.commit, 41);
	CU_ASSERT_EQUAL(st.term, 7);
	CU_ASSERT_EQUAL(kv_clerk_status(c, 1, &st, 1000), 0);
	CU_ASSERT_EQUAL(st.role, RAFT_LEADER);
	CU_ASSERT_EQUAL(kv_clerk_status(c, 9, &st, 1000), -1);
	CU_ASSERT(strstr(kv_clerk_errmsg(c), "not in the cluster") != NULL);
	kv_clerk_close(c);
	fake_stop(&f);
}

static void test_status_of_a_silent_node_fails_by_the_deadline(void)
{
	struct fake f;
	struct kv_proto_node_status st;
	struct kv_clerk *c;
	uint64_t t0, dt;

	fake_start(&f, 1, NULL);
	c = open_clerk(&f);
	/* Stop the fake's thread answering: the listen backlog still accepts the connect. */
	CU_ASSERT(write(f.wake[1], "x", 1) == 1);
	pthread_join(f.thread, NULL);
	t0 = now_ms();
	CU_ASSERT_EQUAL(kv_clerk_status(c, 1, &st, 300), -1);
	dt = now_ms() - t0;
	CU_ASSERT(dt >= 290 && dt <= 300 + SLACK_MS);
	kv_clerk_close(c);
	close(f.lfd[0]);
	close(f.wake[0]);
	close(f.wake[1]);
	pthread_mutex_destroy(&f.mu);
}

static CU_TestInfo routing_tests[] = {
        {"leader_hint_redirects_to_the_leader", test_leader_hint_redirects_to_the_leader},
        {"node_closing_the_connection_makes_the_clerk_try_the_next",
         test_node_closing_the_connection_makes_the_clerk_try_the_next},
        {"not_applied_then_next_node_applies_with_the_same_seq",
         test_not_applied_then_next_node_applies_with_the_same_seq},
        {"shutting_down_node_is_left_for_the_next", test_shutting_down_node_is_left_for_the_next},
        {"bad_request_is_not_retried", test_bad_request_is_not_retried},
        {"status_reads_one_node_record", test_status_reads_one_node_record},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo outcome_tests[] = {
        {"unknown_outcome_is_retried_with_the_same_seq",
         test_unknown_outcome_is_retried_with_the_same_seq},
        {"silent_cluster_write_returns_not_applied_by_the_deadline",
         test_silent_cluster_write_returns_not_applied_by_the_deadline},
        {"silent_cluster_after_sending_a_write_is_unknown_by_the_deadline",
         test_silent_cluster_after_sending_a_write_is_unknown_by_the_deadline},
        {"unreachable_nodes_fail_fast_as_not_applied",
         test_unreachable_nodes_fail_fast_as_not_applied},
        {"status_of_a_silent_node_fails_by_the_deadline",
         test_status_of_a_silent_node_fails_by_the_deadline},
        {"operation_errors_are_applied_outcomes", test_operation_errors_are_applied_outcomes},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo session_tests[] = {
        {"session_is_opened_once_and_seq_increases", test_session_is_opened_once_and_seq_increases},
        {"expired_session_is_reopened_and_the_write_sent_again",
         test_expired_session_is_reopened_and_the_write_sent_again},
        {"expired_session_after_an_unknown_attempt_is_unknown",
         test_expired_session_after_an_unknown_attempt_is_unknown},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo input_tests[] = {
        {"oversized_value_and_bad_keys_are_refused_locally",
         test_oversized_value_and_bad_keys_are_refused_locally},
        {"bad_cluster_lists_are_refused_with_a_message",
         test_bad_cluster_lists_are_refused_with_a_message},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"clerk_routing", NULL, NULL, NULL, NULL, routing_tests},
        {"clerk_outcomes", NULL, NULL, NULL, NULL, outcome_tests},
        {"clerk_sessions", NULL, NULL, NULL, NULL, session_tests},
        {"clerk_input", NULL, NULL, NULL, NULL, input_tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	return cu_main(argc, argv, suites);
}
