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

int vm_state_save_clock(int vm_fd, struct clock_section *clock)
{
	memset(clock, 0, sizeof(*clock));
	if (ioctl(vm_fd, KVM_GET_CLOCK, &clock->kvm) < 0) {
		log_error("KVM_GET_CLOCK failed: %s", strerror(errno));
		return -errno;
	}
	clock->host_realtime_ns = time_realtime_ns();
	return 0;
}

int vm_state_restore_clock(int vm_fd, const struct clock_section *clock, bool advance_to_now)
{
	struct kvm_clock_data data = { .clock = clock->kvm.clock };

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
