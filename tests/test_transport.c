/* test_transport.c - the TCP transport over real loopback sockets: messages, limits, hostility. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "raft/codec.h"
#include "raft/crc32c.h"
#include "raft/le.h"
#include "raft/tls.h"
#include "raft/transport.h"
#include "tests/lib/certs.h"
#include "tests/lib/cu.h"
#include "tests/lib/samples.h"

#define MAX_GOT 64
#define LOG_BYTES 16384
#define WAIT_MS 3000u /* any one wait; a passing test waits far less */
#define SNAP_CHUNK_BYTES 100000u

/* --- a node under test: a transport and what it received ------------------------------------- */

struct got_msg {
	struct raft_msg m;
	struct raft_entry *entries; /* our references to the entry buffers */
	unsigned char *snap; /* a copy of the chunk */
};

struct got_app {
	uint32_t from;
	size_t len;
	unsigned char *buf;
};

struct node {
	struct raft_transport_config cfg;
	struct raft_transport *t;
	struct got_msg msgs[MAX_GOT];
	unsigned n_msgs;
	struct got_app apps[MAX_GOT];
	unsigned n_apps;
	char log[LOG_BYTES];
	size_t log_len;
	bool fill_fails;
	unsigned fills;
	struct bufferevent *client;
	char client_remote[64];
	bool client_tls;
	char client_cn[256];
	bool serve_clients;
	struct raft_tls *tls; /* the node's, made by node_start when use_tls */
};

static struct event_base *base;
static unsigned hello_timeout_ms; /* for the next cluster_config; 0: the default */
/* TLS (the tls suite): nodes start with certs' nodeN (or tls_cert_of[N]) and its ca as both
 * CAs, or with the files tls_files_of[N] when set. */
static bool use_tls;
static struct certs certs;
static const char *tls_cert_of[4];
static const struct raft_tls_files *tls_files_of[4];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs the loop until done(arg) or timeout_ms pass; a 2 ms tick keeps each turn short. */
static bool run_until(bool (*done)(void *), void *arg, unsigned timeout_ms)
{
	struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	struct timeval tv = {0, 2000};
	uint64_t deadline = now_ms() + timeout_ms;
	bool ok;

	CU_ASSERT_FATAL(tick != NULL);
	event_add(tick, &tv);
	while (!(ok = done(arg)) && now_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(tick);
	return ok;
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

static void run_for(unsigned ms)
{
	run_until(never, NULL, ms);
}

static void node_log(void *ctx, int level, const char *msg)
{
	struct node *n = ctx;
	size_t len = strlen(msg);

	(void)level;
	if (n->log_len + len + 2 > sizeof(n->log))
		n->log_len = 0; /* keep the recent lines only */
	memcpy(n->log + n->log_len, msg, len);
	n->log[n->log_len + len] = '\n';
	n->log_len += len + 1;
	n->log[n->log_len] = '\0';
	if (getenv("TRANSPORT_TEST_VERBOSE"))
		fprintf(stderr, "[node %u] %s\n", (unsigned)n->cfg.self_id, msg);
}

static void node_recv_msg(void *ctx, const struct raft_msg *m)
{
	struct node *n = ctx;
	struct got_msg *g;

	CU_ASSERT_FATAL(n->n_msgs < MAX_GOT);
	g = &n->msgs[n->n_msgs++];
	g->m = *m;
	g->entries = NULL;
	g->snap = NULL;
	if (m->type == RAFT_MSG_APPEND && m->u.append.n_entries > 0) {
		/* as the core does: keep the entries, referencing their buffers */
		g->entries = calloc(m->u.append.n_entries, sizeof(*g->entries));
		CU_ASSERT_FATAL(g->entries != NULL);
		for (uint32_t i = 0; i < m->u.append.n_entries; i++) {
			g->entries[i] = m->u.append.entries[i];
			raft_buf_ref(g->entries[i].data);
		}
	}
	g->m.u.append.entries = NULL;
	if (m->type == RAFT_MSG_SNAPSHOT) {
		g->snap = malloc(m->u.snapshot.len + 1u);
		CU_ASSERT_FATAL(g->snap != NULL);
		memcpy(g->snap, m->u.snapshot.data, m->u.snapshot.len);
		g->m.u.snapshot.data = NULL;
	}
}

static void node_recv_app(void *ctx, uint32_t from, const void *buf, size_t len)
{
	struct node *n = ctx;
	struct got_app *a;

	CU_ASSERT_FATAL(n->n_apps < MAX_GOT);
	a = &n->apps[n->n_apps++];
	a->from = from;
	a->len = len;
	a->buf = malloc(len + 1u);
	CU_ASSERT_FATAL(a->buf != NULL);
	memcpy(a->buf, buf, len);
}

static unsigned char snap_byte(uint64_t index, uint64_t pos)
{
	return (unsigned char)(index * 31u + pos * 7u + (pos >> 8));
}

static int node_fill_snapshot(void *ctx, uint64_t index, uint64_t offset, void *buf, size_t len)
{
	struct node *n = ctx;
	unsigned char *p = buf;

	n->fills++;
	if (n->fill_fails)
		return -1;
	for (size_t i = 0; i < len; i++)
		p[i] = snap_byte(index, offset + i);
	return 0;
}

static void node_on_client(void *ctx, struct bufferevent *bev,
                           const struct raft_transport_client *who)
{
	struct node *n = ctx;

	CU_ASSERT(n->client == NULL);
	n->client = bev;
	snprintf(n->client_remote, sizeof(n->client_remote), "%s", who->remote);
	n->client_tls = who->tls;
	snprintf(n->client_cn, sizeof(n->client_cn), "%s", who->cn ? who->cn : "");
}

static void node_forget(struct node *n)
{
	for (unsigned i = 0; i < n->n_msgs; i++) {
		struct got_msg *g = &n->msgs[i];

		if (g->entries) {
			for (uint32_t j = 0; j < g->m.u.append.n_entries; j++)
				raft_buf_unref(g->entries[j].data);
			free(g->entries);
		}
		free(g->snap);
	}
	n->n_msgs = 0;
	for (unsigned i = 0; i < n->n_apps; i++)
		free(n->apps[i].buf);
	n->n_apps = 0;
}

/* The node's TLS files: tls_files_of[id], else the certificate tls_cert_of[id] or nodeID. */
static void node_tls_files(const struct node *n, struct raft_tls_files *f)
{
	uint32_t id = n->cfg.self_id;
	char name[16], p[CERTS_PATH_BYTES];

	if (id < 4 && tls_files_of[id]) {
		*f = *tls_files_of[id];
		return;
	}
	memset(f, 0, sizeof(*f));
	snprintf(name, sizeof(name), "node%u", (unsigned)id);
	snprintf(f->cert, sizeof(f->cert), "%s",
	         certs_pem(&certs, id < 4 && tls_cert_of[id] ? tls_cert_of[id] : name, p));
	snprintf(f->key, sizeof(f->key), "%s",
	         certs_key(&certs, id < 4 && tls_cert_of[id] ? tls_cert_of[id] : name, p));
	snprintf(f->ca, sizeof(f->ca), "%s", certs_pem(&certs, "ca", p));
	snprintf(f->client_ca, sizeof(f->client_ca), "%s", certs_pem(&certs, "ca", p));
}

static int node_start(struct node *n)
{
	struct raft_transport_cbs cbs = {
	        .ctx = n,
	        .recv_msg = node_recv_msg,
	        .recv_app = node_recv_app,
	        .fill_snapshot = node_fill_snapshot,
	        .on_client = n->serve_clients ? node_on_client : NULL,
	        .log = node_log,
	};
	char err[RAFT_TRANSPORT_ERRMSG_BYTES + 2 * RAFT_TLS_PATH_BYTES] = "";
	int rc;

	if (use_tls && !n->tls) {
		struct raft_tls_files f;

		node_tls_files(n, &f);
		CU_ASSERT_FATAL(raft_tls_new(RAFT_TLS_NODE, &f, &n->tls, err, sizeof(err)) == 0);
	}
	n->cfg.tls = n->tls;
	rc = raft_transport_new(base, &n->cfg, &cbs, &n->t, err, sizeof(err));
	if (rc != RAFT_OK && rc != RAFT_EIO)
		fprintf(stderr, "raft_transport_new: %s\n", err);
	if (rc != RAFT_OK) {
		raft_tls_free(n->tls);
		n->tls = NULL;
	}
	return rc;
}

static void node_stop(struct node *n)
{
	raft_transport_free(n->t);
	n->t = NULL;
	raft_tls_free(n->tls);
	n->tls = NULL;
	if (n->client)
		bufferevent_free(n->client);
	n->client = NULL;
	node_forget(n);
}

static void node_stats(struct node *n, struct raft_transport_stats *st)
{
	raft_transport_stats(n->t, st);
}

static const struct raft_transport_peer_stats *peer_stats(const struct raft_transport_stats *st,
                                                          uint32_t id)
{
	for (unsigned i = 0; i < st->n_peers; i++)
		if (st->peers[i].id == id)
			return &st->peers[i];
	CU_FAIL_FATAL("no such peer in the stats");
	return NULL;
}

/* --- ports and clusters ----------------------------------------------------------------------- */

/* A port that was free on host a moment ago (the kernel's choice, so parallel tests differ). */
static uint16_t pick_port(const char *host)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port;

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(inet_pton(AF_INET, host, &sa.sin_addr) == 1);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static const char *const hosts[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3"};

/* Configures nodes[0..n) with ids 1..n on 127.0.0.1.. and fresh ports. */
static void cluster_config(struct node *nodes, unsigned n)
{
	struct raft_transport_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.n_peers = n;
	for (unsigned i = 0; i < n; i++) {
		cfg.peers[i].id = i + 1;
		snprintf(cfg.peers[i].host, sizeof(cfg.peers[i].host), "%s", hosts[i % 3]);
		cfg.peers[i].port = pick_port(hosts[i % 3]);
	}
	cfg.cluster_id = raft_transport_cluster_id(cfg.peers, n);
	cfg.hello_timeout_ms = hello_timeout_ms;
	for (unsigned i = 0; i < n; i++) {
		memset(&nodes[i], 0, sizeof(nodes[i]));
		nodes[i].cfg = cfg;
		nodes[i].cfg.self_id = i + 1;
	}
}

/* Starts the first n_started of n configured nodes, picking new ports while one is taken. */
static void cluster_start(struct node *nodes, unsigned n, unsigned n_started, bool clients)
{
	for (int attempt = 0; attempt < 10; attempt++) {
		unsigned i;
		int rc = RAFT_OK;

		cluster_config(nodes, n);
		for (i = 0; i < n_started; i++) {
			nodes[i].serve_clients = clients;
			rc = node_start(&nodes[i]);
			if (rc != RAFT_OK)
				break;
		}
		if (rc == RAFT_OK)
			return;
		CU_ASSERT_FATAL(rc == RAFT_EIO);
		while (i-- > 0)
			node_stop(&nodes[i]);
	}
	CU_FAIL_FATAL("no free ports");
}

static void cluster_stop(struct node *nodes, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		node_stop(&nodes[i]);
	run_for(5); /* let the closes be seen */
}

struct link_wait {
	struct node *nodes;
	unsigned n;
};

/* Every started node has its outgoing connection to every other started node up. */
static bool all_connected(void *arg)
{
	struct link_wait *w = arg;

	for (unsigned i = 0; i < w->n; i++) {
		struct raft_transport_stats st;

		if (!w->nodes[i].t)
			continue;
		node_stats(&w->nodes[i], &st);
		for (unsigned j = 0; j < st.n_peers; j++) {
			struct node *peer = &w->nodes[st.peers[j].id - 1];

			if (peer->t && (!st.peers[j].connected || !st.peers[j].accepted))
				return false;
		}
	}
	return true;
}

static void wait_connected(struct node *nodes, unsigned n)
{
	struct link_wait w = {nodes, n};

	CU_ASSERT_FATAL(run_until(all_connected, &w, WAIT_MS));
}

struct count_wait {
	const unsigned *count;
	unsigned want;
};

static bool count_reached(void *arg)
{
	struct count_wait *w = arg;

	return *w->count >= w->want;
}

static bool wait_msgs(struct node *n, unsigned want)
{
	struct count_wait w = {&n->n_msgs, want};

	return run_until(count_reached, &w, WAIT_MS);
}

static bool wait_apps(struct node *n, unsigned want)
{
	struct count_wait w = {&n->n_apps, want};

	return run_until(count_reached, &w, WAIT_MS);
}

/* --- sample messages -------------------------------------------------------------------------- */

/* The sample message of type from -> to; a snapshot chunk asks the transport to fill its
 * SNAP_CHUNK_BYTES bytes (snap_byte), as the core does. */
static void sample_msg(int type, uint32_t from, uint32_t to, struct raft_msg *m,
                       struct raft_entry *entries)
{
	samples_msg(type, from, to, m, entries);
	if (type == RAFT_MSG_SNAPSHOT)
		m->u.snapshot.len = SNAP_CHUNK_BYTES;
}

/* Whether what node received (g) is what was sent (m), field by field. */
static void check_same(const struct got_msg *g, const struct raft_msg *m)
{
	const struct raft_msg *r = &g->m;

	CU_ASSERT_EQUAL(r->type, m->type);
	CU_ASSERT_EQUAL(r->from, m->from);
	CU_ASSERT_EQUAL(r->to, m->to);
	CU_ASSERT_EQUAL(r->term, m->term);
	switch (m->type) {
	case RAFT_MSG_VOTE:
		CU_ASSERT(memcmp(&r->u.vote, &m->u.vote, sizeof(m->u.vote)) == 0);
		break;
	case RAFT_MSG_VOTE_RESP:
		CU_ASSERT(r->u.vote_resp.pre_vote == m->u.vote_resp.pre_vote &&
		          r->u.vote_resp.granted == m->u.vote_resp.granted);
		break;
	case RAFT_MSG_APPEND:
		CU_ASSERT_EQUAL(r->u.append.prev_index, m->u.append.prev_index);
		CU_ASSERT_EQUAL(r->u.append.prev_term, m->u.append.prev_term);
		CU_ASSERT_EQUAL(r->u.append.commit, m->u.append.commit);
		CU_ASSERT_EQUAL_FATAL(r->u.append.n_entries, m->u.append.n_entries);
		for (uint32_t i = 0; i < m->u.append.n_entries; i++) {
			const struct raft_entry *a = &g->entries[i], *b = &m->u.append.entries[i];

			CU_ASSERT(a->term == b->term && a->index == b->index && a->type == b->type);
			CU_ASSERT_EQUAL_FATAL(a->len, b->len);
			if (b->len)
				CU_ASSERT(memcmp(a->data, b->data, b->len) == 0);
		}
		break;
	case RAFT_MSG_APPEND_RESP:
		CU_ASSERT(r->u.append_resp.success == m->u.append_resp.success &&
		          r->u.append_resp.index == m->u.append_resp.index &&
		          r->u.append_resp.hint_index == m->u.append_resp.hint_index &&
		          r->u.append_resp.hint_term == m->u.append_resp.hint_term);
		break;
	case RAFT_MSG_HEARTBEAT:
		CU_ASSERT(r->u.heartbeat.commit == m->u.heartbeat.commit &&
		          r->u.heartbeat.read_seq == m->u.heartbeat.read_seq);
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		CU_ASSERT_EQUAL(r->u.heartbeat_resp.read_seq, m->u.heartbeat_resp.read_seq);
		break;
	case RAFT_MSG_SNAPSHOT: {
		const struct raft_msg_snapshot *a = &r->u.snapshot, *b = &m->u.snapshot;

		CU_ASSERT(a->meta.index == b->meta.index && a->meta.term == b->meta.term &&
		          a->meta.size == b->meta.size && a->meta.conf.n == b->meta.conf.n);
		CU_ASSERT(a->offset == b->offset && a->len == b->len && a->last == b->last);
		CU_ASSERT_FATAL(g->snap != NULL);
		for (uint32_t i = 0; i < a->len; i++)
			if (g->snap[i] !=
			    (b->data ? ((const unsigned char *)b->data)[i]
			             : snap_byte(b->meta.index, b->offset + i))) {
				CU_FAIL("snapshot chunk bytes differ");
				break;
			}
		break;
	}
	case RAFT_MSG_SNAPSHOT_RESP:
		CU_ASSERT(r->u.snapshot_resp.index == m->u.snapshot_resp.index &&
		          r->u.snapshot_resp.next_offset == m->u.snapshot_resp.next_offset &&
		          r->u.snapshot_resp.done == m->u.snapshot_resp.done &&
		          r->u.snapshot_resp.reject == m->u.snapshot_resp.reject);
		break;
	case RAFT_MSG_READ_INDEX:
		CU_ASSERT_EQUAL(r->u.read_index.ctx, m->u.read_index.ctx);
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		CU_ASSERT(r->u.read_index_resp.ctx == m->u.read_index_resp.ctx &&
		          r->u.read_index_resp.index == m->u.read_index_resp.index &&
		          r->u.read_index_resp.ok == m->u.read_index_resp.ok);
		break;
	default:
		break;
	}
}

/* Sends one message of every type from -> to and checks each arrives intact, in order. */
static void exchange_every_type(struct node *nodes, uint32_t from, uint32_t to)
{
	struct node *src = &nodes[from - 1], *dst = &nodes[to - 1];
	unsigned before = dst->n_msgs;

	for (int type = RAFT_MSG_VOTE; type < RAFT_MSG_TYPE_COUNT; type++) {
		struct raft_msg m;
		struct raft_entry entries[SAMPLES_MSG_ENTRIES];

		sample_msg(type, from, to, &m, entries);
		CU_ASSERT_EQUAL(raft_transport_send(src->t, &m), RAFT_OK);
	}
	CU_ASSERT_FATAL(wait_msgs(dst, before + RAFT_MSG_TYPE_COUNT - 1));
	for (int type = RAFT_MSG_VOTE; type < RAFT_MSG_TYPE_COUNT; type++) {
		struct raft_msg m;
		struct raft_entry entries[SAMPLES_MSG_ENTRIES];

		sample_msg(type, from, to, &m, entries);
		check_same(&dst->msgs[before + (unsigned)type - 1], &m);
	}
}

/* --- raw sockets: a stranger, or a peer speaking the protocol by hand ------------------------- */

/* A blocking socket from host (port 0) connected to node n's address; *src gets its address. */
static int raw_connect(const char *host, const struct node *n, char *src, size_t src_len)
{
	const struct raft_transport_peer *self = NULL;
	struct sockaddr_in sa = {.sin_family = AF_INET}, me = {.sin_family = AF_INET};
	socklen_t len = sizeof(me);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char ip[INET_ADDRSTRLEN];

	for (unsigned i = 0; i < n->cfg.n_peers; i++)
		if (n->cfg.peers[i].id == n->cfg.self_id)
			self = &n->cfg.peers[i];
	CU_ASSERT_FATAL(fd >= 0 && self != NULL);
	inet_pton(AF_INET, host, &me.sin_addr);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&me, sizeof(me)) == 0);
	inet_pton(AF_INET, self->host, &sa.sin_addr);
	sa.sin_port = htons(self->port);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&me, &len) == 0);
	inet_ntop(AF_INET, &me.sin_addr, ip, sizeof(ip));
	snprintf(src, src_len, "%s:%u", ip, (unsigned)ntohs(me.sin_port));
	return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
	CU_ASSERT_FATAL(send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len);
}

