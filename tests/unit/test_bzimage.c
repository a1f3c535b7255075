/*
 * Unit tests and a mutation loop for kernel/lib/bzimage.c.
 *
 * Images are synthetic: a setup header shaped like Debian 12's 6.1 kernel
 * (protocol 2.15, pref_address 16 MiB, init_size 0x3f98000) and a small
 * payload.  Each image under test is copied into a heap block of exactly
 * its size, so ASan flags any read past the end.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "kernel/lib/bzimage.h"

#define T_SETUP_SECTS	4
#define T_PM_OFF	((T_SETUP_SECTS + 1) * 512)
#define T_PM_SIZE	0x1000u
#define T_SIZE		(T_PM_OFF + T_PM_SIZE)
#define T_RAM		(256ull << 20)
#define T_INIT_SIZE	0x3f98000u
#define T_PREF		0x1000000ull
#define T_ALIGN		0x200000u

static uint8_t t_img[T_SIZE + 4096];

/* A valid header, as a 6.1 x86_64 kernel's build writes it. */
static void t_build(void)
{
	uint8_t *p = t_img;

	memset(p, 0, sizeof(t_img));
	p[0x1f1] = T_SETUP_SECTS;
	st_le32(p + 0x1f4, T_PM_SIZE / 16);		/* syssize */
	st_le16(p + 0x1fa, 0xffff);			/* vid_mode */
	st_le16(p + 0x1fe, 0xaa55);			/* boot_flag */
	p[0x200] = 0xeb;				/* jmp short ... */
	p[0x201] = 0x6a;				/* ... header ends 0x26c */
	memcpy(p + 0x202, "HdrS", 4);
	st_le16(p + 0x206, 0x020f);
	st_le16(p + 0x20e, 0x3a00);			/* kernel_version */
	p[0x211] = BZI_LOADED_HIGH;
	st_le32(p + 0x214, 0x100000);			/* code32_start */
	st_le32(p + 0x22c, 0x7fffffff);			/* initrd_addr_max */
	st_le32(p + 0x230, T_ALIGN);
	p[0x234] = 1;					/* relocatable_kernel */
	p[0x235] = 21;					/* min_alignment */
	st_le16(p + 0x236, 0x7f);			/* xloadflags */
	st_le32(p + 0x238, 2047);			/* cmdline_size */
	st_le32(p + 0x248, 0x3b3);			/* payload_offset */
	st_le32(p + 0x24c, 0xc00);			/* payload_length */
	st_le64(p + 0x258, T_PREF);
	st_le32(p + 0x260, T_INIT_SIZE);
	st_le32(p + 0x264, 0x870);			/* handover_offset */
	st_le32(p + 0x268, 0xb80);			/* kernel_info_offset */
	for (uint32_t i = 0; i < T_PM_SIZE; i++)
		p[T_PM_OFF + i] = (uint8_t)(i * 7 + 1);
}

static struct bzi_e820 t_map[8];

static struct bzi_request t_req(uint64_t ram, uint64_t initrd, const char *cmdline)
{
	int n = bzi_default_e820(ram, t_map, 8);

	cr_assert_eq(n, 4);
	return (struct bzi_request){ t_map, n, initrd, cmdline, 0 };
}

/* Plan img[0, size) from an exact-size heap copy. */
static int t_plan(size_t size, const struct bzi_request *req, struct bzi_plan *plan,
		  const char **why)
{
	uint8_t *copy = malloc(size ? size : 1);
	int rc;

	cr_assert(copy);
	memcpy(copy, t_img, size);
	*why = NULL;
	rc = bzi_plan(copy, size, req, plan, why);
	free(copy);
	return rc;
}

static void t_refused(size_t size, int err, const char *why_part)
{
	struct bzi_request req = t_req(T_RAM, 0, "");
	struct bzi_plan plan;
	const char *why;
	int rc = t_plan(size, &req, &plan, &why);

	cr_assert_eq(rc, err, "size %zu: rc %d, want %d (%s)", size, rc, err, why ? why : "-");
	cr_assert(why && strstr(why, why_part), "why \"%s\", want \"%s\"", why ? why : "-",
		  why_part);
	cr_assert_eq(plan.kernel_gpa, 0);
	cr_assert_eq(plan.entry64, 0);
}

