/*
 * Unit tests and a fuzz test for storage/lib/iscsi_session.c.  A scripted
 * fake target (pure, below) answers what the session sends; every PDU in
 * both directions goes through the real codec (iscsi_pdu_build and the
 * incremental receiver), so the session only ever sees what a wire could
 * carry.  MD5 is a stand-in hash: the CHAP module's own tests check MD5.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/lib/iscsi_session.h"
#include "tests/unit/iscsi_fake.h"
#include "storage/lib/scsi_cdb.h"

#define IQN_I	"iqn.2024-01.org.tern:host1"
#define IQN_T	"iqn.2024-01.org.tern:disk1"
#define DISK	(1u << 20)
#define QMAX	2048
#define SEGMAX	65536

#define fake_md5 iscsi_fake_md5

static const uint8_t i_secret[] = "initiator-secret";
static const uint8_t t_secret[] = "target-secret-00";
static const uint8_t t_chal[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
static const uint8_t i_chal[] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6 };

/* One PDU the session sent, as the target decoded it. */
struct tpdu {
	struct iscsi_bhs h;
	uint32_t dlen;
	uint8_t *data;
};

/* A command as the fake target sees it. */
struct ttask {
	bool used, held;
	uint32_t itt, edtl, got, r2t_off, r2t_len, r2t_got, r2tsn, ttt, dsn;
	uint8_t flags;
	uint64_t off;		/* disk byte offset */
	uint8_t op;
};

struct fx {
	struct iscsi_sess s;
	struct iscsi_sess_cfg cfg;
	uint32_t now;
	/* initiator -> target queue */
	struct tpdu q[QMAX];
	unsigned qh, qt;
	/* results */
	struct iscsi_sess_done done[256];
	unsigned ndone;
	int ev[64], ev_err[64];
	uint32_t ev_arg[64];
	unsigned nev;
	int send_rc;
	/* target */
	bool chap, mutual, chap_wrong, skip_chap, mute, hold, sbit, split_text;
	bool chap_ok;
	uint32_t login_window;
	uint32_t statsn, exp_cmdsn, max_cmdsn, tmrdsl, tburst, tfirst, seg_in;
	uint32_t ttt_next, cmds, dataouts, r2ts, login_reqs, pings_seen;
	uint32_t max_unsol, max_burst_seen;
	uint8_t chap_i;
	size_t chap_clen;
	uint8_t chap_c[64];
	uint8_t inj_status;
	unsigned inj_count;
	bool inj_ua;
	struct ttask tt[128];
	unsigned writes_at[DISK / 512];
	uint8_t disk[DISK];
	/* the session's receive side */
	struct iscsi_rx rx;
	uint8_t *rxbuf;
};

/* ---- plumbing ---- */

static int cb_send(void *ctx, const struct iscsi_bhs *h, const void *data, uint32_t dlen)
{
	struct fx *f = ctx;
	static uint8_t wire[ISCSI_BHS_LEN + SEGMAX + 8];
	struct tpdu *p;
	size_t len;
	int rc;

	if (f->send_rc)
		return f->send_rc;
	cr_assert_eq(iscsi_pdu_build(h, data, dlen, false, false, wire, sizeof(wire), &len), 0,
		     "session built an unencodable %s", iscsi_op_name(h->opcode));
	cr_assert(iscsi_op_is_initiator(h->opcode));
	cr_assert_lt(f->qt - f->qh, QMAX);
	p = &f->q[f->qt++ % QMAX];
	rc = iscsi_bhs_decode(wire, &p->h, NULL);
	cr_assert_eq(rc, 0);
	p->dlen = dlen;
	free(p->data);
	p->data = dlen ? malloc(dlen) : NULL;
	if (dlen)
		memcpy(p->data, wire + ISCSI_BHS_LEN, dlen);
	return 0;
}

static void cb_done(void *ctx, const struct iscsi_sess_done *d)
{
	struct fx *f = ctx;

	cr_assert_lt(f->ndone, 256);
	f->done[f->ndone++] = *d;
}

static void cb_event(void *ctx, enum iscsi_sess_event ev, int err, uint32_t arg, const char *why)
{
	struct fx *f = ctx;

	(void)why;
	if (f->nev < 64) {
		f->ev[f->nev] = ev;
		f->ev_err[f->nev] = err;
		f->ev_arg[f->nev++] = arg;
	}
}

static const struct iscsi_sess_ops ops = { cb_send, cb_done, cb_event };

static struct fx *fx_new(bool chap, bool mutual)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct iscsi_rx_limits lim = { SEGMAX, 0, false, false };
	static struct iscsi_chap_cfg cc;

	cc = (struct iscsi_chap_cfg){ "host1", i_secret, sizeof(i_secret) - 1, mutual, "disk1",
				      t_secret, sizeof(t_secret) - 1 };
	f->chap = chap;
	f->mutual = mutual;
	f->tmrdsl = 8192;
	f->tburst = 262144;
	f->tfirst = 65536;
	f->seg_in = 8192;
	f->sbit = true;
	f->statsn = 1000;
	f->login_window = 64;
	f->ttt_next = 0x100;
	f->cfg.initiator_name = IQN_I;
	f->cfg.target_name = IQN_T;
	f->cfg.isid = 0x80123456789aull;
	iscsi_params_defaults(&f->cfg.want);
	f->cfg.want.max_recv_dsl = SEGMAX;
	f->cfg.want.max_burst = 1048576;
	f->cfg.want.first_burst = 262144;
	f->cfg.want.auth = chap ? ISCSI_AUTH_CHAP : ISCSI_AUTH_NONE;
	f->cfg.chap = &cc;
	f->cfg.md5 = fake_md5;
	f->cfg.timeout_ms = 5000;
	f->cfg.max_retries = 3;
	f->rxbuf = malloc(iscsi_rx_buf_size(&lim));
	cr_assert_eq(iscsi_rx_init(&f->rx, &lim, f->rxbuf, iscsi_rx_buf_size(&lim)), 0);
	for (size_t i = 0; i < DISK; i++)
		f->disk[i] = (uint8_t)(i * 7 + 3);
	return f;
}

static void fx_free(struct fx *f)
{
	for (unsigned i = 0; i < QMAX; i++)
		free(f->q[i].data);
	free(f->rxbuf);
	free(f);
}

/* Target -> session through the real encoder and receiver. */
static int ft_send(struct fx *f, struct iscsi_bhs *h, const void *data, uint32_t dlen)
{
	static uint8_t wire[ISCSI_BHS_LEN + SEGMAX + 8];
	struct iscsi_rx_pdu p;
	size_t len, used;

	if (h->opcode != ISCSI_OP_LOGIN_RSP || !h->exp_sn) {
		h->exp_sn = f->exp_cmdsn;
		h->max_cmdsn = f->max_cmdsn;
	}
	cr_assert_eq(iscsi_pdu_build(h, data, dlen, false, false, wire, sizeof(wire), &len), 0);
	cr_assert_eq(iscsi_rx_feed(&f->rx, wire, len, &used, &p), 1);
	cr_assert_eq(used, len);
	return iscsi_sess_recv(&f->s, &p, f->now);
}

