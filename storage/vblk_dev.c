/*
 * virtio-blk for guests, on the block layer: `vm create ... disk=NAME`
 * (or disk=NAME:ro) gives the VM a virtio 1.x PCI disk backed by the
 * iSCSI disk NAME.
 *
 * Where the work runs:
 *  - a vCPU's exit (the driver's queue notification, bus lock held) takes
 *    the chains off the ring and parses them (model/vblk.c); malformed
 *    ones complete at once with an error status, the rest wait on the
 *    device's pending list and the boot CPU is kicked;
 *  - the boot CPU's main loop ("vblk" service) gives each one a buffer,
 *    copies the guest's data in for a write and submits it to the block
 *    layer, which runs many at once (no serialisation per VM);
 *  - the block layer's completion, also on the main loop, copies read
 *    data out, writes the status byte, returns the chain and interrupts
 *    the driver by MSI-X.
 * A discard or write-zeroes request carries up to VBLK_MAX_RANGES ranges:
 * each becomes its own block request (UNMAP, WRITE SAME), all in flight
 * at once, and the chain completes when the last is back, with IOERR if
 * any failed (the first error is the one logged).
 * A request completes only after the target answered (the block layer's
 * done()), and once: the chain goes back in that one place.
 *
 * A reset by the driver bumps the device's epoch: requests of an older
 * epoch still out finish into nothing.  A destroyed VM leaves its device
 * behind, detached from the VM, until the last request is back.
 *
 * Migration (the vdev hooks at the end; the contract is vdev.h):
 *  - quiesce drains, it does not record: no new chain is popped, the
 *    chains already popped and parsed (the pending list) are submitted
 *    as usual, and quiesce says 0 only once every request started,
 *    stale epochs included, has completed into the used ring (data and
 *    status written, dirty-marked by vring_mem).  Recording requests to
 *    reissue them at the destination would put chain addresses and
 *    half-done multi-range discards into the stream, and a write still
 *    out from the source could land on the LUN after the destination's
 *    newer write of the same blocks; a drain has neither problem, and
 *    it is bounded: the block layer completes every request, with an
 *    error if it must, within DISK_CMD_TIMEOUT_US (60 s, checked each
 *    second) of its submission, or DISK_REPLACEMENT_US (30 s) after the
 *    connection dropped, so a quiesce never waits more than about 61 s;
 *    on a healthy LAN it is one I/O latency.  A lost disk (fenced) fails
 *    its requests at once.
 *  - once drained, quiesce sends one FLUSH (SYNCHRONIZE CACHE) per
 *    writable disk, as a guest's VIRTIO_BLK_T_FLUSH would, and says 0
 *    when it is back: the destination's fence must not strand writes the
 *    target acknowledged but holds in a volatile cache.  A failed flush
 *    (the target gone) is logged and does not stop the migration: the
 *    block layer's bounded wait applies, and the migration code bounds
 *    the whole drain anyway.
 *  - what the guest queued meanwhile stays in the avail ring, for
 *    unquiesce (the migration failed) or, after the rings moved,
 *    resumed on the destination (the guest will not kick again for
 *    requests it queued before the pause).
 *  - the back end's record (model/vblk.h: vblk_save) is the geometry the
 *    guest was shown and which LUN it is; load refuses another LUN.
 *  - prepare (destination) and takeover (at COMMIT) run the disk's
 *    reservation sequences (disk_rejoin_start, disk_fence_start) and
 *    report through a waiter the main loop steps (vblk_waits).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/kernel.h"
#include "kernel/devices/vdev.h"
#include "kernel/devices/virtio_dev.h"
#include "kernel/devices/vpci.h"
#include "kernel/devices/model/vblk.h"
#include "kernel/lib/cmd.h"
#include "kernel/platform/mainloop.h"
#include "kernel/virt/vm.h"
#include "storage/blk.h"
#include "storage/disk.h"
#include "storage/storage.h"

#define VBLK_QUEUE_MAX	128		/* descriptors, and requests in flight */

struct vblk_dev;

struct vblk_io {
	struct blk_req req;
	struct vblk_dev *dev;
	uint32_t epoch;
	struct vblk_req rq;
	void *buf;
	struct vblk_io *next;
	struct vring_chain chain;
	unsigned left;			/* discard/write-zeroes: ranges out (+1 while submitting) */
	int err;			/* ... the first range's error */
};

struct vblk_stats {
	uint64_t reads, writes, flushes, rd_bytes, wr_bytes, errors, bad, get_ids;
	uint64_t discards, zeroes;
};

