/*
 * The LMDB index (private to store/): named databases
 *   meta       "format" -> format version, "next_pack" -> first unused pack id
 *   chunks     digest -> pack, offset, lengths, codec, reference count
 *   packs      pack id (big-endian) -> size, chunk records
 *   snapshots  name -> snapshot record (manifest.h)
 *   worksets   name -> ordered page list (workset.c)
 * Every value carries a CRC-32C, and is checked before use: the index file is
 * untrusted input like the packs.
 */
#ifndef SNAPVM_STORE_INDEX_H
#define SNAPVM_STORE_INDEX_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "store/store.h"

struct chunk_entry {
	uint64_t pack;
	uint64_t offset; /* of the chunk's record in the pack */
	uint32_t stored_len;
	uint32_t raw_len;
	uint8_t codec;
	uint64_t refs; /* snapshots that reference the chunk; 0 = garbage until gc */
};

struct pack_entry {
	uint64_t size;	 /* bytes, header included */
	uint64_t chunks; /* records written into it */
};

struct index {
	MDB_env *env;
	MDB_dbi meta, chunks, packs, snapshots, worksets;
	char path[PATH_MAX]; /* the environment's directory */
};

/* Opens (creating it when write and missing) the index in dir; *created says if it was new. */
int index_open(struct index *index, const char *dir, bool write, bool *created);
void index_close(struct index *index);
/* Begins a read-only or a write transaction. */
int index_txn_begin(struct index *index, bool write, MDB_txn **txn);
/* Commits a write transaction durably. */
int index_txn_commit(struct index *index, MDB_txn *txn);
/* Logs an LMDB failure naming what was being done; returns the matching -errno. */
int index_error(const struct index *index, int rc, const char *what);

/* 0, -ENOENT (quietly) or -EUCLEAN. */
int index_chunk_get(struct index *index, MDB_txn *txn, const uint8_t digest[STORE_DIGEST_SIZE],
		    struct chunk_entry *entry);
int index_chunk_put(struct index *index, MDB_txn *txn, const uint8_t digest[STORE_DIGEST_SIZE],
		    const struct chunk_entry *entry);
int index_chunk_delete(struct index *index, MDB_txn *txn, const uint8_t digest[STORE_DIGEST_SIZE]);
/* A cursor over the chunks, for updates made in digest order. */
int index_chunk_cursor_open(struct index *index, MDB_txn *txn, MDB_cursor **cursor);
/* Moves the cursor to digest: 0 (with *entry), -ENOENT (quietly) or -EUCLEAN. */
int index_chunk_seek(struct index *index, MDB_cursor *cursor,
		     const uint8_t digest[STORE_DIGEST_SIZE], struct chunk_entry *entry);
/* Replaces the record the cursor is on (after a successful seek to digest). */
int index_chunk_replace(struct index *index, MDB_cursor *cursor,
			const uint8_t digest[STORE_DIGEST_SIZE], const struct chunk_entry *entry);
/* Calls fn for each chunk in digest order (entry NULL for a damaged record) until fn returns
 * non-zero. */
int index_chunk_foreach(struct index *index, MDB_txn *txn,
			int (*fn)(void *opaque, const uint8_t *digest,
				  const struct chunk_entry *entry),
			void *opaque);

int index_pack_put(struct index *index, MDB_txn *txn, uint64_t id, const struct pack_entry *entry);
int index_pack_delete(struct index *index, MDB_txn *txn, uint64_t id);
/* Calls fn for each pack in id order (entry NULL for a damaged record). */
int index_pack_foreach(struct index *index, MDB_txn *txn,
		       int (*fn)(void *opaque, uint64_t id, const struct pack_entry *entry),
		       void *opaque);

/* The first pack id never used. */
int index_next_pack_get(struct index *index, MDB_txn *txn, uint64_t *id);
int index_next_pack_put(struct index *index, MDB_txn *txn, uint64_t id);

/* Raw values of the snapshots and worksets databases; *value is valid until the txn ends. */
int index_record_get(struct index *index, MDB_txn *txn, MDB_dbi dbi, const char *name,
		     MDB_val *value);
int index_record_put(struct index *index, MDB_txn *txn, MDB_dbi dbi, const char *name,
		     const void *data, size_t len);
int index_record_delete(struct index *index, MDB_txn *txn, MDB_dbi dbi, const char *name);
/* Calls fn for each entry of dbi in name order until fn returns non-zero. */
int index_record_foreach(struct index *index, MDB_txn *txn, MDB_dbi dbi,
			 int (*fn)(void *opaque, const char *name, const void *data, size_t len),
			 void *opaque);

#endif
