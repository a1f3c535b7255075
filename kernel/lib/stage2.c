/*
 * Stage-2 paging engine for NPT and EPT.  See stage2.h for the contract.
 *
 * Every range operation goes through one recursive walker, s2_range(),
 * which cuts the range at entry boundaries and hands each piece to
 * s2_entry(); what differs between map, unmap, protect, split and the
 * dirty-bit operations is only the per-entry decision.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/bitops.h"
#include "kernel/lib/stage2.h"

/* AMD APM Vol. 2 15.25 (and 5.3): NPT entries are long-mode entries. */
#define NPT_P		(1ull << 0)
#define NPT_RW		(1ull << 1)
#define NPT_US		(1ull << 2)
#define NPT_PWT		(1ull << 3)
#define NPT_PCD		(1ull << 4)
#define NPT_A		(1ull << 5)
#define NPT_D		(1ull << 6)
#define NPT_PS		(1ull << 7)	/* 2M in a PDE, 1G in a PDPTE */
#define NPT_NX		(1ull << 63)	/* honoured since the host runs EFER.NXE=1 */

/* Intel SDM Vol. 3C 29.3.2: EPT entries. */
#define EPT_R		(1ull << 0)
#define EPT_W		(1ull << 1)
#define EPT_X		(1ull << 2)
#define EPT_PS		(1ull << 7)
#define EPT_A		(1ull << 8)	/* only with EPTP bit 6 (29.3.5) */
#define EPT_D		(1ull << 9)	/* leaves only */

#define S2_ADDR_MASK	0x000ffffffffff000ull	/* bits 51:12 */
#define S2_ROOT_LEVEL	(S2_LEVELS - 1)

const struct s2_format s2_fmt_npt = {
	.name = "npt",
	.bit_r = NPT_P, .bit_w = NPT_RW, .bit_x = 0,
	.x_is_nx = true, .bit_nx = NPT_NX,
	/* US must be 1: nested walks count as user accesses (APM Vol. 2 15.25). */
	.always = NPT_P | NPT_US,
	.bit_large = NPT_PS, .bit_a = NPT_A, .bit_d = NPT_D,
	.nonleaf = NPT_P | NPT_RW | NPT_US,
	.memtype_shift = -1,
	.addr_mask = S2_ADDR_MASK,
	.has_1g = true, .has_ad = true,
	.present = NPT_P,
	.bit_pwt = NPT_PWT, .bit_pcd = NPT_PCD,
};

const struct s2_format s2_fmt_ept = {
	.name = "ept",
	.bit_r = EPT_R, .bit_w = EPT_W, .bit_x = EPT_X,
	.x_is_nx = false, .bit_nx = 0,
	.always = 0,
	.bit_large = EPT_PS, .bit_a = EPT_A, .bit_d = EPT_D,
	.nonleaf = EPT_R | EPT_W | EPT_X,
	.memtype_shift = 3,	/* bits 5:3 of leaves (29.3.7) */
	.addr_mask = S2_ADDR_MASK,
	.has_1g = true, .has_ad = true,
	/* 29.3.2: an entry is present if any of bits 2:0 is set. */
	.present = EPT_R | EPT_W | EPT_X,
};

/* EPT with EPTP bit 6 clear: bits 8 and 9 are ignored by the CPU. */
const struct s2_format s2_fmt_ept_noad = {
	.name = "ept-noad",
	.bit_r = EPT_R, .bit_w = EPT_W, .bit_x = EPT_X,
	.x_is_nx = false, .bit_nx = 0,
	.always = 0,
	.bit_large = EPT_PS, .bit_a = 0, .bit_d = 0,
	.nonleaf = EPT_R | EPT_W | EPT_X,
	.memtype_shift = 3,
	.addr_mask = S2_ADDR_MASK,
	.has_1g = true, .has_ad = false,
	.present = EPT_R | EPT_W | EPT_X,
};

enum s2_op_kind { S2_OP_MAP, S2_OP_UNMAP, S2_OP_PERM, S2_OP_SPLIT, S2_OP_DIRTY };

