/* transport.c - the node's TCP transport: hello, framed Raft and application frames, redial. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "raft/codec.h"
#include "raft/crc32c.h"
#include "raft/le.h"
#include "raft/tls.h"
#include "raft/transport.h"
#include "raft/transport_internal.h"

/*
 * Wire format (man raftfs(5), "Network protocol"). All integers little endian.
 *
 * Every connection opens with one HELLO of RAFT_TRANSPORT_HELLO_BYTES (24):
 *
 *   0   4  magic "RFTP"
 *   4   2  version (RAFT_TRANSPORT_VERSION, 2)
 *   6   1  kind: 1 peer, 2 client
 *   7   1  zero
 *   8   4  sender node id (peers; 0 for clients)
 *   12  8  cluster id (raft_transport_cluster_id of the cluster list)
 *   20  4  CRC32C of bytes 0..19
 *
 * The magic is checked as soon as 4 bytes have arrived, so a stranger is turned away at once.
 * A client connection belongs to the daemon after its hello (kv/proto.h frames follow). On a
 * peer connection, frames follow, each a header of RAFT_TRANSPORT_FRAME_HEADER_BYTES (12) and
 * a payload:
 *
 *   0   4  payload length (<= RAFT_TRANSPORT_MAX_PAYLOAD_BYTES)
 *   4   1  kind: 1 Raft message, 2 application frame
 *   5   3  zero
 *   8   4  CRC32C of bytes 0..7 and the payload
 *
 * A Raft message's payload is exactly one raft/codec.h message frame (whose own length and CRC
 * the codec checks again); an application frame's payload is opaque to the transport.
 * The length is checked when the header arrives, the CRC once the whole frame has, and only
 * then is a payload decoded or handed on. Anything malformed closes the connection.
 *
 * Connections are one-way: the dialing node sends, the accepting node only reads. A dialer
 * that receives a byte closes the connection (nothing is ever sent that way).
 *
 * With TLS (cfg.tls) all of this travels inside a TLS session that starts right after the TCP
 * connect: the first byte an accepted connection sends tells a TLS handshake (0x16) from a
 * plaintext hello ('R') or garbage, and anything but a handshake is refused at once. The hello
 * timeout counts from the accept, over the handshake and the hello. A peer's hello is believed
 * only when its certificate chains to the peer CA and names, in its subjectAltName, the address
 * the cluster list gives the node id it claims; a client's when its certificate chains to the
 * client CA (raft/tls.h).
 */

#define HELLO_MAGIC "RFTP"
#define TLS_RECORD_HANDSHAKE 0x16u /* the first byte of a TLS ClientHello */
#define FRAME_KIND_RAFT RAFT_TRANSPORT_FRAME_RAFT
#define FRAME_KIND_APP RAFT_TRANSPORT_FRAME_APP
/* Frames at most this big are copied into the output buffer (so small ones coalesce into one
 * write); bigger ones are handed over by reference. */
#define COPY_FRAME_BYTES 4096u
#define ADDR_TEXT_BYTES 32u /* "255.255.255.255:65535" */
#define LISTEN_BACKLOG 128
#define LISTEN_RETRY_MS 100u /* after accept() fails (EMFILE), listen again after this */
#define LOG_MSG_BYTES 512u

/* Our outgoing connection to one peer, and what we know of its incoming one. */
struct tr_link {
	struct raft_transport *t;
	uint32_t id;
	struct sockaddr_in addr;
	char name[ADDR_TEXT_BYTES];
	char host[RAFT_TRANSPORT_HOST_BYTES]; /* the IP its certificate must name (TLS) */
	/* While TCP connects: fd and connect_ev (EV_WRITE with the connect timeout); then bev. At
	 * most one of connect_ev and bev is set; neither while waiting to redial. */
	evutil_socket_t fd;
	struct event *connect_ev;
	struct bufferevent *bev;
	/* Frames queued this loop turn (and, until the link is up, since it dialed), written at
	 * its end by raft_transport_write_now: the link's part of the queue beside bev's output. */
	struct evbuffer *staged;
	bool connected; /* the hello may leave (TLS: the handshake is done); implies bev */
	bool failing; /* the last dial failed: further failures are logged at debug level */
	uint64_t connected_at_ms;
	unsigned backoff_ms; /* delay before the next redial, in [MIN, MAX] */
	struct event *redial;
	struct tr_conn *in; /* the accepted connection from this peer, or NULL */
	struct raft_transport_peer_stats st;
};

/* An accepted connection: waiting for its hello (link == NULL), or a peer's. With TLS it starts
 * with fd and peek only (the first byte decides), then bev takes fd over. */
struct tr_conn {
	struct raft_transport *t;
	evutil_socket_t fd; /* -1 once bev owns it */
	struct event *peek; /* TLS: waiting for the first byte */
	struct event *deadline; /* the hello timeout, from the accept; NULL once a peer's */
	struct bufferevent *bev;
	bool handshaken; /* TLS: the handshake is done */
	char remote[ADDR_TEXT_BYTES];
	struct tr_link *link;
	struct tr_conn *prev, *next;
};

struct raft_transport {
	struct event_base *base;
	struct raft_transport_config cfg;
	struct raft_transport_cbs cbs;
	struct sockaddr_in self_addr;
	char self_name[ADDR_TEXT_BYTES];
	struct evconnlistener *listener;
	struct event *relisten;
	struct tr_link links[RAFT_MAX_NODES]; /* every node but self */
	unsigned n_links;
	struct tr_conn *conns; /* all accepted connections */
	struct event *write_ev; /* active: queued frames are written at the end of this turn */
	bool write_soon; /* write_ev is active */
	unsigned n_pending; /* of which still without hello, <= RAFT_TRANSPORT_MAX_PENDING_CONNS */
	struct raft_transport_stats st; /* the global counters; peers[] live in links */
	char errmsg[RAFT_TRANSPORT_ERRMSG_BYTES];
};

