/*
 * SP 800-90B 4.4 health tests (see ent_health.h).  The cut-offs are the
 * standard's formulas evaluated for alpha = 2^-20 and W = 1024 (exact
 * binomial quantiles, computed offline; tests/unit/test_ent_health.c
 * recomputes them).
 */
#include <errno.h>
#include <string.h>

#include "kernel/lib/ent_health.h"

/* Index h_halves - 1: H = 0.5, 1, 1.5, ... 8 bits per sample. */
static const uint16_t ent_rct_cutoffs[ENT_H_HALVES_MAX] = {
	41, 21, 15, 11, 9, 8, 7, 6, 6, 5, 5, 5, 5, 4, 4, 4,
};
static const uint16_t ent_apt_cutoffs[ENT_H_HALVES_MAX] = {
	793, 589, 437, 325, 242, 182, 138, 105, 81, 63, 49, 39, 31, 26, 21, 18,
};

int ent_health_init(struct ent_health *h, unsigned h_halves)
{
	if (h_halves < 1 || h_halves > ENT_H_HALVES_MAX)
		return -EINVAL;
	memset(h, 0, sizeof(*h));
	h->rct_cutoff = ent_rct_cutoffs[h_halves - 1];
	h->apt_cutoff = ent_apt_cutoffs[h_halves - 1];
	h->verdict = ENT_STARTING;
	return 0;
}

/* 4.4.1: B counts consecutive identical samples; B >= C is a failure. */
static bool ent_rct(struct ent_health *h, uint64_t x)
{
	if (h->samples > 0 && x == h->rct_value) {
		h->rct_run++;
	} else {
		h->rct_value = x;
		h->rct_run = 1;
	}
	if (h->rct_run > h->rct_worst)
		h->rct_worst = h->rct_run;
	return h->rct_run < h->rct_cutoff;
}

/* 4.4.2: the first sample A of each window of W; B counts how often A
 * occurs in the window (itself included); B >= C is a failure. */
static bool ent_apt(struct ent_health *h, uint64_t x)
{
	if (h->apt_index == 0) {
		h->apt_value = x;
		h->apt_count = 1;
	} else if (x == h->apt_value) {
		h->apt_count++;
	}
	if (++h->apt_index == ENT_APT_WINDOW)
		h->apt_index = 0;
	if (h->apt_count > h->apt_worst)
		h->apt_worst = h->apt_count;
	return h->apt_count < h->apt_cutoff;
}

int ent_health_feed(struct ent_health *h, uint64_t sample)
{
	bool rct_ok, apt_ok;

	if (h->verdict == ENT_FAIL_RCT || h->verdict == ENT_FAIL_APT)
		return -EIO;
	rct_ok = ent_rct(h, sample);
	apt_ok = ent_apt(h, sample);
	h->samples++;
	if (!rct_ok)
		h->verdict = ENT_FAIL_RCT;
	else if (!apt_ok)
		h->verdict = ENT_FAIL_APT;
	else if (h->samples >= ENT_STARTUP_SAMPLES)
		h->verdict = ENT_OK;
	return rct_ok && apt_ok ? 0 : -EIO;
}

const char *ent_verdict_name(enum ent_verdict v)
{
	switch (v) {
	case ENT_STARTING:	return "start-up test running";
	case ENT_OK:		return "ok";
	case ENT_FAIL_RCT:	return "repetition count test failed";
	case ENT_FAIL_APT:	return "adaptive proportion test failed";
	}
	return "?";
}
