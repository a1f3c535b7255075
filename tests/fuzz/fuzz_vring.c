/*
 * libFuzzer target for the device-side virtqueue and the virtio-blk
 * request parser (make fuzz-vring).
 *
 * Input: byte 0 0xff selects the disk's migration record (below); any
 * other value a ring: a 4-byte prefix, then guest RAM contents.
 *	byte 0		ring size 8 << (b % 6): 8 to 256 entries
 *	byte 1		bit 0 EVENT_IDX, bit 1 4 KiB LUN blocks, bit 2 read-only,
 *			bit 3 discard, bit 4 write-zeroes
 *	byte 2		avail ring at 0x1000 + 2 * b
 *	byte 3		used ring at 0x2000 + 4 * b
 * Guest RAM is 64 KiB at address 0 (the map callback returns NULL above),
 * descriptors at 0.  The rest of the input is XORed onto a template of
 * good virtio-blk requests (direct and indirect chains for each request
 * type), so an empty input is a working queue and every mutation starts
 * from one: first onto small windows over the rings, the indirect tables,
 * the headers and the discard ranges (fz_xor), then over all of RAM.
 * The device then pops, parses, moves the data (which may land on the
 * rings themselves: a hostile guest may point buffers anywhere) and pushes,
 * for a bounded number of rounds.  Checked: the map contract (no access
 * over a page), every chain's shape, every accepted request inside the
 * disk, and that every reachable ring state saves to a record its loader
 * accepts and restores.
 *
 * Record mode (byte 0 0xff): byte 1 picks a template vblk_save wrote (bit
 * 0 a disk not ready yet, bit 1 read-only, bit 2 DISCARD and
 * WRITE_ZEROES, bit 3 a long serial and identity), the rest is XORed onto
 * it, and vblk_load takes it.  Checked: what loads saves back to the very
 * same bytes and loads again to the same record; its geometry gives sane
 * config space and limits; vblk_check_same accepts it against itself and
 * answers a NUL-terminated reason against another disk.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/vblk.h"
#include "kernel/devices/model/vring.h"
#include "kernel/lib/byteorder.h"

#define FZ_PREFIX	4
#define FZ_RAM		0x10000u
#define FZ_DESC		0x0u
#define FZ_IND		0x4000u
#define FZ_HDR		0x5000u
#define FZ_DATA		0x6000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t fz_ram[FZ_RAM] __attribute__((aligned(4096)));
static uint8_t fz_buf[1u << 16];

static void fz_check(bool cond)
{
	if (!cond)
		__builtin_trap();
}

static void *fz_map(void *ctx, uint64_t gpa, uint32_t len, bool write)
{
	(void)ctx;
	(void)write;
	fz_check(len >= 1 && len <= VRING_MAP_MAX && (gpa & 4095) + len <= 4096);
	if (gpa >= FZ_RAM)
		return NULL;
	return fz_ram + gpa;
}

static const struct vring_mem fz_mem = { .map = fz_map };

static void fz_desc(uint32_t table, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		    uint16_t next)
{
	uint8_t *p = fz_ram + table + 16 * i;

	st_le64(p, addr);
	st_le32(p + 8, len);
	st_le16(p + 12, flags);
	st_le16(p + 14, next);
}

/* Request k: header at FZ_HDR + 16k, data at FZ_DATA + 0x800k (2 KiB
 * each), status just before the header area. */