/* --- small helpers ---------------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timeval tv_of_ms(unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000u, .tv_usec = (ms % 1000u) * 1000};

	return tv;
}

static void addr_text(const struct sockaddr_in *sa, char *out)
{
	char ip[INET_ADDRSTRLEN];

	if (!inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip)))
		strcpy(ip, "?");
	snprintf(out, ADDR_TEXT_BYTES, "%s:%u", ip, (unsigned)ntohs(sa->sin_port));
}

static void errf(char *err, size_t err_len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (!err || err_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

static void tlog(struct raft_transport *t, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void tlog(struct raft_transport *t, int level, const char *fmt, ...)
{
	char msg[LOG_MSG_BYTES];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (t->cbs.log)
		t->cbs.log(t->cbs.ctx, level, msg);
	else if (level >= 1)
		fprintf(stderr, "raftfs transport %u: %s\n", (unsigned)t->cfg.self_id, msg);
}

/* Records why a send failed (raft_transport_errmsg) and returns rc. */
static int fail(struct raft_transport *t, int rc, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(struct raft_transport *t, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
	va_end(ap);
	return rc;
}

static struct tr_link *link_of(struct raft_transport *t, uint32_t id)
{
	for (unsigned i = 0; i < t->n_links; i++)
		if (t->links[i].id == id)
			return &t->links[i];
	return NULL;
}

/* Debug-build invariants: a connected link has a connection, a backoff within its bounds, and
 * the pending count matches the accepted connections without a hello. */
static void check_invariants(const struct raft_transport *t)
{
#ifdef RAFT_DEBUG
	unsigned pending = 0;

	for (unsigned i = 0; i < t->n_links; i++) {
		const struct tr_link *l = &t->links[i];

		assert(!l->connected || l->bev != NULL);
		assert(!(l->bev && l->connect_ev) && (l->fd < 0 || !l->bev));
		assert(l->backoff_ms >= RAFT_TRANSPORT_BACKOFF_MIN_MS &&
		       l->backoff_ms <= RAFT_TRANSPORT_BACKOFF_MAX_MS);
		assert(!l->in || l->in->link == l);
	}
	for (const struct tr_conn *c = t->conns; c; c = c->next)
		if (!c->link)
			pending++;
	assert(pending == t->n_pending && pending <= RAFT_TRANSPORT_MAX_PENDING_CONNS);
#else
	(void)t;
#endif
}

/* --- addresses and the cluster list ----------------------------------------------------------- */

static int parse_ipv4(const char *host, uint16_t port, struct sockaddr_in *out)
{
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons(port);
	return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

/* Decimal digits only, no sign or spaces, value <= max. */
static int parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* One item "id=host:port" of len bytes at s. */
static int parse_item(const char *s, size_t len, struct raft_transport_peer *p, char *err,
                      size_t err_len)
{
	const char *eq = memchr(s, '=', len);
	const char *colon = NULL;
	struct sockaddr_in sa;
	uint64_t v;
	size_t host_len;
	int shown = len > 80 ? 80 : (int)len;

	if (!eq) {
		errf(err, err_len, "cluster item '%.*s': missing '=' between node id and address",
		     shown, s);
		return -1;
	}
	if (parse_uint(s, (size_t)(eq - s), UINT32_MAX, &v) != 0 || v == 0) {
		errf(err, err_len, "cluster item '%.*s': node id must be a number from 1 to %u",
		     shown, s, (unsigned)UINT32_MAX);
		return -1;
	}
	p->id = (uint32_t)v;
	for (const char *q = eq + 1; q < s + len; q++)
		if (*q == ':')
			colon = q;
	if (!colon) {
		errf(err, err_len, "cluster item '%.*s': missing ':port' after the host", shown, s);
		return -1;
	}
	host_len = (size_t)(colon - (eq + 1));
	if (host_len == 0 || host_len >= RAFT_TRANSPORT_HOST_BYTES) {
		errf(err, err_len, "cluster item '%.*s': bad host", shown, s);
		return -1;
	}
	memcpy(p->host, eq + 1, host_len);
	p->host[host_len] = '\0';
	if (parse_uint(colon + 1, (size_t)(s + len - colon - 1), 65535, &v) != 0 || v == 0) {
		errf(err, err_len, "cluster item '%.*s': port must be a number from 1 to 65535",
		     shown, s);
		return -1;
	}
	p->port = (uint16_t)v;
	if (parse_ipv4(p->host, p->port, &sa) != 0) {
		errf(err, err_len, "cluster item '%.*s': host '%s' is not an IPv4 address", shown,
		     s, p->host);
		return -1;
	}
	/* Normal form, so that "127.0.0.1" is spelled one way in the cluster id. */
	inet_ntop(AF_INET, &sa.sin_addr, p->host, sizeof(p->host));
	return 0;
}

/* Distinct nonzero ids, valid IPv4 hosts, nonzero ports, distinct addresses. */
static int check_peers(const struct raft_transport_peer *peers, unsigned n, char *err,
                       size_t err_len)
{
	struct sockaddr_in sa[RAFT_MAX_NODES];

	if (n == 0 || n > RAFT_MAX_NODES) {
		errf(err, err_len, "a cluster has 1 to %u nodes, not %u", RAFT_MAX_NODES, n);
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		if (peers[i].id == 0) {
			errf(err, err_len, "node id 0 is reserved");
			return -1;
		}
		if (memchr(peers[i].host, '\0', sizeof(peers[i].host)) == NULL ||
		    parse_ipv4(peers[i].host, peers[i].port, &sa[i]) != 0) {
			errf(err, err_len, "node %u: host is not an IPv4 address",
			     (unsigned)peers[i].id);
			return -1;
		}
		if (peers[i].port == 0) {
			errf(err, err_len, "node %u: port 0", (unsigned)peers[i].id);
			return -1;
		}
		for (unsigned j = 0; j < i; j++) {
			if (peers[j].id == peers[i].id) {
				errf(err, err_len, "node id %u appears twice",
				     (unsigned)peers[i].id);
				return -1;
			}
			if (sa[j].sin_addr.s_addr == sa[i].sin_addr.s_addr &&
			    sa[j].sin_port == sa[i].sin_port) {
				errf(err, err_len, "address %s:%u appears twice (nodes %u and %u)",
				     peers[i].host, (unsigned)peers[i].port, (unsigned)peers[j].id,
				     (unsigned)peers[i].id);
				return -1;
			}
		}
	}
	return 0;
}

int raft_transport_parse_cluster(const char *list, struct raft_transport_config *cfg, char *err,
                                 size_t err_len)
{
	struct raft_transport_peer peers[RAFT_MAX_NODES];
	unsigned n = 0;
	const char *p = list;

	if (!list || !cfg || list[0] == '\0') {
		errf(err, err_len, "empty cluster list");
		return RAFT_EINVAL;
	}
	memset(peers, 0, sizeof(peers));
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == 0) {
			errf(err, err_len, "cluster list: item %u is empty", n + 1);
			return RAFT_EINVAL;
		}
		if (n == RAFT_MAX_NODES) {
			errf(err, err_len, "cluster list: more than %u nodes", RAFT_MAX_NODES);
			return RAFT_EINVAL;
		}
		if (parse_item(p, len, &peers[n], err, err_len) != 0)
			return RAFT_EINVAL;
		n++;
		if (!end)
			break;
		p = end + 1;
	}
	if (check_peers(peers, n, err, err_len) != 0)
		return RAFT_EINVAL;
	memcpy(cfg->peers, peers, sizeof(peers));
	cfg->n_peers = n;
	cfg->cluster_id = raft_transport_cluster_id(peers, n);
	return RAFT_OK;
}

