/*
 * `evil`: hands the entropy, block and vsock devices malformed descriptor
 * chains of every kind the walker knows, then checks that each device still
 * serves a good request. snapvm must log the errors and keep running; the
 * guest must get every chain back unused, or see the device ask for a reset
 * (a corrupt ring), after which it sets the device up again. The virtio
 * console is left alone: it may be carrying this very conversation.
 */
#include "virtio.h"

#define OUTSIDE_RAM 0xe0000000ULL /* in the MMIO hole, no device there */
#define BIG_TABLE   300		  /* descriptors: above the device's indirect limit */

static GUEST_BUFFER struct vq_desc table[BIG_TABLE] __attribute__((aligned(4096)));
static GUEST_BUFFER uint8_t buffer[4096] __attribute__((aligned(4096)));

/* Fills the queue's descriptors for one case; returns the head to post. */
typedef uint16_t (*evil_case_fn)(struct vq_desc *d);

#define W VQ_F_WRITE
#define N VQ_F_NEXT
#define I VQ_F_INDIRECT

static struct vq_desc buf_desc(uint16_t flags, uint16_t next)
{
	return (struct vq_desc){ (uint64_t)buffer, 64, flags, next };
}

static uint16_t case_outside_ram(struct vq_desc *d)
{
	d[0] = (struct vq_desc){ OUTSIDE_RAM, 64, W, 0 };
	return 0;
}

static uint16_t case_length_wraps(struct vq_desc *d)
{
	d[0] = (struct vq_desc){ (uint64_t)buffer, 0xffffffffu, W, 0 };
	return 0;
}

static uint16_t case_next_out_of_range(struct vq_desc *d)
{
	d[0] = buf_desc(W | N, 200);
	return 0;
}

static uint16_t case_loop(struct vq_desc *d)
{
	d[0] = buf_desc(W | N, 1);
	d[1] = buf_desc(W | N, 0);
	return 0;
}

static uint16_t case_self_loop(struct vq_desc *d)
{
	d[3] = buf_desc(W | N, 3);
	return 3;
}

static uint16_t case_readable_after_writable(struct vq_desc *d)
{
	d[0] = buf_desc(W | N, 1);
	d[1] = buf_desc(0, 0);
	return 0;
}

static uint16_t indirect(struct vq_desc *d, uint64_t addr, uint32_t entries, uint16_t flags)
{
	d[0] = (struct vq_desc){ addr, entries * 16, (uint16_t)(I | flags), 1 };
	d[1] = buf_desc(W, 0);
	return 0;
}

static uint16_t case_indirect_too_long(struct vq_desc *d)
{
	for (unsigned i = 0; i < BIG_TABLE; i++)
		table[i] = buf_desc(W | N, (uint16_t)(i + 1));
	table[BIG_TABLE - 1].flags = W;
	return indirect(d, (uint64_t)table, BIG_TABLE, 0);
}

static uint16_t case_indirect_odd_length(struct vq_desc *d)
{
	table[0] = buf_desc(W, 0);
	indirect(d, (uint64_t)table, 1, 0);
	d[0].len = 20;
	return 0;
}

static uint16_t case_indirect_empty(struct vq_desc *d)
{
	return indirect(d, (uint64_t)table, 0, 0);
}

static uint16_t case_indirect_outside_ram(struct vq_desc *d)
{
	return indirect(d, OUTSIDE_RAM, 4, 0);
}

static uint16_t case_indirect_nested(struct vq_desc *d)
{
	table[0] = (struct vq_desc){ (uint64_t)&table[4], 32, I, 0 };
	table[4] = buf_desc(W, 0);
	return indirect(d, (uint64_t)table, 1, 0);
}

static uint16_t case_indirect_with_next(struct vq_desc *d)
{
	table[0] = buf_desc(W, 0);
	return indirect(d, (uint64_t)table, 1, N);
}

static uint16_t case_indirect_loop(struct vq_desc *d)
{
	table[0] = buf_desc(W | N, 1);
	table[1] = buf_desc(W | N, 0);
	return indirect(d, (uint64_t)table, 2, 0);
}

