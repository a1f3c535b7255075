/*
 * The virtio 1.x PCI transport (see virtio_pci.h).  Section numbers are
 * VIRTIO 1.1's; MSI-X is PCI Local Bus 3.0 section 6.8.2.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/virtio_pci.h"
#include "kernel/lib/byteorder.h"
#include "kernel/lib/pci_caps.h"
#include "kernel/lib/virtq.h"

/* MSI-X capability (PCI 3.0 6.8.2): message control at +2, table and
 * PBA offset/BIR at +4 and +8. */
#define VPCI_MSIX_CAP_LEN	12
#define VPCI_MSIX_ENABLE	0x80	/* in the high byte of message control */
#define VPCI_MSIX_FMASK		0x40
#define VPCI_MSIX_ENTRY		16
#define VPCI_MSIX_CTRL_MASKED	1u

/* struct virtio_pci_cap (4.1.4): 16 bytes; notify and PCI cfg add 4. */
#define VPCI_CAP_LEN		16
#define VPCI_CAP_EXT_LEN	20
#define VPCI_CFGCAP_BAR		4
#define VPCI_CFGCAP_OFF		8
#define VPCI_CFGCAP_LENGTH	12
#define VPCI_CFGCAP_DATA	16

#define VPCI_STATUS_DRIVER_BITS	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | \
				 VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK | \
				 VIRTIO_STATUS_FAILED)

int virtio_pci_vectors(const struct virtio_pci *vp)
{
	return vp->nqueues + 1;
}

static uint8_t vp_msix_ctl(const struct virtio_pci *vp)
{
	return vp->func.cfg[vp->msix_cap + 3];
}

static bool vp_msix_on(const struct virtio_pci *vp)
{
	return vp_msix_ctl(vp) & VPCI_MSIX_ENABLE;
}

/* A vector the driver asks for: out of the table reads back NO_VECTOR
 * (4.1.4.3: the device reports a failed mapping that way). */
static uint16_t vp_vector(const struct virtio_pci *vp, uint16_t v)
{
	return v < virtio_pci_vectors(vp) ? v : VIRTIO_MSI_NO_VECTOR;
}

/* ---- MSI-X delivery ---- */

static void vp_msix_send(struct virtio_pci *vp, unsigned v)
{
	uint64_t addr = (uint64_t)vp->msix[v].addr_hi << 32 | vp->msix[v].addr_lo;

	vp->interrupts++;
	vp->msi_send(vp->msi_ctx, addr, vp->msix[v].data);
}

/* An MSI is a memory write by the function: without COMMAND.MASTER it
 * may not issue one (PCI 3.0 6.2.2, 6.8.2). */
static bool vp_master(const struct virtio_pci *vp)
{
	return ld_le16(vp->func.cfg + PCI_COMMAND) & PCI_CMD_MASTER;
}

/* Masked (function or entry), or bus mastering off: the pending bit waits
 * for the unmask (PCI 3.0 6.8.2.9) or the COMMAND write. */
static void vp_msix_signal(struct virtio_pci *vp, uint16_t v)
{
	if (v >= virtio_pci_vectors(vp))
		return;
	if ((vp_msix_ctl(vp) & VPCI_MSIX_FMASK) || (vp->msix[v].ctrl & VPCI_MSIX_CTRL_MASKED) ||
	    !vp_master(vp)) {
		vp->msix_pba |= 1u << v;
		vp->masked++;
		return;
	}
	vp_msix_send(vp, v);
}

/* Deliver the pending vectors that are no longer masked. */
static void vp_msix_flush(struct virtio_pci *vp)
{
	if (!vp_msix_on(vp) || (vp_msix_ctl(vp) & VPCI_MSIX_FMASK) || !vp_master(vp))
		return;
	for (int v = 0; v < virtio_pci_vectors(vp); v++) {
		if (!(vp->msix_pba & (1u << v)) || (vp->msix[v].ctrl & VPCI_MSIX_CTRL_MASKED))
			continue;
		vp->msix_pba &= ~(1u << v);
		vp_msix_send(vp, (unsigned)v);
	}
}

void virtio_pci_interrupt_queue(struct virtio_pci *vp, uint16_t q)
{
	if (q >= vp->nqueues || !(vp->status & VIRTIO_STATUS_DRIVER_OK))
		return;
	if (vp_msix_on(vp))
		vp_msix_signal(vp, vp->q[q].msix_vector);
	else
		vp->isr |= VIRTIO_ISR_QUEUE;	/* no INTx: the driver polls ISR */
}

/* The config bit is set whatever the interrupt mode (4.1.4.5.1). */
static void vp_config_irq(struct virtio_pci *vp)
{
	vp->isr |= VIRTIO_ISR_CONFIG;
	if (vp_msix_on(vp))
		vp_msix_signal(vp, vp->msix_config);
}

