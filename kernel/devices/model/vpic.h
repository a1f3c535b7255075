/*
 * The PC's 8259A pair (Intel 8259A data sheet, order 231468) with the
 * PIIX/ICH edge/level control registers (ELCR, ports 0x4d0/0x4d1).  Pure:
 * kernel/virt/irq.c owns the instance, feeds it the ISA lines and takes
 * vpic_output() to the BSP's LINT0 (ExtINT) and vpic_ack() at INTA.
 *
 * The slave's INT output is wired to the master's IR2 and read as a level
 * (the master's IRR bit 2 follows it), so a slave request that stays
 * pending across an acknowledge is not lost; vpic_set_irq ignores IRQ 2.
 */
#ifndef TERN_DEVICES_MODEL_VPIC_H
#define TERN_DEVICES_MODEL_VPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vpic_chip {
	uint8_t irr, isr, imr;
	uint8_t lines;		/* input levels, for edge detection */
	uint8_t elcr;		/* 1 = level-triggered input */
	uint8_t base;		/* ICW2: vector of IR0 */
	uint8_t icw3;
	uint8_t init;		/* next ICW expected: 0 none, 2, 3, 4 */
	uint8_t prio;		/* the IR with the highest priority */
	bool need_icw4, single, aeoi, rotate_aeoi, smm, sfnm, poll, read_isr;
};

struct vpic {
	struct vpic_chip c[2];	/* master, slave */
};

#define VPIC_STATE_V	1
#define VPIC_STATE_LEN	(1 + 2 * 11)

void vpic_reset(struct vpic *p);
/* port: 0x20, 0x21, 0xa0, 0xa1, 0x4d0 or 0x4d1; others read 0xff. */
uint8_t vpic_port_read(struct vpic *p, uint16_t port);
void vpic_port_write(struct vpic *p, uint16_t port, uint8_t val);
/* An ISA line, 0..15 (2 is the cascade and ignored). */
void vpic_set_irq(struct vpic *p, unsigned irq, bool level);
/* The master's INT: an unmasked request beats everything in service. */
bool vpic_output(const struct vpic *p);
/* INTA: the vector; IR7's (master or slave) for a spurious request. */
int vpic_ack(struct vpic *p);

void vpic_save(const struct vpic *p, uint8_t *b);
int vpic_load(struct vpic *p, const uint8_t *b, size_t len);

#endif
