/*
 * Unit tests for kernel/devices/model/vioapic.c: registers, edge and level
 * delivery, remote IRR and EOI, masking, the migration record (82093AA
 * datasheet; version 0x20 with the EOI register).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/vioapic.h"
#include "kernel/lib/byteorder.h"

static struct vioapic IO;

static struct {
	int n;
	struct apic_msg m[64];
} sent;

static void t_send(void *ctx, const struct apic_msg *m)
{
	cr_assert_eq(ctx, &sent);
	cr_assert_lt(sent.n, 64);
	sent.m[sent.n++] = *m;
}

static uint32_t t_reg(uint8_t sel)
{
	uint32_t v = 0xdeadbeef;

	cr_assert_eq(vioapic_mmio_write(&IO, VIOAPIC_IOREGSEL, 4, sel, t_send, &sent), 0);
	cr_assert_eq(vioapic_mmio_read(&IO, VIOAPIC_IOWIN, 4, &v), 0);
	return v;
}

static void t_set(uint8_t sel, uint32_t v)
{
	cr_assert_eq(vioapic_mmio_write(&IO, VIOAPIC_IOREGSEL, 4, sel, t_send, &sent), 0);
	cr_assert_eq(vioapic_mmio_write(&IO, VIOAPIC_IOWIN, 4, v, t_send, &sent), 0);
}

static void t_rte(unsigned pin, uint32_t lo, uint32_t hi)
{
	t_set((uint8_t)(0x11 + 2 * pin), hi);
	t_set((uint8_t)(0x10 + 2 * pin), lo);
}

static uint32_t t_lo(unsigned pin)
{
	return t_reg((uint8_t)(0x10 + 2 * pin));
}

static void line(unsigned pin, bool level)
{
	vioapic_set_line(&IO, pin, level, t_send, &sent);
}

static void eoi(uint8_t vec)
{
	vioapic_eoi(&IO, vec, t_send, &sent);
}

static void t_up(void)
{
	memset(&sent, 0, sizeof(sent));
	vioapic_reset(&IO, 2);
}

#define RTE_LEVEL	0x8000u
#define RTE_MASKED	0x10000u
#define RTE_LOGICAL	0x800u
#define RTE_REMOTE	0x4000u

Test(vioapic, reset_and_identity_registers)
{
	t_up();
	cr_assert_eq(t_reg(0x00), 0x02000000u);
	cr_assert_eq(t_reg(0x01), 0x00170020u);
	cr_assert_eq(t_reg(0x02), 0x02000000u);
	for (unsigned p = 0; p < VIOAPIC_PINS; p++) {
		cr_assert_eq(t_reg((uint8_t)(0x10 + 2 * p)), RTE_MASKED, "pin %u", p);
		cr_assert_eq(t_reg((uint8_t)(0x11 + 2 * p)), 0, "pin %u", p);
	}
	t_set(0x00, 0xffffffffu);			/* ID: bits 27:24 */
	cr_assert_eq(t_reg(0x00), 0x0f000000u);
	cr_assert_eq(t_reg(0x02), 0x0f000000u);		/* arbitration follows */
	t_set(0x01, 0);					/* read-only */
	t_set(0x02, 0);
	cr_assert_eq(t_reg(0x01), 0x00170020u);
	cr_assert_eq(t_reg(0x02), 0x0f000000u);
	t_set(0x00, 0x05000000u);
	cr_assert_eq(t_reg(0x00), 0x05000000u);
	vioapic_reset(&IO, 0x13);			/* 4-bit ID */
	cr_assert_eq(t_reg(0x00), 0x03000000u);
	cr_assert_eq(sent.n, 0);
}

