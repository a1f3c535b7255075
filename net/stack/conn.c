/*
 * One TCP connection on lwIP's altcp API, TLS or plain (net/conn.h): the
 * PCB's callbacks, input in lines or raw bytes, the output queue, the
 * timeouts, the first failure, and the close from the main loop.
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
#include "kernel/lib/peer_gate.h"
#include "net/conn.h"

/*
 * Over TLS, one write is at most one record: lwIP's glue assumes it
 * (altcp_mbedtls_write) and MBEDTLS_SSL_OUT_CONTENT_LEN is 4 KiB, under
 * the 2^14 of RFC 5246 6.2.1; the slack leaves room for the record header,
 * nonce and tag.
 */
#define CONN_TLS_CHUNK		4000
#define CONN_TLS_SLACK		128
#define CONN_TCP_CHUNK		0xffff	/* altcp_write's u16_t */
#define CONN_TCP_SLACK		64
#define CONN_POLL_TICKS		1	/* lwIP's 500 ms units */
#define CONN_LISTENERS		4

int conn_init(struct conn *c, const struct conn_cfg *cfg, const struct conn_ops *ops,
	      void *owner)
{
	int rc = 0;

	memset(c, 0, sizeof(*c));
	c->cfg = *cfg;
	c->ops = ops;
	c->owner = owner;
	c->raw = !cfg->rx_max;
	if (cfg->rx_max)
		rc = conn_lines_init(&c->rx, cfg->rx_buf, cfg->rx_max, cfg->line_max,
				     cfg->line_ascii);
	if (!rc)
		rc = conn_ring_init(&c->tx, cfg->tx_buf, cfg->tx_init, cfg->tx_max);
	if (rc < 0)
		conn_free(c);
	return rc;
}

void conn_free(struct conn *c)
{
	conn_close(c, true);
	conn_lines_free(&c->rx);
	conn_ring_free(&c->tx);
}

/* A fresh connection on the same buffers. */
static void conn_restart(struct conn *c)
{
	conn_lines_reset(&c->rx);
	conn_ring_reset(&c->tx);
	c->ref = NULL;
	c->ref_len = c->ref_off = 0;
	c->cause = CONN_OK;
	c->err = c->lwip_err = 0;
	c->tls_phase = NET_TLS_GONE;
	c->why[0] = '\0';
	c->t_start_us = c->last_rx_us = c->last_tx_us = time_us();
}

void conn_fail(struct conn *c, enum conn_cause cause, int err, const char *why)
{
	if (c->cause != CONN_OK)
		return;
	c->cause = cause;
	c->err = err;
	snprintf(c->why, sizeof(c->why), "%s", why ? why : "connection failed");
	if (c->ops->failed)
		c->ops->failed(c->owner, c);
}

static void conn_detach(struct altcp_pcb *pcb)
{
	altcp_arg(pcb, NULL);
	altcp_recv(pcb, NULL);
	altcp_sent(pcb, NULL);
	altcp_err(pcb, NULL);
	altcp_poll(pcb, NULL, 0);
}

void conn_close(struct conn *c, bool abort)
{
	struct altcp_pcb *pcb = c->pcb;

	if (!pcb)
		return;
	c->pcb = NULL;
	c->state = CONN_CLOSED;
	conn_detach(pcb);
	if (abort || altcp_close(pcb) != ERR_OK)
		altcp_abort(pcb);
}

/* ---- output ---- */

int conn_write(struct conn *c, const void *p, size_t n)
{
	return conn_ring_put(&c->tx, p, n);
}

size_t conn_tx_room(const struct conn *c)
{
	return conn_ring_room(&c->tx);
}

size_t conn_tx_queued(const struct conn *c)
{
	return c->tx.len;
}

void conn_send_ref(struct conn *c, const void *buf, size_t len)
{
	c->ref = buf;
	c->ref_len = len;
	c->ref_off = 0;
	conn_push(c);
}

bool conn_ref_done(const struct conn *c)
{
	return c->ref_off == c->ref_len;
}

/* The next bytes to write: the queue first, then the borrowed buffer. */
static const uint8_t *conn_next(struct conn *c, size_t *n)
{
	if (c->tx.len)
		return conn_ring_peek(&c->tx, n);
	*n = c->ref_len - c->ref_off;
	return c->ref + c->ref_off;
}

