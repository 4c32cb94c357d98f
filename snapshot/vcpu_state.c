/* Capture and restore of one vCPU's state through KVM's vCPU ioctls. */
#include "snapshot/state.h"
#include "snapshot/cpu.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define VCPU_IOCTL(fd, request, arg, index) vcpu_ioctl_checked(fd, request, arg, #request, index)

static int vcpu_ioctl_checked(int fd, unsigned long request, void *arg, const char *name,
			      unsigned index)
{
	if (ioctl(fd, request, arg) < 0) {
		int ret = -errno;

		log_error("vCPU %u: %s failed: %s", index, name, strerror(errno));
		return ret;
	}
	return 0;
}

#define MSR_KVM_WALL_CLOCK     0x11
#define MSR_KVM_WALL_CLOCK_NEW 0x4b564d00

/*
 * Writing a wall-clock MSR makes KVM store the host's boot time into guest
 * memory at once. On restore that would re-anchor the guest's wall time to
 * the host's now, whatever --clock-realtime says; the structure itself is in
 * guest memory and comes back with it, so these MSRs are not kept.
 */
static bool msr_is_saved(uint32_t index)
{
	return index != MSR_KVM_WALL_CLOCK && index != MSR_KVM_WALL_CLOCK_NEW;
}

static int msr_index_list(int kvm_fd, uint32_t **indices, uint32_t *count)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	struct kvm_msr_list *list;

	/* the first call fails with E2BIG and says how many there are */
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) == 0 || errno != E2BIG) {
		log_error("KVM_GET_MSR_INDEX_LIST failed: %s", strerror(errno));
		return -EIO;
	}
	list = malloc(sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	if (!list)
		return -ENOMEM;
	list->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		log_error("KVM_GET_MSR_INDEX_LIST failed: %s", strerror(errno));
		free(list);
		return -EIO;
	}
	*indices = malloc(list->nmsrs * sizeof(uint32_t) + 1);
	*count = 0;
	for (uint32_t i = 0; *indices && i < list->nmsrs && *count < VCPU_MAX_MSRS; i++) {
		if (msr_is_saved(list->indices[i]))
			(*indices)[(*count)++] = list->indices[i];
	}
	free(list);
	return *indices ? 0 : -ENOMEM;
}

/*
 * Reads every MSR of the list that this vCPU can read. KVM_GET_MSRS stops at
 * the first MSR it cannot read and returns how many it read, so skip that
 * one and go on with the rest.
 */
static int vcpu_msrs_save(int kvm_fd, int vcpu_fd, struct kvm_msr_entry *out, uint32_t *count)
{
	struct kvm_msrs *req;
	uint32_t *indices, total, next = 0, got = 0;
	int ret = msr_index_list(kvm_fd, &indices, &total);

	if (ret)
		return ret;
	req = malloc(sizeof(*req) + total * sizeof(struct kvm_msr_entry));
	if (!req) {
		free(indices);
		return -ENOMEM;
	}
	while (next < total) {
		uint32_t batch = total - next;
		int n;

		memset(req, 0, sizeof(*req) + batch * sizeof(struct kvm_msr_entry));
		req->nmsrs = batch;
		for (uint32_t i = 0; i < batch; i++)
			req->entries[i].index = indices[next + i];
		n = ioctl(vcpu_fd, KVM_GET_MSRS, req);
		if (n < 0) {
			ret = -errno;
			log_error("KVM_GET_MSRS failed: %s", strerror(errno));
			break;
		}
		memcpy(out + got, req->entries, (size_t)n * sizeof(struct kvm_msr_entry));
		got += (uint32_t)n;
		next += (uint32_t)n + 1; /* past the MSR that could not be read */
	}
	*count = got;
	free(req);
	free(indices);
	return ret;
}

static int vcpu_xsave_size(int kvm_fd)
{
	int size = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return size > (int)sizeof(struct kvm_xsave) ? size : (int)sizeof(struct kvm_xsave);
}

