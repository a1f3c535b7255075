/*
 * The port layer's reach into lwIP's private state (lwip_internals.c): the
 * only place outside lwIP that includes lwip/priv/.  Each function exists
 * because lwIP's public API has no way to do the same.
 */
#ifndef TERN_NET_PORT_LWIP_INTERNALS_H
#define TERN_NET_PORT_LWIP_INTERNALS_H

#include "lwip/tcp.h"

/* The listening PCB on port whose callback argument is arg, or NULL. */
struct tcp_pcb_listen *tern_lwip_find_listener(void *arg, u16_t port);
/* An active (connecting or connected) PCB whose callback argument is arg,
 * or NULL. */
struct tcp_pcb *tern_lwip_find_active(void *arg);

#endif
