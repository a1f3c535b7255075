/* Unit tests and a mutation fuzz test for kernel/lib/elf.c. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/elf.h"

#define ELF_T_SIZE	0x1400
#define ELF_T_PHOFF64	64
#define ELF_T_PHOFF32	52
#define ELF_T_KBASE	0xffffffff80100000ull
#define ELF_T_GBASE	0x100000u
#define ELF_T_GNU_STACK	0x6474e551u

/*
 * A small valid kernel-like ELF64: text RX (with the entry), data RW with a
 * bss tail, a PT_NOTE and a zero-sized PT_GNU_STACK that must be ignored.
 */
static size_t elf_t_build64(uint8_t *buf)
{
	struct elf64_ehdr eh = {
		.e_ident = { 0x7f, 'E', 'L', 'F', ELF_CLASS64, ELF_DATA2LSB, ELF_EV_CURRENT },
		.e_type = ELF_ET_EXEC, .e_machine = ELF_EM_X86_64,
		.e_version = ELF_EV_CURRENT, .e_entry = ELF_T_KBASE + 0x10,
		.e_phoff = ELF_T_PHOFF64, .e_ehsize = sizeof(eh),
		.e_phentsize = sizeof(struct elf64_phdr), .e_phnum = 4,
	};
	struct elf64_phdr ph[4] = {
		{ ELF_PT_LOAD, ELF_PF_R | ELF_PF_X, 0x1000, ELF_T_KBASE, 0x100000,
		  0x200, 0x200, 0x1000 },
		{ 4 /* PT_NOTE */, ELF_PF_R, 0x1100, ELF_T_KBASE + 0x100, 0x100100,
		  0x20, 0x20, 4 },
		{ ELF_PT_LOAD, ELF_PF_R | ELF_PF_W, 0x1200, ELF_T_KBASE + 0x2200,
		  0x102200, 0x100, 0x3000, 0x1000 },
		{ ELF_T_GNU_STACK, ELF_PF_R | ELF_PF_W, 0, 0, 0, 0, 0, 16 },
	};

	memset(buf, 0, ELF_T_SIZE);
	memcpy(buf, &eh, sizeof(eh));
	memcpy(buf + ELF_T_PHOFF64, ph, sizeof(ph));
	return ELF_T_SIZE;
}

/* The ELF32 counterpart, shaped like a multiboot guest kernel at 1 MiB. */
static size_t elf_t_build32(uint8_t *buf)
{
	struct elf32_ehdr eh = {
		.e_ident = { 0x7f, 'E', 'L', 'F', ELF_CLASS32, ELF_DATA2LSB, ELF_EV_CURRENT },
		.e_type = ELF_ET_EXEC, .e_machine = ELF_EM_386,
		.e_version = ELF_EV_CURRENT, .e_entry = ELF_T_GBASE + 0x1c,
		.e_phoff = ELF_T_PHOFF32, .e_ehsize = sizeof(eh),
		.e_phentsize = sizeof(struct elf32_phdr), .e_phnum = 2,
	};
	struct elf32_phdr ph[2] = {
		{ ELF_PT_LOAD, 0x1000, ELF_T_GBASE, ELF_T_GBASE, 0x200, 0x200,
		  ELF_PF_R | ELF_PF_X, 0x1000 },
		{ ELF_PT_LOAD, 0x1200, ELF_T_GBASE + 0x2200, ELF_T_GBASE + 0x2200,
		  0x100, 0x3000, ELF_PF_R | ELF_PF_W, 0x1000 },
	};

	memset(buf, 0, ELF_T_SIZE);
	memcpy(buf, &eh, sizeof(eh));
	memcpy(buf + ELF_T_PHOFF32, ph, sizeof(ph));
	return ELF_T_SIZE;
}

/*
 * Parse a copy that ends exactly where a heap block ends, so ASan flags any
 * read past size bytes.  One block is reused: a malloc per call would churn
 * through ASan's quarantine and dominate the fuzz run time.
 */
