/* store.h - the replicated key/value state machine: a namespace of paths plus client sessions. */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/cmd.h"
#include "raft/siphash.h"

/*
 * A deterministic state machine with no I/O and no clock: applying the same commands at the same
 * indexes to two stores gives the same state (kv_store_hash()) and the same snapshot bytes once
 * a Settings command is among them, whatever each store's own configuration. Time comes from the
 * commands (time_ms), ids from the log (the entry index) and a counter kept in the state (inode
 * numbers).
 *
 * Settings (struct kv_settings: the value limit, the session timeout and count) change what an
 * entry does, so they are state, not configuration: a new store follows the settings it was
 * given (its node's options) only until the first Settings command is applied, and from then on
 * those for good, whatever it was given; snapshots keep them. The node refuses to serve when its
 * options differ from the cluster's (kv/node.h), and no leader proposes anything but a Settings
 * command before one is applied, so no replica applies an entry under its own settings.
 *
 * Keys are paths "a/b/c": no leading or trailing slash, no empty, "." or ".." component, no NUL,
 * components of at most KV_MAX_NAME_BYTES and KV_MAX_KEY_BYTES in total. The empty key "" is the
 * root directory (ino 1): it can be read (GetAttr, ReadDir) and SetAttr'd, not created or removed.
 * Symlinks are never followed: a symlink in the middle of a key is KV_ENOTDIR.
 *
 * Operations (enum kv_op); what each does beyond its name:
 *   Put, Append, CreateExclusive, WriteAt create missing parents (mode 0755, owned by the caller)
 *     and a missing key (mode cmd->mode, owned by cmd->uid/gid); on an existing directory
 *     KV_EISDIR, on a symlink KV_EINVAL. Append to a missing key is a Put. WriteAt past the end
 *     zero-fills the gap. A result over max_value_bytes is KV_EFBIG and changes nothing.
 *     A write by someone other than the owner or root clears setuid/setgid.
 *   Truncate needs an existing file; growing zero-fills.
 *   Delete removes a file or symlink (directory: KV_EISDIR; missing: KV_ENOENT).
 *   Mkdir, Symlink need an existing parent (KV_ENOENT) and a free name (KV_EEXIST).
 *   Rmdir: KV_ENOTEMPTY when it has children, KV_ENOTDIR on a non-directory.
 *   Rename follows rename(2): moves files, symlinks and whole directories atomically; an existing
 *     destination is replaced unless KV_RENAME_NOREPLACE (then KV_EEXIST); a directory replaces
 *     only an empty directory (KV_ENOTEMPTY), a non-directory only a non-directory (KV_EISDIR /
 *     KV_ENOTDIR); moving a directory into its own subtree is KV_EINVAL; the destination's parent
 *     must exist; same key: nothing happens.
 *   SetAttr: only the owner or root changes mode and times, only root changes the owner, the
 *     owner may set the group to its own gid (else KV_EPERM); ctime is set to log time unless the
 *     mask sets it.
 *   Get of a missing key: KV_OK, exists = false, empty value; of a directory KV_EISDIR; of a
 *     symlink, its target. Read is a Get of at most count bytes from offset. GetAttr of a missing key: KV_ENOENT. ReadDir: entries sorted bytewise.
 * Creations and removals set the parent directory's mtime and ctime to log time; writes set the
 * key's mtime and ctime.
 *
 * Sessions (exactly-once, DESIGN.md section 5):
 *   OpenSession: the entry's index becomes the session id (unique, known to every replica, no
 *     coordination; the client reads it from result.session). At max_sessions the least recently
 *     used session is evicted first.
 *   A request carries (session, seq), seq from 1 upwards, one outstanding request per session
 *     (a client that wants concurrency opens several sessions):
 *       seq > highest applied: applied, and its result recorded as the session's;
 *       seq == highest: a retry: the recorded result is returned (result.replayed), nothing is
 *         applied again; for a read-only op (Get, GetAttr, ReadDir) no result is recorded and the
 *         read is served again from the current state;
 *       seq < highest: refused with KV_ESTALE (its answer is gone, it must not be applied);
 *       unknown, closed, evicted or expired session: KV_ESESSION_EXPIRED.
 *     Session 0 means "no session": applied every time, no record (tests, tools that don't retry).
 *   CloseSession forgets the session (a retried close then sees KV_ESESSION_EXPIRED: treat it as
 *   success).
 *   Settings (cmd->settings; never in a session): the first one applied becomes the store's
 *     settings for good: the session table is resized and the least recently used sessions
 *     over the new max_sessions are evicted (values already stored over a new max_value_bytes
 *     stay). A later one is KV_EEXIST and changes nothing; invalid values are KV_EINVAL.
 *   Log time: the store's clock is the largest time_ms applied so far (a proposer with a slow
 *   clock cannot move it back). A session not used for session_timeout_ms of log time is expired:
 *   each apply removes at most KV_SESSION_EXPIRE_BATCH of the oldest (an LRU list ordered by last
 *   use), and a request on a session past its timeout is refused even if it is still listed.
 */

