/*
 * The serial management console on the boot CPU.
 *
 * The UART interrupt only moves bytes into a ring; the boot CPU's main
 * loop edits lines and runs commands, then sleeps in HLT until the next
 * interrupt (a key, the timer tick or an IPI).  The tick also polls the
 * UART, so a platform whose IRQ 4 routing is broken still has a console.
 */
#include <string.h>
#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "kernel.h"
#include "lib/lineedit.h"

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

static void feed(uint8_t c)
{
	int r = ledit_feed(&editor, c, console_write, NULL);

	if (r == LEDIT_LINE) {
		run_line(ledit_line(&editor));
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

void console_run(void)
{
	pr_info("console ready");
	serial_write(PROMPT, strlen(PROMPT));
	for (;;) {
		irq_disable();
		rx_drain_uart();
		if (rx.head == rx.tail) {
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
