/*
 * libFuzzer target for the migration stream decoder (make fuzz).
 *
 * Input: one mode byte, then the stream.  Mode bit 0 reseals the record
 * CRCs (tests/unit/mig_reseal.h) and bit 1 the page CRCs too, so that
 * mutations get past the checksums and reach the checks behind them;
 * without them the fuzzer would only ever meet -EIO.
 *
 * Each input is decoded twice, whole and in chunks whose sizes come from
 * the mode byte: the result and the callbacks seen must not depend on how
 * the transport split the bytes.  The callbacks read every byte they are
 * given, so ASan sees any pointer past the decoder's buffers.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/crc32c.h"
#include "migrate/stream.h"
#include "tests/unit/mig_reseal.h"

#define FZ_PAGES	256
#define FZ_MAX		(1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	struct mig_dec dec;
	uint64_t seen[FZ_PAGES / 64];
	uint64_t npages;
	uint32_t nvcpus;
	uint64_t hash;
};

static struct fz fz;
static uint8_t fz_buf[FZ_MAX];

static void fz_mix(uint64_t v)
{
	fz.hash = (fz.hash ^ v) * 0x100000001b3ull;
}

static void fz_check(int cond)
{
	if (!cond)
		__builtin_trap();
}

/* What a CONFIG callback may rely on: the rules of stream.h, checked. */
static void fz_check_config(const struct mig_config *c)
{
	fz_check(c->mem_size / MIG_PAGE_SIZE <= FZ_PAGES && c->nvcpus >= 1);
	fz_check(strlen(c->name) >= 1 && strlen(c->name) <= MIG_NAME_MAX);
	fz_check(c->kind <= MIG_KIND_LINUX_PVH && c->ndevspecs <= MIG_DEVSPECS_MAX);
	fz_check(!c->tsc_khz || (c->tsc_khz >= MIG_TSC_KHZ_MIN && c->tsc_khz <= MIG_TSC_KHZ_MAX));
	fz_check(strlen(c->initrd_path) <= MIG_PATH_MAX && strlen(c->modules) <= MIG_PATH_MAX);
	fz_check(!c->initrd_path[0] || c->kind != MIG_KIND_MULTIBOOT);
	for (uint32_t i = 0; i < c->ndevspecs; i++) {
		size_t n = strlen(c->devspecs[i]);
		const char *eq = strchr(c->devspecs[i], '=');

		fz_check(n >= 3 && n <= MIG_DEVSPEC_MAX && eq && eq > c->devspecs[i] &&
			 eq[1] && !strchr(c->devspecs[i], ' '));
		for (uint32_t j = 0; j < i; j++)
			fz_check(strcmp(c->devspecs[i], c->devspecs[j]) != 0);
	}
}

static int fz_config(void *ctx, const struct mig_config *c)
{
	(void)ctx;
	fz_check_config(c);
	fz.npages = c->mem_size / MIG_PAGE_SIZE;
	fz.nvcpus = c->nvcpus;
	fz_mix(c->mem_size ^ c->ncpuid ^ (uint64_t)c->kind << 32 ^ c->tsc_khz);
	fz_mix(crc32c(0, c->initrd_path, strlen(c->initrd_path)) ^ c->ndevspecs);
	for (uint32_t i = 0; i < c->ndevspecs; i++)
		fz_mix(crc32c(0, c->devspecs[i], strlen(c->devspecs[i])));
	return 0;
}

static int fz_round(void *ctx, const struct mig_round *r)
{
	(void)ctx;
	fz_check(r->pages <= fz.npages);
	fz_mix(r->round);
	return 0;
}

static int fz_page(void *ctx, uint64_t index, const void *d)
{
	(void)ctx;
	fz_check(index < fz.npages);
	fz_mix(index ^ (d ? crc32c(0, d, MIG_PAGE_SIZE) : 0));
	return 0;
}

static int fz_vcpu(void *ctx, const struct mig_vcpu *v)
{
	(void)ctx;
	fz_check(v->index < fz.nvcpus && v->nmsrs <= MIG_MSRS_MAX);
	fz_mix(v->rip ^ crc32c(0, v->xsave, v->xsave_len) ^ v->msrs[v->nmsrs ? v->nmsrs - 1 : 0].value);
	return 0;
}

static int fz_device(void *ctx, const struct mig_device *d)
{
	(void)ctx;
	fz_mix(d->version ^ crc32c(0, d->blob, d->blob_len));
	/* A device model may refuse its state: exercise that path too. */
	return d->version == 0xdead ? -EINVAL : 0;
}

static int fz_end(void *ctx, const struct mig_end *e)
{
	(void)ctx;
	fz_mix(e->bytes);
	return 0;
}

static const struct mig_dec_ops fz_ops = {
	fz_config, fz_round, fz_page, fz_vcpu, fz_device, fz_end,
};

static int fz_decode(const uint8_t *b, size_t n, unsigned mode, uint64_t *hash)
{
	uint64_t rng = mode * 0x9e3779b97f4a7c15ull + n;
	size_t off = 0;
	int rc = 0;

	memset(&fz.hash, 0, sizeof(fz.hash));
	fz.npages = 0;
	fz.nvcpus = 0;
	mig_dec_init(&fz.dec, &fz_ops, NULL, fz.seen, FZ_PAGES);
	while (off < n && !rc) {
		size_t k = n - off;

		if (mode) {	/* chunks of 1 to 4096 bytes */
			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			k = 1 + (size_t)(rng >> 33) % (rng >> 63 ? 4096 : 17);
			if (k > n - off)
				k = n - off;
		}
		rc = mig_dec_feed(&fz.dec, b + off, k);
		off += k;
	}
	if (!rc)
		rc = mig_dec_finish(&fz.dec);
	fz_check(rc <= 0);
	fz_check(rc == 0 ? mig_dec_complete(&fz.dec) : !mig_dec_complete(&fz.dec) &&
		 fz.dec.reason[0]);
	*hash = fz.hash;
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h1, h2;
	unsigned mode;
	size_t n;
	int rc;

	if (size < 1 || size - 1 > FZ_MAX)
		return 0;
	mode = data[0];
	n = size - 1;
	memcpy(fz_buf, data + 1, n);
	if (mode & 1)
		mig_reseal(fz_buf, n, mode & 2);
	rc = fz_decode(fz_buf, n, 0, &h1);
	fz_check(fz_decode(fz_buf, n, mode | 0x100, &h2) == rc && h1 == h2);
	return 0;
}
