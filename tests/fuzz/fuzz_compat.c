/*
 * What clang 14 leaves out of the fuzzers' module archives. It emits a
 * target_clones function (store/digest.c's page_is_zero) as an ifunc named
 * "page_is_zero.ifunc" that no other file's call can reach: this plain
 * version, weak so that a newer clang's own symbol wins, answers instead.
 */
#include "store/digest.h"

#include <stdbool.h>
#include <stdint.h>

__attribute__((weak)) bool page_is_zero(const void *page)
{
	const uint64_t *words = page;

	for (size_t i = 0; i < STORE_PAGE_SIZE / sizeof(uint64_t); i++)
		if (words[i])
			return false;
	return true;
}
