/*
 * storm: a hostile guest.  It never finishes; the test measures the host
 * console while it runs, then stops and destroys it.  The first word of
 * the command line picks the mode:
 *   mmio     LAPIC register reads/writes and reads/writes of the unbacked
 *            chipset window (0xfec01000-0xfedfffff, 0xfef00000-)
 *   ports    IN/OUT on PIC, PIT, CMOS, PCI config, fw_cfg, testdev, POST
 *            and unclaimed ports
 *   ipi      self-IPIs, fixed and NMI IPIs to the other vCPU, the
 *            all-including-self and all-excluding-self shorthands; the BSP
 *            sends INIT-SIPI to the AP every so often and the AP sends
 *            INIT to itself (SDM Vol. 3A 11.6.1)
 *   garbage  pseudo-random values to every LAPIC register offset and to
 *            the IOAPIC (IOREGSEL/IOWIN, RTEs with absurd vectors and
 *            destinations, level-triggered and never EOIed), with the PIT
 *            programmed at its fastest rate
 *   spin     PAUSE loop, no exits at all: the control for the others (on
 *            the emulator, busy vCPUs alone compete with the console CPU)
 *   triple   (vcpus=2) the AP storms mmio+ports+ipi while the BSP
 *            triple-faults (zero-limit IDT, then INT3: SDM Vol. 3A 6.15)
 * With a second vCPU (and "smp" on the command line) the AP is started by
 * INIT-SIPI-SIPI into a real-mode trampoline that enters protected mode
 * on the BSP's GDT and storms in the same mode.
 */
#include "guest.h"

#define LAPIC		0xfee00000u
#define IOAPIC		0xfec00000u
#define APIC_ID		0x020
#define APIC_TPR	0x080
#define APIC_EOI	0x0b0
#define APIC_SVR	0x0f0
#define APIC_ICR_LO	0x300
#define APIC_ICR_HI	0x310
#define APIC_TIMER_CCR	0x390
#define TRAMP_PA	0x8000u		/* SIPI vector 0x08 */
#define SEL_CODE	0x08
#define GATE_INTR32	0x8e
#define VEC_ANY		0x50
#define AP_STACK_SIZE	8192

enum mode { M_MMIO, M_PORTS, M_IPI, M_GARBAGE, M_SPIN, M_TRIPLE };

struct gate {
	uint16_t off_lo, sel;
	uint8_t zero, type;
	uint16_t off_hi;
} __attribute__((packed));

struct dtr {
	uint16_t limit;
	uint32_t base;
} __attribute__((packed));

volatile uint32_t storm_irqs, storm_nmis;
uint8_t storm_ap_stack[AP_STACK_SIZE] __attribute__((aligned(16)));
void storm_ap_main(void);
void storm_irq(void);
void storm_nmi(void);
extern const uint8_t tramp_start[], tramp_end[], tramp_gdt[];

/*
 * Every interrupt vector counts and EOIs (an EOI with nothing in service
 * is ignored, SDM 11.8.5); NMI just returns.  The AP trampoline: real
 * mode at 0x800:0, LGDT from the descriptor the BSP copied in (operand
 * size 32 for a 32-bit base), PE on, far jump to flat 32-bit code.
 */
__asm__(".text\n"
	".globl storm_irq\nstorm_irq:\n"
	"\tlock incl storm_irqs\n"
	"\tmovl $0, 0xfee000b0\n\tiret\n"
	".globl storm_nmi\nstorm_nmi:\n"
	"\tlock incl storm_nmis\n\tiret\n"
	".globl tramp_start, tramp_end, tramp_gdt\n"
	".code16\ntramp_start:\n"
	"\tcli\n"
	"\tlgdtl %cs:(tramp_gdt - tramp_start)\n"
	"\tmovl %cr0, %eax\n\torl $1, %eax\n\tmovl %eax, %cr0\n"
	"\tljmpl $0x08, $storm_ap32\n"
	"\t.balign 4\ntramp_gdt:\t.word 0\n\t.long 0\n"
	"tramp_end:\n.code32\n"
	"storm_ap32:\n"
	"\tmovw $0x10, %ax\n\tmovw %ax, %ds\n\tmovw %ax, %es\n\tmovw %ax, %ss\n"
	"\tmovw %ax, %fs\n\tmovw %ax, %gs\n"
	"\tmovl $storm_ap_stack + 8192, %esp\n"
	"\tcall storm_ap_main\n"
	"1:\tcli\n\thlt\n\tjmp 1b\n");

static struct gate idt[256] __attribute__((aligned(8)));
static enum mode storm_mode;
static uint32_t seed = 0x12345678;

static uint32_t rnd(void)
{
	/* xorshift32: cheap and good enough to spread values around. */
	seed ^= seed << 13;
	seed ^= seed >> 17;
	seed ^= seed << 5;
	return seed;
}

static uint32_t rd(uint32_t addr)
{
	return *(volatile uint32_t *)addr;
}