static int elf_t_parse(const uint8_t *buf, size_t size, int cls, struct elf_image *img,
		       const char **why)
{
	static uint8_t *block;
	uint8_t *copy;

	if (!block)
		block = malloc(ELF_T_SIZE);
	if (!block || size > ELF_T_SIZE)
		cr_assert_fail("bad test setup");
	copy = block + ELF_T_SIZE - size;
	memcpy(copy, buf, size);
	*why = NULL;
	return elf_parse(copy, size, cls, cls == 64 ? ELF_EM_X86_64 : ELF_EM_386, img, why);
}

Test(elf, valid64)
{
	static _Alignas(8) uint8_t buf[ELF_T_SIZE];
	struct elf_image img;
	const char *why;
	size_t n = elf_t_build64(buf);

	cr_assert_eq(elf_t_parse(buf, n, 64, &img, &why), 0, "%s", why);
	cr_assert_eq(img.cls, 64);
	cr_assert_eq(img.entry, ELF_T_KBASE + 0x10);
	cr_assert_eq(img.nseg, 2);
	cr_assert_eq(img.seg[0].vaddr, ELF_T_KBASE);
	cr_assert_eq(img.seg[0].paddr, 0x100000);
	cr_assert_eq(img.seg[0].file_off, 0x1000);
	cr_assert_eq(img.seg[0].filesz, 0x200);
	cr_assert_eq(img.seg[0].memsz, 0x200);
	cr_assert_eq(img.seg[0].flags, ELF_PF_R | ELF_PF_X);
	cr_assert_eq(img.seg[1].vaddr, ELF_T_KBASE + 0x2200);
	cr_assert_eq(img.seg[1].filesz, 0x100);
	cr_assert_eq(img.seg[1].memsz, 0x3000);
	cr_assert_eq(img.seg[1].flags, ELF_PF_R | ELF_PF_W);
	cr_assert_eq(img.vmin, ELF_T_KBASE);
	cr_assert_eq(img.vmax, ELF_T_KBASE + 0x6000);
}

Test(elf, valid32)
{
	static _Alignas(8) uint8_t buf[ELF_T_SIZE];
	struct elf_image img;
	const char *why;
	size_t n = elf_t_build32(buf);

	cr_assert_eq(elf_t_parse(buf, n, 32, &img, &why), 0, "%s", why);
	cr_assert_eq(img.cls, 32);
	cr_assert_eq(img.entry, ELF_T_GBASE + 0x1c);
	cr_assert_eq(img.nseg, 2);
	cr_assert_eq(img.seg[1].paddr, ELF_T_GBASE + 0x2200);
	cr_assert_eq(img.seg[1].file_off, 0x1200);
	cr_assert_eq(img.seg[1].memsz, 0x3000);
	cr_assert_eq(img.vmin, ELF_T_GBASE);
	cr_assert_eq(img.vmax, ELF_T_GBASE + 0x6000);
}

Test(elf, class_and_machine)
{
	static _Alignas(8) uint8_t buf[ELF_T_SIZE];
	struct elf_image img;
	const char *why;

	elf_t_build64(buf);
	cr_assert_eq(elf_t_parse(buf, ELF_T_SIZE, 32, &img, &why), -ENOEXEC);
	cr_assert_str_eq(why, "not ELF32");
	cr_assert_eq(elf_parse(buf, ELF_T_SIZE, 64, ELF_EM_386, &img, &why), -ENOEXEC);
	cr_assert_str_eq(why, "not i386");
	cr_assert_eq(elf_parse(buf, ELF_T_SIZE, 48, ELF_EM_X86_64, &img, &why), -EINVAL);
	elf_t_build32(buf);
	cr_assert_eq(elf_t_parse(buf, ELF_T_SIZE, 64, &img, &why), -ENOEXEC);
	cr_assert_str_eq(why, "not ELF64");
	cr_assert_eq(elf_parse(buf, ELF_T_SIZE, 32, ELF_EM_X86_64, &img, &why), -ENOEXEC);
	cr_assert_str_eq(why, "not x86-64");
	/* A NULL why pointer is allowed. */
	cr_assert_eq(elf_parse(buf, ELF_T_SIZE, 64, ELF_EM_X86_64, &img, NULL), -ENOEXEC);
}

/* ---- One corruption per rule; each must be refused with its reason. ---- */

static struct elf64_ehdr *elf_t_eh64(uint8_t *b)
{
	return (struct elf64_ehdr *)b;
}

