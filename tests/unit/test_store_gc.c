/* store/: rm, gc, orphan packs, info and usage figures, verify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>

#include "store/internal.h"
#include "test_store_util.h"

#define PAGES 400

struct fixture {
	char dir[PATH_MAX];
	char packs[PATH_MAX + 8];
	struct store *store;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	test_dir_make(f->dir);
	snprintf(f->packs, sizeof(f->packs), "%s/packs", f->dir);
	assert_int_equal(store_open(f->dir, STORE_OPEN_WRITE, &f->store), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->store);
	test_dir_remove(f->dir);
	free(f);
	return 0;
}

/* Memory of snapshot seed: even pages shared by every seed, odd pages its own. */
static uint8_t *memory_make(uint64_t seed)
{
	uint8_t *mem = malloc(PAGES * STORE_PAGE_SIZE);

	for (uint64_t i = 0; i < PAGES; i++)
		test_fill_random(mem + i * STORE_PAGE_SIZE, STORE_PAGE_SIZE,
				 i % 2 ? seed << 32 | i : i);
	return mem;
}

static void write_seed(struct store *store, const char *name, uint64_t seed)
{
	uint8_t *mem = memory_make(seed);
	struct store_writer *w;

	assert_int_equal(store_snapshot_begin(store, name, PAGES * STORE_PAGE_SIZE, &w), 0);
	assert_int_equal(store_snapshot_put_pages(w, 0, mem, PAGES), 0);
	assert_int_equal(store_snapshot_commit(w, NULL, NULL), 0);
	free(mem);
}

static void check_seed(struct store *store, const char *name, uint64_t seed)
{
	uint8_t *mem = memory_make(seed), page[STORE_PAGE_SIZE];
	struct store_snapshot *snap;

	assert_int_equal(store_snapshot_open(store, name, &snap), 0);
	for (uint64_t i = 0; i < PAGES; i++) {
		assert_int_equal(store_page_read(snap, i, page), 0);
		assert_memory_equal(page, mem + i * STORE_PAGE_SIZE, STORE_PAGE_SIZE);
	}
	store_snapshot_close(snap);
	free(mem);
}

static void test_info_and_usage(void **state)
{
	struct fixture *f = *state;
	struct store_snapshot_info info;
	struct store_usage u;

	write_seed(f->store, "a", 1);
	write_seed(f->store, "b", 2);
	assert_int_equal(store_snapshot_info(f->store, "a", &info), 0);
	assert_int_equal(info.ram_size, PAGES * STORE_PAGE_SIZE);
	assert_int_equal(info.nonzero_pages, PAGES);
	/* its odd pages and its manifest are its own; the even pages are shared */
	assert_true(info.unique_bytes >= PAGES / 2 * STORE_PAGE_SIZE);
	assert_true(info.unique_bytes < info.stored_bytes);
	assert_true(info.stored_bytes >= PAGES * STORE_PAGE_SIZE);
	assert_int_equal(store_snapshot_info(f->store, "nope", &info), -ENOENT);
	assert_int_equal(store_usage_get(f->store, &u), 0);
	assert_int_equal(u.snapshots, 2);
	assert_int_equal(u.logical_bytes, 2 * PAGES * STORE_PAGE_SIZE);
	assert_true(u.dedup_ratio > 1.3 && u.dedup_ratio < 1.34);
	assert_true(u.compression_ratio > 0.98 && u.compression_ratio <= 1.0); /* noise */
	assert_int_equal(u.packs, 2);
}

static void test_rm_and_gc(void **state)
{
	struct fixture *f = *state;
	struct store_gc_stats gs;
	struct store_usage before, after;

	write_seed(f->store, "a", 1);
	write_seed(f->store, "b", 2);
	write_seed(f->store, "c", 3);
	/* nothing to collect yet */
	assert_int_equal(store_gc(f->store, &gs), 0);
	assert_int_equal(gs.chunks_freed, 0);
	assert_int_equal(gs.packs_rewritten, 0);
	assert_int_equal(store_usage_get(f->store, &before), 0);
	assert_int_equal(store_snapshot_remove(f->store, "a"), 0);
	assert_int_equal(store_snapshot_remove(f->store, "a"), -ENOENT);
	/* removed but not collected: its bytes are dead, nobody can open it */
	assert_int_equal(store_usage_get(f->store, &after), 0);
	assert_true(after.dead_bytes >= PAGES / 2 * STORE_PAGE_SIZE);
	assert_int_equal(after.pack_bytes, before.pack_bytes);
	assert_int_equal(store_gc(f->store, &gs), 0);
	assert_true(gs.chunks_freed >= PAGES / 2);
	assert_int_equal(gs.packs_rewritten, 1); /* a's pack also held the shared pages */
	assert_true(gs.chunks_moved >= PAGES / 2);
	assert_true(gs.bytes_after < gs.bytes_before);
	assert_int_equal(store_usage_get(f->store, &after), 0);
	assert_int_equal(after.dead_bytes, 0);
	assert_true(after.pack_bytes < before.pack_bytes);
	check_seed(f->store, "b", 2);
	check_seed(f->store, "c", 3);
	/* removing everything and collecting leaves no pack at all */
	assert_int_equal(store_snapshot_remove(f->store, "b"), 0);
	assert_int_equal(store_snapshot_remove(f->store, "c"), 0);
	assert_int_equal(store_gc(f->store, &gs), 0);
	assert_int_equal(store_usage_get(f->store, &after), 0);
	assert_int_equal(after.packs, 0);
	assert_int_equal(after.chunks, 0);
	assert_int_equal(test_count_files(f->packs, ".pack"), 0);
}

