/* Unit tests and mutation fuzz test for kernel/lib/multiboot.c. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/elf.h"
#include "kernel/lib/byteorder.h"
#include "kernel/lib/multiboot.h"

#define MB_T_SIZE	0x4000
#define MB_T_RAM	(64ull << 20)
#define MB_T_HDR_OFF	0x1000		/* header at the start of .text */

/* A multiboot header of 12, 32 or 48 bytes with a correct checksum. */
static void mb_t_header(uint8_t *p, uint32_t flags, const uint32_t *aout)
{
	st_le32(p, MB_HEADER_MAGIC);
	st_le32(p + 4, flags);
	st_le32(p + 8, (uint32_t)-(MB_HEADER_MAGIC + flags));
	if (aout)
		for (int k = 0; k < 5; k++)
			st_le32(p + 12 + 4 * k, aout[k]);
}

/*
 * An ELF32 kernel: text RX at file 0x1000 holding the multiboot header,
 * data RW with a bss tail.  vbase is the link address; paddr is 1 MiB.
 */
static size_t mb_t_elf(uint8_t *buf, uint32_t vbase, uint32_t flags)
{
	struct elf32_ehdr eh = {
		.e_ident = { 0x7f, 'E', 'L', 'F', ELF_CLASS32, ELF_DATA2LSB, ELF_EV_CURRENT },
		.e_type = ELF_ET_EXEC, .e_machine = ELF_EM_386,
		.e_version = ELF_EV_CURRENT, .e_entry = vbase + 0x20,
		.e_phoff = sizeof(eh), .e_ehsize = sizeof(eh),
		.e_phentsize = sizeof(struct elf32_phdr), .e_phnum = 2,
	};
	struct elf32_phdr ph[2] = {
		{ ELF_PT_LOAD, 0x1000, vbase, 0x100000, 0x200, 0x200,
		  ELF_PF_R | ELF_PF_X, 0x1000 },
		{ ELF_PT_LOAD, 0x2000, vbase + 0x2000, 0x102000, 0x100, 0x3000,
		  ELF_PF_R | ELF_PF_W, 0x1000 },
	};

	memset(buf, 0, MB_T_SIZE);
	memcpy(buf, &eh, sizeof(eh));
	memcpy(buf + sizeof(eh), ph, sizeof(ph));
	mb_t_header(buf + MB_T_HDR_OFF, flags, NULL);
	memset(buf + 0x1020, 0xf4, 0x10);	/* "code" at the entry */
	memset(buf + 0x2000, 0xda, 0x100);	/* data */
	return 0x2100;
}

/*
 * A flat binary with the a.out kludge: header at file 0x100, loaded at
 * 0x200000 from file offset 0, 0x2000 bytes, bss to 0x205000.
 */
#define MB_T_AOUT_SIZE	0x3000
static const uint32_t mb_t_aout_fields[5] = {
	0x200100, 0x200000, 0x202000, 0x205000, 0x200200,
};

static size_t mb_t_aout(uint8_t *buf, const uint32_t *fields)
{
	memset(buf, 0, MB_T_SIZE);
	for (size_t k = 0; k < MB_T_AOUT_SIZE; k++)
		buf[k] = (uint8_t)(k * 7);
	mb_t_header(buf + 0x100, MB_HF_MEMINFO | MB_HF_AOUT_KLUDGE, fields);
	return MB_T_AOUT_SIZE;
}

/* Plan from a copy ending where its heap block ends, so ASan sees overreads. */
static int mb_t_plan(const uint8_t *buf, size_t size, uint64_t ram, struct mb_load_plan *plan,
		     const char **why)
{
	static uint8_t *block;
	uint8_t *copy;

	if (!block)
		block = malloc(MB_T_SIZE);
	if (!block || size > MB_T_SIZE)
		cr_assert_fail("bad test setup");
	copy = block + MB_T_SIZE - size;
	memmove(copy, buf, size);
	*why = NULL;
	return mb_plan_load(copy, size, ram, plan, why);
}

