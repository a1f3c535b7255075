/* Loading a guest kernel from the ESP into a new VM (guest_load.c). */
#ifndef TERN_GUEST_LOAD_H
#define TERN_GUEST_LOAD_H

#include <stddef.h>
#include "kernel/virt/vm.h"

const struct boot_module *module_find(const char *path);
int guest_load(struct vm *vm, char *err, size_t errlen);

#endif
