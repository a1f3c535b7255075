/*
 * Unit tests for net/switch/vnet.c (VIRTIO 1.1 5.1): features and config,
 * the transmit header checks, receive placement with and without
 * MRG_RXBUF, the control queue and the migration record, over a fake
 * 1 MiB guest RAM.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "net/switch/vnet.h"

static uint8_t RAM[1 << 20];

static void *t_map(void *ctx, uint64_t gpa, uint32_t len, bool write)
{
	(void)write;
	cr_assert_eq(ctx, RAM);
	cr_assert(len >= 1 && len <= 4096);
	cr_assert_eq(gpa >> 12, (gpa + len - 1) >> 12, "map crosses a page");
	if (gpa >= sizeof(RAM) || len > sizeof(RAM) - gpa)
		return NULL;
	return RAM + gpa;
}

static const struct vring_mem MEM = { t_map, RAM };
static struct vring_chain C;

static void setup(void)
{
	memset(RAM, 0xcc, sizeof(RAM));
	memset(&C, 0, sizeof(C));
}

static void seg(struct vring_chain *c, uint64_t gpa, uint32_t len, bool write)
{
	c->seg[c->nseg++] = (struct vring_seg){ gpa, len, write };
	if (write)
		c->wlen += len;
	else
		c->rlen += len;
}

static void fill_frame(uint8_t *f, uint32_t n, uint8_t seed)
{
	for (uint32_t i = 0; i < n; i++)
		f[i] = (uint8_t)(seed + i * 7);
}

TestSuite(vnet, .init = setup);

Test(vnet, features_and_config)
{
	uint64_t f = vnet_features();
	struct vnet_info in = { { 0x52, 0x54, 0, 1, 2, 3 }, 0 };
	uint8_t cfg[16];

	cr_assert_eq(f, (1ull << 3) | (1ull << 5) | (1ull << 15) | (1ull << 16) | (1ull << 17) |
			(1ull << 18) | (1ull << 21) | (1ull << 32));
	memset(cfg, 0xee, sizeof(cfg));
	vnet_config(&in, VNET_S_LINK_UP | 0x8000, cfg, sizeof(cfg));
	cr_assert_arr_eq(cfg, in.mac, 6);
	cr_assert_eq(ld_le16(cfg + 6), VNET_S_LINK_UP);
	cr_assert_eq(ld_le16(cfg + 8), 1);
	cr_assert_eq(ld_le16(cfg + 10), 1500);
	cr_assert_eq(cfg[12] | cfg[15], 0);
	in.mtu = 9000;
	vnet_config(&in, 3, cfg, VNET_CFG_LEN);
	cr_assert_eq(ld_le16(cfg + 10), 1500);
	cr_assert_eq(ld_le16(cfg + 6), 3);
	in.mtu = 20;
	vnet_config(&in, 0, cfg, VNET_CFG_LEN);
	cr_assert_eq(ld_le16(cfg + 10), 68);
	in.mtu = 1400;
	memset(cfg, 0xee, sizeof(cfg));
	vnet_config(&in, 0, cfg, 4);
	cr_assert_eq(cfg[3], 1);
	cr_assert_eq(cfg[4], 0xee);	/* only len bytes written */
}

/* A transmit chain: header at 0x1000 (its own descriptor), frame across
 * a page boundary at 0x2fd0. */
static void tx_chain(uint32_t n, uint8_t flags, uint8_t gso)
{
	uint8_t h[VNET_HDR_LEN] = { flags, gso, 0xaa, 0xaa, 0xbb, 0xbb, 0, 0, 0, 0, 9, 9 };

	memcpy(RAM + 0x1000, h, sizeof(h));
	fill_frame(RAM + 0x2fd0, n, 1);
	seg(&C, 0x1000, VNET_HDR_LEN, false);
	seg(&C, 0x2fd0, n, false);
}

Test(vnet, tx_strips_header)
{
	uint8_t f[VNET_FRAME_MAX], want[VNET_FRAME_MAX];

	tx_chain(100, 0, 0);
	fill_frame(want, 100, 1);
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, sizeof(f)), 100);
	cr_assert_arr_eq(f, want, 100);
	/* Header and frame in one descriptor (any_header_sg), a full frame. */
	memset(&C, 0, sizeof(C));
	memset(RAM + 0x4000, 0, VNET_HDR_LEN);
	fill_frame(RAM + 0x4000 + VNET_HDR_LEN, VNET_FRAME_MAX, 5);
	fill_frame(want, VNET_FRAME_MAX, 5);
	seg(&C, 0x4000, VNET_HDR_LEN + VNET_FRAME_MAX, false);
	seg(&C, 0x8000, 64, true);	/* a stray writable buffer is ignored */
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, sizeof(f)), VNET_FRAME_MAX);
	cr_assert_arr_eq(f, want, VNET_FRAME_MAX);
}

