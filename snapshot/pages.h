/* Reading runs of guest pages out of the store (private to snapshot/). */
#ifndef SNAPVM_SNAPSHOT_PAGES_H
#define SNAPVM_SNAPSHOT_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* The most pages read in one go, and the bytes of records that may take. */
#define PAGES_RUN_MAX	   64
#define PAGES_SCRATCH_SIZE (PAGES_RUN_MAX * (STORE_PAGE_SIZE + 4096))

struct pages_reader {
	struct store_snapshot *snapshot;
	uint8_t *scratch; /* PAGES_SCRATCH_SIZE bytes of records */
	uint64_t bytes_read;
};

int pages_reader_init(struct pages_reader *r, struct store_snapshot *snapshot);
void pages_reader_free(struct pages_reader *r);
/*
 * Reads pages first..first+count-1 (count <= PAGES_RUN_MAX) into out,
 * count * 4 KiB: zero pages as zeros, the others with one pread per run of
 * records that lie back to back in a pack, each checked against its digest.
 * *all_zero says whether every page was a zero page. 0, or -errno with the
 * failing page in *bad_page and a reason in why (NULL when the store has
 * already reported it).
 */
int pages_read(struct pages_reader *r, uint64_t first, unsigned count, uint8_t *out, bool *all_zero,
	       uint64_t *bad_page, const char **why);

#endif
