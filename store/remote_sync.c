/*
 * Keeping the local index (a cache) and the pool's catalog in step.
 *
 * Pull copies into the local index what the catalog holds: packs (with the
 * chunk locations from their .idx objects), snapshot records, working sets;
 * snapshots gone from the catalog go locally too, and reference counts
 * follow. If a pack the local index knows is gone (a gc on some host
 * replaced it), the local index is rebuilt from the catalog whole.
 *
 * Push sends what this process changed in the local index since its last
 * pull: the difference between the index (in the caller's write
 * transaction, before it commits) and the catalog as last seen, so that
 * what other hosts committed meanwhile is left alone. New packs get their
 * .idx object first; then one atomic omap update publishes everything.
 */
#include "store/internal.h"
#include "store/refs.h"
#include "store/remote.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX	   96
#define IDX_MAGIC  "SVIDX1\0\0"
#define IDX_HEADER 16
#define IDX_ENTRY  56

struct kv {
	char key[KEY_MAX];
	uint64_t hash;
	uint8_t *value; /* owned; NULL in a baseline */
	size_t len;
};

struct kv_list {
	struct kv *items;
	size_t count, cap;
	uint64_t next_pack;
};

static uint64_t fnv64(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static void le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t le64_get(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void le32_put(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t le32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void remote_kv_free(struct kv_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i].value);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

static int kv_add(struct kv_list *l, const char *key, const void *value, size_t len, bool keep)
{
	struct kv *kv;

	if (strlen(key) >= KEY_MAX)
		return 0; /* not one of ours */
	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *items = realloc(l->items, cap * sizeof(*l->items));

		if (!items)
			return -ENOMEM;
		l->items = items;
		l->cap = cap;
	}
	kv = &l->items[l->count];
	memset(kv, 0, sizeof(*kv));
	snprintf(kv->key, sizeof(kv->key), "%s", key);
	kv->hash = fnv64(value, len);
	kv->len = len;
	if (keep) {
		kv->value = malloc(len ? len : 1);
		if (!kv->value)
			return -ENOMEM;
		memcpy(kv->value, value, len);
	}
	l->count++;
	return 0;
}

static int kv_compare(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->key, ((const struct kv *)b)->key);
}

static void kv_sort(struct kv_list *l)
{
	if (l->count)
		qsort(l->items, l->count, sizeof(*l->items), kv_compare);
}

static const struct kv *kv_find(const struct kv_list *l, const char *key)
{
	struct kv k;

	if (!l->count)
		return NULL;
	snprintf(k.key, sizeof(k.key), "%s", key);
	return bsearch(&k, l->items, l->count, sizeof(*l->items), kv_compare);
}

/* Keeps a copy of l's keys and hashes, without values, as the last catalog seen. */
static int kv_baseline(struct store *s, const struct kv_list *l)
{
	struct kv_list *base = calloc(1, sizeof(*base));

	if (!base)
		return -ENOMEM;
	base->items = calloc(l->count ? l->count : 1, sizeof(*l->items));
	if (!base->items) {
		free(base);
		return -ENOMEM;
	}
	for (size_t i = 0; i < l->count; i++) {
		base->items[i] = l->items[i];
		base->items[i].value = NULL;
	}
	base->count = base->cap = l->count;
	base->next_pack = l->next_pack;
	remote_kv_free(s->remote_base);
	free(s->remote_base);
	s->remote_base = base;
	return 0;
}

/* ---- what the catalog holds ---- */

static int catalog_entry(void *opaque, const char *key, const void *value, size_t len)
{
	struct kv_list *l = opaque;

	if (!strcmp(key, "next_pack")) {
		if (len == 8)
			l->next_pack = le64_get(value);
		return 0;
	}
	if (strncmp(key, "pack.", 5) && strncmp(key, "snap.", 5) && strncmp(key, "ws.", 3))
		return 0;
	return kv_add(l, key, value, len, true);
}

static int catalog_load(struct store *s, struct kv_list *l)
{
	int ret = remote_catalog_read(s->remote, catalog_entry, l);

	if (ret)
		remote_kv_free(l);
	else
		kv_sort(l);
	return ret;
}

/* ---- what the local index holds ---- */

struct local_walk {
	struct kv_list *list;
	const char *prefix;
};

static int local_record(void *opaque, const char *name, const void *data, size_t len)
{
	struct local_walk *w = opaque;
	char key[KEY_MAX];

	snprintf(key, sizeof(key), "%s%s", w->prefix, name);
	return kv_add(w->list, key, data, len, true);
}

static int local_pack(void *opaque, uint64_t id, const struct pack_entry *e)
{
	struct local_walk *w = opaque;
	uint8_t v[16] = { 0 };
	char key[KEY_MAX];

	snprintf(key, sizeof(key), "pack.%016llx", (unsigned long long)id);
	if (e) {
		le64_put(v, e->size);
		le64_put(v + 8, e->chunks);
	}
	return kv_add(w->list, key, v, sizeof(v), true);
}

