/*
 * Pack files: a 32-byte header (magic, version, pack id) and chunk records
 * appended one after another, never changed once written. The writer rolls
 * to a new pack at a target size; the cache keeps packs open for reading
 * (private to store/).
 */
#ifndef SNAPVM_STORE_PACK_H
#define SNAPVM_STORE_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "store/backend.h"
#include "store/index.h"

#define PACK_HEADER_SIZE 32
#define PACK_TARGET_SIZE (64ULL << 20)
#define PACK_NAME_SIZE	 32

/* The object name of pack id: 16 hex digits and ".pack". */
void pack_name(uint64_t id, char name[PACK_NAME_SIZE]);
/* Parses an object name made by pack_name; -EINVAL for any other name. */
int pack_name_parse(const char *name, uint64_t *id);

struct pack_writer;

/* Starts writing packs numbered first_id, first_id + 1, ... */
int pack_writer_create(struct backend *backend, uint64_t first_id, struct pack_writer **writer);
/* Appends one chunk record; says in which pack and at which offset it landed. */
int pack_writer_append(struct pack_writer *writer, const uint8_t *record, size_t len,
		       uint64_t *pack, uint64_t *offset);
/* Makes every pack written so far durable and visible; the writer stays usable for discard. */
int pack_writer_commit(struct pack_writer *writer);
struct pack_written {
	uint64_t id;
	struct pack_entry entry;
};

/* The packs written so far, and how many. */
const struct pack_written *pack_writer_packs(const struct pack_writer *writer, size_t *count);
/* The first id not used by this writer. */
uint64_t pack_writer_next_id(const struct pack_writer *writer);
/* Deletes every pack it wrote, committed or not, and frees the writer. */
void pack_writer_discard(struct pack_writer *writer);
/* Frees the writer, keeping what was committed. */
void pack_writer_free(struct pack_writer *writer);

/* Packs open for reading, by id. */
struct pack_cache {
	struct backend *backend;
	struct pack_cache_entry {
		uint64_t id;
		struct backend_object *object;
	} * entries;
	size_t count;
	size_t cap;
};

void pack_cache_init(struct pack_cache *cache, struct backend *backend);
/* Closes every pack it holds. */
void pack_cache_free(struct pack_cache *cache);
/* Opens pack id (checking its header) or finds it open; -ENOENT if missing, -EBADMSG if not a pack.
 */
int pack_cache_get(struct pack_cache *cache, uint64_t id, struct backend_object **object);
/*
 * Reads the chunk the index entry e names, checks it against digest and
 * decodes it into out (e->raw_len bytes); the record as stored is left in
 * record (CHUNK_RECORD_MAX bytes) unless that is NULL. Logs nothing; on
 * failure *reason says what was wrong.
 */
int pack_chunk_read(struct pack_cache *cache, const uint8_t digest[STORE_DIGEST_SIZE],
		    const struct chunk_entry *e, uint8_t *record, void *out, const char **reason);

#endif