Test(vnet, tx_bad_header_flags)
{
	uint8_t f[VNET_FRAME_MAX];

	tx_chain(60, 1, 0);		/* NEEDS_CSUM without CSUM */
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, sizeof(f)), -EINVAL);
	memset(&C, 0, sizeof(C));
	tx_chain(60, 0, 1);		/* GSO_TCPV4 without HOST_TSO4 */
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, sizeof(f)), -EINVAL);
	memset(&C, 0, sizeof(C));
	tx_chain(60, 0, 0x80);		/* GSO_ECN */
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, sizeof(f)), -EINVAL);
}

Test(vnet, tx_lengths)
{
	uint8_t f[2048];

	tx_chain(13, 0, 0);		/* runt */
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, sizeof(f)), -EINVAL);
	memset(&C, 0, sizeof(C));
	seg(&C, 0x1000, 8, false);	/* not even a header */
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, sizeof(f)), -EINVAL);
	memset(&C, 0, sizeof(C));
	tx_chain(14, 0, 0);
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, sizeof(f)), 14);
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, 13), -EINVAL);	/* caller's buffer */
	memset(&C, 0, sizeof(C));
	tx_chain(VNET_FRAME_MAX + 1, 0, 0);
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, sizeof(f)), -EINVAL);
	memset(&C, 0, sizeof(C));
	seg(&C, 0x1000, 100, true);	/* wrong direction: only writable */
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, sizeof(f)), -EINVAL);
	memset(&C, 0, sizeof(C));
	seg(&C, 0x1000, VNET_HDR_LEN, false);
	seg(&C, 0xffff0, 60, false);	/* runs off the end of RAM */
	memset(RAM + 0x1000, 0, VNET_HDR_LEN);
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, sizeof(f)), -EFAULT);
}

Test(vnet, rx_begin_lengths)
{
	struct vnet_rx rx;

	cr_assert_eq(vnet_rx_begin(&rx, true, 13), -EINVAL);
	cr_assert_eq(vnet_rx_begin(&rx, true, VNET_FRAME_MAX + 1), -EINVAL);
	cr_assert_eq(vnet_rx_begin(&rx, false, 14), 0);
	cr_assert_eq(vnet_rx_begin(&rx, false, VNET_FRAME_MAX), 0);
}

Test(vnet, rx_single_chain)
{
	struct vnet_rx rx;
	uint8_t f[200];

	fill_frame(f, sizeof(f), 3);
	C.head = 7;
	seg(&C, 0x2000, 2048, true);
	cr_assert_eq(vnet_rx_begin(&rx, false, sizeof(f)), 0);
	cr_assert_eq(vnet_rx_place(&rx, &MEM, &C, f), 1);
	cr_assert_eq(rx.nchains, 1);
	cr_assert_eq(rx.used[0].head, 7);
	cr_assert_eq(rx.used[0].len, VNET_HDR_LEN + sizeof(f));
	for (int i = 0; i < 10; i++)
		cr_assert_eq(RAM[0x2000 + i], 0);
	cr_assert_eq(ld_le16(RAM + 0x2000 + 10), 1);
	cr_assert_arr_eq(RAM + 0x2000 + VNET_HDR_LEN, f, sizeof(f));
	cr_assert_eq(RAM[0x2000 + VNET_HDR_LEN + sizeof(f)], 0xcc);
	/* Done: a further chain is not taken. */
	cr_assert_eq(vnet_rx_place(&rx, &MEM, &C, f), -EINVAL);
	cr_assert_eq(rx.nchains, 1);
}

Test(vnet, rx_without_mrg_too_small_dropped)
{
	struct vnet_rx rx;
	uint8_t f[200];

	fill_frame(f, sizeof(f), 3);
	C.head = 3;
	seg(&C, 0x2000, VNET_HDR_LEN + sizeof(f) - 1, true);
	cr_assert_eq(vnet_rx_begin(&rx, false, sizeof(f)), 0);
	cr_assert_eq(vnet_rx_place(&rx, &MEM, &C, f), -EINVAL);
	cr_assert_eq(rx.nchains, 1);
	cr_assert_eq(rx.used[0].head, 3);
	cr_assert_eq(rx.used[0].len, 0);
	cr_assert_eq(RAM[0x2000], 0xcc);	/* nothing written */
	cr_assert_eq(vnet_rx_place(&rx, &MEM, &C, f), -EINVAL);	/* no second chain */
}

