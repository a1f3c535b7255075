/*
 * lwIP internals the rest of Tern must not touch (lwip_internals.h).
 *
 * lwiperf (apps/lwiperf, used by net/stack/iperf.c) returns an opaque
 * session handle and keeps its PCBs to itself; iperf.c needs them to work
 * around lwiperf 2.1.3's bugs (see there).  lwIP has no public way to list
 * PCBs, so the walks over its PCB lists (lwip/priv/tcp_priv.h) live here,
 * tied to the one lwIP version they were checked against.
 */
#include "lwip/init.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "net/port/lwip_internals.h"

#if LWIP_VERSION_MAJOR != 2 || LWIP_VERSION_MINOR != 1 || LWIP_VERSION_REVISION != 3
#error "lwip_internals.c walks lwIP 2.1.3's private PCB lists: check them for this version"
#endif

struct tcp_pcb_listen *tern_lwip_find_listener(void *arg, u16_t port)
{
	for (struct tcp_pcb_listen *l = tcp_listen_pcbs.listen_pcbs; l; l = l->next)
		if (l->callback_arg == arg && l->local_port == port)
			return l;
	return NULL;
}

struct tcp_pcb *tern_lwip_find_active(void *arg)
{
	for (struct tcp_pcb *p = tcp_active_pcbs; p; p = p->next)
		if (p->callback_arg == arg)
			return p;
	return NULL;
}
