/*
 * libFuzzer target for the export-file importer (store/import.c, format in
 * docs/store-format.md): the input is an export file, imported into a
 * scratch store. Mutations rarely keep the SHA-256 trailer right, so each
 * input is imported as it is and again with a trailer made to match: that
 * gets damaged records, manifests and chunks all the way to the commit. A
 * snapshot that does get imported is removed again, so that the next input
 * finds the same store (and the same chunks already in it).
 */
#include "store/export.h"
#include "common/common.h"

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
	static char dir[] = "/tmp/snapvm-fuzz-import-XXXXXX";
	char path[sizeof(dir) + 8];

	file_fd = memfd_create("fuzz-export", 0);
	snprintf(file_path, sizeof(file_path), "/proc/self/fd/%d", file_fd);
	if (!mkdtemp(dir) || file_fd < 0) {
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t digest[STORE_DIGEST_SIZE], *copy;

	if (!store)
		setup();
	import(data, size);
	if (size < EXPORT_HEADER_SIZE + EXPORT_TRAILER_SIZE)
		return 0;
	copy = malloc(size);
	memcpy(copy, data, size);
	sha256_digest(copy, size - EXPORT_TRAILER_SIZE, digest);
	export_trailer_encode(size - EXPORT_TRAILER_SIZE, digest,
			      copy + size - EXPORT_TRAILER_SIZE);
	import(copy, size);
	free(copy);
	return 0;
}
