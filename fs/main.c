/* main.c - the raftfs daemon: one libevent loop driving a replicated key/value node. */

/*
 * Ownership rule: one thread, one event_base. The loop owns everything: the tick timer, the
 * peer transport (raft/transport.c), client connections, signals and the node (kv/node.c),
 * which persists each loop turn's Raft state with one fdatasync before any message or reply
 * that depends on it leaves (STYLE.md 2). No other thread exists; a future helper thread (an
 * fsync thread) must hand its results back to the loop through a queue and a wake-up event,
 * never touch the node itself.
 *
 * Snapshots are written by a forked child (Redis BGSAVE): the child sees the store as it was at
 * the fork, writes and fsyncs the image, reports its size and CRC through a pipe and _exits; the
 * loop learns of its end from the pipe's EOF and reaps it without blocking. fork() is safe here
 * because the process has one thread (checked before each fork: with more, malloc in the child
 * could deadlock, and the snapshot is written in the loop instead).
 */

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs/clients.h"
#include "fs/fuse.h"
#include "fs/mountpoint.h"
#include "fs/options.h"
#include "kv/node.h"
#include "kv/proto.h"
#include "raft/tls.h"
#include "raft/transport.h"

#define RAFTFS_VERSION "0.1"
#define SHUTDOWN_MAX_MS 3000u /* a leader waits this long for a transfer */
#define SNAPSHOT_CHILD_IOPRIO 7 /* best-effort class, lowest level: the WAL's fsyncs go first */
#define SNAPSHOT_REAP_RETRY_MS 2 /* EOF came before the child became reapable: look again */

/* What a snapshot child writes to its pipe before it exits (one write, below PIPE_BUF). */
struct snap_report {
	uint64_t size;
	uint32_t crc;
	int32_t err; /* errno value; 0: the image is written and fsynced */
};

/* The background snapshot: a child process, or (pid -1) a job run in the loop. */
struct snap_child {
	pid_t pid; /* 0: none */
	int fd; /* read end of the child's pipe, -1: closed */
	struct event *ev; /* fd readable */
	struct event *reap; /* timer: waitpid again, or hand an in-loop result to the node */
	struct kv_snapshot_job *job;
	struct snap_report rep;
	size_t got; /* bytes of rep read so far */
	bool inline_ok; /* pid -1: what the job's run returned */
	uint64_t started_ms;
};

struct daemon {
	struct fs_options opt;
	struct event_base *base;
	struct event *tick;
	struct event *flush; /* kv_node_flush() at the end of a loop turn (env.schedule) */
	struct event *sig_term, *sig_int, *sig_hup;
	struct raft_tls *tls; /* NULL: plaintext (only where every address is loopback) */
	struct raft_transport *transport;
	struct fs_clients *clients;
	struct kv_node *node;
	struct fs_fuse *fuse; /* NULL without a mountpoint */
	struct raft_transport_config tcfg;
	uint64_t rng;
	bool stopping;
	bool trace_msgs; /* RAFTFS_TRACE_MSGS: log every Raft message sent and received */
	uint64_t stop_deadline_ms;
	int exit_code;
	struct snap_child snap;
	int ready_fd; /* daemon mode: the pipe to the waiting parent until the node serves */
	bool log_to_file; /* --log-file: stderr is that file */
};

static struct daemon *the_daemon; /* for the logger */

/* --- logging: one line per event on stderr ------------------------------------------------------ */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static void dlog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void dlog(int level, const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	char line[1024];
	va_list ap;

	if (level > FS_LOG_ERROR)
		level = FS_LOG_ERROR;
	if (the_daemon && level < (int)the_daemon->opt.log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ raftfs[%u] %s: %s\n",
	        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	        ts.tv_nsec / 1000000, the_daemon ? the_daemon->opt.id : 0, level_names[level],
	        line);
}

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	dlog(level, "%s", msg);
}

/* --- environment of the node -------------------------------------------------------------------- */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t env_now_ms(void *ctx)
{
	(void)ctx;
	return mono_ms();
}

/*
 * RAFTFS_TEST_CLOCK_SKEW_FILE (tests: the nemesis jumps one node's wall clock): the file holds
 * a signed number of milliseconds added to the wall clock, read again at most every 100 ms of
 * the monotonic clock. A missing or unreadable file is no skew. The node's monotonic clock,
 * which drives its timers, is not touched: a jump of the wall clock does not move it either.
 */
