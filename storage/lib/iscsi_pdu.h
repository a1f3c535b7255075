/*
 * iSCSI PDU codec (RFC 7143 section 11).  Pure: no allocation, no global
 * state, no I/O; the kernel's iSCSI session and the host tests compile
 * the same file.
 *
 * A PDU on the wire (RFC 7143 11.1):
 *	BHS (48 bytes) | AHS (TotalAHSLength * 4) | HeaderDigest (0 or 4)
 *	| data segment (DataSegmentLength, padded to 4) | DataDigest (0 or 4)
 * The digests are CRC32C (lib/crc32c.h), sent least significant byte
 * first as in RFC 3720 B.4; the header digest covers BHS and AHS, the
 * data digest covers the data and its padding (RFC 7143 13.1).
 *
 * struct iscsi_bhs is the decoded BHS of any opcode.  The fields a given
 * opcode does not carry are zero after decoding and ignored by encoding;
 * the comment on each field lists the opcodes that carry it.  Both
 * directions are encoded and decoded: the session sends the initiator
 * opcodes and receives the target ones, and the tests play the target.
 *
 * The receiver (struct iscsi_rx) is fed arbitrary TCP chunks and yields
 * whole, verified PDUs.  It refuses, with a distinct negative errno and a
 * static reason string, what a hostile or broken target can send:
 *	-EBADMSG	header digest mismatch
 *	-EILSEQ		data digest mismatch
 *	-EMSGSIZE	DataSegmentLength above our MaxRecvDataSegmentLength
 *	-E2BIG		AHS longer than the configured bound
 *	-EPROTO		reserved or unknown opcode, or an initiator opcode
 *	-EINVAL		a BHS field with a value the RFC forbids
 * After an error the stream is out of step: the receiver keeps returning
 * the error until iscsi_rx_reset(), and the session must drop the
 * connection (RFC 7143 7.8: a header digest error loses PDU framing).
 */
#ifndef TERN_STORAGE_ISCSI_PDU_H
#define TERN_STORAGE_ISCSI_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISCSI_BHS_LEN		48
#define ISCSI_DIGEST_LEN	4
#define ISCSI_DSL_MAX		0xffffffu	/* DataSegmentLength is 24 bits */
#define ISCSI_AHS_MAX		(255u * 4)	/* TotalAHSLength is 8 bits of words */
#define ISCSI_CDB_MAX		16		/* longer CDBs need an AHS: unused */
#define ISCSI_RSVD_TAG		0xffffffffu	/* RFC 7143 11.18.4, 11.9 */
#define ISCSI_VERSION		0x00		/* Version-max/min (RFC 7143 11.12.4) */

/* Opcodes (RFC 7143 11.2.1.2). */
enum iscsi_opcode {
	ISCSI_OP_NOP_OUT	= 0x00,
	ISCSI_OP_SCSI_CMD	= 0x01,
	ISCSI_OP_TMF_REQ	= 0x02,
	ISCSI_OP_LOGIN_REQ	= 0x03,
	ISCSI_OP_TEXT_REQ	= 0x04,
	ISCSI_OP_DATA_OUT	= 0x05,
	ISCSI_OP_LOGOUT_REQ	= 0x06,
	ISCSI_OP_SNACK_REQ	= 0x10,	/* never sent: ErrorRecoveryLevel 0 */
	ISCSI_OP_NOP_IN		= 0x20,
	ISCSI_OP_SCSI_RSP	= 0x21,
	ISCSI_OP_TMF_RSP	= 0x22,
	ISCSI_OP_LOGIN_RSP	= 0x23,
	ISCSI_OP_TEXT_RSP	= 0x24,
	ISCSI_OP_DATA_IN	= 0x25,
	ISCSI_OP_LOGOUT_RSP	= 0x26,
	ISCSI_OP_R2T		= 0x31,
	ISCSI_OP_ASYNC		= 0x32,
	ISCSI_OP_REJECT		= 0x3f,
};

/* Byte 1 flag bits, by opcode. */
#define ISCSI_F_FINAL		0x80	/* F: most opcodes */
#define ISCSI_F_CMD_READ	0x40	/* R: SCSI Command (11.3.1.1) */
#define ISCSI_F_CMD_WRITE	0x20	/* W */
#define ISCSI_F_CMD_ATTR_MASK	0x07	/* task attribute (11.3.1.2) */
#define ISCSI_F_CONTINUE	0x40	/* C: Text and Login (11.10.2, 11.12.2) */
#define ISCSI_F_TRANSIT		0x80	/* T: Login (11.12.1) */
#define ISCSI_F_DATA_ACK	0x40	/* A: Data-In (11.7.2) */
#define ISCSI_F_BIDI_OVERFLOW	0x10	/* o: SCSI Response (11.4.1) */
#define ISCSI_F_BIDI_UNDERFLOW	0x08	/* u */
#define ISCSI_F_OVERFLOW	0x04	/* O: SCSI Response, Data-In */
#define ISCSI_F_UNDERFLOW	0x02	/* U */
#define ISCSI_F_STATUS		0x01	/* S: Data-In carries status (11.7.4) */

