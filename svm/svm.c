/*
 * AMD-V (SVM) back end: AMD APM Vol. 2 chapter 15.
 *
 * It enables SVM on a host CPU, builds one VMCB per vCPU, enters the guest
 * and turns #VMEXIT into the generic struct vcpu_exit.  Everything else
 * (CPUID policy, MSRs, devices, MMIO emulation, dirty logging) is generic.
 *
 * QEMU's TCG lacks NRIP save and decode assists, so without them the
 * intercepted instruction's length is known per exit (CPUID, RDMSR and
 * WRMSR are 2 bytes, HLT 1, VMMCALL and XSETBV 3) and MMIO instructions are
 * fetched and decoded by the generic code.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/virt/debugreg.h"
#include "kernel/virt/irq.h"
#include "kernel/virt/vm.h"
#include "svm/vmcb.h"

#define MSR_VM_CR		0xc0010114
#define MSR_VM_HSAVE_PA		0xc0010117
#define VM_CR_SVMDIS		(1u << 4)
#define CPUID_SVM_NP		(1u << 0)
#define CPUID_SVM_NRIPS		(1u << 3)
#define CPUID_SVM_FLUSHASID	(1u << 6)
#define CPUID_SVM_DECODE	(1u << 7)
#define IOPM_PAGES		3
#define MSRPM_PAGES		2
/* VINTR fields, APM Vol. 2 15.21.4 (virtual interrupts). */
#define VINTR_V_IRQ		(1ull << 8)
#define VINTR_IGN_TPR		(1ull << 20)
#define VINTR_MASKING		(1ull << 24)
#define TLB_FLUSH_ALL		1
#define TLB_FLUSH_ASID		3

struct svm_cpu {
	void *hsave;
	void *host_save;	/* VMSAVE area for the host's hidden state */
};

struct svm_vcpu {
	struct vmcb *vmcb;
	uint64_t vmcb_pa;
	uint8_t *iopm;
	uint8_t *msrpm;
	bool flush;
	/* NMI blocking (svm_nmi_entry): the IRET that ends it was seen at
	 * iret_rip; stepping: this entry single-steps over it. */
	bool iret_seen, stepping;
	uint64_t iret_rip, step_flags, step_dr6;
};

static struct svm_cpu svm_cpus[MAX_CPUS];
static uint32_t svm_features;	/* CPUID 0x8000000A EDX */
static uint32_t svm_nasid;
static volatile uint32_t svm_next_asid = 1;

int svm_enter(uint64_t vmcb_pa, uint64_t host_save_pa, uint64_t *gprs);

static inline void clgi(void)
{
	__asm__ volatile("clgi" ::: "memory");
}

static inline void stgi(void)
{
	__asm__ volatile("stgi" ::: "memory");
}

/* Whether this CPU can run SVM guests with nested paging at all. */
static bool svm_probe(struct hv_caps *caps, char *why, size_t len)
{
	uint32_t a, b, c, d;

	cpuid(0x80000000, 0, &a, &b, &c, &d);
	if (a < 0x8000000a) {
		snprintf(why, len, "no extended CPUID leaf 0x8000000A");
		return false;
	}
	cpuid(0x80000001, 0, &a, &b, &c, &d);
	if (!(c & (1u << 2))) {
		snprintf(why, len, "CPUID reports no SVM");
		return false;
	}
	if (rdmsr(MSR_VM_CR) & VM_CR_SVMDIS) {
		snprintf(why, len, "SVM disabled by firmware (VM_CR.SVMDIS)");
		return false;
	}
	cpuid(0x8000000a, 0, &a, &b, &c, &d);
	if (!(d & CPUID_SVM_NP)) {
		snprintf(why, len, "SVM without nested paging (QEMU: -cpu ...,+svm,+npt)");
		return false;
	}
	svm_features = d;
	svm_nasid = b;
	snprintf(caps->name, sizeof(caps->name), "AMD-V (SVM) with nested paging");
	caps->s2fmt = &s2_fmt_npt;
	/* NPT entries always have A/D bits (APM Vol. 2 15.25). */
	caps->dirty_modes = (1u << DIRTY_DBIT) | (1u << DIRTY_WP);
	return true;
}

