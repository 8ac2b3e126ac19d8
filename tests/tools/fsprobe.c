/* fsprobe.c - the filesystem as programs use it (threads, fork, exec, long-lived descriptors). */

/*
 * Each subcommand reproduces one way a program uses files and checks the answer a local
 * filesystem (POSIX) would give, through the mounts of several nodes of one cluster: it exits 0
 * when every check held, 1 with a message naming the check otherwise, 2 on bad usage. Used by
 * tests/programs.test.sh (the mounts) and, for the POSIX answers, against a directory on ext4:
 * with FSPROBE_POSIX=1 the checks of raftfs's one-Put promise (a file being rewritten through an
 * O_TRUNC open still reads as it was until the first write or the last close) expect what a
 * local filesystem gives instead (the file is empty from the open on).
 *
 *   trunc SHAPE A B C      A, B, C: the same file through three mounts (or three times one path).
 *                          A holds "old"; an O_TRUNC open through A, then SHAPE, then: B still
 *                          reads "old" (one Put: nobody sees the file empty in between), C
 *                          appends "X", the opener writes "new\n" at offset 0 and closes, and
 *                          every path reads "new\n". SHAPEs: fork-close (a child closes its
 *                          copy), fork-exec (an O_CLOEXEC descriptor, a child that execs true),
 *                          thread-dup (another thread closes a dup), opener-thread-exits (the
 *                          opening thread ends, another writes), dup2 (the shell's `echo v >
 *                          f`: dup2 onto a new descriptor, close the first, write the second),
 *                          child-holds-other and dup2-child-holds-other (first an open of the
 *                          file without O_TRUNC that only a forked child keeps, then fork-close
 *                          or dup2: an earlier open of the opener held elsewhere must not make
 *                          the opener's own descriptor look like someone else's).
 *   trunc-no-write A B     an O_TRUNC open through A that a child closes too, then the opener
 *                          closes without writing: B reads "old" until that close, "" right after.
 *   trunc-no-write-beside A B
 *                          trunc-no-write while the opener keeps an O_RDWR and an O_APPEND
 *                          descriptor of the same file open (a long-lived one): the O_TRUNC
 *                          open's close still commits before it returns.
 *   trunc-opener-first A B an O_TRUNC open through A, a child keeps a copy, the opener closes
 *                          first: the truncation is committed by then (B reads ""); the child's
 *                          write at offset 0 gives "new\n".
 *   trunc-threads A B      an O_TRUNC open through A; two threads write "aaaa" at 0 and "bbbb"
 *                          at 4 at the same moment, 200 times over: every path reads
 *                          "aaaabbbb" (the first write's Put must not race the second write).
 *   trunc-close-race A B   an O_TRUNC open through A shared with a child; the opener closes
 *                          (committing the truncation) while the child writes "new\n" at 0,
 *                          200 times over: every round reads "new\n" (an acknowledged write is
 *                          never wiped by a truncation committed beside it).
 *   stale-pwrite A C       A holds "abc"; an O_RDWR open through A; C appends "X";
 *                          pwrite(fd, "Z", 1, 3) gives "abcZ" (a write at an offset, not an
 *                          append guessed from an old size).
 *   read-fresh A B         an O_RDONLY descriptor on A reads part of "aaaa"; B writes "bbbb"; the
 *                          same descriptor's next reads see "bb" (each read is linearizable).
 *   ryw FILE               one O_RDWR descriptor reads its own writes and truncations.
 *   fsx FILE [OTHER] [--ops=N] [--seed=S] [--max-size=B] [--max-op=B]
 *                          random writes, reads and truncations on one long-lived descriptor,
 *                          compared with a copy in memory; every 64th operation the whole file
 *                          is read through OTHER (another node's path) and compared too.
 *   intr-write FILE MS [GO]
 *                          an O_APPEND write of "x" interrupted by a signal after MS ms (a
 *                          handler without SA_RESTART); prints OK, EINTR, EIO, ... and exits 0.
 *                          With GO (a fifo): FILE is opened first, "ready" printed, and the
 *                          write starts once a line can be read from GO (the test stops nodes
 *                          in between: an open would need the cluster too).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FSX_DEFAULT_OPS 10000u
#define FSX_DEFAULT_MAX_SIZE (256u << 10)
#define FSX_DEFAULT_MAX_OP (64u << 10)
#define FSX_CROSS_CHECK_EVERY 64u

static const char *prog_step = "";
static bool posix_mode; /* FSPROBE_POSIX=1 */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fsprobe: %s: ", prog_step);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* --- small file helpers ------------------------------------------------------------------------ */

