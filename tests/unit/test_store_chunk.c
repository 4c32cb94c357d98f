/* store/: digests, zero pages, checksums, the digest set, chunk records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>

#include "store/chunk.h"
#include "store/digest.h"
#include "store/dset.h"
#include "test_store_util.h"

static void test_digest_known_values(void **state)
{
	uint8_t d[STORE_DIGEST_SIZE];
	char hex[2 * STORE_DIGEST_SIZE + 1];
	struct digest_stream s;

	(void)state;
	assert_int_equal(digest_compute("abc", 3, d), 0);
	store_digest_hex(d, hex);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(digest_stream_begin(&s), 0);
	assert_int_equal(digest_stream_update(&s, "a", 1), 0);
	assert_int_equal(digest_stream_update(&s, "bc", 2), 0);
	assert_int_equal(digest_stream_end(&s, d), 0);
	store_digest_hex(d, hex);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* CRC-32C check value, whichever implementation the CPU gets */
	assert_int_equal(checksum32("123456789", 9), 0xe3069283U);
	assert_int_equal(checksum32("", 0), 0);
}

static void test_zero_pages(void **state)
{
	static uint8_t page[STORE_PAGE_SIZE] __attribute__((aligned(64)));

	(void)state;
	memset(page, 0, sizeof(page));
	assert_true(page_is_zero(page));
	for (size_t pos = 0; pos < STORE_PAGE_SIZE; pos += 509) {
		page[pos] = 1;
		assert_false(page_is_zero(page));
		page[pos] = 0;
	}
	page[STORE_PAGE_SIZE - 1] = 0x80;
	assert_false(page_is_zero(page));
}

static void test_dset(void **state)
{
	uint8_t d[STORE_DIGEST_SIZE];
	struct dset set;
	uint32_t index;

	(void)state;
	dset_init(&set);
	assert_int_equal(dset_find(&set, d), -1);
	for (uint32_t i = 0; i < 50000; i++) {
		test_fill_random(d, sizeof(d), i);
		assert_int_equal(dset_add(&set, d, &index), 1);
		assert_int_equal(index, i);
	}
	for (uint32_t i = 0; i < 50000; i += 7) {
		test_fill_random(d, sizeof(d), i);
		assert_int_equal(dset_add(&set, d, &index), 0);
		assert_int_equal(index, i);
		assert_int_equal(dset_find(&set, d), i);
	}
	test_fill_random(d, sizeof(d), 50001);
	assert_int_equal(dset_find(&set, d), -1);
	assert_int_equal(set.count, 50000);
	dset_free(&set);
}

/* Encodes data, then decodes it and checks it comes back. */
static void round_trip(const uint8_t *data, uint32_t len, uint8_t codec)
{
	uint8_t record[CHUNK_RECORD_MAX], out[CHUNK_RAW_MAX];
	struct chunk_header h, parsed;
	const char *reason = NULL;

	assert_int_equal(digest_compute(data, len, h.digest), 0);
	assert_int_equal(chunk_record_encode(data, len, h.digest, record, &h), 0);
	assert_int_equal(h.codec, codec);
	assert_int_equal(h.raw_len, len);
	assert_int_equal(chunk_header_decode(record, &parsed, &reason), 0);
	assert_memory_equal(parsed.digest, h.digest, STORE_DIGEST_SIZE);
	assert_int_equal(
		chunk_record_decode(record, CHUNK_HEADER_SIZE + h.stored_len, &h, out, &reason), 0);
	assert_memory_equal(out, data, len);
}

static void test_chunk_codecs(void **state)
{
	static uint8_t page[STORE_PAGE_SIZE];

	(void)state;
	test_fill_text(page, sizeof(page), 3);
	round_trip(page, STORE_PAGE_SIZE, CHUNK_CODEC_ZSTD);
	test_fill_random(page, sizeof(page), 3);
	round_trip(page, STORE_PAGE_SIZE, CHUNK_CODEC_RAW);
	round_trip(page, 1, CHUNK_CODEC_RAW);
	test_fill_text(page, 100, 1);
	round_trip(page, 100, CHUNK_CODEC_ZSTD);
}

static void test_chunk_damage(void **state)
{
	static uint8_t page[STORE_PAGE_SIZE], record[CHUNK_RECORD_MAX], out[CHUNK_RAW_MAX];
	struct chunk_header h, other;
	const char *reason;
	size_t len;

	(void)state;
	test_fill_text(page, sizeof(page), 5);
	assert_int_equal(digest_compute(page, sizeof(page), h.digest), 0);
	assert_int_equal(chunk_record_encode(page, sizeof(page), h.digest, record, &h), 0);
	len = CHUNK_HEADER_SIZE + h.stored_len;
	/* every single flipped bit is caught: header, digest or payload */
	for (size_t pos = 0; pos < len; pos += 3) {
		record[pos] ^= 0x10;
		reason = NULL;
		assert_int_equal(chunk_record_decode(record, len, &h, out, &reason), -EBADMSG);
		assert_non_null(reason);
		record[pos] ^= 0x10;
	}
	assert_int_equal(chunk_record_decode(record, len - 1, &h, out, &reason), -EBADMSG);
	assert_int_equal(chunk_record_decode(record, 10, &h, out, &reason), -EBADMSG);
	other = h;
	other.raw_len = 100;
	assert_int_equal(chunk_record_decode(record, len, &other, out, &reason), -EBADMSG);
	/* impossible lengths in a header */
	record[12] = 0xff;
	record[13] = 0xff;
	assert_int_equal(chunk_header_decode(record, &other, &reason), -EBADMSG);
	assert_int_equal(chunk_record_encode(page, 0, h.digest, record, &h), -EINVAL);
	assert_int_equal(chunk_record_encode(page, CHUNK_RAW_MAX + 1, h.digest, record, &h),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_known_values),
		cmocka_unit_test(test_zero_pages),
		cmocka_unit_test(test_dset),
		cmocka_unit_test(test_chunk_codecs),
		cmocka_unit_test(test_chunk_damage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
