/*
 * Unit tests for kernel/devices/model/vring.c, the device side of a split
 * virtqueue (VIRTIO 1.1, 2.6): set-up checks, popping good, indirect and
 * hostile chains, the used ring and its wrap, interrupt suppression with
 * and without EVENT_IDX, gather/scatter across pages and holes, and the
 * migration record.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/vring.h"
#include "kernel/lib/byteorder.h"
#include "tests/unit/vring_fake.h"

#define T_DESC		VF_BASE
#define T_AVAIL		(VF_BASE + 0x1000)
#define T_USED		(VF_BASE + 0x2000)
#define T_DATA		(VF_BASE + 0x3000)
#define T_IND		(VF_BASE + 0x8000)	/* indirect tables */

static struct vring R;
static struct vring_chain C;
static uint16_t t_aidx;

static void t_ring(uint16_t size, bool event_idx)
{
	vf_init();
	t_aidx = 0;
	cr_assert_eq(vring_setup(&R, size, T_DESC, T_AVAIL, T_USED, event_idx), 0);
}

static void t_fini(void)
{
	vf_fini();
}

static void t_set_avail_idx(uint16_t v)
{
	t_aidx = v;
	st_le16(vf_ptr(T_AVAIL + 2), v);
}

static void t_offer(uint16_t head)
{
	st_le16(vf_ptr(T_AVAIL + 4 + 2 * (t_aidx & (R.size - 1))), head);
	t_set_avail_idx((uint16_t)(t_aidx + 1));
}

static uint16_t t_used_idx(void)
{
	return ld_le16(vf_ptr(T_USED + 2));
}

static void t_used_elem(uint16_t slot, uint32_t *id, uint32_t *len)
{
	*id = ld_le32(vf_ptr(T_USED + 4 + 8 * slot));
	*len = ld_le32(vf_ptr(T_USED + 8 + 8 * slot));
}

/* A request shaped like virtio-blk's: 16-byte header, data, status. */
static void t_blk_chain(uint16_t d0, uint32_t data_len, bool data_write)
{
	uint16_t d1 = (uint16_t)((d0 + 1) & (R.size - 1)), d2 = (uint16_t)((d0 + 2) & (R.size - 1));

	vf_desc(T_DESC, d0, T_DATA, 16, VRING_DESC_F_NEXT, d1);
	vf_desc(T_DESC, d1, T_DATA + 0x100, data_len,
		VRING_DESC_F_NEXT | (data_write ? VRING_DESC_F_WRITE : 0), d2);
	vf_desc(T_DESC, d2, T_DATA + 0x1000, 1, VRING_DESC_F_WRITE, 0);
}

static void t_broken(const char *why_part)
{
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), -EINVAL);
	cr_assert(R.broken);
	cr_assert_not_null(strstr(R.why, why_part), "why: %s", R.why);
	/* and it stays broken */
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), -EINVAL);
	cr_assert_eq(vring_push(&R, &VF_MEM, 0, 0), -EINVAL);
	cr_assert_not(vring_need_interrupt(&R, &VF_MEM));
}

TestSuite(vring, .fini = t_fini);

Test(vring, setup_checks)
{
	struct vring r;

	vf_init();
	memset(&r, 0xaa, sizeof(r));
	cr_assert_eq(vring_setup(&r, 0, T_DESC, T_AVAIL, T_USED, false), -EINVAL);
	cr_assert_eq(vring_setup(&r, 3, T_DESC, T_AVAIL, T_USED, false), -EINVAL);
	cr_assert_eq(vring_setup(&r, 0xffff, T_DESC, T_AVAIL, T_USED, false), -EINVAL);
	cr_assert_eq(vring_setup(&r, 8, T_DESC + 8, T_AVAIL, T_USED, false), -EINVAL);
	cr_assert_eq(vring_setup(&r, 8, T_DESC, T_AVAIL + 1, T_USED, false), -EINVAL);
	cr_assert_eq(vring_setup(&r, 8, T_DESC, T_AVAIL, T_USED + 2, false), -EINVAL);
	cr_assert_eq(vring_setup(&r, 8, T_DESC, T_AVAIL, UINT64_MAX - 3, false), -EINVAL);
	cr_assert_eq(vring_setup(&r, 8, UINT64_MAX - 15, T_AVAIL, T_USED, false), -EINVAL);
	cr_assert_eq(r.size, 0xaaaa, "a failed setup leaves the ring alone");
	cr_assert_eq(vring_setup(&r, 32768, T_DESC, T_AVAIL + 2, T_USED + 4, true), 0);
	cr_assert_eq(r.size, 32768);
	cr_assert(r.event_idx);
	cr_assert_eq(r.last_avail, 0);
	cr_assert_eq(r.used_idx, 0);
	cr_assert_not(r.broken);
	cr_assert_eq(vring_setup(&r, 1, T_DESC, T_AVAIL, T_USED, false), 0);
}

