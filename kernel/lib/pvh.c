/*
 * PVH boot planning (pvh.h).  Pure: reads the image and the request only
 * through bounds-checked copies; all arithmetic on file values is done as
 * "x > limit - y" comparisons that cannot wrap.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "kernel/lib/elf.h"
#include "kernel/lib/pvh.h"

#define PVH_PAGE	4096ull
#define PVH_1M		0x100000ull
/* Linux x86 COMMAND_LINE_SIZE (2048 with the NUL): the PVH entry copies
 * the line into a buffer that size, so longer lines would be cut. */
#define PVH_CMDLINE_MAX	2048u
#define PVH_NOTE_HDR	12u		/* namesz, descsz, type */

static int pvh_fail(const char **why, const char *msg, int rc)
{
	if (why)
		*why = msg;
	return rc;
}

static bool pvh_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;	/* callers keep ends < 2^64 */
}

/* ---- ELF header and notes ---- */

static int pvh_read_ehdr(const uint8_t *p, size_t size, struct elf64_ehdr *eh,
			 const char **why)
{
	static const uint8_t magic[4] = { 0x7f, 'E', 'L', 'F' };

	if (!p || size < sizeof(*eh) || memcmp(p, magic, sizeof(magic)))
		return pvh_fail(why, "not an ELF file", -ENOEXEC);
	memcpy(eh, p, sizeof(*eh));
	if (eh->e_ident[4] != ELF_CLASS64 || eh->e_ident[5] != ELF_DATA2LSB)
		return pvh_fail(why, "not a little-endian ELF64", -ENOEXEC);
	if (eh->e_type != ELF_ET_EXEC || eh->e_machine != ELF_EM_X86_64)
		return pvh_fail(why, "not an x86-64 executable", -ENOEXEC);
	if (eh->e_phentsize != sizeof(struct elf64_phdr) || eh->e_phnum == ELF_PN_XNUM)
		return pvh_fail(why, "bad program header table", -ENOEXEC);
	if (eh->e_phoff > size ||
	    (uint64_t)eh->e_phnum * sizeof(struct elf64_phdr) > size - eh->e_phoff)
		return pvh_fail(why, "program headers outside file", -ENOEXEC);
	return 0;
}

static void pvh_read_phdr(const uint8_t *p, const struct elf64_ehdr *eh, unsigned i,
			  struct elf64_phdr *ph)
{
	memcpy(ph, p + eh->e_phoff + (uint64_t)i * sizeof(*ph), sizeof(*ph));
}

static uint64_t pvh_pad4(uint64_t n)
{
	return (n + 3) & ~3ull;		/* n <= 2^32: no wrap */
}

/*
 * Walk the notes in p[off, off + len) (gABI "Note Section": namesz,
 * descsz, type, then name and desc each padded to 4 bytes).  Returns 1
 * with *entry set when the PHYS32_ENTRY note is found, 0 when not, or a
 * negative errno for a malformed note.
 */
static int pvh_scan_notes(const uint8_t *p, uint64_t off, uint64_t len, uint32_t *entry,
			  const char **why)
{
	static const char xen[4] = "Xen";	/* with its NUL: namesz 4 */

	while (len >= PVH_NOTE_HDR) {
		uint32_t namesz = ld_le32(p + off), descsz = ld_le32(p + off + 4);
		uint32_t type = ld_le32(p + off + 8);
		uint64_t name = off + PVH_NOTE_HDR, desc = name + pvh_pad4(namesz);
		uint64_t total = PVH_NOTE_HDR + pvh_pad4(namesz) + pvh_pad4(descsz);

		if (total > len || desc + descsz > off + len)
			return pvh_fail(why, "ELF note runs past its segment", -ENOEXEC);
		if (namesz == sizeof(xen) && !memcmp(p + name, xen, sizeof(xen)) &&
		    type == PVH_NOTE_PHYS32_ENTRY) {
			uint64_t v = 0;

			/* Linux emits .long; Xen's docs allow any width up to 8. */
			if (descsz != 4 && descsz != 8)
				return pvh_fail(why, "PVH entry note has a bad size", -ENOEXEC);
			memcpy(&v, p + desc, descsz);
			if (v == 0 || v >= BZI_4G)
				return pvh_fail(why, "PVH entry not a 32-bit address", -ENOEXEC);
			*entry = (uint32_t)v;
			return 1;
		}
		off += total;
		len -= total;
	}
	return 0;
}

