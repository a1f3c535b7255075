/*
 * The device side of a virtio split virtqueue (Virtual I/O Device (VIRTIO)
 * Version 1.1, section 2.6): take descriptor chains the driver made
 * available, hand them back through the used ring, and decide whether the
 * driver wants an interrupt.  kernel/lib/virtq.c is the other end (Tern's
 * own drivers).
 *
 * Pure: guest memory is reached only through struct vring_mem, which the
 * glue supplies.  The guest is hostile: a malformed ring marks the vring
 * broken (r->why says what) and every later call fails, so the glue can
 * set DEVICE_NEEDS_RESET (2.1.2) instead of trusting anything more.
 * Not thread-safe: the glue holds a lock around every call.
 */
#ifndef TERN_DEVICES_MODEL_VRING_H
#define TERN_DEVICES_MODEL_VRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Descriptor flags (2.6.5) and ring flags (2.6.6, 2.6.8). */
#define VRING_DESC_F_NEXT		1
#define VRING_DESC_F_WRITE		2
#define VRING_DESC_F_INDIRECT		4
#define VRING_AVAIL_F_NO_INTERRUPT	1
#define VRING_USED_F_NO_NOTIFY		1

/* Transport-independent feature bits (6) the glue offers with a vring. */
#define VIRTIO_F_RING_INDIRECT_DESC	28
#define VIRTIO_F_RING_EVENT_IDX		29

#define VRING_MAX_SIZE	32768		/* Queue Size limit (2.6) */

struct vring_mem {   /* guest memory, supplied by the glue */
	/* A host pointer for [gpa, gpa+len) if all of it is guest RAM, else NULL.
	 * len is never more than VRING_MAP_MAX (4096) and never crosses a 4 KiB page
	 * boundary: callers split.  write=true means the device will write there
	 * (the glue marks the page dirty for migration). */
	void *(*map)(void *ctx, uint64_t gpa, uint32_t len, bool write);
	void *ctx;
};
#define VRING_MAP_MAX 4096
#define VRING_MAX_SEGS 260   /* seg_max 254 + header + status + slack */

struct vring_seg { uint64_t gpa; uint32_t len; bool write; };

/* A popped chain: the readable segments first, then the writable ones
 * (vring_pop refuses any other order), zero-length descriptors left out. */
struct vring_chain {
	uint16_t head;
	uint16_t nseg;
	uint32_t rlen, wlen;		/* bytes readable / writable */
	struct vring_seg seg[VRING_MAX_SEGS];
};

struct vring {
	uint16_t size;               /* 0: not set up */
	uint64_t desc, avail, used;  /* guest-physical */
	bool event_idx;              /* VIRTIO_F_EVENT_IDX negotiated */
	uint16_t last_avail, used_idx;
	uint16_t signalled_used; bool signalled_valid;
	bool broken; char why[64];
	uint64_t popped, pushed;
};

/* Size a power of two, 1..32768; desc 16-, avail 2-, used 4-byte aligned
 * (2.6 "Virtqueue Part Alignment"), no part wrapping the address space.
 * Resets the indexes (a queue starts at 0).  -EINVAL leaves *r alone. */
int vring_setup(struct vring *r, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used,
		bool event_idx);

/* 1: a chain was taken into *c; 0: nothing available; -EINVAL: the ring is malformed
 * (r->broken set, r->why says what; every later call returns -EINVAL).
 * With EVENT_IDX, also publishes avail_event = last_avail (2.6.10), so the
 * driver notifies for the next buffer; on "nothing available" it
 * re-checks after publishing, so no notification can be lost. */
int vring_pop(struct vring *r, const struct vring_mem *m, struct vring_chain *c);

/* Return a chain: used elem {head, written}, then used->idx (release order).
 * -EINVAL when broken, not set up, head >= size, or nothing is in flight. */
int vring_push(struct vring *r, const struct vring_mem *m, uint16_t head, uint32_t written);

/* Whether the driver wants an interrupt for what was pushed since the last call
 * (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX, 2.6.7.2 / 2.6.8).
 * False on a broken or unset ring. */
bool vring_need_interrupt(struct vring *r, const struct vring_mem *m);

/* In flight: popped and not yet pushed. */
static inline uint16_t vring_inflight(const struct vring *r)
{
	return (uint16_t)(r->last_avail - r->used_idx);
}

/* Gather/scatter over a chain's readable / writable segments starting at byte off
 * of that direction; return bytes copied (short at the end of the chain) or
 * -EFAULT (a segment left RAM).  len is clamped to INT32_MAX. */
int vring_read(const struct vring_mem *m, const struct vring_chain *c, uint32_t off, void *buf,
	       uint32_t len);
int vring_write(const struct vring_mem *m, const struct vring_chain *c, uint32_t off,
		const void *buf, uint32_t len);

/* Copy guest memory page by page: 0 or -EFAULT.  (Also what vring uses
 * for descriptors, which an indirect table may place across a page.) */
int vring_copy_from(const struct vring_mem *m, uint64_t gpa, void *buf, uint32_t len);
int vring_copy_to(const struct vring_mem *m, uint64_t gpa, const void *buf, uint32_t len);

/* The migration record: VRING_SAVE_SIZE bytes, little-endian, versioned. */
#define VRING_SAVE_VERSION	1
#define VRING_SAVE_SIZE		128
int vring_save(const struct vring *r, uint8_t *buf, size_t len);
int vring_load(struct vring *r, const uint8_t *buf, size_t len);

#endif
