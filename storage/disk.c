/*
 * Disks on iSCSI LUNs: attach (login, probe, registration), reconnect
 * and session reinstatement, and the persistent-reservation sequences
 * that fence a host (SPC-4 5.13).  The request queue is blk.c; the console
 * is disk_cmds.c.
 *
 * Reservations.  Every Tern host registers one key, derived from its
 * hostname, on every disk it attaches, and the first host reserves the LUN
 * Write Exclusive - Registrants Only (type 5): every registered host may
 * write, nobody else may.  `disk fence` pre-empts every other key, so the
 * fenced host's writes fail with RESERVATION CONFLICT, which this host
 * takes as "the disk is gone from here" (disk_lose), never as an error to
 * retry.  After a reconnect the host checks its key is still registered
 * before it writes again (disk_fence_recheck): a key pre-empted while it
 * was away means lost; no keys at all means the target forgot its
 * reservations (tgt keeps them in memory only): lost too when writes wait
 * (they fail, unsent), else the host registers again.  Where the target
 * can (REPORT CAPABILITIES: PTPL_C), keys are registered with APTPL, so a
 * restarted target keeps them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbedtls/md5.h"
#include "mbedtls/sha256.h"

#include "kernel/kernel.h"
#include "kernel/lib/cmd.h"
#include "kernel/lib/config.h"
#include "kernel/platform/mainloop.h"
#include "net/netdev.h"
#include "net/stack.h"
#include "storage/disk.h"
#include "storage/lib/disk_fence.h"
#include "storage/storage.h"

#define DISK_BACKOFF_MIN_MS	500
#define DISK_BACKOFF_MAX_MS	5000
#define DISK_REPLACEMENT_US	(30 * 1000000ull)	/* I/O waits this long for a target */
#define DISK_PING_MS		5000			/* NOP-Out when idle */
#define DISK_TIMEOUT_MS		10000			/* ping, login, logout */
#define DISK_CMD_TIMEOUT_US	(60 * 1000000ull)	/* one SCSI command */

struct blk_disk *disk_table[DISK_MAX];
static char host_name[CFG_NAME_MAX] = CFG_DEFAULT_HOSTNAME;

static const char *const state_names[] = {
	[DISK_CONNECTING] = "connecting", [DISK_PROBING] = "probing",
	[DISK_READY] = "ready", [DISK_RECOVERING] = "recovering",
	[DISK_LOST] = "lost", [DISK_FAILED] = "failed", [DISK_DETACHING] = "detaching",
};

const char *disk_state_name(enum disk_state st)
{
	return st <= DISK_DETACHING ? state_names[st] : "?";
}

