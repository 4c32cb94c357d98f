/*
 * Snapshots as files: DIR/snapshots/NAME/state and DIR/snapshots/NAME/memory
 * (a sparse file the size of guest RAM, holding only non-zero pages). A
 * snapshot is written in a hidden temporary directory, synced, then renamed
 * into place: the rename is the single step that makes it exist, so a crash
 * leaves either no snapshot or a whole one.
 */
#include "snapshot/repo.h"
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX    ".tmp-"
#define MINCORE_CHUNK (64ULL << 20)

struct snapshot_repo {
	char dir[PATH_MAX]; /* DIR/snapshots */
};

struct repo_writer {
	struct snapshot_repo *repo;
	char name[SNAPSHOT_NAME_MAX + 1];
	char tmp[PATH_MAX];
};

void snapshot_repo_default_dir(char *dir, size_t size)
{
	const char *env = getenv("SNAPVM_STORE");
	const char *home = getenv("HOME");

	if (env && *env)
		snprintf(dir, size, "%s", env);
	else
		snprintf(dir, size, "%s/.local/share/snapvm", home && *home ? home : "/root");
}

int snapshot_name_check(const char *name, char *error, size_t error_size)
{
	size_t len = strlen(name);

	if (len == 0 || len > SNAPSHOT_NAME_MAX || name[0] == '.' ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
		    len) {
		snprintf(
			error, error_size,
			"'%s' is not a snapshot name (1-%d of A-Z a-z 0-9 . _ -, not starting with .)",
			name, SNAPSHOT_NAME_MAX);
		return -EINVAL;
	}
	return 0;
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];

	if (path_format(buf, sizeof(buf), "%s", path))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static void remove_dir(const char *path)
{
	char file[PATH_MAX];

	for (const char *const *f = (const char *const[]){ "state", "memory", NULL }; *f; f++) {
		path_format(file, sizeof(file), "%s/%s", path, *f);
		unlink(file);
	}
	rmdir(path);
}

/* Temporary directories of writers that died (their pid is gone) are removed. */
static void repo_clean_stale(struct snapshot_repo *repo)
{
	DIR *d = opendir(repo->dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		const char *pid_text;
		long pid;

		if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)))
			continue;
		pid_text = strrchr(e->d_name, '-');
		pid = pid_text ? strtol(pid_text + 1, NULL, 10) : 0;
		if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue;
		path_format(path, sizeof(path), "%s/%s", repo->dir, e->d_name);
		remove_dir(path);
	}
	closedir(d);
}

int snapshot_repo_open(const char *dir, struct snapshot_repo **out, char *error, size_t error_size)
{
	struct snapshot_repo *repo = calloc(1, sizeof(*repo));
	int ret;

	if (!repo)
		return -ENOMEM;
	/* room for every path built below it: names are at most 64 bytes */
	ret = strlen(dir) > PATH_MAX - 256
		      ? -ENAMETOOLONG
		      : path_format(repo->dir, sizeof(repo->dir), "%s/snapshots", dir);
	if (!ret)
		ret = mkdir_p(repo->dir);
	if (ret) {
		snprintf(error, error_size, "cannot create the snapshot directory %s: %s",
			 repo->dir, strerror(-ret));
		free(repo);
		return ret;
	}
	repo_clean_stale(repo);
	*out = repo;
	return 0;
}

void snapshot_repo_close(struct snapshot_repo *repo)
{
	free(repo);
}

static int fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int repo_write_begin(struct snapshot_repo *repo, const char *name, struct repo_writer **out,
		     char *error, size_t error_size)
{
	static unsigned counter;
	struct repo_writer *w;
	char final[PATH_MAX];
	int ret = snapshot_name_check(name, error, error_size);

	if (ret)
		return ret;
	path_format(final, sizeof(final), "%s/%s", repo->dir, name);
	if (access(final, F_OK) == 0) {
		snprintf(error, error_size, "a snapshot named %s exists (snapvm rm %s first)", name,
			 name);
		return -EEXIST;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->repo = repo;
	snprintf(w->name, sizeof(w->name), "%s", name);
	path_format(w->tmp, sizeof(w->tmp), "%s/" TMP_PREFIX "%s-%u-%d", repo->dir, name,
		    __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED), (int)getpid());
	if (mkdir(w->tmp, 0755) < 0) {
		ret = -errno;
		snprintf(error, error_size, "cannot create %s: %s", w->tmp, strerror(errno));
		free(w);
		return ret;
	}
	*out = w;
	return 0;
}

