/*
 * Reading a snapshot. Opening it loads and checks the manifest; each page's
 * chunk is then looked up in the index the first time it is needed and
 * remembered. A gc may move chunks to new packs and delete the old ones
 * meanwhile: packs already open stay readable (the descriptor keeps the file),
 * and a pack that is gone when first opened means the chunk moved, so it is
 * looked up again in a fresh transaction.
 *
 * Each lookup has a read transaction of its own, ended at once: an LMDB
 * reader slot is held only meanwhile, not for the life of the snapshot,
 * so that however many clones run, they do not fill the index's slots.
 */
#include "store/internal.h"
#include "store/chunk.h"
#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store_snapshot {
	struct store *store;
	struct snap_record record; /* record.info.name is the snapshot's name */
	struct manifest manifest;
	pthread_mutex_t lock;	  /* guards locs and packs */
	struct chunk_entry *locs; /* per distinct page chunk; pack 0 until looked up */
	struct pack_cache packs;
	atomic_bool damage_reported; /* a damaged page has been reported: the others are not */
	bool resolved;		     /* every chunk looked up, its pack open (under lock) */
};

int store_snapshot_open(struct store *s, const char *name, struct store_snapshot **out)
{
	struct store_snapshot *snap = calloc(1, sizeof(*snap));
	MDB_txn *txn;
	int ret;

	if (!snap)
		return -ENOMEM;
	snap->store = s;
	pthread_mutex_init(&snap->lock, NULL);
	pack_cache_init(&snap->packs, s->backend);
	/*
	 * A RADOS store: the cached index is tried first, quietly (a snapshot is
	 * immutable, and one whose chunks are cached needs no round trip); if it
	 * lacks the snapshot, or a gc elsewhere replaced a pack it names, the
	 * catalog is pulled and the load tried again.
	 */
	for (int attempt = s->remote ? 0 : 1; attempt < 2; attempt++) {
		if (attempt == 1 && s->remote && remote_pull(s) == 0) {
			pack_cache_free(&snap->packs);
			pack_cache_init(&snap->packs, s->backend);
		}
		store_errors_quiet = attempt == 0;
		ret = index_txn_begin(&s->index, false, &txn);
		if (!ret) {
			ret = store_snapshot_load(s, txn, &snap->packs, name, &snap->record,
						  &snap->manifest);
			mdb_txn_abort(txn);
		}
		store_errors_quiet = false;
		if (!ret)
			break;
	}
	if (!ret) {
		snprintf(snap->record.info.name, sizeof(snap->record.info.name), "%s", name);
		snap->locs = calloc(snap->manifest.unique_count ? snap->manifest.unique_count : 1,
				    sizeof(*snap->locs));
		if (!snap->locs)
			ret = -ENOMEM;
	}
	if (ret) {
		store_snapshot_close(snap);
		return ret;
	}
	*out = snap;
	return 0;
}

void store_snapshot_close(struct store_snapshot *snap)
{
	if (!snap)
		return;
	pack_cache_free(&snap->packs);
	manifest_free(&snap->manifest);
	snap_record_free(&snap->record);
	free(snap->locs);
	pthread_mutex_destroy(&snap->lock);
	free(snap);
}

/* Resolves every chunk not yet looked up and opens its pack. Called with the lock held. */
static int snapshot_chunks_open(struct store_snapshot *snap, MDB_txn *txn)
{
	struct backend_object *obj;
	int ret = 0;

	for (uint64_t k = 0; !ret && k < snap->manifest.unique_count; k++) {
		if (!snap->locs[k].pack)
			ret = index_chunk_get(&snap->store->index, txn, snap->manifest.unique[k],
					      &snap->locs[k]);
		if (!ret)
			ret = pack_cache_get(&snap->packs, snap->locs[k].pack, &obj);
		if (ret) {
			snap->locs[k].pack = 0;
			log_error("store: snapshot '%s': cannot open the pack of chunk %llu: %s",
				  snap->record.info.name, (unsigned long long)k, strerror(-ret));
		}
	}
	return ret;
}

/* Called with the lock held. */
static int snapshot_resolve(struct store_snapshot *snap)
{
	MDB_txn *txn;
	int ret;

	if (snap->resolved)
		return 0;
	ret = index_txn_begin(&snap->store->index, false, &txn);
	if (!ret) {
		ret = snapshot_chunks_open(snap, txn);
		mdb_txn_abort(txn);
	}
	snap->resolved = ret == 0;
	return ret;
}

