/*
 * virtio-net, modern PCI transport (VIRTIO 1.1 sections 4.1 and 5.1):
 * vendor 0x1af4, device 0x1041, or the transitional 0x1000 when it offers
 * the modern capabilities.  One RX and one TX split virtqueue of up to
 * NIC_RING_SIZE entries, one NIC_BUF_SIZE buffer per descriptor (no
 * chains), all interrupts on MSI-X entry 0.
 *
 * Features: VERSION_1 (required); MAC, STATUS, CSUM and GUEST_CSUM when
 * offered.  No segmentation offload and no mergeable buffers: every frame
 * carries a 12-byte virtio_net_hdr (5.1.6: with VERSION_1 it includes
 * num_buffers) whose only non-zero fields are the checksum ones.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/kernel.h"
#include "kernel/lib/byteorder.h"
#include "net/nic.h"
#include "kernel/lib/virtq.h"

#define VIRTIO_VENDOR		0x1af4
#define VIRTIO_NET_MODERN	0x1041
#define VIRTIO_NET_TRANS	0x1000

/* Common configuration structure, 4.1.4.3. */
#define VC_DFSELECT		0x00
#define VC_DF			0x04
#define VC_GFSELECT		0x08
#define VC_GF			0x0c
#define VC_MSIX_CONFIG		0x10
#define VC_NUM_QUEUES		0x12
#define VC_STATUS		0x14
#define VC_CFG_GEN		0x15
#define VC_Q_SELECT		0x16
#define VC_Q_SIZE		0x18
#define VC_Q_MSIX		0x1a
#define VC_Q_ENABLE		0x1c
#define VC_Q_NOTIFY_OFF		0x1e
#define VC_Q_DESC		0x20
#define VC_Q_DRIVER		0x28
#define VC_Q_DEVICE		0x30
#define VC_SIZE			0x38

/* Device status, 2.1. */
#define VS_ACK			1
#define VS_DRIVER		2
#define VS_DRIVER_OK		4
#define VS_FEATURES_OK		8
#define VS_FAILED		128

/* Feature bits, 5.1.3 and 6. */
#define VF_CSUM			(1ull << 0)
#define VF_GUEST_CSUM		(1ull << 1)
#define VF_MAC			(1ull << 5)
#define VF_STATUS		(1ull << 16)
#define VF_VERSION_1		(1ull << 32)

#define VNET_HDR		12
/* virtio_net_hdr, 5.1.6: flags at 0, gso_type 1, csum_start 6,
 * csum_offset 8, all little-endian. */
#define VNET_HDR_F_NEEDS_CSUM	1
#define VNET_HDR_F_DATA_VALID	2
#define VNET_HDR_CSUM_START	6
#define VNET_HDR_CSUM_OFFSET	8
#define VNET_LINK_UP		1
#define VQ_NO_VECTOR		0xffff
#define VQ_USED_F_NO_NOTIFY	1
#define RX_Q			0
#define TX_Q			1

struct vq {
	uint32_t n;
	volatile struct virtq_desc *desc;
	volatile uint16_t *avail;	/* flags, idx, ring[n], used_event */
	volatile uint16_t *used_hdr;	/* flags, idx */
	volatile struct virtq_used_elem *used;
	volatile uint16_t *notify;
	uint8_t *bufs;			/* n * NIC_BUF_SIZE */
	uint16_t avail_idx, last_used;
	uint16_t free_ids[NIC_RING_SIZE];
	bool busy[NIC_RING_SIZE];
	uint32_t nfree;
};

struct vnet {
	struct netdev nd;
	struct pci_dev *pd;
	volatile uint8_t *common, *device;
	volatile uint8_t *notify_base;
	uint32_t notify_mult, notify_len, device_len;
	uint64_t features;
	struct vq rxq, txq;
	bool broken;
};

static int vnet_count;

