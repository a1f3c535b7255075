/*
 * Unit tests for net/switch/l2sw.c: learning, forwarding, flooding,
 * 802.1D filtering, ageing, eviction, pinned host/guest MACs, the guest
 * source check and the unicast filter on guest ports.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "net/switch/l2sw.h"

static struct l2sw SW;
static int UP, HOST, G1, G2;

static const uint8_t M_UP[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t M_HOST[6] = { 0x02, 0, 0, 0, 0, 0x02 };
static const uint8_t M_G1[6] = { 0x52, 0x54, 0, 0, 0, 0x11 };
static const uint8_t M_G2[6] = { 0x52, 0x54, 0, 0, 0, 0x12 };
static const uint8_t M_R1[6] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55 };	/* remote on the LAN */
static const uint8_t M_R2[6] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x66 };
static const uint8_t M_BC[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t M_MC[6] = { 0x33, 0x33, 0, 0, 0, 0x01 };

#define BIT(p) (1u << (p))

static void setup(void)
{
	l2sw_init(&SW);
	UP = l2sw_port_add(&SW, L2SW_UPLINK, M_UP, "uplink");
	HOST = l2sw_port_add(&SW, L2SW_HOST, M_HOST, "host");
	G1 = l2sw_port_add(&SW, L2SW_GUEST, M_G1, "vm1");
	G2 = l2sw_port_add(&SW, L2SW_GUEST, M_G2, "vm2");
	cr_assert(UP >= 0 && HOST >= 0 && G1 >= 0 && G2 >= 0);
}

/* Forward a minimal frame dst <- src on port in at time t. */
static int fwd(int in, const uint8_t *dst, const uint8_t *src, uint64_t t, uint32_t *out)
{
	uint8_t f[60] = { 0 };

	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x08;
	return l2sw_forward(&SW, in, f, sizeof(f), t, out);
}

TestSuite(l2sw, .init = setup);

Test(l2sw, ports_and_pins)
{
	cr_assert_eq(UP, 0);
	cr_assert_eq(G2, 3);
	cr_assert_str_eq(SW.port[G1].name, "vm1");
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_HOST, 0), HOST);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_G1, 0), G1);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_UP, 0), -1);	/* the uplink's MAC is not pinned */
	cr_assert_eq(l2sw_port_add(&SW, L2SW_GUEST, M_MC, "bad"), -EINVAL);
	cr_assert_eq(l2sw_port_add(&SW, L2SW_GUEST, NULL, "bad"), -EINVAL);
	cr_assert_eq(l2sw_port_add(&SW, L2SW_GUEST, M_G1, "dup"), -EEXIST);
	cr_assert_eq(l2sw_port_add(&SW, L2SW_HOST, M_G2, "dup"), -EEXIST);
	for (int i = 4; i < L2SW_MAX_PORTS; i++) {
		uint8_t m[6] = { 0x52, 0x54, 0, 0, 1, (uint8_t)i };

		cr_assert_eq(l2sw_port_add(&SW, L2SW_GUEST, m, "a-very-long-port-name"), i);
	}
	cr_assert_eq(strlen(SW.port[5].name), 15);
	cr_assert_eq(l2sw_port_add(&SW, L2SW_GUEST, M_R1, "x"), -ENOSPC);
}

Test(l2sw, learn_then_unicast)
{
	uint32_t out;

	/* Unknown destination: flooded, but not to guests that do not own it. */
	cr_assert_eq(fwd(UP, M_HOST, M_R1, 1, &out), 0);
	cr_assert_eq(out, BIT(HOST));
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_R1, 1), UP);
	cr_assert_eq(fwd(G1, M_R1, M_G1, 2, &out), 0);
	cr_assert_eq(out, BIT(UP));
	cr_assert_eq(fwd(UP, M_G1, M_R1, 3, &out), 0);
	cr_assert_eq(out, BIT(G1));
	cr_assert_eq(SW.port[G1].st.tx, 1);
	cr_assert_eq(SW.port[UP].st.rx, 2);
	cr_assert_eq(SW.port[UP].st.flooded, 0);
}

Test(l2sw, unknown_unicast_floods)
{
	uint32_t out;

	cr_assert_eq(fwd(HOST, M_R2, M_HOST, 1, &out), 0);
	cr_assert_eq(out, BIT(UP));	/* guests filter foreign unicast */
	cr_assert_eq(SW.port[HOST].st.flooded, 1);
	l2sw_port_promisc(&SW, G2, true);
	cr_assert_eq(fwd(HOST, M_R2, M_HOST, 2, &out), 0);
	cr_assert_eq(out, BIT(UP) | BIT(G2));
	cr_assert_eq(fwd(G1, M_R2, M_G1, 3, &out), 0);
	cr_assert_eq(out, BIT(UP) | BIT(HOST) | BIT(G2));
}

