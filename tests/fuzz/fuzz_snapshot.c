/* fuzz_snapshot.c - libFuzzer target: a state-machine snapshot image, loaded by a node's start-up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/codec.h"
#include "raft/crc32c.h"
#include "raft/le.h"
#include "tests/fuzz/fuzzlib.h"

/*
 * Input: the bytes of a snapshot image (snapshot-<index>-<term>.data): the kv store's stream of
 * CRC-framed tpl records (kv/store.h). The disk is the one fuzz_build_disk(snapshot) wrote, the
 * image replaced by the input and its .meta record rewritten with the input's size and CRC32C,
 * as the storage writes it for an image of those bytes: so the image passes the storage's own
 * check and reaches the loader, kv_snapshot_load, through kv_node_open as at start-up (the
 * same load installs a snapshot that arrived from a leader). Each input ends 'loaded' (then
 * the store's own snapshot of it loads again to the same state, and saving that gives the same
 * bytes), 'refused naming the file and offset', or refused because the settings it holds are
 * not the node's options (fuzz_node_load). Mutations keep the records' CRCs right most of the
 * time.
 */

#define REC_HEADER_BYTES 16u /* magic, kind, length, crc32c of the first 12 bytes and image */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_disk *d = fuzz_disk_template(true);
	int img = fuzz_disk_pick(d, "snapshot-", 0), meta = fuzz_disk_pick(d, "snapshot-", 1);
	struct raft_snapshot_meta m;
	struct raft_codec_buf out;
	struct raft_vfs *vfs;
	char err[512];

	FUZZ_CHECK(img >= 0 && meta >= 0 && strstr(d->names[img], ".data") &&
	                   strstr(d->names[meta], ".meta"),
	           "the template disk has no snapshot");
	FUZZ_CHECK(raft_codec_decode_snapshot_meta(d->bufs[meta], d->lens[meta], &m) == RAFT_OK,
	           "the template snapshot's metadata does not decode");
	m.size = size;
	m.crc = raft_crc32c(0, data, size);
	raft_codec_buf_init(&out);
	FUZZ_CHECK(raft_codec_encode_snapshot_meta(&out, &m) == RAFT_OK,
	           "snapshot metadata does not encode");
	vfs = fuzz_disk_vfs(d, img, size ? data : (const void *)"", size);
	FUZZ_CHECK(fuzz_write_file(vfs, d->names[meta], out.data, out.len) == 0,
	           "cannot write the snapshot metadata");
	raft_codec_buf_free(&out);
	fuzz_node_load(vfs, err, sizeof(err));
	raft_vfs_free(vfs);
	return 0;
}

static void fix(uint8_t *data, size_t size)
{
	size_t off = 0;

	while (size - off >= REC_HEADER_BYTES) {
		uint32_t len = raft_le_get32(data + off + 8);
		uint32_t crc;

		if (len > size - off - REC_HEADER_BYTES)
			break;
		crc = raft_crc32c(0, data + off, 12);
		crc = raft_crc32c(crc, data + off + REC_HEADER_BYTES, len);
		raft_le_put32(data + off + 12, crc);
		off += REC_HEADER_BYTES + len;
	}
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	return fuzz_mutate_fixing(data, size, max_size, seed, fix);
}
