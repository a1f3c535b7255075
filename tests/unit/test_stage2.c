/*
 * Unit tests and a model-checked fuzz test for kernel/lib/stage2.c.
 *
 * Tables live in a fake physical memory: every table is its own
 * aligned_alloc() block (so ASan catches a walk through a freed table),
 * addressed by a slot number turned into a fake physical address.  The
 * allocator counts live tables and rejects double or foreign frees, and
 * can be told to fail, to test -ENOMEM paths.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/stage2.h"

/* Criterion reports every passing cr_assert; hot loops check quietly. */
#define S2T_CHECK(c) do { if (!(c)) cr_assert_fail("%s", #c); } while (0)
#define S2T_CHECKF(c, ...) do { if (!(c)) cr_assert_fail(__VA_ARGS__); } while (0)

#define S2T_SLOTS	4096
#define S2T_PHYS	0x0000000200000000ull	/* fake tables start at 8 GiB */
#define S2T_4K		0x1000ull
#define S2T_2M		0x200000ull
#define S2T_1G		0x40000000ull

#define NPT_P	(1ull << 0)
#define NPT_RW	(1ull << 1)
#define NPT_US	(1ull << 2)
#define NPT_PWT	(1ull << 3)
#define NPT_PCD	(1ull << 4)
#define NPT_A	(1ull << 5)
#define NPT_D	(1ull << 6)
#define NPT_PS	(1ull << 7)
#define NPT_NX	(1ull << 63)
#define EPT_R	(1ull << 0)
#define EPT_W	(1ull << 1)
#define EPT_X	(1ull << 2)
#define EPT_PS	(1ull << 7)
#define EPT_A	(1ull << 8)
#define EPT_D	(1ull << 9)
#define EPT_WB	(6ull << 3)

static struct {
	void *va[S2T_SLOTS];
	uint32_t freeq[S2T_SLOTS];
	unsigned qhead, qlen;
	uint32_t bump;
	uint64_t live, max_live;
	long fail_after;	/* < 0: never; else fail when it reaches 0 */
	unsigned fail_pct;
	uint64_t rng;
} s2t_mem;

static uint64_t s2t_rand(uint64_t *s)
{
	/* xorshift64*: deterministic and good enough to spread the cases. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static void *s2t_alloc(void *ctx, uint64_t *phys)
{
	uint32_t idx;
	void *p;

	(void)ctx;
	if (s2t_mem.fail_after == 0)
		return NULL;
	if (s2t_mem.fail_after > 0)
		s2t_mem.fail_after--;
	if (s2t_mem.fail_pct && s2t_rand(&s2t_mem.rng) % 100 < s2t_mem.fail_pct)
		return NULL;
	if (s2t_mem.live >= s2t_mem.max_live)
		return NULL;
	if (s2t_mem.bump < S2T_SLOTS) {
		idx = s2t_mem.bump++;
	} else if (s2t_mem.qlen) {
		idx = s2t_mem.freeq[s2t_mem.qhead];
		s2t_mem.qhead = (s2t_mem.qhead + 1) % S2T_SLOTS;
		s2t_mem.qlen--;
	} else {
		return NULL;
	}
	p = aligned_alloc(4096, 4096);
	S2T_CHECK(p != NULL);
	memset(p, 0, 4096);
	s2t_mem.va[idx] = p;
	s2t_mem.live++;
	*phys = S2T_PHYS + idx * S2T_4K;
	return p;
}

static void s2t_free(void *ctx, void *va, uint64_t phys)
{
	uint64_t idx = (phys - S2T_PHYS) / S2T_4K;

	(void)ctx;
	S2T_CHECKF(phys >= S2T_PHYS && !(phys & 0xfff) && idx < S2T_SLOTS,
		   "free of foreign phys %#llx", (unsigned long long)phys);
	S2T_CHECKF(s2t_mem.va[idx] == va, "double free / wrong va at slot %llu",
		   (unsigned long long)idx);
	free(va);
	s2t_mem.va[idx] = NULL;
	s2t_mem.live--;
	s2t_mem.freeq[(s2t_mem.qhead + s2t_mem.qlen) % S2T_SLOTS] = (uint32_t)idx;
	s2t_mem.qlen++;
}

static void *s2t_p2v(void *ctx, uint64_t phys)
{
	uint64_t idx = (phys - S2T_PHYS) / S2T_4K;

	(void)ctx;
	if (phys < S2T_PHYS || (phys & 0xfff) || idx >= S2T_SLOTS)
		return NULL;
	return s2t_mem.va[idx];
}

static const struct s2_mm s2t_mm = {
	.alloc_table = s2t_alloc, .free_table = s2t_free, .p2v = s2t_p2v,
};

static void s2t_setup(struct s2_pt *pt, const struct s2_format *fmt)
{
	memset(&s2t_mem, 0, sizeof(s2t_mem));
	s2t_mem.fail_after = -1;
	s2t_mem.max_live = S2T_SLOTS;
	s2t_mem.rng = 0x1234567;
	cr_assert_eq(s2_init(pt, fmt, &s2t_mm), 0);
	cr_assert_eq(pt->tables, 1);
	cr_assert_eq(s2t_mem.live, 1);
}

static void s2t_teardown(struct s2_pt *pt)
{
	s2_destroy(pt);
	cr_assert_eq(s2t_mem.live, 0, "leaked %llu tables",
		     (unsigned long long)s2t_mem.live);
	cr_assert_eq(pt->tables, 0);
}

static uint64_t s2t_lsize(int level)
{
	return 1ull << (12 + 9 * level);
}

/* The raw leaf entry for gpa, as the CPU would find it (NULL: none). */
static uint64_t *s2t_leaf_ptr(const struct s2_pt *pt, uint64_t gpa, int *level)
{
	const struct s2_format *f = pt->fmt;
	uint64_t *t = pt->root;

	for (int l = 3; l >= 0; l--) {
		uint64_t *ep = &t[(gpa >> (12 + 9 * l)) & 511];

		if (!(*ep & f->present))
			return NULL;
		if (l == 0 || (l < 3 && (*ep & f->bit_large))) {
			*level = l;
			return ep;
		}
		t = s2t_p2v(NULL, *ep & f->addr_mask);
		S2T_CHECK(t != NULL);
	}
	return NULL;
}

static uint64_t s2t_raw(const struct s2_pt *pt, uint64_t gpa)
{
	int l;
	uint64_t *ep = s2t_leaf_ptr(pt, gpa, &l);

	cr_assert_not_null(ep, "no leaf at %#llx", (unsigned long long)gpa);
	return *ep;
}

/* ---- structural invariants of the whole tree ---- */

static bool s2t_mt_ok(const struct s2_format *f, unsigned mt)
{
	if (f->memtype_shift < 0)
		return mt == S2_MT_UC || mt == S2_MT_WT || mt == S2_MT_WB;
	return mt == 0 || mt == 1 || mt == 4 || mt == 5 || mt == 6;
}

static void s2t_check_leaf(const struct s2_format *f, uint64_t e, int level)
{
	uint64_t known = f->addr_mask | f->always | f->bit_r | f->bit_w |
			 f->bit_x | f->bit_nx | f->bit_large | f->bit_a |
			 f->bit_d | f->bit_pwt | f->bit_pcd;

	if (f->memtype_shift >= 0)
		known |= 7ull << f->memtype_shift;
	S2T_CHECKF(!(e & ~known), "stray bits in leaf %#llx", (unsigned long long)e);
	S2T_CHECK(!(e & f->addr_mask & (s2t_lsize(level) - 1)));
	/* Bit 7 of a 4K NPT entry is PAT: must stay clear there too. */
	S2T_CHECK((level > 0) == ((e & f->bit_large) != 0));
	S2T_CHECK((e & f->always) == f->always);
	if (!f->x_is_nx)
		S2T_CHECKF(!((e & EPT_W) && !(e & EPT_R)), "EPT W without R");
	S2T_CHECK(s2t_mt_ok(f, s2_leaf_memtype(f, e)));
}

static void s2t_check_table(const struct s2_pt *pt, const uint64_t *t,
			    int level, bool root, uint64_t *count)
{
	const struct s2_format *f = pt->fmt;
	bool any = false;

	(*count)++;
	for (unsigned i = 0; i < 512; i++) {
		uint64_t e = t[i];
		const uint64_t *child;

		if (!e)
			continue;
		any = true;
		S2T_CHECKF(e & f->present, "non-present garbage %#llx",
			   (unsigned long long)e);
		if (level == 0 || (level < 3 && (e & f->bit_large))) {
			s2t_check_leaf(f, e, level);
			continue;
		}
		S2T_CHECKF((e & ~f->addr_mask & ~f->bit_a) == f->nonleaf,
			   "bad non-leaf %#llx", (unsigned long long)e);
		child = s2t_p2v(NULL, e & f->addr_mask);
		S2T_CHECK(child != NULL);
		s2t_check_table(pt, child, level - 1, false, count);
	}
	S2T_CHECKF(root || any, "empty non-root table left at level %d", level);
}

static void s2t_check_tree(const struct s2_pt *pt)
{
	uint64_t n = 0;

	s2t_check_table(pt, pt->root, 3, true, &n);
	S2T_CHECKF(n == pt->tables, "reachable %llu != tables %llu",
		   (unsigned long long)n, (unsigned long long)pt->tables);
	S2T_CHECK(pt->tables == s2t_mem.live);
}

static void s2t_expect(const struct s2_pt *pt, uint64_t gpa, uint64_t hpa,
		       unsigned perm, int level)
{
	uint64_t h;
	unsigned p;
	int l;

	cr_assert_eq(s2_lookup(pt, gpa, &h, &p, &l, NULL), 0, "gpa %#llx",
		     (unsigned long long)gpa);
	cr_assert_eq(h, hpa, "gpa %#llx -> %#llx, want %#llx",
		     (unsigned long long)gpa, (unsigned long long)h,
		     (unsigned long long)hpa);
	cr_assert_eq(p, perm);
	cr_assert_eq(l, level, "gpa %#llx level %d want %d",
		     (unsigned long long)gpa, l, level);
}

/* ---- formats ---- */

Test(stage2, format_descriptors)
{
	cr_assert_eq(s2_fmt_npt.always, NPT_P | NPT_US);
	cr_assert_eq(s2_fmt_npt.nonleaf, NPT_P | NPT_RW | NPT_US);
	cr_assert_eq(s2_fmt_npt.bit_nx, NPT_NX);
	cr_assert(s2_fmt_npt.x_is_nx);
	cr_assert_eq(s2_fmt_npt.bit_a, NPT_A);
	cr_assert_eq(s2_fmt_npt.bit_d, NPT_D);
	cr_assert_eq(s2_fmt_npt.memtype_shift, -1);
	cr_assert_eq(s2_fmt_ept.nonleaf, EPT_R | EPT_W | EPT_X);
	cr_assert_eq(s2_fmt_ept.always, 0);
	cr_assert_eq(s2_fmt_ept.bit_a, EPT_A);
	cr_assert_eq(s2_fmt_ept.bit_d, EPT_D);
	cr_assert_eq(s2_fmt_ept.memtype_shift, 3);
	cr_assert_eq(s2_fmt_ept_noad.bit_d, 0);
	cr_assert(!s2_fmt_ept_noad.has_ad);
	cr_assert_eq(s2_fmt_ept.addr_mask, 0x000ffffffffff000ull);
}

Test(stage2, init_destroy)
{
	struct s2_pt pt;
	struct s2_mm bad = s2t_mm;

	s2t_setup(&pt, &s2_fmt_ept);
	for (unsigned i = 0; i < 512; i++)
		cr_assert_eq(pt.root[i], 0);
	cr_assert_eq(s2t_p2v(NULL, pt.root_phys), pt.root);
	cr_assert(!pt.need_flush);
	cr_assert_eq(s2_eptp(&pt), pt.root_phys | 6 | (3 << 3) | (1 << 6));
	s2t_teardown(&pt);
	s2_destroy(&pt);	/* twice is harmless */

	bad.p2v = NULL;
	cr_assert_eq(s2_init(&pt, &s2_fmt_npt, &bad), -EINVAL);
	cr_assert_eq(s2_init(&pt, NULL, &s2t_mm), -EINVAL);
	s2t_mem.fail_after = 0;
	cr_assert_eq(s2_init(&pt, &s2_fmt_npt, &s2t_mm), -ENOMEM);
	cr_assert_eq(s2t_mem.live, 0);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, S2_R, S2_MT_WB, 0), -EINVAL);
}

