/*
 * virtio-blk request parsing and configuration (VIRTIO 1.1, 5.2).  See
 * vblk.h.  A request is a header of 16 readable bytes (le32 type,
 * le32 reserved, le64 sector), a data part, and one status byte, the last
 * writable byte of the chain (5.2.6).  "sector" is always 512 bytes, so on
 * a 4 KiB LUN every offset and length must be a whole number of blocks.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/vblk.h"
#include "kernel/lib/byteorder.h"

#define VB_PAGE		4096u

/* Config field offsets (5.2.4). */
#define VB_CFG_CAPACITY		0
#define VB_CFG_SIZE_MAX		8
#define VB_CFG_SEG_MAX		12
#define VB_CFG_BLK_SIZE		20
#define VB_CFG_PHYS_EXP		24
#define VB_CFG_ALIGN_OFF	25
#define VB_CFG_MIN_IO		26
#define VB_CFG_OPT_IO		28
#define VB_CFG_WRITEBACK	32
#define VB_CFG_MAX_DISCARD	36
#define VB_CFG_MAX_DISCARD_SEG	40
#define VB_CFG_DISCARD_ALIGN	44
#define VB_CFG_MAX_WZ		48
#define VB_CFG_MAX_WZ_SEG	52
#define VB_CFG_WZ_MAY_UNMAP	56

/* 512-byte sectors per LUN block, 0 for a block size we cannot serve. */
static uint32_t vb_spb(const struct vblk_info *i)
{
	uint32_t bs = i->block_size;

	if (bs < VBLK_SECTOR || bs > 65536 || (bs & (bs - 1)))
		return 0;
	return bs / VBLK_SECTOR;
}

static bool vb_can_discard(const struct vblk_info *i)
{
	return i->discard && !i->read_only;
}

static bool vb_can_wz(const struct vblk_info *i)
{
	return i->write_zeroes && !i->read_only;
}

uint64_t vblk_features(const struct vblk_info *i)
{
	uint64_t f = 1ull << VIRTIO_BLK_F_SIZE_MAX | 1ull << VIRTIO_BLK_F_SEG_MAX |
		     1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_FLUSH |
		     1ull << VIRTIO_BLK_F_TOPOLOGY;

	if (i->read_only)
		f |= 1ull << VIRTIO_BLK_F_RO;
	if (vb_can_discard(i))
		f |= 1ull << VIRTIO_BLK_F_DISCARD;
	if (vb_can_wz(i))
		f |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	return f;
}

uint32_t vblk_size_max(const struct vblk_info *i)
{
	uint32_t s = (i->max_transfer / VBLK_SEG_MAX) & ~(VB_PAGE - 1);

	if (s < VB_PAGE)
		return VB_PAGE;
	return s > 65536 ? 65536 : s;
}

uint32_t vblk_max_data(const struct vblk_info *i)
{
	return VBLK_SEG_MAX * vblk_size_max(i);
}

static uint64_t vb_capacity(const struct vblk_info *i)
{
	uint32_t spb = vb_spb(i);

	if (!spb)
		return 0;
	if (i->nblocks > UINT64_MAX / spb)
		return UINT64_MAX / spb * spb;
	return i->nblocks * spb;
}

