/* nemesis_client.c - the clients of tests/nemesis.test.sh: histories through mounts and the clerk. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kv/clerk.h"
#include "tests/lib/lincheck.h"
#include "tests/lib/nemesis.h"

/*
 * Commands, one per phase of the nemesis test, sharing one history file (the format of
 * tests/lib/lincheck.h, times in CLOCK_MONOTONIC nanoseconds so that the phases, run as separate
 * processes, share one clock):
 *
 *   run    Makes the keys k0..kK-1 exist (a clerk Put of "" each, recorded), then runs for S
 *          seconds: --mount-clients threads on every --mount directory and --clerk-clients
 *          threads on the clerk, each a closed loop of random Get, Append and Put on random keys
 *          with values unique in the run ("p<client>.<n>;" and "a<client>.<n>;"), each operation
 *          recorded when it ends; --rate caps the operations per second of all threads together
 *          (the checker's time grows with the history). Per mount also --fd-clients descriptor
 *          clients (fd_op: pwrite "w<client>.<n>;" at an offset, ftruncate, pread, O_APPEND
 *          writes, all on two descriptors kept open) on the rotated keys f<slot>.<generation>
 *          (--fd-keys slots, a generation every --rotate-seconds, all made by the setup), and
 *          --fork-clients fork clients (fork_put: O_TRUNC open, fork and exec while holding it,
 *          write, close); mount, clerk and fork clients send ROTATED_SHARE_PERCENT of their
 *          operations to the rotated keys, the rest to k0..kK-1.
 *   final  Waits until every node of --clerk reports the same applied index, then reads every key
 *          through every --mount and through a clerk that knows only that node, records the
 *          reads, and fails when two of them differ or the nodes' applied index or key count
 *          differ.
 *   audit  Reads the history back: operations per minute by kind and outcome, and the direct
 *          checks of the final values: every token in them was written, none twice, a Put's
 *          token only first; no acknowledged Append or Put that nothing could have overwritten
 *          is missing. (Linearizability itself is tests/test_lincheck --check.)
 *   fork-trunc  The regression of a child's close committing the opener's O_TRUNC: see
 *          cmd_fork_trunc().
 *   put    One Put of --value to --key through one --mount, made as the run makes it, printing
 *          what each call returned ("open ok write ETIMEDOUT close ETIMEDOUT"): for the
 *          regression checks of the test script. No history. With --after=FILE it prints
 *          "opened" once the file is open and waits for FILE to exist before writing.
 *
 * Through a mount, Put is open(O_WRONLY|O_CREAT|O_TRUNC) + write + close (one Put of the bytes:
 * the keys exist, DESIGN.md 6), Append is open(O_WRONLY|O_APPEND|O_CREAT) + write + close, Get
 * is open + ONE read + close (ENOENT reads as ""; see read_value()). A write that failed with ETIMEDOUT was
 * certainly not applied (raftfs(8)): fail, unless --timedout-unknown; any other error after the
 * write was sent (EIO, ENOTCONN, ECONNABORTED, EINTR...) leaves it unknown; an error before it
 * (open) is a failure. An O_TRUNC handle whose write failed still truncates at close (a Put of
 * "" at flush, as POSIX's O_TRUNC does at open): that close is recorded as its own Put of "".
 * Through the clerk: APPLIED with KV_OK is ok, NOT_APPLIED (or another status) a failure,
 * UNKNOWN unknown. A Get that did not return a value is a failure (the checker drops it).
 *
 * A thread opens its mount's root directory once (O_PATH) and works relative to it, so that a
 * mount that goes away (the node killed) can never send it to the directory underneath; after
 * ENOTCONN or ECONNABORTED it opens the root again, and uses it only once fstatfs says it is a
 * FUSE mount. A node without quorum bounds each request by its mount's timeout option; in case
 * one hangs anyway, a watchdog aborts the FUSE connection of any request older than
 * --stuck-seconds (/sys/fs/fuse/connections/N/abort), says so, and the command exits 3.
 *
 * Exit status: 0 success, 1 a check failed, 2 usage or setup error, 3 a request hung.
 */

#define MAX_MOUNTS 9
#define MAX_KEYS 64 /* --keys */
#define MAX_FINAL_KEYS 4096 /* keys read back at the end: --keys and the rotated ones */
#define MAX_CLIENTS_PER_SOURCE 64
#define MAX_FD_CLIENTS 8 /* --fd-clients and --fork-clients, per mount */
#define MAX_FD_SLOTS 8 /* --fd-keys */
#define KEY_BYTES NEMESIS_KEY_BYTES
#define VALUE_BYTES 48
/* A Get is ONE read(2) of this many bytes from offset 0 (every read(2) is one linearizable Read,
 * DESIGN.md 6; two reads could join two versions). It is below the kernel's largest FUSE read
 * (128 KiB), so the read is one request; a value that fills it is not read whole: the Get fails. */
#define GET_READ_BYTES ((size_t)64 << 10)
#define DEFAULT_KEYS 8
#define DEFAULT_FD_KEYS 2
#define DEFAULT_ROTATE_SECONDS 5
#define DEFAULT_TIMEOUT_MS 5000u
#define DEFAULT_STUCK_SECONDS 30
#define DEFAULT_WAIT_SECONDS 30
#define CLIENT_FD_BASE NEMESIS_CLIENT_FD_BASE /* client ids: tests/lib/nemesis.h */
#define CLIENT_FORK_BASE NEMESIS_CLIENT_FORK_BASE
#define CLIENT_CLERK_BASE NEMESIS_CLIENT_CLERK_BASE
#define CLIENT_SETUP NEMESIS_CLIENT_SETUP
#define CLIENT_FINAL_BASE NEMESIS_CLIENT_FINAL_BASE
#define CLIENT_FINAL_CLERK_BASE NEMESIS_CLIENT_FINAL_CLERK_BASE
#define SETUP_SECONDS 30
#define FINAL_READ_ATTEMPTS 10
#define PROGRESS_EVERY_S 10
#define REOPEN_PAUSE_MS 100
#define AFTER_WAIT_SECONDS 60
#define PACE_SLACK_NS (NS_PER_S / 10) /* --rate: how far behind its schedule a run may fall */
#define NS_PER_MS ((int64_t)1000000)
#define NS_PER_S NEMESIS_NS_PER_S
#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

enum exit_code { EXIT_OK = 0, EXIT_CHECK = 1, EXIT_USAGE = 2, EXIT_HUNG = 3 };

struct config {
	const char *history;
	const char *clerk_list;
	const char *bind;
	const char *ready;
	const char *key; /* put */
	const char *value; /* put */
	const char *after; /* put: write once this file exists */
	const char *mounts[MAX_MOUNTS];
	int n_mounts;
	int mount_clients;
	int clerk_clients;
	int fd_clients; /* per mount: long-lived descriptors, pwrite, ftruncate, pread */
	int fork_clients; /* per mount: O_TRUNC open, fork (and exec), write, close */
	int fd_keys; /* slots of the rotated keys f<slot>.<generation> */
	int rotate_seconds; /* a generation of rotated keys lasts this long */
	int keys;
	int seconds;
	int wait_seconds;
	int stuck_seconds;
	int rate; /* operations per second over all clients, 0: as fast as they go */
	unsigned timeout_ms;
	uint64_t seed;
	bool timedout_unknown;
};

/* The history file, shared by the threads: one line per operation, flushed at once. */
struct recorder {
	pthread_mutex_t mu;
	FILE *f;
	bool failed;
	atomic_long ops[3]; /* by enum lin_status */
};

