/* Handlers of the `vm ...` console commands (vm_cmds.c, dirty_check.c, console.c). */
#ifndef TERN_VM_CMDS_H
#define TERN_VM_CMDS_H

#include "kernel/mgmt/console.h"

#define VMCMD(n) int vmcmd_##n(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
VMCMD(create);
VMCMD(start);
VMCMD(pause);
VMCMD(resume);
VMCMD(stop);
VMCMD(destroy);
VMCMD(list);
VMCMD(info);
VMCMD(console);
VMCMD(dirty);
VMCMD(dirtycheck);
VMCMD(benchexit);
VMCMD(memcheck);
#undef VMCMD

extern const struct cmd_def vm_cmds[];
extern const size_t vm_ncmds;

#endif