/* Per host CPU: EFER.SVME and the host-save area (APM 15.4, 15.30.4). */
static int svm_cpu_enable(void)
{
	struct svm_cpu *sc = &svm_cpus[this_cpu()->id];

	if (!sc->hsave) {
		sc->hsave = page_alloc(1);
		sc->host_save = page_alloc(1);
		if (!sc->hsave || !sc->host_save)
			return -ENOMEM;
	}
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
	wrmsr(MSR_VM_HSAVE_PA, virt_to_phys(sc->hsave));
	dr_host_reset();
	return 0;
}

static void seg_to_vmcb(struct vmcb_seg *d, const struct vcpu_seg *s)
{
	d->sel = s->sel;
	d->attr = s->attr;
	d->limit = s->limit;
	d->base = s->base;
}

static void seg_from_vmcb(struct vcpu_seg *d, const struct vmcb_seg *s)
{
	d->sel = s->sel;
	d->attr = s->attr;
	d->limit = s->limit;
	d->base = s->base;
}

/* The guest never sees EFER.SVME (it has no SVM), but VMRUN requires it
 * set in the VMCB (APM 15.5.1 consistency checks). */
static void svm_load_state(struct vcpu *v)
{
	struct vmcb_save *s = &((struct svm_vcpu *)v->vendor)->vmcb->s;
	const struct vcpu_state *st = &v->st;

	seg_to_vmcb(&s->es, &st->seg[SEG_ES]);
	seg_to_vmcb(&s->cs, &st->seg[SEG_CS]);
	seg_to_vmcb(&s->ss, &st->seg[SEG_SS]);
	seg_to_vmcb(&s->ds, &st->seg[SEG_DS]);
	seg_to_vmcb(&s->fs, &st->seg[SEG_FS]);
	seg_to_vmcb(&s->gs, &st->seg[SEG_GS]);
	seg_to_vmcb(&s->ldtr, &st->seg[SEG_LDTR]);
	seg_to_vmcb(&s->tr, &st->seg[SEG_TR]);
	s->gdtr.base = st->gdtr.base;
	s->gdtr.limit = st->gdtr.limit;
	s->idtr.base = st->idtr.base;
	s->idtr.limit = st->idtr.limit;
	s->cpl = st->cpl;
	s->efer = st->efer | EFER_SVME;
	s->cr0 = st->cr0;
	s->cr2 = st->cr2;
	s->cr3 = st->cr3;
	s->cr4 = st->cr4;
	s->dr6 = st->dr6;
	s->dr7 = st->dr7;
	s->g_pat = st->pat;
	s->star = st->star;
	s->lstar = st->lstar;
	s->cstar = st->cstar;
	s->sfmask = st->sfmask;
	s->kernel_gs_base = st->kernel_gs_base;
	s->sysenter_cs = st->sysenter_cs;
	s->sysenter_esp = st->sysenter_esp;
	s->sysenter_eip = st->sysenter_eip;
	((struct svm_vcpu *)v->vendor)->vmcb->c.tsc_offset = st->tsc_offset;
}