void virtio_pci_interrupt_config(struct virtio_pci *vp)
{
	vp->config_generation++;
	vp_config_irq(vp);
}

void virtio_pci_fail(struct virtio_pci *vp, const char *why)
{
	size_t n = 0;

	if (why)
		while (why[n] && n < sizeof(vp->why) - 1)
			n++;
	memset(vp->why, 0, sizeof(vp->why));
	if (n)
		memcpy(vp->why, why, n);
	vp->needs_reset = true;
	vp->status |= VIRTIO_STATUS_NEEDS_RESET;
	/* 2.1.2: a config change notification when DRIVER_OK is set. */
	if (vp->status & VIRTIO_STATUS_DRIVER_OK)
		vp_config_irq(vp);
}

bool virtio_pci_live(const struct virtio_pci *vp)
{
	return (vp->status & VIRTIO_STATUS_DRIVER_OK) && !vp->needs_reset;
}

static void vp_reset_state(struct virtio_pci *vp)
{
	vp->guest_features = 0;
	vp->dfselect = vp->gfselect = 0;
	vp->msix_config = VIRTIO_MSI_NO_VECTOR;
	vp->queue_select = 0;
	vp->status = 0;
	vp->isr = 0;
	vp->msix_pba = 0;
	vp->needs_reset = false;
	memset(vp->why, 0, sizeof(vp->why));
	for (int i = 0; i < VPCI_MAX_QUEUES; i++) {
		struct virtio_pci_queue *q = &vp->q[i];
		uint16_t max = q->max_size;

		*q = (struct virtio_pci_queue){ 0 };
		if (i < vp->nqueues) {
			/* 4.1.4.3: queue_size starts at the maximum. */
			q->max_size = max;
			q->size = max;
			q->msix_vector = VIRTIO_MSI_NO_VECTOR;
		}
	}
}

void virtio_pci_reset(struct virtio_pci *vp)
{
	vp_reset_state(vp);
	if (vp->ops->reset)
		vp->ops->reset(vp->dev);
}

/* ---- common configuration (4.1.4.3) ---- */

/* Natural width of the field at off (4.1.3.1); 64-bit fields also take
 * 4-byte halves and one 8-byte access.  0: no field. */
static bool vp_cc_width_ok(uint32_t off, int size)
{
	if (off >= VPCI_CC_Q_DESC && off < VPCI_COMMON_LEN)
		return (size == 4 && !(off & 3)) || (size == 8 && !(off & 7));
	switch (off) {
	case VPCI_CC_DFSELECT: case VPCI_CC_DF: case VPCI_CC_GFSELECT: case VPCI_CC_GF:
		return size == 4;
	case VPCI_CC_STATUS: case VPCI_CC_GENERATION:
		return size == 1;
	case VPCI_CC_MSIX_CONFIG: case VPCI_CC_NUM_QUEUES: case VPCI_CC_Q_SELECT:
	case VPCI_CC_Q_SIZE: case VPCI_CC_Q_MSIX: case VPCI_CC_Q_ENABLE: case VPCI_CC_Q_NOTIFY_OFF:
		return size == 2;
	}
	return false;
}

static struct virtio_pci_queue *vp_selq(struct virtio_pci *vp)
{
	return vp->queue_select < vp->nqueues ? &vp->q[vp->queue_select] : NULL;
}

/* The 64-bit queue address field that off falls in. */
static uint64_t *vp_qaddr(struct virtio_pci_queue *q, uint32_t off)
{
	switch (off & ~7u) {
	case VPCI_CC_Q_DESC:	return &q->desc;
	case VPCI_CC_Q_DRIVER:	return &q->driver;
	default:		return &q->device;
	}
}

static uint64_t vp_qaddr_read(struct virtio_pci_queue *q, uint32_t off, int size)
{
	uint64_t a = *vp_qaddr(q, off);

	if (size == 8)
		return a;
	return (uint32_t)(off & 4 ? a >> 32 : a);
}

/* The 32-bit window sel of a 64-bit feature set (4.1.4.3). */
static uint32_t vp_feature_window(uint64_t f, uint32_t sel)
{
	return sel < 2 ? (uint32_t)(f >> (32 * sel)) : 0;
}