#define rsp iscsi_fake_rsp

/* ---- fake target: login ---- */

static void kv_num(const struct iscsi_kv *kv, uint32_t *v)
{
	uint64_t n = 0;

	iscsi_parse_number(kv->val, kv->vlen, &n);
	*v = (uint32_t)n;
}

static bool ft_chap_key(struct fx *f, const struct iscsi_kv *kv, struct iscsi_text_buf *tb,
			bool *fail)
{
	uint8_t r[16], got[16], c[64];
	char enc[64];
	size_t n;

	if (iscsi_kv_is(kv, "CHAP_A")) {
		iscsi_text_add(tb, "CHAP_A", "5");
		iscsi_text_add_u32(tb, "CHAP_I", 7);
		iscsi_bin_encode(t_chal, sizeof(t_chal), false, enc, sizeof(enc));
		iscsi_text_add(tb, "CHAP_C", enc);
	} else if (iscsi_kv_is(kv, "CHAP_R")) {
		iscsi_chap_response(fake_md5, 7, i_secret, sizeof(i_secret) - 1, t_chal,
				    sizeof(t_chal), r);
		*fail = iscsi_bin_decode(kv->val, kv->vlen, got, 16, &n) || n != 16 ||
			memcmp(r, got, 16) || f->chap_wrong;
		f->chap_ok = !*fail;
	} else if (iscsi_kv_is(kv, "CHAP_I")) {
		uint32_t v;

		kv_num(kv, &v);
		f->chap_i = (uint8_t)v;
	} else if (iscsi_kv_is(kv, "CHAP_C")) {
		iscsi_bin_decode(kv->val, kv->vlen, c, sizeof(c), &f->chap_clen);
		memcpy(f->chap_c, c, f->chap_clen);
	} else {
		return iscsi_kv_is(kv, "CHAP_N");
	}
	return true;
}

static void ft_op_key(struct fx *f, const struct iscsi_kv *kv, struct iscsi_text_buf *tb)
{
	uint32_t v;

	if (iscsi_kv_is(kv, "MaxRecvDataSegmentLength"))
		return;
	if (iscsi_kv_is(kv, "HeaderDigest") || iscsi_kv_is(kv, "DataDigest")) {
		iscsi_text_add(tb, iscsi_kv_is(kv, "DataDigest") ? "DataDigest" : "HeaderDigest",
			       "None");
	} else if (iscsi_kv_is(kv, "MaxBurstLength")) {
		kv_num(kv, &v);
		iscsi_text_add_u32(tb, "MaxBurstLength", v < f->tburst ? v : f->tburst);
	} else if (iscsi_kv_is(kv, "FirstBurstLength")) {
		kv_num(kv, &v);
		iscsi_text_add_u32(tb, "FirstBurstLength", v < f->tfirst ? v : f->tfirst);
	} else {
		char key[64];

		snprintf(key, sizeof(key), "%.*s", (int)kv->klen, kv->key);
		iscsi_text_add_n(tb, key, kv->val, kv->vlen);
	}
}

static void ft_login(struct fx *f, const struct tpdu *q)
{
	struct iscsi_text_iter it;
	struct iscsi_kv kv;
	char out[2048], enc[64];
	struct iscsi_text_buf tb;
	int csg = ISCSI_LOGIN_CSG(q->h.flags), nsg = ISCSI_LOGIN_NSG(q->h.flags);
	bool transit = q->h.flags & ISCSI_F_TRANSIT, fail = false;
	struct iscsi_bhs h = rsp(ISCSI_OP_LOGIN_RSP, q->h.itt);

	cr_assert(q->h.immediate);
	f->login_reqs++;
	iscsi_text_buf_init(&tb, out, sizeof(out));
	iscsi_text_iter_init(&it, q->data, q->dlen);
	while (iscsi_text_next(&it, &kv, NULL) == 1) {
		if (iscsi_kv_is(&kv, "InitiatorName") || iscsi_kv_is(&kv, "TargetName") ||
		    iscsi_kv_is(&kv, "SessionType"))
			continue;
		if (iscsi_kv_is(&kv, "AuthMethod")) {
			iscsi_text_add(&tb, "AuthMethod", f->chap ? "CHAP" : "None");
			iscsi_text_add(&tb, "TargetPortalGroupTag", "1");
		} else if (csg == ISCSI_STAGE_SECURITY) {
			cr_assert(ft_chap_key(f, &kv, &tb, &fail));
		} else {
			ft_op_key(f, &kv, &tb);
		}
	}
	if (f->skip_chap && csg == ISCSI_STAGE_SECURITY) {
		transit = true;
		nsg = ISCSI_STAGE_OPERATIONAL;
	}
	if (csg == ISCSI_STAGE_SECURITY && f->chap && !f->chap_ok && !f->skip_chap)
		transit = false;
	if (csg == ISCSI_STAGE_SECURITY && transit && f->mutual && f->chap_ok) {
		uint8_t r[16];

		iscsi_text_add(&tb, "CHAP_N", "disk1");
		iscsi_chap_response(fake_md5, f->chap_i, t_secret, sizeof(t_secret) - 1,
				    f->chap_c, f->chap_clen, r);
		iscsi_bin_encode(r, 16, false, enc, sizeof(enc));
		iscsi_text_add(&tb, "CHAP_R", enc);
	}
	if (csg == ISCSI_STAGE_OPERATIONAL && transit)
		iscsi_text_add_u32(&tb, "MaxRecvDataSegmentLength", f->tmrdsl);
	h.flags = (uint8_t)(csg << 2 | (transit ? ISCSI_F_TRANSIT | nsg : 0));
	h.lun = q->h.lun | 0x1234;
	h.sn = f->statsn++;
	if (fail) {
		h.status_class = 2;
		h.status_detail = 1;
		h.flags = 0;
	}
	f->exp_cmdsn = q->h.sn;
	if (!f->max_cmdsn || iscsi_sn_lt(f->max_cmdsn, q->h.sn))
		f->max_cmdsn = q->h.sn + f->login_window - 1;
	ft_send(f, &h, out, (uint32_t)tb.len);
}

/* ---- fake target: commands ---- */

static struct ttask *tt_find(struct fx *f, uint32_t itt)
{
	for (unsigned i = 0; i < 128; i++)
		if (f->tt[i].used && f->tt[i].itt == itt)
			return &f->tt[i];
	return NULL;
}

static void ft_status(struct fx *f, struct ttask *t)
{
	struct iscsi_bhs h = rsp(ISCSI_OP_SCSI_RSP, t->itt);
	uint8_t sense[20] = { 0 };
	uint32_t slen = 0;

	h.sn = f->statsn++;
	if (f->inj_count) {
		f->inj_count--;
		h.b3 = f->inj_status;
		if (f->inj_ua) {
			/* SenseLength 18, fixed sense UNIT ATTENTION 2A/03 */
			sense[1] = 18;
			sense[2] = 0x70;
			sense[4] = 6;
			sense[9] = 10;
			sense[14] = 0x2a;
			sense[15] = 3;
			slen = 20;
		}
	}
	t->used = false;
	ft_send(f, &h, sense, slen);
}

