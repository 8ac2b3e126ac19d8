/* cmd.h - the key/value layer's errors, its commands (log entry payloads) and their results. */
#ifndef KV_CMD_H
#define KV_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A command is what a proposer puts in a Raft log entry; every replica decodes and applies it
 * (kv/store.h). Everything nondeterministic an operation needs travels inside it: the proposer's
 * clock ("log time"), the caller's credentials and mode. A result is what the state machine answers;
 * its encoding is what a session keeps for a retried request and what a server sends to a client.
 *
 * Command wire format, version 1, all integers little-endian, no padding:
 *
 *   u8 version (KV_CMD_VERSION)  u8 op (enum kv_op)
 *   u64 session  u64 seq  u64 time_ms  u32 uid  u32 gid  u32 mode
 *   (time_ms is the leader's: whatever the sender put there is replaced when it is proposed;
 *   uid and gid of a network client's request are its connection's identity, set by the node
 *   it connected to)
 *   then the fields the op carries, in this order (see kv_op_fields()):
 *     KEY     u16 len (<= KV_MAX_KEY_BYTES), len bytes
 *     KEY2    u16 len (<= KV_MAX_KEY_BYTES), len bytes           Rename destination
 *     DATA    u32 len (<= KV_VALUE_BYTES_LIMIT), len bytes       value, or Symlink target
 *     OFFSET  u64                                                WriteAt offset, Truncate size
 *     FLAGS   u32                                                Rename KV_RENAME_*, SetAttr KV_ATTR_*
 *     ATTR    u32 mode u32 uid u32 gid u64 mtime_ns u64 ctime_ns SetAttr values
 *     COUNT   u32 (<= KV_VALUE_BYTES_LIMIT)                       Read: most bytes wanted
 *     SETTINGS u64 max_value_bytes u64 session_timeout_ms u32 max_sessions   Settings
 *   and nothing after them: trailing bytes make the command malformed.
 *
 * The codec checks structure and the fixed limits only; what a key may contain, the configured
 * value limit and the meaning of flags are checked when the command is applied, so that every
 * replica refuses a bad command the same way.
 */

#define KV_CMD_VERSION 1
#define KV_RESULT_VERSION 1

/* A key (a path) is at most this many bytes in total, each component at most KV_MAX_NAME_BYTES. */
#define KV_MAX_KEY_BYTES 4096
#define KV_MAX_NAME_BYTES 255
/* Symlink targets have the same limit as keys (PATH_MAX). */
#define KV_MAX_TARGET_BYTES KV_MAX_KEY_BYTES
/* Default for struct kv_store_config.max_value_bytes (the --max-value-bytes option). */
#define KV_DEFAULT_MAX_VALUE_BYTES (4u << 20)
/*
 * The largest value the codecs accept whatever the configuration, and the most max_value_bytes
 * may be set to: with the longest keys and every other field (KV_CMD_MAX_FRAMING_BYTES) its
 * command still fits one Raft log entry (RAFT_MAX_ENTRY_BYTES, checked at compile time in
 * cmd.c), so no value the limit lets through can reach storage and be refused there.
 */
#define KV_VALUE_BYTES_LIMIT (16u << 20)
/* Bytes of a command beside its data, at most: the header, two keys, every other field. */
#define KV_CMD_MAX_FRAMING_BYTES (38u + 2u * (2u + KV_MAX_KEY_BYTES) + 4u + 8u + 4u + 28u + 20u)
/* Most entries a ReadDir result may carry (a result decoder refuses more). */
#define KV_MAX_DIR_ENTRIES (1u << 24)

