/* Opening the store snapshots live in. */
#include "snapshot/repo.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void snapshot_repo_default_dir(char *dir, size_t size)
{
	store_dir_default(dir, size);
}

int snapshot_name_check(const char *name, char *error, size_t error_size)
{
	if (store_name_check(name)) {
		snprintf(
			error, error_size,
			"'%s' is not a snapshot name (1-%d of A-Z a-z 0-9 . _ -, not starting with .)",
			name, SNAPSHOT_NAME_MAX);
		return -EINVAL;
	}
	return 0;
}

int snapshot_repo_open(const char *dir, bool write, struct snapshot_repo **out, char *error,
		       size_t error_size)
{
	struct snapshot_repo *repo = calloc(1, sizeof(*repo));
	int ret;

	if (!repo)
		return -ENOMEM;
	repo->write = write;
	if (path_format(repo->dir, sizeof(repo->dir), "%s", dir) ||
	    path_format(repo->cache_dir, sizeof(repo->cache_dir), "%s/cache", dir)) {
		snprintf(error, error_size, "store path too long: %s", dir);
		free(repo);
		return -ENAMETOOLONG;
	}
	ret = store_open(dir, write ? STORE_OPEN_WRITE : STORE_OPEN_READ, &repo->store);
	if (ret) {
		error[0] = '\0'; /* the store has said why */
		free(repo);
		return ret;
	}
	*out = repo;
	return 0;
}

void snapshot_repo_close(struct snapshot_repo *repo)
{
	if (!repo)
		return;
	store_close(repo->store);
	free(repo);
}
