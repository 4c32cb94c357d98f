/*
 * The split-virtqueue walker, shared by every virtio device. The guest is
 * untrusted and runs concurrently: each descriptor and ring entry is copied
 * out of guest memory once and checked on the copy; every buffer address goes
 * through guest_memory_ptr(); a chain visits at most as many descriptors as
 * its table holds (so a loop ends as an error) and at most
 * VIRTQ_MAX_SEGMENTS buffers.
 */
#include "vmm/virtio/virtio.h"
#include "common/common.h"

#include <string.h>

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[];
};

static uint64_t desc_table_size(uint16_t size)
{
	return 16ULL * size;
}

static uint64_t avail_ring_size(uint16_t size)
{
	return 6 + 2ULL * size;
}

static uint64_t used_ring_size(uint16_t size)
{
	return 6 + 8ULL * size;
}

const char *virtq_check(const struct virtq_state *s, uint16_t max_size,
			const struct guest_memory *mem)
{
	if (!s->size || s->size > max_size)
		return "queue size is 0 or above the maximum";
	if (s->size & (s->size - 1))
		return "queue size is not a power of two";
	if (s->desc_addr % 16 || s->avail_addr % 2 || s->used_addr % 4)
		return "ring address misaligned";
	if (!mem || !guest_memory_ptr(mem, s->desc_addr, desc_table_size(s->size)) ||
	    !guest_memory_ptr(mem, s->avail_addr, avail_ring_size(s->size)) ||
	    !guest_memory_ptr(mem, s->used_addr, used_ring_size(s->size)))
		return "ring outside guest RAM";
	return NULL;
}

/* The rings were checked when the queue went live; check again, cheaply, for restored queues. */
static bool virtq_rings(const struct virtq *q, struct virtq_desc **desc, struct virtq_avail **avail,
			struct virtq_used **used)
{
	if (virtq_check(&q->s, q->max_size, q->mem))
		return false;
	*desc = guest_memory_ptr(q->mem, q->s.desc_addr, desc_table_size(q->s.size));
	*avail = guest_memory_ptr(q->mem, q->s.avail_addr, avail_ring_size(q->s.size));
	*used = guest_memory_ptr(q->mem, q->s.used_addr, used_ring_size(q->s.size));
	return true;
}

struct chain_walk {
	const uint8_t *table; /* descriptors, possibly unaligned (indirect tables) */
	uint32_t table_size;
	uint32_t visited;
	bool indirect;
	bool writable_seen;
};

/* Follows an indirect descriptor: its table replaces the rest of the chain. */
static const char *chain_enter_indirect(struct virtq *q, struct chain_walk *w,
					const struct virtq_desc *d)
{
	if (w->indirect)
		return "indirect descriptor inside an indirect table";
	if (d->flags & VIRTQ_DESC_F_NEXT)
		return "indirect descriptor with NEXT set";
	if (!d->len || d->len % sizeof(struct virtq_desc) ||
	    d->len / sizeof(struct virtq_desc) > VIRTQ_MAX_INDIRECT)
		return "indirect table of a bad length";
	w->table = guest_memory_ptr(q->mem, d->addr, d->len);
	if (!w->table)
		return "indirect table outside guest RAM";
	w->table_size = d->len / sizeof(struct virtq_desc);
	w->visited = 0;
	w->indirect = true;
	return NULL;
}

static const char *chain_add_buffer(struct virtq *q, struct chain_walk *w,
				    struct virtq_chain *chain, const struct virtq_desc *d)
{
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;
	uint8_t *host;

	if (!writable && w->writable_seen)
		return "device-readable buffer after a writable one";
	w->writable_seen |= writable;
	if (!d->len)
		return NULL;
	if (chain->count == VIRTQ_MAX_SEGMENTS)
		return "too many buffers in one chain";
	host = guest_memory_ptr(q->mem, d->addr, d->len);
	if (!host)
		return "buffer outside guest RAM";
	chain->segments[chain->count++] = (struct virtq_segment){ host, d->len, writable };
	if (writable)
		chain->writable_len += d->len;
	else
		chain->readable_len += d->len;
	return NULL;
}

/* Walks the chain from `head`; NULL when every descriptor is good, else why not. */
static const char *chain_walk(struct virtq *q, const struct virtq_desc *ring,
			      struct virtq_chain *chain)
{
	struct chain_walk w = { (const uint8_t *)ring, q->s.size, 0, false, false };
	uint32_t index = chain->head;

