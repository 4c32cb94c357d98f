/*
 * snapvm bench store: the content-addressed store against plain files, in
 * one run on the same disk. A guest image (default 1 GiB, a quarter of its
 * pages non-zero noise, one in each group of four) is written to the store
 * three times: first, again (all duplicates), and with 5% of its non-zero
 * pages changed; beside each, the same bytes written to a plain file and
 * synced. Then single pages are read at random (page cache hot) and a
 * recorded working set is read in its order, hot and cold, before and after
 * relayout, beside pread() of the same pages from the plain file.
 */
#include "bench/bench.h"
#include "bench/bench_util.h"
#include "common/common.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define WORKSET_PAGES 16384

struct bench_options {
	bool json;
	char dir[PATH_MAX];
	char store[PATH_MAX]; /* a store to use instead of a scratch one (rados:...) */
	uint64_t size;
	unsigned reads;
};

struct image {
	uint8_t *mem;
	uint64_t pages;
	uint32_t *nonzero; /* indexes of the non-zero pages */
	uint64_t nonzero_count;
};

struct write_result {
	double seconds;
	struct store_write_stats stats;
};

struct read_result {
	double median_us, p90_us, pages_per_s;
};

struct results {
	double plain_all_s, plain_nonzero_s;
	struct write_result first, again, changed, small;
	uint64_t changed_pages;
	struct read_result random, plain_random;
	struct read_result order_hot, plain_order_hot;
	struct read_result order_cold, order_cold_relayout, plain_order_cold;
};

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void page_noise(uint8_t *page, uint64_t *s)
{
	uint64_t *words = (uint64_t *)page;

	for (size_t i = 0; i < STORE_PAGE_SIZE / 8; i++)
		words[i] = rng_next(s);
}

/* Zero pages are real memory, as in a guest: the image is populated, not left to the zero page. */
static int image_make(struct image *img, uint64_t size, uint64_t nonzero_every, uint64_t seed)
{
	uint64_t s = seed;

	img->pages = size / STORE_PAGE_SIZE;
	img->mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	img->nonzero = malloc(img->pages / nonzero_every * sizeof(*img->nonzero) + 4);
	if (img->mem == MAP_FAILED || !img->nonzero)
		return -ENOMEM;
	img->nonzero_count = 0;
	for (uint64_t g = 0; g + nonzero_every <= img->pages; g += nonzero_every) {
		uint64_t page = g + rng_next(&s) % nonzero_every;

		page_noise(img->mem + page * STORE_PAGE_SIZE, &s);
		img->nonzero[img->nonzero_count++] = (uint32_t)page;
	}
	return 0;
}

static void image_free(struct image *img)
{
	if (img->mem && img->mem != MAP_FAILED)
		munmap(img->mem, img->pages * STORE_PAGE_SIZE);
	free(img->nonzero);
}

/* Writes the image (or only its non-zero pages, at their offsets) to path and syncs it. */
static int plain_write(const char *path, const struct image *img, bool nonzero_only, double *s)
{
	uint64_t start = time_now_ns();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), ret = 0;

	if (fd < 0)
		return -errno;
	if (nonzero_only) {
		for (uint64_t i = 0; i < img->nonzero_count && !ret; i++) {
			uint64_t off = (uint64_t)img->nonzero[i] * STORE_PAGE_SIZE;

			if (pwrite(fd, img->mem + off, STORE_PAGE_SIZE, (off_t)off) !=
			    STORE_PAGE_SIZE)
				ret = -EIO;
		}
	} else {
		ret = write_all(fd, img->mem, img->pages * STORE_PAGE_SIZE);
	}
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	*s = (double)(time_now_ns() - start) / 1e9;
	return ret;
}

static int store_write(struct store *store, const char *name, const struct image *img,
		       struct write_result *r)
{
	uint64_t start = time_now_ns();
	struct store_writer *w;
	int ret = store_snapshot_begin(store, name, img->pages * STORE_PAGE_SIZE, &w);

	if (ret)
		return ret;
	ret = store_snapshot_put_pages(w, 0, img->mem, img->pages);
	if (ret) {
		store_snapshot_abort(w);
		return ret;
	}
	ret = store_snapshot_commit(w, NULL, &r->stats);
	r->seconds = (double)(time_now_ns() - start) / 1e9;
	return ret;
}

