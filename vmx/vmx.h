/*
 * Intel VT-x back end, internal interface between vmx.c (probe, per-CPU
 * enable, VMCS set-up, entry and exit decoding) and vmx_state.c (the
 * struct vcpu_state <-> VMCS conversion and control-register rules).
 */
#ifndef TERN_VMX_VMX_H
#define TERN_VMX_VMX_H

#include <stdbool.h>
#include <stdint.h>
#include "kernel/virt/vm.h"

/* What the CPU offers, read once on the boot CPU by vmx_probe();
 * struct hv_caps holds the generic part (EPT format, dirty modes). */
struct vmx_caps {
	uint64_t basic, misc, ept_vpid;
	uint64_t cr0_fixed0, cr0_fixed1, cr4_fixed0, cr4_fixed1;
	uint32_t pin, proc, proc2, exit, entry;	/* the controls we run with */
	bool vpid, pml, ad;
	/* Virtual NMIs with NMI-window exiting (SDM Vol. 3C 25.6.1, 26.6.1.2):
	 * the CPU tracks the guest's NMI blocking and its IRET. */
	bool vnmi;
};

extern struct vmx_caps vmx_caps;

struct vmx_vcpu {
	void *vmcs;
	uint64_t vmcs_pa;
	uint8_t *io_bitmap;	/* A and B, 2 pages */
	uint8_t *msr_bitmap;	/* 1 page */
	uint64_t *pml;		/* 512-entry page-modification log */
	int cpu;		/* host CPU whose VMCS pointer holds it; -1 */
	uint16_t vpid;
	bool launched;
	bool need_load;		/* v->st must be written into the VMCS */
	bool flush;		/* INVEPT before the next entry */
	uint32_t entry_ctls;
	uint64_t cr0_mask, cr4_mask;
	uint32_t inject_len;	/* instruction length of a re-queued soft event */
	uint32_t intr_state;	/* interruptibility beyond the STI/MOV-SS shadow */
	bool irq_window;	/* PROC_INTR_WINDOW is on in the VMCS */
	bool nmi_window;	/* PROC_NMI_WINDOW is on */
	bool nmi_injecting;	/* this entry delivers an NMI */
};

/* vmx_state.c: the VMCS of v must be current on this CPU. */
void vmx_state_to_vmcs(struct vcpu *v);
void vmx_state_hot_to_vmcs(struct vcpu *v);
void vmx_state_from_vmcs(struct vcpu *v);
void vmx_state_after_exit(struct vcpu *v);
int vmx_set_cr0(struct vcpu *v, uint64_t val);
int vmx_set_cr4(struct vcpu *v, uint64_t val);
void vmx_set_cr3(struct vcpu *v, uint64_t val);
uint64_t vmx_guest_cr0(const struct vmx_vcpu *vv);
uint64_t vmx_guest_cr4(const struct vmx_vcpu *vv);

#endif
