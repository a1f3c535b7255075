/*
 * The block request queue (blk.h): requests split into SCSI READ/WRITE
 * commands at the disk's maximum transfer (UNMAP and WRITE SAME at their
 * own limits), barriers, flushes, and completion once every part is back.
 *
 * Flow control.  The session takes at most ISCSI_SESS_TASKS commands; a
 * full session leaves the rest queued here.  Write data is framed into
 * the connection's ring as the session sends it (immediate data at once,
 * the rest as the target's R2Ts ask), so write bytes in the session are
 * kept under DISK_WR_INFLIGHT, half the ring: the ring cannot overflow,
 * even when every task is sent again after a reconnect.  UNMAP's
 * parameter list and WRITE SAME's block are Data-Out too and count alike.
 *
 * An UNMAP part owns its parameter list (malloc'd, freed when the part
 * completes or is failed): parts run in parallel, and the session may
 * send a task again after a reconnect, so the list lives as long as the
 * task.  WRITE SAME parts share the disk's read-only zero block.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/kernel.h"
#include "storage/disk.h"

#define BLK_F_STARTED	0x100	/* internal: counted in d->active */

struct blk_disk *blk_find(const char *name)
{
	for (int i = 0; i < DISK_MAX; i++)
		if (disk_table[i] && !strcmp(disk_table[i]->spec.name, name))
			return disk_table[i];
	return NULL;
}

int blk_geometry(const struct blk_disk *d, uint32_t *block_size, uint64_t *nblocks)
{
	if (!d || !d->t_ready_us)
		return -ENODEV;
	*block_size = d->block_size;
	*nblocks = d->nblocks;
	return 0;
}

const char *blk_holder(const struct blk_disk *d)
{
	return d->holder;
}

int blk_limits(const struct blk_disk *d, struct blk_limits *out)
{
	if (!d || !d->t_ready_us)
		return -ENODEV;
	out->unmap = d->can_unmap;
	out->write_zeroes = d->can_write_same;
	out->wz_unmap = d->can_write_same && d->ws_unmap;
	out->max_unmap_blocks = d->can_unmap ? d->max_unmap_blocks : 0;
	out->max_wz_blocks = d->can_write_same ? (uint32_t)d->max_ws_blocks : 0;
	return 0;
}

static const char *blk_op_name(enum blk_op op)
{
	static const char *const names[] = {
		[BLK_READ] = "read", [BLK_WRITE] = "write", [BLK_FLUSH] = "flush",
		[BLK_UNMAP] = "unmap", [BLK_WRITE_ZEROES] = "write-zeroes",
	};

	return op <= BLK_WRITE_ZEROES ? names[op] : "?";
}

/* Ops whose SCSI commands carry Data-Out (counted in wr_inflight). */
static bool blk_data_out(enum blk_op op)
{
	return op == BLK_WRITE || op == BLK_UNMAP || op == BLK_WRITE_ZEROES;
}

/* A finished or failed part: its Data-Out no longer in the session. */
static void blk_part_release(struct blk_disk *d, const struct blk_req *r,
			     const struct iscsi_sess_req *q)
{
	if (blk_data_out(r->op))
		d->wr_inflight -= q->len;
	if (r->op == BLK_UNMAP)
		free(q->buf);
}

static void blk_complete(struct blk_disk *d, struct blk_req *r)
{
	uint64_t us = time_us() - r->t_submit_us;

	if (r->flags & BLK_F_STARTED) {
		d->active--;
		if (r->flags & BLK_F_BARRIER)
			d->barrier_busy = false;
	}
	if (r->err)
		d->st.errors++;
	else if (r->op == BLK_READ)
		d->st.reads++, d->st.rd_bytes += (uint64_t)r->count * d->block_size;
	else if (r->op == BLK_WRITE)
		d->st.writes++, d->st.wr_bytes += (uint64_t)r->count * d->block_size;
	else if (r->op == BLK_UNMAP)
		d->st.unmaps++, d->st.unmap_blocks += r->count;
	else if (r->op == BLK_WRITE_ZEROES)
		d->st.zeroes++, d->st.zero_blocks += r->count;
	else
		d->st.flushes++;
	d->st.lat_us += us;
	r->next = NULL;
	r->done(r);
}

