/*
 * The contract between the UEFI loader (boot/) and the kernel.
 *
 * The loader fills one struct boot_info in memory it owns (EfiLoaderData),
 * then jumps to the kernel entry with RDI = the physical address of that
 * structure.  Every pointer in here is a *physical* address: the kernel
 * reaches them through its direct map, so the loader never has to know the
 * kernel's virtual layout beyond the constants below.
 *
 * Bump BOOT_INFO_VERSION whenever a field changes meaning; the kernel
 * refuses a structure whose magic, version or size it does not know.
 */
#ifndef TERN_BOOTINFO_H
#define TERN_BOOTINFO_H

#include <stdint.h>

#define BOOT_INFO_MAGIC		0x4e524554544f4f42ull	/* "BOOTTERN" */
#define BOOT_INFO_VERSION	3

/* Virtual layout, shared so the loader builds exactly what the kernel uses. */
#define KERNEL_VIRT_BASE	0xffffffff80000000ull	/* -2 GiB: -mcmodel=kernel */
#define KERNEL_MAX_SIZE		(64ull << 20)
#define DIRECT_MAP_BASE		0xffff800000000000ull	/* all of physical memory */

/* Memory map entry types, translated from the UEFI types by the loader. */
enum boot_mem_type {
	BOOT_MEM_USABLE = 1,	/* free for the kernel after ExitBootServices */
	BOOT_MEM_RESERVED,	/* firmware, runtime services, unusable */
	BOOT_MEM_ACPI_RECLAIM,	/* ACPI tables: keep until parsed */
	BOOT_MEM_ACPI_NVS,
	BOOT_MEM_MMIO,
	BOOT_MEM_LOADER,	/* kernel image, boot info, modules, page tables */
	BOOT_MEM_BAD,
};

struct boot_mem_range {
	uint64_t base;
	uint64_t pages;		/* 4 KiB pages */
	uint32_t type;		/* enum boot_mem_type */
	uint32_t efi_type;	/* original UEFI type, for diagnostics */
};

/* A file the loader read from \tern\ on the ESP. */
#define BOOT_MODULE_NAME_MAX	96
struct boot_module {
	char name[BOOT_MODULE_NAME_MAX];	/* "tern/guests/foo.elf", '/' separated */
	uint64_t phys;
	uint64_t size;
};

#define BOOT_MAX_MEM_RANGES	512
#define BOOT_MAX_CPUS		256
#define BOOT_MAX_MODULES	64

struct boot_info {
	uint64_t magic;
	uint32_t version;
	uint32_t size;			/* sizeof(struct boot_info) */

	uint64_t rsdp_phys;		/* ACPI 2.0+ RSDP preferred, else 1.0 */
	uint64_t kernel_phys;		/* where the image's first page lives */
	uint64_t kernel_pages;
	uint64_t pml4_phys;		/* tables the loader built (below 4 GiB) */
	uint64_t trampoline_phys;	/* one free page below 1 MiB for AP start */
	uint64_t max_phys;		/* end of the direct map */
	uint64_t config_phys;		/* tern.cfg text, validated by the loader */
	uint64_t config_size;
	uint64_t loader_tsc;		/* TSC when the loader started */
	uint64_t exit_bs_tsc;		/* TSC just before the jump */

	uint64_t efi_runtime_phys;	/* EFI_RUNTIME_SERVICES, identity-mapped */

	/* The firmware's real-time clock (GetTime) as seconds since
	 * 1970-01-01 UTC, and the TSC read right after; 0 when unknown. */
	uint64_t wall_epoch_s;
	uint64_t wall_tsc;

	/* From EFI_MP_SERVICES_PROTOCOL: the CPU list when firmware has no
	 * ACPI MADT (OVMF under Bochs publishes no ACPI tables). */
	uint32_t cpu_count;
	uint32_t cpu_apic_ids[BOOT_MAX_CPUS];

	uint32_t mem_count;
	uint32_t module_count;
	struct boot_mem_range mem[BOOT_MAX_MEM_RANGES];
	struct boot_module modules[BOOT_MAX_MODULES];
};

#endif
