/*
 * sse: the guest's SSE/AVX registers must survive every kind of exit.
 *
 * The guest turns SSE on (CR0.EM=0, CR0.MP=1, CR4.OSFXSR, SDM Vol. 3A
 * 13.1.4), and AVX too where CPUID offers XSAVE and AVX (CR4.OSXSAVE, then
 * XCR0 = x87|SSE|AVX, SDM Vol. 1 13.3), unless the command line holds
 * "noavx" (XCR0 then stays at its reset value 1, SDM Vol. 1 13.3, while
 * XMM0-7 are in use).  For each exit kind it loads XMM0-7 (YMM0-7 with
 * AVX) and MXCSR with a pattern that depends on seed=N, the kind and the
 * round, forces n=N exits of that kind, and checks every byte: CPUID,
 * port I/O, MMIO to the test device, RDMSR, a CR0 write that VT-x
 * intercepts, XSETBV (with AVX).  Then, hlt=N times, it loads a pattern,
 * arms its LAPIC timer (one-shot, wake=S seconds by CPUID leaf 0x15, 2
 * by default), says "SSE
 * halted K" and halts with interrupts on: the test pauses and resumes the
 * VM meanwhile, which must not wake it (HLT ends on an interrupt, SDM
 * Vol. 3A 8.10.2 -- a pause is not one), the timer does, and the
 * registers are checked again.  A 32-bit guest has XMM0-7 only; the
 * host's corruption shows in those as well.
 */
#include "guest.h"

#define DEV_BASE	0xFEB00000u	/* the test device (kernel/devices) */
#define MSR_PAT		0x277u
#define CR0_MP		(1u << 1)
#define CR0_EM		(1u << 2)
#define CR0_NE		(1u << 5)
#define CR4_OSFXSR	(1u << 9)
#define CR4_OSXMMEXCPT	(1u << 10)
#define CR4_OSXSAVE	(1u << 18)
#define CPUID1_XSAVE	(1u << 26)
#define CPUID1_AVX	(1u << 28)
#define XCR0_AVX	7u
#define MXCSR_RESERVED	0xffff0000u
#define NREGS		8
#define REG_BYTES	32

static uint8_t want[NREGS][REG_BYTES] __attribute__((aligned(32)));
static uint8_t got[NREGS][REG_BYTES] __attribute__((aligned(32)));
static uint32_t want_mxcsr, got_mxcsr;
static bool avx;
static uint32_t seed;

/* The wake-up: every vector past the exceptions lands in one stub that
 * writes the LAPIC's EOI and returns (a spurious 0xff gets an EOI it
 * does not need, which the LAPIC ignores: ISR is empty). */
#define LAPIC_SVR	0xfee000f0u
#define LAPIC_LVT_TIMER	0xfee00320u
#define LAPIC_TIMER_ICR	0xfee00380u
#define LAPIC_TIMER_DCR	0xfee003e0u
#define VEC_WAKE	0x40
#define WAKE_DCR_128	0xau
#define GATE_INTR32	0x8e
#define SEL_CODE	0x08

struct gate {
	uint16_t off_lo, sel;
	uint8_t zero, type;
	uint16_t off_hi;
} __attribute__((packed));

extern const uint32_t exc_stub_table[32];
void sse_irq_wake(void);
volatile uint32_t sse_wakes;

__asm__(".text\n.globl sse_irq_wake\nsse_irq_wake:\n"
	"\tlock incl sse_wakes\n\tmovl $0, 0xfee000b0\n\tiret\n");

static struct gate idt[256] __attribute__((aligned(8)));

static void mmio_w32(uint32_t addr, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)addr = v;
}

/* Leaf 0x15: the LAPIC timer's crystal in ECX, TSC = crystal * EBX / EAX. */
static void crystal(uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(0x15), "c"(0));
}

static void wake_setup(void)
{
	struct { uint16_t limit; uint32_t base; } __attribute__((packed)) d;

	for (int v = 0; v < 256; v++) {
		uint32_t fn = v < 32 ? exc_stub_table[v] : (uint32_t)(uintptr_t)sse_irq_wake;

		idt[v] = (struct gate){ (uint16_t)fn, SEL_CODE, 0, GATE_INTR32,
					(uint16_t)(fn >> 16) };
	}
	d.limit = sizeof(idt) - 1;
	d.base = (uint32_t)(uintptr_t)idt;
	__asm__ volatile("lidt %0" : : "m"(d) : "memory");
	mmio_w32(LAPIC_SVR, 0x1ff);		/* software-enabled */
	mmio_w32(LAPIC_TIMER_DCR, WAKE_DCR_128);
}

