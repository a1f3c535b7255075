/* Shared declarations of the UEFI loader's parts. */
#ifndef TERN_BOOT_LOADER_H
#define TERN_BOOT_LOADER_H

#include <efi.h>
#include <efilib.h>
#include "kernel/platform/bootinfo.h"
#include "kernel/lib/elf.h"

/* OS-loader memory type (UEFI 2.9 7.2: 0x80000000..0xffffffff belong to
 * the OS loader).  Everything the kernel keeps is allocated with it, so the
 * kernel can tell it apart from the loader's own, reclaimable, data. */
#define TERN_EFI_MEM_KEEP	((EFI_MEMORY_TYPE)0x80000001)

struct loader {
	EFI_HANDLE image;
	EFI_FILE_HANDLE root;
	struct boot_info *bi;
	UINT64 bi_phys;
	struct elf_image kimg;
	UINT64 kernel_phys;
};

/* Any allocation that must survive ExitBootServices. */
EFI_STATUS boot_alloc_pages(UINTN pages, UINT64 max_addr, UINT64 *phys);

/* Page tables: identity + direct map of [0, max_phys), kernel at -2 GiB. */
EFI_STATUS boot_build_page_tables(UINT64 max_phys, UINT64 kernel_phys,
				  const struct elf_image *img, UINT64 *pml4_out);

/* Trampoline page, page tables, memory map, ExitBootServices, jump. */
EFI_STATUS boot_finish(struct loader *ld);

UINT64 boot_rdtsc(void);

void boot_jump(UINT64 pml4, UINT64 entry, UINT64 boot_info_phys)
	__attribute__((noreturn));

#endif
