/*
 * Unit tests and a fuzz test for storage/lib/scsi_cdb.c and scsi_sense.c:
 * CDB bytes against SBC-3/SPC-4 layouts, range checks at every bound,
 * replies cut short at every length, sense formats, the retry decision.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/lib/scsi_cdb.h"
#include "storage/lib/scsi_sense.h"

/* Copy into an exact-size heap block so ASan sees any over-read. */
static uint8_t *exact(const void *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);

	cr_assert_not_null(b);
	if (n)
		memcpy(b, p, n);
	return b;
}

/* ---- CDBs ---- */

Test(scsi, cdb_bytes)
{
	uint8_t c[16];

	scsi_cdb_tur(c);
	cr_assert_arr_eq(c, ((uint8_t[6]){ 0 }), 6);
	cr_assert_eq(scsi_cdb_inquiry(c, true, 0x83, 0x1234), 0);
	cr_assert_arr_eq(c, ((uint8_t[]){ 0x12, 1, 0x83, 0x12, 0x34, 0 }), 6);
	cr_assert_eq(scsi_cdb_inquiry(c, false, 0x83, 96), -EINVAL);
	cr_assert_eq(scsi_cdb_inquiry(c, false, 0, 0), -EINVAL);
	scsi_cdb_read_capacity16(c, 32);
	cr_assert_arr_eq(c, ((uint8_t[]){ 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0 }), 16);
	cr_assert_eq(scsi_cdb_rw10(c, false, 0x01020304, 0x0506, true), 0);
	cr_assert_arr_eq(c, ((uint8_t[]){ 0x28, 0x08, 1, 2, 3, 4, 0, 5, 6, 0 }), 10);
	cr_assert_eq(scsi_cdb_rw16(c, true, 0x0102030405060708ull, 0x090a0b0c, false), 0);
	cr_assert_arr_eq(c, ((uint8_t[]){ 0x8a, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0 }), 16);
	cr_assert_eq(scsi_cdb_sync10(c, 7, 0), 0);
	cr_assert_arr_eq(c, ((uint8_t[]){ 0x35, 0, 0, 0, 0, 7, 0, 0, 0, 0 }), 10);
	scsi_cdb_sync16(c, 1, 2);
	cr_assert_eq(c[0], 0x91);
	cr_assert_eq(c[9], 1);
	cr_assert_eq(c[13], 2);
	cr_assert_eq(scsi_cdb_report_luns(c, 16), 0);
	cr_assert_arr_eq(c, ((uint8_t[]){ 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0 }), 12);
	cr_assert_eq(scsi_cdb_report_luns(c, 15), -EINVAL);
	cr_assert_eq(scsi_cdb_pr_in(c, SCSI_PR_READ_KEYS, 8), 0);
	cr_assert_arr_eq(c, ((uint8_t[]){ 0x5e, 0, 0, 0, 0, 0, 0, 0, 8, 0 }), 10);
	cr_assert_eq(scsi_cdb_pr_in(c, 3, 64), -EINVAL);
	cr_assert_eq(scsi_cdb_pr_in(c, 1, 7), -EINVAL);
}

Test(scsi, rw_ranges)
{
	uint8_t c[16];

	/* READ(10): the last block must stay below 2^32. */
	cr_assert_eq(scsi_cdb_rw10(c, false, 0xffffffffull, 1, false), 0);
	cr_assert_eq(scsi_cdb_rw10(c, false, 0xffffffffull, 2, false), -ERANGE);
	cr_assert_eq(scsi_cdb_rw10(c, false, 0x100000000ull, 1, false), -ERANGE);
	cr_assert_eq(scsi_cdb_rw10(c, false, 0, 0xffff, false), 0);
	cr_assert_eq(scsi_cdb_rw10(c, false, 0, 0x10000, false), -ERANGE);
	cr_assert_eq(scsi_cdb_rw10(c, false, 0, 0, false), -ERANGE);
	cr_assert_eq(scsi_cdb_rw16(c, false, UINT64_MAX, 1, false), 0);
	cr_assert_eq(scsi_cdb_rw16(c, false, UINT64_MAX, 2, false), -ERANGE);
	cr_assert_eq(scsi_cdb_rw16(c, false, 0, UINT32_MAX, false), 0);
	cr_assert_eq(scsi_cdb_rw16(c, false, 0, 0, false), -ERANGE);
	/* The shortest form, and the disk's size. */
	cr_assert_eq(scsi_cdb_rw(c, false, 100, 8, false, 0), 10);
	cr_assert_eq(scsi_cdb_rw(c, true, 0xfffffff8ull, 8, false, 0), 10);
	cr_assert_eq(scsi_cdb_rw(c, true, 0xfffffff9ull, 8, false, 0), 16);
	cr_assert_eq(c[0], SCSI_WRITE_16);
	cr_assert_eq(scsi_cdb_rw(c, false, 0, 65536, false, 0), 16);
	cr_assert_eq(scsi_cdb_rw(c, false, 992, 8, false, 1000), 10);
	cr_assert_eq(scsi_cdb_rw(c, false, 993, 8, false, 1000), -ERANGE);
	cr_assert_eq(scsi_cdb_rw(c, false, 1000, 1, false, 1000), -ERANGE);
	cr_assert_eq(scsi_cdb_rw(c, false, UINT64_MAX, 1, false, 1000), -ERANGE);
	cr_assert_eq(scsi_cdb_rw(c, false, 0, 0, false, 1000), -ERANGE);
	cr_assert_eq(scsi_cdb_sync10(c, 0xffffffffu, 1), 0);
	cr_assert_eq(scsi_cdb_sync10(c, 0xffffffffu, 2), -ERANGE);
}

/* ---- INQUIRY and VPD ---- */

