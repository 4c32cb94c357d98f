/* Reads the command line and the RAM map from whichever boot protocol started us. */
#include "guest.h"

#define E820_RAM 1

/* Linux boot_params (the "zero page"), the fields the guest reads. */
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES	    0x1e8
#define BP_CMD_LINE_PTR	    0x228
#define BP_E820_TABLE	    0x2d0
#define BP_E820_MAX	    128

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* PVH: xen/include/public/arch-x86/hvm/start_info.h, version 1. */
#define PVH_MAGIC 0x336ec578
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

extern char _end[];

static void note_ram(struct boot_info *out, uint64_t addr, uint64_t size, uint32_t type)
{
	uint64_t image = GUEST_LOAD_ADDR;

	if (type == E820_RAM && addr <= image && image < addr + size)
		out->ram_below_4g_end = addr + size;
}

void boot_info_read(uint64_t kind, uint64_t info, struct boot_info *out)
{
	out->cmdline = "";
	out->ram_below_4g_end = (uint64_t)_end;
	if (kind == BOOT_FROM_ELF64) {
		const uint8_t *bp = (const uint8_t *)info;
		uint64_t cmdline = *(const uint32_t *)(bp + BP_CMD_LINE_PTR) |
				   (uint64_t) * (const uint32_t *)(bp + BP_EXT_CMD_LINE_PTR) << 32;
		const struct e820_entry *e820 = (const void *)(bp + BP_E820_TABLE);
		unsigned entries = bp[BP_E820_ENTRIES];

		if (cmdline)
			out->cmdline = (const char *)cmdline;
		for (unsigned i = 0; i < entries && i < BP_E820_MAX; i++)
			note_ram(out, e820[i].addr, e820[i].size, e820[i].type);
	} else if (kind == BOOT_FROM_PVH) {
		const struct hvm_start_info *si = (const void *)info;
		const struct hvm_memmap_entry *map;

		if (si->magic != PVH_MAGIC)
			return;
		if (si->cmdline_paddr)
			out->cmdline = (const char *)si->cmdline_paddr;
		if (si->version < 1 || !si->memmap_paddr)
			return;
		map = (const void *)si->memmap_paddr;
		for (unsigned i = 0; i < si->memmap_entries; i++)
			note_ram(out, map[i].addr, map[i].size, map[i].type);
	}
}
