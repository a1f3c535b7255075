/*
 * The serial management console on the boot CPU.
 *
 * The UART interrupt only moves bytes into a ring; the console's service
 * in the boot CPU's main loop (kernel/platform/mainloop.h) edits lines and
 * runs commands.  The timer tick wakes the loop too, and the service polls
 * the UART, so a platform whose IRQ 4 routing is broken still has a console.
 *
 * What the console promises about host log lines, which any CPU may log at
 * any moment (a guest stopping, a migration, a disk):
 *  - While a serial command runs, lines the boot CPU logs come out at once,
 *    in order with the command's output, each starting a line; lines other
 *    CPUs log wait for the command to end.
 *  - At the prompt, waiting lines come out in one batch above the line being
 *    typed: CR ESC [ K erases the prompt and the partial input, the lines
 *    follow (each ends CR LF), then the prompt and the partial input are
 *    drawn again, once, with the cursor where it was (lib/lineedit.h).  So
 *    no log line ever lands inside a typed line, and the echo of a command,
 *    "tern> CMD" CR LF, is whole on one line once CR ESC [ K is read as
 *    "erase this line" (tests/lab/ternlab.py reads it so).
 *  - While `vm console` is attached, they wait in the ring until it detaches.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/mgmt/console.h"
#include "kernel/mgmt/registry.h"
#include "kernel/platform/cpu.h"
#include "kernel/platform/mainloop.h"
#include "kernel/kernel.h"
#include "kernel/devices/devices.h"
#include "kernel/virt/vm.h"
#include "kernel/mgmt/vm_cmds.h"
#include "kernel/lib/lineedit.h"

#define RX_RING		1024
#define PROMPT		"tern> "

static struct {
	uint8_t buf[RX_RING];
	volatile uint32_t head, tail;	/* head: producer (IRQ), tail: consumer */
} rx;
static struct ledit editor;
static char hostname[64] = "tern";
static struct cmd_ctx serial_ctx = { .source = "serial" };
static bool running;		/* a serial command is running */
static bool midline;		/* its output has not ended a line yet */

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

static void serial_echo(void *ctx, const char *s, size_t n)
{
	(void)ctx;
	serial_write(s, n);
}

/* A serial command's output. */
static void console_write(void *ctx, const char *s, size_t n)
{
	(void)ctx;
	if (!n)
		return;
	serial_write(s, n);
	midline = s[n - 1] != '\n';
}

static void run_line(const char *line)
{
	struct cmd_out out = { console_write, NULL };

	running = true;
	midline = false;
	mgmt_dispatch(&serial_ctx, line, &out, false);
	running = false;
}

/* While `vm console` is attached, keys go to the guest's UART; Ctrl-]
 * (0x1d, as in telnet) detaches. */
#define DETACH_KEY	0x1d
static struct vm *attached;

int vm_cmd_console(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
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

	int r = ledit_feed(&editor, c, serial_echo, NULL);

	if (r == LEDIT_LINE) {
		run_line(ledit_line(&editor));
		if (!attached)
			serial_write(PROMPT, strlen(PROMPT));
	} else if (r == LEDIT_INTR) {
		serial_write(PROMPT, strlen(PROMPT));
	}
}

/*
 * log.c calls this after storing a line to be echoed.  Other CPUs wake the
 * boot CPU; on the boot CPU a running command's own lines go out at once,
 * and lines logged at the prompt (by a service of the main loop) wait for
 * echo_async_logs() like everyone else's.
 */
static void kick_console(void)
{
	if (this_cpu()->id != 0) {
		lapic_send_ipi(cpu_table[0]->apic_id, VEC_IPI_KICK);
		return;
	}
	if (!running || attached)
		return;
	if (midline)
		serial_write("\n", 1);
	midline = false;
	log_echo_pending();
}

/* Waiting log lines: one batch above the line being edited. */
static void echo_async_logs(void)
{
	if (!log_echo_waiting() || attached)
		return;
	ledit_hide(&editor, serial_echo, NULL);
	log_echo_pending();
	ledit_show(&editor, PROMPT, serial_echo, NULL);
}

/* The serial console's service in the main loop: logs, then keys. */
static void console_service(void)
{
	echo_async_logs();
	irq_disable();
	rx_drain_uart();
	irq_enable();
	while (rx.tail != rx.head) {
		uint8_t c = rx.buf[rx.tail];

		rx.tail = (rx.tail + 1) % RX_RING;
		feed(c);
	}
}

/* Interrupts are off (mainloop.c). */
static bool console_pending(void)
{
	rx_drain_uart();
	return rx.head != rx.tail || (log_echo_waiting() && !attached);
}

static const struct mainloop_service console_svc = {
	.name = "serial",
	.service = console_service,
	.pending = console_pending,
	.flags = MAINLOOP_RUNS_COMMANDS,
};

void console_start(const char *name)
{
	strncpy(hostname, name, sizeof(hostname) - 1);
	ledit_init(&editor);
	irq_register(VEC_SERIAL, serial_irq, NULL);
	if (ioapic_route_isa(4, VEC_SERIAL, lapic_id()) < 0)
		pr_warn("console: no IOAPIC route for IRQ 4: polling the UART");
	serial_enable_rx_irq();
	mainloop_register(&console_svc);
	pr_info("console ready");
	log_defer_echo(kick_console);
	serial_write(PROMPT, strlen(PROMPT));
}
