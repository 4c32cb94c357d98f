/*
 * Writing a snapshot. Pages go through the pipeline; blobs and the manifest
 * are cut into chunks here. Chunks already in the index, or already written
 * by this snapshot, are referenced rather than stored again. Nothing is
 * visible to readers until commit: packs are synced and renamed into place,
 * then one LMDB commit adds the chunk records, the reference counts and the
 * snapshot record together.
 */
#include "store/internal.h"
#include "store/chunk.h"
#include "store/digest.h"
#include "store/pipeline.h"
#include "store/refs.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store_writer {
	struct store *store;
	char name[STORE_NAME_MAX + 1];
	uint64_t page_count;
	int lock_fd;
	MDB_txn *txn; /* read transaction for this thread's lookups */
	struct pack_writer *packs;
	struct refs refs;     /* every chunk the snapshot references */
	uint32_t *page_slots; /* per refs entry: 1 + its place in page_digests, or 0 */
	size_t page_slots_cap;
	uint32_t *page_map;			    /* per guest page: 0 (zero) or a page slot */
	uint8_t (*page_digests)[STORE_DIGEST_SIZE]; /* distinct page chunks, first seen first */
	size_t page_unique;
	size_t page_digests_cap;
	struct manifest_blob blobs[STORE_BLOB_MAX];
	uint32_t blob_count;
	struct store_write_stats stats;
	int error; /* the first failure; commit refuses after one */
};

static void writer_free(struct store_writer *w)
{
	if (w->txn)
		mdb_txn_abort(w->txn);
	store_lock_release(w->store, w->lock_fd);
	refs_free(&w->refs);
	free(w->page_slots);
	free(w->page_map);
	free(w->page_digests);
	for (uint32_t i = 0; i < w->blob_count; i++)
		free((void *)w->blobs[i].digests);
	free(w);
}

/* Checks that the name is free and sets up the pack writer; called with the lock held. */
static int writer_prepare(struct store_writer *w)
{
	struct store *s = w->store;
	uint64_t next_pack;
	MDB_val value;
	int ret = index_txn_begin(&s->index, false, &w->txn);

	if (ret)
		return ret;
	ret = index_record_get(&s->index, w->txn, s->index.snapshots, w->name, &value);
	if (ret == 0) {
		log_error("store %s: a snapshot named '%s' exists already", s->dir, w->name);
		return -EEXIST;
	}
	if (ret != -ENOENT)
		return ret;
	ret = index_next_pack_get(&s->index, w->txn, &next_pack);
	if (ret)
		return ret;
	ret = pack_writer_create(s->backend, next_pack, &w->packs);
	if (ret)
		return ret;
	w->page_map = calloc(w->page_count ? w->page_count : 1, sizeof(*w->page_map));
	return w->page_map ? 0 : -ENOMEM;
}

int store_snapshot_begin(struct store *s, const char *name, uint64_t ram_size,
			 struct store_writer **out)
{
	struct store_writer *w;
	int ret;

