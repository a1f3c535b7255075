/* Internet checksum helpers: RFC 1071 vectors, frames built here against a
 * plain reference, the offload round trip, fallbacks, and a fuzz loop over
 * random and damaged frames (exact-size heap copies, so ASan sees any read
 * past the end). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/lib/inet_csum.h"

static unsigned int rnd_state = 12345;

static unsigned int rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 16;
}

/* Reference: RFC 1071 straight, one 32-bit accumulator, folded once. */
static uint16_t ref_sum(const uint8_t *p, size_t n, uint32_t acc)
{
	for (size_t i = 0; i < n; i++)
		acc += i & 1 ? p[i] : (uint32_t)p[i] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

/* Ethernet + 20-byte IPv4 (+ opt_words of options) + TCP or UDP with
 * payload bytes of data; returns the frame length. */
static size_t build(uint8_t *f, uint8_t proto, size_t payload, int opt_words)
{
	size_t ihl = 20 + 4 * (size_t)opt_words;
	size_t l4h = proto == INET_PROTO_TCP ? 20 : 8;
	size_t tot = ihl + l4h + payload;
	uint8_t *ip = f + 14, *l4 = ip + ihl;

	memset(f, 0, 14 + tot);
	memset(f, 0xff, 6);
	f[6] = 0x52, f[7] = 0x54, f[12] = 0x08, f[13] = 0x00;
	ip[0] = (uint8_t)(0x40 | ihl / 4);
	ip[2] = (uint8_t)(tot >> 8), ip[3] = (uint8_t)tot;
	ip[6] = 0x40;		/* DF */
	ip[8] = 64, ip[9] = proto;
	ip[12] = 10, ip[13] = 77, ip[14] = 0, ip[15] = 1;
	ip[16] = 10, ip[17] = 77, ip[18] = 0, ip[19] = (uint8_t)(rnd() | 2);
	for (size_t i = 20; i < ihl; i++)
		ip[i] = 1;	/* NOP options */
	l4[0] = 0x13, l4[1] = 0x89, l4[2] = (uint8_t)rnd(), l4[3] = (uint8_t)rnd();
	if (proto == INET_PROTO_TCP)
		l4[12] = 5 << 4, l4[13] = 0x18;
	else
		l4[4] = (uint8_t)((l4h + payload) >> 8), l4[5] = (uint8_t)(l4h + payload);
	for (size_t i = 0; i < payload; i++)
		l4[l4h + i] = (uint8_t)rnd();
	return 14 + tot;
}

/* The checksum a correct sender puts in, from the reference. */
static uint16_t ref_l4_csum(const uint8_t *f, const struct inet_l4 *l4)
{
	uint8_t ph[12];
	uint8_t *copy = malloc(l4->l4_len);
	uint16_t s;

	memcpy(ph, f + 26, 8);
	ph[8] = 0, ph[9] = l4->proto;
	ph[10] = (uint8_t)(l4->l4_len >> 8), ph[11] = (uint8_t)l4->l4_len;
	memcpy(copy, f + l4->l4_off, l4->l4_len);
	copy[l4->csum_off] = copy[l4->csum_off + 1] = 0;
	s = (uint16_t)~ref_sum(copy, l4->l4_len, ref_sum(ph, 12, 0));
	free(copy);
	return s;
}

static uint16_t field(const uint8_t *f, const struct inet_l4 *l4)
{
	const uint8_t *p = f + l4->l4_off + l4->csum_off;

	return (uint16_t)(p[0] << 8 | p[1]);
}

/* What a NIC does with a prepared frame (VIRTIO 1.1 5.1.6.2): sum from
 * the L4 header to the end, complement, store. */
static void device_finish(uint8_t *f, const struct inet_l4 *l4)
{
	uint8_t *p = f + l4->l4_off + l4->csum_off;
	uint16_t c = (uint16_t)~inet_csum_add(0, f + l4->l4_off, l4->l4_len);

	if (c == 0 && l4->proto == INET_PROTO_UDP)
		c = 0xffff;
	p[0] = (uint8_t)(c >> 8), p[1] = (uint8_t)c;
}

Test(inet_csum, rfc1071_example)
{
	/* RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2. */
	static const uint8_t b[8] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };

	cr_assert_eq(inet_csum_add(0, b, 8), 0xddf2);
	cr_assert_eq(inet_csum_add(inet_csum_add(0, b, 4), b + 4, 4), 0xddf2);
	cr_assert_eq(inet_csum_add(0, b, 7), ref_sum(b, 7, 0));
	cr_assert_eq(inet_csum_add(0, b, 0), 0);
}

Test(inet_csum, add_matches_reference)
{
	uint8_t b[1600];

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)rnd();
	for (size_t n = 0; n < sizeof(b); n += 7)
		cr_assert_eq(inet_csum_add(0, b, n), ref_sum(b, n, 0), "n %zu", n);
	memset(b, 0xff, sizeof(b));
	cr_assert_eq(inet_csum_add(0, b, sizeof(b)), 0xffff);
}

