/*
 * One interrupt message on the (virtual) APIC bus: what an IOAPIC
 * redirection entry, an MSI or a LAPIC's ICR sends, and what a LAPIC
 * accepts (SDM Vol. 3A 11.6.1 ICR, 11.6.2 destinations; 82093AA IOAPIC
 * datasheet 3.2.4; SDM 11.11 MSI).  Pure: shared by the device models
 * in kernel/devices/model/ and the routing glue in kernel/virt/irq.c.
 */
#ifndef TERN_DEVICES_MODEL_APIC_MSG_H
#define TERN_DEVICES_MODEL_APIC_MSG_H

#include <stdbool.h>
#include <stdint.h>

/* Delivery modes (ICR bits 10:8, RTE bits 10:8). */
enum apic_dm {
	APIC_DM_FIXED = 0,
	APIC_DM_LOWPRI = 1,
	APIC_DM_SMI = 2,
	APIC_DM_NMI = 4,
	APIC_DM_INIT = 5,
	APIC_DM_SIPI = 6,
	APIC_DM_EXTINT = 7,
};

/* Destination shorthands (ICR bits 19:18). */
enum apic_sh {
	APIC_SH_NONE = 0,
	APIC_SH_SELF = 1,
	APIC_SH_ALL = 2,		/* all including self */
	APIC_SH_OTHERS = 3,		/* all excluding self */
};

struct apic_msg {
	uint32_t dest;			/* xAPIC: 8 bits; x2APIC: 32 */
	uint8_t vector;
	uint8_t dm;			/* enum apic_dm */
	uint8_t shorthand;		/* enum apic_sh; IOAPIC/MSI: NONE */
	bool logical;			/* destination mode */
	bool level;			/* trigger mode: level (true) or edge */
	bool assert;			/* level: assert (INIT level de-assert: false) */
	bool x2apic;			/* dest is a 32-bit x2APIC ID */
	uint32_t src_id;		/* sender's APIC ID (for SELF/OTHERS) */
};


/*
 * An MSI (SDM Vol. 3A 11.11.1 address, 11.11.2 data) as an APIC-bus
 * message: address 0xfeeXXXXX with the destination in bits 19:12 and the
 * destination mode in bit 2; data with the vector in bits 7:0, the
 * delivery mode in 10:8, the trigger mode in 15 (level asserted: 14).
 * False for an address outside the interrupt window (a DMA write, not an
 * interrupt) or a delivery mode an MSI cannot carry (SIPI, 3).
 */
static inline bool apic_msg_from_msi(uint64_t addr, uint32_t data, struct apic_msg *m)
{
	uint8_t dm = (data >> 8) & 7;

	if ((addr >> 20) != 0xfee || dm == APIC_DM_SIPI || dm == 3)
		return false;
	*m = (struct apic_msg){
		.dest = (addr >> 12) & 0xff,
		.vector = data & 0xff,
		.dm = dm,
		.shorthand = APIC_SH_NONE,
		.logical = (addr >> 2) & 1,
		.level = (data >> 15) & 1,
		.assert = !((data >> 15) & 1) || ((data >> 14) & 1),
	};
	return true;
}

#endif