void vblk_config(const struct vblk_info *i, uint8_t *out, uint32_t len)
{
	uint8_t cfg[VBLK_CFG_LEN];
	uint32_t spb = vb_spb(i);

	memset(cfg, 0, sizeof(cfg));
	st_le64(cfg + VB_CFG_CAPACITY, vb_capacity(i));
	st_le32(cfg + VB_CFG_SIZE_MAX, vblk_size_max(i));
	st_le32(cfg + VB_CFG_SEG_MAX, VBLK_SEG_MAX);
	/* geometry (16..19) stays 0: GEOMETRY is not offered */
	st_le32(cfg + VB_CFG_BLK_SIZE, spb ? i->block_size : VBLK_SECTOR);
	/* Topology: physical blocks are logical ones, no offset, minimum
	 * I/O one block; opt_io_size 0 says "unknown". */
	cfg[VB_CFG_PHYS_EXP] = 0;
	cfg[VB_CFG_ALIGN_OFF] = 0;
	st_le16(cfg + VB_CFG_MIN_IO, 1);
	st_le32(cfg + VB_CFG_OPT_IO, 0);
	/* Only meaningful with CONFIG_WCE; without it a driver that sees
	 * FLUSH assumes a writeback cache (5.2.5.1), and so do we. */
	cfg[VB_CFG_WRITEBACK] = 1;
	if (vb_can_discard(i)) {
		st_le32(cfg + VB_CFG_MAX_DISCARD, i->max_discard_sectors);
		st_le32(cfg + VB_CFG_MAX_DISCARD_SEG, VBLK_MAX_RANGES);
		st_le32(cfg + VB_CFG_DISCARD_ALIGN, spb ? spb : 1);
	}
	if (vb_can_wz(i)) {
		st_le32(cfg + VB_CFG_MAX_WZ, i->max_write_zeroes_sectors);
		st_le32(cfg + VB_CFG_MAX_WZ_SEG, VBLK_MAX_RANGES);
		cfg[VB_CFG_WZ_MAY_UNMAP] = vb_can_discard(i);
	}
	if (len > VBLK_CFG_LEN) {
		memset(out + VBLK_CFG_LEN, 0, len - VBLK_CFG_LEN);
		len = VBLK_CFG_LEN;
	}
	memcpy(out, cfg, len);
}

void vblk_get_id(const struct vblk_info *i, uint8_t out[20])
{
	memcpy(out, i->serial, VIRTIO_BLK_ID_BYTES);
}

/* ---- requests ---- */

/* The status byte: the last byte of the last segment, which must be
 * writable.  Zero-length descriptors never reach a chain. */
static int vb_status(const struct vring_mem *m, const struct vring_chain *c, uint64_t *gpa)
{
	const struct vring_seg *s;

	if (!c->nseg || c->nseg > VRING_MAX_SEGS || !c->wlen)
		return -EFAULT;
	s = &c->seg[c->nseg - 1];
	if (!s->write || !s->len || s->gpa + s->len - 1 < s->gpa)
		return -EFAULT;
	*gpa = s->gpa + s->len - 1;
	return m->map(m->ctx, *gpa, 1, false) ? 0 : -EFAULT;
}

/* [sector, sector + nsec) in 512-byte units, to whole LUN blocks inside
 * the disk; false when misaligned or outside. */
static bool vb_blocks(const struct vblk_info *i, uint64_t sector, uint64_t nsec, uint64_t *lba,
		      uint32_t *nblocks)
{
	uint32_t spb = vb_spb(i);
	uint64_t n;

	if (!spb || sector % spb || nsec % spb || !nsec)
		return false;
	*lba = sector / spb;
	n = nsec / spb;
	if (*lba > i->nblocks || n > i->nblocks - *lba || n > UINT32_MAX)
		return false;
	*nblocks = (uint32_t)n;
	return true;
}

static int vb_rw(const struct vblk_info *i, const struct vring_chain *c, uint64_t sector,
		 struct vblk_req *rq)
{
	bool in = rq->op == VBLK_READ;

	if (in ? c->rlen != VBLK_HDR_LEN : c->wlen != 1)
		return VIRTIO_BLK_S_IOERR;	/* data in the wrong direction */
	rq->data_off = in ? 0 : VBLK_HDR_LEN;
	rq->data_len = in ? c->wlen - 1 : c->rlen - VBLK_HDR_LEN;
	if (rq->data_len > vblk_max_data(i) ||
	    !vb_blocks(i, sector, rq->data_len / VBLK_SECTOR, &rq->lba, &rq->nblocks) ||
	    rq->data_len % VBLK_SECTOR || (uint64_t)rq->nblocks * i->block_size != rq->data_len)
		return VIRTIO_BLK_S_IOERR;
	return 0;
}

static int vb_get_id(const struct vring_chain *c, struct vblk_req *rq)
{
	if (c->rlen != VBLK_HDR_LEN || c->wlen < 2)
		return VIRTIO_BLK_S_IOERR;
	rq->data_off = 0;
	rq->data_len = c->wlen - 1 < VIRTIO_BLK_ID_BYTES ? c->wlen - 1 : VIRTIO_BLK_ID_BYTES;
	return 0;
}

/* One struct virtio_blk_discard_write_zeroes: le64 sector, le32
 * num_sectors, le32 flags.  Unknown flags, and unmap on a discard, are
 * UNSUPP (5.2.6.2); a range off the disk or past the advertised maximum
 * is IOERR. */
