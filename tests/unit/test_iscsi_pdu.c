/*
 * Unit tests and a mutation fuzz test for storage/lib/iscsi_pdu.c: BHS
 * layouts against hand-written bytes, round trips for every opcode,
 * digests, the receiver split at every byte boundary, every limit.
 *
 * The receive buffer is malloc'ed at exactly iscsi_rx_buf_size(), so
 * ASan flags any write or read past it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/crc32c.h"
#include "storage/lib/iscsi_pdu.h"

static uint32_t pt_rng;

static uint32_t pt_rand(void)
{
	pt_rng = pt_rng * 1103515245u + 12345u;
	return pt_rng >> 8;
}

static const uint8_t all_ops[] = {
	ISCSI_OP_NOP_OUT, ISCSI_OP_SCSI_CMD, ISCSI_OP_TMF_REQ, ISCSI_OP_LOGIN_REQ,
	ISCSI_OP_TEXT_REQ, ISCSI_OP_DATA_OUT, ISCSI_OP_LOGOUT_REQ, ISCSI_OP_SNACK_REQ,
	ISCSI_OP_NOP_IN, ISCSI_OP_SCSI_RSP, ISCSI_OP_TMF_RSP, ISCSI_OP_LOGIN_RSP,
	ISCSI_OP_TEXT_RSP, ISCSI_OP_DATA_IN, ISCSI_OP_LOGOUT_RSP, ISCSI_OP_R2T,
	ISCSI_OP_ASYNC, ISCSI_OP_REJECT,
};
#define N_OPS (sizeof(all_ops) / sizeof(all_ops[0]))

/* A PDU from the target side, AHS allowed (the library never sends one). */
static size_t mk_pdu(struct iscsi_bhs *h, const uint8_t *ahs, uint32_t ahs_len,
		     const uint8_t *data, uint32_t dlen, bool hd, bool dd, uint8_t *out)
{
	size_t n = ISCSI_BHS_LEN;

	h->ahs_words = (uint8_t)(ahs_len / 4);
	h->dlen = dlen;
	cr_assert_eq(iscsi_bhs_encode(h, out, NULL), 0);
	if (ahs_len)
		memcpy(out + n, ahs, ahs_len);
	n += ahs_len;
	if (hd) {
		iscsi_put_digest(out + n, crc32c(0, out, n));
		n += 4;
	}
	if (dlen) {
		memcpy(out + n, data, dlen);
		n += dlen;
		while (n & 3)
			out[n++] = 0;
		if (dd) {
			iscsi_put_digest(out + n, iscsi_data_digest(data, dlen));
			n += 4;
		}
	}
	return n;
}

static struct iscsi_bhs bhs_of(uint8_t op)
{
	struct iscsi_bhs h;

	memset(&h, 0, sizeof(h));
	h.opcode = op;
	h.flags = ISCSI_F_FINAL;
	h.itt = 0x11223344;
	h.sn = 7;
	h.exp_sn = 8;
	h.max_cmdsn = 40;
	if (op == ISCSI_OP_REJECT)
		h.itt = ISCSI_RSVD_TAG;
	return h;
}

/* ---- layout against hand-written bytes ---- */

/*
 * The SCSI Command of RFC 3720 B.4's example: READ(10) of 2 blocks, ITT
 * 0x14, 1 KiB expected, CmdSN 0x14, ExpStatSN 0x18.  Written out byte
 * by byte from RFC 7143 11.3.
 */
Test(iscsi_pdu, scsi_cmd_layout)
{
	static const uint8_t want[48] = {
		0x01, 0xc1, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0x14,  0, 0, 0x04, 0,  0, 0, 0, 0x14,  0, 0, 0, 0x18,
		0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0,
	};
	static const uint8_t cdb[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0 };
	struct iscsi_bhs h, d;
	uint8_t b[48];

	cr_assert_eq(iscsi_bhs_scsi_cmd(&h, 0, 0x14, cdb, 10, true, false, 1024), 0);
	h.sn = 0x14;
	h.exp_sn = 0x18;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), 0);
	cr_assert_arr_eq(b, want, 48);
	cr_assert_eq(iscsi_bhs_decode(b, &d, NULL), 0);
	cr_assert_eq(d.ttt, 1024);
	cr_assert_eq(d.sn, 0x14);
	cr_assert_eq(d.exp_sn, 0x18);
	cr_assert_arr_eq(d.cdb, cdb, 10);
	cr_assert_eq(d.flags & ISCSI_F_CMD_READ, ISCSI_F_CMD_READ);
	cr_assert_eq(iscsi_bhs_scsi_cmd(&h, 0, 1, cdb, 17, true, false, 0), -EINVAL);
	cr_assert_eq(iscsi_bhs_scsi_cmd(&h, 0, 1, cdb, 0, true, false, 0), -EINVAL);
	cr_assert_eq(iscsi_bhs_scsi_cmd(&h, 0, 1, cdb, 6, false, false, 512), -EINVAL);
}

