/*
 * Unit tests for kernel/devices/model/vrtc.c: the calendar (leap years,
 * centuries), BCD/binary and 12/24 h formats, SET, register C clearing,
 * periodic rates, the update-ended interrupt, alarms with don't-care
 * bytes, UIP, CMOS RAM, save/load.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "kernel/devices/model/vrtc.h"

#define NS	1000000000ull
#define T0	5000000000ull		/* the guest time base at creation */
/* 2024-02-29 23:59:58 UTC (a leap day, a Thursday). */
#define WALL	(1709251198ull * NS)

static struct vrtc r;

static uint8_t rd(unsigned i, uint64_t now)
{
	vrtc_write(&r, 0, (uint8_t)i, now);
	return vrtc_read(&r, 1, now);
}

static void wr(unsigned i, uint8_t v, uint64_t now)
{
	vrtc_write(&r, 0, (uint8_t)i, now);
	vrtc_write(&r, 1, v, now);
}

static void setup(void)
{
	vrtc_reset(&r, WALL, T0);
}

TestSuite(vrtc, .init = setup);

Test(vrtc, calendar_conversions)
{
	int64_t y;
	unsigned m, d;

	cr_assert_eq(vrtc_days_from_civil(1970, 1, 1), 0);
	cr_assert_eq(vrtc_days_from_civil(2000, 3, 1), 11017);
	cr_assert_eq(vrtc_days_from_civil(2024, 2, 29) + 1, vrtc_days_from_civil(2024, 3, 1));
	cr_assert_eq(vrtc_days_from_civil(2100, 2, 28) + 1, vrtc_days_from_civil(2100, 3, 1));
	cr_assert_eq(vrtc_days_from_civil(2000, 2, 28) + 2, vrtc_days_from_civil(2000, 3, 1));
	cr_assert_eq(vrtc_days_from_civil(1969, 12, 31), -1);
	for (int64_t z = -800000; z < 800000; z += 997) {
		vrtc_civil_from_days(z, &y, &m, &d);
		cr_assert_eq(vrtc_days_from_civil(y, m, d), z, "day %lld", (long long)z);
	}
	vrtc_civil_from_days(19782, &y, &m, &d);		/* 2024-02-29 */
	cr_assert(y == 2024 && m == 2 && d == 29);
}

Test(vrtc, reads_bcd_24h)
{
	cr_assert_eq(rd(VRTC_SEC, T0), 0x58);
	cr_assert_eq(rd(VRTC_MIN, T0), 0x59);
	cr_assert_eq(rd(VRTC_HOUR, T0), 0x23);
	cr_assert_eq(rd(VRTC_DOW, T0), 5);			/* Thursday */
	cr_assert_eq(rd(VRTC_DAY, T0), 0x29);
	cr_assert_eq(rd(VRTC_MONTH, T0), 0x02);
	cr_assert_eq(rd(VRTC_YEAR, T0), 0x24);
	cr_assert_eq(rd(VRTC_CENTURY, T0), 0x20);
	/* Two seconds later: March 1st, the leap day done. */
	cr_assert_eq(rd(VRTC_DAY, T0 + 2 * NS), 0x01);
	cr_assert_eq(rd(VRTC_MONTH, T0 + 2 * NS), 0x03);
	cr_assert_eq(rd(VRTC_HOUR, T0 + 2 * NS), 0x00);
	cr_assert_eq(rd(VRTC_DOW, T0 + 2 * NS), 6);
}

Test(vrtc, binary_and_12h)
{
	wr(VRTC_B, VRTC_B_DM, T0);				/* binary, 12 h */
	cr_assert_eq(rd(VRTC_SEC, T0), 58);
	cr_assert_eq(rd(VRTC_HOUR, T0), 0x80 | 11);		/* 11 PM */
	cr_assert_eq(rd(VRTC_YEAR, T0), 24);
	cr_assert_eq(rd(VRTC_HOUR, T0 + 2 * NS), 12);		/* 12 AM */
	cr_assert_eq(rd(VRTC_HOUR, T0 + 2 * NS + 12 * 3600 * NS), 0x80 | 12);	/* noon */
	wr(VRTC_B, 0, T0);					/* BCD, 12 h */
	cr_assert_eq(rd(VRTC_HOUR, T0), 0x91);
}

