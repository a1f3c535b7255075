/*
 * MC146818 RTC.  References: Motorola MC146818A data sheet: address map
 * (figure 3), time/alarm formats (table 3, "don't care" alarm bytes with
 * bits 7:6 set), register A's rate selection (table 5, 32.768 kHz time
 * base), B (SET stops updates and clears UIE), C (flags, cleared by the
 * read), D (VRT), UIP at least 244 us before an update.
 *
 * Simplifications: the divider bits of register A and daylight saving
 * (DSE) are stored but have no effect; the day of the week is derived
 * from the date; the periodic phase follows the guest's wall clock.
 */
#include <errno.h>
#include <string.h>
#include "kernel/devices/model/vrtc.h"
#include "kernel/lib/byteorder.h"

#define NS		1000000000ull
#define RTC_HZ		32768ull
#define UIP_NS		244000ull

/* ---- calendar: days since the epoch, eras of 400 years (146097 days)
 * starting on March 1st so the leap day ends a year ---- */

int64_t vrtc_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (int64_t)((m + 9) % 12) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;	/* 719468: 0000-03-01 to 1970 */
}

void vrtc_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* ---- register formats ---- */

static bool vrtc_set(const struct vrtc *r)
{
	return r->cmos[VRTC_B] & VRTC_B_SET;
}

static uint8_t vrtc_enc(const struct vrtc *r, unsigned v)
{
	return (uint8_t)(r->cmos[VRTC_B] & VRTC_B_DM ? v : (v / 10) << 4 | v % 10);
}

/* -1 for a byte that is not a number in the current format. */
static int vrtc_dec(const struct vrtc *r, uint8_t v)
{
	if (r->cmos[VRTC_B] & VRTC_B_DM)
		return v;
	if ((v >> 4) > 9 || (v & 15) > 9)
		return -1;
	return (v >> 4) * 10 + (v & 15);
}

static uint8_t vrtc_enc_hour(const struct vrtc *r, unsigned h)
{
	if (r->cmos[VRTC_B] & VRTC_B_24H)
		return vrtc_enc(r, h);
	return (uint8_t)(vrtc_enc(r, h % 12 ? h % 12 : 12) | (h >= 12 ? 0x80 : 0));
}

static int vrtc_dec_hour(const struct vrtc *r, uint8_t v)
{
	int h;

	if (r->cmos[VRTC_B] & VRTC_B_24H) {
		h = vrtc_dec(r, v);
		return h < 24 ? h : -1;
	}
	h = vrtc_dec(r, v & 0x7f);
	if (h < 1 || h > 12)
		return -1;
	return h % 12 + (v & 0x80 ? 12 : 0);
}

static uint64_t vrtc_wall(const struct vrtc *r, uint64_t now)
{
	return now + (uint64_t)r->offset_ns;
}

/* The time registers for a second count, in the current format. */
static void vrtc_fill(const struct vrtc *r, uint64_t secs, uint8_t *c)
{
	int64_t days = (int64_t)(secs / 86400), y;
	unsigned sod = (unsigned)(secs % 86400), m, d;

	vrtc_civil_from_days(days, &y, &m, &d);
	c[VRTC_SEC] = vrtc_enc(r, sod % 60);
	c[VRTC_MIN] = vrtc_enc(r, sod / 60 % 60);
	c[VRTC_HOUR] = vrtc_enc_hour(r, sod / 3600);
	c[VRTC_DOW] = vrtc_enc(r, (unsigned)((days + 4) % 7) + 1);	/* 1970-01-01: Thu */
	c[VRTC_DAY] = vrtc_enc(r, d);
	c[VRTC_MONTH] = vrtc_enc(r, m);
	c[VRTC_YEAR] = vrtc_enc(r, (unsigned)(y % 100));
	c[VRTC_CENTURY] = vrtc_enc(r, (unsigned)(y / 100));
}

/* The registers' time as seconds since 1970; false if malformed. */
static bool vrtc_parse(const struct vrtc *r, uint64_t *secs)
{
	const uint8_t *c = r->cmos;
	int s = vrtc_dec(r, c[VRTC_SEC]), mi = vrtc_dec(r, c[VRTC_MIN]);
	int h = vrtc_dec_hour(r, c[VRTC_HOUR]), d = vrtc_dec(r, c[VRTC_DAY]);
	int mo = vrtc_dec(r, c[VRTC_MONTH]), y = vrtc_dec(r, c[VRTC_YEAR]);
	int cen = vrtc_dec(r, c[VRTC_CENTURY]);
	int64_t days;

	if (s < 0 || s > 59 || mi < 0 || mi > 59 || h < 0 || d < 1 || d > 31 ||
	    mo < 1 || mo > 12 || y < 0 || y > 99 || cen < 19 || cen > 99)
		return false;
	days = vrtc_days_from_civil(cen * 100 + y, (unsigned)mo, (unsigned)d);
	*secs = (uint64_t)days * 86400 + (uint64_t)(h * 3600 + mi * 60 + s);
	return true;
}