static void fz_template(uint16_t n, uint32_t avail)
{
	static const uint32_t types[] = { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH,
		VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES };
	uint16_t d = 0, slot = 0;

	memset(fz_ram, 0, sizeof(fz_ram));
	for (uint16_t k = 0; k < 8 && d + 3 <= n; k++) {
		uint32_t t = types[k % 6], hdr = FZ_HDR + 16 * k, dat = FZ_DATA + 0x800 * k;
		bool in = t == VIRTIO_BLK_T_IN || t == VIRTIO_BLK_T_GET_ID;
		uint16_t dflag = in ? VRING_DESC_F_WRITE : 0;
		uint32_t dlen = t == VIRTIO_BLK_T_GET_ID ? 20 :
				t >= VIRTIO_BLK_T_DISCARD ? 16 : 1024;

		st_le32(fz_ram + hdr, t);
		st_le64(fz_ram + hdr + 8, 8u * k);
		if (t >= VIRTIO_BLK_T_DISCARD) {
			st_le64(fz_ram + dat, 8u * k);
			st_le32(fz_ram + dat + 8, 8);
		}
		if (k >= 6) {	/* indirect */
			uint32_t tab = FZ_IND + 0x100 * (k - 6);

			fz_desc(tab, 0, hdr, 16, VRING_DESC_F_NEXT, 1);
			fz_desc(tab, 1, dat, dlen, VRING_DESC_F_NEXT | dflag, 2);
			fz_desc(tab, 2, FZ_HDR - 1 - k, 1, VRING_DESC_F_WRITE, 0);
			fz_desc(FZ_DESC, d, tab, 48, VRING_DESC_F_INDIRECT, 0);
			st_le16(fz_ram + avail + 4 + 2 * slot++, d);
			d++;
			continue;
		}
		fz_desc(FZ_DESC, d, hdr, 16, VRING_DESC_F_NEXT, (uint16_t)(d + 1));
		fz_desc(FZ_DESC, d + 1u, dat, dlen, VRING_DESC_F_NEXT | dflag, (uint16_t)(d + 2));
		fz_desc(FZ_DESC, d + 2u, FZ_HDR - 1 - k, 1, VRING_DESC_F_WRITE, 0);
		st_le16(fz_ram + avail + 4 + 2 * slot++, d);
		d = (uint16_t)(d + 3);
	}
	st_le16(fz_ram + avail + 2, slot);
}

static void fz_check_chain(const struct vring *r, const struct vring_chain *c)
{
	uint64_t rl = 0, wl = 0;
	bool w = false;

	fz_check(c->head < r->size && c->nseg <= VRING_MAX_SEGS);
	for (unsigned i = 0; i < c->nseg; i++) {
		const struct vring_seg *s = &c->seg[i];

		fz_check(s->len > 0 && s->gpa < FZ_RAM && s->gpa + s->len <= FZ_RAM);
		fz_check(!w || s->write);
		w = s->write;
		if (s->write)
			wl += s->len;
		else
			rl += s->len;
	}
	fz_check(rl == c->rlen && wl == c->wlen);
}

static void fz_check_record(const struct vring *r)
{
	uint8_t rec[VRING_SAVE_SIZE];
	struct vring l;

	fz_check(vring_save(r, rec, sizeof(rec)) == VRING_SAVE_SIZE);
	fz_check(vring_load(&l, rec, sizeof(rec)) == 0);
	fz_check(l.size == r->size && l.desc == r->desc && l.avail == r->avail &&
		 l.used == r->used && l.event_idx == r->event_idx &&
		 l.last_avail == r->last_avail && l.used_idx == r->used_idx &&
		 l.signalled_used == r->signalled_used &&
		 l.signalled_valid == r->signalled_valid && l.broken == r->broken &&
		 l.popped == r->popped && l.pushed == r->pushed &&
		 !strcmp(l.why, r->why));
}

/* Run what vblk_parse accepted, as the glue would, against fz_buf. */
static uint32_t fz_run(const struct vblk_info *bi, const struct vring_chain *c,
		       const struct vblk_req *rq)
{
	uint8_t id[20];
	int n = 0;

	switch (rq->op) {
	case VBLK_READ:
		fz_check(rq->data_len == rq->nblocks * bi->block_size);
		fz_check(rq->lba + rq->nblocks <= bi->nblocks);
		n = vring_write(&fz_mem, c, rq->data_off, fz_buf,
				rq->data_len < sizeof(fz_buf) ? rq->data_len : sizeof(fz_buf));
		break;
	case VBLK_WRITE:
		fz_check(!bi->read_only && rq->lba + rq->nblocks <= bi->nblocks);
		n = vring_read(&fz_mem, c, rq->data_off, fz_buf,
			       rq->data_len < sizeof(fz_buf) ? rq->data_len : sizeof(fz_buf));
		n = 0;
		break;
	case VBLK_GET_ID:
		fz_check(rq->data_len >= 1 && rq->data_len <= 20);
		vblk_get_id(bi, id);
		n = vring_write(&fz_mem, c, rq->data_off, id, rq->data_len);
		break;
	case VBLK_DISCARD:
	case VBLK_WRITE_ZEROES:
		fz_check(rq->nranges >= 1 && rq->nranges <= VBLK_MAX_RANGES);
		for (uint32_t k = 0; k < rq->nranges; k++)
			fz_check(rq->range[k].nblocks && rq->range[k].lba + rq->range[k].nblocks <=
				 bi->nblocks);
		break;
	case VBLK_FLUSH:
		break;
	}
	return n > 0 ? (uint32_t)n : 0;
}

