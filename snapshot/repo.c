/* Opening the store snapshots live in. */
#include "snapshot/repo.h"
#include "snapshot/clone.h"
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void snapshot_repo_default_dir(char *dir, size_t size)
{
	store_dir_default(dir, size);
}

bool snapshot_name_valid(const char *name)
{
	return store_name_check(name) == 0;
}

int snapshot_name_check(const char *name)
{
	return snapshot_name_valid(name) ? 0 : log_invalid(SNAPSHOT_NAME_REFUSED, name);
}

/* $SNAPVM_MMAP_CACHE, else STORE/cache: where the mmap mode's raw copies go. */
static int cache_dir_for(const char *store_dir, char *out, size_t size)
{
	const char *env = getenv("SNAPVM_MMAP_CACHE");

	return env && env[0] ? path_format(out, size, "%s", env)
			     : path_format(out, size, "%s/cache", store_dir);
}

int snapshot_repo_open(const char *dir, bool write, struct snapshot_repo **out)
{
	struct snapshot_repo *repo = calloc(1, sizeof(*repo));
	int ret;

	if (!repo)
		return -ENOMEM;
	repo->write = write;
	if (path_format(repo->dir, sizeof(repo->dir), "%s", dir) ||
	    cache_dir_for(dir, repo->cache_dir, sizeof(repo->cache_dir))) {
		log_error("store path too long: %s", dir);
		free(repo);
		return -ENAMETOOLONG;
	}
	ret = store_open(dir, write ? STORE_OPEN_WRITE : STORE_OPEN_READ, &repo->store);
	if (ret) {
		free(repo);
		return ret;
	}
	/* a RADOS store: local files go beside its cache, not under the "rados:" spec */
	if (store_is_remote(repo->store) &&
	    (path_format(repo->dir, sizeof(repo->dir), "%s", store_local_dir(repo->store)) ||
	     cache_dir_for(repo->dir, repo->cache_dir, sizeof(repo->cache_dir)))) {
		log_error("store path too long: %s", dir);
		snapshot_repo_close(repo);
		return -ENAMETOOLONG;
	}
	*out = repo;
	return 0;
}

int snapshot_repo_seal(struct snapshot_repo *repo, struct snapshot_clone *clone)
{
	if (clone)
		return store_snapshot_seal(clone->snapshot);
	return store_seal(repo->store);
}

bool snapshot_repo_remote(const struct snapshot_repo *repo)
{
	return store_is_remote(repo->store);
}

int snapshot_open_ahead(struct snapshot_repo *repo, const char *name, struct store_snapshot **out)
{
	enum log_level threshold = log_threshold;
	struct store_snapshot *snap;
	int ret;

	/*
	 * Quietly: the restore opens what failed here again, and says once why
	 * it cannot. The caller has a single thread, which log_threshold needs.
	 */
	log_threshold = LOG_QUIET;
	ret = snapshot_name_check(name);
	if (!ret)
		ret = store_snapshot_open(repo->store, name, &snap);
	/* a RADOS store's packs come into its cache as their pages are needed */
	if (!ret && !store_is_remote(repo->store) && (ret = store_snapshot_resolve(snap)))
		store_snapshot_close(snap);
	log_threshold = threshold;
	if (ret)
		log_debug("snapshot %s: not opened ahead (%s): the restore tries again", name,
			  strerror(-ret));
	*out = ret ? NULL : snap;
	return ret;
}

void snapshot_ahead_close(struct store_snapshot *snap)
{
	store_snapshot_close(snap);
}

void snapshot_repo_close(struct snapshot_repo *repo)
{
	if (!repo)
		return;
	store_close(repo->store);
	free(repo);
}

struct live_snapshots {
	size_t count, capacity;
	bool incomplete; /* out of memory: some live copies would look stale */
	struct live_snapshot {
		char name[STORE_NAME_MAX + 1];
		uint64_t created_ns;
	} * items;
};

static void live_add(const struct store_snapshot_info *info, void *opaque)
{
	struct live_snapshots *live = opaque;

	if (live->count == live->capacity) {
		size_t capacity = live->capacity ? live->capacity * 2 : 64;
		void *items = realloc(live->items, capacity * sizeof(*live->items));

		if (!items) {
			live->incomplete = true;
			return;
		}
		live->items = items;
		live->capacity = capacity;
	}
	snprintf(live->items[live->count].name, sizeof(live->items[0].name), "%s", info->name);
	live->items[live->count++].created_ns = info->created_ns;
}

/* Does file name "NAME-CREATED.raw" belong to a snapshot in the store? */
static bool cache_file_is_live(const struct live_snapshots *live, const char *file)
{
	const char *dash = strrchr(file, '-');
	size_t len = strlen(file);
	char *end;
	unsigned long long created;

	if (!dash || len < 5 || strcmp(file + len - 4, ".raw"))
		return true; /* not a raw copy: leave it alone */
	created = strtoull(dash + 1, &end, 10);
	if (end != file + len - 4)
		return true;
	for (size_t i = 0; i < live->count; i++)
		if (live->items[i].created_ns == created &&
		    strlen(live->items[i].name) == (size_t)(dash - file) &&
		    !memcmp(live->items[i].name, file, (size_t)(dash - file)))
			return true;
	return false;
}

int snapshot_cache_prune(struct store *store, const char *store_dir, uint64_t *files,
			 uint64_t *bytes)
{
	struct live_snapshots live = { 0 };
	char dir[PATH_MAX], path[PATH_MAX];
	struct dirent *entry;
	struct stat st;
	DIR *d;
	int ret;

	*files = *bytes = 0;
	if (cache_dir_for(store_dir, dir, sizeof(dir)))
		return -ENAMETOOLONG;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	ret = store_list(store, live_add, &live);
	if (!ret && live.incomplete)
		ret = -ENOMEM;
	while (!ret && (entry = readdir(d))) {
		if (entry->d_name[0] == '.' || cache_file_is_live(&live, entry->d_name) ||
		    path_format(path, sizeof(path), "%s/%s", dir, entry->d_name) ||
		    stat(path, &st) < 0 || unlink(path) < 0)
			continue;
		(*files)++;
		*bytes += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	free(live.items);
	return ret;
}

bool snapshot_workset_wanted(struct snapshot_repo *repo,
			     const struct snapshot_restore_options *options)
{
	uint32_t *pages;
	size_t count;

	if (!repo->write || (options->memory != SNAPSHOT_MEMORY_LAZY &&
			     options->memory != SNAPSHOT_MEMORY_PREFETCH))
		return false;
	if (store_workset_get(repo->store, options->name, &pages, &count))
		return true; /* none recorded (or unreadable: record a new one) */
	free(pages);
	return false;
}
