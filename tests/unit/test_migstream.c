/*
 * Unit tests and a mutation fuzz test for the migration stream codec
 * (migrate/stream*.c): round trips of every record, every split of a
 * stream, a corrupt byte anywhere, truncation at every offset, each limit
 * and order rule, and the wire bytes themselves.
 *
 * Streams that break a rule are made by editing a valid one (patching a
 * field, or splicing its records) and resealing the CRCs with
 * mig_reseal.h, so each test reaches the check it is about.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/crc32c.h"
#include "migrate/stream.h"
#include "tests/unit/mig_reseal.h"

#define T_MAXPAGES	64
#define T_BUF		(1u << 20)
#define T_PG		MIG_PAGE_SIZE

/* Quiet in loops: Criterion reports every passing cr_assert. */
#define T_CHECK(c) do { if (!(c)) cr_assert_fail("invariant: %s", #c); } while (0)

/* ---- what the receiver saw ---- */

struct tctx {
	struct mig_dec *d;
	uint64_t npages;
	uint8_t mem[T_MAXPAGES * T_PG];
	struct mig_config cfg;
	int nconfig, nrounds, npagecalls, nvcpus, ndevices, nend;
	struct mig_vcpu vcpu[4];
	uint8_t xsave[4][1024];
	struct mig_device dev[4];
	uint8_t blob[4][512];
	struct mig_end end;
	uint64_t hash;		/* of the callback sequence, for split tests */
	int refuse;		/* record type whose callback says no */
	bool refuse_reason;	/* ... through mig_dec_fail */
};

static void t_mix(struct tctx *t, uint64_t v)
{
	t->hash = (t->hash ^ v) * 0x100000001b3ull;
}

static int t_refused(struct tctx *t, int type)
{
	if (t->refuse != type)
		return 0;
	if (t->refuse_reason)
		return mig_dec_fail(t->d, -ENOSPC, "no room for %s here", mig_rec_name(type));
	return -ENOMEM;
}

static int t_config(void *ctx, const struct mig_config *c)
{
	struct tctx *t = ctx;

	T_CHECK(c->mem_size / T_PG <= T_MAXPAGES);
	t->cfg = *c;
	t->npages = c->mem_size / T_PG;
	t->nconfig++;
	t_mix(t, c->mem_size);
	return t_refused(t, MIG_REC_CONFIG);
}

static int t_round(void *ctx, const struct mig_round *r)
{
	struct tctx *t = ctx;

	t->nrounds++;
	t_mix(t, r->round * 31 + r->pages);
	return t_refused(t, MIG_REC_ROUND);
}

static int t_page(void *ctx, uint64_t index, const void *data)
{
	struct tctx *t = ctx;

	T_CHECK(index < t->npages);
	if (data)
		memcpy(t->mem + index * T_PG, data, T_PG);
	else
		memset(t->mem + index * T_PG, 0, T_PG);
	t->npagecalls++;
	t_mix(t, index);
	t_mix(t, data ? crc32c(0, data, T_PG) : 0);
	return t_refused(t, MIG_REC_RAM);
}

static int t_vcpu(void *ctx, const struct mig_vcpu *v)
{
	struct tctx *t = ctx;

	T_CHECK(v->index < t->cfg.nvcpus);
	if (t->nvcpus < 4) {
		t->vcpu[t->nvcpus] = *v;
		if (v->xsave_len)
			memcpy(t->xsave[t->nvcpus], v->xsave,
			       v->xsave_len < sizeof(t->xsave[0]) ? v->xsave_len : sizeof(t->xsave[0]));
	}
	t->nvcpus++;
	t_mix(t, v->index ^ v->rip ^ crc32c(0, v->xsave, v->xsave_len));
	return t_refused(t, MIG_REC_VCPU);
}

static int t_device(void *ctx, const struct mig_device *d)
{
	struct tctx *t = ctx;

	if (t->ndevices < 4) {
		t->dev[t->ndevices] = *d;
		if (d->blob_len)
			memcpy(t->blob[t->ndevices], d->blob,
			       d->blob_len < sizeof(t->blob[0]) ? d->blob_len : sizeof(t->blob[0]));
	}
	t->ndevices++;
	t_mix(t, d->version ^ crc32c(0, d->blob, d->blob_len));
	return t_refused(t, MIG_REC_DEVICE);
}

static int t_end(void *ctx, const struct mig_end *e)
{
	struct tctx *t = ctx;

	t->end = *e;
	t->nend++;
	t_mix(t, e->bytes);
	return t_refused(t, MIG_REC_END);
}

static const struct mig_dec_ops t_ops = {
	t_config, t_round, t_page, t_vcpu, t_device, t_end,
};

/* Big: one of each, on the heap. */
static struct mig_dec *t_dec;
static struct tctx *t_ctx;
static uint64_t t_seen[T_MAXPAGES / 64 + 1];
static uint8_t *t_buf, *t_buf2;

static void t_setup(void)
{
	t_dec = malloc(sizeof(*t_dec));
	t_ctx = malloc(sizeof(*t_ctx));
	t_buf = malloc(T_BUF);
	t_buf2 = malloc(T_BUF);
	cr_assert(t_dec && t_ctx && t_buf && t_buf2);
}

static void t_teardown(void)
{
	free(t_dec);
	free(t_ctx);
	free(t_buf);
	free(t_buf2);
}

TestSuite(migstream, .init = t_setup, .fini = t_teardown);

static void t_reset(void)
{
	memset(t_ctx, 0, sizeof(*t_ctx));
	t_ctx->d = t_dec;
	mig_dec_init(t_dec, &t_ops, t_ctx, t_seen, T_MAXPAGES);
}

/* Decode buf in one piece; returns feed's result, or finish's. */
static int t_decode(const uint8_t *buf, size_t len)
{
	int rc;

	t_reset();
	rc = mig_dec_feed(t_dec, buf, len);
	if (rc)
		return rc;
	return mig_dec_finish(t_dec);
}

/* ---- building streams ---- */

/* Page index's content in a round; pages 2, 6, 10, ... are zero. */
static void t_fill(uint8_t *p, uint64_t index, uint32_t round)
{
	if (index % 4 == 2) {
		memset(p, 0, T_PG);
		return;
	}
	for (size_t i = 0; i < T_PG; i += 8) {
		uint64_t v = index << 40 | (uint64_t)round << 32 | i;

		memcpy(p + i, &v, 8);
	}
}

static void t_config_for(struct mig_config *c, uint64_t npages, uint32_t nvcpus)
{
	memset(c, 0, sizeof(*c));
	c->mem_size = npages * T_PG;
	c->nvcpus = nvcpus;
	c->kind = MIG_KIND_LINUX;
	c->tsc_khz = 2500000;
	strcpy(c->name, "web1");
	strcpy(c->kernel_path, "/tern/guests/hello.elf");
	strcpy(c->initrd_path, "linux/initrd.gz");
	/* The codec ties an initrd to a kind, not modules: every field here. */
	strcpy(c->modules, "env.txt,m");
	strcpy(c->cmdline, "console=ttyS0 mig-test");
	c->ndevspecs = 2;
	strcpy(c->devspecs[0], "disk=web");
	strcpy(c->devspecs[1], "nic=02:00:00:00:00:01");
	c->ncpuid = 2;
	c->cpuid[0] = (struct mig_cpuid){ 0, 0, 0xd, 0x68747541, 0x444d4163, 0x69746e65 };
	c->cpuid[1] = (struct mig_cpuid){ 1, 0, 0x800f12, 0x10800, 0x80002001, 0x178bfbff };
}

static uint8_t t_xsave_src[600];

static void t_vcpu_for(struct mig_vcpu *v, uint32_t index)
{
	memset(v, 0, sizeof(*v));
	v->index = index;
	v->flags = MIG_VCPU_INT_SHADOW;
	for (int i = 0; i < 16; i++)
		v->gpr[i] = 0x1000ull * (index + 1) + (uint64_t)i;
	v->rip = 0xfff0 + index;
	v->rflags = 0x202;
	v->cr0 = 0x80050033;
	v->cr3 = 0x1000;
	v->cr4 = 0x6f0;
	v->efer = 0xd01;
	v->xcr0 = 7;
	v->dr6 = 0xffff0ff0;
	v->dr7 = 0x400;
	v->tsc = 123456789ull * (index + 1);
	for (int i = 0; i < 8; i++)
		v->seg[i] = (struct mig_seg){ (uint16_t)(i * 8), 0x93, 0xffffffff, 0x10ull * i };
	v->gdtr = (struct mig_dtr){ 0x5000, 0x27 };
	v->idtr = (struct mig_dtr){ 0x6000, 0xfff };
	v->event_flags = MIG_EVENT_VALID | MIG_EVENT_HAS_ERROR;
	v->event_vector = 14;
	v->event_type = 3;
	v->event_error = 2;
	v->nmsrs = 3;
	v->msrs[0] = (struct mig_msr){ 0xc0000081, 0x0023001000000000ull };
	v->msrs[1] = (struct mig_msr){ 0xc0000082, 0xffffffff81000000ull };
	v->msrs[2] = (struct mig_msr){ 0x277, 0x0007040600070406ull };
	for (size_t i = 0; i < sizeof(t_xsave_src); i++)
		t_xsave_src[i] = (uint8_t)(i * 7 + 1);
	v->xsave_len = sizeof(t_xsave_src) - index;
	v->xsave = t_xsave_src;
}

static const uint8_t t_blob[] = "uart: ier 1, lcr 3, fifo 'hello'";

struct t_spec {
	bool live;
	uint64_t npages;
	uint32_t nvcpus;
	int ndevices;
	unsigned batch;
};

/* The image a decoder must end up with, as the builder sent it. */
static uint8_t t_expect[T_MAXPAGES * T_PG];

static void t_send(struct mig_enc *e, const uint64_t *idx, unsigned n, uint32_t round,
		   unsigned batch)
{
	static uint8_t pages[MIG_BATCH_MAX][T_PG];
	struct mig_page pg[MIG_BATCH_MAX];

	for (unsigned i = 0; i < n; i += batch) {
		unsigned k = n - i < batch ? n - i : batch;

		for (unsigned j = 0; j < k; j++) {
			t_fill(pages[j], idx[i + j], round);
			memcpy(t_expect + idx[i + j] * T_PG, pages[j], T_PG);
			pg[j] = (struct mig_page){ idx[i + j], pages[j] };
		}
		cr_assert_eq(mig_enc_ram(e, pg, k), 0, "%s", e->reason);
	}
}

/*
 * Quick: one round of every page.  Live: round 0 every page, round 1
 * the odd pages, final round 2 pages 3 and 2 (which turns zero... and
 * stays zero).  Then the vCPUs, devices, END.
 */