static void std_inquiry(uint8_t *d)
{
	memset(d, 0, 96);
	d[0] = 0x00;
	d[2] = 0x06;
	d[3] = 0x02;
	d[4] = 96 - 5;
	d[7] = 0x02;
	memcpy(d + 8, "IET     ", 8);
	memcpy(d + 16, "VIRTUAL-DISK    ", 16);
	memcpy(d + 32, "0001", 4);
}

Test(scsi, inquiry)
{
	uint8_t d[96];
	struct scsi_inquiry q;

	std_inquiry(d);
	cr_assert_eq(scsi_parse_inquiry(d, 96, &q), 0);
	cr_assert_str_eq(q.vendor, "IET");
	cr_assert_str_eq(q.product, "VIRTUAL-DISK");
	cr_assert_str_eq(q.revision, "0001");
	cr_assert(q.cmdque);
	cr_assert_eq(q.type, 0);
	cr_assert_eq(q.version, 6);
	/* Every truncation below 36 bytes, received or claimed. */
	for (size_t n = 0; n < 36; n++) {
		uint8_t *b = exact(d, n);

		cr_assert_eq(scsi_parse_inquiry(b, n, &q), -EBADMSG, "len %zu", n);
		free(b);
	}
	cr_assert_eq(scsi_parse_inquiry(d, 36, &q), 0);
	d[4] = 30;
	cr_assert_eq(scsi_parse_inquiry(d, 96, &q), -EBADMSG);
	d[4] = 31;
	d[9] = 0x01;
	cr_assert_eq(scsi_parse_inquiry(d, 96, &q), 0);
	cr_assert_str_eq(q.vendor, "I?T");
}

Test(scsi, vpd_pages)
{
	const uint8_t p0[] = { 0, 0x00, 0, 4, 0x00, 0x80, 0x83, 0xb0 };
	const uint8_t p80[] = { 0, 0x80, 0, 10, ' ', ' ', 'S', 'N', '-', '1', '2', ' ', 0, 0 };
	const uint8_t p83[] = {
		0, 0x83, 0, 40,
		/* T10 vendor ID, ASCII, LU */
		0x02, 0x01, 0, 8, 'I', 'E', 'T', ' ', ' ', ' ', ' ', 'x',
		/* NAA, binary, target port: not the LU */
		0x01, 0x13, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8,
		/* NAA, binary, LU */
		0x01, 0x03, 0, 8, 0x60, 1, 2, 3, 4, 5, 6, 7,
	};
	struct scsi_designator dsg;
	char sn[16];
	size_t off = 0;
	int n = 0;

	cr_assert_eq(scsi_vpd_supports(p0, sizeof(p0), 0x83), 1);
	cr_assert_eq(scsi_vpd_supports(p0, sizeof(p0), 0x89), 0);
	cr_assert_eq(scsi_vpd_supports(p0, 6, 0x83), 0);	/* cut off */
	cr_assert_eq(scsi_vpd_supports(p80, sizeof(p80), 0x80), -EBADMSG);
	cr_assert_eq(scsi_vpd_serial(p80, sizeof(p80), sn, sizeof(sn)), 5);
	cr_assert_str_eq(sn, "SN-12");
	cr_assert_eq(scsi_vpd_serial(p80, sizeof(p80), sn, 5), -ENOSPC);
	cr_assert_eq(scsi_vpd_serial(p80, 3, sn, sizeof(sn)), -EBADMSG);
	while (scsi_vpd83_next(p83, sizeof(p83), &off, &dsg) == 1)
		n++;
	cr_assert_eq(n, 3);
	cr_assert_eq(scsi_vpd83_lu_id(p83, sizeof(p83), &dsg), 0);
	cr_assert_eq(dsg.type, 3);
	cr_assert_eq(dsg.association, 0);
	cr_assert_eq(dsg.id[0], 0x60);
	/* Shorter and shorter pages: the NAA LU id goes, then the T10. */
	cr_assert_eq(scsi_vpd83_lu_id(p83, 4 + 24, &dsg), 0);
	cr_assert_eq(dsg.type, 1);
	cr_assert_eq(scsi_vpd83_lu_id(p83, 4, &dsg), -ENOENT);
	/* A descriptor running past the page. */
	uint8_t bad[sizeof(p83)];
	memcpy(bad, p83, sizeof(p83));
	bad[4 + 3] = 200;
	cr_assert_eq(scsi_vpd83_lu_id(bad, sizeof(bad), &dsg), -EBADMSG);
	for (size_t len = 0; len <= sizeof(p83); len++) {
		uint8_t *b = exact(p83, len);
		int rc = scsi_vpd83_lu_id(b, len, &dsg);

		cr_assert(rc == 0 || rc == -ENOENT || rc == -EBADMSG, "len %zu", len);
		free(b);
	}
}

/* ---- READ CAPACITY(16), REPORT LUNS ---- */