/* ---- exact bits ---- */

Test(stage2, npt_leaf_bits)
{
	struct s2_pt pt;

	s2t_setup(&pt, &s2_fmt_npt);
	cr_assert_eq(s2_map(&pt, 0x1000, 0x55000, S2T_4K, S2_R | S2_W, S2_MT_WB, 0), 0);
	cr_assert_eq(s2t_raw(&pt, 0x1000), 0x55000 | NPT_P | NPT_RW | NPT_US | NPT_NX);
	cr_assert_eq(s2_map(&pt, 0x2000, 0x56000, S2T_4K, S2_R | S2_X, S2_MT_UC, 0), 0);
	cr_assert_eq(s2t_raw(&pt, 0x2000), 0x56000 | NPT_P | NPT_US | NPT_PWT | NPT_PCD);
	cr_assert_eq(s2_map(&pt, 0x3000, 0x57000, S2T_4K, S2_RWX, S2_MT_WT, 0), 0);
	cr_assert_eq(s2t_raw(&pt, 0x3000), 0x57000 | NPT_P | NPT_RW | NPT_US | NPT_PWT);
	cr_assert_eq(s2_leaf_memtype(&s2_fmt_npt, s2t_raw(&pt, 0x3000)), S2_MT_WT);
	cr_assert_eq(s2_map(&pt, S2T_2M, 0x40000000, S2T_2M, S2_R, S2_MT_WB, S2_ALLOW_2M), 0);
	cr_assert_eq(s2t_raw(&pt, S2T_2M), 0x40000000 | NPT_P | NPT_US | NPT_PS | NPT_NX);
	cr_assert_eq(s2_map(&pt, S2T_1G, 0x80000000, S2T_1G, S2_RWX, S2_MT_WB,
			    S2_ALLOW_2M | S2_ALLOW_1G), 0);
	cr_assert_eq(s2t_raw(&pt, S2T_1G), 0x80000000 | NPT_P | NPT_RW | NPT_US | NPT_PS);
	/* Non-leaves: P|RW|US, nothing else. */
	cr_assert_eq(pt.root[0] & ~pt.fmt->addr_mask, NPT_P | NPT_RW | NPT_US);
	s2t_check_tree(&pt);
	/* NPT cannot express unreadable or WC/WP pages. */
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, S2_X, S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, S2_W, S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, S2_R, S2_MT_WC, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, S2_R, S2_MT_WP, 0), -EINVAL);
	s2t_teardown(&pt);
}

Test(stage2, ept_leaf_bits)
{
	struct s2_pt pt;

	s2t_setup(&pt, &s2_fmt_ept);
	cr_assert_eq(s2_map(&pt, 0x1000, 0x55000, S2T_4K, S2_R | S2_W, S2_MT_WB, 0), 0);
	cr_assert_eq(s2t_raw(&pt, 0x1000), 0x55000 | EPT_R | EPT_W | EPT_WB);
	cr_assert_eq(s2_map(&pt, 0x2000, 0xfee00000, S2T_4K, S2_R | S2_W, S2_MT_UC, 0), 0);
	cr_assert_eq(s2t_raw(&pt, 0x2000), 0xfee00000 | EPT_R | EPT_W);
	/* Execute-only is legal EPT (given the CPU capability). */
	cr_assert_eq(s2_map(&pt, 0x3000, 0x57000, S2T_4K, S2_X, S2_MT_WC, 0), 0);
	cr_assert_eq(s2t_raw(&pt, 0x3000), 0x57000 | EPT_X | (1ull << 3));
	cr_assert_eq(s2_map(&pt, S2T_2M, 0x40000000, S2T_2M, S2_RWX, S2_MT_WB, S2_ALLOW_2M), 0);
	cr_assert_eq(s2t_raw(&pt, S2T_2M), 0x40000000 | EPT_R | EPT_W | EPT_X | EPT_PS | EPT_WB);
	cr_assert_eq(s2_map(&pt, 3 * S2T_1G, 0x80000000, S2T_1G, S2_R, S2_MT_WB,
			    S2_ALLOW_1G), 0);
	cr_assert_eq(s2t_raw(&pt, 3 * S2T_1G), 0x80000000 | EPT_R | EPT_PS | EPT_WB);
	cr_assert_eq(pt.root[0] & ~pt.fmt->addr_mask, EPT_R | EPT_W | EPT_X);
	s2t_check_tree(&pt);
	/* W without R is a misconfiguration (SDM 29.3.3.1): never produced. */
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, S2_W, S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, S2_W | S2_X, S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_protect(&pt, 0x1000, S2T_4K, S2_W), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, 0, S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, 8, S2_MT_WB, 0), -EINVAL);
	for (unsigned mt = 0; mt < 8; mt++)
		cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, S2_R, mt, 0) == 0,
			     mt == 0 || mt == 1 || mt == 4 || mt == 5 || mt == 6);
	s2t_check_tree(&pt);
	s2t_teardown(&pt);
}

