/*
 * The LMDB environment. Readers use MDB_NOTLS so that a transaction is not
 * tied to a thread; writes happen only under the store's writer lock, so
 * LMDB's own writer mutex never makes anyone wait long.
 */
#include "store/index.h"
#include "store/bytes.h"
#include "store/digest.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define INDEX_MAP_SIZE	  (64ULL << 30) /* address space only; the file grows as needed */
#define INDEX_MAX_READERS 1024
#define INDEX_FORMAT	  "snapvm-store 1"
#define CHUNK_VALUE_SIZE  40
#define PACK_VALUE_SIZE	  20

int index_error(const struct index *index, int rc, const char *what)
{
	int err;

	switch (rc) {
	case MDB_NOTFOUND:
		err = -ENOENT;
		break;
	case MDB_KEYEXIST:
		err = -EEXIST;
		break;
	case MDB_MAP_FULL:
		err = -ENOSPC;
		break;
	case MDB_READERS_FULL:
	case MDB_TXN_FULL:
		err = -EAGAIN;
		break;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_INCOMPATIBLE:
	case MDB_BAD_VALSIZE:
		err = -EUCLEAN;
		break;
	default:
		err = rc > 0 ? -rc : -EIO;
	}
	log_error("store index %s: %s: %s%s", index->path, what, mdb_strerror(rc),
		  err == -EUCLEAN ? " (the index is damaged)" : "");
	return err;
}

/* LMDB reads pages through mmap: a file cut short would fault, so check its length first. */
static int index_size_check(struct index *index)
{
	char file[PATH_MAX + 16];
	MDB_envinfo info;
	MDB_stat ms;
	struct stat st;

	snprintf(file, sizeof(file), "%s/data.mdb", index->path);
	if (mdb_env_info(index->env, &info) || mdb_env_stat(index->env, &ms) || stat(file, &st) < 0)
		return -EIO;
	if ((uint64_t)st.st_size < ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize) {
		log_error("store index %s: data.mdb is %lld bytes, shorter than the %llu its "
			  "header says (the index is damaged)",
			  index->path, (long long)st.st_size,
			  ((unsigned long long)info.me_last_pgno + 1) * ms.ms_psize);
		return -EUCLEAN;
	}
	return 0;
}

static int index_dbis_open(struct index *index, MDB_txn *txn, unsigned flags)
{
	struct {
		const char *name;
		MDB_dbi *dbi;
	} dbs[] = {
		{ "meta", &index->meta },	  { "chunks", &index->chunks },
		{ "packs", &index->packs },	  { "snapshots", &index->snapshots },
		{ "worksets", &index->worksets },
	};

	for (size_t i = 0; i < ARRAY_SIZE(dbs); i++) {
		int rc = mdb_dbi_open(txn, dbs[i].name, flags, dbs[i].dbi);

		if (rc)
			return rc;
	}
	return 0;
}

/* Makes the databases of a new index and records its format, in one commit. */
static int index_create(struct index *index)
{
	MDB_val key = { 6, "format" }, value = { strlen(INDEX_FORMAT), INDEX_FORMAT };
	MDB_txn *txn;
	int rc = mdb_txn_begin(index->env, NULL, 0, &txn);

	if (rc)
		return index_error(index, rc, "cannot begin the first transaction");
	rc = index_dbis_open(index, txn, MDB_CREATE);
	if (!rc)
		rc = mdb_put(txn, index->meta, &key, &value, 0);
	if (rc) {
		mdb_txn_abort(txn);
		return index_error(index, rc, "cannot create the databases");
	}
	rc = index_next_pack_put(index, txn, 1);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return index_txn_commit(index, txn);
}

