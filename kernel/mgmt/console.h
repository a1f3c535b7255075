/* The management console: serial front end and the shared command table. */
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

extern const struct cmd_def console_cmds[];
extern const size_t console_ncmds;

void console_init(const char *hostname);
void __attribute__((noreturn)) console_run(void);
const char *console_hostname(void);

#endif
