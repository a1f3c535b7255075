/*
 * kernel/lib/byteorder.h: known byte patterns in both orders, round trips
 * at every misalignment (UBSan would trap an unaligned access the header
 * let through), and stores that touch exactly their own bytes.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/byteorder.h"

static const uint8_t bo_pat[8] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };

/* A reference built from the definition: byte i has weight 256^i. */
static uint64_t bo_ref_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t bo_ref_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Cheap deterministic values with every byte different from its neighbours. */
static uint64_t bo_val(unsigned int k)
{
	uint64_t x = 0x9e3779b97f4a7c15ull * (k + 1);

	return x ^ x >> 29;
}

Test(byteorder, known_patterns)
{
	cr_assert_eq(ld_le16(bo_pat), 0x2301);
	cr_assert_eq(ld_le32(bo_pat), 0x67452301u);
	cr_assert_eq(ld_le64(bo_pat), 0xefcdab8967452301ull);
	cr_assert_eq(ld_be16(bo_pat), 0x0123);
	cr_assert_eq(ld_be24(bo_pat), 0x012345u);
	cr_assert_eq(ld_be32(bo_pat), 0x01234567u);
	cr_assert_eq(ld_be64(bo_pat), 0x0123456789abcdefull);
	for (unsigned int n = 0; n <= 8; n++)
		cr_assert_eq(ld_le_n(bo_pat, n), bo_ref_le(bo_pat, (int)n), "n=%u", n);
}

Test(byteorder, stores_write_known_patterns)
{
	uint8_t b[8];

	st_le16(b, 0x2301);
	cr_assert_arr_eq(b, bo_pat, 2);
	st_le32(b, 0x67452301u);
	cr_assert_arr_eq(b, bo_pat, 4);
	st_le64(b, 0xefcdab8967452301ull);
	cr_assert_arr_eq(b, bo_pat, 8);
	st_be16(b, 0x0123);
	cr_assert_arr_eq(b, bo_pat, 2);
	st_be24(b, 0x012345u);
	cr_assert_arr_eq(b, bo_pat, 3);
	st_be32(b, 0x01234567u);
	cr_assert_arr_eq(b, bo_pat, 4);
	st_be64(b, 0x0123456789abcdefull);
	cr_assert_arr_eq(b, bo_pat, 8);
	st_le_n(b, 0x452301u, 3);
	cr_assert_arr_eq(b, bo_pat, 3);
}

/* Values on the edges: sign bits, all ones, one byte set. */
Test(byteorder, edge_values)
{
	uint8_t b[8];

	st_be16(b, 0x8000);
	cr_assert(b[0] == 0x80 && b[1] == 0);
	cr_assert_eq(ld_be16(b), 0x8000);
	st_le32(b, UINT32_MAX);
	cr_assert_eq(ld_le32(b), UINT32_MAX);
	cr_assert_eq(ld_be32(b), UINT32_MAX);
	st_le64(b, 1ull << 63);
	cr_assert(b[7] == 0x80 && ld_le64(b) == 1ull << 63);
	cr_assert_eq(ld_be64(b), 0x80);
	st_be24(b, 0xff800000u);	/* bits above 23 are dropped */
	cr_assert_eq(ld_be24(b), 0x800000u);
	cr_assert(b[0] == 0x80 && b[1] == 0 && b[2] == 0);
}

/* Every width, both orders, at offsets 0..7: load what the reference reads. */
Test(byteorder, unaligned_loads_match_reference)
{
	uint8_t buf[32];

	for (unsigned int i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)bo_val(i);
	for (unsigned int off = 0; off < 8; off++) {
		const uint8_t *p = buf + off;

		cr_assert_eq(ld_le16(p), bo_ref_le(p, 2), "off %u", off);
		cr_assert_eq(ld_le32(p), bo_ref_le(p, 4), "off %u", off);
		cr_assert_eq(ld_le64(p), bo_ref_le(p, 8), "off %u", off);
		cr_assert_eq(ld_be16(p), bo_ref_be(p, 2), "off %u", off);
		cr_assert_eq(ld_be24(p), bo_ref_be(p, 3), "off %u", off);
		cr_assert_eq(ld_be32(p), bo_ref_be(p, 4), "off %u", off);
		cr_assert_eq(ld_be64(p), bo_ref_be(p, 8), "off %u", off);
	}
}