struct worker {
	const struct config *cfg;
	struct recorder *rec;
	enum nemesis_client_kind kind;
	int client;
	const char *dir; /* a mount, or NULL for a clerk client */
	int root; /* O_PATH fd of the mount's root, -1 when none */
	atomic_uint conn; /* FUSE connection of root (0: none) */
	atomic_llong busy_since_ns; /* start of the current mount request, 0 when none */
	atomic_bool aborted; /* the watchdog aborted the current request */
	struct kv_clerk *clerk;
	uint64_t rng;
	unsigned long counter;
	pthread_t tid;
	/* NEMESIS_FD: the descriptors it keeps on fd_key, -1 when closed */
	int fd_rw; /* O_RDWR: pwrite, ftruncate, pread */
	int fd_app; /* O_WRONLY|O_APPEND: write */
	char fd_key[KEY_BYTES];
	int fd_gen; /* the generation of fd_key */
	size_t fd_len; /* the size its last Get saw, for choosing offsets */
};

static atomic_bool stop_flag;
static atomic_int hangs;
static atomic_llong next_slot_ns; /* --rate: when the next operation may start */
static int64_t run_start_ns; /* generation 0 of the rotated keys starts here */

/* --- small helpers ------------------------------------------------------------------------------ */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {(time_t)(ns / NS_PER_S), (long)(ns % NS_PER_S)};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void sleep_ms(long ms)
{
	sleep_ns((int64_t)ms * NS_PER_MS);
}

/* splitmix64: a small seeded generator per thread. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Percent of the other clients' operations that go to a rotated key of the current generation. */
#define ROTATED_SHARE_PERCENT 15

/* The generations of rotated keys a run of cfg makes (setup_keys creates them all). */
static int rotated_generations(const struct config *cfg)
{
	return cfg->fd_keys > 0 ? cfg->seconds / cfg->rotate_seconds + 1 : 0;
}

/* The keys of a run of cfg. A rotated key's history stays a few hundred operations long, which
 * the checker needs once WriteAt and Truncate keep it from dropping unknown writes (lincheck.h). */
static struct nemesis_keys run_keys(const struct config *cfg)
{
	return (struct nemesis_keys){.keys = cfg->keys,
	                             .fd_keys = cfg->fd_keys,
	                             .generations = rotated_generations(cfg)};
}

static int current_generation(const struct config *cfg)
{
	int64_t g = (now_ns() - run_start_ns) / (cfg->rotate_seconds * NS_PER_S);
	int last = rotated_generations(cfg) - 1;

	return g < 0 ? 0 : g > last ? last : (int)g;
}

/* The key of the next operation of a mount, clerk or fork client (r: random bits). */
static void pick_key(const struct worker *wk, uint64_t r, char *key)
{
	struct nemesis_keys k = run_keys(wk->cfg);

	if (wk->cfg->fd_keys > 0 && (r >> 40) % 100 < ROTATED_SHARE_PERCENT)
		nemesis_rotated_name((int)((r >> 8) % (uint64_t)wk->cfg->fd_keys),
		                     current_generation(wk->cfg), key);
	else
		nemesis_key_name(&k, (int)((r >> 8) % (uint64_t)wk->cfg->keys), key);
}

static void record(struct recorder *rec, const struct lin_op *op)
{
	pthread_mutex_lock(&rec->mu);
	if (lin_op_write(rec->f, op) != LIN_OK || fflush(rec->f) != 0)
		rec->failed = true;
	pthread_mutex_unlock(&rec->mu);
	atomic_fetch_add(&rec->ops[op->status], 1);
}

/* Records a Get: ok with output, or failed. */
static void record_get(struct recorder *rec, int client, const char *key, int64_t call, bool ok,
                       const char *out, size_t out_len)
{
	struct lin_op op = {.client = client, .kind = LIN_GET, .key = key, .call_time = call};

	op.status = ok ? LIN_STATUS_OK : LIN_STATUS_FAILED;
	op.output = ok ? out : NULL;
	op.output_len = ok ? out_len : 0;
	op.return_time = now_ns();
	record(rec, &op);
}

static void record_write_at(struct recorder *rec, int client, enum lin_kind kind, const char *key,
                            uint64_t offset, const char *value, int64_t call, int64_t ret,
                            enum lin_status status)
{
	struct lin_op op = {.client = client,
	                    .kind = kind,
	                    .status = status,
	                    .key = key,
	                    .value = value,
	                    .value_len = value ? strlen(value) : 0,
	                    .offset = offset,
	                    .call_time = call,
	                    .return_time = ret};

	record(rec, &op);
}

static void record_write(struct recorder *rec, int client, enum lin_kind kind, const char *key,
                         const char *value, int64_t call, int64_t ret, enum lin_status status)
{
	record_write_at(rec, client, kind, key, 0, value, call, ret, status);
}

/* --- mounts --------------------------------------------------------------------------------------- */

/* The outcome of a write whose request reached the filesystem and failed with err. */
static enum lin_status write_status(const struct worker *wk, int err)
{
	if (err == ETIMEDOUT && !wk->cfg->timedout_unknown)
		return LIN_STATUS_FAILED; /* "certainly not applied" (raftfs(8)) */
	return LIN_STATUS_UNKNOWN;
}

static bool is_connection_lost(int err)
{
	return err == ENOTCONN || err == ECONNABORTED || err == ENODEV || err == ESTALE;
}

/* A request on the mount starts (the watchdog watches it) or ends. */
static void busy_begin(struct worker *wk)
{
	atomic_store(&wk->aborted, false);
	atomic_store(&wk->busy_since_ns, (long long)now_ns());
}

static void busy_end(struct worker *wk)
{
	atomic_store(&wk->busy_since_ns, 0);
}

static void root_close(struct worker *wk)
{
	if (wk->root >= 0)
		close(wk->root);
	wk->root = -1;
	atomic_store(&wk->conn, 0);
}

/*
 * Makes wk->root the root of a live FUSE mount on wk->dir: 0, or -1 while there is none (the
 * node is down or its mount not back yet: then the directory underneath must not be used).
 */
static int root_open(struct worker *wk)
{
	struct statx stx;
	struct statfs sfs;
	int fd, rc;

	if (wk->root >= 0)
		return 0;
	fd = open(wk->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* the device number names the FUSE connection; DONT_SYNC: no request to the daemon */
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &stx) != 0) {
		close(fd);
		return -1;
	}
	atomic_store(&wk->conn, stx.stx_dev_major == 0 ? stx.stx_dev_minor : 0);
	busy_begin(wk);
	rc = fstatfs(fd, &sfs); /* answered locally by raftfs: never waits for the cluster */
	busy_end(wk);
	if (rc != 0 || sfs.f_type != FUSE_SUPER_MAGIC) {
		close(fd);
		atomic_store(&wk->conn, 0);
		return -1;
	}
	wk->root = fd;
	return 0;
}

