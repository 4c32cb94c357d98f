/*
 * pvpanic (QEMU's docs/specs/pvpanic.txt): one I/O port at ACPI_PVPANIC_PORT,
 * found by Linux's pvpanic-mmio driver through the DSDT (QEMU0001). Reads
 * give the events this side understands; the guest writes PANICKED (bit 0)
 * when its kernel panics, and the VM ends with VMM_EXIT_GUEST_PANIC, so that
 * a panicking guest does not look like one that powered off. Only with ACPI.
 */
#include "vmm/device.h"
#include "vmm/hw/acpi_ports.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <stdlib.h>

struct pvpanic_state {
	uint32_t last_write; /* the last byte the guest wrote, for the record */
};

struct pvpanic {
	struct device_context ctx;
	struct pvpanic_state regs;
};

static void pvpanic_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pvpanic *p = opaque;

	(void)offset;
	if (!is_write) {
		for (uint32_t i = 0; i < len; i++)
			data[i] = i == 0 ? ACPI_PVPANIC_PANICKED : 0;
		return;
	}
	p->regs.last_write = data[0];
	if (data[0] & ACPI_PVPANIC_PANICKED)
		p->ctx.guest_event(p->ctx.vm, GUEST_EVENT_GUEST_PANIC, data[0], 0);
}

static unsigned pvpanic_instances(const struct vmm_config *config)
{
	return config->acpi ? 1 : 0;
}

static void *pvpanic_create(const struct device_context *ctx)
{
	struct pvpanic *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->ctx = *ctx;
	if (io_register(ctx->io, IO_BUS_PIO, ACPI_PVPANIC_PORT, 1, pvpanic_io, p)) {
		free(p);
		return NULL;
	}
	return p;
}

static void pvpanic_reset(void *dev)
{
	((struct pvpanic *)dev)->regs.last_write = 0;
}

static int pvpanic_quiesce(void *dev)
{
	(void)dev;
	return 0;
}

static void pvpanic_save(void *dev, void *state)
{
	*(struct pvpanic_state *)state = ((struct pvpanic *)dev)->regs;
}

static int pvpanic_restore(void *dev, const void *state)
{
	const struct pvpanic_state *s = state;

	if (s->last_write > 0xff)
		return -EINVAL;
	((struct pvpanic *)dev)->regs = *s;
	return 0;
}

static void pvpanic_destroy(void *dev)
{
	free(dev);
}

const struct device_ops pvpanic_device_ops = {
	.name = "pvpanic",
	.section_id = 0x0204,
	.state_version = 1,
	.state_size = sizeof(struct pvpanic_state),
	.instances = pvpanic_instances,
	.create = pvpanic_create,
	.reset = pvpanic_reset,
	.quiesce = pvpanic_quiesce,
	.save = pvpanic_save,
	.restore = pvpanic_restore,
	.destroy = pvpanic_destroy,
};
DEVICE_REGISTER(pvpanic_device_ops);
