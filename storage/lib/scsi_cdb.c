/*
 * SCSI CDB builders and reply parsers (SPC-4, SBC-3).  Multi-byte fields
 * are big-endian on the wire (SPC-4 3.5.2).
 */
#include <errno.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "storage/lib/scsi_cdb.h"

/* ---- CDBs ---- */

void scsi_cdb_tur(uint8_t cdb[6])
{
	memset(cdb, 0, 6);
}

int scsi_cdb_inquiry(uint8_t cdb[6], bool evpd, uint8_t page, uint16_t alloc)
{
	/* SPC-4 6.6.1: PAGE CODE without EVPD is an ILLEGAL REQUEST. */
	if ((!evpd && page) || alloc == 0)
		return -EINVAL;
	memset(cdb, 0, 6);
	cdb[0] = SCSI_INQUIRY;
	cdb[1] = evpd ? 1 : 0;
	cdb[2] = page;
	st_be16(cdb + 3, alloc);
	return 0;
}

void scsi_cdb_read_capacity16(uint8_t cdb[16], uint32_t alloc)
{
	memset(cdb, 0, 16);
	cdb[0] = SCSI_SERVICE_IN_16;
	cdb[1] = SCSI_SA_READ_CAPACITY_16;
	st_be32(cdb + 10, alloc);
}

int scsi_cdb_rw10(uint8_t cdb[10], bool write, uint64_t lba, uint32_t n, bool fua)
{
	if (n == 0 || n > 0xffff || lba > 0xffffffffull || lba + n - 1 > 0xffffffffull)
		return -ERANGE;
	memset(cdb, 0, 10);
	cdb[0] = write ? SCSI_WRITE_10 : SCSI_READ_10;
	cdb[1] = fua ? 0x08 : 0;	/* SBC-3 5.11: FUA is bit 3 */
	st_be32(cdb + 2, (uint32_t)lba);
	st_be16(cdb + 7, (uint16_t)n);
	return 0;
}

int scsi_cdb_rw16(uint8_t cdb[16], bool write, uint64_t lba, uint32_t n, bool fua)
{
	/* The last block is lba + n - 1, which must not wrap. */
	if (n == 0 || lba > UINT64_MAX - (n - 1))
		return -ERANGE;
	memset(cdb, 0, 16);
	cdb[0] = write ? SCSI_WRITE_16 : SCSI_READ_16;
	cdb[1] = fua ? 0x08 : 0;
	st_be64(cdb + 2, lba);
	st_be32(cdb + 10, n);
	return 0;
}

int scsi_cdb_rw(uint8_t cdb[16], bool write, uint64_t lba, uint32_t n, bool fua,
		uint64_t nblocks)
{
	int rc;

	if (n == 0)
		return -ERANGE;
	if (nblocks && (lba >= nblocks || n > nblocks - lba))
		return -ERANGE;
	rc = scsi_cdb_rw10(cdb, write, lba, n, fua);
	if (rc == 0)
		return 10;
	rc = scsi_cdb_rw16(cdb, write, lba, n, fua);
	return rc ? rc : 16;
}

int scsi_cdb_sync10(uint8_t cdb[10], uint32_t lba, uint16_t n)
{
	if (n && (uint64_t)lba + n - 1 > 0xffffffffull)
		return -ERANGE;
	memset(cdb, 0, 10);
	cdb[0] = SCSI_SYNC_CACHE_10;
	st_be32(cdb + 2, lba);
	st_be16(cdb + 7, n);
	return 0;
}

void scsi_cdb_sync16(uint8_t cdb[16], uint64_t lba, uint32_t n)
{
	memset(cdb, 0, 16);
	cdb[0] = SCSI_SYNC_CACHE_16;
	st_be64(cdb + 2, lba);
	st_be32(cdb + 10, n);
}

int scsi_cdb_report_luns(uint8_t cdb[12], uint32_t alloc)
{
	/* SPC-4 6.33.1: fewer than 16 bytes is an ILLEGAL REQUEST. */
	if (alloc < 16)
		return -EINVAL;
	memset(cdb, 0, 12);
	cdb[0] = SCSI_REPORT_LUNS;
	st_be32(cdb + 6, alloc);
	return 0;
}

