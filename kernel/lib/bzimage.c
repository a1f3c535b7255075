/*
 * Linux x86 boot protocol planner, pure.  References: Linux
 * Documentation/arch/x86/boot.rst ("The Real-Mode Kernel Header", "Details
 * of Header Fields", "64-bit BOOT PROTOCOL") and zero-page.rst.
 *
 * The image is untrusted: every read is checked against size first, every
 * field is 32 bits or less and all arithmetic on them is 64-bit, and the
 * planner never trusts a field to bound another read.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "kernel/lib/bzimage.h"

/* Setup header offsets in the image and in boot_params (boot.rst). */
#define HDR_SETUP_SECTS		0x1f1
#define HDR_SYSSIZE		0x1f4
#define HDR_BOOT_FLAG		0x1fe
#define HDR_JUMP		0x200
#define HDR_HEADER		0x202
#define HDR_VERSION		0x206
#define HDR_TYPE_OF_LOADER	0x210
#define HDR_LOADFLAGS		0x211
#define HDR_RAMDISK_IMAGE	0x218
#define HDR_RAMDISK_SIZE	0x21c
#define HDR_HEAP_END_PTR	0x224
#define HDR_EXT_LOADER_VER	0x226
#define HDR_EXT_LOADER_TYPE	0x227
#define HDR_CMD_LINE_PTR	0x228
#define HDR_INITRD_ADDR_MAX	0x22c
#define HDR_KERNEL_ALIGNMENT	0x230
#define HDR_RELOCATABLE		0x234
#define HDR_XLOADFLAGS		0x236
#define HDR_CMDLINE_SIZE	0x238
#define HDR_HW_SUBARCH		0x23c
#define HDR_HW_SUBARCH_DATA	0x240
#define HDR_SETUP_DATA		0x250
#define HDR_PREF_ADDRESS	0x258
#define HDR_INIT_SIZE		0x260
#define HDR_MIN_END		0x264	/* init_size is the last field we read */
#define HDR_MAX_END		0x290	/* boot_params.edd_mbr_sig_buffer */

/* boot_params fields outside the header (zero-page.rst). */
#define ZP_ACPI_RSDP_ADDR	0x070
#define ZP_EXT_RAMDISK_IMAGE	0x0c0
#define ZP_EXT_RAMDISK_SIZE	0x0c4
#define ZP_EXT_CMD_LINE_PTR	0x0c8
#define ZP_E820_ENTRIES		0x1e8
#define ZP_E820_TABLE		0x2d0
#define ZP_E820_ENTRY_LEN	20

#define BZI_PAGE		4096ull
#define BZI_MAX_ALIGN		(1u << 30)

_Static_assert(ZP_E820_TABLE + BZI_E820_MAX * ZP_E820_ENTRY_LEN <= BZI_ZERO_PAGE_SIZE,
	       "e820_table fits the zero page");
_Static_assert(sizeof(((struct bzi_plan *)0)->hdr_raw) == HDR_MAX_END - HDR_SETUP_SECTS,
	       "hdr_raw holds the longest header the zero page has room for");

static int bzi_fail(const char **why, const char *msg, int rc)
{
	if (why)
		*why = msg;
	return rc;
}

/* ---- setup header ---- */

/* boot.rst "The Real-Mode Kernel Header": the checks in the order a loader
 * can make them, each before the bytes it needs are read. */
static int bzi_check_signature(const uint8_t *p, size_t size, const char **why)
{
	if (!p || size < HDR_VERSION + 2)
		return bzi_fail(why, "image too small for a setup header", -ENOEXEC);
	if (ld_le16(p + HDR_BOOT_FLAG) != 0xaa55)
		return bzi_fail(why, "no boot_flag 0xAA55 at 0x1fe", -ENOEXEC);
	if (memcmp(p + HDR_HEADER, "HdrS", 4))
		return bzi_fail(why, "no \"HdrS\" at 0x202 (boot protocol before 2.00)", -ENOEXEC);
	if (ld_le16(p + HDR_VERSION) < BZI_MIN_VERSION)
		return bzi_fail(why, "boot protocol older than 2.12", -ENOEXEC);
	return 0;
}

