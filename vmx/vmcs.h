/*
 * VMCS field encodings, control bits, exit reasons and the VMX capability
 * MSRs: Intel SDM Vol. 3C appendix A (capability MSRs), appendix B (field
 * encodings), appendix C (basic exit reasons) and chapter 25 (controls).
 * The VMX instructions themselves are thin inline wrappers (C only: the
 * field encodings are used by vmx_entry.S too).
 */
#ifndef TERN_VMX_VMCS_H
#define TERN_VMX_VMCS_H

#include "kernel/platform/x86.h"
#ifndef __ASSEMBLER__
#include <stdbool.h>
#include <stdint.h>
#endif

/* Capability MSRs, SDM Vol. 3C appendix A. */
#define FC_LOCK				(1ull << 0)
#define FC_VMX_OUTSIDE_SMX		(1ull << 2)
#define MSR_VMX_BASIC			0x480
#define MSR_VMX_PINBASED		0x481
#define MSR_VMX_PROCBASED		0x482
#define MSR_VMX_EXIT			0x483
#define MSR_VMX_ENTRY			0x484
#define MSR_VMX_MISC			0x485
#define MSR_VMX_CR0_FIXED0		0x486
#define MSR_VMX_CR0_FIXED1		0x487
#define MSR_VMX_CR4_FIXED0		0x488
#define MSR_VMX_CR4_FIXED1		0x489
#define MSR_VMX_PROCBASED2		0x48b
#define MSR_VMX_EPT_VPID_CAP		0x48c
#define MSR_VMX_TRUE_PINBASED		0x48d
#define MSR_VMX_TRUE_PROCBASED		0x48e
#define MSR_VMX_TRUE_EXIT		0x48f
#define MSR_VMX_TRUE_ENTRY		0x490

/* IA32_VMX_BASIC (A.1). */
#define BASIC_REVISION(b)		((uint32_t)(b) & 0x7fffffff)
#define BASIC_REGION_SIZE(b)		(((b) >> 32) & 0x1fff)
#define BASIC_PHYS32			(1ull << 48)
#define BASIC_MEMTYPE(b)		(((b) >> 50) & 0xf)
#define BASIC_TRUE_CTLS			(1ull << 55)

/* IA32_VMX_MISC (A.6). */
#define MISC_STORE_LMA			(1ull << 5)

/* IA32_VMX_EPT_VPID_CAP (A.10). */
#define EPT_CAP_PWL4			(1ull << 6)
#define EPT_CAP_WB			(1ull << 14)
#define EPT_CAP_2M			(1ull << 16)
#define EPT_CAP_INVEPT			(1ull << 20)
#define EPT_CAP_AD			(1ull << 21)
#define EPT_CAP_INVEPT_SINGLE		(1ull << 25)
#define EPT_CAP_INVEPT_ALL		(1ull << 26)
#define VPID_CAP_INVVPID		(1ull << 32)
#define VPID_CAP_SINGLE			(1ull << 41)
#define VPID_CAP_ALL			(1ull << 42)

#define INVEPT_SINGLE			1
#define INVEPT_ALL			2
#define INVVPID_ADDR			0
#define INVVPID_SINGLE			1
#define INVVPID_ALL			2

/* Pin-based controls (25.6.1). */
#define PIN_EXTINT_EXIT			(1u << 0)
#define PIN_NMI_EXIT			(1u << 3)
#define PIN_VIRTUAL_NMI			(1u << 5)

/* Primary processor-based controls (25.6.2, table 25-6). */
#define PROC_INTR_WINDOW		(1u << 2)
#define PROC_NMI_WINDOW			(1u << 22)
#define PROC_TSC_OFFSET			(1u << 3)
#define PROC_HLT_EXIT			(1u << 7)
#define PROC_INVLPG_EXIT		(1u << 9)
#define PROC_MWAIT_EXIT			(1u << 10)
#define PROC_CR3_LOAD_EXIT		(1u << 15)
#define PROC_CR3_STORE_EXIT		(1u << 16)
#define PROC_CR8_LOAD_EXIT		(1u << 19)
#define PROC_CR8_STORE_EXIT		(1u << 20)
#define PROC_IO_BITMAPS			(1u << 25)
#define PROC_MSR_BITMAPS		(1u << 28)
#define PROC_MONITOR_EXIT		(1u << 29)
#define PROC_SECONDARY			(1u << 31)

