/*
 * The virtio-net device model (VIRTIO 1.1 5.1).  Everything a guest
 * controls -- chain shapes, header bytes, control commands -- is checked
 * here; the worst a hostile driver gets is a dropped frame or an ERR ack.
 */
#include <errno.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "net/switch/vnet.h"

/* vring_read/vring_write return a short count at the end of the chain:
 * anything but the whole length is an error here (-EINVAL when the
 * chain is shorter than its rlen/wlen said, -EFAULT as given). */
static int vnet_rd(const struct vring_mem *m, const struct vring_chain *c, uint32_t off,
		   void *buf, uint32_t len)
{
	int r = vring_read(m, c, off, buf, len);

	return r < 0 ? r : (uint32_t)r == len ? 0 : -EINVAL;
}

static int vnet_wr(const struct vring_mem *m, const struct vring_chain *c, uint32_t off,
		   const void *buf, uint32_t len)
{
	int r = vring_write(m, c, off, buf, len);

	return r < 0 ? r : (uint32_t)r == len ? 0 : -EINVAL;
}

uint64_t vnet_features(void)
{
	return 1ull << VNET_F_MTU | 1ull << VNET_F_MAC | 1ull << VNET_F_MRG_RXBUF |
	       1ull << VNET_F_STATUS | 1ull << VNET_F_CTRL_VQ | 1ull << VNET_F_CTRL_RX |
	       1ull << VNET_F_GUEST_ANNOUNCE | 1ull << VNET_F_VERSION_1;
}

/* 5.1.4: the mtu field is at least 68 (the IPv4 minimum); frames are at
 * most 1514 bytes without offloads, so at most 1500. */
static uint16_t vnet_mtu(uint16_t mtu)
{
	if (!mtu || mtu > VNET_MTU_DEFAULT)
		return VNET_MTU_DEFAULT;
	return mtu < 68 ? 68 : mtu;
}

void vnet_config(const struct vnet_info *i, uint16_t status, uint8_t *out, uint32_t len)
{
	uint8_t b[VNET_CFG_LEN];

	memcpy(b, i->mac, 6);
	st_le16(b + 6, status & (VNET_S_LINK_UP | VNET_S_ANNOUNCE));
	st_le16(b + 8, 1);	/* max_virtqueue_pairs: one pair (no MQ) */
	st_le16(b + 10, vnet_mtu(i->mtu));
	for (uint32_t k = 0; k < len; k++)
		out[k] = k < VNET_CFG_LEN ? b[k] : 0;
}

/* 5.1.6.2: flags (byte 0) and gso_type (byte 1) can only be 0 when
 * neither CSUM nor any GSO feature was negotiated; the other fields are
 * meaningless then and ignored. */
int vnet_tx_frame(const struct vring_mem *m, const struct vring_chain *c, uint8_t *frame,
		  uint32_t cap)
{
	uint8_t h[VNET_HDR_LEN];
	uint32_t n;
	int r;

	if (c->rlen < VNET_HDR_LEN + VNET_FRAME_MIN)
		return -EINVAL;
	n = c->rlen - VNET_HDR_LEN;
	if (n > VNET_FRAME_MAX || n > cap)
		return -EINVAL;
	r = vnet_rd(m, c, 0, h, VNET_HDR_LEN);
	if (r)
		return r;
	if (h[0] || h[1])
		return -EINVAL;
	r = vnet_rd(m, c, VNET_HDR_LEN, frame, n);
	return r ? r : (int)n;
}

int vnet_rx_begin(struct vnet_rx *rx, bool mrg, uint32_t len)
{
	memset(rx, 0, sizeof(*rx));
	if (len < VNET_FRAME_MIN || len > VNET_FRAME_MAX)
		return -EINVAL;
	rx->mrg = mrg;
	rx->len = len;
	return 0;
}

/* The guest-physical address of writable byte off of a chain. */
static int vnet_wr_gpa(const struct vring_chain *c, uint32_t off, uint64_t *gpa)
{
	const unsigned max = sizeof(c->seg) / sizeof(c->seg[0]);
	unsigned nseg = c->nseg < max ? c->nseg : max;

	for (unsigned i = 0; i < nseg; i++) {
		if (!c->seg[i].write)
			continue;
		if (off < c->seg[i].len) {
			*gpa = c->seg[i].gpa + off;
			return 0;
		}
		off -= c->seg[i].len;
	}
	return -EFAULT;
}

