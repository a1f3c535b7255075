/*
 * A fake guest memory for the vring and vblk tests: 32 pages of RAM at
 * VF_BASE with a hole at VF_HOLE, plus (when vf.wild is set) a scratch
 * page behind every address at or above 4 GiB, so that chains of huge
 * buffers can be built.  The map callback checks the vring_mem contract
 * (at most a page, never crossing one) on every call.
 */
#ifndef TERN_TESTS_UNIT_VRING_FAKE_H
#define TERN_TESTS_UNIT_VRING_FAKE_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/devices/model/vring.h"
#include "kernel/lib/byteorder.h"

#define VF_BASE		0x10000ull
#define VF_PAGES	32u
#define VF_SIZE		(VF_PAGES * 4096ull)
#define VF_HOLE		(VF_BASE + 16 * 4096ull)
#define VF_WILD		(1ull << 32)

static struct {
	uint8_t *ram;
	uint8_t scratch[4096];
	bool wild;
	unsigned maps, write_maps;
	uint64_t last_write;
	/* called on every write mapping, to play a driver racing the device */
	void (*on_write)(uint64_t gpa);
} vf;

static inline void *vf_map(void *ctx, uint64_t gpa, uint32_t len, bool write)
{
	cr_assert_eq(ctx, &vf);
	cr_assert(len >= 1 && len <= VRING_MAP_MAX);
	cr_assert((gpa & 4095) + len <= 4096, "map crosses a page: %llx+%u",
		  (unsigned long long)gpa, len);
	vf.maps++;
	if (write) {
		vf.write_maps++;
		vf.last_write = gpa;
		if (vf.on_write)
			vf.on_write(gpa);
	}
	if (vf.wild && gpa >= VF_WILD)
		return vf.scratch + (gpa & 4095);
	if (gpa < VF_BASE || gpa - VF_BASE >= VF_SIZE)
		return NULL;
	if ((gpa & ~4095ull) == VF_HOLE)
		return NULL;
	return vf.ram + (gpa - VF_BASE);
}

static const struct vring_mem VF_MEM = { .map = vf_map, .ctx = &vf };

static inline void vf_init(void)
{
	free(vf.ram);
	memset(&vf, 0, sizeof(vf));
	vf.ram = aligned_alloc(4096, VF_SIZE);
	cr_assert_not_null(vf.ram);
	memset(vf.ram, 0, VF_SIZE);
}

static inline void vf_fini(void)
{
	free(vf.ram);
	vf.ram = NULL;
}

static inline uint8_t *vf_ptr(uint64_t gpa)
{
	cr_assert(gpa >= VF_BASE && gpa - VF_BASE < VF_SIZE);
	return vf.ram + (gpa - VF_BASE);
}

/* A descriptor in a table at gpa. */
static inline void vf_desc(uint64_t table, uint32_t i, uint64_t addr, uint32_t len,
			   uint16_t flags, uint16_t next)
{
	uint8_t raw[16];

	st_le64(raw, addr);
	st_le32(raw + 8, len);
	st_le16(raw + 12, flags);
	st_le16(raw + 14, next);
	/* byte by byte: a table may cross a page */
	for (unsigned k = 0; k < 16; k++)
		*vf_ptr(table + 16ull * i + k) = raw[k];
}

#endif
