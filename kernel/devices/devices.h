/* Guest device models of this stage (see devices.c). */
#ifndef TERN_DEVICES_H
#define TERN_DEVICES_H

#include "kernel/virt/vm.h"

#define TESTDEV_BASE	0xfeb00000ull
#define TESTDEV_SIZE	4096

int devices_create(struct vm *vm);
void devices_destroy(struct vm *vm);
int vuart_push_rx(struct vm *vm, uint8_t c);
void vuart_attach(struct vm *vm);	/* NULL detaches */
struct vm *vuart_attached(void);

/*
 * Device timers (the PIT's channel 0 on GSI 2, the RTC on GSI 8), for
 * vCPU 0's loop: the earliest guest time (vm_time_ns) at which some device
 * needs devices_timer_run, 0 for none -- possibly already <= now_ns, then
 * run at once; and the run, which raises the interrupts due by now_ns (a
 * periodic source that missed several periods raises one, never one per
 * lost tick).  Both take the devices' lock; any CPU may call them.
 */
uint64_t devices_timer_deadline(struct vm *vm, uint64_t now_ns);
void devices_timer_run(struct vm *vm, uint64_t now_ns);

/*
 * Migration.  devices_save calls emit once per device model with its
 * state (name, format version, bytes; valid during the call).
 * devices_load takes one such blob from the network: 0, -ENOENT for an
 * unknown name or version, -EINVAL for a blob that does not parse.
 */
int devices_save(struct vm *vm, int (*emit)(void *ctx, const char *name, uint32_t version,
					    const void *blob, uint32_t len), void *ctx);
int devices_load(struct vm *vm, const char *name, uint32_t version, const void *blob,
		 uint32_t len);

#endif