/* Place a frame of n bytes into chains of the given writable sizes, the
 * chain i at 0x1000 * (i + 1).  Returns the last vnet_rx_place result. */
static int rx_chains(struct vnet_rx *rx, const uint8_t *f, uint32_t n, const uint32_t *sz,
		     int nch)
{
	int r = -1;

	cr_assert_eq(vnet_rx_begin(rx, true, n), 0);
	for (int i = 0; i < nch; i++) {
		struct vring_chain c = { 0 };

		c.head = (uint16_t)(100 + i);
		seg(&c, 0x1000 * (uint64_t)(i + 1), sz[i], true);
		r = vnet_rx_place(rx, &MEM, &c, f);
		if (r)
			break;
	}
	return r;
}

Test(vnet, rx_mrg_two_chains)
{
	static const uint32_t sz[] = { 1000, 1000 };
	struct vnet_rx rx;
	uint8_t f[1500];

	fill_frame(f, sizeof(f), 9);
	cr_assert_eq(rx_chains(&rx, f, sizeof(f), sz, 2), 1);
	cr_assert_eq(rx.nchains, 2);
	cr_assert_eq(ld_le16(RAM + 0x1000 + 10), 2);
	cr_assert_eq(rx.used[0].head, 100);
	cr_assert_eq(rx.used[0].len, 1000);
	cr_assert_eq(rx.used[1].head, 101);
	cr_assert_eq(rx.used[1].len, 1500 - (1000 - VNET_HDR_LEN));
	cr_assert_arr_eq(RAM + 0x1000 + VNET_HDR_LEN, f, 988);
	cr_assert_arr_eq(RAM + 0x2000, f + 988, 1500 - 988);
}

Test(vnet, rx_mrg_three_chains)
{
	static const uint32_t sz[] = { 512, 512, 4096 };
	struct vnet_rx rx;
	uint8_t f[1200];

	fill_frame(f, sizeof(f), 4);
	cr_assert_eq(rx_chains(&rx, f, sizeof(f), sz, 3), 1);
	cr_assert_eq(rx.nchains, 3);
	cr_assert_eq(ld_le16(RAM + 0x1000 + 10), 3);
	cr_assert_eq(rx.used[0].len, 512);
	cr_assert_eq(rx.used[1].len, 512);
	cr_assert_eq(rx.used[2].len, 1200 - 500 - 512);
	cr_assert_arr_eq(RAM + 0x3000, f + 1012, 188);
	/* The same frame fits one mergeable buffer: num_buffers stays 1. */
	setup();
	cr_assert_eq(rx_chains(&rx, f, sizeof(f), sz + 2, 1), 1);
	cr_assert_eq(ld_le16(RAM + 0x1000 + 10), 1);
	cr_assert_eq(rx.used[0].len, VNET_HDR_LEN + 1200);
}

Test(vnet, rx_mrg_header_split_across_descriptors)
{
	struct vring_chain c2 = { 0 };
	struct vnet_rx rx;
	uint8_t f[100];

	fill_frame(f, sizeof(f), 2);
	C.head = 1;
	seg(&C, 0x5000, 11, true);	/* num_buffers straddles two descriptors */
	seg(&C, 0x7000, 20, true);
	seg(&c2, 0x9000, 4096, true);
	cr_assert_eq(vnet_rx_begin(&rx, true, sizeof(f)), 0);
	cr_assert_eq(vnet_rx_place(&rx, &MEM, &C, f), 0);
	cr_assert_eq(vnet_rx_place(&rx, &MEM, &c2, f), 1);
	cr_assert_eq(RAM[0x5000 + 10], 2);
	cr_assert_eq(RAM[0x7000], 0);
	cr_assert_arr_eq(RAM + 0x7001, f, 19);
	cr_assert_arr_eq(RAM + 0x9000, f + 19, 81);
}