static uint16_t case_too_many_buffers(struct vq_desc *d)
{
	for (unsigned i = 0; i < 100; i++)
		table[i] = (struct vq_desc){ (uint64_t)buffer + i, 1, W | N, (uint16_t)(i + 1) };
	table[99].flags = W;
	return indirect(d, (uint64_t)table, 100, 0);
}

static const evil_case_fn chain_cases[] = {
	case_outside_ram,	case_length_wraps,
	case_next_out_of_range, case_loop,
	case_self_loop,		case_readable_after_writable,
	case_indirect_too_long, case_indirect_odd_length,
	case_indirect_empty,	case_indirect_outside_ram,
	case_indirect_nested,	case_indirect_with_next,
	case_indirect_loop,	case_too_many_buffers,
};

struct evil_count {
	unsigned chains;
	unsigned resets;
	unsigned failures;
};

/* Posts one bad chain; the device must return it unused or ask for a reset. */
static void evil_chain(struct vdev *dev, unsigned qi, evil_case_fn fn, struct evil_count *n)
{
	struct vq *q = dev->queues[qi];
	struct vq_used_elem used;
	uint16_t head;

	memset(q->desc, 0, sizeof(q->desc));
	head = fn(q->desc);
	vq_post(q, head);
	virtio_notify(dev, qi);
	n->chains++;
	if (!virtio_wait_used(dev, qi, &used)) {
		n->resets++;
		virtio_setup(dev, dev->queue_count);
	} else if (used.len != 0 || used.id != head) {
		n->failures++;
	}
}

/* Ring-level corruption: the device must stop and ask for a reset. */
static void evil_ring(struct vdev *dev, unsigned qi, uint16_t avail_entry, uint16_t extra,
		      struct evil_count *n)
{
	struct vq *q = dev->queues[qi];
	struct vq_used_elem used;

	q->avail.ring[q->avail.idx % VQ_SIZE] = avail_entry;
	__atomic_store_n(&q->avail.idx, (uint16_t)(q->avail.idx + 1 + extra), __ATOMIC_RELEASE);
	virtio_notify(dev, qi);
	n->chains++;
	if (virtio_wait_used(dev, qi, &used))
		n->failures++;
	else
		n->resets++;
	virtio_setup(dev, dev->queue_count);
}

static void evil_device(struct vdev *dev, unsigned queues, unsigned qi, struct evil_count *n)
{
	if (!dev)
		return;
	if (!virtio_setup(dev, queues)) {
		n->failures++;
		return;
	}
	for (size_t i = 0; i < sizeof(chain_cases) / sizeof(chain_cases[0]); i++)
		evil_chain(dev, qi, chain_cases[i], n);
	evil_ring(dev, qi, 200, 0, n); /* a head outside the table */
	evil_ring(dev, qi, 0, 100, n); /* the avail index far ahead */
	n->chains++;
	if (virtio_setup_bad_ring(dev))
		n->resets++;
	else
		n->failures++;
	if (!virtio_setup(dev, queues))
		n->failures++;
}

void request_evil(const uint64_t *arg)
{
	struct evil_count n = { 0 };
	struct vdev *vsock = virtio_find(VIRTIO_ID_VSOCK, 0);

	(void)arg;
	evil_device(virtio_find(VIRTIO_ID_RNG, 0), 1, 0, &n);
	evil_device(virtio_find(VIRTIO_ID_BLOCK, 0), 1, 0, &n);
	evil_device(vsock, 3, 1, &n);
	if (vsock)
		vsock->ready = false; /* its rx buffers are gone: set it up afresh when used */
	evil_device(virtio_find(VIRTIO_ID_NET, 0), 2, 1, &n);
	net_restart();
	console_put_str(n.failures ? "ERR evil: " : "OK evil: ");
	console_put_dec(n.chains);
	console_put_str(" bad chains, ");
	console_put_dec(n.resets);
	console_put_str(" device resets, ");
	console_put_dec(n.failures);
	console_put_str(" accepted\n");
}