/*
 * "the end of setup header can be calculated as follows: 0x0202 + byte
 * value at offset 0x0201" (boot.rst, "Details of Header Fields").  The
 * zero page has room up to 0x290, and we read fields up to 0x264.
 */
static int bzi_check_extent(const uint8_t *p, size_t size, struct bzi_header *h,
			    const char **why)
{
	h->hdr_end = HDR_HEADER + (uint32_t)p[HDR_JUMP + 1];
	if (h->hdr_end < HDR_MIN_END)
		return bzi_fail(why, "setup header ends before init_size (0x264)", -ENOEXEC);
	if (h->hdr_end > HDR_MAX_END)
		return bzi_fail(why, "setup header runs past 0x290", -ENOEXEC);
	if (h->hdr_end > size)
		return bzi_fail(why, "image truncated inside the setup header", -ENOEXEC);

	/* "If this field is 0, the real value is 4." */
	h->setup_sects = p[HDR_SETUP_SECTS] ? p[HDR_SETUP_SECTS] : 4;
	h->pm_offset = ((uint64_t)h->setup_sects + 1) * 512;
	if (h->pm_offset >= size)
		return bzi_fail(why, "setup_sects points past the end of the image", -ENOEXEC);
	/* syssize: "The size of the protected-mode code in units of 16-byte
	 * paragraphs"; a signed image may carry more after it. */
	h->syssize = ld_le32(p + HDR_SYSSIZE);
	h->pm_size = (uint64_t)h->syssize * 16;
	if (h->syssize == 0)
		return bzi_fail(why, "syssize is 0", -ENOEXEC);
	if (h->pm_size > size - h->pm_offset)
		return bzi_fail(why, "syssize claims more than the image holds", -ENOEXEC);
	if (h->pm_size <= BZI_ENTRY64_OFFSET)
		return bzi_fail(why, "protected-mode kernel too small for the 64-bit entry",
				-ENOEXEC);
	return 0;
}

static void bzi_read_fields(const uint8_t *p, struct bzi_header *h)
{
	h->version = ld_le16(p + HDR_VERSION);
	h->loadflags = p[HDR_LOADFLAGS];
	h->initrd_addr_max = ld_le32(p + HDR_INITRD_ADDR_MAX);
	h->kernel_alignment = ld_le32(p + HDR_KERNEL_ALIGNMENT);
	h->relocatable_kernel = p[HDR_RELOCATABLE];
	h->xloadflags = ld_le16(p + HDR_XLOADFLAGS);
	h->cmdline_size = ld_le32(p + HDR_CMDLINE_SIZE);
	h->pref_address = ld_le64(p + HDR_PREF_ADDRESS);
	h->init_size = ld_le32(p + HDR_INIT_SIZE);
}

static int bzi_check_fields(const struct bzi_header *h, const char **why)
{
	if (!(h->loadflags & BZI_LOADED_HIGH))
		return bzi_fail(why, "not a bzImage (loadflags LOADED_HIGH clear)", -ENOEXEC);
	if (!(h->xloadflags & BZI_XLF_KERNEL_64))
		return bzi_fail(why, "no 64-bit entry point (xloadflags XLF_KERNEL_64 clear)",
				-ENOEXEC);
	if (h->relocatable_kernel) {
		uint32_t a = h->kernel_alignment;

		if (a == 0 || (a & (a - 1)) || a > BZI_MAX_ALIGN)
			return bzi_fail(why, "kernel_alignment not a power of two up to 1 GiB",
					-ENOEXEC);
	} else if (h->pref_address == 0 || h->pref_address % BZI_PAGE) {
		/* A fixed kernel "will unconditionally move itself and to run
		 * at this address": it must be a usable one. */
		return bzi_fail(why, "non-relocatable kernel without a page-aligned pref_address",
				-ENOEXEC);
	}
	return 0;
}

