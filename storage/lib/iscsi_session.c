/*
 * iSCSI initiator session state machine (RFC 7143), ErrorRecoveryLevel 0,
 * one connection.  See iscsi_session.h for the contract.
 */
#include <errno.h>
#include <string.h>

#include "storage/lib/iscsi_session.h"

#define SLOT_PING	0xfe	/* ITT low byte of our NOP-Out pings */
#define SLOT_CTL	0xfd	/* ... of login, text and logout requests */
#define LOGIN_ROUNDS	16	/* Login Responses we take before giving up */

/* CHAP steps inside the security stage (RFC 7143 12.1.3). */
enum { LS_AUTH, LS_CHAP_A, LS_CHAP_R };

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* RFC 1982: a <= b. */
static bool sn_le(uint32_t a, uint32_t b)
{
	return !iscsi_sn_lt(b, a);
}

/* A fresh tag for slot: an issue counter above, the slot below. */
static uint32_t new_itt(struct iscsi_sess *s, unsigned slot)
{
	s->itt_gen = (s->itt_gen + 1) & 0xffffff;
	return s->itt_gen << 8 | slot;
}

static void emit(struct iscsi_sess *s, enum iscsi_sess_event ev, int err, uint32_t arg,
		 const char *why)
{
	if (s->ops.event)
		s->ops.event(s->ctx, ev, err, arg, why);
}

/* Put the active tasks back in the queue and list them, oldest first. */
static void requeue_inflight(struct iscsi_sess *s)
{
	s->ninflight = 0;
	for (;;) {
		struct iscsi_sess_task *best = NULL;

		for (unsigned i = 0; i < ISCSI_SESS_TASKS; i++) {
			struct iscsi_sess_task *t = &s->task[i];

			if (t->state == ISCSI_SESS_T_ACTIVE && (!best || t->order < best->order))
				best = t;
		}
		if (!best)
			return;
		best->state = ISCSI_SESS_T_QUEUED;
		s->inflight[s->ninflight++] = (uint8_t)(best - s->task);
	}
}

/*
 * The connection has failed (RFC 7143 7.1.2: at ERL 0 the session with
 * it).  Tasks without status wait for the next login.
 */
static int fail_conn(struct iscsi_sess *s, int err, const char *why)
{
	if (s->state == ISCSI_SESS_DOWN || s->state == ISCSI_SESS_CLOSED)
		return err;
	s->state = ISCSI_SESS_DOWN;
	s->err = err;
	s->why = why;
	s->ping_busy = false;
	s->ctl_busy = false;
	s->st_out = NULL;
	requeue_inflight(s);
	emit(s, ISCSI_SESS_EV_FAILED, err, s->ninflight, why);
	return err;
}

static int xmit(struct iscsi_sess *s, struct iscsi_bhs *h, const void *data, uint32_t dlen)
{
	int rc;

	h->dlen = dlen;
	rc = s->ops.send(s->ctx, h, dlen ? data : NULL, dlen);
	if (rc)
		return fail_conn(s, rc < 0 ? rc : -EIO, "send failed");
	return 0;
}

/* Take a StatSN that advances: at ERL 0 status arrives in order (4.2.2.2). */
static int take_statsn(struct iscsi_sess *s, uint32_t sn)
{
	if (sn != s->exp_statsn)
		return fail_conn(s, -ERANGE, "StatSN out of order");
	s->exp_statsn = sn + 1;
	return 0;
}

/* RFC 7143 4.2.2.1: ignore a window with MaxCmdSN < ExpCmdSN - 1; never
 * move either value back. */
static int update_window(struct iscsi_sess *s, uint32_t exp, uint32_t max)
{
	if (iscsi_sn_lt(max, exp - 1))
		return 0;
	if (iscsi_sn_lt(s->cmdsn, exp))
		return fail_conn(s, -EPROTO, "ExpCmdSN beyond the commands sent");
	if (iscsi_sn_lt(s->exp_cmdsn, exp))
		s->exp_cmdsn = exp;
	if (iscsi_sn_lt(s->max_cmdsn, max))
		s->max_cmdsn = max;
	return 0;
}

/* ---- setup ---- */

