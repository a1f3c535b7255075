/*
 * Local APIC (xAPIC or x2APIC, whichever mode the firmware left) and
 * IOAPIC.  SDM Vol. 3A chapter 11; the IOAPIC follows the 82093AA sheet.
 */
#include <errno.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/lib/acpi_tables.h"

#define APIC_BASE_EXTD		(1ull << 10)	/* x2APIC mode */
#define APIC_BASE_EN		(1ull << 11)
#define LAPIC_ID		0x020
#define LAPIC_TPR		0x080
#define LAPIC_EOI		0x0b0
#define LAPIC_SVR		0x0f0
#define LAPIC_ESR		0x280
#define LAPIC_ICR_LO		0x300
#define LAPIC_ICR_HI		0x310
#define LAPIC_LVT_TIMER		0x320
#define LAPIC_LVT_LINT0		0x350
#define LAPIC_LVT_LINT1		0x360
#define LAPIC_LVT_ERROR		0x370
#define LAPIC_TIMER_INIT	0x380
#define LAPIC_TIMER_CUR		0x390
#define LAPIC_TIMER_DIV		0x3e0
#define LVT_MASKED		(1u << 16)
#define LVT_PERIODIC		(1u << 17)
#define LVT_NMI			(4u << 8)
#define ICR_PENDING		(1u << 12)
#define ICR_INIT		0x4500u		/* INIT, level assert */
#define ICR_SIPI		0x4600u
#define ICR_FIXED		0x4000u
#define ICR_NMI			0x4400u		/* NMI delivery, level assert */

#define IOAPIC_REGSEL		0x00
#define IOAPIC_WIN		0x10
#define IOAPIC_VER		0x01
#define IOAPIC_REDTBL(n)	(0x10 + 2 * (n))
#define IOREDTBL_MASKED		(1ull << 16)
#define IOREDTBL_LEVEL		(1ull << 15)
#define IOREDTBL_ACTIVE_LOW	(1ull << 13)

static volatile uint32_t *lapic_mmio;
static bool x2apic;
static uint32_t lapic_ticks_per_sec;

static uint32_t lapic_read(uint32_t reg)
{
	if (x2apic)
		return (uint32_t)rdmsr(0x800 + (reg >> 4));
	return lapic_mmio[reg / 4];
}

static void lapic_write(uint32_t reg, uint32_t v)
{
	if (x2apic)
		wrmsr(0x800 + (reg >> 4), v);
	else
		lapic_mmio[reg / 4] = v;
}

uint32_t lapic_id(void)
{
	uint32_t id = lapic_read(LAPIC_ID);

	return x2apic ? id : id >> 24;
}

void lapic_eoi(void)
{
	lapic_write(LAPIC_EOI, 0);
}

static void lapic_map(void)
{
	uint64_t base = rdmsr(MSR_APIC_BASE);

	x2apic = base & APIC_BASE_EXTD;
	if (!x2apic && !lapic_mmio)
		lapic_mmio = mmio_map(base & 0xffffff000ull, PAGE_SIZE);
}

void lapic_init_cpu(void)
{
	uint64_t base = rdmsr(MSR_APIC_BASE);

	if (!(base & APIC_BASE_EN))
		wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN);
	lapic_map();
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
	/* LINT1 carries NMI on PC platforms (MP spec), boot CPU only. */
	lapic_write(LAPIC_LVT_LINT1, this_cpu()->id == 0 ? LVT_NMI : LVT_MASKED);
	lapic_write(LAPIC_LVT_ERROR, VEC_APIC_ERROR);
	lapic_write(LAPIC_ESR, 0);
	lapic_write(LAPIC_ESR, 0);
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
	lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
	lapic_eoi();
}

static void icr_send(uint32_t apic_id, uint32_t lo)
{
	unsigned spins = 0;

	if (x2apic) {
		wrmsr(0x830, ((uint64_t)apic_id << 32) | lo);
		return;
	}
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, lo);
	while ((lapic_read(LAPIC_ICR_LO) & ICR_PENDING) && ++spins < 1000000)
		cpu_relax();
}

void lapic_send_ipi(uint32_t apic_id, uint8_t vector)
{
	icr_send(apic_id, ICR_FIXED | vector);
}

/*
 * A fixed interrupt to this CPU, without waiting (SDM Vol. 3A 11.6.1,
 * shorthand "self"; x2APIC: the SELF IPI register, 11.12.11).  Only for
 * the NMI handler, at a point where no icr_send can be in progress.
 */
void lapic_self_ipi(uint8_t vector)
{
	if (x2apic) {
		wrmsr(0x83f, vector);
		return;
	}
	lapic_write(LAPIC_ICR_LO, (1u << 18) | ICR_FIXED | vector);
}

void lapic_send_nmi(uint32_t apic_id)
{
	icr_send(apic_id, ICR_NMI);
}

void lapic_send_init(uint32_t apic_id)
{
	icr_send(apic_id, ICR_INIT);
}

void lapic_send_sipi(uint32_t apic_id, uint8_t page)
{
	icr_send(apic_id, ICR_SIPI | page);
}

