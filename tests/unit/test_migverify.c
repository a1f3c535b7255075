/* The migration-verification shape check: every legal snapshot of the
 * guest's writing order passes, and every single stale page fails. */
#include <criterion/criterion.h>
#include <errno.h>
#include "kernel/lib/migverify.h"

static uint64_t get(void *ctx, uint64_t i)
{
	return ((const uint64_t *)ctx)[i];
}

/* The guest's memory after it stored pass p into pages [0, b). */
static void snap(uint64_t *c, uint64_t n, uint64_t p, uint64_t b)
{
	for (uint64_t i = 0; i < n; i++)
		c[i] = i < b ? p : p - 1;
}

Test(migverify, every_legal_snapshot_passes)
{
	uint64_t c[17];
	struct migv_result r;

	for (uint64_t p = 1; p < 5; p++) {
		for (uint64_t b = 0; b <= 17; b++) {
			snap(c, 17, p, b);
			cr_assert_eq(migv_check(get, c, 17, p, &r), 0, "p %lu b %lu", p, b);
			if (b > 0)
				cr_assert_eq(r.boundary, b);
		}
	}
	for (int i = 0; i < 17; i++)
		c[i] = 0;
	cr_assert_eq(migv_check(get, c, 17, 0, &r), 0);
}

Test(migverify, any_stale_or_wrong_page_fails)
{
	uint64_t c[17];
	struct migv_result r;

	for (uint64_t b = 1; b <= 17; b++) {
		for (uint64_t k = 0; k < 17; k++) {
			uint64_t bad[] = { 0, 1, 2, 5, 6, 7, ~0ull };

			for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
				snap(c, 17, 6, b);
				if (c[k] == bad[j])
					continue;
				/* One page off the shape, except changes that
				 * only move the boundary by one page. */
				uint64_t old = c[k];
				c[k] = bad[j];
				bool moves = (k == b && bad[j] == 6) || (k + 1 == b && bad[j] == 5);
				int rc = migv_check(get, c, 17, 6, &r);

				if (moves)
					cr_assert_eq(rc, 0);
				else
					cr_assert_eq(rc, -EIO, "b %lu k %lu v %lu (was %lu)",
						     b, k, bad[j], old);
			}
		}
	}
	snap(c, 17, 6, 17);
	cr_assert_eq(migv_check(get, c, 17, 8, &r), -EIO);	/* header ahead */
	cr_assert_eq(migv_check(get, c, 0, 6, &r), -EINVAL);
}