/* Login Request (RFC 7143 11.12): I always set, ISID/TSIH, CID, versions. */
Test(iscsi_pdu, login_layout)
{
	struct iscsi_bhs h = bhs_of(ISCSI_OP_LOGIN_REQ), d;
	uint8_t b[48];

	h.flags = ISCSI_F_TRANSIT | ISCSI_STAGE_OPERATIONAL << 2 | ISCSI_STAGE_FULL_FEATURE;
	h.lun = 0x400001370000ull << 16 | 0x0000;	/* ISID type 1 (OUI), TSIH 0 */
	h.cid = 0xbeef;
	h.dlen = 0x123;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), 0);
	cr_assert_eq(b[0], 0x43);
	cr_assert_eq(b[1], 0x87);
	cr_assert_eq(b[5], 0x00);
	cr_assert_eq(b[6], 0x01);
	cr_assert_eq(b[7], 0x23);
	cr_assert_eq(b[8], 0x40);
	cr_assert_eq(b[20], 0xbe);
	cr_assert_eq(b[21], 0xef);
	cr_assert_eq(b[22], 0);
	cr_assert_eq(iscsi_bhs_decode(b, &d, NULL), 0);
	cr_assert(d.immediate);
	cr_assert_eq(ISCSI_LOGIN_CSG(d.flags), 1);
	cr_assert_eq(ISCSI_LOGIN_NSG(d.flags), 3);
	cr_assert_eq(ISCSI_LOGIN_ISID(d.lun), 0x400001370000ull);
	cr_assert_eq(ISCSI_LOGIN_TSIH(d.lun), 0);
	cr_assert_eq(d.cid, 0xbeef);
}

Test(iscsi_pdu, response_layouts)
{
	struct iscsi_bhs h, d;
	uint8_t b[48];
	const char *why;

	h = bhs_of(ISCSI_OP_LOGIN_RSP);
	h.status_class = 2;
	h.status_detail = 1;
	h.flags = ISCSI_F_TRANSIT | 1 << 2 | 3;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), 0);
	cr_assert_eq(b[36], 2);
	cr_assert_eq(b[37], 1);
	cr_assert_eq(iscsi_bhs_decode(b, &d, NULL), 0);
	cr_assert_eq(d.status_class, 2);
	cr_assert_eq(d.max_cmdsn, 40);

	h = bhs_of(ISCSI_OP_LOGOUT_RSP);
	h.time2wait = 2;
	h.time2retain = 20;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), 0);
	cr_assert_eq(b[41], 2);
	cr_assert_eq(b[43], 20);

	h = bhs_of(ISCSI_OP_ASYNC);
	h.async_event = 1;
	h.param[0] = 0x0102;
	h.param[2] = 0x0506;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), 0);
	cr_assert_eq(b[36], 1);
	cr_assert_eq(b[38], 1);
	cr_assert_eq(b[43], 6);

	h = bhs_of(ISCSI_OP_DATA_IN);
	h.flags = ISCSI_F_FINAL | ISCSI_F_STATUS | ISCSI_F_UNDERFLOW;
	h.b3 = 0x02;
	h.residual = 512;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), 0);
	cr_assert_eq(b[3], 2);
	cr_assert_eq(b[47], 0);
	cr_assert_eq(b[46], 2);

	/* Forbidden combinations, both directions. */
	h.flags = ISCSI_F_STATUS;
	cr_assert_eq(iscsi_bhs_encode(&h, b, &why), -EINVAL);
	b[1] = ISCSI_F_STATUS;
	cr_assert_eq(iscsi_bhs_decode(b, &d, &why), -EINVAL);
	cr_assert_str_eq(why, "Data-In: S without F");
	h = bhs_of(ISCSI_OP_LOGIN_RSP);
	h.flags = ISCSI_F_TRANSIT | ISCSI_F_CONTINUE;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), -EINVAL);
	h.flags = 2 << 2;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), -EINVAL);
	h.flags = ISCSI_F_TRANSIT | 2;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), -EINVAL);
	h = bhs_of(ISCSI_OP_TEXT_RSP);
	h.flags = ISCSI_F_FINAL | ISCSI_F_CONTINUE;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), -EINVAL);
	h = bhs_of(ISCSI_OP_SCSI_RSP);
	h.flags = ISCSI_F_FINAL | ISCSI_F_OVERFLOW | ISCSI_F_UNDERFLOW;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), -EINVAL);
	h = bhs_of(ISCSI_OP_REJECT);
	h.dlen = 47;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), -EINVAL);
	h.dlen = ISCSI_DSL_MAX + 1;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), -EINVAL);
	h.opcode = 0x07;
	cr_assert_eq(iscsi_bhs_encode(&h, b, NULL), -EINVAL);
}