Test(vioapic, register_select_and_shapes)
{
	uint32_t v;

	t_up();
	cr_assert_eq(vioapic_mmio_write(&IO, VIOAPIC_IOREGSEL, 1, 0x3f, t_send, &sent), 0);
	cr_assert_eq(vioapic_mmio_read(&IO, VIOAPIC_IOREGSEL, 4, &v), 0);
	cr_assert_eq(v, 0x3f);
	cr_assert_eq(vioapic_mmio_read(&IO, VIOAPIC_IOWIN, 4, &v), 0);
	cr_assert_eq(v, 0);				/* pin 23 high half */
	cr_assert_eq(vioapic_mmio_read(&IO, VIOAPIC_IOWIN, 2, &v), -EINVAL);
	cr_assert_eq(vioapic_mmio_write(&IO, VIOAPIC_IOWIN, 1, 0, t_send, &sent), -EINVAL);
	cr_assert_eq(vioapic_mmio_write(&IO, VIOAPIC_EOI, 2, 0x30, t_send, &sent), -EINVAL);
	cr_assert_eq(vioapic_mmio_read(&IO, VIOAPIC_IOREGSEL, 3, &v), -EINVAL);
	cr_assert_eq(vioapic_mmio_read(&IO, 0x20, 4, &v), 0);	/* reserved */
	cr_assert_eq(v, 0);
	cr_assert_eq(vioapic_mmio_read(&IO, VIOAPIC_EOI, 4, &v), 0);	/* write-only */
	cr_assert_eq(v, 0);
	cr_assert_eq(vioapic_mmio_write(&IO, 0x30, 4, 0xffffffffu, t_send, &sent), 0);
	/* Selectors past the table read 0 and ignore writes. */
	static const uint8_t bad[] = { 0x03, 0x0f, 0x40, 0x41, 0x80, 0xff };

	for (size_t i = 0; i < sizeof(bad); i++) {
		t_set(bad[i], 0xffffffffu);
		cr_assert_eq(t_reg(bad[i]), 0, "sel %#x", bad[i]);
	}
	cr_assert_eq(t_reg(0x00), 0x02000000u);
	cr_assert_eq(sent.n, 0);
}

Test(vioapic, rte_masks_and_read_only_bits)
{
	t_up();
	t_set(0x10, 0xffffffffu);
	cr_assert_eq(t_reg(0x10), 0x0001afffu);		/* no status, no remote IRR */
	t_set(0x11, 0xffffffffu);
	cr_assert_eq(t_reg(0x11), 0xff000000u);
	t_set(0x10 + 2 * 23, 0x1234 | RTE_MASKED);	/* last pin */
	cr_assert_eq(t_lo(23), 0x0234 | RTE_MASKED);	/* bit 12 dropped */

	/* Remote IRR survives a write that clears it. */
	t_rte(5, 0x30 | RTE_LEVEL, 0x01000000);
	line(5, true);
	cr_assert_eq(sent.n, 1);
	cr_assert_eq(t_lo(5), 0x30 | RTE_LEVEL | RTE_REMOTE);
	t_set(0x10 + 10, 0x30 | RTE_LEVEL);
	cr_assert_eq(t_lo(5), 0x30 | RTE_LEVEL | RTE_REMOTE);
	cr_assert_eq(sent.n, 1);
	/* Switching to edge drops it. */
	t_set(0x10 + 10, 0x30);
	cr_assert_eq(t_lo(5), 0x30);
}

Test(vioapic, edge_delivery)
{
	const struct apic_msg *m;

	t_up();
	t_rte(4, 0x34, 0x01000000);
	line(4, true);
	cr_assert_eq(sent.n, 1);
	m = &sent.m[0];
	cr_assert_eq(m->dest, 1);
	cr_assert_eq(m->vector, 0x34);
	cr_assert_eq(m->dm, APIC_DM_FIXED);
	cr_assert_eq(m->shorthand, APIC_SH_NONE);
	cr_assert(!m->logical && !m->level && m->assert && !m->x2apic);
	line(4, true);					/* no edge */
	cr_assert_eq(sent.n, 1);
	line(4, false);
	cr_assert_eq(sent.n, 1);
	line(4, true);
	cr_assert_eq(sent.n, 2);
	line(4, false);
	eoi(0x34);					/* nothing to do for edge */
	cr_assert_eq(sent.n, 2);
	cr_assert_eq(t_lo(4), 0x34);

	/* An edge on a masked pin is lost, also after unmasking. */
	t_rte(4, 0x34 | RTE_MASKED, 0x01000000);
	line(4, true);
	t_rte(4, 0x34, 0x01000000);
	cr_assert_eq(sent.n, 2);
	line(4, false);
	line(4, true);
	cr_assert_eq(sent.n, 3);
}

