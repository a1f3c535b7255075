/*
 * Unit tests and a mutation fuzz test for storage/lib/iscsi_text.c:
 * key=value parsing and building, the negotiation rules of RFC 7143
 * sections 6 and 13, SendTargets responses.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/lib/iscsi_pdu.h"
#include "storage/lib/iscsi_text.h"

/* ---- parsing ---- */

static int parse_one(const char *s, size_t len, struct iscsi_kv *kv, const char **why)
{
	struct iscsi_text_iter it;

	iscsi_text_iter_init(&it, s, len);
	return iscsi_text_next(&it, kv, why);
}

Test(iscsi_text, parse_pairs)
{
	static const char t[] = "A=1\0B=\0\0C=x=y\0";
	struct iscsi_text_iter it;
	struct iscsi_kv kv;

	iscsi_text_iter_init(&it, t, sizeof(t) - 1);
	cr_assert_eq(iscsi_text_next(&it, &kv, NULL), 1);
	cr_assert(iscsi_kv_is(&kv, "A"));
	cr_assert(iscsi_kv_val_is(&kv, "1"));
	cr_assert_eq(iscsi_text_next(&it, &kv, NULL), 1);
	cr_assert(iscsi_kv_is(&kv, "B"));
	cr_assert_eq(kv.vlen, 0);
	cr_assert_eq(iscsi_text_next(&it, &kv, NULL), 1);
	cr_assert(iscsi_kv_val_is(&kv, "x=y"));
	cr_assert_eq(kv.val[kv.vlen], '\0');
	cr_assert_eq(iscsi_text_next(&it, &kv, NULL), 0);
	cr_assert_eq(iscsi_text_next(&it, &kv, NULL), 0);
	iscsi_text_iter_init(&it, NULL, 5);
	cr_assert_eq(iscsi_text_next(&it, &kv, NULL), 0);
}

Test(iscsi_text, parse_errors_and_limits)
{
	char buf[2200];
	struct iscsi_kv kv;
	const char *why = NULL;

	cr_assert_eq(parse_one("A=1", 3, &kv, &why), -EBADMSG);
	cr_assert_str_eq(why, "last pair has no NUL delimiter");
	cr_assert_eq(parse_one("A1\0", 3, &kv, &why), -EINVAL);
	cr_assert_eq(parse_one("=1\0", 3, &kv, &why), -EINVAL);
	cr_assert_eq(parse_one("a=1\0", 4, &kv, &why), -EINVAL);
	cr_assert_eq(parse_one("A b=1\0", 6, &kv, &why), -EINVAL);
	cr_assert_eq(parse_one("A=\x01\0", 4, &kv, &why), -EINVAL);
	cr_assert_str_eq(why, "control byte in value");
	cr_assert_eq(parse_one("X#a.b-c+d@e_f=1\0", 16, &kv, &why), 1);
	/* Key: 63 bytes pass, 64 do not. */
	memset(buf, 'K', 64);
	buf[63] = '=';
	buf[64] = '\0';
	cr_assert_eq(parse_one(buf, 65, &kv, &why), 1);
	buf[63] = 'K';
	buf[64] = '=';
	buf[65] = '\0';
	cr_assert_eq(parse_one(buf, 66, &kv, &why), -ENAMETOOLONG);
	/* Value: 255 bytes pass, 256 do not. */
	memcpy(buf, "V=", 2);
	memset(buf + 2, 'v', 256);
	buf[258] = '\0';
	cr_assert_eq(parse_one(buf, 259, &kv, &why), -E2BIG);
	cr_assert_str_eq(why, "value too long");
	buf[257] = '\0';
	cr_assert_eq(parse_one(buf, 258, &kv, &why), 1);
	cr_assert_eq(kv.vlen, 255);
	/* CHAP_C: 2050 pass, 2051 do not. */
	memcpy(buf, "CHAP_C=", 7);
	memset(buf + 7, 'a', 2051);
	buf[7 + 2050] = '\0';
	cr_assert_eq(parse_one(buf, 7 + 2051, &kv, &why), 1);
	buf[7 + 2050] = 'a';
	buf[7 + 2051] = '\0';
	cr_assert_eq(parse_one(buf, 7 + 2052, &kv, &why), -E2BIG);
	memcpy(buf, "CHAP_X=", 7);
	cr_assert_eq(parse_one(buf, 7 + 2052, &kv, &why), -E2BIG);
}

