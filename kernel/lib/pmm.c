/*
 * Physical page allocator bookkeeping: a bitmap, 1 = used.  See pmm.h for
 * the invariants.  All scans go a 64-bit word at a time.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/bitops.h"
#include "kernel/lib/pmm.h"

#define BITS	64u

/* Mask of bits [bit, bit + n) of one word; 0 <= bit < 64, 1 <= n <= 64 - bit. */
static uint64_t pmm_mask(uint64_t bit, uint64_t n)
{
	uint64_t ones = n == BITS ? ~0ull : (1ull << n) - 1;

	return ones << bit;
}

static uint64_t pmm_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/*
 * Set (or clear) every bit of [start, end) and return how many bits actually
 * changed, so callers can keep the counters exact when ranges overlap.
 */
static uint64_t pmm_update(struct pmm *p, uint64_t start, uint64_t end, bool set)
{
	uint64_t changed = 0;

	while (start < end) {
		uint64_t *w = &p->bitmap[start / BITS];
		uint64_t bit = start % BITS;
		uint64_t n = pmm_min(BITS - bit, end - start);
		uint64_t m = pmm_mask(bit, n);

		if (set) {
			changed += bit_popcount64(~*w & m);
			*w |= m;
		} else {
			changed += bit_popcount64(*w & m);
			*w &= ~m;
		}
		start += n;
	}
	return changed;
}

/* First pfn in [start, end) whose bit equals used, or end if there is none. */
static uint64_t pmm_find(const struct pmm *p, uint64_t start, uint64_t end, bool used)
{
	while (start < end) {
		uint64_t w = p->bitmap[start / BITS];
		uint64_t bit = start % BITS;
		uint64_t n = pmm_min(BITS - bit, end - start);
		uint64_t x = (used ? w : ~w) & pmm_mask(bit, n);

		if (x)
			return start - bit + (uint64_t)__builtin_ctzll(x);
		start += n;
	}
	return end;
}

size_t pmm_bitmap_bytes(uint64_t npages)
{
	uint64_t words = npages / BITS + (npages % BITS != 0);

	return (size_t)(words * sizeof(uint64_t));
}

void pmm_init(struct pmm *p, uint64_t *bitmap, uint64_t npages)
{
	size_t bytes = pmm_bitmap_bytes(npages);

	p->bitmap = bitmap;
	p->npages = npages;
	p->free_pages = 0;
	p->usable_pages = 0;
	/* All used, padding bits included: they must never read as free. */
	p->hint = npages;
	if (bytes)
		memset(bitmap, 0xff, bytes);
}

int pmm_add_free(struct pmm *p, uint64_t pfn, uint64_t count)
{
	uint64_t end, n;

	if (count > UINT64_MAX - pfn)
		return -EINVAL;
	if (pfn >= p->npages || count == 0)
		return 0;
	end = pmm_min(pfn + count, p->npages);
	n = pmm_update(p, pfn, end, false);
	p->free_pages += n;
	p->usable_pages += n;
	if (pfn < p->hint)
		p->hint = pfn;
	return 0;
}

int pmm_reserve(struct pmm *p, uint64_t pfn, uint64_t count)
{
	uint64_t end, n;

	if (count > UINT64_MAX - pfn)
		return -EINVAL;
	if (pfn >= p->npages || count == 0)
		return 0;
	end = pmm_min(pfn + count, p->npages);
	n = pmm_update(p, pfn, end, true);
	p->free_pages -= n;
	/*
	 * Saturate: only a caller that pmm_free()d pages it never got from
	 * pmm_alloc could make this go negative, and a wrapped counter would
	 * be worse than a low one.
	 */
	p->usable_pages = p->usable_pages > n ? p->usable_pages - n : 0;
	/* Setting bits never breaks "everything below hint is used". */
	return 0;
}

/*
 * Round pfn up to align (a power of two).  Returns false when the result
 * would not fit below UINT64_MAX, which callers treat as "does not fit".
 */
static bool pmm_align_up(uint64_t pfn, uint64_t align, uint64_t *out)
{
	if (pfn > UINT64_MAX - (align - 1))
		return false;
	*out = (pfn + align - 1) & ~(align - 1);
	return true;
}

/*
 * Lowest aligned start in [from, limit) with count free pages ending at or
 * below limit.  Each failed candidate moves past the used page that broke
 * it, so the whole search reads every bitmap word a bounded number of times.
 */
static bool pmm_search(const struct pmm *p, uint64_t from, uint64_t limit,
		       uint64_t count, uint64_t align, uint64_t *found)
{
	uint64_t pos = from;

	while (pos < limit) {
		uint64_t cand, used;

		if (!pmm_align_up(pos, align, &cand) || cand > limit - count)
			return false;
		used = pmm_find(p, cand, cand + count, true);
		if (used == cand + count) {
			*found = cand;
			return true;
		}
		pos = pmm_find(p, used + 1, limit, false);
	}
	return false;
}

int pmm_alloc(struct pmm *p, uint64_t count, uint64_t align_pages,
	      uint64_t max_pfn, uint64_t *pfn_out)
{
	uint64_t limit = p->npages, first, pfn;
	bool ok;

	if (align_pages == 0)
		align_pages = 1;
	if (count == 0 || (align_pages & (align_pages - 1)))
		return -EINVAL;
	if (max_pfn && max_pfn < limit)
		limit = max_pfn;
	if (count > limit || p->hint >= limit)
		return -ENOMEM;

	first = pmm_find(p, p->hint, limit, false);
	if (first == limit) {
		p->hint = limit;
		return -ENOMEM;
	}
	/* Fast path: one page needs no window check, the scan already found it. */
	if (count == 1 && align_pages == 1) {
		pfn = first;
		ok = true;
	} else {
		ok = pmm_search(p, first, limit, count, align_pages, &pfn);
	}
	/* Nothing below first is free, whatever the outcome. */
	p->hint = first;
	if (!ok)
		return -ENOMEM;

	pmm_update(p, pfn, pfn + count, true);
	p->free_pages -= count;
	if (pfn == first)
		p->hint = pfn + count;
	*pfn_out = pfn;
	return 0;
}

int pmm_free(struct pmm *p, uint64_t pfn, uint64_t count)
{
	uint64_t end;

	if (count == 0 || pfn >= p->npages || count > p->npages - pfn)
		return -EINVAL;
	end = pfn + count;
	/* Check the whole range before touching it: an error changes nothing. */
	if (pmm_find(p, pfn, end, false) != end)
		return -EINVAL;
	pmm_update(p, pfn, end, false);
	p->free_pages += count;
	if (pfn < p->hint)
		p->hint = pfn;
	return 0;
}

uint64_t pmm_free_pages(const struct pmm *p)
{
	return p->free_pages;
}
