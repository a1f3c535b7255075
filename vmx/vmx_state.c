/*
 * The arch-neutral struct vcpu_state <-> VMCS guest-state area (SDM Vol. 3C
 * 25.4), and the control-register rules VT-x adds on top of the guest's
 * own view:
 *
 *  - CR0 and CR4 hold bits VMX operation fixes (IA32_VMX_CR0/CR4_FIXED0/1,
 *    appendix A.7-A.8): NE is forced on, VMXE too.  Those bits are owned by
 *    Tern through the guest/host masks, and the read shadows show the guest
 *    the values it wrote (25.6.6).  PE and PG are exempt with unrestricted
 *    guest (26.3.1.1), so the Multiboot entry state (PE, no paging) runs.
 *  - EFER.LMA and the "IA-32e mode guest" entry control follow EFER.LME
 *    and CR0.PG (26.3.1.1, 26.2.4); the CPU keeps them in step itself while
 *    the guest runs and stores LMA into the control on every exit.
 *  - PAE paging without long mode takes its PDPTEs from the VMCS at entry
 *    when EPT is on (26.3.2.4), so they are read from guest memory here.
 *
 * Segment attributes: vcpu_state uses the SVM packed layout; VMX access
 * rights have the same low byte, AVL/L/DB/G moved up by 4 bits, and an
 * "unusable" bit 16 (25.4.1 table 25-2) that stands for a not-present
 * segment (a null selector loaded in protected mode).
 */
#include <errno.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/virt/vm.h"
#include "vmx/vmcs.h"
#include "vmx/vmx.h"

#define SEG_P		0x80u

static uint32_t attr_to_ar(uint16_t attr, bool always_usable)
{
	uint32_t ar = (attr & 0xffu) | ((attr & 0xf00u) << 4);

	if (!always_usable && !(attr & SEG_P))
		ar |= AR_UNUSABLE;
	return ar;
}

/* An unusable segment comes back not present; its DPL is kept because
 * SS's DPL is the CPL even when SS is unusable (25.4.1). */
static uint16_t ar_to_attr(uint32_t ar)
{
	uint16_t attr = (ar & 0xffu) | ((ar >> 4) & 0xf00u);

	if (ar & AR_UNUSABLE)
		attr &= ~SEG_P;
	return attr;
}

uint64_t vmx_guest_cr0(const struct vmx_vcpu *vv)
{
	return (vmread(VMCS_GUEST_CR0) & ~vv->cr0_mask) |
	       (vmread(VMCS_CR0_SHADOW) & vv->cr0_mask);
}

uint64_t vmx_guest_cr4(const struct vmx_vcpu *vv)
{
	return (vmread(VMCS_GUEST_CR4) & ~vv->cr4_mask) |
	       (vmread(VMCS_CR4_SHADOW) & vv->cr4_mask);
}

static void load_pdptes(struct vcpu *v)
{
	uint64_t pdpte[4] = { 0, 0, 0, 0 };
	int i;

	if (!(v->st.cr0 & CR0_PG) || !(v->st.cr4 & CR4_PAE) || (v->st.efer & EFER_LMA))
		return;
	/* Outside RAM the entries read as not present: the guest faults. */
	if (vm_read_gpa(v->vm, v->st.cr3 & 0xffffffe0ull, pdpte, sizeof(pdpte)) < 0)
		memset(pdpte, 0, sizeof(pdpte));
	for (i = 0; i < 4; i++)
		vmwrite(VMCS_GUEST_PDPTE(i), pdpte[i]);
}

/* The guest-visible CR0, CR4 and EFER into the VMCS, with the bits VMX
 * forces added to the real registers only. */
static void write_control_regs(struct vcpu *v, uint64_t cr0, uint64_t cr4,
			       uint64_t efer)
{
	struct vmx_vcpu *vv = v->vendor;
	bool lma = (efer & EFER_LME) && (cr0 & CR0_PG);

	efer = lma ? efer | EFER_LMA : efer & ~EFER_LMA;
	vmwrite(VMCS_GUEST_CR0, (cr0 | (vmx_caps.cr0_fixed0 & ~(CR0_PE | CR0_PG))) &
		vmx_caps.cr0_fixed1);
	vmwrite(VMCS_CR0_SHADOW, cr0);
	vmwrite(VMCS_GUEST_CR4, (cr4 | vmx_caps.cr4_fixed0) & vmx_caps.cr4_fixed1);
	vmwrite(VMCS_CR4_SHADOW, cr4);
	vmwrite(VMCS_GUEST_EFER, efer);
	vv->entry_ctls = lma ? vv->entry_ctls | ENTRY_IA32E : vv->entry_ctls & ~ENTRY_IA32E;
	vmwrite(VMCS_ENTRY_CTLS, vv->entry_ctls);
	v->st.cr0 = cr0;
	v->st.cr4 = cr4;
	v->st.efer = efer;
	load_pdptes(v);
}

