/*
 * libFuzzer target for kernel/lib/vcpu_check.c (make fuzz-vcpu-check): the
 * vCPU state of a migration stream or a save area is input from the
 * network or a shared LUN.
 *
 * Input: byte 0 picks the host (bit 0: XSAVE with XCR0 7, else none; bit
 * 1: MXCSR_MASK 0xffbf, else 0xffff), then the FPU image's XSAVE header
 * (64 bytes) and MXCSR (4), the fields of struct vcpu_check_in in order,
 * up to NMSRS whole MSR entries, and the rest of the legacy area; what the input leaves out is
 * zero (an all-zero state passes: an AP before SIPI), so short inputs
 * already reach the image checks.  Checked: no read or
 * write outside the buffers (ASan), only 0 or -EINVAL with a reason, and
 * whatever is accepted could not make the host's XSETBV, XRSTOR/FXRSTOR
 * or MOV DR fault, restated here from the SDM without vcpu_check.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/msr_rules.h"
#include "kernel/lib/vcpu_check.h"

#define AREA	4096
#define NMSRS	4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_check(bool cond)
{
	if (!cond)
		abort();
}

static void take(void *dst, size_t n, const uint8_t **p, size_t *left)
{
	size_t k = *left < n ? *left : n;

	memset(dst, 0, n);
	memcpy(dst, *p, k);
	*p += k;
	*left -= k;
}

static void host(struct vcpu_host_caps *c, uint8_t sel)
{
	struct vcpu_cpuid_words w = { .l1_ecx = (1u << 26) | (1u << 17),
				      .l1_edx = 0x078bfbff, .l7_ebx = 1,
				      .e1_edx = (1u << 11) | (1u << 20) | (1u << 29),
				      .e8_eax = 40 };

	*c = (struct vcpu_host_caps){ .xsave = sel & 1, .xcr0 = (sel & 1) ? 7 : 0,
				      .xsave_size = (sel & 1) ? 832 : 0, .fpu_area = AREA,
				      .mxcsr_mask = (sel & 2) ? 0xffbf : 0xffff };
	vcpu_caps_from_cpuid(c, &w);
}

/* What would fault in the host if it were loaded (SDM Vol. 1 13.3,
 * 13.8.1, 11.6.6; Vol. 3B 18.2). */
static bool host_would_fault(const struct vcpu_check_in *s, const struct vcpu_host_caps *c)
{
	uint64_t bv, hdr[8];
	uint32_t mxcsr;

	memcpy(&mxcsr, s->fpu + 24, 4);
	memcpy(hdr, s->fpu + 512, 64);
	bv = hdr[0];
	if (c->xsave && s->xcr0 && (!(s->xcr0 & 1) || (s->xcr0 & ~c->xcr0) ||
				    ((s->xcr0 & 4) && !(s->xcr0 & 2))))
		return true;
	if (mxcsr & ~c->mxcsr_mask)
		return true;
	if (c->xsave && (bv & ~c->xcr0))
		return true;
	for (int i = 1; i < 8; i++)
		if (c->xsave && hdr[i])
			return true;
	for (int i = 0; i < 4; i++)
		if (!msr_canonical(s->dr[i]))
			return true;
	return (s->dr6 >> 32) || (s->dr7 >> 32);
}

/* A bool filled from raw bytes: its low bit, without loading it as bool. */
static bool bool_of(const bool *b)
{
	uint8_t raw;

	memcpy(&raw, b, 1);
	return raw & 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t img[AREA];
	struct vcpu_check_msr msrs[NMSRS];
	struct vcpu_check_in s;
	struct vcpu_host_caps c;
	char why[160];
	int rc;

	if (!size)
		return 0;
	host(&c, data[0]);
	data++, size--;
	memset(img, 0, sizeof(img));
	take(img + 512, 64, &data, &size);
	take(img + 24, 4, &data, &size);
	take(&s, offsetof(struct vcpu_check_in, nmsrs), &data, &size);
	s.event_valid = bool_of(&s.event_valid);
	s.event_has_error = bool_of(&s.event_has_error);
	s.nmsrs = size / sizeof(msrs[0]) < NMSRS ? size / sizeof(msrs[0]) : NMSRS;
	take(msrs, s.nmsrs * sizeof(msrs[0]), &data, &size);
	take(img, 24, &data, &size);
	take(img + 28, 512 - 28, &data, &size);
	s.msrs = msrs;
	s.fpu = img;
	s.fpu_len = AREA;
	why[0] = 0;
	rc = vcpu_state_check(&s, &c, why, sizeof(why));
	fz_check(rc == 0 || rc == -EINVAL);
	fz_check(rc == 0 || why[0]);
	if (rc == 0) {
		fz_check(!host_would_fault(&s, &c));
		fz_check(!(s.cr4 & ~c.cr4_ok) && !(s.efer & ~c.efer_ok));
	}
	return 0;
}