Test(multiboot, find_header)
{
	static uint8_t buf[MB_T_SIZE];
	struct mb_header h;
	const char *why = NULL;
	size_t n = mb_t_aout(buf, mb_t_aout_fields);

	cr_assert_eq(mb_find_header(buf, n, &h, &why), 0, "%s", why);
	cr_assert_eq(h.offset, 0x100);
	cr_assert_eq(h.magic, MB_HEADER_MAGIC);
	cr_assert_eq(h.flags, MB_HF_MEMINFO | MB_HF_AOUT_KLUDGE);
	cr_assert_eq(h.header_addr, 0x200100);
	cr_assert_eq(h.load_addr, 0x200000);
	cr_assert_eq(h.load_end_addr, 0x202000);
	cr_assert_eq(h.bss_end_addr, 0x205000);
	cr_assert_eq(h.entry_addr, 0x200200);
	cr_assert_eq(h.width, 0);

	/* Video fields are read when flag 2 is set. */
	mb_t_header(buf + 0x100, MB_HF_VIDEO, NULL);
	st_le32(buf + 0x100 + 36, 1024);
	st_le32(buf + 0x100 + 40, 768);
	cr_assert_eq(mb_find_header(buf, n, &h, &why), 0, "%s", why);
	cr_assert_eq(h.width, 1024);
	cr_assert_eq(h.height, 768);
	cr_assert_eq(h.load_addr, 0);

	/* Optional flags (16-31 other than 16) are ignored. */
	mb_t_header(buf + 0x100, MB_HF_PAGE_ALIGN | (1u << 20), NULL);
	cr_assert_eq(mb_find_header(buf, n, &h, &why), 0, "%s", why);

	/* The last aligned position inside 8192 bytes is searched ... */
	memset(buf, 0, MB_T_SIZE);
	mb_t_header(buf + MB_SEARCH_LIMIT - 12, 0, NULL);
	cr_assert_eq(mb_find_header(buf, MB_T_SIZE, &h, &why), 0, "%s", why);
	cr_assert_eq(h.offset, MB_SEARCH_LIMIT - 12);
	/* ... and the first one that passes the checksum wins. */
	st_le32(buf + 0x10, MB_HEADER_MAGIC);		/* bad checksum */
	mb_t_header(buf + 0x20, MB_HF_MEMINFO, NULL);
	cr_assert_eq(mb_find_header(buf, MB_T_SIZE, &h, &why), 0, "%s", why);
	cr_assert_eq(h.offset, 0x20);
}

Test(multiboot, header_refusals)
{
	static uint8_t buf[MB_T_SIZE];
	struct mb_header h;
	const char *why = NULL;

	memset(buf, 0, MB_T_SIZE);
	cr_assert_eq(mb_find_header(buf, MB_T_SIZE, &h, &why), -ENOEXEC);
	cr_assert_str_eq(why, "no multiboot header");
	cr_assert_eq(mb_find_header(NULL, 100, &h, &why), -ENOEXEC);
	cr_assert_eq(mb_find_header(buf, 0, &h, NULL), -ENOEXEC);

	/* Bad checksum. */
	mb_t_header(buf + 0x40, 0, NULL);
	st_le32(buf + 0x48, ld_le32(buf + 0x48) + 1);
	cr_assert_eq(mb_find_header(buf, MB_T_SIZE, &h, &why), -ENOEXEC);
	cr_assert_str_eq(why, "no multiboot header");

	/* Unaligned, or past the first 8192 bytes. */
	memset(buf, 0, MB_T_SIZE);
	mb_t_header(buf + 0x42, 0, NULL);
	mb_t_header(buf + MB_SEARCH_LIMIT, 0, NULL);
	mb_t_header(buf + MB_SEARCH_LIMIT - 8, 0, NULL);	/* straddles the limit */
	cr_assert_eq(mb_find_header(buf, MB_T_SIZE, &h, &why), -ENOEXEC);
	cr_assert_str_eq(why, "no multiboot header");

	/* Cut by the end of the file. */
	memset(buf, 0, MB_T_SIZE);
	mb_t_header(buf + 0x40, 0, NULL);
	cr_assert_eq(mb_find_header(buf, 0x4b, &h, &why), -ENOEXEC);
	cr_assert_eq(mb_find_header(buf, 0x4c, &h, &why), 0);

	/* An a.out header needs 32 bytes, a video one 48. */
	mb_t_header(buf + 0x40, MB_HF_AOUT_KLUDGE, mb_t_aout_fields);
	cr_assert_eq(mb_find_header(buf, 0x5f, &h, &why), -ENOEXEC);
	cr_assert_str_eq(why, "multiboot header truncated");
	cr_assert_eq(mb_find_header(buf, 0x60, &h, &why), 0);
	mb_t_header(buf + MB_SEARCH_LIMIT - 40, MB_HF_VIDEO, NULL);
	memset(buf + 0x40, 0, 12);
	cr_assert_eq(mb_find_header(buf, MB_T_SIZE, &h, &why), -ENOEXEC);
	cr_assert_str_eq(why, "multiboot header truncated");

	/* Unknown required flags, one at a time. */
	for (int bit = 3; bit < 16; bit++) {
		memset(buf, 0, MB_T_SIZE);
		mb_t_header(buf, MB_HF_MEMINFO | (1u << bit), NULL);
		cr_assert_eq(mb_find_header(buf, MB_T_SIZE, &h, &why), -ENOEXEC, "bit %d", bit);
		cr_assert_str_eq(why, "multiboot header requires unsupported features");
		cr_assert_eq(h.magic, 0);
	}
}

