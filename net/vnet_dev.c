/*
 * virtio-net for guests, on the switch: `vm create ... nic=MAC|auto`
 * gives the VM a virtio 1.x PCI NIC whose port on the switch (bridge.c)
 * reaches the host's network, the host itself and the other guests.
 *
 * Queues (VIRTIO 1.1 5.1.2): 0 receive, 1 transmit, 2 control.
 *  - transmit: the vCPU's exit takes the frames off the ring into the
 *    device's small frame queue and returns the chains; the main loop
 *    ("vnet" service) hands them to the switch;
 *  - receive: the switch delivers on the main loop; the frame goes into
 *    the driver's buffers (several with MRG_RXBUF), then an MSI-X;
 *  - control: answered on the vCPU's exit (RX mode, MAC tables, the
 *    announce acknowledgement).
 * Migration (vdev hooks): the transport and rings move in vdev.c's
 * record, the control state and status in this type's (vnet_save).
 * Nothing else needs to: quiesce waits until the frame queue is empty
 * (those frames leave from the old host; the chains they came in are
 * already back in the used ring), a received frame is placed whole under
 * the bus lock (never half-written across calls), and the counters are
 * this host's.  After a load the NIC stays quiet until resumed, which
 * takes what the rings hold and announces the MAC (vnet_announce).
 * A source MAC that is not the NIC's own is dropped by the switch and
 * counted (a guest cannot spoof another host).
 *
 * nic=auto: a locally administered MAC (IEEE 802 bit 1 of the first
 * byte) from a hash of the VM's name and the NIC's index, so the same VM
 * gets the same MAC on every host (migration keeps it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/kernel.h"
#include "kernel/devices/vdev.h"
#include "kernel/devices/virtio_dev.h"
#include "kernel/devices/vpci.h"
#include "kernel/lib/cmd.h"
#include "kernel/platform/mainloop.h"
#include "kernel/virt/vm.h"
#include "net/bridge.h"
#include "net/switch/vnet.h"
#include "net/vnet_dev.h"

#define VNET_QUEUE_MAX	256
#define VNET_Q_RX	0
#define VNET_Q_TX	1
#define VNET_Q_CTRL	2
#define VNET_TXQ	32		/* frames between a vCPU's exit and the switch */

struct vnet_stats {
	uint64_t tx, tx_bytes, tx_bad, tx_refused, tx_wait, rx, rx_bytes, rx_nobuf,
		rx_filtered, rx_bad, ctrl;
	uint64_t rx_quiet;		/* frames dropped while quiesced (a move) */
	uint64_t ann_uplink_full;	/* RARPs the host NIC's ring refused */
};

struct vnet_dev {
	struct virtio_dev vd;
	struct vm *vm;
	struct vnet_info info;
	uint16_t status;
	struct vnet_ctrl_state ctrl;
	bool ctrl_changed;		/* the main loop copies promisc to the port */
	/* Migration: neither take from nor write into the guest's rings
	 * (bus lock).  Set by quiesce and by a load, cleared by unquiesce
	 * and resumed. */
	bool quiet;
	struct vnet_announce ann;	/* main loop */
	int port;
	/* Frames taken on a vCPU for the main loop (bus lock). */
	struct {
		uint16_t len;
		uint8_t data[VNET_FRAME_MAX];
	} txq[VNET_TXQ];
	unsigned tx_head, tx_tail;
	uint64_t tx_wait_since;		/* the head frame met a full NIC ring, 0 */
	struct vring_chain chain;	/* scratch, under the bus lock */
	struct vnet_rx rx;
	struct vnet_stats st;
	struct vnet_dev *next;
};

static struct vnet_dev *vnet_devs;
static uint8_t vnet_frame[VNET_FRAME_MAX];

static bool vnet_mrg(const struct vnet_dev *n)
{
	return n->vd.vp.guest_features & (1ull << VNET_F_MRG_RXBUF);
}

/* ---- the driver's side (bus lock held) ---- */

static void vnet_cfg_read(struct virtio_dev *d, uint32_t off, void *buf, int size)
{
	struct vnet_dev *n = d->be;
	uint8_t cfg[VNET_CFG_LEN];

	vnet_config(&n->info, n->status, cfg, sizeof(cfg));
	if (off >= sizeof(cfg) || (uint32_t)size > sizeof(cfg) - off)
		memset(buf, 0, (size_t)size);
	else
		memcpy(buf, cfg + off, (size_t)size);
}