/* Task attributes (RFC 7143 11.3.1.2). */
enum {
	ISCSI_ATTR_UNTAGGED = 0, ISCSI_ATTR_SIMPLE = 1, ISCSI_ATTR_ORDERED = 2,
	ISCSI_ATTR_HEAD_OF_QUEUE = 3, ISCSI_ATTR_ACA = 4,
};

/* Login stages, CSG/NSG (RFC 7143 11.12.3); 2 is reserved. */
enum {
	ISCSI_STAGE_SECURITY = 0, ISCSI_STAGE_OPERATIONAL = 1,
	ISCSI_STAGE_FULL_FEATURE = 3,
};

/* Logout reason codes (RFC 7143 11.14.1). */
enum {
	ISCSI_LOGOUT_SESSION = 0, ISCSI_LOGOUT_CONNECTION = 1,
	ISCSI_LOGOUT_RECOVERY = 2,
};

/* Task management functions (RFC 7143 11.5.1). */
enum {
	ISCSI_TMF_ABORT_TASK = 1, ISCSI_TMF_ABORT_TASK_SET = 2,
	ISCSI_TMF_CLEAR_ACA = 3, ISCSI_TMF_CLEAR_TASK_SET = 4,
	ISCSI_TMF_LUN_RESET = 5, ISCSI_TMF_TARGET_WARM_RESET = 6,
	ISCSI_TMF_TARGET_COLD_RESET = 7, ISCSI_TMF_TASK_REASSIGN = 8,
};

/*
 * A decoded BHS.  Numbers are host order.  Fields an opcode does not carry
 * decode as zero and are not encoded; the comments name the carriers.
 * Byte 1 stays raw in flags: ISCSI_F_* bits, the TMF function or the
 * Logout reason code in its low 7 bits, CSG/NSG for Login.
 */
struct iscsi_bhs {
	uint8_t opcode;		/* enum iscsi_opcode */
	bool immediate;		/* I bit, initiator opcodes (Login: always set) */
	uint8_t flags;		/* byte 1 */
	uint8_t b2, b3;		/* bytes 2..3: versions (Login), response and
				 * status (SCSI Rsp), status (Data-In), response
				 * (TMF Rsp, Logout Rsp), reason (Reject) */
	uint8_t ahs_words;	/* TotalAHSLength, in 4-byte words */
	uint32_t dlen;		/* DataSegmentLength, without padding */
	uint64_t lun;		/* bytes 8..15 big-endian: LUN; Login: ISID, TSIH */
	uint32_t itt;		/* Initiator Task Tag */
	uint32_t ttt;		/* 20: Target Transfer Tag; SCSI Cmd: Expected
				 * Data Transfer Length; TMF Req: Referenced
				 * Task Tag; SCSI Rsp: SNACK Tag */
	uint16_t cid;		/* 20: Login Req, Logout Req */
	uint32_t sn;		/* 24: CmdSN (requests), StatSN (responses) */
	uint32_t exp_sn;	/* 28: ExpStatSN (requests), ExpCmdSN (responses) */
	uint32_t max_cmdsn;	/* 32: MaxCmdSN; TMF Req: RefCmdSN */
	uint32_t seq;		/* 36: DataSN, R2TSN, ExpDataSN */
	uint32_t offset;	/* 40: Buffer Offset; SCSI Rsp: Bidi Residual */
	uint32_t residual;	/* 44: Residual Count; R2T: Desired Data
				 * Transfer Length */
	uint8_t status_class;	/* 36: Login Rsp */
	uint8_t status_detail;	/* 37: Login Rsp */
	uint16_t time2wait;	/* 40: Logout Rsp */
	uint16_t time2retain;	/* 42: Logout Rsp */
	uint8_t async_event;	/* 36: Async Message */
	uint8_t async_vcode;	/* 37: Async Message */
	uint16_t param[3];	/* 38..43: Async Message Parameter1..3 */
	uint8_t cdb[ISCSI_CDB_MAX];	/* 32..47: SCSI Command */
};

/* Login CSG and NSG (RFC 7143 11.12.3) and the ISID/TSIH in lun. */
#define ISCSI_LOGIN_CSG(flags)	(((flags) >> 2) & 3)
#define ISCSI_LOGIN_NSG(flags)	((flags) & 3)
#define ISCSI_LOGIN_TSIH(lun)	((uint16_t)((lun) & 0xffff))
#define ISCSI_LOGIN_ISID(lun)	((lun) >> 16)

/* Decode the 48 bytes at bhs.  Returns 0, or -EPROTO/-EINVAL with *why. */
int iscsi_bhs_decode(const uint8_t *bhs, struct iscsi_bhs *h, const char **why);

/*
 * Encode *h into 48 bytes.  Reserved fields are written as zero.
 * Returns 0, or -EINVAL (unknown opcode, dlen over 24 bits, a field the
 * opcode cannot carry such as CSG 2) with *why (why may be NULL).
 */
int iscsi_bhs_encode(const struct iscsi_bhs *h, uint8_t *bhs, const char **why);