Test(vioapic, message_fields)
{
	const struct apic_msg *m;

	t_up();
	t_rte(7, 0x45 | (APIC_DM_LOWPRI << 8) | RTE_LOGICAL | RTE_LEVEL | 0x2000, 0xa5000000);
	line(7, true);
	cr_assert_eq(sent.n, 1);			/* active-low: line is logical */
	m = &sent.m[0];
	cr_assert_eq(m->dest, 0xa5);
	cr_assert_eq(m->vector, 0x45);
	cr_assert_eq(m->dm, APIC_DM_LOWPRI);
	cr_assert(m->logical && m->level && m->assert);
	cr_assert_eq(t_lo(7), 0x45 | 0x100 | RTE_LOGICAL | RTE_LEVEL | 0x2000 | RTE_REMOTE);
}

Test(vioapic, level_remote_irr_and_eoi)
{
	t_up();
	t_rte(9, 0x39 | RTE_LEVEL | RTE_LOGICAL, 0x0f000000);
	line(9, true);
	cr_assert_eq(sent.n, 1);
	cr_assert(sent.m[0].level);
	cr_assert_eq(t_lo(9), 0x39 | RTE_LEVEL | RTE_LOGICAL | RTE_REMOTE);
	line(9, true);					/* in service: held */
	cr_assert_eq(sent.n, 1);
	eoi(0x38);					/* another vector */
	cr_assert_eq(sent.n, 1);
	cr_assert(t_lo(9) & RTE_REMOTE);
	eoi(0x39);					/* still asserted: again */
	cr_assert_eq(sent.n, 2);
	cr_assert(t_lo(9) & RTE_REMOTE);
	line(9, false);
	eoi(0x39);
	cr_assert_eq(sent.n, 2);
	cr_assert_eq(t_lo(9) & RTE_REMOTE, 0);
	line(9, true);
	cr_assert_eq(sent.n, 3);
	/* The EOI register does the same. */
	cr_assert_eq(vioapic_mmio_write(&IO, VIOAPIC_EOI, 4, 0x39, t_send, &sent), 0);
	cr_assert_eq(sent.n, 4);
	line(9, false);
	cr_assert_eq(vioapic_mmio_write(&IO, VIOAPIC_EOI, 4, 0x139, t_send, &sent), 0);
	cr_assert_eq(sent.n, 4);
	cr_assert_eq(t_lo(9) & RTE_REMOTE, 0);
}

Test(vioapic, eoi_delivers_once_per_pin)
{
	t_up();
	t_rte(10, 0x50 | RTE_LEVEL, 0x01000000);
	t_rte(11, 0x50 | RTE_LEVEL, 0x02000000);
	t_rte(12, 0x51 | RTE_LEVEL, 0x02000000);
	line(10, true);
	line(11, true);
	line(12, true);
	cr_assert_eq(sent.n, 3);
	eoi(0x50);
	cr_assert_eq(sent.n, 5);
	cr_assert_eq(sent.m[3].dest, 1);
	cr_assert_eq(sent.m[4].dest, 2);
	cr_assert_eq(sent.m[4].vector, 0x50);
	cr_assert(t_lo(12) & RTE_REMOTE);
}