/* One range operation; hpa and bitmap positions are relative to gpa0. */
struct s2_op {
	enum s2_op_kind kind;
	uint64_t gpa0;
	uint64_t hpa0;		/* MAP */
	unsigned perm;		/* MAP */
	uint64_t mtbits;	/* MAP: encoded memory type */
	unsigned flags;		/* MAP */
	unsigned clr, set;	/* PERM: new = (old & ~clr) | set */
	uint64_t *bitmap;	/* DIRTY: NULL only clears */
	long count;		/* PERM: pages changed; DIRTY: bits newly set */
};

static uint64_t s2_lsize(int level)
{
	return 1ull << (S2_PAGE_SHIFT + 9 * level);
}

static unsigned s2_index(uint64_t gpa, int level)
{
	return (unsigned)(gpa >> (S2_PAGE_SHIFT + 9 * level)) & (S2_ENTRIES - 1);
}

/* Entries are read and written atomically: the CPU sets A/D concurrently. */
static uint64_t s2_ld(const uint64_t *ep)
{
	return __atomic_load_n(ep, __ATOMIC_RELAXED);
}

/* Release: a table's contents are visible before the entry pointing at it. */
static void s2_st(uint64_t *ep, uint64_t v)
{
	__atomic_store_n(ep, v, __ATOMIC_RELEASE);
}

static bool s2_present(const struct s2_format *f, uint64_t e)
{
	return (e & f->present) != 0;
}

/* Bit 7 is PAT, not PS, in an NPT PTE; the root level never maps pages. */
static bool s2_is_leaf(const struct s2_format *f, uint64_t e, int level)
{
	return level == 0 || (level < S2_ROOT_LEVEL && (e & f->bit_large));
}

static uint64_t s2_leaf_addr(const struct s2_format *f, uint64_t e, int level)
{
	return e & f->addr_mask & ~(s2_lsize(level) - 1);
}

static uint64_t *s2_table_of(const struct s2_pt *pt, uint64_t e)
{
	return pt->mm.p2v(pt->mm.ctx, e & pt->fmt->addr_mask);
}

static uint64_t s2_perm_mask(const struct s2_format *f)
{
	return f->bit_r | f->bit_w | f->bit_x | f->bit_nx;
}

static uint64_t s2_perm_bits(const struct s2_format *f, unsigned perm)
{
	uint64_t b = 0;

	if (perm & S2_R)
		b |= f->bit_r;
	if (perm & S2_W)
		b |= f->bit_w;
	if (f->x_is_nx) {
		if (!(perm & S2_X))
			b |= f->bit_nx;
	} else if (perm & S2_X) {
		b |= f->bit_x;
	}
	return b;
}

unsigned s2_leaf_perm(const struct s2_format *f, uint64_t e)
{
	unsigned p = 0;

	if (e & f->bit_r)
		p |= S2_R;
	if (e & f->bit_w)
		p |= S2_W;
	if (f->x_is_nx ? !(e & f->bit_nx) : (e & f->bit_x) != 0)
		p |= S2_X;
	return p;
}

unsigned s2_leaf_memtype(const struct s2_format *f, uint64_t e)
{
	if (f->memtype_shift >= 0)
		return (unsigned)(e >> f->memtype_shift) & 7;
	if (e & f->bit_pcd)
		return S2_MT_UC;
	return (e & f->bit_pwt) ? S2_MT_WT : S2_MT_WB;
}

/* Encode a memory type, or -EINVAL if the format cannot express it. */
static int s2_memtype_bits(const struct s2_format *f, unsigned mt, uint64_t *bits)
{
	if (f->memtype_shift >= 0) {
		/* 29.3.7: 2, 3 and 7 are reserved (a misconfiguration). */
		if (mt != S2_MT_UC && mt != S2_MT_WC && mt != S2_MT_WT &&
		    mt != S2_MT_WP && mt != S2_MT_WB)
			return -EINVAL;
		*bits = (uint64_t)mt << f->memtype_shift;
		return 0;
	}
	/* Default PAT: index 0 WB, 1 WT (PWT), 3 UC (PCD|PWT); APM Vol. 2 7.8. */
	switch (mt) {
	case S2_MT_WB:
		*bits = 0;
		return 0;
	case S2_MT_WT:
		*bits = f->bit_pwt;
		return 0;
	case S2_MT_UC:
		*bits = f->bit_pwt | f->bit_pcd;
		return 0;
	default:
		return -EINVAL;
	}
}

