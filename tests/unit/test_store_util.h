/* Helpers shared by the store's unit tests: scratch directories and page contents. */
#ifndef SNAPVM_TEST_STORE_UTIL_H
#define SNAPVM_TEST_STORE_UTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

static inline int test_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* Makes a fresh scratch directory in dir (PATH_MAX bytes). */
static inline void test_dir_make(char *dir)
{
	strcpy(dir, "/tmp/snapvm-store-test.XXXXXX");
	if (!mkdtemp(dir))
		abort();
}

static inline void test_dir_remove(const char *dir)
{
	nftw(dir, test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline uint64_t test_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Fills len bytes with noise from seed (incompressible). */
static inline void test_fill_random(void *buf, size_t len, uint64_t seed)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = seed = test_mix(seed);

		memcpy(p + i, &v, len - i < 8 ? len - i : 8);
	}
}

/* Fills len bytes with text-like data from seed (compresses well). */
static inline void test_fill_text(void *buf, size_t len, uint64_t seed)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog ";
	char *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = words[(i + seed) % (sizeof(words) - 1)];
}

/* Counts the files in dir whose name ends in suffix. */
static inline int test_count_files(const char *dir, const char *suffix)
{
	char cmd[4200];
	int n = -1;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ls -a '%s' 2>/dev/null | grep -c -- '%s$'", dir, suffix);
	f = popen(cmd, "r");
	if (f) {
		if (fscanf(f, "%d", &n) != 1)
			n = -1;
		pclose(f);
	}
	return n;
}

#endif