int iscsi_sess_init(struct iscsi_sess *s, const struct iscsi_sess_cfg *cfg,
		    const struct iscsi_sess_ops *ops, void *ctx)
{
	struct iscsi_neg probe;

	if (!cfg || !ops || !ops->send || !cfg->initiator_name ||
	    (!cfg->discovery && !cfg->target_name) || cfg->isid >> 48 ||
	    iscsi_neg_init(&probe, &cfg->want, cfg->discovery))
		return -EINVAL;
	if (cfg->want.auth == ISCSI_AUTH_CHAP &&
	    (!cfg->chap || !cfg->md5 || iscsi_chap_cfg_check(cfg->chap, NULL)))
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	s->ops = *ops;
	s->ctx = ctx;
	s->state = ISCSI_SESS_DOWN;
	s->cmdsn = 1;
	return 0;
}

/* ---- login (RFC 7143 6.3, 11.12) ---- */

static int login_send(struct iscsi_sess *s, bool transit, int nsg, size_t len)
{
	struct iscsi_bhs h;

	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_LOGIN_REQ;
	h.immediate = true;
	h.flags = (uint8_t)(s->stage << 2);
	if (transit)
		h.flags |= ISCSI_F_TRANSIT | (uint8_t)nsg;
	h.lun = s->cfg.isid << 16;		/* TSIH 0: a leading login */
	h.itt = s->ctl_itt;
	h.sn = s->cmdsn;			/* not advanced by Login (4.2.2.1) */
	h.exp_sn = s->exp_statsn;
	s->login_transit = transit;
	s->ctl_sent_ms = s->now_ms;
	return xmit(s, &h, s->txt, (uint32_t)len);
}

int iscsi_sess_connect(struct iscsi_sess *s, uint32_t now, uint8_t chap_id,
		       const uint8_t *chap_c, size_t chap_clen)
{
	struct iscsi_text_buf tb;
	bool chap = s->cfg.want.auth == ISCSI_AUTH_CHAP;

	if (s->state != ISCSI_SESS_DOWN)
		return -EALREADY;
	s->state = ISCSI_SESS_LOGIN;
	s->now_ms = s->last_rx_ms = now;
	s->stage = ISCSI_STAGE_SECURITY;
	s->lstep = LS_AUTH;
	s->lrounds = 0;
	s->rtxt_len = 0;
	s->tsih = 0;
	s->ctl_busy = true;
	s->ctl_itt = new_itt(s, SLOT_CTL);
	s->my_chap_id = chap_id;
	s->my_chap_c = chap_c;
	s->my_chap_clen = chap_clen;
	iscsi_neg_init(&s->neg, &s->cfg.want, s->cfg.discovery);
	iscsi_chap_init(&s->chap);
	iscsi_text_buf_init(&tb, s->txt, sizeof(s->txt));
	iscsi_text_add(&tb, "InitiatorName", s->cfg.initiator_name);
	if (s->cfg.discovery) {
		iscsi_text_add(&tb, "SessionType", "Discovery");
	} else {
		iscsi_text_add(&tb, "SessionType", "Normal");
		iscsi_text_add(&tb, "TargetName", s->cfg.target_name);
	}
	iscsi_neg_offer(&s->neg, ISCSI_STAGE_SECURITY, &tb);
	if (tb.err)
		return fail_conn(s, -EINVAL, "login text does not fit");
	/* 6.3.1: with no authentication we may ask to leave at once. */
	return login_send(s, !chap, ISCSI_STAGE_OPERATIONAL, tb.len);
}

/* Apply the target's keys; answers to its offers go into tb. */
static int login_keys(struct iscsi_sess *s, struct iscsi_text_buf *tb)
{
	struct iscsi_text_iter it;
	struct iscsi_kv kv;
	const char *why = NULL;
	int rc;

	iscsi_text_iter_init(&it, s->rtxt, s->rtxt_len);
	while ((rc = iscsi_text_next(&it, &kv, &why)) == 1) {
		if (s->stage == ISCSI_STAGE_SECURITY) {
			rc = iscsi_chap_recv(&s->chap, &kv, &why);
			if (rc == 1)
				continue;
			if (rc < 0)
				return fail_conn(s, -EPROTO, why);
		}
		rc = iscsi_neg_recv(&s->neg, &kv, tb, &why);
		if (rc == 1)
			rc = iscsi_neg_unknown(&kv, tb);
		if (rc)
			return fail_conn(s, -EPROTO, why ? why : "login key");
	}
	if (rc < 0)
		return fail_conn(s, -EPROTO, why);
	if (tb->err)
		return fail_conn(s, -EPROTO, "login answer does not fit");
	return 0;
}

