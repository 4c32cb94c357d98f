/*
 * libFuzzer target for the request parsing of one virtio device (built once
 * per device: FUZZ_DEVICE is blk, net, vsock or console). The device sits on
 * a machine without KVM (fuzz_machine.h); the harness sets it up through its
 * registers as a driver would, with queue sizes, ring addresses and features
 * from the input, then notifies its queues in the order the input says, so
 * that the device takes every chain the guest RAM (the rest of the input)
 * holds: block requests served from a memfd disk through io_uring, frames
 * to and from a fake network backend, vsock packets to a Unix listener,
 * console output. AddressSanitizer catches any access outside guest RAM.
 *
 * Input: a 32-byte header, then guest RAM (64 KiB low, 64 KiB at 4 GiB),
 * which is also the stream of frames the network backend receives.
 *   0      which instance of the device (two disks, two network devices)
 *   1-8    driver features, little-endian (VERSION_1 is always set)
 *   9-20   per queue: log2 of its size, then descriptor table, avail ring
 *          and used ring addresses in 256-byte units of low RAM
 *   21     which queues are made ready (bit per queue)
 *   22-31  notifications: queue (modulo 3), bit 7: let host I/O finish first
 */
#include "tests/fuzz/fuzz_machine.h"

#define HEADER_SIZE	  32
#define STR_(x)		  #x
#define DEVICE_NAME(name) "virtio-" STR_(name)

enum {
	REG_DRIVER_FEATURES = 0x020,
	REG_DRIVER_FEATURES_SEL = 0x024,
	REG_QUEUE_SEL = 0x030,
	REG_QUEUE_NUM = 0x038,
	REG_QUEUE_READY = 0x044,
	REG_QUEUE_NOTIFY = 0x050,
	REG_INTERRUPT_ACK = 0x064,
	REG_STATUS = 0x070,
	REG_QUEUE_DESC_LOW = 0x080,
	REG_QUEUE_DRIVER_LOW = 0x090,
	REG_QUEUE_DEVICE_LOW = 0x0a0,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool want(const struct device_ops *ops)
{
	return !strcmp(ops->name, DEVICE_NAME(FUZZ_DEVICE));
}

static void wr(struct fuzz_machine *m, uint64_t base, uint64_t offset, uint32_t value)
{
	io_dispatch(&m->io, IO_BUS_MMIO, base + offset, (uint8_t *)&value, 4, true);
}

/* The driver's side of set-up (virtio 1.2, 3.1.1), with the input's choices. */
static void driver_init(struct fuzz_machine *m, uint64_t base, const uint8_t *h)
{
	uint32_t features[2];

	memcpy(features, h + 1, sizeof(features));
	features[1] |= 1; /* VERSION_1: without it the device refuses FEATURES_OK */
	wr(m, base, REG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(m, base, REG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	for (uint32_t sel = 0; sel < 2; sel++) {
		wr(m, base, REG_DRIVER_FEATURES_SEL, sel);
		wr(m, base, REG_DRIVER_FEATURES, features[sel]);
	}
	wr(m, base, REG_STATUS, 0x0b);
	for (uint32_t q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		const uint8_t *p = h + 9 + q * 4;

		wr(m, base, REG_QUEUE_SEL, q);
		wr(m, base, REG_QUEUE_NUM, 1u << (p[0] % 9));
		wr(m, base, REG_QUEUE_DESC_LOW, (uint32_t)p[1] << 8);
		wr(m, base, REG_QUEUE_DRIVER_LOW, (uint32_t)p[2] << 8);
		wr(m, base, REG_QUEUE_DEVICE_LOW, (uint32_t)p[3] << 8);
		wr(m, base, REG_QUEUE_READY, (h[21] >> q) & 1);
	}
	wr(m, base, REG_STATUS, 0x0f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_machine m;
	const struct fuzz_device *d;
	uint64_t base;

	if (size < HEADER_SIZE)
		return 0;
	fuzz_net_frames = data + HEADER_SIZE;
	fuzz_net_left = size - HEADER_SIZE;
	fuzz_machine_create(&m, data + HEADER_SIZE, size - HEADER_SIZE, want);
	d = &m.devices[data[0] % m.count];
	base = m.slots.slot[data[0] % m.count].base;
	driver_init(&m, base, data);
	for (unsigned i = 22; i < HEADER_SIZE; i++) {
		if ((data[i] & 0x80) && d->ops->quiesce)
			d->ops->quiesce(d->dev);
		wr(&m, base, REG_QUEUE_NOTIFY, (data[i] & 0x7f) % 3);
		wr(&m, base, REG_INTERRUPT_ACK, 3);
		fuzz_machine_check_queues(&m);
	}
	fuzz_machine_destroy(&m);
	return 0;
}
