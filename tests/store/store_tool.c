/*
 * store_tool: writes and checks synthetic snapshots for the store's scripted
 * tests. A snapshot's name says how to regenerate it, "F-SEED-PAGES" with F a
 * family letter: pages are a mix of zero pages, pages shared by the whole
 * family (dedup), and pages unique to the seed, plus a "state" blob.
 *
 *   store_tool write DIR F SEED PAGES COUNT   write COUNT snapshots, seeds SEED..,
 *                                              printing "committed NAME" after each
 *   store_tool check DIR [PREFIX]              read back every snapshot (whose name
 *                                              starts with PREFIX) and compare
 *   store_tool readloop DIR STOPFILE PREFIX    check the PREFIX snapshots over and
 *                                              over until STOPFILE exists
 *   store_tool gc DIR                          run a gc, printing "gc moved N freed N"
 *   store_tool corrupt-record DIR NAME         overwrite a byte of NAME's index record
 *
 * write, check, readloop and gc take these options first, for the crash and
 * concurrency tests, which wait for these lines instead of for time to pass:
 *   --pause-at K   at event K (see below), print "paused at K WHEN OP" and wait,
 *                  doing nothing more, for SIGKILL (or for the parent to die)
 *   --mark-at K    at event K, print "reached K WHEN OP" and carry on
 * Events are counted on the store's backend: "before" and "after" each
 * upload_begin, upload_append, upload_commit, upload_abort, list and remove
 * (gc removes orphans while it lists), so event K is a point where a pack is
 * part written, written but not yet in the index, in the index, or being
 * deleted. A command that finishes prints
 * "events N", the number it passed. readloop prints "round N" after each
 * round, so that a test can count rounds.
 */
#include "store/store.h"
#include "store/internal.h" /* the backend, to count and pause at its writes */
#include "common/common.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void fill(uint8_t *buf, size_t len, uint64_t seed, bool compressible)
{
	uint64_t x = mix(seed);

	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = compressible ? (x + i / 64) : (x = mix(x));

		memcpy(buf + i, &v, MIN((size_t)8, len - i));
	}
}

/* Page i of snapshot (family, seed): 40% zero, 30% shared by the family, 30% unique. */
static void page_make(char family, uint64_t seed, uint64_t i, uint8_t *page)
{
	uint64_t kind = mix(i * 7919 + (uint64_t)family) % 10;

	if (kind < 4)
		memset(page, 0, STORE_PAGE_SIZE);
	else if (kind < 7)
		fill(page, STORE_PAGE_SIZE, mix((uint64_t)family << 40 | i), kind == 4);
	else
		fill(page, STORE_PAGE_SIZE, mix(seed << 32 ^ i ^ (uint64_t)family << 56), false);
}

static size_t state_len(uint64_t seed)
{
	return 10000 + seed % 7000;
}

static int name_parse(const char *name, char *family, uint64_t *seed, uint64_t *pages)
{
	unsigned long long s, p;
	char f;

	if (sscanf(name, "%c-%llu-%llu", &f, &s, &p) != 3)
		return -EINVAL;
	*family = f;
	*seed = s;
	*pages = p;
	return 0;
}

static int snapshot_write(struct store *store, char family, uint64_t seed, uint64_t pages)
{
	uint8_t *mem = malloc(pages * STORE_PAGE_SIZE), *state = malloc(state_len(seed));
	struct store_commit_info info = { .cpu_id = "store_tool" };
	struct store_writer *w;
	char name[STORE_NAME_MAX + 1];
	int ret;

	snprintf(name, sizeof(name), "%c-%" PRIu64 "-%" PRIu64, family, seed, pages);
	for (uint64_t i = 0; i < pages; i++)
		page_make(family, seed, i, mem + i * STORE_PAGE_SIZE);
	fill(state, state_len(seed), seed ^ (uint64_t)family << 48, true);
	ret = store_snapshot_begin(store, name, pages * STORE_PAGE_SIZE, &w);
	if (!ret) {
		/* Two calls, to exercise page ranges. */
		ret = store_snapshot_put_pages(w, 0, mem, pages / 2);
		if (!ret)
			ret = store_snapshot_put_pages(
				w, pages / 2, mem + pages / 2 * STORE_PAGE_SIZE, pages - pages / 2);
		if (!ret)
			ret = store_snapshot_put_blob(w, "state", state, state_len(seed));
		if (!ret)
			ret = store_snapshot_commit(w, &info, NULL);
		else
			store_snapshot_abort(w);
	}
	if (!ret) {
		printf("committed %s\n", name);
		fflush(stdout);
	}
	free(mem);
	free(state);
	return ret;
}

