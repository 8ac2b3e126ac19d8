/* fuse.c - the FUSE filesystem of a node: low-level handlers answered from key/value callbacks. */
#define FUSE_USE_VERSION 34

#include "fs/fuse.h"

#include <errno.h>
#include <event2/event.h>
#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fs/errmap.h"
#include "fs/holders.h"
#include "fs/inode.h"
#include "fs/mountpoint.h"
#include "kv/cmd.h"
#include "kv/node.h"
#include "kv/proto.h"
#include "raft/raft.h"

/*
 * Life of a request (struct fs_op): a handler copies what it needs (names and write buffers die
 * when it returns), builds a struct kv_cmd, registers an interrupt function and runs the op:
 * writes take a session from the pool (opening it first when needed), the command is encoded
 * and submitted, and the op's done function runs from the kv_req callback with 0 or an errno.
 * done either replies (and frees the op) or chains one more command (create-if-absent after
 * EEXIST, the steps of setattr): a chained or dequeued op is never submitted from inside a node
 * callback but from f->kick, a loop event.
 *
 * Invariant: every op in f->ops is in exactly one of the states below, and each state has one
 * way out that answers the kernel (cancel, dequeue, run): fs_fuse_stop() relies on it.
 */

/* Sessions opened lazily for writes, each with one outstanding request (kv/store.h). */
#define FS_MAX_SESSIONS 64
/* Ops alive at once (waiting for a session or for the cluster); beyond this: ENOMEM. */
#define FS_MAX_OPS 65536
#define FS_KEY_CAP (KV_MAX_KEY_BYTES + 1)
#define FS_NAME_CAP (KV_MAX_NAME_BYTES + 1)
#define FS_BLOCK_BYTES 4096
/* A request the node certainly did not apply (no leader yet, a leader change) is tried again
 * after this long, until the op's deadline (DESIGN.md 6: wait up to timeout=, or forever). */
#define FS_RETRY_MS 50
/* On a hard mount a read is still asked in attempts of this long (then retried): a read
 * pending in the node across a leader change may otherwise never be answered. */
#define FS_HARD_READ_ATTEMPT_MS 3000
/* How often the node is asked whether it knows a leader (fs_fuse.last_contact_ms). */
#define FS_WATCH_MS 100

enum op_state {
	OP_IDLE, /* in a handler or a done function */
	OP_RUNQ, /* on f->runq, to run from f->kick */
	OP_WAIT_SESSION, /* on f->waitq until a session is free */
	OP_IN_FLIGHT, /* req submitted to the node */
	OP_RETRY, /* on f->retryq: certainly not applied, tried again from f->retry */
	OP_WAIT_TRUNC, /* on the truncation in flight of its file (gate->waiters), until it ends */
};

struct fs_op;
struct op_queue {
	struct fs_op *head, *tail;
};
/* err: 0 (op->req.result holds the result) or an errno. Replies, or chains with op_defer(). */
typedef void (*op_done_fn)(struct fs_op *op, int err);

/* An open file description. It holds no bytes: every read asks the cluster (DESIGN.md 6). */
struct fs_handle {
	struct fs_handle *prev, *next; /* f->handles */
	uint64_t ino;
	pid_t opener; /* trunc_pending: the opening process (thread group), 0 if unknown */
	int open_flags; /* as the open gave them (fs/holders.h tells descriptions apart by them) */
	bool append; /* O_APPEND: every write is an Append */
	bool trunc_pending; /* O_TRUNC open of an existing file, not written yet */
	bool write_failed; /* a write or flush of it failed, and its caller was told: no later
	                      truncation is made on its behalf (fs_flush, fs_release) */
	bool is_dir;
	struct kv_result dir; /* is_dir: the ReadDir of the opendir */
	uint64_t parent; /* is_dir: for ".." */
};

struct fs_op {
	struct kv_req req; /* first: the callback gets &op->req */
	struct fs_fuse *f;
	fuse_req_t freq;
	op_done_fn done;
	struct fs_op *prev, *next; /* f->ops */
	struct fs_op *q_next; /* f->runq or f->waitq */
	enum op_state state;
	bool opening; /* req is the OpenSession of op->session */
	bool retried; /* already retried after KV_ESESSION_EXPIRED */
	bool interrupted;
	bool applied_any; /* an earlier step of this op changed the namespace: never EINTR */
	/* Builds op->cmd for this run from the handle's state now (called before each run, so a
	 * write held back behind a truncation is built from what that truncation left): 1 to send
	 * it, 0 when nothing is left to do (done(op, 0)), or -errno. NULL: op->cmd as it is. */
	int (*prepare)(struct fs_op *op);
	/* The command commits a pending O_TRUNC truncation (the first write's Put, a flush's or a
	 * release's Put(""), ...): while it is in flight every other op on its key waits for it, so
	 * that nothing can land before or after it out of order (gate_begin, gate_end). */
	bool gate;
	bool gating; /* on f->gates now */
	struct fs_op *gate_next; /* f->gates */
	struct op_queue waiters; /* gating: ops on the same key, waiting for it */
	void *put_buf; /* owned (malloc): a Put built by prepare (zeros, then the bytes) */
	int session; /* index in f->sessions, or -1 */
	uint64_t deadline_ms; /* monotonic; 0: none (hard) */
	uint32_t umask;
	struct kv_cmd cmd; /* key, key2, data point into the fields below */
	char key[FS_KEY_CAP];
	char key2[FS_KEY_CAP];
	void *data; /* owned (malloc) */
	/* what the operation needs to finish */
	int stage;
	uint64_t ino, parent, new_parent;
	char name[FS_NAME_CAP], new_name[FS_NAME_CAP];
	struct fs_handle *h;
	struct fuse_file_info fi;
	size_t size;
	off_t off;
	int to_set;
	struct stat set;
	bool existed;
	bool have_attr;
	struct kv_attr attr;
};

struct fs_session {
	uint64_t id; /* 0: not open */
	uint64_t seq; /* last request number used */
	bool busy;
};

struct fs_fuse {
	struct event_base *base;
	struct kv_node *node;
	const struct fs_options *opt;
	struct fs_fuse_hooks hooks;
	struct fuse_session *se;
	struct event *ev; /* the device fd */
	struct event *kick; /* runs f->runq */
	struct event *retry; /* runs f->retryq, FS_RETRY_MS after the first one queued */
	struct fuse_buf buf;
	struct fs_inode_table *inodes;
	struct fs_session sessions[FS_MAX_SESSIONS];
	struct op_queue runq, waitq, retryq;
	struct fs_op ops; /* list head */
	size_t n_ops;
	struct fs_handle handles; /* list head */
	struct fs_op *gates; /* truncations in flight, each holding back its key (fs_op.gate) */
	struct fs_mount_id mount; /* this mount as /proc names it (fs/holders.h) */
	struct event *watch; /* every FS_WATCH_MS: does the node know a leader? */
	uint64_t last_contact_ms; /* monotonic: when the node last knew a leader (see op_run) */
	bool leaderless; /* it knows none now */
	uint64_t election_ms; /* a follower waits this long for its leader before it gives up */
	uint64_t timeout_ms; /* per operation; 0: wait forever */
	bool gone; /* the mount went away */
	bool stopping;
	char mnt_abs[PATH_MAX]; /* the mountpoint as an absolute path ("" if unknown) */
};

