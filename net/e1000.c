/*
 * Intel 8254x/8257x gigabit NICs as QEMU emulates them: the 82540EM
 * (`-device e1000`, 8086:100E) and the 82574L (`-device e1000e`,
 * 8086:10D3).  Legacy RX/TX descriptors, NIC_RING_SIZE of each, one
 * NIC_BUF_SIZE buffer per descriptor.
 *
 * References: PCI/PCI-X Family of Gigabit Ethernet Controllers Software
 * Developer's Manual (8254x, rev 4.0), sections 3.2 (receive), 3.3
 * (transmit), 13 (registers), 14 (initialisation); 82574 GbE Controller
 * Datasheet rev 3.4, sections 7.1, 7.2 and 10.  Legacy RX descriptors;
 * TX uses the extended formats (a TCP/IP context, then data descriptors).
 *
 * Interrupts: MSI when the function has it (the 82574L does; QEMU's
 * 82540EM has no MSI capability), else the device is polled on the tick:
 * legacy INTx would need the ACPI _PRT.
 *
 * Checksum offload, both models: TCP/UDP on transmit through a TCP/IP
 * context (8254x 3.3.6) and POPTS.TXSM in the data descriptor (3.3.7.3);
 * on receive RXCSUM.TUOFLD and the TCPCS/UDPCS status and TCPE error bits
 * (3.2.3.1, 3.2.3.2).  Every frame goes out in an extended data
 * descriptor, even without offload: QEMU's models only honour TXSM there,
 * and keep the last data descriptor's options across legacy ones.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/kernel.h"
#include "net/nic.h"

#define E1000_CTRL	0x0000
#define E1000_STATUS	0x0008
#define E1000_EERD	0x0014
#define E1000_ICR	0x00c0
#define E1000_ITR	0x00c4
#define E1000_IMS	0x00d0
#define E1000_IMC	0x00d8
#define E1000_RCTL	0x0100
#define E1000_TCTL	0x0400
#define E1000_TIPG	0x0410
#define E1000_RDBAL	0x2800
#define E1000_RDBAH	0x2804
#define E1000_RDLEN	0x2808
#define E1000_RDH	0x2810
#define E1000_RDT	0x2818
#define E1000_RDTR	0x2820
#define E1000_TDBAL	0x3800
#define E1000_TDBAH	0x3804
#define E1000_TDLEN	0x3808
#define E1000_TDH	0x3810
#define E1000_TDT	0x3818
#define E1000_RXCSUM	0x5000
#define E1000_MTA	0x5200
#define E1000_RAL0	0x5400
#define E1000_RAH0	0x5404
#define E1000_REGS_MIN	0x6000		/* every register above fits */

#define CTRL_ASDE	(1u << 5)
#define CTRL_SLU	(1u << 6)
#define CTRL_RST	(1u << 26)
#define CTRL_PHY_RST	(1u << 31)
#define STATUS_LU	(1u << 1)
#define RAH_AV		(1u << 31)

#define ICR_TXDW	(1u << 0)
#define ICR_LSC		(1u << 2)
#define ICR_RXDMT0	(1u << 4)
#define ICR_RXO		(1u << 6)
#define ICR_RXT0	(1u << 7)

#define RCTL_EN		(1u << 1)
#define RCTL_UPE	(1u << 3)	/* unicast promiscuous, 8254x manual 13.4.22 */
#define RCTL_MPE	(1u << 4)	/* multicast promiscuous */
#define RCTL_BAM	(1u << 15)
#define RCTL_SECRC	(1u << 26)	/* BSIZE 00 with BSEX 0: 2048 bytes */
#define TCTL_EN		(1u << 1)
#define TCTL_PSP	(1u << 3)
#define TCTL_CT(x)	((uint32_t)(x) << 4)
#define TCTL_COLD(x)	((uint32_t)(x) << 12)

/* RXCSUM (0x5000): IP and TCP/UDP checksum offload; PCSS 0. */
#define RXCSUM_IPOFLD	(1u << 8)
#define RXCSUM_TUOFLD	(1u << 9)

#define RXD_DD		(1u << 0)
#define RXD_EOP		(1u << 1)
#define RXD_IXSM	(1u << 2)	/* ignore the checksum bits */
#define RXD_UDPCS	(1u << 4)	/* 82574 only; reserved on the 8254x */
#define RXD_TCPCS	(1u << 5)
/* CE, SE, SEQ, CXE, RXE; TCPE and IPE are checksum results. */
#define RXD_ERR_FRAME	0x97
#define RXD_ERR_TCPE	(1u << 5)