Test(vrtc, set_freezes_and_sets_time)
{
	/* Linux's mc146818_set_time: SET, write, release. */
	wr(VRTC_B, VRTC_B_SET | VRTC_B_24H, T0);
	cr_assert_eq(rd(VRTC_SEC, T0 + 5 * NS), 0x58);	/* frozen */
	wr(VRTC_SEC, 0x30, T0 + 5 * NS);
	wr(VRTC_MIN, 0x15, T0 + 5 * NS);
	wr(VRTC_HOUR, 0x10, T0 + 5 * NS);
	wr(VRTC_DAY, 0x31, T0 + 5 * NS);
	wr(VRTC_MONTH, 0x12, T0 + 5 * NS);
	wr(VRTC_YEAR, 0x99, T0 + 5 * NS);
	wr(VRTC_CENTURY, 0x20, T0 + 5 * NS);
	cr_assert_eq(rd(VRTC_MIN, T0 + 6 * NS), 0x15);
	wr(VRTC_B, VRTC_B_24H, T0 + 10 * NS);
	cr_assert_eq(rd(VRTC_SEC, T0 + 10 * NS), 0x30);
	cr_assert_eq(rd(VRTC_SEC, T0 + 41 * NS), 0x01);
	cr_assert_eq(rd(VRTC_MIN, T0 + 41 * NS), 0x16);
	cr_assert_eq(rd(VRTC_YEAR, T0 + 10 * NS), 0x99);
	/* The guest's offset persists: a day later it is 2100-01-01. */
	cr_assert_eq(rd(VRTC_YEAR, T0 + 10 * NS + 86400 * NS), 0x00);
	cr_assert_eq(rd(VRTC_CENTURY, T0 + 10 * NS + 86400 * NS), 0x21);
	/* SET cleared UIE. */
	wr(VRTC_B, VRTC_B_UIE | VRTC_B_24H, T0);
	wr(VRTC_B, VRTC_B_SET | VRTC_B_UIE | VRTC_B_24H, T0);
	cr_assert_eq(rd(VRTC_B, T0) & VRTC_B_UIE, 0);
}

Test(vrtc, write_time_register_while_running)
{
	wr(VRTC_MIN, 0x05, T0 + NS / 2);
	cr_assert_eq(rd(VRTC_MIN, T0 + NS / 2), 0x05);
	cr_assert_eq(rd(VRTC_SEC, T0 + NS / 2), 0x58);
	/* The sub-second phase stayed: the next second comes at T0 + 1 s. */
	cr_assert_eq(rd(VRTC_SEC, T0 + NS - 1), 0x58);
	cr_assert_eq(rd(VRTC_SEC, T0 + NS), 0x59);
}

Test(vrtc, register_c_read_clears_and_irq)
{
	wr(VRTC_B, VRTC_B_UIE | VRTC_B_24H, T0);
	cr_assert_not(vrtc_irq(&r));
	cr_assert_eq(vrtc_deadline(&r, T0), T0 + NS);
	vrtc_run(&r, T0 + NS);
	cr_assert(vrtc_irq(&r));
	cr_assert_eq(vrtc_deadline(&r, T0 + NS), 0);		/* already raised */
	/* PF is set too (rate 6 runs with PIE off) but raises nothing. */
	cr_assert_eq(rd(VRTC_C, T0 + NS), VRTC_C_IRQF | VRTC_C_UF | VRTC_C_PF);
	cr_assert_not(vrtc_irq(&r));
	cr_assert_eq(rd(VRTC_C, T0 + NS), 0);
	cr_assert_eq(vrtc_deadline(&r, T0 + NS), T0 + 2 * NS);
}

Test(vrtc, flags_without_enables_no_irq)
{
	vrtc_run(&r, T0 + 3 * NS);
	cr_assert_not(vrtc_irq(&r));
	/* Rate 6 runs, the second rolled, and midnight matched the zeroed
	 * alarm bytes. */
	cr_assert_eq(rd(VRTC_C, T0 + 3 * NS), VRTC_C_UF | VRTC_C_PF | VRTC_C_AF);
}

