/*
 * The VM generation id (Microsoft's "Virtual Machine Generation ID"
 * specification, as Linux's vmgenid driver reads it): 16 bytes at
 * ACPI_VMGENID_ADDR that the DSDT's VGEN device points to. Each VM,
 * booted or restored, has its own id (device_context.generation, also
 * behind the control port); the ACPI tables' loader writes it at boot, and a
 * restore writes the clone's id before any vCPU
 * runs, and the VM then has the GED notify the guest (vm_generation_notify),
 * whose driver reseeds the kernel's random number generator from it.
 * Only with ACPI.
 */
#include "vmm/device.h"
#include "vmm/hw/acpi_ports.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct vmgenid_state {
	uint64_t address; /* where the id lives in guest memory */
};

struct vmgenid {
	struct device_context ctx;
	struct vmgenid_state regs;
};

static int vmgenid_id_write(struct vmgenid *v)
{
	uint8_t *id = guest_memory_ptr(v->ctx.mem, v->regs.address, ACPI_VMGENID_SIZE);

	if (!id)
		return -EINVAL;
	memcpy(id, v->ctx.generation, ACPI_VMGENID_SIZE);
	return 0;
}

static unsigned vmgenid_instances(const struct vmm_config *config)
{
	return config->acpi ? 1 : 0;
}

static void *vmgenid_create(const struct device_context *ctx)
{
	struct vmgenid *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->ctx = *ctx;
	/*
	 * Nothing is written here: a restore creates the device before the
	 * snapshot's memory is in place, and a page touched now would keep its
	 * zeros (userfaultfd only fills missing pages). A boot gets its id from
	 * the ACPI loader (x86_acpi_write), a restore from vmgenid_restore.
	 */
	v->regs.address = ACPI_VMGENID_ADDR;
	return v;
}

static void vmgenid_reset(void *dev)
{
	(void)dev;
}

static int vmgenid_quiesce(void *dev)
{
	(void)dev;
	return 0;
}

static void vmgenid_save(void *dev, void *state)
{
	*(struct vmgenid_state *)state = ((struct vmgenid *)dev)->regs;
}

/* The snapshot says where its guest expects the id: it must be guest RAM. */
static int vmgenid_restore(void *dev, const void *state)
{
	struct vmgenid *v = dev;
	const struct vmgenid_state *s = state;

	if (!guest_memory_ptr(v->ctx.mem, s->address, ACPI_VMGENID_SIZE))
		return -EINVAL;
	v->regs = *s;
	return vmgenid_id_write(v);
}

static void vmgenid_destroy(void *dev)
{
	free(dev);
}

const struct device_ops vmgenid_device_ops = {
	.name = "vmgenid",
	.section_id = 0x0205,
	.state_version = 1,
	.state_size = sizeof(struct vmgenid_state),
	.instances = vmgenid_instances,
	.create = vmgenid_create,
	.reset = vmgenid_reset,
	.quiesce = vmgenid_quiesce,
	.save = vmgenid_save,
	.restore = vmgenid_restore,
	.destroy = vmgenid_destroy,
};
DEVICE_REGISTER(vmgenid_device_ops);