/* Opens the databases of an existing index and checks its format; 1 if there is none yet. */
static int index_attach(struct index *index)
{
	MDB_val key = { 6, "format" }, value;
	MDB_txn *txn;
	int rc = mdb_txn_begin(index->env, NULL, MDB_RDONLY, &txn);

	if (rc)
		return index_error(index, rc, "cannot begin a transaction");
	rc = index_dbis_open(index, txn, 0);
	if (rc == MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return 1;
	}
	if (!rc)
		rc = mdb_get(txn, index->meta, &key, &value);
	if (rc) {
		mdb_txn_abort(txn);
		return index_error(index, rc, "cannot open the databases");
	}
	if (value.mv_size != strlen(INDEX_FORMAT) ||
	    memcmp(value.mv_data, INDEX_FORMAT, value.mv_size)) {
		log_error("store index %s: unknown format '%.*s' (this snapvm reads '%s')",
			  index->path, (int)MIN(value.mv_size, 64), (const char *)value.mv_data,
			  INDEX_FORMAT);
		mdb_txn_abort(txn);
		return -EPROTO;
	}
	rc = mdb_txn_commit(txn); /* keeps the database handles for the environment */
	return rc ? index_error(index, rc, "cannot open the databases") : 0;
}

static int index_env_open(struct index *index, bool write)
{
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (write ? 0 : MDB_RDONLY);
	int rc = mdb_env_create(&index->env);

	if (rc)
		return index_error(index, rc, "cannot create an environment");
	mdb_env_set_maxdbs(index->env, 8);
	mdb_env_set_mapsize(index->env, INDEX_MAP_SIZE);
	mdb_env_set_maxreaders(index->env, INDEX_MAX_READERS);
	rc = mdb_env_open(index->env, index->path, flags, 0644);
	if (rc) {
		int err = rc == ENOENT ? -ENOENT : index_error(index, rc, "cannot open");

		if (err == -ENOENT)
			log_error("store: there is no store index in %s", index->path);
		mdb_env_close(index->env);
		index->env = NULL;
		return err;
	}
	return 0;
}

int index_open(struct index *index, const char *dir, bool write, bool *created)
{
	int dead = 0, ret;

	memset(index, 0, sizeof(*index));
	*created = false;
	if (path_format(index->path, sizeof(index->path), "%s/index", dir))
		return -ENAMETOOLONG;
	if (write && mkdir(index->path, 0755) < 0 && errno != EEXIST) {
		ret = -errno;
		log_error("store: cannot create %s: %s", index->path, strerror(errno));
		return ret;
	}
	ret = index_env_open(index, write);
	if (ret)
		return ret;
	ret = index_size_check(index);
	if (!ret)
		mdb_reader_check(index->env, &dead); /* slots of readers that were killed */
	if (!ret)
		ret = index_attach(index);
	if (ret == 1 && !write) {
		log_error("store index %s is empty", index->path);
		ret = -ENOENT;
	} else if (ret == 1) {
		ret = index_create(index);
		*created = ret == 0;
	}
	if (ret)
		index_close(index);
	return ret;
}

void index_close(struct index *index)
{
	if (index->env)
		mdb_env_close(index->env);
	index->env = NULL;
}

int index_txn_begin(struct index *index, bool write, MDB_txn **txn)
{
	int rc;

	if (!index->env) { /* closed by store_seal(): the process is jailed */
		log_error("store index %s: closed (sealed for a jail)", index->path);
		return -EPERM;
	}
	rc = mdb_txn_begin(index->env, NULL, write ? 0 : MDB_RDONLY, txn);

	return rc ? index_error(index, rc, "cannot begin a transaction") : 0;
}

int index_txn_commit(struct index *index, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);

	return rc ? index_error(index, rc, "cannot commit") : 0;
}

static void chunk_value_encode(const struct chunk_entry *e, uint8_t *v)
{
	put_u64(v, e->pack);
	put_u64(v + 8, e->offset);
	put_u32(v + 16, e->stored_len);
	put_u32(v + 20, e->raw_len);
	v[24] = e->codec;
	memset(v + 25, 0, 3);
	put_u64(v + 28, e->refs);
	put_u32(v + 36, checksum32(v, 36));
}