int store_snapshot_resolve(struct store_snapshot *snap)
{
	int ret;

	pthread_mutex_lock(&snap->lock);
	ret = snapshot_resolve(snap);
	pthread_mutex_unlock(&snap->lock);
	return ret;
}

int store_snapshot_seal(struct store_snapshot *snap)
{
	int ret;

	if (!snap->store->backend->ops->seal)
		return -EOPNOTSUPP;	 /* as store_seal() says */
	pthread_mutex_lock(&snap->lock); /* the pager's threads may be looking chunks up */
	ret = snapshot_resolve(snap);
	if (!ret)
		ret = store_seal(snap->store);
	pthread_mutex_unlock(&snap->lock);
	return ret;
}

bool store_snapshot_current(struct store_snapshot *snap)
{
	const struct snap_record *had = &snap->record;
	struct snap_record now;
	MDB_txn *txn;
	bool same = false;

	if (index_txn_begin(&snap->store->index, false, &txn))
		return false;
	store_errors_quiet = true; /* a snapshot deleted since is an answer, not an error */
	if (store_record_load(snap->store, txn, had->info.name, &now) == 0) {
		same = now.info.created_ns == had->info.created_ns &&
		       now.manifest_len == had->manifest_len &&
		       now.manifest_chunks == had->manifest_chunks &&
		       !memcmp(now.manifest_digests, had->manifest_digests,
			       (size_t)had->manifest_chunks * STORE_DIGEST_SIZE);
		snap_record_free(&now);
	}
	store_errors_quiet = false;
	mdb_txn_abort(txn);
	return same;
}

const struct store_snapshot_info *store_snapshot_meta(const struct store_snapshot *snap)
{
	return &snap->record.info;
}

uint64_t store_snapshot_page_count(const struct store_snapshot *snap)
{
	return snap->manifest.page_count;
}

bool store_page_is_zero(const struct store_snapshot *snap, uint64_t page)
{
	return page >= snap->manifest.page_count || snap->manifest.page_map[page] == 0;
}

/* Names a page in messages: "page N of 'NAME'". */
static const char *page_context(const struct store_snapshot *snap, uint64_t page, char *buf,
				size_t size)
{
	snprintf(buf, size, "page %llu of '%s'", (unsigned long long)page, snap->record.info.name);
	return buf;
}

/* Looks chunk k up in a fresh view of the index. Called with the lock held. */
static int snapshot_chunk_lookup(struct store_snapshot *snap, uint32_t k, uint64_t page)
{
	struct store *s = snap->store;
	char hex[2 * STORE_DIGEST_SIZE + 1], context[STORE_NAME_MAX + 48];
	MDB_txn *txn;
	int ret = index_txn_begin(&s->index, false, &txn);

	if (ret)
		return ret;
	ret = index_chunk_get(&s->index, txn, snap->manifest.unique[k], &snap->locs[k]);
	mdb_txn_abort(txn);
	if (ret == -ENOENT) {
		store_digest_hex(snap->manifest.unique[k], hex);
		log_error("store: chunk %s (%s) is no longer in the index (was the snapshot "
			  "removed and collected?)",
			  hex, page_context(snap, page, context, sizeof(context)));
	}
	if (ret) {
		snap->locs[k].pack = 0;
		snap->resolved = false;
	}
	return ret;
}

/*
 * Reports a damaged chunk met while reading pages, the first time only: a
 * clone's fault and prefetch threads may meet the same chunk at once, and
 * the first damage ends the clone; one line says why.
 */
static void snapshot_page_damage(struct store_snapshot *snap, const uint8_t *digest,
				 const struct chunk_entry *e, uint64_t page, const char *reason)
{
	char context[STORE_NAME_MAX + 48];

	if (!atomic_exchange(&snap->damage_reported, true))
		store_chunk_error(digest, e, page_context(snap, page, context, sizeof(context)),
				  reason);
}

