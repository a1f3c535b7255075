/*
 * msr: RDMSR/WRMSR behaviour.  Unknown MSRs must raise #GP(0) (SDM
 * Vol. 2B, RDMSR/WRMSR "Protected Mode Exceptions"); the architectural
 * ones a guest OS touches early must work.
 */
#include "guest.h"

#define VEC_UD			6
#define VEC_GP			13
#define UD2_LEN			2	/* 0F 0B */
#define MSR_INSN_LEN		2	/* 0F 32 (RDMSR), 0F 30 (WRMSR) */

#define MSR_TSC			0x00000010u
#define MSR_APIC_BASE		0x0000001Bu
#define MSR_MISC_ENABLE		0x000001A0u
#define MSR_PAT			0x00000277u
#define MSR_EFER		0xC0000080u
#define MSR_STAR		0xC0000081u
#define MSR_LSTAR		0xC0000082u
#define MSR_SFMASK		0xC0000084u
#define MSR_KERNEL_GS_BASE	0xC0000102u
#define MSR_UNKNOWN_LOW		0x00000123u	/* unassigned in SDM Vol. 4 */
#define MSR_UNKNOWN_HIGH	0xC0001234u	/* unassigned in SDM and APM */

#define EFER_LME		(1ull << 8)
#define EFER_LMA		(1ull << 10)
#define EFER_SVME		(1ull << 12)
#define APIC_BASE_BSP		(1ull << 8)

/*
 * Only valid memory types (SDM Vol. 3, 13.12.2), PA0 first:
 * UC- WC WB UC WT UC- WC UC.
 */
#define PAT_TEST_VALUE		0x0001070400060107ull

/* Returns the exception vector taken, or -1 when RDMSR succeeded. */
static int rdmsr_safe(uint32_t msr, uint64_t *val, uint32_t *error)
{
	uint32_t lo = 0, hi = 0;

	guest_expect_fault(VEC_GP, MSR_INSN_LEN);
	__asm__ volatile("rdmsr" : "+a"(lo), "+d"(hi) : "c"(msr) : "memory");
	*val = ((uint64_t)hi << 32) | lo;
	return guest_fault_taken(error);
}

static int wrmsr_safe(uint32_t msr, uint64_t val, uint32_t *error)
{
	guest_expect_fault(VEC_GP, MSR_INSN_LEN);
	__asm__ volatile("wrmsr"
			 : : "c"(msr), "a"((uint32_t)val),
			   "d"((uint32_t)(val >> 32))
			 : "memory");
	return guest_fault_taken(error);
}

/* The #GP checks below are only meaningful if the fault hook works. */
static void check_fault_hook(void)
{
	int vec;

	guest_expect_fault(VEC_UD, UD2_LEN);
	__asm__ volatile("ud2" : : : "memory");
	vec = guest_fault_taken(NULL);
	guest_check("fault_hook_selftest", vec == VEC_UD, "vector %d", vec);
}

static void check_unknown(const char *rd_name, const char *wr_name,
			  uint32_t msr)
{
	uint64_t v;
	uint32_t err = 0;
	int vec;

	vec = rdmsr_safe(msr, &v, &err);
	guest_check(rd_name, vec == VEC_GP && err == 0,
		    "msr 0x%x: vector %d error 0x%x value 0x%llx", msr, vec,
		    err, (unsigned long long)v);
	vec = wrmsr_safe(msr, 0x1234, &err);
	guest_check(wr_name, vec == VEC_GP && err == 0,
		    "msr 0x%x: vector %d error 0x%x", msr, vec, err);
}

static void check_tsc(void)
{
	uint64_t a = 0, b = 0, t;
	int va, vb;
	volatile unsigned int spin;

	va = rdmsr_safe(MSR_TSC, &a, NULL);
	t = guest_rdtsc();
	for (spin = 0; spin < 10000; spin++)
		;
	vb = rdmsr_safe(MSR_TSC, &b, NULL);
	guest_printf("tsc msr 0x%llx rdtsc 0x%llx msr 0x%llx\n",
		     (unsigned long long)a, (unsigned long long)t,
		     (unsigned long long)b);
	guest_check("tsc_readable", va < 0 && vb < 0, "vectors %d %d", va, vb);
	guest_check("tsc_increases", b > a && a <= t && t <= b,
		    "0x%llx, 0x%llx, 0x%llx", (unsigned long long)a,
		    (unsigned long long)t, (unsigned long long)b);
}

static void check_readable(const char *name, uint32_t msr, uint64_t *v)
{
	int vec = rdmsr_safe(msr, v, NULL);

	if (vec < 0)
		guest_printf("msr 0x%x = 0x%llx\n", msr, (unsigned long long)*v);
	guest_check(name, vec < 0, "msr 0x%x: vector %d", msr, vec);
}