/* --- small helpers ------------------------------------------------------------------------------ */

static void flog(struct fs_fuse *f, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void flog(struct fs_fuse *f, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!f->hooks.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f->hooks.log(f->hooks.ctx, level, msg);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void attr_to_stat(const struct kv_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = FS_BLOCK_BYTES;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_mtim.tv_sec = (time_t)(a->mtime_ns / 1000000000u);
	st->st_mtim.tv_nsec = (long)(a->mtime_ns % 1000000000u);
	st->st_ctim.tv_sec = (time_t)(a->ctime_ns / 1000000000u);
	st->st_ctim.tv_nsec = (long)(a->ctime_ns % 1000000000u);
	st->st_atim = st->st_mtim; /* no access times are kept */
}

static void queue_push(struct op_queue *q, struct fs_op *op)
{
	op->q_next = NULL;
	if (q->tail)
		q->tail->q_next = op;
	else
		q->head = op;
	q->tail = op;
}

static struct fs_op *queue_pop(struct op_queue *q)
{
	struct fs_op *op = q->head;

	if (op) {
		q->head = op->q_next;
		if (!q->head)
			q->tail = NULL;
		op->q_next = NULL;
	}
	return op;
}

static void queue_remove(struct op_queue *q, struct fs_op *op)
{
	struct fs_op *prev = NULL;

	for (struct fs_op *p = q->head; p; prev = p, p = p->q_next) {
		if (p != op)
			continue;
		if (prev)
			prev->q_next = p->q_next;
		else
			q->head = p->q_next;
		if (q->tail == p)
			q->tail = prev;
		p->q_next = NULL;
		return;
	}
}

/* --- handles ------------------------------------------------------------------------------------ */

static struct fs_handle *handle_new(struct fs_fuse *f, uint64_t ino)
{
	struct fs_handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->ino = ino;
	h->next = f->handles.next;
	h->prev = &f->handles;
	f->handles.next->prev = h;
	f->handles.next = h;
	return h;
}

static void handle_free(struct fs_handle *h)
{
	h->prev->next = h->next;
	h->next->prev = h->prev;
	kv_result_release(&h->dir);
	free(h);
}

/* --- ops: creation, running, completion ---------------------------------------------------------- */

static void op_run(struct fs_op *op);

/* Returns a new op for freq, or NULL after replying ENOMEM. */
static struct fs_op *op_new(struct fs_fuse *f, fuse_req_t freq, op_done_fn done)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(freq);
	struct fs_op *op = f->n_ops < FS_MAX_OPS ? calloc(1, sizeof(*op)) : NULL;

	if (!op) {
		fuse_reply_err(freq, ENOMEM);
		return NULL;
	}
	op->f = f;
	op->freq = freq;
	op->done = done;
	op->session = -1;
	op->cmd.uid = ctx->uid;
	op->cmd.gid = ctx->gid;
	op->umask = ctx->umask;
	op->deadline_ms = f->timeout_ms ? mono_ms() + f->timeout_ms : 0;
	op->next = f->ops.next;
	op->prev = &f->ops;
	f->ops.next->prev = op;
	f->ops.next = op;
	f->n_ops++;
	return op;
}

static void op_free(struct fs_op *op)
{
	op->prev->next = op->next;
	op->next->prev = op->prev;
	op->f->n_ops--;
	kv_result_release(&op->req.result);
	raft_buf_unref(op->req.cmd);
	free(op->data);
	free(op->put_buf);
	free(op);
}

static void op_reply_err(struct fs_op *op, int err)
{
	if (err && op->f->opt->log_level <= FS_LOG_DEBUG)
		flog(op->f, FS_LOG_DEBUG, "%s '%s': %s", kv_op_name(op->cmd.op), op->key,
		     strerror(err));
	fuse_reply_err(op->freq, err);
	op_free(op);
}

/* Runs op later from the loop (never submit from inside a node callback). */
static void op_defer(struct fs_op *op)
{
	op->state = OP_RUNQ;
	queue_push(&op->f->runq, op);
	event_active(op->f->kick, EV_TIMEOUT, 0);
}

static void session_put(struct fs_op *op)
{
	struct fs_fuse *f = op->f;
	struct fs_op *next;

	if (op->session < 0)
		return;
	next = queue_pop(&f->waitq);
	if (next) {
		next->session = op->session; /* handed over, still busy */
		op_defer(next);
	} else {
		f->sessions[op->session].busy = false;
	}
	op->session = -1;
}

/* The truncation in flight on key, if any. */
static struct fs_op *gate_of(struct fs_fuse *f, const char *key)
{
	for (struct fs_op *g = f->gates; g; g = g->gate_next)
		if (strcmp(g->key, key) == 0)
			return g;
	return NULL;
}

/* A truncation ends: what waited for it runs now (from f->kick, after op's own done). */
static void gate_end(struct fs_op *op)
{
	struct fs_op **p = &op->f->gates, *w;

	if (!op->gating)
		return;
	while (*p != op)
		p = &(*p)->gate_next;
	*p = op->gate_next;
	op->gating = false;
	while ((w = queue_pop(&op->waiters)) != NULL)
		op_defer(w);
}

static void op_end(struct fs_op *op, int err)
{
	session_put(op);
	gate_end(op);
	op->state = OP_IDLE;
	op->done(op, err);
}

/* Takes a free session for op; false when op now waits for one. */
static bool session_get(struct fs_op *op)
{
	struct fs_fuse *f = op->f;
	int unopened = -1;

	for (int i = 0; i < FS_MAX_SESSIONS; i++) {
		if (f->sessions[i].busy)
			continue;
		if (f->sessions[i].id) {
			op->session = i;
			break;
		}
		if (unopened < 0)
			unopened = i;
	}
	if (op->session < 0)
		op->session = unopened;
	if (op->session >= 0) {
		f->sessions[op->session].busy = true;
		return true;
	}
	op->state = OP_WAIT_SESSION;
	queue_push(&f->waitq, op);
	return false;
}

static uint64_t op_deadline(const struct fs_op *op);

static void op_kv_cb(struct kv_req *req)
{
	struct fs_op *op = (struct fs_op *)req;
	struct fs_fuse *f = op->f;
	int status = req->status;
	int kerr = status == KV_STATUS_OK ? req->result.status : KV_OK;

	op->state = OP_IDLE;
	raft_buf_unref(req->cmd);
	req->cmd = NULL;
	if (op->interrupted && status != KV_STATUS_OK) {
		/* EINTR tells the caller nothing happened, and programs retry on it (Python does
		 * by itself): only when that is certain. A write proposed or forwarded whose fate
		 * is unknown is EIO, as after a timeout (DESIGN.md 6). */
		bool certain =
		        status == KV_STATUS_NOT_APPLIED || kv_op_is_read(op->cmd.op) || op->opening;
		op->opening = false;
		op_end(op, certain && !op->applied_any ? EINTR : EIO);
		return;
	}
	if (op->opening && status == KV_STATUS_UNKNOWN)
		/* the op itself was not sent: opening a session again is safe (a session that was
		 * opened after all is never used and expires) */
		status = KV_STATUS_NOT_APPLIED;
	if (status == KV_STATUS_OK && kerr == KV_OK && !op->opening && !kv_op_is_read(op->cmd.op))
		op->applied_any = true;
	if (status == KV_STATUS_NOT_APPLIED &&
	    (!op->deadline_ms || mono_ms() + FS_RETRY_MS < op_deadline(op))) {
		/* certainly not applied and time is left: try again shortly (a session keeps
		 * its id; an unopened one is opened again) */
		struct timeval tv = {0, FS_RETRY_MS * 1000};
		op->opening = false;
		op->state = OP_RETRY;
		queue_push(&f->retryq, op);
		if (!evtimer_pending(f->retry, NULL))
			evtimer_add(f->retry, &tv);
		return;
	}
	if (op->opening) {
		op->opening = false;
		if (status == KV_STATUS_OK && kerr == KV_OK && req->result.session) {
			f->sessions[op->session].id = req->result.session;
			f->sessions[op->session].seq = 0;
			op_defer(op);
			return;
		}
		op_end(op, fs_errno(status, kerr ? kerr : KV_EIO));
		return;
	}
	if (status == KV_STATUS_OK && kerr == KV_ESESSION_EXPIRED && op->session >= 0 &&
	    !op->retried) {
		/* sessions expire after an hour unused: open a new one, retry once. The node
		 * answers "expired" only when no copy of the request may have been applied
		 * (kv/node.h); otherwise the outcome is UNKNOWN, which is EIO, never a retry */
		op->retried = true;
		f->sessions[op->session].id = 0;
		op_defer(op);
		return;
	}
	op_end(op, op->applied_any && status != KV_STATUS_OK ? EIO : fs_errno(status, kerr));
}

/* Notes whether the node knows a leader now; when it stops knowing one, its last contact with
 * a working cluster was about an election timeout earlier (that is how long it waited). */
static void contact_update(struct fs_fuse *f)
{
	uint64_t now = mono_ms();

	if (kv_node_leader(f->node) != 0) {
		f->leaderless = false;
		f->last_contact_ms = now;
	} else if (!f->leaderless) {
		f->leaderless = true;
		f->last_contact_ms = now > f->election_ms ? now - f->election_ms : 0;
	}
}

static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	contact_update(arg);
}

