/*
 * lwIP glue: the kernel services lwIP asks for (net/port/README.md) and one
 * lwIP netif per struct netdev.
 *
 * Context: lwIP is NO_SYS=1 with SYS_LIGHTWEIGHT_PROT=0, so every call into
 * it happens here, in the stack's service on the boot CPU's main loop
 * (kernel/platform/mainloop.h): netdev_poll_all() has the drivers hand
 * frames to netdev_rx() below, then net_stack_poll() runs the timers.  Nothing in this file may be called from an IRQ handler or from
 * another CPU.
 *
 * Checksum offload (lwIP's checksum control is per netif, offload results
 * are per frame):
 *  - Transmit, when the NIC offers it: lwIP stops generating TCP
 *    checksums on that netif, and net_linkoutput() puts the pseudo-header
 *    sum in each IPv4 TCP segment and asks the NIC to finish it.  UDP
 *    stays in software: lwIP fragments a UDP datagram bigger than the MTU
 *    before this glue sees it, and no NIC can sum a datagram from one of
 *    its fragments (the traffic is DHCP and the like; TCP is the volume).
 *    So does the IPv4 header checksum: 20 bytes, and virtio-net has no
 *    offload for it.
 *  - Receive: lwIP checks TCP and UDP checksums unless the NIC vouched for
 *    this very frame (NETDEV_RX_CSUM_OK) and it is a whole IPv4 TCP or UDP
 *    datagram (inet_l4_parse); net_rx() sets the netif's check flags
 *    around that one netif->input() call, which runs the frame through TCP
 *    or UDP before it returns (NO_SYS).  A fragment is never vouched for:
 *    the reassembled datagram is checked when its last fragment comes in.
 *    lwIP drops bad segments and counts them (tcp.chkerr, udp.chkerr).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lwip/dhcp.h"
#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/stats.h"
#include "lwip/sys.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"

#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/kernel.h"
#include "kernel/lib/config.h"
#include "kernel/lib/inet_csum.h"
#include "kernel/platform/mainloop.h"
#include "net/netdev.h"
#include "net/bridge.h"
#include "net/vnet_dev.h"
#include "net/stack.h"

#define ETH_MIN_FRAME	60	/* without FCS (IEEE 802.3 clause 3.2.8) */
#define DIAG_LINE_MAX	160

struct net_if {
	struct netif netif;
	struct netdev *nd;
	bool link_up;		/* as last told to lwIP */
	bool mgmt;		/* carries the configured management address */
	u16_t csum_flags;	/* lwIP checksum control between frames */
};

static struct net_if net_ifs[NETDEV_MAX];
static int net_nifs;
static struct tern_config net_cfg;
static bool net_cfg_set;
static char net_hostname[CFG_NAME_MAX];
static int net_depth;		/* > 0 while inside lwIP */
static bool net_started;
/* Frames built from a pbuf chain or padded to the minimum length. */
static uint8_t net_txbuf[NETDEV_FRAME_MAX];

/* ---- services lwIP needs (lwip/sys.h, arch/cc.h) ---- */

u32_t sys_now(void)
{
	/* Wraps every 49.7 days; lwIP compares times modulo 2^32. */
	return (u32_t)(time_us() / 1000);
}

/*
 * LWIP_PLATFORM_DIAG output arrives in pieces (stats_display() prints one
 * field at a time), so it is gathered here and logged a line at a time.
 */
