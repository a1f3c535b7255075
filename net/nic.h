/*
 * Inside the NIC layer: what the drivers and the console command need from
 * netdev.c, and the drivers' probe functions.  The stack uses netdev.h only.
 */
#ifndef TERN_NET_NIC_H
#define TERN_NET_NIC_H

#include "kernel/lib/cmd.h"

#include <stddef.h>
#include "net/netdev.h"
#include "net/pci.h"

#define NIC_RING_SIZE	256		/* RX and TX descriptors per ring */
#define NIC_BUF_SIZE	2048		/* one frame per buffer */

/* Register nd (which lives in the driver's state) for the PCI function. */
int nic_register(struct netdev *nd, struct pci_dev *pd);

/* Drivers: one received frame, already bounds-checked by the driver,
 * with NETDEV_RX_* flags; counted and handed to nd->rx (or counted as
 * dropped without one). */
void nic_deliver(struct netdev *nd, const void *frame, size_t len,
		 unsigned int flags);

/* The IRQ handler every driver registers: mark pending, count. */
void nic_irq(struct trap_frame *f, void *ctx);

/* Drivers: 0 when they took the function, -ENODEV when it is not theirs. */
int virtio_net_probe(struct pci_dev *pd);
int e1000_probe(struct pci_dev *pd);

/* Console: the `nic` and `nic test` commands (nic_cmds.c). */
struct cmd_ctx;
struct cmd_out;
int nic_cmd_list(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int nic_cmd_test(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
extern const struct cmd_def nic_cmds[];
extern const size_t nic_ncmds;

/* The PCI function of netdev i (NULL for a netdev without one). */
struct pci_dev *netdev_pci_dev(int i);

#endif
