/*
 * A 16550A UART register model (National PC16550D data sheet), pure: the
 * glue (kernel/devices/devices.c) owns the bus registration, the host-side
 * output and input, and passes uart_irq_line() to the interrupt router.
 *
 * Transmission is instantaneous: a THR write hands the byte back to the
 * caller at once (or, in loopback, to the receiver), so THRE and TEMT are
 * always set when the guest looks.
 */
#ifndef TERN_DEVICES_MODEL_UART16550_H
#define TERN_DEVICES_MODEL_UART16550_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UART_FIFO_LEN	16
#define UART_STATE_V	1
#define UART_STATE_LEN	(16 + UART_FIFO_LEN)

/* Register offsets from the base port. */
enum {
	UART_RBR = 0, UART_THR = 0, UART_DLL = 0,
	UART_IER = 1, UART_DLM = 1,
	UART_IIR = 2, UART_FCR = 2,
	UART_LCR = 3, UART_MCR = 4, UART_LSR = 5, UART_MSR = 6, UART_SCR = 7,
};

#define UART_IER_ERBFI	0x01	/* received data available */
#define UART_IER_ETBEI	0x02	/* THR empty */
#define UART_IER_ELSI	0x04	/* receiver line status */
#define UART_IER_EDSSI	0x08	/* modem status */

#define UART_IIR_NONE	0x01
#define UART_IIR_MSI	0x00
#define UART_IIR_THRI	0x02
#define UART_IIR_RDI	0x04
#define UART_IIR_RLSI	0x06
#define UART_IIR_CTI	0x0c
#define UART_IIR_FIFO	0xc0

#define UART_FCR_FE	0x01
#define UART_FCR_CLR_RX	0x02
#define UART_FCR_CLR_TX	0x04

#define UART_LCR_DLAB	0x80

#define UART_MCR_DTR	0x01
#define UART_MCR_RTS	0x02
#define UART_MCR_OUT1	0x04
#define UART_MCR_OUT2	0x08
#define UART_MCR_LOOP	0x10

#define UART_LSR_DR	0x01
#define UART_LSR_OE	0x02
#define UART_LSR_BI	0x10
#define UART_LSR_THRE	0x20
#define UART_LSR_TEMT	0x40
#define UART_LSR_ERRS	0x1e	/* OE PE FE BI: the line-status interrupt */

#define UART_MSR_DCTS	0x01
#define UART_MSR_DDSR	0x02
#define UART_MSR_TERI	0x04
#define UART_MSR_DDCD	0x08
#define UART_MSR_CTS	0x10
#define UART_MSR_DSR	0x20
#define UART_MSR_RI	0x40
#define UART_MSR_DCD	0x80

struct uart16550 {
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool thr_ipending;	/* the THRE interrupt is latched */
	uint8_t rx[UART_FIFO_LEN];
	uint8_t rx_head, rx_count;	/* oldest byte, bytes held */
};

void uart_reset(struct uart16550 *u);
/* Returns the register value; reading has the data sheet's side effects
 * (RBR pops, IIR clears a reported THRE, LSR clears errors, MSR deltas). */
uint8_t uart_read(struct uart16550 *u, unsigned off);
/* Returns the byte to transmit to the host (0..255), or -1 for none
 * (another register, or a THR write in loopback). */
int uart_write(struct uart16550 *u, unsigned off, uint8_t val);
/* Bytes the receiver takes before it would overrun: the glue feeds its
 * host-side queue through uart_rx while this is nonzero. */
unsigned uart_rx_room(const struct uart16550 *u);
/* A byte arrives on the line; -ENOSPC (and LSR.OE, byte lost) when full. */
int uart_rx(struct uart16550 *u, uint8_t c);
/* The IIR interrupt identification (bits 3:0) of the highest-priority
 * pending source, UART_IIR_NONE for none. */
uint8_t uart_iir_id(const struct uart16550 *u);
/* The ISA IRQ line as a PC wires it: a pending source gated by MCR.OUT2. */
bool uart_irq_line(const struct uart16550 *u);

/* Fixed layout, UART_STATE_LEN bytes, byte 0 = UART_STATE_V. */
void uart_save(const struct uart16550 *u, uint8_t *b);
int uart_load(struct uart16550 *u, const uint8_t *b, size_t len);

#endif
