/*
 * The switch between the host NIC, the host's stack and the guests' NICs
 * (bridge.h): the forwarding decisions are l2sw.c's, pure; this file
 * moves the frames.
 *
 * Checksums: the stack may hand a frame whose TCP/UDP checksum the NIC
 * is to finish (netdev_csum), and the uplink may bring one whose sender
 * left it partial (NETDEV_RX_CSUM_PARTIAL: a peer on the same host, over
 * a tap).  On the wire and into the stack that is fine; a copy for a
 * guest gets the checksum finished here first, since the guest's virtio
 * NIC offered no checksum offload and expects whole frames.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/kernel.h"
#include "kernel/lib/cmd.h"
#include "kernel/lib/inet_csum.h"
#include "kernel/platform/arch.h"
#include "net/netdev.h"
#include "net/bridge.h"
#include "net/switch/l2sw.h"

struct br_guest {
	void (*deliver)(void *ctx, const void *frame, size_t len);
	void *ctx;
};

static struct l2sw br_sw;
static struct netdev *br_nd;
static int br_uplink = -1, br_host = -1;
static struct br_guest br_guests[L2SW_MAX_PORTS];
static void (*br_stack_rx)(struct netdev *nd, const void *frame, size_t len,
			   unsigned int flags);
static uint8_t br_copy[NETDEV_FRAME_MAX];

static uint64_t br_now(void)
{
	return time_us() * 1000;
}

/* A frame for guest ports in mask (other bits ignored). */
static void br_to_guests(uint32_t mask, const void *frame, size_t len)
{
	for (int p = 0; p < L2SW_MAX_PORTS; p++)
		if ((mask & (1u << p)) && br_guests[p].deliver) {
			br_sw.port[p].st.tx++;
			br_guests[p].deliver(br_guests[p].ctx, frame, len);
		}
}

static uint32_t br_guest_bits(uint32_t mask)
{
	if (br_uplink >= 0)
		mask &= ~(1u << br_uplink);
	if (br_host >= 0)
		mask &= ~(1u << br_host);
	return mask;
}

/* The uplink received a frame (netdev_poll_all). */
static void br_uplink_rx(struct netdev *nd, const void *frame, size_t len, unsigned int flags)
{
	uint32_t mask;

	if (l2sw_forward(&br_sw, br_uplink, frame, len, br_now(), &mask) < 0)
		return;
	if ((mask & (1u << br_host)) && br_stack_rx)
		br_stack_rx(nd, frame, len, flags);
	if (!br_guest_bits(mask))
		return;
	/* A peer on this segment left its checksum to the NIC: finish it,
	 * the guests' NICs offered no checksum offload. */
	if ((flags & NETDEV_RX_CSUM_PARTIAL) && len <= sizeof(br_copy)) {
		memcpy(br_copy, frame, len);
		if (inet_csum_finish_partial(br_copy, len, nd->rx_csum_start,
					     nd->rx_csum_offset) < 0)
			return;
		frame = br_copy;
	}
	br_to_guests(br_guest_bits(mask), frame, len);
}

/* The host's stack sends (netdev_xmit). */
static int br_host_tx(struct netdev *nd, const void *frame, size_t len,
		      const struct netdev_csum *csum)
{
	uint32_t mask, guests;
	int rc = 0;

	if (l2sw_forward(&br_sw, br_host, frame, len, br_now(), &mask) < 0)
		return -EINVAL;
	guests = br_guest_bits(mask);
	if (guests) {
		struct inet_l4 l4;
		const void *f = frame;

		if (csum && len <= sizeof(br_copy)) {
			memcpy(br_copy, frame, len);
			if (inet_l4_parse(br_copy, len, &l4) == 0)
				inet_csum_fill(br_copy, &l4);
			f = br_copy;
		}
		br_to_guests(guests, f, len);
	}
	if (mask & (1u << br_uplink))
		rc = nd->ops->xmit(nd, frame, len, csum);
	return rc;
}

int bridge_attach(struct netdev *nd)
{
	if (br_nd)
		return -EALREADY;
	l2sw_init(&br_sw);
	br_uplink = l2sw_port_add(&br_sw, L2SW_UPLINK, NULL, nd->name);
	br_host = l2sw_port_add(&br_sw, L2SW_HOST, nd->mac, "host");
	if (br_uplink < 0 || br_host < 0)
		return -ENOSPC;
	br_nd = nd;
	br_stack_rx = nd->rx;
	nd->rx = br_uplink_rx;
	nd->tx_hook = br_host_tx;
	if (nd->ops->set_promisc)
		nd->ops->set_promisc(nd, true);
	pr_info("net: switch on %s: uplink, host and guest ports", nd->name);
	return 0;
}

int bridge_port_add(const uint8_t mac[6], const char *name,
		    void (*deliver)(void *ctx, const void *frame, size_t len), void *ctx)
{
	int p;

	if (!br_nd)
		return -ENODEV;
	p = l2sw_port_add(&br_sw, L2SW_GUEST, mac, name);
	if (p < 0)
		return p;
	br_guests[p] = (struct br_guest){ deliver, ctx };
	return p;
}

