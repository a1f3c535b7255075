/*
 * Unit tests for kernel/lib/vcpu_check.c: every rule a restored vCPU state
 * must meet, on a host with AVX and one without XSAVE (the lab's qemu64).
 * Each test starts from a state that passes and breaks one field.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/vcpu_check.h"
#include "kernel/platform/x86.h"

#define AREA		4096
#define NONCANON	0x0000800000000000ull

static uint8_t t_img[AREA];
static struct vcpu_check_msr t_msrs[2];
static struct vcpu_check_in t_s;
static struct vcpu_host_caps t_avx, t_nox;
static char t_why[160];

/* A host with XSAVE, XCR0 = 7, MXCSR_MASK 0xffff, no PKE/LA57. */
static void caps_avx(struct vcpu_host_caps *c)
{
	struct vcpu_cpuid_words w = {
		.l1_ecx = (1u << 26) | (1u << 28) | (1u << 17), .l1_edx = 0x078bfbff,
		.l7_ebx = (1u << 0) | (1u << 7), .e1_edx = (1u << 11) | (1u << 20) | (1u << 29),
		.e8_eax = 40,
	};

	*c = (struct vcpu_host_caps){ .xsave = true, .xcr0 = 7, .xsave_size = 832,
				      .fpu_area = AREA, .mxcsr_mask = 0xffff };
	vcpu_caps_from_cpuid(c, &w);
}

/* qemu64: no XSAVE, no AVX, MXCSR_MASK 0xffbf (FXSAVE wrote 0). */
static void caps_nox(struct vcpu_host_caps *c)
{
	struct vcpu_cpuid_words w = { .l1_ecx = 0x80002001, .l1_edx = 0x078bfbfd,
				      .e1_edx = 0x20100800, .e8_eax = 40 };

	*c = (struct vcpu_host_caps){ .fpu_area = AREA, .mxcsr_mask = MXCSR_MASK_DEFAULT };
	vcpu_caps_from_cpuid(c, &w);
}

static void put32(size_t off, uint32_t v) { memcpy(t_img + off, &v, 4); }
static void put64(size_t off, uint64_t v) { memcpy(t_img + off, &v, 8); }

/* A 64-bit Linux-like vCPU: PE PG, PAE, LME/LMA, flat 64-bit CS. */
static void setup(void)
{
	caps_avx(&t_avx);
	caps_nox(&t_nox);
	memset(t_img, 0, sizeof(t_img));
	put32(XSAVE_MXCSR_OFF, 0x1f80);
	put64(XSAVE_HDR_OFF, 3);
	t_msrs[0] = (struct vcpu_check_msr){ MSR_LSTAR, 0xffffffff81000000ull };
	t_msrs[1] = (struct vcpu_check_msr){ MSR_STAR, 0x0023001000000000ull };
	t_s = (struct vcpu_check_in){
		.rflags = 0x202, .cr0 = CR0_PE | CR0_PG | CR0_ET | CR0_NE | CR0_WP,
		.cr3 = 0x1000, .cr4 = CR4_PAE | CR4_PGE | CR4_OSFXSR | CR4_OSXMMEXCPT,
		.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE, .xcr0 = 1,
		.dr6 = 0xffff0ff0, .dr7 = 0x400, .gdtr_limit = 0x7f, .idtr_limit = 0xfff,
		.gdtr_base = 0xfffffe0000001000ull, .idtr_base = 0xfffffe0000000000ull,
		.nmsrs = 2, .msrs = t_msrs, .fpu = t_img, .fpu_len = AREA,
	};
	t_s.seg[VCHK_CS].attr = 0x29b;		/* L, P, code */
	t_s.seg[VCHK_GS].base = 0xffff888000000000ull;
	memset(t_why, 0, sizeof(t_why));
}

TestSuite(vcpu_check, .init = setup);

static void refused(const struct vcpu_host_caps *c, const char *want)
{
	cr_assert_eq(vcpu_state_check(&t_s, c, t_why, sizeof(t_why)), -EINVAL,
		     "accepted, want \"%s\"", want);
	cr_assert(strstr(t_why, want), "why \"%s\", want \"%s\"", t_why, want);
}

