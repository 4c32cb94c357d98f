#include "vmm/device.h"
#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
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

const char *vmm_config_device_arg(const struct vmm_config *config, const char *name, unsigned index)
{
	for (unsigned i = 0; i < config->device_arg_count; i++)
		if (!strcmp(config->device_args[i].device, name) && index-- == 0)
			return config->device_args[i].value;
	return NULL;
}

int vmm_config_device_arg_add(struct vmm_config *config, const char *name, const char *value)
{
	const struct device_ops *ops = vmm_device_find(name);
	struct vmm_device_arg *arg;

	if (!ops)
		return log_invalid("no device type is called %s", name);
	if (!ops->check_arg && value[0])
		return log_invalid("%s takes no value ('%s')", name, value);
	if (ops->check_arg) {
		int ret = ops->check_arg(value);

		if (ret)
			return ret;
	}
	if (strlen(value) >= VMM_DEVICE_ARG_MAX)
		return log_invalid("%s: a value of %zu bytes is too long (at most %d)", name,
				   strlen(value), VMM_DEVICE_ARG_MAX - 1);
	if (config->device_arg_count == VMM_MAX_DEVICE_ARGS) {
		log_error("%s: more than %d device option values", name, VMM_MAX_DEVICE_ARGS);
		return -ENOSPC;
	}
	arg = &config->device_args[config->device_arg_count++];
	arg->device = ops->name;
	snprintf(arg->value, sizeof(arg->value), "%s", value);
	return 0;
}

void vmm_config_device_args_drop(struct vmm_config *config, const char *name)
{
	unsigned kept = 0;

	for (unsigned i = 0; i < config->device_arg_count; i++)
		if (strcmp(config->device_args[i].device, name))
			config->device_args[kept++] = config->device_args[i];
	config->device_arg_count = kept;
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
