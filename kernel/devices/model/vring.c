/*
 * Device side of a virtio split virtqueue (VIRTIO 1.1, 2.6).  See vring.h.
 *
 * Every guest structure is read through vring_mem one aligned field at a
 * time: a descriptor is 16 bytes at a 16-byte boundary in the ring (but
 * not necessarily in an indirect table, hence the page-splitting copy),
 * avail fields are 2-byte aligned, used elements are written as two
 * 4-byte halves because an 8-byte element at used + 4 + 8 * i can
 * straddle a page when used is only 4-byte aligned.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/vring.h"
#include "kernel/lib/byteorder.h"

#define VR_PAGE		4096u
#define VR_DESC_SIZE	16u

struct vr_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

/* One mapping that stays inside a page and does not wrap. */
static void *vr_map(const struct vring_mem *m, uint64_t gpa, uint32_t len, bool write)
{
	if (!len || len > VRING_MAP_MAX || gpa + len < gpa ||
	    (gpa & (VR_PAGE - 1)) + len > VR_PAGE)
		return NULL;
	return m->map(m->ctx, gpa, len, write);
}

static int vr_copy(const struct vring_mem *m, uint64_t gpa, void *buf, uint32_t len,
		   bool write)
{
	uint8_t *b = buf;

	if (len && gpa + len - 1 < gpa)
		return -EFAULT;
	while (len) {
		uint32_t n = VR_PAGE - (uint32_t)(gpa & (VR_PAGE - 1));
		void *p;

		if (n > len)
			n = len;
		p = vr_map(m, gpa, n, write);
		if (!p)
			return -EFAULT;
		if (write)
			memcpy(p, b, n);
		else
			memcpy(b, p, n);
		b += n;
		gpa += n;
		len -= n;
	}
	return 0;
}

int vring_copy_from(const struct vring_mem *m, uint64_t gpa, void *buf, uint32_t len)
{
	return vr_copy(m, gpa, buf, len, false);
}

int vring_copy_to(const struct vring_mem *m, uint64_t gpa, const void *buf, uint32_t len)
{
	/* vr_copy does not write through buf when write is true. */
	return vr_copy(m, gpa, (void *)(uintptr_t)buf, len, true);
}

static int vr_fail(struct vring *r, const char *why)
{
	size_t n = strlen(why);

	if (n >= sizeof(r->why))
		n = sizeof(r->why) - 1;
	memcpy(r->why, why, n);
	r->why[n] = 0;
	r->broken = true;
	return -EINVAL;
}

/* Part sizes (2.6): descriptors 16 * size; avail flags, idx, ring[size],
 * used_event; used flags, idx, ring[size] of 8 bytes, avail_event. */
static uint64_t vr_desc_bytes(uint16_t size)
{
	return (uint64_t)VR_DESC_SIZE * size;
}

static uint64_t vr_avail_bytes(uint16_t size)
{
	return 6 + 2 * (uint64_t)size;
}

static uint64_t vr_used_bytes(uint16_t size)
{
	return 6 + 8 * (uint64_t)size;
}

static bool vr_fits(uint64_t gpa, uint64_t len)
{
	return gpa + len - 1 >= gpa;
}

static bool vr_layout_ok(uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	if (!size || size > VRING_MAX_SIZE || (size & (size - 1)))
		return false;
	if ((desc & 15) || (avail & 1) || (used & 3))
		return false;
	return vr_fits(desc, vr_desc_bytes(size)) && vr_fits(avail, vr_avail_bytes(size)) &&
	       vr_fits(used, vr_used_bytes(size));
}

int vring_setup(struct vring *r, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used,
		bool event_idx)
{
	if (!vr_layout_ok(size, desc, avail, used))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->size = size;
	r->desc = desc;
	r->avail = avail;
	r->used = used;
	r->event_idx = event_idx;
	return 0;
}

/* ---- ring fields ---- */

static uint16_t vr_le16(uint16_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return __builtin_bswap16(v);
#else
	return v;
#endif
}

/* avail->idx with acquire ordering: the ring entries and descriptors the
 * driver wrote before publishing it are read after (2.6.13.3). */
static int vr_avail_idx(struct vring *r, const struct vring_mem *m, uint16_t *idx)
{
	uint16_t *p = vr_map(m, r->avail + 2, 2, false);

	if (!p)
		return vr_fail(r, "avail ring not in RAM");
	*idx = vr_le16(__atomic_load_n(p, __ATOMIC_ACQUIRE));
	return 0;
}

