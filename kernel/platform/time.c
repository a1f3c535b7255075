/*
 * Time: the TSC is the clock, calibrated at boot against a fixed-frequency
 * reference (HPET, else the ACPI PM timer, else PIT channel 2).  Each
 * calibration runs three 20 ms windows and keeps the median, so one SMI or
 * host-scheduling hiccup in an emulator does not skew the result.
 */
#include "kernel/platform/arch.h"
#include "kernel/kernel.h"
#include "kernel/lib/acpi_tables.h"

#define HPET_CAP		0x000
#define HPET_CONFIG		0x010
#define HPET_COUNTER		0x0f0
#define HPET_ENABLE		1ull
#define PM_TIMER_HZ		3579545ull
#define PIT_HZ			1193182ull
#define CAL_WINDOW_US		20000ull
#define CAL_RUNS		3

uint64_t boot_tsc_at_entry;
static uint64_t tsc_freq;
/* Fixed-point factors so conversions need no 128-bit division (libgcc is
 * not linked: its objects are built with a red zone). */
static uint64_t us_per_tsc_q32;		/* 2^32 * 1e6 / tsc_freq */
static uint64_t tsc_per_us_q32;		/* 2^32 * tsc_freq / 1e6 */
static const char *ref_name = "none";

struct refclock {
	uint64_t hz;
	uint64_t mask;		/* counter width */
	uint64_t (*read)(void);
};

static volatile uint64_t *hpet;

static uint64_t hpet_read(void)
{
	return hpet[HPET_COUNTER / 8];
}

static uint64_t pm_read(void)
{
	return acpi_pm_timer_read();
}

/* PIT channel 2 counts down from 0xffff, gated by port 0x61 bit 0. */
static uint64_t pit_read(void)
{
	uint8_t lo, hi;

	outb(0x43, 0x80);	/* latch channel 2 */
	lo = inb(0x42);
	hi = inb(0x42);
	return 0xffff - (((uint64_t)hi << 8) | lo);
}

static void pit_start(void)
{
	outb(0x61, (inb(0x61) & ~0x02) | 0x01);
	outb(0x43, 0xb4);	/* channel 2, lobyte/hibyte, mode 2 */
	outb(0x42, 0xff);
	outb(0x42, 0xff);
}

static bool pick_reference(struct refclock *r)
{
	const struct acpi_info *a = acpi_get();

	if (a && a->has_hpet && (hpet = mmio_map(a->hpet_phys, 1024))) {
		uint64_t period_fs = hpet[HPET_CAP / 8] >> 32;

		if (period_fs && period_fs <= 100000000ull) {
			hpet[HPET_CONFIG / 8] |= HPET_ENABLE;
			r->hz = 1000000000000000ull / period_fs;
			r->mask = ~0ull;
			r->read = hpet_read;
			ref_name = "HPET";
			return true;
		}
	}
	if (a && a->pm_tmr_port) {
		r->hz = PM_TIMER_HZ;
		r->mask = a->pm_tmr_32bit ? 0xffffffffull : 0xffffffull;
		r->read = pm_read;
		ref_name = "ACPI PM timer";
		return true;
	}
	pit_start();
	r->hz = PIT_HZ;
	r->mask = 0xffff;
	r->read = pit_read;
	ref_name = "PIT";
	return true;
}

/* The window is short enough that no counter wraps more than once. */
static uint64_t measure_once(const struct refclock *r)
{
	uint64_t want = r->hz * CAL_WINDOW_US / 1000000;
	uint64_t start = r->read(), t0 = rdtsc(), ticks = 0, prev = start, now;
	uint64_t reads = 0;

	while (ticks < want) {
		now = r->read();
		ticks += (now - prev) & r->mask;
		prev = now;
		if (++reads > 200000000ull)
			return 0;	/* the reference does not count */
	}
	return (rdtsc() - t0) * r->hz / ticks;
}

static uint64_t median3(uint64_t a, uint64_t b, uint64_t c)
{
	if ((a <= b && b <= c) || (c <= b && b <= a))
		return b;
	if ((b <= a && a <= c) || (c <= a && a <= b))
		return a;
	return c;
}

void time_init(void)
{
	struct refclock r;
	uint64_t m[CAL_RUNS];
	int i;

	pick_reference(&r);
	for (i = 0; i < CAL_RUNS; i++) {
		m[i] = measure_once(&r);
		if (!m[i] && r.read != pit_read) {
			pr_warn("time: %s does not count, falling back to the PIT", ref_name);
			pit_start();
			r = (struct refclock){ PIT_HZ, 0xffff, pit_read };
			ref_name = "PIT";
			i = -1;
		}
	}
	tsc_freq = median3(m[0], m[1], m[2]);
	us_per_tsc_q32 = (1000000ull << 32) / tsc_freq;
	tsc_per_us_q32 = ((tsc_freq / 1000000) << 32) +
			 ((tsc_freq % 1000000) << 32) / 1000000;
	pr_info("time: TSC %lu.%03lu MHz, calibrated against %s (runs %lu %lu %lu kHz)",
		tsc_freq / 1000000, (tsc_freq / 1000) % 1000, ref_name,
		m[0] / 1000, m[1] / 1000, m[2] / 1000);
}

uint64_t tsc_hz(void)
{
	return tsc_freq;
}

const char *time_source(void)
{
	return ref_name;
}

static uint64_t mul_q32(uint64_t a, uint64_t q32)
{
	return (uint64_t)(((unsigned __int128)a * q32) >> 32);
}

/* Nanoseconds since 1970-01-01 UTC: the firmware's clock at boot (the
 * loader's GetTime) plus the TSC since; 0 when the firmware gave none. */
uint64_t wall_clock_ns(void)
{
	const struct boot_info *bi = boot_info;

	if (!bi || !bi->wall_epoch_s || !tsc_freq)
		return 0;
	return bi->wall_epoch_s * 1000000000ull +
	       mul_q32(rdtsc() - bi->wall_tsc, us_per_tsc_q32) * 1000;
}

uint64_t time_us(void)
{
	if (!tsc_freq)
		return 0;
	return mul_q32(rdtsc() - boot_tsc_at_entry, us_per_tsc_q32);
}

/* Before calibration, assume a fast 4 GHz TSC: delays only get longer. */
void udelay(uint64_t us)
{
	uint64_t q = tsc_freq ? tsc_per_us_q32 : 4000ull << 32;
	uint64_t end = rdtsc() + mul_q32(us, q);

	while ((int64_t)(rdtsc() - end) < 0)
		cpu_relax();
}