static void check_efer(void)
{
	uint64_t efer = 0;

	check_readable("efer_readable", MSR_EFER, &efer);
	guest_check("efer_no_long_mode", !(efer & (EFER_LME | EFER_LMA)),
		    "efer=0x%llx", (unsigned long long)efer);
	/* CPUID hides SVM, so EFER.SVME (which VMRUN needs set) must be too. */
	guest_check("efer_svme_hidden", !(efer & EFER_SVME),
		    "efer=0x%llx", (unsigned long long)efer);
}

static void check_pat(void)
{
	uint64_t orig = 0, v = 0;
	int vr, vw, vb;

	vr = rdmsr_safe(MSR_PAT, &orig, NULL);
	guest_printf("pat 0x%llx\n", (unsigned long long)orig);
	vw = wrmsr_safe(MSR_PAT, PAT_TEST_VALUE, NULL);
	vb = rdmsr_safe(MSR_PAT, &v, NULL);
	guest_check("pat_roundtrip", vr < 0 && vw < 0 && vb < 0 &&
		    v == PAT_TEST_VALUE, "vectors %d %d %d read 0x%llx",
		    vr, vw, vb, (unsigned long long)v);
	vw = wrmsr_safe(MSR_PAT, orig, NULL);
	vb = rdmsr_safe(MSR_PAT, &v, NULL);
	guest_check("pat_restore", vw < 0 && vb < 0 && v == orig,
		    "vectors %d %d read 0x%llx", vw, vb,
		    (unsigned long long)v);
}

/* Linux's STAR: user CS/SS base 0x23 (bits 63:48), kernel CS 0x10
 * (bits 47:32).  Not an address: the SDM (Vol. 4, IA32_STAR) reserves no
 * bit, so any value must be written and read back unchanged. */
#define STAR_LINUX		0x0023001000000000ull
/* Linux's SFMASK (TF DF IF IOPL AC NT...): bits 31:0 only. */
#define SFMASK_LINUX		0x0000000000047700ull
#define NONCANONICAL		0x0000800000000000ull

static void check_roundtrip(const char *name, uint32_t msr, uint64_t val)
{
	uint64_t v = 0;
	uint32_t err = 0;
	int vw, vr;

	vw = wrmsr_safe(msr, val, &err);
	vr = rdmsr_safe(msr, &v, NULL);
	guest_check(name, vw < 0 && vr < 0 && v == val,
		    "msr 0x%x: wrote 0x%llx, vectors %d %d, read 0x%llx", msr,
		    (unsigned long long)val, vw, vr, (unsigned long long)v);
}

static void check_write_gp(const char *name, uint32_t msr, uint64_t val)
{
	uint64_t before = 0, after = 0;
	uint32_t err = 0;
	int vec;

	rdmsr_safe(msr, &before, NULL);
	vec = wrmsr_safe(msr, val, &err);
	rdmsr_safe(msr, &after, NULL);
	guest_check(name, vec == VEC_GP && err == 0 && after == before,
		    "msr 0x%x value 0x%llx: vector %d error 0x%x, 0x%llx -> 0x%llx",
		    msr, (unsigned long long)val, vec, err,
		    (unsigned long long)before, (unsigned long long)after);
}

/* The SYSCALL MSRs, each by its own rule (SDM Vol. 4 table 2-2, Vol. 3A
 * 5.8.8): STAR any value, SFMASK bits 63:32 reserved, LSTAR and
 * KERNEL_GS_BASE canonical; EFER reserved bits #GP. */
static void check_syscall_msrs(void)
{
	check_roundtrip("star_linux_value", MSR_STAR, STAR_LINUX);
	check_roundtrip("star_all_ones", MSR_STAR, ~0ull);
	check_roundtrip("sfmask_linux_value", MSR_SFMASK, SFMASK_LINUX);
	check_write_gp("sfmask_high_bits_gp", MSR_SFMASK, 1ull << 32 | 0x700);
	check_roundtrip("lstar_canonical", MSR_LSTAR, 0xffffffff81000000ull);
	check_write_gp("lstar_noncanonical_gp", MSR_LSTAR, NONCANONICAL);
	check_write_gp("kernel_gs_base_noncanonical_gp", MSR_KERNEL_GS_BASE,
		       NONCANONICAL);
	check_write_gp("efer_reserved_bit_gp", MSR_EFER, 1ull << 20);
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	uint64_t v = 0;

	guest_init("msr", magic, info);
	check_fault_hook();
	check_unknown("rdmsr_unknown_low_gp", "wrmsr_unknown_low_gp",
		      MSR_UNKNOWN_LOW);
	check_unknown("rdmsr_unknown_high_gp", "wrmsr_unknown_high_gp",
		      MSR_UNKNOWN_HIGH);
	check_tsc();
	check_readable("apic_base_readable", MSR_APIC_BASE, &v);
	guest_check("apic_base_bsp", v & APIC_BASE_BSP,
		    "apic_base=0x%llx", (unsigned long long)v);
	check_efer();
	check_pat();
	check_syscall_msrs();
	check_readable("misc_enable_readable", MSR_MISC_ENABLE, &v);
	guest_done();
}