static uint64_t fnv1a64(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

uint64_t raft_transport_cluster_id(const struct raft_transport_peer *peers, unsigned n_peers)
{
	unsigned order[RAFT_MAX_NODES];
	uint64_t h = 0xcbf29ce484222325ull;

	if (n_peers > RAFT_MAX_NODES)
		return 0;
	for (unsigned i = 0; i < n_peers; i++) {
		unsigned j = i;

		while (j > 0 && peers[order[j - 1]].id > peers[i].id) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	for (unsigned i = 0; i < n_peers; i++) {
		const struct raft_transport_peer *p = &peers[order[i]];
		struct sockaddr_in sa;
		char ip[INET_ADDRSTRLEN], item[ADDR_TEXT_BYTES + 16];

		if (memchr(p->host, '\0', sizeof(p->host)) == NULL ||
		    parse_ipv4(p->host, p->port, &sa) != 0)
			return 0;
		inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
		snprintf(item, sizeof(item), "%s%u=%s:%u", i ? "," : "", (unsigned)p->id, ip,
		         (unsigned)p->port);
		h = fnv1a64(h, item);
	}
	return h;
}

/* --- hello ------------------------------------------------------------------------------------ */

void raft_transport_hello_encode(unsigned char *out, enum raft_transport_conn_kind kind,
                                 uint32_t node_id, uint64_t cluster_id)
{
	memcpy(out, HELLO_MAGIC, 4);
	raft_le_put16(out + 4, RAFT_TRANSPORT_VERSION);
	out[6] = (unsigned char)kind;
	out[7] = 0;
	raft_le_put32(out + 8, node_id);
	raft_le_put64(out + 12, cluster_id);
	raft_le_put32(out + 20, raft_crc32c(0, out, 20));
}

void raft_transport_frame_header(unsigned char *hdr, unsigned kind, const void *payload,
                                 uint32_t len)
{
	raft_le_put32(hdr, len);
	hdr[4] = (unsigned char)kind;
	hdr[5] = hdr[6] = hdr[7] = 0;
	raft_le_put32(hdr + 8, raft_crc32c(raft_crc32c(0, hdr, 8), payload, len));
}

/* --- accepted connections --------------------------------------------------------------------- */

/* Takes c off the list of accepted connections. */
static void conn_unlink(struct tr_conn *c)
{
	struct raft_transport *t = c->t;

	if (c->prev)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

static void conn_close(struct tr_conn *c)
{
	struct raft_transport *t = c->t;

	conn_unlink(c);
	if (c->link)
		c->link->in = NULL;
	else
		t->n_pending--;
	if (c->peek)
		event_free(c->peek);
	if (c->deadline)
		event_free(c->deadline);
	if (c->bev)
		bufferevent_free(c->bev);
	else if (c->fd >= 0)
		evutil_closesocket(c->fd);
	free(c);
	check_invariants(t);
}

/* Closes c for a protocol violation, saying who and why. */
static void conn_reject(struct tr_conn *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void conn_reject(struct tr_conn *c, const char *fmt, ...)
{
	char why[LOG_MSG_BYTES / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	c->t->st.conns_rejected++;
	if (c->link)
		tlog(c->t, 2, "closing connection from %s (peer %u): %s", c->remote,
		     (unsigned)c->link->id, why);
	else
		tlog(c->t, 2, "closing connection from %s: %s", c->remote, why);
	conn_close(c);
}

/* The client is the daemon's from now on: we forget c but keep its bufferevent going. */
static void conn_hand_to_client(struct tr_conn *c, const char *cn)
{
	struct raft_transport *t = c->t;
	struct bufferevent *bev = c->bev;
	struct raft_transport_client who;
	char remote[ADDR_TEXT_BYTES], name[RAFT_TLS_CN_BYTES];
	int one = 1;

	memcpy(remote, c->remote, sizeof(remote));
	snprintf(name, sizeof(name), "%s", cn ? cn : "");
	/* replies are small and answer requests: none may wait for the client's delayed ACK */
	setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	c->bev = NULL;
	conn_unlink(c);
	t->n_pending--;
	event_free(c->deadline);
	free(c);
	t->st.clients++;
	tlog(t, 0, "client connection from %s%s%s", remote, cn ? " CN=" : "", name);
	check_invariants(t);
	who.remote = remote;
	who.tls = cn != NULL;
	who.cn = cn ? name : NULL;
	t->cbs.on_client(t->cbs.ctx, bev, &who);
}

/* Binds c to the peer it says it is; an older connection from that peer is stale (the peer
 * redialed, e.g. after a partition) and is closed. */
static void conn_become_peer(struct tr_conn *c, struct tr_link *l)
{
	struct raft_transport *t = c->t;

	if (l->in) {
		tlog(t, 1, "peer %u reconnected from %s: closing its older connection from %s",
		     (unsigned)l->id, c->remote, l->in->remote);
		conn_close(l->in);
	}
	t->n_pending--;
	c->link = l;
	l->in = c;
	event_free(c->deadline);
	c->deadline = NULL;
	tlog(t, 1, "accepted peer %u from %s%s", (unsigned)l->id, c->remote,
	     t->cfg.tls ? " (TLS)" : "");
	check_invariants(t);
}

/* A client hello: handed over, or refused. Returns -1 (c is gone either way). */
static int conn_client_hello(struct tr_conn *c)
{
	struct raft_transport *t = c->t;
	char cn[RAFT_TLS_CN_BYTES], why[LOG_MSG_BYTES / 2];

	if (!t->cbs.on_client) {
		conn_reject(c, "client connections are not served here");
		return -1;
	}
	if (!t->cfg.tls) {
		conn_hand_to_client(c, NULL);
		return -1;
	}
	if (raft_tls_check_client(t->cfg.tls, bufferevent_openssl_get_ssl(c->bev), cn, sizeof(cn),
	                          why, sizeof(why)) != 0) {
		conn_reject(c, "client refused: %s", why);
		return -1;
	}
	conn_hand_to_client(c, cn);
	return -1;
}

/* A peer hello naming l: with TLS, believed only if the certificate is that node's. */
static int conn_peer_hello(struct tr_conn *c, struct tr_link *l)
{
	struct raft_transport *t = c->t;
	char why[LOG_MSG_BYTES / 2];

	if (t->cfg.tls &&
	    raft_tls_check_peer(t->cfg.tls, bufferevent_openssl_get_ssl(c->bev), l->host, why,
	                        sizeof(why)) != 0) {
		conn_reject(c, "hello claims to be peer %u, but %s", (unsigned)l->id, why);
		return -1;
	}
	conn_become_peer(c, l);
	return 0;
}

/* Returns 0 when c passed its hello (or still waits for it), -1 when c is gone (closed or
 * handed to on_client). */
static int conn_read_hello(struct tr_conn *c, struct evbuffer *in)
{
	struct raft_transport *t = c->t;
	unsigned char h[RAFT_TRANSPORT_HELLO_BYTES];
	size_t avail = evbuffer_get_length(in);
	uint32_t id;
	uint64_t cluster;
	struct tr_link *l;

	evbuffer_copyout(in, h, avail < sizeof(h) ? avail : sizeof(h));
	if (avail >= 1 && h[0] == TLS_RECORD_HANDSHAKE && !t->cfg.tls) {
		conn_reject(c,
		            "a TLS handshake on a port without TLS (a node or client with TLS "
		            "options)");
		return -1;
	}
	if (avail >= 4 && memcmp(h, HELLO_MAGIC, 4) != 0) {
		conn_reject(c, "bad magic %02x%02x%02x%02x (not a raftfs node or client)", h[0],
		            h[1], h[2], h[3]);
		return -1;
	}
	if (avail < sizeof(h)) {
		bufferevent_setwatermark(c->bev, EV_READ, avail < 4 ? 4 : sizeof(h), 0);
		return 0;
	}
	if (raft_crc32c(0, h, 20) != raft_le_get32(h + 20)) {
		conn_reject(c, "hello checksum mismatch");
		return -1;
	}
	if (raft_le_get16(h + 4) != RAFT_TRANSPORT_VERSION) {
		conn_reject(c, "protocol version %u, this node speaks %u", raft_le_get16(h + 4),
		            RAFT_TRANSPORT_VERSION);
		return -1;
	}
	if (h[7] != 0) {
		conn_reject(c, "malformed hello (reserved byte %u)", h[7]);
		return -1;
	}
	cluster = raft_le_get64(h + 12);
	/* a client may know only some of the nodes, so its list need not give our id: it sends 0
	 * (or our id); peers must name exactly our cluster */
	if (cluster != t->cfg.cluster_id && !(cluster == 0 && h[6] == RAFT_TRANSPORT_KIND_CLIENT)) {
		conn_reject(c, "cluster id %016llx, ours is %016llx (different cluster list)",
		            (unsigned long long)cluster, (unsigned long long)t->cfg.cluster_id);
		return -1;
	}
	id = raft_le_get32(h + 8);
	evbuffer_drain(in, sizeof(h));
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	if (h[6] == RAFT_TRANSPORT_KIND_CLIENT)
		return conn_client_hello(c);
	if (h[6] != RAFT_TRANSPORT_KIND_PEER) {
		conn_reject(c, "unknown connection kind %u", h[6]);
		return -1;
	}
	if (id == t->cfg.self_id) {
		conn_reject(c, "peer claims this node's own id %u", (unsigned)id);
		return -1;
	}
	l = link_of(t, id);
	if (!l) {
		conn_reject(c, "peer id %u is not in the cluster", (unsigned)id);
		return -1;
	}
	return conn_peer_hello(c, l);
}

/* Returns -1 when the frame was rejected and c closed. */
static int deliver_raft(struct tr_conn *c, const unsigned char *payload, uint32_t len)
{
	struct raft_transport *t = c->t;
	struct raft_msg m;
	int rc;

	memset(&m, 0, sizeof(m));
	rc = raft_codec_decode_msg(payload, len, &m);
	if (rc != RAFT_OK) {
		/* Over the CRC yet undecodable: a bug or a hostile sender, not line noise. */
		conn_reject(c, "undecodable Raft message: %s", raft_strerror(rc));
		return -1;
	}
	if (m.to != t->cfg.self_id || m.from != c->link->id) {
		t->st.dropped_received++;
		tlog(t, 2, "dropping %s from %s (peer %u): from %u to %u, expected from %u to %u",
		     raft_msg_type_name(m.type), c->remote, (unsigned)c->link->id, (unsigned)m.from,
		     (unsigned)m.to, (unsigned)c->link->id, (unsigned)t->cfg.self_id);
	} else {
		c->link->st.msgs_received++;
		t->cbs.recv_msg(t->cbs.ctx, &m);
	}
	raft_codec_msg_free(&m);
	return 0;
}

static void deliver_app(struct tr_conn *c, const unsigned char *payload, uint32_t len)
{
	struct raft_transport *t = c->t;

	if (!t->cbs.recv_app) {
		t->st.dropped_received++;
		tlog(t, 0, "dropping an application frame from peer %u: no receiver",
		     (unsigned)c->link->id);
		return;
	}
	c->link->st.apps_received++;
	t->cbs.recv_app(t->cbs.ctx, c->link->id, payload, len);
}

/* Handles every whole frame in the input; returns with a watermark set for the next one. */
static void conn_read_frames(struct tr_conn *c, struct evbuffer *in)
{
	for (;;) {
		unsigned char h[RAFT_TRANSPORT_FRAME_HEADER_BYTES];
		size_t avail = evbuffer_get_length(in);
		uint32_t len;
		size_t total;
		unsigned char *p;

		if (avail < sizeof(h)) {
			bufferevent_setwatermark(c->bev, EV_READ, sizeof(h), 0);
			return;
		}
		evbuffer_copyout(in, h, sizeof(h));
		len = raft_le_get32(h);
		if ((h[4] != FRAME_KIND_RAFT && h[4] != FRAME_KIND_APP) || h[5] || h[6] || h[7]) {
			conn_reject(c, "malformed frame header (kind %u)", h[4]);
			return;
		}
		if (len > RAFT_TRANSPORT_MAX_PAYLOAD_BYTES) {
			conn_reject(c, "frame of %lu bytes is over the limit of %lu",
			            (unsigned long)len,
			            (unsigned long)RAFT_TRANSPORT_MAX_PAYLOAD_BYTES);
			return;
		}
		total = sizeof(h) + len;
		if (avail < total) {
			bufferevent_setwatermark(c->bev, EV_READ, total, 0);
			return;
		}
		p = evbuffer_pullup(in, (ev_ssize_t)total);
		if (!p) {
			conn_reject(c, "out of memory for a frame of %lu bytes",
			            (unsigned long)len);
			return;
		}
		if (raft_crc32c(raft_crc32c(0, p, 8), p + sizeof(h), len) != raft_le_get32(p + 8)) {
			conn_reject(c, "frame checksum mismatch");
			return;
		}
		if (h[4] == FRAME_KIND_RAFT) {
			if (deliver_raft(c, p + sizeof(h), len) != 0)
				return;
		} else {
			deliver_app(c, p + sizeof(h), len);
		}
		evbuffer_drain(in, total);
	}
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct tr_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (!c->link && conn_read_hello(c, in) != 0)
		return;
	if (c->link)
		conn_read_frames(c, in);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tr_conn *c = arg;
	struct raft_transport *t = c->t;
	char why[LOG_MSG_BYTES / 2];

	if (what & BEV_EVENT_CONNECTED) {
		c->handshaken = true; /* TLS: the hello may come */
		tlog(t, 0, "TLS handshake with %s done", c->remote);
		return;
	}
	if (t->cfg.tls && !c->handshaken) {
		raft_tls_bev_error(bev, why, sizeof(why));
		conn_reject(c, "TLS handshake failed: %s", why);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		if (t->cfg.tls)
			raft_tls_bev_error(bev, why, sizeof(why));
		else
			snprintf(why, sizeof(why), "%s",
			         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		tlog(t, 1, "connection from %s%s failed: %s", c->remote, c->link ? " (a peer)" : "",
		     why);
	} else {
		tlog(t, c->link ? 1 : 0, "connection from %s%s closed", c->remote,
		     c->link ? " (a peer)" : "");
	}
	conn_close(c);
}

/* The hello timeout: counted from the accept, whatever arrives meanwhile (a byte a second does
 * not keep a connection waiting forever), over the TLS handshake and the hello. */
static void conn_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tr_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->t->cfg.tls && !c->handshaken)
		conn_reject(c, "no TLS handshake and hello within %u ms",
		            c->t->cfg.hello_timeout_ms);
	else
		conn_reject(c, "no hello within %u ms", c->t->cfg.hello_timeout_ms);
}

/* The bufferevent that reads c's hello and frames, on fd (which it owns from now on). */
static int conn_start_stream(struct tr_conn *c)
{
	struct raft_transport *t = c->t;

	if (t->cfg.tls) {
		SSL *ssl = raft_tls_accept_ssl(t->cfg.tls);

		if (!ssl)
			return -1;
		/* deferred callbacks: none runs inside a write into the bufferevent */
		c->bev = bufferevent_openssl_socket_new(
		        t->base, c->fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
		        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (!c->bev)
			return -1; /* out of memory: whether ssl went with it, libevent does not say */
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else {
		c->bev = bufferevent_socket_new(t->base, c->fd, BEV_OPT_CLOSE_ON_FREE);
		if (!c->bev)
			return -1;
	}
	c->fd = -1;
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, t->cfg.tls ? 0 : 4, 0);
	bufferevent_enable(c->bev, EV_READ);
	return 0;
}

/* TLS: the first byte says what the other side speaks; only a handshake goes further. */
static void conn_peek_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tr_conn *c = arg;
	unsigned char b;
	ssize_t n;

	(void)what;
	n = recv(fd, &b, 1, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		event_add(c->peek, NULL);
		return;
	}
	if (n <= 0) {
		tlog(c->t, 0, "connection from %s closed before its handshake", c->remote);
		conn_close(c);
		return;
	}
	if (b == (unsigned char)HELLO_MAGIC[0]) {
		conn_reject(c, "a plaintext hello on a TLS port (a node or client without TLS)");
		return;
	}
	if (b != TLS_RECORD_HANDSHAKE) {
		conn_reject(c, "not a TLS handshake (first byte 0x%02x)", b);
		return;
	}
	event_free(c->peek);
	c->peek = NULL;
	if (conn_start_stream(c) != 0) {
		tlog(c->t, 2, "refusing connection from %s: out of memory", c->remote);
		conn_close(c);
	}
}

void raft_transport_accepted(struct raft_transport *t, evutil_socket_t fd,
                             const struct sockaddr *sa, int socklen)
{
	struct tr_conn *c;
	char remote[ADDR_TEXT_BYTES] = "?";
	struct timeval tv = tv_of_ms(t->cfg.hello_timeout_ms);

	if (sa->sa_family == AF_INET && socklen >= (int)sizeof(struct sockaddr_in))
		addr_text((const struct sockaddr_in *)(const void *)sa, remote);
	if (t->n_pending >= RAFT_TRANSPORT_MAX_PENDING_CONNS) {
		tlog(t, 2, "refusing connection from %s: %u connections already wait for a hello",
		     remote, t->n_pending);
		t->st.conns_rejected++;
		evutil_closesocket(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		tlog(t, 2, "refusing connection from %s: out of memory", remote);
		evutil_closesocket(fd);
		return;
	}
	c->t = t;
	c->fd = fd;
	memcpy(c->remote, remote, sizeof(remote));
	c->next = t->conns;
	if (t->conns)
		t->conns->prev = c;
	t->conns = c;
	t->n_pending++;
	c->deadline = evtimer_new(t->base, conn_deadline_cb, c);
	if (!c->deadline || evtimer_add(c->deadline, &tv) != 0)
		goto nomem;
	if (t->cfg.tls) {
		c->peek = event_new(t->base, fd, EV_READ, conn_peek_cb, c);
		if (!c->peek || event_add(c->peek, NULL) != 0)
			goto nomem;
	} else if (conn_start_stream(c) != 0) {
		goto nomem;
	}
	tlog(t, 0, "connection from %s", remote);
	check_invariants(t);
	return;
nomem:
	tlog(t, 2, "refusing connection from %s: out of memory", remote);
	conn_close(c);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
	(void)lis;
	raft_transport_accepted(arg, fd, sa, socklen);
}

static void relisten_cb(evutil_socket_t fd, short what, void *arg)
{
	struct raft_transport *t = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(t->listener);
}

/* accept() failed (out of descriptors, say): pause listening rather than spin on it. */
static void accept_error_cb(struct evconnlistener *lis, void *arg)
{
	struct raft_transport *t = arg;
	struct timeval tv = tv_of_ms(LISTEN_RETRY_MS);

	tlog(t, 2, "accept on %s failed: %s; pausing %u ms", t->self_name,
	     evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), LISTEN_RETRY_MS);
	evconnlistener_disable(lis);
	evtimer_add(t->relisten, &tv);
}

/* --- outgoing links --------------------------------------------------------------------------- */

static void link_schedule_redial(struct tr_link *l)
{
	struct timeval tv = tv_of_ms(l->backoff_ms);

	evtimer_add(l->redial, &tv);
	l->backoff_ms *= 2;
	if (l->backoff_ms > RAFT_TRANSPORT_BACKOFF_MAX_MS)
		l->backoff_ms = RAFT_TRANSPORT_BACKOFF_MAX_MS;
}

/* Closes whatever l holds of a connection (a connect under way, a bufferevent) and drops what
 * it had queued. */
static void link_release(struct tr_link *l)
{
	if (l->connect_ev) {
		event_free(l->connect_ev);
		l->connect_ev = NULL;
	}
	if (l->fd >= 0) {
		evutil_closesocket(l->fd);
		l->fd = -1;
	}
	if (l->bev)
		bufferevent_free(l->bev);
	l->bev = NULL;
	l->connected = false;
	evbuffer_drain(l->staged, evbuffer_get_length(l->staged));
}

/* The connection is gone (or never came): drop it with what it had queued and redial later.
 * A connection that lived through a whole maximum backoff counts as a success: the delays
 * start again from the minimum. One that dies young (a peer that accepts and then refuses us)
 * keeps doubling them, so a misconfigured peer is not hammered. */
static void link_down(struct tr_link *l, const char *why)
{
	struct raft_transport *t = l->t;

	if (l->connected) {
		if (now_ms() - l->connected_at_ms >= RAFT_TRANSPORT_BACKOFF_MAX_MS)
			l->backoff_ms = RAFT_TRANSPORT_BACKOFF_MIN_MS;
		tlog(t, 1, "connection to peer %u at %s lost: %s", (unsigned)l->id, l->name, why);
	} else {
		tlog(t, l->failing ? 0 : 1, "cannot connect to peer %u at %s: %s", (unsigned)l->id,
		     l->name, why);
		l->failing = true;
	}
	link_release(l);
	link_schedule_redial(l);
	check_invariants(t);
}

/* The link is up: the hello, then what was queued meanwhile, leave now. */
static void link_up(struct tr_link *l)
{
	struct timeval tv = tv_of_ms(RAFT_TRANSPORT_WRITE_TIMEOUT_MS);

	l->connected = true;
	l->failing = false;
	l->connected_at_ms = now_ms();
	l->st.connects++;
	/* from now on the write timeout only: we expect no byte back */
	bufferevent_set_timeouts(l->bev, NULL, &tv);
	tlog(l->t, 1, "connected to peer %u at %s%s", (unsigned)l->id, l->name,
	     l->t->cfg.tls ? " (TLS)" : "");
	(void)raft_transport_write_now(l->bev, l->staged);
}

static void link_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tr_link *l = arg;
	char why[LOG_MSG_BYTES / 2];

	if (what & BEV_EVENT_CONNECTED) {
		link_up(l); /* TLS: the handshake is done */
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		link_down(l, l->connected ? "no progress sending" : "TLS handshake timed out");
		return;
	}
	if (l->t->cfg.tls) {
		char e[LOG_MSG_BYTES / 2 - 32];
		raft_tls_bev_error(bev, e, sizeof(e));
		snprintf(why, sizeof(why), "%s%s", l->connected ? "" : "TLS handshake failed: ", e);
	} else if (what & BEV_EVENT_ERROR) {
		snprintf(why, sizeof(why), "%s",
		         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	} else {
		snprintf(why, sizeof(why), "closed by the peer");
	}
	link_down(l, why);
}

/* The bufferevent's own write event emptied the queue: from now on frames are written at the
 * end of the loop turn that queued them (raft_transport_write_now), without it. */
static void link_write_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	raft_transport_write_done(bev);
}

static void link_read_cb(struct bufferevent *bev, void *arg)
{
	struct tr_link *l = arg;

	(void)bev;
	link_down(l, "peer sent bytes on a send-only connection");
}

/* Opens a socket bound to our own address (port 0), so the peer sees us come from the address
 * the cluster list gives us: packet filters on that address then cut us off. */
static evutil_socket_t link_socket(struct tr_link *l, const char **why)
{
	struct sockaddr_in src = l->t->self_addr;
	evutil_socket_t fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	unsigned user_timeout = RAFT_TRANSPORT_WRITE_TIMEOUT_MS;
	int one = 1;

	if (fd < 0) {
		*why = strerror(errno);
		return -1;
	}
#ifdef IP_BIND_ADDRESS_NO_PORT
	/* Pick the port at connect time, from the 4-tuple: no ephemeral port exhaustion. */
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* The write timeout sees only our queue: bytes the kernel took and the peer never
	 * acknowledged (a partition that drops packets) stay in the socket's, retransmitted with a
	 * backoff that doubles across partitions and is not reset by the heal. A reply stuck there
	 * for 44 s kept a healed follower from catching up (nemesis seed 3028197). The same bound
	 * for the kernel's queue: the connection is closed and redialed, fresh. */
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
	src.sin_port = 0;
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
		*why = strerror(errno);
		close(fd);
		return -1;
	}
	return fd;
}

/* TCP is connected: the bufferevent that carries the hello and the frames, TLS or not. */
static void link_start_stream(struct tr_link *l)
{
	struct raft_transport *t = l->t;
	struct timeval tv = tv_of_ms(RAFT_TRANSPORT_WRITE_TIMEOUT_MS);
	unsigned char hello[RAFT_TRANSPORT_HELLO_BYTES];
	evutil_socket_t fd = l->fd;

	raft_transport_hello_encode(hello, RAFT_TRANSPORT_KIND_PEER, t->cfg.self_id,
	                            t->cfg.cluster_id);
	if (evbuffer_prepend(l->staged, hello, sizeof(hello)) != 0)
		goto nomem;
	if (t->cfg.tls) {
		SSL *ssl = raft_tls_dial_ssl(t->cfg.tls, l->host);

		if (!ssl)
			goto nomem;
		l->bev = bufferevent_openssl_socket_new(
		        t->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
		        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (!l->bev)
			goto nomem; /* whether ssl went with it, libevent does not say */
		bufferevent_openssl_set_allow_dirty_shutdown(l->bev, 1);
	} else {
		l->bev = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (!l->bev)
			goto nomem;
	}
	l->fd = -1;
	bufferevent_setcb(l->bev, link_read_cb, link_write_cb, link_event_cb, l);
	/* the handshake must finish within the write timeout, whichever way it waits */
	bufferevent_set_timeouts(l->bev, &tv, &tv);
	/* We never expect a byte back; reading shows us the peer closing. */
	if (bufferevent_enable(l->bev, EV_READ) != 0)
		goto nomem;
	if (!t->cfg.tls)
		link_up(l);
	return;
nomem:
	link_down(l, "out of memory");
}

static void link_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tr_link *l = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	event_free(l->connect_ev);
	l->connect_ev = NULL;
	if (what & EV_TIMEOUT) {
		link_down(l, "connect timed out");
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err) {
		link_down(l, strerror(err));
		return;
	}
	link_start_stream(l);
}

static void link_dial(struct tr_link *l)
{
	struct raft_transport *t = l->t;
	struct timeval tv = tv_of_ms(RAFT_TRANSPORT_WRITE_TIMEOUT_MS);
	const char *why = "out of memory";

	assert(!l->bev && !l->connect_ev && l->fd < 0);
	l->fd = link_socket(l, &why);
	if (l->fd < 0)
		goto fail;
	if (connect(l->fd, (struct sockaddr *)&l->addr, sizeof(l->addr)) != 0 &&
	    errno != EINPROGRESS) {
		why = strerror(errno);
		goto fail;
	}
	l->connect_ev = event_new(t->base, l->fd, EV_WRITE, link_connect_cb, l);
	if (!l->connect_ev || event_add(l->connect_ev, &tv) != 0)
		goto fail;
	return;
fail:
	link_down(l, why);
}

static void redial_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	link_dial(arg);
}

/* --- sending ---------------------------------------------------------------------------------- */

static void free_frame_cb(const void *data, size_t len, void *extra)
{
	(void)len;
	(void)extra;
	free((void *)data);
}

/* Bytes waiting for peer l: staged and in its bufferevent's output. */
static size_t link_queued(const struct tr_link *l)
{
	return raft_transport_queued(l->bev, l->staged);
}

/* Whether a frame of len more bytes may join l's queue: a link must be up (connected or
 * dialing), and its queue empty or short enough. Counts the drop otherwise. */
static int link_admit(struct tr_link *l, size_t len)
{
	struct raft_transport *t = l->t;
	size_t queued;

	if (!l->bev && !l->connect_ev) {
		l->st.dropped_not_connected++;
		return fail(t, RAFT_EBUSY, "peer %u is not connected", (unsigned)l->id);
	}
	queued = link_queued(l);
	if (queued > 0 &&
	    (queued >= t->cfg.max_queue_bytes || len > t->cfg.max_queue_bytes - queued)) {
		l->st.dropped_queue_full++;
		return fail(t, RAFT_EBUSY, "queue to peer %u is full (%lu bytes)", (unsigned)l->id,
		            (unsigned long)queued);
	}
	return RAFT_OK;
}

/* Seals frame (header + len payload bytes, malloc'd) and queues it; frame is consumed. */
static int link_enqueue(struct tr_link *l, unsigned char *frame, uint32_t len, unsigned kind)
{
	struct evbuffer *out = l->staged;
	size_t total = RAFT_TRANSPORT_FRAME_HEADER_BYTES + (size_t)len;
	int rc;

	raft_transport_frame_header(frame, kind, frame + RAFT_TRANSPORT_FRAME_HEADER_BYTES, len);
	if (total <= COPY_FRAME_BYTES) {
		rc = evbuffer_add(out, frame, total);
		free(frame);
	} else {
		rc = evbuffer_add_reference(out, frame, total, free_frame_cb, NULL);
		if (rc != 0)
			free(frame); /* not taken: the cleanup is not called */
	}
	if (rc != 0)
		return fail(l->t, RAFT_ENOMEM, "out of memory queueing to peer %u",
		            (unsigned)l->id);
	if (!l->t->write_soon) {
		l->t->write_soon = true;
		event_active(l->t->write_ev, EV_TIMEOUT, 0);
	}
	return RAFT_OK;
}

/* A copy of the snapshot message m with its chunk read through fill_snapshot into *chunk. */
static int fill_chunk(struct raft_transport *t, const struct raft_msg *m, struct raft_msg *copy,
                      void **chunk)
{
	const struct raft_msg_snapshot *s = &m->u.snapshot;

	if (!t->cbs.fill_snapshot)
		return fail(t, RAFT_EINVAL, "snapshot chunk without data and no fill_snapshot");
	if (s->len > RAFT_CODEC_MAX_CHUNK_BYTES)
		return fail(t, RAFT_ETOOBIG, "snapshot chunk of %lu bytes is over the limit",
		            (unsigned long)s->len);
	*chunk = malloc(s->len);
	if (!*chunk)
		return fail(t, RAFT_ENOMEM, "out of memory for a snapshot chunk");
	if (t->cbs.fill_snapshot(t->cbs.ctx, s->meta.index, s->offset, *chunk, s->len) != 0) {
		free(*chunk);
		*chunk = NULL;
		t->st.dropped_snapshot_fill++;
		tlog(t, 2,
		     "dropping snapshot chunk %llu+%lu of snapshot %llu to peer %u: read failed",
		     (unsigned long long)s->offset, (unsigned long)s->len,
		     (unsigned long long)s->meta.index, (unsigned)m->to);
		return fail(t, RAFT_EIO, "reading snapshot %llu at %llu failed",
		            (unsigned long long)s->meta.index, (unsigned long long)s->offset);
	}
	*copy = *m;
	copy->u.snapshot.data = *chunk;
	return RAFT_OK;
}

int raft_transport_send(struct raft_transport *t, const struct raft_msg *m)
{
	struct raft_codec_buf b;
	struct raft_msg copy;
	void *chunk = NULL;
	struct tr_link *l = link_of(t, m->to);
	size_t payload;
	int rc;

	if (!l)
		return fail(t, RAFT_EINVAL, "no peer %u to send %s to", (unsigned)m->to,
		            raft_msg_type_name(m->type));
	if (m->from != t->cfg.self_id)
		return fail(t, RAFT_EINVAL, "%s from %u is not this node's (%u)",
		            raft_msg_type_name(m->type), (unsigned)m->from,
		            (unsigned)t->cfg.self_id);
	rc = link_admit(l, 0); /* before reading a snapshot chunk for nothing */
	if (rc != RAFT_OK)
		return rc;
	if (m->type == RAFT_MSG_SNAPSHOT && !m->u.snapshot.data && m->u.snapshot.len > 0) {
		rc = fill_chunk(t, m, &copy, &chunk);
		if (rc != RAFT_OK)
			return rc;
		m = &copy;
	}
	raft_codec_buf_init(&b);
	rc = raft_codec_buf_reserve(&b, RAFT_TRANSPORT_FRAME_HEADER_BYTES);
	if (rc != RAFT_OK)
		goto out_chunk;
	b.len = RAFT_TRANSPORT_FRAME_HEADER_BYTES;
	rc = raft_codec_encode_msg(&b, m);
	free(chunk);
	chunk = NULL;
	if (rc != RAFT_OK) {
		rc = fail(t, rc, "encoding %s for peer %u: %s", raft_msg_type_name(m->type),
		          (unsigned)l->id, raft_strerror(rc));
		goto out_buf;
	}
	payload = b.len - RAFT_TRANSPORT_FRAME_HEADER_BYTES;
	if (payload > RAFT_TRANSPORT_MAX_PAYLOAD_BYTES) {
		rc = fail(t, RAFT_ETOOBIG, "%s of %lu bytes is over the frame limit",
		          raft_msg_type_name(m->type), (unsigned long)payload);
		goto out_buf;
	}
	rc = link_admit(l, b.len);
	if (rc != RAFT_OK)
		goto out_buf;
	rc = link_enqueue(l, b.data, (uint32_t)payload, FRAME_KIND_RAFT);
	if (rc == RAFT_OK)
		l->st.msgs_sent++;
	return rc; /* b.data consumed */
out_buf:
	raft_codec_buf_free(&b);
out_chunk:
	free(chunk);
	return rc;
}

int raft_transport_send_app(struct raft_transport *t, uint32_t to, const void *buf, size_t len)
{
	struct tr_link *l = link_of(t, to);
	unsigned char *frame;
	int rc;

	if (!l)
		return fail(t, RAFT_EINVAL, "no peer %u to send an application frame to",
		            (unsigned)to);
	if (len > RAFT_TRANSPORT_MAX_PAYLOAD_BYTES)
		return fail(t, RAFT_ETOOBIG, "application frame of %lu bytes is over the limit",
		            (unsigned long)len);
	if (len > 0 && !buf)
		return fail(t, RAFT_EINVAL, "application frame without bytes");
	rc = link_admit(l, RAFT_TRANSPORT_FRAME_HEADER_BYTES + len);
	if (rc != RAFT_OK)
		return rc;
	frame = malloc(RAFT_TRANSPORT_FRAME_HEADER_BYTES + len);
	if (!frame)
		return fail(t, RAFT_ENOMEM, "out of memory for an application frame");
	if (len > 0)
		memcpy(frame + RAFT_TRANSPORT_FRAME_HEADER_BYTES, buf, len);
	rc = link_enqueue(l, frame, (uint32_t)len, FRAME_KIND_APP);
	if (rc == RAFT_OK)
		l->st.apps_sent++;
	return rc;
}

static bool bev_is_tls(struct bufferevent *bev)
{
	return bufferevent_openssl_get_ssl(bev) != NULL;
}

/*
 * Makes a TLS bufferevent write its output now. libevent 2.1's socket-mode bufferevent_openssl
 * only arms its write event when bytes are added, so they would leave in the next loop turn:
 * after the fdatasync that raft_transport_flush is called before (kv/node.h, flush_sends), which
 * then no longer overlaps the followers' own (one put at one client took twice as long as
 * plaintext). Its write event's own callback, run here as the loop would run it, encrypts and
 * writes what the socket takes and keeps the event armed (with the write timeout) for the rest;
 * it holds a reference on the bufferevent meanwhile, and the callbacks it may raise are deferred
 * (BEV_OPT_DEFER_CALLBACKS), so none runs inside this call.
 */
static void tls_write_now(struct bufferevent *bev)
{
	event_callback_fn cb = event_get_callback(&bev->ev_write);

	if (cb)
		cb(event_get_fd(&bev->ev_write), EV_WRITE, event_get_callback_arg(&bev->ev_write));
}

int raft_transport_write_now(struct bufferevent *bev, struct evbuffer *staged)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	if (bev_is_tls(bev)) {
		/* Its write event stays enabled: bytes added to its output are encrypted and
		 * written at once, as far as the socket takes them, and the rest waits for the
		 * socket under the write timeout. Staging them first makes one add (and a few TLS
		 * records) of what this turn queued, not one per frame. */
		if (evbuffer_get_length(staged) > 0) {
			bufferevent_enable(bev, EV_WRITE);
			if (evbuffer_add_buffer(out, staged) != 0)
				return 1;
			tls_write_now(bev);
		}
		return evbuffer_get_length(out) > 0;
	}
	if (evbuffer_get_length(out) == 0 && evbuffer_get_length(staged) > 0) {
		/* no backlog: straight to the socket; an error is left to the bufferevent, whose
		 * own write of the rest then fails and reports it */
		(void)evbuffer_write(staged, bufferevent_getfd(bev));
	}
	if (evbuffer_get_length(staged) > 0 && evbuffer_add_buffer(out, staged) != 0)
		return 1;
	if (evbuffer_get_length(out) > 0) {
		/* the rest is the bufferevent's: its write timeout applies */
		bufferevent_enable(bev, EV_WRITE);
		return 1;
	}
	bufferevent_disable(bev, EV_WRITE); /* a no-op unless a backlog had it on */
	return 0;
}

