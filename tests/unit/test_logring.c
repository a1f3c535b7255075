/* Unit tests for kernel/lib/logring.c (ring buffer of log lines). */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/logring.h"

/* ---- collecting callback ---- */

#define LRT_MAX_LINES 4096

struct lrt_got {
	size_t n;
	uint64_t seq[LRT_MAX_LINES];
	uint64_t ts[LRT_MAX_LINES];
	int level[LRT_MAX_LINES];
	size_t len[LRT_MAX_LINES];
	char text[LRT_MAX_LINES][128];
	const struct logring *ring;	/* text must point into its storage */
};

static void lrt_collect(void *ctx, const struct logring_entry *e)
{
	struct lrt_got *g = ctx;

	cr_assert(g->n < LRT_MAX_LINES);
	if (g->ring) {
		const unsigned char *t = (const unsigned char *)e->text;
		cr_assert(t >= g->ring->buf && t + e->len <= g->ring->buf + g->ring->size,
			  "text not inside the storage");
	}
	g->seq[g->n] = e->seq;
	g->ts[g->n] = e->ts_us;
	g->level[g->n] = e->level;
	g->len[g->n] = e->len;
	memcpy(g->text[g->n], e->text, e->len < 127 ? e->len : 127);
	g->text[g->n][e->len < 127 ? e->len : 127] = '\0';
	g->n++;
}

static struct lrt_got lrt_g;

static size_t lrt_tail(const struct logring *r, size_t n)
{
	memset(&lrt_g, 0, sizeof(lrt_g));
	lrt_g.ring = r;
	return logring_tail(r, n, lrt_collect, &lrt_g);
}

static size_t lrt_since(const struct logring *r, uint64_t seq, size_t max)
{
	memset(&lrt_g, 0, sizeof(lrt_g));
	lrt_g.ring = r;
	return logring_since(r, seq, max, lrt_collect, &lrt_g);
}

static void lrt_push_str(struct logring *r, int level, uint64_t ts, const char *s)
{
	logring_push(r, level, ts, s, strlen(s));
}

/* ---- deterministic behaviour ---- */

Test(logring, empty)
{
	unsigned char st[1024];
	struct logring r;

	logring_init(&r, st, sizeof(st));
	cr_assert_eq(logring_count(&r), 0);
	cr_assert_eq(logring_next_seq(&r), 0);
	cr_assert_eq(logring_first_seq(&r), 0);
	cr_assert_eq(lrt_tail(&r, 10), 0);
	cr_assert_eq(lrt_since(&r, 0, 10), 0);
	cr_assert_eq(lrt_g.n, 0);
}

Test(logring, push_and_read_back)
{
	unsigned char st[1024];
	struct logring r;

	logring_init(&r, st, sizeof(st));
	lrt_push_str(&r, 2, 1000, "first\r\n");
	lrt_push_str(&r, 0, 2000, "second\n\n");
	lrt_push_str(&r, 3, 3000, "");
	lrt_push_str(&r, 300, 4000, "clamped high");
	lrt_push_str(&r, -5, 5000, "clamped low");
	logring_push(&r, 1, 6000, NULL, 99);	/* NULL text: empty line */
	cr_assert_eq(logring_count(&r), 6);
	cr_assert_eq(logring_next_seq(&r), 6);
	cr_assert_eq(lrt_tail(&r, 100), 6);
	cr_assert_str_eq(lrt_g.text[0], "first");
	cr_assert_eq(lrt_g.len[0], 5);
	cr_assert_eq(lrt_g.level[0], 2);
	cr_assert_eq(lrt_g.ts[0], 1000);
	cr_assert_str_eq(lrt_g.text[1], "second");
	cr_assert_eq(lrt_g.len[2], 0);
	cr_assert_eq(lrt_g.level[3], 255);
	cr_assert_eq(lrt_g.level[4], 0);
	cr_assert_eq(lrt_g.len[5], 0);
	for (size_t i = 0; i < 6; i++)
		cr_assert_eq(lrt_g.seq[i], i);
	/* The last N, oldest first. */
	cr_assert_eq(lrt_tail(&r, 2), 2);
	cr_assert_eq(lrt_g.seq[0], 4);
	cr_assert_eq(lrt_g.seq[1], 5);
	cr_assert_eq(lrt_tail(&r, 0), 0);
	/* A NULL callback still counts. */
	cr_assert_eq(logring_tail(&r, 3, NULL, NULL), 3);
}

