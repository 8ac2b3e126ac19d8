/* bench_kv.c - closed-loop load generator: put/append/get/mix over the kv protocol or mounts. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kv/clerk.h"
#include "kv/cmd.h"
#include "kv/proto.h"
#include "raft/raft.h"
#include "raft/tls.h"
#include "raft/transport.h"

/*
 * The raftfs side of ../shared/bench-etcd (same flags, same output line), issue 7.
 *
 * Network mode (--cluster=LIST or --endpoints=LIST, the raftfs cluster list syntax): C clients
 * multiplexed over K TCP connections by one thread with a poll() loop; client i uses connection
 * i % K. The kv protocol answers requests by id, so a connection carries many at once. Each
 * client opens its own session (OpenSession, as kv/clerk.c does) before the clock starts and
 * has one request outstanding at a time, so every write carries (session, seq) and is applied
 * exactly once however often it is retried; reads carry no session. Connections go to the
 * leader (found with the status request, then followed through the leader hints of answers;
 * with --via=ID they go to node ID and stay, so that a follower forwards every request);
 * a NOT_APPLIED, SHUTDOWN or UNKNOWN answer, a broken connection or a missing answer makes the
 * client send the same bytes again after a backoff, until the operation's --timeout-ms passes
 * (then it counts as an error). Sessions are closed after the run.
 *
 * TLS (--cacert=FILE, with --cert=FILE --key=FILE for a client certificate, or $RAFTFS_CACERT,
 * $RAFTFS_CERT, $RAFTFS_KEY): every connection is a TLS session, as the clerk's (kv/clerk.h).
 *
 * Mount mode (--mounts=DIR1,DIR2,...): C threads doing the same operations on files; thread i
 * works in DIR(i % ndirs). put: open(O_WRONLY|O_CREAT|O_TRUNC) + one write + close; append:
 * open(O_WRONLY|O_CREAT|O_APPEND) + one write + close; get-l: open + read to EOF + close. The
 * line then says op=fs-put, fs-append, fs-get-l or fs-mix, and conns= the number of mounts.
 *
 * Operations: operation i (0 <= i < N, handed out in order to whichever client is free) is a put
 * or append of --val-size bytes to key PREFIX + i printed with --key-size digits (sequential keys,
 * as bench-etcd), or a linearizable get of the hot key --read-key (written once before the
 * clock starts); mix makes every tenth operation (i % 10 == 0) a put, the others gets.
 *
 * Output: one line, the fields of bench-etcd first, then retries= (attempts sent again) and,
 * with --pids, cpu_us_per_op= (utime + stime of every listed process over the run, from
 * /proc/PID/stat, summed, divided by the operations) and rss_mb= (each process's VmHWM from
 * /proc/PID/status at the end, in the order given, separated by '/'). Latency is per operation,
 * from its first send to its answer (retries included); qps is N over the wall time from the
 * common start to the last answer.
 *
 * Floors (--floor=DIR): the medians of a 512-byte overwrite + fdatasync and of an append +
 * fdatasync in a file in DIR, and of a one-byte TCP round trip over loopback, so that latencies
 * can be set beside what the disk and the kernel cost (a put needs at least one fdatasync and
 * two round trips: client to leader, leader to follower); and the median of a write replicated
 * with nothing but its I/O by threads standing for three nodes on this machine (floor_repl_us),
 * which also pays for three fdatasyncs sharing one disk and for the wake-ups of four processes.
 *
 * Exit 0 when the run was measured (errors are in the line),
 * 1 when setup failed, 2 for bad arguments. Without arguments prints the usage and exits 0
 * (make bench runs it so).
 */

#define BENCH_DEFAULT_TOTAL 10000L
#define BENCH_DEFAULT_KEY_BYTES 8
#define BENCH_DEFAULT_VAL_BYTES 256
#define BENCH_MAX_CLIENTS 100000
#define BENCH_MAX_CONNS 1024
#define BENCH_MAX_MOUNTS 64
#define BENCH_MAX_PIDS 9
#define BENCH_MAX_KEY_BYTES 1024
#define BENCH_MAX_VAL_BYTES (4u << 20)
/* An operation (its retries included) that has no answer after this long is an error. */
#define BENCH_DEFAULT_TIMEOUT_MS 10000u
/* Sessions must all be open within this, or the run is not measured. */
#define BENCH_SETUP_TIMEOUT_MS 30000u
/* The most a node is asked to wait for one attempt (REQ.timeout_ms), as the clerk does. */
#define BENCH_ATTEMPT_TIMEOUT_MS KV_CLERK_ATTEMPT_TIMEOUT_MS
/* An attempt whose answer has not come this long after the node's own timeout is lost. */
#define BENCH_REPLY_MARGIN_MS 1000u
#define BENCH_BACKOFF_MIN_MS 10u
#define BENCH_BACKOFF_MAX_MS 500u
#define BENCH_CONNECT_TIMEOUT_MS KV_CLERK_CONNECT_TIMEOUT_MS
/* Closing the sessions after the run takes at most this. */
#define BENCH_CLOSE_TIMEOUT_MS 2000u
/* Timers (backoffs, lost answers, connects) are checked this often. */
#define BENCH_TIMER_MS 5u
/* Bytes read from a socket per recv(). */
#define BENCH_READ_CHUNK (64u << 10)
/* Request ids: the client's index in the low bits, a serial number above. */
#define BENCH_ID_CLIENT_BITS 20
#define BENCH_FS_STACK_BYTES (256u << 10)
#define BENCH_ERRMSG_BYTES 512
/* The least number of failed operations in a row that stops a run (errors_in_a_row_limit). */
#define BENCH_MIN_ERRORS_IN_A_ROW 10L
/* fdatasync rounds of --floor (4 times as many loopback round trips) */
#define BENCH_FLOOR_ROUNDS 1000L

enum bench_op { OP_PUT, OP_APPEND, OP_GET, OP_MIX };

static const char *const op_names[] = {"put", "append", "get-l", "mix"};
static const char *const fs_op_names[] = {"fs-put", "fs-append", "fs-get-l", "fs-mix"};

struct config {
	enum bench_op op;
	const char *cluster; /* network mode */
	const char *cacert, *cert, *key; /* TLS files (cacert NULL: plaintext) */
	char *mounts_arg; /* mount mode: the list, split in place into mounts[] */
	char *mounts[BENCH_MAX_MOUNTS];
	int n_mounts;
	int conns;
	int clients;
	long total;
	int key_bytes;
	size_t val_bytes;
	const char *read_key;
	const char *key_prefix;
	uint32_t timeout_ms;
	pid_t pids[BENCH_MAX_PIDS];
	int n_pids;
	const char *bind;
	const char *floor_dir; /* --floor: measure the floors instead */
	bool total_given;
	uint32_t
	        via; /* --via=ID: every connection to node ID, which forwards what it does not lead */
};

/* What a run measured. */
struct outcome {
	uint64_t *lat_ns; /* one per operation, index = operation number */
	long errors;
	long retries;
	double elapsed_s;
	char first_error[BENCH_ERRMSG_BYTES];
};

static char *value; /* --val-size bytes of 'v', as bench-etcd */

/* --- small helpers -------------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ms(void)
{
	return now_ns() / 1000000u;
}

static uint64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Operation i of the run is a write (put or append) rather than a get. */
static bool op_writes(const struct config *cfg, long i)
{
	if (cfg->op == OP_MIX)
		return i % 10 == 0;
	return cfg->op != OP_GET;
}

/* The key of operation i: the prefix, then i in key_bytes digits (zero-padded). */
static void op_key(const struct config *cfg, long i, char *buf, size_t len)
{
	snprintf(buf, len, "%s%0*ld", cfg->key_prefix, cfg->key_bytes, i);
}

/* A run stops when this many operations in a row failed: every client failed at least once
 * with no success in between, so the cluster (or mount) is not serving, and waiting for each
 * remaining operation's timeout would take hours. */
static long errors_in_a_row_limit(const struct config *cfg)
{
	return cfg->clients > BENCH_MIN_ERRORS_IN_A_ROW ? cfg->clients : BENCH_MIN_ERRORS_IN_A_ROW;
}