Test(bzimage, plan_debian_like)
{
	struct bzi_request req;
	struct bzi_plan plan;
	const char *why;

	t_build();
	req = t_req(T_RAM, 0x123456, "console=ttyS0 quiet");
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.hdr.setup_sects, T_SETUP_SECTS);
	cr_assert_eq(plan.hdr.version, 0x020f);
	cr_assert_eq(plan.hdr.hdr_end, 0x26c);
	cr_assert_eq(plan.hdr.cmdline_size, 2047);
	cr_assert_eq(plan.kernel_gpa, T_PREF);
	cr_assert_eq(plan.kernel_src_off, T_PM_OFF);
	cr_assert_eq(plan.kernel_len, T_PM_SIZE);
	cr_assert_eq(plan.kernel_reserve, T_INIT_SIZE);
	cr_assert_eq(plan.entry64, T_PREF + 0x200);
	cr_assert_eq(plan.zero_page_gpa, 0x7000);
	cr_assert_eq(plan.cmdline_gpa, 0x20000);
	cr_assert_eq(plan.cmdline_len, strlen("console=ttyS0 quiet") + 1);
	cr_assert_eq(plan.initrd_size, 0x123456);
	/* As high as possible: page-aligned start, ends below RAM's top. */
	cr_assert_eq(plan.initrd_gpa, (T_RAM - 0x123456) & ~0xfffull);
	cr_assert_eq(plan.hdr_len, 0x26c - 0x1f1);
	cr_assert_eq(memcmp(plan.hdr_raw, t_img + 0x1f1, plan.hdr_len), 0);
}

/* Bytes 0x1f1..0x26b of Debian 12's vmlinuz-6.1.0-57-amd64 (6.1.192-3). */
static const uint8_t t_debian_hdr[] = {
	0x27, 0x01, 0x00, 0x20, 0xd8, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00,
	0x00, 0x55, 0xaa, 0xeb, 0x6a, 0x48, 0x64, 0x72, 0x53, 0x0f, 0x02, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x10, 0xc0, 0x42, 0x00, 0x01, 0x00, 0x80, 0x00,
	0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xe0, 0x5b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
	0xff, 0xff, 0x7f, 0x00, 0x00, 0x20, 0x00, 0x01, 0x15, 0x7f, 0x00, 0xff,
	0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xcc, 0x02, 0x00, 0x00, 0xe4, 0xef, 0x7b, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x80, 0xf9, 0x03, 0x20, 0x8d, 0x7c, 0x00, 0xfc,
	0x56, 0x7d, 0x00,
};

/*
 * The real header with a zero payload of its size: 39 setup sectors,
 * syssize 0x7d820, and the 0x5c0-byte signature the signed image carries
 * after the payload.
 */
Test(bzimage, debian_12_kernel_header)
{
	size_t size = 0x5000 + 0x7d8200 + 0x5c0;
	uint8_t *img = calloc(1, size);
	static uint8_t zp[BZI_ZERO_PAGE_SIZE];
	struct bzi_request req = t_req(512ull << 20, 20ull << 20, "console=ttyS0");
	struct bzi_plan plan;
	const char *why = NULL;

	cr_assert(img);
	memcpy(img + 0x1f1, t_debian_hdr, sizeof(t_debian_hdr));
	cr_assert_eq(bzi_plan(img, size, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.hdr.version, 0x020f);
	cr_assert_eq(plan.hdr.setup_sects, 39);
	cr_assert_eq(plan.hdr.xloadflags, 0x7f);
	cr_assert_eq(plan.hdr.cmdline_size, 2047);
	cr_assert_eq(plan.hdr.initrd_addr_max, 0x7fffffff);
	cr_assert_eq(plan.kernel_src_off, 0x5000);
	cr_assert_eq(plan.kernel_len, 0x7d8200);
	cr_assert_eq(plan.kernel_gpa, 0x1000000);
	cr_assert_eq(plan.kernel_reserve, 0x3f98000);
	cr_assert_eq(plan.entry64, 0x1000200);
	cr_assert_eq(plan.initrd_gpa, (512ull << 20) - (20ull << 20));
	cr_assert_eq(bzi_build_zero_page(zp, &plan, &req, &why), 0, "%s", why);
	cr_assert_eq(memcmp(zp + 0x1f1, t_debian_hdr, 0x210 - 0x1f1), 0);
	cr_assert_eq(memcmp(zp + 0x258, t_debian_hdr + 0x258 - 0x1f1, 0x26c - 0x258), 0);
	free(img);
}

Test(bzimage, no_initrd_and_empty_cmdline)
{
	struct bzi_request req;
	struct bzi_plan plan;
	const char *why;

	t_build();
	req = t_req(T_RAM, 0, NULL);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.initrd_gpa, 0);
	cr_assert_eq(plan.initrd_size, 0);
	cr_assert_eq(plan.cmdline_len, 1);
}

Test(bzimage, setup_sects_zero_means_four)
{
	struct bzi_header h;
	const char *why;

	t_build();
	t_img[0x1f1] = 0;
	cr_assert_eq(bzi_parse_header(t_img, T_SIZE, &h, &why), 0, "%s", why);
	cr_assert_eq(h.setup_sects, 4);
	cr_assert_eq(h.pm_offset, 5 * 512);
}