Test(iscsi_pdu, opcode_classes)
{
	int target = 0, initiator = 0;

	for (int op = 0; op < 64; op++) {
		bool t = iscsi_op_is_target((uint8_t)op), i = iscsi_op_is_initiator((uint8_t)op);

		cr_assert(!(t && i));
		target += t;
		initiator += i;
		if (!t && !i)
			cr_assert_str_eq(iscsi_op_name((uint8_t)op), "reserved");
	}
	cr_assert_eq(target, 10);
	cr_assert_eq(initiator, 8);
	cr_assert_str_eq(iscsi_op_name(ISCSI_OP_R2T), "R2T");
}

/* Random fields survive encode, decode, encode for every opcode. */
Test(iscsi_pdu, round_trip_every_opcode)
{
	pt_rng = 1;
	for (int iter = 0; iter < 4000; iter++) {
		struct iscsi_bhs h, d;
		uint8_t b1[48], b2[48], *raw = (uint8_t *)&h;
		int rc;

		for (size_t i = 0; i < sizeof(h); i++)
			raw[i] = (uint8_t)pt_rand();
		h.opcode = all_ops[iter % N_OPS];
		h.immediate = pt_rand() & 1;
		h.dlen &= ISCSI_DSL_MAX;
		rc = iscsi_bhs_encode(&h, b1, NULL);
		if (rc) {
			cr_assert_eq(rc, -EINVAL);
			continue;
		}
		cr_assert_eq(iscsi_bhs_decode(b1, &d, NULL), 0, "op %#x", h.opcode);
		cr_assert_eq(iscsi_bhs_encode(&d, b2, NULL), 0);
		cr_assert_arr_eq(b1, b2, 48, "op %#x", h.opcode);
		cr_assert_eq(d.opcode, h.opcode);
		cr_assert_eq(d.flags, h.flags);
		cr_assert_eq(d.dlen, h.dlen);
		cr_assert_eq(d.itt, h.itt);
		cr_assert_eq(d.ahs_words, h.ahs_words);
		if (h.opcode != ISCSI_OP_DATA_OUT && h.opcode != ISCSI_OP_SNACK_REQ)
			cr_assert_eq(d.sn, h.sn, "op %#x", h.opcode);
		if (h.opcode == ISCSI_OP_SCSI_CMD)
			cr_assert_arr_eq(d.cdb, h.cdb, 16);
		if (h.opcode == ISCSI_OP_R2T || h.opcode == ISCSI_OP_DATA_IN) {
			cr_assert_eq(d.offset, h.offset);
			cr_assert_eq(d.residual, h.residual);
			cr_assert_eq(d.seq, h.seq);
			cr_assert_eq(d.ttt, h.ttt);
			cr_assert_eq(d.lun, h.lun);
		}
	}
}

/* ---- digests ---- */