Test(vnet, rx_mrg_errors_zero_every_used_length)
{
	static const uint32_t tiny[] = { 8 };
	static const uint32_t zero[] = { 100, 0 };
	uint32_t ten[VNET_RX_MAX_CHAINS + 1];
	struct vnet_rx rx;
	uint8_t f[VNET_FRAME_MAX];

	fill_frame(f, sizeof(f), 1);
	cr_assert_eq(rx_chains(&rx, f, 60, tiny, 1), -EINVAL);	/* no room for the header */
	cr_assert_eq(rx.nchains, 1);
	cr_assert_eq(rx.used[0].len, 0);
	cr_assert_eq(rx_chains(&rx, f, 200, zero, 2), -EINVAL);	/* no progress */
	cr_assert_eq(rx.nchains, 2);
	cr_assert_eq(rx.used[0].len + rx.used[1].len, 0);
	/* A first buffer holding just the header is fine. */
	{
		static const uint32_t hdr_only[] = { VNET_HDR_LEN, 100 };

		cr_assert_eq(rx_chains(&rx, f, 60, hdr_only, 2), 1);
		cr_assert_eq(rx.used[0].len, VNET_HDR_LEN);
		cr_assert_eq(rx.used[1].len, 60);
		cr_assert_eq(ld_le16(RAM + 0x1000 + 10), 2);
	}
	for (int i = 0; i <= VNET_RX_MAX_CHAINS; i++)
		ten[i] = 12;
	cr_assert_eq(rx_chains(&rx, f, sizeof(f), ten, VNET_RX_MAX_CHAINS + 1), -EINVAL);
	cr_assert_eq(rx.nchains, VNET_RX_MAX_CHAINS);
	for (int i = 0; i < VNET_RX_MAX_CHAINS; i++)
		cr_assert_eq(rx.used[i].len, 0);
	/* Unmapped guest memory. */
	{
		struct vring_chain c = { 0 };

		seg(&c, 0x200000, 2048, true);
		cr_assert_eq(vnet_rx_begin(&rx, true, 60), 0);
		cr_assert_eq(vnet_rx_place(&rx, &MEM, &c, f), -EFAULT);
		cr_assert_eq(rx.used[0].len, 0);
	}
}

/* ---- control queue ---- */

static struct vnet_ctrl_state S;

/* A command: header + data readable at 0x1000, ack writable at 0x3000. */
static int ctrl(uint8_t cls, uint8_t cmd, const void *data, uint32_t dlen)
{
	uint32_t written = 99;
	int r;

	memset(&C, 0, sizeof(C));
	RAM[0x1000] = cls;
	RAM[0x1001] = cmd;
	if (dlen)
		memcpy(RAM + 0x1002, data, dlen);
	seg(&C, 0x1000, 2 + dlen, false);
	seg(&C, 0x3000, 1, true);
	RAM[0x3000] = 0xcc;
	r = vnet_ctrl(&MEM, &C, &S, &written);
	cr_assert_eq(written, 1);
	cr_assert_eq(RAM[0x3000], r);
	return r;
}

Test(vnet, ctrl_rx_mode)
{
	uint8_t on = 1, off = 0, two = 2, pair[2] = { 1, 1 };

	vnet_ctrl_init(&S);
	cr_assert_eq(ctrl(VNET_CTRL_RX, VNET_CTRL_RX_PROMISC, &on, 1), VNET_OK);
	cr_assert(S.promisc);
	cr_assert_eq(ctrl(VNET_CTRL_RX, VNET_CTRL_RX_ALLMULTI, &on, 1), VNET_OK);
	cr_assert(S.allmulti);
	cr_assert_eq(ctrl(VNET_CTRL_RX, VNET_CTRL_RX_PROMISC, &off, 1), VNET_OK);
	cr_assert(!S.promisc);
	cr_assert_eq(ctrl(VNET_CTRL_RX, 5, &on, 1), VNET_OK);	/* NOBCAST: OK'd, ignored */
	cr_assert_eq(ctrl(VNET_CTRL_RX, 6, &on, 1), VNET_ERR);
	cr_assert_eq(ctrl(VNET_CTRL_RX, VNET_CTRL_RX_PROMISC, &two, 1), VNET_ERR);
	cr_assert_eq(ctrl(VNET_CTRL_RX, VNET_CTRL_RX_PROMISC, pair, 2), VNET_ERR);
	cr_assert_eq(ctrl(VNET_CTRL_RX, VNET_CTRL_RX_PROMISC, NULL, 0), VNET_ERR);
	cr_assert(!S.promisc && S.allmulti);
}

/* TABLE_SET data: nu unicast MACs then nm multicast MACs. */
static uint32_t mac_tables(uint8_t *d, uint32_t nu, uint32_t nm, uint32_t claim_nu)
{
	uint32_t o = 0;

	st_le32(d, claim_nu);
	o += 4;
	for (uint32_t i = 0; i < nu; i++, o += 6)
		memcpy(d + o, (uint8_t[6]){ 0x52, 0x54, 0, 0, 9, (uint8_t)i }, 6);
	st_le32(d + o, nm);
	o += 4;
	for (uint32_t i = 0; i < nm; i++, o += 6)
		memcpy(d + o, (uint8_t[6]){ 0x01, 0x00, 0x5e, 0, 0, (uint8_t)i }, 6);
	return o;
}

