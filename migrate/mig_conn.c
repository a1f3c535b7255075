/*
 * One migration connection over lwIP's altcp TLS layer: control lines in
 * and out, the bulk stream out (source) or in (destination), and a close
 * that never happens inside an lwIP callback (see net/stack/netcon.c for
 * why).  Owned by mig_src.c or mig_dst.c, which get callbacks.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lwip/altcp.h"
#include "lwip/altcp_tcp.h"
#include "lwip/ip_addr.h"
#include "lwip/tcp.h"

#include "kernel/kernel.h"
#include "net/stack.h"
#include "migrate/mig_conn.h"

#define MIG_TX_CHUNK	4000	/* one TLS record (MBEDTLS_SSL_OUT_CONTENT_LEN) */
#define MIG_TX_SLACK	128

void mig_conn_init(struct mig_conn *c, const struct mig_conn_ops *ops, void *owner)
{
	memset(c, 0, sizeof(*c));
	c->ops = ops;
	c->owner = owner;
}

static void mig_conn_lost(struct mig_conn *c, const char *why)
{
	if (c->lost)
		return;
	c->lost = true;
	snprintf(c->why, sizeof(c->why), "%s", why);
	if (c->ops->lost)
		c->ops->lost(c->owner, c->why);
}

/* Give the PCB back to lwIP: from the main loop only. */
void mig_conn_close(struct mig_conn *c, bool abort)
{
	struct altcp_pcb *pcb = c->pcb;

	if (!pcb)
		return;
	c->pcb = NULL;
	altcp_arg(pcb, NULL);
	altcp_recv(pcb, NULL);
	altcp_sent(pcb, NULL);
	altcp_err(pcb, NULL);
	altcp_poll(pcb, NULL, 0);
	if (abort || altcp_close(pcb) != ERR_OK)
		altcp_abort(pcb);
}

/* Write queued control bytes, then bulk bytes, as the send buffer allows. */
void mig_conn_push(struct mig_conn *c)
{
	uint64_t t0 = time_us();
	bool wrote = false;

	while (c->pcb && c->open) {
		const uint8_t *src;
		size_t n, *off;
		u16_t room = altcp_sndbuf(c->pcb);

		if (c->ctl_off < c->ctl_len) {
			src = (const uint8_t *)c->ctl + c->ctl_off;
			n = c->ctl_len - c->ctl_off;
			off = &c->ctl_off;
		} else if (c->bulk_off < c->bulk_len) {
			src = c->bulk + c->bulk_off;
			n = c->bulk_len - c->bulk_off;
			off = &c->bulk_off;
		} else {
			break;
		}
		if (room <= MIG_TX_SLACK || altcp_sndqueuelen(c->pcb) + 4 > TCP_SND_QUEUELEN)
			break;
		n = n < MIG_TX_CHUNK ? n : MIG_TX_CHUNK;
		n = n < (size_t)room - MIG_TX_SLACK ? n : (size_t)room - MIG_TX_SLACK;
		if (altcp_write(c->pcb, src, (u16_t)n, TCP_WRITE_FLAG_COPY) != ERR_OK)
			break;
		*off += n;
		c->bytes_out += n;
		wrote = true;
	}
	if (c->ctl_off == c->ctl_len)
		c->ctl_off = c->ctl_len = 0;
	if (wrote && c->pcb) {
		altcp_output(c->pcb);
		c->last_tx_us = time_us();
	}
	c->t_push_us += time_us() - t0;
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
	if (c->ctl_len + (size_t)n > sizeof(c->ctl))
		return -ENOSPC;
	memcpy(c->ctl + c->ctl_len, line, (size_t)n);
	c->ctl_len += (size_t)n;
	mig_conn_push(c);
	return 0;
}

void mig_conn_bulk(struct mig_conn *c, const void *buf, size_t len)
{
	c->bulk = buf;
	c->bulk_len = len;
	c->bulk_off = 0;
	mig_conn_push(c);
}

bool mig_conn_bulk_done(const struct mig_conn *c)
{
	return c->bulk_off == c->bulk_len;
}

/* Control lines: printable ASCII, bounded; anything else ends the link. */
static int mig_conn_lines(struct mig_conn *c, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			c->line[c->line_len] = '\0';
			c->line_len = 0;
			if (c->ops->line)
				c->ops->line(c->owner, c->line);
			if (c->lost)
				return -EPROTO;
			/* The line switched the link to bytes (HELLO): the rest
			 * of this chunk is the stream. */
			if (c->raw && c->ops->data)
				return i + 1 < n ? c->ops->data(c->owner, p + i + 1, n - i - 1) : 0;
			continue;
		}
		if (p[i] < 0x20 || p[i] > 0x7e || c->line_len == MIG_LINE_MAX) {
			mig_conn_lost(c, "malformed control line from the peer");
			return -EPROTO;
		}
		c->line[c->line_len++] = (char)p[i];
	}
	return 0;
}

