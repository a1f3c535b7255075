/*
 * libFuzzer target for the iSCSI initiator (make fuzz): the session state
 * machine, the PDU codec and receiver, the text, CHAP, sense and CDB
 * modules, against whatever a hostile target sends.
 *
 * Input: FZI_HDR mode bytes (fuzz_iscsi.h), then the target's byte
 * stream.  The harness logs in (CHAP, mutual CHAP, digests, a discovery
 * session as the mode says), submits its tasks up front, feeds the stream
 * through iscsi_rx_feed() and hands every whole PDU to iscsi_sess_recv().
 * The clock moves by a fixed step per PDU, ticking before each, so when
 * pings and timeouts fire depends on the PDUs, not on how TCP cut the
 * bytes.  A failed connection is dropped and logged in again (at most
 * FZ_RECONNECTS times), and the rest of the stream is the new connection.
 *
 * Checked on the way, each a __builtin_trap():
 *  - every PDU the session sends encodes, decodes and encodes again to
 *    the same bytes; its data fits the target's MaxRecvDataSegmentLength
 *    (8192 during login, RFC 7143 13.12); commands go out in CmdSN order
 *    inside the window, held ones only when ctl; Data-Out stays inside
 *    the task's buffer, unsolicited data inside FirstBurstLength, solicited
 *    data exactly covers the R2T it answers; pings and echoes are what
 *    they answer;
 *  - every completion belongs to a submission not yet completed, with an
 *    err of the documented set and no more data than the buffer holds;
 *    completed plus pending is what was submitted;
 *  - connection failures carry the documented errnos;
 *  - the same input fed whole and in chunks does the same (hash).
 * Completed replies are parsed by the scsi_cdb.h parsers the disk layer
 * uses, so the target's data reaches them too.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/crc32c.h"
#include "storage/lib/scsi_cdb.h"
#include "tests/fuzz/fuzz_iscsi.h"
#include "tests/unit/iscsi_fake.h"

#define FZ_RECONNECTS	8
#define FZ_SUBS		48		/* submissions per input */
#define FZ_ST_MAX	8		/* SendTargets entries */
#define FZ_SEND_ERR	(-EPIPE)	/* what an injected send failure returns */
#define FZ_T0		0xfffff000u	/* the clock wraps during a run */
#define FZ_LOGIN_DSL	8192		/* MaxRecvDataSegmentLength during login */
#define FZ_MAX_DSL	65536
#define FZ_MAX_AHS	64

enum fz_kind {
	K_READ, K_WRITE, K_TUR, K_CTL, K_BIGWRITE,
	K_INQ, K_VPD83, K_LUNS, K_PRKEYS, K_PRRES, K_SYNC,
	K_NKINDS
};

static uint8_t b_read[4096], b_write[12288], b_ctl[SCSI_RC16_LEN], b_big[81920];
static uint8_t b_inq[96], b_vpd[255], b_luns[256], b_prkeys[256], b_prres[64];

struct fz_kind_def {
	uint8_t *buf;
	uint32_t len;
	enum iscsi_sess_dir dir;
};

static const struct fz_kind_def kinds[K_NKINDS] = {
	[K_READ] = { b_read, sizeof(b_read), ISCSI_SESS_READ },
	[K_WRITE] = { b_write, sizeof(b_write), ISCSI_SESS_WRITE },
	[K_TUR] = { NULL, 0, ISCSI_SESS_NONE },
	[K_CTL] = { b_ctl, sizeof(b_ctl), ISCSI_SESS_READ },
	[K_BIGWRITE] = { b_big, sizeof(b_big), ISCSI_SESS_WRITE },
	[K_INQ] = { b_inq, sizeof(b_inq), ISCSI_SESS_READ },
	[K_VPD83] = { b_vpd, sizeof(b_vpd), ISCSI_SESS_READ },
	[K_LUNS] = { b_luns, sizeof(b_luns), ISCSI_SESS_READ },
	[K_PRKEYS] = { b_prkeys, sizeof(b_prkeys), ISCSI_SESS_READ },
	[K_PRRES] = { b_prres, sizeof(b_prres), ISCSI_SESS_READ },
	[K_SYNC] = { NULL, 0, ISCSI_SESS_NONE },
};

/* Per-PDU clock steps (ms): around the ping interval and the timeout. */
static const uint32_t steps[8] = { 0, 1, 50, 700, 2999, 3000, 4000, 12000 };

struct fz_sub {
	enum fz_kind kind;
	int slot;
	bool done;
	bool again;		/* submitted again from done() */
};

struct fz {
	struct iscsi_sess s;
	struct iscsi_sess_cfg cfg;
	struct iscsi_chap_cfg chap;
	struct iscsi_rx rx;
	const uint8_t *m;
	uint32_t now;
	unsigned conn;			/* connections started */
	unsigned reconnects;
	bool stop;			/* out of reconnects, or logged out */
	unsigned sends;
	bool send_failed;		/* an injected failure awaits its event */
	bool in_lost;			/* inside iscsi_sess_conn_lost() */
	int lost_err;