/* Extended TX descriptors: command bits (8254x 3.3.6.1 TUCMD, 3.3.7.1
 * DCMD) in bits 31:24 of the second dword, type in 23:20. */
#define TXD_EOP		(1u << 24)
#define TXD_IFCS	(1u << 25)
#define TXD_RS		(1u << 27)
#define TXD_DEXT	(1u << 29)
#define TXD_DTYP_DATA	(1u << 20)
#define TUCMD_TCP	(1u << 24)
#define TUCMD_IP	(1u << 25)
#define POPTS_TXSM	(1u << 1)
#define TXD_DD		(1u << 0)

struct rx_desc {
	uint64_t addr;
	uint16_t len, csum;
	uint8_t status, errors;
	uint16_t special;
};

/* TCP/IP data descriptor, 8254x 3.3.7 (DTYP 0001b). */
struct tx_desc {
	uint64_t addr;
	uint32_t cmd_len;	/* DTALEN 19:0, DTYP 23:20, DCMD 31:24 */
	uint8_t status, popts;
	uint16_t special;
};

/* TCP/IP context descriptor, 8254x 3.3.6 (DTYP 0000b): where the
 * checksums of the data descriptors that follow start, go and end. */
struct tx_ctx_desc {
	uint8_t ipcss, ipcso;
	uint16_t ipcse;
	uint8_t tucss, tucso;
	uint16_t tucse;		/* 0: to the end of the packet */
	uint32_t cmd_len;	/* PAYLEN 19:0, DTYP 23:20, TUCMD 31:24 */
	uint8_t status, hdrlen;
	uint16_t mss;
};

_Static_assert(sizeof(struct tx_desc) == 16 && sizeof(struct tx_ctx_desc) == 16,
	       "TX descriptors are 16 bytes");

struct e1000 {
	struct netdev nd;
	struct pci_dev *pd;
	volatile uint8_t *regs;
	bool is_82574;
	volatile struct rx_desc *rx;
	volatile struct tx_desc *tx;
	uint8_t *rx_bufs, *tx_bufs;
	uint32_t rx_next;		/* next descriptor the device fills */
	uint32_t tx_tail, tx_clean;	/* we own [tx_clean, tx_tail) in flight */
	bool rx_discard;		/* inside a frame that spans buffers */
	/* The TCP/IP context last loaded: it stays until replaced (3.3.6). */
	bool ctx_valid;
	struct netdev_csum ctx;
};

static int count_82540, count_82574;

static uint32_t rd(struct e1000 *e, uint32_t reg)
{
	return *(volatile uint32_t *)(e->regs + reg);
}

static void wr(struct e1000 *e, uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(e->regs + reg) = v;
}

static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

static void e1000_update_link(struct netdev *nd)
{
	struct e1000 *e = nd->priv;

	nd->link_up = rd(e, E1000_STATUS) & STATUS_LU;
}

/* ---- TX ---- */

static void e1000_reap_tx(struct e1000 *e)
{
	while (e->tx_clean != e->tx_tail && (e->tx[e->tx_clean].status & TXD_DD))
		e->tx_clean = (e->tx_clean + 1) % NIC_RING_SIZE;
}

/* Free descriptors: one slot stays empty so that TDT != TDH. */
static uint32_t tx_room(struct e1000 *e)
{
	return (e->tx_clean + NIC_RING_SIZE - e->tx_tail - 1) % NIC_RING_SIZE;
}

/*
 * Load a TCP/IP context for csum into slot t.  Only the TCP/UDP fields
 * matter without POPTS.IXSM, but IPCSS/IPCSO/IPCSE name the IPv4 header
 * all the same.  TUCSE 0 sums to the end of the packet; the device adds
 * the pseudo-header sum the caller left in the field.  RS: the reaper
 * walks the ring by DD, and context descriptors get it too (3.3.6.2).
 */
static void e1000_load_ctx(struct e1000 *e, uint32_t t, const struct netdev_csum *csum)
{
	volatile struct tx_ctx_desc *c = (volatile struct tx_ctx_desc *)&e->tx[t];

	c->ipcss = 14;
	c->ipcso = 14 + 10;
	c->ipcse = (uint16_t)(csum->start - 1);
	c->tucss = (uint8_t)csum->start;
	c->tucso = (uint8_t)(csum->start + csum->offset);
	c->tucse = 0;
	c->cmd_len = TXD_DEXT | TXD_RS | TUCMD_IP | (csum->offset == 16 ? TUCMD_TCP : 0);
	c->status = 0;
	c->hdrlen = 0;
	c->mss = 0;
	e->ctx = *csum;
	e->ctx_valid = true;
}

