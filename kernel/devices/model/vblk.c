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
#include <stdio.h>
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

/* ---- migration record (vblk.h) ---- */

/*
 * Layout, little-endian:  0 version, 1 flags (VB_S_*), 2..3 zero,
 * 4 block_size, 8 nblocks, 16 max_transfer, 20 max_discard_sectors,
 * 24 max_write_zeroes_sectors, 28..31 zero, 32 serial (20 bytes),
 * 52..63 zero, 64 disk name (24, NUL-padded), 88 identity (72, NUL-padded).
 */
#define VB_S_RO		0x01u
#define VB_S_DISCARD	0x02u
#define VB_S_WZ		0x04u
#define VB_S_KNOWN	0x08u
#define VB_S_FLAGS	0x0fu
#define VB_S_SERIAL	32
#define VB_S_DISK	64
#define VB_S_IDENT	(VB_S_DISK + VBLK_NAME_LEN)

_Static_assert(VB_S_IDENT + VBLK_IDENT_LEN == VBLK_SAVE_SIZE, "vblk record layout");

static void vb_put_str(uint8_t *dst, const char *src, size_t cap)
{
	size_t n = strnlen(src, cap - 1);

	memset(dst, 0, cap);
	memcpy(dst, src, n);
}

int vblk_save(const struct vblk_saved *s, uint8_t *buf, size_t len)
{
	const struct vblk_info *i = &s->info;

	if (len < VBLK_SAVE_SIZE)
		return -ENOSPC;
	memset(buf, 0, VBLK_SAVE_SIZE);
	buf[0] = VBLK_SAVE_VERSION;
	buf[1] = (uint8_t)((i->read_only ? VB_S_RO : 0) | (i->discard ? VB_S_DISCARD : 0) |
			   (i->write_zeroes ? VB_S_WZ : 0) | (s->info_known ? VB_S_KNOWN : 0));
	st_le32(buf + 4, i->block_size);
	st_le64(buf + 8, i->nblocks);
	st_le32(buf + 16, i->max_transfer);
	st_le32(buf + 20, i->max_discard_sectors);
	st_le32(buf + 24, i->max_write_zeroes_sectors);
	memcpy(buf + VB_S_SERIAL, i->serial, sizeof(i->serial));
	vb_put_str(buf + VB_S_DISK, s->disk, VBLK_NAME_LEN);
	vb_put_str(buf + VB_S_IDENT, s->ident, VBLK_IDENT_LEN);
	return VBLK_SAVE_SIZE;
}

static bool vb_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

/* Printable ASCII, then only NULs to the end of the field; at least one
 * NUL unless nul_optional (the serial fills all 20 bytes when long). */
static bool vb_text_ok(const uint8_t *p, size_t cap, bool nul_optional)
{
	size_t n = 0;

	while (n < cap && p[n] >= 0x20 && p[n] <= 0x7e)
		n++;
	if (n == cap)
		return nul_optional;
	return vb_zero(p + n, cap - n);
}

/* The geometry the guest was shown: a block size vblk_config can describe,
 * limits only with their feature, nothing at all while unknown. */
static bool vb_info_ok(const struct vblk_info *i, bool known)
{
	if (!i->max_transfer || i->max_transfer > (16u << 20))
		return false;
	if ((!i->discard && i->max_discard_sectors) ||
	    (!i->write_zeroes && i->max_write_zeroes_sectors))
		return false;
	if (!known)
		return i->block_size == VBLK_SECTOR && !i->nblocks && !i->discard &&
		       !i->write_zeroes;
	return vb_spb(i) != 0;
}