Test(l2sw, broadcast_and_multicast_reach_everyone_else)
{
	uint32_t out;

	cr_assert_eq(fwd(G1, M_BC, M_G1, 1, &out), 0);
	cr_assert_eq(out, BIT(UP) | BIT(HOST) | BIT(G2));
	cr_assert_eq(fwd(UP, M_MC, M_R1, 1, &out), 0);
	cr_assert_eq(out, BIT(HOST) | BIT(G1) | BIT(G2));
	cr_assert_eq(SW.port[UP].st.flooded, 1);
}

Test(l2sw, same_port_is_filtered)
{
	uint32_t out = 0xffff;

	cr_assert_eq(fwd(UP, M_BC, M_R1, 1, &out), 0);
	cr_assert_eq(fwd(UP, M_BC, M_R2, 1, &out), 0);
	cr_assert_eq(fwd(UP, M_R2, M_R1, 2, &out), 0);	/* both on the LAN side */
	cr_assert_eq(out, 0);
	cr_assert_eq(SW.port[UP].st.dropped_filter, 1);
}

Test(l2sw, guest_spoof_dropped)
{
	uint32_t out = 0xffff;

	cr_assert_eq(fwd(G1, M_BC, M_G2, 1, &out), -EPERM);
	cr_assert_eq(out, 0);
	cr_assert_eq(SW.port[G1].st.dropped_spoof, 1);
	cr_assert_eq(SW.port[G1].st.rx, 0);
	cr_assert_eq(fwd(G1, M_BC, M_R1, 1, &out), -EPERM);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_R1, 1), -1);	/* not learned */
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_G2, 1), G2);
}

Test(l2sw, runt_and_group_source)
{
	uint8_t f[14] = { 0 };
	uint32_t out;

	memcpy(f, M_HOST, 6);
	memcpy(f + 6, M_R1, 6);
	cr_assert_eq(l2sw_forward(&SW, UP, f, 13, 1, &out), -EINVAL);
	cr_assert_eq(l2sw_forward(&SW, UP, f, 14, 1, &out), 0);
	cr_assert_eq(fwd(UP, M_HOST, M_MC, 1, &out), -EINVAL);
	cr_assert_eq(fwd(UP, M_HOST, M_BC, 1, &out), -EINVAL);
	cr_assert_eq(SW.port[UP].st.dropped_runt, 3);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_MC, 1), -1);
	cr_assert_eq(l2sw_forward(&SW, 7, f, 14, 1, &out), -EINVAL);	/* unused port */
	cr_assert_eq(l2sw_forward(&SW, -1, f, 14, 1, &out), -EINVAL);
	cr_assert_eq(l2sw_forward(&SW, 99, f, 14, 1, &out), -EINVAL);
}

Test(l2sw, move_is_counted)
{
	uint32_t out;

	cr_assert_eq(fwd(UP, M_BC, M_R1, 1, &out), 0);
	cr_assert_eq(fwd(HOST, M_BC, M_R1, 2, &out), 0);	/* host may bridge others */
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_R1, 2), HOST);
	cr_assert_eq(SW.fdb_moves, 1);
}

Test(l2sw, pinned_guest_mac_not_stolen)
{
	uint32_t out;

	cr_assert_eq(fwd(UP, M_BC, M_G1, 1, &out), 0);	/* the LAN claims vm1's MAC */
	cr_assert_eq(SW.fdb_pin_denied, 1);
	cr_assert_eq(SW.fdb_moves, 0);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_G1, 1), G1);
	cr_assert_eq(fwd(HOST, M_G1, M_HOST, 2, &out), 0);
	cr_assert_eq(out, BIT(G1));
	cr_assert_eq(fwd(UP, M_BC, M_HOST, 3, &out), 0);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_HOST, 3), HOST);
	cr_assert_eq(SW.fdb_pin_denied, 2);
}

Test(l2sw, ageing)
{
	uint32_t out;
	uint64_t t0 = 1000;

	cr_assert_eq(fwd(UP, M_BC, M_R1, t0, &out), 0);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_R1, t0 + L2SW_AGE_NS - 1), UP);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_R1, t0 + L2SW_AGE_NS), -1);
	cr_assert_eq(fwd(G1, M_R1, M_G1, t0 + L2SW_AGE_NS, &out), 0);
	cr_assert_eq(out, BIT(UP) | BIT(HOST));		/* flooded again */
	/* Refreshed by traffic: lives another ageing time. */
	cr_assert_eq(fwd(UP, M_BC, M_R1, t0 + L2SW_AGE_NS, &out), 0);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_R1, t0 + 2 * L2SW_AGE_NS - 1), UP);
	/* Pinned entries never age. */
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_G1, 100 * L2SW_AGE_NS), G1);
	cr_assert_eq(SW.fdb_moves, 0);	/* re-learning an aged entry is no move */
}