int vcpu_cpuid_read(int vcpu_fd, unsigned index, struct kvm_cpuid_entry2 *out, uint32_t *count)
{
	struct kvm_cpuid2 *cpuid =
		calloc(1, sizeof(*cpuid) + VCPU_MAX_CPUID_ENTRIES * sizeof(*out));
	int ret;

	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = VCPU_MAX_CPUID_ENTRIES;
	ret = VCPU_IOCTL(vcpu_fd, KVM_GET_CPUID2, cpuid, index);
	if (!ret) {
		/* nent is only trustworthy from Linux 6.5 on: count what KVM wrote */
		*count = cpu_cpuid_count(cpuid->entries, MIN(cpuid->nent, VCPU_MAX_CPUID_ENTRIES));
		memcpy(out, cpuid->entries, *count * sizeof(*out));
	}
	free(cpuid);
	return ret;
}

/*
 * Order: MP state first (reading it lets KVM process pending INIT/SIPI
 * events), then registers, then what depends on nothing else.
 */
int vcpu_state_save(int kvm_fd, int vcpu_fd, unsigned index, struct vcpu_state *state)
{
	struct vcpu_section_fixed *f = &state->fixed;
	size_t xsave_size = (size_t)vcpu_xsave_size(kvm_fd);
	size_t size = xsave_size + VCPU_MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2) +
		      VCPU_MAX_MSRS * sizeof(struct kvm_msr_entry);
	uint8_t *buffer = calloc(1, size);
	struct kvm_cpuid_entry2 *cpuid;
	struct kvm_msr_entry *msrs;
	int ret, khz;

	if (!buffer)
		return -ENOMEM;
	memset(state, 0, sizeof(*state));
	state->owned = buffer;
	cpuid = (void *)(buffer + xsave_size);
	msrs = (void *)(cpuid + VCPU_MAX_CPUID_ENTRIES);
	ret = VCPU_IOCTL(vcpu_fd, KVM_GET_MP_STATE, &f->mp_state, index);
	if (!ret)
		ret = VCPU_IOCTL(vcpu_fd, KVM_GET_REGS, &f->regs, index);
	if (!ret)
		ret = VCPU_IOCTL(vcpu_fd, KVM_GET_SREGS, &f->sregs, index);
	if (!ret)
		ret = xsave_size > sizeof(struct kvm_xsave)
			      ? VCPU_IOCTL(vcpu_fd, KVM_GET_XSAVE2, buffer, index)
			      : VCPU_IOCTL(vcpu_fd, KVM_GET_XSAVE, buffer, index);
	if (!ret)
		ret = VCPU_IOCTL(vcpu_fd, KVM_GET_XCRS, &f->xcrs, index);
	if (!ret)
		ret = VCPU_IOCTL(vcpu_fd, KVM_GET_DEBUGREGS, &f->debugregs, index);
	if (!ret)
		ret = VCPU_IOCTL(vcpu_fd, KVM_GET_LAPIC, &f->lapic, index);
	if (!ret)
		ret = vcpu_cpuid_read(vcpu_fd, index, cpuid, &f->cpuid_count);
	if (!ret)
		ret = vcpu_msrs_save(kvm_fd, vcpu_fd, msrs, &f->msr_count);
	state->tsc_at_ns = time_now_ns();
	if (!ret)
		ret = VCPU_IOCTL(vcpu_fd, KVM_GET_VCPU_EVENTS, &f->events, index);
	if (ret) {
		vcpu_state_free(state);
		return ret;
	}
	khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
	f->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	f->xsave_size = (uint32_t)xsave_size;
	state->xsave = buffer;
	state->cpuid = cpuid;
	state->msrs = msrs;
	return 0;
}

static int vcpu_cpuid_restore(int vcpu_fd, unsigned index, const struct vcpu_state *state)
{
	uint32_t n = state->fixed.cpuid_count;
	struct kvm_cpuid2 *cpuid = malloc(sizeof(*cpuid) + n * sizeof(struct kvm_cpuid_entry2));
	int ret;

	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = n;
	cpuid->padding = 0;
	memcpy(cpuid->entries, state->cpuid, n * sizeof(struct kvm_cpuid_entry2));
	ret = VCPU_IOCTL(vcpu_fd, KVM_SET_CPUID2, cpuid, index);
	free(cpuid);
	return ret;
}

