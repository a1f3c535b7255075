/*
 * Console commands: `migrate NAME ADDR[:PORT] [live|quick] [downtime=MS]
 * [bandwidth=MB/s] [timeout=S] [encrypt=on|off] [as=NAME]` (as= names the
 * guest at the destination: with 127.0.0.1 a host migrates a guest to
 * itself, a whole migration on one machine), `migrate status`,
 * `migrate cancel`, `migrate identity`, and
 * the main loop's hooks for both sides of a migration.
 *
 * `migrate` returns as soon as the migration has started: the console
 * stays free for `migrate status` and `migrate cancel`, and ternctl polls
 * the status to draw its progress bar.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/mgmt/console.h"
#include "kernel/kernel.h"
#include "kernel/platform/mainloop.h"
#include "kernel/virt/vm.h"
#include "kernel/lib/config.h"
#include "migrate/migrate.h"

static uint16_t mig_port = CFG_DEFAULT_MIGRATE_PORT;
static bool mig_listening;

static bool migrate_pending(void)
{
	return mig_src_pending() || mig_dst_pending();
}

static void migrate_service(void)
{
	mig_src_service();
	mig_dst_service();
}

static const struct mainloop_service migrate_svc = {
	.name = "migrate",
	.service = migrate_service,
	.pending = migrate_pending,
};

void migrate_start(const struct tern_config *cfg)
{
	int rc;

	/* Outgoing migrations need the service even where none come in. */
	mainloop_register(&migrate_svc);

	mig_port = cfg->migrate_port;
	if (!cfg->has_secret) {
		pr_warn("migrate: no secret in tern.cfg: migration off");
		return;
	}
	rc = mig_dst_listen(cfg->migrate_port, &cfg->migrate_allow);
	if (rc < 0) {
		pr_err("migrate: cannot listen on TCP port %u (%s)", cfg->migrate_port,
		       cmd_strerror(rc));
		return;
	}
	mig_listening = true;
	pr_info("migrate: accepting migrations on TCP port %u (TLS 1.2, pre-shared key)",
		cfg->migrate_port);
}

/* "a.b.c.d" or "a.b.c.d:port" into addr and *port. */
static int mig_parse_addr(const char *s, char *addr, size_t len, uint16_t *port)
{
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	uint64_t p;

	if (n == 0 || n >= len)
		return -EINVAL;
	memcpy(addr, s, n);
	addr[n] = '\0';
	*port = mig_port;
	if (colon) {
		if (cmd_parse_u64(colon + 1, &p) < 0 || p < 1 || p > 65535)
			return -EINVAL;
		*port = (uint16_t)p;
	}
	return 0;
}

static int mig_parse_opt(const char *tok, struct mig_params *p)
{
	const char *val;
	uint64_t n;

	if (!strcmp(tok, "live") || !strcmp(tok, "quick")) {
		p->mode = tok[0] == 'l' ? MIG_LIVE : MIG_QUICK;
		return 0;
	}
	if (cmd_parse_kv(tok, "downtime", &val))
		return cmd_parse_u64(val, &n) < 0 || n < 1 || n > 60000 ? -EINVAL :
		       (p->downtime_ms = (uint32_t)n, 0);
	if (cmd_parse_kv(tok, "bandwidth", &val))
		return cmd_parse_u64(val, &n) < 0 || n > 100000 ? -EINVAL :
		       (p->bandwidth_mbs = (uint32_t)n, 0);
	if (cmd_parse_kv(tok, "encrypt", &val)) {
		if (strcmp(val, "on") && strcmp(val, "off"))
			return -EINVAL;
		p->plain = !strcmp(val, "off");
		return 0;
	}
	if (cmd_parse_kv(tok, "as", &val)) {
		if (!val[0] || strlen(val) > MIG_NAME_MAX)
			return -EINVAL;
		snprintf(p->as_name, sizeof(p->as_name), "%s", val);
		return 0;
	}
	if (cmd_parse_kv(tok, "timeout", &val))
		return cmd_parse_u64(val, &n) < 0 || n < 1 || n > 86400 ? -EINVAL :
		       (p->timeout_s = (uint32_t)n, 0);
	return -EINVAL;
}

