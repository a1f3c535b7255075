/*
 * Unit tests for kernel/devices/model/irqrec.c: the "irqchip" and
 * "lapic.N" migration records round-trip, and every hostile variant is
 * refused without touching the output.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "kernel/devices/model/irqrec.h"
#include "kernel/lib/byteorder.h"

#define NOW	1000000000ull

static void chip_sample(struct irqrec_chip *c)
{
	memset(c, 0, sizeof(*c));
	vioapic_reset(&c->ioapic, 0);
	vpic_reset(&c->pic);
	/* ICW1-4 on the master: vectors at 0x20, then IRQ 1 raised. */
	vpic_port_write(&c->pic, 0x20, 0x11);
	vpic_port_write(&c->pic, 0x21, 0x20);
	vpic_port_write(&c->pic, 0x21, 0x04);
	vpic_port_write(&c->pic, 0x21, 0x01);
	vpic_set_irq(&c->pic, 1, true);
	c->lines = (1u << 1) | (1u << 4) | (1u << 23);
}

static void lapic_sample(struct irqrec_lapic *r, uint32_t id)
{
	memset(r, 0, sizeof(*r));
	vlapic_reset(&r->lapic, id, id == 0);
	r->lapic.svr = VLAPIC_SVR_ENABLE | 0xff;
	r->lapic.irr[1] = 1u << 3;	/* vector 0x23 pending */
	r->lapic.isr[7] = 1u << 31;	/* 0xff in service */
	r->lapic.tmr[1] = 1u << 3;
	r->lapic.lvt[VLAPIC_LVT_T] = (VLAPIC_TIMER_TSCDL << VLAPIC_TIMER_MODE_SHIFT) | 0xec;
	r->lapic.deadline = NOW + 5000;
	r->mp_state = IRQREC_MP_RUNNABLE;
	r->flags = IRQREC_F_NMI | IRQREC_F_HALTED;
	r->sipi_vector = 0x9a;
}

Test(irqrec, chip_round_trip)
{
	struct irqrec_chip a, b;
	uint8_t buf[IRQREC_CHIP_LEN], again[IRQREC_CHIP_LEN];

	chip_sample(&a);
	cr_assert_eq(irqrec_chip_encode(&a, buf, sizeof(buf)), 0);
	cr_assert_eq(ld_le32(buf), a.lines);
	memset(&b, 0x5a, sizeof(b));
	cr_assert_eq(irqrec_chip_decode(buf, sizeof(buf), &b), 0);
	cr_assert_eq(b.lines, a.lines);
	cr_assert_eq(vpic_output(&b.pic), vpic_output(&a.pic));
	cr_assert(vpic_output(&b.pic), "IRQ 1 was pending at the master");
	cr_assert_eq(irqrec_chip_encode(&b, again, sizeof(again)), 0);
	cr_assert_arr_eq(again, buf, sizeof(buf));
}

Test(irqrec, chip_refusals_leave_output)
{
	struct irqrec_chip a, out, keep;
	uint8_t buf[IRQREC_CHIP_LEN];

	chip_sample(&a);
	cr_assert_eq(irqrec_chip_encode(&a, buf, 3), -ENOSPC);
	cr_assert_eq(irqrec_chip_encode(&a, buf, sizeof(buf)), 0);
	memset(&out, 0x33, sizeof(out));
	keep = out;
	cr_assert_eq(irqrec_chip_decode(buf, sizeof(buf) - 1, &out), -EINVAL);
	cr_assert_eq(irqrec_chip_decode(buf, 0, &out), -EINVAL);
	st_le32(buf, 1u << 24);		/* GSI 24 does not exist */
	cr_assert_eq(irqrec_chip_decode(buf, sizeof(buf), &out), -EINVAL);
	cr_assert_eq(memcmp(&out, &keep, sizeof(out)), 0);
}

Test(irqrec, chip_bad_inner_records)
{
	struct irqrec_chip a, out;
	uint8_t buf[IRQREC_CHIP_LEN];

	chip_sample(&a);
	cr_assert_eq(irqrec_chip_encode(&a, buf, sizeof(buf)), 0);
	buf[4] ^= 0xff;			/* the IOAPIC record's version byte */
	cr_assert_eq(irqrec_chip_decode(buf, sizeof(buf), &out), -EINVAL);
	cr_assert_eq(irqrec_chip_encode(&a, buf, sizeof(buf)), 0);
	buf[4 + VIOAPIC_SAVE_SIZE] ^= 0xff;	/* the 8259s' version byte */
	cr_assert_eq(irqrec_chip_decode(buf, sizeof(buf), &out), -EINVAL);
}