Test(vnet, ctrl_mac_table)
{
	static uint8_t d[8 + 6 * 200];
	const uint8_t own[6] = { 0x52, 0x54, 0, 0, 0, 1 };
	uint32_t n;

	vnet_ctrl_init(&S);
	n = mac_tables(d, 2, 3, 2);
	cr_assert_eq(ctrl(VNET_CTRL_MAC, VNET_CTRL_MAC_TABLE_SET, d, n), VNET_OK);
	cr_assert_eq(S.nuc, 2);
	cr_assert_eq(S.nmc, 3);
	cr_assert_eq(S.uc[1][5], 1);
	cr_assert_eq(S.mc[2][5], 2);
	cr_assert(!S.uc_overflow && !S.mc_overflow);
	cr_assert(vnet_rx_accept(&S, own, (uint8_t[6]){ 0x01, 0x00, 0x5e, 0, 0, 2 }));
	cr_assert(!vnet_rx_accept(&S, own, (uint8_t[6]){ 0x01, 0x00, 0x5e, 0, 0, 3 }));
	cr_assert(vnet_rx_accept(&S, own, (uint8_t[6]){ 0x52, 0x54, 0, 0, 9, 1 }));
	cr_assert(!vnet_rx_accept(&S, own, (uint8_t[6]){ 0x52, 0x54, 0, 0, 9, 2 }));
	cr_assert(vnet_rx_accept(&S, own, own));
	cr_assert(vnet_rx_accept(&S, own, (uint8_t[6]){ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }));
	/* Empty tables clear them. */
	n = mac_tables(d, 0, 0, 0);
	cr_assert_eq(ctrl(VNET_CTRL_MAC, VNET_CTRL_MAC_TABLE_SET, d, n), VNET_OK);
	cr_assert_eq(S.nuc + S.nmc, 0);
	cr_assert_eq(S.uc[1][5], 0);
}

Test(vnet, ctrl_mac_table_oversized_and_malformed)
{
	static uint8_t d[8 + 6 * 200];
	const uint8_t own[6] = { 0x52, 0x54, 0, 0, 0, 1 };
	struct vnet_ctrl_state before;
	uint32_t n;

	vnet_ctrl_init(&S);
	/* 65 unicast entries: overflow, accepted, every unicast passes. */
	n = mac_tables(d, VNET_MAC_TABLE + 1, 1, VNET_MAC_TABLE + 1);
	cr_assert_eq(ctrl(VNET_CTRL_MAC, VNET_CTRL_MAC_TABLE_SET, d, n), VNET_OK);
	cr_assert(S.uc_overflow && !S.mc_overflow);
	cr_assert_eq(S.nuc, 0);
	cr_assert_eq(S.nmc, 1);
	cr_assert(vnet_rx_accept(&S, own, (uint8_t[6]){ 0x02, 9, 9, 9, 9, 9 }));
	before = S;
	/* A count the data does not hold, a huge count, trailing bytes,
	 * a missing second table, a truncated count: all ERR, state kept. */
	n = mac_tables(d, 2, 0, 3);
	cr_assert_eq(ctrl(VNET_CTRL_MAC, VNET_CTRL_MAC_TABLE_SET, d, n), VNET_ERR);
	n = mac_tables(d, 2, 0, 0xffffffff);
	cr_assert_eq(ctrl(VNET_CTRL_MAC, VNET_CTRL_MAC_TABLE_SET, d, n), VNET_ERR);
	n = mac_tables(d, 2, 0, 2);
	cr_assert_eq(ctrl(VNET_CTRL_MAC, VNET_CTRL_MAC_TABLE_SET, d, n + 1), VNET_ERR);
	cr_assert_eq(ctrl(VNET_CTRL_MAC, VNET_CTRL_MAC_TABLE_SET, d, n - 4), VNET_ERR);
	cr_assert_eq(ctrl(VNET_CTRL_MAC, VNET_CTRL_MAC_TABLE_SET, d, 3), VNET_ERR);
	cr_assert_eq(ctrl(VNET_CTRL_MAC, VNET_CTRL_MAC_ADDR_SET, d, 6), VNET_ERR);
	cr_assert_eq(ctrl(VNET_CTRL_MAC, 2, d, 6), VNET_ERR);
	cr_assert_eq(memcmp(&before, &S, sizeof(S)), 0);
}