/* UNMAP and WRITE SAME(16) against SBC-3 5.28 and 5.43. */
Test(scsi, provisioning_cdbs)
{
	const struct scsi_unmap_desc two[] = {
		{ 0x0102030405060708ull, 0x090a0b0c }, { 5, 1 },
	};
	uint8_t c[16], p[64];

	cr_assert_eq(scsi_cdb_unmap(c, 24), 0);
	cr_assert_arr_eq(c, ((uint8_t[]){ 0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0 }), 10);
	cr_assert_eq(scsi_cdb_unmap(c, 0x1008), 0);
	cr_assert_eq(c[7], 0x10);
	cr_assert_eq(c[8], 0x08);
	cr_assert_eq(scsi_cdb_unmap(c, 8), -EINVAL);	/* no descriptor */
	cr_assert_eq(scsi_cdb_unmap(c, 25), -EINVAL);	/* half a descriptor */

	memset(p, 0xee, sizeof(p));
	cr_assert_eq(scsi_unmap_param(p, sizeof(p), two, 2), 40);
	cr_assert_arr_eq(p, ((uint8_t[]){
		0, 38, 0, 32, 0, 0, 0, 0,
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0 }), 40);
	cr_assert_eq(p[40], 0xee);			/* nothing past the list */
	cr_assert_eq(scsi_unmap_param(p, 39, two, 2), -EINVAL);
	cr_assert_eq(scsi_unmap_param(p, sizeof(p), two, 0), -EINVAL);
	cr_assert_eq(scsi_unmap_param(p, sizeof(p), &(struct scsi_unmap_desc){ 1, 0 }, 1),
		     -ERANGE);
	cr_assert_eq(scsi_unmap_param(p, sizeof(p), &(struct scsi_unmap_desc){ UINT64_MAX, 1 }, 1),
		     24);
	cr_assert_eq(scsi_unmap_param(p, sizeof(p), &(struct scsi_unmap_desc){ UINT64_MAX, 2 }, 1),
		     -ERANGE);
	/* 4095 descriptors make 65528 bytes; 4096 overflow the 16-bit length. */
	{
		struct scsi_unmap_desc *many = calloc(4096, sizeof(*many));
		uint8_t *big = malloc(8 + 16 * 4096);

		cr_assert(many && big);
		for (int i = 0; i < 4096; i++)
			many[i] = (struct scsi_unmap_desc){ (uint64_t)i * 8, 8 };
		cr_assert_eq(scsi_unmap_param(big, 8 + 16 * 4096, many, 4095), 65528);
		cr_assert_eq(big[0] << 8 | big[1], 65526);
		cr_assert_eq(big[2] << 8 | big[3], 65520);
		cr_assert_eq(scsi_unmap_param(big, 8 + 16 * 4096, many, 4096), -EINVAL);
		free(many);
		free(big);
	}

	cr_assert_eq(scsi_cdb_write_same16(c, 0x0102030405060708ull, 0x090a0b0c, true), 0);
	cr_assert_arr_eq(c, ((uint8_t[]){ 0x93, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0 }),
			 16);
	cr_assert_eq(scsi_cdb_write_same16(c, 7, 1, false), 0);
	cr_assert_eq(c[1], 0);
	cr_assert_eq(c[9], 7);
	cr_assert_eq(c[13], 1);
	cr_assert_eq(scsi_cdb_write_same16(c, 7, 0, false), -ERANGE);	/* "to the end" */
	cr_assert_eq(scsi_cdb_write_same16(c, UINT64_MAX, 1, false), 0);
	cr_assert_eq(scsi_cdb_write_same16(c, UINT64_MAX, 2, false), -ERANGE);
}

/* Block Limits (0xb0) and Logical Block Provisioning (0xb2) pages. */
Test(scsi, vpd_provisioning_pages)
{
	uint8_t b0[64] = { 0, 0xb0, 0, 0x3c, 1, 128 };
	/* tgt's thin LUN: LBPU LBPWS LBPWS10 LBPRZ, thin provisioning. */
	const uint8_t b2[] = { 0, 0xb2, 0, 4, 0, 0xe4, 0x02, 0 };
	struct scsi_block_limits bl;
	struct scsi_lbp lbp;

	b0[11] = 0x80;						/* max transfer 128 */
	b0[20] = 0x11, b0[23] = 0x22;				/* max unmap LBAs */
	b0[27] = 0x33;						/* max descriptors */
	b0[30] = 0x01;						/* granularity 256 */
	b0[32] = 0x80, b0[35] = 0x08;				/* UGAVALID, align 8 */
	b0[36] = 0x01, b0[43] = 0x02;				/* max write same */
	cr_assert_eq(scsi_parse_vpd_b0(b0, sizeof(b0), &bl), 0);
	cr_assert(bl.wsnz);
	cr_assert_eq(bl.max_xfer_blocks, 128);
	cr_assert_eq(bl.max_unmap_lbas, 0x11000022u);
	cr_assert_eq(bl.max_unmap_descs, 0x33);
	cr_assert_eq(bl.opt_unmap_gran, 256);
	cr_assert(bl.ugavalid);
	cr_assert_eq(bl.unmap_align, 8);
	cr_assert_eq(bl.max_ws_blocks, 0x0100000000000002ull);
	cr_assert(bl.has_unmap_fields);
	/* An SBC-2 page (0x10 long): the later fields read 0. */
	b0[3] = 0x10;
	cr_assert_eq(scsi_parse_vpd_b0(b0, sizeof(b0), &bl), 0);
	cr_assert_eq(bl.max_xfer_blocks, 128);
	cr_assert_eq(bl.max_unmap_lbas, 0);
	cr_assert_eq(bl.max_ws_blocks, 0);
	cr_assert(!bl.has_unmap_fields);
	/* Cut off by the bytes received, whatever the length claims. */
	b0[3] = 0x3c;
	cr_assert_eq(scsi_parse_vpd_b0(b0, 27, &bl), 0);	/* byte 27 missing */
	cr_assert_eq(bl.max_unmap_lbas, 0x11000022u);
	cr_assert_eq(bl.max_unmap_descs, 0);
	cr_assert(!bl.has_unmap_fields);
	cr_assert_eq(scsi_parse_vpd_b0(b0, 28, &bl), 0);
	cr_assert_eq(bl.max_unmap_descs, 0x33);
	cr_assert(bl.has_unmap_fields);
	cr_assert_eq(bl.max_ws_blocks, 0);
	cr_assert_eq(scsi_parse_vpd_b0(b0, 43, &bl), 0);	/* byte 43 missing */
	cr_assert_eq(bl.max_ws_blocks, 0);
	cr_assert_eq(scsi_parse_vpd_b0(b0, 44, &bl), 0);
	cr_assert_eq(bl.max_ws_blocks, 0x0100000000000002ull);
	cr_assert_eq(scsi_parse_vpd_b0(b2, sizeof(b2), &bl), -EBADMSG);
	cr_assert_eq(scsi_parse_vpd_b0(b0, 3, &bl), -EBADMSG);

	cr_assert_eq(scsi_parse_vpd_b2(b2, sizeof(b2), &lbp), 0);
	cr_assert(lbp.lbpu && lbp.lbpws && lbp.lbpws10 && lbp.lbprz);
	cr_assert(!lbp.anc_sup && !lbp.dp);
	cr_assert_eq(lbp.prov_type, 2);
	cr_assert_eq(scsi_parse_vpd_b2((uint8_t[]){ 0, 0xb2, 0, 4, 0, 0x40, 0, 0 }, 8, &lbp), 0);
	cr_assert(!lbp.lbpu && lbp.lbpws && !lbp.lbpws10);
	cr_assert_eq(scsi_parse_vpd_b2((uint8_t[]){ 0, 0xb2, 0, 4, 0, 0x20, 0, 0 }, 8, &lbp), 0);
	cr_assert(!lbp.lbpws && lbp.lbpws10);
	cr_assert_eq(scsi_parse_vpd_b2(b2, 5, &lbp), -EBADMSG);	/* no byte 5 */
	cr_assert_eq(scsi_parse_vpd_b2((uint8_t[]){ 0, 0xb2, 0, 1, 0, 0xe4 }, 6, &lbp), -EBADMSG);
	cr_assert_eq(scsi_parse_vpd_b2(b0, sizeof(b0), &lbp), -EBADMSG);
}