/* Count LAPIC timer ticks (divide by 16) across 10 ms of calibrated TSC. */
uint32_t lapic_timer_calibrate(void)
{
	uint32_t start = 0xffffffffu, left;

	lapic_write(LAPIC_TIMER_DIV, 0x3);
	lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
	lapic_write(LAPIC_TIMER_INIT, start);
	udelay(10000);
	left = lapic_read(LAPIC_TIMER_CUR);
	lapic_write(LAPIC_TIMER_INIT, 0);
	lapic_ticks_per_sec = (start - left) * 100u;
	return lapic_ticks_per_sec;
}

void lapic_timer_periodic(uint8_t vector, uint32_t hz)
{
	if (!lapic_ticks_per_sec || !hz)
		return;
	lapic_write(LAPIC_TIMER_DIV, 0x3);
	lapic_write(LAPIC_LVT_TIMER, vector | LVT_PERIODIC);
	lapic_write(LAPIC_TIMER_INIT, lapic_ticks_per_sec / hz);
}

/* One interrupt after us microseconds (at most the counter's range: the
 * caller re-arms when it wakes early). */
void lapic_timer_oneshot(uint8_t vector, uint64_t us)
{
	uint64_t ticks;

	if (!lapic_ticks_per_sec)
		return;
	ticks = (us < 1000000000u ? us : 1000000000u) * lapic_ticks_per_sec / 1000000u + 1;
	lapic_write(LAPIC_TIMER_DIV, 0x3);
	lapic_write(LAPIC_LVT_TIMER, vector);
	lapic_write(LAPIC_TIMER_INIT, ticks > 0xffffffffu ? 0xffffffffu : (uint32_t)ticks);
}

void lapic_timer_stop(void)
{
	lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
	lapic_write(LAPIC_TIMER_INIT, 0);
}

/* ---- IOAPIC ---- */

struct ioapic {
	volatile uint32_t *mmio;
	uint32_t gsi_base;
	uint32_t pins;
};

static struct ioapic ioapics[ACPI_MAX_IOAPICS];
static int nioapics;

static uint32_t ioapic_read(struct ioapic *io, uint32_t reg)
{
	io->mmio[IOAPIC_REGSEL / 4] = reg;
	return io->mmio[IOAPIC_WIN / 4];
}

static void ioapic_write(struct ioapic *io, uint32_t reg, uint32_t v)
{
	io->mmio[IOAPIC_REGSEL / 4] = reg;
	io->mmio[IOAPIC_WIN / 4] = v;
}

static void ioapic_set_entry(struct ioapic *io, uint32_t pin, uint64_t e)
{
	/* Mask first so a half-written entry never fires. */
	ioapic_write(io, IOAPIC_REDTBL(pin), (uint32_t)IOREDTBL_MASKED);
	ioapic_write(io, IOAPIC_REDTBL(pin) + 1, (uint32_t)(e >> 32));
	ioapic_write(io, IOAPIC_REDTBL(pin), (uint32_t)e);
}

static void pic_mask_all(void)
{
	/* The 8259s stay wired on PC-AT compatible systems: mask both. */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}

void ioapic_init(void)
{
	const struct acpi_info *a = acpi_get();
	int i;
	uint32_t pin;

	if (!a)
		return;
	if (a->pcat_compat)
		pic_mask_all();
	for (i = 0; i < a->nioapic && nioapics < ACPI_MAX_IOAPICS; i++) {
		struct ioapic *io = &ioapics[nioapics];

		io->mmio = mmio_map(a->ioapic[i].phys, PAGE_SIZE);
		if (!io->mmio)
			continue;
		io->gsi_base = a->ioapic[i].gsi_base;
		io->pins = ((ioapic_read(io, IOAPIC_VER) >> 16) & 0xff) + 1;
		for (pin = 0; pin < io->pins; pin++)
			ioapic_set_entry(io, pin, IOREDTBL_MASKED);
		nioapics++;
	}
}

/* ISA IRQs are edge/active-high unless the MADT overrides them. */
int ioapic_route_isa(uint8_t irq, uint8_t vector, uint32_t dest_apic)
{
	const struct acpi_info *a = acpi_get();
	uint32_t gsi = irq;
	uint64_t e = vector;
	int i;

	if (!a)
		return -ENODEV;
	for (i = 0; i < a->niso; i++) {
		if (a->iso[i].bus != 0 || a->iso[i].source != irq)
			continue;
		gsi = a->iso[i].gsi;
		if ((a->iso[i].flags & 3) == 3)
			e |= IOREDTBL_ACTIVE_LOW;
		if (((a->iso[i].flags >> 2) & 3) == 3)
			e |= IOREDTBL_LEVEL;
	}
	e |= (uint64_t)dest_apic << 56;
	for (i = 0; i < nioapics; i++) {
		struct ioapic *io = &ioapics[i];

		if (gsi >= io->gsi_base && gsi < io->gsi_base + io->pins) {
			ioapic_set_entry(io, gsi - io->gsi_base, e);
			return 0;
		}
	}
	return -ENODEV;
}
