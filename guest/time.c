/*
 * Time from KVM's paravirtual clock, read in ring 3: ring 0 registered the
 * structures at boot (entry.S); the host keeps them current. After a snapshot
 * is restored, monotonic time continues from where it stood.
 */
#include "guest.h"

struct pvclock_time {
	volatile uint32_t version; /* odd while the host updates the rest */
	uint32_t pad0;
	volatile uint64_t tsc_timestamp;
	volatile uint64_t system_time;
	volatile uint32_t tsc_to_system_mul;
	volatile int8_t tsc_shift;
	volatile uint8_t flags;
	uint8_t pad[2];
};

struct pvclock_wall {
	volatile uint32_t version;
	volatile uint32_t sec;
	volatile uint32_t nsec;
};

struct pvclock_time kvm_clock __attribute__((aligned(64)));
struct pvclock_wall kvm_wall_clock __attribute__((aligned(16)));

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

uint64_t time_monotonic_ns(void)
{
	uint32_t version;
	uint64_t ns;

	do {
		uint64_t delta;

		version = kvm_clock.version;
		__asm__ volatile("" ::: "memory");
		delta = rdtsc() - kvm_clock.tsc_timestamp;
		if (kvm_clock.tsc_shift >= 0)
			delta <<= kvm_clock.tsc_shift;
		else
			delta >>= -kvm_clock.tsc_shift;
		ns = kvm_clock.system_time +
		     (uint64_t)(((unsigned __int128)delta * kvm_clock.tsc_to_system_mul) >> 32);
		__asm__ volatile("" ::: "memory");
	} while ((version & 1) || version != kvm_clock.version);
	return ns;
}

uint64_t time_realtime_ns(void)
{
	uint32_t version;
	uint64_t boot;

	do {
		version = kvm_wall_clock.version;
		__asm__ volatile("" ::: "memory");
		boot = (uint64_t)kvm_wall_clock.sec * 1000000000ULL + kvm_wall_clock.nsec;
		__asm__ volatile("" ::: "memory");
	} while ((version & 1) || version != kvm_wall_clock.version);
	return boot + time_monotonic_ns();
}