Test(bzimage, header_refusals)
{
	t_build();
	t_refused(0, -ENOEXEC, "too small");
	t_refused(0x207, -ENOEXEC, "too small");
	t_refused(0x263, -ENOEXEC, "truncated inside the setup header");
	t_refused(T_PM_OFF, -ENOEXEC, "setup_sects points past the end");

	t_img[0x1ff] = 0x55;
	t_refused(T_SIZE, -ENOEXEC, "boot_flag");
	t_build();
	t_img[0x205] = 'T';
	t_refused(T_SIZE, -ENOEXEC, "HdrS");
	t_build();
	st_le16(t_img + 0x206, 0x020b);
	t_refused(T_SIZE, -ENOEXEC, "older than 2.12");
	t_build();
	t_img[0x201] = 0x61;			/* ends at 0x263 */
	t_refused(T_SIZE, -ENOEXEC, "ends before init_size");
	t_build();
	t_img[0x201] = 0x8f;			/* ends at 0x291 */
	t_refused(T_SIZE, -ENOEXEC, "past 0x290");
	t_build();
	t_img[0x1f1] = 0xff;
	t_refused(T_SIZE, -ENOEXEC, "setup_sects points past the end");
}

Test(bzimage, payload_refusals)
{
	t_build();
	st_le32(t_img + 0x1f4, 0);
	t_refused(T_SIZE, -ENOEXEC, "syssize is 0");
	st_le32(t_img + 0x1f4, T_PM_SIZE / 16 + 1);
	t_refused(T_SIZE, -ENOEXEC, "syssize claims more");
	st_le32(t_img + 0x1f4, 0xffffffff);
	t_refused(T_SIZE, -ENOEXEC, "syssize claims more");
	st_le32(t_img + 0x1f4, 0x20);		/* exactly 0x200 bytes */
	t_refused(T_SIZE, -ENOEXEC, "too small for the 64-bit entry");
	t_build();
	t_refused(T_SIZE - 1, -ENOEXEC, "syssize claims more");
}

Test(bzimage, trailing_bytes_after_syssize_are_not_loaded)
{
	struct bzi_request req = t_req(T_RAM, 0, "");
	struct bzi_plan plan;
	const char *why;

	t_build();
	/* A signed image carries its signature after the payload. */
	cr_assert_eq(t_plan(T_SIZE + 4096, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.kernel_len, T_PM_SIZE);
}

Test(bzimage, flag_refusals)
{
	t_build();
	t_img[0x211] = 0;
	t_refused(T_SIZE, -ENOEXEC, "LOADED_HIGH");
	t_build();
	st_le16(t_img + 0x236, 0x7e);
	t_refused(T_SIZE, -ENOEXEC, "XLF_KERNEL_64");
	t_build();
	st_le32(t_img + 0x230, 0);
	t_refused(T_SIZE, -ENOEXEC, "kernel_alignment");
	st_le32(t_img + 0x230, 0x300000);
	t_refused(T_SIZE, -ENOEXEC, "kernel_alignment");
	st_le32(t_img + 0x230, 0x80000000);
	t_refused(T_SIZE, -ENOEXEC, "kernel_alignment");
	t_build();
	t_img[0x234] = 0;
	st_le64(t_img + 0x258, 0);
	t_refused(T_SIZE, -ENOEXEC, "non-relocatable");
	st_le64(t_img + 0x258, 0x1000800);
	t_refused(T_SIZE, -ENOEXEC, "non-relocatable");
}

Test(bzimage, kernel_placement)
{
	struct bzi_request req;
	struct bzi_plan plan;
	const char *why;

	/* pref_address not aligned: the lowest aligned address >= 1 MiB. */
	t_build();
	st_le64(t_img + 0x258, 0x1100000);
	req = t_req(T_RAM, 0, "");
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.kernel_gpa, 0x200000);
	cr_assert_eq(plan.entry64, 0x200200);

	/* pref_address beyond RAM: the same. */
	t_build();
	st_le64(t_img + 0x258, 0x10000000);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.kernel_gpa, 0x200000);

	/* pref_address 0 and alignment 16 MiB. */
	t_build();
	st_le64(t_img + 0x258, 0);
	st_le32(t_img + 0x230, 0x1000000);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.kernel_gpa, 0x1000000);

	/* A fixed kernel goes exactly at pref_address, aligned or not. */
	t_build();
	t_img[0x234] = 0;
	st_le64(t_img + 0x258, 0x1234000);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.kernel_gpa, 0x1234000);
	cr_assert_eq(plan.entry64, 0x1234200);
}

