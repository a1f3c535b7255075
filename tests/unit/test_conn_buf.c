/*
 * Unit tests for net/stack/conn_buf.c: the connection helper's output ring
 * and input line splitter.  The file is pure but lives beside conn.c, so it
 * is built here by inclusion.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "net/stack/conn_buf.c"

/* ---- output ring ---- */

/* Drain everything into out, run by run, as conn_push does. */
static size_t cbt_drain(struct conn_ring *r, uint8_t *out, size_t chunk)
{
	size_t got = 0;

	while (r->len) {
		size_t n;
		const uint8_t *p = conn_ring_peek(r, &n);

		cr_assert(n > 0);
		n = n < chunk ? n : chunk;
		memcpy(out + got, p, n);
		conn_ring_drop(r, n);
		got += n;
	}
	return got;
}

Test(conn_ring, fixed_storage_is_bounded_and_all_or_nothing)
{
	uint8_t store[16], out[16];
	struct conn_ring r;

	cr_assert_eq(conn_ring_init(&r, store, 0, sizeof(store)), 0);
	cr_assert_eq(conn_ring_room(&r), 16);
	cr_assert_eq(conn_ring_put(&r, "0123456789", 10), 0);
	cr_assert_eq(conn_ring_put(&r, "abcdefg", 7), -ENOSPC);
	cr_assert_eq(r.len, 10, "a refused put adds nothing");
	cr_assert_eq(conn_ring_put(&r, "abcdef", 6), 0);
	cr_assert_eq(conn_ring_room(&r), 0);
	cr_assert_eq(cbt_drain(&r, out, 16), 16);
	cr_assert_arr_eq(out, "0123456789abcdef", 16);
	conn_ring_free(&r);	/* not owned: must not free store */
}

Test(conn_ring, wraps_and_keeps_order)
{
	uint8_t store[8], out[64];
	struct conn_ring r;
	size_t n;

	conn_ring_init(&r, store, 0, sizeof(store));
	conn_ring_put(&r, "ABCDEF", 6);
	conn_ring_drop(&r, 4);			/* "EF" left at offset 4 */
	cr_assert_eq(conn_ring_put(&r, "123456", 6), 0);
	conn_ring_peek(&r, &n);
	cr_assert_eq(n, 4, "the run stops at the end of the storage");
	cr_assert_eq(cbt_drain(&r, out, 3), 8);
	cr_assert_arr_eq(out, "EF123456", 8);
	cr_assert_eq(r.off, 0, "an empty ring starts over at the front");
}

Test(conn_ring, grows_to_max_and_unwraps)
{
	uint8_t in[9000], out[9000];
	struct conn_ring r;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7);
	cr_assert_eq(conn_ring_init(&r, NULL, 0, 6000), 0);
	cr_assert_null(r.buf, "allocated on the first put");
	cr_assert_eq(conn_ring_put(&r, in, 3000), 0);
	cr_assert_eq(r.cap, 4096);
	conn_ring_drop(&r, 2000);		/* 1000 queued at 2000 */
	cr_assert_eq(conn_ring_put(&r, in + 3000, 2500), 0);	/* wraps: 3500 */
	cr_assert_eq(conn_ring_put(&r, in + 5500, 2000), 0);	/* grows to max */
	cr_assert_eq(r.cap, 6000, "doubling stops at max");
	cr_assert_eq(conn_ring_put(&r, in, 501), -ENOSPC);
	cr_assert_eq(cbt_drain(&r, out, 1000), 5500);
	cr_assert_arr_eq(out, in + 2000, 5500);
	conn_ring_free(&r);
}

Test(conn_ring, reset_forgets)
{
	struct conn_ring r;

	conn_ring_init(&r, NULL, 64, 64);
	cr_assert_not_null(r.buf, "init bytes allocated at once");
	conn_ring_put(&r, "xyz", 3);
	conn_ring_reset(&r);
	cr_assert_eq(r.len, 0);
	cr_assert_eq(conn_ring_room(&r), 64);
	conn_ring_free(&r);
}

/* ---- input lines ---- */