/*
 * The moment op gives up: its timeout counted from its arrival, but never later than the
 * timeout counted from the node's last contact with a leader. Callers queued in the kernel
 * (behind a directory lock held by an op waiting here) arrive late; without the second bound
 * each of them waited a whole timeout after the one before it (30, 60, 90, 120 s seen).
 */
static uint64_t op_deadline(const struct fs_op *op)
{
	const struct fs_fuse *f = op->f;
	uint64_t d = op->deadline_ms;

	if (d && f->leaderless && f->last_contact_ms + f->timeout_ms < d)
		d = f->last_contact_ms + f->timeout_ms;
	return d;
}

static void op_run(struct fs_op *op)
{
	struct fs_fuse *f = op->f;
	struct fs_op *g;
	struct kv_cmd cmd;
	uint64_t timeout_ms = 0, deadline;
	void *buf;
	size_t len;
	int rv;

	op->state = OP_IDLE;
	if (op->interrupted) {
		op_end(op, op->applied_any ? EIO : EINTR);
		return;
	}
	if (f->stopping) {
		op_end(op, fs_errno(KV_STATUS_SHUTDOWN, KV_OK));
		return;
	}
	g = op->gating ? NULL : gate_of(f, op->key);
	if (g) {
		op->state = OP_WAIT_TRUNC; /* gate_end runs it again */
		queue_push(&g->waiters, op);
		return;
	}
	if (op->prepare) {
		op->gate = false;
		rv = op->prepare(op);
		if (rv <= 0) {
			op_end(op, -rv);
			return;
		}
	}
	if (op->gate && !op->gating) {
		op->gating = true;
		op->gate_next = f->gates;
		f->gates = op;
	}
	cmd = op->cmd;
	contact_update(f);
	deadline = op_deadline(op);
	if (deadline) {
		uint64_t now = mono_ms();
		if (now >= deadline) {
			op_end(op, op->applied_any ? EIO : fs_errno(KV_STATUS_NOT_APPLIED, KV_OK));
			return;
		}
		timeout_ms = deadline - now;
	} else if (kv_op_is_read(cmd.op))
		timeout_ms = FS_HARD_READ_ATTEMPT_MS;
	cmd.time_ms = real_ns() / 1000000u;
	if (!kv_op_is_read(cmd.op)) {
		struct fs_session *s;
		if (op->session < 0 && !session_get(op))
			return;
		s = &f->sessions[op->session];
		if (!s->id) {
			memset(&cmd, 0, sizeof(cmd));
			cmd.op = KV_OP_OPEN_SESSION;
			cmd.time_ms = real_ns() / 1000000u;
			op->opening = true;
		} else {
			cmd.session = s->id;
			cmd.seq = ++s->seq;
		}
	}
	rv = kv_cmd_encode(&cmd, &buf, &len);
	if (rv != KV_OK) {
		op->opening = false;
		op_end(op, fs_errno(KV_STATUS_OK, rv));
		return;
	}
	kv_result_release(&op->req.result);
	op->req.data = op;
	op->req.cb = op_kv_cb;
	op->req.cmd = buf;
	op->req.cmd_len = len;
	op->req.timeout_ms = timeout_ms;
	op->state = OP_IN_FLIGHT;
	if (kv_node_submit(f->node, &op->req) != 0) {
		/* the node stopped or is full: the callback will not run */
		op->state = OP_IDLE;
		raft_buf_unref(op->req.cmd);
		op->req.cmd = NULL;
		op->opening = false;
		op_end(op, fs_errno(KV_STATUS_SHUTDOWN, KV_OK));
	}
}

/* An interrupt (the caller got a signal): the wait ends now with EINTR, or EIO when the op may
 * have changed something already. */
static void on_interrupt(fuse_req_t freq, void *data)
{
	struct fs_op *op = data;

	(void)freq;
	op->interrupted = true;
	if (op->state == OP_IN_FLIGHT) {
		kv_node_cancel(op->f->node, &op->req); /* the callback answers EINTR */
	} else if (op->state == OP_WAIT_SESSION) {
		queue_remove(&op->f->waitq, op);
		op_end(op, EINTR);
	} else if (op->state == OP_RETRY) {
		queue_remove(&op->f->retryq, op);
		op_end(op, op->applied_any ? EIO : EINTR);
	} else if (op->state == OP_WAIT_TRUNC) {
		struct fs_op *g = gate_of(op->f, op->key);
		if (g)
			queue_remove(&g->waiters, op);
		op_end(op, EINTR);
	}
	/* OP_RUNQ, OP_IDLE (being registered): op_run sees the flag */
}

/* Starts an op from its handler: the interrupt function first, so no interrupt is lost. An op
 * on a file whose truncation is in flight waits for it (op_run). */
static void op_start(struct fs_op *op)
{
	fuse_req_interrupt_func(op->freq, on_interrupt, op);
	op_run(op);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fs_fuse *f = arg;
	struct op_queue q = f->runq;

	(void)fd;
	(void)what;
	f->runq.head = f->runq.tail = NULL;
	for (struct fs_op *op = queue_pop(&q); op; op = queue_pop(&q))
		op_run(op);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fs_fuse *f = arg;
	struct op_queue q = f->retryq;

	(void)fd;
	(void)what;
	f->retryq.head = f->retryq.tail = NULL;
	for (struct fs_op *op = queue_pop(&q); op; op = queue_pop(&q))
		op_run(op);
}

