/*
 * Virtio PCI devices of a VM: the transport and virtqueue models tied to
 * the VM's bus, memory and interrupts (see virtio_dev.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/kernel.h"
#include "kernel/devices/virtio_dev.h"
#include "kernel/devices/vpci.h"
#include "kernel/virt/vm.h"

#define PAGE	4096u

void *virtio_dev_map(void *ctx, uint64_t gpa, uint32_t len, bool write)
{
	struct vm *vm = ctx;
	void *p;

	if (!len || len > PAGE - gpa % PAGE)
		return NULL;
	p = vm_gpa_to_hva(vm, gpa, len);
	/* Marked before the write as well as after it (virtio_dev_complete):
	 * a harvest between the two sends the page twice, never too early
	 * only. */
	if (p && write && vm->dirty_mode != DIRTY_OFF)
		dirtymap_mark(&vm->dirty, gpa);
	return p;
}

/* The first written bytes of the chain's writable part: what the device
 * put there (VIRTIO 1.1 2.6.8: the used length), no more. */
static void vd_mark_chain(struct virtio_dev *d, const struct vring_chain *c, uint32_t written)
{
	struct vm *vm = d->vm;

	if (vm->dirty_mode == DIRTY_OFF)
		return;
	for (uint16_t i = 0; i < c->nseg && written; i++) {
		const struct vring_seg *s = &c->seg[i];
		uint32_t n = s->len < written ? s->len : written;

		if (!s->write || !n)
			continue;
		written -= n;
		for (uint64_t g = s->gpa & ~(uint64_t)(PAGE - 1); g < s->gpa + n; g += PAGE)
			if (g < vm->mem_size)
				dirtymap_mark(&vm->dirty, g);
	}
}

/* ---- the transport's hooks ---- */

static void vd_cfg_read(void *dev, uint32_t off, void *buf, int size)
{
	struct virtio_dev *d = dev;

	if (d->ops->cfg_read)
		d->ops->cfg_read(d, off, buf, size);
	else
		memset(buf, 0, (size_t)size);
}

static void vd_cfg_write(void *dev, uint32_t off, const void *buf, int size)
{
	struct virtio_dev *d = dev;

	if (d->ops->cfg_write)
		d->ops->cfg_write(d, off, buf, size);
}

static void vd_queue_notify(void *dev, uint16_t q)
{
	struct virtio_dev *d = dev;

	if (virtio_dev_ready(d, q))
		d->ops->notify(d, q);
}

static bool vd_features_ok(void *dev, uint64_t features)
{
	struct virtio_dev *d = dev;

	return !d->ops->features_ok || d->ops->features_ok(d, features);
}

static void vd_rings_down(struct virtio_dev *d)
{
	memset(d->vq, 0, sizeof(d->vq));
	d->rings_up = false;
	d->epoch++;
}

/* DRIVER_OK (VIRTIO 1.1 3.1.1 step 8): the queues the driver enabled are
 * live from here on; a bad ring address fails the device now. */
static void vd_driver_ok(void *dev)
{
	struct virtio_dev *d = dev;
	bool ev = d->vp.guest_features & (1ull << VIRTIO_F_RING_EVENT_IDX);

	vd_rings_down(d);
	for (int i = 0; i < d->vp.nqueues; i++) {
		const struct virtio_pci_queue *q = &d->vp.q[i];

		if (!q->enabled)
			continue;
		if (vring_setup(&d->vq[i], q->size, q->desc, q->driver, q->device, ev) < 0) {
			char why[64];

			snprintf(why, sizeof(why), "queue %d: bad ring layout", i);
			virtio_dev_fail(d, why);
			return;
		}
	}
	d->rings_up = true;
	d->why[0] = '\0';
	if (d->ops->driver_ok)
		d->ops->driver_ok(d);
}

static void vd_reset(void *dev)
{
	struct virtio_dev *d = dev;

	vd_rings_down(d);
	d->why[0] = '\0';
	if (d->ops->reset)
		d->ops->reset(d);
}

static void vd_msi_send(void *ctx, uint64_t addr, uint32_t data)
{
	vpci_msi(ctx, addr, data);
}