static int enter_full(struct iscsi_sess *s, const struct iscsi_bhs *h);

/* Leave the security stage: CHAP must be finished, and mutual CHAP must
 * have proved the target (12.1.3). */
static int leave_security(struct iscsi_sess *s, struct iscsi_text_buf *tb)
{
	const char *why = NULL;

	if (s->cfg.want.auth == ISCSI_AUTH_CHAP) {
		if (s->lstep != LS_CHAP_R)
			return fail_conn(s, -EACCES, "target skipped CHAP");
		if (s->cfg.chap->mutual &&
		    iscsi_chap_verify(&s->chap, s->cfg.chap, s->cfg.md5, &why))
			return fail_conn(s, -EACCES, why);
	}
	s->stage = ISCSI_STAGE_OPERATIONAL;
	/* Full of answers to the target's keys: its doing, not ours. */
	if (iscsi_neg_offer(&s->neg, ISCSI_STAGE_OPERATIONAL, tb))
		return fail_conn(s, -EPROTO, "login answer does not fit");
	return login_send(s, true, ISCSI_STAGE_FULL_FEATURE, tb->len);
}

/* The security stage goes on: the next CHAP step. */
static int security_step(struct iscsi_sess *s, struct iscsi_text_buf *tb)
{
	const char *why = NULL;
	int rc;

	if (s->cfg.want.auth != ISCSI_AUTH_CHAP)
		return login_send(s, true, ISCSI_STAGE_OPERATIONAL, tb->len);
	switch (s->lstep) {
	case LS_AUTH:
		if (s->neg.cur.auth != ISCSI_AUTH_CHAP)
			return fail_conn(s, -EACCES, "target did not accept CHAP");
		if (iscsi_chap_offer(tb))
			return fail_conn(s, -EPROTO, "login answer does not fit");
		s->lstep = LS_CHAP_A;
		return login_send(s, false, 0, tb->len);
	case LS_CHAP_A:
		rc = iscsi_chap_answer(&s->chap, s->cfg.chap, s->cfg.md5, s->my_chap_id,
				       s->my_chap_c, s->my_chap_clen, tb, &why);
		if (rc)
			return fail_conn(s, rc == -EACCES ? -EACCES : -EPROTO, why);
		s->lstep = LS_CHAP_R;
		return login_send(s, true, ISCSI_STAGE_OPERATIONAL, tb->len);
	default:
		return login_send(s, true, ISCSI_STAGE_OPERATIONAL, tb->len);
	}
}

/* Login status class/detail (RFC 7143 11.13.5) to an errno. */
static int login_refused(struct iscsi_sess *s, const struct iscsi_bhs *h)
{
	if (h->status_class == 2 && h->status_detail == 1)
		return fail_conn(s, -EACCES, "login: authentication failed");
	if (h->status_class == 1)
		return fail_conn(s, -ECONNREFUSED, "login: target moved (redirect)");
	if (h->status_class == 2)
		return fail_conn(s, -ECONNREFUSED, "login: initiator error");
	return fail_conn(s, -ECONNREFUSED, "login: target error");
}

static int append_rtxt(struct iscsi_sess *s, const struct iscsi_rx_pdu *p)
{
	if (p->dlen > sizeof(s->rtxt) - s->rtxt_len)
		return fail_conn(s, -EPROTO, "text response too long");
	if (p->dlen)
		memcpy(s->rtxt + s->rtxt_len, p->data, p->dlen);
	s->rtxt_len += p->dlen;
	return 0;
}