static void svm_save_state(struct vcpu *v)
{
	struct vmcb *vmcb = ((struct svm_vcpu *)v->vendor)->vmcb;
	const struct vmcb_save *s = &vmcb->s;
	struct vcpu_state *st = &v->st;

	seg_from_vmcb(&st->seg[SEG_ES], &s->es);
	seg_from_vmcb(&st->seg[SEG_CS], &s->cs);
	seg_from_vmcb(&st->seg[SEG_SS], &s->ss);
	seg_from_vmcb(&st->seg[SEG_DS], &s->ds);
	seg_from_vmcb(&st->seg[SEG_FS], &s->fs);
	seg_from_vmcb(&st->seg[SEG_GS], &s->gs);
	seg_from_vmcb(&st->seg[SEG_LDTR], &s->ldtr);
	seg_from_vmcb(&st->seg[SEG_TR], &s->tr);
	st->gdtr.base = s->gdtr.base;
	st->gdtr.limit = s->gdtr.limit;
	st->idtr.base = s->idtr.base;
	st->idtr.limit = s->idtr.limit;
	st->cpl = s->cpl;
	st->efer = s->efer & ~EFER_SVME;
	st->cr2 = s->cr2;
	st->dr6 = s->dr6;
	st->dr7 = s->dr7;
	st->pat = s->g_pat;
	st->star = s->star;
	st->lstar = s->lstar;
	st->cstar = s->cstar;
	st->sfmask = s->sfmask;
	st->kernel_gs_base = s->kernel_gs_base;
	st->sysenter_cs = s->sysenter_cs;
	st->sysenter_esp = s->sysenter_esp;
	st->sysenter_eip = s->sysenter_eip;
	st->tsc_offset = vmcb->c.tsc_offset;
	st->int_shadow = vmcb->c.int_state & 1;
}

/* Intercept everything Tern does not pass through (APM 15.9-15.13). */
static void svm_setup_control(struct vcpu *v, struct svm_vcpu *sv)
{
	struct vmcb_control *c = &sv->vmcb->c;

	c->intercept_misc1 = SVM_MISC1_INTR | SVM_MISC1_NMI | SVM_MISC1_SMI |
			     SVM_MISC1_INIT | SVM_MISC1_CPUID | SVM_MISC1_INVD |
			     SVM_MISC1_HLT | SVM_MISC1_INVLPGA | SVM_MISC1_IOIO |
			     SVM_MISC1_MSR | SVM_MISC1_TASKSW | SVM_MISC1_SHUTDOWN;
	c->intercept_misc2 = SVM_MISC2_VMRUN | SVM_MISC2_VMMCALL |
			     SVM_MISC2_VMLOAD | SVM_MISC2_VMSAVE |
			     SVM_MISC2_STGI | SVM_MISC2_CLGI | SVM_MISC2_SKINIT |
			     SVM_MISC2_MONITOR | SVM_MISC2_MWAIT |
			     SVM_MISC2_MWAIT_COND | SVM_MISC2_XSETBV;
	/* #DB and #AC are reflected (a guest could otherwise wedge this CPU
	 * in a microcode loop delivering them, CVE-2015-8104 and -5307), #MC
	 * is the host's (APM 15.12: exception intercepts). */
	c->intercept_exc = (1u << EXC_DB) | (1u << EXC_AC) | (1u << EXC_MC);
	/* All ones: every port and every MSR exits to Tern. */
	memset(sv->iopm, 0xff, IOPM_PAGES * PAGE_SIZE);
	memset(sv->msrpm, 0xff, MSRPM_PAGES * PAGE_SIZE);
	c->iopm_pa = virt_to_phys(sv->iopm);
	c->msrpm_pa = virt_to_phys(sv->msrpm);
	c->asid = __atomic_fetch_add(&svm_next_asid, 1, __ATOMIC_RELAXED);
	if (c->asid >= svm_nasid)
		c->asid = 1 + c->asid % (svm_nasid - 1);
	/* Virtual interrupt masking: the guest's IF never blocks host IRQs. */
	c->vintr = VINTR_MASKING;
	c->np_enable = 1;
	c->n_cr3 = v->vm->s2.root_phys;
	sv->flush = true;
}

