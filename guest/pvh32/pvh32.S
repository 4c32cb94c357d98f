/*
 * A 32-bit ELF kernel with a PVH note, as QEMU boots them: entered in flat
 * 32-bit protected mode, it prints "ELF32 PVH OK" on COM1 and exits with
 * status 7 through snapvm's control port (under QEMU, the write goes nowhere
 * and it halts).
 */
	.section .note.pvh, "a"
	.p2align 2
	.long 4			/* name size: "Xen\0" */
	.long 4			/* descriptor size */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_start

	.text
	.code32
	.globl pvh_start
pvh_start:
	mov $message, %esi
	mov $0x3f8, %dx
1:	lodsb
	test %al, %al
	jz 2f
	out %al, %dx
	jmp 1b
2:	mov $0x601, %dx		/* snapvm's control port: exit with this status */
	mov $7, %al
	out %al, %dx
3:	hlt
	jmp 3b

	.section .rodata
message:
	.asciz "ELF32 PVH OK\n"
