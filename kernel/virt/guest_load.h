/* Loading a guest kernel from the ESP into a new VM (guest_load.c). */
#ifndef TERN_GUEST_LOAD_H
#define TERN_GUEST_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kernel/virt/vm.h"

const struct boot_module *module_find(const char *path);
/* Picks the protocol from the file: a Linux bzImage or PVH vmlinux
 * (guest_linux.c) or a Multiboot v1 kernel; sets vm->kind. */
int guest_load(struct vm *vm, char *err, size_t errlen);
/* vCPU v in 32-bit flat protected mode at eip (Multiboot and PVH entry). */
void guest_flat32_state(struct vcpu *v, uint32_t eip, uint32_t eax, uint32_t ebx);
int guest_zero_gpa(struct vm *vm, uint64_t gpa, uint64_t len);

/* guest_linux.c */
bool guest_is_bzimage(const uint8_t *img, uint64_t size);
int guest_load_linux(struct vm *vm, const uint8_t *img, uint64_t size, char *err,
		     size_t errlen);
bool guest_is_pvh(const uint8_t *img, uint64_t size);
int guest_load_linux_pvh(struct vm *vm, const uint8_t *img, uint64_t size, char *err,
			 size_t errlen);

#endif
