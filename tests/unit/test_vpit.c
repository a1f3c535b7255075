/*
 * Unit tests for kernel/devices/model/vpit.c: counts at exact times, the
 * outputs of modes 0, 2, 3 and 4, latch and read-back, the gate through
 * port 0x61, channel 0's interrupt deadline and coalescing, save/load.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "kernel/devices/model/vpit.h"

#define T0	1000000000ull		/* an arbitrary start time */

static struct vpit p;

/* The ns at which `ticks` clocks have passed since T0. */
static uint64_t at(uint64_t ticks)
{
	return T0 + vpit_ticks_to_ns(ticks);
}

static void program(unsigned ch, uint8_t mode, uint16_t count, uint64_t now)
{
	vpit_write(&p, 3, (uint8_t)(ch << 6 | 0x30 | mode << 1), now);
	vpit_write(&p, ch, (uint8_t)count, now);
	vpit_write(&p, ch, (uint8_t)(count >> 8), now);
}

static uint16_t read16(unsigned ch, uint64_t now)
{
	uint16_t lo = vpit_read(&p, ch, now);

	return (uint16_t)(lo | vpit_read(&p, ch, now) << 8);
}

static void setup(void)
{
	vpit_reset(&p);
}

TestSuite(vpit, .init = setup);

Test(vpit, tick_conversions_exact)
{
	cr_assert_eq(vpit_ns_to_ticks(1000000000ull), VPIT_HZ);
	cr_assert_eq(vpit_ns_to_ticks(838), 0);		/* one tick = 838.09 ns */
	cr_assert_eq(vpit_ns_to_ticks(839), 1);
	cr_assert_eq(vpit_ticks_to_ns(1), 839);
	for (uint64_t t = 0; t < 5000000; t += 9973) {
		uint64_t ns = vpit_ticks_to_ns(t);

		cr_assert_eq(vpit_ns_to_ticks(ns), t);
		if (ns)
			cr_assert_eq(vpit_ns_to_ticks(ns - 1), t - 1);
	}
	/* Large times: a year of ns stays exact, no overflow. */
	cr_assert_eq(vpit_ns_to_ticks(vpit_ticks_to_ns(37654321987654ull)),
		     37654321987654ull);
}

Test(vpit, mode0_count_and_out)
{
	program(0, 0, 1000, T0);
	cr_assert_eq(vpit_count(&p, 0, T0), 1000);
	cr_assert_eq(read16(0, at(1)), 999);
	cr_assert_eq(read16(0, at(250)), 750);
	cr_assert_not(vpit_out(&p, 0, at(999)));
	cr_assert(vpit_out(&p, 0, at(1000)));
	cr_assert_eq(vpit_count(&p, 0, at(1001)), 0xffff);	/* wraps on */
	cr_assert(vpit_out(&p, 0, at(5000)));			/* stays high */
}

Test(vpit, mode0_out_low_after_control_word)
{
	vpit_write(&p, 3, 0x30, T0);
	cr_assert_not(vpit_out(&p, 0, T0));
	vpit_write(&p, 3, 0x34, T0);		/* mode 2: high */
	cr_assert(vpit_out(&p, 0, T0));
}

Test(vpit, mode2_rate_generator)
{
	program(0, 2, 100, T0);
	cr_assert_eq(vpit_count(&p, 0, at(0)), 100);
	cr_assert_eq(vpit_count(&p, 0, at(99)), 1);
	cr_assert_eq(vpit_count(&p, 0, at(100)), 100);	/* reloaded */
	cr_assert_eq(vpit_count(&p, 0, at(342)), 58);
	cr_assert(vpit_out(&p, 0, at(98)));
	cr_assert_not(vpit_out(&p, 0, at(99)));		/* low one clock */
	cr_assert(vpit_out(&p, 0, at(100)));
	cr_assert_not(vpit_out(&p, 0, at(199)));
}

Test(vpit, mode3_square_wave)
{
	program(0, 3, 100, T0);
	cr_assert(vpit_out(&p, 0, at(0)));
	cr_assert(vpit_out(&p, 0, at(49)));
	cr_assert_not(vpit_out(&p, 0, at(50)));
	cr_assert_not(vpit_out(&p, 0, at(99)));
	cr_assert(vpit_out(&p, 0, at(100)));
	cr_assert_eq(vpit_count(&p, 0, at(10)), 80);		/* counts by 2 */
	/* Odd count: high one clock longer. */
	program(0, 3, 5, T0);
	cr_assert(vpit_out(&p, 0, at(2)));
	cr_assert_not(vpit_out(&p, 0, at(3)));
}