void disk_set_why(struct blk_disk *d, int err, const char *fmt, ...)
{
	va_list ap;

	d->err = err;
	va_start(ap, fmt);
	vsnprintf(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
}

static void disk_recheck(struct blk_disk *d);
static void probe_tur(struct blk_disk *d);

/* ---- control commands: one at a time, answered through ctl_next ---- */

int disk_ctl(struct blk_disk *d, const uint8_t *cdb, unsigned cdb_len, int dir, void *buf,
	     uint32_t len, disk_ctl_fn next)
{
	struct iscsi_sess_req r = {
		.lun = d->lun_raw, .cdb_len = (uint8_t)cdb_len,
		.dir = (enum iscsi_sess_dir)dir, .buf = buf, .len = len, .cookie = &d->ctl_busy,
		.ctl = true,
	};
	int rc;

	if (d->ctl_busy)
		return -EBUSY;
	memcpy(r.cdb, cdb, cdb_len);
	rc = iscsi_sess_submit(&d->link.sess, &r);
	if (rc < 0)
		return rc;
	d->ctl_busy = true;
	d->ctl_next = next;
	d->ctl_t_us = time_us();
	return 0;
}

/* The sequence's waiter, once (it may start another sequence). */
static void disk_seq_end(struct blk_disk *d, int rc)
{
	disk_seq_fn fn = d->seq_fn;

	d->seq_fn = NULL;
	if (fn)
		fn(d, rc, d->seq_arg);
}

void disk_ctl_finish(struct blk_disk *d, int rc)
{
	d->ctl_result = rc;
	d->ctl_done = true;
	d->ctl_step = 0;
	disk_seq_end(d, rc);
	/* A sequence that rode out a reconnect: now check the key. */
	if (d->state == DISK_RECOVERING && d->link.sess.state == ISCSI_SESS_FULL &&
	    !d->ctl_busy)
		disk_recheck(d);
}

int disk_seq_run(struct blk_disk *d, int (*start)(struct blk_disk *d), disk_seq_fn fn,
		 void *arg)
{
	int rc;

	if (d->seq_fn)
		return -EBUSY;
	rc = start(d);
	if (rc == 0) {
		d->seq_fn = fn;
		d->seq_arg = arg;
	}
	return rc;
}

void disk_seq_forget(struct blk_disk *d, void *arg)
{
	if (d->seq_fn && d->seq_arg == arg)
		d->seq_fn = NULL;
}

/* A control command failed to even start: end its sequence. */
static void ctl_or_finish(struct blk_disk *d, int rc)
{
	if (rc < 0)
		disk_ctl_finish(d, rc);
}

static int pr_in(struct blk_disk *d, uint8_t action, disk_ctl_fn next)
{
	uint8_t cdb[10];

	scsi_cdb_pr_in(cdb, action, 8 + 8 * DISK_PR_KEYS_MAX);
	return disk_ctl(d, cdb, sizeof(cdb), ISCSI_SESS_READ, d->ctl_buf,
			8 + 8 * DISK_PR_KEYS_MAX, next);
}

static int pr_out(struct blk_disk *d, enum scsi_pr_out_action action, uint64_t key,
		  uint64_t sa_key, enum scsi_pr_type type, disk_ctl_fn next)
{
	/* APTPL counts in the register actions only (SPC-4 6.16.3); the
	 * last one received rules the LUN (5.13.5), so every one carries it. */
	struct scsi_pr_out o = {
		.action = action, .type = type, .key = key, .sa_key = sa_key,
		.aptpl = d->aptpl && (action == SCSI_PR_REGISTER ||
				      action == SCSI_PR_REGISTER_IGNORE),
	};
	uint8_t cdb[10];
	int rc = scsi_pr_out(&o, cdb, d->ctl_buf);

	if (rc < 0)
		return rc;
	return disk_ctl(d, cdb, sizeof(cdb), ISCSI_SESS_WRITE, d->ctl_buf,
			SCSI_PR_OUT_PARAM_LEN, next);
}

static int parse_keys(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	uint32_t gen, total;

	return scsi_parse_pr_keys(d->ctl_buf, x->xfer, &gen, d->keys, DISK_PR_KEYS_MAX,
				  &d->nkeys, &total);
}

static bool have_key(const struct blk_disk *d, uint64_t k)
{
	for (unsigned i = 0; i < d->nkeys; i++)
		if (d->keys[i] == k)
			return true;
	return false;
}

/* ---- becoming ready ---- */

/* READY: held I/O may go. */
static void disk_set_ready(struct blk_disk *d)
{
	d->state = DISK_READY;
	d->t_ready_us = time_us();
	d->backoff_ms = 0;
	iscsi_sess_hold(&d->link.sess, false);	/* reissued I/O may go now */
}

static void disk_ready(struct blk_disk *d)
{
	bool first = !d->t_ready_us;

	if (d->state == DISK_LOST || d->state == DISK_DETACHING)
		return;
	disk_set_ready(d);
	if (first)
		pr_info("disk %s: ready: %s %s, %llu blocks of %u bytes, key %016llx%s",
			d->spec.name, d->inq.vendor, d->inq.product,
			(unsigned long long)d->nblocks, d->block_size,
			(unsigned long long)d->key, d->pr_ok ? "" : " (no reservations)");
	else
		pr_info("disk %s: back after %u reconnect(s)", d->spec.name, d->reconnects);
	disk_ctl_finish(d, 0);
	blk_kick(d);
}

static void reserve_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	if (x->err == 0) {
		d->resv.held = true;
		d->resv.key = d->key;
		d->resv.type = SCSI_PR_WE_REGISTRANTS_ONLY;
	}
	/* A conflict: another host reserved first; registered, we may write. */
	disk_ready(d);
}

static void resv_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	if (x->err || scsi_parse_pr_reservation(d->ctl_buf, x->xfer, &d->resv) < 0) {
		disk_ready(d);
		return;
	}
	if (d->resv.held || pr_out(d, SCSI_PR_RESERVE, d->key, 0, SCSI_PR_WE_REGISTRANTS_ONLY,
				   reserve_done) < 0)
		disk_ready(d);
}

static void register_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	if (x->err) {
		d->pr_ok = false;
		pr_warn("disk %s: no persistent reservations (%s): this disk cannot be fenced",
			d->spec.name, x->why ? x->why : "refused");
		disk_ready(d);
		return;
	}
	d->pr_ok = d->registered = true;
	if (pr_in(d, SCSI_PR_READ_RESERVATION, resv_done) < 0)
		disk_ready(d);
}

static void pr_register(struct blk_disk *d)
{
	if (pr_out(d, SCSI_PR_REGISTER_IGNORE, 0, d->key, 0, register_done) < 0)
		disk_ready(d);
}

/* Can the LUN keep registrations through a power loss (its restart)?
 * Then register with APTPL.  No answer, or no PTPL_C (tgt): without. */
static void pr_caps_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	struct scsi_pr_caps c;

	d->aptpl = !x->err && !x->status && !scsi_parse_pr_caps(d->ctl_buf, x->xfer, &c) &&
		   c.ptpl_c;
	pr_register(d);
}

static void pr_caps(struct blk_disk *d)
{
	uint8_t cdb[10];

	scsi_cdb_pr_in(cdb, SCSI_PR_REPORT_CAPABILITIES, 8);
	if (disk_ctl(d, cdb, sizeof(cdb), ISCSI_SESS_READ, d->ctl_buf, 8, pr_caps_done) < 0)
		pr_register(d);
}

/* Writes parked from before the disconnect: held in the session (never
 * sent on this connection) or still queued here. */
static bool disk_held_writes(const struct blk_disk *d)
{
	for (unsigned i = 0; i < ISCSI_SESS_TASKS; i++) {
		const struct iscsi_sess_task *t = &d->link.sess.task[i];

		if (t->state != ISCSI_SESS_T_FREE && !t->req.ctl && t->req.dir == ISCSI_SESS_WRITE)
			return true;
	}
	for (const struct blk_req *r = d->q_head; r; r = r->next)
		if (r->op == BLK_WRITE || r->op == BLK_UNMAP || r->op == BLK_WRITE_ZEROES)
			return true;
	return false;
}

