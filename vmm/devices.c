#include "vmm/device.h"
#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The linker gathers every DEVICE_REGISTER into this section and names its bounds. */
extern const struct device_ops *const __start_snapvm_devices[];
extern const struct device_ops *const __stop_snapvm_devices[];

#define DEVICE_MAX_TYPES 32

static const struct device_ops *devices[DEVICE_MAX_TYPES + 1];
static pthread_once_t devices_once = PTHREAD_ONCE_INIT;

/* A registry that breaks the rules is a bug in this build: say which and stop. */
static void devices_fatal(const char *what, const struct device_ops *a, const struct device_ops *b)
{
	log_error("device registry: %s: %s (0x%x)%s%s", what, a->name, a->section_id,
		  b ? " and " : "", b ? b->name : "");
	abort();
}

static void devices_sort(void)
{
	size_t count = (size_t)(__stop_snapvm_devices - __start_snapvm_devices);

	if (count > DEVICE_MAX_TYPES)
		devices_fatal("too many device types", __start_snapvm_devices[0], NULL);
	/* insertion sort by section id: a dozen entries, once */
	for (size_t i = 0; i < count; i++) {
		const struct device_ops *ops = __start_snapvm_devices[i];
		size_t j = i;

		if (ops->section_id < VMM_DEVICE_SECTION_FIRST ||
		    ops->section_id > VMM_DEVICE_SECTION_LAST)
			devices_fatal("section id out of range", ops, NULL);
		for (; j > 0 && devices[j - 1]->section_id > ops->section_id; j--)
			devices[j] = devices[j - 1];
		devices[j] = ops;
	}
	for (size_t i = 1; i < count; i++)
		if (devices[i - 1]->section_id == devices[i]->section_id)
			devices_fatal("two devices share a section id", devices[i - 1], devices[i]);
	devices[count] = NULL;
}

const struct device_ops *const *vmm_devices(void)
{
	pthread_once(&devices_once, devices_sort);
	return devices;
}

const struct device_ops *vmm_device_find(const char *name)
{
	for (const struct device_ops *const *d = vmm_devices(); *d; d++)
		if (!strcmp((*d)->name, name))
			return *d;
	return NULL;
}

bool vmm_config_device_on(const struct vmm_config *config, const char *name)
{
	for (unsigned i = 0; i < config->devices_on_count; i++)
		if (!strcmp(config->devices_on[i], name))
			return true;
	return false;
}

int vmm_config_device_switch(struct vmm_config *config, const char *name, bool on)
{
	unsigned i = 0;

	while (i < config->devices_on_count && strcmp(config->devices_on[i], name))
		i++;
	if (!on && i < config->devices_on_count)
		config->devices_on[i] = config->devices_on[--config->devices_on_count];
	else if (on && i == config->devices_on_count) {
		if (i == VMM_MAX_DEVICES_ON) {
			log_error("cannot switch on %s: %d device types are on already", name,
				  VMM_MAX_DEVICES_ON);
			return -ENOSPC;
		}
		config->devices_on[config->devices_on_count++] = name;
	}
	return 0;
}

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
	for (const struct device_ops *const *d = vmm_devices(); *d; d++) {
		int ret = (*d)->restore_config
				  ? device_config_restore(*d, wanted, saved, saved_count, config)
				  : 0;

		if (ret)
			return ret;
	}
	return 0;
}
