/*
 * The architectural write rules of the MSRs Tern keeps in struct
 * vcpu_state: which values a guest WRMSR (or an incoming migration) may
 * store, and which raise #GP.  Pure: the kernel and the unit tests build it.
 */
#ifndef TERN_MSR_RULES_H
#define TERN_MSR_RULES_H

#include <stdbool.h>
#include <stdint.h>

/* What a rule may depend on besides the value. */
struct msr_ctx {
	uint64_t efer;		/* the guest's EFER before the write */
	uint64_t cr0;		/* the guest's CR0 */
};

/*
 * 0 if val may be written to msr, -EINVAL if WRMSR must raise #GP(0),
 * -ENOENT if msr has no rule here (not a state MSR).
 */
int msr_rule_check(uint32_t msr, uint64_t val, const struct msr_ctx *ctx);

/* A 48-bit canonical address: bits 63:47 all equal (SDM Vol. 1 3.3.7.1). */
bool msr_canonical(uint64_t a);

/* Every PAT entry one of the types 0, 1, 4, 5, 6, 7 (SDM Vol. 3A 13.12.2). */
bool msr_pat_valid(uint64_t pat);

#endif