static int vr_ld16(struct vring *r, const struct vring_mem *m, uint64_t gpa, uint16_t *v,
		   const char *why)
{
	uint8_t *p = vr_map(m, gpa, 2, false);

	if (!p)
		return vr_fail(r, why);
	*v = ld_le16(p);
	return 0;
}

/* avail_event, at used->ring[size] (2.6.8, 2.6.10). */
static int vr_set_avail_event(struct vring *r, const struct vring_mem *m)
{
	uint8_t *p = vr_map(m, r->used + 4 + 8 * (uint64_t)r->size, 2, true);

	if (!p)
		return vr_fail(r, "used ring not in RAM");
	st_le16(p, r->last_avail);
	return 0;
}

static int vr_read_desc(struct vring *r, const struct vring_mem *m, uint64_t gpa,
			struct vr_desc *d)
{
	uint8_t raw[VR_DESC_SIZE];

	if (vring_copy_from(m, gpa, raw, sizeof(raw)))
		return vr_fail(r, "descriptor not in RAM");
	d->addr = ld_le64(raw);
	d->len = ld_le32(raw + 8);
	d->flags = ld_le16(raw + 12);
	d->next = ld_le16(raw + 14);
	return 0;
}

/* ---- chain walk ---- */

struct vr_walk {
	uint64_t table;		/* the descriptor table being followed */
	uint32_t tsize;		/* its entries */
	uint32_t count;		/* descriptors taken from it (loop bound) */
	bool indirect, seen_write;
};

/* An indirect descriptor (2.6.5.3): not nested, not chained on (2.6.5.3.1:
 * the driver MUST NOT set NEXT with INDIRECT), a whole number of
 * descriptors, at least one, no more than a queue can hold. */
static int vr_enter_indirect(struct vring *r, struct vr_walk *w, const struct vr_desc *d)
{
	if (w->indirect)
		return vr_fail(r, "nested indirect descriptor");
	if (d->flags & VRING_DESC_F_NEXT)
		return vr_fail(r, "indirect descriptor with NEXT");
	if (!d->len || d->len % VR_DESC_SIZE || d->len / VR_DESC_SIZE > VRING_MAX_SIZE)
		return vr_fail(r, "bad indirect table length");
	if (!vr_fits(d->addr, d->len))
		return vr_fail(r, "indirect table wraps");
	w->table = d->addr;
	w->tsize = d->len / VR_DESC_SIZE;
	w->count = 0;
	w->indirect = true;
	return 0;
}

/* Both ends of a buffer must be RAM; pages between are checked when the
 * data moves (vring_read/vring_write return -EFAULT), so that a 4 GiB
 * descriptor does not cost a million lookups per pop. */
static bool vr_buf_in_ram(const struct vring_mem *m, uint64_t gpa, uint32_t len)
{
	uint64_t last = gpa + len - 1;

	if (last < gpa)
		return false;
	return vr_map(m, gpa, 1, false) && vr_map(m, last, 1, false);
}

static int vr_add_seg(struct vring *r, const struct vring_mem *m, struct vr_walk *w,
		      struct vring_chain *c, const struct vr_desc *d)
{
	bool wr = d->flags & VRING_DESC_F_WRITE;
	uint32_t *tot = wr ? &c->wlen : &c->rlen;

	if (!d->len)
		return 0;	/* allowed, carries nothing */
	if (wr)
		w->seen_write = true;
	else if (w->seen_write)		/* 2.6.4.2: writable ones come last */
		return vr_fail(r, "readable descriptor after a writable one");
	if (*tot + d->len < *tot)
		return vr_fail(r, "chain length overflows 32 bits");
	if (c->nseg >= VRING_MAX_SEGS)
		return vr_fail(r, "chain has too many segments");
	if (!vr_buf_in_ram(m, d->addr, d->len))
		return vr_fail(r, "buffer not in RAM");
	*tot += d->len;
	c->seg[c->nseg].gpa = d->addr;
	c->seg[c->nseg].len = d->len;
	c->seg[c->nseg].write = wr;
	c->nseg++;
	return 0;
}

static int vr_walk_chain(struct vring *r, const struct vring_mem *m, uint16_t head,
			 struct vring_chain *c)
{
	struct vr_walk w = { .table = r->desc, .tsize = r->size };
	uint32_t idx = head;
	struct vr_desc d;
	int rc;

