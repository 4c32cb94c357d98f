/*
 * The test guest's ring-0 part: entry points, descriptor tables, interrupt
 * stubs and the guest-call handler. Everything else runs in ring 3 (main.c).
 *
 * Ring-0 code is emulated instruction by instruction on PVM hosts (~1 us
 * each, ../shared/docs/HOST.md), so this file does as little as it can at run
 * time: every table is a constant that the assembler computes from the fixed
 * addresses in layout.h, and boot is a few dozen instructions per CPU.
 */
#include "layout.h"

#define MSR_EFER 0xc0000080
#define MSR_APIC_BASE 0x1b
#define MSR_X2APIC_EOI 0x80b
#define MSR_X2APIC_SVR 0x80f
#define MSR_X2APIC_ICR 0x830
#define MSR_KVM_WALL_CLOCK_NEW 0x4b564d00
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define EFER_SCE 0x001
#define EFER_LME 0x100
#define CR0_PE_ET_PG 0x80000011
#define CR4_PAE 0x20
#define IOAPIC_BASE 0xfec00000
#define UART_IRQ 4
#define USER_STACK_SHIFT 16 /* 64 KiB ring-3 stack per CPU */
#define EXCEPTION_STACK_SIZE 4096
#define TSS_IOMAP_OFFSET 104
#define TSS_IOMAP_BYTES 256 /* ports 0-0x7ff; higher ports lie past the limit: denied */
#define TSS_LIMIT (TSS_IOMAP_OFFSET + TSS_IOMAP_BYTES)
/*
 * RFLAGS for ring 3: IF 0, because an interrupt taken in ring 3 kills a guest
 * on PVM hosts (HOST.md); IOPL 3, so that ring-3 port I/O needs no TSS check
 * wherever IOPL is honoured. The TSS's I/O bitmap below grants the same ports
 * for PVM, whose iretq drops IOPL 3. Both are needed: after a restore, KVM
 * hands back TR as a busy TSS (type 11), and QEMU's TCG (the nested
 * platform's CPU) looks at the bitmap only in an available TSS (type 9), so
 * there the bitmap alone would fault every `inb` with #GP.
 */
#define USER_RFLAGS 0x3002

/* --- PVH note: lets QEMU (and snapvm --boot pvh) find the 32-bit entry. --- */
	.section .note.pvh, "a"
	.p2align 2
	.long 4			/* name size: "Xen\0" */
	.long 4			/* descriptor size */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_entry

	.section .boot, "ax"
/*
 * PVH entry: 32-bit protected mode, paging off, %ebx = hvm_start_info.
 * Switch to long mode with the static page tables and join the common path.
 */
	.code32
	.globl pvh_entry
pvh_entry:
	lgdt gdt_descriptor
	mov $CR4_PAE, %eax
	mov %eax, %cr4
	mov $GUEST_PT_ADDR, %eax
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	rdmsr
	or $(EFER_LME | EFER_SCE), %eax
	wrmsr
	mov $CR0_PE_ET_PG, %eax
	mov %eax, %cr0
	mov %ebx, %esi
	mov $BOOT_FROM_PVH, %edi
	xor %edx, %edx
	ljmp $SEL_KERNEL_CODE, $common64

/*
 * 64-bit entry (snapvm's default, and the Linux 64-bit boot protocol):
 * long mode, snapvm's page tables and GDT, %rsi = boot_params.
 */
	.code64
	.globl entry64
entry64:
	lgdt gdt_descriptor(%rip)
	mov $GUEST_PT_ADDR, %eax
	mov %rax, %cr3
	mov $BOOT_FROM_ELF64, %edi
	xor %edx, %edx
	ljmpl *common64_far(%rip)	/* no stack yet: neither boot protocol gives one */

/* Application processors arrive here from the trampoline; %edx = CPU index. */
ap_entry64:
	mov $BOOT_AP, %edi

