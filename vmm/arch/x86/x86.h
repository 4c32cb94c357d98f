/* x86 boot: loaders, boot structures and initial vCPU state (private to vmm/). */
#ifndef SNAPVM_X86_H
#define SNAPVM_X86_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "vmm/memory.h"
#include "vmm/vmm.h"

struct virtio_mmio_slots;
#include "vmm/arch/x86/bootparams.h"

/* Where snapvm puts its boot structures in guest-physical memory. */
#define X86_GDT_ADDR	     0x500
#define X86_IDT_ADDR	     0x520
#define X86_PVH_INFO_ADDR    0x6000
#define X86_PVH_MEMMAP_ADDR  0x6040
#define X86_PVH_MODLIST_ADDR 0x6fc0 /* one hvm_modlist_entry: the initrd */
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
	bool is64;		       /* ELFCLASS64 (x86-64), else ELFCLASS32 (i386) */
	uint64_t entry;		       /* e_entry: 64-bit code for ELF64, 32-bit for ELF32 */
	bool has_pvh;		       /* the file carries XEN_ELFNOTE_PHYS32_ENTRY */
	uint64_t pvh_entry;	       /* 32-bit entry from that note */
	bool is_linux;		       /* the file carries a note named "Linux" (a vmlinux) */
	uint64_t load_start, load_end; /* guest-physical range the segments cover */
};

/* A bzImage's setup header, checked, and where its parts lie in the file. */
struct bzimage_header {
	struct setup_header hdr; /* as in the file; fields past the header's end are zero */
	uint64_t setup_size;	 /* bytes of real-mode code before the protected-mode kernel */
	uint64_t kernel_size;	 /* bytes of protected-mode kernel */
};

/* A kernel in guest RAM: how to enter it and what its boot data must respect. */
struct x86_kernel {
	bool linux_kernel; /* a bzImage, or an ELF with a "Linux" note */
	bool pvh;	   /* enter at the PVH entry (32-bit), else at the 64-bit entry */
	uint64_t entry;
	uint64_t end;		  /* first byte past what the kernel occupies while it boots */
	uint64_t initrd_addr_max; /* highest byte an initrd may occupy */
	uint64_t cmdline_max;	  /* bytes of command line it reads, without the NUL */
	bool has_header;	  /* a bzImage: its setup header goes into boot_params */
	struct setup_header header;
	uint64_t load_addr; /* a bzImage's protected-mode kernel (code32_start) */
};

/* What boot_params or hvm_start_info tell the kernel. */
struct x86_boot_info {
	uint64_t cmdline_gpa;
	uint64_t initrd_gpa;
	uint64_t initrd_size;		   /* 0: no initrd */
	const struct setup_header *header; /* copied into boot_params; NULL: none */
	uint64_t kernel_gpa;		   /* code32_start, with a header */
	uint64_t rsdp_gpa;		   /* the ACPI RSDP; 0: no ACPI tables */
};

/* True if the file starts like an ELF file. */
bool elf_is_elf(const uint8_t *file, size_t size);
/* True if the file is a valid ELF executable for x86 with a note named "Linux"; prints nothing. */
bool elf_is_linux(const uint8_t *file, size_t size);
/*
 * Checks an ELF64 x86-64 or ELF32 i386 executable and copies its PT_LOAD segments into guest
 * RAM; 0, or -EINVAL (logged).
 */
int elf_load(const uint8_t *file, size_t size, const struct guest_memory *mem,
	     struct elf_image *image);

/*
 * Loads a kernel file (ELF64 or bzImage, told apart by their magic) into guest
 * RAM and picks its entry for the boot mode; 0, or -EINVAL (logged).
 */
int x86_kernel_load(const uint8_t *file, size_t size, enum vmm_boot_mode boot,
		    const struct guest_memory *mem, struct x86_kernel *kernel);
/*
 * Picks the highest page-aligned place for an initrd of size bytes in low RAM,
 * above kernel_end and ending at or below addr_max (its highest usable byte).
 * 0, or -ENOSPC if it does not fit.
 */