static int cbt_feed_all(struct conn_lines *lb, const char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s), used;
	int rc;

	while (n) {
		rc = conn_lines_feed(lb, p, n, &used);
		if (rc < 0)
			return rc;
		p += used;
		n -= used;
	}
	return 0;
}

Test(conn_lines, keeps_lines_until_taken)
{
	struct conn_lines lb;
	char line[64];

	cr_assert_eq(conn_lines_init(&lb, NULL, 64, 32, false), 0);
	cr_assert_not(conn_lines_ready(&lb));
	cr_assert_eq(cbt_feed_all(&lb, "status\r\nvm list\nparti"), 0);
	cr_assert(conn_lines_ready(&lb));
	cr_assert_eq(conn_lines_take(&lb, line, sizeof(line)), 6);
	cr_assert_str_eq(line, "status", "the CR before LF goes");
	cr_assert_eq(conn_lines_take(&lb, line, sizeof(line)), 7);
	cr_assert_str_eq(line, "vm list");
	cr_assert_eq(conn_lines_take(&lb, line, sizeof(line)), -1, "a part line waits");
	cr_assert_eq(cbt_feed_all(&lb, "al\n"), 0);
	cr_assert_eq(conn_lines_take(&lb, line, sizeof(line)), 7);
	cr_assert_str_eq(line, "partial");
	conn_lines_free(&lb);
}

Test(conn_lines, feed_stops_after_each_line)
{
	struct conn_lines lb;
	size_t used;

	conn_lines_init(&lb, NULL, 64, 32, true);
	cr_assert_eq(conn_lines_feed(&lb, (const uint8_t *)"HELLO 1\nRAWBYTES", 16, &used), 1);
	cr_assert_eq(used, 8, "the bytes after the line are left to the caller");
	cr_assert_str_eq(conn_lines_only(&lb), "HELLO 1");
	cr_assert_eq(lb.len, 0);
	cr_assert_null(conn_lines_only(&lb));
	conn_lines_free(&lb);
}

Test(conn_lines, text_rules)
{
	struct conn_lines lb;
	char store[32];

	conn_lines_init(&lb, store, sizeof(store), 8, false);
	cr_assert_eq(cbt_feed_all(&lb, "a\tb\xc3\xa9\n"), 0, "tab and UTF-8 pass");
	cr_assert_eq(cbt_feed_all(&lb, "x\x01"), -EBADMSG);
	conn_lines_reset(&lb);
	cr_assert_eq(cbt_feed_all(&lb, "\x7f"), -EBADMSG, "DEL is a control byte");
	conn_lines_reset(&lb);
	cr_assert_eq(cbt_feed_all(&lb, "12345678\n"), 0, "line_max bytes fit");
	cr_assert_eq(cbt_feed_all(&lb, "123456789"), -EMSGSIZE);
	conn_lines_free(&lb);
}

Test(conn_lines, ascii_rules)
{
	struct conn_lines lb;

	conn_lines_init(&lb, NULL, 32, 16, true);
	cr_assert_eq(cbt_feed_all(&lb, "READY 12\n"), 0);
	cr_assert_eq(cbt_feed_all(&lb, "a\tb"), -EBADMSG, "no tab in control lines");
	conn_lines_reset(&lb);
	cr_assert_eq(cbt_feed_all(&lb, "\xc3"), -EBADMSG, "no high bytes");
	conn_lines_reset(&lb);
	cr_assert_eq(cbt_feed_all(&lb, "x\r\n"), -EBADMSG, "no CR");
	conn_lines_free(&lb);
}

Test(conn_lines, unanswered_input_is_bounded)
{
	struct conn_lines lb;
	size_t used;

	conn_lines_init(&lb, NULL, 8, 8, false);
	cr_assert_eq(cbt_feed_all(&lb, "ab\ncd\nef"), 0);
	cr_assert_eq(conn_lines_feed(&lb, (const uint8_t *)"gh", 2, &used), -ENOBUFS);
	cr_assert_eq(used, 0, "nothing past the limit is taken");
	conn_lines_free(&lb);
}
