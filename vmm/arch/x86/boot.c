/* Boot structures in guest memory and the initial register state for each entry. */
#include "vmm/arch/x86/x86.h"
#include "vmm/arch/x86/acpi.h"
#include "common/common.h"

#include <errno.h>
#include <string.h>

#define CR0_PE		     0x1
#define CR0_MP		     0x2
#define CR0_ET		     0x10
#define CR0_NE		     0x20
#define CR0_WP		     0x10000
#define CR0_PG		     0x80000000
#define CR4_PAE		     0x20
#define EFER_LME	     0x100
#define EFER_LMA	     0x400
#define PTE_PRESENT_WRITABLE 0x3
#define PTE_LARGE	     0x80

unsigned x86_e820_build(const struct guest_memory *mem, struct e820_entry *table, unsigned max,
			bool acpi)
{
	uint64_t low_end = guest_memory_low_end(mem);
	unsigned n = 0;

	if (max < 5)
		return 0;
	table[n++] = (struct e820_entry){ 0, X86_MPTABLE_ADDR, E820_RAM };
	table[n++] = (struct e820_entry){ X86_MPTABLE_ADDR, X86_BASE_MEMORY_END - X86_MPTABLE_ADDR,
					  E820_RESERVED };
	/* Linux keeps off 640K-1M anyway; saying so makes the tables' home explicit */
	if (acpi)
		table[n++] = (struct e820_entry){ X86_ACPI_ADDR, X86_BIOS_AREA_END - X86_ACPI_ADDR,
						  E820_RESERVED };
	if (low_end > X86_KERNEL_MIN_ADDR)
		table[n++] = (struct e820_entry){ X86_KERNEL_MIN_ADDR,
						  low_end - X86_KERNEL_MIN_ADDR, E820_RAM };
	for (unsigned i = 1; i < mem->region_count; i++)
		table[n++] =
			(struct e820_entry){ mem->regions[i].gpa, mem->regions[i].size, E820_RAM };
	return n;
}

int x86_cmdline_write(const struct guest_memory *mem, const char *cmdline, size_t max_size)
{
	size_t len = strlen(cmdline);
	char *dest;

	if (len + 1 > max_size) {
		return log_invalid("command line is %zu bytes; this kernel takes at most %zu", len,
				   max_size - 1);
	}
	dest = guest_memory_ptr(mem, X86_CMDLINE_ADDR, len + 1);
	if (!dest)
		return log_invalid("no room in guest RAM for the command line");
	memcpy(dest, cmdline, len + 1);
	return 0;
}

/* A bzImage's own header, or a minimal one for an ELF kernel that has none. */
static void zero_page_header_fill(struct setup_header *hdr, const struct x86_boot_info *info)
{
	if (info->header) {
		*hdr = *info->header;
		hdr->code32_start = (uint32_t)info->kernel_gpa;
		hdr->vid_mode = VID_MODE_NORMAL;
		/* nothing the file says may send the kernel chasing pointers or platforms */
		hdr->setup_data = 0;
		hdr->hardware_subarch = 0;
		hdr->hardware_subarch_data = 0;
	} else {
		hdr->boot_flag = BOOT_FLAG_MAGIC;
		hdr->header = SETUP_HEADER_MAGIC;
		hdr->version = BOOT_PROTOCOL_MIN;
	}
	hdr->type_of_loader = LOADER_TYPE_UNDEFINED;
}

int x86_zero_page_write(const struct guest_memory *mem, const struct x86_boot_info *info)
{
	struct boot_params *bp = guest_memory_ptr(mem, X86_ZERO_PAGE_ADDR, sizeof(*bp));

	if (!bp)
		return -EINVAL;
	memset(bp, 0, sizeof(*bp));
	zero_page_header_fill(&bp->hdr, info);
	bp->hdr.cmd_line_ptr = (uint32_t)info->cmdline_gpa;
	bp->ext_cmd_line_ptr = (uint32_t)(info->cmdline_gpa >> 32);
	bp->hdr.ramdisk_image = (uint32_t)info->initrd_gpa;
	bp->ext_ramdisk_image = (uint32_t)(info->initrd_gpa >> 32);
	bp->hdr.ramdisk_size = (uint32_t)info->initrd_size;
	bp->ext_ramdisk_size = (uint32_t)(info->initrd_size >> 32);
	bp->acpi_rsdp_addr = info->rsdp_gpa;
	bp->e820_entries =
		(uint8_t)x86_e820_build(mem, bp->e820_table, E820_MAX_ENTRIES, info->rsdp_gpa != 0);
	return 0;
}