/* Errors of the key/value layer. 0 is success; fs/ maps them to errno in one place. */
enum kv_err {
	KV_OK = 0,
	KV_ENOENT, /* no such key */
	KV_EEXIST, /* key exists (CreateExclusive, Mkdir, Symlink, Rename noreplace) */
	KV_ENOTDIR, /* a path component is not a directory */
	KV_EISDIR, /* the key is a directory */
	KV_ENOTEMPTY, /* directory has children (Rmdir, Rename over a directory) */
	KV_EINVAL, /* invalid argument: bad key, bad flags, rename into own subtree, ... */
	KV_ENAMETOOLONG, /* key over KV_MAX_KEY_BYTES or a component over KV_MAX_NAME_BYTES */
	KV_EFBIG, /* value would exceed the configured max_value_bytes */
	KV_EPERM, /* SetAttr not allowed for the caller (not owner, not root) */
	KV_ESTALE, /* request number below the session's highest: an old retry, refused */
	KV_ESESSION_EXPIRED, /* session unknown, closed, expired or evicted */
	KV_ENOMEM, /* allocation failed */
	KV_ECORRUPT, /* malformed encoding or snapshot */
	KV_EVERSION, /* encoding of an unknown version */
	KV_EIO, /* a snapshot reader or writer callback failed */
	KV_ERR_COUNT
};

/* Static string describing err; never NULL. */
const char *kv_strerror(int err);

enum kv_op {
	KV_OP_PUT = 1, /* key, data: replace the value (creates key and parents) */
	KV_OP_APPEND, /* key, data: append (missing key: like Put) */
	KV_OP_GET, /* key: the value ("" and exists=false when missing) */
	KV_OP_DELETE, /* key: remove a file or symlink */
	KV_OP_CREATE_EXCLUSIVE, /* key, data: create with data, KV_EEXIST if present */
	KV_OP_WRITE_AT, /* key, data, offset: write; a gap past the end reads as zeros */
	KV_OP_TRUNCATE, /* key, offset = new size (the file must exist) */
	KV_OP_RENAME, /* key -> key2, flags KV_RENAME_NOREPLACE */
	KV_OP_MKDIR, /* key: the parent must exist */
	KV_OP_RMDIR, /* key: KV_ENOTEMPTY if it has children */
	KV_OP_SETATTR, /* key, flags = KV_ATTR_* mask, attr */
	KV_OP_SYMLINK, /* key, data = target: the parent must exist */
	KV_OP_READDIR, /* key: sorted entries */
	KV_OP_GETATTR, /* key: metadata, KV_ENOENT if missing */
	KV_OP_OPEN_SESSION, /* -: the new session's id is the entry's index (result.session) */
	KV_OP_CLOSE_SESSION, /* session: forget it */
	KV_OP_READ, /* key, offset, count: at most count bytes of the value from offset (a read(2) of
	               a file: the FUSE layer's one linearizable read per call, DESIGN.md 6) */
	KV_OP_SETTINGS, /* settings: the cluster's, proposed by its first leader (kv/store.h) */
	KV_OP_COUNT
};

/* Name of op ("put", "rename", ...), "unknown" for others; never NULL. */
const char *kv_op_name(int op);

/* Fields an op carries on the wire (kv_op_fields()). */
#define KV_FIELD_KEY 0x01u
#define KV_FIELD_KEY2 0x02u
#define KV_FIELD_DATA 0x04u
#define KV_FIELD_OFFSET 0x08u
#define KV_FIELD_FLAGS 0x10u
#define KV_FIELD_ATTR 0x20u
#define KV_FIELD_COUNT 0x40u
#define KV_FIELD_SETTINGS 0x80u

/* KV_FIELD_* bits of op, 0 for an unknown op. */
unsigned kv_op_fields(int op);
/* True for ops that never change the namespace (Get, Read, GetAttr, ReadDir). */
bool kv_op_is_read(int op);

/* Rename flags. Without NOREPLACE an existing destination is replaced as rename(2) does. */
#define KV_RENAME_NOREPLACE 0x1u

/* SetAttr mask: which of struct kv_cmd_attr are set. */
#define KV_ATTR_MODE 0x01u
#define KV_ATTR_UID 0x02u
#define KV_ATTR_GID 0x04u
#define KV_ATTR_MTIME 0x08u
#define KV_ATTR_CTIME 0x10u
/* With KV_ATTR_MTIME: the time is "now" (utimensat with UTIME_NOW for both times, touch), which
 * POSIX also allows a caller with write permission that does not own the file. */