void raft_transport_write_done(struct bufferevent *bev)
{
	if (!bev_is_tls(bev))
		bufferevent_disable(bev, EV_WRITE);
}

size_t raft_transport_queued(struct bufferevent *bev, const struct evbuffer *staged)
{
	size_t n = staged ? evbuffer_get_length(staged) : 0;

	return n + (bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0);
}

void raft_transport_flush(struct raft_transport *t)
{
	for (unsigned i = 0; i < t->n_links; i++) {
		struct tr_link *l = &t->links[i];

		if (l->connected)
			(void)raft_transport_write_now(l->bev, l->staged);
	}
}

/* The end of a loop turn that queued frames (write_ev was made active then, so it runs after
 * the callbacks already active): what they queued leaves now, in one write per peer. */
static void write_soon_cb(evutil_socket_t fd, short what, void *arg)
{
	struct raft_transport *t = arg;

	(void)fd;
	(void)what;
	t->write_soon = false;
	raft_transport_flush(t);
}

const char *raft_transport_errmsg(const struct raft_transport *t)
{
	return t->errmsg;
}

void raft_transport_stats(const struct raft_transport *t, struct raft_transport_stats *st)
{
	*st = t->st;
	st->n_peers = t->n_links;
	for (unsigned i = 0; i < t->n_links; i++) {
		const struct tr_link *l = &t->links[i];

		st->peers[i] = l->st;
		st->peers[i].id = l->id;
		st->peers[i].connected = l->connected;
		st->peers[i].accepted = l->in != NULL;
		st->peers[i].queued_bytes = link_queued(l);
	}
}

