/*
 * Unit tests and a mutation loop for kernel/lib/pvh.c.
 *
 * Images are synthetic ELF64 files shaped like Debian 12's decompressed
 * 6.1 vmlinux: text at paddr 16 MiB, data and a .bss-bearing segment
 * above it, a PT_NOTE segment with a few Xen notes and the
 * XEN_ELFNOTE_PHYS32_ENTRY note (0x01000850).  Each image under test is
 * copied into a heap block of exactly its size, so ASan flags any read
 * past the end.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "kernel/lib/elf.h"
#include "kernel/lib/pvh.h"

#define T_RAM		(256ull << 20)
#define T_ENTRY		0x01000850u
#define T_NPH		4
#define T_NOTE_OFF	0x200u
#define T_SEG0_OFF	0x400u		/* text, 0x1000 bytes at 16 MiB */
#define T_SEG1_OFF	0x1400u		/* data, 0x800 file bytes, 0x3000 memory */
#define T_SIZE		0x1c00u
#define T_SEG1_GPA	0x1200000ull

static uint8_t t_img[T_SIZE];
static size_t t_note_len;

static void t_phdr(int i, uint32_t type, uint32_t flags, uint64_t off, uint64_t paddr,
		   uint64_t filesz, uint64_t memsz)
{
	uint8_t *ph = t_img + 64 + i * 56;

	st_le32(ph, type);
	st_le32(ph + 4, flags);
	st_le64(ph + 8, off);
	st_le64(ph + 16, 0xffffffff80000000ull + paddr);	/* vaddr: kernel map */
	st_le64(ph + 24, paddr);
	st_le64(ph + 32, filesz);
	st_le64(ph + 40, memsz);
	st_le64(ph + 48, type == ELF_PT_LOAD ? 0x200000 : 4);
}

/* Append one note at T_NOTE_OFF + t_note_len. */
static void t_note(const char *name, uint32_t type, const void *desc, uint32_t descsz)
{
	uint8_t *n = t_img + T_NOTE_OFF + t_note_len;
	uint32_t namesz = (uint32_t)strlen(name) + 1;

	st_le32(n, namesz);
	st_le32(n + 4, descsz);
	st_le32(n + 8, type);
	memcpy(n + 12, name, namesz);
	memcpy(n + 12 + ((namesz + 3) & ~3u), desc, descsz);
	t_note_len += 12 + ((namesz + 3) & ~3u) + ((descsz + 3) & ~3u);
}

static void t_build(void)
{
	uint8_t *p = t_img;
	uint32_t entry = T_ENTRY;

	memset(p, 0, sizeof(t_img));
	t_note_len = 0;
	memcpy(p, "\x7f" "ELF", 4);
	p[4] = ELF_CLASS64;
	p[5] = ELF_DATA2LSB;
	p[6] = ELF_EV_CURRENT;
	st_le16(p + 16, ELF_ET_EXEC);
	st_le16(p + 18, ELF_EM_X86_64);
	st_le32(p + 20, 1);
	st_le64(p + 24, 0x1000000);			/* e_entry: startup_64 */
	st_le64(p + 32, 64);				/* e_phoff */
	st_le16(p + 52, 64);
	st_le16(p + 54, 56);
	st_le16(p + 56, T_NPH);
	/* Notes Linux's head emits before the PVH one, then the PVH one. */
	t_note("Xen", 6, "linux", 6);			/* GUEST_OS */
	t_note("GNU", 3, "0123456789abcdef0123", 20);	/* a build ID */
	t_note("Xen", PVH_NOTE_PHYS32_ENTRY, &entry, 4);
	t_phdr(0, ELF_PT_LOAD, ELF_PF_R | ELF_PF_X, T_SEG0_OFF, 0x1000000, 0x1000, 0x1000);
	t_phdr(1, ELF_PT_LOAD, ELF_PF_R | ELF_PF_W, T_SEG1_OFF, T_SEG1_GPA, 0x800, 0x3000);
	t_phdr(2, PVH_ELF_PT_NOTE, ELF_PF_R, T_NOTE_OFF, 0, t_note_len, t_note_len);
	t_phdr(3, ELF_PT_LOAD, ELF_PF_R, T_SIZE, 0x1400000, 0, 0);	/* empty: skipped */
	for (uint32_t i = T_SEG0_OFF; i < T_SIZE; i++)
		p[i] = (uint8_t)(i * 7 + 1);
}

