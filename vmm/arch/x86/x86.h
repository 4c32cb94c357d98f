/* x86 boot: loaders, boot structures and initial vCPU state (private to vmm/). */
#ifndef SNAPVM_X86_H
#define SNAPVM_X86_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "vmm/memory.h"
#include "vmm/arch/x86/bootparams.h"

/* Where snapvm puts its boot structures in guest-physical memory. */
#define X86_GDT_ADDR	     0x500
#define X86_IDT_ADDR	     0x520
#define X86_PVH_INFO_ADDR    0x6000
#define X86_PVH_MEMMAP_ADDR  0x6040
#define X86_ZERO_PAGE_ADDR   0x7000
#define X86_PAGE_TABLES_ADDR 0x9000 /* PML4, PDPT, 4 PDs: identity map of 4 GiB */
#define X86_PAGE_TABLES_SIZE (6 * 4096)
#define X86_CMDLINE_ADDR     0x20000
#define X86_MPTABLE_ADDR     0x9fc00 /* the last KiB of base memory, reserved in e820 */
#define X86_BASE_MEMORY_END  0xa0000
#define X86_KERNEL_MIN_ADDR  0x100000 /* nothing may be loaded below 1 MiB */

/* Boot GDT selectors (the Linux boot protocol's __BOOT_CS and __BOOT_DS for 64-bit). */
#define X86_SEL_CODE32 0x08
#define X86_SEL_CODE64 0x10
#define X86_SEL_DATA   0x18

#define X86_IOAPIC_ADDR 0xfec00000
#define X86_LAPIC_ADDR	0xfee00000

struct elf_image {
	uint64_t entry64;	       /* e_entry */
	bool has_pvh;		       /* the file carries XEN_ELFNOTE_PHYS32_ENTRY */
	uint64_t pvh_entry;	       /* 32-bit entry from that note */
	uint64_t load_start, load_end; /* guest-physical range the segments cover */
};

/* True if the file starts like an ELF file. */
bool elf_is_elf(const uint8_t *file, size_t size);
/*
 * Checks an ELF64 x86-64 executable and copies its PT_LOAD segments into guest
 * RAM; 0, or -EINVAL with a one-line reason in error.
 */
int elf_load(const uint8_t *file, size_t size, const struct guest_memory *mem,
	     struct elf_image *image, char *error, size_t error_size);

/* Fills an e820 map for the memory layout; returns the number of entries. */
unsigned x86_e820_build(const struct guest_memory *mem, struct e820_entry *table, unsigned max);
/* Copies the command line to X86_CMDLINE_ADDR; -EINVAL if it is too long. */
int x86_cmdline_write(const struct guest_memory *mem, const char *cmdline, size_t max_size,
		      char *error, size_t error_size);
/* Writes boot_params for the 64-bit entry of an ELF kernel (Linux 64-bit boot protocol). */
int x86_zero_page_write(const struct guest_memory *mem, uint64_t cmdline_gpa);
/* Writes a PVH hvm_start_info with the memory map and command line. */
int x86_pvh_start_info_write(const struct guest_memory *mem, uint64_t cmdline_gpa);
/* Writes an MP table (Intel MP spec 1.4) describing cpus processors and the I/O APIC. */
int x86_mptable_write(const struct guest_memory *mem, unsigned cpus);
/* Writes the boot GDT and the identity-mapping page tables. */
int x86_boot_tables_write(const struct guest_memory *mem);
/* Special registers for entering in long mode (64-bit entry). */
void x86_sregs_long_mode(struct kvm_sregs *sregs);
/* Special registers for the PVH entry: flat 32-bit protected mode, paging off. */
void x86_sregs_pvh(struct kvm_sregs *sregs);

/* KVM_GET_SUPPORTED_CPUID, allocated; NULL on failure. */
struct kvm_cpuid2 *x86_cpuid_supported(int kvm_fd);
/* Adjusts a copy of the supported CPUID for vCPU `index` of `count`. */
void x86_cpuid_for_vcpu(struct kvm_cpuid2 *cpuid, unsigned index, unsigned count);

#endif