static void ft_read(struct fx *f, struct ttask *t)
{
	uint32_t off = 0, dsn = 0;

	while (off < t->edtl || (!t->edtl && !off)) {
		uint32_t n = t->edtl - off < f->seg_in ? t->edtl - off : f->seg_in;
		struct iscsi_bhs h = rsp(ISCSI_OP_DATA_IN, t->itt);
		bool last = off + n == t->edtl;

		if (!t->edtl)
			break;
		h.flags = last ? ISCSI_F_FINAL : 0;
		h.seq = dsn++;
		h.offset = off;
		if (last && f->sbit && !f->inj_count) {
			h.flags |= ISCSI_F_STATUS;
			h.sn = f->statsn++;
		}
		if (ft_send(f, &h, f->disk + t->off + off, n))
			return;
		off += n;
		if (last && (h.flags & ISCSI_F_STATUS)) {
			t->used = false;
			return;
		}
	}
	ft_status(f, t);
}

/* R2T for the next stretch, or the status when all data is in. */
static void ft_next_r2t(struct fx *f, struct ttask *t)
{
	struct iscsi_bhs h = rsp(ISCSI_OP_R2T, t->itt);

	if (t->got == t->edtl) {
		ft_status(f, t);
		return;
	}
	t->r2t_off = t->got;
	t->r2t_len = t->edtl - t->got < f->s.params.max_burst ? t->edtl - t->got
							       : f->s.params.max_burst;
	t->r2t_got = 0;
	t->ttt = f->ttt_next++;
	t->dsn = 0;
	h.flags = ISCSI_F_FINAL;
	h.ttt = t->ttt;
	h.sn = f->statsn;
	h.seq = t->r2tsn++;
	h.offset = t->r2t_off;
	h.residual = t->r2t_len;
	f->r2ts++;
	ft_send(f, &h, NULL, 0);
}

static void ft_run_cmd(struct fx *f, struct ttask *t)
{
	t->held = false;
	if (t->op == 0x28)
		ft_read(f, t);
	else if (t->op == 0x2a && (t->flags & ISCSI_F_FINAL))
		ft_next_r2t(f, t);
	else if (t->op != 0x2a)
		ft_status(f, t);
}

static uint64_t cdb_off(const uint8_t *cdb)
{
	return ((uint64_t)cdb[2] << 24 | (uint64_t)cdb[3] << 16 | cdb[4] << 8 | cdb[5]) * 512;
}

static void ft_cmd(struct fx *f, const struct tpdu *q)
{
	struct ttask *t = NULL;

	/* The session never sends outside the window (RFC 7143 3.2.2.1). */
	cr_assert(!iscsi_sn_lt(f->max_cmdsn, q->h.sn), "CmdSN %u beyond MaxCmdSN %u", q->h.sn,
		  f->max_cmdsn);
	cr_assert_eq(q->h.sn, f->exp_cmdsn);
	f->exp_cmdsn = q->h.sn + 1;
	f->cmds++;
	cr_assert_leq(q->dlen, f->tmrdsl);
	for (unsigned i = 0; i < 128 && !t; i++)
		if (!f->tt[i].used)
			t = &f->tt[i];
	cr_assert_not_null(t);
	memset(t, 0, sizeof(*t));
	t->used = true;
	t->itt = q->h.itt;
	t->edtl = q->h.ttt;
	t->flags = q->h.flags;
	t->op = q->h.cdb[0];
	t->off = t->op == 0x28 || t->op == 0x2a ? cdb_off(q->h.cdb) : 0;
	if (q->dlen) {
		cr_assert(f->s.params.immediate_data);
		memcpy(f->disk + t->off, q->data, q->dlen);
		t->got = q->dlen;
	}
	if (t->op == 0x2a)
		for (uint32_t b = 0; b < t->edtl / 512; b++)
			f->writes_at[t->off / 512 + b]++;
	if (f->hold) {
		t->held = true;
		return;
	}
	ft_run_cmd(f, t);
}

static void ft_data_out(struct fx *f, const struct tpdu *q)
{
	struct ttask *t = tt_find(f, q->h.itt);

	cr_assert_not_null(t);
	cr_assert_leq(q->dlen, f->tmrdsl);
	cr_assert_eq(q->h.offset, t->got);
	cr_assert_leq(q->h.offset + q->dlen, t->edtl);
	memcpy(f->disk + t->off + q->h.offset, q->data, q->dlen);
	t->got += q->dlen;
	f->dataouts++;
	if (q->h.ttt == ISCSI_RSVD_TAG) {	/* unsolicited */
		cr_assert(!f->s.params.initial_r2t);
		cr_assert_leq(t->got, f->s.params.first_burst);
		if (t->got > f->max_unsol)
			f->max_unsol = t->got;
		if ((q->h.flags & ISCSI_F_FINAL) && !t->held)
			ft_next_r2t(f, t);
		if (q->h.flags & ISCSI_F_FINAL)
			t->flags |= ISCSI_F_FINAL;
		return;
	}
	cr_assert_eq(q->h.ttt, t->ttt);
	cr_assert_eq(q->h.seq, t->dsn++);
	t->r2t_got += q->dlen;
	cr_assert_leq(t->r2t_got, t->r2t_len);
	if (t->r2t_got > f->max_burst_seen)
		f->max_burst_seen = t->r2t_got;
	if (q->h.flags & ISCSI_F_FINAL) {
		cr_assert_eq(t->r2t_got, t->r2t_len);
		ft_next_r2t(f, t);
	}
}

static void ft_text(struct fx *f, const struct tpdu *q)
{
	static const char st[] = "TargetName=" IQN_T "\0TargetAddress=10.0.0.1:3260,1\0"
				 "TargetName=iqn.2024-01.org.tern:disk2\0";
	struct iscsi_bhs h = rsp(ISCSI_OP_TEXT_RSP, q->h.itt);
	uint32_t cut = sizeof(st) - 1;

	h.sn = f->statsn++;
	if (f->split_text && q->h.ttt == ISCSI_RSVD_TAG) {
		h.flags = 0;
		h.ttt = 0x55;
		ft_send(f, &h, st, 20);
		return;
	}
	if (f->split_text) {
		cr_assert_eq(q->h.ttt, 0x55);
		ft_send(f, &h, st + 20, cut - 20);
		return;
	}
	ft_send(f, &h, st, cut);
}

