/*
 * 8254 PIT.  References: Intel 8254 data sheet (231164-005): control word
 * (figure 7), counter latch and read-back commands and the status byte
 * (figures 9-11), modes 0-5 (figures 12-17) and the gate's effect (table
 * 3); IBM PC AT Technical Reference for port 0x61 (bit 0 gate 2, bit 1
 * speaker data, bit 4 refresh detect, bit 5 OUT2).
 *
 * Counts derive from the ticks since the count was loaded.  Simplified
 * against the data sheet: the load cycle's extra clock is not modelled,
 * a new count in modes 2 and 3 takes effect at once (not at the end of
 * the period), and odd counts in mode 3 decrement as even ones.
 */
#include <errno.h>
#include <string.h>
#include "kernel/devices/model/vpit.h"
#include "kernel/lib/byteorder.h"

#define NS_PER_S	1000000000ull
#define REFRESH_NS	15085	/* DRAM refresh request period, bit 4 */

uint64_t vpit_ns_to_ticks(uint64_t ns)
{
	return ns / NS_PER_S * VPIT_HZ + ns % NS_PER_S * VPIT_HZ / NS_PER_S;
}

uint64_t vpit_ticks_to_ns(uint64_t t)
{
	return t / VPIT_HZ * NS_PER_S + (t % VPIT_HZ * NS_PER_S + VPIT_HZ - 1) / VPIT_HZ;
}

static unsigned vpit_from_bcd(uint16_t v)
{
	return (v >> 12 & 15) * 1000u + (v >> 8 & 15) * 100u + (v >> 4 & 15) * 10u + (v & 15);
}

static uint16_t vpit_to_bcd(unsigned v)
{
	return (uint16_t)((v / 1000 % 10) << 12 | (v / 100 % 10) << 8 |
			  (v / 10 % 10) << 4 | v % 10);
}

/* The initial count N in clocks. */
static uint64_t vpit_n(const struct vpit_chan *c)
{
	unsigned n = c->bcd ? vpit_from_bcd(c->reload) : c->reload;

	return n ? n : (c->bcd ? 10000 : 65536);
}

static uint64_t vpit_elapsed(const struct vpit_chan *c, uint64_t now)
{
	if (!c->armed)
		return 0;
	if (c->stopped)
		return c->paused;
	/* Another CPU's clock may trail the one that loaded the count. */
	return now > c->load_ns ? vpit_ns_to_ticks(now - c->load_ns) : 0;
}

static bool vpit_periodic(const struct vpit_chan *c)
{
	return c->mode == 2 || c->mode == 3;
}

static bool vpit_chan_out(const struct vpit_chan *c, uint64_t now)
{
	uint64_t n = vpit_n(c), d = vpit_elapsed(c, now);

	if (!c->armed)
		return c->mode != 0;	/* mode 0 drives OUT low on the control word */
	if (c->stopped && vpit_periodic(c))
		return true;		/* gate low forces OUT high in modes 2, 3 */
	switch (c->mode) {
	case 0: case 1: return d >= n;
	case 2: return d % n != n - 1;
	case 3: return d % n < (n + 1) / 2;
	default: return d != n;		/* 4, 5: one clock low at zero */
	}
}

bool vpit_out(const struct vpit *p, unsigned ch, uint64_t now_ns)
{
	return ch < 3 && vpit_chan_out(&p->ch[ch], now_ns);
}

static uint16_t vpit_chan_count(const struct vpit_chan *c, uint64_t now)
{
	uint64_t n = vpit_n(c), d = vpit_elapsed(c, now), m = c->bcd ? 10000 : 65536;
	uint64_t v;

	if (!c->armed)
		return c->reload;
	switch (c->mode) {
	case 2: v = n - d % n; break;
	case 3: v = n - (2 * d) % n; break;
	default: v = (n + m - d % m) % m; break;	/* wraps past zero */
	}
	return c->bcd ? vpit_to_bcd((unsigned)(v % 10000)) : (uint16_t)v;
}

uint16_t vpit_count(const struct vpit *p, unsigned ch, uint64_t now_ns)
{
	return ch < 3 ? vpit_chan_count(&p->ch[ch], now_ns) : 0;
}

void vpit_reset(struct vpit *p)
{
	memset(p, 0, sizeof(*p));
	p->ch[0].gate = p->ch[1].gate = true;	/* tied high on the PC */
}

/* ---- channel 0's interrupt: OUT's rising edges ---- */

/* The elapsed clocks of rising edge number k (from 1), 0 for none. */
static uint64_t vpit_edge(const struct vpit_chan *c, uint64_t k)
{
	uint64_t n = vpit_n(c);

	if (vpit_periodic(c))
		return k * n;
	if (k > 1)
		return 0;
	return c->mode >= 4 ? n + 1 : n;	/* 4, 5: back high after the strobe */
}

