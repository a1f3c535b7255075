/*
 * ELF executable validation (LOADER-SAFE: memcpy/memset/memcmp only).
 *
 * Both classes are first normalised into the same internal header and
 * program-header form, so every rule is written once.  All arithmetic on
 * file values is done as "x > limit - y" comparisons that cannot wrap.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/elf.h"

#define ELF_PAGE	4096ull
#define ELF_PT_INTERP	3

/* A header of either class, widened. */
struct elf_hdr {
	uint16_t type, machine, phentsize, phnum;
	uint32_t version;
	uint64_t entry, phoff;
};

/* A program header of either class, widened. */
struct elf_ph {
	uint32_t type, flags;
	uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

static int elf_fail(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -ENOEXEC;
}

/* e_ident checks shared by both classes: gABI "ELF Identification". */
static int elf_check_ident(const uint8_t *p, size_t size, int cls, const char **why)
{
	static const uint8_t magic[4] = { 0x7f, 'E', 'L', 'F' };
	size_t hsize = cls == 64 ? sizeof(struct elf64_ehdr) : sizeof(struct elf32_ehdr);

	if (size < sizeof(magic) || memcmp(p, magic, sizeof(magic)))
		return elf_fail(why, "bad magic");
	if (size < ELF_NIDENT)
		return elf_fail(why, "file truncated");
	if (p[4] != (cls == 64 ? ELF_CLASS64 : ELF_CLASS32))
		return elf_fail(why, cls == 64 ? "not ELF64" : "not ELF32");
	if (p[5] != ELF_DATA2LSB)
		return elf_fail(why, "not little-endian");
	if (p[6] != ELF_EV_CURRENT)
		return elf_fail(why, "bad ELF version");
	if (size < hsize)
		return elf_fail(why, "file truncated");
	return 0;
}

static void elf_read_hdr(const uint8_t *p, int cls, struct elf_hdr *h)
{
	if (cls == 64) {
		struct elf64_ehdr e;

		memcpy(&e, p, sizeof(e));
		*h = (struct elf_hdr){ e.e_type, e.e_machine, e.e_phentsize,
				       e.e_phnum, e.e_version, e.e_entry, e.e_phoff };
	} else {
		struct elf32_ehdr e;

		memcpy(&e, p, sizeof(e));
		*h = (struct elf_hdr){ e.e_type, e.e_machine, e.e_phentsize,
				       e.e_phnum, e.e_version, e.e_entry, e.e_phoff };
	}
}

static void elf_read_ph(const uint8_t *p, int cls, struct elf_ph *ph)
{
	if (cls == 64) {
		struct elf64_phdr e;

		memcpy(&e, p, sizeof(e));
		*ph = (struct elf_ph){ e.p_type, e.p_flags, e.p_offset, e.p_vaddr,
				       e.p_paddr, e.p_filesz, e.p_memsz, e.p_align };
	} else {
		struct elf32_phdr e;

		memcpy(&e, p, sizeof(e));
		*ph = (struct elf_ph){ e.p_type, e.p_flags, e.p_offset, e.p_vaddr,
				       e.p_paddr, e.p_filesz, e.p_memsz, e.p_align };
	}
}

static const char *elf_machine_msg(uint16_t machine)
{
	if (machine == ELF_EM_X86_64)
		return "not x86-64";
	if (machine == ELF_EM_386)
		return "not i386";
	return "wrong machine";
}

static int elf_check_hdr(const struct elf_hdr *h, size_t size, int cls,
			 uint16_t want_machine, const char **why)
{
	uint64_t phsize = cls == 64 ? sizeof(struct elf64_phdr) : sizeof(struct elf32_phdr);
	uint64_t table;

	if (h->version != ELF_EV_CURRENT)
		return elf_fail(why, "bad ELF version");
	if (h->type != ELF_ET_EXEC)
		return elf_fail(why, "not an executable (ET_EXEC)");
	if (h->machine != want_machine)
		return elf_fail(why, elf_machine_msg(want_machine));
	if (h->phentsize != phsize)
		return elf_fail(why, "bad program header size");
	/* PN_XNUM: the count is in section header 0, which we do not read. */
	if (h->phnum == ELF_PN_XNUM)
		return elf_fail(why, "too many program headers");
	table = (uint64_t)h->phnum * phsize;	/* <= 65534 * 56: no wrap */
	if (h->phoff > size || table > size - h->phoff)
		return elf_fail(why, "program headers outside file");
	return 0;
}

/* Highest exclusive end a segment may have: 4 GiB for ELF32; for ELF64 the
 * last page is excluded so rounding vmax up to a page cannot wrap. */
static uint64_t elf_addr_limit(int cls)
{
	return cls == 64 ? UINT64_MAX & ~(ELF_PAGE - 1) : 1ull << 32;
}

static bool elf_span_ok(uint64_t base, uint64_t len, uint64_t limit)
{
	return base <= limit && len <= limit - base;
}

/* The per-segment rules of the gABI "Program Header" chapter. */
static int elf_check_load(const struct elf_ph *ph, size_t size, int cls, const char **why)
{
	uint64_t limit = elf_addr_limit(cls);

	if (ph->offset > size || ph->filesz > size - ph->offset)
		return elf_fail(why, "segment outside file");
	if (ph->memsz < ph->filesz)
		return elf_fail(why, "memsz < filesz");
	if (!elf_span_ok(ph->vaddr, ph->memsz, limit) ||
	    !elf_span_ok(ph->paddr, ph->memsz, limit))
		return elf_fail(why, "address overflow");
	/* "p_align should be a positive, integral power of 2, and p_vaddr
	 * should equal p_offset, modulo p_align"; 0 and 1 mean none. */
	if (ph->align > 1) {
		uint64_t m = ph->align - 1;

		if (ph->align & m)
			return elf_fail(why, "bad segment alignment");
		if ((ph->offset & m) != (ph->vaddr & m))
			return elf_fail(why, "segment offset and address not congruent");
	}
	return 0;
}

static bool elf_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;	/* ends checked not to wrap */
}

