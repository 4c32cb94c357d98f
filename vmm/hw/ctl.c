/*
 * snapvm's control port: how a guest says "ready", "exit with this code" or
 * "I crashed here". Ports (documented in README.md, "The test guest"):
 *   0x600 write32: ready (value: the guest's ready code); read32: "SNAP"
 *   0x601 write8:  exit with this status
 *   0x602 write32: panic with this exception vector, at the RIP latched below
 *   0x604 write32: panic RIP, low half;  0x608 write32: panic RIP, high half
 *   0x60c write8:  1: console output may wait for the guest's next VM exit; 0: not
 *   0x610-0x61f read32: the VM's 128-bit generation id, new at every restore
 *                       (the same id VMGenID gives an ACPI guest)
 */
#include "vmm/device.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CTL_PORT_BASE		    0x600
#define CTL_PORT_COUNT		    0x20
#define CTL_CONSOLE_BATCHING_OFFSET 0x0c
#define CTL_GENERATION_OFFSET	    0x10
#define CTL_SIGNATURE		    0x50414e53 /* "SNAP" little-endian */

struct ctl_state {
	uint32_t ready_code;
	uint32_t ready_count;
	uint32_t panic_rip_low;
	uint32_t panic_rip_high;
	uint32_t console_batching; /* 0 or 1, as last written to 0x60c */
};

struct ctl {
	struct device_context ctx;
	struct ctl_state regs;
	/*
	 * Not saved state: the generation id is the VM's (ctx.generation), new
	 * for each restore, so that clones can tell themselves apart; VMGenID
	 * gives an ACPI guest the same id.
	 */
};

static uint32_t read_le32(const uint8_t *data, uint32_t len)
{
	uint32_t v = 0;

	memcpy(&v, data, MIN(len, 4u));
	return v;
}

static void ctl_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct ctl *c = opaque;
	uint32_t value;

	if (!is_write) {
		uint32_t word = offset == 0 ? CTL_SIGNATURE : 0;

		if (offset >= CTL_GENERATION_OFFSET && offset + len <= CTL_PORT_COUNT)
			memcpy(&word, c->ctx.generation + offset - CTL_GENERATION_OFFSET,
			       MIN(len, 4u));
		memcpy(data, &word, MIN(len, 4u));
		return;
	}
	value = read_le32(data, len);
	switch (offset) {
	case 0:
		c->regs.ready_code = value;
		c->regs.ready_count++;
		c->ctx.guest_event(c->ctx.vm, GUEST_EVENT_READY, value, 0);
		break;
	case 1:
		c->ctx.guest_event(c->ctx.vm, GUEST_EVENT_EXIT, value & 0xff, 0);
		break;
	case 2:
		c->ctx.guest_event(c->ctx.vm, GUEST_EVENT_PANIC, value,
				   (uint64_t)c->regs.panic_rip_high << 32 | c->regs.panic_rip_low);
		break;
	case 4:
		c->regs.panic_rip_low = value;
		break;
	case 8:
		c->regs.panic_rip_high = value;
		break;
	case CTL_CONSOLE_BATCHING_OFFSET:
		c->regs.console_batching = (value & 0xff) != 0;
		c->ctx.guest_event(c->ctx.vm, GUEST_EVENT_CONSOLE_BATCHING,
				   c->regs.console_batching, 0);
		break;
	default:
		break;
	}
}

static void *ctl_create(const struct device_context *ctx)
{
	struct ctl *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->ctx = *ctx;
	if (io_register(ctx->io, IO_BUS_PIO, CTL_PORT_BASE, CTL_PORT_COUNT, ctl_io, c)) {
		free(c);
		return NULL;
	}
	return c;
}

static void ctl_reset(void *dev)
{
	struct ctl *c = dev;

	memset(&c->regs, 0, sizeof(c->regs));
}

static int ctl_quiesce(void *dev)
{
	(void)dev;
	return 0;
}

static void ctl_save(void *dev, void *state)
{
	memcpy(state, &((struct ctl *)dev)->regs, sizeof(struct ctl_state));
}

static int ctl_restore(void *dev, const void *state)
{
	struct ctl *c = dev;
	const struct ctl_state *s = state;

	if (s->console_batching > 1)
		return -EINVAL;
	c->regs = *s;
	if (c->regs.console_batching) /* the clone's console works as the original's did */
		c->ctx.guest_event(c->ctx.vm, GUEST_EVENT_CONSOLE_BATCHING, 1, 0);
	return 0;
}

static void ctl_destroy(void *dev)
{
	free(dev);
}

const struct device_ops ctl_device_ops = {
	.name = "control-port",
	.section_id = 0x0200,
	.state_version = 2,	   /* 2: console_batching */
	.state_version_oldest = 1, /* version 1 is version 2 without console_batching */
	.state_size = sizeof(struct ctl_state),
	.create = ctl_create,
	.reset = ctl_reset,
	.quiesce = ctl_quiesce,
	.save = ctl_save,
	.restore = ctl_restore,
	.destroy = ctl_destroy,
};
DEVICE_REGISTER(ctl_device_ops);