static int svm_vcpu_init(struct vcpu *v)
{
	struct svm_vcpu *sv = page_alloc(1);

	if (!sv)
		return -ENOMEM;
	sv->vmcb = page_alloc(1);
	sv->iopm = page_alloc(IOPM_PAGES);
	sv->msrpm = page_alloc(MSRPM_PAGES);
	if (!sv->vmcb || !sv->iopm || !sv->msrpm)
		goto fail;
	sv->vmcb_pa = virt_to_phys(sv->vmcb);
	v->vendor = sv;
	svm_setup_control(v, sv);
	svm_load_state(v);
	return 0;
fail:
	if (sv->vmcb)
		page_free(sv->vmcb, 1);
	if (sv->iopm)
		page_free(sv->iopm, IOPM_PAGES);
	if (sv->msrpm)
		page_free(sv->msrpm, MSRPM_PAGES);
	page_free(sv, 1);
	return -ENOMEM;
}

static void svm_vcpu_free(struct vcpu *v)
{
	struct svm_vcpu *sv = v->vendor;

	if (!sv)
		return;
	page_free(sv->vmcb, 1);
	page_free(sv->iopm, IOPM_PAGES);
	page_free(sv->msrpm, MSRPM_PAGES);
	page_free(sv, 1);
	v->vendor = NULL;
}

static void svm_flush_stage2(struct vcpu *v)
{
	((struct svm_vcpu *)v->vendor)->flush = true;
}

/* EVENTINJ format, APM 15.20. */
static void svm_inject(struct vcpu *v, struct vmcb_control *c)
{
	const struct vcpu_event *ev = &v->pending;

	if (!ev->valid)
		return;
	c->event_inj = ev->vector | ((uint64_t)ev->type << 8) |
		       (ev->has_error ? SVM_EVTINJ_EV : 0) | SVM_EVTINJ_VALID |
		       ((uint64_t)ev->error << 32);
	v->pending.valid = false;
}

/*
 * The interrupt window (APM 15.21.4): a virtual interrupt pending in
 * V_IRQ, ignoring the virtual TPR, with VINTR intercepted, makes the CPU
 * exit as soon as the guest could take it (RFLAGS.IF set, no interrupt
 * shadow).  Tern never lets the CPU deliver it: the exit comes first, and
 * the run loop injects the real vector through EVENTINJ.
 */
static void svm_irq_window(struct vcpu *v, struct vmcb_control *c)
{
	if (v->irq_window) {
		c->vintr |= VINTR_V_IRQ | VINTR_IGN_TPR;
		c->intercept_misc1 |= SVM_MISC1_VINTR;
	} else {
		c->vintr &= ~(VINTR_V_IRQ | VINTR_IGN_TPR);
		c->intercept_misc1 &= ~SVM_MISC1_VINTR;
	}
}

/* An event whose delivery was cut short by the exit must be re-injected
 * (EXITINTINFO, APM 15.7.2), or the guest loses an interrupt or fault. */
static void svm_requeue(struct vcpu *v, uint64_t info)
{
	if (!(info & SVM_EVTINJ_VALID) || v->pending.valid)
		return;
	v->pending = (struct vcpu_event){
		.valid = true,
		.vector = info & 0xff,
		.type = (info >> 8) & 7,
		.has_error = info & SVM_EVTINJ_EV,
		.error = (uint32_t)(info >> 32),
	};
}

static void svm_decode_io(struct vcpu_exit *e, uint64_t info1, uint64_t info2)
{
	e->kind = EXIT_IO;
	e->io.in = info1 & 1;
	e->io.string = info1 & (1u << 2);
	e->io.rep = info1 & (1u << 3);
	e->io.size = (info1 & (1u << 4)) ? 1 : (info1 & (1u << 5)) ? 2 : 4;
	e->io.port = (uint16_t)(info1 >> 16);
	e->next_rip = info2;	/* IOIO always saves the next RIP */
}

static void svm_decode_insn(struct vcpu_exit *e, enum exit_kind k,
			    uint64_t rip, const struct vmcb_control *c, int len)
{
	e->kind = k;
	e->insn.insn_len = len;
	e->next_rip = (svm_features & CPUID_SVM_NRIPS) ? c->next_rip : rip + len;
}

