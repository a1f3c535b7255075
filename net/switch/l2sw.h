/*
 * A learning Ethernet switch: the uplink (host NIC), the host's own lwIP
 * interface and every guest's virtio-net NIC are its ports.  Pure: it
 * decides where a frame goes; the caller moves the bytes.
 *
 * References: IEEE 802.1D-2004 7.7 (frame forwarding), 7.8 (learning),
 * 7.9 (the filtering database, ageing time 300 s by default).
 */
#ifndef TERN_NET_SWITCH_L2SW_H
#define TERN_NET_SWITCH_L2SW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define L2SW_MAX_PORTS	16
#define L2SW_FDB_SIZE	256
#define L2SW_AGE_NS	(300ull * 1000000000)	/* 802.1D default ageing time */
#define L2SW_ETH_HLEN	14

enum l2sw_port_kind { L2SW_UPLINK, L2SW_HOST, L2SW_GUEST };

/* Per port: rx/flooded/dropped_* count frames that came in on it, tx the
 * frames it was chosen for.  dropped_runt also counts a group source MAC. */
struct l2sw_port_stats {
	uint64_t rx, tx, flooded, dropped_spoof, dropped_runt, dropped_filter;
};

struct l2sw_port {
	bool used;
	enum l2sw_port_kind kind;
	uint8_t mac[6];
	bool promisc;		/* a guest: receive all unicast (virtio-net CTRL_RX) */
	char name[16];
	struct l2sw_port_stats st;
};

/* An FDB entry is free when port < 0.  A pinned entry (the fixed MAC of
 * a host or guest port) never ages and never moves on learning. */
struct l2sw_fdb_ent {
	uint8_t mac[6];
	int8_t port;
	bool pinned;
	uint64_t seen_ns;
};

struct l2sw {
	struct l2sw_port port[L2SW_MAX_PORTS];
	struct l2sw_fdb_ent fdb[L2SW_FDB_SIZE];
	uint64_t fdb_moves;	/* a learned MAC moved to another port */
	uint64_t fdb_full;	/* learning found no free entry (evicted or not learned) */
	uint64_t fdb_pin_denied;	/* a frame claimed a pinned MAC on another port */
};

void l2sw_init(struct l2sw *sw);

/* A port; host and guest MACs are pinned in the FDB.  The index, -ENOSPC
 * when all ports are used, -EINVAL for a missing, zero or group MAC on a
 * host/guest port, -EEXIST when another host/guest port has that MAC. */
int l2sw_port_add(struct l2sw *sw, enum l2sw_port_kind kind, const uint8_t mac[6],
		  const char *name);
/* Also forgets its FDB entries.  Out-of-range or unused ports are ignored. */
void l2sw_port_del(struct l2sw *sw, int port);
void l2sw_port_promisc(struct l2sw *sw, int port, bool on);

/*
 * Decide where a frame goes.  0 with *out a bitmask of destination ports
 * (never the ingress port; 0 when 802.1D filtering drops it), -EPERM when
 * a guest port sent a source MAC that is not its own, -EINVAL for a runt
 * (< 14 bytes), a group source MAC or an unused in_port.  Drops are
 * counted in the ingress port's stats.
 */
int l2sw_forward(struct l2sw *sw, int in_port, const uint8_t *frame, size_t len,
		 uint64_t now_ns, uint32_t *out);

/* Forget a MAC (migration: the guest left this host).  Both leave the
 * fixed MAC of a live host/guest port alone: l2sw_port_del first. */
void l2sw_fdb_forget(struct l2sw *sw, const uint8_t mac[6]);
/* Point a MAC at a port (migration: the guest arrived).  Pinned when the
 * port is a host or guest port, a learned (ageing) entry on the uplink. */
void l2sw_fdb_set(struct l2sw *sw, const uint8_t mac[6], int port, uint64_t now_ns);

/* The port a unicast MAC is at now, or -1 (unknown or aged out). */
int l2sw_fdb_lookup(const struct l2sw *sw, const uint8_t mac[6], uint64_t now_ns);

/* After a migration the external switches still send a moved guest's
 * traffic to the old host until the guest speaks.  The frame QEMU sends
 * for that: a 60-byte broadcast RARP "request reverse" (RFC 903, ethertype
 * 0x8035) with the guest's MAC as source, sender and target.  The caller
 * injects it on the guest's port (so the switch learns it too). */
#define L2SW_RARP_LEN	60
void l2sw_rarp_frame(const uint8_t mac[6], uint8_t out[L2SW_RARP_LEN]);

#endif
