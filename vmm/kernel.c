/*
 * Booting a new VM: the kernel file, the initrd, the command line a Linux
 * kernel gets, and the boot vCPU's first registers. The formats and the boot
 * structures themselves live in arch/x86/.
 */
#include "vmm/vm_internal.h"
#include "vmm/arch/x86/x86.h"
#include "vmm/arch/x86/acpi.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define KERNEL_MAX_SIZE (512ULL << 20)

/* What every Linux guest gets before the user's words (which may override them). */
#define LINUX_CMDLINE_SERIAL "console=ttyS0"
#define LINUX_CMDLINE_VIRTIO "console=hvc0"
#define LINUX_CMDLINE_COMMON "reboot=k panic=-1"

/* Appends " word" (or "word" at the start); false if it does not fit. */
static bool cmdline_append(char *buf, size_t size, size_t *len, const char *word)
{
	int n;

	if (!word[0])
		return true;
	n = snprintf(buf + *len, size - *len, "%s%s", *len ? " " : "", word);
	if (n < 0 || (size_t)n >= size - *len)
		return false;
	*len += (size_t)n;
	return true;
}

/*
 * The test guest (or any kernel that is not Linux) gets exactly the user's
 * command line; Linux gets snapvm's defaults and its virtio-mmio devices first.
 * With ACPI the DSDT lists the devices: Linux would make each one twice if
 * the command line named them too. Returns the length, or -ENOSPC.
 */
static int vm_cmdline_compose(const struct vm *vm, bool linux_kernel, char *buf, size_t size)
{
	const struct vmm_config *c = &vm->config;
	char devices[VMM_CMDLINE_MAX];
	size_t len = 0;
	bool fits = true;

	buf[0] = '\0';
	if (linux_kernel) {
		devices[0] = '\0';
		if (!c->acpi && vm_virtio_cmdline(vm, devices, sizeof(devices)) < 0)
			return -ENOSPC;
		fits = (c->no_legacy || cmdline_append(buf, size, &len, LINUX_CMDLINE_SERIAL)) &&
		       (c->console != VMM_CONSOLE_VIRTIO ||
			cmdline_append(buf, size, &len, LINUX_CMDLINE_VIRTIO)) &&
		       cmdline_append(buf, size, &len, LINUX_CMDLINE_COMMON) &&
		       cmdline_append(buf, size, &len, devices);
	}
	if (!fits || !cmdline_append(buf, size, &len, c->cmdline))
		return -ENOSPC;
	return (int)len;
}

/* Where the initrd goes: the top of what RAM and the kernel allow. */
static int vm_initrd_place(struct vm *vm, const struct x86_kernel *kernel, const char *path,
			   uint64_t size, uint64_t *gpa)
{
	uint64_t top = MIN(guest_memory_low_end(&vm->mem), kernel->initrd_addr_max + 1);

	if (!size)
		return log_invalid("initrd %s is empty", path);
	if (x86_initrd_place(&vm->mem, kernel->end, kernel->initrd_addr_max, size, gpa))
		return log_invalid("initrd %s (%" PRIu64 " KiB) does not fit in guest RAM between "
				   "the kernel's end (%" PRIu64 " MiB) and %" PRIu64
				   " MiB: use a larger --mem",
				   path, size >> 10, kernel->end >> 20, top >> 20);
	return 0;
}

/* Reads the initrd straight into guest RAM; no initrd: size 0. */
static int vm_initrd_load(struct vm *vm, const struct x86_kernel *kernel, uint64_t *gpa,
			  uint64_t *size)
{
	const char *path = vm->config.initrd_path;
	struct stat st;
	int fd, ret;

	*gpa = *size = 0;
	if (!path)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		log_error("cannot read initrd %s: %s", path, strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = log_invalid("initrd %s is not a regular file", path);
		goto out;
	}
	ret = vm_initrd_place(vm, kernel, path, (uint64_t)st.st_size, gpa);
	if (ret)
		goto out;
	*size = (uint64_t)st.st_size;
	ret = pread_all(fd, guest_memory_ptr(&vm->mem, *gpa, *size), *size, 0);
	if (ret)
		log_error("cannot read initrd %s: %s", path, strerror(-ret));
	else
		log_info("initrd %s: %" PRIu64 " bytes at 0x%" PRIx64, path, *size, *gpa);
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int vm_set_boot_regs(struct vm *vm, bool pvh, uint64_t entry)
{
	int fd = vm->vcpus[0].fd, ret;
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rflags = 2, .rip = entry };

	if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0) {
		ret = -errno;
		log_error("KVM_GET_SREGS failed: %s", strerror(-ret));
		return ret;
	}
	if (pvh) {
		x86_sregs_pvh(&sregs);
		regs.rbx = X86_PVH_INFO_ADDR;
	} else {
		x86_sregs_long_mode(&sregs);
		regs.rsi = X86_ZERO_PAGE_ADDR;
	}
	if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(fd, KVM_SET_REGS, &regs) < 0) {
		ret = -errno;
		log_error("setting the boot vCPU's registers failed: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

/* The command line, the initrd and the boot structures for a loaded kernel. */
static int vm_boot_data_load(struct vm *vm, const struct x86_kernel *kernel)
{
	char cmdline[VMM_CMDLINE_MAX];
	uint64_t initrd_gpa, initrd_size, rsdp_gpa = 0;
	struct x86_acpi_config acpi = { vm->vcpu_count, !vm->config.no_legacy, &vm->virtio_slots,
					vm->generation };
	int ret = vm_cmdline_compose(vm, kernel->linux_kernel, cmdline, sizeof(cmdline));

	if (ret < 0)
		return log_invalid("command line with snapvm's additions is longer than %d bytes",
				   VMM_CMDLINE_MAX - 1);
	ret = vm_initrd_load(vm, kernel, &initrd_gpa, &initrd_size);
	if (ret)
		return ret;
	log_info("command line: %s", cmdline);
	if (vm->config.acpi && x86_acpi_write(&vm->mem, &acpi, &rsdp_gpa))
		return log_invalid("guest RAM too small for the ACPI tables");
	return x86_boot_data_write(&vm->mem, kernel, cmdline, initrd_gpa, initrd_size,
				   vm->vcpu_count, &vm->virtio_slots, rsdp_gpa);
}

bool vmm_kernel_is_linux(const char *path)
{
	uint8_t *file;
	size_t size;
	bool is_linux;

	if (file_read_all(path, &file, &size, KERNEL_MAX_SIZE))
		return false;
	is_linux = bzimage_is_bzimage(file, size) || elf_is_linux(file, size);
	free(file);
	return is_linux;
}

int vm_load_kernel(struct vm *vm)
{
	const char *path = vm->config.kernel_path;
	struct x86_kernel kernel;
	uint8_t *file;
	size_t size;
	int ret;

	ret = file_read_all(path, &file, &size, KERNEL_MAX_SIZE);
	if (ret) {
		log_error("cannot read kernel %s: %s", path,
			  ret == -EFBIG ? "larger than 512 MiB" : strerror(-ret));
		return ret;
	}
	ret = x86_kernel_load(file, size, vm->config.boot, &vm->mem, &kernel);
	free(file);
	if (!ret)
		ret = vm_boot_data_load(vm, &kernel);
	if (!ret)
		ret = vm_set_boot_regs(vm, kernel.pvh, kernel.entry);
	return ret;
}
