/* Unit tests and a model-checked fuzz test for kernel/lib/pmm.c. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/pmm.h"

#define PMM_T_MAXPAGES	4096

static uint64_t pmm_t_bits[PMM_T_MAXPAGES / 64 + 1];

static bool pmm_t_used(const struct pmm *p, uint64_t pfn)
{
	return (p->bitmap[pfn / 64] >> (pfn % 64)) & 1;
}

/* A fresh allocator over npages with [0, npages) all free. */
static void pmm_t_setup(struct pmm *p, uint64_t npages)
{
	cr_assert_leq(pmm_bitmap_bytes(npages), sizeof(pmm_t_bits));
	pmm_init(p, pmm_t_bits, npages);
	cr_assert_eq(pmm_add_free(p, 0, npages), 0);
	cr_assert_eq(pmm_free_pages(p), npages);
}

Test(pmm, bitmap_bytes)
{
	cr_assert_eq(pmm_bitmap_bytes(0), 0);
	cr_assert_eq(pmm_bitmap_bytes(1), 8);
	cr_assert_eq(pmm_bitmap_bytes(64), 8);
	cr_assert_eq(pmm_bitmap_bytes(65), 16);
	cr_assert_eq(pmm_bitmap_bytes(1ull << 20), 1ull << 17);
	/* No wrap-around at the very top. */
	cr_assert_eq(pmm_bitmap_bytes(UINT64_MAX), (UINT64_MAX / 64 + 1) * 8);
}

Test(pmm, init_everything_used)
{
	struct pmm p;
	uint64_t pfn = 77;

	memset(pmm_t_bits, 0, sizeof(pmm_t_bits));
	pmm_init(&p, pmm_t_bits, 100);
	cr_assert_eq(pmm_free_pages(&p), 0);
	cr_assert_eq(p.usable_pages, 0);
	for (uint64_t i = 0; i < 128; i++)
		cr_assert(pmm_t_used(&p, i));
	cr_assert_eq(pmm_alloc(&p, 1, 1, 0, &pfn), -ENOMEM);
	cr_assert_eq(pfn, 77);
}

Test(pmm, add_free_clips_and_counts_once)
{
	struct pmm p;

	pmm_init(&p, pmm_t_bits, 100);
	cr_assert_eq(pmm_add_free(&p, 10, 20), 0);
	cr_assert_eq(pmm_free_pages(&p), 20);
	/* Overlap with the first range: only the 5 new pages count. */
	cr_assert_eq(pmm_add_free(&p, 25, 10), 0);
	cr_assert_eq(pmm_free_pages(&p), 25);
	cr_assert_eq(p.usable_pages, 25);
	/* Clipped at npages. */
	cr_assert_eq(pmm_add_free(&p, 90, 1000), 0);
	cr_assert_eq(pmm_free_pages(&p), 35);
	cr_assert(pmm_t_used(&p, 100));
	cr_assert(pmm_t_used(&p, 127));
	/* Entirely beyond the bitmap: ignored. */
	cr_assert_eq(pmm_add_free(&p, 5000, 10), 0);
	cr_assert_eq(pmm_free_pages(&p), 35);
	/* Wrap-around is a caller bug. */
	cr_assert_eq(pmm_add_free(&p, UINT64_MAX - 3, 10), -EINVAL);
	cr_assert_eq(pmm_add_free(&p, 1, UINT64_MAX), -EINVAL);
	cr_assert_eq(pmm_free_pages(&p), 35);
	cr_assert_eq(pmm_add_free(&p, 0, 0), 0);
	cr_assert_eq(pmm_free_pages(&p), 35);
}

