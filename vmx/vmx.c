/*
 * Intel VT-x back end: SDM Vol. 3C chapters 23-29 and appendix A.
 *
 * It turns VMX on in each host CPU that runs guests, builds one VMCS per
 * vCPU, enters the guest and turns each VM exit into the generic struct
 * vcpu_exit.  Guests run with EPT and "unrestricted guest", which lets
 * them start in the Multiboot state (protected mode, paging off) and move
 * between modes on their own.  CPUID policy, MSRs, devices, MMIO emulation
 * and dirty logging are generic; vmx_state.c converts the guest state.
 *
 * A VMCS is only usable on the CPU where VMPTRLD made it current, so the
 * VMCS is filled in on the vCPU's first run (vm_start calls vcpu_init on
 * the boot CPU), and operations that need it from elsewhere (save_state,
 * pml_drain, vcpu_free) run on the vCPU's CPU through smp_call.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/virt/debugreg.h"
#include "kernel/virt/irq.h"
#include "kernel/virt/vm.h"
#include "vmx/vmcs.h"
#include "vmx/vmx.h"

#define CPUID_1_ECX_VMX		(1u << 5)
#define IO_BITMAP_PAGES		2
#define PML_ENTRIES		512
#define MAX_VPID		0xffff

struct vmx_cpu {
	void *vmxon;
	bool on;
	struct vmx_vcpu *current;	/* whose VMCS VMPTRLD made current */
	struct vcpu *msr_owner;		/* whose SYSCALL MSRs are loaded */
};

struct vmx_caps vmx_caps;
static struct vmx_cpu vmx_cpus[MAX_CPUS];
static volatile uint32_t vmx_next_vpid = 1;

int vmx_enter(uint64_t *gprs, int launched);
void vmx_exit_stub(void);

/* VMXON and VMCS regions: 4 KiB, below 4 GiB if IA32_VMX_BASIC bit 48
 * says the CPU only takes 32-bit addresses for them (A.1). */
static void *vmx_page(void)
{
	if (vmx_caps.basic & BASIC_PHYS32)
		return page_alloc_below(1, 1ull << 32);
	return page_alloc(1);
}

/*
 * Controls go through the capability MSRs (A.3-A.5): a bit set in the low
 * half must be 1 (default1), a bit clear in the high half must be 0.
 * `need` are the bits Tern cannot run without.
 */
static bool adjust(uint32_t msr, uint32_t want, uint32_t need, uint32_t *out,
		   const char *what, char *why, size_t len)
{
	uint64_t cap = rdmsr(msr);
	uint32_t v = (want | (uint32_t)cap) & (uint32_t)(cap >> 32);

	if ((v & need) != need) {
		snprintf(why, len, "VT-x %s controls lack bits %#x", what, need & ~v);
		return false;
	}
	*out = v;
	return true;
}

static bool probe_controls(char *why, size_t len)
{
	struct vmx_caps *c = &vmx_caps;
	bool true_ctls = c->basic & BASIC_TRUE_CTLS;
	uint32_t want2 = PROC2_EPT | PROC2_UNRESTRICTED, allowed2;
	uint32_t proc_need = PROC_HLT_EXIT | PROC_IO_BITMAPS | PROC_MSR_BITMAPS |
			     PROC_SECONDARY | PROC_MWAIT_EXIT | PROC_MONITOR_EXIT;
	uint32_t exit_need = EXIT_HOST_64 | EXIT_SAVE_EFER | EXIT_LOAD_EFER |
			     EXIT_SAVE_PAT | EXIT_LOAD_PAT;

	if (!adjust(true_ctls ? MSR_VMX_TRUE_PINBASED : MSR_VMX_PINBASED,
		    PIN_EXTINT_EXIT | PIN_NMI_EXIT | PIN_VIRTUAL_NMI, PIN_EXTINT_EXIT | PIN_NMI_EXIT,
		    &c->pin, "pin-based", why, len) ||
	    !adjust(true_ctls ? MSR_VMX_TRUE_PROCBASED : MSR_VMX_PROCBASED,
		    proc_need | PROC_TSC_OFFSET, proc_need, &c->proc,
		    "processor-based", why, len) ||
	    !adjust(true_ctls ? MSR_VMX_TRUE_EXIT : MSR_VMX_EXIT,
		    exit_need | EXIT_SAVE_DEBUG, exit_need, &c->exit, "VM-exit",
		    why, len) ||
	    !adjust(true_ctls ? MSR_VMX_TRUE_ENTRY : MSR_VMX_ENTRY,
		    ENTRY_LOAD_EFER | ENTRY_LOAD_PAT | ENTRY_LOAD_DEBUG,
		    ENTRY_LOAD_EFER | ENTRY_LOAD_PAT, &c->entry, "VM-entry", why, len))
		return false;
	if (!((rdmsr(true_ctls ? MSR_VMX_TRUE_PROCBASED : MSR_VMX_PROCBASED) >> 32) &
	      PROC_INTR_WINDOW)) {
		snprintf(why, len, "VT-x without interrupt-window exiting");
		return false;
	}
	/* Without NMI-window exiting a blocked NMI could wait for good:
	 * then no virtual NMIs either, and Tern does not model blocking. */
	c->vnmi = (c->pin & PIN_VIRTUAL_NMI) &&
		  ((rdmsr(true_ctls ? MSR_VMX_TRUE_PROCBASED : MSR_VMX_PROCBASED) >> 32) &
		   PROC_NMI_WINDOW);
	if (!c->vnmi)
		c->pin &= ~PIN_VIRTUAL_NMI;
	if (c->exit & EXIT_ACK_INTR) {
		snprintf(why, len, "VT-x forces acknowledge-interrupt-on-exit");
		return false;
	}
	c->entry &= ~ENTRY_IA32E;	/* per vCPU, from EFER.LMA */
	allowed2 = (uint32_t)(rdmsr(MSR_VMX_PROCBASED2) >> 32);
	if ((allowed2 & want2) != want2) {
		snprintf(why, len, "VT-x without %s%s (needs a Nehalem/Westmere or "
			 "later CPU model)", (allowed2 & PROC2_EPT) ? "" : "EPT ",
			 (allowed2 & PROC2_UNRESTRICTED) ? "" : "unrestricted guest");
		return false;
	}
	c->ept_vpid = rdmsr(MSR_VMX_EPT_VPID_CAP);
	c->ad = c->ept_vpid & EPT_CAP_AD;
	/* VPID only with a way to flush a reused VPID (28.3.3.3). */
	c->vpid = (allowed2 & PROC2_VPID) && (c->ept_vpid & VPID_CAP_INVVPID) &&
		  (c->ept_vpid & (VPID_CAP_SINGLE | VPID_CAP_ALL));
	/* PML logs on D-bit updates, so it needs EPT A/D (25.6.12). */
	c->pml = (allowed2 & PROC2_PML) && c->ad;
	c->proc2 = want2 | (c->vpid ? PROC2_VPID : 0) | (c->pml ? PROC2_PML : 0);
	if (!(c->ept_vpid & EPT_CAP_PWL4) || !(c->ept_vpid & EPT_CAP_WB) ||
	    !(c->ept_vpid & EPT_CAP_2M) || !(c->ept_vpid & EPT_CAP_INVEPT) ||
	    !(c->ept_vpid & (EPT_CAP_INVEPT_SINGLE | EPT_CAP_INVEPT_ALL))) {
		snprintf(why, len, "EPT lacks 4-level walks, WB tables, 2 MiB pages "
			 "or INVEPT (IA32_VMX_EPT_VPID_CAP %#lx)", c->ept_vpid);
		return false;
	}
	return true;
}

