/*
 * The MC146818 real-time clock and its 128 bytes of CMOS RAM (Motorola
 * MC146818A data sheet; the DS12887 data sheet for the century byte's
 * usual place, 0x32, which the FADT's CENTURY field names).  Pure: time
 * comes in as now_ns (the guest time base); the glue (kernel/devices/pc.c)
 * passes vrtc_irq() on as IRQ 8.
 *
 * The guest's wall clock is now_ns + an offset: set at creation from the
 * host's wall time, and moved when the guest sets the time.
 */
#ifndef TERN_DEVICES_MODEL_VRTC_H
#define TERN_DEVICES_MODEL_VRTC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VRTC_SEC	0x00
#define VRTC_SEC_ALARM	0x01
#define VRTC_MIN	0x02
#define VRTC_MIN_ALARM	0x03
#define VRTC_HOUR	0x04
#define VRTC_HOUR_ALARM	0x05
#define VRTC_DOW	0x06
#define VRTC_DAY	0x07
#define VRTC_MONTH	0x08
#define VRTC_YEAR	0x09
#define VRTC_A		0x0a
#define VRTC_B		0x0b
#define VRTC_C		0x0c
#define VRTC_D		0x0d
#define VRTC_CENTURY	0x32

#define VRTC_A_UIP	0x80
#define VRTC_B_SET	0x80
#define VRTC_B_PIE	0x40
#define VRTC_B_AIE	0x20
#define VRTC_B_UIE	0x10
#define VRTC_B_SQWE	0x08
#define VRTC_B_DM	0x04	/* 1: binary, 0: BCD */
#define VRTC_B_24H	0x02
#define VRTC_B_DSE	0x01
#define VRTC_C_IRQF	0x80
#define VRTC_C_PF	0x40
#define VRTC_C_AF	0x20
#define VRTC_C_UF	0x10
#define VRTC_D_VRT	0x80

struct vrtc {
	uint8_t cmos[128];	/* RAM; 0x00-0x09 and 0x32 only while SET */
	uint8_t index;
	int64_t offset_ns;	/* guest wall ns = now_ns + offset_ns */
	uint64_t seen_ns;	/* events up to this now_ns are in reg C */
};

#define VRTC_STATE_V	1
#define VRTC_STATE_LEN	(2 + 128 + 16)

/* wall_ns: the guest's wall time (ns since 1970) at now_ns. */
void vrtc_reset(struct vrtc *r, uint64_t wall_ns, uint64_t now_ns);
/* port 0 = I/O 0x70 (index; bit 7 masks NMI and is ignored), 1 = 0x71. */
uint8_t vrtc_read(struct vrtc *r, unsigned port, uint64_t now_ns);
void vrtc_write(struct vrtc *r, unsigned port, uint8_t val, uint64_t now_ns);
/* Account the periodic, update and alarm events up to now (reg C). */
void vrtc_run(struct vrtc *r, uint64_t now_ns);
/* IRQ 8: register C's IRQF. */
bool vrtc_irq(const struct vrtc *r);
/* The now_ns at which an enabled event next raises IRQF, counted from the
 * last vrtc_run or access (so it may be <= now_ns: run it), 0: none. */
uint64_t vrtc_deadline(const struct vrtc *r, uint64_t now_ns);

/* Proleptic Gregorian calendar: days since 1970-01-01 and back. */
int64_t vrtc_days_from_civil(int64_t y, unsigned m, unsigned d);
void vrtc_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/* The wall time travels as such, the event mark as an age. */
void vrtc_save(const struct vrtc *r, uint64_t now_ns, uint8_t *b);
int vrtc_load(struct vrtc *r, uint64_t now_ns, const uint8_t *b, size_t len);

#endif
