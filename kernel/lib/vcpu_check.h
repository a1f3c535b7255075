/*
 * Validation of a vCPU state that comes from elsewhere (an incoming
 * migration, `vm restore`) against the capabilities of this host, so
 * nothing in it can make a host instruction (XRSTOR, XSETBV, MOV DR,
 * WRMSR) fault or a VM entry fail after the source gave the guest up.
 * Pure: the kernel fills struct vcpu_host_caps once at boot (cpu.c), the
 * unit tests fill it by hand.
 */
#ifndef TERN_VCPU_CHECK_H
#define TERN_VCPU_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* XCR0 / XSTATE_BV components (SDM Vol. 1 13.1). */
#define XFEATURE_X87		(1ull << 0)
#define XFEATURE_SSE		(1ull << 1)
#define XFEATURE_AVX		(1ull << 2)
/* What FXSAVE/FXRSTOR cover when the host has no XSAVE. */
#define XFEATURE_FXSAVE		(XFEATURE_X87 | XFEATURE_SSE)

/* The XSAVE area's layout (SDM Vol. 1 10.5.1, 13.4). */
#define XSAVE_MXCSR_OFF		24
#define XSAVE_MXCSR_MASK_OFF	28
#define XSAVE_HDR_OFF		512
#define XSAVE_HDR_LEN		64
/* MXCSR_MASK when FXSAVE stores 0 there (SDM Vol. 1 11.6.6). */
#define MXCSR_MASK_DEFAULT	0xffbfu

struct vcpu_host_caps {
	bool xsave;		/* CR4.OSXSAVE on: XSAVE/XRSTOR switch the FPU */
	uint64_t xcr0;		/* the host's XCR0; 0 without XSAVE */
	uint32_t xsave_size;	/* CPUID.(0xD,0).EBX under that XCR0 */
	uint32_t fpu_area;	/* bytes of a vCPU's FPU image (VCPU_FPU_AREA) */
	uint32_t mxcsr_mask;	/* from FXSAVE byte 28 (0 there: 0xffbf) */
	uint64_t cr4_ok;	/* CR4 bits a guest may hold on this host */
	uint64_t efer_ok;	/* EFER bits a guest may hold on this host */
	uint8_t phys_bits;	/* MAXPHYADDR, CPUID 0x80000008 EAX[7:0] */
};

/* The CPUID words the CR4/EFER/MAXPHYADDR capabilities come from. */
struct vcpu_cpuid_words {
	uint32_t l1_ecx, l1_edx;	/* leaf 1 */
	uint32_t l7_ebx, l7_ecx;	/* leaf 7.0 (0 when absent) */
	uint32_t e1_edx;		/* leaf 0x80000001 */
	uint32_t e8_eax;		/* leaf 0x80000008 (0 when absent) */
};

/* cr4_ok, efer_ok and phys_bits of c from CPUID; c->xsave must be set. */
void vcpu_caps_from_cpuid(struct vcpu_host_caps *c, const struct vcpu_cpuid_words *w);

struct vcpu_check_seg {
	uint16_t sel, attr;	/* attr: SVM layout (type..P in 7:0, AVL L DB G) */
	uint32_t limit;
	uint64_t base;
};

struct vcpu_check_msr {
	uint32_t index;
	uint64_t value;
};

enum { VCHK_ES, VCHK_CS, VCHK_SS, VCHK_DS, VCHK_FS, VCHK_GS, VCHK_LDTR,
       VCHK_TR, VCHK_NSEG };

/* A restored vCPU state, as the stream carries it. */
struct vcpu_check_in {
	uint64_t rflags, cr0, cr3, cr4, efer;
	uint64_t xcr0;		/* 0: never set (the reset value 1 applies) */
	uint64_t dr[4], dr6, dr7;
	struct vcpu_check_seg seg[VCHK_NSEG];
	uint64_t gdtr_base, idtr_base;
	uint32_t gdtr_limit, idtr_limit;
	bool event_valid, event_has_error;
	uint8_t event_type, event_vector;
	uint32_t nmsrs;
	const struct vcpu_check_msr *msrs;
	const uint8_t *fpu;	/* the XSAVE/FXSAVE image */
	size_t fpu_len;
};

/* Whether a guest may hold xcr0 (XSETBV or a restore) on this host. */
bool vcpu_xcr0_valid(uint64_t xcr0, const struct vcpu_host_caps *c);

/* 0, or -EINVAL with the first broken rule described into why. */
int vcpu_fpu_image_check(const uint8_t *img, size_t len, uint64_t xcr0,
			 const struct vcpu_host_caps *c, char *why, size_t wlen);
int vcpu_state_check(const struct vcpu_check_in *s, const struct vcpu_host_caps *c,
		     char *why, size_t wlen);

#endif