static int local_load(struct store *s, MDB_txn *txn, struct kv_list *l)
{
	struct local_walk w = { .list = l, .prefix = "snap." };
	int ret = index_record_foreach(&s->index, txn, s->index.snapshots, local_record, &w);

	if (!ret) {
		w.prefix = "ws.";
		ret = index_record_foreach(&s->index, txn, s->index.worksets, local_record, &w);
	}
	if (!ret)
		ret = index_pack_foreach(&s->index, txn, local_pack, &w);
	if (!ret)
		ret = index_next_pack_get(&s->index, txn, &l->next_pack);
	if (ret)
		remote_kv_free(l);
	else
		kv_sort(l);
	return ret;
}

static int pack_key_id(const char *key, uint64_t *id)
{
	char *end;

	if (strncmp(key, "pack.", 5))
		return -EINVAL;
	*id = strtoull(key + 5, &end, 16);
	return *end ? -EINVAL : 0;
}

/* ---- pull ---- */

/* Inserts the chunks of pack id from its .idx object; a newer location wins. */
static int pull_pack(struct store *s, MDB_txn *txn, const struct kv *kv)
{
	char pack[PACK_NAME_SIZE], name[PACK_NAME_SIZE + 8];
	struct pack_entry pe = { 0 };
	uint8_t *idx = NULL;
	uint64_t id, count;
	size_t len;
	int ret = pack_key_id(kv->key, &id);

	if (ret || kv->len != 16)
		return 0;
	pack_name(id, pack);
	snprintf(name, sizeof(name), "%s.idx", pack);
	ret = remote_object_get(s->remote, name, &idx, &len);
	if (ret) {
		log_warn("store rados: pack %s has no readable chunk list (%s); skipped", pack,
			 strerror(-ret));
		return index_pack_put(&s->index, txn, id, &pe);
	}
	count = len >= IDX_HEADER ? le64_get(idx + 8) : 0;
	if (len < IDX_HEADER || memcmp(idx, IDX_MAGIC, 8) ||
	    count != (len - IDX_HEADER) / IDX_ENTRY || (len - IDX_HEADER) % IDX_ENTRY) {
		log_warn("store rados: the chunk list of pack %s is malformed; skipped", pack);
		free(idx);
		return index_pack_put(&s->index, txn, id, &pe);
	}
	for (uint64_t i = 0; i < count && !ret; i++) {
		const uint8_t *p = idx + IDX_HEADER + i * IDX_ENTRY;
		struct chunk_entry e = { .pack = id }, old;

		e.offset = le64_get(p + 32);
		e.stored_len = le32_get(p + 40);
		e.raw_len = le32_get(p + 44);
		e.codec = p[48];
		if (index_chunk_get(&s->index, txn, p, &old) == 0)
			e.refs = old.refs;
		ret = index_chunk_put(&s->index, txn, p, &e);
	}
	free(idx);
	pe.size = le64_get(kv->value);
	pe.chunks = le64_get(kv->value + 8);
	return ret ? ret : index_pack_put(&s->index, txn, id, &pe);
}

/* Adds (delta +1) or drops (-1) the references of snapshot name, as recorded in txn. */
static int pull_snapshot_refs(struct store *s, MDB_txn *txn, const char *name, int delta)
{
	struct pack_cache cache;
	struct snap_record r;
	struct manifest m;
	struct dset set;
	int ret;

	pack_cache_init(&cache, s->backend);
	dset_init(&set);
	ret = store_snapshot_load(s, txn, &cache, name, &r, &m);
	if (!ret) {
		ret = store_snapshot_refs(&r, &m, &set);
		if (!ret)
			ret = delta > 0 ? refs_acquire(&s->index, txn, &set)
					: refs_release(&s->index, txn, &set);
		manifest_free(&m);
		snap_record_free(&r);
	}
	dset_free(&set);
	pack_cache_free(&cache);
	if (ret)
		log_warn("store rados: snapshot '%s' cannot be read to count its references", name);
	return ret == -ENOMEM ? ret : 0;
}

/* Empties the local index, to be filled again from the catalog. */
static int pull_reset(struct store *s, MDB_txn *txn)
{
	int rc = mdb_drop(txn, s->index.chunks, 0);

	if (!rc)
		rc = mdb_drop(txn, s->index.packs, 0);
	if (!rc)
		rc = mdb_drop(txn, s->index.snapshots, 0);
	if (!rc)
		rc = mdb_drop(txn, s->index.worksets, 0);
	return rc ? index_error(&s->index, rc, "empty the cached index") : 0;
}

