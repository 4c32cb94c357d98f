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
#include "tests/unit/test_log.h"

/* The devices tested here by name (each registers itself in its own file). */
extern const struct device_ops ctl_device_ops;	   /* vmm/hw/ctl.c */
extern const struct device_ops uart_device_ops;	   /* vmm/hw/uart.c */
extern const struct device_ops vmgenid_device_ops; /* vmm/hw/vmgenid.c */

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

/* Gives config a vsock device with this CID and host socket (CID 0: none). */
static void vsock_set(struct vmm_config *config, unsigned long cid, const char *path)
{
	char value[VMM_DEVICE_ARG_MAX];

	vmm_config_device_args_drop(config, "virtio-vsock");
	if (!cid)
		return;
	snprintf(value, sizeof(value), "%lu,%s", cid, path);
	assert_int_equal(vmm_config_device_arg_add(config, "virtio-vsock", value), 0);
}

/* The vsock CID config gives, or 0. */
static unsigned long vsock_cid(const struct vmm_config *config)
{
	const char *value = vmm_config_device_arg(config, "virtio-vsock", 0);

	return value ? strtoul(value, NULL, 10) : 0;
}

/* One of every optional device; each instance gets its own vsock listener path. */
static void instance_configure(struct instance *in)
{
	static unsigned serial;
	char path[64];

	vmm_config_init(&in->config);
	in->config.console = VMM_CONSOLE_VIRTIO;
	assert_int_equal(vmm_config_device_arg_add(&in->config, "virtio-rng", ""), 0);
	in->config.disk_count = 1;
	snprintf(in->config.disks[0].path, sizeof(in->config.disks[0].path), "%s", disk_path);
	snprintf(path, sizeof(path), "/tmp/snapvm-test-vsock-%d-%u", (int)getpid(), serial++);
	vsock_set(&in->config, 3, path);
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
	for (const struct device_ops *const *d = vmm_devices(); *d; d++, count++) {
		assert_non_null((*d)->name);
		assert_true((*d)->state_size > 0);
		test_device_round_trip(*d);
	}
	assert_true(count >= 2);
}

/*
 * Every device file registered itself, none was left out by the linker, and
 * the order (by section id) is the one saved snapshots and guests have seen:
 * the virtio devices' MMIO slots follow it. A new device goes at the end of
 * its range, and here.
 */