static bool vrtc_time_reg(unsigned i)
{
	return i == VRTC_SEC || i == VRTC_MIN || i == VRTC_HOUR || i == VRTC_DOW ||
	       i == VRTC_DAY || i == VRTC_MONTH || i == VRTC_YEAR || i == VRTC_CENTURY;
}

/* ---- events ---- */

static uint64_t vrtc_t32(uint64_t ns)
{
	return ns / NS * RTC_HZ + ns % NS * RTC_HZ / NS;
}

static uint64_t vrtc_t32_ns(uint64_t t)
{
	return t / RTC_HZ * NS + (t % RTC_HZ * NS + RTC_HZ - 1) / RTC_HZ;
}

/* Register A RS3-0: the period in 32.768 kHz clocks, 0 for none; 1 and 2
 * repeat 8 and 9 (256 and 128 Hz) at this time base. */
static uint64_t vrtc_period(const struct vrtc *r)
{
	unsigned rs = r->cmos[VRTC_A] & 15;

	if (!rs)
		return 0;
	return 1ull << (rs < 3 ? rs + 6 : rs - 1);
}

/* An alarm byte: -2 malformed, -1 don't care, else the value. */
static int vrtc_alarm_field(const struct vrtc *r, unsigned i, int max)
{
	uint8_t v = r->cmos[i];
	int x;

	if ((v & 0xc0) == 0xc0)
		return -1;
	x = i == VRTC_HOUR_ALARM ? vrtc_dec_hour(r, v) : vrtc_dec(r, v);
	return x >= 0 && x < max ? x : -2;
}

/* The first second after s0 the alarm matches, 0 for never: walks at most
 * a day of minutes. */
static uint64_t vrtc_next_alarm(const struct vrtc *r, uint64_t s0)
{
	int sa = vrtc_alarm_field(r, VRTC_SEC_ALARM, 60);
	int ma = vrtc_alarm_field(r, VRTC_MIN_ALARM, 60);
	int ha = vrtc_alarm_field(r, VRTC_HOUR_ALARM, 24);
	uint64_t base = s0 + 1, m0 = base / 60;

	if (sa == -2 || ma == -2 || ha == -2)
		return 0;
	for (uint64_t m = m0; m <= m0 + 1440; m++) {
		uint64_t start = m * 60, cand;

		if ((ma >= 0 && m % 60 != (uint64_t)ma) ||
		    (ha >= 0 && m / 60 % 24 != (uint64_t)ha))
			continue;
		cand = sa < 0 ? (start > base ? start : base) : start + (uint64_t)sa;
		if (cand >= base)
			return cand;
	}
	return 0;
}

static void vrtc_irqf(struct vrtc *r)
{
	uint8_t c = r->cmos[VRTC_C] & (VRTC_C_PF | VRTC_C_AF | VRTC_C_UF);

	if (c & r->cmos[VRTC_B])	/* PIE/AIE/UIE line up with PF/AF/UF */
		c |= VRTC_C_IRQF;
	r->cmos[VRTC_C] = c;
}

void vrtc_run(struct vrtc *r, uint64_t now)
{
	uint64_t g0, g1, p = vrtc_period(r), na;

	if (now <= r->seen_ns)
		return;
	g0 = vrtc_wall(r, r->seen_ns), g1 = vrtc_wall(r, now);
	if (p && vrtc_t32(g1) / p > vrtc_t32(g0) / p)
		r->cmos[VRTC_C] |= VRTC_C_PF;
	if (!vrtc_set(r) && g1 / NS > g0 / NS) {
		r->cmos[VRTC_C] |= VRTC_C_UF;
		na = vrtc_next_alarm(r, g0 / NS);
		if (na && na <= g1 / NS)
			r->cmos[VRTC_C] |= VRTC_C_AF;
	}
	r->seen_ns = now;
	vrtc_irqf(r);
}

bool vrtc_irq(const struct vrtc *r)
{
	return r->cmos[VRTC_C] & VRTC_C_IRQF;
}

