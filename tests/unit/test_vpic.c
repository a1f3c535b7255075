/*
 * Unit tests for kernel/devices/model/vpic.c: Linux's initialisation,
 * masks, nesting, EOI forms, rotation, AEOI, special mask, poll, IRR/ISR
 * reads, ELCR level inputs, the cascade and spurious IR7, save/load.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "kernel/devices/model/vpic.h"

static struct vpic p;

/* arch/x86/kernel/i8259.c init_8259A: ICW1 0x11, ICW2 0x30/0x38 (Linux
 * uses ISA_IRQ_VECTOR(0) = 0x30), ICW3 4/2, ICW4 1 (0x03 with AEOI). */
static void linux_init(uint8_t icw4)
{
	vpic_port_write(&p, 0x21, 0xff);
	vpic_port_write(&p, 0xa1, 0xff);
	vpic_port_write(&p, 0x20, 0x11);
	vpic_port_write(&p, 0x21, 0x30);
	vpic_port_write(&p, 0x21, 0x04);
	vpic_port_write(&p, 0x21, icw4);
	vpic_port_write(&p, 0xa0, 0x11);
	vpic_port_write(&p, 0xa1, 0x38);
	vpic_port_write(&p, 0xa1, 0x02);
	vpic_port_write(&p, 0xa1, icw4);
	vpic_port_write(&p, 0x21, 0x00);
	vpic_port_write(&p, 0xa1, 0x00);
}

static void pulse(unsigned irq)
{
	vpic_set_irq(&p, irq, true);
	vpic_set_irq(&p, irq, false);
}

static void setup(void)
{
	vpic_reset(&p);
	linux_init(0x01);
}

TestSuite(vpic, .init = setup);

Test(vpic, init_sequence_and_imr)
{
	cr_assert_eq(p.c[0].base, 0x30);
	cr_assert_eq(p.c[1].base, 0x38);
	cr_assert_eq(p.c[0].init, 0);
	cr_assert_eq(vpic_port_read(&p, 0x21), 0);
	vpic_port_write(&p, 0x21, 0xfb);
	cr_assert_eq(vpic_port_read(&p, 0x21), 0xfb);
	vpic_port_write(&p, 0xa1, 0x5a);
	cr_assert_eq(vpic_port_read(&p, 0xa1), 0x5a);
	cr_assert_not(vpic_output(&p));
}

Test(vpic, edge_irq_ack_eoi)
{
	pulse(0);
	cr_assert(vpic_output(&p));
	cr_assert_eq(vpic_port_read(&p, 0x20), 0x01);		/* IRR */
	cr_assert_eq(vpic_ack(&p), 0x30);
	cr_assert_not(vpic_output(&p));
	vpic_port_write(&p, 0x20, 0x0b);			/* OCW3: read ISR */
	cr_assert_eq(vpic_port_read(&p, 0x20), 0x01);
	vpic_port_write(&p, 0x20, 0x20);			/* non-specific EOI */
	cr_assert_eq(vpic_port_read(&p, 0x20), 0x00);
	vpic_port_write(&p, 0x20, 0x0a);			/* back to IRR */
	cr_assert_eq(vpic_port_read(&p, 0x20), 0x00);
}

Test(vpic, edge_needs_a_new_rising_edge)
{
	vpic_set_irq(&p, 4, true);
	cr_assert_eq(vpic_ack(&p), 0x34);
	vpic_port_write(&p, 0x20, 0x20);
	vpic_set_irq(&p, 4, true);				/* still high */
	cr_assert_not(vpic_output(&p));
	vpic_set_irq(&p, 4, false);
	vpic_set_irq(&p, 4, true);
	cr_assert(vpic_output(&p));
}

Test(vpic, mask_holds_request)
{
	vpic_port_write(&p, 0x21, 0x02);
	pulse(1);
	cr_assert_not(vpic_output(&p));
	cr_assert_eq(vpic_port_read(&p, 0x20), 0x02);
	vpic_port_write(&p, 0x21, 0x00);
	cr_assert(vpic_output(&p));
	cr_assert_eq(vpic_ack(&p), 0x31);
}

