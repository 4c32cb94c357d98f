/*
 * Garbage collection. Chunks nobody references (refs 0, counted again from
 * the manifests when they all read back) and old copies left by relayout
 * are garbage; a pack holding any is rewritten: its live chunks
 * are copied, checked, into new packs, which are synced, then one index
 * commit points the chunks at their new places, drops the dead records and
 * swaps the pack records, and only then are the old packs deleted. A crash
 * before the commit leaves unreferenced new packs, after it unreferenced old
 * ones: either way the next gc deletes them ("orphans"). Readers that still
 * see the old index either hold the old pack open, which keeps it readable,
 * or find it gone and look the chunk up again.
 */
#include "store/internal.h"
#include "store/chunk.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct gc_pack {
	uint64_t id;
	uint64_t size;
	uint64_t live; /* bytes of live records */
	bool rewrite;  /* holds garbage */
	bool damaged;  /* a live chunk could not be copied: keep it as it is */
};

struct gc_chunk {
	uint8_t digest[STORE_DIGEST_SIZE];
	struct chunk_entry entry; /* refs as recounted, when that was possible */
	struct chunk_entry moved; /* its new place, once copied */
	bool fixed;		  /* its reference count was wrong */
};

struct gc {
	struct store *store;
	struct store_gc_stats *stats;
	MDB_txn *txn;
	struct pack_cache cache;
	struct gc_pack *packs; /* in id order */
	size_t pack_count;
	struct gc_chunk *chunks; /* in digest order, later in pack order */
	size_t count, cap;
	struct pack_writer *writer;
};