Test(stage2, bad_arguments)
{
	struct s2_pt pt;
	uint64_t bm[1] = { 0 };

	s2t_setup(&pt, &s2_fmt_ept);
	cr_assert_eq(s2_map(&pt, 0x800, 0, S2T_4K, S2_R, S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, 0x800, S2T_4K, S2_R, S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, 0, 0x800, S2_R, S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, 0, 0, S2_R, S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, S2_R, S2_MT_WB, 4), -EINVAL);
	cr_assert_eq(s2_map(&pt, S2_GPA_LIMIT - S2T_4K, 0, 2 * S2T_4K, S2_R,
			    S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, S2T_4K, 0, UINT64_MAX & ~0xfffull, S2_R,
			    S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, 1ull << 52, S2T_4K, S2_R, S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, (1ull << 52) - S2T_4K, 2 * S2T_4K, S2_R,
			    S2_MT_WB, 0), -EINVAL);
	cr_assert_eq(s2_map(&pt, 0, (1ull << 52) - S2T_4K, S2T_4K, S2_R, S2_MT_WB, 0), 0);
	cr_assert_eq(s2_unmap(&pt, 0x10, S2T_4K), -EINVAL);
	cr_assert_eq(s2_protect(&pt, 0, S2T_4K, 0), -EINVAL);
	cr_assert_eq(s2_split(&pt, 0, 0), -EINVAL);
	cr_assert_eq(s2_lookup(&pt, S2_GPA_LIMIT, NULL, NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(s2_lookup(&pt, S2T_4K, NULL, NULL, NULL, NULL), -ENOENT);
	cr_assert_eq(s2_lookup(&pt, 0x123, NULL, NULL, NULL, NULL), 0);
	cr_assert_eq(s2_harvest_dirty(&pt, 0, S2T_4K, NULL), -EINVAL);
	cr_assert_eq(s2_write_protect_bitmap(&pt, 0, bm, 0), 0);
	cr_assert_eq(s2_write_protect_bitmap(&pt, 0x10, bm, 1), -EINVAL);
	cr_assert_eq(s2_write_protect_bitmap(&pt, 0, bm, 1ull << 40), -EINVAL);
	s2t_check_tree(&pt);
	s2t_teardown(&pt);
}

/* ---- page sizes, replacement, unmap ---- */

static void s2t_sizes(const struct s2_format *fmt)
{
	struct s2_pt pt;

	s2t_setup(&pt, fmt);
	/* 2M-aligned gpa and hpa, 2M allowed: one PD leaf; root+PDPT+PD. */
	cr_assert_eq(s2_map(&pt, 4 * S2T_2M, 8 * S2T_2M, 2 * S2T_2M, S2_RWX,
			    S2_MT_WB, S2_ALLOW_2M), 0);
	cr_assert_eq(pt.tables, 3);
	s2t_expect(&pt, 4 * S2T_2M + 0x1234, 8 * S2T_2M + 0x1234, S2_RWX, 1);
	s2t_expect(&pt, 6 * S2T_2M - 1, 10 * S2T_2M - 1, S2_RWX, 1);
	cr_assert(!pt.need_flush);
	/* Misaligned hpa: 4K pages only. */
	cr_assert_eq(s2_map(&pt, 16 * S2T_2M, 0x123000, S2T_2M, S2_R, S2_MT_WB,
			    S2_ALLOW_2M), 0);
	cr_assert_eq(pt.tables, 4);
	s2t_expect(&pt, 16 * S2T_2M + 0x5000, 0x128000, S2_R, 0);
	/* 2M not allowed: 4K pages. */
	cr_assert_eq(s2_map(&pt, 18 * S2T_2M, 0, S2T_2M, S2_R, S2_MT_WB, 0), 0);
	s2t_expect(&pt, 18 * S2T_2M, 0, S2_R, 0);
	cr_assert_eq(pt.tables, 5);
	/* 1G with a range that is 4K short at both ends: 2M and 4K mixed. */
	cr_assert_eq(s2_map(&pt, S2T_1G + S2T_4K, S2T_1G + S2T_4K,
			    S2T_1G - 2 * S2T_4K, S2_R | S2_W, S2_MT_WB,
			    S2_ALLOW_2M | S2_ALLOW_1G), 0);
	s2t_expect(&pt, S2T_1G + S2T_4K, S2T_1G + S2T_4K, S2_R | S2_W, 0);
	s2t_expect(&pt, S2T_1G + S2T_2M, S2T_1G + S2T_2M, S2_R | S2_W, 1);
	s2t_expect(&pt, 2 * S2T_1G - S2T_2M, 2 * S2T_1G - S2T_2M, S2_R | S2_W, 0);
	cr_assert_eq(s2_lookup(&pt, S2T_1G, NULL, NULL, NULL, NULL), -ENOENT);
	cr_assert_eq(s2_lookup(&pt, 2 * S2T_1G - S2T_4K, NULL, NULL, NULL, NULL), -ENOENT);
	/* Now the whole 1G: replaces the PD and two PTs in one entry. */
	pt.need_flush = false;
	cr_assert_eq(s2_map(&pt, S2T_1G, 4 * S2T_1G, S2T_1G, S2_R, S2_MT_WB,
			    S2_ALLOW_2M | S2_ALLOW_1G), 0);
	cr_assert(pt.need_flush);
	cr_assert_eq(pt.tables, 5);
	s2t_expect(&pt, S2T_1G + 0x3456789, 4 * S2T_1G + 0x3456789, S2_R, 2);
	s2t_check_tree(&pt);
	/* Replace a 2M leaf with 4K pages of another hpa: new PT. */
	cr_assert_eq(s2_map(&pt, 4 * S2T_2M + S2T_4K, 0x700000, S2T_4K, S2_R,
			    S2_MT_WB, S2_ALLOW_2M), 0);
	cr_assert_eq(pt.tables, 6);
	s2t_expect(&pt, 4 * S2T_2M, 8 * S2T_2M, S2_RWX, 0);
	s2t_expect(&pt, 4 * S2T_2M + S2T_4K, 0x700000, S2_R, 0);
	s2t_expect(&pt, 4 * S2T_2M + 2 * S2T_4K, 8 * S2T_2M + 2 * S2T_4K, S2_RWX, 0);
	/* Unmap everything: back to the root alone. */
	cr_assert_eq(s2_unmap(&pt, 0, 8 * S2T_1G), 0);
	cr_assert_eq(pt.tables, 1);
	s2t_check_tree(&pt);
	cr_assert_eq(s2_lookup(&pt, 4 * S2T_2M, NULL, NULL, NULL, NULL), -ENOENT);
	s2t_teardown(&pt);
}

Test(stage2, sizes_npt) { s2t_sizes(&s2_fmt_npt); }
Test(stage2, sizes_ept) { s2t_sizes(&s2_fmt_ept); }

static void s2t_unmap_edges(const struct s2_format *fmt)
{
	struct s2_pt pt;

	s2t_setup(&pt, fmt);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_1G, S2_RWX, S2_MT_WB,
			    S2_ALLOW_2M | S2_ALLOW_1G), 0);
	cr_assert_eq(pt.tables, 2);
	/* Punch 4K out of the middle of the 1G page: 1G -> 2M -> 4K. */
	cr_assert_eq(s2_unmap(&pt, 5 * S2T_2M + 3 * S2T_4K, S2T_4K), 0);
	cr_assert_eq(pt.tables, 4);
	cr_assert(pt.need_flush);
	cr_assert_eq(s2_lookup(&pt, 5 * S2T_2M + 3 * S2T_4K, NULL, NULL, NULL, NULL),
		     -ENOENT);
	s2t_expect(&pt, 5 * S2T_2M + 2 * S2T_4K, 5 * S2T_2M + 2 * S2T_4K, S2_RWX, 0);
	s2t_expect(&pt, 5 * S2T_2M + 4 * S2T_4K, 5 * S2T_2M + 4 * S2T_4K, S2_RWX, 0);
	s2t_expect(&pt, 4 * S2T_2M, 4 * S2T_2M, S2_RWX, 1);
	s2t_expect(&pt, S2T_1G - 1, S2T_1G - 1, S2_RWX, 1);
	s2t_check_tree(&pt);
	/* Unmap the rest of that 2M: its PT goes away. */
	cr_assert_eq(s2_unmap(&pt, 5 * S2T_2M, S2T_2M), 0);
	cr_assert_eq(pt.tables, 3);
	/* Unmap a range spanning 2M leaves but starting mid-page. */
	cr_assert_eq(s2_unmap(&pt, S2T_2M - S2T_4K, 2 * S2T_2M), 0);
	cr_assert_eq(pt.tables, 5);
	s2t_expect(&pt, S2T_2M - 2 * S2T_4K, S2T_2M - 2 * S2T_4K, S2_RWX, 0);
	s2t_expect(&pt, 3 * S2T_2M - S2T_4K, 3 * S2T_2M - S2T_4K, S2_RWX, 0);
	cr_assert_eq(s2_lookup(&pt, 2 * S2T_2M, NULL, NULL, NULL, NULL), -ENOENT);
	s2t_check_tree(&pt);
	/* Unmapping holes is fine. */
	cr_assert_eq(s2_unmap(&pt, 7 * S2T_1G, S2T_1G), 0);
	cr_assert_eq(s2_unmap(&pt, 0, S2T_1G), 0);
	cr_assert_eq(pt.tables, 1);
	s2t_teardown(&pt);
}