Test(multiboot, plan_elf)
{
	static uint8_t buf[MB_T_SIZE];
	struct mb_load_plan plan;
	const char *why;
	size_t n = mb_t_elf(buf, 0x100000, MB_HF_PAGE_ALIGN | MB_HF_MEMINFO);

	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.entry, 0x100020);
	cr_assert_eq(plan.header_flags, MB_HF_PAGE_ALIGN | MB_HF_MEMINFO);
	cr_assert_eq(plan.ncopy, 2);
	cr_assert_eq(plan.copy[0].dst_gpa, 0x100000);
	cr_assert_eq(plan.copy[0].src_off, 0x1000);
	cr_assert_eq(plan.copy[0].len, 0x200);
	cr_assert_eq(plan.copy[1].dst_gpa, 0x102000);
	cr_assert_eq(plan.copy[1].src_off, 0x2000);
	cr_assert_eq(plan.copy[1].len, 0x100);
	cr_assert_eq(plan.nzero, 1);
	cr_assert_eq(plan.zero[0].dst_gpa, 0x102100);
	cr_assert_eq(plan.zero[0].len, 0x2f00);
	cr_assert_eq(plan.lo, 0x100000);
	cr_assert_eq(plan.hi, 0x105000);

	/* Exactly enough RAM, then one byte short. */
	cr_assert_eq(mb_t_plan(buf, n, 0x105000, &plan, &why), 0, "%s", why);
	cr_assert_eq(mb_t_plan(buf, n, 0x104fff, &plan, &why), -ENOEXEC);
	cr_assert_str_eq(why, "segment beyond guest RAM");
	cr_assert_eq(plan.ncopy, 0);
	cr_assert_eq(plan.entry, 0);
	cr_assert_eq(mb_t_plan(buf, n, 0xfffff, &plan, &why), -EINVAL);
	cr_assert_str_eq(why, "guest RAM below 1 MiB");
}

Test(multiboot, plan_elf_higher_half_entry)
{
	static uint8_t buf[MB_T_SIZE];
	struct mb_load_plan plan;
	struct mb_entry_state st;
	const char *why;
	size_t n = mb_t_elf(buf, 0xc0100000u, MB_HF_MEMINFO);

	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), 0, "%s", why);
	/* Paging is off at entry: the entry must be physical. */
	cr_assert_eq(plan.entry, 0x100020);
	cr_assert_eq(plan.copy[0].dst_gpa, 0x100000);
	mb_entry_regs(&plan, MB_INFO_GPA, &st);
	cr_assert_eq(st.eip, 0x100020);
	cr_assert_eq(st.eax, MB_BOOTLOADER_MAGIC);
	cr_assert_eq(st.ebx, MB_INFO_GPA);
}

Test(multiboot, plan_elf_refusals)
{
	static uint8_t buf[MB_T_SIZE];
	struct elf32_phdr *ph = (struct elf32_phdr *)(buf + sizeof(struct elf32_ehdr));
	struct mb_load_plan plan;
	const char *why;
	size_t n;

	/* Not ELF and no kludge. */
	n = mb_t_elf(buf, 0x100000, 0);
	buf[1] = 'e';
	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), -ENOEXEC);
	cr_assert_str_eq(why, "not ELF and no a.out kludge in the multiboot header");
	/* ELF64 or x86-64 is not a multiboot 1 kernel. */
	n = mb_t_elf(buf, 0x100000, 0);
	((struct elf32_ehdr *)buf)->e_machine = ELF_EM_X86_64;
	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), -ENOEXEC);
	cr_assert_str_eq(why, "not i386");
	/* Segments into the info page, below 4 KiB, into the legacy hole. */
	n = mb_t_elf(buf, 0x100000, 0);
	ph[1].p_paddr = MB_INFO_GPA - 0x2000;
	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), -ENOEXEC);
	cr_assert_str_eq(why, "segment overlaps the boot information area");
	ph[1].p_paddr = MB_INFO_GPA + MB_INFO_SIZE;		/* just above: fine */
	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), 0, "%s", why);
	ph[1].p_paddr = 0x6000;				/* ends at 0x9000: fine */
	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), 0, "%s", why);
	ph[1].p_paddr = 0x800;
	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), -ENOEXEC);
	cr_assert_str_eq(why, "segment below 4 KiB");
	ph[1].p_paddr = 0xb8000;
	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), -ENOEXEC);
	cr_assert_str_eq(why, "segment in the legacy hole below 1 MiB");
	ph[1].p_paddr = MB_LOW_END - 0x3000 + 1;
	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), -ENOEXEC);
	ph[1].p_paddr = MB_LOW_END - 0x3000;
	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), 0, "%s", why);
	/* The multiboot header must be in the first 8 KiB even for ELF. */
	n = mb_t_elf(buf, 0x100000, 0);
	memset(buf + MB_T_HDR_OFF, 0, 12);
	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), -ENOEXEC);
	cr_assert_str_eq(why, "no multiboot header");
}