Test(bzimage, kernel_bigger_than_ram)
{
	struct bzi_request req;
	struct bzi_plan plan;
	const char *why;

	t_build();
	req = t_req(72ull << 20, 0, "");	/* 16 MiB + 63.6 MiB > 72 MiB */
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.kernel_gpa, 0x200000);	/* pref too high: relocated */
	st_le32(t_img + 0x260, 0xfe00001);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOMEM);
	cr_assert(strstr(why, "does not fit"), "%s", why);
	/* A fixed kernel that does not fit at pref_address. */
	t_build();
	t_img[0x234] = 0;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOMEM);
	cr_assert(strstr(why, "fixed kernel"), "%s", why);
}

Test(bzimage, init_size_smaller_than_payload)
{
	struct bzi_request req = t_req(T_RAM, 0, "");
	struct bzi_plan plan;
	const char *why;

	t_build();
	st_le32(t_img + 0x260, 0x10);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.kernel_reserve, T_PM_SIZE);
	st_le32(t_img + 0x260, 0x1001);		/* rounded to pages */
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.kernel_reserve, 0x2000);
}

Test(bzimage, initrd_below_initrd_addr_max)
{
	struct bzi_request req = t_req(T_RAM, 0x5000, "");
	struct bzi_plan plan;
	const char *why;

	t_build();
	/* Last usable byte 0x8000fff: the initrd ends at 0x8001000. */
	st_le32(t_img + 0x22c, 0x8000fff);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.initrd_gpa, 0x8001000 - 0x5000);
	/* One byte less: the next page down. */
	st_le32(t_img + 0x22c, 0x8000ffe);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.initrd_gpa, 0x8000000 - 0x5000);
	/* Not a page multiple: the start is still page aligned. */
	req.initrd_size = 0x4321;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.initrd_gpa, (0x8000fff - 0x4321) & ~0xfffull);
	cr_assert_leq(plan.initrd_gpa + plan.initrd_size, 0x8000fffull);
}

Test(bzimage, initrd_avoids_the_kernel)
{
	struct bzi_request req = t_req(T_RAM, 0x100000, "");
	struct bzi_plan plan;
	const char *why;

	t_build();
	/* The limit falls inside [16 MiB, 16 MiB + init_size): go below. */
	st_le32(t_img + 0x22c, 0x2000000 - 1);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.initrd_gpa, T_PREF - 0x100000);
	/* Exactly the room between 1 MiB and the kernel. */
	req.initrd_size = T_PREF - 0x100000;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.initrd_gpa, 0x100000);
	/* One page more: nowhere. */
	req.initrd_size += 0x1000;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOMEM);
	cr_assert(strstr(why, "initrd"), "%s", why);
	cr_assert_eq(plan.initrd_gpa, 0);
}

Test(bzimage, initrd_refusals)
{
	struct bzi_request req = t_req(T_RAM, T_RAM, "");
	struct bzi_plan plan;
	const char *why;

	t_build();
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOMEM);
	req.initrd_size = UINT64_MAX;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOMEM);
	req.initrd_size = 1;
	st_le32(t_img + 0x22c, 0);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOMEM);
	cr_assert(strstr(why, "initrd_addr_max"), "%s", why);
}

Test(bzimage, initrd_skips_reserved_holes)
{
	/* RAM up to 128 MiB, a hole, RAM again [192, 224) MiB. */
	struct bzi_e820 map[] = {
		{ 0, 0x9fc00, BZI_E820_RAM },
		{ 0x9fc00, 0x60400, BZI_E820_RESERVED },
		{ 0x100000, 0x7f00000, BZI_E820_RAM },
		{ 0x8000000, 0x4000000, BZI_E820_RESERVED },
		{ 0xc000000, 0x2000000, BZI_E820_RAM },
	};
	struct bzi_request req = { map, 5, 0x3000000, "", 0 };	/* 48 MiB */
	struct bzi_plan plan;
	const char *why;

	t_build();
	/* Too big for the top entry: goes below the hole, above the kernel. */
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.initrd_gpa, 0x8000000 - 0x3000000);
	cr_assert_geq(plan.initrd_gpa, plan.kernel_gpa + plan.kernel_reserve);
	req.initrd_size = 0x1000;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.initrd_gpa, 0xe000000 - 0x1000);
}

Test(bzimage, cmdline_limits)
{
	static char line[BZI_CMDLINE_AREA + 2];
	struct bzi_request req = t_req(T_RAM, 0, line);
	struct bzi_plan plan;
	const char *why;

	t_build();
	memset(line, 'a', 2047);
	line[2047] = 0;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.cmdline_len, 2048);
	line[2047] = 'b';
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -EINVAL);
	cr_assert(strstr(why, "cmdline_size"), "%s", why);
	/* A kernel allowing more than the loader's area. */
	st_le32(t_img + 0x238, 0xffffffff);
	memset(line, 'c', sizeof(line) - 1);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -EINVAL);
	cr_assert(strstr(why, "loader's area"), "%s", why);
	line[BZI_CMDLINE_AREA - 1] = 0;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.cmdline_len, BZI_CMDLINE_AREA);
}