/* Whether this CPU can run VT-x guests with EPT at all (boot CPU). */
static bool vmx_probe(struct hv_caps *caps, char *why, size_t len)
{
	struct vmx_caps *c = &vmx_caps;
	uint32_t a, b, cx, d;
	uint64_t fc;

	cpuid(1, 0, &a, &b, &cx, &d);
	if (!(cx & CPUID_1_ECX_VMX)) {
		snprintf(why, len, "CPUID reports no VMX");
		return false;
	}
	/* Firmware may lock the MSR with VMX off; an unlocked one (OVMF under
	 * Bochs leaves 0) is set and locked by cpu_enable (23.7). */
	fc = rdmsr(MSR_FEATURE_CONTROL);
	if ((fc & FC_LOCK) && !(fc & FC_VMX_OUTSIDE_SMX)) {
		snprintf(why, len, "VMX disabled by firmware (IA32_FEATURE_CONTROL "
			 "locked without VMX outside SMX)");
		return false;
	}
	c->basic = rdmsr(MSR_VMX_BASIC);
	if (BASIC_REGION_SIZE(c->basic) > PAGE_SIZE ||
	    BASIC_MEMTYPE(c->basic) != S2_MT_WB) {
		snprintf(why, len, "unusable IA32_VMX_BASIC %#lx", c->basic);
		return false;
	}
	c->misc = rdmsr(MSR_VMX_MISC);
	c->cr0_fixed0 = rdmsr(MSR_VMX_CR0_FIXED0);
	c->cr0_fixed1 = rdmsr(MSR_VMX_CR0_FIXED1) & 0xffffffffull;
	c->cr4_fixed0 = rdmsr(MSR_VMX_CR4_FIXED0);
	c->cr4_fixed1 = rdmsr(MSR_VMX_CR4_FIXED1);
	if (!probe_controls(why, len))
		return false;
	caps->s2fmt = c->ad ? &s2_fmt_ept : &s2_fmt_ept_noad;
	caps->dirty_modes = (1u << DIRTY_WP) | (c->ad ? 1u << DIRTY_DBIT : 0) |
			    (c->pml ? 1u << DIRTY_PML : 0);
	snprintf(caps->name, sizeof(caps->name), "Intel VT-x with EPT%s%s%s",
		 c->ad ? ", A/D" : "", c->pml ? ", PML" : "", c->vpid ? ", VPID" : "");
	pr_info("vmx: revision %#x, %s controls, pin %#x proc %#x proc2 %#x "
		"exit %#x entry %#x, EPT/VPID caps %#lx", BASIC_REVISION(c->basic),
		(c->basic & BASIC_TRUE_CTLS) ? "true" : "legacy", c->pin, c->proc,
		c->proc2, c->exit, c->entry, c->ept_vpid);
	return true;
}

/* Per host CPU: lock IA32_FEATURE_CONTROL with VMX on, the CR0/CR4 bits
 * VMX operation fixes (A.7, A.8), CR4.VMXE, then VMXON (23.7, 24.11.5). */
