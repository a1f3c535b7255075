/*
 * iSCSI key=value text, login negotiation and SendTargets parsing
 * (RFC 7143 sections 6, 13 and appendix C).
 */
#include <errno.h>
#include <string.h>

#include "storage/lib/iscsi_pdu.h"
#include "storage/lib/iscsi_text.h"

/* ---- parsing ---- */

void iscsi_text_iter_init(struct iscsi_text_iter *it, const void *data, size_t len)
{
	it->p = data;
	it->len = data ? len : 0;
	it->off = 0;
}

static int fail(const char **why, const char *msg, int rc)
{
	if (why)
		*why = msg;
	return rc;
}

/* 6.1 standard-label, plus '#' for the X#… IANA-registered keys. */
static bool key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' ||
	       c == '@' || c == '_' || c == '#';
}

static int key_check(const char *k, size_t n, const char **why)
{
	if (n == 0)
		return fail(why, "empty key", -EINVAL);
	if (n > ISCSI_KEY_MAX)
		return fail(why, "key longer than 63 bytes", -ENAMETOOLONG);
	if (k[0] < 'A' || k[0] > 'Z')
		return fail(why, "key does not start with a capital letter", -EINVAL);
	for (size_t i = 0; i < n; i++)
		if (!key_char(k[i]))
			return fail(why, "bad character in key", -EINVAL);
	return 0;
}

static size_t value_max(const char *k, size_t n)
{
	if ((n == 6 && !memcmp(k, "CHAP_C", 6)) || (n == 6 && !memcmp(k, "CHAP_R", 6)))
		return ISCSI_BIG_VALUE_MAX;
	return ISCSI_VALUE_MAX;
}

static int value_check(const char *k, size_t kn, const char *v, size_t n, const char **why)
{
	if (n > value_max(k, kn))
		return fail(why, "value too long", -E2BIG);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return fail(why, "control byte in value", -EINVAL);
	return 0;
}

int iscsi_text_next(struct iscsi_text_iter *it, struct iscsi_kv *kv, const char **why)
{
	const char *s, *end, *eq;
	size_t n;
	int rc;

	while (it->off < it->len && it->p[it->off] == '\0')
		it->off++;
	if (it->off == it->len)
		return 0;
	s = it->p + it->off;
	end = memchr(s, '\0', it->len - it->off);
	if (!end)
		return fail(why, "last pair has no NUL delimiter", -EBADMSG);
	n = (size_t)(end - s);
	eq = memchr(s, '=', n);
	if (!eq)
		return fail(why, "pair without '='", -EINVAL);
	kv->key = s;
	kv->klen = (size_t)(eq - s);
	kv->val = eq + 1;
	kv->vlen = n - kv->klen - 1;
	rc = key_check(kv->key, kv->klen, why);
	if (!rc)
		rc = value_check(kv->key, kv->klen, kv->val, kv->vlen, why);
	if (rc)
		return rc;
	it->off += n + 1;
	return 1;
}

bool iscsi_kv_is(const struct iscsi_kv *kv, const char *name)
{
	size_t n = strlen(name);

	return kv->klen == n && !memcmp(kv->key, name, n);
}

bool iscsi_kv_val_is(const struct iscsi_kv *kv, const char *s)
{
	size_t n = strlen(s);

	return kv->vlen == n && !memcmp(kv->val, s, n);
}

int iscsi_parse_number(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	unsigned base = 10;
	size_t i = 0;

	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i == len)
		return -EINVAL;
	for (; i < len; i++) {
		char c = s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
		if (v > (UINT64_MAX - d) / base)
			return -EINVAL;
		v = v * base + d;
	}
	*out = v;
	return 0;
}

/* ---- building ---- */

void iscsi_text_buf_init(struct iscsi_text_buf *b, void *p, size_t cap)
{
	b->p = p;
	b->cap = cap;
	b->len = 0;
	b->err = 0;
}

static int text_add(struct iscsi_text_buf *b, const char *key, size_t kn,
		    const char *val, size_t vlen)
{
	size_t need = kn + 1 + vlen + 1;

	if (b->err)
		return b->err;
	if (key_check(key, kn, NULL) || value_check(key, kn, val, vlen, NULL) ||
	    memchr(val, '\0', vlen))
		return b->err = -EINVAL;
	if (need > b->cap - b->len)
		return b->err = -ENOSPC;
	memcpy(b->p + b->len, key, kn);
	b->p[b->len + kn] = '=';
	memcpy(b->p + b->len + kn + 1, val, vlen);
	b->p[b->len + need - 1] = '\0';
	b->len += need;
	return 0;
}