/* MOV to CR0 (SDM Vol. 3A 2.5, MOV in Vol. 2B): #GP cases first. */
int vmx_set_cr0(struct vcpu *v, uint64_t val)
{
	uint64_t old = v->st.cr0;

	if ((val >> 32) || ((val & CR0_PG) && !(val & CR0_PE)) ||
	    ((val & CR0_NW) && !(val & CR0_CD)))
		return -EINVAL;
	if ((val & CR0_PG) && !(old & CR0_PG) && (v->st.efer & EFER_LME) &&
	    !(v->st.cr4 & CR4_PAE))
		return -EINVAL;
	write_control_regs(v, val, v->st.cr4, v->st.efer);
	return 0;
}

/* MOV to CR4: VMXE and every bit the CPU cannot hold in VMX operation
 * read as reserved to the guest (CPUID shows it no VMX). */
int vmx_set_cr4(struct vcpu *v, uint64_t val)
{
	if ((val & ~vmx_caps.cr4_fixed1) || (val & CR4_VMXE))
		return -EINVAL;
	if ((v->st.efer & EFER_LMA) && !(val & CR4_PAE))
		return -EINVAL;
	write_control_regs(v, v->st.cr0, val, v->st.efer);
	return 0;
}

void vmx_set_cr3(struct vcpu *v, uint64_t val)
{
	vmwrite(VMCS_GUEST_CR3, val);
	v->st.cr3 = val;
	load_pdptes(v);
}

static uint32_t interruptibility(const struct vcpu *v)
{
	const struct vmx_vcpu *vv = v->vendor;
	uint32_t s = vv->intr_state & ~(INTERRUPTIBILITY_STI | INTERRUPTIBILITY_MOVSS |
					INTERRUPTIBILITY_NMI);

	/* With virtual NMIs the bit is the guest's own NMI blocking
	 * (v->nmi_masked), clear while this entry delivers an NMI, which sets
	 * it (26.3.1.5, 26.6.1.2).  Without them the bit is the CPU's real
	 * blocking after a host NMI's exit (27.3.4): entering with it would
	 * only hold back the next kick.  Blocking by STI needs RFLAGS.IF = 1;
	 * a shadow with IF clear can only have come from MOV SS / POP SS. */
	if (vmx_caps.vnmi && v->nmi_masked && !vv->nmi_injecting)
		s |= INTERRUPTIBILITY_NMI;
	if (v->st.int_shadow)
		s |= (v->st.rflags & RFLAGS_IF) ? INTERRUPTIBILITY_STI :
						  INTERRUPTIBILITY_MOVSS;
	return s;
}

/* Before every entry: the registers the generic code changes in v->st. */
void vmx_state_hot_to_vmcs(struct vcpu *v)
{
	vmwrite(VMCS_GUEST_RIP, v->st.rip);
	vmwrite(VMCS_GUEST_RSP, v->st.gpr[GPR_RSP]);
	vmwrite(VMCS_GUEST_RFLAGS, v->st.rflags | 2);
	vmwrite(VMCS_GUEST_INTERRUPTIBILITY, interruptibility(v));
}

void vmx_state_to_vmcs(struct vcpu *v)
{
	struct vmx_vcpu *vv = v->vendor;
	const struct vcpu_state *st = &v->st;
	int i;

	for (i = 0; i < SEG_COUNT; i++) {
		const struct vcpu_seg *s = &st->seg[i];

		vmwrite(VMCS_GUEST_SEL(i), s->sel);
		vmwrite(VMCS_GUEST_LIMIT(i), s->limit);
		vmwrite(VMCS_GUEST_BASE(i), s->base);
		vmwrite(VMCS_GUEST_AR(i), attr_to_ar(s->attr, i == SEG_CS || i == SEG_TR));
	}
	vmwrite(VMCS_GUEST_GDTR_BASE, st->gdtr.base);
	vmwrite(VMCS_GUEST_GDTR_LIMIT, st->gdtr.limit);
	vmwrite(VMCS_GUEST_IDTR_BASE, st->idtr.base);
	vmwrite(VMCS_GUEST_IDTR_LIMIT, st->idtr.limit);
	vmwrite(VMCS_GUEST_CR3, st->cr3);
	write_control_regs(v, st->cr0, st->cr4, st->efer);
	vmwrite(VMCS_GUEST_DR7, st->dr7);
	vmwrite(VMCS_GUEST_PAT, st->pat);
	vmwrite(VMCS_GUEST_SYSENTER_CS, st->sysenter_cs);
	vmwrite(VMCS_GUEST_SYSENTER_ESP, st->sysenter_esp);
	vmwrite(VMCS_GUEST_SYSENTER_EIP, st->sysenter_eip);
	vmwrite(VMCS_TSC_OFFSET, st->tsc_offset);
	vmx_state_hot_to_vmcs(v);
	vv->need_load = false;
}

