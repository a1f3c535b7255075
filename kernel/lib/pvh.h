/*
 * PVH boot of an uncompressed Linux kernel (vmlinux ELF64), pure: find the
 * 32-bit entry the kernel advertises in its XEN_ELFNOTE_PHYS32_ENTRY note,
 * plan where its PT_LOAD segments, the start info, the command line and
 * the initrd go in guest physical memory, and build struct hvm_start_info.
 *
 * Sources: Xen docs/misc/pvh.pandoc (formerly hvmlite.markdown, "x86/HVM
 * direct boot ABI") for the note and the entry state; Xen
 * xen/include/public/arch-x86/hvm/start_info.h for the structures.
 * Version 1 of the start info adds the memory map; Linux needs it (without
 * it the kernel asks Xen for the map by hypercall and hits BUG()).
 *
 * Guest physical layout (the same low area as the bzImage loader, so the
 * ACPI tables and the E820 map of bzimage.h serve both):
 *	[0x7000, 0x8000)	start info page (PVH_INFO_GPA): hvm_start_info,
 *				one hvm_modlist_entry, the memory map
 *	[0x20000, +cmdline)	command line, NUL-terminated (BZI_CMDLINE_GPA)
 *	[paddr, +memsz)		each PT_LOAD segment at its p_paddr (Linux's
 *				PVH entry is not relocatable: it runs with
 *				paging off at the link-time physical address)
 *	[initrd_gpa, +size)	initrd, page aligned, as high below 4 GiB as fits
 *
 * Entry state the loader must establish (pvh.pandoc): 32-bit protected
 * mode, paging off; CR0 = PE (ET may be set), CR4 = 0, EFER = 0; CS a flat
 * 32-bit execute/read segment, DS, ES (and SS) flat 32-bit data; TR a
 * 32-bit busy TSS (base 0, limit 0x67); EFLAGS with IF, TF and VM clear;
 * EBX = PVH_INFO_GPA; EIP = plan.entry.  The kernel loads its own GDT,
 * IDT, stack and page tables.
 */
#ifndef TERN_LIB_PVH_H
#define TERN_LIB_PVH_H

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/bzimage.h"

#define PVH_START_MAGIC		0x336ec578u	/* XEN_HVM_START_MAGIC_VALUE */
#define PVH_START_VERSION	1u		/* with the memory map */
#define PVH_NOTE_PHYS32_ENTRY	18u		/* XEN_ELFNOTE_PHYS32_ENTRY */
#define PVH_ELF_PT_NOTE		4u		/* gABI "Program Header" */

#define PVH_INFO_GPA		0x7000u
#define PVH_INFO_SIZE		4096u
#define PVH_MODLIST_OFF		64u		/* after hvm_start_info */
#define PVH_MEMMAP_OFF		128u		/* after one module entry */
#define PVH_MAX_SEGS		16

/* start_info.h: all fields little-endian; 0 addresses mean "absent". */
struct pvh_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr;
	uint64_t memmap_paddr;		/* version 1 */
	uint32_t memmap_entries, reserved;
};

struct pvh_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};

struct pvh_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;	/* E820 types (BZI_E820_*) */
};

_Static_assert(sizeof(struct pvh_start_info) == 56, "hvm_start_info layout");
_Static_assert(sizeof(struct pvh_modlist_entry) == 32, "hvm_modlist_entry layout");
_Static_assert(sizeof(struct pvh_memmap_entry) == 24, "hvm_memmap_table_entry layout");
_Static_assert(PVH_MEMMAP_OFF + BZI_E820_MAX * sizeof(struct pvh_memmap_entry) <= PVH_INFO_SIZE,
	       "the memory map fits the start info page");

/* One PT_LOAD: copy image[src_off, +filesz) to gpa, zero up to memsz. */
struct pvh_seg {
	uint64_t gpa, src_off, filesz, memsz;
};

struct pvh_plan {
	uint32_t entry;			/* EIP: the note's value */
	int nseg;
	struct pvh_seg seg[PVH_MAX_SEGS];
	uint64_t kernel_lo, kernel_hi;	/* span of the segments, 4 KiB-rounded */
	uint64_t info_gpa;		/* EBX */
	uint64_t cmdline_gpa;
	uint32_t cmdline_len;		/* strlen + 1 */
	uint64_t initrd_gpa, initrd_size;
};

/*
 * Find XEN_ELFNOTE_PHYS32_ENTRY (name "Xen", 4- or 8-byte value below
 * 4 GiB) in the PT_NOTE segments of the ELF64 img[0, size).  Returns 0
 * with *entry set, or -ENOEXEC with *why (may be NULL) set: not an x86-64
 * ELF64 executable, a malformed header or note, or no such note.
 */
int pvh_find_entry(const void *img, size_t size, uint32_t *entry, const char **why);

/*
 * Plan the PVH boot of img[0, size) for req (the same request as
 * bzi_plan's: E820 map, initrd size, command line, RSDP).  Every segment
 * must lie at or above 1 MiB, below 4 GiB, inside one RAM entry, and not
 * overlap another; the entry must lie inside a segment's file bytes.
 * Returns 0; -ENOEXEC for a bad image; -EINVAL for a bad map or command
 * line; -ENOMEM when something does not fit; *why says which.  On failure
 * *plan is cleared.
 */
int pvh_plan(const void *img, size_t size, const struct bzi_request *req,
	     struct pvh_plan *plan, const char **why);

/*
 * Build the start info page for plan and req into page[0, PVH_INFO_SIZE),
 * which the guest sees at plan->info_gpa: hvm_start_info version 1, the
 * initrd as module 0 (if any), the memory map copied from req->map.
 * Returns 0, or -EINVAL (with *why) for a bad map.
 */
int pvh_build_start_info(uint8_t *page, const struct pvh_plan *plan,
			 const struct bzi_request *req, const char **why);

#endif
