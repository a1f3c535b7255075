/*
 * iSCSI PDU codec and incremental receiver (RFC 7143 section 11).
 *
 * One table says which BHS fields each opcode carries; the encoder and
 * the decoder walk it, so the two directions cannot disagree about the
 * layout.  Per-opcode rules the table cannot express live in
 * bhs_check().
 */
#include <errno.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "kernel/lib/crc32c.h"
#include "storage/lib/iscsi_pdu.h"

/* Fields of bytes 8..47 an opcode carries. */
enum {
	FL_LUN		= 1u << 0,	/* 8..15 (Login: ISID and TSIH) */
	FL_TTT		= 1u << 1,	/* 20..23 */
	FL_CID		= 1u << 2,	/* 20..21 */
	FL_SN		= 1u << 3,	/* 24..27 */
	FL_EXPSN	= 1u << 4,	/* 28..31 */
	FL_MAXSN	= 1u << 5,	/* 32..35 */
	FL_SEQ		= 1u << 6,	/* 36..39 */
	FL_OFFSET	= 1u << 7,	/* 40..43 */
	FL_RESID	= 1u << 8,	/* 44..47 */
	FL_CDB		= 1u << 9,	/* 32..47 */
	FL_LSTATUS	= 1u << 10,	/* 36..37 status class and detail */
	FL_TIME2	= 1u << 11,	/* 40..43 Time2Wait and Time2Retain */
	FL_ASYNC	= 1u << 12,	/* 36..43 event, vcode, parameters */
	FL_B2		= 1u << 13,	/* byte 2 */
	FL_B3		= 1u << 14,	/* byte 3 */
};

#define FL_RSP	(FL_SN | FL_EXPSN | FL_MAXSN)	/* StatSN, ExpCmdSN, MaxCmdSN */
#define FL_REQ	(FL_SN | FL_EXPSN)		/* CmdSN, ExpStatSN */

struct op_layout {
	uint8_t op;
	uint16_t fields;
	const char *name;
};

/* RFC 7143 11.3 to 11.19, one row per opcode. */
static const struct op_layout op_layouts[] = {
	{ ISCSI_OP_NOP_OUT, FL_LUN | FL_TTT | FL_REQ, "NOP-Out" },
	{ ISCSI_OP_SCSI_CMD, FL_LUN | FL_TTT | FL_REQ | FL_CDB, "SCSI Command" },
	{ ISCSI_OP_TMF_REQ, FL_LUN | FL_TTT | FL_REQ | FL_MAXSN | FL_SEQ,
	  "Task Management Request" },
	{ ISCSI_OP_LOGIN_REQ, FL_B2 | FL_B3 | FL_LUN | FL_CID | FL_REQ, "Login Request" },
	{ ISCSI_OP_TEXT_REQ, FL_LUN | FL_TTT | FL_REQ, "Text Request" },
	{ ISCSI_OP_DATA_OUT, FL_LUN | FL_TTT | FL_EXPSN | FL_SEQ | FL_OFFSET,
	  "SCSI Data-Out" },
	{ ISCSI_OP_LOGOUT_REQ, FL_CID | FL_REQ, "Logout Request" },
	{ ISCSI_OP_SNACK_REQ, FL_LUN | FL_TTT | FL_EXPSN | FL_OFFSET | FL_RESID,
	  "SNACK Request" },
	{ ISCSI_OP_NOP_IN, FL_LUN | FL_TTT | FL_RSP, "NOP-In" },
	{ ISCSI_OP_SCSI_RSP, FL_B2 | FL_B3 | FL_TTT | FL_RSP | FL_SEQ | FL_OFFSET |
	  FL_RESID, "SCSI Response" },
	{ ISCSI_OP_TMF_RSP, FL_B2 | FL_RSP, "Task Management Response" },
	{ ISCSI_OP_LOGIN_RSP, FL_B2 | FL_B3 | FL_LUN | FL_RSP | FL_LSTATUS,
	  "Login Response" },
	{ ISCSI_OP_TEXT_RSP, FL_LUN | FL_TTT | FL_RSP, "Text Response" },
	{ ISCSI_OP_DATA_IN, FL_B3 | FL_LUN | FL_TTT | FL_RSP | FL_SEQ | FL_OFFSET |
	  FL_RESID, "SCSI Data-In" },
	{ ISCSI_OP_LOGOUT_RSP, FL_B2 | FL_RSP | FL_TIME2, "Logout Response" },
	{ ISCSI_OP_R2T, FL_LUN | FL_TTT | FL_RSP | FL_SEQ | FL_OFFSET | FL_RESID,
	  "R2T" },
	{ ISCSI_OP_ASYNC, FL_LUN | FL_RSP | FL_ASYNC, "Asynchronous Message" },
	{ ISCSI_OP_REJECT, FL_B2 | FL_RSP | FL_SEQ, "Reject" },
};

