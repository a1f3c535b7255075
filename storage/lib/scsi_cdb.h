/*
 * SCSI commands Tern sends to its iSCSI disks, and the replies it reads
 * (SPC-4, SBC-3).  Pure: builders fill caller buffers, parsers treat every
 * reply as hostile (the length the target claims is never trusted beyond
 * the bytes actually received) and return a negative errno:
 *	-EINVAL		a builder argument out of range
 *	-ERANGE		LBA/length that does not fit the CDB or the disk
 *	-EBADMSG	a reply too short, or with a wrong page code
 *	-EOVERFLOW	a value that cannot be represented (capacity 2^64)
 */
#ifndef TERN_STORAGE_SCSI_CDB_H
#define TERN_STORAGE_SCSI_CDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Operation codes (SPC-4 / SBC-3). */
enum {
	SCSI_TEST_UNIT_READY	= 0x00,
	SCSI_INQUIRY		= 0x12,
	SCSI_READ_10		= 0x28,
	SCSI_WRITE_10		= 0x2a,
	SCSI_SYNC_CACHE_10	= 0x35,
	SCSI_UNMAP		= 0x42,
	SCSI_PR_IN		= 0x5e,
	SCSI_PR_OUT		= 0x5f,
	SCSI_READ_16		= 0x88,
	SCSI_WRITE_16		= 0x8a,
	SCSI_SYNC_CACHE_16	= 0x91,
	SCSI_WRITE_SAME_16	= 0x93,
	SCSI_SERVICE_IN_16	= 0x9e,	/* READ CAPACITY(16): action 0x10 */
	SCSI_REPORT_LUNS	= 0xa0,
};

#define SCSI_SA_READ_CAPACITY_16	0x10
#define SCSI_RC16_LEN			32	/* READ CAPACITY(16) data */
#define SCSI_STD_INQUIRY_MIN		36	/* through the revision level */

/* TEST UNIT READY (SPC-4 6.47): 6 bytes. */
void scsi_cdb_tur(uint8_t cdb[6]);

/*
 * INQUIRY (SPC-4 6.6): 6 bytes.  evpd selects a VPD page; page must be
 * 0 without it.  alloc is 1..65535.  Returns 0 or -EINVAL.
 */
int scsi_cdb_inquiry(uint8_t cdb[6], bool evpd, uint8_t page, uint16_t alloc);

/* READ CAPACITY(16) (SBC-3 5.16): 16 bytes, alloc >= 32 advised. */
void scsi_cdb_read_capacity16(uint8_t cdb[16], uint32_t alloc);

/*
 * READ/WRITE(10) (SBC-3 5.11, 5.35): LBA < 2^32 with lba + n - 1 too,
 * 1 <= n <= 65535.  READ/WRITE(16) (5.13, 5.37): lba + n <= 2^64,
 * 1 <= n <= 2^32-1.  A zero length means "no transfer" on the wire; Tern
 * never wants that, so it is refused.  fua sets Force Unit Access.
 * Returns 0, or -ERANGE.
 */
int scsi_cdb_rw10(uint8_t cdb[10], bool write, uint64_t lba, uint32_t n, bool fua);
int scsi_cdb_rw16(uint8_t cdb[16], bool write, uint64_t lba, uint32_t n, bool fua);

/*
 * The shortest READ/WRITE CDB for the request, checked against a disk of
 * nblocks blocks (0: unknown, not checked).  cdb must hold 16 bytes.
 * Returns the CDB length (10 or 16) or -ERANGE.
 */
int scsi_cdb_rw(uint8_t cdb[16], bool write, uint64_t lba, uint32_t n, bool fua,
		uint64_t nblocks);

/* SYNCHRONIZE CACHE(10/16) (SBC-3 5.22/5.23); n 0 = to the end.  0 or -ERANGE. */
int scsi_cdb_sync10(uint8_t cdb[10], uint32_t lba, uint16_t n);
void scsi_cdb_sync16(uint8_t cdb[16], uint64_t lba, uint32_t n);

/* REPORT LUNS (SPC-4 6.33): select report 0; alloc >= 16.  0 or -EINVAL. */
int scsi_cdb_report_luns(uint8_t cdb[12], uint32_t alloc);

/* ---- logical block provisioning (SBC-3 4.7) ---- */

