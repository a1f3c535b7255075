/* Unit tests for storage/lib/disk_fence.c: what a disk does after a
 * reconnect, from READ KEYS and the writes it holds (Issue #17 item 5). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "storage/lib/disk_fence.h"

static enum disk_fence_verdict v(int err, unsigned nkeys, bool ours, bool held)
{
	struct disk_fence_in in = {
		.pr_in_err = err, .nkeys = nkeys, .ours = ours, .held_writes = held,
	};

	return disk_fence_recheck(&in);
}

Test(disk_fence, our_key_there_registers_again)
{
	cr_expect_eq(v(0, 1, true, false), DISK_FENCE_REGISTER);
	cr_expect_eq(v(0, 3, true, true), DISK_FENCE_REGISTER);
}

Test(disk_fence, preempted_is_lost)
{
	cr_expect_eq(v(0, 1, false, false), DISK_FENCE_LOST_PREEMPTED);
	cr_expect_eq(v(0, 2, false, true), DISK_FENCE_LOST_PREEMPTED);
}

/* A restarted tgtd (reservations in memory only) lists no keys: with no
 * write parked, nothing stale can land, so register again; with writes
 * parked, this host may have been pre-empted before the restart and must
 * not reissue them over the new owner's data. */
Test(disk_fence, no_keys_with_held_writes_is_lost)
{
	cr_expect_eq(v(0, 0, false, true), DISK_FENCE_LOST_FORGOTTEN);
	cr_expect(disk_fence_lost(v(0, 0, false, true)));
}

Test(disk_fence, no_keys_idle_registers_again)
{
	cr_expect_eq(v(0, 0, false, false), DISK_FENCE_REGISTER);
}

/* A failing PR IN must not release held writes. */
Test(disk_fence, pr_in_failure_with_held_writes_is_lost)
{
	cr_expect_eq(v(-EIO, 0, false, true), DISK_FENCE_LOST_UNCHECKED);
	cr_expect_eq(v(-EBADMSG, 0, false, true), DISK_FENCE_LOST_UNCHECKED);
	cr_expect(disk_fence_lost(v(-EIO, 0, false, true)));
}

Test(disk_fence, pr_in_failure_idle_resumes)
{
	cr_expect_eq(v(-EIO, 0, false, false), DISK_FENCE_RESUME);
	cr_expect_not(disk_fence_lost(DISK_FENCE_RESUME));
	cr_expect_not(disk_fence_lost(DISK_FENCE_REGISTER));
}

Test(disk_fence, every_lost_verdict_says_why)
{
	enum disk_fence_verdict lost[] = {
		DISK_FENCE_LOST_PREEMPTED, DISK_FENCE_LOST_FORGOTTEN, DISK_FENCE_LOST_UNCHECKED,
	};

	for (unsigned i = 0; i < 3; i++) {
		cr_expect(disk_fence_lost(lost[i]));
		cr_expect_gt(strlen(disk_fence_why(lost[i])), 20, "verdict %d", lost[i]);
	}
}