int bzi_parse_header(const void *img, size_t size, struct bzi_header *out, const char **why)
{
	const uint8_t *p = img;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = bzi_check_signature(p, size, why);
	if (!rc)
		rc = bzi_check_extent(p, size, out, why);
	if (!rc) {
		bzi_read_fields(p, out);
		rc = bzi_check_fields(out, why);
	}
	if (rc) {
		memset(out, 0, sizeof(*out));
		return rc;
	}
	return 0;
}

/* ---- memory map ---- */

int bzi_check_map(const struct bzi_request *req, const char **why)
{
	if (!req->map || req->nmap < 1 || req->nmap > BZI_E820_MAX)
		return bzi_fail(why, "E820 map empty or longer than 128 entries", -EINVAL);
	for (int i = 0; i < req->nmap; i++) {
		const struct bzi_e820 *e = &req->map[i];

		if (e->size == 0 || e->addr > UINT64_MAX - e->size || e->type == 0)
			return bzi_fail(why, "E820 entry empty, wrapping or untyped", -EINVAL);
		if (i && e->addr < req->map[i - 1].addr + req->map[i - 1].size)
			return bzi_fail(why, "E820 map not sorted or overlapping", -EINVAL);
	}
	return 0;
}

bool bzi_in_ram(const struct bzi_request *req, uint64_t addr, uint64_t len)
{
	if (len == 0 || addr >= BZI_4G || len > BZI_4G - addr)
		return false;
	for (int i = 0; i < req->nmap; i++) {
		const struct bzi_e820 *e = &req->map[i];

		if (e->type == BZI_E820_RAM && addr >= e->addr && addr - e->addr <= e->size &&
		    len <= e->size - (addr - e->addr))
			return true;
	}
	return false;
}

static bool bzi_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* ---- placement ---- */

static uint32_t bzi_cmdline_len(const char *s, uint32_t limit)
{
	uint32_t n = 0;

	while (s && n <= limit && s[n])
		n++;
	return n;
}

static int bzi_place_low(const struct bzi_request *req, struct bzi_plan *plan, const char **why)
{
	uint32_t n = bzi_cmdline_len(req->cmdline, BZI_CMDLINE_AREA);

	/* cmdline_size: "The maximum size of the command line without the
	 * terminating zero" (protocol 2.06+). */
	if (n > plan->hdr.cmdline_size)
		return bzi_fail(why, "command line longer than the kernel's cmdline_size", -EINVAL);
	if (n >= BZI_CMDLINE_AREA)
		return bzi_fail(why, "command line longer than the loader's area", -EINVAL);
	plan->cmdline_gpa = BZI_CMDLINE_GPA;
	plan->cmdline_len = n + 1;
	plan->zero_page_gpa = BZI_ZERO_PAGE_GPA;
	if (!bzi_in_ram(req, BZI_LOADER_AREA, BZI_LOADER_AREA_END - BZI_LOADER_AREA) ||
	    !bzi_in_ram(req, plan->zero_page_gpa, BZI_ZERO_PAGE_SIZE) ||
	    !bzi_in_ram(req, plan->cmdline_gpa, plan->cmdline_len))
		return bzi_fail(why, "E820 map has no RAM for the boot data below 1 MiB", -ENOMEM);
	return 0;
}

static bool bzi_kernel_fits(const struct bzi_request *req, uint64_t at, uint64_t len)
{
	return at >= BZI_HIGH_START && bzi_in_ram(req, at, len);
}

/*
 * boot.rst on pref_address: "A relocating bootloader should attempt to
 * load at this address"; otherwise the lowest address aligned to
 * kernel_alignment ("Alignment unit required by the kernel (if
 * relocatable_kernel is true)") that holds init_size bytes of RAM.
 */