static const struct op_layout *op_find(uint8_t op)
{
	for (size_t i = 0; i < sizeof(op_layouts) / sizeof(op_layouts[0]); i++)
		if (op_layouts[i].op == op)
			return &op_layouts[i];
	return NULL;
}

bool iscsi_op_is_target(uint8_t opcode)
{
	return (opcode & 0x20) && op_find(opcode);
}

bool iscsi_op_is_initiator(uint8_t opcode)
{
	return !(opcode & 0x20) && op_find(opcode);
}

const char *iscsi_op_name(uint8_t opcode)
{
	const struct op_layout *l = op_find(opcode);

	return l ? l->name : "reserved";
}

void iscsi_put_digest(uint8_t *p, uint32_t crc)
{
	st_le32(p, crc);
}

uint32_t iscsi_get_digest(const uint8_t *p)
{
	return ld_le32(p);
}

uint32_t iscsi_data_digest(const void *data, uint32_t dlen)
{
	static const uint8_t zero[3];

	return crc32c(crc32c(CRC32C_INIT, data, dlen), zero, iscsi_pad4(dlen));
}

/* ---- BHS ---- */

static int fail(const char **why, const char *msg, int rc)
{
	if (why)
		*why = msg;
	return rc;
}

/*
 * Rules beyond the layout that a receiver relies on.  Reserved bits are
 * not checked: RFC 7143 11 says a receiver ignores them.
 */
static int bhs_check(const struct iscsi_bhs *h, const char **why)
{
	switch (h->opcode) {
	case ISCSI_OP_LOGIN_REQ:
	case ISCSI_OP_LOGIN_RSP:
		/* 11.12.3: stage 2 is reserved; NSG only counts with T. */
		if (ISCSI_LOGIN_CSG(h->flags) == 2)
			return fail(why, "login: reserved CSG 2", -EINVAL);
		if ((h->flags & ISCSI_F_TRANSIT) && ISCSI_LOGIN_NSG(h->flags) == 2)
			return fail(why, "login: reserved NSG 2", -EINVAL);
		/* 11.12.2: T and C together are a protocol error. */
		if ((h->flags & ISCSI_F_TRANSIT) && (h->flags & ISCSI_F_CONTINUE))
			return fail(why, "login: T and C both set", -EINVAL);
		break;
	case ISCSI_OP_TEXT_REQ:
	case ISCSI_OP_TEXT_RSP:
		/* 11.10.2: F and C together are a protocol error. */
		if ((h->flags & ISCSI_F_FINAL) && (h->flags & ISCSI_F_CONTINUE))
			return fail(why, "text: F and C both set", -EINVAL);
		break;
	case ISCSI_OP_DATA_IN:
		/* 11.7.4: status only on the final Data-In of a command. */
		if ((h->flags & ISCSI_F_STATUS) && !(h->flags & ISCSI_F_FINAL))
			return fail(why, "Data-In: S without F", -EINVAL);
		if ((h->flags & ISCSI_F_OVERFLOW) && (h->flags & ISCSI_F_UNDERFLOW))
			return fail(why, "Data-In: O and U both set", -EINVAL);
		break;
	case ISCSI_OP_SCSI_RSP:
		/* 11.4.5: overflow and underflow exclude each other. */
		if ((h->flags & ISCSI_F_OVERFLOW) && (h->flags & ISCSI_F_UNDERFLOW))
			return fail(why, "SCSI Response: O and U both set", -EINVAL);
		if ((h->flags & ISCSI_F_BIDI_OVERFLOW) && (h->flags & ISCSI_F_BIDI_UNDERFLOW))
			return fail(why, "SCSI Response: o and u both set", -EINVAL);
		break;
	case ISCSI_OP_REJECT:
		/* 11.17: the data segment is the rejected PDU's header. */
		if (h->dlen < ISCSI_BHS_LEN)
			return fail(why, "Reject: data shorter than a BHS", -EINVAL);
		break;
	default:
		break;
	}
	return 0;
}