static bool page_is_zero(const uint8_t *page)
{
	const uint64_t *words = (const uint64_t *)page;

	for (size_t i = 0; i < PAGE_SIZE / 8; i++) {
		if (words[i])
			return false;
	}
	return true;
}

/*
 * Writes the non-zero pages of ram at their offsets. Pages the host never
 * populated are skipped without being read (mincore): reading them would
 * fault each one in just to find zeros.
 */
static int write_pages(int fd, const uint8_t *ram, uint64_t size, uint64_t *stored)
{
	unsigned char *resident = malloc(MINCORE_CHUNK / PAGE_SIZE);
	int ret = 0;

	if (!resident)
		return -ENOMEM;
	*stored = 0;
	for (uint64_t base = 0; base < size && !ret; base += MINCORE_CHUNK) {
		uint64_t pages = MIN(MINCORE_CHUNK, size - base) / PAGE_SIZE;
		uint64_t run_start = 0, run_len = 0;

		if (mincore((void *)(ram + base), pages * PAGE_SIZE, resident) < 0)
			memset(resident, 1, pages); /* cannot tell: look at every page */
		for (uint64_t p = 0; p <= pages && !ret; p++) {
			bool keep = p < pages && (resident[p] & 1) &&
				    !page_is_zero(ram + base + p * PAGE_SIZE);

			if (keep) {
				if (!run_len)
					run_start = base + p * PAGE_SIZE;
				run_len += PAGE_SIZE;
				continue;
			}
			if (run_len) {
				ssize_t n = pwrite(fd, ram + run_start, run_len, (off_t)run_start);

				if (n != (ssize_t)run_len)
					ret = n < 0 ? -errno : -EIO;
				*stored += run_len;
				run_len = 0;
			}
		}
	}
	free(resident);
	return ret;
}