static struct elf64_phdr *elf_t_ph64(uint8_t *b, int i)
{
	return (struct elf64_phdr *)(b + ELF_T_PHOFF64) + i;
}

/* A mutator of the valid ELF64 image b, of *s bytes. */
#define ELF_T_MUT(name, ...) \
	static void name(uint8_t *b, size_t *s) { (void)b; (void)s; __VA_ARGS__ }
#define ELF_T_EH elf_t_eh64(b)
#define ELF_T_PH(i) elf_t_ph64(b, i)

struct elf_t_case {
	const char *why;
	void (*mutate)(uint8_t *b, size_t *size);
};

ELF_T_MUT(m_magic, b[1] = 'e';)
ELF_T_MUT(m_tiny, *s = 3;)
ELF_T_MUT(m_ident_only, *s = 10;)
ELF_T_MUT(m_short_hdr, *s = 63;)
ELF_T_MUT(m_class, b[4] = 0;)
ELF_T_MUT(m_msb, b[5] = 2;)
ELF_T_MUT(m_ident_ver, b[6] = 2;)
ELF_T_MUT(m_version, ELF_T_EH->e_version = 0;)
ELF_T_MUT(m_dyn, ELF_T_EH->e_type = 3;)
ELF_T_MUT(m_machine, ELF_T_EH->e_machine = 40;)
ELF_T_MUT(m_phentsize, ELF_T_EH->e_phentsize = 64;)
ELF_T_MUT(m_xnum, ELF_T_EH->e_phnum = 0xffff;)
ELF_T_MUT(m_phnum0, ELF_T_EH->e_phnum = 0;)
ELF_T_MUT(m_phoff, ELF_T_EH->e_phoff = ELF_T_SIZE - 100;)
ELF_T_MUT(m_phoff_wrap, ELF_T_EH->e_phoff = UINT64_MAX - 8;)
ELF_T_MUT(m_phnum_big, ELF_T_EH->e_phnum = 200;)
ELF_T_MUT(m_cut_phdrs, *s = ELF_T_PHOFF64 + 100;)
ELF_T_MUT(m_seg_off, ELF_T_PH(2)->p_offset = 0x1380; ELF_T_PH(2)->p_vaddr += 0x180;)
ELF_T_MUT(m_seg_wrap, ELF_T_PH(0)->p_offset = UINT64_MAX - 0xff; ELF_T_PH(0)->p_align = 0;)
ELF_T_MUT(m_cut_data, *s = 0x12ff;)
ELF_T_MUT(m_memsz, ELF_T_PH(2)->p_memsz = 0xff;)
ELF_T_MUT(m_vwrap, ELF_T_PH(2)->p_vaddr = 0xfffffffffffff200ull;)
ELF_T_MUT(m_vlastpage, ELF_T_PH(2)->p_vaddr = 0xffffffffffffc200ull;)
ELF_T_MUT(m_pwrap, ELF_T_PH(2)->p_paddr = UINT64_MAX - 0x10;)
ELF_T_MUT(m_align_pow, ELF_T_PH(2)->p_align = 0x3000;)
ELF_T_MUT(m_congruent, ELF_T_PH(2)->p_vaddr += 8;)
ELF_T_MUT(m_overlap, ELF_T_PH(2)->p_vaddr = ELF_T_KBASE - 0xe00;)
ELF_T_MUT(m_poverlap, ELF_T_PH(2)->p_paddr = 0x100000 - 0x2f00;)
ELF_T_MUT(m_interp, ELF_T_PH(1)->p_type = 3;)
ELF_T_MUT(m_noload, ELF_T_PH(0)->p_type = 0; ELF_T_PH(2)->p_type = 0;)
ELF_T_MUT(m_entry_out, ELF_T_EH->e_entry = ELF_T_KBASE + 0x200;)
ELF_T_MUT(m_entry_nx, ELF_T_EH->e_entry = ELF_T_KBASE + 0x5000;)
ELF_T_MUT(m_entry_noexec, ELF_T_PH(0)->p_flags = ELF_PF_R;)

