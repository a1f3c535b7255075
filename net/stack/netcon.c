/*
 * The network console: the serial console's commands over TCP, inside TLS
 * with the pre-shared key (tls.c).  Several clients at once.
 *
 * Protocol (tools/ternctl.c is the reference client; `openssl s_client
 * -psk` works too): the client sends lines ended by "\n" (a "\r" before
 * it is dropped).  Each line is one command, answered in the session's
 * mode:
 *	text (the start)	the command's output as the serial console
 *				prints it; errors are one "error: ..." line
 *	json			exactly one JSON object on one line per
 *				command (kernel/lib/cmd.h)
 * Control lines: "--json" and "--text" switch the mode (acknowledged in
 * the new mode), "--json CMD" runs one command in JSON, "quit" closes.
 *
 * Hostile input never costs more than the connection: a line over
 * NETCON_LINE_MAX, a control byte (binary data), more unanswered input
 * than NETCON_RX_MAX, a silent handshake or an idle client each get one
 * error line (when TLS is up) and a close, and the refusal is logged.
 *
 * Context: lwIP callbacks only buffer input and output.  Commands run in
 * netcon_service(), the network console's service in the boot CPU's main
 * loop, outside lwIP, so a command may wait in mainloop_wait() (ping,
 * disk, iperf do).  The service is reentrant: while one client's command
 * waits, the loop runs netcon_service() again and the other clients are
 * served; the waiting client is marked busy, so its next line waits for
 * its command to end and it is not closed under it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/altcp.h"
#include "lwip/ip_addr.h"
#include "lwip/tcp.h"

#include "kernel/mgmt/console.h"
#include "kernel/mgmt/registry.h"
#include "kernel/platform/mainloop.h"
#include "kernel/kernel.h"
#include "kernel/lib/cmd.h"
#include "kernel/lib/config.h"
#include "net/stack.h"

#define NETCON_MAX_CLIENTS	8
#define NETCON_LINE_MAX		(CMD_LINE_MAX + 8)	/* room for "--json " */
#define NETCON_RX_MAX		(4 * NETCON_LINE_MAX)	/* unanswered input */
#define NETCON_TX_MAX		(1024 * 1024)		/* queued output */
#define NETCON_TX_CHUNK		4000	/* < MBEDTLS_SSL_OUT_CONTENT_LEN: one record */
#define NETCON_TX_SLACK		128	/* record header, nonce and tag */
#define NETCON_HANDSHAKE_US	(10 * 1000000ull)
#define NETCON_LINGER_US	(5 * 1000000ull)	/* to drain a last reply */
#define NETCON_POLL_TICKS	2	/* lwIP's 500 ms units: 1 s */

enum nc_state { NC_FREE, NC_HANDSHAKE, NC_OPEN, NC_CLOSING };

struct nc_client {
	enum nc_state state;
	struct altcp_pcb *pcb;		/* NULL once lwIP freed it */
	unsigned id;
	char peer[24];			/* "10.77.0.254:41234" */
	char source[32];		/* "tcp 10.77.0.254:41234" */
	struct cmd_ctx ctx;
	bool json;
	bool busy;			/* a command of this client runs */
	bool peer_closed;		/* FIN: finish the lines, then close */
	char *rx;			/* NETCON_RX_MAX bytes */
	size_t rx_len;
	size_t line_len;		/* bytes of rx after its last "\n" */
	char *tx;
	size_t tx_len, tx_off, tx_cap;
	bool tx_full;
	uint64_t since_us, last_us, closing_us;
	uint64_t ncmds;
};

static struct nc_client nc_clients[NETCON_MAX_CLIENTS];
static struct altcp_pcb *nc_listen;
static uint16_t nc_port;
static uint64_t nc_idle_us;
static unsigned nc_next_id = 1;
static uint64_t nc_refused, nc_served;

/* Microseconds from t to now; a stamp taken after now counts as 0. */
static uint64_t nc_since(uint64_t now, uint64_t t)
{
	return now > t ? now - t : 0;
}

static void nc_free(struct nc_client *c)
{
	free(c->rx);
	free(c->tx);
	memset(c, 0, sizeof(*c));
}

static void nc_detach(struct altcp_pcb *pcb)
{
	altcp_arg(pcb, NULL);
	altcp_recv(pcb, NULL);
	altcp_sent(pcb, NULL);
	altcp_err(pcb, NULL);
	altcp_poll(pcb, NULL, 0);
}

