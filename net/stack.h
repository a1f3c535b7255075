/*
 * The network stack side of net/: lwIP glue (lwip_port.c), entropy for
 * lwIP and mbedTLS (entropy.c), the `ping` console command (ping.c) and
 * the `iperf` commands (iperf.c).
 * Everything here runs on the boot CPU's main loop only (see netdev.h).
 */
#ifndef TERN_NET_STACK_H
#define TERN_NET_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tern_config;
struct cmd_ctx;
struct cmd_out;

/*
 * The host configuration for the stack (copied): the first netdev gets the
 * management address (static address and gateway, or DHCP), and every
 * netif gets the hostname (DHCP option 12).  Call before net_init(); without
 * it the stack uses cfg_defaults() (DHCP, hostname "tern").
 *
 * net_stack_init() and net_stack_poll() (declared in netdev.h) are defined
 * in stack/lwip_port.c: init adds one lwIP netif per registered netdev;
 * poll runs lwIP's timers and passes link changes on.
 */
void net_stack_set_config(const struct tern_config *cfg);
/* True while the caller is inside lwIP (a receive or timer callback):
 * blocking commands must not pump net_poll() from there. */
bool net_stack_busy(void);
/* True while looped-back packets wait for net_stack_poll(). */
bool net_stack_pending(void);
/*
 * For console commands that block (iperf, disk): run the network, and
 * step() when not NULL, until done(arg) or deadline_us, sleeping between
 * interrupts as the main loop does.  True when done.  Not from inside
 * lwIP (net_stack_busy()).
 */
bool net_pump(bool (*done)(void *arg), void *arg, void (*step)(void), uint64_t deadline_us);

/* `ping ADDR [count]`: ICMP echo through lwIP's raw API, RTT per reply. */
int net_cmd_ping(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);

/*
 * iperf2-compatible TCP throughput peer on port 5001 (lwIP's lwiperf).
 * `iperf server start|stop`: the listener, off by default (an open port).
 * `iperf client ADDR [SECONDS]`: send to ADDR:5001 for 1..10 s (default
 * 10) and print the result; blocks, pumping net_poll() like ping.
 * `iperf status`: server state and session counts.
 */
int net_cmd_iperf_server(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int net_cmd_iperf_client(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int net_cmd_iperf_status(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);

/*
 * Entropy (entropy.c).  tern_entropy_poll has mbedTLS's entropy-source
 * signature (mbedtls_entropy_f_source_ptr): fills out[0..len) and sets
 * *olen = len; returns 0.  RDSEED, else RDRAND, else TSC jitter measured
 * against the ACPI PM timer (weak: logged once as a warning).
 */
int tern_entropy_poll(void *data, unsigned char *out, size_t len, size_t *olen);
/* What tern_entropy_poll uses: "RDSEED", "RDRAND" or "TSC jitter". */
const char *tern_entropy_source(void);
/* mbedTLS's MBEDTLS_ENTROPY_HARDWARE_ALT hook (mbedtls/entropy_poll.h). */
int mbedtls_hardware_poll(void *data, unsigned char *output, size_t len,
			  size_t *olen);
/* 64 random bits: RDRAND when present, else xorshift64* seeded from
 * tern_entropy_poll.  Fast; for lwIP (ports, DHCP xid), not for keys. */
uint64_t tern_random_u64(void);

/*
 * TLS with the pre-shared key (tls.c).  net_tls_init builds the server and
 * client configurations from the config's secret: 0, -ENOENT without a
 * secret (then nothing may listen), -ENOMEM.  net_tls_new gives a new
 * altcp TLS PCB (NULL before init or without memory).
 */
struct altcp_pcb;
enum net_tls_phase {
	NET_TLS_GONE,		/* no TLS state (closed) */
	NET_TLS_HELLO,		/* no usable ClientHello seen yet */
	NET_TLS_KEYS,		/* hello done, key exchange under way */
	NET_TLS_OPEN,		/* handshake complete: the peer has the key */
};
int net_tls_init(const struct tern_config *cfg);
bool net_tls_ready(void);
struct altcp_pcb *net_tls_new(bool server);
enum net_tls_phase net_tls_phase(struct altcp_pcb *pcb);
const char *net_tls_suite(struct altcp_pcb *pcb);

/*
 * The network console (netcon.c): the serial console's commands over TLS.
 * netcon_start listens on cfg->console_port when a secret is set (and says
 * so when not).  netcon_service runs the lines clients sent, one per
 * client per call, from the boot CPU's main loop outside lwIP;
 * netcon_pending tells the loop not to sleep while lines wait.
 */
void netcon_start(const struct tern_config *cfg);
void netcon_service(void);
bool netcon_pending(void);
int netcon_cmd_list(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);

#endif