static const struct virtio_pci_ops vd_pci_ops = {
	.cfg_read = vd_cfg_read,
	.cfg_write = vd_cfg_write,
	.queue_notify = vd_queue_notify,
	.features_ok = vd_features_ok,
	.driver_ok = vd_driver_ok,
	.reset = vd_reset,
};

/* ---- for the back ends ---- */

int virtio_dev_init(struct virtio_dev *d, struct vm *vm, const char *name, uint16_t id,
		    int nqueues, uint16_t queue_max, uint64_t features, uint32_t cfg_len,
		    const struct virtio_dev_ops *ops, void *be)
{
	int rc;

	memset(d, 0, sizeof(*d));
	d->vm = vm;
	strncpy(d->name, name, sizeof(d->name) - 1);
	d->ops = ops;
	d->be = be;
	d->mem = (struct vring_mem){ virtio_dev_map, vm };
	features |= VIRTIO_DEV_RING_FEATURES;
	rc = virtio_pci_init(&d->vp, id, nqueues, queue_max, features, cfg_len, &vd_pci_ops, d,
			     vd_msi_send, vm);
	if (rc < 0)
		return rc;
	rc = vpci_add(vm, &d->vp.func);
	if (rc < 0)
		return rc;
	d->slot = rc;
	return 0;
}

bool virtio_dev_ready(const struct virtio_dev *d, uint16_t q)
{
	return d->rings_up && q < d->vp.nqueues && d->vq[q].size && !d->vq[q].broken &&
	       virtio_pci_live(&d->vp);
}

int virtio_dev_pop(struct virtio_dev *d, uint16_t q, struct vring_chain *c)
{
	int rc;

	if (!virtio_dev_ready(d, q))
		return 0;
	rc = vring_pop(&d->vq[q], &d->mem, c);
	if (rc < 0) {
		char why[80];

		snprintf(why, sizeof(why), "queue %u: %s", q, d->vq[q].why);
		virtio_dev_fail(d, why);
	}
	return rc;
}

void virtio_dev_complete(struct virtio_dev *d, uint16_t q, const struct vring_chain *c,
			 uint32_t written)
{
	if (!virtio_dev_ready(d, q))
		return;
	vd_mark_chain(d, c, written);
	if (vring_push(&d->vq[q], &d->mem, c->head, written) < 0) {
		virtio_dev_fail(d, "used ring outside guest RAM");
		return;
	}
	/* The used ring is guest memory the device wrote too: the element
	 * just pushed (8 bytes, maybe across a page) and used->idx. */
	if (d->vm->dirty_mode != DIRTY_OFF) {
		const struct vring *r = &d->vq[q];
		uint64_t elem = r->used + 4 + 8ull * ((uint16_t)(r->used_idx - 1) % r->size);

		dirtymap_mark(&d->vm->dirty, r->used + 2);
		dirtymap_mark(&d->vm->dirty, elem);
		dirtymap_mark(&d->vm->dirty, elem + 7);
	}
	if (vring_need_interrupt(&d->vq[q], &d->mem))
		virtio_pci_interrupt_queue(&d->vp, q);
}

void virtio_dev_fail(struct virtio_dev *d, const char *why)
{
	if (d->why[0])
		return;			/* said once until the driver resets it */
	snprintf(d->why, sizeof(d->why), "%s", why);
	if (++d->fails <= VIRTIO_DEV_FAILS_LOGGED)
		pr_warn("vm %s: %s: %s; the device stays stopped until the guest resets it%s",
			d->vm->name, d->name, why, d->fails == VIRTIO_DEV_FAILS_LOGGED ?
			" (later failures are counted in vm info, not logged)" : "");
	d->rings_up = false;
	d->epoch++;
	virtio_pci_fail(&d->vp, why);
	if (d->ops->reset)
		d->ops->reset(d);
}

void virtio_dev_state(const struct virtio_dev *d, char *buf, size_t len)
{
	const char *st = d->why[0] ? d->why :
			 (d->vp.status & VIRTIO_STATUS_FAILED) ? "the driver gave up on it (FAILED)" :
			 virtio_pci_live(&d->vp) ? "driver ready" : "no driver yet";

	if (d->fails)
		snprintf(buf, len, "%s; ring failures %u", st, d->fails);
	else
		snprintf(buf, len, "%s", st);
}

