/*
 * Chunk records. Each chunk is compressed on its own, so that one page is
 * one pread and one decompress; docs/store-format.md has the measurements
 * behind that choice. zstd contexts are kept per thread because creating
 * one costs more than compressing a page.
 */
#include "store/chunk.h"
#include "store/bytes.h"
#include "store/digest.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <zstd.h>

#define CHUNK_MAGIC	 0x31435653U /* "SVC1" */
#define CHUNK_ZSTD_LEVEL 1
#define NOISE_SAMPLES	 256 /* bytes looked at, one every 16 */
#define NOISE_DISTINCT                                                             \
	150 /* noise shows ~162 distinct values in 256 samples, code ~80, text ~30 \
	     */

static pthread_key_t cctx_key, dctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void cctx_free(void *p)
{
	ZSTD_freeCCtx(p);
}

static void dctx_free(void *p)
{
	ZSTD_freeDCtx(p);
}

static void ctx_keys_create(void)
{
	pthread_key_create(&cctx_key, cctx_free);
	pthread_key_create(&dctx_key, dctx_free);
}

static ZSTD_CCtx *thread_cctx(void)
{
	ZSTD_CCtx *cctx;

	pthread_once(&ctx_once, ctx_keys_create);
	cctx = pthread_getspecific(cctx_key);
	if (!cctx) {
		cctx = ZSTD_createCCtx();
		if (!cctx)
			return NULL;
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, CHUNK_ZSTD_LEVEL);
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0); /* the digest checks it */
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
		pthread_setspecific(cctx_key, cctx);
	}
	return cctx;
}

static ZSTD_DCtx *thread_dctx(void)
{
	ZSTD_DCtx *dctx;

	pthread_once(&ctx_once, ctx_keys_create);
	dctx = pthread_getspecific(dctx_key);
	if (!dctx) {
		dctx = ZSTD_createDCtx();
		if (!dctx)
			return NULL;
		pthread_setspecific(dctx_key, dctx);
	}
	return dctx;
}

static void chunk_header_encode(const struct chunk_header *h, uint8_t *out)
{
	put_u32(out, CHUNK_MAGIC);
	out[4] = h->codec;
	memset(out + 5, 0, 3);
	put_u32(out + 8, h->stored_len);
	put_u32(out + 12, h->raw_len);
	memcpy(out + 16, h->digest, STORE_DIGEST_SIZE);
}

/*
 * True if a page looks like noise (encrypted or compressed data, random
 * heap): zstd spends 2 us learning it cannot shrink such a page, this 0.3
 * us. A few compressible pages are stored raw by mistake, costing under 1%
 * of the compression ratio; docs/store-format.md has the figures.
 */
static bool page_looks_random(const uint8_t *page)
{
	uint64_t seen[4] = { 0 };
	int distinct = 0;

	for (size_t i = 0; i < STORE_PAGE_SIZE; i += STORE_PAGE_SIZE / NOISE_SAMPLES)
		seen[page[i] >> 6] |= 1ULL << (page[i] & 63);
	for (int i = 0; i < 4; i++)
		distinct += __builtin_popcountll(seen[i]);
	return distinct >= NOISE_DISTINCT;
}

int chunk_record_encode(const void *data, uint32_t raw_len, const uint8_t digest[STORE_DIGEST_SIZE],
			uint8_t *out, struct chunk_header *header)
{
	ZSTD_CCtx *cctx = thread_cctx();
	size_t limit = raw_len - raw_len / 16, n = 0;

	if (raw_len == 0 || raw_len > CHUNK_RAW_MAX)
		return -EINVAL;
	if (raw_len == STORE_PAGE_SIZE && page_looks_random(data))
		cctx = NULL;
	/* A buffer smaller than the page makes zstd give up early on noise. */
	if (cctx && limit > 0)
		n = ZSTD_compress2(cctx, out + CHUNK_HEADER_SIZE, limit, data, raw_len);
	if (cctx && n > 0 && !ZSTD_isError(n)) {
		header->codec = CHUNK_CODEC_ZSTD;
		header->stored_len = (uint32_t)n;
	} else {
		if (cctx && ZSTD_isError(n))
			ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only);
		header->codec = CHUNK_CODEC_RAW;
		header->stored_len = raw_len;
		memcpy(out + CHUNK_HEADER_SIZE, data, raw_len);
	}
	header->raw_len = raw_len;
	memcpy(header->digest, digest, STORE_DIGEST_SIZE);
	chunk_header_encode(header, out);
	return 0;
}

int chunk_header_decode(const uint8_t *in, struct chunk_header *header, const char **reason)
{
	if (get_u32(in) != CHUNK_MAGIC || in[5] || in[6] || in[7]) {
		*reason = "the record header is damaged";
		return -EBADMSG;
	}
	header->codec = in[4];
	header->stored_len = get_u32(in + 8);
	header->raw_len = get_u32(in + 12);
	memcpy(header->digest, in + 16, STORE_DIGEST_SIZE);
	if (header->raw_len == 0 || header->raw_len > CHUNK_RAW_MAX || header->stored_len == 0 ||
	    header->stored_len > CHUNK_RAW_MAX || header->codec > CHUNK_CODEC_ZSTD ||
	    (header->codec == CHUNK_CODEC_RAW && header->stored_len != header->raw_len)) {
		*reason = "the record header has impossible lengths or codec";
		return -EBADMSG;
	}
	return 0;
}

/* Decodes the payload into out and checks that it has the expected digest. */
static int chunk_payload_decode(const uint8_t *payload, const struct chunk_header *h, void *out,
				const char **reason)
{
	uint8_t digest[STORE_DIGEST_SIZE];

	if (h->codec == CHUNK_CODEC_ZSTD) {
		ZSTD_DCtx *dctx = thread_dctx();
		size_t n;

		if (!dctx) {
			*reason = "out of memory for a zstd context";
			return -ENOMEM;
		}
		n = ZSTD_decompressDCtx(dctx, out, h->raw_len, payload, h->stored_len);
		if (ZSTD_isError(n) || n != h->raw_len) {
			*reason = "the payload does not decompress";
			return -EBADMSG;
		}
	} else {
		memcpy(out, payload, h->raw_len);
	}
	if (digest_compute(out, h->raw_len, digest)) {
		*reason = "SHA-256 failed";
		return -EIO;
	}
	if (memcmp(digest, h->digest, STORE_DIGEST_SIZE)) {
		*reason = "the data does not match its digest";
		return -EBADMSG;
	}
	return 0;
}

int chunk_record_decode(const uint8_t *record, size_t len, const struct chunk_header *expect,
			void *out, const char **reason)
{
	struct chunk_header h;
	int ret;

	if (len < CHUNK_HEADER_SIZE) {
		*reason = "the record is shorter than its header";
		return -EBADMSG;
	}
	ret = chunk_header_decode(record, &h, reason);
	if (ret)
		return ret;
	if (memcmp(h.digest, expect->digest, STORE_DIGEST_SIZE) || h.raw_len != expect->raw_len ||
	    h.stored_len != expect->stored_len || h.codec != expect->codec ||
	    len != CHUNK_HEADER_SIZE + (size_t)h.stored_len) {
		*reason = "the record is not the chunk the index names";
		return -EBADMSG;
	}
	return chunk_payload_decode(record + CHUNK_HEADER_SIZE, &h, out, reason);
}
