/* clerk.c - the blocking cluster client (clerk.h): connections, deadlines, retries, sessions. */
#include "kv/clerk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kv/store.h"
#include "raft/raft.h"
#include "raft/tls.h"

/* The receive buffer starts this big and returns to it after a call that needed more. */
#define CLERK_RBUF_BYTES (64u << 10)

struct kv_clerk {
	struct raft_transport_config cfg; /* peers, n_peers, cluster_id */
	unsigned char hello[RAFT_TRANSPORT_HELLO_BYTES];
	int fd; /* the one connection, -1 when none */
	int conn; /* index in cfg.peers of fd's node; -1 iff fd == -1 */
	struct raft_tls *tls; /* NULL: plaintext */
	struct ssl_st *ssl; /* fd's TLS session (tls != NULL and fd >= 0) */
	bool tls_has_cert; /* the clerk presents a certificate */
	bool answered; /* a byte came back on this connection */
	uint32_t leader; /* leader hint from the last answer, 0 when none */
	unsigned next; /* next node to try when there is no hint (round robin) */
	uint64_t session; /* 0: none open */
	uint64_t seq; /* last seq used in session */
	uint64_t next_id; /* frame ids */
	unsigned char *rbuf; /* received bytes not yet consumed: rbuf[0..rlen) */
	size_t rcap, rlen;
	size_t consumed; /* bytes of the frame last returned, dropped on the next read */
	char errmsg[KV_CLERK_ERRMSG_BYTES];
	bool bind_set; /* connections leave from bind_addr (kv_clerk_set_bind) */
	struct in_addr bind_addr;
};

/* How one exchange with one node ended. */
enum exchange_end {
	EX_NOT_SENT, /* the request never left entirely: certainly not received */
	EX_LOST, /* sent, but no usable answer */
	EX_REPLY, /* an answer with the request's id */
};

/* How a request ended across every attempt. */
enum request_end {
	REQ_ANSWERED, /* a node answered OK with a decoded result */
	REQ_TIMED_OUT, /* the deadline passed first */
	REQ_REFUSED, /* BAD_REQUEST: no node would take it */
	REQ_NO_MEMORY,
};

static const char *const outcome_names[] = {
        [KV_CLERK_APPLIED] = "applied",
        [KV_CLERK_NOT_APPLIED] = "not applied",
        [KV_CLERK_UNKNOWN] = "outcome unknown",
};

const char *kv_clerk_outcome_name(int outcome)
{
	if (outcome < 0 || outcome > KV_CLERK_UNKNOWN)
		return "unknown";
	return outcome_names[outcome];
}