	c->head = head;
	c->nseg = 0;
	c->rlen = c->wlen = 0;
	for (;;) {
		if (idx >= w.tsize)
			return vr_fail(r, "descriptor index out of range");
		if (++w.count > w.tsize)
			return vr_fail(r, "descriptor chain loops");
		rc = vr_read_desc(r, m, w.table + VR_DESC_SIZE * (uint64_t)idx, &d);
		if (rc)
			return rc;
		if (d.flags & VRING_DESC_F_INDIRECT) {
			rc = vr_enter_indirect(r, &w, &d);
			if (rc)
				return rc;
			idx = 0;
			continue;
		}
		rc = vr_add_seg(r, m, &w, c, &d);
		if (rc)
			return rc;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		idx = d.next;
	}
}

static int vr_available(struct vring *r, const struct vring_mem *m, uint16_t *n)
{
	uint16_t idx;
	int rc = vr_avail_idx(r, m, &idx);

	if (rc)
		return rc;
	*n = (uint16_t)(idx - r->last_avail);
	if (*n > r->size)
		return vr_fail(r, "avail idx moved by more than the queue size");
	return 0;
}

int vring_pop(struct vring *r, const struct vring_mem *m, struct vring_chain *c)
{
	uint16_t n, head;
	int rc;

	if (r->broken)
		return -EINVAL;
	if (!r->size)
		return 0;
	rc = vr_available(r, m, &n);
	if (!rc && !n && r->event_idx) {
		/* Ask for a notification, then look again: a buffer made
		 * available before the driver saw avail_event would else
		 * sit unnoticed (the full barrier orders our store before
		 * the reload, 2.6.10). */
		rc = vr_set_avail_event(r, m);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (!rc)
			rc = vr_available(r, m, &n);
	}
	if (rc || !n)
		return rc;
	rc = vr_ld16(r, m, r->avail + 4 + 2 * (uint64_t)(r->last_avail & (r->size - 1)), &head,
		     "avail ring not in RAM");
	if (rc)
		return rc;
	if (head >= r->size)
		return vr_fail(r, "avail ring names a head out of range");
	rc = vr_walk_chain(r, m, head, c);
	if (rc)
		return rc;
	r->last_avail++;
	r->popped++;
	if (r->event_idx)
		return vr_set_avail_event(r, m) ? -EINVAL : 1;
	return 1;
}

int vring_push(struct vring *r, const struct vring_mem *m, uint16_t head, uint32_t written)
{
	uint64_t e;
	uint8_t *id, *len;
	uint16_t *idx;

	if (r->broken || !r->size || head >= r->size || !vring_inflight(r))
		return -EINVAL;
	e = r->used + 4 + 8 * (uint64_t)(r->used_idx & (r->size - 1));
	id = vr_map(m, e, 4, true);
	len = vr_map(m, e + 4, 4, true);
	idx = vr_map(m, r->used + 2, 2, true);
	if (!id || !len || !idx)
		return vr_fail(r, "used ring not in RAM");
	st_le32(id, head);
	st_le32(len, written);
	r->used_idx++;
	r->pushed++;
	/* Release: the element is visible before the index that covers it
	 * (2.6.8, 2.6.14). */
	__atomic_store_n(idx, vr_le16(r->used_idx), __ATOMIC_RELEASE);
	return 0;
}

/* 2.6.7.2 with EVENT_IDX: interrupt when used_idx passed used_event since
 * the last interrupt, i.e. used_event lies in [old, new). */
static bool vr_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool vring_need_interrupt(struct vring *r, const struct vring_mem *m)
{
	uint16_t old = r->signalled_used, v;
	bool valid = r->signalled_valid;
	uint64_t at;

	if (r->broken || !r->size)
		return false;
	/* The used->idx store must be globally visible before the driver's
	 * suppression field is read, or both sides may skip the interrupt. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	r->signalled_used = r->used_idx;
	r->signalled_valid = true;
	if (valid && old == r->used_idx)
		return false;		/* nothing new */
	at = r->event_idx ? r->avail + 4 + 2 * (uint64_t)r->size : r->avail;
	v = 0;
	if (vr_ld16(r, m, at, &v, "avail ring not in RAM"))
		return false;
	if (!r->event_idx)
		return !(v & VRING_AVAIL_F_NO_INTERRUPT);
	return !valid || vr_need_event(v, r->used_idx, old);
}

/* ---- data ---- */

static int vr_xfer(const struct vring_mem *m, const struct vring_chain *c, uint32_t off,
		   uint8_t *buf, uint32_t len, bool write)
{
	uint32_t done = 0;

	if (len > INT32_MAX)
		len = INT32_MAX;
	for (uint16_t i = 0; i < c->nseg && i < VRING_MAX_SEGS && done < len; i++) {
		const struct vring_seg *s = &c->seg[i];
		uint32_t n;

		if (s->write != write)
			continue;
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		n = s->len - off;
		if (n > len - done)
			n = len - done;
		if (vr_copy(m, s->gpa + off, buf + done, n, write))
			return -EFAULT;
		done += n;
		off = 0;
	}
	return (int)done;
}

