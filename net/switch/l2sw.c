/*
 * The learning switch (IEEE 802.1D-2004 7.7-7.9).  The FDB is a flat
 * table searched linearly: 256 entries of 24 bytes, a few hundred
 * nanoseconds per frame, and no hashing a hostile source MAC could skew.
 */
#include <errno.h>
#include <string.h>

#include "net/switch/l2sw.h"

static const uint8_t l2sw_zero_mac[6];

static bool l2sw_group(const uint8_t *mac)
{
	return mac[0] & 1;	/* I/G bit, 802.3 3.2.3 */
}

static bool l2sw_port_ok(const struct l2sw *sw, int port)
{
	return port >= 0 && port < L2SW_MAX_PORTS && sw->port[port].used;
}

/* The host or guest port whose fixed MAC this is, or -1. */
static int l2sw_owner(const struct l2sw *sw, const uint8_t *mac)
{
	for (int i = 0; i < L2SW_MAX_PORTS; i++)
		if (sw->port[i].used && sw->port[i].kind != L2SW_UPLINK &&
		    !memcmp(sw->port[i].mac, mac, 6))
			return i;
	return -1;
}

static void l2sw_ent_clear(struct l2sw_fdb_ent *e)
{
	memset(e, 0, sizeof(*e));
	e->port = -1;
}

/* 802.1D 7.9.2: a dynamic entry is removed once it has not been
 * refreshed for the ageing time.  A clock that went back (a restored
 * timestamp) keeps the entry: it is refreshed by the next frame. */
static bool l2sw_aged(const struct l2sw_fdb_ent *e, uint64_t now_ns)
{
	return !e->pinned && now_ns > e->seen_ns && now_ns - e->seen_ns >= L2SW_AGE_NS;
}

static int l2sw_find(const struct l2sw *sw, const uint8_t *mac)
{
	for (int i = 0; i < L2SW_FDB_SIZE; i++)
		if (sw->fdb[i].port >= 0 && !memcmp(sw->fdb[i].mac, mac, 6))
			return i;
	return -1;
}

/* A free or aged entry, else the oldest dynamic one (counted as full);
 * -1 when every entry is pinned. */
static int l2sw_slot(struct l2sw *sw, uint64_t now_ns)
{
	int oldest = -1;

	for (int i = 0; i < L2SW_FDB_SIZE; i++) {
		const struct l2sw_fdb_ent *e = &sw->fdb[i];

		if (e->port < 0 || l2sw_aged(e, now_ns))
			return i;
		if (!e->pinned && (oldest < 0 || e->seen_ns < sw->fdb[oldest].seen_ns))
			oldest = i;
	}
	sw->fdb_full++;
	return oldest;
}

static void l2sw_put(struct l2sw *sw, const uint8_t *mac, int port, bool pinned,
		     uint64_t now_ns)
{
	int i = l2sw_find(sw, mac);

	if (i < 0)
		i = l2sw_slot(sw, now_ns);
	if (i < 0)
		return;
	memcpy(sw->fdb[i].mac, mac, 6);
	sw->fdb[i].port = (int8_t)port;
	sw->fdb[i].pinned = pinned;
	sw->fdb[i].seen_ns = now_ns;
}

void l2sw_init(struct l2sw *sw)
{
	memset(sw, 0, sizeof(*sw));
	for (int i = 0; i < L2SW_FDB_SIZE; i++)
		l2sw_ent_clear(&sw->fdb[i]);
}

int l2sw_port_add(struct l2sw *sw, enum l2sw_port_kind kind, const uint8_t mac[6],
		  const char *name)
{
	const uint8_t *m = mac ? mac : l2sw_zero_mac;
	struct l2sw_port *p;
	int i;

	if (kind != L2SW_UPLINK && (!mac || l2sw_group(mac) || !memcmp(mac, l2sw_zero_mac, 6)))
		return -EINVAL;
	if (kind != L2SW_UPLINK && kind != L2SW_HOST && kind != L2SW_GUEST)
		return -EINVAL;
	if (kind != L2SW_UPLINK && l2sw_owner(sw, m) >= 0)
		return -EEXIST;
	for (i = 0; i < L2SW_MAX_PORTS && sw->port[i].used; i++)
		;
	if (i == L2SW_MAX_PORTS)
		return -ENOSPC;
	p = &sw->port[i];
	memset(p, 0, sizeof(*p));
	p->used = true;
	p->kind = kind;
	memcpy(p->mac, m, 6);
	if (name)
		strncpy(p->name, name, sizeof(p->name) - 1);
	if (kind != L2SW_UPLINK)
		l2sw_put(sw, m, i, true, 0);
	return i;
}

void l2sw_port_del(struct l2sw *sw, int port)
{
	if (!l2sw_port_ok(sw, port))
		return;
	for (int i = 0; i < L2SW_FDB_SIZE; i++)
		if (sw->fdb[i].port == port)
			l2sw_ent_clear(&sw->fdb[i]);
	memset(&sw->port[port], 0, sizeof(sw->port[port]));
}