/* Sets op->key to the key of ino (+ "/" name) and the command's key to it. 0 or an errno. */
static int op_key(struct fs_op *op, uint64_t ino, const char *name)
{
	size_t len;
	int rv = fs_inode_key(op->f->inodes, ino, name, op->key, sizeof(op->key), &len);

	if (rv)
		return -rv;
	op->cmd.key = op->key;
	op->cmd.key_len = len;
	return 0;
}

/* Starts a command on key(ino [+ name]); on a key error answers it at once. */
static void op_start_on(struct fs_op *op, uint8_t kv_op, uint64_t ino, const char *name)
{
	int err;

	op->cmd.op = kv_op;
	err = op_key(op, ino, name);
	if (err) {
		op_reply_err(op, err);
		return;
	}
	op_start(op);
}

/* Copies a name the kernel gave (valid only during the handler). 0 or ENAMETOOLONG. */
static int copy_name(char *dst, const char *name)
{
	size_t n = strlen(name);

	if (n > KV_MAX_NAME_BYTES)
		return ENAMETOOLONG;
	memcpy(dst, name, n + 1);
	return 0;
}

/* --- replies with an entry ----------------------------------------------------------------------- */

static int remember(struct fs_op *op, const struct kv_attr *a)
{
	return -fs_inode_remember(op->f->inodes, a->ino, op->parent, op->name, strlen(op->name));
}

static void entry_of(const struct kv_attr *a, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	e->generation = 1;
	attr_to_stat(a, &e->attr);
	e->attr_timeout = 0; /* DESIGN.md 6: the kernel caches nothing */
	e->entry_timeout = 0;
}

/* Answers a lookup, mkdir, symlink or mknod with the result's attributes. */
static void reply_entry_done(struct fs_op *op, int err)
{
	struct fuse_entry_param e;

	if (!err && !op->req.result.has_attr)
		err = EIO;
	if (!err)
		err = remember(op, &op->req.result.attr);
	if (err) {
		op_reply_err(op, err);
		return;
	}
	entry_of(&op->req.result.attr, &e);
	if (fuse_reply_entry(op->freq, &e) != 0)
		fs_inode_forget(op->f->inodes, e.ino, 1); /* the kernel never saw it */
	op_free(op);
}

/* A child (parent, name) op: copies the name and builds the key; NULL after answering. */
static struct fs_op *child_op(fuse_req_t req, fuse_ino_t parent, const char *name, op_done_fn done)
{
	struct fs_op *op = op_new(fuse_req_userdata(req), req, done);
	int err;

	if (!op)
		return NULL;
	op->parent = parent;
	err = copy_name(op->name, name);
	if (!err)
		err = op_key(op, parent, op->name);
	if (err) {
		op_reply_err(op, err);
		return NULL;
	}
	return op;
}