static int pull_apply(struct store *s, MDB_txn *txn, const struct kv_list *cat,
		      struct kv_list *local, bool *changed)
{
	bool rebuild = false;
	int ret = 0;

	for (size_t i = 0; i < local->count && !rebuild; i++)
		rebuild = !strncmp(local->items[i].key, "pack.", 5) &&
			  !kv_find(cat, local->items[i].key);
	if (rebuild) {
		log_info("store rados:%s: packs were replaced by a gc; rebuilding the cached index",
			 s->dir);
		ret = pull_reset(s, txn);
		remote_kv_free(local);
		*changed = true;
	}
	/* packs first: the snapshots' manifests are read through them */
	for (size_t i = 0; i < cat->count && !ret; i++) {
		const struct kv *c = &cat->items[i];

		if (!strncmp(c->key, "pack.", 5) && !kv_find(local, c->key)) {
			ret = pull_pack(s, txn, c);
			*changed = true;
		}
	}
	for (size_t i = 0; i < local->count && !ret; i++) {
		const struct kv *l = &local->items[i];

		if (kv_find(cat, l->key))
			continue;
		if (!strncmp(l->key, "snap.", 5)) {
			ret = pull_snapshot_refs(s, txn, l->key + 5, -1);
			if (!ret)
				ret = index_record_delete(&s->index, txn, s->index.snapshots,
							  l->key + 5);
		} else if (!strncmp(l->key, "ws.", 3)) {
			ret = index_record_delete(&s->index, txn, s->index.worksets, l->key + 3);
		}
		*changed = true;
	}
	for (size_t i = 0; i < cat->count && !ret; i++) {
		const struct kv *c = &cat->items[i], *l = kv_find(local, c->key);

		if (l && l->hash == c->hash && l->len == c->len)
			continue;
		if (!strncmp(c->key, "snap.", 5) && !store_name_check(c->key + 5)) {
			if (l)
				ret = pull_snapshot_refs(s, txn, c->key + 5, -1);
			if (!ret)
				ret = index_record_put(&s->index, txn, s->index.snapshots,
						       c->key + 5, c->value, c->len);
			if (!ret)
				ret = pull_snapshot_refs(s, txn, c->key + 5, +1);
			*changed = true;
		} else if (!strncmp(c->key, "ws.", 3) && !store_name_check(c->key + 3)) {
			ret = index_record_put(&s->index, txn, s->index.worksets, c->key + 3,
					       c->value, c->len);
			*changed = true;
		}
	}
	if (!ret && cat->next_pack > local->next_pack) {
		ret = index_next_pack_put(&s->index, txn, cat->next_pack);
		*changed = true;
	}
	return ret;
}

int remote_pull(struct store *s)
{
	struct kv_list cat = { 0 }, local = { 0 };
	bool changed = false;
	MDB_txn *txn;
	int ret;

	/* the index's write transaction first, then the lock, in that order as in push */
	ret = index_txn_begin(&s->index, true, &txn);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->remote_sync);
	ret = catalog_load(s, &cat);
	if (!ret)
		ret = local_load(s, txn, &local);
	if (!ret)
		ret = pull_apply(s, txn, &cat, &local, &changed);
	if (!ret && changed)
		ret = index_txn_commit(&s->index, txn);
	else
		mdb_txn_abort(txn);
	if (!ret)
		ret = kv_baseline(s, &cat);
	if (ret)
		log_error("store rados: cannot bring the cached index %s up to date: %s", s->dir,
			  strerror(-ret));
	remote_kv_free(&cat);
	remote_kv_free(&local);
	pthread_mutex_unlock(&s->remote_sync);
	return ret;
}

/* ---- push ---- */

struct idx_build {
	const uint64_t *ids;
	size_t n;
	uint8_t **bufs;
	size_t *lens, *caps;
};

static int idx_collect(void *opaque, const uint8_t *digest, const struct chunk_entry *e)
{
	struct idx_build *b = opaque;
	uint8_t *p;

	if (!e)
		return 0;
	for (size_t i = 0; i < b->n; i++) {
		if (b->ids[i] != e->pack)
			continue;
		if (b->lens[i] + IDX_ENTRY > b->caps[i]) {
			size_t cap = b->caps[i] * 2 + IDX_HEADER + 64 * IDX_ENTRY;
			void *buf = realloc(b->bufs[i], cap);

			if (!buf)
				return -ENOMEM;
			b->bufs[i] = buf;
			b->caps[i] = cap;
		}
		p = b->bufs[i] + b->lens[i];
		memset(p, 0, IDX_ENTRY);
		memcpy(p, digest, STORE_DIGEST_SIZE);
		le64_put(p + 32, e->offset);
		le32_put(p + 40, e->stored_len);
		le32_put(p + 44, e->raw_len);
		p[48] = e->codec;
		b->lens[i] += IDX_ENTRY;
		break;
	}
	return 0;
}

