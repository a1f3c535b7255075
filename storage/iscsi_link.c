/*
 * An iSCSI connection on lwIP's raw TCP API (iscsi_link.h).
 *
 * Sending.  The session hands over whole PDUs; they are framed into a
 * byte ring (header digest over the BHS, data padded to 4 bytes and its
 * digest, RFC 7143 11.1) and written to TCP as the send buffer drains.
 * The owner keeps what it queues below the ring's size, so a full ring is
 * a bug that fails the connection (and the tasks are reissued), never a
 * lost PDU.
 *
 * Receiving.  Every TCP segment goes through the incremental receiver;
 * each whole PDU goes to the session.  When the session fails the
 * connection (a malformed or hostile PDU), the rest of the stream is
 * dropped unread and the PCB is closed from the main loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/ip_addr.h"
#include "lwip/tcp.h"

#include "kernel/kernel.h"
#include "net/stack.h"
#include "storage/iscsi_link.h"

#define LINK_CONNECT_US		(5 * 1000000ull)	/* SYN to ESTABLISHED */
#define LINK_TX_SLACK		64

static uint32_t now_ms(void)
{
	return (uint32_t)(time_us() / 1000);
}

const char *iscsi_link_state_name(enum iscsi_link_state st)
{
	static const char *const names[] = { "idle", "connecting", "up", "dead" };

	return st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

/* Mark the connection failed; service() closes it. */
void iscsi_link_fail(struct iscsi_link *l, int err, const char *why)
{
	if (l->st == ISCSI_LINK_DEAD || l->st == ISCSI_LINK_IDLE)
		return;
	l->st = ISCSI_LINK_DEAD;
	l->err = err;
	snprintf(l->why, sizeof(l->why), "%s", why ? why : "connection failed");
}

/* ---- sending ---- */

size_t iscsi_link_pdu_bytes(uint32_t dlen)
{
	return ISCSI_BHS_LEN + 2 * ISCSI_DIGEST_LEN + dlen + iscsi_pad4(dlen);
}

size_t iscsi_link_tx_room(const struct iscsi_link *l)
{
	return l->tx_cap - l->tx_len;
}

static void ring_put(struct iscsi_link *l, const void *p, size_t n)
{
	size_t head = (l->tx_tail + l->tx_len) % l->tx_cap;
	size_t first = n < l->tx_cap - head ? n : l->tx_cap - head;

	memcpy(l->tx + head, p, first);
	memcpy(l->tx, (const uint8_t *)p + first, n - first);
	l->tx_len += n;
}

/* Write ring bytes into TCP as far as lwIP takes them. */
static void link_push(struct iscsi_link *l)
{
	bool wrote = false;

	while (l->st == ISCSI_LINK_UP && l->pcb && l->tx_len) {
		size_t room = tcp_sndbuf(l->pcb);
		size_t n = l->tx_cap - l->tx_tail;

		if (room <= LINK_TX_SLACK || tcp_sndqueuelen(l->pcb) + 4 > TCP_SND_QUEUELEN)
			break;
		n = n < l->tx_len ? n : l->tx_len;
		n = n < room - LINK_TX_SLACK ? n : room - LINK_TX_SLACK;
		n = n < 0xffff ? n : 0xffff;
		if (tcp_write(l->pcb, l->tx + l->tx_tail, (u16_t)n, TCP_WRITE_FLAG_COPY) != ERR_OK)
			break;
		l->tx_tail = (l->tx_tail + n) % l->tx_cap;
		l->tx_len -= n;
		l->bytes_out += n;
		wrote = true;
	}
	if (wrote)
		tcp_output(l->pcb);
}

/* The session's send: frame one PDU into the ring. */
static int link_send(void *ctx, const struct iscsi_bhs *h, const void *data, uint32_t dlen)
{
	static const uint8_t zero[4];
	struct iscsi_link *l = ctx;
	bool ff = l->sess.state == ISCSI_SESS_FULL || l->sess.state == ISCSI_SESS_LOGOUT;
	bool hd = ff && l->sess.params.header_digest;
	bool dd = ff && l->sess.params.data_digest && dlen;
	uint8_t hdr[ISCSI_BHS_LEN + ISCSI_DIGEST_LEN], dig[ISCSI_DIGEST_LEN];
	int hlen;

	if (l->st != ISCSI_LINK_UP)
		return -ENOTCONN;
	if (iscsi_link_pdu_bytes(dlen) > iscsi_link_tx_room(l))
		return -ENOBUFS;
	hlen = iscsi_pdu_header(h, hd, hdr, NULL);
	if (hlen < 0)
		return hlen;
	ring_put(l, hdr, (size_t)hlen);
	if (dlen) {
		ring_put(l, data, dlen);
		ring_put(l, zero, iscsi_pad4(dlen));
	}
	if (dd) {
		iscsi_put_digest(dig, iscsi_data_digest(data, dlen));
		ring_put(l, dig, sizeof(dig));
	}
	l->pdus_out++;
	link_push(l);
	return 0;
}

/* ---- receiving ---- */

static void link_rx_limits(struct iscsi_link *l, bool full)
{
	struct iscsi_rx_limits lim = {
		.max_recv_dsl = l->sess.cfg.want.max_recv_dsl,
		.max_ahs = 0,
		.header_digest = full && l->sess.params.header_digest,
		.data_digest = full && l->sess.params.data_digest,
	};

	iscsi_rx_set_limits(&l->rx, &lim);
}

static void link_event(void *ctx, enum iscsi_sess_event ev, int err, uint32_t arg,
		       const char *why)
{
	struct iscsi_link *l = ctx;

	char buf[sizeof(l->why)];

	if (ev == ISCSI_SESS_EV_LOGGED_IN) {
		l->logged_in = true;
		link_rx_limits(l, true);	/* between PDUs: see link_feed */
	}
	if (ev == ISCSI_SESS_EV_FAILED) {
		/* Say where it broke: a bad login text is not a bad I/O. */
		if (l->st == ISCSI_LINK_UP && !l->logged_in && why && strncmp(why, "login", 5)) {
			snprintf(buf, sizeof(buf), "login: %s", why);
			why = buf;
		}
		/* The first cause wins: a bad PDU the link saw, not the
		 * "connection lost" the session then reports. */
		iscsi_link_fail(l, err, why);
		err = l->err;
		why = l->why;
	}
	if (l->ops->event)
		l->ops->event(l->owner, ev, err, arg, why);
}

static void link_done(void *ctx, const struct iscsi_sess_done *d)
{
	struct iscsi_link *l = ctx;

	l->ops->done(l->owner, d);
}

static void link_feed(struct iscsi_link *l, const uint8_t *p, size_t n)
{
	while (n && l->st == ISCSI_LINK_UP) {
		struct iscsi_rx_pdu pdu;
		size_t used = 0;
		int rc = iscsi_rx_feed(&l->rx, p, n, &used, &pdu);

		if (rc < 0) {
			char why[96];

			snprintf(why, sizeof(why), "bad PDU from the target: %s", l->rx.why);
			iscsi_link_fail(l, rc, why);
			iscsi_sess_conn_lost(&l->sess, rc);
			return;
		}
		p += used;
		n -= used;
		if (rc == 0)
			break;
		l->pdus_in++;
		rc = iscsi_sess_recv(&l->sess, &pdu, now_ms());
		if (rc < 0)
			iscsi_link_fail(l, rc, l->sess.why);
	}
}

static err_t link_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct iscsi_link *l = arg;

	if (!l) {
		if (p)
			pbuf_free(p);
		return ERR_OK;
	}
	if (!p || err != ERR_OK) {
		if (p)
			pbuf_free(p);
		iscsi_link_fail(l, -ECONNRESET, "the target closed the connection");
		return ERR_OK;
	}
	tcp_recved(pcb, p->tot_len);
	l->bytes_in += p->tot_len;
	for (struct pbuf *q = p; q && l->st == ISCSI_LINK_UP; q = q->next)
		link_feed(l, q->payload, q->len);
	pbuf_free(p);
	return ERR_OK;
}