/* --- lookup, forget, getattr --------------------------------------------------------------------- */

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_op *op = child_op(req, parent, name, reply_entry_done);

	if (!op)
		return;
	op->cmd.op = KV_OP_GETATTR;
	op_start(op); /* ENOENT is answered as an error: never cached */
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs_fuse *f = fuse_req_userdata(req);

	fs_inode_forget(f->inodes, ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs_fuse *f = fuse_req_userdata(req);

	for (size_t i = 0; i < count; i++)
		fs_inode_forget(f->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void reply_attr_done(struct fs_op *op, int err)
{
	struct stat st;

	if (!err && !op->req.result.has_attr)
		err = EIO;
	if (err) {
		op_reply_err(op, err);
		return;
	}
	attr_to_stat(&op->req.result.attr, &st);
	st.st_ino = op->ino;
	fuse_reply_attr(op->freq, &st, 0);
	op_free(op);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_op *op = op_new(fuse_req_userdata(req), req, reply_attr_done);

	(void)fi;
	if (!op)
		return;
	op->ino = ino;
	op_start_on(op, KV_OP_GETATTR, ino, NULL);
}

/* --- setattr: Truncate, then SetAttr, then (if neither answered attributes) GetAttr -------------- */

static uint64_t timespec_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

/* Prepares the next command of a setattr (true), or false when only the reply is left. */
static bool setattr_next(struct fs_op *op)
{
	int s = op->to_set;

	op->cmd.flags = 0;
	memset(&op->cmd.attr, 0, sizeof(op->cmd.attr));
	if (op->stage == 0 && (s & FUSE_SET_ATTR_SIZE)) {
		op->stage = 1; /* built by setattr_prepare, when it runs */
		return true;
	}
	if (op->stage < 2) {
		op->stage = 2;
		if (s & FUSE_SET_ATTR_MODE) {
			op->cmd.flags |= KV_ATTR_MODE;
			op->cmd.attr.mode = op->set.st_mode & KV_MODE_PERM;
		}
		if (s & FUSE_SET_ATTR_UID) {
			op->cmd.flags |= KV_ATTR_UID;
			op->cmd.attr.uid = op->set.st_uid;
		}
		if (s & FUSE_SET_ATTR_GID) {
			op->cmd.flags |= KV_ATTR_GID;
			op->cmd.attr.gid = op->set.st_gid;
		}
		if (s & FUSE_SET_ATTR_MTIME_NOW) {
			/* both times "now" (touch): write permission is enough, as in POSIX */
			op->cmd.flags |= KV_ATTR_MTIME;
			if (!(s & FUSE_SET_ATTR_ATIME) || (s & FUSE_SET_ATTR_ATIME_NOW))
				op->cmd.flags |= KV_ATTR_TOUCH;
			op->cmd.attr.mtime_ns = real_ns();
		} else if (s & FUSE_SET_ATTR_MTIME) {
			op->cmd.flags |= KV_ATTR_MTIME;
			op->cmd.attr.mtime_ns = timespec_ns(&op->set.st_mtim);
		}
		if (s & FUSE_SET_ATTR_CTIME) {
			op->cmd.flags |= KV_ATTR_CTIME;
			op->cmd.attr.ctime_ns = timespec_ns(&op->set.st_ctim);
		}
		if (op->cmd.flags) {
			op->cmd.op = KV_OP_SETATTR;
			return true;
		}
	}
	if (op->stage < 3 && !op->have_attr) {
		op->stage = 3; /* atime only (not kept): read the attributes to answer */
		op->cmd.op = KV_OP_GETATTR;
		return true;
	}
	return false;
}

/*
 * The size step of a setattr: a Truncate, but through a handle whose O_TRUNC is still pending
 * what it truncates to is zeros, not the head of the old value: one Put of them, which commits
 * the truncation (a gate). Decided when it runs: a write ahead of it may have done that already.
 */
static int setattr_prepare(struct fs_op *op)
{
	uint64_t size = (uint64_t)op->set.st_size;

	if (op->stage != 1)
		return 1;
	op->cmd.op = KV_OP_TRUNCATE;
	op->cmd.offset = size;
	if (!op->h || !op->h->trunc_pending)
		return 1;
	op->gate = true;
	if (size == 0)
		return 1;
	if (size > kv_node_max_value_bytes(op->f->node))
		return -EFBIG;
	free(op->put_buf);
	op->put_buf = calloc(1, (size_t)size);
	if (!op->put_buf)
		return -ENOMEM;
	op->cmd.op = KV_OP_PUT;
	op->cmd.data = op->put_buf;
	op->cmd.data_len = (size_t)size;
	op->cmd.mode = 0644 & ~op->umask;
	return 1;
}

static void setattr_done(struct fs_op *op, int err)
{
	struct stat st;

	if (err) {
		op_reply_err(op, err);
		return;
	}
	if (op->req.result.has_attr) {
		op->attr = op->req.result.attr;
		op->have_attr = true;
	}
	if (op->stage == 1 && op->h)
		op->h->trunc_pending = false; /* the truncation happened */
	if (setattr_next(op)) {
		op_defer(op);
		return;
	}
	attr_to_stat(&op->attr, &st);
	st.st_ino = op->ino;
	fuse_reply_attr(op->freq, &st, 0);
	op_free(op);
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	struct fs_op *op = op_new(fuse_req_userdata(req), req, setattr_done);
	int err;

	if (!op)
		return;
	op->ino = ino;
	op->to_set = to_set;
	op->set = *attr;
	op->h = fi ? (struct fs_handle *)(uintptr_t)fi->fh : NULL;
	if (op->h && op->h->is_dir)
		op->h = NULL;
	err = op_key(op, ino, NULL);
	if (err) {
		op_reply_err(op, err);
		return;
	}
	op->prepare = setattr_prepare;
	setattr_next(op); /* always a command: nothing has answered attributes yet */
	op_start(op);
}

/* --- open, read, write, flush, release ----------------------------------------------------------- */

/* Sets up handle h from the open flags in fi and its opener (the caller of req), and fi's answer
 * from h (DESIGN.md 6: no page cache, every read asks; an O_TRUNC open for writing is one Put at
 * its first write or its last close). may_truncate is false for a file this very open created:
 * it is empty already. */
static void handle_attach(struct fs_handle *h, fuse_req_t req, struct fuse_file_info *fi,
                          bool may_truncate)
{
	h->open_flags = fi->flags;
	h->append = (fi->flags & O_APPEND) != 0;
	h->trunc_pending =
	        may_truncate && (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY;
	if (h->trunc_pending) /* fs_flush asks about it */
		h->opener = fs_holders_tgid(fuse_req_ctx(req)->pid);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->noflush = !h->trunc_pending; /* fs_flush has nothing to do for it */
}

/*
 * An open asks the cluster nothing: the kernel has just looked the file up (a directory goes to
 * opendir instead), and a handle keeps nothing an open could learn. Every read is a Read of its
 * own, every write says where it goes (fs_write): `cat f` is a lookup, fstat and its reads.
 */
static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_new(fuse_req_userdata(req), ino);

	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	handle_attach(h, req, fi, true);
	if (fuse_reply_open(req, fi) != 0)
		handle_free(h); /* interrupted: no release will come */
}

static void create_done(struct fs_op *op, int err)
{
	struct fuse_entry_param e;
	const struct kv_attr *a = &op->req.result.attr;
	struct fs_handle *h;

	if (err == EEXIST && op->stage == 0 && !(op->fi.flags & O_EXCL)) {
		/* create-if-absent: it exists, so open it as it is (never truncated here) */
		op->stage = 1;
		op->existed = true;
		op->cmd.op = KV_OP_GETATTR;
		op_defer(op);
		return;
	}
	if (!err && !op->req.result.has_attr)
		err = EIO;
	if (!err && (a->mode & KV_MODE_TYPE) == KV_MODE_DIR)
		err = EISDIR;
	if (!err)
		err = remember(op, a);
	if (err) {
		op_reply_err(op, err);
		return;
	}
	h = handle_new(op->f, a->ino);
	if (!h) {
		fs_inode_forget(op->f->inodes, a->ino, 1);
		op_reply_err(op, ENOMEM);
		return;
	}
	handle_attach(h, op->freq, &op->fi, op->existed);
	entry_of(a, &e);
	if (fuse_reply_create(op->freq, &e, &op->fi) != 0) {
		handle_free(h);
		fs_inode_forget(op->f->inodes, a->ino, 1);
	}
	op_free(op);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	struct fs_op *op = child_op(req, parent, name, create_done);

	if (!op)
		return;
	op->fi = *fi;
	op->cmd.op = KV_OP_CREATE_EXCLUSIVE; /* O_EXCL; otherwise EEXIST means "open it" */
	op->cmd.mode = (uint32_t)(mode & ~op->umask) & KV_MODE_PERM;
	op_start(op);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fs_op *op;

	(void)rdev;
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM); /* no device files, fifos or sockets */
		return;
	}
	op = child_op(req, parent, name, reply_entry_done);
	if (!op)
		return;
	op->cmd.op = KV_OP_CREATE_EXCLUSIVE;
	op->cmd.mode = (uint32_t)(mode & ~op->umask) & KV_MODE_PERM;
	op_start(op);
}

/* A read's command when it runs: first, on a handle whose O_TRUNC is still pending, the
 * truncation (Put "", a gate: a descriptor sees its own truncation); then the Read of op->size
 * bytes at op->off. */
static int read_prepare(struct fs_op *op)
{
	if (op->stage < 2 && op->h->trunc_pending && !op->h->write_failed) {
		op->stage = 1;
		op->gate = true;
		op->cmd.op = KV_OP_PUT;
		op->cmd.mode = 0644 & ~op->umask;
		return 1;
	}
	op->stage = 2;
	op->cmd.op = KV_OP_READ;
	op->cmd.offset = (uint64_t)op->off;
	op->cmd.count = (uint32_t)op->size;
	return 1;
}

static void read_done(struct fs_op *op, int err)
{
	const struct kv_result *r = &op->req.result;

	if (op->stage == 1) {
		/* the handle's own truncation first: a descriptor sees its own truncate */
		if (err) {
			op->h->write_failed = true;
			op_reply_err(op, err);
			return;
		}
		op->h->trunc_pending = false;
		op->stage = 2;
		op_defer(op);
		return;
	}
	if (err) {
		op_reply_err(op, err);
		return;
	}
	/* a missing file (removed meanwhile on another node) reads as empty */
	fuse_reply_buf(op->freq, r->value_len ? r->value : NULL, r->value_len);
	op_free(op);
}

/*
 * Every read(2) is one linearizable Read of the bytes it asks for (DESIGN.md 6): it sees every
 * write completed before it began, through any descriptor on any node, this one's included, and
 * a value that fits in one read call is one version. Nothing is kept between reads.
 */
static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	struct fs_handle *h = (struct fs_handle *)(uintptr_t)fi->fh;
	struct fs_op *op = op_new(fuse_req_userdata(req), req, read_done);

	if (!op)
		return;
	if (off < 0) {
		op_reply_err(op, EINVAL);
		return;
	}
	op->h = h;
	op->size = size < KV_VALUE_BYTES_LIMIT ? size : KV_VALUE_BYTES_LIMIT;
	op->off = off;
	op->prepare = read_prepare;
	op_start_on(op, KV_OP_READ, ino, NULL);
}

