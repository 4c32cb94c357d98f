/* Encoding and checking of snapshot records and manifests; layouts in docs/store-format.md. */
#include "store/manifest.h"
#include "store/bytes.h"
#include "store/digest.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_MAGIC	 "SVMSNAP1"
#define RECORD_FIXED	 80
#define MANIFEST_MAGIC	 "SVMMANF1"
#define MANIFEST_VERSION 1
#define MANIFEST_FIXED	 32
#define CHUNKS_OF(len)	 (((len) + STORE_PAGE_SIZE - 1) / STORE_PAGE_SIZE)

/* A bounds-checked reader over an untrusted buffer. */
struct cursor {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static const uint8_t *cursor_take(struct cursor *c, size_t n)
{
	const uint8_t *p = c->p;

	if (c->bad || n > c->left) {
		c->bad = true;
		return NULL;
	}
	c->p += n;
	c->left -= n;
	return p;
}

/* Copies an n-byte string into out (size > n) if it has no NUL; else marks the cursor bad. */
static void cursor_string(struct cursor *c, size_t n, char *out, size_t size)
{
	const uint8_t *p = cursor_take(c, n);

	if (!p || n >= size || memchr(p, '\0', n)) {
		c->bad = true;
		out[0] = '\0';
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

static size_t snap_record_size(const struct snap_record *r)
{
	const struct store_snapshot_info *in = &r->info;
	size_t size = RECORD_FIXED + strlen(in->parent) + strlen(in->cpu_id);

	for (size_t i = 0; i < in->kv_count; i++)
		size += 2 + strlen(in->kv[i].key) + strlen(in->kv[i].value);
	return size + (size_t)r->manifest_chunks * STORE_DIGEST_SIZE;
}

int snap_record_encode(const struct snap_record *r, uint8_t **out, size_t *len)
{
	const struct store_snapshot_info *in = &r->info;
	size_t size = snap_record_size(r);
	uint8_t *buf = calloc(1, size), *p;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, RECORD_MAGIC, 8);
	put_u32(buf + 12, (uint32_t)size);
	put_u64(buf + 16, in->created_ns);
	put_u64(buf + 24, in->ram_size);
	put_u64(buf + 32, in->nonzero_pages);
	put_u64(buf + 40, in->blob_bytes);
	put_u64(buf + 48, in->chunks);
	put_u64(buf + 56, in->stored_bytes);
	put_u64(buf + 64, r->manifest_len);
	put_u32(buf + 72, r->manifest_chunks);
	buf[76] = (uint8_t)strlen(in->parent);
	buf[77] = (uint8_t)strlen(in->cpu_id);
	buf[78] = (uint8_t)in->kv_count;
	p = buf + RECORD_FIXED;
	p = mempcpy(p, in->parent, buf[76]);
	p = mempcpy(p, in->cpu_id, buf[77]);
	for (size_t i = 0; i < in->kv_count; i++) {
		size_t key_len = strlen(in->kv[i].key), value_len = strlen(in->kv[i].value);

		*p++ = (uint8_t)key_len;
		*p++ = (uint8_t)value_len;
		p = mempcpy(p, in->kv[i].key, key_len);
		p = mempcpy(p, in->kv[i].value, value_len);
	}
	memcpy(p, r->manifest_digests, (size_t)r->manifest_chunks * STORE_DIGEST_SIZE);
	put_u32(buf + 8, checksum32(buf + 12, size - 12));
	*out = buf;
	*len = size;
	return 0;
}

/* Reads the fixed part of a record, checking magic, length and checksum. */
static int snap_record_fixed(const uint8_t *buf, size_t len, struct snap_record *r)
{
	struct store_snapshot_info *in = &r->info;

	if (len < RECORD_FIXED || memcmp(buf, RECORD_MAGIC, 8) || get_u32(buf + 12) != len ||
	    get_u32(buf + 8) != checksum32(buf + 12, len - 12))
		return -EUCLEAN;
	in->created_ns = get_u64(buf + 16);
	in->ram_size = get_u64(buf + 24);
	in->nonzero_pages = get_u64(buf + 32);
	in->blob_bytes = get_u64(buf + 40);
	in->chunks = get_u64(buf + 48);
	in->stored_bytes = get_u64(buf + 56);
	r->manifest_len = get_u64(buf + 64);
	r->manifest_chunks = get_u32(buf + 72);
	in->kv_count = buf[78];
	if (in->ram_size % STORE_PAGE_SIZE || in->ram_size > STORE_RAM_MAX ||
	    in->nonzero_pages > in->ram_size / STORE_PAGE_SIZE || in->kv_count > STORE_KV_MAX ||
	    r->manifest_len == 0 || r->manifest_len > MANIFEST_LEN_MAX ||
	    r->manifest_chunks != CHUNKS_OF(r->manifest_len) || buf[79])
		return -EUCLEAN;
	return 0;
}

int snap_record_decode(const void *data, size_t len, struct snap_record *r)
{
	struct store_snapshot_info *in = &r->info;
	const uint8_t *buf = data, *digests;
	struct cursor c;

	memset(r, 0, sizeof(*r));
	if (snap_record_fixed(buf, len, r))
		return -EUCLEAN;
	c = (struct cursor){ .p = buf + RECORD_FIXED, .left = len - RECORD_FIXED };
	cursor_string(&c, buf[76], in->parent, sizeof(in->parent));
	cursor_string(&c, buf[77], in->cpu_id, sizeof(in->cpu_id));
	for (size_t i = 0; i < in->kv_count && !c.bad; i++) {
		const uint8_t *lens = cursor_take(&c, 2);

		if (!lens)
			break;
		cursor_string(&c, lens[0], in->kv[i].key, sizeof(in->kv[i].key));
		cursor_string(&c, lens[1], in->kv[i].value, sizeof(in->kv[i].value));
	}
	digests = cursor_take(&c, (size_t)r->manifest_chunks * STORE_DIGEST_SIZE);
	if (c.bad || c.left || (in->parent[0] && store_name_check(in->parent)))
		return -EUCLEAN;
	r->manifest_digests = malloc((size_t)r->manifest_chunks * STORE_DIGEST_SIZE);
	if (!r->manifest_digests)
		return -ENOMEM;
	memcpy(r->manifest_digests, digests, (size_t)r->manifest_chunks * STORE_DIGEST_SIZE);
	return 0;
}

void snap_record_free(struct snap_record *r)
{
	free(r->manifest_digests);
	r->manifest_digests = NULL;
}

/* mempcpy that accepts NULL with a zero length (empty tables and blobs). */
static uint8_t *put_bytes(uint8_t *p, const void *data, size_t len)
{
	return len ? mempcpy(p, data, len) : p;
}

static size_t manifest_size(const struct manifest *m)
{
	size_t size = MANIFEST_FIXED + (size_t)m->page_count * 4 +
		      (size_t)m->unique_count * STORE_DIGEST_SIZE;

	for (uint32_t i = 0; i < m->blob_count; i++)
		size += 1 + strlen(m->blobs[i].name) + 12 +
			(size_t)m->blobs[i].chunk_count * STORE_DIGEST_SIZE;
	return size;
}

int manifest_encode(const struct manifest *m, uint8_t **out, size_t *len)
{
	size_t size = manifest_size(m);
	uint8_t *buf, *p;

	if (size > MANIFEST_LEN_MAX)
		return -E2BIG;
	buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, MANIFEST_MAGIC, 8);
	put_u32(buf + 8, MANIFEST_VERSION);
	put_u32(buf + 12, m->blob_count);
	put_u64(buf + 16, m->page_count);
	put_u64(buf + 24, m->unique_count);
	p = put_bytes(buf + MANIFEST_FIXED, m->page_map, (size_t)m->page_count * 4);
	p = put_bytes(p, m->unique, (size_t)m->unique_count * STORE_DIGEST_SIZE);
	for (uint32_t i = 0; i < m->blob_count; i++) {
		const struct manifest_blob *b = &m->blobs[i];

		*p++ = (uint8_t)strlen(b->name);
		p = mempcpy(p, b->name, strlen(b->name));
		put_u64(p, b->len);
		put_u32(p + 8, b->chunk_count);
		p = put_bytes(p + 12, b->digests, (size_t)b->chunk_count * STORE_DIGEST_SIZE);
	}
	*out = buf;
	*len = size;
	return 0;
}

static int manifest_blobs_decode(struct cursor *c, struct manifest *m)
{
	for (uint32_t i = 0; i < m->blob_count; i++) {
		struct manifest_blob *b = &m->blobs[i];
		const uint8_t *name_len = cursor_take(c, 1), *fixed;

		if (!name_len)
			return -EBADMSG;
		cursor_string(c, *name_len, b->name, sizeof(b->name));
		fixed = cursor_take(c, 12);
		if (!fixed || store_name_check(b->name) || manifest_blob_find(m, b->name) != b)
			return -EBADMSG;
		b->len = get_u64(fixed);
		b->chunk_count = get_u32(fixed + 8);
		if (b->len > STORE_BLOB_SIZE_MAX || b->chunk_count != CHUNKS_OF(b->len))
			return -EBADMSG;
		b->digests =
			(const void *)cursor_take(c, (size_t)b->chunk_count * STORE_DIGEST_SIZE);
		if (!b->digests)
			return -EBADMSG;
	}
	return 0;
}

int manifest_decode(uint8_t *buf, size_t len, uint64_t page_count, struct manifest *m)
{
	struct cursor c;

	memset(m, 0, sizeof(*m));
	m->buf = buf;
	if (len < MANIFEST_FIXED || memcmp(buf, MANIFEST_MAGIC, 8) ||
	    get_u32(buf + 8) != MANIFEST_VERSION)
		return -EBADMSG;
	c = (struct cursor){ .p = buf + MANIFEST_FIXED, .left = len - MANIFEST_FIXED };
	m->blob_count = get_u32(buf + 12);
	m->page_count = get_u64(buf + 16);
	m->unique_count = get_u64(buf + 24);
	if (m->page_count != page_count || m->unique_count > page_count ||
	    m->blob_count > STORE_BLOB_MAX)
		return -EBADMSG;
	/* buf comes from malloc and the map starts at 32: it is aligned for uint32_t. */
	m->page_map = (const void *)cursor_take(&c, (size_t)page_count * 4);
	m->unique = (const void *)cursor_take(&c, (size_t)m->unique_count * STORE_DIGEST_SIZE);
	if (c.bad || manifest_blobs_decode(&c, m) || c.left)
		return -EBADMSG;
	for (uint64_t i = 0; i < page_count; i++) {
		if (m->page_map[i] > m->unique_count)
			return -EBADMSG;
	}
	return 0;
}

void manifest_free(struct manifest *m)
{
	free(m->buf);
	memset(m, 0, sizeof(*m));
}

const struct manifest_blob *manifest_blob_find(const struct manifest *m, const char *name)
{
	for (uint32_t i = 0; i < m->blob_count; i++) {
		if (!strcmp(m->blobs[i].name, name))
			return &m->blobs[i];
	}
	return NULL;
}