static int recv_login(struct iscsi_sess *s, const struct iscsi_rx_pdu *p)
{
	const struct iscsi_bhs *h = &p->bhs;
	struct iscsi_text_buf tb;
	int csg = ISCSI_LOGIN_CSG(h->flags), nsg = ISCSI_LOGIN_NSG(h->flags);
	bool transit = h->flags & ISCSI_F_TRANSIT;

	if (h->opcode != ISCSI_OP_LOGIN_RSP)
		return fail_conn(s, -EPROTO, "not a Login Response during login");
	if (h->itt != s->ctl_itt)
		return fail_conn(s, -ENOENT, "Login Response for another ITT");
	if (h->status_class)
		return login_refused(s, h);
	if (++s->lrounds > LOGIN_ROUNDS)
		return fail_conn(s, -EPROTO, "login does not end");
	s->exp_statsn = h->sn + 1;
	s->exp_cmdsn = h->exp_sn;
	s->max_cmdsn = h->max_cmdsn;
	s->tsih = ISCSI_LOGIN_TSIH(h->lun);
	if (csg != s->stage || (transit && (!s->login_transit || (h->flags & ISCSI_F_CONTINUE))))
		return fail_conn(s, -EPROTO, "Login Response in the wrong stage");
	if (append_rtxt(s, p))
		return s->err;
	iscsi_text_buf_init(&tb, s->txt, sizeof(s->txt));
	if (h->flags & ISCSI_F_CONTINUE)	/* 6.1: more text follows */
		return login_send(s, false, 0, 0);
	if (login_keys(s, &tb))
		return s->err;
	s->rtxt_len = 0;
	if (!transit)
		return s->stage == ISCSI_STAGE_SECURITY ? security_step(s, &tb)
			: login_send(s, true, ISCSI_STAGE_FULL_FEATURE, tb.len);
	if (s->stage == ISCSI_STAGE_SECURITY && nsg == ISCSI_STAGE_OPERATIONAL)
		return leave_security(s, &tb);
	if (s->stage == ISCSI_STAGE_OPERATIONAL && nsg == ISCSI_STAGE_FULL_FEATURE)
		return enter_full(s, h);
	return fail_conn(s, -EPROTO, "Login Response moves to a stage we did not ask");
}

static int pump(struct iscsi_sess *s);

static int enter_full(struct iscsi_sess *s, const struct iscsi_bhs *h)
{
	const char *why = NULL;

	if (iscsi_neg_done(&s->neg, &s->params, &why))
		return fail_conn(s, -EPROTO, why);
	if (iscsi_sn_lt(h->max_cmdsn, h->exp_sn - 1))
		return fail_conn(s, -EPROTO, "login ends with a bad command window");
	s->cmdsn = h->exp_sn;
	s->state = ISCSI_SESS_FULL;
	s->ctl_busy = false;
	s->ping_busy = false;
	emit(s, ISCSI_SESS_EV_LOGGED_IN, 0, s->tsih, NULL);
	return pump(s);
}

/* ---- commands and data (RFC 7143 11.3, 11.7, 11.8, 11.9) ---- */

static struct iscsi_sess_task *find_task(struct iscsi_sess *s, uint32_t itt)
{
	unsigned slot = itt & 0xff;

	if (slot >= ISCSI_SESS_TASKS || s->task[slot].state != ISCSI_SESS_T_ACTIVE ||
	    s->task[slot].itt != itt)
		return NULL;
	return &s->task[slot];
}

/* Data-Out PDUs for buf[off..off+n), each within the target's
 * MaxRecvDataSegmentLength (13.12), F on the last (11.7.1). */
static int send_data_out(struct iscsi_sess *s, struct iscsi_sess_task *t, uint32_t off,
			 uint32_t n, uint32_t ttt, uint64_t lun)
{
	uint32_t seg = s->params.target_max_recv_dsl, dsn = 0;

	while (n) {
		struct iscsi_bhs h;
		uint32_t chunk = min_u32(n, seg);

		memset(&h, 0, sizeof(h));
		h.opcode = ISCSI_OP_DATA_OUT;
		h.flags = chunk == n ? ISCSI_F_FINAL : 0;
		h.lun = lun;
		h.itt = t->itt;
		h.ttt = ttt;
		h.exp_sn = s->exp_statsn;
		h.seq = dsn++;
		h.offset = off;
		if (xmit(s, &h, (uint8_t *)t->req.buf + off, chunk))
			return s->err;
		off += chunk;
		n -= chunk;
	}
	return 0;
}

/*
 * Issue a task as a new command: immediate data up to FirstBurstLength
 * (13.11, 13.14), then unsolicited Data-Out up to FirstBurstLength when
 * InitialR2T=No (13.10); R2Ts ask for the rest.
 */