static bool e1000_ctx_needed(const struct e1000 *e, const struct netdev_csum *csum)
{
	return csum && (!e->ctx_valid || e->ctx.start != csum->start ||
			e->ctx.offset != csum->offset);
}

/* TUCSS and TUCSO are one byte each; TCP is offset 16, UDP 6. */
static bool e1000_csum_ok(const struct netdev *nd, const struct netdev_csum *c,
			  size_t len)
{
	return nd->tx_csum_offload && c->start > 14 && c->start + c->offset + 2u <= len &&
	       c->start + c->offset <= 0xff && (c->offset == 16 || c->offset == 6);
}

static int e1000_xmit(struct netdev *nd, const void *frame, size_t len,
		      const struct netdev_csum *csum)
{
	struct e1000 *e = nd->priv;
	bool ctx;
	uint32_t t;
	volatile struct tx_desc *d;
	uint8_t *buf;

	if (len < 14 || len > NETDEV_FRAME_MAX || (csum && !e1000_csum_ok(nd, csum, len))) {
		nd->tx_errors++;
		return -EINVAL;
	}
	ctx = e1000_ctx_needed(e, csum);
	if (tx_room(e) < 1u + ctx)
		e1000_reap_tx(e);
	if (tx_room(e) < 1u + ctx)
		return -EAGAIN;
	if (ctx) {
		e1000_load_ctx(e, e->tx_tail, csum);
		e->tx_tail = (e->tx_tail + 1) % NIC_RING_SIZE;
	}
	t = e->tx_tail;
	d = &e->tx[t];
	buf = e->tx_bufs + (size_t)t * NIC_BUF_SIZE;
	memcpy(buf, frame, len);
	d->addr = virt_to_phys(buf);
	d->cmd_len = (uint32_t)len | TXD_DTYP_DATA | TXD_DEXT | TXD_EOP | TXD_IFCS | TXD_RS;
	d->status = 0;
	d->popts = csum ? POPTS_TXSM : 0;
	d->special = 0;
	barrier();	/* descriptors before tail; x86 keeps stores in order */
	e->tx_tail = (t + 1) % NIC_RING_SIZE;
	wr(e, E1000_TDT, e->tx_tail);
	nd->tx_packets++;
	nd->tx_bytes += len;
	if (csum)
		nd->tx_csum_frames++;
	return 0;
}

/* ---- RX ---- */

/* The TCP/UDP checksum result of a good frame (3.2.3.1, 3.2.3.2): IXSM
 * says ignore it; TCPCS (UDPCS on the 82574) without TCPE says right. */
static unsigned int e1000_rx_flags(const struct e1000 *e, uint8_t status,
				   uint8_t errors)
{
	uint8_t done = RXD_TCPCS | (e->is_82574 ? RXD_UDPCS : 0);

	if (!e->nd.rx_csum_offload || (status & RXD_IXSM) || (errors & RXD_ERR_TCPE))
		return 0;
	return status & done ? NETDEV_RX_CSUM_OK : 0;
}

static int e1000_poll(struct netdev *nd, int budget)
{
	struct e1000 *e = nd->priv;
	uint32_t icr = rd(e, E1000_ICR);	/* read clears the causes */
	int got = 0;
	bool moved = false;
	uint32_t last = 0;

	if (icr & ICR_LSC)
		e1000_update_link(nd);
	e1000_reap_tx(e);
	while (got < budget) {
		volatile struct rx_desc *d = &e->rx[e->rx_next];
		uint8_t status = d->status, errors;
		uint16_t len;

		if (!(status & RXD_DD))
			break;
		barrier();	/* status before the rest of the descriptor */
		errors = d->errors;
		len = d->len;
		if (!(status & RXD_EOP)) {
			e->rx_discard = true;	/* too long for one buffer */
			nd->rx_dropped++;
		} else if (e->rx_discard || (errors & RXD_ERR_FRAME) ||
			   len > NIC_BUF_SIZE) {
			e->rx_discard = false;
			nd->rx_dropped++;
		} else {
			nic_deliver(nd, e->rx_bufs + (size_t)e->rx_next * NIC_BUF_SIZE,
				    len, e1000_rx_flags(e, status, errors));
			got++;
		}
		d->status = 0;
		last = e->rx_next;
		moved = true;
		e->rx_next = (e->rx_next + 1) % NIC_RING_SIZE;
	}
	/* The device may fill up to, not including, RDT: hand back the
	 * descriptors just emptied (8254x manual 3.2.6). */
	if (moved)
		wr(e, E1000_RDT, last);
	return got;
}

