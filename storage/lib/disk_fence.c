/*
 * The fencing decision after a reconnect (disk_fence.h).
 *
 * A host that lost its connection may have been pre-empted meanwhile
 * (SPC-4 5.13.11: PREEMPT removes the victim's registration), and its
 * parked writes are then stale: they must never land over the new
 * owner's data.  Our key among the keys: still registered, the writes may
 * go.  Other keys but not ours: pre-empted.  No keys at all: the target
 * forgot every registration (tgt keeps them in memory only and says
 * PTPL_C 0), so a pre-emption before its restart cannot be told from none;
 * with writes parked the disk is lost, and only the operator's `disk
 * rejoin` registers it again.  Without parked writes nothing stale can
 * land, and the host registers again.  A failing READ KEYS proves nothing
 * either: parked writes make the disk lost, an idle disk goes on (a
 * conflict on its next write still loses it, blk.c).
 */
#include "storage/lib/disk_fence.h"

enum disk_fence_verdict disk_fence_recheck(const struct disk_fence_in *in)
{
	if (in->pr_in_err)
		return in->held_writes ? DISK_FENCE_LOST_UNCHECKED : DISK_FENCE_RESUME;
	if (in->ours)
		return DISK_FENCE_REGISTER;
	if (in->nkeys)
		return DISK_FENCE_LOST_PREEMPTED;
	return in->held_writes ? DISK_FENCE_LOST_FORGOTTEN : DISK_FENCE_REGISTER;
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
		return "the target forgot every key (restarted?) while writes waited: "
		       "failed unsent, another host may own the disk now";
	case DISK_FENCE_LOST_UNCHECKED:
		return "READ KEYS failed after a reconnect while writes waited: "
		       "failed unsent";
	default:
		return "not lost";
	}
}