void bridge_port_del(int port)
{
	if (port < 0 || port >= L2SW_MAX_PORTS)
		return;
	l2sw_port_del(&br_sw, port);
	br_guests[port] = (struct br_guest){ NULL, NULL };
}

void bridge_set_promisc(int port, bool on)
{
	if (port >= 0 && port < L2SW_MAX_PORTS)
		l2sw_port_promisc(&br_sw, port, on);
}

int bridge_from_guest(int port, const void *frame, size_t len)
{
	uint32_t mask;
	int rc;

	if (!br_nd || port < 0 || port >= L2SW_MAX_PORTS)
		return -ENODEV;
	rc = l2sw_forward(&br_sw, port, frame, len, br_now(), &mask);
	if (rc < 0)
		return rc;
	/* Bound for the wire only: a full TX ring sends it back to the
	 * guest's queue, to go again once the NIC has room (TCP prefers a
	 * late frame to a lost one). */
	if (mask == (1u << br_uplink))
		return br_nd->ops->xmit(br_nd, frame, len, NULL) == -EAGAIN ? -EAGAIN : 0;
	if ((mask & (1u << br_host)) && br_stack_rx)
		br_stack_rx(br_nd, frame, len, 0);
	br_to_guests(br_guest_bits(mask), frame, len);
	if ((mask & (1u << br_uplink)) && br_nd->ops->xmit(br_nd, frame, len, NULL) < 0)
		br_sw.port[br_uplink].st.dropped_filter++;	/* TX ring full */
	return 0;
}

int bridge_ready(char *why, size_t len)
{
	if (!br_nd) {
		snprintf(why, len, "this host has no NIC to switch guests to");
		return -ENODEV;
	}
	if (!br_nd->link_up) {		/* as netdev_poll_all last saw it */
		snprintf(why, len, "host NIC %s is down", br_nd->name);
		return -ENETDOWN;
	}
	return 0;
}

int bridge_announce(int port)
{
	uint8_t f[L2SW_RARP_LEN];
	uint32_t mask;

	if (!br_nd || port < 0 || port >= L2SW_MAX_PORTS || !br_sw.port[port].used ||
	    br_sw.port[port].kind != L2SW_GUEST)
		return -ENODEV;
	l2sw_rarp_frame(br_sw.port[port].mac, f);
	/* Through the switch as the guest's own frame: a broadcast, so the
	 * uplink, the host and the other guests (their bridges learn too). */
	if (l2sw_forward(&br_sw, port, f, sizeof(f), br_now(), &mask) < 0)
		return -ENODEV;
	if ((mask & (1u << br_host)) && br_stack_rx)
		br_stack_rx(br_nd, f, sizeof(f), 0);
	br_to_guests(br_guest_bits(mask), f, sizeof(f));
	if ((mask & (1u << br_uplink)) && br_nd->ops->xmit(br_nd, f, sizeof(f), NULL) < 0) {
		br_sw.port[br_uplink].st.dropped_filter++;
		return -EAGAIN;
	}
	return 0;
}

void bridge_report(struct cmd_out *o)
{
	uint64_t now = br_now();

	if (!br_nd) {
		cmd_printf(o, "switch: off (no NIC)\n");
		return;
	}
	cmd_printf(o, "%-10s %-6s %-17s %10s %10s %8s %8s\n", "PORT", "KIND", "MAC", "RX", "TX",
		   "FLOODED", "SPOOFED");
	for (int p = 0; p < L2SW_MAX_PORTS; p++) {
		const struct l2sw_port *sp = &br_sw.port[p];
		char mac[18] = "-";

		if (!sp->used)
			continue;
		if (sp->kind != L2SW_UPLINK)	/* the uplink passes others' MACs */
			snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", sp->mac[0],
				 sp->mac[1], sp->mac[2], sp->mac[3], sp->mac[4], sp->mac[5]);
		cmd_printf(o, "%-10s %-6s %-17s %10lu %10lu %8lu %8lu\n", sp->name,
			   sp->kind == L2SW_UPLINK ? "uplink" : sp->kind == L2SW_HOST ? "host" :
			   "guest", mac, sp->st.rx, sp->st.tx, sp->st.flooded, sp->st.dropped_spoof);
	}
	cmd_printf(o, "learned:");
	for (int i = 0; i < L2SW_FDB_SIZE; i++)
		if (br_sw.fdb[i].port >= 0 && br_sw.fdb[i].seen_ns &&
		    now - br_sw.fdb[i].seen_ns < L2SW_AGE_NS)
			cmd_printf(o, " %02x:%02x:%02x:%02x:%02x:%02x@%s", br_sw.fdb[i].mac[0],
				   br_sw.fdb[i].mac[1], br_sw.fdb[i].mac[2], br_sw.fdb[i].mac[3],
				   br_sw.fdb[i].mac[4], br_sw.fdb[i].mac[5],
				   br_sw.port[br_sw.fdb[i].port].name);
	cmd_printf(o, "\n");
}
