/*
 * The network stack side of net/: lwIP glue (lwip_port.c), entropy for
 * lwIP and mbedTLS (entropy.c), the `ping` console command (ping.c) and
 * the `iperf` commands (iperf.c).
 * Everything here runs on the boot CPU's main loop only (see netdev.h).
 */
#ifndef TERN_NET_STACK_H
#define TERN_NET_STACK_H

#include "kernel/lib/cmd.h"

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
 */
void net_stack_set_config(const struct tern_config *cfg);
/*
 * After net_init(): one lwIP netif per registered netdev, and the stack's
 * service in the main loop (devices, then lwIP's timers and link changes).
 */
void net_stack_start(void);
/* True while the caller is inside lwIP (a receive or timer callback):
 * blocking commands must not wait (mainloop_wait) from there. */
bool net_stack_busy(void);

/* `ping ADDR [count]`: ICMP echo through lwIP's raw API, RTT per reply. */
int net_cmd_ping(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);

/*
 * iperf2-compatible TCP throughput peer on port 5001 (lwIP's lwiperf).
 * `iperf server start|stop`: the listener, off by default (an open port).
 * `iperf client ADDR [SECONDS]`: send to ADDR:5001 for 1..10 s (default
 * 10) and print the result; blocks, waiting in mainloop_wait() like ping.
 * `iperf status`: server state and session counts.
 */
int net_cmd_iperf_server(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int net_cmd_iperf_client(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int net_cmd_iperf_status(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);

/*
 * Entropy (entropy.c).  tern_entropy_poll has mbedTLS's entropy-source
 * signature (mbedtls_entropy_f_source_ptr): fills out[0..len) and sets
 * *olen = len; returns 0, or -EIO once the SP 800-90B health tests have
 * failed (final until reboot).  RDSEED, else RDRAND, else TSC jitter
 * measured against the ACPI PM timer; every raw sample is health-tested.
 */
int tern_entropy_poll(void *data, unsigned char *out, size_t len, size_t *olen);
/* What tern_entropy_poll uses: "RDSEED", "RDRAND" or "TSC jitter". */
const char *tern_entropy_source(void);
/* Start-up test passed and no health test failed since: TLS may run. */
bool tern_entropy_ok(void);
/* One or two lines for `entropy` and `netcon`: source and health. */
void tern_entropy_print(struct cmd_out *o);
/* Timer samples without health tests: only for rng.c's degraded mode. */
void tern_entropy_unchecked(unsigned char *out, size_t len);
/* `entropy [stuck|sample [N]]`: state; test hook; raw jitter statistics. */
int net_cmd_entropy(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
/* mbedTLS's MBEDTLS_ENTROPY_HARDWARE_ALT hook (mbedtls/entropy_poll.h). */
int mbedtls_hardware_poll(void *data, unsigned char *output, size_t len,
			  size_t *olen);
/*
 * Random numbers (rng.c): a CTR_DRBG seeded from tern_entropy_poll, for
 * lwIP (ports, DHCP xid, TCP ISNs) and the kernel (iSCSI ISID, ...).
 * Never fails: after a health-test failure it reseeds from unchecked
 * timer samples and tern_random_degraded() turns true (logged).
 */
void tern_random_bytes(void *out, size_t len);
uint64_t tern_random_u64(void);
bool tern_random_degraded(void);

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
 * A key bound to one TLS session (RFC 5705 style): the TLS 1.2 PRF with
 * SHA-256 (RFC 5246 section 5) over the session's master secret, label
 * and seed.  0, -ENOTCONN (no finished handshake on pcb) or -EINVAL.
 */
int net_tls_export(struct altcp_pcb *pcb, const char *label, const uint8_t *seed,
		   size_t seed_len, uint8_t *out, size_t len);

/*
 * The network console (netcon.c): the serial console's commands over TLS.
 * netcon_start listens on cfg->console_port when a secret is set (and says
 * so when not); its service in the main loop runs the lines clients sent,
 * outside lwIP.
 */
void netcon_start(const struct tern_config *cfg);
int netcon_cmd_list(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);

/* The stack's console commands (stack_cmds.c): netcon, ping, iperf. */
extern const struct cmd_def net_cmds[];
extern const size_t net_ncmds;

#endif
