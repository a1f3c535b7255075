/*
 * The stage-2 (guest-physical to host-physical) paging engine shared by AMD
 * nested paging (NPT) and Intel EPT.  One walker, one set of range
 * operations; the differences between the two live in a struct s2_format.
 *
 * Pure: no hardware access and no locking.  Tables come from the caller's
 * struct s2_mm.  The caller serialises all calls on one s2_pt; the only
 * concurrency the engine allows for is the CPU setting A/D bits in entries
 * while guests run, so every change to a live leaf is an atomic
 * read-modify-write and D bits are never lost by a permission change or a
 * split.
 *
 * Layout (both formats): 4 levels of 512 8-byte entries in 4 KiB tables,
 * output address in bits 51:12; guest-physical addresses below 2^48.
 * Level numbers: 0 = 4 KiB page table, 1 = 2 MiB (PD), 2 = 1 GiB (PDPT),
 * 3 = the root (PML4), which never holds a leaf.
 *
 * Invariants the functions keep, and the unit tests check:
 *  - never an EPT entry with W but not R (SDM Vol. 3C 29.3.3.1: that is an
 *    EPT misconfiguration) and never a present NPT leaf without U/S (APM
 *    Vol. 2 15.25: nested walks are user accesses);
 *  - a present non-leaf entry always points at a live table this engine
 *    allocated; a table is installed only after it is fully written;
 *  - no table other than the root is ever left empty, so unmapping
 *    everything brings tables back to 1;
 *  - need_flush is set whenever an entry that was present changed (other
 *    than by the CPU's own A/D updates).  The caller flushes (INVEPT /
 *    TLB_CONTROL) and clears it.  free_table may defer the actual reuse of
 *    a table until that flush: other CPUs' paging-structure caches may
 *    still point at it.
 */
#ifndef TERN_LIB_STAGE2_H
#define TERN_LIB_STAGE2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S2_LEVELS	4
#define S2_ENTRIES	512
#define S2_PAGE_SHIFT	12
#define S2_PAGE_SIZE	(1ull << S2_PAGE_SHIFT)
#define S2_GPA_LIMIT	(1ull << 48)	/* 4 levels of 9 bits + 12 */

struct s2_format {
	const char *name;
	uint64_t bit_r, bit_w, bit_x;
	bool x_is_nx;		/* NPT: the NX bit set means no-exec */
	uint64_t bit_nx;
	uint64_t always;	/* NPT: P|US on present leaves; EPT: 0 */
	uint64_t bit_large, bit_a, bit_d;
	uint64_t nonleaf;	/* a present non-leaf: NPT P|RW|US, EPT R|W|X */
	int memtype_shift;	/* EPT 3, NPT -1 (NPT uses PWT/PCD below) */
	uint64_t addr_mask;	/* bits 51:12 */
	bool has_1g;
	bool has_ad;
	uint64_t present;	/* NPT: P; EPT: R|W|X (any of them) */
	uint64_t bit_pwt, bit_pcd;	/* NPT memory type; EPT: 0 */
};

extern const struct s2_format s2_fmt_npt, s2_fmt_ept, s2_fmt_ept_noad;

struct s2_mm {
	/* A zeroed 4 KiB-aligned table and its physical address; NULL on OOM. */
	void *(*alloc_table)(void *ctx, uint64_t *phys);
	void (*free_table)(void *ctx, void *va, uint64_t phys);
	/* Virtual address of a table; NULL if phys is not a table we own. */
	void *(*p2v)(void *ctx, uint64_t phys);
	void *ctx;
};

struct s2_pt {
	const struct s2_format *fmt;
	struct s2_mm mm;
	uint64_t root_phys;	/* NPT: nCR3; EPT: see s2_eptp() */
	uint64_t *root;
	bool need_flush;
	uint64_t tables;	/* live tables, root included */
};

enum { S2_R = 1, S2_W = 2, S2_X = 4, S2_RWX = 7 };

/*
 * Memory types, encoded as in EPT leaves (SDM Vol. 3C 29.3.7) and the MTRRs.
 * EPT takes all five.  NPT takes WB, WT and UC only: they come from PWT/PCD
 * selecting PAT entries 0, 1 and 3, whose power-on values are WB, WT and UC
 * (APM Vol. 2 7.8); the host keeps that default PAT.
 */
enum { S2_MT_UC = 0, S2_MT_WC = 1, S2_MT_WT = 4, S2_MT_WP = 5, S2_MT_WB = 6 };

#define S2_ALLOW_2M	1
#define S2_ALLOW_1G	2	/* ignored when !fmt->has_1g */

