/*
 * MSR write rules, one per MSR, from the SDM (Vol. 4 table 2-2 and the
 * sections cited below) and the APM (Vol. 2 3.1.7, 6.1.1).  A single
 * default would be wrong both ways: STAR holds selectors, not an address,
 * so a canonical check refuses Linux's 0x0023001000000000; SFMASK is not
 * an address either, so a canonical check let reserved bits 63:32
 * through, and VMX then loaded them into the real MSR.
 */
#include <errno.h>
#include "kernel/lib/msr_rules.h"
#include "kernel/platform/x86.h"

bool msr_canonical(uint64_t a)
{
	return (uint64_t)((int64_t)(a << 16) >> 16) == a;
}

bool msr_pat_valid(uint64_t pat)
{
	for (int i = 0; i < 8; i++) {
		uint8_t t = (pat >> (i * 8)) & 0xff;

		if (t > 7 || t == 2 || t == 3)
			return false;
	}
	return true;
}

/*
 * EFER (SDM Vol. 4 IA32_EFER, APM 3.1.7): only SCE, LME, LMA and NXE
 * exist for the guest (SVME would expose nested SVM, which CPUID hides);
 * LMA is the CPU's to set, so a write must keep it; LME may not change
 * while paging is on (SDM Vol. 3A "Initializing IA-32e Mode": #GP).
 */
static int efer_check(uint64_t val, const struct msr_ctx *ctx)
{
	if (val & ~(uint64_t)(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE))
		return -EINVAL;
	if ((val ^ ctx->efer) & EFER_LMA)
		return -EINVAL;
	if (((val ^ ctx->efer) & EFER_LME) && (ctx->cr0 & CR0_PG))
		return -EINVAL;
	return 0;
}

int msr_rule_check(uint32_t msr, uint64_t val, const struct msr_ctx *ctx)
{
	switch (msr) {
	case MSR_STAR:
		/* SDM Vol. 3A 5.8.8: SYSCALL/SYSRET selectors in 63:32, the
		 * legacy SYSCALL EIP in 31:0; no bit is reserved. */
		return 0;
	case MSR_SFMASK:
		/* The RFLAGS mask: bits 63:32 reserved (SDM Vol. 4). */
		return val >> 32 ? -EINVAL : 0;
	case MSR_LSTAR:
	case MSR_CSTAR:
	case MSR_KERNEL_GS_BASE:
	case MSR_FS_BASE:
	case MSR_GS_BASE:
	case MSR_SYSENTER_ESP:
	case MSR_SYSENTER_EIP:
		/* Addresses: WRMSR of a non-canonical one is #GP (SDM Vol. 2B
		 * WRMSR; Vol. 3A 5.8.7 for SYSENTER_ESP/EIP). */
		return msr_canonical(val) ? 0 : -EINVAL;
	case MSR_SYSENTER_CS:
		/* A selector in 15:0; VMX keeps 32 bits of it (SDM Vol. 3C
		 * 25.4.1), so a value above them could not be kept. */
		return val >> 32 ? -EINVAL : 0;
	case MSR_PAT:
		return msr_pat_valid(val) ? 0 : -EINVAL;
	case MSR_EFER:
		return efer_check(val, ctx);
	default:
		return -ENOENT;
	}
}