/* Secondary processor-based controls (table 25-7). */
#define PROC2_EPT			(1u << 1)
#define PROC2_VPID			(1u << 5)
#define PROC2_UNRESTRICTED		(1u << 7)
#define PROC2_PML			(1u << 17)

/* VM-exit controls (25.7.1). */
#define EXIT_SAVE_DEBUG			(1u << 2)
#define EXIT_HOST_64			(1u << 9)
#define EXIT_ACK_INTR			(1u << 15)
#define EXIT_SAVE_PAT			(1u << 18)
#define EXIT_LOAD_PAT			(1u << 19)
#define EXIT_SAVE_EFER			(1u << 20)
#define EXIT_LOAD_EFER			(1u << 21)

/* VM-entry controls (25.8.1). */
#define ENTRY_LOAD_DEBUG		(1u << 2)
#define ENTRY_IA32E			(1u << 9)
#define ENTRY_LOAD_PAT			(1u << 14)
#define ENTRY_LOAD_EFER			(1u << 15)

/* Field encodings, appendix B.  16-bit: */
#define VMCS_VPID			0x0000
#define VMCS_GUEST_SEL(i)		(0x0800 + 2 * (i))	/* ES CS SS DS FS GS LDTR TR */
#define VMCS_PML_INDEX			0x0812
#define VMCS_HOST_ES_SEL		0x0c00
#define VMCS_HOST_CS_SEL		0x0c02
#define VMCS_HOST_SS_SEL		0x0c04
#define VMCS_HOST_DS_SEL		0x0c06
#define VMCS_HOST_FS_SEL		0x0c08
#define VMCS_HOST_GS_SEL		0x0c0a
#define VMCS_HOST_TR_SEL		0x0c0c
/* 64-bit: */
#define VMCS_IO_BITMAP_A		0x2000
#define VMCS_IO_BITMAP_B		0x2002
#define VMCS_MSR_BITMAP			0x2004
#define VMCS_EXIT_MSR_STORE_ADDR	0x2006
#define VMCS_EXIT_MSR_LOAD_ADDR		0x2008
#define VMCS_ENTRY_MSR_LOAD_ADDR	0x200a
#define VMCS_PML_ADDRESS		0x200e
#define VMCS_TSC_OFFSET			0x2010
#define VMCS_EPT_POINTER		0x201a
#define VMCS_GUEST_PHYS_ADDR		0x2400
#define VMCS_LINK_POINTER		0x2800
#define VMCS_GUEST_DEBUGCTL		0x2802
#define VMCS_GUEST_PAT			0x2804
#define VMCS_GUEST_EFER			0x2806
#define VMCS_GUEST_PDPTE(i)		(0x280a + 2 * (i))
#define VMCS_HOST_PAT			0x2c00
#define VMCS_HOST_EFER			0x2c02
/* 32-bit: */
#define VMCS_PIN_CTLS			0x4000
#define VMCS_PROC_CTLS			0x4002
#define VMCS_EXCEPTION_BITMAP		0x4004
#define VMCS_PF_ERR_MASK		0x4006
#define VMCS_PF_ERR_MATCH		0x4008
#define VMCS_CR3_TARGET_COUNT		0x400a
#define VMCS_EXIT_CTLS			0x400c
#define VMCS_EXIT_MSR_STORE_COUNT	0x400e
#define VMCS_EXIT_MSR_LOAD_COUNT	0x4010
#define VMCS_ENTRY_CTLS			0x4012
#define VMCS_ENTRY_MSR_LOAD_COUNT	0x4014
#define VMCS_ENTRY_INTR_INFO		0x4016
#define VMCS_ENTRY_EXC_ERRCODE		0x4018
#define VMCS_ENTRY_INSN_LEN		0x401a
#define VMCS_PROC2_CTLS			0x401e
#define VMCS_INSN_ERROR			0x4400
#define VMCS_EXIT_REASON		0x4402
#define VMCS_EXIT_INTR_INFO		0x4404
#define VMCS_EXIT_INTR_ERRCODE		0x4406
#define VMCS_IDT_VEC_INFO		0x4408
#define VMCS_IDT_VEC_ERRCODE		0x440a
#define VMCS_EXIT_INSN_LEN		0x440c
#define VMCS_GUEST_LIMIT(i)		(0x4800 + 2 * (i))
#define VMCS_GUEST_GDTR_LIMIT		0x4810
#define VMCS_GUEST_IDTR_LIMIT		0x4812
#define VMCS_GUEST_AR(i)		(0x4814 + 2 * (i))
#define VMCS_GUEST_INTERRUPTIBILITY	0x4824
#define VMCS_GUEST_ACTIVITY		0x4826
#define VMCS_GUEST_SYSENTER_CS		0x482a
#define VMCS_HOST_SYSENTER_CS		0x4c00
/* Natural width: */
#define VMCS_CR0_MASK			0x6000
#define VMCS_CR4_MASK			0x6002
#define VMCS_CR0_SHADOW			0x6004
#define VMCS_CR4_SHADOW			0x6006
#define VMCS_EXIT_QUAL			0x6400
#define VMCS_GUEST_CR0			0x6800
#define VMCS_GUEST_CR3			0x6802
#define VMCS_GUEST_CR4			0x6804
#define VMCS_GUEST_BASE(i)		(0x6806 + 2 * (i))
#define VMCS_GUEST_GDTR_BASE		0x6816
#define VMCS_GUEST_IDTR_BASE		0x6818
#define VMCS_GUEST_DR7			0x681a
#define VMCS_GUEST_RSP			0x681c
#define VMCS_GUEST_RIP			0x681e
#define VMCS_GUEST_RFLAGS		0x6820
#define VMCS_GUEST_PENDING_DBG		0x6822
#define VMCS_GUEST_SYSENTER_ESP		0x6824
#define VMCS_GUEST_SYSENTER_EIP		0x6826
#define VMCS_HOST_CR0			0x6c00
#define VMCS_HOST_CR3			0x6c02
#define VMCS_HOST_CR4			0x6c04
#define VMCS_HOST_FS_BASE		0x6c06
#define VMCS_HOST_GS_BASE		0x6c08
#define VMCS_HOST_TR_BASE		0x6c0a
#define VMCS_HOST_GDTR_BASE		0x6c0c
#define VMCS_HOST_IDTR_BASE		0x6c0e
#define VMCS_HOST_SYSENTER_ESP		0x6c10
#define VMCS_HOST_SYSENTER_EIP		0x6c12
#define VMCS_HOST_RSP			0x6c14
#define VMCS_HOST_RIP			0x6c16