static void conn_took(struct conn *c, size_t n)
{
	if (c->tx.len)
		conn_ring_drop(&c->tx, n);
	else
		c->ref_off += n;
	c->bytes_out += n;
}

/* One write: at most a record (TLS), within the send buffer and queue. */
static size_t conn_chunk(struct conn *c, size_t n)
{
	size_t chunk = c->cfg.tls ? CONN_TLS_CHUNK : CONN_TCP_CHUNK;
	size_t slack = c->cfg.tls ? CONN_TLS_SLACK : CONN_TCP_SLACK;
	size_t room = altcp_sndbuf(c->pcb);

	if (room <= slack || altcp_sndqueuelen(c->pcb) + 4 > TCP_SND_QUEUELEN)
		return 0;
	n = n < chunk ? n : chunk;
	return n < room - slack ? n : room - slack;
}

void conn_push(struct conn *c)
{
	uint64_t t0 = time_us();
	bool wrote = false;

	while (c->pcb && c->state == CONN_OPEN) {
		size_t n;
		const uint8_t *p = conn_next(c, &n);

		if (!n)
			break;
		n = conn_chunk(c, n);
		if (!n || altcp_write(c->pcb, p, (u16_t)n, TCP_WRITE_FLAG_COPY) != ERR_OK)
			break;
		conn_took(c, n);
		wrote = true;
	}
	if (wrote && c->pcb) {
		altcp_output(c->pcb);
		c->last_tx_us = time_us();
	}
	c->t_push_us += time_us() - t0;
}

/* ---- input ---- */

bool conn_has_line(const struct conn *c)
{
	return c->rx.buf && conn_lines_ready(&c->rx);
}

long conn_take_line(struct conn *c, char *out, size_t size)
{
	return conn_lines_take(&c->rx, out, size);
}

void conn_drop_input(struct conn *c)
{
	conn_lines_reset(&c->rx);
}

void conn_touch(struct conn *c)
{
	c->last_rx_us = time_us();
}

static const char *conn_input_why(int err)
{
	switch (err) {
	case -EBADMSG:
		return "a control byte in a line";
	case -ENOBUFS:
		return "too much input without waiting for replies";
	default:
		return "line too long";
	}
}

/* Line mode: split; hand over whole lines when ops->line wants them. */
static int conn_lines_in(struct conn *c, const uint8_t *p, size_t n)
{
	while (n && !c->raw) {
		size_t used = 0;
		int rc = conn_lines_feed(&c->rx, p, n, &used);
		char *line;

		if (rc < 0) {
			conn_fail(c, CONN_BAD_INPUT, rc, conn_input_why(rc));
			return rc;
		}
		p += used;
		n -= used;
		if (rc == 0 || !c->ops->line)
			continue;
		line = conn_lines_only(&c->rx);
		if (line)
			c->ops->line(c->owner, line);
		if (conn_failed(c))
			return -EPROTO;
	}
	/* The line switched the connection to bytes: the rest is data. */
	if (n && c->raw && c->ops->data)
		return c->ops->data(c->owner, p, n);
	return 0;
}

static int conn_input(struct conn *c, const uint8_t *p, size_t n)
{
	if (c->raw)
		return c->ops->data ? c->ops->data(c->owner, p, n) : 0;
	return conn_lines_in(c, p, n);
}

static void conn_opened(struct conn *c)
{
	c->state = CONN_OPEN;
	c->last_rx_us = time_us();
	if (c->ops->opened)
		c->ops->opened(c->owner);
	conn_push(c);
}

static err_t conn_recv_cb(void *arg, struct altcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct conn *c = arg;

	if (!c || !p || err != ERR_OK) {
		if (p)
			pbuf_free(p);
		/* A FIN: the peer sends no more, but may still read what we
		 * send (half-close, RFC 9293 3.6); the owner decides. */
		if (c)
			conn_fail(c, CONN_EOF, -ECONNRESET, "the peer closed the connection");
		return ERR_OK;
	}
	altcp_recved(pcb, p->tot_len);
	if (c->state == CONN_OPENING)
		conn_opened(c);		/* server: data means TLS is up */
	c->last_rx_us = time_us();
	c->bytes_in += p->tot_len;
	for (struct pbuf *q = p; q && !conn_failed(c); q = q->next)
		if (conn_input(c, q->payload, q->len) < 0)
			break;
	pbuf_free(p);
	return ERR_OK;
}