/* After an error err from the mount: forget a root whose connection is gone. */
static void root_check(struct worker *wk, int err)
{
	if (is_connection_lost(err))
		root_close(wk);
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Put or Append through the mount. */
static void mount_write(struct worker *wk, enum lin_kind kind, const char *key, const char *value)
{
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (kind == LIN_PUT ? O_TRUNC : O_APPEND);
	int64_t call = now_ns(), close_call;
	int fd, err, rc;

	busy_begin(wk);
	fd = openat(wk->root, key, flags, 0644);
	if (fd < 0) {
		err = errno;
		busy_end(wk);
		/* nothing was written: the key exists, so the open only looked it up */
		record_write(wk->rec, wk->client, kind, key, value, call, now_ns(),
		             LIN_STATUS_FAILED);
		root_check(wk, err);
		return;
	}
	if (write_all(fd, value, strlen(value)) == 0) {
		close(fd); /* nothing left to flush: the write was committed */
		busy_end(wk);
		record_write(wk->rec, wk->client, kind, key, value, call, now_ns(), LIN_STATUS_OK);
		return;
	}
	err = errno;
	close_call = now_ns();
	record_write(wk->rec, wk->client, kind, key, value, call, close_call,
	             write_status(wk, err));
	busy_end(wk);
	busy_begin(wk);
	rc = close(fd);
	busy_end(wk);
	if (kind == LIN_PUT) {
		/* the O_TRUNC handle was not written: its flush at close is a Put of "", or an
		 * earlier flush of a copy a fork client's child inherited and closed (after the
		 * failed write, the first flush commits it: fs/fuse.c fs_flush), so it may come
		 * any time after the open */
		int cerr = rc == 0 ? 0 : errno;
		enum lin_status st = rc == 0 ? LIN_STATUS_OK : write_status(wk, cerr);

		record_write(wk->rec, wk->client, LIN_PUT, key, "", call, now_ns(), st);
		root_check(wk, cerr);
	}
	root_check(wk, err);
}

/*
 * A Get on fd: ONE pread of GET_READ_BYTES from offset 0 into *buf (allocated on first use, cap
 * bytes). Reading on to the end would be a second Read that may see another version (the old
 * read-to-EOF loop joined "p5.1176;" to the tail "2;" of a longer value). 0, or -1 with errno
 * (EFBIG for a value that filled the buffer: not read whole).
 */
static int read_value(int fd, char **buf, size_t *cap, size_t *len)
{
	ssize_t n;

	if (*cap < GET_READ_BYTES) {
		char *p = realloc(*buf, GET_READ_BYTES);

		if (!p) {
			errno = ENOMEM;
			return -1;
		}
		*buf = p;
		*cap = GET_READ_BYTES;
	}
	n = pread(fd, *buf, GET_READ_BYTES, 0);
	if (n < 0)
		return -1;
	if ((size_t)n == GET_READ_BYTES) {
		errno = EFBIG;
		return -1;
	}
	*len = (size_t)n;
	return 0;
}

/* Get through a mount root: true with the value in *buf (len bytes). */
static bool root_get(struct worker *wk, const char *key, char **buf, size_t *cap, size_t *len,
                     int *err)
{
	int fd, rc;

	busy_begin(wk);
	fd = openat(wk->root, key, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err = errno;
		busy_end(wk);
		*len = 0;
		return *err == ENOENT; /* a missing key reads as "" */
	}
	rc = read_value(fd, buf, cap, len);
	*err = rc == 0 ? 0 : errno;
	close(fd);
	busy_end(wk);
	return rc == 0;
}

static void mount_get(struct worker *wk, const char *key, char **buf, size_t *cap)
{
	int64_t call = now_ns();
	size_t len;
	int err;
	bool ok = root_get(wk, key, buf, cap, &len, &err);

	record_get(wk->rec, wk->client, key, call, ok, *buf, len);
	if (!ok)
		root_check(wk, err);
}

/* --- descriptor clients: one O_RDWR and one O_APPEND descriptor kept open ------------------- */

#define FD_MAX_OFFSET 256 /* pwrite offsets stay below it, so values stay small */
#define FD_MAX_TRUNCATE 64 /* ftruncate sizes below it */
#define FD_GROW_LIMIT 1024 /* a value past this many bytes is truncated next */

static void fd_close_all(struct worker *wk)
{
	if (wk->fd_rw >= 0)
		close(wk->fd_rw); /* handles without a pending truncation: no request */
	if (wk->fd_app >= 0)
		close(wk->fd_app);
	wk->fd_rw = wk->fd_app = -1;
}

/*
 * Opens the two descriptors on the current generation's key of a random slot (the keys exist:
 * setup_keys made them, so O_CREAT only looks them up). 0, or -1 when the mount refused.
 */
static int fd_open_all(struct worker *wk)
{
	uint64_t r = rng_next(&wk->rng);
	int cloexec = (r & 1) ? O_CLOEXEC : 0, err;

	wk->fd_gen = current_generation(wk->cfg);
	nemesis_rotated_name((int)((r >> 8) % (uint64_t)wk->cfg->fd_keys), wk->fd_gen, wk->fd_key);
	busy_begin(wk);
	wk->fd_rw = openat(wk->root, wk->fd_key, O_RDWR | O_CREAT | cloexec, 0644);
	err = errno;
	if (wk->fd_rw >= 0) {
		wk->fd_app =
		        openat(wk->root, wk->fd_key, O_WRONLY | O_APPEND | O_CREAT | cloexec, 0644);
		err = errno;
	}
	busy_end(wk);
	if (wk->fd_rw < 0 || wk->fd_app < 0) {
		fd_close_all(wk);
		root_check(wk, err);
		return -1;
	}
	wk->fd_len = 0;
	return 0;
}

/* After a failed call on a kept descriptor: a lost connection closes them and the root. */
static void fd_check(struct worker *wk, int err)
{
	if (is_connection_lost(err)) {
		fd_close_all(wk);
		root_close(wk);
	}
}

/* A write through a kept descriptor: pwrite at off (WriteAt) or write on the O_APPEND one. */
static void fd_write(struct worker *wk, enum lin_kind kind, uint64_t off)
{
	char value[VALUE_BYTES];
	size_t len = (size_t)snprintf(value, sizeof value, "%c%d.%lu;",
	                              kind == LIN_APPEND ? 'a' : 'w', wk->client, ++wk->counter);
	int64_t call = now_ns();
	ssize_t n;
	int err;

	busy_begin(wk);
	n = kind == LIN_APPEND ? write(wk->fd_app, value, len)
	                       : pwrite(wk->fd_rw, value, len, (off_t)off);
	err = errno;
	busy_end(wk);
	if (n == (ssize_t)len) {
		record_write_at(wk->rec, wk->client, kind, wk->fd_key, off, value, call, now_ns(),
		                LIN_STATUS_OK);
		if (kind == LIN_WRITE_AT && off + len > wk->fd_len)
			wk->fd_len = off + len;
		return;
	}
	if (n >= 0) { /* a short write: one request, so not expected; its effect is unknown */
		fprintf(stderr, "nemesis_client: client %d: short write (%zd of %zu) on %s\n",
		        wk->client, n, len, wk->fd_key);
		err = EIO;
	}
	record_write_at(wk->rec, wk->client, kind, wk->fd_key, off, value, call, now_ns(),
	                write_status(wk, err));
	fd_check(wk, err);
}

static void fd_truncate(struct worker *wk, uint64_t size)
{
	int64_t call = now_ns();
	enum lin_status st;
	int rc, err;

	busy_begin(wk);
	rc = ftruncate(wk->fd_rw, (off_t)size);
	err = errno;
	busy_end(wk);
	/* ENOENT: the key was missing, the Truncate refused (never here: keys are not removed) */
	st = rc == 0 ? LIN_STATUS_OK : err == ENOENT ? LIN_STATUS_FAILED : write_status(wk, err);
	record_write_at(wk->rec, wk->client, LIN_TRUNCATE, wk->fd_key, size, NULL, call, now_ns(),
	                st);
	if (rc == 0)
		wk->fd_len = (size_t)size;
	else
		fd_check(wk, err);
}

static void fd_get(struct worker *wk, char **buf, size_t *cap)
{
	int64_t call = now_ns();
	size_t len = 0;
	int rc, err;

	busy_begin(wk);
	rc = read_value(wk->fd_rw, buf, cap, &len);
	err = errno;
	busy_end(wk);
	record_get(wk->rec, wk->client, wk->fd_key, call, rc == 0, *buf, len);
	if (rc == 0)
		wk->fd_len = len;
	else
		fd_check(wk, err);
}

/*
 * One operation of a descriptor client: pwrite at the end, inside or past it (WriteAt), ftruncate
 * (Truncate), pread of the whole file (Get), a write on the O_APPEND descriptor (Append), or, now
 * and then, both descriptors closed and opened again; the key changes with the generation.
 */
static void fd_op(struct worker *wk, char **buf, size_t *cap)
{
	uint64_t r = rng_next(&wk->rng), off;
	int pick = (int)(r % 100);

	if (wk->fd_rw >= 0 && (pick >= 97 || wk->fd_gen != current_generation(wk->cfg)))
		fd_close_all(wk);
	if (wk->fd_rw < 0 && fd_open_all(wk) != 0)
		return;
	if (wk->fd_len > FD_GROW_LIMIT)
		pick = 35; /* a truncation */
	if (pick < 30) {
		switch ((r >> 8) % 3) {
		case 0:
			off = wk->fd_len; /* at the end: extends */
			break;
		case 1:
			off = wk->fd_len ? (r >> 16) % wk->fd_len : 0; /* inside */
			break;
		default:
			off = (r >> 16) % FD_MAX_OFFSET; /* anywhere: maybe past the end */
		}
		fd_write(wk, LIN_WRITE_AT, off);
	} else if (pick < 40) {
		fd_truncate(wk, (r >> 16) % FD_MAX_TRUNCATE);
	} else if (pick < 75) {
		fd_get(wk, buf, cap);
	} else {
		fd_write(wk, LIN_APPEND, 0);
	}
}

/* --- fork clients: O_TRUNC open, fork (and exec) while holding it, write, close -------------- */

/*
 * The child of a fork client: only async-signal-safe calls (the parent has threads). It execs
 * /bin/true, whose exec closes an O_CLOEXEC copy (a FLUSH from another process) and whose exit
 * closes any other; or closes its copy and exits; or exits holding it.
 */
static void fork_child(int fd, int how)
{
	static char *const argv[] = {"/bin/true", NULL};
	extern char **environ;

	if (how == 0)
		execve(argv[0], argv, environ);
	else if (how == 1)
		close(fd);
	_exit(0);
}

static void fork_reap(pid_t pid)
{
	int st;

	while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

/*
 * One Put through an O_TRUNC descriptor held across a fork: open (O_CLOEXEC or not), fork a child
 * (fork_child), maybe wait for it, then write the value and close, or close without writing (a
 * Put of ""). The one-Put promise (DESIGN.md 6): the write is ONE Put, no reader sees the file
 * empty in between, and the child's close commits nothing.
 */
static void fork_put(struct worker *wk, uint64_t r, const char *key)
{
	char value[VALUE_BYTES];
	int cloexec = (r & 1) ? O_CLOEXEC : 0, how = (int)((r >> 1) % 3);
	bool wait_first = (r >> 3) & 1, no_write = (r >> 4) % 100 < 15;
	int64_t call = now_ns(), wret = 0;
	int fd, err = 0, cerr = 0, rc;
	pid_t pid;
	bool wrote = false;

	snprintf(value, sizeof value, "p%d.%lu;", wk->client, ++wk->counter);
	if (no_write)
		value[0] = '\0';
	busy_begin(wk);
	fd = openat(wk->root, key, O_WRONLY | O_CREAT | O_TRUNC | cloexec, 0644);
	err = errno;
	busy_end(wk);
	if (fd < 0) {
		record_write(wk->rec, wk->client, LIN_PUT, key, value, call, now_ns(),
		             LIN_STATUS_FAILED);
		root_check(wk, err);
		return;
	}
	pid = fork();
	if (pid == 0)
		fork_child(fd, how);
	if (pid < 0)
		fprintf(stderr, "nemesis_client: client %d: fork: %s\n", wk->client,
		        strerror(errno));
	if (wait_first)
		fork_reap(pid);
	err = 0;
	if (!no_write) {
		busy_begin(wk);
		wrote = write_all(fd, value, strlen(value)) == 0;
		err = wrote ? 0 : errno;
		busy_end(wk);
		wret = now_ns();
		record_write(wk->rec, wk->client, LIN_PUT, key, value, call, wret,
		             wrote ? LIN_STATUS_OK : write_status(wk, err));
	}
	busy_begin(wk);
	rc = close(fd);
	cerr = rc == 0 ? 0 : errno;
	busy_end(wk);
	if (!wrote) /* nothing written: the close commits Put("") (see mount_write) */
		record_write(wk->rec, wk->client, LIN_PUT, key, "", call, now_ns(),
		             rc == 0 ? LIN_STATUS_OK : write_status(wk, cerr));
	if (!wait_first)
		fork_reap(pid);
	root_check(wk, err ? err : cerr);
}

/* --- the clerk ------------------------------------------------------------------------------------ */

/* RAFTFS_CACERT, RAFTFS_CERT and RAFTFS_KEY (as raftfsctl's): the clerk speaks TLS. */
static struct kv_clerk *clerk_new(const char *list, const char *bind)
{
	char err[1024];
	const char *ca = getenv("RAFTFS_CACERT");
	struct kv_clerk_tls tls = {ca, getenv("RAFTFS_CERT"), getenv("RAFTFS_KEY")};
	struct kv_clerk *c = kv_clerk_open(list, ca && ca[0] ? &tls : NULL, err, sizeof err);

	if (!c) {
		fprintf(stderr, "nemesis_client: clerk on %s: %s\n", list, err);
		return NULL;
	}
	if (bind && bind[0] && kv_clerk_set_bind(c, bind) != 0) {
		fprintf(stderr, "nemesis_client: clerk bind %s: %s\n", bind, kv_clerk_errmsg(c));
		kv_clerk_close(c);
		return NULL;
	}
	return c;
}

static enum lin_status clerk_status(int outcome, const struct kv_result *r)
{
	if (outcome == KV_CLERK_APPLIED)
		return r->status == KV_OK ? LIN_STATUS_OK : LIN_STATUS_FAILED;
	return outcome == KV_CLERK_UNKNOWN ? LIN_STATUS_UNKNOWN : LIN_STATUS_FAILED;
}

static enum lin_status clerk_write(struct kv_clerk *c, struct recorder *rec, int client,
                                   enum lin_kind kind, const char *key, const char *value,
                                   unsigned timeout_ms)
{
	struct kv_result r;
	int64_t call = now_ns();
	size_t len = strlen(value);
	int o = kind == LIN_PUT ? kv_clerk_put(c, key, value, len, timeout_ms, &r)
	                        : kv_clerk_append(c, key, value, len, timeout_ms, &r);
	enum lin_status st = clerk_status(o, &r);

	if (o == KV_CLERK_APPLIED && r.status != KV_OK)
		fprintf(stderr, "nemesis_client: client %d: %s %s refused: %s\n", client,
		        kind == LIN_PUT ? "put" : "append", key, kv_strerror(r.status));
	record_write(rec, client, kind, key, value, call, now_ns(), st);
	kv_result_release(&r);
	return st;
}

/* Get through a clerk; records it. true when it returned a value. */
static bool clerk_get(struct kv_clerk *c, struct recorder *rec, int client, const char *key,
                      unsigned timeout_ms, char **val, size_t *len)
{
	struct kv_result r;
	int64_t call = now_ns();
	int o = kv_clerk_get(c, key, timeout_ms, &r);
	bool ok = o == KV_CLERK_APPLIED && r.status == KV_OK;
	size_t n = ok && r.exists ? r.value_len : 0;

	record_get(rec, client, key, call, ok, (const char *)r.value, n);
	if (ok && val) {
		*val = malloc(n + 1);
		if (*val) {
			if (n)
				memcpy(*val, r.value, n);
			(*val)[n] = '\0';
		}
		*len = n;
		ok = *val != NULL;
	}
	kv_result_release(&r);
	return ok;
}

/* --- run ------------------------------------------------------------------------------------------ */

static void worker_op(struct worker *wk, char **buf, size_t *cap)
{
	char key[KEY_BYTES], value[VALUE_BYTES];
	uint64_t r = rng_next(&wk->rng);
	int pick = (int)(r % 100);
	enum lin_kind kind = pick < 40 ? LIN_GET : pick < 75 ? LIN_APPEND : LIN_PUT;

	if (wk->kind == NEMESIS_FD) {
		fd_op(wk, buf, cap);
		return;
	}
	pick_key(wk, r, key);
	if (wk->kind == NEMESIS_FORK) {
		fork_put(wk, r >> 20, key);
		return;
	}
	snprintf(value, sizeof value, "%c%d.%lu;", kind == LIN_PUT ? 'p' : 'a', wk->client,
	         ++wk->counter);
	if (wk->dir) {
		if (kind == LIN_GET)
			mount_get(wk, key, buf, cap);
		else
			mount_write(wk, kind, key, value);
	} else if (kind == LIN_GET) {
		clerk_get(wk->clerk, wk->rec, wk->client, key, wk->cfg->timeout_ms, NULL, NULL);
	} else {
		clerk_write(wk->clerk, wk->rec, wk->client, kind, key, value, wk->cfg->timeout_ms);
	}
}

/*
 * --rate: every operation takes the next start slot of a schedule shared by the threads, and
 * waits for it. A schedule fallen behind (threads stuck in a fault) starts again from now
 * rather than bursting to catch up.
 */
static void pace(int rate)
{
	int64_t interval = rate > 0 ? NS_PER_S / rate : 0, now, slot;

	if (!interval)
		return;
	now = now_ns();
	slot = atomic_fetch_add(&next_slot_ns, interval);
	if (slot < now - PACE_SLACK_NS) {
		atomic_store(&next_slot_ns, now + interval);
		slot = now;
	}
	if (slot > now)
		sleep_ns(slot - now);
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	char *buf = NULL;
	size_t cap = 0;

	while (!atomic_load(&stop_flag)) {
		if (wk->dir && root_open(wk) != 0) {
			sleep_ms(REOPEN_PAUSE_MS); /* no live mount there now */
			continue;
		}
		pace(wk->cfg->rate);
		worker_op(wk, &buf, &cap);
	}
	fd_close_all(wk);
	free(buf);
	return NULL;
}

static void abort_connection(unsigned conn)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof path, "/sys/fs/fuse/connections/%u/abort", conn);
	f = fopen(path, "we");
	if (!f) {
		fprintf(stderr, "nemesis_client: %s: %s\n", path, strerror(errno));
		return;
	}
	fputs("1\n", f);
	fclose(f);
}

