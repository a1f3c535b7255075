/*
 * Multiboot (version 1, specification 0.6.96) guest kernel loading, pure:
 * find and check the header, plan where the image goes in guest physical
 * memory, and build the boot information structure.  The hypervisor does
 * the copies the plan lists and sets up the vCPU; nothing here touches
 * guest memory except the info area handed to mb_build_info.
 *
 * Guest physical layout this module assumes and reports to the guest:
 *	[0, 0x1000)		real-mode IVT/BDA page: never loaded
 *	[0x9000, 0xa000)	MB_INFO_GPA: info, memory map, strings
 *	[0, 0x9fc00)		available (the info page inside it is the
 *				kernel's to reclaim once it has read the info)
 *	[0x9fc00, 0xa0000)	reserved (EBDA)
 *	[0xa0000, 0xf0000)	hole (VGA, option ROMs): not in the map
 *	[0xf0000, 0x100000)	reserved (BIOS)
 *	[0x100000, guest_ram)	available
 *	[0x9fc00, 0x9fc18)	MB_GDT_GPA: the flat GDT GDTR points at
 * Loads may go anywhere in the available ranges except the info page.
 * Modules (mb_plan_modules) go page-aligned above the kernel's end, so
 * the "page align modules" header flag is always honoured; memory information is
 * always provided; the video mode request (flag 2) is ignored, as the spec
 * allows a boot loader without graphics support to do (no VBE/framebuffer
 * info flag is set, so the kernel can tell).
 *
 * Entry state the hypervisor must establish (spec 3.2 "Machine state"):
 *	EAX = MB_BOOTLOADER_MAGIC, EBX = info structure GPA, EIP = entry
 *	CS: 32-bit read/execute code segment, base 0, limit 0xFFFFFFFF
 *	DS, ES, FS, GS, SS: 32-bit read/write data, base 0, limit 0xFFFFFFFF
 *	A20 gate enabled
 *	CR0: PE = 1, PG = 0 (other bits as after reset is fine; WP 0)
 *	EFLAGS: VM = 0, IF = 0 (bit 1 set as always)
 *	ESP, IDTR: undefined -- the kernel sets up its own
 *	GDTR: the spec leaves it undefined, but GRUB and QEMU leave a valid
 *	flat GDT behind, and kernels that take an exception before their own
 *	LGDT (the IRET reloads CS from the GDT) rely on it: so GDTR points at
 *	MB_GDT_GPA (in the reserved EBDA range), where mb_build_gdt's table
 *	has CS = MB_SEL_CODE and the data selectors = MB_SEL_DATA.
 * Other registers are undefined; zero is a good choice.
 *
 * The command line is "PROGRAM OPERATOR-CMDLINE" (mb_make_cmdline), as
 * QEMU's -kernel does: test-suite kernels take the first word as argv[0].
 * An environment is passed as kvm-unit-tests expects it from QEMU's
 * -initrd: the first Multiboot module, KEY=VALUE lines.
 */
#ifndef TERN_LIB_MULTIBOOT_H
#define TERN_LIB_MULTIBOOT_H

#include <stddef.h>
#include <stdint.h>

#define MB_HEADER_MAGIC		0x1BADB002u
#define MB_BOOTLOADER_MAGIC	0x2BADB002u	/* EAX at entry */
#define MB_SEARCH_LIMIT		8192		/* header within these bytes */
#define MB_HEADER_ALIGN		4

/* Header flags (spec 3.1.2).  Bits 0-15 are required: an unknown one
 * makes the loader refuse.  Bits 16-31 are optional. */
#define MB_HF_PAGE_ALIGN	(1u << 0)
#define MB_HF_MEMINFO		(1u << 1)
#define MB_HF_VIDEO		(1u << 2)
#define MB_HF_AOUT_KLUDGE	(1u << 16)
#define MB_HF_REQUIRED_MASK	0xffffu
#define MB_HF_KNOWN_REQUIRED	(MB_HF_PAGE_ALIGN | MB_HF_MEMINFO | MB_HF_VIDEO)

