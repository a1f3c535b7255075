/* The downtime estimate (migrate/downtime.c): the prior until a link is
 * measured, the measured fixed part after, the page budget's floor, and
 * the per-destination table's ring and eviction. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "migrate/downtime.h"

#define MBPS(x)	((uint64_t)(x) * 1000000)

Test(downtime, pages_ms_rounds_up_and_unknown_rate_is_zero)
{
	cr_assert_eq(mig_dt_pages_ms(0, MBPS(10)), 0);
	/* 1000 pages = 4,096,000 bytes at 4.096 MB/s: exactly 1 s. */
	cr_assert_eq(mig_dt_pages_ms(1000, 4096000), 1000);
	cr_assert_eq(mig_dt_pages_ms(1, 4096000), 1);
	cr_assert_eq(mig_dt_pages_ms(123, 0), 0);
}

Test(downtime, prior_counts_the_tail_at_the_link_rate)
{
	struct mig_dt_table t = { 0 };
	bool m = true;

	/* 1 MB of tail at 10 MB/s is 100 ms on top of the prior. */
	cr_assert_eq(mig_dt_fixed(&t, "10.0.0.2", 1000000, MBPS(10), &m),
		     MIG_DT_PRIOR_MS + 100);
	cr_assert(!m);
	cr_assert_eq(mig_dt_fixed(&t, "10.0.0.2", 1000000, 0, NULL), MIG_DT_PRIOR_MS);
}

Test(downtime, measured_fixed_part_replaces_the_prior_per_destination)
{
	struct mig_dt_table t = { 0 };
	bool m = false;

	/* 400 ms down, 250 of them sending the final pages: the fixed
	 * part is the other 150 ms; below 0 it is 0. */
	cr_assert_eq(mig_dt_record(&t, "10.0.0.2", 400, 250), 150);
	cr_assert_eq(mig_dt_fixed(&t, "10.0.0.2", 1 << 20, MBPS(1), &m), 150);
	cr_assert(m);
	cr_assert_eq(mig_dt_record(&t, "10.0.0.3", 100, 250), 0);
	cr_assert_eq(mig_dt_fixed(&t, "10.0.0.3", 0, MBPS(1), &m), 0);
	cr_assert(m);
	/* Another host is still unmeasured. */
	mig_dt_fixed(&t, "10.0.0.4", 0, MBPS(1), &m);
	cr_assert(!m);
}

Test(downtime, largest_recent_sample_counts_and_old_ones_age_out)
{
	struct mig_dt_table t = { 0 };

	mig_dt_record(&t, "h", 90, 0);
	mig_dt_record(&t, "h", 30, 0);
	cr_assert_eq(mig_dt_fixed(&t, "h", 0, MBPS(1), NULL), 90);
	for (int i = 0; i < MIG_DT_SAMPLES; i++)
		mig_dt_record(&t, "h", 40, 0);
	cr_assert_eq(mig_dt_fixed(&t, "h", 0, MBPS(1), NULL), 40);
}

Test(downtime, fits_within_target_less_fixed)
{
	cr_assert(mig_dt_fits(100, 200, 300));
	cr_assert(!mig_dt_fits(100, 201, 300));
	cr_assert(mig_dt_fits(0, 300, 300));
	cr_assert(!mig_dt_fits(0, 301, 300));
}

Test(downtime, pages_keep_a_floor_when_fixed_exceeds_target)
{
	/* Fixed 500 ms against a 300 ms target: pre-copy still stops once
	 * the pages fit a tenth of the target, not never. */
	cr_assert(mig_dt_fits(500, 30, 300));
	cr_assert(!mig_dt_fits(500, 31, 300));
	cr_assert(mig_dt_fits(290, 30, 300));
}

Test(downtime, table_evicts_the_least_recently_used_host)
{
	struct mig_dt_table t = { 0 };
	char a[32];
	bool m;

	for (int i = 0; i < MIG_DT_HOSTS; i++) {
		snprintf(a, sizeof(a), "10.0.0.%d", i);
		mig_dt_record(&t, a, 10 + i, 0);
	}
	/* Touch host 0 again: host 1 is now the oldest. */
	mig_dt_record(&t, "10.0.0.0", 10, 0);
	mig_dt_record(&t, "10.9.9.9", 77, 0);
	cr_assert_eq(mig_dt_fixed(&t, "10.9.9.9", 0, 0, &m), 77);
	cr_assert(m);
	mig_dt_fixed(&t, "10.0.0.1", 0, 0, &m);
	cr_assert(!m, "the least recently used host was not the one dropped");
	mig_dt_fixed(&t, "10.0.0.0", 0, 0, &m);
	cr_assert(m);
}

Test(downtime, long_addresses_are_kept_truncated_and_still_found)
{
	struct mig_dt_table t = { 0 };
	const char *a = "fd00:1234:5678:9abc:def0::1";	/* > 23 characters */

	mig_dt_record(&t, a, 50, 0);
	cr_assert_eq(mig_dt_fixed(&t, a, 0, 0, NULL), 50);
}
