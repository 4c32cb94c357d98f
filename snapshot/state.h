/*
 * What a snapshot's state file holds, section by section, and how each part
 * is read from and written back to KVM (private to snapshot/).
 */
#ifndef SNAPVM_SNAPSHOT_STATE_H
#define SNAPVM_SNAPSHOT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "snapshot/format.h"
#include "vmm/vmm.h"

enum snapshot_section_id {
	SECTION_VM = 0x0001,	  /* struct vm_section */
	SECTION_CLOCK = 0x0010,	  /* struct clock_section */
	SECTION_IRQCHIP = 0x0011, /* PIC master, PIC slave, I/O APIC: 3 struct kvm_irqchip */
	SECTION_VCPU = 0x0100,	  /* + vCPU index: struct vcpu_section_fixed and its arrays */
	/* VMM_DEVICE_SECTION_FIRST-_LAST: devices, their ids plus the instance number << 16 */
};

static inline bool section_is_device(uint32_t id)
{
	return (id & 0xffff) >= VMM_DEVICE_SECTION_FIRST &&
	       (id & 0xffff) <= VMM_DEVICE_SECTION_LAST && id >> 16 < 0x100;
}

#define SECTION_VCPU_LAST      (SECTION_VCPU + 0xff)
#define VCPU_MAX_MSRS	       1024
#define VCPU_MAX_CPUID_ENTRIES 512
#define VCPU_MAX_XSAVE_SIZE    (64u << 10)

struct vm_section {
	uint64_t mem_size;
	uint32_t cpus;
	uint32_t reserved;
};

struct clock_section {
	struct kvm_clock_data kvm;
	uint64_t host_realtime_ns; /* the host's wall clock when kvm was read */
};

/* The fixed part of a vCPU section; xsave, CPUID entries and MSRs follow, in that order. */
struct vcpu_section_fixed {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp_state;
	struct kvm_debugregs debugregs;
	uint32_t tsc_khz; /* 0: KVM did not say */
	uint32_t xsave_size;
	uint32_t cpuid_count;
	uint32_t msr_count;
};

/* A vCPU's state; the arrays point into malloc'ed memory (save) or into a state file (load). */
struct vcpu_state {
	struct vcpu_section_fixed fixed;
	const uint8_t *xsave;
	const struct kvm_cpuid_entry2 *cpuid;
	const struct kvm_msr_entry *msrs;
	void *owned;	    /* freed by vcpu_state_free */
	uint64_t tsc_at_ns; /* time_now_ns() when the TSC was read or written (not saved) */
};

/* Reads every part of a vCPU's state; call it on the vCPU's thread. 0 or -errno (logged). */
int vcpu_state_save(int kvm_fd, int vcpu_fd, unsigned index, struct vcpu_state *state);
/*
 * Writes a vCPU's state back in the order KVM needs; *tsc_at_ns gets the time
 * its TSC was written. 0 or -errno (logged).
 */
int vcpu_state_restore(int vcpu_fd, unsigned index, const struct vcpu_state *state,
		       uint64_t *tsc_at_ns);
void vcpu_state_free(struct vcpu_state *state);
/* Reads the CPUID table a vCPU has now into entries (VCPU_MAX_CPUID_ENTRIES); 0 or -errno. */
int vcpu_cpuid_read(int vcpu_fd, unsigned index, struct kvm_cpuid_entry2 *entries, uint32_t *count);
/* Appends a vCPU section. */
void vcpu_state_encode(struct snapshot_buffer *b, unsigned index, const struct vcpu_state *state);
/* Checks a vCPU section and points state into it; 0 or -EINVAL (logged). */
int vcpu_state_decode(const struct snapshot_section *section, struct vcpu_state *state);

/* Everything a state file says, checked; arrays point into the file's bytes. */
struct snapshot_state {
	struct snapshot_parsed parsed;
	struct vm_section vm;
	struct vcpu_state vcpus[VMM_MAX_CPUS];
	struct kvm_irqchip chips[3];
	struct clock_section clock;
};

/*
 * Parses and checks a whole state file without touching KVM: the container,
 * the VM section, one section per vCPU, irqchips, clock, and no unknown
 * mandatory section. Device sections are checked against the VM's devices
 * later (state_check_devices). 0, or -EINVAL or -EPROTO (logged).
 */
int snapshot_state_decode(const uint8_t *data, size_t len, struct snapshot_state *state);

/* The VM-wide state: irqchips and the KVM clock. */
int vm_state_save_irqchip(int vm_fd, struct kvm_irqchip chips[3]);
int vm_state_restore_irqchip(int vm_fd, const struct kvm_irqchip chips[3]);
/*
 * The guest's TSC and its KVM clock must stay a consistent pair: Linux
 * checks one against the other and, seeing them apart by more than ~30 ms,
 * marks the TSC unstable. So the clock is saved as it was when vCPU 0's TSC
 * was read (tsc_at_ns), not when KVM_GET_CLOCK ran.
 */
int vm_state_save_clock(int vm_fd, struct clock_section *clock, uint64_t tsc_at_ns);
/*
 * Restores the clock as it goes on from the TSC written at tsc_at_ns; with
 * advance_to_now, moves it on by the wall time since it was saved too.
 */
int vm_state_restore_clock(int vm_fd, const struct clock_section *clock, uint64_t tsc_at_ns,
			   bool advance_to_now);

#endif