int repo_write_memory(struct repo_writer *w, const uint8_t *ram, uint64_t size, uint64_t *stored)
{
	char path[PATH_MAX];
	int fd, ret;

	path_format(path, sizeof(path), "%s/memory", w->tmp);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ret = ftruncate(fd, (off_t)size) < 0 ? -errno : write_pages(fd, ram, size, stored);
	if (!ret && fdatasync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int repo_write_state(struct repo_writer *w, const uint8_t *state, size_t len)
{
	char path[PATH_MAX];
	int fd, ret;

	path_format(path, sizeof(path), "%s/state", w->tmp);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ret = write_all(fd, state, len);
	if (!ret && fdatasync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int repo_write_commit(struct repo_writer *w, char *error, size_t error_size)
{
	char final[PATH_MAX];
	int ret = fsync_path(w->tmp, O_RDONLY | O_DIRECTORY);

	path_format(final, sizeof(final), "%s/%s", w->repo->dir, w->name);
	/* renaming a directory never replaces a non-empty one: a racing writer loses here */
	if (!ret && rename(w->tmp, final) < 0)
		ret = -errno;
	if (!ret)
		ret = fsync_path(w->repo->dir, O_RDONLY | O_DIRECTORY);
	if (ret) {
		snprintf(error, error_size, "cannot commit snapshot %s: %s", w->name,
			 strerror(-ret));
		repo_write_abort(w);
		return ret;
	}
	free(w);
	return 0;
}

void repo_write_abort(struct repo_writer *w)
{
	remove_dir(w->tmp);
	free(w);
}

static int snapshot_path(struct snapshot_repo *repo, const char *name, const char *file, char *path,
			 size_t size, char *error, size_t error_size)
{
	int ret = snapshot_name_check(name, error, error_size);

	if (ret)
		return ret;
	return path_format(path, size, "%s/%s/%s", repo->dir, name, file);
}

int repo_read_state(struct snapshot_repo *repo, const char *name, uint8_t **state, size_t *len,
		    char *error, size_t error_size)
{
	char path[PATH_MAX];
	int ret = snapshot_path(repo, name, "state", path, sizeof(path), error, error_size);

	if (ret)
		return ret;
	/* one byte over the format's cap, so that an oversized file is reported as such */
	ret = file_read_all(path, state, len, (64u << 20) + 1);
	if (ret == -ENOENT)
		snprintf(error, error_size, "no snapshot named %s", name);
	else if (ret == -EFBIG)
		snprintf(error, error_size, "snapshot %s: state file larger than 64 MiB", name);
	else if (ret)
		snprintf(error, error_size, "cannot read %s: %s", path, strerror(-ret));
	return ret == -EFBIG ? -EINVAL : ret;
}

int repo_map_memory(struct snapshot_repo *repo, const char *name, uint8_t *ram, uint64_t size,
		    char *error, size_t error_size)
{
	char path[PATH_MAX];
	struct stat st;
	int fd, ret = snapshot_path(repo, name, "memory", path, sizeof(path), error, error_size);

	if (ret)
		return ret;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(error, error_size, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size != size) {
		snprintf(error, error_size,
			 "snapshot %s: memory file has %lld bytes, the state says %llu", name,
			 (long long)st.st_size, (unsigned long long)size);
		ret = -EINVAL;
		goto out;
	}
	/* private: the clone's writes never reach the file other clones map */
	if (mmap(ram, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd,
		 0) == MAP_FAILED) {
		ret = -errno;
		snprintf(error, error_size, "cannot map %s: %s", path, strerror(errno));
	}
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int repo_list_names(struct snapshot_repo *repo, void (*fn)(const char *name, void *opaque),
		    void *opaque)
{
	DIR *d = opendir(repo->dir);
	char **names = NULL, error[256];
	size_t count = 0;
	struct dirent *e;
	int ret = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char **grown;

		if (snapshot_name_check(e->d_name, error, sizeof(error)))
			continue; /* ".", "..", temporary directories */
		grown = realloc(names, (count + 1) * sizeof(*names));
		if (!grown || !(grown[count] = strdup(e->d_name))) {
			names = grown ? grown : names;
			ret = -ENOMEM;
			break;
		}
		names = grown;
		count++;
	}
	closedir(d);
	if (count)
		qsort(names, count, sizeof(*names), compare_names);
	for (size_t i = 0; i < count; i++) {
		if (!ret)
			fn(names[i], opaque);
		free(names[i]);
	}
	free(names);
	return ret;
}

int repo_stat(struct snapshot_repo *repo, const char *name, uint64_t *state_bytes,
	      uint64_t *memory_bytes)
{
	char path[PATH_MAX];
	struct stat st;

	path_format(path, sizeof(path), "%s/%s/state", repo->dir, name);
	if (stat(path, &st) < 0)
		return -errno;
	*state_bytes = (uint64_t)st.st_size;
	path_format(path, sizeof(path), "%s/%s/memory", repo->dir, name);
	if (stat(path, &st) < 0)
		return -errno;
	*memory_bytes = (uint64_t)st.st_blocks * 512; /* a sparse file: what is really stored */
	return 0;
}

int snapshot_remove(struct snapshot_repo *repo, const char *name, char *error, size_t error_size)
{
	char path[PATH_MAX], trash[PATH_MAX];
	int ret = snapshot_name_check(name, error, error_size);

	if (ret)
		return ret;
	path_format(path, sizeof(path), "%s/%s", repo->dir, name);
	/* first out of sight in one step, then deleted: a crash leaves no half snapshot */
	path_format(trash, sizeof(trash), "%s/" TMP_PREFIX "rm-%s-%d", repo->dir, name,
		    (int)getpid());
	if (rename(path, trash) < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			snprintf(error, error_size, "no snapshot named %s", name);
		else
			snprintf(error, error_size, "cannot remove %s: %s", path, strerror(errno));
		return ret;
	}
	remove_dir(trash);
	return fsync_path(repo->dir, O_RDONLY | O_DIRECTORY);
}
