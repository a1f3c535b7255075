/*
 * ELF executable validation.  LOADER-SAFE: uses only memcpy from libc, so
 * the UEFI loader can refuse a corrupt kernel and the multiboot guest loader
 * can vet an ELF32 guest kernel with the same code.
 *
 * Only little-endian files are accepted, and the structures below are read
 * with memcpy on the (little-endian x86) host, so no byte swapping exists.
 * Layouts: System V ABI gABI "ELF Header" and "Program Header" chapters;
 * x86-64 psABI for EM_X86_64.
 */
#ifndef TERN_LIB_ELF_H
#define TERN_LIB_ELF_H

#include <stddef.h>
#include <stdint.h>

#define ELF_NIDENT	16
#define ELF_CLASS32	1
#define ELF_CLASS64	2
#define ELF_DATA2LSB	1
#define ELF_EV_CURRENT	1
#define ELF_ET_EXEC	2
#define ELF_EM_386	3
#define ELF_EM_X86_64	62
#define ELF_PT_LOAD	1
#define ELF_PN_XNUM	0xffff	/* real count lives in section header 0 */

#define ELF_PF_X	1
#define ELF_PF_W	2
#define ELF_PF_R	4

struct elf64_ehdr {
	uint8_t e_ident[ELF_NIDENT];
	uint16_t e_type, e_machine;
	uint32_t e_version;
	uint64_t e_entry, e_phoff, e_shoff;
	uint32_t e_flags;
	uint16_t e_ehsize, e_phentsize, e_phnum;
	uint16_t e_shentsize, e_shnum, e_shstrndx;
};

struct elf64_phdr {
	uint32_t p_type, p_flags;
	uint64_t p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align;
};

struct elf32_ehdr {
	uint8_t e_ident[ELF_NIDENT];
	uint16_t e_type, e_machine;
	uint32_t e_version;
	uint32_t e_entry, e_phoff, e_shoff;
	uint32_t e_flags;
	uint16_t e_ehsize, e_phentsize, e_phnum;
	uint16_t e_shentsize, e_shnum, e_shstrndx;
};

struct elf32_phdr {
	uint32_t p_type, p_offset, p_vaddr, p_paddr;
	uint32_t p_filesz, p_memsz, p_flags, p_align;
};

_Static_assert(sizeof(struct elf64_ehdr) == 64, "ELF64 header layout");
_Static_assert(sizeof(struct elf64_phdr) == 56, "ELF64 phdr layout");
_Static_assert(sizeof(struct elf32_ehdr) == 52, "ELF32 header layout");
_Static_assert(sizeof(struct elf32_phdr) == 32, "ELF32 phdr layout");

#define ELF_MAX_SEGS	16

struct elf_seg {
	uint64_t vaddr, paddr, file_off, filesz, memsz;
	uint32_t flags;		/* ELF_PF_X | ELF_PF_W | ELF_PF_R */
};

struct elf_image {
	int cls;		/* 32 or 64 */
	uint64_t entry;
	uint64_t vmin, vmax;	/* 4 KiB-rounded span of all PT_LOAD */
	int nseg;		/* PT_LOAD with memsz != 0, in file order */
	struct elf_seg seg[ELF_MAX_SEGS];
};

/*
 * Validate an ELF executable of the given class (32 or 64) and machine
 * (ELF_EM_X86_64 or ELF_EM_386) held in data[0, size), and describe its
 * loadable segments.  Returns 0, or -ENOEXEC with *why set to a short static
 * string naming the first problem found; -EINVAL for a bad want_class.
 * Guarantees on success, for every segment: file_off + filesz <= size,
 * filesz <= memsz, vaddr + memsz and paddr + memsz do not wrap (nor pass
 * 4 GiB for ELF32), no two segments overlap in vaddr or in paddr, and the
 * entry lies inside a PF_X segment.  PT_LOAD with memsz 0 are dropped.
 */
int elf_parse(const void *data, size_t size, int want_class,
	      uint16_t want_machine, struct elf_image *out, const char **why);

/*
 * 0 if every segment's [vaddr, vaddr + memsz) lies inside [lo, hi), else
 * -ENOEXEC with *why = "segment outside allowed range".
 */
int elf_check_range(const struct elf_image *img, uint64_t lo, uint64_t hi,
		    const char **why);

/* The same on paddr, for loaders that place segments physically. */
int elf_check_phys_range(const struct elf_image *img, uint64_t lo, uint64_t hi,
			 const char **why);

#endif