static void write_all(int fd, const void *buf, size_t len, off_t off, const char *what)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("%s: write: %s", what, n < 0 ? strerror(errno) : "wrote nothing");
		p += n;
		len -= (size_t)n;
		if (off >= 0)
			off += n;
	}
}

/* Replaces path's contents with s (open O_TRUNC, write, close). */
static void put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	write_all(fd, s, strlen(s), -1, path);
	if (close(fd) != 0)
		die("close %s: %s", path, strerror(errno));
}

static void append(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	if (fd < 0)
		die("open %s for appending: %s", path, strerror(errno));
	write_all(fd, s, strlen(s), -1, path);
	if (close(fd) != 0)
		die("close %s: %s", path, strerror(errno));
}

/* The whole file at path, read through a fresh descriptor (malloc; *len its size). */
static char *slurp(const char *path, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY);

	if (!buf)
		die("out of memory");
	if (fd < 0)
		die("open %s for reading: %s", path, strerror(errno));
	for (;;) {
		ssize_t r;
		if (n == cap) {
			char *b = realloc(buf, cap *= 2);
			if (!b)
				die("out of memory");
			buf = b;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read %s: %s", path, strerror(errno));
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*len = n;
	return buf;
}

/* Checks that path reads exactly want. */
static void expect(const char *path, const char *want, const char *why)
{
	size_t len;
	char *got = slurp(path, &len);

	if (len != strlen(want) || memcmp(got, want, len) != 0)
		die("%s reads \"%.*s\" (%zu bytes), not \"%s\": %s", path,
		    (int)(len > 64 ? 64 : len), got, len, want, why);
	free(got);
}

static void wait_child(pid_t pid, const char *what)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid %s: %s", what, strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("%s failed (status %d)", what, status);
}

/* --- trunc: O_TRUNC + first write is one Put, whatever the process does meanwhile ------------ */

struct thread_arg {
	int fd;
	const char *path;
	int result;
};

static void *close_a_dup(void *p)
{
	struct thread_arg *a = p;
	int d = dup(a->fd);

	a->result = d >= 0 && close(d) == 0 ? 0 : errno;
	return NULL;
}

static void *open_trunc_and_end(void *p)
{
	struct thread_arg *a = p;

	a->fd = open(a->path, O_WRONLY | O_TRUNC);
	a->result = a->fd >= 0 ? 0 : errno;
	return NULL;
}

static void run_in_thread(void *(*fn)(void *), struct thread_arg *a)
{
	pthread_t t;

	if (pthread_create(&t, NULL, fn, a) != 0 || pthread_join(t, NULL) != 0)
		die("cannot run a thread");
	if (a->result)
		die("in the thread: %s", strerror(a->result));
}

static pid_t holder_pid = -1; /* a child keeping another descriptor of the file, and its pipe */
static int holder_go = -1;

/* Opens path for writing (no O_TRUNC), forks a child that keeps that descriptor until
 * holder_release(), and closes the parent's copy. */
static void holder_start(const char *path)
{
	int fd = open(path, O_WRONLY), go[2];
	char ch;

	if (fd < 0 || pipe(go) != 0)
		die("open %s: %s", path, strerror(errno));
	holder_pid = fork();
	if (holder_pid == 0) {
		close(go[1]);
		_exit(read(go[0], &ch, 1) >= 0 && close(fd) == 0 ? 0 : 1);
	}
	close(go[0]);
	close(fd);
	holder_go = go[1];
}

static void holder_release(void)
{
	if (holder_pid < 0)
		return;
	close(holder_go);
	wait_child(holder_pid, "the child keeping another descriptor");
	holder_pid = -1;
}