Test(scsi, provisioning_decision)
{
	struct scsi_block_limits tgt = { .max_unmap_lbas = UINT32_MAX,
					 .max_unmap_descs = UINT32_MAX,
					 .has_unmap_fields = true };
	struct scsi_block_limits none = { .has_unmap_fields = true };
	struct scsi_lbp thin = { .lbpu = true, .lbpws = true, .lbprz = true, .prov_type = 2 };
	struct scsi_lbp full = { 0 };
	struct scsi_provisioning p;

	scsi_provisioning(&tgt, &thin, 65536, &p);
	cr_assert(p.unmap && p.write_same && p.ws_unmap);
	cr_assert_eq(p.max_unmap_blocks, UINT32_MAX);
	cr_assert_eq(p.max_unmap_descs, UINT32_MAX);
	cr_assert_eq(p.max_ws_blocks, 65536);
	/* tgt without thin provisioning: nothing, not even WRITE SAME. */
	scsi_provisioning(&none, &full, 65536, &p);
	cr_assert(!p.unmap && !p.write_same && !p.ws_unmap);
	cr_assert_eq(p.max_unmap_blocks, 0);
	cr_assert_eq(p.max_ws_blocks, 0);
	/* LBPU with limits 0: UNMAP "not implemented" after all. */
	scsi_provisioning(&none, &(struct scsi_lbp){ .lbpu = true }, 65536, &p);
	cr_assert(!p.unmap);
	/* No B0 at all: one range of any length. */
	scsi_provisioning(NULL, &(struct scsi_lbp){ .lbpu = true }, 65536, &p);
	cr_assert(p.unmap && !p.write_same);
	cr_assert_eq(p.max_unmap_blocks, UINT32_MAX);
	cr_assert_eq(p.max_unmap_descs, 1);
	/* No B2: no UNMAP; a reported WRITE SAME limit means WRITE SAME,
	 * capped at what the CDB can carry. */
	scsi_provisioning(&(struct scsi_block_limits){ .max_ws_blocks = 1ull << 40,
						     .max_unmap_lbas = 8,
						     .max_unmap_descs = 1 }, NULL, 65536, &p);
	cr_assert(!p.unmap && p.write_same && !p.ws_unmap);
	cr_assert_eq(p.max_ws_blocks, UINT32_MAX);
	scsi_provisioning(&(struct scsi_block_limits){ .max_ws_blocks = 1000,
						     .max_unmap_lbas = 8,
						     .max_unmap_descs = 2,
						     .has_unmap_fields = true }, &thin, 65536, &p);
	cr_assert(p.unmap && p.ws_unmap);
	cr_assert_eq(p.max_unmap_blocks, 8);
	cr_assert_eq(p.max_unmap_descs, 2);
	cr_assert_eq(p.max_ws_blocks, 1000);
}

Test(scsi, capacity16)
{
	uint8_t d[32] = { 0, 0, 0, 0, 0, 0x3f, 0xff, 0xff, 0, 0, 0x02, 0, 0x01, 0x03, 0x80, 0x01 };
	struct scsi_capacity c;

	cr_assert_eq(scsi_parse_capacity16(d, 32, &c), 0);
	cr_assert_eq(c.nblocks, 0x400000);
	cr_assert_eq(c.block_size, 512);
	cr_assert(c.prot_en);
	cr_assert_eq(c.pbexp, 3);
	cr_assert(c.lbpme);
	cr_assert_eq(c.lowest_aligned, 1);
	cr_assert_eq(scsi_parse_capacity16(d, 16, &c), 0);
	cr_assert_eq(scsi_parse_capacity16(d, 15, &c), -EBADMSG);
	d[10] = 0x10;	/* 4096 */
	cr_assert_eq(scsi_parse_capacity16(d, 32, &c), 0);
	d[10] = 0x02;
	d[11] = 0x08;	/* 520 */
	cr_assert_eq(scsi_parse_capacity16(d, 32, &c), -ERANGE);
	d[11] = 0;
	d[10] = 0;
	d[9] = 0;
	cr_assert_eq(scsi_parse_capacity16(d, 32, &c), -ERANGE);
	d[8] = 1;	/* 16 MiB blocks */
	cr_assert_eq(scsi_parse_capacity16(d, 32, &c), -ERANGE);
	d[8] = 0;
	d[10] = 2;
	memset(d, 0xff, 8);
	cr_assert_eq(scsi_parse_capacity16(d, 32, &c), -EOVERFLOW);
}

