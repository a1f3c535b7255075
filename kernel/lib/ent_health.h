/*
 * Health tests on a raw noise source (NIST SP 800-90B section 4): the
 * repetition count test (4.4.1) and the adaptive proportion test (4.4.2),
 * run continuously on every sample, and the start-up test (4.3 (9)): the
 * same two tests over the first 1024 samples before any output is used.
 * Pure: the caller feeds samples (TSC distances, RDSEED/RDRAND words) and
 * reads the verdict; the kernel's entropy.c refuses output once it fails.
 *
 * Cut-offs follow from the min-entropy H the caller claims per sample and
 * a false-positive probability alpha = 2^-20 (the 4.4 recommendation):
 *   RCT: C = 1 + ceil(20 / H)                      (4.4.1)
 *   APT: C = 1 + CRITBINOM(1024, 2^-H, 1 - 2^-20)  (4.4.2, W = 1024)
 * H is given in half bits, 1 (0.5 bit) to 16 (8 bits).
 */
#ifndef TERN_LIB_ENT_HEALTH_H
#define TERN_LIB_ENT_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#define ENT_APT_WINDOW		1024	/* W for non-binary samples (4.4.2) */
#define ENT_STARTUP_SAMPLES	1024	/* 4.3 (9) */
#define ENT_H_HALVES_MAX	16

enum ent_verdict {
	ENT_STARTING,		/* fewer than ENT_STARTUP_SAMPLES seen */
	ENT_OK,
	ENT_FAIL_RCT,		/* repetition count test failed */
	ENT_FAIL_APT,		/* adaptive proportion test failed */
};

struct ent_health {
	uint32_t rct_cutoff, apt_cutoff;
	uint64_t rct_value, apt_value;
	uint32_t rct_run;		/* B of 4.4.1 */
	uint32_t apt_count;		/* B of 4.4.2 */
	uint32_t apt_index;		/* samples of the current window seen */
	uint32_t rct_worst, apt_worst;	/* largest B so far (diagnostics) */
	uint64_t samples;
	enum ent_verdict verdict;
};

/* Cut-offs for H = h_halves / 2 bits per sample; -EINVAL outside 1..16. */
int ent_health_init(struct ent_health *h, unsigned h_halves);
/*
 * One raw sample through both tests.  A failure is sticky: 0 while the
 * source is healthy (or still starting), -EIO from the failing sample on.
 */
int ent_health_feed(struct ent_health *h, uint64_t sample);
/* "starting", "ok", "repetition count test failed", ... */
const char *ent_verdict_name(enum ent_verdict v);

#endif