static size_t t_build(uint8_t *buf, const struct t_spec *s)
{
	static struct mig_enc e;
	static struct mig_vcpu v;
	struct mig_config c;
	uint64_t idx[T_MAXPAGES];
	unsigned n = 0;

	memset(t_expect, 0xee, sizeof(t_expect));
	cr_assert_eq(mig_enc_init(&e, buf, T_BUF, s->live ? MIG_F_LIVE : 0), 0);
	t_config_for(&c, s->npages, s->nvcpus);
	cr_assert_eq(mig_enc_config(&e, &c), 0, "%s", e.reason);
	for (uint64_t i = 0; i < s->npages; i++)
		idx[i] = i;
	cr_assert_eq(mig_enc_round(&e, 0, s->live ? 0 : MIG_ROUND_FINAL, s->npages), 0);
	t_send(&e, idx, (unsigned)s->npages, 0, s->batch);
	if (s->live) {
		for (uint64_t i = 1; i < s->npages; i += 2)
			idx[n++] = i;
		cr_assert_eq(mig_enc_round(&e, 1, 0, n), 0, "%s", e.reason);
		t_send(&e, idx, n, 1, s->batch);
		idx[0] = 3 % s->npages;
		idx[1] = 2 % s->npages;
		cr_assert_eq(mig_enc_round(&e, 2, MIG_ROUND_FINAL, 2), 0, "%s", e.reason);
		t_send(&e, idx, 2, 2, s->batch);
	}
	for (uint32_t i = 0; i < s->nvcpus; i++) {
		t_vcpu_for(&v, s->nvcpus - 1 - i);	/* any order */
		cr_assert_eq(mig_enc_vcpu(&e, &v), 0, "%s", e.reason);
	}
	for (int i = 0; i < s->ndevices; i++) {
		struct mig_device d = { .version = 7u + (uint32_t)i,
					.blob_len = sizeof(t_blob) - (uint32_t)i, .blob = t_blob };

		snprintf(d.name, sizeof(d.name), "dev%d.uart", i);
		cr_assert_eq(mig_enc_device(&e, &d), 0, "%s", e.reason);
	}
	cr_assert_eq(mig_enc_end(&e), 0, "%s", e.reason);
	cr_assert_eq(e.len, e.bytes);
	return e.len;
}

static const struct t_spec t_quick = { false, 16, 2, 2, 5 };
static const struct t_spec t_live = { true, 16, 2, 2, 64 };
static const struct t_spec t_small = { true, 4, 1, 1, 3 };

static void t_check_image(const struct t_spec *s)
{
	cr_assert(mig_dec_complete(t_dec));
	cr_assert_eq(t_ctx->nconfig, 1);
	cr_assert_eq(t_ctx->nend, 1);
	cr_assert_eq(t_ctx->nvcpus, (int)s->nvcpus);
	cr_assert_eq(t_ctx->ndevices, s->ndevices);
	cr_assert_eq(memcmp(t_ctx->mem, t_expect, s->npages * T_PG), 0);
}

/* ---- round trips ---- */

/* Field by field: the structs have padding. */
static void t_vcpu_eq(const struct mig_vcpu *a, const struct mig_vcpu *b)
{
	cr_assert_eq(a->flags, b->flags);
	cr_assert_eq(memcmp(a->gpr, b->gpr, sizeof(a->gpr)), 0);
	cr_assert(a->rip == b->rip && a->rflags == b->rflags && a->cr0 == b->cr0 &&
		  a->cr2 == b->cr2 && a->cr3 == b->cr3 && a->cr4 == b->cr4 &&
		  a->cr8 == b->cr8 && a->efer == b->efer && a->xcr0 == b->xcr0 &&
		  a->dr6 == b->dr6 && a->dr7 == b->dr7 && a->tsc == b->tsc &&
		  !memcmp(a->dr, b->dr, sizeof(a->dr)));
	for (int i = 0; i < 8; i++)
		cr_assert(a->seg[i].sel == b->seg[i].sel && a->seg[i].attr == b->seg[i].attr &&
			  a->seg[i].limit == b->seg[i].limit && a->seg[i].base == b->seg[i].base);
	cr_assert(a->gdtr.base == b->gdtr.base && a->gdtr.limit == b->gdtr.limit &&
		  a->idtr.base == b->idtr.base && a->idtr.limit == b->idtr.limit);
	cr_assert(a->cpl == b->cpl && a->event_flags == b->event_flags &&
		  a->event_vector == b->event_vector && a->event_type == b->event_type &&
		  a->event_error == b->event_error);
	cr_assert_eq(a->nmsrs, b->nmsrs);
	for (uint32_t i = 0; i < a->nmsrs; i++)
		cr_assert(a->msrs[i].index == b->msrs[i].index &&
			  a->msrs[i].value == b->msrs[i].value);
}

Test(migstream, roundtrip_quick)
{
	size_t n = t_build(t_buf, &t_quick);
	struct mig_config c;
	struct mig_vcpu v;

	cr_assert_eq(t_decode(t_buf, n), 0, "%s", t_dec->reason);
	t_check_image(&t_quick);
	t_config_for(&c, 16, 2);
	cr_assert_eq(memcmp(&t_ctx->cfg, &c, sizeof(c)), 0);
	cr_assert_eq(t_ctx->nrounds, 1);
	cr_assert_eq(t_ctx->npagecalls, 16);
	for (int i = 0; i < 2; i++) {
		struct mig_vcpu *got = &t_ctx->vcpu[i];

		t_vcpu_for(&v, got->index);
		cr_assert_eq(got->index, 1u - (uint32_t)i);
		cr_assert_eq(got->xsave_len, v.xsave_len);
		cr_assert_eq(memcmp(t_ctx->xsave[i], v.xsave, v.xsave_len), 0);
		t_vcpu_eq(got, &v);
	}
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(t_ctx->dev[i].version, 7u + (uint32_t)i);
		cr_assert_eq(t_ctx->dev[i].blob_len, sizeof(t_blob) - (uint32_t)i);
		cr_assert_eq(memcmp(t_ctx->blob[i], t_blob, t_ctx->dev[i].blob_len), 0);
	}
	cr_assert_str_eq(t_ctx->dev[1].name, "dev1.uart");
	cr_assert_eq(t_ctx->end.pages, 16);
	cr_assert_eq(t_ctx->end.rounds, 1);
	cr_assert_eq(t_ctx->end.vcpus, 2);
	cr_assert_eq(t_ctx->end.devices, 2);
	cr_assert_eq(t_ctx->end.bytes, n - MIG_REC_HDR_LEN - 32);
}

/* Resent pages: the last copy wins, zero or not. */
Test(migstream, roundtrip_live_last_copy_wins)
{
	size_t n = t_build(t_buf, &t_live);
	uint8_t p[T_PG];

	cr_assert_eq(t_decode(t_buf, n), 0, "%s", t_dec->reason);
	t_check_image(&t_live);
	cr_assert_eq(t_ctx->nrounds, 3);
	cr_assert_eq(t_ctx->npagecalls, 16 + 8 + 2);
	t_fill(p, 3, 2);
	cr_assert_eq(memcmp(t_ctx->mem + 3 * T_PG, p, T_PG), 0);
	t_fill(p, 5, 1);
	cr_assert_eq(memcmp(t_ctx->mem + 5 * T_PG, p, T_PG), 0);
	t_fill(p, 4, 0);
	cr_assert_eq(memcmp(t_ctx->mem + 4 * T_PG, p, T_PG), 0);
}

/* A zero page is a 16-byte entry; a page that became zero is zeroed. */
Test(migstream, zero_pages)
{
	static struct mig_enc e;
	static uint8_t a[T_PG], z[T_PG];
	struct mig_config c;
	struct mig_vcpu v;
	struct mig_page pg[3] = { { 0, a }, { 1, z }, { 2, NULL } };
	size_t before;

	memset(a, 0x5a, sizeof(a));
	t_config_for(&c, 3, 1);
	cr_assert_eq(mig_enc_init(&e, t_buf, T_BUF, MIG_F_LIVE), 0);
	cr_assert_eq(mig_enc_config(&e, &c), 0);
	cr_assert_eq(mig_enc_round(&e, 0, 0, 3), 0);
	before = e.len;
	cr_assert_eq(mig_enc_ram(&e, pg, 3), 0);
	cr_assert_eq(e.len - before, MIG_REC_HDR_LEN + 8 + 3 * 16 + T_PG);
	pg[0].data = z;		/* page 0 is zeroed by the guest */
	cr_assert_eq(mig_enc_round(&e, 1, MIG_ROUND_FINAL, 1), 0);
	cr_assert_eq(mig_enc_ram(&e, pg, 1), 0);
	t_vcpu_for(&v, 0);
	cr_assert_eq(mig_enc_vcpu(&e, &v), 0);
	cr_assert_eq(mig_enc_end(&e), 0);
	t_reset();
	memset(t_ctx->mem, 0xff, 3 * T_PG);
	cr_assert_eq(mig_dec_feed(t_dec, t_buf, e.len), 0, "%s", t_dec->reason);
	cr_assert_eq(mig_dec_finish(t_dec), 0);
	for (size_t i = 0; i < 3 * T_PG; i++)
		T_CHECK(t_ctx->mem[i] == 0);
	cr_assert_eq(t_ctx->npagecalls, 4);
}

/* Batches of 1 to 64 pages, all the same image. */
Test(migstream, batch_sizes)
{
	for (unsigned b = 1; b <= MIG_BATCH_MAX; b += 7) {
		struct t_spec s = { true, 64, 1, 0, b };
		size_t n = t_build(t_buf, &s);

		cr_assert_eq(t_decode(t_buf, n), 0, "batch %u: %s", b, t_dec->reason);
		t_check_image(&s);
	}
}

/* ---- splits, corruption, truncation ---- */

static uint64_t t_hash_whole(const uint8_t *buf, size_t n)
{
	cr_assert_eq(t_decode(buf, n), 0, "%s", t_dec->reason);
	return t_ctx->hash;
}

Test(migstream, every_split)
{
	size_t n = t_build(t_buf, &t_small);
	uint64_t want = t_hash_whole(t_buf, n);

	for (size_t k = 0; k <= n; k++) {
		t_reset();
		T_CHECK(mig_dec_feed(t_dec, t_buf, k) == 0);
		T_CHECK(mig_dec_feed(t_dec, t_buf + k, n - k) == 0);
		T_CHECK(mig_dec_finish(t_dec) == 0);
		T_CHECK(t_ctx->hash == want);
	}
	t_reset();
	for (size_t k = 0; k < n; k++)
		T_CHECK(mig_dec_feed(t_dec, t_buf + k, 1) == 0);
	cr_assert_eq(mig_dec_finish(t_dec), 0);
	cr_assert_eq(t_ctx->hash, want);
	cr_assert_eq(memcmp(t_ctx->mem, t_expect, 4 * T_PG), 0);
}