Test(scsi, report_luns_and_lun_numbers)
{
	uint8_t d[8 + 3 * 8] = { 0, 0, 0, 24 };
	uint64_t luns[4], raw;
	unsigned got;
	uint32_t total;

	cr_assert_eq(scsi_lun_encode(0, &raw), 0);
	memcpy(d + 8, &(uint8_t[8]){ 0 }, 8);
	cr_assert_eq(scsi_lun_encode(1, &raw), 0);
	d[16 + 1] = 1;
	cr_assert_eq(scsi_lun_encode(300, &raw), 0);
	cr_assert_eq(raw, 0x412c000000000000ull);
	d[24] = 0x41;
	d[25] = 0x2c;
	cr_assert_eq(scsi_parse_report_luns(d, sizeof(d), luns, 4, &got, &total), 0);
	cr_assert_eq(got, 3);
	cr_assert_eq(total, 3);
	cr_assert_eq(scsi_lun_decode(luns[0]), 0);
	cr_assert_eq(scsi_lun_decode(luns[1]), 1);
	cr_assert_eq(scsi_lun_decode(luns[2]), 300);
	/* Fewer received than claimed; fewer room than received. */
	cr_assert_eq(scsi_parse_report_luns(d, 8 + 8 + 7, luns, 4, &got, &total), 0);
	cr_assert_eq(got, 1);
	cr_assert_eq(total, 3);
	cr_assert_eq(scsi_parse_report_luns(d, sizeof(d), luns, 2, &got, &total), 0);
	cr_assert_eq(got, 2);
	cr_assert_eq(scsi_parse_report_luns(d, 7, luns, 2, &got, &total), -EBADMSG);
	/* Claimed fewer than sent: only the claimed ones. */
	d[3] = 8;
	cr_assert_eq(scsi_parse_report_luns(d, sizeof(d), luns, 4, &got, &total), 0);
	cr_assert_eq(got, 1);
	cr_assert_eq(scsi_lun_encode(16383, &raw), 0);
	cr_assert_eq(scsi_lun_decode(raw), 16383);
	cr_assert_eq(scsi_lun_encode(16384, &raw), -EINVAL);
	cr_assert_eq(scsi_lun_decode(0x0001000000000001ull), -EINVAL);	/* multi-level */
	cr_assert_eq(scsi_lun_decode(0x8000000000000000ull), -EINVAL);	/* method 2 */
	cr_assert_eq(scsi_lun_decode(0x0100000000000000ull), -EINVAL);	/* bus 1 */
}

/* ---- persistent reservations ---- */

Test(scsi, pr_out)
{
	struct scsi_pr_out r = { SCSI_PR_REGISTER, 0, 0, 0xa1a1a1a1a1a1a1a1ull, false };
	uint8_t c[10], p[24];

	cr_assert_eq(scsi_pr_out(&r, c, p), 0);
	cr_assert_arr_eq(c, ((uint8_t[]){ 0x5f, 0, 0, 0, 0, 0, 0, 0, 24, 0 }), 10);
	cr_assert_arr_eq(p, ((uint8_t[8]){ 0 }), 8);
	cr_assert_eq(p[8], 0xa1);
	cr_assert_eq(p[20], 0);
	r = (struct scsi_pr_out){ SCSI_PR_RESERVE, SCSI_PR_WE_REGISTRANTS_ONLY, 0x0102030405060708ull,
				  0, false };
	cr_assert_eq(scsi_pr_out(&r, c, p), 0);
	cr_assert_eq(c[1], 1);
	cr_assert_eq(c[2], 5);
	cr_assert_eq(p[0], 1);
	cr_assert_eq(p[7], 8);
	r.action = SCSI_PR_PREEMPT;
	r.sa_key = 0xbb;
	cr_assert_eq(scsi_pr_out(&r, c, p), 0);
	cr_assert_eq(c[1], 4);
	cr_assert_eq(c[2], 5);
	cr_assert_eq(p[15], 0xbb);
	r.sa_key = 0;
	cr_assert_eq(scsi_pr_out(&r, c, p), -EINVAL);
	r = (struct scsi_pr_out){ SCSI_PR_RELEASE, SCSI_PR_WE_REGISTRANTS_ONLY, 1, 0, false };
	cr_assert_eq(scsi_pr_out(&r, c, p), 0);
	cr_assert_eq(c[1], 2);
	r.type = 2;
	cr_assert_eq(scsi_pr_out(&r, c, p), -EINVAL);
	r.type = 9;
	cr_assert_eq(scsi_pr_out(&r, c, p), -EINVAL);
	r = (struct scsi_pr_out){ SCSI_PR_CLEAR, 0, 7, 0, true };
	cr_assert_eq(scsi_pr_out(&r, c, p), 0);
	cr_assert_eq(c[1], 3);
	cr_assert_eq(c[2], 0);
	cr_assert_eq(p[20], 1);
	r.key = 0;
	cr_assert_eq(scsi_pr_out(&r, c, p), -EINVAL);
	r = (struct scsi_pr_out){ SCSI_PR_RESERVE, SCSI_PR_WE_REGISTRANTS_ONLY, 0, 0, false };
	cr_assert_eq(scsi_pr_out(&r, c, p), -EINVAL);
	r.action = (enum scsi_pr_out_action)7;
	r.key = 1;
	cr_assert_eq(scsi_pr_out(&r, c, p), -EINVAL);
}

