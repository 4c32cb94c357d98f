/*
 * Pack writing and reading. Records are gathered in a buffer and handed to
 * the backend a few MiB at a time. Packs are committed (synced, then made
 * visible) only when the caller is about to commit the index, so that a
 * crash before that leaves nothing but unreferenced files for gc to sweep.
 */
#include "store/pack.h"
#include "store/bytes.h"
#include "store/chunk.h"
#include "common/common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PACK_MAGIC	 "SVMPACK1"
#define PACK_VERSION	 1
#define PACK_BUFFER_SIZE (4ULL << 20)
#define PACK_BLOCK	 4096 /* the backend writes whole aligned blocks fastest (O_DIRECT) */

struct pack_writer {
	struct backend *backend;
	uint64_t next_id;
	struct pack_written *packs;	 /* every pack started, in order */
	struct backend_upload **uploads; /* per pack; NULL once committed */
	size_t count;
	size_t cap;
	bool sealed; /* the last pack is full: the next record starts a new one */
	uint8_t *buf;
	size_t buf_len;
};

void pack_name(uint64_t id, char name[PACK_NAME_SIZE])
{
	snprintf(name, PACK_NAME_SIZE, "%016" PRIx64 ".pack", id);
}

int pack_name_parse(const char *name, uint64_t *id)
{
	uint64_t v = 0;

	if (strlen(name) != 21 || strcmp(name + 16, ".pack"))
		return -EINVAL;
	for (int i = 0; i < 16; i++) {
		char c = name[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return -EINVAL;
	}
	*id = v;
	return 0;
}

static void pack_header_encode(uint64_t id, uint8_t *out)
{
	memcpy(out, PACK_MAGIC, 8);
	put_u32(out + 8, PACK_VERSION);
	put_u32(out + 12, PACK_HEADER_SIZE);
	put_u64(out + 16, id);
	put_u64(out + 24, 0);
}

int pack_writer_create(struct backend *backend, uint64_t first_id, struct pack_writer **writer)
{
	struct pack_writer *w = calloc(1, sizeof(*w));

	if (!w || posix_memalign((void **)&w->buf, PACK_BLOCK, PACK_BUFFER_SIZE)) {
		free(w);
		return -ENOMEM;
	}
	w->backend = backend;
	w->next_id = first_id;
	w->sealed = true;
	*writer = w;
	return 0;
}

/*
 * Hands the buffer to the backend: all of it when the pack ends, else only
 * whole blocks, keeping the tail for the next flush.
 */
static int pack_writer_flush(struct pack_writer *w, bool all)
{
	size_t len = all ? w->buf_len : ALIGN_DOWN(w->buf_len, PACK_BLOCK);
	int ret;

	if (!len)
		return 0;
	ret = w->backend->ops->upload_append(w->uploads[w->count - 1], w->buf, len);
	memmove(w->buf, w->buf + len, w->buf_len - len);
	w->buf_len -= len;
	return ret;
}

/* Starts the next pack: a new upload that begins with the pack header. */
static int pack_writer_start(struct pack_writer *w)
{
	char name[PACK_NAME_SIZE];
	int ret = w->count ? pack_writer_flush(w, true) : 0;

	if (ret)
		return ret;
	if (w->count == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 8;
		void *packs = realloc(w->packs, cap * sizeof(*w->packs));
		void *uploads = packs ? realloc(w->uploads, cap * sizeof(*w->uploads)) : NULL;

		if (packs)
			w->packs = packs;
		if (!uploads)
			return -ENOMEM;
		w->uploads = uploads;
		w->cap = cap;
	}
	/* A shared backend says -EEXIST for an id another host took meanwhile: skip it. */
	for (int tries = 0; tries < 1000; tries++) {
		pack_name(w->next_id, name);
		ret = w->backend->ops->upload_begin(w->backend, name, &w->uploads[w->count]);
		if (ret != -EEXIST)
			break;
		w->next_id++;
	}
	if (ret)
		return ret;
	w->packs[w->count] = (struct pack_written){ .id = w->next_id++ };
	w->count++;
	w->sealed = false;
	pack_header_encode(w->packs[w->count - 1].id, w->buf);
	w->buf_len = PACK_HEADER_SIZE;
	w->packs[w->count - 1].entry.size = PACK_HEADER_SIZE;
	return 0;
}

int pack_writer_append(struct pack_writer *w, const uint8_t *record, size_t len, uint64_t *pack,
		       uint64_t *offset)
{
	struct pack_written *p;
	int ret;

	if (len > PACK_BUFFER_SIZE - PACK_BLOCK)
		return -EINVAL;
	if (w->sealed || w->packs[w->count - 1].entry.size + len > PACK_TARGET_SIZE) {
		ret = pack_writer_start(w);
		if (ret)
			return ret;
	}
	if (w->buf_len + len > PACK_BUFFER_SIZE) {
		ret = pack_writer_flush(w, false);
		if (ret)
			return ret;
	}
	p = &w->packs[w->count - 1];
	memcpy(w->buf + w->buf_len, record, len);
	w->buf_len += len;
	*pack = p->id;
	*offset = p->entry.size;
	p->entry.size += len;
	p->entry.chunks++;
	return 0;
}

int pack_writer_commit(struct pack_writer *w)
{
	int ret = 0;

	if (!w->sealed)
		ret = pack_writer_flush(w, true);
	w->sealed = true;
	for (size_t i = 0; !ret && i < w->count; i++) {
		if (w->uploads[i]) {
			ret = w->backend->ops->upload_commit(w->uploads[i]);
			w->uploads[i] = NULL; /* committed, or aborted by the failed commit */
		}
	}
	return ret;
}

const struct pack_written *pack_writer_packs(const struct pack_writer *w, size_t *count)
{
	*count = w->count;
	return w->packs;
}

uint64_t pack_writer_next_id(const struct pack_writer *w)
{
	return w->next_id;
}

void pack_writer_free(struct pack_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->count; i++) {
		if (w->uploads[i])
			w->backend->ops->upload_abort(w->uploads[i]);
	}
	free(w->packs);
	free(w->uploads);
	free(w->buf);
	free(w);
}

