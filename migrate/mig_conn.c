/*
 * One migration connection on the connection helper (net/conn.h): control
 * lines in and out (printable ASCII, at most MIG_LINE_MAX), the bulk stream
 * out (source, without a copy) or in (destination, raw mode), and the
 * reasons a migration gives when the link fails.  Owned by mig_src.c or
 * mig_dst.c, which get callbacks; closes happen in their services.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lwip/ip_addr.h"
#include "mbedtls/platform_util.h"

#include "kernel/kernel.h"
#include "migrate/mig_conn.h"
#include "migrate/mig_mac.h"
#include "net/stack.h"

static void mig_conn_opened(void *owner)
{
	struct mig_conn *c = owner;

	/* Only the client waits for this: the server's stream just starts. */
	if (c->c.client && c->ops->connected)
		c->ops->connected(c->owner);
}

static int mig_conn_data(void *owner, const void *p, size_t n)
{
	struct mig_conn *c = owner;

	return c->ops->data ? c->ops->data(c->owner, p, n) : 0;
}

static void mig_conn_on_line(void *owner, char *line)
{
	struct mig_conn *c = owner;

	if (c->ops->line)
		c->ops->line(c->owner, line);
}

static void mig_conn_failed(void *owner, struct conn *cn)
{
	struct mig_conn *c = owner;
	char why[sizeof(cn->why)];

	switch (cn->cause) {
	case CONN_REFUSED:
		if (cn->client)
			snprintf(why, sizeof(why), "cannot connect or authenticate (lwIP "
				 "error %d: no listener, or a wrong key?)", cn->lwip_err);
		else
			snprintf(why, sizeof(why), "connection lost (lwIP error %d)",
				 cn->lwip_err);
		break;
	case CONN_BAD_INPUT:
		snprintf(why, sizeof(why), "malformed control line from the peer");
		break;
	default:
		snprintf(why, sizeof(why), "%s", cn->why);
	}
	if (c->ops->lost)
		c->ops->lost(c->owner, why);
}

static const struct conn_ops mig_conn_ops = {
	.opened = mig_conn_opened,
	.data = mig_conn_data,
	.line = mig_conn_on_line,
	.failed = mig_conn_failed,
};

void mig_conn_init(struct mig_conn *c, const struct mig_conn_ops *ops, void *owner,
		   bool plain)
{
	const struct conn_cfg cfg = {
		.tls = !plain,
		.line_ascii = true,
		.rx_max = MIG_LINE_MAX + 1,	/* the line and its "\n" */
		.line_max = MIG_LINE_MAX,
		.rx_buf = c->line,
		.tx_max = sizeof(c->ctl),
		.tx_buf = c->ctl,
	};

	memset(c, 0, sizeof(*c));
	c->ops = ops;
	c->owner = owner;
	/* Fixed buffers: no allocation, so this cannot fail. */
	conn_init(&c->c, &cfg, &mig_conn_ops, c);
}

void mig_conn_close(struct mig_conn *c, bool abort)
{
	conn_close(&c->c, abort);
}

bool mig_conn_up(const struct mig_conn *c)
{
	return c->c.pcb && c->c.state == CONN_OPEN && !conn_failed(&c->c);
}

int mig_conn_line(struct mig_conn *c, const char *fmt, ...)
{
	char line[MIG_LINE_MAX + 2];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, MIG_LINE_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if (n >= MIG_LINE_MAX)
		n = MIG_LINE_MAX - 1;
	line[n++] = '\n';
	if (conn_write(&c->c, line, (size_t)n) < 0)
		return -ENOSPC;
	conn_push(&c->c);
	return 0;
}

void mig_conn_bulk(struct mig_conn *c, const void *buf, size_t len)
{
	conn_send_ref(&c->c, buf, len);
}

bool mig_conn_bulk_done(const struct mig_conn *c)
{
	return conn_ref_done(&c->c);
}

void mig_conn_accepted(struct mig_conn *c, struct altcp_pcb *pcb)
{
	conn_accept(&c->c, pcb);
}

/*
 * To addr:port, in TLS with the pre-shared key, or in plain TCP (the
 * unencrypted data link of `encrypt=off`, opened only after the TLS link
 * authenticated both ends).
 */
int mig_conn_connect(struct mig_conn *c, const char *addr, uint16_t port)
{
	ip_addr_t ip;
	int rc;

	if (!ipaddr_aton(addr, &ip) || !IP_IS_V4(&ip))
		return -EINVAL;
	rc = conn_connect(&c->c, lwip_ntohl(ip4_addr_get_u32(ip_2_ip4(&ip))), port);
	return rc == -EHOSTUNREACH ? -ECONNREFUSED : rc;
}

int mig_conn_mac(struct mig_conn *c, const uint8_t *nonce_src, const uint8_t *nonce_dst,
		 struct mig_mac *m)
{
	uint8_t seed[2 * MIG_MAC_NONCE_LEN], key[MIG_MAC_KEY_LEN];
	int rc;

	memcpy(seed, nonce_src, MIG_MAC_NONCE_LEN);
	memcpy(seed + MIG_MAC_NONCE_LEN, nonce_dst, MIG_MAC_NONCE_LEN);
	rc = net_tls_export(c->c.pcb, MIG_MAC_LABEL, seed, sizeof(seed), key, sizeof(key));
	if (!rc)
		rc = mig_mac_init(m, key);
	mbedtls_platform_zeroize(key, sizeof(key));
	return rc;
}
