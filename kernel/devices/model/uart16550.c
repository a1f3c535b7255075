/*
 * 16550A UART register model.  References: National Semiconductor PC16550D
 * data sheet (June 1995), "8.0 Registers" (IIR priority table 4, FCR
 * trigger levels, MCR loopback) -- and Linux's 8250 driver for what a
 * guest relies on (8250_port.c: autoconfig's loopback test expects MSR
 * 0x90 for MCR LOOP|RTS|OUT2; serial8250_do_startup sets OUT2 because on
 * a PC that pin enables the IRQ driver).
 */
#include <errno.h>
#include <string.h>
#include "kernel/devices/model/uart16550.h"

/* MSR status bits a PC serial port without a modem reports: the null-modem
 * wiring loops DTR/RTS back as DSR/CTS/DCD, so software sees them ready. */
#define UART_MSR_IDLE	(UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD)

static const uint8_t uart_trigger[4] = { 1, 4, 8, 14 };	/* FCR bits 7:6 */

static bool uart_fifo_on(const struct uart16550 *u)
{
	return u->fcr & UART_FCR_FE;
}

static unsigned uart_rx_cap(const struct uart16550 *u)
{
	return uart_fifo_on(u) ? UART_FIFO_LEN : 1;
}

static unsigned uart_rx_trigger(const struct uart16550 *u)
{
	return uart_fifo_on(u) ? uart_trigger[u->fcr >> 6] : 1;
}

/* MSR bits 7:4 for the current MCR: in loopback RTS->CTS, DTR->DSR,
 * OUT1->RI, OUT2->DCD (data sheet, MCR bit 4). */
static uint8_t uart_msr_lines(uint8_t mcr)
{
	if (!(mcr & UART_MCR_LOOP))
		return UART_MSR_IDLE;
	return (uint8_t)(((mcr & UART_MCR_RTS) ? UART_MSR_CTS : 0) |
			 ((mcr & UART_MCR_DTR) ? UART_MSR_DSR : 0) |
			 ((mcr & UART_MCR_OUT1) ? UART_MSR_RI : 0) |
			 ((mcr & UART_MCR_OUT2) ? UART_MSR_DCD : 0));
}

void uart_reset(struct uart16550 *u)
{
	memset(u, 0, sizeof(*u));
	u->msr = UART_MSR_IDLE;
	u->lsr = UART_LSR_THRE | UART_LSR_TEMT;
}

uint8_t uart_iir_id(const struct uart16550 *u)
{
	bool fifo = uart_fifo_on(u);

	/* Table 4: line status > received data > character timeout >
	 * THR empty > modem status. */
	if ((u->ier & UART_IER_ELSI) && (u->lsr & UART_LSR_ERRS))
		return UART_IIR_RLSI;
	if ((u->ier & UART_IER_ERBFI) && u->rx_count >= uart_rx_trigger(u))
		return UART_IIR_RDI;
	/* The timeout really fires after four character times without
	 * FIFO activity; the guest sees it as soon as it could look. */
	if ((u->ier & UART_IER_ERBFI) && fifo && u->rx_count)
		return UART_IIR_CTI;
	if ((u->ier & UART_IER_ETBEI) && u->thr_ipending)
		return UART_IIR_THRI;
	if ((u->ier & UART_IER_EDSSI) && (u->msr & 0x0f))
		return UART_IIR_MSI;
	return UART_IIR_NONE;
}

bool uart_irq_line(const struct uart16550 *u)
{
	/* On the PC the INTR pin reaches the ISA bus through a buffer that
	 * OUT2 enables; in loopback OUT2's pin is forced inactive (data sheet,
	 * MCR bit 4), so the interrupt stays inside the chip. */
	if ((u->mcr & (UART_MCR_OUT2 | UART_MCR_LOOP)) != UART_MCR_OUT2)
		return false;
	return uart_iir_id(u) != UART_IIR_NONE;
}

unsigned uart_rx_room(const struct uart16550 *u)
{
	return uart_rx_cap(u) - u->rx_count;
}

int uart_rx(struct uart16550 *u, uint8_t c)
{
	if (!uart_rx_room(u)) {
		/* Overrun: the FIFO keeps its contents, the new byte is lost. */
		u->lsr |= UART_LSR_OE;
		return -ENOSPC;
	}
	u->rx[(u->rx_head + u->rx_count) % UART_FIFO_LEN] = c;
	u->rx_count++;
	return 0;
}

static uint8_t uart_rx_pop(struct uart16550 *u)
{
	uint8_t c;

	if (!u->rx_count)
		return 0;
	c = u->rx[u->rx_head];
	u->rx_head = (uint8_t)((u->rx_head + 1) % UART_FIFO_LEN);
	u->rx_count--;
	return c;
}

static void uart_rx_clear(struct uart16550 *u)
{
	u->rx_head = u->rx_count = 0;
}

static uint8_t uart_read_iir(struct uart16550 *u)
{
	uint8_t id = uart_iir_id(u);

	/* Reading IIR while it reports THRE clears that source. */
	if (id == UART_IIR_THRI)
		u->thr_ipending = false;
	return (uint8_t)(id | (uart_fifo_on(u) ? UART_IIR_FIFO : 0));
}

static uint8_t uart_read_lsr(struct uart16550 *u)
{
	uint8_t v = (uint8_t)(u->lsr | (u->rx_count ? UART_LSR_DR : 0));

	u->lsr &= (uint8_t)~UART_LSR_ERRS;	/* error bits clear on read */
	return v;
}

static uint8_t uart_read_msr(struct uart16550 *u)
{
	uint8_t v = u->msr;

	u->msr &= 0xf0;				/* delta bits clear on read */
	return v;
}

