/*
 * The record MAC of the encrypt=off data link (wire format in
 * migrate/stream.h, "Record MACs").
 *
 * Why HMAC-SHA-256 and not GMAC or Poly1305: it has no nonce to get wrong
 * (a repeated GCM nonce gives the key away, NIST SP 800-38D section 8),
 * it runs without SSE in the kernel, and a truncation to 128 bits is
 * allowed by RFC 2104 section 5 (and NIST SP 800-107 section 5.3.3).  One
 * key per migration, so seq, not a nonce, is what keeps tags apart.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "migrate/mig_mac.h"

int mig_mac_init(struct mig_mac *m, const uint8_t key[MIG_MAC_KEY_LEN])
{
	const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	int rc;

	memset(m, 0, sizeof(*m));
	mbedtls_md_init(&m->md);
	if (!info)
		return -EINVAL;
	rc = mbedtls_md_setup(&m->md, info, 1);
	if (rc)
		goto fail;
	rc = mbedtls_md_hmac_starts(&m->md, key, MIG_MAC_KEY_LEN);
	if (rc)
		goto fail;
	m->ready = true;
	return 0;
fail:
	mbedtls_md_free(&m->md);
	return rc == MBEDTLS_ERR_MD_ALLOC_FAILED ? -ENOMEM : -EINVAL;
}

void mig_mac_free(struct mig_mac *m)
{
	if (m->ready)
		mbedtls_md_free(&m->md);
	m->ready = false;
}

int mig_mac_tag(void *ctx, uint64_t seq, const uint8_t *hdr, const uint8_t *meta,
		uint32_t meta_len, const uint8_t *data, uint32_t data_len, uint8_t *tag)
{
	struct mig_mac *m = ctx;
	uint8_t s[8], full[32];

	if (!m->ready)
		return -EINVAL;
	st_le64(s, seq);
	/* hmac_reset keeps the keyed inner state: no key schedule per record. */
	if (mbedtls_md_hmac_reset(&m->md) ||
	    mbedtls_md_hmac_update(&m->md, s, sizeof(s)) ||
	    mbedtls_md_hmac_update(&m->md, hdr, MIG_REC_HDR_LEN) ||
	    (meta_len && mbedtls_md_hmac_update(&m->md, meta, meta_len)) ||
	    (data_len && mbedtls_md_hmac_update(&m->md, data, data_len)) ||
	    mbedtls_md_hmac_finish(&m->md, full))
		return -EINVAL;
	memcpy(tag, full, MIG_TAG_LEN);
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