/* Basic exit reasons, appendix C. */
#define VMX_EXIT_EXC_NMI		0
#define VMX_EXIT_EXTINT			1
#define VMX_EXIT_TRIPLE_FAULT		2
#define VMX_EXIT_INIT			3
#define VMX_EXIT_SIPI			4
#define VMX_EXIT_INTR_WINDOW		7
#define VMX_EXIT_NMI_WINDOW		8
#define VMX_EXIT_TASK_SWITCH		9
#define VMX_EXIT_CPUID			10
#define VMX_EXIT_GETSEC			11
#define VMX_EXIT_HLT			12
#define VMX_EXIT_INVD			13
#define VMX_EXIT_INVLPG			14
#define VMX_EXIT_VMCALL			18
#define VMX_EXIT_VMCLEAR		19	/* 19-27: VMX instructions */
#define VMX_EXIT_VMXON			27
#define VMX_EXIT_CR_ACCESS		28
#define VMX_EXIT_IO			30
#define VMX_EXIT_RDMSR			31
#define VMX_EXIT_WRMSR			32
#define VMX_EXIT_BAD_GUEST		33
#define VMX_EXIT_BAD_MSR_LOAD		34
#define VMX_EXIT_MWAIT			36
#define VMX_EXIT_MONITOR		39
#define VMX_EXIT_MCE_ENTRY		41
#define VMX_EXIT_EPT_VIOLATION		48
#define VMX_EXIT_EPT_MISCONFIG		49
#define VMX_EXIT_INVEPT			50
#define VMX_EXIT_INVVPID		53
#define VMX_EXIT_WBINVD			54
#define VMX_EXIT_XSETBV			55
#define VMX_EXIT_PML_FULL		62
#define VMX_EXIT_FAILED_ENTRY		(1u << 31)

