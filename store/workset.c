/*
 * Working sets: the guest pages a restore touched, in the order it touched
 * them, kept in the index beside the snapshot so that the next restore can
 * prefetch them. Relayout copies their chunks, in that order, into a new
 * pack, so that the prefetch reads one file front to back.
 */
#include "store/internal.h"
#include "store/bytes.h"
#include "store/chunk.h"
#include "store/digest.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WORKSET_MAGIC "SVMWSET1"
#define WORKSET_FIXED 16
#define WORKSET_MAX   (1U << 28)

static int workset_encode(const uint32_t *pages, size_t count, uint8_t **out, size_t *len)
{
	size_t size = WORKSET_FIXED + count * 4;
	uint8_t *buf = malloc(size);

	if (!buf)
		return -ENOMEM;
	memcpy(buf, WORKSET_MAGIC, 8);
	put_u32(buf + 12, (uint32_t)count);
	if (count)
		memcpy(buf + WORKSET_FIXED, pages, count * 4);
	put_u32(buf + 8, checksum32(buf + 12, size - 12));
	*out = buf;
	*len = size;
	return 0;
}

/* Checks a working-set value; gives its page count. */
static int workset_check(const MDB_val *value, size_t *count)
{
	const uint8_t *v = value->mv_data;

	if (value->mv_size < WORKSET_FIXED || memcmp(v, WORKSET_MAGIC, 8) ||
	    value->mv_size != WORKSET_FIXED + (size_t)get_u32(v + 12) * 4 ||
	    get_u32(v + 8) != checksum32(v + 12, value->mv_size - 12))
		return -EUCLEAN;
	*count = get_u32(v + 12);
	return 0;
}

int store_workset_count(struct store *s, MDB_txn *txn, const char *name, uint64_t *count)
{
	MDB_val value;
	size_t n;
	int ret = index_record_get(&s->index, txn, s->index.worksets, name, &value);

	*count = 0;
	if (ret == -ENOENT)
		return 0;
	if (!ret && workset_check(&value, &n)) {
		log_error("store index %s: the working set of '%s' is damaged", s->index.path,
			  name);
		ret = -EUCLEAN;
	}
	if (!ret)
		*count = n;
	return ret;
}

/* Checks that every page is in the snapshot; called with txn open. */
static int workset_pages_check(struct store *s, MDB_txn *txn, const char *name,
			       const uint32_t *pages, size_t count)
{
	struct snap_record r;
	uint64_t page_count;
	int ret = store_record_load(s, txn, name, &r);

	if (ret)
		return ret;
	page_count = r.info.ram_size / STORE_PAGE_SIZE;
	snap_record_free(&r);
	for (size_t i = 0; i < count; i++) {
		if (pages[i] >= page_count) {
			log_error("store: working set of '%s': page %u is outside its %llu pages",
				  name, pages[i], (unsigned long long)page_count);
			return -EINVAL;
		}
	}
	return 0;
}

int store_workset_put(struct store *s, const char *name, const uint32_t *pages, size_t count)
{
	MDB_txn *txn = NULL;
	uint8_t *value = NULL;
	size_t len;
	int lock_fd, ret;

	if (count > WORKSET_MAX) {
		log_error("store: working set of '%s': %zu pages is too many", name, count);
		return -E2BIG;
	}
	ret = store_lock_take(s, &lock_fd);
	if (ret)
		return ret;
	ret = workset_encode(pages, count, &value, &len);
	if (!ret)
		ret = index_txn_begin(&s->index, true, &txn);
	if (!ret)
		ret = workset_pages_check(s, txn, name, pages, count);
	if (!ret)
		ret = index_record_put(&s->index, txn, s->index.worksets, name, value, len);
	ret = store_txn_end(s, txn, ret);
	free(value);
	store_lock_release(s, lock_fd);
	return ret;
}

/* Reads the working set of name in txn into a malloc'ed array. */
static int workset_load(struct store *s, MDB_txn *txn, const char *name, uint32_t **pages,
			size_t *count)
{
	MDB_val value;
	int ret = index_record_get(&s->index, txn, s->index.worksets, name, &value);

	if (ret == -ENOENT)
		log_info("store: no working set is recorded for '%s'", name);
	if (ret)
		return ret;
	if (workset_check(&value, count)) {
		log_error("store index %s: the working set of '%s' is damaged", s->index.path,
			  name);
		return -EUCLEAN;
	}
	*pages = malloc(*count ? *count * 4 : 1);
	if (!*pages)
		return -ENOMEM;
	memcpy(*pages, (const uint8_t *)value.mv_data + WORKSET_FIXED, *count * 4);
	return 0;
}