/* Common to every CPU: %edi = boot kind, %rsi = boot info, %edx = CPU index. */
common64:
	mov %edx, %r8d
	mov $SEL_KERNEL_DATA, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	lidt idt_descriptor
	mov %r8d, %eax
	shl $4, %eax
	add $SEL_TSS0, %eax
	ltr %ax
	/* local APIC in x2APIC mode, software-enabled, spurious vector 0xff */
	mov $MSR_APIC_BASE, %ecx
	rdmsr
	or $0xc00, %eax
	wrmsr
	mov $MSR_X2APIC_SVR, %ecx
	mov $(0x100 | VECTOR_SPURIOUS), %eax
	xor %edx, %edx
	wrmsr
	cmp $BOOT_AP, %edi
	je 1f
	/* BSP: mask both 8259s; route the UART's IOAPIC pin to VECTOR_UART on APIC 0, edge */
	mov $0xff, %al
	out %al, $0x21
	out %al, $0xa1
	mov $IOAPIC_BASE, %eax
	movl $(0x10 + 2 * UART_IRQ), (%rax)
	movl $VECTOR_UART, 0x10(%rax)
	movl $(0x11 + 2 * UART_IRQ), (%rax)
	movl $0, 0x10(%rax)
	/* KVM's paravirtual clock for the BSP, read by ring 3 (time.c) */
	mov $MSR_KVM_SYSTEM_TIME_NEW, %ecx
	mov $(kvm_clock + 1), %eax	/* bit 0: enabled */
	xor %edx, %edx
	wrmsr
	mov $MSR_KVM_WALL_CLOCK_NEW, %ecx
	mov $kvm_wall_clock, %eax
	wrmsr
1:	/* to ring 3: user_entry(boot kind, boot info, cpu) on this CPU's stack */
	mov %r8d, %edx
	lea 1(%rdx), %rax
	shl $USER_STACK_SHIFT, %rax
	add $user_stacks, %rax
	mov %rax, %rsp
	pushq $SEL_USER_DATA
	push %rax
	pushq $USER_RFLAGS
	pushq $SEL_USER_CODE
	pushq $user_entry
	iretq

	.p2align 3
gdt_descriptor:
	.word gdt_end - gdt - 1
	.quad GUEST_GDT_ADDR
idt_descriptor:
	.word 256 * 16 - 1
	.quad GUEST_IDT_ADDR
common64_far:
	.long common64
	.word SEL_KERNEL_CODE

/*
 * Real-mode AP start-up code. ring 3 copies it to GUEST_TRAMPOLINE_ADDR and
 * the BSP sends INIT + SIPI; it goes straight to long mode.
 */
	.section .rodata
	.globl trampoline_start, trampoline_end, trampoline_cpu
	.code16
trampoline_start:
	cli
	mov %cs, %ax
	mov %ax, %ds
	lgdtl trampoline_gdt - trampoline_start
	mov $CR4_PAE, %eax
	mov %eax, %cr4
	mov $GUEST_PT_ADDR, %eax
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	rdmsr
	or $(EFER_LME | EFER_SCE), %eax
	wrmsr
	mov trampoline_cpu - trampoline_start, %edx
	mov $CR0_PE_ET_PG, %eax
	mov %eax, %cr0
	ljmpl $SEL_KERNEL_CODE, $ap_entry64
	.p2align 3
trampoline_gdt:
	.word gdt_end - gdt - 1
	.long GUEST_GDT_ADDR
trampoline_cpu:
	.long 0
trampoline_end:
	.code64

/* --- Interrupt stubs, 16 bytes each at GUEST_STUBS_ADDR + 16 * vector. --- */
	.section .stubs, "ax"
	.set vector, 0
	.rept 256
	.org vector * GUEST_STUB_SIZE
	.if vector == 6
	jmp guest_call		/* #UD: ring 3's ud2 is how it calls ring 0 */
	.elseif vector < 32
	/* exceptions: push a dummy error code where the CPU pushes none */
	.if (vector != 8) && (vector != 10) && (vector != 11) && (vector != 12) && (vector != 13) && (vector != 14) && (vector != 17) && (vector != 21) && (vector != 29) && (vector != 30)
	pushq $0
	.endif
	pushq $vector
	jmp fatal_exception
	.elseif vector == VECTOR_SPURIOUS
	iretq
	.else
	movb $1, irq_seen + vector	/* tells ring 3 which device spoke (guest.h) */
	jmp irq_eoi
	.endif
	.set vector, vector + 1
	.endr

	.text
/* A device interrupt or IPI: acknowledge it; the woken code checks what came. */
irq_eoi:
	push %rax
	push %rcx
	push %rdx
	mov $MSR_X2APIC_EOI, %ecx
	xor %eax, %eax
	xor %edx, %edx
	wrmsr
	pop %rdx
	pop %rcx
	pop %rax
	iretq

/* Any CPU exception is a bug: report vector and RIP to snapvm, then stop. */
fatal_exception:
	mov 16(%rsp), %rax
	mov $CTL_PORT_PANIC_RIP_LO, %dx
	out %eax, %dx
	shr $32, %rax
	mov $CTL_PORT_PANIC_RIP_HI, %dx
	out %eax, %dx
	mov (%rsp), %rax
	mov $CTL_PORT_PANIC, %dx
	out %eax, %dx
