/*
 * A connection's output queue and input line splitter (conn_buf.h): pure,
 * shared by the kernel (net/stack/conn.c) and the host unit tests.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/stack/conn_buf.h"

/* ---- the output ring ---- */

int conn_ring_init(struct conn_ring *r, void *storage, size_t init, size_t max)
{
	memset(r, 0, sizeof(*r));
	if (storage) {
		r->buf = storage;
		r->cap = r->max = max;
		return 0;
	}
	r->owned = true;
	r->max = max;
	if (!init)
		return 0;
	r->buf = malloc(init);
	if (!r->buf)
		return -ENOMEM;
	r->cap = init;
	return 0;
}

void conn_ring_free(struct conn_ring *r)
{
	if (r->owned)
		free(r->buf);
	memset(r, 0, sizeof(*r));
}

void conn_ring_reset(struct conn_ring *r)
{
	r->off = r->len = 0;
}

size_t conn_ring_room(const struct conn_ring *r)
{
	return r->max - r->len;
}

/* Room for need bytes: double the storage (at most max), queued bytes
 * moved to the front. */
static int conn_ring_grow(struct conn_ring *r, size_t need)
{
	size_t cap = r->cap ? r->cap : 4096, first;
	const uint8_t *run;
	uint8_t *p;

	while (cap < need)
		cap *= 2;
	if (cap > r->max)
		cap = r->max;
	p = malloc(cap);
	if (!p)
		return -ENOMEM;
	if (r->len) {
		run = conn_ring_peek(r, &first);
		memcpy(p, run, first);
		memcpy(p + first, r->buf, r->len - first);
	}
	free(r->buf);
	r->buf = p;
	r->cap = cap;
	r->off = 0;
	return 0;
}

int conn_ring_put(struct conn_ring *r, const void *p, size_t n)
{
	size_t head, first;
	int rc;

	if (n > conn_ring_room(r))
		return -ENOSPC;
	if (!r->len)
		r->off = 0;	/* start over at the front: longer runs to write */
	if (r->len + n > r->cap) {
		rc = conn_ring_grow(r, r->len + n);
		if (rc < 0)
			return rc;
	}
	if (!n)
		return 0;
	head = (r->off + r->len) % r->cap;
	first = n < r->cap - head ? n : r->cap - head;
	memcpy(r->buf + head, p, first);
	if (n > first)
		memcpy(r->buf, (const uint8_t *)p + first, n - first);
	r->len += n;
	return 0;
}

const uint8_t *conn_ring_peek(const struct conn_ring *r, size_t *n)
{
	size_t run = r->cap - r->off;

	*n = r->len < run ? r->len : run;
	return r->buf + r->off;
}

void conn_ring_drop(struct conn_ring *r, size_t n)
{
	r->len -= n;
	r->off = r->len ? (r->off + n) % r->cap : 0;
}

/* ---- the input line splitter ---- */

int conn_lines_init(struct conn_lines *lb, void *storage, size_t cap, size_t line_max,
		    bool ascii)
{
	memset(lb, 0, sizeof(*lb));
	lb->buf = storage ? storage : malloc(cap);
	if (!lb->buf)
		return -ENOMEM;
	lb->owned = !storage;
	lb->cap = cap;
	lb->line_max = line_max;
	lb->ascii = ascii;
	return 0;
}

void conn_lines_free(struct conn_lines *lb)
{
	if (lb->owned)
		free(lb->buf);
	memset(lb, 0, sizeof(*lb));
}

void conn_lines_reset(struct conn_lines *lb)
{
	lb->len = lb->line_len = 0;
}

static bool conn_lines_bad(const struct conn_lines *lb, uint8_t b)
{
	if (b == '\n')
		return false;
	if (lb->ascii)
		return b < 0x20 || b > 0x7e;
	return (b < 0x20 && b != '\t' && b != '\r') || b == 0x7f;
}

int conn_lines_feed(struct conn_lines *lb, const uint8_t *p, size_t n, size_t *used)
{
	for (size_t i = 0; i < n; i++) {
		*used = i;
		if (conn_lines_bad(lb, p[i]))
			return -EBADMSG;
		if (lb->len == lb->cap)
			return -ENOBUFS;
		lb->buf[lb->len++] = (char)p[i];
		if (p[i] == '\n') {
			lb->line_len = 0;
			*used = i + 1;
			return 1;
		}
		if (++lb->line_len > lb->line_max)
			return -EMSGSIZE;
	}
	*used = n;
	return 0;
}

bool conn_lines_ready(const struct conn_lines *lb)
{
	return lb->len && memchr(lb->buf, '\n', lb->len);
}

long conn_lines_take(struct conn_lines *lb, char *out, size_t size)
{
	char *nl = lb->len ? memchr(lb->buf, '\n', lb->len) : NULL;
	size_t n, rest;

	if (!nl)
		return -1;
	n = (size_t)(nl - lb->buf);
	rest = lb->len - n - 1;
	if (n && lb->buf[n - 1] == '\r')
		n--;
	if (n >= size)
		n = size - 1;	/* cannot happen with size >= cap */
	memcpy(out, lb->buf, n);
	out[n] = '\0';
	memmove(lb->buf, nl + 1, rest);
	lb->len = rest;
	return (long)n;
}

char *conn_lines_only(struct conn_lines *lb)
{
	size_t n = lb->len;

	if (!n || lb->buf[n - 1] != '\n')
		return NULL;
	n--;
	if (n && lb->buf[n - 1] == '\r')
		n--;
	lb->buf[n] = '\0';
	lb->len = lb->line_len = 0;
	return lb->buf;
}
