/*
 * Unit tests for kernel/devices/model/virtio_pci.c, driven the way a
 * guest drives it: config space through the host's ECAM, BAR 4 through
 * pcih_mmio_*.  The layout is checked with the driver-side decoders
 * (kernel/lib/pci_caps.h, virtq.h).  VIRTIO 1.1 section 4.1; MSI-X is
 * PCI 3.0 6.8.2.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/pci_host.h"
#include "kernel/devices/model/virtio_pci.h"
#include "kernel/lib/byteorder.h"
#include "kernel/lib/pci_caps.h"
#include "kernel/lib/virtq.h"

#define T_DEV		4
#define T_NQ		3
#define T_QMAX		256
#define T_FEAT		((1ull << 9) | (1ull << 6) | (1ull << 35))
#define T_CFGLEN	60

static struct pci_host H;
static struct virtio_pci VP;
static uint64_t BAR;

static struct {
	uint8_t devcfg[T_CFGLEN];
	int notify[VPCI_MAX_QUEUES], resets, driver_oks, fok_calls;
	bool refuse;
	uint64_t offered;
	int nsent;
	uint64_t addr[32];
	uint32_t data[32];
} D;

static void d_cfg_read(void *dev, uint32_t off, void *buf, int size)
{
	cr_assert_eq(dev, &D);
	cr_assert_leq(off + (uint32_t)size, T_CFGLEN);
	memcpy(buf, D.devcfg + off, (size_t)size);
}

static void d_cfg_write(void *dev, uint32_t off, const void *buf, int size)
{
	cr_assert_eq(dev, &D);
	cr_assert_leq(off + (uint32_t)size, T_CFGLEN);
	memcpy(D.devcfg + off, buf, (size_t)size);
}

static void d_notify(void *dev, uint16_t q)
{
	cr_assert_eq(dev, &D);
	cr_assert_lt(q, T_NQ);
	D.notify[q]++;
}

static bool d_features_ok(void *dev, uint64_t f)
{
	cr_assert_eq(dev, &D);
	D.fok_calls++;
	D.offered = f;
	return !D.refuse;
}

static void d_driver_ok(void *dev)
{
	cr_assert_eq(dev, &D);
	D.driver_oks++;
}

static void d_reset(void *dev)
{
	cr_assert_eq(dev, &D);
	D.resets++;
}

static const struct virtio_pci_ops d_ops = {
	.cfg_read = d_cfg_read, .cfg_write = d_cfg_write, .queue_notify = d_notify,
	.features_ok = d_features_ok, .driver_ok = d_driver_ok, .reset = d_reset,
};

static void d_msi(void *ctx, uint64_t addr, uint32_t data)
{
	cr_assert_eq(ctx, &D);
	cr_assert_lt(D.nsent, 32);
	D.addr[D.nsent] = addr;
	D.data[D.nsent++] = data;
}

static uint32_t cfg_r(unsigned reg, int size)
{
	uint32_t v;

	cr_assert_eq(pcih_ecam_read(&H, T_DEV << 15 | reg, size, &v), 0);
	return v;
}

static void cfg_w(unsigned reg, int size, uint32_t v)
{
	cr_assert_eq(pcih_ecam_write(&H, T_DEV << 15 | reg, size, v), 0);
}

static uint64_t bar_r(uint32_t off, int size)
{
	uint64_t v;

	cr_assert_eq(pcih_mmio_read(&H, BAR + off, size, &v), 0);
	return v;
}

static void bar_w(uint32_t off, int size, uint64_t v)
{
	cr_assert_eq(pcih_mmio_write(&H, BAR + off, size, v), 0);
}

static void setup(void)
{
	memset(&D, 0, sizeof(D));
	for (int i = 0; i < T_CFGLEN; i++)
		D.devcfg[i] = (uint8_t)(0xa0 + i);
	cr_assert_eq(pcih_init(&H, 0xc0000000ull, 0x3eb00000ull), 0);
	cr_assert_eq(virtio_pci_init(&VP, VIRTIO_ID_BLOCK, T_NQ, T_QMAX, T_FEAT, T_CFGLEN, &d_ops,
				     &D, d_msi, &D), 0);
	cr_assert_eq(pcih_add(&H, T_DEV, &VP.func), 0);
	BAR = pcih_bar_addr(&VP.func, VPCI_BAR);
	cr_assert_neq(BAR, 0);
	cfg_w(PCI_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_MASTER);
	cr_assert_eq(D.resets, 0, "init does not call the device's reset");
}

TestSuite(virtio_pci, .init = setup);

/* Negotiate features (all offered ones the test asks for) and set up
 * queue q with size and vector, then DRIVER_OK when asked. */
