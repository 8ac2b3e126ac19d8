/* walcut.h - cuts an acknowledged tail off a node's log, as a disk that lost synced bytes does. */
#ifndef TESTS_LIB_WALCUT_H
#define TESTS_LIB_WALCUT_H

#include <stddef.h>
#include <stdint.h>

#include "raft/vfs.h"

/*
 * For the simulators and the process tests (tests/tools/walcut): the last segment of a data
 * directory (raftfs(5), wal-<first index>) read record by record, and cut inside or between its
 * records. A record of the last segment damaged after it was synced cannot be told from a torn
 * write, so recovery cuts it off and the node restarts without entries it may have acknowledged
 * (issue 15, item 8). The node must be down: nothing else may have the files open.
 */

struct walcut_rec {
	uint64_t index;
	uint64_t term;
	uint64_t offset; /* where the record starts in the segment */
	uint64_t len; /* bytes of the record (frame header and image) */
};

#define WALCUT_NAME_BYTES 64

struct walcut_tail {
	char name[WALCUT_NAME_BYTES]; /* the last segment's file name */
	struct walcut_rec *recs; /* its whole records, in order (malloc'd) */
	size_t n;
	uint64_t end; /* where its records end (zeros or the end of the file follow) */
};

/* Reads the last segment of dir through vfs. 0; 1 when dir holds no segment (t is empty); -1 on
 * an I/O error or no memory. Release t with walcut_tail_free (also after 1 or -1). */
int walcut_scan(struct raft_vfs *vfs, const char *dir, struct walcut_tail *t);
void walcut_tail_free(struct walcut_tail *t);

/* Cuts the last segment at byte `at` (<= t->end) and syncs it. 0 or -1. */
int walcut_cut_at(struct raft_vfs *vfs, const char *dir, const struct walcut_tail *t, uint64_t at);

#endif /* TESTS_LIB_WALCUT_H */