Test(bzimage, map_refusals)
{
	struct bzi_e820 map[BZI_E820_MAX + 1];
	struct bzi_request req = { map, 0, 0, "", 0 };
	struct bzi_plan plan;
	const char *why;

	t_build();
	cr_assert_eq(bzi_default_e820(T_RAM, map, 4), 4);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -EINVAL);
	req.nmap = BZI_E820_MAX + 1;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -EINVAL);
	req.map = NULL;
	req.nmap = 4;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -EINVAL);
	req.map = map;
	map[2].addr = 0x9f000;			/* overlaps the reserved entry */
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -EINVAL);
	cr_assert(strstr(why, "overlapping"), "%s", why);
	bzi_default_e820(T_RAM, map, 4);
	map[1].size = 0;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -EINVAL);
	bzi_default_e820(T_RAM, map, 4);
	map[3].size = UINT64_MAX;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -EINVAL);
	cr_assert(strstr(why, "wrapping"), "%s", why);
	/* No RAM under the zero page. */
	bzi_default_e820(T_RAM, map, 4);
	map[0].size = 0x7000;
	map[1].addr = 0x7000;
	map[1].size = 0x100000 - 0x7000;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOMEM);
	cr_assert(strstr(why, "below 1 MiB"), "%s", why);
	/* A reserved page inside the loader's area [0x8000, 0x20000). */
	map[0] = (struct bzi_e820){ 0, 0x9000, BZI_E820_RAM };
	map[1] = (struct bzi_e820){ 0x9000, 0x1000, BZI_E820_RESERVED };
	map[2] = (struct bzi_e820){ 0xa000, 0x95c00, BZI_E820_RAM };
	map[3] = (struct bzi_e820){ 0x100000, T_RAM - 0x100000, BZI_E820_RAM };
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOMEM);
	cr_assert(strstr(why, "below 1 MiB"), "%s", why);
	map[1].type = BZI_E820_RAM;		/* two RAM entries side by side: */
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOMEM);	/* one must hold it */
	map[0].size = 0x8000;
	map[1] = (struct bzi_e820){ 0x8000, 0x2000, BZI_E820_RESERVED };
	map[2] = (struct bzi_e820){ 0x20000, 0x7fc00, BZI_E820_RAM };
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOMEM);
}

Test(bzimage, default_e820)
{
	struct bzi_e820 m[4];

	cr_assert_eq(bzi_default_e820(T_RAM, m, 4), 4);
	cr_assert(m[0].addr == 0 && m[0].size == 0x9fc00 && m[0].type == 1);
	cr_assert(m[1].addr == 0x9fc00 && m[1].size == 0x60400 && m[1].type == 2);
	cr_assert(m[2].addr == 0x100000 && m[2].size == T_RAM - 0x100000 && m[2].type == 1);
	cr_assert(m[3].addr == 0xfec00000 && m[3].size == 0x1400000 && m[3].type == 2);
	cr_assert_eq(bzi_default_e820(T_RAM, m, 3), -EINVAL);
	cr_assert_eq(bzi_default_e820(0x1fffff, m, 4), -EINVAL);
	cr_assert_eq(bzi_default_e820(0xfec00001, m, 4), -EINVAL);
	cr_assert_eq(bzi_default_e820(0xfec00000, m, 4), 4);
}