static uint64_t vp_cc_read(struct virtio_pci *vp, uint32_t off, int size)
{
	struct virtio_pci_queue *q = vp_selq(vp);

	if (!vp_cc_width_ok(off, size))
		return 0;
	if (off >= VPCI_CC_Q_DESC)
		return q ? vp_qaddr_read(q, off, size) : 0;
	switch (off) {
	case VPCI_CC_DFSELECT:	return vp->dfselect;
	case VPCI_CC_DF:	return vp_feature_window(vp->host_features, vp->dfselect);
	case VPCI_CC_GFSELECT:	return vp->gfselect;
	case VPCI_CC_GF:	return vp_feature_window(vp->guest_features, vp->gfselect);
	case VPCI_CC_MSIX_CONFIG: return vp->msix_config;
	case VPCI_CC_NUM_QUEUES: return (uint64_t)vp->nqueues;
	case VPCI_CC_STATUS:	return vp->status;
	case VPCI_CC_GENERATION: return vp->config_generation;
	case VPCI_CC_Q_SELECT:	return vp->queue_select;
	case VPCI_CC_Q_SIZE:	return q ? q->size : 0;
	case VPCI_CC_Q_MSIX:	return q ? q->msix_vector : VIRTIO_MSI_NO_VECTOR;
	case VPCI_CC_Q_ENABLE:	return q ? q->enabled : 0;
	case VPCI_CC_Q_NOTIFY_OFF: return q ? vp->queue_select : 0;
	}
	return 0;
}

/* 4.1.4.3.2: a queue's set-up is frozen once it is enabled or the driver
 * said DRIVER_OK. */
static struct virtio_pci_queue *vp_selq_setup(struct virtio_pci *vp)
{
	struct virtio_pci_queue *q = vp_selq(vp);

	if (!q || q->enabled || (vp->status & VIRTIO_STATUS_DRIVER_OK))
		return NULL;
	return q;
}

static void vp_qaddr_write(struct virtio_pci_queue *q, uint32_t off, int size, uint64_t val)
{
	uint64_t *a = vp_qaddr(q, off);

	if (size == 8)
		*a = val;
	else if (off & 4)
		*a = (*a & 0xffffffffull) | (val & 0xffffffffull) << 32;
	else
		*a = (*a & ~0xffffffffull) | (val & 0xffffffffull);
}

/* Features the device did not offer are dropped; the set is frozen once
 * FEATURES_OK is set (3.1.1 step 5). */
static void vp_gf_write(struct virtio_pci *vp, uint32_t val)
{
	unsigned sh;
	uint64_t m;

	if (vp->gfselect > 1 || (vp->status & VIRTIO_STATUS_FEATURES_OK))
		return;
	sh = 32 * vp->gfselect;
	m = 0xffffffffull << sh;
	vp->guest_features = (vp->guest_features & ~m) |
			     (((uint64_t)val << sh) & m & vp->host_features);
}

/* FEATURES_OK only sticks for a set with VERSION_1 the device accepts
 * (3.1.1 step 6); DRIVER_OK only after FEATURES_OK.  Bits are only
 * cleared by a reset; NEEDS_RESET is the device's, 0x10 and 0x20 are
 * reserved (2.1). */
