/*
 * libFuzzer target for the PCI host bridge and the virtio-pci transport
 * (make fuzz-vpci).
 *
 * Input: a sequence of 12-byte operations against a host with one
 * virtio-blk-like function in slot 4,
 *	byte 0		space (modulo 4): 0 ports 0xcf0..0xcff, 1 ECAM (bus 0,
 *			devices 0..15), 2 BAR 4 wherever the guest put it,
 *			3 a device-side event
 *	byte 1		bit 0 write; bits 2:1 size 1, 2, 4 or 8
 *	bytes 2-3	offset (little-endian)
 *	bytes 4-11	value (little-endian)
 * plus, when the input starts with "LD", a host record and a transport
 * record fed to the loaders first, and when it starts (then) with "UP",
 * the driver bring-up Linux performs (features, queues, MSI-X, DRIVER_OK)
 * so that the operations also start from a live device; then "XL" XORs
 * the following bytes into the saved records and loads them back.  The
 * fake device traps on any access
 * outside its config space.  After every operation the invariants that
 * hold for any guest behaviour are checked: queue sizes are powers of two
 * no larger than the maximum, vectors are in the table or NO_VECTOR,
 * features are a subset of the offered ones, DRIVER_OK implies
 * FEATURES_OK, the PBA has no bit beyond the table, and the state saves
 * to records a second, identical host and transport accept and re-save
 * byte for byte, and the rings a device would set up from the transport
 * agree with it (virtio_pci_rings_match) while any one moved field does
 * not.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/pci_host.h"
#include "kernel/devices/model/virtio_pci.h"
#include "kernel/lib/byteorder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_DEV		4
#define FZ_NQ		2
#define FZ_QMAX		256
#define FZ_FEAT		((1ull << 9) | (1ull << 6))
#define FZ_CFGLEN	60
#define FZ_OP		12

static void fz_check(bool cond)
{
	if (!cond)
		__builtin_trap();
}

static uint8_t fz_devcfg[FZ_CFGLEN];
static bool fz_refuse;

static void fz_cfg_read(void *dev, uint32_t off, void *buf, int size)
{
	(void)dev;
	fz_check(size >= 1 && size <= 8 && off + (uint32_t)size <= FZ_CFGLEN);
	memcpy(buf, fz_devcfg + off, (size_t)size);
}

static void fz_cfg_write(void *dev, uint32_t off, const void *buf, int size)
{
	(void)dev;
	fz_check(size >= 1 && size <= 8 && off + (uint32_t)size <= FZ_CFGLEN);
	memcpy(fz_devcfg + off, buf, (size_t)size);
}

static struct virtio_pci fz_vp, fz_vp2;

static void fz_notify(void *dev, uint16_t q)
{
	struct virtio_pci *vp = dev;

	fz_check(q < FZ_NQ && vp->q[q].enabled && virtio_pci_live(vp));
}

static bool fz_features_ok(void *dev, uint64_t f)
{
	(void)dev;
	fz_check(f & VIRTIO_F_VERSION_1);
	return !(fz_refuse && (f & (1ull << 6)));
}

static void fz_nop(void *dev)
{
	(void)dev;
}

static const struct virtio_pci_ops fz_ops = {
	.cfg_read = fz_cfg_read, .cfg_write = fz_cfg_write, .queue_notify = fz_notify,
	.features_ok = fz_features_ok, .driver_ok = fz_nop, .reset = fz_nop,
};

static void fz_msi(void *ctx, uint64_t addr, uint32_t data)
{
	(void)ctx;
	fz_check(!(addr & 3));
	(void)data;
}

static struct pci_host fz_h, fz_h2;

static void fz_build(struct pci_host *h, struct virtio_pci *vp)
{
	fz_check(pcih_init(h, 0xc0000000ull, 0x3eb00000ull) == 0);
	fz_check(virtio_pci_init(vp, VIRTIO_ID_BLOCK, FZ_NQ, FZ_QMAX, FZ_FEAT, FZ_CFGLEN, &fz_ops,
				 vp, fz_msi, NULL) == 0);
	fz_check(pcih_add(h, FZ_DEV, &vp->func) == 0);
}

static bool fz_vec_ok(const struct virtio_pci *vp, uint16_t v)
{
	return v == VIRTIO_MSI_NO_VECTOR || v < virtio_pci_vectors(vp);
}

static void fz_invariants(const struct virtio_pci *vp)
{
	for (int i = 0; i < VPCI_MAX_QUEUES; i++) {
		const struct virtio_pci_queue *q = &vp->q[i];

		if (i >= vp->nqueues) {
			fz_check(!q->size && !q->max_size && !q->enabled);
			continue;
		}
		fz_check(q->max_size == FZ_QMAX && q->size && q->size <= q->max_size);
		fz_check(!(q->size & (q->size - 1)));
		fz_check(fz_vec_ok(vp, q->msix_vector));
	}
	fz_check(fz_vec_ok(vp, vp->msix_config));
	fz_check(!(vp->guest_features & ~vp->host_features));
	if (vp->status & VIRTIO_STATUS_DRIVER_OK)
		fz_check(vp->status & VIRTIO_STATUS_FEATURES_OK);
	if (vp->status & VIRTIO_STATUS_FEATURES_OK)
		fz_check(vp->guest_features & VIRTIO_F_VERSION_1);
	fz_check(vp->needs_reset == !!(vp->status & VIRTIO_STATUS_NEEDS_RESET));
	fz_check(!(vp->msix_pba >> virtio_pci_vectors(vp)));
	fz_check(vp->isr <= 3);
	for (int i = 0; i < VPCI_MAX_VECTORS; i++)
		fz_check(vp->msix[i].ctrl <= 1 && !(vp->msix[i].addr_lo & 3));
	fz_check(!vp->why[sizeof(vp->why) - 1]);
}

/* Both records load into the twin and re-save byte for byte. */
static void fz_round_trip(void)
{
	static uint8_t a[4096], b[4096], c[VPCI_SAVE_SIZE], d[VPCI_SAVE_SIZE];
	int n = pcih_save(&fz_h, a, sizeof(a));

	fz_check(n > 0);
	fz_check(pcih_load(&fz_h2, a, (size_t)n) == 0);
	fz_check(pcih_save(&fz_h2, b, sizeof(b)) == n && !memcmp(a, b, (size_t)n));
	fz_check(virtio_pci_save(&fz_vp, c, sizeof(c)) == VPCI_SAVE_SIZE);
	fz_check(virtio_pci_load(&fz_vp2, c, sizeof(c)) == 0);
	fz_check(virtio_pci_save(&fz_vp2, d, sizeof(d)) == VPCI_SAVE_SIZE);
	fz_check(!memcmp(c, d, sizeof(c)));
}