int iscsi_text_add_n(struct iscsi_text_buf *b, const char *key, const char *val, size_t vlen)
{
	return text_add(b, key, strlen(key), val, vlen);
}

int iscsi_text_add(struct iscsi_text_buf *b, const char *key, const char *val)
{
	return iscsi_text_add_n(b, key, val, strlen(val));
}

int iscsi_text_add_u32(struct iscsi_text_buf *b, const char *key, uint32_t v)
{
	char tmp[10];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return iscsi_text_add_n(b, key, tmp + i, sizeof(tmp) - i);
}

/* ---- negotiation ---- */

enum neg_type {
	NT_MIN,		/* numerical, result is the smaller (6.2.2) */
	NT_MAX,		/* numerical, result is the larger */
	NT_OR,		/* Boolean OR */
	NT_AND,		/* Boolean AND */
	NT_DIGEST,	/* list of CRC32C and None */
	NT_AUTH,	/* list of CHAP and None */
	NT_DECL,	/* declarative: each side states its own value */
};

struct neg_key {
	const char *name;
	enum neg_type type;
	uint32_t lo, hi;	/* numerical range */
	size_t off;		/* field in struct iscsi_params */
	bool session_only;	/* Irrelevant in a Discovery session (13) */
};

#define P(f)	offsetof(struct iscsi_params, f)

static const struct neg_key neg_keys[] = {
	{ "HeaderDigest", NT_DIGEST, 0, 0, P(header_digest), false },
	{ "DataDigest", NT_DIGEST, 0, 0, P(data_digest), false },
	{ "MaxConnections", NT_MIN, 1, 65535, P(max_connections), true },
	{ "InitialR2T", NT_OR, 0, 0, P(initial_r2t), true },
	{ "ImmediateData", NT_AND, 0, 0, P(immediate_data), true },
	{ "MaxRecvDataSegmentLength", NT_DECL, 512, ISCSI_DSL_MAX, P(max_recv_dsl), false },
	{ "MaxBurstLength", NT_MIN, 512, ISCSI_DSL_MAX, P(max_burst), true },
	{ "FirstBurstLength", NT_MIN, 512, ISCSI_DSL_MAX, P(first_burst), true },
	{ "DefaultTime2Wait", NT_MAX, 0, 3600, P(default_time2wait), false },
	{ "DefaultTime2Retain", NT_MIN, 0, 3600, P(default_time2retain), false },
	{ "MaxOutstandingR2T", NT_MIN, 1, 65535, P(max_outstanding_r2t), true },
	{ "DataPDUInOrder", NT_OR, 0, 0, P(data_pdu_in_order), true },
	{ "DataSequenceInOrder", NT_OR, 0, 0, P(data_seq_in_order), true },
	{ "ErrorRecoveryLevel", NT_MIN, 0, 2, P(error_recovery_level), false },
	{ "AuthMethod", NT_AUTH, 0, 0, P(auth), false },
	{ "TargetPortalGroupTag", NT_DECL, 0, 65535, 0, false },
	{ "TargetAlias", NT_DECL, 0, 0, 0, false },
};

#define NEG_NKEYS	(sizeof(neg_keys) / sizeof(neg_keys[0]))
#define K_MRDSL		5
#define K_AUTH		14
#define K_TPGT		15
#define K_ALIAS		16

static uint32_t *num_field(struct iscsi_params *p, const struct neg_key *k)
{
	return (uint32_t *)((char *)p + k->off);
}

static bool *bool_field(struct iscsi_params *p, const struct neg_key *k)
{
	return (bool *)((char *)p + k->off);
}

void iscsi_params_defaults(struct iscsi_params *p)
{
	memset(p, 0, sizeof(*p));
	p->max_recv_dsl = 8192;
	p->target_max_recv_dsl = 8192;
	p->max_burst = 262144;
	p->first_burst = 65536;
	p->max_connections = 1;
	p->default_time2wait = 2;
	p->default_time2retain = 20;
	p->max_outstanding_r2t = 1;
	p->error_recovery_level = 0;
	p->initial_r2t = true;
	p->immediate_data = true;
	p->data_pdu_in_order = true;
	p->data_seq_in_order = true;
}