static int64_t test_clock_skew_ms(void)
{
	static const char *path;
	static bool looked;
	static uint64_t read_at_ms;
	static int64_t skew;
	uint64_t now;
	FILE *f;

	if (!looked) {
		path = getenv("RAFTFS_TEST_CLOCK_SKEW_FILE");
		looked = true;
	}
	if (!path)
		return 0;
	now = mono_ms();
	if (read_at_ms && now - read_at_ms < 100)
		return skew;
	read_at_ms = now ? now : 1;
	skew = 0;
	f = fopen(path, "re");
	if (f) {
		long long v;
		/* within a century either way: a jump, not an overflow */
		if (fscanf(f, "%lld", &v) == 1 && v > -3155760000000LL && v < 3155760000000LL)
			skew = v;
		fclose(f);
	}
	return skew;
}

static uint64_t env_realtime_ms(void *ctx)
{
	struct timespec ts;
	uint64_t ms;
	int64_t skew = test_clock_skew_ms();

	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (skew < 0 && (uint64_t)-skew > ms)
		return 0;
	return ms + (uint64_t)skew;
}

static uint64_t env_random(void *ctx)
{
	struct daemon *d = ctx;
	uint64_t z = (d->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void env_send(void *ctx, const struct raft_msg *m)
{
	struct daemon *d = ctx;
	int rv = raft_transport_send(d->transport, m);

	if (d->trace_msgs)
		dlog(FS_LOG_DEBUG, "send %s to %u term %llu", raft_msg_type_name(m->type), m->to,
		     (unsigned long long)m->term);
	if (rv != RAFT_OK)
		dlog(FS_LOG_DEBUG, "%s to %u term %llu dropped: %s", raft_msg_type_name(m->type),
		     m->to, (unsigned long long)m->term, raft_transport_errmsg(d->transport));
}

/* A refused frame (peer not connected, queue full) is reported, not dropped silently: the node
 * then knows that the request it carried was never sent (kv/node.h). */
static bool env_send_app(void *ctx, uint32_t to, const void *buf, size_t len)
{
	struct daemon *d = ctx;

	if (raft_transport_send_app(d->transport, to, buf, len) == RAFT_OK)
		return true;
	dlog(FS_LOG_DEBUG, "application frame to %u refused: %s", to,
	     raft_transport_errmsg(d->transport));
	return false;
}

static void env_flush_sends(void *ctx)
{
	struct daemon *d = ctx;

	raft_transport_flush(d->transport);
}

/* A storage failure stops the node: nothing more may be acknowledged (DESIGN.md 8). */
static void check_failed(struct daemon *d)
{
	const char *why;

	if (kv_node_failed(d->node, &why) && d->exit_code == 0) {
		dlog(FS_LOG_ERROR, "fatal: %s", why);
		d->exit_code = 1;
		event_base_loopbreak(d->base);
	}
}

/* The inputs of this loop turn are in: every request, message and frame read so far is handled
 * together (one fdatasync for all of them, batched AppendEntries). The flush event was made
 * active after the I/O events of this turn, so libevent runs it after them. */
static void env_schedule(void *ctx)
{
	struct daemon *d = ctx;

	event_active(d->flush, EV_TIMEOUT, 0);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	kv_node_flush(d->node);
	check_failed(d);
	/* what the flush made leaves now: answers first (their clients are waiting), then what
	 * the peers are sent (commit indexes, next batches) */
	fs_clients_write(d->clients);
	raft_transport_flush(d->transport);
}

/* --- background snapshots ----------------------------------------------------------------------- */

/* Threads of this process; 0 when /proc cannot tell. */
static unsigned thread_count(void)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *de;
	unsigned n = 0;

	if (!dir)
		return 0;
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/*
 * In the child right after fork: closes every descriptor it has no use for, as Redis does after
 * its BGSAVE fork. It keeps its standard streams, its report pipe and the files and directories
 * of the data directory (the image it writes was opened before the fork); the listener, peer and
 * client sockets, /dev/fuse and the loop's epoll and event descriptors go. Otherwise a child
 * outliving its parent for a moment would hold the node's port and its mount alive.
 */
static void snapshot_child_close_fds(int keep)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	int fds[256], n = 0, self = dir ? dirfd(dir) : -1;

	if (!dir)
		return;
	while ((de = readdir(dir)) != NULL && n < (int)(sizeof(fds) / sizeof(fds[0]))) {
		struct stat st;
		int fd = atoi(de->d_name);
		if (de->d_name[0] == '.' || fd <= STDERR_FILENO || fd == keep || fd == self)
			continue;
		if (fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
			continue;
		fds[n++] = fd; /* closed after the listing: never under readdir's feet */
	}
	closedir(dir);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	if (n == (int)(sizeof(fds) / sizeof(fds[0])))
		snapshot_child_close_fds(keep); /* more than one batch */
}

/* The child: no libevent, no FUSE, no stdio; runs the job, reports, _exits. */
static void snapshot_child(struct kv_snapshot_job *job, int fd, pid_t parent)
{
	struct snap_report rep;
	const char *delay = getenv("RAFTFS_TEST_SNAPSHOT_CHILD_DELAY_MS");

	/* libevent's handlers would wake the parent's loop through its signal pipe */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	/* a parent that dies (kill -9) takes the child with it: no orphan holding its ports */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(1);
	snapshot_child_close_fds(fd);
	if (delay)
		usleep((useconds_t)atoi(delay) * 1000u); /* tests: time to look at the child */
	/* The CPU is shared as usual, not yielded (nice): the log cannot be compacted before the
	 * child is done and grows meanwhile. At nice 10 under a 40k put/s load the children took
	 * up to 7 s and the node's peak RSS reached 2.15x the data; at nice 0, 4 s and 1.87x. */
	(void)syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0,
	              (2 << 13) /* IOPRIO_CLASS_BE */ | SNAPSHOT_CHILD_IOPRIO);
	memset(&rep, 0, sizeof(rep));
	if (job->run(job) != 0)
		rep.err = job->err ? job->err : EIO;
	rep.size = job->size;
	rep.crc = job->crc;
	if (write(fd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		_exit(1);
	_exit(rep.err ? 1 : 0);
}

static void snap_close_pipe(struct snap_child *c)
{
	if (c->ev) {
		event_free(c->ev);
		c->ev = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

/* The child's end (or an in-loop job's): reaped without blocking, then handed to the node. */
static void snap_finish(struct daemon *d)
{
	struct snap_child *c = &d->snap;
	struct kv_snapshot_job *job = c->job;
	struct timeval tv = {0, SNAPSHOT_REAP_RETRY_MS * 1000};
	bool ok;
	int status = 0;

	if (c->pid > 0) {
		pid_t r = waitpid(c->pid, &status, WNOHANG);
		if (r == 0) {
			evtimer_add(c->reap, &tv);
			return;
		}
		ok = r == c->pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
		        c->got == sizeof(c->rep) && c->rep.err == 0;
		if (ok) {
			job->size = c->rep.size;
			job->crc = c->rep.crc;
			job->err = 0;
		} else {
			job->err = c->got == sizeof(c->rep) && c->rep.err ? c->rep.err : EIO;
		}
		if (r == c->pid && WIFSIGNALED(status))
			dlog(FS_LOG_WARN, "snapshot child %d killed by signal %d", (int)c->pid,
			     WTERMSIG(status));
		dlog(FS_LOG_INFO, "snapshot child %d: %s after %llu ms (%llu bytes)", (int)c->pid,
		     ok ? "image written" : "failed",
		     (unsigned long long)(mono_ms() - c->started_ms),
		     (unsigned long long)c->rep.size);
	} else {
		ok = c->inline_ok;
	}
	c->pid = 0;
	c->job = NULL;
	c->got = 0;
	kv_node_snapshot_done(d->node, job, ok);
	check_failed(d);
}

static void snap_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	snap_finish(arg);
}

static void snap_readable_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct snap_child *c = &d->snap;
	char sink[64];

	(void)what;
	for (;;) {
		size_t room = sizeof(c->rep) - c->got;
		ssize_t n = room ? read(fd, (char *)&c->rep + c->got, room)
		                 : read(fd, sink, sizeof(sink));
		if (n > 0) {
			if (room)
				c->got += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break; /* EOF (or an error): the child has closed its end, it is exiting */
	}
	snap_close_pipe(c);
	snap_finish(d);
}

/* env.snapshot_start: forks the child that writes the image. */
static int env_snapshot_start(void *ctx, struct kv_snapshot_job *job)
{
	struct daemon *d = ctx;
	struct snap_child *c = &d->snap;
	pid_t parent = getpid(), pid;
	unsigned threads = thread_count();
	int fds[2];

	if (c->pid != 0)
		return -1;
	c->job = job;
	c->got = 0;
	c->started_ms = mono_ms();
	if (threads > 1) {
		dlog(FS_LOG_WARN, "%u threads: no fork, the snapshot is written in the loop",
		     threads);
		goto in_loop;
	}
	if (pipe2(fds, O_CLOEXEC) != 0) {
		dlog(FS_LOG_WARN, "snapshot pipe: %s; written in the loop", strerror(errno));
		goto in_loop;
	}
	pid = fork();
	if (pid < 0) {
		dlog(FS_LOG_WARN, "snapshot fork: %s; written in the loop", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		goto in_loop;
	}
	if (pid == 0) {
		close(fds[0]);
		snapshot_child(job, fds[1], parent);
	}
	close(fds[1]);
	c->pid = pid;
	c->fd = fds[0];
	if (evutil_make_socket_nonblocking(c->fd) != 0 ||
	    !(c->ev = event_new(d->base, c->fd, EV_READ | EV_PERSIST, snap_readable_cb, d)) ||
	    event_add(c->ev, NULL) != 0) {
		/* cannot watch it: stop it; the node tries again later */
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		snap_close_pipe(c);
		c->pid = 0;
		c->job = NULL;
		return -1;
	}
	dlog(FS_LOG_INFO, "snapshot at %llu: child %d writes it", (unsigned long long)job->index,
	     (int)pid);
	return 0;

in_loop:
	/* the old way, still correct: the loop stalls while the job runs */
	c->pid = -1;
	c->inline_ok = job->run(job) == 0;
	event_active(c->reap, EV_TIMEOUT, 0);
	return 0;
}

/* Shutdown: a running child is killed and reaped; the node then removes its temporary file. */
static void snap_stop(struct daemon *d)
{
	struct snap_child *c = &d->snap;

	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
		dlog(FS_LOG_INFO, "snapshot child %d stopped", (int)c->pid);
	}
	c->pid = 0;
	c->job = NULL;
	snap_close_pipe(c);
	if (c->reap) {
		event_free(c->reap);
		c->reap = NULL;
	}
}

/* --- transport callbacks ------------------------------------------------------------------------ */

static void on_msg(void *ctx, const struct raft_msg *m)
{
	struct daemon *d = ctx;

	if (d->trace_msgs)
		dlog(FS_LOG_DEBUG, "recv %s from %u term %llu", raft_msg_type_name(m->type),
		     m->from, (unsigned long long)m->term);
	kv_node_recv(d->node, m);
	check_failed(d);
}

static void on_app(void *ctx, uint32_t from, const void *buf, size_t len)
{
	struct daemon *d = ctx;

	kv_node_recv_app(d->node, from, buf, len);
	check_failed(d);
}

static int on_fill_snapshot(void *ctx, uint64_t index, uint64_t offset, void *buf, size_t len)
{
	struct daemon *d = ctx;

	return kv_node_fill_snapshot(d->node, index, offset, buf, len);
}

/* --- client connections ------------------------------------------------------------------------- */

static void on_client(void *ctx, struct bufferevent *bev, const struct raft_transport_client *who)
{
	struct daemon *d = ctx;

	fs_clients_accept(d->clients, bev, who);
}

static int client_identity(void *ctx, const char *cn, uint32_t *uid, uint32_t *gid)
{
	struct daemon *d = ctx;

	return fs_options_identity(&d->opt, cn, uid, gid);
}

static void clients_after_input(void *ctx)
{
	check_failed(ctx);
}

/* --- ticks, signals, shutdown ------------------------------------------------------------------- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	kv_node_tick(d->node);
	check_failed(d);
	if (d->stopping && (!kv_node_is_leader(d->node) || mono_ms() >= d->stop_deadline_ms)) {
		if (kv_node_is_leader(d->node))
			dlog(FS_LOG_WARN, "leadership transfer did not finish in time; stopping");
		event_base_loopexit(d->base, NULL);
	}
}

/* A leader hands over leadership first; tick_cb ends the loop, run() then unmounts. */
static void begin_stop(struct daemon *d, const char *why)
{
	d->stopping = true;
	fs_clients_stopping(d->clients);
	d->stop_deadline_ms = mono_ms() + SHUTDOWN_MAX_MS;
	dlog(FS_LOG_INFO, "%s: stopping", why);
	if (kv_node_is_leader(d->node)) {
		dlog(FS_LOG_INFO, "handing over leadership first");
		kv_node_transfer(d->node);
	}
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)what;
	if (d->stopping) {
		dlog(FS_LOG_INFO, "second signal: stopping now");
		event_base_loopexit(d->base, NULL);
		return;
	}
	begin_stop(d, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* --log-file again, by name: after logrotate moved the old file away, lines go to a new one. */
static void reopen_log(struct daemon *d)
{
	int fd;

	if (!d->log_to_file)
		return;
	fd = open(d->opt.log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
		dlog(FS_LOG_WARN, "SIGHUP: --log-file=%s: %s; logging on to the old file",
		     d->opt.log_file, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	dlog(FS_LOG_INFO, "SIGHUP: log file reopened");
}

/* SIGHUP: the log file is reopened (logrotate) and the TLS files are read again (certificate
 * rotation): new connections use them; a file that fails to load keeps the old ones. */
static void sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	char err[RAFT_TLS_ERRMSG_BYTES + 2 * RAFT_TLS_PATH_BYTES];

	(void)sig;
	(void)what;
	reopen_log(d);
	if (!d->tls)
		return;
	if (raft_tls_reload(d->tls, err, sizeof(err)) != 0)
		dlog(FS_LOG_ERROR, "SIGHUP: TLS files not reloaded, the old ones stay: %s", err);
	else
		dlog(FS_LOG_INFO, "SIGHUP: TLS certificate, key and CA files reloaded");
}

/* fusermount3 -u (or an abort) took the mount away: stop as on SIGTERM, exit 0. */
static void on_unmounted(void *ctx)
{
	struct daemon *d = ctx;

	if (!d->stopping)
		begin_stop(d, "the mount went away");
}

/* --- start -------------------------------------------------------------------------------------- */

/* Makes path absolute in place (the daemon leaves the current directory behind): 0 or -1. */
static int make_absolute(char *path, size_t cap, const char *what)
{
	char cwd[PATH_MAX], abs[PATH_MAX];

	if (path[0] == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd)) ||
	    (size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, path) >= sizeof(abs) ||
	    strlen(abs) >= cap) {
		dlog(FS_LOG_ERROR, "%s %s: cannot make the path absolute", what, path);
		return -1;
	}
	strcpy(path, abs);
	return 0;
}

/*
 * The data directory exists (made 0700 if not) and takes a write: a probe file is created,
 * written, fdatasynced and removed before the node reports anything, so that a read-only or
 * foreign directory is refused at once instead of stopping the node at its first persist.
 */
static int make_data_dir(char *path, size_t cap)
{
	static const char probe_bytes[512];
	char probe[PATH_MAX];
	int fd, err = 0;

	if (make_absolute(path, cap, "data directory") != 0)
		return -1;
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		dlog(FS_LOG_ERROR, "create data directory %s: %s", path, strerror(errno));
		return -1;
	}
	if ((size_t)snprintf(probe, sizeof(probe), "%s/.raftfs-probe.%ld", path, (long)getpid()) >=
	    sizeof(probe)) {
		dlog(FS_LOG_ERROR, "data directory %s: path too long", path);
		return -1;
	}
	fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		dlog(FS_LOG_ERROR, "data directory %s is not writable: %s", path, strerror(errno));
		return -1;
	}
	if (write(fd, probe_bytes, sizeof(probe_bytes)) != (ssize_t)sizeof(probe_bytes) ||
	    fdatasync(fd) != 0)
		err = errno ? errno : EIO;
	close(fd);
	if (unlink(probe) != 0 && !err)
		err = errno;
	if (err) {
		dlog(FS_LOG_ERROR, "data directory %s is not writable: %s", path, strerror(err));
		return -1;
	}
	return 0;
}

/*
 * Daemon mode, in two halves: daemon_start forks before anything is opened (no event base, no
 * mount, no sockets in the parent), and the parent waits until the child says it serves
 * (daemon_ready: mounted, listening) and exits 0, or until the child exits (it logged why) and
 * exits 1. So a script's `raftfs ... && use-the-mount` sees a working mount, and a start that
 * fails says so in its exit status. Returns 0 in the child, -1 when it cannot fork.
 */
static int daemon_start(struct daemon *d)
{
	int p[2], status;
	char c;
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) != 0) {
		dlog(FS_LOG_ERROR, "daemon: pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		dlog(FS_LOG_ERROR, "daemon: fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n == 1)
			_exit(0);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		_exit(WIFEXITED(status) && WEXITSTATUS(status) ? WEXITSTATUS(status) : 1);
	}
	close(p[0]);
	d->ready_fd = p[1];
	if (setsid() < 0)
		dlog(FS_LOG_WARN, "daemon: setsid: %s", strerror(errno));
	return 0;
}