void pack_writer_discard(struct pack_writer *w)
{
	char name[PACK_NAME_SIZE];

	if (!w)
		return;
	for (size_t i = 0; i < w->count; i++) {
		if (w->uploads[i]) {
			w->backend->ops->upload_abort(w->uploads[i]);
			w->uploads[i] = NULL;
		} else {
			pack_name(w->packs[i].id, name);
			w->backend->ops->remove(w->backend, name);
		}
	}
	pack_writer_free(w);
}

void pack_cache_init(struct pack_cache *cache, struct backend *backend)
{
	memset(cache, 0, sizeof(*cache));
	cache->backend = backend;
}

void pack_cache_free(struct pack_cache *cache)
{
	for (size_t i = 0; i < cache->count; i++)
		cache->backend->ops->object_close(cache->entries[i].object);
	free(cache->entries);
	memset(cache, 0, sizeof(*cache));
}

static int pack_header_check(struct backend *backend, struct backend_object *obj, uint64_t id)
{
	uint8_t h[PACK_HEADER_SIZE];
	int ret = backend->ops->object_read(obj, 0, h, sizeof(h));

	if (ret)
		return ret;
	if (memcmp(h, PACK_MAGIC, 8) || get_u32(h + 8) != PACK_VERSION ||
	    get_u32(h + 12) != PACK_HEADER_SIZE || get_u64(h + 16) != id)
		return -EBADMSG;
	return 0;
}

int pack_cache_get(struct pack_cache *cache, uint64_t id, struct backend_object **object)
{
	struct backend_object *obj;
	char name[PACK_NAME_SIZE];
	int ret;

	for (size_t i = 0; i < cache->count; i++) {
		if (cache->entries[i].id == id) {
			*object = cache->entries[i].object;
			return 0;
		}
	}
	if (cache->count == cache->cap) {
		size_t cap = cache->cap ? cache->cap * 2 : 8;
		void *entries = realloc(cache->entries, cap * sizeof(*cache->entries));

		if (!entries)
			return -ENOMEM;
		cache->entries = entries;
		cache->cap = cap;
	}
	pack_name(id, name);
	ret = cache->backend->ops->object_open(cache->backend, name, &obj);
	if (ret)
		return ret;
	ret = pack_header_check(cache->backend, obj, id);
	if (ret) {
		cache->backend->ops->object_close(obj);
		return ret;
	}
	cache->entries[cache->count++] = (struct pack_cache_entry){ id, obj };
	*object = obj;
	return 0;
}

int pack_chunk_read(struct pack_cache *cache, const uint8_t digest[STORE_DIGEST_SIZE],
		    const struct chunk_entry *e, uint8_t *record, void *out, const char **reason)
{
	uint8_t buf[CHUNK_RECORD_MAX];
	struct chunk_header expect = { .stored_len = e->stored_len,
				       .raw_len = e->raw_len,
				       .codec = e->codec };
	struct backend_object *obj;
	int ret = pack_cache_get(cache, e->pack, &obj);

	if (ret) {
		*reason = ret == -ENOENT    ? "its pack is missing"
			  : ret == -EBADMSG ? "its pack has a bad header"
					    : "its pack cannot be opened";
		return ret == -ENOENT ? -ENOENT : -EBADMSG;
	}
	if (!record)
		record = buf;
	if (e->stored_len > CHUNK_RAW_MAX || e->offset < PACK_HEADER_SIZE) {
		*reason = "the index gives it impossible lengths";
		return -EBADMSG;
	}
	ret = cache->backend->ops->object_read(obj, e->offset, record,
					       CHUNK_HEADER_SIZE + e->stored_len);
	if (ret) {
		*reason = ret == -EBADMSG ? "its pack ends before the chunk does"
					  : "reading its pack failed";
		return ret;
	}
	memcpy(expect.digest, digest, STORE_DIGEST_SIZE);
	return chunk_record_decode(record, CHUNK_HEADER_SIZE + e->stored_len, &expect, out, reason);
}