static const struct elf_t_case elf_t_cases[] = {
	{ "bad magic", m_magic },
	{ "bad magic", m_tiny },
	{ "file truncated", m_ident_only },
	{ "file truncated", m_short_hdr },
	{ "not ELF64", m_class },
	{ "not little-endian", m_msb },
	{ "bad ELF version", m_ident_ver },
	{ "bad ELF version", m_version },
	{ "not an executable (ET_EXEC)", m_dyn },
	{ "not x86-64", m_machine },
	{ "bad program header size", m_phentsize },
	{ "too many program headers", m_xnum },
	{ "no loadable segment", m_phnum0 },
	{ "program headers outside file", m_phoff },
	{ "program headers outside file", m_phoff_wrap },
	{ "program headers outside file", m_phnum_big },
	{ "program headers outside file", m_cut_phdrs },
	{ "segment outside file", m_seg_off },
	{ "segment outside file", m_seg_wrap },
	{ "segment outside file", m_cut_data },
	{ "memsz < filesz", m_memsz },
	{ "address overflow", m_vwrap },
	{ "address overflow", m_vlastpage },
	{ "address overflow", m_pwrap },
	{ "bad segment alignment", m_align_pow },
	{ "segment offset and address not congruent", m_congruent },
	{ "segments overlap", m_overlap },
	{ "segments overlap in physical memory", m_poverlap },
	{ "needs a program interpreter", m_interp },
	{ "no loadable segment", m_noload },
	{ "entry point outside loaded segments", m_entry_out },
	{ "entry point in a non-executable segment", m_entry_nx },
	{ "entry point in a non-executable segment", m_entry_noexec },
};

Test(elf, each_corruption_refused)
{
	static _Alignas(8) uint8_t buf[ELF_T_SIZE];

	for (size_t i = 0; i < sizeof(elf_t_cases) / sizeof(elf_t_cases[0]); i++) {
		struct elf_image img;
		const char *why;
		size_t size = elf_t_build64(buf);

		elf_t_cases[i].mutate(buf, &size);
		memset(&img, 0x5a, sizeof(img));
		cr_assert_eq(elf_t_parse(buf, size, 64, &img, &why), -ENOEXEC,
			     "case %zu (%s) accepted", i, elf_t_cases[i].why);
		cr_assert_str_eq(why, elf_t_cases[i].why, "case %zu", i);
		/* Nothing usable is left behind on failure. */
		cr_assert_eq(img.nseg, 0);
		cr_assert_eq(img.entry, 0);
	}
}

Test(elf, null_and_empty)
{
	struct elf_image img;
	const char *why = NULL;

	cr_assert_eq(elf_parse(NULL, 100, 64, ELF_EM_X86_64, &img, &why), -ENOEXEC);
	cr_assert_str_eq(why, "bad magic");
	cr_assert_eq(elf_parse("", 0, 32, ELF_EM_386, &img, &why), -ENOEXEC);
	cr_assert_str_eq(why, "bad magic");
}

Test(elf, elf32_limits)
{
	static _Alignas(8) uint8_t buf[ELF_T_SIZE];
	struct elf32_phdr *ph = (struct elf32_phdr *)(buf + ELF_T_PHOFF32);
	struct elf_image img;
	const char *why;

	/* Ending exactly at 4 GiB is fine ... */
	elf_t_build32(buf);
	ph[1].p_vaddr = ph[1].p_paddr = 0xffffc200u;
	ph[1].p_memsz = 0x3e00;
	cr_assert_eq(elf_t_parse(buf, ELF_T_SIZE, 32, &img, &why), 0, "%s", why);
	cr_assert_eq(img.vmax, 1ull << 32);
	/* ... one byte further is not. */
	ph[1].p_memsz = 0x3e01;
	cr_assert_eq(elf_t_parse(buf, ELF_T_SIZE, 32, &img, &why), -ENOEXEC);
	cr_assert_str_eq(why, "address overflow");
	/* ELF32 header sizes are checked against the ELF32 layout. */
	elf_t_build32(buf);
	((struct elf32_ehdr *)buf)->e_phentsize = sizeof(struct elf64_phdr);
	cr_assert_eq(elf_t_parse(buf, ELF_T_SIZE, 32, &img, &why), -ENOEXEC);
	cr_assert_str_eq(why, "bad program header size");
	elf_t_build32(buf);
	cr_assert_eq(elf_t_parse(buf, 51, 32, &img, &why), -ENOEXEC);
	cr_assert_str_eq(why, "file truncated");
	elf_t_build32(buf);
	ph[1].p_align = 0x1800;
	cr_assert_eq(elf_t_parse(buf, ELF_T_SIZE, 32, &img, &why), -ENOEXEC);
	cr_assert_str_eq(why, "bad segment alignment");
}