/* --- time ----------------------------------------------------------------------------------- */

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* Milliseconds left until deadline, as a poll() timeout (0 when past). */
static int left_ms(uint64_t deadline)
{
	uint64_t now = mono_ms();

	if (now >= deadline)
		return 0;
	return deadline - now > 600000u ? 600000 : (int)(deadline - now);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void sleep_until(uint64_t when)
{
	int ms;

	while ((ms = left_ms(when)) > 0)
		poll(NULL, 0, ms);
}

/* --- messages ------------------------------------------------------------------------------- */

static void set_err(struct kv_clerk *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(struct kv_clerk *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
}

/* "node 2 (127.0.0.2:7002)" */
static const char *node_name(const struct kv_clerk *c, int idx, char *buf, size_t len)
{
	const struct raft_transport_peer *p = &c->cfg.peers[idx];

	snprintf(buf, len, "node %u (%s:%u)", p->id, p->host, p->port);
	return buf;
}

/* Seconds as a person writes them: "10", "0.5". */
static void format_seconds(uint32_t ms, char *buf, size_t len)
{
	snprintf(buf, len, "%g", ms / 1000.0);
}

/* --- one connection ------------------------------------------------------------------------- */

static void conn_close(struct kv_clerk *c)
{
	raft_tls_io_close(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->conn = -1;
	c->rlen = 0;
	c->consumed = 0;
}

/* Waits for events on fd until deadline: 1 ready, 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int ms = left_ms(deadline);
		int r;

		if (ms == 0)
			return 0;
		r = poll(&p, 1, ms);
		if (r > 0)
			return 1;
		if (r == 0)
			continue; /* left_ms() decides */
		if (errno != EINTR)
			return -1;
	}
}

/* send(2) or its TLS counterpart on the connection: bytes sent, or -1 with errno (EAGAIN: wait
 * for *events; other errors have their reason in why). */
static ssize_t conn_send(struct kv_clerk *c, const void *buf, size_t len, short *events, char *why,
                         size_t why_len)
{
	ssize_t n;

	if (c->ssl)
		return raft_tls_io_write(c->ssl, buf, len, events, why, why_len);
	*events = POLLOUT;
	n = send(c->fd, buf, len, MSG_NOSIGNAL);
	if (n < 0)
		snprintf(why, why_len, "%s", strerror(errno));
	return n;
}

/* recv(2) or its TLS counterpart: bytes, 0 at the node's close, -1 with errno as conn_send. */
static ssize_t conn_recv(struct kv_clerk *c, void *buf, size_t len, short *events, char *why,
                         size_t why_len)
{
	ssize_t n;

	if (c->ssl)
		return raft_tls_io_read(c->ssl, buf, len, events, why, why_len);
	*events = POLLIN;
	n = recv(c->fd, buf, len, 0);
	if (n < 0)
		snprintf(why, why_len, "%s", strerror(errno));
	return n;
}

/*
 * What a connection that failed before any answer may mean. Under TLS 1.3 the client is done
 * with its handshake before the node has checked its certificate, so a refusal shows as the node
 * closing (often a reset that swallows the node's alert) right after it; without TLS, a node
 * with TLS closes a plaintext hello at once. "" once the node answered.
 */
static const char *tls_refusal_hint(const struct kv_clerk *c)
{
	if (c->answered)
		return "";
	if (!c->ssl)
		return !c->tls ? " (if the node runs TLS: --cacert, --cert and --key)" : "";
	return c->tls_has_cert ? " (the node refused the TLS connection: its log says why)"
	                       : " (the node refused the TLS connection: a client certificate is "
	                         "required, --cert and --key)";
}

/* Writes all of buf before deadline. 0, or -1 with errmsg set (the connection is then unusable). */
static int write_all(struct kv_clerk *c, const void *buf, size_t len, uint64_t deadline)
{
	const unsigned char *p = buf;
	char nb[64], why[RAFT_TLS_ERRMSG_BYTES];

	while (len > 0) {
		short events = POLLOUT;
		ssize_t n = conn_send(c, p, len, &events, why, sizeof(why));
		int w;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			set_err(c, "%s: send: %s%s", node_name(c, c->conn, nb, sizeof(nb)), why,
			        tls_refusal_hint(c));
			return -1;
		}
		w = wait_fd(c->fd, events, deadline);
		if (w <= 0) {
			set_err(c, "%s: send: %s", node_name(c, c->conn, nb, sizeof(nb)),
			        w == 0 ? "timed out" : strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* The TLS handshake on the new connection to node idx, before deadline; the node's certificate
 * must name the address dialled. 0, or -1 with errmsg set. */
static int tls_handshake(struct kv_clerk *c, int idx, uint64_t deadline)
{
	char nb[64], why[RAFT_TLS_ERRMSG_BYTES];

	c->ssl = raft_tls_client_ssl(c->tls, c->fd, c->cfg.peers[idx].host);
	if (!c->ssl) {
		set_err(c, "%s: TLS: out of memory", node_name(c, idx, nb, sizeof(nb)));
		return -1;
	}
	for (;;) {
		short events = 0;
		int r = raft_tls_io_handshake(c->ssl, &events, why, sizeof(why));

		if (r == 1)
			return 0;
		if (r < 0) {
			set_err(c, "%s: TLS handshake failed: %s",
			        node_name(c, idx, nb, sizeof(nb)), why);
			return -1;
		}
		r = wait_fd(c->fd, events, deadline);
		if (r <= 0) {
			set_err(c, "%s: TLS handshake: %s", node_name(c, idx, nb, sizeof(nb)),
			        r == 0 ? "timed out" : strerror(errno));
			return -1;
		}
	}
}

/* Connects to node idx and sends the hello, connecting for at most KV_CLERK_CONNECT_TIMEOUT_MS.
 * 0, or -1 with errmsg set and no connection. */
static int conn_open(struct kv_clerk *c, int idx, uint64_t deadline)
{
	const struct raft_transport_peer *p = &c->cfg.peers[idx];
	uint64_t connect_deadline = min_u64(deadline, mono_ms() + KV_CLERK_CONNECT_TIMEOUT_MS);
	struct sockaddr_in sa;
	int one = 1, soerr = 0, fd, w;
	socklen_t sl = sizeof(soerr);
	char nb[64];

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(p->port);
	if (inet_pton(AF_INET, p->host, &sa.sin_addr) != 1) {
		set_err(c, "%s: bad address", node_name(c, idx, nb, sizeof(nb)));
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		set_err(c, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->bind_set) {
		struct sockaddr_in src;
		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr = c->bind_addr;
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			set_err(c, "bind %s: %s", inet_ntoa(c->bind_addr), strerror(errno));
			goto fail_socket;
		}
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS && errno != EINTR) {
			set_err(c, "%s: connect: %s", node_name(c, idx, nb, sizeof(nb)),
			        strerror(errno));
			goto fail_socket;
		}
		w = wait_fd(fd, POLLOUT, connect_deadline);
		if (w <= 0) {
			set_err(c, "%s: connect: %s", node_name(c, idx, nb, sizeof(nb)),
			        w == 0 ? "timed out" : strerror(errno));
			goto fail_socket;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr) {
			set_err(c, "%s: connect: %s", node_name(c, idx, nb, sizeof(nb)),
			        strerror(soerr));
			goto fail_socket;
		}
	}
	c->fd = fd;
	c->conn = idx;
	c->rlen = 0;
	c->consumed = 0;
	c->answered = false;
	if (c->tls && tls_handshake(c, idx, connect_deadline) < 0) {
		conn_close(c);
		return -1;
	}
	if (write_all(c, c->hello, sizeof(c->hello), deadline) < 0) {
		conn_close(c);
		return -1;
	}
	return 0;

fail_socket:
	close(fd);
	return -1;
}

/* True when an idle connection has something to say already (the peer closed it, or sent bytes
 * nobody asked for): it is not worth sending on. */
static bool conn_is_stale(struct kv_clerk *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};

	return c->rlen > c->consumed || (c->ssl && raft_tls_io_pending(c->ssl) > 0) ||
	        poll(&p, 1, 0) != 0;
}

/* Reads the next whole frame before deadline and decodes it into *f (whose body borrows from the
 * receive buffer until the next read). 0, or -1 with errmsg set. */
static int read_frame(struct kv_clerk *c, struct kv_proto_frame *f, uint64_t deadline)
{
	char nb[64], ewhy[RAFT_TLS_ERRMSG_BYTES];
	const char *why;

	if (c->consumed) {
		memmove(c->rbuf, c->rbuf + c->consumed, c->rlen - c->consumed);
		c->rlen -= c->consumed;
		c->consumed = 0;
	}
	for (;;) {
		size_t flen = 0, want;
		short events = POLLIN;
		ssize_t n;
		int r = kv_proto_frame_length(c->rbuf, c->rlen, &flen);

		if (r < 0) {
			set_err(c, "%s: impossible frame length",
			        node_name(c, c->conn, nb, sizeof(nb)));
			return -1;
		}
		if (r > 0) {
			if (kv_proto_decode(c->rbuf, flen, f, &why) < 0) {
				set_err(c, "%s: %s", node_name(c, c->conn, nb, sizeof(nb)), why);
				return -1;
			}
			c->consumed = flen;
			return 0;
		}
		/* Room for the whole frame once its length is known (bounded by
		 * kv_proto_frame_length), else for the next chunk. */
		want = c->rlen + CLERK_RBUF_BYTES;
		if (c->rlen >= 4) {
			const unsigned char *b = c->rbuf;
			want = 4 +
			        ((size_t)b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16 |
			         (size_t)b[3] << 24);
		}
		if (want > c->rcap) {
			unsigned char *nbuf = realloc(c->rbuf, want);
			if (!nbuf) {
				set_err(c, "out of memory");
				return -1;
			}
			c->rbuf = nbuf;
			c->rcap = want;
		}
		n = conn_recv(c, c->rbuf + c->rlen, c->rcap - c->rlen, &events, ewhy, sizeof(ewhy));
		if (n > 0) {
			c->rlen += (size_t)n;
			c->answered = true;
			continue;
		}
		if (n == 0) {
			set_err(c, "%s: connection closed by the node%s",
			        node_name(c, c->conn, nb, sizeof(nb)), tls_refusal_hint(c));
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			set_err(c, "%s: recv: %s%s", node_name(c, c->conn, nb, sizeof(nb)), ewhy,
			        tls_refusal_hint(c));
			return -1;
		}
		r = wait_fd(c->fd, events, deadline);
		if (r <= 0) {
			set_err(c, "%s: %s", node_name(c, c->conn, nb, sizeof(nb)),
			        r == 0 ? "no answer in time" : strerror(errno));
			return -1;
		}
	}
}

/* Gives back a receive buffer grown for one big answer. */
static void rbuf_trim(struct kv_clerk *c)
{
	unsigned char *nbuf;

	if (c->rcap <= CLERK_RBUF_BYTES || c->rlen > c->consumed)
		return;
	c->rlen = c->consumed = 0;
	nbuf = realloc(c->rbuf, CLERK_RBUF_BYTES);
	if (nbuf) {
		c->rbuf = nbuf;
		c->rcap = CLERK_RBUF_BYTES;
	}
}

/*
 * Sends frame (with this id) to node idx over the connection, opening it if needed, and waits
 * until reply_deadline for the frame of type want with the same id (frames with other ids are
 * answers to abandoned requests: skipped). On EX_REPLY *f borrows from the receive buffer. Any
 * failure closes the connection, so a late answer can never be taken for a later request's.
 */
static enum exchange_end exchange(struct kv_clerk *c, int idx, const void *frame, size_t len,
                                  uint64_t id, uint8_t want, uint64_t send_deadline,
                                  uint64_t reply_deadline, struct kv_proto_frame *f)
{
	if (c->fd >= 0 && (c->conn != idx || conn_is_stale(c)))
		conn_close(c);
	if (c->fd < 0 && conn_open(c, idx, send_deadline) < 0)
		return EX_NOT_SENT;
	if (write_all(c, frame, len, send_deadline) < 0) {
		conn_close(c);
		return EX_NOT_SENT;
	}
	for (;;) {
		char nb[64];

		if (read_frame(c, f, reply_deadline) < 0) {
			conn_close(c);
			return EX_LOST;
		}
		if (f->id != id)
			continue;
		if (f->type != want) {
			set_err(c, "%s: answered with frame type %u",
			        node_name(c, idx, nb, sizeof(nb)), f->type);
			conn_close(c);
			return EX_LOST;
		}
		return EX_REPLY;
	}
}

/* --- leader discovery and retries ----------------------------------------------------------- */

static int node_index(const struct kv_clerk *c, uint32_t id)
{
	for (unsigned i = 0; i < c->cfg.n_peers; i++)
		if (c->cfg.peers[i].id == id)
			return (int)i;
	return -1;
}

/* The node to try next: the hinted leader, else the next in turn. */
static int pick_node(const struct kv_clerk *c)
{
	int i = c->leader ? node_index(c, c->leader) : -1;

	return i >= 0 ? i : (int)(c->next % c->cfg.n_peers);
}

/* After node idx failed or pointed elsewhere: follow a hint naming another node, else move on. */
static void move_on(struct kv_clerk *c, int idx, uint32_t hint)
{
	uint32_t self = c->cfg.peers[idx].id;

	if (hint && hint != self && node_index(c, hint) >= 0) {
		c->leader = hint;
		return;
	}
	if (c->leader == self || c->leader == hint)
		c->leader = 0;
	c->next = (unsigned)idx + 1;
}

/*
 * Sends one encoded command until a node answers it OK or the deadline passes, following leader
 * hints, moving on after failures and backing off after each full round without an answer.
 * *maybe_applied becomes true when an attempt may have been applied (it left entirely and no
 * definite refusal came back); reads never set it. On REQ_ANSWERED *out holds the decoded result.
 */
static enum request_end request(struct kv_clerk *c, const void *cmd, size_t cmd_len, bool is_read,
                                uint64_t deadline, bool *maybe_applied, struct kv_result *out)
{
	struct kv_proto_frame req = {.type = KV_PROTO_REQ, .body = cmd, .body_len = cmd_len};
	uint64_t backoff = KV_CLERK_BACKOFF_MIN_MS;
	unsigned failed_in_round = 0;

	req.id = ++c->next_id;
	for (;;) {
		struct kv_proto_frame f;
		uint64_t now = mono_ms(), left, server_ms, reply_deadline;
		enum exchange_end end;
		void *frame;
		size_t frame_len;
		int idx;
		char nb[64];

		if (now >= deadline)
			return REQ_TIMED_OUT;
		left = deadline - now;
		/* The node answers by its timeout; the margin leaves time for the answer to come
		 * back, and, when time is short, for one more attempt elsewhere. */
		if (left > 2 * KV_CLERK_REPLY_MARGIN_MS)
			server_ms = min_u64(KV_CLERK_ATTEMPT_TIMEOUT_MS,
			                    left - KV_CLERK_REPLY_MARGIN_MS);
		else
			server_ms = left / 2 ? left / 2 : 1;
		reply_deadline = min_u64(deadline, now + server_ms + KV_CLERK_REPLY_MARGIN_MS);
		req.timeout_ms = (uint32_t)server_ms;
		if (kv_proto_encode(&req, &frame, &frame_len) < 0) {
			set_err(c, "out of memory");
			return REQ_NO_MEMORY;
		}
		idx = pick_node(c);
		end = exchange(c, idx, frame, frame_len, req.id, KV_PROTO_RESP, deadline,
		               reply_deadline, &f);
		free(frame);
		if (end == EX_LOST && !is_read)
			*maybe_applied = true;
		if (end != EX_REPLY) {
			move_on(c, idx, 0);
		} else {
			switch (f.status) {
			case KV_STATUS_OK:
				if (kv_result_decode(f.body, f.body_len, out) == KV_OK) {
					if (f.leader && node_index(c, f.leader) >= 0)
						c->leader = f.leader;
					c->errmsg[0] = '\0';
					rbuf_trim(c);
					return REQ_ANSWERED;
				}
				/* Applied, but the result is unreadable: a retry of the same
				 * (session, seq) answers the recorded result. */
				set_err(c, "%s: malformed result",
				        node_name(c, idx, nb, sizeof(nb)));
				if (!is_read)
					*maybe_applied = true;
				conn_close(c);
				move_on(c, idx, 0);
				break;
			case KV_STATUS_UNKNOWN:
				if (!is_read)
					*maybe_applied = true;
				/* fall through */
			case KV_STATUS_NOT_APPLIED:
			case KV_STATUS_SHUTDOWN:
				set_err(c, "%s: %s", node_name(c, idx, nb, sizeof(nb)),
				        kv_status_name(f.status));
				if (f.status == KV_STATUS_SHUTDOWN)
					conn_close(c);
				move_on(c, idx, f.status == KV_STATUS_SHUTDOWN ? 0 : f.leader);
				break;
			default: /* BAD_REQUEST: every node would say the same */
				set_err(c, "%s refused the request as malformed or over a limit",
				        node_name(c, idx, nb, sizeof(nb)));
				rbuf_trim(c);
				return REQ_REFUSED;
			}
		}
		if (++failed_in_round >= c->cfg.n_peers) {
			failed_in_round = 0;
			sleep_until(min_u64(deadline, mono_ms() + backoff));
			backoff = min_u64(2 * backoff, KV_CLERK_BACKOFF_MAX_MS);
		}
	}
}

/* --- commands ------------------------------------------------------------------------------- */

/* The outcome of a request that ended without an answer; out->status says why. */
static int not_answered(struct kv_clerk *c, enum request_end end, bool maybe_applied,
                        uint32_t timeout_ms, struct kv_result *out)
{
	char secs[32], last[KV_CLERK_ERRMSG_BYTES];

	memset(out, 0, sizeof(*out));
	out->status = end == REQ_REFUSED ? KV_EINVAL : end == REQ_NO_MEMORY ? KV_ENOMEM : KV_EIO;
	if (end == REQ_TIMED_OUT) {
		format_seconds(timeout_ms, secs, sizeof(secs));
		memcpy(last, c->errmsg, sizeof(last));
		if (last[0])
			set_err(c, "no leader reachable within %s s (last: %s)", secs, last);
		else
			set_err(c, "no leader reachable within %s s", secs);
	}
	return maybe_applied ? KV_CLERK_UNKNOWN : KV_CLERK_NOT_APPLIED;
}

/* Encodes cmd as the clerk sends it: session, seq and time are filled in here. */
static int encode(struct kv_clerk *c, const struct kv_cmd *cmd, uint64_t session, uint64_t seq,
                  void **buf, size_t *len)
{
	struct kv_cmd x = *cmd;
	int err;

	x.session = session;
	x.seq = seq;
	x.time_ms = clock_ms(CLOCK_REALTIME);
	err = kv_cmd_encode(&x, buf, len);
	if (err != KV_OK)
		set_err(c, "encode %s: %s", kv_op_name(cmd->op), kv_strerror(err));
	return err;
}

/* Opens the clerk's session. 0, or -1 with out->status set (nothing was applied but, maybe, an
 * unused session). */
static int session_open(struct kv_clerk *c, uint64_t deadline, uint32_t timeout_ms,
                        struct kv_result *out)
{
	struct kv_cmd cmd = {.op = KV_OP_OPEN_SESSION};
	enum request_end end;
	bool maybe = false;
	void *buf;
	size_t len;
	int err;

	err = encode(c, &cmd, 0, 0, &buf, &len);
	if (err != KV_OK) {
		memset(out, 0, sizeof(*out));
		out->status = err;
		return -1;
	}
	end = request(c, buf, len, false, deadline, &maybe, out);
	raft_buf_unref(buf);
	if (end != REQ_ANSWERED) {
		not_answered(c, end, false, timeout_ms, out);
		return -1;
	}
	if (out->status != KV_OK || out->session == 0) {
		set_err(c, "open session: %s", kv_strerror(out->status));
		err = out->status != KV_OK ? out->status : KV_ECORRUPT;
		kv_result_release(out);
		out->status = err;
		return -1;
	}
	c->session = out->session;
	c->seq = 0;
	kv_result_release(out);
	return 0;
}

static int do_write(struct kv_clerk *c, const struct kv_cmd *cmd, uint64_t deadline,
                    uint32_t timeout_ms, struct kv_result *out)
{
	bool reopened = false;

	for (;;) {
		enum request_end end;
		bool maybe = false;
		void *buf;
		size_t len;
		int err;

		if (!c->session && session_open(c, deadline, timeout_ms, out) < 0)
			return KV_CLERK_NOT_APPLIED;
		err = encode(c, cmd, c->session, ++c->seq, &buf, &len);
		if (err != KV_OK) {
			memset(out, 0, sizeof(*out));
			out->status = err;
			return KV_CLERK_NOT_APPLIED;
		}
		/* Every retry below sends these same bytes: same (session, seq), same time. */
		end = request(c, buf, len, false, deadline, &maybe, out);
		raft_buf_unref(buf);
		if (end != REQ_ANSWERED)
			return not_answered(c, end, maybe, timeout_ms, out);
		if (out->status != KV_ESESSION_EXPIRED && out->status != KV_ESTALE)
			return KV_CLERK_APPLIED;
		/* Refused for the session: this attempt did nothing. Earlier attempts of the same
		 * seq may have, and the record that would tell is gone. */
		err = out->status;
		kv_result_release(out);
		set_err(c, "session %llu: %s", (unsigned long long)c->session, kv_strerror(err));
		c->session = 0;
		c->seq = 0;
		if (maybe || reopened) {
			out->status = err;
			return maybe ? KV_CLERK_UNKNOWN : KV_CLERK_NOT_APPLIED;
		}
		reopened = true;
	}
}

static int do_read(struct kv_clerk *c, const struct kv_cmd *cmd, uint64_t deadline,
                   uint32_t timeout_ms, struct kv_result *out)
{
	enum request_end end;
	bool maybe = false;
	void *buf;
	size_t len;
	int err;

	err = encode(c, cmd, 0, 0, &buf, &len);
	if (err != KV_OK) {
		memset(out, 0, sizeof(*out));
		out->status = err;
		return KV_CLERK_NOT_APPLIED;
	}
	end = request(c, buf, len, true, deadline, &maybe, out);
	raft_buf_unref(buf);
	if (end != REQ_ANSWERED)
		return not_answered(c, end, false, timeout_ms, out);
	return KV_CLERK_APPLIED;
}

/* Checks what can be checked before sending: 0, or the kv_err refusing cmd. */
static int check_cmd(struct kv_clerk *c, const struct kv_cmd *cmd)
{
	unsigned fields = kv_op_fields(cmd->op);
	int err;

	if (!fields && cmd->op != KV_OP_OPEN_SESSION && cmd->op != KV_OP_CLOSE_SESSION) {
		set_err(c, "unknown operation %u", cmd->op);
		return KV_EINVAL;
	}
	if (cmd->op == KV_OP_OPEN_SESSION || cmd->op == KV_OP_CLOSE_SESSION) {
		set_err(c, "%s: sessions belong to the clerk", kv_op_name(cmd->op));
		return KV_EINVAL;
	}
	if (cmd->op == KV_OP_SETTINGS) {
		set_err(c, "%s: the cluster's settings belong to its nodes", kv_op_name(cmd->op));
		return KV_EINVAL;
	}
	if ((fields & KV_FIELD_KEY) && (!cmd->key && cmd->key_len)) {
		set_err(c, "%s: no key", kv_op_name(cmd->op));
		return KV_EINVAL;
	}
	if ((fields & KV_FIELD_KEY) &&
	    (err = kv_key_check(cmd->key ? cmd->key : "", cmd->key_len)) != KV_OK) {
		set_err(c, "%s: %s", kv_op_name(cmd->op), kv_strerror(err));
		return err;
	}
	if ((fields & KV_FIELD_KEY2) &&
	    ((!cmd->key2 && cmd->key2_len) ||
	     (err = kv_key_check(cmd->key2 ? cmd->key2 : "", cmd->key2_len)) != KV_OK)) {
		err = cmd->key2 ? err : KV_EINVAL;
		set_err(c, "%s: destination: %s", kv_op_name(cmd->op), kv_strerror(err));
		return err;
	}
	if ((fields & KV_FIELD_DATA) && cmd->data_len > KV_VALUE_BYTES_LIMIT) {
		set_err(c, "%s: value of %zu bytes is over the limit of %u", kv_op_name(cmd->op),
		        cmd->data_len, KV_VALUE_BYTES_LIMIT);
		return KV_EFBIG;
	}
	if ((fields & KV_FIELD_DATA) && !cmd->data && cmd->data_len) {
		set_err(c, "%s: no data", kv_op_name(cmd->op));
		return KV_EINVAL;
	}
	return KV_OK;
}

int kv_clerk_do(struct kv_clerk *c, const struct kv_cmd *cmd, uint32_t timeout_ms,
                struct kv_result *out)
{
	struct kv_result scratch;
	uint64_t deadline;
	int err, outcome;

	if (!out)
		out = &scratch;
	memset(out, 0, sizeof(*out));
	if (!timeout_ms)
		timeout_ms = KV_CLERK_DEFAULT_TIMEOUT_MS;
	deadline = mono_ms() + timeout_ms;
	err = check_cmd(c, cmd);
	if (err != KV_OK) {
		out->status = err;
		return KV_CLERK_NOT_APPLIED;
	}
	if (kv_op_is_read(cmd->op))
		outcome = do_read(c, cmd, deadline, timeout_ms, out);
	else
		outcome = do_write(c, cmd, deadline, timeout_ms, out);
	if (outcome == KV_CLERK_APPLIED)
		c->errmsg[0] = '\0';
	if (out == &scratch)
		kv_result_release(&scratch);
	return outcome;
}

/* A command of op on key with the process's credentials. */
static void simple_cmd(struct kv_cmd *cmd, uint8_t op, const char *key, const void *value,
                       size_t len)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->op = op;
	cmd->uid = (uint32_t)getuid();
	cmd->gid = (uint32_t)getgid();
	cmd->mode = 0644;
	cmd->key = key;
	cmd->key_len = key ? strlen(key) : 0;
	cmd->data = value;
	cmd->data_len = len;
}

int kv_clerk_put(struct kv_clerk *c, const char *key, const void *value, size_t len,
                 uint32_t timeout_ms, struct kv_result *out)
{
	struct kv_cmd cmd;

	simple_cmd(&cmd, KV_OP_PUT, key, value, len);
	return kv_clerk_do(c, &cmd, timeout_ms, out);
}

int kv_clerk_append(struct kv_clerk *c, const char *key, const void *value, size_t len,
                    uint32_t timeout_ms, struct kv_result *out)
{
	struct kv_cmd cmd;

	simple_cmd(&cmd, KV_OP_APPEND, key, value, len);
	return kv_clerk_do(c, &cmd, timeout_ms, out);
}

int kv_clerk_get(struct kv_clerk *c, const char *key, uint32_t timeout_ms, struct kv_result *out)
{
	struct kv_cmd cmd;

	simple_cmd(&cmd, KV_OP_GET, key, NULL, 0);
	return kv_clerk_do(c, &cmd, timeout_ms, out);
}

int kv_clerk_del(struct kv_clerk *c, const char *key, uint32_t timeout_ms, struct kv_result *out)
{
	struct kv_cmd cmd;

	simple_cmd(&cmd, KV_OP_DELETE, key, NULL, 0);
	return kv_clerk_do(c, &cmd, timeout_ms, out);
}

/* --- status ---------------------------------------------------------------------------------- */

int kv_clerk_status(struct kv_clerk *c, uint32_t node_id, struct kv_proto_node_status *out,
                    uint32_t timeout_ms)
{
	struct kv_proto_frame req = {.type = KV_PROTO_STATUS_REQ}, f;
	int idx = node_index(c, node_id), rc = -1;
	uint64_t deadline;
	void *frame;
	size_t len;
	char nb[64];

	memset(out, 0, sizeof(*out));
	if (idx < 0) {
		set_err(c, "node %u is not in the cluster list", node_id);
		return -1;
	}
	if (!timeout_ms)
		timeout_ms = KV_CLERK_DEFAULT_TIMEOUT_MS;
	deadline = mono_ms() + timeout_ms;
	req.id = ++c->next_id;
	if (kv_proto_encode(&req, &frame, &len) < 0) {
		set_err(c, "out of memory");
		return -1;
	}
	if (exchange(c, idx, frame, len, req.id, KV_PROTO_STATUS_RESP, deadline, deadline, &f) ==
	    EX_REPLY) {
		for (uint32_t i = 0; i < f.n_status; i++) {
			if (f.status_of[i].id == node_id) {
				*out = f.status_of[i];
				rc = 0;
			}
		}
		if (rc < 0)
			set_err(c, "%s: no status record of its own",
			        node_name(c, idx, nb, sizeof(nb)));
		else
			c->errmsg[0] = '\0';
	}
	free(frame);
	rbuf_trim(c);
	return rc;
}

/* --- life cycle ------------------------------------------------------------------------------ */

/* Copies path into dst (RAFT_TLS_PATH_BYTES); -1 when it does not fit. */
static int copy_path(char *dst, const char *path)
{
	if (!path)
		path = "";
	if (strlen(path) >= RAFT_TLS_PATH_BYTES)
		return -1;
	strcpy(dst, path);
	return 0;
}

static int tls_open(struct kv_clerk *c, const struct kv_clerk_tls *tls, char *err, size_t err_len)
{
	struct raft_tls_files files;
	char why[RAFT_TLS_ERRMSG_BYTES + RAFT_TLS_PATH_BYTES];

	memset(&files, 0, sizeof(files));
	if (!tls->cacert || !tls->cacert[0]) {
		if (err)
			snprintf(err, err_len, "TLS needs the nodes' CA certificate (--cacert)");
		return -1;
	}
	if (copy_path(files.ca, tls->cacert) || copy_path(files.cert, tls->cert) ||
	    copy_path(files.key, tls->key)) {
		if (err)
			snprintf(err, err_len, "TLS: a file name is too long");
		return -1;
	}
	c->tls_has_cert = files.cert[0] != '\0';
	if (raft_tls_new(RAFT_TLS_CLIENT, &files, &c->tls, why, sizeof(why)) != 0) {
		if (err)
			snprintf(err, err_len, "TLS: %s", why);
		return -1;
	}
	return 0;
}

struct kv_clerk *kv_clerk_open(const char *cluster_list, const struct kv_clerk_tls *tls, char *err,
                               size_t err_len)
{
	struct kv_clerk *c;

	if (err && err_len)
		err[0] = '\0';
	if (!cluster_list) {
		if (err)
			snprintf(err, err_len, "no cluster list");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	if (raft_transport_parse_cluster(cluster_list, &c->cfg, err, err_len) != RAFT_OK)
		goto fail_clerk;
	c->rbuf = malloc(CLERK_RBUF_BYTES);
	if (!c->rbuf)
		goto fail_clerk;
	c->rcap = CLERK_RBUF_BYTES;
	c->fd = -1;
	c->conn = -1;
	if (tls && tls_open(c, tls, err, err_len) != 0)
		goto fail_clerk;
	raft_transport_hello_encode(c->hello, RAFT_TRANSPORT_KIND_CLIENT, 0, 0);
	return c;

fail_clerk:
	free(c->rbuf);
	free(c);
	if (err && err_len && err[0])
		return NULL;
fail:
	if (err)
		snprintf(err, err_len, "out of memory");
	return NULL;
}

void kv_clerk_close(struct kv_clerk *c)
{
	if (!c)
		return;
	if (c->session && c->fd >= 0) {
		/* Best effort, on the open connection only: an unclosed session expires. */
		struct kv_cmd cmd = {.op = KV_OP_CLOSE_SESSION};
		struct kv_proto_frame req = {.type = KV_PROTO_REQ,
		                             .timeout_ms = KV_CLERK_CLOSE_TIMEOUT_MS};
		uint64_t deadline = mono_ms() + KV_CLERK_CLOSE_TIMEOUT_MS;
		struct kv_proto_frame f;
		void *buf, *frame;
		size_t len, frame_len;

		int idx = c->conn;

		if (encode(c, &cmd, c->session, ++c->seq, &buf, &len) == KV_OK) {
			req.id = ++c->next_id;
			req.body = buf;
			req.body_len = len;
			if (kv_proto_encode(&req, &frame, &frame_len) == 0) {
				exchange(c, idx, frame, frame_len, req.id, KV_PROTO_RESP, deadline,
				         deadline, &f);
				free(frame);
			}
			raft_buf_unref(buf);
		}
	}
	conn_close(c);
	raft_tls_free(c->tls);
	free(c->rbuf);
	free(c);
}

unsigned kv_clerk_node_count(const struct kv_clerk *c)
{
	return c->cfg.n_peers;
}

const struct raft_transport_peer *kv_clerk_node(const struct kv_clerk *c, unsigned i)
{
	return i < c->cfg.n_peers ? &c->cfg.peers[i] : NULL;
}

uint64_t kv_clerk_session(const struct kv_clerk *c)
{
	return c->session;
}

uint64_t kv_clerk_seq(const struct kv_clerk *c)
{
	return c->seq;
}

const char *kv_clerk_errmsg(const struct kv_clerk *c)
{
	return c->errmsg;
}

int kv_clerk_set_bind(struct kv_clerk *c, const char *addr)
{
	struct in_addr a;

	if (!addr || !*addr) {
		c->bind_set = false;
		return 0;
	}
	if (inet_pton(AF_INET, addr, &a) != 1) {
		set_err(c, "bind address %s is not an IPv4 address", addr);
		return -1;
	}
	c->bind_addr = a;
	c->bind_set = true;
	return 0;
}
