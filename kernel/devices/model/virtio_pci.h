/*
 * The virtio 1.x PCI transport ("modern" virtio-pci, VIRTIO 1.1 section
 * 4.1): PCI identity, the vendor capabilities, one 64-bit prefetchable
 * memory BAR 4 with the common configuration, ISR, device configuration,
 * notification region and the MSI-X table and PBA, plus feature
 * negotiation, queue set-up rules, reset and MSI-X delivery.
 *
 * Pure: the device (virtio-blk, virtio-net) supplies its configuration
 * space and reacts to kicks through ops; interrupts leave through
 * msi_send.  The driver is a guest and is never trusted: every rule of
 * 4.1.4.3.2 the device can enforce, it enforces by ignoring the write.
 *
 * BAR 4 layout (VPCI_BAR_SIZE bytes):
 *	0x0000	common configuration (4.1.4.3)
 *	0x1000	ISR status (4.1.4.5), read clears
 *	0x2000	device-specific configuration (4.1.4.6), dev_cfg_len bytes
 *	0x3000	notifications (4.1.4.4), queue q at 4 * q
 *	0x4000	MSI-X table (PCI 3.0 6.8.2), 16 bytes per vector
 *	0x5000	MSI-X pending bit array
 */
#ifndef TERN_DEVICES_MODEL_VIRTIO_PCI_H
#define TERN_DEVICES_MODEL_VIRTIO_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kernel/devices/model/pci_host.h"
#include "kernel/devices/model/vring.h"

#define VPCI_MAX_QUEUES		8
#define VPCI_MAX_VECTORS	9	/* config + one per queue */
#define VPCI_BAR		4
#define VPCI_BAR_SIZE		0x8000u
#define VPCI_COMMON_OFF		0x0000u
#define VPCI_COMMON_LEN		0x38u
#define VPCI_ISR_OFF		0x1000u
#define VPCI_DEVICE_OFF		0x2000u
#define VPCI_DEVICE_MAX		0x1000u
#define VPCI_NOTIFY_OFF		0x3000u
#define VPCI_NOTIFY_MULT	4u
#define VPCI_MSIX_TABLE_OFF	0x4000u
#define VPCI_MSIX_PBA_OFF	0x5000u

#define VPCI_VENDOR		0x1af4
#define VPCI_DEVICE_BASE	0x1040	/* + virtio device id (4.1.2) */
#define VIRTIO_ID_NET		1
#define VIRTIO_ID_BLOCK		2

#define VIRTIO_F_VERSION_1	(1ull << 32)
#define VIRTIO_MSI_NO_VECTOR	0xffffu

/* device_status bits (2.1) */
#define VIRTIO_STATUS_ACKNOWLEDGE	0x01
#define VIRTIO_STATUS_DRIVER		0x02
#define VIRTIO_STATUS_DRIVER_OK		0x04
#define VIRTIO_STATUS_FEATURES_OK	0x08
#define VIRTIO_STATUS_NEEDS_RESET	0x40
#define VIRTIO_STATUS_FAILED		0x80

/* ISR status bits (4.1.4.5) */
#define VIRTIO_ISR_QUEUE	0x1
#define VIRTIO_ISR_CONFIG	0x2

/* Common configuration field offsets (4.1.4.3). */
#define VPCI_CC_DFSELECT	0x00
#define VPCI_CC_DF		0x04
#define VPCI_CC_GFSELECT	0x08
#define VPCI_CC_GF		0x0c
#define VPCI_CC_MSIX_CONFIG	0x10
#define VPCI_CC_NUM_QUEUES	0x12
#define VPCI_CC_STATUS		0x14
#define VPCI_CC_GENERATION	0x15
#define VPCI_CC_Q_SELECT	0x16
#define VPCI_CC_Q_SIZE		0x18
#define VPCI_CC_Q_MSIX		0x1a
#define VPCI_CC_Q_ENABLE	0x1c
#define VPCI_CC_Q_NOTIFY_OFF	0x1e
#define VPCI_CC_Q_DESC		0x20
#define VPCI_CC_Q_DRIVER	0x28
#define VPCI_CC_Q_DEVICE	0x30

struct virtio_pci_ops {
	void (*cfg_read)(void *dev, uint32_t off, void *buf, int size);	/* device config */
	void (*cfg_write)(void *dev, uint32_t off, const void *buf, int size);
	void (*queue_notify)(void *dev, uint16_t q);	/* only when DRIVER_OK and q enabled */
	bool (*features_ok)(void *dev, uint64_t features);	/* may refuse a combination */
	void (*driver_ok)(void *dev);
	void (*reset)(void *dev);	/* driver wrote 0 to device_status */
};

