/*
 * libFuzzer target for the virtio-mmio register file: a machine with every
 * device (fuzz_machine.h) takes a sequence of register reads and writes, in
 * the MMIO window of any virtio device, at offsets and widths the input
 * picks, as a hostile guest driver would make them; queue notifications
 * then walk rings in guest RAM, which the rest of the input fills.
 *
 * Input: count (1 byte), then count records of 8 bytes
 *   op      bit 0 write, bits 1-2 width (1, 2, 4, 8 bytes), bit 3: offset is
 *           a register index (x4) rather than a byte offset; bit 7: let the
 *           devices finish their host I/O before this access
 *   slot    which device's window (modulo the slots), 0xff: the one past them
 *   offset  2 bytes, little-endian, within the 4 KiB window
 *   value   4 bytes, little-endian (an 8-byte write repeats it)
 * and the rest is guest RAM, also the frames the network backend receives.
 */
#include "tests/fuzz/fuzz_machine.h"

#define RECORD_SIZE 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_machine_quiesce(struct fuzz_machine *m)
{
	for (unsigned i = 0; i < m->count; i++)
		if (m->devices[i].ops->quiesce)
			m->devices[i].ops->quiesce(m->devices[i].dev);
}

static void access_one(struct fuzz_machine *m, const uint8_t *r)
{
	static const uint32_t widths[] = { 1, 2, 4, 8 };
	uint32_t len = widths[(r[0] >> 1) & 3], value;
	uint64_t offset = (uint64_t)(r[2] | r[3] << 8), base;
	uint8_t buf[8];

	if (r[0] & 0x80)
		fuzz_machine_quiesce(m);
	offset = r[0] & 8 ? (offset & 0x7f) * 4 : offset % VIRTIO_MMIO_SIZE;
	base = r[1] == 0xff ? VIRTIO_MMIO_BASE + (uint64_t)m->slots.count * VIRTIO_MMIO_SIZE
			    : m->slots.slot[r[1] % m->slots.count].base;
	memcpy(&value, r + 4, 4);
	memcpy(buf, &value, 4);
	memcpy(buf + 4, &value, 4);
	io_dispatch(&m->io, IO_BUS_MMIO, base + offset, buf, len, r[0] & 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_machine m;
	size_t count, used;

	if (size < 1)
		return 0;
	count = data[0];
	used = 1 + count * RECORD_SIZE;
	if (used > size)
		return 0;
	fuzz_net_frames = data + used;
	fuzz_net_left = size - used;
	fuzz_machine_create(&m, data + used, size - used, NULL);
	for (size_t i = 0; i < count; i++) {
		access_one(&m, data + 1 + i * RECORD_SIZE);
		fuzz_machine_check_queues(&m);
	}
	fuzz_machine_destroy(&m);
	return 0;
}
