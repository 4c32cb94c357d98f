#include "snapshot/pages.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pages_reader_init(struct pages_reader *r, struct store_snapshot *snapshot)
{
	r->snapshot = snapshot;
	r->bytes_read = 0;
	r->scratch = malloc(PAGES_SCRATCH_SIZE);
	return r->scratch ? 0 : -ENOMEM;
}

void pages_reader_free(struct pages_reader *r)
{
	free(r->scratch);
	r->scratch = NULL;
}

/* True if b's record starts where a's ends, in the same pack. */
static bool records_adjacent(const struct store_chunk_loc *a, const struct store_chunk_loc *b)
{
	return a->fd == b->fd && a->offset + a->length == b->offset;
}

/* Reads locs[i..j) with one pread and decodes each record into its page of out. */
static int pages_read_group(struct pages_reader *r, uint64_t first,
			    const struct store_chunk_loc *locs, const uint64_t *index, unsigned i,
			    unsigned j, uint8_t *out, unsigned *failed, const char **why)
{
	uint64_t start = locs[i].offset;
	uint64_t len = locs[j - 1].offset + locs[j - 1].length - start;
	int ret = pread_all(locs[i].fd, r->scratch, len, start);

	if (ret) {
		*failed = i;
		*why = ret == -EIO ? "its pack ends before the chunk does"
				   : "reading its pack failed";
		return ret == -EIO ? -EBADMSG : ret;
	}
	r->bytes_read += len;
	for (unsigned k = i; k < j; k++) {
		ret = store_page_decode(r->snapshot, first + index[k], &locs[k],
					r->scratch + (locs[k].offset - start),
					out + index[k] * STORE_PAGE_SIZE);
		if (ret) {
			*failed = k;
			*why = NULL; /* the store said what was wrong with the chunk */
			return ret;
		}
	}
	return 0;
}

/* A remote store: brings the run's chunks into its cache in parallel reads (else returns 0). */
static int pages_fetch_run(struct pages_reader *r, uint64_t first, unsigned count)
{
	uint32_t pages[PAGES_RUN_MAX] = { 0 };

	count = MIN(count, PAGES_RUN_MAX);
	for (unsigned i = 0; i < count; i++)
		pages[i] = (uint32_t)(first + i);
	return store_pages_fetch(r->snapshot, pages, count);
}

int pages_read(struct pages_reader *r, uint64_t first, unsigned count, uint8_t *out, bool *all_zero,
	       uint64_t *bad_page, const char **why)
{
	struct store_chunk_loc locs[PAGES_RUN_MAX];
	uint64_t index[PAGES_RUN_MAX]; /* page of the run each loc belongs to */
	unsigned n = 0, failed = 0;
	int ret;

	*all_zero = true;
	ret = pages_fetch_run(r, first, count);
	if (ret) {
		*bad_page = first;
		*why = NULL; /* the store has said which page and why */
		return ret;
	}
	for (unsigned i = 0; i < count; i++) {
		ret = store_page_locate(r->snapshot, first + i, &locs[n]);
		if (ret == STORE_PAGE_ZERO) {
			memset(out + (uint64_t)i * STORE_PAGE_SIZE, 0, STORE_PAGE_SIZE);
			continue;
		}
		if (ret < 0 || locs[n].raw_len != STORE_PAGE_SIZE ||
		    locs[n].length > PAGES_SCRATCH_SIZE / PAGES_RUN_MAX) {
			*bad_page = first + i;
			/* where the store failed it has said why */
			*why = ret < 0 ? NULL : "its chunk is not a page";
			return ret < 0 ? ret : -EBADMSG;
		}
		index[n++] = i;
		*all_zero = false;
	}
	for (unsigned i = 0; i < n;) {
		unsigned j = i + 1;

		while (j < n && records_adjacent(&locs[j - 1], &locs[j]))
			j++;
		ret = pages_read_group(r, first, locs, index, i, j, out, &failed, why);
		if (ret) {
			*bad_page = first + index[failed];
			return ret;
		}
		i = j;
	}
	return 0;
}
