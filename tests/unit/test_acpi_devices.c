/* vmm/hw: the GED (events, its interrupt line, S5), pvpanic and VMGenID against their contracts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/common.h"
#include "vmm/device.h"
#include "vmm/hw/acpi_ports.h"
#include "vmm/hw/ged.h"
#include "vmm/vmm.h"

/* The devices tested here by name (each registers itself in its own file). */
extern const struct device_ops pvpanic_device_ops; /* vmm/hw/pvpanic.c */
extern const struct device_ops vmgenid_device_ops; /* vmm/hw/vmgenid.c */

static int line_level = -1;
static unsigned line_gsi;
static int last_event = -1;
static uint64_t last_value;

static void record_irq(void *vm, unsigned gsi, bool level)
{
	(void)vm;
	line_gsi = gsi;
	line_level = level;
}

static void record_event(void *vm, enum guest_event event, uint64_t value, uint64_t rip)
{
	(void)vm;
	(void)rip;
	last_event = (int)event;
	last_value = value;
}

struct fixture {
	struct vmm_config config;
	struct io_registry io;
	struct guest_memory mem;
	struct device_context ctx;
	uint8_t generation[ACPI_VMGENID_SIZE];
};

static struct fixture *fixture_new(void)
{
	static struct fixture f;

	memset(&f, 0, sizeof(f));
	vmm_config_init(&f.config);
	f.config.acpi = true;
	memset(f.generation, 0x42, sizeof(f.generation));
	guest_memory_layout(&f.mem, 4 << 20);
	assert_int_equal(guest_memory_map(&f.mem), 0);
	f.ctx = (struct device_context){ .io = &f.io,
					 .mem = &f.mem,
					 .irq_line = record_irq,
					 .guest_event = record_event,
					 .console_out_fd = -1,
					 .console_in_fd = -1,
					 .vm_fd = -1,
					 .config = &f.config,
					 .generation = f.generation };
	line_level = last_event = -1;
	return &f;
}

static uint32_t port_read32(struct fixture *f, uint16_t port)
{
	uint8_t data[4];
	uint32_t v;

	assert_true(io_dispatch(&f->io, IO_BUS_PIO, port, data, 4, false));
	memcpy(&v, data, 4);
	return v;
}

static uint8_t port_read8(struct fixture *f, uint16_t port)
{
	uint8_t v;

	assert_true(io_dispatch(&f->io, IO_BUS_PIO, port, &v, 1, false));
	return v;
}

static void port_write8(struct fixture *f, uint16_t port, uint8_t v)
{
	assert_true(io_dispatch(&f->io, IO_BUS_PIO, port, &v, 1, true));
}

static void test_without_acpi_none_exists(void **state)
{
	struct vmm_config config;

	(void)state;
	vmm_config_init(&config);
	assert_int_equal(ged_device_ops.instances(&config), 0);
	assert_int_equal(pvpanic_device_ops.instances(&config), 0);
	assert_int_equal(vmgenid_device_ops.instances(&config), 0);
	config.acpi = true;
	assert_int_equal(ged_device_ops.instances(&config), 1);
}

/* The line is up exactly while events are pending; reading the register takes them all. */
static void test_ged_events(void **state)
{
	struct fixture *f = fixture_new();
	void *ged = ged_device_ops.create(&f->ctx);

	(void)state;
	assert_non_null(ged);
	ged_event_raise(ged, ACPI_GED_EVENT_POWER_BUTTON);
	assert_int_equal(line_gsi, ACPI_GED_GSI);
	assert_int_equal(line_level, 1);
	ged_event_raise(ged, ACPI_GED_EVENT_GENERATION | 0x80); /* unknown bits are dropped */
	assert_int_equal(port_read32(f, ACPI_GED_PORT_BASE + ACPI_GED_EVENT),
			 ACPI_GED_EVENT_POWER_BUTTON | ACPI_GED_EVENT_GENERATION);
	assert_int_equal(line_level, 0);
	assert_int_equal(port_read32(f, ACPI_GED_PORT_BASE + ACPI_GED_EVENT), 0);
	/* the sleep status register reads 0: never woken */
	assert_int_equal(port_read8(f, ACPI_GED_PORT_BASE + ACPI_GED_SLEEP_STATUS), 0);
	ged_device_ops.destroy(ged);
	guest_memory_unmap(&f->mem);
}