/*
 * Intercepts the loop needs no part in (APM Vol. 2 15.13): SMI and INIT
 * are intercepted so that they cannot arrive in the middle of the guest;
 * the #VMEXIT leaves them pending, held while GIF is 0, and the host takes
 * them at STGI (15.13.3: the host's SMM handler runs; 15.13.2: INIT is
 * the host's own, a virtual INIT comes through the guest's LAPIC model).
 * The guest just resumes.  INVD is skipped: guest RAM is always
 * write-back, so there is nothing to invalidate, and a guest must never
 * throw away the host's dirty lines (KVM does the same).
 */
static void svm_decode_misc(struct vcpu *v, struct vcpu_exit *e, uint32_t code,
			    const struct vmcb_control *c)
{
	e->kind = EXIT_HANDLED;
	if (code == SVM_EXIT_INVD) {
		v->st.rip = (svm_features & CPUID_SVM_NRIPS) ? c->next_rip : v->st.rip + 2;
		v->st.int_shadow = false;
	}
}

/* A task switch (APM 15.14.1): EXITINFO1 holds the target selector. */
static void svm_decode_tasksw(struct vcpu_exit *e, const struct vmcb_control *c)
{
	e->kind = EXIT_TASK_SWITCH;
	e->raw_info1 = (uint16_t)c->exit_info1;
	e->raw_info2 = (c->exit_info2 & SVM_TASKSW_IRET) ? 1 :
		       (c->exit_info2 & SVM_TASKSW_JMP) ? 2 :
		       (c->exit_int_info & SVM_EVTINJ_VALID) ? 3 : 0;
}

/*
 * Intercepted exceptions (APM 15.12).  A #DB has updated the guest's DR6
 * and DR7 in the VMCB already, as for a #DB taken in the guest, so it is
 * re-injected as it is; #AC has error code 0 in EXITINFO1.
 */
static void svm_decode_exc(struct vcpu_exit *e, uint32_t vector,
			   const struct vmcb_control *c)
{
	if (vector == EXC_MC) {
		e->kind = EXIT_MCE;
		return;
	}
	e->kind = EXIT_EXCEPTION;
	e->exc.vector = (uint8_t)vector;
	e->exc.has_error = vector == EXC_AC;
	e->exc.error = e->exc.has_error ? (uint32_t)c->exit_info1 : 0;
}

