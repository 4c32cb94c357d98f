/*
 * snapshot_restore: check a snapshot whole, then rebuild its VM.
 *
 * The order: decode and check the state file (no KVM yet); create the VM with
 * the saved RAM size and vCPU count; check the device sections against this
 * snapvm's devices; put the memory in place; restore the irqchips, then the
 * devices (they may raise interrupt lines, which need the irqchip's state);
 * start the vCPU threads parked, and on each vCPU's thread check its CPU
 * features against the snapshot's, then restore it; set the KVM clock last,
 * just before the caller resumes, from the instant the TSCs were written, so
 * that the two stay the consistent pair they were saved as; then tell an ACPI
 * guest that its generation id changed.
 */
#include "snapshot/snapshot.h"
#include "snapshot/cpu.h"
#include "snapshot/clone.h"
#include "snapshot/memory.h"
#include "snapshot/repo.h"
#include "snapshot/state.h"
#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vcpu_restore_job {
	const struct snapshot_state *st;
	uint64_t tsc_at_ns[VMM_MAX_CPUS]; /* when each vCPU's TSC was written */
	pthread_mutex_t lock;		  /* one vCPU thread at a time checks its features */
	bool refused;			  /* a vCPU's features were refused (and logged) */
	atomic_bool logged;		  /* a vCPU thread has logged why it failed */
};

/* The host must show this vCPU every feature the guest saw; a refusal is logged once. */
static int vcpu_features_check(struct vcpu_restore_job *job, const struct vcpu_state *saved,
			       const struct kvm_cpuid_entry2 *here, uint32_t count)
{
	int ret = -EINVAL;

	pthread_mutex_lock(&job->lock);
	if (!job->refused) {
		ret = cpu_check_features(saved->cpuid, saved->fixed.cpuid_count, here, count);
		job->refused = ret != 0;
	}
	pthread_mutex_unlock(&job->lock);
	return ret;
}

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
		ret = vcpu_features_check(job, saved, here, count);
	free(here);
	if (!ret) {
		ret = vcpu_state_restore(vcpu_fd, index, saved, &job->tsc_at_ns[index]);
		/* KVM refused the snapshot's state for this vCPU: it logged the ioctl */
		if (ret && ret != -ENOMEM)
			ret = -EINVAL;
	}
	/* only a failed allocation goes unlogged */
	if (ret && ret != -ENOMEM)
		atomic_store(&job->logged, true);
	return ret;
}

/* *tsc_at_ns: when vCPU 0's TSC was written, which the others' KVM keeps in step with. */
static int restore_vcpus(struct vm *vm, const struct snapshot_state *st, uint64_t *tsc_at_ns)
{
	struct vcpu_restore_job *job = calloc(1, sizeof(*job));
	int ret;

	if (!job)
		return -ENOMEM;
	job->st = st;
	pthread_mutex_init(&job->lock, NULL);
	/* the vCPU threads start paused and restore their state first */
	ret = vm_start_paused_call(vm, vcpu_restore_on_thread, job);
	if (ret && !atomic_load(&job->logged))
		log_error("cannot start the VM's threads: %s", strerror(-ret));
	*tsc_at_ns = job->tsc_at_ns[0];
	pthread_mutex_destroy(&job->lock);
	free(job);
	return ret;
}

/* Each device of this VM must have a section of a version and size it reads. */
static int check_devices(struct vm *vm, const struct snapshot_state *st)
{
	unsigned matched = 0;

	for (unsigned i = 0; i < vm_device_count(vm); i++) {
		struct vm_device_info info;
		const struct snapshot_section *s;

		vm_device_describe(vm, i, &info);
		s = snapshot_find(&st->parsed, info.section_id);
		if (!s)
			return log_invalid("snapshot has no state for device %s", info.name);
		if (!vmm_device_state_fits(&info, s->version, s->length))
			return log_invalid(
				"snapshot's %s state is version %u, %llu bytes; this snapvm "
				"reads version %u, %u bytes",
				info.name, s->version, (unsigned long long)s->length,
				info.state_version, info.state_size);
		matched++;
	}
	for (unsigned i = 0; i < st->parsed.section_count; i++) {
		const struct snapshot_section *s = &st->parsed.sections[i];

		if (section_is_device(s->id) && !(s->flags & SECTION_OPTIONAL) && matched-- == 0)
			return log_invalid("snapshot has state for a device this VM does not have "
					   "(section 0x%x)",
					   s->id);
	}
	return 0;
}

