/*
 * Every device in vmm/'s device table: save, restore into a fresh device,
 * save again and compare; then change the device through its own ports and
 * check that the saved state changes too (save must not replay stale bytes).
 * Devices that exist only when configured (virtio disks, vsock, ...) get a
 * configuration that asks for one of each, as `snapvm run` would build it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "vmm/device.h"
#include "vmm/vmm.h"

static void ignore_irq(void *vm, unsigned gsi, bool level)
{
	(void)vm;
	(void)gsi;
	(void)level;
}

static void ignore_event(void *vm, enum guest_event event, uint64_t value, uint64_t rip)
{
	(void)vm;
	(void)event;
	(void)value;
	(void)rip;
}

struct instance {
	struct io_registry io;
	struct guest_memory mem;
	struct vmm_config config;
	struct virtio_mmio_slots virtio_slots;
	struct device_context ctx;
	void *dev;
};

static char disk_path[] = "/tmp/snapvm-test-devices-XXXXXX";

/* One of every optional device; each instance gets its own vsock listener path. */
static void instance_configure(struct instance *in)
{
	static unsigned serial;

	vmm_config_init(&in->config);
	in->config.console = VMM_CONSOLE_VIRTIO;
	in->config.rng = true;
	in->config.disk_count = 1;
	snprintf(in->config.disks[0].path, sizeof(in->config.disks[0].path), "%s", disk_path);
	snprintf(in->config.vsock_path, sizeof(in->config.vsock_path),
		 "/tmp/snapvm-test-vsock-%d-%u", (int)getpid(), serial++);
	in->config.vsock_cid = 3;
	in->config.net_count = 1; /* user networking: no privilege needed */
	in->config.nets[0].backend = VMM_NET_USER;
	in->config.acpi = true; /* the GED, pvpanic and vmgenid */
}

/* The zones the UART asked the VM for: address, and whether on. */
static uint64_t zone_addr;
static int zone_on = -1;

static int record_zone(void *vm, enum io_bus bus, uint64_t addr, uint32_t size, bool on)
{
	(void)vm;
	assert_int_equal(bus, IO_BUS_PIO);
	assert_int_equal(size, 1);
	zone_addr = addr;
	zone_on = on;
	return 0;
}