static void t_negotiate(uint64_t want)
{
	bar_w(VPCI_CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	bar_w(VPCI_CC_GFSELECT, 4, 0);
	bar_w(VPCI_CC_GF, 4, (uint32_t)want);
	bar_w(VPCI_CC_GFSELECT, 4, 1);
	bar_w(VPCI_CC_GF, 4, (uint32_t)(want >> 32));
	bar_w(VPCI_CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	      VIRTIO_STATUS_FEATURES_OK);
}

static void t_queue(uint16_t q, uint16_t size, uint16_t vec)
{
	bar_w(VPCI_CC_Q_SELECT, 2, q);
	bar_w(VPCI_CC_Q_SIZE, 2, size);
	bar_w(VPCI_CC_Q_MSIX, 2, vec);
	bar_w(VPCI_CC_Q_DESC, 4, 0x1000u * (q + 1));
	bar_w(VPCI_CC_Q_DESC + 4, 4, 0x1);
	bar_w(VPCI_CC_Q_DRIVER, 8, 0x2000u * (q + 1));
	bar_w(VPCI_CC_Q_DEVICE, 8, 0x3000u * (q + 1));
	bar_w(VPCI_CC_Q_ENABLE, 2, 1);
}

static void t_driver_ok(void)
{
	bar_w(VPCI_CC_STATUS, 1, (uint8_t)(bar_r(VPCI_CC_STATUS, 1) | VIRTIO_STATUS_DRIVER_OK));
}

/* MSI-X on, entry v programmed and unmasked. */
static void t_msix(unsigned v, uint32_t data)
{
	uint32_t e = VPCI_MSIX_TABLE_OFF + 16 * v;

	cfg_w(VP.msix_cap + 2, 2, 0x8000u | (cfg_r(VP.msix_cap + 2, 2) & 0x7ff));
	bar_w(e, 4, 0xfee00000u);
	bar_w(e + 4, 4, 0);
	bar_w(e + 8, 4, data);
	bar_w(e + 12, 4, 0);
}

Test(virtio_pci, identity)
{
	static struct virtio_pci net;

	cr_assert_eq(cfg_r(0, 2), 0x1af4u);
	cr_assert_eq(cfg_r(2, 2), 0x1042u);
	cr_assert_eq(cfg_r(0x08, 1), 1, "revision 1");
	cr_assert_eq(cfg_r(0x08, 4) >> 8, 0x010000u);
	cr_assert_eq(cfg_r(0x2c, 2), 0x1af4u);
	cr_assert_eq(cfg_r(0x2e, 2), VIRTIO_ID_BLOCK);
	cr_assert_eq(cfg_r(0x0e, 1), 0);
	cr_assert_eq(cfg_r(0x3d, 1), 0, "no INTx");
	cr_assert(cfg_r(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	cr_assert_str_eq(VP.func.name, "virtio-blk");

	cr_assert_eq(virtio_pci_init(&net, VIRTIO_ID_NET, 3, 256, 0, 12, &d_ops, &D, d_msi, &D),
		     0);
	cr_assert_eq(ld_le16(net.func.cfg + 2), 0x1041);
	cr_assert_eq(ld_le32(net.func.cfg + 8) >> 8, 0x020000u);
	cr_assert_eq(ld_le16(net.func.cfg + 0x2e), VIRTIO_ID_NET);
}

Test(virtio_pci, init_rejects)
{
	static struct virtio_pci v;

	cr_assert_eq(virtio_pci_init(&v, 2, 0, 256, 0, 8, &d_ops, &D, d_msi, &D), -EINVAL);
	cr_assert_eq(virtio_pci_init(&v, 2, VPCI_MAX_QUEUES + 1, 256, 0, 8, &d_ops, &D, d_msi, &D),
		     -EINVAL);
	cr_assert_eq(virtio_pci_init(&v, 2, 1, 100, 0, 8, &d_ops, &D, d_msi, &D), -EINVAL);
	cr_assert_eq(virtio_pci_init(&v, 2, 1, 0, 0, 8, &d_ops, &D, d_msi, &D), -EINVAL);
	cr_assert_eq(virtio_pci_init(&v, 2, 1, 256, 0, VPCI_DEVICE_MAX + 1, &d_ops, &D, d_msi,
				     &D), -EINVAL);
	cr_assert_eq(virtio_pci_init(&v, 2, 1, 256, 0, 8, NULL, &D, d_msi, &D), -EINVAL);
	cr_assert_eq(virtio_pci_init(&v, 2, 1, 256, 0, 8, &d_ops, &D, NULL, &D), -EINVAL);
	cr_assert_eq(virtio_pci_init(&v, 2, VPCI_MAX_QUEUES, 32768, 0, VPCI_DEVICE_MAX, &d_ops,
				     &D, d_msi, &D), 0);
}

Test(virtio_pci, bar_sizing_through_host)
{
	uint32_t lo = cfg_r(PCI_BAR0 + 16, 4), hi = cfg_r(PCI_BAR0 + 20, 4), mlo, mhi;
	struct pci_bar_info b;

	cfg_w(PCI_BAR0 + 16, 4, 0xffffffffu);
	cfg_w(PCI_BAR0 + 20, 4, 0xffffffffu);
	mlo = cfg_r(PCI_BAR0 + 16, 4);
	mhi = cfg_r(PCI_BAR0 + 20, 4);
	cr_assert_eq(mlo, 0xffff800cu);
	cr_assert_eq(mhi, 0xffffffffu);
	cfg_w(PCI_BAR0 + 16, 4, lo);
	cfg_w(PCI_BAR0 + 20, 4, hi);
	cr_assert_eq(pci_bar_decode(lo, hi, mlo, mhi, &b), 0);
	cr_assert_eq(b.size, VPCI_BAR_SIZE);
	cr_assert(b.mem64 && b.prefetch && !b.io);
	cr_assert_eq(b.base, BAR);
	for (unsigned i = 0; i < 4; i++) {
		cfg_w(PCI_BAR0 + 4 * i, 4, 0xffffffffu);
		cr_assert_eq(cfg_r(PCI_BAR0 + 4 * i, 4), 0, "BAR %u not implemented", i);
	}
}

Test(virtio_pci, capability_layout_as_a_driver_sees_it)
{
	struct virtio_pci_cap c;
	struct pci_msix_info mx;
	uint8_t cfg[256];
	bool seen[6] = { false };
	int off = 0, n = 0;

	for (unsigned i = 0; i < 256; i += 4)
		st_le32(cfg + i, cfg_r(i, 4));
	while ((off = pci_cap_find(cfg, sizeof(cfg), PCI_CAP_VENDOR, (uint8_t)off)) > 0) {
		cr_assert_eq(virtio_pci_cap_decode(cfg, sizeof(cfg), (uint8_t)off, &c), 0);
		cr_assert(c.cfg_type >= 1 && c.cfg_type <= 5);
		cr_assert(!seen[c.cfg_type], "one cap of type %u", c.cfg_type);
		seen[c.cfg_type] = true;
		n++;
		if (c.cfg_type == VIRTIO_PCI_CAP_PCI)
			continue;	/* its fields are the driver's window */
		cr_assert_eq(c.bar, VPCI_BAR);
		cr_assert_eq(c.offset % 4, 0);
		switch (c.cfg_type) {
		case VIRTIO_PCI_CAP_COMMON:
			cr_assert(virtio_region_fits(VPCI_BAR_SIZE, c.offset, c.length, 0x38));
			cr_assert_eq(c.offset, VPCI_COMMON_OFF);
			break;
		case VIRTIO_PCI_CAP_NOTIFY:
			cr_assert_eq(c.notify_mult, 4);
			/* The last queue's notify_off * multiplier + 2 fits. */
			cr_assert(virtio_region_fits(VPCI_BAR_SIZE, c.offset, c.length,
						     (T_NQ - 1) * c.notify_mult + 2));
			break;
		case VIRTIO_PCI_CAP_ISR:
			cr_assert(virtio_region_fits(VPCI_BAR_SIZE, c.offset, c.length, 1));
			cr_assert_eq(c.offset, VPCI_ISR_OFF);
			break;
		case VIRTIO_PCI_CAP_DEVICE:
			cr_assert(virtio_region_fits(VPCI_BAR_SIZE, c.offset, c.length, T_CFGLEN));
			break;
		}
	}
	cr_assert_eq(n, 5);
	off = pci_cap_find(cfg, sizeof(cfg), PCI_CAP_MSIX, 0);
	cr_assert_gt(off, 0);
	cr_assert_eq(pci_msix_decode(cfg, sizeof(cfg), (uint8_t)off, &mx), 0);
	cr_assert_eq(mx.table_size, T_NQ + 1);
	cr_assert_eq(mx.table_bar, VPCI_BAR);
	cr_assert_eq(mx.pba_bar, VPCI_BAR);
	cr_assert_geq(mx.table_off, VPCI_NOTIFY_OFF + 0x1000);
	cr_assert_leq(mx.pba_off + 8, VPCI_BAR_SIZE);
	cr_assert_geq(mx.pba_off, mx.table_off + 16u * mx.table_size);
	/* The notify offset of each queue is its index. */
	for (uint16_t q = 0; q < T_NQ; q++) {
		bar_w(VPCI_CC_Q_SELECT, 2, q);
		cr_assert_eq(bar_r(VPCI_CC_Q_NOTIFY_OFF, 2), q);
	}
	cr_assert_eq(bar_r(VPCI_CC_NUM_QUEUES, 2), T_NQ);
}

Test(virtio_pci, feature_negotiation)
{
	bar_w(VPCI_CC_DFSELECT, 4, 0);
	cr_assert_eq(bar_r(VPCI_CC_DF, 4), (uint32_t)T_FEAT);
	bar_w(VPCI_CC_DFSELECT, 4, 1);
	cr_assert_eq(bar_r(VPCI_CC_DF, 4), (uint32_t)((T_FEAT | VIRTIO_F_VERSION_1) >> 32));
	bar_w(VPCI_CC_DFSELECT, 4, 2);
	cr_assert_eq(bar_r(VPCI_CC_DF, 4), 0);
	bar_w(VPCI_CC_DF, 4, 0xffffffffu);
	bar_w(VPCI_CC_DFSELECT, 4, 0);
	cr_assert_eq(bar_r(VPCI_CC_DF, 4), (uint32_t)T_FEAT, "device_feature is read-only");

	/* Unoffered bits are dropped. */
	bar_w(VPCI_CC_GFSELECT, 4, 0);
	bar_w(VPCI_CC_GF, 4, 0xffffffffu);
	cr_assert_eq(bar_r(VPCI_CC_GF, 4), (uint32_t)T_FEAT);
	bar_w(VPCI_CC_GFSELECT, 4, 5);
	bar_w(VPCI_CC_GF, 4, 0xffffffffu);
	cr_assert_eq(bar_r(VPCI_CC_GF, 4), 0);
	cr_assert_eq(VP.guest_features, (uint32_t)T_FEAT);

	/* Without VERSION_1, FEATURES_OK does not stick. */
	bar_w(VPCI_CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	      VIRTIO_STATUS_FEATURES_OK);
	cr_assert_eq(bar_r(VPCI_CC_STATUS, 1), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	cr_assert_eq(D.fok_calls, 0);

	/* The device refuses the combination. */
	D.refuse = true;
	t_negotiate(T_FEAT | VIRTIO_F_VERSION_1);
	cr_assert_eq(D.fok_calls, 1);
	cr_assert_eq(D.offered, T_FEAT | VIRTIO_F_VERSION_1);
	cr_assert_eq(bar_r(VPCI_CC_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK, 0);
	t_driver_ok();
	cr_assert_eq(bar_r(VPCI_CC_STATUS, 1) & VIRTIO_STATUS_DRIVER_OK, 0,
		     "no DRIVER_OK without FEATURES_OK");
	cr_assert_eq(D.driver_oks, 0);

	/* Accepted: frozen afterwards. */
	D.refuse = false;
	t_negotiate(VIRTIO_F_VERSION_1 | (1ull << 9) | (1ull << 20));
	cr_assert(bar_r(VPCI_CC_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
	cr_assert_eq(VP.guest_features, VIRTIO_F_VERSION_1 | (1ull << 9), "bit 20 not offered");
	bar_w(VPCI_CC_GFSELECT, 4, 0);
	bar_w(VPCI_CC_GF, 4, 0);
	cr_assert_eq(VP.guest_features, VIRTIO_F_VERSION_1 | (1ull << 9));
	t_driver_ok();
	cr_assert_eq(D.driver_oks, 1);
	cr_assert(virtio_pci_live(&VP));
	t_driver_ok();
	cr_assert_eq(D.driver_oks, 1, "once");
}

Test(virtio_pci, queue_setup_rules)
{
	bar_w(VPCI_CC_Q_SELECT, 2, 1);
	cr_assert_eq(bar_r(VPCI_CC_Q_SIZE, 2), T_QMAX, "starts at the maximum");
	cr_assert_eq(bar_r(VPCI_CC_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	bar_w(VPCI_CC_Q_SIZE, 2, 100);
	cr_assert_eq(bar_r(VPCI_CC_Q_SIZE, 2), T_QMAX, "not a power of two");
	bar_w(VPCI_CC_Q_SIZE, 2, 512);
	cr_assert_eq(bar_r(VPCI_CC_Q_SIZE, 2), T_QMAX, "above max");
	bar_w(VPCI_CC_Q_SIZE, 2, 0);
	cr_assert_eq(bar_r(VPCI_CC_Q_SIZE, 2), T_QMAX);
	bar_w(VPCI_CC_Q_SIZE, 2, 64);
	cr_assert_eq(bar_r(VPCI_CC_Q_SIZE, 2), 64);
	bar_w(VPCI_CC_Q_MSIX, 2, T_NQ + 1);
	cr_assert_eq(bar_r(VPCI_CC_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR, "beyond the table");
	bar_w(VPCI_CC_Q_MSIX, 2, T_NQ);
	cr_assert_eq(bar_r(VPCI_CC_Q_MSIX, 2), T_NQ);
	bar_w(VPCI_CC_MSIX_CONFIG, 2, 0x1234);
	cr_assert_eq(bar_r(VPCI_CC_MSIX_CONFIG, 2), VIRTIO_MSI_NO_VECTOR);
	bar_w(VPCI_CC_MSIX_CONFIG, 2, 0);
	cr_assert_eq(bar_r(VPCI_CC_MSIX_CONFIG, 2), 0);

	/* Addresses: two halves or one qword. */
	bar_w(VPCI_CC_Q_DESC, 4, 0x12345000u);
	bar_w(VPCI_CC_Q_DESC + 4, 4, 0x9);
	cr_assert_eq(VP.q[1].desc, 0x912345000ull);
	cr_assert_eq(bar_r(VPCI_CC_Q_DESC, 8), 0x912345000ull);
	cr_assert_eq(bar_r(VPCI_CC_Q_DESC + 4, 4), 0x9);
	bar_w(VPCI_CC_Q_DEVICE, 8, 0xabcdef000ull);
	cr_assert_eq(VP.q[1].device, 0xabcdef000ull);

	/* Wrong widths are ignored and read 0. */
	cr_assert_eq(bar_r(VPCI_CC_Q_SIZE, 4), 0);
	cr_assert_eq(bar_r(VPCI_CC_Q_SIZE, 1), 0);
	bar_w(VPCI_CC_Q_SELECT, 4, 0);
	bar_w(VPCI_CC_Q_SELECT, 1, 0);
	cr_assert_eq(bar_r(VPCI_CC_Q_SELECT, 2), 1);
	bar_w(VPCI_CC_Q_DESC + 2, 4, 0);
	cr_assert_eq(VP.q[1].desc, 0x912345000ull, "misaligned");
	bar_w(VPCI_CC_Q_DESC + 4, 8, 0);
	cr_assert_eq(VP.q[1].desc, 0x912345000ull, "qword at the upper half");
	bar_w(VPCI_CC_STATUS, 2, 1);
	cr_assert_eq(bar_r(VPCI_CC_STATUS, 1), 0);

	/* queue_enable: 0 is ignored, 1 freezes the queue. */
	bar_w(VPCI_CC_Q_ENABLE, 2, 0);
	cr_assert_eq(bar_r(VPCI_CC_Q_ENABLE, 2), 0);
	bar_w(VPCI_CC_Q_ENABLE, 2, 1);
	cr_assert_eq(bar_r(VPCI_CC_Q_ENABLE, 2), 1);
	bar_w(VPCI_CC_Q_ENABLE, 2, 0);
	cr_assert_eq(bar_r(VPCI_CC_Q_ENABLE, 2), 1);
	bar_w(VPCI_CC_Q_SIZE, 2, 32);
	bar_w(VPCI_CC_Q_MSIX, 2, 0);
	bar_w(VPCI_CC_Q_DESC, 8, 0);
	cr_assert_eq(bar_r(VPCI_CC_Q_SIZE, 2), 64);
	cr_assert_eq(bar_r(VPCI_CC_Q_MSIX, 2), T_NQ);
	cr_assert_eq(VP.q[1].desc, 0x912345000ull);

	/* Queues that do not exist. */
	bar_w(VPCI_CC_Q_SELECT, 2, T_NQ);
	cr_assert_eq(bar_r(VPCI_CC_Q_SIZE, 2), 0);
	cr_assert_eq(bar_r(VPCI_CC_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	cr_assert_eq(bar_r(VPCI_CC_Q_ENABLE, 2), 0);
	bar_w(VPCI_CC_Q_SIZE, 2, 16);
	bar_w(VPCI_CC_Q_ENABLE, 2, 1);
	bar_w(VPCI_CC_Q_SELECT, 2, 0xffff);
	bar_w(VPCI_CC_Q_DESC, 8, 0x1000);
	cr_assert_eq(bar_r(VPCI_CC_Q_DESC, 8), 0);
	for (int i = T_NQ; i < VPCI_MAX_QUEUES; i++)
		cr_assert_eq(VP.q[i].size, 0);

	/* After DRIVER_OK a queue that is not enabled is frozen as well. */
	t_negotiate(VIRTIO_F_VERSION_1);
	t_driver_ok();
	bar_w(VPCI_CC_Q_SELECT, 2, 2);
	bar_w(VPCI_CC_Q_SIZE, 2, 16);
	bar_w(VPCI_CC_Q_DRIVER, 8, 0x5000);
	cr_assert_eq(bar_r(VPCI_CC_Q_SIZE, 2), T_QMAX);
	cr_assert_eq(VP.q[2].driver, 0);
}

Test(virtio_pci, status_sticky_and_reset)
{
	t_negotiate(VIRTIO_F_VERSION_1 | (1ull << 6));
	t_queue(0, 128, 1);
	t_driver_ok();
	VP.isr = 3;
	cr_assert_eq(VP.q[0].size, 128);
	bar_w(VPCI_CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	cr_assert_eq(bar_r(VPCI_CC_STATUS, 1),
		     VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		     VIRTIO_STATUS_DRIVER_OK, "bits are only cleared by reset");
	bar_w(VPCI_CC_STATUS, 1, VIRTIO_STATUS_NEEDS_RESET);
	cr_assert_eq(bar_r(VPCI_CC_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET, 0,
		     "NEEDS_RESET is the device's");
	bar_w(VPCI_CC_STATUS, 1, 0x30);
	cr_assert_eq(bar_r(VPCI_CC_STATUS, 1) & 0x30, 0, "reserved bits");
	bar_w(VPCI_CC_MSIX_CONFIG, 2, 0);

	bar_w(VPCI_CC_STATUS, 1, 0);
	cr_assert_eq(D.resets, 1);
	cr_assert_eq(bar_r(VPCI_CC_STATUS, 1), 0);
	cr_assert(!virtio_pci_live(&VP));
	cr_assert_eq(VP.guest_features, 0);
	cr_assert_eq(VP.isr, 0);
	cr_assert_eq(bar_r(VPCI_CC_MSIX_CONFIG, 2), VIRTIO_MSI_NO_VECTOR);
	cr_assert_eq(bar_r(VPCI_CC_Q_SELECT, 2), 0);
	for (int q = 0; q < T_NQ; q++) {
		cr_assert_eq(VP.q[q].size, T_QMAX);
		cr_assert_eq(VP.q[q].max_size, T_QMAX);
		cr_assert_eq(VP.q[q].msix_vector, VIRTIO_MSI_NO_VECTOR);
		cr_assert(!VP.q[q].enabled);
		cr_assert_eq(VP.q[q].desc | VP.q[q].driver | VP.q[q].device, 0);
	}
	/* Set-up works again after the reset. */
	t_queue(0, 32, 0);
	cr_assert_eq(VP.q[0].size, 32);
}

Test(virtio_pci, notifications)
{
	bar_w(VPCI_NOTIFY_OFF, 2, 0);
	cr_assert_eq(D.notify[0], 0);
	cr_assert_eq(VP.bad_notifies, 1, "before DRIVER_OK");
	t_negotiate(VIRTIO_F_VERSION_1);
	t_queue(0, 128, VIRTIO_MSI_NO_VECTOR);
	t_queue(2, 128, VIRTIO_MSI_NO_VECTOR);
	bar_w(VPCI_NOTIFY_OFF, 2, 0);
	cr_assert_eq(VP.bad_notifies, 2, "before DRIVER_OK, queue enabled");
	t_driver_ok();
	bar_w(VPCI_NOTIFY_OFF, 2, 0);
	bar_w(VPCI_NOTIFY_OFF + 8, 4, 2);
	bar_w(VPCI_NOTIFY_OFF + 4, 2, 1);
	cr_assert_eq(D.notify[0], 1);
	cr_assert_eq(D.notify[2], 1);
	cr_assert_eq(D.notify[1], 0, "queue 1 not enabled");
	cr_assert_eq(VP.notifies, 2);
	cr_assert_eq(VP.bad_notifies, 3);
	bar_w(VPCI_NOTIFY_OFF + 4 * T_NQ, 2, T_NQ);
	bar_w(VPCI_NOTIFY_OFF + 1, 1, 0);
	cr_assert_eq(VP.notifies, 2, "no such queue, misaligned");
	cr_assert_eq(bar_r(VPCI_NOTIFY_OFF, 2), 0);
	virtio_pci_fail(&VP, "backend gone");
	bar_w(VPCI_NOTIFY_OFF, 2, 0);
	cr_assert_eq(D.notify[0], 1, "not after a failure");
}

Test(virtio_pci, msix_delivery_masking_pba)
{
	t_negotiate(VIRTIO_F_VERSION_1);
	t_queue(0, 128, 1);
	t_queue(1, 128, 2);
	t_driver_ok();
	t_msix(1, 0x4041);
	t_msix(2, 0x4042);

	virtio_pci_interrupt_queue(&VP, 0);
	cr_assert_eq(D.nsent, 1);
	cr_assert_eq(D.addr[0], 0xfee00000ull);
	cr_assert_eq(D.data[0], 0x4041u);
	cr_assert_eq(VP.isr, 0, "no ISR bit for a queue with MSI-X");
	cr_assert_eq(bar_r(VPCI_MSIX_TABLE_OFF + 16 + 8, 4), 0x4041u);
	cr_assert_eq(bar_r(VPCI_MSIX_TABLE_OFF + 16, 8), 0xfee00000ull);

	/* Entry mask: pending, delivered by the unmask. */
	bar_w(VPCI_MSIX_TABLE_OFF + 16 + 12, 4, 1);
	virtio_pci_interrupt_queue(&VP, 0);
	cr_assert_eq(D.nsent, 1);
	cr_assert_eq(bar_r(VPCI_MSIX_PBA_OFF, 8), 1u << 1);
	cr_assert_eq(VP.masked, 1);
	bar_w(VPCI_MSIX_PBA_OFF, 8, 0);
	cr_assert_eq(bar_r(VPCI_MSIX_PBA_OFF, 4), 1u << 1, "PBA is read-only");
	bar_w(VPCI_MSIX_TABLE_OFF + 16 + 12, 4, 0);
	cr_assert_eq(D.nsent, 2);
	cr_assert_eq(D.data[1], 0x4041u);
	cr_assert_eq(bar_r(VPCI_MSIX_PBA_OFF, 4), 0);

	/* Function mask: both queues pend, the clear delivers both. */
	cfg_w(VP.msix_cap + 3, 1, 0xc0);
	virtio_pci_interrupt_queue(&VP, 0);
	virtio_pci_interrupt_queue(&VP, 1);
	cr_assert_eq(D.nsent, 2);
	cr_assert_eq(bar_r(VPCI_MSIX_PBA_OFF, 4), 0x6u);
	cfg_w(VP.msix_cap + 3, 1, 0x80);
	cr_assert_eq(D.nsent, 4);
	cr_assert_eq(bar_r(VPCI_MSIX_PBA_OFF, 4), 0);
	cr_assert_eq(VP.interrupts, 4);

	/* Bus mastering off: no message until it is back on. */
	cfg_w(PCI_COMMAND, 2, PCI_CMD_MEMORY);
	virtio_pci_interrupt_queue(&VP, 1);
	cr_assert_eq(D.nsent, 4);
	cr_assert_eq(bar_r(VPCI_MSIX_PBA_OFF, 4), 0x4u);
	cfg_w(PCI_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_MASTER);
	cr_assert_eq(D.nsent, 5);
	cr_assert_eq(D.data[4], 0x4042u);
	D.nsent = 4;

	/* No vector: nothing at all. */
	bar_w(VPCI_CC_STATUS, 1, 0);
	t_negotiate(VIRTIO_F_VERSION_1);
	t_queue(0, 128, VIRTIO_MSI_NO_VECTOR);
	t_driver_ok();
	virtio_pci_interrupt_queue(&VP, 0);
	cr_assert_eq(D.nsent, 4);
	cr_assert_eq(bar_r(VPCI_MSIX_PBA_OFF, 4), 0);

	/* Out-of-range queue index from the back end. */
	virtio_pci_interrupt_queue(&VP, 7);
	virtio_pci_interrupt_queue(&VP, 0xffff);
	cr_assert_eq(D.nsent, 4);
}

Test(virtio_pci, msix_table_access_rules)
{
	/* Entries start masked (PCI 3.0 6.8.2.9). */
	for (unsigned v = 0; v <= T_NQ; v++)
		cr_assert_eq(bar_r(VPCI_MSIX_TABLE_OFF + 16 * v + 12, 4), 1);
	bar_w(VPCI_MSIX_TABLE_OFF + 12, 4, 0xfffffffeu);
	cr_assert_eq(bar_r(VPCI_MSIX_TABLE_OFF + 12, 4), 0, "reserved control bits");
	bar_w(VPCI_MSIX_TABLE_OFF, 4, 0xfee00003u);
	cr_assert_eq(bar_r(VPCI_MSIX_TABLE_OFF, 4), 0xfee00000u);
	bar_w(VPCI_MSIX_TABLE_OFF + 8, 2, 0x55);
	cr_assert_eq(bar_r(VPCI_MSIX_TABLE_OFF + 8, 4), 0, "word write ignored");
	bar_w(VPCI_MSIX_TABLE_OFF + 8, 8, 0x0000000100000077ull);
	cr_assert_eq(bar_r(VPCI_MSIX_TABLE_OFF + 8, 4), 0x77u);
	cr_assert_eq(bar_r(VPCI_MSIX_TABLE_OFF + 12, 4), 1);
	/* Beyond the table. */
	bar_w(VPCI_MSIX_TABLE_OFF + 16 * (T_NQ + 1), 4, 0x1234);
	cr_assert_eq(bar_r(VPCI_MSIX_TABLE_OFF + 16 * (T_NQ + 1), 4), 0);
	cr_assert_eq(VP.msix[T_NQ + 1].addr_lo, 0);
	/* Table size in the capability; reserved bits of message control. */
	cr_assert_eq(cfg_r(VP.msix_cap + 2, 2), T_NQ);
	cfg_w(VP.msix_cap + 2, 2, 0x3fff);
	cr_assert_eq(cfg_r(VP.msix_cap + 2, 2), T_NQ);
}

Test(virtio_pci, isr_without_msix)
{
	t_negotiate(VIRTIO_F_VERSION_1);
	t_queue(0, 128, 0);
	virtio_pci_interrupt_queue(&VP, 0);
	cr_assert_eq(VP.isr, 0, "not before DRIVER_OK");
	t_driver_ok();
	virtio_pci_interrupt_queue(&VP, 0);
	cr_assert_eq(D.nsent, 0, "MSI-X disabled: no message");
	cr_assert_eq(bar_r(VPCI_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
	cr_assert_eq(bar_r(VPCI_ISR_OFF, 1), 0, "read clears");
	virtio_pci_interrupt_config(&VP);
	bar_w(VPCI_ISR_OFF, 1, 0);
	cr_assert_eq(VP.isr, VIRTIO_ISR_CONFIG, "ISR is read-only");
	cr_assert_eq(bar_r(VPCI_ISR_OFF, 1), VIRTIO_ISR_CONFIG);
	cr_assert_eq(bar_r(VPCI_ISR_OFF + 1, 1), 0);
}

Test(virtio_pci, config_change_and_failure)
{
	uint8_t gen = (uint8_t)bar_r(VPCI_CC_GENERATION, 1);

	t_negotiate(VIRTIO_F_VERSION_1);
	bar_w(VPCI_CC_MSIX_CONFIG, 2, 0);
	t_driver_ok();
	t_msix(0, 0x30);
	virtio_pci_interrupt_config(&VP);
	cr_assert_eq(bar_r(VPCI_CC_GENERATION, 1), (uint8_t)(gen + 1));
	cr_assert_eq(D.nsent, 1);
	cr_assert_eq(D.data[0], 0x30u);
	cr_assert_eq(bar_r(VPCI_ISR_OFF, 1), VIRTIO_ISR_CONFIG);

	cr_assert(virtio_pci_live(&VP));
	virtio_pci_fail(&VP, "an iSCSI session that will not come back, with a long reason");
	cr_assert(!virtio_pci_live(&VP));
	cr_assert(bar_r(VPCI_CC_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	cr_assert_eq(D.nsent, 2);
	cr_assert_eq(VP.why[sizeof(VP.why) - 1], 0);
	cr_assert_eq(strncmp(VP.why, "an iSCSI session", 16), 0);
	bar_w(VPCI_CC_STATUS, 1, 0);
	cr_assert_eq(bar_r(VPCI_CC_STATUS, 1), 0);
	cr_assert(!VP.needs_reset);
	cr_assert_eq(VP.why[0], 0);
}

Test(virtio_pci, device_config)
{
	cr_assert_eq(bar_r(VPCI_DEVICE_OFF, 4), 0xa3a2a1a0u);
	cr_assert_eq(bar_r(VPCI_DEVICE_OFF + 8, 8), 0xafaeadacabaaa9a8ull);
	cr_assert_eq(bar_r(VPCI_DEVICE_OFF + 59, 1), 0xa0u + 59);
	cr_assert_eq(bar_r(VPCI_DEVICE_OFF + 58, 4), 0, "crosses the end");
	cr_assert_eq(bar_r(VPCI_DEVICE_OFF + 60, 1), 0);
	cr_assert_eq(bar_r(VPCI_DEVICE_OFF + 0xffc, 4), 0);
	bar_w(VPCI_DEVICE_OFF + 20, 2, 0x1234);
	cr_assert_eq(D.devcfg[20], 0x34);
	cr_assert_eq(D.devcfg[21], 0x12);
	bar_w(VPCI_DEVICE_OFF + 59, 2, 0xffff);
	cr_assert_eq(D.devcfg[59], 0xa0u + 59);
}

Test(virtio_pci, pci_cfg_access_capability)
{
	uint8_t c = VP.cfg_cap;

	cfg_w(PCI_COMMAND, 2, 0);	/* firmware may use it without decode */
	cfg_w(c + 4, 1, VPCI_BAR);
	cfg_w(c + 8, 4, VPCI_CC_NUM_QUEUES);
	cfg_w(c + 12, 4, 2);
	cr_assert_eq(cfg_r(c + 16, 4), T_NQ);
	cr_assert_eq(cfg_r(c + 16, 2), T_NQ);
	cfg_w(c + 8, 4, VPCI_CC_STATUS);
	cfg_w(c + 12, 4, 1);
	cfg_w(c + 16, 4, VIRTIO_STATUS_ACKNOWLEDGE);
	cr_assert_eq(VP.status, VIRTIO_STATUS_ACKNOWLEDGE);
	cr_assert_eq(cfg_r(c + 16, 1), VIRTIO_STATUS_ACKNOWLEDGE);
	cfg_w(c + 8, 4, VPCI_DEVICE_OFF + 4);
	cfg_w(c + 12, 4, 4);
	cr_assert_eq(cfg_r(c + 16, 4), 0xa7a6a5a4u);
	/* Misaligned, bad length, other BAR: nothing happens, reads 0. */
	cfg_w(c + 8, 4, VPCI_CC_STATUS);
	cfg_w(c + 12, 4, 2);
	cfg_w(c + 16, 4, 0);
	cr_assert_eq(VP.status, VIRTIO_STATUS_ACKNOWLEDGE);
	cr_assert_eq(cfg_r(c + 16, 4), 0);
	cfg_w(c + 12, 4, 3);
	cr_assert_eq(cfg_r(c + 16, 4), 0);
	cfg_w(c + 12, 4, 1);
	cfg_w(c + 4, 1, 0);
	cr_assert_eq(cfg_r(c + 16, 4), 0);
	cfg_w(c + 4, 1, VPCI_BAR);
	cfg_w(c + 8, 4, VPCI_BAR_SIZE);
	cr_assert_eq(cfg_r(c + 16, 4), 0);
	cfg_w(c + 8, 4, 0xfffffffcu);
	cfg_w(c + 16, 4, 0xff);
	cr_assert_eq(VP.status, VIRTIO_STATUS_ACKNOWLEDGE);
}

/* A state with something in every field. */
static void t_busy_state(void)
{
	t_negotiate(VIRTIO_F_VERSION_1 | (1ull << 9));
	t_queue(0, 128, 1);
	t_queue(2, 16, 3);
	bar_w(VPCI_CC_MSIX_CONFIG, 2, 0);
	t_driver_ok();
	t_msix(1, 0x41);
	t_msix(3, 0x43);
	bar_w(VPCI_MSIX_TABLE_OFF + 16 + 12, 4, 1);
	virtio_pci_interrupt_queue(&VP, 0);
	virtio_pci_interrupt_queue(&VP, 2);
	virtio_pci_interrupt_config(&VP);
	bar_w(VPCI_NOTIFY_OFF, 2, 0);
	bar_w(VPCI_NOTIFY_OFF + 4, 2, 1);
	bar_w(VPCI_CC_Q_SELECT, 2, 2);
	bar_w(VPCI_CC_DFSELECT, 4, 1);
	virtio_pci_fail(&VP, "test");
}

Test(virtio_pci, save_load_round_trip)
{
	static struct virtio_pci v2;
	static struct pci_host h2;
	uint8_t rec[VPCI_SAVE_SIZE], rec2[VPCI_SAVE_SIZE], hrec[4096];
	int hn;

	t_busy_state();
	cr_assert_eq(virtio_pci_save(&VP, rec, sizeof(rec) - 1), -ENOSPC);
	cr_assert_eq(virtio_pci_save(&VP, rec, sizeof(rec)), VPCI_SAVE_SIZE);
	hn = pcih_save(&H, hrec, sizeof(hrec));
	cr_assert_gt(hn, 0);

	cr_assert_eq(pcih_init(&h2, 0xc0000000ull, 0x3eb00000ull), 0);
	cr_assert_eq(virtio_pci_init(&v2, VIRTIO_ID_BLOCK, T_NQ, T_QMAX, T_FEAT, T_CFGLEN, &d_ops,
				     &D, d_msi, &D), 0);
	cr_assert_eq(pcih_add(&h2, T_DEV, &v2.func), 0);
	cr_assert_eq(pcih_load(&h2, hrec, (size_t)hn), 0);
	cr_assert_eq(virtio_pci_load(&v2, rec, sizeof(rec)), 0);
	cr_assert_eq(virtio_pci_save(&v2, rec2, sizeof(rec2)), VPCI_SAVE_SIZE);
	cr_assert_eq(memcmp(rec, rec2, sizeof(rec)), 0);

	cr_assert_eq(v2.status, VP.status);
	cr_assert_eq(v2.guest_features, VP.guest_features);
	cr_assert_eq(v2.msix_pba, VP.msix_pba);
	cr_assert_neq(v2.msix_pba, 0);
	cr_assert_eq(v2.isr, VP.isr);
	cr_assert_eq(v2.queue_select, 2);
	cr_assert_eq(v2.dfselect, 1);
	cr_assert_eq(v2.notifies, VP.notifies);
	cr_assert_eq(v2.bad_notifies, VP.bad_notifies);
	cr_assert_eq(v2.interrupts, VP.interrupts);
	cr_assert_str_eq(v2.why, "test");
	cr_assert(v2.needs_reset);
	cr_assert_eq(memcmp(v2.q, VP.q, sizeof(VP.q)), 0);
	cr_assert_eq(memcmp(v2.msix, VP.msix, sizeof(VP.msix)), 0);
	cr_assert_eq(memcmp(v2.func.cfg, VP.func.cfg, 256), 0);
	cr_assert_eq(v2.func.ctx, &v2, "the function still points at its own transport");
	cr_assert_eq(v2.ops, &d_ops);
	/* The restored transport works: unmasking delivers the pending one. */
	D.nsent = 0;
	cr_assert_eq(pcih_mmio_write(&h2, pcih_bar_addr(&v2.func, VPCI_BAR) +
				     VPCI_MSIX_TABLE_OFF + 16 + 12, 4, 0), 0);
	cr_assert_eq(D.nsent, 1);
	cr_assert_eq(D.data[0], 0x41u);
}

Test(virtio_pci, load_refuses_corrupt_records)
{
	static struct virtio_pci v2;
	uint8_t rec[VPCI_SAVE_SIZE], bad[VPCI_SAVE_SIZE], before[VPCI_SAVE_SIZE];
	/* offset, little-endian value written there, width */
	struct { size_t off; uint64_t val; int n; } cases[] = {
		{ 0, 2, 1 },			/* version */
		{ 1, T_NQ + 1, 1 },		/* nqueues */
		{ 2, VIRTIO_ID_NET, 2 },	/* virtio_id */
		{ 4, 0x10, 1 },			/* undefined status bit */
		{ 4, 0x07, 1 },			/* DRIVER_OK without FEATURES_OK */
		{ 4, 0x0f, 1 },			/* NEEDS_RESET cleared, needs_reset set */
		{ 6, 4, 1 },			/* isr */
		{ 7, 2, 1 },			/* needs_reset */
		{ 8, T_FEAT, 8 },		/* host features without VERSION_1 */
		{ 16, 1ull << 20, 8 },		/* guest feature not offered */
		{ 16, 1ull << 9, 8 },		/* FEATURES_OK without VERSION_1 */
		{ 32, T_NQ + 1, 2 },		/* msix_config beyond the table */
		{ 36, 1u << (T_NQ + 1), 4 },	/* PBA bit beyond the table */
		{ 40, T_CFGLEN + 4, 4 },	/* dev_cfg_len */
		{ 44, 1, 4 },			/* reserved */
		{ 80 + 63, 'x', 1 },		/* why not terminated */
		{ 144, 96, 2 },			/* queue 0 size not a power of two */
		{ 144, 512, 2 },		/* queue 0 size above max */
		{ 144, 0, 2 },			/* queue 0 size 0 */
		{ 146, 128, 2 },		/* queue 0 max_size */
		{ 148, T_NQ + 1, 2 },		/* queue 0 vector */
		{ 150, 2, 1 },			/* queue 0 enabled */
		{ 151, 1, 1 },			/* queue 0 pad */
		{ 144 + 32 * T_NQ, 16, 2 },	/* a queue the device lacks */
		{ 400 + 12, 2, 4 },		/* MSI-X control reserved bit */
		{ 400, 0xfee00003u, 4 },	/* MSI-X address bits 1:0 */
		{ 400 + 16 * (T_NQ + 1), 0xfee00000u, 4 },	/* entry beyond the table */
		{ 400 + 16 * (T_NQ + 1) + 12, 0, 4 },		/* unmasked */
	};

	t_busy_state();
	cr_assert_eq(virtio_pci_save(&VP, rec, sizeof(rec)), VPCI_SAVE_SIZE);
	cr_assert_eq(virtio_pci_init(&v2, VIRTIO_ID_BLOCK, T_NQ, T_QMAX, T_FEAT, T_CFGLEN, &d_ops,
				     &D, d_msi, &D), 0);
	cr_assert_eq(virtio_pci_save(&v2, before, sizeof(before)), VPCI_SAVE_SIZE);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, rec, sizeof(rec));
		st_le_n(bad + cases[i].off, cases[i].val, (unsigned)cases[i].n);
		cr_assert_eq(virtio_pci_load(&v2, bad, sizeof(bad)), -EINVAL, "case %zu", i);
	}
	cr_assert_eq(virtio_pci_load(&v2, rec, sizeof(rec) - 1), -EINVAL);
	cr_assert_eq(virtio_pci_save(&v2, bad, sizeof(bad)), VPCI_SAVE_SIZE);
	cr_assert_eq(memcmp(bad, before, sizeof(bad)), 0, "untouched after refusals");
	cr_assert_eq(virtio_pci_load(&v2, rec, sizeof(rec)), 0, "the good record loads");
	/* A device of another shape refuses the record. */
	cr_assert_eq(virtio_pci_init(&v2, VIRTIO_ID_BLOCK, T_NQ, T_QMAX * 2, T_FEAT, T_CFGLEN,
				     &d_ops, &D, d_msi, &D), 0);
	cr_assert_eq(virtio_pci_load(&v2, rec, sizeof(rec)), -EINVAL);
}

/* The rings virtio_dev.c sets up at DRIVER_OK, from the transport. */
static void t_rings(struct vring *vq, bool ev)
{
	memset(vq, 0, sizeof(struct vring) * VPCI_MAX_QUEUES);
	for (int i = 0; i < VP.nqueues; i++)
		if (VP.q[i].enabled)
			cr_assert_eq(vring_setup(&vq[i], VP.q[i].size, VP.q[i].desc, VP.q[i].driver,
						 VP.q[i].device, ev), 0);
}

Test(virtio_pci, rings_match_the_transport)
{
	struct vring vq[VPCI_MAX_QUEUES], bad[VPCI_MAX_QUEUES];

	memset(vq, 0, sizeof(vq));
	cr_assert(virtio_pci_rings_match(&VP, vq, false), "no driver: rings down");
	cr_assert_not(virtio_pci_rings_match(&VP, vq, true), "rings up without DRIVER_OK");
	t_negotiate(VIRTIO_F_VERSION_1);
	t_queue(0, 64, 1);
	t_queue(2, 128, 2);		/* queue 1 stays disabled */
	t_driver_ok();
	cr_assert(virtio_pci_live(&VP));
	t_rings(vq, false);
	cr_assert(virtio_pci_rings_match(&VP, vq, true));
	cr_assert_not(virtio_pci_rings_match(&VP, vq, false), "rings down but one is set up");
	for (int k = 0; k < 7; k++) {
		memcpy(bad, vq, sizeof(bad));
		switch (k) {
		case 0: bad[0].size = 32; break;
		case 1: bad[0].desc += 16; break;
		case 2: bad[2].avail += 2; break;
		case 3: bad[2].used += 4; break;
		case 4: bad[0].event_idx = true; break;	/* EVENT_IDX not negotiated */
		case 5: bad[2].broken = true; break;
		case 6:		/* the disabled queue has a ring */
			cr_assert_eq(vring_setup(&bad[1], 64, 0x10000, 0x20000, 0x30000, false), 0);
			break;
		}
		cr_assert_not(virtio_pci_rings_match(&VP, bad, true), "case %d", k);
	}
	/* A queue enabled after DRIVER_OK got no ring: that too is a state
	 * the device can be in, and must move. */
	memcpy(bad, vq, sizeof(bad));
	memset(&bad[2], 0, sizeof(bad[2]));
	cr_assert(virtio_pci_rings_match(&VP, bad, true));
	/* The indexes are the ring's own business: mid-flight still matches. */
	vq[0].last_avail = 7;
	vq[0].used_idx = 5;
	vq[0].signalled_valid = true;
	cr_assert(virtio_pci_rings_match(&VP, vq, true));
	/* A failed device (NEEDS_RESET) has no live rings. */
	virtio_pci_fail(&VP, "test");
	cr_assert_not(virtio_pci_rings_match(&VP, vq, true));
	memset(vq, 0, sizeof(vq));
	cr_assert(virtio_pci_rings_match(&VP, vq, false));
}

/* A device whose driver never started moves too: its record loads into
 * a fresh device and agrees with rings that are all down. */
Test(virtio_pci, record_of_a_device_no_driver_touched)
{
	static struct virtio_pci v2;
	static struct pci_host h2;
	uint8_t rec[VPCI_SAVE_SIZE], rec2[VPCI_SAVE_SIZE], rr[VRING_SAVE_SIZE];
	struct vring vq[VPCI_MAX_QUEUES], down;

	cr_assert_eq(virtio_pci_save(&VP, rec, sizeof(rec)), VPCI_SAVE_SIZE);
	cr_assert_eq(pcih_init(&h2, 0xc0000000ull, 0x3eb00000ull), 0);
	cr_assert_eq(virtio_pci_init(&v2, VIRTIO_ID_BLOCK, T_NQ, T_QMAX, T_FEAT, T_CFGLEN, &d_ops,
				     &D, d_msi, &D), 0);
	cr_assert_eq(pcih_add(&h2, T_DEV, &v2.func), 0);
	cr_assert_eq(virtio_pci_load(&v2, rec, sizeof(rec)), 0);
	cr_assert_eq(virtio_pci_save(&v2, rec2, sizeof(rec2)), VPCI_SAVE_SIZE);
	cr_assert_arr_eq(rec, rec2, sizeof(rec));
	cr_assert_eq(v2.status, 0);
	cr_assert_not(virtio_pci_live(&v2));
	memset(&down, 0, sizeof(down));
	cr_assert_eq(vring_save(&down, rr, sizeof(rr)), VRING_SAVE_SIZE);
	memset(vq, 0x5a, sizeof(vq));
	for (int i = 0; i < T_NQ; i++)
		cr_assert_eq(vring_load(&vq[i], rr, sizeof(rr)), 0);
	cr_assert_eq(vq[0].size, 0);
	cr_assert(virtio_pci_rings_match(&v2, vq, false));
	cr_assert_not(virtio_pci_rings_match(&v2, vq, true));
}
