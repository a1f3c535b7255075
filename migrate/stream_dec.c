/*
 * The migration stream decoder: an incremental parser for hostile input,
 * fed whatever chunks the transport delivers (wire format in stream.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "kernel/lib/crc32c.h"
#include "migrate/stream_int.h"

/* ---- decoder ---- */

void mig_dec_init(struct mig_dec *d, const struct mig_dec_ops *ops, void *ctx,
		  uint64_t *seen, uint64_t cap)
{
	static const struct mig_dec_ops none;

	/* Not the whole struct: the buffers are written before they are read. */
	memset(d, 0, offsetof(struct mig_dec, meta));
	d->reason[0] = '\0';
	d->ops = ops ? ops : &none;
	d->ctx = ctx;
	d->seen = seen;
	d->seen_cap = seen ? cap : 0;
	d->st = MIG_DS_HDR;
	d->ord.phase = MIG_PH_HEADER;
}

void mig_dec_mac(struct mig_dec *d, mig_mac_fn fn, void *ctx, uint8_t *hold)
{
	d->mac = fn;
	d->mac_ctx = ctx;
	d->hold = hold;
}

/* Stop for good, with the reason prefixed by where in the stream. */
static int dec_fail_v(struct mig_dec *d, int err, const char *fmt, va_list ap)
{
	size_t n;
	int k;

	if (d->st == MIG_DS_HDR)
		k = snprintf(d->reason, sizeof(d->reason), "stream header: ");
	else
		k = snprintf(d->reason, sizeof(d->reason), "record %llu (%s) at byte "
			     "%llu: ", (unsigned long long)d->nrec + 1,
			     mig_rec_name(d->type), (unsigned long long)d->rec_start);
	n = k < 0 ? 0 : (size_t)k;
	if (n < sizeof(d->reason))
		vsnprintf(d->reason + n, sizeof(d->reason) - n, fmt, ap);
	d->st = MIG_DS_FAILED;
	d->err = err;
	return err;
}

int mig_dec_fail(struct mig_dec *d, int err, const char *fmt, ...)
{
	va_list ap;

	if (d->st == MIG_DS_FAILED)
		return d->err;
	va_start(ap, fmt);
	dec_fail_v(d, err, fmt, ap);
	va_end(ap);
	return err;
}

/* A shared check wrote its reason into why: fail with it. */
static int dec_why(struct mig_dec *d, int err, const char *why)
{
	return mig_dec_fail(d, err, "%s", why);
}

/* After a callback: its own mig_dec_fail, or its negative return. */
static int dec_called(struct mig_dec *d, int rc)
{
	if (d->st == MIG_DS_FAILED)
		return d->err;
	if (rc < 0)
		return mig_dec_fail(d, rc, "refused by the receiver (%d)", rc);
	return 0;
}

static int dec_stream_header(struct mig_dec *d)
{
	const uint8_t *h = d->hdr;
	uint16_t flags = ld_le16(h + 10);

	if (memcmp(h, MIG_MAGIC, 8))
		return mig_dec_fail(d, -EBADMSG, "bad magic (not a Tern migration stream)");
	if (ld_le32(h + 12) != crc32c(CRC32C_INIT, h, 12))
		return mig_dec_fail(d, -EBADMSG, "header checksum mismatch");
	if (ld_le16(h + 8) != MIG_VERSION)
		return mig_dec_fail(d, -EPROTONOSUPPORT, "version %u (this host "
				    "reads version %d only)", ld_le16(h + 8), MIG_VERSION);
	if (flags & ~MIG_F_LIVE)
		return mig_dec_fail(d, -EPROTONOSUPPORT, "unknown flags %#x", flags);
	d->chain = ld_le32(h + 12);
	mig_ord_init(&d->ord, flags);
	d->st = MIG_DS_RHDR;
	return 0;
}