#define SCSI_UNMAP_HDR_LEN	8	/* UNMAP parameter list header */
#define SCSI_UNMAP_DESC_LEN	16	/* one UNMAP block descriptor */

struct scsi_unmap_desc {
	uint64_t lba;
	uint32_t n;		/* blocks, >= 1 */
};

/*
 * UNMAP (SBC-3 5.28): 10 bytes, ANCHOR 0, group 0, plen the parameter
 * list's length: a header and at least one descriptor (a list of no
 * descriptor is legal but unmaps nothing; Tern never sends it).
 * Returns 0 or -EINVAL.
 */
int scsi_cdb_unmap(uint8_t cdb[10], uint16_t plen);

/*
 * The UNMAP parameter list (SBC-3 5.28.2): the 8-byte header and n
 * 16-byte block descriptors into out[0..cap).  Returns its length, or
 * -EINVAL (n 0, the list longer than cap or than 65535 bytes), -ERANGE
 * (a descriptor of 0 blocks, or one whose last block wraps 2^64).
 */
int scsi_unmap_param(uint8_t *out, size_t cap, const struct scsi_unmap_desc *desc, unsigned n);

/*
 * WRITE SAME(16) (SBC-3 5.43): 16 bytes, n blocks from lba get the one
 * block of Data-Out the command carries; unmap sets the UNMAP bit (the
 * target may deallocate them instead, when the data is zeros).  n 0
 * means "to the end of the medium" on the wire: refused, as is a range
 * that wraps, with -ERANGE.
 */
int scsi_cdb_write_same16(uint8_t cdb[16], uint64_t lba, uint32_t n, bool unmap);

/* ---- replies ---- */

struct scsi_inquiry {
	uint8_t qualifier;	/* peripheral qualifier: 0 = connected */
	uint8_t type;		/* peripheral device type: 0 = disk */
	uint8_t version;	/* 6 = SPC-4 */
	bool removable;
	bool cmdque;		/* command queuing (many outstanding tasks) */
	char vendor[9];		/* trailing spaces trimmed, NUL-terminated */
	char product[17];
	char revision[5];
};

/* Standard INQUIRY data of len bytes received.  0 or -EBADMSG. */
int scsi_parse_inquiry(const uint8_t *d, size_t len, struct scsi_inquiry *out);

/*
 * VPD header check: page code and the page length, clamped to what was
 * received.  *body and *blen get the bytes after the 4-byte header.
 * Returns 0 or -EBADMSG.
 */
int scsi_vpd_body(const uint8_t *d, size_t len, uint8_t page, const uint8_t **body,
		  size_t *blen);

/* VPD 0x00: is page in the supported list? 1, 0, or -EBADMSG. */
int scsi_vpd_supports(const uint8_t *d, size_t len, uint8_t page);

/* VPD 0x80: unit serial number, trimmed, NUL-terminated in out[0..cap).
 * Returns its length, -EBADMSG, or -ENOSPC. */
int scsi_vpd_serial(const uint8_t *d, size_t len, char *out, size_t cap);

/* One designation descriptor of VPD 0x83 (SPC-4 7.8.6). */
struct scsi_designator {
	uint8_t code_set;	/* 1 binary, 2 ASCII, 3 UTF-8 */
	uint8_t association;	/* 0 logical unit, 1 target port, 2 target device */
	uint8_t type;		/* 1 T10 vendor ID, 2 EUI-64, 3 NAA, 8 SCSI name */
	bool piv;
	const uint8_t *id;	/* points into the page */
	uint8_t len;
};

/*
 * Iterate VPD 0x83 descriptors: *off starts at 0.  Returns 1 with *out, 0
 * at the end, or -EBADMSG (a descriptor running past the page).
 */
int scsi_vpd83_next(const uint8_t *d, size_t len, size_t *off, struct scsi_designator *out);

/*
 * The logical unit's best identifier: NAA, else EUI-64, else T10 vendor
 * ID, else SCSI name string, association 0 only.  Two hosts compare it to
 * know they see the same disk.  Returns 0, -ENOENT, or -EBADMSG.
 */
int scsi_vpd83_lu_id(const uint8_t *d, size_t len, struct scsi_designator *out);

