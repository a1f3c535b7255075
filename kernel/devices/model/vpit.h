/*
 * The 8254 programmable interval timer (Intel 8254 data sheet, order
 * 231164) at 1.193182 MHz, plus port 0x61's timer bits.  Pure and driven
 * by time: every call takes now_ns, the guest time base; counts are
 * computed from the time a count was loaded, never ticked.
 *
 * Channel 0 drives IRQ 0: vpit_irq_deadline() is when its OUT next rises,
 * vpit_irq_run() says whether an edge is due and moves past every period
 * that ended by now (missed periods coalesce into one interrupt).
 */
#ifndef TERN_DEVICES_MODEL_VPIT_H
#define TERN_DEVICES_MODEL_VPIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VPIT_HZ		1193182u

struct vpit_chan {
	uint64_t load_ns;	/* counting started (or the gate's trigger) */
	uint64_t paused;	/* ticks counted when the gate went low */
	uint64_t edges;		/* channel 0: OUT rising edges delivered */
	uint16_t reload;	/* the count register; 0 = 65536 (10000 BCD) */
	uint16_t latch;
	uint8_t mode, rw, bcd;
	uint8_t wbyte, rbyte, lbyte;	/* which byte comes next (0 LSB) */
	uint8_t wlsb;			/* LSB written, MSB awaited */
	uint8_t status;
	bool latched, status_latched, null_count;
	bool armed;			/* a count is loaded and triggered */
	bool gate, stopped;		/* gate low stopped counting */
};

struct vpit {
	struct vpit_chan ch[3];
	uint8_t port61;		/* bits 3:0 as written */
};

#define VPIT_STATE_V	1
#define VPIT_CHAN_LEN	32
#define VPIT_STATE_LEN	(2 + 3 * VPIT_CHAN_LEN)

void vpit_reset(struct vpit *p);
/* port 0..3 = I/O 0x40..0x43. */
uint8_t vpit_read(struct vpit *p, unsigned port, uint64_t now_ns);
void vpit_write(struct vpit *p, unsigned port, uint8_t val, uint64_t now_ns);
/* Port 0x61: gate 2 (bit 0), speaker data (1), parity/IOCHK enables (2,
 * 3) as written; refresh toggle (4) and OUT2 (5) read-only. */
uint8_t vpit_port61_read(struct vpit *p, uint64_t now_ns);
void vpit_port61_write(struct vpit *p, uint8_t val, uint64_t now_ns);
bool vpit_out(const struct vpit *p, unsigned ch, uint64_t now_ns);
uint16_t vpit_count(const struct vpit *p, unsigned ch, uint64_t now_ns);

uint64_t vpit_irq_deadline(const struct vpit *p);	/* 0: none */
bool vpit_irq_run(struct vpit *p, uint64_t now_ns);

/* Times travel as ages relative to now_ns (the destination's time base
 * differs); load validates first and leaves p alone on -EINVAL. */
void vpit_save(const struct vpit *p, uint64_t now_ns, uint8_t *b);
int vpit_load(struct vpit *p, uint64_t now_ns, const uint8_t *b, size_t len);

/* Exact conversions between ns and ticks of VPIT_HZ (no 128-bit math):
 * floor for ticks, and the first ns at which that many ticks passed. */
uint64_t vpit_ns_to_ticks(uint64_t ns);
uint64_t vpit_ticks_to_ns(uint64_t ticks);

#endif