static void ft_handle(struct fx *f, const struct tpdu *q)
{
	struct iscsi_bhs h;

	switch (q->h.opcode) {
	case ISCSI_OP_LOGIN_REQ:
		ft_login(f, q);
		break;
	case ISCSI_OP_SCSI_CMD:
		ft_cmd(f, q);
		break;
	case ISCSI_OP_DATA_OUT:
		ft_data_out(f, q);
		break;
	case ISCSI_OP_NOP_OUT:
		f->pings_seen++;
		if (q->h.itt == ISCSI_RSVD_TAG || f->mute)
			break;
		h = rsp(ISCSI_OP_NOP_IN, q->h.itt);
		h.sn = f->statsn++;
		ft_send(f, &h, NULL, 0);
		break;
	case ISCSI_OP_LOGOUT_REQ:
		h = rsp(ISCSI_OP_LOGOUT_RSP, q->h.itt);
		h.sn = f->statsn++;
		ft_send(f, &h, NULL, 0);
		break;
	case ISCSI_OP_TEXT_REQ:
		ft_text(f, q);
		break;
	default:
		cr_assert_fail("unexpected %s", iscsi_op_name(q->h.opcode));
	}
}

/* Deliver what the session sent until it is quiet. */
static void ft_run(struct fx *f)
{
	while (f->qh != f->qt) {
		struct tpdu *q = &f->q[f->qh++ % QMAX];

		if (f->s.state == ISCSI_SESS_DOWN)
			continue;	/* lost with the connection */
		ft_handle(f, q);
	}
}

static void ft_release(struct fx *f, unsigned n)
{
	for (unsigned i = 0; i < 128 && n; i++)
		if (f->tt[i].used && f->tt[i].held) {
			ft_run_cmd(f, &f->tt[i]);
			n--;
			ft_run(f);
		}
}

/* Drop the connection on both sides; the target forgets its tasks. */
static void ft_drop(struct fx *f)
{
	iscsi_sess_conn_lost(&f->s, -ECONNRESET);
	f->qh = f->qt;
	memset(f->tt, 0, sizeof(f->tt));
	iscsi_rx_reset(&f->rx);
	f->chap_ok = false;
	f->statsn += 100;
	f->max_cmdsn = 0;
}

static void fx_login(struct fx *f)
{
	cr_assert_eq(iscsi_sess_connect(&f->s, f->now, 0x42, i_chal, sizeof(i_chal)), 0);
	ft_run(f);
	cr_assert_eq(f->s.state, ISCSI_SESS_FULL, "login failed: %d %s", f->s.err,
		     f->s.why ? f->s.why : "");
}

static struct fx *fx_up(bool chap, bool mutual)
{
	struct fx *f = fx_new(chap, mutual);

	cr_assert_eq(iscsi_sess_init(&f->s, &f->cfg, &ops, f), 0);
	fx_login(f);
	return f;
}

static int submit_rw(struct fx *f, bool write, uint32_t lba, uint32_t blocks, uint8_t *buf)
{
	struct iscsi_sess_req r = { 0 };

	cr_assert_eq(scsi_cdb_rw10(r.cdb, write, lba, blocks, false), 0);
	r.cdb_len = 10;
	r.dir = write ? ISCSI_SESS_WRITE : ISCSI_SESS_READ;
	r.buf = buf;
	r.len = blocks * 512;
	r.cookie = (void *)(uintptr_t)lba;
	return iscsi_sess_submit(&f->s, &r);
}

static bool has_event(const struct fx *f, int ev, int err)
{
	for (unsigned i = 0; i < f->nev; i++)
		if (f->ev[i] == ev && f->ev_err[i] == err)
			return true;
	return false;
}

/* ---- login ---- */

Test(iscsi_sess, login_none)
{
	struct fx *f = fx_up(false, false);

	cr_assert_eq(f->login_reqs, 2);	/* security (transit) + operational */
	cr_assert(has_event(f, ISCSI_SESS_EV_LOGGED_IN, 0));
	cr_assert_eq(f->s.tsih, 0x1234);
	cr_assert_eq(f->s.params.target_max_recv_dsl, 8192);
	cr_assert_eq(f->s.params.max_burst, 262144);
	cr_assert_eq(f->s.params.first_burst, 65536);
	cr_assert_eq(f->s.exp_statsn, f->statsn);
	fx_free(f);
}

Test(iscsi_sess, login_chap_one_way_and_mutual)
{
	for (int mutual = 0; mutual < 2; mutual++) {
		struct fx *f = fx_up(true, mutual);

		cr_assert_eq(f->login_reqs, 4);	/* AuthMethod, CHAP_A, CHAP_R, operational */
		cr_assert(f->chap_ok);
		if (mutual)
			cr_assert_eq(f->chap_i, 0x42);
		fx_free(f);
	}
}

Test(iscsi_sess, login_chap_refused_and_hostile)
{
	struct fx *f = fx_new(true, false);

	f->chap_wrong = true;
	cr_assert_eq(iscsi_sess_init(&f->s, &f->cfg, &ops, f), 0);
	cr_assert_eq(iscsi_sess_connect(&f->s, 0, 0, NULL, 0), 0);
	ft_run(f);
	cr_assert_eq(f->s.state, ISCSI_SESS_DOWN);
	cr_assert_eq(f->s.err, -EACCES);
	fx_free(f);

	/* A target that skips CHAP the initiator asked for. */
	f = fx_new(true, false);
	f->skip_chap = true;
	cr_assert_eq(iscsi_sess_init(&f->s, &f->cfg, &ops, f), 0);
	cr_assert_eq(iscsi_sess_connect(&f->s, 0, 0, NULL, 0), 0);
	ft_run(f);
	cr_assert_eq(f->s.state, ISCSI_SESS_DOWN);
	cr_assert(f->s.err == -EPROTO || f->s.err == -EACCES, "%d", f->s.err);
	fx_free(f);
}

Test(iscsi_sess, login_mutual_target_fails_proof)
{
	struct fx *f = fx_new(true, true);
	static struct iscsi_chap_cfg cc;

	cc = *f->cfg.chap;
	cc.target_secret = (const uint8_t *)"some-other-secret";
	cc.tslen = 17;
	f->cfg.chap = &cc;
	cr_assert_eq(iscsi_sess_init(&f->s, &f->cfg, &ops, f), 0);
	cr_assert_eq(iscsi_sess_connect(&f->s, 0, 1, i_chal, sizeof(i_chal)), 0);
	ft_run(f);
	cr_assert_eq(f->s.state, ISCSI_SESS_DOWN);
	cr_assert_eq(f->s.err, -EACCES);
	fx_free(f);
}

/*
 * A first Login Response whose keys need so many answers ("NotUnderstood")
 * that what the session must add next no longer fits its Login Request:
 * the operational offers (leaving the security stage, chap false) or
 * CHAP_A (chap true).  Returns what iscsi_sess_recv() returned; *sent
 * gets the PDUs the session sent after its first.
 */
