/*
 * The NIC interface between drivers (virtio-net, e1000/e1000e) and the
 * network stack (the lwIP netif glue).  Drivers never call lwIP and lwIP
 * never touches a device: frames cross here, on the boot CPU only.
 *
 * Interrupts only mark a device pending and wake the boot CPU; all ring
 * work happens in netdev_poll_all() from the stack's main-loop service, also
 * the only context that runs lwIP (NO_SYS=1, SYS_LIGHTWEIGHT_PROT=0).
 */
#ifndef TERN_NET_NETDEV_H
#define TERN_NET_NETDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NETDEV_MAX		4
#define NETDEV_FRAME_MAX	1518	/* without FCS; no jumbo frames yet */

struct netdev;

/*
 * A transmit checksum request, only for a NIC with tx_csum_offload: the
 * NIC sums the frame from start to its end and stores the one's
 * complement at start + offset, where the caller left the pseudo-header
 * sum (VIRTIO 1.1 5.1.6.2; the e1000 TCP/IP context does the same).
 */
struct netdev_csum {
	uint16_t start;		/* the L4 header, from the frame start */
	uint16_t offset;	/* the checksum field, from start */
};

/* nd->rx flags: the NIC checked the frame's TCP/UDP checksum and found it
 * right (or was handed it by a peer that vouches for it, VIRTIO 1.1
 * 5.1.6.4).  Without it nothing is known either way. */
#define NETDEV_RX_CSUM_OK	(1u << 0)
/* ... and its L4 checksum field holds only the pseudo-header sum (a local
 * peer never finished it: VIRTIO 1.1 5.1.6.4 NEEDS_CSUM), at
 * nd->rx_csum_start + nd->rx_csum_offset.  Whoever forwards the frame to
 * a receiver that checks must finish it (inet_csum_finish_partial). */
#define NETDEV_RX_CSUM_PARTIAL	(1u << 1)

struct netdev_ops {
	/* Queue one Ethernet frame (copied); csum NULL or a request as
	 * above.  -EAGAIN when the ring is full. */
	int (*xmit)(struct netdev *nd, const void *frame, size_t len,
		    const struct netdev_csum *csum);
	/* Reap TX completions and hand up to budget received frames to
	 * nd->rx; returns the number of frames received. */
	int (*poll)(struct netdev *nd, int budget);
	/* Refresh nd->link_up from the device. */
	void (*update_link)(struct netdev *nd);
	/* Optional: take frames for every destination MAC (the guest
	 * switch's uplink, net/switch/bridge.c). */
	void (*set_promisc)(struct netdev *nd, bool on);
};

struct netdev {
	char name[16];			/* "virtio0", "e1000e0" */
	char model[32];			/* "virtio-net 1.x", "82574L" */
	uint8_t mac[6];
	uint16_t mtu;
	bool link_up;
	/* Set by the driver at probe: what the device agreed to do. */
	bool tx_csum_offload, rx_csum_offload;
	const struct netdev_ops *ops;
	void *priv;
	/* Set by the stack: called from netdev_poll_all() for each received frame. */
	void (*rx)(struct netdev *nd, const void *frame, size_t len,
		   unsigned int flags);
	void *stack;
	/* Set by the guest switch when it owns the port: what the stack
	 * sends goes through it (netdev_xmit) instead of straight out. */
	int (*tx_hook)(struct netdev *nd, const void *frame, size_t len,
		       const struct netdev_csum *csum);
	volatile bool pending;		/* set by the IRQ handler */
	uint16_t rx_csum_start, rx_csum_offset;	/* the frame in nd->rx, PARTIAL */
	uint64_t rx_packets, rx_bytes, rx_dropped;
	uint64_t tx_packets, tx_bytes, tx_errors;
	uint64_t irqs;
	uint64_t tx_csum_frames;	/* sent with a checksum request */
	uint64_t rx_csum_frames;	/* received with NETDEV_RX_CSUM_OK */
};

int netdev_register(struct netdev *nd);
/* The stack's transmit: through the switch when one owns the NIC. */
int netdev_xmit(struct netdev *nd, const void *frame, size_t len,
		const struct netdev_csum *csum);
int netdev_count(void);
struct netdev *netdev_get(int i);

void net_init(void);		/* PCI scan and drivers: boot CPU, once */
/* Serve every device: link state, TX completions, received frames to
 * nd->rx.  The stack's main-loop service calls it (net/stack.h). */
void netdev_poll_all(void);
/* True when a device's IRQ marked it pending: the main loop checks this
 * with interrupts off before HLT, so a frame never waits for the tick. */
bool netdev_pending(void);

#endif
