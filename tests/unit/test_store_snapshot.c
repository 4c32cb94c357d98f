/* store/: writing and reading snapshots: round trips, dedup, zero pages, blobs, locks, worksets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/wait.h>

#include "store/chunk.h"
#include "test_store_util.h"

#define PAGES 600

struct fixture {
	char dir[PATH_MAX];
	struct store *store;
	uint8_t *mem; /* PAGES pages: a mix of zero, text and noise */
};

/* Page i: zero when i % 5 == 0, text when i % 5 == 1, else noise; a repeat every 50 pages. */
static void page_make(uint8_t *page, uint64_t i, uint64_t seed)
{
	if (i % 5 == 0)
		memset(page, 0, STORE_PAGE_SIZE);
	else if (i % 5 == 1)
		test_fill_text(page, STORE_PAGE_SIZE, i);
	else if (i % 50 == 2)
		test_fill_random(page, STORE_PAGE_SIZE, 42); /* the same everywhere */
	else
		test_fill_random(page, STORE_PAGE_SIZE, seed * 100000 + i);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	test_dir_make(f->dir);
	assert_int_equal(store_open(f->dir, STORE_OPEN_WRITE, &f->store), 0);
	f->mem = malloc(PAGES * STORE_PAGE_SIZE);
	for (uint64_t i = 0; i < PAGES; i++)
		page_make(f->mem + i * STORE_PAGE_SIZE, i, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->store);
	test_dir_remove(f->dir);
	free(f->mem);
	free(f);
	return 0;
}

static int write_snapshot(struct store *store, const char *name, const uint8_t *mem, uint64_t pages,
			  struct store_write_stats *stats)
{
	static const char state_blob[] = "vcpu state goes here";
	struct store_kv kv[] = { { "function", "resize-image" } };
	struct store_commit_info info = {
		.parent = "base", .cpu_id = "test-cpu", .kv = kv, .kv_count = 1
	};
	struct store_writer *w;
	int ret = store_snapshot_begin(store, name, pages * STORE_PAGE_SIZE, &w);

	if (ret)
		return ret;
	ret = store_snapshot_put_pages(w, 0, mem, pages);
	if (!ret)
		ret = store_snapshot_put_blob(w, "state", state_blob, sizeof(state_blob));
	if (ret) {
		store_snapshot_abort(w);
		return ret;
	}
	return store_snapshot_commit(w, &info, stats);
}

static void check_snapshot(struct store *store, const char *name, const uint8_t *mem,
			   uint64_t pages)
{
	uint8_t page[STORE_PAGE_SIZE], *blob;
	struct store_snapshot *snap;
	size_t len;

	assert_int_equal(store_snapshot_open(store, name, &snap), 0);
	assert_int_equal(store_snapshot_page_count(snap), pages);
	for (uint64_t i = 0; i < pages; i++) {
		assert_int_equal(store_page_read(snap, i, page), 0);
		assert_memory_equal(page, mem + i * STORE_PAGE_SIZE, STORE_PAGE_SIZE);
		assert_int_equal(store_page_is_zero(snap, i),
				 !memcmp(page, (uint8_t[STORE_PAGE_SIZE]){ 0 }, STORE_PAGE_SIZE));
	}
	assert_int_equal(store_blob_read(snap, "state", &blob, &len), 0);
	assert_int_equal(len, sizeof("vcpu state goes here"));
	assert_string_equal((char *)blob, "vcpu state goes here");
	free(blob);
	assert_int_equal(store_blob_read(snap, "nope", &blob, &len), -ENOENT);
	assert_int_equal(store_page_read(snap, pages, page), -EINVAL);
	store_snapshot_close(snap);
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	const struct store_snapshot_info *meta;
	struct store_write_stats st;
	struct store_snapshot *snap;

	assert_int_equal(write_snapshot(f->store, "one", f->mem, PAGES, &st), 0);
	assert_int_equal(st.pages, PAGES);
	assert_int_equal(st.zero_pages, PAGES / 5);
	check_snapshot(f->store, "one", f->mem, PAGES);
	assert_int_equal(store_snapshot_open(f->store, "one", &snap), 0);
	meta = store_snapshot_meta(snap);
	assert_string_equal(meta->name, "one");
	assert_string_equal(meta->parent, "base");
	assert_string_equal(meta->cpu_id, "test-cpu");
	assert_int_equal(meta->ram_size, PAGES * STORE_PAGE_SIZE);
	assert_int_equal(meta->nonzero_pages, PAGES - PAGES / 5);
	assert_int_equal(meta->kv_count, 1);
	assert_string_equal(meta->kv[0].value, "resize-image");
	assert_true(meta->created_ns > 1600000000ULL * 1000000000ULL);
	store_snapshot_close(snap);
}