Test(inet_csum, parse_tcp_and_udp)
{
	uint8_t f[1514];
	struct inet_l4 l4;
	size_t n = build(f, INET_PROTO_TCP, 1460, 0);

	cr_assert_eq(n, 1514);
	cr_assert_eq(inet_l4_parse(f, n, &l4), 0);
	cr_assert_eq(l4.proto, INET_PROTO_TCP);
	cr_assert_eq(l4.l4_off, 34);
	cr_assert_eq(l4.l4_len, 1480);
	cr_assert_eq(l4.csum_off, 16);
	n = build(f, INET_PROTO_UDP, 100, 2);	/* IP options: L4 moves */
	cr_assert_eq(inet_l4_parse(f, n, &l4), 0);
	cr_assert_eq(l4.proto, INET_PROTO_UDP);
	cr_assert_eq(l4.l4_off, 42);
	cr_assert_eq(l4.l4_len, 108);
	cr_assert_eq(l4.csum_off, 6);
}

Test(inet_csum, padding_past_datagram_is_ignored)
{
	uint8_t f[60];
	struct inet_l4 l4;
	size_t n = build(f, INET_PROTO_TCP, 0, 0);	/* 54 bytes */

	memset(f + n, 0xaa, sizeof(f) - n);		/* non-zero padding */
	cr_assert_eq(inet_l4_parse(f, sizeof(f), &l4), 0);
	cr_assert_eq(l4.l4_len, 20);
	inet_csum_fill(f, &l4);
	cr_assert_eq(field(f, &l4), ref_l4_csum(f, &l4));
	cr_assert(inet_csum_ok(f, &l4));
}

Test(inet_csum, fill_verify_and_device_round_trip)
{
	static const uint8_t protos[2] = { INET_PROTO_TCP, INET_PROTO_UDP };
	uint8_t f[1514];
	struct inet_l4 l4;

	for (int k = 0; k < 2; k++) {
		for (size_t pl = 0; pl <= 1400; pl += 97) {
			size_t n = build(f, protos[k], pl, (int)(pl % 3));
			uint16_t want;

			cr_assert_eq(inet_l4_parse(f, n, &l4), 0);
			want = ref_l4_csum(f, &l4);
			if (want == 0 && protos[k] == INET_PROTO_UDP)
				want = 0xffff;
			inet_csum_fill(f, &l4);
			cr_assert_eq(field(f, &l4), want, "proto %d len %zu", protos[k], pl);
			cr_assert(inet_csum_ok(f, &l4));
			/* Offload: pseudo-header sum in the field, the NIC does
			 * the rest and gets the same answer. */
			inet_csum_prepare(f, &l4);
			cr_assert_eq(field(f, &l4), inet_pseudo_sum(f, &l4));
			device_finish(f, &l4);
			cr_assert_eq(field(f, &l4), want);
			cr_assert(inet_csum_ok(f, &l4));
			/* One flipped bit anywhere in the segment is caught. */
			f[l4.l4_off + rnd() % l4.l4_len] ^= (uint8_t)(1u << (rnd() % 8));
			cr_assert_not(inet_csum_ok(f, &l4), "proto %d len %zu", protos[k], pl);
		}
	}
}

Test(inet_csum, udp_without_checksum_is_accepted)
{
	uint8_t f[200];
	struct inet_l4 l4;
	size_t n = build(f, INET_PROTO_UDP, 50, 0);

	cr_assert_eq(inet_l4_parse(f, n, &l4), 0);
	cr_assert_eq(field(f, &l4), 0);
	cr_assert(inet_csum_ok(f, &l4));
}

Test(inet_csum, other_traffic_and_fragments_fall_back)
{
	uint8_t f[1514];
	struct inet_l4 l4;
	size_t n = build(f, INET_PROTO_TCP, 100, 0);

	f[12] = 0x08, f[13] = 0x06;			/* ARP */
	cr_assert_eq(inet_l4_parse(f, n, &l4), -ENOENT);
	f[12] = 0x86, f[13] = 0xdd;			/* IPv6 */
	cr_assert_eq(inet_l4_parse(f, n, &l4), -ENOENT);
	f[12] = 0x81, f[13] = 0x00;			/* 802.1Q tag */
	cr_assert_eq(inet_l4_parse(f, n, &l4), -ENOENT);
	f[12] = 0x08, f[13] = 0x00;
	f[23] = 1;					/* ICMP */
	cr_assert_eq(inet_l4_parse(f, n, &l4), -ENOENT);
	f[23] = INET_PROTO_TCP;
	f[20] = 0x20, f[21] = 0x00;			/* MF */
	cr_assert_eq(inet_l4_parse(f, n, &l4), -EMSGSIZE);
	f[20] = 0x00, f[21] = 0xb9;			/* offset 185 * 8 */
	cr_assert_eq(inet_l4_parse(f, n, &l4), -EMSGSIZE);
	f[20] = 0x40, f[21] = 0x00;			/* DF only: fine */
	cr_assert_eq(inet_l4_parse(f, n, &l4), 0);
}