/* The other end closed (EOF or reset). */
static bool raw_closed(void *arg)
{
	int fd = *(int *)arg;
	char b[256];
	ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);

	return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* A transport frame of kind around len payload bytes, CRC sealed (or not, when bad_crc). */
static size_t make_frame(unsigned char *out, unsigned kind, const void *payload, uint32_t len,
                         bool bad_crc)
{
	memcpy(out + RAFT_TRANSPORT_FRAME_HEADER_BYTES, payload, len);
	raft_transport_frame_header(out, kind, payload, len);
	if (bad_crc)
		out[8] ^= 1u;
	return RAFT_TRANSPORT_FRAME_HEADER_BYTES + len;
}

/* A Raft message in its transport frame. */
static size_t make_raft_frame(unsigned char *out, size_t cap, const struct raft_msg *m)
{
	struct raft_codec_buf b;
	size_t len;

	raft_codec_buf_init(&b);
	CU_ASSERT_FATAL(raft_codec_encode_msg(&b, m) == RAFT_OK);
	CU_ASSERT_FATAL(b.len + RAFT_TRANSPORT_FRAME_HEADER_BYTES <= cap);
	len = make_frame(out, 1, b.data, (uint32_t)b.len, false);
	raft_codec_buf_free(&b);
	return len;
}

/* --- tests: message exchange ------------------------------------------------------------------ */

static void test_two_nodes_exchange_every_message_type_both_ways(void)
{
	struct node nodes[2];

	cluster_start(nodes, 2, 2, false);
	wait_connected(nodes, 2);
	exchange_every_type(nodes, 1, 2);
	exchange_every_type(nodes, 2, 1);
	CU_ASSERT_EQUAL(nodes[0].fills, 1); /* the snapshot chunk was read at send time */
	CU_ASSERT_EQUAL(nodes[1].fills, 1);
	cluster_stop(nodes, 2);
}

static void test_snapshot_chunk_with_data_is_sent_as_given(void)
{
	struct node nodes[2];
	struct raft_msg m;
	unsigned char chunk[300];

	cluster_start(nodes, 2, 2, false);
	wait_connected(nodes, 2);
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (unsigned char)(i * 13u);
	sample_msg(RAFT_MSG_SNAPSHOT, 1, 2, &m, NULL);
	m.u.snapshot.len = sizeof(chunk);
	m.u.snapshot.data = chunk;
	CU_ASSERT_EQUAL(raft_transport_send(nodes[0].t, &m), RAFT_OK);
	CU_ASSERT_FATAL(wait_msgs(&nodes[1], 1));
	check_same(&nodes[1].msgs[0], &m);
	CU_ASSERT_EQUAL(nodes[0].fills, 0);
	cluster_stop(nodes, 2);
}

static void test_three_nodes_exchange_messages_and_app_frames_between_every_pair(void)
{
	struct node nodes[3];
	static unsigned char big[1u << 20];
	unsigned app_before[3] = {0, 0, 0};

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i ^ (i >> 9));
	cluster_start(nodes, 3, 3, false);
	wait_connected(nodes, 3);
	for (uint32_t from = 1; from <= 3; from++)
		for (uint32_t to = 1; to <= 3; to++)
			if (from != to)
				exchange_every_type(nodes, from, to);
	for (uint32_t from = 1; from <= 3; from++) {
		for (uint32_t to = 1; to <= 3; to++) {
			char text[32];

			if (from == to)
				continue;
			snprintf(text, sizeof(text), "fwd %u->%u", (unsigned)from, (unsigned)to);
			CU_ASSERT_EQUAL(
			        raft_transport_send_app(nodes[from - 1].t, to, text, strlen(text)),
			        RAFT_OK);
			CU_ASSERT_EQUAL(raft_transport_send_app(nodes[from - 1].t, to, NULL, 0),
			                RAFT_OK);
			CU_ASSERT_EQUAL(
			        raft_transport_send_app(nodes[from - 1].t, to, big, sizeof(big)),
			        RAFT_OK);
			app_before[to - 1] += 3;
		}
	}
	for (unsigned i = 0; i < 3; i++) {
		CU_ASSERT_FATAL(wait_apps(&nodes[i], app_before[i]));
		for (uint32_t from = 1; from <= 3; from++) {
			/* frames from one sender arrive in order; senders interleave */
			struct got_app *seq[3];
			unsigned k = 0;
			char text[32];

			if (from == i + 1)
				continue;
			for (unsigned j = 0; j < nodes[i].n_apps && k < 3; j++)
				if (nodes[i].apps[j].from == from)
					seq[k++] = &nodes[i].apps[j];
			CU_ASSERT_EQUAL_FATAL(k, 3);
			snprintf(text, sizeof(text), "fwd %u->%u", (unsigned)from, i + 1);
			CU_ASSERT(seq[0]->len == strlen(text) &&
			          memcmp(seq[0]->buf, text, seq[0]->len) == 0);
			CU_ASSERT(seq[1]->len == 0);
			CU_ASSERT(seq[2]->len == sizeof(big) &&
			          memcmp(seq[2]->buf, big, sizeof(big)) == 0);
		}
	}
	cluster_stop(nodes, 3);
}