/* Opens a for O_TRUNC writing and does shape; returns the descriptor the opener writes to. */
static int trunc_open_shape(const char *shape, const char *a)
{
	struct thread_arg arg = {.path = a};
	int fd, d;
	pid_t pid;

	if (strcmp(shape, "child-holds-other") == 0) {
		holder_start(a);
		shape = "fork-close";
	} else if (strcmp(shape, "dup2-child-holds-other") == 0) {
		holder_start(a);
		shape = "dup2";
	}

	if (strcmp(shape, "opener-thread-exits") == 0) {
		run_in_thread(open_trunc_and_end, &arg);
		return arg.fd;
	}
	fd = open(a, O_WRONLY | O_TRUNC | (strcmp(shape, "fork-exec") == 0 ? O_CLOEXEC : 0));
	if (fd < 0)
		die("open %s O_TRUNC: %s", a, strerror(errno));
	if (strcmp(shape, "fork-close") == 0) {
		pid = fork();
		if (pid == 0)
			_exit(close(fd) == 0 ? 0 : 1);
		wait_child(pid, "the child closing its copy");
	} else if (strcmp(shape, "fork-exec") == 0) {
		pid = fork();
		if (pid == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		wait_child(pid, "the child that execs true");
	} else if (strcmp(shape, "thread-dup") == 0) {
		arg.fd = fd;
		run_in_thread(close_a_dup, &arg);
	} else if (strcmp(shape, "dup2") == 0) {
		d = dup2(fd,
		         100); /* the shell's `echo v > f`: onto stdout, then the first closed */
		if (d < 0 || close(fd) != 0)
			die("dup2: %s", strerror(errno));
		fd = d;
	} else {
		die("unknown shape %s", shape);
	}
	return fd;
}

static int cmd_trunc(int argc, char **argv)
{
	const char *shape, *a, *b, *c;
	int fd;

	if (argc != 4)
		return 2;
	shape = argv[0], a = argv[1], b = argv[2], c = argv[3];
	prog_step = shape;
	put(a, "old");
	fd = trunc_open_shape(shape, a);
	expect(b, posix_mode ? "" : "old", "the truncation was committed before the first write");
	append(c, "X");
	write_all(fd, "new\n", 4, 0, a);
	if (close(fd) != 0)
		die("close: %s", strerror(errno));
	holder_release();
	expect(a, "new\n", "after the write and close, through the opener's path");
	expect(b, "new\n", "after the write and close, through another path");
	expect(c, "new\n", "after the write and close, through a third path");
	return 0;
}

static int cmd_trunc_no_write(int argc, char **argv)
{
	const char *a, *b;
	int fd;
	pid_t pid;

	if (argc != 2)
		return 2;
	a = argv[0], b = argv[1];
	prog_step = "trunc-no-write";
	put(a, "old");
	fd = open(a, O_WRONLY | O_TRUNC);
	if (fd < 0)
		die("open %s O_TRUNC: %s", a, strerror(errno));
	pid = fork();
	if (pid == 0)
		_exit(close(fd) == 0 ? 0 : 1);
	wait_child(pid, "the child closing its copy");
	expect(b, posix_mode ? "" : "old", "a child's close committed its parent's truncation");
	if (close(fd) != 0)
		die("close: %s", strerror(errno));
	expect(b, "", "the last close returned before the truncation was committed");
	return 0;
}

static int cmd_trunc_no_write_beside(int argc, char **argv)
{
	int rw, ap, rv;

	if (argc != 2)
		return 2;
	put(argv[0], "old");
	rw = open(argv[0], O_RDWR);
	ap = open(argv[0], O_WRONLY | O_APPEND);
	if (rw < 0 || ap < 0)
		die("open %s: %s", argv[0], strerror(errno));
	rv = cmd_trunc_no_write(argc, argv);
	prog_step = "trunc-no-write-beside";
	close(rw);
	close(ap);
	return rv;
}

static int cmd_trunc_opener_first(int argc, char **argv)
{
	const char *a, *b;
	int fd, go[2];
	pid_t pid;
	char ch;

	if (argc != 2)
		return 2;
	a = argv[0], b = argv[1];
	prog_step = "trunc-opener-first";
	put(a, "old");
	fd = open(a, O_WRONLY | O_TRUNC);
	if (fd < 0 || pipe(go) != 0)
		die("open %s O_TRUNC: %s", a, strerror(errno));
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &ch, 1) != 1)
			_exit(1);
		_exit(pwrite(fd, "new\n", 4, 0) == 4 && close(fd) == 0 ? 0 : 1);
	}
	close(go[0]);
	if (close(fd) != 0)
		die("close: %s", strerror(errno));
	expect(b, "", "the opener closed first: its truncation is committed by then");
	if (write(go[1], "g", 1) != 1)
		die("cannot wake the child");
	close(go[1]);
	wait_child(pid, "the child writing at offset 0");
	expect(b, "new\n", "the child's write after the truncation");
	return 0;
}

