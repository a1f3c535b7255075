/*
 * apic: the virtual local APIC as a guest sees it (SDM Vol. 3A chapter 11).
 *
 * Checks the APIC base MSR and the reset registers, a self-IPI and TPR
 * masking, the timer in periodic, one-shot and TSC-deadline modes (the
 * timer counts at the crystal rate CPUID leaf 0x15 reports), and a masked
 * timer that must stay silent.  With "smp" on the command line and a
 * second vCPU, it starts the AP the way an OS does (INIT assert, INIT
 * de-assert, SIPI, SIPI: SDM 9.4.4.1) into a real-mode trampoline that
 * counts its starts, and checks a second SIPI does not restart it while
 * a new INIT-SIPI does.
 *
 * NMI blocking (SDM Vol. 3A 6.7.1; APM Vol. 2 8.2.2 NMI): the NMI
 * handler sends itself a second NMI and makes exits (LAPIC reads) before
 * its IRET.  The second NMI must wait for that IRET -- the handler never
 * runs nested -- and then arrive at once, with the CPU awake and making
 * no exits of its own.
 */
#include "guest.h"

#define LAPIC_BASE	0xfee00000u
#define APIC_ID		0x020
#define APIC_VER	0x030
#define APIC_TPR	0x080
#define APIC_EOI	0x0b0
#define APIC_SVR	0x0f0
#define APIC_ISR	0x100
#define APIC_ESR	0x280
#define APIC_ICR_LO	0x300
#define APIC_ICR_HI	0x310
#define APIC_LVT_TIMER	0x320
#define APIC_TIMER_ICR	0x380
#define APIC_TIMER_CCR	0x390
#define APIC_TIMER_DCR	0x3e0
#define MSR_APIC_BASE	0x1b
#define MSR_TSC_DEADLINE 0x6e0
#define VEC_TIMER	0x40
#define VEC_IPI		0x41
#define VEC_DEADLINE	0x42
#define LVT_MASKED	(1u << 16)
#define LVT_PERIODIC	(1u << 17)
#define LVT_TSCDL	(2u << 17)
#define TRAMP_PA	0x8000u		/* SIPI vector 0x08 */
#define GATE_INTR32	0x8e
#define SEL_CODE	0x08

struct gate {
	uint16_t off_lo, sel;
	uint8_t zero, type;
	uint16_t off_hi;
} __attribute__((packed));

/* Counters the interrupt stubs bump (global: the asm names them). */
volatile uint32_t apic_ticks, apic_ipis, apic_deadlines;
volatile uint32_t apic_nmis, apic_nmi_depth, apic_nmi_nested;
volatile uint64_t apic_deadline_tsc;

extern const uint32_t exc_stub_table[32];
void irq_timer(void);
void irq_ipi(void);
void irq_deadline(void);
void irq_nmi(void);
extern const uint8_t tramp_start[], tramp_end[], tramp_count[];

/* Each stub counts, writes EOI and returns; the deadline stub also
 * records the TSC at which it ran. */
__asm__(".text\n"
	".globl irq_timer\nirq_timer:\n"
	"\tlock incl apic_ticks\n"
	"\tmovl $0, 0xfee000b0\n\tiret\n"
	".globl irq_ipi\nirq_ipi:\n"
	"\tlock incl apic_ipis\n"
	"\tmovl $0, 0xfee000b0\n\tiret\n"
	".globl irq_deadline\nirq_deadline:\n"
	"\tpushl %eax\n\tpushl %edx\n\trdtsc\n"
	"\tmovl %eax, apic_deadline_tsc\n\tmovl %edx, apic_deadline_tsc+4\n"
	"\tlock incl apic_deadlines\n"
	"\tmovl $0, 0xfee000b0\n\tpopl %edx\n\tpopl %eax\n\tiret\n"
	/* The NMI: count, note a nested entry, and on the first one send
	 * a second NMI to ourselves (physical destination 0, delivery mode
	 * NMI) and exit 64 times (APIC ID reads) before the IRET. */
	".globl irq_nmi\nirq_nmi:\n"
	"\tpushl %eax\n"
	"\tlock incl apic_nmis\n"
	"\tcmpl $0, apic_nmi_depth\n\tje 1f\n"
	"\tlock incl apic_nmi_nested\n"
	"1:\tlock incl apic_nmi_depth\n"
	"\tcmpl $1, apic_nmis\n\tjne 3f\n"
	"\tmovl $0, 0xfee00310\n\tmovl $0x400, 0xfee00300\n"
	"\tmovl $64, %eax\n"
	"2:\tpushl %eax\n\tmovl 0xfee00020, %eax\n\tpopl %eax\n"
	"\tdecl %eax\n\tjnz 2b\n"
	"3:\tlock decl apic_nmi_depth\n"
	"\tpopl %eax\n\tiret\n"
	/* Real-mode AP trampoline: count one start, then halt for good. */
	".globl tramp_start, tramp_end, tramp_count\n"
	".code16\ntramp_start:\n"
	"\tcli\n"
	"\tlock incl %cs:(tramp_count - tramp_start)\n"
	"1:\thlt\n\tjmp 1b\n"
	"\t.balign 4\ntramp_count:\t.long 0\n"
	"tramp_end:\n.code32\n");