/* Take what fits of the transmit ring into the frame queue. */
static bool vnet_tx_pull(struct vnet_dev *n)
{
	bool got = false;

	if (n->quiet)
		return false;
	while (n->tx_head - n->tx_tail < VNET_TXQ) {
		unsigned slot = n->tx_head % VNET_TXQ;
		int len;

		if (virtio_dev_pop(&n->vd, VNET_Q_TX, &n->chain) <= 0)
			break;
		len = vnet_tx_frame(&n->vd.mem, &n->chain, n->txq[slot].data, VNET_FRAME_MAX);
		virtio_dev_complete(&n->vd, VNET_Q_TX, &n->chain, 0);
		if (len < 0) {
			n->st.tx_bad++;
			continue;
		}
		n->txq[slot].len = (uint16_t)len;
		n->tx_head++;
		got = true;
	}
	return got;
}

static void vnet_ctrl_pull(struct vnet_dev *n)
{
	uint32_t written;

	if (n->quiet)
		return;
	/* At most a ring's worth per kick: the device's own writes could
	 * land on a hostile driver's avail ring and feed it forever. */
	for (unsigned k = 0; k < VNET_QUEUE_MAX &&
	     virtio_dev_pop(&n->vd, VNET_Q_CTRL, &n->chain) > 0; k++) {
		if (vnet_ctrl(&n->vd.mem, &n->chain, &n->ctrl, &written) < 0)
			written = 0;
		virtio_dev_complete(&n->vd, VNET_Q_CTRL, &n->chain, written);
		n->st.ctrl++;
		if (n->ctrl.announce_acked) {
			n->ctrl.announce_acked = false;
			n->status &= (uint16_t)~VNET_S_ANNOUNCE;
			vnet_announce_ack(&n->ann);
		}
		n->ctrl_changed = true;
	}
}

static void vnet_notify(struct virtio_dev *d, uint16_t q)
{
	struct vnet_dev *n = d->be;

	if (q == VNET_Q_TX && vnet_tx_pull(n))
		mainloop_kick();
	else if (q == VNET_Q_CTRL) {
		vnet_ctrl_pull(n);
		mainloop_kick();
	}
	/* VNET_Q_RX: new buffers; frames that found none were dropped. */
}

static void vnet_reset(struct virtio_dev *d)
{
	struct vnet_dev *n = d->be;

	n->tx_head = n->tx_tail = 0;
	vnet_ctrl_init(&n->ctrl);
	n->status &= (uint16_t)~VNET_S_ANNOUNCE;
	n->ann.guest = false;		/* the driver that would ack is gone */
	n->ctrl_changed = true;
}

static const struct virtio_dev_ops vnet_vd_ops = {
	.notify = vnet_notify,
	.reset = vnet_reset,
	.cfg_read = vnet_cfg_read,
};

/* ---- the switch's side (main loop) ---- */

/* Give back the chains a frame used (len 0 for a dropped one). */
static void vnet_rx_return(struct vnet_dev *n)
{
	for (uint16_t i = 0; i < n->rx.nchains; i++) {
		n->chain.head = n->rx.used[i].head;
		n->chain.nseg = 0;
		virtio_dev_complete(&n->vd, VNET_Q_RX, &n->chain, n->rx.used[i].len);
	}
}

/* One frame for this guest, under the bus lock. */
static void vnet_rx_locked(struct vnet_dev *n, const uint8_t *frame, size_t len)
{
	int rc = 0;

	if (n->quiet) {
		n->st.rx_quiet++;	/* lost as on a wire being re-plugged */
		return;
	}
	if (!virtio_dev_ready(&n->vd, VNET_Q_RX) || !(n->status & VNET_S_LINK_UP)) {
		n->st.rx_nobuf++;
		return;
	}
	if (!vnet_rx_accept(&n->ctrl, n->info.mac, frame)) {
		n->st.rx_filtered++;
		return;
	}
	if (vnet_rx_begin(&n->rx, vnet_mrg(n), (uint32_t)len) < 0) {
		n->st.rx_bad++;
		return;
	}
	while (rc == 0) {
		int got = virtio_dev_pop(&n->vd, VNET_Q_RX, &n->chain);

		if (got <= 0) {
			rc = -ENOBUFS;
			break;
		}
		rc = vnet_rx_place(&n->rx, &n->vd.mem, &n->chain, frame);
	}
	if (rc == 1) {
		n->st.rx++;
		n->st.rx_bytes += len;
	} else if (rc == -ENOBUFS && !n->rx.nchains) {
		n->st.rx_nobuf++;
		return;
	} else {
		n->st.rx_bad++;
		for (uint16_t i = 0; i < n->rx.nchains; i++)
			n->rx.used[i].len = 0;	/* the driver drops a short buffer */
	}
	vnet_rx_return(n);
}