/*
 * The input is XORed onto the windows below in turn, so that short inputs
 * (which libFuzzer prefers) reach every structure a request touches, then
 * onto all of RAM from 0.
 */
static void fz_xor(const uint8_t *in, size_t len, uint32_t avail, uint32_t used)
{
	const struct { uint32_t at, len; } win[] = {
		{ FZ_DESC, 0x80 }, { avail, 0x20 }, { FZ_IND, 0x30 }, { FZ_IND + 0x100, 0x30 },
		{ FZ_HDR - 0x10, 0x90 }, { FZ_DATA, 0x20 }, { FZ_DATA + 0x2000, 0x30 },
		{ FZ_DATA + 0x2800, 0x30 }, { used, 0x20 }, { 0, FZ_RAM },
	};
	size_t i = 0;

	for (unsigned w = 0; w < sizeof(win) / sizeof(win[0]); w++)
		for (uint32_t k = 0; k < win[w].len && i < len; k++)
			fz_ram[win[w].at + k] ^= in[i++];
}

/* A destination that takes a ring over from a record (a migration) with
 * the input XORed in: whatever the loader accepts is a ring the device
 * can keep popping and pushing on without leaving the map contract. */
static void fz_takeover(const struct vring *r, const uint8_t *x, size_t xn)
{
	static struct vring_chain c;
	uint8_t rec[VRING_SAVE_SIZE];
	struct vring l;

	fz_check(vring_save(r, rec, sizeof(rec)) == VRING_SAVE_SIZE);
	for (size_t i = 0; i < xn && i < sizeof(rec); i++)
		rec[i] ^= x[i];
	if (vring_load(&l, rec, sizeof(rec)) < 0)
		return;
	fz_check(!l.size || vring_inflight(&l) <= l.size);
	fz_check(l.broken == !!l.why[0]);
	for (unsigned round = 0; l.size && round < 2u * l.size; round++) {
		int rc = vring_pop(&l, &fz_mem, &c);

		if (rc <= 0) {
			fz_check(rc == 0 || (rc == -EINVAL && l.broken));
			break;
		}
		fz_check_chain(&l, &c);
		/* The record may put the used ring outside RAM: the push
		 * then breaks the ring, which the glue turns into a failed
		 * device. */
		rc = vring_push(&l, &fz_mem, c.head, 0);
		fz_check(rc == 0 || (rc == -EINVAL && l.broken));
		(void)vring_need_interrupt(&l, &fz_mem);
		fz_check_record(&l);
		if (rc < 0)
			break;
	}
}

static void fz_record_template(struct vblk_saved *t, uint8_t how)
{
	memset(t, 0, sizeof(*t));
	t->info_known = !(how & 1);
	t->info.block_size = 512;
	t->info.max_transfer = 1u << 18;
	t->info.read_only = how & 2;
	if (t->info_known) {
		t->info.nblocks = 1u << 21;
		t->info.block_size = how & 4 ? 4096 : 512;
		t->info.discard = t->info.write_zeroes = how & 4;
		t->info.max_discard_sectors = how & 4 ? 8192 : 0;
		t->info.max_write_zeroes_sectors = how & 4 ? 65535 : 0;
	}
	if (how & 8) {
		memcpy(t->info.serial, "ABCDEFGHIJKLMNOPQRST", 20);	/* no NUL */
		memset(t->disk, 'd', VBLK_NAME_LEN - 1);
		memset(t->ident, 'f', VBLK_IDENT_LEN - 1);
	} else {
		memcpy(t->info.serial, "lun0", 4);
		memcpy(t->disk, "lun0", 4);
		memcpy(t->ident, "naa.6001405abcdef0", 18);
	}
}

