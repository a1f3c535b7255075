/*
 * Raw entropy for mbedTLS (its only source, MBEDTLS_ENTROPY_HARDWARE_ALT)
 * behind NIST SP 800-90B health tests.  Boot CPU only, like the rest of
 * the stack, so the little state here needs no lock.
 *
 * Sources, best first:
 *  - RDSEED (CPUID.(EAX=7,ECX=0):EBX[18]): conditioned entropy straight
 *    from the DRNG's entropy source; may report "not ready" (CF=0) under
 *    load, so it is retried with PAUSE (Intel DRNG Software Implementation
 *    Guide, 5.3.1).
 *  - RDRAND (CPUID.01H:ECX[30]): a CSPRNG reseeded by that source; CF=0
 *    is retried up to 10 times as the guide recommends (5.2.1).  Some AMD
 *    parts returned all-ones with CF=1 after suspend, so 0 and ~0 are
 *    treated as failures too.
 *  - Neither (QEMU's default qemu64 CPU has neither): timing jitter.  The
 *    TSC is read at each edge of the 3.58 MHz ACPI PM timer; the TSC
 *    distance between edges varies with bus, cache and (under emulation)
 *    host scheduling noise.  Without a PM timer the distance is taken
 *    across a short PAUSE loop instead (weaker still).
 *
 * Every raw sample (a 64-bit RDSEED/RDRAND word, or one TSC distance) goes
 * through the repetition count and adaptive proportion tests
 * (kernel/lib/ent_health.h) before any of it reaches mbedTLS, and the
 * first 1024 samples are the start-up test (SP 800-90B 4.3).  A failure is
 * final until reboot: tern_entropy_poll fails, so mbedTLS cannot seed or
 * reseed, and tern_entropy_ok() is false, which makes the TLS users (the
 * network console, migration) refuse.  The serial console does not need
 * it and keeps working.
 *
 * Claimed min-entropy per sample (it sets the cut-offs):
 *  - RDSEED/RDRAND words: 8 bits, the table's maximum; far below the 64
 *    the DRNG promises, so only a broken (stuck or constant) DRNG trips.
 *  - TSC distances: 1 bit (ENT_JITTER_H_HALVES).  Measured with
 *    `entropy sample 4096` (most-common-value estimate, SP 800-90B 6.3.1):
 *    see the README's "Entropy" section for QEMU TCG and Bochs.  The jitter
 *    output folds 2 * 8 / H samples into every byte, so a byte credits at
 *    most half the entropy its samples carry.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/lib/ent_health.h"
#include "kernel/platform/arch.h"
#include "kernel/kernel.h"
#include "net/stack.h"

#define RDRAND_RETRIES		10
#define RDSEED_RETRIES		128
#define ENT_HW_H_HALVES		16	/* 8 bits per 64-bit word, see above */
#define ENT_JITTER_H_HALVES	2	/* 1 bit per TSC distance */
#define JITTER_PER_BYTE		(2 * 8 * 2 / ENT_JITTER_H_HALVES)
#define PM_EDGE_SPINS		100000	/* reads before giving up on a PM edge */
#define ENT_STUCK_VALUE		0x5a5a5a5aull	/* the test hook's constant */

enum { SRC_UNKNOWN, SRC_RDSEED, SRC_RDRAND, SRC_JITTER };

static int ent_src = SRC_UNKNOWN;
static bool ent_has_rdrand;
static bool ent_stuck;			/* `entropy stuck`: the test hook */
static bool ent_reported;		/* the failure is logged once */
static struct ent_health ent_hw, ent_jit;

static bool ent_rdrand64(uint64_t *v)
{
	for (int i = 0; i < RDRAND_RETRIES; i++) {
		uint8_t ok;

		__asm__ volatile("rdrand %0; setc %1" : "=r"(*v), "=qm"(ok) : : "cc");
		if (ok && *v != 0 && *v != ~0ull)
			return true;
	}
	return false;
}

static bool ent_rdseed64(uint64_t *v)
{
	for (int i = 0; i < RDSEED_RETRIES; i++) {
		uint8_t ok;

		__asm__ volatile("rdseed %0; setc %1" : "=r"(*v), "=qm"(ok) : : "cc");
		if (ok && *v != 0 && *v != ~0ull)
			return true;
		cpu_relax();
	}
	return false;
}

/* TSC cycles until the next PM timer edge (or across a PAUSE loop). */
static uint64_t ent_jitter_raw(void)
{
	uint64_t t0 = rdtsc();
	uint32_t pm = acpi_pm_timer_read();

	if (pm != 0) {
		for (int i = 0; i < PM_EDGE_SPINS; i++)
			if (acpi_pm_timer_read() != pm)
				break;
	} else {
		for (int i = 0; i < 64; i++)
			cpu_relax();
	}
	return ent_stuck ? ENT_STUCK_VALUE : rdtsc() - t0;
}

