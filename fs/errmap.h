/* errmap.h - the one mapping from key/value outcomes and errors to errno (STYLE.md 7). */
#ifndef FS_ERRMAP_H
#define FS_ERRMAP_H

/*
 * The errno a file operation fails with, given a request outcome (enum kv_proto status,
 * KV_STATUS_*) and, when that outcome is KV_STATUS_OK, the operation's enum kv_err (also the
 * errors of kv_cmd_encode(), passed with KV_STATUS_OK). Returns 0 only for KV_STATUS_OK with
 * KV_OK. DESIGN.md 6: never proposed -> ETIMEDOUT, outcome unknown -> EIO.
 */
int fs_errno(int status, int kv_err);

#endif