static int bzi_place_kernel(const struct bzi_request *req, struct bzi_plan *plan,
			    const char **why)
{
	const struct bzi_header *h = &plan->hdr;
	uint64_t len = plan->kernel_reserve, align = h->kernel_alignment;

	if (!h->relocatable_kernel) {
		if (!bzi_kernel_fits(req, h->pref_address, len))
			return bzi_fail(why, "no RAM for the fixed kernel at pref_address",
					-ENOMEM);
		plan->kernel_gpa = h->pref_address;
		return 0;
	}
	if (h->pref_address % align == 0 && bzi_kernel_fits(req, h->pref_address, len)) {
		plan->kernel_gpa = h->pref_address;
		return 0;
	}
	for (int i = 0; i < req->nmap; i++) {
		uint64_t at = req->map[i].addr < BZI_HIGH_START ? BZI_HIGH_START : req->map[i].addr;

		if (req->map[i].type != BZI_E820_RAM || at >= BZI_4G)
			continue;
		at = (at + align - 1) & ~(align - 1);
		if (bzi_kernel_fits(req, at, len)) {
			plan->kernel_gpa = at;
			return 0;
		}
	}
	return bzi_fail(why, "kernel (init_size) does not fit in RAM below 4 GiB", -ENOMEM);
}

/* A page-aligned initrd whose end is at most top: usable? */
static bool bzi_initrd_at(const struct bzi_request *req, const struct bzi_plan *plan,
			  uint64_t top, uint64_t *start)
{
	uint64_t size = plan->initrd_size, at;

	if (top < size)
		return false;
	at = (top - size) & ~(BZI_PAGE - 1);
	if (at < BZI_HIGH_START || !bzi_in_ram(req, at, size))
		return false;
	if (bzi_overlap(at, size, plan->kernel_gpa, plan->kernel_reserve))
		return false;
	*start = at;
	return true;
}

/*
 * initrd_addr_max: "The maximum address that may be occupied by the
 * initial ramdisk contents" (its last byte).  The highest page-aligned
 * start ends just below one of: the limit, the end of a RAM entry, or the
 * kernel's reserved region; trying each of those tops finds it.
 */
static int bzi_place_initrd(const struct bzi_request *req, struct bzi_plan *plan,
			    const char **why)
{
	uint64_t limit = (uint64_t)plan->hdr.initrd_addr_max + 1, best = 0, at;
	bool found = false;

	if (plan->initrd_size == 0)
		return 0;
	for (int i = 0; i <= req->nmap; i++) {
		uint64_t top = i < req->nmap ? req->map[i].addr + req->map[i].size
					     : plan->kernel_gpa;

		if (top > limit)
			top = limit;
		if (bzi_initrd_at(req, plan, top, &at) && (!found || at > best)) {
			best = at;
			found = true;
		}
	}
	if (!found)
		return bzi_fail(why, "initrd does not fit in RAM below initrd_addr_max", -ENOMEM);
	plan->initrd_gpa = best;
	return 0;
}

int bzi_plan(const void *img, size_t size, const struct bzi_request *req,
	     struct bzi_plan *plan, const char **why)
{
	int rc;

	memset(plan, 0, sizeof(*plan));
	rc = bzi_parse_header(img, size, &plan->hdr, why);
	if (!rc)
		rc = bzi_check_map(req, why);
	if (rc)
		goto fail;
	plan->kernel_src_off = plan->hdr.pm_offset;
	plan->kernel_len = plan->hdr.pm_size;
	/* init_size: "linear contiguous memory starting at the kernel runtime
	 * start address that the kernel needs"; never less than the copy. */
	plan->kernel_reserve = plan->hdr.init_size > plan->kernel_len ? plan->hdr.init_size
								       : plan->kernel_len;
	plan->kernel_reserve = (plan->kernel_reserve + BZI_PAGE - 1) & ~(BZI_PAGE - 1);
	plan->initrd_size = req->initrd_size;
	rc = bzi_place_low(req, plan, why);
	if (!rc)
		rc = bzi_place_kernel(req, plan, why);
	if (!rc)
		rc = bzi_place_initrd(req, plan, why);
	if (rc)
		goto fail;
	/* "64-bit BOOT PROTOCOL": jump to the load address + 0x200. */
	plan->entry64 = plan->kernel_gpa + BZI_ENTRY64_OFFSET;
	plan->hdr_len = plan->hdr.hdr_end - HDR_SETUP_SECTS;
	memcpy(plan->hdr_raw, (const uint8_t *)img + HDR_SETUP_SECTS, plan->hdr_len);
	return 0;
fail:
	memset(plan, 0, sizeof(*plan));
	return rc;
}