void tern_lwip_diag(const char *fmt, ...)
{
	static char line[DIAG_LINE_MAX];
	static size_t len;
	char chunk[DIAG_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(chunk, sizeof(chunk), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(chunk))
		n = sizeof(chunk) - 1;
	for (int i = 0; i < n; i++) {
		char c = chunk[i];

		if (c == '\n' || len == sizeof(line) - 1) {
			line[len] = '\0';
			if (len)
				pr_info("lwip: %s", line);
			len = 0;
			if (c == '\n')
				continue;
		}
		line[len++] = c;
	}
}

/*
 * An lwIP-internal invariant broke (never bad input: lwIP uses LWIP_ERROR
 * for that).  The code after LWIP_ASSERT goes on to use the broken state,
 * and pool corruption would then spread to memory the guests' devices
 * use, so the host stops here with the location.
 */
void tern_lwip_assert(const char *msg, const char *file, int line)
{
	panic("lwip: assertion \"%s\" failed at %s:%d", msg, file, line);
}

uint32_t tern_lwip_rand(void)
{
	return (uint32_t)tern_random_u64();
}

/* Packets to our own addresses wait in a netif's loop queue: the main
 * loop must not sleep on them (net_stack_poll delivers them). */
static bool net_stack_pending(void)
{
	struct netif *n;

	if (!net_started)
		return false;
	NETIF_FOREACH(n)
		if (n->loop_first)
			return true;
	return false;
}

bool net_stack_busy(void)
{
	return net_depth > 0;
}

/* ---- netif <-> netdev ---- */

/*
 * The TCP checksum of frame, which lwIP left 0 on an offloading netif:
 * the pseudo-header sum goes in the field and *csum says where the NIC
 * finishes.  When the frame is one pbuf it is lwIP's header buffer, in
 * lwIP's RAM (ROM and REF pbufs only carry payload behind a header pbuf),
 * so the field is written in place, as lwIP itself would;
 * tcp_output_segment() zeroes it again before a retransmission.
 *
 * A frame padded to the Ethernet minimum (a bare ACK) is summed here
 * instead: the padding is harmless to the sum, but QEMU's e1000e redoes
 * the pseudo-header from the padded length (every SYN-ACK came out 2
 * off), and 20 bytes cost nothing.
 */
static bool net_tx_csum(struct netdev *nd, uint8_t *frame, size_t len,
			struct netdev_csum *csum)
{
	struct inet_l4 l4;

	if (!nd->tx_csum_offload || inet_l4_parse(frame, len, &l4) < 0 ||
	    l4.proto != INET_PROTO_TCP)
		return false;
	if ((size_t)l4.l4_off + l4.l4_len < len) {
		inet_csum_fill(frame, &l4);
		return false;
	}
	inet_csum_prepare(frame, &l4);
	csum->start = l4.l4_off;
	csum->offset = l4.csum_off;
	return true;
}

static err_t net_linkoutput(struct netif *netif, struct pbuf *p)
{
	struct net_if *ni = netif->state;
	struct netdev *nd = ni->nd;
	uint8_t *frame = p->payload;
	size_t len = p->tot_len;
	struct netdev_csum csum;
	int r;

	if (len > NETDEV_FRAME_MAX) {
		LINK_STATS_INC(link.lenerr);
		return ERR_BUF;
	}
	/* Chains are flattened; short frames (ARP is 42 bytes) are padded
	 * with zeros, which not every NIC does itself. */
	if (p->next || len < ETH_MIN_FRAME) {
		if (pbuf_copy_partial(p, net_txbuf, (u16_t)len, 0) != len)
			return ERR_BUF;
		if (len < ETH_MIN_FRAME) {
			memset(net_txbuf + len, 0, ETH_MIN_FRAME - len);
			len = ETH_MIN_FRAME;
		}
		frame = net_txbuf;
	}
	r = netdev_xmit(nd, frame, len, net_tx_csum(nd, frame, len, &csum) ? &csum : NULL);
	if (r == -EAGAIN) {
		LINK_STATS_INC(link.memerr);
		return ERR_MEM;		/* ring full: TCP retransmits */
	}
	if (r < 0) {
		LINK_STATS_INC(link.err);
		return ERR_IF;
	}
	LINK_STATS_INC(link.xmit);
	return ERR_OK;
}

/* lwIP's checksum control for one received frame (see the top). */
static u16_t net_rx_csum_flags(const struct net_if *ni, const void *frame,
			       size_t len, unsigned int flags)
{
	struct inet_l4 l4;

	if (!(flags & NETDEV_RX_CSUM_OK) || !ni->nd->rx_csum_offload ||
	    inet_l4_parse(frame, len, &l4) < 0)
		return ni->csum_flags;
	return ni->csum_flags & ~(NETIF_CHECKSUM_CHECK_TCP | NETIF_CHECKSUM_CHECK_UDP);
}

/* nd->rx: one received frame, from netdev_poll_all() on the boot CPU. */
static void net_rx(struct netdev *nd, const void *frame, size_t len,
		   unsigned int flags)
{
	struct net_if *ni = nd->stack;
	struct pbuf *p;

	if (!ni || len == 0 || len > NETDEV_FRAME_MAX) {
		nd->rx_dropped++;
		return;
	}
	p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_POOL);
	if (!p) {
		nd->rx_dropped++;
		LINK_STATS_INC(link.memerr);
		return;
	}
	if (pbuf_take(p, frame, (u16_t)len) != ERR_OK) {
		pbuf_free(p);
		nd->rx_dropped++;
		return;
	}
	LINK_STATS_INC(link.recv);
	net_depth++;
	NETIF_SET_CHECKSUM_CTRL(&ni->netif, net_rx_csum_flags(ni, frame, len, flags));
	if (ni->netif.input(p, &ni->netif) != ERR_OK)
		pbuf_free(p);
	NETIF_SET_CHECKSUM_CTRL(&ni->netif, ni->csum_flags);
	net_depth--;
}

