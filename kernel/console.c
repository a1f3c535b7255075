/*
 * The serial management console on the boot CPU.
 *
 * The UART interrupt only moves bytes into a ring; the boot CPU's main
 * loop edits lines and runs commands, then sleeps in HLT until the next
 * interrupt (a key, the timer tick or an IPI).  The tick also polls the
 * UART, so a platform whose IRQ 4 routing is broken still has a console.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "kernel.h"
#include "devices.h"
#include "vm.h"
#include "vm_cmds.h"
#include "lib/lineedit.h"
#include "../net/netdev.h"
#include "../net/stack.h"
#include "migrate/migrate.h"
#include "storage/blk.h"

#define RX_RING		1024
#define PROMPT		"tern> "

static struct {
	uint8_t buf[RX_RING];
	volatile uint32_t head, tail;	/* head: producer (IRQ), tail: consumer */
} rx;
static struct ledit editor;
static char hostname[64] = "tern";
static struct cmd_ctx serial_ctx = { .source = "serial" };

const char *console_hostname(void)
{
	return hostname;
}

/* Runs with interrupts off (IRQ handler or the main loop's cli window). */
static void rx_drain_uart(void)
{
	int c;

	while ((c = serial_getc()) >= 0) {
		uint32_t next = (rx.head + 1) % RX_RING;

		if (next == rx.tail)
			continue;	/* full: drop, like a real UART overrun */
		rx.buf[rx.head] = (uint8_t)c;
		rx.head = next;
	}
}

static void serial_irq(struct trap_frame *f, void *ctx)
{
	(void)f, (void)ctx;
	rx_drain_uart();
}

static void console_write(void *ctx, const char *s, size_t n)
{
	(void)ctx;
	serial_write(s, n);
}

static void run_line(const char *line)
{
	struct cmd_out out = { console_write, NULL };

	cmd_dispatch(console_cmds, console_ncmds, &serial_ctx, line, &out, false);
}

/* While `vm console` is attached, keys go to the guest's UART; Ctrl-]
 * (0x1d, as in telnet) detaches. */
#define DETACH_KEY	0x1d
static struct vm *attached;

int vmcmd_console(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct vm *vm = vm_find(argv[0]);

	(void)argc;
	if (!vm) {
		cmd_printf(o, "error: vm console: no VM named '%s'\n", argv[0]);
		return -ENOENT;
	}
	if (strcmp(ctx->source, "serial")) {
		cmd_printf(o, "error: vm console: only on the serial console\n");
		return -EINVAL;
	}
	cmd_printf(o, "attached to %s: Ctrl-] detaches\n", vm->name);
	attached = vm;
	vuart_attach(vm);
	return 0;
}

static bool feed_attached(uint8_t c)
{
	if (!attached)
		return false;
	/* A destroyed VM detaches itself (devices_destroy). */
	if (vuart_attached() != attached || c == DETACH_KEY) {
		const char *msg = "\r\ndetached\r\n" PROMPT;

		attached = NULL;
		vuart_attach(NULL);
		serial_write(msg, strlen(msg));
		return true;
	}
	vuart_push_rx(attached, c);
	return true;
}

static void feed(uint8_t c)
{
	if (feed_attached(c))
		return;

	int r = ledit_feed(&editor, c, console_write, NULL);

	if (r == LEDIT_LINE) {
		run_line(ledit_line(&editor));
		if (!attached)
			serial_write(PROMPT, strlen(PROMPT));
	} else if (r == LEDIT_INTR) {
		serial_write(PROMPT, strlen(PROMPT));
	}
}

void console_init(const char *name)
{
	strncpy(hostname, name, sizeof(hostname) - 1);
	ledit_init(&editor);
	irq_register(VEC_SERIAL, serial_irq, NULL);
	if (ioapic_route_isa(4, VEC_SERIAL, lapic_id()) < 0)
		pr_warn("console: no IOAPIC route for IRQ 4: polling the UART");
	serial_enable_rx_irq();
}

static void kick_console(void)
{
	lapic_send_ipi(cpu_table[0]->apic_id, VEC_IPI_KICK);
}

/* Lines other CPUs logged: print them above the line being edited. */
static void echo_async_logs(void)
{
	char move[16];
	int n;

	if (!log_echo_waiting() || attached)
		return;
	serial_write("\r\x1b[K", 4);
	log_echo_pending();
	serial_write(PROMPT, strlen(PROMPT));
	serial_write(editor.buf, editor.len);
	if (editor.cur < editor.len) {
		n = snprintf(move, sizeof(move), "\x1b[%uD", editor.len - editor.cur);
		serial_write(move, (size_t)n);
	}
}

void console_run(void)
{
	pr_info("console ready");
	log_defer_echo(kick_console);
	serial_write(PROMPT, strlen(PROMPT));
	for (;;) {
		echo_async_logs();
		net_poll();
		netcon_service();
		migrate_service();
		storage_service();
		irq_disable();
		rx_drain_uart();
		/* A NIC IRQ between net_poll and here sets pending: no sleep. */
		if (rx.head == rx.tail && !log_echo_waiting() && !net_pending() &&
		    !netcon_pending() && !migrate_pending() && !net_stack_pending()) {
			cpu_idle_once();	/* sti; hlt: no lost wake-up */
			continue;
		}
		irq_enable();
		while (rx.tail != rx.head) {
			uint8_t c = rx.buf[rx.tail];

			rx.tail = (rx.tail + 1) % RX_RING;
			feed(c);
		}
		smp_handle_calls();
	}
}
