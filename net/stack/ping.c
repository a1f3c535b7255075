/*
 * `ping ADDR [count]`: ICMP echo (RFC 792) through lwIP's raw API.
 *
 * The handler blocks its console while it runs and waits in
 * mainloop_wait(), which keeps every service (the stack among them)
 * running.  That is only safe outside lwIP: called from inside an lwIP
 * callback it refuses.
 */
#include <errno.h>
#include <string.h>

#include "lwip/icmp.h"
#include "lwip/inet_chksum.h"
#include "lwip/ip.h"
#include "lwip/ip4.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/prot/ip4.h"
#include "lwip/raw.h"

#include "kernel/kernel.h"
#include "kernel/lib/cmd.h"
#include "kernel/lib/config.h"
#include "kernel/platform/mainloop.h"
#include "net/netdev.h"
#include "net/stack.h"

#define PING_DEFAULT_COUNT	4
#define PING_MAX_COUNT		100
#define PING_DATA_LEN		56	/* as ping(8): 64 bytes with the header */
#define PING_TIMEOUT_US		1000000
#define PING_INTERVAL_US	200000	/* between a reply and the next request */

struct ping_state {
	uint16_t id;
	uint16_t seq;		/* of the request in flight */
	bool waiting;
	bool got;
	uint64_t sent_us;
	uint64_t rtt_us;
	uint8_t ttl;
	uint16_t bytes;		/* ICMP length of the reply */
};

/* Raw PCB receive callback: the payload starts at the IP header. */
static u8_t ping_recv(void *arg, struct raw_pcb *pcb, struct pbuf *p,
		      const ip_addr_t *addr)
{
	struct ping_state *ps = arg;
	struct ip_hdr iph;
	struct icmp_echo_hdr echo;
	uint64_t now = time_us();
	u16_t hlen;

	(void)pcb, (void)addr;
	if (pbuf_copy_partial(p, &iph, sizeof(iph), 0) != sizeof(iph))
		return 0;
	hlen = (u16_t)(IPH_HL(&iph) * 4);
	if (hlen < IP_HLEN || p->tot_len < hlen + sizeof(echo) ||
	    pbuf_copy_partial(p, &echo, sizeof(echo), hlen) != sizeof(echo))
		return 0;
	if (echo.type != ICMP_ER || echo.id != lwip_htons(ps->id))
		return 0;
	/* Ours (right id): eat it, counted only if it answers the request in
	 * flight; a late reply to an earlier one is dropped. */
	if (ps->waiting && echo.seqno == lwip_htons(ps->seq)) {
		/* The ICMP checksum covers the ICMP message only. */
		if (pbuf_remove_header(p, hlen) == 0 && inet_chksum_pbuf(p) == 0) {
			ps->waiting = false;
			ps->got = true;
			ps->rtt_us = now - ps->sent_us;
			ps->ttl = IPH_TTL(&iph);
			ps->bytes = p->tot_len;
		}
	}
	pbuf_free(p);
	return 1;
}

static int ping_send(struct raw_pcb *pcb, struct ping_state *ps, const ip_addr_t *dst)
{
	size_t len = sizeof(struct icmp_echo_hdr) + PING_DATA_LEN;
	struct pbuf *p = pbuf_alloc(PBUF_IP, (u16_t)len, PBUF_RAM);
	struct icmp_echo_hdr *echo;
	err_t e;

	if (!p)
		return -ENOMEM;
	echo = p->payload;
	ICMPH_TYPE_SET(echo, ICMP_ECHO);
	ICMPH_CODE_SET(echo, 0);
	echo->id = lwip_htons(ps->id);
	echo->seqno = lwip_htons(ps->seq);
	for (size_t i = 0; i < PING_DATA_LEN; i++)
		((uint8_t *)(echo + 1))[i] = (uint8_t)(0x10 + i);
	echo->chksum = 0;
	echo->chksum = inet_chksum(echo, (u16_t)len);
	ps->sent_us = time_us();
	ps->waiting = true;
	ps->got = false;
	e = raw_sendto(pcb, p, dst);
	pbuf_free(p);
	if (e == ERR_RTE)
		return -ENETUNREACH;
	if (e != ERR_OK)
		return -EIO;
	return 0;
}

