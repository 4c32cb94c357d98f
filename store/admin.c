/* Listing, describing, removing snapshots, and adding up what the store holds. */
#include "store/internal.h"
#include "store/chunk.h"
#include "store/refs.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct list_walk {
	struct store *store;
	MDB_txn *txn;
	void (*fn)(const struct store_snapshot_info *info, void *opaque);
	void *opaque;
	int error;
};

static int list_one(void *opaque, const char *name, const void *data, size_t len)
{
	struct list_walk *lw = opaque;
	struct snap_record r;

	if (!*name || snap_record_decode(data, len, &r)) {
		log_error("store index %s: the record of snapshot '%s' is damaged",
			  lw->store->index.path, *name ? name : "(bad name)");
		lw->error = -EUCLEAN;
		return 0;
	}
	snprintf(r.info.name, sizeof(r.info.name), "%s", name);
	if (store_workset_count(lw->store, lw->txn, name, &r.info.workset_pages))
		lw->error = -EUCLEAN;
	lw->fn(&r.info, lw->opaque);
	snap_record_free(&r);
	return 0;
}

int store_list(struct store *s, void (*fn)(const struct store_snapshot_info *info, void *opaque),
	       void *opaque)
{
	struct list_walk lw = { .store = s, .fn = fn, .opaque = opaque };
	int ret = store_remote_refresh(s);

	if (!ret)
		ret = index_txn_begin(&s->index, false, &lw.txn);
	if (ret)
		return ret;
	ret = index_record_foreach(&s->index, lw.txn, s->index.snapshots, list_one, &lw);
	mdb_txn_abort(lw.txn);
	return ret ? ret : lw.error;
}

/* Adds up the pack bytes of the chunks only this snapshot references. */
static int info_unique_bytes(struct store *s, MDB_txn *txn, const struct dset *set, uint64_t *bytes)
{
	char hex[2 * STORE_DIGEST_SIZE + 1];

	*bytes = 0;
	for (size_t i = 0; i < set->count; i++) {
		struct chunk_entry e;
		int ret = index_chunk_get(&s->index, txn, set->keys[i], &e);

		if (ret == -ENOENT) {
			store_digest_hex(set->keys[i], hex);
			log_error("store: chunk %s is not in the index", hex);
			return -EBADMSG;
		}
		if (ret)
			return ret;
		if (e.refs == 1)
			*bytes += CHUNK_HEADER_SIZE + e.stored_len;
	}
	return 0;
}

int store_snapshot_info(struct store *s, const char *name, struct store_snapshot_info *info)
{
	struct pack_cache cache;
	struct snap_record r;
	struct manifest m;
	struct dset set;
	MDB_txn *txn;
	int ret = store_remote_refresh(s);

	if (!ret)
		ret = index_txn_begin(&s->index, false, &txn);
	if (ret)
		return ret;
	pack_cache_init(&cache, s->backend);
	dset_init(&set);
	ret = store_snapshot_load(s, txn, &cache, name, &r, &m);
	if (ret)
		goto out;
	*info = r.info;
	snprintf(info->name, sizeof(info->name), "%s", name);
	info->blob_count = m.blob_count;
	for (uint32_t i = 0; i < m.blob_count; i++) {
		snprintf(info->blobs[i].name, sizeof(info->blobs[i].name), "%s", m.blobs[i].name);
		info->blobs[i].len = m.blobs[i].len;
	}
	ret = store_snapshot_refs(&r, &m, &set);
	if (!ret)
		ret = info_unique_bytes(s, txn, &set, &info->unique_bytes);
	if (!ret)
		ret = store_workset_count(s, txn, name, &info->workset_pages);
	manifest_free(&m);
	snap_record_free(&r);
out:
	dset_free(&set);
	pack_cache_free(&cache);
	mdb_txn_abort(txn);
	return ret;
}