static bool check_slowly; /* readloop: keep snapshots open longer, so that gc runs meanwhile */

/* Reads snapshot name back whole; 0 if every byte is what it should be. */
static int snapshot_check(struct store *store, const char *name)
{
	uint8_t page[STORE_PAGE_SIZE], want[STORE_PAGE_SIZE], *state = NULL, *expect;
	struct store_snapshot *snap;
	uint64_t seed, pages;
	size_t len;
	char family;
	int ret;

	if (name_parse(name, &family, &seed, &pages))
		return 0; /* not one of ours */
	ret = store_snapshot_open(store, name, &snap);
	if (ret)
		return ret;
	if (store_snapshot_page_count(snap) != pages)
		ret = -EBADMSG;
	for (uint64_t i = 0; i < pages && !ret; i++) {
		if (check_slowly && i % 64 == 0)
			usleep(300);
		page_make(family, seed, i, want);
		ret = store_page_read(snap, i, page);
		if (!ret && memcmp(page, want, STORE_PAGE_SIZE)) {
			fprintf(stderr, "store_tool: %s: page %" PRIu64 " differs\n", name, i);
			ret = -EBADMSG;
		}
	}
	if (!ret)
		ret = store_blob_read(snap, "state", &state, &len);
	if (!ret) {
		expect = malloc(state_len(seed));
		fill(expect, state_len(seed), seed ^ (uint64_t)family << 48, true);
		if (len != state_len(seed) || memcmp(state, expect, len)) {
			fprintf(stderr, "store_tool: %s: the state blob differs\n", name);
			ret = -EBADMSG;
		}
		free(expect);
		free(state);
	}
	store_snapshot_close(snap);
	return ret;
}

struct names {
	char (*list)[STORE_NAME_MAX + 1];
	size_t count;
	const char *prefix;
};

static void names_add(const struct store_snapshot_info *info, void *opaque)
{
	struct names *n = opaque;

	if (strncmp(info->name, n->prefix, strlen(n->prefix)))
		return;
	n->list = realloc(n->list, (n->count + 1) * sizeof(*n->list));
	snprintf(n->list[n->count++], STORE_NAME_MAX + 1, "%s", info->name);
}

/* Checks every snapshot whose name starts with prefix; a damaged listing fails only a full check.
 */
static int check_all(struct store *store, const char *prefix, unsigned *checked)
{
	struct names n = { .prefix = prefix };
	int list = store_list(store, names_add, &n), ret = 0, bad = *prefix ? 0 : list;

	for (size_t i = 0; i < n.count && !ret; i++) {
		ret = snapshot_check(store, n.list[i]);
		if (ret) {
			fprintf(stderr, "store_tool: %s: %s\n", n.list[i], strerror(-ret));
			bad = ret;
			ret = 0;
		}
		(*checked)++;
	}
	free(n.list);
	return ret ? ret : bad;
}

/* ---- Events: the backend's writes, counted, to pause or mark at one ---- */

static const struct backend_ops *real_ops;
static struct backend_ops hook_ops;
static unsigned long events, pause_at, mark_at;
static pid_t parent;

static void event(const char *when, const char *op)
{
	events++;
	if (events != pause_at && events != mark_at)
		return;
	printf("%s %lu %s %s\n", events == pause_at ? "paused at" : "reached", events, when, op);
	fflush(stdout);
	if (events != pause_at)
		return;
	/* Wait for SIGKILL; exit should the test be gone, rather than linger. */
	while (getppid() == parent)
		sleep(1);
	_exit(3);
}

static int hook_upload_begin(struct backend *b, const char *name, struct backend_upload **u)
{
	int ret;

	event("before", "upload_begin");
	ret = real_ops->upload_begin(b, name, u);
	event("after", "upload_begin");
	return ret;
}

static int hook_upload_append(struct backend_upload *u, const void *data, size_t len)
{
	int ret;

	event("before", "upload_append");
	ret = real_ops->upload_append(u, data, len);
	event("after", "upload_append");
	return ret;
}

static int hook_upload_commit(struct backend_upload *u)
{
	int ret;

	event("before", "upload_commit");
	ret = real_ops->upload_commit(u);
	event("after", "upload_commit");
	return ret;
}

static void hook_upload_abort(struct backend_upload *u)
{
	event("before", "upload_abort");
	real_ops->upload_abort(u);
	event("after", "upload_abort");
}

