#include "snapshot/cpu.h"
#include "common/common.h"

#include <cpuid.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define CPUID_HYPERVISOR_BIT (1u << 31) /* leaf 1 ECX: set by snapvm itself */

/*
 * Bits that KVM rewrites at run time from the vCPU's own state
 * (kvm_update_cpuid_runtime): they mirror a control register, an MSR or
 * XCR0 and say nothing of what the host CPU can do. A fresh vCPU shows them
 * as reset left them, so the compatibility check must not compare them.
 */
#define CPUID_1_ECX_MWAIT   (1u << 3)  /* IA32_MISC_ENABLE.MWAIT */
#define CPUID_1_ECX_OSXSAVE (1u << 27) /* CR4.OSXSAVE */
#define CPUID_1_EDX_APIC    (1u << 9)  /* IA32_APIC_BASE.EN */
#define CPUID_7_ECX_OSPKE   (1u << 4)  /* CR4.PKE */

void cpu_host_identity(char vendor[12], uint32_t *signature)
{
	unsigned a, b, c, d;

	__cpuid(0, a, b, c, d);
	memcpy(vendor, &b, 4);
	memcpy(vendor + 4, &d, 4);
	memcpy(vendor + 8, &c, 4);
	__cpuid(1, a, b, c, d);
	*signature = a;
}

void cpu_cpuid_digest(const struct kvm_cpuid_entry2 *entries, uint32_t count, uint8_t digest[32])
{
	sha256_digest((const uint8_t *)entries, count * sizeof(*entries), digest);
}

int cpu_check_vendor(const char saved[12], const char host[12])
{
	if (!memcmp(saved, host, 12))
		return 0;
	return log_invalid(
		"snapshot was taken on an incompatible CPU (vendor %.12s, this host is %.12s)",
		saved, host);
}

static bool cpuid_entry_is_empty(const struct kvm_cpuid_entry2 *e)
{
	static const struct kvm_cpuid_entry2 zero;

	return !memcmp(e, &zero, sizeof(zero));
}

uint32_t cpu_cpuid_count(const struct kvm_cpuid_entry2 *entries, uint32_t capacity)
{
	uint32_t n = 0;

	while (n < capacity && !cpuid_entry_is_empty(&entries[n]))
		n++;
	return n;
}

static const struct kvm_cpuid_entry2 *cpuid_find(const struct kvm_cpuid_entry2 *entries,
						 uint32_t count, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < count; i++) {
		if (entries[i].function == function &&
		    (!(entries[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) ||
		     entries[i].index == index))
			return &entries[i];
	}
	return NULL;
}

int cpu_check_features(const struct kvm_cpuid_entry2 *saved, uint32_t count,
		       const struct kvm_cpuid_entry2 *here, uint32_t here_count)
{
	static const struct {
		uint32_t function, index;
	} leaves[] = { { 1, 0 }, { 7, 0 }, { 0xd, 1 }, { 0x80000001, 0 } };
	static const char *const regs[] = { "eax", "ebx", "ecx", "edx" };

	for (size_t l = 0; l < ARRAY_SIZE(leaves); l++) {
		const struct kvm_cpuid_entry2 *want =
			cpuid_find(saved, count, leaves[l].function, leaves[l].index);
		const struct kvm_cpuid_entry2 *have =
			cpuid_find(here, here_count, leaves[l].function, leaves[l].index);
		uint32_t w[4], h[4];

		if (!want)
			continue;
		w[0] = want->eax, w[1] = want->ebx, w[2] = want->ecx, w[3] = want->edx;
		h[0] = have ? have->eax : 0, h[1] = have ? have->ebx : 0;
		h[2] = have ? have->ecx : 0, h[3] = have ? have->edx : 0;
		if (leaves[l].function == 1) {
			/* leaf 1: EAX is the signature and EBX the APIC id, not features */
			w[0] = h[0] = w[1] = h[1] = 0;
			w[2] &= ~(CPUID_HYPERVISOR_BIT | CPUID_1_ECX_MWAIT | CPUID_1_ECX_OSXSAVE);
			w[3] &= ~CPUID_1_EDX_APIC;
		}
		if (leaves[l].function == 7) {
			w[0] = h[0] = 0; /* EAX: the number of subleaves */
			w[2] &= ~CPUID_7_ECX_OSPKE;
		}
		if (leaves[l].function == 0xd)
			w[1] = h[1] = 0; /* EBX: the XSAVE area size for the current XCR0 */
		for (int r = 0; r < 4; r++) {
			uint32_t missing = w[r] & ~h[r];

			if (!missing)
				continue;
			return log_invalid(
				"snapshot was taken on an incompatible CPU: CPUID leaf 0x%x.%u %s bit %d "
				"is not supported here",
				leaves[l].function, leaves[l].index, regs[r],
				__builtin_ctz(missing));
		}
	}
	return 0;
}