	unsigned nsubs, ndone;
	struct fz_sub sub[FZ_SUBS];

	bool cmdsn_known;		/* full-feature phase of this connection */
	uint32_t next_cmdsn;

	/* The R2T being delivered, and the Data-Out answering it. */
	struct {
		bool on;
		uint32_t itt, ttt, next, dsn;
		uint64_t lun, end;
	} r2t;
	/* Unsolicited Data-Out after a command (InitialR2T=No). */
	struct {
		bool on;
		uint32_t itt, next, end, dsn;
	} unsol;
	/* The NOP-In or Text Response being delivered. */
	const struct iscsi_rx_pdu *in;

	struct iscsi_target st[FZ_ST_MAX];
	unsigned st_conn, lo_conn;
	bool st_done;

	const struct fzi_tap *tap;
	bool ending;
	uint64_t hash;
};

static struct fz fz;
static uint8_t fz_rxbuf[ISCSI_BHS_LEN + FZ_MAX_AHS + 2 * ISCSI_DIGEST_LEN + FZ_MAX_DSL];
static uint8_t fz_wire[ISCSI_BHS_LEN + 2 * ISCSI_DIGEST_LEN + ISCSI_DSL_MAX + 3];
static const uint8_t fz_chal[16] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6 };
static uint8_t ref_write[sizeof(b_write)], ref_big[sizeof(b_big)];
static bool bufs_ready;

static void fz_check(int cond)
{
	if (!cond)
		__builtin_trap();
}

static void fz_mix(uint64_t v)
{
	fz.hash = (fz.hash ^ v) * 0x100000001b3ull;
}

int fzi_md5(const struct iscsi_chunk *parts, unsigned n, uint8_t d[ISCSI_MD5_LEN])
{
	return iscsi_fake_md5(parts, n, d);
}

/* Every response is right: lets the fuzzer reach past mutual CHAP. */
static int md5_const(const struct iscsi_chunk *parts, unsigned n, uint8_t d[ISCSI_MD5_LEN])
{
	(void)parts, (void)n;
	memset(d, 0x5a, ISCSI_MD5_LEN);
	return 0;
}

