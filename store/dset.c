/*
 * Open addressing with linear probing. The slot comes from the digest mixed
 * with a per-process random key, so that pages chosen to share low digest
 * bits (cheap to find by trial) cannot pile up in one probe chain.
 */
#include "store/dset.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define DSET_MAX_KEYS (1U << 31)

static uint64_t dset_seed[2];
static pthread_once_t dset_seed_once = PTHREAD_ONCE_INIT;

static void dset_seed_init(void)
{
	if (getrandom(dset_seed, sizeof(dset_seed), 0) != sizeof(dset_seed)) {
		dset_seed[0] = (uint64_t)(uintptr_t)&dset_seed ^ 0x9e3779b97f4a7c15ULL;
		dset_seed[1] = (uint64_t)(uintptr_t)dset_seed_init;
	}
}

static uint64_t dset_hash(const uint8_t *digest)
{
	uint64_t a, b;

	memcpy(&a, digest, 8);
	memcpy(&b, digest + 8, 8);
	a ^= dset_seed[0];
	b ^= dset_seed[1];
	a *= 0xff51afd7ed558ccdULL;
	b *= 0xc4ceb9fe1a85ec53ULL;
	a ^= (a >> 33) ^ b;
	return a * 0x9e3779b97f4a7c15ULL;
}

void dset_init(struct dset *set)
{
	pthread_once(&dset_seed_once, dset_seed_init);
	memset(set, 0, sizeof(*set));
}

void dset_free(struct dset *set)
{
	free(set->keys);
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

int64_t dset_find(const struct dset *set, const uint8_t digest[STORE_DIGEST_SIZE])
{
	if (!set->slots)
		return -1;
	for (size_t i = dset_hash(digest) & set->slot_mask;; i = (i + 1) & set->slot_mask) {
		uint32_t slot = set->slots[i];

		if (!slot)
			return -1;
		if (!memcmp(set->keys[slot - 1], digest, STORE_DIGEST_SIZE))
			return slot - 1;
	}
}

/* Doubles the slot table (kept at most half full) and rehashes every key. */
static int dset_grow(struct dset *set)
{
	size_t size = set->slots ? (set->slot_mask + 1) * 2 : 1024;
	uint32_t *slots = calloc(size, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t k = 0; k < set->count; k++) {
		size_t i = dset_hash(set->keys[k]) & (size - 1);

		while (slots[i])
			i = (i + 1) & (size - 1);
		slots[i] = (uint32_t)(k + 1);
	}
	free(set->slots);
	set->slots = slots;
	set->slot_mask = size - 1;
	return 0;
}

int dset_add(struct dset *set, const uint8_t digest[STORE_DIGEST_SIZE], uint32_t *index)
{
	int64_t found = dset_find(set, digest);
	size_t i;

	if (found >= 0) {
		*index = (uint32_t)found;
		return 0;
	}
	if (set->count >= DSET_MAX_KEYS)
		return -ENOMEM;
	if (!set->slots || (set->count + 1) * 2 > set->slot_mask + 1) {
		if (dset_grow(set))
			return -ENOMEM;
	}
	if (set->count == set->key_cap) {
		size_t cap = set->key_cap ? set->key_cap * 2 : 256;
		void *keys = realloc(set->keys, cap * STORE_DIGEST_SIZE);

		if (!keys)
			return -ENOMEM;
		set->keys = keys;
		set->key_cap = cap;
	}
	memcpy(set->keys[set->count], digest, STORE_DIGEST_SIZE);
	for (i = dset_hash(digest) & set->slot_mask; set->slots[i]; i = (i + 1) & set->slot_mask)
		;
	set->slots[i] = (uint32_t)(set->count + 1);
	*index = (uint32_t)set->count++;
	return 1;
}