static void net_status_cb(struct netif *netif)
{
	struct net_if *ni = netif->state;
	char ip[16], mask[16], gw[16];

	ip4addr_ntoa_r(netif_ip4_addr(netif), ip, sizeof(ip));
	ip4addr_ntoa_r(netif_ip4_netmask(netif), mask, sizeof(mask));
	ip4addr_ntoa_r(netif_ip4_gw(netif), gw, sizeof(gw));
	if (ip4_addr_isany_val(*netif_ip4_addr(netif)))
		pr_info("net: %s: no address%s", ni->nd->name,
			ni->mgmt && net_cfg.addr_dhcp ? " (waiting for DHCP)" : "");
	else
		pr_info("net: %s: address %s netmask %s gateway %s%s", ni->nd->name,
			ip, mask, gw, ni->mgmt && net_cfg.addr_dhcp ? " (DHCP)" : "");
}

static void net_link_cb(struct netif *netif)
{
	struct net_if *ni = netif->state;

	pr_info("net: %s: link %s", ni->nd->name, netif_is_link_up(netif) ? "up" : "down");
}

static err_t net_netif_init(struct netif *netif)
{
	struct net_if *ni = netif->state;
	struct netdev *nd = ni->nd;

	netif->name[0] = 'e';
	netif->name[1] = 'n';
	netif->output = etharp_output;
	netif->linkoutput = net_linkoutput;
	netif->mtu = nd->mtu >= 576 && nd->mtu <= 1500 ? nd->mtu : 1500;
	netif->hwaddr_len = ETH_HWADDR_LEN;
	memcpy(netif->hwaddr, nd->mac, ETH_HWADDR_LEN);
	netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
	netif_set_hostname(netif, net_hostname);
	netif_set_status_callback(netif, net_status_cb);
	netif_set_link_callback(netif, net_link_cb);
	ni->csum_flags = NETIF_CHECKSUM_ENABLE_ALL;
	if (nd->tx_csum_offload)
		ni->csum_flags &= (u16_t)~NETIF_CHECKSUM_GEN_TCP;
	NETIF_SET_CHECKSUM_CTRL(netif, ni->csum_flags);
	return ERR_OK;
}

/* prefix 0..32 to a netmask in network byte order. */
static u32_t net_prefix_mask(uint8_t prefix)
{
	return lwip_htonl(prefix == 0 ? 0 : 0xffffffffu << (32 - (prefix > 32 ? 32 : prefix)));
}

