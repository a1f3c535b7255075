/*
 * libFuzzer target for the Linux boot protocol planner (make fuzz).
 *
 * Input: an 8-byte prefix, then the bzImage.
 *	byte 0		bits 2:0 pick the guest memory map, bit 3 forces a
 *			valid boot_flag, "HdrS" and version so that mutations
 *			reach the checks behind them
 *	bytes 1-4	initrd size (little-endian; 0 = none)
 *	bytes 5-6	command line length
 *	byte 7		unused
 * The image is copied to a heap block of exactly its size, so ASan sees
 * any read past its end.  On every accepted input the plan's invariants
 * are checked independently of the planner: each region (and the loader's
 * area) inside one RAM entry and below 4 GiB, no two overlapping, the
 * entry point in the copied kernel, the initrd page-aligned under
 * initrd_addr_max, a zero page that says the same, and entry registers
 * that point at the entry and the zero page.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "kernel/lib/bzimage.h"

#define FZ_PREFIX	8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_cmdline[BZI_CMDLINE_AREA + 16];
static uint8_t fz_zp[BZI_ZERO_PAGE_SIZE];

static void fz_check(bool cond)
{
	if (!cond)
		__builtin_trap();
}

static int fz_map(uint8_t sel, struct bzi_e820 *m)
{
	static const uint64_t rams[] = { 2ull << 20, 64ull << 20, 256ull << 20, 0xfec00000ull };

	if (sel < 4)
		return bzi_default_e820(rams[sel], m, 8);
	/* A map with holes and every type. */
	m[0] = (struct bzi_e820){ 0, 0x9fc00, BZI_E820_RAM };
	m[1] = (struct bzi_e820){ 0x9fc00, 0x60400, BZI_E820_RESERVED };
	m[2] = (struct bzi_e820){ 0x100000, (sel & 3) * 0x1000000ull + 0x100000, BZI_E820_RAM };
	m[3] = (struct bzi_e820){ 0x8000000, 0x100000, BZI_E820_ACPI };
	m[4] = (struct bzi_e820){ 0x8100000, 0x100000, BZI_E820_NVS };
	m[5] = (struct bzi_e820){ 0xc000000, 0x30000000, BZI_E820_RAM };
	m[6] = (struct bzi_e820){ 0xfec00000, 0x1400000, BZI_E820_RESERVED };
	m[7] = (struct bzi_e820){ 0x100000000ull, 0x40000000, BZI_E820_RAM };
	return 8;
}

static bool fz_in_one_ram(const struct bzi_request *req, uint64_t a, uint64_t len)
{
	if (len == 0 || a + len > BZI_4G)
		return false;
	for (int i = 0; i < req->nmap; i++)
		if (req->map[i].type == BZI_E820_RAM && a >= req->map[i].addr &&
		    a + len <= req->map[i].addr + req->map[i].size)
			return true;
	return false;
}

static bool fz_disjoint(uint64_t a, uint64_t al, uint64_t b, uint64_t bl)
{
	return a + al <= b || b + bl <= a;
}