static struct gc_pack *gc_pack_find(struct gc *gc, uint64_t id)
{
	size_t lo = 0, hi = gc->pack_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (gc->packs[mid].id == id)
			return &gc->packs[mid];
		if (gc->packs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int gc_pack_add(void *opaque, uint64_t id, const struct pack_entry *e)
{
	struct gc *gc = opaque;
	void *packs;

	if (!e)
		return -EUCLEAN;
	packs = realloc(gc->packs, (gc->pack_count + 1) * sizeof(*gc->packs));
	if (!packs)
		return -ENOMEM;
	gc->packs = packs;
	gc->packs[gc->pack_count++] = (struct gc_pack){ .id = id, .size = e->size };
	return 0;
}

static int gc_chunk_add(void *opaque, const uint8_t *digest, const struct chunk_entry *e)
{
	struct gc *gc = opaque;

	if (!e)
		return -EUCLEAN;
	if (gc->count == gc->cap) {
		size_t cap = gc->cap ? gc->cap * 2 : 1024;
		void *chunks = realloc(gc->chunks, cap * sizeof(*gc->chunks));

		if (!chunks)
			return -ENOMEM;
		gc->chunks = chunks;
		gc->cap = cap;
	}
	memcpy(gc->chunks[gc->count].digest, digest, STORE_DIGEST_SIZE);
	gc->chunks[gc->count].entry = *e;
	gc->chunks[gc->count++].fixed = false;
	return 0;
}

/* The chunk with this digest; chunks are still in digest order (the index's). */
static struct gc_chunk *gc_chunk_find(struct gc *gc, const uint8_t *digest)
{
	size_t lo = 0, hi = gc->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = memcmp(gc->chunks[mid].digest, digest, STORE_DIGEST_SIZE);

		if (!cmp)
			return &gc->chunks[mid];
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Adds the references of snapshot name to used[]; -EBADMSG if it cannot be read whole. */
static int gc_snapshot_count(struct gc *gc, const char *name, uint64_t *used)
{
	struct snap_record r;
	struct manifest m;
	struct dset refs;
	int ret = store_snapshot_load(gc->store, gc->txn, &gc->cache, name, &r, &m);

	if (ret)
		return ret;
	dset_init(&refs);
	ret = store_snapshot_refs(&r, &m, &refs);
	for (size_t i = 0; i < refs.count && !ret; i++) {
		struct gc_chunk *c = gc_chunk_find(gc, refs.keys[i]);

		if (c)
			used[c - gc->chunks]++;
		else
			ret = -EBADMSG;
	}
	dset_free(&refs);
	manifest_free(&m);
	snap_record_free(&r);
	return ret;
}

struct gc_names {
	struct gc *gc;
	uint64_t *used;
	int error;
};

static int gc_count_one(void *opaque, const char *name, const void *data, size_t len)
{
	struct gc_names *n = opaque;

	(void)data, (void)len;
	if (!*name)
		return -EUCLEAN;
	n->error = gc_snapshot_count(n->gc, name, n->used);
	return n->error;
}

/*
 * Counts again, from every snapshot's manifest, how many snapshots use each
 * chunk, and corrects the counts that are wrong (a snapshot removed while
 * its manifest was damaged leaves its chunks referenced). Only done when
 * every snapshot reads back whole: a chunk that a damaged snapshot might
 * use is never taken for garbage.
 */
static int gc_recount(struct gc *gc)
{
	struct gc_names n = { .gc = gc, .used = calloc(gc->count + 1, sizeof(uint64_t)) };
	int ret;

	if (!n.used)
		return -ENOMEM;
	ret = index_record_foreach(&gc->store->index, gc->txn, gc->store->index.snapshots,
				   gc_count_one, &n);
	if (ret == -ENOMEM || (ret && ret != -EBADMSG && ret != -EUCLEAN && ret != -ENOENT)) {
		free(n.used);
		return ret;
	}
	if (ret) {
		log_warn("store: a snapshot cannot be read whole, so gc keeps every reference "
			 "count as it is");
		free(n.used);
		return 0;
	}
	for (size_t i = 0; i < gc->count; i++) {
		struct gc_chunk *c = &gc->chunks[i];

		if (c->entry.refs != n.used[i]) {
			c->entry.refs = n.used[i];
			c->fixed = true;
			gc->stats->refcounts_fixed++;
		}
	}
	free(n.used);
	return 0;
}

static int gc_orphan_check(void *opaque, const char *name)
{
	struct gc *gc = opaque;
	uint64_t id;

	if (pack_name_parse(name, &id) == 0) {
		if (gc_pack_find(gc, id))
			return 0;
		/* A chunk record pointing into it is an index error for verify; keep it. */
		for (size_t i = 0; i < gc->count; i++) {
			if (gc->chunks[i].entry.pack == id)
				return 0;
		}
	} else if (strncmp(name, ".tmp-", 5)) {
		return 0; /* not ours */
	}
	if (gc->store->backend->ops->remove(gc->store->backend, name) == 0)
		gc->stats->orphans_removed++;
	return 0;
}

static int gc_pack_order(const void *a, const void *b)
{
	const struct chunk_entry *x = &((const struct gc_chunk *)a)->entry;
	const struct chunk_entry *y = &((const struct gc_chunk *)b)->entry;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Reads what the index holds and decides which packs to rewrite. */
static int gc_plan(struct gc *gc)
{
	struct index *ix = &gc->store->index;
	int ret = index_pack_foreach(ix, gc->txn, gc_pack_add, gc);

	if (!ret)
		ret = index_chunk_foreach(ix, gc->txn, gc_chunk_add, gc);
	if (ret == -EUCLEAN)
		log_error("store index %s: a record is damaged; gc stops (run 'snapvm store "
			  "verify')",
			  ix->path);
	if (!ret)
		ret = gc_recount(gc);
	if (ret)
		return ret;
	for (size_t i = 0; i < gc->count; i++) {
		struct gc_pack *p = gc_pack_find(gc, gc->chunks[i].entry.pack);

		if (p && gc->chunks[i].entry.refs)
			p->live += CHUNK_HEADER_SIZE + gc->chunks[i].entry.stored_len;
	}
	for (size_t i = 0; i < gc->pack_count; i++) {
		struct gc_pack *p = &gc->packs[i];

		gc->stats->bytes_before += p->size;
		p->rewrite = p->size > PACK_HEADER_SIZE + p->live;
	}
	if (gc->count)
		qsort(gc->chunks, gc->count, sizeof(*gc->chunks), gc_pack_order);
	return gc->store->backend->ops->list(gc->store->backend, gc_orphan_check, gc);
}

/* Copies the live chunks of the packs being rewritten into new packs. */
static int gc_copy(struct gc *gc)
{
	uint8_t record[CHUNK_RECORD_MAX], scratch[CHUNK_RAW_MAX];
	uint64_t next_pack, total = 0, done = 0;
	const char *reason;
	int ret = index_next_pack_get(&gc->store->index, gc->txn, &next_pack);

	if (!ret)
		ret = pack_writer_create(gc->store->backend, next_pack, &gc->writer);
	if (ret)
		return ret;
	for (size_t i = 0; i < gc->pack_count; i++)
		total += gc->packs[i].rewrite ? gc->packs[i].live : 0;
	for (size_t i = 0; i < gc->count && !ret; i++) {
		struct gc_chunk *c = &gc->chunks[i];
		struct gc_pack *p = gc_pack_find(gc, c->entry.pack);

		if (!c->entry.refs || !p || !p->rewrite || p->damaged)
			continue;
		if (pack_chunk_read(&gc->cache, c->digest, &c->entry, record, scratch, &reason)) {
			store_chunk_error(c->digest, &c->entry, "gc", reason);
			log_warn("store: gc leaves that pack as it is");
			p->damaged = true;
			continue;
		}
		c->moved = c->entry;
		ret = pack_writer_append(gc->writer, record,
					 CHUNK_HEADER_SIZE + c->entry.stored_len, &c->moved.pack,
					 &c->moved.offset);
		done += CHUNK_HEADER_SIZE + c->entry.stored_len;
		store_progress(gc->store, "gc", done, total);
	}
	return ret ? ret : pack_writer_commit(gc->writer);
}

/* Switches the index to the new packs in one commit. */
static int gc_switch(struct gc *gc)
{
	struct index *ix = &gc->store->index;
	MDB_txn *txn;
	int ret = index_txn_begin(ix, true, &txn);

	if (ret)
		return ret;
	for (size_t i = 0; i < gc->count && !ret; i++) {
		struct gc_chunk *c = &gc->chunks[i];
		struct gc_pack *p = gc_pack_find(gc, c->entry.pack);

		if (!c->entry.refs) {
			gc->stats->chunks_freed++;
			ret = index_chunk_delete(ix, txn, c->digest);
		} else if (p && p->rewrite && !p->damaged) {
			gc->stats->chunks_moved++;
			ret = index_chunk_put(ix, txn, c->digest, &c->moved);
		} else if (c->fixed) {
			ret = index_chunk_put(ix, txn, c->digest, &c->entry);
		}
	}
	for (size_t i = 0; i < gc->pack_count && !ret; i++) {
		if (gc->packs[i].rewrite && !gc->packs[i].damaged)
			ret = index_pack_delete(ix, txn, gc->packs[i].id);
	}
	if (!ret)
		ret = store_packs_record(gc->store, txn, gc->writer);
	/* the catalog drops the old packs before they are deleted from the pool */
	return store_txn_end(gc->store, txn, ret);
}

/* Deletes the packs that were rewritten; readers holding them open keep reading. */
static void gc_packs_delete(struct gc *gc)
{
	char name[PACK_NAME_SIZE];
	size_t count;
	const struct pack_written *written = pack_writer_packs(gc->writer, &count);

	for (size_t i = 0; i < gc->pack_count; i++) {
		struct gc_pack *p = &gc->packs[i];

		if (p->rewrite && !p->damaged) {
			pack_name(p->id, name);
			gc->store->backend->ops->remove(gc->store->backend, name);
			gc->stats->packs_rewritten++;
		} else {
			gc->stats->bytes_after += p->size;
		}
	}
	gc->stats->packs_written = count;
	for (size_t i = 0; i < count; i++)
		gc->stats->bytes_after += written[i].entry.size;
}

int store_gc(struct store *s, struct store_gc_stats *stats)
{
	struct store_gc_stats unused;
	struct gc gc = { .store = s, .stats = stats ? stats : &unused };
	int lock_fd, ret;

	s->lock_exclusive = true; /* no writer of any host may be under way */
	ret = store_lock_take(s, &lock_fd);
	s->lock_exclusive = false;
	if (ret)
		return ret;
	memset(gc.stats, 0, sizeof(*gc.stats));
	pack_cache_init(&gc.cache, s->backend);
	ret = index_txn_begin(&s->index, false, &gc.txn);
	if (!ret) {
		ret = gc_plan(&gc);
		if (!ret)
			ret = gc_copy(&gc);
		mdb_txn_abort(gc.txn);
	}
	if (!ret)
		ret = gc_switch(&gc);
	if (ret) {
		log_error("store %s: gc failed, nothing was changed: %s", s->dir, strerror(-ret));
		pack_writer_discard(gc.writer);
	} else {
		gc_packs_delete(&gc);
		pack_writer_free(gc.writer);
	}
	pack_cache_free(&gc.cache);
	free(gc.packs);
	free(gc.chunks);
	store_lock_release(s, lock_fd);
	return ret;
}
