/*
 * The migration stream encoder: records appended to the caller's buffer,
 * each sealed with its chained CRC (wire format in stream.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "kernel/lib/crc32c.h"
#include "migrate/stream_int.h"

/* ---- encoder ---- */

static void enc_header(uint8_t *p, uint32_t flags)
{
	memcpy(p, MIG_MAGIC, 8);
	st_le16(p + 8, MIG_VERSION);
	st_le16(p + 10, (uint16_t)flags);
	st_le32(p + 12, crc32c(CRC32C_INIT, p, 12));
}

int mig_enc_init(struct mig_enc *e, void *buf, size_t cap, uint32_t flags)
{
	memset(e, 0, sizeof(*e));
	e->buf = buf;
	e->cap = cap;
	if (flags & ~MIG_F_LIVE)
		return mig_why_set(e->reason, -EPROTONOSUPPORT, "unknown stream flags %#x",
				   flags);
	if (cap < MIG_HDR_LEN)
		return mig_why_set(e->reason, -ENOSPC, "no room for the stream header");
	enc_header(e->buf, flags);
	e->chain = ld_le32(e->buf + 12);
	e->len = e->bytes = MIG_HDR_LEN;
	mig_ord_init(&e->ord, flags);
	return 0;
}

void mig_enc_rewind(struct mig_enc *e)
{
	e->len = 0;
}

void mig_enc_mac(struct mig_enc *e, mig_mac_fn fn, void *ctx)
{
	e->mac = fn;
	e->mac_ctx = ctx;
}

static int enc_room(struct mig_enc *e, size_t meta_len, size_t data_len)
{
	size_t need = MIG_REC_HDR_LEN + meta_len + data_len + (e->mac ? MIG_TAG_LEN : 0);

	if (need > e->cap - e->len)
		return mig_why_set(e->reason, -ENOSPC, "record of %zu bytes, %zu free",
				   need, e->cap - e->len);
	return 0;
}

/* Write a record header and return where its metadata goes. */
static uint8_t *enc_open(struct mig_enc *e, unsigned type, uint32_t meta_len,
			 uint32_t data_len)
{
	uint8_t *h = e->buf + e->len;

	st_le16(h, (uint16_t)type);
	st_le16(h + 2, 0);
	st_le32(h + 4, meta_len);
	st_le32(h + 8, data_len);
	st_le32(h + 12, 0);
	return h + MIG_REC_HDR_LEN;
}

/*
 * Seal the record at the end of the buffer once its metadata is in: the
 * CRC chain, then the MAC tag after the data when one is agreed.  A MAC
 * that cannot be computed leaves the record unwritten.
 */
static int enc_close(struct mig_enc *e)
{
	uint8_t *h = e->buf + e->len;
	uint32_t meta_len = ld_le32(h + 4), data_len = ld_le32(h + 8);
	uint32_t crc = crc32c(e->chain, h, 12);
	size_t len = MIG_REC_HDR_LEN + (size_t)meta_len + data_len;

	crc = crc32c(crc, h + MIG_REC_HDR_LEN, meta_len);
	st_le32(h + 12, crc);
	if (e->mac) {
		const uint8_t *meta = h + MIG_REC_HDR_LEN;
		int rc = e->mac(e->mac_ctx, e->nrec, h, meta, meta_len, meta + meta_len,
				data_len, h + len);

		if (rc < 0)
			return mig_why_set(e->reason, rc, "record MAC failed (%d)", rc);
		len += MIG_TAG_LEN;
	}
	e->chain = crc;
	e->nrec++;
	e->len += len;
	e->bytes += len;
	return 0;
}

/* The lengths as sent; a string without its NUL shows as its limit + 1. */
static void enc_config_lens(const struct mig_config *c, struct mig_lens *l)
{
	memset(l, 0, sizeof(*l));
	l->name = strnlen(c->name, MIG_NAME_MAX + 1);
	l->path = strnlen(c->kernel_path, MIG_PATH_MAX + 1);
	l->initrd = strnlen(c->initrd_path, MIG_PATH_MAX + 1);
	l->modules = strnlen(c->modules, MIG_PATH_MAX + 1);
	l->cmdline = strnlen(c->cmdline, MIG_CMDLINE_MAX + 1);
	/* Too many words is refused before these are looked at. */
	for (uint32_t i = 0; i < c->ndevspecs && i < MIG_DEVSPECS_MAX; i++)
		l->devspec[i] = strnlen(c->devspecs[i], MIG_DEVSPEC_MAX + 1);
}

/* Bytes of CONFIG metadata for a checked c. */
static size_t enc_config_len(const struct mig_config *c, const struct mig_lens *l)
{
	size_t n = CONFIG_FIXED + l->name + l->path + l->initrd + l->modules + l->cmdline;

	for (uint32_t i = 0; i < c->ndevspecs; i++)
		n += 2 + l->devspec[i];
	return n + 24 * (size_t)c->ncpuid;
}

