/* tplguard.h - sections of tpl calls whose fatal errors return to us and whose memory we free. */
#ifndef RAFT_TPLGUARD_H
#define RAFT_TPLGUARD_H

#include <setjmp.h>
#include <stdbool.h>

/*
 * tpl reports out-of-memory and a few "internal errors" through tpl_hook.fatal, whose default
 * calls exit(), and leaves its own structures half built when that happens. Every tpl call of
 * raft/codec.c and kv/snapshot.c therefore runs inside a section (raft_tplguard_run):
 *
 * - the fatal hook longjmps back to the section of this thread, which returns false;
 * - every allocation tpl makes in a section goes on the section's list (the arena), and the
 *   whole list is freed when the section ends, normally or by longjmp: tpl_free is never
 *   called, and what a caller keeps it copies out of tpl's buffers first;
 * - tpl's diagnostics (tpl_hook.oops) are not printed: the caller reports a bad image.
 *
 * The hooks are process-wide (tpl_hook is a global): they are installed once, at the first
 * section, and keep the hooks they replaced, to which a tpl call made on a thread with no
 * section running is passed. The running section is thread-local, so threads may run sections
 * at the same time; a section may run inside another (the inner one ends first).
 */

struct raft_tplguard_link {
	struct raft_tplguard_link *prev;
	struct raft_tplguard_link *next;
};

/* One section. It lives in a frame of the caller's (not in the one that calls setjmp), so it is
 * intact after the longjmp. Set up by raft_tplguard_init; the other fields are this module's. */
struct raft_tplguard {
	bool (*alloc_fails)(void *ctx); /* test hook, may be NULL: true fails an allocation */
	void *alloc_fails_ctx;
	bool alloc_failed; /* an allocation for tpl failed in the section */
	struct raft_tplguard_link arena; /* list head (circular) of tpl's allocations */
	jmp_buf *env; /* where the fatal hook returns to */
	struct raft_tplguard *outer; /* the section this one runs inside, on this thread */
};

/* Prepares g for one raft_tplguard_run. alloc_fails(ctx), when not NULL, is asked before each
 * allocation tpl makes in the section; true makes that allocation fail. */
void raft_tplguard_init(struct raft_tplguard *g, bool (*alloc_fails)(void *ctx), void *ctx);

/*
 * Runs body(arg) as a section on this thread. Returns true when body returned, with its value
 * in *rc, or false when tpl gave up in its fatal hook (*rc untouched): then
 * raft_tplguard_out_of_memory tells whether an allocation had failed. Either way every
 * allocation tpl made in the section has been freed. After a false return only what body left
 * in memory outside its own frame (arg, say) is meaningful.
 */
bool raft_tplguard_run(struct raft_tplguard *g, int (*body)(void *arg), void *arg, int *rc);

/* Whether an allocation for tpl failed in g's section (why it ended, after a false run). */
bool raft_tplguard_out_of_memory(const struct raft_tplguard *g);

/* Releases early a buffer that tpl allocated in the running section (a tpl_bin's addr, say),
 * once its bytes are copied out. NULL is ignored. */
void raft_tplguard_free(void *p);

#endif /* RAFT_TPLGUARD_H */