/* After a reconnect: is our key still there?  See disk_fence_recheck. */
static void recheck_keys_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	struct disk_fence_in in = { .held_writes = disk_held_writes(d) };
	enum disk_fence_verdict v;

	in.pr_in_err = x->err ? x->err : x->status ? -EIO : parse_keys(d, x);
	if (!in.pr_in_err) {
		in.nkeys = d->nkeys;
		in.ours = have_key(d, d->key);
	}
	v = disk_fence_recheck(&in);
	if (v == DISK_FENCE_RESUME) {
		disk_ready(d);		/* nothing held: the I/O will tell */
	} else if (v == DISK_FENCE_REGISTER) {
		/* Register this connection too: tgt ties a registration to
		 * the I_T nexus of one login, and a fresh login is a new one. */
		if (!in.ours)
			pr_warn("disk %s: the target forgot every reservation key "
				"(restarted?) and no write was waiting: registering again",
				d->spec.name);
		pr_register(d);
	} else {
		disk_lose(d, disk_fence_why(v));
		disk_ctl_finish(d, -EACCES);
	}
}

static void rejoin_begin(struct blk_disk *d);

static void disk_recheck(struct blk_disk *d)
{
	if (d->rejoin) {		/* a lost disk logged in again to rejoin */
		rejoin_begin(d);
		return;
	}
	if (!d->pr_ok || !d->registered) {
		disk_ready(d);
		return;
	}
	if (pr_in(d, SCSI_PR_READ_KEYS, recheck_keys_done) < 0)
		disk_ready(d);
}

/* ---- the probe: what is this LUN? ---- */

static void probe_fail(struct blk_disk *d, const struct iscsi_sess_done *x, const char *what)
{
	char desc[96];

	scsi_describe(desc, sizeof(desc), x->status, &x->sense);
	disk_set_why(d, x->err ? x->err : -EIO, "%s failed: %s", what,
		     x->err && x->err != -EIO ? x->why : desc);
	d->state = DISK_FAILED;
	disk_ctl_finish(d, d->err);
}

static void probe_step(struct blk_disk *d, const uint8_t *cdb, unsigned len, uint32_t alloc,
		       disk_ctl_fn next)
{
	int rc = disk_ctl(d, cdb, len, alloc ? ISCSI_SESS_READ : ISCSI_SESS_NONE,
			  alloc ? d->ctl_buf : NULL, alloc, next);

	if (rc < 0) {
		disk_set_why(d, rc, "cannot queue a probe command");
		d->state = DISK_FAILED;
		disk_ctl_finish(d, rc);
	}
}

static void probe_luns_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	uint64_t luns[1];
	unsigned stored;
	uint32_t total;

	if (!x->err && !scsi_parse_report_luns(d->ctl_buf, x->xfer, luns, 1, &stored, &total))
		d->nluns = total;
	if (d->state == DISK_PROBING)
		pr_caps(d);
	else
		disk_recheck(d);
}

static void probe_luns(struct blk_disk *d)
{
	uint8_t cdb[12];

	scsi_cdb_report_luns(cdb, sizeof(d->ctl_buf));
	probe_step(d, cdb, sizeof(cdb), sizeof(d->ctl_buf), probe_luns_done);
}

/* What UNMAP and WRITE SAME the LUN takes; needs the block size. */
static void disk_provisioning(struct blk_disk *d)
{
	struct scsi_provisioning p;
	uint32_t cap;

	scsi_provisioning(d->have_b0 ? &d->limits : NULL, d->have_b2 ? &d->lbp : NULL,
			  DISK_WS_BLOCKS, &p);
	if (p.write_same && !d->zero_block) {
		d->zero_block = calloc(1, d->block_size);
		if (!d->zero_block) {
			pr_warn("disk %s: no memory for WRITE SAME's block: no write-zeroes",
				d->spec.name);
			p.write_same = p.ws_unmap = false;
		}
	}
	cap = DISK_PROV_BYTES / d->block_size;
	d->can_unmap = p.unmap;
	d->can_write_same = p.write_same;
	d->ws_unmap = p.write_same && p.ws_unmap;
	d->max_unmap_blocks = p.max_unmap_blocks < cap ? p.max_unmap_blocks : cap;
	d->max_unmap_descs = p.max_unmap_descs;
	d->max_ws_blocks = p.max_ws_blocks < cap ? p.max_ws_blocks : cap;
}

static void probe_cap_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	struct scsi_capacity cap;
	int rc;

	if (x->err || x->status) {
		probe_fail(d, x, "READ CAPACITY(16)");
		return;
	}
	rc = scsi_parse_capacity16(d->ctl_buf, x->xfer, &cap);
	if (rc < 0) {
		disk_set_why(d, rc, "READ CAPACITY(16): unusable answer (block size or length)");
		d->state = DISK_FAILED;
		disk_ctl_finish(d, rc);
		return;
	}
	d->nblocks = cap.nblocks;
	d->block_size = cap.block_size;
	/* One command: the target's limit in blocks (VPD B0, 0: none), at
	 * most DISK_XFER_MAX, always whole blocks. */
	d->max_xfer = DISK_XFER_MAX / d->block_size;
	if (d->vpd_max_blocks && d->vpd_max_blocks < d->max_xfer)
		d->max_xfer = d->vpd_max_blocks;
	d->max_xfer *= d->block_size;
	disk_provisioning(d);
	probe_luns(d);
}