Test(stage2, unmap_edges_npt) { s2t_unmap_edges(&s2_fmt_npt); }
Test(stage2, unmap_edges_ept) { s2t_unmap_edges(&s2_fmt_ept); }

/* ---- protect ---- */

static void s2t_protect(const struct s2_format *fmt)
{
	struct s2_pt pt;
	uint64_t t;

	s2t_setup(&pt, fmt);
	cr_assert_eq(s2_map(&pt, 0, 0, 4 * S2T_2M, S2_RWX, S2_MT_WB, S2_ALLOW_2M), 0);
	t = pt.tables;
	/* Whole 2M leaves: no split. */
	cr_assert_eq(s2_protect(&pt, S2T_2M, 2 * S2T_2M, S2_R), 0);
	cr_assert_eq(pt.tables, t);
	cr_assert(pt.need_flush);
	s2t_expect(&pt, S2T_2M, S2T_2M, S2_R, 1);
	s2t_expect(&pt, 3 * S2T_2M, 3 * S2T_2M, S2_RWX, 1);
	/* Partial, but nothing changes: still no split. */
	pt.need_flush = false;
	cr_assert_eq(s2_protect(&pt, S2T_2M + S2T_4K, S2T_4K, S2_R), 0);
	cr_assert_eq(pt.tables, t);
	cr_assert(!pt.need_flush);
	/* Partial and different: split at the edge only. */
	cr_assert_eq(s2_protect(&pt, 2 * S2T_2M - S2T_4K, 2 * S2T_4K, S2_R | S2_W), 0);
	cr_assert_eq(pt.tables, t + 2);
	s2t_expect(&pt, 2 * S2T_2M - 2 * S2T_4K, 2 * S2T_2M - 2 * S2T_4K, S2_R, 0);
	s2t_expect(&pt, 2 * S2T_2M - S2T_4K, 2 * S2T_2M - S2T_4K, S2_R | S2_W, 0);
	s2t_expect(&pt, 2 * S2T_2M, 2 * S2T_2M, S2_R | S2_W, 0);
	s2t_expect(&pt, 2 * S2T_2M + S2T_4K, 2 * S2T_2M + S2T_4K, S2_R, 0);
	/* Protect keeps hardware-set A/D and the memory type. */
	{
		int l;
		uint64_t *ep = s2t_leaf_ptr(&pt, 0, &l);

		*ep |= fmt->bit_a | fmt->bit_d;
		cr_assert_eq(s2_protect(&pt, 0, S2T_2M, S2_R | S2_X), 0);
		cr_assert_eq(*ep & (fmt->bit_a | fmt->bit_d), fmt->bit_a | fmt->bit_d);
		cr_assert_eq(s2_leaf_memtype(fmt, *ep), S2_MT_WB);
		cr_assert_eq(s2_leaf_perm(fmt, *ep), S2_R | S2_X);
	}
	/* Holes are skipped. */
	cr_assert_eq(s2_protect(&pt, 4 * S2T_2M, S2T_1G, S2_R), 0);
	s2t_check_tree(&pt);
	s2t_teardown(&pt);
}

Test(stage2, protect_npt) { s2t_protect(&s2_fmt_npt); }
Test(stage2, protect_ept) { s2t_protect(&s2_fmt_ept); }

/* ---- split ---- */

static void s2t_split(const struct s2_format *fmt)
{
	struct s2_pt pt;
	int l;
	bool d;

	s2t_setup(&pt, fmt);
	cr_assert_eq(s2_map(&pt, S2T_1G, 2 * S2T_1G, S2T_1G, S2_R | S2_X,
			    S2_MT_UC, S2_ALLOW_2M | S2_ALLOW_1G), 0);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_2M, S2_RWX, S2_MT_WB, S2_ALLOW_2M), 0);
	*s2t_leaf_ptr(&pt, 0, &l) |= fmt->bit_a | fmt->bit_d;
	cr_assert_eq(l, 1);
	/* A dirty 2M page becomes 512 dirty 4K pages. */
	cr_assert_eq(s2_split(&pt, S2T_4K * 7, S2T_4K), 0);
	cr_assert(pt.need_flush);
	for (uint64_t i = 0; i < 512; i++) {
		uint64_t e = s2t_raw(&pt, i * S2T_4K);

		S2T_CHECK(s2_lookup(&pt, i * S2T_4K, NULL, NULL, &l, &d) == 0);
		S2T_CHECK(l == 0 && d);
		S2T_CHECK(e == ((i * S2T_4K) | fmt->bit_a | fmt->bit_d | fmt->always |
				(fmt->x_is_nx ? fmt->bit_r | fmt->bit_w :
				 fmt->bit_r | fmt->bit_w | fmt->bit_x) |
				(fmt->memtype_shift >= 0 ? EPT_WB : 0)));
	}
	/* 1G -> 2M for the untouched part, 4K for the range. */
	cr_assert_eq(s2_split(&pt, S2T_1G + 3 * S2T_2M + S2T_4K, S2T_2M), 0);
	s2t_expect(&pt, S2T_1G, 2 * S2T_1G, S2_R | S2_X, 1);
	s2t_expect(&pt, S2T_1G + 3 * S2T_2M, 2 * S2T_1G + 3 * S2T_2M, S2_R | S2_X, 0);
	s2t_expect(&pt, S2T_1G + 4 * S2T_2M + 0x1fff, 2 * S2T_1G + 4 * S2T_2M + 0x1fff,
		   S2_R | S2_X, 0);
	s2t_expect(&pt, S2T_1G + 5 * S2T_2M, 2 * S2T_1G + 5 * S2T_2M, S2_R | S2_X, 1);
	cr_assert_eq(s2_leaf_memtype(fmt, s2t_raw(&pt, S2T_1G + 4 * S2T_2M)), S2_MT_UC);
	cr_assert_eq(pt.tables, 1 + 1 + 1 + 1 + 1 + 2);
	/* The whole 1G down to 4K: 512 PTs under the new PD. */
	cr_assert_eq(s2_split(&pt, S2T_1G, S2T_1G), 0);
	cr_assert_eq(pt.tables, 1 + 1 + 1 + 1 + 1 + 512);
	s2t_expect(&pt, 2 * S2T_1G - 1, 3 * S2T_1G - 1, S2_R | S2_X, 0);
	s2t_check_tree(&pt);
	cr_assert_eq(s2_unmap(&pt, 0, 2 * S2T_1G), 0);
	cr_assert_eq(pt.tables, 1);
	s2t_teardown(&pt);
}

Test(stage2, split_npt) { s2t_split(&s2_fmt_npt); }
Test(stage2, split_ept) { s2t_split(&s2_fmt_ept); }

/* ---- dirty harvest ---- */

static bool s2t_bit(const uint64_t *bm, uint64_t i)
{
	return (bm[i / 64] >> (i % 64)) & 1;
}

static void s2t_dirty(struct s2_pt *pt, uint64_t gpa)
{
	int l;
	uint64_t *ep = s2t_leaf_ptr(pt, gpa, &l);

	cr_assert_not_null(ep);
	__atomic_fetch_or(ep, pt->fmt->bit_a | pt->fmt->bit_d, __ATOMIC_RELAXED);
}

