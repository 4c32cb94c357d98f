/*
 * snapshot_restore: check a snapshot whole, then rebuild its VM.
 *
 * The order: decode and check the state file (no KVM yet); create the VM with
 * the saved RAM size and vCPU count; check the device sections against this
 * snapvm's devices; put the memory in place; restore the irqchips, then the
 * devices (they may raise interrupt lines, which need the irqchip's state);
 * start the vCPU threads parked, and on each vCPU's thread check its CPU
 * features against the snapshot's, then restore it; set the KVM clock last,
 * just before the caller resumes, so that the guest loses no time in between.
 */
#include "snapshot/snapshot.h"
#include "snapshot/cpu.h"
#include "snapshot/repo.h"
#include "snapshot/state.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESTORE_ERROR(...) (snprintf(error, error_size, __VA_ARGS__), -EINVAL)

struct vcpu_restore_job {
	const struct snapshot_state *st;
	char error[VMM_MAX_CPUS][256]; /* each vCPU thread writes its own */
};

/*
 * On each vCPU's thread: first check that this host's vCPU shows every
 * feature the snapshot's guest saw (nothing has run yet), then restore.
 */
static int vcpu_restore_on_thread(struct vm *vm, unsigned index, int vcpu_fd, void *arg)
{
	struct vcpu_restore_job *job = arg;
	const struct vcpu_state *saved = &job->st->vcpus[index];
	struct kvm_cpuid_entry2 *here = calloc(VCPU_MAX_CPUID_ENTRIES, sizeof(*here));
	uint32_t count;
	int ret;

	(void)vm;
	if (!here)
		return -ENOMEM;
	ret = vcpu_cpuid_read(vcpu_fd, index, here, &count);
	if (!ret)
		ret = cpu_check_features(saved->cpuid, saved->fixed.cpuid_count, here, count,
					 job->error[index], sizeof(job->error[index]));
	free(here);
	if (ret)
		return ret;
	ret = vcpu_state_restore(vcpu_fd, index, saved);
	if (ret)
		snprintf(job->error[index], sizeof(job->error[index]),
			 "KVM refused the snapshot's state for vCPU %u", index);
	return ret;
}

static int restore_vcpus(struct vm *vm, const struct snapshot_state *st, char *error,
			 size_t error_size)
{
	struct vcpu_restore_job *job = calloc(1, sizeof(*job));
	int ret;

	if (!job)
		return -ENOMEM;
	job->st = st;
	ret = vm_vcpus_call(vm, vcpu_restore_on_thread, job);
	for (unsigned i = 0; ret && i < st->vm.cpus; i++) {
		if (job->error[i][0]) {
			snprintf(error, error_size, "%s", job->error[i]);
			ret = -EINVAL;
			break;
		}
	}
	free(job);
	return ret;
}

/* Each device of this VM must have a section of its version and size. */
static int check_devices(struct vm *vm, const struct snapshot_state *st, char *error,
			 size_t error_size)
{
	unsigned matched = 0;

	for (unsigned i = 0; i < vm_device_count(vm); i++) {
		struct vm_device_info info;
		const struct snapshot_section *s;

		vm_device_describe(vm, i, &info);
		s = snapshot_find(&st->parsed, info.section_id);
		if (!s)
			return RESTORE_ERROR("snapshot has no state for device %s", info.name);
		if (s->version != info.state_version || s->length != info.state_size)
			return RESTORE_ERROR(
				"snapshot's %s state is version %u, %llu bytes; this snapvm "
				"reads version %u, %u bytes",
				info.name, s->version, (unsigned long long)s->length,
				info.state_version, info.state_size);
		matched++;
	}
	for (unsigned i = 0; i < st->parsed.section_count; i++) {
		const struct snapshot_section *s = &st->parsed.sections[i];

		if (section_is_device(s->id) && !(s->flags & SECTION_OPTIONAL) && matched-- == 0)
			return RESTORE_ERROR(
				"snapshot has state for a device this VM does not have "
				"(section 0x%x)",
				s->id);
	}
	return 0;
}

static int restore_devices(struct vm *vm, const struct snapshot_state *st, char *error,
			   size_t error_size)
{
	for (unsigned i = 0; i < vm_device_count(vm); i++) {
		struct vm_device_info info;
		const struct snapshot_section *s;

		vm_device_describe(vm, i, &info);
		s = snapshot_find(&st->parsed, info.section_id);
		if (vm_device_restore(vm, i, s->payload))
			return RESTORE_ERROR("snapshot's %s state is invalid", info.name);
	}
	return 0;
}

/* Builds the VM: everything up to (not including) running the vCPUs. */
static int restore_vm(struct snapshot_repo *repo, const struct snapshot_restore_options *o,
		      struct snapshot_state *st, struct vm **out, char *error, size_t error_size)
{
	struct vmm_config config;
	uint64_t size;
	uint8_t *ram;
	struct vm *vm;
	int ret;

	*out = NULL;
	ret = config_section_to_vm(&st->config, &o->vm, &config, error, error_size);
	if (ret)
		return ret;
	config.mem_size = st->vm.mem_size;
	config.cpus = st->vm.cpus;
	config.kernel_path = NULL;
	ret = vm_create(&config, &vm);
	*out = vm;
	if (ret) {
		snprintf(error, error_size, "cannot create the VM: %s", strerror(-ret));
		return ret;
	}
	ret = check_devices(vm, st, error, error_size);
	ram = vm_ram(vm, &size);
	if (!ret)
		ret = repo_map_memory(repo, o->name, ram, size, error, error_size);
	if (!ret && vm_state_restore_irqchip(vm_fd(vm), st->chips))
		ret = RESTORE_ERROR("KVM refused the snapshot's irqchip state");
	if (!ret)
		ret = restore_devices(vm, st, error, error_size);
	return ret;
}

int snapshot_restore(struct snapshot_repo *repo, const struct snapshot_restore_options *o,
		     struct vm **out, char *error, size_t error_size)
{
	struct snapshot_state *st = calloc(1, sizeof(*st));
	char host_vendor[12];
	uint32_t host_signature;
	struct vm *vm = NULL;
	uint8_t *data = NULL;
	size_t len;
	int ret;

	*out = NULL;
	if (!st)
		return -ENOMEM;
	ret = repo_read_state(repo, o->name, &data, &len, error, error_size);
	if (!ret)
		ret = snapshot_state_decode(data, len, st, error, error_size);
	if (!ret) {
		cpu_host_identity(host_vendor, &host_signature);
		ret = cpu_check_vendor(st->parsed.header.cpu_vendor, host_vendor, error,
				       error_size);
	}
	if (!ret)
		ret = restore_vm(repo, o, st, &vm, error, error_size);
	if (!ret) {
		ret = vm_start(vm, true);
		if (ret)
			snprintf(error, error_size, "cannot start the VM's threads: %s",
				 strerror(-ret));
	}
	if (!ret)
		ret = restore_vcpus(vm, st, error, error_size);
	if (!ret && vm_state_restore_clock(vm_fd(vm), &st->clock, o->clock_realtime))
		ret = RESTORE_ERROR("KVM refused the snapshot's clock");
	if (ret) {
		vm_destroy(vm);
		vm = NULL;
	}
	*out = vm;
	free(data);
	free(st);
	return ret;
}