static void test_device_registry(void **state)
{
	static const char *const expected[] = {
		"control-port", "uart",	      "i8042",		"acpi-ged",
		"pvpanic",	"vmgenid",    "virtio-console", "virtio-rng",
		"virtio-vsock", "virtio-blk", "virtio-net",
	};
	const struct device_ops *const *d = vmm_devices();
	unsigned i = 0;

	(void)state;
	for (; d[i]; i++) {
		assert_true(i < ARRAY_SIZE(expected));
		assert_string_equal(d[i]->name, expected[i]);
		assert_true(d[i]->section_id >= VMM_DEVICE_SECTION_FIRST &&
			    d[i]->section_id <= VMM_DEVICE_SECTION_LAST);
		if (i)
			assert_true(d[i - 1]->section_id < d[i]->section_id);
		assert_ptr_equal(vmm_device_find(d[i]->name), d[i]);
	}
	assert_int_equal(i, ARRAY_SIZE(expected));
	assert_null(vmm_device_find("no-such-device"));
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

/* The device sections a snapshot of a VM made from `config` would hold. */
struct saved_machine {
	struct vmm_saved_device saved[VMM_MAX_DISKS + 16];
	void *states[VMM_MAX_DISKS + 16];
	unsigned count;
};

static void machine_save(const struct vmm_config *config, struct saved_machine *m)
{
	memset(m, 0, sizeof(*m));
	for (const struct device_ops *const *d = vmm_devices(); *d; d++) {
		const struct device_ops *ops = *d;
		unsigned count = ops->instances ? ops->instances(config) : 1;

		for (unsigned n = 0; n < count; n++) {
			struct instance in = { .config = *config };

			guest_memory_layout(&in.mem, 1 << 20);
			assert_int_equal(guest_memory_map(&in.mem), 0);
			in.ctx = (struct device_context){ .io = &in.io,
							  .mem = &in.mem,
							  .irq_line = ignore_irq,
							  .guest_event = ignore_event,
							  .console_out_fd = -1,
							  .console_in_fd = -1,
							  .vm_fd = -1,
							  .config = &in.config,
							  .instance = n,
							  .virtio_slots = &in.virtio_slots,
							  .generation = test_generation };
			in.dev = ops->create(&in.ctx);
			assert_non_null(in.dev);
			m->states[m->count] = calloc(1, ops->state_size);
			ops->save(in.dev, m->states[m->count]);
			m->saved[m->count] =
				(struct vmm_saved_device){ ops->section_id | n << 16,
							   ops->state_version, m->states[m->count],
							   ops->state_size };
			m->count++;
			instance_destroy(&in, ops);
		}
	}
}

static void machine_free(struct saved_machine *m)
{
	for (unsigned i = 0; i < m->count; i++)
		free(m->states[i]);
}

/* What `restore` gives for the VM of instance_configure(), two disks and a MAC. */
static void restore_options(const struct vmm_config *saved, struct vmm_config *wanted)
{
	vmm_config_init(wanted);
	wanted->disk_count = saved->disk_count;
	for (unsigned i = 0; i < saved->disk_count; i++) {
		snprintf(wanted->disks[i].path, sizeof(wanted->disks[i].path), "%s", disk_path);
		wanted->disks[i].read_only = saved->disks[i].read_only;
	}
	vsock_set(wanted, vsock_cid(saved), "/tmp/elsewhere.sock");
	wanted->net_count = saved->net_count;
	wanted->nets[0].backend = VMM_NET_USER;
}

/*
 * Restore's configuration: what the guest saw from each device's own saved
 * state, host resources from the restore options (which must be given),
 * rate limits from the state unless the options set them.
 */
static void test_restore_config(void **state)
{
	static const uint8_t mac[6] = { 0x02, 0, 0, 0, 0, 0x11 };
	struct vmm_config saved, wanted, out;
	struct saved_machine m;
	struct instance in;

	(void)state;
	instance_configure(&in);
	saved = in.config;
	saved.disk_count = 2;
	saved.disks[1] = saved.disks[0];
	saved.disks[1].read_only = true;
	snprintf(saved.disks[1].id, sizeof(saved.disks[1].id), "SERIAL-B");
	saved.disks[1].rate = (struct vmm_rate_limit){ .bandwidth = 1 << 20, .ops = 50 };
	vsock_set(&saved, 5, vmm_config_device_arg(&in.config, "virtio-vsock", 0) + 2);
	memcpy(saved.nets[0].mac, mac, 6);
	saved.nets[0].rate.ops = 300;
	machine_save(&saved, &m);

	restore_options(&saved, &wanted);
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), 0);
	assert_int_equal(out.disk_count, 2);
	assert_string_equal(out.disks[1].path, disk_path);
	assert_true(out.disks[1].read_only);
	assert_string_equal(out.disks[1].id, "SERIAL-B");
	assert_int_equal(out.disks[1].rate.bandwidth, 1 << 20);
	assert_int_equal(out.disks[1].rate.ops, 50);
	assert_int_equal(out.disks[0].rate.bandwidth, 0);
	assert_true(vmm_config_device_arg(&out, "virtio-rng", 0) && out.acpi && !out.no_legacy);
	assert_int_equal(out.console, VMM_CONSOLE_VIRTIO);
	assert_string_equal(vmm_config_device_arg(&out, "virtio-vsock", 0),
			    "5,/tmp/elsewhere.sock");
	assert_memory_equal(out.nets[0].mac, mac, 6);
	assert_int_equal(out.nets[0].rate.ops, 300);

	/* a limit given at restore replaces that one (bw=0: none) */
	wanted.disks[1].rate =
		(struct vmm_rate_limit){ .bandwidth = 0, .given = VMM_RATE_GIVEN_BANDWIDTH };
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), 0);
	assert_int_equal(out.disks[1].rate.bandwidth, 0);
	assert_int_equal(out.disks[1].rate.ops, 50);

	/* host resources are not in the snapshot: restore must give them */
	restore_options(&saved, &wanted);
	wanted.disk_count = 0;
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), -EINVAL);
	restore_options(&saved, &wanted);
	vsock_set(&wanted, 0, NULL);
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), -EINVAL);
	restore_options(&saved, &wanted);
	wanted.net_count = 0;
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), -EINVAL);
	/* what the guest saw cannot change */
	restore_options(&saved, &wanted);
	vsock_set(&wanted, 6, "/tmp/elsewhere.sock");
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), -EINVAL);
	restore_options(&saved, &wanted);
	wanted.nets[0].mac[0] = 0x06;
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), -EINVAL);
	restore_options(&saved, &wanted);
	wanted.disks[1].read_only = false;
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), -EINVAL);
	restore_options(&saved, &wanted);
	wanted.console = VMM_CONSOLE_NONE;
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), -EINVAL);
	/* a damaged state, or one of another size */
	restore_options(&saved, &wanted);
	for (unsigned i = 0; i < m.count; i++)
		if (m.saved[i].section_id == vmm_device_find("virtio-blk")->section_id)
			m.saved[i].length--;
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), -EINVAL);
	machine_free(&m);

	/* the smallest machine: no COM1, no ACPI, no optional device */
	vmm_config_init(&saved);
	saved.no_legacy = true;
	machine_save(&saved, &m);
	vmm_config_init(&wanted);
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), 0);
	assert_true(out.no_legacy && !out.acpi && !vmm_config_device_arg(&out, "virtio-rng", 0) &&
		    !out.disk_count && !vsock_cid(&out));
	assert_int_equal(vmm_config_device_arg_add(&wanted, "virtio-rng", ""), 0);
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), -EINVAL);
	vmm_config_init(&wanted);
	wanted.console = VMM_CONSOLE_VIRTIO;
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), -EINVAL);
	restore_options(&in.config, &wanted);
	wanted.net_count = 0;
	vsock_set(&wanted, 0, NULL);
	assert_int_equal(vmm_config_restore(&wanted, m.saved, m.count, &out), -EINVAL); /* a disk */
	machine_free(&m);
}