/* ---- zero page ---- */

/* zero-page.rst: e820_entries at 0x1e8, e820_table[128] at 0x2d0, each
 * entry { u64 addr; u64 size; u32 type } packed (20 bytes). */
static void bzi_put_e820(uint8_t *zp, const struct bzi_request *req)
{
	zp[ZP_E820_ENTRIES] = (uint8_t)req->nmap;
	for (int i = 0; i < req->nmap; i++) {
		uint8_t *e = zp + ZP_E820_TABLE + i * ZP_E820_ENTRY_LEN;

		st_le64(e, req->map[i].addr);
		st_le64(e + 8, req->map[i].size);
		st_le32(e + 16, req->map[i].type);
	}
}

/*
 * boot.rst "64-bit BOOT PROTOCOL": "the bootloader needs to ... set the
 * whole struct [boot_params] to zero, then load the setup header from the
 * kernel image at offset 0x01f1 into struct boot_params and examine it."
 * Then the fields of type "write" are ours to fill.
 */
int bzi_build_zero_page(uint8_t *zp, const struct bzi_plan *plan, const struct bzi_request *req,
			const char **why)
{
	int rc = bzi_check_map(req, why);

	if (rc)
		return rc;
	if (plan->hdr_len < HDR_MIN_END - HDR_SETUP_SECTS || plan->hdr_len > sizeof(plan->hdr_raw))
		return bzi_fail(why, "plan holds no valid setup header", -EINVAL);
	memset(zp, 0, BZI_ZERO_PAGE_SIZE);
	memcpy(zp + HDR_SETUP_SECTS, plan->hdr_raw, plan->hdr_len);
	zp[HDR_TYPE_OF_LOADER] = BZI_LOADER_UNDEFINED;
	zp[HDR_LOADFLAGS] = BZI_LOADED_HIGH | BZI_CAN_USE_HEAP;
	st_le16(zp + HDR_HEAP_END_PTR, BZI_HEAP_END);
	zp[HDR_EXT_LOADER_VER] = 0;
	zp[HDR_EXT_LOADER_TYPE] = 0;
	st_le32(zp + HDR_CMD_LINE_PTR, (uint32_t)plan->cmdline_gpa);
	st_le32(zp + ZP_EXT_CMD_LINE_PTR, (uint32_t)(plan->cmdline_gpa >> 32));
	st_le32(zp + HDR_RAMDISK_IMAGE, (uint32_t)plan->initrd_gpa);
	st_le32(zp + ZP_EXT_RAMDISK_IMAGE, (uint32_t)(plan->initrd_gpa >> 32));
	st_le32(zp + HDR_RAMDISK_SIZE, (uint32_t)plan->initrd_size);
	st_le32(zp + ZP_EXT_RAMDISK_SIZE, (uint32_t)(plan->initrd_size >> 32));
	/* Fields an image could preset to send the kernel astray: setup_data
	 * is a list the kernel walks, hardware_subarch picks the platform
	 * (0 = X86_SUBARCH_PC). */
	st_le32(zp + HDR_HW_SUBARCH, 0);
	st_le64(zp + HDR_HW_SUBARCH_DATA, 0);
	st_le64(zp + HDR_SETUP_DATA, 0);
	st_le64(zp + ZP_ACPI_RSDP_ADDR, req->acpi_rsdp);
	bzi_put_e820(zp, req);
	return 0;
}

/* ---- 64-bit entry state ---- */

#define PTE_P		(1ull << 0)
#define PTE_RW		(1ull << 1)
#define PTE_PS		(1ull << 7)	/* 2 MiB page in a PD entry */
#define CR0_PE		(1ull << 0)
#define CR0_ET		(1ull << 4)
#define CR0_NE		(1ull << 5)
#define CR0_PG		(1ull << 31)
#define CR4_PAE		(1ull << 5)
#define EFER_LME	(1ull << 8)
#define EFER_LMA	(1ull << 10)