Test(scsi, pr_in_replies)
{
	/* Generation 3, two keys (the handover check: A then B). */
	uint8_t k[8 + 16] = { 0, 0, 0, 3, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0xa, 0, 0, 0, 0, 0, 0, 0, 0xb };
	uint8_t rsv[24] = { 0, 0, 0, 4, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0xb };
	uint64_t keys[4];
	unsigned got;
	uint32_t gen, total;
	struct scsi_pr_reservation r;

	cr_assert_eq(scsi_parse_pr_keys(k, sizeof(k), &gen, keys, 4, &got, &total), 0);
	cr_assert_eq(gen, 3);
	cr_assert_eq(got, 2);
	cr_assert_eq(keys[0], 0xa);
	cr_assert_eq(keys[1], 0xb);
	cr_assert_eq(scsi_parse_pr_keys(k, 16, &gen, keys, 4, &got, &total), 0);
	cr_assert_eq(got, 1);
	cr_assert_eq(total, 2);
	cr_assert_eq(scsi_parse_pr_keys(k, 7, &gen, keys, 4, &got, &total), -EBADMSG);
	cr_assert_eq(scsi_parse_pr_keys(k, 8, &gen, keys, 4, &got, &total), 0);
	cr_assert_eq(got, 0);

	rsv[21] = 0x05;
	cr_assert_eq(scsi_parse_pr_reservation(rsv, sizeof(rsv), &r), 0);
	cr_assert(r.held);
	cr_assert_eq(r.key, 0xb);
	cr_assert_eq(r.type, SCSI_PR_WE_REGISTRANTS_ONLY);
	cr_assert_eq(r.generation, 4);
	cr_assert_eq(scsi_parse_pr_reservation(rsv, 23, &r), -EBADMSG);
	rsv[7] = 0;
	cr_assert_eq(scsi_parse_pr_reservation(rsv, 8, &r), 0);
	cr_assert(!r.held);
	rsv[7] = 8;
	cr_assert_eq(scsi_parse_pr_reservation(rsv, 24, &r), -EBADMSG);
	cr_assert_eq(scsi_parse_pr_reservation(rsv, 7, &r), -EBADMSG);
}

/* REPORT CAPABILITIES (SPC-4 6.15.4): what tgt 1.0.85 answers (no PTPL_C:
 * usr/spc.c, spc_pr_report_capabilities), and a LUN that can persist. */
Test(scsi, pr_caps)
{
	uint8_t tgt[8] = { 0, 8, 0, 0x80, 0xea, 0x01, 0, 0 };
	uint8_t ptpl[8] = { 0, 8, 0x1d, 0x81, 0x40, 0x00, 0, 0 };
	struct scsi_pr_caps c;
	uint8_t cdb[10];

	cr_assert_eq(scsi_cdb_pr_in(cdb, SCSI_PR_REPORT_CAPABILITIES, 8), 0);
	cr_assert_eq(cdb[0], 0x5e);
	cr_assert_eq(cdb[1], 0x02);
	cr_assert_eq(scsi_parse_pr_caps(tgt, sizeof(tgt), &c), 0);
	cr_assert(!c.ptpl_c && !c.ptpl_a && c.tmv && !c.crh && !c.sip_c && !c.atp_c);
	cr_assert_eq(c.type_mask, 0xea01);
	cr_assert_eq(scsi_parse_pr_caps(ptpl, sizeof(ptpl), &c), 0);
	cr_assert(c.ptpl_c && c.ptpl_a && c.tmv && c.crh && c.sip_c && c.atp_c);
	cr_assert_eq(c.type_mask, 0x4000);
	cr_assert_eq(scsi_parse_pr_caps(ptpl, 7, &c), -EBADMSG);
	ptpl[1] = 4;
	cr_assert_eq(scsi_parse_pr_caps(ptpl, 8, &c), -EBADMSG);
	cr_assert(!c.ptpl_c);
}

/* APTPL is byte 20 bit 0 of REGISTER's parameter list (SPC-4 6.16.3). */
Test(scsi, pr_out_register_aptpl)
{
	struct scsi_pr_out r = { .action = SCSI_PR_REGISTER_IGNORE, .sa_key = 0x1234, .aptpl = true };
	uint8_t c[10], p[SCSI_PR_OUT_PARAM_LEN];

	cr_assert_eq(scsi_pr_out(&r, c, p), 0);
	cr_assert_eq(c[1], 0x06);
	cr_assert_eq(p[20], 0x01);
	r.aptpl = false;
	cr_assert_eq(scsi_pr_out(&r, c, p), 0);
	cr_assert_eq(p[20], 0x00);
}

/* ---- sense and classification ---- */

