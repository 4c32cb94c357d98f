/* userfaultfd paging of a restored clone's memory (private to snapshot/; see pager.c). */
#ifndef SNAPVM_SNAPSHOT_PAGER_H
#define SNAPVM_SNAPSHOT_PAGER_H

#include "snapshot/memory.h"

struct pager;

/* Registers ram with userfaultfd and starts answering faults (and prefetching); 0 or -errno
 * (logged). */
int pager_start(struct store_snapshot *snapshot, uint8_t *ram, uint64_t size,
		const struct memory_options *options, struct pager **pager);
/* Installs every page not in place yet. */
int pager_fill(struct pager *pager);
void pager_stats(struct pager *pager, struct snapshot_memory_stats *stats);
/* Stops recording and hands out the recorded pages. */
int pager_recording_take(struct pager *pager, uint32_t **pages, size_t *count);
/* Stops the threads and frees the pager; the caller has stopped the vCPUs. */
void pager_stop(struct pager *pager);

#endif