int x86_initrd_place(const struct guest_memory *mem, uint64_t kernel_end, uint64_t addr_max,
		     uint64_t size, uint64_t *gpa);
/*
 * Writes the command line, the boot tables, the MP table and the kernel's
 * boot_params or PVH start_info (which point to the ACPI RSDP at rsdp_gpa
 * unless it is 0); 0, or -EINVAL (logged).
 */
int x86_boot_data_write(const struct guest_memory *mem, const struct x86_kernel *kernel,
			const char *cmdline, uint64_t initrd_gpa, uint64_t initrd_size,
			unsigned cpus, const struct virtio_mmio_slots *virtio, uint64_t rsdp_gpa);

/* True if the file starts like a bzImage ("HdrS" in its setup header). */
bool bzimage_is_bzimage(const uint8_t *file, size_t size);
/* Checks a bzImage's setup header (protocol 2.12+, 64-bit entry); 0 or -EINVAL (logged). */
int bzimage_header_parse(const uint8_t *file, size_t size, struct bzimage_header *header);
/* Copies the protected-mode kernel where its header allows and describes it; 0 or -EINVAL (logged).
 */
int bzimage_load(const uint8_t *file, const struct bzimage_header *header,
		 const struct guest_memory *mem, struct x86_kernel *kernel);

/*
 * Fills an e820 map for the memory layout, with the BIOS area (ACPI tables,
 * VMGenID) reserved if acpi; returns the number of entries.
 */
unsigned x86_e820_build(const struct guest_memory *mem, struct e820_entry *table, unsigned max,
			bool acpi);
/* Copies the command line to X86_CMDLINE_ADDR; 0 or -EINVAL (logged) if it is too long. */
int x86_cmdline_write(const struct guest_memory *mem, const char *cmdline, size_t max_size);
/* Writes boot_params for a 64-bit entry (Linux 64-bit boot protocol). */
int x86_zero_page_write(const struct guest_memory *mem, const struct x86_boot_info *info);
/* Writes a PVH hvm_start_info with the memory map, command line and initrd module. */
int x86_pvh_start_info_write(const struct guest_memory *mem, const struct x86_boot_info *info);
/*
 * Writes an MP table (Intel MP spec 1.4) describing cpus processors and the
 * I/O APIC, with the virtio-mmio devices in its OEM table (mptable.c).
 */
int x86_mptable_write(const struct guest_memory *mem, unsigned cpus,
		      const struct virtio_mmio_slots *virtio);
/* Writes the boot GDT and the identity-mapping page tables. */
int x86_boot_tables_write(const struct guest_memory *mem);
/* Special registers for entering in long mode (64-bit entry). */
void x86_sregs_long_mode(struct kvm_sregs *sregs);
/* Special registers for the PVH entry: flat 32-bit protected mode, paging off. */
void x86_sregs_pvh(struct kvm_sregs *sregs);

/* KVM_GET_SUPPORTED_CPUID, allocated (from the cache when it holds this KVM's); NULL on failure. */
struct kvm_cpuid2 *x86_cpuid_supported(int kvm_fd);

/* What names one load of the KVM module (cpuid.c has why). */
struct x86_cpuid_cache_key {
	char boot_id[40];
	uint64_t kvm_ino;
	int64_t kvm_ctime_sec;
	int64_t kvm_ctime_nsec;
};
/* This host's key, from the /dev/kvm fd; 0 or -errno. */
int x86_cpuid_cache_key(int kvm_fd, struct x86_cpuid_cache_key *key);
/* The cached table if the file holds one, whole, for this key; else NULL. */
struct kvm_cpuid2 *x86_cpuid_cache_load(const char *path, const struct x86_cpuid_cache_key *key);
/* Replaces the cache file atomically; 0 or -errno. */
int x86_cpuid_cache_store(const char *path, const struct x86_cpuid_cache_key *key,
			  const struct kvm_cpuid2 *cpuid);
/* Adjusts a copy of the supported CPUID for vCPU `index` of `count`. */
void x86_cpuid_for_vcpu(struct kvm_cpuid2 *cpuid, unsigned index, unsigned count);

#endif
