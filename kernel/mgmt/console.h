/* The management console: the serial front end and what every front end shares. */
#ifndef TERN_CONSOLE_H
#define TERN_CONSOLE_H

#include <stdbool.h>
#include <stdint.h>
#include "kernel/lib/cmd.h"

struct cmd_ctx {
	const char *source;	/* "serial", or "tcp 10.0.0.9:51234" */
	/* Set by a front end that shows progress (the network console in
	 * JSON mode); NULL elsewhere.  See console_progress(). */
	void (*progress)(struct cmd_ctx *ctx, const char *phase, uint64_t done,
			 uint64_t total);
};

/*
 * A long command reports how far it is: done of total units in phase
 * (a short word such as "round" or "precopy").  The network console
 * sends {"progress":{"phase":...,"done":N,"total":M}} lines ahead of the
 * reply, which ternctl draws as a bar; other front ends ignore it.
 */
static inline void console_progress(struct cmd_ctx *ctx, const char *phase,
				    uint64_t done, uint64_t total)
{
	if (ctx && ctx->progress)
		ctx->progress(ctx, phase, done, total);
}

/* Start the serial console: its service joins the main loop. */
void console_start(const char *hostname);
const char *console_hostname(void);

/* The host's own commands (kernel/mgmt/commands.c). */
extern const struct cmd_def host_cmds[];
extern const size_t host_ncmds;

#endif
