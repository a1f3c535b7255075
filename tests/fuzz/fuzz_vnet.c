/*
 * libFuzzer target for the L2 switch and the virtio-net model
 * (make fuzz-vnet).
 *
 * Input: a sequence of operations, each an opcode byte followed by the
 * bytes it consumes (missing bytes read as 0):
 *	0 port add	kind, mac[6]
 *	1 port del	port
 *	2 forward	port, len (le16, mod 1600), clock step, frame bytes
 *	3 fdb set/forget  port (0xff: forget), mac[6]
 *	4 promisc	port, on
 *	5 ctrl		chain, inline bytes
 *	6 tx		chain, inline bytes
 *	7 rx		mrg, len (le16), nchains, chains; then the RX filter
 *			and config space: mtu (le16), dst[6]
 *	8 poke RAM	gpa (le16), len, bytes
 *	9 load		VNET_SAVE_SIZE record bytes
 *	10 announce	what (0 start, 1 poll, 2 ack, 3 stop), guest bit, clock step
 *			(le16, in ms)
 * A chain is nseg (1-8) and per segment gpa (le32, mod 80 KiB so some
 * fall outside the 64 KiB of RAM), len (le16, mod 5000) and a write bit,
 * plus a flag byte that may make rlen/wlen lie.  Inline bytes: a count
 * byte k, then k >> 1 bytes written at the first segment when k is odd.  After every operation
 * the invariants any guest or LAN behaviour keeps are checked: no frame
 * goes back out of its port or to an unused port, the FDB names only
 * used ports and holds each MAC once, host/guest MACs stay pinned, a TX
 * frame is 14..1514 bytes, an RX frame's used lengths add up, the
 * control state saves to a record its own loader accepts unchanged.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "net/switch/l2sw.h"
#include "net/switch/vnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_RAM	65536

static uint8_t fz_ram[FZ_RAM];

static void fz_check(bool cond)
{
	if (!cond)
		__builtin_trap();
}

static void *fz_map(void *ctx, uint64_t gpa, uint32_t len, bool write)
{
	(void)ctx;
	(void)write;
	fz_check(len >= 1 && len <= 4096 && gpa >> 12 == (gpa + len - 1) >> 12);
	if (gpa >= FZ_RAM || len > FZ_RAM - gpa)
		return NULL;
	return fz_ram + gpa;
}

static const struct vring_mem fz_mem = { fz_map, NULL };

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static uint8_t fz_u8(struct fz_in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static uint16_t fz_u16(struct fz_in *in)
{
	return (uint16_t)(fz_u8(in) | fz_u8(in) << 8);
}

static uint32_t fz_u32(struct fz_in *in)
{
	return fz_u16(in) | (uint32_t)fz_u16(in) << 16;
}

static void fz_bytes(struct fz_in *in, uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = fz_u8(in);
}

static void fz_chain(struct fz_in *in, struct vring_chain *c)
{
	uint8_t lie;

	memset(c, 0, sizeof(*c));
	c->head = fz_u16(in);
	c->nseg = (uint16_t)(fz_u8(in) % 8 + 1);
	for (unsigned i = 0; i < c->nseg; i++) {
		struct vring_seg *s = &c->seg[i];

		s->gpa = fz_u32(in) % (FZ_RAM + 16384);
		s->len = fz_u16(in) % 5000;
		s->write = fz_u8(in) & 1;
		if (s->write)
			c->wlen += s->len;
		else
			c->rlen += s->len;
	}
	lie = fz_u8(in);
	if (lie == 0xa5)
		c->rlen = fz_u32(in);
	else if (lie == 0x5a)
		c->wlen = fz_u32(in);
}

/* ---- the switch ---- */

static void fz_check_fdb(const struct l2sw *sw)
{
	for (int i = 0; i < L2SW_FDB_SIZE; i++) {
		const struct l2sw_fdb_ent *e = &sw->fdb[i];

		if (e->port < 0)
			continue;
		fz_check(e->port < L2SW_MAX_PORTS && sw->port[e->port].used);
		fz_check(!(e->mac[0] & 1));
		for (int j = i + 1; j < L2SW_FDB_SIZE; j++)
			fz_check(sw->fdb[j].port < 0 || memcmp(sw->fdb[j].mac, e->mac, 6));
	}
}

static void fz_forward(struct fz_in *in, struct l2sw *sw, uint64_t *now)
{
	static uint8_t f[1600];
	int port = fz_u8(in) % (L2SW_MAX_PORTS + 2) - 1;
	uint16_t len = fz_u16(in) % sizeof(f);
	uint8_t step = fz_u8(in);
	uint32_t out = 0xdeadbeef;
	int r;

	*now += step == 0xff ? L2SW_AGE_NS : (uint64_t)step * 1000000000ull;
	fz_bytes(in, f, len);
	r = l2sw_forward(sw, port, f, len, *now, &out);
	fz_check(r == 0 || r == -EINVAL || r == -EPERM);
	if (r) {
		fz_check(out == 0);
		return;
	}
	fz_check(!(out & (1u << port)));
	for (int i = 0; i < L2SW_MAX_PORTS; i++)
		if (out & (1u << i)) {
			const struct l2sw_port *p = &sw->port[i];

			fz_check(p->used);
			fz_check(p->kind != L2SW_GUEST || p->promisc || (f[0] & 1) ||
				 !memcmp(f, p->mac, 6));
		}
	fz_check(out >> L2SW_MAX_PORTS == 0);
	if (sw->port[port].kind == L2SW_GUEST)
		fz_check(l2sw_fdb_lookup(sw, f + 6, *now) == port);
}