static void write_done(struct fs_op *op, int err)
{
	struct fs_handle *h = op->h;

	if (err) {
		h->write_failed = true;
		op_reply_err(op, err);
		return;
	}
	h->trunc_pending = false;
	fuse_reply_write(op->freq, op->size);
	op_free(op);
}

/*
 * A write goes where the call says (DESIGN.md 6): an O_APPEND handle's to the end (Append: the
 * kernel's offset is ignored, appends from every node are ordered once), any other's at its
 * offset (WriteAt, which extends the file when the offset is its size): never an Append guessed
 * from a size seen earlier, which another node's append would have made stale.
 */
/* A write's command when it runs (op->data holds its op->size bytes). While the handle's O_TRUNC
 * is pending (this is its first write, or the ones before it failed) it is the one Put of the
 * bytes, zeros before the offset (on an O_APPEND handle the bytes are the whole file), so no
 * reader anywhere sees the file empty in between (DESIGN.md 6): a gate, since a second write
 * must not land before it (the second Put would lose the first's bytes) nor a Put("") after. */
static int write_prepare(struct fs_op *op)
{
	struct fs_handle *h = op->h;
	uint64_t max, lead;

	op->cmd.mode = 0644 & ~op->umask; /* if another node removed it meanwhile */
	if (!h->trunc_pending) {
		op->cmd.op = h->append ? KV_OP_APPEND : KV_OP_WRITE_AT;
		op->cmd.offset = (uint64_t)op->off;
		op->cmd.data = op->data;
		op->cmd.data_len = op->size;
		return 1;
	}
	max = kv_node_max_value_bytes(op->f->node);
	lead = h->append ? 0 : (uint64_t)op->off;
	if (lead > max || op->size > max - lead)
		return -EFBIG;
	op->gate = true;
	op->cmd.op = KV_OP_PUT;
	op->cmd.data = op->data;
	op->cmd.data_len = op->size;
	if (lead) {
		free(op->put_buf);
		op->put_buf = calloc(1, (size_t)lead + op->size);
		if (!op->put_buf)
			return -ENOMEM;
		memcpy((char *)op->put_buf + lead, op->data, op->size);
		op->cmd.data = op->put_buf;
		op->cmd.data_len = (size_t)lead + op->size;
	}
	return 1;
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	struct fs_handle *h = (struct fs_handle *)(uintptr_t)fi->fh;
	struct fs_op *op = op_new(fuse_req_userdata(req), req, write_done);

	if (!op)
		return;
	op->h = h;
	op->size = size;
	op->off = off;
	if (off < 0) {
		op_reply_err(op, EINVAL);
		return;
	}
	op->data = malloc(size ? size : 1); /* the kernel's buffer dies when this returns */
	if (!op->data) {
		op_reply_err(op, ENOMEM);
		return;
	}
	memcpy(op->data, buf, size);
	op->prepare = write_prepare;
	op_start_on(op, KV_OP_WRITE_AT, ino, NULL);
}

static void trunc_commit_done(struct fs_op *op, int err)
{
	if (!err)
		op->h->trunc_pending = false;
	else
		op->h->write_failed = true;
	op_reply_err(op, err);
}

/* The Put("") of a pending truncation, a gate; nothing when a write ahead of it committed it. */
static int trunc_prepare(struct fs_op *op)
{
	if (!op->h->trunc_pending)
		return 0;
	op->gate = true;
	op->cmd.op = KV_OP_PUT;
	op->cmd.mode = 0644 & ~op->umask;
	return 1;
}

/* Commits the pending truncation of h (Put "") and answers req when it is done. */
static void trunc_commit(fuse_req_t req, fuse_ino_t ino, struct fs_handle *h)
{
	struct fs_op *op = op_new(fuse_req_userdata(req), req, trunc_commit_done);

	if (!op)
		return;
	op->h = h;
	op->prepare = trunc_prepare;
	op_start_on(op, KV_OP_PUT, ino, NULL);
}

/*
 * Whether h's open file description may still be held by its opener, so that this close (by
 * process flusher) must not commit h's truncation. The kernel takes a descriptor out of the table
 * before it sends FLUSH, so a writable descriptor of the opener on the file is another one: a dup
 * (the shell's `echo v > f` dup2()s onto stdout and closes the first), or another open of the
 * same file, which /proc cannot tell from a dup; either way the answer is "held" and the release
 * commits the truncation if nothing is written. A close by any other process (a forked child's,
 * an exec closing its O_CLOEXEC copy) never commits it: what the opener holds decides, and the
 * opener's own last close comes, commits it (even if a child still holds a copy: raftfs(7)) or
 * finds it written. When /proc cannot tell, the answer is "held". (Counting the opener's other
 * handles against its descriptors was tried and is wrong: a handle of the opener that only a
 * child still holds counts without a descriptor, and one dup then read as "not held".)
 */
static bool trunc_held(struct fs_fuse *f, const struct fs_handle *h, pid_t flusher)
{
	if (flusher != h->opener)
		return true;
	/* -1: cannot tell */
	return fs_holders_writable(h->opener, h->ino, &f->mount, h->open_flags, 1) != 0;
}

/*
 * An O_TRUNC open closed without writing commits Put("") (DESIGN.md 6), before the last close of
 * its opener returns (trunc_held), and never at a close of another process's copy (a forked
 * child's, an exec's O_CLOEXEC close) while the opener holds it: the opener's write that follows
 * is then the one Put, and no reader sees the file empty in between. When nothing is written
 * after all, the release commits it. After a failed write the truncation is committed here or
 * never: this close is the last call whose caller learns its outcome.
 */
static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_fuse *f = fuse_req_userdata(req);
	struct fs_handle *h = (struct fs_handle *)(uintptr_t)fi->fh;

	if (!h->trunc_pending ||
	    (!h->write_failed && trunc_held(f, h, fs_holders_tgid(fuse_req_ctx(req)->pid)))) {
		/* write-through: nothing is buffered (handles without a pending truncation are
		 * opened with noflush: the kernel sends this only after the truncation happened) */
		fuse_reply_err(req, 0);
		return;
	}
	trunc_commit(req, ino, h);
}

static void release_done(struct fs_op *op, int err)
{
	if (err)
		flog(op->f, FS_LOG_WARN, "truncation at release of %s: %s", op->key, strerror(err));
	handle_free(op->h);
	op->h = NULL;
	op_reply_err(op, 0); /* the kernel ignores a release's error */
}

/*
 * The last close of a description whose truncation a flush left pending (trunc_held) commits it
 * now. The close that made it last has returned already, so every later operation on the same
 * file through this mount waits for it (a gate: op_run). Never after a failure, which its caller
 * was told of: a Put("") made now, unseen, could wipe writes acknowledged to others in between.
 */
static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_handle *h = (struct fs_handle *)(uintptr_t)fi->fh;
	struct fs_fuse *f = fuse_req_userdata(req);
	struct fs_op *op;

	if (!h->trunc_pending || h->write_failed) {
		handle_free(h);
		fuse_reply_err(req, 0);
		return;
	}
	op = op_new(f, req, release_done);
	if (!op) {
		handle_free(h);
		return;
	}
	op->h = h;
	op->prepare = trunc_prepare;
	if (op_key(op, ino, NULL) != 0) {
		handle_free(h);
		op->h = NULL;
		op_reply_err(op, 0);
		return;
	}
	op_start(op);
}

