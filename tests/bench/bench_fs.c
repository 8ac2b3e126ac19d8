/* bench_fs.c - small-file operations per second and their latency, on directories or a clerk. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv/clerk.h"

/*
 * Usage: bench_fs (--dirs=D1[,D2...] | --clerk=CLUSTER_LIST) --workload=create|append|cat
 *                 [--threads=N] [--ops=M] [--label=NAME] [--prefix=P] [--header]
 *
 * Runs N threads (default 1), each doing M (default 1000) closed-loop operations; thread i works
 * in directory i % ndirs. The workloads:
 *   create  open(O_CREAT|O_TRUNC|O_WRONLY) + write of 256 bytes + close, on a new name each time
 *   append  open(O_WRONLY|O_APPEND) + write of one line + close, on a per-thread file
 *   cat     open + read to EOF + close of a per-thread 256-byte file
 * The per-thread files of append (empty) and cat (256 bytes) are made before the clock starts.
 * With --clerk the same workloads go through kv/clerk.h, one clerk per thread (the path of
 * raftfsctl): create = put of 256 bytes on a new key, append = append of one line, cat = get;
 * the clerk connects from $RAFTFS_BIND when it is set.
 *
 * Each operation is timed with CLOCK_MONOTONIC; the threads start together and the wall time
 * runs until the last one ends. Prints one line per run:
 *   LABEL WORKLOAD THREADS OPS OPS/S P50_MS P99_MS MAX_MS ERRORS
 * (--header prints the column names first). OPS is the operations made. Errors are counted
 * (the first of each thread is described on stderr); an operation that failed still counts in
 * the latencies; a thread stops after MAX_ERRORS_IN_A_ROW failures in a row. Exit status 1
 * when anything failed. Names are
 * PREFIX-tT-... (default prefix: bench<pid>) so that runs do not clash. Asserts nothing about
 * time. Without arguments prints this usage and exits 0 (make bench runs it so).
 */

#define FILE_BYTES 256
#define DEFAULT_OPS 1000
#define MAX_THREADS 1024
#define CLERK_TIMEOUT_MS 10000u
/* A thread whose last this many operations all failed stops (a dead mount or cluster would
 * otherwise hold the run for ops x timeout). */
#define MAX_ERRORS_IN_A_ROW 10

enum workload { W_CREATE, W_APPEND, W_CAT };

static const char *workload_name[] = {"create", "append", "cat"};

struct config {
	enum workload w;
	int threads;
	long ops;
	char **dirs;
	int ndirs;
	const char *clerk_list;
	const char *bind;
	const char *prefix;
};

struct worker {
	const struct config *cfg;
	int idx;
	const char *dir; /* NULL in clerk mode */
	struct kv_clerk *clerk;
	double *lat_ms;
	long done; /* operations made (fewer than ops after MAX_ERRORS_IN_A_ROW) */
	long errors;
	int setup_failed;
	pthread_barrier_t *start;
};

static char payload[FILE_BYTES];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
	        "usage: %s (--dirs=D1[,D2...] | --clerk=CLUSTER_LIST) --workload=create|append|cat\n"
	        "          [--threads=N] [--ops=M] [--label=NAME] [--prefix=P] [--header]\n"
	        "N threads (default 1) of M closed-loop operations each (default %d); thread i\n"
	        "uses directory i %% ndirs. create: open(O_CREAT|O_TRUNC)+write %d B+close of a new\n"
	        "file; append: open(O_APPEND)+write a line+close of a per-thread file; cat: open+read\n"
	        "+close of a per-thread %d-byte file. --clerk: put/append/get through kv/clerk.h,\n"
	        "one clerk per thread (from $RAFTFS_BIND if set). Prints:\n"
	        "LABEL WORKLOAD THREADS OPS OPS/S P50_MS P99_MS MAX_MS ERRORS\n",
	        prog, DEFAULT_OPS, FILE_BYTES, FILE_BYTES);
}

