/*
 * The shape check behind `vm memcheck` for the migration-verification
 * guest (tests/guests/migverify.c).  Pure.
 *
 * The guest writes pass p into the first 8 bytes of every counter page in
 * order, so its pages always read: c0 for pages [0, b) and c0 - 1 for
 * pages [b, n), with 1 <= b <= n, where c0 is the pass being written
 * (header pass P) or, before the pass's first store, P - 1 with b = n.
 * Anything else means a write was lost, came back stale or was torn.
 */
#ifndef TERN_LIB_MIGVERIFY_H
#define TERN_LIB_MIGVERIFY_H

#include <stdint.h>

#define MIGV_MAGIC	0x5946495647494d54ull	/* "TMIGVIFY" */
#define MIGV_HDR_GPA	0x00400000ull

/* The header page the guest keeps at MIGV_HDR_GPA (little-endian). */
struct migv_hdr {
	uint64_t magic;
	uint64_t first;		/* guest-physical address of counter page 0 */
	uint64_t npages;
	uint64_t pass;		/* the pass being written */
	uint64_t page;		/* the next page of that pass */
};

struct migv_result {
	uint64_t boundary;	/* b above */
	uint64_t top;		/* c0 */
	uint64_t bad_page;	/* first page out of shape (when failing) */
	uint64_t bad_value;
	uint64_t want;
};

/*
 * Check n counters read through get(ctx, i) against header pass.
 * 0 when the shape holds, -EIO with r->bad_* filled when not, -EINVAL
 * for n == 0.
 */
int migv_check(uint64_t (*get)(void *ctx, uint64_t i), void *ctx, uint64_t n,
	       uint64_t pass, struct migv_result *r);

#endif