Test(vrtc, periodic_rates)
{
	uint64_t d;

	wr(VRTC_B, VRTC_B_PIE | VRTC_B_24H, T0);
	/* Rate 6 = 1024 Hz: 32 clocks of 32.768 kHz. */
	d = vrtc_deadline(&r, T0);
	cr_assert(d > T0 && d <= T0 + 976563, "deadline %llu", (unsigned long long)(d - T0));
	vrtc_run(&r, d - 1);
	cr_assert_not(vrtc_irq(&r));
	vrtc_run(&r, d);
	cr_assert(vrtc_irq(&r));
	rd(VRTC_C, d);
	/* Period of the next one is 1/1024 s within a ns. */
	cr_assert(vrtc_deadline(&r, d) - d >= 976562 && vrtc_deadline(&r, d) - d <= 976563);
	/* Rate 15 = 2 Hz; rate 3 = 8192 Hz; rate 1 = 256 Hz; rate 0 off. */
	wr(VRTC_A, 0x2f, d);
	cr_assert(vrtc_deadline(&r, d) - d <= 500000000ull);
	wr(VRTC_A, 0x23, d);
	cr_assert(vrtc_deadline(&r, d) - d <= 122071);
	wr(VRTC_A, 0x21, d);
	cr_assert(vrtc_deadline(&r, d) - d <= 3906250);
	cr_assert(vrtc_deadline(&r, d) - d > 122071);
	wr(VRTC_A, 0x20, d);
	cr_assert_eq(vrtc_deadline(&r, d), 0);
}

Test(vrtc, periodic_coalesces)
{
	wr(VRTC_B, VRTC_B_PIE | VRTC_B_24H, T0);
	vrtc_run(&r, T0 + 10 * NS);				/* 10240 periods */
	cr_assert_eq(rd(VRTC_C, T0 + 10 * NS) & VRTC_C_PF, VRTC_C_PF);
	cr_assert_eq(rd(VRTC_C, T0 + 10 * NS), 0);
}

Test(vrtc, alarm_exact_and_dont_care)
{
	/* 00:00:05 on March 1st. */
	wr(VRTC_SEC_ALARM, 0x05, T0);
	wr(VRTC_MIN_ALARM, 0x00, T0);
	wr(VRTC_HOUR_ALARM, 0x00, T0);
	wr(VRTC_B, VRTC_B_AIE | VRTC_B_24H, T0);
	cr_assert_eq(vrtc_deadline(&r, T0), T0 + 7 * NS);
	vrtc_run(&r, T0 + 7 * NS - 1);
	cr_assert_not(vrtc_irq(&r));
	vrtc_run(&r, T0 + 7 * NS);
	cr_assert(vrtc_irq(&r));
	cr_assert_eq(rd(VRTC_C, T0 + 7 * NS) & VRTC_C_AF, VRTC_C_AF);
	/* Next match a day later. */
	cr_assert_eq(vrtc_deadline(&r, T0 + 7 * NS), T0 + 7 * NS + 86400 * NS);
	/* Hour and minute don't care: every minute at :05. */
	wr(VRTC_HOUR_ALARM, 0xc0, T0 + 7 * NS);
	wr(VRTC_MIN_ALARM, 0xff, T0 + 7 * NS);
	cr_assert_eq(vrtc_deadline(&r, T0 + 7 * NS), T0 + 67 * NS);
	/* All don't care: once a second. */
	wr(VRTC_SEC_ALARM, 0xc0, T0 + 7 * NS);
	cr_assert_eq(vrtc_deadline(&r, T0 + 7 * NS), T0 + 8 * NS);
	/* Malformed alarm: never. */
	wr(VRTC_SEC_ALARM, 0x61, T0 + 7 * NS);
	cr_assert_eq(vrtc_deadline(&r, T0 + 7 * NS), 0);
	/* Missed alarms while not looking: AF on the next run. */
	wr(VRTC_SEC_ALARM, 0x30, T0 + 7 * NS);
	wr(VRTC_B, VRTC_B_24H, T0 + 7 * NS);
	vrtc_run(&r, T0 + 7 * NS + 3600 * NS);
	cr_assert_eq(rd(VRTC_C, T0 + 7 * NS + 3600 * NS) & VRTC_C_AF, VRTC_C_AF);
}