/* Writes the .idx objects of new packs: what the index points at in each. */
static int push_idx(struct store *s, MDB_txn *txn, const uint64_t *ids, size_t n)
{
	struct idx_build b = { .ids = ids, .n = n };
	int ret = -ENOMEM;

	b.bufs = calloc(n, sizeof(*b.bufs));
	b.lens = calloc(n, sizeof(*b.lens));
	b.caps = calloc(n, sizeof(*b.caps));
	if (!b.bufs || !b.lens || !b.caps)
		goto out;
	for (size_t i = 0; i < n; i++) {
		b.caps[i] = IDX_HEADER + 1024 * IDX_ENTRY;
		b.bufs[i] = malloc(b.caps[i]);
		if (!b.bufs[i])
			goto out;
		b.lens[i] = IDX_HEADER;
	}
	ret = index_chunk_foreach(&s->index, txn, idx_collect, &b);
	for (size_t i = 0; i < n && !ret; i++) {
		char pack[PACK_NAME_SIZE], name[PACK_NAME_SIZE + 8];

		memcpy(b.bufs[i], IDX_MAGIC, 8);
		le64_put(b.bufs[i] + 8, (b.lens[i] - IDX_HEADER) / IDX_ENTRY);
		pack_name(ids[i], pack);
		snprintf(name, sizeof(name), "%s.idx", pack);
		ret = remote_object_put(s->remote, name, b.bufs[i], b.lens[i]);
	}
out:
	for (size_t i = 0; b.bufs && i < n; i++)
		free(b.bufs[i]);
	free(b.bufs);
	free(b.lens);
	free(b.caps);
	return ret;
}

int remote_push(struct store *s, MDB_txn *txn)
{
	struct kv_list local = { 0 }, empty = { 0 };
	const struct kv_list *base = s->remote_base ? s->remote_base : &empty;
	const char **set_keys = NULL, **rm_keys = NULL, *absent[8];
	size_t nabsent = 0;
	const void **values = NULL;
	size_t *lens = NULL, nset = 0, nrm = 0, nids = 0;
	uint64_t *ids = NULL;
	uint8_t next[8];
	int ret;

	pthread_mutex_lock(&s->remote_sync);
	ret = local_load(s, txn, &local);
	if (ret) {
		pthread_mutex_unlock(&s->remote_sync);
		return ret;
	}
	set_keys = calloc(local.count + 1, sizeof(*set_keys));
	values = calloc(local.count + 1, sizeof(*values));
	lens = calloc(local.count + 1, sizeof(*lens));
	ids = calloc(local.count + 1, sizeof(*ids));
	rm_keys = calloc(base->count + 1, sizeof(*rm_keys));
	ret = -ENOMEM;
	if (!set_keys || !values || !lens || !ids || !rm_keys)
		goto out;
	for (size_t i = 0; i < local.count; i++) {
		const struct kv *l = &local.items[i], *b = kv_find(base, l->key);

		if (b && b->hash == l->hash && b->len == l->len)
			continue;
		if (!b && pack_key_id(l->key, &ids[nids]) == 0)
			nids++;
		/* a new snapshot name must still be free in the pool when published */
		if (!b && !strncmp(l->key, "snap.", 5) && nabsent < ARRAY_SIZE(absent))
			absent[nabsent++] = l->key;
		set_keys[nset] = l->key;
		values[nset] = l->value;
		lens[nset++] = l->len;
	}
	for (size_t i = 0; i < base->count; i++) {
		if (!kv_find(&local, base->items[i].key))
			rm_keys[nrm++] = base->items[i].key;
	}
	if (local.next_pack > base->next_pack) {
		le64_put(next, local.next_pack);
		set_keys[nset] = "next_pack";
		values[nset] = next;
		lens[nset++] = sizeof(next);
	}
	ret = nids ? push_idx(s, txn, ids, nids) : 0;
	if (!ret && (nset || nrm)) {
		struct remote_update u = { .set_keys = set_keys,
					   .values = values,
					   .value_lens = lens,
					   .set_count = nset,
					   .rm_keys = rm_keys,
					   .rm_count = nrm,
					   .absent_keys = absent,
					   .absent_count = nabsent };

		ret = remote_catalog_update(s->remote, &u);
	}
	if (!ret)
		ret = kv_baseline(s, &local);
out:
	free(set_keys);
	free(values);
	free(lens);
	free(ids);
	free(rm_keys);
	remote_kv_free(&local);
	pthread_mutex_unlock(&s->remote_sync);
	return ret;
}

void remote_state_free(struct store *s)
{
	remote_kv_free(s->remote_base);
	free(s->remote_base);
	s->remote_base = NULL;
}
