#include "vmm/device.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The order here is the order of creation, save and restore. Append only. */
const struct device_ops *const device_table[] = {
	&ctl_device_ops,
	&uart_device_ops,
	&virtio_console_device_ops,
	&virtio_rng_device_ops,
	&virtio_vsock_device_ops,
	&virtio_blk_device_ops,
	&i8042_device_ops,
	&virtio_net_device_ops, /* after the disks' and the i8042's sections: appended */
	/* ACPI only (--acpi on); the GED before vmgenid, whose restore may raise its event */
	&ged_device_ops,
	&pvpanic_device_ops,
	&vmgenid_device_ops,
	NULL,
};

#define DEVICE_MAX_INSTANCES 16 /* of one type: more than any configuration makes */

bool vmm_device_state_fits(const struct vm_device_info *info, uint32_t version, uint64_t length)
{
	if (version == info->state_version)
		return length == info->state_size;
	return info->state_version_oldest && version >= info->state_version_oldest &&
	       version < info->state_version && length > 0 && length < info->state_size;
}

static const struct vmm_saved_device *saved_find(const struct vmm_saved_device *saved,
						 unsigned count, uint32_t id)
{
	for (unsigned i = 0; i < count; i++)
		if (saved[i].section_id == id)
			return &saved[i];
	return NULL;
}

/* One device type: its saved instances, zero-extended, to its restore_config. */
static int device_config_restore(const struct device_ops *ops, const struct vmm_config *wanted,
				 const struct vmm_saved_device *saved, unsigned saved_count,
				 struct vmm_config *config)
{
	struct vm_device_info info = { ops->name, ops->section_id, ops->state_version,
				       ops->state_size, ops->state_version_oldest };
	void *states[DEVICE_MAX_INSTANCES];
	unsigned count = 0;
	int ret = 0;

	for (const struct vmm_saved_device *s;
	     count < DEVICE_MAX_INSTANCES &&
	     (s = saved_find(saved, saved_count, ops->section_id | count << 16));
	     count++) {
		if (!vmm_device_state_fits(&info, s->version, s->length)) {
			log_error("snapshot's %s state is version %u, %llu bytes; this snapvm "
				  "reads version %u, %u bytes",
				  ops->name, s->version, (unsigned long long)s->length,
				  ops->state_version, ops->state_size);
			ret = -EINVAL;
			break;
		}
		states[count] = calloc(1, ops->state_size);
		if (!states[count]) {
			ret = -ENOMEM;
			break;
		}
		memcpy(states[count], s->state, MIN(s->length, (uint64_t)ops->state_size));
	}
	if (!ret)
		ret = ops->restore_config((const void *const *)states, count, wanted, config);
	while (count)
		free(states[--count]);
	return ret;
}

int vmm_config_restore(const struct vmm_config *wanted, const struct vmm_saved_device *saved,
		       unsigned saved_count, struct vmm_config *config)
{
	*config = *wanted;
	for (unsigned i = 0; device_table[i]; i++) {
		int ret = device_table[i]->restore_config
				  ? device_config_restore(device_table[i], wanted, saved,
							  saved_count, config)
				  : 0;

		if (ret)
			return ret;
	}
	return 0;
}
