/*
 * The Linux x86 boot protocol's data structures (the kernel's
 * Documentation/arch/x86/boot.rst and zero-page.rst): the setup header found
 * in a bzImage and the boot_params ("zero page") a loader hands to the kernel.
 * Only fields snapvm reads or writes are named; the rest is padding at the
 * documented offsets, checked by the static assertions below.
 */
#ifndef SNAPVM_X86_BOOTPARAMS_H
#define SNAPVM_X86_BOOTPARAMS_H

#include <stddef.h>
#include <stdint.h>

#define E820_RAM	 1
#define E820_RESERVED	 2
#define E820_MAX_ENTRIES 128

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

#define SETUP_HEADER_MAGIC 0x53726448 /* "HdrS" */
#define BOOT_FLAG_MAGIC	   0xaa55

/* Where a bzImage keeps its setup header, and what its fields mean. */
#define SETUP_HEADER_OFFSET	   0x1f1
#define SETUP_JUMP_OFFSET	   0x200 /* a short jmp whose offset byte gives the header's end */
#define SETUP_SECTOR_SIZE	   512
#define SETUP_SECTS_DEFAULT	   4 /* setup_sects 0 means 4 */
#define LOADFLAGS_LOADED_HIGH	   0x01
#define XLF_KERNEL_64		   0x01 /* 64-bit entry point 0x200 past the protected-mode code */
#define XLF_CAN_BE_LOADED_ABOVE_4G 0x02
#define BOOT_PROTOCOL_MIN	   0x020c /* 2.12: xloadflags */
#define LOADER_TYPE_UNDEFINED	   0xff
#define VID_MODE_NORMAL		   0xffff

struct setup_header {
	uint8_t setup_sects;
	uint16_t root_flags;
	uint32_t syssize;
	uint16_t ram_size;
	uint16_t vid_mode;
	uint16_t root_dev;
	uint16_t boot_flag;
	uint16_t jump;
	uint32_t header;
	uint16_t version;
	uint32_t realmode_swtch;
	uint16_t start_sys_seg;
	uint16_t kernel_version;
	uint8_t type_of_loader;
	uint8_t loadflags;
	uint16_t setup_move_size;
	uint32_t code32_start;
	uint32_t ramdisk_image;
	uint32_t ramdisk_size;
	uint32_t bootsect_kludge;
	uint16_t heap_end_ptr;
	uint8_t ext_loader_ver;
	uint8_t ext_loader_type;
	uint32_t cmd_line_ptr;
	uint32_t initrd_addr_max;
	uint32_t kernel_alignment;
	uint8_t relocatable_kernel;
	uint8_t min_alignment;
	uint16_t xloadflags;
	uint32_t cmdline_size;
	uint32_t hardware_subarch;
	uint64_t hardware_subarch_data;
	uint32_t payload_offset;
	uint32_t payload_length;
	uint64_t setup_data;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t handover_offset;
	uint32_t kernel_info_offset;
} __attribute__((packed));

struct boot_params {
	uint8_t screen_info[0x40];
	uint8_t apm_bios_info[0x14];
	uint8_t pad1[0x4];
	uint64_t tboot_addr;
	uint8_t ist_info[0x10];
	uint64_t acpi_rsdp_addr;
	uint8_t pad2[0x8];
	uint8_t hd_info[0x20];
	uint8_t sys_desc_table[0x10];
	uint8_t olpc_ofw_header[0x10];
	uint32_t ext_ramdisk_image;
	uint32_t ext_ramdisk_size;
	uint32_t ext_cmd_line_ptr;
	uint8_t pad3[0x74];
	uint8_t edid_info[0x80];
	uint8_t efi_info[0x20];
	uint32_t alt_mem_k;
	uint32_t scratch;
	uint8_t e820_entries;
	uint8_t eddbuf_entries;
	uint8_t edd_mbr_sig_buf_entries;
	uint8_t kbd_status;
	uint8_t secure_boot;
	uint8_t pad4[2];
	uint8_t sentinel;
	uint8_t pad5[1];
	struct setup_header hdr;
	uint8_t pad6[0x290 - 0x1f1 - sizeof(struct setup_header)];
	uint32_t edd_mbr_sig_buffer[16];
	struct e820_entry e820_table[E820_MAX_ENTRIES];
	uint8_t pad7[0x1000 - 0xcd0];
} __attribute__((packed));

_Static_assert(offsetof(struct boot_params, ext_cmd_line_ptr) == 0x0c8, "zero page layout");
_Static_assert(offsetof(struct boot_params, e820_entries) == 0x1e8, "zero page layout");
_Static_assert(offsetof(struct boot_params, hdr) == 0x1f1, "zero page layout");
_Static_assert(offsetof(struct boot_params, hdr.cmd_line_ptr) == 0x228, "zero page layout");
_Static_assert(offsetof(struct boot_params, hdr.kernel_info_offset) == 0x268, "zero page layout");
_Static_assert(offsetof(struct boot_params, e820_table) == 0x2d0, "zero page layout");
_Static_assert(sizeof(struct boot_params) == 0x1000, "zero page layout");

/* PVH: the hvm_start_info the PVH entry gets in %ebx (version 1). */
#define PVH_START_MAGIC 0x336ec578

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

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "PVH start_info layout");

#endif