static bool accepted_one(void *arg)
{
	int lfd = *(int *)arg;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK);

	if (fd < 0)
		return false;
	*(int *)arg = fd;
	return true;
}

static bool raw_has_bytes(void *arg)
{
	int fd = *(int *)arg;
	unsigned char b[RAFT_TRANSPORT_HELLO_BYTES];

	return recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT) == (ssize_t)sizeof(b);
}

/* Node 2 (127.0.0.2, a transport) dials a plain listening socket standing for node 1
 * (127.0.0.1): returns the accepted socket (nonblocking), whose hello is read into hello. */
static int raw_peer_of_node2(struct node nodes[2], int *lfd_out,
                             unsigned char hello[RAFT_TRANSPORT_HELLO_BYTES])
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int lfd, fd;

	cluster_config(nodes, 2);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(lfd >= 0);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_FATAL(listen(lfd, 4) == 0);
	CU_ASSERT_FATAL(getsockname(lfd, (struct sockaddr *)&sa, &len) == 0);
	nodes[0].cfg.peers[0].port = ntohs(sa.sin_port);
	nodes[1].cfg.peers[0].port = ntohs(sa.sin_port);
	CU_ASSERT_FATAL(node_start(&nodes[1]) == RAFT_OK);
	fd = lfd;
	CU_ASSERT_FATAL(run_until(accepted_one, &fd, WAIT_MS));
	CU_ASSERT_FATAL(run_until(raw_has_bytes, &fd, WAIT_MS));
	CU_ASSERT_FATAL(recv(fd, hello, RAFT_TRANSPORT_HELLO_BYTES, 0) ==
	                (ssize_t)RAFT_TRANSPORT_HELLO_BYTES);
	*lfd_out = lfd;
	return fd;
}

static void test_peer_connections_come_from_the_nodes_own_address_with_a_hello(void)
{
	struct node nodes[2];
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	unsigned char hello[RAFT_TRANSPORT_HELLO_BYTES], want[RAFT_TRANSPORT_HELLO_BYTES];
	int lfd, fd;

	fd = raw_peer_of_node2(nodes, &lfd, hello);
	CU_ASSERT_FATAL(getpeername(fd, (struct sockaddr *)&sa, &len) == 0);
	CU_ASSERT_EQUAL(ntohl(sa.sin_addr.s_addr), 0x7f000002u); /* 127.0.0.2 */
	raft_transport_hello_encode(want, RAFT_TRANSPORT_KIND_PEER, 2, nodes[1].cfg.cluster_id);
	CU_ASSERT(memcmp(hello, want, sizeof(want)) == 0);
	CU_ASSERT(memcmp(hello, "RFTP", 4) == 0);
	close(fd);
	close(lfd);
	node_stop(&nodes[1]);
}

struct send_later {
	struct raft_transport *t;
	size_t len;
	int rc;
};

static void send_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct send_later *sl = arg;
	static unsigned char payload[256];

	(void)fd;
	(void)what;
	memset(payload, 0x5a, sizeof(payload));
	sl->rc = raft_transport_send_app(sl->t, 1, payload, sl->len);
}

/* Queues an application frame of len bytes from a callback and runs one loop turn: true when
 * the whole frame is on the peer's socket when that turn ends. */
static bool frame_leaves_in_the_same_turn(struct raft_transport *t, int fd, size_t len)
{
	struct send_later sl = {t, len, -1};
	unsigned char got[RAFT_TRANSPORT_FRAME_HEADER_BYTES + 256];
	size_t want = RAFT_TRANSPORT_FRAME_HEADER_BYTES + len;
	ssize_t n;

	CU_ASSERT_FATAL(event_base_once(base, -1, EV_TIMEOUT, send_later_cb, &sl, NULL) == 0);
	event_base_loop(base, EVLOOP_ONCE);
	CU_ASSERT_EQUAL(sl.rc, RAFT_OK);
	n = recv(fd, got, want, MSG_DONTWAIT);
	if (n != (ssize_t)want)
		return false;
	CU_ASSERT_EQUAL(raft_le_get32(got), len);
	CU_ASSERT_EQUAL(got[RAFT_TRANSPORT_FRAME_HEADER_BYTES], 0x5a);
	return true;
}

struct drain {
	int fd;
	size_t left; /* bytes still to read */
};

static bool drained(void *arg)
{
	struct drain *d = arg;
	static unsigned char sink[1 << 16];
	ssize_t n;

	while (d->left > 0 && (n = recv(d->fd, sink, sizeof(sink), MSG_DONTWAIT)) > 0)
		d->left -= (size_t)n < d->left ? (size_t)n : d->left;
	return d->left == 0;
}

/*
 * A frame queued during a loop turn is written at the end of that turn (raft/transport.h,
 * writing): not one turn later through the bufferevent's write event. A backlog the socket does
 * not take at once still goes out whole, through the write event, and afterwards frames leave
 * at the end of their turn again.
 */
static void test_frames_leave_at_the_end_of_the_turn_that_queued_them(void)
{
	struct node nodes[2] = {0};
	static unsigned char big[1u << 20];
	unsigned char hello[RAFT_TRANSPORT_HELLO_BYTES];
	struct drain drain;
	int lfd, fd;

	fd = raw_peer_of_node2(nodes, &lfd, hello);
	CU_ASSERT(frame_leaves_in_the_same_turn(nodes[1].t, fd, 10));
	CU_ASSERT(frame_leaves_in_the_same_turn(nodes[1].t, fd, 200));
	/* 16 MiB nobody reads yet: far more than the socket buffers take */
	for (int i = 0; i < 16; i++)
		CU_ASSERT_EQUAL(raft_transport_send_app(nodes[1].t, 1, big, sizeof(big)), RAFT_OK);
	run_for(20);
	drain.fd = fd;
	drain.left = 16 * (RAFT_TRANSPORT_FRAME_HEADER_BYTES + sizeof(big));
	CU_ASSERT(run_until(drained, &drain, 10 * WAIT_MS));
	CU_ASSERT_EQUAL(drain.left, 0);
	run_for(5); /* the write event sees the queue empty */
	CU_ASSERT(frame_leaves_in_the_same_turn(nodes[1].t, fd, 10));
	close(fd);
	close(lfd);
	node_stop(&nodes[1]);
}

/* --- tests: reconnection and limits ----------------------------------------------------------- */

static bool link_down_seen(void *arg)
{
	struct node *n = arg;
	struct raft_transport_stats st;

	node_stats(n, &st);
	return !st.peers[0].connected && !st.peers[0].accepted;
}

static void test_a_restarted_peer_is_reconnected_and_served_again(void)
{
	struct node nodes[2];
	struct raft_transport_stats st;
	struct raft_msg m;
	uint64_t t0;

	cluster_start(nodes, 2, 2, false);
	wait_connected(nodes, 2);
	exchange_every_type(nodes, 1, 2);
	node_stop(&nodes[1]);
	CU_ASSERT_FATAL(run_until(link_down_seen, &nodes[0], WAIT_MS));

	/* while node 2 is away, node 1's messages to it are dropped, not queued without bound */
	run_for(20);
	sample_msg(RAFT_MSG_HEARTBEAT, 1, 2, &m, NULL);
	for (int i = 0; i < 20; i++)
		raft_transport_send(nodes[0].t, &m);
	node_stats(&nodes[0], &st);
	CU_ASSERT(peer_stats(&st, 2)->dropped_not_connected + peer_stats(&st, 2)->msgs_sent >= 20);

	t0 = now_ms();
	CU_ASSERT_FATAL(node_start(&nodes[1]) == RAFT_OK);
	wait_connected(nodes, 2);
	CU_ASSERT(now_ms() - t0 < 1000); /* the backoff was still short */
	exchange_every_type(nodes, 1, 2);
	exchange_every_type(nodes, 2, 1);
	node_stats(&nodes[0], &st);
	CU_ASSERT(peer_stats(&st, 2)->connects >= 2);
	CU_ASSERT(strstr(nodes[0].log, "lost") != NULL);
	cluster_stop(nodes, 2);
}

static bool peer2_connected(void *arg)
{
	struct node *n = arg;
	struct raft_transport_stats st;

	node_stats(n, &st);
	return st.peers[0].connected;
}

static void test_messages_over_the_queue_limit_are_dropped_and_counted(void)
{
	struct node nodes[2] = {0};
	struct raft_transport_stats st;
	static unsigned char frame[1000], huge[64u << 10];
	unsigned ok = 0, busy = 0;

	/* node 2 is never started: its port is a listening socket that nobody reads */
	for (int attempt = 0; attempt < 10 && !nodes[0].t; attempt++) {
		cluster_config(nodes, 2);
		nodes[0].cfg.max_queue_bytes = 4096;
		node_start(&nodes[0]);
	}
	CU_ASSERT_FATAL(nodes[0].t != NULL);
	{
		struct sockaddr_in sa = {.sin_family = AF_INET};
		int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		inet_pton(AF_INET, nodes[1].cfg.peers[1].host, &sa.sin_addr);
		sa.sin_port = htons(nodes[1].cfg.peers[1].port);
		CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
		CU_ASSERT_FATAL(listen(lfd, 4) == 0);
		CU_ASSERT_FATAL(run_until(peer2_connected, &nodes[0], WAIT_MS));

		/* one loop turn: nothing is written meanwhile, so the queue only grows */
		for (int i = 0; i < 100; i++) {
			int rc = raft_transport_send_app(nodes[0].t, 2, frame, sizeof(frame));

			ok += rc == RAFT_OK;
			busy += rc == RAFT_EBUSY;
		}
		CU_ASSERT(ok >= 3 && ok <= 5);
		CU_ASSERT_EQUAL(ok + busy, 100);
		CU_ASSERT(strstr(raft_transport_errmsg(nodes[0].t), "full") != NULL);
		node_stats(&nodes[0], &st);
		CU_ASSERT_EQUAL(peer_stats(&st, 2)->dropped_queue_full, busy);
		CU_ASSERT_EQUAL(peer_stats(&st, 2)->apps_sent, ok);
		CU_ASSERT(peer_stats(&st, 2)->queued_bytes <= 4096 + 0u);

		/* once the queue drains (the kernel takes it), a message bigger than the whole
		 * limit still goes out alone */
		run_for(30);
		node_stats(&nodes[0], &st);
		CU_ASSERT_EQUAL_FATAL(peer_stats(&st, 2)->queued_bytes, 0);
		CU_ASSERT_EQUAL(raft_transport_send_app(nodes[0].t, 2, huge, sizeof(huge)),
		                RAFT_OK);
		CU_ASSERT_EQUAL(raft_transport_send_app(nodes[0].t, 2, frame, 10), RAFT_EBUSY);
		close(lfd);
	}
	node_stop(&nodes[0]);
	run_for(5);
}

