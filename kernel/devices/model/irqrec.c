/*
 * The interrupt controllers' migration records (irqrec.h).
 */
#include <errno.h>
#include <string.h>
#include "kernel/devices/model/irqrec.h"
#include "kernel/lib/byteorder.h"

int irqrec_chip_encode(const struct irqrec_chip *c, uint8_t *b, size_t len)
{
	if (len < IRQREC_CHIP_LEN)
		return -ENOSPC;
	st_le32(b, c->lines);
	if (vioapic_save(&c->ioapic, b + 4, VIOAPIC_SAVE_SIZE) < 0)
		return -ENOSPC;
	vpic_save(&c->pic, b + 4 + VIOAPIC_SAVE_SIZE);
	return 0;
}

int irqrec_chip_decode(const uint8_t *b, size_t len, struct irqrec_chip *out)
{
	struct irqrec_chip c;

	if (len != IRQREC_CHIP_LEN)
		return -EINVAL;
	memset(&c, 0, sizeof(c));
	c.lines = ld_le32(b);
	if (c.lines >> IRQREC_GSIS)
		return -EINVAL;
	if (vioapic_load(&c.ioapic, b + 4, VIOAPIC_SAVE_SIZE) < 0 ||
	    vpic_load(&c.pic, b + 4 + VIOAPIC_SAVE_SIZE, VPIC_STATE_LEN) < 0)
		return -EINVAL;
	*out = c;
	return 0;
}

int irqrec_lapic_encode(const struct irqrec_lapic *r, uint64_t now, uint8_t *b, size_t len)
{
	if (len < IRQREC_LAPIC_LEN)
		return -ENOSPC;
	memset(b, 0, IRQREC_LAPIC_LEN);
	if (vlapic_save(&r->lapic, b, VLAPIC_SAVE_SIZE, now) < 0)
		return -ENOSPC;
	b[VLAPIC_SAVE_SIZE] = r->mp_state;
	b[VLAPIC_SAVE_SIZE + 1] = r->flags;
	b[VLAPIC_SAVE_SIZE + 2] = r->sipi_vector;
	return 0;
}

int irqrec_lapic_decode(const uint8_t *b, size_t len, uint64_t now, uint32_t apic_id,
			struct irqrec_lapic *out)
{
	struct irqrec_lapic r;
	const uint8_t *x = b + VLAPIC_SAVE_SIZE;

	if (len != IRQREC_LAPIC_LEN)
		return -EINVAL;
	if (x[0] > IRQREC_MP_WAIT_SIPI || (x[1] & ~IRQREC_F_ALL) || x[3])
		return -EINVAL;
	/* A vCPU waiting for its SIPI is not in HLT (SDM Vol. 3A 9.4.2:
	 * wait-for-SIPI is its own state). */
	if (x[0] == IRQREC_MP_WAIT_SIPI && (x[1] & IRQREC_F_HALTED))
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	if (vlapic_load(&r.lapic, b, VLAPIC_SAVE_SIZE, now) < 0)
		return -EINVAL;
	/* The ID is the vCPU's, as the MADT the guest read names it. */
	if (r.lapic.apic_id != apic_id)
		return -EINVAL;
	r.mp_state = x[0];
	r.flags = x[1];
	r.sipi_vector = x[2];
	*out = r;
	return 0;
}