static int vmx_cpu_enable(void)
{
	struct vmx_cpu *vc = &vmx_cpus[this_cpu()->id];
	uint64_t fc = rdmsr(MSR_FEATURE_CONTROL);
	uint64_t pa;

	if (vc->on)
		return 0;
	if (!(fc & FC_LOCK)) {
		wrmsr(MSR_FEATURE_CONTROL, fc | FC_LOCK | FC_VMX_OUTSIDE_SMX);
		fc = rdmsr(MSR_FEATURE_CONTROL);
	}
	if (!(fc & FC_VMX_OUTSIDE_SMX)) {
		pr_warn("vmx: CPU %u: IA32_FEATURE_CONTROL %#lx forbids VMX",
			this_cpu()->id, fc);
		return -EPERM;
	}
	if (!vc->vmxon && !(vc->vmxon = vmx_page()))
		return -ENOMEM;
	*(uint32_t *)vc->vmxon = BASIC_REVISION(vmx_caps.basic);
	write_cr0((read_cr0() | vmx_caps.cr0_fixed0) & vmx_caps.cr0_fixed1);
	write_cr4((read_cr4() | vmx_caps.cr4_fixed0 | CR4_VMXE) & vmx_caps.cr4_fixed1);
	pa = virt_to_phys(vc->vmxon);
	if (!vmx_on(pa)) {
		pr_warn("vmx: CPU %u: VMXON failed", this_cpu()->id);
		return -EIO;
	}
	vc->on = true;
	dr_host_reset();
	return 0;
}

static int vmx_vcpu_init(struct vcpu *v)
{
	struct vmx_vcpu *vv = page_alloc(1);
	uint32_t vpid;

	if (!vv)
		return -ENOMEM;
	vv->vmcs = vmx_page();
	vv->io_bitmap = page_alloc(IO_BITMAP_PAGES);
	vv->msr_bitmap = page_alloc(1);
	vv->pml = vmx_caps.pml ? page_alloc(1) : NULL;
	if (!vv->vmcs || !vv->io_bitmap || !vv->msr_bitmap ||
	    (vmx_caps.pml && !vv->pml))
		goto fail;
	/* All ones: every port and every MSR exits to Tern (25.6.4, 25.6.9). */
	memset(vv->io_bitmap, 0xff, IO_BITMAP_PAGES * PAGE_SIZE);
	memset(vv->msr_bitmap, 0xff, PAGE_SIZE);
	vv->vmcs_pa = virt_to_phys(vv->vmcs);
	vv->cpu = -1;
	vv->need_load = true;
	if (vmx_caps.vpid) {
		vpid = __atomic_fetch_add(&vmx_next_vpid, 1, __ATOMIC_RELAXED);
		vv->vpid = 1 + (vpid - 1) % MAX_VPID;	/* 0 is the host's */
	}
	v->vendor = vv;
	return 0;
fail:
	if (vv->vmcs)
		page_free(vv->vmcs, 1);
	if (vv->io_bitmap)
		page_free(vv->io_bitmap, IO_BITMAP_PAGES);
	if (vv->msr_bitmap)
		page_free(vv->msr_bitmap, 1);
	if (vv->pml)
		page_free(vv->pml, 1);
	page_free(vv, 1);
	return -ENOMEM;
}

/* VMCLEAR on the CPU where the VMCS is current, so the CPU writes back
 * and forgets its cached copy before the page is freed (24.11.1). */
static void clear_here(void *arg)
{
	struct vcpu *v = arg;
	struct vmx_vcpu *vv = v->vendor;
	struct vmx_cpu *vc = &vmx_cpus[this_cpu()->id];

	vmclear(vv->vmcs_pa);
	if (vc->current == vv)
		vc->current = NULL;
	if (vc->msr_owner == v)
		vc->msr_owner = NULL;
}

static void vmx_vcpu_free(struct vcpu *v)
{
	struct vmx_vcpu *vv = v->vendor;

	if (!vv)
		return;
	/* A CPU that did not answer may still hold the VMCS in its cache
	 * and write it back some day: its pages are left to it. */
	if (vv->cpu >= 0 && smp_call((uint32_t)vv->cpu, clear_here, v, true) < 0) {
		pr_err("vm %s vcpu %d: VMCLEAR on CPU %d failed: VMCS pages leaked",
		       v->vm->name, v->id, vv->cpu);
		v->vendor = NULL;
		return;
	}
	page_free(vv->vmcs, 1);
	page_free(vv->io_bitmap, IO_BITMAP_PAGES);
	page_free(vv->msr_bitmap, 1);
	if (vv->pml)
		page_free(vv->pml, 1);
	page_free(vv, 1);
	v->vendor = NULL;
}

static void flush_ept(struct vcpu *v)
{
	uint64_t eptp = s2_eptp(&v->vm->s2);

	if (vmx_caps.ept_vpid & EPT_CAP_INVEPT_SINGLE)
		invept(INVEPT_SINGLE, eptp);
	else
		invept(INVEPT_ALL, 0);
}

/* A VPID may have been used before (they wrap): drop what the TLB holds
 * for it before its first entry (28.3.3.3). */
static void flush_vpid(struct vmx_vcpu *vv)
{
	if (!vmx_caps.vpid)
		return;
	if (vmx_caps.ept_vpid & VPID_CAP_SINGLE)
		invvpid(INVVPID_SINGLE, vv->vpid, 0);
	else
		invvpid(INVVPID_ALL, 0, 0);
}

