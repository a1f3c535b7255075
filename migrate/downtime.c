/*
 * Downtime estimate with a measured fixed part (migrate/downtime.h).
 *
 * Why the largest of the last few samples rather than their mean: the
 * estimate decides when the guest stops, and a stop that overruns the
 * operator's target is the failure to avoid; one slow stop (a disk
 * flush, a busy destination) is a cost the same link can show again.
 * Old samples age out of the ring, so a one-off does not stay.
 */
#include <string.h>

#include "migrate/downtime.h"

#define DT_PAGE_SIZE	4096u

static struct mig_dt_host *dt_find(const struct mig_dt_table *t, const char *addr)
{
	for (int i = 0; i < MIG_DT_HOSTS; i++)
		if (t->host[i].n && !strncmp(t->host[i].addr, addr, MIG_DT_ADDR_MAX - 1))
			return (struct mig_dt_host *)&t->host[i];
	return NULL;
}

uint64_t mig_dt_pages_ms(uint64_t pages, uint64_t bw_bps)
{
	if (!bw_bps)
		return 0;
	/* pages * 4096 * 1000 stays in 64 bits up to 4.5e12 pages. */
	return (pages * DT_PAGE_SIZE * 1000 + bw_bps - 1) / bw_bps;
}

uint32_t mig_dt_fixed(const struct mig_dt_table *t, const char *addr, uint64_t tail_bytes,
		      uint64_t bw_bps, bool *measured)
{
	const struct mig_dt_host *h = dt_find(t, addr);
	uint32_t max = 0;

	if (h) {
		uint32_t k = h->n < MIG_DT_SAMPLES ? h->n : MIG_DT_SAMPLES;

		for (uint32_t i = 0; i < k; i++)
			if (h->fixed_ms[i] > max)
				max = h->fixed_ms[i];
		if (measured)
			*measured = true;
		return max;
	}
	if (measured)
		*measured = false;
	return MIG_DT_PRIOR_MS +
	       (uint32_t)(bw_bps ? (tail_bytes * 1000 + bw_bps - 1) / bw_bps : 0);
}

bool mig_dt_fits(uint32_t fixed_ms, uint64_t pages_ms, uint32_t target_ms)
{
	uint64_t floor = (uint64_t)target_ms * MIG_DT_MIN_SHARE_PM / 1000;
	uint64_t budget = target_ms > fixed_ms ? target_ms - fixed_ms : 0;

	if (budget < floor)
		budget = floor;
	return pages_ms <= budget;
}

static struct mig_dt_host *dt_slot(struct mig_dt_table *t, const char *addr)
{
	struct mig_dt_host *h = dt_find(t, addr), *old = &t->host[0];

	if (h)
		return h;
	for (int i = 0; i < MIG_DT_HOSTS; i++) {
		if (!t->host[i].n)
			return &t->host[i];
		if (t->host[i].last_use < old->last_use)
			old = &t->host[i];
	}
	memset(old, 0, sizeof(*old));
	return old;
}

uint32_t mig_dt_record(struct mig_dt_table *t, const char *addr, uint64_t downtime_ms,
		       uint64_t pages_ms)
{
	struct mig_dt_host *h = dt_slot(t, addr);
	uint32_t fixed = downtime_ms > pages_ms ? (uint32_t)(downtime_ms - pages_ms) : 0;

	if (!h->n) {
		memset(h->addr, 0, sizeof(h->addr));
		strncpy(h->addr, addr, MIG_DT_ADDR_MAX - 1);
	}
	h->fixed_ms[h->n % MIG_DT_SAMPLES] = fixed;
	h->n++;
	h->last_use = ++t->uses;
	return fixed;
}