static void vp_status_write(struct virtio_pci *vp, uint8_t val)
{
	uint8_t old = vp->status, ns;

	if (!val) {
		virtio_pci_reset(vp);
		return;
	}
	ns = old | (val & VPCI_STATUS_DRIVER_BITS);
	if ((ns & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
	    (!(vp->guest_features & VIRTIO_F_VERSION_1) ||
	     (vp->ops->features_ok && !vp->ops->features_ok(vp->dev, vp->guest_features))))
		ns &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	if (!(ns & VIRTIO_STATUS_FEATURES_OK))
		ns &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	vp->status = ns;
	if ((ns & ~old & VIRTIO_STATUS_DRIVER_OK) && vp->ops->driver_ok)
		vp->ops->driver_ok(vp->dev);
}

static void vp_q_write16(struct virtio_pci *vp, uint32_t off, uint16_t v)
{
	struct virtio_pci_queue *q = vp_selq_setup(vp);

	if (off == VPCI_CC_Q_ENABLE) {
		q = vp_selq(vp);
		/* Only 1 is accepted; 0 does not disable (4.1.4.3.2). */
		if (q && v == 1)
			q->enabled = true;
		return;
	}
	if (!q)
		return;
	if (off == VPCI_CC_Q_SIZE) {
		if (v && !(v & (v - 1)) && v <= q->max_size)
			q->size = v;
	} else if (off == VPCI_CC_Q_MSIX) {
		q->msix_vector = vp_vector(vp, v);
	}
}

static void vp_cc_write(struct virtio_pci *vp, uint32_t off, int size, uint64_t val)
{
	struct virtio_pci_queue *q;

	if (!vp_cc_width_ok(off, size))
		return;
	if (off >= VPCI_CC_Q_DESC) {
		q = vp_selq_setup(vp);
		if (q)
			vp_qaddr_write(q, off, size, val);
		return;
	}
	switch (off) {
	case VPCI_CC_DFSELECT:	vp->dfselect = (uint32_t)val; break;
	case VPCI_CC_GFSELECT:	vp->gfselect = (uint32_t)val; break;
	case VPCI_CC_GF:	vp_gf_write(vp, (uint32_t)val); break;
	case VPCI_CC_MSIX_CONFIG: vp->msix_config = vp_vector(vp, (uint16_t)val); break;
	case VPCI_CC_STATUS:	vp_status_write(vp, (uint8_t)val); break;
	case VPCI_CC_Q_SELECT:	vp->queue_select = (uint16_t)val; break;
	case VPCI_CC_Q_SIZE: case VPCI_CC_Q_MSIX: case VPCI_CC_Q_ENABLE:
		vp_q_write16(vp, off, (uint16_t)val);
		break;
	}
	/* device_feature, num_queues, config_generation, notify_off: RO */
}

/* ---- the other regions of BAR 4 ---- */

static bool vp_dev_range(const struct virtio_pci *vp, uint32_t off, int size)
{
	return (size == 1 || size == 2 || size == 4 || size == 8) &&
	       off < vp->dev_cfg_len && vp->dev_cfg_len - off >= (uint32_t)size;
}

static uint64_t vp_dev_read(struct virtio_pci *vp, uint32_t off, int size)
{
	uint8_t b[8] = { 0 };

	if (!vp_dev_range(vp, off, size) || !vp->ops->cfg_read)
		return 0;
	vp->ops->cfg_read(vp->dev, off, b, size);
	return ld_le_n(b, (unsigned)size);
}

static void vp_dev_write(struct virtio_pci *vp, uint32_t off, int size, uint64_t val)
{
	uint8_t b[8];

	if (!vp_dev_range(vp, off, size) || !vp->ops->cfg_write)
		return;
	st_le_n(b, val, (unsigned)size);
	vp->ops->cfg_write(vp->dev, off, b, size);
}

/* A kick (4.1.4.4): the queue index is in the offset; the value (the
 * index again, without VIRTIO_F_NOTIFICATION_DATA) is not needed. */
static void vp_notify(struct virtio_pci *vp, uint32_t off, int size)
{
	uint32_t q = off / VPCI_NOTIFY_MULT;

	if ((off % VPCI_NOTIFY_MULT) || (size != 2 && size != 4) || q >= (uint32_t)vp->nqueues)
		return;
	if (!vp->q[q].enabled || !virtio_pci_live(vp)) {
		vp->bad_notifies++;
		return;
	}
	vp->notifies++;
	if (vp->ops->queue_notify)
		vp->ops->queue_notify(vp->dev, (uint16_t)q);
}

/* Table entries take aligned dword or qword accesses (PCI 3.0 6.8.2). */
static bool vp_msix_access_ok(const struct virtio_pci *vp, uint32_t off, int size)
{
	if (!((size == 4 && !(off & 3)) || (size == 8 && !(off & 7))))
		return false;
	return off < (uint32_t)virtio_pci_vectors(vp) * VPCI_MSIX_ENTRY;
}

static uint32_t vp_msix_dword(const struct virtio_pci *vp, uint32_t off)
{
	unsigned v = off / VPCI_MSIX_ENTRY;

	switch (off % VPCI_MSIX_ENTRY) {
	case 0:		return vp->msix[v].addr_lo;
	case 4:		return vp->msix[v].addr_hi;
	case 8:		return vp->msix[v].data;
	default:	return vp->msix[v].ctrl;
	}
}

static uint64_t vp_msix_read(const struct virtio_pci *vp, uint32_t off, int size)
{
	if (!vp_msix_access_ok(vp, off, size))
		return 0;
	if (size == 8)
		return vp_msix_dword(vp, off) | (uint64_t)vp_msix_dword(vp, off + 4) << 32;
	return vp_msix_dword(vp, off);
}

static void vp_msix_dword_write(struct virtio_pci *vp, uint32_t off, uint32_t val)
{
	unsigned v = off / VPCI_MSIX_ENTRY;

	switch (off % VPCI_MSIX_ENTRY) {
	case 0:	vp->msix[v].addr_lo = val & ~3u; break;	/* dword aligned */
	case 4:	vp->msix[v].addr_hi = val; break;
	case 8:	vp->msix[v].data = val; break;
	default:
		/* Only the mask bit; 31:1 are reserved. */
		vp->msix[v].ctrl = val & VPCI_MSIX_CTRL_MASKED;
		vp_msix_flush(vp);
		break;
	}
}

static void vp_msix_write(struct virtio_pci *vp, uint32_t off, int size, uint64_t val)
{
	if (!vp_msix_access_ok(vp, off, size))
		return;
	vp_msix_dword_write(vp, off, (uint32_t)val);
	if (size == 8)
		vp_msix_dword_write(vp, off + 4, (uint32_t)(val >> 32));
}

static uint64_t vp_pba_read(const struct virtio_pci *vp, uint32_t off, int size)
{
	if (off == 0 && (size == 4 || size == 8))
		return vp->msix_pba;
	return 0;
}

int virtio_pci_bar_read(struct virtio_pci *vp, uint64_t off, int size, uint64_t *val)
{
	uint32_t o = (uint32_t)off;

	*val = 0;
	if (off >= VPCI_BAR_SIZE || size < 1 || size > 8)
		return 0;
	if (o < VPCI_ISR_OFF) {
		*val = vp_cc_read(vp, o, size);
	} else if (o < VPCI_DEVICE_OFF) {
		if (o == VPCI_ISR_OFF) {
			*val = vp->isr;	/* read clears (4.1.4.5) */
			vp->isr = 0;
		}
	} else if (o < VPCI_NOTIFY_OFF) {
		*val = vp_dev_read(vp, o - VPCI_DEVICE_OFF, size);
	} else if (o >= VPCI_MSIX_PBA_OFF) {
		*val = vp_pba_read(vp, o - VPCI_MSIX_PBA_OFF, size);
	} else if (o >= VPCI_MSIX_TABLE_OFF) {
		*val = vp_msix_read(vp, o - VPCI_MSIX_TABLE_OFF, size);
	}
	/* notify region: reads 0 */
	return 0;
}

int virtio_pci_bar_write(struct virtio_pci *vp, uint64_t off, int size, uint64_t val)
{
	uint32_t o = (uint32_t)off;

	if (off >= VPCI_BAR_SIZE || size < 1 || size > 8)
		return 0;
	if (o < VPCI_ISR_OFF)
		vp_cc_write(vp, o, size, val);
	else if (o >= VPCI_DEVICE_OFF && o < VPCI_NOTIFY_OFF)
		vp_dev_write(vp, o - VPCI_DEVICE_OFF, size, val);
	else if (o >= VPCI_NOTIFY_OFF && o < VPCI_MSIX_TABLE_OFF)
		vp_notify(vp, o - VPCI_NOTIFY_OFF, size);
	else if (o >= VPCI_MSIX_TABLE_OFF && o < VPCI_MSIX_PBA_OFF)
		vp_msix_write(vp, o - VPCI_MSIX_TABLE_OFF, size, val);
	/* ISR and PBA are read-only */
	return 0;
}

static int vp_bar_read(void *ctx, int bar, uint64_t off, int size, uint64_t *val)
{
	if (bar != VPCI_BAR)
		return -ENOENT;
	return virtio_pci_bar_read(ctx, off, size, val);
}

static int vp_bar_write(void *ctx, int bar, uint64_t off, int size, uint64_t val)
{
	if (bar != VPCI_BAR)
		return -ENOENT;
	return virtio_pci_bar_write(ctx, off, size, val);
}

/* ---- config space: MSI-X control and the PCI cfg access cap ---- */

static bool vp_overlaps(uint16_t off, int size, unsigned start, unsigned len)
{
	return off < start + len && off + (unsigned)size > start;
}

/*
 * The window of 4.1.4.7: cap.bar, cap.offset and cap.length select an
 * aligned access of 1, 2 or 4 bytes inside BAR 4; anything else is not
 * performed (pci_cfg_data then reads 0).
 */
static bool vp_cfgcap_target(const struct virtio_pci *vp, uint32_t *off, int *len)
{
	const uint8_t *c = vp->func.cfg + vp->cfg_cap;
	uint32_t l = ld_le32(c + VPCI_CFGCAP_LENGTH);

	*off = ld_le32(c + VPCI_CFGCAP_OFF);
	*len = (int)l;
	return c[VPCI_CFGCAP_BAR] == VPCI_BAR && (l == 1 || l == 2 || l == 4) && !(*off % l) &&
	       *off < VPCI_BAR_SIZE;
}

static void vp_cfg_read(void *ctx, uint16_t off, int size)
{
	struct virtio_pci *vp = ctx;
	uint8_t *data = vp->func.cfg + vp->cfg_cap + VPCI_CFGCAP_DATA;
	uint64_t val = 0;
	uint32_t bo;
	int len;

	if (!vp_overlaps(off, size, vp->cfg_cap + VPCI_CFGCAP_DATA, 4))
		return;
	if (vp_cfgcap_target(vp, &bo, &len))
		virtio_pci_bar_read(vp, bo, len, &val);
	st_le32(data, (uint32_t)val);
}

static void vp_cfg_written(void *ctx, uint16_t off, int size)
{
	struct virtio_pci *vp = ctx;
	uint32_t bo;
	int len;

	if (vp_overlaps(off, size, vp->msix_cap + 2, 2) || vp_overlaps(off, size, PCI_COMMAND, 2))
		vp_msix_flush(vp);	/* unmasked, MSI-X enabled or bus master on */
	if (vp_overlaps(off, size, vp->cfg_cap + VPCI_CFGCAP_DATA, 4) &&
	    vp_cfgcap_target(vp, &bo, &len))
		virtio_pci_bar_write(vp, bo, len,
				     ld_le32(vp->func.cfg + vp->cfg_cap + VPCI_CFGCAP_DATA));
}

/* ---- construction ---- */

static int vp_vendor_cap(struct pcih_func *f, uint8_t type, uint8_t len, uint32_t off,
			 uint32_t length)
{
	int c = pcih_add_cap(f, PCI_CAP_VENDOR, len);

	if (c < 0)
		return c;
	f->cfg[c + 2] = len;
	f->cfg[c + 3] = type;
	f->cfg[c + 4] = VPCI_BAR;
	st_le32(f->cfg + c + 8, off);
	st_le32(f->cfg + c + 12, length);
	return c;
}

static int vp_caps(struct virtio_pci *vp)
{
	struct pcih_func *f = &vp->func;
	int c, nvec = virtio_pci_vectors(vp);

	c = pcih_add_cap(f, PCI_CAP_MSIX, VPCI_MSIX_CAP_LEN);
	if (c < 0)
		return c;
	vp->msix_cap = (uint8_t)c;
	st_le16(f->cfg + c + 2, (uint16_t)(nvec - 1));
	f->wmask[c + 3] = VPCI_MSIX_ENABLE | VPCI_MSIX_FMASK;
	st_le32(f->cfg + c + 4, VPCI_MSIX_TABLE_OFF | VPCI_BAR);
	st_le32(f->cfg + c + 8, VPCI_MSIX_PBA_OFF | VPCI_BAR);
	if (vp_vendor_cap(f, VIRTIO_PCI_CAP_COMMON, VPCI_CAP_LEN, VPCI_COMMON_OFF,
			  VPCI_COMMON_LEN) < 0)
		return -ENOSPC;
	c = vp_vendor_cap(f, VIRTIO_PCI_CAP_NOTIFY, VPCI_CAP_EXT_LEN, VPCI_NOTIFY_OFF,
			  (uint32_t)vp->nqueues * VPCI_NOTIFY_MULT);
	if (c < 0)
		return c;
	st_le32(f->cfg + c + 16, VPCI_NOTIFY_MULT);
	if (vp_vendor_cap(f, VIRTIO_PCI_CAP_ISR, VPCI_CAP_LEN, VPCI_ISR_OFF, 1) < 0)
		return -ENOSPC;
	if (vp->dev_cfg_len && vp_vendor_cap(f, VIRTIO_PCI_CAP_DEVICE, VPCI_CAP_LEN,
					     VPCI_DEVICE_OFF, vp->dev_cfg_len) < 0)
		return -ENOSPC;
	c = vp_vendor_cap(f, VIRTIO_PCI_CAP_PCI, VPCI_CAP_EXT_LEN, 0, 0);
	if (c < 0)
		return c;
	vp->cfg_cap = (uint8_t)c;
	f->cfg[c + VPCI_CFGCAP_BAR] = 0;
	f->wmask[c + VPCI_CFGCAP_BAR] = 0xff;
	memset(f->wmask + c + VPCI_CFGCAP_OFF, 0xff, 12);	/* offset, length, data */
	return 0;
}

static uint32_t vp_class(uint16_t virtio_id)
{
	switch (virtio_id) {
	case VIRTIO_ID_NET:	return 0x020000;	/* Ethernet controller */
	case VIRTIO_ID_BLOCK:	return 0x010000;	/* SCSI storage (as QEMU) */
	}
	return 0xff0000;				/* unclassified */
}

int virtio_pci_init(struct virtio_pci *vp, uint16_t virtio_id, int nqueues, uint16_t queue_max,
		    uint64_t features, uint32_t dev_cfg_len, const struct virtio_pci_ops *ops,
		    void *dev, void (*msi_send)(void *, uint64_t, uint32_t), void *msi_ctx)
{
	int err;

	memset(vp, 0, sizeof(*vp));
	if (nqueues < 1 || nqueues > VPCI_MAX_QUEUES || !queue_max ||
	    (queue_max & (queue_max - 1)) || dev_cfg_len > VPCI_DEVICE_MAX || !ops || !msi_send ||
	    virtio_id == 0 || virtio_id > 0xffff - VPCI_DEVICE_BASE)
		return -EINVAL;
	vp->virtio_id = virtio_id;
	vp->nqueues = nqueues;
	vp->host_features = features | VIRTIO_F_VERSION_1;
	vp->dev_cfg_len = dev_cfg_len;
	vp->ops = ops;
	vp->dev = dev;
	vp->msi_send = msi_send;
	vp->msi_ctx = msi_ctx;
	pcih_func_init(&vp->func, VPCI_VENDOR, (uint16_t)(VPCI_DEVICE_BASE + virtio_id),
		       vp_class(virtio_id) << 8 | 1, VPCI_VENDOR, virtio_id);
	vp->func.bar[VPCI_BAR].size = VPCI_BAR_SIZE;
	vp->func.bar[VPCI_BAR].flags = PCIH_BAR_MEM64 | PCIH_BAR_PREFETCH;
	vp->func.cfg_written = vp_cfg_written;
	vp->func.cfg_read = vp_cfg_read;
	vp->func.bar_read = vp_bar_read;
	vp->func.bar_write = vp_bar_write;
	vp->func.ctx = vp;
	vp->func.name = virtio_id == VIRTIO_ID_NET ? "virtio-net" :
			virtio_id == VIRTIO_ID_BLOCK ? "virtio-blk" : "virtio";
	err = vp_caps(vp);
	if (err)
		return err;
	for (int i = 0; i < VPCI_MAX_VECTORS; i++)
		vp->msix[i].ctrl = VPCI_MSIX_CTRL_MASKED;	/* PCI 3.0 6.8.2.9 */
	for (int i = 0; i < nqueues; i++)
		vp->q[i].max_size = queue_max;
	vp_reset_state(vp);
	return 0;
}

/* ---- migration ---- */

/*
 * Record layout (VPCI_SAVE_SIZE bytes, little-endian):
 *	0 version, 1 nqueues, 2 virtio_id, 4 status, 5 generation, 6 isr,
 *	7 needs_reset, 8 host features, 16 guest features, 24 dfselect,
 *	28 gfselect, 32 msix_config, 34 queue_select, 36 PBA, 40 dev_cfg_len,
 *	44 reserved, 48 notifies, 56 interrupts, 64 masked, 72 bad_notifies,
 *	80 why[64], 144 queues (8 x 32), 400 MSI-X table (9 x 16).
 */
#define VPCI_REC_Q		144
#define VPCI_REC_QLEN		32
#define VPCI_REC_MSIX		400

static void vp_save_queue(const struct virtio_pci_queue *q, uint8_t *b)
{
	st_le16(b, q->size);
	st_le16(b + 2, q->max_size);
	st_le16(b + 4, q->msix_vector);
	b[6] = q->enabled;
	b[7] = 0;
	st_le64(b + 8, q->desc);
	st_le64(b + 16, q->driver);
	st_le64(b + 24, q->device);
}

int virtio_pci_save(const struct virtio_pci *vp, uint8_t *buf, size_t len)
{
	if (len < VPCI_SAVE_SIZE)
		return -ENOSPC;
	memset(buf, 0, VPCI_SAVE_SIZE);
	buf[0] = VPCI_SAVE_VERSION;
	buf[1] = (uint8_t)vp->nqueues;
	st_le16(buf + 2, vp->virtio_id);
	buf[4] = vp->status;
	buf[5] = vp->config_generation;
	buf[6] = vp->isr;
	buf[7] = vp->needs_reset;
	st_le64(buf + 8, vp->host_features);
	st_le64(buf + 16, vp->guest_features);
	st_le32(buf + 24, vp->dfselect);
	st_le32(buf + 28, vp->gfselect);
	st_le16(buf + 32, vp->msix_config);
	st_le16(buf + 34, vp->queue_select);
	st_le32(buf + 36, vp->msix_pba);
	st_le32(buf + 40, vp->dev_cfg_len);
	st_le64(buf + 48, vp->notifies);
	st_le64(buf + 56, vp->interrupts);
	st_le64(buf + 64, vp->masked);
	st_le64(buf + 72, vp->bad_notifies);
	memcpy(buf + 80, vp->why, sizeof(vp->why));
	for (int i = 0; i < VPCI_MAX_QUEUES; i++)
		vp_save_queue(&vp->q[i], buf + VPCI_REC_Q + VPCI_REC_QLEN * i);
	for (int i = 0; i < VPCI_MAX_VECTORS; i++) {
		uint8_t *b = buf + VPCI_REC_MSIX + VPCI_MSIX_ENTRY * i;

		st_le32(b, vp->msix[i].addr_lo);
		st_le32(b + 4, vp->msix[i].addr_hi);
		st_le32(b + 8, vp->msix[i].data);
		st_le32(b + 12, vp->msix[i].ctrl);
	}
	return VPCI_SAVE_SIZE;
}

static bool vp_is_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Queue i of the record; a queue the device does not have is all zero. */
static bool vp_load_queue(const struct virtio_pci *vp, int i, const uint8_t *b,
			  struct virtio_pci_queue *q)
{
	if (i >= vp->nqueues)
		return vp_is_zero(b, VPCI_REC_QLEN);
	q->size = ld_le16(b);
	q->max_size = ld_le16(b + 2);
	q->msix_vector = ld_le16(b + 4);
	q->enabled = b[6];
	q->desc = ld_le64(b + 8);
	q->driver = ld_le64(b + 16);
	q->device = ld_le64(b + 24);
	return q->max_size == vp->q[i].max_size && q->size && !(q->size & (q->size - 1)) &&
	       q->size <= q->max_size && vp_vector(vp, q->msix_vector) == q->msix_vector &&
	       b[6] <= 1 && !b[7];
}

static bool vp_load_msix(const struct virtio_pci *vp, const uint8_t *buf, struct virtio_pci *c)
{
	for (int i = 0; i < VPCI_MAX_VECTORS; i++) {
		const uint8_t *b = buf + VPCI_REC_MSIX + VPCI_MSIX_ENTRY * i;

		if (i >= virtio_pci_vectors(vp)) {
			if (!vp_is_zero(b, 12) || ld_le32(b + 12) != VPCI_MSIX_CTRL_MASKED)
				return false;
			continue;
		}
		c->msix[i].addr_lo = ld_le32(b);
		c->msix[i].addr_hi = ld_le32(b + 4);
		c->msix[i].data = ld_le32(b + 8);
		c->msix[i].ctrl = ld_le32(b + 12);
		if ((c->msix[i].addr_lo & 3) || c->msix[i].ctrl > VPCI_MSIX_CTRL_MASKED)
			return false;
	}
	return true;
}

/* The header fields: this device's shape, and a state the model can
 * reach (DRIVER_OK only with FEATURES_OK, NEEDS_RESET with needs_reset). */
static bool vp_load_header(const struct virtio_pci *vp, const uint8_t *buf, struct virtio_pci *c)
{
	const uint8_t st_ok = VPCI_STATUS_DRIVER_BITS | VIRTIO_STATUS_NEEDS_RESET;

	c->status = buf[4];
	c->config_generation = buf[5];
	c->isr = buf[6];
	c->needs_reset = buf[7];
	c->guest_features = ld_le64(buf + 16);
	c->dfselect = ld_le32(buf + 24);
	c->gfselect = ld_le32(buf + 28);
	c->msix_config = ld_le16(buf + 32);
	c->queue_select = ld_le16(buf + 34);
	c->msix_pba = ld_le32(buf + 36);
	c->notifies = ld_le64(buf + 48);
	c->interrupts = ld_le64(buf + 56);
	c->masked = ld_le64(buf + 64);
	c->bad_notifies = ld_le64(buf + 72);
	memcpy(c->why, buf + 80, sizeof(c->why));
	if (buf[0] != VPCI_SAVE_VERSION || buf[1] != vp->nqueues ||
	    ld_le16(buf + 2) != vp->virtio_id || ld_le64(buf + 8) != vp->host_features ||
	    ld_le32(buf + 40) != vp->dev_cfg_len || ld_le32(buf + 44))
		return false;
	if ((c->status & ~st_ok) || c->isr > (VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG) ||
	    buf[7] > 1 || c->needs_reset != !!(c->status & VIRTIO_STATUS_NEEDS_RESET))
		return false;
	if ((c->status & VIRTIO_STATUS_DRIVER_OK) && !(c->status & VIRTIO_STATUS_FEATURES_OK))
		return false;
	if ((c->status & VIRTIO_STATUS_FEATURES_OK) && !(c->guest_features & VIRTIO_F_VERSION_1))
		return false;
	return !(c->guest_features & ~vp->host_features) &&
	       vp_vector(vp, c->msix_config) == c->msix_config &&
	       !(c->msix_pba >> virtio_pci_vectors(vp)) && !c->why[sizeof(c->why) - 1];
}

int virtio_pci_load(struct virtio_pci *vp, const uint8_t *buf, size_t len)
{
	struct virtio_pci c = *vp;

	if (len != VPCI_SAVE_SIZE || !vp_load_header(vp, buf, &c) || !vp_load_msix(vp, buf, &c))
		return -EINVAL;
	for (int i = 0; i < VPCI_MAX_QUEUES; i++)
		if (!vp_load_queue(vp, i, buf + VPCI_REC_Q + VPCI_REC_QLEN * i, &c.q[i]))
			return -EINVAL;
	/* c started as *vp: the PCI function (config space, ops) stays as
	 * built, and as pcih_load restored it. */
	*vp = c;
	return 0;
}

static bool vp_ring_matches(const struct virtio_pci *vp, const struct virtio_pci_queue *q,
			    const struct vring *r)
{
	bool ev = vp->guest_features & (1ull << VIRTIO_F_RING_EVENT_IDX);

	return r->size == q->size && r->desc == q->desc && r->avail == q->driver &&
	       r->used == q->device && r->event_idx == ev && !r->broken;
}

bool virtio_pci_rings_match(const struct virtio_pci *vp, const struct vring *vq, bool rings_up)
{
	if (rings_up && !virtio_pci_live(vp))
		return false;
	for (int i = 0; i < vp->nqueues; i++) {
		bool live = rings_up && vp->q[i].enabled;

		/* A queue enabled after DRIVER_OK never got a ring (the
		 * device ignores it): unset is fine for a live one too. */
		if (vq[i].size && (!live || !vp_ring_matches(vp, &vp->q[i], &vq[i])))
			return false;
	}
	return true;
}
