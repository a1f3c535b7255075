/*
 * Unit tests for kernel/devices/model/vblk.c: virtio-blk features, the
 * configuration layout (VIRTIO 1.1 5.2.4), and request parsing (5.2.6):
 * good reads, writes, flushes, GET_ID, discard and write-zeroes, every
 * malformed shape, 4 KiB LUNs, range and overflow checks, and one request
 * end to end through a vring; the migration record; the drain-and-flush
 * state before a migration.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/vblk.h"
#include "kernel/devices/model/vring.h"
#include "kernel/lib/byteorder.h"
#include "tests/unit/vring_fake.h"

#define T_HDR		(VF_BASE + 0x1000)
#define T_DAT		(VF_BASE + 0x2000)
#define T_STS		(VF_BASE + 0x7000)

static struct vblk_info I;
static struct vring_chain C;
static struct vblk_req RQ;

static void t_init(void)
{
	vf_init();
	memset(&I, 0, sizeof(I));
	I.nblocks = 1000;
	I.block_size = 512;
	I.max_transfer = 1u << 20;
	memcpy(I.serial, "TERN-SERIAL-0001", 16);
	memset(&C, 0, sizeof(C));
}

static void t_fini(void)
{
	vf_fini();
}

TestSuite(vblk, .init = t_init, .fini = t_fini);

static void t_seg(uint64_t gpa, uint32_t len, bool write)
{
	cr_assert_lt(C.nseg, VRING_MAX_SEGS);
	C.seg[C.nseg].gpa = gpa;
	C.seg[C.nseg].len = len;
	C.seg[C.nseg].write = write;
	C.nseg++;
	if (write)
		C.wlen += len;
	else
		C.rlen += len;
}

static void t_hdr(uint32_t type, uint64_t sector)
{
	st_le32(vf_ptr(T_HDR), type);
	st_le32(vf_ptr(T_HDR + 4), 0);
	st_le64(vf_ptr(T_HDR + 8), sector);
	t_seg(T_HDR, 16, false);
}

/* header, data in the given direction, status */
static int t_req(uint32_t type, uint64_t sector, uint32_t data_len, bool data_write)
{
	t_hdr(type, sector);
	if (data_len)
		t_seg(T_DAT, data_len, data_write);
	t_seg(T_STS, 1, true);
	return vblk_parse(&I, &VF_MEM, &C, &RQ);
}

static void t_range(unsigned k, uint64_t sector, uint32_t n, uint32_t flags)
{
	st_le64(vf_ptr(T_DAT + 16 * k), sector);
	st_le32(vf_ptr(T_DAT + 16 * k + 8), n);
	st_le32(vf_ptr(T_DAT + 16 * k + 12), flags);
}

/* ---- features and config ---- */