Test(scsi, sense_formats)
{
	/* Fixed, UNIT ATTENTION 2A/03, with INFORMATION. */
	uint8_t f[18] = { 0xf0, 0, 0x06, 0, 0, 0x12, 0x34, 10, 0, 0, 0, 0, 0x2a, 0x03 };
	/* Descriptor, MEDIUM ERROR 11/00, information descriptor. */
	uint8_t d[20] = { 0x72, 0x03, 0x11, 0x00, 0, 0, 0, 12, 0x00, 0x0a, 0x80, 0,
			  0, 0, 0, 0, 0, 0, 0x10, 0x00 };
	struct scsi_sense s;

	cr_assert_eq(scsi_parse_sense(f, 18, &s), 0);
	cr_assert_eq(s.key, 6);
	cr_assert_eq(s.asc, 0x2a);
	cr_assert_eq(s.ascq, 0x03);
	cr_assert(s.has_info);
	cr_assert_eq(s.info, 0x1234);
	cr_assert(!s.deferred && !s.descriptor);
	/* Cut short: the key survives, ASC/ASCQ go. */
	cr_assert_eq(scsi_parse_sense(f, 13, &s), 0);
	cr_assert_eq(s.asc, 0x2a);
	cr_assert_eq(s.ascq, 0);
	cr_assert_eq(scsi_parse_sense(f, 12, &s), 0);
	cr_assert_eq(s.asc, 0);
	cr_assert_eq(scsi_parse_sense(f, 3, &s), 0);
	cr_assert_eq(s.key, 6);
	cr_assert_eq(scsi_parse_sense(f, 2, &s), -EBADMSG);
	cr_assert_eq(scsi_parse_sense(f, 0, &s), -EBADMSG);
	f[7] = 4;	/* additional length claims less: ASC not covered */
	cr_assert_eq(scsi_parse_sense(f, 18, &s), 0);
	cr_assert_eq(s.asc, 0);
	f[0] = 0x71;
	f[7] = 10;
	cr_assert_eq(scsi_parse_sense(f, 18, &s), 0);
	cr_assert(s.deferred);
	cr_assert(!s.has_info);

	cr_assert_eq(scsi_parse_sense(d, 20, &s), 0);
	cr_assert(s.descriptor);
	cr_assert_eq(s.key, 3);
	cr_assert_eq(s.asc, 0x11);
	cr_assert(s.has_info);
	cr_assert_eq(s.info, 0x1000);
	cr_assert_eq(scsi_parse_sense(d, 19, &s), 0);	/* info cut: dropped */
	cr_assert(!s.has_info);
	cr_assert_eq(scsi_parse_sense(d, 4, &s), 0);
	cr_assert_eq(s.asc, 0x11);
	cr_assert_eq(scsi_parse_sense(d, 3, &s), -EBADMSG);
	d[0] = 0x7f;
	cr_assert_eq(scsi_parse_sense(d, 20, &s), -EPROTO);
	d[0] = 0x73;
	cr_assert_eq(scsi_parse_sense(d, 20, &s), 0);
	cr_assert(s.deferred);
}

static enum scsi_disposition cls(uint8_t status, uint8_t key, uint8_t asc, uint8_t ascq,
				 const char **why)
{
	uint8_t f[18] = { 0x70, 0, key, 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, ascq };
	struct scsi_sense s;

	return scsi_classify(status, f, sizeof(f), &s, why);
}

Test(scsi, classify)
{
	const char *why;
	struct scsi_sense s;
	char line[128];

	cr_assert_eq(scsi_classify(SCSI_STATUS_GOOD, NULL, 0, &s, &why), SCSI_DISP_OK);
	cr_assert_eq(scsi_classify(SCSI_STATUS_CONDITION_MET, NULL, 0, &s, &why), SCSI_DISP_OK);
	cr_assert_eq(scsi_classify(SCSI_STATUS_BUSY, NULL, 0, &s, &why), SCSI_DISP_RETRY);
	cr_assert_eq(scsi_classify(SCSI_STATUS_TASK_SET_FULL, NULL, 0, &s, &why), SCSI_DISP_RETRY);
	cr_assert_eq(scsi_classify(SCSI_STATUS_TASK_ABORTED, NULL, 0, &s, &why), SCSI_DISP_RETRY);
	cr_assert_eq(scsi_classify(SCSI_STATUS_RESERVATION_CONFLICT, NULL, 0, &s, &why),
		     SCSI_DISP_CONFLICT);
	cr_assert_str_eq(why, "reservation conflict: this host lost the disk");
	cr_assert_eq(scsi_classify(SCSI_STATUS_ACA_ACTIVE, NULL, 0, &s, &why), SCSI_DISP_FATAL);
	cr_assert_eq(scsi_classify(0x22, NULL, 0, &s, &why), SCSI_DISP_FATAL);
	cr_assert_eq(scsi_classify(SCSI_STATUS_CHECK_CONDITION, NULL, 0, &s, &why), SCSI_DISP_FATAL);
	cr_assert_eq(scsi_classify(SCSI_STATUS_CHECK_CONDITION, (uint8_t[]){ 0x70 }, 1, &s, &why),
		     SCSI_DISP_FATAL);
	/* tgt's reservation unit attentions are retried. */
	cr_assert_eq(cls(2, SCSI_KEY_UNIT_ATTENTION, 0x2a, 0x03, &why), SCSI_DISP_RETRY);
	cr_assert_str_eq(why, "unit attention: reservations preempted");
	cr_assert_eq(cls(2, SCSI_KEY_UNIT_ATTENTION, 0x2a, 0x04, &why), SCSI_DISP_RETRY);
	cr_assert_eq(cls(2, SCSI_KEY_UNIT_ATTENTION, 0x29, 0x00, &why), SCSI_DISP_RETRY);
	cr_assert_eq(cls(2, SCSI_KEY_UNIT_ATTENTION, 0x3f, 0x0e, &why), SCSI_DISP_RETRY);
	cr_assert_eq(cls(2, SCSI_KEY_NOT_READY, 0x04, 0x01, &why), SCSI_DISP_RETRY);
	cr_assert_eq(cls(2, SCSI_KEY_NOT_READY, 0x3a, 0x00, &why), SCSI_DISP_FATAL);
	cr_assert_str_eq(why, "not ready: medium not present");
	cr_assert_eq(cls(2, SCSI_KEY_NOT_READY, 0x04, 0x03, &why), SCSI_DISP_FATAL);
	cr_assert_eq(cls(2, SCSI_KEY_ABORTED_COMMAND, 0x47, 0x00, &why), SCSI_DISP_RETRY);
	cr_assert_eq(cls(2, SCSI_KEY_RECOVERED_ERROR, 0x17, 0x01, &why), SCSI_DISP_OK);
	cr_assert_eq(cls(2, SCSI_KEY_MEDIUM_ERROR, 0x11, 0x00, &why), SCSI_DISP_FATAL);
	cr_assert_eq(cls(2, SCSI_KEY_HARDWARE_ERROR, 0x44, 0x00, &why), SCSI_DISP_FATAL);
	cr_assert_eq(cls(2, SCSI_KEY_ILLEGAL_REQUEST, 0x21, 0x00, &why), SCSI_DISP_FATAL);
	cr_assert_str_eq(why, "illegal request: LBA out of range");
	cr_assert_eq(cls(2, SCSI_KEY_DATA_PROTECT, 0x27, 0x00, &why), SCSI_DISP_FATAL);
	cr_assert_eq(cls(2, SCSI_KEY_MISCOMPARE, 0x1d, 0x00, &why), SCSI_DISP_FATAL);
	cr_assert_eq(cls(2, SCSI_KEY_NO_SENSE, 0, 0, &why), SCSI_DISP_RETRY);
	/* Deferred: fatal whatever the key. */
	uint8_t dfr[18] = { 0x71, 0, SCSI_KEY_UNIT_ATTENTION, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x29 };
	cr_assert_eq(scsi_classify(2, dfr, 18, &s, &why), SCSI_DISP_FATAL);
	cr_assert(s.deferred);
	/* Sense bytes with a non-CHECK CONDITION status are ignored. */
	cr_assert_eq(scsi_classify(SCSI_STATUS_RESERVATION_CONFLICT, dfr, 18, &s, &why),
		     SCSI_DISP_CONFLICT);

	cls(2, SCSI_KEY_UNIT_ATTENTION, 0x2a, 0x03, &why);
	uint8_t ua[18] = { 0x70, 0, 6, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x2a, 0x03 };
	scsi_classify(2, ua, 18, &s, &why);
	scsi_describe(line, sizeof(line), 2, &s);
	cr_assert_str_eq(line, "CHECK CONDITION, UNIT ATTENTION 2A/03 (reservations preempted)");
	scsi_describe(line, sizeof(line), SCSI_STATUS_RESERVATION_CONFLICT, NULL);
	cr_assert_str_eq(line, "RESERVATION CONFLICT (0x18)");
	s.asc = 0x99;
	scsi_describe(line, sizeof(line), 2, &s);
	cr_assert_str_eq(line, "CHECK CONDITION, UNIT ATTENTION 99/03");
	cr_assert_eq(scsi_describe(line, 8, 2, &s), 37);
	cr_assert_str_eq(line, "CHECK C");
	cr_assert_str_eq(scsi_key_name(0xc), "reserved sense key");
	cr_assert_str_eq(scsi_status_name(0x22), "unknown status");
}