/* Aborts the FUSE connection of any mount request older than the stuck limit. */
static void watchdog_pass(struct worker *wks, int n, int64_t stuck_ns)
{
	int64_t now = now_ns();

	for (int i = 0; i < n; i++) {
		struct worker *wk = &wks[i];
		long long since = atomic_load(&wk->busy_since_ns);
		unsigned conn = atomic_load(&wk->conn);

		if (!wk->dir || !since || now - since < stuck_ns || atomic_load(&wk->aborted))
			continue;
		atomic_store(&wk->aborted, true);
		atomic_fetch_add(&hangs, 1);
		fprintf(stderr,
		        "nemesis_client: HANG: client %d: a request on %s has waited %.1f s "
		        "(over %d s): aborting FUSE connection %u\n",
		        wk->client, wk->dir, (double)(now - since) / NS_PER_S,
		        wk->cfg->stuck_seconds, conn);
		if (conn)
			abort_connection(conn);
	}
}

/* The keys of a run: --keys, and the rotated ones of every generation. */
static int run_key_count(const struct config *cfg)
{
	struct nemesis_keys k = run_keys(cfg);

	return nemesis_key_count(&k);
}

/* The name of key k of a run: k0..kK-1, then the rotated keys generation by generation. */
static void run_key_name(const struct config *cfg, int k, char *key)
{
	struct nemesis_keys ks = run_keys(cfg);

	nemesis_key_name(&ks, k, key);
}