static int chunk_value_decode(const MDB_val *value, struct chunk_entry *e)
{
	const uint8_t *v = value->mv_data;

	if (value->mv_size != CHUNK_VALUE_SIZE || get_u32(v + 36) != checksum32(v, 36))
		return -EUCLEAN;
	e->pack = get_u64(v);
	e->offset = get_u64(v + 8);
	e->stored_len = get_u32(v + 16);
	e->raw_len = get_u32(v + 20);
	e->codec = v[24];
	e->refs = get_u64(v + 28);
	if (!e->pack || e->raw_len == 0 || e->raw_len > STORE_PAGE_SIZE || e->stored_len == 0 ||
	    e->stored_len > STORE_PAGE_SIZE || e->codec > 1 || e->offset > (1ULL << 48))
		return -EUCLEAN;
	return 0;
}

static void digest_log(const struct index *index, const uint8_t *digest, const char *what)
{
	char hex[2 * STORE_DIGEST_SIZE + 1];

	store_digest_hex(digest, hex);
	log_error("store index %s: the record of chunk %s %s (the index is damaged)", index->path,
		  hex, what);
}

/* What a lookup of chunk digest found (rc, value): its decoded entry, -ENOENT, or the failure. */
static int chunk_lookup_end(struct index *index, int rc, const MDB_val *value,
			    const uint8_t *digest, struct chunk_entry *entry)
{
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc)
		return index_error(index, rc, "cannot look up a chunk");
	if (chunk_value_decode(value, entry)) {
		digest_log(index, digest, "is malformed");
		return -EUCLEAN;
	}
	return 0;
}

int index_chunk_get(struct index *index, MDB_txn *txn, const uint8_t digest[STORE_DIGEST_SIZE],
		    struct chunk_entry *entry)
{
	MDB_val key = { STORE_DIGEST_SIZE, (void *)digest }, value;
	int rc = mdb_get(txn, index->chunks, &key, &value);

	return chunk_lookup_end(index, rc, &value, digest, entry);
}

int index_chunk_put(struct index *index, MDB_txn *txn, const uint8_t digest[STORE_DIGEST_SIZE],
		    const struct chunk_entry *entry)
{
	uint8_t v[CHUNK_VALUE_SIZE];
	MDB_val key = { STORE_DIGEST_SIZE, (void *)digest }, value = { sizeof(v), v };
	int rc;

	chunk_value_encode(entry, v);
	rc = mdb_put(txn, index->chunks, &key, &value, 0);
	return rc ? index_error(index, rc, "cannot store a chunk record") : 0;
}

int index_chunk_delete(struct index *index, MDB_txn *txn, const uint8_t digest[STORE_DIGEST_SIZE])
{
	MDB_val key = { STORE_DIGEST_SIZE, (void *)digest };
	int rc = mdb_del(txn, index->chunks, &key, NULL);

	return rc ? index_error(index, rc, "cannot delete a chunk record") : 0;
}

int index_chunk_cursor_open(struct index *index, MDB_txn *txn, MDB_cursor **cursor)
{
	int rc = mdb_cursor_open(txn, index->chunks, cursor);

	return rc ? index_error(index, rc, "cannot open a cursor") : 0;
}

int index_chunk_seek(struct index *index, MDB_cursor *cursor,
		     const uint8_t digest[STORE_DIGEST_SIZE], struct chunk_entry *entry)
{
	MDB_val key = { STORE_DIGEST_SIZE, (void *)digest }, value;
	int rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_KEY);

	return chunk_lookup_end(index, rc, &value, digest, entry);
}