Test(logring, eviction_order)
{
	unsigned char st[256];	/* 10 bytes of text: 32-byte records, 8 fit */
	struct logring r;
	char line[32];

	logring_init(&r, st, sizeof(st));
	for (int i = 0; i < 8; i++) {
		snprintf(line, sizeof(line), "line %05d", i);
		lrt_push_str(&r, 1, (uint64_t)i, line);
	}
	cr_assert_eq(logring_count(&r), 8);	/* exactly full */
	snprintf(line, sizeof(line), "line %05d", 8);
	lrt_push_str(&r, 1, 8, line);
	cr_assert_eq(logring_count(&r), 8);
	cr_assert_eq(logring_first_seq(&r), 1);
	for (int i = 9; i < 100; i++) {
		snprintf(line, sizeof(line), "line %05d", i);
		lrt_push_str(&r, 1, (uint64_t)i, line);
		cr_assert_eq(logring_count(&r), 8);
		cr_assert_eq(lrt_tail(&r, 8), 8);
		for (int k = 0; k < 8; k++) {
			char want[16];
			snprintf(want, sizeof(want), "line %05d", i - 7 + k);
			cr_assert_str_eq(lrt_g.text[k], want);
			cr_assert_eq(lrt_g.seq[k], (uint64_t)(i - 7 + k));
			cr_assert_eq(lrt_g.ts[k], (uint64_t)(i - 7 + k));
		}
	}
}

Test(logring, huge_lines_truncated)
{
	static unsigned char st[1024];
	struct logring r;
	char big[2000];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	logring_init(&r, st, sizeof(st));
	cr_assert_eq(r.max_text, 1024 / 4 - 16);
	logring_push(&r, 1, 1, big, sizeof(big));
	logring_push(&r, 1, 2, big, r.max_text + 1);
	logring_push(&r, 1, 3, big, r.max_text);
	cr_assert_eq(logring_count(&r), 3);
	cr_assert_eq(lrt_tail(&r, 3), 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(lrt_g.len[i], r.max_text);
		cr_assert(memcmp(lrt_g.text[i], big, 127) == 0);
	}
	/* Four maximal records fill the ring exactly; a fifth evicts one. */
	logring_push(&r, 1, 4, big, sizeof(big));
	cr_assert_eq(logring_count(&r), 4);
	logring_push(&r, 1, 5, big, sizeof(big));
	cr_assert_eq(logring_count(&r), 4);
	cr_assert_eq(logring_first_seq(&r), 1);
}

