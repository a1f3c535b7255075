/* Pending-connection eviction and refusal-log limits (kernel/lib/peer_gate.h). */
#include "kernel/lib/peer_gate.h"

/* The oldest used entry (from addr only, when one_addr), or -1. */
static int peer_oldest(const struct peer_pend *p, size_t n, bool one_addr, uint32_t addr)
{
	int best = -1;

	for (size_t i = 0; i < n; i++) {
		if (!p[i].used || (one_addr && p[i].addr != addr))
			continue;
		if (best < 0 || p[i].since_us < p[best].since_us)
			best = (int)i;
	}
	return best;
}

int peer_pend_victim(const struct peer_pend *p, size_t n, uint32_t addr, unsigned max,
		     unsigned per_addr)
{
	unsigned all = 0, mine = 0;

	for (size_t i = 0; i < n; i++) {
		if (!p[i].used)
			continue;
		all++;
		mine += p[i].addr == addr;
	}
	if (per_addr && mine >= per_addr)
		return peer_oldest(p, n, true, addr);
	if (all >= max)
		return peer_oldest(p, n, false, 0);
	return -1;
}

static bool peer_log_new_window(struct peer_log *l, uint64_t now)
{
	if (l->lines && now >= l->start_us && now - l->start_us < l->window_us)
		return false;
	l->start_us = now;
	l->lines = 0;
	return true;
}

bool peer_log_ok(struct peer_log *l, uint64_t now, unsigned long *held)
{
	peer_log_new_window(l, now);
	if (l->lines >= l->burst) {
		l->held++;
		return false;
	}
	l->lines++;
	*held = l->held;
	l->held = 0;
	return true;
}

unsigned long peer_log_flush(struct peer_log *l, uint64_t now)
{
	unsigned long held = l->held;

	if (!held || !peer_log_new_window(l, now))
		return 0;
	l->held = 0;
	return held;
}