/* A permission set a leaf may hold: never EPT W-without-R (29.3.3.1). */
static bool s2_perm_ok(const struct s2_format *f, unsigned perm)
{
	if (perm == 0 || (perm & ~(unsigned)S2_RWX))
		return false;
	if ((perm & S2_W) && !(perm & S2_R))
		return false;
	/* A present NPT entry is always readable. */
	if (f->x_is_nx && !(perm & S2_R))
		return false;
	return true;
}

static bool s2_range_ok(uint64_t gpa, uint64_t size)
{
	if (size == 0 || ((gpa | size) & (S2_PAGE_SIZE - 1)))
		return false;
	return gpa < S2_GPA_LIMIT && size <= S2_GPA_LIMIT - gpa;
}

static bool s2_pt_ok(const struct s2_pt *pt)
{
	return pt && pt->fmt && pt->root && pt->mm.p2v;
}

static uint64_t *s2_alloc(struct s2_pt *pt, uint64_t *phys)
{
	uint64_t *t = pt->mm.alloc_table(pt->mm.ctx, phys);

	if (!t)
		return NULL;
	/* A table the entry format cannot point at is as good as none. */
	if (*phys & ~pt->fmt->addr_mask) {
		pt->mm.free_table(pt->mm.ctx, t, *phys);
		return NULL;
	}
	pt->tables++;
	return t;
}

/* Free the table a present non-leaf entry e at level points to, recursively. */
static void s2_free_sub(struct s2_pt *pt, uint64_t e, int level)
{
	const struct s2_format *f = pt->fmt;
	uint64_t phys = e & f->addr_mask;
	uint64_t *t = s2_table_of(pt, e);

	if (!t)
		return;	/* not ours: never touch it */
	for (unsigned i = 0; i < S2_ENTRIES && level - 1 > 0; i++) {
		uint64_t c = s2_ld(&t[i]);

		if (s2_present(f, c) && !s2_is_leaf(f, c, level - 1))
			s2_free_sub(pt, c, level - 1);
	}
	pt->mm.free_table(pt->mm.ctx, t, phys);
	pt->tables--;
}

static bool s2_table_empty(const uint64_t *t)
{
	for (unsigned i = 0; i < S2_ENTRIES; i++)
		if (s2_ld(&t[i]))
			return false;
	return true;
}

/* Children of large leaf e at level: same attributes, A/D included. */
static void s2_fill_split(const struct s2_format *f, uint64_t *t, uint64_t e, int level)
{
	int cl = level - 1;
	uint64_t base = s2_leaf_addr(f, e, level);
	uint64_t keep = e & ~f->addr_mask & ~f->bit_large;
	uint64_t large = cl > 0 ? f->bit_large : 0;

	for (unsigned i = 0; i < S2_ENTRIES; i++)
		t[i] = keep | large | (base + i * s2_lsize(cl));
}

/*
 * Replace the large leaf at *ep by a table of 512 smaller leaves.  The
 * compare-exchange retries if the CPU set A/D meanwhile, so a D bit set
 * during the split is carried into every child rather than lost.
 */