Test(elf, segment_count_and_empty_loads)
{
	static _Alignas(8) uint8_t buf[ELF_T_SIZE];
	struct elf64_ehdr *eh = elf_t_eh64(buf);
	struct elf_image img;
	const char *why;
	int i;

	/* 16 one-page loads fit; zero-sized loads in between are ignored. */
	elf_t_build64(buf);
	for (i = 0; i < 20; i++) {
		*elf_t_ph64(buf, i) = (struct elf64_phdr){
			ELF_PT_LOAD, ELF_PF_R | ELF_PF_X, 0x1000, ELF_T_KBASE + 0x1000ull * (uint64_t)i,
			0x100000 + 0x1000ull * (uint64_t)i, 0x10, i % 5 == 4 ? 0 : 0x1000, 0x1000 };
		if (i % 5 == 4)
			elf_t_ph64(buf, i)->p_filesz = 0;
	}
	eh->e_phnum = 20;
	cr_assert_eq(elf_t_parse(buf, ELF_T_SIZE, 64, &img, &why), 0, "%s", why);
	cr_assert_eq(img.nseg, 16);
	cr_assert_eq(img.seg[4].vaddr, ELF_T_KBASE + 0x5000);
	eh->e_phnum = 21;
	*elf_t_ph64(buf, 20) = *elf_t_ph64(buf, 18);
	elf_t_ph64(buf, 20)->p_vaddr += 0x10000;
	elf_t_ph64(buf, 20)->p_paddr += 0x10000;
	cr_assert_eq(elf_t_parse(buf, ELF_T_SIZE, 64, &img, &why), -ENOEXEC);
	cr_assert_str_eq(why, "too many segments");
}

Test(elf, check_range)
{
	static _Alignas(8) uint8_t buf[ELF_T_SIZE];
	struct elf_image img;
	const char *why = NULL;

	elf_t_build64(buf);
	cr_assert_eq(elf_t_parse(buf, ELF_T_SIZE, 64, &img, &why), 0);
	cr_assert_eq(elf_check_range(&img, ELF_T_KBASE, ELF_T_KBASE + 0x5200, &why), 0);
	cr_assert_eq(elf_check_range(&img, ELF_T_KBASE, ELF_T_KBASE + 0x51ff, &why), -ENOEXEC);
	cr_assert_str_eq(why, "segment outside allowed range");
	cr_assert_eq(elf_check_range(&img, ELF_T_KBASE + 1, UINT64_MAX, &why), -ENOEXEC);
	cr_assert_eq(elf_check_range(&img, 0, UINT64_MAX, &why), 0);
	/* An empty or inverted window holds nothing. */
	cr_assert_eq(elf_check_range(&img, UINT64_MAX, 0, &why), -ENOEXEC);
	cr_assert_eq(elf_check_phys_range(&img, 0x100000, 0x105200, &why), 0);
	cr_assert_eq(elf_check_phys_range(&img, 0x100000, 0x105000, &why), -ENOEXEC);
	cr_assert_eq(elf_check_phys_range(&img, ELF_T_KBASE, UINT64_MAX, &why), -ENOEXEC);
}

/* ---- Fuzz: mutate, parse, and re-check every promise independently. ---- */

/*
 * Criterion reports every passing cr_assert to its runner, which costs more
 * than the parse itself; the fuzz loops check quietly and fail loudly.
 */
#define ELF_F_CHECK(c) do { if (!(c)) cr_assert_fail("fuzz invariant: %s", #c); } while (0)