static void wr(uint32_t addr, uint32_t v)
{
	*(volatile uint32_t *)addr = v;
}

static void set_gate(int vec, void (*fn)(void))
{
	uint32_t a = (uint32_t)(uintptr_t)fn;

	idt[vec] = (struct gate){ (uint16_t)a, SEL_CODE, 0, GATE_INTR32, (uint16_t)(a >> 16) };
}

static void idt_load(void)
{
	struct dtr d = { sizeof(idt) - 1, (uint32_t)(uintptr_t)idt };

	__asm__ volatile("lidt %0" : : "m"(d) : "memory");
}

static void idt_setup(void)
{
	extern const uint32_t exc_stub_table[32];
	int v;

	for (v = 0; v < 256; v++)
		set_gate(v, storm_irq);
	/* Real exceptions are reported (and end the guest) except in garbage
	 * mode, where a garbage LVT may deliver any vector 16-31 as an
	 * interrupt: then every vector just EOIs and returns. */
	if (storm_mode != M_GARBAGE)
		for (v = 0; v < 32; v++)
			set_gate(v, (void (*)(void))exc_stub_table[v]);
	set_gate(2, storm_nmi);
	idt_load();
}

static void ipi(uint32_t dest, uint32_t lo)
{
	wr(LAPIC + APIC_ICR_HI, dest << 24);
	wr(LAPIC + APIC_ICR_LO, lo);
}

static void storm_mmio(void)
{
	static const uint32_t unbacked[] = { 0xfec01000u, 0xfed00000u, 0xfed1f410u,
					     0xfef00000u, 0xffff0000u };
	uint32_t a = unbacked[rnd() % 5] + (rnd() & 0xffc);

	(void)rd(LAPIC + APIC_ID);
	wr(LAPIC + APIC_TPR, 0);
	(void)rd(LAPIC + APIC_TIMER_CCR);
	(void)rd(LAPIC + (rnd() & 0x3f0));
	(void)rd(a);
	wr(a, rnd());
	wr(IOAPIC, 1);
	(void)rd(IOAPIC + 0x10);
}

static void storm_ports(void)
{
	static const uint16_t rports[] = { 0x21, 0xa1, 0x40, 0x61, 0x71, 0x511, 0xe0,
					   0x1234, 0xcfc, 0x3fd, 0x64, 0xb008, 0x92 };
	uint16_t p = rports[rnd() % (sizeof(rports) / sizeof(rports[0]))];

	(void)inb(p);
	(void)inl(0xcfc);
	outb(0x80, (uint8_t)rnd());
	outb(0x70, 0x0c);
	(void)inb(0x71);
	outl(0xcf8, 0x80000000u | (rnd() & 0xfffffc));
	outw(0x510, 0x0000);
	outb(0xe0, (uint8_t)rnd());
	outb(0x43, 0x00);		/* latch channel 0 */
	(void)inb(0x40);
	outb(0x2345, (uint8_t)rnd());
	(void)inw(0x3456);
}

static void storm_ipi(bool bsp)
{
	static uint32_t n;
	uint32_t other = bsp ? 1 : 0;

	ipi(0, (1u << 18) | VEC_ANY);			/* self, fixed */
	ipi(0, (1u << 18) | (4u << 8));			/* self shorthand, NMI: illegal, ESR */
	ipi(bsp ? 0 : 1, (4u << 8));			/* NMI to itself by ID */
	ipi(other, VEC_ANY + 1);			/* fixed to the other vCPU */
	ipi(other, (4u << 8));				/* NMI to the other */
	ipi(0, (2u << 18) | (VEC_ANY + 2));		/* all including self */
	ipi(0, (3u << 18) | (VEC_ANY + 3));		/* all excluding self */
	ipi(0xff, VEC_ANY + 4);				/* physical broadcast */
	ipi(0, (3u << 18) | (4u << 8));			/* NMI to all others */
	__asm__ volatile("sti; nop; nop; cli" ::: "memory");
	if (++n % 4096 == 0) {
		if (bsp) {
			/* Restart the AP: it comes back through the trampoline. */
			ipi(1, 0xc500);
			ipi(1, 0x8500);
			ipi(1, 0x0600 | (TRAMP_PA >> 12));
		} else if (storm_mode == M_IPI) {
			ipi(1, 0x0500);			/* INIT to itself: waits for SIPI */
		}
	}
}

/* An RTE low word without INIT/ExtINT delivery (82093AA 3.2.4): as for
 * the LVTs, an INIT would park the vCPUs this mode wants storming. */
static uint32_t ioapic_no_init(uint32_t v)
{
	return ((v >> 8) & 7) >= 5 ? v & ~(7u << 8) : v;
}

