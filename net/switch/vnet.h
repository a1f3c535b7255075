/*
 * The virtio-net device model (VIRTIO 1.1 5.1), pure: feature bits, the
 * device configuration, the transmit and receive buffer formats and the
 * control queue.  The transport (virtio-pci, MSI-X) and the queues
 * themselves (kernel/devices/model/vring.h) are the caller's; it holds a
 * lock around every call.
 *
 * No offloads are offered (no CSUM, no GSO), so every frame is a plain
 * Ethernet frame of at most 1514 bytes behind a zeroed header.
 */
#ifndef TERN_NET_SWITCH_VNET_H
#define TERN_NET_SWITCH_VNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/devices/model/vring.h"

/* Feature bits (5.1.3; VERSION_1 from 6). */
#define VNET_F_MTU		3
#define VNET_F_MAC		5
#define VNET_F_MRG_RXBUF	15
#define VNET_F_STATUS		16
#define VNET_F_CTRL_VQ		17
#define VNET_F_CTRL_RX		18
#define VNET_F_GUEST_ANNOUNCE	21
#define VNET_F_VERSION_1	32

#define VNET_HDR_LEN	12	/* struct virtio_net_hdr_v1 (5.1.6), with num_buffers: VERSION_1 always has it */
#define VNET_FRAME_MIN	14
#define VNET_FRAME_MAX	1514
#define VNET_MTU_DEFAULT 1500

struct vnet_info {
	uint8_t mac[6];
	uint16_t mtu;	/* 0: 1500; clamped to 68..1500 */
};

/* MAC, STATUS, CTRL_VQ, CTRL_RX, MRG_RXBUF, GUEST_ANNOUNCE, MTU and
 * VERSION_1 (the header layout assumes it). */
uint64_t vnet_features(void);

#define VNET_CFG_LEN	12	/* mac[6], status, max_virtqueue_pairs, mtu (5.1.4) */
#define VNET_S_LINK_UP	1
#define VNET_S_ANNOUNCE	2
/* The first len bytes of the device configuration (bytes past 12 read 0). */
void vnet_config(const struct vnet_info *i, uint16_t status, uint8_t *out, uint32_t len);

/*
 * TX: one chain from the transmit queue -> the Ethernet frame (header
 * stripped and checked: flags and gso_type must be 0 since no offloads
 * were offered; frame 14..1514 bytes and <= cap).  The frame length or
 * -EINVAL (dropped, counted by the caller; the chain still goes back with
 * used length 0), -EFAULT when guest memory does not map.
 */
int vnet_tx_frame(const struct vring_mem *m, const struct vring_chain *c, uint8_t *frame,
		  uint32_t cap);

/*
 * RX: one frame into receive buffers (5.1.6.4).  vnet_rx_begin, then per
 * chain popped from the receive queue vnet_rx_place until it returns 1.
 * With MRG_RXBUF a frame may span several chains (at most
 * VNET_RX_MAX_CHAINS); on completion num_buffers in the first chain's
 * header is patched.  Without it one chain must hold header + frame.
 * rx->used[0..nchains) are the (head, len) pairs for the used ring; on an
 * error every chain consumed so far is listed there with len 0 (the
 * driver drops a buffer shorter than a header) and the frame is dropped.
 */
#define VNET_RX_MAX_CHAINS	64
struct vnet_rx {
	bool mrg;
	uint32_t len;		/* frame bytes */
	uint32_t placed;	/* frame bytes written so far */
	uint16_t nchains;
	uint64_t nb_gpa[2];	/* where the first header's num_buffers bytes live */
	struct {
		uint16_t head;
		uint32_t len;
	} used[VNET_RX_MAX_CHAINS];
};

/* -EINVAL when len is not 14..1514 (drop without popping a chain). */
int vnet_rx_begin(struct vnet_rx *rx, bool mrg, uint32_t len);
/* 1 done, 0 more chains needed (MRG only), -EINVAL drop (buffer too small,
 * no writable bytes, too many chains), -EFAULT. */
int vnet_rx_place(struct vnet_rx *rx, const struct vring_mem *m, const struct vring_chain *c,
		  const uint8_t *frame);

/*
 * Control queue (5.1.6.5).  The RX filter state the driver sets; it does
 * not touch the switch: the caller copies promisc (or vnet_rx_accept) to
 * its port.  A MAC table longer than VNET_MAC_TABLE is accepted as an
 * overflow that lets every address of that kind through.
 */
#define VNET_MAC_TABLE	64
#define VNET_OK		0	/* ack values */
#define VNET_ERR	1
#define VNET_CTRL_RX		0
#define VNET_CTRL_RX_PROMISC	0
#define VNET_CTRL_RX_ALLMULTI	1
#define VNET_CTRL_MAC		1
#define VNET_CTRL_MAC_TABLE_SET	0
#define VNET_CTRL_MAC_ADDR_SET	1
#define VNET_CTRL_ANNOUNCE	3
#define VNET_CTRL_ANNOUNCE_ACK	0