uint8_t uart_read(struct uart16550 *u, unsigned off)
{
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (off & 7) {
	case UART_RBR: return dlab ? u->dll : uart_rx_pop(u);
	case UART_IER: return dlab ? u->dlm : u->ier;
	case UART_IIR: return uart_read_iir(u);
	case UART_LCR: return u->lcr;
	case UART_MCR: return u->mcr;
	case UART_LSR: return uart_read_lsr(u);
	case UART_MSR: return uart_read_msr(u);
	default:       return u->scr;
	}
}

static void uart_write_ier(struct uart16550 *u, uint8_t val)
{
	uint8_t old = u->ier;

	u->ier = val & 0x0f;
	/* ETBEI going 0->1 with THR empty raises THRE at once (the 8250
	 * driver's start_tx depends on it); masking it drops the latch. */
	if (!(u->ier & UART_IER_ETBEI))
		u->thr_ipending = false;
	else if (!(old & UART_IER_ETBEI))
		u->thr_ipending = true;
}

static void uart_write_fcr(struct uart16550 *u, uint8_t val)
{
	/* Changing FCR0 clears both FIFOs; bits 1 and 2 self-clear. */
	if ((val ^ u->fcr) & UART_FCR_FE)
		uart_rx_clear(u);
	if (val & UART_FCR_CLR_RX)
		uart_rx_clear(u);
	u->fcr = val & 0xc9;
	if (!uart_fifo_on(u))
		u->fcr = 0;
}

static void uart_write_mcr(struct uart16550 *u, uint8_t val)
{
	uint8_t old = uart_msr_lines(u->mcr), now, chg;

	u->mcr = val & 0x1f;
	now = uart_msr_lines(u->mcr);
	chg = old ^ now;
	u->msr = (uint8_t)(now | (u->msr & 0x0f) |
			   ((chg & UART_MSR_CTS) ? UART_MSR_DCTS : 0) |
			   ((chg & UART_MSR_DSR) ? UART_MSR_DDSR : 0) |
			   ((old & ~now & UART_MSR_RI) ? UART_MSR_TERI : 0) |
			   ((chg & UART_MSR_DCD) ? UART_MSR_DDCD : 0));
}

static int uart_write_thr(struct uart16550 *u, uint8_t val)
{
	/* The write clears a pending THRE; the byte leaves at once and THR
	 * is empty again, which latches the next THRE interrupt. */
	u->thr_ipending = true;
	if (u->mcr & UART_MCR_LOOP) {
		uart_rx(u, val);
		return -1;
	}
	return val;
}

int uart_write(struct uart16550 *u, unsigned off, uint8_t val)
{
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (off & 7) {
	case UART_THR:
		if (!dlab)
			return uart_write_thr(u, val);
		u->dll = val;
		break;
	case UART_IER:
		if (dlab)
			u->dlm = val;
		else
			uart_write_ier(u, val);
		break;
	case UART_FCR: uart_write_fcr(u, val); break;
	case UART_LCR: u->lcr = val; break;
	case UART_MCR: uart_write_mcr(u, val); break;
	case UART_SCR: u->scr = val; break;
	default: break;		/* LSR and MSR: factory test only */
	}
	return -1;
}

/*
 * State v1, UART_STATE_LEN bytes: version, ier, lcr, mcr, lsr error bits,
 * msr, scr, dll, dlm, fcr, thr_ipending, rx_count, 4 zero bytes, the
 * received bytes oldest first (rx_count of them, the rest zero).
 */
void uart_save(const struct uart16550 *u, uint8_t *b)
{
	memset(b, 0, UART_STATE_LEN);
	b[0] = UART_STATE_V;
	b[1] = u->ier, b[2] = u->lcr, b[3] = u->mcr;
	b[4] = u->lsr & UART_LSR_ERRS, b[5] = u->msr, b[6] = u->scr;
	b[7] = u->dll, b[8] = u->dlm, b[9] = u->fcr;
	b[10] = u->thr_ipending, b[11] = u->rx_count;
	for (unsigned i = 0; i < u->rx_count; i++)
		b[16 + i] = u->rx[(u->rx_head + i) % UART_FIFO_LEN];
}

static bool uart_state_ok(const uint8_t *b, size_t len)
{
	unsigned cap;

	if (len != UART_STATE_LEN || b[0] != UART_STATE_V)
		return false;
	cap = (b[9] & UART_FCR_FE) ? UART_FIFO_LEN : 1;
	if ((b[1] & 0xf0) || (b[3] & 0xe0) || (b[4] & ~UART_LSR_ERRS))
		return false;
	if ((b[9] & ~0xc9) || (b[9] && !(b[9] & UART_FCR_FE)))
		return false;
	if (b[10] > 1 || b[11] > cap || b[12] | b[13] | b[14] | b[15])
		return false;
	/* The line bits follow from MCR; only the deltas are free. */
	return (b[5] & 0xf0) == uart_msr_lines(b[3]);
}

int uart_load(struct uart16550 *u, const uint8_t *b, size_t len)
{
	if (!uart_state_ok(b, len))
		return -EINVAL;
	u->ier = b[1], u->lcr = b[2], u->mcr = b[3];
	u->lsr = (uint8_t)(UART_LSR_THRE | UART_LSR_TEMT | b[4]);
	u->msr = b[5], u->scr = b[6], u->dll = b[7], u->dlm = b[8];
	u->fcr = b[9], u->thr_ipending = b[10];
	u->rx_head = 0, u->rx_count = b[11];
	memcpy(u->rx, b + 16, UART_FIFO_LEN);
	return 0;
}