/* ---- logical block provisioning ---- */

int scsi_cdb_unmap(uint8_t cdb[10], uint16_t plen)
{
	if (plen < SCSI_UNMAP_HDR_LEN + SCSI_UNMAP_DESC_LEN ||
	    (plen - SCSI_UNMAP_HDR_LEN) % SCSI_UNMAP_DESC_LEN)
		return -EINVAL;
	memset(cdb, 0, 10);
	cdb[0] = SCSI_UNMAP;
	st_be16(cdb + 7, plen);		/* PARAMETER LIST LENGTH */
	return 0;
}

int scsi_unmap_param(uint8_t *out, size_t cap, const struct scsi_unmap_desc *desc, unsigned n)
{
	size_t len = SCSI_UNMAP_HDR_LEN + (size_t)n * SCSI_UNMAP_DESC_LEN;

	if (n == 0 || len > 0xffff || len > cap)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		if (desc[i].n == 0 || desc[i].lba > UINT64_MAX - (desc[i].n - 1))
			return -ERANGE;
	memset(out, 0, len);
	/* UNMAP DATA LENGTH counts the bytes after itself; the descriptor
	 * data length, the descriptors only (SBC-3 5.28.2). */
	st_be16(out, (uint16_t)(len - 2));
	st_be16(out + 2, (uint16_t)(len - SCSI_UNMAP_HDR_LEN));
	for (unsigned i = 0; i < n; i++) {
		uint8_t *p = out + SCSI_UNMAP_HDR_LEN + (size_t)i * SCSI_UNMAP_DESC_LEN;

		st_be64(p, desc[i].lba);
		st_be32(p + 8, desc[i].n);
	}
	return (int)len;
}

int scsi_cdb_write_same16(uint8_t cdb[16], uint64_t lba, uint32_t n, bool unmap)
{
	if (n == 0 || lba > UINT64_MAX - (n - 1))
		return -ERANGE;
	memset(cdb, 0, 16);
	cdb[0] = SCSI_WRITE_SAME_16;
	cdb[1] = unmap ? 0x08 : 0;	/* UNMAP is bit 3; ANCHOR, NDOB, PI 0 */
	st_be64(cdb + 2, lba);
	st_be32(cdb + 10, n);
	return 0;
}

/* ---- INQUIRY ---- */

/* Copy an ASCII field, trailing spaces and NULs dropped, non-printables as '?'. */
static void ascii_field(char *out, const uint8_t *in, size_t n)
{
	while (n && (in[n - 1] == ' ' || in[n - 1] == 0))
		n--;
	for (size_t i = 0; i < n; i++)
		out[i] = in[i] >= 0x20 && in[i] < 0x7f ? (char)in[i] : '?';
	out[n] = '\0';
}

int scsi_parse_inquiry(const uint8_t *d, size_t len, struct scsi_inquiry *out)
{
	size_t n;

	memset(out, 0, sizeof(*out));
	if (len < 5)
		return -EBADMSG;
	/* SPC-4 6.6.2: ADDITIONAL LENGTH counts from byte 5. */
	n = (size_t)d[4] + 5;
	if (n > len)
		n = len;
	if (n < SCSI_STD_INQUIRY_MIN)
		return -EBADMSG;
	out->qualifier = d[0] >> 5;
	out->type = d[0] & 0x1f;
	out->removable = d[1] & 0x80;
	out->version = d[2];
	out->cmdque = d[7] & 0x02;
	ascii_field(out->vendor, d + 8, 8);
	ascii_field(out->product, d + 16, 16);
	ascii_field(out->revision, d + 32, 4);
	return 0;
}

int scsi_vpd_body(const uint8_t *d, size_t len, uint8_t page, const uint8_t **body,
		  size_t *blen)
{
	size_t n;

	if (len < 4 || d[1] != page)
		return -EBADMSG;
	n = ld_be16(d + 2);
	if (n > len - 4)
		n = len - 4;	/* truncated by our allocation length */
	*body = d + 4;
	*blen = n;
	return 0;
}

