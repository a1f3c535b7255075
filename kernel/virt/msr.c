/*
 * The guest's MSRs: an allow-list.  Anything not listed raises #GP in the
 * guest, exactly like an MSR the CPU does not implement (SDM Vol. 4).
 * MSRs that live in the vendor's guest-state area are read and written
 * through struct vcpu_state with a save/load around the access, so the
 * handlers stay vendor-neutral.
 */
#include <errno.h>
#include "kernel/lib/msr_rules.h"
#include "kernel/platform/arch.h"
#include "kernel/virt/irq.h"
#include "kernel/virt/vm.h"

#define MSR_TSC			0x010
#define MSR_PLATFORM_ID		0x017
#define MSR_BIOS_SIGN_ID	0x08b
#define MSR_MTRRCAP		0x0fe
#define MSR_MISC_ENABLE		0x1a0

#define MISC_ENABLE_DEFAULT	0x1801ull	/* fast strings, no BTS, no PEBS */

static uint64_t *state_msr(struct vcpu_state *st, uint32_t msr)
{
	switch (msr) {
	case MSR_SYSENTER_CS: return &st->sysenter_cs;
	case MSR_SYSENTER_ESP: return &st->sysenter_esp;
	case MSR_SYSENTER_EIP: return &st->sysenter_eip;
	case MSR_PAT: return &st->pat;
	case MSR_STAR: return &st->star;
	case MSR_LSTAR: return &st->lstar;
	case MSR_CSTAR: return &st->cstar;
	case MSR_SFMASK: return &st->sfmask;
	case MSR_FS_BASE: return &st->seg[SEG_FS].base;
	case MSR_GS_BASE: return &st->seg[SEG_GS].base;
	case MSR_KERNEL_GS_BASE: return &st->kernel_gs_base;
	case MSR_EFER: return &st->efer;
	default: return NULL;
	}
}

/* MSRs held in struct vcpu_state that the migration stream carries as
 * a list (EFER and the FS/GS bases travel in their own fields). */
const uint32_t msr_migrated[] = {
	MSR_SYSENTER_CS, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP, MSR_PAT,
	MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SFMASK, MSR_KERNEL_GS_BASE,
};
const size_t msr_nmigrated = sizeof(msr_migrated) / sizeof(msr_migrated[0]);

int msr_state_get(const struct vcpu_state *st, uint32_t msr, uint64_t *val)
{
	uint64_t *p = state_msr((struct vcpu_state *)st, msr);

	if (!p)
		return -EINVAL;
	*val = *p;
	return 0;
}

static int check_write(struct vcpu *v, uint32_t msr, uint64_t val);

/* An incoming migration: the same checks as a guest WRMSR, no reload
 * (the vCPU is not set up yet). */
int msr_state_set(struct vcpu *v, uint32_t msr, uint64_t val)
{
	uint64_t *p = state_msr(&v->st, msr);

	if (!p || msr == MSR_EFER || check_write(v, msr, val) < 0)
		return -EINVAL;
	*p = val;
	return 0;
}

int msr_read(struct vcpu *v, uint32_t msr, uint64_t *val)
{
	uint64_t *p;
	int rc = irq_msr_read(v, msr, val);

	if (rc != -ENOENT)
		return rc;	/* the LAPIC's: APIC base, TSC deadline, x2APIC */

	switch (msr) {
	case MSR_TSC:
		*val = rdtsc() + v->st.tsc_offset;
		return 0;
	case MSR_FEATURE_CONTROL:
		*val = 1;	/* locked, VMX off: there is no nested VMX */
		return 0;
	case MSR_MISC_ENABLE:
		*val = MISC_ENABLE_DEFAULT;
		return 0;
	case MSR_PLATFORM_ID: case MSR_BIOS_SIGN_ID: case MSR_MTRRCAP:
	case MSR_MCG_CAP: case MSR_MCG_STATUS:
		*val = 0;
		return 0;
	}
	p = state_msr(&v->st, msr);
	if (!p)
		return -EINVAL;
	hv->save_state(v);
	*val = *p;
	return 0;
}

/* Each MSR by its own architectural rule (kernel/lib/msr_rules.c). */
static int check_write(struct vcpu *v, uint32_t msr, uint64_t val)
{
	struct msr_ctx ctx = { .efer = v->st.efer, .cr0 = v->st.cr0 };

	return msr_rule_check(msr, val, &ctx) == 0 ? 0 : -EINVAL;
}

int msr_write(struct vcpu *v, uint32_t msr, uint64_t val)
{
	uint64_t *p;
	int rc = irq_msr_write(v, msr, val);

	if (rc != -ENOENT)
		return rc;

	switch (msr) {
	case MSR_TSC:
		v->st.tsc_offset = val - rdtsc();
		hv->load_state(v);
		return 0;
	case MSR_MISC_ENABLE:
		return val == MISC_ENABLE_DEFAULT ? 0 : -EINVAL;
	case MSR_BIOS_SIGN_ID:
		return 0;	/* microcode update probes write 0 */
	}
	p = state_msr(&v->st, msr);
	if (!p)
		return -EINVAL;
	hv->save_state(v);
	if (check_write(v, msr, val) < 0)
		return -EINVAL;
	*p = val;
	hv->load_state(v);
	return 0;
}