/* One logged line, ending in a newline, that contains `what`. */
static void assert_one_line(const char *logged, const char *what)
{
	assert_non_null(strstr(logged, what));
	assert_non_null(strchr(logged, '\n'));
	assert_int_equal(strchr(logged, '\n')[1], '\0');
}

/*
 * The values a VM option gives a device that reads its own: checked by the
 * device on the way in, one line for a refused one, found again in order.
 */
static void test_device_args(void **state)
{
	char logged[512], longer[VMM_DEVICE_ARG_MAX + 8];
	struct vmm_config config;

	(void)state;
	vmm_config_init(&config);
	assert_int_equal(
		LOGGED(logged, vmm_config_device_arg_add(&config, "virtio-vsock", "7,/tmp/a.sock")),
		0);
	assert_string_equal(logged, "");
	assert_int_equal(vmm_config_device_arg_add(&config, "virtio-rng", ""), 0);
	assert_string_equal(vmm_config_device_arg(&config, "virtio-vsock", 0), "7,/tmp/a.sock");
	assert_string_equal(vmm_config_device_arg(&config, "virtio-rng", 0), "");
	assert_null(vmm_config_device_arg(&config, "virtio-rng", 1));
	assert_null(vmm_config_device_arg(&config, "virtio-blk", 0));

	/* refused: the device's own check, a value for a switch, no such device, too long */
	assert_int_equal(
		LOGGED(logged, vmm_config_device_arg_add(&config, "virtio-vsock", "2,/tmp/a.sock")),
		-EINVAL);
	assert_one_line(logged, "CID '2' is not a number from 3");
	assert_int_equal(LOGGED(logged, vmm_config_device_arg_add(&config, "virtio-rng", "yes")),
			 -EINVAL);
	assert_one_line(logged, "virtio-rng takes no value");
	assert_int_equal(LOGGED(logged, vmm_config_device_arg_add(&config, "no-such", "")),
			 -EINVAL);
	assert_one_line(logged, "no device type is called no-such");
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	memcpy(longer, "3,/", 3);
	assert_int_equal(LOGGED(logged, vmm_config_device_arg_add(&config, "virtio-vsock", longer)),
			 -EINVAL);
	assert_one_line(logged, "vsock: PATH must be");
	assert_int_equal(config.device_arg_count, 2);

	/* full: one line, nothing lost */
	for (unsigned i = config.device_arg_count; i < VMM_MAX_DEVICE_ARGS; i++)
		assert_int_equal(vmm_config_device_arg_add(&config, "virtio-rng", ""), 0);
	assert_int_equal(LOGGED(logged, vmm_config_device_arg_add(&config, "virtio-rng", "")),
			 -ENOSPC);
	assert_one_line(logged, "more than");
	assert_string_equal(vmm_config_device_arg(&config, "virtio-vsock", 0), "7,/tmp/a.sock");

	vmm_config_device_args_drop(&config, "virtio-rng");
	assert_int_equal(config.device_arg_count, 1);
	assert_null(vmm_config_device_arg(&config, "virtio-rng", 0));
	assert_string_equal(vmm_config_device_arg(&config, "virtio-vsock", 0), "7,/tmp/a.sock");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_device),
		cmocka_unit_test(test_device_registry),
		cmocka_unit_test(test_device_args),
		cmocka_unit_test(test_ctl_console_batching),
		cmocka_unit_test(test_uart_console_batching),
		cmocka_unit_test(test_restore_config),
	};
	int fd = mkstemp(disk_path), ret;

	if (fd < 0 || ftruncate(fd, 1 << 20))
		return 1;
	close(fd);
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(disk_path);
	return ret;
}
