/*
 * iSCSI text: key=value pairs (RFC 7143 section 6), the negotiation of
 * the login keys Tern uses (section 13), and SendTargets responses
 * (appendix C).  Pure: no allocation, no global state.
 *
 * A logical text data segment (LTDS) is a sequence of "key=value\0"; it
 * may span several Text or Login PDUs with the C bit (RFC 7143 6.1), and
 * the session concatenates those before parsing here.
 *
 * Limits (hostile input): key names 1..63 bytes starting with a capital
 * letter (6.1 "standard-label"), values 0..255 bytes (6.1 "text-value"),
 * except CHAP_C and CHAP_R whose binary values may reach 1024 bytes
 * (12.1.3), so 2 + 2048 bytes in hex.  No control bytes in values.
 */
#ifndef TERN_STORAGE_ISCSI_TEXT_H
#define TERN_STORAGE_ISCSI_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISCSI_KEY_MAX		63
#define ISCSI_VALUE_MAX		255
#define ISCSI_CHAP_BIN_MAX	1024		/* CHAP_C/CHAP_R bytes */
#define ISCSI_BIG_VALUE_MAX	(2 + 2 * ISCSI_CHAP_BIN_MAX)
#define ISCSI_NAME_MAX		223		/* iSCSI names (4.2.7.1) */
#define ISCSI_HOST_MAX		256		/* DNS name or address, NUL included */
#define ISCSI_PORT_DEFAULT	3260
#define ISCSI_PORTALS_MAX	4		/* TargetAddress lines kept per target */

/* One pair, pointing into the parsed buffer (not NUL-terminated copies;
 * the byte after val is the pair's NUL delimiter). */
struct iscsi_kv {
	const char *key;
	size_t klen;
	const char *val;
	size_t vlen;
};

struct iscsi_text_iter {
	const char *p;
	size_t len;
	size_t off;
};

void iscsi_text_iter_init(struct iscsi_text_iter *it, const void *data, size_t len);

/*
 * Next pair.  Returns 1 with *kv, 0 at the end, or a negative errno with
 * *why: -EBADMSG (last pair has no NUL), -EINVAL (no '=', bad key
 * character, control byte in the value), -ENAMETOOLONG (key over 63),
 * -E2BIG (value over its limit).  Empty items (two NULs) are skipped.
 */
int iscsi_text_next(struct iscsi_text_iter *it, struct iscsi_kv *kv, const char **why);

/* kv's key equals the NUL-terminated name. */
bool iscsi_kv_is(const struct iscsi_kv *kv, const char *name);
/* kv's value equals the NUL-terminated s. */
bool iscsi_kv_val_is(const struct iscsi_kv *kv, const char *s);

/* Builder: appends "key=value\0"; the first error sticks. */
struct iscsi_text_buf {
	char *p;
	size_t cap;
	size_t len;
	int err;
};

void iscsi_text_buf_init(struct iscsi_text_buf *b, void *p, size_t cap);
/* Returns 0, -EINVAL (bad key or value), or -ENOSPC; sets b->err. */
int iscsi_text_add(struct iscsi_text_buf *b, const char *key, const char *val);
int iscsi_text_add_n(struct iscsi_text_buf *b, const char *key, const char *val, size_t vlen);
int iscsi_text_add_u32(struct iscsi_text_buf *b, const char *key, uint32_t v);

/*
 * A numerical value (6.1): decimal, or 0x/0X hex, at most 2^64-1.
 * Returns 0 or -EINVAL (empty, bad digit, overflow, leading junk).
 */
int iscsi_parse_number(const char *s, size_t len, uint64_t *out);

/* ---- negotiation (initiator side) ---- */

enum iscsi_auth {
	ISCSI_AUTH_NONE = 0,
	ISCSI_AUTH_CHAP = 1,
};