static void accepted(const struct vcpu_host_caps *c)
{
	cr_assert_eq(vcpu_state_check(&t_s, c, t_why, sizeof(t_why)), 0, "%s", t_why);
}

/* A vCPU that never got its SIPI travels with the zeroed state it was
 * created with: a multi-vCPU guest paused early must still migrate. */
Test(vcpu_check, never_started_ap_passes)
{
	struct vcpu_check_in z = { .fpu = t_img, .fpu_len = AREA };

	memset(t_img, 0, sizeof(t_img));
	cr_assert_eq(vcpu_state_check(&z, &t_avx, t_why, sizeof(t_why)), 0, "%s", t_why);
	cr_assert_eq(vcpu_state_check(&z, &t_nox, t_why, sizeof(t_why)), 0, "%s", t_why);
}

Test(vcpu_check, good_state_passes_on_both_hosts)
{
	accepted(&t_avx);
	accepted(&t_nox);
	t_s.xcr0 = 7;
	put64(XSAVE_HDR_OFF, 7);
	accepted(&t_avx);
}

Test(vcpu_check, xcr0_rules)
{
	cr_assert(vcpu_xcr0_valid(1, &t_avx) && vcpu_xcr0_valid(3, &t_avx));
	cr_assert(vcpu_xcr0_valid(7, &t_avx));
	cr_assert(!vcpu_xcr0_valid(0, &t_avx), "x87 must be set");
	cr_assert(!vcpu_xcr0_valid(2, &t_avx), "x87 must be set");
	cr_assert(!vcpu_xcr0_valid(5, &t_avx), "AVX needs SSE");
	cr_assert(!vcpu_xcr0_valid(0xf, &t_avx), "bit 3 not the host's");
	cr_assert(!vcpu_xcr0_valid(1ull << 9, &t_avx), "PKRU not the host's");
	cr_assert(vcpu_xcr0_valid(1, &t_nox) && vcpu_xcr0_valid(0, &t_nox));
	cr_assert(!vcpu_xcr0_valid(3, &t_nox), "no XSAVE: reset value only");
	cr_assert(!vcpu_xcr0_valid(7, &t_nox), "no XSAVE, no AVX");
}

Test(vcpu_check, xcr0_avx_on_host_without_it)
{
	t_s.xcr0 = 7;
	refused(&t_nox, "XCR0 0x7 not allowed here");
	t_avx.xcr0 = 3;		/* XSAVE but no AVX */
	refused(&t_avx, "XCR0 0x7 not allowed here");
}

Test(vcpu_check, xstate_bv_outside_host)
{
	put64(XSAVE_HDR_OFF, 7);
	refused(&t_nox, "XSTATE_BV 0x7 outside this host's components 0x3");
	put64(XSAVE_HDR_OFF, 1ull << 9);
	t_s.xcr0 = 7;
	refused(&t_avx, "XSTATE_BV 0x200 outside this host's");
}

Test(vcpu_check, xstate_bv_outside_guest_xcr0)
{
	put64(XSAVE_HDR_OFF, 7);
	t_s.xcr0 = 3;
	refused(&t_avx, "XSTATE_BV 0x7 outside the guest's XCR0 0x3");
	/* SSE state with XCR0 = 1 is the guest's all the same (SDM 13.3). */
	put64(XSAVE_HDR_OFF, 3);
	t_s.xcr0 = 1;
	accepted(&t_avx);
	t_s.xcr0 = 0;
	accepted(&t_avx);
}

Test(vcpu_check, xcomp_bv_and_header)
{
	put64(XSAVE_HDR_OFF + 8, 1ull << 63);
	refused(&t_avx, "XCOMP_BV 0x8000000000000000");
	put64(XSAVE_HDR_OFF + 8, 0);
	t_img[XSAVE_HDR_OFF + 63] = 1;
	refused(&t_avx, "XSAVE header byte 63");
	t_img[XSAVE_HDR_OFF + 63] = 0;
	t_img[XSAVE_HDR_OFF + 16] = 0x80;
	refused(&t_nox, "XSAVE header byte 16");
}