static struct gate idt[256] __attribute__((aligned(8)));

/* 64-by-32 division without libgcc (the guests link none). */
static uint64_t udiv(uint64_t n, uint32_t d)
{
	uint64_t q = 0, r = 0;
	int i;

	for (i = 63; i >= 0; i--) {
		r = (r << 1) | ((n >> i) & 1);
		if (r >= d) {
			r -= d;
			q |= 1ull << i;
		}
	}
	return q;
}

static uint32_t rd(uint32_t off)
{
	return *(volatile uint32_t *)(LAPIC_BASE + off);
}

static void wr(uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(LAPIC_BASE + off) = v;
}

static uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static uint64_t tsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static void set_gate(int vec, uint32_t fn)
{
	idt[vec] = (struct gate){ (uint16_t)fn, SEL_CODE, 0, GATE_INTR32,
				  (uint16_t)(fn >> 16) };
}

static void idt_setup(void)
{
	struct { uint16_t limit; uint32_t base; } __attribute__((packed)) d;
	int v;

	for (v = 0; v < 32; v++)
		set_gate(v, exc_stub_table[v]);
	set_gate(VEC_TIMER, (uint32_t)(uintptr_t)irq_timer);
	set_gate(VEC_IPI, (uint32_t)(uintptr_t)irq_ipi);
	set_gate(VEC_DEADLINE, (uint32_t)(uintptr_t)irq_deadline);
	set_gate(2, (uint32_t)(uintptr_t)irq_nmi);
	d.limit = sizeof(idt) - 1;
	d.base = (uint32_t)(uintptr_t)idt;
	__asm__ volatile("lidt %0" : : "m"(d) : "memory");
}

/* HLT with interrupts on until *ctr reaches want or max_tsc passes. */
static void wait_for(volatile uint32_t *ctr, uint32_t want, uint64_t max_tsc)
{
	uint64_t end = tsc() + max_tsc;

	while (*ctr < want && tsc() < end)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
}

/* The same with the CPU awake: for checks that nothing arrives (an HLT
 * with nothing due would sleep for good, as on hardware). */
static void spin_for(volatile uint32_t *ctr, uint32_t want, uint64_t max_tsc)
{
	uint64_t end = tsc() + max_tsc;

	while (*ctr < want && tsc() < end)
		__asm__ volatile("sti; pause; cli" ::: "memory");
}

static void check_reset_state(void)
{
	uint64_t base = rdmsr(MSR_APIC_BASE);

	guest_check("apic_base", base == (LAPIC_BASE | (1u << 11) | (1u << 8)),
		    "IA32_APIC_BASE 0x%x%08x", (uint32_t)(base >> 32), (uint32_t)base);
	guest_check("apic_version", rd(APIC_VER) == 0x00050014u, "version 0x%x",
		    rd(APIC_VER));
	guest_check("apic_id", rd(APIC_ID) == 0, "ID register 0x%x", rd(APIC_ID));
	guest_check("apic_svr_reset", rd(APIC_SVR) == 0xff, "SVR 0x%x", rd(APIC_SVR));
	guest_check("apic_lvt_masked", rd(APIC_LVT_TIMER) & LVT_MASKED,
		    "LVT timer 0x%x", rd(APIC_LVT_TIMER));
}

