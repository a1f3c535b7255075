/*
 * libFuzzer target for the local APIC and IOAPIC models (make fuzz-apic).
 *
 * Input: a sequence of 8-byte operations on one vlapic and one vioapic,
 *	byte 0		operation (modulo FZ_NR_OPS)
 *	bytes 1-2	register offset, MSR or selector
 *	bytes 3-6	value (little-endian)
 *	byte 7		guest TSC advance (a large jump when 0xff)
 * plus, when the input starts with "LD", a raw LAPIC and IOAPIC record
 * fed to the loaders first.  After every operation the invariants that
 * hold for any guest behaviour are checked: no vector below 16 anywhere,
 * a software-disabled APIC keeps its LVTs masked, the pending vector
 * beats the PPR, the current count never exceeds the initial count, and
 * every reachable state saves to a record its own loader accepts and
 * restores field by field.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/vioapic.h"
#include "kernel/devices/model/irqrec.h"
#include "kernel/devices/model/vlapic.h"
#include "kernel/lib/byteorder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_check(bool cond)
{
	if (!cond)
		__builtin_trap();
}

static unsigned fz_sent;

static void fz_send(void *ctx, const struct apic_msg *m)
{
	(void)ctx;
	fz_check(m->dm <= 7);
	fz_sent++;
}

static bool fz_bit(const uint32_t *r, unsigned v)
{
	return r[v >> 5] & (1u << (v & 31));
}

static void fz_check_lapic(struct vlapic *l, uint64_t now)
{
	uint8_t rec[VLAPIC_SAVE_SIZE];
	struct vlapic c;
	int v = vlapic_pending(l);
	uint32_t ccr;

	fz_check(!(l->irr[0] & 0xffff) && !(l->isr[0] & 0xffff) && !(l->tmr[0] & 0xffff));
	if (vlapic_hw_enabled(l) && !(l->svr & VLAPIC_SVR_ENABLE))
		for (int i = 0; i < VLAPIC_NR_LVT; i++)
			fz_check(l->lvt[i] & VLAPIC_LVT_MASKED);
	if (v >= 0)
		fz_check(v >= 16 && v <= 255 && fz_bit(l->irr, (unsigned)v) &&
			 ((unsigned)v & 0xf0) > (vlapic_ppr(l) & 0xf0u));
	if (vlapic_hw_enabled(l) && !vlapic_x2apic_mode(l) &&
	    vlapic_mmio_read(l, VLAPIC_TIMER_CCR, &ccr, now) == 0)
		fz_check(ccr <= l->timer_icr);
	fz_check(vlapic_save(l, rec, sizeof(rec), now) == VLAPIC_SAVE_SIZE);
	fz_check(vlapic_load(&c, rec, sizeof(rec), now) == 0);
	fz_check(c.apic_base == l->apic_base && c.id_reg == l->id_reg && c.tpr == l->tpr &&
		 c.ldr == l->ldr && c.dfr == l->dfr && c.svr == l->svr && c.esr == l->esr &&
		 c.esr_pending == l->esr_pending && c.icr_lo == l->icr_lo &&
		 c.icr_hi == l->icr_hi && c.timer_icr == l->timer_icr &&
		 c.timer_dcr == l->timer_dcr && c.lint_level == l->lint_level &&
		 c.apic_id == l->apic_id);
	fz_check(!memcmp(c.lvt, l->lvt, sizeof(c.lvt)) && !memcmp(c.irr, l->irr, sizeof(c.irr)) &&
		 !memcmp(c.isr, l->isr, sizeof(c.isr)) && !memcmp(c.tmr, l->tmr, sizeof(c.tmr)));
	fz_check((c.deadline != 0) == (l->deadline != 0));
	if (l->deadline > now)
		fz_check(c.deadline == l->deadline);
}

static void fz_check_ioapic(const struct vioapic *io)
{
	uint8_t rec[VIOAPIC_SAVE_SIZE];
	struct vioapic c;

	fz_check(!(io->lines >> VIOAPIC_PINS) && io->id < 16);
	fz_check(vioapic_save(io, rec, sizeof(rec)) == VIOAPIC_SAVE_SIZE);
	fz_check(vioapic_load(&c, rec, sizeof(rec)) == 0);
	fz_check(!memcmp(c.rte, io->rte, sizeof(c.rte)) && c.lines == io->lines &&
		 c.id == io->id && c.regsel == io->regsel);
}

/* IA32_APIC_BASE values worth trying: the legal and illegal flag sets,
 * sometimes with stray bits. */
static uint64_t fz_base(uint32_t v)
{
	uint64_t b = VLAPIC_BASE_DEFAULT | (v & (VLAPIC_BASE_BSP | VLAPIC_BASE_EXTD |
						 VLAPIC_BASE_EN));

	if (v & 1)
		b ^= (uint64_t)(v >> 16) << (v >> 26);
	return b;
}

static void fz_msg(struct apic_msg *m, const uint8_t *op, uint32_t v)
{
	memset(m, 0, sizeof(*m));
	m->dest = op[2] & 1 ? v : v & 0xff;
	m->vector = op[1];
	m->dm = (op[2] >> 1) & 7;
	m->shorthand = (op[2] >> 4) & 3;
	m->logical = op[2] & 0x40;
	m->level = op[2] & 0x80;
	m->assert = v & 0x100;
	m->x2apic = op[2] & 1;
	m->src_id = v >> 8;
}

