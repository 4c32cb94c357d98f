/*
 * Fixed layout of the test guest, shared by the linker script, the assembly
 * and the C code. The descriptor tables sit at fixed addresses so that the
 * assembler can compute every GDT, IDT and TSS field as a constant: ring-0 code
 * is emulated at ~1 us per instruction on PVM hosts, so the guest spends no
 * ring-0 instructions building tables at boot.
 */
#ifndef SNAPGUEST_LAYOUT_H
#define SNAPGUEST_LAYOUT_H

#define GUEST_LOAD_ADDR	 0x100000 /* linked at 1 MiB */
#define GUEST_STUBS_ADDR 0x101000 /* 256 interrupt stubs, 16 bytes each */
#define GUEST_IDT_ADDR	 0x102000
#define GUEST_GDT_ADDR	 0x103000
#define GUEST_TSS_ADDR	 0x104000 /* MAX_CPUS TSSs, GUEST_TSS_STRIDE apart */
#define GUEST_PT_ADDR	 0x106000 /* PML4, PDPT, 4 PDs: identity map of 4 GiB */
#define GUEST_TEXT_ADDR	 0x10c000

#define GUEST_MAX_CPUS	 16
#define GUEST_TSS_STRIDE 512
#define GUEST_STUB_SIZE	 16

/* GDT selectors. */
#define SEL_KERNEL_CODE 0x08
#define SEL_KERNEL_DATA 0x10
#define SEL_USER_DATA	0x1b /* 0x18 | RPL 3 */
#define SEL_USER_CODE	0x23 /* 0x20 | RPL 3 */
#define SEL_TSS0	0x28 /* 16-byte TSS descriptors follow, one per CPU */

/* Interrupt vectors. */
#define VECTOR_UART	0x40
#define VECTOR_WAKE	0x41 /* inter-processor "work is waiting" */
#define VECTOR_VIRTIO	0x50 /* + the virtio-mmio slot number */
#define VECTOR_SPURIOUS 0xff

/* AP start-up: the real-mode trampoline is copied here (SIPI vector 0x08). */
#define GUEST_TRAMPOLINE_ADDR 0x8000

/* Guest calls from ring 3 to ring 0 (ud2 with %rax = number; see entry.S). */
#define CALL_WAIT      0x5347c001 /* halt with interrupts on until one arrives */
#define CALL_WRITE_ICR 0x5347c002 /* %rdi = destination APIC id, %rsi = ICR low word */

/* How ring 0 tells ring 3 which way it booted (rdi of user_main). */
#define BOOT_FROM_ELF64 1 /* rsi = Linux boot_params */
#define BOOT_FROM_PVH	2 /* rsi = PVH hvm_start_info */
#define BOOT_AP		3 /* rsi unused */

/* snapvm's control port (documented in README.md, "The test guest"). */
#define CTL_PORT_READY		  0x600
#define CTL_PORT_EXIT		  0x601
#define CTL_PORT_PANIC		  0x602
#define CTL_PORT_PANIC_RIP_LO	  0x604
#define CTL_PORT_PANIC_RIP_HI	  0x608
#define CTL_PORT_CONSOLE_BATCHING 0x60c
#define CTL_PORT_GENERATION	  0x610 /* four 32-bit words */

#define COM1_PORT 0x3f8

#endif
