/*
 * 8259A pair.  References: Intel 8259A data sheet (231468-003): ICW1-ICW4
 * and OCW1-OCW3 formats (figures 7 and 8), priority rotation, special mask
 * mode, poll command, AEOI, spurious IR7; Intel 82371AB (PIIX4) data sheet
 * 4.1.14 ELCR1/ELCR2 (IRQ 0, 1, 2, 8 and 13 are always edge).
 */
#include <errno.h>
#include <string.h>
#include "kernel/devices/model/vpic.h"

#define VPIC_CASCADE	2
static const uint8_t vpic_elcr_mask[2] = { 0xf8, 0xde };

/* Priority level (0 highest) of the best IR in mask, 8 for none. */
static unsigned vpic_best(const struct vpic_chip *c, uint8_t mask)
{
	for (unsigned lvl = 0; lvl < 8; lvl++)
		if (mask & (1u << ((lvl + c->prio) & 7)))
			return lvl;
	return 8;
}

/* The IR this chip would signal, -1 for none: the best unmasked request
 * that beats the best in-service level (fully nested mode). */
static int vpic_pending(const struct vpic_chip *c, bool master)
{
	unsigned req = vpic_best(c, (uint8_t)(c->irr & ~c->imr));
	uint8_t in = c->isr;

	if (req == 8)
		return -1;
	/* Special fully nested mode: the slave may interrupt its own
	 * in-service cascade line.  Special mask mode: a masked in-service
	 * level does not hold lower ones back. */
	if (master && c->sfnm)
		in &= (uint8_t)~(1u << VPIC_CASCADE);
	if (c->smm)
		in &= (uint8_t)~c->imr;
	if (req >= vpic_best(c, in))
		return -1;
	return (int)((req + c->prio) & 7);
}

static bool vpic_cascaded(const struct vpic *p)
{
	return !p->c[0].single;
}

/* The master's IR2 follows the slave's INT output. */
static void vpic_update(struct vpic *p)
{
	struct vpic_chip *m = &p->c[0];

	if (!vpic_cascaded(p))
		return;
	if (vpic_pending(&p->c[1], false) >= 0)
		m->irr |= 1u << VPIC_CASCADE;
	else
		m->irr &= (uint8_t)~(1u << VPIC_CASCADE);
}

static void vpic_chip_reset(struct vpic_chip *c)
{
	uint8_t elcr = c->elcr;

	memset(c, 0, sizeof(*c));
	c->elcr = elcr;
}

void vpic_reset(struct vpic *p)
{
	memset(p, 0, sizeof(*p));
	vpic_chip_reset(&p->c[0]);
	vpic_chip_reset(&p->c[1]);
}

static void vpic_chip_line(struct vpic_chip *c, unsigned ir, bool level)
{
	uint8_t bit = (uint8_t)(1u << ir);

	if (c->elcr & bit) {
		if (level)
			c->irr |= bit;
		else
			c->irr &= (uint8_t)~bit;
	} else if (level && !(c->lines & bit)) {
		c->irr |= bit;		/* rising edge */
	}
	if (level)
		c->lines |= bit;
	else
		c->lines &= (uint8_t)~bit;
}

void vpic_set_irq(struct vpic *p, unsigned irq, bool level)
{
	if (irq > 15 || irq == VPIC_CASCADE)
		return;
	vpic_chip_line(&p->c[irq >> 3], irq & 7, level);
	vpic_update(p);
}

bool vpic_output(const struct vpic *p)
{
	return vpic_pending(&p->c[0], true) >= 0;
}

/* The INTA cycle's effect on one chip: ISR set (or, in AEOI, the
 * rotation), an edge request consumed. */
static void vpic_intack(struct vpic_chip *c, unsigned ir)
{
	uint8_t bit = (uint8_t)(1u << ir);

	if (c->aeoi) {
		if (c->rotate_aeoi)
			c->prio = (uint8_t)((ir + 1) & 7);
	} else {
		c->isr |= bit;
	}
	if (!(c->elcr & bit))
		c->irr &= (uint8_t)~bit;
}

int vpic_ack(struct vpic *p)
{
	struct vpic_chip *m = &p->c[0], *s = &p->c[1];
	int ir = vpic_pending(m, true), ir2;
	int vec;

	if (ir < 0)
		return m->base | 7;		/* spurious: ISR untouched */
	if (ir == VPIC_CASCADE && vpic_cascaded(p)) {
		ir2 = vpic_pending(s, false);
		if (ir2 >= 0)
			vpic_intack(s, (unsigned)ir2);
		vec = s->base | (ir2 >= 0 ? ir2 : 7);
	} else {
		vec = m->base | ir;
	}
	vpic_intack(m, (unsigned)ir);
	vpic_update(p);
	return vec;
}

/* ---- ports ---- */

static void vpic_icw1(struct vpic_chip *c, uint8_t val)
{
	/* ICW1 resets the edge detector (a line already high must fall and
	 * rise again), IMR, ISR, priority, special mask and the status read
	 * selection; ICW4 functions clear too. */
	c->irr &= c->elcr;
	c->isr = c->imr = 0;
	c->prio = 0;
	c->smm = c->poll = c->read_isr = false;
	c->aeoi = c->rotate_aeoi = c->sfnm = false;
	c->need_icw4 = val & 0x01;
	c->single = val & 0x02;
	c->init = 2;
}

static int vpic_isr_top(const struct vpic_chip *c)
{
	unsigned lvl = vpic_best(c, c->isr);

	return lvl == 8 ? -1 : (int)((lvl + c->prio) & 7);
}

