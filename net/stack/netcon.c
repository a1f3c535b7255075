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
 * Strangers never keep an operator out (issue #17): a connection that has
 * not finished its TLS handshake is "pending", kept apart from the
 * NETCON_MAX_CLIENTS sessions.  At most NETCON_MAX_PENDING wait, at most
 * NETCON_PENDING_PER_ADDR from one address; a newcomer evicts the oldest
 * (kernel/lib/peer_gate.h), and each has NETCON_HANDSHAKE_US to finish.
 * A session slot is taken only once the handshake proved the key.  Peers
 * not on `console_allow` are dropped at accept, before any TLS work, and
 * refusals of peers without the key are logged at most NETCON_LOG_BURST
 * a window (the count of the others follows).
 *
 * The connection itself (TLS, line buffering and its limits, the output
 * queue, the handshake and idle timeouts, closing from the main loop) is
 * the connection helper's (net/conn.h); this file is the console on top.
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

#include "lwip/err.h"

#include "kernel/mgmt/console.h"
#include "kernel/mgmt/registry.h"
#include "kernel/platform/mainloop.h"
#include "kernel/kernel.h"
#include "kernel/lib/cmd.h"
#include "kernel/lib/config.h"
#include "kernel/lib/peer_gate.h"
#include "net/conn.h"
#include "net/stack.h"

#define NETCON_MAX_CLIENTS	8	/* authenticated sessions */
#define NETCON_MAX_PENDING	8	/* connections still in the TLS handshake */
#define NETCON_PENDING_PER_ADDR	3
/* Evicted connections wait for the main loop to close them (never inside
 * an lwIP callback, net/conn.h): a few spare entries. */
#define NETCON_SLOTS		(NETCON_MAX_CLIENTS + NETCON_MAX_PENDING + 4)
#define NETCON_LINE_MAX		(CMD_LINE_MAX + 8)	/* room for "--json " */
#define NETCON_RX_MAX		(4 * NETCON_LINE_MAX)	/* unanswered input */
#define NETCON_TX_MAX		(1024 * 1024)		/* queued output */
#define NETCON_TX_FLUSH		4000	/* a TLS record's worth: write it now */
/*
 * TCP accept to the first authenticated byte.  Measured in the lab (nested
 * TCG QEMU, the slowest host Tern runs on): ternctl's ECDHE-PSK handshake
 * took 21-536 ms there (median 100 ms, 156 handshakes); 4 s leaves a slow
 * link ample room.
 */
#define NETCON_HANDSHAKE_US	(4 * 1000000ull)
#define NETCON_LOG_WINDOW_US	(10 * 1000000ull)
#define NETCON_LOG_BURST	5
#define NETCON_LINGER_US	(5 * 1000000ull)	/* to drain a last reply */

enum nc_state { NC_FREE, NC_HANDSHAKE, NC_OPEN, NC_CLOSING };

struct nc_client {
	bool used;
	struct conn conn;
	unsigned id;
	char peer[24];			/* "10.77.0.254:41234" */
	char source[32];		/* "tcp 10.77.0.254:41234" */
	uint32_t addr;			/* the peer's address, host order */
	bool evicted;			/* pending, made room for a newer one */
	struct cmd_ctx ctx;
	bool json;
	bool busy;			/* a command of this client runs */
	bool closing;			/* refused or quit: close once the output is out */
	bool tx_full;
	uint64_t closing_us;
	uint64_t ncmds;
};

static struct nc_client nc_clients[NETCON_SLOTS];
static struct altcp_pcb *nc_listen;
static struct conn_cfg nc_cfg;
static uint16_t nc_port;
static unsigned nc_next_id = 1;
static uint64_t nc_refused, nc_served, nc_evicted;
static struct cfg_allow nc_allow;
static struct peer_log nc_log = {
	.window_us = NETCON_LOG_WINDOW_US, .burst = NETCON_LOG_BURST,
};

/* Microseconds from t to now; a stamp taken after now counts as 0. */
static uint64_t nc_since(uint64_t now, uint64_t t)
{
	return now > t ? now - t : 0;
}

static enum nc_state nc_state(const struct nc_client *c)
{
	if (!c->used)
		return NC_FREE;
	if (c->closing)
		return NC_CLOSING;
	return c->conn.state == CONN_OPENING ? NC_HANDSHAKE : NC_OPEN;
}

/* A peer without the key refused: counted always, logged within nc_log's
 * limits (a flood of strangers must not flood the log as well). */
#define nc_refuse_log(...) \
	(nc_refused++, conn_log_refusal(&nc_log, "netcon", __VA_ARGS__))

static bool nc_pending(const struct nc_client *c)
{
	return c->used && !c->closing && !c->evicted && c->conn.pcb &&
	       c->conn.state == CONN_OPENING;
}

static unsigned nc_sessions(void)
{
	unsigned n = 0;

	for (int i = 0; i < NETCON_SLOTS; i++)
		n += nc_clients[i].used && nc_clients[i].conn.state == CONN_OPEN &&
		     !nc_clients[i].closing && !nc_clients[i].evicted;
	return n;
}

static void nc_free(struct nc_client *c)
{
	conn_free(&c->conn);
	memset(c, 0, sizeof(*c));
}

/* Hand the PCB back to lwIP; the slot goes when no command runs. */
static void nc_release(struct nc_client *c, bool abort)
{
	conn_close(&c->conn, abort);
	if (c->busy)
		c->closing = true;	/* nc_run frees it afterwards */
	else
		nc_free(c);
}

/* ---- output ---- */

static void nc_write(void *ctx, const char *s, size_t n)
{
	struct nc_client *c = ctx;

	if (!c->conn.pcb || c->tx_full)
		return;
	if (conn_write(&c->conn, s, n) < 0) {
		/* Keep what fits and say so once; the command is not stopped. */
		c->tx_full = true;
		return;
	}
	if (conn_tx_queued(&c->conn) >= NETCON_TX_FLUSH)
		conn_push(&c->conn);
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

	/* Not rate-limited: this peer proved the key, or it is a session
	 * that was already served. */
	pr_warn("netcon: %s: %s: closing", c->peer, why);
	nc_refused++;
	conn_drop_input(&c->conn);
	if (c->conn.state == CONN_OPEN && !c->closing && c->conn.pcb) {
		if (c->json)
			snprintf(line, sizeof(line),
				 "{\"ok\":false,\"cmd\":\"\",\"error\":\"%s\"}\n", why);
		else
			snprintf(line, sizeof(line), "error: %s\n", why);
		nc_puts(c, line);
	}
	c->closing = c->conn.hold = true;
	c->closing_us = time_us();
	conn_push(&c->conn);
}

/* ---- the connection's reports (from lwIP callbacks) ---- */

/* The key is proven: now, and only now, the client takes a session. */
static void nc_opened(void *owner)
{
	struct nc_client *c = owner;
	const char *suite = net_tls_suite(c->conn.pcb);
	char why[48];

	if (c->evicted)
		return;		/* too late: netcon_service closes it */
	if (nc_sessions() > NETCON_MAX_CLIENTS) {	/* this one counts already */
		snprintf(why, sizeof(why), "all %d sessions are busy", NETCON_MAX_CLIENTS);
		nc_fail(c, why);
		return;
	}
	pr_info("netcon: %s: authenticated (%s) in %lu ms", c->peer, suite ? suite : "TLS",
		nc_since(time_us(), c->conn.t_start_us) / 1000);
}

static void nc_refused_handshake(struct nc_client *c, const char *why)
{
	nc_refuse_log("refused %s: %s", c->peer, why);
}

static void nc_failed(void *owner, struct conn *cn)
{
	struct nc_client *c = owner;

	switch (cn->cause) {
	case CONN_EOF:
		break;		/* netcon_service answers the lines here, then closes */
	case CONN_REFUSED:
		if (cn->tls_phase == NET_TLS_HELLO)
			nc_refused_handshake(c, "not a TLS 1.2 PSK client (plain TCP?)");
		else if (cn->tls_phase == NET_TLS_KEYS)
			nc_refused_handshake(c, "TLS handshake failed (wrong key?)");
		break;
	case CONN_LOST:
		if (cn->lwip_err != ERR_CLSD && cn->lwip_err != ERR_OK)
			pr_info("netcon: %s: connection lost (%s)", c->peer,
				lwip_strerr((err_t)cn->lwip_err));
		break;
	case CONN_OPEN_TIMEOUT:
		nc_refuse_log("refused %s: no TLS handshake within %llu s", c->peer,
			      NETCON_HANDSHAKE_US / 1000000);
		break;
	case CONN_BAD_INPUT:
		nc_fail(c, cn->err == -EBADMSG ? "binary data on the console" : cn->why);
		break;
	default:
		nc_fail(c, cn->why);	/* "idle timeout" */
	}
}

static const struct conn_ops nc_conn_ops = {
	.opened = nc_opened,
	.failed = nc_failed,
};

static struct nc_client *nc_slot(void)
{
	for (int i = 0; i < NETCON_SLOTS; i++)
		if (!nc_clients[i].used)
			return &nc_clients[i];
	return NULL;
}

/*
 * Make room for a connection from addr among the pending ones: the victim
 * is flagged here (an lwIP callback) and aborted by netcon_service.
 */
static void nc_evict_for(uint32_t addr)
{
	struct peer_pend p[NETCON_SLOTS];
	struct nc_client *v;
	int i;

	for (i = 0; i < NETCON_SLOTS; i++)
		p[i] = (struct peer_pend){ nc_pending(&nc_clients[i]), nc_clients[i].addr,
					   nc_clients[i].conn.t_start_us };
	i = peer_pend_victim(p, NETCON_SLOTS, addr, NETCON_MAX_PENDING,
			     NETCON_PENDING_PER_ADDR);
	if (i < 0)
		return;
	v = &nc_clients[i];
	v->evicted = true;
	nc_evicted++;
	nc_refuse_log("dropped %s: no TLS handshake after %lu ms, and a newer connection "
		      "needs its place", v->peer, nc_since(time_us(), v->conn.t_start_us) / 1000);
}

static int nc_accept(void *arg, struct altcp_pcb *pcb)
{
	struct nc_client *c;
	uint32_t addr = conn_peer_addr(pcb);
	char peer[24];
	int rc;

	(void)arg;
	conn_peer(pcb, peer, sizeof(peer));
	if (!cfg_allow_match(&nc_allow, addr)) {
		nc_refuse_log("refused %s: not on console_allow", peer);
		return -EACCES;		/* the helper aborts it: no TLS work */
	}
	nc_evict_for(addr);
	c = nc_slot();
	rc = c ? conn_init(&c->conn, &nc_cfg, &nc_conn_ops, c) : -EBUSY;
	if (rc < 0) {
		nc_refuse_log("refused %s: %s", peer, c ? "out of memory"
					: "too many connections at once");
		return rc;	/* the helper aborts the connection */
	}
	c->used = true;
	c->addr = addr;
	c->id = nc_next_id++;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	snprintf(c->source, sizeof(c->source), "tcp %s", c->peer);
	c->ctx.source = c->source;
	conn_accept(&c->conn, pcb);
	pr_debug("netcon: %s: connected", c->peer);
	return 0;
}

/* ---- running lines (main loop, outside lwIP) ---- */

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
		conn_push(&c->conn);
	}
}