static int dec_record_header(struct mig_dec *d)
{
	const uint8_t *h = d->hdr;
	uint16_t type = ld_le16(h);

	d->type = type < MIG_REC_CONFIG || type > MIG_REC_END ? 0 : type;
	d->meta_len = ld_le32(h + 4);
	d->data_len = ld_le32(h + 8);
	if (!d->type)
		return mig_dec_fail(d, -EBADMSG, "unknown record type %u", type);
	if (ld_le16(h + 2))
		return mig_dec_fail(d, -EBADMSG, "reserved header bits set");
	if (d->meta_len > MIG_META_MAX)
		return mig_dec_fail(d, -EMSGSIZE, "%u bytes of metadata (at most %d)",
				    d->meta_len, MIG_META_MAX);
	if (d->data_len > MIG_DATA_MAX)
		return mig_dec_fail(d, -EMSGSIZE, "%u bytes of page data (at most %d)",
				    d->data_len, MIG_DATA_MAX);
	if (d->data_len && d->type != MIG_REC_RAM)
		return mig_dec_fail(d, -EBADMSG, "page data in a %s record",
				    mig_rec_name(d->type));
	d->st = MIG_DS_META;
	return 0;
}

/* CONFIG's fixed part: the counts and lengths, each within its limit. */
static int dec_config_fixed(struct mig_dec *d, struct rd *r, struct mig_lens *l)
{
	struct mig_config *c = &d->u.config;

	c->mem_size = rd64(r);
	c->nvcpus = rd32(r);
	c->tsc_khz = rd32(r);
	c->kind = rd16(r);
	l->name = rd16(r);
	l->path = rd16(r);
	l->initrd = rd16(r);
	l->modules = rd16(r);
	l->cmdline = rd16(r);
	c->ndevspecs = rd16(r);
	c->ncpuid = rd16(r);
	if (rd64(r))
		return mig_dec_fail(d, -EBADMSG, "reserved field set");
	if (l->name > MIG_NAME_MAX || l->path > MIG_PATH_MAX || l->initrd > MIG_PATH_MAX ||
	    l->modules > MIG_PATH_MAX || l->cmdline > MIG_CMDLINE_MAX ||
	    c->ndevspecs > MIG_DEVSPECS_MAX || c->ncpuid > MIG_CPUID_MAX)
		return mig_dec_fail(d, -E2BIG, "lengths %zu/%zu/%zu/%zu/%zu/%u/%u over "
				    "the limits %d/%d/%d/%d/%d/%d/%d (name/path/initrd/"
				    "modules/cmdline/words/CPUID)", l->name, l->path,
				    l->initrd, l->modules, l->cmdline, c->ndevspecs,
				    c->ncpuid, MIG_NAME_MAX, MIG_PATH_MAX, MIG_PATH_MAX,
				    MIG_PATH_MAX, MIG_CMDLINE_MAX, MIG_DEVSPECS_MAX,
				    MIG_CPUID_MAX);
	return 0;
}

/*
 * The device words' lengths, walked in d->meta from off before any word
 * is copied: each within its limit, and the record exactly as long as
 * the words and CPUID entries say.
 */
static int dec_config_words(struct mig_dec *d, struct mig_lens *l, uint32_t off)
{
	const struct mig_config *c = &d->u.config;
	uint32_t want = off + 2 * c->ndevspecs + 24 * c->ncpuid;

	if (d->meta_len < want)
		return mig_dec_fail(d, -EBADMSG, "%u bytes where the lengths say at "
				    "least %u", d->meta_len, want);
	for (uint32_t i = 0; i < c->ndevspecs; i++) {
		uint16_t len = ld_le16(d->meta + off);

		if (len > MIG_DEVSPEC_MAX)
			return mig_dec_fail(d, -E2BIG, "device word %u of %u bytes (at "
					    "most %d)", i, len, MIG_DEVSPEC_MAX);
		l->devspec[i] = len;
		want += len;
		off += 2 + len;
		if (d->meta_len < want)
			return mig_dec_fail(d, -EBADMSG, "%u bytes where the lengths "
					    "say at least %u", d->meta_len, want);
	}
	if (d->meta_len != want)
		return mig_dec_fail(d, -EBADMSG, "%u bytes where the lengths say %u",
				    d->meta_len, want);
	return 0;
}

