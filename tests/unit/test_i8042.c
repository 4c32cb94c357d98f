/*
 * vmm/hw/i8042.c: the controller answers what Linux asks of it, and every way
 * of pulling the reset line ends the VM (test_devices covers save/restore).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "common/common.h"
#include "vmm/device.h"
#include "vmm/vmm.h"

/* The devices tested here by name (each registers itself in its own file). */
extern const struct device_ops i8042_device_ops; /* vmm/hw/i8042.c */
extern const struct device_ops uart_device_ops;	 /* vmm/hw/uart.c */

static unsigned resets;

static void count_event(void *vm, enum guest_event event, uint64_t value, uint64_t rip)
{
	(void)vm;
	(void)value;
	(void)rip;
	if (event == GUEST_EVENT_RESET)
		resets++;
}

struct controller {
	struct io_registry io;
	struct device_context ctx;
	void *dev;
};

static void controller_create(struct controller *c)
{
	memset(c, 0, sizeof(*c));
	c->ctx = (struct device_context){ .io = &c->io, .guest_event = count_event };
	c->dev = i8042_device_ops.create(&c->ctx);
	assert_non_null(c->dev);
	resets = 0;
}

static void port_write(struct controller *c, uint16_t port, uint8_t value)
{
	assert_true(io_dispatch(&c->io, IO_BUS_PIO, port, &value, 1, true));
}

static uint8_t port_read(struct controller *c, uint16_t port)
{
	uint8_t value = 0xee;

	assert_true(io_dispatch(&c->io, IO_BUS_PIO, port, &value, 1, false));
	return value;
}

static void test_reset_by_pulse_command(void **state)
{
	struct controller c;

	(void)state;
	controller_create(&c);
	assert_int_equal(port_read(&c, 0x64) & 0x02, 0); /* input buffer empty: Linux may write */
	port_write(&c, 0x64, 0xfe);
	assert_int_equal(resets, 1);
	port_write(&c, 0x64, 0xff); /* pulses no line */
	port_write(&c, 0x64, 0xfc);
	assert_int_equal(resets, 2);
	i8042_device_ops.destroy(c.dev);
}

static void test_reset_by_output_port(void **state)
{
	struct controller c;

	(void)state;
	controller_create(&c);
	port_write(&c, 0x64, 0xd0); /* read output port: not in reset, A20 on */
	assert_int_equal(port_read(&c, 0x64) & 0x01, 1);
	assert_int_equal(port_read(&c, 0x60), 0x03);
	assert_int_equal(port_read(&c, 0x64) & 0x01, 0); /* read empties the buffer */
	port_write(&c, 0x64, 0xd1);
	port_write(&c, 0x60, 0x03);
	assert_int_equal(resets, 0);
	port_write(&c, 0x64, 0xd1);
	port_write(&c, 0x60, 0x02);
	assert_int_equal(resets, 1);
	i8042_device_ops.destroy(c.dev);
}

static void test_commands(void **state)
{
	struct controller c;

	(void)state;
	controller_create(&c);
	port_write(&c, 0x64, 0xaa);
	assert_int_equal(port_read(&c, 0x60), 0x55);
	assert_true(port_read(&c, 0x64) & 0x04); /* system flag after the self-test */
	port_write(&c, 0x64, 0x60);
	port_write(&c, 0x60, 0x47);
	port_write(&c, 0x64, 0x20);
	assert_int_equal(port_read(&c, 0x60), 0x47);
	port_write(&c, 0x64, 0xad); /* disable the keyboard: bit 4 of the command byte */
	port_write(&c, 0x64, 0x20);
	assert_int_equal(port_read(&c, 0x60), 0x57);
	port_write(&c, 0x60, 0xff); /* to the absent keyboard: no reply, no reset */
	assert_int_equal(port_read(&c, 0x64) & 0x01, 0);
	assert_int_equal(resets, 0);
	i8042_device_ops.destroy(c.dev);
}

static void test_ports_are_only_0x60_and_0x64(void **state)
{
	struct controller c;

	(void)state;
	controller_create(&c);
	assert_non_null(io_find(&c.io, IO_BUS_PIO, 0x60, 1));
	assert_non_null(io_find(&c.io, IO_BUS_PIO, 0x64, 1));
	assert_null(io_find(&c.io, IO_BUS_PIO, 0x61, 1)); /* port B is not the controller's */
	i8042_device_ops.destroy(c.dev);
}

/* --no-legacy drops COM1 but keeps the i8042: without it Linux could not end the VM. */
static void test_no_legacy(void **state)
{
	struct vmm_config config;

	(void)state;
	vmm_config_init(&config);
	assert_null(i8042_device_ops.instances);
	assert_int_equal(uart_device_ops.instances(&config), 1);
	config.no_legacy = true;
	assert_int_equal(uart_device_ops.instances(&config), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reset_by_pulse_command),
		cmocka_unit_test(test_reset_by_output_port),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_ports_are_only_0x60_and_0x64),
		cmocka_unit_test(test_no_legacy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