Test(irqrec, lapic_round_trip_keeps_timer_on_guest_clock)
{
	struct irqrec_lapic a, b;
	uint8_t buf[IRQREC_LAPIC_LEN];

	lapic_sample(&a, 1);
	cr_assert_eq(irqrec_lapic_encode(&a, NOW, buf, sizeof(buf)), 0);
	/* The destination continues the guest's TSC from the pause: the
	 * deadline lands 5000 ticks after its "now", wherever that is. */
	cr_assert_eq(irqrec_lapic_decode(buf, sizeof(buf), 7 * NOW, 1, &b), 0);
	cr_assert_eq(b.lapic.deadline, 7 * NOW + 5000);
	cr_assert_eq(b.lapic.irr[1], a.lapic.irr[1]);
	cr_assert_eq(b.lapic.isr[7], a.lapic.isr[7]);
	cr_assert_eq(b.lapic.tmr[1], a.lapic.tmr[1]);
	cr_assert_eq(b.lapic.lvt[VLAPIC_LVT_T], a.lapic.lvt[VLAPIC_LVT_T]);
	cr_assert_eq(b.mp_state, IRQREC_MP_RUNNABLE);
	cr_assert_eq(b.flags, IRQREC_F_NMI | IRQREC_F_HALTED);
	cr_assert_eq(b.sipi_vector, 0x9a);
}

/* A vCPU paused inside its NMI handler stays there: no NMI until its
 * IRET, on the destination too. */
Test(irqrec, lapic_nmi_masked_travels)
{
	struct irqrec_lapic a, b;
	uint8_t buf[IRQREC_LAPIC_LEN];

	lapic_sample(&a, 1);
	a.flags = IRQREC_F_NMI | IRQREC_F_NMI_MASKED;
	cr_assert_eq(irqrec_lapic_encode(&a, NOW, buf, sizeof(buf)), 0);
	cr_assert_eq(irqrec_lapic_decode(buf, sizeof(buf), NOW, 1, &b), 0);
	cr_assert_eq(b.flags, IRQREC_F_NMI | IRQREC_F_NMI_MASKED);
}

Test(irqrec, lapic_wait_for_sipi)
{
	struct irqrec_lapic a, b;
	uint8_t buf[IRQREC_LAPIC_LEN];

	lapic_sample(&a, 3);
	a.mp_state = IRQREC_MP_WAIT_SIPI;
	a.flags = IRQREC_F_SIPI;
	cr_assert_eq(irqrec_lapic_encode(&a, NOW, buf, sizeof(buf)), 0);
	cr_assert_eq(irqrec_lapic_decode(buf, sizeof(buf), NOW, 3, &b), 0);
	cr_assert_eq(b.mp_state, IRQREC_MP_WAIT_SIPI);
	cr_assert_eq(b.flags, IRQREC_F_SIPI);
}

Test(irqrec, lapic_refusals_leave_output)
{
	struct irqrec_lapic a, out, keep;
	uint8_t buf[IRQREC_LAPIC_LEN], bad[IRQREC_LAPIC_LEN];

	lapic_sample(&a, 1);
	cr_assert_eq(irqrec_lapic_encode(&a, NOW, buf, 10), -ENOSPC);
	cr_assert_eq(irqrec_lapic_encode(&a, NOW, buf, sizeof(buf)), 0);
	memset(&out, 0x77, sizeof(out));
	keep = out;
	cr_assert_eq(irqrec_lapic_decode(buf, sizeof(buf) - 1, NOW, 1, &out), -EINVAL);
	/* Another vCPU's LAPIC. */
	cr_assert_eq(irqrec_lapic_decode(buf, sizeof(buf), NOW, 2, &out), -EINVAL);
	memcpy(bad, buf, sizeof(bad));
	bad[VLAPIC_SAVE_SIZE] = 2;		/* no such run state */
	cr_assert_eq(irqrec_lapic_decode(bad, sizeof(bad), NOW, 1, &out), -EINVAL);
	memcpy(bad, buf, sizeof(bad));
	bad[VLAPIC_SAVE_SIZE + 1] = 0x20;	/* unknown flag */
	cr_assert_eq(irqrec_lapic_decode(bad, sizeof(bad), NOW, 1, &out), -EINVAL);
	memcpy(bad, buf, sizeof(bad));
	bad[VLAPIC_SAVE_SIZE + 3] = 1;		/* reserved */
	cr_assert_eq(irqrec_lapic_decode(bad, sizeof(bad), NOW, 1, &out), -EINVAL);
	memcpy(bad, buf, sizeof(bad));
	bad[VLAPIC_SAVE_SIZE] = IRQREC_MP_WAIT_SIPI;	/* halted and waiting for SIPI */
	cr_assert_eq(irqrec_lapic_decode(bad, sizeof(bad), NOW, 1, &out), -EINVAL);
	memcpy(bad, buf, sizeof(bad));
	bad[0] ^= 0xff;				/* the LAPIC record's version */
	cr_assert_eq(irqrec_lapic_decode(bad, sizeof(bad), NOW, 1, &out), -EINVAL);
	cr_assert_eq(memcmp(&out, &keep, sizeof(out)), 0);
}