static void svm_decode(struct vcpu *v, struct vcpu_exit *e)
{
	const struct vmcb_control *c = &((struct svm_vcpu *)v->vendor)->vmcb->c;
	uint32_t code = (uint32_t)c->exit_code;
	uint64_t rip = v->st.rip;

	e->raw_reason = c->exit_code;
	e->raw_info1 = c->exit_info1;
	e->raw_info2 = c->exit_info2;
	e->next_rip = 0;
	e->insn_nbytes = 0;
	switch (code) {
	case SVM_EXIT_INTR:
		e->kind = EXIT_EXTINT;
		break;
	case SVM_EXIT_NMI:
		e->kind = EXIT_NMI;
		break;
	case SVM_EXIT_VINTR:
		e->kind = EXIT_IRQ_WINDOW;
		break;
	case SVM_EXIT_CPUID:
		svm_decode_insn(e, EXIT_CPUID, rip, c, 2);
		break;
	case SVM_EXIT_MSR:
		svm_decode_insn(e, c->exit_info1 ? EXIT_WRMSR : EXIT_RDMSR, rip, c, 2);
		break;
	case SVM_EXIT_HLT:
		svm_decode_insn(e, EXIT_HLT, rip, c, 1);
		break;
	case SVM_EXIT_VMMCALL:
		svm_decode_insn(e, EXIT_HYPERCALL, rip, c, 3);
		break;
	case SVM_EXIT_XSETBV:
		svm_decode_insn(e, EXIT_XSETBV, rip, c, 3);
		break;
	case SVM_EXIT_IOIO:
		svm_decode_io(e, c->exit_info1, c->exit_info2);
		break;
	case SVM_EXIT_NPF:
		e->kind = EXIT_STAGE2;
		e->s2.gpa = c->exit_info2;
		e->s2.present = c->exit_info1 & 1;
		e->s2.write = c->exit_info1 & 2;
		e->s2.fetch = c->exit_info1 & 0x10;
		if ((svm_features & CPUID_SVM_DECODE) && c->insn_len <= 15) {
			e->insn_nbytes = c->insn_len;
			memcpy(e->insn_bytes, c->insn_bytes, c->insn_len);
		}
		break;
	case SVM_EXIT_SHUTDOWN:
		e->kind = EXIT_SHUTDOWN;
		break;
	case SVM_EXIT_EXCP_BASE + EXC_DB:
	case SVM_EXIT_EXCP_BASE + EXC_AC:
	case SVM_EXIT_EXCP_BASE + EXC_MC:
		svm_decode_exc(e, code - SVM_EXIT_EXCP_BASE, c);
		break;
	case SVM_EXIT_SMI:
	case SVM_EXIT_INIT:
	case SVM_EXIT_INVD:
		svm_decode_misc(v, e, code, c);
		break;
	case SVM_EXIT_TASKSW:
		svm_decode_tasksw(e, c);
		break;
	case SVM_EXIT_VMRUN: case SVM_EXIT_VMLOAD: case SVM_EXIT_VMSAVE:
	case SVM_EXIT_STGI: case SVM_EXIT_CLGI: case SVM_EXIT_SKINIT:
	case SVM_EXIT_INVLPGA: case SVM_EXIT_MONITOR: case SVM_EXIT_MWAIT:
	case SVM_EXIT_MWAIT_COND:
		e->kind = EXIT_UD_INSN;	/* CPUID hides these features */
		break;
	case SVM_EXIT_INVALID:
		e->kind = EXIT_ENTRY_FAIL;
		break;
	default:
		e->kind = EXIT_UNKNOWN;
		break;
	}
}

/* The part of a segment register the exit contract keeps fresh (vm.h). */
static void seg_hot_from_vmcb(struct vcpu_seg *d, const struct vmcb_seg *s)
{
	d->sel = s->sel;
	d->attr = s->attr;
	d->base = s->base;
}

/*
 * After every #VMEXIT: the register set vm.h promises, from the save area.
 * VMRUN's exit stored ES/CS/SS/DS, the control registers, RAX, RSP, RIP
 * and RFLAGS (APM 15.6); the VMSAVE after it stored FS and GS (15.5.2).
 */
static void svm_sync_after_exit(struct vcpu *v, const struct vmcb *vmcb)
{
	const struct vmcb_save *s = &vmcb->s;
	struct vcpu_state *st = &v->st;

	st->gpr[GPR_RAX] = s->rax;
	st->gpr[GPR_RSP] = s->rsp;
	st->rip = s->rip;
	st->rflags = s->rflags;
	st->int_shadow = vmcb->c.int_state & 1;
	st->cr0 = s->cr0;
	st->cr2 = s->cr2;
	st->cr3 = s->cr3;
	st->cr4 = s->cr4;
	st->efer = s->efer & ~EFER_SVME;
	st->cpl = s->cpl;
	seg_hot_from_vmcb(&st->seg[SEG_ES], &s->es);
	seg_hot_from_vmcb(&st->seg[SEG_CS], &s->cs);
	seg_hot_from_vmcb(&st->seg[SEG_SS], &s->ss);
	seg_hot_from_vmcb(&st->seg[SEG_DS], &s->ds);
	seg_hot_from_vmcb(&st->seg[SEG_FS], &s->fs);
	seg_hot_from_vmcb(&st->seg[SEG_GS], &s->gs);
}

