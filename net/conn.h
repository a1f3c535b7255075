/*
 * One TCP connection on lwIP's altcp API, TLS with the pre-shared key
 * (net/stack/tls.c) or plain (net/stack/conn.c).  What the network console,
 * the migration link and the iSCSI link share:
 *  - client (conn_connect) or server (conn_accept) side;
 *  - input in raw mode (each received run of bytes to ops->data, no copy)
 *    or line mode (bounded, checked lines: to ops->line as each ends, or
 *    kept for conn_take_line when ops->line is NULL); the owner may switch
 *    with c->raw between lines;
 *  - output through a bounded queue (conn_write) and one borrowed buffer
 *    (conn_send_ref), written as lwIP's send buffer allows and flushed
 *    again from the sent and poll callbacks;
 *  - open (connect + handshake) and idle timeouts;
 *  - errors: the first cause is kept (c->cause, c->err, c->why) and
 *    reported once through ops->failed; input stops there, queued output
 *    still goes out while the PCB lives;
 *  - closing only through conn_close, from the main loop: lwIP callbacks
 *    never free a PCB (a close inside one can free it under lwIP, see
 *    tcp_close_shutdown's reset path).
 * Boot CPU main loop only, like everything on lwIP (net/netdev.h).
 */
#ifndef TERN_NET_CONN_H
#define TERN_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/stack.h"
#include "net/stack/conn_buf.h"

struct altcp_pcb;
struct conn;
struct peer_log;

enum conn_state {
	CONN_IDLE,		/* no PCB yet */
	CONN_OPENING,		/* client: SYN and handshake; server: TLS handshake */
	CONN_OPEN,		/* bytes move */
	CONN_CLOSED,		/* the PCB is gone (conn_close or lwIP freed it) */
};

enum conn_cause {
	CONN_OK,
	CONN_REFUSED,		/* lwIP error before it opened (RST, failed TLS handshake) */
	CONN_LOST,		/* lwIP error once open */
	CONN_EOF,		/* the peer closed its side (FIN) */
	CONN_OPEN_TIMEOUT,	/* not open within open_us */
	CONN_IDLE_TIMEOUT,	/* nothing received for idle_us */
	CONN_BAD_INPUT,		/* line mode: c->err says which rule (conn_buf.h) */
	CONN_LOCAL,		/* conn_fail() by the owner */
};

struct conn_ops {
	void (*opened)(void *owner);		/* TCP up (plain) or the handshake done (TLS) */
	/* Raw mode: p[0..n) just arrived; < 0 drops the rest of this segment. */
	int (*data)(void *owner, const void *p, size_t n);
	/* Line mode: a whole line (no "\n"), from the receive callback. */
	void (*line)(void *owner, char *line);
	/* Once, the first cause (c->cause, c->err, c->why); the PCB may be gone. */
	void (*failed)(void *owner, struct conn *c);
};

struct conn_cfg {
	bool tls;		/* TLS 1.2 PSK (tls.c), else plain TCP */
	bool line_ascii;	/* lines: printable ASCII only */
	size_t rx_max;		/* line mode: input bytes waiting (0: raw only) */
	size_t line_max;	/* longest line */
	void *rx_buf;		/* rx_max bytes, or NULL: allocated */
	size_t tx_init, tx_max;	/* the output queue (tx_init 0: grows from 4 KiB) */
	void *tx_buf;		/* tx_max bytes, or NULL: allocated */
	uint64_t open_us;	/* connect and handshake limit; 0: none */
	uint64_t idle_us;	/* no input for that long; 0: none */
};

struct conn {
	struct conn_cfg cfg;
	const struct conn_ops *ops;
	void *owner;
	struct altcp_pcb *pcb;		/* NULL before connecting and once closed */
	enum conn_state state;
	bool client;
	bool raw;			/* input to ops->data, not lines */
	bool hold;			/* no idle timeout (a command of the peer runs) */
	volatile bool wake;		/* the send buffer drained a little */
	enum conn_cause cause;		/* the first failure, CONN_OK while none */
	int err;			/* its negative errno */
	int lwip_err;			/* CONN_REFUSED, CONN_LOST: lwIP's err_t */
	enum net_tls_phase tls_phase;	/* CONN_REFUSED over TLS: how far it got */
	char why[96];
	struct conn_lines rx;
	struct conn_ring tx;
	const uint8_t *ref;		/* conn_send_ref's buffer */
	size_t ref_len, ref_off;
	uint64_t bytes_in, bytes_out;	/* since conn_init */
	uint64_t t_push_us;		/* in TLS and TCP writes */
	uint64_t t_start_us, last_rx_us, last_tx_us;
};

/* Buffers and callbacks: 0 or -ENOMEM. */
int conn_init(struct conn *c, const struct conn_cfg *cfg, const struct conn_ops *ops,
	      void *owner);
/* Abort the PCB (if any) and free the buffers. */
void conn_free(struct conn *c);

/* To IPv4 addr (host order):port: 0, -ENOENT (TLS, no secret), -ENOMEM,
 * -EHOSTUNREACH (lwIP refused at once: no route). */
int conn_connect(struct conn *c, uint32_t addr, uint16_t port);
/* Take a PCB a listener accepted (from its accept callback). */
void conn_accept(struct conn *c, struct altcp_pcb *pcb);
/* A listener on port, TLS or plain; NULL with *err -ENOMEM, -EADDRINUSE. */
struct altcp_pcb *conn_listen(bool tls, uint16_t port, uint8_t backlog,
			      int (*accept)(void *arg, struct altcp_pcb *pcb), void *arg,
			      int *err);
void conn_unlisten(struct altcp_pcb *l);
/* "a.b.c.d:port" of the remote end. */
void conn_peer(struct altcp_pcb *pcb, char *buf, size_t len);
/* The remote IPv4 address, host byte order (0 if none). */
uint32_t conn_peer_addr(struct altcp_pcb *pcb);

/* Queue bytes (all or nothing): 0, -ENOSPC (queue full), -ENOMEM. */
int conn_write(struct conn *c, const void *p, size_t n);
size_t conn_tx_room(const struct conn *c);
size_t conn_tx_queued(const struct conn *c);
/* Send buf[0..len) after the queue, without a copy; the owner keeps it
 * until conn_ref_done().  Queued bytes written later still go first. */
void conn_send_ref(struct conn *c, const void *buf, size_t len);
bool conn_ref_done(const struct conn *c);
/* Write what lwIP's send buffer takes now. */
void conn_push(struct conn *c);

/* Line mode, lines kept: one into out (size >= rx_max + 1), as
 * conn_lines_take. */
bool conn_has_line(const struct conn *c);
long conn_take_line(struct conn *c, char *out, size_t size);
/* Drop input not taken yet. */
void conn_drop_input(struct conn *c);
/* Restart the idle clock (the owner answered). */
void conn_touch(struct conn *c);

/* Record a failure (the first one wins) and report it once. */
void conn_fail(struct conn *c, enum conn_cause cause, int err, const char *why);
static inline bool conn_failed(const struct conn *c)
{
	return c->cause != CONN_OK;
}
/* Main loop only: hand the PCB back to lwIP (abort: RST at once). */
void conn_close(struct conn *c, bool abort);

/*
 * A refused peer that has not proven the key, logged as "WHO: ..." within
 * l's limits (kernel/lib/peer_gate.h); the count of those held back goes
 * with the next line, or from conn_log_flush once the window is over
 * (call it from the owner's service).
 */
void conn_log_refusal(struct peer_log *l, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void conn_log_flush(struct peer_log *l, const char *who);

#endif
