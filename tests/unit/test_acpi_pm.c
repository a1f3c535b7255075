/*
 * Unit tests for kernel/devices/model/acpi_pm.c: PM1_STS write-1-to-clear,
 * PM1_EN, PM1_CNT (SCI_EN, SLP_EN with S5 and other types), the 0xcf9
 * reset register, the SCI, save/load.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "kernel/devices/model/acpi_pm.h"

static struct acpi_pm p;

static void setup(void)
{
	acpi_pm_reset(&p, 5);
}

TestSuite(acpi_pm, .init = setup);

Test(acpi_pm, reset_values)
{
	cr_assert_eq(acpi_pm_read(&p, 0, 2), 0);
	cr_assert_eq(acpi_pm_read(&p, 2, 2), 0);
	cr_assert_eq(acpi_pm_read(&p, 4, 2), ACPI_PM1_SCI_EN);
	cr_assert_eq(acpi_pm_read(&p, 0, 4), 0);
	cr_assert_eq(acpi_pm_read(&p, 4, 4), 0xffff0001u);	/* past the window */
	cr_assert_not(acpi_pm_sci(&p));
}

Test(acpi_pm, sts_write_one_to_clear)
{
	acpi_pm_event(&p, ACPI_PM1_PWRBTN | ACPI_PM1_RTC);
	cr_assert_eq(acpi_pm_read(&p, 0, 2), ACPI_PM1_PWRBTN | ACPI_PM1_RTC);
	cr_assert_eq(acpi_pm_read(&p, 1, 1), 0x05);
	acpi_pm_write(&p, 0, 2, 0);				/* zeros: no effect */
	cr_assert_eq(acpi_pm_read(&p, 0, 2), ACPI_PM1_PWRBTN | ACPI_PM1_RTC);
	acpi_pm_write(&p, 1, 1, 0x01);				/* PWRBTN only */
	cr_assert_eq(acpi_pm_read(&p, 0, 2), ACPI_PM1_RTC);
	acpi_pm_write(&p, 0, 4, 0xffff);			/* STS and EN=0 */
	cr_assert_eq(acpi_pm_read(&p, 0, 2), 0);
}

Test(acpi_pm, en_and_sci)
{
	acpi_pm_write(&p, 2, 2, 0xffff);
	cr_assert_eq(acpi_pm_read(&p, 2, 2), 0x0721);		/* defined bits only */
	cr_assert_not(acpi_pm_sci(&p));
	acpi_pm_event(&p, ACPI_PM1_PWRBTN);
	cr_assert(acpi_pm_sci(&p));
	acpi_pm_write(&p, 0, 2, ACPI_PM1_PWRBTN);
	cr_assert_not(acpi_pm_sci(&p));
	acpi_pm_event(&p, ACPI_PM1_WAK_STS);			/* no enable bit */
	cr_assert_not(acpi_pm_sci(&p));
	/* A 32-bit write covers STS (clear) and EN. */
	acpi_pm_event(&p, ACPI_PM1_RTC);
	acpi_pm_write(&p, 0, 4, (uint32_t)ACPI_PM1_PWRBTN << 16);
	cr_assert_eq(acpi_pm_read(&p, 2, 2), ACPI_PM1_PWRBTN);
	cr_assert_not(acpi_pm_sci(&p));
}

Test(acpi_pm, cnt_sci_en_sticks_slp_en_reads_zero)
{
	cr_assert_eq(acpi_pm_write(&p, 4, 2, 0), ACPI_PM_NONE);
	cr_assert_eq(acpi_pm_read(&p, 4, 2), ACPI_PM1_SCI_EN);
	cr_assert_eq(acpi_pm_write(&p, 4, 2, 3u << 10 | ACPI_PM1_GBL_RLS), ACPI_PM_NONE);
	cr_assert_eq(acpi_pm_read(&p, 4, 2), (3u << 10) | ACPI_PM1_SCI_EN);
}

Test(acpi_pm, s5_powers_off)
{
	/* Linux writes SLP_TYP first, then SLP_TYP | SLP_EN. */
	cr_assert_eq(acpi_pm_write(&p, 4, 2, 5u << 10 | 1), ACPI_PM_NONE);
	cr_assert_eq(acpi_pm_write(&p, 4, 2, 5u << 10 | ACPI_PM1_SLP_EN | 1),
		     ACPI_PM_POWEROFF);
	cr_assert_eq(acpi_pm_read(&p, 4, 2) & ACPI_PM1_SLP_EN, 0);
	/* A byte write of the high half alone does it too. */
	cr_assert_eq(acpi_pm_write(&p, 5, 1, (5u << 2) | 0x20), ACPI_PM_POWEROFF);
	/* A low byte alone cannot. */
	cr_assert_eq(acpi_pm_write(&p, 4, 1, 0xff), ACPI_PM_NONE);
}