/* The node serves: the waiting parent exits 0; the daemon leaves its terminal and directory. */
static void daemon_ready(struct daemon *d)
{
	int fd;

	if (d->ready_fd < 0)
		return;
	if (chdir("/") != 0)
		dlog(FS_LOG_WARN, "daemon: chdir /: %s", strerror(errno));
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		/* stdout and stderr too: a caller's pipe (raftfs ... | cat) must not stay open */
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (!d->log_to_file)
			dup2(fd, STDERR_FILENO);
		close(fd);
	}
	if (write(d->ready_fd, "R", 1) != 1)
		dlog(FS_LOG_WARN, "daemon: cannot tell the parent: %s", strerror(errno));
	close(d->ready_fd);
	d->ready_fd = -1;
}

/* Whether every node of the cluster list has a loopback address (127.0.0.0/8). */
static bool cluster_is_loopback(const struct raft_transport_config *c)
{
	for (unsigned i = 0; i < c->n_peers; i++)
		if (strncmp(c->peers[i].host, "127.", 4) != 0)
			return false;
	return true;
}

/* No TLS where the cluster leaves the machine, unless the operator says so in as many words. */
static int check_plaintext(const struct daemon *d)
{
	if (fs_options_tls(&d->opt) || cluster_is_loopback(&d->tcfg))
		return 0;
	if (d->opt.insecure_plaintext) {
		dlog(FS_LOG_WARN,
		     "--insecure-plaintext: peers and clients are not authenticated: "
		     "anyone who reaches this port owns the cluster");
		return 0;
	}
	dlog(FS_LOG_ERROR,
	     "the cluster list has addresses that are not loopback: give --cert-file, --key-file "
	     "and --peer-trusted-ca-file (and --trusted-ca-file for clients), or "
	     "--insecure-plaintext to run without TLS anyway");
	return -1;
}

