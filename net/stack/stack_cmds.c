/* The network stack's console commands; the handlers live with their code. */
#include "kernel/kernel.h"
#include "kernel/lib/cmd.h"
#include "net/stack.h"

const struct cmd_def net_cmds[] = {
	{ "netcon", "", "network console: port, clients with peer, state, idle time, commands",
	  0, 0, netcon_cmd_list },
	{ "entropy", "[stuck|sample [N]]", "entropy source and SP 800-90B health; "
	  "stuck: test hook, force the noise source stuck (TLS refused until reboot); "
	  "sample: raw jitter statistics", 0, 2, net_cmd_entropy },
	{ "ping", "ADDR [COUNT]", "ICMP echo to ADDR, with round-trip times", 1, 2, net_cmd_ping },
	{ "iperf server", "start|stop", "iperf2 TCP server on port 5001 (off by default)",
	  1, 1, net_cmd_iperf_server },
	{ "iperf client", "ADDR [SECONDS]", "send to an iperf2 server at ADDR:5001 for "
	  "1..10 s (default 10), print Mbit/s", 1, 2, net_cmd_iperf_client },
	{ "iperf status", "", "iperf server state and session counts", 0, 0, net_cmd_iperf_status },
};
const size_t net_ncmds = ARRAY_SIZE(net_cmds);
