/* The CPUID table each vCPU sees: what KVM supports, with per-vCPU topology. */
#include "vmm/arch/x86/x86.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define CPUID_HYPERVISOR_BIT   (1u << 31) /* leaf 1 ECX */
#define CPUID_TSC_DEADLINE_BIT (1u << 24) /* leaf 1 ECX */
#define CPUID_MAX_ENTRIES      1024

static struct kvm_cpuid2 *cpuid_fetch(int kvm_fd)
{
	for (unsigned nent = 64; nent <= CPUID_MAX_ENTRIES; nent *= 2) {
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
	log_error("KVM_GET_SUPPORTED_CPUID: more than %u entries", CPUID_MAX_ENTRIES);
	return NULL;
}

/*
 * KVM emulates the LAPIC's TSC-deadline mode whatever the host has, but
 * leaves it out of KVM_GET_SUPPORTED_CPUID: the VMM must offer it. Without
 * it Linux calibrates the LAPIC timer against other clocks, which under
 * emulation or a loaded host fails ("APIC timer disabled due to
 * verification failure") and leaves the guest without a working timer.
 */
static void cpuid_add_emulated(int kvm_fd, struct kvm_cpuid2 *cpuid)
{
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) <= 0)
		return;
	for (unsigned i = 0; i < cpuid->nent; i++) {
		if (cpuid->entries[i].function == 1)
			cpuid->entries[i].ecx |= CPUID_TSC_DEADLINE_BIT;
	}
}

/*
 * The cache. KVM_GET_SUPPORTED_CPUID runs CPUID for every leaf it reports,
 * ~0.4 ms on a nested host where each CPUID traps: a tenth of a boot. Its
 * answer is settled when the KVM module loads, so snapvm keeps it in a file
 * whose key names that load: the boot id, and /dev/kvm's inode and change
 * time, which the module renews when it is loaded again.
 */
struct cpuid_cache_header {
	char magic[8];
	struct x86_cpuid_cache_key key;
	uint32_t nent;
	uint32_t reserved;
};

/* version 2: the table includes cpuid_add_emulated()'s bits */
static const char cpuid_cache_magic[8] = "SNAPCPU2";

int x86_cpuid_cache_key(int kvm_fd, struct x86_cpuid_cache_key *key)
{
	struct stat st;
	int fd, n;

	memset(key, 0, sizeof(*key));
	if (fstat(kvm_fd, &st) < 0)
		return -errno;
	key->kvm_ino = st.st_ino;
	key->kvm_ctime_sec = st.st_ctim.tv_sec;
	key->kvm_ctime_nsec = st.st_ctim.tv_nsec;
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = (int)read(fd, key->boot_id, sizeof(key->boot_id) - 1);
	close(fd);
	return n > 0 ? 0 : -EIO;
}

struct kvm_cpuid2 *x86_cpuid_cache_load(const char *path, const struct x86_cpuid_cache_key *key)
{
	struct cpuid_cache_header h;
	struct kvm_cpuid2 *cpuid = NULL;
	size_t entries_size;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (pread_all(fd, &h, sizeof(h), 0) || memcmp(h.magic, cpuid_cache_magic, 8) ||
	    memcmp(&h.key, key, sizeof(*key)) || h.nent == 0 || h.nent > CPUID_MAX_ENTRIES)
		goto out;
	entries_size = h.nent * sizeof(struct kvm_cpuid_entry2);
	cpuid = calloc(1, sizeof(*cpuid) + entries_size);
	/* the exact size: a torn or longer file is not this cache */
	if (!cpuid || pread_all(fd, cpuid->entries, entries_size, sizeof(h)) ||
	    lseek(fd, 0, SEEK_END) != (off_t)(sizeof(h) + entries_size)) {
		free(cpuid);
		cpuid = NULL;
		goto out;
	}
	cpuid->nent = h.nent;
out:
	close(fd);
	return cpuid;
}

int x86_cpuid_cache_store(const char *path, const struct x86_cpuid_cache_key *key,
			  const struct kvm_cpuid2 *cpuid)
{
	size_t entries_size = cpuid->nent * sizeof(struct kvm_cpuid_entry2);
	struct cpuid_cache_header h = { .key = *key, .nent = cpuid->nent };
	uint8_t *buf = malloc(sizeof(h) + entries_size);
	int ret;

	if (!buf)
		return -ENOMEM;
	memcpy(h.magic, cpuid_cache_magic, sizeof(h.magic));
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), cpuid->entries, entries_size);
	ret = file_write_atomic(path, buf, sizeof(h) + entries_size);
	free(buf);
	return ret;
}

/* $XDG_RUNTIME_DIR/snapvm, else /run/snapvm for root; false: no cache. */
static bool cpuid_cache_path(char *path, size_t size)
{
	const char *runtime = getenv("XDG_RUNTIME_DIR");
	char dir[PATH_MAX];

	if (runtime && runtime[0] == '/')
		snprintf(dir, sizeof(dir), "%s/snapvm", runtime);
	else if (geteuid() == 0)
		snprintf(dir, sizeof(dir), "/run/snapvm");
	else
		return false;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return false;
	return snprintf(path, size, "%s/kvm-cpuid", dir) < (int)size;
}

struct kvm_cpuid2 *x86_cpuid_supported(int kvm_fd)
{
	struct x86_cpuid_cache_key key;
	struct kvm_cpuid2 *cpuid;
	char path[PATH_MAX];
	bool cached = cpuid_cache_path(path, sizeof(path)) && !x86_cpuid_cache_key(kvm_fd, &key);

	cpuid = cached ? x86_cpuid_cache_load(path, &key) : NULL;
	if (cpuid)
		return cpuid;
	cpuid = cpuid_fetch(kvm_fd);
	if (cpuid)
		cpuid_add_emulated(kvm_fd, cpuid);
	if (cpuid && cached && x86_cpuid_cache_store(path, &key, cpuid))
		log_debug("cannot keep KVM's CPUID in %s", path);
	return cpuid;
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