static err_t link_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	(void)pcb, (void)len;
	if (arg)
		link_push(arg);
	return ERR_OK;
}

static void link_err(void *arg, err_t err)
{
	struct iscsi_link *l = arg;
	char why[64];

	if (!l)
		return;
	l->pcb = NULL;		/* freed by lwIP */
	snprintf(why, sizeof(why), l->st == ISCSI_LINK_CONNECTING ?
		 "cannot connect (lwIP error %d)" : "connection lost (lwIP error %d)", (int)err);
	iscsi_link_fail(l, err == ERR_RST ? -ECONNRESET : -ECONNABORTED, why);
}

static err_t link_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct iscsi_link *l = arg;
	size_t olen;
	int rc;

	(void)pcb;
	if (!l || err != ERR_OK)
		return ERR_OK;
	l->st = ISCSI_LINK_UP;
	l->connects++;
	/* Mutual CHAP: a fresh, unpredictable challenge per login (12.1.3). */
	tern_entropy_poll(NULL, l->chap_c, sizeof(l->chap_c), &olen);
	rc = iscsi_sess_connect(&l->sess, now_ms(), l->chap_c[0], l->chap_c, sizeof(l->chap_c));
	if (rc < 0)
		iscsi_link_fail(l, rc, "cannot start the login");
	return ERR_OK;
}