/* SLP_TYP=5 with SLP_EN powers off; another type, or no SLP_EN, does nothing. */
static void test_ged_sleep_control(void **state)
{
	struct fixture *f = fixture_new();
	void *ged = ged_device_ops.create(&f->ctx);
	uint16_t port = ACPI_GED_PORT_BASE + ACPI_GED_SLEEP_CONTROL;

	(void)state;
	port_write8(f, port, ACPI_SLEEP_TYPE_S5 << ACPI_SLEEP_TYPE_SHIFT);
	assert_int_equal(last_event, -1);
	port_write8(f, port, 3 << ACPI_SLEEP_TYPE_SHIFT | ACPI_SLEEP_ENABLE);
	assert_int_equal(last_event, -1);
	port_write8(f, port, ACPI_SLEEP_TYPE_S5 << ACPI_SLEEP_TYPE_SHIFT | ACPI_SLEEP_ENABLE);
	assert_int_equal(last_event, GUEST_EVENT_POWER_OFF);
	ged_device_ops.destroy(ged);
	guest_memory_unmap(&f->mem);
}

/* A restored GED raises its line again if events were pending; bad state is refused. */
static void test_ged_restore(void **state)
{
	struct fixture *f = fixture_new();
	void *ged = ged_device_ops.create(&f->ctx);
	uint32_t saved[2] = { ACPI_GED_EVENT_POWER_BUTTON, 0 }, bad[2] = { 0x100, 0 };

	(void)state;
	assert_int_equal(ged_device_ops.state_size, sizeof(saved));
	assert_int_equal(ged_device_ops.restore(ged, saved), 0);
	assert_int_equal(line_level, 1);
	assert_int_equal(ged_device_ops.restore(ged, bad), -EINVAL);
	ged_device_ops.destroy(ged);
	guest_memory_unmap(&f->mem);
}

static void test_pvpanic(void **state)
{
	struct fixture *f = fixture_new();
	void *p = pvpanic_device_ops.create(&f->ctx);

	(void)state;
	/* the events it understands: PANICKED only */
	assert_int_equal(port_read8(f, ACPI_PVPANIC_PORT), ACPI_PVPANIC_PANICKED);
	port_write8(f, ACPI_PVPANIC_PORT, 2); /* crash loaded: not a panic */
	assert_int_equal(last_event, -1);
	port_write8(f, ACPI_PVPANIC_PORT, ACPI_PVPANIC_PANICKED);
	assert_int_equal(last_event, GUEST_EVENT_GUEST_PANIC);
	pvpanic_device_ops.destroy(p);
	guest_memory_unmap(&f->mem);
}

/* A restore writes the VM's id where the snapshot says; an address outside RAM is refused. */
static void test_vmgenid_restore(void **state)
{
	struct fixture *f = fixture_new();
	void *v = vmgenid_device_ops.create(&f->ctx);
	uint8_t *id = guest_memory_ptr(&f->mem, ACPI_VMGENID_ADDR, ACPI_VMGENID_SIZE);
	uint64_t saved = ACPI_VMGENID_ADDR, outside = 5ULL << 30, edge = (4 << 20) - 8;

	(void)state;
	assert_non_null(id);
	assert_int_equal(id[0], 0); /* create writes nothing: the snapshot's memory comes later */
	assert_int_equal(vmgenid_device_ops.restore(v, &saved), 0);
	assert_memory_equal(id, f->generation, ACPI_VMGENID_SIZE);
	assert_int_equal(vmgenid_device_ops.restore(v, &outside), -EINVAL);
	assert_int_equal(vmgenid_device_ops.restore(v, &edge), -EINVAL);
	vmgenid_device_ops.destroy(v);
	guest_memory_unmap(&f->mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_without_acpi_none_exists),
		cmocka_unit_test(test_ged_events),
		cmocka_unit_test(test_ged_sleep_control),
		cmocka_unit_test(test_ged_restore),
		cmocka_unit_test(test_pvpanic),
		cmocka_unit_test(test_vmgenid_restore),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
