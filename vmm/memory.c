#include "vmm/memory.h"
#include "common/common.h"

#define HUGE_PAGES_FROM (4ULL << 20)
#define HUGE_PAGE_SIZE	(2ULL << 20)

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void guest_memory_layout(struct guest_memory *mem, uint64_t size)
{
	uint64_t low = MIN(size, GUEST_LOW_RAM_END);

	mem->host = NULL;
	mem->size = size;
	mem->region_count = 1;
	mem->regions[0] = (struct guest_region){ .gpa = 0, .size = low, .offset = 0 };
	if (size > low) {
		mem->regions[1] = (struct guest_region){ .gpa = GUEST_HIGH_RAM_START,
							 .size = size - low,
							 .offset = low };
		mem->region_count = 2;
	}
}

int guest_memory_map(struct guest_memory *mem)
{
	/*
	 * MAP_NORESERVE: guest pages cost host memory only once touched.
	 * Aligned to 2 MiB, so that huge pages (anonymous, or of a file mapped
	 * over it) line up with the guest's and KVM can map 2 MiB at a time.
	 */
	uint8_t *p = mmap(NULL, mem->size + HUGE_PAGE_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *aligned;

	if (p == MAP_FAILED)
		return -errno;
	aligned = (uint8_t *)ALIGN_UP((uintptr_t)p, HUGE_PAGE_SIZE);
	if (aligned > p)
		munmap(p, (size_t)(aligned - p));
	munmap(aligned + mem->size, (size_t)(p + HUGE_PAGE_SIZE - aligned));
	mem->host = aligned;
	return 0;
}

int guest_memory_huge_pages(struct guest_memory *mem)
{
	/*
	 * Not the first 4 MiB: boot data and small kernels live there, a guest
	 * that only starts up touches a few of its pages, and zeroing whole
	 * 2 MiB pages for it would cost more than the faults it saves.
	 */
	uint64_t skip = MIN(mem->size, HUGE_PAGES_FROM);

	if (mem->size == skip)
		return 0;
	return madvise(mem->host + skip, mem->size - skip, MADV_HUGEPAGE) < 0 ? -errno : 0;
}

void guest_memory_unmap(struct guest_memory *mem)
{
	if (mem->host)
		munmap(mem->host, mem->size);
	mem->host = NULL;
}

void *guest_memory_ptr(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < mem->region_count; i++) {
		const struct guest_region *r = &mem->regions[i];

		/* Written so that no sum can overflow, whatever gpa and len are. */
		if (gpa < r->gpa || gpa - r->gpa > r->size || len > r->size - (gpa - r->gpa))
			continue;
		return mem->host + r->offset + (gpa - r->gpa);
	}
	return NULL;
}

void guest_memory_clear(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_memory_ptr(mem, gpa, len);
	uint8_t *first = p ? (uint8_t *)ALIGN_UP((uintptr_t)p, PAGE_SIZE) : NULL;
	uint8_t *last = p ? (uint8_t *)ALIGN_DOWN((uintptr_t)(p + len), PAGE_SIZE) : NULL;

	if (!p)
		return;
	if (first >= last || madvise(first, (size_t)(last - first), MADV_DONTNEED)) {
		memset(p, 0, len);
		return;
	}
	memset(p, 0, (size_t)(first - p));
	memset(last, 0, (size_t)(p + len - last));
}

uint64_t guest_memory_low_end(const struct guest_memory *mem)
{
	return mem->regions[0].size;
}
