/*
 * Console commands for VMs: `vm create|start|pause|resume|stop|destroy|
 * list|info|console|dirty|dirtycheck`.  Parsing lives in lib/cmd.c; these
 * handlers validate arguments and call the VM layer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/mgmt/console.h"
#include "kernel/platform/cpu.h"
#include "kernel/virt/irq.h"
#include "kernel/virt/vm.h"
#include "kernel/mgmt/vm_cmds.h"
#include "kernel/devices/vdev.h"

#define ERRLEN	160

static struct vm *need_vm(struct cmd_out *o, const char *cmd, const char *name)
{
	struct vm *vm = vm_find(name);

	if (!vm)
		cmd_printf(o, "error: vm %s: no VM named '%s' (see 'vm list')\n", cmd, name);
	return vm;
}

int vm_cmd_create(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	const char *kernel = NULL, *initrd = NULL, *cmdline = "", *env = NULL, *val;
	const char *devs[VM_MAX_DEVS];
	int ndevs = 0;
	uint64_t mem = 0, vcpus = 1;
	char err[ERRLEN], mods[256] = "";
	size_t mlen = 0;
	int i, rc;

	(void)ctx;
	for (i = 1; i < argc; i++) {
		if (cmd_parse_kv(argv[i], "mem", &val)) {
			if (cmd_parse_size(val, &mem) < 0)
				goto bad;
		} else if (cmd_parse_kv(argv[i], "kernel", &val)) {
			kernel = val;
		} else if (cmd_parse_kv(argv[i], "initrd", &val)) {
			initrd = val;
		} else if (cmd_parse_kv(argv[i], "cmdline", &val)) {
			cmdline = val;
		} else if (cmd_parse_kv(argv[i], "env", &val)) {
			env = val;
		} else if (cmd_parse_kv(argv[i], "module", &val) ||
			   cmd_parse_kv(argv[i], "modules", &val)) {
			/* Multiboot modules, in order; module= repeats, modules=A,B. */
			if (!*val || mlen + !!mlen + strlen(val) >= sizeof(mods))
				goto bad;
			mlen += (size_t)snprintf(mods + mlen, sizeof(mods) - mlen, "%s%s",
						 mlen ? "," : "", val);
		} else if (cmd_parse_kv(argv[i], "vcpus", &val)) {
			if (cmd_parse_u64(val, &vcpus) < 0 || vcpus > VM_MAX_VCPUS)
				goto bad;
		} else if (vdev_is_spec(argv[i])) {
			if (ndevs == VM_MAX_DEVS) {
				cmd_printf(o, "error: vm create: at most %d devices\n", VM_MAX_DEVS);
				return -E2BIG;
			}
			devs[ndevs++] = argv[i];
		} else {
			goto bad;
		}
	}
	if (!mem || !kernel) {
		cmd_printf(o, "error: vm create: mem=SIZE and kernel=PATH are required\n");
		return -EINVAL;
	}
	if (env) {
		/* kvm-unit-tests reads its environment (KEY=VALUE lines) from
		 * the first Multiboot module, QEMU's -initrd: so env= goes first. */
		char tmp[sizeof(mods)];

		if (snprintf(tmp, sizeof(tmp), "%s%s%s", env, mlen ? "," : "", mods) >=
		    (int)sizeof(tmp)) {
			cmd_printf(o, "error: vm create: module list too long\n");
			return -E2BIG;
		}
		memcpy(mods, tmp, sizeof(mods));
	}
	rc = vm_create_mods(argv[0], mem, kernel, initrd, mods, cmdline, (int)vcpus, err,
			    sizeof(err));
	if (!rc)
		rc = vm_add_devices(vm_find(argv[0]), devs, ndevs, err, sizeof(err));
	if (rc < 0) {
		cmd_printf(o, "error: vm create: %s\n", err);
		return rc;
	}
	cmd_printf(o, "vm %s created (%lu MiB)\n", argv[0], mem >> 20);
	return 0;
bad:
	cmd_printf(o, "error: vm create: bad argument '%s' (usage: vm create NAME "
		   "mem=SIZE kernel=PATH [initrd=PATH] [env=PATH] [module=PATH]... "
		   "[cmdline=\"...\"] [vcpus=N] [disk=DISK]... [nic=MAC|auto]...)\n", argv[i]);
	return -EINVAL;
}

int vm_cmd_start(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct vm *vm = need_vm(o, "start", argv[0]);
	char err[ERRLEN];
	int rc;

	(void)ctx, (void)argc;
	if (!vm)
		return -ENOENT;
	rc = vm_start(vm, err, sizeof(err));
	if (rc < 0) {
		cmd_printf(o, "error: vm start: %s\n", err);
		return rc;
	}
	cmd_printf(o, "vm %s running on CPU %u\n", vm->name, vm->vcpus[0].host_cpu);
	return 0;
}