static void read_result_fill(struct read_result *r, double *us, unsigned n, double total_s)
{
	r->pages_per_s = total_s > 0 ? n / total_s : 0;
	r->median_us = stats_percentile(us, n, 50);
	r->p90_us = stats_percentile(us, n, 90);
}

/* Reads pages[0..n) through the store (snap) or from the plain file (fd), timing each. */
static int pages_read(struct store_snapshot *snap, int fd, const uint32_t *pages, unsigned n,
		      double *us, struct read_result *r)
{
	static uint8_t buf[STORE_PAGE_SIZE] __attribute__((aligned(4096)));
	uint64_t start = time_now_ns();

	for (unsigned i = 0; i < n; i++) {
		uint64_t t = time_now_ns();
		int ret = snap ? store_page_read(snap, pages[i], buf)
			       : pread_all(fd, buf, STORE_PAGE_SIZE,
					   (uint64_t)pages[i] * STORE_PAGE_SIZE);

		if (ret)
			return ret;
		us[i] = (double)(time_now_ns() - t) / 1e3;
	}
	read_result_fill(r, us, n, (double)(time_now_ns() - start) / 1e9);
	return 0;
}

/* Drops the snapshot's packs that hold pages[] from the page cache, through their descriptors. */
static void store_cache_drop(struct store_snapshot *snap, const uint32_t *pages, unsigned n)
{
	struct store_chunk_loc loc;
	int fds[64];
	size_t count = 0, j;

	for (unsigned i = 0; i < n; i++) {
		if (store_page_locate(snap, pages[i], &loc) != 0)
			continue;
		for (j = 0; j < count && fds[j] != loc.fd; j++)
			;
		if (j == count && count < ARRAY_SIZE(fds))
			fds[count++] = loc.fd;
	}
	for (j = 0; j < count; j++)
		posix_fadvise(fds[j], 0, 0, POSIX_FADV_DONTNEED);
}