static int s2_split_entry(struct s2_pt *pt, uint64_t *ep, int level)
{
	uint64_t phys, cur = s2_ld(ep);
	uint64_t *t = s2_alloc(pt, &phys);

	if (!t)
		return -ENOMEM;
	do {
		s2_fill_split(pt->fmt, t, cur, level);
	} while (!__atomic_compare_exchange_n(ep, &cur, phys | pt->fmt->nonleaf,
					      false, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	/* The old large translation may be cached (and cached dirty). */
	pt->need_flush = true;
	return 0;
}

/* Set bits [first, first + n) of bitmap; return how many were clear. */
static uint64_t s2_bits_set(uint64_t *bitmap, uint64_t first, uint64_t n)
{
	uint64_t added = 0;

	while (n) {
		uint64_t bit = first % 64, k = 64 - bit < n ? 64 - bit : n;
		uint64_t m = (k == 64 ? ~0ull : (1ull << k) - 1) << bit;
		uint64_t *w = &bitmap[first / 64];

		added += bit_popcount64(~*w & m);
		*w |= m;
		first += k;
		n -= k;
	}
	return added;
}

static int s2_range(struct s2_pt *pt, struct s2_op *op, uint64_t *table,
		    int level, uint64_t gpa, uint64_t end);

/*
 * Go one level down below *ep for [gpa, end): a hole gets a new table (map
 * only), a large leaf is split first.  Tables left empty by unmap, or by a
 * map that failed half way, are freed so none but the root is ever empty.
 */
static int s2_descend(struct s2_pt *pt, struct s2_op *op, uint64_t *ep,
		      int level, uint64_t gpa, uint64_t end)
{
	const struct s2_format *f = pt->fmt;
	uint64_t e = s2_ld(ep), phys;
	uint64_t *child;
	int ret;

	if (!s2_present(f, e)) {
		if (op->kind != S2_OP_MAP)
			return 0;
		child = s2_alloc(pt, &phys);
		if (!child)
			return -ENOMEM;
		s2_st(ep, phys | f->nonleaf);
	} else if (s2_is_leaf(f, e, level)) {
		ret = s2_split_entry(pt, ep, level);
		if (ret)
			return ret;
	}
	e = s2_ld(ep);
	child = s2_table_of(pt, e);
	if (!child)
		return -EFAULT;
	ret = s2_range(pt, op, child, level - 1, gpa, end);
	if ((op->kind == S2_OP_UNMAP || ret) && s2_table_empty(child)) {
		s2_st(ep, 0);
		s2_free_sub(pt, e, level);
		pt->need_flush = true;
	}
	return ret;
}

static bool s2_map_leaf_ok(const struct s2_pt *pt, unsigned flags, int level)
{
	if (level == 0)
		return true;
	if (level == 1)
		return flags & S2_ALLOW_2M;
	return level == 2 && (flags & S2_ALLOW_1G) && pt->fmt->has_1g;
}

static int s2_do_map(struct s2_pt *pt, struct s2_op *op, uint64_t *ep,
		     int level, uint64_t gpa, uint64_t end, bool whole)
{
	const struct s2_format *f = pt->fmt;
	uint64_t hpa = op->hpa0 + (gpa - op->gpa0), nw, old;

	if (!whole || !s2_map_leaf_ok(pt, op->flags, level) ||
	    (hpa & (s2_lsize(level) - 1)))
		return s2_descend(pt, op, ep, level, gpa, end);
	nw = (hpa & f->addr_mask) | f->always | s2_perm_bits(f, op->perm) |
	     op->mtbits | (level ? f->bit_large : 0);
	old = __atomic_exchange_n(ep, nw, __ATOMIC_ACQ_REL);
	if (s2_present(f, old)) {
		if (old != nw)
			pt->need_flush = true;
		if (!s2_is_leaf(f, old, level))
			s2_free_sub(pt, old, level);
	}
	return 0;
}

static int s2_do_unmap(struct s2_pt *pt, struct s2_op *op, uint64_t *ep,
		       int level, uint64_t gpa, uint64_t end, bool whole)
{
	uint64_t old;

	if (!whole)
		return s2_descend(pt, op, ep, level, gpa, end);
	old = __atomic_exchange_n(ep, 0, __ATOMIC_ACQ_REL);
	pt->need_flush = true;
	if (!s2_is_leaf(pt->fmt, old, level))
		s2_free_sub(pt, old, level);
	return 0;
}

static int s2_do_perm(struct s2_pt *pt, struct s2_op *op, uint64_t *ep,
		      int level, uint64_t gpa, uint64_t end, bool whole)
{
	const struct s2_format *f = pt->fmt;
	uint64_t cur = s2_ld(ep), nw;
	unsigned perm;

	if (!s2_is_leaf(f, cur, level))
		return s2_descend(pt, op, ep, level, gpa, end);
	perm = (s2_leaf_perm(f, cur) & ~op->clr) | op->set;
	if (perm == s2_leaf_perm(f, cur))
		return 0;	/* nothing to change: no split either */
	if (!whole)
		return s2_descend(pt, op, ep, level, gpa, end);
	/* Compare-exchange keeps a D bit the CPU sets meanwhile. */
	do {
		nw = (cur & ~s2_perm_mask(f)) | s2_perm_bits(f, perm);
	} while (!__atomic_compare_exchange_n(ep, &cur, nw, false,
					      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
	pt->need_flush = true;
	op->count += (long)((end - gpa) >> S2_PAGE_SHIFT);
	return 0;
}

static int s2_do_dirty(struct s2_pt *pt, struct s2_op *op, uint64_t *ep,
		       int level, uint64_t gpa, uint64_t end, bool whole)
{
	const struct s2_format *f = pt->fmt;
	uint64_t e = s2_ld(ep);

	if (!s2_is_leaf(f, e, level))
		return s2_descend(pt, op, ep, level, gpa, end);
	if (!(e & f->bit_d))
		return 0;
	/* A partly covered large leaf keeps D: pages outside still need it. */
	if (whole) {
		if (!(__atomic_fetch_and(ep, ~f->bit_d, __ATOMIC_ACQ_REL) & f->bit_d))
			return 0;
		pt->need_flush = true;
	}
	if (op->bitmap)
		op->count += (long)s2_bits_set(op->bitmap,
					       (gpa - op->gpa0) >> S2_PAGE_SHIFT,
					       (end - gpa) >> S2_PAGE_SHIFT);
	return 0;
}

/* One entry's share [gpa, end) of the operation. */
static int s2_entry(struct s2_pt *pt, struct s2_op *op, uint64_t *ep,
		    int level, uint64_t gpa, uint64_t end)
{
	uint64_t sz = s2_lsize(level);
	bool whole = !(gpa & (sz - 1)) && end - gpa == sz;

	if (op->kind == S2_OP_MAP)
		return s2_do_map(pt, op, ep, level, gpa, end, whole);
	if (!s2_present(pt->fmt, s2_ld(ep)))
		return 0;
	switch (op->kind) {
	case S2_OP_UNMAP:
		return s2_do_unmap(pt, op, ep, level, gpa, end, whole);
	case S2_OP_PERM:
		return s2_do_perm(pt, op, ep, level, gpa, end, whole);
	case S2_OP_SPLIT:
		if (level == 0)
			return 0;
		return s2_descend(pt, op, ep, level, gpa, end);
	case S2_OP_DIRTY:
		return s2_do_dirty(pt, op, ep, level, gpa, end, whole);
	default:
		return -EINVAL;
	}
}

/* Apply op to [gpa, end), which lies inside the table at level. */
static int s2_range(struct s2_pt *pt, struct s2_op *op, uint64_t *table,
		    int level, uint64_t gpa, uint64_t end)
{
	uint64_t sz = s2_lsize(level);

	while (gpa < end) {
		uint64_t next = (gpa & ~(sz - 1)) + sz;
		uint64_t stop = next < end ? next : end;
		int ret = s2_entry(pt, op, &table[s2_index(gpa, level)], level,
				   gpa, stop);

		if (ret)
			return ret;
		gpa = stop;
	}
	return 0;
}

static int s2_run(struct s2_pt *pt, struct s2_op *op, uint64_t gpa, uint64_t size)
{
	if (!s2_pt_ok(pt) || !s2_range_ok(gpa, size))
		return -EINVAL;
	op->gpa0 = gpa;
	return s2_range(pt, op, pt->root, S2_ROOT_LEVEL, gpa, gpa + size);
}

int s2_init(struct s2_pt *pt, const struct s2_format *fmt, const struct s2_mm *mm)
{
	if (!pt || !fmt || !mm || !mm->alloc_table || !mm->free_table || !mm->p2v)
		return -EINVAL;
	memset(pt, 0, sizeof(*pt));
	pt->fmt = fmt;
	pt->mm = *mm;
	pt->root = s2_alloc(pt, &pt->root_phys);
	if (!pt->root)
		return -ENOMEM;
	return 0;
}

void s2_destroy(struct s2_pt *pt)
{
	if (!s2_pt_ok(pt))
		return;
	/* The root is a non-leaf "entry" one level above the top. */
	s2_free_sub(pt, pt->root_phys | pt->fmt->nonleaf, S2_LEVELS);
	pt->root = NULL;
	pt->root_phys = 0;
}

int s2_map(struct s2_pt *pt, uint64_t gpa, uint64_t hpa, uint64_t size,
	   unsigned perm, unsigned memtype, unsigned flags)
{
	struct s2_op op = { .kind = S2_OP_MAP, .hpa0 = hpa, .perm = perm,
			    .flags = flags };

	if (!s2_pt_ok(pt) || !s2_perm_ok(pt->fmt, perm))
		return -EINVAL;
	if (flags & ~(unsigned)(S2_ALLOW_2M | S2_ALLOW_1G))
		return -EINVAL;
	if (s2_memtype_bits(pt->fmt, memtype, &op.mtbits))
		return -EINVAL;
	if ((hpa & (S2_PAGE_SIZE - 1)) || (hpa & ~pt->fmt->addr_mask) ||
	    size > pt->fmt->addr_mask - hpa + S2_PAGE_SIZE)
		return -EINVAL;
	return s2_run(pt, &op, gpa, size);
}

int s2_unmap(struct s2_pt *pt, uint64_t gpa, uint64_t size)
{
	struct s2_op op = { .kind = S2_OP_UNMAP };

	return s2_run(pt, &op, gpa, size);
}

int s2_protect(struct s2_pt *pt, uint64_t gpa, uint64_t size, unsigned perm)
{
	struct s2_op op = { .kind = S2_OP_PERM, .clr = S2_RWX, .set = perm };

	if (!s2_pt_ok(pt) || !s2_perm_ok(pt->fmt, perm))
		return -EINVAL;
	return s2_run(pt, &op, gpa, size);
}

int s2_split(struct s2_pt *pt, uint64_t gpa, uint64_t size)
{
	struct s2_op op = { .kind = S2_OP_SPLIT };

	return s2_run(pt, &op, gpa, size);
}

int s2_lookup_entry(const struct s2_pt *pt, uint64_t gpa, uint64_t *entry,
		    int *level)
{
	const uint64_t *t;

	if (!s2_pt_ok(pt) || gpa >= S2_GPA_LIMIT)
		return -EINVAL;
	t = pt->root;
	for (int l = S2_ROOT_LEVEL; l >= 0; l--) {
		uint64_t e = s2_ld(&t[s2_index(gpa, l)]);

		if (!s2_present(pt->fmt, e))
			return -ENOENT;
		if (s2_is_leaf(pt->fmt, e, l)) {
			if (entry)
				*entry = e;
			if (level)
				*level = l;
			return 0;
		}
		t = s2_table_of(pt, e);
		if (!t)
			return -EFAULT;
	}
	return -EFAULT;	/* not reached: level 0 is always a leaf */
}

int s2_lookup(const struct s2_pt *pt, uint64_t gpa, uint64_t *hpa,
	      unsigned *perm, int *level, bool *dirty)
{
	uint64_t e;
	int l, ret = s2_lookup_entry(pt, gpa, &e, &l);

	if (ret)
		return ret;
	if (hpa)
		*hpa = s2_leaf_addr(pt->fmt, e, l) | (gpa & (s2_lsize(l) - 1));
	if (perm)
		*perm = s2_leaf_perm(pt->fmt, e);
	if (level)
		*level = l;
	if (dirty)
		*dirty = (e & pt->fmt->bit_d) != 0;
	return 0;
}

long s2_harvest_dirty(struct s2_pt *pt, uint64_t gpa, uint64_t size,
		      uint64_t *bitmap)
{
	struct s2_op op = { .kind = S2_OP_DIRTY, .bitmap = bitmap };
	int ret;

	if (!s2_pt_ok(pt) || !bitmap)
		return -EINVAL;
	if (!pt->fmt->has_ad)
		return -EOPNOTSUPP;
	ret = s2_run(pt, &op, gpa, size);
	return ret ? ret : op.count;
}

int s2_clear_dirty_all(struct s2_pt *pt, uint64_t gpa, uint64_t size)
{
	struct s2_op op = { .kind = S2_OP_DIRTY };

	if (!s2_pt_ok(pt))
		return -EINVAL;
	if (!pt->fmt->has_ad)
		return -EOPNOTSUPP;
	return s2_run(pt, &op, gpa, size);
}

/* Index of the first bit in [from, n) equal to val, or n. */
static uint64_t s2_find_bit(const uint64_t *bm, uint64_t from, uint64_t n, bool val)
{
	while (from < n) {
		uint64_t w = val ? bm[from / 64] : ~bm[from / 64];

		w &= ~0ull << (from % 64);
		if (w) {
			uint64_t i = from - from % 64 + (uint64_t)__builtin_ctzll(w);

			return i < n ? i : n;
		}
		from = from - from % 64 + 64;
	}
	return n;
}

long s2_write_protect_bitmap(struct s2_pt *pt, uint64_t gpa,
			     const uint64_t *bitmap, uint64_t npages)
{
	struct s2_op op = { .kind = S2_OP_PERM, .clr = S2_W };
	uint64_t i = 0;

	if (!s2_pt_ok(pt) || !bitmap || npages > S2_GPA_LIMIT >> S2_PAGE_SHIFT)
		return -EINVAL;
	if (npages == 0)
		return 0;
	if (!s2_range_ok(gpa, npages << S2_PAGE_SHIFT))
		return -EINVAL;
	/* One protect per run of set bits, so large pages split only at edges. */
	while ((i = s2_find_bit(bitmap, i, npages, true)) < npages) {
		uint64_t j = s2_find_bit(bitmap, i, npages, false);
		int ret = s2_run(pt, &op, gpa + (i << S2_PAGE_SHIFT),
				 (j - i) << S2_PAGE_SHIFT);

		if (ret)
			return ret;
		i = j;
	}
	return op.count;
}

static int s2_walk_table(const struct s2_pt *pt, const uint64_t *t, int level,
			 uint64_t base,
			 void (*cb)(void *, uint64_t, uint64_t, int, uint64_t),
			 void *ctx)
{
	const struct s2_format *f = pt->fmt;

	for (unsigned i = 0; i < S2_ENTRIES; i++) {
		uint64_t e = s2_ld(&t[i]), gpa = base + i * s2_lsize(level);
		const uint64_t *child;
		int ret;

		if (!s2_present(f, e))
			continue;
		if (s2_is_leaf(f, e, level)) {
			cb(ctx, gpa, s2_leaf_addr(f, e, level), level, e);
			continue;
		}
		child = s2_table_of(pt, e);
		if (!child)
			return -EFAULT;
		ret = s2_walk_table(pt, child, level - 1, gpa, cb, ctx);
		if (ret)
			return ret;
	}
	return 0;
}

int s2_walk(const struct s2_pt *pt,
	    void (*cb)(void *ctx, uint64_t gpa, uint64_t hpa, int level,
		       uint64_t entry),
	    void *ctx)
{
	if (!s2_pt_ok(pt) || !cb)
		return -EINVAL;
	return s2_walk_table(pt, pt->root, S2_ROOT_LEVEL, 0, cb, ctx);
}

uint64_t s2_eptp(const struct s2_pt *pt)
{
	uint64_t eptp = pt->root_phys | 6 | (3 << 3);

	if (pt->fmt->has_ad)
		eptp |= 1ull << 6;
	return eptp;
}
