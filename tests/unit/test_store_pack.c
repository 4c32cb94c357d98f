/* store/: the local-directory backend, pack writing and pack reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>

#include "store/backend.h"
#include "store/chunk.h"
#include "store/digest.h"
#include "store/pack.h"
#include "test_store_util.h"

struct fixture {
	char dir[PATH_MAX];
	struct backend *backend;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	test_dir_make(f->dir);
	strcat(f->dir, "/packs");
	assert_int_equal(backend_dir_create(f->dir, true, &f->backend), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	f->backend->ops->destroy(f->backend);
	*strrchr(f->dir, '/') = '\0';
	test_dir_remove(f->dir);
	free(f);
	return 0;
}

static int count_names(void *opaque, const char *name)
{
	(void)name;
	(*(int *)opaque)++;
	return 0;
}

static void test_backend_objects(void **state)
{
	struct fixture *f = *state;
	const struct backend_ops *ops = f->backend->ops;
	struct backend_upload *up;
	struct backend_object *obj;
	char buf[16];
	uint64_t size;
	int names = 0;

	/* an aborted upload leaves nothing; a committed one is whole */
	assert_int_equal(ops->upload_begin(f->backend, "gone", &up), 0);
	assert_int_equal(ops->upload_append(up, "xyz", 3), 0);
	ops->upload_abort(up);
	assert_int_equal(ops->object_open(f->backend, "gone", &obj), -ENOENT);
	assert_int_equal(ops->upload_begin(f->backend, "obj", &up), 0);
	assert_int_equal(ops->upload_append(up, "hello ", 6), 0);
	assert_int_equal(ops->object_open(f->backend, "obj", &obj), -ENOENT); /* not yet */
	assert_int_equal(ops->upload_append(up, "world", 5), 0);
	assert_int_equal(ops->upload_commit(up), 0);
	assert_int_equal(ops->list(f->backend, count_names, &names), 0);
	assert_int_equal(names, 1);
	assert_int_equal(ops->object_open(f->backend, "obj", &obj), 0);
	assert_true(ops->object_fd(obj) >= 0);
	assert_int_equal(ops->object_size(obj, &size), 0);
	assert_int_equal(size, 11);
	assert_int_equal(ops->object_read(obj, 6, buf, 5), 0);
	assert_memory_equal(buf, "world", 5);
	assert_int_equal(ops->object_read(obj, 8, buf, 5), -EBADMSG); /* past the end */
	/* a deleted object stays readable through an open handle */
	assert_int_equal(ops->remove(f->backend, "obj"), 0);
	assert_int_equal(ops->object_read(obj, 0, buf, 5), 0);
	assert_memory_equal(buf, "hello", 5);
	ops->object_close(obj);
	assert_int_equal(ops->remove(f->backend, "obj"), -ENOENT);
	assert_int_equal(ops->upload_begin(f->backend, "../escape", &up), -EINVAL);
	assert_int_equal(ops->upload_begin(f->backend, ".hidden", &up), -EINVAL);
}

static void test_pack_names(void **state)
{
	char name[PACK_NAME_SIZE];
	uint64_t id;

	(void)state;
	pack_name(0x1234abcdULL, name);
	assert_string_equal(name, "000000001234abcd.pack");
	assert_int_equal(pack_name_parse(name, &id), 0);
	assert_int_equal(id, 0x1234abcdULL);
	assert_int_equal(pack_name_parse("000000001234ABCD.pack", &id), -EINVAL);
	assert_int_equal(pack_name_parse("1234.pack", &id), -EINVAL);
	assert_int_equal(pack_name_parse(".tmp-000000001234abcd.pack-1", &id), -EINVAL);
}

/* Mostly noise, so that packs fill up; every 16th page compresses. */
static void page_make(uint8_t *page, uint32_t i)
{
	if (i % 16)
		test_fill_random(page, STORE_PAGE_SIZE, i);
	else
		test_fill_text(page, STORE_PAGE_SIZE, i);
}

/* Writes count page records through a pack writer, remembering where each went. */
static void pack_fill(struct pack_writer *w, uint32_t count, struct chunk_entry *entries,
		      uint8_t (*digests)[STORE_DIGEST_SIZE])
{
	static uint8_t page[STORE_PAGE_SIZE], record[CHUNK_RECORD_MAX];
	struct chunk_header h;

	for (uint32_t i = 0; i < count; i++) {
		page_make(page, i);
		assert_int_equal(digest_compute(page, sizeof(page), digests[i]), 0);
		assert_int_equal(chunk_record_encode(page, sizeof(page), digests[i], record, &h),
				 0);
		entries[i] = (struct chunk_entry){ .stored_len = h.stored_len,
						   .raw_len = h.raw_len,
						   .codec = h.codec };
		assert_int_equal(pack_writer_append(w, record, CHUNK_HEADER_SIZE + h.stored_len,
						    &entries[i].pack, &entries[i].offset),
				 0);
	}
}

