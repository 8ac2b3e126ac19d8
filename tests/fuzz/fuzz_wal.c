/* fuzz_wal.c - libFuzzer target: a write-ahead log segment, loaded by a node's start-up. */
#include <stdlib.h>

#include "tests/fuzz/fuzzlib.h"

/*
 * Input: byte 0 picks the disk and the segment, the other bytes are that segment's.
 *   bit 7: the disk with a snapshot (fuzz_build_disk), else the one without;
 *   bits 0-6: which of its wal-* segments, in index order (modulo their number), the bytes
 *   replace. The last one is the tail, whose torn last record is cut at start-up; a bad record
 *   anywhere else refuses the start.
 * The other files are the ones a real node wrote, living through every kind of command. The
 * directory is loaded as the daemon loads it (kv_node_open: storage recovery, snapshot, the
 * core) on the in-memory disk, and the one-node cluster then elects itself and applies the
 * whole log. Each input ends 'loaded' or 'refused with a message naming the file and offset'
 * (fuzz_node_load); anything else, a crash, a leak, a sanitizer report or a failed assertion
 * is a finding. Mutations keep the records' CRCs right most of the time.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_disk *d;
	struct raft_vfs *vfs;
	char err[512];
	int seg;

	if (size < 1)
		return 0;
	d = fuzz_disk_template(data[0] & 0x80);
	seg = fuzz_disk_pick(d, "wal-", data[0] & 0x7f);
	FUZZ_CHECK(seg >= 0, "the template disk has no segment");
	vfs = fuzz_disk_vfs(d, seg, data + 1, size - 1);
	fuzz_node_load(vfs, err, sizeof(err));
	raft_vfs_free(vfs);
	return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	return fuzz_mutate_fixing(data, size, max_size, seed, fuzz_fix_codec_frames_after_layout);
}