/* Puts "" in every key, the rotated ones of every generation too, until each Put is acknowledged
 * (the mounts' O_TRUNC opens then find an existing file: one Put, DESIGN.md 6; on a missing
 * file the create and the write would be two operations). */
static int setup_keys(const struct config *cfg, struct recorder *rec)
{
	struct kv_clerk *c = clerk_new(cfg->clerk_list, cfg->bind);
	int64_t deadline = now_ns() + SETUP_SECONDS * NS_PER_S;
	int total = run_key_count(cfg);
	char key[KEY_BYTES];
	int k = 0;

	if (!c)
		return -1;
	while (k < total && now_ns() < deadline) {
		run_key_name(cfg, k, key);
		if (clerk_write(c, rec, CLIENT_SETUP, LIN_PUT, key, "", cfg->timeout_ms) ==
		    LIN_STATUS_OK)
			k++;
		else
			sleep_ms(REOPEN_PAUSE_MS);
	}
	if (k < total)
		fprintf(stderr, "nemesis_client: setup: put %s: %s\n", key, kv_clerk_errmsg(c));
	kv_clerk_close(c);
	return k < total ? -1 : 0;
}

static void write_ready(const char *path)
{
	FILE *f;

	if (!path)
		return;
	f = fopen(path, "we");
	if (f) {
		fprintf(f, "%" PRId64 "\n", now_ns());
		fclose(f);
	}
}

static void progress(struct recorder *rec, int64_t start)
{
	long ok = atomic_load(&rec->ops[LIN_STATUS_OK]);
	long failed = atomic_load(&rec->ops[LIN_STATUS_FAILED]);
	long unknown = atomic_load(&rec->ops[LIN_STATUS_UNKNOWN]);

	printf("nemesis_client: +%3" PRId64 "s: %ld ops (ok %ld, fail %ld, unknown %ld)\n",
	       (now_ns() - start) / NS_PER_S, ok + failed + unknown, ok, failed, unknown);
	fflush(stdout);
}

static int workers_start(const struct config *cfg, struct recorder *rec, struct worker *wks)
{
	int n = 0;

	for (int m = 0; m < cfg->n_mounts; m++) {
		for (int j = 0; j < cfg->mount_clients; j++, n++) {
			wks[n].dir = cfg->mounts[m];
			wks[n].client = 1 + m * cfg->mount_clients + j;
		}
		for (int j = 0; j < cfg->fd_clients; j++, n++) {
			wks[n].kind = NEMESIS_FD;
			wks[n].dir = cfg->mounts[m];
			wks[n].client = CLIENT_FD_BASE + m * cfg->fd_clients + j;
		}
		for (int j = 0; j < cfg->fork_clients; j++, n++) {
			wks[n].kind = NEMESIS_FORK;
			wks[n].dir = cfg->mounts[m];
			wks[n].client = CLIENT_FORK_BASE + m * cfg->fork_clients + j;
		}
	}
	for (int j = 0; j < cfg->clerk_clients; j++, n++) {
		wks[n].kind = NEMESIS_CLERK;
		wks[n].client = CLIENT_CLERK_BASE + j;
		wks[n].clerk = clerk_new(cfg->clerk_list, cfg->bind);
		if (!wks[n].clerk)
			return -1;
	}
	for (int i = 0; i < n; i++) {
		wks[i].cfg = cfg;
		wks[i].rec = rec;
		wks[i].root = -1;
		wks[i].fd_rw = wks[i].fd_app = -1;
		wks[i].rng = cfg->seed * 1000003u + (uint64_t)wks[i].client;
		if (pthread_create(&wks[i].tid, NULL, worker_main, &wks[i]) != 0) {
			fprintf(stderr, "nemesis_client: pthread_create failed\n");
			atomic_store(&stop_flag, true);
			for (int j = 0; j < i; j++)
				pthread_join(wks[j].tid, NULL);
			return -1;
		}
	}
	return n;
}