_Static_assert(BZI_GDT_GPA == BZI_LOADER_AREA && BZI_BOOT_TABLES_END <= BZI_LOADER_AREA_END,
	       "boot tables inside the loader's area");

/*
 * boot.rst "64-bit BOOT PROTOCOL": "it must have a 64-bit mode with
 * paging enabled, the range with setup_header.init_size from start
 * address of loaded kernel and zero page and command line buffer get ident
 * mapping; a GDT must be loaded with the descriptors for selectors
 * __BOOT_CS(0x10) and __BOOT_DS(0x18); both descriptors must be 4G flat
 * segment; __BOOT_CS must have execute/read permission, and __BOOT_DS
 * must have read/write permission; CS must be __BOOT_CS and DS, ES, SS
 * must be __BOOT_DS; interrupt must be disabled; %rsi must hold the base
 * address of the struct boot_params."  Everything the plan places is
 * below 4 GiB, so an identity map of [0, 4 GiB) covers it.
 */
int bzi_build_boot_tables(uint8_t *area, size_t area_size, const struct bzi_plan *plan,
			  struct bzi_entry_regs *regs)
{
	uint8_t *gdt = area, *pml4 = area + (BZI_PML4_GPA - BZI_GDT_GPA);
	uint8_t *pdpt = pml4 + BZI_PAGE, *pd = pdpt + BZI_PAGE;
	uint64_t pdpt_gpa = BZI_PML4_GPA + BZI_PAGE, pd_gpa = pdpt_gpa + BZI_PAGE;

	if (!area || area_size < BZI_BOOT_TABLES_END - BZI_LOADER_AREA)
		return -ENOSPC;
	memset(area, 0, BZI_BOOT_TABLES_END - BZI_LOADER_AREA);
	st_le64(gdt + BZI_BOOT_CS, BZI_GDT_CODE64);
	st_le64(gdt + BZI_BOOT_DS, BZI_GDT_DATA);
	st_le64(pml4, pdpt_gpa | PTE_P | PTE_RW);
	for (uint64_t g = 0; g < 4; g++) {
		st_le64(pdpt + 8 * g, (pd_gpa + g * BZI_PAGE) | PTE_P | PTE_RW);
		for (uint64_t m = 0; m < 512; m++)
			st_le64(pd + g * BZI_PAGE + 8 * m,
				(g << 30 | m << 21) | PTE_P | PTE_RW | PTE_PS);
	}
	*regs = (struct bzi_entry_regs){
		.rip = plan->entry64, .rsi = plan->zero_page_gpa, .rflags = 0x2,
		.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG, .cr3 = BZI_PML4_GPA, .cr4 = CR4_PAE,
		.efer = EFER_LME | EFER_LMA, .gdt_base = BZI_GDT_GPA, .gdt_limit = BZI_GDT_LIMIT,
		.cs = BZI_BOOT_CS, .ds = BZI_BOOT_DS,
		.cs_desc = BZI_GDT_CODE64, .ds_desc = BZI_GDT_DATA,
	};
	return 0;
}

int bzi_default_e820(uint64_t ram, struct bzi_e820 *out, int max)
{
	if (!out || max < 4 || ram < 2 * BZI_HIGH_START || ram > 0xfec00000ull)
		return -EINVAL;
	out[0] = (struct bzi_e820){ 0, 0x9fc00, BZI_E820_RAM };
	out[1] = (struct bzi_e820){ 0x9fc00, BZI_HIGH_START - 0x9fc00, BZI_E820_RESERVED };
	out[2] = (struct bzi_e820){ BZI_HIGH_START, ram - BZI_HIGH_START, BZI_E820_RAM };
	out[3] = (struct bzi_e820){ 0xfec00000ull, BZI_4G - 0xfec00000ull, BZI_E820_RESERVED };
	return 4;
}