/* true for the opcodes a target sends (RFC 7143 11.2.1.2). */
bool iscsi_op_is_target(uint8_t opcode);
/* true for the opcodes an initiator sends. */
bool iscsi_op_is_initiator(uint8_t opcode);
/* "SCSI Command", "R2T", ... or "reserved". */
const char *iscsi_op_name(uint8_t opcode);

/* Bytes of padding after n bytes of data segment (RFC 7143 11.1). */
static inline uint32_t iscsi_pad4(uint32_t n)
{
	return (4 - (n & 3)) & 3;
}

/* Digest bytes on the wire, least significant first (RFC 3720 B.4). */
void iscsi_put_digest(uint8_t *p, uint32_t crc);
uint32_t iscsi_get_digest(const uint8_t *p);

/* Data digest: CRC32C over data and its zero padding (RFC 7143 13.1). */
uint32_t iscsi_data_digest(const void *data, uint32_t dlen);

/*
 * Write a whole PDU: BHS (with h->dlen forced to dlen and no AHS), header
 * digest if hd, data, zero padding, data digest if dd and dlen > 0.
 * *len gets the byte count.  Returns 0, -EINVAL as iscsi_bhs_encode, or
 * -ENOSPC when cap is too small (nothing useful is written then).
 */
int iscsi_pdu_build(const struct iscsi_bhs *h, const void *data, uint32_t dlen,
		    bool hd, bool dd, uint8_t *out, size_t cap, size_t *len);

/*
 * Just the header part (BHS and header digest) for a zero-copy send of
 * the data from elsewhere; the caller appends data, padding and
 * iscsi_data_digest().  Returns the header length (48 or 52), or -EINVAL.
 */
int iscsi_pdu_header(const struct iscsi_bhs *h, bool hd, uint8_t *out, const char **why);

/* ---- incremental receiver ---- */

struct iscsi_rx_limits {
	uint32_t max_recv_dsl;	/* our MaxRecvDataSegmentLength, 512..2^24-1 */
	uint32_t max_ahs;	/* AHS bytes accepted, <= ISCSI_AHS_MAX */
	bool header_digest;	/* negotiated HeaderDigest=CRC32C */
	bool data_digest;	/* negotiated DataDigest=CRC32C */
};

/* One received PDU; pointers stay valid until the next feed or reset. */
struct iscsi_rx_pdu {
	struct iscsi_bhs bhs;
	const uint8_t *raw_bhs;		/* the 48 bytes as received */
	const uint8_t *ahs;
	uint32_t ahs_len;		/* bytes */
	const uint8_t *data;		/* NULL when dlen is 0 */
	uint32_t dlen;
};

struct iscsi_rx {
	struct iscsi_rx_limits lim;
	uint8_t *buf;
	size_t cap;
	size_t have;		/* bytes of the current PDU collected */
	size_t need;		/* bytes the current PDU needs so far */
	bool have_bhs;		/* need includes AHS, data and digests */
	int err;		/* sticky error, 0 when none */
	const char *why;	/* reason for err */
};

/* Buffer bytes iscsi_rx_init needs for these limits (the largest PDU). */
size_t iscsi_rx_buf_size(const struct iscsi_rx_limits *lim);

/*
 * Set up a receiver over buf[0..cap).  Returns 0, or -EINVAL when the
 * limits are out of range or cap < iscsi_rx_buf_size(lim).
 */
int iscsi_rx_init(struct iscsi_rx *rx, const struct iscsi_rx_limits *lim,
		  uint8_t *buf, size_t cap);

/* Drop any partial PDU and a sticky error (a new connection). */
void iscsi_rx_reset(struct iscsi_rx *rx);

/*
 * Digests are switched on by the Login Response that ends the login
 * (RFC 7143 13.1: every PDU of the full-feature phase).  Call between
 * PDUs only; returns -EBUSY with a partial PDU held.
 */
int iscsi_rx_set_limits(struct iscsi_rx *rx, const struct iscsi_rx_limits *lim);

/*
 * Consume bytes from p[0..len).  *used gets the bytes taken.  Returns 1
 * when *out holds a whole PDU (call again with p + *used for the rest),
 * 0 when every byte was taken and more are needed, or a negative errno
 * (see the top of this file) with rx->why set.
 */
int iscsi_rx_feed(struct iscsi_rx *rx, const void *p, size_t len, size_t *used,
		  struct iscsi_rx_pdu *out);

/* ---- data segments with structure ---- */

/*
 * SCSI Response data segment (RFC 7143 11.4.7): SenseLength (2 bytes)
 * then sense data, then response data.  *sense and *slen get the sense bytes
 * (NULL/0 when dlen is 0).  Returns 0 or -EBADMSG when SenseLength runs
 * past the segment.
 */
int iscsi_rsp_sense(const uint8_t *data, uint32_t dlen, const uint8_t **sense,
		    size_t *slen);

/* Fill a SCSI Command BHS (11.3). cdb_len <= 16; returns 0 or -EINVAL. */
int iscsi_bhs_scsi_cmd(struct iscsi_bhs *h, uint64_t lun, uint32_t itt,
		       const uint8_t *cdb, size_t cdb_len, bool read, bool write,
		       uint32_t edtl);

#endif