Test(vnet, ctrl_announce_and_others)
{
	uint8_t x = 0;

	vnet_ctrl_init(&S);
	cr_assert_eq(ctrl(VNET_CTRL_ANNOUNCE, VNET_CTRL_ANNOUNCE_ACK, NULL, 0), VNET_OK);
	cr_assert(S.announce_acked);
	S.announce_acked = false;
	cr_assert_eq(ctrl(VNET_CTRL_ANNOUNCE, VNET_CTRL_ANNOUNCE_ACK, &x, 1), VNET_ERR);
	cr_assert_eq(ctrl(VNET_CTRL_ANNOUNCE, 1, NULL, 0), VNET_ERR);
	cr_assert(!S.announce_acked);
	cr_assert_eq(ctrl(2, 0, &x, 1), VNET_ERR);	/* VLAN: not offered */
	cr_assert_eq(ctrl(4, 0, &x, 1), VNET_ERR);	/* MQ: not offered */
	cr_assert_eq(ctrl(0xff, 0, &x, 1), VNET_ERR);
}

Test(vnet, ctrl_malformed_chains)
{
	uint32_t written = 99;
	struct vnet_ctrl_state before;

	vnet_ctrl_init(&S);
	S.promisc = true;
	before = S;
	/* Too short: one readable byte. */
	seg(&C, 0x1000, 1, false);
	seg(&C, 0x3000, 1, true);
	RAM[0x1000] = VNET_CTRL_ANNOUNCE;
	cr_assert_eq(vnet_ctrl(&MEM, &C, &S, &written), VNET_ERR);
	cr_assert_eq(written, 1);
	cr_assert_eq(RAM[0x3000], VNET_ERR);
	/* Wrong direction: the command sits in a writable buffer. */
	memset(&C, 0, sizeof(C));
	RAM[0x3000] = VNET_CTRL_ANNOUNCE;
	RAM[0x3001] = 0;
	seg(&C, 0x3000, 3, true);
	cr_assert_eq(vnet_ctrl(&MEM, &C, &S, &written), VNET_ERR);
	cr_assert_eq(RAM[0x3000], VNET_ERR);
	cr_assert(!S.announce_acked);
	/* No writable byte for the ack: nothing applied, nothing written. */
	memset(&C, 0, sizeof(C));
	RAM[0x1000] = VNET_CTRL_RX;
	RAM[0x1001] = VNET_CTRL_RX_PROMISC;
	RAM[0x1002] = 0;
	seg(&C, 0x1000, 3, false);
	cr_assert_eq(vnet_ctrl(&MEM, &C, &S, &written), -EINVAL);
	cr_assert_eq(written, 0);
	/* The ack buffer does not map: not applied either. */
	seg(&C, 0x400000, 1, true);
	cr_assert_eq(vnet_ctrl(&MEM, &C, &S, &written), -EFAULT);
	cr_assert_eq(written, 0);
	/* Command bytes that do not map: ERR. */
	memset(&C, 0, sizeof(C));
	seg(&C, 0x400000, 3, false);
	seg(&C, 0x3000, 1, true);
	cr_assert_eq(vnet_ctrl(&MEM, &C, &S, &written), VNET_ERR);
	cr_assert_eq(memcmp(&before, &S, sizeof(S)), 0);
}

Test(vnet, rx_accept_modes)
{
	const uint8_t own[6] = { 0x52, 0x54, 0, 0, 0, 1 };
	const uint8_t other[6] = { 0x52, 0x54, 0, 0, 0, 2 };
	const uint8_t mc[6] = { 0x33, 0x33, 0, 0, 0, 1 };

	vnet_ctrl_init(&S);
	cr_assert(vnet_rx_accept(&S, own, own));
	cr_assert(!vnet_rx_accept(&S, own, other));
	cr_assert(!vnet_rx_accept(&S, own, mc));
	S.allmulti = true;
	cr_assert(vnet_rx_accept(&S, own, mc));
	cr_assert(!vnet_rx_accept(&S, own, other));
	S.allmulti = false;
	S.promisc = true;
	cr_assert(vnet_rx_accept(&S, own, other));
	cr_assert(vnet_rx_accept(&S, own, mc));
}

/* ---- migration record ---- */

static void state_sample(struct vnet_ctrl_state *s)
{
	vnet_ctrl_init(s);
	s->allmulti = true;
	s->announce_acked = true;
	s->mc_overflow = true;
	s->nuc = 3;
	for (int i = 0; i < 3; i++)
		memcpy(s->uc[i], (uint8_t[6]){ 2, 0, 0, 0, 0, (uint8_t)(i + 1) }, 6);
}