static void check_self_ipi(void)
{
	wr(APIC_ICR_LO, (1u << 18) | VEC_IPI);	/* shorthand self, fixed */
	__asm__ volatile("sti; nop; nop; cli" ::: "memory");
	guest_check("apic_self_ipi", apic_ipis == 1 && rd(APIC_ISR + 0x20) == 0,
		    "ipis %u, ISR[1] 0x%x", apic_ipis, rd(APIC_ISR + 0x20));
	/* TPR 0x50 holds back priority class 4 (SDM 11.8.3.1). */
	wr(APIC_TPR, 0x50);
	wr(APIC_ICR_LO, (1u << 18) | VEC_IPI);
	__asm__ volatile("sti; nop; nop; nop; cli" ::: "memory");
	guest_check("apic_tpr_masks", apic_ipis == 1, "delivered under TPR 0x50 (%u)",
		    apic_ipis);
	wr(APIC_TPR, 0);
	__asm__ volatile("sti; nop; nop; cli" ::: "memory");
	guest_check("apic_tpr_release", apic_ipis == 2, "ipis %u after TPR 0", apic_ipis);
}

/* Interrupts off all along: NMIs ignore RFLAGS.IF.  A tenth of a second
 * of TSC (at the crystal's rate, hz) is ages for the second NMI. */
static void check_nmi_blocking(uint64_t hz)
{
	uint64_t end;

	wr(APIC_ICR_HI, 0);
	wr(APIC_ICR_LO, 4u << 8);		/* NMI, to APIC ID 0: ourselves */
	end = tsc() + udiv(hz, 10);
	while (apic_nmis < 2 && tsc() < end)
		__asm__ volatile("pause" ::: "memory");
	guest_check("apic_nmi_blocked_until_iret", apic_nmi_nested == 0 && apic_nmis >= 1,
		    "%u NMIs, %u of them inside the handler", apic_nmis, apic_nmi_nested);
	guest_check("apic_nmi_after_iret", apic_nmis == 2,
		    "%u NMIs within 0.1 s (the second is sent by the first)", apic_nmis);
}

static void check_periodic(uint64_t crystal, uint64_t hz)
{
	uint64_t period = udiv(hz, 1000), t0, dt;	/* 1 ms at divide-by-1 */

	wr(APIC_TIMER_DCR, 0xb);
	wr(APIC_LVT_TIMER, LVT_PERIODIC | VEC_TIMER);
	t0 = tsc();
	wr(APIC_TIMER_ICR, (uint32_t)udiv(crystal, 1000));
	wait_for(&apic_ticks, 20, hz * 5);
	dt = tsc() - t0;
	wr(APIC_TIMER_ICR, 0);
	/* Ticks never come early; coalescing may only make fewer. */
	guest_check("apic_timer_periodic", apic_ticks >= 20 && dt >= 19 * period,
		    "%u ticks in %u us", apic_ticks, (uint32_t)udiv(dt, (uint32_t)udiv(hz, 1000000)));
}

/*
 * A periodic count of 1 (the shortest the SDM allows) is always due: the
 * guest must still run -- an interrupt storm it asked for, not a vCPU
 * that never gets back into the guest.  With IF clear nothing is taken;
 * the loop only has to finish.
 */
static void check_tiny_period(void)
{
	volatile uint32_t spins = 0;

	apic_ticks = 0;
	wr(APIC_TIMER_DCR, 0xb);
	wr(APIC_LVT_TIMER, LVT_PERIODIC | VEC_TIMER);
	wr(APIC_TIMER_ICR, 1);
	while (spins < 100000)
		spins++;
	wr(APIC_TIMER_ICR, 0);
	/* Take the (coalesced) interrupt still pending, so later checks
	 * start clean. */
	__asm__ volatile("sti; nop; nop; cli" ::: "memory");
	guest_check("apic_timer_tiny_period_runs", spins == 100000 && apic_ticks >= 1,
		    "%u spins, %u interrupts", spins, apic_ticks);
}