static int copy_tls_path(char *dst, const char *src)
{
	if (strlen(src) >= RAFT_TLS_PATH_BYTES)
		return -1;
	strcpy(dst, src);
	return 0;
}

/* The node's TLS files, loaded (none given: d->tls stays NULL). */
static int load_tls(struct daemon *d)
{
	struct raft_tls_files f;
	char err[RAFT_TLS_ERRMSG_BYTES + 2 * RAFT_TLS_PATH_BYTES];

	if (!fs_options_tls(&d->opt))
		return 0;
	memset(&f, 0, sizeof(f));
	if (copy_tls_path(f.cert, d->opt.cert_file) || copy_tls_path(f.key, d->opt.key_file) ||
	    copy_tls_path(f.ca, d->opt.peer_ca_file) ||
	    copy_tls_path(f.client_ca, d->opt.client_ca_file)) {
		dlog(FS_LOG_ERROR, "TLS: a file name is too long");
		return -1;
	}
	if (raft_tls_new(RAFT_TLS_NODE, &f, &d->tls, err, sizeof(err)) != 0) {
		dlog(FS_LOG_ERROR, "TLS: %s", err);
		return -1;
	}
	if (!raft_tls_serves_clients(d->tls))
		dlog(FS_LOG_INFO, "TLS without --trusted-ca-file: no client connections");
	d->tcfg.tls = d->tls;
	return 0;
}

