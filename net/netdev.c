/*
 * The NIC registry: net_init probes the drivers, netdev_poll_all serves
 * the devices.
 *
 * The stack's service in the boot CPU's main loop polls the devices on
 * every wake-up: an MSI/MSI-X interrupt only sets nd->pending (so the loop
 * does not sleep), and a device without message interrupts is still served
 * by the 100 Hz tick that wakes the loop anyway.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/platform/cpu.h"
#include "kernel/kernel.h"
#include "net/nic.h"

#define NET_POLL_BUDGET		64
#define LINK_CHECK_US		250000
#define ARP_WAIT_US		2000000

static struct netdev *netdevs[NETDEV_MAX];
static struct pci_dev *netdev_pci[NETDEV_MAX];
static int nnetdevs;
static uint64_t next_link_check;

int netdev_register(struct netdev *nd)
{
	if (!nd || !nd->ops || !nd->ops->xmit || !nd->ops->poll)
		return -EINVAL;
	if (nnetdevs >= NETDEV_MAX)
		return -ENOSPC;
	netdevs[nnetdevs++] = nd;
	return 0;
}

int netdev_xmit(struct netdev *nd, const void *frame, size_t len,
		const struct netdev_csum *csum)
{
	if (nd->tx_hook)
		return nd->tx_hook(nd, frame, len, csum);
	return nd->ops->xmit(nd, frame, len, csum);
}

int nic_register(struct netdev *nd, struct pci_dev *pd)
{
	int r = netdev_register(nd);

	if (r == 0)
		netdev_pci[nnetdevs - 1] = pd;
	return r;
}

int netdev_count(void)
{
	return nnetdevs;
}

struct netdev *netdev_get(int i)
{
	return i >= 0 && i < nnetdevs ? netdevs[i] : NULL;
}

void nic_irq(struct trap_frame *f, void *ctx)
{
	struct netdev *nd = ctx;

	(void)f;
	nd->irqs++;
	nd->pending = true;
}

void nic_deliver(struct netdev *nd, const void *frame, size_t len,
		 unsigned int flags)
{
	if (!nd->rx || len < 14 || len > NETDEV_FRAME_MAX) {
		nd->rx_dropped++;
		return;
	}
	nd->rx_packets++;
	nd->rx_bytes += len;
	if (flags & NETDEV_RX_CSUM_OK)
		nd->rx_csum_frames++;
	nd->rx(nd, frame, len, flags);
}

void net_init(void)
{
	int i, n = pci_init();

	for (i = 0; i < n; i++) {
		struct pci_dev *pd = pci_get(i);

		if (virtio_net_probe(pd) == -ENODEV)
			e1000_probe(pd);
	}
	pr_info("net: %d NIC%s", nnetdevs, nnetdevs == 1 ? "" : "s");
}

struct pci_dev *netdev_pci_dev(int i)
{
	return i >= 0 && i < nnetdevs ? netdev_pci[i] : NULL;
}

bool netdev_pending(void)
{
	int i;

	for (i = 0; i < nnetdevs; i++)
		if (netdevs[i]->pending)
			return true;
	return false;
}

void netdev_poll_all(void)
{
	bool check_link = time_us() >= next_link_check;
	int i;

	if (check_link)
		next_link_check = time_us() + LINK_CHECK_US;
	for (i = 0; i < nnetdevs; i++) {
		struct netdev *nd = netdevs[i];

		/* Cleared first: an interrupt during the poll sets it again. */
		nd->pending = false;
		if (check_link && nd->ops->update_link)
			nd->ops->update_link(nd);
		if (nd->ops->poll(nd, NET_POLL_BUDGET) >= NET_POLL_BUDGET)
			nd->pending = true;	/* more waiting: no sleep */
	}
}
