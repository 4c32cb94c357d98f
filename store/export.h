/*
 * Export files (private to store/): one snapshot and every chunk it uses.
 *   header   "SVMEXPT1", version, name length, record length, chunk count
 *   name, then the snapshot record
 *   chunk records as in packs: the manifest's chunks first, then the rest
 *   trailer  "SVMEXEND", bytes before the trailer, SHA-256 of those bytes
 * The trailer makes a truncated or altered file detectable before anything
 * is added to the store.
 */
#ifndef SNAPVM_STORE_EXPORT_H
#define SNAPVM_STORE_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define EXPORT_HEADER_SIZE  32
#define EXPORT_TRAILER_SIZE 48
#define EXPORT_RECORD_MAX   (1U << 20)

struct export_header {
	uint32_t name_len;
	uint32_t record_len;
	uint64_t chunk_count;
};

void export_header_encode(const struct export_header *header, uint8_t out[EXPORT_HEADER_SIZE]);
/* -EBADMSG if it is not an export header this version can read. */
int export_header_decode(const uint8_t in[EXPORT_HEADER_SIZE], struct export_header *header);
void export_trailer_encode(uint64_t length, const uint8_t digest[STORE_DIGEST_SIZE],
			   uint8_t out[EXPORT_TRAILER_SIZE]);
/* -EBADMSG unless the trailer says length bytes with this digest came before it. */
int export_trailer_check(const uint8_t in[EXPORT_TRAILER_SIZE], uint64_t length,
			 const uint8_t digest[STORE_DIGEST_SIZE]);

#endif