static bool sn_le(uint32_t a, uint32_t b)
{
	return !iscsi_sn_lt(b, a);
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static bool full_phase(void)
{
	return fz.s.state == ISCSI_SESS_FULL || fz.s.state == ISCSI_SESS_LOGOUT;
}

/* ---- tasks ---- */

static void fz_req(enum fz_kind k, struct iscsi_sess_req *r)
{
	memset(r, 0, sizeof(*r));
	scsi_lun_encode(1, &r->lun);
	r->dir = kinds[k].dir;
	r->buf = kinds[k].buf;
	r->len = kinds[k].len;
	switch (k) {
	case K_READ:
	case K_WRITE:
		scsi_cdb_rw10(r->cdb, k == K_WRITE, k == K_WRITE ? 8 : 0, r->len / 512, false);
		r->cdb_len = 10;
		break;
	case K_TUR:
		scsi_cdb_tur(r->cdb);
		r->cdb_len = 6;
		break;
	case K_CTL:
		scsi_cdb_read_capacity16(r->cdb, r->len);
		r->cdb_len = 16;
		r->ctl = true;
		break;
	case K_BIGWRITE:
		scsi_cdb_rw16(r->cdb, true, 64, r->len / 512, true);
		r->cdb_len = 16;
		break;
	case K_INQ:
		scsi_cdb_inquiry(r->cdb, false, 0, (uint16_t)r->len);
		r->cdb_len = 6;
		break;
	case K_VPD83:
		scsi_cdb_inquiry(r->cdb, true, 0x83, (uint16_t)r->len);
		r->cdb_len = 6;
		break;
	case K_LUNS:
		scsi_cdb_report_luns(r->cdb, r->len);
		r->cdb_len = 12;
		break;
	case K_PRKEYS:
	case K_PRRES:
		scsi_cdb_pr_in(r->cdb, k == K_PRKEYS ? SCSI_PR_READ_KEYS : SCSI_PR_READ_RESERVATION,
			       (uint16_t)r->len);
		r->cdb_len = 10;
		break;
	case K_SYNC:
		scsi_cdb_sync10(r->cdb, 0, 0);
		r->cdb_len = 10;
		break;
	case K_NKINDS:
		break;
	}
}

static struct fz_sub *fz_submit(enum fz_kind k)
{
	struct iscsi_sess_req r;
	struct fz_sub *u;
	int rc;

	if (fz.nsubs == FZ_SUBS)
		return NULL;
	u = &fz.sub[fz.nsubs];
	memset(u, 0, sizeof(*u));
	u->kind = k;
	u->slot = -1;
	fz_req(k, &r);
	r.cookie = u;
	/* Counted first: the task may go out (and fail) inside submit. */
	fz.nsubs++;
	rc = iscsi_sess_submit(&fz.s, &r);
	fz_mix((uint64_t)rc << 8 | k);
	if (rc >= 0) {
		fz_check(rc < ISCSI_SESS_TASKS && fz.s.task[rc].req.cookie == u);
		u->slot = rc;
		return u;
	}
	fz_check(rc == -EAGAIN || (rc == -EPIPE && ((fz.m[0] & FZI_DISCOVERY) ||
						    fz.s.state == ISCSI_SESS_CLOSED ||
						    fz.s.state == ISCSI_SESS_LOGOUT)));
	fz.nsubs--;
	return NULL;
}

/* What the disk layer does with replies: parse them. */
static void fz_parse_reply(enum fz_kind k, uint32_t n)
{
	struct scsi_designator d;
	struct scsi_inquiry inq;
	struct scsi_capacity cap;
	struct scsi_pr_reservation res;
	uint64_t v[8];
	unsigned stored;
	uint32_t total, gen;
	size_t off = 0;
	int rc;

	switch (k) {
	case K_CTL:
		fz_mix((uint64_t)scsi_parse_capacity16(b_ctl, n, &cap));
		break;
	case K_INQ:
		if (!scsi_parse_inquiry(b_inq, n, &inq))
			fz_check(strlen(inq.vendor) < 9 && strlen(inq.product) < 17 &&
				 strlen(inq.revision) < 5);
		break;
	case K_VPD83:
		while ((rc = scsi_vpd83_next(b_vpd, n, &off, &d)) == 1)
			fz_check(d.id >= b_vpd && d.id + d.len <= b_vpd + n);
		if (!scsi_vpd83_lu_id(b_vpd, n, &d))
			fz_check(d.id >= b_vpd && d.id + d.len <= b_vpd + n);
		break;
	case K_LUNS:
		if (!scsi_parse_report_luns(b_luns, n, v, 8, &stored, &total))
			fz_check(stored <= 8 && stored <= total);
		for (unsigned i = 0; i < 8; i++)
			fz_mix((uint64_t)scsi_lun_decode(v[i]));
		break;
	case K_PRKEYS:
		if (!scsi_parse_pr_keys(b_prkeys, n, &gen, v, 8, &stored, &total))
			fz_check(stored <= 8 && stored <= total);
		break;
	case K_PRRES:
		fz_mix((uint64_t)scsi_parse_pr_reservation(b_prres, n, &res));
		break;
	default:
		break;
	}
}

static void fz_done(void *ctx, const struct iscsi_sess_done *d)
{
	struct fz_sub *u = d->cookie;
	const struct fz_kind_def *kd;
	char line[160];
	int len;

	(void)ctx;
	/* A submission of ours, completed once, from the slot it went to. */
	fz_check(u >= fz.sub && u < fz.sub + fz.nsubs && !u->done);
	fz_check(u->slot < 0 || d->slot == (unsigned)u->slot);
	fz_check(d->slot < ISCSI_SESS_TASKS && fz.s.task[d->slot].state == ISCSI_SESS_T_FREE);
	u->done = true;
	fz.ndone++;
	kd = &kinds[u->kind];
	fz_check(d->err == 0 || d->err == -EIO || d->err == -EACCES || d->err == -EAGAIN ||
		 d->err == -ECANCELED);
	fz_check((d->err == 0) == (d->disp == SCSI_DISP_OK) || d->err == -ECANCELED);
	fz_check(d->err == 0 || d->why);
	fz_check(d->xfer <= kd->len && (kd->dir == ISCSI_SESS_READ || d->xfer == 0));
	fz_check(d->tries >= 1 && d->tries <= fz.reconnects + 1 + FZI_C_RETRY(fz.m[3]));
	len = scsi_describe(line, sizeof(line), d->status, &d->sense);
	fz_check(len >= 0 && strlen(line) < sizeof(line));
	fz_mix((uint64_t)(u - fz.sub) << 40 ^ (uint64_t)(uint32_t)d->err << 8 ^ d->status ^
	       (uint64_t)d->xfer << 16);
	if (!d->err)
		fz_parse_reply(u->kind, d->xfer);
	/* The owner lets reissued I/O go once its ctl task is answered. */
	if (u->kind == K_CTL)
		iscsi_sess_hold(&fz.s, false);
	else if ((fz.m[1] & FZI_T_RESUBMIT) && !u->again) {
		struct fz_sub *v = fz_submit(u->kind);

		u->again = true;
		if (v)
			v->again = true;
	}
}

/* ---- events ---- */

static void fz_logged_in(void)
{
	const struct iscsi_params *p = &fz.s.params, *w = &fz.cfg.want;
	struct iscsi_rx_limits lim = fz.rx.lim;

	fz_check(fz.s.state == ISCSI_SESS_FULL);
	fz_check(p->max_recv_dsl == w->max_recv_dsl);
	fz_check(p->target_max_recv_dsl >= 512 && p->target_max_recv_dsl <= ISCSI_DSL_MAX);
	fz_check(p->first_burst <= p->max_burst && p->max_burst >= 512);
	/* Offers the target rejected keep the RFC default (6.2), so only
	 * what we never offered is checked: digests, and CHAP. */
	fz_check((!p->header_digest || w->header_digest) && (!p->data_digest || w->data_digest));
	fz_check(p->auth == w->auth && p->error_recovery_level == 0);
	/* Digests from the first full-feature PDU on (RFC 7143 13.1). */
	lim.header_digest = p->header_digest;
	lim.data_digest = p->data_digest;
	fz_check(iscsi_rx_set_limits(&fz.rx, &lim) == 0);
	fz.cmdsn_known = true;
	fz.next_cmdsn = fz.s.cmdsn;
	/* As the disk layer does: hold, then check the disk with a ctl task
	 * before the reissued I/O goes (the first one was submitted held). */
	if ((fz.m[1] & FZI_T_HOLD) && fz.conn > 1) {
		iscsi_sess_hold(&fz.s, true);
		fz_submit(K_CTL);
	}
}

static void fz_event(void *ctx, enum iscsi_sess_event ev, int err, uint32_t arg, const char *why)
{
	(void)ctx;
	fz_mix((uint64_t)ev << 40 ^ (uint64_t)(uint32_t)err << 8 ^ arg);
	switch (ev) {
	case ISCSI_SESS_EV_LOGGED_IN:
		fz_check(err == 0 && arg == fz.s.tsih);
		fz_logged_in();
		break;
	case ISCSI_SESS_EV_FAILED:
		fz_check(fz.s.state == ISCSI_SESS_DOWN && why && err < 0 &&
			 arg == fz.s.ninflight && arg <= ISCSI_SESS_TASKS);
		if (fz.in_lost)
			fz_check(err == fz.lost_err);
		else if (fz.send_failed)
			fz_check(err == FZ_SEND_ERR);
		else
			fz_check(err == -ECONNABORTED || err == -ENOENT || err == -ERANGE ||
				 err == -EOVERFLOW || err == -EPROTO || err == -ETIMEDOUT ||
				 err == -EACCES || err == -ECONNREFUSED);
		fz.send_failed = false;
		fz.cmdsn_known = false;
		fz.unsol.on = false;
		break;
	case ISCSI_SESS_EV_LOGGED_OUT:
		fz_check(fz.s.state == ISCSI_SESS_CLOSED && (err == 0 || err == -EIO));
		fz_check(iscsi_sess_pending(&fz.s) == 0);
		break;
	case ISCSI_SESS_EV_SENDTARGETS:
		fz_check(fz.cfg.discovery && arg <= FZ_ST_MAX);
		fz_check(err == 0 || err == -EBADMSG || err == -EINVAL || err == -ENAMETOOLONG ||
			 err == -E2BIG || err == -ENOSPC);
		for (unsigned i = 0; i < arg; i++) {
			const struct iscsi_target *t = &fz.st[i];

			fz_check(strnlen(t->name, sizeof(t->name)) <= ISCSI_NAME_MAX &&
				 t->nportals <= ISCSI_PORTALS_MAX);
			for (unsigned j = 0; j < t->nportals; j++)
				fz_check(strnlen(t->portals[j].host, ISCSI_HOST_MAX) < ISCSI_HOST_MAX);
		}
		fz.st_done = true;
		break;
	case ISCSI_SESS_EV_ASYNC:
		fz_check(full_phase());
		break;
	default:
		fz_check(0);
	}
}

/* ---- what the session sends ---- */

static struct iscsi_sess_task *fz_task(uint32_t itt)
{
	struct iscsi_sess_task *t;

	fz_check((itt & 0xff) < ISCSI_SESS_TASKS);
	t = &fz.s.task[itt & 0xff];
	fz_check(t->state == ISCSI_SESS_T_ACTIVE && t->itt == itt);
	return t;
}

static void fz_sent_login(const struct iscsi_bhs *h)
{
	int csg = ISCSI_LOGIN_CSG(h->flags), nsg = ISCSI_LOGIN_NSG(h->flags);

	fz_check(fz.s.state == ISCSI_SESS_LOGIN && h->immediate && h->itt == fz.s.ctl_itt);
	fz_check(csg == fz.s.stage && ISCSI_LOGIN_ISID(h->lun) == fz.cfg.isid &&
		 ISCSI_LOGIN_TSIH(h->lun) == 0 && h->sn == fz.s.cmdsn);
	if (h->flags & ISCSI_F_TRANSIT)
		fz_check(nsg > csg && !(h->flags & ISCSI_F_CONTINUE));
}

static void fz_sent_cmd(const struct iscsi_bhs *h, const void *data, uint32_t dlen)
{
	const struct iscsi_params *p = &fz.s.params;
	struct iscsi_sess_task *t = fz_task(h->itt);
	const struct iscsi_sess_req *r = &t->req;
	bool w = r->dir == ISCSI_SESS_WRITE;
	uint32_t fb = w ? min_u32(r->len, p->first_burst) : 0, unsol;

	fz_check(fz.s.state == ISCSI_SESS_FULL && fz.cmdsn_known && !h->immediate);
	fz_check(!fz.unsol.on && (!fz.s.hold || r->ctl));
	/* In order, one CmdSN each, never beyond MaxCmdSN (RFC 7143 3.2.2.1). */
	fz_check(h->sn == fz.next_cmdsn && sn_le(h->sn, fz.s.max_cmdsn));
	fz.next_cmdsn++;
	fz_check(h->ttt == r->len && h->lun == r->lun && !memcmp(h->cdb, r->cdb, r->cdb_len));
	fz_check(!(h->flags & ISCSI_F_CMD_READ) == (r->dir != ISCSI_SESS_READ));
	fz_check(!(h->flags & ISCSI_F_CMD_WRITE) == !w);
	/* Immediate data: the buffer's start, within FirstBurstLength. */
	if (dlen)
		fz_check(w && p->immediate_data && dlen <= fb && data == r->buf);
	unsol = w && !p->initial_r2t ? fb - dlen : 0;
	fz_check(!(h->flags & ISCSI_F_FINAL) == !!unsol);
	if (unsol)
		fz.unsol = (typeof(fz.unsol)){ true, h->itt, dlen, fb, 0 };
}

static void fz_sent_data(const struct iscsi_bhs *h, const void *data, uint32_t dlen)
{
	struct iscsi_sess_task *t = fz_task(h->itt);
	const struct iscsi_sess_req *r = &t->req;
	bool fin = h->flags & ISCSI_F_FINAL;

	fz_check(fz.s.state == ISCSI_SESS_FULL && r->dir == ISCSI_SESS_WRITE && dlen);
	fz_check(h->offset <= r->len && dlen <= r->len - h->offset &&
		 data == (const uint8_t *)r->buf + h->offset);
	if (h->ttt == ISCSI_RSVD_TAG) {
		fz_check(fz.unsol.on && h->itt == fz.unsol.itt && h->lun == r->lun);
		fz_check(h->offset == fz.unsol.next && h->seq == fz.unsol.dsn++);
		fz.unsol.next += dlen;
		fz_check(fz.unsol.next <= fz.unsol.end && fin == (fz.unsol.next == fz.unsol.end));
		fz.unsol.on = !fin;
		return;
	}
	fz_check(fz.r2t.on && h->itt == fz.r2t.itt && h->ttt == fz.r2t.ttt &&
		 h->lun == fz.r2t.lun);
	fz_check(h->offset == fz.r2t.next && h->seq == fz.r2t.dsn++);
	fz.r2t.next += dlen;
	fz_check(fz.r2t.next <= fz.r2t.end && fin == (fz.r2t.next == fz.r2t.end));
}

static void fz_sent_nop(const struct iscsi_bhs *h, const void *data, uint32_t dlen)
{
	const struct iscsi_rx_pdu *in = fz.in;

	fz_check(full_phase() && h->immediate && (h->flags & ISCSI_F_FINAL));
	if (h->itt == ISCSI_RSVD_TAG) {
		/* The answer to a target's ping: its TTT, LUN and data. */
		fz_check(in && in->bhs.opcode == ISCSI_OP_NOP_IN && in->bhs.itt == ISCSI_RSVD_TAG);
		fz_check(h->ttt == in->bhs.ttt && h->ttt != ISCSI_RSVD_TAG && h->lun == in->bhs.lun);
		fz_check(dlen == min_u32(in->dlen, fz.s.params.target_max_recv_dsl) &&
			 (!dlen || !memcmp(data, in->data, dlen)));
		return;
	}
	fz_check(fz.s.state == ISCSI_SESS_FULL && fz.s.ping_busy && h->itt == fz.s.ping_itt);
	fz_check(h->ttt == ISCSI_RSVD_TAG && !dlen);
}

static void fz_sent_text(const struct iscsi_bhs *h, const void *data, uint32_t dlen)
{
	static const char st[] = "SendTargets=All";

	fz_check(fz.cfg.discovery && fz.s.state == ISCSI_SESS_FULL && h->immediate);
	fz_check(h->itt == fz.s.ctl_itt && (h->flags & ISCSI_F_FINAL) &&
		 !(h->flags & ISCSI_F_CONTINUE));
	if (h->ttt == ISCSI_RSVD_TAG) {
		fz_check(dlen == sizeof(st) && !memcmp(data, st, sizeof(st)));
		return;
	}
	/* Asking for the rest of a continued response, with its TTT. */
	fz_check(fz.in && fz.in->bhs.opcode == ISCSI_OP_TEXT_RSP && h->ttt == fz.in->bhs.ttt &&
		 !dlen);
}

static int fz_send(void *ctx, const struct iscsi_bhs *h, const void *data, uint32_t dlen)
{
	bool ff = full_phase();
	bool hd = ff && fz.s.params.header_digest, dd = ff && fz.s.params.data_digest;
	uint8_t again[ISCSI_BHS_LEN];
	struct iscsi_bhs d;
	size_t len;

	(void)ctx;
	fz_check(h->dlen == dlen && !dlen == !data && iscsi_op_is_initiator(h->opcode));
	fz_check(dlen <= (ff ? fz.s.params.target_max_recv_dsl : FZ_LOGIN_DSL));
	/* The round trip: what the target decodes encodes to the same bytes. */
	fz_check(iscsi_pdu_build(h, data, dlen, hd, dd, fz_wire, sizeof(fz_wire), &len) == 0);
	fz_check(iscsi_bhs_decode(fz_wire, &d, NULL) == 0);
	fz_check(iscsi_bhs_encode(&d, again, NULL) == 0 && !memcmp(again, fz_wire, sizeof(again)));
	fz_check(d.opcode == h->opcode && d.flags == h->flags && d.itt == h->itt &&
		 d.dlen == dlen && d.exp_sn == fz.s.exp_statsn);
	switch (d.opcode) {
	case ISCSI_OP_LOGIN_REQ:
		fz_sent_login(&d);
		break;
	case ISCSI_OP_SCSI_CMD:
		fz_sent_cmd(&d, data, dlen);
		break;
	case ISCSI_OP_DATA_OUT:
		fz_sent_data(&d, data, dlen);
		break;
	case ISCSI_OP_NOP_OUT:
		fz_sent_nop(&d, data, dlen);
		break;
	case ISCSI_OP_TEXT_REQ:
		fz_sent_text(&d, data, dlen);
		break;
	case ISCSI_OP_LOGOUT_REQ:
		fz_check(fz.s.state == ISCSI_SESS_LOGOUT && d.itt == fz.s.ctl_itt && d.immediate);
		fz_check((d.flags & 0x7f) == ISCSI_LOGOUT_SESSION && iscsi_sess_pending(&fz.s) == 0);
		break;
	default:
		fz_check(0);
	}
	/* Immediate PDUs carry the next CmdSN without taking it (3.2.2.1). */
	if (d.opcode != ISCSI_OP_SCSI_CMD && d.opcode != ISCSI_OP_DATA_OUT && fz.cmdsn_known)
		fz_check(d.sn == fz.next_cmdsn);
	fz_mix(crc32c(CRC32C_INIT, fz_wire, len));
	if (fz.tap && !fz.ending)
		fz.tap->sent(fz.tap->ctx, &d, data, dlen, fz_wire, len);
	if (++fz.sends == fz.m[4]) {
		fz.send_failed = true;
		return FZ_SEND_ERR;
	}
	return 0;
}

static const struct iscsi_sess_ops fz_ops = { fz_send, fz_done, fz_event };

/* ---- the connection ---- */

static void fz_connect(void)
{
	struct iscsi_rx_limits lim = fz.rx.lim;
	int rc;

	iscsi_rx_reset(&fz.rx);
	lim.header_digest = lim.data_digest = false;
	fz_check(iscsi_rx_set_limits(&fz.rx, &lim) == 0);
	fz.conn++;
	fz.r2t.on = fz.unsol.on = false;
	rc = iscsi_sess_connect(&fz.s, fz.now, fz_chal[0], fz_chal, sizeof(fz_chal));
	fz_check(rc == 0 ? fz.s.state == ISCSI_SESS_LOGIN
			 : rc == FZ_SEND_ERR && fz.s.state == ISCSI_SESS_DOWN);
}

/* What the disk layer's owner does once logged in. */
static bool fz_owner(void)
{
	struct iscsi_sess *s = &fz.s;
	int rc;

	if (s->state != ISCSI_SESS_FULL || s->ctl_busy)
		return false;
	if (fz.cfg.discovery && !fz.st_done && fz.st_conn != fz.conn) {
		fz.st_conn = fz.conn;
		rc = iscsi_sess_sendtargets(s, fz.st, FZ_ST_MAX);
		fz_check(rc == 0 || (rc == FZ_SEND_ERR && s->state == ISCSI_SESS_DOWN));
		return true;
	}
	if ((fz.m[1] & FZI_T_LOGOUT) && fz.lo_conn != fz.conn && !iscsi_sess_pending(s) &&
	    (!fz.cfg.discovery || fz.st_done)) {
		fz.lo_conn = fz.conn;
		rc = iscsi_sess_logout(s);
		fz_check(rc == 0 || (rc == FZ_SEND_ERR && s->state == ISCSI_SESS_DOWN));
		return true;
	}
	return false;
}

/* After every call into the session: reconnect a failed connection, let
 * the owner act. */
static void fz_settle(void)
{
	for (;;) {
		if (fz.s.state == ISCSI_SESS_CLOSED)
			fz.stop = true;
		if (fz.stop)
			return;
		if (fz.s.state == ISCSI_SESS_DOWN) {
			if (fz.reconnects == FZ_RECONNECTS) {
				fz.stop = true;
				return;
			}
			fz.reconnects++;
			fz_connect();
			continue;
		}
		if (!fz_owner())
			return;
	}
}

static void fz_tick(void)
{
	int rc = iscsi_sess_tick(&fz.s, fz.now);

	fz_check(rc <= 0 && (rc == 0 || fz.s.state == ISCSI_SESS_DOWN));
	/* Not the count of ticks: the chunk ends add some. */
	if (rc)
		fz_mix((uint64_t)(uint32_t)rc);
	fz_settle();
}

static void fz_deliver(const struct iscsi_rx_pdu *p)
{
	int rc;

	fz_check(p->dlen == p->bhs.dlen && !p->dlen == !p->data);
	fz_check(p->ahs_len == p->bhs.ahs_words * 4u && p->ahs_len <= fz.rx.lim.max_ahs);
	fz_check(!p->dlen || (p->data > fz_rxbuf && p->data + p->dlen <= fz_rxbuf + sizeof(fz_rxbuf)));
	fz.now += steps[fz.m[3] & FZI_C_STEP];
	fz_tick();
	if (fz.stop)
		return;
	if (p->bhs.opcode == ISCSI_OP_R2T)
		fz.r2t = (typeof(fz.r2t)){ true, p->bhs.itt, p->bhs.ttt, p->bhs.offset, 0,
					   p->bhs.lun, (uint64_t)p->bhs.offset + p->bhs.residual };
	fz.in = p;
	rc = iscsi_sess_recv(&fz.s, p, fz.now);
	fz.in = NULL;
	fz_check(rc <= 0 && (rc == 0 || (fz.s.state == ISCSI_SESS_DOWN && rc == fz.s.err)));
	/* An R2T taken is answered in full (unless the connection went). */
	if (fz.r2t.on && !rc && fz.s.state == ISCSI_SESS_FULL)
		fz_check(fz.r2t.next == fz.r2t.end);
	fz.r2t.on = false;
	fz_mix((uint64_t)(uint32_t)rc << 32 | p->bhs.opcode);
	fz_settle();
}

static void fz_rx_failed(int rc)
{
	size_t used;
	struct iscsi_rx_pdu p;

	fz_check(rc == -EBADMSG || rc == -EILSEQ || rc == -EMSGSIZE || rc == -E2BIG ||
		 rc == -EPROTO || rc == -EINVAL);
	fz_check(fz.rx.why != NULL);
	/* Sticky until the reset (iscsi_pdu.h). */
	fz_check(iscsi_rx_feed(&fz.rx, "x", 1, &used, &p) == rc && used == 0);
	fz.in_lost = true;
	fz.lost_err = rc;
	iscsi_sess_conn_lost(&fz.s, rc);
	fz.in_lost = false;
	fz_check(fz.s.state == ISCSI_SESS_DOWN);
	fz_mix((uint64_t)(uint32_t)rc);
	fz_settle();
}

static void fz_feed(const uint8_t *b, size_t n)
{
	while (n && !fz.stop) {
		struct iscsi_rx_pdu p;
		size_t used = 0;
		int rc = iscsi_rx_feed(&fz.rx, b, n, &used, &p);

		fz_check(used <= n);
		b += used;
		n -= used;
		if (rc < 0) {
			fz_rx_failed(rc);
			continue;
		}
		if (rc == 0) {
			fz_check(n == 0);
			break;
		}
		fz_deliver(&p);
	}
}

static void fz_setup(const uint8_t *m)
{
	struct iscsi_params *w = &fz.cfg.want;
	struct iscsi_rx_limits lim = { FZ_MAX_DSL, 0, false, false };

	memset(&fz, 0, sizeof(fz));
	fz.m = m;
	fz.now = FZ_T0;
	fz.chap = (struct iscsi_chap_cfg){
		FZI_CHAP_NAME, (const uint8_t *)FZI_SECRET, sizeof(FZI_SECRET) - 1,
		(m[0] & FZI_MUTUAL) != 0, FZI_CHAP_TNAME, (const uint8_t *)FZI_TSECRET,
		sizeof(FZI_TSECRET) - 1,
	};
	fz.cfg.initiator_name = FZI_IQN_I;
	fz.cfg.discovery = m[0] & FZI_DISCOVERY;
	fz.cfg.target_name = fz.cfg.discovery ? NULL : FZI_IQN_T;
	fz.cfg.isid = 0x80123456789aull;
	iscsi_params_defaults(w);
	if (m[3] & FZI_C_SMALL) {
		lim.max_recv_dsl = 512;
		lim.max_ahs = FZ_MAX_AHS;
	}
	w->max_recv_dsl = lim.max_recv_dsl;
	w->max_burst = 16384;
	w->first_burst = 8192;
	w->header_digest = m[0] & FZI_HDIGEST;
	w->data_digest = m[0] & FZI_DDIGEST;
	w->initial_r2t = !(m[0] & FZI_NO_R2T);
	w->immediate_data = !(m[0] & FZI_NO_IMM);
	w->auth = m[0] & (FZI_CHAP | FZI_MUTUAL) ? ISCSI_AUTH_CHAP : ISCSI_AUTH_NONE;
	fz.cfg.chap = &fz.chap;
	fz.cfg.md5 = m[0] & FZI_MD5_CONST ? md5_const : fzi_md5;
	fz.cfg.nop_interval_ms = m[3] & FZI_C_PING ? FZI_PING_MS : 0;
	fz.cfg.timeout_ms = FZI_TIMEOUT_MS;
	fz.cfg.max_retries = FZI_C_RETRY(m[3]);
	fz_check(iscsi_sess_init(&fz.s, &fz.cfg, &fz_ops, NULL) == 0);
	fz_check(iscsi_rx_init(&fz.rx, &lim, fz_rxbuf, sizeof(fz_rxbuf)) == 0);
}

static void fz_submit_all(void)
{
	const uint8_t t = fz.m[1];

	if (t & FZI_T_HOLD) {
		iscsi_sess_hold(&fz.s, true);
		fz_submit(K_CTL);
	}
	if (t & FZI_T_READ)
		fz_submit(K_READ);
	if (t & FZI_T_WRITE)
		fz_submit(K_WRITE);
	if (t & FZI_T_TUR)
		fz_submit(K_TUR);
	if (t & FZI_T_BIGWRITE)
		fz_submit(K_BIGWRITE);
	if (t & FZI_T_PROBES)
		for (enum fz_kind k = K_INQ; k <= K_SYNC; k++)
			fz_submit(k);
}

int fzi_run(const uint8_t *in, size_t n, bool chunked, const struct fzi_tap *tap,
	    uint64_t *hash)
{
	uint64_t rng;
	size_t off = FZI_HDR;
	unsigned pending;

	if (n < FZI_HDR)
		return -1;
	if (!bufs_ready) {
		for (size_t i = 0; i < sizeof(b_write); i++)
			b_write[i] = ref_write[i] = (uint8_t)(i * 7 + 3);
		for (size_t i = 0; i < sizeof(b_big); i++)
			b_big[i] = ref_big[i] = (uint8_t)(i * 13 + 1);
		bufs_ready = true;
	}
	fz_setup(in);
	fz.tap = tap;
	rng = in[2] * 0x9e3779b97f4a7c15ull + n;
	fz_connect();
	fz_submit_all();
	fz_settle();
	while (off < n && !fz.stop) {
		size_t k = n - off;

		if (chunked && in[2]) {	/* chunks of 1 to 4096 bytes */
			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			k = 1 + (size_t)(rng >> 33) % (rng >> 63 ? 4096 : 17);
			if (k > n - off)
				k = n - off;
		}
		fz_feed(in + off, k);
		off += k;
		/* The same time as the last PDU's tick: changes nothing. */
		if (!fz.stop)
			fz_tick();
	}
	/* The target goes quiet: pings, then timeouts, and new logins. */
	fz.ending = true;
	for (int i = 0; i < 3 && !fz.stop; i++) {
		fz.now += FZI_PING_MS;
		fz_tick();
		fz.now += FZI_TIMEOUT_MS;
		if (!fz.stop)
			fz_tick();
	}
	/* No task lost, none completed twice (fz_done), none invented. */
	pending = iscsi_sess_pending(&fz.s);
	fz_check(fz.ndone + pending == fz.nsubs);
	fz_check(fz.s.state != ISCSI_SESS_CLOSED || !pending);
	fz_check(fz.s.ninflight <= ISCSI_SESS_TASKS);
	/* Data-In never lands in a write buffer. */
	fz_check(!memcmp(b_write, ref_write, sizeof(b_write)) &&
		 !memcmp(b_big, ref_big, sizeof(b_big)));
	*hash = fz.hash ^ fz.s.state;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h1, h2;

	if (fzi_run(data, size, false, NULL, &h1))
		return 0;
	/* How TCP cut the bytes must not matter. */
	if (data[2]) {
		fzi_run(data, size, true, NULL, &h2);
		fz_check(h1 == h2);
	}
	return 0;
}
