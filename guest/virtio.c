/* The test guest's virtio-mmio transport driver: find, set up, post, notify, wait. */
#include "virtio.h"

#define MMIO_BASE      0xd0000000ULL
#define MMIO_STRIDE    0x1000
#define MMIO_MAX_SLOTS 11
#define MMIO_IRQ_BASE  5
#define MMIO_MAGIC     0x74726976

#define REG_MAGIC	    (0x000 / 4)
#define REG_DEVICE_ID	    (0x008 / 4)
#define REG_DRIVER_FEATURES (0x020 / 4)
#define REG_DRIVER_FEAT_SEL (0x024 / 4)
#define REG_QUEUE_SEL	    (0x030 / 4)
#define REG_QUEUE_NUM	    (0x038 / 4)
#define REG_QUEUE_READY	    (0x044 / 4)
#define REG_QUEUE_NOTIFY    (0x050 / 4)
#define REG_STATUS	    (0x070 / 4)
#define REG_QUEUE_DESC	    (0x080 / 4)
#define REG_QUEUE_DRIVER    (0x090 / 4)
#define REG_QUEUE_DEVICE    (0x0a0 / 4)
#define REG_CONFIG	    (0x100 / 4)

#define STATUS_ACK_DRIVER  0x03
#define STATUS_DRIVER_OK   0x04
#define STATUS_FEATURES_OK 0x08
#define STATUS_NEEDS_RESET 0x40
#define F_INDIRECT_LOW	   (1u << 28)
#define F_VERSION_1_HIGH   1u

#define IOAPIC_BASE 0xfec00000ULL
#define POLL_SPINS  20000

#define REG_INTERRUPT_ACK (0x064 / 4)
#define QEMU_MMIO_BASE	  0xfeb00000ULL
#define QEMU_MMIO_STRIDE  0x200
#define QEMU_TRANSPORTS	  8
#define QEMU_IRQ_BASE	  16

static struct vdev devices[MMIO_MAX_SLOTS];
static unsigned device_count;
static bool probed;
static bool level_irqs; /* QEMU: the interrupt line stays up until acknowledged */
static GUEST_BUFFER struct vq queue_pool[14];
static unsigned queues_used;

static bool virtio_add(uint64_t base, unsigned irq)
{
	volatile uint32_t *regs = (volatile uint32_t *)base;
	unsigned i = device_count;

	if (i == MMIO_MAX_SLOTS || regs[REG_MAGIC] != MMIO_MAGIC)
		return false;
	devices[i] = (struct vdev){ .regs = regs, .slot = i, .irq = irq };
	devices[i].device_id = regs[REG_DEVICE_ID];
	device_count = i + 1;
	return true;
}

/* snapvm's list of its devices, in the MP table's OEM table (vmm/arch/x86/mptable.c). */
struct oem_virtio_header {
	char signature[4]; /* "VIRT" */
	uint16_t length;
	uint8_t count;
	uint8_t checksum;
} __attribute__((packed));

struct oem_virtio_entry {
	uint64_t base;
	uint32_t device_id;
	uint8_t irq;
	uint8_t reserved[3];
} __attribute__((packed));

void virtio_oem_table_read(const void *table, uint32_t size)
{
	const struct oem_virtio_header *h = table;
	const struct oem_virtio_entry *e = (const void *)(h + 1);
	const uint8_t *bytes = table;
	uint8_t sum = 0;

	if (size < sizeof(*h) || memcmp(h->signature, "VIRT", 4) || h->length < sizeof(*h) ||
	    h->length > size || h->count > (h->length - sizeof(*h)) / sizeof(*e) ||
	    h->count > MMIO_MAX_SLOTS)
		return;
	for (unsigned i = 0; i < h->length; i++)
		sum += bytes[i];
	if (sum)
		return;
	for (unsigned i = 0; i < h->count; i++)
		devices[i] = (struct vdev){ .regs = (volatile uint32_t *)e[i].base,
					    .slot = i,
					    .irq = e[i].irq,
					    .device_id = e[i].device_id };
	device_count = h->count;
	probed = true;
}

/*
 * Without snapvm's list (virtio_oem_table_read): snapvm's devices sit in
 * consecutive slots, two reads per device and one for the empty slot that
 * ends the list. Elsewhere the guest assumes QEMU microvm with ioapic2=off:
 * 8 transports of 512 bytes from 0xfeb00000 on IRQs 16-23, empty ones
 * reading device ID 0, and interrupt lines that stay up until acknowledged.
 */
static void virtio_probe(void)
{
	probed = true;
	if (!on_snapvm) {
		level_irqs = true;
		for (unsigned i = 0; i < QEMU_TRANSPORTS; i++) {
			volatile uint32_t *regs =
				(volatile uint32_t *)(QEMU_MMIO_BASE + i * QEMU_MMIO_STRIDE);

			if (regs[REG_DEVICE_ID])
				virtio_add(QEMU_MMIO_BASE + i * QEMU_MMIO_STRIDE,
					   QEMU_IRQ_BASE + i);
		}
		return;
	}
	for (unsigned i = 0; i < MMIO_MAX_SLOTS; i++) {
		if (!virtio_add(MMIO_BASE + i * MMIO_STRIDE, MMIO_IRQ_BASE + i))
			break;
	}
}

struct vdev *virtio_find(uint32_t device_id, unsigned nth)
{
	if (!probed)
		virtio_probe();
	for (unsigned i = 0; i < device_count; i++) {
		if (devices[i].device_id == device_id && nth-- == 0)
			return &devices[i];
	}
	return 0;
}

