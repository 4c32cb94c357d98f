/*
 * Scratch directories for the fuzzers' host resources (stores, sockets),
 * removed with everything in them when the fuzzer exits, which libFuzzer
 * does through exit() at the end of a bounded run.
 */
#ifndef SNAPVM_TESTS_FUZZ_SCRATCH_H
#define SNAPVM_TESTS_FUZZ_SCRATCH_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_scratch_path[64];

static int fuzz_scratch_remove_one(const char *path, const struct stat *st, int type,
				   struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	remove(path);
	return 0;
}

static void fuzz_scratch_remove(void)
{
	nftw(fuzz_scratch_path, fuzz_scratch_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Makes /tmp/snapvm-fuzz-NAME-XXXXXX (once per process) and returns its path. */
static const char *fuzz_scratch_dir(const char *name)
{
	snprintf(fuzz_scratch_path, sizeof(fuzz_scratch_path), "/tmp/snapvm-fuzz-%s-XXXXXX", name);
	if (!mkdtemp(fuzz_scratch_path)) {
		perror("fuzz scratch directory");
		abort();
	}
	atexit(fuzz_scratch_remove);
	return fuzz_scratch_path;
}

#endif
