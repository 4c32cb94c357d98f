/*
 * The set of distinct chunks one snapshot references, with where each one
 * is, and the reference-count update that a commit or a removal makes from
 * it (private to store/).
 */
#ifndef SNAPVM_STORE_REFS_H
#define SNAPVM_STORE_REFS_H

#include <stdbool.h>
#include <stdint.h>

#include "store/dset.h"
#include "store/index.h"

struct refs {
	struct dset set;
	struct chunk_entry *entries; /* per set index */
	bool *is_new;		     /* written by this operation, not yet in the index */
	size_t cap;
};

void refs_init(struct refs *refs);
void refs_free(struct refs *refs);
/* Adds a chunk if absent; *index is its position. 1 if added, 0 if present, -ENOMEM. */
int refs_add(struct refs *refs, const uint8_t digest[STORE_DIGEST_SIZE],
	     const struct chunk_entry *entry, bool is_new, uint32_t *index);
/* Bytes in packs of every chunk in the set, record headers included. */
uint64_t refs_stored_bytes(const struct refs *refs);
/*
 * Adds one reference to each chunk (inserting the new ones) in txn, in
 * digest order so that LMDB touches each page once.
 */
int refs_commit(struct index *index, MDB_txn *txn, const struct refs *refs);
/* Adds one reference to each chunk of set in txn; a missing chunk is logged and skipped. */
int refs_acquire(struct index *index, MDB_txn *txn, const struct dset *set);
/* Drops one reference from each chunk of set in txn; a missing chunk is logged and skipped. */
int refs_release(struct index *index, MDB_txn *txn, const struct dset *set);

#endif