Test(vblk, features)
{
	uint64_t base = 1ull << VIRTIO_BLK_F_SIZE_MAX | 1ull << VIRTIO_BLK_F_SEG_MAX |
			1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_FLUSH |
			1ull << VIRTIO_BLK_F_TOPOLOGY;

	cr_assert_eq(vblk_features(&I), base);
	I.discard = I.write_zeroes = true;
	cr_assert_eq(vblk_features(&I), base | 1ull << VIRTIO_BLK_F_DISCARD |
			1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	I.read_only = true;
	cr_assert_eq(vblk_features(&I), base | 1ull << VIRTIO_BLK_F_RO,
		     "no discard or write-zeroes on a read-only disk");
}

Test(vblk, config_layout)
{
	uint8_t cfg[VBLK_CFG_LEN + 4];

	I.nblocks = 0x123456789ull;
	I.block_size = 4096;
	I.discard = I.write_zeroes = true;
	I.max_discard_sectors = 0x10000;
	I.max_write_zeroes_sectors = 0x20000;
	memset(cfg, 0xee, sizeof(cfg));
	vblk_config(&I, cfg, sizeof(cfg));
	cr_assert_eq(ld_le64(cfg), 0x123456789ull * 8, "capacity in 512-byte sectors");
	cr_assert_eq(ld_le32(cfg + 8), 4096, "size_max for 1 MiB transfers");
	cr_assert_eq(ld_le32(cfg + 12), VBLK_SEG_MAX);
	cr_assert_eq(ld_le32(cfg + 16), 0, "no geometry");
	cr_assert_eq(ld_le32(cfg + 20), 4096);
	cr_assert_eq(cfg[24], 0);
	cr_assert_eq(cfg[25], 0);
	cr_assert_eq(ld_le16(cfg + 26), 1);
	cr_assert_eq(ld_le32(cfg + 28), 0);
	cr_assert_eq(cfg[32], 1);
	cr_assert_eq(ld_le32(cfg + 36), 0x10000);
	cr_assert_eq(ld_le32(cfg + 40), VBLK_MAX_RANGES);
	cr_assert_eq(ld_le32(cfg + 44), 8);
	cr_assert_eq(ld_le32(cfg + 48), 0x20000);
	cr_assert_eq(ld_le32(cfg + 52), VBLK_MAX_RANGES);
	cr_assert_eq(cfg[56], 1);
	for (unsigned k = 57; k < sizeof(cfg); k++)
		cr_assert_eq(cfg[k], 0, "byte %u", k);

	memset(cfg, 0xee, sizeof(cfg));
	vblk_config(&I, cfg, 8);
	cr_assert_eq(ld_le64(cfg), 0x123456789ull * 8);
	cr_assert_eq(cfg[8], 0xee, "only len bytes written");
}

Test(vblk, config_without_discard_and_odd_values)
{
	uint8_t cfg[VBLK_CFG_LEN];

	I.nblocks = UINT64_MAX;
	I.max_transfer = 16u << 20;
	vblk_config(&I, cfg, sizeof(cfg));
	cr_assert_eq(ld_le64(cfg), UINT64_MAX, "512-byte blocks: capacity is nblocks");
	cr_assert_eq(ld_le32(cfg + 8), 65536, "size_max capped at 64 KiB");
	for (unsigned k = 36; k < VBLK_CFG_LEN; k++)
		cr_assert_eq(cfg[k], 0, "byte %u", k);
	I.block_size = 4096;
	vblk_config(&I, cfg, sizeof(cfg));
	cr_assert_eq(ld_le64(cfg), UINT64_MAX / 8 * 8, "saturated, whole blocks");
	I.block_size = 1000;	/* not a power of two: nothing served */
	vblk_config(&I, cfg, sizeof(cfg));
	cr_assert_eq(ld_le64(cfg), 0);
	cr_assert_eq(vblk_max_data(&I), VBLK_SEG_MAX * 65536u);
	I.max_transfer = 0;
	cr_assert_eq(vblk_size_max(&I), 4096);
}

Test(vblk, get_id_bytes)
{
	uint8_t id[20];

	memset(id, 0xff, sizeof(id));
	vblk_get_id(&I, id);
	cr_assert_eq(memcmp(id, "TERN-SERIAL-0001\0\0\0\0", 20), 0);
}

/* ---- reads and writes ---- */

Test(vblk, read)
{
	cr_assert_eq(t_req(VIRTIO_BLK_T_IN, 10, 4096, true), 0);
	cr_assert_eq(RQ.op, VBLK_READ);
	cr_assert_eq(RQ.lba, 10);
	cr_assert_eq(RQ.nblocks, 8);
	cr_assert_eq(RQ.data_off, 0);
	cr_assert_eq(RQ.data_len, 4096);
	cr_assert_eq(RQ.status_gpa, T_STS);
	*vf_ptr(T_STS) = 0xaa;
	cr_assert_eq(vblk_finish(&VF_MEM, &RQ, VIRTIO_BLK_S_OK, 4096), 4097);
	cr_assert_eq(*vf_ptr(T_STS), VIRTIO_BLK_S_OK);
	cr_assert_eq(vf.last_write, T_STS, "the status page is marked written");
}

Test(vblk, read_with_status_in_the_data_segment)
{
	/* Linux may merge data and status into one writable segment */
	t_hdr(VIRTIO_BLK_T_IN, 0);
	t_seg(T_DAT, 1024 + 1, true);
	cr_assert_eq(vblk_parse(&I, &VF_MEM, &C, &RQ), 0);
	cr_assert_eq(RQ.data_len, 1024);
	cr_assert_eq(RQ.nblocks, 2);
	cr_assert_eq(RQ.status_gpa, T_DAT + 1024);
}

Test(vblk, write)
{
	cr_assert_eq(t_req(VIRTIO_BLK_T_OUT, 999, 512, false), 0);
	cr_assert_eq(RQ.op, VBLK_WRITE);
	cr_assert_eq(RQ.lba, 999);
	cr_assert_eq(RQ.nblocks, 1);
	cr_assert_eq(RQ.data_off, 16);
	cr_assert_eq(RQ.data_len, 512);
	cr_assert_eq(vblk_finish(&VF_MEM, &RQ, VIRTIO_BLK_S_IOERR, 0), 1);
	cr_assert_eq(*vf_ptr(T_STS), VIRTIO_BLK_S_IOERR);
}

Test(vblk, write_to_read_only)
{
	I.read_only = true;
	cr_assert_eq(t_req(VIRTIO_BLK_T_OUT, 0, 512, false), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(RQ.status_gpa, T_STS, "the status byte is known for completion");
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_IN, 0, 512, true), 0, "reads still work");
}