struct pw_arg {
	int fd;
	const char *bytes;
	off_t off;
	pthread_barrier_t *go;
	int err;
};

static void *pwrite_at_once(void *p)
{
	struct pw_arg *a = p;

	pthread_barrier_wait(a->go);
	a->err = pwrite(a->fd, a->bytes, 4, a->off) == 4 ? 0 : errno ? errno : EIO;
	return NULL;
}

static int cmd_trunc_threads(int argc, char **argv)
{
	const char *a, *b;

	if (argc != 2)
		return 2;
	a = argv[0], b = argv[1];
	prog_step = "trunc-threads";
	for (int round = 0; round < 200; round++) {
		pthread_barrier_t go;
		struct pw_arg w[2] = {{.bytes = "aaaa", .off = 0}, {.bytes = "bbbb", .off = 4}};
		pthread_t t[2];
		int fd;

		put(a, "old content here");
		fd = open(a, O_WRONLY | O_TRUNC);
		if (fd < 0 || pthread_barrier_init(&go, NULL, 2) != 0)
			die("open %s O_TRUNC: %s", a, strerror(errno));
		for (int i = 0; i < 2; i++) {
			w[i].fd = fd;
			w[i].go = &go;
			if (pthread_create(&t[i], NULL, pwrite_at_once, &w[i]) != 0)
				die("cannot start a thread");
		}
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&go);
		if (w[0].err || w[1].err)
			die("round %d: pwrite: %s", round,
			    strerror(w[0].err ? w[0].err : w[1].err));
		if (close(fd) != 0)
			die("close: %s", strerror(errno));
		expect(b, "aaaabbbb", "two writes racing on one O_TRUNC descriptor");
	}
	return 0;
}

static int cmd_trunc_close_race(int argc, char **argv)
{
	const char *a, *b;

	if (argc != 2)
		return 2;
	a = argv[0], b = argv[1];
	prog_step = "trunc-close-race";
	for (int round = 0; round < 200; round++) {
		int fd, go[2];
		pid_t pid;
		char ch;

		put(a, "old");
		fd = open(a, O_WRONLY | O_TRUNC);
		if (fd < 0 || pipe(go) != 0)
			die("open %s O_TRUNC: %s", a, strerror(errno));
		pid = fork();
		if (pid == 0) {
			close(go[1]);
			if (read(go[0], &ch, 1) != 1)
				_exit(1);
			_exit(pwrite(fd, "new\n", 4, 0) == 4 ? 0 : 1);
		}
		close(go[0]);
		if (write(go[1], "g", 1) != 1)
			die("cannot wake the child");
		if (close(fd) != 0)
			die("close: %s", strerror(errno));
		close(go[1]);
		wait_child(pid, "the child writing at offset 0");
		expect(b, "new\n", "a write beside the opener's committing close");
	}
	return 0;
}

/* --- offsets and reads -------------------------------------------------------------------------- */

static int cmd_stale_pwrite(int argc, char **argv)
{
	const char *a, *c;
	int fd;

	if (argc != 2)
		return 2;
	a = argv[0], c = argv[1];
	prog_step = "stale-pwrite";
	put(a, "abc");
	fd = open(a, O_RDWR);
	if (fd < 0)
		die("open %s: %s", a, strerror(errno));
	append(c, "X");
	write_all(fd, "Z", 1, 3, a);
	close(fd);
	expect(a, "abcZ", "pwrite at offset 3 must write at offset 3");
	expect(c, "abcZ", "pwrite at offset 3, through another path");
	return 0;
}