static void s2t_harvest(const struct s2_format *fmt)
{
	struct s2_pt pt;
	static uint64_t bm[2048 / 64];
	bool d;

	s2t_setup(&pt, fmt);
	/* [0, 2M) 4K pages, [2M, 6M) two 2M pages. */
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_2M, S2_RWX, S2_MT_WB, 0), 0);
	cr_assert_eq(s2_map(&pt, S2T_2M, S2T_2M, 2 * S2T_2M, S2_RWX, S2_MT_WB,
			    S2_ALLOW_2M), 0);
	memset(bm, 0, sizeof(bm));
	cr_assert_eq(s2_harvest_dirty(&pt, 0, 3 * S2T_2M, bm), 0);
	cr_assert(!pt.need_flush);
	s2t_dirty(&pt, 5 * S2T_4K);
	s2t_dirty(&pt, 511 * S2T_4K);
	s2t_dirty(&pt, 2 * S2T_2M + 77 * S2T_4K);
	cr_assert_eq(s2_harvest_dirty(&pt, 0, 3 * S2T_2M, bm), 2 + 512);
	cr_assert(pt.need_flush);
	for (uint64_t i = 0; i < 1536; i++)
		S2T_CHECKF(s2t_bit(bm, i) == (i == 5 || i == 511 || (i >= 1024)),
			   "bit %llu", (unsigned long long)i);
	/* Large page not split by harvest, D bits gone. */
	s2t_expect(&pt, 2 * S2T_2M, 2 * S2T_2M, S2_RWX, 1);
	cr_assert_eq(s2_lookup(&pt, 5 * S2T_4K, NULL, NULL, NULL, &d), 0);
	cr_assert(!d);
	cr_assert_eq(s2t_raw(&pt, 2 * S2T_2M) & fmt->bit_d, 0);
	cr_assert_eq(s2t_raw(&pt, 5 * S2T_4K) & fmt->bit_a, fmt->bit_a);
	/* Bits already set in the bitmap do not count again. */
	s2t_dirty(&pt, 5 * S2T_4K);
	s2t_dirty(&pt, 6 * S2T_4K);
	cr_assert_eq(s2_harvest_dirty(&pt, 0, 3 * S2T_2M, bm), 1);
	cr_assert_eq(s2_harvest_dirty(&pt, 0, 3 * S2T_2M, bm), 0);
	/* Range offset: bit 0 is the page at gpa. */
	memset(bm, 0, sizeof(bm));
	s2t_dirty(&pt, 9 * S2T_4K);
	cr_assert_eq(s2_harvest_dirty(&pt, 8 * S2T_4K, 4 * S2T_4K, bm), 1);
	cr_assert_eq(bm[0], 2);
	/* A dirty 2M page only partly in range: reported, D kept. */
	memset(bm, 0, sizeof(bm));
	s2t_dirty(&pt, S2T_2M);
	cr_assert_eq(s2_harvest_dirty(&pt, S2T_2M + 510 * S2T_4K, 4 * S2T_4K, bm), 2);
	cr_assert_eq(bm[0], 3);
	cr_assert_eq(s2t_raw(&pt, S2T_2M) & fmt->bit_d, fmt->bit_d);
	memset(bm, 0, sizeof(bm));
	cr_assert_eq(s2_harvest_dirty(&pt, S2T_2M, S2T_2M, bm), 512);
	cr_assert_eq(s2t_raw(&pt, S2T_2M) & fmt->bit_d, 0);
	/* clear_dirty_all drops D without reporting. */
	s2t_dirty(&pt, 100 * S2T_4K);
	s2t_dirty(&pt, 2 * S2T_2M);
	cr_assert_eq(s2_clear_dirty_all(&pt, 0, 3 * S2T_2M), 0);
	memset(bm, 0, sizeof(bm));
	cr_assert_eq(s2_harvest_dirty(&pt, 0, 3 * S2T_2M, bm), 0);
	s2t_check_tree(&pt);
	s2t_teardown(&pt);
}

Test(stage2, harvest_npt) { s2t_harvest(&s2_fmt_npt); }
Test(stage2, harvest_ept) { s2t_harvest(&s2_fmt_ept); }

Test(stage2, harvest_needs_ad)
{
	struct s2_pt pt;
	uint64_t bm[1] = { 0 };

	s2t_setup(&pt, &s2_fmt_ept_noad);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, S2_RWX, S2_MT_WB, 0), 0);
	cr_assert_eq(s2_harvest_dirty(&pt, 0, S2T_4K, bm), -EOPNOTSUPP);
	cr_assert_eq(s2_clear_dirty_all(&pt, 0, S2T_4K), -EOPNOTSUPP);
	cr_assert_eq(s2_eptp(&pt) & (1 << 6), 0);
	cr_assert_eq(s2t_raw(&pt, 0), EPT_R | EPT_W | EPT_X | EPT_WB);
	s2t_teardown(&pt);
}

/* ---- write-protect mode ---- */

static void s2t_wp(const struct s2_format *fmt)
{
	struct s2_pt pt;
	uint64_t bm[16] = { 0 }, t;

	s2t_setup(&pt, fmt);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_2M, S2_RWX, S2_MT_WB, 0), 0);
	cr_assert_eq(s2_map(&pt, S2T_2M, S2T_2M, 2 * S2T_2M, S2_RWX, S2_MT_WB,
			    S2_ALLOW_2M), 0);
	cr_assert_eq(s2_map(&pt, 3 * S2T_2M, 0, S2T_4K, S2_R | S2_X, S2_MT_WB, 0), 0);
	t = pt.tables;
	/* gpa = 1M: bits 0..2 (4K pages), 255 and 256 (edge of 2M leaf). */
	bm[0] = 7;
	bm[255 / 64] |= 1ull << (255 % 64);
	bm[256 / 64] |= 1ull << (256 % 64);
	cr_assert_eq(s2_write_protect_bitmap(&pt, S2T_2M / 2, bm, 1024), 5);
	cr_assert_eq(pt.tables, t + 1);	/* the first 2M leaf split */
	s2t_expect(&pt, S2T_2M / 2, S2T_2M / 2, S2_R | S2_X, 0);
	s2t_expect(&pt, S2T_2M / 2 + 3 * S2T_4K, S2T_2M / 2 + 3 * S2T_4K, S2_RWX, 0);
	s2t_expect(&pt, S2T_2M / 2 + 254 * S2T_4K, S2T_2M / 2 + 254 * S2T_4K,
		   S2_RWX, 0);
	s2t_expect(&pt, S2T_2M - S2T_4K, S2T_2M - S2T_4K, S2_R | S2_X, 0);
	s2t_expect(&pt, S2T_2M, S2T_2M, S2_R | S2_X, 0);
	s2t_expect(&pt, S2T_2M + S2T_4K, S2T_2M + S2T_4K, S2_RWX, 0);
	/* Part of the second 2M leaf: split; then all of it: read-only pages
	 * and the R|X page past it do not count. */
	memset(bm, 0, sizeof(bm));
	bm[0] = ~0ull;
	bm[1] = ~0ull;
	pt.need_flush = false;
	t = pt.tables;
	cr_assert_eq(s2_write_protect_bitmap(&pt, 2 * S2T_2M, bm, 128), 128);
	cr_assert_eq(pt.tables, t + 1);
	cr_assert(pt.need_flush);
	memset(bm, 0xff, sizeof(bm));
	cr_assert_eq(s2_write_protect_bitmap(&pt, 2 * S2T_2M, bm, 513), 512 - 128);
	s2t_expect(&pt, 2 * S2T_2M + 200 * S2T_4K, 2 * S2T_2M + 200 * S2T_4K,
		   S2_R | S2_X, 0);
	s2t_check_tree(&pt);
	s2t_teardown(&pt);
}

Test(stage2, write_protect_npt) { s2t_wp(&s2_fmt_npt); }
Test(stage2, write_protect_ept) { s2t_wp(&s2_fmt_ept); }

/* ---- robustness ---- */

Test(stage2, foreign_table_is_efault)
{
	struct s2_pt pt;
	uint64_t saved;

	s2t_setup(&pt, &s2_fmt_ept);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, S2_R, S2_MT_WB, 0), 0);
	saved = pt.root[0];
	pt.root[0] = 0x1000 | EPT_R | EPT_W | EPT_X;	/* not a table of ours */
	cr_assert_eq(s2_lookup(&pt, 0, NULL, NULL, NULL, NULL), -EFAULT);
	cr_assert_eq(s2_map(&pt, 0, 0, S2T_4K, S2_R, S2_MT_WB, 0), -EFAULT);
	cr_assert_eq(s2_protect(&pt, 0, S2T_4K, S2_RWX), -EFAULT);
	pt.root[0] = saved;
	s2t_expect(&pt, 0, 0, S2_R, 0);
	s2t_teardown(&pt);
}

