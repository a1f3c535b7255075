/* The migration-verification shape check (migverify.h). */
#include <errno.h>
#include "kernel/lib/migverify.h"

static int migv_bad(struct migv_result *r, uint64_t i, uint64_t got, uint64_t want)
{
	r->bad_page = i;
	r->bad_value = got;
	r->want = want;
	return -EIO;
}

int migv_check(uint64_t (*get)(void *ctx, uint64_t i), void *ctx, uint64_t n,
	       uint64_t pass, struct migv_result *r)
{
	uint64_t c0, i;

	*r = (struct migv_result){ 0 };
	if (n == 0)
		return -EINVAL;
	c0 = get(ctx, 0);
	r->top = c0;
	/* c0 is the pass in progress, or the last one before its first
	 * store; pass 0 is the zero fill before the first pass. */
	if (c0 != pass && !(pass > 0 && c0 == pass - 1))
		return migv_bad(r, 0, c0, pass);
	for (i = 1; i < n; i++) {
		uint64_t v = get(ctx, i);

		if (v == c0)
			continue;
		if (c0 == 0 || v != c0 - 1 || c0 != pass)
			return migv_bad(r, i, v, c0);
		break;
	}
	r->boundary = i;
	for (; i < n; i++) {
		uint64_t v = get(ctx, i);

		if (v != c0 - 1)
			return migv_bad(r, i, v, c0 - 1);
	}
	return 0;
}
