/* A restored clone (private to snapshot/): its VM, its snapshot and its memory. */
#ifndef SNAPVM_SNAPSHOT_CLONE_H
#define SNAPVM_SNAPSHOT_CLONE_H

#include <stdatomic.h>

#include "snapshot/memory.h"
#include "snapshot/snapshot.h"

struct snapshot_clone {
	struct vm *vm;
	struct store_snapshot *snapshot; /* open for the clone's life: the pager reads it */
	struct memory *memory;
	char name[SNAPSHOT_NAME_MAX + 1];
	bool recording;
	atomic_bool failed; /* its memory could not be paged in: the VM was stopped */
	uint32_t *workset;  /* during the restore: the recorded working set, to prefetch */
	size_t workset_count;
};

/* The snapshot the clone was restored from. */
const char *snapshot_clone_name(const struct snapshot_clone *clone);
/* True if guest memory holds every stored page (nothing left to page in). */
bool snapshot_clone_memory_complete(const struct snapshot_clone *clone);
/* Pages in whatever is still missing; the vCPUs are paused. */
int snapshot_clone_fill(struct snapshot_clone *clone);

#endif