static void vpic_ocw2(struct vpic_chip *c, uint8_t val)
{
	int ir = (val & 0x40) ? (int)(val & 7) : vpic_isr_top(c);	/* SL */

	switch (val >> 5) {
	case 0: c->rotate_aeoi = false; break;
	case 4: c->rotate_aeoi = true; break;
	case 6: c->prio = (uint8_t)((val + 1) & 7); break;	/* set priority */
	case 1: case 3: case 5: case 7:			/* EOI forms */
		if (ir < 0)
			break;
		c->isr &= (uint8_t)~(1u << ir);
		if (val & 0x80)				/* R: rotate */
			c->prio = (uint8_t)((ir + 1) & 7);
		break;
	default: break;					/* 2: no operation */
	}
}

static void vpic_ocw3(struct vpic_chip *c, uint8_t val)
{
	if (val & 0x40)					/* ESMM */
		c->smm = val & 0x20;
	if (val & 0x04)
		c->poll = true;
	if (val & 0x02)					/* RR */
		c->read_isr = val & 0x01;
}

static void vpic_data_write(struct vpic_chip *c, uint8_t val)
{
	switch (c->init) {
	case 2:
		c->base = val & 0xf8;
		c->init = c->single ? (c->need_icw4 ? 4 : 0) : 3;
		break;
	case 3:
		c->icw3 = val;
		c->init = c->need_icw4 ? 4 : 0;
		break;
	case 4:
		c->aeoi = val & 0x02;
		c->sfnm = val & 0x10;
		c->init = 0;
		break;
	default:
		c->imr = val;				/* OCW1 */
		break;
	}
}

/* Poll command: the next read of the command port is an INTA cycle that
 * returns 0x80 | IR, or 0 with nothing pending. */
static uint8_t vpic_poll(struct vpic *p, unsigned chip)
{
	struct vpic_chip *c = &p->c[chip];
	int ir = vpic_pending(c, chip == 0);

	c->poll = false;
	if (ir < 0)
		return 0;
	vpic_intack(c, (unsigned)ir);
	vpic_update(p);
	return (uint8_t)(0x80 | ir);
}

uint8_t vpic_port_read(struct vpic *p, uint16_t port)
{
	unsigned chip = port >= 0xa0 && port <= 0xa1;
	struct vpic_chip *c = &p->c[chip];

	switch (port) {
	case 0x20: case 0xa0:
		if (c->poll)
			return vpic_poll(p, chip);
		return c->read_isr ? c->isr : c->irr;
	case 0x21: case 0xa1:
		return c->imr;
	case 0x4d0: return p->c[0].elcr;
	case 0x4d1: return p->c[1].elcr;
	default: return 0xff;
	}
}

void vpic_port_write(struct vpic *p, uint16_t port, uint8_t val)
{
	unsigned chip = port >= 0xa0 && port <= 0xa1;
	struct vpic_chip *c = &p->c[chip];

	switch (port) {
	case 0x20: case 0xa0:
		if (val & 0x10)
			vpic_icw1(c, val);
		else if (val & 0x08)
			vpic_ocw3(c, val);
		else
			vpic_ocw2(c, val);
		break;
	case 0x21: case 0xa1:
		vpic_data_write(c, val);
		break;
	case 0x4d0: case 0x4d1:
		chip = port & 1;
		p->c[chip].elcr = val & vpic_elcr_mask[chip];
		break;
	default:
		return;
	}
	vpic_update(p);
}

/* ---- state v1: version, then per chip irr isr imr lines elcr base icw3
 * init prio flags(need_icw4 single aeoi rotate_aeoi smm sfnm poll
 * read_isr, bit 0 up) and a zero byte ---- */

static void vpic_chip_save(const struct vpic_chip *c, uint8_t *b)
{
	b[0] = c->irr, b[1] = c->isr, b[2] = c->imr, b[3] = c->lines;
	b[4] = c->elcr, b[5] = c->base, b[6] = c->icw3, b[7] = c->init;
	b[8] = c->prio;
	b[9] = (uint8_t)(c->need_icw4 | c->single << 1 | c->aeoi << 2 |
			 c->rotate_aeoi << 3 | c->smm << 4 | c->sfnm << 5 |
			 c->poll << 6 | c->read_isr << 7);
	b[10] = 0;
}

void vpic_save(const struct vpic *p, uint8_t *b)
{
	b[0] = VPIC_STATE_V;
	vpic_chip_save(&p->c[0], b + 1);
	vpic_chip_save(&p->c[1], b + 12);
}

static bool vpic_chip_ok(const uint8_t *b, unsigned chip)
{
	return !(b[4] & ~vpic_elcr_mask[chip]) && !(b[5] & 7) &&
	       (b[7] == 0 || (b[7] >= 2 && b[7] <= 4)) && b[8] < 8 && !b[10];
}

static void vpic_chip_load(struct vpic_chip *c, const uint8_t *b)
{
	c->irr = b[0], c->isr = b[1], c->imr = b[2], c->lines = b[3];
	c->elcr = b[4], c->base = b[5], c->icw3 = b[6], c->init = b[7];
	c->prio = b[8];
	c->need_icw4 = b[9] & 1, c->single = b[9] & 2, c->aeoi = b[9] & 4;
	c->rotate_aeoi = b[9] & 8, c->smm = b[9] & 16, c->sfnm = b[9] & 32;
	c->poll = b[9] & 64, c->read_isr = b[9] & 128;
}

int vpic_load(struct vpic *p, const uint8_t *b, size_t len)
{
	if (len != VPIC_STATE_LEN || b[0] != VPIC_STATE_V ||
	    !vpic_chip_ok(b + 1, 0) || !vpic_chip_ok(b + 12, 1))
		return -EINVAL;
	vpic_chip_load(&p->c[0], b + 1);
	vpic_chip_load(&p->c[1], b + 12);
	vpic_update(p);
	return 0;
}