static void probe_cap(struct blk_disk *d)
{
	uint8_t cdb[16];

	scsi_cdb_read_capacity16(cdb, SCSI_RC16_LEN);
	probe_step(d, cdb, sizeof(cdb), SCSI_RC16_LEN, probe_cap_done);
}

/* VPD pages: 0x00 lists the rest; 0x80 serial, 0x83 identity, 0xb0
 * limits, 0xb2 logical block provisioning. */
static const uint8_t vpd_pages[] = { 0x00, 0x80, 0x83, 0xb0, 0xb2 };

static void probe_vpd(struct blk_disk *d);

static void probe_vpd_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	uint8_t page = vpd_pages[d->ctl_step];

	if (!x->err && !x->status) {
		if (page == 0x80)
			scsi_vpd_serial(d->ctl_buf, x->xfer, d->serial, sizeof(d->serial));
		if (page == 0x83) {
			struct scsi_designator id;

			if (!scsi_vpd83_lu_id(d->ctl_buf, x->xfer, &id))
				for (unsigned i = 0; i < id.len && 2 * i + 2 < sizeof(d->lu_id); i++)
					snprintf(d->lu_id + 2 * i, 3, "%02x", id.id[i]);
		}
		/* MAXIMUM TRANSFER LENGTH and the UNMAP/WRITE SAME limits. */
		if (page == 0xb0 && !scsi_parse_vpd_b0(d->ctl_buf, x->xfer, &d->limits)) {
			d->have_b0 = true;
			d->vpd_max_blocks = d->limits.max_xfer_blocks;
		}
		if (page == 0xb2 && !scsi_parse_vpd_b2(d->ctl_buf, x->xfer, &d->lbp))
			d->have_b2 = true;
	}
	/* Ask only for pages page 0x00 listed. */
	if (page == 0x00 && (x->err || x->status))
		d->ctl_step = sizeof(vpd_pages);
	else if (page == 0x00)
		memcpy(d->ctl_buf + 2048, d->ctl_buf, x->xfer < 2048 ? x->xfer : 2048);
	d->ctl_step++;
	probe_vpd(d);
}

static void probe_vpd(struct blk_disk *d)
{
	uint8_t cdb[6];

	while (d->ctl_step > 0 && d->ctl_step < (int)sizeof(vpd_pages) &&
	       scsi_vpd_supports(d->ctl_buf + 2048, 2048, vpd_pages[d->ctl_step]) != 1)
		d->ctl_step++;
	if (d->ctl_step >= (int)sizeof(vpd_pages)) {
		d->ctl_step = 0;
		probe_cap(d);
		return;
	}
	scsi_cdb_inquiry(cdb, true, vpd_pages[d->ctl_step], 2048);
	probe_step(d, cdb, sizeof(cdb), 2048, probe_vpd_done);
}

static void probe_inq_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	if (x->err || x->status) {
		probe_fail(d, x, "INQUIRY");
		return;
	}
	if (scsi_parse_inquiry(d->ctl_buf, x->xfer, &d->inq) < 0 || d->inq.qualifier ||
	    d->inq.type) {
		disk_set_why(d, -ENODEV, "LUN %u is not a connected disk (qualifier %u, type %u)",
			     d->spec.lun, d->inq.qualifier, d->inq.type);
		d->state = DISK_FAILED;
		disk_ctl_finish(d, -ENODEV);
		return;
	}
	memset(d->ctl_buf + 2048, 0, 2048);
	d->have_b0 = d->have_b2 = false;
	d->ctl_step = 0;
	probe_vpd(d);
}

static void probe_tur_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	uint8_t cdb[6];

	if (x->err || x->status) {
		probe_fail(d, x, "TEST UNIT READY");
		return;
	}
	scsi_cdb_inquiry(cdb, false, 0, 96);
	probe_step(d, cdb, sizeof(cdb), 96, probe_inq_done);
}

static void probe_tur(struct blk_disk *d)
{
	uint8_t cdb[6];

	scsi_cdb_tur(cdb);
	probe_step(d, cdb, sizeof(cdb), 0, probe_tur_done);
}

/* ---- fencing, keys, release ---- */

static void fence_next(struct blk_disk *d);

static void fence_resv_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	if (x->err || scsi_parse_pr_reservation(d->ctl_buf, x->xfer, &d->resv) < 0) {
		disk_ctl_finish(d, x->err ? x->err : -EIO);
		return;
	}
	if (d->resv.held)
		disk_ctl_finish(d, d->resv.key == d->key ? 0 : -EBUSY);
	else
		ctl_or_finish(d, pr_out(d, SCSI_PR_RESERVE, d->key, 0,
					SCSI_PR_WE_REGISTRANTS_ONLY, reserve_done));
}

static void fence_preempt_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	if (x->err) {
		disk_ctl_finish(d, x->err);
		return;
	}
	pr_info("disk %s: pre-empted key %016llx", d->spec.name,
		(unsigned long long)d->keys[d->ctl_step]);
	d->preempted++;
	d->ctl_step++;
	fence_next(d);
}