Test(vblk, data_in_the_wrong_direction)
{
	cr_assert_eq(t_req(VIRTIO_BLK_T_IN, 0, 512, false), VIRTIO_BLK_S_IOERR);
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_OUT, 0, 512, true), VIRTIO_BLK_S_IOERR);
}

Test(vblk, out_of_range)
{
	cr_assert_eq(t_req(VIRTIO_BLK_T_IN, 999, 1024, true), VIRTIO_BLK_S_IOERR);
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_IN, 1000, 512, true), VIRTIO_BLK_S_IOERR);
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_OUT, UINT64_MAX, 512, false), VIRTIO_BLK_S_IOERR);
	memset(&C, 0, sizeof(C));
	I.nblocks = UINT64_MAX;
	cr_assert_eq(t_req(VIRTIO_BLK_T_IN, UINT64_MAX - 1, 1024, true), VIRTIO_BLK_S_IOERR,
		     "sector + count overflows");
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_IN, UINT64_MAX - 2, 1024, true), 0);
}

Test(vblk, data_length_checks)
{
	cr_assert_eq(t_req(VIRTIO_BLK_T_IN, 0, 0, true), VIRTIO_BLK_S_IOERR, "no data");
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_IN, 0, 513, true), VIRTIO_BLK_S_IOERR);
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_OUT, 0, 100, false), VIRTIO_BLK_S_IOERR);
	/* above seg_max * size_max */
	memset(&C, 0, sizeof(C));
	I.nblocks = 1u << 24;
	t_hdr(VIRTIO_BLK_T_OUT, 0);
	vf.wild = true;
	t_seg(VF_WILD, vblk_max_data(&I), false);
	t_seg(T_STS, 1, true);
	cr_assert_eq(vblk_parse(&I, &VF_MEM, &C, &RQ), 0, "the maximum itself is fine");
	C.seg[1].len += 512;
	C.rlen += 512;
	cr_assert_eq(vblk_parse(&I, &VF_MEM, &C, &RQ), VIRTIO_BLK_S_IOERR);
}

Test(vblk, block_size_4k)
{
	I.block_size = 4096;
	cr_assert_eq(t_req(VIRTIO_BLK_T_IN, 16, 8192, true), 0);
	cr_assert_eq(RQ.lba, 2);
	cr_assert_eq(RQ.nblocks, 2);
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_IN, 12, 4096, true), VIRTIO_BLK_S_IOERR,
		     "sector not on a block");
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_OUT, 8, 512, false), VIRTIO_BLK_S_IOERR,
		     "length not whole blocks");
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_OUT, 7992, 4096, false), 0, "the last block");
	cr_assert_eq(RQ.lba, 999);
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_OUT, 8000, 4096, false), VIRTIO_BLK_S_IOERR);
	memset(&C, 0, sizeof(C));
	I.block_size = 0;
	cr_assert_eq(t_req(VIRTIO_BLK_T_IN, 0, 4096, true), VIRTIO_BLK_S_IOERR);
}

/* ---- the other requests ---- */

Test(vblk, flush)
{
	cr_assert_eq(t_req(VIRTIO_BLK_T_FLUSH, 0, 0, false), 0);
	cr_assert_eq(RQ.op, VBLK_FLUSH);
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_FLUSH, 12345, 512, false), 0, "data ignored");
	cr_assert_eq(RQ.op, VBLK_FLUSH);
	memset(&C, 0, sizeof(C));
	I.read_only = true;
	cr_assert_eq(t_req(VIRTIO_BLK_T_FLUSH, 0, 0, false), 0);
}

Test(vblk, get_id)
{
	cr_assert_eq(t_req(VIRTIO_BLK_T_GET_ID, 0, 20, true), 0);
	cr_assert_eq(RQ.op, VBLK_GET_ID);
	cr_assert_eq(RQ.data_off, 0);
	cr_assert_eq(RQ.data_len, 20);
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_GET_ID, 0, 512, true), 0);
	cr_assert_eq(RQ.data_len, 20);
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_GET_ID, 0, 8, true), 0);
	cr_assert_eq(RQ.data_len, 8, "a short buffer gets what fits");
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_GET_ID, 0, 0, true), VIRTIO_BLK_S_IOERR);
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_GET_ID, 0, 20, false), VIRTIO_BLK_S_IOERR);
}