static void decode_fields(const uint8_t *b, uint16_t f, struct iscsi_bhs *h)
{
	if (f & FL_B2)
		h->b2 = b[2];
	if (f & FL_B3)
		h->b3 = b[3];
	if (f & FL_LUN)
		h->lun = ld_be64(b + 8);
	if (f & FL_TTT)
		h->ttt = ld_be32(b + 20);
	if (f & FL_CID)
		h->cid = ld_be16(b + 20);
	if (f & FL_SN)
		h->sn = ld_be32(b + 24);
	if (f & FL_EXPSN)
		h->exp_sn = ld_be32(b + 28);
	if (f & FL_MAXSN)
		h->max_cmdsn = ld_be32(b + 32);
	if (f & FL_SEQ)
		h->seq = ld_be32(b + 36);
	if (f & FL_OFFSET)
		h->offset = ld_be32(b + 40);
	if (f & FL_RESID)
		h->residual = ld_be32(b + 44);
	if (f & FL_CDB)
		memcpy(h->cdb, b + 32, ISCSI_CDB_MAX);
	if (f & FL_LSTATUS) {
		h->status_class = b[36];
		h->status_detail = b[37];
	}
	if (f & FL_TIME2) {
		h->time2wait = ld_be16(b + 40);
		h->time2retain = ld_be16(b + 42);
	}
	if (f & FL_ASYNC) {
		h->async_event = b[36];
		h->async_vcode = b[37];
		for (int i = 0; i < 3; i++)
			h->param[i] = ld_be16(b + 38 + 2 * i);
	}
}

int iscsi_bhs_decode(const uint8_t *b, struct iscsi_bhs *h, const char **why)
{
	const struct op_layout *l;

	memset(h, 0, sizeof(*h));
	h->opcode = b[0] & 0x3f;
	l = op_find(h->opcode);
	if (!l)
		return fail(why, "reserved opcode", -EPROTO);
	/* The I bit only means something on initiator opcodes (11.2.1.1). */
	if (!(h->opcode & 0x20))
		h->immediate = b[0] & 0x40;
	h->flags = b[1];
	h->ahs_words = b[4];
	h->dlen = ld_be24(b + 5);
	h->itt = ld_be32(b + 16);
	decode_fields(b, l->fields, h);
	return bhs_check(h, why);
}

static void encode_fields(const struct iscsi_bhs *h, uint16_t f, uint8_t *b)
{
	if (f & FL_B2)
		b[2] = h->b2;
	if (f & FL_B3)
		b[3] = h->b3;
	if (f & FL_LUN) {
		st_be64(b + 8, h->lun);
	}
	if (f & FL_TTT)
		st_be32(b + 20, h->ttt);
	if (f & FL_CID)
		st_be16(b + 20, h->cid);
	if (f & FL_SN)
		st_be32(b + 24, h->sn);
	if (f & FL_EXPSN)
		st_be32(b + 28, h->exp_sn);
	if (f & FL_MAXSN)
		st_be32(b + 32, h->max_cmdsn);
	if (f & FL_SEQ)
		st_be32(b + 36, h->seq);
	if (f & FL_OFFSET)
		st_be32(b + 40, h->offset);
	if (f & FL_RESID)
		st_be32(b + 44, h->residual);
	if (f & FL_CDB)
		memcpy(b + 32, h->cdb, ISCSI_CDB_MAX);
	if (f & FL_LSTATUS) {
		b[36] = h->status_class;
		b[37] = h->status_detail;
	}
	if (f & FL_TIME2) {
		st_be16(b + 40, h->time2wait);
		st_be16(b + 42, h->time2retain);
	}
	if (f & FL_ASYNC) {
		b[36] = h->async_event;
		b[37] = h->async_vcode;
		for (int i = 0; i < 3; i++)
			st_be16(b + 38 + 2 * i, h->param[i]);
	}
}

int iscsi_bhs_encode(const struct iscsi_bhs *h, uint8_t *b, const char **why)
{
	const struct op_layout *l = op_find(h->opcode);
	int rc;

	if (!l)
		return fail(why, "reserved opcode", -EINVAL);
	if (h->dlen > ISCSI_DSL_MAX)
		return fail(why, "DataSegmentLength over 24 bits", -EINVAL);
	rc = bhs_check(h, why);
	if (rc)
		return rc;
	memset(b, 0, ISCSI_BHS_LEN);
	b[0] = h->opcode;
	/* 11.12: a Login Request always has I set. */
	if (h->opcode == ISCSI_OP_LOGIN_REQ || (h->immediate && !(h->opcode & 0x20)))
		b[0] |= 0x40;
	b[1] = h->flags;
	b[4] = h->ahs_words;
	st_be24(b + 5, h->dlen);
	st_be32(b + 16, h->itt);
	encode_fields(h, l->fields, b);
	return 0;
}