static int elf_add_seg(struct elf_image *img, const struct elf_ph *ph, const char **why)
{
	struct elf_seg *s;

	for (int i = 0; i < img->nseg; i++) {
		const struct elf_seg *o = &img->seg[i];

		if (elf_overlap(ph->vaddr, ph->memsz, o->vaddr, o->memsz))
			return elf_fail(why, "segments overlap");
		if (elf_overlap(ph->paddr, ph->memsz, o->paddr, o->memsz))
			return elf_fail(why, "segments overlap in physical memory");
	}
	if (img->nseg == ELF_MAX_SEGS)
		return elf_fail(why, "too many segments");
	s = &img->seg[img->nseg++];
	*s = (struct elf_seg){ ph->vaddr, ph->paddr, ph->offset, ph->filesz,
			       ph->memsz, ph->flags };
	return 0;
}

static int elf_walk_phdrs(const uint8_t *p, size_t size, int cls,
			  const struct elf_hdr *h, struct elf_image *img, const char **why)
{
	for (unsigned i = 0; i < h->phnum; i++) {
		struct elf_ph ph;
		int rc;

		elf_read_ph(p + h->phoff + (uint64_t)i * h->phentsize, cls, &ph);
		if (ph.type == ELF_PT_INTERP)
			return elf_fail(why, "needs a program interpreter");
		if (ph.type != ELF_PT_LOAD)
			continue;
		rc = elf_check_load(&ph, size, cls, why);
		if (rc)
			return rc;
		if (ph.memsz == 0)
			continue;	/* occupies nothing; ld emits these */
		rc = elf_add_seg(img, &ph, why);
		if (rc)
			return rc;
	}
	if (img->nseg == 0)
		return elf_fail(why, "no loadable segment");
	return 0;
}

static int elf_check_entry(const struct elf_image *img, const char **why)
{
	bool inside = false;

	for (int i = 0; i < img->nseg; i++) {
		const struct elf_seg *s = &img->seg[i];

		if (img->entry < s->vaddr || img->entry - s->vaddr >= s->memsz)
			continue;
		if (s->flags & ELF_PF_X)
			return 0;
		inside = true;
	}
	return elf_fail(why, inside ? "entry point in a non-executable segment"
				    : "entry point outside loaded segments");
}

static void elf_span(struct elf_image *img)
{
	uint64_t lo = UINT64_MAX, hi = 0;

	for (int i = 0; i < img->nseg; i++) {
		const struct elf_seg *s = &img->seg[i];

		if (s->vaddr < lo)
			lo = s->vaddr;
		if (s->vaddr + s->memsz > hi)
			hi = s->vaddr + s->memsz;
	}
	img->vmin = lo & ~(ELF_PAGE - 1);
	img->vmax = (hi + ELF_PAGE - 1) & ~(ELF_PAGE - 1);	/* hi <= limit */
}

int elf_parse(const void *data, size_t size, int want_class,
	      uint16_t want_machine, struct elf_image *out, const char **why)
{
	const uint8_t *p = data;
	struct elf_hdr h;
	int rc;

	memset(out, 0, sizeof(*out));
	if (want_class != 32 && want_class != 64) {
		if (why)
			*why = "unsupported ELF class requested";
		return -EINVAL;
	}
	if (!p)
		size = 0;
	rc = elf_check_ident(p, size, want_class, why);
	if (rc)
		goto fail;
	elf_read_hdr(p, want_class, &h);
	rc = elf_check_hdr(&h, size, want_class, want_machine, why);
	if (rc)
		goto fail;
	out->cls = want_class;
	out->entry = h.entry;
	rc = elf_walk_phdrs(p, size, want_class, &h, out, why);
	if (rc)
		goto fail;
	rc = elf_check_entry(out, why);
	if (rc)
		goto fail;
	elf_span(out);
	return 0;
fail:
	/* Leave nothing a careless caller could load from. */
	memset(out, 0, sizeof(*out));
	return rc;
}

static int elf_check_any_range(const struct elf_image *img, uint64_t lo, uint64_t hi,
			       bool phys, const char **why)
{
	for (int i = 0; i < img->nseg; i++) {
		const struct elf_seg *s = &img->seg[i];
		uint64_t base = phys ? s->paddr : s->vaddr;

		if (base < lo || base > hi || s->memsz > hi - base)
			return elf_fail(why, "segment outside allowed range");
	}
	return 0;
}

int elf_check_range(const struct elf_image *img, uint64_t lo, uint64_t hi,
		    const char **why)
{
	return elf_check_any_range(img, lo, hi, false, why);
}

int elf_check_phys_range(const struct elf_image *img, uint64_t lo, uint64_t hi,
			 const char **why)
{
	return elf_check_any_range(img, lo, hi, true, why);
}