	if (store_name_check(name)) {
		log_error("store: '%s' is not a snapshot name (1-%d of A-Z a-z 0-9 . _ -, not "
			  "starting with .)",
			  name, STORE_NAME_MAX);
		return -EINVAL;
	}
	if (ram_size % STORE_PAGE_SIZE || ram_size > STORE_RAM_MAX) {
		log_error("store: snapshot '%s': a guest RAM size of %llu bytes is not a multiple "
			  "of 4 KiB up to 1 TiB",
			  name, (unsigned long long)ram_size);
		return -EINVAL;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->store = s;
	w->lock_fd = -1;
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->page_count = ram_size / STORE_PAGE_SIZE;
	refs_init(&w->refs);
	ret = store_lock_take(s, &w->lock_fd);
	if (!ret)
		ret = writer_prepare(w);
	if (ret) {
		pack_writer_discard(w->packs);
		writer_free(w);
		return ret;
	}
	*out = w;
	return 0;
}

/*
 * Adds a chunk to the snapshot: referenced if the snapshot has it already or
 * stored is not NULL (it is in the index), else its record is appended to
 * the packs. *dup says whether nothing new was written.
 */
static int writer_chunk_add(struct store_writer *w, const uint8_t *digest,
			    const struct chunk_entry *stored, const uint8_t *record,
			    const struct chunk_entry *lengths, uint32_t *index, bool *dup)
{
	int64_t found = dset_find(&w->refs.set, digest);
	struct chunk_entry e;
	int ret;

	*dup = true;
	if (found >= 0) {
		*index = (uint32_t)found;
		return 0;
	}
	if (stored) {
		e = *stored;
	} else {
		uint32_t len = CHUNK_HEADER_SIZE + lengths->stored_len;

		e = *lengths;
		ret = pack_writer_append(w->packs, record, len, &e.pack, &e.offset);
		if (ret)
			return ret;
		w->stats.new_chunks++;
		w->stats.new_bytes += len;
		*dup = false;
	}
	ret = refs_add(&w->refs, digest, &e, !stored, index);
	if (ret < 0)
		return ret;
	if (*index >= w->page_slots_cap) {
		void *slots = realloc(w->page_slots, w->refs.cap * sizeof(*w->page_slots));

		if (!slots)
			return -ENOMEM;
		w->page_slots = slots;
		w->page_slots_cap = w->refs.cap;
	}
	w->page_slots[*index] = 0;
	return 0;
}

/* Adds a chunk of a blob or of the manifest (up to 4 KiB), giving its digest. */
static int writer_data_add(struct store_writer *w, const uint8_t *data, uint32_t len,
			   uint8_t digest[STORE_DIGEST_SIZE])
{
	uint8_t record[CHUNK_RECORD_MAX];
	struct chunk_header h;
	struct chunk_entry e;
	uint32_t index;
	bool dup;
	int ret = digest_compute(data, len, digest);

	if (ret || dset_find(&w->refs.set, digest) >= 0)
		return ret;
	ret = index_chunk_get(&w->store->index, w->txn, digest, &e);
	if (ret == 0)
		return writer_chunk_add(w, digest, &e, NULL, NULL, &index, &dup);
	if (ret != -ENOENT)
		return ret;
	ret = chunk_record_encode(data, len, digest, record, &h);
	if (ret)
		return ret;
	e = (struct chunk_entry){ .stored_len = h.stored_len,
				  .raw_len = h.raw_len,
				  .codec = h.codec };
	return writer_chunk_add(w, digest, NULL, record, &e, &index, &dup);
}

/* Gives a chunk used by a page its place in the page table, if it has none yet. */
static int writer_page_slot(struct store_writer *w, uint32_t index, uint32_t *slot)
{
	if (!w->page_slots[index]) {
		if (w->page_unique == w->page_digests_cap) {
			size_t cap = w->page_digests_cap ? w->page_digests_cap * 2 : 1024;
			void *digests = realloc(w->page_digests, cap * STORE_DIGEST_SIZE);

			if (!digests)
				return -ENOMEM;
			w->page_digests = digests;
			w->page_digests_cap = cap;
		}
		memcpy(w->page_digests[w->page_unique], w->refs.set.keys[index], STORE_DIGEST_SIZE);
		w->page_slots[index] = (uint32_t)++w->page_unique;
	}
	*slot = w->page_slots[index];
	return 0;
}

struct put_context {
	struct store_writer *writer;
	uint64_t first;
};

static int writer_page_consume(void *opaque, uint64_t i, const struct page_result *r)
{
	struct put_context *ctx = opaque;
	struct store_writer *w = ctx->writer;
	uint32_t index, slot;
	bool dup;
	int ret;

	w->stats.pages++;
	if (r->kind == PAGE_ZERO) {
		w->stats.zero_pages++;
		w->page_map[ctx->first + i] = 0;
		return 0;
	}
	ret = writer_chunk_add(w, r->digest, r->kind == PAGE_STORED ? &r->entry : NULL, r->record,
			       &r->entry, &index, &dup);
	if (!ret)
		ret = writer_page_slot(w, index, &slot);
	if (ret)
		return ret;
	w->stats.dup_pages += dup;
	w->page_map[ctx->first + i] = slot;
	return 0;
}

int store_snapshot_put_pages(struct store_writer *w, uint64_t first, const void *mem,
			     uint64_t count)
{
	struct put_context ctx = { w, first };
	int ret;

	if (w->error)
		return w->error;
	if (first > w->page_count || count > w->page_count - first) {
		log_error("store: snapshot '%s': pages %llu..%llu are outside its %llu pages",
			  w->name, (unsigned long long)first,
			  (unsigned long long)(first + count - 1),
			  (unsigned long long)w->page_count);
		return -EINVAL;
	}
	ret = pipeline_run(&w->store->index, mem, count, writer_page_consume, &ctx);
	if (ret) {
		log_error("store: snapshot '%s': storing pages failed: %s", w->name,
			  strerror(-ret));
		w->error = ret;
	}
	return ret;
}

static int writer_blob_check(struct store_writer *w, const char *name, size_t len)
{
	if (store_name_check(name)) {
		log_error("store: snapshot '%s': '%s' is not a blob name", w->name, name);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < w->blob_count; i++) {
		if (!strcmp(w->blobs[i].name, name)) {
			log_error("store: snapshot '%s' has a blob '%s' already", w->name, name);
			return -EEXIST;
		}
	}
	if (w->blob_count == STORE_BLOB_MAX || len > STORE_BLOB_SIZE_MAX) {
		log_error("store: snapshot '%s': blob '%s' is one too many or too large (%d "
			  "blobs, 1 GiB each at most)",
			  w->name, name, STORE_BLOB_MAX);
		return -E2BIG;
	}
	return 0;
}

int store_snapshot_put_blob(struct store_writer *w, const char *name, const void *data, size_t len)
{
	struct manifest_blob *b = &w->blobs[w->blob_count];
	uint32_t count = (uint32_t)((len + STORE_PAGE_SIZE - 1) / STORE_PAGE_SIZE);
	uint8_t(*digests)[STORE_DIGEST_SIZE];
	int ret = w->error ? w->error : writer_blob_check(w, name, len);

	if (ret)
		return ret;
	digests = malloc((count ? count : 1) * (size_t)STORE_DIGEST_SIZE);
	if (!digests)
		return -ENOMEM;
	for (uint32_t i = 0; i < count && !ret; i++) {
		size_t off = (size_t)i * STORE_PAGE_SIZE;

		ret = writer_data_add(w, (const uint8_t *)data + off,
				      (uint32_t)MIN(len - off, (size_t)STORE_PAGE_SIZE),
				      digests[i]);
	}
	if (ret) {
		free(digests);
		log_error("store: snapshot '%s': storing blob '%s' failed: %s", w->name, name,
			  strerror(-ret));
		w->error = ret;
		return ret;
	}
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->len = len;
	b->chunk_count = count;
	b->digests = (const void *)digests;
	w->blob_count++;
	return 0;
}

/* Copies and checks what the caller says about the snapshot into the record. */
static int writer_info_fill(struct store_writer *w, const struct store_commit_info *ci,
			    struct store_snapshot_info *in)
{
	const char *parent = ci && ci->parent ? ci->parent : "";
	const char *cpu_id = ci && ci->cpu_id ? ci->cpu_id : "";
	size_t kv_count = ci ? ci->kv_count : 0;