/* Defaults of struct kv_store_config. */
#define KV_SESSION_TIMEOUT_MS (60u * 60u * 1000u)
#define KV_DEFAULT_MAX_SESSIONS 65536u
/* Most sessions expired by one apply: bounds the work of an entry. */
#define KV_SESSION_EXPIRE_BATCH 64u
/* Bytes of a recorded session result (mutations answer a status and metadata only). */
#define KV_SESSION_RESULT_BYTES 80u
/* Upper bound of max_sessions. */
#define KV_MAX_SESSIONS_LIMIT (1u << 24)
/* Inode numbers count up from 2 and are never reused; a counter past this one (2^63 - 1, one
 * create a nanosecond for 292 years) is damage: a create would wrap it to 0. */
#define KV_INO_LIMIT (UINT64_MAX >> 1)

/* What a node gives the store it makes (kv_store_new, kv_snapshot_restore). */
struct kv_store_config {
	/* The node's own settings (its options): followed until the cluster's are applied, from a
	 * Settings command or a snapshot made after one. */
	struct kv_settings settings;
	/* The key of the hash that places names in the store's table (SipHash-2-4): unlike the
	 * rest, node-local and secret, never replicated nor saved. It decides only where a name
	 * sits in memory, never the state: kv_store_hash(), snapshots and ReadDir do not depend
	 * on it. Draw it at random (kv_node does), or a client who knows it can craft names that
	 * all share one chain and slow every apply (hash flooding). Default: all zero. */
	struct raft_siphash_key hash_key;
};

/* Defaults: KV_DEFAULT_MAX_VALUE_BYTES, KV_SESSION_TIMEOUT_MS, KV_DEFAULT_MAX_SESSIONS, key 0. */
void kv_store_config_default(struct kv_store_config *cfg);
/* True when every field of st is in its range. */
bool kv_settings_valid(const struct kv_settings *st);

struct kv_store;

/* A new store holding only the root directory (mode 0755, owner 0:0, times 0). cfg NULL: defaults.
 * Errors: KV_EINVAL (bad cfg), KV_ENOMEM. Free with kv_store_free(). */
int kv_store_new(const struct kv_store_config *cfg, struct kv_store **out);
/* Frees the store and everything in it. NULL is ignored. */
void kv_store_free(struct kv_store *s);

/*
 * Applies the committed log entry at index (> the last applied index) holding len bytes of an
 * encoded command. *out (zeroed first) receives the outcome, owned by the caller
 * (kv_result_release()); its status is the answer for the client.
 *
 * Returns KV_OK when the entry is consumed, whatever its outcome (a malformed command is consumed
 * with out->status KV_ECORRUPT and changes nothing but the applied index). Returns KV_EINVAL for
 * an index not above the last applied one, and KV_ENOMEM when memory ran out: then the entry is
 * NOT consumed and the caller must apply it again (or stop); the namespace and session records
 * are unchanged, and the repeat leads to the same state as a first successful apply.
 */
int kv_store_apply(struct kv_store *s, uint64_t index, const void *cmd, size_t len,
                   struct kv_result *out);

/* The index of the last consumed entry (0 for a new store). */
uint64_t kv_store_applied_index(const struct kv_store *s);
/* The settings in force into *out (out may be NULL). Returns the index of the Settings entry that
 * set them, or 0 while the store still follows its own (kv_store_config.settings). */
uint64_t kv_store_settings(const struct kv_store *s, struct kv_settings *out);
/* The store's log time: the largest time_ms applied. */
uint64_t kv_store_now_ms(const struct kv_store *s);
/* Number of keys, the root included; number of live sessions. */
size_t kv_store_key_count(const struct kv_store *s);
size_t kv_store_session_count(const struct kv_store *s);

/* --- local reads (after ReadIndex; never through the log) ------------------------------------ */

/* Checks a key's syntax: KV_OK, KV_EINVAL or KV_ENAMETOOLONG. "" (the root) is valid. */
int kv_key_check(const char *key, size_t len);

/*
 * The value of key (a symlink's target). A missing key is KV_OK with *exists false and an empty
 * value. On KV_OK *value is NULL (empty) or a raft_buf copy the caller owns (raft_buf_unref()),
 * *attr (may be NULL) the key's metadata when it exists. Errors: KV_EINVAL, KV_ENAMETOOLONG,
 * KV_ENOTDIR, KV_EISDIR, KV_ENOMEM.
 */
int kv_store_get(const struct kv_store *s, const char *key, size_t len, void **value,
                 size_t *value_len, bool *exists, struct kv_attr *attr);