Test(vcpu_check, mxcsr_against_mask)
{
	put32(XSAVE_MXCSR_OFF, 0x1f80 | (1u << 16));
	refused(&t_avx, "MXCSR 0x11f80");
	put32(XSAVE_MXCSR_OFF, 0x1f80 | 0x40);	/* DAZ: outside 0xffbf */
	accepted(&t_avx);
	refused(&t_nox, "MXCSR 0x1fc0: bits 0x40 outside MXCSR_MASK 0xffbf");
}

Test(vcpu_check, fpu_image_size)
{
	t_s.fpu_len = 512;
	refused(&t_avx, "FPU image of 512 bytes");
	t_s.fpu_len = AREA;
	t_avx.xsave_size = AREA + 64;	/* this host's XSAVE area is larger */
	refused(&t_avx, "FPU image of 4096 bytes");
}

Test(vcpu_check, cr0_rules)
{
	t_s.cr0 |= 1ull << 32;
	refused(&t_avx, "CR0 0x180010031: reserved");
	setup();
	t_s.cr0 |= 1ull << 7;
	refused(&t_avx, "reserved bits set");
	setup();
	t_s.cr0 &= ~(uint64_t)CR0_PE;
	refused(&t_avx, "PG without PE");
	setup();
	t_s.cr0 |= CR0_NW;
	refused(&t_avx, "NW without CD");
	t_s.cr0 |= CR0_CD;
	accepted(&t_avx);
}

Test(vcpu_check, cr4_against_host)
{
	t_s.cr4 |= 1ull << 22;		/* PKE */
	refused(&t_avx, "CR4 0x4006a0: bits 0x400000 not supported here");
	setup();
	t_s.cr4 |= 1ull << 12;		/* LA57 */
	refused(&t_avx, "bits 0x1000 not supported");
	setup();
	t_s.cr4 |= CR4_VMXE;
	refused(&t_avx, "bits 0x2000 not supported");
	setup();
	t_s.cr4 |= CR4_OSXSAVE;
	accepted(&t_avx);
	refused(&t_nox, "bits 0x40000 not supported");
	setup();
	t_s.cr4 |= 1ull << 32;
	refused(&t_avx, "not supported here");
	setup();
	t_s.cr4 |= 1ull << 17;		/* PCIDE */
	accepted(&t_avx);
	t_s.efer = 0;
	t_s.cr0 = CR0_PE;
	refused(&t_avx, "PCIDE outside IA-32e mode");
}

Test(vcpu_check, cr3_maxphyaddr)
{
	t_s.cr3 = 1ull << 40;
	refused(&t_avx, "CR3 0x10000000000: bits above MAXPHYADDR (40)");
	t_s.cr3 = (1ull << 40) - 4096;
	accepted(&t_avx);
}

Test(vcpu_check, efer_rules)
{
	t_s.efer |= EFER_SVME;
	refused(&t_avx, "EFER 0x1d01: bits not supported");
	setup();
	t_s.efer |= 1ull << 63;
	refused(&t_avx, "bits not supported");
	setup();
	t_s.efer &= ~(uint64_t)EFER_LMA;
	refused(&t_avx, "LMA does not match LME and CR0.PG");
	setup();
	t_s.cr0 &= ~(uint64_t)CR0_PG;
	refused(&t_avx, "LMA does not match");
	setup();
	t_s.cr4 &= ~(uint64_t)CR4_PAE;
	refused(&t_avx, "IA-32e mode without CR4.PAE");
	setup();
	t_s.seg[VCHK_CS].attr |= 1u << 10;
	refused(&t_avx, "64-bit CS with D set");
	setup();
	t_nox.efer_ok &= ~(uint64_t)EFER_NXE;	/* a host without NX */
	refused(&t_nox, "EFER 0xd01: bits not supported");
}