/* Hand the PCB back to lwIP and forget it; the slot goes when idle. */
static void nc_drop_pcb(struct nc_client *c, bool abort)
{
	struct altcp_pcb *pcb = c->pcb;

	if (!pcb)
		return;
	c->pcb = NULL;
	nc_detach(pcb);
	if (abort || altcp_close(pcb) != ERR_OK)
		altcp_abort(pcb);
}

static void nc_release(struct nc_client *c, bool abort)
{
	nc_drop_pcb(c, abort);
	if (c->busy)
		c->state = NC_CLOSING;	/* nc_run frees it afterwards */
	else
		nc_free(c);
}

/* ---- output ---- */

static int nc_tx_reserve(struct nc_client *c, size_t n)
{
	size_t cap = c->tx_cap ? c->tx_cap : 4096;
	char *p;

	if (c->tx_off == c->tx_len)
		c->tx_off = c->tx_len = 0;
	if (c->tx_len + n <= c->tx_cap)
		return 0;
	if (c->tx_len + n > NETCON_TX_MAX)
		return -ENOSPC;
	while (cap < c->tx_len + n)
		cap *= 2;
	p = realloc(c->tx, cap);
	if (!p)
		return -ENOMEM;
	c->tx = p;
	c->tx_cap = cap;
	return 0;
}

/*
 * Move queued output into TLS records as the TCP send buffer allows; the
 * rest waits for the sent callback.  One record per write keeps lwIP's
 * glue within its one-record-per-call assumption (altcp_mbedtls_write).
 */
static void nc_flush(struct nc_client *c)
{
	bool wrote = false;

	while (c->pcb && c->state != NC_HANDSHAKE && c->tx_off < c->tx_len) {
		size_t n = c->tx_len - c->tx_off;
		u16_t room = altcp_sndbuf(c->pcb);

		if (room <= NETCON_TX_SLACK || altcp_sndqueuelen(c->pcb) + 4 > TCP_SND_QUEUELEN)
			break;
		if (n > NETCON_TX_CHUNK)
			n = NETCON_TX_CHUNK;
		if (n > (size_t)room - NETCON_TX_SLACK)
			n = (size_t)room - NETCON_TX_SLACK;
		if (altcp_write(c->pcb, c->tx + c->tx_off, (u16_t)n, TCP_WRITE_FLAG_COPY) != ERR_OK)
			break;
		c->tx_off += n;
		wrote = true;
	}
	if (wrote && c->pcb)
		altcp_output(c->pcb);
	if (c->tx_off == c->tx_len)
		c->tx_off = c->tx_len = 0;
}

static void nc_write(void *ctx, const char *s, size_t n)
{
	struct nc_client *c = ctx;

	if (!c->pcb || c->tx_full)
		return;
	if (nc_tx_reserve(c, n) < 0) {
		/* Keep what fits and say so once; the command is not stopped. */
		c->tx_full = true;
		return;
	}
	memcpy(c->tx + c->tx_len, s, n);
	c->tx_len += n;
	if (c->tx_len - c->tx_off >= NETCON_TX_CHUNK)
		nc_flush(c);
}

static void nc_puts(struct nc_client *c, const char *s)
{
	nc_write(c, s, strlen(s));
}

/*
 * Refuse this client: one error line in its mode (when TLS is up), the
 * reason in the log, then close once the line is out.
 */
static void nc_fail(struct nc_client *c, const char *why)
{
	char line[160];

	pr_warn("netcon: %s: %s: closing", c->peer, why);
	nc_refused++;
	c->rx_len = c->line_len = 0;
	if (c->state == NC_OPEN && c->pcb) {
		if (c->json)
			snprintf(line, sizeof(line),
				 "{\"ok\":false,\"cmd\":\"\",\"error\":\"%s\"}\n", why);
		else
			snprintf(line, sizeof(line), "error: %s\n", why);
		nc_puts(c, line);
	}
	c->state = NC_CLOSING;
	c->closing_us = time_us();
	nc_flush(c);
}

/* ---- input (lwIP callbacks) ---- */

static bool nc_bad_byte(unsigned char b)
{
	return (b < 0x20 && b != '\t' && b != '\r' && b != '\n') || b == 0x7f;
}