Test(vpit, mode4_strobe)
{
	program(0, 4, 10, T0);
	cr_assert(vpit_out(&p, 0, at(9)));
	cr_assert_not(vpit_out(&p, 0, at(10)));
	cr_assert(vpit_out(&p, 0, at(11)));
	cr_assert_eq(vpit_irq_deadline(&p), at(11));
}

Test(vpit, count_zero_is_65536)
{
	program(0, 2, 0, T0);
	cr_assert_eq(vpit_count(&p, 0, at(1)), 65535);
	cr_assert_eq(vpit_irq_deadline(&p), at(65536));
}

Test(vpit, access_modes_lsb_msb)
{
	vpit_write(&p, 3, 0x10, T0);			/* ch0 LSB only, mode 0 */
	vpit_write(&p, 0, 0x80, T0);
	cr_assert_eq(vpit_read(&p, 0, at(0x10)), 0x70);
	cr_assert_eq(vpit_read(&p, 0, at(0x10)), 0x70);	/* no toggling */
	vpit_write(&p, 3, 0x20, T0);			/* MSB only */
	vpit_write(&p, 0, 0x02, T0);
	cr_assert_eq(vpit_count(&p, 0, T0), 0x200);
	cr_assert_eq(vpit_read(&p, 0, at(0x101)), 0x00);	/* 0x00ff */
}

Test(vpit, counter_latch_holds_value)
{
	vpit_port61_write(&p, 0x01, T0);		/* gate 2 high */
	program(2, 0, 0x1234, T0);
	vpit_write(&p, 3, 0x80, at(0x34));		/* latch ch2 */
	vpit_write(&p, 3, 0x80, at(0x100));		/* ignored: still latched */
	cr_assert_eq(vpit_read(&p, 2, at(0x200)), 0x00);
	cr_assert_eq(vpit_read(&p, 2, at(0x300)), 0x12);
	/* Latch consumed: live again. */
	cr_assert_eq(read16(2, at(0x234)), 0x1000);
}

Test(vpit, readback_status_and_count)
{
	program(1, 2, 500, T0);
	vpit_write(&p, 3, 0xc4, at(100));		/* count + status of ch1 */
	cr_assert_eq(vpit_read(&p, 1, at(200)), 0x80 | 0x30 | 2 << 1);
	cr_assert_eq(read16(1, at(300)), 400);
	/* Status only; null count after a new control word. */
	vpit_write(&p, 3, 0x70, at(300));
	vpit_write(&p, 3, 0xe4, at(300));
	cr_assert_eq(vpit_read(&p, 1, at(300)), 0x40 | 0x30);
	/* Read-back of several channels at once. */
	program(0, 3, 8, T0);
	vpit_write(&p, 3, 0xda, at(0));		/* count only, ch0 and ch2 */
	cr_assert_eq(read16(0, at(3)), 8);
}

Test(vpit, port61_gate_and_out2)
{
	/* Linux's PIT calibration: gate high, speaker off, mode 0 on ch2. */
	vpit_port61_write(&p, 0x01, T0);
	program(2, 0, 0xffff, T0);
	cr_assert_eq(vpit_port61_read(&p, at(0)) & 0x2f, 0x01);
	cr_assert_eq(vpit_port61_read(&p, at(0xffff)) & 0x20, 0x20);
	/* Gate low stops mode 0; high resumes. */
	program(2, 0, 100, T0);
	vpit_port61_write(&p, 0x00, at(30));
	cr_assert_eq(vpit_count(&p, 2, at(80)), 70);
	vpit_port61_write(&p, 0x01, at(1000));
	cr_assert_eq(vpit_count(&p, 2, at(1010)), 60);
	/* (at() rounds each time up to a whole ns: allow one clock.) */
	cr_assert_not(vpit_out(&p, 2, at(1068)));
	cr_assert(vpit_out(&p, 2, at(1071)));
	/* Writable bits 3:0 read back. */
	vpit_port61_write(&p, 0xfe, T0);
	cr_assert_eq(vpit_port61_read(&p, T0) & 0x0f, 0x0e);
}

Test(vpit, port61_refresh_toggles)
{
	uint8_t a = vpit_port61_read(&p, 0) & 0x10;
	uint8_t b = vpit_port61_read(&p, 15085) & 0x10;

	cr_assert_neq(a, b);
}