static err_t mig_conn_recv(void *arg, struct altcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct mig_conn *c = arg;

	if (!c) {
		if (p)
			pbuf_free(p);
		return ERR_OK;
	}
	if (!p || err != ERR_OK) {
		if (p)
			pbuf_free(p);
		mig_conn_lost(c, "the peer closed the connection");
		return ERR_OK;
	}
	if (!c->open)
		c->open = true;		/* server side: TLS is up */
	c->last_rx_us = time_us();
	altcp_recved(pcb, p->tot_len);
	for (struct pbuf *q = p; q && !c->lost; q = q->next) {
		int rc = c->raw && c->ops->data ? c->ops->data(c->owner, q->payload, q->len)
						: mig_conn_lines(c, q->payload, q->len);
		if (rc < 0)
			break;
	}
	pbuf_free(p);
	return ERR_OK;
}

static err_t mig_conn_sent(void *arg, struct altcp_pcb *pcb, u16_t len)
{
	struct mig_conn *c = arg;

	(void)pcb, (void)len;
	if (c) {
		mig_conn_push(c);
		c->wake = true;
	}
	return ERR_OK;
}

static void mig_conn_err(void *arg, err_t err)
{
	struct mig_conn *c = arg;
	char why[64];

	if (!c)
		return;
	c->pcb = NULL;		/* freed by lwIP */
	if (!c->open && c->client)
		snprintf(why, sizeof(why), "cannot connect or authenticate (lwIP error %d: "
			 "no listener, or a wrong key?)", (int)err);
	else
		snprintf(why, sizeof(why), "connection lost (lwIP error %d)", (int)err);
	mig_conn_lost(c, why);
}

static err_t mig_conn_poll(void *arg, struct altcp_pcb *pcb)
{
	struct mig_conn *c = arg;

	(void)pcb;
	if (c) {
		if (!c->open && c->pcb && net_tls_phase(c->pcb) == NET_TLS_OPEN)
			c->open = true;
		mig_conn_push(c);
		c->wake = true;
	}
	return ERR_OK;
}

static err_t mig_conn_connected(void *arg, struct altcp_pcb *pcb, err_t err)
{
	struct mig_conn *c = arg;

	(void)pcb;
	if (!c)
		return ERR_OK;
	if (err != ERR_OK) {
		mig_conn_lost(c, "connection failed");
		return ERR_OK;
	}
	c->open = true;		/* TLS: the handshake is done, the key matched */
	if (c->ops->connected)
		c->ops->connected(c->owner);
	mig_conn_push(c);
	return ERR_OK;
}

static void mig_conn_hook(struct mig_conn *c, struct altcp_pcb *pcb)
{
	c->pcb = pcb;
	altcp_arg(pcb, c);
	altcp_recv(pcb, mig_conn_recv);
	altcp_sent(pcb, mig_conn_sent);
	altcp_err(pcb, mig_conn_err);
	altcp_poll(pcb, mig_conn_poll, 2);
	altcp_nagle_disable(pcb);
	c->last_rx_us = c->last_tx_us = time_us();
}

void mig_conn_accepted(struct mig_conn *c, struct altcp_pcb *pcb)
{
	mig_conn_hook(c, pcb);
	if (c->plain)
		c->open = true;		/* no handshake to wait for */
}

/*
 * To addr:port, in TLS with the pre-shared key, or in plain TCP when
 * c->plain (the unencrypted data link of `encrypt=off`, opened only after
 * the TLS link authenticated both ends).
 */
int mig_conn_connect(struct mig_conn *c, const char *addr, uint16_t port)
{
	ip_addr_t ip;
	struct altcp_pcb *pcb;

	if (!ipaddr_aton(addr, &ip) || !IP_IS_V4(&ip))
		return -EINVAL;
	if (!c->plain && !net_tls_ready())
		return -ENOENT;		/* no secret: no authenticated link */
	pcb = c->plain ? altcp_tcp_new_ip_type(IPADDR_TYPE_V4) : net_tls_new(false);
	if (!pcb)
		return -ENOMEM;
	c->client = true;
	mig_conn_hook(c, pcb);
	if (altcp_connect(pcb, &ip, port, mig_conn_connected) != ERR_OK) {
		mig_conn_close(c, true);
		return -ECONNREFUSED;
	}
	return 0;
}
