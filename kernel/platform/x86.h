/*
 * Architectural constants of x86-64, one definition each: control
 * register and EFER bits, RFLAGS bits, exception vectors, MSR numbers and
 * the general-purpose register order the VM entry stubs use.  Plain
 * numbers only, so the assembly files include it too.
 */
#ifndef TERN_X86_H
#define TERN_X86_H

#ifdef __ASSEMBLER__
#define X86_BIT(n)	(1 << (n))
#else
#define X86_BIT(n)	(1ul << (n))
#endif

/* CR0 (SDM Vol. 3A 2.5). */
#define CR0_PE			X86_BIT(0)
#define CR0_MP			X86_BIT(1)
#define CR0_EM			X86_BIT(2)
#define CR0_TS			X86_BIT(3)
#define CR0_ET			X86_BIT(4)
#define CR0_NE			X86_BIT(5)
#define CR0_WP			X86_BIT(16)
#define CR0_NW			X86_BIT(29)
#define CR0_CD			X86_BIT(30)
#define CR0_PG			X86_BIT(31)

/* CR4 (SDM Vol. 3A 2.5). */
#define CR4_PSE			X86_BIT(4)
#define CR4_PAE			X86_BIT(5)
#define CR4_PGE			X86_BIT(7)
#define CR4_OSFXSR		X86_BIT(9)
#define CR4_OSXMMEXCPT		X86_BIT(10)
#define CR4_VMXE		X86_BIT(13)
#define CR4_OSXSAVE		X86_BIT(18)

/* IA32_EFER (SDM Vol. 3A 2.2.1; SVME: APM Vol. 2 3.1.7). */
#define EFER_SCE		X86_BIT(0)
#define EFER_LME		X86_BIT(8)
#define EFER_LMA		X86_BIT(10)
#define EFER_NXE		X86_BIT(11)
#define EFER_SVME		X86_BIT(12)

/* RFLAGS (SDM Vol. 1 3.4.3). */
#define RFLAGS_TF		X86_BIT(8)
#define RFLAGS_IF		X86_BIT(9)
#define RFLAGS_RF		X86_BIT(16)

/* Page-table entries, 4-level paging (SDM Vol. 3A 4.5, tables 4-15 to 4-20). */
#define PTE_P			X86_BIT(0)
#define PTE_W			X86_BIT(1)
#define PTE_PWT			X86_BIT(3)
#define PTE_PCD			X86_BIT(4)
#define PTE_PS			X86_BIT(7)
#define PTE_G			X86_BIT(8)
#ifndef __ASSEMBLER__
#define PTE_NX			(1ull << 63)
#define PTE_ADDR		0x000ffffffffff000ull	/* bits 51:12 */
#endif

/* Exception vectors (SDM Vol. 3A 6.3.1 table 6-1). */
#define EXC_DB			1
#define EXC_UD			6
#define EXC_GP			13
#define EXC_AC			17
#define EXC_MC			18

/* MSRs more than one file uses (SDM Vol. 4 table 2-2). */
#define MSR_APIC_BASE		0x0000001b
#define MSR_MCG_CAP		0x00000179
#define MSR_MCG_STATUS		0x0000017a
#define MSR_FEATURE_CONTROL	0x0000003a
#define MSR_SYSENTER_CS		0x00000174
#define MSR_SYSENTER_ESP	0x00000175
#define MSR_SYSENTER_EIP	0x00000176
#define MSR_PAT			0x00000277
#define MSR_EFER		0xc0000080
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SFMASK		0xc0000084
#define MSR_FS_BASE		0xc0000100
#define MSR_GS_BASE		0xc0000101
#define MSR_KERNEL_GS_BASE	0xc0000102

/*
 * General-purpose registers in the x86 encoding order (SDM Vol. 2A 2.1.5,
 * the order lib/x86_decode.h uses): indexes into struct vcpu_state.gpr,
 * and GPR_OFF(R) the byte offset of register R in that array for the
 * entry stubs (vm.h checks it against the C layout).
 */
#define GPR_RAX		0
#define GPR_RCX		1
#define GPR_RDX		2
#define GPR_RBX		3
#define GPR_RSP		4
#define GPR_RBP		5
#define GPR_RSI		6
#define GPR_RDI		7
#define GPR_R8		8
#define GPR_R9		9
#define GPR_R10		10
#define GPR_R11		11
#define GPR_R12		12
#define GPR_R13		13
#define GPR_R14		14
#define GPR_R15		15
#define GPR_COUNT	16
#define GPR_SIZE	8
#define GPR_OFF(r)	(GPR_##r * GPR_SIZE)

#endif