uint64_t vpit_irq_deadline(const struct vpit *p)
{
	const struct vpit_chan *c = &p->ch[0];
	uint64_t d;

	if (!c->armed || c->stopped)
		return 0;
	d = vpit_edge(c, c->edges + 1);
	return d ? c->load_ns + vpit_ticks_to_ns(d) : 0;
}

bool vpit_irq_run(struct vpit *p, uint64_t now_ns)
{
	struct vpit_chan *c = &p->ch[0];
	uint64_t due = vpit_irq_deadline(p);

	if (!due || now_ns < due)
		return false;
	/* Every period that ended by now counts as delivered: one edge. */
	c->edges = vpit_periodic(c) ? vpit_elapsed(c, now_ns) / vpit_n(c) : 1;
	return true;
}

/* ---- gate ---- */

static void vpit_start(struct vpit_chan *c, uint64_t now)
{
	c->armed = true;
	c->stopped = false;
	c->load_ns = now;
	c->edges = 0;
}

static void vpit_set_gate(struct vpit_chan *c, bool g, uint64_t now)
{
	if (g == c->gate)
		return;
	c->gate = g;
	if (!g) {
		/* Modes 0, 2, 3, 4 stop counting while the gate is low. */
		if (c->armed && !c->stopped && c->mode != 1 && c->mode != 5) {
			c->paused = vpit_elapsed(c, now);
			c->stopped = true;
		}
		return;
	}
	if (c->null_count)
		return;			/* no count written yet */
	if (c->mode == 0 || c->mode == 4) {
		if (c->armed && c->stopped) {	/* resume where it stopped */
			c->load_ns = now - vpit_ticks_to_ns(c->paused);
			c->stopped = false;
		}
	} else {
		vpit_start(c, now);	/* 2, 3 reload; 1, 5 trigger */
	}
}

/* ---- ports ---- */

static uint8_t vpit_status(const struct vpit_chan *c, uint64_t now)
{
	return (uint8_t)(vpit_chan_out(c, now) << 7 | c->null_count << 6 |
			 c->rw << 4 | c->mode << 1 | c->bcd);
}

static void vpit_latch(struct vpit_chan *c, uint64_t now)
{
	if (c->latched)
		return;			/* a second latch is ignored */
	c->latch = vpit_chan_count(c, now);
	c->latched = true;
	c->lbyte = 0;
}

static void vpit_readback(struct vpit *p, uint8_t val, uint64_t now)
{
	for (unsigned i = 0; i < 3; i++) {
		struct vpit_chan *c = &p->ch[i];

		if (!(val & (2u << i)))
			continue;
		if (!(val & 0x20))
			vpit_latch(c, now);
		if (!(val & 0x10) && !c->status_latched) {
			c->status = vpit_status(c, now);
			c->status_latched = true;
		}
	}
}

static void vpit_control(struct vpit *p, uint8_t val, uint64_t now)
{
	struct vpit_chan *c;
	uint8_t mode;

	if ((val >> 6) == 3) {
		vpit_readback(p, val, now);
		return;
	}
	c = &p->ch[val >> 6];
	if (!(val & 0x30)) {
		vpit_latch(c, now);
		return;
	}
	mode = (val >> 1) & 7;
	c->mode = mode > 5 ? mode - 4 : mode;	/* 6, 7 are 2, 3 */
	c->rw = (val >> 4) & 3;
	c->bcd = val & 1;
	c->armed = c->stopped = c->latched = c->status_latched = false;
	c->null_count = true;
	c->wbyte = c->rbyte = 0;
	c->edges = 0;
}

static void vpit_load_count(struct vpit_chan *c, uint16_t v, uint64_t now)
{
	c->reload = v;
	c->null_count = false;
	if (c->mode == 1 || c->mode == 5) {
		c->armed = false;	/* waits for the gate's rising edge */
		return;
	}
	vpit_start(c, now);
	if (!c->gate) {
		c->paused = 0;
		c->stopped = true;
	}
}

static void vpit_chan_write(struct vpit_chan *c, uint8_t val, uint64_t now)
{
	switch (c->rw) {
	case 1: vpit_load_count(c, val, now); break;
	case 2: vpit_load_count(c, (uint16_t)(val << 8), now); break;
	case 3:
		if (!c->wbyte) {
			c->wlsb = val;
			c->wbyte = 1;
		} else {
			c->wbyte = 0;
			vpit_load_count(c, (uint16_t)(c->wlsb | val << 8), now);
		}
		break;
	default: break;		/* not programmed */
	}
}