Test(vcpu_check, rflags_rules)
{
	t_s.rflags |= 1ull << 22;
	refused(&t_avx, "RFLAGS 0x400202: reserved");
	t_s.rflags = 0x200;	/* bit 1 clear: set on apply (an AP before SIPI) */
	accepted(&t_avx);
	t_s.rflags = 0x202 | (1ull << 15);
	refused(&t_avx, "reserved");
	t_s.rflags = 0x202 | (1ull << 17);
	refused(&t_avx, "VM in IA-32e mode");
}

Test(vcpu_check, debug_registers)
{
	t_s.dr[2] = NONCANON;
	refused(&t_avx, "DR2 0x800000000000 is not canonical");
	setup();
	t_s.dr7 |= 1ull << 32;
	refused(&t_avx, "bits 63:32 set");
	setup();
	t_s.dr6 |= 1ull << 40;
	refused(&t_avx, "bits 63:32 set");
}

Test(vcpu_check, segment_and_table_bases)
{
	t_s.seg[VCHK_GS].base = NONCANON;
	refused(&t_avx, "GS base 0x800000000000 is not canonical");
	setup();
	t_s.seg[VCHK_TR].base = NONCANON;
	refused(&t_avx, "TR base");
	setup();
	t_s.seg[VCHK_SS].base = 1ull << 32;
	refused(&t_avx, "SS base 0x100000000 is not a 32-bit address");
	setup();
	t_s.gdtr_base = NONCANON;
	refused(&t_avx, "GDTR base 0x800000000000 is not canonical");
	setup();
	t_s.idtr_base = NONCANON;
	refused(&t_avx, "IDTR base 0x800000000000");
	setup();
	t_s.idtr_limit = 0x10000;
	refused(&t_avx, "limit");
}

Test(vcpu_check, msrs_by_their_rules)
{
	t_msrs[0].value = NONCANON;
	refused(&t_avx, "MSR 0xc0000082 = 0x800000000000 not accepted");
	setup();
	t_msrs[1] = (struct vcpu_check_msr){ MSR_PAT, 0x0202020202020202ull };
	refused(&t_avx, "MSR 0x277");
	setup();
	t_msrs[1] = (struct vcpu_check_msr){ MSR_EFER, t_s.efer };
	refused(&t_avx, "MSR 0xc0000080");
	setup();
	t_msrs[1] = (struct vcpu_check_msr){ 0x10, 0 };	/* TSC: not a state MSR */
	refused(&t_avx, "MSR 0x10");
}

Test(vcpu_check, pending_event)
{
	t_s.event_valid = true;
	t_s.event_type = 3;
	t_s.event_vector = 13;
	t_s.event_has_error = true;
	accepted(&t_avx);
	t_s.event_vector = 6;
	refused(&t_avx, "type 3 vector 6 with an error code");
	t_s.event_has_error = false;
	t_s.event_vector = 40;
	refused(&t_avx, "vector 40");
	t_s.event_type = 2;
	t_s.event_vector = 3;
	refused(&t_avx, "type 2 vector 3");
	t_s.event_type = 1;
	refused(&t_avx, "type 1");
	t_s.event_type = 0;
	t_s.event_vector = 0x30;
	accepted(&t_avx);
}

Test(vcpu_check, cpuid_derived_caps)
{
	cr_assert(t_avx.cr4_ok & CR4_OSXSAVE);
	cr_assert(!(t_nox.cr4_ok & CR4_OSXSAVE));
	cr_assert(!(t_avx.cr4_ok & CR4_VMXE));
	cr_assert(t_avx.cr4_ok & (1ull << 16), "FSGSBASE from 7.EBX[0]");
	cr_assert(!(t_nox.cr4_ok & (1ull << 16)));
	cr_assert_eq(t_avx.efer_ok, EFER_SCE | EFER_NXE | EFER_LME | EFER_LMA);
	cr_assert_eq(t_avx.phys_bits, 40);
}
