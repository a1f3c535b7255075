/*
 * virtio-blk requests and configuration (VIRTIO 1.1, 5.2), on top of the
 * device-side split virtqueue (vring.h).  Pure: the glue pops a chain,
 * vblk_parse checks it against the LUN, the glue runs the I/O and calls
 * vblk_finish, then vring_push with what vblk_finish returned.
 */
#ifndef TERN_DEVICES_MODEL_VBLK_H
#define TERN_DEVICES_MODEL_VBLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kernel/devices/model/vring.h"

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX		1
#define VIRTIO_BLK_F_SEG_MAX		2
#define VIRTIO_BLK_F_RO			5
#define VIRTIO_BLK_F_BLK_SIZE		6
#define VIRTIO_BLK_F_FLUSH		9
#define VIRTIO_BLK_F_TOPOLOGY		10
#define VIRTIO_BLK_F_DISCARD		13
#define VIRTIO_BLK_F_WRITE_ZEROES	14

/* Request types and status (5.2.6). */
#define VIRTIO_BLK_T_IN			0
#define VIRTIO_BLK_T_OUT		1
#define VIRTIO_BLK_T_FLUSH		4
#define VIRTIO_BLK_T_GET_ID		8
#define VIRTIO_BLK_T_DISCARD		11
#define VIRTIO_BLK_T_WRITE_ZEROES	13
#define VIRTIO_BLK_S_OK			0
#define VIRTIO_BLK_S_IOERR		1
#define VIRTIO_BLK_S_UNSUPP		2

#define VIRTIO_BLK_WZ_F_UNMAP		1u	/* virtio_blk_discard_write_zeroes.flags */
#define VIRTIO_BLK_ID_BYTES		20

#define VBLK_SECTOR		512u	/* the unit of "sector" fields, whatever blk_size */
#define VBLK_HDR_LEN		16u	/* type, reserved, sector */
#define VBLK_SEG_MAX		254u	/* VRING_MAX_SEGS - header, status, slack */
#define VBLK_MAX_RANGES		8u	/* max_discard_seg, max_write_zeroes_seg */
#define VBLK_RANGE_LEN		16u

struct vblk_info {            /* what the LUN offers, from the glue */
	uint64_t nblocks; uint32_t block_size;  /* LUN logical block size: 512 or 4096 */
	uint32_t max_transfer;                  /* bytes per request the block layer takes well */
	bool read_only, discard, write_zeroes;  /* the LUN supports UNMAP / WRITE SAME */
	uint32_t max_discard_sectors, max_write_zeroes_sectors;  /* 512-byte units, 0: no limit */
	char serial[20];
};

/* SEG_MAX, SIZE_MAX, BLK_SIZE, FLUSH, TOPOLOGY, RO, DISCARD, WRITE_ZEROES as
 * applicable (5.2.3).  Device bits only: the glue adds VERSION_1 and the
 * ring features. */
uint64_t vblk_features(const struct vblk_info *i);

/* size_max (one segment) and the largest data part vblk_parse accepts:
 * seg_max * size_max, size_max being max_transfer / seg_max in whole pages,
 * 4 KiB to 64 KiB. */
uint32_t vblk_size_max(const struct vblk_info *i);
uint32_t vblk_max_data(const struct vblk_info *i);

/* struct virtio_blk_config (5.2.4) up to write_zeroes_may_unmap, padded
 * to 4 bytes. */
#define VBLK_CFG_LEN 60
/* The device-specific config bytes, capacity in 512-byte sectors; len is
 * how much of out to fill (the rest of a longer buffer reads 0). */
void vblk_config(const struct vblk_info *i, uint8_t *out, uint32_t len);

enum vblk_op { VBLK_READ, VBLK_WRITE, VBLK_FLUSH, VBLK_GET_ID, VBLK_DISCARD, VBLK_WRITE_ZEROES };

struct vblk_range {
	uint64_t lba;		/* LUN blocks */
	uint32_t nblocks;
	bool unmap;		/* write-zeroes only: the device may deallocate */
};

struct vblk_req {
	enum vblk_op op;
	uint64_t lba;        /* in LUN blocks */
	uint32_t nblocks;
	/* The data part, as a byte offset and length into the readable (write,
	 * discard, write-zeroes) or writable (read, get-id) bytes of the chain. */
	uint32_t data_off, data_len;
	uint64_t status_gpa;          /* the last writable byte */
	/* discard/write-zeroes: the ranges read from the chain */
	uint32_t nranges;
	struct vblk_range range[VBLK_MAX_RANGES];
};

