/* fuzz_transport.c - libFuzzer target: an accepted connection's bytes (hello, frame headers, frames). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "kv/cmd.h"
#include "kv/proto.h"
#include "raft/codec.h"
#include "raft/crc32c.h"
#include "raft/le.h"
#include "raft/transport.h"
#include "raft/transport_internal.h"
#include "tests/fuzz/fuzzlib.h"

/*
 * Input: byte 0 says how the bytes arrive (0: in one write; k: in writes of k bytes, the event
 * loop running between them, so that the hello and the frame headers arrive in pieces); the
 * other bytes are what a remote sends on a connection it opened to node 1 of a three-node
 * cluster: a hello, then peer frames (Raft messages, application frames) or, after a client's
 * hello, kv/proto.h frames.
 *
 * Node 1 is a real transport (raft_transport_new, its listener on 127.0.0.1, its two peers
 * bound ports that refuse its dials), kept for the whole run. Each input's connection is one
 * end of a socketpair handed to raft_transport_accepted, the function its listener calls for
 * an accepted socket: from the first byte on, the bytes take the path a remote's take. After
 * the last byte the remote closes its end. Checks: the transport closes or keeps the connection
 * without crashing, leaking or failing its invariants (RAFT_DEBUG); a Raft message it delivers
 * is addressed to node 1 from the peer the hello named, and decodes to what encodes again; an
 * application frame goes to the client-protocol decoders a node hands it to; a client is handed
 * over with its bufferevent. Mutations keep the hello's and the frames' CRCs right most of the
 * time.
 */

#define SELF_ID 1u
#define HELLO_BYTES RAFT_TRANSPORT_HELLO_BYTES
#define FRAME_HEADER_BYTES RAFT_TRANSPORT_FRAME_HEADER_BYTES
#define MAX_LOOPS 64 /* loop turns per chunk: the transport reads what it is given in a few */

static struct event_base *base;
static struct raft_transport *transport;
static uint32_t hello_id; /* the peer id the current input's hello names */
static unsigned clients;

static void on_msg(void *ctx, const struct raft_msg *m)
{
	struct raft_codec_buf out;
	struct raft_msg again;

	(void)ctx;
	FUZZ_CHECK(m->to == SELF_ID && m->from == hello_id && (m->from == 2 || m->from == 3),
	           "delivered a message from %u to %u on peer %u's connection", (unsigned)m->from,
	           (unsigned)m->to, (unsigned)hello_id);
	raft_codec_buf_init(&out);
	FUZZ_CHECK(raft_codec_encode_msg(&out, m) == RAFT_OK,
	           "a delivered message does not encode");
	FUZZ_CHECK(raft_codec_decode_msg(out.data, out.len, &again) == RAFT_OK &&
	                   again.type == m->type && again.term == m->term,
	           "a delivered message does not decode again");
	raft_codec_msg_free(&again);
	raft_codec_buf_free(&out);
}

/* What kv_node_recv_app does with the frame first. */
static void on_app(void *ctx, uint32_t from, const void *buf, size_t len)
{
	struct kv_proto_frame f;
	struct kv_cmd c;
	const char *why;

	(void)ctx;
	FUZZ_CHECK(from == hello_id, "an application frame from %u on peer %u's connection",
	           (unsigned)from, (unsigned)hello_id);
	if (kv_proto_decode(buf, len, &f, &why) == 0 && f.type == KV_PROTO_REQ)
		(void)kv_cmd_decode(f.body, f.body_len, &c);
}

static void on_client(void *ctx, struct bufferevent *bev, const struct raft_transport_client *who)
{
	(void)ctx;
	(void)who;
	clients++;
	bufferevent_free(bev);
}

static void on_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "transport (%d): %s\n", level, msg);
}

/* A loopback port bound (and not listening, so that connections to it are refused) by fd. */
static uint16_t bound_port(int *fd)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(*fd >= 0 && bind(*fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	                   getsockname(*fd, (struct sockaddr *)&a, &len) == 0,
	           "cannot bind a loopback port: %s", strerror(errno));
	return ntohs(a.sin_port);
}