static uint32_t xorshift(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Every byte of every register differs between seeds, kinds and rounds. */
static void make_pattern(uint32_t kind, uint32_t round)
{
	uint32_t x = seed * 0x9e3779b9u ^ kind * 0x85ebca6bu ^ round * 0xc2b2ae35u ^ 1;
	int r, i;

	for (r = 0; r < NREGS; r++)
		for (i = 0; i < REG_BYTES; i += 4) {
			uint32_t w = xorshift(&x);

			memcpy(&want[r][i], &w, 4);
		}
	/* Rounding control and flush-to-zero vary, exception masks stay set. */
	want_mxcsr = 0x1f80u | ((x & 3u) << 13) | ((x >> 2) & 1u) << 15;
}

/* No clobber lists: this file is built -mno-sse, so the compiler itself
 * never touches these registers. */
static void load_regs(void)
{
	if (avx)
		__asm__ volatile(
			"vmovdqu 0(%0), %%ymm0\n\tvmovdqu 32(%0), %%ymm1\n\t"
			"vmovdqu 64(%0), %%ymm2\n\tvmovdqu 96(%0), %%ymm3\n\t"
			"vmovdqu 128(%0), %%ymm4\n\tvmovdqu 160(%0), %%ymm5\n\t"
			"vmovdqu 192(%0), %%ymm6\n\tvmovdqu 224(%0), %%ymm7"
			: : "r"(want) : "memory");
	else
		__asm__ volatile(
			"movdqu 0(%0), %%xmm0\n\tmovdqu 32(%0), %%xmm1\n\t"
			"movdqu 64(%0), %%xmm2\n\tmovdqu 96(%0), %%xmm3\n\t"
			"movdqu 128(%0), %%xmm4\n\tmovdqu 160(%0), %%xmm5\n\t"
			"movdqu 192(%0), %%xmm6\n\tmovdqu 224(%0), %%xmm7"
			: : "r"(want) : "memory");
	__asm__ volatile("ldmxcsr %0" : : "m"(want_mxcsr));
}

static void store_regs(void)
{
	memset(got, 0, sizeof(got));
	if (avx)
		__asm__ volatile(
			"vmovdqu %%ymm0, 0(%0)\n\tvmovdqu %%ymm1, 32(%0)\n\t"
			"vmovdqu %%ymm2, 64(%0)\n\tvmovdqu %%ymm3, 96(%0)\n\t"
			"vmovdqu %%ymm4, 128(%0)\n\tvmovdqu %%ymm5, 160(%0)\n\t"
			"vmovdqu %%ymm6, 192(%0)\n\tvmovdqu %%ymm7, 224(%0)"
			: : "r"(got) : "memory");
	else
		__asm__ volatile(
			"movdqu %%xmm0, 0(%0)\n\tmovdqu %%xmm1, 32(%0)\n\t"
			"movdqu %%xmm2, 64(%0)\n\tmovdqu %%xmm3, 96(%0)\n\t"
			"movdqu %%xmm4, 128(%0)\n\tmovdqu %%xmm5, 160(%0)\n\t"
			"movdqu %%xmm6, 192(%0)\n\tmovdqu %%xmm7, 224(%0)"
			: : "r"(got) : "memory");
	__asm__ volatile("stmxcsr %0" : "=m"(got_mxcsr));
}

/* The first differing register and byte, or -1. */
static int first_diff(int *byte)
{
	int len = avx ? 32 : 16, r, i;

	for (r = 0; r < NREGS; r++)
		for (i = 0; i < len; i++)
			if (want[r][i] != got[r][i]) {
				*byte = i;
				return r;
			}
	return -1;
}

static void check_regs(const char *name)
{
	int byte = 0, r;

	store_regs();
	r = first_diff(&byte);
	guest_check(name, r < 0 && got_mxcsr == want_mxcsr,
		    "%s%d byte %d: want 0x%02x got 0x%02x; mxcsr want 0x%x got 0x%x",
		    avx ? "ymm" : "xmm", r, byte, r < 0 ? 0 : want[r][byte],
		    r < 0 ? 0 : got[r][byte], want_mxcsr, got_mxcsr);
}

static inline uint32_t read_cr0(void)
{
	uint32_t v;

	__asm__ volatile("mov %%cr0, %0" : "=r"(v));
	return v;
}

static inline void write_cr0(uint32_t v)
{
	__asm__ volatile("mov %0, %%cr0" : : "r"(v) : "memory");
}

static inline void write_cr4(uint32_t v)
{
	__asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory");
}

static inline void xsetbv(uint32_t lo)
{
	__asm__ volatile("xsetbv" : : "c"(0), "a"(lo), "d"(0) : "memory");
}

static void exit_cpuid(void)
{
	uint32_t r[4];

	guest_cpuid(0, 0, r);
}

static void exit_io(void)
{
	(void)inb(0x3FD);	/* COM1 LSR */
}

static void exit_mmio(void)
{
	(void)*(volatile uint32_t *)(uintptr_t)DEV_BASE;
}

static void exit_msr(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(MSR_PAT));
}

