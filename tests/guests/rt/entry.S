/*
 * Multiboot v1 entry for the test guests, and the exception stubs.
 *
 * Multiboot 0.6.96 section 3.2: at entry EAX = 0x2BADB002, EBX = the
 * physical address of the boot information, CS/DS/ES/FS/GS/SS are flat
 * 4 GiB segments, paging is off, but GDTR and IDTR may be garbage and
 * ESP is undefined.  So we load our own GDT and stack before any call.
 */

#define MB_MAGIC	0x1BADB002
#define MB_FLAGS	0x00000003	/* bit 0: page-align modules; bit 1: memory info */

#define SEL_CODE	0x08
#define SEL_DATA	0x10

	.section .multiboot, "a"
	.balign 4
	/* Section 3.1.1: magic, flags, checksum; bit 16 clear = ELF loading. */
	.long	MB_MAGIC
	.long	MB_FLAGS
	.long	-(MB_MAGIC + MB_FLAGS)

	.section .data
	.balign	4
	.globl	mb_entry_gdtr
mb_entry_gdtr:
	.word	0
	.long	0
	.word	0

	.section .text
	.globl	_start
	.type	_start, @function
_start:
	cli
	cld
	mov	%eax, %esi		/* magic */
	mov	%ebx, %ebp		/* struct mb_info * */

	/* The loader's GDTR, for guests that check what it left (mbtest);
	 * SGDT needs no valid segment beyond the flat DS the spec gives. */
	sgdt	mb_entry_gdtr
	lgdt	gdt_desc
	ljmp	$SEL_CODE, $1f
1:	mov	$SEL_DATA, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %fs
	mov	%ax, %gs
	mov	%ax, %ss

	/* Zero .bss ourselves: a loader that skips it must not change results. */
	mov	$__bss_start, %edi
	mov	$__bss_end, %ecx
	sub	%edi, %ecx
	xor	%eax, %eax
	rep stosb

	mov	$stack_top, %esp
	pushl	$0
	popfl				/* IF=0, DF=0, AC=0 */
	push	%ebp
	push	%esi
	call	guest_main
	/* guest_main must not return; if it does, report it as a failure. */
	pushl	$0x11
	call	guest_exit
2:	cli
	hlt
	jmp	2b
	.size	_start, . - _start

/*
 * Exception stubs.  SDM Vol. 3 6.13 / table 6-1: vectors 8, 10-14, 17,
 * 21, 29 and 30 push an error code; for the rest push a 0 so that every
 * frame has the same layout (struct guest_frame).
 */
.macro stub vec, has_error
exc_stub_\vec:
	.if	\has_error == 0
	pushl	$0
	.endif
	pushl	$\vec
	jmp	exc_common
	/* The stubs come in vector order, so their addresses form the table. */
	.pushsection .rodata.exc_table, "a"
	.long	exc_stub_\vec
	.popsection
.endm

	.pushsection .rodata.exc_table, "a"
	.balign 4
	.globl	exc_stub_table
exc_stub_table:
	.popsection

	stub 0, 0
	stub 1, 0
	stub 2, 0
	stub 3, 0
	stub 4, 0
	stub 5, 0
	stub 6, 0
	stub 7, 0
	stub 8, 1
	stub 9, 0
	stub 10, 1
	stub 11, 1
	stub 12, 1
	stub 13, 1
	stub 14, 1
	stub 15, 0
	stub 16, 0
	stub 17, 1
	stub 18, 0
	stub 19, 0
	stub 20, 0
	stub 21, 1
	stub 22, 0
	stub 23, 0
	stub 24, 0
	stub 25, 0
	stub 26, 0
	stub 27, 0
	stub 28, 0
	stub 29, 1
	stub 30, 1
	stub 31, 0

exc_common:
	pushal
	cld
	push	%esp			/* struct guest_frame * */
	call	guest_exception
	add	$4, %esp
	popal
	add	$8, %esp		/* vector, error code */
	iret

	.section .rodata
	.balign 8
/* Accessed bits preset so the CPU never writes to the GDT (SDM 3.4.5). */
gdt:
	.quad	0
	.quad	0x00CF9B000000FFFF	/* 0x08: code, 4 GiB, 32-bit, accessed */
	.quad	0x00CF93000000FFFF	/* 0x10: data, 4 GiB, accessed */
gdt_end:
gdt_desc:
	.word	gdt_end - gdt - 1
	.long	gdt

	.section .bss
	.balign 16
	.space	16384
stack_top:

	.section .note.GNU-stack, "", @progbits
