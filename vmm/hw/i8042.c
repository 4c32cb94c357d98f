/*
 * An i8042 keyboard controller with no keyboard behind it: just enough for a
 * guest to reset the machine the PC way (Linux's reboot=k pulses the reset
 * line with command 0xfe), which ends the VM with status 0, as Firecracker
 * does. Ports: 0x60 data, 0x64 status (read) and command (write).
 */
#include "vmm/device.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define I8042_DATA_PORT	   0x60
#define I8042_COMMAND_PORT 0x64

/* Status register bits. */
#define STATUS_OUTPUT_FULL 0x01
#define STATUS_SYSTEM	   0x04 /* set once the self-test passed */
#define STATUS_COMMAND	   0x08 /* the last byte written went to the command port */

/* Command byte (controller RAM byte 0) bits. */
#define CB_KBD_DISABLED 0x10
#define CB_AUX_DISABLED 0x20
#define CB_POWER_ON	0x45 /* keyboard interrupt, system flag, translation */

/* Output port bits: bit 0 low holds the CPU in reset. */
#define OUTPUT_PORT_RESET_HIGH 0x01
#define OUTPUT_PORT_A20	       0x02

enum {
	CMD_READ_COMMAND_BYTE = 0x20,
	CMD_WRITE_COMMAND_BYTE = 0x60,
	CMD_AUX_DISABLE = 0xa7,
	CMD_AUX_ENABLE = 0xa8,
	CMD_SELF_TEST = 0xaa,
	CMD_KBD_TEST = 0xab,
	CMD_KBD_DISABLE = 0xad,
	CMD_KBD_ENABLE = 0xae,
	CMD_READ_OUTPUT_PORT = 0xd0,
	CMD_WRITE_OUTPUT_PORT = 0xd1,
	CMD_PULSE_FIRST = 0xf0, /* 0xf0-0xff: pulse output port bits 0-3 that are 0 */
};

#define SELF_TEST_PASSED 0x55

/* Saved state: the controller's registers. */
struct i8042_state {
	uint8_t status;
	uint8_t output;	      /* the output buffer, valid with STATUS_OUTPUT_FULL */
	uint8_t input;	      /* the input register: the last byte written to either port */
	uint8_t command_byte; /* controller RAM byte 0 */
	uint8_t output_port;
	uint8_t pending; /* a command that waits for its data byte, or 0 */
	uint8_t reserved[2];
};

struct i8042 {
	struct device_context ctx;
	struct i8042_state regs;
};

static void i8042_output_set(struct i8042 *k, uint8_t value)
{
	k->regs.output = value;
	k->regs.status |= STATUS_OUTPUT_FULL;
}

static void i8042_reset_line_pulse(struct i8042 *k)
{
	k->ctx.guest_event(k->ctx.vm, GUEST_EVENT_RESET, 0, 0);
}

static void i8042_command(struct i8042 *k, uint8_t command)
{
	switch (command) {
	case CMD_READ_COMMAND_BYTE:
		i8042_output_set(k, k->regs.command_byte);
		break;
	case CMD_WRITE_COMMAND_BYTE:
	case CMD_WRITE_OUTPUT_PORT:
		k->regs.pending = command;
		break;
	case CMD_AUX_DISABLE:
	case CMD_AUX_ENABLE:
		k->regs.command_byte &= (uint8_t)~CB_AUX_DISABLED;
		k->regs.command_byte |= command == CMD_AUX_DISABLE ? CB_AUX_DISABLED : 0;
		break;
	case CMD_KBD_DISABLE:
	case CMD_KBD_ENABLE:
		k->regs.command_byte &= (uint8_t)~CB_KBD_DISABLED;
		k->regs.command_byte |= command == CMD_KBD_DISABLE ? CB_KBD_DISABLED : 0;
		break;
	case CMD_SELF_TEST:
		k->regs.status |= STATUS_SYSTEM;
		i8042_output_set(k, SELF_TEST_PASSED);
		break;
	case CMD_KBD_TEST:
		i8042_output_set(k, 0); /* no error */
		break;
	case CMD_READ_OUTPUT_PORT:
		i8042_output_set(k, k->regs.output_port);
		break;
	default:
		if (command >= CMD_PULSE_FIRST && !(command & OUTPUT_PORT_RESET_HIGH))
			i8042_reset_line_pulse(k);
		break; /* other commands concern the absent keyboard or mouse */
	}
}