int index_chunk_replace(struct index *index, MDB_cursor *cursor,
			const uint8_t digest[STORE_DIGEST_SIZE], const struct chunk_entry *entry)
{
	uint8_t v[CHUNK_VALUE_SIZE];
	MDB_val key = { STORE_DIGEST_SIZE, (void *)digest }, value = { sizeof(v), v };
	int rc;

	chunk_value_encode(entry, v);
	rc = mdb_cursor_put(cursor, &key, &value, MDB_CURRENT);
	return rc ? index_error(index, rc, "cannot store a chunk record") : 0;
}

/* Walks dbi with a cursor, calling fn(opaque, key, value) until it returns non-zero. */
static int index_walk(struct index *index, MDB_txn *txn, MDB_dbi dbi,
		      int (*fn)(void *opaque, const MDB_val *key, const MDB_val *value),
		      void *opaque)
{
	MDB_cursor *cursor;
	MDB_val key, value;
	int rc = mdb_cursor_open(txn, dbi, &cursor), ret = 0;

	if (rc)
		return index_error(index, rc, "cannot open a cursor");
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); !rc && !ret;
	     rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT))
		ret = fn(opaque, &key, &value);
	mdb_cursor_close(cursor);
	if (!ret && rc != MDB_NOTFOUND)
		ret = index_error(index, rc, "cannot walk a database");
	return ret;
}

struct chunk_walk {
	int (*fn)(void *opaque, const uint8_t *digest, const struct chunk_entry *entry);
	void *opaque;
};

static int chunk_walk_one(void *opaque, const MDB_val *key, const MDB_val *value)
{
	struct chunk_walk *w = opaque;
	struct chunk_entry e;
	uint8_t digest[STORE_DIGEST_SIZE] = { 0 };
	bool ok = key->mv_size == STORE_DIGEST_SIZE && !chunk_value_decode(value, &e);

	memcpy(digest, key->mv_data, MIN(key->mv_size, (size_t)STORE_DIGEST_SIZE));
	return w->fn(w->opaque, digest, ok ? &e : NULL);
}

int index_chunk_foreach(struct index *index, MDB_txn *txn,
			int (*fn)(void *opaque, const uint8_t *digest,
				  const struct chunk_entry *entry),
			void *opaque)
{
	struct chunk_walk w = { fn, opaque };

	return index_walk(index, txn, index->chunks, chunk_walk_one, &w);
}

static void pack_key(uint64_t id, uint8_t key[8])
{
	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(id >> (56 - 8 * i));
}

static int pack_value_decode(const MDB_val *value, struct pack_entry *e)
{
	const uint8_t *v = value->mv_data;

	if (value->mv_size != PACK_VALUE_SIZE || get_u32(v + 16) != checksum32(v, 16))
		return -EUCLEAN;
	e->size = get_u64(v);
	e->chunks = get_u64(v + 8);
	return 0;
}

int index_pack_put(struct index *index, MDB_txn *txn, uint64_t id, const struct pack_entry *entry)
{
	uint8_t k[8], v[PACK_VALUE_SIZE];
	MDB_val key = { 8, k }, value = { sizeof(v), v };
	int rc;

	pack_key(id, k);
	put_u64(v, entry->size);
	put_u64(v + 8, entry->chunks);
	put_u32(v + 16, checksum32(v, 16));
	rc = mdb_put(txn, index->packs, &key, &value, 0);
	return rc ? index_error(index, rc, "cannot store a pack record") : 0;
}

int index_pack_delete(struct index *index, MDB_txn *txn, uint64_t id)
{
	uint8_t k[8];
	MDB_val key = { 8, k };
	int rc;

	pack_key(id, k);
	rc = mdb_del(txn, index->packs, &key, NULL);
	return rc ? index_error(index, rc, "cannot delete a pack record") : 0;
}

struct pack_walk {
	int (*fn)(void *opaque, uint64_t id, const struct pack_entry *entry);
	void *opaque;
};