static int vnet_rx_fail(struct vnet_rx *rx, int err)
{
	for (unsigned i = 0; i < rx->nchains; i++)
		rx->used[i].len = 0;
	rx->len = 0;
	return err;
}

/* The first chain starts with the header; num_buffers is 1 until a
 * merged frame patches it (5.1.6.4: the device sets it to the number of
 * buffers the packet spans). */
static int vnet_rx_header(struct vnet_rx *rx, const struct vring_mem *m,
			  const struct vring_chain *c)
{
	uint8_t h[VNET_HDR_LEN] = { 0 };

	if (c->wlen < VNET_HDR_LEN || (!rx->mrg && c->wlen - VNET_HDR_LEN < rx->len))
		return -EINVAL;
	st_le16(h + 10, 1);
	if (vnet_wr_gpa(c, 10, &rx->nb_gpa[0]) || vnet_wr_gpa(c, 11, &rx->nb_gpa[1]))
		return -EFAULT;
	return vnet_wr(m, c, 0, h, VNET_HDR_LEN);
}

static int vnet_rx_patch(const struct vnet_rx *rx, const struct vring_mem *m)
{
	uint8_t nb[2];

	st_le16(nb, rx->nchains);
	for (unsigned k = 0; k < 2; k++) {
		uint8_t *p = m->map(m->ctx, rx->nb_gpa[k], 1, true);

		if (!p)
			return -EFAULT;
		*p = nb[k];
	}
	return 0;
}

int vnet_rx_place(struct vnet_rx *rx, const struct vring_mem *m, const struct vring_chain *c,
		  const uint8_t *frame)
{
	uint32_t off = 0, n;
	unsigned slot;
	int r;

	if (!rx->len || rx->placed >= rx->len || rx->nchains >= VNET_RX_MAX_CHAINS)
		return -EINVAL;	/* not begun, or already finished: chain not consumed */
	slot = rx->nchains++;
	rx->used[slot].head = c->head;
	rx->used[slot].len = 0;
	if (slot == 0) {
		r = vnet_rx_header(rx, m, c);
		if (r)
			return vnet_rx_fail(rx, r);
		off = VNET_HDR_LEN;
	}
	n = c->wlen - off;
	n = n < rx->len - rx->placed ? n : rx->len - rx->placed;
	if (!n && slot)		/* a later chain with no room: no progress */
		return vnet_rx_fail(rx, -EINVAL);
	r = n ? vnet_wr(m, c, off, frame + rx->placed, n) : 0;
	if (r)
		return vnet_rx_fail(rx, r);
	rx->placed += n;
	rx->used[slot].len = off + n;
	if (rx->placed < rx->len)
		return rx->nchains < VNET_RX_MAX_CHAINS ? 0 : vnet_rx_fail(rx, -EINVAL);
	if (rx->nchains > 1) {
		r = vnet_rx_patch(rx, m);
		if (r)
			return vnet_rx_fail(rx, r);
	}
	return 1;
}

void vnet_ctrl_init(struct vnet_ctrl_state *s)
{
	memset(s, 0, sizeof(*s));
}

/* Class 0 (5.1.6.5.1): one byte, 0 or 1.  ALLUNI..NOBCAST need
 * CTRL_RX_EXTRA, which is not offered; they are OK'd and ignored. */
static int vnet_ctrl_rx(const struct vring_mem *m, const struct vring_chain *c,
			struct vnet_ctrl_state *s, uint8_t cmd)
{
	uint8_t on;

	if (c->rlen != 3 || vnet_rd(m, c, 2, &on, 1) || on > 1)
		return VNET_ERR;
	if (cmd == VNET_CTRL_RX_PROMISC)
		s->promisc = on;
	else if (cmd == VNET_CTRL_RX_ALLMULTI)
		s->allmulti = on;
	else if (cmd > 5)
		return VNET_ERR;
	return VNET_OK;
}

/* One table of TABLE_SET at readable offset *off: le32 entries, then
 * entries * 6 bytes, all inside rlen.  More than VNET_MAC_TABLE entries
 * is an overflow (accept every address of that kind), not an error. */