Test(vring, unset_ring_is_idle)
{
	struct vring r;

	vf_init();
	memset(&r, 0, sizeof(r));
	cr_assert_eq(vring_pop(&r, &VF_MEM, &C), 0);
	cr_assert_eq(vring_push(&r, &VF_MEM, 0, 0), -EINVAL);
	cr_assert_not(vring_need_interrupt(&r, &VF_MEM));
	cr_assert_eq(vf.maps, 0);
}

Test(vring, pop_and_push_a_request)
{
	uint32_t id, len;

	t_ring(8, false);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 0);
	t_blk_chain(2, 512, true);
	t_offer(2);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(C.head, 2);
	cr_assert_eq(C.nseg, 3);
	cr_assert_eq(C.rlen, 16);
	cr_assert_eq(C.wlen, 513);
	cr_assert_eq(C.seg[0].gpa, T_DATA);
	cr_assert_not(C.seg[0].write);
	cr_assert_eq(C.seg[1].len, 512);
	cr_assert(C.seg[1].write);
	cr_assert_eq(C.seg[2].gpa, T_DATA + 0x1000);
	cr_assert_eq(R.last_avail, 1);
	cr_assert_eq(R.popped, 1);
	cr_assert_eq(vring_inflight(&R), 1);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 0, "only one was offered");

	cr_assert_eq(vf.write_maps, 0, "popping writes nothing without EVENT_IDX");
	cr_assert_eq(vring_push(&R, &VF_MEM, 2, 513), 0);
	cr_assert_eq(t_used_idx(), 1);
	t_used_elem(0, &id, &len);
	cr_assert_eq(id, 2);
	cr_assert_eq(len, 513);
	cr_assert_eq(R.pushed, 1);
	cr_assert_eq(vring_push(&R, &VF_MEM, 2, 0), -EINVAL, "nothing in flight");
	cr_assert_eq(t_used_idx(), 1);
	cr_assert_not(R.broken, "a glue mistake does not break the ring");
}

Test(vring, push_checks_head)
{
	t_ring(8, false);
	vf_desc(T_DESC, 0, T_DATA, 1, VRING_DESC_F_WRITE, 0);
	t_offer(0);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(vring_push(&R, &VF_MEM, 8, 0), -EINVAL);
	cr_assert_eq(t_used_idx(), 0);
	cr_assert_eq(vring_push(&R, &VF_MEM, 0, 1), 0);
}

Test(vring, out_of_order_completion)
{
	uint32_t id, len;

	t_ring(8, false);
	for (uint16_t h = 0; h < 3; h++) {
		vf_desc(T_DESC, h, T_DATA + 0x10 * h, 4, VRING_DESC_F_WRITE, 0);
		t_offer(h);
	}
	for (int k = 0; k < 3; k++)
		cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(vring_push(&R, &VF_MEM, 2, 4), 0);
	cr_assert_eq(vring_push(&R, &VF_MEM, 0, 3), 0);
	t_used_elem(0, &id, &len);
	cr_assert_eq(id, 2);
	t_used_elem(1, &id, &len);
	cr_assert_eq(id, 0);
	cr_assert_eq(len, 3);
	cr_assert_eq(vring_inflight(&R), 1);
}

Test(vring, zero_length_descriptors_are_skipped)
{
	t_ring(8, false);
	vf_desc(T_DESC, 0, T_DATA, 0, VRING_DESC_F_NEXT, 1);
	vf_desc(T_DESC, 1, T_DATA, 16, VRING_DESC_F_NEXT, 2);
	vf_desc(T_DESC, 2, 0xdead0000, 0, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3);
	vf_desc(T_DESC, 3, T_DATA + 0x20, 0, VRING_DESC_F_NEXT, 4);	/* read, empty */
	vf_desc(T_DESC, 4, T_DATA + 0x40, 8, VRING_DESC_F_WRITE, 0);
	t_offer(0);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(C.nseg, 2);
	cr_assert_eq(C.rlen, 16);
	cr_assert_eq(C.wlen, 8);
}

Test(vring, loop_breaks_the_ring)
{
	t_ring(8, false);
	vf_desc(T_DESC, 0, T_DATA, 1, VRING_DESC_F_NEXT, 1);
	vf_desc(T_DESC, 1, T_DATA, 1, VRING_DESC_F_NEXT, 0);
	t_offer(0);
	t_broken("loop");
}

Test(vring, self_loop_of_empty_descriptors)
{
	t_ring(16, false);
	vf_desc(T_DESC, 5, T_DATA, 0, VRING_DESC_F_NEXT, 5);
	t_offer(5);
	t_broken("loop");
}

