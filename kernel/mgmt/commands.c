/*
 * The host's own console commands.  Parsing, dispatch, help and --json
 * framing live in the pure lib/cmd.c; these handlers only gather and print
 * facts.  Each subsystem keeps its own table (registry.h).
 */
#include <errno.h>
#include <stdlib.h>
#include "kernel/platform/arch.h"
#include "kernel/mgmt/console.h"
#include "kernel/platform/cpu.h"
#include "kernel/kernel.h"
#include "version.h"
#include "kernel/mgmt/registry.h"
#include "kernel/platform/mainloop.h"
#include "kernel/virt/vm.h"

#define LOG_DEFAULT_LINES	20
#define LOG_MAX_LINES		100000

static int host_cmd_help(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx;
	mgmt_help(argc ? argv[0] : NULL, o);
	return 0;
}

static int host_cmd_version(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc, (void)argv;
	cmd_printf(o, "Tern %s (built %s, %s)\n", TERN_VERSION, TERN_BUILD_DATE,
		   TERN_COMPILER);
	return 0;
}

static void print_uptime(struct cmd_out *o)
{
	uint64_t us = time_us(), s = us / 1000000;

	cmd_printf(o, "uptime: %lud %02lu:%02lu:%02lu.%03lu\n", s / 86400,
		   (s / 3600) % 24, (s / 60) % 60, s % 60, (us / 1000) % 1000);
}

static int host_cmd_status(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	uint64_t total, used, freeb;

	(void)ctx, (void)argc, (void)argv;
	mm_stats(&total, &used, &freeb);
	cmd_printf(o, "hostname: %s\n", console_hostname());
	print_uptime(o);
	cmd_printf(o, "cpus: %u/%u online\n", cpus_online, cpus_total);
	cmd_printf(o, "memory: total %lu MiB, used %lu MiB, free %lu MiB\n",
		   total >> 20, used >> 20, freeb >> 20);
	cmd_printf(o, "clock: TSC %lu MHz (calibrated against %s)\n",
		   tsc_hz() / 1000000, time_source());
	cmd_printf(o, "virtualization: %s\n", hv_status());
	return 0;
}

static void noop(void *arg)
{
	(void)arg;
}

/* Per-CPU facts, and a cross-CPU call to each to prove it answers. */
static int host_cmd_cpus(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	uint64_t now = rdtsc();
	uint32_t i, deaf[MAX_CPUS], ndeaf = 0;

	(void)ctx, (void)argc, (void)argv;
	cmd_printf(o, "cpu  apic  state    irqs      idle  call-rtt\n");
	for (i = 0; i < MAX_CPUS; i++) {
		struct percpu *p = cpu_table[i];
		uint64_t t0, rtt = 0;
		int rc = 0;

		if (!p)
			continue;
		if (p->online) {
			t0 = rdtsc();
			rc = smp_call(i, noop, NULL, true);
			rtt = (rdtsc() - t0) * 1000000 / (tsc_hz() ? tsc_hz() : 1);
		}
		if (rc == -ETIMEDOUT)
			deaf[ndeaf++] = i;
		cmd_printf(o, "%-4u %-5u %-8s %-9lu %3lu%%  %s%lu us\n", p->id,
			   p->apic_id, p->dead ? "stopped" : p->online ? "online" : "offline",
			   p->irqs, cpu_idle_cycles(p, now) * 100 / (now - boot_tsc_at_entry + 1),
			   rc == -ETIMEDOUT ? "no answer after " : "", rtt);
	}
	/* smp_call bounds the wait: a wedged CPU costs one bound, and is named. */
	for (i = 0; i < ndeaf; i++)
		cmd_printf(o, "error: cpus: CPU %u did not answer a cross-CPU call "
			   "within %u ms\n", deaf[i], SMP_CALL_TIMEOUT_MS);
	return ndeaf ? -ETIMEDOUT : 0;
}

struct log_out {
	struct cmd_out *o;
};

static void log_print_one(void *ctx, int level, uint64_t ts, const char *text,
			  size_t len)
{
	struct log_out *l = ctx;
	static const char tag[] = "EWID";

	cmd_printf(l->o, "[%5lu.%06lu] %c %.*s\n", ts / 1000000, ts % 1000000,
		   tag[level & 3], (int)len, text);
}

static int host_cmd_log(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	uint64_t n = LOG_DEFAULT_LINES;
	struct log_out l = { o };

	(void)ctx;
	if (argc && (cmd_parse_u64(argv[0], &n) < 0 || n == 0 || n > LOG_MAX_LINES)) {
		cmd_printf(o, "error: log: bad line count '%s' (expected 1..%d)\n",
			   argv[0], LOG_MAX_LINES);
		return -EINVAL;
	}
	log_tail((size_t)n, log_print_one, &l);
	return 0;
}

