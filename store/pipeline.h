/*
 * The page pipeline of a snapshot write (private to store/): worker threads,
 * one per CPU, look at batches of pages (zero check, SHA-256, index lookup,
 * compression of pages not yet stored) while the calling thread takes the
 * results in page order and appends the new chunks to packs.
 */
#ifndef SNAPVM_STORE_PIPELINE_H
#define SNAPVM_STORE_PIPELINE_H

#include <stdint.h>

#include "store/index.h"

enum page_kind {
	PAGE_ZERO,   /* all zero: recorded in the page map only */
	PAGE_STORED, /* already in the index: entry says where */
	PAGE_NEW,    /* not in the index: record holds its encoded chunk */
};

struct page_result {
	uint8_t kind;
	uint8_t digest[STORE_DIGEST_SIZE];
	struct chunk_entry entry; /* PAGE_STORED: from the index; PAGE_NEW: lengths and codec */
	uint32_t record_len;	  /* PAGE_NEW */
	const uint8_t *record;	  /* PAGE_NEW, valid during the consume call */
};

/* Takes the result for page i (0-based within the run); non-zero stops the run. */
typedef int page_consume_fn(void *opaque, uint64_t i, const struct page_result *result);

/* Runs count pages at mem through the pipeline, calling consume for each in order. */
int pipeline_run(struct index *index, const uint8_t *mem, uint64_t count, page_consume_fn *consume,
		 void *opaque);

#endif