Test(vioapic, masked_level_and_unmask)
{
	t_up();
	t_rte(3, 0x33 | RTE_LEVEL | RTE_MASKED, 0);
	line(3, true);
	cr_assert_eq(sent.n, 0);
	cr_assert_eq(t_lo(3) & RTE_REMOTE, 0);
	t_set(0x10 + 6, 0x33 | RTE_LEVEL);		/* unmask while asserted */
	cr_assert_eq(sent.n, 1);
	cr_assert(t_lo(3) & RTE_REMOTE);
	t_set(0x10 + 6, 0x33 | RTE_LEVEL | RTE_MASKED);
	t_set(0x10 + 6, 0x33 | RTE_LEVEL);		/* remote IRR set: held */
	cr_assert_eq(sent.n, 1);
	t_set(0x10 + 6, 0x33 | RTE_LEVEL | RTE_MASKED);
	eoi(0x33);					/* masked: not re-sent */
	cr_assert_eq(sent.n, 1);
	cr_assert_eq(t_lo(3) & RTE_REMOTE, 0);
	line(3, false);
	t_set(0x10 + 6, 0x33 | RTE_LEVEL);		/* de-asserted: nothing */
	cr_assert_eq(sent.n, 1);
	/* Switching an asserted edge pin to level delivers. */
	t_rte(6, 0x36, 0);
	line(6, true);
	cr_assert_eq(sent.n, 2);
	t_set(0x10 + 12, 0x36 | RTE_LEVEL);
	cr_assert_eq(sent.n, 3);
	cr_assert(sent.m[2].level);
}

Test(vioapic, level_nmi_is_edge)
{
	t_up();
	t_rte(1, (APIC_DM_NMI << 8) | RTE_LEVEL, 0);
	line(1, true);
	line(1, true);
	cr_assert_eq(sent.n, 1);
	cr_assert_eq(sent.m[0].dm, APIC_DM_NMI);
	cr_assert_eq(t_lo(1) & RTE_REMOTE, 0);
	line(1, false);
	line(1, true);
	cr_assert_eq(sent.n, 2);
}

Test(vioapic, pins_out_of_range_ignored)
{
	t_up();
	for (unsigned p = 0; p < VIOAPIC_PINS; p++)
		t_rte(p, 0x20 + p, 0);
	line(24, true);
	line(1000, true);
	cr_assert_eq(sent.n, 0);
	cr_assert_eq(IO.lines, 0);
	line(23, true);
	cr_assert_eq(sent.n, 1);
	cr_assert_eq(sent.m[0].vector, 0x20 + 23);
}

/* ---- migration record ---- */

static void t_busy(void)
{
	t_up();
	t_set(0x00, 0x07000000);
	t_rte(0, 0x30, 0x01000000);
	t_rte(9, 0x39 | RTE_LEVEL | RTE_LOGICAL, 0x0f000000);
	t_rte(23, 0x47 | RTE_MASKED | 0x2000, 0xff000000);
	line(9, true);
	line(23, true);
	cr_assert_eq(vioapic_mmio_write(&IO, VIOAPIC_IOREGSEL, 4, 0x13, t_send, &sent), 0);
}

Test(vioapic, save_load_round_trip)
{
	uint8_t rec[VIOAPIC_SAVE_SIZE];
	struct vioapic out;

	t_busy();
	cr_assert_eq(vioapic_save(&IO, rec, sizeof(rec) - 1), -ENOSPC);
	cr_assert_eq(vioapic_save(&IO, rec, sizeof(rec)), VIOAPIC_SAVE_SIZE);
	cr_assert_eq(rec[0], VIOAPIC_SAVE_VERSION);
	memset(&out, 0xa5, sizeof(out));
	cr_assert_eq(vioapic_load(&out, rec, sizeof(rec)), 0);
	cr_assert_eq(memcmp(out.rte, IO.rte, sizeof(IO.rte)), 0);
	cr_assert_eq(out.lines, IO.lines);
	cr_assert_eq(out.id, 7);
	cr_assert_eq(out.regsel, 0x13);
	/* The copy carries on: EOI re-delivers the held level pin. */
	IO = out;
	sent.n = 0;
	eoi(0x39);
	cr_assert_eq(sent.n, 1);
	cr_assert_eq(sent.m[0].dest, 0x0f);
}

/* EOI only acts on pins in service: an asserted level pin without remote
 * IRR (as a record may carry) is not sent by an EOI of its vector. */