static uint64_t vrtc_min(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

/* From the last accounted moment, not from now: an event that came due
 * since then yields a deadline in the past, which the caller runs. */
uint64_t vrtc_deadline(const struct vrtc *r, uint64_t now)
{
	uint8_t b = r->cmos[VRTC_B], c = r->cmos[VRTC_C];
	uint64_t g = vrtc_wall(r, r->seen_ns), p = vrtc_period(r), best = 0, na;

	(void)now;
	if ((b & VRTC_B_PIE) && !(c & VRTC_C_PF) && p)
		best = vrtc_t32_ns((vrtc_t32(g) / p + 1) * p) - (uint64_t)r->offset_ns;
	if (vrtc_set(r))
		return best;
	if ((b & VRTC_B_UIE) && !(c & VRTC_C_UF))
		best = vrtc_min(best, (g / NS + 1) * NS - (uint64_t)r->offset_ns);
	if ((b & VRTC_B_AIE) && !(c & VRTC_C_AF) && (na = vrtc_next_alarm(r, g / NS)))
		best = vrtc_min(best, na * NS - (uint64_t)r->offset_ns);
	return best;
}

/* ---- ports ---- */

void vrtc_reset(struct vrtc *r, uint64_t wall_ns, uint64_t now_ns)
{
	memset(r, 0, sizeof(*r));
	r->cmos[VRTC_A] = 0x26;			/* 32.768 kHz, 1024 Hz rate */
	r->cmos[VRTC_B] = VRTC_B_24H;		/* BCD, 24 h */
	r->cmos[VRTC_D] = VRTC_D_VRT;
	r->offset_ns = (int64_t)(wall_ns - now_ns);
	r->seen_ns = now_ns;
}

/* Move the clock to the time registers, keeping the sub-second phase
 * (keep_frac) or starting the second now (SET released). */
static void vrtc_settime(struct vrtc *r, uint64_t now, bool keep_frac)
{
	uint64_t secs, frac = keep_frac ? vrtc_wall(r, now) % NS : 0;

	if (!vrtc_parse(r, &secs))
		return;				/* malformed: the clock runs on */
	vrtc_run(r, now);
	r->offset_ns = (int64_t)(secs * NS + frac - now);
}

static void vrtc_write_b(struct vrtc *r, uint8_t val, uint64_t now)
{
	uint8_t old = r->cmos[VRTC_B];

	vrtc_run(r, now);
	if (val & VRTC_B_SET) {
		val &= (uint8_t)~VRTC_B_UIE;
		if (!(old & VRTC_B_SET))
			vrtc_fill(r, vrtc_wall(r, now) / NS, r->cmos);
		r->cmos[VRTC_B] = val;
	} else if (old & VRTC_B_SET) {
		r->cmos[VRTC_B] = val | VRTC_B_SET;	/* parse in the new format */
		vrtc_settime(r, now, false);
		r->cmos[VRTC_B] = val;
	} else {
		r->cmos[VRTC_B] = val;
	}
	vrtc_irqf(r);
}

static uint8_t vrtc_read_reg(struct vrtc *r, unsigned i, uint64_t now)
{
	uint8_t t[128], v;
	uint64_t g;

	vrtc_run(r, now);
	if (vrtc_time_reg(i) && !vrtc_set(r)) {
		vrtc_fill(r, vrtc_wall(r, now) / NS, t);
		return t[i];
	}
	switch (i) {
	case VRTC_A:
		g = vrtc_wall(r, now);
		return (uint8_t)(r->cmos[VRTC_A] |
				 (!vrtc_set(r) && g % NS >= NS - UIP_NS ? VRTC_A_UIP : 0));
	case VRTC_C:
		v = r->cmos[VRTC_C];
		r->cmos[VRTC_C] = 0;
		return v;
	default:
		return r->cmos[i];
	}
}

static void vrtc_write_reg(struct vrtc *r, unsigned i, uint8_t val, uint64_t now)
{
	if (vrtc_time_reg(i)) {
		if (!vrtc_set(r)) {
			vrtc_fill(r, vrtc_wall(r, now) / NS, r->cmos);
			r->cmos[i] = val;
			vrtc_settime(r, now, true);
		} else {
			r->cmos[i] = val;
		}
		return;
	}
	switch (i) {
	case VRTC_A:
		vrtc_run(r, now);
		r->cmos[VRTC_A] = val & 0x7f;	/* UIP is read-only */
		break;
	case VRTC_B: vrtc_write_b(r, val, now); break;
	case VRTC_C: case VRTC_D: break;	/* read-only */
	default: r->cmos[i] = val; break;
	}
}

uint8_t vrtc_read(struct vrtc *r, unsigned port, uint64_t now_ns)
{
	return port ? vrtc_read_reg(r, r->index, now_ns) : r->index;
}

void vrtc_write(struct vrtc *r, unsigned port, uint8_t val, uint64_t now_ns)
{
	if (!port)
		r->index = val & 0x7f;		/* bit 7: the NMI mask, not ours */
	else
		vrtc_write_reg(r, r->index, val, now_ns);
}

/* ---- state v1: version, index, the 128 bytes, the guest's wall time
 * (LE64 ns since 1970), the event mark's age (LE64 ns) ---- */

void vrtc_save(const struct vrtc *r, uint64_t now_ns, uint8_t *b)
{
	b[0] = VRTC_STATE_V;
	b[1] = r->index;
	memcpy(b + 2, r->cmos, 128);
	st_le64(b + 130, vrtc_wall(r, now_ns));
	st_le64(b + 138, now_ns - r->seen_ns);
}

int vrtc_load(struct vrtc *r, uint64_t now_ns, const uint8_t *b, size_t len)
{
	const uint8_t *c = b + 2;

	if (len != VRTC_STATE_LEN || b[0] != VRTC_STATE_V || b[1] > 127 ||
	    (c[VRTC_A] & VRTC_A_UIP) || (c[VRTC_C] & 0x0f) || c[VRTC_D] != VRTC_D_VRT)
		return -EINVAL;
	r->index = b[1];
	memcpy(r->cmos, c, 128);
	r->offset_ns = (int64_t)(ld_le64(b + 130) - now_ns);
	r->seen_ns = now_ns - ld_le64(b + 138);
	vrtc_irqf(r);
	return 0;
}