static bool params_ok(const struct iscsi_params *p)
{
	for (size_t i = 0; i < NEG_NKEYS; i++) {
		const struct neg_key *k = &neg_keys[i];

		if ((k->type == NT_MIN || k->type == NT_MAX || i == K_MRDSL) &&
		    (*num_field((struct iscsi_params *)p, k) < k->lo ||
		     *num_field((struct iscsi_params *)p, k) > k->hi))
			return false;
	}
	return p->first_burst <= p->max_burst &&
	       (p->auth == ISCSI_AUTH_NONE || p->auth == ISCSI_AUTH_CHAP);
}

int iscsi_neg_init(struct iscsi_neg *n, const struct iscsi_params *want, bool discovery)
{
	if (!params_ok(want))
		return -EINVAL;
	memset(n, 0, sizeof(*n));
	n->want = *want;
	iscsi_params_defaults(&n->cur);
	n->cur.max_recv_dsl = want->max_recv_dsl;
	n->discovery = discovery;
	return 0;
}

static const char *bool_str(bool b)
{
	return b ? "Yes" : "No";
}

static int offer_key(struct iscsi_neg *n, size_t i, struct iscsi_text_buf *out)
{
	const struct neg_key *k = &neg_keys[i];
	struct iscsi_params *w = &n->want;

	n->offered |= 1u << i;
	switch (k->type) {
	case NT_MIN:
	case NT_MAX:
	case NT_DECL:
		return iscsi_text_add_u32(out, k->name, *num_field(w, k));
	case NT_OR:
	case NT_AND:
		return iscsi_text_add(out, k->name, bool_str(*bool_field(w, k)));
	case NT_DIGEST:
		/* Preference order: the responder picks the first it supports. */
		return iscsi_text_add(out, k->name, *bool_field(w, k) ? "CRC32C,None" : "None");
	case NT_AUTH:
		/* No "None" fallback when CHAP is configured: a target that
		 * skipped authentication would skip mutual CHAP too. */
		return iscsi_text_add(out, k->name, w->auth == ISCSI_AUTH_CHAP ? "CHAP" : "None");
	}
	return -EINVAL;
}

int iscsi_neg_offer(struct iscsi_neg *n, int stage, struct iscsi_text_buf *out)
{
	struct iscsi_params def;

	iscsi_params_defaults(&def);
	if (stage == ISCSI_STAGE_SECURITY)
		return offer_key(n, K_AUTH, out);
	if (stage != ISCSI_STAGE_OPERATIONAL)
		return -EINVAL;
	for (size_t i = 0; i < NEG_NKEYS; i++) {
		const struct neg_key *k = &neg_keys[i];
		/* MaxRecvDataSegmentLength is declarative.  The digests are
		 * offered even at None: a target with CRC32C configured that
		 * hears nothing proposes "CRC32C" alone, and answering Reject
		 * to that ends the login (tgt: initiator error). */
		bool always = i == K_MRDSL || k->type == NT_DIGEST;

		if (k->type == NT_AUTH || i == K_TPGT || i == K_ALIAS)
			continue;
		if (n->discovery && k->session_only)
			continue;
		/* Keys at their default need no offer (13: the default holds). */
		if (!always && !memcmp((char *)&n->want + k->off, (char *)&def + k->off,
				       k->type == NT_OR || k->type == NT_AND ||
				       k->type == NT_DIGEST ? sizeof(bool) : sizeof(uint32_t)))
			continue;
		offer_key(n, i, out);
	}
	return out->err;
}