Test(multiboot, plan_aout)
{
	static uint8_t buf[MB_T_SIZE];
	struct mb_load_plan plan;
	const char *why;
	size_t n = mb_t_aout(buf, mb_t_aout_fields);

	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.entry, 0x200200);
	cr_assert_eq(plan.ncopy, 1);
	cr_assert_eq(plan.copy[0].dst_gpa, 0x200000);
	cr_assert_eq(plan.copy[0].src_off, 0);
	cr_assert_eq(plan.copy[0].len, 0x2000);
	cr_assert_eq(plan.nzero, 1);
	cr_assert_eq(plan.zero[0].dst_gpa, 0x202000);
	cr_assert_eq(plan.zero[0].len, 0x3000);
	cr_assert_eq(plan.lo, 0x200000);
	cr_assert_eq(plan.hi, 0x205000);

	/* load_end_addr 0: the rest of the file; bss_end_addr 0: no bss.
	 * load_addr after the file start: loading begins mid-file. */
	const uint32_t f2[5] = { 0x300100, 0x300080, 0, 0, 0x300080 };

	n = mb_t_aout(buf, f2);
	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.copy[0].dst_gpa, 0x300080);
	cr_assert_eq(plan.copy[0].src_off, 0x80);
	cr_assert_eq(plan.copy[0].len, MB_T_AOUT_SIZE - 0x80);
	cr_assert_eq(plan.nzero, 0);
	cr_assert_eq(plan.entry, 0x300080);
}

struct mb_t_aout_case {
	uint32_t f[5];
	const char *why;
};

