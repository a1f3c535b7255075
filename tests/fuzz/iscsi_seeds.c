/*
 * Writes the seed corpus of fuzz_iscsi (make fuzz): target byte streams
 * that log in and answer every task, built with the real encoder.
 *
 *	iscsi_seeds DIR
 *
 * A scripted target plays against the fuzz harness itself (fzi_run, with
 * a tap on what the session sends): run the harness on the stream so
 * far, answer the PDUs it sent that were not answered yet, append the
 * answers, run again, until the session sends nothing new.  The harness
 * is deterministic, so each run repeats the last one and goes further;
 * the seeds thus carry the tags, CmdSNs and CHAP values the harness will
 * meet, whatever its set-up becomes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/crc32c.h"
#include "storage/lib/scsi_cdb.h"
#include "tests/fuzz/fuzz_iscsi.h"
#include "tests/unit/iscsi_fake.h"

#define STREAM_MAX	(256 * 1024)
#define SENT_MAX	4096
#define ROUNDS_MAX	2000
#define TSIH		0x0102
#define TTASKS		32

struct seed {
	const char *name;
	uint8_t m[FZI_HDR];
	uint32_t tmrdsl;	/* the target's MaxRecvDataSegmentLength */
	uint32_t window;	/* MaxCmdSN - ExpCmdSN + 1 */
	bool digests;		/* accept CRC32C when offered */
	bool sbit;		/* status in the last Data-In */
	unsigned ua;		/* UNIT ATTENTION on the first statuses */
	uint8_t status;		/* then this SCSI status, once (0: none) */
	bool extras;		/* a target ping, an async message */
	bool split_text;	/* SendTargets answer over two PDUs */
};

/* One PDU the session sent, as the target decoded it. */
struct sent {
	struct iscsi_bhs h;
	uint8_t *data;
	uint32_t dlen;
	uint32_t crc;		/* of the wire bytes: runs must agree */
};

struct ttask {
	bool used;
	uint32_t itt, edtl, got, r2tsn;
	uint8_t cdb[ISCSI_CDB_MAX];
};

struct tgt {
	const struct seed *sd;
	uint8_t out[STREAM_MAX];
	size_t len;
	uint32_t statsn, exp_cmdsn;
	bool ff, hd, dd, want_hd, want_dd, chap_r;
	uint8_t mi;
	uint8_t mc[ISCSI_CHAP_BIN_MAX];
	size_t mclen;
	uint32_t imrdsl, burst, ttt_next;
	unsigned ua_left, logins, text_part;
	bool status_done;
	struct ttask tt[TTASKS];
};

struct rec {
	struct sent sent[SENT_MAX];
	unsigned nsent, known;
	bool bad;
};

static struct tgt g;
static struct rec rec;
static uint8_t input[FZI_HDR + STREAM_MAX];

static void die(const char *what)
{
	fprintf(stderr, "iscsi_seeds: %s\n", what);
	exit(1);
}

/* ---- target -> session ---- */

#define rsp iscsi_fake_rsp

static void t_send(struct iscsi_bhs *h, const void *data, uint32_t dlen)
{
	size_t n;

	if (h->opcode != ISCSI_OP_LOGIN_RSP) {
		h->exp_sn = g.exp_cmdsn;
		h->max_cmdsn = g.exp_cmdsn + g.sd->window - 1;
	}
	if (iscsi_pdu_build(h, data, dlen, g.hd, g.dd, g.out + g.len, sizeof(g.out) - g.len, &n))
		die("stream full, or a PDU the encoder refuses");
	g.len += n;
}

static void kv_num(const struct iscsi_kv *kv, uint32_t *v)
{
	uint64_t n = 0;

	iscsi_parse_number(kv->val, kv->vlen, &n);
	*v = (uint32_t)n;
}

static void kv_copy(const struct iscsi_kv *kv, char *key, size_t cap)
{
	snprintf(key, cap, "%.*s", (int)kv->klen, kv->key);
}