static int login_crowded(bool chap, unsigned *sent)
{
	struct fx *f = fx_new(chap, false);
	static char text[8192];
	struct iscsi_text_buf tb;
	struct iscsi_bhs h;
	char key[64];
	int rc;

	cr_assert_eq(iscsi_sess_init(&f->s, &f->cfg, &ops, f), 0);
	cr_assert_eq(iscsi_sess_connect(&f->s, 0, 0, NULL, 0), 0);
	cr_assert_eq(f->qt - f->qh, 1);
	iscsi_text_buf_init(&tb, text, sizeof(text));
	iscsi_text_add(&tb, "AuthMethod", chap ? "CHAP" : "None");
	/* 52 keys of 63 bytes: 52 answers of 78 bytes take 4056 of the
	 * 4096; the offers need 78 more.  With CHAP, one answer of 35 more
	 * leaves 5 bytes, and CHAP_A=5 needs 9. */
	memset(key, '0', 63);
	key[0] = 'X';
	key[63] = '\0';
	for (int i = 0; i < 52; i++) {
		key[1] = (char)('0' + i / 10);
		key[2] = (char)('0' + i % 10);
		iscsi_text_add(&tb, key, "1");
	}
	if (chap) {
		key[20] = '\0';
		iscsi_text_add(&tb, key, "1");
	}
	cr_assert_eq(tb.err, 0);
	h = rsp(ISCSI_OP_LOGIN_RSP, f->q[f->qh % QMAX].h.itt);
	/* CSG 0; no CHAP: T and NSG 1 as asked */
	h.flags = chap ? 0 : ISCSI_F_TRANSIT | ISCSI_STAGE_OPERATIONAL;
	h.sn = f->statsn++;
	h.exp_sn = 1;
	h.max_cmdsn = 64;
	rc = ft_send(f, &h, text, (uint32_t)tb.len);
	*sent = f->qt - f->qh - 1;
	if (rc)
		cr_assert(f->s.state == ISCSI_SESS_DOWN && f->s.err == rc);
	fx_free(f);
	return rc;
}

/* The target's text caused it: an errno of the documented set, and no
 * Login Request that lacks what it must carry.  (It was -EINVAL, the
 * errno of a bad request from the caller, and with CHAP a Login Request
 * without CHAP_A.) */
Test(iscsi_sess, login_answers_leave_no_room)
{
	unsigned sent;

	cr_assert_eq(login_crowded(false, &sent), -EPROTO);
	cr_assert_eq(sent, 0);
	cr_assert_eq(login_crowded(true, &sent), -EPROTO);
	cr_assert_eq(sent, 0);
}

Test(iscsi_sess, login_timeout_and_bad_init)
{
	struct fx *f = fx_new(false, false);
	struct iscsi_sess_cfg c = f->cfg;

	c.target_name = NULL;
	cr_assert_eq(iscsi_sess_init(&f->s, &c, &ops, f), -EINVAL);
	c = f->cfg;
	c.isid = 1ull << 48;
	cr_assert_eq(iscsi_sess_init(&f->s, &c, &ops, f), -EINVAL);
	cr_assert_eq(iscsi_sess_init(&f->s, &f->cfg, &ops, f), 0);
	cr_assert_eq(iscsi_sess_connect(&f->s, 100, 0, NULL, 0), 0);
	cr_assert_eq(iscsi_sess_connect(&f->s, 100, 0, NULL, 0), -EALREADY);
	cr_assert_eq(iscsi_sess_tick(&f->s, 5099), 0);
	cr_assert_eq(iscsi_sess_tick(&f->s, 5100), -ETIMEDOUT);
	cr_assert_eq(f->s.state, ISCSI_SESS_DOWN);
	fx_free(f);
}

Test(iscsi_sess, discovery_sendtargets)
{
	for (int split = 0; split < 2; split++) {
		struct fx *f = fx_new(false, false);
		struct iscsi_target tg[4];

		f->cfg.discovery = true;
		f->cfg.target_name = NULL;
		f->split_text = split;
		cr_assert_eq(iscsi_sess_init(&f->s, &f->cfg, &ops, f), 0);
		fx_login(f);
		cr_assert_eq(submit_rw(f, false, 0, 1, f->disk), -EPIPE);
		cr_assert_eq(iscsi_sess_sendtargets(&f->s, tg, 4), 0);
		cr_assert_eq(iscsi_sess_sendtargets(&f->s, tg, 4), -EALREADY);
		ft_run(f);
		cr_assert(has_event(f, ISCSI_SESS_EV_SENDTARGETS, 0));
		cr_assert_eq(f->ev_arg[f->nev - 1], 2);
		cr_assert_str_eq(tg[0].name, IQN_T);
		cr_assert_str_eq(tg[0].portals[0].host, "10.0.0.1");
		cr_assert_eq(iscsi_sess_logout(&f->s), 0);
		ft_run(f);
		cr_assert_eq(f->s.state, ISCSI_SESS_CLOSED);
		fx_free(f);
	}
}

/* ---- full-feature phase ---- */

static uint8_t wbuf[1 << 20], rbuf[1 << 20];

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 13 + seed * 101 + (i >> 9));
}

Test(iscsi_sess, read_with_and_without_s_bit)
{
	for (int sbit = 0; sbit < 2; sbit++) {
		struct fx *f = fx_up(false, false);
		int slot;

		f->sbit = sbit;
		f->seg_in = 4096;
		memset(rbuf, 0, 65536);
		slot = submit_rw(f, false, 16, 100, rbuf);
		cr_assert_geq(slot, 0);
		ft_run(f);
		cr_assert_eq(f->ndone, 1);
		cr_assert_eq(f->done[0].err, 0);
		cr_assert_eq(f->done[0].slot, (unsigned)slot);
		cr_assert_eq(f->done[0].xfer, 51200);
		cr_assert_arr_eq(rbuf, f->disk + 16 * 512, 51200);
		cr_assert_eq(iscsi_sess_pending(&f->s), 0);
		cr_assert_eq(f->s.exp_statsn, f->statsn);
		fx_free(f);
	}
}

/* InitialR2T x ImmediateData x burst sizes x segment sizes: the target
 * checks every limit as it goes, and the disk must hold the data. */
Test(iscsi_sess, write_r2t_matrix)
{
	static const uint32_t bursts[] = { 512, 4096, 65536, 262144 };
	static const uint32_t segs[] = { 512, 8192 };
	static const uint32_t lens[] = { 1, 8, 129, 512 };
	unsigned n = 0;

	for (int ir2t = 0; ir2t < 2; ir2t++)
	for (int imm = 0; imm < 2; imm++)
	for (unsigned b = 0; b < 4; b++)
	for (unsigned sg = 0; sg < 2; sg++) {
		struct fx *f = fx_new(false, false);

		f->cfg.want.initial_r2t = ir2t;
		f->cfg.want.immediate_data = imm;
		f->tburst = bursts[b];
		f->tfirst = bursts[b] < 16384 ? bursts[b] : 16384;
		f->tmrdsl = segs[sg];
		cr_assert_eq(iscsi_sess_init(&f->s, &f->cfg, &ops, f), 0);
		fx_login(f);
		cr_assert_eq(f->s.params.initial_r2t, (bool)ir2t);
		cr_assert_eq(f->s.params.immediate_data, (bool)imm);
		for (unsigned l = 0; l < 4; l++) {
			uint32_t lba = 64 * l;

			fill(wbuf + lba * 512, lens[l] * 512, l + b);
			cr_assert_geq(submit_rw(f, true, lba, lens[l], wbuf + lba * 512), 0);
		}
		ft_run(f);
		cr_assert_eq(f->ndone, 4);
		for (unsigned l = 0; l < 4; l++) {
			cr_assert_eq(f->done[l].err, 0);
			cr_assert_arr_eq(f->disk + 64 * l * 512, wbuf + 64 * l * 512, lens[l] * 512);
		}
		cr_assert_leq(f->max_burst_seen, bursts[b]);
		if (!ir2t && !imm)
			cr_assert_gt(f->max_unsol, 0);
		if (ir2t && !imm)
			cr_assert_eq(f->r2ts > 0, true);
		n++;
		fx_free(f);
	}
	cr_assert_eq(n, 32);
}