Test(vnet, save_load_round_trip)
{
	struct vnet_ctrl_state s, t;
	uint8_t rec[VNET_SAVE_SIZE + 1];
	uint16_t st = 0;

	state_sample(&s);
	cr_assert_eq(vnet_save(&s, VNET_S_LINK_UP | VNET_S_ANNOUNCE, rec, VNET_SAVE_SIZE - 1),
		     -ENOSPC);
	cr_assert_eq(vnet_save(&s, VNET_S_LINK_UP | VNET_S_ANNOUNCE, rec, sizeof(rec)),
		     VNET_SAVE_SIZE);
	cr_assert_eq(rec[0], VNET_SAVE_VERSION);
	memset(&t, 0x5a, sizeof(t));
	cr_assert_eq(vnet_load(&t, &st, rec, VNET_SAVE_SIZE), 0);
	cr_assert_eq(memcmp(&s, &t, sizeof(s)), 0);
	cr_assert_eq(st, VNET_S_LINK_UP | VNET_S_ANNOUNCE);
}

Test(vnet, load_rejects_corruption)
{
	struct vnet_ctrl_state s, t, keep;
	uint8_t rec[VNET_SAVE_SIZE], bad[VNET_SAVE_SIZE];
	uint16_t st = 0x7777;
	static const struct {
		unsigned off;
		uint8_t val;
	} cases[] = {
		{ 0, 2 },			/* version */
		{ 1, 0x20 },			/* unknown flag */
		{ 2, 4 },			/* unknown status bit */
		{ 3, 0x80 },
		{ 4, VNET_MAC_TABLE + 1 },	/* count out of range */
		{ 4, 2 },			/* entry 2 is not zero */
		{ 5, 1 },			/* a count with mc_overflow set */
		{ 6, 1 },			/* padding */
		{ 7, 1 },
		{ 8 + 6 * 3, 1 },		/* unused uc entry not zero */
		{ VNET_SAVE_SIZE - 1, 1 },	/* unused mc entry not zero */
	};

	state_sample(&s);
	cr_assert_eq(vnet_save(&s, 1, rec, sizeof(rec)), VNET_SAVE_SIZE);
	memset(&t, 0x5a, sizeof(t));
	keep = t;
	cr_assert_eq(vnet_load(&t, &st, rec, VNET_SAVE_SIZE - 1), -EINVAL);
	cr_assert_eq(vnet_load(&t, &st, rec, 0), -EINVAL);
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, rec, sizeof(rec));
		bad[cases[i].off] = cases[i].val;
		cr_assert_eq(vnet_load(&t, &st, bad, sizeof(bad)), -EINVAL, "case %u", i);
	}
	cr_assert_eq(memcmp(&t, &keep, sizeof(t)), 0);
	cr_assert_eq(st, 0x7777);
	cr_assert_eq(vnet_load(&t, &st, rec, sizeof(rec)), 0);	/* the original still loads */
	cr_assert_eq(st, 1);
}

/* A chain whose rlen/wlen claim more than its segments hold: the short
 * copies vring_read/vring_write report are errors, never frame bytes. */
Test(vnet, lying_chain_lengths)
{
	uint8_t f[VNET_FRAME_MAX];
	struct vnet_rx rx;
	uint32_t written = 9;

	tx_chain(40, 0, 0);
	C.rlen += 100;
	cr_assert_eq(vnet_tx_frame(&MEM, &C, f, sizeof(f)), -EINVAL);
	memset(&C, 0, sizeof(C));
	seg(&C, 0x2000, 50, true);
	C.wlen = 2000;
	cr_assert_eq(vnet_rx_begin(&rx, false, 100), 0);
	cr_assert_eq(vnet_rx_place(&rx, &MEM, &C, f), -EINVAL);
	cr_assert_eq(rx.used[0].len, 0);
	memset(&C, 0, sizeof(C));
	vnet_ctrl_init(&S);
	RAM[0x1000] = VNET_CTRL_RX;
	RAM[0x1001] = VNET_CTRL_RX_PROMISC;
	seg(&C, 0x1000, 2, false);
	C.rlen = 3;		/* the data byte is not there */
	seg(&C, 0x3000, 1, true);
	cr_assert_eq(vnet_ctrl(&MEM, &C, &S, &written), VNET_ERR);
	cr_assert(!S.promisc);
	memset(&C, 0, sizeof(C));
	seg(&C, 0x1000, 2, false);
	C.wlen = 1;		/* no writable segment at all */
	cr_assert_eq(vnet_ctrl(&MEM, &C, &S, &written), -EINVAL);
	cr_assert_eq(written, 0);
}

