/* store/: snapshot records and manifests, including damaged ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>

#include "store/manifest.h"
#include "test_store_util.h"

static void record_sample(struct snap_record *r, uint8_t (*digests)[STORE_DIGEST_SIZE])
{
	memset(r, 0, sizeof(*r));
	r->info.created_ns = 1700000000123456789ULL;
	r->info.ram_size = 64 << 20;
	r->info.nonzero_pages = 1234;
	r->info.blob_bytes = 5000;
	r->info.chunks = 1300;
	r->info.stored_bytes = 4000000;
	strcpy(r->info.parent, "base-1");
	strcpy(r->info.cpu_id, "GenuineIntel 6/143/8 sha_ni avx512f");
	r->info.kv_count = 2;
	strcpy(r->info.kv[0].key, "function");
	strcpy(r->info.kv[0].value, "hello");
	strcpy(r->info.kv[1].key, "empty");
	r->manifest_len = 3 * STORE_PAGE_SIZE - 10;
	r->manifest_chunks = 3;
	test_fill_random(digests, 3 * STORE_DIGEST_SIZE, 9);
	r->manifest_digests = digests;
}

static void test_record_round_trip(void **state)
{
	uint8_t digests[3][STORE_DIGEST_SIZE], *buf;
	struct snap_record r, back;
	size_t len;

	(void)state;
	record_sample(&r, digests);
	assert_int_equal(snap_record_encode(&r, &buf, &len), 0);
	assert_int_equal(snap_record_decode(buf, len, &back), 0);
	assert_int_equal(back.info.created_ns, r.info.created_ns);
	assert_int_equal(back.info.ram_size, r.info.ram_size);
	assert_int_equal(back.info.nonzero_pages, 1234);
	assert_string_equal(back.info.parent, "base-1");
	assert_string_equal(back.info.cpu_id, r.info.cpu_id);
	assert_int_equal(back.info.kv_count, 2);
	assert_string_equal(back.info.kv[0].value, "hello");
	assert_string_equal(back.info.kv[1].value, "");
	assert_int_equal(back.manifest_chunks, 3);
	assert_memory_equal(back.manifest_digests, digests, sizeof(digests));
	snap_record_free(&back);
	free(buf);
}

static void test_record_damage(void **state)
{
	uint8_t digests[3][STORE_DIGEST_SIZE], *buf;
	struct snap_record r, back;
	size_t len;

	(void)state;
	record_sample(&r, digests);
	assert_int_equal(snap_record_encode(&r, &buf, &len), 0);
	/* the checksum catches any flipped byte; every cut is refused */
	for (size_t pos = 0; pos < len; pos++) {
		buf[pos] ^= 0x01;
		assert_int_equal(snap_record_decode(buf, len, &back), -EUCLEAN);
		buf[pos] ^= 0x01;
	}
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(snap_record_decode(buf, cut, &back), -EUCLEAN);
	free(buf);
	/* well-checksummed nonsense is refused too */
	r.info.ram_size = 4097;
	assert_int_equal(snap_record_encode(&r, &buf, &len), 0);
	assert_int_equal(snap_record_decode(buf, len, &back), -EUCLEAN);
	free(buf);
	r.info.ram_size = 4096;
	r.manifest_chunks = 2; /* fewer than the length needs */
	assert_int_equal(snap_record_encode(&r, &buf, &len), 0);
	assert_int_equal(snap_record_decode(buf, len, &back), -EUCLEAN);
	free(buf);
}

/* A manifest of 10 pages: zero, three distinct chunks, one repeated; two blobs. */
static void manifest_sample(struct manifest *m, uint32_t *map, uint8_t (*unique)[STORE_DIGEST_SIZE],
			    uint8_t (*blob)[STORE_DIGEST_SIZE])
{
	static const uint32_t pages[10] = { 0, 1, 2, 0, 3, 1, 1, 0, 0, 2 };

	memset(m, 0, sizeof(*m));
	memcpy(map, pages, sizeof(pages));
	test_fill_random(unique, 3 * STORE_DIGEST_SIZE, 1);
	test_fill_random(blob, 2 * STORE_DIGEST_SIZE, 2);
	m->page_count = 10;
	m->page_map = map;
	m->unique_count = 3;
	m->unique = (const void *)unique;
	m->blob_count = 2;
	strcpy(m->blobs[0].name, "state");
	m->blobs[0].len = 5000;
	m->blobs[0].chunk_count = 2;
	m->blobs[0].digests = (const void *)blob;
	strcpy(m->blobs[1].name, "empty");
}

static void test_manifest_round_trip(void **state)
{
	uint8_t unique[3][STORE_DIGEST_SIZE], blob[2][STORE_DIGEST_SIZE], *buf;
	struct manifest m, back;
	uint32_t map[10];
	size_t len;

	(void)state;
	manifest_sample(&m, map, unique, blob);
	assert_int_equal(manifest_encode(&m, &buf, &len), 0);
	assert_int_equal(manifest_decode(buf, len, 10, &back), 0);
	assert_int_equal(back.page_count, 10);
	assert_memory_equal(back.page_map, map, sizeof(map));
	assert_int_equal(back.unique_count, 3);
	assert_memory_equal(back.unique, unique, sizeof(unique));
	assert_int_equal(back.blob_count, 2);
	assert_non_null(manifest_blob_find(&back, "state"));
	assert_int_equal(manifest_blob_find(&back, "state")->len, 5000);
	assert_memory_equal(manifest_blob_find(&back, "state")->digests, blob, sizeof(blob));
	assert_int_equal(manifest_blob_find(&back, "empty")->chunk_count, 0);
	assert_null(manifest_blob_find(&back, "nope"));
	manifest_free(&back);
}

/* Decodes a copy of buf with one change; returns the result. */
static int decode_changed(const uint8_t *buf, size_t len, size_t pos, uint8_t value, uint64_t pages)
{
	uint8_t *copy = malloc(len);
	struct manifest m;
	int ret;

	memcpy(copy, buf, len);
	copy[pos] = value;
	ret = manifest_decode(copy, len, pages, &m);
	manifest_free(&m);
	return ret;
}

static void test_manifest_damage(void **state)
{
	uint8_t unique[3][STORE_DIGEST_SIZE], blob[2][STORE_DIGEST_SIZE], *buf, *copy;
	struct manifest m, back;
	uint32_t map[10];
	size_t len;

	(void)state;
	manifest_sample(&m, map, unique, blob);
	assert_int_equal(manifest_encode(&m, &buf, &len), 0);
	/* the wrong page count, a page pointing past the table, bad magic */
	copy = malloc(len);
	memcpy(copy, buf, len);
	assert_int_equal(manifest_decode(copy, len, 11, &back), -EBADMSG);
	manifest_free(&back);
	assert_int_equal(decode_changed(buf, len, 32 + 4, 4, 10), -EBADMSG);
	assert_int_equal(decode_changed(buf, len, 0, 'X', 10), -EBADMSG);
	/* no cut, and no value of any byte, makes the decoder misbehave */
	for (size_t cut = 0; cut < len; cut++) {
		copy = malloc(cut ? cut : 1);
		memcpy(copy, buf, cut);
		assert_int_equal(manifest_decode(copy, cut, 10, &back), -EBADMSG);
		manifest_free(&back);
	}
	for (size_t pos = 0; pos < len; pos++) {
		decode_changed(buf, len, pos, 0xff, 10);
		decode_changed(buf, len, pos, 0x00, 10);
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_record_damage),
		cmocka_unit_test(test_manifest_round_trip),
		cmocka_unit_test(test_manifest_damage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