static void fence_next(struct blk_disk *d)
{
	while (d->ctl_step < (int)d->nkeys && d->keys[d->ctl_step] == d->key)
		d->ctl_step++;
	if (d->ctl_step < (int)d->nkeys) {
		ctl_or_finish(d, pr_out(d, SCSI_PR_PREEMPT, d->key, d->keys[d->ctl_step],
					SCSI_PR_WE_REGISTRANTS_ONLY, fence_preempt_done));
		return;
	}
	ctl_or_finish(d, pr_in(d, SCSI_PR_READ_RESERVATION, fence_resv_done));
}

static void fence_keys_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	if (x->err || parse_keys(d, x) < 0) {
		disk_ctl_finish(d, x->err ? x->err : -EIO);
		return;
	}
	/* The same key can be listed once per I_T nexus: pre-empt it once. */
	for (unsigned i = 0; i < d->nkeys; i++)
		for (unsigned j = i + 1; j < d->nkeys;)
			if (d->keys[j] == d->keys[i])
				d->keys[j] = d->keys[--d->nkeys];
			else
				j++;
	d->ctl_step = 0;
	d->preempted = 0;
	fence_next(d);
}

int disk_fence_start(struct blk_disk *d)
{
	if (d->state != DISK_READY)
		return d->state == DISK_LOST ? -EACCES : -EAGAIN;
	if (!d->pr_ok)
		return -EOPNOTSUPP;
	d->ctl_done = false;
	return pr_in(d, SCSI_PR_READ_KEYS, fence_keys_done);
}

static void keys_resv_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	int rc = x->err ? x->err : scsi_parse_pr_reservation(d->ctl_buf, x->xfer, &d->resv);

	disk_ctl_finish(d, rc);
}

static void keys_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	int rc = x->err ? x->err : parse_keys(d, x);

	if (rc < 0)
		disk_ctl_finish(d, rc);
	else
		ctl_or_finish(d, pr_in(d, SCSI_PR_READ_RESERVATION, keys_resv_done));
}

int disk_keys_start(struct blk_disk *d)
{
	if (d->link.sess.state != ISCSI_SESS_FULL)
		return -ENOTCONN;
	d->ctl_done = false;
	return pr_in(d, SCSI_PR_READ_KEYS, keys_done);
}

static void unregister_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	d->registered = false;
	disk_ctl_finish(d, x->err);
}

static void release_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	(void)x;
	ctl_or_finish(d, pr_out(d, SCSI_PR_REGISTER, d->key, 0, 0, unregister_done));
}

/* Detach: give the reservation up and unregister, so no stale key of
 * ours keeps another host's writes company. */
int disk_release_start(struct blk_disk *d)
{
	if (!d->pr_ok || !d->registered || d->state == DISK_LOST ||
	    d->link.sess.state != ISCSI_SESS_FULL)
		return -ENOENT;
	d->ctl_done = false;
	if (d->resv.held && d->resv.key == d->key)
		return pr_out(d, SCSI_PR_RELEASE, d->key, 0, d->resv.type, release_done);
	return pr_out(d, SCSI_PR_REGISTER, d->key, 0, 0, unregister_done);
}

/*
 * Rejoin.  REGISTER AND IGNORE EXISTING KEY (SPC-4 6.16.2, service
 * action 06h; registering: 5.13.7) ignores the RESERVATION KEY field and
 * registers this I_T nexus with the service action key, whether or not a
 * key of ours is still there; a register action is not refused for a
 * reservation another I_T nexus holds (SPC-4 5.13.1: PERSISTENT RESERVE
 * OUT conflicts by service action), so it works after another host
 * pre-empted us.  Under Write Exclusive -
 * Registrants Only, being registered is what lets us write again; the
 * reservation stays with its holder (the fencing host), or is taken if
 * nobody holds one.  READ KEYS first only to tell whether our key was
 * still there (`disk rejoin` says so).
 */
static void rejoin_fail(struct blk_disk *d, int rc)
{
	d->rejoin = false;
	if (d->state == DISK_RECOVERING && !d->registered)
		d->state = DISK_LOST;	/* it came back to rejoin, and could not */
	disk_ctl_finish(d, rc);
}

static void rejoin_finish(struct blk_disk *d)
{
	bool was_lost = d->state != DISK_READY;

	d->rejoin = false;
	if (d->state == DISK_DETACHING) {	/* registered, but going anyway */
		disk_ctl_finish(d, -ENODEV);
		return;
	}
	d->registered = true;
	if (was_lost) {
		d->err = 0;
		d->why[0] = '\0';
	}
	disk_set_ready(d);
	pr_info("disk %s: key %016llx registered again%s%s", d->spec.name,
		(unsigned long long)d->key, d->had_key ? "" : " (it had been pre-empted)",
		was_lost ? ": I/O resumes" : "");
	disk_ctl_finish(d, 0);
	blk_kick(d);
}

static void rejoin_reserve_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	if (!x->err) {
		d->resv.held = true;
		d->resv.key = d->key;
		d->resv.type = SCSI_PR_WE_REGISTRANTS_ONLY;
	}
	rejoin_finish(d);	/* a conflict: another host reserved meanwhile */
}

