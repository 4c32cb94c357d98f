/*
 * libFuzzer target for the export-file importer (store/import.c, format in
 * docs/store-format.md). The first byte picks what the rest is:
 *   even: an export file, imported into a scratch store. Mutations rarely
 *         keep its checksums right, so each input is imported as it is and
 *         again with the snapshot record's checksum and the trailer made to
 *         match: that gets damaged records and chunks all the way to the
 *         commit. A snapshot that does get imported is removed again, so
 *         that the next input finds the same store.
 *   odd:  a manifest, as the export's manifest chunks hold it once their
 *         digests matched (which a mutated chunk's never does), decoded as
 *         import does, for the page count it states if a record could.
 */
#include "store/digest.h"
#include "store/export.h"
#include "store/manifest.h"
#include "common/common.h"
#include "tests/fuzz/fuzz_scratch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store *store;
static int file_fd = -1;
static char file_path[64];

static void setup(void)
{
	const char *dir = fuzz_scratch_dir("import");
	char path[sizeof(fuzz_scratch_path) + 8];

	file_fd = memfd_create("fuzz-export", 0);
	snprintf(file_path, sizeof(file_path), "/proc/self/fd/%d", file_fd);
	if (file_fd < 0) {
		perror("fuzz import set-up");
		abort();
	}
	snprintf(path, sizeof(path), "%s/store", dir);
	if (store_open(path, STORE_OPEN_WRITE, &store)) {
		fprintf(stderr, "fuzz import: cannot make a store in %s\n", path);
		abort();
	}
}

static void import(const uint8_t *data, size_t size)
{
	char name[STORE_NAME_MAX + 1];

	if (ftruncate(file_fd, 0) < 0 || pwrite(file_fd, data, size, 0) != (ssize_t)size)
		abort();
	if (store_import(store, file_path, NULL, name) == 0 && store_snapshot_remove(store, name))
		abort();
}

/* The record's length and checksum (manifest.c's layout), where the header says it is. */
static void record_fix(uint8_t *file, size_t size)
{
	uint32_t name_len, record_len, sum;
	uint8_t *record;

	memcpy(&name_len, file + 12, 4);
	memcpy(&record_len, file + 16, 4);
	if (record_len < 16 || name_len > size || record_len > size - name_len ||
	    EXPORT_HEADER_SIZE + name_len + record_len > size - EXPORT_TRAILER_SIZE)
		return;
	record = file + EXPORT_HEADER_SIZE + name_len;
	memcpy(record + 12, &record_len, 4);
	sum = checksum32(record + 12, record_len - 12);
	memcpy(record + 8, &sum, 4);
}

static void import_fixed(const uint8_t *data, size_t size)
{
	uint8_t digest[STORE_DIGEST_SIZE], *copy = malloc(size);

	memcpy(copy, data, size);
	record_fix(copy, size);
	sha256_digest(copy, size - EXPORT_TRAILER_SIZE, digest);
	export_trailer_encode(size - EXPORT_TRAILER_SIZE, digest,
			      copy + size - EXPORT_TRAILER_SIZE);
	import(copy, size);
	free(copy);
}

static void manifest_check(const uint8_t *data, size_t size)
{
	struct manifest m;
	uint64_t pages = 0;
	uint8_t *buf = malloc(size ? size : 1); /* exactly the manifest: ASan guards its end */
	volatile uint64_t sink = 0;

	memcpy(buf, data, size);
	if (size >= 24)
		memcpy(&pages, data + 16, 8);
	/* import's page count comes from a checked record: RAM of at most STORE_RAM_MAX */
	pages = MIN(pages, STORE_RAM_MAX / STORE_PAGE_SIZE);
	if (manifest_decode(buf, size, pages, &m) == 0) {
		for (uint64_t i = 0; i < m.page_count; i++)
			sink += m.page_map[i] ? m.unique[m.page_map[i] - 1][0] : 0;
		for (uint32_t i = 0; i < m.blob_count; i++)
			for (uint32_t j = 0; j < m.blobs[i].chunk_count; j++)
				sink += m.blobs[i].digests[j][31];
	}
	manifest_free(&m);
	(void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!store)
		setup();
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		manifest_check(data + 1, size - 1);
		return 0;
	}
	import(data + 1, size - 1);
	if (size - 1 >= EXPORT_HEADER_SIZE + EXPORT_TRAILER_SIZE)
		import_fixed(data + 1, size - 1);
	return 0;
}
