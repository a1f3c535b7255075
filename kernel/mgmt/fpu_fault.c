/*
 * `vm fpufault NAME`: a self-check of the FPU restore's exception fixup
 * (vcpu.c vcpu_fpu_enter, trap.c extable_fixup).  It sets MXCSR bit 31 in
 * vCPU 0's saved FPU image of a paused VM, a bit no CPU's MXCSR_MASK has
 * (SDM Vol. 1 11.6.6), and with XSAVE a reserved byte of the XSAVE header
 * (SDM Vol. 1 13.8.1), so the XRSTOR/FXRSTOR at the next entry raises #GP
 * in ring 0.  The fixup must stop that VM alone, with the reason, and
 * leave its host CPU serving.  vcpu_check.c refuses such an image from a
 * stream; this is the path for a rule it might miss.
 */
#include <errno.h>
#include <string.h>
#include "kernel/lib/vcpu_check.h"
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/virt/vm.h"
#include "kernel/mgmt/vm_cmds.h"

#define MXCSR_POISON	(1u << 31)

int vm_cmd_fpufault(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct vm *vm = vm_find(argv[0]);
	struct vcpu *v;
	uint32_t mxcsr;

	(void)ctx, (void)argc;
	if (!vm) {
		cmd_printf(o, "error: vm fpufault: no VM named '%s'\n", argv[0]);
		return -ENOENT;
	}
	v = &vm->vcpus[0];
	if (vm->state != VM_PAUSED || (v->running && !v->parked)) {
		cmd_printf(o, "error: vm fpufault: %s is %s, not paused\n", vm->name,
			   vm_state_name(vm->state));
		return -EBUSY;
	}
	memcpy(&mxcsr, v->fpu_guest + XSAVE_MXCSR_OFF, 4);
	mxcsr |= MXCSR_POISON;
	memcpy(v->fpu_guest + XSAVE_MXCSR_OFF, &mxcsr, 4);
	if (cpu_host_caps()->xsave)
		v->fpu_guest[XSAVE_HDR_OFF + 16] = 1;
	cmd_printf(o, "vm %s vCPU 0: MXCSR %#x%s in its FPU image; the next entry's "
		   "restore faults\n", vm->name, mxcsr,
		   cpu_host_caps()->xsave ? ", XSAVE header byte 16 0x1" : "");
	return 0;
}