/* Host state (25.5, 28.5): what the CPU loads at every VM exit. */
static int setup_host(void)
{
	struct percpu *p = this_cpu();
	struct { uint16_t limit; uint64_t base; } __attribute__((packed)) gdtr, idtr;
	uint16_t fs, gs;
	bool ok = true;

	__asm__ volatile("sgdt %0" : "=m"(gdtr));
	__asm__ volatile("sidt %0" : "=m"(idtr));
	__asm__ volatile("mov %%fs, %0" : "=r"(fs));
	__asm__ volatile("mov %%gs, %0" : "=r"(gs));
	ok &= vmwrite(VMCS_HOST_CR0, read_cr0());
	ok &= vmwrite(VMCS_HOST_CR3, read_cr3());
	ok &= vmwrite(VMCS_HOST_CR4, read_cr4());
	ok &= vmwrite(VMCS_HOST_CS_SEL, GDT_KCODE);
	ok &= vmwrite(VMCS_HOST_SS_SEL, GDT_KDATA);
	ok &= vmwrite(VMCS_HOST_DS_SEL, GDT_KDATA);
	ok &= vmwrite(VMCS_HOST_ES_SEL, GDT_KDATA);
	ok &= vmwrite(VMCS_HOST_FS_SEL, fs & ~7u);	/* RPL, TI must be 0 (26.2.3) */
	ok &= vmwrite(VMCS_HOST_GS_SEL, gs & ~7u);
	ok &= vmwrite(VMCS_HOST_TR_SEL, GDT_TSS);
	ok &= vmwrite(VMCS_HOST_FS_BASE, rdmsr(MSR_FS_BASE));
	ok &= vmwrite(VMCS_HOST_GS_BASE, (uint64_t)p);
	ok &= vmwrite(VMCS_HOST_TR_BASE, (uint64_t)&p->tss);
	ok &= vmwrite(VMCS_HOST_GDTR_BASE, gdtr.base);
	ok &= vmwrite(VMCS_HOST_IDTR_BASE, idtr.base);
	ok &= vmwrite(VMCS_HOST_SYSENTER_CS, 0);
	ok &= vmwrite(VMCS_HOST_SYSENTER_ESP, 0);
	ok &= vmwrite(VMCS_HOST_SYSENTER_EIP, 0);
	ok &= vmwrite(VMCS_HOST_EFER, rdmsr(MSR_EFER));
	ok &= vmwrite(VMCS_HOST_PAT, rdmsr(MSR_PAT));
	ok &= vmwrite(VMCS_HOST_RIP, (uint64_t)vmx_exit_stub);
	return ok ? 0 : -EIO;
}

/* Execution, exit and entry controls (25.6-25.8). */
static int setup_controls(struct vcpu *v, struct vmx_vcpu *vv)
{
	const struct vmx_caps *c = &vmx_caps;
	bool ok = true;

	/* Tern owns the CR0/CR4 bits VMX fixes; the guest sees its own. */
	vv->cr0_mask = (c->cr0_fixed0 & ~(CR0_PE | CR0_PG)) | (~c->cr0_fixed1 & 0xffffffffull);
	vv->cr4_mask = c->cr4_fixed0 | ~c->cr4_fixed1 | CR4_VMXE;
	vv->entry_ctls = c->entry;
	ok &= vmwrite(VMCS_PIN_CTLS, c->pin);
	ok &= vmwrite(VMCS_PROC_CTLS, c->proc);
	ok &= vmwrite(VMCS_PROC2_CTLS, c->proc2);
	ok &= vmwrite(VMCS_EXIT_CTLS, c->exit);
	ok &= vmwrite(VMCS_ENTRY_CTLS, vv->entry_ctls);
	/* #DB and #AC are reflected (a guest could otherwise wedge this CPU
	 * in a microcode loop delivering them, CVE-2015-5307 and -8104), #MC
	 * is the host's (25.6.3). */
	ok &= vmwrite(VMCS_EXCEPTION_BITMAP, (1u << EXC_DB) | (1u << EXC_AC) |
		      (1u << EXC_MC));
	ok &= vmwrite(VMCS_PF_ERR_MASK, 0);
	ok &= vmwrite(VMCS_PF_ERR_MATCH, 0);
	ok &= vmwrite(VMCS_CR3_TARGET_COUNT, 0);
	ok &= vmwrite(VMCS_EXIT_MSR_STORE_COUNT, 0);
	ok &= vmwrite(VMCS_EXIT_MSR_LOAD_COUNT, 0);
	ok &= vmwrite(VMCS_ENTRY_MSR_LOAD_COUNT, 0);
	ok &= vmwrite(VMCS_ENTRY_INTR_INFO, 0);
	ok &= vmwrite(VMCS_IO_BITMAP_A, virt_to_phys(vv->io_bitmap));
	ok &= vmwrite(VMCS_IO_BITMAP_B, virt_to_phys(vv->io_bitmap + PAGE_SIZE));
	ok &= vmwrite(VMCS_MSR_BITMAP, virt_to_phys(vv->msr_bitmap));
	ok &= vmwrite(VMCS_CR0_MASK, vv->cr0_mask);
	ok &= vmwrite(VMCS_CR4_MASK, vv->cr4_mask);
	ok &= vmwrite(VMCS_EPT_POINTER, s2_eptp(&v->vm->s2));
	if (c->vpid)
		ok &= vmwrite(VMCS_VPID, vv->vpid);
	if (c->pml) {
		/* Always on with A/D: a D-bit 0->1 change is then always
		 * logged, whichever dirty mode runs (see vmx_pml_drain). */
		ok &= vmwrite(VMCS_PML_ADDRESS, virt_to_phys(vv->pml));
		ok &= vmwrite(VMCS_PML_INDEX, PML_ENTRIES - 1);
	}
	ok &= vmwrite(VMCS_LINK_POINTER, ~0ull);
	ok &= vmwrite(VMCS_GUEST_ACTIVITY, 0);
	ok &= vmwrite(VMCS_GUEST_PENDING_DBG, 0);
	ok &= vmwrite(VMCS_GUEST_DEBUGCTL, 0);
	return ok ? 0 : -EIO;
}