/* The part of a segment register the exit contract keeps fresh (vm.h). */
static void save_seg_hot(struct vcpu_seg *s, int i)
{
	s->sel = (uint16_t)vmread(VMCS_GUEST_SEL(i));
	s->base = vmread(VMCS_GUEST_BASE(i));
	s->attr = ar_to_attr((uint32_t)vmread(VMCS_GUEST_AR(i)));
}

static void save_seg(struct vcpu_seg *s, int i)
{
	save_seg_hot(s, i);
	s->limit = (uint32_t)vmread(VMCS_GUEST_LIMIT(i));
}

/* Control registers, EFER and the CPL (the segments are read first).
 * The SYSCALL MSRs and KernelGSbase are not here: every guest access to
 * them is intercepted, so v->st always holds their values (vmx.c puts them
 * in the MSRs before entry). */
static void save_controls(struct vcpu *v)
{
	struct vmx_vcpu *vv = v->vendor;
	struct vcpu_state *st = &v->st;

	st->cr0 = vmx_guest_cr0(vv);
	st->cr3 = vmread(VMCS_GUEST_CR3);
	st->cr4 = vmx_guest_cr4(vv);
	st->efer = vmread(VMCS_GUEST_EFER);
	st->cpl = (st->seg[SEG_SS].attr >> 5) & 3;	/* SS.DPL (25.4.1) */
	/* Without IA32_VMX_MISC bit 5 the CPU does not store LMA into the
	 * entry control; keep it in step ourselves (27.2). */
	vv->entry_ctls = (st->efer & EFER_LMA) ? vv->entry_ctls | ENTRY_IA32E :
						 vv->entry_ctls & ~ENTRY_IA32E;
	if (!(vmx_caps.misc & MISC_STORE_LMA))
		vmwrite(VMCS_ENTRY_CTLS, vv->entry_ctls);
}

/* After every exit: the register set vm.h promises, but for the GPRs
 * (vmx_entry.S) and CR2 (not in the VMCS: vmx.c reads the register). */
void vmx_state_after_exit(struct vcpu *v)
{
	struct vmx_vcpu *vv = v->vendor;
	struct vcpu_state *st = &v->st;
	uint32_t intr;
	int i;

	st->rip = vmread(VMCS_GUEST_RIP);
	st->gpr[GPR_RSP] = vmread(VMCS_GUEST_RSP);
	st->rflags = vmread(VMCS_GUEST_RFLAGS);
	intr = (uint32_t)vmread(VMCS_GUEST_INTERRUPTIBILITY);
	st->int_shadow = intr & (INTERRUPTIBILITY_STI | INTERRUPTIBILITY_MOVSS);
	vv->intr_state = intr;
	/* Without virtual NMIs Tern cannot see the guest's IRET: it keeps
	 * no blocking, as before (NMIs may nest on such a CPU). */
	v->nmi_masked = vmx_caps.vnmi && (intr & INTERRUPTIBILITY_NMI);
	for (i = SEG_ES; i <= SEG_GS; i++)
		save_seg_hot(&st->seg[i], i);
	save_controls(v);
}

/* Everything but what the handlers may change after an exit (GPRs, RIP,
 * RFLAGS, the shadow: vm.h): between an exit and the next entry the
 * generic code may already have moved RIP past the instruction it
 * emulated. */
void vmx_state_from_vmcs(struct vcpu *v)
{
	struct vcpu_state *st = &v->st;
	int i;

	for (i = 0; i < SEG_COUNT; i++)
		save_seg(&st->seg[i], i);
	save_controls(v);
	st->gdtr.base = vmread(VMCS_GUEST_GDTR_BASE);
	st->gdtr.limit = (uint32_t)vmread(VMCS_GUEST_GDTR_LIMIT);
	st->idtr.base = vmread(VMCS_GUEST_IDTR_BASE);
	st->idtr.limit = (uint32_t)vmread(VMCS_GUEST_IDTR_LIMIT);
	st->dr7 = vmread(VMCS_GUEST_DR7);
	st->pat = vmread(VMCS_GUEST_PAT);
	st->sysenter_cs = vmread(VMCS_GUEST_SYSENTER_CS);
	st->sysenter_esp = vmread(VMCS_GUEST_SYSENTER_ESP);
	st->sysenter_eip = vmread(VMCS_GUEST_SYSENTER_EIP);
	st->tsc_offset = vmread(VMCS_TSC_OFFSET);
}