	for (;;) {
		struct virtq_desc d;
		const char *why;

		if (w.visited++ == w.table_size)
			return "chain longer than its table (a loop)";
		memcpy(&d, w.table + (size_t)index * sizeof(d), sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			why = chain_enter_indirect(q, &w, &d);
			if (why)
				return why;
			index = 0;
			continue;
		}
		why = chain_add_buffer(q, &w, chain, &d);
		if (why)
			return why;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return NULL;
		if (d.next >= w.table_size)
			return "next index outside the table";
		index = d.next;
	}
}

enum virtq_pop_result virtq_pop(struct virtq *q, struct virtq_chain *chain, const char **why)
{
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	uint16_t avail_idx, head;

	*why = NULL;
	if (!q->s.ready)
		return VIRTQ_EMPTY;
	if (!virtq_rings(q, &desc, &avail, &used)) {
		*why = "ring outside guest RAM";
		return VIRTQ_BROKEN;
	}
	/* acquire: the ring entries and descriptors were written before the index */
	avail_idx = __atomic_load_n(&avail->idx, __ATOMIC_ACQUIRE);
	if (avail_idx == q->s.last_avail)
		return VIRTQ_EMPTY;
	if ((uint16_t)(avail_idx - q->s.last_avail) > q->s.size) {
		*why = "avail index ran more than a queue's worth ahead";
		return VIRTQ_BROKEN;
	}
	head = __atomic_load_n(&avail->ring[q->s.last_avail % q->s.size], __ATOMIC_RELAXED);
	if (head >= q->s.size) {
		*why = "avail ring names a descriptor outside the table";
		return VIRTQ_BROKEN;
	}
	q->s.last_avail++;
	memset(chain, 0, offsetof(struct virtq_chain, segments));
	chain->head = head;
	chain->readable_len = chain->writable_len = 0;
	*why = chain_walk(q, desc, chain);
	return *why ? VIRTQ_BAD_CHAIN : VIRTQ_CHAIN;
}

void virtq_push_many(struct virtq *q, const uint16_t *heads, const uint32_t *written,
		     unsigned count)
{
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;

	if (!q->s.ready || !virtq_rings(q, &desc, &avail, &used))
		return;
	for (unsigned i = 0; i < count; i++) {
		struct virtq_used_elem elem = { heads[i], written[i] };

		memcpy(&used->ring[q->s.used_idx % q->s.size], &elem, sizeof(elem));
		q->s.used_idx++;
	}
	/* release: the elements are visible before the index that publishes them */
	__atomic_store_n(&used->idx, q->s.used_idx, __ATOMIC_RELEASE);
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	virtq_push_many(q, &head, &written, 1);
}

void virtq_unpop(struct virtq *q, uint16_t count)
{
	q->s.last_avail = (uint16_t)(q->s.last_avail - count);
}

bool virtq_interrupt_suppressed(const struct virtq *q)
{
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;

	if (!q->s.ready || !virtq_rings(q, &desc, &avail, &used))
		return false;
	/* the used index store must be visible before the flag is read */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(&avail->flags, __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT;
}

/* Copies between a flat buffer and the chain's segments of one direction. */
static size_t virtq_chain_copy(const struct virtq_chain *chain, bool writable, uint64_t offset,
			       uint8_t *flat, size_t len, bool to_chain)
{
	size_t done = 0;

	for (unsigned i = 0; i < chain->count && done < len; i++) {
		const struct virtq_segment *seg = &chain->segments[i];
		size_t n;

		if (seg->writable != writable)
			continue;
		if (offset >= seg->len) {
			offset -= seg->len;
			continue;
		}
		n = MIN(len - done, seg->len - (size_t)offset);
		if (to_chain)
			memcpy(seg->host + offset, flat + done, n);
		else
			memcpy(flat + done, seg->host + offset, n);
		done += n;
		offset = 0;
	}
	return done;
}

size_t virtq_chain_read(const struct virtq_chain *chain, uint64_t offset, void *dst, size_t len)
{
	return virtq_chain_copy(chain, false, offset, dst, len, false);
}

size_t virtq_chain_write(const struct virtq_chain *chain, uint64_t offset, const void *src,
			 size_t len)
{
	return virtq_chain_copy(chain, true, offset, (uint8_t *)src, len, true);
}