int scsi_vpd_supports(const uint8_t *d, size_t len, uint8_t page)
{
	const uint8_t *b;
	size_t n;

	if (scsi_vpd_body(d, len, 0x00, &b, &n))
		return -EBADMSG;
	return memchr(b, page, n) != NULL;
}

/* A big-endian field at page offset off (header included) of size 4 or
 * 8, or 0 when the body of blen bytes does not reach its end. */
static uint64_t vpd_field(const uint8_t *body, size_t blen, size_t off, size_t size)
{
	if (off - 4 + size > blen)
		return 0;
	return size == 8 ? ld_be64(body + off - 4) : ld_be32(body + off - 4);
}

int scsi_parse_vpd_b0(const uint8_t *d, size_t len, struct scsi_block_limits *out)
{
	const uint8_t *b;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (scsi_vpd_body(d, len, 0xb0, &b, &n))
		return -EBADMSG;
	out->wsnz = n >= 1 && (b[0] & 1);
	out->max_xfer_blocks = (uint32_t)vpd_field(b, n, 8, 4);
	out->max_unmap_lbas = (uint32_t)vpd_field(b, n, 20, 4);
	out->max_unmap_descs = (uint32_t)vpd_field(b, n, 24, 4);
	out->has_unmap_fields = n >= 28 - 4;
	out->opt_unmap_gran = (uint32_t)vpd_field(b, n, 28, 4);
	out->unmap_align = (uint32_t)vpd_field(b, n, 32, 4);
	out->ugavalid = out->unmap_align >> 31;
	out->unmap_align &= 0x7fffffffu;
	out->max_ws_blocks = vpd_field(b, n, 36, 8);
	return 0;
}

int scsi_parse_vpd_b2(const uint8_t *d, size_t len, struct scsi_lbp *out)
{
	const uint8_t *b;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (scsi_vpd_body(d, len, 0xb2, &b, &n) || n < 2)
		return -EBADMSG;
	out->threshold_exp = b[0];
	out->lbpu = b[1] & 0x80;
	out->lbpws = b[1] & 0x40;
	out->lbpws10 = b[1] & 0x20;
	out->lbprz = b[1] & 0x04;
	out->anc_sup = b[1] & 0x02;
	out->dp = b[1] & 0x01;
	out->prov_type = n >= 3 ? b[2] & 7 : 0;
	return 0;
}

void scsi_provisioning(const struct scsi_block_limits *bl, const struct scsi_lbp *lbp,
		       uint32_t ws_default, struct scsi_provisioning *out)
{
	memset(out, 0, sizeof(*out));
	if (lbp && lbp->lbpu) {
		/* Without the B0 fields the LUN gave no limit: one range of
		 * any length per command. */
		uint32_t lbas = bl && bl->has_unmap_fields ? bl->max_unmap_lbas : UINT32_MAX;
		uint32_t descs = bl && bl->has_unmap_fields ? bl->max_unmap_descs : 1;

		out->unmap = lbas && descs;
		out->max_unmap_blocks = out->unmap ? lbas : 0;
		out->max_unmap_descs = out->unmap ? descs : 0;
	}
	out->ws_unmap = lbp && lbp->lbpws;
	out->write_same = out->ws_unmap || (bl && bl->max_ws_blocks);
	if (out->write_same) {
		uint64_t max = bl && bl->max_ws_blocks ? bl->max_ws_blocks : ws_default;

		out->max_ws_blocks = max > UINT32_MAX ? UINT32_MAX : max ? (uint32_t)max : 1;
	}
}

int scsi_vpd_serial(const uint8_t *d, size_t len, char *out, size_t cap)
{
	const uint8_t *b;
	size_t n;

	if (scsi_vpd_body(d, len, 0x80, &b, &n))
		return -EBADMSG;
	/* SPC-4 7.8.15: ASCII, right-aligned with leading spaces allowed. */
	while (n && b[0] == ' ') {
		b++;
		n--;
	}
	while (n && (b[n - 1] == ' ' || b[n - 1] == 0))
		n--;
	if (n + 1 > cap)
		return -ENOSPC;
	ascii_field(out, b, n);
	return (int)n;
}