/* Append one pbuf's bytes; a refusal reason, or NULL. */
static const char *nc_take(struct nc_client *c, const struct pbuf *p)
{
	for (const struct pbuf *q = p; q; q = q->next) {
		const unsigned char *b = q->payload;

		for (u16_t i = 0; i < q->len; i++) {
			if (nc_bad_byte(b[i]))
				return "binary data on the console";
			if (c->rx_len == NETCON_RX_MAX)
				return "too much input without waiting for replies";
			c->rx[c->rx_len++] = (char)b[i];
			c->line_len = b[i] == '\n' ? 0 : c->line_len + 1;
			if (c->line_len > NETCON_LINE_MAX)
				return "line too long";
		}
	}
	return NULL;
}

static void nc_opened(struct nc_client *c)
{
	const char *suite = net_tls_suite(c->pcb);

	c->state = NC_OPEN;
	c->last_us = time_us();
	pr_info("netcon: %s: authenticated (%s)", c->peer, suite ? suite : "TLS");
}

static err_t nc_recv(void *arg, struct altcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct nc_client *c = arg;
	const char *why;

	if (!c) {
		if (p)
			pbuf_free(p);
		return ERR_OK;
	}
	if (!p || err != ERR_OK) {
		/* FIN: netcon_service answers the lines already here, then
		 * closes (never from inside lwIP). */
		if (p)
			pbuf_free(p);
		c->peer_closed = true;
		return ERR_OK;
	}
	altcp_recved(pcb, p->tot_len);
	if (c->state == NC_HANDSHAKE)
		nc_opened(c);
	if (c->state == NC_OPEN) {
		c->last_us = time_us();
		why = nc_take(c, p);
		if (why)
			nc_fail(c, why);
	}
	pbuf_free(p);
	return ERR_OK;
}

static err_t nc_sent(void *arg, struct altcp_pcb *pcb, u16_t len)
{
	struct nc_client *c = arg;

	(void)pcb, (void)len;
	if (c)
		nc_flush(c);
	return ERR_OK;
}

/* lwIP has freed the PCB (reset, or a handshake that failed). */
static void nc_err(void *arg, err_t err)
{
	struct nc_client *c = arg;

	if (!c)
		return;
	if (c->state == NC_HANDSHAKE) {
		enum net_tls_phase ph = net_tls_phase(c->pcb);

		if (ph == NET_TLS_HELLO) {
			pr_warn("netcon: refused %s: not a TLS 1.2 PSK client (plain TCP?)", c->peer);
			nc_refused++;
		} else if (ph == NET_TLS_KEYS) {
			pr_warn("netcon: refused %s: TLS handshake failed (wrong key?)", c->peer);
			nc_refused++;
		}
	} else if (err != ERR_CLSD && err != ERR_OK) {
		pr_info("netcon: %s: connection lost (%s)", c->peer, lwip_strerr(err));
	}
	c->pcb = NULL;		/* freed by lwIP: nothing to close */
	nc_release(c, false);
}

/* Every second: handshake and idle limits, and output left behind. */
static err_t nc_poll(void *arg, struct altcp_pcb *pcb)
{
	struct nc_client *c = arg;
	uint64_t now = time_us();

	(void)pcb;
	if (!c)
		return ERR_OK;
	if (c->state == NC_HANDSHAKE && net_tls_phase(c->pcb) == NET_TLS_OPEN)
		nc_opened(c);
	if (c->state == NC_HANDSHAKE && nc_since(now, c->since_us) > NETCON_HANDSHAKE_US) {
		pr_warn("netcon: refused %s: no TLS handshake within %llu s", c->peer,
			NETCON_HANDSHAKE_US / 1000000);
		nc_refused++;
		nc_release(c, true);
		return ERR_ABRT;
	}
	if (c->state == NC_OPEN && !c->busy && nc_since(now, c->last_us) > nc_idle_us)
		nc_fail(c, "idle timeout");
	if (c->state == NC_CLOSING && !c->busy && nc_since(now, c->closing_us) > NETCON_LINGER_US) {
		/* The peer does not read its last reply. */
		nc_release(c, true);
		return ERR_ABRT;
	}
	nc_flush(c);
	return ERR_OK;
}

