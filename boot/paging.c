/*
 * The kernel's first page tables, built while boot services still run.
 *
 * Layout (4-level paging, SDM Vol. 3A 4.5):
 *   PML4[0..n)       identity map of [0, max_phys) with 2 MiB pages.  The
 *                    loader keeps running from it right after the CR3
 *                    switch, and the AP trampoline needs it to turn paging
 *                    on.
 *   PML4[256..256+n) the same PDPTs again: the kernel's direct map at
 *                    DIRECT_MAP_BASE, made non-executable at the PML4 level.
 *   PML4[511]        the kernel image at KERNEL_VIRT_BASE with 4 KiB pages,
 *                    so text is RX, rodata R and data/bss RW+NX.
 *
 * Memory types: every large page is write-back in the PAT sense.  MMIO
 * holes are covered by the firmware's variable MTRRs as UC, and UC in the
 * MTRR wins over WB in the PAT (SDM Vol. 3A 12.5.2.2), so device registers
 * reached through these maps are uncached.  The kernel remaps its own MMIO
 * with PCD when it needs to be independent of the MTRRs.
 *
 * All tables live below 4 GiB because the AP trampoline loads CR3 while it
 * is still in 32-bit protected mode.
 */
#include "boot/loader.h"
#include "kernel/platform/x86.h"

#define PAGE_4K		0x1000ull
#define PAGE_2M		0x200000ull
#define PAGE_1G		0x40000000ull

static UINT64 *table_at(UINT64 phys)
{
	return (UINT64 *)(UINTN)phys;
}

static UINT64 kernel_page_flags(const struct elf_image *img, UINT64 va)
{
	UINT64 flags = PTE_P | PTE_G | PTE_NX;
	int i;

	for (i = 0; i < img->nseg; i++) {
		const struct elf_seg *s = &img->seg[i];
		UINT64 lo = s->vaddr & ~(PAGE_4K - 1);
		UINT64 hi = (s->vaddr + s->memsz + PAGE_4K - 1) & ~(PAGE_4K - 1);

		if (va < lo || va >= hi)
			continue;
		if (s->flags & 2)
			flags |= PTE_W;
		if (s->flags & 1)
			flags &= ~PTE_NX;
	}
	return flags;
}

static void map_direct(UINT64 *pml4, UINT64 block, UINT64 n_pdpt, UINT64 n_pd)
{
	UINT64 pd_base = block + n_pdpt * PAGE_4K;
	UINT64 i;

	for (i = 0; i < n_pd * 512; i++)
		table_at(pd_base)[i] = (i * PAGE_2M) | PTE_P | PTE_W | PTE_PS;
	for (i = 0; i < n_pd; i++)
		table_at(block)[i] = (pd_base + i * PAGE_4K) | PTE_P | PTE_W;
	for (i = 0; i < n_pdpt; i++) {
		UINT64 pdpt = block + i * PAGE_4K;

		pml4[i] = pdpt | PTE_P | PTE_W;
		pml4[256 + i] = pdpt | PTE_P | PTE_W | PTE_NX;
	}
}

static void map_kernel(UINT64 *pml4, UINT64 block, UINT64 kernel_phys,
		       const struct elf_image *img)
{
	UINT64 pdpt = block, pd = block + PAGE_4K, pt = block + 2 * PAGE_4K;
	UINT64 pages = (img->vmax - img->vmin) / PAGE_4K;
	UINT64 i;

	for (i = 0; i < pages; i++) {
		UINT64 va = img->vmin + i * PAGE_4K;

		table_at(pt)[i] = (kernel_phys + i * PAGE_4K) |
				  kernel_page_flags(img, va);
	}
	for (i = 0; i < (pages + 511) / 512; i++)
		table_at(pd)[i] = (pt + i * PAGE_4K) | PTE_P | PTE_W;
	/* KERNEL_VIRT_BASE is PML4 slot 511, PDPT slot 510. */
	table_at(pdpt)[510] = pd | PTE_P | PTE_W;
	pml4[511] = pdpt | PTE_P | PTE_W;
}

EFI_STATUS boot_build_page_tables(UINT64 max_phys, UINT64 kernel_phys,
				  const struct elf_image *img, UINT64 *pml4_out)
{
	UINT64 n_pd = (max_phys + PAGE_1G - 1) / PAGE_1G;
	UINT64 n_pdpt = (n_pd + 511) / 512;
	UINT64 kpages = (img->vmax - img->vmin) / PAGE_4K;
	UINT64 n_kpt = (kpages + 511) / 512;
	UINT64 total = 1 + n_pdpt + n_pd + 2 + n_kpt;
	UINT64 block;
	EFI_STATUS st;

	if (n_pdpt > 256 || n_kpt > 512)
		return EFI_UNSUPPORTED;
	st = boot_alloc_pages(total, 0xffffffffull, &block);
	if (EFI_ERROR(st))
		return st;
	ZeroMem(table_at(block), total * PAGE_4K);
	map_direct(table_at(block), block + PAGE_4K, n_pdpt, n_pd);
	map_kernel(table_at(block), block + (1 + n_pdpt + n_pd) * PAGE_4K,
		   kernel_phys, img);
	*pml4_out = block;
	return EFI_SUCCESS;
}

/*
 * Switch to our tables and enter the kernel.  EFER.NXE must be on before
 * CR3 points at tables with XD bits, or those entries are reserved-bit
 * faults (SDM Vol. 3A 4.5.4).  The code and stack in use stay reachable
 * through the identity map.
 */
void boot_jump(UINT64 pml4, UINT64 entry, UINT64 boot_info_phys)
{
	__asm__ volatile(
		"cli\n\t"
		"mov $0xc0000080, %%ecx\n\t"
		"rdmsr\n\t"
		"or $0x800, %%eax\n\t"
		"wrmsr\n\t"
		"mov %0, %%cr3\n\t"
		"mov %2, %%rdi\n\t"
		"xor %%ebp, %%ebp\n\t"
		"jmp *%1\n\t"
		:
		: "r"(pml4), "r"(entry), "r"(boot_info_phys)
		: "rax", "rcx", "rdx", "rdi", "memory");
	__builtin_unreachable();
}
