/*
 * Linux x86 boot protocol (Documentation/arch/x86/boot.rst), pure: check a
 * bzImage's setup header, plan where the protected-mode kernel, the zero
 * page (struct boot_params, Documentation/arch/x86/zero-page.rst), the
 * command line and the initrd go in guest physical memory, and build the
 * zero page.  Only the 64-bit entry ("64-bit BOOT PROTOCOL") is supported:
 * the real-mode setup code is never run, so no BIOS is needed.
 *
 * Not wired into the VM loader yet (kernel/virt is being reworked): the
 * loader will copy what the plan lists, write the command line, the initrd
 * and the zero page, and set up the vCPU as below.
 *
 * Guest physical layout:
 *	[0x7000, 0x8000)	zero page (BZI_ZERO_PAGE_GPA)
 *	[0x8000, 0x20000)	left to the loader for the boot GDT and the
 *				identity page tables (BZI_LOADER_AREA: room
 *				for a PML4, a PDPT and four 2 MiB-page PDs
 *				mapping 4 GiB, and a GDT page)
 *	[0x20000, +cmdline)	command line, NUL-terminated (BZI_CMDLINE_GPA)
 *	[kernel_gpa, +reserve)	protected-mode kernel, reserved for init_size
 *	[initrd_gpa, +size)	initrd, as high as initrd_addr_max allows
 * Every region lies inside one RAM entry of the caller's E820 map, below
 * 4 GiB, and no two overlap; the kernel and the initrd lie at or above
 * 1 MiB.
 *
 * Entry state the loader must establish (boot.rst, "64-bit BOOT PROTOCOL";
 * bzi_build_boot_tables writes the tables and lists the registers):
 *	long mode, paging on, an identity map covering the kernel's
 *	[kernel_gpa, +reserve), the zero page and the command line;
 *	a GDT with __BOOT_CS (selector 0x10, 64-bit code) and __BOOT_DS
 *	(0x18, data), CS = 0x10, DS = ES = SS = 0x18;
 *	interrupts disabled; RSI = zero page GPA; RIP = entry64.
 */
#ifndef TERN_LIB_BZIMAGE_H
#define TERN_LIB_BZIMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Guest physical layout (see above). */
#define BZI_ZERO_PAGE_GPA	0x7000u
#define BZI_LOADER_AREA		0x8000u
#define BZI_LOADER_AREA_END	0x20000u
#define BZI_ZERO_PAGE_SIZE	4096u
#define BZI_CMDLINE_GPA		0x20000u
#define BZI_CMDLINE_AREA	0x10000u	/* longest line + NUL */
#define BZI_HIGH_START		0x100000u	/* kernel and initrd from here */
#define BZI_4G			(1ull << 32)

/* Header fields (boot.rst "The Real-Mode Kernel Header"). */
#define BZI_MIN_VERSION		0x020c		/* 2.12: xloadflags */
#define BZI_LOADED_HIGH		(1u << 0)	/* loadflags */
#define BZI_CAN_USE_HEAP	(1u << 7)
#define BZI_XLF_KERNEL_64	(1u << 0)	/* xloadflags */
#define BZI_XLF_CAN_BE_LOADED_ABOVE_4G (1u << 1)
#define BZI_LOADER_UNDEFINED	0xff		/* type_of_loader */
#define BZI_HEAP_END		0xfe00u		/* heap_end_ptr */
#define BZI_ENTRY64_OFFSET	0x200u

/* E820 (zero-page.rst 0x1e8 and 0x2d0; ACPI 6.5 Table 15.1 types). */
#define BZI_E820_RAM		1
#define BZI_E820_RESERVED	2
#define BZI_E820_ACPI		3
#define BZI_E820_NVS		4
#define BZI_E820_UNUSABLE	5
#define BZI_E820_MAX		128

struct bzi_e820 {
	uint64_t addr, size;
	uint32_t type;
};

/* The setup header fields the planner uses, as read from the image. */
struct bzi_header {
	uint8_t setup_sects;		/* 0x1f1, 0 already turned into 4 */
	uint32_t syssize;		/* 0x1f4, 16-byte paragraphs */
	uint16_t version;		/* 0x206 */
	uint8_t loadflags;		/* 0x211 */
	uint32_t initrd_addr_max;	/* 0x22c, highest initrd byte */
	uint32_t kernel_alignment;	/* 0x230 */
	uint8_t relocatable_kernel;	/* 0x234 */
	uint16_t xloadflags;		/* 0x236 */
	uint32_t cmdline_size;		/* 0x238, without the NUL */
	uint64_t pref_address;		/* 0x258 */
	uint32_t init_size;		/* 0x260 */
	uint32_t hdr_end;		/* 0x202 + byte at 0x201 */
	uint64_t pm_offset, pm_size;	/* protected-mode kernel in the file */
};

/* What the loader is asked to boot. */
struct bzi_request {
	const struct bzi_e820 *map;	/* sorted, disjoint; RAM type 1 */
	int nmap;			/* 1..BZI_E820_MAX */
	uint64_t initrd_size;		/* 0: none */
	const char *cmdline;		/* NULL: empty */
	uint64_t acpi_rsdp;		/* 0: let the kernel scan for it */
};