Test(iscsi_text, build)
{
	char out[32];
	struct iscsi_text_buf b;
	struct iscsi_text_iter it;
	struct iscsi_kv kv;

	iscsi_text_buf_init(&b, out, sizeof(out));
	cr_assert_eq(iscsi_text_add(&b, "A", "b"), 0);
	cr_assert_eq(iscsi_text_add_u32(&b, "N", 0), 0);
	cr_assert_eq(iscsi_text_add_u32(&b, "M", 4294967295u), 0);
	cr_assert_eq(b.len, 4 + 4 + 13);
	cr_assert_arr_eq(out, "A=b\0N=0\0M=4294967295\0", 21);
	iscsi_text_iter_init(&it, out, b.len);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(iscsi_text_next(&it, &kv, NULL), 1);
	cr_assert_eq(iscsi_text_next(&it, &kv, NULL), 0);
	/* 21 used, 11 left: "Z=12345678\0" is exactly 11. */
	cr_assert_eq(iscsi_text_add(&b, "Z", "123456789"), -ENOSPC);
	cr_assert_eq(b.len, 21);
	cr_assert_eq(iscsi_text_add(&b, "Z", "1"), -ENOSPC);	/* sticky */
	iscsi_text_buf_init(&b, out, sizeof(out));
	b.len = 21;
	cr_assert_eq(iscsi_text_add(&b, "Z", "12345678"), 0);
	cr_assert_eq(b.len, 32);
	iscsi_text_buf_init(&b, out, sizeof(out));
	cr_assert_eq(iscsi_text_add(&b, "bad", "1"), -EINVAL);
	iscsi_text_buf_init(&b, out, sizeof(out));
	cr_assert_eq(iscsi_text_add_n(&b, "A", "x\0y", 3), -EINVAL);
	iscsi_text_buf_init(&b, out, sizeof(out));
	cr_assert_eq(iscsi_text_add(&b, "A", "\n"), -EINVAL);
}