Test(vpic, nesting_priority)
{
	pulse(3);
	cr_assert_eq(vpic_ack(&p), 0x33);
	pulse(5);				/* lower priority: held */
	cr_assert_not(vpic_output(&p));
	pulse(1);				/* higher: nests */
	cr_assert(vpic_output(&p));
	cr_assert_eq(vpic_ack(&p), 0x31);
	vpic_port_write(&p, 0x20, 0x20);	/* EOI ends IR1 (highest in service) */
	cr_assert_not(vpic_output(&p));
	vpic_port_write(&p, 0x20, 0x0b);
	cr_assert_eq(vpic_port_read(&p, 0x20), 0x08);
	vpic_port_write(&p, 0x20, 0x63);	/* specific EOI for IR3 */
	cr_assert(vpic_output(&p));
	cr_assert_eq(vpic_ack(&p), 0x35);
}

Test(vpic, cascade_slave_irq)
{
	pulse(12);
	cr_assert(vpic_output(&p));
	cr_assert_eq(vpic_ack(&p), 0x3c);
	vpic_port_write(&p, 0xa0, 0x0b);
	vpic_port_write(&p, 0x20, 0x0b);
	cr_assert_eq(vpic_port_read(&p, 0xa0), 0x10);
	cr_assert_eq(vpic_port_read(&p, 0x20), 0x04);
	/* A second slave request beneath the first waits for both EOIs. */
	pulse(14);
	cr_assert_not(vpic_output(&p));
	vpic_port_write(&p, 0xa0, 0x20);
	vpic_port_write(&p, 0x20, 0x20);
	cr_assert(vpic_output(&p));
	cr_assert_eq(vpic_ack(&p), 0x3e);
}

Test(vpic, slave_masked_and_irq2_ignored)
{
	vpic_set_irq(&p, 2, true);
	cr_assert_not(vpic_output(&p));
	vpic_port_write(&p, 0xa1, 0x01);
	pulse(8);
	cr_assert_not(vpic_output(&p));
	vpic_port_write(&p, 0xa1, 0x00);
	cr_assert(vpic_output(&p));
	vpic_port_write(&p, 0x21, 0x04);	/* mask the cascade */
	cr_assert_not(vpic_output(&p));
}

Test(vpic, spurious_master_and_slave)
{
	cr_assert_eq(vpic_ack(&p), 0x37);
	vpic_port_write(&p, 0x20, 0x0b);
	cr_assert_eq(vpic_port_read(&p, 0x20), 0);		/* ISR untouched */
	/* Level request on the slave withdrawn after INT: slave IR7, the
	 * master still acknowledged IR2 (data sheet, spurious interrupts). */
	vpic_port_write(&p, 0x4d1, 0x02);			/* IRQ 9 level */
	vpic_set_irq(&p, 9, true);
	cr_assert(vpic_output(&p));
	vpic_set_irq(&p, 9, false);
	/* INT already sent: force the master's view as the CPU saw it. */
	p.c[0].irr |= 0x04;
	cr_assert_eq(vpic_ack(&p), 0x3f);
	cr_assert_eq(p.c[1].isr, 0);
	cr_assert_eq(p.c[0].isr, 0x04);
}

Test(vpic, elcr_level_inputs)
{
	vpic_port_write(&p, 0x4d0, 0xff);
	vpic_port_write(&p, 0x4d1, 0xff);
	cr_assert_eq(vpic_port_read(&p, 0x4d0), 0xf8);		/* 0-2 edge */
	cr_assert_eq(vpic_port_read(&p, 0x4d1), 0xde);		/* 8, 13 edge */
	vpic_set_irq(&p, 10, true);
	cr_assert_eq(vpic_ack(&p), 0x3a);
	vpic_port_write(&p, 0xa0, 0x20);
	vpic_port_write(&p, 0x20, 0x20);
	cr_assert(vpic_output(&p));		/* still asserted: again */
	vpic_set_irq(&p, 10, false);
	cr_assert_not(vpic_output(&p));
	cr_assert_eq(vpic_port_read(&p, 0xa0), 0);		/* IRR follows */
}

Test(vpic, auto_eoi)
{
	vpic_reset(&p);
	linux_init(0x03);
	pulse(6);
	cr_assert_eq(vpic_ack(&p), 0x36);
	vpic_port_write(&p, 0x20, 0x0b);
	cr_assert_eq(vpic_port_read(&p, 0x20), 0);		/* no ISR */
	pulse(7);
	cr_assert(vpic_output(&p));
}

