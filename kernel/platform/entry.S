/*
 * Kernel entry from the UEFI loader: long mode, paging on with the loader's
 * tables, interrupts off, RDI = physical address of struct boot_info.
 * The firmware's stack and GDT are not ours to keep, so switch stacks first.
 */
	.section .text.entry, "ax"
	.global _start
_start:
	cli
	lea	boot_stack_top(%rip), %rsp
	xor	%ebp, %ebp			/* ends the frame-pointer chain */
	call	kmain
1:	cli
	hlt
	jmp	1b

	.section .bss
	.balign 4096
boot_stack:
	/* The console CPU's stack: JSON replies are captured on it (16 KiB,
	 * lib/cmd.h) while a command may pump lwIP and a TLS handshake. */
	.skip	131072
boot_stack_top:
