/*
 * Inside the block layer (disk.c, blk.c, disk_cmds.c): one struct per
 * attached disk.  Not for device models: they use blk.h.
 */
#ifndef TERN_STORAGE_DISK_H
#define TERN_STORAGE_DISK_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/blk.h"
#include "storage/iscsi_link.h"
#include "storage/lib/disk_spec.h"
#include "storage/lib/scsi_cdb.h"

#define DISK_MAX		8
#define DISK_TX_RING		(2u << 20)	/* bytes framed, not yet in TCP */
#define DISK_WR_INFLIGHT	(1u << 20)	/* write bytes in flight: < ring */
#define DISK_XFER_MAX		(256u << 10)	/* one SCSI command */
#define DISK_PR_KEYS_MAX	16
#define DISK_WS_BLOCKS		65536u		/* WRITE SAME per command, when the LUN says no limit */
/*
 * UNMAP and WRITE SAME cover at most this many bytes per command, whatever
 * the LUN allows: tgt 1.0.85 says "no limit" but turns a descriptor's
 * block count into a 32-bit byte length (usr/bs_rdwr.c), so 4 GiB or more
 * wraps and unmaps less than asked.  Linux's sd stops below 4 GiB too.
 */
#define DISK_PROV_BYTES		(1u << 31)

enum disk_state {
	DISK_CONNECTING,	/* first login under way (or retrying, from tern.cfg) */
	DISK_PROBING,		/* logged in: INQUIRY, capacity, registration */
	DISK_READY,
	DISK_RECOVERING,	/* connection lost: reconnecting, I/O waits */
	DISK_LOST,		/* RESERVATION CONFLICT: another host took it */
	DISK_FAILED,		/* the attach failed; detach it */
	DISK_DETACHING,
};

struct blk_disk;
typedef void (*disk_ctl_fn)(struct blk_disk *d, const struct iscsi_sess_done *r);
/* The end of a control sequence, for a waiter that is not a console. */
typedef void (*disk_seq_fn)(struct blk_disk *d, int rc, void *arg);

struct disk_stats {
	uint64_t reads, writes, flushes, rd_bytes, wr_bytes;
	uint64_t unmaps, zeroes, unmap_blocks, zero_blocks;
	uint64_t errors, retried, reissued, conflicts, lat_us;
};

struct blk_disk {
	struct disk_spec spec;
	bool from_cfg;			/* retry a failing first attach forever */
	enum disk_state state;
	int err;			/* last failure (negative errno) */
	char why[160];
	uint64_t t_attach_us, t_ready_us;

	struct iscsi_link link;
	struct iscsi_sess_cfg scfg;
	struct iscsi_chap_cfg chap;
	char initiator[96];
	uint64_t lun_raw;

	/* Reconnects (RFC 7143 6.3.5: session reinstatement). */
	uint64_t retry_at_us, down_since_us, t_timeouts_us;
	unsigned backoff_ms, reconnects;
	uint64_t logins;

	/* One control command at a time (probe, reservations). */
	bool ctl_busy;
	uint64_t ctl_t_us;		/* when the control command was queued */
	disk_ctl_fn ctl_next;
	uint8_t ctl_buf[4096];
	int ctl_step;			/* position in a multi-command sequence */
	int ctl_result;			/* of the last sequence, for waiters */
	bool ctl_done;
	disk_seq_fn seq_fn;		/* called once as the sequence ends */
	void *seq_arg;

	/* What the LUN says about itself. */
	struct scsi_inquiry inq;
	char serial[64];
	char lu_id[72];			/* hex of the VPD 0x83 designator */
	uint64_t nblocks;
	uint32_t block_size;
	uint32_t vpd_max_blocks;	/* VPD B0 MAXIMUM TRANSFER LENGTH, 0: none */
	uint32_t max_xfer;		/* bytes per command */
	unsigned nluns;

