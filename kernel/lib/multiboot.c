/*
 * Multiboot 1 guest loading (spec 0.6.96), pure.  Uses only memcpy, memset,
 * memcmp and strlen from libc.
 *
 * All arithmetic on image values is 64-bit on 32-bit fields, or written as
 * "x > limit - y", so nothing a corrupt image holds can wrap a check.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/elf.h"
#include "kernel/lib/byteorder.h"
#include "kernel/lib/multiboot.h"

_Static_assert(MB_MAX_SEGS == ELF_MAX_SEGS, "one plan region per ELF segment");

#define MB_4G		(1ull << 32)
#define MB_HDR_BASE	12	/* magic, flags, checksum */
#define MB_HDR_AOUT	32	/* + the five address fields */
#define MB_HDR_VIDEO	48	/* + the four video fields */

static int mb_fail(const char **why, const char *msg, int rc)
{
	if (why)
		*why = msg;
	return rc;
}

/* Header search: spec 3.1.1 ("OS image format"). */
static bool mb_scan(const uint8_t *p, size_t limit, size_t *off)
{
	for (size_t o = 0; o + MB_HDR_BASE <= limit; o += MB_HEADER_ALIGN) {
		uint32_t magic = ld_le32(p + o);

		if (magic != MB_HEADER_MAGIC)
			continue;
		if ((uint32_t)(magic + ld_le32(p + o + 4) + ld_le32(p + o + 8)) == 0) {
			*off = o;
			return true;
		}
	}
	return false;
}

int mb_find_header(const void *img, size_t size, struct mb_header *out, const char **why)
{
	const uint8_t *p = img;
	size_t limit = size < MB_SEARCH_LIMIT ? size : MB_SEARCH_LIMIT, off, need;
	uint32_t w[MB_HDR_VIDEO / 4] = { 0 };

	memset(out, 0, sizeof(*out));
	if (!p)
		limit = 0;
	if (!mb_scan(p, limit, &off))
		return mb_fail(why, "no multiboot header", -ENOEXEC);
	w[1] = ld_le32(p + off + 4);
	if (w[1] & MB_HF_REQUIRED_MASK & ~MB_HF_KNOWN_REQUIRED)
		return mb_fail(why, "multiboot header requires unsupported features", -ENOEXEC);
	need = w[1] & MB_HF_VIDEO ? MB_HDR_VIDEO : w[1] & MB_HF_AOUT_KLUDGE ? MB_HDR_AOUT
									     : MB_HDR_BASE;
	if (need > limit - off)
		return mb_fail(why, "multiboot header truncated", -ENOEXEC);
	for (size_t k = 0; k < need / 4; k++)
		w[k] = ld_le32(p + off + 4 * k);
	*out = (struct mb_header){ (uint32_t)off, w[0], w[1], w[2], 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	if (w[1] & MB_HF_AOUT_KLUDGE) {
		out->header_addr = w[3];
		out->load_addr = w[4];
		out->load_end_addr = w[5];
		out->bss_end_addr = w[6];
		out->entry_addr = w[7];
	}
	if (w[1] & MB_HF_VIDEO) {
		out->mode_type = w[8];
		out->width = w[9];
		out->height = w[10];
		out->depth = w[11];
	}
	return 0;
}

static void mb_add_copy(struct mb_load_plan *plan, uint64_t dst, uint64_t src, uint64_t len)
{
	if (len)
		plan->copy[plan->ncopy++] = (struct mb_copy){ dst, src, len };
}

static void mb_add_zero(struct mb_load_plan *plan, uint64_t dst, uint64_t len)
{
	if (len)
		plan->zero[plan->nzero++] = (struct mb_zero){ dst, len };
}

/* The a.out kludge: spec 3.1.3, "The address fields of Multiboot header". */
static int mb_plan_aout(const struct mb_header *h, size_t size, struct mb_load_plan *plan,
			const char **why)
{
	uint64_t delta, src, len, end;

	if (h->load_addr > h->header_addr)
		return mb_fail(why, "load_addr above header_addr", -ENOEXEC);
	delta = (uint64_t)h->header_addr - h->load_addr;
	if (delta > h->offset)
		return mb_fail(why, "load_addr before the start of the file", -ENOEXEC);
	src = h->offset - delta;
	if (h->load_end_addr == 0) {
		len = size - src;		/* the rest of the file */
	} else {
		if (h->load_end_addr < h->load_addr)
			return mb_fail(why, "load_end_addr below load_addr", -ENOEXEC);
		len = (uint64_t)h->load_end_addr - h->load_addr;
		if (len > size - src)
			return mb_fail(why, "load area beyond the end of the file", -ENOEXEC);
	}
	end = h->load_addr + len;
	if (h->entry_addr < h->load_addr || h->entry_addr >= end)
		return mb_fail(why, "entry point outside the loaded image", -ENOEXEC);
	mb_add_copy(plan, h->load_addr, src, len);
	if (h->bss_end_addr) {
		if (h->bss_end_addr < end)
			return mb_fail(why, "bss_end_addr below the load end", -ENOEXEC);
		mb_add_zero(plan, end, h->bss_end_addr - end);
	}
	plan->entry = h->entry_addr;
	return 0;
}

/*
 * ELF: segments go to their physical addresses and the entry point, a
 * virtual address, is moved by its segment's vaddr-to-paddr offset, as
 * GRUB does, because paging is off at entry.
 */
static int mb_plan_elf(const void *img, size_t size, struct mb_load_plan *plan,
		       const char **why)
{
	static const uint8_t elf_magic[4] = { 0x7f, 'E', 'L', 'F' };
	struct elf_image elf;
	int rc;

	if (size < sizeof(elf_magic) || memcmp(img, elf_magic, sizeof(elf_magic)))
		return mb_fail(why, "not ELF and no a.out kludge in the multiboot header",
			       -ENOEXEC);
	rc = elf_parse(img, size, 32, ELF_EM_386, &elf, why);
	if (rc)
		return rc == -ENOEXEC ? rc : -ENOEXEC;
	for (int k = 0; k < elf.nseg; k++) {
		const struct elf_seg *s = &elf.seg[k];

		mb_add_copy(plan, s->paddr, s->file_off, s->filesz);
		mb_add_zero(plan, s->paddr + s->filesz, s->memsz - s->filesz);
		if (elf.entry >= s->vaddr && elf.entry - s->vaddr < s->memsz)
			plan->entry = (uint32_t)(elf.entry - s->vaddr + s->paddr);
	}
	return 0;
}

static bool mb_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;	/* callers keep ends below 2^33 */
}