int scsi_vpd83_next(const uint8_t *d, size_t len, size_t *off, struct scsi_designator *out)
{
	const uint8_t *b, *p;
	size_t n;

	if (scsi_vpd_body(d, len, 0x83, &b, &n))
		return -EBADMSG;
	if (*off >= n)
		return 0;
	if (n - *off < 4)
		return -EBADMSG;
	p = b + *off;
	if (p[3] > n - *off - 4)
		return -EBADMSG;
	out->code_set = p[0] & 0x0f;
	out->piv = p[1] & 0x80;
	out->association = (p[1] >> 4) & 3;
	out->type = p[1] & 0x0f;
	out->len = p[3];
	out->id = p + 4;
	*off += 4 + (size_t)p[3];
	return 1;
}

static int designator_rank(uint8_t type)
{
	switch (type) {
	case 3: return 4;	/* NAA */
	case 2: return 3;	/* EUI-64 */
	case 1: return 2;	/* T10 vendor ID */
	case 8: return 1;	/* SCSI name string */
	default: return 0;
	}
}

int scsi_vpd83_lu_id(const uint8_t *d, size_t len, struct scsi_designator *out)
{
	struct scsi_designator cur;
	size_t off = 0;
	int rc, best = 0;

	while ((rc = scsi_vpd83_next(d, len, &off, &cur)) == 1) {
		int r = designator_rank(cur.type);

		if (cur.association == 0 && cur.len && r > best) {
			best = r;
			*out = cur;
		}
	}
	if (rc < 0)
		return rc;
	return best ? 0 : -ENOENT;
}

/* ---- READ CAPACITY(16) ---- */

int scsi_parse_capacity16(const uint8_t *d, size_t len, struct scsi_capacity *out)
{
	uint64_t last;
	uint32_t bs;

	memset(out, 0, sizeof(*out));
	/* Bytes 0..15 hold everything Tern reads. */
	if (len < 16)
		return -EBADMSG;
	last = ld_be64(d);
	bs = ld_be32(d + 8);
	if (last == UINT64_MAX)
		return -EOVERFLOW;
	if (bs < 512 || bs > 65536 || (bs & (bs - 1)))
		return -ERANGE;
	out->nblocks = last + 1;
	out->block_size = bs;
	out->prot_en = d[12] & 1;
	out->pbexp = d[13] & 0x0f;
	out->lbpme = d[14] & 0x80;
	out->lowest_aligned = ld_be16(d + 14) & 0x3fff;
	return 0;
}

/* ---- REPORT LUNS ---- */

/* 8-byte entries after an 8-byte header holding the list's byte length
 * at len_off (REPORT LUNS: 0, READ KEYS: 4). */
static int parse_list8(const uint8_t *d, size_t len, int len_off, uint64_t *items,
		       unsigned max, unsigned *stored, uint32_t *total)
{
	uint32_t bytes;
	size_t have;

	*stored = 0;
	*total = 0;
	if (len < 8)
		return -EBADMSG;
	bytes = ld_be32(d + len_off);
	*total = bytes / 8;
	have = (len - 8) / 8;
	if (have > *total)
		have = *total;
	if (have > max)
		have = max;
	for (size_t i = 0; i < have; i++)
		items[i] = ld_be64(d + 8 + 8 * i);
	*stored = (unsigned)have;
	return 0;
}

int scsi_parse_report_luns(const uint8_t *d, size_t len, uint64_t *luns, unsigned max,
			   unsigned *stored, uint32_t *total)
{
	return parse_list8(d, len, 0, luns, max, stored, total);
}

int scsi_lun_decode(uint64_t raw)
{
	unsigned method = (unsigned)(raw >> 62);

	/* SAM-5 4.7.3: a single-level LUN has zero in bytes 2..7. */
	if (raw & 0x0000ffffffffffffull)
		return -EINVAL;
	if (method == 0)	/* peripheral: bus in byte 0, LUN in byte 1 */
		return (raw >> 56) & 0x3f ? -EINVAL : (int)((raw >> 48) & 0xff);
	if (method == 1)	/* flat space: 14 bits */
		return (int)((raw >> 48) & 0x3fff);
	return -EINVAL;
}