static void shuffle(uint32_t *v, uint64_t n, uint64_t *s)
{
	for (uint64_t i = n - 1; i > 0; i--) {
		uint64_t j = rng_next(s) % (i + 1);
		uint32_t t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

/* Random single pages, hot: the store beside pread() of the plain file. */
static int bench_random_reads(struct store *store, const char *plain, const struct image *img,
			      const struct bench_options *o, struct results *res)
{
	uint32_t *pages = malloc(o->reads * sizeof(*pages));
	double *us = malloc(o->reads * sizeof(*us));
	struct store_snapshot *snap = NULL;
	uint64_t s = 99;
	int fd = open(plain, O_RDONLY | O_CLOEXEC), ret = -ENOMEM;

	if (pages && us && fd >= 0) {
		for (unsigned i = 0; i < o->reads; i++)
			pages[i] = img->nonzero[rng_next(&s) % img->nonzero_count];
		ret = store_snapshot_open(store, "first", &snap);
	}
	/* a first pass warms the page cache for both */
	if (!ret)
		ret = pages_read(snap, -1, pages, o->reads, us, &res->random);
	if (!ret)
		ret = pages_read(NULL, fd, pages, o->reads, us, &res->plain_random);
	if (!ret)
		ret = pages_read(snap, -1, pages, o->reads, us, &res->random);
	if (!ret)
		ret = pages_read(NULL, fd, pages, o->reads, us, &res->plain_random);
	store_snapshot_close(snap);
	if (fd >= 0)
		close(fd);
	free(pages);
	free(us);
	return ret;
}

/* One pass over the working set in its order: hot (read twice) or cold (caches dropped first). */
static int workset_pass(struct store *store, int fd, const uint32_t *ws, unsigned n, bool cold,
			double *us, struct read_result *r)
{
	struct store_snapshot *snap = NULL;
	int ret = 0;

	if (store)
		ret = store_snapshot_open(store, "first", &snap);
	if (ret)
		return ret;
	if (cold && snap && store_is_remote(store))
		store_cache_clear(store); /* cold: the pages come from the pool */
	else if (cold && snap)
		store_cache_drop(snap, ws, n);
	else if (cold)
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (!cold)
		ret = pages_read(snap, fd, ws, n, us, r);
	if (!ret)
		ret = pages_read(snap, fd, ws, n, us, r);
	store_snapshot_close(snap);
	return ret;
}

/* A recorded working set read in its order, before and after relayout, beside the plain file. */
static int bench_workset_reads(struct store *store, const char *plain, const struct image *img,
			       struct results *res)
{
	unsigned n = (unsigned)MIN((uint64_t)WORKSET_PAGES, img->nonzero_count);
	uint32_t *ws = malloc(img->nonzero_count * sizeof(*ws));
	double *us = malloc(n * sizeof(*us));
	uint64_t s = 7;
	int fd = open(plain, O_RDONLY | O_CLOEXEC), ret = -ENOMEM;

	if (ws && us && fd >= 0) {
		memcpy(ws, img->nonzero, img->nonzero_count * sizeof(*ws));
		shuffle(ws, img->nonzero_count, &s);
		ret = store_workset_put(store, "first", ws, n);
	}
	if (!ret)
		ret = workset_pass(store, -1, ws, n, true, us, &res->order_cold);
	if (!ret)
		ret = store_snapshot_relayout(store, "first");
	if (!ret)
		ret = workset_pass(store, -1, ws, n, true, us, &res->order_cold_relayout);
	if (!ret)
		ret = workset_pass(store, -1, ws, n, false, us, &res->order_hot);
	if (!ret)
		ret = workset_pass(NULL, fd, ws, n, true, us, &res->plain_order_cold);
	if (!ret)
		ret = workset_pass(NULL, fd, ws, n, false, us, &res->plain_order_hot);
	if (fd >= 0)
		close(fd);
	free(ws);
	free(us);
	return ret;
}

/* Changes every 20th non-zero page: 5% of them. */
static uint64_t image_change(struct image *img)
{
	uint64_t s = 12345, changed = 0;

	for (uint64_t i = 0; i < img->nonzero_count; i += 20, changed++)
		page_noise(img->mem + (uint64_t)img->nonzero[i] * STORE_PAGE_SIZE, &s);
	return changed;
}

/* A 128 MiB guest with a 64 MiB random heap: the snapshot of a small function. */
static int bench_small(struct store *store, struct results *res)
{
	struct image img = { 0 };
	int ret = image_make(&img, 128 * MiB, 2, 777);

	if (!ret)
		ret = store_write(store, "small", &img, &res->small);
	image_free(&img);
	return ret;
}

/*
 * The store's writes first, then the plain file's. Each write starts after
 * a sync(), so that none pays for the writeback of the one before.
 */
static int bench_writes(struct store *store, const char *plain, struct image *img,
			struct results *res)
{
	int ret;

	sync();
	ret = store_write(store, "first", img, &res->first);
	sync();
	if (!ret)
		ret = store_write(store, "again", img, &res->again);
	if (!ret) {
		res->changed_pages = image_change(img);
		sync();
		ret = store_write(store, "changed", img, &res->changed);
	}
	sync();
	if (!ret)
		ret = bench_small(store, res);
	sync();
	if (!ret)
		ret = plain_write(plain, img, false, &res->plain_all_s);
	sync();
	/* the plain reads use this file: its holes are the zero pages, which they skip */
	if (!ret)
		ret = plain_write(plain, img, true, &res->plain_nonzero_s);
	return ret;
}

static void print_write(const char *name, const struct write_result *w, uint64_t bytes, bool last)
{
	printf("  \"%s_s\": %.4f, \"%s_gib_per_s\": %.3f, \"%s_new_bytes\": %llu,%s", name,
	       w->seconds, name, (double)bytes / GiB / w->seconds, name,
	       (unsigned long long)w->stats.new_bytes, last ? "" : "\n");
}

static void print_read(const char *name, const struct read_result *r, bool last)
{
	printf("  \"%s_us_median\": %.2f, \"%s_us_p90\": %.2f, \"%s_pages_per_s\": %.0f%s\n", name,
	       r->median_us, name, r->p90_us, name, r->pages_per_s, last ? "" : ",");
}

static void report_json(const struct bench_options *o, const struct image *img,
			const struct results *r)
{
	uint64_t bytes = img->pages * STORE_PAGE_SIZE;

	printf("{\n  \"bench\": \"store\", \"image_bytes\": %llu, \"nonzero_bytes\": %llu,\n",
	       (unsigned long long)bytes,
	       (unsigned long long)(img->nonzero_count * STORE_PAGE_SIZE));
	printf("  \"plain_write_s\": %.4f, \"plain_write_nonzero_s\": %.4f,\n", r->plain_all_s,
	       r->plain_nonzero_s);
	print_write("first", &r->first, bytes, false);
	print_write("again", &r->again, bytes, false);
	printf("\n  \"again_speedup\": %.2f,\n", r->first.seconds / r->again.seconds);
	print_write("changed", &r->changed, bytes, false);
	printf("\n  \"changed_pages\": %llu, \"changed_new_fraction\": %.4f,\n",
	       (unsigned long long)r->changed_pages,
	       (double)r->changed.stats.new_bytes / (double)r->first.stats.new_bytes);
	print_write("small_128m", &r->small, 128 * MiB, true);
	printf("\n  \"random_reads\": %u,\n", o->reads);
	print_read("random", &r->random, false);
	print_read("plain_random", &r->plain_random, false);
	print_read("order_hot", &r->order_hot, false);
	print_read("plain_order_hot", &r->plain_order_hot, false);
	print_read("order_cold", &r->order_cold, false);
	print_read("order_cold_relayout", &r->order_cold_relayout, false);
	print_read("plain_order_cold", &r->plain_order_cold, true);
	printf("}\n");
}

static void report_text(const struct bench_options *o, const struct image *img,
			const struct results *r)
{
	double gib = (double)(img->pages * STORE_PAGE_SIZE) / GiB;
	const struct {
		const char *name;
		const struct write_result *w;
	} writes[] = { { "first", &r->first },
		       { "again (duplicates)", &r->again },
		       { "5% of pages changed", &r->changed } };
	const struct {
		const char *name;
		const struct read_result *s, *p;
	} reads[] = {
		{ "random pages, hot", &r->random, &r->plain_random },
		{ "working set in order, hot", &r->order_hot, &r->plain_order_hot },
		{ "working set in order, cold", &r->order_cold, &r->plain_order_cold },
		{ "  same, after relayout", &r->order_cold_relayout, &r->plain_order_cold },
	};

	printf("image: %.2f GiB, %.0f MiB non-zero pseudo-random pages; store and files in %s\n",
	       gib, (double)img->nonzero_count * STORE_PAGE_SIZE / MiB, o->dir);
	printf("\n%-22s %9s %10s %12s   plain file: %s\n", "write (synced)", "seconds", "GiB/s",
	       "new MiB", "write+fsync");
	for (size_t i = 0; i < ARRAY_SIZE(writes); i++)
		printf("%-22s %9.3f %10.2f %12.1f   %.3f s all, %.3f s non-zero pages only\n",
		       writes[i].name, writes[i].w->seconds, gib / writes[i].w->seconds,
		       (double)writes[i].w->stats.new_bytes / MiB, r->plain_all_s,
		       r->plain_nonzero_s);
	printf("the second write is %.1fx faster than the first; the 5%% copy adds %.2f%% new "
	       "bytes\n",
	       r->first.seconds / r->again.seconds,
	       100.0 * (double)r->changed.stats.new_bytes / (double)r->first.stats.new_bytes);
	printf("128 MiB guest, 64 MiB random heap: %.1f ms\n", r->small.seconds * 1e3);
	printf("\n%-28s %10s %10s %12s   plain pread: %s\n", "read (4 KiB pages)", "median us",
	       "p90 us", "pages/s", "median us, p90 us, pages/s");
	for (size_t i = 0; i < ARRAY_SIZE(reads); i++)
		printf("%-28s %10.2f %10.2f %12.0f   %.2f, %.2f, %.0f\n", reads[i].name,
		       reads[i].s->median_us, reads[i].s->p90_us, reads[i].s->pages_per_s,
		       reads[i].p->median_us, reads[i].p->p90_us, reads[i].p->pages_per_s);
}

static void bench_store_help(void)
{
	printf("usage: snapvm bench store [--json] [--dir DIR] [--size SIZE] [--reads N]\n\n"
	       "Writes a guest image (a quarter of its pages non-zero noise) to a new store\n"
	       "three times: first, again (all duplicates), and with 5%% of its non-zero pages\n"
	       "changed, then reads single pages at random and a working set in order, hot\n"
	       "and cold, each beside write()/pread() of the same bytes on a plain file.\n\n"
	       "  --dir DIR    where the scratch store and file go (default /var/tmp; not tmpfs)\n"
	       "  --store SPEC the store to write to instead of a scratch one in DIR, e.g.\n"
	       "               rados:POOL?conf=PATH (its snapshots first, again, changed and\n"
	       "               small are replaced, then removed)\n"
	       "  --size SIZE  the image (default 1G; 64M to 16G)\n"
	       "  --reads N    random single-page reads (default 20000)\n"
	       "  --json       print the figures as JSON\n");
}

static int bench_store_option(int opt, const char *value, void *ctx)
{
	struct bench_options *o = ctx;
	uint64_t n;

	switch (opt) {
	case 'd':
		snprintf(o->dir, sizeof(o->dir), "%s", value);
		return 0;
	case 'S':
		snprintf(o->store, sizeof(o->store), "%s", value);
		return 0;
	case 's':
		if (parse_size(value, &o->size) || o->size < 64 * MiB || o->size > 16 * GiB ||
		    o->size % (4 * STORE_PAGE_SIZE))
			return bench_usage_error("store", "--size: '%s' is not 64M-16G", value);
		return 0;
	case 'r':
		if (parse_u64(value, &n) || n < 100 || n > 10000000)
			return bench_usage_error("store", "--reads: '%s' is not 100-10000000",
						 value);
		o->reads = (unsigned)n;
		return 0;
	default:
		return EXIT_USAGE;
	}
}

static int bench_store_parse(int argc, char **argv, struct bench_options *o)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "dir", required_argument, NULL, 'd' },
		{ "store", required_argument, NULL, 'S' },
		{ "size", required_argument, NULL, 's' },
		{ "reads", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const struct bench_cli cli = { .name = "store",
				       .options = longopts,
				       .option = bench_store_option,
				       .help = bench_store_help,
				       .json = &o->json };

	*o = (struct bench_options){ .size = GiB, .reads = 20000 };
	snprintf(o->dir, sizeof(o->dir), "/var/tmp");
	return bench_parse(&cli, argc, argv, o);
}

static void bench_name_seen(const struct store_snapshot_info *info, void *opaque)
{
	static const char *const names[] = { "first", "again", "changed", "small" };
	unsigned *mask = opaque;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (!strcmp(info->name, names[i]))
			*mask |= 1u << i;
	}
}

