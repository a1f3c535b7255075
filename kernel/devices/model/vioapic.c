/*
 * Virtual IOAPIC (Intel 82093AA datasheet, version 0x20 with the EOI
 * register).  Pure; see vioapic.h.
 */
#include <errno.h>
#include <string.h>

#include "kernel/devices/model/vioapic.h"
#include "kernel/lib/byteorder.h"

/* Writable RTE bits (datasheet 3.2.4): vector, delivery mode, destination
 * mode, polarity, trigger mode, mask, destination 63:56.  Delivery status
 * (12) and remote IRR (14) are read-only; 55:17 reserved. */
#define VIOAPIC_RTE_WMASK	(0xff00000000000000ull | 0x1afffull)
#define VIOAPIC_RTE_DM(r)	((uint8_t)(((r) >> 8) & 7))

void vioapic_reset(struct vioapic *io, uint8_t id)
{
	memset(io, 0, sizeof(*io));
	io->id = id & 0xf;
	for (unsigned i = 0; i < VIOAPIC_PINS; i++)
		io->rte[i] = VIOAPIC_RTE_MASKED;
}

/* Level semantics (remote IRR, re-delivery on EOI) apply to fixed and
 * lowest-priority entries; a level NMI/INIT/ExtINT entry would never see
 * an EOI, so it fires on the rising edge like an edge entry. */
static bool vioapic_is_level(uint64_t rte)
{
	uint8_t dm = VIOAPIC_RTE_DM(rte);

	return (rte & VIOAPIC_RTE_LEVEL) && (dm == APIC_DM_FIXED || dm == APIC_DM_LOWPRI);
}

static void vioapic_send(const struct vioapic *io, unsigned pin, vioapic_send_fn send,
			 void *ctx)
{
	uint64_t r = io->rte[pin];
	struct apic_msg m = {
		.dest = (uint32_t)(r >> 56),
		.vector = (uint8_t)r,
		.dm = VIOAPIC_RTE_DM(r),
		.shorthand = APIC_SH_NONE,
		.logical = (r & VIOAPIC_RTE_DEST_LOGICAL) != 0,
		.level = (r & VIOAPIC_RTE_LEVEL) != 0,
		.assert = true,
	};

	send(ctx, &m);
}

/* Deliver a level pin that is asserted, unmasked and not in service. */
static void vioapic_service_level(struct vioapic *io, unsigned pin, vioapic_send_fn send,
				  void *ctx)
{
	uint64_t r = io->rte[pin];

	if ((r & (VIOAPIC_RTE_MASKED | VIOAPIC_RTE_REMOTE_IRR)) || !vioapic_is_level(r) ||
	    !(io->lines & (1u << pin)))
		return;
	io->rte[pin] |= VIOAPIC_RTE_REMOTE_IRR;
	vioapic_send(io, pin, send, ctx);
}

void vioapic_set_line(struct vioapic *io, unsigned pin, bool level, vioapic_send_fn send,
		      void *ctx)
{
	bool was;

	if (pin >= VIOAPIC_PINS)
		return;
	was = io->lines & (1u << pin);
	if (level)
		io->lines |= 1u << pin;
	else
		io->lines &= ~(1u << pin);
	if (vioapic_is_level(io->rte[pin])) {
		vioapic_service_level(io, pin, send, ctx);
		return;
	}
	/* Edge: a rising edge on a masked pin is lost (datasheet 3.2.4). */
	if (level && !was && !(io->rte[pin] & VIOAPIC_RTE_MASKED))
		vioapic_send(io, pin, send, ctx);
}

void vioapic_eoi(struct vioapic *io, uint8_t vector, vioapic_send_fn send, void *ctx)
{
	for (unsigned i = 0; i < VIOAPIC_PINS; i++) {
		uint64_t r = io->rte[i];

		if ((uint8_t)r != vector || !(r & VIOAPIC_RTE_REMOTE_IRR))
			continue;
		io->rte[i] &= ~VIOAPIC_RTE_REMOTE_IRR;
		vioapic_service_level(io, i, send, ctx);
	}
}

static uint32_t vioapic_reg_read(const struct vioapic *io)
{
	unsigned sel = io->regsel;

	if (sel >= VIOAPIC_REG_RTE0 && sel < VIOAPIC_REG_RTE0 + 2 * VIOAPIC_PINS) {
		uint64_t r = io->rte[(sel - VIOAPIC_REG_RTE0) / 2];

		return sel & 1 ? (uint32_t)(r >> 32) : (uint32_t)r;
	}
	switch (sel) {
	case VIOAPIC_REG_ID:
	case VIOAPIC_REG_ARB:	/* loaded from the ID (datasheet 3.2.3) */
		return (uint32_t)io->id << 24;
	case VIOAPIC_REG_VER:
		return VIOAPIC_VERSION;
	}
	return 0;
}