static void test_pack_write_read(void **state)
{
	struct fixture *f = *state;
	/* enough random pages to roll over into a second pack */
	uint32_t count = (uint32_t)(PACK_TARGET_SIZE / CHUNK_RECORD_MAX * 5 / 4);
	struct chunk_entry *entries = calloc(count, sizeof(*entries));
	uint8_t(*digests)[STORE_DIGEST_SIZE] = calloc(count, STORE_DIGEST_SIZE);
	uint8_t page[STORE_PAGE_SIZE], want[STORE_PAGE_SIZE];
	const struct pack_written *packs;
	struct pack_cache cache;
	struct pack_writer *w;
	const char *reason;
	size_t npacks;

	assert_int_equal(pack_writer_create(f->backend, 7, &w), 0);
	pack_fill(w, count, entries, digests);
	assert_int_equal(test_count_files(f->dir, ".pack"), 0); /* not visible before commit */
	assert_int_equal(pack_writer_commit(w), 0);
	packs = pack_writer_packs(w, &npacks);
	assert_int_equal(npacks, 2);
	assert_int_equal(packs[0].id, 7);
	assert_int_equal(packs[1].id, 8);
	assert_int_equal(pack_writer_next_id(w), 9);
	assert_int_equal(packs[0].entry.chunks + packs[1].entry.chunks, count);
	assert_true(packs[0].entry.size <= PACK_TARGET_SIZE);
	assert_int_equal(test_count_files(f->dir, ".pack"), 2);
	pack_writer_free(w);

	pack_cache_init(&cache, f->backend);
	for (uint32_t i = 0; i < count; i += 97) {
		page_make(want, i);
		assert_int_equal(
			pack_chunk_read(&cache, digests[i], &entries[i], NULL, page, &reason), 0);
		assert_memory_equal(page, want, sizeof(page));
	}
	/* the wrong digest, an offset inside another record, a pack that is not there */
	assert_int_equal(pack_chunk_read(&cache, digests[1], &entries[3], NULL, page, &reason),
			 -EBADMSG);
	assert_string_equal(reason, "the record is not the chunk the index names");
	entries[2].offset += 8;
	assert_int_equal(pack_chunk_read(&cache, digests[2], &entries[2], NULL, page, &reason),
			 -EBADMSG);
	entries[2].pack = 99;
	assert_int_equal(pack_chunk_read(&cache, digests[2], &entries[2], NULL, page, &reason),
			 -ENOENT);
	assert_string_equal(reason, "its pack is missing");
	pack_cache_free(&cache);
	free(entries);
	free(digests);
}

static void test_pack_discard_and_bad_header(void **state)
{
	struct fixture *f = *state;
	struct chunk_entry entries[4];
	uint8_t digests[4][STORE_DIGEST_SIZE];
	struct backend_object *obj;
	struct pack_cache cache;
	struct pack_writer *w;
	char from[PATH_MAX + 32], to[PATH_MAX + 32];

	/* discard removes committed packs as well as unfinished ones */
	assert_int_equal(pack_writer_create(f->backend, 1, &w), 0);
	pack_fill(w, 4, entries, digests);
	assert_int_equal(pack_writer_commit(w), 0);
	assert_int_equal(test_count_files(f->dir, ".pack"), 1);
	pack_writer_discard(w);
	assert_int_equal(test_count_files(f->dir, ".pack"), 0);

	/* a pack renamed to another id is refused by its header */
	assert_int_equal(pack_writer_create(f->backend, 1, &w), 0);
	pack_fill(w, 4, entries, digests);
	assert_int_equal(pack_writer_commit(w), 0);
	pack_writer_free(w);
	snprintf(from, sizeof(from), "%s/0000000000000001.pack", f->dir);
	snprintf(to, sizeof(to), "%s/0000000000000002.pack", f->dir);
	assert_int_equal(rename(from, to), 0);
	pack_cache_init(&cache, f->backend);
	assert_int_equal(pack_cache_get(&cache, 2, &obj), -EBADMSG);
	assert_int_equal(pack_cache_get(&cache, 1, &obj), -ENOENT);
	pack_cache_free(&cache);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_backend_objects, setup, teardown),
		cmocka_unit_test(test_pack_names),
		cmocka_unit_test_setup_teardown(test_pack_write_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_discard_and_bad_header, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
