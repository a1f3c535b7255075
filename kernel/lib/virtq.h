/*
 * Virtio 1.x split virtqueue layout and the checks on what a device
 * writes back, plus the virtio PCI capability decoding.  Pure: the driver
 * owns the memory and the device registers.
 *
 * References: Virtual I/O Device (VIRTIO) Version 1.1, sections 2.6 (split
 * virtqueues) and 4.1.4 (virtio structure PCI capabilities).
 */
#ifndef TERN_LIB_VIRTQ_H
#define TERN_LIB_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VIRTQ_DESC_F_NEXT	1
#define VIRTQ_DESC_F_WRITE	2
#define VIRTQ_MAX_SIZE		32768

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

/* Byte offsets of the three parts in one zeroed, page-aligned block:
 * descriptors (16-byte aligned), driver area (2), device area (4),
 * per virtio 1.1 2.6 table "Virtqueue Part Alignment". */
struct virtq_layout {
	size_t desc, avail, used, total;
};

/* -EINVAL unless 1 <= n <= VIRTQ_MAX_SIZE and n is a power of two. */
int virtq_layout(uint32_t n, struct virtq_layout *l);

/*
 * New used entries between the driver's last_seen index and the device's
 * used->idx (both free-running 16-bit counters); -EIO when the device
 * claims more than the queue holds.
 */
int virtq_used_pending(uint16_t last_seen, uint16_t used_idx, uint32_t n);

/* A used element is sane when its id names a descriptor and its length
 * fits the buffer posted there. */
bool virtq_used_ok(const struct virtq_used_elem *e, uint32_t n, uint32_t buf_len);

/* virtio PCI capability cfg_type values (virtio 1.1 4.1.4). */
#define VIRTIO_PCI_CAP_COMMON	1
#define VIRTIO_PCI_CAP_NOTIFY	2
#define VIRTIO_PCI_CAP_ISR	3
#define VIRTIO_PCI_CAP_DEVICE	4
#define VIRTIO_PCI_CAP_PCI	5

struct virtio_pci_cap {
	uint8_t cfg_type, bar;
	uint32_t offset, length;
	uint32_t notify_mult;	/* VIRTIO_PCI_CAP_NOTIFY only */
};

/* Decode the vendor capability at off in a config-space copy; -EINVAL
 * when it is too short, names a BAR above 5, or offset + length wraps. */
int virtio_pci_cap_decode(const uint8_t *cfg, size_t len, uint8_t off,
			  struct virtio_pci_cap *out);

/* True when [offset, offset + need) lies inside a BAR of bar_size bytes. */
bool virtio_region_fits(uint64_t bar_size, uint32_t offset, uint32_t length,
			uint32_t need);

#endif
