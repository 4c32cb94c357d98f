/*
 * libFuzzer target for the virtqueue walker: the input becomes guest RAM
 * (two regions, as on either side of the MMIO hole) holding a queue's
 * descriptor table and rings, whose size the first byte picks. Every chain
 * the walker accepts is read and written end to end, so AddressSanitizer
 * catches any host access outside the RAM buffer.
 */
#include "vmm/virtio/virtio.h"

#include <stdlib.h>
#include <string.h>

#define REGION_SIZE 0x8000
#define HIGH_GPA    0x100000000ULL /* where the second region starts */
#define MAX_POPS    300

static void touch(const struct virtq_chain *chain)
{
	static uint8_t scratch[1 << 16];
	volatile uint8_t sink = 0;

	for (unsigned i = 0; i < chain->count; i++) {
		const struct virtq_segment *seg = &chain->segments[i];

		sink ^= seg->host[0] ^ seg->host[seg->len - 1];
		if (seg->writable)
			memset(seg->host, 0xa5, seg->len);
	}
	(void)sink;
	virtq_chain_read(chain, 0, scratch, sizeof(scratch));
	virtq_chain_write(chain, 1, scratch, sizeof(scratch));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_memory mem = { .size = 2 * REGION_SIZE, .region_count = 2 };
	struct virtq q = { .max_size = VIRTQ_MAX_SIZE, .mem = &mem };
	struct virtq_chain chain;
	const char *why;

	if (size < 8)
		return 0;
	mem.host = malloc(mem.size); /* exactly the RAM: ASan guards both ends */
	mem.regions[0] = (struct guest_region){ 0, REGION_SIZE, 0 };
	mem.regions[1] = (struct guest_region){ HIGH_GPA, REGION_SIZE, REGION_SIZE };
	memset(mem.host, 0, mem.size);
	memcpy(mem.host, data + 8, size - 8 < mem.size ? size - 8 : mem.size);
	/* a power-of-two size, rings at offsets the input picks (checked like a driver's) */
	q.s.size = (uint16_t)(1u << (data[0] % 9));
	q.s.desc_addr = (uint64_t)(data[1] & 0x7f) << 8;
	q.s.avail_addr = ((uint64_t)(data[2] & 0x7f) << 8) | (data[3] & 0x1e);
	q.s.used_addr = ((uint64_t)(data[4] & 0x7f) << 8) | (data[5] & 0x1c);
	q.s.last_avail = (uint16_t)(data[6] | data[7] << 8);
	q.s.used_idx = q.s.last_avail;
	q.s.ready = !virtq_check(&q.s, q.max_size, &mem);
	for (unsigned i = 0; i < MAX_POPS && q.s.ready; i++) {
		enum virtq_pop_result r = virtq_pop(&q, &chain, &why);

		if (r == VIRTQ_EMPTY || r == VIRTQ_BROKEN)
			break;
		if (r == VIRTQ_CHAIN)
			touch(&chain);
		virtq_push(&q, chain.head, r == VIRTQ_CHAIN ? (uint32_t)chain.writable_len : 0);
		virtq_interrupt_suppressed(&q);
	}
	free(mem.host);
	return 0;
}