/* Returns once every write of the handle is committed: at once (write-through), but for a
 * pending truncation, which is committed now. */
static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_handle *h = fi ? (struct fs_handle *)(uintptr_t)fi->fh : NULL;

	(void)datasync;
	if (h && h->trunc_pending && !h->write_failed) {
		trunc_commit(req, ino, h);
		return;
	}
	fuse_reply_err(req, 0);
}

/* --- directories --------------------------------------------------------------------------------- */

static void opendir_done(struct fs_op *op, int err)
{
	struct fs_handle *h;

	if (!err && !(h = handle_new(op->f, op->ino)))
		err = ENOMEM;
	if (err) {
		op_reply_err(op, err);
		return;
	}
	/* one ReadDir per opendir, pinned to the handle (DESIGN.md 6) */
	h->is_dir = true;
	h->dir = op->req.result;
	memset(&op->req.result, 0, sizeof(op->req.result));
	h->parent = fs_inode_parent(op->f->inodes, op->ino);
	op->fi.fh = (uint64_t)(uintptr_t)h;
	op->fi.keep_cache = 0;
	op->fi.cache_readdir = 0;
	if (fuse_reply_open(op->freq, &op->fi) != 0)
		handle_free(h);
	op_free(op);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_op *op = op_new(fuse_req_userdata(req), req, opendir_done);

	if (!op)
		return;
	op->fi = *fi;
	op->ino = ino;
	op_start_on(op, KV_OP_READDIR, ino, NULL);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	struct fs_handle *h = (struct fs_handle *)(uintptr_t)fi->fh;
	char *buf = malloc(size ? size : 1);
	size_t used = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (uint64_t i = off < 0 ? 0 : (uint64_t)off;; i++) {
		char name[FS_NAME_CAP];
		struct stat st;
		size_t need;

		memset(&st, 0, sizeof(st));
		if (i == 0) {
			strcpy(name, ".");
			st.st_ino = ino;
			st.st_mode = S_IFDIR;
		} else if (i == 1) {
			strcpy(name, "..");
			st.st_ino = h->parent;
			st.st_mode = S_IFDIR;
		} else if (i - 2 < h->dir.n_ents) {
			const struct kv_dirent *d = &h->dir.ents[i - 2];
			memcpy(name, d->name, d->name_len);
			name[d->name_len] = '\0';
			st.st_ino = d->ino;
			st.st_mode = d->mode;
		} else {
			break;
		}
		need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(i + 1));
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	handle_free((struct fs_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs_op *op = child_op(req, parent, name, reply_entry_done);

	if (!op)
		return;
	op->cmd.op = KV_OP_MKDIR;
	op->cmd.mode = (uint32_t)(mode & ~op->umask) & KV_MODE_PERM;
	op_start(op);
}

static void removed_done(struct fs_op *op, int err)
{
	if (!err)
		fs_inode_unlinked(op->f->inodes, op->parent, op->name);
	op_reply_err(op, err);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_op *op = child_op(req, parent, name, removed_done);

	if (!op)
		return;
	op->cmd.op = KV_OP_DELETE;
	op_start(op);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_op *op = child_op(req, parent, name, removed_done);

	if (!op)
		return;
	op->cmd.op = KV_OP_RMDIR;
	op_start(op);
}

static void rename_done(struct fs_op *op, int err)
{
	if (!err &&
	    fs_inode_renamed(op->f->inodes, op->parent, op->name, op->new_parent, op->new_name) !=
	            0)
		flog(op->f, FS_LOG_WARN, "rename: out of memory for the inode table");
	op_reply_err(op, err);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	struct fs_op *op;
	size_t len;
	int err;

	if (flags & ~RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL); /* RENAME_EXCHANGE, RENAME_WHITEOUT */
		return;
	}
	op = child_op(req, parent, name, rename_done);
	if (!op)
		return;
	op->new_parent = newparent;
	err = copy_name(op->new_name, newname);
	if (!err)
		err = -fs_inode_key(op->f->inodes, newparent, op->new_name, op->key2,
		                    sizeof(op->key2), &len);
	if (err) {
		op_reply_err(op, err);
		return;
	}
	op->cmd.op = KV_OP_RENAME;
	op->cmd.key2 = op->key2;
	op->cmd.key2_len = len;
	op->cmd.flags = (flags & RENAME_NOREPLACE) ? KV_RENAME_NOREPLACE : 0;
	op_start(op);
}

/* --- symbolic links, hard links, xattrs, statfs -------------------------------------------------- */

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	size_t n = strlen(link);
	struct fs_op *op;

	if (n > KV_MAX_TARGET_BYTES) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	op = child_op(req, parent, name, reply_entry_done);
	if (!op)
		return;
	op->data = malloc(n ? n : 1);
	if (!op->data) {
		op_reply_err(op, ENOMEM);
		return;
	}
	memcpy(op->data, link, n);
	op->cmd.op = KV_OP_SYMLINK;
	op->cmd.data = op->data;
	op->cmd.data_len = n;
	op_start(op);
}