static inline void mb(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

#define C8(v, o)	(*(volatile uint8_t *)((v)->common + (o)))
#define C16(v, o)	(*(volatile uint16_t *)((v)->common + (o)))
#define C32(v, o)	(*(volatile uint32_t *)((v)->common + (o)))

static void c64(struct vnet *v, unsigned int off, uint64_t val)
{
	C32(v, off) = (uint32_t)val;
	C32(v, off + 4) = (uint32_t)(val >> 32);
}

static void vq_kick(struct vnet *v, struct vq *q, uint16_t qi)
{
	mb();		/* avail->idx visible before reading used->flags */
	if (!(q->used_hdr[0] & VQ_USED_F_NO_NOTIFY))
		*q->notify = qi;
	(void)v;
}

static void vq_publish(struct vq *q, uint16_t id)
{
	q->avail[2 + q->avail_idx % q->n] = id;
	q->avail_idx++;
}

static void vq_commit(struct vq *q)
{
	barrier();	/* x86: stores are not reordered with stores */
	q->avail[1] = q->avail_idx;
}

/* ---- link, MAC ---- */

static void vnet_update_link(struct netdev *nd)
{
	struct vnet *v = nd->priv;

	if (v->broken)
		nd->link_up = false;
	else if (v->features & VF_STATUS)
		nd->link_up = *(volatile uint16_t *)(v->device + 6) & VNET_LINK_UP;
	else
		nd->link_up = true;
}

static void vnet_read_mac(struct vnet *v)
{
	int tries, i;

	if (!(v->features & VF_MAC)) {
		/* Locally administered, unicast (IEEE 802 bit 1 set, bit 0 clear). */
		uint8_t mac[6] = { 0x02, 0x54, 0x45, 0x52, 0x4e, (uint8_t)vnet_count };

		memcpy(v->nd.mac, mac, 6);
		return;
	}
	/* Config generation: retry until the read is consistent (4.1.4.3.1). */
	for (tries = 0; tries < 8; tries++) {
		uint8_t gen = C8(v, VC_CFG_GEN);

		for (i = 0; i < 6; i++)
			v->nd.mac[i] = v->device[i];
		if (C8(v, VC_CFG_GEN) == gen)
			break;
	}
}

/* ---- TX ---- */

static void vnet_reap_tx(struct vnet *v)
{
	struct vq *q = &v->txq;
	int pending = virtq_used_pending(q->last_used, q->used_hdr[1], q->n);

	if (pending < 0) {
		v->broken = true;
		return;
	}
	barrier();
	while (pending-- > 0) {
		struct virtq_used_elem e = q->used[q->last_used % q->n];

		q->last_used++;
		if (e.id >= q->n || !q->busy[e.id]) {
			v->nd.tx_errors++;	/* the device returned a bad id */
			continue;
		}
		q->busy[e.id] = false;
		q->free_ids[q->nfree++] = (uint16_t)e.id;
	}
}

/* The header for one frame (5.1.6.2): with a checksum request, NEEDS_CSUM
 * and where the device sums from and stores; the caller left the
 * pseudo-header sum in the field, as point 1 of that section requires. */
static void vnet_tx_hdr(uint8_t *h, const struct netdev_csum *csum)
{
	memset(h, 0, VNET_HDR);
	if (!csum)
		return;
	h[0] = VNET_HDR_F_NEEDS_CSUM;
	h[VNET_HDR_CSUM_START] = (uint8_t)csum->start;
	h[VNET_HDR_CSUM_START + 1] = (uint8_t)(csum->start >> 8);
	h[VNET_HDR_CSUM_OFFSET] = (uint8_t)csum->offset;
	h[VNET_HDR_CSUM_OFFSET + 1] = (uint8_t)(csum->offset >> 8);
}

static int vnet_xmit(struct netdev *nd, const void *frame, size_t len,
		     const struct netdev_csum *csum)
{
	struct vnet *v = nd->priv;
	struct vq *q = &v->txq;
	uint16_t id;
	uint8_t *buf;

	if (len < 14 || len > NETDEV_FRAME_MAX ||
	    (csum && (!nd->tx_csum_offload ||
		      (size_t)csum->start + csum->offset + 2 > len))) {
		nd->tx_errors++;
		return -EINVAL;
	}
	if (v->broken)
		return -EIO;
	if (!q->nfree)
		vnet_reap_tx(v);
	if (!q->nfree)
		return -EAGAIN;
	id = q->free_ids[--q->nfree];
	q->busy[id] = true;
	buf = q->bufs + (size_t)id * NIC_BUF_SIZE;
	vnet_tx_hdr(buf, csum);
	memcpy(buf + VNET_HDR, frame, len);
	q->desc[id].addr = virt_to_phys(buf);
	q->desc[id].len = (uint32_t)(VNET_HDR + len);
	q->desc[id].flags = 0;
	q->desc[id].next = 0;
	vq_publish(q, id);
	vq_commit(q);
	vq_kick(v, q, TX_Q);
	nd->tx_packets++;
	nd->tx_bytes += len;
	if (csum)
		nd->tx_csum_frames++;
	return 0;
}

/* ---- RX ---- */

/*
 * With GUEST_CSUM, 5.1.6.4 point 4: DATA_VALID means the device checked
 * the checksum; NEEDS_CSUM means the packet's checksums were validated
 * and only the one at csum_start + csum_offset is left partial (a local
 * peer that never computed it).  Both are good data; with NEEDS_CSUM the
 * field holds the pseudo-header sum, which the stack then must not check.
 * Without GUEST_CSUM the flags are ignored.
 */
static unsigned int vnet_rx_flags(struct vnet *v, const uint8_t *h)
{
	if (!(v->features & VF_GUEST_CSUM))
		return 0;
	if (h[0] & VNET_HDR_F_NEEDS_CSUM) {
		/* struct virtio_net_hdr: csum_start at 6, csum_offset at 8. */
		v->nd.rx_csum_start = ld_le16(h + 6);
		v->nd.rx_csum_offset = ld_le16(h + 8);
		return NETDEV_RX_CSUM_OK | NETDEV_RX_CSUM_PARTIAL;
	}
	return h[0] & VNET_HDR_F_DATA_VALID ? NETDEV_RX_CSUM_OK : 0;
}

static void rx_post(struct vq *q, uint16_t id)
{
	q->desc[id].addr = virt_to_phys(q->bufs + (size_t)id * NIC_BUF_SIZE);
	q->desc[id].len = NIC_BUF_SIZE;
	q->desc[id].flags = VIRTQ_DESC_F_WRITE;
	q->desc[id].next = 0;
	vq_publish(q, id);
}

static int vnet_poll(struct netdev *nd, int budget)
{
	struct vnet *v = nd->priv;
	struct vq *q = &v->rxq;
	int pending, got = 0;

	if (v->broken)
		return 0;
	vnet_reap_tx(v);
	pending = virtq_used_pending(q->last_used, q->used_hdr[1], q->n);
	if (pending < 0) {
		pr_err("%s: device reports %u used RX entries past %u: stopped",
		       nd->name, q->used_hdr[1], q->last_used);
		v->broken = true;
		return 0;
	}
	barrier();	/* x86 keeps loads in order; the compiler must too */
	while (pending-- > 0 && got < budget) {
		struct virtq_used_elem e = q->used[q->last_used % q->n];
		const uint8_t *buf;

		q->last_used++;
		if (!virtq_used_ok(&e, q->n, NIC_BUF_SIZE) || e.len <= VNET_HDR) {
			nd->rx_dropped++;
			/* A bad id cannot be reposted: which buffer is it? */
			if (e.id < q->n)
				rx_post(q, (uint16_t)e.id);
			continue;
		}
		buf = q->bufs + (size_t)e.id * NIC_BUF_SIZE;
		nic_deliver(nd, buf + VNET_HDR, e.len - VNET_HDR, vnet_rx_flags(v, buf));
		rx_post(q, (uint16_t)e.id);
		got++;
	}
	if (q->avail_idx != q->avail[1]) {
		vq_commit(q);
		vq_kick(v, q, RX_Q);
	}
	return got;
}

static const struct netdev_ops vnet_ops = {
	.xmit = vnet_xmit,
	.poll = vnet_poll,
	.update_link = vnet_update_link,
};

/* ---- set-up ---- */

static int map_cap(struct vnet *v, const struct virtio_pci_cap *c, uint32_t need,
		   volatile uint8_t **out, uint32_t *len)
{
	struct pci_dev *pd = v->pd;
	volatile uint8_t *bar;

	if (pd->bar[c->bar].io ||
	    !virtio_region_fits(pd->bar[c->bar].size, c->offset, c->length, need))
		return -EINVAL;
	bar = pci_map_bar(pd, c->bar);
	if (!bar)
		return -ENOMEM;
	*out = bar + c->offset;
	if (len)
		*len = c->length;
	return 0;
}

static int find_caps(struct vnet *v)
{
	struct pci_dev *pd = v->pd;
	struct virtio_pci_cap c;
	int off = 0, r;

	/* The first capability of each type that we can use wins (4.1.4). */
	while ((off = pci_cap_find(pd->cfg, PCI_CFG_SIZE, PCI_CAP_VENDOR,
				   (uint8_t)off)) > 0) {
		if (virtio_pci_cap_decode(pd->cfg, PCI_CFG_SIZE, (uint8_t)off, &c) < 0)
			continue;
		r = 0;
		if (c.cfg_type == VIRTIO_PCI_CAP_COMMON && !v->common)
			r = map_cap(v, &c, VC_SIZE, &v->common, NULL);
		else if (c.cfg_type == VIRTIO_PCI_CAP_NOTIFY && !v->notify_base) {
			r = map_cap(v, &c, 2, &v->notify_base, &v->notify_len);
			v->notify_mult = c.notify_mult;
		} else if (c.cfg_type == VIRTIO_PCI_CAP_DEVICE && !v->device)
			r = map_cap(v, &c, 8, &v->device, &v->device_len);
		if (r < 0)
			pr_warn("%s: virtio cap type %u at %#x unusable (%d)",
				v->nd.name, c.cfg_type, off, r);
	}
	return v->common && v->notify_base && v->device ? 0 : -ENODEV;
}

static int negotiate(struct vnet *v)
{
	uint64_t offered;
	int i;

	C8(v, VC_STATUS) = 0;		/* reset, 4.1.4.3.2: wait for 0 */
	for (i = 0; i < 100000 && C8(v, VC_STATUS); i++)
		udelay(10);
	if (C8(v, VC_STATUS))
		return -ETIMEDOUT;
	C8(v, VC_STATUS) = VS_ACK;
	C8(v, VC_STATUS) = VS_ACK | VS_DRIVER;
	C32(v, VC_DFSELECT) = 0;
	offered = C32(v, VC_DF);
	C32(v, VC_DFSELECT) = 1;
	offered |= (uint64_t)C32(v, VC_DF) << 32;
	if (!(offered & VF_VERSION_1))
		return -ENOTSUP;
	/* No GSO features: every frame stays within NETDEV_FRAME_MAX. */
	v->features = offered & (VF_VERSION_1 | VF_MAC | VF_STATUS | VF_CSUM |
				 VF_GUEST_CSUM);
	C32(v, VC_GFSELECT) = 0;
	C32(v, VC_GF) = (uint32_t)v->features;
	C32(v, VC_GFSELECT) = 1;
	C32(v, VC_GF) = (uint32_t)(v->features >> 32);
	C8(v, VC_STATUS) = VS_ACK | VS_DRIVER | VS_FEATURES_OK;
	if (!(C8(v, VC_STATUS) & VS_FEATURES_OK))
		return -ENOTSUP;	/* 3.1.1 step 6: the device said no */
	v->nd.tx_csum_offload = v->features & VF_CSUM;
	v->nd.rx_csum_offload = v->features & VF_GUEST_CSUM;
	return 0;
}

static int setup_queue(struct vnet *v, struct vq *q, uint16_t qi, bool use_msix)
{
	struct virtq_layout l;
	uint32_t max, n, noff;
	uint8_t *ring;

	C16(v, VC_Q_SELECT) = qi;
	max = C16(v, VC_Q_SIZE);
	if (!max)
		return -ENODEV;
	for (n = NIC_RING_SIZE; n > max; n >>= 1)
		;
	if (virtq_layout(n, &l) < 0)
		return -EINVAL;
	noff = (uint32_t)C16(v, VC_Q_NOTIFY_OFF) * v->notify_mult;
	if ((uint64_t)noff + 2 > v->notify_len)
		return -EINVAL;
	ring = page_alloc((l.total + PAGE_SIZE - 1) / PAGE_SIZE);
	q->bufs = page_alloc((size_t)n * NIC_BUF_SIZE / PAGE_SIZE);
	if (!ring || !q->bufs)
		return -ENOMEM;	/* boot-time: what was taken stays taken */
	q->n = n;
	q->desc = (volatile struct virtq_desc *)(ring + l.desc);
	q->avail = (volatile uint16_t *)(ring + l.avail);
	q->used_hdr = (volatile uint16_t *)(ring + l.used);
	q->used = (volatile struct virtq_used_elem *)(ring + l.used + 4);
	q->notify = (volatile uint16_t *)(v->notify_base + noff);
	C16(v, VC_Q_SIZE) = (uint16_t)n;
	c64(v, VC_Q_DESC, virt_to_phys(ring + l.desc));
	c64(v, VC_Q_DRIVER, virt_to_phys(ring + l.avail));
	c64(v, VC_Q_DEVICE, virt_to_phys(ring + l.used));
	if (use_msix) {
		C16(v, VC_Q_MSIX) = 0;
		if (C16(v, VC_Q_MSIX) == VQ_NO_VECTOR)
			return -EIO;
	}
	C16(v, VC_Q_ENABLE) = 1;
	return 0;
}

static int vnet_start(struct vnet *v)
{
	struct vq *q;
	bool msix;
	uint32_t i;
	int r;

	if ((r = find_caps(v)) < 0)
		return r;
	pci_enable(v->pd, false, true);
	r = pci_setup_irq(v->pd, true, nic_irq, &v->nd);
	msix = r > 0 && !strcmp(v->pd->irq_mode, "msi-x");
	if ((r = negotiate(v)) < 0)
		goto fail;
	if (msix) {
		C16(v, VC_MSIX_CONFIG) = 0;
		if (C16(v, VC_MSIX_CONFIG) == VQ_NO_VECTOR)
			msix = false;
	}
	if ((r = setup_queue(v, &v->rxq, RX_Q, msix)) < 0 ||
	    (r = setup_queue(v, &v->txq, TX_Q, msix)) < 0)
		goto fail;
	q = &v->rxq;
	for (i = 0; i < q->n; i++)
		rx_post(q, (uint16_t)i);
	vq_commit(q);
	q = &v->txq;
	for (i = 0; i < q->n; i++)
		q->free_ids[q->nfree++] = (uint16_t)(q->n - 1 - i);
	vnet_read_mac(v);
	C8(v, VC_STATUS) = VS_ACK | VS_DRIVER | VS_FEATURES_OK | VS_DRIVER_OK;
	vq_kick(v, &v->rxq, RX_Q);
	if (!msix) {
		v->pd->irq_vector = 0;
		v->pd->irq_mode = "poll";
	}
	vnet_update_link(&v->nd);
	return 0;
fail:
	C8(v, VC_STATUS) = VS_FAILED;
	return r;
}

int virtio_net_probe(struct pci_dev *pd)
{
	struct vnet *v;
	int r;

	if (pd->vendor != VIRTIO_VENDOR ||
	    (pd->device != VIRTIO_NET_MODERN && pd->device != VIRTIO_NET_TRANS))
		return -ENODEV;
	/* A transitional 0x1000 is virtio-net only by its class (network). */
	if (pd->device == VIRTIO_NET_TRANS && pd->class_code != 0x02)
		return -ENODEV;
	v = page_alloc((sizeof(*v) + PAGE_SIZE - 1) / PAGE_SIZE);
	if (!v)
		return -ENOMEM;
	v->pd = pd;
	v->nd.priv = v;
	v->nd.ops = &vnet_ops;
	v->nd.mtu = 1500;
	snprintf(v->nd.name, sizeof(v->nd.name), "virtio%d", vnet_count);
	snprintf(v->nd.model, sizeof(v->nd.model), "virtio-net 1.x");
	r = vnet_start(v);
	if (r < 0) {
		pr_warn("%s: %02x:%02x.%u not started (%d)%s", v->nd.name, pd->bus,
			pd->dev, pd->fn, r,
			r == -ENODEV ? ": no modern virtio capabilities" : "");
		return r;
	}
	if ((r = nic_register(&v->nd, pd)) < 0)
		return r;
	vnet_count++;
	pr_info("%s: %02x:%02x.%u %04x:%04x mac %02x:%02x:%02x:%02x:%02x:%02x, "
		"%u/%u descriptors, irq %s, link %s, checksum offload tx %s rx %s",
		v->nd.name, pd->bus, pd->dev, pd->fn, pd->vendor, pd->device,
		v->nd.mac[0], v->nd.mac[1], v->nd.mac[2], v->nd.mac[3], v->nd.mac[4],
		v->nd.mac[5], v->rxq.n, v->txq.n, pd->irq_mode,
		v->nd.link_up ? "up" : "down", v->nd.tx_csum_offload ? "on" : "off",
		v->nd.rx_csum_offload ? "on" : "off");
	return 0;
}
