/* store/: export to one file and import, checked whole; damaged files add nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <sys/wait.h>

#include "test_store_util.h"

#define PAGES 300

struct fixture {
	char dir[PATH_MAX];
	char src[PATH_MAX + 8], dst[PATH_MAX + 8], file[PATH_MAX + 16];
	struct store *store;
	uint8_t *mem;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_writer *w;

	test_dir_make(f->dir);
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	snprintf(f->dst, sizeof(f->dst), "%s/dst", f->dir);
	snprintf(f->file, sizeof(f->file), "%s/snap.export", f->dir);
	f->mem = calloc(PAGES, STORE_PAGE_SIZE);
	for (uint64_t i = 0; i < PAGES; i++) {
		if (i % 3 == 1)
			test_fill_random(f->mem + i * STORE_PAGE_SIZE, STORE_PAGE_SIZE, i);
		else if (i % 3 == 2)
			test_fill_text(f->mem + i * STORE_PAGE_SIZE, STORE_PAGE_SIZE, i);
	}
	assert_int_equal(store_open(f->src, STORE_OPEN_WRITE, &f->store), 0);
	assert_int_equal(store_snapshot_begin(f->store, "fn", PAGES * STORE_PAGE_SIZE, &w), 0);
	assert_int_equal(store_snapshot_put_pages(w, 0, f->mem, PAGES), 0);
	assert_int_equal(store_snapshot_put_blob(w, "state", f->mem + STORE_PAGE_SIZE, 9000), 0);
	assert_int_equal(
		store_snapshot_commit(w, &(struct store_commit_info){ .cpu_id = "cpu" }, NULL), 0);
	assert_int_equal(store_export(f->store, "fn", f->file), 0);
	store_close(f->store);
	/* the importing store already holds some of the chunks */
	assert_int_equal(store_open(f->dst, STORE_OPEN_WRITE, &f->store), 0);
	assert_int_equal(store_snapshot_begin(f->store, "other", 10 * STORE_PAGE_SIZE, &w), 0);
	assert_int_equal(store_snapshot_put_pages(w, 0, f->mem, 10), 0);
	assert_int_equal(store_snapshot_commit(w, NULL, NULL), 0);
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

static void check(struct store *store, const char *name, const uint8_t *mem)
{
	uint8_t page[STORE_PAGE_SIZE], *blob;
	struct store_snapshot *snap;
	size_t len;

	assert_int_equal(store_snapshot_open(store, name, &snap), 0);
	assert_string_equal(store_snapshot_meta(snap)->cpu_id, "cpu");
	for (uint64_t i = 0; i < PAGES; i++) {
		assert_int_equal(store_page_read(snap, i, page), 0);
		assert_memory_equal(page, mem + i * STORE_PAGE_SIZE, STORE_PAGE_SIZE);
	}
	assert_int_equal(store_blob_read(snap, "state", &blob, &len), 0);
	assert_int_equal(len, 9000);
	assert_memory_equal(blob, mem + STORE_PAGE_SIZE, 9000);
	free(blob);
	store_snapshot_close(snap);
}

static void test_export_import(void **state)
{
	struct fixture *f = *state;
	struct store_verify_report report = { 0 };
	char name[STORE_NAME_MAX + 1];

	assert_int_equal(store_import(f->store, f->file, NULL, name), 0);
	assert_string_equal(name, "fn");
	check(f->store, "fn", f->mem);
	assert_int_equal(store_import(f->store, f->file, NULL, name), -EEXIST);
	assert_int_equal(store_import(f->store, f->file, "fn-copy", name), 0);
	assert_string_equal(name, "fn-copy");
	check(f->store, "fn-copy", f->mem);
	assert_int_equal(store_verify(f->store, NULL, &report), 0);
	assert_int_equal(store_import(f->store, "/nonexistent/file", NULL, name), -ENOENT);
	assert_int_equal(store_export(f->store, "nope", f->file), -ENOENT);
}

/* Imports a copy of the export changed by fn; it must fail and add nothing. */
static void import_refused(struct fixture *f, size_t keep, long flip_at)
{
	char bad[PATH_MAX + 32], command[3 * PATH_MAX];
	struct store_usage before, after;
	struct store_snapshot *snap;
	FILE *file;

	snprintf(bad, sizeof(bad), "%s/bad.export", f->dir);
	snprintf(command, sizeof(command), "head -c %zu '%s' > '%s'", keep, f->file, bad);
	assert_int_equal(system(command), 0);
	if (flip_at >= 0) {
		int byte;

		file = fopen(bad, "r+");
		fseek(file, flip_at, SEEK_SET);
		byte = fgetc(file);
		fseek(file, flip_at, SEEK_SET);
		fputc(byte ^ 0x04, file);
		fclose(file);
	}
	assert_int_equal(store_usage_get(f->store, &before), 0);
	assert_int_equal(store_import(f->store, bad, NULL, NULL), -EBADMSG);
	assert_int_equal(store_usage_get(f->store, &after), 0);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(store_snapshot_open(f->store, "fn", &snap), -ENOENT);
}

static void test_damaged_exports(void **state)
{
	struct fixture *f = *state;
	long size;
	FILE *file = fopen(f->file, "r");
	char packs[PATH_MAX + 16];

	fseek(file, 0, SEEK_END);
	size = ftell(file);
	fclose(file);
	snprintf(packs, sizeof(packs), "%s/packs", f->dst);
	for (long keep = 0; keep < size; keep += size / 37 + 1)
		import_refused(f, (size_t)keep, -1);
	import_refused(f, (size_t)size - 1, -1);
	for (long at = 0; at < size; at += size / 23 + 1)
		import_refused(f, (size_t)size, at);
	import_refused(f, (size_t)size, size - 1); /* the trailer's digest itself */
	assert_int_equal(test_count_files(packs, ".pack"), 1);
	assert_int_equal(test_count_files(packs, "-*[0-9]"), 0); /* no temporary files */
	assert_int_equal(store_import(f->store, f->file, NULL, NULL), 0);
	check(f->store, "fn", f->mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_export_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_exports, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