static void rejoin_resv_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	if (x->err || scsi_parse_pr_reservation(d->ctl_buf, x->xfer, &d->resv) < 0 ||
	    d->resv.held || pr_out(d, SCSI_PR_RESERVE, d->key, 0, SCSI_PR_WE_REGISTRANTS_ONLY,
				   rejoin_reserve_done) < 0)
		rejoin_finish(d);
}

static void rejoin_register_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	if (x->err) {
		rejoin_fail(d, x->err);
		return;
	}
	d->registered = true;
	if (pr_in(d, SCSI_PR_READ_RESERVATION, rejoin_resv_done) < 0)
		rejoin_finish(d);
}

static void rejoin_keys_done(struct blk_disk *d, const struct iscsi_sess_done *x)
{
	int rc = x->err ? x->err : parse_keys(d, x);

	if (rc < 0) {
		rejoin_fail(d, rc);
		return;
	}
	d->had_key = have_key(d, d->key);
	rc = pr_out(d, SCSI_PR_REGISTER_IGNORE, 0, d->key, 0, rejoin_register_done);
	if (rc < 0)
		rejoin_fail(d, rc);
}

static void rejoin_begin(struct blk_disk *d)
{
	int rc = pr_in(d, SCSI_PR_READ_KEYS, rejoin_keys_done);

	if (rc < 0)
		rejoin_fail(d, rc);
}

int disk_rejoin_start(struct blk_disk *d)
{
	int rc;

	if (d->state == DISK_FAILED || d->state == DISK_DETACHING)
		return -ENODEV;
	if (d->state != DISK_READY && d->state != DISK_LOST)
		return -EAGAIN;
	if (!d->pr_ok)
		return -EOPNOTSUPP;
	if (d->ctl_busy)
		return -EBUSY;
	if (d->link.sess.state != ISCSI_SESS_FULL) {
		if (d->state == DISK_READY)
			return -EAGAIN;		/* disk_on_down is about to run */
		/* Lost, and the connection went too: a lost disk does not
		 * reconnect by itself (disk_on_down).  Log in again; the
		 * recheck after the login registers (disk_recheck). */
		d->state = DISK_RECOVERING;
		d->down_since_us = time_us();
		d->retry_at_us = 0;
	}
	d->ctl_done = false;
	d->rejoin = true;
	d->had_key = false;
	if (d->state == DISK_RECOVERING)
		return 0;
	rc = pr_in(d, SCSI_PR_READ_KEYS, rejoin_keys_done);
	if (rc < 0) {
		d->rejoin = false;
		d->ctl_done = true;
	}
	return rc;
}

/* ---- losing the disk ---- */

void disk_lose(struct blk_disk *d, const char *why)
{
	if (d->state == DISK_LOST)
		return;
	d->state = DISK_LOST;
	d->registered = false;
	d->resv.held = false;		/* whatever it is now, not known here */
	d->st.conflicts++;
	disk_set_why(d, -EACCES, "this host lost the disk: %s", why);
	pr_err("disk %s: %s; all I/O to it now fails (disk rejoin %s registers this "
	       "host again)", d->spec.name, d->why, d->spec.name);
	/* Held since a reconnect (disk_on_event), these never went out on
	 * this connection: fail them here, never send them (a target that
	 * forgot its keys would take them).  Unheld, they meet the conflict. */
	blk_fail_all(d, -EACCES, d->link.sess.hold);
	iscsi_sess_hold(&d->link.sess, false);
}

/* ---- the session's callbacks ---- */

static void disk_on_done(void *owner, const struct iscsi_sess_done *x)
{
	struct blk_disk *d = owner;

	if (x->tries > 1)
		d->st.reissued++;	/* sent again: a retry or a reconnect */
	if (x->cookie == &d->ctl_busy) {
		disk_ctl_fn next = d->ctl_next;

		d->ctl_busy = false;
		d->ctl_next = NULL;
		if (next)
			next(d, x);
		return;
	}
	blk_part_done(d, x->cookie, x);
}

static void disk_on_event(void *owner, enum iscsi_sess_event ev, int err, uint32_t arg,
			  const char *why)
{
	struct blk_disk *d = owner;

	(void)err, (void)why;	/* failures: see disk_on_down */
	switch (ev) {
	case ISCSI_SESS_EV_LOGGED_IN:
		d->logins++;
		if (d->state == DISK_CONNECTING) {
			d->state = DISK_PROBING;
			/* A probe step cut off by a lost connection was put back
			 * in the session and goes out again: it carries on. */
			if (!d->ctl_busy)
				probe_tur(d);
		} else if (d->state == DISK_RECOVERING) {
			pr_info("disk %s: logged in again (%u task(s) to reissue)",
				d->spec.name, d->link.sess.ninflight);
			/* Before the reissued tasks go out (this event comes
			 * first): is our key still there?  See disk_recheck. */
			if (d->pr_ok && d->registered)
				iscsi_sess_hold(&d->link.sess, true);
			if (!d->ctl_busy)
				disk_recheck(d);
		}
		break;
	case ISCSI_SESS_EV_ASYNC:
		pr_info("disk %s: asynchronous event %u from the target", d->spec.name, arg);
		break;
	default:
		break;
	}
}