/* ---- life cycle ---- */

static const struct iscsi_sess_ops link_sess_ops = {
	.send = link_send, .done = link_done, .event = link_event,
};

/* Forget every task (their owner completed them) and start over. */
void iscsi_link_reset_session(struct iscsi_link *l)
{
	struct iscsi_sess_cfg cfg = l->sess.cfg;

	iscsi_sess_init(&l->sess, &cfg, &link_sess_ops, l);
}

int iscsi_link_init(struct iscsi_link *l, const struct iscsi_sess_cfg *cfg, uint32_t addr,
		    uint16_t port, size_t tx_cap, const struct iscsi_link_ops *ops,
		    void *owner)
{
	struct iscsi_rx_limits lim = { .max_recv_dsl = cfg->want.max_recv_dsl };
	int rc;

	memset(l, 0, sizeof(*l));
	l->ops = ops;
	l->owner = owner;
	l->addr = addr;
	l->port = port;
	rc = iscsi_sess_init(&l->sess, cfg, &link_sess_ops, l);
	if (rc < 0)
		return rc;
	l->rxcap = iscsi_rx_buf_size(&lim);
	l->rxbuf = malloc(l->rxcap);
	l->tx = malloc(tx_cap);
	l->tx_cap = tx_cap;
	rc = l->rxbuf && l->tx ? iscsi_rx_init(&l->rx, &lim, l->rxbuf, l->rxcap) : -ENOMEM;
	if (rc < 0) {
		free(l->rxbuf);
		free(l->tx);
		l->rxbuf = l->tx = NULL;
	}
	return rc;
}

int iscsi_link_connect(struct iscsi_link *l)
{
	ip_addr_t ip;

	if (l->st != ISCSI_LINK_IDLE)
		return -EALREADY;
	l->tx_tail = l->tx_len = 0;	/* nothing of an old connection goes out */
	l->logged_in = false;
	iscsi_rx_reset(&l->rx);
	link_rx_limits(l, false);
	l->pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
	if (!l->pcb)
		return -ENOMEM;
	tcp_arg(l->pcb, l);
	tcp_recv(l->pcb, link_recv);
	tcp_sent(l->pcb, link_sent);
	tcp_err(l->pcb, link_err);
	tcp_nagle_disable(l->pcb);
	IP_ADDR4(&ip, l->addr >> 24, (l->addr >> 16) & 255, (l->addr >> 8) & 255, l->addr & 255);
	l->st = ISCSI_LINK_CONNECTING;
	l->t_connect_us = time_us();
	if (tcp_connect(l->pcb, &ip, l->port, link_connected) != ERR_OK) {
		iscsi_link_fail(l, -EHOSTUNREACH, "no route to the portal");
		return -EHOSTUNREACH;
	}
	return 0;
}

static void link_close_pcb(struct iscsi_link *l)
{
	struct tcp_pcb *pcb = l->pcb;

	if (!pcb)
		return;
	l->pcb = NULL;
	tcp_arg(pcb, NULL);
	tcp_recv(pcb, NULL);
	tcp_sent(pcb, NULL);
	tcp_err(pcb, NULL);
	tcp_abort(pcb);		/* RST: the target drops the connection at once */
}

void iscsi_link_service(struct iscsi_link *l)
{
	if (l->st == ISCSI_LINK_CONNECTING && time_us() - l->t_connect_us > LINK_CONNECT_US)
		iscsi_link_fail(l, -ETIMEDOUT, "the portal does not answer (connect timed out)");
	if (l->st == ISCSI_LINK_UP) {
		int rc = iscsi_sess_tick(&l->sess, now_ms());

		if (rc < 0)
			iscsi_link_fail(l, rc, l->sess.why);
		else
			link_push(l);
	}
	if (l->st == ISCSI_LINK_DEAD) {
		link_close_pcb(l);
		iscsi_sess_conn_lost(&l->sess, l->err);	/* no-op when already DOWN */
		l->st = ISCSI_LINK_IDLE;
		if (l->ops->down)
			l->ops->down(l->owner, l->err, l->why);
	}
}

void iscsi_link_free(struct iscsi_link *l)
{
	link_close_pcb(l);
	free(l->rxbuf);
	free(l->tx);
	l->rxbuf = l->tx = NULL;
	l->st = ISCSI_LINK_IDLE;
}