static void report_error(struct worker *wk, const char *what, const char *name, const char *why)
{
	if (wk->errors++ == 0)
		fprintf(stderr, "bench_fs: thread %d: %s %s: %s\n", wk->idx, what, name, why);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The per-thread file of append and cat (path or key) into buf. */
static void thread_file(const struct worker *wk, char *buf, size_t len)
{
	const struct config *cfg = wk->cfg;

	if (wk->dir)
		snprintf(buf, len, "%s/%s-t%d-%s", wk->dir, cfg->prefix, wk->idx,
		         workload_name[cfg->w]);
	else
		snprintf(buf, len, "%s-t%d-%s", cfg->prefix, wk->idx, workload_name[cfg->w]);
}

static int file_setup(struct worker *wk)
{
	char path[4096];
	int fd;

	if (wk->cfg->w == W_CREATE)
		return 0;
	thread_file(wk, path, sizeof path);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0) {
		fprintf(stderr, "bench_fs: setup: create %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (wk->cfg->w == W_CAT && write_all(fd, payload, FILE_BYTES) < 0) {
		fprintf(stderr, "bench_fs: setup: write %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) < 0) {
		fprintf(stderr, "bench_fs: setup: close %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void file_op(struct worker *wk, long k)
{
	char path[4096];
	char line[128];
	char buf[4096];
	ssize_t n;
	int fd, len;

	switch (wk->cfg->w) {
	case W_CREATE:
		snprintf(path, sizeof path, "%s/%s-t%d-f%ld", wk->dir, wk->cfg->prefix, wk->idx, k);
		fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
		if (fd < 0) {
			report_error(wk, "open", path, strerror(errno));
			return;
		}
		if (write_all(fd, payload, FILE_BYTES) < 0)
			report_error(wk, "write", path, strerror(errno));
		if (close(fd) < 0)
			report_error(wk, "close", path, strerror(errno));
		return;
	case W_APPEND:
		thread_file(wk, path, sizeof path);
		len = snprintf(line, sizeof line, "t%d line %ld\n", wk->idx, k);
		fd = open(path, O_WRONLY | O_APPEND);
		if (fd < 0) {
			report_error(wk, "open", path, strerror(errno));
			return;
		}
		if (write_all(fd, line, (size_t)len) < 0)
			report_error(wk, "write", path, strerror(errno));
		if (close(fd) < 0)
			report_error(wk, "close", path, strerror(errno));
		return;
	case W_CAT: {
		size_t total = 0;

		thread_file(wk, path, sizeof path);
		fd = open(path, O_RDONLY);
		if (fd < 0) {
			report_error(wk, "open", path, strerror(errno));
			return;
		}
		while ((n = read(fd, buf, sizeof buf)) != 0) {
			if (n < 0) {
				if (errno == EINTR)
					continue;
				report_error(wk, "read", path, strerror(errno));
				break;
			}
			total += (size_t)n;
		}
		close(fd);
		if (n == 0 && total != FILE_BYTES)
			report_error(wk, "read", path, "not 256 bytes");
		return;
	}
	}
}

/* Counts an error unless the call was APPLIED with KV_OK. */
static void clerk_check(struct worker *wk, const char *what, const char *key, int outcome,
                        const struct kv_result *r)
{
	char why[KV_CLERK_ERRMSG_BYTES + 64];

	if (outcome == KV_CLERK_APPLIED && r->status == KV_OK)
		return;
	snprintf(why, sizeof why, "%s, status %d: %s", kv_clerk_outcome_name(outcome), r->status,
	         kv_clerk_errmsg(wk->clerk));
	report_error(wk, what, key, why);
}

static int clerk_setup(struct worker *wk)
{
	char err[KV_CLERK_ERRMSG_BYTES];
	char key[512];
	struct kv_result r;
	int o;

	wk->clerk = kv_clerk_open(wk->cfg->clerk_list, NULL, err, sizeof err);
	if (!wk->clerk) {
		fprintf(stderr, "bench_fs: clerk: %s\n", err);
		return -1;
	}
	if (wk->cfg->bind && wk->cfg->bind[0] && kv_clerk_set_bind(wk->clerk, wk->cfg->bind) < 0) {
		fprintf(stderr, "bench_fs: clerk bind %s: %s\n", wk->cfg->bind,
		        kv_clerk_errmsg(wk->clerk));
		return -1;
	}
	if (wk->cfg->w == W_CREATE)
		return 0;
	/* also opens the clerk's session before the clock starts */
	thread_file(wk, key, sizeof key);
	o = kv_clerk_put(wk->clerk, key, payload, wk->cfg->w == W_CAT ? FILE_BYTES : 0,
	                 CLERK_TIMEOUT_MS, &r);
	if (o != KV_CLERK_APPLIED || r.status != KV_OK) {
		fprintf(stderr, "bench_fs: setup: put %s: %s: %s\n", key, kv_clerk_outcome_name(o),
		        kv_clerk_errmsg(wk->clerk));
		kv_result_release(&r);
		return -1;
	}
	kv_result_release(&r);
	return 0;
}

static void clerk_op(struct worker *wk, long k)
{
	char key[512];
	char line[128];
	struct kv_result r;
	int o, len;

	switch (wk->cfg->w) {
	case W_CREATE:
		snprintf(key, sizeof key, "%s-t%d-f%ld", wk->cfg->prefix, wk->idx, k);
		o = kv_clerk_put(wk->clerk, key, payload, FILE_BYTES, CLERK_TIMEOUT_MS, &r);
		clerk_check(wk, "put", key, o, &r);
		break;
	case W_APPEND:
		thread_file(wk, key, sizeof key);
		len = snprintf(line, sizeof line, "t%d line %ld\n", wk->idx, k);
		o = kv_clerk_append(wk->clerk, key, line, (size_t)len, CLERK_TIMEOUT_MS, &r);
		clerk_check(wk, "append", key, o, &r);
		break;
	default:
		thread_file(wk, key, sizeof key);
		o = kv_clerk_get(wk->clerk, key, CLERK_TIMEOUT_MS, &r);
		clerk_check(wk, "get", key, o, &r);
		if (o == KV_CLERK_APPLIED && r.status == KV_OK && r.value_len != FILE_BYTES)
			report_error(wk, "get", key, "not 256 bytes");
		break;
	}
	kv_result_release(&r);
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	long k, in_a_row = 0;

	wk->setup_failed = wk->dir ? file_setup(wk) : clerk_setup(wk);
	pthread_barrier_wait(wk->start); /* main reads the start time after this */
	pthread_barrier_wait(wk->start); /* go (or give up when some setup failed) */
	for (k = 0; k < wk->cfg->ops && !wk->setup_failed; k++) {
		double t0 = now_s();
		long errors = wk->errors;

		if (wk->dir)
			file_op(wk, k);
		else
			clerk_op(wk, k);
		wk->lat_ms[wk->done++] = (now_s() - t0) * 1e3;
		in_a_row = wk->errors > errors ? in_a_row + 1 : 0;
		if (in_a_row >= MAX_ERRORS_IN_A_ROW) {
			fprintf(stderr, "bench_fs: thread %d: %d failures in a row, stops\n",
			        wk->idx, MAX_ERRORS_IN_A_ROW);
			break;
		}
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double percentile(const double *v, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0.0;
	rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

/* Splits a comma-separated list in place. */
static int split_dirs(char *s, char ***out)
{
	int n = 1, i = 0;
	char *p;

	for (p = s; *p; p++)
		n += *p == ',';
	*out = calloc((size_t)n, sizeof **out);
	if (!*out)
		return -1;
	for (p = strtok(s, ","); p; p = strtok(NULL, ","))
		(*out)[i++] = p;
	return i;
}

int main(int argc, char **argv)
{
	struct config cfg = {.w = W_CREATE, .threads = 1, .ops = DEFAULT_OPS};
	const char *label = NULL;
	char default_prefix[64];
	char *dirs_arg = NULL;
	int have_workload = 0, header = 0, setup_failed = 0;
	struct worker *wks;
	pthread_t *tids;
	pthread_barrier_t start;
	double *all, t0, wall;
	long errors = 0;
	size_t n;
	int i;

	if (argc == 1) {
		usage(stdout, argv[0]);
		return 0;
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strncmp(a, "--dirs=", 7) == 0) {
			dirs_arg = strdup(a + 7);
		} else if (strncmp(a, "--clerk=", 8) == 0) {
			cfg.clerk_list = a + 8;
		} else if (strncmp(a, "--threads=", 10) == 0) {
			cfg.threads = atoi(a + 10);
		} else if (strncmp(a, "--ops=", 6) == 0) {
			cfg.ops = atol(a + 6);
		} else if (strncmp(a, "--label=", 8) == 0) {
			label = a + 8;
		} else if (strncmp(a, "--prefix=", 9) == 0) {
			cfg.prefix = a + 9;
		} else if (strcmp(a, "--header") == 0) {
			header = 1;
		} else if (strncmp(a, "--workload=", 11) == 0) {
			have_workload = 1;
			if (strcmp(a + 11, "create") == 0)
				cfg.w = W_CREATE;
			else if (strcmp(a + 11, "append") == 0)
				cfg.w = W_APPEND;
			else if (strcmp(a + 11, "cat") == 0)
				cfg.w = W_CAT;
			else
				have_workload = -1;
		} else if (strcmp(a, "--help") == 0) {
			usage(stdout, argv[0]);
			return 0;
		} else {
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (have_workload != 1 || cfg.threads < 1 || cfg.threads > MAX_THREADS || cfg.ops < 1 ||
	    (!dirs_arg) == (!cfg.clerk_list)) {
		usage(stderr, argv[0]);
		return 2;
	}
	if (dirs_arg) {
		cfg.ndirs = split_dirs(dirs_arg, &cfg.dirs);
		if (cfg.ndirs < 1) {
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (!cfg.prefix) {
		snprintf(default_prefix, sizeof default_prefix, "bench%ld", (long)getpid());
		cfg.prefix = default_prefix;
	}
	cfg.bind = getenv("RAFTFS_BIND");
	if (!label)
		label = cfg.clerk_list ? "clerk" : "dirs";
	for (i = 0; i < FILE_BYTES; i++)
		payload[i] = (char)('a' + i % 26);
	payload[FILE_BYTES - 1] = '\n';

	wks = calloc((size_t)cfg.threads, sizeof *wks);
	tids = calloc((size_t)cfg.threads, sizeof *tids);
	all = calloc((size_t)cfg.threads * (size_t)cfg.ops, sizeof *all);
	if (!wks || !tids || !all) {
		fprintf(stderr, "bench_fs: out of memory\n");
		return 1;
	}
	pthread_barrier_init(&start, NULL, (unsigned)cfg.threads + 1);
	for (i = 0; i < cfg.threads; i++) {
		wks[i].cfg = &cfg;
		wks[i].idx = i;
		wks[i].dir = cfg.dirs ? cfg.dirs[i % cfg.ndirs] : NULL;
		wks[i].lat_ms = all + (size_t)i * (size_t)cfg.ops;
		wks[i].start = &start;
		if (pthread_create(&tids[i], NULL, worker_main, &wks[i]) != 0) {
			fprintf(stderr, "bench_fs: pthread_create failed\n");
			return 1;
		}
	}
	pthread_barrier_wait(&start); /* every setup is done */
	for (i = 0; i < cfg.threads; i++)
		setup_failed |= wks[i].setup_failed;
	if (setup_failed)
		for (i = 0; i < cfg.threads; i++)
			wks[i].setup_failed = 1;
	t0 = now_s();
	pthread_barrier_wait(&start);
	for (i = 0; i < cfg.threads; i++)
		pthread_join(tids[i], NULL);
	wall = now_s() - t0;
	n = 0;
	for (i = 0; i < cfg.threads; i++) {
		errors += wks[i].errors;
		kv_clerk_close(wks[i].clerk);
		/* gather the latencies of the threads that stopped early at the front */
		memmove(all + n, wks[i].lat_ms, (size_t)wks[i].done * sizeof *all);
		n += (size_t)wks[i].done;
	}
	if (setup_failed) {
		fprintf(stderr, "bench_fs: %s %s: setup failed, nothing measured\n", label,
		        workload_name[cfg.w]);
		return 1;
	}
	if (n == 0) {
		fprintf(stderr, "bench_fs: %s %s: nothing done\n", label, workload_name[cfg.w]);
		return 1;
	}
	qsort(all, n, sizeof *all, cmp_double);
	if (header)
		printf("%-14s %-8s %7s %7s %9s %8s %8s %8s %6s\n", "LABEL", "WORKLOAD", "THREADS",
		       "OPS", "OPS/S", "P50_MS", "P99_MS", "MAX_MS", "ERRORS");
	printf("%-14s %-8s %7d %7zu %9.0f %8.3f %8.3f %8.3f %6ld\n", label, workload_name[cfg.w],
	       cfg.threads, n, (double)n / wall, percentile(all, n, 50), percentile(all, n, 99),
	       all[n - 1], errors);
	fflush(stdout);
	pthread_barrier_destroy(&start);
	free(all);
	free(tids);
	free(wks);
	free(cfg.dirs);
	free(dirs_arg);
	return errors ? 1 : 0;
}