int pvh_find_entry(const void *img, size_t size, uint32_t *entry, const char **why)
{
	const uint8_t *p = img;
	struct elf64_ehdr eh;
	int rc = pvh_read_ehdr(p, size, &eh, why);

	*entry = 0;
	if (rc)
		return rc;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		struct elf64_phdr ph;

		pvh_read_phdr(p, &eh, i, &ph);
		if (ph.p_type != PVH_ELF_PT_NOTE)
			continue;
		if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset)
			return pvh_fail(why, "note segment outside file", -ENOEXEC);
		rc = pvh_scan_notes(p, ph.p_offset, ph.p_filesz, entry, why);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return 0;
	}
	return pvh_fail(why, "no XEN_ELFNOTE_PHYS32_ENTRY note (kernel without CONFIG_PVH)",
			-ENOEXEC);
}

/* ---- segments ---- */

static int pvh_add_seg(struct pvh_plan *plan, const struct elf64_phdr *ph, size_t size,
		       const struct bzi_request *req, const char **why)
{
	if (ph->p_offset > size || ph->p_filesz > size - ph->p_offset)
		return pvh_fail(why, "segment outside file", -ENOEXEC);
	if (ph->p_memsz < ph->p_filesz)
		return pvh_fail(why, "memsz < filesz", -ENOEXEC);
	/* Paging is off at the PVH entry: segments load at p_paddr. */
	if (ph->p_paddr < PVH_1M || ph->p_paddr >= BZI_4G || ph->p_memsz > BZI_4G - ph->p_paddr)
		return pvh_fail(why, "segment not between 1 MiB and 4 GiB", -ENOEXEC);
	if (!bzi_in_ram(req, ph->p_paddr, ph->p_memsz))
		return pvh_fail(why, "segment not in guest RAM", -ENOMEM);
	for (int i = 0; i < plan->nseg; i++)
		if (pvh_overlap(ph->p_paddr, ph->p_memsz, plan->seg[i].gpa, plan->seg[i].memsz))
			return pvh_fail(why, "segments overlap in physical memory", -ENOEXEC);
	if (plan->nseg == PVH_MAX_SEGS)
		return pvh_fail(why, "too many segments", -ENOEXEC);
	plan->seg[plan->nseg++] = (struct pvh_seg){ ph->p_paddr, ph->p_offset,
						    ph->p_filesz, ph->p_memsz };
	return 0;
}

static int pvh_plan_segs(const uint8_t *p, size_t size, const struct bzi_request *req,
			 struct pvh_plan *plan, const char **why)
{
	struct elf64_ehdr eh;
	uint64_t lo = UINT64_MAX, hi = 0;
	bool entry_ok = false;
	int rc = pvh_read_ehdr(p, size, &eh, why);

	for (unsigned i = 0; !rc && i < eh.e_phnum; i++) {
		struct elf64_phdr ph;

		pvh_read_phdr(p, &eh, i, &ph);
		if (ph.p_type == ELF_PT_LOAD && ph.p_memsz)
			rc = pvh_add_seg(plan, &ph, size, req, why);
	}
	if (rc)
		return rc;
	if (plan->nseg == 0)
		return pvh_fail(why, "no loadable segment", -ENOEXEC);
	for (int i = 0; i < plan->nseg; i++) {
		const struct pvh_seg *s = &plan->seg[i];

		lo = s->gpa < lo ? s->gpa : lo;
		hi = s->gpa + s->memsz > hi ? s->gpa + s->memsz : hi;
		if (plan->entry >= s->gpa && plan->entry - s->gpa < s->filesz)
			entry_ok = true;
	}
	if (!entry_ok)
		return pvh_fail(why, "PVH entry outside the loaded code", -ENOEXEC);
	plan->kernel_lo = lo & ~(PVH_PAGE - 1);
	plan->kernel_hi = (hi + PVH_PAGE - 1) & ~(PVH_PAGE - 1);	/* hi <= 4 GiB */
	return 0;
}

/* ---- low data and initrd ---- */

