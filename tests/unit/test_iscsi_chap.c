/*
 * Unit tests and a fuzz test for storage/lib/iscsi_chap.c.  MD5 is the
 * host mbedTLS build's, checked first against the RFC 1321 A.5 suite;
 * the CHAP answers against values computed independently (Python's
 * hashlib: md5(bytes([id]) + secret + challenge)).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/md5.h>

#include "storage/lib/iscsi_chap.h"

static int md5_calls;

static int host_md5(const struct iscsi_chunk *parts, unsigned n, uint8_t digest[16])
{
	mbedtls_md5_context c;
	int rc;

	md5_calls++;
	mbedtls_md5_init(&c);
	rc = mbedtls_md5_starts_ret(&c);
	for (unsigned i = 0; !rc && i < n; i++)
		rc = mbedtls_md5_update_ret(&c, parts[i].p, parts[i].n);
	if (!rc)
		rc = mbedtls_md5_finish_ret(&c, digest);
	mbedtls_md5_free(&c);
	return rc;
}

static void unhex(const char *h, uint8_t *out)
{
	for (size_t i = 0; h[2 * i]; i++) {
		unsigned v;

		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

Test(iscsi_chap, md5_rfc1321_suite)
{
	static const char *const msg[] = {
		"", "a", "abc", "message digest", "abcdefghijklmnopqrstuvwxyz",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
		"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
	};
	static const char *const want[] = {
		"d41d8cd98f00b204e9800998ecf8427e", "0cc175b9c0f1b6a831c399e269772661",
		"900150983cd24fb0d6963f7d28e17f72", "f96b697d7cb7938d525a2f31aaf161d0",
		"c3fcd3d76192e4007dfb496cca67e13b", "d174ab98d277d9f5a5611c2c9f419d9f",
		"57edf4a22be3c955ac49da2e2107b67a",
	};

	for (size_t i = 0; i < 7; i++) {
		struct iscsi_chunk part = { msg[i], strlen(msg[i]) };
		uint8_t d[16], w[16];

		cr_assert_eq(host_md5(&part, 1, d), 0);
		unhex(want[i], w);
		cr_assert_arr_eq(d, w, 16, "message %zu", i);
	}
}

/* ---- binary values ---- */