int mig_enc_config(struct mig_enc *e, const struct mig_config *c)
{
	struct mig_lens l;
	size_t meta_len;
	uint8_t *p;
	int rc;

	enc_config_lens(c, &l);
	if ((rc = mig_check_config(c, &l, MIG_PAGES_MAX, e->reason)))
		return rc;
	meta_len = enc_config_len(c, &l);
	if ((rc = enc_room(e, meta_len, 0)) ||
	    (rc = mig_ord_config(&e->ord, c->mem_size / MIG_PAGE_SIZE, c->nvcpus, e->reason)))
		return rc;
	p = enc_open(e, MIG_REC_CONFIG, (uint32_t)meta_len, 0);
	p = put_le64(p, c->mem_size);
	p = put_le32(p, c->nvcpus);
	p = put_le32(p, c->tsc_khz);
	p = put_le16(p, (uint16_t)c->kind);
	p = put_le16(p, (uint16_t)l.name);
	p = put_le16(p, (uint16_t)l.path);
	p = put_le16(p, (uint16_t)l.initrd);
	p = put_le16(p, (uint16_t)l.modules);
	p = put_le16(p, (uint16_t)l.cmdline);
	p = put_le16(p, (uint16_t)c->ndevspecs);
	p = put_le16(p, (uint16_t)c->ncpuid);
	p = put_le64(p, 0);
	p = put_bytes(p, c->name, l.name);
	p = put_bytes(p, c->kernel_path, l.path);
	p = put_bytes(p, c->initrd_path, l.initrd);
	p = put_bytes(p, c->modules, l.modules);
	p = put_bytes(p, c->cmdline, l.cmdline);
	for (uint32_t i = 0; i < c->ndevspecs; i++) {
		p = put_le16(p, (uint16_t)l.devspec[i]);
		p = put_bytes(p, c->devspecs[i], l.devspec[i]);
	}
	for (uint32_t i = 0; i < c->ncpuid; i++) {
		const struct mig_cpuid *q = &c->cpuid[i];

		p = put_le32(p, q->leaf);
		p = put_le32(p, q->subleaf);
		p = put_le32(p, q->eax);
		p = put_le32(p, q->ebx);
		p = put_le32(p, q->ecx);
		p = put_le32(p, q->edx);
	}
	return enc_close(e);
}

int mig_enc_round(struct mig_enc *e, uint32_t round, uint32_t flags, uint64_t pages)
{
	struct mig_round r = { round, flags, pages };
	uint8_t *p;
	int rc;

	if ((rc = enc_room(e, ROUND_LEN, 0)) || (rc = mig_ord_round(&e->ord, &r, e->reason)))
		return rc;
	p = enc_open(e, MIG_REC_ROUND, ROUND_LEN, 0);
	p = put_le32(p, round);
	p = put_le32(p, flags);
	st_le64(p, pages);
	return enc_close(e);
}

static bool page_is_zero(const void *data)
{
	const uint8_t *p = data;
	uint64_t acc = 0;

	if (!data)
		return true;
	/* Word at a time with an early exit: most data pages differ early. */
	for (size_t off = 0; off < MIG_PAGE_SIZE; off += 64) {
		for (size_t i = 0; i < 64; i += 8) {
			uint64_t w;

			memcpy(&w, p + off + i, 8);
			acc |= w;
		}
		if (acc)
			return false;
	}
	return true;
}

int mig_enc_ram(struct mig_enc *e, const struct mig_page *pages, unsigned n)
{
	bool zero[MIG_BATCH_MAX];
	uint32_t ndata = 0;
	uint8_t *p, *data;
	int rc;

	if (!pages || n == 0)
		return mig_why_set(e->reason, -EINVAL, "RAM record without pages");
	if (n > MIG_BATCH_MAX)
		return mig_why_set(e->reason, -E2BIG, "%u pages in one RAM record (at "
				   "most %d)", n, MIG_BATCH_MAX);
	for (unsigned i = 0; i < n; i++) {
		if (pages[i].index >= e->ord.npages)
			return mig_why_set(e->reason, -ERANGE, "page %llu beyond the %llu "
					   "pages of the VM",
					   (unsigned long long)pages[i].index,
					   (unsigned long long)e->ord.npages);
		zero[i] = page_is_zero(pages[i].data);
		ndata += !zero[i];
	}
	if ((rc = enc_room(e, RAM_FIXED + RAM_ENTRY * n, (size_t)ndata * MIG_PAGE_SIZE)) ||
	    (rc = mig_ord_ram(&e->ord, n, e->reason)))
		return rc;
	p = enc_open(e, MIG_REC_RAM, RAM_FIXED + RAM_ENTRY * n, ndata * MIG_PAGE_SIZE);
	p = put_le32(p, n);
	p = put_le32(p, 0);
	data = p + RAM_ENTRY * n;
	for (unsigned i = 0; i < n; i++) {
		p = put_le64(p, pages[i].index);
		p = put_le32(p, zero[i] ? MIG_PAGE_ZERO : MIG_PAGE_DATA);
		p = put_le32(p, zero[i] ? 0 : crc32c(CRC32C_INIT, pages[i].data, MIG_PAGE_SIZE));
		if (!zero[i])
			data = put_bytes(data, pages[i].data, MIG_PAGE_SIZE);
	}
	return enc_close(e);
}