int scsi_lun_encode(unsigned n, uint64_t *raw)
{
	if (n < 256)
		*raw = (uint64_t)n << 48;
	else if (n < 16384)
		*raw = (uint64_t)(0x4000 | n) << 48;
	else
		return -EINVAL;
	return 0;
}

/* ---- persistent reservations ---- */

static bool pr_type_ok(unsigned t)
{
	return t == 1 || t == 3 || (t >= 5 && t <= 8);
}

int scsi_pr_out(const struct scsi_pr_out *r, uint8_t cdb[10],
		uint8_t param[SCSI_PR_OUT_PARAM_LEN])
{
	bool typed = false;

	switch (r->action) {
	case SCSI_PR_REGISTER:
	case SCSI_PR_REGISTER_IGNORE:
		break;
	case SCSI_PR_RESERVE:
	case SCSI_PR_RELEASE:
		typed = true;
		if (!r->key)
			return -EINVAL;
		break;
	case SCSI_PR_PREEMPT:
	case SCSI_PR_PREEMPT_ABORT:
		typed = true;
		if (!r->key || !r->sa_key)
			return -EINVAL;
		break;
	case SCSI_PR_CLEAR:
		if (!r->key)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	if (typed && !pr_type_ok(r->type))
		return -EINVAL;
	memset(cdb, 0, 10);
	cdb[0] = SCSI_PR_OUT;
	cdb[1] = (uint8_t)r->action;
	/* SPC-4 6.16.1: scope 0 (logical unit) in the high nibble. */
	cdb[2] = typed ? (uint8_t)r->type : 0;
	st_be32(cdb + 5, SCSI_PR_OUT_PARAM_LEN);
	memset(param, 0, SCSI_PR_OUT_PARAM_LEN);
	st_be64(param, r->key);
	st_be64(param + 8, r->sa_key);
	if (r->aptpl)
		param[20] = 0x01;
	return 0;
}

int scsi_cdb_pr_in(uint8_t cdb[10], uint8_t action, uint16_t alloc)
{
	if (action > SCSI_PR_REPORT_CAPABILITIES || alloc < 8)
		return -EINVAL;
	memset(cdb, 0, 10);
	cdb[0] = SCSI_PR_IN;
	cdb[1] = action;
	st_be16(cdb + 7, alloc);
	return 0;
}

int scsi_parse_pr_keys(const uint8_t *d, size_t len, uint32_t *generation, uint64_t *keys,
		       unsigned max, unsigned *stored, uint32_t *total)
{
	/* SPC-4 6.15.2: PRGENERATION, then ADDITIONAL LENGTH and the keys. */
	*generation = len >= 4 ? ld_be32(d) : 0;
	return parse_list8(d, len, 4, keys, max, stored, total);
}

int scsi_parse_pr_reservation(const uint8_t *d, size_t len, struct scsi_pr_reservation *out)
{
	uint32_t add;

	memset(out, 0, sizeof(*out));
	if (len < 8)
		return -EBADMSG;
	out->generation = ld_be32(d);
	add = ld_be32(d + 4);
	/* SPC-4 6.15.3: additional length is 0 (none) or 16. */
	if (add == 0)
		return 0;
	if (add < 16 || len < 24)
		return -EBADMSG;
	out->held = true;
	out->key = ld_be64(d + 8);
	out->scope = d[21] >> 4;
	out->type = d[21] & 0x0f;
	return 0;
}

int scsi_parse_pr_caps(const uint8_t *d, size_t len, struct scsi_pr_caps *out)
{
	memset(out, 0, sizeof(*out));
	/* SPC-4 6.15.4: LENGTH (bytes 0-1) is 8 in this version. */
	if (len < 8 || ld_be16(d) < 8)
		return -EBADMSG;
	out->crh = d[2] & 0x10;
	out->sip_c = d[2] & 0x08;
	out->atp_c = d[2] & 0x04;
	out->ptpl_c = d[2] & 0x01;
	out->tmv = d[3] & 0x80;
	out->allow_cmds = (d[3] >> 4) & 0x07;
	out->ptpl_a = d[3] & 0x01;
	out->type_mask = ld_be16(d + 4);
	return 0;
}