static void note_error(struct outcome *o, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Counts nothing: remembers the first error's description for stderr. */
static void note_error(struct outcome *o, const char *fmt, ...)
{
	va_list ap;

	if (o->first_error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(o->first_error, sizeof(o->first_error), fmt, ap);
	va_end(ap);
}

/* --- server processes: CPU time and peak memory from /proc --------------------------------------- */

/* utime + stime of pid in clock ticks: 0, or -1 when /proc/PID/stat cannot be read. */
static int proc_cpu_ticks(pid_t pid, uint64_t *ticks)
{
	char path[64], buf[1024];
	unsigned long ut, st;
	const char *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and parentheses: fields 3.. follow the last
	 * ')'. utime and stime are fields 14 and 15 (proc(5)). */
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	*ticks = (uint64_t)ut + (uint64_t)st;
	return 0;
}

/* VmHWM of pid in kB: 0, or -1. */
static int proc_peak_rss_kb(pid_t pid, unsigned long *kb)
{
	char path[64], line[256];
	int rc = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %lu kB", kb) == 1) {
			rc = 0;
			break;
		}
	fclose(f);
	return rc;
}

/* CPU ticks of every --pids process summed: 0, or -1 when one cannot be read. */
static int pids_cpu_ticks(const struct config *cfg, uint64_t *sum)
{
	*sum = 0;
	for (int i = 0; i < cfg->n_pids; i++) {
		uint64_t t;

		if (proc_cpu_ticks(cfg->pids[i], &t) < 0)
			return -1;
		*sum += t;
	}
	return 0;
}

/* --- network mode: buffers -------------------------------------------------------------------- */

/* Bytes p[off..len) are waiting (to be sent, or to be parsed). */
struct buf {
	unsigned char *p;
	size_t off, len, cap;
};

/* Room for more bytes after len (moving the waiting bytes to the front first). 0 or -1. */
static int buf_reserve(struct buf *b, size_t more)
{
	size_t need;
	unsigned char *p;

	if (b->off > 0) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	need = b->len + more;
	if (need <= b->cap)
		return 0;
	if (need < 2 * b->cap)
		need = 2 * b->cap;
	p = realloc(b->p, need);
	if (!p)
		return -1;
	b->p = p;
	b->cap = need;
	return 0;
}

static int buf_append(struct buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap && buf_reserve(b, len) < 0)
		return -1;
	memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

/* Puts len bytes in front of the waiting ones. 0 or -1. */
static int buf_prepend(struct buf *b, const void *data, size_t len)
{
	if (buf_reserve(b, len) < 0)
		return -1;
	memmove(b->p + len, b->p, b->len);
	memcpy(b->p, data, len);
	b->len += len;
	return 0;
}

static void buf_clear(struct buf *b)
{
	b->off = 0;
	b->len = 0;
}

static size_t buf_waiting(const struct buf *b)
{
	return b->len - b->off;
}

/* --- network mode: state ---------------------------------------------------------------------- */

enum conn_state {
	CONN_IDLE, /* no socket; dialed when a frame waits and now >= retry_at_ms */
	CONN_CONNECTING, /* non-blocking connect under way until retry_at_ms */
	CONN_HANDSHAKE, /* TLS: the handshake, waiting for want, until retry_at_ms */
	CONN_UP,
};

struct conn {
	int fd;
	unsigned node; /* index in the cluster list of the node fd leads to */
	enum conn_state state;
	uint64_t retry_at_ms;
	uint64_t backoff_ms;
	unsigned gen; /* bumped at every drop: a dispatcher checks it did not drop the conn */
	struct buf out; /* the hello, then frames */
	struct buf in;
	struct ssl_st *ssl; /* TLS: the session on fd */
	short want; /* TLS: what the handshake or the last write waits for (POLLIN, POLLOUT) */
};

enum client_state {
	CL_IDLE, /* between operations */
	CL_SENT, /* an attempt is on its connection, answer due by reply_by_ms */
	CL_BACKOFF, /* the attempt failed; sent again at retry_at_ms */
	CL_DONE, /* nothing more in this phase */
};

struct client {
	unsigned conn;
	enum client_state state;
	uint64_t session; /* 0: none open */
	uint64_t seq; /* last seq used in session */
	uint8_t op; /* enum kv_op of cmd */
	void *cmd; /* raft_buf of the encoded command: every attempt sends the same bytes */
	size_t cmd_len;
	uint64_t req_id; /* of the attempt under way */
	long op_index; /* the measured operation under way, -1 for none */
	uint64_t t0_ns; /* its start */
	uint64_t deadline_ms; /* the operation (or session open) gives up then */
	uint64_t reply_by_ms;
	uint64_t retry_at_ms;
	uint64_t backoff_ms;
};

enum phase { PH_OPEN, PH_RUN, PH_CLOSE };

struct net {
	const struct config *cfg;
	struct outcome *out;
	struct raft_transport_config cl; /* the parsed cluster list */
	unsigned char hello[RAFT_TRANSPORT_HELLO_BYTES];
	bool bind_set;
	struct in_addr bind_addr;
	struct conn *conns;
	struct client *clients;
	unsigned leader; /* index of the node believed to lead */
	enum phase phase;
	uint64_t phase_deadline_ms;
	long next; /* next operation to hand out */
	unsigned busy; /* clients not CL_DONE in this phase */
	uint64_t serial; /* request ids */
	bool setup_failed; /* or the run stopped: the loop ends */
	long errors_in_a_row; /* operations failed since the last success */
	uint32_t uid, gid;
	struct raft_tls *tls; /* NULL: plaintext */
};

static void client_next(struct net *b, struct client *cl);
static void client_send(struct net *b, struct client *cl);
static void attempt_failed(struct net *b, struct client *cl, const char *why);

static int node_index(const struct net *b, uint32_t id)
{
	for (unsigned i = 0; i < b->cl.n_peers; i++)
		if (b->cl.peers[i].id == id)
			return (int)i;
	return -1;
}

static const struct raft_transport_peer *node_of(const struct net *b, unsigned idx)
{
	return &b->cl.peers[idx];
}

/* --- network mode: connections ------------------------------------------------------------------ */

/*
 * Closes c and forgets its bytes. Every client whose attempt was on it sends again: at once when
 * the drop is ours (moving to the leader), after its backoff when the connection failed (then
 * the connection itself is dialed again only after a backoff, and if it led to the node we took
 * for the leader, the next node is tried).
 */
static void conn_drop(struct net *b, struct conn *c, bool failed, const char *why)
{
	unsigned idx = (unsigned)(c - b->conns);

	raft_tls_io_close(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = CONN_IDLE;
	c->gen++;
	buf_clear(&c->out);
	buf_clear(&c->in);
	c->retry_at_ms = 0; /* ours: dialed again at once */
	if (failed) {
		c->retry_at_ms = now_ms() + c->backoff_ms;
		c->backoff_ms = min_u64(2 * c->backoff_ms, BENCH_BACKOFF_MAX_MS);
		if (b->leader == c->node)
			b->leader = (c->node + 1) % b->cl.n_peers;
	}
	for (int i = 0; i < b->cfg->clients; i++) {
		struct client *cl = &b->clients[i];

		if (cl->conn != idx || cl->state != CL_SENT)
			continue;
		if (failed)
			attempt_failed(b, cl, why);
		else
			client_send(b, cl);
	}
}

/* Starts connecting c to the leader; the hello goes in front of the frames already waiting. */
static void conn_dial(struct net *b, struct conn *c)
{
	const struct raft_transport_peer *p = node_of(b, b->leader);
	struct sockaddr_in sa;
	int one = 1;
	char why[160];

	c->node = b->leader;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(p->port);
	if (inet_pton(AF_INET, p->host, &sa.sin_addr) != 1) {
		snprintf(why, sizeof(why), "node %u: bad address %s", p->id, p->host);
		goto fail;
	}
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		goto fail;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (b->bind_set) {
		struct sockaddr_in src;

		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr = b->bind_addr;
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			snprintf(why, sizeof(why), "bind: %s", strerror(errno));
			goto fail;
		}
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		snprintf(why, sizeof(why), "connect to node %u (%s:%u): %s", p->id, p->host,
		         p->port, strerror(errno));
		goto fail;
	}
	if (buf_prepend(&c->out, b->hello, sizeof(b->hello)) < 0) {
		snprintf(why, sizeof(why), "out of memory");
		goto fail;
	}
	c->state = CONN_CONNECTING;
	c->retry_at_ms = now_ms() + BENCH_CONNECT_TIMEOUT_MS;
	return;
fail:
	note_error(b->out, "%s", why);
	conn_drop(b, c, true, why);
}

/* send(2), or its TLS counterpart (a write that must wait says for what in c->want). */
static ssize_t conn_send(struct conn *c, char *why, size_t why_len)
{
	ssize_t n;

	if (c->ssl)
		return raft_tls_io_write(c->ssl, c->out.p + c->out.off, buf_waiting(&c->out),
		                         &c->want, why, why_len);
	c->want = POLLOUT;
	n = send(c->fd, c->out.p + c->out.off, buf_waiting(&c->out), MSG_NOSIGNAL);
	if (n < 0)
		snprintf(why, why_len, "%s", strerror(errno));
	return n;
}

static ssize_t conn_recv(struct conn *c, void *buf, size_t len, char *why, size_t why_len)
{
	short events;
	ssize_t n;

	if (c->ssl)
		return raft_tls_io_read(c->ssl, buf, len, &events, why, why_len);
	n = recv(c->fd, buf, len, 0);
	if (n < 0)
		snprintf(why, why_len, "%s", strerror(errno));
	return n;
}

/* Sends what waits on c until the socket is full. */
static void conn_flush(struct net *b, struct conn *c)
{
	char why[RAFT_TLS_ERRMSG_BYTES + 64], ewhy[RAFT_TLS_ERRMSG_BYTES];

	while (c->state == CONN_UP && buf_waiting(&c->out) > 0) {
		ssize_t n = conn_send(c, ewhy, sizeof(ewhy));

		if (n > 0) {
			c->out.off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		snprintf(why, sizeof(why), "send to node %u: %s", node_of(b, c->node)->id, ewhy);
		conn_drop(b, c, true, why);
		return;
	}
	if (buf_waiting(&c->out) == 0)
		buf_clear(&c->out);
}

/* TLS: one step of c's handshake (the node's certificate must name its address). */
static void conn_handshake(struct net *b, struct conn *c)
{
	char why[RAFT_TLS_ERRMSG_BYTES + 64], ewhy[RAFT_TLS_ERRMSG_BYTES];
	int r = raft_tls_io_handshake(c->ssl, &c->want, ewhy, sizeof(ewhy));

	if (r == 0)
		return;
	if (r < 0) {
		snprintf(why, sizeof(why), "TLS handshake with node %u: %s",
		         node_of(b, c->node)->id, ewhy);
		note_error(b->out, "%s", why);
		conn_drop(b, c, true, why);
		return;
	}
	c->state = CONN_UP;
	c->want = 0;
	c->backoff_ms = BENCH_BACKOFF_MIN_MS;
	conn_flush(b, c);
}

static void conn_connected(struct net *b, struct conn *c)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	char why[160];

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr) {
		snprintf(why, sizeof(why), "connect to node %u: %s", node_of(b, c->node)->id,
		         strerror(soerr));
		conn_drop(b, c, true, why);
		return;
	}
	if (b->tls) {
		c->ssl = raft_tls_client_ssl(b->tls, c->fd, node_of(b, c->node)->host);
		if (!c->ssl) {
			conn_drop(b, c, true, "TLS: out of memory");
			return;
		}
		c->state = CONN_HANDSHAKE;
		c->retry_at_ms = now_ms() + BENCH_CONNECT_TIMEOUT_MS;
		conn_handshake(b, c);
		return;
	}
	c->state = CONN_UP;
	c->backoff_ms = BENCH_BACKOFF_MIN_MS;
	conn_flush(b, c);
}