/* The strings, words and CPUID entries, once their lengths are known good. */
static void dec_config_body(struct mig_config *c, const struct mig_lens *l, struct rd *r)
{
	rd_copy(r, c->name, (uint32_t)l->name);
	rd_copy(r, c->kernel_path, (uint32_t)l->path);
	rd_copy(r, c->initrd_path, (uint32_t)l->initrd);
	rd_copy(r, c->modules, (uint32_t)l->modules);
	rd_copy(r, c->cmdline, (uint32_t)l->cmdline);
	for (uint32_t i = 0; i < c->ndevspecs; i++) {
		rd16(r);
		rd_copy(r, c->devspecs[i], (uint32_t)l->devspec[i]);
	}
	for (uint32_t i = 0; i < c->ncpuid; i++) {
		struct mig_cpuid *q = &c->cpuid[i];

		q->leaf = rd32(r);
		q->subleaf = rd32(r);
		q->eax = rd32(r);
		q->ebx = rd32(r);
		q->ecx = rd32(r);
		q->edx = rd32(r);
	}
}

static int dec_config(struct mig_dec *d, struct rd *r)
{
	struct mig_config *c = &d->u.config;
	struct mig_lens l;
	char why[MIG_REASON_MAX];
	int rc;

	if (d->meta_len < CONFIG_FIXED)
		return mig_dec_fail(d, -EBADMSG, "%u bytes, too short", d->meta_len);
	memset(c, 0, sizeof(*c));
	memset(&l, 0, sizeof(l));
	if ((rc = dec_config_fixed(d, r, &l)) ||
	    (rc = dec_config_words(d, &l, (uint32_t)(CONFIG_FIXED + l.name + l.path +
						     l.initrd + l.modules + l.cmdline))))
		return rc;
	dec_config_body(c, &l, r);
	if ((rc = mig_check_config(c, &l, d->seen_cap, why)) ||
	    (rc = mig_ord_config(&d->ord, c->mem_size / MIG_PAGE_SIZE, c->nvcpus, why)))
		return dec_why(d, rc, why);
	/* The bitmap is the caller's memory: clear what this VM uses. */
	memset(d->seen, 0, mig_bitmap_bytes(d->ord.npages));
	d->seen_count = 0;
	return dec_called(d, d->ops->config ? d->ops->config(d->ctx, c) : 0);
}

static int dec_round(struct mig_dec *d, struct rd *r)
{
	struct mig_round rr;
	char why[MIG_REASON_MAX];
	int rc;

	if (d->meta_len != ROUND_LEN)
		return mig_dec_fail(d, -EBADMSG, "%u bytes, not %d", d->meta_len, ROUND_LEN);
	rr.round = rd32(r);
	rr.flags = rd32(r);
	rr.pages = rd64(r);
	if ((rc = mig_ord_round(&d->ord, &rr, why)))
		return dec_why(d, rc, why);
	return dec_called(d, d->ops->round ? d->ops->round(d->ctx, &rr) : 0);
}

static bool seen_test_set(struct mig_dec *d, uint64_t index)
{
	uint64_t bit = 1ull << (index % 64);
	bool was = d->seen[index / 64] & bit;

	d->seen[index / 64] |= bit;
	d->seen_count += !was;
	return was;
}

/* Check the whole descriptor table before any of its pages is used. */
static int dec_ram_entries(struct mig_dec *d, struct rd *r, uint32_t n)
{
	uint32_t ndata = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t index = rd64(r);
		uint8_t kind = rd8(r);
		uint32_t rsvd = rd16(r) | (uint32_t)rd8(r) << 16;
		uint32_t crc = rd32(r);

		if (kind > MIG_PAGE_ZERO || rsvd || (kind == MIG_PAGE_ZERO && crc))
			return mig_dec_fail(d, -EBADMSG, "entry %u: kind %u, reserved "
					    "%#x, crc %#x", i, kind, rsvd, crc);
		if (index >= d->ord.npages)
			return mig_dec_fail(d, -ERANGE, "page %llu beyond the %llu pages "
					    "of the VM", (unsigned long long)index,
					    (unsigned long long)d->ord.npages);
		ndata += kind == MIG_PAGE_DATA;
	}
	if (d->data_len != (uint64_t)ndata * MIG_PAGE_SIZE)
		return mig_dec_fail(d, -EBADMSG, "%u bytes of page data for %u data "
				    "pages", d->data_len, ndata);
	return 0;
}