/* Interruption information (VM-entry 25.8.3, VM-exit 25.9.2, IDT
 * vectoring 25.9.3): vector 7:0, type 10:8, error code valid 11, valid 31. */
#define INTR_INFO_VALID			(1u << 31)
#define INTR_INFO_HAS_ERROR		(1u << 11)
#define INTR_TYPE(i)			(((i) >> 8) & 7)
#define INTR_TYPE_NMI			2
#define INTR_TYPE_HW_EXC		3
#define INTR_TYPE_SOFT_INT		4
#define INTR_TYPE_PRIV_SOFT_EXC		5
#define INTR_TYPE_SOFT_EXC		6

/* Guest interruptibility state (25.4.2, table 25-3). */
#define INTERRUPTIBILITY_STI		(1u << 0)
#define INTERRUPTIBILITY_MOVSS		(1u << 1)
#define INTERRUPTIBILITY_NMI		(1u << 3)

/* Access rights: the unusable bit (table 25-2). */
#define AR_UNUSABLE			(1u << 16)

#ifndef __ASSEMBLER__
static inline uint64_t vmread(uint64_t field)
{
	uint64_t v = 0;

	__asm__ volatile("vmread %1, %0" : "=rm"(v) : "r"(field) : "cc");
	return v;
}

/* false on VMfailInvalid / VMfailValid (CF or ZF set, 31.2). */
static inline bool vmwrite(uint64_t field, uint64_t val)
{
	bool bad;

	__asm__ volatile("vmwrite %2, %1" : "=@ccbe"(bad)
			 : "r"(field), "rm"(val) : "cc");
	return !bad;
}

static inline bool vmx_on(uint64_t pa)
{
	bool bad;

	__asm__ volatile("vmxon %1" : "=@ccbe"(bad) : "m"(pa) : "cc", "memory");
	return !bad;
}

static inline bool vmclear(uint64_t pa)
{
	bool bad;

	__asm__ volatile("vmclear %1" : "=@ccbe"(bad) : "m"(pa) : "cc", "memory");
	return !bad;
}

static inline bool vmptrld(uint64_t pa)
{
	bool bad;

	__asm__ volatile("vmptrld %1" : "=@ccbe"(bad) : "m"(pa) : "cc", "memory");
	return !bad;
}

static inline bool invept(uint64_t type, uint64_t eptp)
{
	struct { uint64_t eptp, zero; } desc = { eptp, 0 };
	bool bad;

	__asm__ volatile("invept %1, %2" : "=@ccbe"(bad)
			 : "m"(desc), "r"(type) : "cc", "memory");
	return !bad;
}

static inline bool invvpid(uint64_t type, uint16_t vpid, uint64_t addr)
{
	struct { uint64_t vpid, addr; } desc = { vpid, addr };
	bool bad;

	__asm__ volatile("invvpid %1, %2" : "=@ccbe"(bad)
			 : "m"(desc), "r"(type) : "cc", "memory");
	return !bad;
}

#endif /* !__ASSEMBLER__ */

#endif