/* A pread of up to 256 bytes (or len, when not 0) at off gives exactly want. */
static void expect_pread_n(int fd, off_t off, size_t len, const char *want, const char *why)
{
	char buf[256];
	ssize_t n = pread(fd, buf, len ? len : sizeof(buf), off);

	if (n < 0)
		die("pread at %lld: %s", (long long)off, strerror(errno));
	if ((size_t)n != strlen(want) || memcmp(buf, want, (size_t)n) != 0)
		die("pread at %lld gave \"%.*s\", not \"%s\": %s", (long long)off, (int)n, buf,
		    want, why);
}

static void expect_pread(int fd, off_t off, const char *want, const char *why)
{
	expect_pread_n(fd, off, 0, want, why);
}

static int cmd_read_fresh(int argc, char **argv)
{
	const char *a, *b;
	char two[2];
	int fd;

	if (argc != 2)
		return 2;
	a = argv[0], b = argv[1];
	prog_step = "read-fresh";
	put(a, "aaaa");
	fd = open(a, O_RDONLY);
	if (fd < 0)
		die("open %s: %s", a, strerror(errno));
	if (read(fd, two, 2) != 2 || memcmp(two, "aa", 2) != 0)
		die("the first read did not give \"aa\"");
	put(b, "bbbb");
	expect_pread(fd, 2, "bb", "a read after a write on another node must see it");
	expect_pread(fd, 0, "bbbb", "a read after a write on another node must see it");
	close(fd);
	return 0;
}

static int cmd_ryw(int argc, char **argv)
{
	const char *path;
	int fd;

	if (argc != 1)
		return 2;
	path = argv[0];
	prog_step = "ryw";
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	write_all(fd, "hello world", 11, -1, path);
	expect_pread(fd, 0, "hello world", "a descriptor reads its own write");
	if (ftruncate(fd, 5) != 0)
		die("ftruncate: %s", strerror(errno));
	expect_pread(fd, 0, "hello", "a descriptor reads its own truncation");
	expect_pread(fd, 5, "", "nothing past the truncation");
	write_all(fd, "XYZ", 3, 8, path);
	{
		char want[12] = "hello\0\0\0XYZ";
		char buf[32];
		ssize_t n = pread(fd, buf, sizeof(buf), 0);
		if (n != 11 || memcmp(buf, want, 11) != 0)
			die("after a write past the end: %zd bytes, not hello, 3 zeros, XYZ", n);
	}
	write_all(fd, "H", 1, 0, path);
	expect_pread(fd, 8, "XYZ", "the tail after a write at offset 0");
	expect_pread_n(fd, 0, 5, "Hello", "a write at offset 0 over the head");
	close(fd);
	/* an O_TRUNC open then ftruncate up: zeros, never the head of the old value */
	put(path, "old content");
	fd = open(path, O_RDWR | O_TRUNC);
	if (fd < 0)
		die("open %s O_TRUNC: %s", path, strerror(errno));
	if (ftruncate(fd, 4) != 0)
		die("ftruncate: %s", strerror(errno));
	{
		char buf[16];
		ssize_t n = pread(fd, buf, sizeof(buf), 0);
		if (n != 4 || memcmp(buf, "\0\0\0\0", 4) != 0)
			die("O_TRUNC then ftruncate to 4: %zd bytes \"%.*s\", not 4 zeros", n,
			    (int)(n > 0 ? n : 0), buf);
	}
	close(fd);
	/* an O_TRUNC open read before any write: empty */
	put(path, "old content");
	fd = open(path, O_RDWR | O_TRUNC);
	if (fd < 0)
		die("open %s O_TRUNC: %s", path, strerror(errno));
	expect_pread(fd, 0, "", "an O_TRUNC descriptor reads its own truncation");
	close(fd);
	return 0;
}

/* --- fsx: one long-lived descriptor, random operations, a copy in memory ----------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

struct fsx {
	const char *path, *other;
	int fd;
	unsigned char *model; /* the file as it must be */
	size_t size, max_size, max_op;
	unsigned char *buf;
	uint64_t seed, op;
};