static int issue(struct iscsi_sess *s, struct iscsi_sess_task *t)
{
	const struct iscsi_sess_req *r = &t->req;
	bool w = r->dir == ISCSI_SESS_WRITE;
	uint32_t fb = w ? min_u32(r->len, s->params.first_burst) : 0, imm = 0, unsol = 0;
	struct iscsi_bhs h;

	t->itt = new_itt(s, (unsigned)(t - s->task));
	t->got = t->data_sn = t->r2t_sn = 0;
	t->tries++;
	t->state = ISCSI_SESS_T_ACTIVE;
	iscsi_bhs_scsi_cmd(&h, r->lun, t->itt, r->cdb, r->cdb_len,
			   r->dir == ISCSI_SESS_READ, w, r->len);
	if (w && s->params.immediate_data)
		imm = min_u32(fb, s->params.target_max_recv_dsl);
	if (w && !s->params.initial_r2t)
		unsol = fb - imm;
	if (unsol)
		h.flags &= (uint8_t)~ISCSI_F_FINAL;	/* 11.3.1: Data-Out follows */
	h.sn = s->cmdsn++;
	h.exp_sn = s->exp_statsn;
	if (xmit(s, &h, r->buf, imm))
		return s->err;
	return unsol ? send_data_out(s, t, imm, unsol, ISCSI_RSVD_TAG, r->lun) : 0;
}

/* Send queued tasks, oldest first, while CmdSN is inside the window
 * (3.2.2.1: never beyond MaxCmdSN). */
static int pump(struct iscsi_sess *s)
{
	while (s->state == ISCSI_SESS_FULL && sn_le(s->cmdsn, s->max_cmdsn)) {
		struct iscsi_sess_task *best = NULL;

		for (unsigned i = 0; i < ISCSI_SESS_TASKS; i++) {
			struct iscsi_sess_task *t = &s->task[i];

			if (t->state != ISCSI_SESS_T_QUEUED || (s->hold && !t->req.ctl))
				continue;
			if (!best || t->order < best->order)
				best = t;
		}
		if (!best)
			return 0;
		if (issue(s, best))
			return s->err;
	}
	return 0;
}

static void complete(struct iscsi_sess *s, struct iscsi_sess_task *t, struct iscsi_sess_done *d)
{
	d->slot = (unsigned)(t - s->task);
	d->cookie = t->req.cookie;
	d->tries = t->tries;
	t->state = ISCSI_SESS_T_FREE;	/* before the callback: it may submit */
	if (s->ops.done)
		s->ops.done(s->ctx, d);
}

/* Status arrived: complete the task, or queue it again for a retry. */
static void finish(struct iscsi_sess *s, struct iscsi_sess_task *t, const struct iscsi_bhs *h,
		   const uint8_t *sense, size_t slen)
{
	struct iscsi_sess_done d;

	memset(&d, 0, sizeof(d));
	d.status = h->b3;
	d.xfer = t->got;
	d.underflow = h->flags & ISCSI_F_UNDERFLOW;
	d.overflow = h->flags & ISCSI_F_OVERFLOW;
	if (d.underflow || d.overflow)
		d.residual = h->residual;
	d.disp = scsi_classify(h->b3, sense, slen, &d.sense, &d.why);
	switch (d.disp) {
	case SCSI_DISP_OK:
		break;
	case SCSI_DISP_RETRY:
		if (t->retries < s->cfg.max_retries) {
			t->retries++;
			t->state = ISCSI_SESS_T_QUEUED;
			return;
		}
		d.err = -EAGAIN;
		break;
	case SCSI_DISP_CONFLICT:
		d.err = -EACCES;
		break;
	default:
		d.err = -EIO;
		break;
	}
	complete(s, t, &d);
}

static int recv_data_in(struct iscsi_sess *s, const struct iscsi_rx_pdu *p)
{
	const struct iscsi_bhs *h = &p->bhs;
	struct iscsi_sess_task *t = find_task(s, h->itt);

	if (!t)
		return fail_conn(s, -ENOENT, "Data-In for no task");
	if (t->req.dir != ISCSI_SESS_READ)
		return fail_conn(s, -EPROTO, "Data-In for a task that reads nothing");
	if (h->seq != t->data_sn)
		return fail_conn(s, -EPROTO, "Data-In DataSN out of order");
	/* DataPDUInOrder=Yes and DataSequenceInOrder=Yes (13.18, 13.19). */
	if (h->offset != t->got)
		return fail_conn(s, -EPROTO, "Data-In offset out of order");
	if (p->dlen > t->req.len - t->got)
		return fail_conn(s, -EOVERFLOW, "Data-In beyond the buffer");
	if ((h->flags & ISCSI_F_STATUS) && !(h->flags & ISCSI_F_FINAL))
		return fail_conn(s, -EPROTO, "Data-In with S but not F");
	if (p->dlen)
		memcpy((uint8_t *)t->req.buf + t->got, p->data, p->dlen);
	t->got += p->dlen;
	t->data_sn++;
	if (!(h->flags & ISCSI_F_STATUS))
		return 0;
	/* 11.7.4: status with the last Data-In, sense impossible there. */
	if (take_statsn(s, h->sn))
		return s->err;
	finish(s, t, h, NULL, 0);
	return 0;
}