/* First run, on the vCPU's own CPU: the VMCS gets its revision, is
 * cleared (launch state "clear"), made current and filled in (24.11.3). */
static int vmcs_setup(struct vcpu *v, struct vmx_cpu *vc, uint32_t cpu)
{
	struct vmx_vcpu *vv = v->vendor;

	*(uint32_t *)vv->vmcs = BASIC_REVISION(vmx_caps.basic);
	if (!vmclear(vv->vmcs_pa) || !vmptrld(vv->vmcs_pa))
		return -EIO;
	vc->current = vv;
	vv->cpu = (int)cpu;
	vv->launched = false;
	vv->irq_window = false;
	if (setup_controls(v, vv) < 0 || setup_host() < 0)
		return -EIO;
	vv->need_load = true;
	vv->flush = true;
	flush_vpid(vv);
	return 0;
}

static void load_guest_msrs(struct vcpu *v, struct vmx_cpu *vc)
{
	wrmsr(MSR_STAR, v->st.star);
	wrmsr(MSR_LSTAR, v->st.lstar);
	wrmsr(MSR_CSTAR, v->st.cstar);
	wrmsr(MSR_SFMASK, v->st.sfmask);
	wrmsr(MSR_KERNEL_GS_BASE, v->st.kernel_gs_base);
	vc->msr_owner = v;
}

/* Make v's VMCS current here; false if it lives on another CPU. */
static bool vmcs_here(struct vcpu *v)
{
	struct vmx_vcpu *vv = v->vendor;
	struct vmx_cpu *vc = &vmx_cpus[this_cpu()->id];

	if (!vv || vv->cpu != (int)this_cpu()->id)
		return false;
	if (vc->current != vv) {
		if (!vmptrld(vv->vmcs_pa))
			return false;
		vc->current = vv;
	}
	return true;
}

static void vmx_load_state(struct vcpu *v)
{
	struct vmx_vcpu *vv = v->vendor;

	if (!vv)
		return;
	vv->need_load = true;
	if (vmcs_here(v)) {
		vmx_state_to_vmcs(v);
		load_guest_msrs(v, &vmx_cpus[this_cpu()->id]);
	}
}

static void save_here(void *arg)
{
	if (vmcs_here(arg))
		vmx_state_from_vmcs(arg);
}

/* Until the first entry, or while a load is pending, v->st is the truth. */
static void vmx_save_state(struct vcpu *v)
{
	struct vmx_vcpu *vv = v->vendor;

	if (!vv || vv->cpu < 0 || vv->need_load)
		return;
	if (vv->cpu == (int)this_cpu()->id)
		save_here(v);
	else if (smp_call((uint32_t)vv->cpu, save_here, v, true) < 0)
		pr_warn("vm %s vcpu %d: state not read from CPU %d: v->st may be stale",
			v->vm->name, v->id, vv->cpu);
}

static void vmx_flush_stage2(struct vcpu *v)
{
	if (v->vendor)
		((struct vmx_vcpu *)v->vendor)->flush = true;
}

/*
 * The page-modification log (28.3.6): the CPU writes the GPA of each page
 * whose EPT D bit it sets at index PML_INDEX, then decrements the index;
 * 511 means empty and an index outside 0-511 (0xffff) means full.
 */
static long pml_drain_here(struct vcpu *v)
{
	struct vmx_vcpu *vv = v->vendor;
	uint16_t idx = (uint16_t)vmread(VMCS_PML_INDEX);
	long n = 0;
	int i;

	for (i = idx >= PML_ENTRIES ? 0 : idx + 1; i < PML_ENTRIES; i++, n++)
		if (v->vm->dirty.bits)
			dirtymap_mark(&v->vm->dirty, vv->pml[i]);
	vmwrite(VMCS_PML_INDEX, PML_ENTRIES - 1);
	return n;
}

struct drain_arg {
	struct vcpu *v;
	long n;
};

static void drain_here(void *arg)
{
	struct drain_arg *a = arg;

	a->n = vmcs_here(a->v) ? pml_drain_here(a->v) : -EIO;
}

/*
 * Move this vCPU's logged GPAs into the VM's dirty map, on the vCPU's CPU
 * (the index lives in its VMCS).  PML runs whenever EPT A/D is on, so a
 * page's first write after its D bit was cleared is always logged; the
 * PML-mode harvest drains every vCPU, then clears the D bits of exactly
 * the pages it reports and flushes, and so keeps the dirty log's invariant
 * (kernel/virt/dirty.c).
 */
static long vmx_pml_drain(struct vcpu *v)
{
	struct vmx_vcpu *vv = v->vendor;
	struct drain_arg a = { v, 0 };
	int rc;

	if (!vv || vv->cpu < 0 || !vmx_caps.pml)
		return 0;
	if (vv->cpu == (int)this_cpu()->id) {
		uint64_t f = irq_save();

		drain_here(&a);
		irq_restore(f);
		return a.n;
	}
	rc = smp_call((uint32_t)vv->cpu, drain_here, &a, true);
	return rc < 0 ? rc : a.n;
}

/* VM-entry event injection (26.6): soft events need the instruction
 * length, and real mode takes no error codes (26.2.1.3). */