Test(logring, since_and_gaps)
{
	unsigned char st[512];
	struct logring r;
	char line[32];

	logring_init(&r, st, sizeof(st));
	for (int i = 0; i < 5; i++) {
		snprintf(line, sizeof(line), "l%d", i);
		lrt_push_str(&r, 1, 0, line);
	}
	cr_assert_eq(lrt_since(&r, 3, 10), 2);
	cr_assert_eq(lrt_g.seq[0], 3);
	cr_assert_str_eq(lrt_g.text[1], "l4");
	cr_assert_eq(lrt_since(&r, 0, 2), 2);	/* max honoured */
	cr_assert_eq(lrt_g.seq[1], 1);
	cr_assert_eq(lrt_since(&r, 5, 10), 0);	/* up to date */
	cr_assert_eq(lrt_since(&r, 999, 10), 0);	/* from the future */
	cr_assert_eq(lrt_since(&r, 0, 0), 0);

	/* Push enough to evict: a follower at seq 2 sees the gap. */
	for (int i = 5; i < 200; i++) {
		snprintf(line, sizeof(line), "l%d", i);
		lrt_push_str(&r, 1, 0, line);
	}
	uint64_t first = logring_first_seq(&r);
	cr_assert_gt(first, 2);
	cr_assert_eq(lrt_since(&r, 2, 1), 1);
	cr_assert_eq(lrt_g.seq[0], first);
	snprintf(line, sizeof(line), "l%llu", (unsigned long long)first);
	cr_assert_str_eq(lrt_g.text[0], line);
	cr_assert_eq(lrt_since(&r, 2, 100000), logring_count(&r));
	cr_assert_eq(lrt_g.seq[lrt_g.n - 1], 199);
}

Test(logring, tiny_storage_keeps_nothing)
{
	unsigned char st[LOGRING_MIN_SIZE - 1];
	struct logring r;

	logring_init(&r, st, sizeof(st));
	lrt_push_str(&r, 1, 1, "x");
	lrt_push_str(&r, 1, 2, "y");
	cr_assert_eq(logring_count(&r), 0);
	cr_assert_eq(logring_next_seq(&r), 2);
	cr_assert_eq(logring_first_seq(&r), 2);
	cr_assert_eq(lrt_tail(&r, 5), 0);
	cr_assert_eq(lrt_since(&r, 0, 5), 0);
	logring_init(&r, NULL, 4096);
	lrt_push_str(&r, 1, 1, "x");
	cr_assert_eq(logring_count(&r), 0);
}

Test(logring, unaligned_storage)
{
	static unsigned char raw[1024 + 16];
	struct logring r;

	for (int shift = 1; shift < 8; shift++) {
		logring_init(&r, raw + shift, 1000 + (size_t)shift);
		cr_assert_eq(r.size % 8, 0);
		for (int i = 0; i < 300; i++) {
			char line[32];
			int n = snprintf(line, sizeof(line), "u%d-%d", shift, i);
			logring_push(&r, 1, (uint64_t)i * 7, line, (size_t)n);
		}
		cr_assert_eq(lrt_tail(&r, 1), 1);
		cr_assert_eq(lrt_g.ts[0], 299 * 7);
		char want[32];
		snprintf(want, sizeof(want), "u%d-299", shift);
		cr_assert_str_eq(lrt_g.text[0], want);
	}
}

/* ---- a reference model: every line ever pushed, with its stored form ---- */

struct lrt_model {
	size_t n;
	size_t len[200000];
	uint32_t seed[200000];	/* text regenerated from (seed, len) */
};

static void lrt_fill(char *buf, uint32_t seed, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (char)(0x21 + (seed >> 16) % 94);
	}
}

/* Everything held must be exactly the newest count lines, in order. */
static void lrt_check_model(const struct logring *r, const struct lrt_model *m,
			    size_t max_text)
{
	static char want[4096];
	uint64_t count = logring_count(r);

	cr_assert_eq(logring_next_seq(r), m->n);
	cr_assert(count <= m->n);
	cr_assert_eq(logring_first_seq(r), m->n - count);
	memset(&lrt_g, 0, sizeof(lrt_g));
	lrt_g.ring = r;
	cr_assert(count <= LRT_MAX_LINES);
	cr_assert_eq(logring_tail(r, (size_t)count + 5, lrt_collect, &lrt_g), count);
	size_t bytes = 0;
	for (size_t i = 0; i < count; i++) {
		size_t idx = m->n - count + i;
		size_t want_len = m->len[idx] < max_text ? m->len[idx] : max_text;

		cr_assert_eq(lrt_g.seq[i], idx);
		cr_assert_eq(lrt_g.len[i], want_len, "seq %zu", idx);
		cr_assert_eq(lrt_g.ts[i], idx * 3);
		lrt_fill(want, m->seed[idx], want_len);
		size_t cmp = want_len < 127 ? want_len : 127;
		cr_assert(memcmp(lrt_g.text[i], want, cmp) == 0, "text of seq %zu", idx);
		bytes += (16 + want_len + 7) & ~(size_t)7;
	}
	cr_assert(bytes <= r->size, "holds more than the storage");
	/* Eviction only happens for lack of space: the ring stays well used.
	 * A wrap wastes less than one record, the eviction that made room
	 * for the newest line freed at most one more. */
	if (count < m->n)
		cr_assert(bytes + 3 * (16 + max_text) >= r->size,
			  "only %zu of %zu bytes used", bytes, r->size);
}

