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
#include "snapshot/clone.h"
#include "snapshot/repo.h"
#include "snapshot/state.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct vcpu_save_job {
	struct vcpu_state *states;
};

static int vcpu_save_on_thread(struct vm *vm, unsigned index, int vcpu_fd, void *arg)
{
	struct vcpu_save_job *job = arg;

	return vcpu_state_save(vm_kvm_fd(vm), vcpu_fd, index, &job->states[index]);
}

static int capture_devices(struct vm *vm, struct snapshot_buffer *b)
{
	for (unsigned i = 0; i < vm_device_count(vm); i++) {
		struct vm_device_info info;
		void *state;
		int ret;

		vm_device_describe(vm, i, &info);
		ret = vm_device_quiesce(vm, i);
		if (ret) {
			log_error("device %s cannot be quiesced: %s", info.name, strerror(-ret));
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
static int capture_state(struct vm *vm, struct snapshot_buffer *b)
{
	unsigned cpus = vm_vcpu_count(vm);
	struct vcpu_save_job job = { calloc(cpus, sizeof(struct vcpu_state)) };
	struct snapshot_header header = { .created_ns = time_realtime_ns() };
	struct vm_section vm_section = { .cpus = cpus };
	struct kvm_irqchip chips[3];
	struct clock_section clock;
	int ret;

	if (!job.states)
		return -ENOMEM;
	vm_ram(vm, &vm_section.mem_size);
	ret = vm_vcpus_call(vm, vcpu_save_on_thread, &job);
	if (!ret)
		ret = vm_state_save_irqchip(vm_fd(vm), chips);
	if (!ret)
		ret = vm_state_save_clock(vm_fd(vm), &clock, job.states[0].tsc_at_ns);
	/* each ioctl that fails is logged; only running out of memory is said here */
	if (ret == -ENOMEM)
		log_error("reading the VM's state from KVM failed: %s", strerror(-ret));
	if (ret)
		goto out;
	cpu_host_identity(header.cpu_vendor, &header.cpu_signature);
	cpu_cpuid_digest(job.states[0].cpuid, job.states[0].fixed.cpuid_count, header.cpuid_digest);
	snapshot_write_begin(b, &header);
	snapshot_write_section(b, SECTION_VM, 1, 0, &vm_section, sizeof(vm_section));
	for (unsigned i = 0; i < cpus; i++)
		vcpu_state_encode(b, i, &job.states[i]);
	snapshot_write_section(b, SECTION_IRQCHIP, 1, 0, chips, sizeof(chips));
	snapshot_write_section(b, SECTION_CLOCK, 1, 0, &clock, sizeof(clock));
	ret = capture_devices(vm, b);
	if (!ret)
		ret = snapshot_write_finish(b);
out:
	for (unsigned i = 0; i < cpus; i++)
		vcpu_state_free(&job.states[i]);
	free(job.states);
	return ret;
}

#define MINCORE_CHUNK (64ULL << 20)

/*
 * Puts guest memory into the store. Pages the host never populated are zero
 * and are skipped without being read (mincore): reading them would fault
 * each one in just to find zeros. That holds for a booted VM's anonymous
 * memory and for a clone's once all of it is in place, not for a mapped
 * copy, whose unread pages are not zero: there every page is put.
 */
static int write_memory(struct store_writer *w, const uint8_t *ram, uint64_t size,
			bool trust_mincore)
{
	unsigned char *resident = malloc(MINCORE_CHUNK / PAGE_SIZE);
	int ret = 0;

	if (!resident)
		return -ENOMEM;
	for (uint64_t base = 0; base < size && !ret; base += MINCORE_CHUNK) {
		uint64_t pages = MIN(MINCORE_CHUNK, size - base) / PAGE_SIZE, run = 0;

		if (!trust_mincore ||
		    mincore((void *)(ram + base), pages * PAGE_SIZE, resident) < 0)
			memset(resident, 1, pages);
		for (uint64_t p = 0; p <= pages && !ret; p++) {
			if (p < pages && (resident[p] & 1)) {
				run++;
				continue;
			}
			if (run)
				ret = store_snapshot_put_pages(w, base / PAGE_SIZE + p - run,
							       ram + base + (p - run) * PAGE_SIZE,
							       run);
			run = 0;
		}
	}
	free(resident);
	return ret;
}

static int write_snapshot(struct vm *vm, struct snapshot_clone *clone, struct snapshot_repo *repo,
			  const char *name, const struct snapshot_buffer *b,
			  struct snapshot_stats *stats)
{
	const struct snapshot_header *h = (const struct snapshot_header *)b->data;
	char cpu_id[64];
	struct store_commit_info info = { .created_ns = h->created_ns, .cpu_id = cpu_id };
	struct store_write_stats ws;
	struct store_writer *writer;
	uint64_t size;
	uint8_t *ram = vm_ram(vm, &size);
	int ret = store_snapshot_begin(repo->store, name, size, &writer);

	if (ret)
		return ret;
	snprintf(cpu_id, sizeof(cpu_id), "%.12s family-model-stepping 0x%x", h->cpu_vendor,
		 h->cpu_signature);
	info.parent = clone ? snapshot_clone_name(clone) : NULL;
	ret = write_memory(writer, ram, size, !clone || snapshot_clone_memory_complete(clone));
	if (!ret)
		ret = store_snapshot_put_blob(writer, "state", b->data, b->len);
	if (ret) {
		store_snapshot_abort(writer);
		return ret;
	}
	ret = store_snapshot_commit(writer, &info, &ws);
	stats->state_bytes = b->len;
	stats->memory_bytes = ws.new_bytes;
	return ret;
}

int snapshot_create(struct vm *vm, struct snapshot_clone *clone, struct snapshot_repo *repo,
		    const char *name, struct snapshot_stats *stats)
{
	struct snapshot_buffer b = { 0 };
	uint64_t t0 = time_now_ns(), t1, t2;
	int ret = snapshot_name_check(name);

	memset(stats, 0, sizeof(*stats));
	if (ret)
		return ret;
	ret = vm_pause(vm);
	if (ret) {
		log_error("cannot pause the VM: %s", strerror(-ret));
		return ret;
	}
	t1 = time_now_ns();
	/* pages a clone has not paged in yet are fetched: a snapshot holds them all */
	if (clone)
		ret = snapshot_clone_fill(clone);
	if (!ret)
		ret = capture_state(vm, &b);
	t2 = time_now_ns();
	if (!ret)
		ret = write_snapshot(vm, clone, repo, name, &b, stats);
	stats->pause_ns = t1 - t0;
	stats->capture_ns = t2 - t1;
	stats->write_ns = time_now_ns() - t2;
	snapshot_buffer_free(&b);
	return ret;
}