static bool ping_answered(void *arg)
{
	return !((struct ping_state *)arg)->waiting;
}

/* Wait until deadline_us or, with stop_on_reply, until the reply arrives;
 * every service keeps running meanwhile (kernel/platform/mainloop.h). */
static void ping_wait(struct ping_state *ps, uint64_t deadline_us, bool stop_on_reply)
{
	mainloop_wait(stop_on_reply ? ping_answered : NULL, ps, deadline_us);
}

static void ping_us(struct cmd_out *o, uint64_t us)
{
	cmd_printf(o, "%lu.%03lu", (unsigned long)(us / 1000), (unsigned long)(us % 1000));
}

int net_cmd_ping(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	static uint16_t next_id = 0x7e00;
	struct ping_state ps = { 0 };
	struct raw_pcb *pcb;
	ip_addr_t dst;
	uint32_t a;
	uint64_t count = PING_DEFAULT_COUNT, rx = 0, tx = 0;
	uint64_t min = UINT64_MAX, max = 0, sum = 0;
	int r = 0;

	(void)ctx;
	if (cfg_parse_ipv4(argv[0], &a)) {
		cmd_printf(o, "error: ping: '%s' is not an IPv4 address (a.b.c.d)\n", argv[0]);
		return -EINVAL;
	}
	if (argc > 1 && (cmd_parse_u64(argv[1], &count) || count < 1 ||
			 count > PING_MAX_COUNT)) {
		cmd_printf(o, "error: ping: count must be 1..%d\n", PING_MAX_COUNT);
		return -EINVAL;
	}
	if (net_stack_busy()) {
		cmd_printf(o, "error: ping: not available from inside the network stack\n");
		return -EBUSY;
	}
	if (!netif_default) {
		cmd_printf(o, "error: ping: no network interface\n");
		return -ENETDOWN;
	}
	ip_addr_set_ip4_u32_val(dst, lwip_htonl(a));
	pcb = raw_new(IP_PROTO_ICMP);
	if (!pcb) {
		cmd_printf(o, "error: ping: out of raw PCBs\n");
		return -ENOMEM;
	}
	ps.id = next_id++;
	raw_recv(pcb, ping_recv, &ps);
	cmd_printf(o, "PING %s: %d data bytes\n", argv[0], PING_DATA_LEN);
	for (uint64_t i = 0; i < count; i++) {
		ps.seq = (uint16_t)(i + 1);
		r = ping_send(pcb, &ps, &dst);
		if (r < 0)
			break;
		tx++;
		ping_wait(&ps, ps.sent_us + PING_TIMEOUT_US, true);
		if (ps.got) {
			rx++;
			sum += ps.rtt_us;
			min = ps.rtt_us < min ? ps.rtt_us : min;
			max = ps.rtt_us > max ? ps.rtt_us : max;
			cmd_printf(o, "%u bytes from %s: icmp_seq=%u ttl=%u time=",
				   ps.bytes, argv[0], ps.seq, ps.ttl);
			ping_us(o, ps.rtt_us);
			cmd_printf(o, " ms\n");
			if (i + 1 < count)
				ping_wait(&ps, time_us() + PING_INTERVAL_US, false);
		} else {
			ps.waiting = false;
			cmd_printf(o, "no reply for icmp_seq=%u within 1 s\n", ps.seq);
		}
	}
	raw_remove(pcb);
	if (r < 0) {
		cmd_printf(o, "error: ping: %s: %s\n", argv[0],
			   r == -ENETUNREACH ? "no route" : cmd_strerror(r));
		return r;
	}
	cmd_printf(o, "--- %s ping statistics ---\n", argv[0]);
	cmd_printf(o, "%lu packets transmitted, %lu received, %lu%% packet loss\n",
		   (unsigned long)tx, (unsigned long)rx,
		   (unsigned long)(tx ? (tx - rx) * 100 / tx : 0));
	if (!rx) {
		cmd_printf(o, "error: ping: no reply from %s\n", argv[0]);
		return -ETIMEDOUT;
	}
	cmd_printf(o, "rtt min/avg/max = ");
	ping_us(o, min);
	cmd_printf(o, "/");
	ping_us(o, sum / rx);
	cmd_printf(o, "/");
	ping_us(o, max);
	cmd_printf(o, " ms\n");
	return 0;
}