enum { FZ_NR_OPS = 14 };

static void fz_op(struct vlapic *l, struct vioapic *io, const uint8_t *op, uint64_t now)
{
	uint32_t v = ld_le32(op + 3), sel = ld_le16(op + 1), r32;
	struct vlapic_effects fx;
	struct apic_msg m;
	uint64_t r64;
	int vec;

	switch (op[0] % FZ_NR_OPS) {
	case 0:
		if (vlapic_mmio_write(l, sel & 0xfff, v, now, &fx) == 0 && fx.eoi_level)
			vioapic_eoi(io, fx.eoi_vector, fz_send, NULL);
		break;
	case 1:
		vlapic_mmio_read(l, sel & 0xfff, &r32, now);
		break;
	case 2:
		if ((sel & 3) == 0)
			vlapic_msr_write(l, MSR_IA32_APIC_BASE, fz_base(v), now, &fx);
		else if ((sel & 3) == 1)
			vlapic_msr_write(l, MSR_IA32_TSC_DEADLINE, v ? now + (v >> 8) : 0, now, &fx);
		else
			vlapic_msr_write(l, 0x800 + (sel >> 8),
					 v | (sel & 4 ? (uint64_t)v << 32 : 0), now, &fx);
		break;
	case 3:
		vlapic_msr_read(l, (sel & 1) ? MSR_IA32_TSC_DEADLINE : 0x800 + (sel >> 8), &r64,
				now);
		break;
	case 4:
		fz_msg(&m, op, v);
		if (vlapic_match(l, &m))
			vlapic_accept(l, &m);
		break;
	case 5:
		vlapic_lint(l, op[1] & 3, op[2] & 1);
		break;
	case 6:				/* the CPU takes what is pending */
		vec = vlapic_pending(l);
		vlapic_ack(l, vec >= 0 ? vec : op[1]);
		break;
	case 7:
		vlapic_timer_expire(l, now);
		break;
	case 8:
		vlapic_init_signal(l);
		break;
	case 9:
		vioapic_mmio_write(io, sel & 0x7f, 1 << (op[1] % 3), v, fz_send, NULL);
		break;
	case 10:
		vioapic_mmio_read(io, sel & 0x7f, 1 << (op[1] % 3), &r32);
		break;
	case 11:
		vioapic_set_line(io, op[1] % 26, op[2] & 1, fz_send, NULL);
		break;
	case 12:
		vioapic_eoi(io, op[1], fz_send, NULL);
		break;
	default:			/* a register the driver writes a lot */
		vlapic_mmio_write(l, VLAPIC_LVT_TIMER + 16 * (op[1] % 6), v, now, &fx);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vlapic l;
	struct vioapic io;
	uint64_t now = 1000;

	vlapic_reset(&l, data && size ? data[0] : 0, true);
	vioapic_reset(&io, 1);
	if (size >= 2 + VLAPIC_SAVE_SIZE + VIOAPIC_SAVE_SIZE && data[0] == 'L' && data[1] == 'D') {
		vlapic_load(&l, data + 2, VLAPIC_SAVE_SIZE, now);
		vioapic_load(&io, data + 2 + VLAPIC_SAVE_SIZE, VIOAPIC_SAVE_SIZE);
		data += 2 + VLAPIC_SAVE_SIZE + VIOAPIC_SAVE_SIZE;
		size -= 2 + VLAPIC_SAVE_SIZE + VIOAPIC_SAVE_SIZE;
	}
	/* "IR": the migration records around them (irqrec.c), hostile bytes
	 * straight in; whatever decodes must encode to the same bytes. */
	if (size >= 2 + IRQREC_LAPIC_LEN + IRQREC_CHIP_LEN && data[0] == 'I' && data[1] == 'R') {
		static struct irqrec_lapic r;
		static struct irqrec_chip c;
		uint8_t again[IRQREC_CHIP_LEN];

		if (irqrec_lapic_decode(data + 2, IRQREC_LAPIC_LEN, now, 0, &r) == 0) {
			fz_check(irqrec_lapic_encode(&r, now, again, sizeof(again)) == 0);
			l = r.lapic;
		}
		if (irqrec_chip_decode(data + 2 + IRQREC_LAPIC_LEN, IRQREC_CHIP_LEN, &c) == 0) {
			fz_check(irqrec_chip_encode(&c, again, sizeof(again)) == 0);
			fz_check(memcmp(again, data + 2 + IRQREC_LAPIC_LEN, 4) == 0);
			io = c.ioapic;
		}
		data += 2 + IRQREC_LAPIC_LEN + IRQREC_CHIP_LEN;
		size -= 2 + IRQREC_LAPIC_LEN + IRQREC_CHIP_LEN;
	}
	fz_check_lapic(&l, now);
	for (; size >= 8; data += 8, size -= 8) {
		now += data[7] == 0xff ? ld_le32(data + 3) * 1000ull : data[7];
		fz_op(&l, &io, data, now);
		fz_check_lapic(&l, now);
		fz_check_ioapic(&io);
	}
	return 0;
}
