/*
 * A VM's PCI bus 0 (kernel/devices/vpci.c): the host bridge model
 * (model/pci_host.c) on the VM's port and MMIO buses -- config mechanism
 * #1 at 0xcf8, the ECAM window the MCFG names, and the BAR window the
 * DSDT's PCI0 _CRS gives -- and one lock that every access to a function
 * on it holds: vCPU exits (config cycles, BAR reads and writes, queue
 * notifications) and the back ends' completions on the main loop alike.
 *
 * Lock order: the bus lock, then the interrupt chips (an MSI is sent
 * with it held, kernel/virt/irq.c), then a LAPIC.
 */
#ifndef TERN_DEVICES_VPCI_H
#define TERN_DEVICES_VPCI_H

#include <stddef.h>
#include <stdint.h>

#define VPCI_ECAM	0xe0000000ull
#define VPCI_ECAM_SIZE	(1ull << 20)		/* bus 0 only */
#define VPCI_MMIO_BASE	0xe0100000u
#define VPCI_MMIO_SIZE	0x1ea00000u		/* up to the test device, 0xfeb00000 */

struct vm;
struct pcih_func;

int vpci_create(struct vm *vm);
void vpci_destroy(struct vm *vm);
/* Plug f into the first free slot (its BARs get addresses): the slot,
 * or -ENOSPC.  Functions stay until vpci_destroy. */
int vpci_add(struct vm *vm, struct pcih_func *f);
uint64_t vpci_lock(struct vm *vm);
void vpci_unlock(struct vm *vm, uint64_t flags);
/* Migration: the host bridge's record (pcih_save: CONFIG_ADDRESS and the
 * config space of every function), under the bus lock.  Size, bytes or
 * -ENOSPC; load 0 or -EINVAL (nothing changed), -ENODEV without a bus. */
size_t vpci_save_size(struct vm *vm);
int vpci_save(struct vm *vm, uint8_t *buf, size_t cap);
int vpci_load(struct vm *vm, const uint8_t *buf, size_t len);
/* An MSI (PCI 3.0 6.8.1.3: address 0xfeeXXXXX, data) into the VM's APICs. */
void vpci_msi(struct vm *vm, uint64_t addr, uint32_t data);

#endif
