/*
 * int svm_enter(uint64_t vmcb_pa, uint64_t host_save_pa, uint64_t *gprs)
 *
 * Called with GIF clear (CLGI).  VMRUN itself swaps RAX, RSP, RIP, RFLAGS,
 * the control registers and segment selectors (APM Vol. 2 15.5.1); the
 * hidden state it leaves alone (FS/GS/TR/LDTR bases, KernelGSbase, the
 * SYSCALL and SYSENTER MSRs) is swapped with VMSAVE/VMLOAD around it, and
 * the remaining GPRs are swapped here through the vcpu's gprs array
 * (x86 encoding order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15).
 */
	.section .text
	.global svm_enter
svm_enter:
	push	%rbp
	push	%rbx
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	push	%rdx			/* gprs */
	push	%rsi			/* host save area */

	mov	%rsi, %rax
	vmsave				/* host FS/GS/TR/LDTR/... */
	mov	%rdi, %rax

	mov	%rdx, %r15
	mov	1*8(%r15), %rcx
	mov	3*8(%r15), %rbx
	mov	5*8(%r15), %rbp
	mov	6*8(%r15), %rsi
	mov	7*8(%r15), %rdi
	mov	8*8(%r15), %r8
	mov	9*8(%r15), %r9
	mov	10*8(%r15), %r10
	mov	11*8(%r15), %r11
	mov	12*8(%r15), %r12
	mov	13*8(%r15), %r13
	mov	14*8(%r15), %r14
	mov	2*8(%r15), %rdx
	mov	15*8(%r15), %r15

	vmload
	vmrun
	vmsave				/* RAX is the guest VMCB again */

	push	%rdx
	mov	16(%rsp), %rdx		/* gprs */
	mov	%rcx, 1*8(%rdx)
	mov	%rbx, 3*8(%rdx)
	mov	%rbp, 5*8(%rdx)
	mov	%rsi, 6*8(%rdx)
	mov	%rdi, 7*8(%rdx)
	mov	%r8, 8*8(%rdx)
	mov	%r9, 9*8(%rdx)
	mov	%r10, 10*8(%rdx)
	mov	%r11, 11*8(%rdx)
	mov	%r12, 12*8(%rdx)
	mov	%r13, 13*8(%rdx)
	mov	%r14, 14*8(%rdx)
	mov	%r15, 15*8(%rdx)
	pop	%rax
	mov	%rax, 2*8(%rdx)

	pop	%rax			/* host save area */
	vmload				/* our TR (IST stacks) and GS base */
	pop	%rdx
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbx
	pop	%rbp
	xor	%eax, %eax
	ret