#define KV_ATTR_TOUCH 0x20u
#define KV_ATTR_ALL 0x3fu

/* Mode bits as stored: a type plus permission bits (the Linux values, fixed here so that the state
 * machine never depends on a platform header). */
#define KV_MODE_TYPE 0170000u
#define KV_MODE_REG 0100000u
#define KV_MODE_DIR 0040000u
#define KV_MODE_LNK 0120000u
#define KV_MODE_PERM 07777u
#define KV_MODE_SUID 04000u
#define KV_MODE_SGID 02000u

struct kv_cmd_attr {
	uint32_t mode; /* permission bits (07777) */
	uint32_t uid;
	uint32_t gid;
	uint64_t mtime_ns; /* nanoseconds since the epoch */
	uint64_t ctime_ns;
};

/*
 * The cluster's settings: every choice that changes what an entry does, so that replicas apply
 * the same entry alike only if they share them. They are replicated state, not node options: the
 * first leader proposes its own in a Settings command, every replica applies it, snapshots keep
 * it, and a node whose options differ refuses to serve (kv/store.h, kv/node.h).
 */
struct kv_settings {
	uint64_t max_value_bytes; /* 1..KV_VALUE_BYTES_LIMIT: the --max-value-bytes option */
	uint64_t session_timeout_ms; /* > 0 */
	uint32_t max_sessions; /* 1..KV_MAX_SESSIONS_LIMIT (kv/store.h) */
};

/*
 * A decoded command. key, key2 and data point into the buffer it was decoded from (or into the
 * caller's memory when encoding): nothing here is owned.
 *
 * session 0 means "no session": the request is applied every time it is committed (no
 * exactly-once). Otherwise seq numbers the session's requests from 1 upwards, one outstanding at a
 * time (kv/store.h, sessions).
 */
struct kv_cmd {
	uint8_t op; /* enum kv_op */
	uint64_t session;
	uint64_t seq;
	uint64_t time_ms; /* ms since the epoch: the leader's clock, stamped when proposed */
	uint32_t uid; /* caller; new keys are owned by uid/gid */
	uint32_t gid;
	uint32_t mode; /* permission bits of a new key (07777) */
	const char *key;
	size_t key_len;
	const char *key2;
	size_t key2_len;
	const void *data;
	size_t data_len;
	uint64_t offset;
	uint32_t flags;
	struct kv_cmd_attr attr;
	uint32_t count; /* Read: most bytes wanted */
	struct kv_settings settings; /* Settings */
};

/* Bytes kv_cmd_encode() produces for cmd, or 0 when cmd exceeds a limit or has an unknown op. */
size_t kv_cmd_encoded_size(const struct kv_cmd *cmd);

/*
 * Encodes cmd into a new raft_buf (raft/raft.h) so that it can be proposed without a copy: on
 * KV_OK *buf holds one reference the caller owns (raft_propose() takes it; otherwise
 * raft_buf_unref()) and *len its size. Errors: KV_EINVAL (unknown op), KV_ENAMETOOLONG (key or
 * key2 over KV_MAX_KEY_BYTES), KV_EFBIG (data over KV_VALUE_BYTES_LIMIT), KV_ENOMEM.
 */
int kv_cmd_encode(const struct kv_cmd *cmd, void **buf, size_t *len);

/*
 * Decodes len bytes at buf into *cmd, whose pointers then borrow from buf (keep buf alive while
 * using cmd). Never reads outside [buf, buf + len). Errors: KV_EVERSION (unknown version),
 * KV_ECORRUPT (truncated, unknown op, a length over its limit or past the input, trailing bytes).
 */
int kv_cmd_decode(const void *buf, size_t len, struct kv_cmd *cmd);

/* Where time_ms lies in an encoded command (after version, op, session and seq). */
#define KV_CMD_TIME_OFFSET 18u

/*
 * Rewrites time_ms in the encoded command at buf in place (the leader stamps its clock into what
 * it proposes, kv/node.h): KV_OK, or KV_ECORRUPT (too short for a header) / KV_EVERSION, and buf
 * is unchanged. Nothing else is checked or touched.
 */