Test(iscsi_sess, window_closes_and_opens)
{
	struct fx *f = fx_new(false, false);
	uint32_t base;

	f->login_window = 2;		/* room for two commands */
	cr_assert_eq(iscsi_sess_init(&f->s, &f->cfg, &ops, f), 0);
	fx_login(f);
	base = f->exp_cmdsn;
	f->hold = true;
	for (unsigned i = 0; i < 6; i++)
		cr_assert_geq(submit_rw(f, false, i, 1, rbuf + i * 512), 0);
	ft_run(f);
	cr_assert_eq(f->cmds, 2);
	/* Zero window (MaxCmdSN = ExpCmdSN - 1): a NOP-In changes nothing. */
	f->max_cmdsn = f->exp_cmdsn - 1;
	ft_release(f, 1);
	cr_assert_eq(f->cmds, 2);
	cr_assert_eq(f->ndone, 1);
	/* A window that moves back is ignored (4.2.2.1). */
	f->max_cmdsn = base - 5;
	ft_release(f, 1);
	cr_assert_eq(f->cmds, 2);
	/* Open by three. */
	f->max_cmdsn = f->exp_cmdsn + 2;
	{
		struct iscsi_bhs h = rsp(ISCSI_OP_NOP_IN, ISCSI_RSVD_TAG);

		h.sn = f->statsn;
		cr_assert_eq(ft_send(f, &h, NULL, 0), 0);
	}
	ft_run(f);
	cr_assert_eq(f->cmds, 5);
	f->hold = false;
	f->max_cmdsn += 10;
	ft_release(f, 10);
	ft_run(f);
	ft_release(f, 10);
	cr_assert_eq(f->cmds, 6);
	cr_assert_eq(f->ndone, 6);
	/* Completion order across the window still reads the right data. */
	for (unsigned i = 0; i < 6; i++)
		cr_assert_arr_eq(rbuf + i * 512, f->disk + i * 512, 512);
	fx_free(f);
}

Test(iscsi_sess, nop_in_ping_pong)
{
	struct fx *f = fx_up(false, false);
	struct iscsi_bhs h = rsp(ISCSI_OP_NOP_IN, ISCSI_RSVD_TAG);
	uint32_t st = f->s.exp_statsn;

	h.ttt = 0xabc;
	h.lun = 0x0001000000000000ull;
	h.sn = f->statsn;
	cr_assert_eq(ft_send(f, &h, "ping", 4), 0);
	cr_assert_eq(f->qt - f->qh, 1);
	{
		struct tpdu *q = &f->q[f->qh % QMAX];

		cr_assert_eq(q->h.opcode, ISCSI_OP_NOP_OUT);
		cr_assert_eq(q->h.itt, ISCSI_RSVD_TAG);
		cr_assert_eq(q->h.ttt, 0xabc);
		cr_assert_eq(q->h.lun, h.lun);
		cr_assert(q->h.immediate);
		cr_assert_eq(q->dlen, 4);
		cr_assert_arr_eq(q->data, "ping", 4);
	}
	cr_assert_eq(f->s.exp_statsn, st);	/* not advanced (11.19.2) */
	ft_run(f);
	fx_free(f);
}

Test(iscsi_sess, keepalive_ping_and_timeout)
{
	struct fx *f = fx_new(false, false);

	f->cfg.nop_interval_ms = 1000;
	f->cfg.timeout_ms = 3000;
	cr_assert_eq(iscsi_sess_init(&f->s, &f->cfg, &ops, f), 0);
	fx_login(f);
	cr_assert_eq(iscsi_sess_tick(&f->s, 999), 0);
	cr_assert_eq(f->qt, f->qh);
	cr_assert_eq(iscsi_sess_tick(&f->s, 1000), 0);
	cr_assert_eq(f->qt - f->qh, 1);
	f->now = 1200;
	ft_run(f);			/* pong */
	cr_assert(!f->s.ping_busy);
	cr_assert_eq(f->s.state, ISCSI_SESS_FULL);
	f->mute = true;
	cr_assert_eq(iscsi_sess_tick(&f->s, 2200), 0);
	ft_run(f);
	cr_assert(f->s.ping_busy);
	cr_assert_eq(iscsi_sess_tick(&f->s, 5199), 0);
	cr_assert_eq(iscsi_sess_tick(&f->s, 5200), -ETIMEDOUT);
	cr_assert_eq(f->s.state, ISCSI_SESS_DOWN);
	cr_assert(has_event(f, ISCSI_SESS_EV_FAILED, -ETIMEDOUT));
	fx_free(f);
}

/* ---- errors and recovery ---- */

Test(iscsi_sess, reconnect_reissues_only_unfinished)
{
	struct fx *f = fx_up(false, false);
	unsigned slots[16], n;

	f->hold = true;
	for (unsigned i = 0; i < 6; i++) {
		fill(wbuf + i * 4096, 4096, i);
		cr_assert_geq(submit_rw(f, true, i * 8, 8, wbuf + i * 4096), 0);
	}
	ft_run(f);
	cr_assert_eq(f->cmds, 6);
	f->hold = false;
	ft_release(f, 2);		/* two writes finish before the drop */
	cr_assert_eq(f->ndone, 2);
	uint32_t old_itt = f->s.task[2].itt;

	ft_drop(f);
	cr_assert(has_event(f, ISCSI_SESS_EV_FAILED, -ECONNRESET));
	n = iscsi_sess_inflight(&f->s, slots, 16);
	cr_assert_eq(n, 4);
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(slots[i], i + 2);	/* submission order */
	/* A PDU for the dead connection is refused without harm. */
	cr_assert_geq(iscsi_sess_submit(&f->s, &(struct iscsi_sess_req){ .cdb = { 0 },
		      .cdb_len = 6 }), 0);
	fx_login(f);
	ft_run(f);
	cr_assert_eq(f->ndone, 7);
	cr_assert_neq(f->s.task[2].itt, old_itt);
	/* Each write completed once; finished ones were not sent again. */
	for (unsigned i = 0; i < 6; i++) {
		unsigned seen = 0;

		for (unsigned k = 0; k < f->ndone; k++)
			seen += f->done[k].cookie == (void *)(uintptr_t)(i * 8);
		cr_assert_eq(seen, i == 0 ? 2 : 1, "lba %u completed %u times", i * 8, seen);
		cr_assert_eq(f->writes_at[i * 8], i < 2 ? 1 : 2);
		cr_assert_arr_eq(f->disk + i * 4096, wbuf + i * 4096, 4096);
	}
	fx_free(f);
}