struct vblk_dev {
	struct virtio_dev vd;
	struct vm *vm;			/* NULL once the VM let go */
	struct blk_disk *disk;
	char disk_name[24];
	bool read_only;
	struct vblk_info info;
	bool info_known;		/* the LUN's geometry is in info */
	struct vblk_io *free, *pend_head, *pend_tail;	/* under the bus lock */
	unsigned inflight;		/* submitted to the block layer */
	bool quiesced;			/* migration: pop nothing new */
	struct vblk_drain drain;	/* ... then one flush (model/vblk.h) */
	struct blk_req drain_req;	/* that flush, counted in inflight */
	int said_err;			/* the last error the log was told of */
	struct vblk_stats st;
	struct vblk_dev *next;
	struct vblk_io pool[VBLK_QUEUE_MAX];
};

static struct vblk_dev *vblk_devs;

/* ---- geometry ---- */

/* blocks of bs bytes in 512-byte sectors, capped at what the 32-bit
 * config fields hold (whole blocks); 0 blocks is 0: no such command. */
static uint32_t vblk_sectors(uint32_t blocks, uint32_t bs)
{
	uint32_t spb = bs / VBLK_SECTOR;

	if (!spb)
		return 0;
	if (blocks > UINT32_MAX / spb)
		blocks = UINT32_MAX / spb;
	return blocks * spb;
}

/* DISCARD and WRITE_ZEROES where the LUN takes UNMAP and WRITE SAME, with
 * its per-command limits: the guest splits bigger ranges itself.  Only
 * what the LUN said when the VM was made reaches the features. */
static void vblk_fill_provisioning(struct vblk_dev *b, uint32_t bs)
{
	struct blk_limits lim;

	if (blk_limits(b->disk, &lim) < 0)
		return;
	b->info.discard = lim.unmap;
	b->info.write_zeroes = lim.write_zeroes;
	b->info.max_discard_sectors = lim.unmap ? vblk_sectors(lim.max_unmap_blocks, bs) : 0;
	b->info.max_write_zeroes_sectors = lim.write_zeroes ?
					   vblk_sectors(lim.max_wz_blocks, bs) : 0;
}

/* What the guest is told: the LUN as the block layer sees it; until the
 * disk is ready, a disk of no blocks that grows (config change) later. */
static void vblk_fill_info(struct vblk_dev *b)
{
	uint32_t bs = 512;
	uint64_t n = 0;

	b->info_known = blk_geometry(b->disk, &bs, &n) == 0;
	memset(&b->info, 0, sizeof(b->info));
	b->info.nblocks = n;
	b->info.block_size = bs;
	b->info.max_transfer = b->disk->max_xfer ? b->disk->max_xfer : DISK_XFER_MAX;
	b->info.read_only = b->read_only;
	if (b->info_known)
		vblk_fill_provisioning(b, bs);
	snprintf(b->info.serial, sizeof(b->info.serial), "%s", b->disk_name);
}

/* ---- the driver's side (bus lock held) ---- */

static void vblk_cfg_read(struct virtio_dev *d, uint32_t off, void *buf, int size)
{
	struct vblk_dev *b = d->be;
	uint8_t cfg[VBLK_CFG_LEN];

	vblk_config(&b->info, cfg, sizeof(cfg));
	if (off >= sizeof(cfg) || (uint32_t)size > sizeof(cfg) - off)
		memset(buf, 0, (size_t)size);
	else
		memcpy(buf, cfg + off, (size_t)size);
}

static void vblk_put(struct vblk_dev *b, struct vblk_io *io)
{
	io->next = b->free;
	b->free = io;
}

/* Complete a chain at once: a bad request, GET_ID, a device that cannot
 * take it. */
static void vblk_answer(struct vblk_dev *b, struct vblk_io *io, uint8_t status,
			uint32_t data_written)
{
	uint32_t n = vblk_finish(&b->vd.mem, &io->rq, status, data_written);

	virtio_dev_complete(&b->vd, 0, &io->chain, n);
	vblk_put(b, io);
}

static void vblk_get_id_now(struct vblk_dev *b, struct vblk_io *io)
{
	uint8_t id[20];
	int n;

	vblk_get_id(&b->info, id);
	n = vring_write(&b->vd.mem, &io->chain, io->rq.data_off, id,
			io->rq.data_len < sizeof(id) ? io->rq.data_len : sizeof(id));
	b->st.get_ids++;
	vblk_answer(b, io, n < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, n < 0 ? 0 : (uint32_t)n);
}

