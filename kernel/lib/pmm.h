/*
 * Physical page allocator bookkeeping: one bit per 4 KiB page frame.
 *
 * Pure: no locking and no hardware access.  The kernel owns the storage
 * (the bitmap lives in a page range it reserves from the firmware map) and
 * wraps every call in its own lock.
 *
 * Invariants the functions keep, and the unit tests check:
 *  - bit set = page used (allocated, reserved, or never reported usable);
 *  - the padding bits of the last bitmap word, past npages, are always set,
 *    so word-at-a-time scans never hand out a page beyond npages;
 *  - free_pages is the number of clear bits;
 *  - every pfn below hint is used, so searches may start at hint and the
 *    allocator is still exact lowest-address first-fit.
 *
 * Intended order at boot: pmm_init, pmm_add_free for each usable firmware
 * range, pmm_reserve for what the kernel already occupies, then
 * pmm_alloc/pmm_free.
 */
#ifndef TERN_LIB_PMM_H
#define TERN_LIB_PMM_H

#include <stddef.h>
#include <stdint.h>

#define PMM_PAGE_SHIFT	12
#define PMM_PAGE_SIZE	(1ull << PMM_PAGE_SHIFT)

struct pmm {
	uint64_t *bitmap;	/* 1 = used; pmm_bitmap_bytes(npages) bytes */
	uint64_t npages;	/* covers pfn [0, npages) */
	uint64_t free_pages;	/* clear bits right now */
	uint64_t usable_pages;	/* added by pmm_add_free minus reserved */
	uint64_t hint;		/* every pfn below it is used */
};

/* Bytes of bitmap storage needed for npages (whole 64-bit words). */
size_t pmm_bitmap_bytes(uint64_t npages);

/* Start with every page used; bitmap must hold pmm_bitmap_bytes(npages). */
void pmm_init(struct pmm *p, uint64_t *bitmap, uint64_t npages);

/*
 * Mark [pfn, pfn + count) free, clipped to npages.  Pages already free are
 * not counted twice, so overlapping firmware ranges are harmless.
 * -EINVAL if pfn + count wraps around.
 */
int pmm_add_free(struct pmm *p, uint64_t pfn, uint64_t count);

/*
 * Take [pfn, pfn + count) out of the pool (kernel image, the bitmap itself,
 * the AP trampoline), clipped to npages.  Pages that were free stop counting
 * as usable; pages already used are left alone.  -EINVAL on wrap-around.
 */
int pmm_reserve(struct pmm *p, uint64_t pfn, uint64_t count);

/*
 * Allocate count contiguous pages: the lowest pfn that is a multiple of
 * align_pages (a power of two; 0 means 1) with the whole range free and
 * ending at or below max_pfn (exclusive limit; 0 = no limit, so
 * max_pfn = 0x100000 keeps the range below 4 GiB).
 * -EINVAL for count == 0 or a bad alignment, -ENOMEM when nothing fits.
 */
int pmm_alloc(struct pmm *p, uint64_t count, uint64_t align_pages,
	      uint64_t max_pfn, uint64_t *pfn_out);

/*
 * Free [pfn, pfn + count).  -EINVAL, with nothing changed, if count is 0,
 * the range leaves [0, npages), or any page in it is already free.
 */
int pmm_free(struct pmm *p, uint64_t pfn, uint64_t count);

uint64_t pmm_free_pages(const struct pmm *p);

#endif