/* Info flags (spec 3.3): which multiboot_info fields are valid. */
#define MB_INFO_MEMORY		(1u << 0)
#define MB_INFO_BOOTDEV		(1u << 1)
#define MB_INFO_CMDLINE		(1u << 2)
#define MB_INFO_MODS		(1u << 3)
#define MB_INFO_MEM_MAP		(1u << 6)
#define MB_INFO_BOOT_LOADER_NAME (1u << 9)

#define MB_MMAP_AVAILABLE	1
#define MB_MMAP_RESERVED	2

/* Guest physical layout (see above). */
#define MB_LOAD_MIN		0x1000u
#define MB_INFO_GPA		0x9000u
#define MB_INFO_SIZE		0x1000u
#define MB_LOW_END		0x9fc00u	/* conventional memory end */
#define MB_HOLE_END		0xa0000u	/* EBDA end */
#define MB_BIOS_START		0xf0000u
#define MB_HIGH_START		0x100000u
#define MB_MEM_LOWER_KB		(MB_LOW_END / 1024)	/* 639 */
#define MB_GDT_GPA		MB_LOW_END	/* reserved in the memory map */
#define MB_GDT_SIZE		24		/* null, code, data */
#define MB_SEL_CODE		0x08
#define MB_SEL_DATA		0x10
#define MB_MAX_MODS		8
#define MB_PAGE			0x1000u

/* The header as found; the a.out fields are valid with MB_HF_AOUT_KLUDGE,
 * the video fields with MB_HF_VIDEO, else zero. */
struct mb_header {
	uint32_t offset;	/* file offset of the magic */
	uint32_t magic, flags, checksum;
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
	uint32_t mode_type, width, height, depth;
};

#define MB_MAX_SEGS	16	/* = ELF_MAX_SEGS */

struct mb_copy {
	uint64_t dst_gpa, src_off, len;		/* image[src_off, +len) -> dst */
};

struct mb_zero {
	uint64_t dst_gpa, len;
};

/*
 * What the hypervisor does to load the image: every copy, then every zero
 * fill.  Guarantees: src_off + len <= image size; every region lies in
 * [MB_LOAD_MIN, guest_ram), below 4 GiB, outside the info page and outside
 * [MB_LOW_END, MB_HIGH_START); no two regions overlap; len > 0; entry lies
 * in a region.
 */
struct mb_load_plan {
	uint32_t entry;		/* guest physical EIP */
	uint32_t header_flags;
	uint64_t lo, hi;	/* span [lo, hi) of all regions */
	int ncopy, nzero;
	struct mb_copy copy[MB_MAX_SEGS];
	struct mb_zero zero[MB_MAX_SEGS];
};

/* Boot information structure (spec 3.3), byte layout as the guest sees it. */
struct mb_info {
	uint32_t flags;
	uint32_t mem_lower, mem_upper;		/* KiB */
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr;
	uint32_t drives_length, drives_addr;
	uint32_t config_table;
	uint32_t boot_loader_name;
	uint32_t apm_table;
	uint32_t vbe_control_info, vbe_mode_info;
	uint16_t vbe_mode, vbe_interface_seg, vbe_interface_off, vbe_interface_len;
	uint64_t framebuffer_addr;
	uint32_t framebuffer_pitch, framebuffer_width, framebuffer_height;
	uint8_t framebuffer_bpp, framebuffer_type;
	uint8_t color_info[6];
} __attribute__((packed));

/* A memory map entry; mmap_addr points at the size field, which holds 20
 * (the bytes that follow it), as the spec and GRUB do. */
struct mb_mmap_entry {
	uint32_t size;
	uint64_t addr, len;
	uint32_t type;
} __attribute__((packed));

_Static_assert(sizeof(struct mb_info) == 116, "multiboot_info layout");
_Static_assert(sizeof(struct mb_mmap_entry) == 24, "mmap entry layout");

/* Register values at entry; the rest of the state is described above. */
struct mb_entry_state {
	uint32_t eip, eax, ebx;
	uint32_t gdtr_base;
	uint16_t gdtr_limit;
};

