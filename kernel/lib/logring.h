/*
 * Ring buffer of log lines in caller-supplied storage.  Pure: no
 * allocation, no locking.
 *
 * Every line gets a sequence number, starting at 0 and counting every push
 * (even one the ring is too small to keep), so a follower that remembers
 * the next sequence it wants can tell when lines were evicted before it
 * read them.  When the storage is full the oldest lines are evicted.
 *
 * Records are stored contiguously, never split across the end of the
 * storage (a wrap marker sends readers back to the start), so callbacks get
 * each line's text as one pointer into the storage.  A line longer than a
 * quarter of the storage (less the record header) is truncated.
 *
 * Locking is the caller's job: push, tail and since must be serialised
 * against each other (one lock around the ring, held across the reader
 * calls; callbacks run with it held, so they must not push).  Text pointers
 * handed to callbacks are valid only during the callback.
 */
#ifndef TERN_LIB_LOGRING_H
#define TERN_LIB_LOGRING_H

#include <stddef.h>
#include <stdint.h>

#define LOGRING_MIN_SIZE	256	/* smaller storage keeps nothing */

struct logring {
	unsigned char *buf;
	size_t size;		/* usable bytes: a multiple of 8 */
	size_t head;		/* offset of the oldest record */
	size_t tail;		/* offset where the next record goes */
	size_t max_text;	/* longest text kept per line */
	uint64_t count;		/* records held */
	uint64_t next_seq;	/* sequence of the next push */
};

struct logring_entry {
	uint64_t seq;
	uint64_t ts_us;
	int level;
	const char *text;	/* not NUL-terminated */
	size_t len;
};

typedef void (*logring_cb)(void *ctx, const struct logring_entry *e);

/* Use size bytes at storage (any alignment).  Below LOGRING_MIN_SIZE the
 * ring keeps no lines but still numbers them. */
void logring_init(struct logring *r, void *storage, size_t size);

/*
 * Append one line.  Trailing CR/LF bytes are stripped; the text is
 * otherwise stored as given (truncated to max_text bytes).  level is
 * clamped to 0..255.
 */
void logring_push(struct logring *r, int level, uint64_t ts_us,
		  const char *text, size_t len);

uint64_t logring_count(const struct logring *r);	/* lines held */
uint64_t logring_next_seq(const struct logring *r);	/* seq of the next push */
uint64_t logring_first_seq(const struct logring *r);	/* oldest held (== next if empty) */

/* cb for the last n lines held, oldest first.  Returns lines delivered. */
size_t logring_tail(const struct logring *r, size_t n, logring_cb cb, void *ctx);

/*
 * cb for up to max lines with seq >= seq, oldest first.  If seq was already
 * evicted, delivery starts at the oldest line held: the caller sees the gap
 * as e->seq > seq.  Returns lines delivered.
 */
size_t logring_since(const struct logring *r, uint64_t seq, size_t max,
		     logring_cb cb, void *ctx);

#endif