static void test_failed_snapshot_read_drops_the_chunk(void)
{
	struct node nodes[2];
	struct raft_transport_stats st;
	struct raft_msg m;

	cluster_start(nodes, 2, 2, false);
	wait_connected(nodes, 2);
	nodes[0].fill_fails = true;
	sample_msg(RAFT_MSG_SNAPSHOT, 1, 2, &m, NULL);
	CU_ASSERT_EQUAL(raft_transport_send(nodes[0].t, &m), RAFT_EIO);
	node_stats(&nodes[0], &st);
	CU_ASSERT_EQUAL(st.dropped_snapshot_fill, 1);
	CU_ASSERT_EQUAL(peer_stats(&st, 2)->msgs_sent, 0);
	/* the link is fine: the next message goes through */
	nodes[0].fill_fails = false;
	CU_ASSERT_EQUAL(raft_transport_send(nodes[0].t, &m), RAFT_OK);
	CU_ASSERT_FATAL(wait_msgs(&nodes[1], 1));
	check_same(&nodes[1].msgs[0], &m);
	cluster_stop(nodes, 2);
}

static void test_send_refuses_unknown_own_and_forged_addresses(void)
{
	struct node nodes[2];
	struct raft_msg m;

	cluster_start(nodes, 2, 2, false);
	sample_msg(RAFT_MSG_HEARTBEAT, 1, 7, &m, NULL);
	CU_ASSERT_EQUAL(raft_transport_send(nodes[0].t, &m), RAFT_EINVAL);
	CU_ASSERT(strstr(raft_transport_errmsg(nodes[0].t), "no peer 7") != NULL);
	m.to = 1;
	CU_ASSERT_EQUAL(raft_transport_send(nodes[0].t, &m), RAFT_EINVAL);
	m.to = 2;
	m.from = 3; /* not ours to send */
	CU_ASSERT_EQUAL(raft_transport_send(nodes[0].t, &m), RAFT_EINVAL);
	m.from = 1;
	CU_ASSERT_EQUAL(raft_transport_send_app(nodes[0].t, 1, "x", 1), RAFT_EINVAL);
	CU_ASSERT_EQUAL(raft_transport_send_app(nodes[0].t, 0, "x", 1), RAFT_EINVAL);
	m.type = 0; /* an impossible message: the encoder refuses it */
	m.to = 2;
	CU_ASSERT_NOT_EQUAL(raft_transport_send(nodes[0].t, &m), RAFT_OK);
	cluster_stop(nodes, 2);
}

static unsigned fault_countdown;

static bool fail_nth(void *ctx)
{
	(void)ctx;
	return fault_countdown > 0 && --fault_countdown == 0;
}

/* Fault sweep: fail the Nth allocation of the encoder for N = 1, 2, ... until none fails. */
static void test_encoder_allocation_failures_drop_the_message_cleanly(void)
{
	struct node nodes[2];
	unsigned sent = 0;

	cluster_start(nodes, 2, 2, false);
	wait_connected(nodes, 2);
	for (unsigned n = 1; n < 1000; n++) {
		struct raft_msg m;
		struct raft_entry entries[SAMPLES_MSG_ENTRIES];
		struct raft_transport_stats st;
		int rc;

		sample_msg(RAFT_MSG_APPEND, 1, 2, &m, entries);
		fault_countdown = n;
		raft_codec_set_alloc_fault(fail_nth, NULL);
		rc = raft_transport_send(nodes[0].t, &m);
		raft_codec_set_alloc_fault(NULL, NULL);
		node_stats(&nodes[0], &st);
		if (fault_countdown == 0) {
			CU_ASSERT_EQUAL(rc, RAFT_ENOMEM);
			CU_ASSERT_EQUAL(peer_stats(&st, 2)->queued_bytes, 0);
			continue;
		}
		CU_ASSERT_EQUAL(rc, RAFT_OK); /* nothing was injected: the sweep is over */
		sent = 1;
		break;
	}
	CU_ASSERT_FATAL(sent == 1);
	CU_ASSERT_FATAL(wait_msgs(&nodes[1], 1));
	run_for(20);
	CU_ASSERT_EQUAL(nodes[1].n_msgs, 1); /* the failed attempts left nothing in the stream */
	cluster_stop(nodes, 2);
}

/* --- tests: hostile connections --------------------------------------------------------------- */

/* Raw sockets speak as node 3, which is in the cluster list but never started: a peer hello
 * from node 2 would (rightly) replace node 2's real connection. */
#define RAW_PEER 3u

struct pending_wait {
	struct node *n;
	const char *needle;
};

static bool log_has(void *arg)
{
	struct pending_wait *w = arg;

	return strstr(w->n->log, w->needle) != NULL;
}

/* Node 1 must have closed the connection from src for reason, counted it, delivered nothing
 * from it, and still take a message from node 2 (every one of these tests ends so). */
static void expect_refused_and_serving(struct node *nodes, const char *src, const char *reason)
{
	struct raft_transport_stats st;
	struct raft_msg m;
	char line[256];
	struct pending_wait w = {&nodes[0], reason};

	CU_ASSERT(run_until(log_has, &w, WAIT_MS));
	snprintf(line, sizeof(line), "closing connection from %s", src);
	CU_ASSERT(strstr(nodes[0].log, line) != NULL);
	if (!strstr(nodes[0].log, reason) || !strstr(nodes[0].log, line))
		fprintf(stderr, "log of node 1 has no '%s' for %s:\n%s", reason, src, nodes[0].log);
	node_stats(&nodes[0], &st);
	CU_ASSERT_EQUAL(st.conns_rejected, 1);
	CU_ASSERT_EQUAL(st.clients, 0);
	CU_ASSERT_EQUAL(nodes[0].n_msgs + nodes[0].n_apps, 0);
	CU_ASSERT(nodes[0].client == NULL);
	sample_msg(RAFT_MSG_VOTE, 2, 1, &m, NULL);
	CU_ASSERT_EQUAL(raft_transport_send(nodes[1].t, &m), RAFT_OK);
	CU_ASSERT_FATAL(wait_msgs(&nodes[0], 1));
	check_same(&nodes[0].msgs[0], &m);
}

/*
 * Sends bytes to node 1 from a raw socket and expects node 1 to close that connection with a
 * log line naming the socket's address and containing reason, while it keeps serving node 2.
 */
static void expect_rejected(const void *bytes, size_t len, const char *reason)
{
	struct node nodes[3];
	char src[64];
	int fd;

	cluster_start(nodes, 3, 2, true);
	wait_connected(nodes, 3);
	fd = raw_connect("127.0.0.1", &nodes[0], src, sizeof(src));
	raw_send(fd, bytes, len);
	CU_ASSERT_FATAL(run_until(raw_closed, &fd, WAIT_MS));
	close(fd);
	expect_refused_and_serving(nodes, src, reason);
	cluster_stop(nodes, 2);
}

/* Like expect_rejected, but the bytes are built against the started cluster. */
static void expect_rejected_after(int (*build)(const struct node *n, unsigned char *out),
                                  const char *reason)
{
	struct node nodes[3];
	static unsigned char bytes[4096];
	char src[64];
	int fd, len;

	cluster_start(nodes, 3, 2, true);
	wait_connected(nodes, 3);
	len = build(&nodes[0], bytes);
	fd = raw_connect("127.0.0.1", &nodes[0], src, sizeof(src));
	raw_send(fd, bytes, (size_t)len);
	CU_ASSERT_FATAL(run_until(raw_closed, &fd, WAIT_MS));
	close(fd);
	expect_refused_and_serving(nodes, src, reason);
	cluster_stop(nodes, 2);
}

static void reseal_hello(unsigned char *h)
{
	raft_le_put32(h + 20, raft_crc32c(0, h, 20));
}

static int build_wrong_version(const struct node *n, unsigned char *out)
{
	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_PEER, RAW_PEER, n->cfg.cluster_id);
	out[4] = 9;
	reseal_hello(out);
	return RAFT_TRANSPORT_HELLO_BYTES;
}

static int build_wrong_cluster(const struct node *n, unsigned char *out)
{
	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_PEER, RAW_PEER, n->cfg.cluster_id + 1);
	return RAFT_TRANSPORT_HELLO_BYTES;
}

static int build_peer_with_cluster_zero(const struct node *n, unsigned char *out)
{
	(void)n;
	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_PEER, RAW_PEER, 0);
	return RAFT_TRANSPORT_HELLO_BYTES;
}

static int build_unknown_peer(const struct node *n, unsigned char *out)
{
	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_PEER, 7, n->cfg.cluster_id);
	return RAFT_TRANSPORT_HELLO_BYTES;
}

static int build_own_id(const struct node *n, unsigned char *out)
{
	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_PEER, 1, n->cfg.cluster_id);
	return RAFT_TRANSPORT_HELLO_BYTES;
}

static int build_bad_hello_crc(const struct node *n, unsigned char *out)
{
	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_PEER, RAW_PEER, n->cfg.cluster_id);
	out[21] ^= 0x40;
	return RAFT_TRANSPORT_HELLO_BYTES;
}

static int build_bad_kind_hello(const struct node *n, unsigned char *out)
{
	raft_transport_hello_encode(out, (enum raft_transport_conn_kind)3, 2, n->cfg.cluster_id);
	return RAFT_TRANSPORT_HELLO_BYTES;
}

static int build_oversized_frame(const struct node *n, unsigned char *out)
{
	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_PEER, RAW_PEER, n->cfg.cluster_id);
	raft_le_put32(out + 24, RAFT_TRANSPORT_MAX_PAYLOAD_BYTES + 1u);
	out[28] = 1;
	memset(out + 29, 0, 7);
	return 24 + 12;
}

static int build_bad_crc_frame(const struct node *n, unsigned char *out)
{
	struct raft_msg m;
	size_t len;

	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_PEER, RAW_PEER, n->cfg.cluster_id);
	sample_msg(RAFT_MSG_VOTE, RAW_PEER, 1, &m, NULL);
	len = make_raft_frame(out + 24, 4000, &m);
	out[24 + 8] ^= 0x01; /* one bit of the CRC */
	return 24 + (int)len;
}

static int build_bad_frame_kind(const struct node *n, unsigned char *out)
{
	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_PEER, RAW_PEER, n->cfg.cluster_id);
	return 24 + (int)make_frame(out + 24, 9, "abc", 3, false);
}

static int build_undecodable_payload(const struct node *n, unsigned char *out)
{
	static const char junk[] = "this is no tpl image at all, but its CRC is right";

	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_PEER, RAW_PEER, n->cfg.cluster_id);
	return 24 + (int)make_frame(out + 24, 1, junk, sizeof(junk), false);
}

static int build_wrong_magic(const struct node *n, unsigned char *out)
{
	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_PEER, RAW_PEER, n->cfg.cluster_id);
	out[0] = 'X';
	reseal_hello(out);
	return RAFT_TRANSPORT_HELLO_BYTES;
}

static void test_garbage_bytes_close_the_connection_and_the_node_keeps_serving(void)
{
	static const char http[] = "GET / HTTP/1.0\r\n\r\n";

	expect_rejected(http, sizeof(http) - 1, "bad magic");
}

static void test_wrong_magic_closes_the_connection(void)
{
	expect_rejected_after(build_wrong_magic, "bad magic 58");
}

static void test_wrong_version_closes_the_connection(void)
{
	expect_rejected_after(build_wrong_version, "protocol version 9");
}

static void test_wrong_cluster_id_closes_the_connection(void)
{
	expect_rejected_after(build_wrong_cluster, "cluster id");
}

