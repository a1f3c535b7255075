/*
 * The command registry (registry.h): the subsystems' tables composed into
 * one, and the guard that keeps a command from running twice at once.
 */
#include <errno.h>
#include <string.h>
#include "kernel/kernel.h"
#include "kernel/mgmt/registry.h"

static struct cmd_def mgmt_cmds[MGMT_MAX_CMDS];
static bool mgmt_running[MGMT_MAX_CMDS];
static size_t mgmt_ncmds;

int mgmt_add_commands(const struct cmd_def *defs, size_t n)
{
	if (n > MGMT_MAX_CMDS - mgmt_ncmds) {
		pr_err("mgmt: no room for %zu commands (%s...)", n, n ? defs[0].name : "");
		return -ENOSPC;
	}
	memcpy(&mgmt_cmds[mgmt_ncmds], defs, n * sizeof(*defs));
	mgmt_ncmds += n;
	return 0;
}

static int mgmt_enter(void *arg, const struct cmd_def *d)
{
	size_t i = (size_t)(d - mgmt_cmds);

	(void)arg;
	if (mgmt_running[i])
		return -EBUSY;
	mgmt_running[i] = true;
	return 0;
}

static void mgmt_leave(void *arg, const struct cmd_def *d)
{
	(void)arg;
	mgmt_running[d - mgmt_cmds] = false;
}

static const struct cmd_guard mgmt_guard = { mgmt_enter, mgmt_leave, NULL };

int mgmt_dispatch(struct cmd_ctx *ctx, const char *line, struct cmd_out *o, bool json)
{
	return cmd_dispatch_guarded(mgmt_cmds, mgmt_ncmds, ctx, line, o, json, &mgmt_guard);
}

void mgmt_help(const char *topic, struct cmd_out *o)
{
	cmd_help(mgmt_cmds, mgmt_ncmds, topic, o);
}