/* One region against the guest layout in multiboot.h. */
static int mb_check_region(uint64_t dst, uint64_t len, uint64_t ram, const char **why)
{
	uint64_t top = ram < MB_4G ? ram : MB_4G;

	if (dst < MB_LOAD_MIN)
		return mb_fail(why, "segment below 4 KiB", -ENOEXEC);
	if (dst > top || len > top - dst)
		return mb_fail(why, "segment beyond guest RAM", -ENOEXEC);
	if (mb_overlap(dst, len, MB_INFO_GPA, MB_INFO_SIZE))
		return mb_fail(why, "segment overlaps the boot information area", -ENOEXEC);
	if (mb_overlap(dst, len, MB_LOW_END, MB_HIGH_START - MB_LOW_END))
		return mb_fail(why, "segment in the legacy hole below 1 MiB", -ENOEXEC);
	return 0;
}

static int mb_check_plan(struct mb_load_plan *plan, uint64_t ram, const char **why)
{
	bool entry_in = false;

	plan->lo = UINT64_MAX;
	for (int k = 0; k < plan->ncopy + plan->nzero; k++) {
		bool is_copy = k < plan->ncopy;
		uint64_t dst = is_copy ? plan->copy[k].dst_gpa : plan->zero[k - plan->ncopy].dst_gpa;
		uint64_t len = is_copy ? plan->copy[k].len : plan->zero[k - plan->ncopy].len;
		int rc = mb_check_region(dst, len, ram, why);

		if (rc)
			return rc;
		if (dst < plan->lo)
			plan->lo = dst;
		if (dst + len > plan->hi)
			plan->hi = dst + len;
		entry_in |= plan->entry >= dst && plan->entry - dst < len;
	}
	if (!entry_in)
		return mb_fail(why, "entry point outside the loaded image", -ENOEXEC);
	return 0;
}

int mb_plan_load(const void *img, size_t size, uint64_t guest_ram,
		 struct mb_load_plan *plan, const char **why)
{
	struct mb_header h;
	int rc;