/* A held session sends only ctl tasks: after a reconnect the owner checks
 * and re-registers its key before the reissued writes go out. */
Test(iscsi_sess, hold_sends_ctl_tasks_first)
{
	struct fx *f = fx_up(false, false);
	unsigned before;

	f->hold = true;
	for (unsigned i = 0; i < 3; i++)
		cr_assert_geq(submit_rw(f, true, i * 8, 8, wbuf + i * 4096), 0);
	ft_run(f);
	cr_assert_eq(f->cmds, 3);
	ft_drop(f);
	iscsi_sess_hold(&f->s, true);
	fx_login(f);
	before = f->cmds;
	cr_assert_geq(iscsi_sess_submit(&f->s, &(struct iscsi_sess_req){ .cdb = { 0 },
		      .cdb_len = 6, .ctl = true, .cookie = (void *)0x99 }), 0);
	f->hold = false;
	ft_run(f);
	cr_assert_eq(f->cmds, before + 1, "a held task went out");
	cr_assert_eq(f->ndone, 1);
	cr_assert_eq(f->done[0].cookie, (void *)0x99);
	iscsi_sess_hold(&f->s, false);
	ft_run(f);
	cr_assert_eq(f->ndone, 4);
	cr_assert_eq(f->cmds, before + 4);
	fx_free(f);
}

Test(iscsi_sess, unit_attention_busy_retry_bounded)
{
	struct fx *f = fx_up(false, false);

	f->inj_status = SCSI_STATUS_CHECK_CONDITION;
	f->inj_ua = true;
	f->inj_count = 2;
	cr_assert_geq(submit_rw(f, false, 0, 1, rbuf), 0);
	ft_run(f);
	cr_assert_eq(f->ndone, 1);
	cr_assert_eq(f->done[0].err, 0);
	cr_assert_eq(f->done[0].tries, 3);
	f->inj_ua = false;
	f->inj_status = SCSI_STATUS_BUSY;
	f->inj_count = 10;
	cr_assert_geq(submit_rw(f, true, 0, 1, wbuf), 0);
	ft_run(f);
	cr_assert_eq(f->ndone, 2);
	cr_assert_eq(f->done[1].err, -EAGAIN);
	cr_assert_eq(f->done[1].tries, 4);
	cr_assert_eq(f->done[1].status, SCSI_STATUS_BUSY);
	fx_free(f);
}

Test(iscsi_sess, reservation_conflict_is_fatal)
{
	struct fx *f = fx_up(false, false);

	f->inj_status = SCSI_STATUS_RESERVATION_CONFLICT;
	f->inj_count = 1;
	cr_assert_geq(submit_rw(f, true, 0, 1, wbuf), 0);
	ft_run(f);
	cr_assert_eq(f->ndone, 1);
	cr_assert_eq(f->done[0].err, -EACCES);
	cr_assert_eq(f->done[0].disp, SCSI_DISP_CONFLICT);
	cr_assert_eq(f->done[0].tries, 1);
	cr_assert_eq(f->s.state, ISCSI_SESS_FULL);	/* the session lives on */
	fx_free(f);
}

/* One hostile PDU against a session with a read and a write in flight. */
static int hostile(int kind)
{
	struct fx *f = fx_up(false, false);
	struct iscsi_bhs h;
	uint32_t ritt, witt;
	int rc;

	f->hold = true;
	submit_rw(f, false, 0, 2, rbuf);
	submit_rw(f, true, 8, 2, wbuf);
	ft_run(f);
	ritt = f->s.task[0].itt;
	witt = f->s.task[1].itt;
	switch (kind) {
	case 0:			/* Reject */
		h = rsp(ISCSI_OP_REJECT, ISCSI_RSVD_TAG);
		h.b2 = 4;
		h.sn = f->statsn;
		rc = ft_send(f, &h, f->disk, 48);
		break;
	case 1:			/* an unknown ITT */
		h = rsp(ISCSI_OP_SCSI_RSP, ritt ^ 0x100);
		h.sn = f->statsn;
		rc = ft_send(f, &h, NULL, 0);
		break;
	case 2:			/* StatSN out of window */
		h = rsp(ISCSI_OP_SCSI_RSP, ritt);
		h.sn = f->statsn + 5;
		rc = ft_send(f, &h, NULL, 0);
		break;
	case 3:			/* Data-In beyond the buffer */
		h = rsp(ISCSI_OP_DATA_IN, ritt);
		h.flags = 0;
		rc = ft_send(f, &h, f->disk, 2048);
		break;
	case 4:			/* R2T past the end of the write */
		h = rsp(ISCSI_OP_R2T, witt);
		h.ttt = 9;
		h.offset = 512;
		h.residual = 1024;
		rc = ft_send(f, &h, NULL, 0);
		break;
	case 5:			/* Data-In for a write */
		h = rsp(ISCSI_OP_DATA_IN, witt);
		h.flags = 0;
		rc = ft_send(f, &h, f->disk, 512);
		break;
	case 6:			/* a DataSN gap */
		h = rsp(ISCSI_OP_DATA_IN, ritt);
		h.flags = 0;
		h.seq = 1;
		rc = ft_send(f, &h, f->disk, 512);
		break;
	case 7:			/* Login Response in full-feature phase */
		h = rsp(ISCSI_OP_LOGIN_RSP, ritt);
		h.flags = 0;
		rc = ft_send(f, &h, NULL, 0);
		break;
	default:		/* a pong for a ping never sent */
		h = rsp(ISCSI_OP_NOP_IN, 0x1234fe);
		h.sn = f->statsn;
		rc = ft_send(f, &h, NULL, 0);
		break;
	}
	cr_assert_eq(rc, f->s.err);
	cr_assert_eq(f->s.state, ISCSI_SESS_DOWN);
	cr_assert_eq(iscsi_sess_inflight(&f->s, NULL, 0), 2);
	cr_assert_eq(f->ndone, 0);
	fx_free(f);
	return rc;
}

Test(iscsi_sess, hostile_sequences_fail_distinctly)
{
	cr_assert_eq(hostile(0), -ECONNABORTED);
	cr_assert_eq(hostile(1), -ENOENT);
	cr_assert_eq(hostile(2), -ERANGE);
	cr_assert_eq(hostile(3), -EOVERFLOW);
	cr_assert_eq(hostile(4), -EPROTO);
	cr_assert_eq(hostile(5), -EPROTO);
	cr_assert_eq(hostile(6), -EPROTO);
	cr_assert_eq(hostile(7), -EPROTO);
	cr_assert_eq(hostile(8), -ENOENT);
}