int store_workset_get(struct store *s, const char *name, uint32_t **pages, size_t *count)
{
	MDB_txn *txn;
	int ret = index_txn_begin(&s->index, false, &txn);

	if (ret)
		return ret;
	ret = workset_load(s, txn, name, pages, count);
	mdb_txn_abort(txn);
	return ret;
}

struct relayout {
	struct store *store;
	MDB_txn *txn;
	struct pack_cache cache;
	struct pack_writer *packs;
	struct dset moved;	     /* chunks copied, in order */
	struct chunk_entry *entries; /* their new places */
};

/* Copies one chunk (checked on the way) into the new pack, unless it was copied already. */
static int relayout_chunk(struct relayout *rl, const uint8_t *digest, const char *name)
{
	uint8_t record[CHUNK_RECORD_MAX], scratch[CHUNK_RAW_MAX];
	struct chunk_entry e;
	const char *reason;
	uint32_t index;
	int ret = dset_add(&rl->moved, digest, &index);

	if (ret <= 0)
		return ret;
	ret = index_chunk_get(&rl->store->index, rl->txn, digest, &e);
	if (ret)
		return ret == -ENOENT ? -EBADMSG : ret;
	ret = pack_chunk_read(&rl->cache, digest, &e, record, scratch, &reason);
	if (ret) {
		store_chunk_error(digest, &e, name, reason);
		return -EBADMSG;
	}
	ret = pack_writer_append(rl->packs, record, CHUNK_HEADER_SIZE + e.stored_len, &e.pack,
				 &e.offset);
	rl->entries[index] = e;
	return ret;
}

/* Points the index at the new copies and records the new pack, in one commit. */
static int relayout_commit(struct relayout *rl)
{
	struct store *s = rl->store;
	MDB_txn *txn;
	int ret = pack_writer_commit(rl->packs);

	if (!ret)
		ret = index_txn_begin(&s->index, true, &txn);
	if (ret)
		return ret;
	for (size_t i = 0; i < rl->moved.count && !ret; i++) {
		struct chunk_entry e;

		ret = index_chunk_get(&s->index, txn, rl->moved.keys[i], &e);
		if (!ret) {
			e.pack = rl->entries[i].pack;
			e.offset = rl->entries[i].offset;
			ret = index_chunk_put(&s->index, txn, rl->moved.keys[i], &e);
		}
	}
	if (!ret)
		ret = store_packs_record(s, txn, rl->packs);
	return store_txn_end(s, txn, ret);
}

/* Copies the chunks of the working set's pages, in order. */
static int relayout_copy(struct relayout *rl, const char *name, const struct manifest *m,
			 const uint32_t *pages, size_t count)
{
	uint64_t next_pack;
	int ret = index_next_pack_get(&rl->store->index, rl->txn, &next_pack);

	if (!ret)
		ret = pack_writer_create(rl->store->backend, next_pack, &rl->packs);
	rl->entries = malloc((count ? count : 1) * sizeof(*rl->entries));
	if (!ret && !rl->entries)
		ret = -ENOMEM;
	for (size_t i = 0; i < count && !ret; i++) {
		uint32_t slot = pages[i] < m->page_count ? m->page_map[pages[i]] : 0;

		if (slot)
			ret = relayout_chunk(rl, m->unique[slot - 1], name);
	}
	return ret;
}

int store_snapshot_relayout(struct store *s, const char *name)
{
	struct relayout rl = { .store = s };
	uint32_t *pages = NULL;
	struct snap_record r;
	struct manifest m;
	size_t count;
	int lock_fd, ret = store_lock_take(s, &lock_fd);

	if (ret)
		return ret;
	pack_cache_init(&rl.cache, s->backend);
	dset_init(&rl.moved);
	ret = index_txn_begin(&s->index, false, &rl.txn);
	if (ret)
		goto out;
	ret = store_snapshot_load(s, rl.txn, &rl.cache, name, &r, &m);
	if (!ret) {
		ret = workset_load(s, rl.txn, name, &pages, &count);
		if (!ret)
			ret = relayout_copy(&rl, name, &m, pages, count);
		manifest_free(&m);
		snap_record_free(&r);
	}
	mdb_txn_abort(rl.txn);
	if (!ret)
		ret = relayout_commit(&rl);
	if (ret)
		pack_writer_discard(rl.packs);
	else
		pack_writer_free(rl.packs);
out:
	free(pages);
	free(rl.entries);
	dset_free(&rl.moved);
	pack_cache_free(&rl.cache);
	store_lock_release(s, lock_fd);
	return ret;
}