_Static_assert(X86_PVH_MEMMAP_ADDR + E820_MAX_ENTRIES * sizeof(struct hvm_memmap_table_entry) <=
		       X86_PVH_MODLIST_ADDR,
	       "the PVH memory map runs into the module list");

/* The initrd as the first (and only) module, which is where Linux looks for it. */
static int pvh_modules_write(const struct guest_memory *mem, const struct x86_boot_info *info,
			     struct hvm_start_info *si)
{
	struct hvm_modlist_entry *mod;

	if (!info->initrd_size)
		return 0;
	mod = guest_memory_ptr(mem, X86_PVH_MODLIST_ADDR, sizeof(*mod));
	if (!mod)
		return -EINVAL;
	*mod = (struct hvm_modlist_entry){ .paddr = info->initrd_gpa, .size = info->initrd_size };
	si->nr_modules = 1;
	si->modlist_paddr = X86_PVH_MODLIST_ADDR;
	return 0;
}

int x86_pvh_start_info_write(const struct guest_memory *mem, const struct x86_boot_info *info)
{
	struct hvm_start_info *si = guest_memory_ptr(mem, X86_PVH_INFO_ADDR, sizeof(*si));
	struct e820_entry e820[E820_MAX_ENTRIES];
	struct hvm_memmap_table_entry *map;
	unsigned n = x86_e820_build(mem, e820, E820_MAX_ENTRIES, info->rsdp_gpa != 0);

	map = guest_memory_ptr(mem, X86_PVH_MEMMAP_ADDR, n * sizeof(*map));
	if (!si || !map)
		return -EINVAL;
	*si = (struct hvm_start_info){
		.magic = PVH_START_MAGIC,
		.version = 1,
		.cmdline_paddr = info->cmdline_gpa,
		.rsdp_paddr = info->rsdp_gpa,
		.memmap_paddr = X86_PVH_MEMMAP_ADDR,
		.memmap_entries = n,
	};
	for (unsigned i = 0; i < n; i++)
		map[i] = (struct hvm_memmap_table_entry){ e820[i].addr, e820[i].size, e820[i].type,
							  0 };
	return pvh_modules_write(mem, info, si);
}

int x86_boot_tables_write(const struct guest_memory *mem)
{
	uint64_t *gdt = guest_memory_ptr(mem, X86_GDT_ADDR, 4 * sizeof(uint64_t));
	uint64_t *pt = guest_memory_ptr(mem, X86_PAGE_TABLES_ADDR, X86_PAGE_TABLES_SIZE);

	if (!gdt || !pt)
		return -EINVAL;
	gdt[0] = 0;
	gdt[1] = 0x00cf9b000000ffffULL; /* 0x08: 32-bit code, flat */
	gdt[2] = 0x00af9b000000ffffULL; /* 0x10: 64-bit code */
	gdt[3] = 0x00cf93000000ffffULL; /* 0x18: data, flat */

	/* PML4[0] -> PDPT; PDPT[0..3] -> four page directories of 2 MiB pages */
	memset(pt, 0, X86_PAGE_TABLES_SIZE);
	pt[0] = (X86_PAGE_TABLES_ADDR + 0x1000) | PTE_PRESENT_WRITABLE;
	for (uint64_t i = 0; i < 4; i++)
		pt[512 + i] = (X86_PAGE_TABLES_ADDR + 0x2000 + i * 0x1000) | PTE_PRESENT_WRITABLE;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pt[1024 + i] = (i << 21) | PTE_PRESENT_WRITABLE | PTE_LARGE;
	return 0;
}

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64)
{
	return (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = selector,
		.type = type,
		.present = 1,
		.s = 1,
		.db = code64 ? 0 : 1,
		.l = code64 ? 1 : 0,
		.g = 1,
	};
}

static void sregs_flat(struct kvm_sregs *s, struct kvm_segment code)
{
	struct kvm_segment data = flat_segment(X86_SEL_DATA, 3, false);

	s->cs = code;
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->gdt.base = X86_GDT_ADDR;
	s->gdt.limit = 4 * 8 - 1;
	s->idt.base = X86_IDT_ADDR;
	s->idt.limit = 0;
}

void x86_sregs_long_mode(struct kvm_sregs *s)
{
	sregs_flat(s, flat_segment(X86_SEL_CODE64, 11, true));
	s->cr3 = X86_PAGE_TABLES_ADDR;
	s->cr4 = CR4_PAE;
	s->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	s->efer = EFER_LME | EFER_LMA;
}

void x86_sregs_pvh(struct kvm_sregs *s)
{
	sregs_flat(s, flat_segment(X86_SEL_CODE32, 11, false));
	s->cr0 = CR0_PE | CR0_ET;
	s->cr3 = 0;
	s->cr4 = 0;
	s->efer = 0;
}