/* The disk's record: load, save back, load again. */
static void fz_record(const uint8_t *x, size_t xn)
{
	uint8_t rec[VBLK_SAVE_SIZE], again[VBLK_SAVE_SIZE], cfg[VBLK_CFG_LEN];
	struct vblk_saved t, l, l2, other;
	char why[160];

	fz_record_template(&t, xn ? x[0] : 0);
	fz_check(vblk_save(&t, rec, sizeof(rec)) == VBLK_SAVE_SIZE);
	for (size_t i = 1; i < xn && i - 1 < sizeof(rec); i++)
		rec[i - 1] ^= x[i];
	fz_check(vblk_load(&l, rec, sizeof(rec) - 1) == -EINVAL);
	if (vblk_load(&l, rec, sizeof(rec)) < 0)
		return;
	fz_check(vblk_save(&l, again, sizeof(again)) == VBLK_SAVE_SIZE);
	fz_check(!memcmp(rec, again, sizeof(rec)));
	fz_check(vblk_load(&l2, again, sizeof(again)) == 0);
	fz_check(vblk_save(&l2, again, sizeof(again)) == VBLK_SAVE_SIZE);
	fz_check(!memcmp(rec, again, sizeof(rec)));
	fz_check(l.disk[0] && memchr(l.disk, 0, VBLK_NAME_LEN) &&
		 memchr(l.ident, 0, VBLK_IDENT_LEN));

	/* What a destination does with it: config space and limits. */
	vblk_config(&l.info, cfg, sizeof(cfg));
	(void)vblk_features(&l.info);
	fz_check(vblk_size_max(&l.info) >= 4096 && vblk_size_max(&l.info) <= 65536);
	fz_check(vblk_max_data(&l.info) >= vblk_size_max(&l.info));
	fz_check(vblk_check_same(&l, &l, why, sizeof(why)) == 0);
	other = l;
	other.disk[0] = other.disk[0] == 'x' ? 'y' : 'x';
	memset(why, 0x55, sizeof(why));
	fz_check(vblk_check_same(&l, &other, why, sizeof(why)) == -EINVAL);
	fz_check(memchr(why, 0, sizeof(why)) != NULL && why[0]);
	fz_record_template(&other, 0);
	memset(why, 0x55, sizeof(why));
	if (vblk_check_same(&l, &other, why, sizeof(why)) < 0)
		fz_check(memchr(why, 0, sizeof(why)) != NULL && why[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vring_chain c;
	struct vblk_info bi;
	struct vblk_req rq;
	struct vring r;
	uint16_t n;
	uint32_t avail, used;
	uint8_t cfg[VBLK_CFG_LEN];
	size_t xn;

	if (size >= 1 && data[0] == 0xff) {
		fz_record(data + 1, size - 1);
		return 0;
	}
	if (size < FZ_PREFIX)
		return 0;
	n = (uint16_t)(8u << (data[0] % 6));
	avail = 0x1000 + 2u * data[2];
	used = 0x2000 + 4u * data[3];
	fz_template(n, avail);
	fz_xor(data + FZ_PREFIX, size - FZ_PREFIX, avail, used);

	memset(&bi, 0, sizeof(bi));
	bi.nblocks = 4096;
	bi.block_size = data[1] & 2 ? 4096 : 512;
	bi.max_transfer = 1u << 20;
	bi.read_only = data[1] & 4;
	bi.discard = data[1] & 8;
	bi.write_zeroes = data[1] & 16;
	bi.max_discard_sectors = 64;
	memcpy(bi.serial, "fuzz", 4);
	vblk_config(&bi, cfg, sizeof(cfg));

	fz_check(vring_setup(&r, n, FZ_DESC, avail, used, data[1] & 1) == 0);
	/* Data moves can rewrite avail->idx, so bound the rounds. */
	for (unsigned round = 0; round < 4u * n; round++) {
		int rc = vring_pop(&r, &fz_mem, &c);
		uint32_t written = 0;

		fz_check_record(&r);
		if (rc <= 0) {
			fz_check(rc == 0 || (rc == -EINVAL && r.broken && r.why[0]));
			break;
		}
		fz_check_chain(&r, &c);
		rc = vblk_parse(&bi, &fz_mem, &c, &rq);
		fz_check(rc == 0 || rc == -EFAULT || rc == VIRTIO_BLK_S_IOERR ||
			 rc == VIRTIO_BLK_S_UNSUPP);
		if (rc == 0)
			written = fz_run(&bi, &c, &rq);
		if (rc >= 0)
			written = vblk_finish(&fz_mem, &rq, rc ? (uint8_t)rc : VIRTIO_BLK_S_OK,
					      written);
		fz_check(vring_push(&r, &fz_mem, c.head, written) == 0);
		(void)vring_need_interrupt(&r, &fz_mem);
		fz_check_record(&r);
	}
	/* The tail of the input disturbs the record (the head went into RAM). */
	xn = size - FZ_PREFIX < VRING_SAVE_SIZE ? size - FZ_PREFIX : VRING_SAVE_SIZE;
	fz_takeover(&r, data + size - xn, xn);
	return 0;
}