	memset(plan, 0, sizeof(*plan));
	if (guest_ram < MB_HIGH_START)
		return mb_fail(why, "guest RAM below 1 MiB", -EINVAL);
	rc = mb_find_header(img, size, &h, why);
	if (rc)
		goto fail;
	if (h.flags & MB_HF_AOUT_KLUDGE)
		rc = mb_plan_aout(&h, size, plan, why);
	else
		rc = mb_plan_elf(img, size, plan, why);
	if (rc)
		goto fail;
	rc = mb_check_plan(plan, guest_ram, why);
	if (rc)
		goto fail;
	plan->header_flags = h.flags;
	return 0;
fail:
	memset(plan, 0, sizeof(*plan));
	return rc;
}

/* ---- Boot information (spec 3.3) ---- */

struct mb_area {
	uint8_t *p;
	size_t size, used;
	uint32_t gpa;
};

/* Reserve len bytes at an 8-byte aligned offset; false if they don't fit. */
static bool mb_reserve(struct mb_area *a, size_t len, size_t *off)
{
	size_t o = (a->used + 7) & ~(size_t)7;

	if (o > a->size || len > a->size - o)
		return false;
	*off = o;
	a->used = o + len;
	return true;
}

/* Copy a NUL-terminated string into the area; its GPA in *gpa. */
static bool mb_put_str(struct mb_area *a, const char *s, uint32_t *gpa)
{
	size_t n = strlen(s), off;

	if (n >= a->size || !mb_reserve(a, n + 1, &off))
		return false;
	memcpy(a->p + off, s, n + 1);
	*gpa = a->gpa + (uint32_t)off;
	return true;
}

/* The map of the layout comment in multiboot.h; returns the entry count. */
static int mb_make_map(uint64_t ram, struct mb_mmap_entry map[4])
{
	static const struct { uint64_t lo, hi; uint32_t type; } fixed[3] = {
		{ 0, MB_LOW_END, MB_MMAP_AVAILABLE },
		{ MB_LOW_END, MB_HOLE_END, MB_MMAP_RESERVED },
		{ MB_BIOS_START, MB_HIGH_START, MB_MMAP_RESERVED },
	};
	int n = 0;

	for (int k = 0; k < 3; k++)
		map[n++] = (struct mb_mmap_entry){ 20, fixed[k].lo, fixed[k].hi - fixed[k].lo,
						   fixed[k].type };
	if (ram > MB_HIGH_START)
		map[n++] = (struct mb_mmap_entry){ 20, MB_HIGH_START, ram - MB_HIGH_START,
						   MB_MMAP_AVAILABLE };
	return n;
}

int mb_plan_modules(const struct mb_load_plan *plan, uint64_t guest_ram,
		    struct mb_module *mods, int n, const char **why)
{
	/* Below 4 GiB - 4 KiB: mod_end, a 32-bit field, must not wrap. */
	uint64_t top = guest_ram < MB_4G - MB_PAGE ? guest_ram : MB_4G - MB_PAGE;
	uint64_t at = (plan->hi + MB_PAGE - 1) & ~(uint64_t)(MB_PAGE - 1);

	if (n < 0 || n > MB_MAX_MODS)
		return mb_fail(why, "too many multiboot modules", -E2BIG);
	if (at < MB_HIGH_START)
		at = MB_HIGH_START;
	for (int k = 0; k < n; k++) {
		if (at > top || mods[k].size > top - at)
			return mb_fail(why, "modules do not fit in guest RAM below 4 GiB",
				       -ENOSPC);
		mods[k].start = (uint32_t)at;
		at = (at + mods[k].size + MB_PAGE - 1) & ~(uint64_t)(MB_PAGE - 1);
	}
	return 0;
}

size_t mb_make_cmdline(char *out, size_t size, const char *prog, const char *cmdline)
{
	const char *parts[3] = { prog && *prog ? prog : "kernel", " ", cmdline };
	size_t len = 0;

	if (!cmdline || !*cmdline)
		parts[1] = parts[2] = "";
	for (int k = 0; k < 3; k++)
		for (const char *c = parts[k]; *c; c++, len++)
			if (len + 1 < size)
				out[len] = *c;
	if (size)
		out[len < size ? len : size - 1] = 0;
	return len;
}

/* SDM Vol. 3A 3.4.5: base 0, limit 0xfffff with G = 1 (4 GiB), D/B = 1,
 * P = 1, S = 1, DPL 0; type 0xb (code, execute/read, accessed) and 0x3
 * (data, read/write, accessed) -- the attributes the entry state loads. */