1:	cli
	hlt
	jmp 1b

/*
 * Guest calls: ring 3 executes ud2 with %rax = call number. syscall does not
 * reach ring 0 on PVM hosts (its handler runs with the user's CS, so
 * privileged instructions fault there) and int N raises #UD, but exceptions
 * are delivered to ring 0 through the IDT on every host. So #UD is the gate;
 * a #UD with any other %rax is a real bug. Clobbers %rcx and %rdx.
 */
guest_call:
	cmp $CALL_WAIT, %rax
	jne 1f
	/* sti takes effect after hlt starts: an interrupt already pending ends the halt at once */
	sti
	hlt
	cli
	jmp 2f
1:	cmp $CALL_WRITE_ICR, %rax
	jne 3f
	mov $MSR_X2APIC_ICR, %ecx
	mov %esi, %eax
	mov %edi, %edx
	wrmsr
2:	addq $2, (%rsp)		/* return past the ud2 */
	iretq
3:	pushq $0
	pushq $6
	jmp fatal_exception

/* Ring-3 entry: align the stack as a call would, then run the C code. */
user_entry:
	and $-16, %rsp
	call user_main
	ud2

/* --- Descriptor tables, all constant. --- */
	.section .idt, "a"
	.set vector, 0
	.rept 256
	/* 64-bit interrupt gate, DPL 0, kernel CS, handler = stub of this vector */
	.set stub, GUEST_STUBS_ADDR + vector * GUEST_STUB_SIZE
	.quad (stub & 0xffff) | (SEL_KERNEL_CODE << 16) | (0x8e << 40) | (((stub >> 16) & 0xffff) << 48)
	.quad 0
	.set vector, vector + 1
	.endr

	.section .gdt, "a"
gdt:
	.quad 0
	.quad 0x00af9b000000ffff	/* 0x08 kernel code, 64-bit */
	.quad 0x00cf93000000ffff	/* 0x10 kernel data */
	.quad 0x00cff3000000ffff	/* 0x18 user data */
	.quad 0x00affb000000ffff	/* 0x20 user code, 64-bit */
	.set cpu, 0
	.rept GUEST_MAX_CPUS		/* 0x28 + 16 * cpu: available 64-bit TSS */
	.set base, GUEST_TSS_ADDR + cpu * GUEST_TSS_STRIDE
	.quad TSS_LIMIT | ((base & 0xffffff) << 16) | (0x89 << 40) | (((base >> 24) & 0xff) << 56)
	.quad 0
	.set cpu, cpu + 1
	.endr
gdt_end:

	.section .tss, "a"
	/*
	 * With a TSS loaded, PVM checks ring-3 port I/O against the TSS's I/O
	 * permission bitmap and ignores IOPL, so each TSS carries a bitmap that
	 * allows ports 0-0x7ff (the UART and snapvm's control port).
	 */
	.set cpu, 0
	.rept GUEST_MAX_CPUS
	.org cpu * GUEST_TSS_STRIDE
	.long 0
	.quad exception_stacks + (cpu + 1) * EXCEPTION_STACK_SIZE	/* rsp0 */
	.fill 88, 1, 0
	.word 0
	.word TSS_IOMAP_OFFSET
	.fill TSS_IOMAP_BYTES, 1, 0	/* 0 = allowed */
	.byte 0xff			/* the bitmap's terminator */
	.set cpu, cpu + 1
	.endr
	.org GUEST_MAX_CPUS * GUEST_TSS_STRIDE

	.section .pagetables, "a"
	/* PML4 -> one PDPT -> four page directories of 2 MiB pages: identity map of 4 GiB, user-accessible */
	.quad (GUEST_PT_ADDR + 0x1000) | 7
	.fill 511, 8, 0
	.quad (GUEST_PT_ADDR + 0x2000) | 7, (GUEST_PT_ADDR + 0x3000) | 7
	.quad (GUEST_PT_ADDR + 0x4000) | 7, (GUEST_PT_ADDR + 0x5000) | 7
	.fill 508, 8, 0
	.set page, 0
	.rept 2048
	.quad (page << 21) | 0x87
	.set page, page + 1
	.endr

	.bss			/* in the file, with .data (GUEST_BUFFER, guest.h) */
	.globl irq_seen
irq_seen:
	.skip 256

	.section .bss.stacks, "aw", @nobits
	.p2align 12
	.globl user_stacks
user_stacks:
	.skip GUEST_MAX_CPUS << USER_STACK_SHIFT
exception_stacks:
	.skip GUEST_MAX_CPUS * EXCEPTION_STACK_SIZE

	.section .note.GNU-stack, "", @progbits