/* ---- migration ---- */

/*
 * The record (little-endian):
 *	0	u8	VIRTIO_DEV_SAVE_VERSION
 *	1	u8	nqueues (this device's shape: refused if it differs)
 *	2	u8	flags: bit 0 rings_up
 *	3	5 zero bytes
 *	8	the transport, virtio_pci_save (VPCI_SAVE_SIZE)
 *	552	nqueues rings, vring_save (VRING_SAVE_SIZE each); a ring that
 *		is not live (rings down, queue disabled) as an unset one
 * The failure text and count stay with the host that saw them; a device
 * that was failed arrives failed (NEEDS_RESET is the transport's).
 */
#define VD_REC_HDR	8
#define VD_REC_UP	0x01

static size_t vd_rec_size(const struct virtio_dev *d)
{
	return VIRTIO_DEV_SAVE_SIZE((size_t)d->vp.nqueues);
}

int virtio_dev_save(const struct virtio_dev *d, uint8_t *buf, size_t cap)
{
	static const struct vring down;
	size_t p = VD_REC_HDR + VPCI_SAVE_SIZE;

	if (cap < vd_rec_size(d))
		return -ENOSPC;
	memset(buf, 0, VD_REC_HDR);
	buf[0] = VIRTIO_DEV_SAVE_VERSION;
	buf[1] = (uint8_t)d->vp.nqueues;
	buf[2] = d->rings_up ? VD_REC_UP : 0;
	if (virtio_pci_save(&d->vp, buf + VD_REC_HDR, VPCI_SAVE_SIZE) < 0)
		return -ENOSPC;
	for (int i = 0; i < d->vp.nqueues; i++, p += VRING_SAVE_SIZE) {
		bool live = d->rings_up && d->vp.q[i].enabled;

		/* A failed device keeps its old rings until the reset; they
		 * are dead and go as unset. */
		if (vring_save(live ? &d->vq[i] : &down, buf + p, VRING_SAVE_SIZE) < 0)
			return -ENOSPC;
	}
	return (int)p;
}

/* Checked copies, then committed: the boot CPU's main loop is the only
 * caller (migrate/), so one static copy of the transport is enough and
 * keeps a 1.3 KiB struct off the stack. */
static struct virtio_pci vd_load_vp;
static struct vring vd_load_vq[VPCI_MAX_QUEUES];

int virtio_dev_load(struct virtio_dev *d, const uint8_t *buf, size_t len)
{
	size_t p = VD_REC_HDR + VPCI_SAVE_SIZE;
	bool up;

	if (len != vd_rec_size(d) || buf[0] != VIRTIO_DEV_SAVE_VERSION ||
	    buf[1] != d->vp.nqueues || (buf[2] & ~VD_REC_UP) || buf[3] || buf[4] || buf[5] ||
	    buf[6] || buf[7])
		return -EINVAL;
	up = buf[2] & VD_REC_UP;
	vd_load_vp = d->vp;
	if (virtio_pci_load(&vd_load_vp, buf + VD_REC_HDR, VPCI_SAVE_SIZE) < 0)
		return -EINVAL;
	memset(vd_load_vq, 0, sizeof(vd_load_vq));
	for (int i = 0; i < d->vp.nqueues; i++, p += VRING_SAVE_SIZE)
		if (vring_load(&vd_load_vq[i], buf + p, VRING_SAVE_SIZE) < 0)
			return -EINVAL;
	if (!virtio_pci_rings_match(&vd_load_vp, vd_load_vq, up))
		return -EINVAL;
	/* The rings are live at the same guest addresses with the source's
	 * indexes (the guest's RAM came over with them): the next pop takes
	 * the chain after the source's last one. */
	d->vp = vd_load_vp;
	memcpy(d->vq, vd_load_vq, sizeof(d->vq));
	d->rings_up = up;
	d->epoch++;
	snprintf(d->why, sizeof(d->why), "%s", d->vp.needs_reset ? d->vp.why : "");
	return 0;
}