/*
 * The descriptors of the limits: the soft RLIMIT_NOFILE is raised to the hard one (at start,
 * main), and what --max-clients may use is what is left once the connections waiting for a
 * hello and a reserve for peers, the data directory, the mount and the loop are counted. A
 * --max-clients over that is lowered (with a warning), so that a crowd of clients can never take
 * the descriptors a peer's connection needs.
 */
#define FS_RESERVED_FDS (64u + 2u * RAFT_MAX_NODES)

static int check_fd_budget(struct daemon *d)
{
	struct rlimit rl;
	uint64_t need =
	        (uint64_t)d->opt.max_clients + RAFT_TRANSPORT_MAX_PENDING_CONNS + FS_RESERVED_FDS;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_cur <= RAFT_TRANSPORT_MAX_PENDING_CONNS + FS_RESERVED_FDS) {
		dlog(FS_LOG_ERROR, "only %llu file descriptors (RLIMIT_NOFILE): at least %u needed",
		     (unsigned long long)rl.rlim_cur,
		     RAFT_TRANSPORT_MAX_PENDING_CONNS + FS_RESERVED_FDS + 1);
		return -1;
	}
	dlog(FS_LOG_WARN, "--max-clients=%u lowered to %llu: RLIMIT_NOFILE is %llu",
	     d->opt.max_clients,
	     (unsigned long long)(rl.rlim_cur - RAFT_TRANSPORT_MAX_PENDING_CONNS - FS_RESERVED_FDS),
	     (unsigned long long)rl.rlim_cur);
	d->opt.max_clients =
	        (unsigned)(rl.rlim_cur - RAFT_TRANSPORT_MAX_PENDING_CONNS - FS_RESERVED_FDS);
	return 0;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int start_clients(struct daemon *d)
{
	struct fs_clients_config cc = {
	        .max_clients = d->opt.max_clients,
	        .max_input_bytes = (size_t)fs_options_client_input_bytes(&d->opt),
	        .max_total_input_bytes = (size_t)fs_options_total_client_input_bytes(&d->opt),
	        .idle_timeout_ms = d->opt.client_idle_timeout_s * 1000u,
	        .ctx = d,
	        .identity = client_identity,
	        .after_input = clients_after_input,
	        .log = log_cb,
	};

	if (fs_clients_new(d->base, d->node, &cc, &d->clients) != 0) {
		dlog(FS_LOG_ERROR, "cannot set up client connections");
		return -1;
	}
	return 0;
}

