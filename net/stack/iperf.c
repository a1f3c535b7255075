/*
 * `iperf server start|stop`, `iperf client ADDR [SECONDS]`, `iperf status`:
 * an iperf2-compatible TCP throughput peer on port 5001, built on lwIP's
 * apps/lwiperf (compiled into liblwip.a by tools/build-lwip.sh).
 *
 * The server is off until asked for: it is an open, unauthenticated port.
 * The client blocks its console and waits in mainloop_wait(), as ping.c
 * does, so it refuses to run from inside lwIP.  Everything here runs on the
 * boot CPU's main loop (NO_SYS=1).
 *
 * lwiperf 2.1.3 has bugs that this file works around rather than patches
 * (third-party source is used as Debian ships it):
 *  1. lwiperf_abort() frees sessions without closing their pcbs (their
 *     callbacks then use freed memory) and never unlinks the head of its
 *     session list: it is never called here.  `iperf server stop` closes
 *     the listening pcb itself; lwiperf's listener record then stays
 *     allocated (a few hundred bytes of lwIP heap per stop).
 *  2. Its error callback tcp_close()s the pcb.  After ERR_ABRT lwIP has
 *     already freed it, and after an RST in SYN_SENT (connection refused)
 *     tcp_close() frees it and tcp_input() frees it again: a double free
 *     in the pcb pool.  Every lwiperf pcb this file can reach gets
 *     iperf_err() instead, which passes on only the safe case (RST on an
 *     established connection) and otherwise leaks lwiperf's session record.
 *  3. The client always asks for 10 s (settings.amount is hard-coded to
 *     -1000, in 10 ms units, with a TODO) and has no stop call.  A shorter
 *     run is ended through lwiperf's own idle timeout (iperf_client_end),
 *     which closes and reports normally; so SECONDS is 1..10.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lwip/apps/lwiperf.h"
#include "lwip/ip_addr.h"
#include "lwip/netif.h"
#include "lwip/tcp.h"

#include "kernel/kernel.h"
#include "kernel/lib/cmd.h"
#include "kernel/lib/config.h"
#include "kernel/platform/mainloop.h"
#include "net/netdev.h"
#include "net/port/lwip_internals.h"
#include "net/stack.h"

#define IPERF_PORT		LWIPERF_TCP_PORT_DEFAULT	/* 5001, iperf2's */
#define IPERF_DEFAULT_SECONDS	10
#define IPERF_MAX_SECONDS	10	/* lwiperf's own run length (bug 3) */
#define IPERF_CONNECT_US	5000000
#define IPERF_REPORT_US		5000000	/* after the end, for lwiperf's report */
#define IPERF_ADDR_MAX		24	/* "255.255.255.255:65535" */

struct iperf_client {
	void *session;		/* lwiperf's handle */
	struct tcp_pcb *pcb;	/* valid while !done */
	bool done;		/* report received or the pcb is gone */
	bool ended_by_us;	/* iperf_client_end() closed it */
	int err;		/* set by iperf_err(): negative errno */
	enum lwiperf_report_type type;
	uint32_t bytes, ms;
};

static void *iperf_srv;			/* lwiperf's listener, NULL when off */
static struct tcp_pcb_listen *iperf_srv_pcb;
/* lwiperf's own callbacks, taken from the first pcb it sets them on. */
static tcp_accept_fn iperf_lw_accept;
static tcp_err_fn iperf_lw_err;
static struct iperf_client iperf_cl;	/* static: lwiperf keeps a pointer */
static bool iperf_cl_running;
static uint32_t iperf_srv_done, iperf_srv_failed, iperf_leaked;

static void iperf_fmt_addr(char *buf, size_t len, const ip_addr_t *a, u16_t port)
{
	char ip[16];

	ip4addr_ntoa_r(ip_2_ip4(a), ip, sizeof(ip));
	snprintf(buf, len, "%s:%u", ip, port);
}

/* Mbit/s with two decimals, in hundredths. */
static uint64_t iperf_centi_mbps(uint64_t bytes, uint64_t ms)
{
	return ms ? bytes * 8 / (ms * 10) : 0;
}

