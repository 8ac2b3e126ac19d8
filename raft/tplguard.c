/* tplguard.c - tpl's hooks: fatal errors longjmp back, allocations go on a per-section arena. */
#include "raft/tplguard.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <tpl.h>

/* tpl.h does not declare the hook table it defines. */
extern tpl_hook_t tpl_hook;

/* An allocation made by tpl: the links, then the payload tpl sees. */
struct arena_block {
	struct raft_tplguard_link link; /* first member: a link pointer is its block */
	_Alignas(max_align_t) unsigned char data[];
};

static _Thread_local struct raft_tplguard *guard_current;
static pthread_once_t guard_hooks_once = PTHREAD_ONCE_INIT;
static tpl_hook_t guard_saved; /* the hooks ours replaced */

/* Asks the test hook, and remembers a failure it orders. */
static bool guard_alloc_fails(struct raft_tplguard *g)
{
	if (!g->alloc_fails || !g->alloc_fails(g->alloc_fails_ctx))
		return false;
	g->alloc_failed = true;
	return true;
}

static struct arena_block *block_of(void *p)
{
	return (struct arena_block *)((unsigned char *)p - offsetof(struct arena_block, data));
}

static void *guard_malloc(size_t sz)
{
	struct raft_tplguard *g = guard_current;
	struct raft_tplguard_link *head;
	struct arena_block *b;

	if (!g)
		return guard_saved.malloc(sz);
	if (sz > SIZE_MAX - sizeof(*b) || guard_alloc_fails(g))
		return NULL;
	b = malloc(sizeof(*b) + sz);
	if (!b) {
		g->alloc_failed = true;
		return NULL;
	}
	head = &g->arena;
	b->link.next = head->next;
	b->link.prev = head;
	head->next->prev = &b->link;
	head->next = &b->link;
	return b->data;
}

static void guard_free(void *p)
{
	struct arena_block *b;

	if (!guard_current) {
		guard_saved.free(p);
		return;
	}
	if (!p)
		return;
	b = block_of(p);
	b->link.prev->next = b->link.next;
	b->link.next->prev = b->link.prev;
	free(b);
}

static void *guard_realloc(void *p, size_t sz)
{
	struct raft_tplguard *g = guard_current;
	struct arena_block *b, *nb;

	if (!g)
		return guard_saved.realloc(p, sz);
	if (!p)
		return guard_malloc(sz);
	if (sz > SIZE_MAX - sizeof(*b) || guard_alloc_fails(g))
		return NULL;
	b = block_of(p);
	nb = realloc(b, sizeof(*b) + sz);
	if (!nb) {
		g->alloc_failed = true; /* b stays on the list */
		return NULL;
	}
	/* the block moved with its links: its neighbours point to it again */
	nb->link.prev->next = &nb->link;
	nb->link.next->prev = &nb->link;
	return nb->data;
}

static void arena_release(struct raft_tplguard *g)
{
	struct raft_tplguard_link *l = g->arena.next;

	while (l != &g->arena) {
		struct raft_tplguard_link *next = l->next;
		free(l); /* link is the first member of the block */
		l = next;
	}
	g->arena.next = g->arena.prev = &g->arena;
}

/* tpl's diagnostics are not ours to print: a bad image is reported by the caller. */
static int guard_oops(const char *fmt, ...)
{
	(void)fmt;
	return 0;
}

/* tpl calls this for out-of-memory and internal errors and assumes it does not return. */
static void guard_fatal(const char *fmt, ...)
{
	if (!guard_current) {
		/* no section on this thread: the handler we replaced */
		guard_saved.fatal("%s", fmt);
		abort();
	}
	longjmp(*guard_current->env, 1);
}

static void guard_hooks_install(void)
{
	guard_saved = tpl_hook;
	tpl_hook.oops = guard_oops;
	tpl_hook.malloc = guard_malloc;
	tpl_hook.realloc = guard_realloc;
	tpl_hook.free = guard_free;
	tpl_hook.fatal = guard_fatal;
}

void raft_tplguard_init(struct raft_tplguard *g, bool (*alloc_fails)(void *ctx), void *ctx)
{
	memset(g, 0, sizeof(*g));
	g->alloc_fails = alloc_fails;
	g->alloc_fails_ctx = ctx;
	g->arena.next = g->arena.prev = &g->arena;
}

/* Only g, body, arg and rc (none written after setjmp) are used after a longjmp. */
bool raft_tplguard_run(struct raft_tplguard *g, int (*body)(void *arg), void *arg, int *rc)
{
	jmp_buf env;

	pthread_once(&guard_hooks_once, guard_hooks_install);
	g->env = &env;
	g->outer = guard_current;
	guard_current = g;
	if (setjmp(env) != 0) {
		guard_current = g->outer;
		arena_release(g);
		return false;
	}
	*rc = body(arg);
	guard_current = g->outer;
	arena_release(g);
	return true;
}

bool raft_tplguard_out_of_memory(const struct raft_tplguard *g)
{
	return g->alloc_failed;
}

void raft_tplguard_free(void *p)
{
	guard_free(p);
}