Test(vring, chain_as_long_as_the_ring_is_fine)
{
	t_ring(8, false);
	for (uint16_t i = 0; i < 8; i++)
		vf_desc(T_DESC, i, T_DATA + i, 1, i < 7 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	t_offer(0);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(C.nseg, 8);
	cr_assert_eq(C.rlen, 8);
}

Test(vring, head_out_of_range)
{
	t_ring(8, false);
	t_offer(8);
	t_broken("head");
}

Test(vring, next_out_of_range)
{
	t_ring(8, false);
	vf_desc(T_DESC, 0, T_DATA, 1, VRING_DESC_F_NEXT, 9);
	t_offer(0);
	t_broken("index");
}

Test(vring, avail_idx_jump)
{
	t_ring(8, false);
	vf_desc(T_DESC, 0, T_DATA, 1, 0, 0);
	t_set_avail_idx(9);
	t_broken("queue size");
}

Test(vring, avail_idx_full_ring_is_fine)
{
	t_ring(8, false);
	for (uint16_t i = 0; i < 8; i++) {
		vf_desc(T_DESC, i, T_DATA, 1, VRING_DESC_F_WRITE, 0);
		t_offer(i);
	}
	for (int k = 0; k < 8; k++)
		cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 0);
	cr_assert_eq(vring_inflight(&R), 8);
}

Test(vring, readable_after_writable)
{
	t_ring(8, false);
	vf_desc(T_DESC, 0, T_DATA, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	vf_desc(T_DESC, 1, T_DATA, 4, 0, 0);
	t_offer(0);
	t_broken("readable");
}

Test(vring, buffer_outside_ram)
{
	t_ring(8, false);
	vf_desc(T_DESC, 0, 0x1000, 4, 0, 0);
	t_offer(0);
	t_broken("RAM");
}

Test(vring, buffer_running_off_ram)
{
	t_ring(8, false);
	vf_desc(T_DESC, 0, VF_BASE + VF_SIZE - 8, 16, 0, 0);
	t_offer(0);
	t_broken("RAM");
}

Test(vring, buffer_wrapping_the_address_space)
{
	t_ring(8, false);
	vf.wild = true;
	vf_desc(T_DESC, 0, UINT64_MAX - 7, 16, 0, 0);
	t_offer(0);
	t_broken("RAM");
}

Test(vring, length_overflow)
{
	t_ring(8, false);
	vf.wild = true;
	vf_desc(T_DESC, 0, VF_WILD, 0x80000000u, VRING_DESC_F_NEXT, 1);
	vf_desc(T_DESC, 1, VF_WILD, 0x7fffffffu, VRING_DESC_F_NEXT, 2);
	vf_desc(T_DESC, 2, VF_WILD, 1, 0, 0);
	t_offer(0);
	t_broken("overflow");
}

Test(vring, length_just_fits)
{
	t_ring(8, false);
	vf.wild = true;
	vf_desc(T_DESC, 0, VF_WILD, 0x80000000u, VRING_DESC_F_NEXT, 1);
	vf_desc(T_DESC, 1, VF_WILD, 0x7fffffffu, VRING_DESC_F_NEXT, 2);
	vf_desc(T_DESC, 2, VF_WILD, 0xffffffffu, VRING_DESC_F_WRITE, 0);
	t_offer(0);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(C.rlen, 0xffffffffu);
	cr_assert_eq(C.wlen, 0xffffffffu);
	cr_assert_lt(vf.maps, 20, "RAM checks do not walk every page");
}

Test(vring, ring_parts_outside_ram)
{
	struct vring r;

	vf_init();
	cr_assert_eq(vring_setup(&r, 8, T_DESC, 0x2000, T_USED, false), 0);
	cr_assert_eq(vring_pop(&r, &VF_MEM, &C), -EINVAL);
	cr_assert(r.broken);

	cr_assert_eq(vring_setup(&r, 8, 0x1000, T_AVAIL, T_USED, false), 0);
	t_aidx = 0;
	R = r;
	t_offer(0);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), -EINVAL);
	cr_assert_not_null(strstr(R.why, "descriptor"));

	/* used ring outside RAM: push fails and breaks */
	cr_assert_eq(vring_setup(&R, 8, T_DESC, T_AVAIL, 0x2000, false), 0);
	t_aidx = 0;
	vf_desc(T_DESC, 0, T_DATA, 1, 0, 0);
	t_offer(0);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(vring_push(&R, &VF_MEM, 0, 0), -EINVAL);
	cr_assert(R.broken);
}

/* ---- indirect descriptors (2.6.5.3) ---- */

