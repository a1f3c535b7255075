/*
 * Internet checksum helpers for IPv4 TCP/UDP frames (see inet_csum.h).
 * References: RFC 1071 (the checksum), RFC 791 3.1 (IPv4 header), RFC
 * 793 3.1 and RFC 768 (pseudo-headers), VIRTIO 1.1 5.1.6.2 (what a
 * checksum-offloading NIC expects in the field).
 */
#include <errno.h>
#include "kernel/lib/byteorder.h"
#include "kernel/lib/inet_csum.h"

#define ETHERTYPE_IPV4	0x0800
#define IP_MF		0x2000
#define IP_OFFSET	0x1fff
#define TCP_HLEN_MIN	20
#define UDP_HLEN	8

static uint32_t fold(uint64_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint32_t)s;
}

uint32_t inet_csum_add(uint32_t sum, const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t s = sum;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += ld_be16(b + i);
	if (len & 1)
		s += (uint32_t)b[len - 1] << 8;	/* padded with a zero byte */
	return fold(s);
}

/* The L4 header past the IP header: sane lengths, whole in the frame. */
static int parse_l4(const uint8_t *ip, size_t avail, unsigned int ihl,
		    unsigned int tot, struct inet_l4 *l4)
{
	unsigned int min = l4->proto == INET_PROTO_TCP ? TCP_HLEN_MIN : UDP_HLEN;
	const uint8_t *h = ip + ihl;

	if (tot < ihl + min || ihl + min > avail)
		return -EINVAL;
	l4->l4_len = (uint16_t)(tot - ihl);
	if (l4->proto == INET_PROTO_TCP) {
		unsigned int doff = (unsigned int)(h[12] >> 4) * 4;

		if (doff < TCP_HLEN_MIN || doff > l4->l4_len)
			return -EINVAL;
		l4->csum_off = 16;
	} else {
		if (ld_be16(h + 4) != l4->l4_len)
			return -EINVAL;	/* UDP length disagrees with IP's */
		l4->csum_off = 6;
	}
	return 0;
}

int inet_l4_parse(const uint8_t *frame, size_t len, struct inet_l4 *l4)
{
	const uint8_t *ip = frame + INET_ETH_HLEN;
	unsigned int ihl, tot;
	size_t avail;

	if (!frame || len < INET_ETH_HLEN)
		return -EINVAL;
	if (ld_be16(frame + 12) != ETHERTYPE_IPV4)
		return -ENOENT;
	avail = len - INET_ETH_HLEN;
	if (avail < 20 || ip[0] >> 4 != 4)
		return -EINVAL;
	ihl = (unsigned int)(ip[0] & 0xf) * 4;
	tot = ld_be16(ip + 2);
	/* Ethernet may pad past the datagram, never cut it short. */
	if (ihl < 20 || tot < ihl || tot > avail)
		return -EINVAL;
	if (ip[9] != INET_PROTO_TCP && ip[9] != INET_PROTO_UDP)
		return -ENOENT;
	if (ld_be16(ip + 6) & (IP_MF | IP_OFFSET))
		return -EMSGSIZE;
	l4->proto = ip[9];
	l4->l4_off = (uint16_t)(INET_ETH_HLEN + ihl);
	return parse_l4(ip, avail, ihl, tot, l4);
}

uint32_t inet_pseudo_sum(const uint8_t *frame, const struct inet_l4 *l4)
{
	/* Source and destination addresses, zero + protocol, L4 length. */
	uint32_t s = inet_csum_add(0, frame + INET_ETH_HLEN + 12, 8);

	return fold((uint64_t)s + l4->proto + l4->l4_len);
}

void inet_csum_prepare(uint8_t *frame, const struct inet_l4 *l4)
{
	st_be16(frame + l4->l4_off + l4->csum_off, (uint16_t)inet_pseudo_sum(frame, l4));
}

void inet_csum_fill(uint8_t *frame, const struct inet_l4 *l4)
{
	uint8_t *field = frame + l4->l4_off + l4->csum_off;
	uint16_t c;

	st_be16(field, 0);
	c = (uint16_t)~inet_csum_add(inet_pseudo_sum(frame, l4),
				     frame + l4->l4_off, l4->l4_len);
	if (c == 0 && l4->proto == INET_PROTO_UDP)
		c = 0xffff;
	st_be16(field, c);
}

bool inet_csum_ok(const uint8_t *frame, const struct inet_l4 *l4)
{
	const uint8_t *h = frame + l4->l4_off;

	if (l4->proto == INET_PROTO_UDP && ld_be16(h + l4->csum_off) == 0)
		return true;
	/* Summed with its checksum field, a right segment gives 0xffff. */
	return inet_csum_add(inet_pseudo_sum(frame, l4), h, l4->l4_len) == 0xffff;
}

int inet_csum_finish_partial(uint8_t *frame, size_t len, uint16_t start, uint16_t offset)
{
	uint32_t sum;

	if ((size_t)start + offset + 2 > len)
		return -EINVAL;
	/* The field holds the pseudo-header sum: summing over it adds it in. */
	sum = inet_csum_add(0, frame + start, len - start);
	st_be16(frame + start + offset, (uint16_t)~sum);
	return 0;
}