int kv_cmd_set_time(void *buf, size_t len, uint64_t time_ms);

/* Where uid and gid lie in an encoded command (after time_ms). */
#define KV_CMD_CALLER_OFFSET 26u

/*
 * Rewrites uid and gid in the encoded command at buf in place: a node applies a network client's
 * request as the identity of its connection, whatever the client wrote there (DESIGN.md 9).
 * KV_OK, or KV_ECORRUPT / KV_EVERSION as kv_cmd_set_time, and buf is unchanged.
 */
int kv_cmd_set_caller(void *buf, size_t len, uint32_t uid, uint32_t gid);

/* --- results ------------------------------------------------------------------------------------ */

/* Metadata of a key, as the filesystem's stat needs it. */
struct kv_attr {
	uint64_t ino; /* stable id, 1 is the root; never reused within a store's history */
	uint32_t mode; /* KV_MODE_* type | permission bits */
	uint32_t uid;
	uint32_t gid;
	uint32_t nlink; /* 1, or 2 + subdirectories for a directory */
	uint64_t size; /* value bytes; symlink: target bytes; directory: number of entries */
	uint64_t mtime_ns;
	uint64_t ctime_ns;
};

/* One ReadDir entry. name is not NUL-terminated. */
struct kv_dirent {
	uint64_t ino;
	uint32_t mode; /* type and permission bits */
	uint8_t name_len;
	const char *name;
};

/*
 * The outcome of one operation. Owned memory (value, ents and their names) is released by
 * kv_result_release(); a zeroed struct is a valid empty result.
 *
 * Result wire format, version 1, little-endian:
 *   u8 version  u8 op  u16 status  u8 flags (1: exists, 2: has_attr)  u64 session
 *   [has_attr] u64 ino u32 mode u32 uid u32 gid u32 nlink u64 size u64 mtime_ns u64 ctime_ns
 *   u32 value_len (<= KV_VALUE_BYTES_LIMIT), value bytes
 *   u32 n_ents (<= KV_MAX_DIR_ENTRIES), each: u64 ino u32 mode u8 name_len, name bytes
 */
struct kv_result {
	int status; /* KV_OK or the operation's enum kv_err */
	uint8_t op; /* enum kv_op, 0 when the command did not decode */
	bool exists; /* Get: the key exists (a missing key reads as "") */
	bool replayed; /* the answer of a retried request, from the session (not encoded) */
	bool has_attr; /* attr is valid: GetAttr, Get, and writes that leave a key behind */
	uint64_t session; /* OpenSession: the new session id */
	struct kv_attr attr;
	void *value; /* Get: the value or symlink target, a raft_buf; NULL when empty */
	size_t value_len;
	struct kv_dirent *ents; /* ReadDir: sorted by name (bytewise) */
	size_t n_ents;
	char *names; /* storage of ents[i].name */
};

/* Frees what r owns and zeroes it. NULL is ignored. */
void kv_result_release(struct kv_result *r);

/* Bytes kv_result_encode() produces for r (0 on overflow). */
size_t kv_result_encoded_size(const struct kv_result *r);

/*
 * Encodes r into a new raft_buf; the caller owns the reference in *buf (raft_buf_unref()).
 * Errors: KV_EFBIG (value or entry count over its limit), KV_ENOMEM.
 */
int kv_result_encode(const struct kv_result *r, void **buf, size_t *len);

/* Encodes r into out[0..cap); KV_EFBIG if it does not fit. Used for results kept in sessions. */
int kv_result_encode_to(const struct kv_result *r, void *out, size_t cap, size_t *len);

/*
 * Decodes len bytes at buf into *r, copying value and names: r owns them afterwards
 * (kv_result_release(), also called on error). Errors: KV_EVERSION, KV_ECORRUPT, KV_ENOMEM.
 */
int kv_result_decode(const void *buf, size_t len, struct kv_result *r);

#endif /* KV_CMD_H */