static int vnet_mac_table(const struct vring_mem *m, const struct vring_chain *c,
			  uint32_t *off, uint8_t tab[][6], uint8_t *n, bool *overflow)
{
	uint8_t b[4];
	uint64_t cnt;

	if ((uint64_t)*off + 4 > c->rlen || vnet_rd(m, c, *off, b, 4))
		return -EINVAL;
	cnt = ld_le32(b);
	*off += 4;
	if (cnt * 6 > c->rlen - *off)
		return -EINVAL;
	*overflow = cnt > VNET_MAC_TABLE;
	*n = *overflow ? 0 : (uint8_t)cnt;
	memset(tab, 0, VNET_MAC_TABLE * 6);
	if (*n && vnet_rd(m, c, *off, tab, *n * 6u))
		return -EINVAL;
	*off += (uint32_t)cnt * 6;
	return 0;
}

static int vnet_ctrl_mac(const struct vring_mem *m, const struct vring_chain *c,
			 struct vnet_ctrl_state *s, uint8_t cmd)
{
	struct vnet_ctrl_state t = *s;
	uint32_t off = 2;

	if (cmd != VNET_CTRL_MAC_TABLE_SET)	/* ADDR_SET needs CTRL_MAC_ADDR */
		return VNET_ERR;
	if (vnet_mac_table(m, c, &off, t.uc, &t.nuc, &t.uc_overflow) ||
	    vnet_mac_table(m, c, &off, t.mc, &t.nmc, &t.mc_overflow) || off != c->rlen)
		return VNET_ERR;
	*s = t;
	return VNET_OK;
}

static int vnet_ctrl_cmd(const struct vring_mem *m, const struct vring_chain *c,
			 struct vnet_ctrl_state *s)
{
	uint8_t h[2];

	if (c->rlen < 2 || vnet_rd(m, c, 0, h, 2))
		return VNET_ERR;
	switch (h[0]) {
	case VNET_CTRL_RX:
		return vnet_ctrl_rx(m, c, s, h[1]);
	case VNET_CTRL_MAC:
		return vnet_ctrl_mac(m, c, s, h[1]);
	case VNET_CTRL_ANNOUNCE:	/* 5.1.6.5.4: no data */
		if (h[1] != VNET_CTRL_ANNOUNCE_ACK || c->rlen != 2)
			return VNET_ERR;
		s->announce_acked = true;
		return VNET_OK;
	default:
		return VNET_ERR;
	}
}

int vnet_ctrl(const struct vring_mem *m, const struct vring_chain *c, struct vnet_ctrl_state *s,
	      uint32_t *written)
{
	struct vnet_ctrl_state t = *s;
	uint8_t ack;
	int r;

	*written = 0;
	if (c->wlen < 1)
		return -EINVAL;
	ack = (uint8_t)vnet_ctrl_cmd(m, c, &t);
	r = vnet_wr(m, c, 0, &ack, 1);
	if (r)
		return r;
	*s = t;		/* applied only once the driver can learn the outcome */
	*written = 1;
	return ack;
}

static bool vnet_in_table(const uint8_t tab[][6], unsigned n, const uint8_t *mac)
{
	for (unsigned i = 0; i < n && i < VNET_MAC_TABLE; i++)
		if (!memcmp(tab[i], mac, 6))
			return true;
	return false;
}

bool vnet_rx_accept(const struct vnet_ctrl_state *s, const uint8_t own[6], const uint8_t *dst)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	if (s->promisc || !memcmp(dst, bcast, 6))
		return true;
	if (dst[0] & 1)
		return s->allmulti || s->mc_overflow || vnet_in_table(s->mc, s->nmc, dst);
	return !memcmp(dst, own, 6) || s->uc_overflow || vnet_in_table(s->uc, s->nuc, dst);
}

/*
 * Record (little-endian, VNET_SAVE_SIZE bytes):
 *	0	version		1	flags: promisc, allmulti, uc_overflow,
 *	2	status (le16)		mc_overflow, announce_acked (bits 0-4)
 *	4	nuc		5	nmc		6	0 (le16)
 *	8	uc[64][6]	392	mc[64][6]	(unused entries zero)
 */
