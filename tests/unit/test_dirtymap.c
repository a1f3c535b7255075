/* Unit tests, a model fuzz and a two-thread race test for kernel/lib/dirtymap.c. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/dirtymap.h"

#define DMT_CHECK(c) do { if (!(c)) cr_assert_fail("%s", #c); } while (0)

#define DMT_BASE	0x100000000ull
#define DMT_PAGE	0x1000ull

static uint64_t dmt_rand(uint64_t *s)
{
	/* xorshift64*: deterministic and good enough to spread the cases. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

Test(dirtymap, bytes)
{
	cr_assert_eq(dirtymap_bytes(0), 0);
	cr_assert_eq(dirtymap_bytes(1), 8);
	cr_assert_eq(dirtymap_bytes(64), 8);
	cr_assert_eq(dirtymap_bytes(65), 16);
	cr_assert_eq(dirtymap_bytes(1ull << 18), 1ull << 15);
}

Test(dirtymap, mark_test_range)
{
	uint64_t st[3];
	struct dirtymap m;

	memset(st, 0xaa, sizeof(st));
	dirtymap_init(&m, st, DMT_BASE + 0x123, 130);
	cr_assert_eq(m.base_gpa, DMT_BASE);
	cr_assert_eq(st[0] | st[1] | st[2], 0);
	cr_assert_eq(dirtymap_count(&m), 0);
	cr_assert_eq(dirtymap_mark(&m, DMT_BASE), 0);
	cr_assert_eq(dirtymap_mark(&m, DMT_BASE + 0xfff), 0);	/* same page */
	cr_assert_eq(dirtymap_mark(&m, DMT_BASE + 129 * DMT_PAGE + 5), 0);
	cr_assert_eq(dirtymap_mark(&m, DMT_BASE + 130 * DMT_PAGE), -ERANGE);
	cr_assert_eq(dirtymap_mark(&m, DMT_BASE - 1), -ERANGE);
	cr_assert_eq(dirtymap_mark(&m, 0), -ERANGE);
	cr_assert_eq(dirtymap_mark(&m, UINT64_MAX), -ERANGE);
	cr_assert_eq(dirtymap_count(&m), 2);
	cr_assert(dirtymap_test(&m, DMT_BASE + 10));
	cr_assert(dirtymap_test(&m, DMT_BASE + 129 * DMT_PAGE));
	cr_assert(!dirtymap_test(&m, DMT_BASE + DMT_PAGE));
	cr_assert(!dirtymap_test(&m, DMT_BASE + 130 * DMT_PAGE));
	cr_assert(!dirtymap_test(&m, DMT_BASE - DMT_PAGE));
	cr_assert_eq(st[0], 1);
	cr_assert_eq(st[2], 2);
}

Test(dirtymap, harvest_clears)
{
	uint64_t st[2], out[2];
	struct dirtymap m;

	dirtymap_init(&m, st, 0, 100);
	for (uint64_t p = 0; p < 100; p += 3)
		cr_assert_eq(dirtymap_mark(&m, p * DMT_PAGE), 0);
	cr_assert_eq(dirtymap_harvest(&m, out), 34);
	cr_assert_eq(st[0] | st[1], 0);
	cr_assert_eq(dirtymap_count(&m), 0);
	for (uint64_t p = 0; p < 100; p++)
		cr_assert_eq((out[p / 64] >> (p % 64)) & 1, p % 3 == 0);
	cr_assert_eq(dirtymap_harvest(&m, out), 0);
	cr_assert_eq(out[0] | out[1], 0);
	cr_assert_eq(dirtymap_mark(&m, 5 * DMT_PAGE), 0);
	cr_assert_eq(dirtymap_harvest(&m, NULL), 1);
	cr_assert_eq(dirtymap_count(&m), 0);
}

Test(dirtymap, mark_bits_masks_padding)
{
	uint64_t st[2], src[2] = { 0x8000000000000001ull, ~0ull };
	struct dirtymap m;

	dirtymap_init(&m, st, 0, 70);
	dirtymap_mark(&m, 1 * DMT_PAGE);
	dirtymap_mark_bits(&m, src);
	cr_assert_eq(st[0], 0x8000000000000003ull);
	cr_assert_eq(st[1], 0x3f);	/* pages 64..69 only */
	cr_assert_eq(dirtymap_count(&m), 3 + 6);
	cr_assert_eq(dirtymap_next(st, 70, 0), 0);
	cr_assert_eq(dirtymap_next(st, 70, 2), 63);
	cr_assert_eq(dirtymap_next(st, 70, 69), 69);
	cr_assert_eq(dirtymap_next(st, 70, 70), -1);
	cr_assert_eq(dirtymap_next(st, 65, 65), -1);	/* bits past npages */
	cr_assert_eq(dirtymap_next(st, 70, UINT64_MAX), -1);
}

Test(dirtymap, zero_pages)
{
	struct dirtymap m;

	dirtymap_init(&m, NULL, 0, 0);
	cr_assert_eq(dirtymap_mark(&m, 0), -ERANGE);
	cr_assert_eq(dirtymap_harvest(&m, NULL), 0);
	cr_assert_eq(dirtymap_count(&m), 0);
	cr_assert(!dirtymap_test(&m, 0));
	cr_assert_eq(dirtymap_next(NULL, 0, 0), -1);
}