static int net_add_netdev(struct netdev *nd, bool mgmt)
{
	struct net_if *ni = &net_ifs[net_nifs];
	ip4_addr_t ip, mask, gw;

	ip4_addr_set_zero(&ip);
	ip4_addr_set_zero(&mask);
	ip4_addr_set_zero(&gw);
	if (mgmt && !net_cfg.addr_dhcp && net_cfg.has_address) {
		ip4_addr_set_u32(&ip, lwip_htonl(net_cfg.address.addr));
		ip4_addr_set_u32(&mask, net_prefix_mask(net_cfg.address.prefix));
		if (net_cfg.has_gateway)
			ip4_addr_set_u32(&gw, lwip_htonl(net_cfg.gateway));
	}
	memset(ni, 0, sizeof(*ni));
	ni->nd = nd;
	ni->mgmt = mgmt;
	if (!netif_add(&ni->netif, &ip, &mask, &gw, ni, net_netif_init, ethernet_input)) {
		pr_err("net: %s: netif_add failed", nd->name);
		return -ENOMEM;
	}
	nd->stack = ni;
	nd->rx = net_rx;
	net_nifs++;
	/* The management NIC is also the guests' way out: the switch goes
	 * between it and the stack (net/switch/bridge.c). */
	if (mgmt && bridge_attach(nd) < 0)
		pr_err("net: %s: no guest switch", nd->name);
	if (mgmt)
		netif_set_default(&ni->netif);
	netif_set_up(&ni->netif);
	if (nd->ops->update_link)
		nd->ops->update_link(nd);
	ni->link_up = nd->link_up;
	if (nd->link_up)
		netif_set_link_up(&ni->netif);
	if (mgmt && net_cfg.addr_dhcp) {
		err_t e = dhcp_start(&ni->netif);

		if (e != ERR_OK)
			pr_err("net: %s: dhcp_start failed (%d)", nd->name, (int)e);
	}
	return 0;
}

void net_stack_set_config(const struct tern_config *cfg)
{
	if (cfg) {
		net_cfg = *cfg;
		net_cfg_set = true;
	}
}

static void net_stack_poll(void);

static void net_service(void)
{
	netdev_poll_all();
	net_stack_poll();
}

static bool net_service_pending(void)
{
	return netdev_pending() || net_stack_pending();
}

static const struct mainloop_service net_svc = {
	.name = "net",
	.service = net_service,
	.pending = net_service_pending,
};

void net_stack_start(void)
{
	int n = netdev_count();

	if (net_started)
		return;
	if (!net_cfg_set)
		cfg_defaults(&net_cfg);
	memcpy(net_hostname, net_cfg.hostname, sizeof(net_hostname));
	net_hostname[sizeof(net_hostname) - 1] = '\0';
	lwip_init();
	net_started = true;
	pr_info("net: lwIP %s, random numbers from %s", LWIP_VERSION_STRING,
		tern_entropy_source());
	/* The management address goes on the first NIC; others come up with
	 * no address until something configures them. */
	for (int i = 0; i < n && net_nifs < NETDEV_MAX; i++) {
		struct netdev *nd = netdev_get(i);

		if (nd)
			net_add_netdev(nd, net_nifs == 0);
	}
	if (n == 0)
		pr_info("net: no NICs: the network console is off");
	mainloop_register(&net_svc);
	vnet_dev_start();
}

static void net_stack_poll(void)
{
	if (!net_started)
		return;
	net_depth++;
	for (int i = 0; i < net_nifs; i++) {
		struct net_if *ni = &net_ifs[i];

		if (ni->nd->link_up == ni->link_up)
			continue;
		ni->link_up = ni->nd->link_up;
		/* DHCP restarts itself on link up (dhcp_network_changed). */
		if (ni->link_up)
			netif_set_link_up(&ni->netif);
		else
			netif_set_link_down(&ni->netif);
	}
	/* Deliver what was sent to our own addresses (LWIP_NETIF_LOOPBACK). */
	netif_poll_all();
	sys_check_timeouts();
	net_depth--;
}
