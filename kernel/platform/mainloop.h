/*
 * The boot CPU's main loop.  The boot CPU runs no guest: it serves the
 * management plane (consoles), the network stack, migrations and disks.
 * Each of those registers a service; the loop runs every service in turn,
 * then sleeps in HLT until an interrupt (a NIC, a key, the timer tick, an
 * IPI) unless some service says it has work ready.
 *
 * A command that must wait (ping, a disk read, an iperf run) does not spin
 * a private loop: it calls mainloop_wait(), which keeps every service
 * running meanwhile, so a 60 s `disk bench` on one console stalls neither
 * an outgoing migration nor another console.  Two guards bound this:
 *  - a service that is already running further up the stack is skipped,
 *    unless it declares itself reentrant (it then guards its own state, as
 *    the network console does per client);
 *  - services that run commands (MAINLOOP_RUNS_COMMANDS) are skipped once
 *    two waits are nested, so commands nest at most two deep, which the
 *    boot stack is sized for (kernel/platform/entry.S).
 * A command never waits for itself: the command layer refuses a command
 * that is already running (kernel/mgmt/registry.c).
 */
#ifndef TERN_PLATFORM_MAINLOOP_H
#define TERN_PLATFORM_MAINLOOP_H

#include <stdbool.h>
#include <stdint.h>

#define MAINLOOP_MAX_SERVICES	16
#define MAINLOOP_MAX_NEST	2	/* waits in which commands may still start */

enum {
	MAINLOOP_REENTRANT	= 1u << 0,	/* may run while an earlier call waits */
	MAINLOOP_RUNS_COMMANDS	= 1u << 1,	/* dispatches console commands */
};

struct mainloop_service {
	const char *name;
	void (*service)(void);	/* do the work that is ready; never blocks */
	bool (*pending)(void);	/* work is ready now (interrupts are off): NULL = never */
	unsigned int flags;
};

/* Boot CPU, before mainloop_run(); s must stay valid.  -ENOSPC when full. */
int mainloop_register(const struct mainloop_service *s);

void __attribute__((noreturn)) mainloop_run(void);

/*
 * Keep the services running until done(arg) is true (checked before every
 * pass) or time_us() reaches deadline_us; true if done.  Boot CPU only.
 * done may be NULL: wait out the deadline (a ping interval).
 */
bool mainloop_wait(bool (*done)(void *arg), void *arg, uint64_t deadline_us);

/* Any CPU: wake the boot CPU so that its services look for work. */
void mainloop_kick(void);

/* How many mainloop_wait() calls are on the stack now. */
unsigned int mainloop_depth(void);

/* For `status`: each service, how often it ran and its busiest pass. */
struct cmd_out;
void mainloop_report(struct cmd_out *o);

#endif