static int vcpu_msrs_restore(int vcpu_fd, unsigned index, const struct vcpu_state *state)
{
	uint32_t n = state->fixed.msr_count;
	struct kvm_msrs *req = malloc(sizeof(*req) + n * sizeof(struct kvm_msr_entry));
	int set;

	if (!req)
		return -ENOMEM;
	req->nmsrs = n;
	req->pad = 0;
	memcpy(req->entries, state->msrs, n * sizeof(struct kvm_msr_entry));
	set = ioctl(vcpu_fd, KVM_SET_MSRS, req);
	free(req);
	if (set < 0) {
		log_error("vCPU %u: KVM_SET_MSRS failed: %s", index, strerror(errno));
		return -errno;
	}
	if ((uint32_t)set < n) {
		/* KVM stops at the first MSR it refuses */
		return log_invalid("vCPU %u: KVM_SET_MSRS refused MSR 0x%x (%d of %u set)", index,
				   state->msrs[set].index, set, n);
	}
	return 0;
}

static void vcpu_tsc_khz_restore(int vcpu_fd, unsigned index, uint32_t khz)
{
	int here = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);

	if (!khz || here <= 0 || (uint32_t)here == khz)
		return;
	if (ioctl(vcpu_fd, KVM_SET_TSC_KHZ, (unsigned long)khz) < 0)
		log_warn(
			"vCPU %u: the snapshot's TSC runs at %u kHz, this host's at %d kHz, and "
			"KVM cannot scale it: the guest's kvmclock stays right, raw TSC reads do not",
			index, khz, here);
}

#define TSS_TYPE_AVAILABLE 9 /* a 64-bit TSS */
#define TSS_TYPE_BUSY	   11

/*
 * KVM on AMD reports the loaded TSS as busy whatever the VMCB holds (svm.c
 * sets the bit, which AMD CPUs do not store), and VMRUN loads TR without
 * looking at its type. QEMU's TCG, the nested platform's AMD CPU, honours
 * an I/O permission bitmap only in an available TSS: with the busy type put
 * back, a restored Linux guest's ioperm() ports faulted there (SIGSEGV at
 * its first inl). So on AMD, TR goes back as the CPU had it: available.
 * Intel's VM entry demands a busy TSS, and KVM reports it as the VMCS has it.
 */
static void vcpu_tss_type_restore(struct kvm_sregs *sregs)
{
	char vendor[12];
	uint32_t signature;

	cpu_host_identity(vendor, &signature);
	if (sregs->tr.type == TSS_TYPE_BUSY &&
	    (!memcmp(vendor, "AuthenticAMD", 12) || !memcmp(vendor, "HygonGenuine", 12)))
		sregs->tr.type = TSS_TYPE_AVAILABLE;
}

/*
 * The order matters to KVM:
 * - CPUID first: it decides which MSRs and XSAVE features exist;
 * - MP state, then the registers; SREGS before the LAPIC, because SREGS
 *   carries the APIC base (and with it x2APIC mode) the LAPIC state assumes;
 * - LAPIC before the MSRs: MSR_IA32_TSC_DEADLINE is only accepted once the
 *   LAPIC timer is in TSC-deadline mode; the TSC frequency before the MSRs,
 *   so that MSR_IA32_TSC is written at the final rate;
 * - vCPU events last: pending exceptions and interrupts are checked against
 *   the state set before them.
 */
int vcpu_state_restore(int vcpu_fd, unsigned index, const struct vcpu_state *state,
		       uint64_t *tsc_at_ns)
{
	struct vcpu_section_fixed f = state->fixed; /* the ioctls want writable copies */
	int ret;

	ret = vcpu_cpuid_restore(vcpu_fd, index, state);
	if (!ret)
		ret = VCPU_IOCTL(vcpu_fd, KVM_SET_MP_STATE, &f.mp_state, index);
	if (!ret)
		ret = VCPU_IOCTL(vcpu_fd, KVM_SET_REGS, &f.regs, index);
	if (!ret) {
		vcpu_tss_type_restore(&f.sregs);
		ret = VCPU_IOCTL(vcpu_fd, KVM_SET_SREGS, &f.sregs, index);
	}
	if (!ret) {
		uint8_t *xsave = malloc(MAX(f.xsave_size, sizeof(struct kvm_xsave)));

		if (!xsave)
			return -ENOMEM;
		memset(xsave, 0, MAX(f.xsave_size, sizeof(struct kvm_xsave)));
		memcpy(xsave, state->xsave, f.xsave_size);
		ret = VCPU_IOCTL(vcpu_fd, KVM_SET_XSAVE, xsave, index);
		free(xsave);
	}
	if (!ret)
		ret = VCPU_IOCTL(vcpu_fd, KVM_SET_XCRS, &f.xcrs, index);
	if (!ret)
		ret = VCPU_IOCTL(vcpu_fd, KVM_SET_DEBUGREGS, &f.debugregs, index);
	if (!ret)
		ret = VCPU_IOCTL(vcpu_fd, KVM_SET_LAPIC, &f.lapic, index);
	if (!ret) {
		vcpu_tsc_khz_restore(vcpu_fd, index, f.tsc_khz);
		ret = vcpu_msrs_restore(vcpu_fd, index, state);
		*tsc_at_ns = time_now_ns();
	}
	if (!ret)
		ret = VCPU_IOCTL(vcpu_fd, KVM_SET_VCPU_EVENTS, &f.events, index);
	return ret;
}

