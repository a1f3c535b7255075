/*
 * Dirty page bitmap: one bit per 4 KiB guest page of [base_gpa,
 * base_gpa + npages * 4K).
 *
 * Producers (NPF write faults in write-protect mode, PML drains, D-bit
 * harvests via dirtymap_mark_bits) set bits with atomic OR from any CPU;
 * the migration sender takes them with dirtymap_harvest, which swaps each
 * word with zero atomically.  A mark racing with a harvest therefore lands
 * in exactly one harvest, this one or the next: never lost, never counted
 * twice.
 *
 * Pure: the caller supplies the storage (dirtymap_bytes(npages) bytes).
 * Padding bits of the last word past npages are never set.
 */
#ifndef TERN_LIB_DIRTYMAP_H
#define TERN_LIB_DIRTYMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dirtymap {
	uint64_t *bits;
	uint64_t npages;
	uint64_t base_gpa;	/* 4 KiB aligned */
};

/* Bytes of storage for npages (whole 64-bit words). */
size_t dirtymap_bytes(uint64_t npages);

/* Attach and zero storage; base_gpa is rounded down to 4 KiB. */
void dirtymap_init(struct dirtymap *m, uint64_t *storage, uint64_t base_gpa,
		   uint64_t npages);

/* Mark the page holding gpa dirty (atomic OR).  0, or -ERANGE outside. */
int dirtymap_mark(struct dirtymap *m, uint64_t gpa);

/*
 * OR a whole bitmap of the same geometry in (bit i = page i), atomically
 * per word; src bits past npages are ignored.
 */
void dirtymap_mark_bits(struct dirtymap *m, const uint64_t *src);

/*
 * Take every dirty bit: out (dirtymap_bytes(npages) bytes, or NULL to just
 * drop them) gets the old words, the map is left clear.  Returns how many
 * pages were dirty.
 */
uint64_t dirtymap_harvest(struct dirtymap *m, uint64_t *out);

/* Dirty pages right now (a snapshot: marks may race with it). */
uint64_t dirtymap_count(const struct dirtymap *m);

/* Is the page holding gpa dirty?  false outside the map. */
bool dirtymap_test(const struct dirtymap *m, uint64_t gpa);

/* Index of the next set bit at or after from, or -1 if none (below npages). */
int64_t dirtymap_next(const uint64_t *bits, uint64_t npages, uint64_t from);

#endif