Test(multiboot, plan_aout_refusals)
{
	static const struct mb_t_aout_case cases[] = {
		{ { 0x200100, 0x200101, 0x202000, 0, 0x200200 }, "load_addr above header_addr" },
		{ { 0x200100, 0x1fff00, 0x202000, 0, 0x200200 }, "load_addr before the start of the file" },
		{ { 0x200100, 0x200000, 0x1fffff, 0, 0x200200 }, "load_end_addr below load_addr" },
		{ { 0x200100, 0x200000, 0x203001, 0, 0x200200 }, "load area beyond the end of the file" },
		{ { 0x200100, 0x200000, 0x202000, 0x201fff, 0x200200 }, "bss_end_addr below the load end" },
		{ { 0x200100, 0x200000, 0x202000, 0, 0x202000 }, "entry point outside the loaded image" },
		{ { 0x200100, 0x200000, 0x200000, 0x203000, 0x200000 }, "entry point outside the loaded image" },
		{ { 0x9100, 0x9000, 0x9800, 0, 0x9000 }, "segment overlaps the boot information area" },
		{ { 0x8100, 0x8000, 0, 0, 0x8000 }, "segment overlaps the boot information area" },
		{ { 0x8100, 0x8000, 0x8800, 0x9001, 0x8000 }, "segment overlaps the boot information area" },
		{ { 0x900, 0x800, 0x1800, 0, 0x1000 }, "segment below 4 KiB" },
		{ { 0x9fb00, 0x9fa00, 0x9fc00, 0x9fc01, 0x9fa00 }, "segment in the legacy hole below 1 MiB" },
		{ { 0x4000100, 0x4000000, 0, 0, 0x4000000 }, "segment beyond guest RAM" },
		{ { 0x200100, 0x200000, 0x202000, 0x4000001, 0x200000 }, "segment beyond guest RAM" },
		{ { 0xfffff100, 0xfffff000, 0, 0, 0xfffff000 }, "segment beyond guest RAM" },
	};
	static uint8_t buf[MB_T_SIZE];

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct mb_load_plan plan;
		const char *why;
		size_t n = mb_t_aout(buf, cases[k].f);

		cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), -ENOEXEC, "case %zu", k);
		cr_assert_str_eq(why, cases[k].why, "case %zu", k);
		cr_assert_eq(plan.ncopy + plan.nzero, 0);
	}
	/* Just fitting at the top of a 4 GiB guest and under 1 MiB. */
	static const uint32_t top[5] = { 0xffffd100, 0xffffd000, 0, 0, 0xffffd000 };
	static const uint32_t low[5] = { 0xa100, 0xa000, 0, 0x9fc00, 0xa000 };
	struct mb_load_plan plan;
	const char *why;
	size_t n = mb_t_aout(buf, top);

	cr_assert_eq(mb_t_plan(buf, n, 1ull << 40, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.hi, 1ull << 32);
	n = mb_t_aout(buf, low);
	cr_assert_eq(mb_t_plan(buf, n, MB_T_RAM, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.zero[0].len, 0x9fc00 - 0xd000);
}

/* ---- Boot information ---- */

#define MB_T_CMD	"console=ttyS0 quiet"
#define MB_T_NAME	"Tern"

static void mb_t_check_mmap_entry(const uint8_t *e, uint64_t addr, uint64_t len, uint32_t type)
{
	cr_assert_eq(ld_le32(e), 20);
	cr_assert_eq(ld_le64(e + 4), addr);
	cr_assert_eq(ld_le64(e + 12), len);
	cr_assert_eq(ld_le32(e + 20), type);
}

Test(multiboot, info_bytes)
{
	static uint8_t area[MB_INFO_SIZE];
	uint32_t gpa = 0, mmap, cmd, name;
	const uint8_t *e;

	memset(area, 0xee, sizeof(area));
	cr_assert_eq(mb_build_info(area, sizeof(area), MB_INFO_GPA, MB_T_RAM, MB_T_CMD,
				   MB_T_NAME, &gpa), 0);
	cr_assert_eq(gpa, MB_INFO_GPA);
	/* Offsets from the spec's table in section 3.3. */
	cr_assert_eq(ld_le32(area + 0), (1u << 0) | (1u << 2) | (1u << 6) | (1u << 9));
	cr_assert_eq(ld_le32(area + 4), 639);
	cr_assert_eq(ld_le32(area + 8), (uint32_t)((MB_T_RAM - 0x100000) / 1024));
	cr_assert_eq(ld_le32(area + 12), 0);		/* boot_device */
	cr_assert_eq(ld_le32(area + 20), 0);		/* mods_count */
	cr_assert_eq(ld_le32(area + 44), 4 * 24);	/* mmap_length */
	mmap = ld_le32(area + 48);
	cmd = ld_le32(area + 16);
	name = ld_le32(area + 64);
	for (size_t o = 0; o < 116; o += 4)
		if (o != 0 && o != 4 && o != 8 && o != 16 && o != 44 && o != 48 && o != 64)
			cr_assert_eq(ld_le32(area + o), 0, "offset %zu", o);
	/* Everything inside the area, and the map after the info. */
	cr_assert_geq(mmap, MB_INFO_GPA + 116);
	cr_assert_leq(mmap + 96, MB_INFO_GPA + MB_INFO_SIZE);
	e = area + (mmap - MB_INFO_GPA);
	mb_t_check_mmap_entry(e, 0, 0x9fc00, 1);
	mb_t_check_mmap_entry(e + 24, 0x9fc00, 0x400, 2);
	mb_t_check_mmap_entry(e + 48, 0xf0000, 0x10000, 2);
	mb_t_check_mmap_entry(e + 72, 0x100000, MB_T_RAM - 0x100000, 1);
	cr_assert_geq(cmd, mmap + 96);
	cr_assert_str_eq((const char *)area + (cmd - MB_INFO_GPA), MB_T_CMD);
	cr_assert_gt(name, cmd + strlen(MB_T_CMD));
	cr_assert_str_eq((const char *)area + (name - MB_INFO_GPA), MB_T_NAME);
	/* The rest of the area was cleared. */
	for (size_t o = name - MB_INFO_GPA + sizeof(MB_T_NAME); o < sizeof(area); o++)
		cr_assert_eq(area[o], 0, "offset %zu", o);
	/* The struct view agrees with the byte view. */
	struct mb_info info;

	memcpy(&info, area, sizeof(info));
	cr_assert_eq(info.mmap_addr, mmap);
	cr_assert_eq(info.boot_loader_name, name);
}

Test(multiboot, info_options_and_limits)
{
	static uint8_t area[MB_INFO_SIZE];
	uint32_t gpa;
	/* 116 -> 120 (aligned) + 96 map = 216; cmd 20 -> 236; name at 240 + 5. */
	const size_t need = 245;

	cr_assert_eq(mb_build_info(area, need, 0x9000, MB_T_RAM, MB_T_CMD, MB_T_NAME, &gpa), 0);
	memset(area, 0x11, sizeof(area));
	cr_assert_eq(mb_build_info(area, need - 1, 0x9000, MB_T_RAM, MB_T_CMD, MB_T_NAME, &gpa),
		     -ENOSPC);
	for (size_t o = 0; o < need - 1; o++)
		cr_assert_eq(area[o], 0);
	cr_assert_eq(area[need - 1], 0x11);		/* nothing past the area */
	cr_assert_eq(mb_build_info(area, 100, 0x9000, MB_T_RAM, NULL, NULL, &gpa), -ENOSPC);

	/* Without strings, without the high RAM entry. */
	cr_assert_eq(mb_build_info(area, sizeof(area), 0x9000, 0x100000, NULL, NULL, &gpa), 0);
	cr_assert_eq(ld_le32(area), (1u << 0) | (1u << 6));
	cr_assert_eq(ld_le32(area + 8), 0);
	cr_assert_eq(ld_le32(area + 16), 0);
	cr_assert_eq(ld_le32(area + 44), 3 * 24);
	cr_assert_eq(ld_le32(area + 64), 0);
	/* An empty command line is still a command line. */
	cr_assert_eq(mb_build_info(area, sizeof(area), 0x9000, 0x200000, "", NULL, &gpa), 0);
	cr_assert_eq(ld_le32(area), (1u << 0) | (1u << 2) | (1u << 6));
	cr_assert_eq(area[ld_le32(area + 16) - 0x9000], 0);
	cr_assert_eq(ld_le32(area + 8), 1024);

	/* Huge RAM: mem_upper saturates, the map keeps 64-bit lengths. */
	cr_assert_eq(mb_build_info(area, sizeof(area), 0x9000, 1ull << 43, NULL, NULL, &gpa), 0);
	cr_assert_eq(ld_le32(area + 8), UINT32_MAX);
	cr_assert_eq(ld_le64(area + ld_le32(area + 48) - 0x9000 + 72 + 12),
		     (1ull << 43) - 0x100000);

	/* Bad arguments. */
	cr_assert_eq(mb_build_info(area, sizeof(area), 0x9000, 0xfffff, NULL, NULL, &gpa), -EINVAL);
	cr_assert_eq(mb_build_info(NULL, 0, 0x9000, MB_T_RAM, NULL, NULL, &gpa), -EINVAL);
	cr_assert_eq(mb_build_info(area, 0x1000, 0xfffff000u, MB_T_RAM, NULL, NULL, &gpa), 0);
	cr_assert_eq(gpa, 0xfffff000u);
	cr_assert_eq(mb_build_info(area, 0x1000, 0xfffff001u, MB_T_RAM, NULL, NULL, &gpa), -EINVAL);
	/* A command line longer than the area. */
	static char longcmd[0x2000];

	memset(longcmd, 'a', sizeof(longcmd) - 1);
	cr_assert_eq(mb_build_info(area, sizeof(area), 0x9000, MB_T_RAM, longcmd, NULL, &gpa),
		     -ENOSPC);
}

/* ---- Fuzz: mutate images, then re-check every plan promise ---- */

#define MB_F_CHECK(c) do { if (!(c)) cr_assert_fail("fuzz invariant: %s", #c); } while (0)

static uint64_t mb_f_rng;

static uint64_t mb_f_rand(void)
{
	mb_f_rng ^= mb_f_rng >> 12;
	mb_f_rng ^= mb_f_rng << 25;
	mb_f_rng ^= mb_f_rng >> 27;
	return mb_f_rng * 2685821657736338717ull;
}

static bool mb_f_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static void mb_f_verify(const struct mb_load_plan *p, size_t size, uint64_t ram)
{
	uint64_t dst[2 * MB_MAX_SEGS], len[2 * MB_MAX_SEGS];
	int n = 0;
	bool entry_in = false;

	MB_F_CHECK(p->ncopy >= 0 && p->ncopy <= MB_MAX_SEGS);
	MB_F_CHECK(p->nzero >= 0 && p->nzero <= MB_MAX_SEGS);
	for (int k = 0; k < p->ncopy; k++) {
		MB_F_CHECK(p->copy[k].src_off <= size && p->copy[k].len <= size - p->copy[k].src_off);
		dst[n] = p->copy[k].dst_gpa;
		len[n++] = p->copy[k].len;
	}
	for (int k = 0; k < p->nzero; k++) {
		dst[n] = p->zero[k].dst_gpa;
		len[n++] = p->zero[k].len;
	}
	MB_F_CHECK(n > 0);
	for (int k = 0; k < n; k++) {
		MB_F_CHECK(len[k] > 0);
		MB_F_CHECK(dst[k] >= MB_LOAD_MIN);
		MB_F_CHECK(dst[k] + len[k] <= ram && dst[k] + len[k] <= (1ull << 32));
		MB_F_CHECK(!mb_f_overlap(dst[k], len[k], MB_INFO_GPA, MB_INFO_SIZE));
		MB_F_CHECK(!mb_f_overlap(dst[k], len[k], MB_LOW_END, MB_HIGH_START - MB_LOW_END));
		MB_F_CHECK(dst[k] >= p->lo && dst[k] + len[k] <= p->hi);
		for (int j = 0; j < k; j++)
			MB_F_CHECK(!mb_f_overlap(dst[k], len[k], dst[j], len[j]));
		entry_in |= p->entry >= dst[k] && p->entry - dst[k] < len[k];
	}
	MB_F_CHECK(entry_in);
}

/* Mutations aimed at the parts that matter: headers and the mb header. */
static void mb_f_mutate(uint8_t *buf, size_t *size, bool elf)
{
	int edits = 1 + (int)(mb_f_rand() % 4);

	for (int e = 0; e < edits; e++) {
		uint64_t r = mb_f_rand();
		size_t at;

		switch (r % 6) {
		case 0:		/* ELF header + phdrs or the a.out header */
			at = elf ? (r >> 8) % 116 : 0x100 + (r >> 8) % 32;
			break;
		case 1:
			at = elf ? MB_T_HDR_OFF + (r >> 8) % 12 : 0x100 + (r >> 8) % 12;
			break;
		default:
			at = (r >> 8) % MB_T_SIZE;
			break;
		}
		if (r % 6 == 5) {
			*size = (size_t)((r >> 20) % (MB_T_SIZE + 1));
			continue;
		}
		if ((r >> 40) & 1) {
			buf[at] = (uint8_t)(r >> 48);
		} else if (at + 4 <= MB_T_SIZE) {
			/* A whole 32-bit field with an interesting value. */
			static const uint32_t vals[] = { 0, 1, 0x1000, 0x9000, 0x9fc00, 0x100000,
							 0x7fffffff, 0x80000000, 0xfffff000,
							 0xffffffff, MB_HEADER_MAGIC };
			st_le32(buf + at, vals[(r >> 48) % (sizeof(vals) / sizeof(vals[0]))]);
		}
	}
	/* Half the time keep the multiboot checksum valid so planning runs. */
	if (mb_f_rand() & 1) {
		size_t h = elf ? MB_T_HDR_OFF : 0x100;
		uint32_t flags = ld_le32(buf + h + 4) & ~0xfff8u;

		mb_t_header(buf + h, flags, NULL);	/* a.out fields kept */
	}
}

Test(multiboot, fuzz)
{
	static uint8_t buf[MB_T_SIZE];
	static const uint64_t rams[] = { 0x100000, 0x104000, 0x105000, 0x203000, 64ull << 20,
					 1ull << 32, 1ull << 40 };
	int ok = 0;

	mb_f_rng = 0x9e3779b97f4a7c15ull;
	for (int n = 0; n < 40000; n++) {
		bool elf = n & 1;
		size_t size = elf ? mb_t_elf(buf, (n & 2) ? 0xc0100000u : 0x100000, MB_HF_MEMINFO)
				  : mb_t_aout(buf, mb_t_aout_fields);
		uint64_t ram = rams[mb_f_rand() % (sizeof(rams) / sizeof(rams[0]))];
		struct mb_load_plan plan;
		struct mb_header h;
		const char *why;
		int rc;

		mb_f_mutate(buf, &size, elf);
		rc = mb_t_plan(buf, size, ram, &plan, &why);
		MB_F_CHECK(rc == 0 || rc == -ENOEXEC);
		if (rc) {
			MB_F_CHECK(why != NULL);
			MB_F_CHECK(plan.ncopy == 0 && plan.nzero == 0 && plan.entry == 0);
		} else {
			ok++;
			mb_f_verify(&plan, size, ram);
		}
		rc = mb_find_header(buf, size, &h, &why);
		MB_F_CHECK(rc == 0 || rc == -ENOEXEC);
		if (rc == 0) {
			MB_F_CHECK(h.offset % 4 == 0 && h.offset + 12 <= size && h.offset + 12 <= 8192);
			MB_F_CHECK(h.magic + h.flags + h.checksum == 0);
			MB_F_CHECK((h.flags & 0xfff8u) == 0);
		}
	}
	/* Enough mutants must survive for the invariants to mean something. */
	cr_assert_gt(ok, 2000);
}

/* ---- command line, GDT, modules ---- */

Test(multiboot, cmdline_program_name_first)
{
	char buf[32];

	cr_assert_eq(mb_make_cmdline(buf, sizeof(buf), "guests/t.elf", "a b=1"), 18);
	cr_assert_str_eq(buf, "guests/t.elf a b=1");
	cr_assert_eq(mb_make_cmdline(buf, sizeof(buf), "guests/t.elf", ""), 12);
	cr_assert_str_eq(buf, "guests/t.elf");
	cr_assert_eq(mb_make_cmdline(buf, sizeof(buf), "x", NULL), 1);
	cr_assert_str_eq(buf, "x");
	/* No program name: a placeholder keeps argv[0] in place. */
	mb_make_cmdline(buf, sizeof(buf), "", "k=v");
	cr_assert_str_eq(buf, "kernel k=v");
	mb_make_cmdline(buf, sizeof(buf), NULL, NULL);
	cr_assert_str_eq(buf, "kernel");
	/* Cut, always terminated, and the needed length reported. */
	memset(buf, 'z', sizeof(buf));
	cr_assert_eq(mb_make_cmdline(buf, 5, "abcdef", "gh"), 9);
	cr_assert_str_eq(buf, "abcd");
	cr_assert_eq(buf[5], 'z');
	buf[0] = 'z';
	cr_assert_eq(mb_make_cmdline(buf, 0, "abc", "d"), 5);
	cr_assert_eq(buf[0], 'z');
}

Test(multiboot, flat_gdt)
{
	uint8_t gdt[MB_GDT_SIZE];
	struct mb_entry_state st;
	struct mb_load_plan plan = { .entry = 0x100020 };

	memset(gdt, 0xaa, sizeof(gdt));
	mb_build_gdt(gdt);
	cr_assert_eq(ld_le64(gdt), 0);
	/* Base 0, limit 0xfffff, G, D, P, DPL 0, S; code exec/read accessed,
	 * data read/write accessed (SDM Vol. 3A figure 3-8). */
	cr_assert_eq(ld_le64(gdt + MB_SEL_CODE), 0x00cf9b000000ffffull);
	cr_assert_eq(ld_le64(gdt + MB_SEL_DATA), 0x00cf93000000ffffull);
	mb_entry_regs(&plan, MB_INFO_GPA, &st);
	cr_assert_eq(st.gdtr_base, MB_GDT_GPA);
	cr_assert_eq(st.gdtr_limit, MB_GDT_SIZE - 1);
	/* The GDT sits in a range the memory map reports reserved, where no
	 * load may go. */
	cr_assert_geq(MB_GDT_GPA, MB_LOW_END);
	cr_assert_leq(MB_GDT_GPA + MB_GDT_SIZE, MB_HOLE_END);
}

Test(multiboot, modules_placed_page_aligned)
{
	struct mb_load_plan plan = { .hi = 0x103100 };
	struct mb_module m[3] = { { 100, "env", 0 }, { 0x2001, "mod a", 0 }, { 0, NULL, 0 } };
	const char *why = NULL;

	cr_assert_eq(mb_plan_modules(&plan, MB_T_RAM, m, 3, &why), 0);
	cr_assert_eq(m[0].start, 0x104000);
	cr_assert_eq(m[1].start, 0x105000);
	cr_assert_eq(m[2].start, 0x108000);
	/* Too little RAM: refused with a reason. */
	m[1].size = MB_T_RAM;
	cr_assert_eq(mb_plan_modules(&plan, MB_T_RAM, m, 3, &why), -ENOSPC);
	cr_assert_not_null(why);
	cr_assert_eq(mb_plan_modules(&plan, MB_T_RAM, m, MB_MAX_MODS + 1, &why), -E2BIG);
	/* A module may end right below 4 GiB - 4 KiB, never at 4 GiB. */
	plan.hi = 0xfff00000u;
	m[0].size = 0xff000;
	cr_assert_eq(mb_plan_modules(&plan, 8ull << 30, m, 1, &why), 0);
	m[0].size = 0xff001;
	cr_assert_eq(mb_plan_modules(&plan, 8ull << 30, m, 1, &why), -ENOSPC);
}

Test(multiboot, modules_in_info)
{
	static uint8_t area[MB_INFO_SIZE];
	struct mb_module m[2] = { { 100, "env", 0x104000 }, { 0x2001, "mod a", 0x105000 } };
	uint32_t gpa, mods;
	const uint8_t *e;

	cr_assert_eq(mb_build_info_mods(area, sizeof(area), MB_INFO_GPA, MB_T_RAM, "k a",
					NULL, m, 2, &gpa), 0);
	cr_assert_eq(ld_le32(area) & (1u << 3), 1u << 3);
	cr_assert_eq(ld_le32(area + 20), 2);		/* mods_count */
	mods = ld_le32(area + 24);			/* mods_addr */
	cr_assert_geq(mods, MB_INFO_GPA + 116);
	e = area + (mods - MB_INFO_GPA);
	cr_assert_eq(ld_le32(e), 0x104000);
	cr_assert_eq(ld_le32(e + 4), 0x104000 + 100);
	cr_assert_str_eq((const char *)area + ld_le32(e + 8) - MB_INFO_GPA, "env");
	cr_assert_eq(ld_le32(e + 12), 0);
	cr_assert_eq(ld_le32(e + 16), 0x105000);
	cr_assert_eq(ld_le32(e + 20), 0x107001);
	cr_assert_str_eq((const char *)area + ld_le32(e + 24) - MB_INFO_GPA, "mod a");
	/* No modules: no flag, as before. */
	cr_assert_eq(mb_build_info_mods(area, sizeof(area), MB_INFO_GPA, MB_T_RAM, NULL, NULL,
					NULL, 0, &gpa), 0);
	cr_assert_eq(ld_le32(area) & (1u << 3), 0);
	cr_assert_eq(ld_le32(area + 20), 0);
	/* Bad counts and a too small area. */
	cr_assert_eq(mb_build_info_mods(area, sizeof(area), MB_INFO_GPA, MB_T_RAM, NULL, NULL,
					NULL, 1, &gpa), -EINVAL);
	cr_assert_eq(mb_build_info_mods(area, sizeof(area), MB_INFO_GPA, MB_T_RAM, NULL, NULL,
					m, MB_MAX_MODS + 1, &gpa), -EINVAL);
	cr_assert_eq(mb_build_info_mods(area, 240, MB_INFO_GPA, MB_T_RAM, NULL, NULL, m, 2,
					&gpa), -ENOSPC);
}