static void test_peer_hello_without_cluster_id_closes_the_connection(void)
{
	/* only clients, which may know some of the nodes, may leave the cluster id at 0 */
	expect_rejected_after(build_peer_with_cluster_zero, "cluster id");
}

static void test_peer_id_not_in_the_cluster_closes_the_connection(void)
{
	expect_rejected_after(build_unknown_peer, "peer id 7 is not in the cluster");
}

static void test_peer_claiming_our_own_id_closes_the_connection(void)
{
	expect_rejected_after(build_own_id, "own id");
}

static void test_corrupt_hello_closes_the_connection(void)
{
	expect_rejected_after(build_bad_hello_crc, "hello checksum");
}

static void test_unknown_connection_kind_closes_the_connection(void)
{
	expect_rejected_after(build_bad_kind_hello, "unknown connection kind 3");
}

static void test_oversized_frame_length_closes_the_connection(void)
{
	expect_rejected_after(build_oversized_frame, "over the limit");
}

static void test_bad_frame_crc_closes_the_connection(void)
{
	expect_rejected_after(build_bad_crc_frame, "frame checksum mismatch");
}

static void test_unknown_frame_kind_closes_the_connection(void)
{
	expect_rejected_after(build_bad_frame_kind, "malformed frame header");
}

static void test_undecodable_raft_payload_closes_the_connection(void)
{
	expect_rejected_after(build_undecodable_payload, "undecodable Raft message");
}

static void test_client_hello_is_refused_without_on_client(void)
{
	struct node nodes[2];
	unsigned char h[RAFT_TRANSPORT_HELLO_BYTES];
	char src[64];
	int fd;

	cluster_start(nodes, 2, 2, false);
	raft_transport_hello_encode(h, RAFT_TRANSPORT_KIND_CLIENT, 0, nodes[0].cfg.cluster_id);
	fd = raw_connect("127.0.0.1", &nodes[0], src, sizeof(src));
	raw_send(fd, h, sizeof(h));
	CU_ASSERT_FATAL(run_until(raw_closed, &fd, WAIT_MS));
	close(fd);
	CU_ASSERT(strstr(nodes[0].log, "client connections are not served") != NULL);
	cluster_stop(nodes, 2);
}

/* A raw socket speaking as peer 2: messages with the wrong to or from are dropped (the
 * connection stays), a right one is delivered. */
static void test_messages_with_wrong_addressing_are_dropped_not_fatal(void)
{
	struct node nodes[3];
	struct raft_transport_stats st;
	static unsigned char out[4096];
	struct raft_msg m;
	char src[64];
	size_t len = RAFT_TRANSPORT_HELLO_BYTES;
	int fd;

	cluster_start(nodes, 3, 1, false); /* nodes 2 and 3 exist in the list only */
	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_PEER, 2, nodes[0].cfg.cluster_id);
	sample_msg(RAFT_MSG_HEARTBEAT, 2, 3, &m, NULL); /* not for us */
	len += make_raft_frame(out + len, sizeof(out) - len, &m);
	sample_msg(RAFT_MSG_HEARTBEAT, 3, 1, &m, NULL); /* not from this connection's peer */
	len += make_raft_frame(out + len, sizeof(out) - len, &m);
	sample_msg(RAFT_MSG_HEARTBEAT, 2, 1, &m, NULL);
	len += make_raft_frame(out + len, sizeof(out) - len, &m);
	fd = raw_connect("127.0.0.2", &nodes[0], src, sizeof(src));
	raw_send(fd, out, len);
	CU_ASSERT_FATAL(wait_msgs(&nodes[0], 1));
	check_same(&nodes[0].msgs[0], &m);
	run_for(10);
	CU_ASSERT_EQUAL(nodes[0].n_msgs, 1);
	CU_ASSERT(!raw_closed(&fd));
	node_stats(&nodes[0], &st);
	CU_ASSERT_EQUAL(st.dropped_received, 2);
	CU_ASSERT_EQUAL(st.conns_rejected, 0);
	CU_ASSERT(strstr(nodes[0].log, "from 2 to 3") != NULL);
	CU_ASSERT(strstr(nodes[0].log, "from 3 to 1") != NULL);
	CU_ASSERT(strstr(nodes[0].log, src) != NULL);
	CU_ASSERT(peer_stats(&st, 2)->accepted);
	close(fd);
	node_stop(&nodes[0]);
	run_for(5);
}

static bool accepted_from_2(void *arg)
{
	struct node *n = arg;
	struct raft_transport_stats st;

	node_stats(n, &st);
	return peer_stats(&st, 2)->accepted;
}

static void test_a_new_connection_from_a_peer_replaces_its_older_one(void)
{
	struct node nodes[2];
	unsigned char h[RAFT_TRANSPORT_HELLO_BYTES];
	char src1[64], src2[64];
	int fd1, fd2;

	cluster_start(nodes, 2, 1, false);
	raft_transport_hello_encode(h, RAFT_TRANSPORT_KIND_PEER, 2, nodes[0].cfg.cluster_id);
	fd1 = raw_connect("127.0.0.2", &nodes[0], src1, sizeof(src1));
	raw_send(fd1, h, sizeof(h));
	CU_ASSERT_FATAL(run_until(accepted_from_2, &nodes[0], WAIT_MS));
	fd2 = raw_connect("127.0.0.2", &nodes[0], src2, sizeof(src2));
	raw_send(fd2, h, sizeof(h));
	CU_ASSERT_FATAL(run_until(raw_closed, &fd1, WAIT_MS));
	CU_ASSERT(!raw_closed(&fd2));
	CU_ASSERT(strstr(nodes[0].log, "older connection") != NULL);
	close(fd1);
	close(fd2);
	node_stop(&nodes[0]);
	run_for(5);
}

static void test_a_connection_without_a_whole_hello_is_closed_after_the_timeout(void)
{
	struct node nodes[2];
	char src[64];
	int fd;
	uint64_t t0;

	hello_timeout_ms = 100;
	cluster_start(nodes, 2, 1, false);
	hello_timeout_ms = 0;
	fd = raw_connect("127.0.0.1", &nodes[0], src, sizeof(src));
	raw_send(fd, "RFTP\x01\x00", 6); /* a good start, then silence */
	t0 = now_ms();
	CU_ASSERT_FATAL(run_until(raw_closed, &fd, WAIT_MS));
	CU_ASSERT(now_ms() - t0 >= 90);
	CU_ASSERT(strstr(nodes[0].log, "no hello within 100 ms") != NULL);
	CU_ASSERT(strstr(nodes[0].log, src) != NULL);
	close(fd);
	cluster_stop(nodes, 2);
}

static void test_connections_beyond_the_pending_limit_are_refused(void)
{
	struct node nodes[3];
	int fds[RAFT_TRANSPORT_MAX_PENDING_CONNS + 1];
	struct pending_wait w = {&nodes[0], "already wait for a hello"};
	struct raft_msg m;
	char src[64];
	unsigned open_fds = 0;

	cluster_start(nodes, 3, 2, false);
	wait_connected(nodes, 3);
	for (unsigned i = 0; i <= RAFT_TRANSPORT_MAX_PENDING_CONNS; i++) {
		fds[i] = raw_connect("127.0.0.1", &nodes[0], src, sizeof(src));
		run_for(1);
	}
	CU_ASSERT_FATAL(run_until(log_has, &w, WAIT_MS));
	CU_ASSERT_FATAL(run_until(raw_closed, &fds[RAFT_TRANSPORT_MAX_PENDING_CONNS], WAIT_MS));
	for (unsigned i = 0; i < RAFT_TRANSPORT_MAX_PENDING_CONNS; i++)
		open_fds += !raw_closed(&fds[i]);
	CU_ASSERT_EQUAL(open_fds, RAFT_TRANSPORT_MAX_PENDING_CONNS);
	/* peers are not starved by the strangers */
	sample_msg(RAFT_MSG_VOTE, 2, 1, &m, NULL);
	CU_ASSERT_EQUAL(raft_transport_send(nodes[1].t, &m), RAFT_OK);
	CU_ASSERT_FATAL(wait_msgs(&nodes[0], 1));
	for (unsigned i = 0; i <= RAFT_TRANSPORT_MAX_PENDING_CONNS; i++)
		close(fds[i]);
	cluster_stop(nodes, 3);
}

/* --- tests: clients --------------------------------------------------------------------------- */

static bool client_has(void *arg)
{
	struct node *n = arg;

	return n->client && evbuffer_get_length(bufferevent_get_input(n->client)) >= 11;
}

static bool raw_reads_pong(void *arg)
{
	int fd = *(int *)arg;
	char b[8];

	return recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT) == 4 && memcmp(b, "pong", 4) == 0;
}

static void test_client_hello_hands_the_connection_over_with_its_bytes(void)
{
	struct node nodes[2];
	unsigned char out[RAFT_TRANSPORT_HELLO_BYTES + 11];
	char src[64], got[16];
	struct raft_transport_stats st;
	int fd;

	cluster_start(nodes, 2, 1, true);
	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_CLIENT, 0, nodes[0].cfg.cluster_id);
	memcpy(out + RAFT_TRANSPORT_HELLO_BYTES, "hello world", 11);
	fd = raw_connect("127.0.0.1", &nodes[0], src, sizeof(src));
	raw_send(fd, out, sizeof(out)); /* hello and request in one segment */
	CU_ASSERT_FATAL(run_until(client_has, &nodes[0], WAIT_MS));
	CU_ASSERT_STRING_EQUAL(nodes[0].client_remote, src);
	CU_ASSERT_EQUAL(evbuffer_remove(bufferevent_get_input(nodes[0].client), got, 11), 11);
	CU_ASSERT(memcmp(got, "hello world", 11) == 0);
	node_stats(&nodes[0], &st);
	CU_ASSERT_EQUAL(st.clients, 1);
	CU_ASSERT_EQUAL(st.conns_rejected, 0);

	/* the daemon owns it now: it answers, and it outlives the transport */
	raft_transport_free(nodes[0].t);
	nodes[0].t = NULL;
	CU_ASSERT_EQUAL(bufferevent_write(nodes[0].client, "pong", 4), 0);
	CU_ASSERT_FATAL(run_until(raw_reads_pong, &fd, WAIT_MS));
	close(fd);
	node_stop(&nodes[0]);
	run_for(5);
}

/* --- tests: TLS ------------------------------------------------------------------------------- */

/* A stranger (or a peer) speaking TLS by hand, from a socket bound to its own address. */
struct tls_raw {
	int fd;
	struct raft_tls *tls;
	struct ssl_st *ssl;
	char src[64];
	char why[RAFT_TLS_ERRMSG_BYTES];
};

/* The client side of TLS with certificate cert (NULL: none), checking the node's against ca. */
static void tls_raw_open(struct tls_raw *r, const char *host, const struct node *n,
                         const char *cert, const char *ca)
{
	struct raft_tls_files f;
	char p[CERTS_PATH_BYTES], err[512];
	const struct raft_transport_peer *self = NULL;

	memset(r, 0, sizeof(*r));
	memset(&f, 0, sizeof(f));
	snprintf(f.ca, sizeof(f.ca), "%s", certs_pem(&certs, ca, p));
	if (cert) {
		snprintf(f.cert, sizeof(f.cert), "%s", certs_pem(&certs, cert, p));
		snprintf(f.key, sizeof(f.key), "%s", certs_key(&certs, cert, p));
	}
	CU_ASSERT_FATAL(raft_tls_new(RAFT_TLS_CLIENT, &f, &r->tls, err, sizeof(err)) == 0);
	r->fd = raw_connect(host, n, r->src, sizeof(r->src));
	CU_ASSERT_FATAL(fcntl(r->fd, F_SETFL, O_NONBLOCK) == 0);
	for (unsigned i = 0; i < n->cfg.n_peers; i++)
		if (n->cfg.peers[i].id == n->cfg.self_id)
			self = &n->cfg.peers[i];
	r->ssl = raft_tls_client_ssl(r->tls, r->fd, self->host);
	CU_ASSERT_FATAL(r->ssl != NULL);
}

