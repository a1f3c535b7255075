/*
 * The fencing decision after a reconnect (disk_fence.h).
 */
#include "storage/lib/disk_fence.h"

enum disk_fence_verdict disk_fence_recheck(const struct disk_fence_in *in)
{
	if (in->pr_in_err)
		return DISK_FENCE_RESUME;
	if (in->ours || in->nkeys == 0)
		return DISK_FENCE_REGISTER;
	return DISK_FENCE_LOST_PREEMPTED;
}

bool disk_fence_lost(enum disk_fence_verdict v)
{
	return v >= DISK_FENCE_LOST_PREEMPTED;
}

const char *disk_fence_why(enum disk_fence_verdict v)
{
	switch (v) {
	case DISK_FENCE_LOST_PREEMPTED:
		return "this host's key was pre-empted while it was disconnected";
	case DISK_FENCE_LOST_FORGOTTEN:
		return "";
	case DISK_FENCE_LOST_UNCHECKED:
		return "";
	default:
		return "";
	}
}