Test(migstream, random_chunks)
{
	size_t n = t_build(t_buf, &t_live);
	uint64_t want = t_hash_whole(t_buf, n), rng = 42;

	for (int it = 0; it < 200; it++) {
		size_t off = 0;

		t_reset();
		while (off < n) {
			size_t k;

			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			k = (rng >> 33) % (rng >> 62 ? 9000 : 40);
			if (k > n - off)
				k = n - off;
			T_CHECK(mig_dec_feed(t_dec, t_buf + off, k) == 0);
			off += k;
		}
		T_CHECK(mig_dec_finish(t_dec) == 0 && t_ctx->hash == want);
	}
}

/* Any byte changed anywhere: a clean error, never an image. */
Test(migstream, corrupt_every_byte)
{
	size_t n = t_build(t_buf, &t_small);
	int seen_eio = 0, seen_eilseq = 0;

	for (size_t k = 0; k < n; k++) {
		static const uint8_t flips[] = { 0x01, 0x80, 0xff };

		for (size_t f = 0; f < sizeof(flips); f++) {
			int rc;

			memcpy(t_buf2, t_buf, n);
			t_buf2[k] ^= flips[f];
			rc = t_decode(t_buf2, n);
			if (rc >= 0 || mig_dec_complete(t_dec) || !t_dec->reason[0])
				cr_assert_fail("byte %zu ^ %#x: rc %d, %s", k, flips[f], rc,
					       t_dec->reason);
			seen_eio += rc == -EIO;
			seen_eilseq += rc == -EILSEQ;
		}
	}
	cr_assert_gt(seen_eio, 100);
	/* Six DATA pages in t_small's three rounds, three flips a byte. */
	cr_assert_eq(seen_eilseq, 3 * 6 * T_PG, "%d", seen_eilseq);
}

/* Every proper prefix is "not yet", never an error and never an image. */
Test(migstream, truncate_every_offset)
{
	size_t n = t_build(t_buf, &t_small);

	for (size_t k = 0; k < n; k++) {
		t_reset();
		T_CHECK(mig_dec_feed(t_dec, t_buf, k) == 0);
		T_CHECK(!mig_dec_complete(t_dec));
		T_CHECK(mig_dec_finish(t_dec) == -ENODATA);
		T_CHECK(strstr(t_dec->reason, "truncated") != NULL);
		T_CHECK(t_ctx->nend == 0);
	}
	t_reset();
	mig_dec_feed(t_dec, t_buf, n - 1);
	mig_dec_finish(t_dec);
	cr_assert(strstr(t_dec->reason, "inside the metadata"), "%s", t_dec->reason);
}

/* ---- the wire itself ---- */

/* Byte order and offsets, read straight off the buffer. */
Test(migstream, wire_is_little_endian)
{
	static struct mig_enc e;
	struct mig_config c;
	const uint8_t *r;
	/* CONFIG v2 of t_config_for(0x123 pages, 3 vCPUs), by the table in stream.h. */
	static const uint8_t want[] =
		"\x00\x30\x12\x00\x00\x00\x00\x00"	/* mem_size 0x123000 */
		"\x03\x00\x00\x00"			/* nvcpus */
		"\xa0\x25\x26\x00"			/* tsc_khz 2500000 */
		"\x01\x00"				/* kind Linux */
		"\x04\x00\x16\x00\x0f\x00\x09\x00\x16\x00" /* name path initrd modules cmdline */
		"\x02\x00\x02\x00"			/* ndevspecs, ncpuid */
		"\x00\x00\x00\x00\x00\x00\x00\x00"	/* reserved */
		"web1" "/tern/guests/hello.elf" "linux/initrd.gz" "env.txt,m"
		"console=ttyS0 mig-test"
		"\x08\x00" "disk=web" "\x15\x00" "nic=02:00:00:00:00:01";

	t_config_for(&c, 0x123, 3);
	cr_assert_eq(mig_enc_init(&e, t_buf, T_BUF, MIG_F_LIVE), 0);
	cr_assert_eq(memcmp(t_buf, "TERN-MIG\x02\x00\x01\x00", 12), 0);
	cr_assert_eq(ld_le32(t_buf + 12), crc32c(0, t_buf, 12));
	cr_assert_eq(mig_enc_config(&e, &c), 0);
	r = t_buf + MIG_HDR_LEN;
	cr_assert_eq(memcmp(r, "\x01\x00\x00\x00", 4), 0);	/* CONFIG, reserved */
	cr_assert_eq(sizeof(want) - 1, 40 + 72 + 33);
	cr_assert_eq(ld_le32(r + 4), sizeof(want) - 1 + 2 * 24);
	cr_assert_eq(ld_le32(r + 8), 0);
	cr_assert_eq(ld_le32(r + 12),
		     crc32c(crc32c(crc32c(0, t_buf, 12), r, 12), r + 16, ld_le32(r + 4)));
	cr_assert_eq(memcmp(r + 16, want, sizeof(want) - 1), 0);
	/* First CPUID entry, leaf 0: eax 0xd, ebx "Auth". */
	cr_assert_eq(memcmp(r + 16 + sizeof(want) - 1, "\x00\x00\x00\x00\x00\x00\x00\x00"
			    "\x0d\x00\x00\x00" "Auth", 16), 0);
	cr_assert_eq(e.len, MIG_HDR_LEN + MIG_REC_HDR_LEN + sizeof(want) - 1 + 2 * 24);
}

/* Chain the CRCs of b[0..end) by the rule in stream.h, not with mig_reseal. */
static void t_chain_by_hand(uint8_t *b, const uint8_t *end)
{
	uint32_t chain = crc32c(0, b, 12);

	st_le32(b + 12, chain);
	for (uint8_t *h = b + MIG_HDR_LEN; h < end; h += 16 + ld_le32(h + 4)) {
		chain = crc32c(crc32c(chain, h, 12), h + 16, ld_le32(h + 4));
		st_le32(h + 12, chain);
	}
}

/*
 * A stream written by hand from the format in stream.h decodes: a Linux
 * guest of 1 page with an initrd and two device words.
 */
static size_t t_hand_stream(uint8_t *b, uint16_t version)
{
	uint8_t *p = b + MIG_HDR_LEN, *m;

	memset(b, 0, 2048);
	memcpy(b, "TERN-MIG", 8);
	st_le16(b + 8, version);
	/* CONFIG: 1 page, 1 vCPU, 2 GHz, Linux, name "a", initrd "i",
	 * words "disk=d" and "nic=auto": 40 + 2 + 2 + 6 + 2 + 8 = 60 bytes. */
	memcpy(p, "\x01\x00\x00\x00\x3c\x00\x00\x00\x00\x00\x00\x00", 12);
	memcpy(p + 16, "\x00\x10\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00"
		       "\x80\x84\x1e\x00\x01\x00\x01\x00\x00\x00\x01\x00\x00\x00"
		       "\x00\x00\x02\x00\x00\x00", 32);
	memcpy(p + 16 + 40, "ai\x06\x00" "disk=d" "\x08\x00" "nic=auto", 20);
	p += 16 + 60;
	/* ROUND 0 of 1 page. */
	memcpy(p, "\x02\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00", 12);
	p[16 + 8] = 1;
	p += 16 + 16;
	/* RAM: one ZERO entry for page 0. */
	memcpy(p, "\x03\x00\x00\x00\x18\x00\x00\x00\x00\x00\x00\x00", 12);
	p[16] = 1;
	p[16 + 8 + 8] = MIG_PAGE_ZERO;
	p += 16 + 24;
	/* VCPU 0: rip 0x1122334455667788 at 136, gdtr limit at 400. */
	memcpy(p, "\x04\x00\x00\x00\xb8\x01\x00\x00\x00\x00\x00\x00", 12);
	m = p + 16;
	memcpy(m + 136, "\x88\x77\x66\x55\x44\x33\x22\x11", 8);
	memcpy(m + 400, "\xff\xff\x00\x00", 4);
	p += 16 + MIG_VCPU_FIXED;
	/* END: 1 page, 1 round, 1 vCPU, 0 devices, bytes before END. */
	memcpy(p, "\x06\x00\x00\x00\x20\x00\x00\x00\x00\x00\x00\x00", 12);
	m = p + 16;
	m[0] = 1;
	m[8] = 1;
	m[12] = 1;
	st_le32(m + 24, (uint32_t)(p - b));
	p += 16 + 32;
	t_chain_by_hand(b, p);
	return (size_t)(p - b);
}

Test(migstream, hand_written_stream)
{
	static uint8_t b[2048];
	size_t n = t_hand_stream(b, 2);

	cr_assert_eq(t_decode(b, n), 0, "%s", t_dec->reason);
	cr_assert_eq(t_ctx->vcpu[0].rip, 0x1122334455667788ull);
	cr_assert_eq(t_ctx->vcpu[0].gdtr.limit, 0xffff);
	cr_assert_str_eq(t_ctx->cfg.name, "a");
	cr_assert_eq(t_ctx->cfg.kind, MIG_KIND_LINUX);
	cr_assert_eq(t_ctx->cfg.tsc_khz, 2000000);
	cr_assert_str_eq(t_ctx->cfg.kernel_path, "");
	cr_assert_str_eq(t_ctx->cfg.initrd_path, "i");
	cr_assert_eq(t_ctx->cfg.ndevspecs, 2);
	cr_assert_str_eq(t_ctx->cfg.devspecs[0], "disk=d");
	cr_assert_str_eq(t_ctx->cfg.devspecs[1], "nic=auto");
	cr_assert_eq(t_ctx->cfg.ncpuid, 0);
	cr_assert_eq(t_ctx->npagecalls, 1);
}

/* The same stream as version 1, 0 or 3: refused before any record. */
Test(migstream, other_versions_refused)
{
	static uint8_t b[2048];
	static const uint16_t versions[] = { 1, 0, 3, 0xffff };

	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		size_t n = t_hand_stream(b, versions[i]);
		char want[80];

		snprintf(want, sizeof(want), "stream header: version %u (this host reads "
			 "version 2 only)", versions[i]);
		cr_assert_eq(t_decode(b, n), -EPROTONOSUPPORT);
		cr_assert_str_eq(t_dec->reason, want);
		cr_assert_eq(t_ctx->nconfig, 0);
	}
}

/* ---- editing streams ---- */

/* Offset of the nth record (0 = CONFIG), or 0 if there is none. */
static size_t t_rec(const uint8_t *buf, size_t n, unsigned nth)
{
	size_t off = MIG_HDR_LEN;

	while (off <= n && n - off >= MIG_REC_HDR_LEN) {
		if (nth-- == 0)
			return off;
		off += MIG_REC_HDR_LEN + ld_le32(buf + off + 4) + ld_le32(buf + off + 8);
	}
	return 0;
}