Test(vring, indirect_chain)
{
	t_ring(8, false);
	vf_desc(T_IND, 0, T_DATA, 16, VRING_DESC_F_NEXT, 1);
	vf_desc(T_IND, 1, T_DATA + 0x200, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	vf_desc(T_IND, 2, T_DATA + 0x1800, 1, VRING_DESC_F_WRITE, 0);
	vf_desc(T_DESC, 3, T_IND, 48, VRING_DESC_F_INDIRECT, 0);
	t_offer(3);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(C.head, 3);
	cr_assert_eq(C.nseg, 3);
	cr_assert_eq(C.rlen, 16);
	cr_assert_eq(C.wlen, 4097);
	cr_assert_eq(C.seg[1].gpa, T_DATA + 0x200);
	cr_assert_eq(vring_push(&R, &VF_MEM, 3, 4097), 0);
}

Test(vring, indirect_after_direct_descriptors)
{
	t_ring(8, false);
	vf_desc(T_IND, 0, T_DATA + 0x40, 8, VRING_DESC_F_WRITE, 0);
	vf_desc(T_DESC, 0, T_DATA, 16, VRING_DESC_F_NEXT, 1);
	vf_desc(T_DESC, 1, T_IND, 16, VRING_DESC_F_INDIRECT, 0);
	t_offer(0);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(C.nseg, 2);
	cr_assert_eq(C.wlen, 8);
}

Test(vring, indirect_table_longer_than_the_ring)
{
	/* Linux puts a whole request in one indirect table, however small
	 * the ring: 40 segments through a ring of 8. */
	t_ring(8, false);
	for (uint16_t i = 0; i < 40; i++)
		vf_desc(T_IND, i, T_DATA + 8 * i, 8, i < 39 ? VRING_DESC_F_NEXT : 0,
			(uint16_t)(i + 1));
	vf_desc(T_DESC, 0, T_IND, 40 * 16, VRING_DESC_F_INDIRECT, 0);
	t_offer(0);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(C.nseg, 40);
	cr_assert_eq(C.rlen, 320);
}

Test(vring, indirect_table_across_a_page)
{
	uint64_t table = T_IND + 4096 - 8;	/* the first descriptor straddles */

	t_ring(8, false);
	vf_desc(table, 0, T_DATA, 16, VRING_DESC_F_NEXT, 1);
	vf_desc(table, 1, T_DATA + 0x40, 1, VRING_DESC_F_WRITE, 0);
	vf_desc(T_DESC, 0, table, 32, VRING_DESC_F_INDIRECT, 0);
	t_offer(0);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(C.nseg, 2);
	cr_assert_eq(C.seg[0].gpa, T_DATA);
	cr_assert_eq(C.seg[0].len, 16);
}

Test(vring, indirect_nested)
{
	t_ring(8, false);
	vf_desc(T_IND, 0, T_IND + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	vf_desc(T_IND + 0x100, 0, T_DATA, 1, 0, 0);
	vf_desc(T_DESC, 0, T_IND, 16, VRING_DESC_F_INDIRECT, 0);
	t_offer(0);
	t_broken("nested");
}

Test(vring, indirect_with_next)
{
	t_ring(8, false);
	vf_desc(T_IND, 0, T_DATA, 1, 0, 0);
	vf_desc(T_DESC, 0, T_IND, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	vf_desc(T_DESC, 1, T_DATA, 1, 0, 0);
	t_offer(0);
	t_broken("NEXT");
}

Test(vring, indirect_bad_lengths)
{
	static const uint32_t lens[] = { 0, 8, 17, 40, (VRING_MAX_SIZE + 1) * 16 };

	for (unsigned k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		t_ring(8, false);
		vf_desc(T_IND, 0, T_DATA, 1, 0, 0);
		vf_desc(T_DESC, 0, T_IND, lens[k], VRING_DESC_F_INDIRECT, 0);
		t_offer(0);
		t_broken("indirect table length");
	}
}

Test(vring, indirect_loop_and_range)
{
	t_ring(8, false);
	vf_desc(T_IND, 0, T_DATA, 1, VRING_DESC_F_NEXT, 1);
	vf_desc(T_IND, 1, T_DATA, 1, VRING_DESC_F_NEXT, 0);
	vf_desc(T_DESC, 0, T_IND, 32, VRING_DESC_F_INDIRECT, 0);
	t_offer(0);
	t_broken("loop");

	t_ring(8, false);
	vf_desc(T_IND, 0, T_DATA, 1, VRING_DESC_F_NEXT, 2);	/* 2 >= 2 entries */
	vf_desc(T_DESC, 0, T_IND, 32, VRING_DESC_F_INDIRECT, 0);
	t_offer(0);
	t_broken("index");
}

Test(vring, indirect_table_outside_ram)
{
	t_ring(8, false);
	vf_desc(T_DESC, 0, 0x4000, 32, VRING_DESC_F_INDIRECT, 0);
	t_offer(0);
	t_broken("descriptor not in RAM");

	t_ring(8, false);
	vf.wild = true;
	vf_desc(T_DESC, 0, UINT64_MAX - 15, 32, VRING_DESC_F_INDIRECT, 0);
	t_offer(0);
	t_broken("wraps");
}

Test(vring, too_many_segments)
{
	uint16_t n = VRING_MAX_SEGS + 1;

	t_ring(8, false);
	for (uint16_t i = 0; i < n; i++)
		vf_desc(T_IND, i, T_DATA + i, 1, i + 1 < n ? VRING_DESC_F_NEXT : 0,
			(uint16_t)(i + 1));
	vf_desc(T_DESC, 0, T_IND, 16u * n, VRING_DESC_F_INDIRECT, 0);
	t_offer(0);
	t_broken("segments");
}

Test(vring, max_segments_fit)
{
	uint16_t n = VRING_MAX_SEGS;

	t_ring(8, false);
	for (uint16_t i = 0; i < n; i++)
		vf_desc(T_IND, i, T_DATA + i, 1, i + 1 < n ? VRING_DESC_F_NEXT : 0,
			(uint16_t)(i + 1));
	vf_desc(T_DESC, 0, T_IND, 16u * n, VRING_DESC_F_INDIRECT, 0);
	t_offer(0);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(C.nseg, VRING_MAX_SEGS);
}

/* ---- the used ring wraps with the 16-bit indexes ---- */

Test(vring, index_wrap)
{
	uint32_t id, len;

	t_ring(4, false);
	R.last_avail = R.used_idx = 65534;
	st_le16(vf_ptr(T_USED + 2), 65534);
	t_set_avail_idx(65534);
	for (uint16_t i = 0; i < 3; i++) {
		vf_desc(T_DESC, i, T_DATA + 0x10 * i, 4, VRING_DESC_F_WRITE, 0);
		t_offer(i);
	}
	cr_assert_eq(t_aidx, 1);
	for (uint16_t i = 0; i < 3; i++) {
		cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
		cr_assert_eq(C.head, i, "slot 65534 + %u", i);
		cr_assert_eq(vring_push(&R, &VF_MEM, C.head, 10u + i), 0);
	}
	cr_assert_eq(R.last_avail, 1);
	cr_assert_eq(t_used_idx(), 1);
	t_used_elem(2, &id, &len);	/* 65534 % 4 */
	cr_assert_eq(id, 0);
	t_used_elem(3, &id, &len);
	cr_assert_eq(id, 1);
	t_used_elem(0, &id, &len);	/* 65536 % 4 */
	cr_assert_eq(id, 2);
	cr_assert_eq(len, 12);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 0);
}

/* ---- interrupt suppression ---- */

static void t_pop_push(uint16_t head)
{
	vf_desc(T_DESC, head, T_DATA, 1, VRING_DESC_F_WRITE, 0);
	t_offer(head);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(vring_push(&R, &VF_MEM, C.head, 1), 0);
}

Test(vring, no_interrupt_flag)
{
	t_ring(8, false);
	t_pop_push(0);
	cr_assert(vring_need_interrupt(&R, &VF_MEM));
	cr_assert_not(vring_need_interrupt(&R, &VF_MEM), "nothing new since");
	st_le16(vf_ptr(T_AVAIL), VRING_AVAIL_F_NO_INTERRUPT);
	t_pop_push(1);
	cr_assert_not(vring_need_interrupt(&R, &VF_MEM));
	st_le16(vf_ptr(T_AVAIL), 0);
	cr_assert_not(vring_need_interrupt(&R, &VF_MEM), "already accounted for");
	t_pop_push(2);
	cr_assert(vring_need_interrupt(&R, &VF_MEM));
}

Test(vring, event_idx_used_event)
{
	uint64_t used_event = T_AVAIL + 4 + 2 * 8;

	t_ring(8, true);
	st_le16(vf_ptr(used_event), 0);
	t_pop_push(0);		/* used_idx 1: passed used_event 0 */
	cr_assert(vring_need_interrupt(&R, &VF_MEM));
	st_le16(vf_ptr(used_event), 3);	/* "interrupt me when entry 3 is used" */
	t_pop_push(1);
	cr_assert_not(vring_need_interrupt(&R, &VF_MEM));
	t_pop_push(2);
	cr_assert_not(vring_need_interrupt(&R, &VF_MEM));
	t_pop_push(3);		/* used_idx 4 > 3 */
	cr_assert(vring_need_interrupt(&R, &VF_MEM));
	cr_assert_not(vring_need_interrupt(&R, &VF_MEM));
	/* several at once, used_event inside the batch */
	st_le16(vf_ptr(used_event), 5);
	t_pop_push(4);
	t_pop_push(5);
	t_pop_push(6);
	cr_assert(vring_need_interrupt(&R, &VF_MEM));
	/* used_event behind: the driver is not waiting for these */
	st_le16(vf_ptr(used_event), 5);
	t_pop_push(7);
	cr_assert_not(vring_need_interrupt(&R, &VF_MEM));
	/* the NO_INTERRUPT flag is ignored with EVENT_IDX */
	st_le16(vf_ptr(T_AVAIL), VRING_AVAIL_F_NO_INTERRUPT);
	st_le16(vf_ptr(used_event), 8);
	t_pop_push(0);
	cr_assert(vring_need_interrupt(&R, &VF_MEM));
}

Test(vring, event_idx_avail_event)
{
	uint64_t avail_event = T_USED + 4 + 8 * 8;

	t_ring(8, true);
	st_le16(vf_ptr(avail_event), 0x5555);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 0);
	cr_assert_eq(ld_le16(vf_ptr(avail_event)), 0, "an idle device asks for a kick");
	t_pop_push(0);
	t_pop_push(1);
	cr_assert_eq(ld_le16(vf_ptr(avail_event)), 2);
	cr_assert_eq(vf.last_write, T_USED + 2);
}

/* The driver adds a buffer after the device found the ring empty but
 * before it saw the new avail_event, so it does not notify: the device's
 * re-check after publishing avail_event must find the buffer. */
static void t_race_offer(uint64_t gpa)
{
	if (gpa == T_USED + 4 + 8 * 8 && t_aidx == 0) {
		vf_desc(T_DESC, 0, T_DATA, 1, VRING_DESC_F_WRITE, 0);
		t_offer(0);
	}
}

Test(vring, event_idx_recheck_after_publishing)
{
	t_ring(8, true);
	vf.on_write = t_race_offer;
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(C.head, 0);
	cr_assert_eq(ld_le16(vf_ptr(T_USED + 4 + 8 * 8)), 1);
}

Test(vring, no_event_idx_writes_nothing_on_pop)
{
	t_ring(8, false);
	vf.on_write = t_race_offer;
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 0);
	cr_assert_eq(vf.write_maps, 0);
}