static err_t conn_sent_cb(void *arg, struct altcp_pcb *pcb, u16_t len)
{
	struct conn *c = arg;

	(void)pcb, (void)len;
	if (c) {
		conn_push(c);
		c->wake = true;
	}
	return ERR_OK;
}

/* lwIP has freed the PCB (reset, abort, or a handshake that failed). */
static void conn_err_cb(void *arg, err_t err)
{
	struct conn *c = arg;
	bool opening;
	char why[64];

	if (!c)
		return;
	opening = c->state == CONN_OPENING;
	if (opening && c->cfg.tls)
		c->tls_phase = net_tls_phase(c->pcb);
	c->pcb = NULL;
	c->state = CONN_CLOSED;
	snprintf(why, sizeof(why), opening ? "cannot connect (lwIP error %d)"
		 : "connection lost (lwIP error %d)", (int)err);
	if (c->cause == CONN_OK)
		c->lwip_err = err;
	conn_fail(c, opening ? CONN_REFUSED : CONN_LOST,
		  err == ERR_RST ? -ECONNRESET : -ECONNABORTED, why);
}

/* Twice a second: the timeouts, and output left behind. */
static err_t conn_poll_cb(void *arg, struct altcp_pcb *pcb)
{
	struct conn *c = arg;
	uint64_t now = time_us();

	(void)pcb;
	if (!c)
		return ERR_OK;
	if (c->state == CONN_OPENING && c->cfg.tls && !c->client &&
	    net_tls_phase(c->pcb) == NET_TLS_OPEN)
		conn_opened(c);
	if (c->state == CONN_OPENING && c->cfg.open_us && now > c->t_start_us &&
	    now - c->t_start_us > c->cfg.open_us)
		conn_fail(c, CONN_OPEN_TIMEOUT, -ETIMEDOUT, "not open in time");
	if (c->state == CONN_OPEN && c->cfg.idle_us && !c->hold && now > c->last_rx_us &&
	    now - c->last_rx_us > c->cfg.idle_us)
		conn_fail(c, CONN_IDLE_TIMEOUT, -ETIMEDOUT, "idle timeout");
	conn_push(c);
	c->wake = true;
	return ERR_OK;
}

static err_t conn_connected_cb(void *arg, struct altcp_pcb *pcb, err_t err)
{
	struct conn *c = arg;

	(void)pcb;
	if (!c)
		return ERR_OK;
	if (err != ERR_OK) {
		c->lwip_err = err;
		conn_fail(c, CONN_REFUSED, -ECONNREFUSED, "connection failed");
		return ERR_OK;
	}
	conn_opened(c);		/* TLS: the handshake is done, the key matched */
	return ERR_OK;
}

static void conn_hook(struct conn *c, struct altcp_pcb *pcb)
{
	conn_restart(c);
	c->pcb = pcb;
	c->state = CONN_OPENING;
	altcp_arg(pcb, c);
	altcp_recv(pcb, conn_recv_cb);
	altcp_sent(pcb, conn_sent_cb);
	altcp_err(pcb, conn_err_cb);
	altcp_poll(pcb, conn_poll_cb, CONN_POLL_TICKS);
	/* Lines wait for answers and records are whole: no Nagle delay
	 * (RFC 896; RFC 9293 3.7.4). */
	altcp_nagle_disable(pcb);
}

void conn_accept(struct conn *c, struct altcp_pcb *pcb)
{
	c->client = false;
	conn_hook(c, pcb);
	if (!c->cfg.tls)
		conn_opened(c);		/* no handshake to wait for */
}

int conn_connect(struct conn *c, uint32_t addr, uint16_t port)
{
	struct altcp_pcb *pcb;
	ip_addr_t ip;

	if (c->cfg.tls && !tern_entropy_ok()) {
		pr_err("tls: refused to connect: the entropy health tests failed");
		return -EIO;
	}
	if (c->cfg.tls && !net_tls_ready())
		return -ENOENT;		/* no secret: no authenticated link */
	pcb = c->cfg.tls ? net_tls_new(false) : altcp_tcp_new_ip_type(IPADDR_TYPE_V4);
	if (!pcb)
		return -ENOMEM;
	c->client = true;
	conn_hook(c, pcb);
	IP_ADDR4(&ip, addr >> 24, (addr >> 16) & 255, (addr >> 8) & 255, addr & 255);
	if (altcp_connect(pcb, &ip, port, conn_connected_cb) != ERR_OK) {
		conn_close(c, true);	/* not inside lwIP: the caller's context */
		return -EHOSTUNREACH;
	}
	return 0;
}