/* A blob whose 4 KiB chunks repeat (as a page map's do) reads back whole. */
static void test_blob_with_repeated_chunks(void **state)
{
	struct fixture *f = *state;
	size_t size = 6 * STORE_PAGE_SIZE + 100, len;
	uint8_t *blob = calloc(1, size), *got;
	struct store_snapshot *snap;
	struct store_writer *w;

	/* chunks: zero, zero, zero, random, zero, zero, then 100 zero bytes */
	test_fill_random(blob + 3 * STORE_PAGE_SIZE, STORE_PAGE_SIZE, 7);
	assert_int_equal(store_snapshot_begin(f->store, "blobs", 4 * STORE_PAGE_SIZE, &w), 0);
	assert_int_equal(store_snapshot_put_pages(w, 0, f->mem, 4), 0);
	assert_int_equal(store_snapshot_put_blob(w, "state", blob, size), 0);
	assert_int_equal(store_snapshot_commit(w, &(struct store_commit_info){ 0 }, NULL), 0);
	assert_int_equal(store_snapshot_open(f->store, "blobs", &snap), 0);
	assert_int_equal(store_blob_read(snap, "state", &got, &len), 0);
	assert_int_equal(len, size);
	assert_memory_equal(got, blob, size);
	free(got);
	store_snapshot_close(snap);
	free(blob);
}

static void test_locate_and_decode(void **state)
{
	struct fixture *f = *state;
	uint8_t record[CHUNK_RECORD_MAX], page[STORE_PAGE_SIZE];
	struct store_snapshot *snap;
	struct store_chunk_loc loc;

	assert_int_equal(write_snapshot(f->store, "one", f->mem, PAGES, NULL), 0);
	assert_int_equal(store_snapshot_open(f->store, "one", &snap), 0);
	assert_int_equal(store_page_locate(snap, 0, &loc), STORE_PAGE_ZERO);
	for (uint64_t i = 1; i < 5; i++) {
		assert_int_equal(store_page_locate(snap, i, &loc), 0);
		assert_true(loc.fd >= 0);
		assert_int_equal(loc.raw_len, STORE_PAGE_SIZE);
		assert_int_equal(loc.codec, i % 5 == 1 ? 1 : 0); /* text compresses, noise not */
		assert_int_equal(pread(loc.fd, record, loc.length, (off_t)loc.offset),
				 (ssize_t)loc.length);
		assert_int_equal(store_chunk_decode(&loc, record, page), 0);
		assert_memory_equal(page, f->mem + i * STORE_PAGE_SIZE, STORE_PAGE_SIZE);
		record[loc.length - 1] ^= 1;
		assert_int_equal(store_chunk_decode(&loc, record, page), -EBADMSG);
	}
	store_snapshot_close(snap);
}

