/*
 * The decisions a listener makes about peers that have not authenticated
 * yet (pure: the network console and the migration listener keep the
 * connections, this only chooses):
 *  - which pre-TLS ("pending") connection a newcomer evicts, so that idle
 *    or slow strangers never keep a real client out: the oldest one from
 *    the newcomer's own address once that address has per_addr pending,
 *    else the oldest of all once max are pending;
 *  - how often a refusal is logged: at most `burst` lines per window, and
 *    the number held back is said with the next line or by peer_log_flush.
 */
#ifndef TERN_LIB_PEER_GATE_H
#define TERN_LIB_PEER_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct peer_pend {
	bool used;		/* a connection that has not authenticated */
	uint32_t addr;		/* its peer, host byte order */
	uint64_t since_us;	/* when it was accepted */
};

/* The entry of p[0..n) to evict before a connection from addr is taken,
 * or -1 when there is room. */
int peer_pend_victim(const struct peer_pend *p, size_t n, uint32_t addr, unsigned max,
		     unsigned per_addr);

struct peer_log {
	uint64_t window_us;	/* set by the owner */
	unsigned burst;		/* lines per window, set by the owner */
	uint64_t start_us;	/* the current window */
	unsigned lines;		/* logged in it */
	unsigned long held;	/* refusals not logged since the last line */
};

/* A refusal at now: true if it may be logged; then *held is how many were
 * not logged before it (cleared). */
bool peer_log_ok(struct peer_log *l, uint64_t now, unsigned long *held);
/* The window is over: the count of refusals not logged (cleared), else 0. */
unsigned long peer_log_flush(struct peer_log *l, uint64_t now);

#endif