Test(stage2, enomem_leaves_tree_consistent)
{
	struct s2_pt pt;

	s2t_setup(&pt, &s2_fmt_npt);
	/* Fail the third allocation: PDPT and PD come, the PT does not. */
	s2t_mem.fail_after = 2;
	cr_assert_eq(s2_map(&pt, 0, 0x1000, 2 * S2T_2M, S2_R, S2_MT_WB, S2_ALLOW_2M),
		     -ENOMEM);
	cr_assert_eq(pt.tables, 1);
	s2t_check_tree(&pt);
	/* Partly mapped then failed: whatever is there is consistent. */
	s2t_mem.fail_after = 4;
	cr_assert_eq(s2_map(&pt, 0, 0x1000, 4 * S2T_2M, S2_R, S2_MT_WB, 0), -ENOMEM);
	s2t_check_tree(&pt);
	s2t_expect(&pt, S2T_2M, 0x1000 + S2T_2M, S2_R, 0);
	cr_assert_eq(s2_lookup(&pt, 2 * S2T_2M, NULL, NULL, NULL, NULL), -ENOENT);
	/* Unmap needing a split fails cleanly and changes nothing. */
	s2t_mem.fail_after = -1;
	cr_assert_eq(s2_map(&pt, S2T_1G, 0, S2T_1G, S2_R, S2_MT_WB, S2_ALLOW_1G), 0);
	s2t_mem.fail_after = 0;
	cr_assert_eq(s2_unmap(&pt, S2T_1G, S2T_4K), -ENOMEM);
	cr_assert_eq(s2_split(&pt, S2T_1G, S2T_4K), -ENOMEM);
	cr_assert_eq(s2_protect(&pt, S2T_1G, S2T_4K, S2_RWX), -ENOMEM);
	s2t_expect(&pt, S2T_1G, 0, S2_R, 2);
	s2t_check_tree(&pt);
	s2t_mem.fail_after = -1;
	cr_assert_eq(s2_unmap(&pt, 0, 2 * S2T_1G), 0);
	cr_assert_eq(pt.tables, 1);
	s2t_teardown(&pt);
}

struct s2t_walked {
	uint64_t gpa[8], hpa[8];
	int level[8];
	int n;
};

static void s2t_collect(void *ctx, uint64_t gpa, uint64_t hpa, int level, uint64_t e)
{
	struct s2t_walked *g = ctx;

	(void)e;
	S2T_CHECK(g->n < 8);
	g->gpa[g->n] = gpa;
	g->hpa[g->n] = hpa;
	g->level[g->n] = level;
	g->n++;
}

Test(stage2, walk_in_order)
{
	struct s2_pt pt;
	struct s2t_walked got = { .n = 0 };

	s2t_setup(&pt, &s2_fmt_ept);
	cr_assert_eq(s2_map(&pt, 5 * S2T_1G, 0, S2T_1G, S2_R, S2_MT_WB, S2_ALLOW_1G), 0);
	cr_assert_eq(s2_map(&pt, 0x1000, 0x9000, S2T_4K, S2_R, S2_MT_WB, 0), 0);
	cr_assert_eq(s2_map(&pt, 1ull << 40, S2T_2M, S2T_2M, S2_R, S2_MT_WB, S2_ALLOW_2M), 0);
	cr_assert_eq(s2_walk(&pt, s2t_collect, &got), 0);
	cr_assert_eq(got.n, 3);
	cr_assert_eq(got.gpa[0], 0x1000);
	cr_assert_eq(got.hpa[0], 0x9000);
	cr_assert_eq(got.level[0], 0);
	cr_assert_eq(got.gpa[1], 5 * S2T_1G);
	cr_assert_eq(got.level[1], 2);
	cr_assert_eq(got.gpa[2], 1ull << 40);
	cr_assert_eq(got.hpa[2], S2T_2M);
	cr_assert_eq(got.level[2], 1);
	s2t_teardown(&pt);
}

/* ---- model-based fuzz ---- */

struct s2t_page {
	uint64_t hpa;
	uint8_t perm, mt;
	bool mapped, dirty;
};

struct s2t_fz {
	struct s2_pt pt;
	const struct s2_format *fmt;
	uint64_t base, npages;	/* the window every op stays inside */
	struct s2t_page *model;
	struct s2t_page *saved;	/* model of the op's range before it */
	uint64_t *bm;
	uint64_t rng;
	bool big;		/* 1G window: ops at 2M/1G granularity */
	uint64_t visited;
};

static uint64_t s2t_fz_rand(struct s2t_fz *z, uint64_t n)
{
	return n ? s2t_rand(&z->rng) % n : 0;
}

/* A random page range inside the window, often 2M/1G-aligned or close. */
static void s2t_fz_range(struct s2t_fz *z, uint64_t *first, uint64_t *n)
{
	uint64_t np = z->npages, s, len;

	switch (s2t_fz_rand(z, z->big ? 6 : 4)) {
	case 0:
		s = s2t_fz_rand(z, np);
		len = 1 + s2t_fz_rand(z, 16);
		break;
	case 1:
		s = s2t_fz_rand(z, np);
		len = 1 + s2t_fz_rand(z, 1500);
		break;
	case 2:
	case 4:
		s = s2t_fz_rand(z, np / 512) * 512;
		len = 512 * (1 + s2t_fz_rand(z, z->big ? 64 : 4));
		break;
	default:
		s = s2t_fz_rand(z, np / 262144 + 1) * 262144;
		len = 262144;
		if (!z->big)
			s = s2t_fz_rand(z, np / 512) * 512, len = 512;
		break;
	}
	/* Jitter the edges by a few pages now and then. */
	if (s2t_fz_rand(z, 4) == 0 && s >= 3)
		s -= s2t_fz_rand(z, 4);
	if (s2t_fz_rand(z, 4) == 0)
		len += s2t_fz_rand(z, 4);
	if (s >= np)
		s = np - 1;
	if (len > np - s)
		len = np - s;
	*first = s;
	*n = len;
}

static unsigned s2t_fz_perm(struct s2t_fz *z)
{
	static const unsigned npt[] = { S2_R, S2_R | S2_W, S2_R | S2_X, S2_RWX };
	static const unsigned ept[] = { S2_R, S2_R | S2_W, S2_R | S2_X, S2_RWX, S2_X };

	if (z->fmt->x_is_nx)
		return npt[s2t_fz_rand(z, 4)];
	return ept[s2t_fz_rand(z, 5)];
}

static unsigned s2t_fz_mt(struct s2t_fz *z)
{
	static const unsigned npt[] = { S2_MT_WB, S2_MT_WB, S2_MT_UC, S2_MT_WT };
	static const unsigned ept[] = { S2_MT_WB, S2_MT_WB, S2_MT_UC, S2_MT_WC,
					S2_MT_WT, S2_MT_WP };

	if (z->fmt->memtype_shift < 0)
		return npt[s2t_fz_rand(z, 4)];
	return ept[s2t_fz_rand(z, 6)];
}

static uint64_t s2t_fz_gpa(const struct s2t_fz *z, uint64_t page)
{
	return z->base + page * S2T_4K;
}

static void s2t_fz_leaf(void *ctx, uint64_t gpa, uint64_t hpa, int level, uint64_t e)
{
	struct s2t_fz *z = ctx;
	uint64_t n = s2t_lsize(level) / S2T_4K, first;
	unsigned perm = s2_leaf_perm(z->fmt, e), mt = s2_leaf_memtype(z->fmt, e);
	bool d = (e & z->fmt->bit_d) != 0;

	S2T_CHECKF(gpa >= z->base && (gpa - z->base) / S2T_4K + n <= z->npages,
		   "leaf outside the window at %#llx", (unsigned long long)gpa);
	first = (gpa - z->base) / S2T_4K;
	for (uint64_t i = 0; i < n; i++) {
		const struct s2t_page *m = &z->model[first + i];

		S2T_CHECKF(m->mapped && m->hpa == hpa + i * S2T_4K &&
			   m->perm == perm && m->mt == mt && m->dirty == d,
			   "page %#llx: model mapped %d hpa %#llx perm %u mt %u "
			   "dirty %d; tree hpa %#llx perm %u mt %u dirty %d",
			   (unsigned long long)(gpa + i * S2T_4K), m->mapped,
			   (unsigned long long)m->hpa, m->perm, m->mt, m->dirty,
			   (unsigned long long)(hpa + i * S2T_4K), perm, mt, d);
	}
	z->visited += n;
}

/* Every leaf matches the model and every mapped model page has a leaf. */
static void s2t_fz_check_all(struct s2t_fz *z)
{
	uint64_t mapped = 0;

	z->visited = 0;
	S2T_CHECK(s2_walk(&z->pt, s2t_fz_leaf, z) == 0);
	for (uint64_t i = 0; i < z->npages; i++)
		mapped += z->model[i].mapped;
	S2T_CHECKF(z->visited == mapped, "walk saw %llu pages, model has %llu",
		   (unsigned long long)z->visited, (unsigned long long)mapped);
	s2t_check_tree(&z->pt);
}