Test(vring, event_idx_first_interrupt_always)
{
	uint64_t used_event = T_AVAIL + 4 + 2 * 8;

	t_ring(8, true);
	st_le16(vf_ptr(used_event), 40);
	t_pop_push(0);
	cr_assert(vring_need_interrupt(&R, &VF_MEM), "no interrupt sent yet: unknown, send");
	t_pop_push(1);
	cr_assert_not(vring_need_interrupt(&R, &VF_MEM));
}

/* ---- gather / scatter ---- */

Test(vring, read_write_across_segments_and_pages)
{
	uint8_t buf[6000], back[6000];

	t_ring(8, false);
	for (unsigned k = 0; k < sizeof(buf); k++)
		buf[k] = (uint8_t)(k * 7 + 1);
	/* readable: 100 bytes, then 5000 crossing two page boundaries */
	vf_desc(T_DESC, 0, T_DATA + 4000, 100, VRING_DESC_F_NEXT, 1);
	vf_desc(T_DESC, 1, T_DATA + 4096 * 2 - 50, 5000, VRING_DESC_F_NEXT, 2);
	/* writable: 3000 across a page, 3000 more */
	vf_desc(T_DESC, 2, T_DATA + 4096 * 4 + 3000, 3000, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3);
	vf_desc(T_DESC, 3, T_DATA + 4096 * 6, 3000, VRING_DESC_F_WRITE, 0);
	t_offer(0);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(C.rlen, 5100);
	cr_assert_eq(C.wlen, 6000);

	memcpy(vf_ptr(T_DATA + 4000), buf, 100);
	memcpy(vf_ptr(T_DATA + 4096 * 2 - 50), buf + 100, 5000);
	memset(back, 0, sizeof(back));
	cr_assert_eq(vring_read(&VF_MEM, &C, 0, back, 5100), 5100);
	cr_assert_eq(memcmp(back, buf, 5100), 0);
	cr_assert_eq(vring_read(&VF_MEM, &C, 90, back, 30), 30);
	cr_assert_eq(memcmp(back, buf + 90, 30), 0);
	cr_assert_eq(vring_read(&VF_MEM, &C, 5000, back, 500), 100, "short at the end");
	cr_assert_eq(vring_read(&VF_MEM, &C, 5100, back, 1), 0);
	cr_assert_eq(vring_read(&VF_MEM, &C, 0xffffffffu, back, 1), 0);
	cr_assert_eq(vf.write_maps, 0, "reads map read-only");

	cr_assert_eq(vring_write(&VF_MEM, &C, 1, buf, 5998), 5998);
	cr_assert_eq(memcmp(vf_ptr(T_DATA + 4096 * 4 + 3001), buf, 2999), 0);
	cr_assert_eq(memcmp(vf_ptr(T_DATA + 4096 * 6), buf + 2999, 2999), 0);
	cr_assert_eq(*vf_ptr(T_DATA + 4096 * 6 + 2999), 0, "one byte short of the end");
	cr_assert_eq(vring_write(&VF_MEM, &C, 5999, buf, 10), 1);
	cr_assert_gt(vf.write_maps, 0);
	cr_assert_eq(memcmp(vf_ptr(T_DATA + 4000), buf, 100), 0, "readable part untouched");
}