static int restore_devices(struct vm *vm, const struct snapshot_state *st)
{
	for (unsigned i = 0; i < vm_device_count(vm); i++) {
		struct vm_device_info info;
		const struct snapshot_section *s;
		uint8_t *state;
		int ret;

		vm_device_describe(vm, i, &info);
		s = snapshot_find(&st->parsed, info.section_id);
		/* an older, shorter state (check_devices): the rest reads as zeros */
		state = calloc(1, info.state_size);
		if (!state)
			return -ENOMEM;
		memcpy(state, s->payload, MIN(s->length, (uint64_t)info.state_size));
		ret = vm_device_restore(vm, i, state);
		free(state);
		if (ret)
			return log_invalid("snapshot's %s state is invalid", info.name);
	}
	return 0;
}

/* Stops the clone when its memory cannot be paged in (from the pager's thread). */
static void restore_memory_failed(void *opaque, const char *message)
{
	struct snapshot_clone *clone = opaque;

	if (message)
		log_error("%s", message);
	atomic_store(&clone->failed, true);
	vm_request_stop(clone->vm, EXIT_RUNTIME);
}

/* Puts the snapshot's memory behind the clone's RAM in the chosen mode. */
static int restore_memory(struct snapshot_repo *repo, const struct snapshot_restore_options *o,
			  struct snapshot_clone *clone)
{
	struct memory_options mo = {
		.mode = o->memory,
		.snapshot_name = o->name,
		.cache_dir = repo->cache_dir,
		.record = clone->recording,
		.fatal = restore_memory_failed,
		.opaque = clone,
	};
	uint64_t size;
	uint8_t *ram = vm_ram(clone->vm, &size);

	mo.workset = clone->workset;
	mo.workset_count = clone->workset_count;
	/* eager fills all of it anyway: huge pages make that and the guest's touches cheaper */
	if (o->memory == SNAPSHOT_MEMORY_EAGER)
		vm_ram_huge_pages(clone->vm);
	return memory_attach(clone->snapshot, ram, size, &mo, &clone->memory);
}

/*
 * The clone's configuration: its devices as each saved itself, with the host
 * resources and rate limits of the restore options (vmm_config_restore).
 */
static int restore_config(const struct snapshot_state *st, const struct vmm_config *wanted,
			  struct vmm_config *config)
{
	struct vmm_saved_device *saved = calloc(st->parsed.section_count + 1, sizeof(*saved));
	unsigned count = 0;
	int ret;

	if (!saved)
		return -ENOMEM;
	for (unsigned i = 0; i < st->parsed.section_count; i++) {
		const struct snapshot_section *s = &st->parsed.sections[i];

		if (section_is_device(s->id))
			saved[count++] = (struct vmm_saved_device){ s->id, s->version, s->payload,
								    s->length };
	}
	ret = vmm_config_restore(wanted, saved, count, config);
	free(saved);
	if (ret)
		return ret;
	config->mem_size = st->vm.mem_size;
	config->cpus = st->vm.cpus;
	config->kernel_path = NULL;
	return 0;
}

/* Builds the VM: everything up to (not including) running the vCPUs. */
static int restore_vm(struct snapshot_repo *repo, const struct snapshot_restore_options *o,
		      struct snapshot_state *st, struct snapshot_clone *clone)
{
	struct vmm_config config;
	struct vm *vm;
	int ret;

	ret = restore_config(st, &o->vm, &config);
	if (ret)
		return ret; /* said where it failed */
	ret = vm_create(&config, &vm);
	clone->vm = vm;
	if (ret)
		return ret;
	ret = check_devices(vm, st);
	if (!ret)
		ret = restore_memory(repo, o, clone);
	/* KVM refusing the snapshot's irqchip state (the ioctl is logged) refuses the snapshot */
	if (!ret && vm_state_restore_irqchip(vm_fd(vm), st->chips))
		ret = -EINVAL;
	if (!ret)
		ret = restore_devices(vm, st);
	return ret;
}

/* The state file, from the store, checked whole. */
static int restore_read_state(struct snapshot_clone *clone, struct snapshot_state *st,
			      uint8_t **data)
{
	char host_vendor[12];
	uint32_t host_signature;
	size_t len;
	int ret = store_blob_read(clone->snapshot, "state", data, &len);

	if (ret)
		return ret == -ENOENT ? -EINVAL : ret;
	ret = snapshot_state_decode(*data, len, st);
	if (!ret) {
		cpu_host_identity(host_vendor, &host_signature);
		ret = cpu_check_vendor(st->parsed.header.cpu_vendor, host_vendor);
	}
	return ret;
}

/*
 * The snapshot to restore: the one opened ahead (o->opened) while its name
 * still names it, else what the name names now. Takes o->opened either way.
 */
static int restore_open(struct snapshot_repo *repo, const struct snapshot_restore_options *o,
			struct store_snapshot **snap)
{
	struct store_snapshot *ahead = o->opened;
	int ret = snapshot_name_check(o->name);

