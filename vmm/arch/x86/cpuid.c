/* The CPUID table each vCPU sees: what KVM supports, with per-vCPU topology. */
#include "vmm/arch/x86/x86.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#define CPUID_HYPERVISOR_BIT (1u << 31)

struct kvm_cpuid2 *x86_cpuid_supported(int kvm_fd)
{
	for (unsigned nent = 64; nent <= 1024; nent *= 2) {
		struct kvm_cpuid2 *cpuid =
			calloc(1, sizeof(*cpuid) + nent * sizeof(struct kvm_cpuid_entry2));

		if (!cpuid)
			return NULL;
		cpuid->nent = nent;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
			return cpuid;
		free(cpuid);
		if (errno != E2BIG) {
			log_error("KVM_GET_SUPPORTED_CPUID failed: %m");
			return NULL;
		}
	}
	log_error("KVM_GET_SUPPORTED_CPUID: more than 1024 entries");
	return NULL;
}

void x86_cpuid_for_vcpu(struct kvm_cpuid2 *cpuid, unsigned index, unsigned count)
{
	for (unsigned i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		switch (e->function) {
		case 1:
			/* initial APIC id, logical processor count; tell the guest it is virtual */
			e->ebx = (e->ebx & 0x0000ffff) | (index << 24) | ((count & 0xff) << 16);
			e->ecx |= CPUID_HYPERVISOR_BIT;
			break;
		case 0xb:
		case 0x1f:
			e->edx = index; /* x2APIC id */
			break;
		default:
			break;
		}
	}
}