static void inject(struct vcpu *v, struct vmx_vcpu *vv)
{
	const struct vcpu_event *ev = &v->pending;
	uint32_t info;

	vv->nmi_injecting = ev->valid && ev->type == EVENT_NMI;
	if (!ev->valid)
		return;
	info = ev->vector | ((uint32_t)(ev->type & 7) << 8) | INTR_INFO_VALID;
	if (ev->has_error && (v->st.cr0 & CR0_PE)) {
		info |= INTR_INFO_HAS_ERROR;
		vmwrite(VMCS_ENTRY_EXC_ERRCODE, ev->error);
	}
	if (ev->type >= INTR_TYPE_SOFT_INT)
		vmwrite(VMCS_ENTRY_INSN_LEN, vv->inject_len ? vv->inject_len : 1);
	vmwrite(VMCS_ENTRY_INTR_INFO, info);
	/* Delivery ends any STI / MOV SS shadow, and an injected event may
	 * not coexist with one (26.3.1.5). */
	v->st.int_shadow = false;
	v->pending.valid = false;
	vv->inject_len = 0;
}

/* Interrupt-window exiting (25.6.2): an exit at the first instruction
 * boundary where the guest could take an external interrupt. */
static void irq_window(struct vcpu *v, struct vmx_vcpu *vv)
{
	bool nmi = v->nmi_window && vmx_caps.vnmi;

	if (v->irq_window == vv->irq_window && nmi == vv->nmi_window)
		return;
	vv->irq_window = v->irq_window;
	vv->nmi_window = nmi;
	vmwrite(VMCS_PROC_CTLS, vmx_caps.proc | (vv->irq_window ? PROC_INTR_WINDOW : 0) |
				(nmi ? PROC_NMI_WINDOW : 0));
}

/*
 * An exit during an IRET that had already ended virtual-NMI blocking
 * (SDM Vol. 3C 27.2.2, 27.2.3: bit 12 of the exit's interruption info,
 * or of an EPT violation's qualification): the IRET runs again after
 * the exit, so the blocking it ended is put back first.
 */
static void nmi_reblock(struct vcpu *v, bool unblocked_by_iret)
{
	if (vmx_caps.vnmi && unblocked_by_iret)
		v->nmi_masked = true;
}

/* An event whose delivery the exit interrupted goes back in (27.2.4). */
static void requeue(struct vcpu *v, struct vmx_vcpu *vv)
{
	uint32_t info = (uint32_t)vmread(VMCS_IDT_VEC_INFO);

	if (!(info & INTR_INFO_VALID) || v->pending.valid)
		return;
	v->pending = (struct vcpu_event){
		.valid = true,
		.vector = info & 0xff,
		.type = INTR_TYPE(info),
		.has_error = info & INTR_INFO_HAS_ERROR,
		.error = (info & INTR_INFO_HAS_ERROR) ?
			 (uint32_t)vmread(VMCS_IDT_VEC_ERRCODE) : 0,
	};
	vv->inject_len = (uint32_t)vmread(VMCS_EXIT_INSN_LEN);
}

static void skip_insn(struct vcpu *v, uint32_t len)
{
	v->st.rip += len;
	v->st.int_shadow = false;
}

/* Control-register accesses that exit (27.1.3 table 27-3): writes that
 * touch a bit Tern owns, and CR3/CR8 where the CPU forces those exits. */
static void handle_cr(struct vcpu *v, uint64_t qual, uint32_t len)
{
	unsigned cr = qual & 15, type = (qual >> 4) & 3, reg = (qual >> 8) & 15;
	bool long64 = (v->st.efer & EFER_LMA) && (v->st.seg[SEG_CS].attr & SEG_ATTR_L);
	uint64_t val = v->st.gpr[reg], cr0 = v->st.cr0;
	int rc = 0;

	if (!long64)
		val &= 0xffffffffull;
	switch (type) {
	case 0:		/* MOV to CR; a CR8 write is dropped (no virtual APIC) */
		if (cr == 0)
			rc = vmx_set_cr0(v, val);
		else if (cr == 4)
			rc = vmx_set_cr4(v, val);
		else if (cr == 3)
			vmx_set_cr3(v, val);
		break;
	case 1:		/* MOV from CR: only CR3 and CR8 exit */
		v->st.gpr[reg] = cr == 3 ? v->st.cr3 : 0;
		break;
	case 2:		/* CLTS */
		rc = vmx_set_cr0(v, cr0 & ~CR0_TS);
		break;
	default:	/* LMSW: PE, MP, EM, TS; it cannot clear PE */
		rc = vmx_set_cr0(v, (cr0 & ~0xeull) | ((qual >> 16) & 0xf));
		break;
	}
	if (rc < 0)
		vcpu_inject_exception(v, EXC_GP, true, 0);
	else
		skip_insn(v, len);
}

static void entry_failed(struct vcpu *v, struct vcpu_exit *e, const char *what,
			 uint64_t code, uint64_t detail)
{
	e->kind = EXIT_ENTRY_FAIL;
	e->raw_reason = code;
	e->raw_info1 = detail;
	pr_err("vm %s vcpu %d: VM entry failed: %s %lu (%#lx); cr0 %#lx cr4 %#lx "
	       "efer %#lx cs %#x/%#x rip %#lx", v->vm->name, v->id, what, code,
	       detail, v->st.cr0, v->st.cr4, v->st.efer, v->st.seg[SEG_CS].sel,
	       v->st.seg[SEG_CS].attr, v->st.rip);
}

static void decode_io(struct vcpu_exit *e, uint64_t qual)
{
	e->kind = EXIT_IO;
	e->io.size = (qual & 7) + 1;	/* 0, 1, 3: 1, 2, 4 bytes (27.2.1) */
	e->io.in = qual & (1u << 3);
	e->io.string = qual & (1u << 4);
	e->io.rep = qual & (1u << 5);
	e->io.port = (uint16_t)(qual >> 16);
}

static void decode_insn(struct vcpu *v, struct vcpu_exit *e, enum exit_kind k,
			uint32_t len)
{
	e->kind = k;
	e->insn.insn_len = len;
	e->next_rip = v->st.rip + len;
}

