/* store_internal.h - the kv store's data structures, shared by store.c, snapshot.c and tests. */
#ifndef KV_STORE_INTERNAL_H
#define KV_STORE_INTERNAL_H

#include <stdint.h>

#include "kv/store.h"

/*
 * One key. Nodes are found by (parent ino, name) in one hash table, so a path lookup is one probe
 * per component and renaming a directory touches one node, not its subtree. Siblings form an
 * unsorted doubly-linked list (readers sort). Sized for a million keys: about 90 bytes + name.
 */
struct kv_node {
	struct kv_node *hnext; /* hash chain */
	struct kv_node *parent; /* NULL only for the root */
	struct kv_node *sib_prev; /* siblings in parent->u.dir.first's list */
	struct kv_node *sib_next;
	uint64_t ino;
	uint64_t mtime_ns;
	uint64_t ctime_ns;
	union {
		struct {
			struct kv_node *first;
			uint32_t n_children;
			uint32_t n_subdirs; /* children that are directories (nlink) */
		} dir;
		struct {
			unsigned char *data; /* malloc'd, NULL when size == 0 */
			uint32_t size;
		} file; /* regular file, or symlink target */
	} u;
	uint32_t mode; /* KV_MODE_* type | permission bits */
	uint32_t uid;
	uint32_t gid;
	uint32_t hash; /* of (parent ino, name) */
	uint8_t name_len;
	char name[]; /* not NUL-terminated */
};

struct kv_session {
	struct kv_session *hnext;
	struct kv_session *lru_prev; /* towards least recently used */
	struct kv_session *lru_next;
	uint64_t id;
	uint64_t last_seq; /* highest applied request number (0: none yet) */
	uint64_t last_used_ms; /* log time of the last request; non-decreasing along the LRU list */
	uint8_t result_len; /* 0: no recorded result (read-only op, or none yet) */
	unsigned char result[KV_SESSION_RESULT_BYTES];
};

struct kv_store {
	struct kv_settings
	        set; /* in force: the store's own until settings_index, then the cluster's */
	uint64_t settings_index; /* the Settings entry applied (0: none yet) */
	struct raft_siphash_key hash_key; /* kv_store_config.hash_key */
	struct kv_node *root;
	struct kv_node **buckets; /* power of two */
	size_t n_buckets;
	size_t n_nodes; /* root included */
	uint64_t next_ino; /* > every ino handed out */
	uint64_t now_ms; /* largest time_ms applied */
	uint64_t applied_index;
	struct kv_session **sbuckets; /* power of two >= max_sessions */
	size_t n_sbuckets;
	size_t n_sessions;
	struct kv_session *lru_head; /* least recently used */
	struct kv_session *lru_tail;
};

/* Helpers snapshot.c shares with store.c. */
int kv_store_alloc(const struct kv_store_config *cfg, bool with_root, struct kv_store **out);
/* Sizes the session table for max_sessions, moving the sessions there: KV_OK, or KV_ENOMEM with
 * nothing changed. */
int kv_store_size_sessions(struct kv_store *s, uint32_t max_sessions);
struct kv_node *kv_node_new(const char *name, size_t name_len);
void kv_node_free(struct kv_node *n);
struct kv_node *kv_node_find(const struct kv_store *s, const struct kv_node *dir, const char *name,
                             size_t name_len);
/* Links n (with parent set by the caller) into its parent's children and the hash table. */
void kv_node_link(struct kv_store *s, struct kv_node *parent, struct kv_node *n);
bool kv_name_valid(const char *name, size_t len);
struct kv_session *kv_session_find(const struct kv_store *s, uint64_t id);
/* Appends a session at the most recently used end. */
void kv_session_link(struct kv_store *s, struct kv_session *ss);
/* Children of dir sorted by name in a new array (caller frees), or NULL on ENOMEM/no children. */
struct kv_node **kv_node_sorted_children(const struct kv_node *dir);

static inline bool kv_node_is_dir(const struct kv_node *n)
{
	return (n->mode & KV_MODE_TYPE) == KV_MODE_DIR;
}

#endif /* KV_STORE_INTERNAL_H */
