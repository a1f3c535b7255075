/*
 * The NIC layer's console commands: `nic` (the devices and their
 * counters) and `nic test` (one ARP exchange below the stack).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/kernel.h"
#include "kernel/lib/cmd.h"
#include "kernel/platform/mainloop.h"
#include "net/nic.h"
#include "net/bridge.h"

#define ARP_WAIT_US		2000000

static struct netdev *find_nic(const char *name)
{
	for (int i = 0; i < netdev_count(); i++)
		if (!strcmp(netdev_get(i)->name, name))
			return netdev_get(i);
	return NULL;
}

/* The offloads the device agreed to, for the `nic` table. */
static const char *offload_name(const struct netdev *nd)
{
	if (nd->tx_csum_offload && nd->rx_csum_offload)
		return "csum tx/rx";
	if (nd->tx_csum_offload)
		return "csum tx";
	return nd->rx_csum_offload ? "csum rx" : "none";
}

int nic_cmd_list(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	int i, n = netdev_count();

	(void)ctx, (void)argc, (void)argv;
	if (!n) {
		cmd_printf(o, "no NICs (pci: %d functions, %s)\n", pci_count(),
			   pci_access_method());
		return 0;
	}
	cmd_printf(o, "%-8s %-15s %-17s %-4s %-12s %-10s %s\n", "name", "model",
		   "mac", "link", "irq", "offload", "counters");
	for (i = 0; i < n; i++) {
		struct netdev *nd = netdev_get(i);
		struct pci_dev *pd = netdev_pci_dev(i);
		const uint8_t *m = nd->mac;
		char irq[16];

		if (pd && pd->irq_vector)
			snprintf(irq, sizeof(irq), "%s %#x", pd->irq_mode, pd->irq_vector);
		else
			snprintf(irq, sizeof(irq), "poll");
		cmd_printf(o, "%-8s %-15s %02x:%02x:%02x:%02x:%02x:%02x %-4s %-12s "
			   "%-10s rx %lu/%lu tx %lu/%lu drops %lu errors %lu irqs %lu "
			   "csum-frames tx %lu rx %lu\n",
			   nd->name, nd->model, m[0], m[1], m[2], m[3], m[4], m[5],
			   nd->link_up ? "up" : "down", irq, offload_name(nd),
			   nd->rx_packets, nd->rx_bytes, nd->tx_packets, nd->tx_bytes,
			   nd->rx_dropped, nd->tx_errors, nd->irqs, nd->tx_csum_frames,
			   nd->rx_csum_frames);
	}
	return 0;
}

/* `nic test`: one ARP request (RFC 826) for QEMU user networking's
 * gateway, 10.0.2.2, from its usual guest address 10.0.2.15. */
static const uint8_t arp_our_ip[4] = { 10, 0, 2, 15 };
static const uint8_t arp_peer_ip[4] = { 10, 0, 2, 2 };

static struct {
	void (*saved_rx)(struct netdev *nd, const void *frame, size_t len,
			 unsigned int flags);
	bool got;
	uint8_t mac[6];
} arp_probe;

static void arp_capture(struct netdev *nd, const void *frame, size_t len,
			unsigned int flags)
{
	const uint8_t *p = frame;

	/* Ethernet type 0x0806; ARP htype 1, ptype 0x0800, hlen 6, plen 4,
	 * op 2 (reply); sender IP at 28, target IP at 38. */
	if (len >= 42 && p[12] == 0x08 && p[13] == 0x06 && p[20] == 0 &&
	    p[21] == 2 && !memcmp(p + 28, arp_peer_ip, 4) &&
	    !memcmp(p + 38, arp_our_ip, 4) && !arp_probe.got) {
		memcpy(arp_probe.mac, p + 22, 6);
		arp_probe.got = true;
	}
	if (arp_probe.saved_rx)
		arp_probe.saved_rx(nd, frame, len, flags);
}

static void arp_request(const struct netdev *nd, uint8_t *f)
{
	static const uint8_t hdr[8] = { 0, 1, 8, 0, 6, 4, 0, 1 };

	memset(f, 0, 60);		/* padded to the 60-byte minimum */
	memset(f, 0xff, 6);
	memcpy(f + 6, nd->mac, 6);
	f[12] = 0x08, f[13] = 0x06;
	memcpy(f + 14, hdr, sizeof(hdr));
	memcpy(f + 22, nd->mac, 6);
	memcpy(f + 28, arp_our_ip, 4);
	memcpy(f + 38, arp_peer_ip, 4);
}

static bool arp_got(void *arg)
{
	(void)arg;
	return arp_probe.got;
}

int nic_cmd_test(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct netdev *nd = find_nic(argv[0]);
	uint8_t frame[60];
	uint64_t t0, deadline;
	int r;

	(void)ctx, (void)argc;
	if (!nd) {
		cmd_printf(o, "error: nic test: no NIC named '%s'\n", argv[0]);
		return -ENOENT;
	}
	arp_probe.saved_rx = nd->rx;
	arp_probe.got = false;
	nd->rx = arp_capture;
	arp_request(nd, frame);
	t0 = time_us();
	r = nd->ops->xmit(nd, frame, sizeof(frame), NULL);
	deadline = t0 + ARP_WAIT_US;
	/* The stack's service polls the device meanwhile; arp_capture sees
	 * every frame before the stack does. */
	if (r == 0)
		mainloop_wait(arp_got, NULL, deadline);
	nd->rx = arp_probe.saved_rx;
	if (r < 0) {
		cmd_printf(o, "error: nic test: transmit failed: %s\n", cmd_strerror(r));
		return r;
	}
	if (!arp_probe.got) {
		cmd_printf(o, "error: nic test: no arp reply from 10.0.2.2 within 2 s "
			   "(link %s)\n", nd->link_up ? "up" : "down");
		return -ETIMEDOUT;
	}
	cmd_printf(o, "arp reply from 10.0.2.2 is %02x:%02x:%02x:%02x:%02x:%02x "
		   "after %lu us\n", arp_probe.mac[0], arp_probe.mac[1],
		   arp_probe.mac[2], arp_probe.mac[3], arp_probe.mac[4],
		   arp_probe.mac[5], time_us() - t0);
	return 0;
}

static int nic_cmd_switch(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc, (void)argv;
	bridge_report(o);
	return 0;
}

const struct cmd_def nic_cmds[] = {
	{ "nic", "", "NICs: model, MAC, link, interrupt, rx/tx packets/bytes, drops, irqs",
	  0, 0, nic_cmd_list },
	{ "nic test", "NAME", "ARP for 10.0.2.2 from 10.0.2.15 (QEMU user net) and show the reply",
	  1, 1, nic_cmd_test },
	{ "switch", "", "the guest switch: ports, frames, spoofed sources, learned MACs",
	  0, 0, nic_cmd_switch },
};
const size_t nic_ncmds = ARRAY_SIZE(nic_cmds);