Test(vrtc, uip_and_reg_d)
{
	cr_assert_eq(rd(VRTC_A, T0) & VRTC_A_UIP, 0);
	cr_assert_eq(rd(VRTC_A, T0 + NS - 100000) & VRTC_A_UIP, VRTC_A_UIP);
	cr_assert_eq(rd(VRTC_A, T0 + NS) & VRTC_A_UIP, 0);
	cr_assert_eq(rd(VRTC_A, T0), 0x26);
	cr_assert_eq(rd(VRTC_D, T0), VRTC_D_VRT);
	rd(VRTC_C, T0 + NS);				/* clear the flags */
	wr(VRTC_D, 0, T0 + NS);
	wr(VRTC_C, 0xff, T0 + NS);
	cr_assert_eq(rd(VRTC_D, T0 + NS), VRTC_D_VRT);
	cr_assert_eq(rd(VRTC_C, T0 + NS), 0);
}

Test(vrtc, cmos_ram_and_nmi_bit)
{
	wr(0x0f, 0x0a, T0);				/* warm-reset code */
	cr_assert_eq(rd(0x0f, T0), 0x0a);
	vrtc_write(&r, 0, 0x80 | 0x40, T0);		/* NMI mask bit ignored */
	vrtc_write(&r, 1, 0x77, T0);
	cr_assert_eq(rd(0x40, T0), 0x77);
	for (unsigned i = 0x0e; i < 0x80; i++)
		if (i != VRTC_CENTURY)
			wr(i, (uint8_t)i, T0);
	for (unsigned i = 0x0e; i < 0x80; i++)
		if (i != VRTC_CENTURY)
			cr_assert_eq(rd(i, T0), i);
}

Test(vrtc, save_load)
{
	struct vrtc q, before;
	uint8_t b[VRTC_STATE_LEN], c[VRTC_STATE_LEN];
	uint64_t dst = 999 * NS;			/* another host's time base */

	wr(VRTC_B, VRTC_B_UIE | VRTC_B_24H, T0);
	wr(0x20, 0x42, T0);
	vrtc_run(&r, T0 + NS);
	vrtc_save(&r, T0 + NS + 5, b);
	vrtc_reset(&q, 0, 0);
	cr_assert_eq(vrtc_load(&q, dst, b, sizeof(b)), 0);
	vrtc_save(&q, dst, c);
	cr_assert_arr_eq(b, c, sizeof(b));
	cr_assert(vrtc_irq(&q));
	r = q;
	cr_assert_eq(rd(0x20, dst), 0x42);
	cr_assert_eq(rd(VRTC_SEC, dst), 0x59);
	cr_assert_eq(rd(VRTC_MIN, dst + NS), 0x00);

	memcpy(&before, &q, sizeof(q));
	cr_assert_eq(vrtc_load(&q, 0, b, sizeof(b) - 1), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[1] = 0x80;
	cr_assert_eq(vrtc_load(&q, 0, c, sizeof(c)), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[2 + VRTC_D] = 0;
	cr_assert_eq(vrtc_load(&q, 0, c, sizeof(c)), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[2 + VRTC_C] = 0x01;
	cr_assert_eq(vrtc_load(&q, 0, c, sizeof(c)), -EINVAL);
	cr_assert_eq(memcmp(&before, &q, sizeof(q)), 0);
}

Test(vrtc, deadline_counts_from_last_run)
{
	wr(VRTC_B, VRTC_B_UIE | VRTC_B_24H, T0);
	/* Nobody ran the clock for 5 s: the due update is in the past. */
	cr_assert_eq(vrtc_deadline(&r, T0 + 5 * NS), T0 + NS);
	vrtc_run(&r, T0 + 5 * NS);
	cr_assert(vrtc_irq(&r));
}