/* Routes the device's IOAPIC pin to its own vector on CPU 0, edge-triggered. */
static void virtio_route_irq(struct vdev *dev)
{
	volatile uint32_t *ioapic = (volatile uint32_t *)IOAPIC_BASE;

	ioapic[0] = 0x10 + 2 * dev->irq;
	ioapic[4] = VECTOR_VIRTIO + dev->slot; /* unmasked; destination APIC 0 (the reset value) */
}

static bool virtio_setup_queue(struct vdev *dev, unsigned index)
{
	struct vq *q;

	if (!dev->queues[index]) {
		if (queues_used == sizeof(queue_pool) / sizeof(queue_pool[0]))
			return false;
		dev->queues[index] = &queue_pool[queues_used++];
	}
	q = dev->queues[index];
	memset(q, 0, sizeof(*q));
	dev->regs[REG_QUEUE_SEL] = index;
	dev->regs[REG_QUEUE_NUM] = VQ_SIZE;
	/* the high halves are 0 after reset, and the pool lies below 4 GiB */
	dev->regs[REG_QUEUE_DESC] = (uint32_t)(uint64_t)q->desc;
	dev->regs[REG_QUEUE_DRIVER] = (uint32_t)(uint64_t)&q->avail;
	dev->regs[REG_QUEUE_DEVICE] = (uint32_t)(uint64_t)&q->used;
	dev->regs[REG_QUEUE_READY] = 1;
	return true;
}

/* Reset, then VERSION_1 and INDIRECT_DESC; false if FEATURES_OK does not stick. */
static bool virtio_negotiate(struct vdev *dev)
{
	dev->ready = false;
	dev->regs[REG_STATUS] = 0;
	dev->regs[REG_STATUS] = STATUS_ACK_DRIVER;
	dev->regs[REG_DRIVER_FEATURES] = F_INDIRECT_LOW | dev->features;
	dev->regs[REG_DRIVER_FEAT_SEL] = 1;
	dev->regs[REG_DRIVER_FEATURES] = F_VERSION_1_HIGH;
	dev->regs[REG_STATUS] = STATUS_ACK_DRIVER | STATUS_FEATURES_OK;
	return dev->regs[REG_STATUS] & STATUS_FEATURES_OK;
}

bool virtio_setup(struct vdev *dev, unsigned queues)
{
	bool first = !dev->queue_count;

	if (!virtio_negotiate(dev))
		return false;
	for (unsigned i = 0; i < queues; i++) {
		if (!virtio_setup_queue(dev, i))
			return false;
	}
	dev->queue_count = queues;
	dev->regs[REG_STATUS] = STATUS_ACK_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
	if (first)
		virtio_route_irq(dev);
	dev->ready = true;
	return true;
}

bool virtio_setup_bad_ring(struct vdev *dev)
{
	if (!virtio_negotiate(dev) || !virtio_setup_queue(dev, 0))
		return false;
	dev->regs[REG_QUEUE_READY] = 0;
	dev->regs[REG_QUEUE_DESC] = 0xe0000000u; /* the MMIO hole */
	dev->regs[REG_QUEUE_READY] = 1;
	return dev->regs[REG_STATUS] & STATUS_NEEDS_RESET;
}

uint32_t virtio_config_read(struct vdev *dev, unsigned offset)
{
	return dev->regs[REG_CONFIG + offset / 4];
}

uint32_t virtio_status(struct vdev *dev)
{
	return dev->regs[REG_STATUS];
}

void vq_post(struct vq *q, uint16_t head)
{
	q->avail.ring[q->avail.idx % VQ_SIZE] = head;
	/* the entry (and the descriptors) before the index that publishes them */
	__atomic_store_n(&q->avail.idx, (uint16_t)(q->avail.idx + 1), __ATOMIC_RELEASE);
}

void virtio_notify(struct vdev *dev, unsigned q)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	dev->regs[REG_QUEUE_NOTIFY] = q;
}

bool vq_take_used(struct vq *q, struct vq_used_elem *elem)
{
	if (__atomic_load_n(&q->used.idx, __ATOMIC_ACQUIRE) == q->used_seen)
		return false;
	*elem = q->used.ring[q->used_seen % VQ_SIZE];
	q->used_seen++;
	return true;
}

void virtio_irq_ack(struct vdev *dev)
{
	if (level_irqs)
		dev->regs[REG_INTERRUPT_ACK] = 3; /* used buffer and configuration change */
}

bool virtio_irq_seen(struct vdev *dev)
{
	uint8_t seen = irq_seen[VECTOR_VIRTIO + dev->slot];

	irq_seen[VECTOR_VIRTIO + dev->slot] = 0;
	if (seen)
		virtio_irq_ack(dev);
	return seen;
}

bool virtio_wait_used(struct vdev *dev, unsigned q, struct vq_used_elem *elem)
{
	for (;;) {
		for (unsigned i = 0; i < POLL_SPINS; i++) {
			if (vq_take_used(dev->queues[q], elem))
				return true;
			cpu_relax();
		}
		call_wait();
		virtio_irq_ack(dev);
		if (vq_take_used(dev->queues[q], elem))
			return true;
		/* our interrupt without a used buffer: a config change, maybe NEEDS_RESET */
		if (virtio_irq_seen(dev) && (virtio_status(dev) & STATUS_NEEDS_RESET))
			return false;
	}
}
