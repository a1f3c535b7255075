/*
 * The guest's CPUID: the host's values, filtered to what Tern virtualises,
 * and the same on every identical host so a guest can migrate.  Anything
 * not listed as kept is hidden.  Bit positions: SDM Vol. 2A CPUID tables,
 * APM Vol. 3 appendix E.
 */
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/virt/vm.h"

#define HV_LEAF_MAX	0x40000001u
#define BASIC_MAX	0x15u
#define EXT_MAX		0x80000008u

/* Leaf 1 ECX: SSE3 PCLMUL SSSE3 FMA CX16 SSE4.1 SSE4.2 MOVBE POPCNT AES
 * XSAVE AVX F16C RDRAND, and the TSC-deadline timer of the virtual LAPIC;
 * no VMX/SMX/MONITOR/x2APIC/PCID. */
#define L1_ECX_KEEP	((1u << 0) | (1u << 1) | (1u << 9) | (1u << 12) | \
			 (1u << 13) | (1u << 19) | (1u << 20) | (1u << 22) | \
			 (1u << 23) | (1u << 25) | (1u << 26) | (1u << 28) | \
			 (1u << 29) | (1u << 30))
#define L1_ECX_TSC_DEADLINE	(1u << 24)
#define L1_ECX_HV	(1u << 31)
#define L1_ECX_OSXSAVE	(1u << 27)
/* Leaf 1 EDX: FPU VME DE PSE TSC MSR PAE CX8 SEP PGE CMOV PAT PSE36 CLFSH
 * MMX FXSR SSE SSE2, and APIC (the virtual one); no MTRR/MCE/MCA/ACPI/TM/
 * HTT/DS. */
#define L1_EDX_KEEP	((1u << 0) | (1u << 1) | (1u << 2) | (1u << 3) | \
			 (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) | \
			 (1u << 11) | (1u << 13) | (1u << 15) | (1u << 16) | \
			 (1u << 17) | (1u << 19) | (1u << 23) | (1u << 24) | \
			 (1u << 25) | (1u << 26))
#define L1_EDX_APIC	(1u << 9)
/* Leaf 6 EAX: ARAT, the APIC timer always runs (it is emulated). */
#define L6_EAX_ARAT	(1u << 2)
/* Leaf 7 EBX: FSGSBASE BMI1 AVX2 SMEP BMI2 ERMS RDSEED ADX SMAP CLFLUSHOPT SHA */
#define L7_EBX_KEEP	((1u << 0) | (1u << 3) | (1u << 5) | (1u << 7) | \
			 (1u << 8) | (1u << 9) | (1u << 18) | (1u << 19) | \
			 (1u << 20) | (1u << 23) | (1u << 29))
/* 0x80000001 ECX: LAHF ABM SSE4A PREFETCHW; EDX: SYSCALL NX PDPE1GB LM */
#define E1_ECX_KEEP	((1u << 0) | (1u << 5) | (1u << 6) | (1u << 8))
#define E1_EDX_KEEP	((1u << 11) | (1u << 20) | (1u << 26) | (1u << 29) | \
			 L1_EDX_KEEP)
#define E7_EDX_INVTSC	(1u << 8)
#define XCR0_GUEST	7ull	/* x87 | SSE | AVX at most */

static void host_cpuid(uint32_t leaf, uint32_t sub, uint32_t o[4])
{
	cpuid(leaf, sub, &o[0], &o[1], &o[2], &o[3]);
}

static void leaf_xsave(struct vcpu *v, uint32_t sub, uint32_t o[4])
{
	uint64_t supported;

	host_cpuid(0xd, 0, o);
	supported = o[0] & XCR0_GUEST;
	if (sub == 0) {
		uint64_t xcr0 = v->st.xcr0 ? v->st.xcr0 : 1;

		o[0] = (uint32_t)supported;
		o[1] = 576 + ((xcr0 & 4) ? 256 : 0);
		o[2] = 576 + ((supported & 4) ? 256 : 0);
		o[3] = 0;
	} else if (sub == 1) {
		host_cpuid(0xd, 1, o);
		o[0] &= 1;	/* XSAVEOPT only: no XSAVES/XSAVEC state */
		o[1] = o[2] = o[3] = 0;
	} else if (sub == 2 && (supported & 4)) {
		host_cpuid(0xd, 2, o);
	} else {
		memset(o, 0, 16);
	}
}

