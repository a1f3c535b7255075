/* Loading a guest kernel from the ESP into a new VM (guest_load.c). */
#ifndef TERN_GUEST_LOAD_H
#define TERN_GUEST_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kernel/virt/vm.h"

const struct boot_module *module_find(const char *path);
/* Picks the protocol from the file: a Linux bzImage (guest_linux.c) or a
 * Multiboot v1 kernel; sets vm->kind. */
int guest_load(struct vm *vm, char *err, size_t errlen);

/* guest_linux.c */
bool guest_is_bzimage(const uint8_t *img, uint64_t size);
int guest_load_linux(struct vm *vm, const uint8_t *img, uint64_t size, char *err,
		     size_t errlen);

#endif