static int dec_ram(struct mig_dec *d, struct rd *r)
{
	char why[MIG_REASON_MAX];
	uint32_t n;
	int rc;

	if (d->meta_len < RAM_FIXED)
		return mig_dec_fail(d, -EBADMSG, "%u bytes, too short", d->meta_len);
	n = rd32(r);
	if (rd32(r))
		return mig_dec_fail(d, -EBADMSG, "reserved field set");
	if (n == 0 || n > MIG_BATCH_MAX)
		return mig_dec_fail(d, n ? -E2BIG : -EBADMSG, "%u pages (1 to %d)",
				    n, MIG_BATCH_MAX);
	if (d->meta_len != RAM_FIXED + RAM_ENTRY * n)
		return mig_dec_fail(d, -EBADMSG, "%u bytes for %u entries", d->meta_len, n);
	if ((rc = dec_ram_entries(d, r, n)))
		return rc;
	if ((rc = mig_ord_ram(&d->ord, n, why)))
		return dec_why(d, rc, why);
	/* Counted now: END, the only reader, comes after every page's CRC. */
	for (uint32_t i = 0; i < n; i++) {
		uint64_t index = ld_le64(d->meta + RAM_FIXED + RAM_ENTRY * i);

		if (seen_test_set(d, index) && !(d->ord.flags & MIG_F_LIVE))
			return mig_dec_fail(d, -EPROTO, "page %llu sent twice in a "
					    "quick migration", (unsigned long long)index);
	}
	d->ent = 0;
	d->nent = n;
	return 0;
}

static void dec_get_seg(struct rd *r, struct mig_seg *s)
{
	s->sel = rd16(r);
	s->attr = rd16(r);
	s->limit = rd32(r);
	s->base = rd64(r);
}

static uint32_t dec_get_dtr(struct rd *r, struct mig_dtr *t)
{
	t->base = rd64(r);
	t->limit = rd32(r);
	return rd32(r);
}

/* The fixed block, after its lengths were checked against meta_len. */
static uint32_t dec_vcpu_fixed(struct rd *r, struct mig_vcpu *v)
{
	uint64_t *const regs[] = VCPU_REGS(v);
	uint32_t rsvd;

	v->index = rd32(r);
	v->flags = rd32(r);
	for (int i = 0; i < 16; i++)
		v->gpr[i] = rd64(r);
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		*regs[i] = rd64(r);
	for (int i = 0; i < 8; i++)
		dec_get_seg(r, &v->seg[i]);
	rsvd = dec_get_dtr(r, &v->gdtr);
	rsvd |= dec_get_dtr(r, &v->idtr);
	v->cpl = rd8(r);
	v->event_flags = rd8(r);
	v->event_vector = rd8(r);
	v->event_type = rd8(r);
	v->event_error = rd32(r);
	v->nmsrs = rd32(r);
	v->xsave_len = rd32(r);
	return rsvd;
}

static int dec_vcpu(struct mig_dec *d, struct rd *r)
{
	struct mig_vcpu *v = &d->u.vcpu;
	char why[MIG_REASON_MAX];
	uint32_t nmsrs, xlen, rsvd;
	int rc;

	if (d->meta_len < MIG_VCPU_FIXED)
		return mig_dec_fail(d, -EBADMSG, "%u bytes, too short", d->meta_len);
	nmsrs = ld_le32(d->meta + MIG_VCPU_FIXED - 8);
	xlen = ld_le32(d->meta + MIG_VCPU_FIXED - 4);
	if (nmsrs > MIG_MSRS_MAX || xlen > MIG_XSAVE_MAX)
		return mig_dec_fail(d, -E2BIG, "%u MSRs and %u bytes of XSAVE (at most "
				    "%d and %d)", nmsrs, xlen, MIG_MSRS_MAX, MIG_XSAVE_MAX);
	if (d->meta_len != MIG_VCPU_FIXED + 16 * nmsrs + xlen)
		return mig_dec_fail(d, -EBADMSG, "%u bytes where the lengths say %u",
				    d->meta_len, MIG_VCPU_FIXED + 16 * nmsrs + xlen);
	rsvd = dec_vcpu_fixed(r, v);
	for (uint32_t i = 0; i < nmsrs; i++) {
		v->msrs[i].index = rd32(r);
		rsvd |= rd32(r);
		v->msrs[i].value = rd64(r);
	}
	v->xsave = rd_take(r, xlen);
	if (rsvd)
		return mig_dec_fail(d, -EBADMSG, "vcpu %u: reserved field set", v->index);
	if ((rc = mig_check_vcpu(v, why)) || (rc = mig_ord_vcpu(&d->ord, v->index, why)))
		return dec_why(d, rc, why);
	return dec_called(d, d->ops->vcpu ? d->ops->vcpu(d->ctx, v) : 0);
}

