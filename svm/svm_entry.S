/*
 * int svm_enter(uint64_t vmcb_pa, uint64_t host_save_pa, uint64_t *gprs)
 *
 * Called with GIF clear (CLGI).  VMRUN itself swaps RAX, RSP, RIP, RFLAGS,
 * the control registers and segment selectors (APM Vol. 2 15.5.1); the
 * hidden state it leaves alone (FS/GS/TR/LDTR bases, KernelGSbase, the
 * SYSCALL and SYSENTER MSRs) is swapped with VMSAVE/VMLOAD around it, and
 * the remaining GPRs are swapped here through the vcpu's gprs array
 * (x86 encoding order, at the offsets x86.h's GPR_OFF gives).
 */
#include "kernel/platform/x86.h"

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
	mov	GPR_OFF(RCX)(%r15), %rcx
	mov	GPR_OFF(RBX)(%r15), %rbx
	mov	GPR_OFF(RBP)(%r15), %rbp
	mov	GPR_OFF(RSI)(%r15), %rsi
	mov	GPR_OFF(RDI)(%r15), %rdi
	mov	GPR_OFF(R8)(%r15), %r8
	mov	GPR_OFF(R9)(%r15), %r9
	mov	GPR_OFF(R10)(%r15), %r10
	mov	GPR_OFF(R11)(%r15), %r11
	mov	GPR_OFF(R12)(%r15), %r12
	mov	GPR_OFF(R13)(%r15), %r13
	mov	GPR_OFF(R14)(%r15), %r14
	mov	GPR_OFF(RDX)(%r15), %rdx
	mov	GPR_OFF(R15)(%r15), %r15

	vmload
	vmrun
	vmsave				/* RAX is the guest VMCB again */

	push	%rdx
	mov	16(%rsp), %rdx		/* gprs */
	mov	%rcx, GPR_OFF(RCX)(%rdx)
	mov	%rbx, GPR_OFF(RBX)(%rdx)
	mov	%rbp, GPR_OFF(RBP)(%rdx)
	mov	%rsi, GPR_OFF(RSI)(%rdx)
	mov	%rdi, GPR_OFF(RDI)(%rdx)
	mov	%r8, GPR_OFF(R8)(%rdx)
	mov	%r9, GPR_OFF(R9)(%rdx)
	mov	%r10, GPR_OFF(R10)(%rdx)
	mov	%r11, GPR_OFF(R11)(%rdx)
	mov	%r12, GPR_OFF(R12)(%rdx)
	mov	%r13, GPR_OFF(R13)(%rdx)
	mov	%r14, GPR_OFF(R14)(%rdx)
	mov	%r15, GPR_OFF(R15)(%rdx)
	pop	%rax
	mov	%rax, GPR_OFF(RDX)(%rdx)

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