static struct nc_client *nc_slot(void)
{
	for (int i = 0; i < NETCON_MAX_CLIENTS; i++)
		if (nc_clients[i].state == NC_FREE)
			return &nc_clients[i];
	return NULL;
}

static err_t nc_accept(void *arg, struct altcp_pcb *pcb, err_t err)
{
	struct nc_client *c;
	char ip[16];

	(void)arg;
	if (err != ERR_OK || !pcb)
		return ERR_VAL;
	ipaddr_ntoa_r(altcp_get_ip(pcb, 0), ip, sizeof(ip));
	c = nc_slot();
	if (c)
		c->rx = malloc(NETCON_RX_MAX);
	if (!c || !c->rx) {
		pr_warn("netcon: refused %s:%u: %s", ip, altcp_get_port(pcb, 0),
			c ? "out of memory" : "all client slots are busy");
		nc_refused++;
		if (c)
			nc_free(c);
		altcp_abort(pcb);
		return ERR_ABRT;
	}
	c->state = NC_HANDSHAKE;
	c->pcb = pcb;
	c->id = nc_next_id++;
	snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, altcp_get_port(pcb, 0));
	snprintf(c->source, sizeof(c->source), "tcp %s", c->peer);
	c->ctx.source = c->source;
	c->since_us = c->last_us = time_us();
	altcp_arg(pcb, c);
	altcp_recv(pcb, nc_recv);
	altcp_sent(pcb, nc_sent);
	altcp_err(pcb, nc_err);
	altcp_poll(pcb, nc_poll, NETCON_POLL_TICKS);
	/* Replies are small and each one waits for the next command. */
	altcp_nagle_disable(pcb);
	pr_debug("netcon: %s: connected", c->peer);
	return ERR_OK;
}

/* ---- running lines (main loop, outside lwIP) ---- */