/* Before every VMRUN: what the handlers may have changed since the exit. */
static void svm_sync_before_entry(struct vcpu *v, struct vmcb *vmcb)
{
	const struct vcpu_state *st = &v->st;

	vmcb->s.rax = st->gpr[GPR_RAX];
	vmcb->s.rsp = st->gpr[GPR_RSP];
	vmcb->s.rip = st->rip;
	vmcb->s.rflags = st->rflags;
	vmcb->s.cr0 = st->cr0;
	vmcb->s.cr3 = st->cr3;
	vmcb->s.cr4 = st->cr4;
	vmcb->s.efer = st->efer | EFER_SVME;
	vmcb->c.int_state = st->int_shadow;
}

/*
 * NMI blocking without vNMI (APM Vol. 2 15.21.4 does not track it for
 * us; KVM does the same): while the guest is in its NMI handler
 * (v->nmi_masked) IRET is intercepted.  The intercept comes before the
 * IRET runs, so the next entry single-steps over it (RFLAGS.TF: the #DB
 * trap comes after the IRET, whatever RFLAGS it pops, SDM Vol. 3B
 * 18.3.1.4) and the exit after it, at another RIP, ends the blocking: a
 * pending NMI goes in at once.  An entry that injects an event does not
 * step (the event's handler would run with TF); the next exit at another
 * RIP ends the blocking then.
 */
static void svm_nmi_entry(struct vcpu *v, struct svm_vcpu *sv, struct vmcb *vmcb)
{
	if (v->nmi_masked && !sv->iret_seen)
		vmcb->c.intercept_misc1 |= SVM_MISC1_IRET;
	else
		vmcb->c.intercept_misc1 &= ~SVM_MISC1_IRET;
	sv->stepping = sv->iret_seen && !(vmcb->c.event_inj & SVM_EVTINJ_VALID);
	if (sv->stepping) {
		sv->step_flags = vmcb->s.rflags & (RFLAGS_TF | RFLAGS_RF);
		sv->step_dr6 = vmcb->s.dr6;
		vmcb->s.rflags |= RFLAGS_TF | RFLAGS_RF;
	}
}

static void svm_nmi_exit(struct vcpu *v, struct svm_vcpu *sv, struct vcpu_exit *e)
{
	bool stepped;

	if (e->raw_reason == SVM_EXIT_IRET) {
		sv->iret_seen = v->nmi_masked;
		sv->iret_rip = v->st.rip;
		e->kind = EXIT_HANDLED;
		return;
	}
	if (!sv->iret_seen)
		return;
	stepped = sv->stepping;
	sv->stepping = false;
	if (v->st.rip == sv->iret_rip) {
		/* Not past the IRET yet (a fault on its stack, an interrupt
		 * before it): the guest's own TF and RF come back. */
		if (stepped) {
			v->st.rflags = (v->st.rflags & ~(RFLAGS_TF | RFLAGS_RF)) | sv->step_flags;
			sv->vmcb->s.rflags = v->st.rflags;
		}
		return;
	}
	sv->iret_seen = false;
	v->nmi_masked = false;
	/* Our own single-step trap: swallowed, DR6 as it was.  A guest that
	 * was single-stepping itself gets its #DB. */
	if (stepped && e->kind == EXIT_EXCEPTION && e->exc.vector == EXC_DB &&
	    !(sv->step_flags & RFLAGS_TF)) {
		sv->vmcb->s.dr6 = sv->step_dr6;
		e->kind = EXIT_HANDLED;
	}
}

/* No entry this time: the loop goes round (irq_entry_late). */
static void svm_no_entry(struct vcpu_exit *e)
{
	memset(e, 0, sizeof(*e));
	e->kind = EXIT_HANDLED;
}

