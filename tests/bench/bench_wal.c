/* bench_wal.c - durable append throughput of the WAL beside a plain write+fdatasync loop. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raft/storage.h"

/*
 * Usage: bench_wal [--dir=DIR] [--seconds=S]
 * For records of 100 bytes and 4 KiB in batches of 1, 16 and 256, measures records/s and MB/s
 * of payload made durable through raft_storage_persist (one write + one fdatasync per batch),
 * and of a plain loop that appends the same bytes with write() and calls fdatasync() once per
 * batch, in the same run on the same disk, the two alternating in 10 slices so that both see the
 * same disk load. Also prints the latency of a bare fdatasync.
 * Asserts nothing about time. Default: a fresh directory under /tmp, 1 s per measurement.
 */

#define SLICES 10 /* alternations of the two loops per measurement */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Totals of one loop over its slices. */
struct result {
	double seconds;
	long records;
	double bytes;
};

static double fdatasync_latency_us(const char *dir, double seconds)
{
	char path[512];
	char block[512];
	double t0, t;
	long n = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/fdatasync.bench", dir);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (fd < 0) {
		perror(path);
		exit(1);
	}
	memset(block, 'x', sizeof(block));
	if (pwrite(fd, block, sizeof(block), 0) != (ssize_t)sizeof(block) || fdatasync(fd) != 0) {
		perror("fdatasync");
		exit(1);
	}
	t0 = now_s();
	do {
		block[0] = (char)n;
		if (pwrite(fd, block, sizeof(block), 0) != (ssize_t)sizeof(block) ||
		    fdatasync(fd) != 0) {
			perror("fdatasync");
			exit(1);
		}
		n++;
		t = now_s();
	} while (t - t0 < seconds);
	close(fd);
	unlink(path);
	return (t - t0) / (double)n * 1e6;
}

/* The plain loop: append size * batch bytes with write(), then fdatasync(). */
struct plain {
	char path[512];
	int fd;
	char *buf;
	size_t bytes;
	size_t batch;
	struct result res;
};

static void plain_open(struct plain *p, const char *dir, size_t size, size_t batch)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->path, sizeof(p->path), "%s/plain.bench", dir);
	p->bytes = size * batch;
	p->batch = batch;
	p->buf = malloc(p->bytes);
	p->fd = open(p->path, O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0600);
	if (p->fd < 0 || !p->buf) {
		perror(p->path);
		exit(1);
	}
	memset(p->buf, 'p', p->bytes);
}

static void plain_run(struct plain *p, double seconds)
{
	double t0 = now_s(), t;

	do {
		if (write(p->fd, p->buf, p->bytes) != (ssize_t)p->bytes || fdatasync(p->fd) != 0) {
			perror("plain loop");
			exit(1);
		}
		p->res.records += (long)p->batch;
		p->res.bytes += (double)p->bytes;
		t = now_s();
	} while (t - t0 < seconds);
	p->res.seconds += t - t0;
}

static void plain_close(struct plain *p)
{
	close(p->fd);
	unlink(p->path);
	free(p->buf);
}

/* The WAL: batches of entries through raft_storage_persist. */
struct wal {
	char path[512];
	struct raft_storage *st;
	struct raft_restore r;
	struct raft_entry *es;
	void *payload;
	size_t size;
	size_t batch;
	uint64_t next;
	struct result res;
};

static void wal_open(struct wal *w, const char *dir, size_t size, size_t batch)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->path, sizeof(w->path), "%s/wal", dir);
	w->size = size;
	w->batch = batch;
	w->next = 1;
	w->es = calloc(batch, sizeof(*w->es));
	w->payload = raft_buf_alloc(size);
	if (!w->es || !w->payload || raft_storage_new(NULL, &w->st) != RAFT_OK) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	if (raft_storage_open(w->st, w->path, &w->r) != RAFT_OK) {
		fprintf(stderr, "open: %s\n", raft_storage_errmsg(w->st));
		exit(1);
	}
	memset(w->payload, 'w', size);
}

static void wal_run(struct wal *w, double seconds)
{
	struct raft_update u;
	double t0 = now_s(), t;

	do {
		for (size_t i = 0; i < w->batch; i++) {
			w->es[i].index = w->next + i;
			w->es[i].term = 1;
			w->es[i].type = RAFT_ENTRY_NORMAL;
			w->es[i].len = (uint32_t)w->size;
			w->es[i].data = w->payload;
		}
		memset(&u, 0, sizeof(u));
		u.persist_seq = w->next;
		u.entries = w->es;
		u.n_entries = w->batch;
		if (raft_storage_persist(w->st, &u) != RAFT_OK) {
			fprintf(stderr, "persist: %s\n", raft_storage_errmsg(w->st));
			exit(1);
		}
		w->next += w->batch;
		w->res.records += (long)w->batch;
		w->res.bytes += (double)(w->batch * w->size);
		t = now_s();
	} while (t - t0 < seconds);
	w->res.seconds += t - t0;
}

static void wal_close(struct wal *w)
{
	raft_storage_free(w->st);
	raft_storage_restore_free(&w->r);
	raft_buf_unref(w->payload);
	free(w->es);
	rm_tree(w->path);
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = {100, 4096};
	static const size_t batches[] = {1, 16, 256};
	char tmpl[] = "/tmp/raft-bench-XXXXXX";
	const char *dir = NULL;
	double seconds = 1.0;
	bool made = false;

	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--dir=", 6) == 0) {
			dir = argv[i] + 6;
		} else if (strncmp(argv[i], "--seconds=", 10) == 0) {
			seconds = atof(argv[i] + 10);
		} else {
			fprintf(stderr, "usage: %s [--dir=DIR] [--seconds=S]\n", argv[0]);
			return 2;
		}
	}
	if (!dir) {
		dir = mkdtemp(tmpl);
		if (!dir) {
			perror("mkdtemp");
			return 1;
		}
		made = true;
	}
	printf("bench_wal: directory %s, %.1f s per measurement\n", dir, seconds);
	printf("fdatasync latency (512-byte overwrite + fdatasync): %.1f us\n",
	       fdatasync_latency_us(dir, seconds));
	printf("%6s %6s | %12s %10s | %12s %10s | %6s\n", "bytes", "batch", "wal rec/s", "wal MB/s",
	       "plain rec/s", "plain MB/s", "ratio");
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
			struct wal w;
			struct plain p;
			double w_mb, p_mb;
			/* Interleaved slices, so that both loops see the same disk weather. */
			wal_open(&w, dir, sizes[s], batches[b]);
			plain_open(&p, dir, sizes[s], batches[b]);
			for (int slice = 0; slice < SLICES; slice++) {
				wal_run(&w, seconds / SLICES);
				plain_run(&p, seconds / SLICES);
			}
			w_mb = w.res.bytes / w.res.seconds / 1e6;
			p_mb = p.res.bytes / p.res.seconds / 1e6;
			printf("%6zu %6zu | %12.0f %10.2f | %12.0f %10.2f | %5.0f%%\n", sizes[s],
			       batches[b], (double)w.res.records / w.res.seconds, w_mb,
			       (double)p.res.records / p.res.seconds, p_mb, 100.0 * w_mb / p_mb);
			fflush(stdout);
			wal_close(&w);
			plain_close(&p);
		}
	}
	if (made)
		rm_tree(dir);
	return 0;
}
