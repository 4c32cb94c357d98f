/*
 * Kernel loading: which format a file is, which entry it takes, and the boot
 * data (command line, initrd, tables, boot_params or start_info) it gets.
 */
#include "vmm/arch/x86/x86.h"
#include "common/common.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

/* What a Linux vmlinux does not say about itself, as its bzImage would (x86-64). */
#define LINUX_COMMAND_LINE_SIZE 2048	   /* COMMAND_LINE_SIZE, NUL included */
#define LINUX_INITRD_ADDR_MAX	0x7fffffff /* header.S's initrd_addr_max */

static int elf_kernel_load(const uint8_t *file, size_t size, enum vmm_boot_mode boot,
			   const struct guest_memory *mem, struct x86_kernel *kernel)
{
	struct elf_image image;
	int ret = elf_load(file, size, mem, &image);

	if (ret)
		return ret;
	if (boot == VMM_BOOT_PVH && !image.has_pvh)
		return log_invalid("kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)%s",
				   image.is64 ? "; try --boot elf64" : "");
	/* a 32-bit ELF has no 64-bit entry: the PVH note is its only way in */
	if (!image.is64 && !image.has_pvh)
		return log_invalid("32-bit ELF kernel without a PVH entry note "
				   "(XEN_ELFNOTE_PHYS32_ENTRY): snapvm cannot enter it");
	if (!image.is64 && boot == VMM_BOOT_ELF64)
		return log_invalid("--boot elf64 needs a 64-bit ELF kernel; this one is 32-bit "
				   "(boot it by its PVH note: --boot pvh or auto)");
	/*
	 * Like QEMU and Firecracker, a Linux vmlinux with a PVH note boots by it.
	 * Other ELF64 kernels (the test guest) take e_entry in long mode: no
	 * emulated 32-bit start-up on PVM hosts. An ELF32 kernel can only
	 * start by its PVH note.
	 */
	*kernel = (struct x86_kernel){
		.linux_kernel = image.is_linux,
		.pvh = boot == VMM_BOOT_PVH || !image.is64 ||
		       (boot == VMM_BOOT_AUTO && image.has_pvh && image.is_linux),
		.end = image.load_end,
		.initrd_addr_max = LINUX_INITRD_ADDR_MAX,
		.cmdline_max = image.is_linux ? LINUX_COMMAND_LINE_SIZE - 1 : VMM_CMDLINE_MAX - 1,
	};
	kernel->entry = kernel->pvh ? image.pvh_entry : image.entry;
	return 0;
}

static int bzimage_kernel_load(const uint8_t *file, size_t size, enum vmm_boot_mode boot,
			       const struct guest_memory *mem, struct x86_kernel *kernel)
{
	struct bzimage_header header;
	int ret;

	if (boot != VMM_BOOT_AUTO)
		return log_invalid("--boot %s needs an ELF kernel, and this is a bzImage "
				   "(boot it with --boot auto, or use its vmlinux)",
				   boot == VMM_BOOT_PVH ? "pvh" : "elf64");
	ret = bzimage_header_parse(file, size, &header);
	if (!ret)
		ret = bzimage_load(file, &header, mem, kernel);
	return ret;
}

int x86_kernel_load(const uint8_t *file, size_t size, enum vmm_boot_mode boot,
		    const struct guest_memory *mem, struct x86_kernel *kernel)
{
	if (elf_is_elf(file, size))
		return elf_kernel_load(file, size, boot, mem, kernel);
	if (bzimage_is_bzimage(file, size))
		return bzimage_kernel_load(file, size, boot, mem, kernel);
	return log_invalid(
		"not a kernel: neither an ELF file nor a bzImage (no \"HdrS\" at 0x202)");
}

int x86_initrd_place(const struct guest_memory *mem, uint64_t kernel_end, uint64_t addr_max,
		     uint64_t size, uint64_t *gpa)
{
	/* addr_max is the highest byte the initrd may use, hence the + 1 */
	uint64_t top = MIN(guest_memory_low_end(mem), addr_max + 1);
	uint64_t bottom = ALIGN_UP(MAX(kernel_end, X86_KERNEL_MIN_ADDR), PAGE_SIZE);

	if (size == 0 || top < bottom || size > top - bottom)
		return -ENOSPC;
	*gpa = ALIGN_DOWN(top - size, PAGE_SIZE);
	return 0;
}

int x86_boot_data_write(const struct guest_memory *mem, const struct x86_kernel *kernel,
			const char *cmdline, uint64_t initrd_gpa, uint64_t initrd_size,
			unsigned cpus, const struct virtio_mmio_slots *virtio, uint64_t rsdp_gpa)
{
	struct x86_boot_info info = {
		.cmdline_gpa = X86_CMDLINE_ADDR,
		.initrd_gpa = initrd_gpa,
		.initrd_size = initrd_size,
		.header = kernel->has_header ? &kernel->header : NULL,
		.kernel_gpa = kernel->load_addr,
		.rsdp_gpa = rsdp_gpa,
	};
	size_t max = MIN(kernel->cmdline_max + 1, (uint64_t)VMM_CMDLINE_MAX);
	int ret = x86_cmdline_write(mem, cmdline, max);

	if (ret)
		return ret;
	if (x86_boot_tables_write(mem) || x86_mptable_write(mem, cpus, virtio) ||
	    (kernel->pvh ? x86_pvh_start_info_write(mem, &info) : x86_zero_page_write(mem, &info)))
		return log_invalid("guest RAM too small for the boot data");
	return 0;
}