/* Runs the handshake while the loop runs: 1 done (client side), -1 failed (r->why). */
static int tls_raw_handshake(struct tls_raw *r)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (now_ms() < deadline) {
		short events;
		int rc = raft_tls_io_handshake(r->ssl, &events, r->why, sizeof(r->why));

		if (rc != 0)
			return rc;
		run_for(1);
	}
	snprintf(r->why, sizeof(r->why), "handshake timed out");
	return -1;
}

static void tls_raw_send(struct tls_raw *r, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t deadline = now_ms() + WAIT_MS;

	while (len > 0 && now_ms() < deadline) {
		short events;
		ssize_t n = raft_tls_io_write(r->ssl, p, len, &events, r->why, sizeof(r->why));

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (errno == EAGAIN) {
			run_for(1);
		} else {
			return; /* the node closed it: the caller checks that */
		}
	}
}

/* The node closed the TLS connection (an alert, a close, a reset). */
static bool tls_raw_closed(void *arg)
{
	struct tls_raw *r = arg;
	char b[256];
	short events;
	ssize_t n = raft_tls_io_read(r->ssl, b, sizeof(b), &events, r->why, sizeof(r->why));

	return n == 0 || (n < 0 && errno != EAGAIN);
}

static void tls_raw_close(struct tls_raw *r)
{
	raft_tls_io_close(r->ssl);
	close(r->fd);
	raft_tls_free(r->tls);
}

static bool tls_raw_reads_pong(void *arg)
{
	struct tls_raw *r = arg;
	char b[8];
	short events;

	return raft_tls_io_read(r->ssl, b, sizeof(b), &events, r->why, sizeof(r->why)) == 4 &&
	        memcmp(b, "pong", 4) == 0;
}

static void test_tls_peers_exchange_every_message_type_and_app_frames(void)
{
	struct node nodes[3];
	static unsigned char big[1u << 20];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7u ^ (i >> 11));
	cluster_start(nodes, 3, 3, false);
	wait_connected(nodes, 3);
	CU_ASSERT(strstr(nodes[0].log, "connected to peer 2 at 127.0.0.2") != NULL);
	CU_ASSERT(strstr(nodes[0].log, "(TLS)") != NULL);
	for (uint32_t from = 1; from <= 3; from++)
		for (uint32_t to = 1; to <= 3; to++)
			if (from != to)
				exchange_every_type(nodes, from, to);
	CU_ASSERT_EQUAL(raft_transport_send_app(nodes[0].t, 2, "fwd", 3), RAFT_OK);
	CU_ASSERT_EQUAL(raft_transport_send_app(nodes[0].t, 2, big, sizeof(big)), RAFT_OK);
	CU_ASSERT_FATAL(wait_apps(&nodes[1], 2));
	CU_ASSERT(nodes[1].apps[0].len == 3 && memcmp(nodes[1].apps[0].buf, "fwd", 3) == 0);
	CU_ASSERT(nodes[1].apps[1].len == sizeof(big) &&
	          memcmp(nodes[1].apps[1].buf, big, sizeof(big)) == 0);
	cluster_stop(nodes, 3);
}

static void test_tls_client_with_a_certificate_is_handed_over_with_its_name(void)
{
	struct node nodes[2];
	unsigned char out[RAFT_TRANSPORT_HELLO_BYTES + 11];
	struct evbuffer *staged = evbuffer_new();
	struct tls_raw r;
	char got[16];

	cluster_start(nodes, 2, 1, true);
	tls_raw_open(&r, "127.0.0.1", &nodes[0], "alice", "ca");
	CU_ASSERT_FATAL(tls_raw_handshake(&r) == 1);
	raft_transport_hello_encode(out, RAFT_TRANSPORT_KIND_CLIENT, 0, 0);
	memcpy(out + RAFT_TRANSPORT_HELLO_BYTES, "hello world", 11);
	tls_raw_send(&r, out, sizeof(out));
	CU_ASSERT_FATAL(run_until(client_has, &nodes[0], WAIT_MS));
	CU_ASSERT_STRING_EQUAL(nodes[0].client_remote, r.src);
	CU_ASSERT(nodes[0].client_tls);
	CU_ASSERT_STRING_EQUAL(nodes[0].client_cn, "alice");
	CU_ASSERT_EQUAL(evbuffer_remove(bufferevent_get_input(nodes[0].client), got, 11), 11);
	CU_ASSERT(memcmp(got, "hello world", 11) == 0);
	/* the daemon's way of answering: staged, then written at once through TLS */
	CU_ASSERT_FATAL(staged != NULL);
	evbuffer_add(staged, "pong", 4);
	raft_transport_write_now(nodes[0].client, staged);
	CU_ASSERT_EQUAL(evbuffer_get_length(staged), 0);
	CU_ASSERT_FATAL(run_until(tls_raw_reads_pong, &r, WAIT_MS));
	tls_raw_close(&r);
	evbuffer_free(staged);
	node_stop(&nodes[0]);
	run_for(5);
}

/* A TLS connection from host with cert (NULL: none) checked against ca sends hello bytes of
 * kind/id after its handshake; node 1 must refuse it for reason. */
static void expect_tls_refused(const char *host, const char *cert, const char *ca,
                               enum raft_transport_conn_kind kind, uint32_t id, const char *reason)
{
	struct node nodes[3];
	unsigned char h[RAFT_TRANSPORT_HELLO_BYTES + 4096];
	struct tls_raw r;
	size_t len = RAFT_TRANSPORT_HELLO_BYTES;
	struct raft_msg m;

	cluster_start(nodes, 3, 2, true);
	wait_connected(nodes, 3);
	tls_raw_open(&r, host, &nodes[0], cert, ca);
	if (tls_raw_handshake(&r) == 1) {
		/* TLS 1.3: the client is done before the node has checked its certificate */
		raft_transport_hello_encode(h, kind, id, nodes[0].cfg.cluster_id);
		if (kind == RAFT_TRANSPORT_KIND_PEER) {
			/* a forged vote right behind the hello */
			sample_msg(RAFT_MSG_VOTE, id, 1, &m, NULL);
			len += make_raft_frame(h + len, sizeof(h) - len, &m);
		}
		tls_raw_send(&r, h, len);
	}
	CU_ASSERT_FATAL(run_until(tls_raw_closed, &r, WAIT_MS));
	expect_refused_and_serving(nodes, r.src, reason);
	tls_raw_close(&r);
	cluster_stop(nodes, 2);
}

static void test_tls_client_without_a_certificate_is_refused(void)
{
	expect_tls_refused("127.0.0.1", NULL, "ca", RAFT_TRANSPORT_KIND_CLIENT, 0,
	                   "did not return a certificate");
}

static void test_tls_certificate_of_another_ca_is_refused(void)
{
	expect_tls_refused("127.0.0.1", "other-client", "ca", RAFT_TRANSPORT_KIND_CLIENT, 0,
	                   "unable to get local issuer certificate");
}

static void test_tls_expired_certificate_is_refused(void)
{
	expect_tls_refused("127.0.0.1", "expired-client", "ca", RAFT_TRANSPORT_KIND_CLIENT, 0,
	                   "certificate has expired");
}

static void test_tls_client_certificate_claiming_to_be_a_peer_is_refused(void)
{
	/* from node 3's own address even: the certificate, not the address, says who it is */
	expect_tls_refused("127.0.0.3", "client", "ca", RAFT_TRANSPORT_KIND_PEER, RAW_PEER,
	                   "does not name 127.0.0.3");
}

static bool accepted_from(struct node *n, uint32_t id)
{
	struct raft_transport_stats st;

	node_stats(n, &st);
	return peer_stats(&st, id)->accepted;
}

static void test_tls_node3_certificate_claiming_node2_is_refused_and_node2_stays(void)
{
	struct node nodes[3];
	unsigned char h[RAFT_TRANSPORT_HELLO_BYTES + 4096];
	struct raft_entry entries[SAMPLES_MSG_ENTRIES];
	struct raft_msg m;
	struct tls_raw r;
	size_t len = RAFT_TRANSPORT_HELLO_BYTES;
	struct raft_transport_stats st;

	cluster_start(nodes, 3, 2, true);
	wait_connected(nodes, 3);
	CU_ASSERT_FATAL(accepted_from(&nodes[0], 2));
	tls_raw_open(&r, "127.0.0.2", &nodes[0], "node3", "ca");
	CU_ASSERT_FATAL(tls_raw_handshake(&r) == 1);
	raft_transport_hello_encode(h, RAFT_TRANSPORT_KIND_PEER, 2, nodes[0].cfg.cluster_id);
	sample_msg(RAFT_MSG_APPEND, 2, 1, &m, entries);
	len += make_raft_frame(h + len, sizeof(h) - len, &m);
	tls_raw_send(&r, h, len);
	CU_ASSERT_FATAL(run_until(tls_raw_closed, &r, WAIT_MS));
	CU_ASSERT(strstr(nodes[0].log, "claims to be peer 2") != NULL);
	CU_ASSERT(strstr(nodes[0].log, "(CN=node3) does not name 127.0.0.2") != NULL);
	/* the real node 2 keeps its connection: a forged hello no longer closes it */
	CU_ASSERT(accepted_from(&nodes[0], 2));
	CU_ASSERT(strstr(nodes[0].log, "older connection") == NULL);
	node_stats(&nodes[0], &st);
	CU_ASSERT_EQUAL(st.conns_rejected, 1);
	CU_ASSERT_EQUAL(nodes[0].n_msgs, 0);
	sample_msg(RAFT_MSG_VOTE, 2, 1, &m, NULL);
	CU_ASSERT_EQUAL(raft_transport_send(nodes[1].t, &m), RAFT_OK);
	CU_ASSERT_FATAL(wait_msgs(&nodes[0], 1));
	check_same(&nodes[0].msgs[0], &m);
	tls_raw_close(&r);
	cluster_stop(nodes, 2);
}

static void test_tls_node3_with_its_own_certificate_is_accepted_as_node3(void)
{
	struct node nodes[3];
	unsigned char h[RAFT_TRANSPORT_HELLO_BYTES + 4096];
	struct raft_msg m;
	struct tls_raw r;
	size_t len = RAFT_TRANSPORT_HELLO_BYTES;

	cluster_start(nodes, 3, 2, true);
	wait_connected(nodes, 3);
	tls_raw_open(&r, "127.0.0.3", &nodes[0], "node3", "ca");
	CU_ASSERT_FATAL(tls_raw_handshake(&r) == 1);
	raft_transport_hello_encode(h, RAFT_TRANSPORT_KIND_PEER, 3, nodes[0].cfg.cluster_id);
	sample_msg(RAFT_MSG_VOTE, 3, 1, &m, NULL);
	len += make_raft_frame(h + len, sizeof(h) - len, &m);
	tls_raw_send(&r, h, len);
	CU_ASSERT_FATAL(wait_msgs(&nodes[0], 1));
	check_same(&nodes[0].msgs[0], &m);
	CU_ASSERT(accepted_from(&nodes[0], 3));
	tls_raw_close(&r);
	cluster_stop(nodes, 2);
}

static void test_tls_plaintext_hello_is_refused(void)
{
	unsigned char h[RAFT_TRANSPORT_HELLO_BYTES];

	raft_transport_hello_encode(h, RAFT_TRANSPORT_KIND_PEER, RAW_PEER, 0);
	expect_rejected(h, sizeof(h), "a plaintext hello on a TLS port");
}