static void storm_garbage(void)
{
	uint32_t off, v, sel;

	for (off = 0x20; off < 0x400; off += 0x10) {
		v = rnd();
		/* No INIT, SIPI or ExtINT from the ICR or an LVT (0x2f0,
		 * 0x320-0x370; SDM 11.5.1): an INIT stops the vCPU until a
		 * SIPI, which ends the storm this mode exists for. */
		if ((off == APIC_ICR_LO || off == 0x2f0 || (off >= 0x320 && off <= 0x370)) &&
		    ((v >> 8) & 7) >= 5)
			v &= ~(7u << 8);
		if (off == APIC_SVR)
			v |= 0x100;		/* mostly keep the APIC software-enabled */
		wr(LAPIC + off, v);
	}
	(void)rd(LAPIC + (rnd() & 0xffc));
	wr(LAPIC + (rnd() & 0xffc), rnd());
	/* IOAPIC: random selectors and data, then RTEs (0x10 + 2n) pointing
	 * at absurd vectors/destinations, level-triggered, unmasked. */
	sel = rnd();
	v = rnd();
	if ((sel & 0xff) >= 0x10 && (sel & 0xff) < 0x40 && !(sel & 1))
		v = ioapic_no_init(v);
	wr(IOAPIC, sel);
	wr(IOAPIC + 0x10, v);
	(void)rd(IOAPIC + 0x10);
	sel = 0x10 + 2 * (rnd() % 24);
	wr(IOAPIC, sel);
	wr(IOAPIC + 0x10, ioapic_no_init((rnd() & 0xff) | (1u << 15) | (rnd() & 0x700)));
	wr(IOAPIC, sel + 1);
	wr(IOAPIC + 0x10, rnd());
	wr(IOAPIC + (rnd() & 0xfc), rnd());
	__asm__ volatile("sti; nop; nop; nop; cli" ::: "memory");
}

static void pit_fast(void)
{
	outb(0x43, 0x34);		/* channel 0, lo/hi, mode 2 */
	outb(0x40, 2);
	outb(0x40, 0);
	outb(0x21, 0x00);		/* PIC: everything unmasked */
}

static void storm_loop(bool bsp, enum mode m)
{
	for (uint32_t i = 0;; i++) {
		switch (m) {
		case M_MMIO:
			storm_mmio();
			break;
		case M_PORTS:
			storm_ports();
			break;
		case M_IPI:
			storm_ipi(bsp);
			break;
		case M_GARBAGE:
			storm_garbage();
			break;
		case M_SPIN:
			for (int k = 0; k < 1000; k++)
				__asm__ volatile("pause");
			break;
		case M_TRIPLE:
			storm_mmio();
			storm_ports();
			storm_ipi(bsp);
			break;
		}
		if (bsp && i == 100)
			guest_printf("STORM running: %u iterations, %u irqs, %u nmis\n", i,
				     storm_irqs, storm_nmis);
	}
}

void storm_ap_main(void)
{
	idt_load();
	wr(LAPIC + APIC_SVR, 0x1ff);
	storm_loop(false, storm_mode);
}

static void start_ap(void)
{
	struct dtr g;

	__asm__ volatile("sgdt %0" : "=m"(g));
	memcpy((void *)TRAMP_PA, tramp_start, (size_t)(tramp_end - tramp_start));
	memcpy((void *)(TRAMP_PA + (uint32_t)(tramp_gdt - tramp_start)), &g, 6);
	ipi(1, 0xc500);
	ipi(1, 0x8500);
	ipi(1, 0x0600 | (TRAMP_PA >> 12));
	ipi(1, 0x0600 | (TRAMP_PA >> 12));
}

static void triple_fault(void)
{
	struct dtr d = { 0, 0 };

	guest_puts("STORM triple: the BSP triple-faults while the AP storms\n");
	for (volatile uint32_t i = 0; i < 2000000; i++)
		__asm__ volatile("pause");
	__asm__ volatile("lidt %0; int3" : : "m"(d) : "memory");
	guest_puts("STORM triple: survived\n");
	guest_exit(GUEST_EXIT_SURVIVED);
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	static const char *const names[] = { "mmio", "ports", "ipi", "garbage", "spin",
					     "triple" };
	const char *cl;
	int m;

	guest_init("storm", magic, info);
	cl = guest_cmdline(info);
	for (m = 0; m < 6; m++)
		if (guest_cmdline_has(cl, names[m]))
			break;
	if (m == 6) {
		guest_puts("STORM: no mode on the command line\n");
		guest_exit(GUEST_EXIT_FAIL);
	}
	storm_mode = (enum mode)m;
	seed ^= (uint32_t)guest_rdtsc();
	idt_setup();
	wr(LAPIC + APIC_SVR, 0x1ff);
	guest_printf("STORM mode %s%s\n", names[m],
		     guest_cmdline_has(cl, "smp") ? " on 2 vCPUs" : "");
	if (guest_cmdline_has(cl, "smp"))
		start_ap();
	if (storm_mode == M_GARBAGE)
		pit_fast();
	if (storm_mode == M_TRIPLE)
		triple_fault();
	storm_loop(true, storm_mode);
}
