/*
 * Unit tests for kernel/lib/tcp_isn.c (RFC 6528 ISNs).  The MAC is the
 * host mbedTLS build's HMAC-SHA-256, checked first against RFC 4231 test
 * case 2; expected ISNs were computed independently with Python's hmac.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <mbedtls/md.h>

#include "kernel/lib/tcp_isn.h"

static int host_hmac(const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen,
		     uint8_t out[32])
{
	return mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, klen,
			       msg, mlen, out);
}

static int failing_mac(const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen,
		       uint8_t out[32])
{
	(void)key, (void)klen, (void)msg, (void)mlen, (void)out;
	return -5;
}

static uint8_t key_a[TCP_ISN_KEY_LEN], key_b[TCP_ISN_KEY_LEN];
static const struct tcp_isn_tuple t0 = { 0x0a000002, 0x0a000001, 49152, 5001 };

static void setup(void)
{
	for (int i = 0; i < TCP_ISN_KEY_LEN; i++) {
		key_a[i] = (uint8_t)i;
		key_b[i] = (uint8_t)(i + 1);
	}
}

static uint32_t isn(const struct tcp_isn_tuple *t, const uint8_t *key, uint64_t now)
{
	uint32_t v = 0;

	cr_assert_eq(tcp_isn(t, key, now, host_hmac, &v), 0);
	return v;
}

Test(tcp_isn, host_hmac_rfc4231_case2)
{
	static const uint8_t want[32] = {
		0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26,
		0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
		0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43,
	};
	const char *msg = "what do ya want for nothing?";
	uint8_t out[32];

	cr_assert_eq(host_hmac((const uint8_t *)"Jefe", 4, (const uint8_t *)msg,
			       strlen(msg), out), 0);
	cr_assert_arr_eq(out, want, 32);
}

Test(tcp_isn, known_values, .init = setup)
{
	cr_assert_eq(isn(&t0, key_a, 0), 0x94b4b421u);
	cr_assert_eq(isn(&t0, key_a, 4000000), 0x94c3f661u);
}

Test(tcp_isn, differs_by_tuple_and_key, .init = setup)
{
	struct tcp_isn_tuple t = t0;
	uint32_t base = isn(&t0, key_a, 1000);

	t.local_port++;
	cr_assert_neq(isn(&t, key_a, 1000), base);
	t = t0;
	t.remote_port++;
	cr_assert_neq(isn(&t, key_a, 1000), base);
	t = t0;
	t.remote_ip++;
	cr_assert_neq(isn(&t, key_a, 1000), base);
	t = t0;
	t.local_ip++;
	cr_assert_neq(isn(&t, key_a, 1000), base);
	cr_assert_neq(isn(&t0, key_b, 1000), base);
	/* Consecutive local ports (how lwIP hands out ephemeral ones) give
	 * ISNs whose differences are not the clock's. */
	t = t0;
	t.local_port++;
	cr_assert_neq(isn(&t, key_a, 1004) - base, 1u);
}

Test(tcp_isn, same_tuple_advances_with_time, .init = setup)
{
	uint32_t a = isn(&t0, key_a, 1000000);
	uint32_t b = isn(&t0, key_a, 1000400);
	uint32_t c = isn(&t0, key_a, 1000401);

	cr_assert_eq(b - a, 100u, "one tick per 4 us");
	cr_assert_eq(c, b, "same 4-us tick");
	cr_assert_eq(isn(&t0, key_a, 1000000), a, "deterministic");
}

Test(tcp_isn, errors, .init = setup)
{
	uint32_t v = 0;

	cr_assert_eq(tcp_isn(&t0, key_a, 0, NULL, &v), -EINVAL);
	cr_assert_eq(tcp_isn(NULL, key_a, 0, host_hmac, &v), -EINVAL);
	cr_assert_eq(tcp_isn(&t0, NULL, 0, host_hmac, &v), -EINVAL);
	cr_assert_eq(tcp_isn(&t0, key_a, 0, failing_mac, &v), -5);
}
