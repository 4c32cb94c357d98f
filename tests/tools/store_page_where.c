/*
 * Test helper: where a snapshot's guest page is stored, so that a test can
 * damage exactly that chunk. Prints "PACK_PATH OFFSET LENGTH", or "zero".
 *   store_page_where DIR NAME PAGE|ws:N    (ws:N: the working set's Nth page)
 */
#include "store/store.h"
#include "common/common.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct store_chunk_loc loc;
	struct store_snapshot *snap;
	struct store *store;
	char link[64], path[PATH_MAX];
	uint64_t page;
	ssize_t n;
	int ret;

	if (argc != 4 || store_open(argv[1], STORE_OPEN_READ, &store) ||
	    store_snapshot_open(store, argv[2], &snap)) {
		fprintf(stderr, "usage: store_page_where DIR NAME PAGE|ws:N\n");
		return 2;
	}
	if (!strncmp(argv[3], "ws:", 3)) {
		uint32_t *pages;
		size_t count, nth = strtoul(argv[3] + 3, NULL, 10);

		if (store_workset_get(store, argv[2], &pages, &count)) {
			ret = 1;
			goto out;
		}
		if (nth >= count) {
			free(pages);
			ret = 1;
			goto out;
		}
		page = pages[nth];
		free(pages);
	} else {
		page = strtoull(argv[3], NULL, 0);
	}
	ret = store_page_locate(snap, page, &loc);
	if (ret == STORE_PAGE_ZERO) {
		printf("zero\n");
		ret = 0;
	} else if (!ret) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", loc.fd);
		n = readlink(link, path, sizeof(path) - 1);
		ret = n < 0;
		if (n >= 0) {
			path[n] = '\0';
			printf("%s %llu %u %llu\n", path, (unsigned long long)loc.offset,
			       loc.length, (unsigned long long)page);
		}
	}
out:
	store_snapshot_close(snap);
	store_close(store);
	return ret ? 1 : 0;
}