static void test_gc_sweeps_orphans(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX + 64];
	struct store_gc_stats gs;
	FILE *file;

	write_seed(f->store, "a", 1);
	/* what crashed writers leave: an unreferenced pack and a temporary file */
	snprintf(path, sizeof(path), "%s/packs/00000000000000ff.pack", f->dir);
	file = fopen(path, "w");
	fputs("left over", file);
	fclose(file);
	snprintf(path, sizeof(path), "%s/packs/.tmp-0000000000000100.pack-99999", f->dir);
	file = fopen(path, "w");
	fclose(file);
	snprintf(path, sizeof(path), "%s/packs/README", f->dir);
	file = fopen(path, "w");
	fclose(file);
	assert_int_equal(store_gc(f->store, &gs), 0);
	assert_int_equal(gs.orphans_removed, 2);
	assert_int_equal(test_count_files(f->packs, "pack"), 1);
	assert_int_equal(test_count_files(f->packs, "README"), 1); /* not ours: left alone */
	check_seed(f->store, "a", 1);
}

struct damage_log {
	int chunks, snapshots;
	char snapshot[STORE_NAME_MAX + 1];
	char reason[128];
};

static void on_chunk(void *opaque, const struct store_damage *d)
{
	struct damage_log *log = opaque;

	log->chunks++;
	snprintf(log->reason, sizeof(log->reason), "%s", d->reason);
}

static void on_snapshot(void *opaque, const char *name, const char *reason)
{
	struct damage_log *log = opaque;

	(void)reason;
	log->snapshots++;
	snprintf(log->snapshot, sizeof(log->snapshot), "%s", name);
}

static void test_verify(void **state)
{
	struct fixture *f = *state;
	struct damage_log log = { 0 };
	struct store_verify_report report = { .chunk_damaged = on_chunk,
					      .snapshot_damaged = on_snapshot,
					      .opaque = &log };
	char path[PATH_MAX + 64];
	uint8_t byte;
	FILE *pack;

	write_seed(f->store, "a", 1);
	write_seed(f->store, "b", 2);
	assert_int_equal(store_verify(f->store, NULL, &report), 0);
	/* a's pages, b's own pages, and two manifests of four chunks */
	assert_int_equal(report.chunks_checked, PAGES + PAGES / 2 + 8);
	assert_int_equal(store_verify(f->store, "b", &report), 0);
	assert_int_equal(store_verify(f->store, "nope", &report), -ENOENT);
	/* flip a byte in the last page record of b's pack: only b's own page */
	snprintf(path, sizeof(path), "%s/packs/0000000000000002.pack", f->dir);
	pack = fopen(path, "r+");
	fseek(pack, -100, SEEK_END);
	byte = (uint8_t)fgetc(pack);
	fseek(pack, -100, SEEK_END);
	fputc(byte ^ 0x20, pack);
	fclose(pack);
	assert_int_equal(store_verify(f->store, NULL, &report), -EBADMSG);
	assert_int_equal(report.damaged_chunks, 1);
	assert_int_equal(report.damaged_snapshots, 1);
	assert_int_equal(log.chunks, 1);
	assert_string_equal(log.snapshot, "b");
	assert_int_equal(store_verify(f->store, "a", &report), 0);
	assert_int_equal(store_verify(f->store, "b", &report), -EBADMSG);
	check_seed(f->store, "a", 1);
	/* gc keeps a pack it cannot copy whole, and what it could not move still reads */
	assert_int_equal(store_snapshot_remove(f->store, "a"), 0);
	assert_int_equal(store_gc(f->store, NULL), 0);
	assert_int_equal(store_verify(f->store, NULL, &report), -EBADMSG);
	assert_int_equal(report.damaged_chunks, 1);
}

/* Adds one to the reference count of the first chunk in the index (a leak). */
static int leak_one(void *opaque, const uint8_t *digest, const struct chunk_entry *e)
{
	struct chunk_entry copy = *e;
	struct store *s = opaque;
	MDB_txn *txn;

	copy.refs++;
	assert_int_equal(index_txn_begin(&s->index, true, &txn), 0);
	assert_int_equal(index_chunk_put(&s->index, txn, digest, &copy), 0);
	assert_int_equal(index_txn_commit(&s->index, txn), 0);
	return 1;
}

static void test_gc_repairs_refcounts(void **state)
{
	struct fixture *f = *state;
	struct store_verify_report report = { 0 };
	struct store_gc_stats gs;
	MDB_txn *txn;

	write_seed(f->store, "a", 1);
	assert_int_equal(index_txn_begin(&f->store->index, false, &txn), 0);
	index_chunk_foreach(&f->store->index, txn, leak_one, f->store);
	mdb_txn_abort(txn);
	assert_int_equal(store_verify(f->store, NULL, &report), -EBADMSG);
	assert_int_equal(report.index_errors, 1);
	assert_int_equal(store_gc(f->store, &gs), 0);
	assert_int_equal(gs.refcounts_fixed, 1);
	assert_int_equal(store_verify(f->store, NULL, &report), 0);
	check_seed(f->store, "a", 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_info_and_usage),	      T(test_rm_and_gc),
		T(test_gc_sweeps_orphans),    T(test_verify),
		T(test_gc_repairs_refcounts),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
