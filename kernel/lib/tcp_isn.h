/*
 * TCP initial sequence numbers per RFC 6528 section 3:
 *   ISN = M + F(localip, localport, remoteip, remoteport, secretkey)
 * M is a clock ticking every 4 microseconds (RFC 793 3.3) and F is a keyed
 * pseudorandom function; here HMAC-SHA-256 (RFC 2104, FIPS 180-4) over the
 * 4-tuple, truncated to 32 bits, with a key drawn once at boot.  Pure: the
 * MAC is passed in (mbedTLS in the kernel and the host tests).
 */
#ifndef TERN_LIB_TCP_ISN_H
#define TERN_LIB_TCP_ISN_H

#include <stddef.h>
#include <stdint.h>

#define TCP_ISN_KEY_LEN	32

/* HMAC-SHA-256(key, msg) into out; 0 or a negative error. */
typedef int (*tcp_isn_mac_fn)(const uint8_t *key, size_t klen, const uint8_t *msg,
			      size_t mlen, uint8_t out[32]);

/* Addresses and ports as numbers (host order); IPv4 only, like the stack. */
struct tcp_isn_tuple {
	uint32_t local_ip, remote_ip;
	uint16_t local_port, remote_port;
};

/* *isn for t at now_us; 0, -EINVAL (no MAC or key), or the MAC's error. */
int tcp_isn(const struct tcp_isn_tuple *t, const uint8_t key[TCP_ISN_KEY_LEN],
	    uint64_t now_us, tcp_isn_mac_fn mac, uint32_t *isn);

#endif
