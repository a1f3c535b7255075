/*
 * Unit tests for kernel/lib/ent_health.c (SP 800-90B 4.4 health tests):
 * the cut-off table against the standard's formulas, recomputed here in
 * floating point; a stuck source fails the repetition count test; a biased
 * one fails the adaptive proportion test; a good one passes both and the
 * start-up test.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "kernel/lib/ent_health.h"

/* CRITBINOM(n, p, q): the smallest k with P(X <= k) >= q, X ~ B(n, p). */
static unsigned critbinom(unsigned n, double p, double q)
{
	double cdf = 0;

	for (unsigned k = 0; k <= n; k++) {
		cdf += exp(lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0) +
			   k * log(p) + (n - k) * log1p(-p));
		if (cdf >= q)
			return k;
	}
	return n;
}

Test(ent_health, cutoffs_match_sp800_90b)
{
	for (unsigned hh = 1; hh <= ENT_H_HALVES_MAX; hh++) {
		struct ent_health h;
		double H = hh / 2.0;

		cr_assert_eq(ent_health_init(&h, hh), 0);
		cr_expect_eq(h.rct_cutoff, 1 + (unsigned)ceil(20.0 / H), "RCT, H=%g", H);
		cr_expect_eq(h.apt_cutoff, 1 + critbinom(1024, pow(2, -H), 1 - pow(2, -20)),
			     "APT, H=%g", H);
	}
	/* SP 800-90B Table 2 row for H = 1 (non-binary, W = 1024). */
	struct ent_health h;

	ent_health_init(&h, 2);
	cr_assert_eq(h.apt_cutoff, 589);
	cr_assert_eq(ent_health_init(&h, 0), -EINVAL);
	cr_assert_eq(ent_health_init(&h, 17), -EINVAL);
}

/* xorshift64: a stand-in for a good source (64 fresh bits per sample). */
static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

Test(ent_health, stuck_source_fails_rct)
{
	struct ent_health h;
	int rc = 0;
	unsigned n = 0;

	ent_health_init(&h, 2);		/* H = 1: C = 21 */
	while (rc == 0 && n < 100) {
		rc = ent_health_feed(&h, 0x1234);
		n++;
	}
	cr_assert_eq(rc, -EIO);
	cr_assert_eq(n, 21, "fails on the C-th identical sample");
	cr_assert_eq(h.verdict, ENT_FAIL_RCT);
	/* Sticky: a good sample afterwards does not clear it. */
	cr_assert_eq(ent_health_feed(&h, 99), -EIO);
	cr_assert_eq(h.verdict, ENT_FAIL_RCT);
}

Test(ent_health, run_below_cutoff_passes)
{
	struct ent_health h;
	uint64_t s = 88172645463325252ull;

	ent_health_init(&h, 2);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(ent_health_feed(&h, 7), 0);	/* 20 < 21 */
	for (int i = 0; i < 2000; i++)
		cr_assert_eq(ent_health_feed(&h, xs(&s)), 0);
	cr_assert_eq(h.verdict, ENT_OK);
	cr_assert_eq(h.rct_worst, 20);
}

/*
 * Biased: value 0 on 3 of every 4 samples, never twice in a row at the
 * RCT's limit, so only the proportion can catch it.  With H = 1 claimed,
 * 0 must show up fewer than 589 times in 1024.
 */
Test(ent_health, biased_source_fails_apt)
{
	struct ent_health h;
	uint64_t s = 1;
	int rc = 0;
	unsigned n = 0;

	ent_health_init(&h, 2);
	while (rc == 0 && n < 4 * ENT_APT_WINDOW) {
		uint64_t x = (n % 4 == 3) ? (xs(&s) | 1) : 0;

		rc = ent_health_feed(&h, x);
		n++;
	}
	cr_assert_eq(rc, -EIO);
	cr_assert_eq(h.verdict, ENT_FAIL_APT);
	cr_assert_lt(n, ENT_APT_WINDOW, "caught in the first window (at %u)", n);
	cr_assert_lt(h.rct_worst, h.rct_cutoff);
}

Test(ent_health, good_source_passes_startup_and_runs)
{
	struct ent_health h;
	uint64_t s = 42;

	ent_health_init(&h, 16);	/* H = 8: the tightest cut-offs */
	for (unsigned i = 0; i < ENT_STARTUP_SAMPLES - 1; i++)
		cr_assert_eq(ent_health_feed(&h, xs(&s) & 0xffff), 0);
	cr_assert_eq(h.verdict, ENT_STARTING);
	cr_assert_eq(ent_health_feed(&h, xs(&s) & 0xffff), 0);
	cr_assert_eq(h.verdict, ENT_OK);
	for (unsigned i = 0; i < 100000; i++)
		cr_assert_eq(ent_health_feed(&h, xs(&s) & 0xffff), 0, "sample %u", i);
	cr_assert_str_eq(ent_verdict_name(h.verdict), "ok");
}

/* A low-entropy but honest source passes when its H is claimed honestly:
 * 4 equally likely values (2 bits), claimed H = 1. */
Test(ent_health, honest_low_entropy_source_passes)
{
	struct ent_health h;
	uint64_t s = 7;

	ent_health_init(&h, 2);
	for (unsigned i = 0; i < 200000; i++)
		cr_assert_eq(ent_health_feed(&h, xs(&s) >> 62), 0, "sample %u", i);
}