/* The rings virtio_dev.c would set up from this transport agree with it
 * (virtio_pci_rings_match); moved by any one field, they do not. */
static void fz_rings(void)
{
	struct vring vq[VPCI_MAX_QUEUES];
	bool live = virtio_pci_live(&fz_vp);
	bool ev = fz_vp.guest_features & (1ull << VIRTIO_F_RING_EVENT_IDX);

	memset(vq, 0, sizeof(vq));
	fz_check(virtio_pci_rings_match(&fz_vp, vq, false));
	for (int i = 0; i < fz_vp.nqueues; i++) {
		const struct virtio_pci_queue *q = &fz_vp.q[i];

		if (live && q->enabled)
			vq[i] = (struct vring){ .size = q->size, .desc = q->desc,
						.avail = q->driver, .used = q->device,
						.event_idx = ev };
	}
	fz_check(virtio_pci_rings_match(&fz_vp, vq, live));
	if (!live)
		fz_check(!virtio_pci_rings_match(&fz_vp, vq, true));
	for (int i = 0; i < fz_vp.nqueues; i++) {
		/* A ring that is not live is only checked for being unset. */
		int fields = live && fz_vp.q[i].enabled ? 5 : 1;

		for (int k = 0; k < fields; k++) {
			struct vring keep = vq[i];

			switch (k) {
			case 0: vq[i].size = vq[i].size == 1 ? 2 : 1; break;
			case 1: vq[i].desc ^= 16; break;
			case 2: vq[i].avail ^= 2; break;
			case 3: vq[i].used ^= 4; break;
			default: vq[i].event_idx = !vq[i].event_idx; break;
			}
			fz_check(!virtio_pci_rings_match(&fz_vp, vq, live));
			vq[i] = keep;
		}
	}
}

