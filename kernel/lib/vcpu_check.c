/*
 * The rules a restored vCPU state must meet before it is loaded here.  A
 * migration stream is network input: a value the CPU would refuse must be
 * refused while the source still holds the guest, never discovered by a
 * fault in ring 0 or a failed VM entry after COMMIT.  Each rule cites the
 * instruction or entry check it protects.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/lib/msr_rules.h"
#include "kernel/lib/vcpu_check.h"
#include "kernel/platform/x86.h"

#define BIT(n)		(1ull << (n))

/* CR4 bits by number (SDM Vol. 3A 2.5). */
#define CR4_VME		BIT(0)
#define CR4_PVI		BIT(1)
#define CR4_TSD		BIT(2)
#define CR4_DE		BIT(3)
#define CR4_MCE		BIT(6)
#define CR4_PCE		BIT(8)
#define CR4_UMIP	BIT(11)
#define CR4_LA57	BIT(12)
#define CR4_FSGSBASE	BIT(16)
#define CR4_PCIDE	BIT(17)
#define CR4_SMEP	BIT(20)
#define CR4_SMAP	BIT(21)
#define CR4_PKE		BIT(22)

#define CR0_AM		BIT(18)
#define CR0_DEFINED	(CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE | \
			 CR0_WP | CR0_AM | CR0_NW | CR0_CD | CR0_PG)

/* RFLAGS (SDM Vol. 1 3.4.3): 3, 5, 15 and 63:22 are reserved, and VM
 * entry checks them (SDM Vol. 3C 27.3.1.4).  Bit 1 always reads 1, but a
 * vCPU still waiting for its SIPI travels with the zeroed state it was
 * created with (its SIPI replaces it): mig_state_apply sets bit 1. */
#define RFLAGS_RSVD	(BIT(3) | BIT(5) | BIT(15) | ~(BIT(22) - 1))
#define RFLAGS_VM	BIT(17)

/* The SVM segment attribute layout Tern keeps (APM 15.5.1). */
#define SEG_L		BIT(9)
#define SEG_DB		BIT(10)

/* Event types (kernel/virt/vm.h enum event_type, the VMX/SVM encoding). */
#define EV_EXT_INT	0
#define EV_NMI		2
#define EV_EXCEPTION	3
#define EV_SOFT_INT	4

static uint64_t bit_if(uint32_t word, int bit, uint64_t val)
{
	return (word >> bit) & 1 ? val : 0;
}

/*
 * CR4 bits a guest may hold: those whose feature the host CPU reports
 * (SDM Vol. 3A 2.5: setting one it does not is #GP, and VM entry checks
 * the same, SDM Vol. 3C 27.3.1.1).  VMXE, SMXE, CET and PKS are never
 * the guest's: Tern exposes neither nested VMX, SMX nor their state.
 */
void vcpu_caps_from_cpuid(struct vcpu_host_caps *c, const struct vcpu_cpuid_words *w)
{
	uint64_t cr4 = CR4_TSD | CR4_PCE;

	cr4 |= bit_if(w->l1_edx, 1, CR4_VME | CR4_PVI) | bit_if(w->l1_edx, 2, CR4_DE);
	cr4 |= bit_if(w->l1_edx, 3, CR4_PSE) | bit_if(w->l1_edx, 6, CR4_PAE);
	cr4 |= bit_if(w->l1_edx, 7, CR4_MCE) | bit_if(w->l1_edx, 13, CR4_PGE);
	cr4 |= bit_if(w->l1_edx, 24, CR4_OSFXSR) | bit_if(w->l1_edx, 25, CR4_OSXMMEXCPT);
	cr4 |= bit_if(w->l1_ecx, 17, CR4_PCIDE);
	cr4 |= c->xsave ? bit_if(w->l1_ecx, 26, CR4_OSXSAVE) : 0;
	cr4 |= bit_if(w->l7_ebx, 0, CR4_FSGSBASE) | bit_if(w->l7_ebx, 7, CR4_SMEP);
	cr4 |= bit_if(w->l7_ebx, 20, CR4_SMAP) | bit_if(w->l7_ecx, 2, CR4_UMIP);
	cr4 |= bit_if(w->l7_ecx, 3, CR4_PKE) | bit_if(w->l7_ecx, 16, CR4_LA57);
	c->cr4_ok = cr4;
	/* IA32_EFER (SDM Vol. 4 table 2-2): SYSCALL, long mode, NX. */
	c->efer_ok = bit_if(w->e1_edx, 11, EFER_SCE) | bit_if(w->e1_edx, 20, EFER_NXE) |
		     bit_if(w->e1_edx, 29, EFER_LME | EFER_LMA);
	c->phys_bits = w->e8_eax & 0xff;
}