static void vnet_deliver(void *ctx, const void *frame, size_t len)
{
	struct vnet_dev *n = ctx;
	uint64_t f;

	if (!n->vm)
		return;
	f = vpci_lock(n->vm);
	vnet_rx_locked(n, frame, len);
	vpci_unlock(n->vm, f);
}

/* A frame waits for the NIC's ring at most VNET_TX_WAIT_US, then is
 * dropped: a NIC that never drains must not keep the loop spinning. */
#define VNET_TX_WAIT_US	100000

static bool vnet_tx_give_up(struct vnet_dev *n)
{
	uint64_t now = time_us();

	if (!n->tx_wait_since)
		n->tx_wait_since = now;
	return now - n->tx_wait_since > VNET_TX_WAIT_US;
}

/* The frames a vCPU queued go to the switch, one at a time and with the
 * bus lock dropped: the switch may deliver to a NIC of the same VM. */
static void vnet_tx_flush(struct vnet_dev *n)
{
	for (;;) {
		uint64_t f = vpci_lock(n->vm);
		unsigned len;
		int rc;

		if (n->tx_tail == n->tx_head) {
			/* Room again: what the ring still holds. */
			bool more = vnet_tx_pull(n);

			vpci_unlock(n->vm, f);
			if (!more)
				return;
			continue;
		}
		/* Only this loop moves the tail: the slot stays put until the
		 * frame is gone, so a full NIC ring can send it back. */
		len = n->txq[n->tx_tail % VNET_TXQ].len;
		memcpy(vnet_frame, n->txq[n->tx_tail % VNET_TXQ].data, len);
		vpci_unlock(n->vm, f);
		rc = bridge_from_guest(n->port, vnet_frame, len);
		if (rc == -EAGAIN && !vnet_tx_give_up(n)) {
			n->st.tx_wait++;
			return;
		}
		n->tx_wait_since = 0;
		f = vpci_lock(n->vm);
		n->tx_tail++;
		vpci_unlock(n->vm, f);
		if (rc < 0) {
			n->st.tx_refused++;
		} else {
			n->st.tx++;
			n->st.tx_bytes += len;
		}
	}
}

/* The driver negotiated GUEST_ANNOUNCE (with CTRL_VQ, for the ack) and
 * can take a configuration interrupt now. */
static bool vnet_guest_announces(const struct vnet_dev *n)
{
	const uint64_t need = 1ull << VNET_F_GUEST_ANNOUNCE | 1ull << VNET_F_CTRL_VQ;

	return (n->vd.vp.guest_features & need) == need && virtio_pci_live(&n->vd.vp);
}

/* A due announce round.  The rounds' state is under the bus lock (a
 * vCPU's ack or reset changes it); the RARP goes without it (the switch
 * may deliver it to a NIC of this VM). */
static void vnet_announce_round(struct vnet_dev *n)
{
	uint64_t f = vpci_lock(n->vm);
	unsigned act = vnet_announce_poll(&n->ann, time_us());

	if ((act & VNET_ANN_RAISE) && vnet_guest_announces(n)) {
		n->status |= VNET_S_ANNOUNCE;
		virtio_pci_interrupt_config(&n->vd.vp);
	}
	vpci_unlock(n->vm, f);
	if ((act & VNET_ANN_RARP) && bridge_announce(n->port) == -EAGAIN)
		n->st.ann_uplink_full++;
}

/* Read without the lock: a hint for the main loop, which then looks. */
static bool vnet_announce_due(const struct vnet_dev *n)
{
	return vnet_announce_active(&n->ann) && time_us() >= n->ann.next_us;
}

static void vnet_service(void)
{
	for (struct vnet_dev *n = vnet_devs; n; n = n->next) {
		if (!n->vm)
			continue;
		if (vnet_announce_due(n))
			vnet_announce_round(n);
		if (n->ctrl_changed) {
			n->ctrl_changed = false;
			bridge_set_promisc(n->port, n->ctrl.promisc);
		}
		if (n->tx_head != n->tx_tail)
			vnet_tx_flush(n);
	}
}

