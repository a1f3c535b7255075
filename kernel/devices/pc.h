/*
 * The legacy PC devices besides COM1 (kernel/devices/pc.c): the ACPI PM1
 * registers and reset port, the keyboard controller's reset line and
 * port 0x61, and the timers.  devices.c owns one instance per VM.
 */
#ifndef TERN_DEVICES_PC_H
#define TERN_DEVICES_PC_H

#include <stdint.h>
#include "kernel/virt/vm.h"

struct pc_devs;

int pc_create(struct vm *vm, struct pc_devs **out);
void pc_destroy(struct pc_devs *pc);
uint64_t pc_timer_deadline(struct pc_devs *pc, uint64_t now_ns);
void pc_timer_run(struct pc_devs *pc, uint64_t now_ns);
int pc_save(struct pc_devs *pc, int (*emit)(void *ctx, const char *name, uint32_t version,
					    const void *blob, uint32_t len), void *ctx);
/* -ENOENT: not one of these devices. */
int pc_load(struct pc_devs *pc, const char *name, uint32_t version, const void *blob,
	    uint32_t len);

#endif