/*
 * XCR0 (SDM Vol. 1 13.3, Vol. 2B XSETBV): x87 always set, AVX only with
 * SSE, and only components the host enabled -- XSETBV of any other bit
 * faults in the host when the vCPU is entered.  Without XSAVE the guest
 * cannot change XCR0: only its reset value 1 (or 0, "never set").
 */
bool vcpu_xcr0_valid(uint64_t xcr0, const struct vcpu_host_caps *c)
{
	if (!c->xsave)
		return xcr0 <= XFEATURE_X87;
	return (xcr0 & XFEATURE_X87) && !((xcr0 & XFEATURE_AVX) && !(xcr0 & XFEATURE_SSE)) &&
	       !(xcr0 & ~c->xcr0);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* XSTATE_BV (SDM Vol. 1 13.8.1): XRSTOR faults on a component outside
 * the XCR0 it runs under (the host's, vcpu_fpu_enter).  SSE state is the
 * guest's whatever its XCR0 (SSE runs under CR4.OSFXSR, 13.3); any other
 * component must be one its XCR0 enables. */
static int xstate_bv_check(uint64_t bv, uint64_t xcr0, const struct vcpu_host_caps *c,
			   char *why, size_t wlen)
{
	uint64_t host = c->xsave ? c->xcr0 : XFEATURE_FXSAVE;
	uint64_t guest = (xcr0 ? xcr0 : XFEATURE_X87) | XFEATURE_SSE;

	if (bv & ~host) {
		snprintf(why, wlen, "XSTATE_BV %#lx outside this host's components %#lx",
			 bv, host);
		return -EINVAL;
	}
	if (bv & ~guest) {
		snprintf(why, wlen, "XSTATE_BV %#lx outside the guest's XCR0 %#lx", bv,
			 xcr0);
		return -EINVAL;
	}
	return 0;
}

/* The XSAVE header after XSTATE_BV (SDM Vol. 1 13.4.2, 13.8.1): the
 * standard form Tern restores needs XCOMP_BV and bytes 16..63 zero. */
static int xsave_header_check(const uint8_t *hdr, char *why, size_t wlen)
{
	uint64_t comp = get64(hdr + 8);

	if (comp) {
		snprintf(why, wlen, "XCOMP_BV %#lx: only the standard form is restored",
			 comp);
		return -EINVAL;
	}
	for (int i = 16; i < XSAVE_HDR_LEN; i++)
		if (hdr[i]) {
			snprintf(why, wlen, "XSAVE header byte %d is %#x, reserved", i,
				 hdr[i]);
			return -EINVAL;
		}
	return 0;
}

/*
 * An FPU image XRSTOR/FXRSTOR will load here: its size, MXCSR against
 * this host's MXCSR_MASK (SDM Vol. 1 11.6.6: a bit outside it is #GP),
 * XSTATE_BV and the header.
 */
int vcpu_fpu_image_check(const uint8_t *img, size_t len, uint64_t xcr0,
			 const struct vcpu_host_caps *c, char *why, size_t wlen)
{
	uint32_t mxcsr;

	if (len != c->fpu_area || (c->xsave && c->xsave_size > len)) {
		snprintf(why, wlen, "FPU image of %zu bytes, this host needs %u (XSAVE %u)",
			 len, c->fpu_area, c->xsave_size);
		return -EINVAL;
	}
	memcpy(&mxcsr, img + XSAVE_MXCSR_OFF, 4);
	if (mxcsr & ~c->mxcsr_mask) {
		snprintf(why, wlen, "MXCSR %#x: bits %#x outside MXCSR_MASK %#x", mxcsr,
			 mxcsr & ~c->mxcsr_mask, c->mxcsr_mask);
		return -EINVAL;
	}
	if (xstate_bv_check(get64(img + XSAVE_HDR_OFF), xcr0, c, why, wlen) < 0)
		return -EINVAL;
	return xsave_header_check(img + XSAVE_HDR_OFF, why, wlen);
}

/* CR0 (SDM Vol. 3A 2.5, Vol. 2B MOV CR): 63:32 and the undefined bits
 * reserved; PG needs PE, NW needs CD (#GP on MOV, VMRUN/VM entry fail). */
static int cr0_check(uint64_t cr0, char *why, size_t wlen)
{
	const char *bad = NULL;

	if (cr0 & ~(uint64_t)CR0_DEFINED)
		bad = "reserved bits set";
	else if ((cr0 & CR0_PG) && !(cr0 & CR0_PE))
		bad = "PG without PE";
	else if ((cr0 & CR0_NW) && !(cr0 & CR0_CD))
		bad = "NW without CD";
	if (!bad)
		return 0;
	snprintf(why, wlen, "CR0 %#lx: %s", cr0, bad);
	return -EINVAL;
}

/* CR4 (SDM Vol. 3A 2.5): only features this host has; PCIDE only in
 * IA-32e mode (SDM Vol. 2B MOV CR: #GP). */
static int cr4_check(uint64_t cr4, uint64_t efer, const struct vcpu_host_caps *c,
		     char *why, size_t wlen)
{
	if (cr4 & ~c->cr4_ok) {
		snprintf(why, wlen, "CR4 %#lx: bits %#lx not supported here", cr4,
			 cr4 & ~c->cr4_ok);
		return -EINVAL;
	}
	if ((cr4 & CR4_PCIDE) && !(efer & EFER_LMA)) {
		snprintf(why, wlen, "CR4 %#lx: PCIDE outside IA-32e mode", cr4);
		return -EINVAL;
	}
	return 0;
}

/* CR3 (SDM Vol. 3C 27.3.1.1): no bit at or above MAXPHYADDR; bit 63
 * (PCID no-flush) is never stored. */
static int cr3_check(uint64_t cr3, const struct vcpu_host_caps *c, char *why, size_t wlen)
{
	if (!c->phys_bits || c->phys_bits >= 64 || !(cr3 >> c->phys_bits))
		return 0;
	snprintf(why, wlen, "CR3 %#lx: bits above MAXPHYADDR (%u)", cr3, c->phys_bits);
	return -EINVAL;
}

/*
 * EFER (SDM Vol. 4 IA32_EFER, msr_rules.c) against the host's features,
 * and IA-32e mode consistent with CR0/CR4/CS: LMA = LME && PG (SDM Vol.
 * 3A 10.8.5, Vol. 3C 27.3.1.1), LMA needs PAE, and a 64-bit CS may not
 * have D set (APM 15.5.1 VMRUN consistency checks).
 */
static int efer_check(const struct vcpu_check_in *s, const struct vcpu_host_caps *c,
		      char *why, size_t wlen)
{
	struct msr_ctx ctx = { .efer = s->efer, .cr0 = s->cr0 };
	bool lma = s->efer & EFER_LMA;
	const char *bad = NULL;

	if (msr_rule_check(MSR_EFER, s->efer, &ctx) < 0 || (s->efer & ~c->efer_ok))
		bad = "bits not supported here";
	else if (lma != ((s->efer & EFER_LME) && (s->cr0 & CR0_PG)))
		bad = "LMA does not match LME and CR0.PG";
	else if (lma && !(s->cr4 & CR4_PAE))
		bad = "IA-32e mode without CR4.PAE";
	else if (lma && (s->seg[VCHK_CS].attr & SEG_L) && (s->seg[VCHK_CS].attr & SEG_DB))
		bad = "64-bit CS with D set";
	if (!bad)
		return 0;
	snprintf(why, wlen, "EFER %#lx: %s", s->efer, bad);
	return -EINVAL;
}

static int rflags_check(uint64_t rf, uint64_t efer, char *why, size_t wlen)
{
	const char *bad = NULL;

	if (rf & RFLAGS_RSVD)
		bad = "reserved bits set";
	else if ((rf & RFLAGS_VM) && (efer & EFER_LMA))
		bad = "VM in IA-32e mode";	/* SDM Vol. 3C 27.3.1.4 */
	if (!bad)
		return 0;
	snprintf(why, wlen, "RFLAGS %#lx: %s", rf, bad);
	return -EINVAL;
}

/* DR0-3 are loaded by hand before entry (kernel/virt/debugreg.h): MOV to
 * DR faults on a non-canonical address or DR6/DR7 bits 63:32 (SDM Vol.
 * 3B 18.2, 18.2.4). */
static int dr_check(const struct vcpu_check_in *s, char *why, size_t wlen)
{
	for (int i = 0; i < 4; i++)
		if (!msr_canonical(s->dr[i])) {
			snprintf(why, wlen, "DR%d %#lx is not canonical", i, s->dr[i]);
			return -EINVAL;
		}
	if ((s->dr6 >> 32) || (s->dr7 >> 32)) {
		snprintf(why, wlen, "DR6 %#lx / DR7 %#lx: bits 63:32 set", s->dr6, s->dr7);
		return -EINVAL;
	}
	return 0;
}

/*
 * Segment and descriptor-table bases (SDM Vol. 3C 27.3.1.2-3): FS, GS,
 * LDTR, TR, GDTR and IDTR canonical; ES, CS, SS, DS bits 63:32 zero;
 * GDTR/IDTR limits 16 bits.
 */
static int seg_check(const struct vcpu_check_in *s, char *why, size_t wlen)
{
	static const char *const names[VCHK_NSEG] = {
		"ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR" };

	for (int i = 0; i < VCHK_NSEG; i++) {
		uint64_t b = s->seg[i].base;
		bool ok = i <= VCHK_DS ? !(b >> 32) : msr_canonical(b);

		if (!ok) {
			snprintf(why, wlen, "%s base %#lx is not %s", names[i], b,
				 i <= VCHK_DS ? "a 32-bit address" : "canonical");
			return -EINVAL;
		}
	}
	if (!msr_canonical(s->gdtr_base) || !msr_canonical(s->idtr_base)) {
		bool g = !msr_canonical(s->gdtr_base);

		snprintf(why, wlen, "%s base %#lx is not canonical", g ? "GDTR" : "IDTR",
			 g ? s->gdtr_base : s->idtr_base);
		return -EINVAL;
	}
	if ((s->gdtr_limit | s->idtr_limit) >> 16) {
		snprintf(why, wlen, "GDTR/IDTR limit %#x/%#x above 0xffff", s->gdtr_limit,
			 s->idtr_limit);
		return -EINVAL;
	}
	return 0;
}

/* Each migrated MSR by its WRMSR rule (msr_rules.c), in the record's own
 * EFER/CR0; EFER itself travels in its own field. */
static int msrs_check(const struct vcpu_check_in *s, char *why, size_t wlen)
{
	struct msr_ctx ctx = { .efer = s->efer, .cr0 = s->cr0 };

	for (uint32_t i = 0; i < s->nmsrs; i++) {
		const struct vcpu_check_msr *m = &s->msrs[i];

		if (m->index == MSR_EFER || msr_rule_check(m->index, m->value, &ctx) < 0) {
			snprintf(why, wlen, "MSR %#x = %#lx not accepted", m->index,
				 m->value);
			return -EINVAL;
		}
	}
	return 0;
}

static bool exc_has_error(uint8_t vector)
{
	/* #DF #TS #NP #SS #GP #PF #AC #CP (SDM Vol. 3A 6.15, Vol. 3C 27.2.1.3) */
	return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 ||
	       vector == 21;
}

/* A pending event the entry will inject (SDM Vol. 3C 27.2.1.3): a known
 * type, NMI on vector 2, an exception below 32 (not 2), an error code
 * only where the exception has one. */
static int event_check(const struct vcpu_check_in *s, char *why, size_t wlen)
{
	uint8_t t = s->event_type, v = s->event_vector;
	bool ok;

	if (!s->event_valid)
		return 0;
	if (t == EV_NMI)
		ok = v == 2;
	else if (t == EV_EXCEPTION)
		ok = v < 32 && v != 2;
	else
		ok = t == EV_EXT_INT || t == EV_SOFT_INT;
	if (ok && s->event_has_error)
		ok = t == EV_EXCEPTION && exc_has_error(v);
	if (ok)
		return 0;
	snprintf(why, wlen, "pending event of type %u vector %u%s", t, v,
		 s->event_has_error ? " with an error code" : "");
	return -EINVAL;
}

int vcpu_state_check(const struct vcpu_check_in *s, const struct vcpu_host_caps *c,
		     char *why, size_t wlen)
{
	if (s->xcr0 && !vcpu_xcr0_valid(s->xcr0, c)) {
		snprintf(why, wlen, "XCR0 %#lx not allowed here (host XCR0 %#lx%s)", s->xcr0,
			 c->xcr0, c->xsave ? "" : ", no XSAVE");
		return -EINVAL;
	}
	if (vcpu_fpu_image_check(s->fpu, s->fpu_len, s->xcr0, c, why, wlen) < 0 ||
	    cr0_check(s->cr0, why, wlen) < 0 ||
	    cr4_check(s->cr4, s->efer, c, why, wlen) < 0 ||
	    cr3_check(s->cr3, c, why, wlen) < 0 ||
	    efer_check(s, c, why, wlen) < 0 ||
	    rflags_check(s->rflags, s->efer, why, wlen) < 0 ||
	    dr_check(s, why, wlen) < 0 || seg_check(s, why, wlen) < 0 ||
	    msrs_check(s, why, wlen) < 0 || event_check(s, why, wlen) < 0)
		return -EINVAL;
	return 0;
}