/*
 * Block Limits VPD page 0xb0 (SBC-3 6.5.3).  A field the page does not
 * reach (an SBC-2 target sends 0x10 bytes, not 0x3c) reads 0, as does a
 * field the target leaves 0: "not reported".
 */
struct scsi_block_limits {
	bool wsnz;			/* byte 4 bit 0: WRITE SAME of 0 blocks refused */
	uint32_t max_xfer_blocks;	/* 8..11 MAXIMUM TRANSFER LENGTH */
	uint32_t max_unmap_lbas;	/* 20..23 MAXIMUM UNMAP LBA COUNT, ~0: no limit */
	uint32_t max_unmap_descs;	/* 24..27 MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT */
	uint32_t opt_unmap_gran;	/* 28..31 OPTIMAL UNMAP GRANULARITY */
	bool ugavalid;			/* 32 bit 7 */
	uint32_t unmap_align;		/* 32..35 UNMAP GRANULARITY ALIGNMENT */
	uint64_t max_ws_blocks;		/* 36..43 MAXIMUM WRITE SAME LENGTH */
	bool has_unmap_fields;		/* the page reached byte 27 */
};

/* Returns 0, or -EBADMSG (not page 0xb0, or shorter than its header). */
int scsi_parse_vpd_b0(const uint8_t *d, size_t len, struct scsi_block_limits *out);

/* Logical Block Provisioning VPD page 0xb2 (SBC-3 6.6.4). */
struct scsi_lbp {
	uint8_t threshold_exp;		/* byte 4 */
	bool lbpu;			/* byte 5 bit 7: UNMAP supported */
	bool lbpws;			/* bit 6: WRITE SAME(16) with UNMAP */
	bool lbpws10;			/* bit 5: WRITE SAME(10) with UNMAP */
	bool lbprz;			/* bit 2: unmapped blocks read zeros */
	bool anc_sup;			/* bit 1: anchored blocks */
	bool dp;			/* bit 0: a descriptor follows */
	uint8_t prov_type;		/* byte 6 bits 2..0: 0 full, 1 resource, 2 thin */
};

/* Returns 0, or -EBADMSG (not page 0xb2, or not reaching byte 5). */
int scsi_parse_vpd_b2(const uint8_t *d, size_t len, struct scsi_lbp *out);

/*
 * What Tern may send, from what the LUN said (NULL: the page was not
 * read).  UNMAP: LBPU, and limits not 0 ("not implemented", SBC-3
 * 6.5.3).  WRITE SAME(16): LBPWS (it implies the command), or a
 * MAXIMUM WRITE SAME LENGTH reported (0 reports nothing: Tern does not
 * guess).  The limits out are what a command may carry: never 0 when the
 * command is usable; ws_default caps WRITE SAME without a limit, and
 * every limit is capped at the 32-bit count the CDBs carry.
 */
struct scsi_provisioning {
	bool unmap, write_same, ws_unmap;
	uint32_t max_unmap_blocks;	/* per command, one descriptor */
	uint32_t max_unmap_descs;
	uint32_t max_ws_blocks;
};

void scsi_provisioning(const struct scsi_block_limits *bl, const struct scsi_lbp *lbp,
		       uint32_t ws_default, struct scsi_provisioning *out);

struct scsi_capacity {
	uint64_t nblocks;	/* RETURNED LOGICAL BLOCK ADDRESS + 1 */
	uint32_t block_size;
	uint8_t pbexp;		/* logical blocks per physical block, log2 */
	bool prot_en;
	bool lbpme;		/* thin provisioned */
	uint16_t lowest_aligned;
};

/*
 * READ CAPACITY(16) data (SBC-3 5.16.2).  Block sizes outside 512..65536
 * or not a power of two are refused with -ERANGE (Tern maps guest sectors
 * on them); capacity 2^64 blocks with -EOVERFLOW; short data -EBADMSG.
 */
int scsi_parse_capacity16(const uint8_t *d, size_t len, struct scsi_capacity *out);

/*
 * REPORT LUNS data (SPC-4 6.33.2): up to max raw 8-byte LUNs into luns.
 * *total gets the count the target has (the list may be longer than
 * what was received or than max: compare with *stored).
 * Returns 0 or -EBADMSG.
 */
int scsi_parse_report_luns(const uint8_t *d, size_t len, uint64_t *luns, unsigned max,
			   unsigned *stored, uint32_t *total);

