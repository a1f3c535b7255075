/*
 * The switch inside Tern (bridge.c): the host NIC (uplink), the host's
 * own lwIP interface and each guest's virtio NIC are ports of one
 * learning switch (l2sw.c).  Guest-to-guest frames on one host never
 * touch the wire.  Boot CPU main loop only.
 */
#ifndef TERN_NET_BRIDGE_H
#define TERN_NET_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct netdev;

/* Put the switch between nd and the stack: nd's frames go through it,
 * and nd takes frames for every MAC. */
int bridge_attach(struct netdev *nd);
/* A guest port: deliver() gets the frames for it.  The port, or -ENODEV
 * (no uplink to switch to), -ENOSPC. */
int bridge_port_add(const uint8_t mac[6], const char *name,
		    void (*deliver)(void *ctx, const void *frame, size_t len), void *ctx);
void bridge_port_del(int port);
void bridge_set_promisc(int port, bool on);
/* A frame a guest sent: -EPERM for a source MAC that is not the port's
 * (dropped and counted), -EINVAL for a runt, -EAGAIN when it is for the
 * wire alone and the NIC's ring is full (nothing was sent: try again). */
int bridge_from_guest(int port, const void *frame, size_t len);
/* Migration.  Whether a guest NIC could be switched here now: 0, or
 * -ENODEV / -ENETDOWN with why ("this host has no NIC to switch guests
 * to", "host NIC virtio0 is down"). */
int bridge_ready(char *why, size_t len);
/* Announce port's guest MAC from its new host: a RARP (l2sw_rarp_frame)
 * with that source, as if the guest sent it, out of the uplink and to
 * every other port (the switches on the way learn the new path).  0,
 * -EAGAIN when the uplink's ring was full (the other ports got it),
 * -ENODEV for no switch or not a guest port. */
int bridge_announce(int port);
/* `net switch`: the ports, their counters and the learned MACs. */
struct cmd_out;
void bridge_report(struct cmd_out *o);

#endif