	if ((*parent && store_name_check(parent)) || strlen(cpu_id) > STORE_CPU_ID_MAX ||
	    kv_count > STORE_KV_MAX) {
		log_error("store: snapshot '%s': bad parent name, CPU identity or key/values",
			  w->name);
		return -EINVAL;
	}
	snprintf(in->parent, sizeof(in->parent), "%s", parent);
	snprintf(in->cpu_id, sizeof(in->cpu_id), "%s", cpu_id);
	for (size_t i = 0; i < kv_count; i++) {
		const struct store_kv *kv = &ci->kv[i];

		if (!kv->key || !kv->value || !*kv->key || strlen(kv->key) > STORE_KEY_MAX ||
		    strlen(kv->value) > STORE_VALUE_MAX) {
			log_error("store: snapshot '%s': key/value %zu is empty or too long",
				  w->name, i);
			return -EINVAL;
		}
		snprintf(in->kv[i].key, sizeof(in->kv[i].key), "%s", kv->key);
		snprintf(in->kv[i].value, sizeof(in->kv[i].value), "%s", kv->value);
	}
	in->kv_count = kv_count;
	in->created_ns = ci && ci->created_ns ? ci->created_ns : time_realtime_ns();
	in->ram_size = w->page_count * STORE_PAGE_SIZE;
	for (uint64_t i = 0; i < w->page_count; i++)
		in->nonzero_pages += w->page_map[i] != 0;
	for (uint32_t i = 0; i < w->blob_count; i++)
		in->blob_bytes += w->blobs[i].len;
	return 0;
}

/* Stores the manifest as chunks and fills the record that points at them. */
static int writer_manifest_store(struct store_writer *w, struct snap_record *r)
{
	struct manifest m = { .page_count = w->page_count,
			      .page_map = w->page_map,
			      .unique_count = w->page_unique,
			      .unique = (const void *)w->page_digests,
			      .blob_count = w->blob_count };
	uint8_t *buf;
	size_t len;
	int ret;

	memcpy(m.blobs, w->blobs, sizeof(w->blobs));
	ret = manifest_encode(&m, &buf, &len);
	if (ret)
		return ret;
	r->manifest_len = len;
	r->manifest_chunks = (uint32_t)((len + STORE_PAGE_SIZE - 1) / STORE_PAGE_SIZE);
	r->manifest_digests = malloc((size_t)r->manifest_chunks * STORE_DIGEST_SIZE);
	if (!r->manifest_digests)
		ret = -ENOMEM;
	for (uint32_t i = 0; i < r->manifest_chunks && !ret; i++) {
		size_t off = (size_t)i * STORE_PAGE_SIZE;

		ret = writer_data_add(w, buf + off,
				      (uint32_t)MIN(len - off, (size_t)STORE_PAGE_SIZE),
				      r->manifest_digests[i]);
	}
	free(buf);
	return ret;
}

int store_snapshot_publish(struct store *s, const char *name, const struct refs *refs,
			   const struct pack_writer *packs, const uint8_t *record, size_t len)
{
	MDB_val value;
	MDB_txn *txn;
	int ret = index_txn_begin(&s->index, true, &txn);

	if (ret)
		return ret;
	ret = index_record_get(&s->index, txn, s->index.snapshots, name, &value);
	if (ret == 0) {
		log_error("store %s: a snapshot named '%s' exists already", s->dir, name);
		ret = -EEXIST;
	} else if (ret == -ENOENT) {
		ret = refs_commit(&s->index, txn, refs);
	}
	if (!ret)
		ret = store_packs_record(s, txn, packs);
	if (!ret)
		ret = index_record_put(&s->index, txn, s->index.snapshots, name, record, len);
	return store_txn_end(s, txn, ret);
}

int store_snapshot_commit(struct store_writer *w, const struct store_commit_info *info,
			  struct store_write_stats *stats)
{
	struct snap_record r = { 0 };
	uint64_t start = time_now_ns(), synced = 0;
	uint8_t *record = NULL;
	size_t len;
	int ret = w->error;