/* Session and connection parameters, RFC 7143 section 13. */
struct iscsi_params {
	uint32_t max_recv_dsl;		/* ours, declared (13.12) */
	uint32_t target_max_recv_dsl;	/* the target's: bound on what we send */
	uint32_t max_burst;		/* 13.13, min */
	uint32_t first_burst;		/* 13.14, min, <= max_burst */
	uint32_t max_connections;	/* 13.2, min */
	uint32_t default_time2wait;	/* 13.15, max */
	uint32_t default_time2retain;	/* 13.16, min */
	uint32_t max_outstanding_r2t;	/* 13.17, min */
	uint32_t error_recovery_level;	/* 13.20, min */
	bool initial_r2t;		/* 13.10, OR */
	bool immediate_data;		/* 13.11, AND */
	bool data_pdu_in_order;		/* 13.18, OR */
	bool data_seq_in_order;		/* 13.19, OR */
	bool header_digest;		/* 13.1, CRC32C or None */
	bool data_digest;
	enum iscsi_auth auth;		/* 12.1 AuthMethod */
	bool has_tpgt;
	uint16_t tpgt;			/* TargetPortalGroupTag (13.9) */
};

/* The RFC 7143 defaults (section 13), auth None. */
void iscsi_params_defaults(struct iscsi_params *p);

struct iscsi_neg {
	struct iscsi_params want;	/* what we offer and accept */
	struct iscsi_params cur;	/* outcome so far */
	bool discovery;			/* SessionType=Discovery */
	uint32_t offered;		/* bit per key: we offered it */
	uint32_t answered;		/* bit per key: the target answered */
	uint32_t seen;			/* bit per key: the target sent it */
};

/* Start a negotiation towards *want.  Returns 0 or -EINVAL (out of range). */
int iscsi_neg_init(struct iscsi_neg *n, const struct iscsi_params *want, bool discovery);

/*
 * Append our offers for a login stage (ISCSI_STAGE_SECURITY: AuthMethod;
 * ISCSI_STAGE_OPERATIONAL: the operational keys that differ from the
 * RFC defaults, plus MaxRecvDataSegmentLength, which is declarative and
 * always sent).  Returns 0, -EINVAL for another stage, or the builder's
 * error.
 */
int iscsi_neg_offer(struct iscsi_neg *n, int stage, struct iscsi_text_buf *out);

/*
 * One pair from the target.  An answer to our offer updates cur; an offer
 * from the target gets our answer appended to reply (key=value,
 * Reject, Irrelevant or NotUnderstood as RFC 7143 6.2 says).  Returns 0,
 * 1 when the key was not a negotiation key (the caller may handle it:
 * CHAP_*, TargetAddress, ...), or -EPROTO with *why for a protocol error
 * (a repeated key, an answer outside what we offered, a bad value in an
 * answer), or the builder's error.
 */
int iscsi_neg_recv(struct iscsi_neg *n, const struct iscsi_kv *kv,
		   struct iscsi_text_buf *reply, const char **why);

/* Answer key=NotUnderstood to a key nobody handled (6.2). */
int iscsi_neg_unknown(const struct iscsi_kv *kv, struct iscsi_text_buf *reply);

/*
 * End of the stage: every key we offered must have an outcome.  Fills
 * *out and returns 0, or -EPROTO with *why naming the missing key.
 */
int iscsi_neg_done(struct iscsi_neg *n, struct iscsi_params *out, const char **why);

/* ---- SendTargets (RFC 7143 appendix C) ---- */

struct iscsi_portal {
	char host[ISCSI_HOST_MAX];	/* DNS name, IPv4, or IPv6 without brackets */
	uint16_t port;			/* 3260 unless given */
	bool has_tpgt;
	uint16_t tpgt;
};

struct iscsi_target {
	char name[ISCSI_NAME_MAX + 1];
	unsigned nportals;
	bool portals_dropped;		/* more than ISCSI_PORTALS_MAX were listed */
	struct iscsi_portal portals[ISCSI_PORTALS_MAX];
};

/* "host[:port][,tpgt]" or "[v6][:port][,tpgt]" (13.8).  0 or -EINVAL. */
int iscsi_parse_portal(const char *s, size_t len, struct iscsi_portal *out);

/* iqn., eui. or naa. name of at most 223 bytes (4.2.7).  0 or -EINVAL. */
int iscsi_name_check(const char *s, size_t len);

/*
 * Parse a SendTargets response LTDS into out[0..max).  *count gets the
 * targets stored.  Unknown keys are skipped.  Returns 0, a text parse
 * error, -EBADMSG (TargetAddress before any TargetName, a bad name or
 * address) with *why, or -ENOSPC when more than max targets were listed
 * (the first max are stored).
 */
int iscsi_parse_sendtargets(const void *data, size_t len, struct iscsi_target *out,
			    unsigned max, unsigned *count, const char **why);

#endif
