/* Handlers of the `vm ...` console commands (vm_cmds.c, dirty_check.c, console.c). */
#ifndef TERN_VM_CMDS_H
#define TERN_VM_CMDS_H

#include "kernel/mgmt/console.h"

#define VM_CMD(n) int vm_cmd_##n(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
VM_CMD(create);
VM_CMD(start);
VM_CMD(pause);
VM_CMD(resume);
VM_CMD(stop);
VM_CMD(destroy);
VM_CMD(list);
VM_CMD(info);
VM_CMD(console);
VM_CMD(dirty);
VM_CMD(dirtycheck);
VM_CMD(benchexit);
VM_CMD(memcheck);
VM_CMD(fpufault);
#undef VM_CMD

struct tern_config;
/* vm_boot.c: create (and autostart) the guests of tern.cfg's vm lines. */
void vm_boot_create(const struct tern_config *cfg);

extern const struct cmd_def vm_cmds[];
extern const size_t vm_ncmds;

#endif