Test(iscsi_chap, bin_decode)
{
	uint8_t out[8];
	size_t n;

	cr_assert_eq(iscsi_bin_decode("0x00ff1A", 8, out, 8, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_eq(out[1], 0xff);
	cr_assert_eq(out[2], 0x1a);
	cr_assert_eq(iscsi_bin_decode("0Xabc", 5, out, 8, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(out[0], 0x0a);
	cr_assert_eq(out[1], 0xbc);
	cr_assert_eq(iscsi_bin_decode("0bYWI=", 6, out, 8, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_arr_eq(out, "ab", 2);
	cr_assert_eq(iscsi_bin_decode("0BYQ==", 6, out, 8, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(out[0], 'a');
	/* Exactly cap, one over. */
	cr_assert_eq(iscsi_bin_decode("0x0102030405060708", 18, out, 8, &n), 0);
	cr_assert_eq(iscsi_bin_decode("0x010203040506070809", 20, out, 8, &n), -E2BIG);
	cr_assert_eq(iscsi_bin_decode("0bAAECAwQFBgc=", 14, out, 8, &n), 0);
	cr_assert_eq(n, 8);
	cr_assert_eq(iscsi_bin_decode("0bAAECAwQFBgcI", 14, out, 8, &n), -E2BIG);
	static const char *const bad[] = {
		"", "0", "0x", "0b", "ab", "1x12", "0y12", "0x1g", "0x 1", "0bYWI", "0bY===",
		"0b====", "0bY=WI", "0bYW=I", "0b@@@@", "0bYWI=YWI=",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(iscsi_bin_decode(bad[i], strlen(bad[i]), out, 8, &n), -EINVAL,
			     "%s", bad[i]);
}

Test(iscsi_chap, bin_encode_round_trip)
{
	uint8_t b[64], back[64];
	char s[200];
	size_t n;

	cr_assert_eq(iscsi_bin_encode((const uint8_t *)"\x00\x01\x02\x03\x04\x05\x06\x07"
				      "\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 16, true, s, sizeof(s)), 26);
	cr_assert_str_eq(s, "0bAAECAwQFBgcICQoLDA0ODw==");
	cr_assert_eq(iscsi_bin_encode((const uint8_t *)"\xab\x01", 2, false, s, sizeof(s)), 6);
	cr_assert_str_eq(s, "0xab01");
	cr_assert_eq(iscsi_bin_encode(b, 2, false, s, 7), 6);
	cr_assert_eq(iscsi_bin_encode(b, 2, false, s, 6), -ENOSPC);
	for (size_t len = 1; len <= sizeof(b); len++) {
		for (size_t i = 0; i < len; i++)
			b[i] = (uint8_t)(i * 89 + len);
		for (int b64 = 0; b64 < 2; b64++) {
			int l = iscsi_bin_encode(b, len, b64, s, sizeof(s));

			cr_assert_gt(l, 0);
			cr_assert_eq(iscsi_bin_decode(s, (size_t)l, back, sizeof(back), &n), 0);
			cr_assert_eq(n, len);
			cr_assert_arr_eq(back, b, len);
		}
	}
}

/* ---- CHAP ---- */

static const uint8_t init_secret[] = "tern-secret-12";
static const uint8_t tgt_secret[] = "target-secret-99";

static struct iscsi_chap_cfg cfg_mutual(void)
{
	return (struct iscsi_chap_cfg){
		.name = "iqn.2026-11.org.tern:host-a",
		.secret = init_secret, .slen = sizeof(init_secret) - 1,
		.mutual = true, .target_name = "iqn.2026-11.org.tern:disk1",
		.target_secret = tgt_secret, .tslen = sizeof(tgt_secret) - 1,
	};
}

static int recv_all(struct iscsi_chap *st, const char *t, size_t len, const char **why)
{
	struct iscsi_text_iter it;
	struct iscsi_kv kv;
	int rc;

	iscsi_text_iter_init(&it, t, len);
	while ((rc = iscsi_text_next(&it, &kv, why)) == 1) {
		rc = iscsi_chap_recv(st, &kv, why);
		if (rc < 0)
			return rc;
	}
	return rc;
}

#define RECV(st, lit, why)	recv_all((st), (lit), sizeof(lit) - 1, (why))

static bool find_val(const char *buf, size_t len, const char *key, char *val, size_t cap)
{
	struct iscsi_text_iter it;
	struct iscsi_kv kv;

	iscsi_text_iter_init(&it, buf, len);
	while (iscsi_text_next(&it, &kv, NULL) == 1)
		if (iscsi_kv_is(&kv, key) && kv.vlen < cap) {
			memcpy(val, kv.val, kv.vlen);
			val[kv.vlen] = '\0';
			return true;
		}
	return false;
}

Test(iscsi_chap, one_way_known_answer)
{
	struct iscsi_chap_cfg cfg = cfg_mutual();
	struct iscsi_chap st;
	char out[256], v[64];
	struct iscsi_text_buf b;
	const char *why = NULL;

	cfg.mutual = false;
	iscsi_chap_init(&st);
	iscsi_text_buf_init(&b, out, sizeof(out));
	cr_assert_eq(iscsi_chap_offer(&b), 0);
	cr_assert_arr_eq(out, "CHAP_A=5", 9);
	cr_assert_eq(RECV(&st, "CHAP_A=5\0CHAP_I=42\0CHAP_C=0x000102030405060708090a0b0c0d0e0f\0",
			  &why), 0, "%s", why);
	iscsi_text_buf_init(&b, out, sizeof(out));
	cr_assert_eq(iscsi_chap_answer(&st, &cfg, host_md5, 0, NULL, 0, &b, &why), 0, "%s", why);
	cr_assert(find_val(out, b.len, "CHAP_N", v, sizeof(v)));
	cr_assert_str_eq(v, "iqn.2026-11.org.tern:host-a");
	cr_assert(find_val(out, b.len, "CHAP_R", v, sizeof(v)));
	cr_assert_str_eq(v, "0x990b094d7afee057cc2582b2353682c6");
	cr_assert(!find_val(out, b.len, "CHAP_C", v, sizeof(v)));

	/* The same challenge in base64, CHAP_I in hex: the same answer. */
	iscsi_chap_init(&st);
	cr_assert_eq(RECV(&st, "CHAP_I=0x2a\0CHAP_A=5\0CHAP_C=0bAAECAwQFBgcICQoLDA0ODw==\0", &why), 0);
	iscsi_text_buf_init(&b, out, sizeof(out));
	cr_assert_eq(iscsi_chap_answer(&st, &cfg, host_md5, 0, NULL, 0, &b, &why), 0);
	cr_assert(find_val(out, b.len, "CHAP_R", v, sizeof(v)));
	cr_assert_str_eq(v, "0x990b094d7afee057cc2582b2353682c6");
}

/* Play the target for mutual CHAP with a 1024-byte challenge from us. */
Test(iscsi_chap, mutual_known_answer_and_failures)
{
	struct iscsi_chap_cfg cfg = cfg_mutual();
	struct iscsi_chap st, saved;
	uint8_t my_c[ISCSI_CHAP_BIN_MAX];
	static char out[4096];
	char v[2100];
	struct iscsi_text_buf b;
	const char *why = NULL;

	for (size_t i = 0; i < sizeof(my_c); i++)
		my_c[i] = (uint8_t)(i * 37 + 11);
	iscsi_chap_init(&st);
	cr_assert_eq(RECV(&st, "CHAP_A=5\0CHAP_I=1\0CHAP_C=0x55aa\0", &why), 0);
	iscsi_text_buf_init(&b, out, sizeof(out));
	cr_assert_eq(iscsi_chap_answer(&st, &cfg, host_md5, 255, my_c, sizeof(my_c), &b, &why), 0,
		     "%s", why);
	cr_assert(find_val(out, b.len, "CHAP_I", v, sizeof(v)));
	cr_assert_str_eq(v, "255");
	cr_assert(find_val(out, b.len, "CHAP_C", v, sizeof(v)));
	cr_assert_eq(strlen(v), 2 + 2048);
	saved = st;

	/* The target's correct answer (hashlib). */
	cr_assert_eq(RECV(&st, "CHAP_N=iqn.2026-11.org.tern:disk1\0"
			  "CHAP_R=0x0b3069ca26345657500e455b75f987c9\0", &why), 0);
	cr_assert_eq(iscsi_chap_verify(&st, &cfg, host_md5, &why), 0, "%s", why);
	/* Any name when none is configured. */
	cfg.target_name = NULL;
	cr_assert_eq(iscsi_chap_verify(&st, &cfg, host_md5, &why), 0);
	cfg = cfg_mutual();

	/* One bit off in each byte of the response. */
	for (int i = 0; i < 16; i++) {
		st = saved;
		char r[64] = "CHAP_N=iqn.2026-11.org.tern:disk1";
		uint8_t resp[16];

		unhex("0b3069ca26345657500e455b75f987c9", resp);
		resp[i] ^= 1;
		struct iscsi_kv kn = { "CHAP_N", 6, r + 7, strlen(r + 7) };
		char enc[40];
		iscsi_bin_encode(resp, 16, i & 1, enc, sizeof(enc));
		struct iscsi_kv kr = { "CHAP_R", 6, enc, strlen(enc) };
		cr_assert_eq(iscsi_chap_recv(&st, &kn, &why), 1);
		cr_assert_eq(iscsi_chap_recv(&st, &kr, &why), 1);
		cr_assert_eq(iscsi_chap_verify(&st, &cfg, host_md5, &why), -EACCES);
		cr_assert_str_eq(why, "target CHAP_R is wrong");
	}
	/* Wrong name, missing keys, short response. */
	st = saved;
	cr_assert_eq(RECV(&st, "CHAP_N=iqn.2026-11.org.evil:disk1\0"
			  "CHAP_R=0x0b3069ca26345657500e455b75f987c9\0", &why), 0);
	cr_assert_eq(iscsi_chap_verify(&st, &cfg, host_md5, &why), -EACCES);
	st = saved;
	cr_assert_eq(iscsi_chap_verify(&st, &cfg, host_md5, &why), -EPROTO);
	cr_assert_eq(RECV(&st, "CHAP_R=0x0b3069ca26345657500e455b75f987\0", &why), -EPROTO);
	cfg.mutual = false;
	cr_assert_eq(iscsi_chap_verify(&saved, &cfg, host_md5, &why), -EINVAL);
}

Test(iscsi_chap, reflection_and_bad_input)
{
	struct iscsi_chap_cfg cfg = cfg_mutual();
	struct iscsi_chap st;
	static char out[4096];
	struct iscsi_text_buf b;
	const char *why = NULL;
	uint8_t c[2] = { 0x55, 0xaa };

	iscsi_chap_init(&st);
	cr_assert_eq(RECV(&st, "CHAP_A=5\0CHAP_I=1\0CHAP_C=0x55aa\0", &why), 0);
	iscsi_text_buf_init(&b, out, sizeof(out));
	cr_assert_eq(iscsi_chap_answer(&st, &cfg, host_md5, 9, c, 2, &b, &why), -EACCES);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(iscsi_chap_answer(&st, &cfg, host_md5, 9, c, 0, &b, &why), -EINVAL);
	cr_assert_eq(iscsi_chap_answer(&st, &cfg, host_md5, 9, NULL, 5, &b, &why), -EINVAL);
	cr_assert_eq(iscsi_chap_answer(&st, &cfg, NULL, 9, c, 1, &b, &why), -EINVAL);

	/* Missing pieces. */
	iscsi_chap_init(&st);
	cr_assert_eq(RECV(&st, "CHAP_A=5\0CHAP_C=0x55aa\0", &why), 0);
	cr_assert_eq(iscsi_chap_answer(&st, &cfg, host_md5, 9, c, 1, &b, &why), -EPROTO);

	/* Hostile values. */
	static const char *const bad[] = {
		"CHAP_A=7", "CHAP_A=5,7", "CHAP_A=Reject", "CHAP_I=256", "CHAP_I=-1", "CHAP_I=",
		"CHAP_C=", "CHAP_C=0x", "CHAP_C=55aa", "CHAP_C=0bYWI", "CHAP_R=0x00",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char t[64];
		size_t n = strlen(bad[i]);

		memcpy(t, bad[i], n + 1);
		iscsi_chap_init(&st);
		cr_assert_eq(recv_all(&st, t, n + 1, &why), -EPROTO, "%s", bad[i]);
	}
	/* A 1025-byte challenge is refused, 1024 taken. */
	static char big[8 + 2 + 2050 + 1];
	memcpy(big, "CHAP_C=0x", 9);
	memset(big + 9, 'a', 2048);
	iscsi_chap_init(&st);
	cr_assert_eq(recv_all(&st, big, 9 + 2048 + 1, &why), 0);
	cr_assert_eq(st.clen, 1024);
	/* 1025 in hex is over the text value limit already ... */
	memset(big + 9, 'a', 2050);
	iscsi_chap_init(&st);
	cr_assert_eq(recv_all(&st, big, 9 + 2050 + 1, &why), -E2BIG);
	/* ... in base64 (1372 characters) it is CHAP's own bound. */
	memcpy(big, "CHAP_C=0b", 9);
	memset(big + 9, 'A', 1372);
	memcpy(big + 9 + 1368, "AA==", 5);
	iscsi_chap_init(&st);
	cr_assert_eq(recv_all(&st, big, 9 + 1372 + 1, &why), -EPROTO);
	memcpy(big + 9 + 1364, "AA==", 5);
	iscsi_chap_init(&st);
	cr_assert_eq(recv_all(&st, big, 9 + 1368 + 1, &why), 0);
	cr_assert_eq(st.clen, 1024);
	/* Repeats. */
	iscsi_chap_init(&st);
	cr_assert_eq(RECV(&st, "CHAP_I=1\0CHAP_I=1\0", &why), -EPROTO);
	cr_assert_str_eq(why, "CHAP key repeated");
	/* Not CHAP. */
	struct iscsi_kv kv = { "AuthMethod", 10, "CHAP", 4 };
	cr_assert_eq(iscsi_chap_recv(&st, &kv, &why), 0);
}

Test(iscsi_chap, cfg_check)
{
	struct iscsi_chap_cfg c = cfg_mutual();
	const char *why;

	cr_assert_eq(iscsi_chap_cfg_check(&c, &why), 0);
	c.target_secret = init_secret;
	c.tslen = c.slen;
	cr_assert_eq(iscsi_chap_cfg_check(&c, &why), -EINVAL);
	cr_assert_str_eq(why, "mutual CHAP needs two different secrets");
	c.mutual = false;
	cr_assert_eq(iscsi_chap_cfg_check(&c, &why), 0);
	c.slen = 0;
	cr_assert_eq(iscsi_chap_cfg_check(&c, &why), -EINVAL);
	c.slen = 256;
	cr_assert_eq(iscsi_chap_cfg_check(&c, &why), -EINVAL);
	c = cfg_mutual();
	c.name = "";
	cr_assert_eq(iscsi_chap_cfg_check(&c, &why), -EINVAL);
	c.name = "a\nb";
	cr_assert_eq(iscsi_chap_cfg_check(&c, &why), -EINVAL);
	c = cfg_mutual();
	c.tslen = 0;
	cr_assert_eq(iscsi_chap_cfg_check(&c, &why), -EINVAL);
	c = cfg_mutual();
	c.target_name = "";
	cr_assert_eq(iscsi_chap_cfg_check(&c, &why), -EINVAL);
}

/* Mutated target messages: no crash, only documented results. */
Test(iscsi_chap, fuzz)
{
	static const char base[] =
		"CHAP_A=5\0CHAP_I=42\0CHAP_C=0bAAECAwQFBgcICQoLDA0ODw==\0"
		"CHAP_N=iqn.2026-11.org.tern:disk1\0CHAP_R=0x0b3069ca26345657500e455b75f987c9\0";
	static const char alphabet[] = "=\0xb0123456789abcdefABC+/_";
	struct iscsi_chap_cfg cfg = cfg_mutual();
	uint32_t rng = 3;
	unsigned answered = 0;

	for (int iter = 0; iter < 20000; iter++) {
		size_t len = sizeof(base) - 1;
		char *buf = malloc(len);
		struct iscsi_chap st;
		static char out[4096];
		struct iscsi_text_buf b;
		uint8_t c = 7;
		int rc;

		cr_assert_not_null(buf);
		memcpy(buf, base, len);
		for (int k = 0; k < 3; k++) {
			rng = rng * 1103515245u + 12345u;
			buf[(rng >> 8) % len] = (rng & 0x10000) ? alphabet[(rng >> 20) %
						(sizeof(alphabet) - 1)] : (char)(rng >> 12);
		}
		iscsi_chap_init(&st);
		rc = recv_all(&st, buf, len, NULL);
		cr_assert_leq(rc, 0);
		cr_assert_leq(st.clen, ISCSI_CHAP_BIN_MAX);
		iscsi_text_buf_init(&b, out, sizeof(out));
		if (iscsi_chap_answer(&st, &cfg, host_md5, 1, &c, 1, &b, NULL) == 0)
			answered++;
		rc = iscsi_chap_verify(&st, &cfg, host_md5, NULL);
		cr_assert(rc == 0 || rc == -EACCES || rc == -EPROTO || rc == -EINVAL, "rc %d", rc);
		free(buf);
	}
	cr_expect(answered > 1000, "answered %u", answered);
	cr_assert_gt(md5_calls, 0);
}