static int cmd_run(const struct config *cfg, struct recorder *rec)
{
	struct worker *wks;
	int64_t start, deadline, next_progress;
	int n,
	        total = cfg->n_mounts * (cfg->mount_clients + cfg->fd_clients + cfg->fork_clients) +
	        cfg->clerk_clients;

	if (setup_keys(cfg, rec) != 0)
		return EXIT_USAGE;
	wks = calloc((size_t)total, sizeof *wks);
	if (!wks)
		return EXIT_USAGE;
	start = now_ns();
	run_start_ns = start;
	atomic_store(&next_slot_ns, start);
	deadline = start + cfg->seconds * NS_PER_S;
	next_progress = start + PROGRESS_EVERY_S * NS_PER_S;
	n = workers_start(cfg, rec, wks);
	if (n < 0) {
		for (int i = 0; i < total; i++)
			kv_clerk_close(wks[i].clerk);
		free(wks);
		return EXIT_USAGE;
	}
	write_ready(cfg->ready);
	while (now_ns() < deadline) {
		sleep_ms(200);
		watchdog_pass(wks, n, cfg->stuck_seconds * NS_PER_S);
		if (now_ns() >= next_progress) {
			progress(rec, start);
			next_progress += PROGRESS_EVERY_S * NS_PER_S;
		}
	}
	atomic_store(&stop_flag, true);
	for (int i = 0; i < n; i++) {
		/* the last requests end within their timeouts; the watchdog still watches them */
		while (pthread_tryjoin_np(wks[i].tid, NULL) != 0) {
			sleep_ms(100);
			watchdog_pass(wks, n, cfg->stuck_seconds * NS_PER_S);
		}
	}
	progress(rec, start);
	for (int i = 0; i < n; i++) {
		root_close(&wks[i]);
		kv_clerk_close(wks[i].clerk);
	}
	free(wks);
	if (atomic_load(&hangs)) {
		fprintf(stderr, "nemesis_client: %d request(s) hung on a mount\n",
		        atomic_load(&hangs));
		return EXIT_HUNG;
	}
	return EXIT_OK;
}

/* --- final ---------------------------------------------------------------------------------------- */

/* One value read per (reader, key); readers are the mounts, then the nodes' clerks. */
struct final_reads {
	int readers;
	char *name[MAX_MOUNTS + RAFT_MAX_NODES];
	char *val[MAX_MOUNTS + RAFT_MAX_NODES][MAX_FINAL_KEYS]; /* NULL: never read */
	size_t len[MAX_MOUNTS + RAFT_MAX_NODES][MAX_FINAL_KEYS];
};

/* Polls every node's status until all report the same commit and applied index twice in a row,
 * with one leader they agree on. Prints the last poll. 0, or -1 when they never did. */
static int wait_converged(struct kv_clerk *c, int wait_seconds, struct kv_proto_node_status *st,
                          unsigned n)
{
	int64_t deadline = now_ns() + wait_seconds * NS_PER_S;
	uint64_t last_applied = UINT64_MAX;
	bool same = false;

	while (now_ns() < deadline) {
		bool all = true;

		for (unsigned i = 0; i < n && all; i++)
			all = kv_clerk_status(c, kv_clerk_node(c, i)->id, &st[i], 1000) == 0;
		same = all;
		for (unsigned i = 1; i < n && same; i++)
			same = st[i].applied == st[0].applied && st[i].commit == st[0].commit &&
			        st[i].leader == st[0].leader && st[i].keys == st[0].keys;
		same = same && st[0].leader != 0 && st[0].applied == st[0].commit;
		if (same && st[0].applied == last_applied)
			break;
		last_applied = same ? st[0].applied : UINT64_MAX;
		same = false;
		sleep_ms(200);
	}
	for (unsigned i = 0; i < n; i++)
		printf("nemesis_client: node %u: role %u term %" PRIu64 " leader %u commit %" PRIu64
		       " applied %" PRIu64 " keys %" PRIu64 " snapshot %" PRIu64 "\n",
		       st[i].id, st[i].role, st[i].term, st[i].leader, st[i].commit, st[i].applied,
		       st[i].keys, st[i].snapshot_index);
	if (!same)
		fprintf(stderr,
		        "nemesis_client: the nodes did not converge to one applied index "
		        "within %d s\n",
		        wait_seconds);
	return same ? 0 : -1;
}

static void final_mount_reads(const struct config *cfg, struct recorder *rec, int m,
                              struct final_reads *fr)
{
	struct worker wk = {.cfg = cfg,
	                    .rec = rec,
	                    .dir = cfg->mounts[m],
	                    .root = -1,
	                    .fd_rw = -1,
	                    .fd_app = -1};
	char key[KEY_BYTES], *buf = NULL;
	size_t cap = 0, len;
	int r = fr->readers++, err;

	wk.client = CLIENT_FINAL_BASE + m;
	fr->name[r] = strdup(cfg->mounts[m]);
	for (int k = 0; k < run_key_count(cfg); k++) {
		run_key_name(cfg, k, key);
		for (int a = 0; a < FINAL_READ_ATTEMPTS && !fr->val[r][k]; a++) {
			int64_t call = now_ns();
			bool ok;

			if (root_open(&wk) != 0) {
				sleep_ms(500);
				continue;
			}
			ok = root_get(&wk, key, &buf, &cap, &len, &err);
			record_get(rec, wk.client, key, call, ok, buf, ok ? len : 0);
			if (ok) {
				fr->val[r][k] = nemesis_dup_bytes(buf, len);
				fr->len[r][k] = len;
			} else {
				fprintf(stderr, "nemesis_client: final read of %s on %s: %s\n", key,
				        wk.dir, strerror(err));
				root_check(&wk, err);
				sleep_ms(500);
			}
		}
	}
	root_close(&wk);
	free(buf);
}

static void final_clerk_reads(const struct config *cfg, struct recorder *rec,
                              const struct raft_transport_peer *p, struct final_reads *fr)
{
	char list[RAFT_TRANSPORT_HOST_BYTES + 32], key[KEY_BYTES];
	struct kv_clerk *c;
	int r = fr->readers++;
	int client = CLIENT_FINAL_CLERK_BASE + (int)p->id;

	snprintf(list, sizeof list, "%u=%s:%u", p->id, p->host, p->port);
	fr->name[r] = strdup(list);
	c = clerk_new(list, cfg->bind); /* only that node: it serves the read from its state */
	if (!c)
		return;
	for (int k = 0; k < run_key_count(cfg); k++) {
		run_key_name(cfg, k, key);
		for (int a = 0; a < FINAL_READ_ATTEMPTS && !fr->val[r][k]; a++) {
			if (!clerk_get(c, rec, client, key, cfg->timeout_ms, &fr->val[r][k],
			               &fr->len[r][k])) {
				fprintf(stderr, "nemesis_client: final read of %s on node %s: %s\n",
				        key, list, kv_clerk_errmsg(c));
				sleep_ms(500);
			}
		}
	}
	kv_clerk_close(c);
}