Test(acpi_pm, other_sleep_types)
{
	cr_assert_eq(acpi_pm_write(&p, 4, 2, 3u << 10 | ACPI_PM1_SLP_EN), ACPI_PM_SLEEP);
	cr_assert_eq(p.slp_typ, 3);
	acpi_pm_reset(&p, 7);
	cr_assert_eq(acpi_pm_write(&p, 4, 2, 5u << 10 | ACPI_PM1_SLP_EN), ACPI_PM_SLEEP);
	cr_assert_eq(acpi_pm_write(&p, 4, 2, 7u << 10 | ACPI_PM1_SLP_EN), ACPI_PM_POWEROFF);
}

Test(acpi_pm, reset_register)
{
	cr_assert_eq(acpi_pm_rst_write(&p, 0x02), ACPI_PM_NONE);
	cr_assert_eq(acpi_pm_rst_read(&p), 0x02);
	cr_assert_eq(acpi_pm_rst_write(&p, 0x06), ACPI_PM_RESET);
	cr_assert_eq(acpi_pm_rst_write(&p, 0x0e), ACPI_PM_RESET);
	cr_assert_eq(acpi_pm_rst_write(&p, 0x04), ACPI_PM_RESET);	/* soft */
	cr_assert_eq(acpi_pm_rst_write(&p, 0xf9), ACPI_PM_NONE);
	cr_assert_eq(acpi_pm_rst_read(&p), 0x08);
}

Test(acpi_pm, save_load)
{
	struct acpi_pm q, before;
	uint8_t b[ACPI_PM_STATE_LEN], c[ACPI_PM_STATE_LEN];

	acpi_pm_write(&p, 2, 2, ACPI_PM1_PWRBTN);
	acpi_pm_event(&p, ACPI_PM1_PWRBTN);
	acpi_pm_write(&p, 4, 2, 2u << 10);
	acpi_pm_rst_write(&p, 0x0a);
	acpi_pm_save(&p, b);
	acpi_pm_reset(&q, 5);
	cr_assert_eq(acpi_pm_load(&q, b, sizeof(b)), 0);
	acpi_pm_save(&q, c);
	cr_assert_arr_eq(b, c, sizeof(b));
	cr_assert(acpi_pm_sci(&q));
	cr_assert_eq(acpi_pm_rst_read(&q), 0x0a);

	memcpy(&before, &q, sizeof(q));
	cr_assert_eq(acpi_pm_load(&q, b, sizeof(b) - 1), -EINVAL);
	c[0] = 2;
	cr_assert_eq(acpi_pm_load(&q, c, sizeof(c)), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[5] = 0;					/* SCI_EN clear */
	cr_assert_eq(acpi_pm_load(&q, c, sizeof(c)), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[7] = 0x04;
	cr_assert_eq(acpi_pm_load(&q, c, sizeof(c)), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[2] |= 0x40;					/* undefined STS bit */
	cr_assert_eq(acpi_pm_load(&q, c, sizeof(c)), -EINVAL);
	cr_assert_eq(memcmp(&before, &q, sizeof(q)), 0);
}

/* 3.579545 MHz from guest nanoseconds, exact at whole seconds, wrapping
 * at 32 bits (TMR_VAL_EXT) and monotonic in between. */
Test(acpi_pm, timer_rate_and_wrap)
{
	uint64_t s, prev = 0;

	cr_assert_eq(acpi_pm_timer(0), 0);
	cr_assert_eq(acpi_pm_timer(1000000000ull), ACPI_PM_TIMER_HZ);
	cr_assert_eq(acpi_pm_timer(500000000ull), ACPI_PM_TIMER_HZ / 2);
	s = (1ull << 32) / ACPI_PM_TIMER_HZ + 1;	/* past the first wrap */
	cr_assert_eq(acpi_pm_timer(s * 1000000000ull),
		     (uint32_t)(s * ACPI_PM_TIMER_HZ));
	for (uint64_t ns = 0; ns < 10000000ull; ns += 123457) {
		uint32_t t = acpi_pm_timer(ns);

		cr_assert_geq(t, prev);
		prev = t;
	}
	/* Days of uptime: no overflow in the product. */
	cr_assert_eq(acpi_pm_timer(86400ull * 365 * 1000000000ull),
		     (uint32_t)(86400ull * 365 * ACPI_PM_TIMER_HZ));
}