Test(iscsi_text, numbers)
{
	uint64_t v;

	cr_assert_eq(iscsi_parse_number("0", 1, &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(iscsi_parse_number("8192", 4, &v), 0);
	cr_assert_eq(v, 8192);
	cr_assert_eq(iscsi_parse_number("0x2000", 6, &v), 0);
	cr_assert_eq(v, 8192);
	cr_assert_eq(iscsi_parse_number("0X1f", 4, &v), 0);
	cr_assert_eq(v, 31);
	cr_assert_eq(iscsi_parse_number("18446744073709551615", 20, &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(iscsi_parse_number("18446744073709551616", 20, &v), -EINVAL);
	cr_assert_eq(iscsi_parse_number("0x10000000000000000", 19, &v), -EINVAL);
	cr_assert_eq(iscsi_parse_number("", 0, &v), -EINVAL);
	cr_assert_eq(iscsi_parse_number("0x", 2, &v), -EINVAL);
	cr_assert_eq(iscsi_parse_number("-1", 2, &v), -EINVAL);
	cr_assert_eq(iscsi_parse_number("1a", 2, &v), -EINVAL);
	cr_assert_eq(iscsi_parse_number("12", 1, &v), 0);
	cr_assert_eq(v, 1);
}

/* ---- negotiation ---- */

struct neg_fix {
	struct iscsi_neg n;
	char rbuf[512];
	struct iscsi_text_buf reply;
};

static void neg_start(struct neg_fix *f, const struct iscsi_params *want, bool disc)
{
	cr_assert_eq(iscsi_neg_init(&f->n, want, disc), 0);
	iscsi_text_buf_init(&f->reply, f->rbuf, sizeof(f->rbuf));
}

/* Feed a whole LTDS from the target; returns the first error. */
static int neg_feed(struct neg_fix *f, const char *t, size_t len, const char **why)
{
	struct iscsi_text_iter it;
	struct iscsi_kv kv;
	int rc;

	iscsi_text_iter_init(&it, t, len);
	while ((rc = iscsi_text_next(&it, &kv, why)) == 1) {
		rc = iscsi_neg_recv(&f->n, &kv, &f->reply, why);
		if (rc == 1)
			rc = iscsi_neg_unknown(&kv, &f->reply);
		if (rc)
			return rc;
	}
	return rc;
}

#define FEED(f, lit, why)	neg_feed((f), (lit), sizeof(lit) - 1, (why))

static bool has_pair(const char *buf, size_t len, const char *pair)
{
	size_t n = strlen(pair) + 1;

	for (size_t i = 0; i + n <= len; i++)
		if ((i == 0 || buf[i - 1] == '\0') && !memcmp(buf + i, pair, n))
			return true;
	return false;
}

static struct iscsi_params tern_want(void)
{
	struct iscsi_params p;

	iscsi_params_defaults(&p);
	p.max_recv_dsl = 262144;
	p.max_burst = 1048576;
	p.first_burst = 262144;
	p.initial_r2t = false;
	p.header_digest = true;
	p.data_digest = true;
	return p;
}

Test(iscsi_text, neg_login_tgt_like)
{
	struct iscsi_params want = tern_want(), out;
	struct neg_fix f;
	char obuf[512];
	struct iscsi_text_buf o;
	const char *why = NULL;

	neg_start(&f, &want, false);
	iscsi_text_buf_init(&o, obuf, sizeof(obuf));
	cr_assert_eq(iscsi_neg_offer(&f.n, ISCSI_STAGE_OPERATIONAL, &o), 0);
	cr_assert(has_pair(obuf, o.len, "HeaderDigest=CRC32C,None"));
	cr_assert(has_pair(obuf, o.len, "DataDigest=CRC32C,None"));
	cr_assert(has_pair(obuf, o.len, "InitialR2T=No"));
	cr_assert(has_pair(obuf, o.len, "MaxRecvDataSegmentLength=262144"));
	cr_assert(has_pair(obuf, o.len, "MaxBurstLength=1048576"));
	cr_assert(has_pair(obuf, o.len, "FirstBurstLength=262144"));
	/* At their defaults: not offered. */
	cr_assert(!has_pair(obuf, o.len, "ImmediateData=Yes"));
	cr_assert(!has_pair(obuf, o.len, "MaxConnections=1"));

	cr_assert_eq(FEED(&f, "HeaderDigest=CRC32C\0DataDigest=None\0InitialR2T=Yes\0"
			  "MaxRecvDataSegmentLength=65536\0MaxBurstLength=262144\0"
			  "FirstBurstLength=65536\0TargetPortalGroupTag=1\0TargetAlias=disk\0",
			  &why), 0, "%s", why);
	cr_assert_eq(f.reply.len, 0);
	cr_assert_eq(iscsi_neg_done(&f.n, &out, &why), 0);
	cr_assert(out.header_digest);
	cr_assert(!out.data_digest);
	cr_assert(out.initial_r2t);
	cr_assert(out.immediate_data);
	cr_assert_eq(out.max_recv_dsl, 262144);
	cr_assert_eq(out.target_max_recv_dsl, 65536);
	cr_assert_eq(out.max_burst, 262144);
	cr_assert_eq(out.first_burst, 65536);
	cr_assert(out.has_tpgt);
	cr_assert_eq(out.tpgt, 1);
}

Test(iscsi_text, neg_boolean_tables)
{
	static const char *const yn[] = { "No", "Yes" };

	for (int key = 0; key < 2; key++) {
		const char *name = key ? "ImmediateData" : "InitialR2T";	/* AND : OR */

		for (int ours = 0; ours < 2; ours++)
			for (int theirs = 0; theirs < 2; theirs++) {
				struct iscsi_params want, out;
				struct neg_fix f;
				char t[64], o[256];
				struct iscsi_text_buf ob;
				int n = snprintf(t, sizeof(t), "%s=%s", name, yn[theirs]);
				bool want_r = key ? (ours && theirs) : (ours || theirs);

				iscsi_params_defaults(&want);
				if (key)
					want.immediate_data = ours;
				else
					want.initial_r2t = ours;
				/* As an answer to our offer. */
				neg_start(&f, &want, false);
				iscsi_text_buf_init(&ob, o, sizeof(o));
				cr_assert_eq(iscsi_neg_offer(&f.n, ISCSI_STAGE_OPERATIONAL, &ob), 0);
				cr_assert_eq(neg_feed(&f, t, (size_t)n + 1, NULL), 0);
				cr_assert_eq(iscsi_neg_done(&f.n, &out, NULL), 0);
				cr_assert_eq(key ? out.immediate_data : out.initial_r2t, want_r,
					     "%s ours %d theirs %d", name, ours, theirs);
				/* The target's reply to a key at its default is
				 * its own offer: our answer must say the result. */
				if (f.reply.len) {
					char exp[64];

					snprintf(exp, sizeof(exp), "%s=%s", name, yn[want_r]);
					cr_assert(has_pair(f.rbuf, f.reply.len, exp));
				}
			}
	}
}

Test(iscsi_text, neg_target_offers)
{
	struct iscsi_params want, out;
	struct neg_fix f;
	const char *why;

	iscsi_params_defaults(&want);
	neg_start(&f, &want, false);
	cr_assert_eq(FEED(&f, "MaxOutstandingR2T=8\0DefaultTime2Wait=5\0"
			  "HeaderDigest=CRC32C,None\0DataDigest=MD5\0"
			  "X-com.example.Foo=1\0MaxBurstLength=511\0ErrorRecoveryLevel=2\0"
			  "DataPDUInOrder=No\0IFMarker=No\0", &why), 0);
	cr_assert(has_pair(f.rbuf, f.reply.len, "MaxOutstandingR2T=1"));
	cr_assert(has_pair(f.rbuf, f.reply.len, "DefaultTime2Wait=5"));
	cr_assert(has_pair(f.rbuf, f.reply.len, "HeaderDigest=None"));
	cr_assert(has_pair(f.rbuf, f.reply.len, "DataDigest=Reject"));
	cr_assert(has_pair(f.rbuf, f.reply.len, "X-com.example.Foo=NotUnderstood"));
	cr_assert(has_pair(f.rbuf, f.reply.len, "MaxBurstLength=Reject"));
	cr_assert(has_pair(f.rbuf, f.reply.len, "ErrorRecoveryLevel=0"));
	cr_assert(has_pair(f.rbuf, f.reply.len, "DataPDUInOrder=Yes"));
	cr_assert(has_pair(f.rbuf, f.reply.len, "IFMarker=NotUnderstood"));
	cr_assert_eq(iscsi_neg_done(&f.n, &out, &why), 0);
	cr_assert_eq(out.max_outstanding_r2t, 1);
	cr_assert_eq(out.default_time2wait, 5);
	cr_assert_eq(out.max_burst, 262144);
	cr_assert(!out.header_digest);

	/* We want digests: the target's first acceptable choice wins. */
	want.header_digest = true;
	neg_start(&f, &want, false);
	cr_assert_eq(FEED(&f, "HeaderDigest=None,CRC32C\0DataDigest=CRC32C,None\0", &why), 0);
	cr_assert(has_pair(f.rbuf, f.reply.len, "HeaderDigest=None"));
	cr_assert(has_pair(f.rbuf, f.reply.len, "DataDigest=None"));
	want.data_digest = true;
	neg_start(&f, &want, false);
	cr_assert_eq(FEED(&f, "DataDigest=CRC32C,None\0", &why), 0);
	cr_assert(has_pair(f.rbuf, f.reply.len, "DataDigest=CRC32C"));

	/* Discovery: session keys are Irrelevant. */
	iscsi_params_defaults(&want);
	neg_start(&f, &want, true);
	cr_assert_eq(FEED(&f, "MaxBurstLength=4096\0InitialR2T=No\0HeaderDigest=None\0", &why), 0);
	cr_assert(has_pair(f.rbuf, f.reply.len, "MaxBurstLength=Irrelevant"));
	cr_assert(has_pair(f.rbuf, f.reply.len, "InitialR2T=Irrelevant"));
	cr_assert(has_pair(f.rbuf, f.reply.len, "HeaderDigest=None"));
}

Test(iscsi_text, neg_answer_errors)
{
	struct iscsi_params want = tern_want(), out;
	struct neg_fix f;
	char o[512];
	struct iscsi_text_buf ob;
	const char *why = NULL;

#define OFFERED(f)							\
	do {								\
		neg_start((f), &want, false);				\
		iscsi_text_buf_init(&ob, o, sizeof(o));			\
		cr_assert_eq(iscsi_neg_offer(&(f)->n, ISCSI_STAGE_OPERATIONAL, &ob), 0); \
	} while (0)

	OFFERED(&f);
	cr_assert_eq(FEED(&f, "HeaderDigest=MD5\0", &why), -EPROTO);
	cr_assert_str_eq(why, "answer is not one of the offered values");
	OFFERED(&f);
	cr_assert_eq(FEED(&f, "HeaderDigest=CRC32C,None\0", &why), -EPROTO);
	OFFERED(&f);
	cr_assert_eq(FEED(&f, "MaxBurstLength=16777216\0", &why), -EPROTO);
	OFFERED(&f);
	cr_assert_eq(FEED(&f, "MaxBurstLength=0x1000\0", &why), 0);
	OFFERED(&f);
	cr_assert_eq(FEED(&f, "InitialR2T=yes\0", &why), -EPROTO);
	OFFERED(&f);
	cr_assert_eq(FEED(&f, "DataDigest=None\0DataDigest=None\0", &why), -EPROTO);
	cr_assert_str_eq(why, "key repeated in one negotiation");
	OFFERED(&f);
	cr_assert_eq(FEED(&f, "MaxRecvDataSegmentLength=511\0", &why), -EPROTO);
	OFFERED(&f);
	cr_assert_eq(FEED(&f, "MaxRecvDataSegmentLength=16777216\0", &why), -EPROTO);
	OFFERED(&f);
	cr_assert_eq(FEED(&f, "TargetPortalGroupTag=65536\0", &why), -EPROTO);

	/* Missing answers. */
	OFFERED(&f);
	cr_assert_eq(FEED(&f, "HeaderDigest=None\0", &why), 0);
	cr_assert_eq(iscsi_neg_done(&f.n, &out, &why), -EPROTO);
	cr_assert_str_eq(why, "DataDigest");
	/* Reject, Irrelevant, NotUnderstood: the default stays. */
	OFFERED(&f);
	cr_assert_eq(FEED(&f, "HeaderDigest=Reject\0DataDigest=Irrelevant\0InitialR2T=NotUnderstood\0"
			  "MaxBurstLength=Reject\0FirstBurstLength=Reject\0", &why), 0);
	cr_assert_eq(iscsi_neg_done(&f.n, &out, &why), 0);
	cr_assert(!out.header_digest && !out.data_digest);
	cr_assert(out.initial_r2t);
	cr_assert_eq(out.max_burst, 262144);
	cr_assert_eq(out.first_burst, 65536);
	/* FirstBurstLength never ends above MaxBurstLength. */
	OFFERED(&f);
	cr_assert_eq(FEED(&f, "HeaderDigest=None\0DataDigest=None\0InitialR2T=No\0"
			  "MaxBurstLength=4096\0FirstBurstLength=262144\0", &why), 0);
	cr_assert_eq(iscsi_neg_done(&f.n, &out, &why), 0);
	cr_assert_eq(out.max_burst, 4096);
	cr_assert_eq(out.first_burst, 4096);
	cr_assert(!out.initial_r2t);
	/* An answer above our offer is held to our offer (6.2.2 min). */
	OFFERED(&f);
	cr_assert_eq(FEED(&f, "MaxBurstLength=2097152\0", &why), 0);
	cr_assert_eq(f.n.cur.max_burst, 1048576);
#undef OFFERED
}

Test(iscsi_text, neg_auth_and_init)
{
	struct iscsi_params want, bad;
	struct neg_fix f;
	char o[64];
	struct iscsi_text_buf ob;
	const char *why;

	iscsi_params_defaults(&want);
	want.auth = ISCSI_AUTH_CHAP;
	neg_start(&f, &want, false);
	iscsi_text_buf_init(&ob, o, sizeof(o));
	cr_assert_eq(iscsi_neg_offer(&f.n, ISCSI_STAGE_SECURITY, &ob), 0);
	cr_assert(has_pair(o, ob.len, "AuthMethod=CHAP"));
	cr_assert_eq(FEED(&f, "AuthMethod=None\0", &why), -EPROTO);
	neg_start(&f, &want, false);
	iscsi_text_buf_init(&ob, o, sizeof(o));
	cr_assert_eq(iscsi_neg_offer(&f.n, ISCSI_STAGE_SECURITY, &ob), 0);
	cr_assert_eq(FEED(&f, "AuthMethod=CHAP\0", &why), 0);
	cr_assert_eq(f.n.cur.auth, ISCSI_AUTH_CHAP);
	cr_assert_eq(iscsi_neg_offer(&f.n, ISCSI_STAGE_FULL_FEATURE, &ob), -EINVAL);

	bad = want;
	bad.first_burst = bad.max_burst + 1;
	cr_assert_eq(iscsi_neg_init(&f.n, &bad, false), -EINVAL);
	bad = want;
	bad.max_recv_dsl = 511;
	cr_assert_eq(iscsi_neg_init(&f.n, &bad, false), -EINVAL);
	bad = want;
	bad.error_recovery_level = 3;
	cr_assert_eq(iscsi_neg_init(&f.n, &bad, false), -EINVAL);
	bad = want;
	bad.auth = (enum iscsi_auth)7;
	cr_assert_eq(iscsi_neg_init(&f.n, &bad, false), -EINVAL);
}

/* ---- SendTargets ---- */

Test(iscsi_text, portals)
{
	struct iscsi_portal p;

	cr_assert_eq(iscsi_parse_portal("10.0.0.1:3261,2", 15, &p), 0);
	cr_assert_str_eq(p.host, "10.0.0.1");
	cr_assert_eq(p.port, 3261);
	cr_assert(p.has_tpgt);
	cr_assert_eq(p.tpgt, 2);
	cr_assert_eq(iscsi_parse_portal("[fe80::1%]", 10, &p), -EINVAL);
	cr_assert_eq(iscsi_parse_portal("[fe80::1]", 9, &p), 0);
	cr_assert_str_eq(p.host, "fe80::1");
	cr_assert_eq(p.port, 3260);
	cr_assert(!p.has_tpgt);
	cr_assert_eq(iscsi_parse_portal("[::1]:860,0", 11, &p), 0);
	cr_assert_eq(p.port, 860);
	cr_assert_eq(iscsi_parse_portal("san.example.com,1", 17, &p), 0);
	cr_assert_str_eq(p.host, "san.example.com");
	static const char *const bad[] = {
		"", ":3260", "a:0", "a:65536", "a:", "a,", "a,65536", "[::1", "[]:1",
		"a b", "a:3260,1,2", "a:32x0", "[::1]x", "a:0x10", "a:+1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(iscsi_parse_portal(bad[i], strlen(bad[i]), &p), -EINVAL, "%s", bad[i]);
	char host[300];
	memset(host, 'h', sizeof(host));
	cr_assert_eq(iscsi_parse_portal(host, 255, &p), 0);
	cr_assert_eq(iscsi_parse_portal(host, 256, &p), -EINVAL);
}

Test(iscsi_text, names)
{
	static const char *const good[] = {
		"iqn.2001-04.com.example:storage.disk1", "iqn.2026-11", "iqn.2026-11.org.tern",
		"eui.02004567A425678D", "naa.52004567BA64678D",
		"naa.62004567BA64678D0123456789ABCDEF",
	};
	static const char *const bad[] = {
		"iqn.", "iqn.2001", "iqn.2001-4.com", "iqn.20x1-04.com", "iqn.2001-04com",
		"iqn.2001-04.a b", "eui.02004567A425678", "eui.02004567A425678G",
		"naa.1234", "IQN.2001-04.com", "foo.bar",
	};
	char big[240] = "iqn.2001-04.";

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(iscsi_name_check(good[i], strlen(good[i])), 0, "%s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(iscsi_name_check(bad[i], strlen(bad[i])), -EINVAL, "%s", bad[i]);
	memset(big + 12, 'a', sizeof(big) - 12);
	cr_assert_eq(iscsi_name_check(big, 223), 0);
	cr_assert_eq(iscsi_name_check(big, 224), -EINVAL);
}

Test(iscsi_text, sendtargets)
{
	static const char t[] =
		"TargetName=iqn.2026-11.org.tern:disk1\0"
		"TargetAddress=10.0.0.1:3260,1\0"
		"TargetAddress=[fd00::1]:3260,2\0"
		"TargetAlias=one\0"
		"TargetName=iqn.2026-11.org.tern:disk2\0"
		"TargetName=iqn.2026-11.org.tern:disk3\0"
		"TargetAddress=a,1\0TargetAddress=b,1\0TargetAddress=c,1\0"
		"TargetAddress=d,1\0TargetAddress=e,1\0";
	struct iscsi_target tg[3];
	unsigned n;
	const char *why = NULL;

	cr_assert_eq(iscsi_parse_sendtargets(t, sizeof(t) - 1, tg, 3, &n, &why), 0, "%s", why);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(tg[0].name, "iqn.2026-11.org.tern:disk1");
	cr_assert_eq(tg[0].nportals, 2);
	cr_assert_str_eq(tg[0].portals[1].host, "fd00::1");
	cr_assert_eq(tg[0].portals[1].tpgt, 2);
	cr_assert_eq(tg[1].nportals, 0);
	cr_assert_eq(tg[2].nportals, ISCSI_PORTALS_MAX);
	cr_assert(tg[2].portals_dropped);
	cr_assert_str_eq(tg[2].portals[3].host, "d");

	cr_assert_eq(iscsi_parse_sendtargets(t, sizeof(t) - 1, tg, 2, &n, &why), -ENOSPC);
	cr_assert_eq(n, 2);
	cr_assert_eq(iscsi_parse_sendtargets("", 0, tg, 3, &n, &why), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(iscsi_parse_sendtargets("TargetAddress=a\0", 16, tg, 3, &n, &why), -EBADMSG);
	cr_assert_str_eq(why, "TargetAddress before TargetName");
	cr_assert_eq(iscsi_parse_sendtargets("TargetName=x\0", 13, tg, 3, &n, &why), -EBADMSG);
	cr_assert_eq(iscsi_parse_sendtargets("TargetName=iqn.2026-11\0TargetAddress=a:99999\0",
					     45, tg, 3, &n, &why), -EBADMSG);
	cr_assert_eq(iscsi_parse_sendtargets("TargetName=iqn.2026-11", 22, tg, 3, &n, &why),
		     -EBADMSG);
}

/* ---- fuzz ---- */

static uint32_t tt_rng;

static uint32_t tt_rand(void)
{
	tt_rng = tt_rng * 1103515245u + 12345u;
	return tt_rng >> 8;
}

Test(iscsi_text, fuzz)
{
	static const char base[] =
		"TargetName=iqn.2026-11.org.tern:disk1\0TargetAddress=10.0.0.1:3260,1\0"
		"TargetAddress=[fd00::1]:3260,2\0HeaderDigest=CRC32C\0DataDigest=None\0"
		"MaxRecvDataSegmentLength=65536\0MaxBurstLength=262144\0InitialR2T=Yes\0"
		"FirstBurstLength=65536\0"
		"ImmediateData=No\0TargetPortalGroupTag=1\0DefaultTime2Wait=0x2\0";
	static const char alphabet[] = "=\0,:[].0123456789xCRNoYes";
	unsigned ok = 0;

	tt_rng = 5;
	for (int iter = 0; iter < 40000; iter++) {
		size_t len = sizeof(base) - 1;
		char *buf = malloc(len + 8);
		struct iscsi_text_iter it;
		struct iscsi_kv kv;
		struct iscsi_target tg[2];
		struct iscsi_params want = tern_want(), out;
		struct neg_fix f;
		unsigned n;
		int rc;

		cr_assert_not_null(buf);
		memcpy(buf, base, len);
		for (int k = 1 + (int)(tt_rand() % 4); k > 0; k--) {
			size_t at = tt_rand() % len;
			uint32_t r = tt_rand();
			char c = r & 0x100 ? alphabet[r % (sizeof(alphabet) - 1)] : (char)r;

			if (r & 0x200 && len < sizeof(base) + 7) {
				memmove(buf + at + 1, buf + at, len - at);
				len++;
			}
			buf[at] = c;
		}
		/* The exact length, so ASan sees any read past it. */
		buf = realloc(buf, len);
		iscsi_text_iter_init(&it, buf, len);
		while ((rc = iscsi_text_next(&it, &kv, NULL)) == 1) {
			cr_assert(kv.key >= buf && kv.val + kv.vlen < buf + len);
			cr_assert_leq(kv.klen, ISCSI_KEY_MAX);
			cr_assert_eq(kv.val[kv.vlen], '\0');
		}
		cr_assert_leq(rc, 0);
		rc = iscsi_parse_sendtargets(buf, len, tg, 2, &n, NULL);
		cr_assert_leq(n, 2);
		for (unsigned i = 0; i < n; i++)
			cr_assert_eq(iscsi_name_check(tg[i].name, strlen(tg[i].name)), 0);
		neg_start(&f, &want, false);
		char o[512];
		struct iscsi_text_buf ob;
		iscsi_text_buf_init(&ob, o, sizeof(o));
		cr_assert_eq(iscsi_neg_offer(&f.n, ISCSI_STAGE_OPERATIONAL, &ob), 0);
		if (neg_feed(&f, buf, len, NULL) == 0 && iscsi_neg_done(&f.n, &out, NULL) == 0) {
			cr_assert_leq(out.first_burst, out.max_burst);
			cr_assert_leq(out.max_burst, want.max_burst);
			cr_assert_geq(out.target_max_recv_dsl, 512);
			ok++;
		}
		free(buf);
	}
	cr_expect(ok > 1000, "only %u negotiations completed", ok);
}

/* The boolean keys are bools: comparing four bytes with the defaults read
 * into the padding and AuthMethod.  Keys at their default are not offered;
 * the digests always are (None alone here), because a target configured
 * for CRC32C that hears nothing proposes CRC32C alone (tgt). */
Test(iscsi_text, neg_offer_defaults_with_chap)
{
	struct iscsi_params want;
	struct neg_fix f;
	char obuf[512];
	struct iscsi_text_buf o;

	iscsi_params_defaults(&want);
	want.auth = ISCSI_AUTH_CHAP;
	neg_start(&f, &want, false);
	iscsi_text_buf_init(&o, obuf, sizeof(obuf));
	cr_assert_eq(iscsi_neg_offer(&f.n, ISCSI_STAGE_OPERATIONAL, &o), 0);
	cr_assert(has_pair(obuf, o.len, "DataDigest=None"));
	cr_assert(has_pair(obuf, o.len, "HeaderDigest=None"));
	cr_assert(!has_pair(obuf, o.len, "InitialR2T=Yes"));
	cr_assert(!has_pair(obuf, o.len, "ImmediateData=Yes"));
	cr_assert(!has_pair(obuf, o.len, "DataPDUInOrder=Yes"));
	cr_assert(!has_pair(obuf, o.len, "DataSequenceInOrder=Yes"));
}
