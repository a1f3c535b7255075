/*
 * One iSCSI connection (iscsi_link.c): lwIP TCP under the pure session
 * state machine (storage/lib/iscsi_session.h).  The link frames the PDUs
 * the session sends (digests once the login is over, RFC 7143 13.1), feeds
 * what arrives through the receiver into the session and keeps the
 * session's clock.  The TCP side (connect timeout, output queue, closing a
 * failed connection from the main loop, never inside an lwIP callback) is
 * the connection helper's (net/conn.h).  Reconnecting is the owner's call.
 * Boot CPU main loop only, like everything on lwIP (net/netdev.h).
 */
#ifndef TERN_STORAGE_ISCSI_LINK_H
#define TERN_STORAGE_ISCSI_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/conn.h"
#include "storage/lib/iscsi_session.h"

enum iscsi_link_state {
	ISCSI_LINK_IDLE,	/* no connection */
	ISCSI_LINK_CONNECTING,	/* SYN sent */
	ISCSI_LINK_UP,		/* TCP up: login or full feature */
	ISCSI_LINK_DEAD,	/* failed: closed by the next service call */
};

struct iscsi_link_ops {
	void (*done)(void *owner, const struct iscsi_sess_done *d);
	void (*event)(void *owner, enum iscsi_sess_event ev, int err, uint32_t arg,
		      const char *why);
	/* The connection is gone (closed, refused, timed out); once per
	 * iscsi_link_connect().  The session is DOWN by then. */
	void (*down)(void *owner, int err, const char *why);
};

struct iscsi_link {
	struct iscsi_sess sess;
	const struct iscsi_link_ops *ops;
	void *owner;
	uint32_t addr;			/* IPv4, host order */
	uint16_t port;
	enum iscsi_link_state st;
	struct conn conn;		/* plain TCP; its queue holds framed PDUs */
	bool logged_in;			/* this connection reached full feature */
	int err;			/* why DEAD: the first cause */
	char why[96];
	/* Incoming PDUs. */
	struct iscsi_rx rx;
	uint8_t *rxbuf;
	size_t rxcap;
	uint8_t chap_c[16];		/* our mutual CHAP challenge */
	/* Counters. */
	uint64_t bytes_in, bytes_out, pdus_in, pdus_out, connects;
};

/* Buffers and the session.  0, -ENOMEM, or the session's -EINVAL. */
int iscsi_link_init(struct iscsi_link *l, const struct iscsi_sess_cfg *cfg, uint32_t addr,
		    uint16_t port, size_t tx_cap, const struct iscsi_link_ops *ops,
		    void *owner);
/* Open TCP and log in (IDLE only): 0, -EALREADY, -ENOMEM, -EHOSTUNREACH. */
int iscsi_link_connect(struct iscsi_link *l);
/* Main loop: clock, timeouts, closing a dead connection, sending. */
void iscsi_link_service(struct iscsi_link *l);
/* Free tx ring bytes (what a new PDU of n data bytes may take: see
 * iscsi_link_pdu_bytes). */
size_t iscsi_link_tx_room(const struct iscsi_link *l);
size_t iscsi_link_pdu_bytes(uint32_t dlen);
/* Drop the connection now (abort) and free everything. */
void iscsi_link_free(struct iscsi_link *l);
/* A fresh session, same configuration (the owner failed its tasks). */
void iscsi_link_reset_session(struct iscsi_link *l);
/* Fail the connection with err (the owner saw something wrong). */
void iscsi_link_fail(struct iscsi_link *l, int err, const char *why);
/* "idle", "connecting", "up", "dead". */
const char *iscsi_link_state_name(enum iscsi_link_state st);

#endif
