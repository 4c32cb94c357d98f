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
	SECTION_CONFIG = 0x0002,  /* struct config_section */
	SECTION_NET = 0x0003,	  /* struct net_config_section, when the VM has network devices */
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

/*
 * Whether today's device can take a saved section: of its own version and
 * size, or of an older version it still reads (from `oldest` on), shorter:
 * a prefix of today's state, which the device gets zero-extended.
 */
static inline bool device_section_fits(uint32_t version, uint64_t length, uint32_t state_version,
				       uint32_t state_size, uint32_t oldest)
{
	if (version == state_version)
		return length == state_size;
	return oldest && version >= oldest && version < state_version && length > 0 &&
	       length < state_size;
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

/*
 * The virtio devices the VM had, with the host resources behind them as they
 * were: which devices exist is part of the guest's machine and must match at
 * restore; the paths are defaults that restore options may replace.
 */
#define CONFIG_RNG	      0x1
#define CONFIG_VIRTIO_CONSOLE 0x2
#define CONFIG_NO_LEGACY      0x4 /* no COM1 UART (--no-legacy) */
#define CONFIG_ACPI	      0x8 /* ACPI tables (in guest memory) and the GED, pvpanic, vmgenid */

struct config_disk {
	uint8_t read_only;
	uint8_t reserved[7];
	char id[24];
	char path[VMM_DISK_PATH_MAX];
};

/* A device's rate limits (0: none); configuration, which restore options may override. */
struct config_rate {
	uint64_t bandwidth; /* bytes a second */
	uint64_t ops;	    /* requests or frames a second */
};

/* Version 2 added disk_rates; version 1 sections read as if they had no limits. */
#define CONFIG_SECTION_VERSION 2
struct config_section {
	uint32_t disk_count;
	uint32_t flags;
	uint64_t vsock_cid; /* 0: no vsock device */
	char vsock_path[VMM_DISK_PATH_MAX];
	struct config_disk disks[VMM_MAX_DISKS];
	struct config_rate disk_rates[VMM_MAX_DISKS]; /* version 2 on */
};

/*
 * The network devices: the MAC is what the guest saw and must stay; the
 * backend, TAP name, forwarded ports and namespace are host resources that
 * `restore --net/--netns` replace.
 */
struct config_hostfwd {
	uint8_t udp;
	uint8_t reserved;
	uint16_t host_port;
	uint16_t guest_port;
	uint16_t reserved2;
	uint32_t host_addr;
	uint32_t guest_addr;
};

struct config_net {
	uint8_t backend; /* enum vmm_net_backend */
	uint8_t mac[6];	 /* the one the guest saw (vmm_net_mac) */
	uint8_t hostfwd_count;
	char tap[VMM_TAP_NAME_MAX];
	struct config_hostfwd hostfwds[VMM_MAX_HOSTFWDS];
};

/* Version 2 added net_rates, as the config section its disk_rates. */
#define NET_CONFIG_SECTION_VERSION 2
struct net_config_section {
	uint32_t net_count;
	uint32_t reserved;
	char netns[VMM_NETNS_PATH_MAX];
	struct config_net nets[VMM_MAX_NETS];
	struct config_rate net_rates[VMM_MAX_NETS]; /* version 2 on */
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
/* Checks a vCPU section and points state into it; -EINVAL with a reason. */
int vcpu_state_decode(const struct snapshot_section *section, struct vcpu_state *state, char *error,
		      size_t error_size);

/* Everything a state file says, checked; arrays point into the file's bytes. */
struct snapshot_state {
	struct snapshot_parsed parsed;
	struct vm_section vm;
	struct config_section config;
	struct net_config_section net; /* zero when the snapshot has no network devices */
	struct vcpu_state vcpus[VMM_MAX_CPUS];
	struct kvm_irqchip chips[3];
	struct clock_section clock;
};

/*
 * Parses and checks a whole state file without touching KVM: the container,
 * the VM section, one section per vCPU, irqchips, clock, and no unknown
 * mandatory section. Device sections are checked against the VM's devices
 * later (state_check_devices). -EINVAL or -EPROTO with a reason.
 */
int snapshot_state_decode(const uint8_t *data, size_t len, struct snapshot_state *state,
			  char *error, size_t error_size);

/* Records a VM configuration's devices and their host resources. */
void config_section_from_vm(const struct vmm_config *config, struct config_section *section);
/*
 * Builds the configuration of a restored VM: its devices from the snapshot,
 * host resources from `wanted` where given, else from the snapshot. -EINVAL
 * with a reason if wanted asks for devices the snapshot's VM did not have.
 */
int config_section_to_vm(const struct config_section *section, const struct vmm_config *wanted,
			 struct vmm_config *config, char *error, size_t error_size);

/* Records a VM configuration's network devices and the host networks behind them. */
void net_config_section_from_vm(const struct vmm_config *config,
				struct net_config_section *section);
/*
 * Puts the snapshot's network devices into a restored VM's configuration:
 * MACs from the snapshot, host networks from `wanted` if it gives any (all of
 * them, its namespace too), else the snapshot's; --netns alone moves them.
 * -EINVAL with a reason for a device count or MAC that does not match.
 */
int net_config_section_to_vm(const struct net_config_section *section,
			     const struct vmm_config *wanted, struct vmm_config *config,
			     char *error, size_t error_size);

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
