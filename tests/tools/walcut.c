/* walcut.c - cuts the last segment of a stopped node's log BYTES bytes before the end of its
 * records, as a disk that lost synced bytes would (tests/lost-tail.test.sh).
 *
 *   tests/tools/walcut DATA_DIR BYTES
 *
 * Prints the segment, where its records end, the cut and the entries it damages; exits 1 with a
 * message when there is no segment or fewer bytes of records than that. */
#include <stdio.h>
#include <stdlib.h>

#include "raft/vfs.h"
#include "tests/lib/walcut.h"

int main(int argc, char **argv)
{
	struct raft_vfs *vfs;
	struct walcut_tail t;
	unsigned long long bytes;
	uint64_t at;
	size_t k;
	char *end;
	int rc = 1;

	if (argc != 3 || (bytes = strtoull(argv[2], &end, 10), *end != '\0') || bytes == 0) {
		fprintf(stderr, "usage: walcut DATA_DIR BYTES\n");
		return 2;
	}
	vfs = raft_vfs_posix_new();
	if (!vfs) {
		fprintf(stderr, "walcut: out of memory\n");
		return 1;
	}
	if (walcut_scan(vfs, argv[1], &t) != 0 || t.n == 0) {
		fprintf(stderr, "walcut: no log segment with records in %s\n", argv[1]);
		goto out;
	}
	if (bytes > t.end) {
		fprintf(stderr, "walcut: %s holds only %llu bytes of records\n", t.name,
		        (unsigned long long)t.end);
		goto out;
	}
	at = t.end - bytes;
	for (k = t.n; k > 0 && t.recs[k - 1].offset >= at; k--)
		;
	if (walcut_cut_at(vfs, argv[1], &t, at) != 0) {
		fprintf(stderr, "walcut: cannot cut %s/%s\n", argv[1], t.name);
		goto out;
	}
	/* 0 < bytes <= end: the cut falls inside record k - 1, which goes with all after it */
	printf("%s: records of entries %llu..%llu end at byte %llu; cut at byte %llu: entries "
	       "from %llu on are damaged\n",
	       t.name, (unsigned long long)t.recs[0].index,
	       (unsigned long long)t.recs[t.n - 1].index, (unsigned long long)t.end,
	       (unsigned long long)at, (unsigned long long)t.recs[k - 1].index);
	rc = 0;
out:
	walcut_tail_free(&t);
	raft_vfs_free(vfs);
	return rc;
}
