/*
 * Writes the seed corpus of fuzz_migstream (make fuzz): a few small, valid
 * streams made with the real encoder, so the corpus is never a binary
 * blob in git and follows the format when it changes.
 *
 *	mig_seeds DIR
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/stream.h"

static uint8_t out[1u << 20];
static uint8_t pages[4][MIG_PAGE_SIZE];

static void must(int rc, const struct mig_enc *e)
{
	if (rc) {
		fprintf(stderr, "mig_seeds: %s (%d)\n", e->reason, rc);
		exit(1);
	}
}

/*
 * CONFIG: a Linux guest (bzImage, or PVH for lx 2) with an initrd and
 * nwords device words, or a Multiboot one with modules.
 */
static void seed_config(struct mig_config *c, uint64_t npages, uint32_t nvcpus, int lx,
			uint32_t nwords)
{
	static const char *const words[] = {
		"disk=web", "nic=auto", "disk=data:ro", "nic=02:00:00:00:00:01",
	};

	memset(c, 0, sizeof(*c));
	c->mem_size = npages * MIG_PAGE_SIZE;
	c->nvcpus = nvcpus;
	snprintf(c->name, sizeof(c->name), "seed");
	c->ncpuid = 1;
	c->cpuid[0] = (struct mig_cpuid){ 1, 0, 0x800f12, 0, 0x80002001, 0x178bfbff };
	if (!lx) {
		c->kind = MIG_KIND_MULTIBOOT;
		snprintf(c->kernel_path, sizeof(c->kernel_path), "/tern/guests/hello.elf");
		snprintf(c->modules, sizeof(c->modules), "env.txt,mod.bin");
		snprintf(c->cmdline, sizeof(c->cmdline), "x=1");
		return;
	}
	c->kind = lx == 2 ? MIG_KIND_LINUX_PVH : MIG_KIND_LINUX;
	c->tsc_khz = 2995200;
	snprintf(c->kernel_path, sizeof(c->kernel_path), "linux/vmlinuz");
	snprintf(c->initrd_path, sizeof(c->initrd_path), "linux/initrd.gz");
	snprintf(c->cmdline, sizeof(c->cmdline), "console=ttyS0 tsc_early_khz=2995200");
	c->ndevspecs = nwords;
	for (uint32_t i = 0; i < nwords; i++)
		snprintf(c->devspecs[i], sizeof(c->devspecs[i]), "%s", words[i % 4]);
}

/*
 * npages pages, ndata of them with data; rounds of resends when live;
 * lx 0 (Multiboot), 1 (bzImage) or 2 (PVH) with nwords device words.
 */
static void seed(struct mig_enc *e, uint64_t npages, unsigned ndata, uint32_t nvcpus,
		 int ndev, unsigned rounds, unsigned batch, int lx, uint32_t nwords)
{
	static uint8_t xsave[512];
	static struct mig_config c;
	struct mig_page p[64];

	memset(xsave, 0x11, sizeof(xsave));
	seed_config(&c, npages, nvcpus, lx, nwords);
	must(mig_enc_init(e, out, sizeof(out), rounds > 1 ? MIG_F_LIVE : 0), e);
	must(mig_enc_config(e, &c), e);
	for (unsigned r = 0; r < rounds; r++) {
		uint64_t n = r ? 2 : npages;

		must(mig_enc_round(e, r, r + 1 == rounds ? MIG_ROUND_FINAL : 0, n), e);
		for (uint64_t i = 0; i < n; i += batch) {
			unsigned k = 0;

			for (uint64_t j = i; j < n && j < i + batch; j++, k++)
				p[k] = (struct mig_page){ j, j < ndata ? pages[j % 4] : NULL };
			must(mig_enc_ram(e, p, k), e);
		}
	}
	for (uint32_t i = 0; i < nvcpus; i++) {
		static struct mig_vcpu v;

		memset(&v, 0, sizeof(v));
		v.index = i;
		v.rip = 0xfff0;
		v.cr0 = 0x60000010;
		v.nmsrs = 2;
		v.msrs[0] = (struct mig_msr){ 0x277, 0x0007040600070406ull };
		v.msrs[1] = (struct mig_msr){ 0xc0000080, 0 };
		v.event_flags = i ? MIG_EVENT_VALID : 0;
		v.event_vector = i ? 32 : 0;
		v.xsave_len = i ? 0 : sizeof(xsave);
		v.xsave = xsave;
		must(mig_enc_vcpu(e, &v), e);
	}
	for (int i = 0; i < ndev; i++) {
		struct mig_device d = { .version = 1, .blob_len = 8, .blob = (const uint8_t *)"state..." };

		snprintf(d.name, sizeof(d.name), "uart%d", i);
		must(mig_enc_device(e, &d), e);
	}
	must(mig_enc_end(e), e);
}

/* Each seed twice: mode byte 0 (raw) and 3 (CRCs resealed). */
static void write_seed(const char *dir, const char *name, const struct mig_enc *e)
{
	for (int mode = 0; mode <= 3; mode += 3) {
		char path[512];
		uint8_t m = (uint8_t)mode;
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s-m%d", dir, name, mode);
		f = fopen(path, "wb");
		if (!f || fwrite(&m, 1, 1, f) != 1 || fwrite(out, 1, e->len, f) != e->len ||
		    fclose(f)) {
			fprintf(stderr, "mig_seeds: %s: %s\n", path, strerror(errno));
			exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	static struct mig_enc e;

	if (argc != 2) {
		fprintf(stderr, "usage: mig_seeds DIR\n");
		return 2;
	}
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < MIG_PAGE_SIZE; j++)
			pages[i][j] = (uint8_t)(i * 31 + j);
	seed(&e, 1, 0, 1, 0, 1, 1, 0, 0);
	write_seed(argv[1], "minimal", &e);
	seed(&e, 8, 2, 2, 2, 1, 3, 1, 2);
	write_seed(argv[1], "quick", &e);
	seed(&e, 4, 1, 1, 1, 3, 2, 2, 1);
	write_seed(argv[1], "live", &e);
	seed(&e, 64, 0, 3, 3, 2, 64, 1, 4);
	write_seed(argv[1], "zeros", &e);
	return 0;
}