int vblk_load(struct vblk_saved *s, const uint8_t *buf, size_t len)
{
	struct vblk_saved c;

	if (len != VBLK_SAVE_SIZE || buf[0] != VBLK_SAVE_VERSION || (buf[1] & ~VB_S_FLAGS) ||
	    !vb_zero(buf + 2, 2) || !vb_zero(buf + 28, 4) || !vb_zero(buf + 52, 12))
		return -EINVAL;
	if (!vb_text_ok(buf + VB_S_SERIAL, VIRTIO_BLK_ID_BYTES, true) ||
	    !vb_text_ok(buf + VB_S_DISK, VBLK_NAME_LEN, false) || !buf[VB_S_DISK] ||
	    !vb_text_ok(buf + VB_S_IDENT, VBLK_IDENT_LEN, false))
		return -EINVAL;
	memset(&c, 0, sizeof(c));
	c.info.read_only = buf[1] & VB_S_RO;
	c.info.discard = buf[1] & VB_S_DISCARD;
	c.info.write_zeroes = buf[1] & VB_S_WZ;
	c.info_known = buf[1] & VB_S_KNOWN;
	c.info.block_size = ld_le32(buf + 4);
	c.info.nblocks = ld_le64(buf + 8);
	c.info.max_transfer = ld_le32(buf + 16);
	c.info.max_discard_sectors = ld_le32(buf + 20);
	c.info.max_write_zeroes_sectors = ld_le32(buf + 24);
	if (!vb_info_ok(&c.info, c.info_known))
		return -EINVAL;
	memcpy(c.info.serial, buf + VB_S_SERIAL, sizeof(c.info.serial));
	memcpy(c.disk, buf + VB_S_DISK, VBLK_NAME_LEN);
	memcpy(c.ident, buf + VB_S_IDENT, VBLK_IDENT_LEN);
	*s = c;
	return 0;
}

int vblk_check_same(const struct vblk_saved *src, const struct vblk_saved *here, char *why,
		    size_t len)
{
	const struct vblk_info *a = &src->info, *b = &here->info;

	if (strncmp(src->disk, here->disk, VBLK_NAME_LEN))
		snprintf(why, len, "the record is for disk %.23s, this device has disk %.23s",
			 src->disk, here->disk);
	else if (a->read_only != b->read_only)
		snprintf(why, len, "disk %.23s is read-only on one side only", src->disk);
	else if (src->ident[0] && here->ident[0] &&
		 strncmp(src->ident, here->ident, VBLK_IDENT_LEN))
		snprintf(why, len, "disk %.23s is another LUN here (identity %.71s, source %.71s)",
			 src->disk, here->ident, src->ident);
	else if (src->info_known && !here->info_known)
		snprintf(why, len, "disk %.23s is not ready here", src->disk);
	else if (src->info_known &&
		 (a->block_size != b->block_size || a->nblocks != b->nblocks))
		snprintf(why, len, "disk %.23s: %llu blocks of %u bytes here, %llu of %u at the "
			 "source", src->disk, (unsigned long long)b->nblocks, b->block_size,
			 (unsigned long long)a->nblocks, a->block_size);
	else if ((a->discard && !b->discard) || (a->write_zeroes && !b->write_zeroes))
		snprintf(why, len, "disk %.23s: the guest was offered %s, which this LUN lacks",
			 src->disk, a->discard && !b->discard ? "DISCARD" : "WRITE_ZEROES");
	else
		return 0;
	return -EINVAL;
}

/* ---- the drain before a migration (vblk.h) ---- */

enum vblk_drain_act vblk_drain_step(struct vblk_drain *d, bool busy, bool read_only)
{
	/* The flush goes out only once nothing else is: the block layer
	 * would order it after them anyway (a barrier), but a flush that
	 * found the queue empty covers every write the guest was answered
	 * for, and nothing can slip in after it (the device pops nothing). */
	if (busy)
		return VBLK_DRAIN_WAIT;
	if (read_only || d->state == VBLK_DRAIN_FLUSHED)
		return VBLK_DRAIN_QUIET;
	if (d->state == VBLK_DRAIN_FLUSHING)
		return VBLK_DRAIN_WAIT;
	d->state = VBLK_DRAIN_FLUSHING;
	d->err = 0;
	d->flushes++;
	return VBLK_DRAIN_FLUSH;
}

bool vblk_drain_flushed(struct vblk_drain *d, int err)
{
	if (d->state != VBLK_DRAIN_FLUSHING)
		return false;		/* an abandoned drain's */
	d->state = VBLK_DRAIN_FLUSHED;
	d->err = err;
	if (err)
		d->failed++;
	return err != 0;
}

void vblk_drain_reset(struct vblk_drain *d)
{
	d->state = VBLK_DRAIN_IDLE;
	d->err = 0;
}