/* A data byte completes a pending command; without one it would go to the keyboard. */
static void i8042_data_write(struct i8042 *k, uint8_t value)
{
	uint8_t command = k->regs.pending;

	k->regs.pending = 0;
	if (command == CMD_WRITE_COMMAND_BYTE) {
		k->regs.command_byte = value;
	} else if (command == CMD_WRITE_OUTPUT_PORT) {
		k->regs.output_port = value;
		if (!(value & OUTPUT_PORT_RESET_HIGH))
			i8042_reset_line_pulse(k);
	}
}

static void i8042_access(struct i8042 *k, bool command_port, uint8_t *data, uint32_t len,
			 bool is_write)
{
	if (!is_write) {
		memset(data, 0, len);
		if (command_port) {
			data[0] = k->regs.status;
		} else {
			data[0] = k->regs.output;
			k->regs.status &= (uint8_t)~STATUS_OUTPUT_FULL;
		}
		return;
	}
	k->regs.input = data[0];
	k->regs.status &= (uint8_t)~STATUS_COMMAND;
	if (command_port) {
		k->regs.status |= STATUS_COMMAND;
		i8042_command(k, data[0]);
	} else {
		i8042_data_write(k, data[0]);
	}
}

static void i8042_data_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	(void)offset;
	i8042_access(opaque, false, data, len, is_write);
}

static void i8042_command_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			     bool is_write)
{
	(void)offset;
	i8042_access(opaque, true, data, len, is_write);
}

static void i8042_reset(void *dev)
{
	struct i8042 *k = dev;

	k->regs = (struct i8042_state){
		.command_byte = CB_POWER_ON,
		.output_port = OUTPUT_PORT_RESET_HIGH | OUTPUT_PORT_A20,
	};
}

static void *i8042_create(const struct device_context *ctx)
{
	struct i8042 *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	k->ctx = *ctx;
	i8042_reset(k);
	/* two ports, not 0x60-0x64: 0x61 (port B) and the rest are not the i8042's */
	if (io_register(ctx->io, IO_BUS_PIO, I8042_DATA_PORT, 1, i8042_data_io, k) ||
	    io_register(ctx->io, IO_BUS_PIO, I8042_COMMAND_PORT, 1, i8042_command_io, k)) {
		free(k);
		return NULL;
	}
	return k;
}

static int i8042_quiesce(void *dev)
{
	(void)dev;
	return 0;
}

static void i8042_save(void *dev, void *state)
{
	memcpy(state, &((struct i8042 *)dev)->regs, sizeof(struct i8042_state));
}

static int i8042_restore(void *dev, const void *state)
{
	struct i8042 *k = dev;
	struct i8042_state s;

	memcpy(&s, state, sizeof(s));
	if (s.pending && s.pending != CMD_WRITE_COMMAND_BYTE && s.pending != CMD_WRITE_OUTPUT_PORT)
		return -EINVAL;
	k->regs = s;
	return 0;
}

static void i8042_destroy(void *dev)
{
	free(dev);
}

const struct device_ops i8042_device_ops = {
	.name = "i8042",
	.section_id = 0x0202,
	.state_version = 1,
	.state_size = sizeof(struct i8042_state),
	.create = i8042_create,
	.reset = i8042_reset,
	.quiesce = i8042_quiesce,
	.save = i8042_save,
	.restore = i8042_restore,
	.destroy = i8042_destroy,
};
DEVICE_REGISTER(i8042_device_ops);