static const uint8_t test_generation[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

static void instance_create(struct instance *in, const struct device_ops *ops,
			    void (*guest_event)(void *vm, enum guest_event event, uint64_t value,
						uint64_t rip))
{
	memset(in, 0, sizeof(*in));
	instance_configure(in);
	guest_memory_layout(&in->mem, 1 << 20);
	assert_int_equal(guest_memory_map(&in->mem), 0);
	in->ctx = (struct device_context){ .io = &in->io,
					   .mem = &in->mem,
					   .irq_line = ignore_irq,
					   .guest_event = guest_event,
					   .console_out_fd = -1,
					   .console_in_fd = -1,
					   .vm_fd = -1,
					   .coalesced_zone = record_zone,
					   .config = &in->config,
					   .virtio_slots = &in->virtio_slots,
					   .generation = test_generation };
	if (ops->instances)
		assert_true(ops->instances(&in->config) >= 1);
	in->dev = ops->create(&in->ctx);
	assert_non_null(in->dev);
	/* vmgenid has no registers: its id is in guest memory */
	assert_true(in->io.count > 0 || ops == &vmgenid_device_ops);
}

static void instance_destroy(struct instance *in, const struct device_ops *ops)
{
	ops->destroy(in->dev);
	guest_memory_unmap(&in->mem);
}

/*
 * Writes a pattern to every byte, then every aligned 32-bit word, of every
 * range the device registered (virtio registers take 32-bit accesses only).
 */
static void instance_poke(struct instance *in, uint8_t pattern)
{
	for (unsigned r = 0; r < in->io.count; r++) {
		const struct io_range *range = &in->io.ranges[r];

		for (uint64_t off = 0; off < range->len && off < 256; off++) {
			uint8_t v = (uint8_t)(pattern + off);

			range->handler(range->opaque, off, &v, 1, true);
		}
		for (uint64_t off = 0; off + 4 <= range->len && off < 256; off += 4) {
			uint8_t v[4] = { (uint8_t)(pattern + off), (uint8_t)(pattern + off + 1),
					 (uint8_t)(pattern + off + 2),
					 (uint8_t)(pattern + off + 3) };

			range->handler(range->opaque, off, v, 4, true);
		}
	}
}

static void test_device_round_trip(const struct device_ops *ops)
{
	struct instance a, b;
	uint8_t *first = calloc(1, ops->state_size), *second = calloc(1, ops->state_size);

	instance_create(&a, ops, ignore_event);
	instance_poke(&a, 0x01);
	assert_int_equal(ops->quiesce(a.dev), 0);
	ops->save(a.dev, first);

	instance_create(&b, ops, ignore_event);
	if (ops->restore(b.dev, first))
		fail_msg("%s: restore of its own saved state failed", ops->name);
	ops->save(b.dev, second);
	if (memcmp(first, second, ops->state_size))
		fail_msg("%s: save -> restore -> save changed the state", ops->name);

	instance_poke(&b, 0x03);
	ops->save(b.dev, second);
	if (b.io.count && !memcmp(first, second, ops->state_size))
		fail_msg("%s: a change after restore did not change the saved state", ops->name);

	ops->reset(b.dev);
	instance_destroy(&a, ops);
	instance_destroy(&b, ops);
	free(first);
	free(second);
}

static void test_every_device(void **state)
{
	unsigned count = 0;

	(void)state;
	for (unsigned i = 0; device_table[i]; i++, count++) {
		const struct device_ops *ops = device_table[i];

		assert_non_null(ops->name);
		assert_true(ops->state_size > 0);
		test_device_round_trip(ops);
	}
	assert_true(count >= 2);
}

/* What the control port last asked of the VM about console batching; -1: nothing. */
static int batching_asked = -1;

static void record_batching(void *vm, enum guest_event event, uint64_t value, uint64_t rip)
{
	(void)vm;
	(void)rip;
	if (event == GUEST_EVENT_CONSOLE_BATCHING)
		batching_asked = (int)value;
}

/* Port 0x60c asks for batched console output; a clone of the guest asks again on restore. */
static void test_ctl_console_batching(void **state)
{
	struct instance a, b;
	uint8_t one = 1, saved[64];

	(void)state;
	assert_true(ctl_device_ops.state_size <= sizeof(saved));
	instance_create(&a, &ctl_device_ops, record_batching);
	batching_asked = -1;
	assert_true(io_dispatch(&a.io, IO_BUS_PIO, 0x60c, &one, 1, true));
	assert_int_equal(batching_asked, 1);
	ctl_device_ops.save(a.dev, saved);

	instance_create(&b, &ctl_device_ops, record_batching);
	batching_asked = -1;
	assert_int_equal(ctl_device_ops.restore(b.dev, saved), 0);
	assert_int_equal(batching_asked, 1);

	/* a damaged snapshot: the flag is 0 or 1 */
	memset(saved + ctl_device_ops.state_size - 4, 0x7f, 4);
	assert_int_equal(ctl_device_ops.restore(b.dev, saved), -EINVAL);
	instance_destroy(&a, &ctl_device_ops);
	instance_destroy(&b, &ctl_device_ops);
}

/* The UART makes COM1's transmit register a coalesced zone when the guest asks, once. */
static void test_uart_console_batching(void **state)
{
	struct instance a;

	(void)state;
	instance_create(&a, &uart_device_ops, ignore_event);
	uart_device_ops.guest_event(a.dev, GUEST_EVENT_CONSOLE_BATCHING, 1);
	assert_int_equal(zone_on, 1);
	assert_int_equal(zone_addr, 0x3f8);
	zone_on = -1;
	uart_device_ops.guest_event(a.dev, GUEST_EVENT_CONSOLE_BATCHING, 1);
	assert_int_equal(zone_on, -1); /* already on */
	uart_device_ops.guest_event(a.dev, GUEST_EVENT_READY, 0);
	assert_int_equal(zone_on, -1);
	uart_device_ops.guest_event(a.dev, GUEST_EVENT_CONSOLE_BATCHING, 0);
	assert_int_equal(zone_on, 0);
	instance_destroy(&a, &uart_device_ops);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_device),
		cmocka_unit_test(test_ctl_console_batching),
		cmocka_unit_test(test_uart_console_batching),
	};
	int fd = mkstemp(disk_path), ret;

	if (fd < 0 || ftruncate(fd, 1 << 20))
		return 1;
	close(fd);
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(disk_path);
	return ret;
}