Test(pmm, reserve)
{
	struct pmm p;
	uint64_t pfn;

	pmm_t_setup(&p, 256);
	cr_assert_eq(pmm_reserve(&p, 0, 16), 0);
	cr_assert_eq(pmm_free_pages(&p), 240);
	cr_assert_eq(p.usable_pages, 240);
	/* Overlapping reserve only counts the pages that were still free. */
	cr_assert_eq(pmm_reserve(&p, 8, 16), 0);
	cr_assert_eq(pmm_free_pages(&p), 232);
	cr_assert_eq(p.usable_pages, 232);
	cr_assert_eq(pmm_reserve(&p, 250, 100), 0);
	cr_assert_eq(pmm_free_pages(&p), 226);
	cr_assert_eq(pmm_reserve(&p, UINT64_MAX, 2), -EINVAL);
	cr_assert_eq(pmm_alloc(&p, 1, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 24);
	/* Reserving allocated pages leaves the counters alone. */
	cr_assert_eq(pmm_reserve(&p, 24, 1), 0);
	cr_assert_eq(pmm_free_pages(&p), 225);
	cr_assert_eq(p.usable_pages, 226);
}

Test(pmm, single_pages_lowest_first)
{
	struct pmm p;
	uint64_t pfn;

	pmm_t_setup(&p, 200);
	for (uint64_t i = 0; i < 10; i++) {
		cr_assert_eq(pmm_alloc(&p, 1, 0, 0, &pfn), 0);
		cr_assert_eq(pfn, i);
	}
	cr_assert_eq(pmm_free_pages(&p), 190);
	cr_assert_eq(pmm_free(&p, 3, 1), 0);
	cr_assert_eq(pmm_free(&p, 7, 1), 0);
	cr_assert_eq(pmm_alloc(&p, 1, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 3);
	cr_assert_eq(pmm_alloc(&p, 1, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 7);
	cr_assert_eq(pmm_alloc(&p, 1, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 10);
	cr_assert_eq(pmm_free_pages(&p), 189);
}

Test(pmm, contiguous_across_words)
{
	struct pmm p;
	uint64_t pfn;

	pmm_t_setup(&p, 1024);
	cr_assert_eq(pmm_alloc(&p, 60, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 0);
	cr_assert_eq(pmm_alloc(&p, 200, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 60);
	for (uint64_t i = 0; i < 260; i++)
		cr_assert(pmm_t_used(&p, i));
	cr_assert(!pmm_t_used(&p, 260));
	cr_assert_eq(pmm_free_pages(&p), 1024 - 260);
	cr_assert_eq(pmm_free(&p, 60, 200), 0);
	cr_assert_eq(pmm_free_pages(&p), 1024 - 60);
	cr_assert_eq(pmm_alloc(&p, 964, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 60);
	cr_assert_eq(pmm_free_pages(&p), 0);
}

Test(pmm, alignment)
{
	struct pmm p;
	uint64_t pfn;

	pmm_t_setup(&p, 4096);
	cr_assert_eq(pmm_alloc(&p, 1, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 0);
	cr_assert_eq(pmm_alloc(&p, 4, 4, 0, &pfn), 0);
	cr_assert_eq(pfn, 4);
	/* 2 MiB-aligned large page. */
	cr_assert_eq(pmm_alloc(&p, 512, 512, 0, &pfn), 0);
	cr_assert_eq(pfn, 512);
	/* The gaps left by alignment are still handed out first-fit. */
	cr_assert_eq(pmm_alloc(&p, 3, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 1);
	cr_assert_eq(pmm_alloc(&p, 1, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 8);
	cr_assert_eq(pmm_alloc(&p, 1, 2048, 0, &pfn), 0);
	cr_assert_eq(pfn, 2048);
	cr_assert_eq(pmm_alloc(&p, 1, 4096, 0, &pfn), -ENOMEM);
	/* Alignment must be a power of two; 0 means 1. */
	cr_assert_eq(pmm_alloc(&p, 1, 3, 0, &pfn), -EINVAL);
	cr_assert_eq(pmm_alloc(&p, 1, 1ull << 63 | 1, 0, &pfn), -EINVAL);
	cr_assert_eq(pmm_alloc(&p, 1, 1ull << 63, 0, &pfn), -ENOMEM);
	cr_assert_eq(pmm_alloc(&p, 0, 1, 0, &pfn), -EINVAL);
	cr_assert_eq(pmm_free_pages(&p), 4096 - 1 - 4 - 512 - 3 - 1 - 1);
}

Test(pmm, max_pfn_limit)
{
	struct pmm p;
	uint64_t pfn;

	pmm_init(&p, pmm_t_bits, 4096);
	cr_assert_eq(pmm_add_free(&p, 1000, 3096), 0);
	cr_assert_eq(pmm_alloc(&p, 1, 1, 1000, &pfn), -ENOMEM);
	cr_assert_eq(pmm_alloc(&p, 8, 1, 1007, &pfn), -ENOMEM);
	cr_assert_eq(pmm_alloc(&p, 8, 1, 1008, &pfn), 0);
	cr_assert_eq(pfn, 1000);
	cr_assert_eq(pmm_alloc(&p, 1, 1, 1008, &pfn), -ENOMEM);
	cr_assert_eq(pmm_alloc(&p, 1, 1, 1009, &pfn), 0);
	cr_assert_eq(pfn, 1008);
	/* A limit past npages is just npages. */
	cr_assert_eq(pmm_alloc(&p, 3087, 1, 1ull << 40, &pfn), 0);
	cr_assert_eq(pfn, 1009);
	cr_assert_eq(pmm_free_pages(&p), 0);
	/* Failing under a low limit must not hide pages above it. */
	cr_assert_eq(pmm_free(&p, 4000, 5), 0);
	cr_assert_eq(pmm_alloc(&p, 1, 1, 2000, &pfn), -ENOMEM);
	cr_assert_eq(pmm_alloc(&p, 5, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 4000);
}

Test(pmm, double_free_rejected_without_change)
{
	struct pmm p;
	uint64_t pfn, snap[sizeof(pmm_t_bits) / 8];
	struct pmm before;

	pmm_t_setup(&p, 300);
	cr_assert_eq(pmm_alloc(&p, 100, 1, 0, &pfn), 0);
	cr_assert_eq(pmm_free(&p, 50, 1), 0);
	memcpy(snap, pmm_t_bits, sizeof(snap));
	before = p;
	/* Range straddling the already-free page 50. */
	cr_assert_eq(pmm_free(&p, 40, 20), -EINVAL);
	cr_assert_eq(pmm_free(&p, 50, 1), -EINVAL);
	/* Straddling the end of the allocation. */
	cr_assert_eq(pmm_free(&p, 95, 10), -EINVAL);
	/* Out of range, zero length, wrap-around. */
	cr_assert_eq(pmm_free(&p, 299, 2), -EINVAL);
	cr_assert_eq(pmm_free(&p, 300, 1), -EINVAL);
	cr_assert_eq(pmm_free(&p, 10, 0), -EINVAL);
	cr_assert_eq(pmm_free(&p, 10, UINT64_MAX), -EINVAL);
	cr_assert_eq(memcmp(snap, pmm_t_bits, sizeof(snap)), 0);
	cr_assert_eq(memcmp(&before, &p, sizeof(p)), 0);
	cr_assert_eq(pmm_free(&p, 0, 50), 0);
	cr_assert_eq(pmm_free(&p, 51, 49), 0);
	cr_assert_eq(pmm_free_pages(&p), 300);
}

Test(pmm, fragmentation)
{
	struct pmm p;
	uint64_t pfn;

	pmm_t_setup(&p, 512);
	cr_assert_eq(pmm_alloc(&p, 512, 1, 0, &pfn), 0);
	/* Free every other page: 256 free, no two adjacent. */
	for (uint64_t i = 0; i < 512; i += 2)
		cr_assert_eq(pmm_free(&p, i, 1), 0);
	cr_assert_eq(pmm_free_pages(&p), 256);
	cr_assert_eq(pmm_alloc(&p, 2, 1, 0, &pfn), -ENOMEM);
	cr_assert_eq(pmm_alloc(&p, 1, 2, 0, &pfn), 0);
	cr_assert_eq(pfn, 0);
	cr_assert_eq(pmm_alloc(&p, 1, 4, 0, &pfn), 0);
	cr_assert_eq(pfn, 4);
	/* Odd alignment-1 page request takes the next hole: 2. */
	cr_assert_eq(pmm_alloc(&p, 1, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 2);
	/* Open a 3-page hole at 301..303 and find it. */
	cr_assert_eq(pmm_free(&p, 301, 1), 0);
	cr_assert_eq(pmm_alloc(&p, 3, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 300);
	cr_assert_eq(pmm_free_pages(&p), 256 - 3 - 3 + 1);
}

Test(pmm, exhaustion_and_padding)
{
	struct pmm p;
	uint64_t pfn;

	/* 70 pages: the last word has 58 padding bits that must stay used. */
	pmm_t_setup(&p, 70);
	for (uint64_t i = 0; i < 70; i++) {
		cr_assert_eq(pmm_alloc(&p, 1, 1, 0, &pfn), 0);
		cr_assert_eq(pfn, i);
	}
	cr_assert_eq(pmm_alloc(&p, 1, 1, 0, &pfn), -ENOMEM);
	cr_assert_eq(pmm_free_pages(&p), 0);
	cr_assert_eq(pmm_free(&p, 0, 70), 0);
	cr_assert_eq(pmm_alloc(&p, 71, 1, 0, &pfn), -ENOMEM);
	cr_assert_eq(pmm_alloc(&p, 70, 1, 0, &pfn), 0);
	cr_assert_eq(pfn, 0);
	cr_assert_eq(pmm_t_bits[1] >> 6, (1ull << 58) - 1);
	cr_assert_eq(pmm_free(&p, 0, 70), 0);
	cr_assert_eq(pmm_t_bits[0], 0);
	cr_assert_eq(pmm_t_bits[1], ~0ull << 6);
}

Test(pmm, zero_pages)
{
	struct pmm p;
	uint64_t pfn;

	pmm_init(&p, NULL, 0);
	cr_assert_eq(pmm_add_free(&p, 0, 10), 0);
	cr_assert_eq(pmm_free_pages(&p), 0);
	cr_assert_eq(pmm_alloc(&p, 1, 1, 0, &pfn), -ENOMEM);
	cr_assert_eq(pmm_free(&p, 0, 1), -EINVAL);
}

/* ---- Fuzz against a byte-per-page model. ---- */

/*
 * Criterion reports every passing cr_assert to its runner; the fuzz checks
 * quietly and fails loudly, with the failing condition and a message.
 */
#define PMM_F_CHECK(c) do { if (!(c)) cr_assert_fail("fuzz: %s", #c); } while (0)
#define PMM_F_CHECKF(c, ...) do { if (!(c)) cr_assert_fail("fuzz: " __VA_ARGS__); } while (0)

#define PMM_F_FREE	(-1)	/* model: page free */
#define PMM_F_NONE	(-2)	/* model: used but owned by nobody */
#define PMM_F_LIVE	512

struct pmm_f_alloc {
	uint64_t pfn, count;
};

struct pmm_f_state {
	struct pmm p;
	uint64_t npages;
	int32_t owner[PMM_T_MAXPAGES];
	uint32_t run[PMM_T_MAXPAGES + 1];
	struct pmm_f_alloc live[PMM_F_LIVE];
	int nlive;
	uint64_t rng;
	int32_t next_id;
};

static uint64_t pmm_f_rand(struct pmm_f_state *s)
{
	/* xorshift64*: deterministic and good enough to spread the cases. */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 2685821657736338717ull;
}

static uint64_t pmm_f_below(struct pmm_f_state *s, uint64_t n)
{
	return n ? pmm_f_rand(s) % n : 0;
}

/* The model's answer: lowest aligned start with count free pages below limit. */
static bool pmm_f_model_fit(struct pmm_f_state *s, uint64_t count, uint64_t align,
			    uint64_t limit, uint64_t *out)
{
	s->run[s->npages] = 0;
	for (uint64_t i = s->npages; i-- > 0;)
		s->run[i] = s->owner[i] == PMM_F_FREE ? s->run[i + 1] + 1 : 0;
	for (uint64_t c = 0; c + count <= limit; c += align) {
		if (s->run[c] >= count) {
			*out = c;
			return true;
		}
	}
	return false;
}

static void pmm_f_check_all(struct pmm_f_state *s)
{
	uint64_t nfree = 0, usable = 0;

	for (uint64_t i = 0; i < s->npages; i++) {
		bool used = pmm_t_used(&s->p, i);

		PMM_F_CHECKF(used == (s->owner[i] != PMM_F_FREE), "page %lu", (unsigned long)i);
		nfree += !used;
		usable += s->owner[i] != PMM_F_NONE;
		if (i < s->p.hint)
			PMM_F_CHECKF(used, "free page %lu below hint %lu",
				     (unsigned long)i, (unsigned long)s->p.hint);
	}
	for (uint64_t i = s->npages; i % 64; i++)
		PMM_F_CHECKF(pmm_t_used(&s->p, i), "padding bit %lu clear", (unsigned long)i);
	PMM_F_CHECK(pmm_free_pages(&s->p) == nfree);
	PMM_F_CHECK(s->p.usable_pages == usable);
}

static void pmm_f_alloc_op(struct pmm_f_state *s)
{
	uint64_t count = 1 + pmm_f_below(s, pmm_f_below(s, 4) ? 4 : 64);
	uint64_t align = 1ull << pmm_f_below(s, pmm_f_below(s, 2) ? 1 : 8);
	uint64_t max_pfn = pmm_f_below(s, 3) ? 0 : pmm_f_below(s, s->npages + 64);
	uint64_t limit = max_pfn && max_pfn < s->npages ? max_pfn : s->npages;
	uint64_t want = 0, got = ~0ull;
	bool fits = pmm_f_model_fit(s, count, align, limit, &want);
	int rc;

	if (s->nlive == PMM_F_LIVE)
		return;
	rc = pmm_alloc(&s->p, count, align, max_pfn, &got);
	if (!fits) {
		PMM_F_CHECK(rc == -ENOMEM);
		return;
	}
	PMM_F_CHECK(rc == 0);
	PMM_F_CHECKF(got == want, "first fit: got %lu want %lu",
		     (unsigned long)got, (unsigned long)want);
	PMM_F_CHECK(got % align == 0);
	PMM_F_CHECK(got + count <= limit);
	for (uint64_t i = got; i < got + count; i++) {
		/* Never overlaps anything live or reserved. */
		PMM_F_CHECK(s->owner[i] == PMM_F_FREE);
		s->owner[i] = s->next_id;
	}
	s->next_id++;
	s->live[s->nlive++] = (struct pmm_f_alloc){ got, count };
}

/* Free a whole live allocation, or a prefix or suffix of it. */
static void pmm_f_free_op(struct pmm_f_state *s)
{
	int k;
	struct pmm_f_alloc *a;
	uint64_t n, start;

	if (!s->nlive)
		return;
	k = (int)pmm_f_below(s, (uint64_t)s->nlive);
	a = &s->live[k];
	n = 1 + pmm_f_below(s, a->count);
	start = pmm_f_below(s, 2) ? a->pfn : a->pfn + a->count - n;
	PMM_F_CHECK(pmm_free(&s->p, start, n) == 0);
	for (uint64_t i = start; i < start + n; i++)
		s->owner[i] = PMM_F_FREE;
	a->count -= n;
	if (start == a->pfn)
		a->pfn += n;
	if (!a->count)
		s->live[k] = s->live[--s->nlive];
}

/* A free the model says must fail: nothing may change. */
static void pmm_f_bad_free_op(struct pmm_f_state *s)
{
	uint64_t start = pmm_f_below(s, s->npages + 8);
	uint64_t n = pmm_f_below(s, 40);
	bool ok = n && start < s->npages && n <= s->npages - start;
	uint64_t free_before = s->p.free_pages;

	for (uint64_t i = start; ok && i < start + n; i++)
		ok = s->owner[i] != PMM_F_FREE;
	if (ok)
		return;	/* would succeed: that is the good-free op's job */
	PMM_F_CHECK(pmm_free(&s->p, start, n) == -EINVAL);
	PMM_F_CHECK(s->p.free_pages == free_before);
}

static void pmm_f_reserve_op(struct pmm_f_state *s)
{
	uint64_t start = pmm_f_below(s, s->npages + 8);
	uint64_t n = pmm_f_below(s, 8);

	PMM_F_CHECK(pmm_reserve(&s->p, start, n) == 0);
	for (uint64_t i = start; i < start + n && i < s->npages; i++)
		if (s->owner[i] == PMM_F_FREE)
			s->owner[i] = PMM_F_NONE;
}

static void pmm_f_run(uint64_t seed, int ops)
{
	static struct pmm_f_state s;

	memset(&s, 0, sizeof(s));
	s.rng = seed * 0x9e3779b97f4a7c15ull + 1;
	s.npages = 1 + pmm_f_below(&s, 700);
	pmm_init(&s.p, pmm_t_bits, s.npages);
	for (uint64_t i = 0; i < s.npages; i++)
		s.owner[i] = PMM_F_NONE;
	/* A firmware map with holes and overlaps. */
	for (int r = (int)pmm_f_below(&s, 6) + 1; r > 0; r--) {
		uint64_t start = pmm_f_below(&s, s.npages), n = pmm_f_below(&s, s.npages);

		PMM_F_CHECK(pmm_add_free(&s.p, start, n) == 0);
		for (uint64_t i = start; i < start + n && i < s.npages; i++)
			s.owner[i] = PMM_F_FREE;
	}
	pmm_f_check_all(&s);
	for (int op = 0; op < ops; op++) {
		uint64_t r = pmm_f_below(&s, 100);

		if (r < 50)
			pmm_f_alloc_op(&s);
		else if (r < 90)
			pmm_f_free_op(&s);
		else if (r < 98)
			pmm_f_bad_free_op(&s);
		else
			pmm_f_reserve_op(&s);
		if (op % 64 == 0)
			pmm_f_check_all(&s);
	}
	pmm_f_check_all(&s);
	/* Drain: every live page goes back, counters return to the model. */
	while (s.nlive)
		pmm_f_free_op(&s);
	pmm_f_check_all(&s);
}

Test(pmm, fuzz_against_model)
{
	for (uint64_t seed = 1; seed <= 40; seed++)
		pmm_f_run(seed, 10000);
}