/*
 * Leaf 0x15 (SDM Vol. 2A CPUID): TSC = crystal * EBX / EAX, crystal ECX
 * Hz.  The virtual LAPIC timer counts at the TSC rate, so Tern calls the
 * TSC rate the crystal: Linux on Intel then knows both without a PIT
 * (it computes its LAPIC timer period from the crystal).  A TSC above
 * 4.29 GHz is halved into ECX with a ratio of 2.
 */
static void tsc_leaf(uint32_t o[4])
{
	uint64_t hz = tsc_hz();

	memset(o, 0, 16);
	if (!hz)
		return;
	o[0] = 1;
	o[1] = hz > 0xffffffffull ? 2 : 1;
	o[2] = (uint32_t)(hz > 0xffffffffull ? hz / 2 : hz);
}

static void basic_leaf(struct vcpu *v, uint32_t leaf, uint32_t sub, uint32_t o[4])
{
	host_cpuid(leaf, sub, o);
	switch (leaf) {
	case 0:
		o[0] = BASIC_MAX;	/* leaf 0x15 is Tern's, whatever the host has */
		break;
	case 1:
		/* One logical CPU per package; APIC ID = vCPU index. */
		o[1] = (o[1] & 0x0000ffffu) | (1u << 16) | ((uint32_t)v->id << 24);
		o[2] = (o[2] & L1_ECX_KEEP) | L1_ECX_HV | L1_ECX_TSC_DEADLINE;
		if (v->st.cr4 & (1u << 18))
			o[2] |= L1_ECX_OSXSAVE;
		o[3] = (o[3] & L1_EDX_KEEP) | L1_EDX_APIC;
		break;
	case 6:
		memset(o, 0, 16);
		o[0] = L6_EAX_ARAT;
		break;
	case 7:
		if (sub == 0) {
			o[0] = 0;
			o[1] &= L7_EBX_KEEP;
			o[2] = o[3] = 0;
		} else {
			memset(o, 0, 16);
		}
		break;
	case 0xd:
		leaf_xsave(v, sub, o);
		break;
	case 2: case 4:
		break;		/* cache descriptors: harmless, host's */
	default:
		memset(o, 0, 16);	/* power, topology, PMU, trace: hidden */
	}
}

static void ext_leaf(uint32_t leaf, uint32_t o[4])
{
	host_cpuid(leaf, 0, o);
	switch (leaf) {
	case 0x80000000:
		o[0] = o[0] < EXT_MAX ? o[0] : EXT_MAX;
		break;
	case 0x80000001:
		o[2] &= E1_ECX_KEEP;	/* no SVM, no extended APIC space */
		o[3] &= E1_EDX_KEEP;	/* no RDTSCP: TSC_AUX is not virtualised */
		break;
	case 0x80000002: case 0x80000003: case 0x80000004:
	case 0x80000005: case 0x80000006:
		break;		/* brand string and caches */
	case 0x80000007:
		o[0] = o[1] = o[2] = 0;
		o[3] &= E7_EDX_INVTSC;
		break;
	case 0x80000008:
		o[1] = 0;
		o[2] = 0;	/* one core */
		o[3] = 0;
		break;
	default:
		memset(o, 0, 16);
	}
}

void cpuid_policy(struct vcpu *v, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
	uint32_t max[4];

	if (leaf >= 0x40000000 && leaf <= 0x400000ff) {
		out[0] = out[1] = out[2] = out[3] = 0;
		if (leaf == 0x40000000) {
			out[0] = HV_LEAF_MAX;
			memcpy(&out[1], "TernTernTern", 12);
		}
		return;
	}
	if (leaf >= 0x80000000) {
		host_cpuid(0x80000000, 0, max);
		if (leaf > (max[0] < EXT_MAX ? max[0] : EXT_MAX)) {
			memset(out, 0, 16);
			return;
		}
		ext_leaf(leaf, out);
		return;
	}
	host_cpuid(0, 0, max);
	if (leaf == 0x15) {
		tsc_leaf(out);
		return;
	}
	if (leaf > (max[0] < BASIC_MAX ? max[0] : BASIC_MAX)) {
		memset(out, 0, 16);
		return;
	}
	basic_leaf(v, leaf, sub, out);
}