static void disk_schedule_retry(struct blk_disk *d)
{
	d->backoff_ms = d->backoff_ms ? d->backoff_ms * 2 : DISK_BACKOFF_MIN_MS;
	if (d->backoff_ms > DISK_BACKOFF_MAX_MS)
		d->backoff_ms = DISK_BACKOFF_MAX_MS;
	d->retry_at_us = time_us() + d->backoff_ms * 1000ull;
}

static void disk_on_down(void *owner, int err, const char *why)
{
	struct blk_disk *d = owner;
	bool first = !d->t_ready_us && !d->from_cfg;

	/* why is the connection's first cause (iscsi_link.c). */
	if (d->state != DISK_LOST && d->state != DISK_FAILED)
		disk_set_why(d, err, "%s", why);
	switch (d->state) {
	case DISK_CONNECTING:
	case DISK_PROBING:
		if (first) {
			d->state = DISK_FAILED;
			disk_ctl_finish(d, err);
			return;
		}
		d->state = d->t_ready_us ? DISK_RECOVERING : DISK_CONNECTING;
		break;
	case DISK_READY:
		d->state = DISK_RECOVERING;
		d->down_since_us = time_us();
		pr_warn("disk %s: connection lost (%s): reconnecting; I/O waits up to %llu s",
			d->spec.name, why, DISK_REPLACEMENT_US / 1000000);
		break;
	case DISK_RECOVERING:
		break;
	default:
		return;		/* lost, failed, detaching: no reconnect */
	}
	disk_schedule_retry(d);
}

static const struct iscsi_link_ops disk_link_ops = {
	.done = disk_on_done, .event = disk_on_event, .down = disk_on_down,
};

/* ---- attach and the main loop ---- */

static int tern_md5(const struct iscsi_chunk *parts, unsigned nparts, uint8_t out[16])
{
	mbedtls_md5_context c;
	int rc;

	mbedtls_md5_init(&c);
	rc = mbedtls_md5_starts_ret(&c);
	for (unsigned i = 0; !rc && i < nparts; i++)
		rc = mbedtls_md5_update_ret(&c, parts[i].p, parts[i].n);
	if (!rc)
		rc = mbedtls_md5_finish_ret(&c, out);
	mbedtls_md5_free(&c);
	return rc ? -EIO : 0;
}

/* 8 bytes of SHA-256 over a label: the host's reservation key and a
 * disk's ISID qualifier stay the same across reboots and re-attaches. */
static uint64_t disk_hash64(const char *a, const char *b)
{
	uint8_t h[32];
	char in[160];
	uint64_t v = 0;

	snprintf(in, sizeof(in), "%s/%s", a, b);
	mbedtls_sha256_ret((const unsigned char *)in, strlen(in), h, 0);
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return v;
}

static void disk_session_cfg(struct blk_disk *d)
{
	struct iscsi_sess_cfg *c = &d->scfg;
	const struct disk_spec *s = &d->spec;

	snprintf(d->initiator, sizeof(d->initiator), "iqn.2026-11.org.tern-hv:%s", host_name);
	memset(c, 0, sizeof(*c));
	c->initiator_name = d->initiator;
	c->target_name = s->iqn;
	/* ISID type "random" (RFC 7143 11.12.5: T = 10b) from the host and
	 * disk names: the same initiator port (SAM-5 4.6.4) after a reconnect
	 * or a reboot, so the session is reinstated, not duplicated (6.3.5). */
	c->isid = 0x800000000000ull | (disk_hash64(host_name, s->name) & 0xffffffffffull);
	iscsi_params_defaults(&c->want);
	c->want.max_recv_dsl = 256 * 1024;
	c->want.max_burst = 1024 * 1024;
	c->want.first_burst = 256 * 1024;
	c->want.initial_r2t = false;
	c->want.immediate_data = true;
	c->want.header_digest = s->header_digest;
	c->want.data_digest = s->data_digest;
	c->want.auth = s->chap ? ISCSI_AUTH_CHAP : ISCSI_AUTH_NONE;
	if (s->chap) {
		d->chap = (struct iscsi_chap_cfg){
			.name = s->chap_user, .secret = (const uint8_t *)s->chap_secret,
			.slen = strlen(s->chap_secret), .mutual = s->mutual,
			.target_name = s->mutual ? s->mutual_user : NULL,
			.target_secret = (const uint8_t *)s->mutual_secret,
			.tslen = strlen(s->mutual_secret),
		};
		c->chap = &d->chap;
	}
	c->md5 = tern_md5;
	c->nop_interval_ms = DISK_PING_MS;
	c->timeout_ms = DISK_TIMEOUT_MS;
	c->max_retries = 8;
}

static int disk_slot(const char *name)
{
	int free_slot = -ENOSPC;

	for (int i = 0; i < DISK_MAX; i++) {
		if (disk_table[i] && !strcmp(disk_table[i]->spec.name, name))
			return -EEXIST;
		if (!disk_table[i] && free_slot < 0)
			free_slot = i;
	}
	return free_slot;
}