/* Allocate the root.  -EINVAL for a bad format or mm, -ENOMEM. */
int s2_init(struct s2_pt *pt, const struct s2_format *fmt, const struct s2_mm *mm);

/* Free every table, the root included.  Safe to call twice. */
void s2_destroy(struct s2_pt *pt);

/*
 * Map [gpa, gpa + size) to [hpa, hpa + size), all 4 KiB aligned, size > 0,
 * with the largest page that flags allow and the gpa/hpa/size alignment
 * permits.  perm: nonzero, W needs R, and NPT needs R (a present NPT entry
 * is always readable).  Execute-only EPT needs the CPU capability
 * (IA32_VMX_EPT_VPID_CAP bit 0); checking it is the caller's job.
 * Existing mappings are replaced (their A/D bits are dropped: harvest
 * first), sub-tables they used are freed.  -EINVAL on bad arguments;
 * -ENOMEM may leave the range partly mapped, but the tree consistent.
 */
int s2_map(struct s2_pt *pt, uint64_t gpa, uint64_t hpa, uint64_t size,
	   unsigned perm, unsigned memtype, unsigned flags);

/* Unmap, splitting large pages at the edges (hence -ENOMEM is possible). */
int s2_unmap(struct s2_pt *pt, uint64_t gpa, uint64_t size);

/*
 * Set the permissions of every mapped page in range (holes are skipped).
 * A large page at an edge is split only if its permissions change.
 */
int s2_protect(struct s2_pt *pt, uint64_t gpa, uint64_t size, unsigned perm);

/*
 * Turn every mapped page in range into 4 KiB leaves with the same hpa,
 * permissions and memory type; A/D are copied from the large entry.  Large
 * pages that only overlap the range are split whole.
 */
int s2_split(struct s2_pt *pt, uint64_t gpa, uint64_t size);

/*
 * Translate one gpa: hpa of that byte, permissions, level (0 = 4K, 1 = 2M,
 * 2 = 1G) and the D bit.  Any output pointer may be NULL.  -ENOENT if not
 * mapped, -EFAULT if the tree points at memory p2v does not know.
 */
int s2_lookup(const struct s2_pt *pt, uint64_t gpa, uint64_t *hpa,
	      unsigned *perm, int *level, bool *dirty);

/* As s2_lookup, but the raw leaf entry. */
int s2_lookup_entry(const struct s2_pt *pt, uint64_t gpa, uint64_t *entry,
		    int *level);

/*
 * Dirty harvest over [gpa, gpa + size): test-and-clear the D bit of every
 * leaf inside the range and set bit i of bitmap (which must hold size/4K
 * bits) for page (gpa >> 12) + i.  A dirty large leaf marks all its pages
 * in range and is not split; if it only overlaps the range its D bit is
 * left set (clearing it would lose pages outside the range), so those pages
 * are reported again next time.  Returns the number of bits newly set in
 * bitmap, or -EINVAL / -EOPNOTSUPP (no A/D in this format) / -EFAULT.
 * Sets need_flush when any D bit was cleared: a TLB entry cached with D=1
 * lets later writes through without setting D again, so the caller must
 * flush before the next harvest can be trusted (APM Vol. 2 15.25 / SDM
 * Vol. 3C 29.3.5 and 29.4.3).
 */
long s2_harvest_dirty(struct s2_pt *pt, uint64_t gpa, uint64_t size,
		      uint64_t *bitmap);

/*
 * Write-protect mode: clear W on each page i of [gpa, gpa + npages * 4K)
 * whose bitmap bit is set (splitting large pages only where needed).
 * Returns the number of pages that lost W.
 */
long s2_write_protect_bitmap(struct s2_pt *pt, uint64_t gpa,
			     const uint64_t *bitmap, uint64_t npages);

/* Clear D on every leaf inside the range (same edge rule as harvest). */
int s2_clear_dirty_all(struct s2_pt *pt, uint64_t gpa, uint64_t size);

/* Call cb for every present leaf in gpa order.  0, or -EFAULT. */
int s2_walk(const struct s2_pt *pt,
	    void (*cb)(void *ctx, uint64_t gpa, uint64_t hpa, int level,
		       uint64_t entry),
	    void *ctx);

/* Decode a present leaf entry. */
unsigned s2_leaf_perm(const struct s2_format *fmt, uint64_t entry);
unsigned s2_leaf_memtype(const struct s2_format *fmt, uint64_t entry);

/*
 * EPTP for this tree (SDM Vol. 3C 25.6.11): WB paging-structure memory type
 * (bits 2:0 = 6), walk length 4 (bits 5:3 = 3), bit 6 = A/D enable.
 */
uint64_t s2_eptp(const struct s2_pt *pt);

#endif
