/*
 * Exception and interrupt entry stubs.  Every vector pushes a uniform
 * struct trap_frame (an error code of 0 where the CPU pushes none, SDM
 * Vol. 3A 6.13) and calls trap_dispatch().  The kernel itself uses SSE
 * (Newlib and GCC's memcpy), so the interrupted context's FPU/SSE state is
 * saved around the C handler.
 */
	.section .text

.macro ISR_NOERR v
	.balign 16
isr_\v:
	push	$0
	push	$\v
	jmp	isr_common
.endm

.macro ISR_ERR v
	.balign 16
isr_\v:
	push	$\v
	jmp	isr_common
.endm

/* Vectors whose exceptions push an error code: #DF #TS #NP #SS #GP #PF #AC #CP #VC #SX */
.altmacro
.macro ISR_ANY v
	.if (\v == 8) || (\v >= 10 && \v <= 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
	ISR_ERR %\v
	.else
	ISR_NOERR %\v
	.endif
.endm

	.set i, 0
	.rept 256
	ISR_ANY %i
	.set i, i + 1
	.endr

isr_common:
	push	%rax
	push	%rbx
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%rbp
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	cld
	mov	%rsp, %rdi
	mov	%rsp, %rbx
	sub	$512, %rsp
	and	$-64, %rsp
	fxsave64 (%rsp)
	call	trap_dispatch
	fxrstor64 (%rsp)
	mov	%rbx, %rsp
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rbp
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rbx
	pop	%rax
	add	$16, %rsp
	iretq

	.section .rodata
	.balign 8
	.global isr_table
isr_table:
.macro ISR_PTR v
	.quad	isr_\v
.endm
	.set i, 0
	.rept 256
	ISR_PTR %i
	.set i, i + 1
	.endr