static void fz_io(uint16_t off, bool wr, int sz, uint64_t val)
{
	uint16_t port = (uint16_t)(0xcf0 + (off & 0xf));
	uint32_t v = 0;
	int r;

	if (wr)
		r = pcih_io_write(&fz_h, port, sz, (uint32_t)val);
	else
		r = pcih_io_read(&fz_h, port, sz, &v);
	fz_check(r == 0 || r == -ENOENT);
	fz_check(r == 0 || port < 0xcf8 || (port < 0xcfc && (port != 0xcf8 || sz != 4)));
	if (!wr && r == 0 && sz < 4)
		fz_check(!(v >> (8 * sz)));
}

static void fz_ecam(uint16_t off, bool wr, int sz, uint64_t val)
{
	uint32_t o = (uint32_t)(off >> 12) << 15 | (off & 0xfff), v = 0;

	if (wr)
		fz_check(pcih_ecam_write(&fz_h, o, sz, (uint32_t)val) == 0);
	else
		fz_check(pcih_ecam_read(&fz_h, o, sz, &v) == 0);
	if (!wr && sz < 4)
		fz_check(!(v >> (8 * sz)));
}

static void fz_mmio(uint16_t off, bool wr, int sz, uint64_t val)
{
	uint64_t base = pcih_bar_addr(&fz_vp.func, VPCI_BAR), v;
	int r;

	if (wr)
		r = pcih_mmio_write(&fz_h, base + off, sz, val);
	else
		r = pcih_mmio_read(&fz_h, base + off, sz, &v);
	fz_check(r == 0 || r == -ENOENT);
	/* The transport answers every offset of its BAR directly too. */
	if (off >= VPCI_BAR_SIZE || wr)
		return;
	fz_check(virtio_pci_bar_read(&fz_vp, off, sz, &v) == 0);
}

static void fz_event(uint16_t off, uint64_t val)
{
	switch (off & 7) {
	case 0:	virtio_pci_interrupt_queue(&fz_vp, (uint16_t)(off & 8 ? val : val & 3)); break;
	case 1:	virtio_pci_interrupt_config(&fz_vp); break;
	case 2:	virtio_pci_fail(&fz_vp, val & 1 ? "a reason longer than the sixty-four bytes "
				"the transport keeps for vm info, cut" : NULL); break;
	case 3:	virtio_pci_reset(&fz_vp); break;
	case 4:	fz_refuse = val & 1; break;
	default: fz_round_trip(); break;
	}
}

/* What Linux does before the device runs (virtio 1.1 3.1.1, PCI MSI-X
 * set-up), through the guest's own paths, so that the operations start
 * from a live device with MSI-X on. */