static bool vnet_pending(void)
{
	for (struct vnet_dev *n = vnet_devs; n; n = n->next)
		if (n->vm && (n->tx_head != n->tx_tail || n->ctrl_changed || vnet_announce_due(n)))
			return true;
	return false;
}

static const struct mainloop_service vnet_svc = {
	.name = "vnet",
	.service = vnet_service,
	.pending = vnet_pending,
};

/* ---- the vdev type ---- */

static int vnet_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &tail) != 6 || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	/* A station address: not multicast (IEEE 802 bit 0), not all zero. */
	if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return -EINVAL;
	return 0;
}

/* FNV-1a of the name and index: stable, so every host derives the same. */
static void vnet_auto_mac(const char *vm, int index, uint8_t mac[6])
{
	uint32_t h = 2166136261u;

	for (const char *p = vm; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h = (h ^ (uint32_t)index) * 16777619u;
	mac[0] = 0x02;			/* locally administered, unicast */
	mac[1] = 0x74;			/* 't' */
	mac[2] = (uint8_t)(h >> 24);
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

static void vnet_free(struct vnet_dev *n)
{
	struct vnet_dev **pp;

	for (pp = &vnet_devs; *pp; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	free(n);
}

static int vnet_create(struct vm *vm, const char *arg, int index, void **inst, char *err,
		       size_t errlen)
{
	struct vnet_dev *n;
	char name[16];
	int rc;

	n = calloc(1, sizeof(*n));
	if (!n) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!strcmp(arg, "auto"))
		vnet_auto_mac(vm->name, index, n->info.mac);
	else if (vnet_parse_mac(arg, n->info.mac) < 0) {
		snprintf(err, errlen, "nic=%s: expected nic=auto or a unicast MAC like "
			 "52:54:00:12:34:56", arg);
		free(n);
		return -EINVAL;
	}
	n->info.mtu = VNET_MTU_DEFAULT;
	n->vm = vm;
	n->status = VNET_S_LINK_UP;
	vnet_ctrl_init(&n->ctrl);
	snprintf(name, sizeof(name), "net%d", index);
	rc = bridge_port_add(n->info.mac, name, vnet_deliver, n);
	if (rc < 0) {
		snprintf(err, errlen, "nic=%s: %s", arg, rc == -ENODEV ?
			 "this host has no NIC to switch guests to" :
			 rc == -EEXIST ? "that MAC is already on this host's switch" :
			 "the switch has no free port");
		free(n);
		return rc;
	}
	n->port = rc;
	rc = virtio_dev_init(&n->vd, vm, name, VIRTIO_ID_NET, 3, VNET_QUEUE_MAX, vnet_features(),
			     VNET_CFG_LEN, &vnet_vd_ops, n);
	if (rc < 0) {
		snprintf(err, errlen, "nic=%s: no room on the VM's PCI bus (%d)", arg, rc);
		bridge_port_del(n->port);
		free(n);
		return rc;
	}
	n->next = vnet_devs;
	vnet_devs = n;
	*inst = n;
	return 0;
}

static void vnet_destroy(void *inst)
{
	struct vnet_dev *n = inst;

	bridge_port_del(n->port);
	n->vm = NULL;
	vnet_free(n);
}

static void vnet_info_out(void *inst, struct cmd_out *o)
{
	struct vnet_dev *n = inst;
	const struct vnet_stats *s = &n->st;
	const uint8_t *m = n->info.mac;
	char state[128];

	virtio_dev_state(&n->vd, state, sizeof(state));
	cmd_printf(o, "  %s: virtio-net pci 00:%02x.0, mac %02x:%02x:%02x:%02x:%02x:%02x, "
		   "link %s%s, %s\n", n->vd.name, n->vd.slot, m[0], m[1], m[2], m[3], m[4], m[5],
		   (n->status & VNET_S_LINK_UP) ? "up" : "down", n->ctrl.promisc ? ", promisc" : "",
		   state);
	cmd_printf(o, "    tx %lu (%lu bytes) malformed %lu refused %lu waits %lu; rx %lu (%lu "
		   "bytes) no-buffer %lu filtered %lu; ctrl %lu; irqs %lu\n", s->tx, s->tx_bytes,
		   s->tx_bad, s->tx_refused, s->tx_wait, s->rx, s->rx_bytes, s->rx_nobuf,
		   s->rx_filtered, s->ctrl, n->vd.vp.interrupts);
	if (n->ann.started || s->rx_quiet)
		cmd_printf(o, "    announced %lu times: rarps %lu (host NIC full %lu), guest "
			   "announces %lu, acked %lu; rx dropped in a move %lu\n", n->ann.started,
			   n->ann.rarps, s->ann_uplink_full, n->ann.raised, n->ann.acked,
			   s->rx_quiet);
}

/* ---- migration (vdev.h hooks, main loop) ---- */

static struct virtio_dev *vnet_virtio(void *inst)
{
	return &((struct vnet_dev *)inst)->vd;
}

/* The control state and status (vnet_save, VNET_SAVE_SIZE bytes). */
static int vnet_save_hook(void *inst, uint8_t *buf, size_t cap)
{
	struct vnet_dev *n = inst;
	uint64_t f = vpci_lock(n->vm);
	int rc = vnet_save(&n->ctrl, n->status, buf, cap);

	vpci_unlock(n->vm, f);
	return rc;
}

static int vnet_load_hook(void *inst, const uint8_t *buf, size_t len)
{
	struct vnet_dev *n = inst;
	uint64_t f = vpci_lock(n->vm);
	int rc = vnet_load(&n->ctrl, &n->status, buf, len);

	if (!rc) {
		n->ctrl_changed = true;	/* promisc to the port */
		/* Guest RAM may still be arriving: touch no ring before
		 * the guest runs here (resumed). */
		n->quiet = true;
	}
	vpci_unlock(n->vm, f);
	if (!rc)
		mainloop_kick();
	return rc;
}

/* Stop taking and delivering; done once the frames already taken off
 * the ring have gone to the switch (or were given up on). */
static int vnet_quiesce(void *inst)
{
	struct vnet_dev *n = inst;
	uint64_t f = vpci_lock(n->vm);
	bool busy;

	n->quiet = true;
	/* Leaving: a late RARP from here would pull the guest's traffic
	 * back from its new host. */
	vnet_announce_stop(&n->ann);
	busy = n->tx_head != n->tx_tail;
	vpci_unlock(n->vm, f);
	if (busy)
		mainloop_kick();
	return busy ? -EAGAIN : 0;
}

/* Back to work: what the driver queued meanwhile (it will not kick for
 * it again). */
static void vnet_wake(struct vnet_dev *n)
{
	uint64_t f = vpci_lock(n->vm);

	n->quiet = false;
	vnet_tx_pull(n);
	vnet_ctrl_pull(n);
	vpci_unlock(n->vm, f);
	mainloop_kick();
}

static void vnet_unquiesce(void *inst)
{
	vnet_wake(inst);
}

static void vnet_resumed(void *inst)
{
	struct vnet_dev *n = inst;
	uint64_t f;

	vnet_wake(n);
	f = vpci_lock(n->vm);
	vnet_announce_start(&n->ann, vnet_guest_announces(n), time_us());
	vpci_unlock(n->vm, f);
	mainloop_kick();
}

/* Could a NIC from arg live here?  It is answered at once. */
static int vnet_prepare(const char *arg, void (*done)(void *ctx, int rc, const char *why),
			void *ctx, char *why, size_t len)
{
	uint8_t mac[6];
	int rc;

	if (strcmp(arg, "auto") && vnet_parse_mac(arg, mac) < 0) {
		snprintf(why, len, "nic=%s: not a unicast MAC", arg);
		return -EINVAL;
	}
	/* A MAC already on this switch is not refused here: the incoming
	 * VM may have been created (its port added) before this is asked;
	 * creating a second one says so itself. */
	rc = bridge_ready(why, len);
	if (rc < 0)
		return rc;
	done(ctx, 0, "");
	return 0;
}

/* nic=auto resolved: the MAC travels, not the name it came from. */
static void vnet_spec(void *inst, char *buf, size_t len)
{
	const uint8_t *m = ((struct vnet_dev *)inst)->info.mac;

	snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
		 m[5]);
}

static const struct vdev_type vnet_type = {
	.key = "nic",
	.create = vnet_create,
	.destroy = vnet_destroy,
	.info = vnet_info_out,
	.virtio = vnet_virtio,
	.save = vnet_save_hook,
	.load = vnet_load_hook,
	.quiesce = vnet_quiesce,
	.unquiesce = vnet_unquiesce,
	.spec = vnet_spec,
	.prepare = vnet_prepare,
	.resumed = vnet_resumed,
};

void vnet_dev_start(void)
{
	vdev_register(&vnet_type);
	mainloop_register(&vnet_svc);
}