int blk_submit(struct blk_disk *d, struct blk_req *r)
{
	if (!d || d->state == DISK_FAILED || d->state == DISK_DETACHING || !d->t_ready_us)
		return -ENODEV;
	if (d->state == DISK_LOST)
		return -EACCES;
	if (!r->done || r->op > BLK_WRITE_ZEROES)
		return -EINVAL;
	if ((r->op == BLK_UNMAP && !d->can_unmap) ||
	    (r->op == BLK_WRITE_ZEROES && !d->can_write_same))
		return -EOPNOTSUPP;
	if (r->op != BLK_FLUSH && (!r->count || r->lba >= d->nblocks ||
				   r->count > d->nblocks - r->lba))
		return -EINVAL;
	if ((r->op == BLK_READ || r->op == BLK_WRITE) && !r->buf)
		return -EINVAL;
	/* The UNMAP bit is a permission, not a promise: without LBPWS the
	 * LUN would refuse the command, so zero without it. */
	if (r->op != BLK_WRITE_ZEROES || !d->ws_unmap)
		r->flags &= ~BLK_F_UNMAP;
	if (r->op == BLK_FLUSH)
		r->flags |= BLK_F_BARRIER;
	r->flags &= ~BLK_F_STARTED;
	r->err = 0;
	r->issued = r->parts = 0;
	r->next = NULL;
	r->disk = d;
	r->t_submit_us = time_us();
	if (d->q_tail)
		d->q_tail->next = r;
	else
		d->q_head = r;
	d->q_tail = r;
	blk_kick(d);
	return 0;
}

/* Blocks one command of r may carry. */
static uint32_t blk_part_max(const struct blk_disk *d, const struct blk_req *r)
{
	if (r->op == BLK_UNMAP)
		return d->max_unmap_blocks;
	if (r->op == BLK_WRITE_ZEROES)
		return (uint32_t)d->max_ws_blocks;
	return d->max_xfer / d->block_size;
}

/* The CDB and Data-Out of an UNMAP or WRITE SAME part of n blocks at lba. */
static int blk_prov_cdb(struct blk_disk *d, const struct blk_req *r, uint64_t lba, uint32_t n,
			struct iscsi_sess_req *q)
{
	struct scsi_unmap_desc one = { .lba = lba, .n = n };
	uint8_t *param;
	int rc;

	q->dir = ISCSI_SESS_WRITE;
	q->cdb_len = 16;
	if (r->op == BLK_WRITE_ZEROES) {
		q->buf = d->zero_block;
		q->len = d->block_size;
		return scsi_cdb_write_same16(q->cdb, lba, n, r->flags & BLK_F_UNMAP);
	}
	q->len = SCSI_UNMAP_HDR_LEN + SCSI_UNMAP_DESC_LEN;
	param = malloc(q->len);
	if (!param)
		return -ENOMEM;
	rc = scsi_unmap_param(param, q->len, &one, 1);
	if (rc >= 0)
		rc = scsi_cdb_unmap(q->cdb, (uint16_t)q->len);
	if (rc < 0) {
		free(param);
		return rc;
	}
	q->cdb_len = 10;
	q->buf = param;
	return 0;
}

/* The next SCSI command of r: 0 queued, -EAGAIN no room, else error. */
static int blk_issue_part(struct blk_disk *d, struct blk_req *r)
{
	struct iscsi_sess_req q = { .lun = d->lun_raw, .cookie = r };
	uint32_t per = blk_part_max(d, r);
	uint32_t n = r->count - r->issued;
	int rc;

	if (r->op == BLK_FLUSH) {
		scsi_cdb_sync16(q.cdb, 0, 0);		/* the whole medium */
		q.cdb_len = 16;
		q.dir = ISCSI_SESS_NONE;
		n = 0;
	} else if (r->op == BLK_UNMAP || r->op == BLK_WRITE_ZEROES) {
		n = n < per ? n : per;
		/* Data-Out of one block at most: room checked before the list
		 * is allocated. */
		if (d->wr_inflight && d->wr_inflight + d->block_size > DISK_WR_INFLIGHT)
			return -EAGAIN;
		rc = blk_prov_cdb(d, r, r->lba + r->issued, n, &q);
		if (rc < 0)
			return rc;
	} else {
		n = n < per ? n : per;
		q.len = n * d->block_size;
		if (r->op == BLK_WRITE && d->wr_inflight &&
		    d->wr_inflight + q.len > DISK_WR_INFLIGHT)
			return -EAGAIN;
		rc = scsi_cdb_rw(q.cdb, r->op == BLK_WRITE, r->lba + r->issued, n,
				 r->flags & BLK_F_FUA, d->nblocks);
		if (rc < 0)
			return rc;
		q.cdb_len = (uint8_t)rc;
		q.dir = r->op == BLK_WRITE ? ISCSI_SESS_WRITE : ISCSI_SESS_READ;
		q.buf = (uint8_t *)r->buf + (size_t)r->issued * d->block_size;
	}
	rc = iscsi_sess_submit(&d->link.sess, &q);
	if (rc < 0) {
		if (r->op == BLK_UNMAP)
			free(q.buf);
		return rc;
	}
	if (blk_data_out(r->op))
		d->wr_inflight += q.len;
	r->issued += r->op == BLK_FLUSH ? 1 : n;	/* a flush is one part */
	r->parts++;
	d->parts++;
	return 0;
}