Test(vblk, unknown_types)
{
	static const uint32_t types[] = { 2, 3, 5, 10, 12, 14, 0x80000000u };

	for (unsigned k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
		memset(&C, 0, sizeof(C));
		cr_assert_eq(t_req(types[k], 0, 0, false), VIRTIO_BLK_S_UNSUPP, "type %u",
			     types[k]);
	}
}

Test(vblk, malformed_header)
{
	t_seg(T_HDR, 15, false);
	t_seg(T_STS, 1, true);
	cr_assert_eq(vblk_parse(&I, &VF_MEM, &C, &RQ), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(RQ.status_gpa, T_STS);
	/* the header split over two segments is fine */
	memset(&C, 0, sizeof(C));
	st_le32(vf_ptr(T_HDR), VIRTIO_BLK_T_IN);
	st_le64(vf_ptr(T_HDR + 8), 3);
	t_seg(T_HDR, 6, false);
	t_seg(T_HDR + 6, 10, false);
	t_seg(T_DAT, 513, true);
	cr_assert_eq(vblk_parse(&I, &VF_MEM, &C, &RQ), 0);
	cr_assert_eq(RQ.lba, 3);
	/* a header in a hole */
	memset(&C, 0, sizeof(C));
	t_seg(VF_HOLE, 16, false);
	t_seg(T_STS, 1, true);
	cr_assert_eq(vblk_parse(&I, &VF_MEM, &C, &RQ), VIRTIO_BLK_S_IOERR);
}

Test(vblk, no_status_byte)
{
	t_hdr(VIRTIO_BLK_T_IN, 0);
	cr_assert_eq(vblk_parse(&I, &VF_MEM, &C, &RQ), -EFAULT);
	memset(&C, 0, sizeof(C));
	cr_assert_eq(vblk_parse(&I, &VF_MEM, &C, &RQ), -EFAULT, "empty chain");
	memset(&C, 0, sizeof(C));
	t_hdr(VIRTIO_BLK_T_IN, 0);
	t_seg(0x1000, 1, true);		/* not RAM */
	cr_assert_eq(vblk_parse(&I, &VF_MEM, &C, &RQ), -EFAULT);
}

/* ---- discard and write zeroes ---- */

Test(vblk, discard)
{
	I.discard = true;
	t_range(0, 8, 16, 0);
	t_range(1, 100, 1, 0);
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 32, false), 0);
	cr_assert_eq(RQ.op, VBLK_DISCARD);
	cr_assert_eq(RQ.nranges, 2);
	cr_assert_eq(RQ.range[0].lba, 8);
	cr_assert_eq(RQ.range[0].nblocks, 16);
	cr_assert_eq(RQ.range[1].lba, 100);
	cr_assert_eq(RQ.range[1].nblocks, 1);
	cr_assert_not(RQ.range[0].unmap);
}

Test(vblk, discard_rules)
{
	I.discard = true;
	I.max_discard_sectors = 64;
	t_range(0, 0, 8, VIRTIO_BLK_WZ_F_UNMAP);
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 16, false), VIRTIO_BLK_S_UNSUPP,
		     "unmap on discard");
	memset(&C, 0, sizeof(C));
	t_range(0, 0, 8, 2);
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 16, false), VIRTIO_BLK_S_UNSUPP);
	memset(&C, 0, sizeof(C));
	t_range(0, 0, 65, 0);
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 16, false), VIRTIO_BLK_S_IOERR, "over max");
	memset(&C, 0, sizeof(C));
	t_range(0, 0, 0, 0);
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 16, false), VIRTIO_BLK_S_IOERR, "empty");
	memset(&C, 0, sizeof(C));
	t_range(0, 990, 11, 0);
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 16, false), VIRTIO_BLK_S_IOERR, "off the end");
	memset(&C, 0, sizeof(C));
	t_range(0, UINT64_MAX, 1, 0);
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 16, false), VIRTIO_BLK_S_IOERR);
	memset(&C, 0, sizeof(C));
	t_range(0, 0, 8, 0);
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 0, false), VIRTIO_BLK_S_IOERR, "no ranges");
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 24, false), VIRTIO_BLK_S_IOERR, "partial");
	memset(&C, 0, sizeof(C));
	for (unsigned k = 0; k <= VBLK_MAX_RANGES; k++)
		t_range(k, k * 8, 8, 0);
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 16 * (VBLK_MAX_RANGES + 1), false),
		     VIRTIO_BLK_S_IOERR, "too many ranges");
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 16 * VBLK_MAX_RANGES, false), 0);
	cr_assert_eq(RQ.nranges, VBLK_MAX_RANGES);
	memset(&C, 0, sizeof(C));
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 16, true), VIRTIO_BLK_S_IOERR,
		     "ranges must be readable");
	memset(&C, 0, sizeof(C));
	I.discard = false;
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 16, false), VIRTIO_BLK_S_UNSUPP,
		     "not offered");
	memset(&C, 0, sizeof(C));
	I.discard = true;
	I.read_only = true;
	cr_assert_eq(t_req(VIRTIO_BLK_T_DISCARD, 0, 16, false), VIRTIO_BLK_S_UNSUPP);
}

