/*
 * The composition root.  Kernel start-up on the boot CPU, in dependency
 * order: console output first (so every later failure is visible), then
 * memory, this CPU's tables, ACPI, interrupt controllers, time, the other
 * CPUs, the virtualization back end, and the subsystems, each of which
 * joins the boot CPU's main loop with its service.  The console commands
 * of every subsystem are composed here, in the order `help` lists them.
 * This is the one file under kernel/ that knows net/, storage/ and
 * migrate/.
 */
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/platform/mainloop.h"
#include "kernel/kernel.h"
#include "kernel/lib/config.h"
#include "kernel/mgmt/console.h"
#include "kernel/mgmt/registry.h"
#include "kernel/mgmt/vm_cmds.h"
#include "kernel/virt/vm.h"
#include "version.h"
#include "net/netdev.h"
#include "net/nic.h"
#include "net/stack.h"
#include "migrate/migrate.h"
#include "storage/storage.h"

#define COM1		0x3f8
#define TICK_HZ		100

const struct boot_info *boot_info;
static struct tern_config host_cfg;

static void timer_tick(struct trap_frame *f, void *ctx)
{
	(void)f, (void)ctx;	/* waking the boot CPU is the point */
}

static void check_boot_info(const struct boot_info *bi)
{
	if (bi->magic != BOOT_INFO_MAGIC || bi->version != BOOT_INFO_VERSION ||
	    bi->size != sizeof(*bi))
		panic("boot info mismatch: magic %#lx version %u size %u "
		      "(loader and kernel are from different builds)",
		      bi->magic, bi->version, bi->size);
}

static void load_config(void)
{
	struct cfg_error err;

	cfg_defaults(&host_cfg);
	if (cfg_parse(phys_to_virt(boot_info->config_phys), boot_info->config_size,
		      &host_cfg, &err) < 0) {
		/* The loader checked it already; keep defaults if it changed. */
		pr_err("config: %s: using defaults", err.msg);
		cfg_defaults(&host_cfg);
	}
	log_set_level(host_cfg.log_level);
	pr_info("config: hostname %s, address %s, console port %u, secret %s",
		host_cfg.hostname, host_cfg.addr_dhcp ? "dhcp" : "static",
		host_cfg.console_port, host_cfg.has_secret ? "set" : "none");
}

static void report_boot_time(void)
{
	uint64_t hz = tsc_hz();

	if (!hz || boot_info->loader_tsc >= boot_tsc_at_entry)
		return;
	pr_info("boot: loader %lu ms, kernel %lu ms to console",
		(boot_tsc_at_entry - boot_info->loader_tsc) * 1000 / hz,
		time_us() / 1000);
}

/* Every subsystem's commands, in the order `help` lists them. */
static void add_commands(void)
{
	static const struct {
		const struct cmd_def *defs;
		const size_t *n;
	} tabs[] = {
		{ host_cmds, &host_ncmds }, { nic_cmds, &nic_ncmds },
		{ net_cmds, &net_ncmds }, { mig_cmds, &mig_ncmds },
		{ disk_cmds, &disk_ncmds }, { vm_cmds, &vm_ncmds },
	};

	for (size_t i = 0; i < ARRAY_SIZE(tabs); i++)
		if (mgmt_add_commands(tabs[i].defs, *tabs[i].n) < 0)
			panic("too many console commands: raise MGMT_MAX_CMDS");
}

void kmain(uint64_t bi_phys);

void kmain(uint64_t bi_phys)
{
	struct percpu *bsp;

	boot_tsc_at_entry = rdtsc();
	serial_init(COM1);
	boot_info = phys_to_virt(bi_phys);
	log_init();
	pr_info("Tern %s booting", TERN_VERSION);
	check_boot_info(boot_info);
	mm_init(boot_info);
	idt_init();
	bsp = cpu_alloc(0, 0);
	if (!bsp)
		panic("no memory for the boot CPU");
	cpu_setup(bsp);
	load_config();
	acpi_init(boot_info->rsdp_phys);
	lapic_init_cpu();
	bsp->apic_id = lapic_id();
	bsp->online = true;
	cpus_online = 1;
	ioapic_init();
	time_init();
	pr_info("apic: LAPIC timer %u Hz", lapic_timer_calibrate());
	irq_register(VEC_TIMER, timer_tick, NULL);
	lapic_timer_periodic(VEC_TIMER, TICK_HZ);
	irq_enable();
	smp_boot_aps();
	hv_init();
	add_commands();
	net_stack_set_config(&host_cfg);
	net_init();
	net_stack_start();
	netcon_start(&host_cfg);
	vm_services_start();
	storage_start(&host_cfg);
	migrate_start(&host_cfg);
	if (hv)
		vm_boot_create(&host_cfg);
	else if (host_cfg.nvms)
		pr_err("config: %u vm lines ignored: %s", host_cfg.nvms, hv_status());
	report_boot_time();
	console_start(host_cfg.hostname);
	mainloop_run();
}