static bool ent_failed(void)
{
	return ent_hw.verdict == ENT_FAIL_RCT || ent_hw.verdict == ENT_FAIL_APT ||
	       ent_jit.verdict == ENT_FAIL_RCT || ent_jit.verdict == ENT_FAIL_APT;
}

static void ent_report(const char *src, const struct ent_health *h)
{
	if (ent_reported)
		return;
	ent_reported = true;
	pr_err("entropy: %s %s after %llu samples (SP 800-90B 4.4): TLS refused "
	       "until reboot (network console, migration); the serial console works",
	       src, ent_verdict_name(h->verdict), (unsigned long long)h->samples);
}

/* One health-checked TSC distance; -EIO once the tests failed. */
static int ent_jitter_sample(uint64_t *d)
{
	*d = ent_jitter_raw();
	if (ent_health_feed(&ent_jit, *d) < 0) {
		ent_report("TSC jitter", &ent_jit);
		return -EIO;
	}
	return 0;
}

/* One health-checked RDSEED/RDRAND word: 1, 0 when the DRNG gave none
 * within its retries (the caller falls back to jitter), -EIO. */
static int ent_hw_word(uint64_t *v)
{
	bool ok = false;

	if (ent_src == SRC_RDSEED)
		ok = ent_rdseed64(v);
	if (!ok && ent_has_rdrand)
		ok = ent_rdrand64(v);
	if (!ok)
		return 0;
	if (ent_stuck)
		*v = ENT_STUCK_VALUE;
	if (ent_health_feed(&ent_hw, *v) < 0) {
		ent_report(ent_src == SRC_RDSEED ? "RDSEED" : "RDRAND", &ent_hw);
		return -EIO;
	}
	return 1;
}

/* The start-up test (SP 800-90B 4.3 (9)): 1024 samples before any use. */
static void ent_startup(struct ent_health *h, bool hw)
{
	uint64_t v;

	while (h->verdict == ENT_STARTING) {
		int r = hw ? ent_hw_word(&v) : ent_jitter_sample(&v);

		if (r < 0)
			return;
		if (hw && r == 0) {
			/* The DRNG gave nothing: jitter takes over. */
			ent_src = SRC_JITTER;
			return;
		}
	}
}

static void ent_detect(void)
{
	uint32_t a, b, c, d, max;

	if (ent_src != SRC_UNKNOWN)
		return;
	cpuid(0, 0, &max, &b, &c, &d);
	cpuid(1, 0, &a, &b, &c, &d);
	ent_has_rdrand = (c >> 30) & 1;
	ent_src = ent_has_rdrand ? SRC_RDRAND : SRC_JITTER;
	if (max >= 7) {
		cpuid(7, 0, &a, &b, &c, &d);
		if ((b >> 18) & 1)
			ent_src = SRC_RDSEED;
	}
	ent_health_init(&ent_hw, ENT_HW_H_HALVES);
	ent_health_init(&ent_jit, ENT_JITTER_H_HALVES);
	if (ent_src != SRC_JITTER)
		ent_startup(&ent_hw, true);
	if (ent_src == SRC_JITTER)
		ent_startup(&ent_jit, false);
}

/* One output byte from JITTER_PER_BYTE health-checked distances. */
static int ent_jitter_byte(uint8_t *out)
{
	uint64_t acc = 0, d;

	if (ent_jit.verdict == ENT_STARTING)
		ent_startup(&ent_jit, false);
	for (int i = 0; i < JITTER_PER_BYTE; i++) {
		if (ent_jitter_sample(&d) < 0)
			return -EIO;
		/* Rotate so every sample's low (noisiest) bits land on
		 * different bits of the byte being built. */
		acc = ((acc << 3) | (acc >> 61)) ^ d;
	}
	*out = (uint8_t)(acc ^ (acc >> 8) ^ (acc >> 16) ^ (acc >> 24));
	return 0;
}

int tern_entropy_poll(void *data, unsigned char *out, size_t len, size_t *olen)
{
	size_t i = 0;

	(void)data;
	if (!out || !olen)
		return -EINVAL;
	*olen = 0;
	ent_detect();
	while (i < len) {
		uint64_t v;
		size_t n = len - i < 8 ? len - i : 8;
		int r = ent_failed() ? -EIO : ent_src == SRC_JITTER ? 0 : ent_hw_word(&v);

		if (r < 0)
			return -EIO;
		if (r > 0) {
			memcpy(out + i, &v, n);
			i += n;
			continue;
		}
		if (ent_src != SRC_JITTER) {
			pr_warn("entropy: %s gave nothing within its retries; "
				"using TSC jitter (weaker)", tern_entropy_source());
			ent_src = SRC_JITTER;
		}
		if (ent_jitter_byte(&out[i]) < 0)
			return -EIO;
		i++;
	}
	*olen = len;
	return 0;
}