Test(vpic, rotation)
{
	pulse(0);
	cr_assert_eq(vpic_ack(&p), 0x30);
	vpic_port_write(&p, 0x20, 0xa0);	/* rotate on non-specific EOI */
	pulse(0);
	pulse(1);
	cr_assert_eq(vpic_ack(&p), 0x31);	/* IR0 is now lowest */
	vpic_port_write(&p, 0x20, 0xc4);	/* set priority: IR4 lowest */
	cr_assert_eq(p.c[0].prio, 5);
	vpic_port_write(&p, 0x20, 0xe1);	/* rotate on specific EOI 1 */
	cr_assert_eq(p.c[0].prio, 2);
	cr_assert_eq(p.c[0].isr, 0);
	/* Rotate in AEOI mode. */
	vpic_reset(&p);
	linux_init(0x03);
	vpic_port_write(&p, 0x20, 0x80);
	pulse(3);
	cr_assert_eq(vpic_ack(&p), 0x33);
	cr_assert_eq(p.c[0].prio, 4);
	vpic_port_write(&p, 0x20, 0x00);
	pulse(5);
	vpic_ack(&p);
	cr_assert_eq(p.c[0].prio, 4);
}

Test(vpic, special_mask_mode)
{
	pulse(1);
	cr_assert_eq(vpic_ack(&p), 0x31);
	pulse(4);
	cr_assert_not(vpic_output(&p));
	vpic_port_write(&p, 0x21, 0x02);	/* mask the in-service IR1 */
	vpic_port_write(&p, 0x20, 0x68);	/* OCW3: set special mask */
	cr_assert(vpic_output(&p));
	cr_assert_eq(vpic_ack(&p), 0x34);
	vpic_port_write(&p, 0x20, 0x48);	/* reset special mask */
	cr_assert_not(p.c[0].smm);
}

Test(vpic, poll_mode)
{
	vpic_port_write(&p, 0x20, 0x0c);
	cr_assert_eq(vpic_port_read(&p, 0x20), 0x00);		/* nothing */
	pulse(5);
	vpic_port_write(&p, 0x20, 0x0c);
	cr_assert_eq(vpic_port_read(&p, 0x20), 0x85);
	cr_assert_eq(p.c[0].isr, 0x20);
	cr_assert_eq(vpic_port_read(&p, 0x20), 0x00);		/* IRR again */
}

Test(vpic, icw1_resets_state)
{
	pulse(3);
	vpic_ack(&p);
	vpic_port_write(&p, 0x21, 0x55);
	vpic_port_write(&p, 0x20, 0x11);
	cr_assert_eq(p.c[0].isr, 0);
	cr_assert_eq(p.c[0].imr, 0);
	cr_assert_eq(p.c[0].init, 2);
	/* ICW1 without IC4, single mode: ICW2 alone completes it. */
	vpic_port_write(&p, 0xa0, 0x12);
	vpic_port_write(&p, 0xa1, 0x70);
	cr_assert_eq(p.c[1].init, 0);
	cr_assert_eq(p.c[1].base, 0x70);
}

Test(vpic, save_load)
{
	struct vpic q, before;
	uint8_t b[VPIC_STATE_LEN], c[VPIC_STATE_LEN];

	pulse(12);
	pulse(3);
	vpic_ack(&p);
	vpic_port_write(&p, 0x4d1, 0x06);
	vpic_port_write(&p, 0x21, 0x10);
	vpic_save(&p, b);
	vpic_reset(&q);
	cr_assert_eq(vpic_load(&q, b, sizeof(b)), 0);
	vpic_save(&q, c);
	cr_assert_arr_eq(b, c, sizeof(b));
	cr_assert_eq(vpic_ack(&q), vpic_ack(&p));

	memcpy(&before, &q, sizeof(q));
	cr_assert_eq(vpic_load(&q, b, sizeof(b) - 1), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[0] = 9;
	cr_assert_eq(vpic_load(&q, c, sizeof(c)), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[1 + 5] = 0x31;				/* base not 8-aligned */
	cr_assert_eq(vpic_load(&q, c, sizeof(c)), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[12 + 4] = 0x01;				/* ELCR IRQ 8 */
	cr_assert_eq(vpic_load(&q, c, sizeof(c)), -EINVAL);
	memcpy(c, b, sizeof(b));
	c[1 + 7] = 1;					/* init state */
	cr_assert_eq(vpic_load(&q, c, sizeof(c)), -EINVAL);
	cr_assert_eq(memcmp(&before, &q, sizeof(q)), 0);
}