/* Finds where chunk k (of page) is and opens its pack. Called with the lock held. */
static int snapshot_chunk_resolve(struct store_snapshot *snap, uint32_t k, uint64_t page,
				  struct backend_object **obj)
{
	const char *reason;
	int ret = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		/* a RADOS store: a gc on another host moved the chunk; the pool knows where */
		if (attempt && snap->store->remote)
			remote_pull(snap->store);
		if (!snap->locs[k].pack || attempt)
			ret = snapshot_chunk_lookup(snap, k, page);
		if (ret)
			return ret;
		ret = pack_cache_get(&snap->packs, snap->locs[k].pack, obj);
		if (ret != -ENOENT)
			break;
	}
	if (!ret && snap->locs[k].raw_len != STORE_PAGE_SIZE) {
		snapshot_page_damage(snap, snap->manifest.unique[k], &snap->locs[k], page,
				     "the index says it is not a whole page");
		snap->locs[k].pack = 0;
		snap->resolved = false;
		return -EBADMSG;
	}
	if (ret) {
		char why[96];

		snprintf(why, sizeof(why), "its pack cannot be opened: %s", strerror(-ret));
		reason = ret == -ENOENT	   ? "its pack is missing"
			 : ret == -EBADMSG ? "its pack has a bad header"
					   : why;
		snapshot_page_damage(snap, snap->manifest.unique[k], &snap->locs[k], page, reason);
		return -EBADMSG;
	}
	return 0;
}

/* Locates page's chunk and its pack; STORE_PAGE_ZERO for a zero page. */
static int snapshot_page_find(struct store_snapshot *snap, uint64_t page,
			      struct store_chunk_loc *loc, struct backend_object **obj)
{
	uint32_t slot, k;
	int ret;

	if (page >= snap->manifest.page_count) {
		log_error("store: snapshot '%s' has no page %llu (it has %llu)",
			  snap->record.info.name, (unsigned long long)page,
			  (unsigned long long)snap->manifest.page_count);
		return -EINVAL;
	}
	slot = snap->manifest.page_map[page];
	if (!slot)
		return STORE_PAGE_ZERO;
	k = slot - 1;
	pthread_mutex_lock(&snap->lock);
	ret = snapshot_chunk_resolve(snap, k, page, obj);
	if (!ret) {
		const struct chunk_entry *e = &snap->locs[k];

		loc->offset = e->offset;
		loc->pack = e->pack;
		loc->raw_len = e->raw_len;
		loc->stored_len = e->stored_len;
		loc->length = CHUNK_HEADER_SIZE + e->stored_len;
		loc->codec = e->codec;
		memcpy(loc->digest, snap->manifest.unique[k], STORE_DIGEST_SIZE);
	}
	pthread_mutex_unlock(&snap->lock);
	return ret;
}

/* Fetches n chunk ranges of obj into the local cache; reports the first page on failure. */
static int snapshot_fetch(struct store_snapshot *snap, struct backend_object *obj,
			  const uint64_t *offsets, const uint32_t *lens, size_t n, uint64_t page,
			  const struct store_chunk_loc *loc)
{
	int ret = snap->store->backend->ops->object_fetch(obj, offsets, lens, n);

	if (ret) {
		struct chunk_entry e = { .pack = loc->pack, .offset = loc->offset };
		char reason[96];

		snprintf(reason, sizeof(reason), "it cannot be fetched from the pool: %s",
			 strerror(-ret));
		snapshot_page_damage(snap, loc->digest, &e, page, reason);
		ret = ret == -EBADMSG ? ret : -EIO;
	}
	return ret;
}

int store_page_locate(struct store_snapshot *snap, uint64_t page, struct store_chunk_loc *loc)
{
	struct backend_object *obj;
	int ret = snapshot_page_find(snap, page, loc, &obj);

	if (ret == 0 && snap->store->backend->ops->object_fetch)
		ret = snapshot_fetch(snap, obj, &loc->offset, &loc->length, 1, page, loc);
	if (ret == 0)
		loc->fd = snap->store->backend->ops->object_fd(obj);
	return ret;
}

bool store_page_cached(struct store_snapshot *snap, uint64_t page)
{
	const struct backend_ops *ops = snap->store->backend->ops;
	struct store_chunk_loc loc;
	struct backend_object *obj;

	if (!ops->object_cached)
		return true;
	if (snapshot_page_find(snap, page, &loc, &obj))
		return true; /* a zero page, or one whose error the read will report */
	return ops->object_cached(obj, loc.offset, loc.length);
}

#define FETCH_BATCH 1024