/*
 * Store at each offset into a poisoned buffer: the field reads back, the
 * bytes are the reference's, and no byte outside the field changed.
 */
static void bo_check_store(unsigned int off, int width, bool be, uint64_t v)
{
	uint8_t buf[24], want[24];
	uint64_t mask = width == 8 ? UINT64_MAX : (1ull << (8 * width)) - 1;

	memset(buf, 0xa5, sizeof(buf));
	memset(want, 0xa5, sizeof(want));
	for (int i = 0; i < width; i++)
		want[off + (unsigned int)(be ? width - 1 - i : i)] = (uint8_t)(v >> (8 * i));
	switch (width * (be ? -1 : 1)) {
	case 2: st_le16(buf + off, (uint16_t)v); break;
	case 4: st_le32(buf + off, (uint32_t)v); break;
	case 8: st_le64(buf + off, v); break;
	case -2: st_be16(buf + off, (uint16_t)v); break;
	case -3: st_be24(buf + off, (uint32_t)v); break;
	case -4: st_be32(buf + off, (uint32_t)v); break;
	case -8: st_be64(buf + off, v); break;
	default: st_le_n(buf + off, v, (unsigned int)width); break;
	}
	cr_assert_arr_eq(buf, want, sizeof(buf), "width %d %s off %u", width,
			 be ? "be" : "le", off);
	cr_assert_eq((be ? bo_ref_be : bo_ref_le)(buf + off, width), v & mask);
}

Test(byteorder, unaligned_stores_round_trip)
{
	static const int le_widths[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	static const int be_widths[] = { 2, 3, 4, 8 };

	for (unsigned int k = 0; k < 64; k++) {
		uint64_t v = bo_val(k);

		for (unsigned int off = 0; off < 8; off++) {
			for (size_t w = 0; w < sizeof(le_widths) / sizeof(le_widths[0]); w++)
				bo_check_store(off, le_widths[w], false, v);
			for (size_t w = 0; w < sizeof(be_widths) / sizeof(be_widths[0]); w++)
				bo_check_store(off, be_widths[w], true, v);
		}
	}
}

Test(byteorder, load_of_store_is_identity)
{
	uint8_t buf[16];

	for (unsigned int k = 0; k < 256; k++) {
		uint64_t v = bo_val(k);
		uint8_t *p = buf + k % 8;

		st_le16(p, (uint16_t)v);
		cr_assert_eq(ld_le16(p), (uint16_t)v);
		st_le32(p, (uint32_t)v);
		cr_assert_eq(ld_le32(p), (uint32_t)v);
		st_le64(p, v);
		cr_assert_eq(ld_le64(p), v);
		st_be16(p, (uint16_t)v);
		cr_assert_eq(ld_be16(p), (uint16_t)v);
		st_be24(p, (uint32_t)v);
		cr_assert_eq(ld_be24(p), (uint32_t)v & 0xffffffu);
		st_be32(p, (uint32_t)v);
		cr_assert_eq(ld_be32(p), (uint32_t)v);
		st_be64(p, v);
		cr_assert_eq(ld_be64(p), v);
		/* The two orders of one value are each other's byte reversal. */
		cr_assert_eq(ld_le64(p), __builtin_bswap64(v));
		st_le_n(p, v, 5);
		cr_assert_eq(ld_le_n(p, 5), v & 0xffffffffffull);
	}
}

/* A width of 0 reads 0 and writes nothing; widths past 8 stop at 8. */
Test(byteorder, variable_width_limits)
{
	uint8_t b[12];

	memset(b, 0x5a, sizeof(b));
	cr_assert_eq(ld_le_n(b, 0), 0);
	st_le_n(b, 0, 0);
	cr_assert_eq(b[0], 0x5a);
	st_le_n(b, UINT64_MAX, 12);
	cr_assert_eq(ld_le64(b), UINT64_MAX);
	cr_assert(b[8] == 0x5a && b[11] == 0x5a);
	cr_assert_eq(ld_le_n(b, 12), UINT64_MAX);
}
