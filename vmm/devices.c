#include "vmm/device.h"

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