	if (!ret)
		ret = writer_info_fill(w, info, &r.info);
	if (!ret)
		ret = writer_manifest_store(w, &r);
	if (!ret) {
		r.info.chunks = w->refs.set.count;
		r.info.stored_bytes = refs_stored_bytes(&w->refs);
		ret = snap_record_encode(&r, &record, &len);
	}
	mdb_txn_abort(w->txn);
	w->txn = NULL;
	if (!ret)
		ret = pack_writer_commit(w->packs);
	if (!ret) {
		synced = time_now_ns();
		ret = store_snapshot_publish(w->store, w->name, &w->refs, w->packs, record, len);
	}
	if (!ret)
		log_debug(
			"store: snapshot '%s': manifest and pack sync %.1f ms, index commit %.1f ms",
			w->name, (double)(synced - start) / 1e6,
			(double)(time_now_ns() - synced) / 1e6);
	if (ret) {
		log_error("store: snapshot '%s' was not stored: %s", w->name, strerror(-ret));
		pack_writer_discard(w->packs);
	} else {
		pack_writer_free(w->packs);
		if (stats)
			*stats = w->stats;
	}
	free(record);
	snap_record_free(&r);
	writer_free(w);
	return ret;
}

void store_snapshot_abort(struct store_writer *w)
{
	if (!w)
		return;
	pack_writer_discard(w->packs);
	writer_free(w);
}