void vcpu_state_free(struct vcpu_state *state)
{
	free(state->owned);
	state->owned = NULL;
}

void vcpu_state_encode(struct snapshot_buffer *b, unsigned index, const struct vcpu_state *state)
{
	const struct vcpu_section_fixed *f = &state->fixed;

	snapshot_write_section_open(b, SECTION_VCPU + index, 1, 0);
	snapshot_write_bytes(b, f, sizeof(*f));
	snapshot_write_bytes(b, state->xsave, f->xsave_size);
	snapshot_write_bytes(b, state->cpuid, f->cpuid_count * sizeof(struct kvm_cpuid_entry2));
	snapshot_write_bytes(b, state->msrs, f->msr_count * sizeof(struct kvm_msr_entry));
	snapshot_write_section_close(b);
}

_Static_assert(sizeof(struct vcpu_section_fixed) % 8 == 0, "the arrays after it stay aligned");

int vcpu_state_decode(const struct snapshot_section *section, struct vcpu_state *state)
{
	const struct vcpu_section_fixed *f;
	uint64_t expected;

	memset(state, 0, sizeof(*state));
	if (section->version != 1 || section->length < sizeof(*f)) {
		return log_invalid("vCPU section 0x%x: unknown version %u or too short",
				   section->id, section->version);
	}
	memcpy(&state->fixed, section->payload, sizeof(*f));
	f = &state->fixed;
	/*
	 * The CPUID entries and MSRs are used in place, right after the xsave
	 * area: a size that is not a multiple of 8 (KVM's always are) would
	 * leave them misaligned for their types.
	 */
	if (f->xsave_size < sizeof(struct kvm_xsave) || f->xsave_size > VCPU_MAX_XSAVE_SIZE ||
	    f->xsave_size % 8 || f->cpuid_count > VCPU_MAX_CPUID_ENTRIES ||
	    f->msr_count > VCPU_MAX_MSRS) {
		return log_invalid(
			"vCPU section 0x%x: impossible sizes (xsave %u, %u CPUID entries, %u MSRs)",
			section->id, f->xsave_size, f->cpuid_count, f->msr_count);
	}
	expected = sizeof(*f) + (uint64_t)f->xsave_size +
		   (uint64_t)f->cpuid_count * sizeof(struct kvm_cpuid_entry2) +
		   (uint64_t)f->msr_count * sizeof(struct kvm_msr_entry);
	if (expected != section->length) {
		return log_invalid("vCPU section 0x%x is %llu bytes, its counts say %llu",
				   section->id, (unsigned long long)section->length,
				   (unsigned long long)expected);
	}
	state->xsave = section->payload + sizeof(*f);
	state->cpuid = (const void *)(state->xsave + f->xsave_size);
	state->msrs = (const void *)(state->cpuid + f->cpuid_count);
	/*
	 * Snapshots taken on Linux before 6.5 carry the zeroed rest of the
	 * read buffer after the real entries (see cpu_cpuid_count); KVM_SET_CPUID2
	 * would refuse them with E2BIG, so restore only the real ones.
	 */
	state->fixed.cpuid_count = cpu_cpuid_count(state->cpuid, f->cpuid_count);
	return 0;
}