/*
 * A raw LUN (SAM-5 4.7) as a number: peripheral (method 0, bus 0) and
 * flat (method 1) single-level addressing.  Returns 0..16383 or -EINVAL
 * for other methods and multi-level LUNs.
 */
int scsi_lun_decode(uint64_t raw);
/* The raw form iSCSI carries for LUN n: peripheral below 256, else flat. */
int scsi_lun_encode(unsigned n, uint64_t *raw);

/* ---- persistent reservations (SPC-4 6.15, 6.16) ---- */

enum scsi_pr_out_action {
	SCSI_PR_REGISTER = 0x00,
	SCSI_PR_RESERVE = 0x01,
	SCSI_PR_RELEASE = 0x02,
	SCSI_PR_CLEAR = 0x03,
	SCSI_PR_PREEMPT = 0x04,
	SCSI_PR_PREEMPT_ABORT = 0x05,
	SCSI_PR_REGISTER_IGNORE = 0x06,
};

enum scsi_pr_type {
	SCSI_PR_WRITE_EXCLUSIVE = 1,
	SCSI_PR_EXCLUSIVE_ACCESS = 3,
	SCSI_PR_WE_REGISTRANTS_ONLY = 5,	/* what Tern uses */
	SCSI_PR_EA_REGISTRANTS_ONLY = 6,
	SCSI_PR_WE_ALL_REGISTRANTS = 7,
	SCSI_PR_EA_ALL_REGISTRANTS = 8,
};

#define SCSI_PR_OUT_PARAM_LEN	24

struct scsi_pr_out {
	enum scsi_pr_out_action action;
	enum scsi_pr_type type;		/* RESERVE, RELEASE, PREEMPT */
	uint64_t key;			/* our registered key (0 when unregistered) */
	uint64_t sa_key;		/* REGISTER: new key; PREEMPT: the victim's */
	bool aptpl;			/* REGISTER*: persist through power loss (SPC-4 5.13.5) */
};

/*
 * PERSISTENT RESERVE OUT CDB (10 bytes) and its 24-byte parameter list.
 * Refused with -EINVAL: an unknown action or type, RESERVE/RELEASE/
 * PREEMPT/CLEAR with key 0, PREEMPT of key 0 (SPC-4 5.13.11.2.3 would
 * then hit every registrant, never what a handover means).
 */
int scsi_pr_out(const struct scsi_pr_out *r, uint8_t cdb[10],
		uint8_t param[SCSI_PR_OUT_PARAM_LEN]);

enum {
	SCSI_PR_READ_KEYS = 0x00, SCSI_PR_READ_RESERVATION = 0x01,
	SCSI_PR_REPORT_CAPABILITIES = 0x02,
};

/* PERSISTENT RESERVE IN CDB (10 bytes); alloc >= 8.  0 or -EINVAL. */
int scsi_cdb_pr_in(uint8_t cdb[10], uint8_t action, uint16_t alloc);

/*
 * READ KEYS data: generation, keys (up to max), and the count the
 * target has (*total; truncated when above *stored).  0 or -EBADMSG.
 */
int scsi_parse_pr_keys(const uint8_t *d, size_t len, uint32_t *generation, uint64_t *keys,
		       unsigned max, unsigned *stored, uint32_t *total);

struct scsi_pr_reservation {
	uint32_t generation;
	bool held;		/* a reservation exists */
	uint64_t key;		/* the holder's key */
	uint8_t scope;
	uint8_t type;		/* enum scsi_pr_type */
};

/* READ RESERVATION data.  0 or -EBADMSG. */
int scsi_parse_pr_reservation(const uint8_t *d, size_t len, struct scsi_pr_reservation *out);

/* REPORT CAPABILITIES data (SPC-4 6.15.4). */
struct scsi_pr_caps {
	bool crh, sip_c, atp_c;
	bool ptpl_c;		/* the LUN can persist through power loss (APTPL) */
	bool tmv;		/* type_mask is valid */
	uint8_t allow_cmds;
	bool ptpl_a;		/* persist through power loss is active */
	uint16_t type_mask;
};

/* 0 or -EBADMSG (fewer than 8 bytes, or a LENGTH below 8). */
int scsi_parse_pr_caps(const uint8_t *d, size_t len, struct scsi_pr_caps *out);

#endif