int vring_read(const struct vring_mem *m, const struct vring_chain *c, uint32_t off, void *buf,
	       uint32_t len)
{
	return vr_xfer(m, c, off, buf, len, false);
}

int vring_write(const struct vring_mem *m, const struct vring_chain *c, uint32_t off,
		const void *buf, uint32_t len)
{
	return vr_xfer(m, c, off, (uint8_t *)(uintptr_t)buf, len, true);
}

/* ---- migration record ----
 *	0	version		1	flags: event_idx, signalled_valid, broken
 *	2	size		4	last_avail
 *	6	used_idx	8	signalled_used
 *	10..15	zero		16	desc
 *	24	avail		32	used
 *	40	popped		48	pushed
 *	56..63	zero
 *	64..127	why, NUL-terminated, zero after the NUL
 */
static size_t vr_strnlen(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n])
		n++;
	return n;
}

#define VR_REC_EVENT_IDX	1u
#define VR_REC_SIG_VALID	2u
#define VR_REC_BROKEN		4u

int vring_save(const struct vring *r, uint8_t *buf, size_t len)
{
	size_t n = vr_strnlen(r->why, sizeof(r->why) - 1);

	if (len < VRING_SAVE_SIZE)
		return -ENOSPC;
	memset(buf, 0, VRING_SAVE_SIZE);
	buf[0] = VRING_SAVE_VERSION;
	buf[1] = (uint8_t)((r->event_idx ? VR_REC_EVENT_IDX : 0) |
			   (r->signalled_valid ? VR_REC_SIG_VALID : 0) |
			   (r->broken ? VR_REC_BROKEN : 0));
	st_le16(buf + 2, r->size);
	st_le16(buf + 4, r->last_avail);
	st_le16(buf + 6, r->used_idx);
	st_le16(buf + 8, r->signalled_used);
	st_le64(buf + 16, r->desc);
	st_le64(buf + 24, r->avail);
	st_le64(buf + 32, r->used);
	st_le64(buf + 40, r->popped);
	st_le64(buf + 48, r->pushed);
	memcpy(buf + 64, r->why, n);
	return VRING_SAVE_SIZE;
}

static bool vr_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* why: a string, then only zeroes, and empty exactly when not broken. */
static bool vr_why_ok(const uint8_t *w, bool broken)
{
	size_t n = vr_strnlen((const char *)w, 64);

	return n < 64 && vr_zero(w + n, 64 - n) && (n != 0) == broken;
}

int vring_load(struct vring *r, const uint8_t *buf, size_t len)
{
	struct vring c;

	if (len != VRING_SAVE_SIZE || buf[0] != VRING_SAVE_VERSION ||
	    (buf[1] & ~(VR_REC_EVENT_IDX | VR_REC_SIG_VALID | VR_REC_BROKEN)) ||
	    !vr_zero(buf + 10, 6) || !vr_zero(buf + 56, 8))
		return -EINVAL;
	memset(&c, 0, sizeof(c));
	c.event_idx = buf[1] & VR_REC_EVENT_IDX;
	c.signalled_valid = buf[1] & VR_REC_SIG_VALID;
	c.broken = buf[1] & VR_REC_BROKEN;
	c.size = ld_le16(buf + 2);
	c.last_avail = ld_le16(buf + 4);
	c.used_idx = ld_le16(buf + 6);
	c.signalled_used = ld_le16(buf + 8);
	c.desc = ld_le64(buf + 16);
	c.avail = ld_le64(buf + 24);
	c.used = ld_le64(buf + 32);
	c.popped = ld_le64(buf + 40);
	c.pushed = ld_le64(buf + 48);
	if (!vr_why_ok(buf + 64, c.broken) || c.pushed > c.popped)
		return -EINVAL;
	memcpy(c.why, buf + 64, sizeof(c.why));
	if (!c.size) {
		/* Not set up: nothing else may be set but the counters. */
		if (c.desc || c.avail || c.used || c.last_avail || c.used_idx ||
		    c.signalled_used || buf[1])
			return -EINVAL;
	} else if (!vr_layout_ok(c.size, c.desc, c.avail, c.used) ||
		   vring_inflight(&c) > c.size) {
		return -EINVAL;
	}
	*r = c;
	return 0;
}
