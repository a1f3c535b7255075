/*
 * Unit tests for kernel/lib/msr_rules.c: each MSR's write rule, with the
 * values real guests write (Linux's STAR and SFMASK) and the edges.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>

#include "kernel/lib/msr_rules.h"
#include "kernel/platform/x86.h"

#define NONCANON	0x0000800000000000ull
#define CANON_HI	0xffff800000000000ull

static const struct msr_ctx t_ctx32 = { .efer = 0, .cr0 = CR0_PE };

Test(msr_rules, star_takes_any_value)
{
	cr_assert_eq(msr_rule_check(MSR_STAR, 0x0023001000000000ull, &t_ctx32), 0);
	cr_assert_eq(msr_rule_check(MSR_STAR, NONCANON, &t_ctx32), 0);
	cr_assert_eq(msr_rule_check(MSR_STAR, ~0ull, &t_ctx32), 0);
}

Test(msr_rules, sfmask_high_half_reserved)
{
	cr_assert_eq(msr_rule_check(MSR_SFMASK, 0x47700, &t_ctx32), 0);
	cr_assert_eq(msr_rule_check(MSR_SFMASK, 0xffffffffull, &t_ctx32), 0);
	cr_assert_eq(msr_rule_check(MSR_SFMASK, 1ull << 32, &t_ctx32), -EINVAL);
	cr_assert_eq(msr_rule_check(MSR_SFMASK, 1ull << 63, &t_ctx32), -EINVAL);
}

Test(msr_rules, addresses_canonical)
{
	static const uint32_t msrs[] = { MSR_LSTAR, MSR_CSTAR, MSR_KERNEL_GS_BASE,
		MSR_FS_BASE, MSR_GS_BASE, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP };

	for (unsigned i = 0; i < sizeof(msrs) / sizeof(msrs[0]); i++) {
		cr_assert_eq(msr_rule_check(msrs[i], 0x00007fffffffffffull, &t_ctx32), 0,
			     "msr %#x", msrs[i]);
		cr_assert_eq(msr_rule_check(msrs[i], CANON_HI, &t_ctx32), 0);
		cr_assert_eq(msr_rule_check(msrs[i], NONCANON, &t_ctx32), -EINVAL,
			     "msr %#x", msrs[i]);
		cr_assert_eq(msr_rule_check(msrs[i], 0x0023001000000000ull, &t_ctx32),
			     -EINVAL);
	}
}

Test(msr_rules, canonical_edges)
{
	cr_assert(msr_canonical(0));
	cr_assert(msr_canonical(0x00007fffffffffffull));
	cr_assert(!msr_canonical(0x0000800000000000ull));
	cr_assert(!msr_canonical(0xffff7fffffffffffull));
	cr_assert(msr_canonical(0xffff800000000000ull));
	cr_assert(msr_canonical(~0ull));
}

Test(msr_rules, sysenter_cs_32_bits)
{
	cr_assert_eq(msr_rule_check(MSR_SYSENTER_CS, 0x10, &t_ctx32), 0);
	cr_assert_eq(msr_rule_check(MSR_SYSENTER_CS, 1ull << 32, &t_ctx32), -EINVAL);
}

Test(msr_rules, pat_each_byte)
{
	cr_assert_eq(msr_rule_check(MSR_PAT, 0x0007040600070406ull, &t_ctx32), 0);
	cr_assert_eq(msr_rule_check(MSR_PAT, 0x0001070400060107ull, &t_ctx32), 0);
	for (int byte = 0; byte < 8; byte++) {
		cr_assert_eq(msr_rule_check(MSR_PAT, 2ull << (byte * 8), &t_ctx32),
			     -EINVAL, "type 2 in byte %d", byte);
		cr_assert_eq(msr_rule_check(MSR_PAT, 3ull << (byte * 8), &t_ctx32),
			     -EINVAL);
		cr_assert_eq(msr_rule_check(MSR_PAT, 8ull << (byte * 8), &t_ctx32),
			     -EINVAL);
	}
}

Test(msr_rules, efer_reserved_lma_lme)
{
	const struct msr_ctx lm = { .efer = EFER_LME | EFER_LMA,
				    .cr0 = CR0_PE | CR0_PG };
	const struct msr_ctx paged32 = { .efer = 0, .cr0 = CR0_PE | CR0_PG };

	cr_assert_eq(msr_rule_check(MSR_EFER, EFER_SCE | EFER_NXE, &t_ctx32), 0);
	cr_assert_eq(msr_rule_check(MSR_EFER, EFER_LME, &t_ctx32), 0);
	cr_assert_eq(msr_rule_check(MSR_EFER, EFER_SVME, &t_ctx32), -EINVAL);
	cr_assert_eq(msr_rule_check(MSR_EFER, 1ull << 20, &t_ctx32), -EINVAL);
	/* LMA is read-only to WRMSR. */
	cr_assert_eq(msr_rule_check(MSR_EFER, EFER_LMA, &t_ctx32), -EINVAL);
	cr_assert_eq(msr_rule_check(MSR_EFER, EFER_LME | EFER_LMA | EFER_SCE, &lm), 0);
	cr_assert_eq(msr_rule_check(MSR_EFER, EFER_LME, &lm), -EINVAL);
	/* LME cannot change with paging on. */
	cr_assert_eq(msr_rule_check(MSR_EFER, EFER_LME, &paged32), -EINVAL);
	cr_assert_eq(msr_rule_check(MSR_EFER, EFER_NXE, &paged32), 0);
}

Test(msr_rules, unknown_msr_no_rule)
{
	cr_assert_eq(msr_rule_check(0x123, 0, &t_ctx32), -ENOENT);
	cr_assert_eq(msr_rule_check(MSR_APIC_BASE, 0, &t_ctx32), -ENOENT);
}