int store_pages_fetch(struct store_snapshot *snap, const uint32_t *pages, size_t count)
{
	struct backend_object *batch_obj = NULL, *obj;
	struct store_chunk_loc loc, batch_loc;
	uint64_t *offsets = NULL, batch_page = 0;
	uint32_t *lens = NULL;
	size_t n = 0;
	int ret = 0;

	if (!snap->store->backend->ops->object_fetch || !count)
		return 0;
	offsets = malloc(FETCH_BATCH * sizeof(*offsets));
	lens = malloc(FETCH_BATCH * sizeof(*lens));
	if (!offsets || !lens)
		ret = -ENOMEM;
	/* ranges of one pack go to the backend together: it reads them in parallel */
	for (size_t i = 0; i <= count && !ret; i++) {
		bool flush = i == count || n == FETCH_BATCH;

		if (!flush) {
			ret = snapshot_page_find(snap, pages[i], &loc, &obj);
			if (ret == STORE_PAGE_ZERO) {
				ret = 0;
				continue;
			}
			if (ret)
				break;
			flush = n && obj != batch_obj;
		}
		if (flush && n) {
			ret = snapshot_fetch(snap, batch_obj, offsets, lens, n, batch_page,
					     &batch_loc);
			n = 0;
		}
		if (i < count && !ret) {
			if (!n) {
				batch_obj = obj;
				batch_loc = loc;
				batch_page = pages[i];
			}
			offsets[n] = loc.offset;
			lens[n++] = loc.length;
		}
	}
	free(offsets);
	free(lens);
	return ret;
}

/* Checks and decodes a record read at loc; logs nothing. */
static int snapshot_chunk_decode(const struct store_chunk_loc *loc, const void *record, void *out,
				 const char **reason)
{
	struct chunk_header expect = { .stored_len = loc->stored_len,
				       .raw_len = loc->raw_len,
				       .codec = (uint8_t)loc->codec };

	memcpy(expect.digest, loc->digest, STORE_DIGEST_SIZE);
	return chunk_record_decode(record, loc->length, &expect, out, reason);
}

static void snapshot_chunk_error(const struct store_chunk_loc *loc, const char *context,
				 const char *reason)
{
	struct chunk_entry e = { .pack = loc->pack, .offset = loc->offset };

	store_chunk_error(loc->digest, &e, context, reason);
}

int store_chunk_decode(const struct store_chunk_loc *loc, const void *record, void *out)
{
	const char *reason;
	int ret = snapshot_chunk_decode(loc, record, out, &reason);

	if (ret)
		snapshot_chunk_error(loc, "read by the caller", reason);
	return ret;
}

int store_page_decode(struct store_snapshot *snap, uint64_t page, const struct store_chunk_loc *loc,
		      const void *record, void *out)
{
	struct chunk_entry e = { .pack = loc->pack, .offset = loc->offset };
	const char *reason;
	int ret = snapshot_chunk_decode(loc, record, out, &reason);

	if (ret)
		snapshot_page_damage(snap, loc->digest, &e, page, reason);
	return ret;
}

int store_page_read(struct store_snapshot *snap, uint64_t page, void *buf)
{
	uint8_t record[CHUNK_RECORD_MAX];
	struct store_chunk_loc loc;
	struct backend_object *obj;
	const char *reason = "reading its pack failed";
	int ret = snapshot_page_find(snap, page, &loc, &obj);

	if (ret == STORE_PAGE_ZERO) {
		memset(buf, 0, STORE_PAGE_SIZE);
		return 0;
	}
	if (ret)
		return ret;
	ret = snap->store->backend->ops->object_read(obj, loc.offset, record, loc.length);
	if (ret == -EBADMSG)
		reason = "its pack ends before the chunk does";
	else if (ret == 0)
		ret = snapshot_chunk_decode(&loc, record, buf, &reason);
	if (ret) {
		struct chunk_entry e = { .pack = loc.pack, .offset = loc.offset };

		snapshot_page_damage(snap, loc.digest, &e, page, reason);
	}
	return ret;
}

int store_blob_read(struct store_snapshot *snap, const char *name, uint8_t **data, size_t *len)
{
	const struct manifest_blob *b = manifest_blob_find(&snap->manifest, name);
	char context[2 * STORE_NAME_MAX + 32];
	MDB_txn *txn;
	int ret;

	if (!b) {
		log_error("store: snapshot '%s' has no blob '%s'", snap->record.info.name, name);
		return -ENOENT;
	}
	snprintf(context, sizeof(context), "blob '%s' of '%s'", name, snap->record.info.name);
	pthread_mutex_lock(&snap->lock);
	ret = index_txn_begin(&snap->store->index, false, &txn);
	if (!ret) {
		ret = store_chunks_load(snap->store, txn, &snap->packs, b->digests, b->chunk_count,
					b->len, data, context);
		mdb_txn_abort(txn);
	}
	pthread_mutex_unlock(&snap->lock);
	if (!ret)
		*len = b->len;
	return ret;
}