static void fsx_fail(const struct fsx *x, const char *fmt, ...)
        __attribute__((format(printf, 2, 3), noreturn));

static void fsx_fail(const struct fsx *x, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fsprobe: fsx: seed %" PRIu64 ", operation %" PRIu64 ": ", x->seed, x->op);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nfsprobe: fsx: replay with --seed=%" PRIu64 " --ops=%" PRIu64 "\n",
	        x->seed, x->op);
	exit(1);
}

static void fsx_compare(const struct fsx *x, const unsigned char *got, size_t n, size_t off,
                        const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (got[i] != x->model[off + i])
			fsx_fail(x, "%s: byte %zu is 0x%02x, not 0x%02x (file size %zu)", what,
			         off + i, got[i], x->model[off + i], x->size);
}

static void fsx_read(struct fsx *x)
{
	size_t off = (size_t)rnd_below(x->size + 1), len = (size_t)rnd_below(x->max_op) + 1;
	size_t want = off < x->size ? (x->size - off < len ? x->size - off : len) : 0;
	ssize_t n = pread(x->fd, x->buf, len, (off_t)off);

	if (n < 0)
		fsx_fail(x, "pread %zu at %zu: %s", len, off, strerror(errno));
	if ((size_t)n != want)
		fsx_fail(x, "short read: %zd bytes instead of %zu at %zu (size %zu)", n, want, off,
		         x->size);
	fsx_compare(x, x->buf, want, off, "read");
}

static void fsx_write(struct fsx *x)
{
	size_t off = (size_t)rnd_below(x->max_size), len = (size_t)rnd_below(x->max_op) + 1;

	if (off + len > x->max_size)
		len = x->max_size - off;
	if (len == 0)
		return;
	for (size_t i = 0; i < len; i++)
		x->buf[i] = (unsigned char)(rnd() & 0xff);
	write_all(x->fd, x->buf, len, (off_t)off, x->path);
	if (off > x->size)
		memset(x->model + x->size, 0, off - x->size);
	memcpy(x->model + off, x->buf, len);
	if (off + len > x->size)
		x->size = off + len;
}

static void fsx_truncate(struct fsx *x)
{
	size_t len = (size_t)rnd_below(x->max_size + 1);

	if (ftruncate(x->fd, (off_t)len) != 0)
		fsx_fail(x, "ftruncate to %zu: %s", len, strerror(errno));
	if (len > x->size)
		memset(x->model + x->size, 0, len - x->size);
	x->size = len;
}

static void fsx_cross_check(struct fsx *x)
{
	size_t len;
	unsigned char *got = (unsigned char *)slurp(x->other, &len);

	if (len != x->size)
		fsx_fail(x, "%s has %zu bytes, the descriptor's file %zu", x->other, len, x->size);
	fsx_compare(x, got, len, 0, x->other);
	free(got);
}

static bool opt_u64(const char *arg, const char *name, uint64_t *v)
{
	size_t n = strlen(name);
	char *end;

	if (strncmp(arg, name, n) != 0 || arg[n] != '=')
		return false;
	errno = 0;
	*v = strtoull(arg + n + 1, &end, 0);
	if (errno || *end || end == arg + n + 1) {
		fprintf(stderr, "fsprobe: bad %s\n", arg);
		exit(2);
	}
	return true;
}