static uint8_t vpit_chan_read(struct vpit_chan *c, uint64_t now)
{
	uint16_t v;

	if (c->status_latched) {
		c->status_latched = false;
		return c->status;
	}
	if (c->latched) {
		v = c->latch;
		if (c->rw == 3 && !c->lbyte) {
			c->lbyte = 1;
			return (uint8_t)v;
		}
		c->latched = false;
		return (uint8_t)(c->rw == 2 || c->rw == 3 ? v >> 8 : v);
	}
	v = vpit_chan_count(c, now);
	if (c->rw == 3) {
		c->rbyte ^= 1;
		return (uint8_t)(c->rbyte ? v : v >> 8);
	}
	return (uint8_t)(c->rw == 2 ? v >> 8 : v);
}

uint8_t vpit_read(struct vpit *p, unsigned port, uint64_t now_ns)
{
	return port < 3 ? vpit_chan_read(&p->ch[port], now_ns) : 0xff;
}

void vpit_write(struct vpit *p, unsigned port, uint8_t val, uint64_t now_ns)
{
	if (port < 3)
		vpit_chan_write(&p->ch[port], val, now_ns);
	else if (port == 3)
		vpit_control(p, val, now_ns);
}

uint8_t vpit_port61_read(struct vpit *p, uint64_t now_ns)
{
	return (uint8_t)(p->port61 | ((now_ns / REFRESH_NS) & 1) << 4 |
			 vpit_chan_out(&p->ch[2], now_ns) << 5);
}

void vpit_port61_write(struct vpit *p, uint8_t val, uint64_t now_ns)
{
	p->port61 = val & 0x0f;
	vpit_set_gate(&p->ch[2], val & 1, now_ns);
}

/* ---- state v1: version, port61, per channel 32 bytes: load age (now -
 * load_ns), paused, edges (LE64 each), reload, latch (LE16), mode | bcd
 * << 3 | rw << 4, flags, wlsb, status ---- */

static void vpit_chan_save(const struct vpit_chan *c, uint64_t now, uint8_t *b)
{
	st_le64(b, now - c->load_ns);
	st_le64(b + 8, c->paused);
	st_le64(b + 16, c->edges);
	st_le16(b + 24, c->reload);
	st_le16(b + 26, c->latch);
	b[28] = (uint8_t)(c->mode | c->bcd << 3 | c->rw << 4);
	b[29] = (uint8_t)(c->wbyte | c->rbyte << 1 | c->lbyte << 2 | c->latched << 3 |
			  c->status_latched << 4 | c->null_count << 5 | c->armed << 6 |
			  c->stopped << 7);
	b[30] = c->wlsb;
	b[31] = c->status;
}

void vpit_save(const struct vpit *p, uint64_t now_ns, uint8_t *b)
{
	b[0] = VPIT_STATE_V;
	b[1] = p->port61;
	for (unsigned i = 0; i < 3; i++)
		vpit_chan_save(&p->ch[i], now_ns, b + 2 + i * VPIT_CHAN_LEN);
}

static void vpit_chan_load(struct vpit_chan *c, uint64_t now, const uint8_t *b, bool gate)
{
	c->load_ns = now - ld_le64(b);
	c->paused = ld_le64(b + 8);
	c->edges = ld_le64(b + 16);
	c->reload = ld_le16(b + 24);
	c->latch = ld_le16(b + 26);
	c->mode = b[28] & 7, c->bcd = b[28] >> 3 & 1, c->rw = b[28] >> 4 & 3;
	c->wbyte = b[29] & 1, c->rbyte = b[29] >> 1 & 1, c->lbyte = b[29] >> 2 & 1;
	c->latched = b[29] & 8, c->status_latched = b[29] & 16;
	c->null_count = b[29] & 32, c->armed = b[29] & 64, c->stopped = b[29] & 128;
	c->wlsb = b[30];
	c->status = b[31];
	c->gate = gate;
}

int vpit_load(struct vpit *p, uint64_t now_ns, const uint8_t *b, size_t len)
{
	if (len != VPIT_STATE_LEN || b[0] != VPIT_STATE_V || (b[1] & 0xf0))
		return -EINVAL;
	for (unsigned i = 0; i < 3; i++) {
		const uint8_t *cb = b + 2 + i * VPIT_CHAN_LEN;
		bool gate = i < 2 || (b[1] & 1);

		if ((cb[28] & 7) > 5 || (cb[28] & 0xc0))
			return -EINVAL;
		/* A channel stopped by its gate needs the gate low. */
		if ((cb[29] & 128) && gate)
			return -EINVAL;
	}
	p->port61 = b[1];
	for (unsigned i = 0; i < 3; i++)
		vpit_chan_load(&p->ch[i], now_ns, b + 2 + i * VPIT_CHAN_LEN,
			       i < 2 || (b[1] & 1));
	return 0;
}