int mig_cmd_migrate(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct mig_params p = { .mode = MIG_LIVE, .downtime_ms = MIG_DEFAULT_DOWNTIME_MS,
				.timeout_s = MIG_DEFAULT_TIMEOUT_S };
	struct vm *vm = vm_find(argv[0]);
	char addr[24], why[160];
	uint16_t port;
	int rc;

	(void)ctx;
	if (!vm) {
		cmd_printf(o, "error: migrate: no VM named '%s'\n", argv[0]);
		return -ENOENT;
	}
	if (mig_parse_addr(argv[1], addr, sizeof(addr), &port) < 0) {
		cmd_printf(o, "error: migrate: bad address '%s' (ADDR or ADDR:PORT)\n", argv[1]);
		return -EINVAL;
	}
	for (int i = 2; i < argc; i++) {
		if (mig_parse_opt(argv[i], &p) < 0) {
			cmd_printf(o, "error: migrate: bad option '%s' (live|quick downtime=MS "
				   "bandwidth=MB/s timeout=S encrypt=on|off as=NAME)\n", argv[i]);
			return -EINVAL;
		}
	}
	rc = mig_src_start(vm, addr, port, &p, why, sizeof(why));
	if (rc < 0) {
		cmd_printf(o, "error: migrate: %s\n", why);
		return rc;
	}
	cmd_printf(o, "migrating %s to %s:%u (%s%s, downtime target %u ms, %s, timeout %u s); "
		   "'migrate status' shows progress\n", vm->name, addr, port,
		   p.mode == MIG_LIVE ? "live" : "quick", p.plain ? ", unencrypted" : "",
		   p.downtime_ms,
		   p.bandwidth_mbs ? "bandwidth capped" : "no bandwidth cap", p.timeout_s);
	return 0;
}

int mig_cmd_status(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc, (void)argv;
	mig_src_status(o);
	mig_dst_status(o);
	return 0;
}

/* The CPUID a migrating guest's host must match, one leaf a line. */
int mig_cmd_identity(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	static struct mig_cpuid id[MIG_CPUID_MAX];
	uint32_t n = mig_cpuid_identity(id, MIG_CPUID_MAX);

	(void)ctx, (void)argc, (void)argv;
	cmd_printf(o, "leaf     sub  eax      ebx      ecx      edx\n");
	for (uint32_t i = 0; i < n; i++)
		cmd_printf(o, "%08x %-4u %08x %08x %08x %08x\n", id[i].leaf, id[i].subleaf,
			   id[i].eax, id[i].ebx, id[i].ecx, id[i].edx);
	return 0;
}

int mig_cmd_cancel(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	char why[160];
	int rc;

	(void)ctx, (void)argc, (void)argv;
	rc = mig_src_cancel(why, sizeof(why));
	if (rc < 0) {
		cmd_printf(o, "error: migrate cancel: %s\n", why);
		return rc;
	}
	cmd_printf(o, "migration cancelled; the VM keeps running here\n");
	return 0;
}

const struct cmd_def mig_cmds[] = {
	{ "migrate", "NAME ADDR[:PORT] [live|quick] [downtime=MS] [bandwidth=MB/s] [timeout=S] "
	  "[encrypt=on|off] [as=NAME]", "move a VM to another Tern host (live by default)", 2, 8,
	  mig_cmd_migrate },
	{ "migrate status", "", "phase, round, bytes, rates and the last report", 0, 0, mig_cmd_status },
	{ "migrate cancel", "", "stop the outgoing migration; the VM keeps running here",
	  0, 0, mig_cmd_cancel },
	{ "migrate identity", "", "the CPUID leaves a migrating guest's hosts must agree on",
	  0, 0, mig_cmd_identity },
	{ "vm save", "NAME to=DISK | status", "pause a VM, write its whole state to a shared "
	  "disk, then stop it here ('vm save status': progress, time, bytes)", 1, 2, mig_cmd_save },
	{ "vm restore", "NAME from=DISK [force] [any]", "start a saved VM here from a shared "
	  "disk (force: a save restored before; any: a save of another VM, as NAME)", 2, 4,
	  mig_cmd_restore },
};
const size_t mig_ncmds = ARRAY_SIZE(mig_cmds);
