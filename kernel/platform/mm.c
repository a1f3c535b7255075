/*
 * Physical memory and the kernel's own mappings.
 *
 * Physical pages come from a bitmap allocator (lib/pmm.c) seeded with the
 * usable ranges of the UEFI map.  The loader's direct map covers all of
 * [0, max_phys) with 2 MiB pages; on top of it this file maps two growing
 * regions with 4 KiB pages: the heap behind Newlib's sbrk (backed on
 * demand, so "used" memory is honest) and uncached MMIO windows.
 */
#include <errno.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/kernel.h"
#include "kernel/platform/spinlock.h"
#include "kernel/lib/pmm.h"


#define HEAP_BASE	0xffffc00000000000ull
#define HEAP_MAX	(4ull << 30)
#define MMIO_BASE	0xffffc80000000000ull
#define MMIO_MAX	(64ull << 30)
#define LOW_RESERVED	0x100000ull	/* real-mode area, trampoline */

static struct pmm pmm;
static struct spinlock pmm_lock = SPINLOCK_INIT;
static struct spinlock map_lock = SPINLOCK_INIT;
static uint64_t kernel_phys, kernel_pages, loader_pages;
static uint64_t heap_top = HEAP_BASE, heap_mapped = HEAP_BASE;
static uint64_t mmio_next = MMIO_BASE;

uint64_t virt_to_phys(const void *va)
{
	uint64_t v = (uint64_t)va;

	if (v >= KERNEL_VIRT_BASE)
		return kernel_phys + (v - KERNEL_VIRT_BASE);
	if (v >= DIRECT_MAP_BASE && v < HEAP_BASE)
		return v - DIRECT_MAP_BASE;
	return ~0ull;	/* heap and MMIO windows: callers use page_alloc memory */
}

static uint64_t pmm_get_aligned(size_t pages, uint64_t align, uint64_t limit_pfn)
{
	uint64_t pfn = 0, f = spin_lock_irqsave(&pmm_lock);
	int rc = pmm_alloc(&pmm, pages, align, limit_pfn, &pfn);

	spin_unlock_irqrestore(&pmm_lock, f);
	return rc < 0 ? 0 : pfn;
}

static uint64_t pmm_get(size_t pages, uint64_t limit_pfn)
{
	return pmm_get_aligned(pages, 1, limit_pfn);
}

/* Not zeroed: guest RAM is cleared by its owner, 2 MiB at a time. */
uint64_t page_alloc_phys_aligned(size_t pages, size_t align_pages)
{
	uint64_t pfn = pmm_get_aligned(pages, align_pages, 0);

	return pfn ? pfn << PAGE_SHIFT : 0;
}

void page_free_phys(uint64_t pa, size_t pages)
{
	page_free(phys_to_virt(pa), pages);
}

void *page_alloc_below(size_t pages, uint64_t limit)
{
	uint64_t pfn = pmm_get(pages, limit >> PAGE_SHIFT);
	void *va;

	if (!pfn)
		return NULL;
	va = phys_to_virt(pfn << PAGE_SHIFT);
	memset(va, 0, pages * PAGE_SIZE);
	return va;
}

void *page_alloc(size_t pages)
{
	return page_alloc_below(pages, 0);
}

void page_free(void *va, size_t pages)
{
	uint64_t pa = (uint64_t)va - DIRECT_MAP_BASE, f;

	f = spin_lock_irqsave(&pmm_lock);
	if (pmm_free(&pmm, pa >> PAGE_SHIFT, pages) < 0)
		pr_err("mm: bad free of %zu pages at %#lx", pages, pa);
	spin_unlock_irqrestore(&pmm_lock, f);
}

void mm_stats(uint64_t *total, uint64_t *used, uint64_t *free_bytes)
{
	uint64_t owned = pmm.usable_pages + kernel_pages + loader_pages;
	uint64_t freep = pmm_free_pages(&pmm);

	*total = owned * PAGE_SIZE;
	*free_bytes = freep * PAGE_SIZE;
	*used = (owned - freep) * PAGE_SIZE;
}

/* Returns the table one level down, allocating it on first use. */
static uint64_t *next_table(uint64_t *table, unsigned idx)
{
	uint64_t pfn;

	if (!(table[idx] & PTE_P)) {
		pfn = pmm_get(1, 0);
		if (!pfn)
			return NULL;
		memset(phys_to_virt(pfn << PAGE_SHIFT), 0, PAGE_SIZE);
		table[idx] = (pfn << PAGE_SHIFT) | PTE_P | PTE_W;
	}
	if (table[idx] & PTE_PS)
		return NULL;	/* never split the loader's large pages here */
	return phys_to_virt(table[idx] & PTE_ADDR);
}