static struct bzi_e820 t_map[8];

static struct bzi_request t_req(uint64_t ram, uint64_t initrd, const char *cmdline)
{
	int n = bzi_default_e820(ram, t_map, 8);

	cr_assert_eq(n, 4);
	return (struct bzi_request){ t_map, n, initrd, cmdline, 0xe0000 };
}

static int t_plan(size_t size, const struct bzi_request *req, struct pvh_plan *plan,
		  const char **why)
{
	uint8_t *copy = malloc(size ? size : 1);
	int rc;

	cr_assert(copy);
	memcpy(copy, t_img, size);
	rc = pvh_plan(copy, size, req, plan, why);
	free(copy);
	return rc;
}

static int t_entry(size_t size, uint32_t *entry, const char **why)
{
	uint8_t *copy = malloc(size ? size : 1);
	int rc;

	cr_assert(copy);
	memcpy(copy, t_img, size);
	rc = pvh_find_entry(copy, size, entry, why);
	free(copy);
	return rc;
}

Test(pvh, finds_entry)
{
	uint32_t entry = 0;
	const char *why = NULL;

	t_build();
	cr_assert_eq(t_entry(T_SIZE, &entry, &why), 0, "%s", why);
	cr_assert_eq(entry, T_ENTRY);
}

Test(pvh, entry_note_8_bytes)
{
	uint64_t wide = 0x1000860;
	uint32_t entry = 0;
	const char *why = NULL;

	t_build();
	t_note_len = 0;
	t_note("Xen", PVH_NOTE_PHYS32_ENTRY, &wide, 8);
	t_phdr(2, PVH_ELF_PT_NOTE, ELF_PF_R, T_NOTE_OFF, 0, t_note_len, t_note_len);
	cr_assert_eq(t_entry(T_SIZE, &entry, &why), 0, "%s", why);
	cr_assert_eq(entry, 0x1000860);
}