/* --- network mode: clients ---------------------------------------------------------------------- */

/* Encodes a command of op for cl (session and seq as given) into cl->cmd. 0, or -1. */
static int client_encode(struct net *b, struct client *cl, uint8_t op, uint64_t session,
                         uint64_t seq, const char *key, const void *data, size_t data_len)
{
	struct kv_cmd cmd;
	int err;

	memset(&cmd, 0, sizeof(cmd));
	cmd.op = op;
	cmd.session = session;
	cmd.seq = seq;
	cmd.time_ms = realtime_ms();
	cmd.uid = b->uid;
	cmd.gid = b->gid;
	cmd.mode = 0644;
	cmd.key = key;
	cmd.key_len = key ? strlen(key) : 0;
	cmd.data = data;
	cmd.data_len = data_len;
	raft_buf_unref(cl->cmd);
	cl->cmd = NULL;
	cl->op = op;
	err = kv_cmd_encode(&cmd, &cl->cmd, &cl->cmd_len);
	if (err != KV_OK) {
		note_error(b->out, "encode %s: %s", kv_op_name(op), kv_strerror(err));
		cl->cmd = NULL;
		return -1;
	}
	return 0;
}

/* Queues an attempt of cl->cmd on cl's connection (moved to the leader first if it leads
 * elsewhere) under a new request id. */
static void client_send(struct net *b, struct client *cl)
{
	struct conn *c = &b->conns[cl->conn];
	struct kv_proto_frame req = {.type = KV_PROTO_REQ, .timeout_ms = BENCH_ATTEMPT_TIMEOUT_MS};
	uint64_t now = now_ms();
	void *frame;
	size_t frame_len;

	if (c->state != CONN_IDLE && c->node != b->leader) {
		cl->state = CL_IDLE; /* not resent by the drop: we send it below */
		conn_drop(b, c, false, NULL);
	}
	cl->req_id = (++b->serial << BENCH_ID_CLIENT_BITS) | (uint64_t)(cl - b->clients);
	req.id = cl->req_id;
	req.body = cl->cmd;
	req.body_len = cl->cmd_len;
	cl->state = CL_SENT;
	cl->reply_by_ms = now + BENCH_ATTEMPT_TIMEOUT_MS + BENCH_REPLY_MARGIN_MS;
	if (kv_proto_encode(&req, &frame, &frame_len) < 0) {
		attempt_failed(b, cl, "out of memory");
		return;
	}
	if (buf_append(&c->out, frame, frame_len) < 0) {
		free(frame);
		attempt_failed(b, cl, "out of memory");
		return;
	}
	free(frame);
	if (c->state == CONN_IDLE && now >= c->retry_at_ms)
		conn_dial(b, c);
	/* CONN_UP: flushed at the end of the loop turn, with whatever else this turn queued */
}

static void client_done(struct net *b, struct client *cl)
{
	raft_buf_unref(cl->cmd);
	cl->cmd = NULL;
	cl->state = CL_DONE;
	b->busy--;
}

/* The operation under way is over (answered or given up, ok or not): its latency is recorded. */
static void op_finished(struct net *b, struct client *cl, bool ok)
{
	b->out->lat_ns[cl->op_index] = now_ns() - cl->t0_ns;
	if (ok) {
		b->errors_in_a_row = 0;
	} else {
		b->out->errors++;
		if (++b->errors_in_a_row >= errors_in_a_row_limit(b->cfg)) {
			note_error(b->out, "%ld operations failed in a row", b->errors_in_a_row);
			b->setup_failed = true; /* the cluster is not serving: stop */
		}
	}
	cl->op_index = -1;
	raft_buf_unref(cl->cmd);
	cl->cmd = NULL;
	cl->state = CL_IDLE;
}

/* The step under way failed for good. */
static void step_failed(struct net *b, struct client *cl, const char *why)
{
	if (b->phase == PH_CLOSE) {
		client_done(b, cl);
		return;
	}
	if (b->phase == PH_OPEN) {
		note_error(b->out, "open session: %s", why);
		b->setup_failed = true;
		client_done(b, cl);
		return;
	}
	note_error(b->out, "operation %ld (%s): %s", cl->op_index, kv_op_name(cl->op), why);
	op_finished(b, cl, false);
	client_next(b, cl);
}

/* An attempt failed: send the same bytes again after a backoff, unless time is up. */
static void attempt_failed(struct net *b, struct client *cl, const char *why)
{
	uint64_t now = now_ms();

	if (now >= cl->deadline_ms || b->phase == PH_CLOSE) {
		step_failed(b, cl, why);
		return;
	}
	b->out->retries++;
	cl->state = CL_BACKOFF;
	cl->retry_at_ms = now + cl->backoff_ms;
	cl->backoff_ms = min_u64(2 * cl->backoff_ms, BENCH_BACKOFF_MAX_MS);
}

/* Sends cl's next command for the phase, or marks it done. */
static void client_next(struct net *b, struct client *cl)
{
	const struct config *cfg = b->cfg;
	char key[BENCH_MAX_KEY_BYTES + 64];
	long i;

	cl->backoff_ms = BENCH_BACKOFF_MIN_MS;
	switch (b->phase) {
	case PH_OPEN:
		if (cl->session) {
			client_done(b, cl);
			return;
		}
		cl->deadline_ms = b->phase_deadline_ms;
		if (client_encode(b, cl, KV_OP_OPEN_SESSION, 0, 0, NULL, NULL, 0) < 0) {
			b->setup_failed = true;
			client_done(b, cl);
			return;
		}
		break;
	case PH_RUN:
		if (cl->op_index < 0) {
			if (b->next >= cfg->total) {
				client_done(b, cl);
				return;
			}
			cl->op_index = b->next++;
			cl->t0_ns = now_ns();
			cl->deadline_ms = now_ms() + cfg->timeout_ms;
		}
		i = cl->op_index;
		if (op_writes(cfg, i) && !cl->session) {
			/* the session was lost (expired): a new one, within the operation's time */
			if (client_encode(b, cl, KV_OP_OPEN_SESSION, 0, 0, NULL, NULL, 0) < 0)
				goto fail;
		} else if (op_writes(cfg, i)) {
			op_key(cfg, i, key, sizeof(key));
			if (client_encode(b, cl, cfg->op == OP_APPEND ? KV_OP_APPEND : KV_OP_PUT,
			                  cl->session, ++cl->seq, key, value, cfg->val_bytes) < 0)
				goto fail;
		} else if (client_encode(b, cl, KV_OP_GET, 0, 0, cfg->read_key, NULL, 0) < 0) {
			goto fail;
		}
		break;
	case PH_CLOSE:
		if (!cl->session) {
			client_done(b, cl);
			return;
		}
		cl->deadline_ms = b->phase_deadline_ms;
		if (client_encode(b, cl, KV_OP_CLOSE_SESSION, cl->session, ++cl->seq, NULL, NULL,
		                  0) < 0) {
			client_done(b, cl);
			return;
		}
		cl->session = 0;
		break;
	}
	client_send(b, cl);
	return;
fail:
	op_finished(b, cl, false);
	b->setup_failed = true; /* an encoding error repeats for every operation: stop */
	client_done(b, cl);
}

