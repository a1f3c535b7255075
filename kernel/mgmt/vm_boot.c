/*
 * Guests declared in tern.cfg (`vm = NAME key=value... [autostart]`, see
 * lib/config.h): created at boot, and started when marked autostart, each
 * logged.  A bad line costs only its guest: the error is logged with its
 * line number and the host comes up regardless.
 */
#include <string.h>
#include "kernel/kernel.h"
#include "kernel/lib/config.h"
#include "kernel/mgmt/vm_cmds.h"
#include "kernel/virt/vm.h"

/* The line of an earlier vm line with this name, or 0. */
static int vm_boot_dup(const struct tern_config *cfg, unsigned i, const char *name)
{
	static struct cfg_vm prev;

	for (unsigned j = 0; j < i; j++)
		if (cfg_parse_vm(cfg->vms[j], &prev, NULL, 0) == 0 && !strcmp(prev.name, name))
			return cfg->vm_lines[j];
	return 0;
}

static int vm_boot_devices(struct vm *vm, const struct cfg_vm *v, char *err, size_t len)
{
	const char *devs[CFG_VM_DEVS_MAX];

	for (unsigned k = 0; k < v->ndevs; k++)
		devs[k] = v->devs[k];
	return vm_add_devices(vm, devs, (int)v->ndevs, err, len);
}

static void vm_boot_one(const struct tern_config *cfg, unsigned i)
{
	static struct cfg_vm v;
	char err[160];
	struct vm *vm;
	int line = cfg->vm_lines[i], first;

	if (cfg_parse_vm(cfg->vms[i], &v, err, sizeof(err)) < 0) {
		pr_err("config: line %d: vm: %s", line, err);
		return;
	}
	first = vm_boot_dup(cfg, i, v.name);
	if (first) {
		pr_err("config: line %d: vm %s: duplicate name (first on line %d)", line, v.name,
		       first);
		return;
	}
	if (vm_create(v.name, v.mem, v.kernel, v.initrd, v.cmdline, (int)v.vcpus, err,
		      sizeof(err)) < 0) {
		pr_err("config: line %d: vm %s: %s", line, v.name, err);
		return;
	}
	vm = vm_find(v.name);
	if (vm_boot_devices(vm, &v, err, sizeof(err)) < 0) {
		pr_err("config: line %d: vm %s: %s", line, v.name, err);
		return;
	}
	pr_info("config: vm %s created from line %d%s", v.name, line,
		v.autostart ? ", starting" : "");
	if (v.autostart && vm && vm_start(vm, err, sizeof(err)) < 0)
		pr_err("config: vm %s: not started: %s", v.name, err);
}

void vm_boot_create(const struct tern_config *cfg)
{
	for (unsigned i = 0; i < cfg->nvms; i++)
		vm_boot_one(cfg, i);
}