static int pack_walk_one(void *opaque, const MDB_val *key, const MDB_val *value)
{
	struct pack_walk *w = opaque;
	const uint8_t *k = key->mv_data;
	struct pack_entry e;
	uint64_t id = 0;

	if (key->mv_size != 8)
		return w->fn(w->opaque, 0, NULL);
	for (int i = 0; i < 8; i++)
		id = id << 8 | k[i];
	return w->fn(w->opaque, id, pack_value_decode(value, &e) ? NULL : &e);
}

int index_pack_foreach(struct index *index, MDB_txn *txn,
		       int (*fn)(void *opaque, uint64_t id, const struct pack_entry *entry),
		       void *opaque)
{
	struct pack_walk w = { fn, opaque };

	return index_walk(index, txn, index->packs, pack_walk_one, &w);
}

int index_next_pack_get(struct index *index, MDB_txn *txn, uint64_t *id)
{
	MDB_val key = { 9, "next_pack" }, value;
	int rc = mdb_get(txn, index->meta, &key, &value);

	if (rc)
		return index_error(index, rc, "cannot read the next pack id");
	if (value.mv_size != 12 ||
	    get_u32((const uint8_t *)value.mv_data + 8) != checksum32(value.mv_data, 8)) {
		log_error("store index %s: the next pack id is malformed (the index is damaged)",
			  index->path);
		return -EUCLEAN;
	}
	*id = get_u64(value.mv_data);
	return 0;
}

int index_next_pack_put(struct index *index, MDB_txn *txn, uint64_t id)
{
	uint8_t v[12];
	MDB_val key = { 9, "next_pack" }, value = { sizeof(v), v };
	int rc;

	put_u64(v, id);
	put_u32(v + 8, checksum32(v, 8));
	rc = mdb_put(txn, index->meta, &key, &value, 0);
	return rc ? index_error(index, rc, "cannot store the next pack id") : 0;
}

int index_record_get(struct index *index, MDB_txn *txn, MDB_dbi dbi, const char *name,
		     MDB_val *value)
{
	MDB_val key = { strlen(name), (void *)name };
	int rc = mdb_get(txn, dbi, &key, value);

	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	return rc ? index_error(index, rc, "cannot read a record") : 0;
}

int index_record_put(struct index *index, MDB_txn *txn, MDB_dbi dbi, const char *name,
		     const void *data, size_t len)
{
	MDB_val key = { strlen(name), (void *)name }, value = { len, (void *)data };
	int rc = mdb_put(txn, dbi, &key, &value, 0);

	return rc ? index_error(index, rc, "cannot store a record") : 0;
}

int index_record_delete(struct index *index, MDB_txn *txn, MDB_dbi dbi, const char *name)
{
	MDB_val key = { strlen(name), (void *)name };
	int rc = mdb_del(txn, dbi, &key, NULL);

	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	return rc ? index_error(index, rc, "cannot delete a record") : 0;
}

struct record_walk {
	int (*fn)(void *opaque, const char *name, const void *data, size_t len);
	void *opaque;
};

static int record_walk_one(void *opaque, const MDB_val *key, const MDB_val *value)
{
	struct record_walk *w = opaque;
	char name[STORE_NAME_MAX + 1];

	/* A key that is no valid name is passed as "" for the caller to report. */
	if (key->mv_size > STORE_NAME_MAX)
		name[0] = '\0';
	else
		snprintf(name, sizeof(name), "%.*s", (int)key->mv_size, (const char *)key->mv_data);
	if (strlen(name) != key->mv_size || store_name_check(name))
		name[0] = '\0';
	return w->fn(w->opaque, name, value->mv_data, value->mv_size);
}

int index_record_foreach(struct index *index, MDB_txn *txn, MDB_dbi dbi,
			 int (*fn)(void *opaque, const char *name, const void *data, size_t len),
			 void *opaque)
{
	struct record_walk w = { fn, opaque };

	return index_walk(index, txn, dbi, record_walk_one, &w);
}