/* The lookup of one page agrees with the model. */
static void s2t_fz_check_page(struct s2t_fz *z, uint64_t page)
{
	const struct s2t_page *m = &z->model[page];
	uint64_t off = s2t_fz_rand(z, S2T_4K), hpa;
	unsigned perm;
	int level;
	bool d;
	int ret = s2_lookup(&z->pt, s2t_fz_gpa(z, page) + off, &hpa, &perm, &level, &d);

	if (!m->mapped) {
		S2T_CHECK(ret == -ENOENT);
		return;
	}
	S2T_CHECKF(ret == 0 && hpa == m->hpa + off && perm == m->perm && d == m->dirty,
		   "lookup of page %llu", (unsigned long long)page);
}

/* Pages of the leaf holding page (clipped to the window). */
static void s2t_fz_leaf_span(struct s2t_fz *z, uint64_t page, uint64_t *s, uint64_t *e)
{
	int level;

	S2T_CHECK(s2_lookup(&z->pt, s2t_fz_gpa(z, page), NULL, NULL, &level, NULL) == 0);
	*s = ((s2t_fz_gpa(z, page) & ~(s2t_lsize(level) - 1)) - z->base) / S2T_4K;
	*e = *s + s2t_lsize(level) / S2T_4K;
	S2T_CHECK(*s <= page && *e <= z->npages);
}

/*
 * After an op failed with -ENOMEM: each page in range holds either its old
 * state or the intended new one.  Take what the tree says as the model.
 */
static void s2t_fz_resync(struct s2t_fz *z, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++) {
		struct s2t_page *want = &z->model[i], *old = &z->saved[i - first];
		struct s2t_page got = { 0 };
		uint64_t e;
		int level;
		int ret = s2_lookup_entry(&z->pt, s2t_fz_gpa(z, i), &e, &level);

		if (ret == 0) {
			got.mapped = true;
			S2T_CHECK(s2_lookup(&z->pt, s2t_fz_gpa(z, i), &got.hpa, NULL,
					    NULL, NULL) == 0);
			got.perm = (uint8_t)s2_leaf_perm(z->fmt, e);
			got.mt = (uint8_t)s2_leaf_memtype(z->fmt, e);
			got.dirty = (e & z->fmt->bit_d) != 0;
		} else {
			S2T_CHECK(ret == -ENOENT);
		}
		S2T_CHECKF(!memcmp(&got, want, sizeof(got)) || !memcmp(&got, old, sizeof(got)),
			   "page %llu is neither old nor new after -ENOMEM",
			   (unsigned long long)i);
		*want = got;
	}
}

static void s2t_fz_map(struct s2t_fz *z, uint64_t first, uint64_t n)
{
	static const uint64_t deltas[] = { 0, S2T_1G, 3 * S2T_1G, S2T_2M, 7 * S2T_2M };
	uint64_t delta = s2t_fz_rand(z, 3) ? deltas[s2t_fz_rand(z, 5)] :
			 S2T_4K * (1 + s2t_fz_rand(z, 1000));
	unsigned perm = s2t_fz_perm(z), mt = s2t_fz_mt(z);
	unsigned flags = (unsigned)s2t_fz_rand(z, 4);
	uint64_t gpa = s2t_fz_gpa(z, first);
	int ret;

	for (uint64_t i = first; i < first + n; i++) {
		struct s2t_page *m = &z->model[i];

		m->mapped = true;
		m->hpa = gpa + delta + (i - first) * S2T_4K;
		m->perm = (uint8_t)perm;
		m->mt = (uint8_t)mt;
		m->dirty = false;	/* a map drops A/D */
	}
	ret = s2_map(&z->pt, gpa, gpa + delta, n * S2T_4K, perm, mt, flags);
	S2T_CHECKF(ret == 0 || ret == -ENOMEM, "map returned %d", ret);
	if (ret)
		s2t_fz_resync(z, first, n);
}

static void s2t_fz_unmap(struct s2t_fz *z, uint64_t first, uint64_t n)
{
	int ret;

	for (uint64_t i = first; i < first + n; i++)
		memset(&z->model[i], 0, sizeof(z->model[i]));
	ret = s2_unmap(&z->pt, s2t_fz_gpa(z, first), n * S2T_4K);
	S2T_CHECK(ret == 0 || ret == -ENOMEM);
	if (ret)
		s2t_fz_resync(z, first, n);
}

static void s2t_fz_protect(struct s2t_fz *z, uint64_t first, uint64_t n)
{
	unsigned perm = s2t_fz_perm(z);
	int ret;

	for (uint64_t i = first; i < first + n; i++)
		if (z->model[i].mapped)
			z->model[i].perm = (uint8_t)perm;
	ret = s2_protect(&z->pt, s2t_fz_gpa(z, first), n * S2T_4K, perm);
	S2T_CHECK(ret == 0 || ret == -ENOMEM);
	if (ret)
		s2t_fz_resync(z, first, n);
}

static void s2t_fz_split(struct s2t_fz *z, uint64_t first, uint64_t n)
{
	int ret = s2_split(&z->pt, s2t_fz_gpa(z, first), n * S2T_4K);

	S2T_CHECK(ret == 0 || ret == -ENOMEM);
	if (ret)
		return;
	for (uint64_t i = first; i < first + n; i += 1 + s2t_fz_rand(z, 64)) {
		int level = -1;

		if (z->model[i].mapped) {
			S2T_CHECK(s2_lookup(&z->pt, s2t_fz_gpa(z, i), NULL, NULL,
					    &level, NULL) == 0);
			S2T_CHECK(level == 0);
		}
	}
}

/* Play the CPU: set A/D on the leaves of a few random pages. */
static void s2t_fz_hw_dirty(struct s2t_fz *z)
{
	for (unsigned k = 0; k < 1 + s2t_fz_rand(z, 8); k++) {
		uint64_t page = s2t_fz_rand(z, z->npages), s, e;
		int level;
		uint64_t *ep;

		if (!z->model[page].mapped)
			continue;
		ep = s2t_leaf_ptr(&z->pt, s2t_fz_gpa(z, page), &level);
		S2T_CHECK(ep != NULL);
		*ep |= z->fmt->bit_a | z->fmt->bit_d;
		s2t_fz_leaf_span(z, page, &s, &e);
		for (uint64_t i = s; i < e; i++)
			z->model[i].dirty = true;
	}
}

static void s2t_fz_harvest(struct s2t_fz *z, uint64_t first, uint64_t n)
{
	uint64_t expect = 0, i;
	long got;

	if (s2t_fz_rand(z, 3) == 0) {
		first = 0;
		n = z->npages;
	}
	memset(z->bm, 0, (n + 63) / 64 * 8);
	z->pt.need_flush = false;
	got = s2_harvest_dirty(&z->pt, s2t_fz_gpa(z, first), n * S2T_4K, z->bm);
	for (i = 0; i < n; i++) {
		bool want = z->model[first + i].mapped && z->model[first + i].dirty;

		S2T_CHECKF(s2t_bit(z->bm, i) == want, "harvest bit of page %llu",
			   (unsigned long long)(first + i));
		expect += want;
	}
	S2T_CHECKF(got == (long)expect, "harvest returned %ld, want %llu", got,
		   (unsigned long long)expect);
	/* Leaves wholly inside the range are clean now; others keep D. */
	for (i = first; i < first + n;) {
		uint64_t s, e;

		if (!z->model[i].mapped || !z->model[i].dirty) {
			i++;
			continue;
		}
		s2t_fz_leaf_span(z, i, &s, &e);
		if (s >= first && e <= first + n) {
			S2T_CHECK(z->pt.need_flush);
			for (uint64_t j = s; j < e; j++)
				z->model[j].dirty = false;
		}
		i = e;
	}
}

static void s2t_fz_wp(struct s2t_fz *z, uint64_t first, uint64_t n)
{
	long expect = 0, got;
	unsigned density = 1 + (unsigned)s2t_fz_rand(z, 4);

	memset(z->bm, 0, (n + 63) / 64 * 8);
	for (uint64_t i = 0; i < n; i++) {
		struct s2t_page *m = &z->model[first + i];

		/* Runs are what matters: mostly long, sometimes sparse. */
		if (s2t_fz_rand(z, density) != 0)
			continue;
		z->bm[i / 64] |= 1ull << (i % 64);
		if (m->mapped && (m->perm & S2_W)) {
			m->perm &= (uint8_t)~S2_W;
			expect++;
		}
	}
	got = s2_write_protect_bitmap(&z->pt, s2t_fz_gpa(z, first), z->bm, n);
	if (got == -ENOMEM) {
		s2t_fz_resync(z, first, n);
		return;
	}
	S2T_CHECKF(got == expect, "wp returned %ld, want %ld", got, expect);
}