Test(vring, read_through_a_hole)
{
	uint8_t buf[8192];

	t_ring(8, false);
	/* first and last page are RAM, the middle one (VF_HOLE) is not */
	vf_desc(T_DESC, 0, VF_HOLE - 100, 4096 + 200, 0, 0);
	t_offer(0);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);
	cr_assert_eq(vring_read(&VF_MEM, &C, 0, buf, 50), 50);
	cr_assert_eq(vring_read(&VF_MEM, &C, 0, buf, sizeof(buf)), -EFAULT);
	cr_assert_eq(vring_read(&VF_MEM, &C, 4096 + 100, buf, 100), 100);
}

Test(vring, copy_helpers)
{
	uint8_t in[300], out[300];

	vf_init();
	for (unsigned k = 0; k < sizeof(in); k++)
		in[k] = (uint8_t)k;
	cr_assert_eq(vring_copy_to(&VF_MEM, VF_BASE + 4096 - 150, in, sizeof(in)), 0);
	cr_assert_eq(vring_copy_from(&VF_MEM, VF_BASE + 4096 - 150, out, sizeof(out)), 0);
	cr_assert_eq(memcmp(in, out, sizeof(in)), 0);
	cr_assert_eq(vring_copy_from(&VF_MEM, VF_HOLE - 10, out, 20), -EFAULT);
	cr_assert_eq(vring_copy_from(&VF_MEM, UINT64_MAX - 5, out, 20), -EFAULT);
	cr_assert_eq(vring_copy_from(&VF_MEM, 0, out, 0), 0);
}

