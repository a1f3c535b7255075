/*
 * `vm benchexit NAME [n=N]`: the bare per-exit cost of this CPU's
 * virtualisation, measured on a created (not started) VM with the vendor's
 * minimal enter/exit loop.  tests/bench/ prints it next to the cost the
 * same exit has through Tern's generic run loop.  The console CPU waits
 * (spinning) for the run, so n is capped.
 */
#include <errno.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/virt/vm.h"
#include "kernel/mgmt/vm_cmds.h"

#define BENCH_GPA	0x8000ull	/* below the Multiboot info page */

struct bench_run {
	struct vcpu *v;
	uint64_t iters;
	int64_t cycles;
};

static void bench_on_cpu(void *arg)
{
	struct bench_run *b = arg;

	b->cycles = hv->vcpu_init(b->v) < 0 ? -ENOMEM :
		    hv->bench_min_exit(b->v, b->iters);
	hv->vcpu_free(b->v);
}

int vm_cmd_benchexit(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	static const uint8_t loop[4] = { 0x0f, 0xa2, 0xeb, 0xfc };	/* cpuid; jmp .-2 */
	struct vm *vm = vm_find(argv[0]);
	struct bench_run b = { .iters = 100000 };
	struct vcpu_state saved;
	uint8_t old[sizeof(loop)];
	const char *val;
	uint32_t cpu = 0;
	int rc;

	(void)ctx;
	if (argc > 1 && (!cmd_parse_kv(argv[1], "n", &val) ||
			 cmd_parse_u64(val, &b.iters) < 0 || !b.iters ||
			 b.iters > 1000000)) {
		cmd_printf(o, "error: vm benchexit: bad argument '%s'\n", argv[1]);
		return -EINVAL;
	}
	/* A free CPU only: the loop would otherwise run inside another
	 * guest's vCPU loop and, on VT-x, replace its current VMCS. */
	if (!vm || vm->state != VM_CREATED || !hv->bench_min_exit ||
	    vm_pick_cpu(&cpu) < 0) {
		cmd_printf(o, "error: vm benchexit: needs a created, not started VM "
			   "and a free CPU\n");
		return -EINVAL;
	}
	b.v = &vm->vcpus[0];
	saved = b.v->st;
	vm_read_gpa(vm, BENCH_GPA, old, sizeof(old));
	vm_write_gpa(vm, BENCH_GPA, loop, sizeof(loop));
	b.v->st.rip = BENCH_GPA;
	b.v->host_cpu = cpu;
	rc = smp_call(cpu, bench_on_cpu, &b, true);
	vm_write_gpa(vm, BENCH_GPA, old, sizeof(old));
	b.v->st = saved;
	if (rc < 0) {
		cmd_printf(o, "error: vm benchexit: CPU %u: %s\n", cpu, cmd_strerror(rc));
		return rc;
	}
	if (b.cycles < 0) {
		cmd_printf(o, "error: vm benchexit: %s\n", cmd_strerror((int)b.cycles));
		return (int)b.cycles;
	}
	cmd_printf(o, "BENCH minimal n=%lu cycles=%ld\n", b.iters, b.cycles);
	return 0;
}