/* Random bytes at random lengths through every reply parser. */
Test(scsi, fuzz_parsers)
{
	uint32_t rng = 11;
	unsigned ok = 0;

	for (int iter = 0; iter < 30000; iter++) {
		uint8_t raw[80], *b;
		size_t len;
		struct scsi_inquiry q;
		struct scsi_capacity c;
		struct scsi_designator dsg;
		struct scsi_sense s;
		struct scsi_pr_reservation r;
		uint64_t items[4];
		unsigned got;
		uint32_t total, gen;
		char sn[32];
		const char *why;

		for (size_t i = 0; i < sizeof(raw); i++) {
			rng = rng * 1103515245u + 12345u;
			raw[i] = (uint8_t)(rng >> 16);
		}
		rng = rng * 1103515245u + 12345u;
		len = (rng >> 16) % (sizeof(raw) + 1);
		/* Make the headers plausible half of the time. */
		if (iter & 1 && len > 4) {
			raw[1] = (uint8_t[]){ 0x00, 0x80, 0x83, 0xb0, 0xb2 }[iter % 5];
			raw[2] = 0;
			raw[3] = (uint8_t)(raw[3] % 80);
			raw[0] = (uint8_t[]){ 0x70, 0x71, 0x72, 0x73 }[(iter >> 1) % 4];
		}
		b = exact(raw, len);
		ok += scsi_parse_inquiry(b, len, &q) == 0;
		ok += scsi_parse_capacity16(b, len, &c) == 0;
		ok += scsi_vpd83_lu_id(b, len, &dsg) == 0;
		ok += scsi_vpd_serial(b, len, sn, sizeof(sn)) >= 0;
		ok += scsi_vpd_supports(b, len, 0x83) >= 0;
		{
			struct scsi_block_limits bl;
			struct scsi_lbp lbp;
			struct scsi_provisioning pv;
			int r0 = scsi_parse_vpd_b0(b, len, &bl), r2 = scsi_parse_vpd_b2(b, len, &lbp);

			ok += r0 == 0;
			ok += r2 == 0;
			scsi_provisioning(r0 ? NULL : &bl, r2 ? NULL : &lbp, 65536, &pv);
			cr_assert(!pv.unmap || (pv.max_unmap_blocks && pv.max_unmap_descs));
			cr_assert(!pv.write_same || pv.max_ws_blocks);
		}
		ok += scsi_parse_report_luns(b, len, items, 4, &got, &total) == 0;
		cr_assert_leq(got, 4);
		ok += scsi_parse_pr_keys(b, len, &gen, items, 4, &got, &total) == 0;
		cr_assert_leq(got, 4);
		ok += scsi_parse_pr_reservation(b, len, &r) == 0;
		scsi_classify(SCSI_STATUS_CHECK_CONDITION, b, len, &s, &why);
		cr_assert_not_null(why);
		cr_assert_leq(s.key, 15);
		free(b);
	}
	cr_expect(ok > 30000, "ok %u", ok);
}
