/* inode.h - the inode table: what the kernel knows of each inode, and each inode's key. */
#ifndef FS_INODE_H
#define FS_INODE_H

#include <stddef.h>
#include <stdint.h>

/*
 * FUSE inode numbers are the store's stable ids (struct kv_attr.ino, never reused; 1 is the root,
 * whose key is ""). The store is addressed by path, so the table remembers, for every inode the
 * kernel holds (lookup count > 0), its parent inode and name: the key of an inode is its parent's
 * key, "/", its name. At most one inode is attached to a (parent, name): when a lookup, create or
 * rename puts an inode there, the one that was there is detached (its key is unknown from then on,
 * and operations on it fail with ESTALE) until a lookup finds it again.
 *
 * Limits: names of at most KV_MAX_NAME_BYTES, keys of at most KV_MAX_KEY_BYTES; the table grows
 * with the kernel's lookups and shrinks with its forgets.
 */

#define FS_INODE_ROOT 1u

struct fs_inode_table;

/* 0 or -ENOMEM. Free with fs_inode_table_free(). */
int fs_inode_table_new(struct fs_inode_table **out);
/* Frees the table. NULL is ignored. */
void fs_inode_table_free(struct fs_inode_table *t);

/* The kernel learned ino as name in parent (one more lookup): ino is attached there, replacing
 * whatever was. name (len bytes) is copied. 0 or -ENOMEM (nothing changed). The root is not
 * counted. */
int fs_inode_remember(struct fs_inode_table *t, uint64_t ino, uint64_t parent, const char *name,
                      size_t len);
/* The kernel forgot n lookups of ino; at zero the inode leaves the table. */
void fs_inode_forget(struct fs_inode_table *t, uint64_t ino, uint64_t n);
/* (parent, name) was removed: the inode there (if any) is detached. */
void fs_inode_unlinked(struct fs_inode_table *t, uint64_t parent, const char *name);
/* (parent, name) moved to (new_parent, new_name): what was at the destination is detached, the
 * source inode is attached there. 0 or -ENOMEM (the source is then detached). */
int fs_inode_renamed(struct fs_inode_table *t, uint64_t parent, const char *name,
                     uint64_t new_parent, const char *new_name);
/* The parent of ino (the root for the root and for unknown or detached inodes). */
uint64_t fs_inode_parent(const struct fs_inode_table *t, uint64_t ino);

/*
 * Writes the key of ino, followed by "/" name when name is not NULL, NUL-terminated, into
 * buf[0..cap) (cap > KV_MAX_KEY_BYTES suffices) and its length into *len. Returns 0,
 * -ENAMETOOLONG (name over KV_MAX_NAME_BYTES, or the key over KV_MAX_KEY_BYTES), or -ESTALE (ino
 * or an ancestor is unknown or detached).
 */
int fs_inode_key(const struct fs_inode_table *t, uint64_t ino, const char *name, char *buf,
                 size_t cap, size_t *len);

#endif
