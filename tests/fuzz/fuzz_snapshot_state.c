/*
 * libFuzzer target for the snapshot state decoder: the input is a state
 * file (the "state" blob of a snapshot), checked as restore_read_state and
 * restore_vm do before KVM is touched: the container and every section
 * (snapshot_state_decode), the CPU vendor and features, the configuration
 * the devices derive from their sections (vmm_config_restore), and then each
 * device's section, checked against a machine with every device
 * (fuzz_machine.h) and handed to its restore(),
 * after which each virtio queue is notified, so that ring state from the
 * snapshot gets used. Every array a vCPU section points to is read end to
 * end: AddressSanitizer catches any that reaches past the file.
 *
 * Mutations rarely keep the SHA-256 trailer right: each input is decoded as
 * it is, then again with the trailer's digest recomputed, which gets every
 * section past the checksum.
 */
#include "snapshot/cpu.h"
#include "snapshot/state.h"
#include "common/common.h"
#include "tests/fuzz/fuzz_machine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(const void *p, size_t len)
{
	volatile uint8_t sink = 0;

	for (size_t i = 0; i < len; i++)
		sink ^= ((const uint8_t *)p)[i];
	(void)sink;
}

static void check_vcpus(const struct snapshot_state *st)
{
	for (unsigned i = 0; i < st->vm.cpus; i++) {
		const struct vcpu_state *v = &st->vcpus[i];

		touch(v->xsave, v->fixed.xsave_size);
		touch(v->cpuid, (size_t)v->fixed.cpuid_count * sizeof(*v->cpuid));
		touch(v->msrs, (size_t)v->fixed.msr_count * sizeof(*v->msrs));
		cpu_check_features(v->cpuid, v->fixed.cpuid_count, st->vcpus[0].cpuid,
				   st->vcpus[0].fixed.cpuid_count);
	}
	cpu_check_vendor(st->parsed.header.cpu_vendor, "GenuineIntel");
}

/* restore.c's check_devices and restore_devices, on the fake machine. */
static void restore_devices(const struct snapshot_state *st)
{
	struct fuzz_machine m;

	fuzz_net_left = 0;
	fuzz_machine_create(&m, NULL, 0, NULL);
	for (unsigned i = 0; i < m.count; i++) {
		const struct device_ops *ops = m.devices[i].ops;
		struct vm_device_info info = { ops->name, ops->section_id, ops->state_version,
					       ops->state_size, ops->state_version_oldest };
		const struct snapshot_section *s =
			snapshot_find(&st->parsed, ops->section_id | m.devices[i].instance << 16);
		uint8_t *state;

		if (!s || !vmm_device_state_fits(&info, s->version, s->length))
			continue;
		state = calloc(1, ops->state_size);
		memcpy(state, s->payload, MIN(s->length, (uint64_t)ops->state_size));
		ops->restore(m.devices[i].dev, state);
		free(state);
	}
	for (unsigned i = 0; i < m.slots.count; i++) {
		for (uint32_t q = 0; q < VIRTIO_MAX_QUEUES; q++)
			io_dispatch(&m.io, IO_BUS_MMIO, m.slots.slot[i].base + 0x50, (uint8_t *)&q,
				    4, true);
	}
	fuzz_machine_destroy(&m);
}

/* restore.c's restore_config, with the restore options the fake machine has. */
static int restore_config(const struct snapshot_state *st)
{
	struct vmm_saved_device saved[SNAPSHOT_MAX_SECTIONS];
	struct vmm_config config;
	unsigned count = 0;

	for (unsigned i = 0; i < st->parsed.section_count; i++) {
		const struct snapshot_section *s = &st->parsed.sections[i];

		if (section_is_device(s->id))
			saved[count++] = (struct vmm_saved_device){ s->id, s->version, s->payload,
								    s->length };
	}
	return vmm_config_restore(fuzz_config_get(), saved, count, &config);
}

static void decode(const uint8_t *data, size_t size)
{
	struct snapshot_state *st = calloc(1, sizeof(*st));

	if (!snapshot_state_decode(data, size, st)) {
		check_vcpus(st);
		restore_config(st);
		restore_devices(st);
	}
	free(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snapshot_trailer trailer;
	uint8_t *copy;

	log_threshold = LOG_QUIET; /* a refused state file logs why: not news here */
	/* a copy of exactly the file's size: ASan guards its end */
	copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	decode(copy, size);
	if (size >= sizeof(struct snapshot_header) + sizeof(trailer)) {
		sha256_digest(copy, size - sizeof(trailer), trailer.sha256);
		memcpy(copy + size - sizeof(trailer.sha256), trailer.sha256,
		       sizeof(trailer.sha256));
		decode(copy, size);
	}
	free(copy);
	return 0;
}