Test(iscsi_pdu, digest_vectors)
{
	uint8_t z[32] = { 0 }, w[4], abc[4] = { 'a', 'b', 'c', 0 };

	/* RFC 3720 B.4: 32 zero bytes give CRC aa 36 91 8a on the wire. */
	iscsi_put_digest(w, iscsi_data_digest(z, 32));
	cr_assert_eq(w[0], 0xaa);
	cr_assert_eq(w[1], 0x36);
	cr_assert_eq(w[2], 0x91);
	cr_assert_eq(w[3], 0x8a);
	cr_assert_eq(iscsi_get_digest(w), 0x8a9136aau);
	/* Padding is covered (RFC 7143 13.1). */
	cr_assert_eq(iscsi_data_digest("abc", 3), crc32c(0, abc, 4));
	cr_assert_eq(iscsi_pad4(0), 0);
	cr_assert_eq(iscsi_pad4(1), 3);
	cr_assert_eq(iscsi_pad4(4), 0);
	cr_assert_eq(iscsi_pad4(7), 1);
}

Test(iscsi_pdu, build_layout_and_space)
{
	struct iscsi_bhs h = bhs_of(ISCSI_OP_DATA_OUT);
	uint8_t out[128], data[5] = { 1, 2, 3, 4, 5 };
	size_t len;
	int hl;

	cr_assert_eq(iscsi_pdu_build(&h, data, 5, true, true, out, sizeof(out), &len), 0);
	cr_assert_eq(len, 48 + 4 + 8 + 4);
	cr_assert_eq(iscsi_get_digest(out + 48), crc32c(0, out, 48));
	cr_assert_arr_eq(out + 52, data, 5);
	cr_assert_eq(out[57] | out[58] | out[59], 0);
	cr_assert_eq(iscsi_get_digest(out + 60), crc32c(0, out + 52, 8));
	cr_assert_eq(out[7], 5);
	/* Exactly enough room, one byte short. */
	cr_assert_eq(iscsi_pdu_build(&h, data, 5, true, true, out, 64, &len), 0);
	cr_assert_eq(iscsi_pdu_build(&h, data, 5, true, true, out, 63, &len), -ENOSPC);
	/* No data: no data digest, even when negotiated. */
	cr_assert_eq(iscsi_pdu_build(&h, NULL, 0, false, true, out, 48, &len), 0);
	cr_assert_eq(len, 48);
	cr_assert_eq(iscsi_pdu_build(&h, NULL, 1, false, true, out, 128, &len), -EINVAL);
	hl = iscsi_pdu_header(&h, true, out, NULL);
	cr_assert_eq(hl, 52);
	cr_assert_eq(iscsi_pdu_header(&h, false, out, NULL), 48);
}

