/*
 * Memory correctness across a snapshot: before it, fill tmpfs (page cache)
 * and an anonymous mapping of this process with a pattern in which every
 * 8-byte word depends on the seed and on its own position; after a restore,
 * check every word. A page restored at the wrong place, a stale page or a
 * zero page all differ from the pattern, and no two pages are alike, so the
 * store's deduplication cannot hide a mix-up either.
 */
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PATTERN_FILE "/tmp/pattern"
#define CHUNK	     (1u << 20)

static struct {
	unsigned mib;
	uint64_t seed;
	uint64_t *mapping;
} memory;

/* splitmix64 of the word's index: cheap, and every word differs */
static uint64_t pattern_word(uint64_t seed, uint64_t index)
{
	uint64_t z = seed + (index + 1) * 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void pattern_chunk(uint64_t *words, uint64_t seed, uint64_t first)
{
	for (uint64_t i = 0; i < CHUNK / 8; i++)
		words[i] = pattern_word(seed, first + i);
}

/* The index of the first word of CHUNK words at FIRST that differs, or -1. */
static long pattern_mismatch(const uint64_t *words, uint64_t seed, uint64_t first)
{
	for (uint64_t i = 0; i < CHUNK / 8; i++)
		if (words[i] != pattern_word(seed, first + i))
			return (long)i;
	return -1;
}

int memory_fill(unsigned mib, uint64_t seed)
{
	uint64_t *chunk = malloc(CHUNK);
	int fd = open(PATTERN_FILE, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	memory.mapping = mmap(NULL, (size_t)mib * CHUNK, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!chunk || fd < 0 || memory.mapping == MAP_FAILED) {
		perror("snapvm-helper: memory fill");
		return -1;
	}
	for (uint64_t c = 0; c < mib; c++) {
		pattern_chunk(chunk, seed, c * (CHUNK / 8));
		if (write_all(fd, chunk, CHUNK) < 0) {
			perror("snapvm-helper: " PATTERN_FILE);
			return -1;
		}
		/* the mapping's pattern is another seed's, so the two never match each other */
		pattern_chunk(memory.mapping + c * (CHUNK / 8), ~seed, c * (CHUNK / 8));
	}
	close(fd);
	free(chunk);
	memory.mib = mib;
	memory.seed = seed;
	return 0;
}

/* Checks the file; 0, or -1 with the first bad byte's offset in *where. */
static int memory_check_file(uint64_t *chunk, uint64_t *where)
{
	int fd = open(PATTERN_FILE, O_RDONLY);

	if (fd < 0)
		return -2;
	for (uint64_t c = 0; c < memory.mib; c++) {
		long bad;

		if (read(fd, chunk, CHUNK) != CHUNK) {
			close(fd);
			return -2;
		}
		bad = pattern_mismatch(chunk, memory.seed, c * (CHUNK / 8));
		if (bad >= 0) {
			*where = c * CHUNK + (uint64_t)bad * 8;
			close(fd);
			return -1;
		}
	}
	close(fd);
	return 0;
}

void memory_check(char *reply, size_t size)
{
	uint64_t *chunk = malloc(CHUNK), where = 0;
	int file;

	if (!memory.mib || !chunk) {
		snprintf(reply, size, "ERR memcheck: nothing filled (serve --fill MIB)");
		free(chunk);
		return;
	}
	file = memory_check_file(chunk, &where);
	free(chunk);
	if (file == -2) {
		snprintf(reply, size, "ERR memcheck: cannot read %s", PATTERN_FILE);
		return;
	}
	if (file == -1) {
		snprintf(reply, size, "ERR memcheck: tmpfs byte %llu", (unsigned long long)where);
		return;
	}
	for (uint64_t c = 0; c < memory.mib; c++) {
		long bad = pattern_mismatch(memory.mapping + c * (CHUNK / 8), ~memory.seed,
					    c * (CHUNK / 8));

		if (bad >= 0) {
			snprintf(reply, size, "ERR memcheck: mapping byte %llu",
				 (unsigned long long)(c * CHUNK + (uint64_t)bad * 8));
			return;
		}
	}
	snprintf(reply, size, "OK memcheck %u MiB tmpfs, %u MiB mapping", memory.mib, memory.mib);
}

void memory_corrupt(char *reply, size_t size)
{
	if (!memory.mib) {
		snprintf(reply, size, "ERR corrupt: nothing filled");
		return;
	}
	/* one byte in the middle of the mapping: one page that is no longer the pattern's */
	((unsigned char *)memory.mapping)[(size_t)memory.mib * CHUNK / 2 + 5] ^= 0x40;
	snprintf(reply, size, "OK corrupt mapping byte %llu",
		 (unsigned long long)memory.mib * CHUNK / 2 + 5);
}
