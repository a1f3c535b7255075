/*
 * One migration connection (mig_conn.c): control lines and bulk bytes over
 * the shared connection helper (net/conn.h), with the texts a migration
 * reports when the link fails.
 */
#ifndef TERN_MIG_CONN_H
#define TERN_MIG_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "migrate/migrate.h"
#include "net/conn.h"

struct mig_conn_ops {
	void (*connected)(void *owner);		/* client: TLS is up */
	int (*data)(void *owner, const void *p, size_t n);	/* raw mode */
	void (*line)(void *owner, char *line);	/* line mode */
	void (*lost)(void *owner, const char *why);	/* once; pcb may be gone */
};

struct mig_conn {
	struct conn c;			/* c.raw: deliver bytes to ops->data */
	const struct mig_conn_ops *ops;
	void *owner;
	char line[MIG_LINE_MAX + 2];
	char ctl[4 * (MIG_LINE_MAX + 2)];
};

/* plain: plain TCP (the encrypt=off data link), else TLS. */
void mig_conn_init(struct mig_conn *c, const struct mig_conn_ops *ops, void *owner,
		   bool plain);
int mig_conn_connect(struct mig_conn *c, const char *addr, uint16_t port);
void mig_conn_accepted(struct mig_conn *c, struct altcp_pcb *pcb);
/* Queue one control line (printf-style, "\n" added) and send it. */
int mig_conn_line(struct mig_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Send buf[0..len) (kept by the caller until mig_conn_bulk_done). */
void mig_conn_bulk(struct mig_conn *c, const void *buf, size_t len);
bool mig_conn_bulk_done(const struct mig_conn *c);
/* The link is usable: a PCB, open, no failure. */
bool mig_conn_up(const struct mig_conn *c);
/*
 * encrypt=off: key m for the data link's record MACs from this TLS link's
 * session, the label MIG_MAC_LABEL and both ends' nonces (source's
 * first).  0, -ENOTCONN, -ENOMEM or -EINVAL.
 */
struct mig_mac;
int mig_conn_mac(struct mig_conn *c, const uint8_t *nonce_src, const uint8_t *nonce_dst,
		 struct mig_mac *m);
/* Main loop only. */
void mig_conn_close(struct mig_conn *c, bool abort);

#endif