/* ---- migration record ---- */

Test(vring, save_load_round_trip)
{
	uint8_t rec[VRING_SAVE_SIZE + 8];
	struct vring l;

	t_ring(16, true);
	t_pop_push(0);
	vf_desc(T_DESC, 1, T_DATA, 1, VRING_DESC_F_WRITE, 0);
	t_offer(1);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), 1);	/* one in flight */
	cr_assert(vring_need_interrupt(&R, &VF_MEM));
	cr_assert_eq(vring_save(&R, rec, VRING_SAVE_SIZE - 1), -ENOSPC);
	cr_assert_eq(vring_save(&R, rec, sizeof(rec)), VRING_SAVE_SIZE);
	cr_assert_eq(rec[0], VRING_SAVE_VERSION);
	memset(&l, 0x5a, sizeof(l));
	cr_assert_eq(vring_load(&l, rec, VRING_SAVE_SIZE + 1), -EINVAL);
	cr_assert_eq(vring_load(&l, rec, VRING_SAVE_SIZE), 0);
	cr_assert_eq(l.size, 16);
	cr_assert_eq(l.desc, T_DESC);
	cr_assert_eq(l.avail, T_AVAIL);
	cr_assert_eq(l.used, T_USED);
	cr_assert(l.event_idx);
	cr_assert_eq(l.last_avail, 2);
	cr_assert_eq(l.used_idx, 1);
	cr_assert_eq(l.signalled_used, 1);
	cr_assert(l.signalled_valid);
	cr_assert_not(l.broken);
	cr_assert_eq(l.popped, 2);
	cr_assert_eq(l.pushed, 1);
	cr_assert_eq(l.why[0], 0);
	/* the loaded ring carries on: the in-flight chain can be pushed */
	cr_assert_eq(vring_push(&l, &VF_MEM, 1, 1), 0);
	cr_assert_eq(t_used_idx(), 2);
}

Test(vring, save_load_broken_and_unset)
{
	uint8_t rec[VRING_SAVE_SIZE];
	struct vring l, z;

	t_ring(8, false);
	t_offer(9);
	cr_assert_eq(vring_pop(&R, &VF_MEM, &C), -EINVAL);
	cr_assert_eq(vring_save(&R, rec, sizeof(rec)), VRING_SAVE_SIZE);
	cr_assert_eq(vring_load(&l, rec, sizeof(rec)), 0);
	cr_assert(l.broken);
	cr_assert_str_eq(l.why, R.why);
	cr_assert_eq(vring_pop(&l, &VF_MEM, &C), -EINVAL);

	memset(&z, 0, sizeof(z));
	z.popped = z.pushed = 77;
	cr_assert_eq(vring_save(&z, rec, sizeof(rec)), VRING_SAVE_SIZE);
	cr_assert_eq(vring_load(&l, rec, sizeof(rec)), 0);
	cr_assert_eq(l.size, 0);
	cr_assert_eq(l.popped, 77);
}