/* IRETQ to the next instruction on the same stack: ends NMI blocking. */
static void nmi_unblock(void)
{
	__asm__ volatile(
		"mov %%rsp, %%rax\n\t"
		"pushq %[ss]\n\t"
		"pushq %%rax\n\t"
		"pushfq\n\t"
		"pushq %[cs]\n\t"
		"lea 1f(%%rip), %%rax\n\t"
		"pushq %%rax\n\t"
		"iretq\n"
		"1:"
		: : [ss] "i"(GDT_KDATA), [cs] "i"(GDT_KCODE) : "rax", "memory", "cc");
}

/*
 * An exception from the bitmap (27.2.2).  #DB: the exit leaves DR6 alone
 * and the qualification holds the bits the #DB would have set (B0-B3,
 * BD, BS: 27.2.1 table 27-1); the guest's DR6 gets them as a #DB taken in
 * the guest would (SDM Vol. 3B 18.2.3), then the exception is reflected.
 */
#define DR6_EXIT_BITS	0x600full	/* B0-B3, BD, BS */

static void decode_exc(struct vcpu *v, struct vcpu_exit *e, uint32_t info,
		       uint64_t qual)
{
	uint32_t vector = info & 0xff;

	if (vector == EXC_MC) {
		e->kind = EXIT_MCE;
		return;
	}
	if (vector == EXC_DB)
		v->st.dr6 = (v->st.dr6 & ~0xfull) | (qual & DR6_EXIT_BITS);
	e->kind = EXIT_EXCEPTION;
	e->exc.vector = (uint8_t)vector;
	e->exc.has_error = info & INTR_INFO_HAS_ERROR;
	e->exc.error = e->exc.has_error ? (uint32_t)vmread(VMCS_EXIT_INTR_ERRCODE) : 0;
}

static void decode(struct vcpu *v, struct vcpu_exit *e)
{
	uint32_t reason = (uint32_t)vmread(VMCS_EXIT_REASON);
	uint64_t qual = vmread(VMCS_EXIT_QUAL);
	uint32_t len = (uint32_t)vmread(VMCS_EXIT_INSN_LEN), info;

	e->raw_reason = reason;
	e->raw_info1 = qual;
	e->raw_info2 = 0;
	e->kind = EXIT_UNKNOWN;
	if (reason & VMX_EXIT_FAILED_ENTRY) {
		entry_failed(v, e, "exit reason", reason & 0xffff, qual);
		return;
	}
	switch (reason & 0xffff) {
	case VMX_EXIT_EXC_NMI:
		info = (uint32_t)vmread(VMCS_EXIT_INTR_INFO);
		e->raw_info2 = info;
		if (INTR_TYPE(info) == INTR_TYPE_HW_EXC) {
			nmi_reblock(v, (info & (1u << 12)) && (info & 0xff) != 8 /* #DF */);
			decode_exc(v, e, info, qual);
			break;
		}
		/* Otherwise an NMI.  The host's
		 * NMI handler does not run: the NMI is counted, and NMIs stay
		 * blocked after such an exit until the next IRET (SDM Vol. 3C
		 * 28.1.1 / 24.4.2), so one IRET to ourselves unblocks them, or
		 * the next kick would never arrive. */
		if (INTR_TYPE(info) == INTR_TYPE_NMI) {
			e->kind = EXIT_NMI;
			this_cpu()->nmis++;
			nmi_unblock();
		}
		break;
	case VMX_EXIT_EXTINT:
		e->kind = EXIT_EXTINT;
		break;
	case VMX_EXIT_INTR_WINDOW:
	case VMX_EXIT_NMI_WINDOW:
		e->kind = EXIT_IRQ_WINDOW;
		break;
	case VMX_EXIT_TRIPLE_FAULT:
		e->kind = EXIT_SHUTDOWN;
		break;
	case VMX_EXIT_MCE_ENTRY:
		e->kind = EXIT_MCE;	/* a machine check during VM entry */
		break;
	case VMX_EXIT_TASK_SWITCH:
		/* Always exits (SDM Vol. 3C "Other Causes of VM Exits");
		 * qualification 15:0 the selector, 31:30 the source
		 * (27.2.1 table 27-2). */
		e->kind = EXIT_TASK_SWITCH;
		e->raw_info1 = qual & 0xffff;
		e->raw_info2 = (qual >> 30) & 3;
		break;
	case VMX_EXIT_CPUID:
		decode_insn(v, e, EXIT_CPUID, len);
		break;
	case VMX_EXIT_HLT:
		decode_insn(v, e, EXIT_HLT, len);
		break;
	case VMX_EXIT_VMCALL:
		decode_insn(v, e, EXIT_HYPERCALL, len);
		break;
	case VMX_EXIT_RDMSR:
		decode_insn(v, e, EXIT_RDMSR, len);
		break;
	case VMX_EXIT_WRMSR:
		decode_insn(v, e, EXIT_WRMSR, len);
		break;
	case VMX_EXIT_XSETBV:
		decode_insn(v, e, EXIT_XSETBV, len);
		break;
	case VMX_EXIT_IO:
		decode_io(e, qual);
		e->next_rip = v->st.rip + len;
		break;
	case VMX_EXIT_EPT_VIOLATION:
		/* Qualification (27.2.1 table 27-7): bits 0-2 the access,
		 * bits 3-5 what the translation allowed (none: not present). */
		nmi_reblock(v, qual & (1u << 12));
		e->kind = EXIT_STAGE2;
		e->s2.gpa = vmread(VMCS_GUEST_PHYS_ADDR);
		e->s2.write = qual & 2;
		e->s2.fetch = qual & 4;
		e->s2.present = qual & 0x38;
		e->raw_info2 = e->s2.gpa;
		break;
	case VMX_EXIT_EPT_MISCONFIG:
		e->raw_info2 = vmread(VMCS_GUEST_PHYS_ADDR);
		pr_err("vm %s: EPT misconfiguration at gpa %#lx", v->vm->name,
		       e->raw_info2);
		e->kind = EXIT_ENTRY_FAIL;
		break;
	case VMX_EXIT_PML_FULL:
		pml_drain_here(v);
		e->kind = EXIT_HANDLED;
		break;
	case VMX_EXIT_CR_ACCESS:
		handle_cr(v, qual, len);
		e->kind = EXIT_HANDLED;
		break;
	case VMX_EXIT_INVLPG:
		/* Only where the CPU forces INVLPG exiting: with EPT the
		 * guest's linear mappings are tagged with its VPID. */
		if (vmx_caps.vpid)
			invvpid((vmx_caps.ept_vpid & VPID_CAP_SINGLE) ? INVVPID_SINGLE :
				INVVPID_ALL, ((struct vmx_vcpu *)v->vendor)->vpid, 0);
		skip_insn(v, len);
		e->kind = EXIT_HANDLED;
		break;
	case VMX_EXIT_INVD:
	case VMX_EXIT_WBINVD:
		skip_insn(v, len);	/* guest RAM is always write-back */
		e->kind = EXIT_HANDLED;
		break;
	case VMX_EXIT_GETSEC:
	case VMX_EXIT_MONITOR:
	case VMX_EXIT_MWAIT:
	case VMX_EXIT_INVEPT:
	case VMX_EXIT_INVVPID:
		e->kind = EXIT_UD_INSN;	/* CPUID hides these features */
		break;
	default:
		if ((reason & 0xffff) >= VMX_EXIT_VMCLEAR &&
		    (reason & 0xffff) <= VMX_EXIT_VMXON)
			e->kind = EXIT_UD_INSN;	/* no nested VMX */
		break;
	}
}

