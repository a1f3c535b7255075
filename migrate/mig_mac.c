/*
 * The record MAC of the encrypt=off data link (wire format in
 * migrate/stream.h, "Record MACs"): ChaCha20-Poly1305 (RFC 8439 section
 * 2.8) with an empty plaintext and the record as its additional data, so
 * the 16-byte tag is the record's Poly1305 MAC under a one-time key that
 * ChaCha20 makes from the migration's key and the nonce (section 2.6).
 *
 * Why this and not HMAC-SHA-256 or GMAC: it is the fastest MAC mbedTLS
 * has without special instructions (about five times HMAC-SHA-256 in
 * plain C: 489 against 101 MB/s natively on the build machine, 256 KiB
 * records; with HMAC-SHA-256 encrypt=off was slower than TLS in the lab),
 * and mbedTLS 2.28 takes its additional data in pieces, which GCM does
 * not.  Its one rule, a nonce never used twice with a key (RFC 8439
 * section 4), holds by construction: the key is new for every migration
 * and the nonce is the record's sequence number, which only grows.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "migrate/mig_mac.h"

int mig_mac_init(struct mig_mac *m, const uint8_t key[MIG_MAC_KEY_LEN])
{
	memset(m, 0, sizeof(*m));
	mbedtls_chachapoly_init(&m->cp);
	if (mbedtls_chachapoly_setkey(&m->cp, key)) {
		mbedtls_chachapoly_free(&m->cp);
		return -EINVAL;
	}
	m->ready = true;
	return 0;
}

void mig_mac_free(struct mig_mac *m)
{
	if (m->ready)
		mbedtls_chachapoly_free(&m->cp);
	m->ready = false;
}

/* Nonce: 4 zero bytes, then seq little-endian (RFC 8439 section 2.8's
 * 96-bit nonce with a 64-bit counter in it). */
int mig_mac_tag(void *ctx, uint64_t seq, const uint8_t *hdr, const uint8_t *meta,
		uint32_t meta_len, const uint8_t *data, uint32_t data_len, uint8_t *tag)
{
	struct mig_mac *m = ctx;
	uint8_t nonce[12] = { 0 };

	if (!m->ready)
		return -EINVAL;
	st_le64(nonce + 4, seq);
	if (mbedtls_chachapoly_starts(&m->cp, nonce, MBEDTLS_CHACHAPOLY_ENCRYPT) ||
	    mbedtls_chachapoly_update_aad(&m->cp, hdr, MIG_REC_HDR_LEN) ||
	    (meta_len && mbedtls_chachapoly_update_aad(&m->cp, meta, meta_len)) ||
	    (data_len && mbedtls_chachapoly_update_aad(&m->cp, data, data_len)) ||
	    mbedtls_chachapoly_finish(&m->cp, tag))
		return -EINVAL;
	return 0;
}

void mig_hex_put(char *out, const uint8_t *in, size_t n)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
	out[2 * n] = '\0';
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int mig_hex_field(const char *line, const char *key, uint8_t *out, size_t n)
{
	size_t klen = strlen(key);
	const char *p = line;

	/* " KEY=": a whole word, not the tail of another key. */
	while ((p = strstr(p, key)) && (p == line || p[-1] != ' ' || p[klen] != '='))
		p++;
	if (!p)
		return -EPROTO;
	p += klen + 1;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit(p[2 * i]), lo = hi < 0 ? -1 : hex_digit(p[2 * i + 1]);

		if (lo < 0)
			return -EPROTO;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return p[2 * n] == ' ' || p[2 * n] == '\0' ? 0 : -EPROTO;
}