	if (!ret && ahead && !strcmp(store_snapshot_meta(ahead)->name, o->name) &&
	    store_snapshot_current(ahead)) {
		*snap = ahead;
		return 0;
	}
	store_snapshot_close(ahead);
	return ret ? ret : store_snapshot_open(repo->store, o->name, snap);
}

int snapshot_restore(struct snapshot_repo *repo, const struct snapshot_restore_options *o,
		     struct snapshot_clone **out)
{
	struct snapshot_state *st = calloc(1, sizeof(*st));
	struct snapshot_clone *clone = calloc(1, sizeof(*clone));
	uint8_t *data = NULL;
	uint64_t tsc_at_ns = 0;
	int ret;

	*out = NULL;
	if (!st || !clone) {
		log_error("cannot restore %s: %s", o->name, strerror(ENOMEM));
		store_snapshot_close(o->opened);
		free(st);
		free(clone);
		return -ENOMEM;
	}
	snprintf(clone->name, sizeof(clone->name), "%s", o->name);
	clone->recording = o->record_ws && o->memory != SNAPSHOT_MEMORY_EAGER &&
			   o->memory != SNAPSHOT_MEMORY_MMAP;
	ret = restore_open(repo, o, &clone->snapshot);
	if (!ret)
		ret = restore_read_state(clone, st, &data);
	/* the working set to prefetch, if the snapshot has one */
	if (!ret && o->memory == SNAPSHOT_MEMORY_PREFETCH && !clone->recording &&
	    store_workset_get(repo->store, o->name, &clone->workset, &clone->workset_count)) {
		clone->workset = NULL;
		clone->workset_count = 0;
	}
	if (!ret && o->after_read && o->after_read(repo, clone, o->after_read_opaque))
		ret = -ECANCELED;
	if (!ret)
		ret = restore_vm(repo, o, st, clone);
	free(clone->workset); /* the pager has its copy */
	clone->workset = NULL;
	if (!ret)
		ret = restore_vcpus(clone->vm, st, &tsc_at_ns);
	if (!ret &&
	    vm_state_restore_clock(vm_fd(clone->vm), &st->clock, tsc_at_ns, o->clock_realtime))
		ret = -EINVAL; /* KVM refused the snapshot's clock: the ioctl is logged */
	/*
	 * The clone's generation id is in guest memory (vmgenid's restore); the
	 * notify goes now, after the vCPUs' LAPIC state, which would have lost
	 * an interrupt raised before it, and before any vCPU runs.
	 */
	if (!ret)
		vm_generation_notify(clone->vm);
	/* restoring vCPU state writes guest memory (the kvmclock page): paging may have failed */
	if (!ret && snapshot_clone_failed(clone))
		ret = -EIO; /* the pager has logged why */
	if (ret) {
		snapshot_clone_destroy(clone);
		clone = NULL;
	}
	*out = clone;
	free(data);
	free(st);
	return ret;
}

struct vm *snapshot_clone_vm(const struct snapshot_clone *clone)
{
	return clone->vm;
}

bool snapshot_clone_failed(struct snapshot_clone *clone)
{
	return atomic_load(&clone->failed);
}

const char *snapshot_clone_name(const struct snapshot_clone *clone)
{
	return clone->name;
}

bool snapshot_clone_memory_complete(const struct snapshot_clone *clone)
{
	return memory_is_complete(clone->memory);
}

int snapshot_clone_fill(struct snapshot_clone *clone)
{
	return memory_fill(clone->memory);
}

void snapshot_clone_memory_stats(struct snapshot_clone *clone, struct snapshot_memory_stats *stats)
{
	memory_stats_get(clone->memory, stats);
}

int snapshot_clone_save_workset(struct snapshot_clone *clone, struct snapshot_repo *repo)
{
	uint32_t *pages;
	size_t count;
	int ret;

	if (!clone->recording)
		return 0;
	clone->recording = false;
	ret = memory_recording_take(clone->memory, &pages, &count);
	if (!ret && count)
		ret = store_workset_put(repo->store, clone->name, pages, count);
	/* lay its chunks out in that order, so that prefetching reads them in one go */
	if (!ret && count)
		ret = store_snapshot_relayout(repo->store, clone->name);
	free(pages);
	return ret;
}

void snapshot_clone_destroy(struct snapshot_clone *clone)
{
	if (!clone)
		return;
	/*
	 * The pager goes first, while the VM (and the RAM it writes to) still
	 * exists: by now the vCPUs have stopped or never ran, and closing the
	 * userfaultfd would wake any fault still waiting.
	 */
	memory_detach(clone->memory);
	vm_destroy(clone->vm);
	if (clone->snapshot)
		store_snapshot_close(clone->snapshot);
	free(clone);
}