static int pvh_place_low(const struct bzi_request *req, struct pvh_plan *plan, const char **why)
{
	uint32_t n = 0;

	while (req->cmdline && n < PVH_CMDLINE_MAX && req->cmdline[n])
		n++;
	if (n >= PVH_CMDLINE_MAX)
		return pvh_fail(why, "command line longer than Linux's 2047 characters", -EINVAL);
	plan->info_gpa = PVH_INFO_GPA;
	plan->cmdline_gpa = BZI_CMDLINE_GPA;
	plan->cmdline_len = n + 1;
	if (!bzi_in_ram(req, plan->info_gpa, PVH_INFO_SIZE) ||
	    !bzi_in_ram(req, plan->cmdline_gpa, plan->cmdline_len))
		return pvh_fail(why, "E820 map has no RAM for the boot data below 1 MiB", -ENOMEM);
	return 0;
}

/* The highest page-aligned start in [lo, hi) that holds size bytes, or 0. */
static uint64_t pvh_fit_top(uint64_t lo, uint64_t hi, uint64_t size)
{
	uint64_t at;

	if (hi <= lo || size > hi - lo)
		return 0;
	at = (hi - size) & ~(PVH_PAGE - 1);
	return at >= lo ? at : 0;
}

/* As high below 4 GiB as fits, in RAM, at or above 1 MiB, clear of the
 * kernel: above or below it in each RAM entry. */
static int pvh_place_initrd(const struct bzi_request *req, struct pvh_plan *plan,
			    const char **why)
{
	uint64_t size = req->initrd_size, best = 0;

	plan->initrd_size = size;
	if (!size)
		return 0;
	for (int i = 0; i < req->nmap; i++) {
		const struct bzi_e820 *e = &req->map[i];
		uint64_t lo = e->addr < PVH_1M ? PVH_1M : e->addr;
		uint64_t hi = e->addr + e->size > BZI_4G ? BZI_4G : e->addr + e->size;
		uint64_t above, below;

		if (e->type != BZI_E820_RAM)
			continue;
		above = pvh_fit_top(lo > plan->kernel_hi ? lo : plan->kernel_hi, hi, size);
		below = pvh_fit_top(lo, hi < plan->kernel_lo ? hi : plan->kernel_lo, size);
		best = above > best ? above : best;
		best = below > best ? below : best;
	}
	if (!best)
		return pvh_fail(why, "no room for the initrd below 4 GiB", -ENOMEM);
	plan->initrd_gpa = best;
	return 0;
}

int pvh_plan(const void *img, size_t size, const struct bzi_request *req,
	     struct pvh_plan *plan, const char **why)
{
	int rc;

	memset(plan, 0, sizeof(*plan));
	rc = bzi_check_map(req, why);
	if (!rc)
		rc = pvh_find_entry(img, size, &plan->entry, why);
	if (!rc)
		rc = pvh_plan_segs(img, size, req, plan, why);
	if (!rc)
		rc = pvh_place_low(req, plan, why);
	if (!rc)
		rc = pvh_place_initrd(req, plan, why);
	if (rc)
		memset(plan, 0, sizeof(*plan));
	return rc;
}

int pvh_build_start_info(uint8_t *page, const struct pvh_plan *plan,
			 const struct bzi_request *req, const char **why)
{
	struct pvh_start_info si = {
		.magic = PVH_START_MAGIC,
		.version = PVH_START_VERSION,
		.cmdline_paddr = plan->cmdline_gpa,
		.rsdp_paddr = req->acpi_rsdp,
		.memmap_paddr = plan->info_gpa + PVH_MEMMAP_OFF,
		.memmap_entries = (uint32_t)req->nmap,
	};
	int rc = bzi_check_map(req, why);

	if (rc)
		return rc;
	memset(page, 0, PVH_INFO_SIZE);
	if (plan->initrd_size) {
		struct pvh_modlist_entry m = { plan->initrd_gpa, plan->initrd_size, 0, 0 };

		si.nr_modules = 1;
		si.modlist_paddr = plan->info_gpa + PVH_MODLIST_OFF;
		memcpy(page + PVH_MODLIST_OFF, &m, sizeof(m));
	}
	for (int i = 0; i < req->nmap; i++) {
		struct pvh_memmap_entry e = { req->map[i].addr, req->map[i].size,
					      req->map[i].type, 0 };

		memcpy(page + PVH_MEMMAP_OFF + (size_t)i * sizeof(e), &e, sizeof(e));
	}
	memcpy(page, &si, sizeof(si));
	return 0;
}