int mbedtls_hardware_poll(void *data, unsigned char *output, size_t len,
			  size_t *olen)
{
	return tern_entropy_poll(data, output, len, olen);
}

void tern_entropy_unchecked(unsigned char *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t d = rdtsc() ^ ent_jitter_raw();

		out[i] = (uint8_t)(d ^ (d >> 8) ^ (d >> 16));
	}
}

const char *tern_entropy_source(void)
{
	ent_detect();
	return ent_src == SRC_RDSEED ? "RDSEED" :
	       ent_src == SRC_RDRAND ? "RDRAND" : "TSC jitter";
}

bool tern_entropy_ok(void)
{
	ent_detect();
	return !ent_failed();
}

static const struct ent_health *ent_active(void)
{
	return ent_src == SRC_JITTER ? &ent_jit : &ent_hw;
}

void tern_entropy_print(struct cmd_out *o)
{
	const struct ent_health *h;

	ent_detect();
	h = ent_failed() ? (ent_hw.verdict == ENT_FAIL_RCT || ent_hw.verdict == ENT_FAIL_APT ?
			    &ent_hw : &ent_jit) : ent_active();
	cmd_printf(o, "entropy: %s, health %s (%llu samples; longest run %u of %u, "
		   "window max %u of %u)%s\n",
		   tern_entropy_source(), ent_failed() ? "FAILED" : "ok",
		   (unsigned long long)h->samples, h->rct_worst, h->rct_cutoff,
		   h->apt_worst, h->apt_cutoff,
		   ent_failed() ? ": TLS refused" : "");
	if (ent_failed())
		cmd_printf(o, "entropy: %s\n", ent_verdict_name(h->verdict));
}

/* ---- console: `entropy`, `entropy stuck`, `entropy sample` ---- */

#define ENT_SAMPLE_MAX	4096
static uint64_t ent_samples[ENT_SAMPLE_MAX];

static int ent_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Raw TSC distances (not fed to the health tests, not used for output):
 * how many, how many distinct, and the most common value's count, from
 * which the most-common-value estimate (SP 800-90B 6.3.1) follows.
 */
static int ent_cmd_sample(struct cmd_out *o, unsigned n)
{
	unsigned distinct = 0, mcv = 0, run = 0;
	uint64_t lo = ~0ull, hi = 0, mcv_val = 0;

	for (unsigned i = 0; i < n; i++)
		ent_samples[i] = ent_jitter_raw();
	qsort(ent_samples, n, sizeof(ent_samples[0]), ent_cmp);
	for (unsigned i = 0; i < n; i++) {
		uint64_t v = ent_samples[i];

		run = (i > 0 && v == ent_samples[i - 1]) ? run + 1 : 1;
		distinct += run == 1;
		if (run > mcv) {
			mcv = run;
			mcv_val = v;
		}
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	cmd_printf(o, "jitter samples %u distinct %u mcv %u (value %llu) min %llu max %llu\n",
		   n, distinct, mcv, (unsigned long long)mcv_val,
		   (unsigned long long)lo, (unsigned long long)hi);
	return 0;
}

int net_cmd_entropy(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx;
	if (argc == 0) {
		tern_entropy_print(o);
		return 0;
	}
	if (strcmp(argv[0], "stuck") == 0) {
		/* Test hook: every raw sample from now on is the same value;
		 * a fresh start-up test over it fails the repetition count
		 * test at once instead of at the next reseed. */
		ent_detect();
		ent_stuck = true;
		pr_warn("entropy: test hook: noise source forced stuck");
		ent_health_init(ent_src == SRC_JITTER ? &ent_jit : &ent_hw,
				ent_src == SRC_JITTER ? ENT_JITTER_H_HALVES : ENT_HW_H_HALVES);
		ent_startup(ent_src == SRC_JITTER ? &ent_jit : &ent_hw, ent_src != SRC_JITTER);
		tern_entropy_print(o);
		return 0;
	}
	if (strcmp(argv[0], "sample") == 0) {
		unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : ENT_STARTUP_SAMPLES;

		if (n < 2 || n > ENT_SAMPLE_MAX) {
			cmd_printf(o, "error: entropy sample: N is 2..%u\n", ENT_SAMPLE_MAX);
			return -EINVAL;
		}
		return ent_cmd_sample(o, (unsigned)n);
	}
	cmd_printf(o, "error: entropy: unknown subcommand '%s' (stuck, sample)\n", argv[0]);
	return -EINVAL;
}
