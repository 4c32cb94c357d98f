/*
 * bzImage kernels (the Linux x86 boot protocol, Documentation/x86/boot.rst):
 * the setup header is checked as untrusted input, then the protected-mode
 * kernel is copied where the header allows and entered at its 64-bit entry.
 */
#include "vmm/arch/x86/x86.h"
#include "common/common.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define SETUP_HEADER_END_MAX (SETUP_HEADER_OFFSET + sizeof(struct setup_header))
#define BZIMAGE_ENTRY64	     0x200 /* the 64-bit entry, past the protected-mode start */
#define KERNEL_ALIGN_MAX     (1ULL << 30)

bool bzimage_is_bzimage(const uint8_t *file, size_t size)
{
	uint32_t magic;

	if (size < SETUP_HEADER_OFFSET + offsetof(struct setup_header, version))
		return false;
	memcpy(&magic, file + SETUP_HEADER_OFFSET + offsetof(struct setup_header, header),
	       sizeof(magic));
	return magic == SETUP_HEADER_MAGIC;
}

/* Copies the header as far as the file says it goes; the rest stays zero. */
static int bzimage_header_copy(const uint8_t *file, size_t size, struct setup_header *hdr)
{
	size_t end;

	if (size < SETUP_JUMP_OFFSET + 2)
		return log_invalid("truncated bzImage: %zu bytes, not even a setup header", size);
	/* the jump at 0x200 skips the header: its offset byte says where the header ends */
	end = SETUP_JUMP_OFFSET + 2 + file[SETUP_JUMP_OFFSET + 1];
	end = MIN(end, SETUP_HEADER_END_MAX);
	if (end < SETUP_HEADER_OFFSET + offsetof(struct setup_header, pref_address))
		return log_invalid("bzImage setup header is only %zu bytes long",
				   end - SETUP_HEADER_OFFSET);
	if (size < end)
		return log_invalid("truncated bzImage: %zu bytes, the setup header ends at %zu",
				   size, end);
	memset(hdr, 0, sizeof(*hdr));
	memcpy(hdr, file + SETUP_HEADER_OFFSET, end - SETUP_HEADER_OFFSET);
	return 0;
}

static bool is_power_of_two(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* The fields snapvm relies on, checked against what the boot protocol allows. */
static int bzimage_header_check(const struct setup_header *hdr)
{
	if (hdr->boot_flag != BOOT_FLAG_MAGIC || hdr->header != SETUP_HEADER_MAGIC)
		return log_invalid("not a bzImage: no boot_flag 0xaa55 and \"HdrS\" magic");
	if (hdr->version < BOOT_PROTOCOL_MIN)
		return log_invalid(
			"bzImage speaks boot protocol %u.%02u; snapvm needs 2.12 or later "
			"(Linux 3.8+)",
			hdr->version >> 8, hdr->version & 0xff);
	if (!(hdr->loadflags & LOADFLAGS_LOADED_HIGH))
		return log_invalid("a zImage (loaded below 1 MiB), not a bzImage: not supported");
	if (!(hdr->xloadflags & XLF_KERNEL_64))
		return log_invalid("bzImage has no 64-bit entry point (a 32-bit kernel?)");
	if (hdr->relocatable_kernel &&
	    (!is_power_of_two(hdr->kernel_alignment) || hdr->kernel_alignment < PAGE_SIZE ||
	     hdr->kernel_alignment > KERNEL_ALIGN_MAX))
		return log_invalid("bzImage kernel_alignment 0x%x is not a power of two "
				   "from 4 KiB to 1 GiB",
				   hdr->kernel_alignment);
	if (hdr->pref_address < X86_KERNEL_MIN_ADDR || hdr->pref_address >= GUEST_LOW_RAM_END)
		return log_invalid("bzImage pref_address 0x%" PRIx64
				   " is not between 1 MiB and 3 GiB",
				   (uint64_t)hdr->pref_address);
	if (hdr->cmdline_size == 0)
		return log_invalid("bzImage takes no command line (cmdline_size 0)");
	return 0;
}

int bzimage_header_parse(const uint8_t *file, size_t size, struct bzimage_header *header)
{
	struct setup_header *hdr = &header->hdr;
	int ret = bzimage_header_copy(file, size, hdr);
	unsigned sects;

	if (!ret)
		ret = bzimage_header_check(hdr);
	if (ret)
		return ret;
	sects = hdr->setup_sects ? hdr->setup_sects : SETUP_SECTS_DEFAULT;
	header->setup_size = (uint64_t)(sects + 1) * SETUP_SECTOR_SIZE;
	if (header->setup_size >= size)
		return log_invalid(
			"truncated bzImage: %zu bytes, its setup code alone takes %" PRIu64, size,
			header->setup_size);
	header->kernel_size = size - header->setup_size;
	if (header->kernel_size < (uint64_t)hdr->syssize * 16)
		return log_invalid("truncated bzImage: protected-mode kernel is %" PRIu64
				   " bytes, the header says %" PRIu64,
				   header->kernel_size, (uint64_t)hdr->syssize * 16);
	if (hdr->init_size < header->kernel_size)
		return log_invalid("bzImage init_size (%u bytes) is smaller than its kernel",
				   hdr->init_size);
	return 0;
}

/*
 * A relocatable kernel goes straight to its preferred address (aligned as it
 * asks), where it runs without moving; any other is loaded at 1 MiB and moves
 * itself to pref_address. Either way it needs init_size bytes from where it
 * runs (boot.rst, "init_size").
 */
static void bzimage_place(const struct setup_header *hdr, uint64_t *load, uint64_t *runtime)
{
	if (hdr->relocatable_kernel) {
		*load = ALIGN_UP(hdr->pref_address, (uint64_t)hdr->kernel_alignment);
		*runtime = *load;
	} else {
		*load = X86_KERNEL_MIN_ADDR;
		*runtime = hdr->pref_address;
	}
}

int bzimage_load(const uint8_t *file, const struct bzimage_header *header,
		 const struct guest_memory *mem, struct x86_kernel *kernel)
{
	const struct setup_header *hdr = &header->hdr;
	uint64_t load, runtime, end;
	uint8_t *dest;

	bzimage_place(hdr, &load, &runtime);
	end = MAX(load + header->kernel_size, runtime + hdr->init_size);
	dest = guest_memory_ptr(mem, load, header->kernel_size);
	if (!dest || end > guest_memory_low_end(mem))
		return log_invalid("kernel needs guest RAM up to %" PRIu64 " MiB (init_size %u KiB "
				   "from 0x%" PRIx64 "); the guest has %" PRIu64 " MiB",
				   (uint64_t)((end + MiB - 1) >> 20), hdr->init_size >> 10, runtime,
				   mem->size >> 20);
	memcpy(dest, file + header->setup_size, header->kernel_size);
	*kernel = (struct x86_kernel){
		.linux_kernel = true,
		.entry = load + BZIMAGE_ENTRY64,
		.end = end,
		.initrd_addr_max = hdr->initrd_addr_max,
		.cmdline_max = hdr->cmdline_size,
		.header = *hdr,
		.has_header = true,
		.load_addr = load,
	};
	return 0;
}
