/*
 * 16550A UART driver for the host's management console.
 *
 * Output is polled (the console must work from the exception path with
 * interrupts off); input raises IRQ 4 through the IOAPIC so the boot CPU
 * can sleep in HLT until a key arrives.
 */
#include "kernel/platform/arch.h"
#include "kernel/kernel.h"
#include "kernel/platform/spinlock.h"

#define UART_RBR	0	/* receive buffer (DLAB=0) */
#define UART_THR	0	/* transmit holding (DLAB=0) */
#define UART_IER	1
#define UART_FCR	2
#define UART_LCR	3
#define UART_MCR	4
#define UART_LSR	5
#define UART_SCR	7
#define LSR_DR		0x01
#define LSR_THRE	0x20
#define UART_BASE_HZ	115200

static uint16_t uart_port;
static bool uart_ok;
static struct spinlock uart_tx_lock = SPINLOCK_INIT;

/* A UART answers scratch-register writes; absent ports float to 0xff. */
static bool uart_probe(uint16_t port)
{
	outb(port + UART_SCR, 0x5a);
	if (inb(port + UART_SCR) != 0x5a)
		return false;
	outb(port + UART_SCR, 0xa5);
	return inb(port + UART_SCR) == 0xa5;
}

void serial_init(uint16_t port)
{
	uint16_t div = UART_BASE_HZ / 115200;

	uart_port = port;
	uart_ok = uart_probe(port);
	if (!uart_ok)
		return;
	outb(port + UART_IER, 0);
	outb(port + UART_LCR, 0x80);		/* DLAB */
	outb(port + UART_THR, div & 0xff);
	outb(port + UART_IER, div >> 8);
	outb(port + UART_LCR, 0x03);		/* 8N1 */
	outb(port + UART_FCR, 0xc7);		/* FIFO on, clear, 14-byte trigger */
	outb(port + UART_MCR, 0x0b);		/* DTR, RTS, OUT2 (IRQ gate on PCs) */
}

bool serial_present(void)
{
	return uart_ok;
}

static void uart_putc(char c)
{
	unsigned spins = 0;

	/* Bounded: a wedged UART must not hang the kernel forever. */
	while (!(inb(uart_port + UART_LSR) & LSR_THRE) && ++spins < 1000000)
		cpu_relax();
	outb(uart_port + UART_THR, (uint8_t)c);
}

void serial_write(const char *s, size_t n)
{
	uint64_t f;
	size_t i;

	if (!uart_ok)
		return;
	f = spin_lock_irqsave(&uart_tx_lock);
	for (i = 0; i < n; i++) {
		if (s[i] == '\n')
			uart_putc('\r');
		uart_putc(s[i]);
	}
	spin_unlock_irqrestore(&uart_tx_lock, f);
}

int serial_getc(void)
{
	if (!uart_ok || !(inb(uart_port + UART_LSR) & LSR_DR))
		return -1;
	return inb(uart_port + UART_RBR);
}

void serial_enable_rx_irq(void)
{
	if (uart_ok)
		outb(uart_port + UART_IER, 0x01);	/* received data available */
}
