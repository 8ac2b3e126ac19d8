/* core_log.h - the in-memory Raft log of the core: entries after a base (snapshot or compaction point). */
#ifndef RAFT_CORE_LOG_H
#define RAFT_CORE_LOG_H

#include "raft/raft.h"

/*
 * Holds entries base_index+1 .. base_index+n. base_term is the term of entry base_index (the last
 * entry covered by a snapshot or dropped by compaction), so the log can answer term(base_index)
 * for AppendEntries consistency checks (paper Figure 2, "prevLogTerm").
 * Invariant: entries[i].index == base_index + 1 + i. Every held entry owns a buffer reference.
 */
struct core_log {
	uint64_t base_index;
	uint64_t base_term;
	struct raft_entry *entries;
	size_t n;
	size_t cap;
	uint64_t bytes; /* payload bytes held */
};

void core_log_init(struct core_log *l, uint64_t base_index, uint64_t base_term);
/* Drops every entry and frees the array. */
void core_log_free(struct core_log *l);

static inline uint64_t core_log_last_index(const struct core_log *l)
{
	return l->base_index + l->n;
}

/* First index held (base_index + 1; greater than last when empty). */
static inline uint64_t core_log_first_index(const struct core_log *l)
{
	return l->base_index + 1;
}

/* Term of index: base_term at base_index, 0 when index is outside [base_index, last]. */
uint64_t core_log_term(const struct core_log *l, uint64_t index);
uint64_t core_log_last_term(const struct core_log *l);

/* Entry at index, or NULL when not held. */
const struct raft_entry *core_log_get(const struct core_log *l, uint64_t index);

/* Appends e at last+1 (e->index must equal it); takes a new reference to e->data. */
int core_log_append(struct core_log *l, const struct raft_entry *e);

/* Drops entries >= index (index > base_index). */
void core_log_truncate_from(struct core_log *l, uint64_t index);

/* Drops entries <= index (base_index <= index <= last); index becomes the new base. */
void core_log_compact_to(struct core_log *l, uint64_t index);

/* Drops everything; the log restarts after (index, term). */
void core_log_reset(struct core_log *l, uint64_t index, uint64_t term);

/*
 * The largest index <= index whose term is <= term, or base_index (fast log back-off: the entries
 * above it cannot match a log whose entry at index has that term; thesis 5.3 optimization).
 */
uint64_t core_log_find_conflict_by_term(const struct core_log *l, uint64_t index, uint64_t term);

#endif
