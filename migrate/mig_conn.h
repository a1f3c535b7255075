/* One migration connection (mig_conn.c): control lines and bulk bytes. */
#ifndef TERN_MIG_CONN_H
#define TERN_MIG_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "migrate/migrate.h"

struct altcp_pcb;

struct mig_conn_ops {
	void (*connected)(void *owner);		/* client: TLS is up */
	int (*data)(void *owner, const void *p, size_t n);	/* raw mode */
	void (*line)(void *owner, char *line);	/* line mode */
	void (*lost)(void *owner, const char *why);	/* once; pcb may be gone */
};

struct mig_conn {
	const struct mig_conn_ops *ops;
	void *owner;
	struct altcp_pcb *pcb;		/* NULL once closed or freed */
	bool client, open, lost;
	bool plain;			/* plain TCP (encrypt=off data link) */
	bool raw;			/* deliver bytes to ops->data */
	volatile bool wake;		/* the send buffer drained a little */
	char why[96];
	char line[MIG_LINE_MAX + 1];
	size_t line_len;
	char ctl[4 * (MIG_LINE_MAX + 2)];
	size_t ctl_len, ctl_off;
	const uint8_t *bulk;
	size_t bulk_len, bulk_off;
	uint64_t bytes_out;
	uint64_t t_push_us;		/* in TLS and TCP writes */
	uint64_t last_rx_us, last_tx_us;	/* last bytes in, last bytes out */
};

void mig_conn_init(struct mig_conn *c, const struct mig_conn_ops *ops, void *owner);
int mig_conn_connect(struct mig_conn *c, const char *addr, uint16_t port);
void mig_conn_accepted(struct mig_conn *c, struct altcp_pcb *pcb);
/* Queue one control line (printf-style, "\n" added) and send it. */
int mig_conn_line(struct mig_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Send buf[0..len) (kept by the caller until mig_conn_bulk_done). */
void mig_conn_bulk(struct mig_conn *c, const void *buf, size_t len);
bool mig_conn_bulk_done(const struct mig_conn *c);
void mig_conn_push(struct mig_conn *c);
/* Main loop only. */
void mig_conn_close(struct mig_conn *c, bool abort);

#endif