static int vb_range(const struct vblk_info *i, const uint8_t *raw, bool wz,
		    struct vblk_range *out)
{
	uint64_t sector = ld_le64(raw);
	uint32_t nsec = ld_le32(raw + 8), flags = ld_le32(raw + 12);
	uint32_t max = wz ? i->max_write_zeroes_sectors : i->max_discard_sectors;

	if (flags & ~VIRTIO_BLK_WZ_F_UNMAP || (!wz && flags))
		return VIRTIO_BLK_S_UNSUPP;
	if ((max && nsec > max) || !vb_blocks(i, sector, nsec, &out->lba, &out->nblocks))
		return VIRTIO_BLK_S_IOERR;
	out->unmap = flags & VIRTIO_BLK_WZ_F_UNMAP;
	return 0;
}

static int vb_ranges(const struct vblk_info *i, const struct vring_mem *m,
		     const struct vring_chain *c, struct vblk_req *rq)
{
	bool wz = rq->op == VBLK_WRITE_ZEROES;
	uint8_t raw[VBLK_MAX_RANGES * VBLK_RANGE_LEN];
	uint32_t n;
	int rc;

	if (wz ? !vb_can_wz(i) : !vb_can_discard(i))
		return VIRTIO_BLK_S_UNSUPP;
	if (c->wlen != 1 || c->rlen < VBLK_HDR_LEN)
		return VIRTIO_BLK_S_IOERR;
	rq->data_off = VBLK_HDR_LEN;
	rq->data_len = c->rlen - VBLK_HDR_LEN;
	n = rq->data_len / VBLK_RANGE_LEN;
	if (!n || n > VBLK_MAX_RANGES || rq->data_len % VBLK_RANGE_LEN)
		return VIRTIO_BLK_S_IOERR;
	if (vring_read(m, c, VBLK_HDR_LEN, raw, rq->data_len) != (int)rq->data_len)
		return VIRTIO_BLK_S_IOERR;
	for (uint32_t k = 0; k < n; k++) {
		rc = vb_range(i, raw + VBLK_RANGE_LEN * k, wz, &rq->range[k]);
		if (rc)
			return rc;
	}
	rq->nranges = n;
	return 0;
}

int vblk_parse(const struct vblk_info *i, const struct vring_mem *m, const struct vring_chain *c,
	       struct vblk_req *rq)
{
	uint8_t hdr[VBLK_HDR_LEN];
	uint64_t sector;
	uint32_t type;
	int rc;

	memset(rq, 0, sizeof(*rq));
	rc = vb_status(m, c, &rq->status_gpa);
	if (rc)
		return rc;
	if (c->rlen < VBLK_HDR_LEN ||
	    vring_read(m, c, 0, hdr, VBLK_HDR_LEN) != (int)VBLK_HDR_LEN)
		return VIRTIO_BLK_S_IOERR;
	type = ld_le32(hdr);
	sector = ld_le64(hdr + 8);
	switch (type) {
	case VIRTIO_BLK_T_IN:
		rq->op = VBLK_READ;
		return vb_rw(i, c, sector, rq);
	case VIRTIO_BLK_T_OUT:
		rq->op = VBLK_WRITE;
		return i->read_only ? VIRTIO_BLK_S_UNSUPP : vb_rw(i, c, sector, rq);
	case VIRTIO_BLK_T_FLUSH:
		rq->op = VBLK_FLUSH;	/* sector and any data are ignored */
		return 0;
	case VIRTIO_BLK_T_GET_ID:
		rq->op = VBLK_GET_ID;
		return vb_get_id(c, rq);
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		rq->op = type == VIRTIO_BLK_T_DISCARD ? VBLK_DISCARD : VBLK_WRITE_ZEROES;
		if (i->read_only)
			return VIRTIO_BLK_S_UNSUPP;
		return vb_ranges(i, m, c, rq);
	}
	return VIRTIO_BLK_S_UNSUPP;
}

uint32_t vblk_finish(const struct vring_mem *m, const struct vblk_req *rq, uint8_t status,
		     uint32_t data_written)
{
	uint8_t *p = m->map(m->ctx, rq->status_gpa, 1, true);

	if (!p)
		return data_written;
	*p = status;
	return data_written + 1;
}
