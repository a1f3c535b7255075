/*
 * The interrupt controllers' migration records (pure; kernel/virt/irq.c
 * is the glue that holds the locks):
 *
 * "irqchip" version 1, IRQREC_CHIP_LEN bytes: u32 GSI line levels (bits
 * 0..23), the IOAPIC's record (vioapic_save), the 8259 pair's (vpic_save).
 *
 * "lapic.N" version 1, IRQREC_LAPIC_LEN bytes: the LAPIC's record
 * (vlapic_save: the timer as time left on the guest's TSC), then u8 run
 * state (0 runnable, 1 waiting for SIPI), u8 flags (IRQREC_F_*), u8 the
 * SIPI vector, u8 reserved 0.
 *
 * Decoders check everything before they write anything and leave the
 * output alone on -EINVAL: the bytes come from the network.
 */
#ifndef TERN_DEVICES_MODEL_IRQREC_H
#define TERN_DEVICES_MODEL_IRQREC_H

#include <stddef.h>
#include <stdint.h>
#include "kernel/devices/model/vioapic.h"
#include "kernel/devices/model/vlapic.h"
#include "kernel/devices/model/vpic.h"

#define IRQREC_CHIP_V		1
#define IRQREC_CHIP_LEN		(4 + VIOAPIC_SAVE_SIZE + VPIC_STATE_LEN)
#define IRQREC_LAPIC_V		1
#define IRQREC_LAPIC_LEN	(VLAPIC_SAVE_SIZE + 4)
#define IRQREC_GSIS		24

#define IRQREC_MP_RUNNABLE	0
#define IRQREC_MP_WAIT_SIPI	1

#define IRQREC_F_INIT		(1u << 0)	/* INIT posted, not yet taken */
#define IRQREC_F_SIPI		(1u << 1)	/* SIPI posted */
#define IRQREC_F_NMI		(1u << 2)	/* NMI posted */
#define IRQREC_F_HALTED		(1u << 3)	/* in HLT at the pause */
#define IRQREC_F_NMI_MASKED	(1u << 4)	/* in its NMI handler: no NMI until IRET */
#define IRQREC_F_ALL		0x1fu

struct irqrec_chip {
	uint32_t lines;
	struct vioapic ioapic;
	struct vpic pic;
};

struct irqrec_lapic {
	struct vlapic lapic;
	uint8_t mp_state, flags, sipi_vector;
};

/* b holds IRQREC_CHIP_LEN / IRQREC_LAPIC_LEN bytes: 0, or -ENOSPC. */
int irqrec_chip_encode(const struct irqrec_chip *c, uint8_t *b, size_t len);
int irqrec_lapic_encode(const struct irqrec_lapic *r, uint64_t now, uint8_t *b, size_t len);

/* 0, or -EINVAL with *out untouched.  apic_id: the vCPU's (a record for
 * another LAPIC is refused). */
int irqrec_chip_decode(const uint8_t *b, size_t len, struct irqrec_chip *out);
int irqrec_lapic_decode(const uint8_t *b, size_t len, uint64_t now, uint32_t apic_id,
			struct irqrec_lapic *out);

#endif
