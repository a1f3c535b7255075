/* virtio-net for guests on the switch (vnet_dev.c): the nic= device type. */
#ifndef TERN_NET_VNET_DEV_H
#define TERN_NET_VNET_DEV_H

void vnet_dev_start(void);

#endif
