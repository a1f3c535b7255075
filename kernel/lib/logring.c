/*
 * Ring buffer of log lines.  Layout of the storage:
 *
 *	[hdr text pad][hdr text pad]...[WRAP marker | unused]
 *
 * Each record is a 16-byte header followed by the text, padded to 8 bytes.
 * A record never crosses the end of the storage: when it does not fit, a
 * header whose len is LR_WRAP is left behind and the record goes to offset
 * 0.  Sequence numbers are not stored: the oldest record held has sequence
 * next_seq - count and each later one is one more.
 *
 * Invariants (count > 0): head is the offset of a live record; tail is
 * where the next one would go; live records run from head to tail, through
 * the wrap if tail <= head.  tail == head means the storage is exactly full.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/logring.h"

#define LR_ALIGN	8u
#define LR_WRAP		0xffffffffu

struct lr_hdr {
	uint32_t len;		/* text bytes, or LR_WRAP */
	uint8_t level;
	uint8_t pad[3];
	uint64_t ts_us;
};

_Static_assert(sizeof(struct lr_hdr) == 16, "record header layout");
_Static_assert(LOGRING_MIN_SIZE / 4 > sizeof(struct lr_hdr), "minimum ring too small");

static size_t lr_align(size_t n)
{
	return (n + LR_ALIGN - 1) & ~(size_t)(LR_ALIGN - 1);
}

static size_t lr_rec_size(size_t text_len)
{
	return lr_align(sizeof(struct lr_hdr) + text_len);
}

/* The storage may have any alignment: headers are copied, never cast. */
static void lr_get_hdr(const struct logring *r, size_t off, struct lr_hdr *h)
{
	memcpy(h, r->buf + off, sizeof(*h));
}

static uint32_t lr_get_len(const struct logring *r, size_t off)
{
	uint32_t len;

	memcpy(&len, r->buf + off, sizeof(len));
	return len;
}

/*
 * Offset of the record after the one at off.  Every offset is a multiple
 * of 8 below size, so there is always room for the 4-byte len read here.
 */
static size_t lr_next(const struct logring *r, size_t off)
{
	off += lr_rec_size(lr_get_len(r, off));
	if (off >= r->size || lr_get_len(r, off) == LR_WRAP)
		return 0;
	return off;
}

void logring_init(struct logring *r, void *storage, size_t size)
{
	memset(r, 0, sizeof(*r));
	size &= ~(size_t)(LR_ALIGN - 1);
	if (!storage || size < LOGRING_MIN_SIZE)
		return;
	/* Uint32 len: keep any one record far below 4 GiB. */
	if (size > ((size_t)1 << 31))
		size = (size_t)1 << 31;
	r->buf = storage;
	r->size = size;
	r->max_text = ((size / 4) & ~(size_t)(LR_ALIGN - 1)) - sizeof(struct lr_hdr);
}

uint64_t logring_count(const struct logring *r)
{
	return r->count;
}

uint64_t logring_next_seq(const struct logring *r)
{
	return r->next_seq;
}

uint64_t logring_first_seq(const struct logring *r)
{
	return r->next_seq - r->count;
}

static void lr_evict_oldest(struct logring *r)
{
	r->count--;
	if (r->count == 0) {
		r->head = 0;
		r->tail = 0;
		return;
	}
	r->head = lr_next(r, r->head);
}

/* Make tail point at rec free bytes, evicting the oldest lines as needed. */
static void lr_make_room(struct logring *r, size_t rec)
{
	for (;;) {
		if (r->count == 0) {
			r->head = 0;
			r->tail = 0;
			return;
		}
		if (r->tail > r->head) {
			/* Live data is [head, tail): free space is above tail,
			 * then below head after a wrap. */
			if (rec <= r->size - r->tail)
				return;
			uint32_t wrap = LR_WRAP;
			memcpy(r->buf + r->tail, &wrap, sizeof(wrap));
			r->tail = 0;
			continue;
		}
		/* tail <= head: free space is [tail, head). */
		if (rec <= r->head - r->tail)
			return;
		lr_evict_oldest(r);
	}
}

void logring_push(struct logring *r, int level, uint64_t ts_us,
		  const char *text, size_t len)
{
	struct lr_hdr h;
	size_t rec;

	r->next_seq++;
	if (r->size == 0)
		return;
	if (!text)
		len = 0;
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (len > r->max_text)
		len = r->max_text;
	rec = lr_rec_size(len);
	lr_make_room(r, rec);

	memset(&h, 0, sizeof(h));
	h.len = (uint32_t)len;
	h.level = (uint8_t)(level < 0 ? 0 : level > 255 ? 255 : level);
	h.ts_us = ts_us;
	memcpy(r->buf + r->tail, &h, sizeof(h));
	if (len)
		memcpy(r->buf + r->tail + sizeof(h), text, len);
	r->tail += rec;
	if (r->tail == r->size)
		r->tail = 0;
	r->count++;
}

/* Skip `skip` records from the oldest, then deliver up to max. */
static size_t lr_walk(const struct logring *r, uint64_t skip, uint64_t max,
		      logring_cb cb, void *ctx)
{
	uint64_t seq = logring_first_seq(r);
	size_t off = r->head;
	size_t done = 0;

	if (skip >= r->count)
		return 0;
	if (max > r->count - skip)
		max = r->count - skip;
	for (uint64_t i = 0; i < skip; i++)
		off = lr_next(r, off);
	seq += skip;
	for (uint64_t i = 0; i < max; i++) {
		struct lr_hdr h;
		struct logring_entry e;

		lr_get_hdr(r, off, &h);
		e.seq = seq + i;
		e.ts_us = h.ts_us;
		e.level = h.level;
		e.text = (const char *)r->buf + off + sizeof(h);
		e.len = h.len;
		if (cb)
			cb(ctx, &e);
		done++;
		off = lr_next(r, off);
	}
	return done;
}

size_t logring_tail(const struct logring *r, size_t n, logring_cb cb, void *ctx)
{
	uint64_t skip = r->count > n ? r->count - n : 0;

	return lr_walk(r, skip, n, cb, ctx);
}

size_t logring_since(const struct logring *r, uint64_t seq, size_t max,
		     logring_cb cb, void *ctx)
{
	uint64_t first = logring_first_seq(r);

	if (seq < first)
		seq = first;
	if (seq >= r->next_seq)
		return 0;
	return lr_walk(r, seq - first, max, cb, ctx);
}
