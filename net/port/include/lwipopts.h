/*
 * lwIP configuration for the Tern kernel.  Only options that differ from
 * lwIP's defaults (lwip/opt.h) are set here, each with the reason.
 * lwIP 2.1.3, raw (callback) API, IPv4.
 */
#ifndef TERN_LWIPOPTS_H
#define TERN_LWIPOPTS_H

/* ---- Threading model ---------------------------------------------------- */

/*
 * No OS: the kernel's main loop on the boot CPU polls the NICs, feeds
 * received frames to netif->input and calls sys_check_timeouts().  The
 * kernel provides sys_now() (milliseconds).
 */
#define NO_SYS 1
/*
 * No critical sections: every lwIP call happens from that one loop on the
 * boot CPU, never from an interrupt handler or another CPU (drivers queue
 * frames; other CPUs post requests to the loop).  SYS_ARCH_PROTECT is
 * therefore a no-op and no sys_arch_protect() is needed.
 */
#define SYS_LIGHTWEIGHT_PROT 0
/* Needed with NO_SYS: timers are driven by sys_check_timeouts(). */
#define LWIP_TIMERS 1
/* The sequential APIs need threads (NO_SYS=1 forbids them). */
#define LWIP_SOCKET 0
#define LWIP_NETCONN 0

/* ---- Memory ------------------------------------------------------------- */

/*
 * 8, not 1: 64-bit pointers and u64_t fields in pools; matches malloc.
 */
#define MEM_ALIGNMENT 8
/*
 * Heap for PBUF_RAM (outgoing TCP data is copied here until acked): enough
 * for a full TCP_SND_BUF on several busy connections (migration, iSCSI,
 * lwiperf) at once.  The hypervisor has memory to spare; a stall does not.
 */
#define MEM_SIZE (4 * 1024 * 1024)
/*
 * Receive buffers (one MTU-sized pbuf per frame).  512 covers several full
 * 64 KiB receive windows in flight plus NIC ring refills.
 */
#define PBUF_POOL_SIZE 1024
/* PBUF_REF/ROM pbufs (zero-copy sends of guest or cache memory). */
#define MEMP_NUM_PBUF 64

/* ---- Protocols ---------------------------------------------------------- */

#define LWIP_IPV4 1
/* IPv4 only for now. */
#define LWIP_IPV6 0
/* Raw API: the console's `ping` sends ICMP echo through it. */
#define LWIP_RAW			1
#define LWIP_ICMP 1
#define LWIP_UDP 1
#define LWIP_TCP 1
/* The management address usually comes from the lab's DHCP server. */
#define LWIP_DHCP 1

/* ---- TCP: initial sequence numbers -------------------------------------- */

/*
 * lwIP's own ISN is a counter advanced by tcp_ticks (tcp.c,
 * tcp_next_iss): predictable, so an off-path host could inject into or
 * spoof connections (RFC 6528 section 2).  The hook computes RFC 6528's
 * M + F(4-tuple, key) with a boot-time key from the CTR_DRBG
 * (net/stack/rng.c).
 */
#define LWIP_HOOK_TCP_ISN(lip, lport, rip, rport) \
	tern_lwip_tcp_isn(ip4_addr_get_u32(ip_2_ip4(lip)), (lport), \
			  ip4_addr_get_u32(ip_2_ip4(rip)), (rport))

/* ---- TCP: sized for throughput (migration, iSCSI) ---------------------- */

#define TCP_MSS 1460
/*
 * Windows over 64 KiB need window scaling (RFC 7323 section 2): without it
 * the window field tops out at 65535.  Scale 3 allows up to 512 KiB.
 */
#define LWIP_WND_SCALE 1
#define TCP_RCV_SCALE 3
/*
 * 256 KiB windows: a migration or iSCSI stream has the sender encrypting
 * while the receiver decrypts and checks; with 64 KiB in flight the two
 * took turns instead (measured: 8 MB/s migrations at 64 KiB).
 */
#define TCP_WND (256 * 1024)
/* Send buffer: a full window in flight. */
#define TCP_SND_BUF (256 * 1024)
/* lwIP keeps the low-water mark in a u16_t (init.c checks it). */
#define TCP_SNDLOWAT (32 * 1024)
/* Segments queued per connection: a full send buffer of MSS segments,
 * with room for the small ones a TLS record boundary leaves. */
#define TCP_SND_QUEUELEN (2 * TCP_SND_BUF / TCP_MSS)
#define MEMP_NUM_TCP_SEG 1024
/*
 * Console clients (8), migration (both ends), iSCSI sessions, lwiperf,
 * and connections lingering in TIME_WAIT after the console closed them.
 */
#define MEMP_NUM_TCP_PCB 32
#define MEMP_NUM_TCP_PCB_LISTEN 8
/*
 * altcp: a TLS connection takes two (the TLS layer and the TCP layer
 * under it), listeners included.
 */
#define MEMP_NUM_ALTCP_PCB (2 * (MEMP_NUM_TCP_PCB + MEMP_NUM_TCP_PCB_LISTEN))
#define MEMP_NUM_UDP_PCB 8
/* lwIP's own timers plus a few for the kernel's services. */
#define MEMP_NUM_SYS_TIMEOUT (LWIP_NUM_SYS_TIMEOUT_INTERNAL + 8)

/* ---- altcp (TLS for the management channel) ----------------------------- */

/*
 * The altcp layer lets the same service code run on plain TCP or TLS.
 * LWIP_ALTCP_TLS only declares altcp_tls_*(); the mbedTLS glue
 * (LWIP_ALTCP_TLS_MBEDTLS, apps/altcp_tls) is added with mbedTLS later.
 */
#define LWIP_ALTCP 1
#define LWIP_ALTCP_TLS 1

/* ---- Network interfaces ------------------------------------------------- */

/*
 * 127.0.0.1 (a loop netif) and traffic to our own addresses: a host can
 * migrate a guest to itself (`migrate NAME 127.0.0.1 as=NEW`), which tests
 * the whole path on one machine, Bochs included.  With NO_SYS the looped
 * packets wait in a queue that net_stack_poll() drains (netif_poll_all).
 */
#define LWIP_HAVE_LOOPIF 1
#define LWIP_NETIF_LOOPBACK 1
#define LWIP_LOOPBACK_MAX_PBUFS 512

/* DHCP sends our host name (option 12) so the lab can tell hosts apart. */
#define LWIP_NETIF_HOSTNAME 1
/* The kernel logs address changes (DHCP bound/lost) and link up/down. */
#define LWIP_NETIF_STATUS_CALLBACK 1
#define LWIP_NETIF_LINK_CALLBACK 1

/* ---- Checksums ---------------------------------------------------------- */

/*
 * Software checksums by default (CHECKSUM_GEN_* / CHECKSUM_CHECK_* keep
 * their default 1), switchable per netif with NETIF_SET_CHECKSUM_CTRL()
 * so a driver whose NIC offloads checksums (virtio-net) can turn them off.
 */
#define LWIP_CHECKSUM_CTRL_PER_NETIF 1

/* ---- Statistics --------------------------------------------------------- */

/* Counters for diagnostics and tests (drops, checksum errors, pool use). */
#define LWIP_STATS 1
/* stats_display() prints through LWIP_PLATFORM_DIAG (tern_lwip_diag). */
#define LWIP_STATS_DISPLAY 1

#endif /* TERN_LWIPOPTS_H */