#define VNET_SAVE_FLAGS	0x1f
#define VNET_SAVE_UC	8
#define VNET_SAVE_MC	(VNET_SAVE_UC + 6 * VNET_MAC_TABLE)

int vnet_save(const struct vnet_ctrl_state *s, uint16_t status, uint8_t *buf, size_t len)
{
	if (len < VNET_SAVE_SIZE)
		return -ENOSPC;
	memset(buf, 0, VNET_SAVE_SIZE);
	buf[0] = VNET_SAVE_VERSION;
	buf[1] = (uint8_t)(s->promisc | s->allmulti << 1 | s->uc_overflow << 2 |
			   s->mc_overflow << 3 | s->announce_acked << 4);
	st_le16(buf + 2, status & (VNET_S_LINK_UP | VNET_S_ANNOUNCE));
	buf[4] = s->nuc <= VNET_MAC_TABLE ? s->nuc : 0;
	buf[5] = s->nmc <= VNET_MAC_TABLE ? s->nmc : 0;
	memcpy(buf + VNET_SAVE_UC, s->uc, 6u * buf[4]);
	memcpy(buf + VNET_SAVE_MC, s->mc, 6u * buf[5]);
	return VNET_SAVE_SIZE;
}

static bool vnet_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* A table's count fits, is 0 on overflow, and the unused entries are 0. */
static bool vnet_table_ok(const uint8_t *tab, uint8_t n, bool overflow)
{
	return n <= VNET_MAC_TABLE && (!overflow || !n) &&
	       vnet_zero(tab + 6u * n, 6u * (VNET_MAC_TABLE - n));
}

int vnet_load(struct vnet_ctrl_state *s, uint16_t *status, const uint8_t *buf, size_t len)
{
	struct vnet_ctrl_state t;
	uint8_t f;

	if (len != VNET_SAVE_SIZE || buf[0] != VNET_SAVE_VERSION || buf[6] || buf[7])
		return -EINVAL;
	f = buf[1];
	if ((f & ~VNET_SAVE_FLAGS) || (ld_le16(buf + 2) & ~(VNET_S_LINK_UP | VNET_S_ANNOUNCE)) ||
	    !vnet_table_ok(buf + VNET_SAVE_UC, buf[4], f & 4) ||
	    !vnet_table_ok(buf + VNET_SAVE_MC, buf[5], f & 8))
		return -EINVAL;
	memset(&t, 0, sizeof(t));
	t.promisc = f & 1;
	t.allmulti = f & 2;
	t.uc_overflow = f & 4;
	t.mc_overflow = f & 8;
	t.announce_acked = f & 16;
	t.nuc = buf[4];
	t.nmc = buf[5];
	memcpy(t.uc, buf + VNET_SAVE_UC, sizeof(t.uc));
	memcpy(t.mc, buf + VNET_SAVE_MC, sizeof(t.mc));
	*s = t;
	*status = ld_le16(buf + 2);
	return 0;
}

void vnet_announce_start(struct vnet_announce *a, bool guest, uint64_t now_us)
{
	a->left = VNET_ANN_RARPS;
	a->guest = guest;
	a->next_us = now_us;
	a->started++;
}

bool vnet_announce_active(const struct vnet_announce *a)
{
	return a->left > 0;
}

unsigned vnet_announce_poll(struct vnet_announce *a, uint64_t now_us)
{
	unsigned act = VNET_ANN_RARP, round;

	if (!vnet_announce_active(a) || now_us < a->next_us)
		return 0;
	round = VNET_ANN_RARPS - a->left;
	if (a->guest && round < VNET_ANN_GUEST) {
		act |= VNET_ANN_RAISE;
		a->raised++;
	}
	a->rarps++;
	/* Spaced from when the round was due; a caller that came very late
	 * gets one round now and the next a full step later, not a burst. */
	a->next_us += round ? VNET_ANN_STEP_US : VNET_ANN_FIRST_US;
	if (a->next_us <= now_us)
		a->next_us = now_us + VNET_ANN_STEP_US;
	a->left--;
	return act;
}

void vnet_announce_ack(struct vnet_announce *a)
{
	if (a->guest)
		a->acked++;
	a->guest = false;
}

void vnet_announce_stop(struct vnet_announce *a)
{
	a->left = 0;
	a->guest = false;
}