struct virtio_pci_queue {
	uint16_t size, max_size, msix_vector;
	bool enabled;
	uint64_t desc, driver, device;
};

struct virtio_pci {
	struct pcih_func func;
	uint16_t virtio_id;		/* 1 net, 2 block (5 Device Types) */
	uint64_t host_features, guest_features;
	uint32_t dfselect, gfselect;
	uint16_t msix_config, queue_select;
	uint8_t status, config_generation, isr;
	int nqueues;
	struct virtio_pci_queue q[VPCI_MAX_QUEUES];
	struct { uint32_t addr_lo, addr_hi, data, ctrl; } msix[VPCI_MAX_VECTORS];
	uint32_t msix_pba;
	bool needs_reset;
	char why[64];
	uint32_t dev_cfg_len;
	const struct virtio_pci_ops *ops;
	void *dev;
	void (*msi_send)(void *ctx, uint64_t addr, uint32_t data);
	void *msi_ctx;
	/* counters for vm info */
	uint64_t notifies, interrupts, masked;
	uint64_t bad_notifies;		/* kicks ignored: queue off, not DRIVER_OK */
	uint8_t msix_cap, cfg_cap;	/* config-space offsets of the caps */
};

/*
 * Build the PCI function (IDs, caps, BAR 4) and reset the device.
 * VIRTIO_F_VERSION_1 is always offered.  -EINVAL for nqueues outside
 * 1..VPCI_MAX_QUEUES, queue_max not a power of two in 1..32768,
 * dev_cfg_len above VPCI_DEVICE_MAX, a missing op or msi_send.  Register
 * vp->func with pcih_add afterwards.
 */
int virtio_pci_init(struct virtio_pci *vp, uint16_t virtio_id, int nqueues, uint16_t queue_max,
		    uint64_t features, uint32_t dev_cfg_len, const struct virtio_pci_ops *ops,
		    void *dev, void (*msi_send)(void *, uint64_t, uint32_t), void *msi_ctx);

/* Number of MSI-X table entries (nqueues + 1). */
int virtio_pci_vectors(const struct virtio_pci *vp);

/* The device reset the driver triggers by writing 0 to device_status;
 * also for the glue on a VM reset.  The MSI-X table is PCI state and
 * survives (its pending bits do not). */
void virtio_pci_reset(struct virtio_pci *vp);

void virtio_pci_interrupt_queue(struct virtio_pci *vp, uint16_t q);	/* used buffers on q */
void virtio_pci_interrupt_config(struct virtio_pci *vp);	/* config changed: generation++ */
void virtio_pci_fail(struct virtio_pci *vp, const char *why);	/* NEEDS_RESET + config irq */
bool virtio_pci_live(const struct virtio_pci *vp);	/* DRIVER_OK set, not failed */

/* BAR 4 accesses (also reachable through pcih_mmio_read/write). */
int virtio_pci_bar_read(struct virtio_pci *vp, uint64_t off, int size, uint64_t *val);
int virtio_pci_bar_write(struct virtio_pci *vp, uint64_t off, int size, uint64_t val);

/*
 * Migration record of the transport state (fixed size, little-endian,
 * version byte first).  Config space (COMMAND, BARs, MSI-X enable) is in
 * the host's record (pcih_save).  Load checks every field against this
 * device's shape (id, queues, features, config length) and leaves *vp
 * alone on -EINVAL.
 */
#define VPCI_SAVE_VERSION	1
#define VPCI_SAVE_SIZE		544
/* Returns the bytes written or -ENOSPC. */
int virtio_pci_save(const struct virtio_pci *vp, uint8_t *buf, size_t len);
int virtio_pci_load(struct virtio_pci *vp, const uint8_t *buf, size_t len);

/*
 * Whether loaded rings vq[0..nqueues) agree with the loaded transport
 * (a migration record of a whole device, kernel/devices/virtio_dev.c):
 * rings_up only while the driver is live (DRIVER_OK, no NEEDS_RESET), and
 * then each enabled queue's ring sits where the transport says with its
 * size and EVENT_IDX as negotiated, unbroken, or is not set up (enabled
 * after DRIVER_OK: the device ignores it); every other ring, and every
 * ring while !rings_up, is not set up (size 0).  Reads fields only.
 */
bool virtio_pci_rings_match(const struct virtio_pci *vp, const struct vring *vq, bool rings_up);

#endif
