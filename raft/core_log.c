/* core_log.c - the in-memory Raft log of the core (see core_log.h). */
#include <stdlib.h>
#include <string.h>

#include "raft/core_log.h"

void core_log_init(struct core_log *l, uint64_t base_index, uint64_t base_term)
{
	memset(l, 0, sizeof(*l));
	l->base_index = base_index;
	l->base_term = base_term;
}

static void release_range(struct core_log *l, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		l->bytes -= l->entries[i].len;
		raft_buf_unref(l->entries[i].data);
	}
}

void core_log_free(struct core_log *l)
{
	release_range(l, 0, l->n);
	free(l->entries);
	memset(l, 0, sizeof(*l));
}

uint64_t core_log_term(const struct core_log *l, uint64_t index)
{
	if (index == l->base_index)
		return l->base_term;
	if (index < l->base_index || index > core_log_last_index(l))
		return 0;
	return l->entries[index - l->base_index - 1].term;
}

uint64_t core_log_last_term(const struct core_log *l)
{
	return core_log_term(l, core_log_last_index(l));
}

const struct raft_entry *core_log_get(const struct core_log *l, uint64_t index)
{
	if (index <= l->base_index || index > core_log_last_index(l))
		return NULL;
	return &l->entries[index - l->base_index - 1];
}

int core_log_append(struct core_log *l, const struct raft_entry *e)
{
	if (e->index != core_log_last_index(l) + 1)
		return RAFT_EINVAL;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct raft_entry *a = realloc(l->entries, cap * sizeof(*a));
		if (!a)
			return RAFT_ENOMEM;
		l->entries = a;
		l->cap = cap;
	}
	l->entries[l->n++] = *e;
	l->bytes += e->len;
	raft_buf_ref(e->data);
	return RAFT_OK;
}

void core_log_truncate_from(struct core_log *l, uint64_t index)
{
	size_t keep;

	if (index <= l->base_index)
		index = l->base_index + 1;
	if (index > core_log_last_index(l))
		return;
	keep = (size_t)(index - l->base_index - 1);
	release_range(l, keep, l->n);
	l->n = keep;
}

void core_log_compact_to(struct core_log *l, uint64_t index)
{
	size_t drop;

	if (index <= l->base_index)
		return;
	if (index > core_log_last_index(l))
		index = core_log_last_index(l);
	drop = (size_t)(index - l->base_index);
	l->base_term = core_log_term(l, index);
	release_range(l, 0, drop);
	memmove(l->entries, l->entries + drop, (l->n - drop) * sizeof(*l->entries));
	l->n -= drop;
	l->base_index = index;
	/* give memory back after a large compaction */
	if (l->cap > 1024 && l->n < l->cap / 4) {
		size_t cap = l->n < 64 ? 64 : l->n * 2;
		struct raft_entry *a = realloc(l->entries, cap * sizeof(*a));
		if (a) {
			l->entries = a;
			l->cap = cap;
		}
	}
}

void core_log_reset(struct core_log *l, uint64_t index, uint64_t term)
{
	release_range(l, 0, l->n);
	l->n = 0;
	l->base_index = index;
	l->base_term = term;
}

uint64_t core_log_find_conflict_by_term(const struct core_log *l, uint64_t index, uint64_t term)
{
	uint64_t last = core_log_last_index(l);

	if (index > last)
		index = last;
	while (index > l->base_index && core_log_term(l, index) > term)
		index--;
	return index;
}