/* CR0.NE is a bit VT-x fixes to 1, so Tern owns it and a write that
 * changes it exits (SDM Vol. 3C 25.6.6); under SVM it does not exit. */
static void exit_cr(void)
{
	uint32_t cr0 = read_cr0();

	write_cr0(cr0 ^ CR0_NE);
	write_cr0(cr0);
}

static void exit_xsetbv(void)
{
	xsetbv(XCR0_AVX);
}

struct exit_kind {
	const char *name;
	void (*fn)(void);
	bool need_avx;
};

static const struct exit_kind kinds[] = {
	{ "sse_after_cpuid", exit_cpuid, false },
	{ "sse_after_io", exit_io, false },
	{ "sse_after_mmio", exit_mmio, false },
	{ "sse_after_msr", exit_msr, false },
	{ "sse_after_cr", exit_cr, false },
	{ "sse_after_xsetbv", exit_xsetbv, true },
};

static void enable_sse(bool want_avx)
{
	uint32_t r[4];

	write_cr0((read_cr0() & ~CR0_EM) | CR0_MP);
	write_cr4(guest_read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
	guest_cpuid(1, 0, r);
	if (want_avx && (r[2] & CPUID1_XSAVE) && (r[2] & CPUID1_AVX)) {
		write_cr4(guest_read_cr4() | CR4_OSXSAVE);
		xsetbv(XCR0_AVX);
		avx = true;
	}
	guest_printf("SSE on, %s, seed %u\n", avx ? "AVX (YMM0-7)" : "XMM0-7 only",
		     seed);
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	const char *cmd;
	uint64_t n = 2000, hlts = 0, s = 1, wake = 2;
	unsigned k, i, round;
	uint32_t c15[4], count, halts;

	guest_init("sse", magic, info);
	cmd = guest_cmdline(guest_boot_info());
	guest_cmdline_u64(cmd, "n", &n);
	guest_cmdline_u64(cmd, "hlt", &hlts);
	guest_cmdline_u64(cmd, "seed", &s);
	guest_cmdline_u64(cmd, "wake", &wake);	/* seconds in HLT, 1..30 */
	if (wake < 1 || wake > 30)
		wake = 2;
	seed = (uint32_t)s;
	enable_sse(!guest_cmdline_has(cmd, "noavx"));
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		if (kinds[k].need_avx && !avx)
			continue;
		make_pattern(k, 0);
		load_regs();
		for (i = 0; i < n; i++)
			kinds[k].fn();
		check_regs(kinds[k].name);
	}
	if (hlts)
		wake_setup();
	crystal(c15);
	/* wake= seconds of crystal at divide-by-128; without leaf 0x15, a
	 * count that is long at any rate the labs run. */
	count = c15[2] && c15[0] ? (uint32_t)((c15[2] >> 7) * wake) : 200000000u;
	for (round = 1; round <= hlts; round++) {
		uint32_t w = sse_wakes;
		uint64_t t0, t1;

		make_pattern(100, round);
		load_regs();
		/* The line goes out before the clock starts: under Bochs
		 * its UART exits take a fifth of a second, which the timer
		 * would otherwise count and the TSC window would not. */
		guest_printf("SSE halted %u\n", round);
		t0 = guest_rdtsc();
		mmio_w32(LAPIC_LVT_TIMER, VEC_WAKE);	/* one-shot */
		mmio_w32(LAPIC_TIMER_ICR, count);
		for (halts = 0; sse_wakes == w; halts++)
			__asm__ volatile("sti; hlt; cli" : : : "memory");
		t1 = guest_rdtsc();
		check_regs("sse_after_hlt");
		/* Only the timer ends the halt: the test's pause and resume,
		 * 0.2 s in, must not.  The timer needs count x 128 crystal
		 * ticks, (t1 - t0) * EAX / EBX of them went by: 90 % at least. */
		guest_check("sse_hlt_until_interrupt", halts == 1 && sse_wakes == w + 1 &&
			    (!c15[2] || !c15[0] ||
			     (t1 - t0) * c15[0] * 10 >= (uint64_t)count * 128 * c15[1] * 9),
			    "%u HLTs ended by %u interrupts; halted %u Mticks of TSC, the timer "
			    "needs %u M crystal ticks (ratio %u/%u)", halts, sse_wakes - w,
			    (uint32_t)((t1 - t0) >> 20), (uint32_t)(((uint64_t)count * 128) >> 20),
			    c15[1], c15[0]);
	}
	guest_done();
}