static void test_tls_garbage_in_place_of_a_client_hello_is_refused(void)
{
	static const char http[] = "GET / HTTP/1.0\r\n\r\n";

	expect_rejected(http, sizeof(http) - 1, "not a TLS handshake (first byte 0x47)");
}

static void test_tls_a_handshake_record_of_garbage_is_refused(void)
{
	static const unsigned char junk[] = {0x16, 0x03, 0x01, 0x00, 0x10, 'n', 'o',
	                                     't',  ' ',  'a',  ' ',  'c',  'l', 'i',
	                                     'e',  'n',  't',  'h',  'e',  'l', 'o'};

	expect_rejected(junk, sizeof(junk), "TLS handshake failed");
}

static void test_tls_a_stalled_handshake_is_closed_after_the_hello_timeout(void)
{
	struct node nodes[3];
	char src[64];
	uint64_t t0;
	int fd;

	hello_timeout_ms = 150;
	cluster_start(nodes, 3, 2, true);
	hello_timeout_ms = 0;
	wait_connected(nodes, 3);
	fd = raw_connect("127.0.0.1", &nodes[0], src, sizeof(src));
	t0 = now_ms();
	/* the start of a ClientHello, then a byte now and then: each read does not restart it */
	raw_send(fd, "\x16\x03\x01\x02", 4);
	for (int i = 0; i < 3 && !raw_closed(&fd); i++) {
		run_for(60);
		raw_send(fd, "\x00", 1);
	}
	CU_ASSERT_FATAL(run_until(raw_closed, &fd, WAIT_MS));
	CU_ASSERT(now_ms() - t0 >= 140);
	CU_ASSERT(now_ms() - t0 < 1000);
	close(fd);
	expect_refused_and_serving(nodes, src, "no TLS handshake and hello within 150 ms");
	cluster_stop(nodes, 2);
}

static void test_tls_handshake_to_a_plaintext_node_is_refused(void)
{
	struct node nodes[3];
	struct tls_raw r;

	use_tls = false;
	cluster_start(nodes, 3, 2, true);
	wait_connected(nodes, 3);
	tls_raw_open(&r, "127.0.0.1", &nodes[0], "client", "ca");
	CU_ASSERT(tls_raw_handshake(&r) == -1);
	CU_ASSERT_FATAL(run_until(tls_raw_closed, &r, WAIT_MS));
	expect_refused_and_serving(nodes, r.src, "a TLS handshake on a port without TLS");
	tls_raw_close(&r);
	cluster_stop(nodes, 2);
	use_tls = true;
}

static void test_tls_a_peer_whose_certificate_names_another_address_is_not_linked(void)
{
	struct node nodes[2];
	struct pending_wait w1 = {&nodes[0], "certificate: IP address mismatch"};
	struct pending_wait w2 = {&nodes[0], "does not name 127.0.0.2"};
	struct raft_transport_stats st;

	tls_cert_of[2] = "node3"; /* node 2 starts with node 3's certificate */
	cluster_start(nodes, 2, 2, false);
	tls_cert_of[2] = NULL;
	/* node 1 will not talk to it (the dial's check), nor listen to it (the hello's) */
	CU_ASSERT(run_until(log_has, &w1, WAIT_MS));
	CU_ASSERT(run_until(log_has, &w2, WAIT_MS));
	run_for(50);
	node_stats(&nodes[0], &st);
	CU_ASSERT(!peer_stats(&st, 2)->connected);
	CU_ASSERT(!peer_stats(&st, 2)->accepted);
	cluster_stop(nodes, 2);
}

static void copy_file(const char *from, const char *to)
{
	char buf[8192];
	FILE *in = fopen(from, "r"), *out = fopen(to, "w");
	size_t n;

	CU_ASSERT_FATAL(in != NULL && out != NULL);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		CU_ASSERT_FATAL(fwrite(buf, 1, n, out) == n);
	fclose(in);
	CU_ASSERT_FATAL(fclose(out) == 0);
}

/* A client connection with cert: whether node 1 hands it over (true) or refuses it. */
static bool client_is_accepted(struct node *nodes, const char *cert)
{
	unsigned char h[RAFT_TRANSPORT_HELLO_BYTES + 11];
	struct tls_raw r;
	bool ok;

	tls_raw_open(&r, "127.0.0.1", &nodes[0], cert, "ca");
	if (tls_raw_handshake(&r) == 1) {
		raft_transport_hello_encode(h, RAFT_TRANSPORT_KIND_CLIENT, 0, 0);
		memcpy(h + RAFT_TRANSPORT_HELLO_BYTES, "hello world", 11);
		tls_raw_send(&r, h, sizeof(h));
	}
	ok = run_until(client_has, &nodes[0], 500);
	if (nodes[0].client)
		bufferevent_free(nodes[0].client);
	nodes[0].client = NULL;
	tls_raw_close(&r);
	return ok;
}

static void test_tls_reload_takes_new_files_and_keeps_the_old_when_one_fails(void)
{
	struct node nodes[2];
	struct raft_tls_files f;
	char p[CERTS_PATH_BYTES], live_ca[CERTS_PATH_BYTES], err[1024];

	snprintf(live_ca, sizeof(live_ca), "%s/live-client-ca.pem", certs.dir);
	copy_file(certs_pem(&certs, "ca", p), live_ca);
	memset(&f, 0, sizeof(f));
	snprintf(f.cert, sizeof(f.cert), "%s", certs_pem(&certs, "node1", p));
	snprintf(f.key, sizeof(f.key), "%s", certs_key(&certs, "node1", p));
	snprintf(f.ca, sizeof(f.ca), "%s", certs_pem(&certs, "ca", p));
	snprintf(f.client_ca, sizeof(f.client_ca), "%s", live_ca);
	tls_files_of[1] = &f;
	cluster_start(nodes, 2, 1, true);
	tls_files_of[1] = NULL;
	CU_ASSERT(client_is_accepted(nodes, "client"));
	CU_ASSERT(!client_is_accepted(nodes, "other-client"));

	/* a client CA file that does not load: the reload fails, the old files stay */
	copy_file(certs_pem(&certs, "garbage", p), live_ca);
	CU_ASSERT(raft_tls_reload(nodes[0].tls, err, sizeof(err)) == -1);
	CU_ASSERT(strstr(err, live_ca) != NULL);
	CU_ASSERT(client_is_accepted(nodes, "client"));

	/* rotated to another client CA: new connections follow it */
	copy_file(certs_pem(&certs, "other-ca", p), live_ca);
	CU_ASSERT_FATAL(raft_tls_reload(nodes[0].tls, err, sizeof(err)) == 0);
	CU_ASSERT(client_is_accepted(nodes, "other-client"));
	CU_ASSERT(!client_is_accepted(nodes, "client"));
	CU_ASSERT(strstr(nodes[0].log, "does not chain to the client CA") != NULL);
	unlink(live_ca);
	node_stop(&nodes[0]);
	run_for(5);
}

static void test_tls_files_that_do_not_load_are_refused_with_their_name(void)
{
	struct raft_tls_files f;
	struct raft_tls *t = NULL;
	char p[CERTS_PATH_BYTES], err[1024];

	memset(&f, 0, sizeof(f));
	snprintf(f.cert, sizeof(f.cert), "%s/missing.pem", certs.dir);
	snprintf(f.key, sizeof(f.key), "%s", certs_key(&certs, "node1", p));
	snprintf(f.ca, sizeof(f.ca), "%s", certs_pem(&certs, "ca", p));
	CU_ASSERT(raft_tls_new(RAFT_TLS_NODE, &f, &t, err, sizeof(err)) == -1);
	CU_ASSERT(strstr(err, "missing.pem") != NULL);
	snprintf(f.cert, sizeof(f.cert), "%s", certs_pem(&certs, "node1", p));
	snprintf(f.key, sizeof(f.key), "%s", certs_key(&certs, "node2", p));
	CU_ASSERT(raft_tls_new(RAFT_TLS_NODE, &f, &t, err, sizeof(err)) == -1);
	CU_ASSERT(strstr(err, "node2.key") != NULL && strstr(err, "mismatch") != NULL);
	snprintf(f.key, sizeof(f.key), "%s", certs_key(&certs, "node1", p));
	snprintf(f.ca, sizeof(f.ca), "%s", certs_pem(&certs, "garbage", p));
	CU_ASSERT(raft_tls_new(RAFT_TLS_NODE, &f, &t, err, sizeof(err)) == -1);
	CU_ASSERT(strstr(err, "garbage.pem") != NULL);
	f.ca[0] = '\0';
	CU_ASSERT(raft_tls_new(RAFT_TLS_CLIENT, &f, &t, err, sizeof(err)) == -1);
	CU_ASSERT(t == NULL);
}

/* --- tests: configuration --------------------------------------------------------------------- */

static void test_new_fails_with_eio_when_the_address_is_in_use(void)
{
	struct node nodes[2];
	struct raft_transport_cbs cbs = {.ctx = &nodes[0], .recv_msg = node_recv_msg};
	struct raft_transport *t = NULL;
	char err[RAFT_TRANSPORT_ERRMSG_BYTES] = "", want[64];

	cluster_start(nodes, 2, 1, false);
	/* a second transport on node 1's address */
	CU_ASSERT_EQUAL(raft_transport_new(base, &nodes[0].cfg, &cbs, &t, err, sizeof(err)),
	                RAFT_EIO);
	CU_ASSERT(t == NULL);
	snprintf(want, sizeof(want), "listen 127.0.0.1:%u", (unsigned)nodes[0].cfg.peers[0].port);
	CU_ASSERT(strstr(err, want) != NULL);
	CU_ASSERT(strstr(err, "in use") != NULL);

	nodes[1].cfg.self_id = 9;
	CU_ASSERT_EQUAL(raft_transport_new(base, &nodes[1].cfg, &cbs, &t, err, sizeof(err)),
	                RAFT_EINVAL);
	CU_ASSERT(strstr(err, "not in the cluster") != NULL);
	nodes[1].cfg.self_id = 2;
	cbs.recv_msg = NULL;
	CU_ASSERT_EQUAL(raft_transport_new(base, &nodes[1].cfg, &cbs, &t, err, sizeof(err)),
	                RAFT_EINVAL);
	CU_ASSERT(t == NULL);
	node_stop(&nodes[0]);
}

static void test_a_good_cluster_list_parses_and_its_id_ignores_order(void)
{
	struct raft_transport_config a, b;
	char err[RAFT_TRANSPORT_ERRMSG_BYTES] = "";

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.self_id = 2;
	CU_ASSERT_EQUAL_FATAL(raft_transport_parse_cluster("1=127.0.0.1:7001,2=127.0.0.2:7002,"
	                                                   "3=127.0.0.3:7003",
	                                                   &a, err, sizeof(err)),
	                      RAFT_OK);
	CU_ASSERT_EQUAL(a.self_id, 2); /* left alone */
	CU_ASSERT_EQUAL(a.n_peers, 3);
	CU_ASSERT_EQUAL(a.peers[1].id, 2);
	CU_ASSERT_STRING_EQUAL(a.peers[1].host, "127.0.0.2");
	CU_ASSERT_EQUAL(a.peers[2].port, 7003);
	CU_ASSERT_NOT_EQUAL(a.cluster_id, 0);
	CU_ASSERT_EQUAL(a.cluster_id, raft_transport_cluster_id(a.peers, a.n_peers));

	CU_ASSERT_EQUAL_FATAL(raft_transport_parse_cluster("3=127.0.0.3:7003,1=127.0.0.1:7001,"
	                                                   "2=127.0.0.2:7002",
	                                                   &b, err, sizeof(err)),
	                      RAFT_OK);
	CU_ASSERT_EQUAL(a.cluster_id, b.cluster_id);
	CU_ASSERT_EQUAL(raft_transport_parse_cluster("1=127.0.0.1:7001,2=127.0.0.2:7002,"
	                                             "3=127.0.0.3:7004",
	                                             &b, err, sizeof(err)),
	                RAFT_OK);
	CU_ASSERT_NOT_EQUAL(a.cluster_id, b.cluster_id);
	CU_ASSERT_EQUAL(raft_transport_parse_cluster("1=127.0.0.1:7001", &b, err, sizeof(err)),
	                RAFT_OK);
	CU_ASSERT_EQUAL(b.n_peers, 1);
	CU_ASSERT_EQUAL(raft_transport_parse_cluster("1=127.0.0.1:1,2=127.0.0.1:65535,9=10.0.0.9:"
	                                             "7001,4294967295=127.0.0.1:2",
	                                             &b, err, sizeof(err)),
	                RAFT_OK);
	CU_ASSERT_EQUAL(b.peers[3].id, 4294967295u);
}

