/* VM-wide state: the in-kernel irqchips and the KVM clock. */
#include "snapshot/state.h"
#include "common/common.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

int vm_state_save_irqchip(int vm_fd, struct kvm_irqchip chips[3])
{
	for (uint32_t id = 0; id < 3; id++) {
		memset(&chips[id], 0, sizeof(chips[id]));
		chips[id].chip_id = id; /* KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC */
		if (ioctl(vm_fd, KVM_GET_IRQCHIP, &chips[id]) < 0) {
			log_error("KVM_GET_IRQCHIP (chip %u) failed: %s", id, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

int vm_state_restore_irqchip(int vm_fd, const struct kvm_irqchip chips[3])
{
	for (uint32_t id = 0; id < 3; id++) {
		struct kvm_irqchip chip = chips[id];

		if (ioctl(vm_fd, KVM_SET_IRQCHIP, &chip) < 0) {
			log_error("KVM_SET_IRQCHIP (chip %u) failed: %s", id, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/* Nanoseconds since `then` (CLOCK_MONOTONIC), 0 if `then` is unknown. */
static uint64_t elapsed_since(uint64_t then)
{
	uint64_t now = time_now_ns();

	return then && now > then ? now - then : 0;
}

int vm_state_save_clock(int vm_fd, struct clock_section *clock, uint64_t tsc_at_ns)
{
	uint64_t late;

	memset(clock, 0, sizeof(*clock));
	if (ioctl(vm_fd, KVM_GET_CLOCK, &clock->kvm) < 0) {
		log_error("KVM_GET_CLOCK failed: %s", strerror(errno));
		return -errno;
	}
	late = elapsed_since(tsc_at_ns);
	clock->host_realtime_ns = time_realtime_ns() - late;
	clock->kvm.clock -= MIN(late, clock->kvm.clock);
	return 0;
}

int vm_state_restore_clock(int vm_fd, const struct clock_section *clock, uint64_t tsc_at_ns,
			   bool advance_to_now)
{
	/*
	 * The TSCs have run since they were written (vCPU 0's at tsc_at_ns),
	 * while a lazy restore may have waited on the pager for the pages the
	 * other MSRs point at: the clock goes on from the same instant.
	 */
	struct kvm_clock_data data = { .clock = clock->kvm.clock + elapsed_since(tsc_at_ns) };

	/*
	 * Without advance the guest's clock goes on from the instant of the
	 * snapshot; with it, the time the snapshot spent on disk passes for the
	 * guest too, so its wall time (boot time + clock) is the host's now.
	 */
	if (advance_to_now) {
		uint64_t now = time_realtime_ns();

		if (now > clock->host_realtime_ns)
			data.clock += now - clock->host_realtime_ns;
	}
	if (ioctl(vm_fd, KVM_SET_CLOCK, &data) < 0) {
		log_error("KVM_SET_CLOCK failed: %s", strerror(errno));
		return -errno;
	}
	return 0;
}
