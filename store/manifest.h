/*
 * What describes a snapshot (private to store/):
 *  - its record, the value under its name in the index: metadata, sizes,
 *    and the digests of its manifest's chunks;
 *  - its manifest, a blob stored as chunks like any other: the page map
 *    (guest page -> 0 for a zero page, else 1 + index into the table of
 *    distinct page digests, in order of first appearance) and its named blobs.
 * Both are untrusted input: the decoders check every length and index.
 */
#ifndef SNAPVM_STORE_MANIFEST_H
#define SNAPVM_STORE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define MANIFEST_LEN_MAX (2ULL << 30)

struct snap_record {
	struct store_snapshot_info info; /* metadata and sizes; no name, unique_bytes or blobs */
	uint64_t manifest_len;
	uint32_t manifest_chunks;
	uint8_t (*manifest_digests)[STORE_DIGEST_SIZE];
};

/* Serializes a record into a malloc'ed buffer. */
int snap_record_encode(const struct snap_record *record, uint8_t **out, size_t *len);
/* Parses and checks a record; -EUCLEAN if it is damaged. Free with snap_record_free. */
int snap_record_decode(const void *data, size_t len, struct snap_record *record);
void snap_record_free(struct snap_record *record);

struct manifest_blob {
	char name[STORE_NAME_MAX + 1];
	uint64_t len;
	uint32_t chunk_count; /* ceil(len / 4 KiB) */
	const uint8_t (*digests)[STORE_DIGEST_SIZE];
};

struct manifest {
	uint8_t *buf; /* the decoded bytes, which the pointers below point into */
	uint64_t page_count;
	const uint32_t *page_map;
	uint64_t unique_count;
	const uint8_t (*unique)[STORE_DIGEST_SIZE];
	uint32_t blob_count;
	struct manifest_blob blobs[STORE_BLOB_MAX];
};

/* Serializes a manifest into a malloc'ed buffer. */
int manifest_encode(const struct manifest *manifest, uint8_t **out, size_t *len);
/*
 * Parses and checks a manifest of page_count pages, taking ownership of buf
 * (malloc'ed, len bytes) even on failure; -EBADMSG if it is not a sane one.
 */
int manifest_decode(uint8_t *buf, size_t len, uint64_t page_count, struct manifest *manifest);
void manifest_free(struct manifest *manifest);
/* The blob called name, or NULL. */
const struct manifest_blob *manifest_blob_find(const struct manifest *manifest, const char *name);

#endif