Test(vioapic, eoi_ignores_pins_not_in_service)
{
	uint8_t rec[VIOAPIC_SAVE_SIZE];

	t_up();
	t_rte(2, 0x32 | RTE_LEVEL, 0);
	cr_assert_eq(vioapic_save(&IO, rec, sizeof(rec)), VIOAPIC_SAVE_SIZE);
	st_le32(rec + 4, 1u << 2);			/* line asserted, no remote IRR */
	cr_assert_eq(vioapic_load(&IO, rec, sizeof(rec)), 0);
	eoi(0x32);
	cr_assert_eq(sent.n, 0);
	line(2, true);					/* the next line event delivers */
	cr_assert_eq(sent.n, 1);
}

static void t_rejected(const uint8_t *good, unsigned off, unsigned width, uint64_t val,
		       const char *what)
{
	uint8_t r[VIOAPIC_SAVE_SIZE];
	struct vioapic out, keep;

	memcpy(r, good, sizeof(r));
	if (width == 1)
		r[off] = (uint8_t)val;
	else if (width == 4)
		st_le32(r + off, (uint32_t)val);
	else
		st_le64(r + off, val);
	memset(&out, 0x5a, sizeof(out));
	memcpy(&keep, &out, sizeof(keep));
	cr_assert_eq(vioapic_load(&out, r, sizeof(r)), -EINVAL, "%s", what);
	cr_assert_eq(memcmp(&out, &keep, sizeof(out)), 0, "%s touched *io", what);
}

Test(vioapic, load_rejects_corruption)
{
	uint8_t good[VIOAPIC_SAVE_SIZE + 1];
	struct vioapic out;

	t_busy();
	cr_assert_eq(vioapic_save(&IO, good, sizeof(good)), VIOAPIC_SAVE_SIZE);
	cr_assert_eq(vioapic_load(&out, good, VIOAPIC_SAVE_SIZE), 0);
	t_rejected(good, 0, 1, 2, "version");
	t_rejected(good, 1, 1, 0x10, "id");
	t_rejected(good, 3, 1, 1, "pad");
	t_rejected(good, 4, 4, 1u << 24, "line 24");
	t_rejected(good, 8, 8, 0x30 | (1ull << 17), "rte reserved bit 17");
	t_rejected(good, 8, 8, 0x30 | (1ull << 48), "rte reserved bit 48");
	t_rejected(good, 8, 8, 0x30 | (1ull << 12), "rte status");
	t_rejected(good, 8, 8, 0x30 | RTE_REMOTE, "remote irr on edge");
	t_rejected(good, 8 + 8 * 23, 8, 0x47 | RTE_LEVEL | RTE_REMOTE | (APIC_DM_NMI << 8),
		   "remote irr on level nmi");
	cr_assert_eq(vioapic_load(&out, good, VIOAPIC_SAVE_SIZE - 1), -EINVAL);
	cr_assert_eq(vioapic_load(&out, good, VIOAPIC_SAVE_SIZE + 1), -EINVAL);
}

/* MSIs (SDM 11.11): the fields land where the APIC bus expects them. */
Test(vioapic, msi_decode)
{
	struct apic_msg m;

	cr_assert(apic_msg_from_msi(0xfee03000, 0x0041, &m));
	cr_assert_eq(m.dest, 3);
	cr_assert_eq(m.vector, 0x41);
	cr_assert_eq(m.dm, APIC_DM_FIXED);
	cr_assert(!m.logical && !m.level && m.assert);
	cr_assert(apic_msg_from_msi(0xfee0f00c, 0xc122, &m));	/* logical, lowpri, level */
	cr_assert_eq(m.dest, 0x0f);
	cr_assert(m.logical && m.level && m.assert);
	cr_assert_eq(m.dm, APIC_DM_LOWPRI);
	cr_assert(apic_msg_from_msi(0xfee00000, 0x0400, &m));	/* NMI */
	cr_assert_eq(m.dm, APIC_DM_NMI);
	cr_assert(!apic_msg_from_msi(0xfed00000, 0x41, &m), "not the interrupt window");
	cr_assert(!apic_msg_from_msi(0x1fee00000ull, 0x41, &m), "above 4 GiB");
	cr_assert(!apic_msg_from_msi(0xfee00000, 0x0600, &m), "SIPI by MSI");
}