/* The guest switch's uplink takes frames for the guests' MACs too. */
static void e1000_set_promisc(struct netdev *nd, bool on)
{
	struct e1000 *e = nd->priv;
	uint32_t r = rd(e, E1000_RCTL);

	r = on ? r | RCTL_UPE | RCTL_MPE : r & ~(RCTL_UPE | RCTL_MPE);
	wr(e, E1000_RCTL, r);
}

static const struct netdev_ops e1000_ops = {
	.xmit = e1000_xmit,
	.poll = e1000_poll,
	.update_link = e1000_update_link,
	.set_promisc = e1000_set_promisc,
};

/* ---- set-up ---- */

/* EEPROM word through EERD: the 82540EM has START bit 0, DONE bit 4 and
 * the address at bit 8; the 82574L DONE bit 1 and the address at bit 2. */
static int eeprom_read(struct e1000 *e, uint8_t word, uint16_t *out)
{
	uint32_t done = e->is_82574 ? 1u << 1 : 1u << 4;
	uint32_t shift = e->is_82574 ? 2 : 8;
	uint32_t v = 0;
	int i;

	wr(e, E1000_EERD, 1u | (uint32_t)word << shift);
	for (i = 0; i < 1000; i++) {
		v = rd(e, E1000_EERD);
		if (v & done)
			break;
		udelay(10);
	}
	if (!(v & done))
		return -ETIMEDOUT;
	*out = (uint16_t)(v >> 16);
	return 0;
}

static void read_mac(struct e1000 *e)
{
	uint32_t lo = rd(e, E1000_RAL0), hi = rd(e, E1000_RAH0);
	uint16_t w[3];
	int i;

	/* After reset the device loads RAL0/RAH0 from the EEPROM (14.3). */
	if ((hi & RAH_AV) && (lo || (hi & 0xffff))) {
		for (i = 0; i < 4; i++)
			e->nd.mac[i] = (uint8_t)(lo >> (8 * i));
		e->nd.mac[4] = (uint8_t)hi;
		e->nd.mac[5] = (uint8_t)(hi >> 8);
		return;
	}
	for (i = 0; i < 3; i++) {
		if (eeprom_read(e, (uint8_t)i, &w[i]) < 0) {
			uint8_t fallback[6] = { 0x02, 0x54, 0x45, 0x52, 0x4e, 0x10 };

			pr_warn("%s: no MAC in RAL/RAH or EEPROM: using a local one",
				e->nd.name);
			memcpy(e->nd.mac, fallback, 6);
			goto program;
		}
		e->nd.mac[2 * i] = (uint8_t)w[i];
		e->nd.mac[2 * i + 1] = (uint8_t)(w[i] >> 8);
	}
program:
	lo = (uint32_t)e->nd.mac[0] | (uint32_t)e->nd.mac[1] << 8 |
	     (uint32_t)e->nd.mac[2] << 16 | (uint32_t)e->nd.mac[3] << 24;
	wr(e, E1000_RAL0, lo);
	wr(e, E1000_RAH0, (uint32_t)e->nd.mac[4] | (uint32_t)e->nd.mac[5] << 8 | RAH_AV);
}

static int reset(struct e1000 *e)
{
	int i;

	wr(e, E1000_IMC, 0xffffffffu);
	wr(e, E1000_CTRL, rd(e, E1000_CTRL) | CTRL_RST);
	udelay(1000);	/* 8254x 14.5: wait at least 1 us before polling */
	for (i = 0; i < 1000 && (rd(e, E1000_CTRL) & CTRL_RST); i++)
		udelay(100);
	if (rd(e, E1000_CTRL) & CTRL_RST)
		return -ETIMEDOUT;
	wr(e, E1000_IMC, 0xffffffffu);
	(void)rd(e, E1000_ICR);
	wr(e, E1000_CTRL, (rd(e, E1000_CTRL) | CTRL_SLU | CTRL_ASDE) & ~CTRL_PHY_RST);
	return 0;
}