static int hook_remove(struct backend *b, const char *name)
{
	int ret;

	event("before", "remove");
	ret = real_ops->remove(b, name);
	event("after", "remove");
	return ret;
}

static int hook_list(struct backend *b, int (*fn)(void *opaque, const char *name), void *opaque)
{
	int ret;

	event("before", "list");
	ret = real_ops->list(b, fn, opaque);
	event("after", "list");
	return ret;
}

static void hooks_install(struct store *store)
{
	real_ops = store->backend->ops;
	hook_ops = *real_ops;
	hook_ops.upload_begin = hook_upload_begin;
	hook_ops.upload_append = hook_upload_append;
	hook_ops.upload_commit = hook_upload_commit;
	hook_ops.upload_abort = hook_upload_abort;
	hook_ops.remove = hook_remove;
	hook_ops.list = hook_list;
	store->backend->ops = &hook_ops;
	parent = getppid();
}

static int corrupt_record(const char *dir, const char *name)
{
	char path[4096];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val key = { strlen(name), (void *)name }, value;
	uint8_t *copy;
	int rc;

	snprintf(path, sizeof(path), "%s/index", dir);
	mdb_env_create(&env);
	mdb_env_set_maxdbs(env, 8);
	mdb_env_set_mapsize(env, 64ULL << 30);
	rc = mdb_env_open(env, path, MDB_NOTLS, 0644);
	rc = rc ? rc : mdb_txn_begin(env, NULL, 0, &txn);
	rc = rc ? rc : mdb_dbi_open(txn, "snapshots", 0, &dbi);
	rc = rc ? rc : mdb_get(txn, dbi, &key, &value);
	if (rc) {
		fprintf(stderr, "store_tool: %s\n", mdb_strerror(rc));
		return 1;
	}
	copy = malloc(value.mv_size);
	memcpy(copy, value.mv_data, value.mv_size);
	copy[value.mv_size / 2] ^= 0x40;
	value.mv_data = copy;
	rc = mdb_put(txn, dbi, &key, &value, 0);
	rc = rc ? rc : mdb_txn_commit(txn);
	mdb_env_close(env);
	free(copy);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	unsigned checked = 0, rounds = 0;
	struct store_gc_stats gc;
	struct store *store;
	int ret;

	while (argc >= 3 && (!strcmp(argv[1], "--pause-at") || !strcmp(argv[1], "--mark-at"))) {
		*(argv[1][2] == 'p' ? &pause_at : &mark_at) = strtoul(argv[2], NULL, 10);
		argc -= 2;
		argv += 2;
	}
	if (argc >= 4 && !strcmp(argv[1], "corrupt-record"))
		return corrupt_record(argv[2], argv[3]);
	if (argc < 3) {
		fprintf(stderr, "usage: see the comment at the top of store_tool.c\n");
		return 2;
	}
	if (store_open(argv[2], STORE_OPEN_WRITE, &store))
		return 1;
	hooks_install(store);
	if (!strcmp(argv[1], "write") && argc == 7) {
		ret = 0;
		for (uint64_t i = 0; i < strtoull(argv[6], NULL, 10) && !ret; i++)
			ret = snapshot_write(store, argv[3][0], strtoull(argv[4], NULL, 10) + i,
					     strtoull(argv[5], NULL, 10));
	} else if (!strcmp(argv[1], "check")) {
		ret = check_all(store, argc > 3 ? argv[3] : "", &checked);
		printf("checked %u snapshots\n", checked);
	} else if (!strcmp(argv[1], "readloop") && argc == 5) {
		check_slowly = true;
		for (ret = 0; !ret && access(argv[3], F_OK);) {
			ret = check_all(store, argv[4], &checked);
			if (!ret) {
				printf("round %u\n", ++rounds);
				fflush(stdout);
			}
		}
		printf("checked %u snapshots in %u rounds\n", checked, rounds);
	} else if (!strcmp(argv[1], "gc") && argc == 3) {
		ret = store_gc(store, &gc);
		if (!ret)
			printf("gc moved %" PRIu64 " freed %" PRIu64 " rewrote %" PRIu64
			       " orphans %" PRIu64 "\n",
			       gc.chunks_moved, gc.chunks_freed, gc.packs_rewritten,
			       gc.orphans_removed);
	} else {
		fprintf(stderr, "store_tool: bad arguments\n");
		ret = -EINVAL;
	}
	if (!ret)
		printf("events %lu\n", events);
	store_close(store);
	return ret ? 1 : 0;
}