/* The chunks the snapshot references; only the manifest's own if it cannot be read. */
static int remove_refs_collect(struct store *s, MDB_txn *txn, const char *name, struct dset *set)
{
	struct pack_cache cache;
	struct snap_record r;
	struct manifest m;
	uint32_t index;
	int ret;

	pack_cache_init(&cache, s->backend);
	ret = store_snapshot_load(s, txn, &cache, name, &r, &m);
	pack_cache_free(&cache);
	if (ret == 0) {
		ret = store_snapshot_refs(&r, &m, set);
		manifest_free(&m);
		snap_record_free(&r);
		return ret;
	}
	if (ret != -EBADMSG)
		return ret;
	ret = store_record_load(s, txn, name, &r);
	if (ret)
		return ret;
	log_warn("store: the manifest of '%s' is damaged: the chunks it uses keep their "
		 "references, and gc will not reclaim them",
		 name);
	for (uint32_t i = 0; i < r.manifest_chunks && ret >= 0; i++)
		ret = dset_add(set, r.manifest_digests[i], &index);
	snap_record_free(&r);
	return ret < 0 ? ret : 0;
}

int store_snapshot_remove(struct store *s, const char *name)
{
	struct dset set;
	MDB_txn *txn = NULL;
	int lock_fd, ret = store_lock_take(s, &lock_fd);

	if (ret)
		return ret;
	dset_init(&set);
	ret = index_txn_begin(&s->index, true, &txn);
	if (!ret)
		ret = remove_refs_collect(s, txn, name, &set);
	if (!ret)
		ret = refs_release(&s->index, txn, &set);
	if (!ret)
		ret = index_record_delete(&s->index, txn, s->index.snapshots, name);
	if (!ret) {
		ret = index_record_delete(&s->index, txn, s->index.worksets, name);
		ret = ret == -ENOENT ? 0 : ret;
	}
	ret = store_txn_end(s, txn, ret);
	dset_free(&set);
	store_lock_release(s, lock_fd);
	return ret;
}

static int usage_snapshot(void *opaque, const char *name, const void *data, size_t len)
{
	struct store_usage *u = opaque;
	struct snap_record r;

	if (!*name || snap_record_decode(data, len, &r))
		return -EUCLEAN;
	u->snapshots++;
	u->logical_bytes += r.info.ram_size + r.info.blob_bytes;
	u->nonzero_bytes += r.info.nonzero_pages * STORE_PAGE_SIZE + r.info.blob_bytes;
	snap_record_free(&r);
	return 0;
}

static int usage_chunk(void *opaque, const uint8_t *digest, const struct chunk_entry *e)
{
	struct store_usage *u = opaque;

	(void)digest;
	if (!e)
		return -EUCLEAN;
	if (e->refs) {
		u->chunks++;
		u->chunk_bytes += e->raw_len;
		u->stored_bytes += CHUNK_HEADER_SIZE + e->stored_len;
	}
	return 0;
}

static int usage_pack(void *opaque, uint64_t id, const struct pack_entry *e)
{
	struct store_usage *u = opaque;

	(void)id;
	if (!e)
		return -EUCLEAN;
	u->packs++;
	u->pack_bytes += e->size;
	return 0;
}

int store_usage_get(struct store *s, struct store_usage *u)
{
	char path[PATH_MAX + 16];
	struct stat st;
	MDB_txn *txn;
	int ret = store_remote_refresh(s);

	memset(u, 0, sizeof(*u));
	if (!ret)
		ret = index_txn_begin(&s->index, false, &txn);
	if (ret)
		return ret;
	ret = index_record_foreach(&s->index, txn, s->index.snapshots, usage_snapshot, u);
	if (!ret)
		ret = index_chunk_foreach(&s->index, txn, usage_chunk, u);
	if (!ret)
		ret = index_pack_foreach(&s->index, txn, usage_pack, u);
	mdb_txn_abort(txn);
	if (ret == -EUCLEAN)
		log_error("store index %s: a record is damaged; run 'snapvm store verify'",
			  s->index.path);
	if (ret)
		return ret;
	u->dead_bytes =
		u->pack_bytes - MIN(u->pack_bytes, u->packs * PACK_HEADER_SIZE + u->stored_bytes);
	snprintf(path, sizeof(path), "%s/data.mdb", s->index.path);
	if (stat(path, &st) == 0)
		u->index_bytes = (uint64_t)st.st_size;
	u->dedup_ratio = u->chunk_bytes ? (double)u->nonzero_bytes / (double)u->chunk_bytes : 0;
	u->compression_ratio =
		u->stored_bytes ? (double)u->chunk_bytes / (double)u->stored_bytes : 0;
	return 0;
}