int disk_attach(const struct disk_spec *spec, bool from_cfg, struct blk_disk **out)
{
	struct blk_disk *d;
	int slot = disk_slot(spec->name), rc;

	if (slot < 0)
		return slot;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->spec = *spec;
	d->from_cfg = from_cfg;
	d->key = disk_hash64("tern-pr-key", host_name) | 1;	/* never 0 */
	d->t_attach_us = time_us();
	rc = scsi_lun_encode(spec->lun, &d->lun_raw);
	if (rc < 0)
		goto fail;
	disk_session_cfg(d);
	rc = iscsi_link_init(&d->link, &d->scfg, spec->addr, spec->port, DISK_TX_RING,
			     &disk_link_ops, d);
	if (rc < 0)
		goto fail;
	d->state = DISK_CONNECTING;
	rc = iscsi_link_connect(&d->link);
	if (rc < 0) {
		iscsi_link_free(&d->link);
		goto fail;
	}
	disk_table[slot] = d;
	*out = d;
	return 0;
fail:
	free(d);
	return rc;
}

void disk_free(struct blk_disk *d)
{
	for (int i = 0; i < DISK_MAX; i++)
		if (disk_table[i] == d)
			disk_table[i] = NULL;
	blk_fail_all(d, -ENODEV, true);
	disk_seq_end(d, -ENODEV);
	iscsi_link_free(&d->link);
	free(d->zero_block);
	free(d);
}

/*
 * Fail every request and control command the disk holds with err and
 * start the session afresh (a new login reissues nothing).  Two callers:
 * a target away past the replacement timeout, and a command without an
 * answer past DISK_CMD_TIMEOUT_US (a target that answers pings but not a
 * command would otherwise hold its buffer, and a console waiting on it,
 * for ever).  The guest sees an error, not a hang; the disk keeps trying.
 */
static void disk_reset(struct blk_disk *d, int err, const char *why)
{
	pr_err("disk %s: %s: failing the I/O it held", d->spec.name, why);
	disk_set_why(d, err, "%s", why);
	if (d->state == DISK_READY)
		d->state = DISK_RECOVERING;	/* done() callbacks may resubmit: queue */
	d->down_since_us = time_us();
	iscsi_link_fail(&d->link, err, why);	/* late answers would name freed tasks */
	blk_fail_all(d, err, true);
	d->ctl_busy = false;
	iscsi_link_reset_session(&d->link);
	if (!d->ctl_done)
		disk_ctl_finish(d, err);	/* after the reset: no recheck now */
}

/* When the oldest command the session holds (sent, or waiting for the
 * CmdSN window) was submitted; UINT64_MAX when none. */
static uint64_t disk_oldest_us(const struct blk_disk *d)
{
	uint64_t oldest = UINT64_MAX;

	for (unsigned i = 0; i < ISCSI_SESS_TASKS; i++) {
		const struct iscsi_sess_task *t = &d->link.sess.task[i];
		uint64_t t0;

		if (t->state == ISCSI_SESS_T_FREE)
			continue;
		t0 = t->req.cookie == &d->ctl_busy ? d->ctl_t_us :
		     ((const struct blk_req *)t->req.cookie)->t_submit_us;
		oldest = t0 < oldest ? t0 : oldest;
	}
	return oldest;
}

static void disk_timeouts(struct blk_disk *d, uint64_t now)
{
	uint64_t oldest;

	if (d->state == DISK_RECOVERING && now - d->down_since_us > DISK_REPLACEMENT_US) {
		disk_reset(d, -ETIMEDOUT, "the target stayed away past the replacement timeout");
		return;
	}
	if (now - d->t_timeouts_us < 1000000)
		return;			/* a scan of the tasks once a second */
	d->t_timeouts_us = now;
	oldest = disk_oldest_us(d);
	if (oldest != UINT64_MAX && now - oldest > DISK_CMD_TIMEOUT_US)
		disk_reset(d, -ETIMEDOUT, "a command got no answer in 60 s");
}

static void disk_service(struct blk_disk *d)
{
	uint64_t now;

	iscsi_link_service(&d->link);
	now = time_us();
	if ((d->state == DISK_CONNECTING || d->state == DISK_RECOVERING ||
	     d->state == DISK_PROBING) && d->link.st == ISCSI_LINK_IDLE &&
	    now >= d->retry_at_us) {
		d->reconnects += d->t_ready_us ? 1 : 0;
		if (iscsi_link_connect(&d->link) < 0)
			disk_schedule_retry(d);
	}
	disk_timeouts(d, now);
	blk_kick(d);
}

static void storage_service(void)
{
	for (int i = 0; i < DISK_MAX; i++)
		if (disk_table[i])
			disk_service(disk_table[i]);
}

static const struct mainloop_service storage_svc = {
	.name = "storage",
	.service = storage_service,
};

void storage_start(const struct tern_config *cfg)
{
	struct disk_spec spec;
	struct blk_disk *d;

	mainloop_register(&storage_svc);
	vblk_dev_start();

	snprintf(host_name, sizeof(host_name), "%s", cfg->hostname);
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		char line[CFG_LINE_MAX + 1], *argv[12];
		const char *why = NULL;
		int argc, rc;

		snprintf(line, sizeof(line), "%s", cfg->disks[i]);
		argc = cmd_tokenize(line, argv, 12, &why);
		rc = argc < 0 ? argc : disk_spec_parse(argc, argv, &spec, &why);
		if (rc == 0)
			rc = disk_attach(&spec, true, &d);
		if (rc < 0)
			pr_err("tern.cfg disk %u: %s", i + 1, why ? why : strerror(-rc));
		else
			pr_info("disk %s: attaching from tern.cfg", spec.name);
	}
}