static int parse_bool(const struct iscsi_kv *kv, bool *out)
{
	if (iscsi_kv_val_is(kv, "Yes"))
		*out = true;
	else if (iscsi_kv_val_is(kv, "No"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static int parse_ranged(const struct neg_key *k, const struct iscsi_kv *kv, uint32_t *out)
{
	uint64_t v;

	if (iscsi_parse_number(kv->val, kv->vlen, &v) || v < k->lo || v > k->hi)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* Is the one value v (not a list) acceptable for a list key? */
static bool list_value_ok(const struct iscsi_neg *n, const struct neg_key *k,
			  const char *v, size_t len, int *code)
{
	if (k->type == NT_DIGEST) {
		bool want = *bool_field((struct iscsi_params *)&n->want, k);

		if (len == 4 && !memcmp(v, "None", 4))
			*code = 0;
		else if (want && len == 6 && !memcmp(v, "CRC32C", 6))
			*code = 1;
		else
			return false;
		return true;
	}
	if (n->want.auth == ISCSI_AUTH_CHAP && len == 4 && !memcmp(v, "CHAP", 4))
		*code = ISCSI_AUTH_CHAP;
	else if (n->want.auth == ISCSI_AUTH_NONE && len == 4 && !memcmp(v, "None", 4))
		*code = ISCSI_AUTH_NONE;
	else
		return false;
	return true;
}

static void set_list(struct iscsi_params *p, const struct neg_key *k, int code)
{
	if (k->type == NT_DIGEST)
		*bool_field(p, k) = code;
	else
		p->auth = (enum iscsi_auth)code;
}

/* The target answered one of our offers. */
static int neg_answer(struct iscsi_neg *n, const struct neg_key *k, const struct iscsi_kv *kv,
		      const char **why)
{
	uint32_t v, ours = 0;
	bool b;
	int code;

	/* 6.2: the offer fails and the current value stays. */
	if (iscsi_kv_val_is(kv, "Reject") || iscsi_kv_val_is(kv, "Irrelevant") ||
	    iscsi_kv_val_is(kv, "NotUnderstood"))
		return 0;
	if (k->type == NT_MIN || k->type == NT_MAX)
		ours = *num_field(&n->want, k);
	switch (k->type) {
	case NT_MIN:
	case NT_MAX:
		if (parse_ranged(k, kv, &v))
			return fail(why, "numerical answer out of range", -EPROTO);
		/* A compliant answer is already the min (max); taking it
		 * again keeps us inside our own offer whatever was sent. */
		if (k->type == NT_MIN)
			*num_field(&n->cur, k) = v < ours ? v : ours;
		else
			*num_field(&n->cur, k) = v > ours ? v : ours;
		return 0;
	case NT_OR:
	case NT_AND:
		if (parse_bool(kv, &b))
			return fail(why, "Boolean answer not Yes or No", -EPROTO);
		*bool_field(&n->cur, k) = k->type == NT_OR ? (b || *bool_field(&n->want, k))
							    : (b && *bool_field(&n->want, k));
		return 0;
	case NT_DIGEST:
	case NT_AUTH:
		if (!list_value_ok(n, k, kv->val, kv->vlen, &code))
			return fail(why, "answer is not one of the offered values", -EPROTO);
		set_list(&n->cur, k, code);
		return 0;
	case NT_DECL:
		break;
	}
	return 0;
}

/* First value of the target's list that we accept (6.2.1), or -1. */
static int pick_from_list(const struct iscsi_neg *n, const struct neg_key *k,
			  const struct iscsi_kv *kv, const char **val, size_t *vlen)
{
	size_t i = 0;

	while (i <= kv->vlen) {
		const char *s = kv->val + i, *c = memchr(s, ',', kv->vlen - i);
		size_t len = c ? (size_t)(c - s) : kv->vlen - i;
		int code;

		if (list_value_ok(n, k, s, len, &code)) {
			*val = s;
			*vlen = len;
			return code;
		}
		i += len + 1;
	}
	return -1;
}

/* The target offered a key we did not: answer it (6.2). */
static int neg_respond(struct iscsi_neg *n, const struct neg_key *k, const struct iscsi_kv *kv,
		       struct iscsi_text_buf *reply)
{
	uint32_t v, ours;
	bool b, r;
	const char *val;
	size_t vlen;
	int code;

	if (n->discovery && k->session_only)
		return iscsi_text_add(reply, k->name, "Irrelevant");
	switch (k->type) {
	case NT_MIN:
	case NT_MAX:
		if (parse_ranged(k, kv, &v))
			return iscsi_text_add(reply, k->name, "Reject");
		ours = *num_field(&n->want, k);
		v = (k->type == NT_MIN) == (v < ours) ? v : ours;
		*num_field(&n->cur, k) = v;
		return iscsi_text_add_u32(reply, k->name, v);
	case NT_OR:
	case NT_AND:
		if (parse_bool(kv, &b))
			return iscsi_text_add(reply, k->name, "Reject");
		r = k->type == NT_OR ? (b || *bool_field(&n->want, k)) : (b && *bool_field(&n->want, k));
		*bool_field(&n->cur, k) = r;
		return iscsi_text_add(reply, k->name, bool_str(r));
	case NT_DIGEST:
	case NT_AUTH:
		code = pick_from_list(n, k, kv, &val, &vlen);
		if (code < 0)
			return iscsi_text_add(reply, k->name, "Reject");
		set_list(&n->cur, k, code);
		return iscsi_text_add_n(reply, k->name, val, vlen);
	case NT_DECL:
		break;
	}
	return 0;
}

/* The target's declarations: its receive limit, its portal group. */
static int neg_declared(struct iscsi_neg *n, size_t i, const struct iscsi_kv *kv,
			const char **why)
{
	uint32_t v;

	if (i == K_ALIAS)
		return 0;
	if (parse_ranged(&neg_keys[i], kv, &v))
		return fail(why, i == K_MRDSL ? "MaxRecvDataSegmentLength out of range"
					      : "TargetPortalGroupTag out of range", -EPROTO);
	if (i == K_MRDSL) {
		n->cur.target_max_recv_dsl = v;
	} else {
		n->cur.tpgt = (uint16_t)v;
		n->cur.has_tpgt = true;
	}
	return 0;
}

int iscsi_neg_recv(struct iscsi_neg *n, const struct iscsi_kv *kv,
		   struct iscsi_text_buf *reply, const char **why)
{
	size_t i;

	for (i = 0; i < NEG_NKEYS; i++)
		if (iscsi_kv_is(kv, neg_keys[i].name))
			break;
	if (i == NEG_NKEYS) {
		/* 6.2: keys we do not know are answered NotUnderstood; the
		 * caller gets first look (CHAP_*, TargetAddress, ...). */
		return 1;
	}
	if (n->seen & (1u << i))
		return fail(why, "key repeated in one negotiation", -EPROTO);
	n->seen |= 1u << i;
	if (neg_keys[i].type == NT_DECL)
		return neg_declared(n, i, kv, why);
	if (n->offered & (1u << i)) {
		n->answered |= 1u << i;
		return neg_answer(n, &neg_keys[i], kv, why);
	}
	return neg_respond(n, &neg_keys[i], kv, reply);
}

int iscsi_neg_unknown(const struct iscsi_kv *kv, struct iscsi_text_buf *reply)
{
	return text_add(reply, kv->key, kv->klen, "NotUnderstood", 13);
}

int iscsi_neg_done(struct iscsi_neg *n, struct iscsi_params *out, const char **why)
{
	for (size_t i = 0; i < NEG_NKEYS; i++) {
		const struct neg_key *k = &neg_keys[i];
		uint32_t bit = 1u << i;

		if (!(n->offered & bit) || (n->answered & bit) || k->type == NT_DECL)
			continue;
		/* 6.2.2: OR offered Yes / AND offered No needs no answer. */
		if (k->type == NT_OR && *bool_field(&n->want, k)) {
			*bool_field(&n->cur, k) = true;
			continue;
		}
		if (k->type == NT_AND && !*bool_field(&n->want, k)) {
			*bool_field(&n->cur, k) = false;
			continue;
		}
		/* A digest offered as None alone (see iscsi_neg_offer) and
		 * left unanswered can only be None, the default. */
		if (k->type == NT_DIGEST && !*bool_field(&n->want, k)) {
			*bool_field(&n->cur, k) = false;
			continue;
		}
		return fail(why, k->name, -EPROTO);
	}
	/* 13.14: FirstBurstLength must not exceed MaxBurstLength. */
	if (n->cur.first_burst > n->cur.max_burst)
		n->cur.first_burst = n->cur.max_burst;
	*out = n->cur;
	return 0;
}

/* ---- SendTargets ---- */

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool v6_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

static int parse_u16(const char *s, size_t len, uint32_t lo, uint16_t *out)
{
	uint64_t v;

	/* Decimal only here: "3260", not "0xcbc". */
	if (!len || len > 5)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
	if (iscsi_parse_number(s, len, &v) || v < lo || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int iscsi_parse_portal(const char *s, size_t len, struct iscsi_portal *out)
{
	size_t i = 0, hs, hl;

	memset(out, 0, sizeof(*out));
	out->port = ISCSI_PORT_DEFAULT;
	if (len && s[0] == '[') {
		hs = 1;
		while (++i < len && s[i] != ']')
			if (!v6_char(s[i]))
				return -EINVAL;
		if (i == len)
			return -EINVAL;
		hl = i - 1;
		i++;
	} else {
		hs = 0;
		while (i < len && s[i] != ':' && s[i] != ',') {
			if (!host_char(s[i]))
				return -EINVAL;
			i++;
		}
		hl = i;
	}
	if (hl == 0 || hl >= ISCSI_HOST_MAX)
		return -EINVAL;
	memcpy(out->host, s + hs, hl);
	if (i < len && s[i] == ':') {
		size_t p = ++i;

		while (i < len && s[i] != ',')
			i++;
		if (parse_u16(s + p, i - p, 1, &out->port))
			return -EINVAL;
	}
	if (i < len && s[i] == ',') {
		i++;
		if (parse_u16(s + i, len - i, 0, &out->tpgt))
			return -EINVAL;
		out->has_tpgt = true;
		i = len;
	}
	return i == len ? 0 : -EINVAL;
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!v6_char(s[i]) || s[i] == ':' || s[i] == '.')
			return false;
	return true;
}

int iscsi_name_check(const char *s, size_t len)
{
	if (len < 5 || len > ISCSI_NAME_MAX)
		return -EINVAL;
	/* 4.2.7.4-5: "eui." + 16 hex digits, "naa." + 16 or 32. */
	if (!memcmp(s, "eui.", 4))
		return len == 20 && all_hex(s + 4, 16) ? 0 : -EINVAL;
	if (!memcmp(s, "naa.", 4))
		return (len == 20 || len == 36) && all_hex(s + 4, len - 4) ? 0 : -EINVAL;
	if (memcmp(s, "iqn.", 4))
		return -EINVAL;
	/* 4.2.7.3: iqn.yyyy-mm[.reversed.domain[:anything]].  Upper case
	 * is let through: targets configured by hand do carry it. */
	if (len < 11 || s[8] != '-')
		return -EINVAL;
	for (size_t i = 4; i < 11; i++)
		if (i != 8 && (s[i] < '0' || s[i] > '9'))
			return -EINVAL;
	if (len > 11 && s[11] != '.')
		return -EINVAL;
	for (size_t i = 11; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!(host_char((char)c) || c == ':' || c >= 0x80))
			return -EINVAL;
	}
	return 0;
}

static int st_name(const struct iscsi_kv *kv, struct iscsi_target *out, unsigned max,
		   unsigned *count, const char **why)
{
	struct iscsi_target *t;

	if (iscsi_name_check(kv->val, kv->vlen))
		return fail(why, "bad TargetName", -EBADMSG);
	if (*count == max)
		return fail(why, "more targets than room", -ENOSPC);
	t = &out[(*count)++];
	memset(t, 0, sizeof(*t));
	memcpy(t->name, kv->val, kv->vlen);
	return 0;
}

static int st_addr(const struct iscsi_kv *kv, struct iscsi_target *t, const char **why)
{
	struct iscsi_portal p;

	if (!t)
		return fail(why, "TargetAddress before TargetName", -EBADMSG);
	if (iscsi_parse_portal(kv->val, kv->vlen, &p))
		return fail(why, "bad TargetAddress", -EBADMSG);
	if (t->nportals == ISCSI_PORTALS_MAX) {
		t->portals_dropped = true;
		return 0;
	}
	t->portals[t->nportals++] = p;
	return 0;
}

int iscsi_parse_sendtargets(const void *data, size_t len, struct iscsi_target *out,
			    unsigned max, unsigned *count, const char **why)
{
	struct iscsi_text_iter it;
	struct iscsi_kv kv;
	int rc;

	*count = 0;
	iscsi_text_iter_init(&it, data, len);
	while ((rc = iscsi_text_next(&it, &kv, why)) == 1) {
		if (iscsi_kv_is(&kv, "TargetName"))
			rc = st_name(&kv, out, max, count, why);
		else if (iscsi_kv_is(&kv, "TargetAddress"))
			rc = st_addr(&kv, *count ? &out[*count - 1] : NULL, why);
		else
			rc = 0;	/* TargetAlias and vendor keys */
		if (rc)
			return rc;
	}
	return rc;
}
