/*
 * The block layer: named disks on iSCSI LUNs (disk.c) and the
 * asynchronous request queue guest devices use.
 *
 * A request covers count blocks from lba (the disk's block size, see
 * blk_geometry).  blk_submit() queues it and returns at once; done() runs
 * later on the boot CPU's main loop with r->err set: 0, -EIO (a medium or
 * target error), -EACCES (this host lost the disk: another host fenced it,
 * RESERVATION CONFLICT; the disk refuses all I/O from then on), -ETIMEDOUT
 * (the target stayed away past the replacement timeout), -ENODEV (the disk
 * was detached), -EAGAIN (retries spent on BUSY/UNIT ATTENTION).
 *
 * Ordering.  Requests may complete in any order, as on a real disk.  A
 * request with BLK_F_BARRIER starts only once every request submitted
 * before it has completed, and nothing submitted after it starts before it
 * completes.  BLK_FLUSH (SYNCHRONIZE CACHE, SBC-3 5.22) is always a barrier,
 * so a completed flush means every write that completed before it was
 * submitted, and every write submitted before it, is on stable storage as
 * far as the target tells.  BLK_F_FUA writes with Force Unit Access.
 *
 * Large requests are split at the disk's maximum transfer (VPD page B0,
 * capped at 256 KiB); the parts run in parallel and done() runs once.
 *
 * Provisioning (SBC-3 4.7).  BLK_UNMAP deallocates count blocks from lba
 * (UNMAP, one block descriptor per command, split at the LUN's MAXIMUM
 * UNMAP LBA COUNT); what they read afterwards is the target's business
 * (tgt: zeros).  BLK_WRITE_ZEROES zeroes them (WRITE SAME(16) of a zero
 * block, split at MAXIMUM WRITE SAME LENGTH or DISK_WS_BLOCKS); with
 * BLK_F_UNMAP the target may deallocate them too, when blk_limits says
 * wz_unmap (else the flag is dropped: it is a hint).  Both take no buf,
 * and fail with -EOPNOTSUPP on a LUN that cannot (blk_limits).
 * Boot CPU main loop only.
 */
#ifndef TERN_STORAGE_BLK_H
#define TERN_STORAGE_BLK_H

#include <stdbool.h>
#include <stdint.h>

enum blk_op { BLK_READ, BLK_WRITE, BLK_FLUSH, BLK_UNMAP, BLK_WRITE_ZEROES };

#define BLK_F_BARRIER	0x1
#define BLK_F_FUA	0x2
#define BLK_F_UNMAP	0x4	/* BLK_WRITE_ZEROES: the target may deallocate */

struct blk_disk;

struct blk_req {
	enum blk_op op;
	unsigned flags;
	uint64_t lba;
	uint32_t count;		/* blocks (0 for FLUSH) */
	void *buf;		/* count * block size bytes (READ, WRITE only) */
	void (*done)(struct blk_req *r);
	void *priv;
	int err;
	/* Private to the block layer. */
	struct blk_req *next;
	uint32_t issued;	/* blocks handed to the session */
	uint32_t parts;		/* parts in flight */
	uint64_t t_submit_us;
	struct blk_disk *disk;
};

struct blk_disk *blk_find(const char *name);
/* Block size and count; -ENODEV until the disk is ready. */
int blk_geometry(const struct blk_disk *d, uint32_t *block_size, uint64_t *nblocks);
/* The VM whose virtio disk this is, "" for none. */
const char *blk_holder(const struct blk_disk *d);
/* What BLK_UNMAP and BLK_WRITE_ZEROES can do on the disk, in its
 * blocks (a limit is per SCSI command: the block layer splits above it). */
struct blk_limits {
	bool unmap, write_zeroes, wz_unmap;
	uint32_t max_unmap_blocks, max_wz_blocks;
};
/* -ENODEV until the disk is ready. */
int blk_limits(const struct blk_disk *d, struct blk_limits *out);
/* 0, -EINVAL (out of range, bad op), -ENODEV (not attached or gone),
 * -EACCES (lost to another host), -EOPNOTSUPP (UNMAP or WRITE_ZEROES on a
 * LUN without them). */
int blk_submit(struct blk_disk *d, struct blk_req *r);

#endif