static int dec_device(struct mig_dec *d, struct rd *r)
{
	struct mig_device *dev = &d->u.device;
	char why[MIG_REASON_MAX];
	uint16_t name_len;
	int rc;

	if (d->meta_len < DEVICE_FIXED)
		return mig_dec_fail(d, -EBADMSG, "%u bytes, too short", d->meta_len);
	memset(dev->name, 0, sizeof(dev->name));
	name_len = rd16(r);
	if (rd16(r))
		return mig_dec_fail(d, -EBADMSG, "reserved field set");
	dev->version = rd32(r);
	dev->blob_len = rd32(r);
	if (name_len > MIG_NAME_MAX || dev->blob_len > MIG_BLOB_MAX)
		return mig_dec_fail(d, -E2BIG, "name of %u bytes, state of %u (at most "
				    "%d and %d)", name_len, dev->blob_len, MIG_NAME_MAX,
				    MIG_BLOB_MAX);
	if (d->meta_len != DEVICE_FIXED + name_len + dev->blob_len)
		return mig_dec_fail(d, -EBADMSG, "%u bytes where the lengths say %u",
				    d->meta_len, DEVICE_FIXED + name_len + dev->blob_len);
	rd_copy(r, dev->name, name_len);
	dev->blob = rd_take(r, dev->blob_len);
	if ((rc = mig_check_device(dev, name_len, why)) ||
	    (rc = mig_ord_device(&d->ord, dev->name, why)))
		return dec_why(d, rc, why);
	return dec_called(d, d->ops->device ? d->ops->device(d->ctx, dev) : 0);
}

/* The lowest page never received; call only when one is missing. */
static uint64_t first_missing(const struct mig_dec *d)
{
	uint64_t w = 0;

	while (d->seen[w] == ~0ull)
		w++;
	return w * 64 + (uint64_t)__builtin_ctzll(~d->seen[w]);
}

static int dec_end_totals(struct mig_dec *d, const struct mig_end *e)
{
	const struct mig_order *o = &d->ord;

	if (e->pages != o->pages || e->rounds != o->rounds ||
	    e->vcpus != o->nvcpus || e->devices != o->ndevices || e->bytes != d->rec_start)
		return mig_dec_fail(d, -EPROTO, "END counts %llu pages, %u rounds, %u "
				    "vCPUs, %u devices, %llu bytes; the stream had "
				    "%llu, %u, %u, %u, %llu",
				    (unsigned long long)e->pages, e->rounds, e->vcpus,
				    e->devices, (unsigned long long)e->bytes,
				    (unsigned long long)o->pages, o->rounds, o->nvcpus,
				    o->ndevices, (unsigned long long)d->rec_start);
	if (d->seen_count != o->npages)
		return mig_dec_fail(d, -ENOENT, "%llu of the %llu pages never arrived "
				    "(the first is page %llu)",
				    (unsigned long long)(o->npages - d->seen_count),
				    (unsigned long long)o->npages,
				    (unsigned long long)first_missing(d));
	return 0;
}

static int dec_end(struct mig_dec *d, struct rd *r)
{
	struct mig_end e;
	char why[MIG_REASON_MAX];
	int rc;

	if (d->meta_len != END_LEN)
		return mig_dec_fail(d, -EBADMSG, "%u bytes, not %d", d->meta_len, END_LEN);
	e.pages = rd64(r);
	e.rounds = rd32(r);
	e.vcpus = rd32(r);
	e.devices = rd32(r);
	if (rd32(r))
		return mig_dec_fail(d, -EBADMSG, "reserved field set");
	e.bytes = rd64(r);
	if ((rc = mig_ord_end(&d->ord, why)))
		return dec_why(d, rc, why);
	if ((rc = dec_end_totals(d, &e)))
		return rc;
	return dec_called(d, d->ops->end ? d->ops->end(d->ctx, &e) : 0);
}