Test(vblk, write_zeroes)
{
	I.write_zeroes = true;
	I.block_size = 4096;
	t_range(0, 16, 8, VIRTIO_BLK_WZ_F_UNMAP);
	t_range(1, 64, 16, 0);
	cr_assert_eq(t_req(VIRTIO_BLK_T_WRITE_ZEROES, 0, 32, false), 0);
	cr_assert_eq(RQ.op, VBLK_WRITE_ZEROES);
	cr_assert_eq(RQ.nranges, 2);
	cr_assert_eq(RQ.range[0].lba, 2);
	cr_assert_eq(RQ.range[0].nblocks, 1);
	cr_assert(RQ.range[0].unmap);
	cr_assert_eq(RQ.range[1].lba, 8);
	cr_assert_eq(RQ.range[1].nblocks, 2);
	cr_assert_not(RQ.range[1].unmap);
	memset(&C, 0, sizeof(C));
	t_range(1, 64, 4, 0);
	cr_assert_eq(t_req(VIRTIO_BLK_T_WRITE_ZEROES, 0, 32, false), VIRTIO_BLK_S_IOERR,
		     "half a block");
	memset(&C, 0, sizeof(C));
	t_range(1, 64, 8, 0x80000001u);
	cr_assert_eq(t_req(VIRTIO_BLK_T_WRITE_ZEROES, 0, 32, false), VIRTIO_BLK_S_UNSUPP);
	memset(&C, 0, sizeof(C));
	I.write_zeroes = false;
	cr_assert_eq(t_req(VIRTIO_BLK_T_WRITE_ZEROES, 0, 32, false), VIRTIO_BLK_S_UNSUPP);
}

/* ---- through a ring ---- */

