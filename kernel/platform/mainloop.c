/*
 * The boot CPU's main loop and the waits of blocking commands: one
 * mechanism for both (mainloop.h says why).
 */
#include <errno.h>
#include "kernel/kernel.h"
#include "kernel/lib/cmd.h"
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/platform/mainloop.h"

struct ml_slot {
	const struct mainloop_service *svc;
	unsigned int active;	/* calls of it on the stack */
	uint64_t runs;
	uint64_t max_us;	/* longest single call */
};

static struct ml_slot ml_slots[MAINLOOP_MAX_SERVICES];
static unsigned int ml_count;
static unsigned int ml_depth;

int mainloop_register(const struct mainloop_service *s)
{
	if (!s || !s->service || !s->name)
		return -EINVAL;
	if (ml_count >= MAINLOOP_MAX_SERVICES) {
		pr_err("mainloop: no room for service %s", s->name);
		return -ENOSPC;
	}
	ml_slots[ml_count++].svc = s;
	return 0;
}

unsigned int mainloop_depth(void)
{
	return ml_depth;
}

/* May this slot run now, given what is already on the stack? */
static bool ml_may_run(const struct ml_slot *sl)
{
	unsigned int f = sl->svc->flags;

	if (sl->active && !(f & MAINLOOP_REENTRANT))
		return false;
	return !(f & MAINLOOP_RUNS_COMMANDS) || ml_depth < MAINLOOP_MAX_NEST;
}

static void ml_run_one(struct ml_slot *sl)
{
	uint64_t t0 = time_us(), dt;

	sl->active++;
	sl->svc->service();
	sl->active--;
	sl->runs++;
	dt = time_us() - t0;
	if (dt > sl->max_us)
		sl->max_us = dt;
}

/*
 * One pass: every service that may run, the boot CPU's cross-CPU calls,
 * then HLT unless work is ready or the wait (done) is over.  The check and the HLT happen with
 * interrupts off and `sti; hlt` re-enables them atomically (SDM Vol. 2B,
 * STI: interrupts are recognised after the next instruction), so an
 * interrupt that makes work ready after the check still wakes the HLT.
 */
static void ml_pass(bool (*done)(void *arg), void *arg)
{
	unsigned int i;

	for (i = 0; i < ml_count; i++)
		if (ml_may_run(&ml_slots[i]))
			ml_run_one(&ml_slots[i]);
	smp_handle_calls();
	/* A wait that a service just ended must not sleep to the next tick. */
	if (done && done(arg))
		return;
	irq_disable();
	for (i = 0; i < ml_count; i++) {
		const struct ml_slot *sl = &ml_slots[i];

		if (ml_may_run(sl) && sl->svc->pending && sl->svc->pending()) {
			irq_enable();
			return;
		}
	}
	if (smp_calls_waiting()) {
		irq_enable();
		return;
	}
	cpu_idle_once();	/* sti; hlt */
}

void mainloop_run(void)
{
	for (;;)
		ml_pass(NULL, NULL);
}

bool mainloop_wait(bool (*done)(void *arg), void *arg, uint64_t deadline_us)
{
	bool ok = false;

	ml_depth++;
	for (;;) {
		if (done && done(arg)) {
			ok = true;
			break;
		}
		if (time_us() >= deadline_us)
			break;
		ml_pass(done, arg);
	}
	ml_depth--;
	return ok;
}

void mainloop_report(struct cmd_out *o)
{
	unsigned int i;

	cmd_printf(o, "%-10s %12s %12s\n", "service", "runs", "longest-us");
	for (i = 0; i < ml_count; i++) {
		const struct ml_slot *sl = &ml_slots[i];

		cmd_printf(o, "%-10s %12lu %12lu\n", sl->svc->name, sl->runs, sl->max_us);
	}
}

/* Another CPU made work ready for a service (a vCPU's exit queued guest
 * I/O): wake the boot CPU from its HLT.  On the boot CPU itself the next
 * pass sees the work through the service's pending(). */
void mainloop_kick(void)
{
	if (this_cpu()->id != 0 && cpu_table[0])
		lapic_send_ipi(cpu_table[0]->apic_id, VEC_IPI_KICK);
}