Test(l2sw, full_fdb_evicts_oldest)
{
	uint32_t out;
	int n = L2SW_FDB_SIZE - 2;	/* the host and two guests are pinned; one spare */

	for (int i = 0; i <= n; i++) {
		uint8_t m[6] = { 0x00, 0xaa, 0, 0, (uint8_t)(i >> 8), (uint8_t)i };

		cr_assert_eq(fwd(UP, M_BC, m, 10 + (uint64_t)i, &out), 0);
	}
	cr_assert_eq(SW.fdb_full, 2);
	{
		uint8_t m0[6] = { 0x00, 0xaa, 0, 0, 0, 0 }, m1[6] = { 0x00, 0xaa, 0, 0, 0, 1 };
		uint8_t m2[6] = { 0x00, 0xaa, 0, 0, 0, 2 }, ml[6] = { 0x00, 0xaa, 0, 0, 0, 254 };

		cr_assert_eq(l2sw_fdb_lookup(&SW, m0, 300), -1);
		cr_assert_eq(l2sw_fdb_lookup(&SW, m1, 300), -1);
		cr_assert_eq(l2sw_fdb_lookup(&SW, m2, 300), UP);
		cr_assert_eq(l2sw_fdb_lookup(&SW, ml, 300), UP);
	}
	for (int p = HOST; p <= G2; p++)
		cr_assert_eq(l2sw_fdb_lookup(&SW, SW.port[p].mac, 300), p);
}

Test(l2sw, port_del_forgets)
{
	uint32_t out;

	l2sw_port_del(&SW, G2);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_G2, 1), -1);
	cr_assert(!SW.port[G2].used);
	cr_assert_eq(fwd(UP, M_BC, M_R1, 1, &out), 0);
	cr_assert_eq(out, BIT(HOST) | BIT(G1));
	cr_assert_eq(l2sw_port_add(&SW, L2SW_GUEST, M_R2, "vm3"), G2);	/* slot reused */
	l2sw_port_del(&SW, 42);		/* ignored */
}

Test(l2sw, migration_forget_and_set)
{
	uint32_t out;

	/* vm1 left: its MAC now lives behind the uplink. */
	l2sw_port_del(&SW, G1);
	l2sw_fdb_forget(&SW, M_G1);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_G1, 1), -1);
	l2sw_fdb_set(&SW, M_G1, UP, 5);
	cr_assert_eq(fwd(HOST, M_G1, M_HOST, 6, &out), 0);
	cr_assert_eq(out, BIT(UP));
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_G1, 5 + L2SW_AGE_NS), -1);	/* uplink entries age */
	/* A guest arrived on a port: pinned there. */
	l2sw_fdb_set(&SW, M_R2, G2, 7);
	cr_assert_eq(fwd(UP, M_BC, M_R2, 8, &out), 0);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_R2, 100 * L2SW_AGE_NS), G2);
	/* A live port's own MAC can be neither forgotten nor moved. */
	l2sw_fdb_forget(&SW, M_HOST);
	l2sw_fdb_set(&SW, M_HOST, UP, 9);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_HOST, 10), HOST);
	l2sw_fdb_set(&SW, M_MC, G2, 7);		/* group MACs are never entries */
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_MC, 7), -1);
}

Test(l2sw, rarp_announce)
{
	static const uint8_t want[42] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 0x11,
		0x80, 0x35, 0, 1, 0x08, 0x00, 6, 4, 0, 3,
		0x52, 0x54, 0, 0, 0, 0x11, 0, 0, 0, 0,
		0x52, 0x54, 0, 0, 0, 0x11, 0, 0, 0, 0,
	};
	uint8_t f[L2SW_RARP_LEN + 1];
	uint32_t out;

	memset(f, 0xee, sizeof(f));
	l2sw_rarp_frame(M_G1, f);
	cr_assert_arr_eq(f, want, sizeof(want));
	for (int i = 42; i < L2SW_RARP_LEN; i++)
		cr_assert_eq(f[i], 0);
	cr_assert_eq(f[L2SW_RARP_LEN], 0xee);
	cr_assert_eq(l2sw_forward(&SW, G1, f, L2SW_RARP_LEN, 1, &out), 0);
	cr_assert_eq(out, BIT(UP) | BIT(HOST) | BIT(G2));
}

/* The old host during a move: the guest's RARP comes back in on the
 * uplink from its new host.  While the old port lives it cannot steal
 * the MAC (counted); once the port is gone the RARP teaches the switch
 * that the guest is behind the uplink now. */
Test(l2sw, old_host_learns_the_move_from_the_rarp)
{
	uint8_t f[L2SW_RARP_LEN];
	uint32_t out;

	l2sw_rarp_frame(M_G1, f);
	cr_assert_eq(l2sw_forward(&SW, UP, f, sizeof(f), 1, &out), 0);
	cr_assert_eq(SW.fdb_pin_denied, 1);
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_G1, 2), G1, "the live port keeps its MAC");
	l2sw_port_del(&SW, G1);
	cr_assert_eq(l2sw_forward(&SW, UP, f, sizeof(f), 3, &out), 0);
	cr_assert_eq(out, BIT(HOST) | BIT(G2), "a broadcast: the host and the other guests");
	cr_assert_eq(l2sw_fdb_lookup(&SW, M_G1, 4), UP);
	cr_assert_eq(fwd(HOST, M_G1, M_HOST, 5, &out), 0);
	cr_assert_eq(out, BIT(UP), "the host's frames for the guest go out of the uplink");
	cr_assert_eq(SW.fdb_pin_denied, 1);
}