Test(bzimage, zero_page_bytes)
{
	static uint8_t zp[BZI_ZERO_PAGE_SIZE];
	struct bzi_request req;
	struct bzi_plan plan;
	const char *why;

	t_build();
	st_le64(t_img + 0x250, 0xdeadbeef000);	/* setup_data from the image */
	t_img[0x211] |= 0x20;			/* QUIET_FLAG from the image */
	st_le32(t_img + 0x23c, 3);		/* hardware_subarch */
	req = t_req(T_RAM, 0x200000, "root=/dev/vda");
	req.acpi_rsdp = 0xe0000;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	memset(zp, 0xcc, sizeof(zp));
	cr_assert_eq(bzi_build_zero_page(zp, &plan, &req, &why), 0, "%s", why);

	/* The header is the image's, apart from the loader's fields. */
	for (uint32_t off = 0x1f1; off < 0x26c; off++) {
		bool written = (off >= 0x210 && off < 0x212) || (off >= 0x218 && off < 0x220) ||
			       (off >= 0x224 && off < 0x22c) || (off >= 0x23c && off < 0x248) ||
			       (off >= 0x250 && off < 0x258);

		if (!written)
			cr_assert_eq(zp[off], t_img[off], "byte %#x", off);
	}
	cr_assert_eq(zp[0x210], 0xff);				/* type_of_loader */
	cr_assert_eq(zp[0x211], 0x81);			/* LOADED_HIGH | CAN_USE_HEAP */
	cr_assert_eq(ld_le32(zp + 0x218), plan.initrd_gpa);	/* ramdisk_image */
	cr_assert_eq(ld_le32(zp + 0x21c), 0x200000);		/* ramdisk_size */
	cr_assert_eq(ld_le16(zp + 0x224), 0xfe00);		/* heap_end_ptr */
	cr_assert_eq(zp[0x226], 0);
	cr_assert_eq(zp[0x227], 0);
	cr_assert_eq(ld_le32(zp + 0x228), 0x20000);		/* cmd_line_ptr */
	cr_assert_eq(ld_le32(zp + 0x23c), 0);			/* hardware_subarch */
	cr_assert_eq(ld_le64(zp + 0x240), 0);
	cr_assert_eq(ld_le64(zp + 0x250), 0);			/* setup_data */
	cr_assert_eq(ld_le32(zp + 0x0c0), 0);			/* ext_ramdisk_image */
	cr_assert_eq(ld_le32(zp + 0x0c4), 0);			/* ext_ramdisk_size */
	cr_assert_eq(ld_le32(zp + 0x0c8), 0);			/* ext_cmd_line_ptr */
	cr_assert_eq(ld_le64(zp + 0x070), 0xe0000);		/* acpi_rsdp_addr */
	cr_assert_eq(zp[0x1ef], 0);				/* sentinel */

	/* E820: count at 0x1e8, 20-byte entries from 0x2d0. */
	cr_assert_eq(zp[0x1e8], 4);
	for (int i = 0; i < 4; i++) {
		const uint8_t *e = zp + 0x2d0 + 20 * i;

		cr_assert_eq(ld_le64(e), t_map[i].addr);
		cr_assert_eq(ld_le64(e + 8), t_map[i].size);
		cr_assert_eq(ld_le32(e + 16), t_map[i].type);
	}
	cr_assert_eq(ld_le32(zp + 0x2d0 + 20 * 2 + 16), 1);
	cr_assert_eq(ld_le64(zp + 0x2d0 + 20 * 3), 0xfec00000);

	/* Everything else is zero. */
	for (uint32_t off = 0; off < BZI_ZERO_PAGE_SIZE; off++) {
		bool set = (off >= 0x1f1 && off < 0x26c) || (off >= 0x2d0 && off < 0x2d0 + 80) ||
			   off == 0x1e8 || (off >= 0x70 && off < 0x78);

		if (!set)
			cr_assert_eq(zp[off], 0, "byte %#x", off);
	}
}

Test(bzimage, zero_page_long_e820)
{
	static uint8_t zp[BZI_ZERO_PAGE_SIZE];
	static struct bzi_e820 map[BZI_E820_MAX];
	struct bzi_request req = { map, BZI_E820_MAX, 0, "", 0 };
	struct bzi_plan plan;
	const char *why;

	t_build();
	map[0] = (struct bzi_e820){ 0, 0x9fc00, BZI_E820_RAM };
	map[1] = (struct bzi_e820){ 0x100000, 0x8000000, BZI_E820_RAM };
	for (int i = 2; i < BZI_E820_MAX; i++)
		map[i] = (struct bzi_e820){ 0x10000000ull + 0x1000ull * i, 0x1000,
					    BZI_E820_RESERVED + i % 4 };
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(bzi_build_zero_page(zp, &plan, &req, &why), 0, "%s", why);
	cr_assert_eq(zp[0x1e8], 128);
	cr_assert_eq(ld_le64(zp + 0x2d0 + 20 * 127), 0x10000000ull + 0x1000ull * 127);
	cr_assert_eq(ld_le32(zp + 0x2d0 + 20 * 127 + 16), BZI_E820_RESERVED + 127 % 4);
	req.nmap = 0;
	cr_assert_eq(bzi_build_zero_page(zp, &plan, &req, &why), -EINVAL);
	req.nmap = BZI_E820_MAX;
	plan.hdr_len = 0;
	cr_assert_eq(bzi_build_zero_page(zp, &plan, &req, &why), -EINVAL);
}

/* ---- 64-bit entry state ---- */