Test(pvh, entry_refusals)
{
	uint64_t high = 1ull << 32;
	uint32_t entry = 1;
	const char *why = NULL;

	/* A Multiboot-style ELF64 without the note: no PVH. */
	t_build();
	st_le32(t_img + T_NOTE_OFF + 60 + 8, 17);	/* PVH note (the third) -> 17 */
	cr_assert_eq(t_entry(T_SIZE, &entry, &why), -ENOEXEC);
	cr_assert_eq(entry, 0);
	cr_assert(strstr(why, "PHYS32_ENTRY"), "%s", why);
	/* "Xen" as a prefix of a longer name is not the Xen note. */
	t_build();
	t_note_len = 0;
	t_note("XenX", PVH_NOTE_PHYS32_ENTRY, &(uint32_t){ T_ENTRY }, 4);
	t_phdr(2, PVH_ELF_PT_NOTE, ELF_PF_R, T_NOTE_OFF, 0, t_note_len, t_note_len);
	cr_assert_eq(t_entry(T_SIZE, &entry, &why), -ENOEXEC);
	/* An entry at or above 4 GiB cannot be reached in 32-bit mode. */
	t_build();
	t_note_len = 0;
	t_note("Xen", PVH_NOTE_PHYS32_ENTRY, &high, 8);
	t_phdr(2, PVH_ELF_PT_NOTE, ELF_PF_R, T_NOTE_OFF, 0, t_note_len, t_note_len);
	cr_assert_eq(t_entry(T_SIZE, &entry, &why), -ENOEXEC);
	cr_assert(strstr(why, "32-bit"), "%s", why);
	/* A 2-byte value. */
	t_build();
	t_note_len = 0;
	t_note("Xen", PVH_NOTE_PHYS32_ENTRY, "\x50\x08", 2);
	t_phdr(2, PVH_ELF_PT_NOTE, ELF_PF_R, T_NOTE_OFF, 0, t_note_len, t_note_len);
	cr_assert_eq(t_entry(T_SIZE, &entry, &why), -ENOEXEC);
	/* A note whose descsz runs past the segment. */
	t_build();
	st_le32(t_img + T_NOTE_OFF + 4, 0xfffffff0);
	cr_assert_eq(t_entry(T_SIZE, &entry, &why), -ENOEXEC);
	cr_assert(strstr(why, "past"), "%s", why);
	/* A note segment past the end of the file. */
	t_build();
	t_phdr(2, PVH_ELF_PT_NOTE, ELF_PF_R, T_SIZE - 8, 0, 16, 16);
	cr_assert_eq(t_entry(T_SIZE, &entry, &why), -ENOEXEC);
	/* ELF32 (a Multiboot kernel) and a non-x86-64 ELF64. */
	t_build();
	t_img[4] = ELF_CLASS32;
	cr_assert_eq(t_entry(T_SIZE, &entry, &why), -ENOEXEC);
	t_build();
	st_le16(t_img + 18, ELF_EM_386);
	cr_assert_eq(t_entry(T_SIZE, &entry, &why), -ENOEXEC);
	/* Program headers past the end; truncated header; NULL image. */
	t_build();
	st_le64(t_img + 32, T_SIZE - 56);
	cr_assert_eq(t_entry(T_SIZE, &entry, &why), -ENOEXEC);
	t_build();
	cr_assert_eq(t_entry(63, &entry, &why), -ENOEXEC);
	cr_assert_eq(pvh_find_entry(NULL, 0, &entry, &why), -ENOEXEC);
}

Test(pvh, plan_layout)
{
	struct bzi_request req = t_req(T_RAM, 0x150000, "console=ttyS0");
	struct pvh_plan plan;
	const char *why = NULL;

	t_build();
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.entry, T_ENTRY);
	cr_assert_eq(plan.nseg, 2);
	cr_assert_eq(plan.seg[0].gpa, 0x1000000);
	cr_assert_eq(plan.seg[0].src_off, T_SEG0_OFF);
	cr_assert_eq(plan.seg[0].filesz, 0x1000);
	cr_assert_eq(plan.seg[1].gpa, T_SEG1_GPA);
	cr_assert_eq(plan.seg[1].filesz, 0x800);
	cr_assert_eq(plan.seg[1].memsz, 0x3000);
	cr_assert_eq(plan.kernel_lo, 0x1000000);
	cr_assert_eq(plan.kernel_hi, T_SEG1_GPA + 0x3000);
	cr_assert_eq(plan.info_gpa, PVH_INFO_GPA);
	cr_assert_eq(plan.cmdline_gpa, BZI_CMDLINE_GPA);
	cr_assert_eq(plan.cmdline_len, 14);
	/* The initrd at the top of RAM, page aligned, clear of the kernel. */
	cr_assert_eq(plan.initrd_size, 0x150000);
	cr_assert_eq(plan.initrd_gpa, (T_RAM - 0x150000) & ~0xfffull);
	cr_assert_eq(plan.initrd_gpa & 0xfff, 0);
}

Test(pvh, initrd_below_kernel)
{
	/* 20 MiB of RAM: the 4 MiB initrd only fits between 1 and 16 MiB. */
	struct bzi_request req = t_req(20ull << 20, 4ull << 20, NULL);
	struct pvh_plan plan;
	const char *why = NULL;

	t_build();
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.initrd_gpa, 0x1000000 - (4ull << 20));
	cr_assert_eq(plan.cmdline_len, 1);
	/* 6 MiB more and nothing fits: below holds 15 MiB, above 2 MiB. */
	req = t_req(20ull << 20, 16ull << 20, NULL);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOMEM);
	cr_assert(strstr(why, "initrd"), "%s", why);
	cr_assert_eq(plan.nseg, 0, "the plan is cleared on failure");
}