static const char *iperf_report_name(enum lwiperf_report_type type)
{
	switch (type) {
	case LWIPERF_TCP_DONE_SERVER:
	case LWIPERF_TCP_DONE_CLIENT:
		return "done";
	case LWIPERF_TCP_ABORTED_LOCAL:
		return "idle for 10 s, closed";
	case LWIPERF_TCP_ABORTED_LOCAL_DATAERROR:
		return "bad iperf header";
	case LWIPERF_TCP_ABORTED_LOCAL_TXERROR:
		return "could not start the reverse test";
	case LWIPERF_TCP_ABORTED_REMOTE:
		return "reset by the peer";
	}
	return "unknown";
}

/* ---- error callback (bug 2) ---- */

static bool iperf_is_client(void *arg)
{
	return iperf_cl_running && !iperf_cl.done && arg == iperf_cl.session;
}

/*
 * ERR_RST arrives before lwIP frees the pcb; on an established connection
 * lwiperf's tcp_close() takes the FIN path, or the RST path that defers the
 * free to tcp_input(): safe.  Anything else would free the pcb twice.
 */
static void iperf_err(void *arg, err_t err)
{
	bool client = iperf_is_client(arg);
	bool refused = client && err == ERR_RST && iperf_cl.pcb->state == SYN_SENT;

	if (err == ERR_RST && !refused) {
		iperf_lw_err(arg, err);		/* reports ABORTED_REMOTE */
		return;
	}
	iperf_leaked++;
	if (client) {
		iperf_cl.err = refused ? -ECONNREFUSED : -ECONNABORTED;
		iperf_cl.done = true;
	} else {
		iperf_srv_failed++;
		pr_warn("iperf: a server session was aborted by lwIP (%d)", (int)err);
	}
}

/* Take over the error callback lwiperf set on pcb. */
static void iperf_hook_err(struct tcp_pcb *pcb)
{
	if (!iperf_lw_err)
		iperf_lw_err = pcb->errf;
	if (pcb->errf == iperf_lw_err)
		tcp_err(pcb, iperf_err);
}

/* ---- server ---- */

static void iperf_server_report(void *arg, enum lwiperf_report_type type,
				const ip_addr_t *local_addr, u16_t local_port,
				const ip_addr_t *remote_addr, u16_t remote_port,
				u32_t bytes, u32_t ms, u32_t kbps)
{
	char peer[IPERF_ADDR_MAX];
	uint64_t c = iperf_centi_mbps(bytes, ms);

	(void)arg, (void)local_addr, (void)local_port, (void)kbps;
	iperf_fmt_addr(peer, sizeof(peer), remote_addr, remote_port);
	if (type == LWIPERF_TCP_DONE_SERVER) {
		iperf_srv_done++;
		pr_info("iperf: from %s: %lu bytes in %lu ms, %lu.%02lu Mbit/s", peer,
			(unsigned long)bytes, (unsigned long)ms,
			(unsigned long)(c / 100), (unsigned long)(c % 100));
		return;
	}
	iperf_srv_failed++;
	pr_warn("iperf: from %s: %s after %lu bytes in %lu ms", peer,
		iperf_report_name(type), (unsigned long)bytes, (unsigned long)ms);
}

/* Accepted connections get their error callback replaced (bug 2). */
static err_t iperf_accept(void *arg, struct tcp_pcb *newpcb, err_t err)
{
	err_t r = iperf_lw_accept(arg, newpcb, err);

	if (r == ERR_OK && newpcb)
		iperf_hook_err(newpcb);
	return r;
}

static int iperf_server_start(struct cmd_out *o)
{
	struct tcp_pcb_listen *l;
	void *s;

	if (iperf_srv) {
		cmd_printf(o, "iperf server already listening on TCP port %d\n", IPERF_PORT);
		return 0;
	}
	s = lwiperf_start_tcp_server_default(iperf_server_report, NULL);
	if (!s) {
		cmd_printf(o, "error: iperf server: cannot listen on TCP port %d "
			   "(in use, or out of lwIP memory)\n", IPERF_PORT);
		return -EADDRINUSE;
	}
	l = tern_lwip_find_listener(s, IPERF_PORT);
	if (!l) {
		/* Cannot happen with lwiperf 2.1.3; without the pcb the server
		 * could never be stopped, so fail loudly instead. */
		panic("iperf: lwiperf's listening pcb not found");
	}
	iperf_lw_accept = l->accept;
	tcp_accept((struct tcp_pcb *)l, iperf_accept);
	iperf_srv = s;
	iperf_srv_pcb = l;
	pr_info("iperf: server listening on TCP port %d (unauthenticated: "
		"`iperf server stop` closes it)", IPERF_PORT);
	cmd_printf(o, "iperf server listening on TCP port %d\n", IPERF_PORT);
	return 0;
}

