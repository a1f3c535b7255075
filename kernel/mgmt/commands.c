/*
 * The console's commands.  Parsing, dispatch, help and --json framing live
 * in the pure lib/cmd.c; these handlers only gather and print facts.
 */
#include <errno.h>
#include <stdlib.h>
#include "kernel/platform/arch.h"
#include "kernel/mgmt/console.h"
#include "kernel/platform/cpu.h"
#include "kernel/kernel.h"
#include "version.h"
#include "kernel/virt/vm.h"
#include "kernel/mgmt/vm_cmds.h"
#include "net/stack.h"
#include "net/nic.h"
#include "migrate/migrate.h"
#include "storage/disk_cmds.h"

#define LOG_DEFAULT_LINES	20
#define LOG_MAX_LINES		100000

static int cmd_help_fn(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx;
	cmd_help(console_cmds, console_ncmds, argc ? argv[0] : NULL, o);
	return 0;
}

static int cmd_version(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
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

static int cmd_status(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
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
static int cmd_cpus(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	uint64_t now = rdtsc();
	uint32_t i;

	(void)ctx, (void)argc, (void)argv;
	cmd_printf(o, "cpu  apic  state    irqs      idle  call-rtt\n");
	for (i = 0; i < MAX_CPUS; i++) {
		struct percpu *p = cpu_table[i];
		uint64_t t0, rtt = 0;

		if (!p)
			continue;
		if (p->online) {
			t0 = rdtsc();
			smp_call(i, noop, NULL, true);
			rtt = (rdtsc() - t0) * 1000000 / (tsc_hz() ? tsc_hz() : 1);
		}
		cmd_printf(o, "%-4u %-5u %-8s %-9lu %3lu%%  %lu us\n", p->id,
			   p->apic_id, p->dead ? "stopped" : p->online ? "online" : "offline",
			   p->irqs, cpu_idle_cycles(p, now) * 100 / (now - boot_tsc_at_entry + 1), rtt);
	}
	return 0;
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

static int cmd_log(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
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

static int cmd_reboot(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc, (void)argv;
	cmd_printf(o, "rebooting\n");
	acpi_reboot();
}

static int cmd_poweroff(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
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
static int cmd_debug_trap(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
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
	udelay(200000);
	cmd_printf(o, "CPU %lu is %s\n", cpu, cpu_table[cpu]->dead ? "stopped" : "still running");
	return 0;
}

const struct cmd_def console_cmds[] = {
	{ "help", "[COMMAND]", "list commands, or describe one", 0, 1, cmd_help_fn },
	{ "version", "", "show the Tern version", 0, 0, cmd_version },
	{ "status", "", "uptime, CPUs online, memory", 0, 0, cmd_status },
	{ "cpus", "", "per-CPU state, interrupts, idle time, IPI round trip", 0, 0, cmd_cpus },
	{ "log", "[N]", "show the last N host log lines (default 20)", 0, 1, cmd_log },
	{ "reboot", "", "reset the machine", 0, 0, cmd_reboot },
	{ "poweroff", "", "power the machine off (ACPI S5)", 0, 0, cmd_poweroff },
	{ "nic", "", "NICs: model, MAC, link, interrupt, rx/tx packets/bytes, drops, irqs",
	  0, 0, nic_cmd_list },
	{ "nic test", "NAME", "ARP for 10.0.2.2 from 10.0.2.15 (QEMU user net) and show the reply",
	  1, 1, nic_cmd_test },
	{ "debug trap", "CPU", "raise #UD on a CPU to test the exception report (stops it)",
	  1, 1, cmd_debug_trap },
	{ "netcon", "", "network console: port, clients with peer, state, idle time, commands",
	  0, 0, netcon_cmd_list },
	{ "ping", "ADDR [COUNT]", "ICMP echo to ADDR, with round-trip times", 1, 2, net_cmd_ping },
	{ "iperf server", "start|stop", "iperf2 TCP server on port 5001 (off by default)",
	  1, 1, net_cmd_iperf_server },
	{ "iperf client", "ADDR [SECONDS]", "send to an iperf2 server at ADDR:5001 for "
	  "1..10 s (default 10), print Mbit/s", 1, 2, net_cmd_iperf_client },
	{ "iperf status", "", "iperf server state and session counts", 0, 0, net_cmd_iperf_status },
	{ "migrate", "NAME ADDR[:PORT] [live|quick] [downtime=MS] [bandwidth=MB/s] [timeout=S] "
	  "[encrypt=on|off] [as=NAME]", "move a VM to another Tern host (live by default)", 2, 8,
	  mig_cmd_migrate },
	{ "migrate status", "", "phase, round, bytes, rates and the last report", 0, 0, mig_cmd_status },
	{ "migrate cancel", "", "stop the outgoing migration; the VM keeps running here",
	  0, 0, mig_cmd_cancel },
	{ "migrate identity", "", "the CPUID leaves a migrating guest's hosts must agree on",
	  0, 0, mig_cmd_identity },
	{ "disk attach", "NAME iscsi://ADDR[:PORT]/IQN/LUN [chap=USER:SECRET] "
	  "[mutual=USER:SECRET] [digest=none|crc32c|header|data]",
	  "log in to an iSCSI LUN and attach it as disk NAME", 2, 5, disk_cmd_attach },
	{ "disk detach", "NAME", "drain, release the reservation, log out", 1, 1, disk_cmd_detach },
	{ "disk list", "", "disks with state, size and target", 0, 0, disk_cmd_list },
	{ "disk info", "NAME", "device, capacity, session, reservation, I/O counters",
	  1, 1, disk_cmd_info },
	{ "disk discover", "ADDR[:PORT]", "list the targets a portal offers (SendTargets)",
	  1, 1, disk_cmd_discover },
	{ "disk read", "NAME LBA COUNT", "read blocks, print their SHA-256", 3, 3, disk_cmd_read },
	{ "disk write", "NAME LBA COUNT BYTE", "fill blocks with one byte value, then flush",
	  4, 4, disk_cmd_write },
	{ "disk flush", "NAME", "SYNCHRONIZE CACHE", 1, 1, disk_cmd_flush },
	{ "disk fence", "NAME", "pre-empt every other host's key: only this host may write",
	  1, 1, disk_cmd_fence },
	{ "disk keys", "NAME", "registered reservation keys and the holder", 1, 1, disk_cmd_keys },
	{ "disk bench", "NAME read|write seq|rand BS SECONDS [depth=N]",
	  "throughput at a queue depth (destroys data on write)", 5, 6, disk_cmd_bench },
	{ "disk barriercheck", "NAME [rounds=N]", "check that barriers order writes on the "
	  "target (overwrites blocks 0..63)", 1, 2, disk_cmd_barriercheck },
	{ "vm create", "NAME mem=SIZE kernel=PATH [cmdline=\"...\"] [vcpus=1]",
	  "create a VM from a Multiboot kernel on the ESP", 3, 5, vmcmd_create },
	{ "vm start", "NAME", "start a created VM on a free CPU", 1, 1, vmcmd_start },
	{ "vm pause", "NAME", "pause a running VM", 1, 1, vmcmd_pause },
	{ "vm resume", "NAME", "resume a paused VM", 1, 1, vmcmd_resume },
	{ "vm stop", "NAME", "stop a VM (it keeps its memory until destroyed)", 1, 1, vmcmd_stop },
	{ "vm destroy", "NAME", "stop a VM and free everything it holds", 1, 1, vmcmd_destroy },
	{ "vm list", "", "VMs with state, memory, host CPU and exit code", 0, 0, vmcmd_list },
	{ "vm info", "NAME", "exit counts by reason, dirty-log state", 1, 1, vmcmd_info },
	{ "vm console", "NAME", "attach this console to the VM's UART (Ctrl-] detaches)", 1, 1, vmcmd_console },
	{ "vm dirty", "NAME start [dbit|wp|pml] | stop | harvest", "control the dirty log", 2, 3, vmcmd_dirty },
	{ "vm dirtycheck", "NAME [rounds=N] [mode=dbit|wp|pml] [drop=ROUND]",
	  "check that dirty logging loses no write on a running guest", 1, 4, vmcmd_dirtycheck },
	{ "vm memcheck", "NAME", "check the migverify guest's counters page by page (pauses it briefly)",
	  1, 1, vmcmd_memcheck },
	{ "vm benchexit", "NAME [n=N]", "bare enter/exit cost on a created VM (benchmark)",
	  1, 2, vmcmd_benchexit },
};
const size_t console_ncmds = ARRAY_SIZE(console_cmds);