static void fz_check_plan(const struct bzi_plan *p, const struct bzi_request *req, size_t size)
{
	uint64_t r[5][2] = { { p->kernel_gpa, p->kernel_reserve },
			     { p->zero_page_gpa, BZI_ZERO_PAGE_SIZE },
			     { p->cmdline_gpa, p->cmdline_len },
			     { BZI_LOADER_AREA, BZI_LOADER_AREA_END - BZI_LOADER_AREA },
			     { p->initrd_gpa, p->initrd_size } };
	int n = p->initrd_size ? 5 : 4;

	fz_check(p->kernel_src_off + p->kernel_len <= size && p->kernel_len > 0);
	fz_check(p->kernel_reserve >= p->kernel_len);
	fz_check(p->entry64 == p->kernel_gpa + 0x200 && p->entry64 < p->kernel_gpa + p->kernel_len);
	fz_check(p->kernel_gpa >= BZI_HIGH_START);
	if (p->hdr.relocatable_kernel)
		fz_check(p->kernel_gpa % p->hdr.kernel_alignment == 0);
	else
		fz_check(p->kernel_gpa == p->hdr.pref_address);
	for (int i = 0; i < n; i++) {
		fz_check(fz_in_one_ram(req, r[i][0], r[i][1]));
		for (int j = i + 1; j < n; j++)
			fz_check(fz_disjoint(r[i][0], r[i][1], r[j][0], r[j][1]));
	}
	fz_check(p->cmdline_len == strlen(req->cmdline) + 1);
	fz_check(p->cmdline_len - 1 <= p->hdr.cmdline_size);
	if (p->initrd_size)
		fz_check(p->initrd_gpa % 4096 == 0 && p->initrd_gpa >= BZI_HIGH_START &&
			 p->initrd_gpa + p->initrd_size - 1 <= p->hdr.initrd_addr_max);
}

static uint8_t fz_area[BZI_LOADER_AREA_END - BZI_LOADER_AREA];

static void fz_check_entry(const struct bzi_plan *p)
{
	struct bzi_entry_regs r;

	fz_check(bzi_build_boot_tables(fz_area, sizeof(fz_area), p, &r) == 0);
	fz_check(r.rip == p->entry64 && r.rsi == p->zero_page_gpa && r.cs == 0x10);
	/* The identity map covers 4 GiB: every region lies below it. */
	fz_check(ld_le64(fz_area + 0x6ff8) == (0xffe00000ull | 0x83));
}

static void fz_check_zero_page(const struct bzi_plan *p, const struct bzi_request *req)
{
	fz_check(bzi_build_zero_page(fz_zp, p, req, NULL) == 0);
	fz_check(fz_zp[0x210] == 0xff && fz_zp[0x211] == 0x81);
	fz_check(ld_le32(fz_zp + 0x228) == p->cmdline_gpa);
	fz_check(ld_le32(fz_zp + 0x218) == p->initrd_gpa);
	fz_check(ld_le32(fz_zp + 0x21c) == p->initrd_size);
	fz_check(ld_le64(fz_zp + 0x250) == 0);
	fz_check(fz_zp[0x1e8] == req->nmap);
	for (int i = 0; i < req->nmap; i++) {
		const uint8_t *e = fz_zp + 0x2d0 + 20 * i;

		fz_check(ld_le64(e) == req->map[i].addr && ld_le32(e + 16) == req->map[i].type);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bzi_e820 map[8];
	struct bzi_request req;
	struct bzi_plan plan;
	const char *why = NULL;
	uint8_t *img;
	size_t isize, clen;
	int rc;

	if (size < FZ_PREFIX)
		return 0;
	isize = size - FZ_PREFIX;
	img = malloc(isize ? isize : 1);
	if (!img)
		return 0;
	memcpy(img, data + FZ_PREFIX, isize);
	if ((data[0] & 8) && isize >= 0x208) {
		st_le16(img + 0x1fe, 0xaa55);
		memcpy(img + 0x202, "HdrS", 4);
		if (ld_le16(img + 0x206) < BZI_MIN_VERSION)
			st_le16(img + 0x206, BZI_MIN_VERSION);
	}
	req = (struct bzi_request){ map, fz_map(data[0] & 7, map), ld_le32(data + 1),
				    fz_cmdline, 0xe0000 };
	clen = ld_le16(data + 5) % (sizeof(fz_cmdline) - 1);
	memset(fz_cmdline, 'x', clen);
	fz_cmdline[clen] = 0;

	rc = bzi_plan(img, isize, &req, &plan, &why);
	if (rc == 0) {
		fz_check_plan(&plan, &req, isize);
		fz_check_zero_page(&plan, &req);
		fz_check_entry(&plan);
	} else {
		fz_check(rc < 0 && why && *why && plan.kernel_gpa == 0 && plan.entry64 == 0);
	}
	free(img);
	return 0;
}