struct s2t_fz_cfg {
	const struct s2_format *fmt;
	uint64_t base, npages;
	unsigned ops, check_every, fail_pct;
	uint64_t seed;
	bool big;
};

static void s2t_fuzz(const struct s2t_fz_cfg *c)
{
	struct s2t_fz *z = calloc(1, sizeof(*z));
	bool ad;

	cr_assert_not_null(z);
	z->fmt = c->fmt;
	z->base = c->base;
	z->npages = c->npages;
	z->big = c->big;
	z->rng = c->seed;
	ad = c->fmt->has_ad;
	z->model = calloc(c->npages, sizeof(*z->model));
	z->saved = calloc(c->npages, sizeof(*z->saved));
	z->bm = calloc(c->npages / 64 + 1, 8);
	cr_assert(z->model && z->saved && z->bm);
	s2t_setup(&z->pt, c->fmt);
	s2t_mem.fail_pct = c->fail_pct;
	s2t_mem.rng = (c->seed ^ 0x5555) | 1;
	for (unsigned op = 0; op < c->ops; op++) {
		uint64_t first, n, r = s2t_fz_rand(z, 100);

		s2t_fz_range(z, &first, &n);
		memcpy(z->saved, &z->model[first], n * sizeof(*z->saved));
		if (r < 35)
			s2t_fz_map(z, first, n);
		else if (r < 48)
			s2t_fz_unmap(z, first, n);
		else if (r < 60)
			s2t_fz_protect(z, first, n);
		else if (r < 66)
			s2t_fz_split(z, first, n);
		else if (r < 80 && ad)
			s2t_fz_hw_dirty(z);
		else if (r < 92 && ad)
			s2t_fz_harvest(z, first, n);
		else if (r < 97)
			s2t_fz_wp(z, first, n);
		else if (ad) {
			S2T_CHECK(s2_clear_dirty_all(&z->pt, z->base,
						     z->npages * S2T_4K) == 0);
			/* Only leaves inside the window exist: all clean. */
			for (uint64_t i = 0; i < z->npages; i++)
				z->model[i].dirty = false;
		}
		for (unsigned k = 0; k < 8; k++)
			s2t_fz_check_page(z, s2t_fz_rand(z, z->npages));
		if (op % c->check_every == 0 || op + 1 == c->ops)
			s2t_fz_check_all(z);
	}
	/* Unmapping everything returns to the bare root. */
	s2t_mem.fail_pct = 0;
	cr_assert_eq(s2_unmap(&z->pt, z->base, z->npages * S2T_4K), 0);
	cr_assert_eq(z->pt.tables, 1);
	cr_assert_eq(s2t_mem.live, 1);
	s2t_teardown(&z->pt);
	free(z->model);
	free(z->saved);
	free(z->bm);
	free(z);
}

#define S2T_FUZZ(name, fmt, base, npages, ops, every, fail_pct, seed, big)	\
	Test(stage2, name)						\
	{								\
		struct s2t_fz_cfg c = { fmt, base, npages, ops, every,	\
					fail_pct, seed, big };		\
		s2t_fuzz(&c);						\
	}

/* 16 MiB straddling the 1 GiB boundary: 4K/2M mixes, checked every op. */
S2T_FUZZ(fuzz_small_npt, &s2_fmt_npt, S2T_1G - 8 * S2T_2M, 4096, 1000, 1, 0, 0x1111, false)
S2T_FUZZ(fuzz_small_ept, &s2_fmt_ept, S2T_1G - 8 * S2T_2M, 4096, 1000, 1, 0, 0x2222, false)
S2T_FUZZ(fuzz_small_ept_noad, &s2_fmt_ept_noad, S2T_1G - 8 * S2T_2M, 4096, 400, 1, 0,
	 0x3333, false)
/* Allocation failures injected at random: -ENOMEM paths stay consistent. */
S2T_FUZZ(fuzz_enomem_npt, &s2_fmt_npt, S2T_1G - 8 * S2T_2M, 4096, 800, 1, 15, 0x4444, false)
S2T_FUZZ(fuzz_enomem_ept, &s2_fmt_ept, S2T_1G - 8 * S2T_2M, 4096, 800, 1, 15, 0x5555, false)
/* 2 GiB from 1 GiB: 1G/2M/4K mixes, full check every 10 ops. */
S2T_FUZZ(fuzz_big_npt, &s2_fmt_npt, S2T_1G, 2 * 262144, 150, 10, 0, 0x6666, true)
S2T_FUZZ(fuzz_big_ept, &s2_fmt_ept, S2T_1G, 2 * 262144, 150, 10, 3, 0x7777, true)

/* ---- the CPU setting D bits while the engine harvests and protects ---- */

#define S2T_HW_PAGES	64
#define S2T_HW_SETS	30000	/* at least, and 3000 harvest rounds */

struct s2t_hw {
	uint64_t *ep[S2T_HW_PAGES];
	uint64_t bit;		/* A|D of the format */
	uint64_t seed;
	long sets;		/* D went 0 -> 1 by this thread */
	int stop, done;
};

/* Hammer few pages with "guest writes"; count the D transitions it made. */
static void *s2t_hw_thread(void *arg)
{
	struct s2t_hw *hw = arg;

	for (unsigned n = 1; !__atomic_load_n(&hw->stop, __ATOMIC_ACQUIRE); n++) {
		uint64_t *ep = hw->ep[s2t_rand(&hw->seed) % S2T_HW_PAGES];

		if (n % 4096 == 0)
			sched_yield();	/* progress even when sharing one core */

		if (!(__atomic_fetch_or(ep, hw->bit, __ATOMIC_RELAXED) & hw->bit))
			__atomic_store_n(&hw->sets, hw->sets + 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&hw->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Every D transition the "CPU" makes is reported by exactly one harvest:
 * harvested total == transitions, even with protect (compare-exchange on
 * the same entries) running in between.  A plain store anywhere would lose
 * transitions, a non-clearing harvest would report some twice.
 */
static void s2t_concurrent(const struct s2_format *fmt)
{
	static struct s2t_hw hw;
	uint64_t bm[1];
	struct s2_pt pt;
	pthread_t th;
	long total = 0, got;
	unsigned rounds = 0;
	int level, done;

	s2t_setup(&pt, fmt);
	cr_assert_eq(s2_map(&pt, 0, S2T_1G, S2T_HW_PAGES * S2T_4K, S2_R | S2_W,
			    S2_MT_WB, 0), 0);
	for (uint64_t i = 0; i < S2T_HW_PAGES; i++) {
		hw.ep[i] = s2t_leaf_ptr(&pt, i * S2T_4K, &level);
		cr_assert(hw.ep[i] && level == 0);
	}
	hw.bit = fmt->bit_d;
	hw.seed = 0x9e3779b97f4a7c15ull;
	hw.sets = 0;
	hw.stop = 0;
	hw.done = 0;
	cr_assert_eq(pthread_create(&th, NULL, s2t_hw_thread, &hw), 0);
	do {
		done = __atomic_load_n(&hw.done, __ATOMIC_ACQUIRE);
		bm[0] = 0;
		got = s2_harvest_dirty(&pt, 0, S2T_HW_PAGES * S2T_4K, bm);
		S2T_CHECK(got >= 0 && got == __builtin_popcountll(bm[0]));
		total += got;
		S2T_CHECK(s2_protect(&pt, 0, S2T_HW_PAGES * S2T_4K,
				     rounds & 1 ? S2_R | S2_W : S2_R) == 0);
		rounds++;
		if (!got)
			sched_yield();
		/* Stop on progress, not time: the threads may share a core. */
		if (rounds >= 3000 &&
		    __atomic_load_n(&hw.sets, __ATOMIC_RELAXED) >= S2T_HW_SETS)
			__atomic_store_n(&hw.stop, 1, __ATOMIC_RELEASE);
	} while (!done);	/* one more harvest after the thread finished */
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(total, hw.sets, "harvested %ld, CPU made %ld", total, hw.sets);
	cr_assert_geq(hw.sets, S2T_HW_SETS);
	s2t_teardown(&pt);
}

Test(stage2, concurrent_dirty_npt) { s2t_concurrent(&s2_fmt_npt); }
Test(stage2, concurrent_dirty_ept) { s2t_concurrent(&s2_fmt_ept); }