void mb_build_gdt(uint8_t out[MB_GDT_SIZE])
{
	memset(out, 0, MB_GDT_SIZE);
	st_le32(out + MB_SEL_CODE, 0x0000ffffu);
	st_le32(out + MB_SEL_CODE + 4, 0x00cf9b00u);
	st_le32(out + MB_SEL_DATA, 0x0000ffffu);
	st_le32(out + MB_SEL_DATA + 4, 0x00cf9300u);
}

int mb_build_info(uint8_t *area, size_t area_size, uint32_t area_gpa, uint64_t guest_ram,
		  const char *cmdline, const char *bootloader_name, uint32_t *info_gpa_out)
{
	return mb_build_info_mods(area, area_size, area_gpa, guest_ram, cmdline,
				  bootloader_name, NULL, 0, info_gpa_out);
}

static bool mb_put_mods(struct mb_area *a, const struct mb_module *mods, int n,
			struct mb_info *info)
{
	size_t off;

	if (n <= 0)
		return true;
	if (!mb_reserve(a, sizeof(struct mb_mod_entry) * (size_t)n, &off))
		return false;
	for (int k = 0; k < n; k++) {
		uint32_t str;
		struct mb_mod_entry e;

		if (!mb_put_str(a, mods[k].string ? mods[k].string : "", &str))
			return false;
		e = (struct mb_mod_entry){ mods[k].start,
					   (uint32_t)(mods[k].start + mods[k].size), str, 0 };
		memcpy(a->p + off + sizeof(e) * (size_t)k, &e, sizeof(e));
	}
	info->mods_count = (uint32_t)n;
	info->mods_addr = a->gpa + (uint32_t)off;
	info->flags |= MB_INFO_MODS;
	return true;
}

int mb_build_info_mods(uint8_t *area, size_t area_size, uint32_t area_gpa,
		       uint64_t guest_ram, const char *cmdline, const char *bootloader_name,
		       const struct mb_module *mods, int nmods, uint32_t *info_gpa_out)
{
	struct mb_area a = { area, area_size, 0, area_gpa };
	struct mb_info info = { 0 };
	struct mb_mmap_entry map[4];
	uint64_t upper_kb;
	uint32_t str_gpa;
	size_t info_off, map_off;
	int n;

	if (!area || guest_ram < MB_HIGH_START || area_size > MB_4G - area_gpa ||
	    nmods < 0 || nmods > MB_MAX_MODS || (nmods && !mods))
		return -EINVAL;
	memset(area, 0, area_size);
	n = mb_make_map(guest_ram, map);
	if (!mb_reserve(&a, sizeof(info), &info_off) ||
	    !mb_reserve(&a, sizeof(map[0]) * (size_t)n, &map_off))
		goto nospace;
	upper_kb = (guest_ram - MB_HIGH_START) / 1024;
	info.flags = MB_INFO_MEMORY | MB_INFO_MEM_MAP;
	info.mem_lower = MB_MEM_LOWER_KB;
	info.mem_upper = upper_kb > UINT32_MAX ? UINT32_MAX : (uint32_t)upper_kb;
	info.mmap_addr = area_gpa + (uint32_t)map_off;
	info.mmap_length = (uint32_t)(sizeof(map[0]) * (size_t)n);
	memcpy(area + map_off, map, sizeof(map[0]) * (size_t)n);
	if (cmdline) {
		if (!mb_put_str(&a, cmdline, &str_gpa))
			goto nospace;
		info.cmdline = str_gpa;
		info.flags |= MB_INFO_CMDLINE;
	}
	if (bootloader_name) {
		if (!mb_put_str(&a, bootloader_name, &str_gpa))
			goto nospace;
		info.boot_loader_name = str_gpa;
		info.flags |= MB_INFO_BOOT_LOADER_NAME;
	}
	if (!mb_put_mods(&a, mods, nmods, &info))
		goto nospace;
	memcpy(area + info_off, &info, sizeof(info));
	if (info_gpa_out)
		*info_gpa_out = area_gpa + (uint32_t)info_off;
	return 0;
nospace:
	memset(area, 0, area_size);
	return -ENOSPC;
}

void mb_entry_regs(const struct mb_load_plan *plan, uint32_t info_gpa,
		   struct mb_entry_state *out)
{
	out->eip = plan->entry;
	out->eax = MB_BOOTLOADER_MAGIC;
	out->ebx = info_gpa;
	out->gdtr_base = MB_GDT_GPA;
	out->gdtr_limit = MB_GDT_SIZE - 1;
}