static void test_dedup_across_snapshots(void **state)
{
	struct fixture *f = *state;
	struct store_write_stats first, second, third;
	uint8_t *other = malloc(PAGES * STORE_PAGE_SIZE);
	struct store_usage u;

	assert_int_equal(write_snapshot(f->store, "one", f->mem, PAGES, &first), 0);
	/* the same memory again: nothing new at all, not even the manifest */
	assert_int_equal(write_snapshot(f->store, "two", f->mem, PAGES, &second), 0);
	assert_int_equal(second.new_chunks, 0);
	assert_int_equal(second.new_bytes, 0);
	assert_int_equal(second.dup_pages, PAGES - PAGES / 5);
	/* another seed shares only the zero, text and every-50th pages */
	for (uint64_t i = 0; i < PAGES; i++)
		page_make(other + i * STORE_PAGE_SIZE, i, 2);
	assert_int_equal(write_snapshot(f->store, "three", other, PAGES, &third), 0);
	assert_true(third.dup_pages >= PAGES / 5 + PAGES / 50);
	assert_true(third.new_bytes < first.new_bytes);
	check_snapshot(f->store, "one", f->mem, PAGES);
	check_snapshot(f->store, "two", f->mem, PAGES);
	check_snapshot(f->store, "three", other, PAGES);
	assert_int_equal(store_usage_get(f->store, &u), 0);
	assert_int_equal(u.snapshots, 3);
	assert_true(u.dedup_ratio > 1.4);
	assert_true(u.compression_ratio > 1.0);
	assert_int_equal(u.dead_bytes, 0);
	free(other);
}

static void test_zero_snapshot(void **state)
{
	struct fixture *f = *state;
	uint8_t *zero = calloc(PAGES, STORE_PAGE_SIZE);
	struct store_write_stats st;
	struct store_snapshot *snap;
	struct store_writer *w;
	uint8_t page[STORE_PAGE_SIZE];

	assert_int_equal(store_snapshot_begin(f->store, "empty", 1ULL << 30, &w), 0);
	assert_int_equal(store_snapshot_put_pages(w, 1000, zero, PAGES), 0);
	assert_int_equal(store_snapshot_commit(w, NULL, &st), 0);
	assert_int_equal(st.zero_pages, PAGES);
	assert_true(st.new_chunks <= 3); /* the manifest only: header, zero map, tail */
	assert_int_equal(store_snapshot_open(f->store, "empty", &snap), 0);
	assert_int_equal(store_snapshot_page_count(snap), (1ULL << 30) / STORE_PAGE_SIZE);
	assert_true(store_page_is_zero(snap, 5));
	memset(page, 0xaa, sizeof(page));
	assert_int_equal(store_page_read(snap, 262143, page), 0);
	assert_memory_equal(page, zero, STORE_PAGE_SIZE);
	assert_string_equal(store_snapshot_meta(snap)->parent, "");
	store_snapshot_close(snap);
	free(zero);
}

static void test_writer_errors(void **state)
{
	struct fixture *f = *state;
	char packs[PATH_MAX + 8];
	struct store_snapshot *snap;
	struct store_writer *w;
	struct store *again;

	assert_int_equal(write_snapshot(f->store, "one", f->mem, PAGES, NULL), 0);
	assert_int_equal(store_snapshot_begin(f->store, "one", 4096, &w), -EEXIST);
	assert_int_equal(store_snapshot_begin(f->store, "../x", 4096, &w), -EINVAL);
	assert_int_equal(store_snapshot_begin(f->store, "", 4096, &w), -EINVAL);
	assert_int_equal(store_snapshot_begin(f->store, "odd", 4095, &w), -EINVAL);
	assert_int_equal(store_snapshot_begin(f->store, "huge", STORE_RAM_MAX * 2, &w), -EINVAL);
	assert_int_equal(store_snapshot_begin(f->store, "x", 8 * STORE_PAGE_SIZE, &w), 0);
	assert_int_equal(store_snapshot_put_pages(w, 4, f->mem, 5), -EINVAL);
	assert_int_equal(store_snapshot_put_blob(w, "bad/name", "x", 1), -EINVAL);
	assert_int_equal(store_snapshot_put_blob(w, "b", "x", 1), 0);
	assert_int_equal(store_snapshot_put_blob(w, "b", "x", 1), -EEXIST);
	struct store_commit_info bad = { .parent = "not a name" };
	assert_int_equal(store_snapshot_commit(w, &bad, NULL), -EINVAL);
	assert_int_equal(store_snapshot_open(f->store, "x", &snap), -ENOENT);
	/* abort leaves nothing behind */
	assert_int_equal(store_snapshot_begin(f->store, "y", PAGES * STORE_PAGE_SIZE, &w), 0);
	assert_int_equal(store_snapshot_put_pages(w, 0, f->mem, PAGES), 0);
	store_snapshot_abort(w);
	assert_int_equal(store_snapshot_open(f->store, "y", &snap), -ENOENT);
	snprintf(packs, sizeof(packs), "%s/packs", f->dir);
	assert_int_equal(test_count_files(packs, ".pack"), 1); /* "one" only */
	/* one open per process */
	assert_int_equal(store_open(f->dir, STORE_OPEN_READ, &again), -EBUSY);
}