Test(inet_csum, malformed_frames_are_refused)
{
	uint8_t f[1514];
	struct inet_l4 l4;
	size_t n = build(f, INET_PROTO_TCP, 100, 0);

	cr_assert_eq(inet_l4_parse(NULL, 0, &l4), -EINVAL);
	cr_assert_eq(inet_l4_parse(f, 13, &l4), -EINVAL);
	cr_assert_eq(inet_l4_parse(f, 33, &l4), -EINVAL);	/* short IP */
	cr_assert_eq(inet_l4_parse(f, n - 1, &l4), -EINVAL);	/* cut short */
	f[14] = 0x44;						/* IHL 16 bytes */
	cr_assert_eq(inet_l4_parse(f, n, &l4), -EINVAL);
	f[14] = 0x65;						/* version 6 */
	cr_assert_eq(inet_l4_parse(f, n, &l4), -EINVAL);
	f[14] = 0x45;
	f[46] = 4 << 4;						/* TCP doff 16 */
	cr_assert_eq(inet_l4_parse(f, n, &l4), -EINVAL);
	f[46] = 15 << 4;					/* doff 60 <= 120: fine */
	cr_assert_eq(inet_l4_parse(f, n, &l4), 0);
	f[16] = 0, f[17] = 30;					/* tot: no room for TCP */
	cr_assert_eq(inet_l4_parse(f, n, &l4), -EINVAL);
	n = build(f, INET_PROTO_UDP, 10, 0);
	f[39] = 99;						/* UDP length */
	cr_assert_eq(inet_l4_parse(f, n, &l4), -EINVAL);
}

/* Parse never reads past len and, when it accepts, everything it names
 * lies inside the frame; fill/ok then stay inside it too. */
static void fuzz_one(const uint8_t *src, size_t n)
{
	uint8_t *f = malloc(n ? n : 1);
	struct inet_l4 l4;
	int r;

	memcpy(f, src, n);
	r = inet_l4_parse(f, n, &l4);
	cr_assert(r == 0 || r == -ENOENT || r == -EMSGSIZE || r == -EINVAL, "r %d", r);
	if (r == 0) {
		cr_assert(l4.l4_off >= 34 && (size_t)l4.l4_off + l4.l4_len <= n);
		cr_assert((size_t)l4.csum_off + 2 <= l4.l4_len);
		inet_csum_prepare(f, &l4);
		inet_csum_fill(f, &l4);
		cr_assert(inet_csum_ok(f, &l4));
	}
	free(f);
}

Test(inet_csum, fuzz_random_and_damaged_frames)
{
	uint8_t good[1514], f[1514];

	for (int it = 0; it < 20000; it++) {
		size_t n = rnd() % sizeof(f);

		if (it % 4 == 0) {	/* pure noise, IPv4 ethertype half the time */
			for (size_t i = 0; i < n; i++)
				f[i] = (uint8_t)rnd();
			if (n >= 15 && rnd() & 1)
				f[12] = 0x08, f[13] = 0x00, f[14] = (uint8_t)(0x40 | (rnd() & 0xf));
			fuzz_one(f, n);
			continue;
		}
		n = build(good, rnd() & 1 ? INET_PROTO_TCP : INET_PROTO_UDP,
			  rnd() % 1400, (int)(rnd() % 4));
		memcpy(f, good, n);
		for (unsigned int k = rnd() % 4; k > 0; k--)	/* headers mostly */
			f[rnd() % (n < 80 ? n : 80)] = (uint8_t)rnd();
		fuzz_one(f, rnd() % 8 ? n : rnd() % (n + 1));	/* sometimes cut */
	}
}

/* A peer's partial checksum (NEEDS_CSUM) finished by the switch before a
 * guest sees the frame: the same value the reference sum gives (TCP; UDP
 * too unless the sum is 0, where RFC 768 wants 0xffff on the wire but a
 * NIC stores 0, which receivers take as "no checksum"). */
Test(inet_csum, finish_partial_like_a_nic)
{
	static const uint8_t protos[2] = { INET_PROTO_TCP, INET_PROTO_UDP };
	uint8_t f[1514];
	struct inet_l4 l4;

	for (int k = 0; k < 2; k++)
		for (size_t pl = 0; pl <= 1400; pl += 131) {
			size_t n = build(f, protos[k], pl, (int)(pl % 3));
			uint16_t want;

			cr_assert_eq(inet_l4_parse(f, n, &l4), 0);
			want = ref_l4_csum(f, &l4);
			inet_csum_prepare(f, &l4);
			cr_assert_eq(inet_csum_finish_partial(f, n, l4.l4_off, l4.csum_off), 0);
			cr_assert_eq(field(f, &l4), want, "proto %d len %zu", protos[k], pl);
			if (want)
				cr_assert(inet_csum_ok(f, &l4));
		}
	cr_assert_eq(inet_csum_finish_partial(f, 60, 50, 9), -EINVAL, "field past the end");
	cr_assert_eq(inet_csum_finish_partial(f, 60, 58, 0), 0, "the last two bytes");
	cr_assert_eq(inet_csum_finish_partial(f, 60, 59, 0), -EINVAL);
}