static int simple_op(struct cmd_out *o, const char *cmd, const char *name,
		     int (*fn)(struct vm *vm), const char *done)
{
	struct vm *vm = need_vm(o, cmd, name);
	char saved[VM_NAME_MAX];
	int rc;

	if (!vm)
		return -ENOENT;
	if (vm->migrating) {
		cmd_printf(o, "error: vm %s: %s is migrating ('migrate status'; "
			   "'migrate cancel' stops it)\n", cmd, vm->name);
		return -EBUSY;
	}
	strncpy(saved, vm->name, sizeof(saved));	/* destroy frees vm */
	rc = fn(vm);
	if (rc == -EINVAL) {
		cmd_printf(o, "error: vm %s: VM is %s\n", cmd, vm_state_name(vm->state));
		return rc;
	}
	if (rc < 0) {
		cmd_printf(o, "error: vm %s: %s\n", cmd, cmd_strerror(rc));
		return rc;
	}
	cmd_printf(o, "vm %s %s\n", saved, done);
	return 0;
}

static int stop_fn(struct vm *vm)
{
	return vm_stop(vm, "stopped by the operator");
}

int vm_cmd_pause(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc;
	return simple_op(o, "pause", argv[0], vm_pause, "paused");
}

/*
 * A copy whose migration got as far as COMMIT may be running on the
 * destination now: resuming it here too would run two copies against one
 * disk.  Only the operator who looked there says "force".
 */
int vm_cmd_resume(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct vm *vm;
	int rc;

	(void)ctx;
	if (argc == 2 && strcmp(argv[1], "force")) {
		cmd_printf(o, "error: vm resume: '%s': the only option is 'force'\n", argv[1]);
		return -EINVAL;
	}
	vm = need_vm(o, "resume", argv[0]);
	if (!vm)
		return -ENOENT;
	if (vm->committed_away && argc < 2) {
		cmd_printf(o, "error: vm resume: %s was committed to another host by a "
			   "migration and may be running there; check that host, then "
			   "'vm resume %s force'\n", vm->name, vm->name);
		return -EPERM;
	}
	rc = simple_op(o, "resume", argv[0], vm_resume, "running");
	if (!rc)
		vm->committed_away = false;
	return rc;
}

int vm_cmd_stop(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc;
	return simple_op(o, "stop", argv[0], stop_fn, "stopped");
}

int vm_cmd_destroy(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc;
	return simple_op(o, "destroy", argv[0], vm_destroy, "destroyed");
}

static void list_one(struct vm *vm, void *ctx)
{
	struct cmd_out *o = ctx;
	char code[8] = "-";

	if (vm->exit_code >= 0)
		snprintf(code, sizeof(code), "%#x", vm->exit_code);
	cmd_printf(o, "%-16s %-8s %6lu MiB  cpu %-3d exit %s\n", vm->name,
		   vm_state_name(vm->state), vm->mem_size >> 20,
		   vm->vcpus[0].running ? (int)vm->vcpus[0].host_cpu : -1, code);
}

int vm_cmd_list(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc, (void)argv;
	cmd_printf(o, "%-16s %-8s %10s  %-7s %s\n", "NAME", "STATE", "MEMORY", "CPU", "EXIT");
	vm_foreach(list_one, o);
	return 0;
}

