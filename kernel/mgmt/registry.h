/*
 * The command registry: each subsystem owns a table of its console
 * commands (handlers named <subsystem>_cmd_<verb>), and the composition
 * root (kernel/main.c) adds them here in the order `help` lists them.
 * Every console front end, serial or network, dispatches through here.
 */
#ifndef TERN_MGMT_REGISTRY_H
#define TERN_MGMT_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include "kernel/lib/cmd.h"

#define MGMT_MAX_CMDS	160

/* Boot CPU, at init.  -ENOSPC when the registry is full (nothing added). */
int mgmt_add_commands(const struct cmd_def *defs, size_t n);

/*
 * Run one command line.  A command that is already running (it waits in
 * mainloop_wait() while another console starts it again) is refused, so a
 * handler never runs twice at once.
 */
int mgmt_dispatch(struct cmd_ctx *ctx, const char *line, struct cmd_out *o, bool json);

/* `help [TOPIC]` over every registered command. */
void mgmt_help(const char *topic, struct cmd_out *o);

#endif