/* Close the listener only: sessions in progress finish and report. */
static int iperf_server_stop(struct cmd_out *o)
{
	struct tcp_pcb *l = (struct tcp_pcb *)iperf_srv_pcb;

	if (!iperf_srv) {
		cmd_printf(o, "iperf server is not running\n");
		return 0;
	}
	tcp_arg(l, NULL);
	tcp_accept(l, NULL);
	if (tcp_close(l) != ERR_OK)
		panic("iperf: tcp_close of a listening pcb failed");
	iperf_srv = NULL;
	iperf_srv_pcb = NULL;
	pr_info("iperf: server stopped");
	cmd_printf(o, "iperf server stopped\n");
	return 0;
}

int net_cmd_iperf_server(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc;
	if (!strcmp(argv[0], "start"))
		return iperf_server_start(o);
	if (!strcmp(argv[0], "stop"))
		return iperf_server_stop(o);
	cmd_printf(o, "error: iperf server: expected start or stop, not '%s'\n", argv[0]);
	return -EINVAL;
}

int net_cmd_iperf_status(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)ctx, (void)argc, (void)argv;
	if (iperf_srv)
		cmd_printf(o, "server: listening on TCP port %d\n", IPERF_PORT);
	else
		cmd_printf(o, "server: off\n");
	cmd_printf(o, "server sessions: %lu done, %lu failed\n",
		   (unsigned long)iperf_srv_done, (unsigned long)iperf_srv_failed);
	cmd_printf(o, "client: %s\n", iperf_cl_running ? "running" : "idle");
	if (iperf_leaked)
		cmd_printf(o, "lwiperf records leaked on errors: %lu\n",
			   (unsigned long)iperf_leaked);
	return 0;
}

/* ---- client ---- */

static void iperf_client_report(void *arg, enum lwiperf_report_type type,
				const ip_addr_t *local_addr, u16_t local_port,
				const ip_addr_t *remote_addr, u16_t remote_port,
				u32_t bytes, u32_t ms, u32_t kbps)
{
	struct iperf_client *cl = arg;

	(void)local_addr, (void)local_port, (void)remote_addr, (void)remote_port;
	(void)kbps;
	cl->type = type;
	cl->bytes = bytes;
	cl->ms = ms;
	cl->done = true;
}

/*
 * End the run now (bug 3).  lwiperf closes a session whose poll callback
 * ran LWIPERF_TCP_MAX_IDLE_SEC times without a sent callback in between,
 * through its normal path: queued data is still sent, then FIN, report,
 * record freed.  Nothing runs lwIP in between, so calling the poll
 * callback until the report comes ends it.  The pcb is only touched while
 * the run is not done (done is set before lwiperf lets go of it).
 */
static void iperf_client_end(struct iperf_client *cl)
{
	tcp_poll_fn poll = cl->pcb->poll;

	cl->ended_by_us = true;
	for (int i = 0; i < 1000 && !cl->done && poll; i++)
		poll(cl->pcb->callback_arg, cl->pcb);
	if (!cl->done)
		panic("iperf: lwiperf did not close its client session");
}

static bool iperf_done(void *arg)
{
	return ((struct iperf_client *)arg)->done;
}

static bool iperf_connected(void *arg)
{
	struct iperf_client *cl = arg;

	return cl->done || cl->pcb->state == ESTABLISHED;
}

/* Wait, every service running, until the run is done (or connected) or
 * deadline_us. */
static void iperf_wait(struct iperf_client *cl, uint64_t deadline_us, bool until_connected)
{
	mainloop_wait(until_connected ? iperf_connected : iperf_done, cl, deadline_us);
}