static int recv_scsi_rsp(struct iscsi_sess *s, const struct iscsi_rx_pdu *p)
{
	const struct iscsi_bhs *h = &p->bhs;
	struct iscsi_sess_task *t = find_task(s, h->itt);
	const uint8_t *sense;
	size_t slen;

	if (!t)
		return fail_conn(s, -ENOENT, "SCSI Response for no task");
	if (take_statsn(s, h->sn))
		return s->err;
	if (iscsi_rsp_sense(p->data, p->dlen, &sense, &slen))
		return fail_conn(s, -EPROTO, "SCSI Response sense runs past the data");
	if (h->b2) {			/* 11.4.3: the target could not run it */
		struct iscsi_sess_done d;

		memset(&d, 0, sizeof(d));
		d.err = -EIO;
		d.disp = SCSI_DISP_FATAL;
		d.why = "target failure (iSCSI response)";
		d.xfer = t->got;
		complete(s, t, &d);
		return 0;
	}
	finish(s, t, h, sense, slen);
	return 0;
}

/* R2T (11.8): the target asks for buf[offset..offset+desired). */
static int recv_r2t(struct iscsi_sess *s, const struct iscsi_rx_pdu *p)
{
	const struct iscsi_bhs *h = &p->bhs;
	struct iscsi_sess_task *t = find_task(s, h->itt);
	uint32_t off = h->offset, n = h->residual;

	if (!t)
		return fail_conn(s, -ENOENT, "R2T for no task");
	if (t->req.dir != ISCSI_SESS_WRITE || h->ttt == ISCSI_RSVD_TAG)
		return fail_conn(s, -EPROTO, "R2T for a task that writes nothing");
	if (h->seq != t->r2t_sn)
		return fail_conn(s, -EPROTO, "R2TSN out of order");
	if (n == 0 || n > s->params.max_burst || off > t->req.len || n > t->req.len - off)
		return fail_conn(s, -EPROTO, "R2T outside the task or MaxBurstLength");
	t->r2t_sn++;
	return send_data_out(s, t, off, n, h->ttt, h->lun);
}

/* ---- NOP, text, logout, async (11.10, 11.14, 11.18, 11.19, 11.9) ---- */

static int nop_out(struct iscsi_sess *s, uint32_t itt, uint32_t ttt, uint64_t lun,
		   const void *data, uint32_t dlen)
{
	struct iscsi_bhs h;

	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_NOP_OUT;
	h.immediate = true;		/* a ping takes no CmdSN (11.18) */
	h.flags = ISCSI_F_FINAL;
	h.lun = lun;
	h.itt = itt;
	h.ttt = ttt;
	h.sn = s->cmdsn;
	h.exp_sn = s->exp_statsn;
	return xmit(s, &h, data, dlen);
}

static int recv_nop_in(struct iscsi_sess *s, const struct iscsi_rx_pdu *p)
{
	const struct iscsi_bhs *h = &p->bhs;

	if (h->itt == ISCSI_RSVD_TAG) {
		/* 11.19.2: a target ping; StatSN does not advance. Echo TTT,
		 * LUN and data (11.18.6). */
		if (h->ttt == ISCSI_RSVD_TAG)
			return 0;	/* unsolicited, no answer wanted */
		return nop_out(s, ISCSI_RSVD_TAG, h->ttt, h->lun, p->data,
			       min_u32(p->dlen, s->params.target_max_recv_dsl));
	}
	if (!s->ping_busy || h->itt != s->ping_itt)
		return fail_conn(s, -ENOENT, "NOP-In for no ping of ours");
	if (h->ttt != ISCSI_RSVD_TAG)
		return fail_conn(s, -EPROTO, "NOP-In answer with a TTT");
	if (take_statsn(s, h->sn))
		return s->err;
	s->ping_busy = false;
	return 0;
}

static int text_send(struct iscsi_sess *s, uint32_t ttt, const void *data, uint32_t dlen)
{
	struct iscsi_bhs h;

	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_TEXT_REQ;
	h.immediate = true;
	h.flags = ISCSI_F_FINAL;
	h.itt = s->ctl_itt;
	h.ttt = ttt;
	h.sn = s->cmdsn;
	h.exp_sn = s->exp_statsn;
	s->ctl_sent_ms = s->now_ms;
	return xmit(s, &h, data, dlen);
}

