/* Guest device models of this stage (see devices.c). */
#ifndef TERN_DEVICES_H
#define TERN_DEVICES_H

#include "vm.h"

#define TESTDEV_BASE	0xfeb00000ull
#define TESTDEV_SIZE	4096

int devices_create(struct vm *vm);
void devices_destroy(struct vm *vm);
int vuart_push_rx(struct vm *vm, uint8_t c);
void vuart_attach(struct vm *vm);	/* NULL detaches */
struct vm *vuart_attached(void);

#endif