static uint64_t elf_f_rd(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

struct elf_f_ph {
	uint64_t type, flags, off, vaddr, paddr, filesz, memsz;
};

static void elf_f_read_ph(const uint8_t *p, int cls, struct elf_f_ph *ph)
{
	if (cls == 64) {
		*ph = (struct elf_f_ph){ elf_f_rd(p, 4), elf_f_rd(p + 4, 4), elf_f_rd(p + 8, 8),
					 elf_f_rd(p + 16, 8), elf_f_rd(p + 24, 8),
					 elf_f_rd(p + 32, 8), elf_f_rd(p + 40, 8) };
	} else {
		*ph = (struct elf_f_ph){ elf_f_rd(p, 4), elf_f_rd(p + 24, 4), elf_f_rd(p + 4, 4),
					 elf_f_rd(p + 8, 4), elf_f_rd(p + 12, 4),
					 elf_f_rd(p + 16, 4), elf_f_rd(p + 20, 4) };
	}
}

/* Every guarantee elf.h makes, checked from the raw bytes with test code. */
static void elf_f_verify(const uint8_t *b, size_t size, int cls, const struct elf_image *img)
{
	size_t hsz = cls == 64 ? 64 : 52, phsz = cls == 64 ? 56 : 32;
	uint64_t phoff = cls == 64 ? elf_f_rd(b + 32, 8) : elf_f_rd(b + 28, 4);
	uint64_t phnum = elf_f_rd(b + (cls == 64 ? 56 : 44), 2);
	uint64_t limit = cls == 64 ? UINT64_MAX : 1ull << 32;
	uint64_t lo = UINT64_MAX, hi = 0;
	int n = 0;
	bool entry_ok = false;

	ELF_F_CHECK(size >= hsz);
	ELF_F_CHECK(memcmp(b, "\x7f" "ELF", 4) == 0);
	ELF_F_CHECK(b[4] == (cls == 64 ? 2 : 1));
	ELF_F_CHECK(b[5] == 1);
	ELF_F_CHECK(elf_f_rd(b + 16, 2) == ELF_ET_EXEC);
	ELF_F_CHECK(elf_f_rd(b + 18, 2) == (cls == 64 ? 62u : 3u));
	ELF_F_CHECK(elf_f_rd(b + (cls == 64 ? 54 : 42), 2) == phsz);
	ELF_F_CHECK(phoff + phnum * phsz <= size);
	ELF_F_CHECK(img->cls == cls);
	ELF_F_CHECK(img->entry == (cls == 64 ? elf_f_rd(b + 24, 8) : elf_f_rd(b + 24, 4)));
	for (uint64_t i = 0; i < phnum; i++) {
		struct elf_f_ph ph;
		const struct elf_seg *s;

		elf_f_read_ph(b + phoff + i * phsz, cls, &ph);
		if (ph.type != ELF_PT_LOAD || ph.memsz == 0)
			continue;
		ELF_F_CHECK(n < img->nseg);
		s = &img->seg[n++];
		ELF_F_CHECK(s->vaddr == ph.vaddr && s->paddr == ph.paddr && s->memsz == ph.memsz &&
			  s->filesz == ph.filesz && s->file_off == ph.off && s->flags == ph.flags);
		ELF_F_CHECK(ph.off <= size && ph.filesz <= size - ph.off);
		ELF_F_CHECK(ph.filesz <= ph.memsz);
		ELF_F_CHECK(ph.vaddr < limit && ph.memsz <= limit - ph.vaddr);
		ELF_F_CHECK(ph.paddr < limit && ph.memsz <= limit - ph.paddr);
		if (img->entry >= ph.vaddr && img->entry - ph.vaddr < ph.memsz && (ph.flags & 1))
			entry_ok = true;
		lo = ph.vaddr < lo ? ph.vaddr : lo;
		hi = ph.vaddr + ph.memsz > hi ? ph.vaddr + ph.memsz : hi;
	}
	ELF_F_CHECK(n == img->nseg);
	ELF_F_CHECK(n >= 1 && n <= ELF_MAX_SEGS);
	ELF_F_CHECK(entry_ok);
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++) {
			const struct elf_seg *a = &img->seg[i], *c = &img->seg[j];

			ELF_F_CHECK(a->vaddr + a->memsz <= c->vaddr || c->vaddr + c->memsz <= a->vaddr);
			ELF_F_CHECK(a->paddr + a->memsz <= c->paddr || c->paddr + c->memsz <= a->paddr);
		}
	ELF_F_CHECK(img->vmin == (lo & ~0xfffull));
	ELF_F_CHECK(img->vmax >= hi);
	ELF_F_CHECK(img->vmax - hi < 4096);
	ELF_F_CHECK(img->vmax % 4096 == 0);
	ELF_F_CHECK(elf_check_range(img, lo, hi, NULL) == 0);
}