static int vmx_vcpu_run(struct vcpu *v, struct vcpu_exit *e)
{
	struct vmx_vcpu *vv = v->vendor;
	uint32_t cpu = this_cpu()->id;
	struct vmx_cpu *vc = &vmx_cpus[cpu];
	uint64_t f;
	int rc;

	e->next_rip = 0;
	e->insn_nbytes = 0;
	if (!vc->on) {
		entry_failed(v, e, "VMX is off on CPU", cpu, 0);
		return -EIO;
	}
	if (vv->cpu < 0 && vmcs_setup(v, vc, cpu) < 0) {
		entry_failed(v, e, "VMCS set-up failed on CPU", cpu, 0);
		return -EIO;
	}
	if (!vmcs_here(v)) {
		entry_failed(v, e, "vCPU moved off its VMCS's CPU", cpu, vv->cpu);
		return -EIO;
	}
	if (vv->need_load || vc->msr_owner != v) {
		if (vv->need_load)
			vmx_state_to_vmcs(v);
		load_guest_msrs(v, vc);
	}
	/* With interrupts off a host interrupt (a kick) pending now makes the
	 * guest exit at once instead of being taken here first; after the
	 * exit the host takes it (no acknowledge-on-exit).  One taken before
	 * is looked for here (irq_entry_late), before anything is injected. */
	f = irq_save();
	if (irq_entry_late(v)) {
		irq_restore(f);
		memset(e, 0, sizeof(*e));
		e->kind = EXIT_HANDLED;
		return 0;
	}
	inject(v, vv);
	irq_window(v, vv);
	vmx_state_hot_to_vmcs(v);
	if (vv->flush) {
		vv->flush = false;
		flush_ept(v);
	}
	/* CR2 is not in the VMCS: the guest's lives in the register. */
	if (read_cr2() != v->st.cr2)
		write_cr2(v->st.cr2);
	/* The guest's FPU state only around VMLAUNCH/VMRESUME (vcpu.c:
	 * vcpu_fpu_enter); C code after the exit may use SSE. */
	if (vcpu_fpu_enter(v) < 0) {
		irq_restore(f);
		memset(e, 0, sizeof(*e));
		e->kind = EXIT_HANDLED;	/* vcpu_loop stops the VM (v->fpu_fault) */
		return 0;
	}
	dr_guest_enter(v, true);	/* DR6 is not in the VMCS */
	rc = vmx_enter(v->st.gpr, vv->launched);
	dr_guest_leave(v, true);
	vcpu_fpu_leave(v);
	v->st.cr2 = read_cr2();
	if (rc) {
		irq_restore(f);
		if (rc == 1)
			entry_failed(v, e, "instruction error",
				     vmread(VMCS_INSN_ERROR), 0);
		else
			entry_failed(v, e, "no current VMCS", 0, 0);
		return -EIO;
	}
	vv->launched = true;
	vmx_state_after_exit(v);
	requeue(v, vv);
	decode(v, e);
	irq_restore(f);
	return 0;
}

const struct hv_ops vmx_ops = {
	.probe = vmx_probe,
	.cpu_enable = vmx_cpu_enable,
	.vcpu_init = vmx_vcpu_init,
	.vcpu_free = vmx_vcpu_free,
	.vcpu_run = vmx_vcpu_run,
	.load_state = vmx_load_state,
	.save_state = vmx_save_state,
	.flush_stage2 = vmx_flush_stage2,
	.pml_drain = vmx_pml_drain,
};
