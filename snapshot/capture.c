/*
 * snapshot_create: stop the VM at a consistent point and write it all down.
 *
 * The order: pause the vCPUs (each finishes its last I/O exit first), quiesce
 * the devices and save them, save each vCPU on its own thread, then the
 * irqchips and the KVM clock (last, so that the clock is read as late as
 * possible before memory, which the paused guest can no longer change).
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

struct vcpu_save_job {
	struct vcpu_state *states;
};

static int vcpu_save_on_thread(struct vm *vm, unsigned index, int vcpu_fd, void *arg)
{
	struct vcpu_save_job *job = arg;

	return vcpu_state_save(vm_kvm_fd(vm), vcpu_fd, index, &job->states[index]);
}

static int capture_devices(struct vm *vm, struct snapshot_buffer *b, char *error, size_t error_size)
{
	for (unsigned i = 0; i < vm_device_count(vm); i++) {
		struct vm_device_info info;
		void *state;
		int ret;

		vm_device_describe(vm, i, &info);
		ret = vm_device_quiesce(vm, i);
		if (ret) {
			snprintf(error, error_size, "device %s cannot be quiesced: %s", info.name,
				 strerror(-ret));
			return ret;
		}
		state = calloc(1, info.state_size);
		if (!state)
			return -ENOMEM;
		vm_device_save(vm, i, state);
		snapshot_write_section(b, info.section_id, (uint16_t)info.state_version, 0, state,
				       info.state_size);
		free(state);
	}
	return 0;
}

/* Captures everything but memory into b; the VM must be paused. */
static int capture_state(struct vm *vm, struct snapshot_buffer *b, char *error, size_t error_size)
{
	unsigned cpus = vm_vcpu_count(vm);
	struct vcpu_save_job job = { calloc(cpus, sizeof(struct vcpu_state)) };
	struct snapshot_header header = { .created_ns = time_realtime_ns() };
	struct vm_section vm_section = { .cpus = cpus };
	struct config_section *config = malloc(sizeof(*config));
	struct kvm_irqchip chips[3];
	struct clock_section clock;
	int ret;

	if (!job.states || !config) {
		free(job.states);
		free(config);
		return -ENOMEM;
	}
	config_section_from_vm(vm_config(vm), config);
	vm_ram(vm, &vm_section.mem_size);
	ret = vm_vcpus_call(vm, vcpu_save_on_thread, &job);
	if (!ret)
		ret = vm_state_save_irqchip(vm_fd(vm), chips);
	if (!ret)
		ret = vm_state_save_clock(vm_fd(vm), &clock);
	if (ret) {
		snprintf(error, error_size, "reading the VM's state from KVM failed: %s",
			 strerror(-ret));
		goto out;
	}
	cpu_host_identity(header.cpu_vendor, &header.cpu_signature);
	cpu_cpuid_digest(job.states[0].cpuid, job.states[0].fixed.cpuid_count, header.cpuid_digest);
	snapshot_write_begin(b, &header);
	snapshot_write_section(b, SECTION_VM, 1, 0, &vm_section, sizeof(vm_section));
	snapshot_write_section(b, SECTION_CONFIG, 1, 0, config, sizeof(*config));
	for (unsigned i = 0; i < cpus; i++)
		vcpu_state_encode(b, i, &job.states[i]);
	snapshot_write_section(b, SECTION_IRQCHIP, 1, 0, chips, sizeof(chips));
	snapshot_write_section(b, SECTION_CLOCK, 1, 0, &clock, sizeof(clock));
	ret = capture_devices(vm, b, error, error_size);
	if (!ret)
		ret = snapshot_write_finish(b);
out:
	for (unsigned i = 0; i < cpus; i++)
		vcpu_state_free(&job.states[i]);
	free(job.states);
	free(config);
	return ret;
}

static int write_snapshot(struct vm *vm, struct snapshot_repo *repo, const char *name,
			  const struct snapshot_buffer *b, struct snapshot_stats *stats,
			  char *error, size_t error_size)
{
	struct repo_writer *writer;
	uint64_t size;
	uint8_t *ram = vm_ram(vm, &size);
	int ret = repo_write_begin(repo, name, &writer, error, error_size);

	if (ret)
		return ret;
	ret = repo_write_memory(writer, ram, size, &stats->memory_bytes);
	if (!ret)
		ret = repo_write_state(writer, b->data, b->len);
	if (ret) {
		snprintf(error, error_size, "writing snapshot %s failed: %s", name, strerror(-ret));
		repo_write_abort(writer);
		return ret;
	}
	stats->state_bytes = b->len;
	return repo_write_commit(writer, error, error_size);
}

int snapshot_create(struct vm *vm, struct snapshot_repo *repo, const char *name,
		    struct snapshot_stats *stats, char *error, size_t error_size)
{
	struct snapshot_buffer b = { 0 };
	uint64_t t0 = time_now_ns(), t1, t2;
	int ret = snapshot_name_check(name, error, error_size);

	memset(stats, 0, sizeof(*stats));
	if (ret)
		return ret;
	ret = vm_pause(vm);
	if (ret) {
		snprintf(error, error_size, "cannot pause the VM: %s", strerror(-ret));
		return ret;
	}
	t1 = time_now_ns();
	ret = capture_state(vm, &b, error, error_size);
	t2 = time_now_ns();
	if (!ret)
		ret = write_snapshot(vm, repo, name, &b, stats, error, error_size);
	stats->pause_ns = t1 - t0;
	stats->capture_ns = t2 - t1;
	stats->write_ns = time_now_ns() - t2;
	snapshot_buffer_free(&b);
	return ret;
}