static int svm_vcpu_run(struct vcpu *v, struct vcpu_exit *e)
{
	struct svm_vcpu *sv = v->vendor;
	struct vmcb *vmcb = sv->vmcb;
	struct svm_cpu *sc = &svm_cpus[this_cpu()->id];
	uint64_t host_save;

	/* GIF clear from here: a host interrupt now waits and makes VMRUN
	 * exit at once; one that came before is checked for here. */
	clgi();
	if (irq_entry_late(v)) {
		stgi();
		svm_no_entry(e);
		return 0;
	}
	svm_sync_before_entry(v, vmcb);
	vmcb->c.n_cr3 = v->vm->s2.root_phys;
	vmcb->c.event_inj = 0;
	svm_inject(v, &vmcb->c);
	svm_irq_window(v, &vmcb->c);
	svm_nmi_entry(v, sv, vmcb);
	/* QEMU flushes on every VMRUN anyway; real CPUs need this after every
	 * stage-2 change (APM 15.16.1 TLB control). */
	if (sv->flush) {
		vmcb->c.tlb_control = (svm_features & CPUID_SVM_FLUSHASID) ?
				      TLB_FLUSH_ASID : TLB_FLUSH_ALL;
		sv->flush = false;
	}
	host_save = virt_to_phys(sc->host_save);
	/* The guest's FPU state only around VMRUN, with GIF clear: no
	 * interrupt and no C code between (vcpu.c: vcpu_fpu_enter). */
	if (vcpu_fpu_enter(v) < 0) {
		stgi();
		svm_no_entry(e);	/* vcpu_loop stops the VM (v->fpu_fault) */
		return 0;
	}
	dr_guest_enter(v, false);	/* DR6 is in the VMCB */
	svm_enter(sv->vmcb_pa, host_save, v->st.gpr);
	dr_guest_leave(v, false);
	vcpu_fpu_leave(v);
	stgi();
	vmcb->c.tlb_control = 0;
	svm_sync_after_exit(v, vmcb);
	svm_requeue(v, vmcb->c.exit_int_info);
	svm_decode(v, e);
	svm_nmi_exit(v, sv, e);
	return 0;
}

/* The floor any hypervisor pays per exit on this CPU: VMRUN, #VMEXIT,
 * advance RIP, nothing else (no FPU switch, no dispatch). */
static int64_t svm_bench_min_exit(struct vcpu *v, uint64_t iters)
{
	struct svm_vcpu *sv = v->vendor;
	struct vmcb *vmcb = sv->vmcb;
	uint64_t host_save = virt_to_phys(svm_cpus[this_cpu()->id].host_save);
	uint64_t t0, i;

	vmcb->s.rip = v->st.rip;
	vmcb->s.rflags = v->st.rflags;
	vmcb->s.rsp = v->st.gpr[GPR_RSP];
	vmcb->c.tlb_control = TLB_FLUSH_ALL;
	t0 = rdtsc();
	for (i = 0; i < iters; i++) {
		clgi();
		svm_enter(sv->vmcb_pa, host_save, v->st.gpr);
		stgi();
		vmcb->c.tlb_control = 0;
		if ((uint32_t)vmcb->c.exit_code == SVM_EXIT_INTR)
			continue;
		if ((uint32_t)vmcb->c.exit_code != SVM_EXIT_CPUID)
			return -EIO;
		vmcb->s.rip += 2;
	}
	return (int64_t)(rdtsc() - t0);
}

const struct hv_ops svm_ops = {
	.probe = svm_probe,
	.cpu_enable = svm_cpu_enable,
	.vcpu_init = svm_vcpu_init,
	.vcpu_free = svm_vcpu_free,
	.vcpu_run = svm_vcpu_run,
	.load_state = svm_load_state,
	.save_state = svm_save_state,
	.flush_stage2 = svm_flush_stage2,
	.pml_drain = NULL,
	.bench_min_exit = svm_bench_min_exit,
};