/* ---- listeners ---- */

struct conn_listener {
	struct altcp_pcb *pcb;
	int (*accept)(void *arg, struct altcp_pcb *pcb);
	void *arg;
	bool tls;
};

static struct conn_listener conn_listeners[CONN_LISTENERS];

/* A refused connection is aborted here: lwIP's one sanctioned free from
 * inside a callback, signalled by ERR_ABRT. */
static err_t conn_accept_cb(void *arg, struct altcp_pcb *pcb, err_t err)
{
	struct conn_listener *l = arg;

	if (err != ERR_OK || !pcb || !l)
		return ERR_VAL;
	/* Fail closed: no TLS handshake once the entropy health tests
	 * failed (entropy.c), whatever the service. */
	if (l->tls && !tern_entropy_ok()) {
		pr_warn("tls: refused a connection on port %u: the entropy health tests failed",
			altcp_get_port(l->pcb, 1));
		altcp_abort(pcb);
		return ERR_ABRT;
	}
	if (l->accept(l->arg, pcb) < 0) {
		altcp_abort(pcb);
		return ERR_ABRT;
	}
	return ERR_OK;
}

struct altcp_pcb *conn_listen(bool tls, uint16_t port, uint8_t backlog,
			      int (*accept)(void *arg, struct altcp_pcb *pcb), void *arg,
			      int *err)
{
	struct conn_listener *slot = NULL;
	struct altcp_pcb *pcb, *l;

	for (int i = 0; i < CONN_LISTENERS && !slot; i++)
		if (!conn_listeners[i].pcb)
			slot = &conn_listeners[i];
	pcb = !slot ? NULL : tls ? net_tls_new(true) : altcp_tcp_new_ip_type(IPADDR_TYPE_V4);
	if (!pcb) {
		*err = -ENOMEM;
		return NULL;
	}
	if (altcp_bind(pcb, IP4_ADDR_ANY, port) != ERR_OK) {
		altcp_close(pcb);
		*err = -EADDRINUSE;
		return NULL;
	}
	l = altcp_listen_with_backlog(pcb, backlog);
	if (!l) {
		altcp_close(pcb);
		*err = -ENOMEM;
		return NULL;
	}
	*slot = (struct conn_listener){ l, accept, arg, tls };
	altcp_arg(l, slot);
	altcp_accept(l, conn_accept_cb);
	return l;
}

void conn_unlisten(struct altcp_pcb *l)
{
	for (int i = 0; i < CONN_LISTENERS; i++)
		if (conn_listeners[i].pcb == l)
			conn_listeners[i].pcb = NULL;
	altcp_arg(l, NULL);
	altcp_accept(l, NULL);
	if (altcp_close(l) != ERR_OK)
		altcp_abort(l);
}

uint32_t conn_peer_addr(struct altcp_pcb *pcb)
{
	const ip_addr_t *ip = altcp_get_ip(pcb, 0);

	return ip && IP_IS_V4(ip) ? lwip_ntohl(ip4_addr_get_u32(ip_2_ip4(ip))) : 0;
}

void conn_peer(struct altcp_pcb *pcb, char *buf, size_t len)
{
	char ip[16];

	ipaddr_ntoa_r(altcp_get_ip(pcb, 0), ip, sizeof(ip));
	snprintf(buf, len, "%s:%u", ip, altcp_get_port(pcb, 0));
}

/* ---- refusals of peers without the key: rate-limited log ---- */

void conn_log_refusal(struct peer_log *l, const char *who, const char *fmt, ...)
{
	unsigned long held;
	char line[160];
	va_list ap;

	if (!peer_log_ok(l, time_us(), &held))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (held)
		pr_warn("%s: %s (%lu more refusals not logged)", who, line, held);
	else
		pr_warn("%s: %s", who, line);
}

void conn_log_flush(struct peer_log *l, const char *who)
{
	unsigned long held = peer_log_flush(l, time_us());

	if (held)
		pr_warn("%s: %lu more refusals not logged", who, held);
}