static void expect_bad_list(const char *list, const char *msg)
{
	struct raft_transport_config cfg;
	char err[RAFT_TRANSPORT_ERRMSG_BYTES] = "";

	memset(&cfg, 0, sizeof(cfg));
	cfg.n_peers = 77; /* untouched on failure */
	CU_ASSERT_EQUAL(raft_transport_parse_cluster(list, &cfg, err, sizeof(err)), RAFT_EINVAL);
	CU_ASSERT_EQUAL(cfg.n_peers, 77);
	CU_ASSERT(strstr(err, msg) != NULL);
	if (!strstr(err, msg))
		fprintf(stderr, "list '%s': got '%s', want '%s'\n", list, err, msg);
}

static void test_bad_cluster_lists_are_refused_with_a_clear_message(void)
{
	expect_bad_list("", "empty cluster list");
	expect_bad_list("1127.0.0.1:7001", "missing '='");
	expect_bad_list("1=127.0.0.1:7001,2=127.0.0.2:7002,1=127.0.0.3:7003",
	                "node id 1 appears twice");
	expect_bad_list("1=127.0.0.1:7001,2=127.0.0.1:7001",
	                "address 127.0.0.1:7001 appears twice");
	expect_bad_list("1=127.0.0.1:0", "port must be");
	expect_bad_list("1=127.0.0.1:65536", "port must be");
	expect_bad_list("1=127.0.0.1:70a1", "port must be");
	expect_bad_list("1=127.0.0.1:", "port must be");
	expect_bad_list("1=127.0.0.1", "missing ':port'");
	expect_bad_list("0=127.0.0.1:7001", "node id must be");
	expect_bad_list("x=127.0.0.1:7001", "node id must be");
	expect_bad_list("4294967296=127.0.0.1:7001", "node id must be");
	expect_bad_list("=127.0.0.1:7001", "node id must be");
	expect_bad_list("1=localhost:7001", "not an IPv4 address");
	expect_bad_list("1=127.0.0:7001", "not an IPv4 address");
	expect_bad_list("1=:7001", "bad host");
	expect_bad_list("1=127.0.0.1:7001,", "item 2 is empty");
	expect_bad_list(",1=127.0.0.1:7001", "item 1 is empty");
	expect_bad_list("1=127.0.0.1:7001, 2=127.0.0.2:7002", "node id must be");
	expect_bad_list("1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3,4=127.0.0.1:4,5=127.0.0.1:5,"
	                "6=127.0.0.1:6,7=127.0.0.1:7,8=127.0.0.1:8,9=127.0.0.1:9,10=127.0.0.1:10",
	                "more than 9 nodes");
}

/* --- runner ----------------------------------------------------------------------------------- */

static int suite_init(void)
{
	base = event_base_new();
	return base ? 0 : 1;
}

static int suite_clean(void)
{
	event_base_free(base);
	base = NULL;
	return 0;
}

static CU_TestInfo exchange_tests[] = {
        {"test_two_nodes_exchange_every_message_type_both_ways",
         test_two_nodes_exchange_every_message_type_both_ways},
        {"test_snapshot_chunk_with_data_is_sent_as_given",
         test_snapshot_chunk_with_data_is_sent_as_given},
        {"test_three_nodes_exchange_messages_and_app_frames_between_every_pair",
         test_three_nodes_exchange_messages_and_app_frames_between_every_pair},
        {"test_peer_connections_come_from_the_nodes_own_address_with_a_hello",
         test_peer_connections_come_from_the_nodes_own_address_with_a_hello},
        {"test_frames_leave_at_the_end_of_the_turn_that_queued_them",
         test_frames_leave_at_the_end_of_the_turn_that_queued_them},
        {"test_client_hello_hands_the_connection_over_with_its_bytes",
         test_client_hello_hands_the_connection_over_with_its_bytes},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo link_tests[] = {
        {"test_a_restarted_peer_is_reconnected_and_served_again",
         test_a_restarted_peer_is_reconnected_and_served_again},
        {"test_messages_over_the_queue_limit_are_dropped_and_counted",
         test_messages_over_the_queue_limit_are_dropped_and_counted},
        {"test_failed_snapshot_read_drops_the_chunk", test_failed_snapshot_read_drops_the_chunk},
        {"test_send_refuses_unknown_own_and_forged_addresses",
         test_send_refuses_unknown_own_and_forged_addresses},
        {"test_encoder_allocation_failures_drop_the_message_cleanly",
         test_encoder_allocation_failures_drop_the_message_cleanly},
        {"test_a_new_connection_from_a_peer_replaces_its_older_one",
         test_a_new_connection_from_a_peer_replaces_its_older_one},
        {"test_a_connection_without_a_whole_hello_is_closed_after_the_timeout",
         test_a_connection_without_a_whole_hello_is_closed_after_the_timeout},
        {"test_connections_beyond_the_pending_limit_are_refused",
         test_connections_beyond_the_pending_limit_are_refused},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo hostile_tests[] = {
        {"test_garbage_bytes_close_the_connection_and_the_node_keeps_serving",
         test_garbage_bytes_close_the_connection_and_the_node_keeps_serving},
        {"test_wrong_magic_closes_the_connection", test_wrong_magic_closes_the_connection},
        {"test_wrong_version_closes_the_connection", test_wrong_version_closes_the_connection},
        {"test_wrong_cluster_id_closes_the_connection",
         test_wrong_cluster_id_closes_the_connection},
        {"test_peer_hello_without_cluster_id_closes_the_connection",
         test_peer_hello_without_cluster_id_closes_the_connection},
        {"test_peer_id_not_in_the_cluster_closes_the_connection",
         test_peer_id_not_in_the_cluster_closes_the_connection},
        {"test_peer_claiming_our_own_id_closes_the_connection",
         test_peer_claiming_our_own_id_closes_the_connection},
        {"test_corrupt_hello_closes_the_connection", test_corrupt_hello_closes_the_connection},
        {"test_unknown_connection_kind_closes_the_connection",
         test_unknown_connection_kind_closes_the_connection},
        {"test_oversized_frame_length_closes_the_connection",
         test_oversized_frame_length_closes_the_connection},
        {"test_bad_frame_crc_closes_the_connection", test_bad_frame_crc_closes_the_connection},
        {"test_unknown_frame_kind_closes_the_connection",
         test_unknown_frame_kind_closes_the_connection},
        {"test_undecodable_raft_payload_closes_the_connection",
         test_undecodable_raft_payload_closes_the_connection},
        {"test_client_hello_is_refused_without_on_client",
         test_client_hello_is_refused_without_on_client},
        {"test_messages_with_wrong_addressing_are_dropped_not_fatal",
         test_messages_with_wrong_addressing_are_dropped_not_fatal},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo config_tests[] = {
        {"test_new_fails_with_eio_when_the_address_is_in_use",
         test_new_fails_with_eio_when_the_address_is_in_use},
        {"test_a_good_cluster_list_parses_and_its_id_ignores_order",
         test_a_good_cluster_list_parses_and_its_id_ignores_order},
        {"test_bad_cluster_lists_are_refused_with_a_clear_message",
         test_bad_cluster_lists_are_refused_with_a_clear_message},
        CU_TEST_INFO_NULL,
};

static CU_TestInfo tls_tests[] = {
        {"test_tls_peers_exchange_every_message_type_and_app_frames",
         test_tls_peers_exchange_every_message_type_and_app_frames},
        {"test_tls_client_with_a_certificate_is_handed_over_with_its_name",
         test_tls_client_with_a_certificate_is_handed_over_with_its_name},
        {"test_tls_client_without_a_certificate_is_refused",
         test_tls_client_without_a_certificate_is_refused},
        {"test_tls_certificate_of_another_ca_is_refused",
         test_tls_certificate_of_another_ca_is_refused},
        {"test_tls_expired_certificate_is_refused", test_tls_expired_certificate_is_refused},
        {"test_tls_client_certificate_claiming_to_be_a_peer_is_refused",
         test_tls_client_certificate_claiming_to_be_a_peer_is_refused},
        {"test_tls_node3_certificate_claiming_node2_is_refused_and_node2_stays",
         test_tls_node3_certificate_claiming_node2_is_refused_and_node2_stays},
        {"test_tls_node3_with_its_own_certificate_is_accepted_as_node3",
         test_tls_node3_with_its_own_certificate_is_accepted_as_node3},
        {"test_tls_plaintext_hello_is_refused", test_tls_plaintext_hello_is_refused},
        {"test_tls_garbage_in_place_of_a_client_hello_is_refused",
         test_tls_garbage_in_place_of_a_client_hello_is_refused},
        {"test_tls_a_handshake_record_of_garbage_is_refused",
         test_tls_a_handshake_record_of_garbage_is_refused},
        {"test_tls_a_stalled_handshake_is_closed_after_the_hello_timeout",
         test_tls_a_stalled_handshake_is_closed_after_the_hello_timeout},
        {"test_tls_handshake_to_a_plaintext_node_is_refused",
         test_tls_handshake_to_a_plaintext_node_is_refused},
        {"test_tls_a_peer_whose_certificate_names_another_address_is_not_linked",
         test_tls_a_peer_whose_certificate_names_another_address_is_not_linked},
        {"test_tls_reload_takes_new_files_and_keeps_the_old_when_one_fails",
         test_tls_reload_takes_new_files_and_keeps_the_old_when_one_fails},
        {"test_tls_files_that_do_not_load_are_refused_with_their_name",
         test_tls_files_that_do_not_load_are_refused_with_their_name},
        CU_TEST_INFO_NULL,
};

static int tls_suite_init(void)
{
	if (certs_make(&certs) != 0)
		return 1;
	use_tls = true;
	return suite_init();
}

static int tls_suite_clean(void)
{
	use_tls = false;
	certs_remove(&certs);
	return suite_clean();
}

static CU_SuiteInfo suites[] = {
        {"exchange", suite_init, suite_clean, NULL, NULL, exchange_tests},
        {"link", suite_init, suite_clean, NULL, NULL, link_tests},
        {"hostile", suite_init, suite_clean, NULL, NULL, hostile_tests},
        {"config", suite_init, suite_clean, NULL, NULL, config_tests},
        {"tls", tls_suite_init, tls_suite_clean, NULL, NULL, tls_tests},
        CU_SUITE_INFO_NULL,
};

/* Open descriptors of this process. */
static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 4096; fd++)
		n += fcntl(fd, F_GETFD) != -1;
	return n;
}

/* The tests close every socket they or their transports opened: a leak fails the run. */
int main(int argc, char **argv)
{
	int fds = count_fds();
	int rc = cu_main(argc, argv, suites);

	if (count_fds() != fds) {
		fprintf(stderr, "test_transport: %d descriptors open before, %d after\n", fds,
		        count_fds());
		return rc ? rc : 1;
	}
	return rc;
}
