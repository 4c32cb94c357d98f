/* The snapshot repository: the store and where its caches go (private to snapshot/). */
#ifndef SNAPVM_SNAPSHOT_REPO_H
#define SNAPVM_SNAPSHOT_REPO_H

#include <limits.h>
#include <stdbool.h>

#include "snapshot/snapshot.h"
#include "store/store.h"

struct snapshot_repo {
	struct store *store;
	bool write;
	char dir[PATH_MAX];
	char cache_dir[PATH_MAX]; /* raw copies for --memory mmap */
};

#endif