static uint64_t lrt_rng_state;

static uint32_t lrt_rand(void)
{
	lrt_rng_state = lrt_rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(lrt_rng_state >> 33);
}

static void lrt_model_push(struct logring *r, struct lrt_model *m, size_t len)
{
	static char text[4096];
	uint32_t seed = lrt_rand();

	cr_assert(m->n < sizeof(m->len) / sizeof(m->len[0]));
	lrt_fill(text, seed, len);
	m->len[m->n] = len;
	m->seed[m->n] = seed;
	logring_push(r, (int)(m->n % 4), m->n * 3, text, len);
	m->n++;
}

/* Put tail at every 8-byte offset (so the end-of-storage gap takes every
 * size when the records wrap), then push mixed lines across the end. */
Test(logring, wrap_at_every_offset)
{
	static unsigned char st[512];
	static struct lrt_model m;
	struct logring r;

	lrt_rng_state = 5;
	for (size_t start = 0; start < sizeof(st); start += 8) {
		/* From empty, 24 + 16k and 16k reach every offset but 8. */
		if (start == 8)
			continue;
		memset(st, 0xee, sizeof(st));
		logring_init(&r, st, sizeof(st));
		m.n = 0;
		/* One 24-byte record when start is not a multiple of 16, then
		 * empty 16-byte records, puts tail exactly at start. */
		size_t at = 0;
		if (start % 16) {
			lrt_model_push(&r, &m, 1);
			at = 24;
		}
		while (at < start) {
			lrt_model_push(&r, &m, 0);
			at += 16;
		}
		cr_assert_eq(r.tail, start % sizeof(st));
		for (int k = 0; k < 60; k++) {
			lrt_model_push(&r, &m, lrt_rand() % (r.max_text + 10));
			lrt_check_model(&r, &m, r.max_text);
		}
	}
}

Test(logring, fuzz_against_model)
{
	static unsigned char st[4096 + 8];
	static struct lrt_model m;
	struct logring r;
	const size_t sizes[] = { 256, 264, 1000, 4096 };

	lrt_rng_state = 77;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		logring_init(&r, st, sizes[s]);
		m.n = 0;
		for (int i = 0; i < 12000; i++) {
			uint32_t pick = lrt_rand() % 16;
			size_t len = pick < 10 ? lrt_rand() % 40
				   : pick < 15 ? lrt_rand() % (r.max_text + 1)
				   : r.max_text + lrt_rand() % 100;
			lrt_model_push(&r, &m, len);
			/* A full check is O(count): do it often, not always. */
			if (i % 7 == 0 || i < 200)
				lrt_check_model(&r, &m, r.max_text);
			uint64_t want = lrt_rand() % (m.n + 3);
			size_t got = logring_since(&r, want, 3, NULL, NULL);
			uint64_t first = logring_first_seq(&r);
			uint64_t from = want < first ? first : want;
			uint64_t avail = from < m.n ? m.n - from : 0;
			cr_assert_eq(got, avail < 3 ? avail : 3);
		}
		lrt_check_model(&r, &m, r.max_text);
	}
}
