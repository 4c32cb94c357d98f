/* Which CPUs a snapshot can be restored on (private to snapshot/). */
#ifndef SNAPVM_SNAPSHOT_CPU_H
#define SNAPVM_SNAPSHOT_CPU_H

#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

/* The host CPU's vendor string (CPUID leaf 0) and signature (leaf 1 EAX). */
void cpu_host_identity(char vendor[12], uint32_t *signature);
/* SHA-256 over a CPUID table, the snapshot header's quick identity of the guest CPU. */
void cpu_cpuid_digest(const struct kvm_cpuid_entry2 *entries, uint32_t count, uint8_t digest[32]);
/*
 * How many entries of a KVM_GET_CPUID2 answer are real: those before the
 * first all-zero one. Linux before 6.5 does not report the count on success
 * (it leaves nent as the caller set it), so the caller passes a zeroed
 * buffer and counts; no real entry is all zero (leaf 0 names the vendor).
 */
uint32_t cpu_cpuid_count(const struct kvm_cpuid_entry2 *entries, uint32_t capacity);
/* 0 if the snapshot's vendor is the host's; else -EINVAL (logged). */
int cpu_check_vendor(const char saved[12], const char host[12]);
/*
 * 0 if every feature the guest was shown (CPUID leaves 1, 7, 0xd.1,
 * 0x80000001) is one a fresh vCPU on this host shows too; else -EINVAL,
 * logged naming the first missing feature bit. Bits KVM derives from the guest's
 * own control registers and MSRs (OSXSAVE, OSPKE, ...) are not compared.
 * (On PVM hosts a vCPU shows more than KVM_GET_SUPPORTED_CPUID lists, so
 * the reference is a vCPU's own table.)
 */
int cpu_check_features(const struct kvm_cpuid_entry2 *saved, uint32_t count,
		       const struct kvm_cpuid_entry2 *here, uint32_t here_count);

#endif
