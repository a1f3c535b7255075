/*
 * CHAP for iSCSI login, initiator side (RFC 1994, RFC 7143 12.1.3):
 * one-way (the target checks us) and mutual (we check the target too).
 * Pure: MD5 comes in as a function pointer (the kernel passes mbedTLS's,
 * the tests the host build's), randomness as caller-supplied bytes.
 *
 * The exchange, security stage of the login:
 *	I -> T	AuthMethod=CHAP (iscsi_text.h), then CHAP_A=5
 *	T -> I	CHAP_A=5 CHAP_I=<id> CHAP_C=<challenge>
 *	I -> T	CHAP_N=<name> CHAP_R=MD5(id || secret || challenge)
 *		[mutual: CHAP_I=<our id> CHAP_C=<our challenge>]
 *	T -> I	[mutual: CHAP_N=<target name> CHAP_R=<its response>]
 *
 * Binary values are "0x" hex or "0b" base64 (RFC 7143 6.1); challenges
 * are 1..1024 bytes (12.1.3).
 */
#ifndef TERN_STORAGE_ISCSI_CHAP_H
#define TERN_STORAGE_ISCSI_CHAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/lib/iscsi_text.h"

#define ISCSI_CHAP_ALG_MD5	5	/* CHAP_A (RFC 1994, IANA PPP) */
#define ISCSI_MD5_LEN		16
#define ISCSI_CHAP_SECRET_MAX	255
#define ISCSI_CHAP_NAME_MAX	255	/* CHAP_N is a text-value */

struct iscsi_chunk {
	const void *p;
	size_t n;
};

/* MD5 of the concatenated parts into digest.  Returns 0 or negative. */
typedef int (*iscsi_md5_fn)(const struct iscsi_chunk *parts, unsigned nparts,
			    uint8_t digest[ISCSI_MD5_LEN]);

/*
 * Decode "0x…"/"0X…" hex (an odd digit count reads as if led by a 0) or
 * "0b…"/"0B…" base64 with padding into out[0..cap).  *n gets the length.
 * Returns 0, -EINVAL (no prefix, bad digit, bad padding, empty), or
 * -E2BIG (more than cap bytes).
 */
int iscsi_bin_decode(const char *s, size_t len, uint8_t *out, size_t cap, size_t *n);

/*
 * Encode b[0..n) as "0x" + lower-case hex, or "0b" + base64 when b64,
 * NUL-terminated in out[0..cap).  Returns the length without the NUL, or
 * -ENOSPC.
 */
int iscsi_bin_encode(const uint8_t *b, size_t n, bool b64, char *out, size_t cap);

/* RFC 1994 4.1: MD5(id || secret || challenge). */
int iscsi_chap_response(iscsi_md5_fn md5, uint8_t id, const uint8_t *secret, size_t slen,
			const uint8_t *challenge, size_t clen, uint8_t out[ISCSI_MD5_LEN]);

struct iscsi_chap_cfg {
	const char *name;		/* our CHAP_N */
	const uint8_t *secret;		/* what the target checks us with */
	size_t slen;
	bool mutual;
	const char *target_name;	/* expected target CHAP_N; NULL: any */
	const uint8_t *target_secret;	/* what we check the target with */
	size_t tslen;
};

/*
 * Secrets 1..255 bytes, names non-empty text values, and for mutual CHAP
 * two different secrets (RFC 7143 12.1.3: a secret for one direction must
 * not authenticate the other).  Returns 0 or -EINVAL with *why.
 */
int iscsi_chap_cfg_check(const struct iscsi_chap_cfg *cfg, const char **why);

/* What the target sent, collected over one or more Login Responses. */
struct iscsi_chap {
	uint32_t seen;			/* bit per CHAP_* key received */
	uint8_t id;			/* target's CHAP_I */
	size_t clen;
	uint8_t c[ISCSI_CHAP_BIN_MAX];	/* target's CHAP_C */
	uint8_t my_id;			/* ours, mutual */
	size_t my_clen;
	uint8_t my_c[ISCSI_CHAP_BIN_MAX];
	char tname[ISCSI_CHAP_NAME_MAX + 1];	/* target's CHAP_N, mutual */
	uint8_t tresp[ISCSI_MD5_LEN];		/* target's CHAP_R, mutual */
};

void iscsi_chap_init(struct iscsi_chap *st);

/* Append CHAP_A=5: MD5 is the only algorithm Tern offers. */
int iscsi_chap_offer(struct iscsi_text_buf *out);

/*
 * Take one pair from the target.  Returns 1 when it was a CHAP key and
 * is stored, 0 when it is not a CHAP key, or -EPROTO with *why (a repeated
 * key, CHAP_A other than 5, CHAP_I outside 0..255, a challenge that is not
 * 1..1024 bytes, a CHAP_R that is not 16 bytes, a key a target never
 * sends).
 */
int iscsi_chap_recv(struct iscsi_chap *st, const struct iscsi_kv *kv, const char **why);

/*
 * Answer the target's challenge: CHAP_N and CHAP_R, and for mutual CHAP
 * our CHAP_I (my_id) and CHAP_C (my_c, 1..1024 random bytes from the
 * caller).  Returns 0, -EPROTO when CHAP_A/I/C have not all arrived,
 * -EACCES when our challenge equals the target's (a reflection, 12.1.3:
 * the caller draws another), -EINVAL for bad arguments, or the MD5 or
 * builder error.
 */
int iscsi_chap_answer(struct iscsi_chap *st, const struct iscsi_chap_cfg *cfg,
		      iscsi_md5_fn md5, uint8_t my_id, const uint8_t *my_c, size_t my_clen,
		      struct iscsi_text_buf *out, const char **why);

/*
 * Mutual CHAP: check the target's CHAP_N and CHAP_R.  Returns 0, -EPROTO
 * when either is missing, or -EACCES (wrong name or response) with *why.
 * The comparison takes the same time wherever the bytes differ.
 */
int iscsi_chap_verify(const struct iscsi_chap *st, const struct iscsi_chap_cfg *cfg,
		      iscsi_md5_fn md5, const char **why);

#endif
