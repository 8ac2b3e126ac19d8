/* fuse.h - the FUSE filesystem of a node: low-level handlers driven by the daemon's loop. */
#ifndef FS_FUSE_H
#define FS_FUSE_H

#include <stddef.h>

#include "fs/options.h"

struct event_base;
struct kv_node;

/*
 * Each file operation becomes one key/value request on the local node (DESIGN.md 6): a handler
 * copies what it needs from the kernel's request, submits a struct kv_req carrying the
 * fuse_req_t, returns, and the reply leaves from the request's callback. Every FUSE request is
 * answered exactly once on every path: the cluster's answer, its timeout (ETIMEDOUT / EIO), an
 * interrupt (EINTR, the kv_req is cancelled), or fs_fuse_stop() (EIO).
 */

struct fs_fuse_hooks {
	void *ctx;
	/* The mount went away (fusermount3 -u, umount, an abort): the daemon should stop. Called
	 * once, from the loop. */
	void (*unmounted)(void *ctx);
	/* Diagnostics: level as in enum fs_log_level; one line, no newline. */
	void (*log)(void *ctx, int level, const char *msg);
};

struct fs_fuse;

/*
 * Creates the FUSE session, mounts it on opt->mountpoint (made ready by fs_mountpoint_prepare()
 * first: fs/mountpoint.h) with opt->mount_opts plus
 * fsname=raftfs,subtype=raftfs, and adds its (non-blocking) device fd to base. base, node, opt and
 * hooks must outlive the returned object. Returns 0, or -1 with a message in err (nothing left
 * mounted or allocated).
 */
int fs_fuse_start(struct event_base *base, struct kv_node *node, const struct fs_options *opt,
                  const struct fs_fuse_hooks *hooks, struct fs_fuse **out, char *err,
                  size_t err_len);

/*
 * Answers every request still waiting (in-flight key/value requests are cancelled: call this
 * before kv_node_close()), unmounts and frees f. NULL is ignored.
 */
void fs_fuse_stop(struct fs_fuse *f);

#endif
