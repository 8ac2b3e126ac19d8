/* heap.c - a binary min-heap of fixed-size elements (see heap.h). */
#include "tests/lib/heap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HEAP_FIRST_CAP 1024

static unsigned char *slot(const struct heap *h, size_t i)
{
	return h->elems + i * h->elem_bytes;
}

void heap_init(struct heap *h, size_t elem_bytes, heap_before_fn before)
{
	memset(h, 0, sizeof(*h));
	h->elem_bytes = elem_bytes;
	h->before = before;
}

void heap_free(struct heap *h)
{
	free(h->elems);
	h->elems = NULL;
	h->n = h->cap = 0;
}

static int heap_grow(struct heap *h)
{
	size_t cap = h->cap ? h->cap * 2 : HEAP_FIRST_CAP;
	unsigned char *a;

	if (cap < h->cap || cap > SIZE_MAX / h->elem_bytes)
		return -1;
	a = realloc(h->elems, cap * h->elem_bytes);
	if (!a)
		return -1;
	h->elems = a;
	h->cap = cap;
	return 0;
}

/* Sifts up: parents after elem move down one level into the hole, then elem fills it. */
int heap_push(struct heap *h, const void *elem)
{
	size_t i;

	if (h->n == h->cap && heap_grow(h) != 0)
		return -1;
	i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!h->before(elem, slot(h, p)))
			break;
		memcpy(slot(h, i), slot(h, p), h->elem_bytes);
		i = p;
	}
	memcpy(slot(h, i), elem, h->elem_bytes);
	return 0;
}

/* Sifts down the last element from the root: it stays in its slot, just past the new end,
 * while the smaller child of the hole moves up, and fills the hole where neither child is
 * before it. */
void heap_pop(struct heap *h, void *out)
{
	const unsigned char *last;
	size_t i = 0;

	memcpy(out, slot(h, 0), h->elem_bytes);
	if (--h->n == 0)
		return;
	last = slot(h, h->n);
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const unsigned char *first = last;
		if (l < h->n && h->before(slot(h, l), first)) {
			m = l;
			first = slot(h, l);
		}
		if (r < h->n && h->before(slot(h, r), first))
			m = r;
		if (m == i)
			break;
		memcpy(slot(h, i), slot(h, m), h->elem_bytes);
		i = m;
	}
	memcpy(slot(h, i), last, h->elem_bytes);
}

const void *heap_top(const struct heap *h)
{
	return h->n ? h->elems : NULL;
}

size_t heap_len(const struct heap *h)
{
	return h->n;
}
