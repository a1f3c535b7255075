/*
 * Seeds for fuzz_bzimage: valid synthetic bzImages shaped like Debian
 * 12's 6.1 kernel (protocol 2.15), each behind the target's 8-byte prefix,
 * with the variations the planner branches on: relocatable or fixed,
 * pref_address usable or not, with and without an initrd, memory maps.
 *
 *	bzimage_seeds DIR
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernel/lib/byteorder.h"

#define SEED_PM_OFF	(5 * 512)
#define SEED_PM_SIZE	0x1000u
#define SEED_LEN	(8 + SEED_PM_OFF + SEED_PM_SIZE)

struct seed {
	uint8_t map_sel;
	uint32_t initrd;
	uint16_t cmdline;
	uint8_t relocatable;
	uint64_t pref;
	uint32_t init_size;
};

static const struct seed seeds[] = {
	{ 2, 0, 20, 1, 0x1000000, 0x3f98000 },
	{ 2, 0x800000, 100, 1, 0x1000000, 0x3f98000 },
	{ 1, 0x100000, 0, 1, 0x1000000, 0x2000000 },
	{ 3, 0x4000000, 2047, 1, 0x1000000, 0x3f98000 },
	{ 5, 0x2000000, 10, 1, 0x1100000, 0x1000000 },
	{ 2, 0x1000, 10, 0, 0x1000000, 0x3f98000 },
	{ 7 | 8, 0x30000000, 10, 1, 0, 0x800000 },
};

static void seed_build(uint8_t *b, const struct seed *s)
{
	uint8_t *p = b + 8;

	memset(b, 0, SEED_LEN);
	b[0] = s->map_sel;
	st_le32(b + 1, s->initrd);
	st_le16(b + 5, s->cmdline);
	p[0x1f1] = 4;
	st_le32(p + 0x1f4, SEED_PM_SIZE / 16);
	st_le16(p + 0x1fe, 0xaa55);
	p[0x200] = 0xeb;
	p[0x201] = 0x6a;
	memcpy(p + 0x202, "HdrS", 4);
	st_le16(p + 0x206, 0x020f);
	p[0x211] = 1;
	st_le32(p + 0x22c, 0x7fffffff);
	st_le32(p + 0x230, 0x200000);
	p[0x234] = s->relocatable;
	st_le16(p + 0x236, 0x7f);
	st_le32(p + 0x238, 2047);
	st_le64(p + 0x258, s->pref);
	st_le32(p + 0x260, s->init_size);
	for (uint32_t i = 0; i < SEED_PM_SIZE; i++)
		p[SEED_PM_OFF + i] = (uint8_t)(i * 7 + 1);
}

int main(int argc, char **argv)
{
	static uint8_t buf[SEED_LEN];

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		char path[4096];
		FILE *f;

		snprintf(path, sizeof(path), "%s/seed-%02zu", argv[1], i);
		seed_build(buf, &seeds[i]);
		f = fopen(path, "wb");
		if (!f || fwrite(buf, 1, SEED_LEN, f) != SEED_LEN || fclose(f)) {
			perror(path);
			return 1;
		}
	}
	return 0;
}