static void check_oneshot(uint64_t hz)
{
	uint32_t count = (uint32_t)udiv(hz, 10), c1, c2;	/* 100 ms: stays running under load */

	apic_ticks = 0;
	wr(APIC_LVT_TIMER, VEC_TIMER);
	wr(APIC_TIMER_ICR, count);
	c1 = rd(APIC_TIMER_CCR);
	c2 = rd(APIC_TIMER_CCR);
	guest_check("apic_timer_counts_down", c1 <= count && c2 < c1 && c2 > 0,
		    "initial %u, then %u, %u", count, c1, c2);
	wait_for(&apic_ticks, 1, hz);
	spin_for(&apic_ticks, 2, udiv(hz, 50));	/* 20 ms: must not fire again */
	guest_check("apic_timer_oneshot", apic_ticks == 1 && rd(APIC_TIMER_CCR) == 0,
		    "%u interrupts, current count %u", apic_ticks, rd(APIC_TIMER_CCR));
	/* Masked: counts, but raises nothing. */
	apic_ticks = 0;
	wr(APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
	wr(APIC_TIMER_ICR, (uint32_t)udiv(hz, 1000));
	spin_for(&apic_ticks, 1, udiv(hz, 50));
	guest_check("apic_timer_masked", apic_ticks == 0, "%u interrupts", apic_ticks);
}

static void check_deadline(uint64_t hz)
{
	uint64_t dl;

	wr(APIC_LVT_TIMER, LVT_TSCDL | VEC_DEADLINE);
	dl = tsc() + udiv(hz, 20);	/* 50 ms: a loaded host must not make it due early */
	wrmsr(MSR_TSC_DEADLINE, dl);
	guest_check("apic_deadline_armed", rdmsr(MSR_TSC_DEADLINE) == dl, "reads back 0x%x",
		    (uint32_t)rdmsr(MSR_TSC_DEADLINE));
	wait_for(&apic_deadlines, 1, hz);
	guest_check("apic_deadline_fires", apic_deadlines == 1 && apic_deadline_tsc >= dl &&
		    rdmsr(MSR_TSC_DEADLINE) == 0, "%u interrupts, %u us after the deadline",
		    apic_deadlines, (uint32_t)udiv(apic_deadline_tsc - dl,
						   (uint32_t)udiv(hz, 1000000)));
	/* Writing 0 disarms (SDM 11.5.4.1). */
	wrmsr(MSR_TSC_DEADLINE, tsc() + udiv(hz, 20));
	wrmsr(MSR_TSC_DEADLINE, 0);
	spin_for(&apic_deadlines, 2, udiv(hz, 10));
	guest_check("apic_deadline_disarm", apic_deadlines == 1, "%u interrupts",
		    apic_deadlines);
	wr(APIC_LVT_TIMER, LVT_MASKED);
}

static void send_ipi(uint32_t dest, uint32_t lo)
{
	wr(APIC_ICR_HI, dest << 24);
	wr(APIC_ICR_LO, lo);
}

static volatile uint32_t *tramp_counter(void)
{
	return (volatile uint32_t *)(TRAMP_PA + (uint32_t)(tramp_count - tramp_start));
}

static void wait_count(uint32_t want, uint64_t max_tsc)
{
	uint64_t end = tsc() + max_tsc;

	while (*tramp_counter() < want && tsc() < end)
		__asm__ volatile("pause");
}

/* INIT assert, INIT de-assert, SIPI x2 -- the MP start-up sequence. */
static void start_ap(void)
{
	send_ipi(1, 0xc500);		/* INIT, level, assert */
	send_ipi(1, 0x8500);		/* INIT, level, de-assert */
	send_ipi(1, 0x0600 | (TRAMP_PA >> 12));
	send_ipi(1, 0x0600 | (TRAMP_PA >> 12));
}

static void check_smp(uint64_t hz)
{
	memcpy((void *)TRAMP_PA, tramp_start, (size_t)(tramp_end - tramp_start));
	start_ap();
	wait_count(1, hz * 5);
	wait_count(2, udiv(hz, 20));		/* the second SIPI must not restart it */
	guest_check("apic_sipi_starts_ap", *tramp_counter() == 1,
		    "trampoline ran %u times after INIT, SIPI, SIPI", *tramp_counter());
	start_ap();
	wait_count(2, hz * 5);
	guest_check("apic_init_restarts_ap", *tramp_counter() == 2,
		    "trampoline ran %u times after a second INIT-SIPI", *tramp_counter());
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	uint32_t r[4];
	uint64_t hz;

	guest_init("apic", magic, info);
	idt_setup();
	check_reset_state();
	wr(APIC_SVR, 0x1ff);
	guest_check("apic_esr_clear", (wr(APIC_ESR, 0), rd(APIC_ESR)) == 0, "ESR 0x%x",
		    rd(APIC_ESR));
	check_self_ipi();
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(0x15), "c"(0));
	hz = udiv((uint64_t)r[2] * (r[1] ? r[1] : 1), r[0] ? r[0] : 1);
	guest_check("apic_crystal_known", r[2] != 0, "CPUID 0x15 = %x %x %x", r[0], r[1],
		    r[2]);
	if (r[2]) {
		check_periodic(r[2], hz);
		check_tiny_period();
		check_oneshot(r[2]);
		check_deadline(hz);
		check_nmi_blocking(hz);
	}
	if (guest_cmdline_has(guest_cmdline(info), "smp") && r[2])
		check_smp(hz);
	guest_done();
}