/*
 * At most count bytes of key's value from offset: kv_store_get() of a slice, the same rules and
 * errors (an offset at or past the end gives an empty value; *attr holds the whole value's
 * metadata, its size included).
 */
int kv_store_read(const struct kv_store *s, const char *key, size_t len, uint64_t offset,
                  uint64_t count, void **value, size_t *value_len, bool *exists,
                  struct kv_attr *attr);

/* Metadata of key. Errors: KV_ENOENT, KV_ENOTDIR, KV_EINVAL, KV_ENAMETOOLONG. */
int kv_store_getattr(const struct kv_store *s, const char *key, size_t len, struct kv_attr *attr);

/* True when key exists (false for invalid keys too). */
bool kv_store_exists(const struct kv_store *s, const char *key, size_t len);

/*
 * The entries of directory key, sorted bytewise by name, into out->ents / out->names (owned by
 * out: kv_result_release()), plus the directory's attr. *out is zeroed first. Errors: KV_ENOENT, KV_ENOTDIR, KV_EINVAL,
 * KV_ENAMETOOLONG, KV_ENOMEM.
 */
int kv_store_readdir(const struct kv_store *s, const char *key, size_t len, struct kv_result *out);

/*
 * A 64-bit digest of the whole state: every key with its metadata and value, sessions with their
 * records and LRU order, the clock, the inode counter and the cluster's settings once applied
 * (neither a store's own settings before that, nor the hash key: no part of the state). Independent of the history that built the namespace (a sum of
 * per-key digests) and of where names sit in the table; not of the applied index.
 */
uint64_t kv_store_hash(const struct kv_store *s);

/* --- snapshots (kv/snapshot.c) ------------------------------------------------------------------ */

/*
 * The snapshot stream is a sequence of records, each framed as
 *   u32 magic "KVS1"  u32 kind  u32 len  u32 crc32c(image)  then a tpl image of len bytes,
 * kinds: 1 header (version, applied index, clock, inode counter, then from version 2 the index of
 * the Settings entry applied (0: none) and the settings, all 0 without one), 2 up to
 * KV_SNAPSHOT_RECORD_KEYS keys in depth-first order with sorted siblings, 3 sessions in LRU
 * order, 4 end (counts). The bytes depend only on the state, never on the history that built it.
 * Version 1 streams (no settings) still load: the store then follows the settings it is given.
 */
#define KV_SNAPSHOT_RECORD_KEYS 4096u
#define KV_SNAPSHOT_RECORD_SOFT_BYTES (1u << 20)
#define KV_SNAPSHOT_RECORD_SESSIONS 4096u

/* Receives the next len bytes of the stream; returns 0, or nonzero to abort (KV_EIO results). */
typedef int (*kv_snapshot_write_fn)(void *ctx, const void *buf, size_t len);
/* Fills buf with exactly the next len bytes; returns 0, or nonzero when it cannot (end of the
 * stream or an I/O error: either way the restore fails with KV_ECORRUPT). */
typedef int (*kv_snapshot_read_fn)(void *ctx, void *buf, size_t len);

/* Streams s through write, one bounded record at a time. Errors: KV_EIO (write failed),
 * KV_ENOMEM. The store is not modified. */
int kv_snapshot_save(const struct kv_store *s, kv_snapshot_write_fn write, void *ctx);

/*
 * Builds a new store with configuration cfg (NULL: defaults) from a stream read through read:
 * the settings the snapshot holds win over cfg's (which are followed only when it holds none).
 * Reads exactly the snapshot's bytes, no more. On KV_OK *out is the new store (the caller swaps it
 * in); on error nothing is left allocated. Errors: KV_ECORRUPT (bad frame, checksum, tpl image,
 * contents, or the reader failed), KV_EVERSION, KV_EFBIG (a value over KV_VALUE_BYTES_LIMIT or
 * more than KV_MAX_SESSIONS_LIMIT sessions), KV_ENOMEM, KV_EINVAL (bad cfg).
 */
int kv_snapshot_restore(const struct kv_store_config *cfg, kv_snapshot_read_fn read, void *ctx,
                        struct kv_store **out);

/* Where and why a restore failed: the offset in the stream of the record it could not use (its
 * first byte) and a static reason ("checksum mismatch", "cut short", ...). */
struct kv_snapshot_failure {
	uint64_t offset;
	const char *why;
};

/* kv_snapshot_restore, which on failure also fills *failure (when not NULL): what an operator
 * needs to find the bad bytes (DESIGN.md 8: refused with the file and offset named). */
int kv_snapshot_load(const struct kv_store_config *cfg, kv_snapshot_read_fn read, void *ctx,
                     struct kv_store **out, struct kv_snapshot_failure *failure);

#endif /* KV_STORE_H */