int iscsi_pdu_header(const struct iscsi_bhs *h, bool hd, uint8_t *out, const char **why)
{
	struct iscsi_bhs t = *h;
	int rc;

	/* We never send an AHS: CDBs are at most 16 bytes, no bidi. */
	t.ahs_words = 0;
	rc = iscsi_bhs_encode(&t, out, why);
	if (rc)
		return rc;
	if (!hd)
		return ISCSI_BHS_LEN;
	iscsi_put_digest(out + ISCSI_BHS_LEN, crc32c(CRC32C_INIT, out, ISCSI_BHS_LEN));
	return ISCSI_BHS_LEN + ISCSI_DIGEST_LEN;
}

int iscsi_pdu_build(const struct iscsi_bhs *h, const void *data, uint32_t dlen,
		    bool hd, bool dd, uint8_t *out, size_t cap, size_t *len)
{
	struct iscsi_bhs t = *h;
	uint32_t pad = iscsi_pad4(dlen);
	size_t need;
	int hl;

	if (dlen > ISCSI_DSL_MAX || (dlen && !data))
		return -EINVAL;
	need = ISCSI_BHS_LEN + (hd ? ISCSI_DIGEST_LEN : 0) + dlen + pad +
	       (dd && dlen ? ISCSI_DIGEST_LEN : 0);
	if (need > cap)
		return -ENOSPC;
	t.dlen = dlen;
	hl = iscsi_pdu_header(&t, hd, out, NULL);
	if (hl < 0)
		return hl;
	if (dlen) {
		memcpy(out + hl, data, dlen);
		memset(out + hl + dlen, 0, pad);
		/* 11.1: no digest on an empty data segment. */
		if (dd)
			iscsi_put_digest(out + hl + dlen + pad, iscsi_data_digest(data, dlen));
	}
	*len = need;
	return 0;
}

int iscsi_bhs_scsi_cmd(struct iscsi_bhs *h, uint64_t lun, uint32_t itt,
		       const uint8_t *cdb, size_t cdb_len, bool read, bool write,
		       uint32_t edtl)
{
	if (cdb_len == 0 || cdb_len > ISCSI_CDB_MAX || (edtl && !read && !write))
		return -EINVAL;
	memset(h, 0, sizeof(*h));
	h->opcode = ISCSI_OP_SCSI_CMD;
	h->flags = ISCSI_F_FINAL | ISCSI_ATTR_SIMPLE;
	if (read)
		h->flags |= ISCSI_F_CMD_READ;
	if (write)
		h->flags |= ISCSI_F_CMD_WRITE;
	h->lun = lun;
	h->itt = itt;
	h->ttt = edtl;
	memcpy(h->cdb, cdb, cdb_len);
	return 0;
}

int iscsi_rsp_sense(const uint8_t *data, uint32_t dlen, const uint8_t **sense,
		    size_t *slen)
{
	uint16_t n;

	*sense = NULL;
	*slen = 0;
	if (dlen == 0)
		return 0;
	if (dlen < 2)
		return -EBADMSG;
	n = ld_be16(data);
	if (n > dlen - 2)
		return -EBADMSG;
	if (n) {
		*sense = data + 2;
		*slen = n;
	}
	return 0;
}

/* ---- incremental receiver ---- */

static bool limits_ok(const struct iscsi_rx_limits *lim)
{
	/* RFC 7143 13.12: MaxRecvDataSegmentLength is 512..2^24-1. */
	return lim->max_recv_dsl >= 512 && lim->max_recv_dsl <= ISCSI_DSL_MAX &&
	       lim->max_ahs <= ISCSI_AHS_MAX && (lim->max_ahs & 3) == 0;
}

size_t iscsi_rx_buf_size(const struct iscsi_rx_limits *lim)
{
	return ISCSI_BHS_LEN + lim->max_ahs + 2 * ISCSI_DIGEST_LEN +
	       lim->max_recv_dsl + iscsi_pad4(lim->max_recv_dsl);
}

int iscsi_rx_init(struct iscsi_rx *rx, const struct iscsi_rx_limits *lim,
		  uint8_t *buf, size_t cap)
{
	if (!limits_ok(lim) || !buf || cap < iscsi_rx_buf_size(lim))
		return -EINVAL;
	memset(rx, 0, sizeof(*rx));
	rx->lim = *lim;
	rx->buf = buf;
	rx->cap = cap;
	iscsi_rx_reset(rx);
	return 0;
}