static int recv_text(struct iscsi_sess *s, const struct iscsi_rx_pdu *p)
{
	const struct iscsi_bhs *h = &p->bhs;
	const char *why = NULL;
	unsigned count = 0;
	int rc;

	if (!s->ctl_busy || !s->st_out || h->itt != s->ctl_itt)
		return fail_conn(s, -ENOENT, "Text Response for no request");
	if (take_statsn(s, h->sn) || append_rtxt(s, p))
		return s->err;
	/* 11.11.1: F clear, or C set: ask for the rest with its TTT. */
	if (!(h->flags & ISCSI_F_FINAL) || (h->flags & ISCSI_F_CONTINUE)) {
		if (h->ttt == ISCSI_RSVD_TAG)
			return fail_conn(s, -EPROTO, "Text Response continues without a TTT");
		return text_send(s, h->ttt, NULL, 0);
	}
	rc = iscsi_parse_sendtargets(s->rtxt, s->rtxt_len, s->st_out, s->st_max, &count, &why);
	s->ctl_busy = false;
	s->st_out = NULL;
	s->rtxt_len = 0;
	emit(s, ISCSI_SESS_EV_SENDTARGETS, rc, count, why);
	return 0;
}

static int recv_logout(struct iscsi_sess *s, const struct iscsi_rx_pdu *p)
{
	const struct iscsi_bhs *h = &p->bhs;

	if (s->state != ISCSI_SESS_LOGOUT || h->itt != s->ctl_itt)
		return fail_conn(s, -ENOENT, "Logout Response for no request");
	if (take_statsn(s, h->sn))
		return s->err;
	s->state = ISCSI_SESS_CLOSED;
	s->ctl_busy = false;
	emit(s, ISCSI_SESS_EV_LOGGED_OUT, h->b2 ? -EIO : 0, h->b2,
	     h->b2 ? "logout refused" : NULL);
	return 0;
}

static int recv_async(struct iscsi_sess *s, const struct iscsi_rx_pdu *p)
{
	if (take_statsn(s, p->bhs.sn))
		return s->err;
	emit(s, ISCSI_SESS_EV_ASYNC, 0, p->bhs.async_event, "async message");
	return 0;
}

static int recv_full(struct iscsi_sess *s, const struct iscsi_rx_pdu *p)
{
	const struct iscsi_bhs *h = &p->bhs;

	if (h->opcode == ISCSI_OP_REJECT)
		return fail_conn(s, -ECONNABORTED, "Reject");
	if (update_window(s, h->exp_sn, h->max_cmdsn))
		return s->err;
	switch (h->opcode) {
	case ISCSI_OP_DATA_IN:
		return recv_data_in(s, p);
	case ISCSI_OP_SCSI_RSP:
		return recv_scsi_rsp(s, p);
	case ISCSI_OP_R2T:
		return recv_r2t(s, p);
	case ISCSI_OP_NOP_IN:
		return recv_nop_in(s, p);
	case ISCSI_OP_TEXT_RSP:
		return recv_text(s, p);
	case ISCSI_OP_LOGOUT_RSP:
		return recv_logout(s, p);
	case ISCSI_OP_ASYNC:
		return recv_async(s, p);
	default:
		return fail_conn(s, -EPROTO, "opcode not expected in full-feature phase");
	}
}

int iscsi_sess_recv(struct iscsi_sess *s, const struct iscsi_rx_pdu *p, uint32_t now)
{
	int rc;

	if (s->state == ISCSI_SESS_DOWN || s->state == ISCSI_SESS_CLOSED)
		return -ENOTCONN;
	s->now_ms = s->last_rx_ms = now;
	if ((p->dlen && !p->data) || p->dlen != p->bhs.dlen)
		return fail_conn(s, -EINVAL, "PDU data segment inconsistent");
	if (s->state == ISCSI_SESS_LOGIN)
		return recv_login(s, p);
	rc = recv_full(s, p);
	if (!rc)
		rc = pump(s);
	return rc;
}