/* cl's attempt was answered OK with result r. */
static void client_answered(struct net *b, struct client *cl, struct kv_result *r)
{
	const struct config *cfg = b->cfg;
	uint8_t op = cl->op;
	bool ok;

	switch (op) {
	case KV_OP_OPEN_SESSION:
		if (r->status != KV_OK || r->session == 0) {
			step_failed(b, cl,
			            kv_strerror(r->status != KV_OK ? r->status : KV_ECORRUPT));
			return;
		}
		cl->session = r->session;
		cl->seq = 0;
		if (b->phase == PH_OPEN) {
			client_done(b, cl);
			return;
		}
		break; /* the operation that needed the session goes on */
	case KV_OP_CLOSE_SESSION:
		client_done(b, cl);
		return;
	case KV_OP_GET:
		ok = r->status == KV_OK && r->value_len == cfg->val_bytes;
		if (!ok)
			note_error(b->out, "get %s: %s, %zu bytes (expected %zu)", cfg->read_key,
			           kv_strerror(r->status), r->value_len, cfg->val_bytes);
		op_finished(b, cl, ok);
		break;
	default:
		if (r->status == KV_ESESSION_EXPIRED)
			cl->session = 0;
		if (r->status != KV_OK)
			note_error(b->out, "%s of operation %ld: %s", kv_op_name(op), cl->op_index,
			           kv_strerror(r->status));
		op_finished(b, cl, r->status == KV_OK);
		break;
	}
	client_next(b, cl);
}

/* Follows a leader hint (0: none) after node `from` refused or failed. */
static void follow_hint(struct net *b, unsigned from, uint32_t hint)
{
	int h = hint ? node_index(b, hint) : -1;

	if (b->cfg->via)
		return; /* --via: that node forwards, whoever leads */
	if (h >= 0 && (unsigned)h != from)
		b->leader = (unsigned)h;
	else if (b->leader == from)
		b->leader = (from + 1) % b->cl.n_peers;
}

/* One frame from connection c. */
static void conn_dispatch(struct net *b, struct conn *c, const struct kv_proto_frame *f)
{
	uint64_t idx = f->id & ((1u << BENCH_ID_CLIENT_BITS) - 1);
	struct client *cl;
	struct kv_result r;
	char why[160];

	if (f->type != KV_PROTO_RESP || idx >= (uint64_t)b->cfg->clients)
		return;
	cl = &b->clients[idx];
	if (cl->state != CL_SENT || cl->req_id != f->id)
		return; /* the answer of an attempt given up */
	switch (f->status) {
	case KV_STATUS_OK:
		if (kv_result_decode(f->body, f->body_len, &r) != KV_OK) {
			attempt_failed(b, cl, "malformed result");
			return;
		}
		/* A follower answered (it forwards): talk to the leader from now on. */
		if (f->leader && node_index(b, f->leader) >= 0 && !b->cfg->via)
			b->leader = (unsigned)node_index(b, f->leader);
		client_answered(b, cl, &r);
		kv_result_release(&r);
		return;
	case KV_STATUS_NOT_APPLIED:
	case KV_STATUS_SHUTDOWN:
	case KV_STATUS_UNKNOWN:
		follow_hint(b, c->node, f->status == KV_STATUS_SHUTDOWN ? 0 : f->leader);
		snprintf(why, sizeof(why), "node %u: %s", node_of(b, c->node)->id,
		         kv_status_name(f->status));
		attempt_failed(b, cl, why);
		return;
	default:
		snprintf(why, sizeof(why), "node %u: %s", node_of(b, c->node)->id,
		         kv_status_name(f->status));
		step_failed(b, cl, why);
		return;
	}
}

