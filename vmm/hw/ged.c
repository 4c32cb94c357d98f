/*
 * The ACPI Generic Event Device (ACPI 6.4, 5.6.9) of hardware-reduced ACPI,
 * and its sleep registers (the FADT's SLEEP_CONTROL_REG and
 * SLEEP_STATUS_REG; ports in acpi_ports.h):
 *
 * - The host sets event bits and raises a level interrupt; the DSDT's _EVT
 *   method reads the event register, which returns the bits, clears them
 *   and lowers the line, and notifies the power button or the VM generation
 *   id device for each bit.
 * - S5 (soft off) is SLP_TYP=5 with SLP_EN written to the sleep control
 *   register: the VM ends with status 0.
 *
 * The device exists only with ACPI (--acpi on), so snapshots of VMs without
 * ACPI, and older ones, have no section for it.
 */
#include "vmm/hw/ged.h"
#include "vmm/device.h"
#include "vmm/hw/acpi_ports.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define GED_EVENTS_KNOWN (ACPI_GED_EVENT_POWER_BUTTON | ACPI_GED_EVENT_GENERATION)

struct ged_state {
	uint32_t pending;	/* events the guest has not read yet */
	uint32_t sleep_control; /* the last byte written to the sleep control register */
};

struct ged {
	struct device_context ctx;
	pthread_mutex_t lock; /* the loop thread raises, a vCPU thread reads */
	struct ged_state regs;
};

/* With ged->lock held: the line is up exactly while events are pending. */
static void ged_irq_update(struct ged *g)
{
	if (g->ctx.irq_line)
		g->ctx.irq_line(g->ctx.vm, ACPI_GED_GSI, g->regs.pending != 0);
}

void ged_event_raise(struct ged *g, uint32_t events)
{
	pthread_mutex_lock(&g->lock);
	g->regs.pending |= events & GED_EVENTS_KNOWN;
	ged_irq_update(g);
	pthread_mutex_unlock(&g->lock);
}

static uint32_t ged_event_take(struct ged *g)
{
	uint32_t events;

	pthread_mutex_lock(&g->lock);
	events = g->regs.pending;
	g->regs.pending = 0;
	ged_irq_update(g);
	pthread_mutex_unlock(&g->lock);
	return events;
}

static void ged_sleep_control_write(struct ged *g, uint8_t value)
{
	unsigned type = value >> ACPI_SLEEP_TYPE_SHIFT & ACPI_SLEEP_TYPE_MASK;

	g->regs.sleep_control = value;
	if ((value & ACPI_SLEEP_ENABLE) && type == ACPI_SLEEP_TYPE_S5)
		g->ctx.guest_event(g->ctx.vm, GUEST_EVENT_POWER_OFF, 0, 0);
}

static void ged_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct ged *g = opaque;
	uint32_t value = 0;

	if (is_write) {
		if (offset == ACPI_GED_SLEEP_CONTROL)
			ged_sleep_control_write(g, data[0]);
		return;
	}
	/* only a whole, aligned read of the event register takes the events */
	if (offset == ACPI_GED_EVENT && len == 4)
		value = ged_event_take(g);
	memset(data, 0, len);
	memcpy(data, &value, len < 4 ? len : 4);
}

static unsigned ged_instances(const struct vmm_config *config)
{
	return config->acpi ? 1 : 0;
}

static void *ged_create(const struct device_context *ctx)
{
	struct ged *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->ctx = *ctx;
	pthread_mutex_init(&g->lock, NULL);
	if (io_register(ctx->io, IO_BUS_PIO, ACPI_GED_PORT_BASE, ACPI_GED_PORT_COUNT, ged_io, g)) {
		pthread_mutex_destroy(&g->lock);
		free(g);
		return NULL;
	}
	return g;
}

static void ged_reset(void *dev)
{
	struct ged *g = dev;

	pthread_mutex_lock(&g->lock);
	memset(&g->regs, 0, sizeof(g->regs));
	ged_irq_update(g);
	pthread_mutex_unlock(&g->lock);
}

static int ged_quiesce(void *dev)
{
	(void)dev;
	return 0;
}

static void ged_save(void *dev, void *state)
{
	struct ged *g = dev;

	pthread_mutex_lock(&g->lock);
	memcpy(state, &g->regs, sizeof(g->regs));
	pthread_mutex_unlock(&g->lock);
}

/* The line's level follows the pending events, as KVM's irqchip state already has it. */
static int ged_restore(void *dev, const void *state)
{
	struct ged *g = dev;
	const struct ged_state *s = state;

	if ((s->pending & ~GED_EVENTS_KNOWN) || s->sleep_control > 0xff)
		return -EINVAL;
	pthread_mutex_lock(&g->lock);
	g->regs = *s;
	ged_irq_update(g);
	pthread_mutex_unlock(&g->lock);
	return 0;
}

static void ged_destroy(void *dev)
{
	struct ged *g = dev;

	pthread_mutex_destroy(&g->lock);
	free(g);
}

/*
 * ACPI as the guest knew it: --acpi makes the GED, pvpanic and vmgenid
 * together, and the GED's saved state stands for the three (the restore
 * checks, once the VM exists, that each has its own).
 */
static int ged_restore_config(const void *const *states, unsigned count,
			      const struct vmm_config *wanted, struct vmm_config *config)
{
	(void)states;
	(void)wanted;
	config->acpi = count > 0;
	return 0;
}

const struct device_ops ged_device_ops = {
	.name = "acpi-ged",
	.section_id = 0x0203,
	.state_version = 1,
	.state_size = sizeof(struct ged_state),
	.instances = ged_instances,
	.create = ged_create,
	.reset = ged_reset,
	.quiesce = ged_quiesce,
	.save = ged_save,
	.restore = ged_restore,
	.restore_config = ged_restore_config,
	.destroy = ged_destroy,
};
DEVICE_REGISTER(ged_device_ops);
