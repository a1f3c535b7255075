/* Unit tests for kernel/lib/peer_gate.c: pending eviction, refusal-log limits. */
#include <criterion/criterion.h>

#include "kernel/lib/peer_gate.h"

#define A 0x0a4d00feu	/* 10.77.0.254 */
#define B 0x0a4d0002u	/* 10.77.0.2 */

Test(peer_gate, room_means_no_victim)
{
	struct peer_pend p[4] = { { true, A, 10 }, { false, 0, 0 }, { true, B, 5 } };

	cr_expect_eq(peer_pend_victim(p, 4, A, 3, 2), -1);
	cr_expect_eq(peer_pend_victim(p, 4, B, 3, 0), -1, "per_addr 0: no per-address limit");
}

Test(peer_gate, same_address_evicts_its_own_oldest)
{
	struct peer_pend p[5] = { { true, A, 30 }, { true, B, 1 }, { true, A, 20 },
				  { true, A, 40 }, { false, 0, 0 } };

	/* A has 3 = per_addr: its oldest (20) goes, never B's older one. */
	cr_expect_eq(peer_pend_victim(p, 5, A, 8, 3), 2);
	/* B has 1 of 3, the pool (4 of 8) has room. */
	cr_expect_eq(peer_pend_victim(p, 5, B, 8, 3), -1);
}

Test(peer_gate, full_pool_evicts_the_oldest_of_all)
{
	struct peer_pend p[4] = { { true, A, 30 }, { true, B, 7 }, { true, A, 20 },
				  { true, B, 9 } };

	cr_expect_eq(peer_pend_victim(p, 4, 0x01020304u, 4, 3), 1);
	/* Nine idle connections from one address never hold more than per_addr. */
	struct peer_pend q[12] = { 0 };
	int held = 0;

	for (int k = 0; k < 9; k++) {
		int v = peer_pend_victim(q, 12, A, 8, 3);
		int slot = v;

		if (v < 0)
			for (slot = 0; q[slot].used; slot++)
				;
		else
			held--;
		q[slot] = (struct peer_pend){ true, A, (uint64_t)k };
		held++;
	}
	cr_expect_eq(held, 3);
	cr_expect_eq(peer_pend_victim(q, 12, B, 8, 3), -1, "another address still gets in");
}

Test(peer_gate, log_burst_then_held_count)
{
	struct peer_log l = { .window_us = 1000, .burst = 2 };
	unsigned long held = 99;

	cr_expect(peer_log_ok(&l, 100, &held));
	cr_expect_eq(held, 0);
	cr_expect(peer_log_ok(&l, 200, &held));
	for (int i = 0; i < 5; i++)
		cr_expect_not(peer_log_ok(&l, 300 + (uint64_t)i, &held));
	cr_expect_eq(peer_log_flush(&l, 900), 0, "window not over yet");
	cr_expect(peer_log_ok(&l, 1200, &held), "a new window");
	cr_expect_eq(held, 5);
	cr_expect_eq(peer_log_flush(&l, 5000), 0, "nothing held");
}

Test(peer_gate, log_flush_says_what_was_held)
{
	struct peer_log l = { .window_us = 1000, .burst = 1 };
	unsigned long held;

	cr_expect(peer_log_ok(&l, 0, &held));
	cr_expect_not(peer_log_ok(&l, 10, &held));
	cr_expect_not(peer_log_ok(&l, 20, &held));
	cr_expect_eq(peer_log_flush(&l, 500), 0);
	cr_expect_eq(peer_log_flush(&l, 1500), 2);
	cr_expect_eq(peer_log_flush(&l, 3000), 0, "said once");
	cr_expect(peer_log_ok(&l, 3001, &held));
	cr_expect_eq(held, 0);
}