static void fz_check_pins(const struct l2sw *sw, uint64_t now)
{
	for (int i = 0; i < L2SW_MAX_PORTS; i++)
		if (sw->port[i].used && sw->port[i].kind != L2SW_UPLINK)
			fz_check(l2sw_fdb_lookup(sw, sw->port[i].mac, now) == i);
}

/* ---- the NIC ---- */

static void fz_check_state(const struct vnet_ctrl_state *s, uint16_t status)
{
	uint8_t rec[VNET_SAVE_SIZE];
	struct vnet_ctrl_state t;
	uint16_t st;

	fz_check(s->nuc <= VNET_MAC_TABLE && s->nmc <= VNET_MAC_TABLE);
	fz_check(vnet_save(s, status, rec, sizeof(rec)) == VNET_SAVE_SIZE);
	fz_check(vnet_load(&t, &st, rec, sizeof(rec)) == 0);
	fz_check(!memcmp(&t, s, sizeof(t)) && st == status);
}

/* Optionally the command bytes themselves, written at the first
 * segment (so a well-formed command does not need a separate poke). */
static void fz_inline(struct fz_in *in, const struct vring_chain *c)
{
	uint8_t k = fz_u8(in);
	uint64_t gpa = c->seg[0].gpa;

	for (unsigned i = 0; i < (k >> 1u); i++) {
		uint8_t b = fz_u8(in);

		if ((k & 1) && gpa + i < FZ_RAM)
			fz_ram[gpa + i] = b;
	}
}

/* The filter and the config space on whatever state was reached. */
static void fz_peek(struct fz_in *in, const struct vnet_ctrl_state *s, uint16_t status)
{
	struct vnet_info ni = { { 0x52, 0x54, 0, 0, 0, 1 }, fz_u16(in) };
	uint8_t dst[6], cfg[VNET_CFG_LEN + 4];
	bool ok;

	fz_bytes(in, dst, 6);
	ok = vnet_rx_accept(s, ni.mac, dst);
	fz_check(!s->promisc || ok);
	fz_check(!(dst[0] & 1) || memcmp(dst, "\xff\xff\xff\xff\xff\xff", 6) || ok);
	vnet_config(&ni, status, cfg, sizeof(cfg));
	fz_check(ld_le16(cfg + 10) >= 68 && ld_le16(cfg + 10) <= 1500 && !cfg[VNET_CFG_LEN]);
}

static void fz_ctrl(struct fz_in *in, struct vnet_ctrl_state *s, uint16_t *status)
{
	struct vring_chain c;
	uint32_t written = 7;
	int r;

	fz_chain(in, &c);
	fz_inline(in, &c);
	r = vnet_ctrl(&fz_mem, &c, s, &written);
	fz_check(r == VNET_OK || r == VNET_ERR || r == -EINVAL || r == -EFAULT);
	fz_check(written == (r >= 0));
	if (s->announce_acked) {
		*status &= (uint16_t)~VNET_S_ANNOUNCE;
		s->announce_acked = false;
	}
}

static void fz_tx(struct fz_in *in)
{
	static uint8_t f[2048];
	struct vring_chain c;
	uint32_t cap = fz_u8(in) & 1 ? sizeof(f) : 100;
	int r;

	fz_chain(in, &c);
	fz_inline(in, &c);
	r = vnet_tx_frame(&fz_mem, &c, f, cap);
	fz_check(r == -EINVAL || r == -EFAULT || (r >= 14 && r <= 1514 && (uint32_t)r <= cap));
}

static void fz_rx(struct fz_in *in)
{
	static uint8_t f[VNET_FRAME_MAX];
	struct vnet_rx rx;
	bool mrg = fz_u8(in) & 1;
	uint16_t len = fz_u16(in) % (VNET_FRAME_MAX + 2);
	unsigned nch = fz_u8(in) % 8 + 1, sum = 0;
	int r = 0;

	for (unsigned i = 0; i < len && i < sizeof(f); i++)
		f[i] = (uint8_t)i;
	if (vnet_rx_begin(&rx, mrg, len)) {
		fz_check(len < 14 || len > VNET_FRAME_MAX);
		return;
	}
	for (unsigned i = 0; i < nch && r == 0; i++) {
		struct vring_chain c;

		fz_chain(in, &c);
		r = vnet_rx_place(&rx, &fz_mem, &c, f);
		fz_check(r == 0 || r == 1 || r == -EINVAL || r == -EFAULT);
		fz_check(r != 0 || mrg);
	}
	fz_check(rx.nchains <= VNET_RX_MAX_CHAINS && rx.nchains <= nch);
	for (unsigned i = 0; i < rx.nchains; i++)
		sum += rx.used[i].len;
	if (r == 1)
		fz_check(sum == VNET_HDR_LEN + len);
	else if (r < 0)
		fz_check(sum == 0);
}

