/*
 * The Internet checksum (RFC 1071) for TCP and UDP over IPv4 in Ethernet
 * frames: where the L4 checksum of a frame lies, the pseudo-header sum a
 * NIC needs to finish it (VIRTIO 1.1 5.1.6.2), and a software fill and
 * verify.  Pure: no device and no lwIP, the same in the kernel and the
 * host tests.
 *
 * Sums here are 16-bit one's complement sums held in a uint32_t, folded
 * (<= 0xffff) and not complemented, in host order; bytes are taken as
 * big-endian 16-bit words, so a sum over data at an even offset can be
 * continued over what follows.
 */
#ifndef TERN_LIB_INET_CSUM_H
#define TERN_LIB_INET_CSUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INET_ETH_HLEN		14
#define INET_PROTO_TCP		6
#define INET_PROTO_UDP		17

/* Where the L4 header and its checksum lie in a frame. */
struct inet_l4 {
	uint8_t proto;		/* INET_PROTO_TCP or INET_PROTO_UDP */
	uint16_t l4_off;	/* L4 header, from the frame start */
	uint16_t l4_len;	/* L4 header and data, from the IP total length */
	uint16_t csum_off;	/* checksum field, from the L4 header (16 or 6) */
};

/* Continue sum over len bytes at p (p at an even offset of the whole). */
uint32_t inet_csum_add(uint32_t sum, const void *p, size_t len);

/*
 * The frame is Ethernet II + IPv4 (no VLAN tag) + TCP or UDP, not a
 * fragment, with the L4 header inside both the IP datagram and the frame:
 * fill *l4 and return 0.  -ENOENT for other traffic (ARP, ICMP, IPv6, a
 * tagged frame), -EMSGSIZE for an IPv4 fragment (no L4 checksum can be
 * checked or finished on one), -EINVAL for a malformed or truncated
 * frame.  The IP header checksum is not looked at.
 */
int inet_l4_parse(const uint8_t *frame, size_t len, struct inet_l4 *l4);

/* The pseudo-header sum (RFC 793 3.1, RFC 768) of the frame parsed into l4. */
uint32_t inet_pseudo_sum(const uint8_t *frame, const struct inet_l4 *l4);

/*
 * Ready a parsed frame for a NIC that finishes the checksum: store the
 * pseudo-header sum in the checksum field (VIRTIO 1.1 5.1.6.2; the
 * 8254x/82574 TCP/UDP context works the same way).  The NIC then sums from
 * l4_off to the end and stores the complement there.
 */
void inet_csum_prepare(uint8_t *frame, const struct inet_l4 *l4);

/* Compute and store the whole L4 checksum in software; UDP's 0 is sent
 * as 0xffff (RFC 768). */
void inet_csum_fill(uint8_t *frame, const struct inet_l4 *l4);

/*
 * Finish a checksum a peer left partial (VIRTIO 1.1 5.1.6.4, NEEDS_CSUM):
 * the field at start + offset holds the pseudo-header sum; the one's
 * complement of the sum from start to the end goes there.  Protocol-blind,
 * as a NIC does it.  -EINVAL when the field is not inside the frame.
 */
int inet_csum_finish_partial(uint8_t *frame, size_t len, uint16_t start, uint16_t offset);

/* True when the L4 checksum of a parsed frame is right (a UDP checksum
 * of 0 means none was sent, RFC 768, and is accepted). */
bool inet_csum_ok(const uint8_t *frame, const struct inet_l4 *l4);

#endif
