/*
 * An iSCSI connection on the connection helper's plain TCP (net/conn.h,
 * iscsi_link.h).
 *
 * Sending.  The session hands over whole PDUs; they are framed into the
 * connection's output queue (header digest over the BHS, data padded to 4
 * bytes and its digest, RFC 7143 11.1), written to TCP as the send buffer
 * drains.
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

#include "kernel/kernel.h"
#include "net/stack.h"
#include "storage/iscsi_link.h"

#define LINK_CONNECT_US		(5 * 1000000ull)	/* SYN to ESTABLISHED */

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
	return conn_tx_room(&l->conn);
}

/* bytes_out counts what TCP took, here and in lwIP's callbacks. */
static void link_push(struct iscsi_link *l)
{
	conn_push(&l->conn);
	l->bytes_out = l->conn.bytes_out;
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
	/* Room was checked above: these puts cannot fail. */
	conn_write(&l->conn, hdr, (size_t)hlen);
	if (dlen) {
		conn_write(&l->conn, data, dlen);
		conn_write(&l->conn, zero, iscsi_pad4(dlen));
	}
	if (dd) {
		iscsi_put_digest(dig, iscsi_data_digest(data, dlen));
		conn_write(&l->conn, dig, sizeof(dig));
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

/* Each run of received bytes, straight from lwIP's pbufs. */
static int link_data(void *owner, const void *p, size_t n)
{
	struct iscsi_link *l = owner;

	l->bytes_in += n;
	link_feed(l, p, n);
	return l->st == ISCSI_LINK_UP ? 0 : -EPROTO;
}

static void link_failed(void *owner, struct conn *c)
{
	struct iscsi_link *l = owner;
	char why[64];

	switch (c->cause) {
	case CONN_EOF:
		iscsi_link_fail(l, -ECONNRESET, "the target closed the connection");
		break;
	case CONN_OPEN_TIMEOUT:
		iscsi_link_fail(l, -ETIMEDOUT, "the portal does not answer (connect timed out)");
		break;
	case CONN_REFUSED:
	case CONN_LOST:
		snprintf(why, sizeof(why), c->cause == CONN_REFUSED ?
			 "cannot connect (lwIP error %d)" : "connection lost (lwIP error %d)",
			 c->lwip_err);
		iscsi_link_fail(l, c->err, why);
		break;
	default:
		iscsi_link_fail(l, c->err, c->why);
	}
}

static void link_connected(void *owner)
{
	struct iscsi_link *l = owner;
	int rc;

	l->st = ISCSI_LINK_UP;
	l->connects++;
	/* Mutual CHAP: a fresh, unpredictable challenge per login (12.1.3),
	 * from the DRBG, which never fails (the raw source may). */
	tern_random_bytes(l->chap_c, sizeof(l->chap_c));
	rc = iscsi_sess_connect(&l->sess, now_ms(), l->chap_c[0], l->chap_c, sizeof(l->chap_c));
	if (rc < 0)
		iscsi_link_fail(l, rc, "cannot start the login");
}

static const struct conn_ops link_conn_ops = {
	.opened = link_connected, .data = link_data, .failed = link_failed,
};

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
	const struct conn_cfg ccfg = {
		.tx_init = tx_cap, .tx_max = tx_cap, .open_us = LINK_CONNECT_US,
	};
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
	rc = l->rxbuf ? conn_init(&l->conn, &ccfg, &link_conn_ops, l) : -ENOMEM;
	if (!rc)
		rc = iscsi_rx_init(&l->rx, &lim, l->rxbuf, l->rxcap);
	if (rc < 0) {
		conn_free(&l->conn);
		free(l->rxbuf);
		l->rxbuf = NULL;
	}
	return rc;
}

int iscsi_link_connect(struct iscsi_link *l)
{
	int rc;

	if (l->st != ISCSI_LINK_IDLE)
		return -EALREADY;
	l->logged_in = false;
	iscsi_rx_reset(&l->rx);
	link_rx_limits(l, false);
	l->st = ISCSI_LINK_CONNECTING;
	/* A fresh queue: nothing of an old connection goes out. */
	rc = conn_connect(&l->conn, l->addr, l->port);
	if (rc == -EHOSTUNREACH)
		iscsi_link_fail(l, rc, "no route to the portal");
	else if (rc < 0)
		l->st = ISCSI_LINK_IDLE;
	return rc;
}

void iscsi_link_service(struct iscsi_link *l)
{
	l->bytes_out = l->conn.bytes_out;
	if (l->st == ISCSI_LINK_UP) {
		int rc = iscsi_sess_tick(&l->sess, now_ms());

		if (rc < 0)
			iscsi_link_fail(l, rc, l->sess.why);
		else
			link_push(l);
	}
	if (l->st == ISCSI_LINK_DEAD) {
		conn_close(&l->conn, true);	/* RST: the target drops it at once */
		iscsi_sess_conn_lost(&l->sess, l->err);	/* no-op when already DOWN */
		l->st = ISCSI_LINK_IDLE;
		if (l->ops->down)
			l->ops->down(l->owner, l->err, l->why);
	}
}

void iscsi_link_free(struct iscsi_link *l)
{
	conn_free(&l->conn);
	free(l->rxbuf);
	l->rxbuf = NULL;
	l->st = ISCSI_LINK_IDLE;
}
