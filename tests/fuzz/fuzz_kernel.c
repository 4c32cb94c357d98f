/*
 * libFuzzer target for the kernel loaders (vmm/arch/x86/): the input is a
 * kernel file, tried with every --boot mode as `snapvm run` would load it:
 * ELF (64- and 32-bit, PVH note) or bzImage, told apart by their magic, its
 * segments copied into guest RAM, then the command line, an initrd and the
 * boot structures written where the kernel's headers allow. Guest RAM is
 * one malloc'ed buffer, so AddressSanitizer catches a segment or a header
 * field that would send a copy outside it.
 */
#include "vmm/arch/x86/x86.h"
#include "vmm/device.h"
#include "common/common.h"

#include <stdlib.h>
#include <string.h>

#define RAM_SIZE (128ULL << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct guest_memory mem;

static void load(const uint8_t *data, size_t size, enum vmm_boot_mode boot)
{
	static const struct virtio_mmio_slots slots = { 1, { { VIRTIO_MMIO_BASE, 5, 2 } } };
	struct x86_kernel kernel;
	uint64_t initrd_gpa = 0;

	if (x86_kernel_load(data, size, boot, &mem, &kernel))
		return;
	if (x86_initrd_place(&mem, kernel.end, kernel.initrd_addr_max, 4096, &initrd_gpa))
		initrd_gpa = 0;
	x86_boot_data_write(&mem, &kernel, "console=ttyS0 reboot=k panic=-1", initrd_gpa,
			    initrd_gpa ? 4096 : 0, 1, &slots, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a refused kernel logs why: not news here */
	log_threshold = LOG_QUIET;
	if (!mem.host) { /* RAM is not cleared between inputs: no loader reads it */
		mem.host = malloc(RAM_SIZE);
		mem.size = RAM_SIZE;
		mem.region_count = 1;
		mem.regions[0] = (struct guest_region){ 0, RAM_SIZE, 0 };
	}
	(void)(bzimage_is_bzimage(data, size) || elf_is_linux(data, size));
	load(data, size, VMM_BOOT_AUTO);
	load(data, size, VMM_BOOT_ELF64);
	load(data, size, VMM_BOOT_PVH);
	return 0;
}
