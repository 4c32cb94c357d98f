/* SHA-256 digests and all-zero page detection (private to store/). */
#ifndef SNAPVM_STORE_DIGEST_H
#define SNAPVM_STORE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#include "store/store.h"

/* SHA-256 of data through libcrypto (SHA-NI when the CPU has it); 0 or -EIO. */
int digest_compute(const void *data, size_t len, uint8_t digest[STORE_DIGEST_SIZE]);
/* SHA-256 over data that arrives in pieces (export files). */
struct digest_stream {
	struct sha256_state state;
	bool open; /* between begin and end */
};

int digest_stream_begin(struct digest_stream *stream);
int digest_stream_update(struct digest_stream *stream, const void *data, size_t len);
/* Gives the digest and frees the stream; digest may be NULL to just free it. */
int digest_stream_end(struct digest_stream *stream, uint8_t digest[STORE_DIGEST_SIZE]);

/* CRC-32C of data: the checksum of the index's own records. */
uint32_t checksum32(const void *data, size_t len);
/* True if the 4 KiB page holds only zero bytes. */
bool page_is_zero(const void *page);

#endif
