/* RFC 6528 initial sequence numbers (see tcp_isn.h). */
#include <errno.h>

#include "kernel/lib/tcp_isn.h"

static void isn_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int tcp_isn(const struct tcp_isn_tuple *t, const uint8_t key[TCP_ISN_KEY_LEN],
	    uint64_t now_us, tcp_isn_mac_fn mac, uint32_t *isn)
{
	uint8_t msg[12], out[32];
	int rc;

	if (!t || !key || !mac || !isn)
		return -EINVAL;
	/* A fixed big-endian layout: the same tuple always hashes the same. */
	isn_put32(msg, t->local_ip);
	isn_put32(msg + 4, ((uint32_t)t->local_port << 16) | t->remote_port);
	isn_put32(msg + 8, t->remote_ip);
	rc = mac(key, TCP_ISN_KEY_LEN, msg, sizeof(msg), out);
	if (rc)
		return rc < 0 ? rc : -EIO;
	/* M: RFC 6528 section 3 keeps RFC 793's 4-microsecond clock, so ISNs
	 * of one 4-tuple still advance across incarnations (wrapping mod 2^32). */
	*isn = (uint32_t)(now_us / 4) +
	       ((uint32_t)out[0] << 24 | (uint32_t)out[1] << 16 | (uint32_t)out[2] << 8 | out[3]);
	return 0;
}
