/*
 * Random numbers for lwIP and the rest of the kernel: a CTR_DRBG (NIST
 * SP 800-90A 10.2, mbedTLS) seeded through mbedTLS's entropy accumulator
 * from the health-tested sources of entropy.c, and RFC 6528 TCP initial
 * sequence numbers keyed from it (lwIP's LWIP_HOOK_TCP_ISN).  Boot CPU
 * only, like the rest of the stack.
 *
 * Fail closed is for TLS (entropy.c): ephemeral ports and ISNs cannot
 * wait, so when the health tests have failed this generator reseeds from
 * unchecked timer samples instead, says so once in the log and in
 * `entropy`, and keeps going: still far from lwIP's old counter.
 */
#include <errno.h>
#include <string.h>

#include "lwip/def.h"
#include "mbedtls/ctr_drbg.h"
#include "mbedtls/entropy.h"
#include "mbedtls/md.h"

#include "kernel/kernel.h"
#include "kernel/lib/tcp_isn.h"
#include "net/stack.h"

#define RNG_PERS	"tern lwip rng"

static mbedtls_entropy_context rng_entropy;
static mbedtls_ctr_drbg_context rng_drbg;
static bool rng_ready, rng_degraded;
static uint8_t rng_isn_key[TCP_ISN_KEY_LEN];

/* The DRBG's entropy input: the tested accumulator, else unchecked. */
static int rng_entropy_cb(void *p, unsigned char *buf, size_t len)
{
	if (mbedtls_entropy_func(p, buf, len) == 0)
		return 0;
	if (!rng_degraded)
		pr_err("entropy: lwIP's ports and TCP ISNs now reseed from unchecked "
		       "timer samples (the health tests failed)");
	rng_degraded = true;
	tern_entropy_unchecked(buf, len);
	return 0;
}

static void rng_init(void)
{
	int rc;

	if (rng_ready)
		return;
	mbedtls_entropy_init(&rng_entropy);
	mbedtls_ctr_drbg_init(&rng_drbg);
	rc = mbedtls_ctr_drbg_seed(&rng_drbg, rng_entropy_cb, &rng_entropy,
				   (const unsigned char *)RNG_PERS, sizeof(RNG_PERS) - 1);
	if (rc == 0)
		rc = mbedtls_ctr_drbg_random(&rng_drbg, rng_isn_key, sizeof(rng_isn_key));
	if (rc != 0)	/* only on a broken mbedTLS build: the callback never fails */
		panic("rng: cannot seed the CTR_DRBG (mbedTLS error -0x%x)", -rc);
	rng_ready = true;
}

void tern_random_bytes(void *out, size_t len)
{
	unsigned char *p = out;

	rng_init();
	while (len > 0) {
		size_t n = len < MBEDTLS_CTR_DRBG_MAX_REQUEST ? len : MBEDTLS_CTR_DRBG_MAX_REQUEST;
		int rc = mbedtls_ctr_drbg_random(&rng_drbg, p, n);

		if (rc != 0)
			panic("rng: CTR_DRBG failed (mbedTLS error -0x%x)", -rc);
		p += n;
		len -= n;
	}
}

uint64_t tern_random_u64(void)
{
	uint64_t v;

	tern_random_bytes(&v, sizeof(v));
	return v;
}

bool tern_random_degraded(void)
{
	return rng_degraded;
}

static int rng_hmac(const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen,
		    uint8_t out[32])
{
	return mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, klen,
			       msg, mlen, out);
}

/* LWIP_HOOK_TCP_ISN (net/port/include/lwipopts.h); addresses in network
 * order as lwIP keeps them. */
uint32_t tern_lwip_tcp_isn(uint32_t lip, uint16_t lport, uint32_t rip, uint16_t rport)
{
	struct tcp_isn_tuple t = { lwip_ntohl(lip), lwip_ntohl(rip), lport, rport };
	uint32_t isn;

	rng_init();
	if (tcp_isn(&t, rng_isn_key, time_us(), rng_hmac, &isn) < 0)
		isn = (uint32_t)tern_random_u64();	/* unreachable with SHA-256 on */
	return isn;
}
