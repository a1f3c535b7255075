/*
 * The downtime estimate of a live migration (issue 16): the stop costs a
 * fixed part (pause, device drain, vCPU and device records, the
 * destination's check, the COMMIT/RESUMED round trip) on top of the
 * pages still dirty at the link's rate.  The fixed part is measured on
 * each migration and kept per destination, so the next one to the same
 * host counts what that link really costs.  Pure: no clock, no I/O.
 */
#ifndef TERN_MIGRATE_DOWNTIME_H
#define TERN_MIGRATE_DOWNTIME_H

#include <stdbool.h>
#include <stdint.h>

#define MIG_DT_HOSTS		8	/* destinations remembered */
#define MIG_DT_SAMPLES		4	/* fixed costs kept per destination */
#define MIG_DT_ADDR_MAX		24
/* Before a destination has a measurement: a guess at the fixed part
 * beside the tail's bytes at the link's rate (the lab's nested hosts
 * measured 60-200 ms; real hosts far less). */
#define MIG_DT_PRIOR_MS		100
/* However big the fixed part, pages get at least this share of the
 * target: the pre-copy still converges as far as it can. */
#define MIG_DT_MIN_SHARE_PM	100

struct mig_dt_host {
	char addr[MIG_DT_ADDR_MAX];
	uint32_t fixed_ms[MIG_DT_SAMPLES];
	uint32_t n;			/* samples taken (the ring wraps) */
	uint64_t last_use;
};

struct mig_dt_table {
	struct mig_dt_host host[MIG_DT_HOSTS];
	uint64_t uses;
};

/* What the stop is expected to cost beyond the dirty pages: from addr's
 * recent measurements (the largest of them), else the prior with the
 * tail at bw.  *measured says which. */
uint32_t mig_dt_fixed(const struct mig_dt_table *t, const char *addr, uint64_t tail_bytes,
		      uint64_t bw_bps, bool *measured);

/* Milliseconds to move pages pages at bw_bps (0 when bw is unknown). */
uint64_t mig_dt_pages_ms(uint64_t pages, uint64_t bw_bps);

/* May pre-copy stop now?  pages_ms within target less fixed, but never
 * less than MIG_DT_MIN_SHARE_PM of the target. */
bool mig_dt_fits(uint32_t fixed_ms, uint64_t pages_ms, uint32_t target_ms);

/* A finished migration to addr: its downtime less the time its final
 * pages took to go out is the fixed cost measured on that link. */
uint32_t mig_dt_record(struct mig_dt_table *t, const char *addr, uint64_t downtime_ms,
		       uint64_t pages_ms);

#endif