Test(vblk, end_to_end_through_a_vring)
{
	struct vring r;
	uint64_t desc = VF_BASE + 0x8000, avail = VF_BASE + 0x9000, used = VF_BASE + 0xa000;
	uint8_t id[20], got[20];
	int rc;

	cr_assert_eq(vring_setup(&r, 8, desc, avail, used, false), 0);
	st_le32(vf_ptr(T_HDR), VIRTIO_BLK_T_GET_ID);
	vf_desc(desc, 0, T_HDR, 16, VRING_DESC_F_NEXT, 1);
	vf_desc(desc, 1, T_DAT, 20, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	vf_desc(desc, 2, T_STS, 1, VRING_DESC_F_WRITE, 0);
	st_le16(vf_ptr(avail + 4), 0);
	st_le16(vf_ptr(avail + 2), 1);
	cr_assert_eq(vring_pop(&r, &VF_MEM, &C), 1);
	cr_assert_eq(vblk_parse(&I, &VF_MEM, &C, &RQ), 0);
	cr_assert_eq(RQ.op, VBLK_GET_ID);
	vblk_get_id(&I, id);
	rc = vring_write(&VF_MEM, &C, RQ.data_off, id, RQ.data_len);
	cr_assert_eq(rc, 20);
	cr_assert_eq(vring_push(&r, &VF_MEM, C.head,
				vblk_finish(&VF_MEM, &RQ, VIRTIO_BLK_S_OK, (uint32_t)rc)), 0);
	memcpy(got, vf_ptr(T_DAT), 20);
	cr_assert_eq(memcmp(got, id, 20), 0);
	cr_assert_eq(*vf_ptr(T_STS), 0);
	cr_assert_eq(ld_le32(vf_ptr(used + 8)), 21, "used len: id + status");
	cr_assert_eq(ld_le16(vf_ptr(used + 2)), 1);
}

/* ---- the migration record ---- */

static struct vblk_saved t_saved(void)
{
	struct vblk_saved s;

	memset(&s, 0, sizeof(s));
	s.info = I;
	s.info.nblocks = 1ull << 33;
	s.info.block_size = 4096;
	s.info.max_transfer = 256u << 10;
	s.info.discard = s.info.write_zeroes = true;
	s.info.max_discard_sectors = 1u << 22;
	s.info.max_write_zeroes_sectors = 1u << 20;
	s.info_known = true;
	strcpy(s.disk, "web");
	strcpy(s.ident, "60000000000000000e00000000010001");
	return s;
}

Test(vblk, save_load_round_trip)
{
	struct vblk_saved s = t_saved(), out;
	uint8_t rec[VBLK_SAVE_SIZE + 8], again[VBLK_SAVE_SIZE];

	memcpy(s.info.serial, "ABCDEFGHIJKLMNOPQRST", 20);	/* all 20 bytes, no NUL */
	cr_assert_eq(vblk_save(&s, rec, VBLK_SAVE_SIZE - 1), -ENOSPC);
	cr_assert_eq(vblk_save(&s, rec, sizeof(rec)), VBLK_SAVE_SIZE);
	memset(&out, 0xa5, sizeof(out));
	cr_assert_eq(vblk_load(&out, rec, VBLK_SAVE_SIZE), 0);
	cr_assert_eq(out.info.nblocks, 1ull << 33);
	cr_assert_eq(out.info.block_size, 4096);
	cr_assert_eq(out.info.max_transfer, 256u << 10);
	cr_assert(out.info.discard && out.info.write_zeroes && !out.info.read_only);
	cr_assert_eq(out.info.max_discard_sectors, 1u << 22);
	cr_assert_eq(out.info.max_write_zeroes_sectors, 1u << 20);
	cr_assert(out.info_known);
	cr_assert_arr_eq(out.info.serial, "ABCDEFGHIJKLMNOPQRST", 20);
	cr_assert_str_eq(out.disk, "web");
	cr_assert_str_eq(out.ident, s.ident);
	/* What the guest sees is the same on both sides. */
	cr_assert_eq(vblk_features(&out.info), vblk_features(&s.info));
	cr_assert_eq(vblk_save(&out, again, sizeof(again)), VBLK_SAVE_SIZE);
	cr_assert_arr_eq(again, rec, VBLK_SAVE_SIZE);
}

Test(vblk, save_load_disk_not_ready_yet)
{
	struct vblk_saved s = t_saved(), out;
	uint8_t rec[VBLK_SAVE_SIZE];

	memset(&s.info, 0, sizeof(s.info));
	s.info.block_size = 512;
	s.info.max_transfer = 256u << 10;
	s.info.read_only = true;
	s.info_known = false;
	s.ident[0] = '\0';
	cr_assert_eq(vblk_save(&s, rec, sizeof(rec)), VBLK_SAVE_SIZE);
	cr_assert_eq(vblk_load(&out, rec, sizeof(rec)), 0);
	cr_assert(!out.info_known && out.info.read_only);
	cr_assert_eq(out.info.nblocks, 0);
	cr_assert_str_eq(out.ident, "");
}

static void t_bad(const uint8_t *good, size_t off, uint8_t val, const char *what)
{
	uint8_t r[VBLK_SAVE_SIZE];
	struct vblk_saved out = t_saved(), keep = out;

	memcpy(r, good, sizeof(r));
	r[off] = val;
	cr_assert_eq(vblk_load(&out, r, sizeof(r)), -EINVAL, "%s", what);
	cr_assert_arr_eq(&out, &keep, sizeof(out), "%s: the target changed", what);
}

Test(vblk, load_rejects_hostile_records)
{
	struct vblk_saved s = t_saved(), out;
	uint8_t good[VBLK_SAVE_SIZE], r[VBLK_SAVE_SIZE];

	cr_assert_eq(vblk_save(&s, good, sizeof(good)), VBLK_SAVE_SIZE);
	cr_assert_eq(vblk_load(&out, good, VBLK_SAVE_SIZE - 1), -EINVAL);
	cr_assert_eq(vblk_load(&out, good, VBLK_SAVE_SIZE + 1), -EINVAL);
	t_bad(good, 0, 2, "version 2");
	t_bad(good, 0, 0, "version 0");
	t_bad(good, 1, 0x1f, "unknown flag");
	t_bad(good, 3, 1, "reserved byte 3");
	t_bad(good, 30, 1, "reserved byte 30");
	t_bad(good, 60, 1, "reserved byte 60");
	t_bad(good, 5, 0x03, "block size 0x300");
	t_bad(good, 4 + 2, 0x02, "block size 128 KiB + 4 KiB");
	t_bad(good, 32 + 3, 0x07, "control byte in the serial");
	t_bad(good, 32 + 3, 0x00, "a NUL inside the serial, text after it");
	t_bad(good, 64, 0, "no disk name");
	t_bad(good, 64 + 1, 0xff, "a byte past ASCII in the name");
	t_bad(good, 88 + 5, '\n', "a newline in the identity");
	/* Strings must end inside their fields. */
	memcpy(r, good, sizeof(r));
	memset(r + 64, 'a', VBLK_NAME_LEN);
	cr_assert_eq(vblk_load(&out, r, sizeof(r)), -EINVAL, "name without a NUL");
	memcpy(r, good, sizeof(r));
	memset(r + 88, 'f', VBLK_IDENT_LEN);
	cr_assert_eq(vblk_load(&out, r, sizeof(r)), -EINVAL, "identity without a NUL");
	/* max_transfer 0 and > 16 MiB. */
	memcpy(r, good, sizeof(r));
	st_le32(r + 16, 0);
	cr_assert_eq(vblk_load(&out, r, sizeof(r)), -EINVAL, "max_transfer 0");
	st_le32(r + 16, (16u << 20) + 1);
	cr_assert_eq(vblk_load(&out, r, sizeof(r)), -EINVAL, "max_transfer > 16 MiB");
	/* A limit without its feature. */
	memcpy(r, good, sizeof(r));
	r[1] &= (uint8_t)~0x02;
	cr_assert_eq(vblk_load(&out, r, sizeof(r)), -EINVAL, "discard limit without DISCARD");
	/* Unknown geometry with blocks, or with a feature. */
	memcpy(r, good, sizeof(r));
	r[1] = 0;
	st_le32(r + 20, 0);
	st_le32(r + 24, 0);
	cr_assert_eq(vblk_load(&out, r, sizeof(r)), -EINVAL, "unknown, 2^33 blocks of 4 KiB");
	st_le32(r + 4, 512);
	st_le64(r + 8, 0);
	cr_assert_eq(vblk_load(&out, r, sizeof(r)), 0, "unknown and empty is fine");
}

/* Every single-byte change either is refused or loads into a record that
 * saves back to exactly those bytes (nothing is dropped or normalised
 * silently). */
Test(vblk, load_every_byte_mutation)
{
	struct vblk_saved s = t_saved(), out;
	uint8_t good[VBLK_SAVE_SIZE], r[VBLK_SAVE_SIZE], again[VBLK_SAVE_SIZE];
	static const uint8_t vals[] = { 0x00, 0x01, 0x20, 0x7f, 0x80, 0xff };
	unsigned loaded = 0, refused = 0;

	cr_assert_eq(vblk_save(&s, good, sizeof(good)), VBLK_SAVE_SIZE);
	for (unsigned off = 0; off < VBLK_SAVE_SIZE; off++)
		for (unsigned k = 0; k < sizeof(vals); k++) {
			memcpy(r, good, sizeof(r));
			r[off] = vals[k];
			if (vblk_load(&out, r, sizeof(r)) < 0) {
				refused++;
				continue;
			}
			loaded++;
			cr_assert_eq(vblk_save(&out, again, sizeof(again)), VBLK_SAVE_SIZE);
			cr_assert_arr_eq(again, r, sizeof(r), "byte %u = %#x", off, vals[k]);
		}
	cr_assert_gt(loaded, 0);
	cr_assert_gt(refused, 0);
}

Test(vblk, check_same)
{
	struct vblk_saved src = t_saved(), here = t_saved();
	char why[160] = "";

	cr_assert_eq(vblk_check_same(&src, &here, why, sizeof(why)), 0);
	/* Smaller limits here are fine: the block layer splits. */
	here.info.max_discard_sectors = 8;
	here.info.max_transfer = 64u << 10;
	cr_assert_eq(vblk_check_same(&src, &here, why, sizeof(why)), 0);
	/* No identity on one side: not compared. */
	here.ident[0] = '\0';
	cr_assert_eq(vblk_check_same(&src, &here, why, sizeof(why)), 0);

	here = t_saved();
	strcpy(here.disk, "db");
	cr_assert_eq(vblk_check_same(&src, &here, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "disk web") && strstr(why, "disk db"), "%s", why);

	here = t_saved();
	here.ident[3] = '1';
	cr_assert_eq(vblk_check_same(&src, &here, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "another LUN"), "%s", why);

	here = t_saved();
	here.info.nblocks--;
	cr_assert_eq(vblk_check_same(&src, &here, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "blocks"), "%s", why);

	here = t_saved();
	here.info.block_size = 512;
	cr_assert_eq(vblk_check_same(&src, &here, why, sizeof(why)), -EINVAL);

	here = t_saved();
	here.info.read_only = true;
	cr_assert_eq(vblk_check_same(&src, &here, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "read-only"), "%s", why);

	here = t_saved();
	here.info.write_zeroes = false;
	cr_assert_eq(vblk_check_same(&src, &here, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "WRITE_ZEROES"), "%s", why);

	here = t_saved();
	here.info_known = false;
	cr_assert_eq(vblk_check_same(&src, &here, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "not ready"), "%s", why);

	/* The source never knew the size: the destination will announce it. */
	src.info_known = false;
	src.info.discard = src.info.write_zeroes = false;
	cr_assert_eq(vblk_check_same(&src, &here, why, sizeof(why)), 0);
}

/* ---- the drain before a migration ---- */

Test(vblk, drain_flushes_once_after_the_requests)
{
	struct vblk_drain d = { 0 };

	/* Requests out: wait, and no flush yet. */
	cr_assert_eq(vblk_drain_step(&d, true, false), VBLK_DRAIN_WAIT);
	cr_assert_eq(vblk_drain_step(&d, true, false), VBLK_DRAIN_WAIT);
	cr_assert_eq(d.flushes, 0);
	/* Drained: one flush, then wait for it (it counts as busy in the
	 * glue, but the state alone must hold too). */
	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_FLUSH);
	cr_assert_eq(d.state, VBLK_DRAIN_FLUSHING);
	cr_assert_eq(vblk_drain_step(&d, true, false), VBLK_DRAIN_WAIT);
	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_WAIT);
	cr_assert_eq(d.flushes, 1);
	cr_assert_not(vblk_drain_flushed(&d, 0));
	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_QUIET);
	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_QUIET);
	cr_assert_eq(d.flushes, 1);
	cr_assert_eq(d.failed, 0);
	cr_assert_eq(d.err, 0);
}

