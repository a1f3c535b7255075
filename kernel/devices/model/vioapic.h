/*
 * A virtual IOAPIC with 24 pins (Intel 82093AA datasheet), version 0x20
 * like QEMU's, which adds the EOI register at 0x40.
 *
 * Pure: the glue passes a send callback that routes each message to the
 * local APICs.  Lines are given in the "asserted" sense: `level` true
 * means the device asserts its interrupt.  The RTE polarity bit (13) is
 * stored and read back but does not invert the line: as in KVM, the line
 * is the logical level, and the board wiring the polarity describes is
 * the glue's concern (an active-low PCI INTx is passed as asserted).
 */
#ifndef TERN_DEVICES_MODEL_VIOAPIC_H
#define TERN_DEVICES_MODEL_VIOAPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kernel/devices/model/apic_msg.h"

#define VIOAPIC_PINS		24
#define VIOAPIC_VERSION		0x00170020u	/* 24 entries, version 0x20 */

/* MMIO offsets in the IOAPIC page. */
#define VIOAPIC_IOREGSEL	0x00
#define VIOAPIC_IOWIN		0x10
#define VIOAPIC_EOI		0x40

/* Indirect registers (IOREGSEL values). */
#define VIOAPIC_REG_ID		0x00
#define VIOAPIC_REG_VER		0x01
#define VIOAPIC_REG_ARB		0x02
#define VIOAPIC_REG_RTE0	0x10	/* pin n: 0x10 + 2n low, + 1 high */

/* Redirection table entry bits (datasheet 3.2.4). */
#define VIOAPIC_RTE_DEST_LOGICAL	(1ull << 11)
#define VIOAPIC_RTE_STATUS		(1ull << 12)
#define VIOAPIC_RTE_ACTIVE_LOW		(1ull << 13)
#define VIOAPIC_RTE_REMOTE_IRR		(1ull << 14)
#define VIOAPIC_RTE_LEVEL		(1ull << 15)
#define VIOAPIC_RTE_MASKED		(1ull << 16)

struct vioapic {
	uint64_t rte[VIOAPIC_PINS];
	uint32_t lines;			/* bit n: pin n asserted */
	uint8_t id;			/* 4-bit IOAPIC ID */
	uint8_t regsel;			/* IOREGSEL */
};

typedef void (*vioapic_send_fn)(void *ctx, const struct apic_msg *m);

void vioapic_reset(struct vioapic *io, uint8_t id);

/*
 * IOREGSEL takes 1-, 2- or 4-byte accesses; IOWIN and EOI 4-byte ones
 * (-EINVAL otherwise).  Other offsets read 0 and ignore writes.
 */
int vioapic_mmio_read(struct vioapic *io, uint32_t off, int size, uint32_t *val);
int vioapic_mmio_write(struct vioapic *io, uint32_t off, int size, uint32_t val,
		       vioapic_send_fn send, void *ctx);

/* A device line changes (asserted sense).  Pins >= 24 are ignored. */
void vioapic_set_line(struct vioapic *io, unsigned pin, bool level, vioapic_send_fn send,
		      void *ctx);

/* EOI of vector (a LAPIC's level EOI or the EOI register): clears the
 * remote IRR of every pin with that vector and re-delivers, at most once
 * per pin, those still asserted. */
void vioapic_eoi(struct vioapic *io, uint8_t vector, vioapic_send_fn send, void *ctx);

/* Migration record: fixed little-endian layout, version byte first;
 * load validates everything and leaves *io alone on -EINVAL. */
#define VIOAPIC_SAVE_VERSION	1
#define VIOAPIC_SAVE_SIZE	200
int vioapic_save(const struct vioapic *io, uint8_t *buf, size_t len);
int vioapic_load(struct vioapic *io, const uint8_t *buf, size_t len);

#endif
