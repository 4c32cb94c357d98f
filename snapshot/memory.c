/*
 * A restored clone's memory, by mode: eager reads every stored page before
 * the vCPUs start; mmap maps a raw copy of the snapshot's memory made once
 * in the store's cache directory; lazy and prefetch page it in with
 * userfaultfd (pager.c).
 */
#include "snapshot/memory.h"
#include "snapshot/pager.h"
#include "snapshot/pages.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define EAGER_THREADS 2

struct memory {
	enum snapshot_memory_mode mode;
	struct store_snapshot *snapshot;
	uint8_t *ram;
	uint64_t size;
	char name[SNAPSHOT_NAME_MAX + 1];
	struct pager *pager;
	bool complete;
	uint64_t pages_loaded, bytes_read;
};

static const char *const mode_names[] = {
	[SNAPSHOT_MEMORY_PREFETCH] = "prefetch",
	[SNAPSHOT_MEMORY_LAZY] = "lazy",
	[SNAPSHOT_MEMORY_EAGER] = "eager",
	[SNAPSHOT_MEMORY_MMAP] = "mmap",
};

int snapshot_memory_mode_parse(const char *text, enum snapshot_memory_mode *mode)
{
	for (unsigned i = 0; i < ARRAY_SIZE(mode_names); i++) {
		if (!strcmp(text, mode_names[i])) {
			*mode = (enum snapshot_memory_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *snapshot_memory_mode_name(enum snapshot_memory_mode mode)
{
	return (unsigned)mode < ARRAY_SIZE(mode_names) ? mode_names[mode] : "?";
}

/* Reads stored pages [first, end) to dest + page * 4 KiB (dest: ram, or a file's buffer). */
struct load_job {
	struct memory *m;
	uint64_t first, end;
	int fd; /* -1: into ram; else pwrite to this file */
	int ret;
	uint64_t bad_page;
	const char *why;
	uint64_t pages, bytes;
};

static void *load_range(void *arg)
{
	struct load_job *job = arg;
	uint8_t *buf = aligned_alloc(STORE_PAGE_SIZE, PAGES_RUN_MAX * STORE_PAGE_SIZE);
	struct pages_reader r = { 0 };

	job->ret = sandbox_thread_enter(SANDBOX_PAGER);
	if (!job->ret)
		job->ret = buf ? pages_reader_init(&r, job->m->snapshot) : -ENOMEM;
	for (uint64_t page = job->first; !job->ret && page < job->end;) {
		unsigned count = (unsigned)MIN((uint64_t)PAGES_RUN_MAX, job->end - page);
		uint8_t *out = job->fd < 0 ? job->m->ram + page * STORE_PAGE_SIZE : buf;
		bool all_zero;

		/* runs of zero pages are neither written nor read: anonymous memory and holes are
		 * zero */
		while (count && store_page_is_zero(job->m->snapshot, page)) {
			page++;
			count--;
		}
		if (!count)
			continue;
		out = job->fd < 0 ? job->m->ram + page * STORE_PAGE_SIZE : buf;
		job->ret = pages_read(&r, page, count, out, &all_zero, &job->bad_page, &job->why);
		if (!job->ret && job->fd >= 0 && !all_zero)
			job->ret = pwrite(job->fd, buf, (size_t)count * STORE_PAGE_SIZE,
					  (off_t)(page * STORE_PAGE_SIZE)) ==
						   (ssize_t)(count * STORE_PAGE_SIZE)
					   ? 0
					   : -EIO;
		job->pages += count;
		page += count;
	}
	job->bytes = r.bytes_read;
	pages_reader_free(&r);
	free(buf);
	return NULL;
}

/* Loads every stored page with EAGER_THREADS threads, into ram or into fd. */
static int memory_load(struct memory *m, int fd)
{
	uint64_t pages = m->size / STORE_PAGE_SIZE;
	struct load_job jobs[EAGER_THREADS];
	pthread_t threads[EAGER_THREADS];
	bool started[EAGER_THREADS];
	int ret = 0;

	for (unsigned i = 0; i < EAGER_THREADS; i++) {
		jobs[i] = (struct load_job){ .m = m,
					     .first = pages * i / EAGER_THREADS,
					     .end = pages * (i + 1) / EAGER_THREADS,
					     .fd = fd };
		started[i] = pthread_create(&threads[i], NULL, load_range, &jobs[i]) == 0;
		if (!started[i])
			load_range(&jobs[i]); /* no thread: do it here */
	}
	for (unsigned i = 0; i < EAGER_THREADS; i++) {
		if (started[i])
			pthread_join(threads[i], NULL);
		m->pages_loaded += jobs[i].pages;
		m->bytes_read += jobs[i].bytes;
		if (jobs[i].ret && !ret) {
			ret = jobs[i].ret;
			log_error("snapshot %s: cannot load guest page %llu: %s", m->name,
				  (unsigned long long)jobs[i].bad_page,
				  jobs[i].why ? jobs[i].why : strerror(-ret));
		}
	}
	return ret;
}

/* The cache file of this snapshot: its name and creation time say which one it is. */
static int cache_path(const struct memory *m, const char *dir, char *path, size_t size)
{
	const struct store_snapshot_info *info = store_snapshot_meta(m->snapshot);

	return path_format(path, size, "%s/%s-%llu.raw", dir, m->name,
			   (unsigned long long)info->created_ns);
}

static int cache_copy_failed(const struct memory *m, int err)
{
	log_error("cannot make the cache copy of %s: %s", m->name, strerror(-err));
	return err;
}

/* Writes the raw copy once (to a temporary name, renamed when whole), then maps it. */
static int memory_map_cache(struct memory *m, const char *dir)
{
	char path[PATH_MAX], tmp[PATH_MAX + 32];
	struct stat st;
	int fd, ret;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return cache_copy_failed(m, -errno);
	if (cache_path(m, dir, path, sizeof(path)))
		return cache_copy_failed(m, -ENAMETOOLONG);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size != m->size) {
		if (fd >= 0)
			close(fd);
		snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
		fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || ftruncate(fd, (off_t)m->size) < 0)
			return cache_copy_failed(m, -errno);
		ret = memory_load(m, fd);
		if (!ret && rename(tmp, path) < 0)
			ret = cache_copy_failed(m, -errno);
		if (ret) {
			unlink(tmp);
			close(fd);
			return ret;
		}
	}
	/* private: the clone's writes never reach the copy other clones map */
	if (mmap(m->ram, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE,
		 fd, 0) == MAP_FAILED) {
		ret = -errno;
		log_error("cannot map %s: %s", path, strerror(errno));
		close(fd);
		return ret;
	}
	/*
	 * On a tmpfs with huge pages (README.md, "Memory modes") the copy is
	 * made of 2 MiB pages: mapped whole, they spare the clone a KVM fault
	 * per 4 KiB it touches. Elsewhere this advice changes nothing.
	 */
	madvise(m->ram, m->size, MADV_HUGEPAGE);
	close(fd);
	return 0;
}

int memory_attach(struct store_snapshot *snapshot, uint8_t *ram, uint64_t size,
		  const struct memory_options *o, struct memory **out)
{
	struct memory *m = calloc(1, sizeof(*m));
	int ret;

	if (!m)
		return -ENOMEM;
	*m = (struct memory){ .mode = o->mode, .snapshot = snapshot, .ram = ram, .size = size };
	snprintf(m->name, sizeof(m->name), "%s", o->snapshot_name);
	switch (o->mode) {
	case SNAPSHOT_MEMORY_EAGER:
		ret = memory_load(m, -1);
		m->complete = true;
		break;
	case SNAPSHOT_MEMORY_MMAP:
		ret = memory_map_cache(m, o->cache_dir);
		break;
	default:
		ret = pager_start(snapshot, ram, size, o, &m->pager);
		break;
	}
	if (ret) {
		memory_detach(m);
		return ret;
	}
	*out = m;
	return 0;
}

int memory_fill(struct memory *m)
{
	int ret;

	/* eager is complete already; a mapped copy is read page by page by the writer */
	if (!m->pager)
		return 0;
	ret = pager_fill(m->pager);
	if (!ret)
		m->complete = true;
	return ret;
}

bool memory_is_complete(const struct memory *m)
{
	return m->complete;
}

void memory_stats_get(struct memory *m, struct snapshot_memory_stats *stats)
{
	long resident = 0, shared = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	uint64_t page_size = (uint64_t)sysconf(_SC_PAGESIZE);

	memset(stats, 0, sizeof(*stats));
	if (m->pager)
		pager_stats(m->pager, stats);
	stats->pages_loaded = m->pages_loaded;
	stats->bytes_read += m->bytes_read;
	/* shared: file pages, such as the mmap mode's copy that every clone maps */
	if (f && fscanf(f, "%*d %ld %ld", &resident, &shared) == 2) {
		stats->rss_bytes = (uint64_t)resident * page_size;
		stats->private_bytes = (uint64_t)(resident - shared) * page_size;
	}
	if (f)
		fclose(f);
}

int memory_recording_take(struct memory *m, uint32_t **pages, size_t *count)
{
	*pages = NULL;
	*count = 0;
	return m->pager ? pager_recording_take(m->pager, pages, count) : 0;
}

void memory_detach(struct memory *m)
{
	if (!m)
		return;
	pager_stop(m->pager);
	free(m);
}
