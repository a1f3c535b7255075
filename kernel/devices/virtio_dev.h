/*
 * A virtio 1.x PCI device of a VM (kernel/devices/virtio_dev.c): the
 * transport model (model/virtio_pci.c) on the VM's PCI bus, its
 * virtqueues (model/vring.c) over guest memory, and the hooks a back end
 * (storage/vblk_dev.c, net/vnet_dev.c) fills in.
 *
 * Every hook runs, and every virtio_dev_* call is made, with the VM's
 * PCI bus lock held (vpci_lock): the vCPUs touch the same state through
 * their exits.  Guest memory the device writes is marked dirty for a
 * migration (vring_mem.map with write, and again on completion).
 */
#ifndef TERN_DEVICES_VIRTIO_DEV_H
#define TERN_DEVICES_VIRTIO_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kernel/devices/model/virtio_pci.h"
#include "kernel/devices/model/vring.h"

/* Offered with every device (VIRTIO 1.1 6: feature bits 28 and 29). */
#define VIRTIO_DEV_RING_FEATURES	((1ull << VIRTIO_F_RING_INDIRECT_DESC) | \
					 (1ull << VIRTIO_F_RING_EVENT_IDX))

struct virtio_dev;

struct virtio_dev_ops {
	/* A vCPU's exit: the driver kicked queue q (DRIVER_OK, q enabled). */
	void (*notify)(struct virtio_dev *d, uint16_t q);
	/* The driver reset the device (or the device failed): forget the
	 * rings; requests still out complete into nothing (d->epoch). */
	void (*reset)(struct virtio_dev *d);
	void (*driver_ok)(struct virtio_dev *d);
	bool (*features_ok)(struct virtio_dev *d, uint64_t features);
	void (*cfg_read)(struct virtio_dev *d, uint32_t off, void *buf, int size);
	void (*cfg_write)(struct virtio_dev *d, uint32_t off, const void *buf, int size);
};

struct virtio_dev {
	struct vm *vm;
	char name[16];			/* "vda", "net0": for logs and vm info */
	struct virtio_pci vp;
	struct vring vq[VPCI_MAX_QUEUES];
	struct vring_mem mem;
	int slot;			/* PCI device number on bus 0 */
	uint32_t epoch;			/* bumped by each reset */
	bool rings_up;			/* set up at DRIVER_OK */
	const struct virtio_dev_ops *ops;
	void *be;			/* the back end's own state */
	char why[80];			/* why it failed, "" */
	uint32_t fails;			/* times the driver broke it, ever */
};

/* The host log names a device's first few failures, then counts them
 * only (`vm info`): a guest that breaks and resets its rings in a loop
 * must not push everything else out of the log. */
#define VIRTIO_DEV_FAILS_LOGGED	3

/* "driver ready", "no driver yet", the failure, or the driver's FAILED;
 * with the failure count when there were any.  For `vm info`. */
void virtio_dev_state(const struct virtio_dev *d, char *buf, size_t len);

int virtio_dev_init(struct virtio_dev *d, struct vm *vm, const char *name, uint16_t id,
		    int nqueues, uint16_t queue_max, uint64_t features, uint32_t cfg_len,
		    const struct virtio_dev_ops *ops, void *be);
/* Queue q is live: DRIVER_OK, its ring set up and sound. */
bool virtio_dev_ready(const struct virtio_dev *d, uint16_t q);
/* Take the next chain from q: 1, 0 (empty), or < 0 (the ring is bad: the
 * device is failed, the guest must reset it). */
int virtio_dev_pop(struct virtio_dev *d, uint16_t q, struct vring_chain *c);
/* Give a chain back with written bytes; interrupt the driver if it wants. */
void virtio_dev_complete(struct virtio_dev *d, uint16_t q, const struct vring_chain *c,
			 uint32_t written);
/* Stop the device until the driver resets it (DEVICE_NEEDS_RESET). */
void virtio_dev_fail(struct virtio_dev *d, const char *why);
/* A pointer to [gpa, gpa + len) of guest RAM (len <= one 4 KiB page's
 * rest), marking it dirty when write; NULL outside RAM. */
void *virtio_dev_map(void *vm, uint64_t gpa, uint32_t len, bool write);

/* Migration: the transport (virtio_pci_save) and every ring (vring_save)
 * as one record: bytes, or -ENOSPC.  Load checks it all first and
 * leaves d alone on -EINVAL; after a load the rings are live again as
 * the source had them (caller holds the bus lock in both). */
#define VIRTIO_DEV_SAVE_VERSION	1
/* The record's size: header, transport, one ring per queue. */
#define VIRTIO_DEV_SAVE_SIZE(nqueues)	(8 + VPCI_SAVE_SIZE + (nqueues) * VRING_SAVE_SIZE)
int virtio_dev_save(const struct virtio_dev *d, uint8_t *buf, size_t cap);
int virtio_dev_load(struct virtio_dev *d, const uint8_t *buf, size_t len);

#endif