/* Removes the snapshots the benchmark writes, if an earlier run left them. */
static void bench_names_remove(struct store *store)
{
	static const char *const names[] = { "first", "again", "changed", "small" };
	unsigned mask = 0;

	store_list(store, bench_name_seen, &mask);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (mask & (1u << i))
			store_snapshot_remove(store, names[i]);
	}
}

static int bench_run(const struct bench_options *o, const char *scratch, struct results *res,
		     struct image *img)
{
	char store_dir[PATH_MAX + 48], plain[PATH_MAX + 48];
	struct store *store;
	int ret;

	snprintf(store_dir, sizeof(store_dir), "%s/store", scratch);
	snprintf(plain, sizeof(plain), "%s/plain", scratch);
	ret = image_make(img, o->size, 4, 1);
	if (ret) {
		log_error("bench store: cannot make a %llu-byte image",
			  (unsigned long long)o->size);
		return ret;
	}
	ret = store_open(o->store[0] ? o->store : store_dir, STORE_OPEN_WRITE, &store);
	if (ret)
		return ret;
	bench_names_remove(store); /* a shared store may hold an earlier run's */
	ret = bench_writes(store, plain, img, res);
	if (!ret)
		ret = bench_random_reads(store, plain, img, o, res);
	if (!ret)
		ret = bench_workset_reads(store, plain, img, res);
	if (o->store[0]) {
		bench_names_remove(store);
		store_gc(store, NULL);
	}
	store_close(store);
	unlink(plain);
	return ret;
}

int bench_store_main(int argc, char **argv)
{
	struct bench_options o;
	struct results res = { 0 };
	struct image img = { 0 };
	char scratch[PATH_MAX + 32], command[PATH_MAX + 64];
	int ret = bench_store_parse(argc, argv, &o);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	snprintf(scratch, sizeof(scratch), "%s/snapvm-bench-store.XXXXXX", o.dir);
	if (!mkdtemp(scratch)) {
		log_error("bench store: cannot make a directory in %s: %s", o.dir, strerror(errno));
		return EXIT_RUNTIME;
	}
	ret = bench_run(&o, scratch, &res, &img);
	snprintf(command, sizeof(command), "rm -rf '%s'", scratch);
	if (system(command) != 0)
		log_warn("bench store: could not remove %s", scratch);
	if (!ret) {
		if (o.json)
			report_json(&o, &img, &res);
		else
			report_text(&o, &img, &res);
	}
	image_free(&img);
	return ret ? EXIT_RUNTIME : EXIT_OK;
}
