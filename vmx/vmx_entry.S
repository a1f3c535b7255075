/*
 * int vmx_enter(uint64_t *gprs, int launched)
 *
 * Enters the guest whose VMCS is current on this CPU, with VMLAUNCH the
 * first time and VMRESUME after (SDM Vol. 3C 26.1), and returns after the
 * VM exit: 0, or 1 for VMfailValid (read the VM-instruction error field),
 * 2 for VMfailInvalid (no current VMCS).
 *
 * The VMCS swaps RIP, RSP, RFLAGS, the control registers and the segment
 * state; the other GPRs are swapped here through the vcpu's gprs array
 * (x86 encoding order, at the offsets x86.h's GPR_OFF gives; the RSP
 * slot is left alone, the C side keeps it in step with GUEST_RSP).
 *
 * A VM exit lands on vmx_exit_stub (HOST_RIP) with RSP = HOST_RSP, which
 * is written here just before entry: it points at the saved gprs pointer,
 * above the host's callee-saved registers (28.5.1: RSP and RIP come from
 * the host-state area, every other GPR keeps the guest's value).
 */
#include "kernel/platform/x86.h"
#include "vmx/vmcs.h"

	.section .text
	.global vmx_enter
	.global vmx_exit_stub
vmx_enter:
	push	%rbp
	push	%rbx
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	push	%rdi			/* gprs: (%rsp) at the VM exit */

	mov	$VMCS_HOST_RSP, %eax
	vmwrite	%rsp, %rax
	jbe	3f

	mov	%esi, %eax		/* launched? */
	test	%eax, %eax		/* ZF survives the moves below */
	mov	GPR_OFF(RCX)(%rdi), %rcx
	mov	GPR_OFF(RDX)(%rdi), %rdx
	mov	GPR_OFF(RBX)(%rdi), %rbx
	mov	GPR_OFF(RBP)(%rdi), %rbp
	mov	GPR_OFF(RSI)(%rdi), %rsi
	mov	GPR_OFF(R8)(%rdi), %r8
	mov	GPR_OFF(R9)(%rdi), %r9
	mov	GPR_OFF(R10)(%rdi), %r10
	mov	GPR_OFF(R11)(%rdi), %r11
	mov	GPR_OFF(R12)(%rdi), %r12
	mov	GPR_OFF(R13)(%rdi), %r13
	mov	GPR_OFF(R14)(%rdi), %r14
	mov	GPR_OFF(R15)(%rdi), %r15
	mov	GPR_OFF(RAX)(%rdi), %rax
	mov	GPR_OFF(RDI)(%rdi), %rdi
	jz	1f
	vmresume
	jmp	2f
1:	vmlaunch
2:	/* Only reached when the entry failed: CF (invalid) or ZF (valid). */
	mov	$2, %eax
	jc	4f
	mov	$1, %eax
	jmp	4f
3:	mov	$2, %eax
	jmp	4f

vmx_exit_stub:
	push	%rdi			/* guest rdi */
	mov	8(%rsp), %rdi		/* gprs */
	mov	%rax, GPR_OFF(RAX)(%rdi)
	mov	%rcx, GPR_OFF(RCX)(%rdi)
	mov	%rdx, GPR_OFF(RDX)(%rdi)
	mov	%rbx, GPR_OFF(RBX)(%rdi)
	mov	%rbp, GPR_OFF(RBP)(%rdi)
	mov	%rsi, GPR_OFF(RSI)(%rdi)
	mov	%r8, GPR_OFF(R8)(%rdi)
	mov	%r9, GPR_OFF(R9)(%rdi)
	mov	%r10, GPR_OFF(R10)(%rdi)
	mov	%r11, GPR_OFF(R11)(%rdi)
	mov	%r12, GPR_OFF(R12)(%rdi)
	mov	%r13, GPR_OFF(R13)(%rdi)
	mov	%r14, GPR_OFF(R14)(%rdi)
	mov	%r15, GPR_OFF(R15)(%rdi)
	pop	%rax
	mov	%rax, GPR_OFF(RDI)(%rdi)
	xor	%eax, %eax

4:	pop	%rdi
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbx
	pop	%rbp
	ret