Test(pvh, plan_refusals)
{
	struct bzi_request req = t_req(T_RAM, 0, NULL);
	struct pvh_plan plan;
	const char *why = NULL;
	static char longline[2100];

	/* RAM ends below the kernel's end. */
	req = t_req(T_SEG1_GPA + 0x2000, 0, NULL);
	t_build();
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOMEM);
	cr_assert(strstr(why, "RAM"), "%s", why);
	req = t_req(T_RAM, 0, NULL);
	/* A segment below 1 MiB (over the low boot data). */
	t_build();
	t_phdr(1, ELF_PT_LOAD, ELF_PF_R, T_SEG1_OFF, 0x7000, 0x800, 0x800);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOEXEC);
	/* A segment wrapping past 4 GiB. */
	t_build();
	t_phdr(1, ELF_PT_LOAD, ELF_PF_R, T_SEG1_OFF, 0xfffff000, 0x800, 0x2000);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOEXEC);
	/* Overlapping segments. */
	t_build();
	t_phdr(1, ELF_PT_LOAD, ELF_PF_R, T_SEG1_OFF, 0x1000800, 0x800, 0x800);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOEXEC);
	cr_assert(strstr(why, "overlap"), "%s", why);
	/* File bytes past the end; memsz < filesz. */
	t_build();
	t_phdr(1, ELF_PT_LOAD, ELF_PF_R, T_SEG1_OFF, T_SEG1_GPA, 0x801, 0x3000);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOEXEC);
	t_build();
	t_phdr(1, ELF_PT_LOAD, ELF_PF_R, T_SEG1_OFF, T_SEG1_GPA, 0x800, 0x700);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOEXEC);
	/* The entry in .bss (past the file bytes) or outside every segment. */
	t_build();
	t_phdr(0, ELF_PT_LOAD, ELF_PF_R | ELF_PF_X, T_SEG0_OFF, 0x1000000, 0x800, 0x1000);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOEXEC);
	cr_assert(strstr(why, "entry"), "%s", why);
	/* No loadable segment at all. */
	t_build();
	t_phdr(0, 6, 0, 0, 0, 0, 0);
	t_phdr(1, 6, 0, 0, 0, 0, 0);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -ENOEXEC);
	/* Command line longer than Linux's COMMAND_LINE_SIZE. */
	t_build();
	memset(longline, 'a', sizeof(longline) - 1);
	req = t_req(T_RAM, 0, longline);
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -EINVAL);
	longline[2047] = 0;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	cr_assert_eq(plan.cmdline_len, 2048);
	/* A bad map. */
	req = t_req(T_RAM, 0, NULL);
	req.nmap = 0;
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), -EINVAL);
}

Test(pvh, start_info_bytes)
{
	struct bzi_request req = t_req(T_RAM, 0x150000, "console=ttyS0");
	static uint8_t page[PVH_INFO_SIZE];
	struct pvh_plan plan;
	const char *why = NULL;
	const uint8_t *m;

	t_build();
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	memset(page, 0xaa, sizeof(page));
	cr_assert_eq(pvh_build_start_info(page, &plan, &req, &why), 0, "%s", why);
	/* start_info.h offsets, read as raw bytes. */
	cr_assert_eq(ld_le32(page + 0), 0x336ec578);
	cr_assert_eq(ld_le32(page + 4), 1);
	cr_assert_eq(ld_le32(page + 8), 0);
	cr_assert_eq(ld_le32(page + 12), 1);
	cr_assert_eq(ld_le64(page + 16), PVH_INFO_GPA + PVH_MODLIST_OFF);
	cr_assert_eq(ld_le64(page + 24), BZI_CMDLINE_GPA);
	cr_assert_eq(ld_le64(page + 32), 0xe0000);
	cr_assert_eq(ld_le64(page + 40), PVH_INFO_GPA + PVH_MEMMAP_OFF);
	cr_assert_eq(ld_le32(page + 48), 4);
	m = page + PVH_MODLIST_OFF;
	cr_assert_eq(ld_le64(m), plan.initrd_gpa);
	cr_assert_eq(ld_le64(m + 8), 0x150000);
	cr_assert_eq(ld_le64(m + 16), 0);
	m = page + PVH_MEMMAP_OFF;
	for (int i = 0; i < 4; i++, m += 24) {
		cr_assert_eq(ld_le64(m), t_map[i].addr);
		cr_assert_eq(ld_le64(m + 8), t_map[i].size);
		cr_assert_eq(ld_le32(m + 16), t_map[i].type);
		cr_assert_eq(ld_le32(m + 20), 0);
	}
	cr_assert_eq(ld_le64(m), 0, "the rest of the page is zeroed");
	cr_assert_eq(page[PVH_INFO_SIZE - 1], 0);
}

