/*
 * How a restored clone's guest memory arrives from the store (private to
 * snapshot/): eager copies, an mmap'ed cache, or userfaultfd paging with
 * fault-around and working-set prefetch. docs/lazy-restore.md says why.
 */
#ifndef SNAPVM_SNAPSHOT_MEMORY_H
#define SNAPVM_SNAPSHOT_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot/snapshot.h"

struct store_snapshot;
struct memory;

struct memory_options {
	enum snapshot_memory_mode mode;
	const char *snapshot_name;
	const char *cache_dir;	 /* mmap mode: where raw copies are kept */
	bool record;		 /* record the faulting pages, in order */
	const uint32_t *workset; /* prefetch mode: the pages to install first, in order */
	size_t workset_count;
	/*
	 * Called once (from the pager's thread) when a page cannot be served:
	 * the VM must stop. message names the snapshot, the page and the cause
	 * (NULL when the store has reported the damage already).
	 */
	void (*fatal)(void *opaque, const char *message);
	void *opaque;
};

/*
 * Puts the snapshot's memory behind ram (size bytes of anonymous memory):
 * eager and mmap fill or map it now; lazy and prefetch register it with
 * userfaultfd and start their threads. 0, or -errno (logged).
 */
int memory_attach(struct store_snapshot *snapshot, uint8_t *ram, uint64_t size,
		  const struct memory_options *options, struct memory **memory);
/* Installs every page not paged in yet (for a snapshot of the clone); the vCPUs are paused. */
int memory_fill(struct memory *memory);
/* True if ram holds every page of the snapshot that is not zero (eager, or after memory_fill). */
bool memory_is_complete(const struct memory *memory);
void memory_stats_get(struct memory *memory, struct snapshot_memory_stats *stats);
/* Stops recording; hands out the recorded pages (malloc'ed) in fault order. */
int memory_recording_take(struct memory *memory, uint32_t **pages, size_t *count);
/* Stops the threads, unregisters ram, frees everything (ram itself stays). */
void memory_detach(struct memory *memory);

#endif