Test(vblk, drain_read_only_disk_does_not_flush)
{
	struct vblk_drain d = { 0 };

	cr_assert_eq(vblk_drain_step(&d, true, true), VBLK_DRAIN_WAIT);
	cr_assert_eq(vblk_drain_step(&d, false, true), VBLK_DRAIN_QUIET);
	cr_assert_eq(d.flushes, 0);
	cr_assert_eq(d.state, VBLK_DRAIN_IDLE);
}

Test(vblk, drain_failed_flush_is_logged_once_and_quiet)
{
	struct vblk_drain d = { 0 };

	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_FLUSH);
	cr_assert(vblk_drain_flushed(&d, -ETIMEDOUT));
	cr_assert_eq(d.err, -ETIMEDOUT);
	cr_assert_eq(d.failed, 1);
	/* A second answer (none should come) is not logged again. */
	cr_assert_not(vblk_drain_flushed(&d, -EIO));
	cr_assert_eq(d.err, -ETIMEDOUT);
	cr_assert_eq(d.failed, 1);
	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_QUIET);
	cr_assert_eq(d.flushes, 1);
}

Test(vblk, drain_abandoned_flush_is_ignored_and_the_next_drain_flushes)
{
	struct vblk_drain d = { 0 };

	/* The migration fails while the flush is out: unquiesce. */
	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_FLUSH);
	vblk_drain_reset(&d);
	cr_assert_eq(d.state, VBLK_DRAIN_IDLE);
	/* The next migration: the old flush still out (busy) holds it. */
	cr_assert_eq(vblk_drain_step(&d, true, false), VBLK_DRAIN_WAIT);
	/* Its late failure is not this drain's and is not logged. */
	cr_assert_not(vblk_drain_flushed(&d, -EIO));
	cr_assert_eq(d.failed, 0);
	cr_assert_eq(d.state, VBLK_DRAIN_IDLE);
	/* This drain flushes again: the guest may have written since. */
	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_FLUSH);
	cr_assert_eq(d.flushes, 2);
	cr_assert_not(vblk_drain_flushed(&d, 0));
	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_QUIET);
}

Test(vblk, drain_after_a_completed_migration_attempt_flushes_again)
{
	struct vblk_drain d = { 0 };

	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_FLUSH);
	cr_assert_not(vblk_drain_flushed(&d, 0));
	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_QUIET);
	vblk_drain_reset(&d);		/* unquiesce: the guest runs on here */
	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_FLUSH);
	cr_assert(vblk_drain_flushed(&d, -EACCES));
	cr_assert_eq(vblk_drain_step(&d, false, false), VBLK_DRAIN_QUIET);
	cr_assert_eq(d.flushes, 2);
	cr_assert_eq(d.failed, 1);
}