/* One popped chain: answer it now or queue it for the main loop. */
static void vblk_take(struct vblk_dev *b, struct vblk_io *io)
{
	int rc = vblk_parse(&b->info, &b->vd.mem, &io->chain, &io->rq);

	if (rc == -EFAULT) {		/* no status byte to write: give it back empty */
		b->st.bad++;
		virtio_dev_complete(&b->vd, 0, &io->chain, 0);
		vblk_put(b, io);
	} else if (rc > 0 || rc < 0) {
		b->st.bad++;
		vblk_answer(b, io, rc > 0 ? (uint8_t)rc : VIRTIO_BLK_S_IOERR, 0);
	} else if (io->rq.op == VBLK_GET_ID) {
		vblk_get_id_now(b, io);
	} else if (io->rq.op != VBLK_READ && io->rq.op != VBLK_WRITE &&
		   io->rq.op != VBLK_FLUSH && io->rq.op != VBLK_DISCARD &&
		   io->rq.op != VBLK_WRITE_ZEROES) {
		vblk_answer(b, io, VIRTIO_BLK_S_UNSUPP, 0);
	} else {
		io->epoch = b->vd.epoch;
		io->next = NULL;
		if (b->pend_tail)
			b->pend_tail->next = io;
		else
			b->pend_head = io;
		b->pend_tail = io;
	}
}

static void vblk_notify(struct virtio_dev *d, uint16_t q)
{
	struct vblk_dev *b = d->be;
	bool queued = false;

	if (b->quiesced)
		return;		/* left in the ring for unquiesce or resumed */
	while (b->free) {
		struct vblk_io *io = b->free;
		int rc;

		rc = virtio_dev_pop(d, q, &io->chain);
		if (rc <= 0)
			break;
		b->free = io->next;
		vblk_take(b, io);
		queued |= b->pend_head != NULL;
	}
	if (queued)
		mainloop_kick();
}

static void vblk_reset(struct virtio_dev *d)
{
	struct vblk_dev *b = d->be;

	/* Queued, not submitted: back to the pool.  Submitted ones finish
	 * into nothing (their epoch is old now). */
	while (b->pend_head) {
		struct vblk_io *io = b->pend_head;

		b->pend_head = io->next;
		vblk_put(b, io);
	}
	b->pend_tail = NULL;
}

static bool vblk_features_ok(struct virtio_dev *d, uint64_t features)
{
	(void)d, (void)features;
	return true;
}

static const struct virtio_dev_ops vblk_vd_ops = {
	.notify = vblk_notify,
	.reset = vblk_reset,
	.features_ok = vblk_features_ok,
	.cfg_read = vblk_cfg_read,
};

/* ---- the main loop ---- */

static void vblk_say_error(struct vblk_dev *b, int err)
{
	/* Lost: the disk says how (fenced, or a reconnect it could not trust).
	 * A conflict completes its request before the disk is marked lost. */
	const char *why = err == -EACCES ? (b->disk && b->disk->state == DISK_LOST ?
					    b->disk->why : "this host lost the disk to "
					    "another host (RESERVATION CONFLICT)") :
			  err == -ETIMEDOUT ? "the target stayed away past the timeout" :
			  err == -ENODEV ? "the disk is gone" : "the target reported an error";

	if (b->said_err == err)
		return;
	b->said_err = err;
	pr_err("vm %s: %s (disk %s): %s: the guest sees I/O errors", b->vm ? b->vm->name : "?",
	       b->vd.name, b->disk_name, why);
}