	/* Logical block provisioning (SBC-3 4.7), from VPD 0xb0 and 0xb2. */
	struct scsi_block_limits limits;
	struct scsi_lbp lbp;
	bool have_b0, have_b2;
	bool can_unmap;			/* UNMAP */
	bool can_write_same;		/* WRITE SAME(16) */
	bool ws_unmap;			/* ... with its UNMAP bit (LBPWS) */
	uint32_t max_unmap_blocks, max_unmap_descs;	/* per command */
	uint64_t max_ws_blocks;		/* per command, DISK_WS_BLOCKS without a limit */
	void *zero_block;		/* WRITE SAME's Data-Out: one block of zeros */

	/* Persistent reservations (SPC-4 5.13). */
	uint64_t key;			/* this host's key */
	bool pr_ok;			/* the target supports them */
	bool registered;
	struct scsi_pr_reservation resv;
	uint64_t keys[DISK_PR_KEYS_MAX];
	unsigned nkeys;
	unsigned preempted;		/* by the last fence */
	bool rejoin;			/* register again, whatever the keys say */
	bool had_key;			/* the rejoin found this host's key there */
	bool aptpl;			/* register with APTPL (REPORT CAPABILITIES: PTPL_C) */

	/* The VM whose virtio disk this is ("" for none): one at a time,
	 * and no detach meanwhile (vblk_dev.c). */
	char holder[32];

	/* The request queue (blk.c). */
	struct blk_req *q_head, *q_tail;
	unsigned active;		/* started, not completed */
	unsigned parts;			/* SCSI commands in the session */
	bool barrier_busy;
	uint32_t wr_inflight;		/* write bytes in the session */
	struct disk_stats st;
};

extern struct blk_disk *disk_table[DISK_MAX];

/* disk.c */
int disk_attach(const struct disk_spec *spec, bool from_cfg, struct blk_disk **out);
void disk_free(struct blk_disk *d);
void disk_lose(struct blk_disk *d, const char *why);
int disk_ctl(struct blk_disk *d, const uint8_t *cdb, unsigned cdb_len, int dir, void *buf,
	     uint32_t len, disk_ctl_fn next);
void disk_ctl_finish(struct blk_disk *d, int rc);
/* `disk fence`, `disk keys`, detach: sequences ending in disk_ctl_finish. */
int disk_fence_start(struct blk_disk *d);
int disk_keys_start(struct blk_disk *d);
int disk_release_start(struct blk_disk *d);
/*
 * `disk rejoin`, and a migration's prepare: register this host's key
 * again (REGISTER AND IGNORE EXISTING KEY), reserve if nobody holds the
 * reservation, and bring a disk this host lost back to READY.  0 (the
 * sequence runs), -EAGAIN (connecting or reconnecting: try when ready),
 * -EBUSY (a control command is out), -EOPNOTSUPP (no reservations),
 * -ENODEV (failed or detaching).
 */
int disk_rejoin_start(struct blk_disk *d);
/* Start a sequence (one of the *_start above) and have fn(d, rc, arg)
 * called once as it ends, also when the disk is freed first (-ENODEV).
 * start's error, or -EBUSY when another waiter is set. */
int disk_seq_run(struct blk_disk *d, int (*start)(struct blk_disk *d), disk_seq_fn fn,
		 void *arg);
/* The waiter arg goes away: forget it (the sequence runs on). */
void disk_seq_forget(struct blk_disk *d, void *arg);
const char *disk_state_name(enum disk_state st);
void disk_set_why(struct blk_disk *d, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* blk.c */
void blk_kick(struct blk_disk *d);
void blk_part_done(struct blk_disk *d, struct blk_req *r, const struct iscsi_sess_done *x);
/* Complete every queued request with err; with session_too, also the
 * parts in the session, whose tasks are forgotten (before a session reset
 * or a free).  Without it, those parts finish as the target answers. */
void blk_fail_all(struct blk_disk *d, int err, bool session_too);

#endif