static int cmd_fsx(int argc, char **argv)
{
	struct fsx x = {0};
	uint64_t ops = FSX_DEFAULT_OPS, max_size = FSX_DEFAULT_MAX_SIZE,
	         max_op = FSX_DEFAULT_MAX_OP;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	x.seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 20);
	for (int i = 0; i < argc; i++) {
		if (opt_u64(argv[i], "--ops", &ops) || opt_u64(argv[i], "--seed", &x.seed) ||
		    opt_u64(argv[i], "--max-size", &max_size) ||
		    opt_u64(argv[i], "--max-op", &max_op))
			continue;
		if (argv[i][0] == '-')
			return 2;
		if (!x.path)
			x.path = argv[i];
		else if (!x.other)
			x.other = argv[i];
		else
			return 2;
	}
	if (!x.path || max_size == 0 || max_op == 0 || max_size > (1u << 30))
		return 2;
	prog_step = "fsx";
	rng_state = x.seed;
	x.max_size = (size_t)max_size;
	x.max_op = (size_t)(max_op < max_size ? max_op : max_size);
	x.model = calloc(1, x.max_size);
	x.buf = malloc(x.max_op);
	if (!x.model || !x.buf)
		die("out of memory");
	x.fd = open(x.path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (x.fd < 0)
		die("open %s: %s", x.path, strerror(errno));
	printf("fsx: seed %" PRIu64 ", %" PRIu64 " operations, files up to %zu bytes, operations "
	       "up to %zu\n",
	       x.seed, ops, x.max_size, x.max_op);
	fflush(stdout);
	for (x.op = 1; x.op <= ops; x.op++) {
		uint64_t r = rnd_below(10);
		if (r < 4)
			fsx_write(&x);
		else if (r < 8)
			fsx_read(&x);
		else
			fsx_truncate(&x);
		if (x.other && x.op % FSX_CROSS_CHECK_EVERY == 0)
			fsx_cross_check(&x);
	}
	x.op = ops;
	if (x.other)
		fsx_cross_check(&x);
	if (close(x.fd) != 0)
		die("close: %s", strerror(errno));
	printf("fsx: %" PRIu64 " operations ok\n", ops);
	free(x.model);
	free(x.buf);
	return 0;
}

/* --- an interrupted write ------------------------------------------------------------------------ */

static void on_alarm(int sig)
{
	(void)sig;
}

static int cmd_intr_write(int argc, char **argv)
{
	struct sigaction sa;
	struct itimerval it = {{0, 0}, {0, 0}};
	long ms;
	ssize_t n;
	int fd;

	if ((argc != 2 && argc != 3) || (ms = atol(argv[1])) <= 0)
		return 2;
	prog_step = "intr-write";
	fd = open(argv[0], O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd < 0)
		die("open %s: %s", argv[0], strerror(errno));
	if (argc == 3) {
		char line[16];
		FILE *go;
		printf("ready\n");
		fflush(stdout);
		go = fopen(argv[2], "r");
		if (!go || !fgets(line, sizeof(line), go))
			die("cannot read %s", argv[2]);
		fclose(go);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: the write returns what the filesystem said */
	sigaction(SIGALRM, &sa, NULL);
	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_usec = (ms % 1000) * 1000;
	setitimer(ITIMER_REAL, &it, NULL);
	n = write(fd, "x", 1);
	if (n == 1)
		printf("OK\n");
	else
		printf("%s\n",
		       errno == EINTR               ? "EINTR"
		               : errno == EIO       ? "EIO"
		               : errno == ETIMEDOUT ? "ETIMEDOUT"
		                                    : strerror(errno));
	close(fd);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} cmds[] = {
        {"trunc", cmd_trunc},
        {"trunc-no-write", cmd_trunc_no_write},
        {"trunc-no-write-beside", cmd_trunc_no_write_beside},
        {"trunc-opener-first", cmd_trunc_opener_first},
        {"trunc-threads", cmd_trunc_threads},
        {"trunc-close-race", cmd_trunc_close_race},
        {"stale-pwrite", cmd_stale_pwrite},
        {"read-fresh", cmd_read_fresh},
        {"ryw", cmd_ryw},
        {"fsx", cmd_fsx},
        {"intr-write", cmd_intr_write},
};

int main(int argc, char **argv)
{
	posix_mode = getenv("FSPROBE_POSIX") && strcmp(getenv("FSPROBE_POSIX"), "1") == 0;
	for (size_t i = 0; argc >= 2 && i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) == 0) {
			int rv = cmds[i].fn(argc - 2, argv + 2);
			if (rv == 2)
				fprintf(stderr,
				        "fsprobe: bad arguments for %s (see tests/tools/fsprobe.c)\n",
				        argv[1]);
			return rv;
		}
	}
	fprintf(stderr,
	        "usage: fsprobe trunc|trunc-no-write|trunc-opener-first|trunc-threads|trunc-close-race|"
	        "stale-pwrite|"
	        "read-fresh|ryw|fsx|intr-write ARGS (see tests/tools/fsprobe.c)\n");
	return 2;
}