/* The rounds after a move: RARPs at 0, 50, 150, 250 and 350 ms; the
 * guest asked on the first three until it acks. */
Test(vnet, announce_rounds)
{
	static const uint64_t due[VNET_ANN_RARPS] = { 0, 50000, 150000, 250000, 350000 };
	struct vnet_announce a;
	const uint64_t t0 = 1000000;

	memset(&a, 0, sizeof(a));
	cr_assert_not(vnet_announce_active(&a), "all zero is idle (a fresh NIC)");
	cr_assert_eq(vnet_announce_poll(&a, 0), 0u);
	vnet_announce_start(&a, true, t0);
	for (int r = 0; r < VNET_ANN_RARPS; r++) {
		unsigned want = VNET_ANN_RARP | (r < VNET_ANN_GUEST ? VNET_ANN_RAISE : 0);

		if (r)
			cr_assert_eq(vnet_announce_poll(&a, t0 + due[r] - 1), 0u, "early %d", r);
		cr_assert_eq(vnet_announce_poll(&a, t0 + due[r]), want, "round %d", r);
		cr_assert_eq(vnet_announce_poll(&a, t0 + due[r]), 0u, "once per round");
	}
	cr_assert_not(vnet_announce_active(&a));
	cr_assert_eq(vnet_announce_poll(&a, t0 + 10000000), 0u);
	cr_assert_eq(a.rarps, VNET_ANN_RARPS);
	cr_assert_eq(a.raised, VNET_ANN_GUEST);
	cr_assert_eq(a.started, 1);
}

Test(vnet, announce_ack_stops_raising)
{
	struct vnet_announce a;

	memset(&a, 0, sizeof(a));
	vnet_announce_start(&a, true, 0);
	cr_assert_eq(vnet_announce_poll(&a, 0), VNET_ANN_RARP | VNET_ANN_RAISE);
	vnet_announce_ack(&a);
	cr_assert_eq(a.acked, 1);
	cr_assert_eq(vnet_announce_poll(&a, 50000), VNET_ANN_RARP, "RARPs go on, no raise");
	vnet_announce_ack(&a);		/* a second ack: nothing was asked */
	cr_assert_eq(a.acked, 1);
	/* A guest without GUEST_ANNOUNCE only gets the RARPs. */
	vnet_announce_start(&a, false, 100);
	cr_assert(vnet_announce_active(&a));
	cr_assert_eq(vnet_announce_poll(&a, 100), VNET_ANN_RARP);
	cr_assert_eq(a.started, 2);
	cr_assert_eq(a.raised, 1);
	/* Leaving again: no more rounds. */
	vnet_announce_stop(&a);
	cr_assert_not(vnet_announce_active(&a));
	cr_assert_eq(vnet_announce_poll(&a, 10000000), 0u);
}

/* A main loop that comes late gets one round, not a burst. */
Test(vnet, announce_late_caller)
{
	struct vnet_announce a;

	memset(&a, 0, sizeof(a));
	vnet_announce_start(&a, false, 0);
	cr_assert_eq(vnet_announce_poll(&a, 0), VNET_ANN_RARP);
	cr_assert_eq(vnet_announce_poll(&a, 900000), VNET_ANN_RARP);
	cr_assert_eq(vnet_announce_poll(&a, 900001), 0u);
	cr_assert_eq(a.next_us, 900000 + VNET_ANN_STEP_US);
}

/* The status bit a move leaves for the guest travels with the record. */
Test(vnet, save_load_keeps_a_pending_announce)
{
	struct vnet_ctrl_state s, t;
	uint8_t rec[VNET_SAVE_SIZE];
	uint16_t st = 0;

	vnet_ctrl_init(&s);
	s.promisc = true;
	cr_assert_eq(vnet_save(&s, VNET_S_LINK_UP | VNET_S_ANNOUNCE, rec, sizeof(rec)),
		     VNET_SAVE_SIZE);
	cr_assert_eq(vnet_load(&t, &st, rec, sizeof(rec)), 0);
	cr_assert_eq(st, VNET_S_LINK_UP | VNET_S_ANNOUNCE);
	cr_assert(t.promisc);
}

Test(vnet, guest_announce_is_offered)
{
	uint64_t f = vnet_features();

	cr_assert(f & (1ull << VNET_F_GUEST_ANNOUNCE));
	cr_assert(f & (1ull << VNET_F_CTRL_VQ), "GUEST_ANNOUNCE needs the control queue");
	cr_assert(f & (1ull << VNET_F_STATUS), "the driver reads S_ANNOUNCE in status");
}
