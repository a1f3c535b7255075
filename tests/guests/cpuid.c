/*
 * cpuid: the hypervisor's filtered, migration-safe CPUID view.  Bit
 * positions: Intel SDM Vol. 2A, CPUID, tables 3-8 and 3-10; AMD APM
 * Vol. 3, appendix E.
 */
#include "guest.h"

#define L1_ECX_MONITOR		(1u << 3)
#define L1_ECX_VMX		(1u << 5)
#define L1_ECX_XSAVE		(1u << 26)
#define L1_ECX_OSXSAVE		(1u << 27)
#define L1_ECX_HYPERVISOR	(1u << 31)	/* reserved for hypervisor use */
#define X1_ECX_SVM		(1u << 2)
#define CR4_OSXSAVE		(1u << 18)
#define HV_LEAF			0x40000000u
#define EXT_LEAF		0x80000000u

static void check_vendor(void)
{
	uint32_t r[4];
	char vendor[13];

	guest_cpuid(0, 0, r);
	memcpy(vendor, &r[1], 4);
	memcpy(vendor + 4, &r[3], 4);
	memcpy(vendor + 8, &r[2], 4);
	vendor[12] = '\0';
	guest_printf("vendor \"%s\" max basic leaf 0x%x\n", vendor, r[0]);
	guest_check("basic_leaf_1", r[0] >= 1, "max leaf 0x%x", r[0]);
}

static void check_leaf1(void)
{
	uint32_t r[4];

	guest_cpuid(1, 0, r);
	guest_printf("leaf 1: eax=%08x ebx=%08x ecx=%08x edx=%08x\n",
		     r[0], r[1], r[2], r[3]);
	guest_check("hypervisor_bit", r[2] & L1_ECX_HYPERVISOR,
		    "ecx=0x%08x", r[2]);
	guest_check("vmx_hidden", !(r[2] & L1_ECX_VMX), "ecx=0x%08x", r[2]);
	guest_check("monitor_hidden", !(r[2] & L1_ECX_MONITOR),
		    "ecx=0x%08x", r[2]);
	guest_check("apic_id_zero", (r[1] >> 24) == 0, "ebx=0x%08x", r[1]);
}

static bool osxsave_bit(void)
{
	uint32_t r[4];

	guest_cpuid(1, 0, r);
	return (r[2] & L1_ECX_OSXSAVE) != 0;
}

/* CPUID.1:ECX.OSXSAVE reflects CR4.OSXSAVE (SDM Vol. 2A, table 3-10). */
static void check_osxsave(void)
{
	uint32_t cr4 = guest_read_cr4(), r[4];
	bool bit = osxsave_bit();

	guest_check("osxsave_matches_cr4", bit == !!(cr4 & CR4_OSXSAVE),
		    "cpuid osxsave=%d cr4=0x%08x", bit, cr4);
	guest_cpuid(1, 0, r);
	if (!(r[2] & L1_ECX_XSAVE) || (cr4 & CR4_OSXSAVE)) {
		guest_puts("NOTE osxsave_follows_cr4 skipped (no XSAVE)\n");
		return;
	}
	__asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | CR4_OSXSAVE));
	bit = osxsave_bit();
	__asm__ volatile("mov %0, %%cr4" : : "r"(cr4));
	guest_check("osxsave_follows_cr4", bit,
		    "cpuid osxsave=0 after setting CR4.OSXSAVE");
	bit = osxsave_bit();
	guest_check("osxsave_clears_with_cr4", !bit,
		    "cpuid osxsave=1 after clearing CR4.OSXSAVE");
}

static void check_ext(void)
{
	uint32_t r[4], max;

	guest_cpuid(EXT_LEAF, 0, r);
	max = r[0];
	guest_printf("max extended leaf 0x%x\n", max);
	if (max < EXT_LEAF + 1) {
		guest_check("svm_hidden", true, "%s", "");
		return;
	}
	guest_cpuid(EXT_LEAF + 1, 0, r);
	guest_check("svm_hidden", !(r[2] & X1_ECX_SVM), "ecx=0x%08x", r[2]);
}

static void check_hv_leaf(void)
{
	uint32_t r[4];
	char sig[13];

	guest_cpuid(HV_LEAF, 0, r);
	memcpy(sig, &r[1], 4);
	memcpy(sig + 4, &r[2], 4);
	memcpy(sig + 8, &r[3], 4);
	sig[12] = '\0';
	for (unsigned int i = 0; i < 12; i++)
		if (sig[i] < 0x20 || sig[i] > 0x7e)
			sig[i] = '.';
	guest_printf("leaf 0x40000000: max 0x%x signature \"%s\"\n", r[0], sig);
	guest_check("hv_max_leaf", r[0] >= HV_LEAF && r[0] < HV_LEAF + 0x100,
		    "eax=0x%08x", r[0]);
	guest_check("hv_signature", !memcmp(sig, "TernTernTern", 12),
		    "\"%s\"", sig);
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	guest_init("cpuid", magic, info);
	check_vendor();
	check_leaf1();
	check_osxsave();
	check_ext();
	check_hv_leaf();
	guest_done();
}
