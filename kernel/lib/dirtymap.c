/*
 * Dirty page bitmap with lock-free marking and harvesting; see dirtymap.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/bitops.h"
#include "kernel/lib/dirtymap.h"

#define DM_PAGE_SHIFT	12
#define DM_BITS		64u

static uint64_t dm_words(uint64_t npages)
{
	return npages / DM_BITS + (npages % DM_BITS != 0);
}

/* Valid bits of word w: all but the padding of the last word. */
static uint64_t dm_word_mask(uint64_t npages, uint64_t w)
{
	uint64_t left = npages - w * DM_BITS;

	return left >= DM_BITS ? ~0ull : (1ull << left) - 1;
}

/* Page index of gpa, or -1 outside the map. */
static int64_t dm_page(const struct dirtymap *m, uint64_t gpa)
{
	uint64_t pg;

	if (gpa < m->base_gpa)
		return -1;
	pg = (gpa - m->base_gpa) >> DM_PAGE_SHIFT;
	return pg < m->npages ? (int64_t)pg : -1;
}

size_t dirtymap_bytes(uint64_t npages)
{
	return (size_t)(dm_words(npages) * sizeof(uint64_t));
}

void dirtymap_init(struct dirtymap *m, uint64_t *storage, uint64_t base_gpa,
		   uint64_t npages)
{
	size_t bytes = dirtymap_bytes(npages);

	m->bits = storage;
	m->npages = npages;
	m->base_gpa = base_gpa & ~((1ull << DM_PAGE_SHIFT) - 1);
	if (bytes)
		memset(storage, 0, bytes);
}

int dirtymap_mark(struct dirtymap *m, uint64_t gpa)
{
	int64_t pg = dm_page(m, gpa);

	if (pg < 0)
		return -ERANGE;
	__atomic_fetch_or(&m->bits[pg / DM_BITS], 1ull << (pg % DM_BITS),
			  __ATOMIC_RELAXED);
	return 0;
}

void dirtymap_mark_bits(struct dirtymap *m, const uint64_t *src)
{
	uint64_t n = dm_words(m->npages);

	for (uint64_t w = 0; w < n; w++) {
		uint64_t v = src[w] & dm_word_mask(m->npages, w);

		if (v)
			__atomic_fetch_or(&m->bits[w], v, __ATOMIC_RELAXED);
	}
}

uint64_t dirtymap_harvest(struct dirtymap *m, uint64_t *out)
{
	uint64_t n = dm_words(m->npages), total = 0;

	for (uint64_t w = 0; w < n; w++) {
		/* Plain load first: skip the locked exchange on clean words. */
		uint64_t old = __atomic_load_n(&m->bits[w], __ATOMIC_RELAXED);

		if (old)
			old = __atomic_exchange_n(&m->bits[w], 0, __ATOMIC_ACQ_REL);
		if (out)
			out[w] = old;
		total += bit_popcount64(old);
	}
	return total;
}

uint64_t dirtymap_count(const struct dirtymap *m)
{
	uint64_t n = dm_words(m->npages), total = 0;

	for (uint64_t w = 0; w < n; w++)
		total += bit_popcount64(__atomic_load_n(&m->bits[w], __ATOMIC_RELAXED));
	return total;
}

bool dirtymap_test(const struct dirtymap *m, uint64_t gpa)
{
	int64_t pg = dm_page(m, gpa);

	if (pg < 0)
		return false;
	return (__atomic_load_n(&m->bits[pg / DM_BITS], __ATOMIC_RELAXED) >>
		(pg % DM_BITS)) & 1;
}

int64_t dirtymap_next(const uint64_t *bits, uint64_t npages, uint64_t from)
{
	while (from < npages) {
		uint64_t w = bits[from / DM_BITS] & (~0ull << (from % DM_BITS));

		if (w) {
			uint64_t i = from - from % DM_BITS +
				     (uint64_t)__builtin_ctzll(w);

			return i < npages ? (int64_t)i : -1;
		}
		from = from - from % DM_BITS + DM_BITS;
	}
	return -1;
}