int iscsi_sess_tick(struct iscsi_sess *s, uint32_t now)
{
	uint32_t tmo = s->cfg.timeout_ms;

	s->now_ms = now;
	if (s->state == ISCSI_SESS_DOWN || s->state == ISCSI_SESS_CLOSED)
		return 0;
	if (tmo && s->ctl_busy && now - s->ctl_sent_ms >= tmo)
		return fail_conn(s, -ETIMEDOUT, "no answer to a login, text or logout request");
	if (s->state != ISCSI_SESS_FULL)
		return 0;
	if (s->ping_busy)
		return tmo && now - s->ping_sent_ms >= tmo
			? fail_conn(s, -ETIMEDOUT, "no answer to a NOP-Out ping") : 0;
	if (!s->cfg.nop_interval_ms || now - s->last_rx_ms < s->cfg.nop_interval_ms)
		return 0;
	s->ping_busy = true;
	s->ping_itt = new_itt(s, SLOT_PING);
	s->ping_sent_ms = now;
	return nop_out(s, s->ping_itt, ISCSI_RSVD_TAG, 0, NULL, 0);
}

void iscsi_sess_conn_lost(struct iscsi_sess *s, int err)
{
	fail_conn(s, err < 0 ? err : -ECONNRESET, "connection lost");
}

/* ---- requests ---- */

void iscsi_sess_hold(struct iscsi_sess *s, bool hold)
{
	s->hold = hold;
	if (!hold && s->state == ISCSI_SESS_FULL)
		pump(s);
}

static bool req_ok(const struct iscsi_sess_req *r)
{
	if (r->cdb_len == 0 || r->cdb_len > ISCSI_CDB_MAX)
		return false;
	if (r->dir == ISCSI_SESS_NONE)
		return r->len == 0;
	return (r->dir == ISCSI_SESS_READ || r->dir == ISCSI_SESS_WRITE) &&
	       (r->buf || !r->len);
}

int iscsi_sess_submit(struct iscsi_sess *s, const struct iscsi_sess_req *req)
{
	if (s->state == ISCSI_SESS_CLOSED || s->state == ISCSI_SESS_LOGOUT || s->cfg.discovery)
		return -EPIPE;
	if (!req_ok(req))
		return -EINVAL;
	for (unsigned i = 0; i < ISCSI_SESS_TASKS; i++) {
		struct iscsi_sess_task *t = &s->task[i];

		if (t->state != ISCSI_SESS_T_FREE)
			continue;
		memset(t, 0, sizeof(*t));
		t->req = *req;
		t->order = s->next_order++;
		t->state = ISCSI_SESS_T_QUEUED;
		pump(s);
		return (int)i;
	}
	return -EAGAIN;
}

int iscsi_sess_logout(struct iscsi_sess *s)
{
	struct iscsi_bhs h;

	if (s->state != ISCSI_SESS_FULL || s->ctl_busy)
		return -EALREADY;
	if (iscsi_sess_pending(s))
		return -EBUSY;
	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_LOGOUT_REQ;
	h.immediate = true;
	h.flags = ISCSI_F_FINAL | ISCSI_LOGOUT_SESSION;
	s->ctl_itt = new_itt(s, SLOT_CTL);
	h.itt = s->ctl_itt;
	h.sn = s->cmdsn;
	h.exp_sn = s->exp_statsn;
	s->state = ISCSI_SESS_LOGOUT;
	s->ctl_busy = true;
	s->ctl_sent_ms = s->now_ms;
	return xmit(s, &h, NULL, 0);
}

int iscsi_sess_sendtargets(struct iscsi_sess *s, struct iscsi_target *out, unsigned max)
{
	static const char req[] = "SendTargets=All";

	if (!s->cfg.discovery || !out || !max)
		return -EINVAL;
	if (s->state != ISCSI_SESS_FULL || s->ctl_busy)
		return -EALREADY;
	s->ctl_itt = new_itt(s, SLOT_CTL);
	s->ctl_busy = true;
	s->st_out = out;
	s->st_max = max;
	s->rtxt_len = 0;
	return text_send(s, ISCSI_RSVD_TAG, req, sizeof(req));
}

unsigned iscsi_sess_inflight(const struct iscsi_sess *s, unsigned *slots, unsigned max)
{
	for (unsigned i = 0; i < s->ninflight && i < max; i++)
		slots[i] = s->inflight[i];
	return s->ninflight;
}

unsigned iscsi_sess_pending(const struct iscsi_sess *s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < ISCSI_SESS_TASKS; i++)
		n += s->task[i].state != ISCSI_SESS_T_FREE;
	return n;
}