/*
 * The loop's event base. epoll's changes are gathered and made once per loop turn (libevent's
 * changelist): a TLS bufferevent arms its write event for every write and disarms it once the
 * output is empty (raft/transport.c, tls_write_now), which is otherwise two epoll_ctl calls per
 * frame; gathered within the turn they cancel out. Its caveat, descriptors shared through dup(),
 * does not arise here: no socket, pipe or /dev/fuse descriptor of the loop is duplicated.
 */
static struct event_base *new_base(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (!cfg)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

static int run(struct daemon *d)
{
	struct kv_node_config ncfg;
	struct kv_node_env env;
	struct raft_transport_cbs cbs;
	struct timeval tv;
	char err[512];
	bool self_found = false;
	int rv = 1;

	if (raft_transport_parse_cluster(d->opt.cluster, &d->tcfg, err, sizeof(err)) != RAFT_OK) {
		dlog(FS_LOG_ERROR, "--cluster: %s", err);
		return 1;
	}
	d->tcfg.self_id = d->opt.id;
	kv_node_config_default(&ncfg);
	ncfg.id = d->opt.id;
	ncfg.conf.n = d->tcfg.n_peers;
	for (unsigned i = 0; i < d->tcfg.n_peers; i++) {
		ncfg.conf.ids[i] = d->tcfg.peers[i].id;
		self_found = self_found || d->tcfg.peers[i].id == d->opt.id;
	}
	if (!self_found) {
		dlog(FS_LOG_ERROR, "--id=%u is not in --cluster", d->opt.id);
		return 1;
	}
	if (check_plaintext(d) != 0 || check_fd_budget(d) != 0)
		return 1;
	if (make_data_dir(d->opt.data, sizeof(d->opt.data)) != 0)
		return 1;
	if (d->opt.mountpoint[0] &&
	    make_absolute(d->opt.mountpoint, sizeof(d->opt.mountpoint), "mountpoint") != 0)
		return 1;
	if (d->opt.mountpoint[0]) {
		/* before anything else: a mountpoint raftfs must not use is refused at once */
		enum fs_guard guard;
		if (fs_mountpoint_prepare(d->opt.mountpoint, log_cb, d, &guard, err, sizeof(err)) !=
		    0) {
			dlog(FS_LOG_ERROR, "mount %s: %s", d->opt.mountpoint, err);
			return 1;
		}
	}
	ncfg.dir = d->opt.data;
	ncfg.storage.log = log_cb;
	ncfg.store.settings.max_value_bytes = d->opt.max_value_bytes;
	ncfg.snapshot_bytes = d->opt.snapshot_bytes;
	ncfg.snapshot_trailing = d->opt.snapshot_trailing;
	ncfg.election_ticks = d->opt.election_ticks;
	ncfg.heartbeat_ticks = 1;
	memset(&env, 0, sizeof(env));
	env.ctx = d;
	env.random = env_random;
	env.now_ms = env_now_ms;
	env.realtime_ms = env_realtime_ms;
	env.send = env_send;
	env.send_app = env_send_app;
	env.log = log_cb;
	env.schedule = env_schedule;
	env.flush_sends = env_flush_sends;
	env.snapshot_start = env_snapshot_start;
	d->snap.fd = -1;
	if (getrandom(&d->rng, sizeof(d->rng), 0) != sizeof(d->rng))
		d->rng = (uint64_t)mono_ms() ^ ((uint64_t)getpid() << 32);

	/* the daemon's child opens everything: nothing is shared across the fork */
	if (!d->opt.foreground && daemon_start(d) != 0)
		return 1;
	d->base = new_base();
	if (!d->base) {
		dlog(FS_LOG_ERROR, "event_base_new failed");
		return 1;
	}
	d->flush = event_new(d->base, -1, 0, flush_cb, d);
	d->snap.reap = evtimer_new(d->base, snap_reap_cb, d);
	if (!d->flush || !d->snap.reap) {
		dlog(FS_LOG_ERROR, "cannot create events");
		goto out_base;
	}
	if (load_tls(d) != 0)
		goto out_base;
	if (kv_node_open(&ncfg, &env, &d->node, err, sizeof(err)) != RAFT_OK) {
		dlog(FS_LOG_ERROR, "cannot start: %s", err);
		goto out_base;
	}
	if (start_clients(d) != 0)
		goto out_node;
	memset(&cbs, 0, sizeof(cbs));
	cbs.ctx = d;
	cbs.recv_msg = on_msg;
	cbs.recv_app = on_app;
	cbs.fill_snapshot = on_fill_snapshot;
	cbs.on_client = on_client;
	cbs.log = log_cb;
	if (raft_transport_new(d->base, &d->tcfg, &cbs, &d->transport, err, sizeof(err)) !=
	    RAFT_OK) {
		dlog(FS_LOG_ERROR, "cannot start node %u: %s", d->opt.id, err);
		goto out_node;
	}
	d->tick = event_new(d->base, -1, EV_PERSIST, tick_cb, d);
	d->sig_term = evsignal_new(d->base, SIGTERM, signal_cb, d);
	d->sig_int = evsignal_new(d->base, SIGINT, signal_cb, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, sighup_cb, d);
	if (!d->tick || !d->sig_term || !d->sig_int || !d->sig_hup) {
		dlog(FS_LOG_ERROR, "cannot create events");
		goto out_events;
	}
	tv.tv_sec = d->opt.tick_ms / 1000;
	tv.tv_usec = (d->opt.tick_ms % 1000) * 1000;
	event_add(d->tick, &tv);
	event_add(d->sig_term, NULL);
	event_add(d->sig_int, NULL);
	event_add(d->sig_hup, NULL);
	if (d->opt.mountpoint[0]) {
		struct fs_fuse_hooks hooks = {.ctx = d, .unmounted = on_unmounted, .log = log_cb};
		if (fs_fuse_start(d->base, d->node, &d->opt, &hooks, &d->fuse, err, sizeof(err)) !=
		    0) {
			dlog(FS_LOG_ERROR, "mount %s: %s", d->opt.mountpoint, err);
			goto out_events;
		}
	}
	dlog(FS_LOG_INFO, "node %u serving cluster %s, data in %s", d->opt.id, d->opt.cluster,
	     d->opt.data);
	daemon_ready(d);
	event_base_dispatch(d->base);
	rv = d->exit_code;
	dlog(rv ? FS_LOG_ERROR : FS_LOG_INFO, "node %u stopped", d->opt.id);

out_events:
	fs_fuse_stop(d->fuse); /* before the node closes: it cancels requests in flight */
	if (d->tick)
		event_free(d->tick);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
out_node:
	snap_stop(d); /* before the node closes: its temporary file goes with it */
	/* then the node, before the transport: closing it answers every request it still holds,
	 * and the answers to requests a peer forwarded here are sent on the transport */
	kv_node_close(d->node);
	d->node = NULL;
	/* every request is answered now: the answers leave, then the connections close */
	if (d->clients)
		fs_clients_write(d->clients);
	fs_clients_free(d->clients);
	d->clients = NULL;
	raft_transport_free(d->transport);
	d->transport = NULL;
out_base:
	snap_stop(d);
	if (d->flush)
		event_free(d->flush);
	raft_tls_free(d->tls);
	d->tls = NULL;
	event_base_free(d->base);
	return rv;
}

int main(int argc, char **argv)
{
	static struct daemon d;
	char err[1024];

	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	d.ready_fd = -1;
	fs_options_default(&d.opt);
	if (fs_options_parse(argc, argv, &d.opt, err, sizeof(err)) != 0) {
		fprintf(stderr, "raftfs: %s\n(see raftfs --help)\n", err);
		return 1;
	}
	if (d.opt.help) {
		fs_options_usage(argv[0], stdout);
		return 0;
	}
	if (d.opt.version) {
		printf("raftfs %s\n", RAFTFS_VERSION);
		return 0;
	}
	if (d.opt.unguard) {
		if (!d.opt.mountpoint[0]) {
			fprintf(stderr, "raftfs: --unguard needs a MOUNTPOINT\n");
			return 1;
		}
		if (fs_mountpoint_unguard(d.opt.mountpoint, err, sizeof(err)) != 0) {
			fprintf(stderr, "raftfs: %s\n", err);
			return 1;
		}
		return 0;
	}
	if (fs_options_check(&d.opt, err, sizeof(err)) != 0) {
		fprintf(stderr, "raftfs: %s\n(see raftfs --help)\n", err);
		return 1;
	}
	d.trace_msgs = getenv("RAFTFS_TRACE_MSGS") != NULL;
	if (d.opt.log_file[0]) {
		int fd = open(d.opt.log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
			fprintf(stderr, "raftfs: --log-file=%s: %s\n", d.opt.log_file,
			        strerror(errno));
			return 1;
		}
		close(fd);
		d.log_to_file = true;
	}
	the_daemon = &d;
	return run(&d);
}