static bool blk_fully_issued(const struct blk_req *r)
{
	return r->issued == (r->op == BLK_FLUSH ? 1 : r->count);
}

/* Start queued requests as ordering and room allow. */
void blk_kick(struct blk_disk *d)
{
	while (d->state == DISK_READY && d->q_head) {
		struct blk_req *r = d->q_head;
		int rc;

		if (!(r->flags & BLK_F_STARTED)) {
			if (d->barrier_busy || ((r->flags & BLK_F_BARRIER) && d->active))
				return;
			r->flags |= BLK_F_STARTED;
			d->active++;
			if (r->flags & BLK_F_BARRIER)
				d->barrier_busy = true;
		}
		while (!blk_fully_issued(r)) {
			rc = blk_issue_part(d, r);
			if (rc == -EAGAIN)
				return;
			if (rc < 0) {
				r->err = rc;
				r->issued = r->op == BLK_FLUSH ? 1 : r->count;
				break;
			}
		}
		d->q_head = r->next;
		if (!d->q_head)
			d->q_tail = NULL;
		if (r->parts == 0)
			blk_complete(d, r);
	}
}

void blk_part_done(struct blk_disk *d, struct blk_req *r, const struct iscsi_sess_done *x)
{
	/* The slot is free but untouched until the next submit. */
	const struct iscsi_sess_req *q = &d->link.sess.task[x->slot].req;
	uint32_t len = q->len;
	int err = x->err;

	if (!r->parts) {	/* a bug, not the target's doing: say so, keep going */
		pr_err("disk %s: completion for a request with no parts in flight", d->spec.name);
		return;
	}
	d->parts--;
	blk_part_release(d, r, q);
	if (!err && x->status)
		err = -EIO;
	/*
	 * A short read is an error the guest must see, not stale bytes.  The
	 * bytes placed decide, not only the flag: a target that sends less
	 * Data-In than asked without U set (RFC 7143 11.4.5.2 says it must
	 * set it) would otherwise hand back what the buffer held before.
	 */
	if (!err && r->op == BLK_READ && (x->xfer < len || (x->underflow && x->residual))) {
		err = -EIO;
		disk_set_why(d, err, "short read: %u of %u bytes (underflow %s)", x->xfer, len,
			     x->underflow ? "flagged" : "not flagged");
	}
	if (err && !r->err)
		r->err = err;
	if (x->err == -EAGAIN)
		d->st.retried++;
	if (--r->parts == 0 && blk_fully_issued(r))
		blk_complete(d, r);
	if (err == -EACCES)
		disk_lose(d, "RESERVATION CONFLICT: another host fenced this one");
	else if (err && err != -ECANCELED)
		pr_warn("disk %s: %s failed: %s", d->spec.name, blk_op_name(r->op),
			x->why ? x->why : "I/O error");
	blk_kick(d);
}

void blk_fail_all(struct blk_disk *d, int err, bool session_too)
{
	struct blk_req *r;

	/* Parts inside the session first: their requests finish here. */
	for (unsigned i = 0; session_too && i < ISCSI_SESS_TASKS; i++) {
		struct iscsi_sess_task *t = &d->link.sess.task[i];

		if (t->state == ISCSI_SESS_T_FREE || t->req.cookie == &d->ctl_busy)
			continue;
		t->state = ISCSI_SESS_T_FREE;
		r = t->req.cookie;
		d->parts--;
		blk_part_release(d, r, &t->req);
		if (!r->err)
			r->err = err;
		if (--r->parts == 0 && blk_fully_issued(r))
			blk_complete(d, r);
	}
	while ((r = d->q_head)) {
		d->q_head = r->next;
		if (!r->err)
			r->err = err;
		if (r->parts == 0)
			blk_complete(d, r);
		else
			r->issued = r->op == BLK_FLUSH ? 1 : r->count;	/* parts finish it */
	}
	d->q_tail = NULL;
}