static void fz_load(struct fz_in *in, struct vnet_ctrl_state *s, uint16_t *status)
{
	uint8_t rec[VNET_SAVE_SIZE];

	fz_bytes(in, rec, sizeof(rec));
	if (vnet_load(s, status, rec, sizeof(rec)) == 0) {
		uint8_t again[VNET_SAVE_SIZE];

		fz_check(vnet_save(s, *status, again, sizeof(again)) == VNET_SAVE_SIZE);
		fz_check(!memcmp(rec, again, sizeof(rec)));
	}
}

/* The rounds after a move: never more RARPs or raises than the starts
 * allow, a raise only with a RARP, active exactly until the last round. */
static void fz_announce(struct fz_in *in, struct vnet_announce *a, uint64_t *now_us)
{
	uint8_t what = fz_u8(in) % 4, guest = fz_u8(in) & 1;
	unsigned act;

	*now_us += 1000ull * fz_u16(in);
	if (what == 0)
		vnet_announce_start(a, guest, *now_us);
	else if (what == 2)
		vnet_announce_ack(a);
	else if (what == 3)
		vnet_announce_stop(a);
	else {
		uint64_t next = a->next_us;
		bool was = vnet_announce_active(a);

		act = vnet_announce_poll(a, *now_us);
		fz_check(!(act & ~(VNET_ANN_RARP | VNET_ANN_RAISE)));
		fz_check(!(act & VNET_ANN_RAISE) || (act & VNET_ANN_RARP));
		fz_check(!act || (was && *now_us >= next && a->next_us > *now_us));
		fz_check(act || !was || *now_us < next);
	}
	fz_check(a->left <= VNET_ANN_RARPS && vnet_announce_active(a) == (a->left > 0));
	fz_check(a->rarps <= VNET_ANN_RARPS * a->started);
	fz_check(a->raised <= VNET_ANN_GUEST * a->started && a->acked <= a->started);
}

static void fz_switch_op(struct fz_in *in, uint8_t op, struct l2sw *sw, uint64_t *now)
{
	uint8_t mac[6], a;

	switch (op) {
	case 0:
		a = fz_u8(in) % 4;
		fz_bytes(in, mac, 6);
		(void)l2sw_port_add(sw, (enum l2sw_port_kind)a, mac, "fz");
		break;
	case 1:
		l2sw_port_del(sw, fz_u8(in) % (L2SW_MAX_PORTS + 2) - 1);
		break;
	case 2:
		fz_forward(in, sw, now);
		break;
	case 3:
		a = fz_u8(in);
		fz_bytes(in, mac, 6);
		if (a == 0xff)
			l2sw_fdb_forget(sw, mac);
		else
			l2sw_fdb_set(sw, mac, a % (L2SW_MAX_PORTS + 2) - 1, *now);
		break;
	default:
		a = fz_u8(in);
		l2sw_port_promisc(sw, a % (L2SW_MAX_PORTS + 2) - 1, fz_u8(in) & 1);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct l2sw sw;
	struct fz_in in = { data, size };
	struct vnet_ctrl_state s;
	uint16_t status = VNET_S_LINK_UP | VNET_S_ANNOUNCE;
	uint64_t now = 0, ann_us = 0;
	unsigned ops = 0;
	struct vnet_announce ann;

	l2sw_init(&sw);
	vnet_ctrl_init(&s);
	memset(fz_ram, 0, sizeof(fz_ram));
	memset(&ann, 0, sizeof(ann));	/* idle, as a NIC that never moved */
	while (in.n && ops++ < 2000) {
		uint8_t op = fz_u8(&in) % 11, a;
		uint16_t gpa;

		if (op <= 4)
			fz_switch_op(&in, op, &sw, &now);
		else if (op == 5)
			fz_ctrl(&in, &s, &status);
		else if (op == 6)
			fz_tx(&in);
		else if (op == 7) {
			fz_rx(&in);
			fz_peek(&in, &s, status);
		}
		else if (op == 8) {
			gpa = fz_u16(&in);
			a = fz_u8(&in);
			for (unsigned i = 0; i < a; i++)
				fz_ram[(uint16_t)(gpa + i)] = fz_u8(&in);
		} else if (op == 9)
			fz_load(&in, &s, &status);
		else
			fz_announce(&in, &ann, &ann_us);
		fz_check_pins(&sw, now);
		fz_check_state(&s, status);
	}
	fz_check_fdb(&sw);
	return 0;
}