static void readlink_done(struct fs_op *op, int err)
{
	const struct kv_result *r = &op->req.result;
	char *target;

	if (!err && (!r->exists || !r->has_attr || (r->attr.mode & KV_MODE_TYPE) != KV_MODE_LNK))
		err = r->exists ? EINVAL : ENOENT;
	if (!err && !(target = malloc(r->value_len + 1)))
		err = ENOMEM;
	if (err) {
		op_reply_err(op, err);
		return;
	}
	if (r->value_len)
		memcpy(target, r->value, r->value_len);
	target[r->value_len] = '\0';
	fuse_reply_readlink(op->freq, target);
	free(target);
	op_free(op);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_op *op = op_new(fuse_req_userdata(req), req, readlink_done);

	if (!op)
		return;
	op_start_on(op, KV_OP_GET, ino, NULL);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EPERM); /* no hard links: git falls back to rename */
}

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, ENOSYS); /* the kernel then answers ENOTSUP itself */
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	(void)ino;
	(void)name;
	(void)size;
	fuse_reply_err(req, ENOSYS); /* the kernel then answers ENOTSUP itself */
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino;
	(void)size;
	fuse_reply_err(req, ENOSYS); /* the kernel then answers ENOTSUP itself */
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fuse_reply_err(req, ENOTSUP);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_fuse *f = fuse_req_userdata(req);
	struct statvfs sv;

	(void)ino;
	/* a local answer from the data disk: never waits for the cluster */
	if (statvfs(f->opt->data, &sv) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = KV_MAX_NAME_BYTES;
	fuse_reply_statfs(req, &sv);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* O_TRUNC reaches open (one Put at the first write) instead of a separate truncate */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* a writeback cache would hide O_APPEND and delay errors (DESIGN.md 6) */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* lookups and readdirs in one directory run side by side: without this the kernel sends
	 * them one at a time, and a caller queued behind one waiting for the cluster sleeps
	 * uninterruptibly (fuse_lock_inode) */
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

static const struct fuse_lowlevel_ops fs_ops = {
        .init = fs_init,
        .lookup = fs_lookup,
        .forget = fs_forget,
        .forget_multi = fs_forget_multi,
        .getattr = fs_getattr,
        .setattr = fs_setattr,
        .readlink = fs_readlink,
        .mknod = fs_mknod,
        .mkdir = fs_mkdir,
        .unlink = fs_unlink,
        .rmdir = fs_rmdir,
        .symlink = fs_symlink,
        .rename = fs_rename,
        .link = fs_link,
        .open = fs_open,
        .read = fs_read,
        .write = fs_write,
        .flush = fs_flush,
        .release = fs_release,
        .fsync = fs_fsync,
        .opendir = fs_opendir,
        .readdir = fs_readdir,
        .releasedir = fs_releasedir,
        .fsyncdir = fs_fsyncdir,
        .statfs = fs_statfs,
        .setxattr = fs_setxattr,
        .getxattr = fs_getxattr,
        .listxattr = fs_listxattr,
        .removexattr = fs_removexattr,
        .create = fs_create,
};

/* --- the device fd in the loop ------------------------------------------------------------------- */

static void mount_gone(struct fs_fuse *f)
{
	if (f->gone)
		return;
	f->gone = true;
	event_del(f->ev);
	flog(f, FS_LOG_INFO, "%s was unmounted", f->opt->mountpoint);
	if (f->hooks.unmounted)
		f->hooks.unmounted(f->hooks.ctx);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct fs_fuse *f = arg;

	(void)fd;
	(void)what;
	while (!f->gone) {
		int res = fuse_session_receive_buf(f->se, &f->buf);
		if (res == -EAGAIN)
			break;
		if (res == -EINTR || (res == 0 && !fuse_session_exited(f->se)))
			continue;
		if (res <= 0) {
			/* 0: ENODEV, unmounted or aborted; < 0: the device failed */
			if (res < 0)
				flog(f, FS_LOG_ERROR, "reading /dev/fuse: %s", strerror(-res));
			mount_gone(f);
			return;
		}
		fuse_session_process_buf(f->se, &f->buf);
		if (fuse_session_exited(f->se))
			mount_gone(f);
	}
}

int fs_fuse_start(struct event_base *base, struct kv_node *node, const struct fs_options *opt,
                  const struct fs_fuse_hooks *hooks, struct fs_fuse **out, char *err,
                  size_t err_len)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char mount_opts[FS_MOUNT_OPTS_BYTES + 64];
	struct fs_fuse *f = calloc(1, sizeof(*f));
	struct timeval watch_tv = {0, FS_WATCH_MS * 1000};
	int fd, fl;

	if (!f) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	f->base = base;
	f->node = node;
	f->opt = opt;
	f->hooks = *hooks;
	f->ops.next = f->ops.prev = &f->ops;
	f->handles.next = f->handles.prev = &f->handles;
	f->timeout_ms = opt->hard ? 0 : (uint64_t)opt->timeout_s * 1000u;
	f->election_ms = (uint64_t)opt->election_ticks * opt->tick_ms;
	f->last_contact_ms = mono_ms();
	if (fs_inode_table_new(&f->inodes) != 0) {
		snprintf(err, err_len, "out of memory");
		free(f);
		return -1;
	}
	f->kick = event_new(base, -1, 0, kick_cb, f);
	f->retry = evtimer_new(base, retry_cb, f);
	f->watch = event_new(base, -1, EV_PERSIST, watch_cb, f);
	if (!f->kick || !f->retry || !f->watch) {
		snprintf(err, err_len, "cannot create an event");
		goto out_events;
	}
	snprintf(mount_opts, sizeof(mount_opts), "fsname=raftfs,subtype=raftfs%s%s",
	         opt->mount_opts[0] ? "," : "", opt->mount_opts);
	if (fuse_opt_add_arg(&args, "raftfs") != 0 || fuse_opt_add_arg(&args, "-o") != 0 ||
	    fuse_opt_add_arg(&args, mount_opts) != 0) {
		snprintf(err, err_len, "out of memory");
		goto out_args;
	}
	f->se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), f);
	if (!f->se) {
		snprintf(err, err_len, "cannot create the FUSE session (mount options %s)",
		         mount_opts);
		goto out_args;
	}
	if (!realpath(opt->mountpoint, f->mnt_abs))
		f->mnt_abs[0] = '\0';
	if (fuse_session_mount(f->se, opt->mountpoint) != 0) {
		snprintf(err, err_len, "cannot mount (is /dev/fuse there?)");
		goto out_session;
	}
	if (!f->mnt_abs[0] || fs_mount_id_find(f->mnt_abs, &f->mount) != 0)
		flog(f, FS_LOG_WARN,
		     "%s: not found in /proc/self/mountinfo: an O_TRUNC open closed "
		     "without writing is truncated at its release",
		     opt->mountpoint);
	fd = fuse_session_fd(f->se);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
		snprintf(err, err_len, "fcntl /dev/fuse: %s", strerror(errno));
		goto out_mount;
	}
	f->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, f);
	if (!f->ev || event_add(f->ev, NULL) != 0 || event_add(f->watch, &watch_tv) != 0) {
		snprintf(err, err_len, "cannot add /dev/fuse to the loop");
		goto out_event;
	}
	fuse_opt_free_args(&args);
	flog(f, FS_LOG_INFO, "mounted on %s (timeout %s%u s)", opt->mountpoint,
	     opt->hard ? "none, hard; default " : "", opt->timeout_s);
	*out = f;
	return 0;

out_event:
	if (f->ev)
		event_free(f->ev);
out_mount:
	fuse_session_unmount(f->se);
out_session:
	fuse_session_destroy(f->se);
out_args:
	fuse_opt_free_args(&args);
out_events:
	if (f->kick)
		event_free(f->kick);
	if (f->retry)
		event_free(f->retry);
	if (f->watch)
		event_free(f->watch);
	fs_inode_table_free(f->inodes);
	free(f);
	return -1;
}

void fs_fuse_stop(struct fs_fuse *f)
{
	if (!f)
		return;
	f->stopping = true;
	/* answer everything still waiting: each state has one way out (see the top of the file) */
	while (f->ops.next != &f->ops) {
		struct fs_op *op = f->ops.next;
		switch (op->state) {
		case OP_IN_FLIGHT:
			kv_node_cancel(f->node, &op->req);
			break;
		case OP_WAIT_SESSION:
			queue_remove(&f->waitq, op);
			op_end(op, fs_errno(KV_STATUS_SHUTDOWN, KV_OK));
			break;
		case OP_RUNQ:
			queue_remove(&f->runq, op);
			op_run(op); /* stopping: answers EIO */
			break;
		case OP_RETRY:
			queue_remove(&f->retryq, op);
			op_run(op);
			break;
		case OP_WAIT_TRUNC: {
			struct fs_op *g = gate_of(f, op->key);
			if (g)
				queue_remove(&g->waiters, op);
			op_end(op, fs_errno(KV_STATUS_SHUTDOWN, KV_OK));
			break;
		}
		case OP_IDLE:
			op_reply_err(op, EIO);
			break;
		}
	}
	while (f->handles.next != &f->handles)
		handle_free(f->handles.next);
	if (f->ev)
		event_free(f->ev);
	event_free(f->kick);
	event_free(f->retry);
	event_free(f->watch);
	fuse_session_unmount(f->se);
	fuse_session_destroy(f->se);
	free(f->buf.mem);
	fs_inode_table_free(f->inodes);
	flog(f, FS_LOG_INFO, "unmounted %s", f->opt->mountpoint);
	free(f);
}