/* The first complete line, NUL-terminated into line; false when none. */
static bool nc_take_line(struct nc_client *c, char *line)
{
	char *nl = memchr(c->rx, '\n', c->rx_len);
	size_t n;

	if (!nl)
		return false;
	n = (size_t)(nl - c->rx);
	memcpy(line, c->rx, n);
	if (n && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	c->rx_len -= (size_t)(nl + 1 - c->rx);
	memmove(c->rx, nl + 1, c->rx_len);
	return true;
}

/* console_progress() for a JSON command: a line ahead of the reply. */
static void nc_progress(struct cmd_ctx *ctx, const char *phase, uint64_t done,
			uint64_t total)
{
	struct nc_client *c = (struct nc_client *)((char *)ctx -
						   offsetof(struct nc_client, ctx));
	char line[160];
	int n;

	n = snprintf(line, sizeof(line),
		     "{\"progress\":{\"phase\":\"%s\",\"done\":%lu,\"total\":%lu}}\n",
		     phase, done, total);
	if (n > 0 && (size_t)n < sizeof(line)) {
		nc_write(c, line, (size_t)n);
		nc_flush(c);
	}
}

static void nc_dispatch(struct nc_client *c, const char *line)
{
	struct cmd_out out = { nc_write, c };
	bool json = c->json;

	if (!strcmp(line, "quit") || !strcmp(line, "exit")) {
		c->state = NC_CLOSING;
		c->closing_us = time_us();
		return;
	}
	if (!strcmp(line, "--json") || !strcmp(line, "--text")) {
		c->json = line[2] == 'j';
		nc_puts(c, c->json ? "{\"ok\":true,\"cmd\":\"--json\",\"output\":\"\"}\n"
				   : "ok: plain text replies\n");
		return;
	}
	if (!strncmp(line, "--json ", 7)) {
		json = true;
		line += 7;
	}
	c->ncmds++;
	nc_served++;
	c->ctx.progress = json ? nc_progress : NULL;
	mgmt_dispatch(&c->ctx, line, &out, json);
	c->ctx.progress = NULL;
	if (c->tx_full) {
		c->tx_full = false;
		nc_puts(c, json ? "" : "error: output truncated (over 1 MiB)\n");
	}
}

static void nc_run(struct nc_client *c)
{
	char line[NETCON_RX_MAX + 1];	/* on the stack: nc_run may nest */

	if (!nc_take_line(c, line))
		return;
	c->busy = true;
	nc_dispatch(c, line);
	c->busy = false;
	c->last_us = time_us();
	if (!c->pcb) {		/* lost while the command ran */
		nc_free(c);
		return;
	}
	nc_flush(c);
}

static bool nc_has_line(const struct nc_client *c)
{
	return c->state == NC_OPEN && !c->busy && memchr(c->rx, '\n', c->rx_len);
}

/*
 * Closes happen here, in the main loop: from inside an lwIP callback a
 * close can free the PCB under the caller (tcp_close_shutdown's reset
 * path), so callbacks only mark the client.
 */
static bool nc_should_close(const struct nc_client *c)
{
	if (c->busy || c->state == NC_FREE || c->state == NC_HANDSHAKE)
		return false;
	if (!c->pcb)
		return true;
	if (c->tx_off != c->tx_len)
		return false;	/* the sent callback drains it first */
	return c->state == NC_CLOSING || (c->peer_closed && !nc_has_line(c));
}

static bool netcon_pending(void)
{
	for (int i = 0; i < NETCON_MAX_CLIENTS; i++) {
		const struct nc_client *c = &nc_clients[i];

		if (nc_has_line(c) || nc_should_close(c))
			return true;
	}
	return false;
}

static void netcon_service(void)
{
	for (int i = 0; i < NETCON_MAX_CLIENTS; i++) {
		struct nc_client *c = &nc_clients[i];

		if (nc_has_line(c))
			nc_run(c);
		if (nc_should_close(c)) {
			pr_debug("netcon: %s: closed after %lu commands", c->peer, c->ncmds);
			nc_release(c, false);
		}
	}
}

static const struct mainloop_service netcon_svc = {
	.name = "netcon",
	.service = netcon_service,
	.pending = netcon_pending,
	.flags = MAINLOOP_REENTRANT | MAINLOOP_RUNS_COMMANDS,
};

void netcon_start(const struct tern_config *cfg)
{
	struct altcp_pcb *pcb, *l;
	int r;

	r = net_tls_init(cfg);
	if (r == -ENOENT) {
		pr_warn("netcon: no secret in tern.cfg: not listening on the network");
		return;
	}
	if (r < 0)
		return;
	nc_port = cfg->console_port;
	nc_idle_us = (uint64_t)cfg->console_idle_s * 1000000;
	pcb = net_tls_new(true);
	if (!pcb) {
		pr_err("netcon: no memory for the listening socket");
		return;
	}
	if (altcp_bind(pcb, IP4_ADDR_ANY, nc_port) != ERR_OK) {
		pr_err("netcon: cannot bind TCP port %u", nc_port);
		altcp_close(pcb);
		return;
	}
	l = altcp_listen_with_backlog(pcb, NETCON_MAX_CLIENTS);
	if (!l) {
		pr_err("netcon: cannot listen on TCP port %u", nc_port);
		altcp_close(pcb);
		return;
	}
	nc_listen = l;
	altcp_accept(l, nc_accept);
	mainloop_register(&netcon_svc);
	pr_info("netcon: listening on TCP port %u (TLS 1.2, pre-shared key), idle timeout %u s",
		nc_port, cfg->console_idle_s);
}

static const char *nc_state_name(enum nc_state s)
{
	static const char *const names[] = { "free", "handshake", "open", "closing" };

	return names[s];
}

int netcon_cmd_list(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	uint64_t now = time_us();

	(void)argc, (void)argv;
	if (!nc_listen) {
		cmd_printf(o, "network console: off (%s)\n",
			   net_tls_ready() ? "cannot listen" : "no secret in tern.cfg");
		return 0;
	}
	cmd_printf(o, "network console: TCP port %u, TLS 1.2 PSK, %lu commands served, "
		   "%lu refused\n", nc_port, nc_served, nc_refused);
	cmd_printf(o, "id    peer                   state      mode  idle    commands\n");
	for (int i = 0; i < NETCON_MAX_CLIENTS; i++) {
		const struct nc_client *c = &nc_clients[i];

		if (c->state == NC_FREE)
			continue;
		char idle[24];

		snprintf(idle, sizeof(idle), "%lus", nc_since(now, c->last_us) / 1000000);
		cmd_printf(o, "%-5u %-22s %-10s %-5s %-7s %lu%s\n", c->id, c->peer,
			   nc_state_name(c->state), c->json ? "json" : "text", idle,
			   c->ncmds, &c->ctx == ctx ? "  (you)" : "");
	}
	return 0;
}