/* Translate va through the 4-level tables in area (seen at 0x8000). */
static uint64_t t_walk(const uint8_t *area, uint64_t cr3, uint64_t va)
{
	uint64_t table = cr3, e = 0;

	for (int level = 3; level >= 1; level--) {
		uint64_t idx = (va >> (12 + 9 * level)) & 511;

		cr_assert(table >= 0x8000 && table < 0xf000, "table %#lx", (unsigned long)table);
		e = ld_le64(area + (table - 0x8000) + 8 * idx);
		cr_assert_eq(e & 3, 3, "entry not present+writable at level %d", level);
		if (level == 1) {
			cr_assert(e & 0x80, "PD entry without PS");
			return (e & ~0x1fffffull & 0xffffffffff000ull) | (va & 0x1fffff);
		}
		cr_assert_eq(e & 0x80, 0);
		table = e & 0xffffffffff000ull;
	}
	return ~0ull;
}

Test(bzimage, boot_tables)
{
	static uint8_t area[BZI_LOADER_AREA_END - BZI_LOADER_AREA];
	struct bzi_request req = t_req(T_RAM, 0x300000, "console=ttyS0");
	struct bzi_entry_regs r;
	struct bzi_plan plan;
	const char *why;
	const uint64_t probes[] = { 0, 0x7000, 0x20000, 0x1000000, 0x1000200, 0x40000000,
				    0x7fffffff, 0xfee00000, 0xffffffff };

	t_build();
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	memset(area, 0xee, sizeof(area));
	cr_assert_eq(bzi_build_boot_tables(area, 0x6fff, &plan, &r), -ENOSPC);
	cr_assert_eq(bzi_build_boot_tables(NULL, sizeof(area), &plan, &r), -ENOSPC);
	cr_assert_eq(area[0], 0xee);
	cr_assert_eq(bzi_build_boot_tables(area, 0x7000, &plan, &r), 0);
	cr_assert_eq(area[0x7000], 0xee, "wrote past the tables");

	/* GDT: two null descriptors, then __BOOT_CS and __BOOT_DS. */
	cr_assert_eq(ld_le64(area), 0);
	cr_assert_eq(ld_le64(area + 8), 0);
	cr_assert_eq(ld_le64(area + 0x10), 0x00af9b000000ffffull);
	cr_assert_eq(ld_le64(area + 0x18), 0x00cf93000000ffffull);
	/* PML4 at 0x9000 -> PDPT 0xa000 -> PDs 0xb000..0xe000. */
	cr_assert_eq(ld_le64(area + 0x1000), 0xa003);
	cr_assert_eq(ld_le64(area + 0x1008), 0);
	for (int g = 0; g < 4; g++)
		cr_assert_eq(ld_le64(area + 0x2000 + 8 * g), 0xb003ull + 0x1000ull * g);
	cr_assert_eq(ld_le64(area + 0x2000 + 32), 0);
	cr_assert_eq(ld_le64(area + 0x3000), 0x83);
	cr_assert_eq(ld_le64(area + 0x3008), 0x200083);
	cr_assert_eq(ld_le64(area + 0x6ff8), 0xffe00083);

	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		cr_assert_eq(t_walk(area, r.cr3, probes[i]), probes[i]);
	cr_assert_eq(t_walk(area, r.cr3, plan.initrd_gpa + plan.initrd_size - 1),
		     plan.initrd_gpa + plan.initrd_size - 1);
	cr_assert_eq(t_walk(area, r.cr3, plan.kernel_gpa + plan.kernel_reserve - 1),
		     plan.kernel_gpa + plan.kernel_reserve - 1);

	cr_assert_eq(r.rip, plan.entry64);
	cr_assert_eq(r.rsi, 0x7000);
	cr_assert_eq(r.rflags, 0x2, "IF clear");
	cr_assert_eq(r.cr0, 0x80000031);		/* PG, NE, ET, PE */
	cr_assert_eq(r.cr3, 0x9000);
	cr_assert_eq(r.cr4, 0x20);			/* PAE */
	cr_assert_eq(r.efer, 0x500);			/* LMA, LME */
	cr_assert_eq(r.gdt_base, 0x8000);
	cr_assert_eq(r.gdt_limit, 0x1f);
	cr_assert_eq(r.cs, 0x10);
	cr_assert_eq(r.ds, 0x18);
	cr_assert_eq(r.cs_desc, ld_le64(area + 0x10));
	cr_assert_eq(r.ds_desc, ld_le64(area + 0x18));
}

/* ---- mutation loop ---- */

static uint64_t t_rng = 0x9e3779b97f4a7c15ull;

static uint64_t t_rand(void)
{
	t_rng ^= t_rng << 13;
	t_rng ^= t_rng >> 7;
	t_rng ^= t_rng << 17;
	return t_rng;
}