/* An RTE half written through IOWIN; a level pin that becomes deliverable
 * (unmasked while asserted, or switched to level) is delivered.  Switching
 * to edge drops a stale remote IRR, as KVM does. */
static void vioapic_rte_write(struct vioapic *io, unsigned pin, bool high, uint32_t val,
			      vioapic_send_fn send, void *ctx)
{
	uint64_t r = io->rte[pin];

	if (high) {
		r = (r & 0xffffffffull) | (((uint64_t)val << 32) & VIOAPIC_RTE_WMASK);
	} else {
		r = (r & (0xffffffff00000000ull | VIOAPIC_RTE_REMOTE_IRR)) |
		    (val & VIOAPIC_RTE_WMASK);
		if (!vioapic_is_level(r))
			r &= ~VIOAPIC_RTE_REMOTE_IRR;
	}
	io->rte[pin] = r;
	vioapic_service_level(io, pin, send, ctx);
}

static void vioapic_reg_write(struct vioapic *io, uint32_t val, vioapic_send_fn send,
			      void *ctx)
{
	unsigned sel = io->regsel;

	if (sel >= VIOAPIC_REG_RTE0 && sel < VIOAPIC_REG_RTE0 + 2 * VIOAPIC_PINS)
		vioapic_rte_write(io, (sel - VIOAPIC_REG_RTE0) / 2, sel & 1, val, send, ctx);
	else if (sel == VIOAPIC_REG_ID)
		io->id = (val >> 24) & 0xf;
	/* version, arbitration: read-only */
}

static int vioapic_check(uint32_t off, int size)
{
	if (off == VIOAPIC_IOREGSEL)
		return size == 1 || size == 2 || size == 4 ? 0 : -EINVAL;
	if (off == VIOAPIC_IOWIN || off == VIOAPIC_EOI)
		return size == 4 ? 0 : -EINVAL;
	return size == 1 || size == 2 || size == 4 ? 1 : -EINVAL;
}

int vioapic_mmio_read(struct vioapic *io, uint32_t off, int size, uint32_t *val)
{
	int rc = vioapic_check(off, size);

	*val = 0;
	if (rc < 0)
		return rc;
	if (off == VIOAPIC_IOREGSEL)
		*val = io->regsel;
	else if (off == VIOAPIC_IOWIN)
		*val = vioapic_reg_read(io);
	return 0;		/* EOI is write-only, the rest reserved */
}

int vioapic_mmio_write(struct vioapic *io, uint32_t off, int size, uint32_t val,
		       vioapic_send_fn send, void *ctx)
{
	int rc = vioapic_check(off, size);

	if (rc < 0)
		return rc;
	if (off == VIOAPIC_IOREGSEL)
		io->regsel = (uint8_t)val;
	else if (off == VIOAPIC_IOWIN)
		vioapic_reg_write(io, val, send, ctx);
	else if (off == VIOAPIC_EOI)
		vioapic_eoi(io, (uint8_t)val, send, ctx);
	return 0;
}

/* Layout (little-endian): 0 version, 1 id, 2 regsel, 3 zero,
 * 4 line levels (u32), 8 rte[24] (u64 each). */
int vioapic_save(const struct vioapic *io, uint8_t *buf, size_t len)
{
	if (len < VIOAPIC_SAVE_SIZE)
		return -ENOSPC;
	buf[0] = VIOAPIC_SAVE_VERSION;
	buf[1] = io->id;
	buf[2] = io->regsel;
	buf[3] = 0;
	st_le32(buf + 4, io->lines);
	for (unsigned i = 0; i < VIOAPIC_PINS; i++)
		st_le64(buf + 8 + 8 * i, io->rte[i]);
	return VIOAPIC_SAVE_SIZE;
}

/* Only writable bits, plus remote IRR on a level entry. */
static bool vioapic_valid_rte(uint64_t r)
{
	if (r & ~(VIOAPIC_RTE_WMASK | VIOAPIC_RTE_REMOTE_IRR))
		return false;
	return !(r & VIOAPIC_RTE_REMOTE_IRR) || vioapic_is_level(r);
}

int vioapic_load(struct vioapic *io, const uint8_t *buf, size_t len)
{
	struct vioapic c;

	if (len != VIOAPIC_SAVE_SIZE || buf[0] != VIOAPIC_SAVE_VERSION || buf[1] > 0xf ||
	    buf[3])
		return -EINVAL;
	memset(&c, 0, sizeof(c));
	c.id = buf[1];
	c.regsel = buf[2];
	c.lines = ld_le32(buf + 4);
	if (c.lines >> VIOAPIC_PINS)
		return -EINVAL;
	for (unsigned i = 0; i < VIOAPIC_PINS; i++) {
		c.rte[i] = ld_le64(buf + 8 + 8 * i);
		if (!vioapic_valid_rte(c.rte[i]))
			return -EINVAL;
	}
	*io = c;
	return 0;
}