static uint8_t *put_seg(uint8_t *p, const struct mig_seg *s)
{
	p = put_le16(p, s->sel);
	p = put_le16(p, s->attr);
	p = put_le32(p, s->limit);
	return put_le64(p, s->base);
}

static uint8_t *put_dtr(uint8_t *p, const struct mig_dtr *t)
{
	p = put_le64(p, t->base);
	p = put_le32(p, t->limit);
	return put_le32(p, 0);
}

int mig_enc_vcpu(struct mig_enc *e, const struct mig_vcpu *v)
{
	const uint64_t *const regs[] = VCPU_REGS(v);
	size_t meta_len;
	uint8_t *p;
	int rc;

	if ((rc = mig_check_vcpu(v, e->reason)))
		return rc;
	if (v->xsave_len && !v->xsave)
		return mig_why_set(e->reason, -EINVAL, "vcpu %u: no XSAVE image", v->index);
	meta_len = MIG_VCPU_FIXED + 16 * (size_t)v->nmsrs + v->xsave_len;
	if ((rc = enc_room(e, meta_len, 0)) || (rc = mig_ord_vcpu(&e->ord, v->index, e->reason)))
		return rc;
	p = enc_open(e, MIG_REC_VCPU, (uint32_t)meta_len, 0);
	p = put_le32(p, v->index);
	p = put_le32(p, v->flags);
	for (int i = 0; i < 16; i++)
		p = put_le64(p, v->gpr[i]);
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		p = put_le64(p, *regs[i]);
	for (int i = 0; i < 8; i++)
		p = put_seg(p, &v->seg[i]);
	p = put_dtr(p, &v->gdtr);
	p = put_dtr(p, &v->idtr);
	*p++ = v->cpl;
	*p++ = v->event_flags;
	*p++ = v->event_vector;
	*p++ = v->event_type;
	p = put_le32(p, v->event_error);
	p = put_le32(p, v->nmsrs);
	p = put_le32(p, v->xsave_len);
	for (uint32_t i = 0; i < v->nmsrs; i++) {
		p = put_le32(p, v->msrs[i].index);
		p = put_le32(p, 0);
		p = put_le64(p, v->msrs[i].value);
	}
	put_bytes(p, v->xsave, v->xsave_len);
	return enc_close(e);
}

int mig_enc_device(struct mig_enc *e, const struct mig_device *d)
{
	size_t name_len = strnlen(d->name, MIG_NAME_MAX + 1);
	size_t meta_len = DEVICE_FIXED + name_len + d->blob_len;
	uint8_t *p;
	int rc;

	if ((rc = mig_check_device(d, name_len, e->reason)))
		return rc;
	if (d->blob_len && !d->blob)
		return mig_why_set(e->reason, -EINVAL, "device %s: no state", d->name);
	if ((rc = enc_room(e, meta_len, 0)) ||
	    (rc = mig_ord_device(&e->ord, d->name, e->reason)))
		return rc;
	p = enc_open(e, MIG_REC_DEVICE, (uint32_t)meta_len, 0);
	p = put_le16(p, (uint16_t)name_len);
	p = put_le16(p, 0);
	p = put_le32(p, d->version);
	p = put_le32(p, d->blob_len);
	p = put_bytes(p, d->name, name_len);
	put_bytes(p, d->blob, d->blob_len);
	return enc_close(e);
}

int mig_enc_end(struct mig_enc *e)
{
	uint64_t bytes = e->bytes;
	uint8_t *p;
	int rc;

	if ((rc = enc_room(e, END_LEN, 0)) || (rc = mig_ord_end(&e->ord, e->reason)))
		return rc;
	p = enc_open(e, MIG_REC_END, END_LEN, 0);
	p = put_le64(p, e->ord.pages);
	p = put_le32(p, e->ord.rounds);
	p = put_le32(p, e->ord.nvcpus);
	p = put_le32(p, e->ord.ndevices);
	p = put_le32(p, 0);
	st_le64(p, bytes);
	return enc_close(e);
}

