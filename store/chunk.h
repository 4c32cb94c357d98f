/*
 * A chunk as it sits in a pack or an export file: a 48-byte header (magic,
 * codec, lengths, SHA-256 of the decoded bytes) followed by its payload
 * (private to store/).
 */
#ifndef SNAPVM_STORE_CHUNK_H
#define SNAPVM_STORE_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define CHUNK_HEADER_SIZE 48
#define CHUNK_RAW_MAX	  STORE_PAGE_SIZE
#define CHUNK_RECORD_MAX  (CHUNK_HEADER_SIZE + CHUNK_RAW_MAX)

enum chunk_codec {
	CHUNK_CODEC_RAW = 0,  /* payload is the chunk itself */
	CHUNK_CODEC_ZSTD = 1, /* payload is one zstd frame */
};

struct chunk_header {
	uint8_t digest[STORE_DIGEST_SIZE];
	uint32_t stored_len; /* payload bytes */
	uint32_t raw_len;    /* decoded bytes, 1..CHUNK_RAW_MAX */
	uint8_t codec;
};

/*
 * Writes the record of data (raw_len bytes whose digest is known) to out
 * (CHUNK_RECORD_MAX bytes), compressed when that saves at least 1/16, and
 * fills header. 0 or -EINVAL.
 */
int chunk_record_encode(const void *data, uint32_t raw_len, const uint8_t digest[STORE_DIGEST_SIZE],
			uint8_t *out, struct chunk_header *header);
/* Parses a record header; -EBADMSG with *reason set if it is not a sane one. */
int chunk_header_decode(const uint8_t *in, struct chunk_header *header, const char **reason);
/*
 * Decodes a whole record (len bytes) that should be `expect` into out
 * (expect->raw_len bytes) and checks its digest; -EBADMSG with *reason set.
 */
int chunk_record_decode(const uint8_t *record, size_t len, const struct chunk_header *expect,
			void *out, const char **reason);

#endif