static int iperf_client_result(struct iperf_client *cl, struct cmd_out *o,
			       const char *peer, uint64_t seconds)
{
	uint64_t c = iperf_centi_mbps(cl->bytes, cl->ms);

	if (cl->err == -ECONNREFUSED) {
		cmd_printf(o, "error: iperf client: %s refused the connection "
			   "(no iperf server there?)\n", peer);
		return cl->err;
	}
	if (cl->err) {
		cmd_printf(o, "error: iperf client: %s: connection aborted\n", peer);
		return cl->err;
	}
	if (cl->type == LWIPERF_TCP_DONE_CLIENT ||
	    (cl->type == LWIPERF_TCP_ABORTED_LOCAL && cl->ended_by_us)) {
		cmd_printf(o, "iperf: %s: %lu bytes in %lu.%03lu s, %lu.%02lu Mbit/s\n",
			   peer, (unsigned long)cl->bytes, (unsigned long)(cl->ms / 1000),
			   (unsigned long)(cl->ms % 1000), (unsigned long)(c / 100),
			   (unsigned long)(c % 100));
		return 0;
	}
	cmd_printf(o, "error: iperf client: %s: %s after %lu bytes in %lu ms "
		   "(of %lu s)\n", peer, iperf_report_name(cl->type),
		   (unsigned long)cl->bytes, (unsigned long)cl->ms, (unsigned long)seconds);
	return cl->type == LWIPERF_TCP_ABORTED_LOCAL ? -ETIMEDOUT : -ECONNRESET;
}

static int iperf_client_run(struct cmd_out *o, const ip_addr_t *dst,
			    const char *peer, uint64_t seconds)
{
	struct iperf_client *cl = &iperf_cl;
	uint64_t t0 = time_us();

	memset(cl, 0, sizeof(*cl));
	cl->session = lwiperf_start_tcp_client(dst, IPERF_PORT, LWIPERF_CLIENT,
					       iperf_client_report, cl);
	if (!cl->session) {
		/* tcp_connect failed: lwiperf reported and freed it already. */
		cmd_printf(o, "error: iperf client: cannot connect to %s (no route, "
			   "or out of lwIP memory)\n", peer);
		return -ENETUNREACH;
	}
	/* The pcb lwiperf_start_tcp_client() connected for the session. */
	cl->pcb = tern_lwip_find_active(cl->session);
	if (!cl->pcb)
		panic("iperf: lwiperf's client pcb not found");
	iperf_hook_err(cl->pcb);
	iperf_cl_running = true;
	iperf_wait(cl, t0 + IPERF_CONNECT_US, true);
	if (!cl->done && cl->pcb->state != ESTABLISHED) {
		iperf_client_end(cl);
		iperf_cl_running = false;
		cmd_printf(o, "error: iperf client: no connection to %s within %d s\n",
			   peer, IPERF_CONNECT_US / 1000000);
		return -ETIMEDOUT;
	}
	iperf_wait(cl, time_us() + seconds * 1000000, false);
	if (!cl->done)
		iperf_client_end(cl);
	/* lwiperf reports as it closes; the wait is only a guard. */
	iperf_wait(cl, time_us() + IPERF_REPORT_US, false);
	iperf_cl_running = false;
	return iperf_client_result(cl, o, peer, seconds);
}

int net_cmd_iperf_client(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	uint64_t seconds = IPERF_DEFAULT_SECONDS;
	char peer[IPERF_ADDR_MAX];
	ip_addr_t dst;
	uint32_t a;

	(void)ctx;
	if (cfg_parse_ipv4(argv[0], &a)) {
		cmd_printf(o, "error: iperf client: '%s' is not an IPv4 address (a.b.c.d)\n",
			   argv[0]);
		return -EINVAL;
	}
	if (argc > 1 && (cmd_parse_u64(argv[1], &seconds) || seconds < 1 ||
			 seconds > IPERF_MAX_SECONDS)) {
		cmd_printf(o, "error: iperf client: SECONDS must be 1..%d (lwIP 2.1.3's "
			   "client always asks for %d s)\n", IPERF_MAX_SECONDS,
			   IPERF_MAX_SECONDS);
		return -EINVAL;
	}
	if (net_stack_busy()) {
		cmd_printf(o, "error: iperf client: not available from inside the network stack\n");
		return -EBUSY;
	}
	if (iperf_cl_running) {
		cmd_printf(o, "error: iperf client: a run is already in progress\n");
		return -EBUSY;
	}
	if (!netif_default) {
		cmd_printf(o, "error: iperf client: no network interface\n");
		return -ENETDOWN;
	}
	ip_addr_set_ip4_u32_val(dst, lwip_htonl(a));
	snprintf(peer, sizeof(peer), "%s:%d", argv[0], IPERF_PORT);
	return iperf_client_run(o, &dst, peer, seconds);
}