static void dec_record_done(struct mig_dec *d)
{
	d->st = d->type == MIG_REC_END ? MIG_DS_DONE : MIG_DS_RHDR;
	d->nrec++;
	d->have = 0;
}

static int dec_deliver(struct mig_dec *d, uint64_t index, const void *data)
{
	return dec_called(d, d->ops->page ? d->ops->page(d->ctx, index, data) : 0);
}

/*
 * Page data of a RAM record.  A page wholly inside the caller's chunk is
 * checked and delivered in place; one split across chunks is gathered in
 * d->page first.  Zero entries need no bytes.  Returns bytes used.
 */
static size_t dec_data(struct mig_dec *d, const uint8_t *p, size_t len)
{
	size_t used = 0;

	while (d->ent < d->nent) {
		const uint8_t *e = d->meta + RAM_FIXED + RAM_ENTRY * d->ent;
		const uint8_t *page = NULL;
		uint32_t crc;

		if (e[8] == MIG_PAGE_DATA) {
			if (d->have == 0 && len - used >= MIG_PAGE_SIZE) {
				page = p + used;
				used += MIG_PAGE_SIZE;
			} else {
				size_t take = MIG_PAGE_SIZE - d->have;

				if (take > len - used)
					take = len - used;
				if (take)
					memcpy(d->page + d->have, p + used, take);
				d->have += (uint32_t)take;
				used += take;
				if (d->have < MIG_PAGE_SIZE)
					return used;
				d->have = 0;
				page = d->page;
			}
			crc = crc32c(CRC32C_INIT, page, MIG_PAGE_SIZE);
			if (crc != ld_le32(e + 12)) {
				mig_dec_fail(d, -EILSEQ, "page %llu: data CRC %#x, the "
					     "record says %#x",
					     (unsigned long long)ld_le64(e), crc, ld_le32(e + 12));
				return used;
			}
		}
		if (dec_deliver(d, ld_le64(e), page))
			return used;
		d->ent++;
	}
	dec_record_done(d);
	return used;
}

static int dec_meta(struct mig_dec *d)
{
	struct rd r = { d->meta, d->meta_len, 0 };
	uint32_t crc = crc32c(crc32c(d->chain, d->hdr, 12), d->meta, d->meta_len);
	int rc;

	if (crc != ld_le32(d->hdr + 12))
		return mig_dec_fail(d, -EIO, "record checksum mismatch (corrupt, lost "
				    "or reordered data)");
	d->chain = crc;
	switch (d->type) {
	case MIG_REC_CONFIG:
		rc = dec_config(d, &r);
		break;
	case MIG_REC_ROUND:
		rc = dec_round(d, &r);
		break;
	case MIG_REC_RAM:
		if ((rc = dec_ram(d, &r)))
			return rc;
		d->st = MIG_DS_DATA;
		d->have = 0;
		dec_data(d, NULL, 0);	/* leading zero pages, or all of them */
		return d->st == MIG_DS_FAILED ? d->err : 0;
	case MIG_REC_VCPU:
		rc = dec_vcpu(d, &r);
		break;
	case MIG_REC_DEVICE:
		rc = dec_device(d, &r);
		break;
	default:
		rc = dec_end(d, &r);
		break;
	}
	if (!rc)
		dec_record_done(d);
	return rc;
}

/*
 * The metadata is in.  Without a MAC it is used now (page data follows
 * and is checked page by page); with one, the record's page data and tag
 * are gathered first.
 */
static void dec_meta_done(struct mig_dec *d)
{
	if (!d->rec_mac)
		dec_meta(d);
	else
		d->st = d->data_len ? MIG_DS_HOLD : MIG_DS_TAG;
}

