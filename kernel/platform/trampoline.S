/*
 * AP start-up trampoline (SDM Vol. 3A 9.4.4 and 10.8): copied to a page
 * below 1 MiB, entered by SIPI in real mode at CS = page >> 4, IP = 0.
 * It climbs to protected mode, then to long mode with the kernel's CR3
 * (below 4 GiB, loaded from 32-bit code), and jumps to ap_entry(percpu)
 * on the stack the boot CPU put in the parameter block.  Everything is
 * addressed relative to the copy; smp.c patches the absolute addresses.
 */
#define OFF(x)	((x) - tramp_start)

	.section .rodata
	.balign 16
	.global tramp_start, tramp_end
	.global tramp_gdt_ptr, tramp_pm_jump, tramp_lm_jump
	.global tramp_cr3, tramp_stack, tramp_percpu, tramp_entry
	.code16
tramp_start:
	cli
	cld
	mov	%cs, %ax
	mov	%ax, %ds
	xor	%ebx, %ebx
	mov	%cs, %bx
	shl	$4, %ebx			/* linear base of this copy */
	lgdtl	OFF(tramp_gdt_ptr)
	mov	%cr0, %eax
	or	$1, %eax
	mov	%eax, %cr0
	ljmpl	*OFF(tramp_pm_jump)

	.code32
tramp_pm32:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	%cr4, %eax
	or	$0x620, %eax			/* PAE | OSFXSR | OSXMMEXCPT */
	mov	%eax, %cr4
	mov	OFF(tramp_cr3)(%ebx), %eax
	mov	%eax, %cr3
	mov	$0xc0000080, %ecx
	rdmsr
	or	$0x900, %eax			/* LME | NXE */
	wrmsr
	mov	%cr0, %eax
	or	$0x80010001, %eax		/* PG | WP | PE */
	mov	%eax, %cr0
	ljmpl	*OFF(tramp_lm_jump)(%ebx)

	.code64
tramp_lm64:
	mov	OFF(tramp_stack)(%rbx), %rsp
	mov	OFF(tramp_percpu)(%rbx), %rdi
	mov	OFF(tramp_entry)(%rbx), %rax
	xor	%ebp, %ebp
	push	$0
	jmp	*%rax

	.balign 8
tramp_gdt:
	.quad	0
	.quad	0x00af9a000000ffff		/* 0x08: 64-bit code */
	.quad	0x00cf92000000ffff		/* 0x10: flat data */
	.quad	0x00cf9a000000ffff		/* 0x18: 32-bit code */
tramp_gdt_ptr:
	.word	4 * 8 - 1
	.long	0				/* patched: linear GDT */
	.balign 4
tramp_pm_jump:
	.long	0				/* patched: linear tramp_pm32 */
	.word	0x18
	.balign 4
tramp_lm_jump:
	.long	0				/* patched: linear tramp_lm64 */
	.word	0x08
	.balign 8
tramp_cr3:	.quad 0
tramp_stack:	.quad 0
tramp_percpu:	.quad 0
tramp_entry:	.quad 0
	.global tramp_pm32_off, tramp_lm64_off, tramp_gdt_off
tramp_end:
	.balign 8
tramp_pm32_off:	.quad OFF(tramp_pm32)
tramp_lm64_off:	.quad OFF(tramp_lm64)
tramp_gdt_off:	.quad OFF(tramp_gdt)
