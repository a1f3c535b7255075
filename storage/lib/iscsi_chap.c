/*
 * CHAP for the iSCSI initiator (RFC 1994, RFC 7143 12.1.3), and the
 * binary value encodings of RFC 7143 6.1.
 */
#include <errno.h>
#include <string.h>

#include "storage/lib/iscsi_chap.h"

static int fail(const char **why, const char *msg, int rc)
{
	if (why)
		*why = msg;
	return rc;
}

/* ---- binary values ---- */

static const char b64_alpha[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int b64_val(char c)
{
	const char *p = c ? memchr(b64_alpha, c, 64) : NULL;

	return p ? (int)(p - b64_alpha) : -1;
}

static int hex_decode(const char *s, size_t len, uint8_t *out, size_t cap, size_t *n)
{
	size_t bytes = (len + 1) / 2, j = 0;
	size_t i = 0;

	if (bytes > cap)
		return -E2BIG;
	/* An odd count: the first digit stands alone, as if led by 0. */
	if (len & 1) {
		int v = hex_val(s[0]);

		if (v < 0)
			return -EINVAL;
		out[j++] = (uint8_t)v;
		i = 1;
	}
	for (; i < len; i += 2) {
		int hi = hex_val(s[i]), lo = hex_val(s[i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[j++] = (uint8_t)(hi << 4 | lo);
	}
	*n = j;
	return 0;
}

/* RFC 4648 section 4, padding required. */
static int b64_decode(const char *s, size_t len, uint8_t *out, size_t cap, size_t *n)
{
	size_t pad = 0, j = 0;

	if (len % 4)
		return -EINVAL;
	while (pad < 2 && pad < len && s[len - 1 - pad] == '=')
		pad++;
	if (len / 4 * 3 - pad > cap)
		return -E2BIG;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t acc = 0;
		int last = i + 4 == len;

		for (int k = 0; k < 4; k++) {
			int v = (last && k >= 4 - (int)pad) ? 0 : b64_val(s[i + k]);

			if (v < 0)
				return -EINVAL;
			acc = acc << 6 | (uint32_t)v;
		}
		out[j++] = (uint8_t)(acc >> 16);
		if (!last || pad < 2)
			out[j++] = (uint8_t)(acc >> 8);
		if (!last || pad < 1)
			out[j++] = (uint8_t)acc;
	}
	*n = j;
	return 0;
}

int iscsi_bin_decode(const char *s, size_t len, uint8_t *out, size_t cap, size_t *n)
{
	int rc;

	*n = 0;
	if (len < 3 || s[0] != '0')
		return -EINVAL;
	if (s[1] == 'x' || s[1] == 'X')
		rc = hex_decode(s + 2, len - 2, out, cap, n);
	else if (s[1] == 'b' || s[1] == 'B')
		rc = b64_decode(s + 2, len - 2, out, cap, n);
	else
		return -EINVAL;
	if (!rc && *n == 0)
		rc = -EINVAL;
	return rc;
}

int iscsi_bin_encode(const uint8_t *b, size_t n, bool b64, char *out, size_t cap)
{
	size_t need = 2 + (b64 ? (n + 2) / 3 * 4 : 2 * n), j = 2;

	if (need + 1 > cap)
		return -ENOSPC;
	out[0] = '0';
	out[1] = b64 ? 'b' : 'x';
	if (!b64) {
		for (size_t i = 0; i < n; i++) {
			out[j++] = "0123456789abcdef"[b[i] >> 4];
			out[j++] = "0123456789abcdef"[b[i] & 15];
		}
	} else {
		for (size_t i = 0; i < n; i += 3) {
			uint32_t acc = (uint32_t)b[i] << 16;
			size_t left = n - i;

			if (left > 1)
				acc |= (uint32_t)b[i + 1] << 8;
			if (left > 2)
				acc |= b[i + 2];
			out[j++] = b64_alpha[acc >> 18];
			out[j++] = b64_alpha[(acc >> 12) & 63];
			out[j++] = left > 1 ? b64_alpha[(acc >> 6) & 63] : '=';
			out[j++] = left > 2 ? b64_alpha[acc & 63] : '=';
		}
	}
	out[j] = '\0';
	return (int)j;
}

/* ---- CHAP ---- */

int iscsi_chap_response(iscsi_md5_fn md5, uint8_t id, const uint8_t *secret, size_t slen,
			const uint8_t *challenge, size_t clen, uint8_t out[ISCSI_MD5_LEN])
{
	struct iscsi_chunk parts[3] = {
		{ &id, 1 }, { secret, slen }, { challenge, clen },
	};

	if (!md5)
		return -EINVAL;
	return md5(parts, 3, out);
}

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > ISCSI_CHAP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

int iscsi_chap_cfg_check(const struct iscsi_chap_cfg *cfg, const char **why)
{
	if (!name_ok(cfg->name))
		return fail(why, "bad CHAP name", -EINVAL);
	if (!cfg->secret || cfg->slen == 0 || cfg->slen > ISCSI_CHAP_SECRET_MAX)
		return fail(why, "CHAP secret must be 1..255 bytes", -EINVAL);
	if (!cfg->mutual)
		return 0;
	if (cfg->target_name && !name_ok(cfg->target_name))
		return fail(why, "bad target CHAP name", -EINVAL);
	if (!cfg->target_secret || cfg->tslen == 0 || cfg->tslen > ISCSI_CHAP_SECRET_MAX)
		return fail(why, "target CHAP secret must be 1..255 bytes", -EINVAL);
	if (cfg->tslen == cfg->slen && !memcmp(cfg->secret, cfg->target_secret, cfg->slen))
		return fail(why, "mutual CHAP needs two different secrets", -EINVAL);
	return 0;
}

void iscsi_chap_init(struct iscsi_chap *st)
{
	memset(st, 0, sizeof(*st));
}

int iscsi_chap_offer(struct iscsi_text_buf *out)
{
	return iscsi_text_add(out, "CHAP_A", "5");
}

enum { CH_A = 1, CH_I = 2, CH_C = 4, CH_N = 8, CH_R = 16 };

static int chap_store(struct iscsi_chap *st, unsigned bit, const struct iscsi_kv *kv,
		      const char **why)
{
	uint64_t v;
	size_t n;

	switch (bit) {
	case CH_A:
		/* The target picks one of our list: we offered only 5. */
		if (iscsi_parse_number(kv->val, kv->vlen, &v) || v != ISCSI_CHAP_ALG_MD5)
			return fail(why, "CHAP_A is not 5 (MD5)", -EPROTO);
		return 1;
	case CH_I:
		if (iscsi_parse_number(kv->val, kv->vlen, &v) || v > 255)
			return fail(why, "CHAP_I is not 0..255", -EPROTO);
		st->id = (uint8_t)v;
		return 1;
	case CH_C:
		if (iscsi_bin_decode(kv->val, kv->vlen, st->c, sizeof(st->c), &st->clen))
			return fail(why, "CHAP_C is not 1..1024 bytes of hex or base64", -EPROTO);
		return 1;
	case CH_N:
		memcpy(st->tname, kv->val, kv->vlen);	/* vlen <= 255: iscsi_text_next */
		st->tname[kv->vlen] = '\0';
		return 1;
	default:
		if (iscsi_bin_decode(kv->val, kv->vlen, st->tresp, sizeof(st->tresp), &n) ||
		    n != ISCSI_MD5_LEN)
			return fail(why, "CHAP_R is not 16 bytes", -EPROTO);
		return 1;
	}
}

int iscsi_chap_recv(struct iscsi_chap *st, const struct iscsi_kv *kv, const char **why)
{
	static const char *const keys[] = { "CHAP_A", "CHAP_I", "CHAP_C", "CHAP_N", "CHAP_R" };

	for (unsigned i = 0; i < 5; i++) {
		unsigned bit = 1u << i;

		if (!iscsi_kv_is(kv, keys[i]))
			continue;
		if (st->seen & bit)
			return fail(why, "CHAP key repeated", -EPROTO);
		if (kv->vlen > ISCSI_CHAP_NAME_MAX && bit == CH_N)
			return fail(why, "CHAP_N too long", -EPROTO);
		st->seen |= bit;
		return chap_store(st, bit, kv, why);
	}
	return 0;
}

int iscsi_chap_answer(struct iscsi_chap *st, const struct iscsi_chap_cfg *cfg,
		      iscsi_md5_fn md5, uint8_t my_id, const uint8_t *my_c, size_t my_clen,
		      struct iscsi_text_buf *out, const char **why)
{
	uint8_t r[ISCSI_MD5_LEN];
	char enc[2 + 2 * ISCSI_CHAP_BIN_MAX + 1];
	int rc;

	rc = iscsi_chap_cfg_check(cfg, why);
	if (rc)
		return rc;
	if ((st->seen & (CH_A | CH_I | CH_C)) != (CH_A | CH_I | CH_C))
		return fail(why, "CHAP_A, CHAP_I and CHAP_C not all received", -EPROTO);
	if (cfg->mutual) {
		if (!my_c || my_clen == 0 || my_clen > ISCSI_CHAP_BIN_MAX)
			return fail(why, "our challenge must be 1..1024 bytes", -EINVAL);
		/* 12.1.3: never answer our own challenge sent back to us. */
		if (my_clen == st->clen && !memcmp(my_c, st->c, my_clen))
			return fail(why, "target challenge equals ours (reflection)", -EACCES);
	}
	rc = iscsi_chap_response(md5, st->id, cfg->secret, cfg->slen, st->c, st->clen, r);
	if (rc)
		return fail(why, "MD5 failed", rc);
	iscsi_text_add(out, "CHAP_N", cfg->name);
	iscsi_bin_encode(r, sizeof(r), false, enc, sizeof(enc));
	iscsi_text_add(out, "CHAP_R", enc);
	if (cfg->mutual) {
		st->my_id = my_id;
		st->my_clen = my_clen;
		memcpy(st->my_c, my_c, my_clen);
		iscsi_text_add_u32(out, "CHAP_I", my_id);
		iscsi_bin_encode(my_c, my_clen, false, enc, sizeof(enc));
		iscsi_text_add(out, "CHAP_C", enc);
	}
	return out->err;
}

/* Same time whatever the position of the first difference. */
static bool same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

int iscsi_chap_verify(const struct iscsi_chap *st, const struct iscsi_chap_cfg *cfg,
		      iscsi_md5_fn md5, const char **why)
{
	uint8_t want[ISCSI_MD5_LEN];
	int rc;

	if (!cfg->mutual || !st->my_clen)
		return fail(why, "no mutual CHAP challenge was sent", -EINVAL);
	if ((st->seen & (CH_N | CH_R)) != (CH_N | CH_R))
		return fail(why, "target sent no CHAP_N and CHAP_R", -EPROTO);
	if (cfg->target_name && strcmp(cfg->target_name, st->tname))
		return fail(why, "target CHAP_N is not the expected name", -EACCES);
	rc = iscsi_chap_response(md5, st->my_id, cfg->target_secret, cfg->tslen,
				 st->my_c, st->my_clen, want);
	if (rc)
		return fail(why, "MD5 failed", rc);
	if (!same_bytes(want, st->tresp, sizeof(want)))
		return fail(why, "target CHAP_R is wrong", -EACCES);
	return 0;
}
