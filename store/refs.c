/* Reference counting: each snapshot holds one reference to each distinct chunk it uses. */
#include "store/refs.h"
#include "store/chunk.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void refs_init(struct refs *refs)
{
	memset(refs, 0, sizeof(*refs));
	dset_init(&refs->set);
}

void refs_free(struct refs *refs)
{
	dset_free(&refs->set);
	free(refs->entries);
	free(refs->is_new);
	memset(refs, 0, sizeof(*refs));
}

int refs_add(struct refs *refs, const uint8_t digest[STORE_DIGEST_SIZE],
	     const struct chunk_entry *entry, bool is_new, uint32_t *index)
{
	int ret;

	if (refs->set.count == refs->cap) {
		size_t cap = refs->cap ? refs->cap * 2 : 1024;
		void *entries = realloc(refs->entries, cap * sizeof(*refs->entries));
		void *flags = entries ? realloc(refs->is_new, cap * sizeof(*refs->is_new)) : NULL;

		if (entries)
			refs->entries = entries;
		if (!flags)
			return -ENOMEM;
		refs->is_new = flags;
		refs->cap = cap;
	}
	ret = dset_add(&refs->set, digest, index);
	if (ret == 1) {
		refs->entries[*index] = *entry;
		refs->is_new[*index] = is_new;
	}
	return ret;
}

uint64_t refs_stored_bytes(const struct refs *refs)
{
	uint64_t total = 0;

	for (size_t i = 0; i < refs->set.count; i++)
		total += CHUNK_HEADER_SIZE + refs->entries[i].stored_len;
	return total;
}

static int digest_order(const void *a, const void *b, void *opaque)
{
	const struct dset *set = opaque;

	return memcmp(set->keys[*(const uint32_t *)a], set->keys[*(const uint32_t *)b],
		      STORE_DIGEST_SIZE);
}

/*
 * Indexes of the set's digests in digest order (malloc'ed): bucketed by
 * their first two bytes, then each small bucket sorted. Digests are uniform,
 * so this is one pass where a plain sort took most of a duplicate commit.
 */
static uint32_t *set_sorted(const struct dset *set)
{
	uint32_t *order = malloc((set->count ? set->count : 1) * sizeof(*order));
	uint32_t *start = calloc(65537, sizeof(*start));

	if (!order || !start) {
		free(order);
		free(start);
		return NULL;
	}
	for (size_t i = 0; i < set->count; i++)
		start[(set->keys[i][0] << 8 | set->keys[i][1]) + 1]++;
	for (size_t b = 1; b <= 65536; b++)
		start[b] += start[b - 1];
	for (size_t i = 0; i < set->count; i++)
		order[start[set->keys[i][0] << 8 | set->keys[i][1]]++] = (uint32_t)i;
	/* start[b] is now the end of bucket b, which begins at start[b - 1] (0 for the first). */
	for (size_t b = 0; b < 65536; b++) {
		uint32_t first = b ? start[b - 1] : 0;

		if (start[b] - first > 1)
			qsort_r(order + first, start[b] - first, sizeof(*order), digest_order,
				(void *)set);
	}
	free(start);
	return order;
}

/* Adds delta (+1 or -1) to each chunk of set through one cursor, in digest order. */
static int refs_update(struct index *index, MDB_txn *txn, const struct dset *set,
		       const struct refs *refs, int delta)
{
	uint32_t *order = set_sorted(set);
	char hex[2 * STORE_DIGEST_SIZE + 1];
	MDB_cursor *cursor = NULL;
	int ret;

	if (!order)
		return -ENOMEM;
	ret = index_chunk_cursor_open(index, txn, &cursor);
	for (size_t i = 0; i < set->count && !ret; i++) {
		const uint8_t *digest = set->keys[order[i]];
		struct chunk_entry e;

		ret = index_chunk_seek(index, cursor, digest, &e);
		if (ret == -ENOENT && refs && refs->is_new[order[i]]) {
			e = refs->entries[order[i]];
			e.refs = 1;
			ret = index_chunk_put(index, txn, digest, &e);
			continue;
		}
		if (ret == -ENOENT && refs) {
			store_digest_hex(digest, hex);
			log_error("store index %s: chunk %s vanished while a snapshot was written",
				  index->path, hex);
			ret = -EUCLEAN;
			break;
		}
		if (ret == -ENOENT || (!ret && delta < 0 && e.refs == 0)) {
			store_digest_hex(digest, hex);
			log_warn("store: chunk %s is %s; its reference count is left alone", hex,
				 ret ? "not in the index" : "unreferenced already");
			ret = 0;
			continue;
		}
		e.refs += (uint64_t)(int64_t)delta;
		if (!ret)
			ret = index_chunk_replace(index, cursor, digest, &e);
	}
	if (cursor)
		mdb_cursor_close(cursor);
	free(order);
	return ret;
}

int refs_commit(struct index *index, MDB_txn *txn, const struct refs *refs)
{
	return refs_update(index, txn, &refs->set, refs, +1);
}

int refs_acquire(struct index *index, MDB_txn *txn, const struct dset *set)
{
	return refs_update(index, txn, set, NULL, +1);
}

int refs_release(struct index *index, MDB_txn *txn, const struct dset *set)
{
	return refs_update(index, txn, set, NULL, -1);
}