static int rings(struct e1000 *e)
{
	size_t ring_pages = NIC_RING_SIZE * 16 / PAGE_SIZE;
	size_t buf_pages = (size_t)NIC_RING_SIZE * NIC_BUF_SIZE / PAGE_SIZE;
	uint64_t pa;
	uint32_t i;

	e->rx = page_alloc(ring_pages);
	e->tx = page_alloc(ring_pages);
	e->rx_bufs = page_alloc(buf_pages);
	e->tx_bufs = page_alloc(buf_pages);
	if (!e->rx || !e->tx || !e->rx_bufs || !e->tx_bufs)
		return -ENOMEM;
	for (i = 0; i < NIC_RING_SIZE; i++)
		e->rx[i].addr = virt_to_phys(e->rx_bufs + (size_t)i * NIC_BUF_SIZE);
	for (i = 0; i < 128; i++)
		wr(e, E1000_MTA + 4 * i, 0);
	pa = virt_to_phys((void *)e->rx);
	wr(e, E1000_RDBAL, (uint32_t)pa);
	wr(e, E1000_RDBAH, (uint32_t)(pa >> 32));
	wr(e, E1000_RDLEN, NIC_RING_SIZE * 16);
	wr(e, E1000_RDH, 0);
	wr(e, E1000_RDT, NIC_RING_SIZE - 1);
	wr(e, E1000_RDTR, 0);
	/* Before RCTL.EN, so that no frame comes in without the results. */
	wr(e, E1000_RXCSUM, RXCSUM_IPOFLD | RXCSUM_TUOFLD);
	e->nd.rx_csum_offload = true;
	e->nd.tx_csum_offload = true;
	/* QEMU's 82540EM model then refuses frames for 1 s (its RCTL write
	 * arms a flush_queue_timer): the first ARP reply may take that long. */
	wr(e, E1000_RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC);
	pa = virt_to_phys((void *)e->tx);
	wr(e, E1000_TDBAL, (uint32_t)pa);
	wr(e, E1000_TDBAH, (uint32_t)(pa >> 32));
	wr(e, E1000_TDLEN, NIC_RING_SIZE * 16);
	wr(e, E1000_TDH, 0);
	wr(e, E1000_TDT, 0);
	/* Full duplex: collision threshold 15, distance 64 (13.4.33);
	 * IPG 10/8/6 for copper (13.4.34). */
	wr(e, E1000_TCTL, TCTL_EN | TCTL_PSP | TCTL_CT(15) | TCTL_COLD(64));
	wr(e, E1000_TIPG, 10u | 8u << 10 | 6u << 20);
	return 0;
}

int e1000_probe(struct pci_dev *pd)
{
	struct e1000 *e;
	int r;

	if (pd->vendor != 0x8086 || (pd->device != 0x100e && pd->device != 0x10d3))
		return -ENODEV;
	if (pd->bar[0].io || pd->bar[0].size < E1000_REGS_MIN) {
		pr_warn("e1000: %02x:%02x.%u: BAR0 is not a register window",
			pd->bus, pd->dev, pd->fn);
		return -EINVAL;
	}
	e = page_alloc((sizeof(*e) + PAGE_SIZE - 1) / PAGE_SIZE);
	if (!e)
		return -ENOMEM;
	e->pd = pd;
	e->is_82574 = pd->device == 0x10d3;
	e->nd.priv = e;
	e->nd.ops = &e1000_ops;
	e->nd.mtu = 1500;
	if (e->is_82574) {
		snprintf(e->nd.name, sizeof(e->nd.name), "e1000e%d", count_82574);
		snprintf(e->nd.model, sizeof(e->nd.model), "82574L");
	} else {
		snprintf(e->nd.name, sizeof(e->nd.name), "e1000-%d", count_82540);
		snprintf(e->nd.model, sizeof(e->nd.model), "82540EM");
	}
	pci_enable(pd, false, true);
	e->regs = pci_map_bar(pd, 0);
	if (!e->regs)
		return -ENOMEM;
	if ((r = reset(e)) < 0 || (r = rings(e)) < 0)
		goto fail;
	read_mac(e);
	if (pci_setup_irq(pd, false, nic_irq, &e->nd) > 0) {
		wr(e, E1000_ITR, 0);
		wr(e, E1000_IMS, ICR_TXDW | ICR_LSC | ICR_RXDMT0 | ICR_RXO | ICR_RXT0);
	}
	e1000_update_link(&e->nd);
	if ((r = nic_register(&e->nd, pd)) < 0)
		goto fail;
	e->is_82574 ? count_82574++ : count_82540++;
	pr_info("%s: %02x:%02x.%u %s mac %02x:%02x:%02x:%02x:%02x:%02x, "
		"%u/%u descriptors, irq %s, link %s, checksum offload tx on rx on",
		e->nd.name, pd->bus, pd->dev, pd->fn, e->nd.model, e->nd.mac[0],
		e->nd.mac[1], e->nd.mac[2], e->nd.mac[3], e->nd.mac[4], e->nd.mac[5],
		NIC_RING_SIZE, NIC_RING_SIZE, pd->irq_mode,
		e->nd.link_up ? "up" : "down");
	return 0;
fail:
	wr(e, E1000_IMC, 0xffffffffu);
	wr(e, E1000_RCTL, 0);
	wr(e, E1000_TCTL, 0);
	pr_warn("%s: not started (%d)", e->nd.name, r);
	return r;
}