/*
 * The plan.  The loader copies image[kernel_src_off, +kernel_len) to
 * kernel_gpa, the initrd to initrd_gpa, cmdline_len bytes (the string and
 * its NUL) to cmdline_gpa and the built zero page to zero_page_gpa; it
 * keeps [kernel_gpa, +kernel_reserve) free for the decompressor.
 */
struct bzi_plan {
	struct bzi_header hdr;
	uint64_t kernel_gpa, kernel_src_off, kernel_len, kernel_reserve;
	uint64_t entry64;		/* kernel_gpa + 0x200 */
	uint64_t zero_page_gpa;		/* RSI */
	uint64_t cmdline_gpa;
	uint32_t cmdline_len;		/* strlen + 1 */
	uint64_t initrd_gpa, initrd_size;
	uint32_t hdr_len;		/* bytes of hdr_raw: 0x1f1 to hdr_end */
	uint8_t hdr_raw[0x290 - 0x1f1];	/* the setup header as in the image */
};

/*
 * Read and check the setup header of img[0, size).  Returns 0, or
 * -ENOEXEC with *why set (why may be NULL) for anything but a relocatable
 * or fixed-address bzImage with protocol 2.12+ and a 64-bit entry point.
 */
int bzi_parse_header(const void *img, size_t size, struct bzi_header *out, const char **why);

/*
 * The request's E820 map, for both Linux planners (this one and pvh.c):
 * bzi_check_map returns 0, or -EINVAL with *why for an empty, too long,
 * unsorted, overlapping, wrapping or untyped map; bzi_in_ram says whether
 * [addr, addr + len) lies inside one RAM entry, below 4 GiB.
 */
int bzi_check_map(const struct bzi_request *req, const char **why);
bool bzi_in_ram(const struct bzi_request *req, uint64_t addr, uint64_t len);

/*
 * Plan the boot of img[0, size).  Returns 0; -ENOEXEC for a bad image;
 * -EINVAL for a bad map or command line; -ENOMEM when something does not
 * fit in RAM; *why says which.  On failure *plan is cleared.
 */
int bzi_plan(const void *img, size_t size, const struct bzi_request *req,
	     struct bzi_plan *plan, const char **why);

/*
 * Build the zero page for plan and req into zp[0, BZI_ZERO_PAGE_SIZE):
 * zeroed, the image's setup header copied in, the loader's fields and the
 * E820 table filled.  Returns 0, or -EINVAL (with *why) if req's map is
 * unusable.
 */
int bzi_build_zero_page(uint8_t *zp, const struct bzi_plan *plan, const struct bzi_request *req,
			const char **why);

/*
 * The 64-bit entry state, built by bzi_build_boot_tables into the loader's
 * area: a GDT at BZI_GDT_GPA (null, null, __BOOT_CS 0x10 64-bit code,
 * __BOOT_DS 0x18 data) and 4-level page tables at BZI_PML4_GPA identity
 * mapping [0, 4 GiB) with 2 MiB pages (PML4, PDPT, four PDs).
 */
#define BZI_GDT_GPA		0x8000u
#define BZI_GDT_LIMIT		0x1f		/* four descriptors */
#define BZI_PML4_GPA		0x9000u
#define BZI_BOOT_TABLES_END	0xf000u		/* GDT, PML4, PDPT, 4 PDs */
#define BZI_BOOT_CS		0x10
#define BZI_BOOT_DS		0x18
#define BZI_GDT_CODE64		0x00af9b000000ffffull	/* L, P, DPL 0, exec/read */
#define BZI_GDT_DATA		0x00cf93000000ffffull	/* G, D/B, P, read/write */

struct bzi_entry_regs {
	uint64_t rip, rsi, rflags;
	uint64_t cr0, cr3, cr4, efer;
	uint64_t gdt_base;
	uint16_t gdt_limit;
	uint16_t cs, ds;		/* DS, ES, SS (FS, GS: the same or 0) */
	uint64_t cs_desc, ds_desc;	/* the GDT entries, for the hidden parts */
};

/*
 * Write the GDT and page tables into area[0, area_size), which the guest
 * sees at BZI_LOADER_AREA, and fill *regs for plan.  Returns 0, or
 * -ENOSPC when the area is smaller than BZI_BOOT_TABLES_END -
 * BZI_LOADER_AREA.  Bytes of the area past the tables are left alone.
 */
int bzi_build_boot_tables(uint8_t *area, size_t area_size, const struct bzi_plan *plan,
			  struct bzi_entry_regs *regs);

/*
 * The usual map for a guest with ram bytes of RAM at GPA 0:
 *	RAM [0, 0x9fc00), reserved [0x9fc00, 0x100000) (EBDA, VGA, BIOS,
 *	ACPI tables), RAM [1 MiB, ram), and reserved [0xfec00000, 4 GiB)
 *	(IOAPIC, LAPIC, flash).
 * Returns the number of entries (4) written to out[0, max), or -EINVAL
 * if max < 4 or ram is below 2 MiB or above 0xfec00000.
 */
int bzi_default_e820(uint64_t ram, struct bzi_e820 *out, int max);

#endif