/* A module as the guest sees it (spec 3.3: mods_addr points at an array
 * of these); string is a GPA, filled in by mb_build_info_mods. */
struct mb_mod_entry {
	uint32_t mod_start, mod_end, string, reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct mb_mod_entry) == 16, "module entry layout");

/* A module to place: its size and the string the guest gets with it. */
struct mb_module {
	uint64_t size;
	const char *string;
	uint32_t start;		/* set by mb_plan_modules */
};

/*
 * Find the header in img[0, size): the first 4-byte aligned magic with a
 * valid checksum inside the first 8192 bytes.  Refuses (-ENOEXEC, *why set)
 * when there is none, when it does not fit in the searched bytes, or when
 * it asks for a required feature other than flags 0-2.
 */
int mb_find_header(const void *img, size_t size, struct mb_header *out, const char **why);

/*
 * Plan the load of a multiboot image into a guest with guest_ram bytes of
 * RAM at GPA 0.  With MB_HF_AOUT_KLUDGE the header's address fields are
 * used (spec 3.1.3); otherwise the image must be an ELF32 i386 executable,
 * loaded at its segments' physical addresses, and the entry point is
 * translated from virtual to physical through its segment.  Returns 0,
 * -ENOEXEC for an unusable image or -EINVAL for guest_ram below 1 MiB,
 * with *why set; on failure *plan is cleared.
 */
int mb_plan_load(const void *img, size_t size, uint64_t guest_ram,
		 struct mb_load_plan *plan, const char **why);

/*
 * Write the boot information into area[0, area_size), which the guest sees
 * at area_gpa (normally MB_INFO_GPA, MB_INFO_SIZE): the info structure
 * first, then the memory map, the command line and the boot loader name,
 * each pointer a GPA inside the area.  cmdline or bootloader_name may be
 * NULL to leave that field out.  The whole area is cleared first.
 * Returns 0 with *info_gpa_out = area_gpa; -ENOSPC if it does not fit;
 * -EINVAL for guest_ram below 1 MiB or an area reaching past 4 GiB.
 */
int mb_build_info(uint8_t *area, size_t area_size, uint32_t area_gpa, uint64_t guest_ram,
		  const char *cmdline, const char *bootloader_name, uint32_t *info_gpa_out);

/*
 * Place n modules (n <= MB_MAX_MODS) one after the other, each at a page
 * boundary, from the first page at or above plan->hi (the kernel's end):
 * sets mods[k].start.  Returns 0; -E2BIG for too many modules; -ENOSPC
 * (with *why) when they do not all fit below min(guest_ram, 4 GiB).
 * A zero-size module still gets a (shared, empty) start address.
 */
int mb_plan_modules(const struct mb_load_plan *plan, uint64_t guest_ram,
		    struct mb_module *mods, int n, const char **why);

/*
 * mb_build_info plus n placed modules: the module array (MB_INFO_MODS)
 * and each module's string go into the area too.
 */
int mb_build_info_mods(uint8_t *area, size_t area_size, uint32_t area_gpa,
		       uint64_t guest_ram, const char *cmdline, const char *bootloader_name,
		       const struct mb_module *mods, int n, uint32_t *info_gpa_out);

/*
 * The command line a Multiboot kernel gets: prog, then a space and cmdline
 * when cmdline is non-empty, into out[0, size) (always NUL-terminated when
 * size > 0).  prog NULL or "" becomes "kernel", so the first word is never
 * missing.  Returns the length it needed (snprintf-like): >= size means
 * it was cut.
 */
size_t mb_make_cmdline(char *out, size_t size, const char *prog, const char *cmdline);

/* The flat GDT the entry state's selectors refer to (see above). */
void mb_build_gdt(uint8_t out[MB_GDT_SIZE]);

/* Registers at entry for a planned image and built info structure. */
void mb_entry_regs(const struct mb_load_plan *plan, uint32_t info_gpa,
		   struct mb_entry_state *out);

#endif