static void vblk_free_dev(struct vblk_dev *b)
{
	struct vblk_dev **pp;

	for (pp = &vblk_devs; *pp; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	free(b);
}

static void vblk_done(struct blk_req *r)
{
	struct vblk_io *io = r->priv;
	struct vblk_dev *b = io->dev;
	uint8_t status = r->err ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	uint32_t written = 0;
	uint64_t f;

	b->inflight--;
	if (!b->vm) {			/* the VM is gone */
		free(io->buf);
		if (!b->inflight)
			vblk_free_dev(b);
		return;
	}
	if (r->err) {
		b->st.errors++;
		vblk_say_error(b, r->err);
	} else {
		b->said_err = 0;
	}
	f = vpci_lock(b->vm);
	if (io->epoch == b->vd.epoch) {
		if (!r->err && io->rq.op == VBLK_READ &&
		    vring_write(&b->vd.mem, &io->chain, io->rq.data_off, io->buf,
				io->rq.data_len) == (int)io->rq.data_len)
			written = io->rq.data_len;
		else if (!r->err && io->rq.op == VBLK_READ)
			status = VIRTIO_BLK_S_IOERR;
		vblk_answer(b, io, status, written);
	} else {
		vblk_put(b, io);
	}
	vpci_unlock(b->vm, f);
	free(io->buf);
}

/* One range of a discard or write-zeroes back: the last one completes
 * the request through vblk_done, with the first error. */
static void vblk_range_done(struct blk_req *r)
{
	struct vblk_io *io = r->priv;

	if (r->err && !io->err)
		io->err = r->err;
	if (--io->left)
		return;
	io->req.err = io->err;
	vblk_done(&io->req);
}

/*
 * Each range to the block layer; io->buf holds their blk_reqs.  A range
 * may complete inside blk_submit (a queueing failure), so io->left counts
 * one extra until every range is out.  0 once any range is out (the
 * request then completes through vblk_range_done), else the error.
 */
static int vblk_submit_ranges(struct vblk_dev *b, struct vblk_io *io)
{
	bool wz = io->rq.op == VBLK_WRITE_ZEROES;
	struct blk_limits lim;
	struct blk_req *sub;
	uint32_t k;
	int rc = blk_limits(b->disk, &lim);

	if (rc < 0)
		return rc;
	io->buf = sub = calloc(io->rq.nranges, sizeof(*sub));
	if (!sub)
		return -ENOMEM;
	io->left = 1;
	io->err = 0;
	for (k = 0; k < io->rq.nranges; k++) {
		const struct vblk_range *g = &io->rq.range[k];

		sub[k].op = wz ? BLK_WRITE_ZEROES : BLK_UNMAP;
		sub[k].flags = wz && g->unmap && lim.wz_unmap ? BLK_F_UNMAP : 0;
		sub[k].lba = g->lba;
		sub[k].count = g->nblocks;
		sub[k].done = vblk_range_done;
		sub[k].priv = io;
		io->left++;
		rc = blk_submit(b->disk, &sub[k]);
		if (rc < 0) {
			io->left--;
			break;
		}
	}
	if (k == 0)
		return rc;		/* nothing out: answered by the caller */
	if (rc < 0 && !io->err)
		io->err = rc;
	if (wz)
		b->st.zeroes++;
	else
		b->st.discards++;
	if (--io->left == 0) {
		io->req.err = io->err;
		vblk_done(&io->req);
	}
	return 0;
}

/* Hand one request to the block layer; 0 or the error to answer with. */
static int vblk_submit(struct vblk_dev *b, struct vblk_io *io)
{
	struct blk_req *r = &io->req;

	memset(r, 0, sizeof(*r));
	io->buf = NULL;
	r->done = vblk_done;
	r->priv = io;
	if (io->rq.op == VBLK_DISCARD || io->rq.op == VBLK_WRITE_ZEROES)
		return vblk_submit_ranges(b, io);
	r->lba = io->rq.lba;
	r->count = io->rq.nblocks;
	if (io->rq.op == VBLK_FLUSH) {
		r->op = BLK_FLUSH;
		b->st.flushes++;
	} else {
		io->buf = malloc(io->rq.data_len ? io->rq.data_len : 1);
		if (!io->buf)
			return -ENOMEM;
		r->buf = io->buf;
		r->op = io->rq.op == VBLK_READ ? BLK_READ : BLK_WRITE;
		if (r->op == BLK_WRITE &&
		    vring_read(&b->vd.mem, &io->chain, io->rq.data_off, io->buf,
			       io->rq.data_len) != (int)io->rq.data_len)
			return -EFAULT;
		if (r->op == BLK_READ)
			b->st.reads++, b->st.rd_bytes += io->rq.data_len;
		else
			b->st.writes++, b->st.wr_bytes += io->rq.data_len;
	}
	return blk_submit(b->disk, r);
}

static void vblk_start_pending(struct vblk_dev *b)
{
	struct vblk_io *list, *io;
	uint64_t f = vpci_lock(b->vm);

	list = b->pend_head;
	b->pend_head = b->pend_tail = NULL;
	vpci_unlock(b->vm, f);
	while ((io = list)) {
		int rc;

		list = io->next;
		io->dev = b;
		/* Counted before the submission: a discard whose ranges all
		 * fail inside blk_submit completes (vblk_done) before it returns. */
		b->inflight++;
		rc = vblk_submit(b, io);
		if (!rc)
			continue;
		b->inflight--;
		b->st.errors++;
		vblk_say_error(b, rc);
		free(io->buf);
		f = vpci_lock(b->vm);
		if (io->epoch == b->vd.epoch)
			vblk_answer(b, io, VIRTIO_BLK_S_IOERR, 0);
		else
			vblk_put(b, io);
		vpci_unlock(b->vm, f);
	}
}

/* The disk became ready after the VM was made: the guest learns its size
 * through a configuration change (VIRTIO 1.1 4.1.4.3: config_generation). */
static void vblk_check_geometry(struct vblk_dev *b)
{
	uint64_t f;

	if (b->info_known || blk_geometry(b->disk, &(uint32_t){ 0 }, &(uint64_t){ 0 }) < 0)
		return;
	f = vpci_lock(b->vm);
	vblk_fill_info(b);
	virtio_pci_interrupt_config(&b->vd.vp);
	vpci_unlock(b->vm, f);
	pr_info("vm %s: %s: disk %s is ready: %lu blocks of %u bytes", b->vm->name, b->vd.name,
		b->disk_name, (unsigned long)b->info.nblocks, b->info.block_size);
}

static void vblk_waits_service(void);
static bool vblk_waits_pending(void);

static void vblk_service(void)
{
	vblk_waits_service();
	for (struct vblk_dev *b = vblk_devs; b; b = b->next) {
		if (!b->vm)
			continue;
		if (!b->quiesced)	/* the config change waits for the guest */
			vblk_check_geometry(b);
		if (b->pend_head)
			vblk_start_pending(b);
	}
}

static bool vblk_pending(void)
{
	for (struct vblk_dev *b = vblk_devs; b; b = b->next)
		if (b->vm && b->pend_head)
			return true;
	return vblk_waits_pending();
}

static const struct mainloop_service vblk_svc = {
	.name = "vblk",
	.service = vblk_service,
	.pending = vblk_pending,
};

/* ---- the vdev type ---- */

static int vblk_parse_arg(const char *arg, char *name, size_t len, bool *ro)
{
	const char *colon = strchr(arg, ':');
	size_t n = colon ? (size_t)(colon - arg) : strlen(arg);

	*ro = false;
	if (colon && strcmp(colon, ":ro"))
		return -EINVAL;
	if (!n || n >= len)
		return -EINVAL;
	memcpy(name, arg, n);
	name[n] = '\0';
	*ro = colon != NULL;
	return 0;
}

static int vblk_create(struct vm *vm, const char *arg, int index, void **inst, char *err,
		       size_t errlen)
{
	struct vblk_dev *b;
	char name[24], dev[8];
	struct blk_disk *disk;
	bool ro;
	int rc;

	if (vblk_parse_arg(arg, name, sizeof(name), &ro) < 0) {
		snprintf(err, errlen, "disk=%s: expected disk=NAME or disk=NAME:ro", arg);
		return -EINVAL;
	}
	disk = blk_find(name);
	if (!disk) {
		snprintf(err, errlen, "disk=%s: no disk named '%s' (see 'disk list')", arg, name);
		return -ENOENT;
	}
	if (disk->holder[0] && strcmp(disk->holder, vm->name)) {
		snprintf(err, errlen, "disk %s is in use by vm %s", name, disk->holder);
		return -EBUSY;
	}
	if (index >= 26) {
		snprintf(err, errlen, "at most 26 disks");
		return -ENOSPC;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	b->vm = vm;
	b->disk = disk;
	b->read_only = ro;
	snprintf(b->disk_name, sizeof(b->disk_name), "%s", name);
	for (int i = 0; i < VBLK_QUEUE_MAX; i++) {
		b->pool[i].dev = b;
		vblk_put(b, &b->pool[i]);
	}
	vblk_fill_info(b);
	snprintf(dev, sizeof(dev), "vd%c", 'a' + index);
	rc = virtio_dev_init(&b->vd, vm, dev, VIRTIO_ID_BLOCK, 1, VBLK_QUEUE_MAX,
			     vblk_features(&b->info), VBLK_CFG_LEN, &vblk_vd_ops, b);
	if (rc < 0) {
		snprintf(err, errlen, "disk=%s: no room on the VM's PCI bus (%d)", arg, rc);
		free(b);
		return rc;
	}
	snprintf(disk->holder, sizeof(disk->holder), "%s", vm->name);
	b->next = vblk_devs;
	vblk_devs = b;
	*inst = b;
	return 0;
}

static void vblk_destroy(void *inst)
{
	struct vblk_dev *b = inst;

	vblk_reset(&b->vd);
	if (!strcmp(b->disk->holder, b->vm->name))
		b->disk->holder[0] = '\0';
	b->vm = NULL;
	if (!b->inflight)
		vblk_free_dev(b);
}

static void vblk_info_out(void *inst, struct cmd_out *o)
{
	struct vblk_dev *b = inst;
	const struct vblk_stats *s = &b->st;
	char state[128];

	virtio_dev_state(&b->vd, state, sizeof(state));
	cmd_printf(o, "  %s: virtio-blk pci 00:%02x.0, disk %s%s, %lu MiB in %u-byte blocks, %s\n",
		   b->vd.name, b->vd.slot, b->disk_name, b->read_only ? " (read-only)" : "",
		   (unsigned long)((b->info.nblocks * b->info.block_size) >> 20),
		   b->info.block_size,
		   state);
	if (b->disk && b->disk->state == DISK_LOST)
		cmd_printf(o, "    disk lost, the guest sees I/O errors: %s (disk rejoin %s)\n",
			   b->disk->why, b->disk_name);
	if (b->quiesced)
		cmd_printf(o, "    quiesced for a migration: %u request(s) still out%s\n",
			   b->inflight, b->drain.state == VBLK_DRAIN_FLUSHING ?
			   " (the flush before the migration)" : "");
	if (b->drain.flushes)
		cmd_printf(o, "    migration flushes %lu (failed %lu)\n",
			   (unsigned long)b->drain.flushes, (unsigned long)b->drain.failed);
	cmd_printf(o, "    reads %lu (%lu KiB) writes %lu (%lu KiB) flushes %lu discards %lu "
		   "write-zeroes %lu errors %lu malformed %lu in-flight %u notifies %lu irqs %lu\n",
		   s->reads, s->rd_bytes >> 10, s->writes, s->wr_bytes >> 10, s->flushes,
		   s->discards, s->zeroes, s->errors, s->bad, b->inflight, b->vd.vp.notifies,
		   b->vd.vp.interrupts);
}

/* ---- migration (vdev.h; see the top of this file) ---- */

#define VBLK_PREPARE_US		(20 * 1000000ull)	/* login, rejoin */
#define VBLK_TAKEOVER_US	(10 * 1000000ull)	/* the fence: a few commands */

static struct virtio_dev *vblk_virtio(void *inst)
{
	return &((struct vblk_dev *)inst)->vd;
}

/* Which LUN: the VPD 0x83 designator, else the unit serial (VPD 0x80),
 * printable only. */
static void vblk_ident(const struct blk_disk *d, char *out, size_t len)
{
	if (d->lu_id[0])
		snprintf(out, len, "%s", d->lu_id);
	else if (d->serial[0])
		snprintf(out, len, "sn:%s", d->serial);
	else
		out[0] = '\0';
	for (char *p = out; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
}

static void vblk_saved_of(const struct vblk_dev *b, struct vblk_saved *s)
{
	memset(s, 0, sizeof(*s));
	s->info = b->info;
	s->info_known = b->info_known;
	snprintf(s->disk, sizeof(s->disk), "%s", b->disk_name);
	vblk_ident(b->disk, s->ident, sizeof(s->ident));
}

static int vblk_save_state(void *inst, uint8_t *buf, size_t cap)
{
	struct vblk_dev *b = inst;
	struct vblk_saved s;

	/* Requests still out would be lost with the record: quiesce first. */
	if (b->pend_head || b->inflight) {
		pr_err("vm %s: %s: saved with %u request(s) out: quiesce first",
		       b->vm ? b->vm->name : "?", b->vd.name, b->inflight);
		return -EBUSY;
	}
	vblk_saved_of(b, &s);
	return vblk_save(&s, buf, cap);
}

/* Destination, VM created from the same spec, transport loaded: the guest
 * must see the geometry it saw, on the same LUN. */
static int vblk_load_state(void *inst, const uint8_t *buf, size_t len)
{
	struct vblk_dev *b = inst;
	struct vblk_saved src, here;
	char why[200];
	uint64_t f;

	if (vblk_load(&src, buf, len) < 0) {
		pr_err("vm %s: %s: the disk record from the source does not parse",
		       b->vm->name, b->vd.name);
		return -EINVAL;
	}
	vblk_saved_of(b, &here);
	if (vblk_check_same(&src, &here, why, sizeof(why)) < 0) {
		pr_err("vm %s: %s: %s", b->vm->name, b->vd.name, why);
		return -EINVAL;
	}
	f = vpci_lock(b->vm);
	b->info = src.info;		/* the limits the guest was told */
	b->info_known = src.info_known;
	vpci_unlock(b->vm, f);
	return 0;
}

/* The drain's flush is back (or never went out: err from blk_submit). */
static void vblk_drain_flush_end(struct vblk_dev *b, int err)
{
	if (!vblk_drain_flushed(&b->drain, err))
		return;
	pr_warn("vm %s: %s: the flush before the migration failed (disk %s: %s); "
		"going on without it", b->vm ? b->vm->name : "?", b->vd.name, b->disk_name,
		cmd_strerror(err));
}

static void vblk_drain_flush_done(struct blk_req *r)
{
	struct vblk_dev *b = r->priv;

	b->inflight--;
	if (!b->vm) {			/* the VM is gone */
		if (!b->inflight)
			vblk_free_dev(b);
		return;
	}
	vblk_drain_flush_end(b, r->err);
	mainloop_kick();	/* the migration asks again */
}

/* The flush after the drain, through the block layer like a guest's
 * VIRTIO_BLK_T_FLUSH: a barrier behind every write already done. */
static void vblk_drain_flush(struct vblk_dev *b)
{
	struct blk_req *r = &b->drain_req;
	int rc;

	memset(r, 0, sizeof(*r));
	r->op = BLK_FLUSH;
	r->done = vblk_drain_flush_done;
	r->priv = b;
	b->inflight++;
	rc = blk_submit(b->disk, r);
	if (rc < 0) {
		b->inflight--;
		vblk_drain_flush_end(b, rc);
	}
}

static int vblk_quiesce(void *inst)
{
	struct vblk_dev *b = inst;
	bool busy;
	uint64_t f = vpci_lock(b->vm);

	b->quiesced = true;
	busy = b->pend_head || b->inflight;
	vpci_unlock(b->vm, f);
	switch (vblk_drain_step(&b->drain, busy, b->read_only)) {
	case VBLK_DRAIN_QUIET:
		return 0;
	case VBLK_DRAIN_FLUSH:
		vblk_drain_flush(b);
		/* A flush refused at once is over: quiet now. */
		return b->drain.state == VBLK_DRAIN_FLUSHED ? 0 : -EAGAIN;
	case VBLK_DRAIN_WAIT:
		break;
	}
	if (busy)
		mainloop_kick();	/* the vblk service submits the pending list */
	return -EAGAIN;
}

/* Take what the guest queued while the device looked away. */
static void vblk_pick_up(struct vblk_dev *b)
{
	uint64_t f = vpci_lock(b->vm);

	b->quiesced = false;
	vblk_drain_reset(&b->drain);
	vblk_notify(&b->vd, 0);
	vpci_unlock(b->vm, f);
}

static void vblk_unquiesce(void *inst)
{
	vblk_pick_up(inst);
}

static void vblk_resumed(void *inst)
{
	vblk_pick_up(inst);
}

/*
 * prepare and takeover wait on the disk (a login, a reservation
 * sequence): a waiter per call, stepped by the vblk service, which names
 * the disk, not the device (the VM may go meanwhile) and ends by its
 * deadline whatever the disk does.
 */
struct vblk_wait {
	char disk[24];
	bool takeover;			/* the fence; else the rejoin */
	bool started, ended;
	int rc;
	uint64_t deadline_us;
	void (*done)(void *ctx, int rc, const char *why);
	void *ctx;
	struct vblk_wait *next;
};

static struct vblk_wait *vblk_waits;

static void vblk_wait_ended(struct blk_disk *d, int rc, void *arg)
{
	struct vblk_wait *w = arg;

	(void)d;
	w->ended = true;
	w->rc = rc;
	mainloop_kick();
}

static int vblk_wait_add(const char *disk, bool takeover, uint64_t us,
			 void (*done)(void *ctx, int rc, const char *why), void *ctx)
{
	struct vblk_wait *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	snprintf(w->disk, sizeof(w->disk), "%s", disk);
	w->takeover = takeover;
	w->deadline_us = time_us() + us;
	w->done = done;
	w->ctx = ctx;
	w->next = vblk_waits;
	vblk_waits = w;
	mainloop_kick();
	return 0;
}

static const char *vblk_wait_what(const struct vblk_wait *w)
{
	return w->takeover ? "pre-empting the source host's key" : "registering this host's key";
}

/* The sequence's result: rc 0, or why. */
static void vblk_wait_result(struct vblk_wait *w, const struct blk_disk *d, char *why,
			     size_t len)
{
	if (w->rc == -EOPNOTSUPP) {
		pr_warn("disk %s: the target has no persistent reservations: %s", w->disk,
			w->takeover ? "the source host is not fenced off" : "nothing to register");
		w->rc = 0;
	} else if (w->rc == -EACCES) {
		snprintf(why, len, "disk %s: %s: this host lost the disk to another host "
			 "(RESERVATION CONFLICT)", w->disk, vblk_wait_what(w));
	} else if (w->rc == -EBUSY && w->takeover) {
		snprintf(why, len, "disk %s: pre-empted %u key(s) but %016llx still holds a "
			 "reservation of type %u", w->disk, d->preempted,
			 (unsigned long long)d->resv.key, d->resv.type);
	} else if (w->rc < 0) {
		snprintf(why, len, "disk %s: %s failed: %s", w->disk, vblk_wait_what(w),
			 d->why[0] && d->err == w->rc ? d->why : cmd_strerror(w->rc));
	}
}

/* Start the sequence when the disk allows it; true once w has ended. */
static bool vblk_wait_start(struct vblk_wait *w, struct blk_disk *d, char *why, size_t len)
{
	int rc;

	if (!w->takeover && d->holder[0]) {
		w->rc = -EBUSY;
		snprintf(why, len, "disk %s is held by VM %s", w->disk, d->holder);
		return true;
	}
	if (d->state == DISK_FAILED) {
		w->rc = -EIO;
		snprintf(why, len, "disk %s: login failed: %s", w->disk,
			 d->why[0] ? d->why : "no reason given");
		return true;
	}
	rc = disk_seq_run(d, w->takeover ? disk_fence_start : disk_rejoin_start,
			  vblk_wait_ended, w);
	if (rc == 0)
		w->started = true;
	if (rc == 0 || rc == -EAGAIN || rc == -EBUSY)
		return false;		/* connecting, reconnecting, a command out */
	w->rc = rc;
	vblk_wait_result(w, d, why, len);
	return true;
}

/* One waiter's progress: true once it has ended, w->rc and why set. */
static bool vblk_wait_step(struct vblk_wait *w, uint64_t now, char *why, size_t len)
{
	struct blk_disk *d = blk_find(w->disk);

	if (!d || d->state == DISK_DETACHING) {
		if (d)
			disk_seq_forget(d, w);	/* disk_free would call it */
		w->rc = -ENOENT;
		snprintf(why, len, "disk %s is not attached here", w->disk);
		return true;
	}
	if (w->ended) {
		vblk_wait_result(w, d, why, len);
		return true;
	}
	if (now >= w->deadline_us) {
		disk_seq_forget(d, w);
		w->rc = -ETIMEDOUT;
		snprintf(why, len, "disk %s: %s: no answer in %llu s (the disk is %s%s%s)",
			 w->disk, vblk_wait_what(w),
			 (w->takeover ? VBLK_TAKEOVER_US : VBLK_PREPARE_US) / 1000000,
			 disk_state_name(d->state), d->why[0] ? ": " : "", d->why);
		return true;
	}
	return !w->started && vblk_wait_start(w, d, why, len);
}

static void vblk_waits_service(void)
{
	uint64_t now = time_us();
	struct vblk_wait **pp = &vblk_waits;

	while (*pp) {
		struct vblk_wait *w = *pp;
		char why[240] = "";

		if (!vblk_wait_step(w, now, why, sizeof(why))) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		w->done(w->ctx, w->rc, w->rc ? why : "");
		free(w);
		pp = &vblk_waits;	/* done() may have added a waiter */
	}
}

static bool vblk_waits_pending(void)
{
	for (struct vblk_wait *w = vblk_waits; w; w = w->next)
		if (w->ended)
			return true;
	return false;
}

/* Refusals prepare can give at once; 0 when the disk may do. */
static int vblk_prepare_refusal(const struct blk_disk *d, const char *name, char *why,
				size_t len)
{
	if (!d || d->state == DISK_DETACHING) {
		snprintf(why, len, "disk %s is not attached here", name);
		return -ENOENT;
	}
	if (d->holder[0]) {
		snprintf(why, len, "disk %s is held by VM %s", name, d->holder);
		return -EBUSY;
	}
	if (d->state == DISK_FAILED) {
		snprintf(why, len, "disk %s: login failed: %s", name,
			 d->why[0] ? d->why : "no reason given");
		return -EIO;
	}
	return 0;
}

/*
 * Destination, before ACCEPTED: the disk is attached here under the same
 * name, free, and this host's key is registered on it.  A disk this host
 * lost (it was fenced when the guest left for another host) is brought
 * back by the rejoin.  The LUN's identity is checked at load (the record
 * carries it): the spec has only the name.
 */
static int vblk_prepare(const char *arg, void (*done)(void *ctx, int rc, const char *why),
			void *ctx, char *why, size_t len)
{
	char name[24];
	bool ro;
	int rc;

	if (vblk_parse_arg(arg, name, sizeof(name), &ro) < 0) {
		snprintf(why, len, "disk=%s: expected disk=NAME or disk=NAME:ro", arg);
		return -EINVAL;
	}
	rc = vblk_prepare_refusal(blk_find(name), name, why, len);
	if (rc == 0)
		rc = vblk_wait_add(name, false, VBLK_PREPARE_US, done, ctx);
	if (rc == -ENOMEM)
		snprintf(why, len, "disk %s: out of memory", name);
	return rc;
}

/*
 * Destination at COMMIT: pre-empt every other key (the fence), so the
 * source host cannot write even if it misbehaves.  A read-only disk has
 * nothing to protect: Write Exclusive lets every host read, and the guest
 * cannot write.  Without persistent reservations: a warning, and done(0).
 */
static int vblk_takeover(void *inst, void (*done)(void *ctx, int rc, const char *why),
			 void *ctx, char *why, size_t len)
{
	struct vblk_dev *b = inst;
	int rc;

	if (b->read_only) {
		done(ctx, 0, "");
		return 0;
	}
	if (!b->disk->pr_ok) {
		pr_warn("vm %s: %s: disk %s has no persistent reservations: the source host "
			"is not fenced off", b->vm->name, b->vd.name, b->disk_name);
		done(ctx, 0, "");
		return 0;
	}
	rc = vblk_wait_add(b->disk_name, true, VBLK_TAKEOVER_US, done, ctx);
	if (rc < 0)
		snprintf(why, len, "disk %s: out of memory", b->disk_name);
	return rc;
}

static const struct vdev_type vblk_type = {
	.key = "disk",
	.create = vblk_create,
	.destroy = vblk_destroy,
	.info = vblk_info_out,
	.virtio = vblk_virtio,
	.save = vblk_save_state,
	.load = vblk_load_state,
	.quiesce = vblk_quiesce,
	.unquiesce = vblk_unquiesce,
	.prepare = vblk_prepare,
	.takeover = vblk_takeover,
	.resumed = vblk_resumed,
};

void vblk_dev_start(void)
{
	vdev_register(&vblk_type);
	mainloop_register(&vblk_svc);
}