static void t_reject(const uint8_t *good, unsigned off, uint8_t val)
{
	uint8_t rec[VRING_SAVE_SIZE];
	struct vring l;

	memcpy(rec, good, sizeof(rec));
	rec[off] = val;
	memset(&l, 0x33, sizeof(l));
	cr_assert_eq(vring_load(&l, rec, sizeof(rec)), -EINVAL, "byte %u = %#x", off, val);
	cr_assert_eq(l.size, 0x3333, "a refused record leaves the ring alone");
}

Test(vring, load_range_checks)
{
	uint8_t rec[VRING_SAVE_SIZE], un[VRING_SAVE_SIZE];
	struct vring z;

	t_ring(8, false);
	t_pop_push(0);
	cr_assert_eq(vring_save(&R, rec, sizeof(rec)), VRING_SAVE_SIZE);
	t_reject(rec, 0, 2);			/* version */
	t_reject(rec, 1, 8);			/* unknown flag */
	t_reject(rec, 1, 4);			/* broken without a reason */
	t_reject(rec, 2, 3);			/* size not a power of two */
	t_reject(rec, 3, 0x80);			/* size 32776 */
	t_reject(rec, 4, 20);			/* 19 in flight on 8 entries */
	t_reject(rec, 6, 2);			/* used ahead of avail */
	t_reject(rec, 12, 1);			/* reserved */
	t_reject(rec, 16, 8);			/* desc misaligned */
	t_reject(rec, 24, 1);			/* avail misaligned */
	t_reject(rec, 32, 2);			/* used misaligned */
	{
		uint8_t w[VRING_SAVE_SIZE];

		memcpy(w, rec, sizeof(w));
		st_le64(w + 32, UINT64_MAX - 3);	/* used ring wraps */
		t_reject(w, 32, 0xfc);
	}
	t_reject(rec, 48, 2);			/* pushed > popped */
	t_reject(rec, 60, 1);			/* reserved */
	t_reject(rec, 64, 'x');			/* a reason while not broken */
	{
		uint8_t b[VRING_SAVE_SIZE];

		memcpy(b, rec, sizeof(b));
		b[1] = 4;
		memset(b + 64, 'x', 64);	/* no NUL */
		t_reject(b, 1, 4);
		memset(b + 64, 0, 64);
		memcpy(b + 64, "abc", 3);
		b[70] = 'y';			/* garbage after the NUL */
		t_reject(b, 1, 4);
		b[70] = 0;
		struct vring l;
		cr_assert_eq(vring_load(&l, b, sizeof(b)), 0);
		cr_assert_str_eq(l.why, "abc");
	}
	memset(&z, 0, sizeof(z));
	cr_assert_eq(vring_save(&z, un, sizeof(un)), VRING_SAVE_SIZE);
	t_reject(un, 16, 0x10);			/* an unset ring with an address */
	t_reject(un, 4, 1);			/* or an index */
	t_reject(un, 1, 1);			/* or a flag */
}

/* The destination of a migration takes over a ring from its record:
 * chains the driver made available after the source's last pop (it
 * will not notify for them again) come out of the loaded ring in order,
 * and with EVENT_IDX it asks for the next kick past them. */
Test(vring, loaded_ring_takes_what_the_driver_posted_meanwhile)
{
	const uint64_t avail_event = T_USED + 4 + 8 * 8;
	uint8_t rec[VRING_SAVE_SIZE];
	struct vring l;

	t_ring(8, true);
	t_pop_push(0);
	cr_assert_eq(vring_save(&R, rec, sizeof(rec)), VRING_SAVE_SIZE);
	vf_desc(T_DESC, 1, T_DATA, 16, VRING_DESC_F_WRITE, 0);
	vf_desc(T_DESC, 2, T_DATA + 16, 16, VRING_DESC_F_WRITE, 0);
	t_offer(1);
	t_offer(2);
	cr_assert_eq(vring_load(&l, rec, sizeof(rec)), 0);
	cr_assert_eq(vring_inflight(&l), 0);
	cr_assert_eq(vring_pop(&l, &VF_MEM, &C), 1);
	cr_assert_eq(C.head, 1);
	cr_assert_eq(vring_pop(&l, &VF_MEM, &C), 1);
	cr_assert_eq(C.head, 2);
	cr_assert_eq(vring_pop(&l, &VF_MEM, &C), 0);
	cr_assert_eq(ld_le16(vf_ptr(avail_event)), 3);
	cr_assert_eq(vring_push(&l, &VF_MEM, 1, 16), 0);
	cr_assert_eq(vring_push(&l, &VF_MEM, 2, 16), 0);
	cr_assert_eq(t_used_idx(), 3, "used->idx goes on from the source's");
}