int vm_cmd_info(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct vm *vm = need_vm(o, "info", argv[0]);
	struct vcpu *v;
	char line[160];
	int i, k;

	(void)ctx, (void)argc;
	if (!vm)
		return -ENOENT;
	cmd_printf(o, "name: %s\nstate: %s\n", vm->name, vm_state_name(vm->state));
	if (vm->stop_reason[0])
		cmd_printf(o, "reason: %s\n", vm->stop_reason);
	cmd_printf(o, "memory: %lu MiB\nkernel: %s\n", vm->mem_size >> 20, vm->kernel_path);
	if (vm->kind == GUEST_LINUX)
		cmd_printf(o, "kind: Linux bzImage, boot protocol %u.%02u\ninitrd: %s\n",
			   vm->linux_proto >> 8, vm->linux_proto & 0xff,
			   vm->initrd_path[0] ? vm->initrd_path : "none");
	else if (vm->kind == GUEST_LINUX_PVH)
		cmd_printf(o, "kind: Linux PVH (vmlinux ELF)\ninitrd: %s\n",
			   vm->initrd_path[0] ? vm->initrd_path : "none");
	else
		cmd_printf(o, "kind: Multiboot\nmodules: %s\n",
			   vm->module_paths[0] ? vm->module_paths : "none");
	cmd_printf(o, "cmdline: %s\n", vm->boot_cmdline);
	cmd_printf(o, "backend: %s\n", hv_status());
	if (vm->resets)
		cmd_printf(o, "resets: %u, the last: %s\n", vm->resets, vm->last_reset);
	cmd_printf(o, "vcpus: %d\n", vm->nvcpus);
	for (i = 0; i < vm->nvcpus; i++) {
		v = &vm->vcpus[i];
		cmd_printf(o, "vcpu%d: cpu %d rip %#lx exits %lu irqs %lu%s%s\n", i,
			   v->running ? (int)v->host_cpu : -1, v->st.rip, v->exits_total,
			   v->irqs_injected,
			   v->mp_state == VCPU_MP_WAIT_SIPI ? " (waiting for SIPI)" : "",
			   !v->running ? "" : v->where == VCPU_IN_GUEST ? " in guest" :
			   v->where == VCPU_ASLEEP ? " asleep" : " in host");
		irq_vcpu_describe(v, line, sizeof(line));
		cmd_printf(o, "  lapic: %s\n", line);
	}
	cmd_printf(o, "exits:");
	for (k = 1; k < EXIT_KIND_MAX; k++) {
		uint64_t n = 0;

		for (i = 0; i < vm->nvcpus; i++)
			n += vm->vcpus[i].exits[k];
		if (n)
			cmd_printf(o, " %s=%lu", exit_kind_name(k), n);
	}
	cmd_printf(o, "\ndirty-log: %s", dirty_mode_name(vm->dirty_mode));
	if (vm->dirty_mode != DIRTY_OFF)
		cmd_printf(o, ", %lu harvests, %lu pages pending", vm->dirty_harvests,
			   dirtymap_count(&vm->dirty));
	cmd_printf(o, "\n");
	if (vm->ndevs) {
		cmd_printf(o, "devices:\n");
		vdev_info(vm, o);
	}
	return 0;
}

/* The VM commands (handlers here, in dirty_check.c, memcheck.c,
 * bench_cmd.c, fpu_fault.c and console.c). */
const struct cmd_def vm_cmds[] = {
	{ "vm create", "NAME mem=SIZE kernel=PATH [initrd=PATH] [env=PATH] [module=PATH]... "
			"[cmdline=\"...\"] [vcpus=N] [disk=DISK]... [nic=MAC|auto]...",
	  "create a VM from a Linux bzImage or a Multiboot kernel on the ESP", 3, 24,
	  vm_cmd_create },
	{ "vm start", "NAME", "start a created VM on a free CPU", 1, 1, vm_cmd_start },
	{ "vm pause", "NAME", "pause a running VM", 1, 1, vm_cmd_pause },
	{ "vm resume", "NAME [force]", "resume a paused VM (force: one a migration "
	  "committed away)", 1, 2, vm_cmd_resume },
	{ "vm stop", "NAME", "stop a VM (it keeps its memory until destroyed)", 1, 1, vm_cmd_stop },
	{ "vm destroy", "NAME", "stop a VM and free everything it holds", 1, 1, vm_cmd_destroy },
	{ "vm list", "", "VMs with state, memory, host CPU and exit code", 0, 0, vm_cmd_list },
	{ "vm info", "NAME", "exit counts by reason, dirty-log state", 1, 1, vm_cmd_info },
	{ "vm console", "NAME", "attach this console to the VM's UART (Ctrl-] detaches)", 1, 1, vm_cmd_console },
	{ "vm dirty", "NAME start [dbit|wp|pml] | stop | harvest", "control the dirty log", 2, 3, vm_cmd_dirty },
	{ "vm dirtycheck", "NAME [rounds=N] [mode=dbit|wp|pml] [drop=ROUND]",
	  "check that dirty logging loses no write on a running guest", 1, 4, vm_cmd_dirtycheck },
	{ "vm memcheck", "NAME", "check the migverify guest's counters page by page (pauses it briefly)",
	  1, 1, vm_cmd_memcheck },
	{ "vm benchexit", "NAME [n=N]", "bare enter/exit cost on a created VM (benchmark)",
	  1, 2, vm_cmd_benchexit },
	{ "vm fpufault", "NAME", "self-check: make a paused VM's next FPU restore fault "
	  "(the VM must stop, the host CPU not)", 1, 1, vm_cmd_fpufault },
};
const size_t vm_ncmds = ARRAY_SIZE(vm_cmds);