static uint64_t elf_f_rng;

static uint64_t elf_f_rand(void)
{
	elf_f_rng ^= elf_f_rng >> 12;
	elf_f_rng ^= elf_f_rng << 25;
	elf_f_rng ^= elf_f_rng >> 27;
	return elf_f_rng * 2685821657736338717ull;
}

/* Values that sit on the edges the parser must handle. */
static uint64_t elf_f_edge(void)
{
	static const uint64_t v[] = { 0, 1, 2, 0x1000, 0x1200, 0xfff, 0x7fffffff,
				      0xffffffff, 0x100000000ull, UINT64_MAX, UINT64_MAX - 1,
				      0xffffffff80100000ull, 0x8000000000000000ull, ELF_T_SIZE };

	return v[elf_f_rand() % (sizeof(v) / sizeof(v[0]))];
}

static void elf_f_mutate(uint8_t *b, size_t *size, int cls)
{
	/* Aim at the headers: mutations in segment bytes change nothing. */
	size_t span = cls == 64 ? ELF_T_PHOFF64 + 4 * 56 : ELF_T_PHOFF32 + 2 * 32;
	int k = 1 + (int)(elf_f_rand() % 3);

	while (k--) {
		size_t at = elf_f_rand() % span;
		uint64_t r = elf_f_rand() % 8;

		if (r < 3) {
			b[at] ^= (uint8_t)(1u << (elf_f_rand() % 8));
		} else if (r < 5) {
			uint64_t v = elf_f_edge() + (elf_f_rand() % 3) - 1;
			int w = cls == 64 ? 8 : 4;

			at &= ~(size_t)(w - 1);
			if (at + (size_t)w <= span)
				memcpy(b + at, &v, (size_t)w);
		} else if (r < 6) {
			b[at] = (uint8_t)elf_f_rand();
		} else if (r < 7) {
			*size = elf_f_rand() % (*size + 1);
		} else {
			/* Small delta in a segment's address or size: hits overlaps. */
			int w = cls == 64 ? 8 : 4;
			uint64_t v = 0;

			at &= ~(size_t)(w - 1);
			if (at + (size_t)w > span)
				continue;
			memcpy(&v, b + at, (size_t)w);
			v += (elf_f_rand() % 0x4000) - 0x2000;
			memcpy(b + at, &v, (size_t)w);
		}
	}
}

static void elf_f_run(int cls, int iters, uint64_t seed)
{
	static _Alignas(8) uint8_t orig[ELF_T_SIZE], b[ELF_T_SIZE];
	size_t n = cls == 64 ? elf_t_build64(orig) : elf_t_build32(orig);
	int accepted = 0, refused = 0;

	elf_f_rng = seed;
	for (int i = 0; i < iters; i++) {
		struct elf_image img;
		const char *why;
		size_t size = n;
		int rc;

		memcpy(b, orig, n);
		elf_f_mutate(b, &size, cls);
		rc = elf_t_parse(b, size, cls, &img, &why);
		if (rc == 0) {
			accepted++;
			elf_f_verify(b, size, cls, &img);
		} else {
			refused++;
			ELF_F_CHECK(rc == -ENOEXEC);
			ELF_F_CHECK(why != NULL);
			ELF_F_CHECK(img.nseg == 0);
		}
	}
	/* Both outcomes must be exercised, or the fuzz proves nothing. */
	cr_assert_gt(accepted, iters / 20, "accepted %d", accepted);
	cr_assert_gt(refused, iters / 5, "refused %d", refused);
}

Test(elf, fuzz64)
{
	elf_f_run(64, 200000, 0x1234567);
}

Test(elf, fuzz32)
{
	elf_f_run(32, 200000, 0x7654321);
}