static void fz_bringup(void)
{
	uint8_t mx = fz_vp.msix_cap;

	fz_ecam(FZ_DEV << 12 | 0x04, true, 2, 0x6);	/* MEM | MASTER */
	fz_mmio(VPCI_CC_STATUS, true, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	fz_mmio(VPCI_CC_GFSELECT, true, 4, 0);
	fz_mmio(VPCI_CC_GF, true, 4, (uint32_t)FZ_FEAT);
	fz_mmio(VPCI_CC_GFSELECT, true, 4, 1);
	fz_mmio(VPCI_CC_GF, true, 4, 1);		/* VERSION_1 */
	fz_mmio(VPCI_CC_STATUS, true, 1, 0x0b);
	fz_mmio(VPCI_CC_MSIX_CONFIG, true, 2, 0);
	for (uint16_t q = 0; q < FZ_NQ; q++) {
		fz_mmio(VPCI_CC_Q_SELECT, true, 2, q);
		fz_mmio(VPCI_CC_Q_SIZE, true, 2, 128);
		fz_mmio(VPCI_CC_Q_MSIX, true, 2, q + 1u);
		fz_mmio(VPCI_CC_Q_DESC, true, 8, 0x10000u * (q + 1u));
		fz_mmio(VPCI_CC_Q_DRIVER, true, 8, 0x10000u * (q + 1u) + 0x1000);
		fz_mmio(VPCI_CC_Q_DEVICE, true, 8, 0x10000u * (q + 1u) + 0x2000);
		fz_mmio(VPCI_CC_Q_ENABLE, true, 2, 1);
	}
	for (uint16_t v = 0; v <= FZ_NQ; v++) {
		fz_mmio((uint16_t)(VPCI_MSIX_TABLE_OFF + 16 * v), true, 8, 0xfee00000u);
		fz_mmio((uint16_t)(VPCI_MSIX_TABLE_OFF + 16 * v + 8), true, 8, 0x40u + v);
	}
	fz_ecam((uint16_t)(FZ_DEV << 12 | (mx + 3)), true, 1, 0x80);	/* MSI-X on */
	fz_mmio(VPCI_CC_STATUS, true, 1, 0x0f);
	fz_check(virtio_pci_live(&fz_vp));
}

/* Records of the live device with the input XORed in: the loaders see
 * nearly valid records, where a missed check would let a bad field in
 * (the invariants run right after).  Returns the input bytes used. */
static size_t fz_xor_load(const uint8_t *data, size_t size)
{
	static uint8_t rec[4096 + VPCI_SAVE_SIZE];
	int hn = pcih_save(&fz_h, rec, 4096);
	size_t n;

	fz_check(hn > 0);
	fz_check(virtio_pci_save(&fz_vp, rec + hn, VPCI_SAVE_SIZE) == VPCI_SAVE_SIZE);
	n = (size_t)hn + VPCI_SAVE_SIZE;
	n = size < n ? size : n;
	for (size_t i = 0; i < n; i++)
		rec[i] ^= data[i];
	(void)pcih_load(&fz_h, rec, (size_t)hn);
	(void)virtio_pci_load(&fz_vp, rec + hn, VPCI_SAVE_SIZE);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_refuse = false;
	memset(fz_devcfg, 0x5a, sizeof(fz_devcfg));
	fz_build(&fz_h, &fz_vp);
	fz_build(&fz_h2, &fz_vp2);
	if (size >= 2 && data[0] == 'L' && data[1] == 'D') {
		size_t hn = pcih_save_size(&fz_h);

		data += 2;
		size -= 2;
		if (size >= hn + VPCI_SAVE_SIZE) {
			(void)pcih_load(&fz_h, data, hn);
			(void)virtio_pci_load(&fz_vp, data + hn, VPCI_SAVE_SIZE);
			data += hn + VPCI_SAVE_SIZE;
			size -= hn + VPCI_SAVE_SIZE;
		}
	}
	if (size >= 2 && data[0] == 'U' && data[1] == 'P') {
		data += 2;
		size -= 2;
		fz_bringup();
	}
	if (size >= 2 && data[0] == 'X' && data[1] == 'L') {
		size_t used = fz_xor_load(data + 2, size - 2);

		data += 2 + used;
		size -= 2 + used;
	}
	fz_invariants(&fz_vp);
	for (; size >= FZ_OP; data += FZ_OP, size -= FZ_OP) {
		static const int sizes[4] = { 1, 2, 4, 8 };
		uint16_t off = ld_le16(data + 2);
		uint64_t val = ld_le64(data + 4);
		bool wr = data[1] & 1;
		int sz = sizes[(data[1] >> 1) & 3];

		switch (data[0] & 3) {
		case 0:	fz_io(off, wr, sz, val); break;
		case 1:	fz_ecam(off, wr, sz, val); break;
		case 2:	fz_mmio(off, wr, sz, val); break;
		default: fz_event(off, val); break;
		}
		fz_invariants(&fz_vp);
	}
	fz_round_trip();
	fz_rings();
	return 0;
}