static bool t_inside_one_ram(const struct bzi_request *req, uint64_t a, uint64_t len)
{
	for (int i = 0; i < req->nmap; i++)
		if (req->map[i].type == BZI_E820_RAM && a >= req->map[i].addr &&
		    a + len <= req->map[i].addr + req->map[i].size)
			return len > 0;
	return false;
}

static bool t_disjoint(uint64_t a, uint64_t al, uint64_t b, uint64_t bl)
{
	return a + al <= b || b + bl <= a;
}

static void t_check_plan(const struct bzi_plan *p, const struct bzi_request *req, size_t size)
{
	cr_assert(p->kernel_src_off + p->kernel_len <= size);
	cr_assert(p->kernel_reserve >= p->kernel_len);
	cr_assert(t_inside_one_ram(req, p->kernel_gpa, p->kernel_reserve));
	cr_assert(p->kernel_gpa + p->kernel_reserve <= BZI_4G);
	cr_assert(p->entry64 >= p->kernel_gpa && p->entry64 < p->kernel_gpa + p->kernel_len);
	cr_assert(t_inside_one_ram(req, p->zero_page_gpa, BZI_ZERO_PAGE_SIZE));
	cr_assert(t_inside_one_ram(req, p->cmdline_gpa, p->cmdline_len));
	cr_assert(t_disjoint(p->kernel_gpa, p->kernel_reserve, p->zero_page_gpa, 4096));
	cr_assert(t_disjoint(p->kernel_gpa, p->kernel_reserve, p->cmdline_gpa, p->cmdline_len));
	if (p->hdr.relocatable_kernel)
		cr_assert(p->kernel_gpa % p->hdr.kernel_alignment == 0);
	if (!p->initrd_size)
		return;
	cr_assert(t_inside_one_ram(req, p->initrd_gpa, p->initrd_size));
	cr_assert(p->initrd_gpa % 4096 == 0);
	cr_assert(p->initrd_gpa + p->initrd_size - 1 <= p->hdr.initrd_addr_max);
	cr_assert(t_disjoint(p->kernel_gpa, p->kernel_reserve, p->initrd_gpa, p->initrd_size));
	cr_assert(t_disjoint(p->zero_page_gpa, 4096, p->initrd_gpa, p->initrd_size));
	cr_assert(t_disjoint(p->cmdline_gpa, p->cmdline_len, p->initrd_gpa, p->initrd_size));
}

static void t_mutate(size_t *size)
{
	static const uint32_t hot[] = { 0x1f1, 0x1f4, 0x1f5, 0x1f6, 0x1f7, 0x1fe, 0x201, 0x206,
					0x211, 0x22c, 0x22f, 0x230, 0x232, 0x234, 0x236,
					0x238, 0x239, 0x258, 0x25a, 0x25b, 0x260, 0x262,
					0x263 };
	int edits = 1 + (int)(t_rand() % 4);

	for (int k = 0; k < edits; k++) {
		uint64_t r = t_rand();
		uint32_t off = r & 1 ? hot[(r >> 8) % (sizeof(hot) / sizeof(hot[0]))]
				     : 0x1f0 + (uint32_t)((r >> 8) % 0xa0);

		if (r & 2)
			t_img[off] = (uint8_t)(r >> 32);		/* any byte */
		else
			t_img[off] ^= (uint8_t)(1u << ((r >> 40) % 8));	/* one bit */
	}
	if (t_rand() % 8 == 0)
		*size = (size_t)(t_rand() % (T_SIZE + 1));
}

Test(bzimage, mutations)
{
	static const uint64_t rams[] = { 2ull << 20, 32ull << 20, 96ull << 20, T_RAM,
					 0xfec00000ull };
	static uint8_t zp[BZI_ZERO_PAGE_SIZE];
	int accepted = 0, refused = 0;

	for (int iter = 0; iter < 20000; iter++) {
		struct bzi_request req = t_req(rams[t_rand() % 5], 0, "console=ttyS0");
		struct bzi_plan plan;
		size_t size = T_SIZE + 4096 * (t_rand() % 2);
		const char *why;
		int rc;

		t_build();
		t_mutate(&size);
		req.initrd_size = t_rand() % 4 ? t_rand() % (64ull << 20) : 0;
		rc = t_plan(size, &req, &plan, &why);
		if (rc) {
			cr_assert(rc == -ENOEXEC || rc == -EINVAL || rc == -ENOMEM, "rc %d", rc);
			cr_assert(why && *why);
			refused++;
			continue;
		}
		accepted++;
		t_check_plan(&plan, &req, size);
		cr_assert_eq(bzi_build_zero_page(zp, &plan, &req, &why), 0);
		cr_assert_eq(ld_le32(zp + 0x228), plan.cmdline_gpa);
	}
	cr_assert(accepted > 1000 && refused > 1000, "accepted %d refused %d", accepted,
		  refused);
}