static int host_cmd_reboot(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc, (void)argv;
	cmd_printf(o, "rebooting\n");
	acpi_reboot();
}

static int host_cmd_poweroff(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc, (void)argv;
	cmd_printf(o, "powering off\n");
	udelay(20000);		/* let the UART drain the reply */
	system_poweroff();
	cmd_printf(o, "error: poweroff: the platform ignored ACPI S5 and UEFI ResetSystem\n");
	return -EIO;
}

static void trap_here(void *arg)
{
	(void)arg;
	__asm__ volatile("ud2");
}

/* Proves the exception path on a live host: the chosen CPU reports #UD
 * with its registers and stack, then stops; the console carries on.  The
 * call record is never freed: the CPU that would free it is gone. */
static int host_cmd_debug_trap(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	uint64_t cpu;

	(void)ctx, (void)argc;
	if (cmd_parse_u64(argv[0], &cpu) < 0 || cpu >= MAX_CPUS || !cpu_table[cpu] ||
	    !cpu_table[cpu]->online) {
		cmd_printf(o, "error: debug trap: no online CPU '%s'\n", argv[0]);
		return -EINVAL;
	}
	if (cpu == 0) {
		cmd_printf(o, "error: debug trap: CPU 0 runs this console\n");
		return -EINVAL;
	}
	smp_call((uint32_t)cpu, trap_here, NULL, false);
	mainloop_wait(NULL, NULL, time_us() + 200000);	/* the report prints meanwhile */
	cmd_printf(o, "CPU %lu is %s\n", cpu, cpu_table[cpu]->dead ? "stopped" : "still running");
	return 0;
}

/* debug deaf: the CPU runs this with interrupts off for the given time
 * and serves no cross-CPU call meanwhile, as a wedged CPU would. */
static void deaf_here(void *arg)
{
	uint64_t f = irq_save();

	udelay((uint64_t)(uintptr_t)arg * 1000);
	irq_restore(f);
}

#define DEAF_MAX_MS	60000

static int host_cmd_debug_deaf(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	uint64_t cpu, ms;

	(void)ctx, (void)argc;
	if (cmd_parse_u64(argv[0], &cpu) < 0 || cpu >= MAX_CPUS || !cpu_table[cpu] ||
	    !cpu_table[cpu]->online || cpu == 0) {
		cmd_printf(o, "error: debug deaf: no online CPU '%s' (other than 0)\n",
			   argv[0]);
		return -EINVAL;
	}
	if (cmd_parse_u64(argv[1], &ms) < 0 || ms == 0 || ms > DEAF_MAX_MS) {
		cmd_printf(o, "error: debug deaf: bad time '%s' (1..%d ms)\n", argv[1],
			   DEAF_MAX_MS);
		return -EINVAL;
	}
	if (cpu_table[cpu]->runs_vcpu) {
		cmd_printf(o, "error: debug deaf: CPU %lu runs a vCPU\n", cpu);
		return -EBUSY;
	}
	smp_call((uint32_t)cpu, deaf_here, (void *)(uintptr_t)ms, false);
	cmd_printf(o, "CPU %lu ignores calls for %lu ms\n", cpu, ms);
	return 0;
}

static int host_cmd_services(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc, (void)argv;
	mainloop_report(o);
	return 0;
}

/* The host's own commands; the subsystems' tables join them in kernel/main.c. */
const struct cmd_def host_cmds[] = {
	{ "help", "[COMMAND]", "list commands, or describe one", 0, 1, host_cmd_help },
	{ "version", "", "show the Tern version", 0, 0, host_cmd_version },
	{ "status", "", "uptime, CPUs online, memory", 0, 0, host_cmd_status },
	{ "cpus", "", "per-CPU state, interrupts, idle time, IPI round trip", 0, 0, host_cmd_cpus },
	{ "services", "", "the boot CPU's main-loop services: runs and longest call",
	  0, 0, host_cmd_services },
	{ "log", "[N]", "show the last N host log lines (default 20)", 0, 1, host_cmd_log },
	{ "reboot", "", "reset the machine", 0, 0, host_cmd_reboot },
	{ "poweroff", "", "power the machine off (ACPI S5)", 0, 0, host_cmd_poweroff },
	{ "debug trap", "CPU", "raise #UD on a CPU to test the exception report (stops it)",
	  1, 1, host_cmd_debug_trap },
	{ "debug deaf", "CPU MS", "make a CPU ignore cross-CPU calls for MS ms (a wedged CPU)",
	  2, 2, host_cmd_debug_deaf },
};
const size_t host_ncmds = ARRAY_SIZE(host_cmds);
