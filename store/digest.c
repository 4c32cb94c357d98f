/*
 * SHA-256 is cryptographic on purpose: snapshots of different tenants may
 * share a store, so nobody may craft a page that collides with another's.
 */
#include "store/digest.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/*
 * Through common/sha256.c, not EVP: EVP's first digest in a process loads
 * OpenSSL's provider (~0.7 ms), and every restore reads a manifest.
 */
int digest_compute(const void *data, size_t len, uint8_t digest[STORE_DIGEST_SIZE])
{
	sha256_digest(data, len, digest);
	return 0;
}

int digest_stream_begin(struct digest_stream *stream)
{
	sha256_begin(&stream->state);
	stream->open = true;
	return 0;
}

int digest_stream_update(struct digest_stream *stream, const void *data, size_t len)
{
	sha256_add(&stream->state, data, len);
	return 0;
}

int digest_stream_end(struct digest_stream *stream, uint8_t digest[STORE_DIGEST_SIZE])
{
	uint8_t unused[STORE_DIGEST_SIZE];

	sha256_end(&stream->state, digest ? digest : unused);
	stream->open = false;
	return 0;
}

static uint32_t crc32c_table[256];
static bool crc32c_hardware;
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
	crc32c_hardware = __builtin_cpu_supports("sse4.2");
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78U : c >> 1;
		crc32c_table[i] = c;
	}
}

/* The SSE4.2 instruction: the index checks a record on every chunk lookup. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(const uint8_t *p, size_t len)
{
	uint64_t crc = ~0U, word;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&word, p, 8);
		crc = __builtin_ia32_crc32di(crc, word);
	}
	while (len--)
		crc = __builtin_ia32_crc32qi((uint32_t)crc, *p++);
	return ~(uint32_t)crc;
}

uint32_t checksum32(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t crc = ~0U;

	pthread_once(&crc32c_once, crc32c_init);
	if (crc32c_hardware)
		return crc32c_sse42(p, len);
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* Built twice, for AVX2 and for plain x86-64, picked at load time: zero pages are most of a guest.
 */
__attribute__((target_clones("avx2", "default"))) bool page_is_zero(const void *page)
{
	const uint64_t *words = page;

	/* Most non-zero pages differ in their first bytes: answer those at once. */
	if (words[0] | words[1])
		return false;
	for (size_t i = 0; i < STORE_PAGE_SIZE / sizeof(uint64_t); i += 64) {
		uint64_t acc = 0;

		for (size_t j = 0; j < 64; j++)
			acc |= words[i + j];
		if (acc)
			return false;
	}
	return true;
}

void store_digest_hex(const uint8_t digest[STORE_DIGEST_SIZE], char hex[2 * STORE_DIGEST_SIZE + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < STORE_DIGEST_SIZE; i++) {
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 15];
	}
	hex[2 * STORE_DIGEST_SIZE] = '\0';
}