Test(vpit, gate_mode2_restarts_mode1_triggers)
{
	program(2, 2, 50, T0);			/* gate low: not counting */
	cr_assert_eq(vpit_count(&p, 2, at(20)), 50);
	cr_assert(vpit_out(&p, 2, at(20)));
	vpit_port61_write(&p, 0x01, at(20));
	cr_assert_eq(vpit_count(&p, 2, at(30)), 40);
	program(2, 1, 10, at(100));		/* mode 1 waits for an edge */
	cr_assert(vpit_out(&p, 2, at(200)));
	vpit_port61_write(&p, 0x00, at(200));
	vpit_port61_write(&p, 0x01, at(300));
	cr_assert_not(vpit_out(&p, 2, at(305)));
	cr_assert(vpit_out(&p, 2, at(310)));
}

Test(vpit, irq_periodic_coalesces)
{
	cr_assert_eq(vpit_irq_deadline(&p), 0);
	program(0, 2, 1193, T0);		/* ~1 kHz */
	cr_assert_eq(vpit_irq_deadline(&p), at(1193));
	cr_assert_not(vpit_irq_run(&p, at(1192)));
	cr_assert(vpit_irq_run(&p, at(1193)));
	cr_assert_not(vpit_irq_run(&p, at(1193)));
	cr_assert_eq(vpit_irq_deadline(&p), at(2 * 1193));
	/* A long stall: one interrupt, next deadline after now. */
	cr_assert(vpit_irq_run(&p, at(1193 * 1000 + 5)));
	cr_assert_not(vpit_irq_run(&p, at(1193 * 1000 + 6)));
	cr_assert_eq(vpit_irq_deadline(&p), at(1193 * 1001));
}

Test(vpit, irq_mode0_one_shot)
{
	program(0, 0, 500, T0);
	cr_assert_eq(vpit_irq_deadline(&p), at(500));
	cr_assert(vpit_irq_run(&p, at(600)));
	cr_assert_eq(vpit_irq_deadline(&p), 0);
	cr_assert_not(vpit_irq_run(&p, at(100000)));
	/* Re-arming with a new count. */
	vpit_write(&p, 0, 0x10, at(700));
	vpit_write(&p, 0, 0x00, at(700));
	cr_assert_eq(vpit_irq_deadline(&p), at(700) + vpit_ticks_to_ns(16));
}

Test(vpit, bcd_counting)
{
	vpit_write(&p, 3, 0x31, T0);		/* ch0 mode 0 BCD */
	vpit_write(&p, 0, 0x00, T0);
	vpit_write(&p, 0, 0x10, T0);		/* 1000 decimal */
	cr_assert_eq(vpit_count(&p, 0, at(1)), 0x0999);
	cr_assert_eq(vpit_irq_deadline(&p), at(1000));
}

Test(vpit, save_load)
{
	struct vpit q, before;
	uint8_t b[VPIT_STATE_LEN], c[VPIT_STATE_LEN];
	uint64_t shift = 77777777777ull;	/* the destination's clock */

	program(0, 2, 1193, T0);
	vpit_irq_run(&p, at(5000));
	vpit_port61_write(&p, 0x03, T0);
	program(2, 0, 3000, T0);
	vpit_write(&p, 3, 0x80, at(10));	/* a pending latch */
	vpit_save(&p, at(2000), b);
	vpit_reset(&q);
	cr_assert_eq(vpit_load(&q, at(2000) + shift, b, sizeof(b)), 0);
	vpit_save(&q, at(2000) + shift, c);
	cr_assert_arr_eq(b, c, sizeof(b));
	cr_assert_eq(vpit_count(&q, 0, at(2500) + shift), vpit_count(&p, 0, at(2500)));
	cr_assert_eq(vpit_irq_deadline(&q) - shift, vpit_irq_deadline(&p));
	cr_assert_eq(read16(2, at(2100) + shift), 2990);	/* the latch */

	memcpy(&before, &q, sizeof(q));
	cr_assert_eq(vpit_load(&q, 0, b, sizeof(b) - 1), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[1] = 0x10;
	cr_assert_eq(vpit_load(&q, 0, c, sizeof(c)), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[2 + 28] = 6;				/* mode 6 is stored as 2 */
	cr_assert_eq(vpit_load(&q, 0, c, sizeof(c)), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[2 + 29] |= 0x80;			/* ch0 stopped with gate high */
	cr_assert_eq(vpit_load(&q, 0, c, sizeof(c)), -EINVAL);
	cr_assert_eq(memcmp(&before, &q, sizeof(q)), 0);
}

Test(vpit, time_before_load_reads_initial_count)
{
	program(0, 2, 100, T0);
	cr_assert_eq(vpit_count(&p, 0, T0 - 5000), 100);
	cr_assert(vpit_out(&p, 0, T0 - 5000));
	cr_assert_not(vpit_irq_run(&p, T0 - 5000));
}
