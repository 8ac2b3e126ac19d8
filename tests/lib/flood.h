/* flood.h - names crafted to collide under the store's former unkeyed hash (hash flooding). */
#ifndef TESTS_LIB_FLOOD_H
#define TESTS_LIB_FLOOD_H

#include <stddef.h>
#include <stdint.h>

#define FLOOD_NAME_BYTES 16 /* every crafted name has this length */

/*
 * The hash kv/store.c gave the name of a key under directory parent_ino before it was keyed
 * (issue 15, item 10): fixed and public, so its 32 bits could be inverted.
 */
uint32_t flood_unkeyed_name_hash(uint64_t parent_ino, const char *name, size_t len);

/*
 * Writes n distinct valid names of FLOOD_NAME_BYTES bytes (no NUL, no '/', not NUL-terminated)
 * to names[i * FLOOD_NAME_BYTES ...], each with flood_unkeyed_name_hash(parent_ino, name) ==
 * target: under that hash every one of them lands in the same bucket whatever the table's size.
 * seed varies the names. Found by inverting the hash, not by search: one or two tries a name.
 */
void flood_names(uint64_t parent_ino, uint32_t target, uint64_t seed, size_t n, char *names);

#endif