static int map_4k(uint64_t va, uint64_t pa, uint64_t flags)
{
	uint64_t *t = phys_to_virt(read_cr3() & PTE_ADDR);
	int shift;

	for (shift = 39; shift > 12; shift -= 9) {
		t = next_table(t, (va >> shift) & 511);
		if (!t)
			return -ENOMEM;
	}
	t[(va >> 12) & 511] = pa | flags | PTE_P | PTE_G;
	return 0;
}

void *mmio_map(uint64_t phys, size_t len)
{
	uint64_t off = phys & (PAGE_SIZE - 1), base, i, f;
	uint64_t pages = (off + len + PAGE_SIZE - 1) >> PAGE_SHIFT;

	f = spin_lock_irqsave(&map_lock);
	base = mmio_next;
	if (base + pages * PAGE_SIZE > MMIO_BASE + MMIO_MAX)
		goto fail;
	for (i = 0; i < pages; i++)
		if (map_4k(base + i * PAGE_SIZE, (phys - off) + i * PAGE_SIZE,
			   PTE_W | PTE_PCD | PTE_PWT | PTE_NX) < 0)
			goto fail;
	mmio_next += (pages + 1) * PAGE_SIZE;	/* one guard page */
	spin_unlock_irqrestore(&map_lock, f);
	return (void *)(base + off);
fail:
	spin_unlock_irqrestore(&map_lock, f);
	return NULL;
}

/* Newlib's malloc grows the heap through here (see newlib_glue.c). */
void *mm_heap_grow(intptr_t incr)
{
	uint64_t old, f;

	f = spin_lock_irqsave(&map_lock);
	old = heap_top;
	if (incr < 0 || heap_top + (uint64_t)incr > HEAP_BASE + HEAP_MAX)
		goto fail;
	while (heap_mapped < heap_top + (uint64_t)incr) {
		uint64_t pfn = pmm_get(1, 0);

		if (!pfn || map_4k(heap_mapped, pfn << PAGE_SHIFT, PTE_W | PTE_NX) < 0)
			goto fail;
		memset((void *)heap_mapped, 0, PAGE_SIZE);
		heap_mapped += PAGE_SIZE;
	}
	heap_top += (uint64_t)incr;
	spin_unlock_irqrestore(&map_lock, f);
	return (void *)old;
fail:
	spin_unlock_irqrestore(&map_lock, f);
	return NULL;
}

static uint64_t map_npages(const struct boot_info *bi)
{
	uint64_t end = 0;
	uint32_t i;

	for (i = 0; i < bi->mem_count; i++) {
		const struct boot_mem_range *r = &bi->mem[i];
		uint64_t e = r->base / PAGE_SIZE + r->pages;

		if (r->type == BOOT_MEM_USABLE && e > end)
			end = e;
	}
	return end;
}

/* The bitmap itself lives in the first usable range big enough for it. */
static uint64_t place_bitmap(const struct boot_info *bi, size_t bytes)
{
	uint64_t need = (bytes + PAGE_SIZE - 1) / PAGE_SIZE;
	uint32_t i;

	for (i = 0; i < bi->mem_count; i++) {
		const struct boot_mem_range *r = &bi->mem[i];

		if (r->type == BOOT_MEM_USABLE && r->base >= LOW_RESERVED &&
		    r->pages >= need)
			return r->base;
	}
	panic("mm: no room for a %zu-byte page bitmap", bytes);
}

void mm_init(const struct boot_info *bi)
{
	uint64_t npages = map_npages(bi);
	size_t bytes = pmm_bitmap_bytes(npages);
	uint64_t bm = place_bitmap(bi, bytes);
	uint32_t i;

	kernel_phys = bi->kernel_phys;
	kernel_pages = bi->kernel_pages;
	pmm_init(&pmm, phys_to_virt(bm), npages);
	for (i = 0; i < bi->mem_count; i++) {
		const struct boot_mem_range *r = &bi->mem[i];

		if (r->type == BOOT_MEM_USABLE)
			pmm_add_free(&pmm, r->base / PAGE_SIZE, r->pages);
		else if (r->type == BOOT_MEM_LOADER)
			loader_pages += r->pages;
	}
	pmm_reserve(&pmm, 0, LOW_RESERVED / PAGE_SIZE);
	pmm_reserve(&pmm, bm / PAGE_SIZE, (bytes + PAGE_SIZE - 1) / PAGE_SIZE);
	loader_pages -= kernel_pages < loader_pages ? kernel_pages : 0;
}
