/*
 * Test helper: copies a snapshot in a store under a new name with its state
 * file damaged in one precise way (and signed again where the damage is not
 * the checksum itself, so that a test reaches the check it means to
 * exercise). Guest memory is copied unchanged.
 *   snapshot_tamper STORE SRC DST ACTION...
 * ACTION: truncate BYTES | flip OFFSET | major N | minor N | vendor TEXT
 *         | section-length ID LEN | section-byte ID OFFSET VALUE
 */
#include "common/common.h"
#include "snapshot/format.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Finds section id in the state file; returns its header's offset or 0. */
static size_t section_find(uint8_t *data, unsigned long id)
{
	struct snapshot_header *h = (struct snapshot_header *)data;
	size_t pos = sizeof(*h);

	for (unsigned i = 0; i < h->section_count; i++) {
		struct snapshot_section_header *sh = (void *)(data + pos);

		if (sh->id == id)
			return pos;
		pos += sizeof(*sh) + ((sh->length + 7) & ~7ULL);
	}
	return 0;
}

/* Applies the action; returns 1 if the trailer must be signed again, 0 if not, -1 on error. */
static int tamper(uint8_t *data, size_t *len, int argc, char **argv)
{
	struct snapshot_header *h = (struct snapshot_header *)data;
	const char *action = argv[0];
	size_t pos;

	if (!strcmp(action, "truncate") && argc == 2) {
		*len = MIN(*len, (size_t)strtoul(argv[1], NULL, 0));
		return 0;
	}
	if (!strcmp(action, "flip") && argc == 2) {
		data[strtoul(argv[1], NULL, 0) % *len] ^= 0x5a;
		return 0;
	}
	if (!strcmp(action, "major") && argc == 2) {
		h->major = (uint16_t)atoi(argv[1]);
	} else if (!strcmp(action, "minor") && argc == 2) {
		h->minor = (uint16_t)atoi(argv[1]);
	} else if (!strcmp(action, "vendor") && argc == 2) {
		memset(h->cpu_vendor, 0, sizeof(h->cpu_vendor));
		memcpy(h->cpu_vendor, argv[1], strnlen(argv[1], sizeof(h->cpu_vendor)));
	} else if (!strcmp(action, "section-length") && argc == 3 &&
		   (pos = section_find(data, strtoul(argv[1], NULL, 0)))) {
		((struct snapshot_section_header *)(data + pos))->length =
			strtoull(argv[2], NULL, 0);
	} else if (!strcmp(action, "section-byte") && argc == 4 &&
		   (pos = section_find(data, strtoul(argv[1], NULL, 0)))) {
		data[pos + sizeof(struct snapshot_section_header) + strtoul(argv[2], NULL, 0)] =
			(uint8_t)strtoul(argv[3], NULL, 0);
	} else {
		return -1;
	}
	return 1;
}

/* Copies every page of src into w, 64 pages at a time. */
static int copy_pages(struct store_snapshot *src, struct store_writer *w)
{
	static uint8_t buf[64 * STORE_PAGE_SIZE];
	uint64_t pages = store_snapshot_page_count(src);

	for (uint64_t p = 0; p < pages; p += 64) {
		uint64_t n = MIN((uint64_t)64, pages - p);

		for (uint64_t i = 0; i < n; i++) {
			if (store_page_read(src, p + i, buf + i * STORE_PAGE_SIZE))
				return -1;
		}
		if (store_snapshot_put_pages(w, p, buf, n))
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct store_commit_info info = { 0 };
	struct store_snapshot *src;
	struct store_writer *w;
	struct store *store;
	uint8_t *data;
	size_t len;
	int sign;

	if (argc < 5 || store_open(argv[1], STORE_OPEN_WRITE, &store) ||
	    store_snapshot_open(store, argv[2], &src) ||
	    store_blob_read(src, "state", &data, &len)) {
		fprintf(stderr, "usage: snapshot_tamper STORE SRC DST ACTION...\n");
		return 2;
	}
	sign = tamper(data, &len, argc - 4, argv + 4);
	if (sign < 0) {
		fprintf(stderr, "snapshot_tamper: bad action\n");
		return 2;
	}
	if (sign && len >= sizeof(struct snapshot_trailer)) {
		struct snapshot_trailer *t = (void *)(data + len - sizeof(*t));

		sha256_digest(data, len - sizeof(*t), t->sha256);
	}
	if (store_snapshot_begin(store, argv[3], store_snapshot_page_count(src) * STORE_PAGE_SIZE,
				 &w) ||
	    copy_pages(src, w) || store_snapshot_put_blob(w, "state", data, len) ||
	    store_snapshot_commit(w, &info, NULL))
		return 1;
	free(data);
	store_snapshot_close(src);
	store_close(store);
	return 0;
}
