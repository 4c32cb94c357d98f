/*
 * Verify reads every chunk back and checks it against its digest, then
 * says which snapshots the damage makes unreadable, and (for the whole
 * store) whether each reference count matches the snapshots that use the
 * chunk. LMDB trusts the structure of its own file, so the whole index is
 * first walked in a child process: a damaged B-tree then kills the child,
 * not us, and is reported.
 */
#include "store/internal.h"
#include "store/remote.h"
#include "store/chunk.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct vchunk {
	uint8_t digest[STORE_DIGEST_SIZE];
	struct chunk_entry entry;
	uint64_t expected_refs;
};

struct verify {
	struct store *store;
	struct store_verify_report *report;
	MDB_txn *txn;
	struct pack_cache cache;
	struct vchunk *chunks;
	size_t count, cap;
	struct dset all;     /* digests of chunks, parallel to chunks */
	struct dset damaged; /* chunks damaged, or with damaged records */
	bool refs_known;     /* every manifest could be read: reference counts can be checked */
};

static void verify_chunk_damaged(struct verify *v, const uint8_t *digest,
				 const struct chunk_entry *e, const char *reason)
{
	struct store_damage d = { .pack = e ? e->pack : 0,
				  .offset = e ? e->offset : 0,
				  .reason = reason };
	uint32_t index;

	if (dset_add(&v->damaged, digest, &index) != 1)
		return;
	memcpy(d.digest, digest, STORE_DIGEST_SIZE);
	v->report->damaged_chunks++;
	if (v->report->chunk_damaged)
		v->report->chunk_damaged(v->report->opaque, &d);
}

static void verify_snapshot_damaged(struct verify *v, const char *name, const char *reason)
{
	v->report->damaged_snapshots++;
	if (v->report->snapshot_damaged)
		v->report->snapshot_damaged(v->report->opaque, name, reason);
}

/* Walks every database of a fresh environment; exits 0 when LMDB survived it. */
static int index_walk_visit(void *opaque, const char *name, const void *data, size_t len)
{
	(void)opaque, (void)name, (void)data, (void)len;
	return 0;
}

static int index_walk_chunk(void *opaque, const uint8_t *digest, const struct chunk_entry *e)
{
	(void)opaque, (void)digest, (void)e;
	return 0;
}

static int index_walk_pack(void *opaque, uint64_t id, const struct pack_entry *e)
{
	(void)opaque, (void)id, (void)e;
	return 0;
}

static void index_walk_child(const char *dir)
{
	struct index ix;
	MDB_txn *txn;
	bool created;
	int ret;

	log_threshold = LOG_QUIET; /* the parent reports */
	ret = index_open(&ix, dir, false, &created);
	if (!ret)
		ret = index_txn_begin(&ix, false, &txn);
	if (ret)
		_exit(3);
	ret = index_chunk_foreach(&ix, txn, index_walk_chunk, NULL);
	ret = ret ? ret : index_pack_foreach(&ix, txn, index_walk_pack, NULL);
	ret = ret ? ret : index_record_foreach(&ix, txn, ix.snapshots, index_walk_visit, NULL);
	ret = ret ? ret : index_record_foreach(&ix, txn, ix.worksets, index_walk_visit, NULL);
	_exit(ret ? 2 : 0);
}

static int verify_index_structure(struct verify *v)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		index_walk_child(v->store->dir);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		log_error("store index %s is damaged: reading it crashed a checker process "
			  "(signal %d); nothing else was checked",
			  v->store->index.path, WTERMSIG(status));
	else
		log_error("store index %s is damaged: its B-trees cannot be walked; nothing else "
			  "was checked",
			  v->store->index.path);
	v->report->index_errors++;
	return -EUCLEAN;
}

static int verify_chunk_collect(void *opaque, const uint8_t *digest, const struct chunk_entry *e)
{
	struct verify *v = opaque;
	uint32_t index;
	int ret;

	if (!e) {
		v->report->index_errors++;
		verify_chunk_damaged(v, digest, NULL, "its index record is damaged");
		return 0;
	}
	if (v->count == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 1024;
		void *chunks = realloc(v->chunks, cap * sizeof(*v->chunks));

		if (!chunks)
			return -ENOMEM;
		v->chunks = chunks;
		v->cap = cap;
	}
	ret = dset_add(&v->all, digest, &index);
	if (ret <= 0)
		return ret;
	memcpy(v->chunks[index].digest, digest, STORE_DIGEST_SIZE);
	v->chunks[index].entry = *e;
	v->chunks[index].expected_refs = 0;
	v->count++;
	return 0;
}

