/* fuzzlib.h - what the libFuzzer targets share: checksum-fixing mutation, a node on a memory disk. */
#ifndef TESTS_FUZZ_FUZZLIB_H
#define TESTS_FUZZ_FUZZLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/node.h"
#include "raft/vfs.h"

/*
 * The targets (tests/fuzz/fuzz_*.c) and the program that makes their seeds
 * (tests/fuzz/mkcorpus.c) agree on the layouts below: a seed is what the target's entry point
 * reads (a file's bytes, a connection's bytes), written by the real encoders.
 */

/* Libfuzzer's entry points, defined by each target. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
/* libFuzzer's own mutator, for a custom one to call. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

/* Stops the run with a message: libFuzzer reports the input as a crash. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fuzz_fail(__VA_ARGS__);                                                    \
	} while (0)

/*
 * Checksums stop a mutated input at the first check. A target whose format carries CRCs
 * mutates with this: libFuzzer's mutation, then, for 15 seeds in 16, fix(data, size) makes the
 * checksums right again (so the mutation reaches the decoders behind them); the rest keep the
 * mutated bytes, so that the checks themselves are fuzzed. The input stays exactly the bytes
 * the entry point reads: a crash file is a real file, segment or stream.
 */
size_t fuzz_mutate_fixing(uint8_t *data, size_t size, size_t max_size, unsigned int seed,
                          void (*fix)(uint8_t *data, size_t size));

/* Rewrites the CRC of every whole raft/codec.h frame from data on, as far as they follow each
 * other; returns the bytes they span. */
size_t fuzz_fix_codec_frames(uint8_t *data, size_t size);

/* The same after the first byte (the layout byte of the storage targets), for a mutator. */
void fuzz_fix_codec_frames_after_layout(uint8_t *data, size_t size);

/* The same for kv/proto.h frames. */
size_t fuzz_fix_proto_frames(uint8_t *data, size_t size);

/* The cluster id the transport target's node has, and its seeds' hellos carry. */
#define FUZZ_CLUSTER_ID 0x31465a5a50544652ull

/* --- a node's data directory on a memory disk, loaded as at start-up ----------------------- */

#define FUZZ_DIR "/data"
#define FUZZ_NODE_ID 1u
/* The state the storage targets' fixed files describe (kept small so they load fast). */
#define FUZZ_TERM 3u /* hard state: term 3, voted for node 1 */
#define FUZZ_META_SEQ 7u
#define FUZZ_SNAP_INDEX 4u /* the snapshot of the snapshot target and layout FUZZ_WAL_SNAPSHOT */
#define FUZZ_SNAP_TERM 2u
/* Ticks a one-node cluster gets to elect itself and apply its log. */
#define FUZZ_ELECTION_TICKS 40u

/* Writes len bytes as file name (in FUZZ_DIR, created if needed) of vfs. 0 or an errno. */
int fuzz_write_file(struct raft_vfs *vfs, const char *name, const void *buf, size_t len);
/* Reads file name of FUZZ_DIR into a malloc'd buffer (the caller frees it). 0 or an errno. */
int fuzz_read_file(struct raft_vfs *vfs, const char *name, unsigned char **buf, size_t *len);

/* The configuration the targets and the seed generator open nodes with: one node (id 1) of a
 * one-node cluster in FUZZ_DIR of vfs, snapshots written inline. */
void fuzz_node_config(struct kv_node_config *cfg, struct raft_vfs *vfs);

/* A node of the targets, driven by hand: fields up to n are the caller's. */
/* Its wall clock (kv_node_env.realtime_ms) at now_ms 0: the leader stamps commands with it. */
#define FUZZ_WALL_CLOCK_MS 1700000000000ull
struct fuzz_node {
	/* application frames the node sends (NULL: none is expected; one fails the run) */
	void (*on_app)(void *ctx, uint32_t to, const void *buf, size_t len);
	void *app_ctx;
	struct kv_node *n;
	/* a node that stops because its log holds cluster settings other than its options is an
	 * outcome (refused_settings is set, fuzz_node_settle returns false), not a failure */
	bool settings_may_differ;
	bool refused_settings;
	uint64_t now_ms; /* the node's clock: 50 ms a tick */
	uint64_t rng;
	bool verbose; /* FUZZ_VERBOSE is set: the node's and the storage's log lines go to stderr */
};

