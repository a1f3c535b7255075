/*
 * What a disk does after a reconnect, once READ KEYS (SPC-4 6.15.2) has
 * answered or failed: the fencing decision, pure so the unit tests hold
 * every case (disk.c acts on it).
 */
#ifndef TERN_STORAGE_DISK_FENCE_H
#define TERN_STORAGE_DISK_FENCE_H

#include <stdbool.h>

struct disk_fence_in {
	int pr_in_err;		/* READ KEYS failed (transport, status, parse) */
	unsigned nkeys;		/* keys the target lists */
	bool ours;		/* this host's key is among them */
	bool held_writes;	/* writes parked from before the disconnect */
};

enum disk_fence_verdict {
	DISK_FENCE_REGISTER,		/* register this login, then resume */
	DISK_FENCE_RESUME,		/* resume unregistered: the I/O will tell */
	DISK_FENCE_LOST_PREEMPTED,	/* keys, but not ours: another host fenced us */
	DISK_FENCE_LOST_FORGOTTEN,	/* no keys, and writes held */
	DISK_FENCE_LOST_UNCHECKED,	/* READ KEYS failed, and writes held */
};

enum disk_fence_verdict disk_fence_recheck(const struct disk_fence_in *in);

/* True for the LOST verdicts. */
bool disk_fence_lost(enum disk_fence_verdict v);

/* Why a LOST verdict was reached, for `disk info` and the log. */
const char *disk_fence_why(enum disk_fence_verdict v);

#endif