/* The values a final value is made of: every written value ends with ';'. */
static size_t count_tokens(const char *v, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += v[i] == ';';
	return n;
}

/* Every reader read every key, and all read the same values. */
static int final_compare(const struct config *cfg, const struct final_reads *fr)
{
	char key[KEY_BYTES];
	int bad = 0;

	for (int k = 0; k < run_key_count(cfg); k++) {
		run_key_name(cfg, k, key);
		for (int r = 0; r < fr->readers; r++) {
			const char *v = fr->val[r][k], *v0 = fr->val[0][k];

			if (!v) {
				fprintf(stderr, "nemesis_client: %s could not be read on %s\n", key,
				        fr->name[r]);
				bad++;
			} else if (v0 &&
			           (fr->len[r][k] != fr->len[0][k] ||
			            memcmp(v, v0, fr->len[0][k]) != 0)) {
				fprintf(stderr,
				        "nemesis_client: DIVERGENCE: %s reads \"%.200s\" on %s but "
				        "\"%.200s\" on %s\n",
				        key, v, fr->name[r], v0, fr->name[0]);
				bad++;
			}
		}
		if (fr->val[0][k])
			printf("nemesis_client: %s: %zu bytes, %zu values, read on %d readers\n",
			       key, fr->len[0][k], count_tokens(fr->val[0][k], fr->len[0][k]),
			       fr->readers);
	}
	return bad;
}

static int cmd_final(const struct config *cfg, struct recorder *rec)
{
	struct kv_proto_node_status before[RAFT_MAX_NODES], after[RAFT_MAX_NODES];
	struct final_reads *fr = calloc(1, sizeof *fr);
	struct kv_clerk *c = clerk_new(cfg->clerk_list, cfg->bind);
	unsigned n;
	int bad = 0;

	if (!c || !fr) {
		kv_clerk_close(c);
		free(fr);
		return EXIT_USAGE;
	}
	n = kv_clerk_node_count(c);
	if (wait_converged(c, cfg->wait_seconds, before, n) != 0)
		bad++;
	for (int m = 0; m < cfg->n_mounts; m++)
		final_mount_reads(cfg, rec, m, fr);
	for (unsigned i = 0; i < n; i++)
		final_clerk_reads(cfg, rec, kv_clerk_node(c, i), fr);
	bad += final_compare(cfg, fr);
	/* reads change nothing: the nodes must still agree, at the same index */
	if (wait_converged(c, cfg->wait_seconds, after, n) != 0)
		bad++;
	else if (after[0].applied != before[0].applied)
		printf("nemesis_client: applied index moved from %" PRIu64 " to %" PRIu64
		       " during the final reads\n",
		       before[0].applied, after[0].applied);
	kv_clerk_close(c);
	for (int r = 0; r < fr->readers; r++) {
		free(fr->name[r]);
		for (int k = 0; k < MAX_FINAL_KEYS; k++)
			free(fr->val[r][k]);
	}
	free(fr);
	return bad ? EXIT_CHECK : EXIT_OK;
}

/* --- audit: tests/lib/nemesis_audit.c ----------------------------------------------------------- */

static int cmd_audit(const struct config *cfg)
{
	struct nemesis_keys k = run_keys(cfg);
	int rc = nemesis_audit(cfg->history, &k);

	return rc == 0 ? EXIT_OK : rc == 1 ? EXIT_CHECK : EXIT_USAGE;
}

/* --- put ------------------------------------------------------------------------------------------ */

static const char *errno_name(int err)
{
	const char *name = err ? strerrorname_np(err) : "ok";

	return name ? name : "unknown-errno";
}

static int cmd_put(const struct config *cfg)
{
	int root = open(cfg->mounts[0], O_PATH | O_DIRECTORY | O_CLOEXEC), fd, werr = 0, cerr = 0;

	if (root < 0) {
		fprintf(stderr, "nemesis_client: %s: %s\n", cfg->mounts[0], strerror(errno));
		return EXIT_USAGE;
	}
	fd = openat(root, cfg->key, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		printf("open %s\n", errno_name(errno));
		close(root);
		return EXIT_OK;
	}
	if (cfg->after) {
		int64_t deadline = now_ns() + AFTER_WAIT_SECONDS * NS_PER_S;

		printf("opened\n");
		fflush(stdout);
		while (access(cfg->after, F_OK) != 0 && now_ns() < deadline)
			sleep_ms(REOPEN_PAUSE_MS / 2);
	}
	if (write_all(fd, cfg->value, strlen(cfg->value)) != 0)
		werr = errno;
	if (close(fd) != 0)
		cerr = errno;
	printf("open ok write %s close %s\n", errno_name(werr), errno_name(cerr));
	close(root);
	return EXIT_OK;
}

/* --- fork-trunc ----------------------------------------------------------------------------------- */

/* The value of key through mount dir (one read), into buf (NUL-terminated); "?" on an error. */
static void read_through(const char *dir, const char *key, char *buf, size_t cap)
{
	char path[4096];
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, key);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = pread(fd, buf, cap - 1, 0);
		close(fd);
	}
	snprintf(buf + (n < 0 ? 0 : n), cap - (size_t)(n < 0 ? 0 : n), "%s", n < 0 ? "?" : "");
}

/*
 * The one-Put rule with a handle a child keeps alive (regression of tests/nemesis.test.sh): opens
 * --key on the first --mount writable and forks a keeper child holding it, closes its own copy,
 * opens the key O_TRUNC (no dup) and forks a child that execs /bin/true with it, then reads the
 * key through the second --mount, writes --value, closes, and reads again: prints
 * "MID|END". The truncation must wait for the write: MID is the old value.
 */