/* Reads what c has received and dispatches every complete frame. */
static void conn_read(struct net *b, struct conn *c)
{
	unsigned gen = c->gen;
	char why[RAFT_TLS_ERRMSG_BYTES + 64], ewhy[RAFT_TLS_ERRMSG_BYTES];

	for (;;) {
		size_t room;
		ssize_t n;

		if (c->in.cap - c->in.len < BENCH_READ_CHUNK &&
		    buf_reserve(&c->in, BENCH_READ_CHUNK) < 0) {
			conn_drop(b, c, true, "out of memory");
			return;
		}
		room = c->in.cap - c->in.len;
		n = conn_recv(c, c->in.p + c->in.len, room, ewhy, sizeof(ewhy));
		if (n > 0) {
			c->in.len += (size_t)n;
			/* TLS reads a record at a time, and what it holds poll() cannot see */
			if ((size_t)n < room && !c->ssl)
				break; /* drained */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		snprintf(why, sizeof(why), "node %u: %s", node_of(b, c->node)->id,
		         n == 0 ? "closed the connection" : ewhy);
		conn_drop(b, c, true, why);
		return;
	}
	while (c->gen == gen) {
		struct kv_proto_frame f;
		const char *bad;
		size_t flen;
		int rv = kv_proto_frame_length(c->in.p + c->in.off, buf_waiting(&c->in), &flen);

		if (rv == 0)
			break;
		if (rv < 0 || kv_proto_decode(c->in.p + c->in.off, flen, &f, &bad) != 0) {
			snprintf(why, sizeof(why), "node %u: %s", node_of(b, c->node)->id,
			         rv < 0 ? "impossible frame length" : bad);
			conn_drop(b, c, true, why);
			return;
		}
		c->in.off += flen;
		conn_dispatch(b, c, &f); /* may drop c (then gen changes) */
	}
	if (c->gen == gen && buf_waiting(&c->in) == 0)
		buf_clear(&c->in);
}

/* Backoffs, lost answers and connects that take too long. */
static void check_timers(struct net *b)
{
	uint64_t now = now_ms();

	for (int i = 0; i < b->cfg->conns; i++) {
		struct conn *c = &b->conns[i];

		if (c->state == CONN_CONNECTING && now >= c->retry_at_ms)
			conn_drop(b, c, true, "connect timed out");
		else if (c->state == CONN_HANDSHAKE && now >= c->retry_at_ms)
			conn_drop(b, c, true, "TLS handshake timed out");
		else if (c->state == CONN_IDLE && buf_waiting(&c->out) > 0 && now >= c->retry_at_ms)
			conn_dial(b, c);
	}
	for (int i = 0; i < b->cfg->clients; i++) {
		struct client *cl = &b->clients[i];

		if (cl->state == CL_BACKOFF && now >= cl->retry_at_ms)
			client_send(b, cl);
		else if (cl->state == CL_SENT && now >= cl->reply_by_ms)
			attempt_failed(b, cl, "no answer in time");
	}
}

/* Runs the loop until every client is done with the phase (or its deadline passes: then 0
 * clients may still be busy; the caller decides). */
static void run_phase(struct net *b, enum phase ph, uint64_t deadline_ms)
{
	struct pollfd *pfd = calloc((size_t)b->cfg->conns, sizeof(*pfd));
	uint64_t last_timers = now_ms();

	if (!pfd) {
		note_error(b->out, "out of memory");
		b->setup_failed = true;
		return;
	}
	b->phase = ph;
	b->phase_deadline_ms = deadline_ms;
	b->busy = (unsigned)b->cfg->clients;
	for (int i = 0; i < b->cfg->clients; i++) {
		b->clients[i].state = CL_IDLE;
		client_next(b, &b->clients[i]);
	}
	while (b->busy > 0 && !b->setup_failed && now_ms() < deadline_ms) {
		uint64_t now;
		int n = 0;

		for (int i = 0; i < b->cfg->conns; i++) {
			struct conn *c = &b->conns[i];

			if (c->state == CONN_UP)
				conn_flush(b, c);
			if (c->fd < 0)
				continue;
			pfd[n].fd = c->fd;
			if (c->state == CONN_CONNECTING)
				pfd[n].events = POLLOUT;
			else if (c->state == CONN_HANDSHAKE)
				pfd[n].events = c->want;
			else
				pfd[n].events = POLLIN;
			if (c->state == CONN_UP && buf_waiting(&c->out) > 0)
				pfd[n].events |= c->want ? c->want : POLLOUT;
			pfd[n].revents = 0;
			n++;
		}
		if (poll(pfd, (nfds_t)n, BENCH_TIMER_MS) < 0 && errno != EINTR) {
			note_error(b->out, "poll: %s", strerror(errno));
			b->setup_failed = true;
			break;
		}
		for (int i = 0, j = 0; i < b->cfg->conns && j < n; i++) {
			struct conn *c = &b->conns[i];

			if (c->fd < 0 || pfd[j].fd != c->fd)
				continue; /* dropped (and maybe dialed again) during this turn */
			if (pfd[j].revents) {
				if (c->state == CONN_CONNECTING)
					conn_connected(b, c);
				else if (c->state == CONN_HANDSHAKE)
					conn_handshake(b, c);
				else if (pfd[j].revents & (POLLIN | POLLERR | POLLHUP))
					conn_read(b, c);
				else if (pfd[j].revents & POLLOUT)
					conn_flush(b, c);
			}
			j++;
		}
		now = now_ms();
		if (now - last_timers >= BENCH_TIMER_MS) {
			last_timers = now;
			check_timers(b);
		}
	}
	free(pfd);
}

/* Finds the leader with status requests (through the clerk library) and, for gets, writes the
 * hot key. 0, or -1 with a message on stderr. */
static int net_setup(struct net *b)
{
	const struct config *cfg = b->cfg;
	uint64_t deadline = now_ms() + BENCH_SETUP_TIMEOUT_MS;
	char err[1024];
	struct kv_clerk_tls tls = {cfg->cacert, cfg->cert, cfg->key};
	struct kv_clerk *k =
	        kv_clerk_open(cfg->cluster, cfg->cacert ? &tls : NULL, err, sizeof(err));
	int found = -1, rc = -1, o;
	struct kv_result r;

	if (!k) {
		fprintf(stderr, "bench_kv: %s\n", err);
		return -1;
	}
	if (cfg->bind && kv_clerk_set_bind(k, cfg->bind) < 0) {
		fprintf(stderr, "bench_kv: %s\n", kv_clerk_errmsg(k));
		goto out;
	}
	if (cfg->via) {
		found = node_index(b, cfg->via);
		if (found < 0) {
			fprintf(stderr, "bench_kv: --via=%u is not in the cluster list\n",
			        cfg->via);
			goto out;
		}
	}
	while (found < 0 && now_ms() < deadline) {
		for (unsigned i = 0; i < b->cl.n_peers && found < 0; i++) {
			struct kv_proto_node_status st;

			if (kv_clerk_status(k, b->cl.peers[i].id, &st, 1000) == 0 &&
			    st.role == RAFT_LEADER)
				found = (int)i;
		}
		if (found < 0)
			poll(NULL, 0, 100);
	}
	if (found < 0) {
		fprintf(stderr, "bench_kv: no node says it leads (last: %s)\n", kv_clerk_errmsg(k));
		goto out;
	}
	b->leader = (unsigned)found;
	if (cfg->op == OP_GET || cfg->op == OP_MIX) {
		o = kv_clerk_put(k, cfg->read_key, value, cfg->val_bytes, BENCH_SETUP_TIMEOUT_MS,
		                 &r);
		if (o != KV_CLERK_APPLIED || r.status != KV_OK) {
			fprintf(stderr, "bench_kv: put %s: %s: %s\n", cfg->read_key,
			        kv_clerk_outcome_name(o),
			        o == KV_CLERK_APPLIED ? kv_strerror(r.status) : kv_clerk_errmsg(k));
			kv_result_release(&r);
			goto out;
		}
		kv_result_release(&r);
	}
	rc = 0;
out:
	kv_clerk_close(k);
	return rc;
}

static void net_free(struct net *b)
{
	for (int i = 0; b->conns && i < b->cfg->conns; i++) {
		raft_tls_io_close(b->conns[i].ssl);
		if (b->conns[i].fd >= 0)
			close(b->conns[i].fd);
		free(b->conns[i].out.p);
		free(b->conns[i].in.p);
	}
	for (int i = 0; b->clients && i < b->cfg->clients; i++)
		raft_buf_unref(b->clients[i].cmd);
	free(b->conns);
	free(b->clients);
	raft_tls_free(b->tls);
}

/* The TLS files of --cacert, --cert, --key. 0, or -1 with a message on stderr. */
static int net_tls(struct net *b)
{
	const struct config *cfg = b->cfg;
	struct raft_tls_files f;
	char err[RAFT_TLS_ERRMSG_BYTES + 2 * RAFT_TLS_PATH_BYTES];

	memset(&f, 0, sizeof(f));
	if (strlen(cfg->cacert) >= sizeof(f.ca) ||
	    (cfg->cert && strlen(cfg->cert) >= sizeof(f.cert)) ||
	    (cfg->key && strlen(cfg->key) >= sizeof(f.key))) {
		fprintf(stderr, "bench_kv: TLS: a file name is too long\n");
		return -1;
	}
	strcpy(f.ca, cfg->cacert);
	if (cfg->cert)
		strcpy(f.cert, cfg->cert);
	if (cfg->key)
		strcpy(f.key, cfg->key);
	if (raft_tls_new(RAFT_TLS_CLIENT, &f, &b->tls, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_kv: TLS: %s\n", err);
		return -1;
	}
	return 0;
}

/*
 * The network run: sessions opened, then the measured operations between two samples of the
 * servers' CPU time, then the sessions closed. 0 when measured, -1 when setup failed.
 */
static int net_run(const struct config *cfg, struct outcome *out, uint64_t *ticks0,
                   uint64_t *ticks1, int *cpu_ok)
{
	struct net b;
	char err[RAFT_TRANSPORT_ERRMSG_BYTES];
	uint64_t t0;
	int rc = -1;

	memset(&b, 0, sizeof(b));
	b.cfg = cfg;
	b.out = out;
	b.uid = (uint32_t)getuid();
	b.gid = (uint32_t)getgid();
	if (raft_transport_parse_cluster(cfg->cluster, &b.cl, err, sizeof(err)) != RAFT_OK) {
		fprintf(stderr, "bench_kv: --cluster: %s\n", err);
		return -1;
	}
	if (cfg->bind) {
		if (inet_pton(AF_INET, cfg->bind, &b.bind_addr) != 1) {
			fprintf(stderr, "bench_kv: bind address %s is not IPv4\n", cfg->bind);
			return -1;
		}
		b.bind_set = true;
	}
	if (cfg->cacert && net_tls(&b) < 0)
		return -1;
	raft_transport_hello_encode(b.hello, RAFT_TRANSPORT_KIND_CLIENT, 0, 0);
	b.conns = calloc((size_t)cfg->conns, sizeof(*b.conns));
	b.clients = calloc((size_t)cfg->clients, sizeof(*b.clients));
	if (!b.conns || !b.clients) {
		fprintf(stderr, "bench_kv: out of memory\n");
		goto out;
	}
	for (int i = 0; i < cfg->conns; i++) {
		b.conns[i].fd = -1;
		b.conns[i].backoff_ms = BENCH_BACKOFF_MIN_MS;
	}
	for (int i = 0; i < cfg->clients; i++) {
		b.clients[i].conn = (unsigned)(i % cfg->conns);
		b.clients[i].op_index = -1;
	}
	if (net_setup(&b) < 0)
		goto out;
	run_phase(&b, PH_OPEN, now_ms() + BENCH_SETUP_TIMEOUT_MS);
	if (b.setup_failed || b.busy > 0) {
		fprintf(stderr, "bench_kv: opening %d sessions failed: %s\n", cfg->clients,
		        out->first_error[0] ? out->first_error : "timed out");
		goto out;
	}
	out->retries = 0;
	*cpu_ok = pids_cpu_ticks(cfg, ticks0) == 0;
	t0 = now_ns();
	/* every operation ends by its own deadline, so the phase ends on its own */
	run_phase(&b, PH_RUN, UINT64_MAX);
	out->elapsed_s = (double)(now_ns() - t0) / 1e9;
	*cpu_ok = *cpu_ok && pids_cpu_ticks(cfg, ticks1) == 0;
	if (b.setup_failed) {
		fprintf(stderr, "bench_kv: the run stopped: %s\n", out->first_error);
		goto out;
	}
	run_phase(&b, PH_CLOSE, now_ms() + BENCH_CLOSE_TIMEOUT_MS);
	rc = 0;
out:
	net_free(&b);
	return rc;
}

/* --- mount mode --------------------------------------------------------------------------------- */

/* Threads start together: each says it is ready, then waits for go. */
struct fs_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int ready;
	bool go;
	bool abort; /* setup failed: leave without measuring */
};

struct fs_shared {
	const struct config *cfg;
	struct outcome *out;
	atomic_long next;
	atomic_long errors;
	atomic_long errors_in_a_row;
	atomic_bool stop; /* errors_in_a_row reached its limit */
	pthread_mutex_t lock; /* out->first_error */
	struct fs_gate gate;
};

struct fs_worker {
	struct fs_shared *sh;
	const char *dir;
	char *rbuf; /* val_bytes + 1 for reads */
};

static void fs_error(struct fs_shared *sh, const char *what, const char *path, int err)
{
	atomic_fetch_add(&sh->errors, 1);
	if (atomic_fetch_add(&sh->errors_in_a_row, 1) + 1 >= errors_in_a_row_limit(sh->cfg))
		atomic_store(&sh->stop, true);
	pthread_mutex_lock(&sh->lock);
	note_error(sh->out, "%s %s: %s", what, path, strerror(err));
	pthread_mutex_unlock(&sh->lock);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* open(flags: O_TRUNC or O_APPEND) + one write of len bytes of the value + close. 0, or an
 * errno with *what naming the call that failed. */
static int fs_write(const char *path, int flags, size_t len, const char **what)
{
	int fd = open(path, O_WRONLY | O_CREAT | flags | O_CLOEXEC, 0644);
	int err = 0;

	*what = "open";
	if (fd < 0)
		return errno;
	if (write_all(fd, value, len) < 0) {
		*what = "write";
		err = errno;
	}
	if (close(fd) < 0 && !err) {
		*what = "close";
		err = errno;
	}
	return err;
}

/* open + read to EOF + close of path into buf (cap bytes): the size read, or -1 with *what and
 * *err set. */
static long fs_read(const char *path, char *buf, size_t cap, const char **what, int *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t total = 0;

	*what = "open";
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	while (total < cap) {
		ssize_t n = read(fd, buf + total, cap - total);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*what = "read";
			*err = errno;
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		total += (size_t)n;
	}
	close(fd);
	return (long)total;
}

static void fs_op(struct fs_worker *w, long i)
{
	const struct config *cfg = w->sh->cfg;
	char key[BENCH_MAX_KEY_BYTES + 64], path[4096 + sizeof(key)];
	const char *what;
	long got;
	int err = 0;

	if (op_writes(cfg, i)) {
		op_key(cfg, i, key, sizeof(key));
		snprintf(path, sizeof(path), "%s/%s", w->dir, key);
		err = fs_write(path, cfg->op == OP_APPEND ? O_APPEND : O_TRUNC, cfg->val_bytes,
		               &what);
		if (err)
			fs_error(w->sh, what, path, err);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", w->dir, cfg->read_key);
	/* one byte more than expected, so that a longer value shows */
	got = fs_read(path, w->rbuf, cfg->val_bytes + 1, &what, &err);
	if (got < 0)
		fs_error(w->sh, what, path, err);
	else if ((size_t)got != cfg->val_bytes)
		fs_error(w->sh, "read (not the size written)", path, EIO);
}

/* Says the thread is ready and waits for go; false when the run is off. */
static bool fs_gate_wait(struct fs_gate *g)
{
	bool go;

	pthread_mutex_lock(&g->lock);
	g->ready++;
	pthread_cond_broadcast(&g->cond);
	while (!g->go && !g->abort)
		pthread_cond_wait(&g->cond, &g->lock);
	go = !g->abort;
	pthread_mutex_unlock(&g->lock);
	return go;
}

static void fs_gate_open(struct fs_gate *g, bool go)
{
	pthread_mutex_lock(&g->lock);
	if (go)
		g->go = true;
	else
		g->abort = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void fs_gate_wait_ready(struct fs_gate *g, int n)
{
	pthread_mutex_lock(&g->lock);
	while (g->ready < n)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void *fs_worker_main(void *arg)
{
	struct fs_worker *w = arg;
	struct fs_shared *sh = w->sh;

	if (!fs_gate_wait(&sh->gate))
		return NULL;
	while (!atomic_load(&sh->stop)) {
		long i = atomic_fetch_add(&sh->next, 1), errors;
		uint64_t t0;

		if (i >= sh->cfg->total)
			break;
		errors = atomic_load(&sh->errors);
		t0 = now_ns();
		fs_op(w, i);
		sh->out->lat_ns[i] = now_ns() - t0;
		if (atomic_load(&sh->errors) == errors)
			atomic_store(&sh->errors_in_a_row, 0);
	}
	return NULL;
}

/* The mount run: the hot key written (gets), C threads started, the operations measured
 * between two samples of the servers' CPU time. 0 when measured, -1 when setup failed. */
static int fs_run(const struct config *cfg, struct outcome *out, uint64_t *ticks0, uint64_t *ticks1,
                  int *cpu_ok)
{
	struct fs_shared sh;
	struct fs_worker *w = calloc((size_t)cfg->clients, sizeof(*w));
	pthread_t *tids = calloc((size_t)cfg->clients, sizeof(*tids));
	pthread_attr_t attr;
	char path[4096 + BENCH_MAX_KEY_BYTES];
	const char *what;
	int started = 0, rc = -1, err;
	uint64_t t0 = 0;

	memset(&sh, 0, sizeof(sh));
	sh.cfg = cfg;
	sh.out = out;
	atomic_init(&sh.next, 0);
	atomic_init(&sh.errors, 0);
	atomic_init(&sh.errors_in_a_row, 0);
	atomic_init(&sh.stop, false);
	pthread_mutex_init(&sh.lock, NULL);
	pthread_mutex_init(&sh.gate.lock, NULL);
	pthread_cond_init(&sh.gate.cond, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, BENCH_FS_STACK_BYTES);
	if (!w || !tids) {
		fprintf(stderr, "bench_kv: out of memory\n");
		goto out;
	}
	if (cfg->op == OP_GET || cfg->op == OP_MIX) {
		snprintf(path, sizeof(path), "%s/%s", cfg->mounts[0], cfg->read_key);
		err = fs_write(path, O_TRUNC, cfg->val_bytes, &what);
		if (err) {
			fprintf(stderr, "bench_kv: setup: %s %s: %s\n", what, path, strerror(err));
			goto out;
		}
	}
	for (; started < cfg->clients; started++) {
		w[started].sh = &sh;
		w[started].dir = cfg->mounts[started % cfg->n_mounts];
		w[started].rbuf = malloc(cfg->val_bytes + 1);
		if (!w[started].rbuf ||
		    pthread_create(&tids[started], &attr, fs_worker_main, &w[started]) != 0) {
			fprintf(stderr, "bench_kv: cannot start thread %d\n", started);
			break;
		}
	}
	fs_gate_wait_ready(&sh.gate, started);
	if (started == cfg->clients) {
		*cpu_ok = pids_cpu_ticks(cfg, ticks0) == 0;
		t0 = now_ns();
		fs_gate_open(&sh.gate, true);
	} else {
		fs_gate_open(&sh.gate, false);
	}
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if (started == cfg->clients && atomic_load(&sh.stop)) {
		fprintf(stderr,
		        "bench_kv: the run stopped: %ld operations failed in a row (first: %s)\n",
		        errors_in_a_row_limit(cfg), out->first_error);
	} else if (started == cfg->clients) {
		out->elapsed_s = (double)(now_ns() - t0) / 1e9;
		*cpu_ok = *cpu_ok && pids_cpu_ticks(cfg, ticks1) == 0;
		out->errors = atomic_load(&sh.errors);
		rc = 0;
	}
out:
	for (int i = 0; w && i < cfg->clients; i++)
		free(w[i].rbuf);
	pthread_attr_destroy(&attr);
	pthread_cond_destroy(&sh.gate.cond);
	pthread_mutex_destroy(&sh.gate.lock);
	pthread_mutex_destroy(&sh.lock);
	free(tids);
	free(w);
	return rc;
}

/* --- floors: the disk's fdatasync and the loopback round trip ------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* The median of v[0..n) in microseconds (sorts v). */
static double median_us(uint64_t *v, long n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	return (double)v[n / 2] / 1e3;
}

/*
 * Median latency of n rounds of pwrite + fdatasync in a fresh file in dir: overwriting the same
 * 512 bytes (append == false: what bench_wal reports) or appending val bytes (append == true:
 * the file grows, so its size must be made durable too, as a log append's is). -1 on error.
 */
static double floor_fdatasync_us(const char *dir, long n, bool append, size_t val)
{
	char path[4096];
	uint64_t *lat = calloc((size_t)n, sizeof(*lat));
	char buf[512];
	double rc = -1;
	off_t off = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/bench_kv-floor.%ld", dir, (long)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !lat) {
		fprintf(stderr, "bench_kv: %s: %s\n", path, strerror(errno));
		goto out;
	}
	memset(buf, 'f', sizeof(buf));
	if (!append && (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) || fsync(fd) < 0))
		goto fail;
	for (long i = 0; i < n; i++) {
		size_t len = append ? (val < sizeof(buf) ? val : sizeof(buf)) : sizeof(buf);
		uint64_t t0 = now_ns();

		if (pwrite(fd, buf, len, off) != (ssize_t)len || fdatasync(fd) < 0)
			goto fail;
		lat[i] = now_ns() - t0;
		if (append)
			off += (off_t)len;
	}
	rc = median_us(lat, n);
	goto out;
fail:
	fprintf(stderr, "bench_kv: write + fdatasync %s: %s\n", path, strerror(errno));
out:
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	free(lat);
	return rc;
}

static void *echo_main(void *arg)
{
	int fd = *(int *)arg;
	char c;

	while (read(fd, &c, 1) == 1 && write(fd, &c, 1) == 1)
		;
	return NULL;
}

/* Two ends of a loopback TCP connection, TCP_NODELAY both: 0, or -1 (with a message). */
static int loopback_pair(int *a, int *b)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int ls, cs = -1, as = -1, one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) < 0 ||
	    (cs = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(cs, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (as = accept(ls, NULL, NULL)) < 0) {
		fprintf(stderr, "bench_kv: loopback connection: %s\n", strerror(errno));
		if (cs >= 0)
			close(cs);
		if (ls >= 0)
			close(ls);
		return -1;
	}
	close(ls);
	setsockopt(cs, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(as, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*a = cs;
	*b = as;
	return 0;
}

/* Median round trip of one byte over a loopback TCP connection to a thread that echoes it
 * (TCP_NODELAY, blocking calls: a wake-up on each side, as a request between nodes). -1 on
 * error. */
static double floor_rtt_us(long n)
{
	uint64_t *lat = calloc((size_t)n, sizeof(*lat));
	int cs = -1, as = -1;
	double rc = -1;
	pthread_t tid;
	char c = 'p';

	if (!lat || loopback_pair(&cs, &as) != 0)
		goto out;
	if (pthread_create(&tid, NULL, echo_main, &as) != 0)
		goto out;
	for (long i = -n / 10; i < n; i++) { /* the first tenth warms up */
		uint64_t t0 = now_ns();

		if (write(cs, &c, 1) != 1 || read(cs, &c, 1) != 1)
			break;
		if (i >= 0)
			lat[i] = now_ns() - t0;
		if (i == n - 1)
			rc = median_us(lat, n);
	}
	shutdown(cs, SHUT_RDWR);
	pthread_join(tid, NULL);
out:
	if (as >= 0)
		close(as);
	if (cs >= 0)
		close(cs);
	free(lat);
	return rc;
}

/*
 * The replicated floor: a write replicated with nothing but its I/O, on this machine. Threads
 * stand for a client, a leader and two followers, joined by loopback TCP (TCP_NODELAY, blocking
 * calls); each node has its own log file in the directory, preallocated (writes overwrite
 * zeros, as the WAL's do). The client sends a request; the leader sends it on to both
 * followers, then writes and fdatasyncs its own record; each follower writes and fdatasyncs
 * its record and answers; the leader answers the client once its own sync and one follower's
 * answer are in. Message and record sizes are raftfs's for a put of val bytes. Unlike
 * floor_put_us (one fdatasync alone and two round trips), this counts three nodes' fdatasyncs
 * sharing one disk and four processes' wake-ups sharing the CPUs.
 */
#define REPL_NODES 3
#define REPL_ACK_BYTES 84
#define REPL_REPLY_BYTES 91
#define REPL_BUF_BYTES 4096

struct repl_node {
	int wal;
	off_t off, cap;
	size_t rec;
	unsigned char buf[REPL_BUF_BYTES];
};

struct repl;

struct repl_follower {
	struct repl *r;
	int i; /* 1 or 2 */
};

struct repl {
	struct repl_node node[REPL_NODES]; /* 0: the leader */
	struct repl_follower follower[REPL_NODES];
	int client, leader_in; /* client <-> leader */
	int to_f[REPL_NODES], at_f[REPL_NODES]; /* leader's end, follower's end (1, 2) */
	size_t req, ae;
};

static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(fd, (char *)buf + got, len - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

static int repl_persist(struct repl_node *nd)
{
	if (nd->off + (off_t)nd->rec > nd->cap)
		nd->off = 0;
	if (pwrite(nd->wal, nd->buf, nd->rec, nd->off) != (ssize_t)nd->rec || fdatasync(nd->wal))
		return -1;
	nd->off += (off_t)nd->rec;
	return 0;
}

static void *repl_follower(void *arg)
{
	struct repl *r = ((struct repl_follower *)arg)->r;
	int i = ((struct repl_follower *)arg)->i;
	struct repl_node *nd = &r->node[i];

	while (read_full(r->at_f[i], nd->buf, r->ae) == 0)
		if (repl_persist(nd) != 0 || write_full(r->at_f[i], nd->buf, REPL_ACK_BYTES) != 0)
			break;
	shutdown(r->at_f[i], SHUT_RDWR);
	return NULL;
}

static void *repl_leader(void *arg)
{
	struct repl *r = arg;
	struct repl_node *nd = &r->node[0];
	long acked[REPL_NODES] = {0}, k = 0;

	while (read_full(r->leader_in, nd->buf, r->req) == 0) {
		int ok = 0;

		k++;
		if (write_full(r->to_f[1], nd->buf, r->ae) ||
		    write_full(r->to_f[2], nd->buf, r->ae) || repl_persist(nd))
			break;
		while (ok == 0) {
			struct pollfd pf[2] = {{r->to_f[1], POLLIN, 0}, {r->to_f[2], POLLIN, 0}};

			if (poll(pf, 2, -1) < 0)
				goto out;
			for (int i = 1; i < REPL_NODES; i++)
				if (pf[i - 1].revents &&
				    read_full(r->to_f[i], nd->buf, REPL_ACK_BYTES) == 0)
					acked[i]++;
				else if (pf[i - 1].revents)
					goto out;
			ok = acked[1] >= k || acked[2] >= k;
		}
		if (write_full(r->leader_in, nd->buf, REPL_REPLY_BYTES))
			break;
	}
out:
	shutdown(r->leader_in, SHUT_RDWR);
	shutdown(r->to_f[1], SHUT_RDWR);
	shutdown(r->to_f[2], SHUT_RDWR);
	return NULL;
}

/* Median latency of n replicated writes (after n/10 to warm up) in dir; -1 on error. */
static double floor_repl_us(const char *dir, long n, size_t val)
{
	struct repl *r = calloc(1, sizeof(*r));
	uint64_t *lat = calloc((size_t)n, sizeof(*lat));
	pthread_t tid[REPL_NODES];
	int started = 0, n_files = 0;
	char path[REPL_NODES][4096];
	double rc = -1;

	if (!r || !lat)
		goto out;
	r->client = r->leader_in = -1;
	for (int i = 0; i < REPL_NODES; i++)
		r->to_f[i] = r->at_f[i] = r->node[i].wal = -1;
	r->req = val + 74;
	r->ae = val + 169;
	if (r->ae > REPL_BUF_BYTES || loopback_pair(&r->client, &r->leader_in) != 0 ||
	    loopback_pair(&r->to_f[1], &r->at_f[1]) != 0 ||
	    loopback_pair(&r->to_f[2], &r->at_f[2]) != 0)
		goto out;
	for (int i = 0; i < REPL_NODES; i++) {
		struct repl_node *nd = &r->node[i];

		snprintf(path[i], sizeof(path[i]), "%s/bench_kv-repl.%ld.%d", dir, (long)getpid(),
		         i);
		nd->wal = open(path[i], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (nd->wal < 0) {
			fprintf(stderr, "bench_kv: %s: %s\n", path[i], strerror(errno));
			goto out;
		}
		n_files++;
		nd->rec = val + 100;
		nd->cap = (off_t)(nd->rec * 1024);
		memset(nd->buf, 0, sizeof(nd->buf));
		for (off_t o = 0; o < nd->cap; o += REPL_BUF_BYTES)
			if (pwrite(nd->wal, nd->buf, REPL_BUF_BYTES, o) != REPL_BUF_BYTES)
				goto fail;
		if (fsync(nd->wal) != 0)
			goto fail;
		memset(nd->buf, 'r', sizeof(nd->buf));
	}
	for (int i = 1; i < REPL_NODES; i++) {
		r->follower[i].r = r;
		r->follower[i].i = i;
		if (pthread_create(&tid[i], NULL, repl_follower, &r->follower[i]) != 0)
			goto stop;
		started = i;
	}
	if (pthread_create(&tid[0], NULL, repl_leader, r) != 0)
		goto stop;
	for (long i = -n / 10; i < n; i++) {
		unsigned char b[REPL_BUF_BYTES];
		uint64_t t0 = now_ns();

		memset(b, 'q', r->req);
		if (write_full(r->client, b, r->req) || read_full(r->client, b, REPL_REPLY_BYTES))
			break;
		if (i >= 0)
			lat[i] = now_ns() - t0;
		if (i == n - 1)
			rc = median_us(lat, n);
	}
	if (rc < 0)
		fprintf(stderr, "bench_kv: the replicated floor's nodes failed\n");
	shutdown(r->client, SHUT_RDWR);
	pthread_join(tid[0], NULL);
stop:
	shutdown(r->to_f[1], SHUT_RDWR);
	shutdown(r->to_f[2], SHUT_RDWR);
	for (int i = 1; i <= started; i++)
		pthread_join(tid[i], NULL);
	goto out;
fail:
	fprintf(stderr, "bench_kv: preparing the replicated floor's logs: %s\n", strerror(errno));
out:
	if (r) {
		for (int i = 0; i < REPL_NODES; i++) {
			if (r->to_f[i] >= 0)
				close(r->to_f[i]);
			if (r->at_f[i] >= 0)
				close(r->at_f[i]);
			if (r->node[i].wal >= 0)
				close(r->node[i].wal);
		}
		if (r->client >= 0)
			close(r->client);
		if (r->leader_in >= 0)
			close(r->leader_in);
	}
	for (int i = 0; i < n_files; i++)
		unlink(path[i]);
	free(r);
	free(lat);
	return rc;
}

/* --floor=DIR: one line of medians; 0, or 1 when a measurement failed. */
static int floor_run(const char *dir, long n, size_t val)
{
	double sync_us = floor_fdatasync_us(dir, n, false, val);
	double append_us = floor_fdatasync_us(dir, n, true, val);
	double rtt_us = floor_rtt_us(4 * n);
	double repl_us = floor_repl_us(dir, n, val);

	if (sync_us < 0 || append_us < 0 || rtt_us < 0 || repl_us < 0)
		return 1;
	printf("fdatasync_us=%.1f append_fdatasync_us=%.1f rtt_us=%.1f floor_put_us=%.1f "
	       "repl_floor_us=%.1f\n",
	       sync_us, append_us, rtt_us, sync_us + 2 * rtt_us, repl_us);
	fflush(stdout);
	return 0;
}

/* --- arguments and the report ------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: bench_kv (--cluster=LIST | --endpoints=LIST | --mounts=DIR[,DIR...])\n"
	        "                [--op=put|append|get-l|mix] [--conns=K] [--clients=C] [--total=N]\n"
	        "                [--val-size=BYTES] [--key-size=DIGITS] [--read-key=KEY]\n"
	        "                [--key-prefix=P] [--timeout-ms=MS] [--pids=P1,P2,...] [--bind=ADDR]\n"
	        "                [--via=ID]\n"
	        "Closed loop: C clients (default 1) over K connections (default 1) do N operations\n"
	        "(default %ld) in all; put/append: sequential keys P%%0*d, --val-size bytes (default\n"
	        "%d); get-l: linearizable get of the hot key (default benchkey), written first; mix:\n"
	        "every tenth a put, the others gets. --mounts: C threads over the mounts (open O_TRUNC\n"
	        "or O_APPEND + write + close; open + read + close). Prints one line:\n"
	        "op= conns= clients= total= key= val= qps= avg_ms= p50_ms= p90_ms= p99_ms= max_ms=\n"
	        "errors= elapsed_s= retries= [cpu_us_per_op= rss_mb=A/B/C] (--pids: the servers).\n"
	        "--bind (default $RAFTFS_BIND): local address connections leave from.\n"
	        "--via=ID: every connection goes to node ID and stays there, the leader or not (a\n"
	        "follower forwards each request to the leader).\n"
	        "--cacert=FILE [--cert=FILE --key=FILE] (default $RAFTFS_CACERT, $RAFTFS_CERT,\n"
	        "$RAFTFS_KEY): TLS, the nodes' CA and this client's certificate.\n"
	        "bench_kv --floor=DIR [--total=N] [--val-size=B]: medians of N (default %ld) rounds of\n"
	        "512-byte overwrite + fdatasync and B-byte append + fdatasync in DIR, and of 4N\n"
	        "loopback TCP round trips: fdatasync_us= append_fdatasync_us= rtt_us= floor_put_us=\n"
	        "(fdatasync + 2 round trips); and of N writes replicated by threads standing for a\n"
	        "leader and two followers with a log each in DIR (each fdatasyncs; the leader\n"
	        "answers after its own and one follower's): repl_floor_us=.\n",
	        BENCH_DEFAULT_TOTAL, BENCH_DEFAULT_VAL_BYTES, BENCH_FLOOR_ROUNDS);
}

/* A decimal integer in [min, max]: 0, or -1. */
static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_pids(struct config *cfg, const char *s)
{
	char *copy = strdup(s), *save = NULL, *p;
	long v;

	if (!copy)
		return -1;
	cfg->n_pids = 0;
	for (p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		if (cfg->n_pids == BENCH_MAX_PIDS || parse_long(p, 1, INT32_MAX, &v) < 0) {
			free(copy);
			return -1;
		}
		cfg->pids[cfg->n_pids++] = (pid_t)v;
	}
	free(copy);
	return cfg->n_pids > 0 ? 0 : -1;
}

static int parse_mounts(struct config *cfg)
{
	char *save = NULL, *p;

	for (p = strtok_r(cfg->mounts_arg, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		if (cfg->n_mounts == BENCH_MAX_MOUNTS)
			return -1;
		cfg->mounts[cfg->n_mounts++] = p;
	}
	return cfg->n_mounts > 0 ? 0 : -1;
}

static int parse_op(struct config *cfg, const char *v)
{
	for (int i = 0; i < (int)(sizeof(op_names) / sizeof(op_names[0])); i++) {
		if (strcmp(v, op_names[i]) == 0) {
			cfg->op = (enum bench_op)i;
			return 0;
		}
	}
	return -1;
}

/* One option (--name=value) into cfg: 0, or -1 when unknown or bad. */
static int parse_option(struct config *cfg, const char *a)
{
	const char *eq = strchr(a, '=');
	const char *v = eq ? eq + 1 : "";
	size_t nl = eq ? (size_t)(eq - a) : strlen(a);
	long n;

#define IS(name) (nl == strlen(name) && strncmp(a, name, nl) == 0)
	if (!eq)
		return -1;
	if (IS("--cluster") || IS("--endpoints"))
		cfg->cluster = v;
	else if (IS("--mounts"))
		cfg->mounts_arg = strdup(v);
	else if (IS("--op"))
		return parse_op(cfg, v);
	else if (IS("--conns") && parse_long(v, 1, BENCH_MAX_CONNS, &n) == 0)
		cfg->conns = (int)n;
	else if (IS("--clients") && parse_long(v, 1, BENCH_MAX_CLIENTS, &n) == 0)
		cfg->clients = (int)n;
	else if (IS("--total") && parse_long(v, 1, 1L << 40, &n) == 0) {
		cfg->total = n;
		cfg->total_given = true;
	} else if (IS("--floor") && *v)
		cfg->floor_dir = v;
	else if (IS("--val-size") && parse_long(v, 0, BENCH_MAX_VAL_BYTES, &n) == 0)
		cfg->val_bytes = (size_t)n;
	else if (IS("--key-size") && parse_long(v, 1, BENCH_MAX_KEY_BYTES, &n) == 0)
		cfg->key_bytes = (int)n;
	else if (IS("--read-key") && *v)
		cfg->read_key = v;
	else if (IS("--key-prefix"))
		cfg->key_prefix = v;
	else if (IS("--timeout-ms") && parse_long(v, 1, 3600000, &n) == 0)
		cfg->timeout_ms = (uint32_t)n;
	else if (IS("--pids"))
		return parse_pids(cfg, v);
	else if (IS("--bind"))
		cfg->bind = *v ? v : NULL;
	else if (IS("--via") && parse_long(v, 1, UINT32_MAX, &n) == 0)
		cfg->via = (uint32_t)n;
	else if (IS("--cacert") && *v)
		cfg->cacert = v;
	else if (IS("--cert") && *v)
		cfg->cert = v;
	else if (IS("--key") && *v)
		cfg->key = v;
	else
		return -1;
#undef IS
	return 0;
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* The line, in bench-etcd's form (same percentile ranks), then our fields. */
static void report(const struct config *cfg, struct outcome *o, uint64_t ticks0, uint64_t ticks1,
                   int cpu_ok)
{
	long n = cfg->total;
	uint64_t *lat = o->lat_ns;
	long double sum = 0;
	long clk = sysconf(_SC_CLK_TCK);

	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	for (long i = 0; i < n; i++)
		sum += lat[i];
	printf("op=%s conns=%d clients=%d total=%ld key=%d val=%zu qps=%.0f avg_ms=%.3f "
	       "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%ld elapsed_s=%.2f "
	       "retries=%ld",
	       cfg->cluster ? op_names[cfg->op] : fs_op_names[cfg->op],
	       cfg->cluster ? cfg->conns : cfg->n_mounts, cfg->clients, n, cfg->key_bytes,
	       cfg->val_bytes, (double)n / o->elapsed_s, ms((uint64_t)(sum / n)), ms(lat[n / 2]),
	       ms(lat[n * 9 / 10]), ms(lat[n * 99 / 100]), ms(lat[n - 1]), o->errors, o->elapsed_s,
	       o->retries);
	if (cfg->n_pids > 0) {
		if (cpu_ok && clk > 0)
			printf(" cpu_us_per_op=%.1f",
			       (double)(ticks1 - ticks0) * 1e6 / (double)clk / (double)n);
		else
			printf(" cpu_us_per_op=?");
		printf(" rss_mb=");
		for (int i = 0; i < cfg->n_pids; i++) {
			unsigned long kb;

			if (proc_peak_rss_kb(cfg->pids[i], &kb) == 0)
				printf("%s%.1f", i ? "/" : "", (double)kb / 1024.0);
			else
				printf("%s?", i ? "/" : "");
		}
	}
	printf("\n");
	fflush(stdout);
	if (o->errors)
		fprintf(stderr, "bench_kv: %ld errors; the first: %s\n", o->errors, o->first_error);
}

/* *opt, when not given, from the environment variable name (unset or empty: NULL). */
static void env_default(const char **opt, const char *name)
{
	const char *env = getenv(name);

	if (!*opt)
		*opt = env && *env ? env : NULL;
}

/* Lets 1000 threads or connections plus their files be open at once. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct config cfg = {
	        .op = OP_PUT,
	        .conns = 1,
	        .clients = 1,
	        .total = BENCH_DEFAULT_TOTAL,
	        .key_bytes = BENCH_DEFAULT_KEY_BYTES,
	        .val_bytes = BENCH_DEFAULT_VAL_BYTES,
	        .read_key = "benchkey",
	        .key_prefix = "",
	        .timeout_ms = BENCH_DEFAULT_TIMEOUT_MS,
	};
	struct outcome out;
	uint64_t ticks0 = 0, ticks1 = 0;
	int cpu_ok = 0, rc;

	if (argc == 1) {
		usage(stdout);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (parse_option(&cfg, argv[i]) < 0) {
			fprintf(stderr, "bench_kv: bad argument: %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!cfg.bind) {
		const char *env = getenv("RAFTFS_BIND");

		cfg.bind = env && *env ? env : NULL;
	}
	env_default(&cfg.cacert, "RAFTFS_CACERT");
	env_default(&cfg.cert, "RAFTFS_CERT");
	env_default(&cfg.key, "RAFTFS_KEY");
	if (cfg.floor_dir)
		return floor_run(cfg.floor_dir, cfg.total_given ? cfg.total : BENCH_FLOOR_ROUNDS,
		                 cfg.val_bytes);
	if ((!cfg.cluster) == (!cfg.mounts_arg) || (cfg.mounts_arg && parse_mounts(&cfg) < 0) ||
	    strlen(cfg.key_prefix) > BENCH_MAX_KEY_BYTES) {
		usage(stderr);
		return 2;
	}
	if (cfg.conns > cfg.clients)
		cfg.conns = cfg.clients;
	raise_fd_limit();
	value = malloc(cfg.val_bytes + 1);
	memset(&out, 0, sizeof(out));
	out.lat_ns = calloc((size_t)cfg.total, sizeof(*out.lat_ns));
	if (!value || !out.lat_ns) {
		fprintf(stderr, "bench_kv: out of memory\n");
		return 1;
	}
	memset(value, 'v', cfg.val_bytes);
	value[cfg.val_bytes] = '\0';
	if (cfg.cluster)
		rc = net_run(&cfg, &out, &ticks0, &ticks1, &cpu_ok);
	else
		rc = fs_run(&cfg, &out, &ticks0, &ticks1, &cpu_ok);
	if (rc == 0)
		report(&cfg, &out, ticks0, ticks1, cpu_ok);
	free(out.lat_ns);
	free(value);
	free(cfg.mounts_arg);
	return rc == 0 ? 0 : 1;
}