/* --- life cycle ------------------------------------------------------------------------------- */

/* The listening socket on our own address, exactly (not INADDR_ANY: nodes share a host). */
static int listen_socket(struct raft_transport *t, evutil_socket_t *out, char *err, size_t err_len)
{
	evutil_socket_t fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0) {
		errf(err, err_len, "listen %s: socket: %s", t->self_name, strerror(errno));
		return RAFT_EIO;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&t->self_addr, sizeof(t->self_addr)) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0) {
		errf(err, err_len, "listen %s: %s", t->self_name, strerror(errno));
		close(fd);
		return RAFT_EIO;
	}
	*out = fd;
	return RAFT_OK;
}

static int check_config(const struct raft_transport_config *cfg,
                        const struct raft_transport_cbs *cbs, char *err, size_t err_len)
{
	bool self_found = false;

	if (!cbs || !cbs->recv_msg) {
		errf(err, err_len, "transport: recv_msg callback is required");
		return RAFT_EINVAL;
	}
	if (check_peers(cfg->peers, cfg->n_peers, err, err_len) != 0)
		return RAFT_EINVAL;
	for (unsigned i = 0; i < cfg->n_peers; i++)
		if (cfg->peers[i].id == cfg->self_id)
			self_found = true;
	if (!self_found) {
		errf(err, err_len, "node id %u is not in the cluster list", (unsigned)cfg->self_id);
		return RAFT_EINVAL;
	}
	if (cfg->tls && raft_tls_role(cfg->tls) != RAFT_TLS_NODE) {
		errf(err, err_len, "transport: TLS configured without a node's certificate");
		return RAFT_EINVAL;
	}
	return RAFT_OK;
}