/* Adds the chunk to the set to check, looking it up in the index. */
static int verify_chunk_want(struct verify *v, const uint8_t *digest)
{
	struct chunk_entry e;
	int ret;

	if (dset_find(&v->all, digest) >= 0 || dset_find(&v->damaged, digest) >= 0)
		return 0;
	ret = index_chunk_get(&v->store->index, v->txn, digest, &e);
	if (ret == -ENOENT) {
		verify_chunk_damaged(v, digest, NULL, "it is not in the index");
		return 0;
	}
	if (ret == -EUCLEAN) {
		v->report->index_errors++;
		verify_chunk_damaged(v, digest, NULL, "its index record is damaged");
		return 0;
	}
	return ret ? ret : verify_chunk_collect(v, digest, &e);
}

static int vchunk_order(const void *a, const void *b, void *opaque)
{
	const struct vchunk *chunks = opaque;
	const struct chunk_entry *x = &chunks[*(const uint32_t *)a].entry;
	const struct chunk_entry *y = &chunks[*(const uint32_t *)b].entry;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Reads every collected chunk, in pack order, and checks it. */
static int verify_chunks_read(struct verify *v, size_t first)
{
	uint64_t total = 0, done = 0;
	uint8_t data[CHUNK_RAW_MAX];
	uint32_t *order = malloc((v->count - first + 1) * sizeof(*order));
	const char *reason;

	if (!order)
		return -ENOMEM;
	for (size_t i = first; i < v->count; i++) {
		order[i - first] = (uint32_t)i;
		total += CHUNK_HEADER_SIZE + v->chunks[i].entry.stored_len;
	}
	qsort_r(order, v->count - first, sizeof(*order), vchunk_order, v->chunks);
	for (size_t i = 0; i < v->count - first; i++) {
		struct vchunk *c = &v->chunks[order[i]];

		if (pack_chunk_read(&v->cache, c->digest, &c->entry, NULL, data, &reason))
			verify_chunk_damaged(v, c->digest, &c->entry, reason);
		v->report->chunks_checked++;
		v->report->bytes_checked += c->entry.raw_len;
		done += CHUNK_HEADER_SIZE + c->entry.stored_len;
		store_progress(v->store, "verify", done, total);
	}
	free(order);
	return 0;
}

/* True if any of the digests is damaged or missing. */
static bool verify_any_damaged(struct verify *v, const uint8_t (*digests)[STORE_DIGEST_SIZE],
			       uint64_t count)
{
	for (uint64_t i = 0; i < count; i++) {
		if (dset_find(&v->damaged, digests[i]) >= 0)
			return true;
	}
	return false;
}

/*
 * Checks one snapshot whose chunks were all read: its manifest, then every
 * chunk it references; counts the references for the refcount check.
 */
static int verify_snapshot(struct verify *v, const char *name)
{
	struct snap_record r;
	struct manifest m;
	struct dset refs;
	uint64_t bad = 0;
	char reason[96];
	int ret = store_record_load(v->store, v->txn, name, &r);

	if (ret == -EUCLEAN) {
		v->report->index_errors++;
		verify_snapshot_damaged(v, name, "its index record is damaged");
		v->refs_known = false;
		return 0;
	}
	if (ret)
		return ret;
	if (verify_any_damaged(v, (const void *)r.manifest_digests, r.manifest_chunks)) {
		verify_snapshot_damaged(v, name, "its manifest is damaged");
		snap_record_free(&r);
		v->refs_known = false;
		return 0;
	}
	snap_record_free(&r);
	ret = store_snapshot_load(v->store, v->txn, &v->cache, name, &r, &m);
	if (ret == -EBADMSG) {
		verify_snapshot_damaged(v, name, "its manifest cannot be read");
		v->refs_known = false;
		return 0;
	}
	if (ret)
		return ret;
	dset_init(&refs);
	ret = store_snapshot_refs(&r, &m, &refs);
	for (size_t i = 0; i < refs.count && !ret; i++) {
		int64_t k = dset_find(&v->all, refs.keys[i]);

		if (k >= 0)
			v->chunks[k].expected_refs++;
		if (k < 0 || dset_find(&v->damaged, refs.keys[i]) >= 0)
			bad++;
	}
	if (!ret && bad) {
		snprintf(reason, sizeof(reason), "%llu of its chunks are damaged or missing",
			 (unsigned long long)bad);
		verify_snapshot_damaged(v, name, reason);
	}
	dset_free(&refs);
	manifest_free(&m);
	snap_record_free(&r);
	return ret;
}

struct name_list {
	char (*names)[STORE_NAME_MAX + 1];
	size_t count;
	bool bad_key;
};

static int name_collect(void *opaque, const char *name, const void *data, size_t len)
{
	struct name_list *l = opaque;
	void *names;

	(void)data, (void)len;
	if (!*name) {
		l->bad_key = true;
		return 0;
	}
	names = realloc(l->names, (l->count + 1) * sizeof(*l->names));
	if (!names)
		return -ENOMEM;
	l->names = names;
	snprintf(l->names[l->count++], STORE_NAME_MAX + 1, "%s", name);
	return 0;
}

/* Compares reference counts with the snapshots that use each chunk. */
static void verify_refcounts(struct verify *v)
{
	char reason[96];

	for (size_t i = 0; i < v->count; i++) {
		struct vchunk *c = &v->chunks[i];

		if (c->entry.refs == c->expected_refs)
			continue;
		snprintf(reason, sizeof(reason),
			 "its reference count is %llu but %llu snapshots use it",
			 (unsigned long long)c->entry.refs, (unsigned long long)c->expected_refs);
		v->report->index_errors++;
		verify_chunk_damaged(v, c->digest, &c->entry, reason);
	}
}

static int verify_all(struct verify *v)
{
	struct name_list names = { 0 };
	int ret = verify_index_structure(v);

	if (ret)
		return ret;
	ret = index_chunk_foreach(&v->store->index, v->txn, verify_chunk_collect, v);
	if (!ret)
		ret = verify_chunks_read(v, 0);
	if (!ret)
		ret = index_record_foreach(&v->store->index, v->txn, v->store->index.snapshots,
					   name_collect, &names);
	if (names.bad_key) {
		v->report->index_errors++;
		verify_snapshot_damaged(v, "(unnamed)", "its index key is not a snapshot name");
	}
	v->refs_known = true;
	for (size_t i = 0; i < names.count && !ret; i++)
		ret = verify_snapshot(v, names.names[i]);
	if (!ret && v->refs_known)
		verify_refcounts(v);
	free(names.names);
	return ret;
}

/* Checks one snapshot: its manifest chunks first, then everything it references. */
static int verify_one(struct verify *v, const char *name)
{
	struct snap_record r = { 0 };
	struct manifest m;
	struct dset refs;
	size_t first;
	int ret = store_record_load(v->store, v->txn, name, &r);

	if (ret == -EUCLEAN) {
		v->report->index_errors++;
		verify_snapshot_damaged(v, name, "its index record is damaged");
		return 0;
	}
	for (uint32_t i = 0; !ret && i < r.manifest_chunks; i++)
		ret = verify_chunk_want(v, r.manifest_digests[i]);
	snap_record_free(&r);
	if (!ret)
		ret = verify_chunks_read(v, 0);
	if (ret || v->damaged.count)
		goto out;
	first = v->count;
	ret = store_snapshot_load(v->store, v->txn, &v->cache, name, &r, &m);
	if (ret == -EBADMSG) {
		verify_snapshot_damaged(v, name, "its manifest is malformed");
		return 0;
	}
	if (ret)
		return ret;
	dset_init(&refs);
	ret = store_snapshot_refs(&r, &m, &refs);
	for (size_t i = 0; i < refs.count && !ret; i++)
		ret = verify_chunk_want(v, refs.keys[i]);
	if (!ret)
		ret = verify_chunks_read(v, first);
	dset_free(&refs);
	manifest_free(&m);
	snap_record_free(&r);
out:
	if (!ret && v->damaged.count)
		verify_snapshot_damaged(v, name, "some of its chunks are damaged or missing");
	return ret;
}

int store_verify(struct store *s, const char *name, struct store_verify_report *report)
{
	struct verify v = { .store = s, .report = report };
	int ret = 0;

	/* a RADOS store: check what the pool holds, not what this host cached */
	if (s->remote) {
		ret = remote_pull(s);
		backend_rados_cache_clear(s->backend);
	}
	if (!ret)
		ret = index_txn_begin(&s->index, false, &v.txn);

	report->chunks_checked = report->bytes_checked = 0;
	report->damaged_chunks = report->damaged_snapshots = report->index_errors = 0;
	if (ret)
		return ret;
	pack_cache_init(&v.cache, s->backend);
	dset_init(&v.all);
	dset_init(&v.damaged);
	ret = name ? verify_one(&v, name) : verify_all(&v);
	mdb_txn_abort(v.txn);
	pack_cache_free(&v.cache);
	dset_free(&v.all);
	dset_free(&v.damaged);
	free(v.chunks);
	if (ret)
		return ret;
	if (report->damaged_chunks || report->damaged_snapshots || report->index_errors) {
		log_error("store %s: %llu damaged chunks, %llu snapshots affected, %llu index "
			  "errors",
			  s->dir, (unsigned long long)report->damaged_chunks,
			  (unsigned long long)report->damaged_snapshots,
			  (unsigned long long)report->index_errors);
		return -EBADMSG;
	}
	return 0;
}