void l2sw_port_promisc(struct l2sw *sw, int port, bool on)
{
	if (l2sw_port_ok(sw, port))
		sw->port[port].promisc = on;
}

void l2sw_fdb_forget(struct l2sw *sw, const uint8_t mac[6])
{
	int i = l2sw_find(sw, mac);

	if (i >= 0 && l2sw_owner(sw, mac) < 0)	/* a live port's own MAC stays */
		l2sw_ent_clear(&sw->fdb[i]);
}

void l2sw_fdb_set(struct l2sw *sw, const uint8_t mac[6], int port, uint64_t now_ns)
{
	if (!l2sw_port_ok(sw, port) || l2sw_group(mac) || l2sw_owner(sw, mac) >= 0)
		return;
	l2sw_put(sw, mac, port, sw->port[port].kind != L2SW_UPLINK, now_ns);
}

int l2sw_fdb_lookup(const struct l2sw *sw, const uint8_t mac[6], uint64_t now_ns)
{
	int i = l2sw_find(sw, mac);

	if (i < 0 || l2sw_aged(&sw->fdb[i], now_ns))
		return -1;
	return sw->fdb[i].port;
}

/* 802.1D 7.8: learn the source on the ingress port.  A pinned MAC seen
 * on another port is not learned (a frame on the uplink claiming a local
 * guest's address must not steal its traffic). */
static void l2sw_learn(struct l2sw *sw, const uint8_t *src, int in, uint64_t now_ns)
{
	int i = l2sw_find(sw, src);

	if (i >= 0 && sw->fdb[i].pinned) {
		if (sw->fdb[i].port != in)
			sw->fdb_pin_denied++;
		return;
	}
	if (i >= 0 && sw->fdb[i].port != in && !l2sw_aged(&sw->fdb[i], now_ns))
		sw->fdb_moves++;
	l2sw_put(sw, src, in, false, now_ns);
}

/* A guest port takes unicast only for its own MAC unless promiscuous;
 * the other kinds take everything they are sent. */
static bool l2sw_accepts(const struct l2sw_port *p, const uint8_t *dst)
{
	return p->kind != L2SW_GUEST || p->promisc || l2sw_group(dst) ||
	       !memcmp(p->mac, dst, 6);
}

static uint32_t l2sw_flood(struct l2sw *sw, int in, const uint8_t *dst)
{
	uint32_t out = 0;

	for (int i = 0; i < L2SW_MAX_PORTS; i++)
		if (i != in && sw->port[i].used && l2sw_accepts(&sw->port[i], dst))
			out |= 1u << i;
	return out;
}

static int l2sw_drop(uint64_t *counter, int err)
{
	(*counter)++;
	return err;
}

int l2sw_forward(struct l2sw *sw, int in_port, const uint8_t *frame, size_t len,
		 uint64_t now_ns, uint32_t *out)
{
	const uint8_t *dst = frame, *src = frame + 6;
	struct l2sw_port *p;
	int to;

	*out = 0;
	if (!l2sw_port_ok(sw, in_port))
		return -EINVAL;
	p = &sw->port[in_port];
	if (len < L2SW_ETH_HLEN || l2sw_group(src))
		return l2sw_drop(&p->st.dropped_runt, -EINVAL);
	if (p->kind == L2SW_GUEST && memcmp(src, p->mac, 6))
		return l2sw_drop(&p->st.dropped_spoof, -EPERM);
	p->st.rx++;
	l2sw_learn(sw, src, in_port, now_ns);
	to = l2sw_group(dst) ? -1 : l2sw_fdb_lookup(sw, dst, now_ns);
	if (to == in_port)	/* 7.7.1: never back out of the port it came in on */
		return l2sw_drop(&p->st.dropped_filter, 0);
	if (to >= 0)
		*out = l2sw_accepts(&sw->port[to], dst) ? 1u << to : 0;
	else {
		*out = l2sw_flood(sw, in_port, dst);
		p->st.flooded++;
	}
	if (!*out)
		p->st.dropped_filter++;
	for (int i = 0; i < L2SW_MAX_PORTS; i++)
		if (*out & (1u << i))
			sw->port[i].st.tx++;
	return 0;
}

/* RFC 903 over RFC 826's layout: hardware type 1 (Ethernet), protocol
 * 0x0800, lengths 6 and 4, opcode 3; addresses zero-padded to 60 bytes. */
void l2sw_rarp_frame(const uint8_t mac[6], uint8_t out[L2SW_RARP_LEN])
{
	static const uint8_t arp_hdr[8] = { 0, 1, 0x08, 0x00, 6, 4, 0, 3 };

	memset(out, 0, L2SW_RARP_LEN);
	memset(out, 0xff, 6);
	memcpy(out + 6, mac, 6);
	out[12] = 0x80;
	out[13] = 0x35;
	memcpy(out + 14, arp_hdr, sizeof(arp_hdr));
	memcpy(out + 22, mac, 6);	/* sender hardware address */
	memcpy(out + 32, mac, 6);	/* target hardware address */
}