Test(iscsi_sess, logout_and_send_failure)
{
	struct fx *f = fx_up(false, false);

	cr_assert_geq(submit_rw(f, false, 0, 1, rbuf), 0);
	f->hold = true;
	cr_assert_geq(submit_rw(f, false, 0, 1, rbuf), 0);
	ft_run(f);
	cr_assert_eq(iscsi_sess_logout(&f->s), -EBUSY);
	f->hold = false;
	ft_release(f, 2);
	cr_assert_eq(iscsi_sess_logout(&f->s), 0);
	ft_run(f);
	cr_assert_eq(f->s.state, ISCSI_SESS_CLOSED);
	cr_assert(has_event(f, ISCSI_SESS_EV_LOGGED_OUT, 0));
	cr_assert_eq(submit_rw(f, false, 0, 1, rbuf), -EPIPE);
	fx_free(f);

	f = fx_up(false, false);
	f->send_rc = -ENOBUFS;
	cr_assert_geq(submit_rw(f, false, 0, 1, rbuf), 0);
	cr_assert_eq(f->s.state, ISCSI_SESS_DOWN);
	cr_assert_eq(f->s.err, -ENOBUFS);
	cr_assert_eq(iscsi_sess_pending(&f->s), 1);
	f->send_rc = 0;
	ft_drop(f);
	fx_login(f);
	ft_run(f);
	cr_assert_eq(f->ndone, 1);
	fx_free(f);
}

/* ---- fuzz ---- */

static uint32_t rng;

static uint32_t rnd(void)
{
	rng = rng * 1103515245u + 12345u;
	return rng >> 8;
}

static const uint8_t tops[] = {
	ISCSI_OP_NOP_IN, ISCSI_OP_SCSI_RSP, ISCSI_OP_TMF_RSP, ISCSI_OP_LOGIN_RSP,
	ISCSI_OP_TEXT_RSP, ISCSI_OP_DATA_IN, ISCSI_OP_LOGOUT_RSP, ISCSI_OP_R2T,
	ISCSI_OP_ASYNC, ISCSI_OP_REJECT,
};

/* Near-valid values: known tags, StatSN and offsets close to right. */
static uint32_t pick_tag(struct fx *f)
{
	switch (rnd() % 4) {
	case 0:
		return f->s.task[rnd() % 8].itt;
	case 1:
		return ISCSI_RSVD_TAG;
	case 2:
		return f->s.ping_itt;
	default:
		return rnd();
	}
}

static void fuzz_pdu(struct fx *f, uint8_t *data)
{
	struct iscsi_rx_pdu p;

	memset(&p, 0, sizeof(p));
	p.bhs.opcode = tops[rnd() % sizeof(tops)];
	p.bhs.flags = (uint8_t)rnd();
	p.bhs.b2 = rnd() % 3 ? 0 : (uint8_t)rnd();
	p.bhs.b3 = (uint8_t)(rnd() % 2 ? 0 : (rnd() % 3 ? 0x02 : (uint8_t)rnd()));
	p.bhs.itt = pick_tag(f);
	p.bhs.ttt = rnd() % 2 ? ISCSI_RSVD_TAG : rnd() % 64;
	p.bhs.sn = f->s.exp_statsn + (rnd() % 4 ? 0 : rnd() % 5 - 2);
	p.bhs.exp_sn = f->s.exp_cmdsn + rnd() % 3 - 1;
	p.bhs.max_cmdsn = p.bhs.exp_sn + (rnd() % 4 ? rnd() % 8 : rnd());
	p.bhs.seq = rnd() % 3;
	p.bhs.offset = rnd() % 3 ? (rnd() % 4) * 512 : rnd();
	p.bhs.residual = rnd() % 3 ? (rnd() % 4) * 512 : rnd();
	p.bhs.lun = rnd() % 2 ? (uint64_t)rnd() << 32 | 0x1234 : 0;
	p.bhs.status_class = rnd() % 4 ? 0 : (uint8_t)rnd();
	p.dlen = rnd() % 3 ? 0 : rnd() % 4096;
	p.bhs.dlen = p.dlen;
	for (uint32_t i = 0; i < p.dlen; i++)
		data[i] = rnd() % 2 ? (uint8_t)"A=B\0CHAP_C=0x12\0SenseLength"[i % 28] : (uint8_t)rnd();
	if (p.dlen >= 2 && rnd() % 2) {
		data[0] = 0;
		data[1] = (uint8_t)(rnd() % 24);
	}
	p.data = p.dlen ? data : NULL;
	iscsi_sess_recv(&f->s, &p, f->now);
}

Test(iscsi_sess, fuzz_random_pdus)
{
	static uint8_t data[4096];
	static uint8_t buf[8][4096];
	unsigned done_by_cookie[300];
	unsigned submitted = 0, logins = 0;

	rng = 7;
	for (int round = 0; round < 400; round++) {
		struct fx *f = fx_new(round % 3 == 0, round % 6 == 0);

		unsigned sub0 = submitted;

		memset(done_by_cookie, 0, sizeof(done_by_cookie));
		f->cfg.nop_interval_ms = 50;
		f->cfg.timeout_ms = 200;
		f->cfg.want.initial_r2t = rnd() % 2;
		cr_assert_eq(iscsi_sess_init(&f->s, &f->cfg, &ops, f), 0);
		for (int step = 0; step < 300; step++) {
			unsigned r = rnd() % 16;

			f->now += rnd() % 40;
			if (f->s.state == ISCSI_SESS_DOWN && r < 4) {
				ft_drop(f);
				if (iscsi_sess_connect(&f->s, f->now, 1, i_chal, sizeof(i_chal)) == 0 &&
				    rnd() % 2) {
					ft_run(f);
					logins += f->s.state == ISCSI_SESS_FULL;
				}
				f->qh = f->qt;
			} else if (r < 7) {
				unsigned c = rnd() % 8;
				struct iscsi_sess_req q = { .cdb_len = 10, .len = 512 * (1 + rnd() % 8),
							    .buf = buf[c], .cookie = (void *)(uintptr_t)
							    (submitted - sub0) };

				q.dir = rnd() % 2 ? ISCSI_SESS_READ : ISCSI_SESS_WRITE;
				q.cdb[0] = q.dir == ISCSI_SESS_READ ? 0x28 : 0x2a;
				if (iscsi_sess_submit(&f->s, &q) >= 0)
					submitted++;
			} else if (r < 8) {
				iscsi_sess_tick(&f->s, f->now);
			} else if (r < 9 && rnd() % 8 == 0) {
				iscsi_sess_conn_lost(&f->s, -EPIPE);
			} else {
				fuzz_pdu(f, data);
			}
			f->qh = f->qt;	/* the fake target stays silent */
			cr_assert_leq(iscsi_sess_pending(&f->s), ISCSI_SESS_TASKS);
		}
		/* Every submission completes at most once: completions plus
		 * what is still pending is exactly what was submitted. */
		for (unsigned k = 0; k < f->ndone; k++)
			cr_assert_leq(++done_by_cookie[(uintptr_t)f->done[k].cookie], 1);
		cr_assert_eq(f->ndone + iscsi_sess_pending(&f->s), submitted - sub0);
		fx_free(f);
	}
	cr_expect_gt(logins, 50, "logins %u", logins);
}