static void t_extras(void)
{
	static const char ping[] = "ping1234";
	struct iscsi_bhs h = rsp(ISCSI_OP_NOP_IN, ISCSI_RSVD_TAG);

	/* A ping that wants its answer (11.19), one that does not. */
	h.ttt = 0x77;
	h.sn = g.statsn;
	t_send(&h, ping, sizeof(ping) - 1);
	h = rsp(ISCSI_OP_NOP_IN, ISCSI_RSVD_TAG);
	h.sn = g.statsn;
	t_send(&h, NULL, 0);
	/* AsyncEvent 0: a SCSI event, with sense (11.9.1). */
	h = rsp(ISCSI_OP_ASYNC, ISCSI_RSVD_TAG);
	h.flags = ISCSI_F_FINAL;
	h.lun = 1ull << 48;
	h.sn = g.statsn++;
	h.async_event = 0;
	t_send(&h, (const uint8_t[]){ 0, 18, 0x70, 0, 6, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x3f, 0x0e,
				      0, 0, 0, 0 }, 20);
}

static void t_login(const struct sent *q)
{
	struct iscsi_text_iter it;
	struct iscsi_text_buf tb;
	struct iscsi_kv kv;
	char out[4096], enc[64], key[64];
	int csg = ISCSI_LOGIN_CSG(q->h.flags), nsg = ISCSI_LOGIN_NSG(q->h.flags);
	bool transit = q->h.flags & ISCSI_F_TRANSIT;
	bool chap = g.sd->m[0] & (FZI_CHAP | FZI_MUTUAL), mutual = g.sd->m[0] & FZI_MUTUAL;
	struct iscsi_bhs h = rsp(ISCSI_OP_LOGIN_RSP, q->h.itt);
	uint32_t v;

	if (g.ff)
		die("the session logged in again: a seed lost its connection");
	iscsi_text_buf_init(&tb, out, sizeof(out));
	iscsi_text_iter_init(&it, q->data, q->dlen);
	while (iscsi_text_next(&it, &kv, NULL) == 1) {
		kv_copy(&kv, key, sizeof(key));
		if (iscsi_kv_is(&kv, "InitiatorName") || iscsi_kv_is(&kv, "TargetName") ||
		    iscsi_kv_is(&kv, "SessionType") || iscsi_kv_is(&kv, "CHAP_N")) {
			continue;
		} else if (iscsi_kv_is(&kv, "AuthMethod")) {
			iscsi_text_add(&tb, "AuthMethod", chap ? "CHAP" : "None");
			iscsi_text_add(&tb, "TargetPortalGroupTag", "1");
		} else if (iscsi_kv_is(&kv, "CHAP_A")) {
			static const uint8_t c[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
						       13, 14, 15, 16 };

			iscsi_text_add(&tb, "CHAP_A", "5");
			iscsi_text_add_u32(&tb, "CHAP_I", 7);
			iscsi_bin_encode(c, sizeof(c), false, enc, sizeof(enc));
			iscsi_text_add(&tb, "CHAP_C", enc);
		} else if (iscsi_kv_is(&kv, "CHAP_R")) {
			g.chap_r = true;
		} else if (iscsi_kv_is(&kv, "CHAP_I")) {
			kv_num(&kv, &v);
			g.mi = (uint8_t)v;
		} else if (iscsi_kv_is(&kv, "CHAP_C")) {
			iscsi_bin_decode(kv.val, kv.vlen, g.mc, sizeof(g.mc), &g.mclen);
		} else if (iscsi_kv_is(&kv, "HeaderDigest") || iscsi_kv_is(&kv, "DataDigest")) {
			bool crc = g.sd->digests && kv.vlen >= 6 && !memcmp(kv.val, "CRC32C", 6);

			iscsi_text_add(&tb, key, crc ? "CRC32C" : "None");
			if (iscsi_kv_is(&kv, "HeaderDigest"))
				g.want_hd = crc;
			else
				g.want_dd = crc;
		} else if (iscsi_kv_is(&kv, "MaxRecvDataSegmentLength")) {
			kv_num(&kv, &g.imrdsl);
		} else if (iscsi_kv_is(&kv, "MaxBurstLength")) {
			kv_num(&kv, &v);
			g.burst = v < 262144 ? v : 262144;
			iscsi_text_add_u32(&tb, key, g.burst);
		} else if (iscsi_kv_is(&kv, "FirstBurstLength")) {
			kv_num(&kv, &v);
			iscsi_text_add_u32(&tb, key, v < 65536 ? v : 65536);
		} else {
			iscsi_text_add_n(&tb, key, kv.val, kv.vlen);
		}
	}
	if (csg == ISCSI_STAGE_SECURITY && chap && !g.chap_r)
		transit = false;
	if (csg == ISCSI_STAGE_SECURITY && transit && mutual) {
		uint8_t r[ISCSI_MD5_LEN];

		iscsi_text_add(&tb, "CHAP_N", FZI_CHAP_TNAME);
		iscsi_chap_response(fzi_md5, g.mi, (const uint8_t *)FZI_TSECRET,
				    sizeof(FZI_TSECRET) - 1, g.mc, g.mclen, r);
		iscsi_bin_encode(r, sizeof(r), false, enc, sizeof(enc));
		iscsi_text_add(&tb, "CHAP_R", enc);
	}
	if (csg == ISCSI_STAGE_OPERATIONAL && transit)
		iscsi_text_add_u32(&tb, "MaxRecvDataSegmentLength", g.sd->tmrdsl);
	if (tb.err)
		die("login answer too long");
	h.flags = (uint8_t)(csg << 2 | (transit ? ISCSI_F_TRANSIT | nsg : 0));
	h.lun = q->h.lun | TSIH;
	h.sn = g.statsn++;
	h.exp_sn = q->h.sn;
	h.max_cmdsn = q->h.sn + g.sd->window - 1;
	g.exp_cmdsn = q->h.sn;
	t_send(&h, out, (uint32_t)tb.len);
	g.logins++;
	if (transit && nsg == ISCSI_STAGE_FULL_FEATURE) {
		/* Digests from the first full-feature PDU on (13.1). */
		g.ff = true;
		g.hd = g.want_hd;
		g.dd = g.want_dd;
		if (g.sd->extras)
			t_extras();
	}
}