void iscsi_rx_reset(struct iscsi_rx *rx)
{
	rx->have = 0;
	rx->need = ISCSI_BHS_LEN;
	rx->have_bhs = false;
	rx->err = 0;
	rx->why = NULL;
}

int iscsi_rx_set_limits(struct iscsi_rx *rx, const struct iscsi_rx_limits *lim)
{
	if (rx->have)
		return -EBUSY;
	if (!limits_ok(lim) || rx->cap < iscsi_rx_buf_size(lim))
		return -EINVAL;
	rx->lim = *lim;
	return 0;
}

static int rx_fail(struct iscsi_rx *rx, int err, const char *why)
{
	rx->err = err;
	rx->why = why;
	return err;
}

/*
 * The BHS is in: check what can be checked before the rest arrives, so a
 * hostile length is refused without waiting for (or buffering) its bytes.
 */
static int rx_got_bhs(struct iscsi_rx *rx)
{
	const uint8_t *b = rx->buf;
	uint8_t op = b[0] & 0x3f;
	uint32_t ahs = (uint32_t)b[4] * 4;
	uint32_t dlen = ld_be24(b + 5);

	if (!op_find(op))
		return rx_fail(rx, -EPROTO, "reserved opcode");
	if (!iscsi_op_is_target(op))
		return rx_fail(rx, -EPROTO, "initiator opcode from the target");
	if (ahs > rx->lim.max_ahs)
		return rx_fail(rx, -E2BIG, "AHS longer than allowed");
	if (dlen > rx->lim.max_recv_dsl)
		return rx_fail(rx, -EMSGSIZE, "data segment over MaxRecvDataSegmentLength");
	rx->need = ISCSI_BHS_LEN + ahs + (rx->lim.header_digest ? ISCSI_DIGEST_LEN : 0);
	if (dlen)
		rx->need += dlen + iscsi_pad4(dlen) +
			    (rx->lim.data_digest ? ISCSI_DIGEST_LEN : 0);
	rx->have_bhs = true;
	return 0;
}

/* The whole PDU is in: verify digests and hand it out. */
static int rx_complete(struct iscsi_rx *rx, struct iscsi_rx_pdu *out)
{
	const uint8_t *b = rx->buf;
	uint32_t ahs = (uint32_t)b[4] * 4;
	uint32_t dlen = ld_be24(b + 5);
	size_t hl = ISCSI_BHS_LEN + ahs;
	const char *why = NULL;
	int rc;

	if (rx->lim.header_digest) {
		if (crc32c(CRC32C_INIT, b, hl) != iscsi_get_digest(b + hl))
			return rx_fail(rx, -EBADMSG, "header digest mismatch");
		hl += ISCSI_DIGEST_LEN;
	}
	/* Over the padding as received: it is covered, zero or not (13.1). */
	if (dlen && rx->lim.data_digest) {
		size_t dl = dlen + iscsi_pad4(dlen);

		if (crc32c(CRC32C_INIT, b + hl, dl) != iscsi_get_digest(b + hl + dl))
			return rx_fail(rx, -EILSEQ, "data digest mismatch");
	}
	rc = iscsi_bhs_decode(b, &out->bhs, &why);
	if (rc)
		return rx_fail(rx, rc, why);
	out->raw_bhs = b;
	out->ahs = ahs ? b + ISCSI_BHS_LEN : NULL;
	out->ahs_len = ahs;
	out->data = dlen ? b + hl : NULL;
	out->dlen = dlen;
	/* The next feed starts a new PDU; the buffer stays intact until then. */
	rx->have = 0;
	rx->need = ISCSI_BHS_LEN;
	rx->have_bhs = false;
	return 1;
}

int iscsi_rx_feed(struct iscsi_rx *rx, const void *p, size_t len, size_t *used,
		  struct iscsi_rx_pdu *out)
{
	const uint8_t *src = p;
	size_t taken = 0;

	*used = 0;
	if (rx->err)
		return rx->err;
	for (;;) {
		size_t n = rx->need - rx->have;

		if (n > len - taken)
			n = len - taken;
		if (n)
			memcpy(rx->buf + rx->have, src + taken, n);
		rx->have += n;
		taken += n;
		*used = taken;
		if (rx->have < rx->need)
			return 0;
		if (rx->have_bhs)
			return rx_complete(rx, out);
		if (rx_got_bhs(rx))
			return rx->err;
		/* A bare 48-byte PDU without digests is complete right away. */
		if (rx->have == rx->need)
			return rx_complete(rx, out);
	}
}