/* Parse a popped chain.  Returns 0 with *rq filled for the glue to run, or a
 * virtio status to complete at once with vblk_finish(.., status, 0):
 * VIRTIO_BLK_S_IOERR for a malformed or out-of-range request,
 * VIRTIO_BLK_S_UNSUPP for an unknown type or a write to a read-only disk.
 * -EFAULT when not even the status byte can be found (then the chain is
 * returned with 0 bytes written).
 * GET_ID: the glue writes vblk_get_id's bytes, data_len of them, at
 * data_off of the writable part. */
int vblk_parse(const struct vblk_info *i, const struct vring_mem *m, const struct vring_chain *c,
	       struct vblk_req *rq);

/* Complete: write the status byte; returns bytes the device wrote into the chain
 * (data + 1) for vring_push. */
uint32_t vblk_finish(const struct vring_mem *m, const struct vblk_req *rq, uint8_t status,
		     uint32_t data_written);

/* The serial, zero-padded (5.2.6: not NUL-terminated when 20 long). */
void vblk_get_id(const struct vblk_info *i, uint8_t out[20]);

/*
 * Migration: what the back end keeps beyond the transport and the rings
 * (virtio_dev_save).  The guest read the config space and the serial
 * from info, and may have been told features that follow from it, so the
 * destination must present exactly the same; which disk it is (its name
 * and the LUN's identity) lets the destination check that the record is
 * for the LUN it attached.  Requests in flight are not in it: the source
 * drains them before it saves (storage/vblk_dev.c).
 */
#define VBLK_SAVE_VERSION	1
#define VBLK_SAVE_SIZE		160
#define VBLK_NAME_LEN		24	/* the disk's name, NUL included */
#define VBLK_IDENT_LEN		72	/* the LUN's identity text, NUL included */

struct vblk_saved {
	struct vblk_info info;
	bool info_known;		/* false: a disk of 0 blocks that grows later */
	char disk[VBLK_NAME_LEN];
	char ident[VBLK_IDENT_LEN];	/* VPD 0x83 designator in hex, or "" */
};

/* Bytes written (VBLK_SAVE_SIZE) or -ENOSPC. */
int vblk_save(const struct vblk_saved *s, uint8_t *buf, size_t len);
/* 0, or -EINVAL (version, length, a reserved bit, a string without its
 * NUL or with a byte outside printable ASCII, an impossible geometry)
 * with *s untouched. */
int vblk_load(struct vblk_saved *s, const uint8_t *buf, size_t len);
/* Can a device that is here take the guest the record describes?  0, or
 * -EINVAL with why: another disk name or LUN, another size or block size,
 * read-only on one side only, DISCARD or WRITE_ZEROES promised to the
 * guest that this LUN cannot do.  An identity missing on either side is
 * not compared. */
int vblk_check_same(const struct vblk_saved *src, const struct vblk_saved *here, char *why,
		    size_t len);

/*
 * The source's drain before a migration's last round: every request the
 * guest started completes, then one FLUSH (SYNCHRONIZE CACHE, SBC-3 5.22)
 * puts what the target may still cache on stable storage before the
 * destination takes the LUN over (and fences this host off).  A write
 * the target acknowledged but still holds volatile would otherwise be
 * lost if the fence or a target failover drops its cache.  A read-only
 * disk has nothing to flush.  The glue (storage/vblk_dev.c) keeps one per
 * disk and asks vblk_drain_step at each quiesce call.
 */
enum vblk_drain_state {
	VBLK_DRAIN_IDLE,	/* not draining, or the requests are still out */
	VBLK_DRAIN_FLUSHING,	/* the flush is out */
	VBLK_DRAIN_FLUSHED,	/* back (or failed): quiet */
};

enum vblk_drain_act {
	VBLK_DRAIN_WAIT,	/* requests or the flush still out: -EAGAIN */
	VBLK_DRAIN_FLUSH,	/* submit the flush now, then -EAGAIN */
	VBLK_DRAIN_QUIET,	/* 0 */
};

struct vblk_drain {
	enum vblk_drain_state state;
	int err;		/* the flush's error, 0 if it succeeded */
	uint64_t flushes, failed;	/* for `vm info` */
};

/* busy: requests of the guest (or an older flush) still out. */
enum vblk_drain_act vblk_drain_step(struct vblk_drain *d, bool busy, bool read_only);
/* The flush is back with err (0 or -errno), or its submission failed:
 * true when the caller should log the failure (the first answer of this
 * drain only; a flush left over from an abandoned drain is ignored). */
bool vblk_drain_flushed(struct vblk_drain *d, int err);
/* Unquiesce (the migration failed) or resumed: the next drain flushes
 * again.  The counters stay. */
void vblk_drain_reset(struct vblk_drain *d);

#endif
