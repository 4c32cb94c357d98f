/*
 * A set of digests kept in insertion order, with a hash table on the side:
 * the writer's table of distinct chunks, and the sets that rm, verify, gc and
 * import build (private to store/).
 */
#ifndef SNAPVM_STORE_DSET_H
#define SNAPVM_STORE_DSET_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct dset {
	uint8_t (*keys)[STORE_DIGEST_SIZE]; /* in insertion order */
	size_t count;
	size_t key_cap;
	uint32_t *slots; /* 0 = empty, else key index + 1 */
	size_t slot_mask;
};

/* An empty set. */
void dset_init(struct dset *set);
void dset_free(struct dset *set);
/* Index of digest in the set, or -1. */
int64_t dset_find(const struct dset *set, const uint8_t digest[STORE_DIGEST_SIZE]);
/* Adds digest if absent; *index is its position. 1 if added, 0 if present, -ENOMEM. */
int dset_add(struct dset *set, const uint8_t digest[STORE_DIGEST_SIZE], uint32_t *index);

#endif