static int cmd_fork_trunc(const struct config *cfg)
{
	char path[4096], mid[256], end[256];
	int fd, keep[2], rc = EXIT_OK;
	pid_t keeper, child;

	snprintf(path, sizeof path, "%s/%s", cfg->mounts[0], cfg->key);
	if (pipe2(keep, O_CLOEXEC) != 0)
		return EXIT_USAGE;
	fd = open(path, O_WRONLY | O_APPEND);
	if (fd < 0) {
		fprintf(stderr, "nemesis_client: %s: %s\n", path, strerror(errno));
		return EXIT_USAGE;
	}
	keeper = fork();
	if (keeper == 0) { /* holds the handle until the parent closes the pipe */
		char c;
		close(keep[1]);
		while (read(keep[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(keep[0]);
	close(fd);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0) {
		fprintf(stderr, "nemesis_client: %s: %s\n", path, strerror(errno));
		rc = EXIT_USAGE;
		goto out_keeper;
	}
	child = fork();
	if (child == 0)
		fork_child(fd, 0);
	fork_reap(child);
	read_through(cfg->mounts[1], cfg->key, mid, sizeof mid);
	if (write_all(fd, cfg->value, strlen(cfg->value)) != 0)
		fprintf(stderr, "nemesis_client: write %s: %s\n", path, strerror(errno));
	close(fd);
	read_through(cfg->mounts[1], cfg->key, end, sizeof end);
	printf("%s|%s\n", mid, end);
out_keeper:
	close(keep[1]);
	fork_reap(keeper);
	return rc;
}

/* --- command line --------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: nemesis_client run --history=FILE --clerk=LIST [--mount=DIR]... [--seconds=S]\n"
	        "           [--mount-clients=N] [--clerk-clients=N] [--keys=K] [--seed=N]\n"
	        "           [--timeout-ms=MS] [--stuck-seconds=S] [--ready=FILE] [--timedout-unknown]\n"
	        "           [--rate=OPS_PER_S] [--fd-clients=N] [--fork-clients=N] [--fd-keys=F]\n"
	        "           [--rotate-seconds=R]\n"
	        "       nemesis_client final --history=FILE --clerk=LIST [--mount=DIR]... [--keys=K]\n"
	        "           [--wait-seconds=S] [--timeout-ms=MS] [--seconds=S --fd-keys=F\n"
	        "           --rotate-seconds=R]\n"
	        "       nemesis_client audit --history=FILE [--keys=K] [--seconds=S --fd-keys=F\n"
	        "           --rotate-seconds=R]\n"
	        "       nemesis_client put --mount=DIR --key=KEY --value=VALUE [--after=FILE]\n"
	        "       nemesis_client fork-trunc --mount=DIR --mount=DIR2 --key=KEY --value=VALUE\n"
	        "run: N threads per mount and N clerk threads of random Get/Append/Put on keys\n"
	        "k0..kK-1 for S seconds, with descriptor and fork clients per mount on the rotated\n"
	        "keys f<slot>.<generation> (F slots, a generation every R seconds: the same flags\n"
	        "for final and audit), recorded in FILE (tests/lib/lincheck.h format); final: waits\n"
	        "for the nodes to agree, reads every key on every mount and node, records the reads,\n"
	        "fails if they differ; audit: operations per minute and the lost-write checks; put:\n"
	        "one O_TRUNC open + write + close, printing each call's outcome.\n"
	        "The clerk connects from $RAFTFS_BIND when set, with TLS when $RAFTFS_CACERT is set\n"
	        "($RAFTFS_CERT, $RAFTFS_KEY: its certificate). Exit 0 ok, 1 check failed, 2 usage\n"
	        "or setup error, 3 a request hung on a mount.\n");
}

static bool int_arg(const char *a, const char *name, int lo, int hi, int *out)
{
	size_t len = strlen(name);
	char *end;
	long v;

	if (strncmp(a, name, len) != 0)
		return false;
	errno = 0;
	v = strtol(a + len, &end, 10);
	if (errno || end == a + len || *end || v < lo || v > hi) {
		fprintf(stderr, "nemesis_client: bad %s\n", a);
		exit(EXIT_USAGE);
	}
	*out = (int)v;
	return true;
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		int v;

		if (strncmp(a, "--history=", 10) == 0)
			cfg->history = a + 10;
		else if (strncmp(a, "--clerk=", 8) == 0)
			cfg->clerk_list = a + 8;
		else if (strncmp(a, "--ready=", 8) == 0)
			cfg->ready = a + 8;
		else if (strncmp(a, "--key=", 6) == 0)
			cfg->key = a + 6;
		else if (strncmp(a, "--value=", 8) == 0)
			cfg->value = a + 8;
		else if (strncmp(a, "--after=", 8) == 0)
			cfg->after = a + 8;
		else if (strncmp(a, "--mount=", 8) == 0 && cfg->n_mounts < MAX_MOUNTS)
			cfg->mounts[cfg->n_mounts++] = a + 8;
		else if (strncmp(a, "--seed=", 7) == 0)
			cfg->seed = strtoull(a + 7, NULL, 10);
		else if (strcmp(a, "--timedout-unknown") == 0)
			cfg->timedout_unknown = true;
		else if (int_arg(a, "--seconds=", 1, 1000000, &cfg->seconds) ||
		         int_arg(a, "--mount-clients=", 0, MAX_CLIENTS_PER_SOURCE,
		                 &cfg->mount_clients) ||
		         int_arg(a, "--clerk-clients=", 0, MAX_CLIENTS_PER_SOURCE,
		                 &cfg->clerk_clients) ||
		         int_arg(a, "--keys=", 1, MAX_KEYS, &cfg->keys) ||
		         int_arg(a, "--fd-clients=", 0, MAX_FD_CLIENTS, &cfg->fd_clients) ||
		         int_arg(a, "--fork-clients=", 0, MAX_FD_CLIENTS, &cfg->fork_clients) ||
		         int_arg(a, "--fd-keys=", 0, MAX_FD_SLOTS, &cfg->fd_keys) ||
		         int_arg(a, "--rotate-seconds=", 1, 3600, &cfg->rotate_seconds) ||
		         int_arg(a, "--rate=", 0, 1000000, &cfg->rate) ||
		         int_arg(a, "--stuck-seconds=", 1, 3600, &cfg->stuck_seconds) ||
		         int_arg(a, "--wait-seconds=", 1, 3600, &cfg->wait_seconds))
			continue;
		else if (int_arg(a, "--timeout-ms=", 1, 3600000, &v))
			cfg->timeout_ms = (unsigned)v;
		else
			return -1;
	}
	if (strcmp(argv[1], "put") == 0)
		return cfg->n_mounts == 1 && cfg->key && cfg->value ? 0 : -1;
	if (strcmp(argv[1], "fork-trunc") == 0)
		return cfg->n_mounts == 2 && cfg->key && cfg->value ? 0 : -1;
	if (cfg->fd_clients > 0 && cfg->fd_keys == 0)
		return -1; /* descriptor clients work on rotated keys */
	if (run_key_count(cfg) > MAX_FINAL_KEYS) {
		fprintf(stderr,
		        "nemesis_client: over %d keys: fewer --fd-keys or a longer "
		        "--rotate-seconds\n",
		        MAX_FINAL_KEYS);
		return -1;
	}
	return cfg->history ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct config cfg = {.mount_clients = 2,
	                     .clerk_clients = 2,
	                     .fd_keys = DEFAULT_FD_KEYS,
	                     .rotate_seconds = DEFAULT_ROTATE_SECONDS,
	                     .keys = DEFAULT_KEYS,
	                     .seconds = 60,
	                     .wait_seconds = DEFAULT_WAIT_SECONDS,
	                     .stuck_seconds = DEFAULT_STUCK_SECONDS,
	                     .timeout_ms = DEFAULT_TIMEOUT_MS,
	                     .seed = 1};
	struct recorder rec = {.mu = PTHREAD_MUTEX_INITIALIZER};
	const char *cmd = argc > 1 ? argv[1] : "";
	int rc;

	if (argc == 1 || strcmp(cmd, "--help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (parse_args(argc, argv, &cfg) != 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "audit") == 0)
		return cmd_audit(&cfg);
	if (strcmp(cmd, "put") == 0)
		return cmd_put(&cfg);
	if (strcmp(cmd, "fork-trunc") == 0)
		return cmd_fork_trunc(&cfg);
	if ((strcmp(cmd, "run") != 0 && strcmp(cmd, "final") != 0) || !cfg.clerk_list) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cfg.bind = getenv("RAFTFS_BIND");
	rec.f = fopen(cfg.history, "ae");
	if (!rec.f) {
		fprintf(stderr, "nemesis_client: %s: %s\n", cfg.history, strerror(errno));
		return EXIT_USAGE;
	}
	fprintf(rec.f, "# nemesis_client %s: seed %" PRIu64 ", %d keys, start %" PRId64 " ns\n",
	        cmd, cfg.seed, cfg.keys, now_ns());
	rc = strcmp(cmd, "run") == 0 ? cmd_run(&cfg, &rec) : cmd_final(&cfg, &rec);
	if (fclose(rec.f) != 0 || rec.failed) {
		fprintf(stderr, "nemesis_client: writing %s failed\n", cfg.history);
		rc = rc ? rc : EXIT_USAGE;
	}
	return rc;
}