static void setup(void)
{
	struct raft_transport_config cfg = {.self_id = SELF_ID, .n_peers = 3};
	struct raft_transport_cbs cbs = {
	        .recv_msg = on_msg, .recv_app = on_app, .on_client = on_client, .log = on_log};
	char err[256];
	int fds[3];

	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	FUZZ_CHECK(base != NULL, "event_base_new");
	for (unsigned i = 0; i < 3; i++) {
		cfg.peers[i].id = i + 1;
		snprintf(cfg.peers[i].host, sizeof(cfg.peers[i].host), "127.0.0.1");
		cfg.peers[i].port = bound_port(&fds[i]);
	}
	close(fds[0]); /* node 1 listens there itself; the peers' stay bound for the whole run */
	cfg.cluster_id = FUZZ_CLUSTER_ID;
	FUZZ_CHECK(raft_transport_new(base, &cfg, &cbs, &transport, err, sizeof(err)) == RAFT_OK,
	           "raft_transport_new: %s", err);
}

/* Whether the transport still holds its end (the socket is not hung up). */
static bool still_open(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) == 0 || !(p.revents & (POLLHUP | POLLERR | POLLIN));
}

/* Runs the loop until the transport has read what was written to its end, or closed it. */
static void drain(int ours, int theirs)
{
	for (int i = 0; i < MAX_LOOPS; i++) {
		int unread = 0;
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (!still_open(ours))
			return;
		if (ioctl(theirs, FIONREAD, &unread) == 0 && unread == 0)
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = htons(40000)};
	size_t chunk, off = 1;
	int sv[2];

	if (!transport)
		setup();
	if (size < 1)
		return 0;
	chunk = data[0] ? data[0] : size;
	hello_id = size >= 1 + 12 ? raft_le_get32(data + 1 + 8) : 0;
	inet_pton(AF_INET, "127.0.0.2", &remote.sin_addr);
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0,
	           "socketpair: %s", strerror(errno));
	raft_transport_accepted(transport, sv[1], (struct sockaddr *)&remote, sizeof(remote));
	while (off < size && still_open(sv[0])) {
		size_t n = size - off < chunk ? size - off : chunk;
		ssize_t w = send(sv[0], data + off, n, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN)
			break; /* the transport closed the connection */
		if (w > 0)
			off += (size_t)w;
		drain(sv[0], sv[1]);
	}
	shutdown(sv[0], SHUT_WR);
	for (int i = 0; i < MAX_LOOPS && still_open(sv[0]); i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	FUZZ_CHECK(!still_open(sv[0]), "the transport kept a connection its remote closed");
	close(sv[0]);
	return 0;
}

static void fix(uint8_t *data, size_t size)
{
	uint8_t *p = data + 1;
	size_t left = size > 0 ? size - 1 : 0, off;

	if (left < HELLO_BYTES)
		return;
	raft_le_put32(p + 20, raft_crc32c(0, p, 20));
	if (p[6] == RAFT_TRANSPORT_KIND_CLIENT) {
		fuzz_fix_proto_frames(p + HELLO_BYTES, left - HELLO_BYTES);
		return;
	}
	for (off = HELLO_BYTES; left - off >= FRAME_HEADER_BYTES;) {
		uint8_t *h = p + off;
		uint32_t len = raft_le_get32(h);
		if (len > left - off - FRAME_HEADER_BYTES)
			break;
		if (h[4] == 1)
			fuzz_fix_codec_frames(h + FRAME_HEADER_BYTES, len);
		else
			fuzz_fix_proto_frames(h + FRAME_HEADER_BYTES, len);
		raft_le_put32(h + 8,
		              raft_crc32c(raft_crc32c(0, h, 8), h + FRAME_HEADER_BYTES, len));
		off += FRAME_HEADER_BYTES + len;
	}
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	return fuzz_mutate_fixing(data, size, max_size, seed, fix);
}