/* ---- commands ---- */

static void t_status(struct ttask *t, uint32_t residual)
{
	struct iscsi_bhs h = rsp(ISCSI_OP_SCSI_RSP, t->itt);
	/* SenseLength 18, fixed sense: UNIT ATTENTION 29/00 (reset). */
	static const uint8_t ua[20] = { 0, 18, 0x70, 0, 6, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x29 };

	h.sn = g.statsn++;
	if (residual) {
		h.flags |= ISCSI_F_UNDERFLOW;
		h.residual = residual;
	}
	t->used = false;
	if (g.ua_left) {
		g.ua_left--;
		h.b3 = SCSI_STATUS_CHECK_CONDITION;
		t_send(&h, ua, sizeof(ua));
		return;
	}
	if (g.sd->status && !g.status_done) {
		g.status_done = true;
		h.b3 = g.sd->status;
	}
	t_send(&h, NULL, 0);
}

/* What a disk answers to each of the harness's reads. */
static uint32_t t_reply(const struct ttask *t, uint8_t *d, size_t cap)
{
	uint32_t n;

	memset(d, 0, cap);
	switch (t->cdb[0]) {
	case SCSI_SERVICE_IN_16:	/* READ CAPACITY(16): 2048 blocks of 512 */
		d[6] = 0x07;
		d[7] = 0xff;
		d[10] = 0x02;
		d[13] = 3;
		return SCSI_RC16_LEN;
	case SCSI_INQUIRY:
		if (t->cdb[1] & 1) {	/* VPD 0x83: one NAA designator */
			static const uint8_t p83[] = { 0, 0x83, 0, 12, 1, 3, 0, 8, 0x60, 1, 2,
						       3, 4, 5, 6, 7 };

			memcpy(d, p83, sizeof(p83));
			return sizeof(p83);
		}
		d[2] = 6;
		d[3] = 2;
		d[4] = 91;
		d[7] = 0x02;
		memcpy(d + 8, "TERN    FUZZDISK        0001", 28);
		return 96;
	case SCSI_REPORT_LUNS:
		d[3] = 16;
		d[9] = 1;
		d[17] = 2;
		return 24;
	case SCSI_PR_IN:
		d[3] = 5;		/* generation */
		if ((t->cdb[1] & 0x1f) == SCSI_PR_READ_KEYS) {
			d[7] = 8;
			memcpy(d + 8, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
			return 16;
		}
		d[7] = 16;
		memcpy(d + 8, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
		d[21] = SCSI_PR_WE_REGISTRANTS_ONLY;
		return 24;
	default:
		n = t->edtl < cap ? t->edtl : (uint32_t)cap;
		for (uint32_t i = 0; i < n; i++)
			d[i] = (uint8_t)(i * 5 + 1);
		return n;
	}
}

static void t_read(struct ttask *t)
{
	static uint8_t d[65536];
	uint32_t n = t_reply(t, d, sizeof(d)), seg = g.imrdsl < 4096 ? g.imrdsl : 4096;
	uint32_t off = 0, dsn = 0;

	if (n > t->edtl)
		n = t->edtl;
	if (g.ua_left || (g.sd->status && !g.status_done)) {
		t_status(t, 0);
		return;
	}
	while (off < n) {
		struct iscsi_bhs h = rsp(ISCSI_OP_DATA_IN, t->itt);
		uint32_t k = n - off < seg ? n - off : seg;
		bool last = off + k == n;

		h.flags = last ? ISCSI_F_FINAL : 0;
		h.lun = 1ull << 48;
		h.seq = dsn++;
		h.offset = off;
		if (last && g.sd->sbit) {
			h.flags |= ISCSI_F_STATUS;
			h.sn = g.statsn++;
			if (n < t->edtl) {
				h.flags |= ISCSI_F_UNDERFLOW;
				h.residual = t->edtl - n;
			}
			t->used = false;
		}
		t_send(&h, d + off, k);
		off += k;
	}
	if (t->used)
		t_status(t, t->edtl - n);
}

/* The next R2T, or the status when every byte is in. */
static void t_write_next(struct ttask *t)
{
	struct iscsi_bhs h = rsp(ISCSI_OP_R2T, t->itt);
	uint32_t want = t->edtl - t->got;

	if (!want) {
		t_status(t, 0);
		return;
	}
	h.lun = 1ull << 48;
	h.ttt = g.ttt_next++;
	h.sn = g.statsn;
	h.seq = t->r2tsn++;
	h.offset = t->got;
	h.residual = want < g.burst ? want : g.burst;
	t_send(&h, NULL, 0);
}

static struct ttask *t_find(uint32_t itt)
{
	for (unsigned i = 0; i < TTASKS; i++)
		if (g.tt[i].used && g.tt[i].itt == itt)
			return &g.tt[i];
	die("a PDU for a task the target does not know");
	return NULL;
}

static void t_cmd(const struct sent *q)
{
	struct ttask *t = NULL;

	g.exp_cmdsn = q->h.sn + 1;
	for (unsigned i = 0; i < TTASKS && !t; i++)
		if (!g.tt[i].used)
			t = &g.tt[i];
	if (!t)
		die("too many tasks");
	memset(t, 0, sizeof(*t));
	t->used = true;
	t->itt = q->h.itt;
	t->edtl = q->h.ttt;
	t->got = q->dlen;
	memcpy(t->cdb, q->h.cdb, sizeof(t->cdb));
	if (q->h.flags & ISCSI_F_CMD_READ)
		t_read(t);
	else if (!(q->h.flags & ISCSI_F_CMD_WRITE))
		t_status(t, 0);
	else if (q->h.flags & ISCSI_F_FINAL)	/* no unsolicited Data-Out follows */
		t_write_next(t);
}

static void t_data_out(const struct sent *q)
{
	struct ttask *t = t_find(q->h.itt);

	if (q->h.offset != t->got)
		die("Data-Out out of order");
	t->got += q->dlen;
	if (q->h.flags & ISCSI_F_FINAL)
		t_write_next(t);
}

static void t_text(const struct sent *q)
{
	static const char st[] = "TargetName=" FZI_IQN_T "\0TargetAddress=10.0.0.1:3260,1\0"
				 "TargetName=iqn.2024-01.org.tern:disk2\0"
				 "TargetAddress=[fe80::1]:3261,2\0TargetAddress=host.example:3262,3";
	struct iscsi_bhs h = rsp(ISCSI_OP_TEXT_RSP, q->h.itt);
	uint32_t cut = 40;

	h.sn = g.statsn++;
	if (!g.sd->split_text) {
		t_send(&h, st, sizeof(st));
		return;
	}
	if (g.text_part++ == 0) {
		h.flags = ISCSI_F_CONTINUE;	/* 11.11.2: more follows */
		h.ttt = 0x55;
		t_send(&h, st, cut);
		return;
	}
	t_send(&h, st + cut, sizeof(st) - cut);
}

static void t_handle(const struct sent *q)
{
	struct iscsi_bhs h;

	switch (q->h.opcode) {
	case ISCSI_OP_LOGIN_REQ:
		t_login(q);
		break;
	case ISCSI_OP_SCSI_CMD:
		t_cmd(q);
		break;
	case ISCSI_OP_DATA_OUT:
		t_data_out(q);
		break;
	case ISCSI_OP_NOP_OUT:
		if (q->h.itt == ISCSI_RSVD_TAG)
			break;		/* the answer to our ping */
		h = rsp(ISCSI_OP_NOP_IN, q->h.itt);
		h.sn = g.statsn++;
		t_send(&h, NULL, 0);
		break;
	case ISCSI_OP_TEXT_REQ:
		t_text(q);
		break;
	case ISCSI_OP_LOGOUT_REQ:
		h = rsp(ISCSI_OP_LOGOUT_RSP, q->h.itt);
		h.sn = g.statsn++;
		t_send(&h, NULL, 0);
		break;
	default:
		die("the session sent an opcode the target does not take");
	}
}

/* ---- recording ---- */

static void tap_sent(void *ctx, const struct iscsi_bhs *h, const uint8_t *data, uint32_t dlen,
		     const uint8_t *wire, size_t len)
{
	struct rec *r = ctx;
	struct sent *s;
	uint32_t crc = crc32c(CRC32C_INIT, wire, len);

	if (r->nsent == SENT_MAX)
		die("the session sent too much");
	s = &r->sent[r->nsent++];
	if (r->nsent <= r->known) {
		r->bad |= s->crc != crc;	/* a run that does not repeat the last */
		return;
	}
	s->h = *h;
	s->dlen = dlen;
	s->crc = crc;
	s->data = dlen ? malloc(dlen) : NULL;
	if (dlen)
		memcpy(s->data, data, dlen);
}

static void make_seed(const char *dir, const struct seed *sd)
{
	struct fzi_tap tap = { &rec, tap_sent };
	uint64_t hash;
	char path[512];
	FILE *f;
	unsigned rounds = 0;

	memset(&g, 0, sizeof(g));
	g.sd = sd;
	g.statsn = 1000;
	g.imrdsl = 8192;
	g.burst = 262144;
	g.ttt_next = 0x100;
	g.ua_left = sd->ua;
	for (unsigned i = 0; i < rec.nsent; i++)
		free(rec.sent[i].data);
	memset(&rec, 0, sizeof(rec));
	memcpy(input, sd->m, FZI_HDR);
	for (;;) {
		unsigned from = rec.known;

		rec.nsent = 0;
		memcpy(input + FZI_HDR, g.out, g.len);
		fzi_run(input, FZI_HDR + g.len, false, &tap, &hash);
		if (rec.bad || rec.nsent < rec.known)
			die("the harness did not repeat itself");
		if (rec.nsent == rec.known)
			break;
		rec.known = rec.nsent;
		for (unsigned i = from; i < rec.known; i++)
			t_handle(&rec.sent[i]);
		if (++rounds == ROUNDS_MAX)
			die("the conversation does not end");
	}
	for (unsigned i = 0; i < TTASKS; i++)
		if (g.tt[i].used)
			die("a task got no status");
	/* Both ways of feeding it must agree (the harness checks). */
	LLVMFuzzerTestOneInput(input, FZI_HDR + g.len);
	snprintf(path, sizeof(path), "%s/%s", dir, sd->name);
	f = fopen(path, "wb");
	if (!f || fwrite(input, 1, FZI_HDR + g.len, f) != FZI_HDR + g.len || fclose(f))
		die("cannot write a seed");
	printf("  %-14s %6zu bytes, %3u PDUs from the session\n", sd->name, FZI_HDR + g.len,
	       rec.known);
	if (getenv("ISCSI_SEEDS_VERBOSE"))
		for (unsigned i = 0; i < rec.known; i++)
			printf("\t%s itt %08x sn %u dlen %u\n", iscsi_op_name(rec.sent[i].h.opcode),
			       rec.sent[i].h.itt, rec.sent[i].h.sn, rec.sent[i].dlen);
}

static const struct seed seeds[] = {
	{ "plain", { 0, FZI_T_READ | FZI_T_WRITE | FZI_T_TUR | FZI_T_LOGOUT, 0, 1, 0 },
	  8192, 64, false, true, 0, 0, false, false },
	{ "r2t-chunked", { FZI_NO_R2T, FZI_T_READ | FZI_T_WRITE | FZI_T_BIGWRITE | FZI_T_TUR |
	  FZI_T_RESUBMIT | FZI_T_LOGOUT, 0x5a, 0x12, 0 }, 4096, 2, false, false, 0, 0, false,
	  false },
	{ "chap", { FZI_CHAP, FZI_T_READ | FZI_T_TUR | FZI_T_LOGOUT, 0, 0x21, 0 },
	  8192, 64, false, true, 1, SCSI_STATUS_BUSY, false, false },
	{ "mutual-hold", { FZI_CHAP | FZI_MUTUAL, FZI_T_HOLD | FZI_T_READ | FZI_T_WRITE |
	  FZI_T_PROBES | FZI_T_LOGOUT, 0x11, 0x03, 0 }, 8192, 64, false, true, 0, 0, true, false },
	{ "digests", { FZI_HDIGEST | FZI_DDIGEST | FZI_NO_IMM, FZI_T_READ | FZI_T_WRITE |
	  FZI_T_TUR | FZI_T_LOGOUT, 0x33, 0x01, 0 }, 8192, 64, true, true, 0, 0, true, false },
	{ "discovery", { FZI_DISCOVERY, FZI_T_LOGOUT, 0, 0x01, 0 },
	  8192, 64, false, true, 0, 0, false, true },
	{ "pings", { 0, FZI_T_READ | FZI_T_TUR | FZI_T_LOGOUT, 0x07, FZI_C_PING | 5, 0 },
	  8192, 64, false, true, 0, 0, false, false },
	{ "small", { 0, FZI_T_READ | FZI_T_WRITE | FZI_T_PROBES, 0x21, FZI_C_SMALL | 0x01, 0 },
	  512, 64, false, true, 0, 0, false, false },
	{ "window1", { FZI_NO_R2T, FZI_T_PROBES | FZI_T_READ | FZI_T_WRITE | FZI_T_TUR |
	  FZI_T_LOGOUT, 0x44, 0x02, 0 }, 8192, 1, false, false, 0, 0, false, false },
	{ "conflict", { 0, FZI_T_HOLD | FZI_T_READ | FZI_T_WRITE | FZI_T_LOGOUT, 0x09, 0x11, 0 },
	  8192, 8, false, true, 0, SCSI_STATUS_RESERVATION_CONFLICT, false, false },
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: iscsi_seeds DIR\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		make_seed(argv[1], &seeds[i]);
	return 0;
}
