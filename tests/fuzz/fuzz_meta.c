/* fuzz_meta.c - libFuzzer target: a metadata (hard state) file, loaded by a node's start-up. */
#include <stdio.h>
#include <stdlib.h>

#include "tests/fuzz/fuzzlib.h"

/*
 * Input: byte 0 picks the disk and the file, the other bytes are that file's.
 *   bit 0: metadata2, else metadata1 (the two copies written alternately; the valid one with
 *   the higher sequence number wins);
 *   bit 1: the other copy is missing (a node that crashed before writing its second);
 *   bit 2: the disk with a snapshot.
 * Loaded as fuzz_wal.c describes: 'loaded' or 'refused naming the file and offset'.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_disk *d;
	struct raft_vfs *vfs;
	char err[512];
	int which, other;

	if (size < 1)
		return 0;
	d = fuzz_disk_template(data[0] & 4);
	which = fuzz_disk_pick(d, "metadata", data[0] & 1);
	other = fuzz_disk_pick(d, "metadata", (data[0] & 1) ^ 1);
	FUZZ_CHECK(which >= 0 && other >= 0, "the template disk lacks a metadata file");
	vfs = fuzz_disk_vfs(d, which, data + 1, size - 1);
	if (data[0] & 2) {
		char path[64];
		snprintf(path, sizeof(path), "%s/%s", FUZZ_DIR, d->names[other]);
		FUZZ_CHECK(vfs->unlink(vfs, path) == 0 && vfs->sync_dir(vfs, FUZZ_DIR) == 0,
		           "cannot remove %s", path);
	}
	fuzz_node_load(vfs, err, sizeof(err));
	raft_vfs_free(vfs);
	return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	return fuzz_mutate_fixing(data, size, max_size, seed, fuzz_fix_codec_frames_after_layout);
}