int raft_transport_new(struct event_base *base, const struct raft_transport_config *cfg,
                       const struct raft_transport_cbs *cbs, struct raft_transport **out, char *err,
                       size_t err_len)
{
	struct raft_transport *t;
	evutil_socket_t fd;
	int rc;

	if (!base || !cfg || !out) {
		errf(err, err_len, "transport: missing argument");
		return RAFT_EINVAL;
	}
	rc = check_config(cfg, cbs, err, err_len);
	if (rc != RAFT_OK)
		return rc;
	t = calloc(1, sizeof(*t));
	if (!t) {
		errf(err, err_len, "transport: out of memory");
		return RAFT_ENOMEM;
	}
	t->base = base;
	t->cfg = *cfg;
	t->cbs = *cbs;
	if (t->cfg.max_queue_bytes == 0)
		t->cfg.max_queue_bytes = RAFT_TRANSPORT_DEFAULT_MAX_QUEUE_BYTES;
	if (t->cfg.hello_timeout_ms == 0)
		t->cfg.hello_timeout_ms = RAFT_TRANSPORT_HELLO_TIMEOUT_MS;
	rc = RAFT_ENOMEM;
	for (unsigned i = 0; i < cfg->n_peers; i++) {
		const struct raft_transport_peer *p = &cfg->peers[i];
		struct tr_link *l;

		if (p->id == cfg->self_id) {
			parse_ipv4(p->host, p->port, &t->self_addr);
			addr_text(&t->self_addr, t->self_name);
			continue;
		}
		l = &t->links[t->n_links++];
		l->t = t;
		l->id = p->id;
		l->fd = -1;
		l->backoff_ms = RAFT_TRANSPORT_BACKOFF_MIN_MS;
		parse_ipv4(p->host, p->port, &l->addr);
		addr_text(&l->addr, l->name);
		memcpy(l->host, p->host, sizeof(l->host));
		l->redial = evtimer_new(base, redial_cb, l);
		l->staged = evbuffer_new();
		if (!l->redial || !l->staged)
			goto fail_timers;
	}
	t->relisten = evtimer_new(base, relisten_cb, t);
	t->write_ev = event_new(base, -1, 0, write_soon_cb, t);
	if (!t->relisten || !t->write_ev)
		goto fail_timers;
	rc = listen_socket(t, &fd, err, err_len);
	if (rc != RAFT_OK)
		goto fail_timers;
	/* CLOSE_ON_EXEC also makes the accepted sockets close-on-exec. */
	t->listener = evconnlistener_new(base, accept_cb, t,
	                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!t->listener) {
		rc = RAFT_ENOMEM;
		goto fail_socket;
	}
	evconnlistener_set_error_cb(t->listener, accept_error_cb);
	for (unsigned i = 0; i < t->n_links; i++)
		link_dial(&t->links[i]);
	tlog(t, 1, "node %u listening on %s", (unsigned)cfg->self_id, t->self_name);
	check_invariants(t);
	*out = t;
	return RAFT_OK;

fail_socket:
	close(fd);
fail_timers:
	if (rc == RAFT_ENOMEM)
		errf(err, err_len, "transport: out of memory");
	if (t->relisten)
		event_free(t->relisten);
	if (t->write_ev)
		event_free(t->write_ev);
	for (unsigned i = 0; i < t->n_links; i++) {
		if (t->links[i].redial)
			event_free(t->links[i].redial);
		if (t->links[i].staged)
			evbuffer_free(t->links[i].staged);
	}
	free(t);
	return rc;
}

void raft_transport_free(struct raft_transport *t)
{
	if (!t)
		return;
	while (t->conns)
		conn_close(t->conns);
	for (unsigned i = 0; i < t->n_links; i++) {
		struct tr_link *l = &t->links[i];

		link_release(l);
		evbuffer_free(l->staged);
		event_free(l->redial);
	}
	evconnlistener_free(t->listener);
	event_free(t->relisten);
	event_free(t->write_ev);
	free(t);
}