Test(iscsi_pdu, rsp_sense)
{
	const uint8_t ok[] = { 0, 3, 0x70, 0, 6, 0xee };
	const uint8_t bad[] = { 0, 5, 0x70, 0, 6 };
	const uint8_t *s;
	size_t n;

	cr_assert_eq(iscsi_rsp_sense(ok, 6, &s, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_eq(s, ok + 2);
	cr_assert_eq(iscsi_rsp_sense(ok, 5, &s, &n), 0);
	cr_assert_eq(iscsi_rsp_sense(ok, 4, &s, &n), -EBADMSG);
	cr_assert_eq(iscsi_rsp_sense(bad, 5, &s, &n), -EBADMSG);
	cr_assert_eq(iscsi_rsp_sense(ok, 1, &s, &n), -EBADMSG);
	cr_assert_eq(iscsi_rsp_sense(ok, 0, &s, &n), 0);
	cr_assert_null(s);
	cr_assert_eq(iscsi_rsp_sense((const uint8_t[]){ 0, 0 }, 2, &s, &n), 0);
	cr_assert_eq(n, 0);
}

/* ---- receiver ---- */

struct rx_fix {
	struct iscsi_rx rx;
	uint8_t *buf;
	struct iscsi_rx_limits lim;
};

static void rx_open(struct rx_fix *f, uint32_t mrdsl, uint32_t max_ahs, bool hd, bool dd)
{
	f->lim = (struct iscsi_rx_limits){ mrdsl, max_ahs, hd, dd };
	f->buf = malloc(iscsi_rx_buf_size(&f->lim));
	cr_assert_not_null(f->buf);
	cr_assert_eq(iscsi_rx_init(&f->rx, &f->lim, f->buf, iscsi_rx_buf_size(&f->lim)), 0);
}

static void rx_close(struct rx_fix *f)
{
	free(f->buf);
}

/* A stream of varied target PDUs; *n gets the count. */
static size_t mk_stream(uint8_t *s, bool hd, bool dd, int *n)
{
	static uint8_t data[1000], ahs[8] = { 0, 4, 1, 0, 9, 9, 9, 9 };
	struct iscsi_bhs h;
	size_t len = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	h = bhs_of(ISCSI_OP_NOP_IN);
	len += mk_pdu(&h, NULL, 0, NULL, 0, hd, dd, s + len);
	h = bhs_of(ISCSI_OP_DATA_IN);
	h.seq = 0;
	len += mk_pdu(&h, NULL, 0, data, 1000, hd, dd, s + len);
	h = bhs_of(ISCSI_OP_SCSI_RSP);
	len += mk_pdu(&h, ahs, 8, data, 3, hd, dd, s + len);
	h = bhs_of(ISCSI_OP_R2T);
	h.residual = 4096;
	len += mk_pdu(&h, NULL, 0, NULL, 0, hd, dd, s + len);
	h = bhs_of(ISCSI_OP_TEXT_RSP);
	len += mk_pdu(&h, NULL, 0, data, 17, hd, dd, s + len);
	h = bhs_of(ISCSI_OP_REJECT);
	len += mk_pdu(&h, NULL, 0, data, 48, hd, dd, s + len);
	*n = 6;
	return len;
}

static void check_stream_pdu(int i, const struct iscsi_rx_pdu *p)
{
	static const uint8_t ops[] = { ISCSI_OP_NOP_IN, ISCSI_OP_DATA_IN, ISCSI_OP_SCSI_RSP,
				       ISCSI_OP_R2T, ISCSI_OP_TEXT_RSP, ISCSI_OP_REJECT };
	static const uint32_t lens[] = { 0, 1000, 3, 0, 17, 48 };

	cr_assert_eq(p->bhs.opcode, ops[i], "pdu %d", i);
	cr_assert_eq(p->dlen, lens[i], "pdu %d", i);
	cr_assert_eq(p->bhs.dlen, lens[i]);
	for (uint32_t k = 0; k < p->dlen; k++)
		cr_assert_eq(p->data[k], (uint8_t)(k * 7 + 1), "pdu %d byte %u", i, k);
	if (!p->dlen)
		cr_assert_null(p->data);
	if (ops[i] == ISCSI_OP_SCSI_RSP) {
		cr_assert_eq(p->ahs_len, 8);
		cr_assert_eq(p->ahs[4], 9);
	} else {
		cr_assert_eq(p->ahs_len, 0);
	}
	if (ops[i] == ISCSI_OP_R2T)
		cr_assert_eq(p->bhs.residual, 4096);
}

/* Feed the stream in chunks of the given sizes (cycled); count PDUs. */
static int feed_chunks(struct iscsi_rx *rx, const uint8_t *s, size_t len,
		       const size_t *chunks, int nchunks)
{
	size_t off = 0;
	int got = 0, c = 0;

	while (off < len) {
		size_t clen = chunks[c++ % nchunks], used;

		if (clen > len - off)
			clen = len - off;
		while (clen) {
			struct iscsi_rx_pdu p;
			int rc = iscsi_rx_feed(rx, s + off, clen, &used, &p);

			cr_assert_geq(rc, 0, "rc %d (%s)", rc, rx->why);
			cr_assert_leq(used, clen);
			off += used;
			clen -= used;
			if (rc == 1)
				check_stream_pdu(got++, &p);
			else
				cr_assert_eq(clen, 0);
		}
	}
	cr_assert_eq(rx->have, 0);
	return got;
}

Test(iscsi_pdu, rx_every_split_every_digest_mode)
{
	static uint8_t s[4096];

	for (int mode = 0; mode < 4; mode++) {
		bool hd = mode & 1, dd = mode & 2;
		struct rx_fix f;
		int n;
		size_t len = mk_stream(s, hd, dd, &n);

		rx_open(&f, 1024, 64, hd, dd);
		cr_assert_eq(feed_chunks(&f.rx, s, len, &len, 1), n);
		cr_assert_eq(feed_chunks(&f.rx, s, len, (size_t[]){ 1 }, 1), n);
		for (size_t cut = 0; cut <= len; cut++) {
			size_t two[2] = { cut ? cut : len, len - cut };

			cr_assert_eq(feed_chunks(&f.rx, s, len, two, 2), n, "cut %zu", cut);
		}
		cr_assert_eq(feed_chunks(&f.rx, s, len, (size_t[]){ 3, 47, 49, 5, 1 }, 5), n);
		rx_close(&f);
	}
}

static int feed_all(struct iscsi_rx *rx, const uint8_t *s, size_t len, int *pdus)
{
	size_t used;
	struct iscsi_rx_pdu p;
	int rc;

	*pdus = 0;
	while (len) {
		rc = iscsi_rx_feed(rx, s, len, &used, &p);
		if (rc < 0)
			return rc;
		*pdus += rc;
		s += used;
		len -= used;
	}
	return 0;
}

Test(iscsi_pdu, rx_limits)
{
	static uint8_t s[2048], data[1024], ahs[1024];
	struct iscsi_bhs h = bhs_of(ISCSI_OP_DATA_IN);
	struct rx_fix f;
	struct iscsi_rx_pdu p;
	size_t len, used;
	int n;

	rx_open(&f, 512, 16, false, false);
	/* Exactly MaxRecvDataSegmentLength, and the AHS bound. */
	len = mk_pdu(&h, ahs, 16, data, 512, false, false, s);
	cr_assert_eq(feed_all(&f.rx, s, len, &n), 0);
	cr_assert_eq(n, 1);
	/* One byte over: refused from the BHS alone, nothing more read. */
	len = mk_pdu(&h, NULL, 0, data, 513, false, false, s);
	cr_assert_eq(iscsi_rx_feed(&f.rx, s, len, &used, &p), -EMSGSIZE);
	cr_assert_eq(used, 48);
	/* Sticky until reset. */
	cr_assert_eq(iscsi_rx_feed(&f.rx, s, 1, &used, &p), -EMSGSIZE);
	cr_assert_eq(used, 0);
	iscsi_rx_reset(&f.rx);
	len = mk_pdu(&h, ahs, 20, NULL, 0, false, false, s);
	cr_assert_eq(iscsi_rx_feed(&f.rx, s, len, &used, &p), -E2BIG);
	iscsi_rx_reset(&f.rx);
	/* Reserved opcode, and an initiator opcode, from the target. */
	len = mk_pdu(&h, NULL, 0, NULL, 0, false, false, s);
	s[0] = 0x1c;
	cr_assert_eq(iscsi_rx_feed(&f.rx, s, len, &used, &p), -EPROTO);
	cr_assert_str_eq(f.rx.why, "reserved opcode");
	iscsi_rx_reset(&f.rx);
	s[0] = ISCSI_OP_SCSI_CMD;
	cr_assert_eq(iscsi_rx_feed(&f.rx, s, len, &used, &p), -EPROTO);
	cr_assert_str_eq(f.rx.why, "initiator opcode from the target");
	iscsi_rx_reset(&f.rx);
	/* A BHS rule: Reject with a short data segment. */
	h = bhs_of(ISCSI_OP_REJECT);
	h.dlen = 48;
	cr_assert_eq(iscsi_bhs_encode(&h, s, NULL), 0);
	s[7] = 8;
	memset(s + 48, 0, 8);
	cr_assert_eq(iscsi_rx_feed(&f.rx, s, 56, &used, &p), -EINVAL);
	rx_close(&f);

	/* Limits themselves. */
	struct iscsi_rx_limits lim = { 511, 0, false, false };
	cr_assert_eq(iscsi_rx_init(&f.rx, &lim, s, sizeof(s)), -EINVAL);
	lim = (struct iscsi_rx_limits){ ISCSI_DSL_MAX + 1, 0, false, false };
	cr_assert_eq(iscsi_rx_init(&f.rx, &lim, s, sizeof(s)), -EINVAL);
	lim = (struct iscsi_rx_limits){ 512, ISCSI_AHS_MAX + 4, false, false };
	cr_assert_eq(iscsi_rx_init(&f.rx, &lim, s, sizeof(s)), -EINVAL);
	lim = (struct iscsi_rx_limits){ 512, 2, false, false };
	cr_assert_eq(iscsi_rx_init(&f.rx, &lim, s, sizeof(s)), -EINVAL);
	lim = (struct iscsi_rx_limits){ 1024, 0, true, true };
	cr_assert_eq(iscsi_rx_init(&f.rx, &lim, s, iscsi_rx_buf_size(&lim) - 1), -EINVAL);
	cr_assert_eq(iscsi_rx_buf_size(&lim), 48 + 8 + 1024);
}

Test(iscsi_pdu, rx_digest_errors)
{
	static uint8_t s[4096];
	struct iscsi_bhs h = bhs_of(ISCSI_OP_DATA_IN);
	uint8_t data[10] = { 1, 2, 3 };
	struct rx_fix f;
	size_t len;
	int n;

	rx_open(&f, 8192, 0, true, true);
	len = mk_pdu(&h, NULL, 0, data, 10, true, true, s);
	cr_assert_eq(feed_all(&f.rx, s, len, &n), 0);
	/* Flip each byte of the PDU: header bytes give -EBADMSG or a
	 * length/opcode error first, data/pad/digest bytes -EILSEQ. */
	for (size_t i = 0; i < len; i++) {
		int rc;

		s[i] ^= 0x10;
		iscsi_rx_reset(&f.rx);
		rc = feed_all(&f.rx, s, len, &n);
		if (i >= 52)
			cr_assert_eq(rc, -EILSEQ, "byte %zu", i);
		else if (i == 0 || (i >= 4 && i <= 7))
			/* Framing: refused, or waiting for bytes never sent. */
			cr_assert(rc < 0 || n == 0, "byte %zu", i);
		else
			cr_assert_eq(rc, -EBADMSG, "byte %zu", i);
		s[i] ^= 0x10;
	}
	/* Digests switch on between PDUs only. */
	iscsi_rx_reset(&f.rx);
	struct iscsi_rx_limits lim = { 8192, 0, false, false };
	size_t used;
	struct iscsi_rx_pdu p;
	cr_assert_eq(iscsi_rx_feed(&f.rx, s, 10, &used, &p), 0);
	cr_assert_eq(iscsi_rx_set_limits(&f.rx, &lim), -EBUSY);
	iscsi_rx_reset(&f.rx);
	cr_assert_eq(iscsi_rx_set_limits(&f.rx, &lim), 0);
	lim.max_recv_dsl = 8193;
	cr_assert_eq(iscsi_rx_set_limits(&f.rx, &lim), -EINVAL);
	rx_close(&f);
}

/*
 * Mutation fuzz: flip, insert and delete bytes of a valid stream, feed it
 * in random chunks.  Whatever comes out must respect the limits and lie
 * inside the buffer; errors must be the documented ones.
 */
Test(iscsi_pdu, fuzz)
{
	static uint8_t base[4096], s[4200];
	unsigned pdus = 0, errs = 0;

	pt_rng = 99;
	for (int iter = 0; iter < 20000; iter++) {
		bool hd = iter & 1, dd = iter & 2;
		struct rx_fix f;
		int n;
		size_t blen = mk_stream(base, hd, dd, &n), len = blen, off = 0;

		memcpy(s, base, blen);
		for (int k = 1 + (int)(pt_rand() % 4); k > 0; k--) {
			size_t at = pt_rand() % len;

			switch (pt_rand() % 4) {
			case 0:
			case 1:
				s[at] ^= (uint8_t)(1u << (pt_rand() % 8));
				break;
			case 2:
				memmove(s + at + 1, s + at, len - at);
				s[at] = (uint8_t)pt_rand();
				len++;
				break;
			default:
				memmove(s + at, s + at + 1, len - at - 1);
				len--;
				break;
			}
		}
		rx_open(&f, 1024, 8, hd, dd);
		while (off < len) {
			size_t clen = 1 + pt_rand() % 300, used;
			struct iscsi_rx_pdu p;
			int rc;

			if (clen > len - off)
				clen = len - off;
			rc = iscsi_rx_feed(&f.rx, s + off, clen, &used, &p);
			off += used;
			if (rc < 0) {
				cr_assert(rc == -EBADMSG || rc == -EILSEQ || rc == -EMSGSIZE ||
					  rc == -E2BIG || rc == -EPROTO || rc == -EINVAL, "rc %d", rc);
				cr_assert_not_null(f.rx.why);
				errs++;
				break;
			}
			if (rc == 1) {
				cr_assert_leq(p.dlen, 1024);
				cr_assert_leq(p.ahs_len, 8);
				cr_assert(iscsi_op_is_target(p.bhs.opcode));
				if (p.dlen)
					cr_assert(p.data >= f.buf && p.data + p.dlen <= f.buf +
						  iscsi_rx_buf_size(&f.lim));
				pdus++;
			}
		}
		rx_close(&f);
	}
	cr_expect(pdus > 20000 && errs > 5000, "pdus %u errs %u", pdus, errs);
}