struct vnet_ctrl_state {
	bool promisc, allmulti;
	bool uc_overflow, mc_overflow;
	bool announce_acked;	/* the caller clears VNET_S_ANNOUNCE and this flag */
	uint8_t nuc, nmc;
	uint8_t uc[VNET_MAC_TABLE][6];
	uint8_t mc[VNET_MAC_TABLE][6];
};

void vnet_ctrl_init(struct vnet_ctrl_state *s);

/*
 * Parse one command chain, apply it (only on success) and write the ack
 * byte.  Class 0 RX: PROMISC, ALLMULTI (one byte, 0 or 1), the other RX
 * commands are OK'd and ignored; class 1 MAC: TABLE_SET, ADDR_SET is
 * refused (CTRL_MAC_ADDR is not offered); class 3 ANNOUNCE ACK; others
 * ERR.  Returns the ack written (VNET_OK or VNET_ERR) with *written = 1,
 * or -EINVAL (no writable byte for the ack) / -EFAULT with *written = 0.
 */
int vnet_ctrl(const struct vring_mem *m, const struct vring_chain *c, struct vnet_ctrl_state *s,
	      uint32_t *written);

/* The RX filter of 5.1.6.5.1 for a destination MAC, given the NIC's own. */
bool vnet_rx_accept(const struct vnet_ctrl_state *s, const uint8_t own[6], const uint8_t *dst);

/* Migration record: control state + status.  save: bytes or -ENOSPC;
 * load: 0, or -EINVAL leaving *s and *status alone. */
#define VNET_SAVE_VERSION	1
#define VNET_SAVE_SIZE		(8 + 2 * 6 * VNET_MAC_TABLE)
int vnet_save(const struct vnet_ctrl_state *s, uint16_t status, uint8_t *buf, size_t len);
int vnet_load(struct vnet_ctrl_state *s, uint16_t *status, const uint8_t *buf, size_t len);

/*
 * Announcing a NIC on its new host (after a migration, once the guest
 * runs there).  The external switches still send its traffic to the old
 * host until frames with its MAC come from here, so:
 *  - RARP rounds (l2sw_rarp_frame) from the guest's port, as QEMU sends
 *    after a migration: VNET_ANN_RARPS of them, the first at once, the
 *    next VNET_ANN_FIRST_US later, then VNET_ANN_STEP_US more each time
 *    (0, 50, 150, 250, 350 ms);
 *  - and when the driver negotiated GUEST_ANNOUNCE (5.1.6.5.4, which
 *    needs CTRL_VQ), VIRTIO_NET_S_ANNOUNCE with a configuration change
 *    interrupt: Linux then sends gratuitous ARPs and IPv6 NAs for every
 *    address (netdev_notify_peers) and acks with class 3 command 0,
 *    which clears the bit.  Until the ack, the bit is raised again with
 *    the first VNET_ANN_GUEST rounds (an interrupt lost in the move is
 *    not fatal); after the ack, no more.
 * Pure timing: the caller sends and interrupts as vnet_announce_poll says.
 */
#define VNET_ANN_RARPS		5
#define VNET_ANN_GUEST		3
#define VNET_ANN_FIRST_US	50000u
#define VNET_ANN_STEP_US	100000u
#define VNET_ANN_RARP		1u	/* send one RARP now */
#define VNET_ANN_RAISE		2u	/* set S_ANNOUNCE, config interrupt */

/* All zero: idle (a NIC that never moved). */
struct vnet_announce {
	uint8_t left;		/* rounds still to go, of VNET_ANN_RARPS */
	bool guest;		/* raise S_ANNOUNCE until acked */
	uint64_t next_us;	/* when the next round is due */
	/* for vm info, over the NIC's life */
	uint64_t started, rarps, raised, acked;
};

/* Start (or restart) the rounds at now_us; guest: GUEST_ANNOUNCE was
 * negotiated and the driver is live. */
void vnet_announce_start(struct vnet_announce *a, bool guest, uint64_t now_us);
/* The actions due at now_us (0 when none), counted; the next round then
 * waits for vnet_announce_next_us. */
unsigned vnet_announce_poll(struct vnet_announce *a, uint64_t now_us);
/* The driver acked: no more raising (counted when it was asked). */
void vnet_announce_ack(struct vnet_announce *a);
/* No more rounds (the NIC is leaving this host). */
void vnet_announce_stop(struct vnet_announce *a);
bool vnet_announce_active(const struct vnet_announce *a);

#endif