/* Tags compared in time that does not depend on where they differ. */
static bool dec_tag_equal(const uint8_t *a, const uint8_t *b)
{
	uint8_t diff = 0;

	for (int i = 0; i < MIG_TAG_LEN; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

/* The whole record and its tag are in: check it, then use it. */
static void dec_tagged(struct mig_dec *d)
{
	uint8_t want[MIG_TAG_LEN];
	int rc = d->mac(d->mac_ctx, d->nrec, d->hdr, d->meta, d->meta_len, d->hold,
			d->data_len, want);

	if (rc < 0) {
		mig_dec_fail(d, rc, "record MAC failed (%d)", rc);
		return;
	}
	if (!dec_tag_equal(want, d->tag)) {
		mig_dec_fail(d, -EACCES, "record MAC mismatch (altered, replayed or "
			     "from another migration)");
		return;
	}
	if (dec_meta(d) || d->st != MIG_DS_DATA)
		return;
	/* The pages are whole in hold: dec_data checks and delivers them all. */
	dec_data(d, d->hold, d->data_len);
}

static size_t dec_collect(struct mig_dec *d, uint8_t *dst, uint32_t need,
			  const uint8_t *p, size_t len)
{
	size_t take = need - d->have;

	if (take > len)
		take = len;
	memcpy(dst + d->have, p, take);
	d->have += (uint32_t)take;
	return take;
}

/* One step of the parser on len > 0 bytes; returns how many it took. */
static size_t dec_step(struct mig_dec *d, const uint8_t *p, size_t len)
{
	size_t used;

	switch (d->st) {
	case MIG_DS_HDR:
		used = dec_collect(d, d->hdr, MIG_HDR_LEN, p, len);
		if (d->have == MIG_HDR_LEN) {
			d->have = 0;
			dec_stream_header(d);
		}
		return used;
	case MIG_DS_RHDR:
		if (d->have == 0) {
			d->rec_start = d->bytes;
			d->rec_mac = d->mac != NULL;
		}
		used = dec_collect(d, d->hdr, MIG_REC_HDR_LEN, p, len);
		if (d->have == MIG_REC_HDR_LEN) {
			d->have = 0;
			if (!dec_record_header(d) && d->meta_len == 0)
				dec_meta_done(d);
		}
		return used;
	case MIG_DS_META:
		used = dec_collect(d, d->meta, d->meta_len, p, len);
		if (d->have == d->meta_len) {
			d->have = 0;
			dec_meta_done(d);
		}
		return used;
	case MIG_DS_DATA:
		return dec_data(d, p, len);
	case MIG_DS_HOLD:
		used = dec_collect(d, d->hold, d->data_len, p, len);
		if (d->have == d->data_len) {
			d->have = 0;
			d->st = MIG_DS_TAG;
		}
		return used;
	case MIG_DS_TAG:
		used = dec_collect(d, d->tag, MIG_TAG_LEN, p, len);
		if (d->have == MIG_TAG_LEN) {
			d->have = 0;
			dec_tagged(d);
		}
		return used;
	default:
		return 0;
	}
}

int mig_dec_feed(struct mig_dec *d, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len && d->st != MIG_DS_FAILED) {
		size_t used;

		if (d->st == MIG_DS_DONE)
			return mig_dec_fail(d, -EPROTO, "%zu more bytes after END", len);
		used = dec_step(d, p, len);
		p += used;
		len -= used;
		d->bytes += used;
	}
	return d->st == MIG_DS_FAILED ? d->err : 0;
}

int mig_dec_finish(struct mig_dec *d)
{
	static const char *const where[] = {
		[MIG_DS_HDR] = "inside the stream header",
		[MIG_DS_RHDR] = "inside a record header",
		[MIG_DS_META] = "inside the metadata of a record",
		[MIG_DS_DATA] = "inside the page data of a RAM record",
		[MIG_DS_HOLD] = "inside the page data of a RAM record",
		[MIG_DS_TAG] = "inside the MAC of a record",
	};

	if (d->st == MIG_DS_FAILED)
		return d->err;
	if (d->st == MIG_DS_DONE)
		return 0;
	snprintf(d->reason, sizeof(d->reason), "stream truncated after %llu bytes, "
		 "%s", (unsigned long long)d->bytes,
		 d->st == MIG_DS_RHDR && d->have == 0 ? "before END" : where[d->st]);
	d->st = MIG_DS_FAILED;
	d->err = -ENODATA;
	return d->err;
}

bool mig_dec_complete(const struct mig_dec *d)
{
	return d->st == MIG_DS_DONE;
}