/* Offset of the nth record of a type. */
static size_t t_rec_of(const uint8_t *buf, size_t n, unsigned type, unsigned nth)
{
	for (unsigned i = 0;; i++) {
		size_t off = t_rec(buf, n, i);

		if (!off)
			cr_assert_fail("no record %u of type %u", nth, type);
		if (buf[off] == type && nth-- == 0)
			return off;
	}
}

static void t_put(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Decode, expecting err and a reason containing what. */
static void t_refuse(uint8_t *buf, size_t n, int err, const char *what)
{
	int rc = t_decode(buf, n);

	cr_assert_eq(rc, err, "rc %d (%s), wanted %d (%s)", rc, t_dec->reason, err, what);
	cr_assert(strstr(t_dec->reason, what), "reason '%s' lacks '%s'", t_dec->reason, what);
	cr_assert(!mig_dec_complete(t_dec));
	cr_assert_eq(mig_dec_feed(t_dec, buf, 1), err, "not sticky");
}

/* Patch bytes at meta offset moff of the nth record of type, reseal, refuse. */
static void t_patch(const struct t_spec *s, unsigned type, unsigned nth, size_t moff,
		    uint64_t v, int bytes, int err, const char *what)
{
	size_t n = t_build(t_buf2, s), off = t_rec_of(t_buf2, n, type, nth);

	t_put(t_buf2 + off + MIG_REC_HDR_LEN + moff, v, bytes);
	mig_reseal(t_buf2, n, true);
	t_refuse(t_buf2, n, err, what);
}

/* Patch the record header instead (hoff 0..11). */
static void t_patch_hdr(unsigned type, size_t hoff, uint64_t v, int bytes, int err,
			const char *what)
{
	size_t n = t_build(t_buf2, &t_live), off = t_rec_of(t_buf2, n, type, 0);

	t_put(t_buf2 + off + hoff, v, bytes);
	mig_reseal(t_buf2, n, true);
	t_refuse(t_buf2, n, err, what);
}

/* A stream made of t_live's records in the order given (-1 ends). */
static void t_splice_as(const int *order, bool reseal, int err, const char *what)
{
	size_t n = t_build(t_buf, &t_live), len = MIG_HDR_LEN;

	memcpy(t_buf2, t_buf, MIG_HDR_LEN);
	for (const int *o = order; *o >= 0; o++) {
		size_t off = t_rec(t_buf, n, (unsigned)*o);
		size_t rl = MIG_REC_HDR_LEN + ld_le32(t_buf + off + 4) +
			    ld_le32(t_buf + off + 8);

		cr_assert(off);
		memcpy(t_buf2 + len, t_buf + off, rl);
		len += rl;
	}
	if (reseal)
		mig_reseal(t_buf2, len, false);
	t_refuse(t_buf2, len, err, what);
}

static void t_splice(const int *order, int err, const char *what)
{
	t_splice_as(order, true, err, what);
}

/* ---- limits ---- */

Test(migstream, stream_header_checks)
{
	size_t n = t_build(t_buf2, &t_live);

	t_buf2[12] ^= 1;
	t_refuse(t_buf2, n, -EBADMSG, "header checksum");
	t_buf2[0] = 'X';
	mig_reseal(t_buf2, n, false);
	t_refuse(t_buf2, n, -EBADMSG, "bad magic");
	t_buf2[0] = 'T';
	t_put(t_buf2 + 8, 1, 2);
	mig_reseal(t_buf2, n, false);
	t_refuse(t_buf2, n, -EPROTONOSUPPORT, "version 1 (this host reads version 2 only)");
	t_put(t_buf2 + 8, 0x20002, 4);
	mig_reseal(t_buf2, n, false);
	t_refuse(t_buf2, n, -EPROTONOSUPPORT, "unknown flags 0x2");
}

Test(migstream, record_header_checks)
{
	t_patch_hdr(MIG_REC_ROUND, 0, 9, 2, -EBADMSG, "unknown record type 9");
	t_patch_hdr(MIG_REC_ROUND, 0, 0, 2, -EBADMSG, "unknown record type 0");
	t_patch_hdr(MIG_REC_ROUND, 2, 1, 2, -EBADMSG, "reserved header bits");
	t_patch_hdr(MIG_REC_DEVICE, 4, MIG_META_MAX + 1, 4, -EMSGSIZE, "bytes of metadata");
	t_patch_hdr(MIG_REC_DEVICE, 4, 0xffffffff, 4, -EMSGSIZE, "bytes of metadata");
	t_patch_hdr(MIG_REC_RAM, 8, MIG_DATA_MAX + 1, 4, -EMSGSIZE, "bytes of page data");
	t_patch_hdr(MIG_REC_ROUND, 8, T_PG, 4, -EBADMSG, "page data in a ROUND record");
	t_patch_hdr(MIG_REC_END, 4, 0, 4, -EBADMSG, "0 bytes, not 32");
}

Test(migstream, record_crc_chain)
{
	size_t n = t_build(t_buf2, &t_live), off = t_rec_of(t_buf2, n, MIG_REC_VCPU, 0);

	t_buf2[off + 12] ^= 0x10;
	t_refuse(t_buf2, n, -EIO, "record 8 (VCPU)");
	/* Each record intact, but one lost, repeated or swapped: the chain
	 * breaks at the next record. */
	t_splice_as((const int []){ 0, 1, 2, 3, 4, 5, 6, 8, 7, 9, 10, 11, -1 }, false, -EIO,
		    "record 8 (VCPU) at byte");
	t_splice_as((const int []){ 0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, -1 }, false, -EIO,
		    "record 10 (DEVICE)");
	t_splice_as((const int []){ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 10, 11, -1 }, false, -EIO,
		    "record 11 (DEVICE)");
}

/*
 * t_config_for's CONFIG metadata: 0 mem_size, 8 nvcpus, 12 tsc_khz, 16 kind,
 * 18 name_len, 20 path_len, 22 initrd_len, 24 modules_len, 26 cmdline_len,
 * 28 ndevspecs, 30 ncpuid, 32 reserved; 40 "web1", 44 kernel path (22),
 * 66 initrd (15), 81 modules (9), 90 cmdline (22); 112 word 0 (u16 8,
 * "disk=web"), 122 word 1 (u16 21, "nic=..."), 145 two CPUID entries:
 * 193 bytes.
 */
Test(migstream, config_limits)
{
	const struct t_spec *s = &t_live;

	t_patch(s, MIG_REC_CONFIG, 0, 0, 0x10001, 8, -EBADMSG, "multiple of 4 KiB");
	t_patch(s, MIG_REC_CONFIG, 0, 0, 0, 8, -EBADMSG, "multiple of 4 KiB");
	t_patch(s, MIG_REC_CONFIG, 0, 0, (T_MAXPAGES + 1) * T_PG, 8, -ERANGE,
		"VM of 65 pages exceeds this host's limit of 64 pages");
	t_patch(s, MIG_REC_CONFIG, 0, 0, (MIG_PAGES_MAX + 1) * T_PG, 8, -E2BIG,
		"268435457 pages");
	t_patch(s, MIG_REC_CONFIG, 0, 8, 0, 4, -EBADMSG, "0 vCPUs");
	t_patch(s, MIG_REC_CONFIG, 0, 8, MIG_VCPUS_MAX + 1, 4, -E2BIG, "65 vCPUs");
	t_patch(s, MIG_REC_CONFIG, 0, 12, MIG_TSC_KHZ_MIN - 1, 4, -ERANGE,
		"TSC rate of 999 kHz (0 for unknown, or 1000 to 20000000)");
	t_patch(s, MIG_REC_CONFIG, 0, 12, MIG_TSC_KHZ_MAX + 1, 4, -ERANGE,
		"TSC rate of 20000001 kHz");
	t_patch(s, MIG_REC_CONFIG, 0, 12, 0xffffffff, 4, -ERANGE, "TSC rate of 4294967295 kHz");
	t_patch(s, MIG_REC_CONFIG, 0, 16, 3, 2, -ERANGE,
		"guest kind 3 (0 Multiboot, 1 Linux, 2 Linux PVH)");
	t_patch(s, MIG_REC_CONFIG, 0, 16, 0xffff, 2, -ERANGE, "guest kind 65535");
	t_patch(s, MIG_REC_CONFIG, 0, 16, MIG_KIND_MULTIBOOT, 2, -EBADMSG,
		"an initrd for a Multiboot guest");
	t_patch(s, MIG_REC_CONFIG, 0, 18, MIG_NAME_MAX + 1, 2, -E2BIG,
		"lengths 32/22/15/9/22/2/2 over the limits 31/255/255/255/1023/8/128 "
		"(name/path/initrd/modules/cmdline/words/CPUID)");
	t_patch(s, MIG_REC_CONFIG, 0, 20, MIG_PATH_MAX + 1, 2, -E2BIG, "over the limits");
	t_patch(s, MIG_REC_CONFIG, 0, 22, MIG_PATH_MAX + 1, 2, -E2BIG, "lengths 4/22/256/");
	t_patch(s, MIG_REC_CONFIG, 0, 24, MIG_PATH_MAX + 1, 2, -E2BIG, "lengths 4/22/15/256/");
	t_patch(s, MIG_REC_CONFIG, 0, 26, 0xffff, 2, -E2BIG, "over the limits");
	t_patch(s, MIG_REC_CONFIG, 0, 28, MIG_DEVSPECS_MAX + 1, 2, -E2BIG, "/22/9/2 over");
	t_patch(s, MIG_REC_CONFIG, 0, 30, MIG_CPUID_MAX + 1, 2, -E2BIG, "over the limits");
	t_patch(s, MIG_REC_CONFIG, 0, 32, 1, 1, -EBADMSG, "reserved field set");
	t_patch(s, MIG_REC_CONFIG, 0, 39, 0x80, 1, -EBADMSG, "reserved field set");
	/* Lengths that do not add up to the record.  A string length that is
	 * off moves where the words are read: one lands on text. */
	t_patch(s, MIG_REC_CONFIG, 0, 18, 3, 2, -E2BIG, "device word 0 of 2164 bytes");
	t_patch(s, MIG_REC_CONFIG, 0, 22, 16, 2, -E2BIG, "device word 0 of 25600 bytes");
	t_patch(s, MIG_REC_CONFIG, 0, 26, 1023, 2, -EBADMSG,
		"193 bytes where the lengths say at least 1165");
	t_patch(s, MIG_REC_CONFIG, 0, 28, 1, 2, -EBADMSG, "193 bytes where the lengths say 170");
	t_patch(s, MIG_REC_CONFIG, 0, 28, 3, 2, -EBADMSG, "where the lengths say at least 195");
	t_patch(s, MIG_REC_CONFIG, 0, 30, 1, 2, -EBADMSG, "193 bytes where the lengths say 169");
	t_patch(s, MIG_REC_CONFIG, 0, 30, 3, 2, -EBADMSG, "where the lengths say at least 196");
	t_patch(s, MIG_REC_CONFIG, 0, 112, MIG_DEVSPEC_MAX + 1, 2, -E2BIG,
		"device word 0 of 48 bytes (at most 47)");
	t_patch(s, MIG_REC_CONFIG, 0, 122, 0xffff, 2, -E2BIG, "device word 1 of 65535 bytes");
	t_patch(s, MIG_REC_CONFIG, 0, 122, 20, 2, -EBADMSG, "193 bytes where the lengths say 192");
	t_patch(s, MIG_REC_CONFIG, 0, 122, 47, 2, -EBADMSG, "where the lengths say at least 219");
	/* Bytes of the strings and words. */
	t_patch(s, MIG_REC_CONFIG, 0, 40 + 1, '/', 1, -EBADMSG, "VM name has byte 0x2f at 1");
	t_patch(s, MIG_REC_CONFIG, 0, 44 + 3, 0, 1, -EBADMSG, "kernel path has byte 0 at 3");
	t_patch(s, MIG_REC_CONFIG, 0, 66 + 5, 0x80, 1, -EBADMSG, "initrd path has byte 0x80 at 5");
	t_patch(s, MIG_REC_CONFIG, 0, 81 + 8, 0x7f, 1, -EBADMSG, "module list has byte 0x7f at 8");
	t_patch(s, MIG_REC_CONFIG, 0, 90, '\n', 1, -EBADMSG, "command line has byte 0xa");
	t_patch(s, MIG_REC_CONFIG, 0, 114 + 5, ' ', 1, -EBADMSG,
		"device word 0 has byte 0x20 at 5 (only printable ASCII, no spaces)");
	t_patch(s, MIG_REC_CONFIG, 0, 114 + 4, ':', 1, -EBADMSG,
		"device word 0 'disk:web' is not key=value (key a-z)");
	t_patch(s, MIG_REC_CONFIG, 0, 124, 'N', 1, -EBADMSG,
		"device word 1 'Nic=02:00:00:00:00:01' is not key=value");
	t_patch(s, MIG_REC_CONFIG, 0, 124 + 20, 0, 1, -EBADMSG, "device word 1 has byte 0 at 20");
}

/*
 * A CONFIG record written from stream.h without the encoder's checks, in
 * place of t_live's own, so each field rule reaches the decoder.
 */
static size_t t_config_bytes(uint8_t *m, const struct mig_config *c)
{
	const char *str[] = { c->name, c->kernel_path, c->initrd_path, c->modules, c->cmdline };
	uint8_t *p = m + 40;

	memset(m, 0, 40);
	t_put(m, c->mem_size, 8);
	t_put(m + 8, c->nvcpus, 4);
	t_put(m + 12, c->tsc_khz, 4);
	t_put(m + 16, c->kind, 2);
	for (int i = 0; i < 5; i++) {
		size_t n = strlen(str[i]);

		t_put(m + 18 + 2 * i, n, 2);
		memcpy(p, str[i], n);
		p += n;
	}
	t_put(m + 28, c->ndevspecs, 2);
	t_put(m + 30, c->ncpuid, 2);
	for (uint32_t i = 0; i < c->ndevspecs; i++) {
		size_t n = strnlen(c->devspecs[i], MIG_DEVSPEC_MAX + 1);

		t_put(p, n, 2);
		memcpy(p + 2, c->devspecs[i], n);
		p += 2 + n;
	}
	for (uint32_t i = 0; i < c->ncpuid; i++, p += 24) {
		t_put(p, c->cpuid[i].leaf, 4);
		t_put(p + 4, c->cpuid[i].subleaf, 4);
		t_put(p + 8, c->cpuid[i].eax, 4);
		t_put(p + 12, c->cpuid[i].ebx, 4);
		t_put(p + 16, c->cpuid[i].ecx, 4);
		t_put(p + 20, c->cpuid[i].edx, 4);
	}
	return (size_t)(p - m);
}

/* Decode t_live with c's CONFIG written by hand; returns the result. */
static int t_decode_config(const struct mig_config *c)
{
	size_t n = t_build(t_buf, &t_live), cfg = t_rec(t_buf, n, 0), rest = t_rec(t_buf, n, 1);
	size_t meta = t_config_bytes(t_buf2 + MIG_HDR_LEN + MIG_REC_HDR_LEN, c);

	memcpy(t_buf2, t_buf, MIG_HDR_LEN + 12);
	cr_assert_eq(cfg, MIG_HDR_LEN);
	t_put(t_buf2 + MIG_HDR_LEN + 4, meta, 4);
	memcpy(t_buf2 + MIG_HDR_LEN + MIG_REC_HDR_LEN + meta, t_buf + rest, n - rest);
	n = MIG_HDR_LEN + MIG_REC_HDR_LEN + meta + n - rest;
	mig_reseal(t_buf2, n, false);
	return t_decode(t_buf2, n);
}

/* Each CONFIG rule, refused the same way by the encoder and the decoder. */
struct t_cfg_case {
	void (*edit)(struct mig_config *c);
	int err;
	const char *why;
};

static void t_e_kind(struct mig_config *c) { c->kind = 3; }
static void t_e_kind_mb(struct mig_config *c) { c->kind = MIG_KIND_MULTIBOOT; }
static void t_e_tsc_low(struct mig_config *c) { c->tsc_khz = 1; }
static void t_e_tsc_high(struct mig_config *c) { c->tsc_khz = MIG_TSC_KHZ_MAX + 1; }
static void t_e_initrd(struct mig_config *c) { strcpy(c->initrd_path, "a\tb"); }
static void t_e_modules(struct mig_config *c) { strcpy(c->modules, "x,\x7f"); }
static void t_e_empty(struct mig_config *c) { c->devspecs[1][0] = '\0'; }
static void t_e_space(struct mig_config *c) { strcpy(c->devspecs[0], "disk=a b"); }
static void t_e_upper(struct mig_config *c) { strcpy(c->devspecs[0], "Disk=web"); }
static void t_e_noeq(struct mig_config *c) { strcpy(c->devspecs[0], "disk"); }
static void t_e_nokey(struct mig_config *c) { strcpy(c->devspecs[0], "=web"); }
static void t_e_noval(struct mig_config *c) { strcpy(c->devspecs[0], "disk="); }
static void t_e_digit(struct mig_config *c) { strcpy(c->devspecs[0], "disk2=web"); }
static void t_e_long(struct mig_config *c) { memset(c->devspecs[0], 'x', MIG_DEVSPEC_MAX + 1); }

static const struct t_cfg_case t_cfg_cases[] = {
	{ t_e_kind, -ERANGE, "guest kind 3 (0 Multiboot, 1 Linux, 2 Linux PVH)" },
	{ t_e_kind_mb, -EBADMSG, "an initrd for a Multiboot guest" },
	{ t_e_tsc_low, -ERANGE, "TSC rate of 1 kHz (0 for unknown, or 1000 to 20000000)" },
	{ t_e_tsc_high, -ERANGE, "TSC rate of 20000001 kHz (0 for unknown, or 1000 to 20000000)" },
	{ t_e_initrd, -EBADMSG, "initrd path has byte 0x9 at 1 (only printable ASCII)" },
	{ t_e_modules, -EBADMSG, "module list has byte 0x7f at 2 (only printable ASCII)" },
	{ t_e_empty, -EBADMSG, "device word 1 is empty" },
	{ t_e_space, -EBADMSG, "device word 0 has byte 0x20 at 6 (only printable ASCII, no spaces)" },
	{ t_e_upper, -EBADMSG, "device word 0 'Disk=web' is not key=value (key a-z)" },
	{ t_e_noeq, -EBADMSG, "device word 0 'disk' is not key=value (key a-z)" },
	{ t_e_nokey, -EBADMSG, "device word 0 '=web' is not key=value (key a-z)" },
	{ t_e_noval, -EBADMSG, "device word 0 'disk=' is not key=value (key a-z)" },
	{ t_e_digit, -EBADMSG, "device word 0 'disk2=web' is not key=value (key a-z)" },
	{ t_e_long, -E2BIG, "device word 0 of 48 bytes (at most 47)" },
};

Test(migstream, config_rules_both_ends)
{
	static struct mig_enc e;
	char want[MIG_REASON_MAX + 40];

	for (size_t i = 0; i < sizeof(t_cfg_cases) / sizeof(t_cfg_cases[0]); i++) {
		const struct t_cfg_case *k = &t_cfg_cases[i];
		struct mig_config c;

		t_config_for(&c, 16, 2);
		k->edit(&c);
		cr_assert_eq(mig_enc_init(&e, t_buf, T_BUF, MIG_F_LIVE), 0);
		cr_assert_eq(mig_enc_config(&e, &c), k->err, "case %zu: %s", i, e.reason);
		cr_assert_str_eq(e.reason, k->why, "case %zu", i);
		cr_assert_eq(e.len, MIG_HDR_LEN, "nothing written");
		cr_assert_eq(t_decode_config(&c), k->err, "case %zu: %s", i, t_dec->reason);
		snprintf(want, sizeof(want), "record 1 (CONFIG) at byte 16: %s", k->why);
		cr_assert_str_eq(t_dec->reason, want, "case %zu", i);
		cr_assert_eq(t_ctx->nconfig, 0);
	}
}

/* The same word twice is two devices ("nic=auto nic=auto"): it passes. */
Test(migstream, config_repeated_word)
{
	static struct mig_enc e;
	struct mig_config c;

	t_config_for(&c, 16, 2);
	c.ndevspecs = 3;
	strcpy(c.devspecs[0], "nic=auto");
	strcpy(c.devspecs[1], "nic=auto");
	strcpy(c.devspecs[2], "disk=web");
	cr_assert_eq(mig_enc_init(&e, t_buf, T_BUF, MIG_F_LIVE), 0);
	cr_assert_eq(mig_enc_config(&e, &c), 0, "%s", e.reason);
	/* The spliced CONFIG changes the stream's length, so only END's byte
	 * count disagrees: CONFIG itself was taken. */
	t_decode_config(&c);
	cr_assert_eq(t_ctx->nconfig, 1, "%s", t_dec->reason);
	cr_assert(strstr(t_dec->reason, "(END)"), "%s", t_dec->reason);
}

/* The counts over their limits: the encoder names the field. */
Test(migstream, config_counts_encoder)
{
	static struct mig_enc e;
	struct mig_config c;

	t_config_for(&c, 16, 2);
	cr_assert_eq(mig_enc_init(&e, t_buf, T_BUF, 0), 0);
	c.ndevspecs = MIG_DEVSPECS_MAX + 1;
	cr_assert_eq(mig_enc_config(&e, &c), -E2BIG);
	cr_assert_str_eq(e.reason, "9 device words (at most 8)");
	c.ndevspecs = 2;
	memset(c.initrd_path, 'i', sizeof(c.initrd_path));
	cr_assert_eq(mig_enc_config(&e, &c), -E2BIG);
	cr_assert_str_eq(e.reason, "initrd path of 256 bytes (at most 255)");
	strcpy(c.initrd_path, "");
	memset(c.modules, 'm', sizeof(c.modules));
	cr_assert_eq(mig_enc_config(&e, &c), -E2BIG);
	cr_assert_str_eq(e.reason, "module list of 256 bytes (at most 255)");
	strcpy(c.modules, "");
	c.kind = MIG_KIND_MULTIBOOT;	/* no initrd now: fine */
	c.tsc_khz = 0;
	c.ndevspecs = 0;
	cr_assert_eq(mig_enc_config(&e, &c), 0, "%s", e.reason);
}

/* Every new field at its limit, through the encoder and back. */
Test(migstream, config_roundtrip_at_limits)
{
	static struct mig_enc e;
	static const uint32_t tsc[] = { MIG_TSC_KHZ_MAX, MIG_TSC_KHZ_MIN, 0 };
	static struct mig_config c;

	for (int t = 0; t < 3; t++) {
		memset(&c, 0, sizeof(c));
		c.mem_size = T_MAXPAGES * T_PG;
		c.nvcpus = MIG_VCPUS_MAX;
		c.kind = t == 2 ? MIG_KIND_MULTIBOOT : MIG_KIND_LINUX_PVH;
		c.tsc_khz = tsc[t];
		memset(c.name, 'n', MIG_NAME_MAX);
		memset(c.kernel_path, '/', MIG_PATH_MAX);
		if (t != 2)
			memset(c.initrd_path, '~', MIG_PATH_MAX);
		memset(c.modules, ',', MIG_PATH_MAX);
		for (int i = 0; i < MIG_CMDLINE_MAX; i++)
			c.cmdline[i] = (char)(0x20 + i % 95);
		c.ndevspecs = MIG_DEVSPECS_MAX;
		for (int i = 0; i < MIG_DEVSPECS_MAX; i++) {
			/* "z=" then 45 bytes of 0x21..0x7e, each word its own. */
			strcpy(c.devspecs[i], "abcdefghijklmnopqrstuvwxyz" + i);
			c.devspecs[i][strlen(c.devspecs[i])] = '=';
			for (size_t j = strlen(c.devspecs[i]); j < MIG_DEVSPEC_MAX; j++)
				c.devspecs[i][j] = (char)(0x21 + (j * 7 + (size_t)i) % 94);
			cr_assert_eq(strlen(c.devspecs[i]), MIG_DEVSPEC_MAX);
		}
		c.ncpuid = MIG_CPUID_MAX;
		for (uint32_t i = 0; i < MIG_CPUID_MAX; i++)
			c.cpuid[i] = (struct mig_cpuid){ i, ~i, i * 3, i * 5, i * 7, 0xffffffff };
		cr_assert_eq(mig_enc_init(&e, t_buf, T_BUF, 0), 0);
		cr_assert_eq(mig_enc_config(&e, &c), 0, "%s", e.reason);
		cr_assert_eq(ld_le32(t_buf + MIG_HDR_LEN + 4),
			     40 + MIG_NAME_MAX + (t == 2 ? 2 : 3) * MIG_PATH_MAX + MIG_CMDLINE_MAX +
			     MIG_DEVSPECS_MAX * (2 + MIG_DEVSPEC_MAX) + 24 * MIG_CPUID_MAX);
		t_reset();
		cr_assert_eq(mig_dec_feed(t_dec, t_buf, e.len), 0, "%s", t_dec->reason);
		cr_assert_eq(t_ctx->nconfig, 1);
		cr_assert_eq(memcmp(&t_ctx->cfg, &c, sizeof(c)), 0, "tsc %u", tsc[t]);
		cr_assert_eq(t_ctx->cfg.devspecs[7][MIG_DEVSPEC_MAX], '\0');
		cr_assert_eq(t_ctx->cfg.tsc_khz, tsc[t]);
	}
}

Test(migstream, round_limits)
{
	t_patch(&t_live, MIG_REC_ROUND, 1, 4, 4, 4, -EBADMSG, "unknown flags 0x4");
	t_patch(&t_live, MIG_REC_ROUND, 0, 8, 17, 8, -ERANGE, "round 0 of 17 pages, but the VM has 16");
	t_patch(&t_live, MIG_REC_ROUND, 1, 0, 5, 4, -EPROTO, "round 5 where round 1 was due");
	t_patch(&t_live, MIG_REC_ROUND, 0, 0, 1, 4, -EPROTO, "round 1 where round 0 was due");
	t_patch(&t_live, MIG_REC_ROUND, 1, 4, MIG_ROUND_FINAL, 4, -EPROTO,
		"round 2 after the final round");
}

Test(migstream, ram_limits)
{
	const struct t_spec *s = &t_quick;	/* batches of 5 */

	t_patch(s, MIG_REC_RAM, 1, 0, 0, 4, -EBADMSG, "0 pages");
	t_patch(s, MIG_REC_RAM, 1, 0, MIG_BATCH_MAX + 1, 4, -E2BIG, "65 pages (1 to 64)");
	t_patch(s, MIG_REC_RAM, 1, 0, 4, 4, -EBADMSG, "bytes for 4 entries");
	t_patch(s, MIG_REC_RAM, 1, 4, 1, 4, -EBADMSG, "reserved");
	t_patch(s, MIG_REC_RAM, 0, 8 + 8, 2, 1, -EBADMSG, "entry 0: kind 2");
	t_patch(s, MIG_REC_RAM, 0, 8 + 9, 1, 1, -EBADMSG, "reserved 0x1");
	/* Entry 2 of the first batch is page 2, a ZERO page: give it a CRC. */
	t_patch(s, MIG_REC_RAM, 0, 8 + 32 + 12, 0x1234, 4, -EBADMSG, "crc 0x1234");
	/* Entry 0 turned ZERO: its data is left over. */
	t_patch(s, MIG_REC_RAM, 0, 8 + 8, MIG_PAGE_ZERO, 8, -EBADMSG, "for 3 data pages");
	t_patch(s, MIG_REC_RAM, 1, 8 + 16, 16, 8, -ERANGE, "page 16 beyond the 16 pages of the VM");
	t_patch(s, MIG_REC_RAM, 1, 8 + 16, ~0ull, 8, -ERANGE,
		"page 18446744073709551615 beyond the 16 pages");
	/* Quick streams send a page once: entry 1 of batch 1 made page 5. */
	t_patch(s, MIG_REC_RAM, 1, 8 + 16, 5, 8, -EPROTO, "page 5 sent twice in a quick migration");
}

/* The message the operator sees for a page far beyond a bigger VM. */
Test(migstream, page_index_message)
{
	static uint64_t seen[16384 / 64];
	static struct mig_enc e;
	static uint8_t pg[T_PG];
	struct mig_page p = { 5, pg };
	struct mig_config c;
	size_t off;

	memset(pg, 1, sizeof(pg));
	t_config_for(&c, 16384, 1);
	cr_assert_eq(mig_enc_init(&e, t_buf2, T_BUF, 0), 0);
	cr_assert_eq(mig_enc_config(&e, &c), 0);
	cr_assert_eq(mig_enc_round(&e, 0, 0, 16384), 0);
	off = e.len;
	cr_assert_eq(mig_enc_ram(&e, &p, 1), 0);
	t_put(t_buf2 + off + MIG_REC_HDR_LEN + 8, 123456, 8);
	mig_reseal(t_buf2, e.len, false);
	mig_dec_init(t_dec, NULL, NULL, seen, 16384);
	cr_assert_eq(mig_dec_feed(t_dec, t_buf2, e.len), -ERANGE);
	cr_assert_str_eq(t_dec->reason, "record 3 (RAM) at byte 257: page 123456 "
			 "beyond the 16384 pages of the VM");
}

Test(migstream, page_crc)
{
	size_t n = t_build(t_buf2, &t_live), off = t_rec_of(t_buf2, n, MIG_REC_RAM, 1);

	/* The last byte of the record's last page. */
	off += MIG_REC_HDR_LEN + ld_le32(t_buf2 + off + 4) + ld_le32(t_buf2 + off + 8) - 1;
	t_buf2[off] ^= 0x40;
	t_refuse(t_buf2, n, -EILSEQ, "page 15: data CRC");
	cr_assert_eq(t_ctx->npagecalls, 16 + 7, "pages before it were delivered");
}

Test(migstream, vcpu_limits)
{
	const struct t_spec *s = &t_live;

	t_patch(s, MIG_REC_VCPU, 0, 0, 2, 4, -ERANGE, "vcpu 2 beyond the 2 vCPUs of the VM");
	t_patch(s, MIG_REC_VCPU, 0, 4, 4, 4, -EBADMSG, "unknown flags 0x4");
	t_patch(s, MIG_REC_VCPU, 0, 424, 4, 1, -EBADMSG, "CPL 4");
	t_patch(s, MIG_REC_VCPU, 0, 425, 0, 1, -EBADMSG, "malformed pending event");
	t_patch(s, MIG_REC_VCPU, 0, 425, 5, 1, -EBADMSG, "malformed pending event");
	t_patch(s, MIG_REC_VCPU, 0, 427, 8, 1, -EBADMSG, "malformed pending event");
	t_patch(s, MIG_REC_VCPU, 0, 400, 0x10000, 4, -EBADMSG, "limit above 0xffff");
	t_patch(s, MIG_REC_VCPU, 0, 404, 1, 4, -EBADMSG, "reserved");
	t_patch(s, MIG_REC_VCPU, 0, 440 + 4, 1, 4, -EBADMSG, "reserved");
	t_patch(s, MIG_REC_VCPU, 0, 432, MIG_MSRS_MAX + 1, 4, -E2BIG, "257 MSRs");
	t_patch(s, MIG_REC_VCPU, 0, 436, MIG_XSAVE_MAX + 1, 4, -E2BIG, "16385 bytes of XSAVE");
	t_patch(s, MIG_REC_VCPU, 0, 432, 4, 4, -EBADMSG, "where the lengths say");
	t_patch(s, MIG_REC_VCPU, 0, 436, 0, 4, -EBADMSG, "where the lengths say");
}

Test(migstream, device_limits)
{
	const struct t_spec *s = &t_live;

	t_patch(s, MIG_REC_DEVICE, 0, 0, MIG_NAME_MAX + 1, 2, -E2BIG, "name of 32 bytes");
	t_patch(s, MIG_REC_DEVICE, 0, 8, MIG_BLOB_MAX + 1, 4, -E2BIG, "state of 65537");
	t_patch(s, MIG_REC_DEVICE, 0, 0, 0, 2, -EBADMSG, "where the lengths say");
	t_patch(s, MIG_REC_DEVICE, 0, 2, 1, 2, -EBADMSG, "reserved");
	t_patch(s, MIG_REC_DEVICE, 0, 12, ' ', 1, -EBADMSG, "device name has byte 0x20 at 0");
}

Test(migstream, end_totals)
{
	const struct t_spec *s = &t_live;

	t_patch(s, MIG_REC_END, 0, 0, 25, 8, -EPROTO, "END counts 25 pages");
	t_patch(s, MIG_REC_END, 0, 8, 2, 4, -EPROTO, "END counts");
	t_patch(s, MIG_REC_END, 0, 12, 3, 4, -EPROTO, "END counts");
	t_patch(s, MIG_REC_END, 0, 16, 1, 4, -EPROTO, "END counts");
	t_patch(s, MIG_REC_END, 0, 20, 1, 4, -EBADMSG, "reserved");
	t_patch(s, MIG_REC_END, 0, 24, 1, 8, -EPROTO, "1 bytes; the stream had");
}

/* ---- order ---- */

/* t_live's records: 0 CONFIG, 1 ROUND 0, 2 RAM, 3 ROUND 1, 4 RAM,
 * 5 ROUND 2, 6 RAM, 7 VCPU 1, 8 VCPU 0, 9-10 DEVICE, 11 END. */
Test(migstream, order_rules)
{
	t_splice((const int []){ 1, -1 }, -EPROTO, "ROUND before CONFIG");
	t_splice((const int []){ 0, 0, -1 }, -EPROTO, "CONFIG in the RAM section");
	t_splice((const int []){ 0, 2, -1 }, -EPROTO, "RAM before the first ROUND");
	t_splice((const int []){ 0, 7, -1 }, -EPROTO, "VCPU before any RAM");
	t_splice((const int []){ 0, 1, 2, 4, -1 }, -EPROTO, "round 0 announced 16 pages and got more");
	t_splice((const int []){ 0, 1, 2, 5, -1 }, -EPROTO, "round 2 where round 1 was due");
	t_splice((const int []){ 0, 1, 2, 3, 4, 5, 7, -1 }, -EPROTO,
		 "round 2 announced 2 pages but carried 0");
	t_splice((const int []){ 0, 1, 2, 3, 4, 5, 6, 7, 6, -1 }, -EPROTO, "RAM after VCPU");
	t_splice((const int []){ 0, 1, 2, 3, 4, 5, 6, 7, 3, -1 }, -EPROTO, "ROUND after VCPU");
	t_splice((const int []){ 0, 1, 2, 3, 4, 5, 6, 7, 7, -1 }, -EPROTO, "vcpu 1 sent twice");
	t_splice((const int []){ 0, 1, 2, 3, 4, 5, 6, 7, 9, -1 }, -EPROTO, "DEVICE before vcpu 0");
	t_splice((const int []){ 0, 1, 2, 3, 4, 5, 6, 9, -1 }, -EPROTO, "DEVICE before the vCPUs");
	t_splice((const int []){ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 8, -1 }, -EPROTO, "VCPU after DEVICE");
	t_splice((const int []){ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, -1 }, -EPROTO,
		 "device dev0.uart sent twice");
	t_splice((const int []){ 0, 1, 2, 3, 4, 5, 6, 11, -1 }, -ENOENT, "vcpu 0 of 2 never sent");
	t_splice((const int []){ 0, 1, 2, 3, 4, 5, 6, 7, 11, -1 }, -ENOENT, "vcpu 0 of 2 never sent");
	t_splice((const int []){ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, -1 }, -EPROTO,
		 "more bytes after END");
}

Test(migstream, quick_has_one_round)
{
	size_t n = t_build(t_buf2, &t_live);

	t_put(t_buf2 + 10, 0, 2);
	mig_reseal(t_buf2, n, false);
	t_refuse(t_buf2, n, -EPROTO, "a second round in a quick migration");
}

Test(migstream, end_needs_every_page)
{
	static struct mig_enc e;
	static uint8_t pg[T_PG];
	struct mig_page p[16];
	struct mig_config c;
	struct mig_vcpu v;
	unsigned k = 0;

	memset(pg, 3, sizeof(pg));
	for (uint64_t i = 0; i < 16; i++)
		if (i != 7 && i != 12)
			p[k++] = (struct mig_page){ i, pg };
	t_config_for(&c, 16, 1);
	t_vcpu_for(&v, 0);
	cr_assert_eq(mig_enc_init(&e, t_buf2, T_BUF, MIG_F_LIVE), 0);
	cr_assert_eq(mig_enc_config(&e, &c), 0);
	cr_assert_eq(mig_enc_round(&e, 0, 0, k), 0);
	cr_assert_eq(mig_enc_ram(&e, p, k), 0);
	cr_assert_eq(mig_enc_vcpu(&e, &v), 0);
	cr_assert_eq(mig_enc_end(&e), 0);
	t_refuse(t_buf2, e.len, -ENOENT, "2 of the 16 pages never arrived (the first is page 7)");
	cr_assert_eq(t_ctx->nend, 0);
}

Test(migstream, receiver_refuses)
{
	size_t n = t_build(t_buf2, &t_live);

	t_reset();
	t_ctx->refuse = MIG_REC_CONFIG;
	cr_assert_eq(mig_dec_feed(t_dec, t_buf2, n), -ENOMEM);
	cr_assert(strstr(t_dec->reason, "record 1 (CONFIG) at byte 16: refused by the receiver"),
		  "%s", t_dec->reason);
	t_reset();
	t_ctx->refuse = MIG_REC_DEVICE;
	t_ctx->refuse_reason = true;
	cr_assert_eq(mig_dec_feed(t_dec, t_buf2, n), -ENOSPC);
	cr_assert(strstr(t_dec->reason, "(DEVICE) at byte"), "%s", t_dec->reason);
	cr_assert(strstr(t_dec->reason, ": no room for DEVICE here"), "%s", t_dec->reason);
	cr_assert_eq(mig_dec_finish(t_dec), -ENOSPC);
	t_reset();
	t_ctx->refuse = MIG_REC_RAM;
	cr_assert_eq(mig_dec_feed(t_dec, t_buf2, n), -ENOMEM);
	cr_assert_eq(t_ctx->npagecalls, 1);
}

/* ---- the encoder ---- */

Test(migstream, encoder_refuses_what_the_decoder_would)
{
	static struct mig_enc e;
	static uint8_t pg[T_PG];
	struct mig_page p[MIG_BATCH_MAX + 1] = { { 0, pg } };
	struct mig_config c;
	struct mig_vcpu v;
	struct mig_device d = { "bad name", 1, 0, NULL };

	t_config_for(&c, 4, 1);
	t_vcpu_for(&v, 0);
	cr_assert_eq(mig_enc_init(&e, t_buf2, T_BUF, 4), -EPROTONOSUPPORT);
	cr_assert_eq(mig_enc_init(&e, t_buf2, T_BUF, MIG_F_LIVE), 0);
	cr_assert_eq(mig_enc_round(&e, 0, 0, 1), -EPROTO);
	strcpy(c.name, "a b");
	cr_assert_eq(mig_enc_config(&e, &c), -EBADMSG);
	memset(c.name, 'x', sizeof(c.name));
	cr_assert_eq(mig_enc_config(&e, &c), -E2BIG, "%s", e.reason);
	strcpy(c.name, "ok");
	cr_assert_eq(mig_enc_config(&e, &c), 0);
	cr_assert_eq(mig_enc_config(&e, &c), -EPROTO);
	cr_assert_eq(mig_enc_ram(&e, p, 1), -EPROTO, "%s", e.reason);
	cr_assert_eq(mig_enc_vcpu(&e, &v), -EPROTO, "%s", e.reason);
	cr_assert_eq(mig_enc_round(&e, 1, 0, 1), -EPROTO);
	cr_assert_eq(mig_enc_round(&e, 0, 0, 5), -ERANGE);
	cr_assert_eq(mig_enc_round(&e, 0, 2, 1), -EBADMSG);
	cr_assert_eq(mig_enc_round(&e, 0, 0, 1), 0);
	cr_assert_eq(mig_enc_ram(&e, p, 0), -EINVAL);
	cr_assert_eq(mig_enc_ram(&e, p, MIG_BATCH_MAX + 1), -E2BIG);
	p[0].index = 4;
	cr_assert_eq(mig_enc_ram(&e, p, 1), -ERANGE);
	cr_assert_str_eq(e.reason, "page 4 beyond the 4 pages of the VM");
	p[0].index = 0;
	cr_assert_eq(mig_enc_end(&e), -EPROTO, "%s", e.reason);	/* round short */
	cr_assert_eq(mig_enc_ram(&e, p, 1), 0);
	cr_assert_eq(mig_enc_ram(&e, p, 1), -EPROTO);	/* round full */
	cr_assert_eq(mig_enc_end(&e), -ENOENT);
	cr_assert_eq(mig_enc_device(&e, &d), -EBADMSG);	/* fields before order */
	strcpy(d.name, "early");
	cr_assert_eq(mig_enc_device(&e, &d), -EPROTO);
	strcpy(d.name, "bad name");
	v.cpl = 9;
	cr_assert_eq(mig_enc_vcpu(&e, &v), -EBADMSG);
	v.cpl = 0;
	v.index = 1;
	cr_assert_eq(mig_enc_vcpu(&e, &v), -ERANGE);
	v.index = 0;
	v.nmsrs = MIG_MSRS_MAX + 1;
	cr_assert_eq(mig_enc_vcpu(&e, &v), -E2BIG);
	v.nmsrs = 0;
	v.xsave = NULL;
	cr_assert_eq(mig_enc_vcpu(&e, &v), -EINVAL);
	v.xsave = t_xsave_src;
	cr_assert_eq(mig_enc_vcpu(&e, &v), 0);
	cr_assert_eq(mig_enc_device(&e, &d), -EBADMSG);
	strcpy(d.name, "ok");
	d.blob_len = MIG_BLOB_MAX + 1;
	cr_assert_eq(mig_enc_device(&e, &d), -E2BIG);
	d.blob_len = 1;
	cr_assert_eq(mig_enc_device(&e, &d), -EINVAL);
	d.blob_len = 0;
	cr_assert_eq(mig_enc_device(&e, &d), 0);
	cr_assert_eq(mig_enc_device(&e, &d), -EPROTO);
	cr_assert_eq(mig_enc_end(&e), 0);
	cr_assert_eq(mig_enc_end(&e), -EPROTO);
	cr_assert_eq(t_decode(t_buf2, e.len), -ENOENT, "%s", t_dec->reason);	/* 3 pages never sent */
}

/* A small buffer: -ENOSPC leaves everything as it was; send, rewind, retry. */
Test(migstream, encoder_buffer_full)
{
	static struct mig_enc e;
	static uint8_t small[3 * T_PG], pages[8][T_PG];
	struct mig_page p[8];
	struct mig_config c;
	struct mig_vcpu v;
	size_t out = 0, len;
	uint64_t bytes;
	int rc;

	t_config_for(&c, 8, 1);
	t_vcpu_for(&v, 0);
	cr_assert_eq(mig_enc_init(&e, small, 10, 0), -ENOSPC);
	cr_assert_eq(mig_enc_init(&e, small, sizeof(small), 0), 0);
	cr_assert_eq(mig_enc_config(&e, &c), 0);
	cr_assert_eq(mig_enc_round(&e, 0, 0, 8), 0);
	for (int i = 0; i < 8; i++) {
		t_fill(pages[i], (uint64_t)i, 0);
		p[i] = (struct mig_page){ (uint64_t)i, pages[i] };
	}
	for (int i = 0; i < 8; i += 2) {
		len = e.len;
		bytes = e.bytes;
		rc = mig_enc_ram(&e, p + i, 2);
		if (rc == -ENOSPC) {
			cr_assert(e.len == len && e.bytes == bytes);
			memcpy(t_buf2 + out, small, e.len);
			out += e.len;
			mig_enc_rewind(&e);
			rc = mig_enc_ram(&e, p + i, 2);
		}
		cr_assert_eq(rc, 0, "%s", e.reason);
	}
	cr_assert_eq(mig_enc_ram(&e, p, 8), -ENOSPC);	/* never fits */
	cr_assert_eq(mig_enc_vcpu(&e, &v), 0);
	cr_assert_eq(mig_enc_end(&e), 0);
	memcpy(t_buf2 + out, small, e.len);
	out += e.len;
	cr_assert_eq(out, e.bytes);
	cr_assert_eq(t_decode(t_buf2, out), 0, "%s", t_dec->reason);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(memcmp(t_ctx->mem + i * T_PG, pages[i], T_PG), 0);
}

/* ---- mutation fuzz ---- */

static uint64_t t_rng;

static uint64_t t_rand(uint64_t n)
{
	t_rng ^= t_rng >> 12;
	t_rng ^= t_rng << 25;
	t_rng ^= t_rng >> 27;
	return n ? (t_rng * 2685821657736338717ull >> 11) % n : 0;
}

/* Values that sit on the limits. */
static const uint64_t t_edges[] = {
	0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 63, 64, 65, 255, 256, 257,
	0xffff, 0x10000, MIG_META_MAX, MIG_META_MAX + 1, MIG_DATA_MAX,
	MIG_XSAVE_MAX + 1, MIG_BLOB_MAX + 1, T_PG, 0x7fffffff, 0xffffffff,
};

static size_t t_mutate(uint8_t *b, size_t n)
{
	int k = 1 + (int)t_rand(3);

	while (k-- && n) {
		uint64_t r = t_rand(10), off = t_rand(n);
		size_t rec = t_rec(b, n, (unsigned)t_rand(12));

		if (r < 3) {
			b[off] ^= (uint8_t)(1u << t_rand(8));
		} else if (r < 4) {
			b[off] = (uint8_t)t_rand(256);
		} else if (r < 7 && rec) {	/* a field of a record, to an edge */
			uint64_t at = rec + t_rand(MIG_REC_HDR_LEN + 48);

			if (at + 4 <= n)
				t_put(b + at, t_edges[t_rand(sizeof(t_edges) / 8)],
				      t_rand(2) ? 4 : 2);
		} else if (r < 8) {
			n = (size_t)t_rand(n + 1);
		} else if (rec) {		/* drop or repeat a record */
			size_t rl = MIG_REC_HDR_LEN + ld_le32(b + rec + 4) +
				    (size_t)ld_le32(b + rec + 8);

			if (rl > n - rec)
				continue;
			if (r < 9) {
				memmove(b + rec, b + rec + rl, n - rec - rl);
				n -= rl;
			} else if (n + rl <= T_BUF) {
				memmove(b + rec + rl, b + rec, n - rec);
				n += rl;
			}
		}
	}
	if (t_rand(8))
		mig_reseal(b, n, t_rand(4) != 0);
	return n;
}

static int t_decode_chunked(const uint8_t *b, size_t n)
{
	size_t off = 0;
	int rc = 0;

	t_reset();
	while (off < n && !rc) {
		size_t k = 1 + (size_t)t_rand(t_rand(2) ? 64 : 6000);

		if (k > n - off)
			k = n - off;
		rc = mig_dec_feed(t_dec, b + off, k);
		off += k;
	}
	return rc ? rc : mig_dec_finish(t_dec);
}

static bool t_known_errno(int rc)
{
	static const int ok[] = { 0, -EBADMSG, -EPROTONOSUPPORT, -EMSGSIZE, -E2BIG,
				  -ERANGE, -EPROTO, -EIO, -EILSEQ, -ENOENT, -ENODATA };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (rc == ok[i])
			return true;
	return false;
}

Test(migstream, fuzz_mutations, .timeout = 120)
{
	static const struct t_spec *const bases[] = { &t_small, &t_live, &t_quick };
	static uint8_t base[3][T_BUF / 8];
	size_t blen[3];
	int ok = 0, by_err[200] = { 0 };

	for (int i = 0; i < 3; i++) {
		blen[i] = t_build(t_buf, bases[i]);
		cr_assert_leq(blen[i], sizeof(base[i]));
		memcpy(base[i], t_buf, blen[i]);
	}
	t_rng = 0x6d696773ull;
	for (int it = 0; it < 20000; it++) {
		int which = it % 8 ? 0 : 1 + (int)t_rand(2), rc, rc2;
		uint64_t hash;
		size_t n;

		memcpy(t_buf, base[which], blen[which]);
		n = t_mutate(t_buf, blen[which]);
		rc = t_decode(t_buf, n);
		hash = t_ctx->hash;
		T_CHECK(t_known_errno(rc));
		T_CHECK(rc == 0 ? mig_dec_complete(t_dec) && t_ctx->nend == 1 :
			!mig_dec_complete(t_dec) && t_dec->reason[0]);
		rc2 = t_decode_chunked(t_buf, n);
		if (rc2 != rc || t_ctx->hash != hash)
			cr_assert_fail("iteration %d: whole %d, chunked %d (%s)", it, rc, rc2,
				       t_dec->reason);
		ok += rc == 0;
		by_err[-rc]++;
	}
	if (getenv("T_MIG_STATS"))
		for (int i = 0; i < 200; i++)
			if (by_err[i])
				cr_log_warn("errno %d: %d", i, by_err[i]);
	/* The mutations must get past the CRCs and reach every check. */
	cr_assert_gt(ok, 500, "ok %d", ok);
	cr_assert_gt(by_err[EBADMSG], 500);
	cr_assert_gt(by_err[EPROTO], 500);
	cr_assert_gt(by_err[EIO], 200);
	cr_assert_gt(by_err[ENODATA], 200);
	cr_assert_gt(by_err[E2BIG] + by_err[EMSGSIZE] + by_err[ERANGE], 100);
	cr_assert_gt(by_err[EILSEQ], 50);
	cr_assert_gt(by_err[ENOENT], 0);	/* rare: a lost RAM record breaks its round first */
}

/*
 * MIG_DEVICES_MAX (128) device records: the encoder takes 128 and refuses
 * the 129th; the decoder takes 128 and refuses a 129th record made by
 * hand (distinct name, CRCs right), before END.
 */
Test(migstream, device_count_limit)
{
	static struct mig_enc e;
	struct mig_config c;
	struct mig_vcpu v;
	struct mig_page p = { 0, NULL };
	struct mig_device d = { .version = 1, .blob_len = 3, .blob = (const uint8_t *)"abc" };
	size_t last = 0, rl, end_off, n;

	cr_assert_eq(MIG_DEVICES_MAX, 128);
	t_config_for(&c, 1, 1);
	t_vcpu_for(&v, 0);
	cr_assert_eq(mig_enc_init(&e, t_buf2, T_BUF, 0), 0);
	cr_assert_eq(mig_enc_config(&e, &c), 0);
	cr_assert_eq(mig_enc_round(&e, 0, 0, 1), 0);
	cr_assert_eq(mig_enc_ram(&e, &p, 1), 0);
	cr_assert_eq(mig_enc_vcpu(&e, &v), 0);
	for (int i = 0; i <= MIG_DEVICES_MAX; i++) {
		snprintf(d.name, sizeof(d.name), "d%03d", i);
		if (i < MIG_DEVICES_MAX)
			last = e.len;
		cr_assert_eq(mig_enc_device(&e, &d), i < MIG_DEVICES_MAX ? 0 : -E2BIG);
	}
	cr_assert_str_eq(e.reason, "more than 128 devices");
	end_off = e.len;
	cr_assert_eq(mig_enc_end(&e), 0);
	cr_assert_eq(t_decode(t_buf2, e.len), 0, "%s", t_dec->reason);
	cr_assert_eq(t_ctx->ndevices, MIG_DEVICES_MAX);
	cr_assert_eq(t_ctx->end.devices, MIG_DEVICES_MAX);
	/* A copy of device 127 renamed d128 in place of END. */
	rl = end_off - last;
	memcpy(t_buf2 + end_off, t_buf2 + last, rl);
	memcpy(t_buf2 + end_off + MIG_REC_HDR_LEN + 12, "d128", 4);
	n = end_off + rl;
	mig_reseal(t_buf2, n, false);
	t_refuse(t_buf2, n, -E2BIG, "record 133 (DEVICE) at byte");
	cr_assert(strstr(t_dec->reason, ": more than 128 devices"), "%s", t_dec->reason);
	cr_assert_eq(t_ctx->ndevices, MIG_DEVICES_MAX);
	/* The same copy left as d127: a duplicate, whatever the count. */
	memcpy(t_buf2 + end_off + MIG_REC_HDR_LEN + 12, "d127", 4);
	mig_reseal(t_buf2, n, false);
	t_refuse(t_buf2, n, -EPROTO, "device d127 sent twice");
}

/* The sizes README states for struct mig_dec and struct mig_enc. */
Test(migstream, struct_sizes)
{
	cr_assert_leq(sizeof(struct mig_order), 4 * 1024 + 128, "%zu", sizeof(struct mig_order));
	cr_assert_leq(sizeof(struct mig_enc), 5 * 1024, "%zu", sizeof(struct mig_enc));
	cr_assert_leq(sizeof(struct mig_dec), 80 * 1024, "%zu", sizeof(struct mig_dec));
}
