/* heap.h - a binary min-heap of fixed-size elements: the event queues of the simulators. */
#ifndef TESTS_LIB_HEAP_H
#define TESTS_LIB_HEAP_H

#include <stdbool.h>
#include <stddef.h>

/* Whether element a comes out before element b. A strict total order (the simulators order
 * by time, then by a sequence number) makes the order of pops independent of the layout. */
typedef bool (*heap_before_fn)(const void *a, const void *b);

/* A heap set up by heap_init. It holds copies of the elements pushed; what they point to stays
 * the caller's. The array is released by heap_free; a struct heap may be moved by assignment. */
struct heap {
	unsigned char *elems; /* n elements of elem_bytes each, in heap order */
	size_t elem_bytes;
	size_t n; /* elements held, <= cap */
	size_t cap;
	heap_before_fn before;
};

/* An empty heap of elements of elem_bytes (> 0) ordered by before. Allocates nothing. */
void heap_init(struct heap *h, size_t elem_bytes, heap_before_fn before);

/* Frees the array (not what the elements point to); h is empty afterwards and may be reused. */
void heap_free(struct heap *h);

/* Copies elem (which must not point into h) in. 0, or -1 when out of memory (h unchanged). */
int heap_push(struct heap *h, const void *elem);

/* Copies the first element to out (which must not point into h) and removes it. h must not be
 * empty. */
void heap_pop(struct heap *h, void *out);

/* The first element, or NULL when h is empty; valid until the next push or pop. */
const void *heap_top(const struct heap *h);

/* How many elements h holds. */
size_t heap_len(const struct heap *h);

#endif
