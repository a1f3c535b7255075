/*
 * The pure halves of a connection (conn_buf.c, used by net/stack/conn.c):
 * a bounded byte queue for output and a line splitter for input.  No lwIP
 * and no kernel calls, so the host unit tests build the same file
 * (tests/unit/test_conn_buf.c).
 */
#ifndef TERN_NET_CONN_BUF_H
#define TERN_NET_CONN_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A byte ring.  Storage given to conn_ring_init is fixed (cap == max);
 * without it the ring allocates: init bytes now (0: on the first put) and
 * doubles on demand up to max.  Puts are all or nothing.
 */
struct conn_ring {
	uint8_t *buf;
	size_t cap, max;
	size_t off, len;	/* oldest byte, bytes queued */
	bool owned;		/* buf came from malloc */
};

int conn_ring_init(struct conn_ring *r, void *storage, size_t init, size_t max);
void conn_ring_free(struct conn_ring *r);
void conn_ring_reset(struct conn_ring *r);
/* 0, -ENOSPC (over max), -ENOMEM (growing failed). */
int conn_ring_put(struct conn_ring *r, const void *p, size_t n);
/* Bytes a put may still add. */
size_t conn_ring_room(const struct conn_ring *r);
/* The oldest contiguous run of queued bytes: *n of them at the result. */
const uint8_t *conn_ring_peek(const struct conn_ring *r, size_t *n);
/* Forget the n oldest bytes (n <= len). */
void conn_ring_drop(struct conn_ring *r, size_t n);

/*
 * Input lines, "\n"-terminated.  Bytes collect in buf (cap bytes) until the
 * owner takes the lines; a line longer than line_max bytes (its "\r"
 * included), more than cap bytes waiting, or a forbidden byte is an error.
 * Forbidden: with ascii, anything but printable ASCII; else control bytes
 * other than tab and CR, and DEL.
 */
struct conn_lines {
	char *buf;
	size_t cap, len;
	size_t line_len;	/* bytes after the last "\n" */
	size_t line_max;
	bool ascii;
	bool owned;
};

int conn_lines_init(struct conn_lines *lb, void *storage, size_t cap, size_t line_max,
		    bool ascii);
void conn_lines_free(struct conn_lines *lb);
void conn_lines_reset(struct conn_lines *lb);
/*
 * Take bytes from p[0..n) up to and including the first "\n": 1 when a
 * line ended (*used bytes taken), 0 when all n were taken without one,
 * or -EBADMSG (forbidden byte), -ENOBUFS (buffer full), -EMSGSIZE (line
 * too long); on an error *used counts the bytes taken before it.
 */
int conn_lines_feed(struct conn_lines *lb, const uint8_t *p, size_t n, size_t *used);
bool conn_lines_ready(const struct conn_lines *lb);
/*
 * Move the first whole line into out (NUL-terminated, without its "\n"
 * and a "\r" before it): its length, or -1 when there is no whole line.
 * out must hold cap bytes.
 */
long conn_lines_take(struct conn_lines *lb, char *out, size_t size);
/*
 * The buffer holds exactly one line ending with "\n" (as when every line is
 * taken as it arrives): end it in place (NUL for "\n", "\r" dropped) and
 * return it; the next feed starts over.  NULL if there is no whole line.
 */
char *conn_lines_only(struct conn_lines *lb);

#endif