/* kv_node_open of cfg for fn (whose on_app and app_ctx the caller set), with an environment
 * that replays exactly. Returns kv_node_open's result (err holds its message). */
int fuzz_node_open(struct fuzz_node *fn, const struct kv_node_config *cfg, char *err,
                   size_t err_len);
/* Ticks fn's node (at most ticks times) until it leads and has applied its whole log: true, or
 * false when the ticks ran out. A node that stops fails the run. */
bool fuzz_node_settle(struct fuzz_node *fn, unsigned ticks);

/*
 * Opens the node in FUZZ_DIR of vfs as the daemon does at start-up (kv_node_open: storage
 * recovery, snapshot restore, the core), then lets it elect itself and apply its whole log.
 * Returns 0 when it loaded; otherwise -1 with err holding kv_node_open's message, which must
 * name one of the files and a byte offset in it, or the node's refusal of cluster settings
 * (kv/node.h) that are not its options, from its snapshot at start or from its log as it
 * applies it. Anything else fails the run, as does a node that stops for another reason while
 * applying what it loaded, or one that does not lead (unless its term is RAFT_MAX_TERM, where
 * a node does not campaign). A loaded node is closed again.
 */
int fuzz_node_load(struct raft_vfs *vfs, char *err, size_t err_len);

/*
 * The history the storage targets' disks and the command seeds are made of: command k of
 * FUZZ_HISTORY_CMDS, covering every writing op (a session opened at entry index session_id
 * serves the session's commands; 0 before it is open). Keys and data are static strings.
 */
#define FUZZ_HISTORY_CMDS 16u
void fuzz_history_cmd(unsigned k, uint64_t session_id, struct kv_cmd *c);

/*
 * Writes the data directory of a one-node cluster that lived through the history into FUZZ_DIR
 * of vfs, with the real node and storage (segments of RAFT_STORAGE_MIN_SEGMENT_BYTES, so that
 * they rotate): with snapshot, the node also took a snapshot after FUZZ_SNAPSHOT_AFTER
 * commands and applied the rest after it. 0, or -1 with a message on stderr.
 */
#define FUZZ_SNAPSHOT_AFTER 9u
int fuzz_build_disk(struct raft_vfs *vfs, bool snapshot);

/* The names of FUZZ_DIR's files of one kind ("wal-", "metadata", "snapshot-"), sorted, in a
 * malloc'd array of malloc'd strings (raft_vfs_names_free). 0 or an errno. */
int fuzz_list(struct raft_vfs *vfs, const char *prefix, char ***names, size_t *n);

/* The files of a disk fuzz_build_disk wrote, kept in memory: the storage targets' templates. */
struct fuzz_disk {
	size_t n;
	char **names; /* sorted */
	unsigned char **bufs;
	size_t *lens;
};

/* The disk of fuzz_build_disk(snapshot), built at the first call and kept (never freed: the
 * targets use it for every input). Fails the run when it cannot be built. */
const struct fuzz_disk *fuzz_disk_template(bool snapshot);
/* The index in d of the k-th (modulo their number) file whose name starts with prefix; -1 when
 * there is none. */
int fuzz_disk_pick(const struct fuzz_disk *d, const char *prefix, unsigned k);
/* A new memory vfs holding d's files, except that file `replace` (an index in d, or -1) holds
 * len bytes of buf instead, or is left out when buf is NULL. Fails the run when out of memory. */
struct raft_vfs *fuzz_disk_vfs(const struct fuzz_disk *d, int replace, const void *buf, size_t len);

/*
 * Walks the whole of s and fails the run unless its structure holds together: parent links,
 * child and subdirectory counts, the (parent, name) table, names and key lengths, inode numbers
 * (unique, below the counter), values within the configured limit, the node count, and the
 * sessions (table, LRU list in last-use order, count within the limit, recorded results).
 */
struct kv_store;
void fuzz_check_store(const struct kv_store *s);

/* Whether msg is a node's refusal of the cluster's settings (kv/node.h, "refusing to join"). */
bool fuzz_is_settings_refusal(const char *msg);
/* Whether msg names a file of FUZZ_DIR and the offset of the bad bytes ("... at byte N"). */
bool fuzz_msg_names_file_and_offset(const char *msg);

#endif /* TESTS_FUZZ_FUZZLIB_H */