Test(pvh, start_info_no_initrd)
{
	struct bzi_request req = t_req(T_RAM, 0, NULL);
	static uint8_t page[PVH_INFO_SIZE];
	struct pvh_plan plan;
	const char *why = NULL;

	t_build();
	cr_assert_eq(t_plan(T_SIZE, &req, &plan, &why), 0, "%s", why);
	memset(page, 0xaa, sizeof(page));
	cr_assert_eq(pvh_build_start_info(page, &plan, &req, &why), 0, "%s", why);
	cr_assert_eq(ld_le32(page + 12), 0);
	cr_assert_eq(ld_le64(page + 16), 0);
	cr_assert_eq(ld_le64(page + PVH_MODLIST_OFF), 0);
	req.nmap = BZI_E820_MAX + 1;
	cr_assert_eq(pvh_build_start_info(page, &plan, &req, &why), -EINVAL);
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

static void t_check_plan(const struct pvh_plan *p, size_t size, const struct bzi_request *req)
{
	bool entry_in = false;

	cr_assert(p->nseg >= 1 && p->nseg <= PVH_MAX_SEGS);
	for (int i = 0; i < p->nseg; i++) {
		const struct pvh_seg *s = &p->seg[i];

		cr_assert(s->src_off <= size && s->filesz <= size - s->src_off);
		cr_assert(s->filesz <= s->memsz);
		cr_assert(s->gpa >= 0x100000 && s->gpa + s->memsz <= req->map[2].addr +
			  req->map[2].size);
		if (p->entry >= s->gpa && p->entry < s->gpa + s->filesz)
			entry_in = true;
		for (int j = 0; j < i; j++)
			cr_assert(s->gpa >= p->seg[j].gpa + p->seg[j].memsz ||
				  p->seg[j].gpa >= s->gpa + s->memsz);
	}
	cr_assert(entry_in);
	if (p->initrd_size)
		cr_assert(p->initrd_gpa + p->initrd_size <= p->kernel_lo ||
			  p->initrd_gpa >= p->kernel_hi);
}

Test(pvh, mutations)
{
	struct bzi_request req = t_req(T_RAM, 0x100000, "console=ttyS0");
	int ok = 0;

	for (int n = 0; n < 20000; n++) {
		struct pvh_plan plan;
		const char *why = NULL;
		size_t size = T_SIZE;
		int flips = 1 + (int)(t_rand() % 4);

		t_build();
		for (int f = 0; f < flips; f++) {
			/* Mostly the headers and the notes, where the checks are. */
			size_t at = t_rand() % 3 ? t_rand() % (T_NOTE_OFF + t_note_len)
						 : t_rand() % T_SIZE;

			t_img[at] = (uint8_t)t_rand();
		}
		if (t_rand() % 8 == 0)
			size = t_rand() % (T_SIZE + 1);
		if (t_plan(size, &req, &plan, &why) == 0) {
			t_check_plan(&plan, size, &req);
			ok++;
		} else {
			cr_assert(why && why[0]);
			cr_assert_eq(plan.nseg, 0);
		}
	}
	cr_assert(ok > 100, "too few mutants planned (%d): the loop tests nothing", ok);
}
