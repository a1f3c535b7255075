/*
 * The last steps before the kernel owns the machine: memory map,
 * ExitBootServices, jump.  Nothing here may call boot services after
 * ExitBootServices succeeds (UEFI 2.9 7.4), so the map is translated into
 * the boot-info structure from the buffer GetMemoryMap filled.
 */
#include "boot/loader.h"

#define MAP_SLACK_DESCS	16
#define TRAMPOLINE_MAX	0x9f000ull	/* below the EBDA, SIPI-reachable */

static UINT32 mem_type_from_efi(UINT32 t)
{
	switch (t) {
	case EfiLoaderCode:
	case EfiLoaderData:
	case EfiBootServicesCode:
	case EfiBootServicesData:
	case EfiConventionalMemory:
		return BOOT_MEM_USABLE;
	case EfiUnusableMemory:
		return BOOT_MEM_BAD;
	case EfiACPIReclaimMemory:
		return BOOT_MEM_ACPI_RECLAIM;
	case EfiACPIMemoryNVS:
		return BOOT_MEM_ACPI_NVS;
	case EfiMemoryMappedIO:
	case EfiMemoryMappedIOPortSpace:
		return BOOT_MEM_MMIO;
	default:
		return t == (UINT32)TERN_EFI_MEM_KEEP ? BOOT_MEM_LOADER
						       : BOOT_MEM_RESERVED;
	}
}

static EFI_MEMORY_DESCRIPTOR *desc_at(void *map, UINTN dsize, UINTN i)
{
	return (EFI_MEMORY_DESCRIPTOR *)((UINT8 *)map + i * dsize);
}

/* Merges neighbours of one type so large maps fit BOOT_MAX_MEM_RANGES. */
static void translate_map(struct boot_info *bi, void *map, UINTN size,
			  UINTN dsize)
{
	UINTN i, n = size / dsize;

	bi->mem_count = 0;
	for (i = 0; i < n; i++) {
		EFI_MEMORY_DESCRIPTOR *d = desc_at(map, dsize, i);
		UINT32 type = mem_type_from_efi(d->Type);
		struct boot_mem_range *prev = bi->mem_count ?
			&bi->mem[bi->mem_count - 1] : NULL;

		if (prev && prev->type == type &&
		    prev->base + prev->pages * EFI_PAGE_SIZE == d->PhysicalStart) {
			prev->pages += d->NumberOfPages;
			continue;
		}
		if (bi->mem_count == BOOT_MAX_MEM_RANGES)
			return;
		bi->mem[bi->mem_count].base = d->PhysicalStart;
		bi->mem[bi->mem_count].pages = d->NumberOfPages;
		bi->mem[bi->mem_count].type = type;
		bi->mem[bi->mem_count].efi_type = d->Type;
		bi->mem_count++;
	}
}

static EFI_STATUS get_map(void **map, UINTN *size, UINTN *key, UINTN *dsize)
{
	UINT32 dver;
	EFI_STATUS st;

	*size = 0;
	*map = NULL;
	st = uefi_call_wrapper(BS->GetMemoryMap, 5, size, NULL, key, dsize, &dver);
	if (st != EFI_BUFFER_TOO_SMALL)
		return EFI_DEVICE_ERROR;
	/* Our own pool allocation may split a descriptor: leave room. */
	*size += MAP_SLACK_DESCS * *dsize;
	*map = AllocatePool(*size);
	if (!*map)
		return EFI_OUT_OF_RESOURCES;
	return uefi_call_wrapper(BS->GetMemoryMap, 5, size, *map, key, dsize, &dver);
}

static UINT64 map_max_phys(void *map, UINTN size, UINTN dsize)
{
	UINT64 max = 1ull << 32;	/* LAPIC, IOAPIC, HPET, PCI holes */
	UINTN i;

	for (i = 0; i < size / dsize; i++) {
		EFI_MEMORY_DESCRIPTOR *d = desc_at(map, dsize, i);
		UINT64 end = d->PhysicalStart + d->NumberOfPages * EFI_PAGE_SIZE;

		if (end > max)
			max = end;
	}
	return (max + 0x3fffffffull) & ~0x3fffffffull;
}

static EFI_STATUS exit_boot_services(struct loader *ld, void *map,
				     UINTN size, UINTN key, UINTN dsize)
{
	UINT32 dver;
	int tries;
	EFI_STATUS st;

	for (tries = 0; tries < 4; tries++) {
		st = uefi_call_wrapper(BS->ExitBootServices, 2, ld->image, key);
		if (!EFI_ERROR(st)) {
			translate_map(ld->bi, map, size, dsize);
			return EFI_SUCCESS;
		}
		/* The map changed under us (an event fired); UEFI 2.9 7.4
		 * allows GetMemoryMap again, but no allocation. */
		st = uefi_call_wrapper(BS->GetMemoryMap, 5, &size, map, &key,
				       &dsize, &dver);
		if (EFI_ERROR(st))
			return st;
	}
	return EFI_ABORTED;
}

EFI_STATUS boot_finish(struct loader *ld)
{
	UINTN size, key, dsize;
	void *map;
	UINT64 pml4;
	EFI_STATUS st;

	if (EFI_ERROR(boot_alloc_pages(1, TRAMPOLINE_MAX, &ld->bi->trampoline_phys)))
		Print(L"tern-boot: warning: no page below 1 MiB: only the boot CPU will run\r\n");
	st = get_map(&map, &size, &key, &dsize);
	if (EFI_ERROR(st)) {
		Print(L"tern-boot: error: memory map: %r\r\n", st);
		return st;
	}
	ld->bi->max_phys = map_max_phys(map, size, dsize);
	FreePool(map);
	st = boot_build_page_tables(ld->bi->max_phys, ld->kernel_phys, &ld->kimg, &pml4);
	if (EFI_ERROR(st)) {
		Print(L"tern-boot: error: page tables: %r\r\n", st);
		return st;
	}
	ld->bi->pml4_phys = pml4;
	Print(L"tern-boot: starting kernel (direct map %ld GiB)\r\n",
	      ld->bi->max_phys >> 30);
	st = get_map(&map, &size, &key, &dsize);
	if (EFI_ERROR(st))
		return st;
	st = exit_boot_services(ld, map, size, key, dsize);
	if (EFI_ERROR(st)) {
		Print(L"tern-boot: error: ExitBootServices: %r\r\n", st);
		return st;
	}
	ld->bi->exit_bs_tsc = boot_rdtsc();
	boot_jump(pml4, ld->kimg.entry, ld->bi_phys);
}
