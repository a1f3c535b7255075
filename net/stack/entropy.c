/*
 * Entropy for mbedTLS (its only source, MBEDTLS_ENTROPY_HARDWARE_ALT) and
 * random numbers for lwIP.  Boot CPU only, like the rest of the stack, so
 * the little state here needs no lock.
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
 *    TSC is read at each edge of the 3.58 MHz ACPI PM timer; the low bits
 *    of the TSC distance between edges vary with bus, cache and (under
 *    emulation) host scheduling noise.  Eight such distances are folded
 *    into every output byte, and mbedTLS hashes the result again (SHA-512
 *    accumulator), but this is a heuristic source, not a certified one:
 *    a warning is logged the first time it is used.  Without a PM timer the
 *    distances are taken across a short PAUSE loop instead (weaker still).
 */
#include <errno.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/kernel.h"
#include "net/stack.h"

#define RDRAND_RETRIES	10
#define RDSEED_RETRIES	128
#define JITTER_SAMPLES	8	/* TSC distances folded into one byte */
#define PM_EDGE_SPINS	100000	/* reads before giving up on a PM edge */

enum { SRC_UNKNOWN, SRC_RDSEED, SRC_RDRAND, SRC_JITTER };

static int ent_src = SRC_UNKNOWN;
static bool ent_has_rdrand;
static bool ent_warned;
static uint64_t prng_state;

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
}

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
static uint64_t ent_jitter_sample(void)
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
	return rdtsc() - t0;
}

static uint8_t ent_jitter_byte(void)
{
	uint64_t acc = 0;

	for (int i = 0; i < JITTER_SAMPLES; i++) {
		uint64_t d = ent_jitter_sample();

		/* Rotate so every sample's low (noisiest) bits land on
		 * different bits of the byte being built. */
		acc = ((acc << 3) | (acc >> 61)) ^ d;
	}
	return (uint8_t)(acc ^ (acc >> 8) ^ (acc >> 16) ^ (acc >> 24));
}

int tern_entropy_poll(void *data, unsigned char *out, size_t len, size_t *olen)
{
	size_t i = 0;

	(void)data;
	if (!out || !olen)
		return -EINVAL;
	ent_detect();
	while (i < len) {
		uint64_t v;
		size_t n = len - i < 8 ? len - i : 8;
		bool ok = false;

		if (ent_src == SRC_RDSEED)
			ok = ent_rdseed64(&v);
		if (!ok && ent_has_rdrand)
			ok = ent_rdrand64(&v);
		if (ok) {
			memcpy(out + i, &v, n);
			i += n;
			continue;
		}
		if (!ent_warned) {
			ent_warned = true;
			pr_warn("entropy: no working RDSEED/RDRAND; using TSC jitter "
				"against the %s (weak)",
				acpi_pm_timer_read() ? "ACPI PM timer" : "PAUSE loop");
		}
		out[i++] = ent_jitter_byte();
	}
	*olen = len;
	return 0;
}

int mbedtls_hardware_poll(void *data, unsigned char *output, size_t len,
			  size_t *olen)
{
	return tern_entropy_poll(data, output, len, olen);
}

const char *tern_entropy_source(void)
{
	ent_detect();
	return ent_src == SRC_RDSEED ? "RDSEED" :
	       ent_src == SRC_RDRAND ? "RDRAND" : "TSC jitter";
}

/* xorshift64* (Vigna, "An experimental exploration of Marsaglia's
 * xorshift generators, scrambled", 2016). */
uint64_t tern_random_u64(void)
{
	uint64_t v;
	size_t n;

	ent_detect();
	if (ent_has_rdrand && ent_rdrand64(&v))
		return v;
	if (prng_state == 0) {
		tern_entropy_poll(NULL, (unsigned char *)&prng_state,
				  sizeof(prng_state), &n);
		prng_state ^= rdtsc();
		if (prng_state == 0)
			prng_state = 0x9e3779b97f4a7c15ull;
	}
	prng_state ^= prng_state >> 12;
	prng_state ^= prng_state << 25;
	prng_state ^= prng_state >> 27;
	return prng_state * 0x2545f4914f6cdd1dull;
}