/* Random marks, bitmap merges and harvests against a bool-per-page model. */
Test(dirtymap, fuzz_model)
{
	enum { N = 1000, W = (N + 63) / 64 };
	static uint64_t st[W], out[W], src[W];
	static bool model[N];
	struct dirtymap m;
	uint64_t rng = 0xd1b54a32d192ed03ull;

	dirtymap_init(&m, st, DMT_BASE, N);
	for (int op = 0; op < 20000; op++) {
		uint64_t r = dmt_rand(&rng) % 100, p = dmt_rand(&rng) % (N + 40);
		uint64_t want = 0;

		if (r < 70) {
			int ret = dirtymap_mark(&m, DMT_BASE + p * DMT_PAGE +
						dmt_rand(&rng) % DMT_PAGE);

			DMT_CHECK(ret == (p < N ? 0 : -ERANGE));
			if (p < N)
				model[p] = true;
		} else if (r < 80) {
			for (unsigned w = 0; w < W; w++)
				src[w] = dmt_rand(&rng) & dmt_rand(&rng) & dmt_rand(&rng);
			dirtymap_mark_bits(&m, src);
			for (unsigned i = 0; i < N; i++)
				model[i] |= (src[i / 64] >> (i % 64)) & 1;
		} else if (r < 90) {
			for (unsigned i = 0; i < N; i++)
				want += model[i];
			DMT_CHECK(dirtymap_count(&m) == want);
			DMT_CHECK(dirtymap_test(&m, DMT_BASE + (p % N) * DMT_PAGE) ==
				  model[p % N]);
		} else {
			int64_t it = -1;
			unsigned seen = 0;

			for (unsigned i = 0; i < N; i++)
				want += model[i];
			DMT_CHECK(dirtymap_harvest(&m, out) == want);
			/* Iterating with dirtymap_next visits exactly the model. */
			while ((it = dirtymap_next(out, N, (uint64_t)(it + 1))) >= 0) {
				DMT_CHECK(model[it]);
				model[it] = false;
				seen++;
			}
			DMT_CHECK(seen == want);
			for (unsigned i = 0; i < N; i++)
				DMT_CHECK(!model[i]);
			DMT_CHECK(dirtymap_count(&m) == 0);
		}
	}
}

/*
 * A marker thread sets each of N distinct pages exactly once per round, in
 * a shuffled order, while the main thread keeps harvesting.  Because every
 * mark is a distinct bit, "never lost, never twice" is exact: a round's
 * harvests are disjoint, their union is every page, and their counts add
 * up to N.  The map is small (64 words) so harvests and marks keep meeting
 * on the same word, and there are many rounds.
 */
#define DMT_RACE_PAGES	4096u
#define DMT_RACE_ROUNDS	150u

struct dmt_race {
	struct dirtymap *m;
	uint32_t *order;
	uint32_t start, done;	/* round published by main / finished by marker */
};

static void *dmt_marker(void *arg)
{
	struct dmt_race *r = arg;

	for (uint32_t round = 1; round <= DMT_RACE_ROUNDS; round++) {
		while (__atomic_load_n(&r->start, __ATOMIC_ACQUIRE) != round)
			;
		for (uint32_t i = 0; i < DMT_RACE_PAGES; i++) {
			uint32_t pg = r->order[(i + round * 977) % DMT_RACE_PAGES];

			dirtymap_mark(r->m, DMT_BASE + (uint64_t)pg * DMT_PAGE);
		}
		__atomic_store_n(&r->done, round, __ATOMIC_RELEASE);
	}
	return NULL;
}

Test(dirtymap, concurrent_marks_never_lost)
{
	enum { W = DMT_RACE_PAGES / 64 };
	static uint64_t st[W], out[W], seen[W];
	static uint32_t order[DMT_RACE_PAGES];
	struct dirtymap m;
	struct dmt_race r = { &m, order, 0, 0 };
	uint64_t rng = 0x2545f4914f6cdd1dull, harvests = 0;
	pthread_t th;

	for (uint32_t i = 0; i < DMT_RACE_PAGES; i++)
		order[i] = i;
	for (uint32_t i = DMT_RACE_PAGES - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(dmt_rand(&rng) % (i + 1)), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	dirtymap_init(&m, st, DMT_BASE, DMT_RACE_PAGES);
	cr_assert_eq(pthread_create(&th, NULL, dmt_marker, &r), 0);
	for (uint32_t round = 1; round <= DMT_RACE_ROUNDS; round++) {
		uint64_t total = 0;
		bool done;

		memset(seen, 0, sizeof(seen));
		__atomic_store_n(&r.start, round, __ATOMIC_RELEASE);
		do {
			uint64_t got, pop = 0;

			done = __atomic_load_n(&r.done, __ATOMIC_ACQUIRE) == round;
			got = dirtymap_harvest(&m, out);
			for (unsigned w = 0; w < W; w++) {
				DMT_CHECK(!(seen[w] & out[w]));	/* never twice */
				seen[w] |= out[w];
				pop += (uint64_t)__builtin_popcountll(out[w]);
			}
			DMT_CHECK(got == pop);
			total += got;
			harvests++;
		} while (!done);	/* the last harvest starts after the last mark */
		if (total != DMT_RACE_PAGES)
			cr_assert_fail("round %u harvested %llu of %u", round,
				       (unsigned long long)total, DMT_RACE_PAGES);
		for (unsigned w = 0; w < W; w++)
			DMT_CHECK(seen[w] == ~0ull);
	}
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(dirtymap_count(&m), 0);
	cr_assert_gt(harvests, DMT_RACE_ROUNDS);
}