static void nc_dispatch(struct nc_client *c, const char *line)
{
	struct cmd_out out = { nc_write, c };
	bool json = c->json;

	if (!strcmp(line, "quit") || !strcmp(line, "exit")) {
		c->closing = true;
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

	if (conn_take_line(&c->conn, line, sizeof(line)) < 0)
		return;
	c->busy = c->conn.hold = true;	/* no idle timeout while it runs */
	nc_dispatch(c, line);
	c->busy = false;
	c->conn.hold = c->closing;	/* a closing client is not idle */
	conn_touch(&c->conn);
	if (!c->conn.pcb) {		/* lost while the command ran */
		nc_free(c);
		return;
	}
	conn_push(&c->conn);
}

static bool nc_has_line(const struct nc_client *c)
{
	return c->used && c->conn.state == CONN_OPEN && !c->closing && !c->busy &&
	       conn_has_line(&c->conn);
}

static bool nc_lingered(const struct nc_client *c)
{
	return c->closing && nc_since(time_us(), c->closing_us) > NETCON_LINGER_US;
}

/*
 * Closes happen here, in the main loop, never inside an lwIP callback
 * (net/conn.h): the connection only reports.  A refused handshake and a
 * peer that does not read its last reply are aborted.
 */
static bool nc_should_close(const struct nc_client *c)
{
	if (!c->used || c->busy)
		return false;
	if (!c->conn.pcb || c->conn.cause == CONN_OPEN_TIMEOUT || c->evicted ||
	    nc_lingered(c))
		return true;
	if (c->conn.state == CONN_OPENING || conn_tx_queued(&c->conn))
		return false;	/* the sent callback drains it first */
	return c->closing || (c->conn.cause == CONN_EOF && !nc_has_line(c));
}

static bool netcon_pending(void)
{
	for (int i = 0; i < NETCON_SLOTS; i++) {
		const struct nc_client *c = &nc_clients[i];

		if (nc_has_line(c) || nc_should_close(c))
			return true;
	}
	return false;
}

static void netcon_service(void)
{
	conn_log_flush(&nc_log, "netcon");
	for (int i = 0; i < NETCON_SLOTS; i++) {
		struct nc_client *c = &nc_clients[i];

		if (nc_has_line(c))
			nc_run(c);
		if (nc_should_close(c)) {
			bool abort = c->conn.cause == CONN_OPEN_TIMEOUT || c->evicted ||
				     nc_lingered(c);

			pr_debug("netcon: %s: closed after %lu commands", c->peer, c->ncmds);
			nc_release(c, abort);
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
	int r;

	r = net_tls_init(cfg);
	if (r == -ENOENT) {
		pr_warn("netcon: no secret in tern.cfg: not listening on the network");
		return;
	}
	if (r < 0)
		return;
	nc_port = cfg->console_port;
	nc_allow = cfg->console_allow;
	nc_cfg = (struct conn_cfg){
		.tls = true,
		.rx_max = NETCON_RX_MAX,
		.line_max = NETCON_LINE_MAX,
		.tx_max = NETCON_TX_MAX,
		.open_us = NETCON_HANDSHAKE_US,
		.idle_us = (uint64_t)cfg->console_idle_s * 1000000,
	};
	nc_listen = conn_listen(true, nc_port, NETCON_MAX_PENDING, nc_accept, NULL, &r);
	if (!nc_listen) {
		if (r == -EADDRINUSE)
			pr_err("netcon: cannot bind TCP port %u", nc_port);
		else
			pr_err("netcon: no memory for the listening socket");
		return;
	}
	mainloop_register(&netcon_svc);
	pr_info("netcon: listening on TCP port %u (TLS 1.2, pre-shared key), idle timeout %u s%s",
		nc_port, cfg->console_idle_s, nc_allow.n ? ", console_allow set" : "");
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
	tern_entropy_print(o);
	if (!nc_listen) {
		cmd_printf(o, "network console: off (%s)\n",
			   !tern_entropy_ok() ? "entropy health tests failed" :
			   net_tls_ready() ? "cannot listen" : "no secret in tern.cfg");
		return 0;
	}
	cmd_printf(o, "network console: TCP port %u, TLS 1.2 PSK, %lu commands served, "
		   "%lu refused (%lu evicted in the handshake)\n", nc_port, nc_served,
		   nc_refused, nc_evicted);
	cmd_printf(o, "id    peer                   state      mode  idle    commands\n");
	for (int i = 0; i < NETCON_SLOTS; i++) {
		const struct nc_client *c = &nc_clients[i];

		if (!c->used)
			continue;
		char idle[24];

		snprintf(idle, sizeof(idle), "%lus", nc_since(now, c->conn.last_rx_us) / 1000000);
		cmd_printf(o, "%-5u %-22s %-10s %-5s %-7s %lu%s\n", c->id, c->peer,
			   nc_state_name(nc_state(c)), c->json ? "json" : "text", idle,
			   c->ncmds, &c->ctx == ctx ? "  (you)" : "");
	}
	return 0;
}