static void test_read_only_and_missing(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX + 16];
	struct store_writer *w;
	struct store *ro;

	assert_int_equal(write_snapshot(f->store, "one", f->mem, PAGES, NULL), 0);
	store_close(f->store);
	assert_int_equal(store_open(f->dir, STORE_OPEN_READ, &ro), 0);
	assert_int_equal(store_snapshot_begin(ro, "two", 4096, &w), -EROFS);
	assert_int_equal(store_snapshot_remove(ro, "one"), -EROFS);
	check_snapshot(ro, "one", f->mem, PAGES);
	store_close(ro);
	snprintf(path, sizeof(path), "%s/nothing-here", f->dir);
	assert_int_equal(store_open(path, STORE_OPEN_READ, &ro), -ENOENT);
	assert_int_equal(store_open(f->dir, STORE_OPEN_WRITE, &f->store), 0);
}

/* While this process writes, another that may not wait is told the store is busy. */
static void test_second_writer(void **state)
{
	struct fixture *f = *state;
	struct store_writer *w;
	int status;
	pid_t pid;

	assert_int_equal(store_snapshot_begin(f->store, "held", 4096, &w), 0);
	pid = fork();
	if (pid == 0) {
		struct store *other;
		struct store_writer *w2;
		int ret = store_open(f->dir, STORE_OPEN_WRITE | STORE_OPEN_NOWAIT, &other);

		if (!ret)
			ret = store_snapshot_begin(other, "second", 4096, &w2);
		_exit(ret == -EBUSY ? 0 : 100 - ret);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(store_snapshot_commit(w, NULL, NULL), 0);
}

static void test_workset_and_relayout(void **state)
{
	struct fixture *f = *state;
	uint32_t order[PAGES], *back;
	struct store_chunk_loc loc;
	struct store_snapshot *snap;
	struct store_snapshot_info info;
	uint64_t last_offset = 0, pack = 0;
	size_t count;

	assert_int_equal(write_snapshot(f->store, "one", f->mem, PAGES, NULL), 0);
	assert_int_equal(store_workset_get(f->store, "one", &back, &count), -ENOENT);
	/* the odd noise pages, last first */
	count = 0;
	for (uint32_t i = PAGES - 1; i > 0; i--) {
		if (i % 5 > 1 && i % 50 != 2)
			order[count++] = i;
	}
	assert_int_equal(store_workset_put(f->store, "one", order, count), 0);
	assert_int_equal(store_workset_get(f->store, "one", &back, &count), 0);
	assert_memory_equal(back, order, count * sizeof(*order));
	free(back);
	assert_int_equal(store_workset_put(f->store, "one", (uint32_t[]){ PAGES }, 1), -EINVAL);
	assert_int_equal(store_workset_put(f->store, "nope", order, 1), -ENOENT);
	assert_int_equal(store_snapshot_info(f->store, "one", &info), 0);
	assert_int_equal(info.workset_pages, count);
	assert_int_equal(store_snapshot_relayout(f->store, "one"), 0);
	/* now the working set's chunks lie in one new pack, in its order */
	assert_int_equal(store_snapshot_open(f->store, "one", &snap), 0);
	for (size_t i = 0; i < count; i++) {
		assert_int_equal(store_page_locate(snap, order[i], &loc), 0);
		if (i == 0)
			pack = loc.pack;
		assert_int_equal(loc.pack, pack);
		assert_true(loc.offset > last_offset);
		last_offset = loc.offset;
	}
	store_snapshot_close(snap);
	assert_true(pack > 1);
	check_snapshot(f->store, "one", f->mem, PAGES);
}

/*
 * A reader holds a snapshot open while its chunks are moved by gc and the
 * packs it read from are deleted: it goes on reading the right bytes.
 */
static void test_reader_survives_gc(void **state)
{
	struct fixture *f = *state;
	uint8_t *other = malloc(PAGES * STORE_PAGE_SIZE), page[STORE_PAGE_SIZE];
	struct store_snapshot *snap;
	struct store_writer *w;

	/* one pack holds both snapshots' pages, interleaved */
	for (uint64_t i = 0; i < PAGES; i++)
		page_make(other + i * STORE_PAGE_SIZE, i, 7);
	assert_int_equal(store_snapshot_begin(f->store, "keep", PAGES * STORE_PAGE_SIZE, &w), 0);
	assert_int_equal(store_snapshot_put_pages(w, 0, f->mem, PAGES), 0);
	assert_int_equal(store_snapshot_put_blob(w, "state", "vcpu state goes here", 21), 0);
	assert_int_equal(store_snapshot_commit(w, NULL, NULL), 0);
	assert_int_equal(write_snapshot(f->store, "drop", other, PAGES, NULL), 0);
	assert_int_equal(store_snapshot_open(f->store, "keep", &snap), 0);
	/* first half read (its pack is open), second half not looked up yet */
	for (uint64_t i = 0; i < PAGES / 2; i++)
		assert_int_equal(store_page_read(snap, i, page), 0);
	assert_int_equal(store_snapshot_remove(f->store, "drop"), 0);
	assert_int_equal(store_gc(f->store, NULL), 0);
	assert_int_equal(store_snapshot_remove(f->store, "keep"), 0);
	assert_int_equal(write_snapshot(f->store, "keep2", f->mem, PAGES, NULL), 0);
	for (uint64_t i = 0; i < PAGES; i++) {
		assert_int_equal(store_page_read(snap, i, page), 0);
		assert_memory_equal(page, f->mem + i * STORE_PAGE_SIZE, STORE_PAGE_SIZE);
	}
	store_snapshot_close(snap);
	free(other);
}

/*
 * Sealed for a jail: every page still reads through the packs opened ahead,
 * even with the store's directory gone from its path; nothing else works.
 */
static void test_sealed(void **state)
{
	struct fixture *f = *state;
	char moved[PATH_MAX + 8];
	uint8_t page[STORE_PAGE_SIZE];
	struct store_snapshot *snap, *other;
	uint32_t *pages;
	size_t count;

	assert_int_equal(write_snapshot(f->store, "one", f->mem, PAGES, NULL), 0);
	assert_int_equal(store_snapshot_open(f->store, "one", &snap), 0);
	assert_int_equal(store_snapshot_seal(snap), 0);
	snprintf(moved, sizeof(moved), "%s.moved", f->dir);
	assert_int_equal(rename(f->dir, moved), 0);
	for (uint64_t i = PAGES; i-- > 0;) {
		assert_int_equal(store_page_read(snap, i, page), 0);
		assert_memory_equal(page, f->mem + i * STORE_PAGE_SIZE, STORE_PAGE_SIZE);
	}
	assert_int_equal(store_snapshot_open(f->store, "one", &other), -EPERM);
	assert_int_equal(store_workset_get(f->store, "one", &pages, &count), -EPERM);
	assert_int_equal(rename(moved, f->dir), 0);
	store_snapshot_close(snap);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_round_trip),
		T(test_locate_and_decode),
		T(test_dedup_across_snapshots),
		T(test_zero_snapshot),
		T(test_writer_errors),
		T(test_read_only_and_missing),
		T(test_second_writer),
		T(test_workset_and_relayout),
		T(test_reader_survives_gc),
		T(test_blob_with_repeated_chunks),
		T(test_sealed),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
