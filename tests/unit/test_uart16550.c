/*
 * Unit tests for kernel/devices/model/uart16550.c: every register, the
 * IIR priority and clearing rules, the THRE re-raise cases Linux's 8250
 * driver relies on, loopback, FIFO trigger levels, overrun, save/load.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "kernel/devices/model/uart16550.h"

static struct uart16550 u;

static void setup(void)
{
	uart_reset(&u);
}

TestSuite(uart16550, .init = setup);

Test(uart16550, reset_values)
{
	cr_assert_eq(uart_read(&u, UART_IER), 0);
	cr_assert_eq(uart_read(&u, UART_IIR), UART_IIR_NONE);
	cr_assert_eq(uart_read(&u, UART_LCR), 0);
	cr_assert_eq(uart_read(&u, UART_MCR), 0);
	cr_assert_eq(uart_read(&u, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	cr_assert_eq(uart_read(&u, UART_MSR), 0xb0);
	cr_assert_not(uart_irq_line(&u));
}

Test(uart16550, dlab_divisor_and_scratch)
{
	uart_write(&u, UART_IER, 0x05);
	uart_write(&u, UART_LCR, 0x83);
	cr_assert_eq(uart_write(&u, UART_DLL, 0x01), -1);	/* not transmitted */
	uart_write(&u, UART_DLM, 0x02);
	cr_assert_eq(uart_read(&u, UART_DLL), 0x01);
	cr_assert_eq(uart_read(&u, UART_DLM), 0x02);
	uart_write(&u, UART_LCR, 0x03);
	cr_assert_eq(uart_read(&u, UART_IER), 0x05);
	cr_assert_eq(uart_read(&u, UART_LCR), 0x03);
	uart_write(&u, UART_SCR, 0x5a);
	cr_assert_eq(uart_read(&u, UART_SCR), 0x5a);
	uart_write(&u, UART_IER, 0xff);
	cr_assert_eq(uart_read(&u, UART_IER), 0x0f);
	uart_write(&u, UART_MCR, 0xff);
	cr_assert_eq(uart_read(&u, UART_MCR), 0x1f);
}

Test(uart16550, thr_transmits)
{
	cr_assert_eq(uart_write(&u, UART_THR, 'A'), 'A');
	cr_assert_eq(uart_write(&u, UART_LCR, 3), -1);
	cr_assert_eq(uart_read(&u, UART_LSR) & 0x60, 0x60);
}

Test(uart16550, rx_non_fifo_one_byte_and_overrun)
{
	cr_assert_eq(uart_rx_room(&u), 1);
	cr_assert_eq(uart_rx(&u, 'x'), 0);
	cr_assert_eq(uart_rx_room(&u), 0);
	cr_assert_eq(uart_rx(&u, 'y'), -ENOSPC);
	cr_assert_eq(uart_read(&u, UART_LSR) & (UART_LSR_DR | UART_LSR_OE),
		     UART_LSR_DR | UART_LSR_OE);
	cr_assert_eq(uart_read(&u, UART_LSR) & UART_LSR_OE, 0);	/* cleared */
	cr_assert_eq(uart_read(&u, UART_RBR), 'x');
	cr_assert_eq(uart_read(&u, UART_LSR) & UART_LSR_DR, 0);
}

Test(uart16550, fifo_bits_and_trigger_levels)
{
	static const uint8_t lvl[4] = { 1, 4, 8, 14 };

	uart_write(&u, UART_IER, UART_IER_ERBFI);
	for (unsigned t = 0; t < 4; t++) {
		uart_write(&u, UART_FCR, (uint8_t)(t << 6 | 0x07));
		cr_assert_eq(uart_rx_room(&u), 16);
		for (unsigned i = 0; i + 1 < lvl[t]; i++)
			uart_rx(&u, (uint8_t)i);
		/* Below the trigger: the character timeout (if any data). */
		if (lvl[t] > 1)
			cr_assert_eq(uart_read(&u, UART_IIR), 0xc0 | UART_IIR_CTI);
		uart_rx(&u, 0x55);
		cr_assert_eq(uart_read(&u, UART_IIR), 0xc0 | UART_IIR_RDI, "level %u", t);
		uart_write(&u, UART_FCR, (uint8_t)(t << 6 | 0x03));	/* clear RX */
		cr_assert_eq(uart_read(&u, UART_IIR), 0xc1);
	}
}

Test(uart16550, fifo_order_and_overrun_keeps_contents)
{
	uart_write(&u, UART_FCR, 0x01);
	for (unsigned i = 0; i < 16; i++)
		cr_assert_eq(uart_rx(&u, (uint8_t)('a' + i)), 0);
	cr_assert_eq(uart_rx(&u, 'Z'), -ENOSPC);
	cr_assert(uart_read(&u, UART_LSR) & UART_LSR_OE);
	for (unsigned i = 0; i < 16; i++)
		cr_assert_eq(uart_read(&u, UART_RBR), 'a' + i);
	cr_assert_eq(uart_read(&u, UART_LSR) & UART_LSR_DR, 0);
}

Test(uart16550, fcr_disable_clears_fifo)
{
	uart_write(&u, UART_FCR, 0x01);
	uart_rx(&u, 1);
	uart_rx(&u, 2);
	uart_write(&u, UART_FCR, 0x00);
	cr_assert_eq(uart_read(&u, UART_LSR) & UART_LSR_DR, 0);
	cr_assert_eq(uart_read(&u, UART_IIR), UART_IIR_NONE);	/* no FIFO bits */
	cr_assert_eq(uart_rx_room(&u), 1);
}

Test(uart16550, thre_on_etbei_rising_edge)
{
	uart_write(&u, UART_MCR, UART_MCR_OUT2);
	uart_write(&u, UART_IER, UART_IER_ETBEI);
	cr_assert(uart_irq_line(&u));
	cr_assert_eq(uart_read(&u, UART_IIR), UART_IIR_THRI);
	/* Reading IIR cleared it. */
	cr_assert_eq(uart_read(&u, UART_IIR), UART_IIR_NONE);
	cr_assert_not(uart_irq_line(&u));
	/* Re-writing the same IER is not a rising edge. */
	uart_write(&u, UART_IER, UART_IER_ETBEI);
	cr_assert_eq(uart_iir_id(&u), UART_IIR_NONE);
	/* 1 -> 0 -> 1 is, and re-raises it (8250 UART_BUG_THRE test). */
	uart_write(&u, UART_IER, 0);
	uart_write(&u, UART_IER, UART_IER_ETBEI);
	cr_assert_eq(uart_iir_id(&u), UART_IIR_THRI);
}

Test(uart16550, thre_reraised_after_tx)
{
	uart_write(&u, UART_IER, UART_IER_ETBEI);
	cr_assert_eq(uart_read(&u, UART_IIR), UART_IIR_THRI);
	cr_assert_eq(uart_iir_id(&u), UART_IIR_NONE);
	uart_write(&u, UART_THR, 'q');
	cr_assert_eq(uart_iir_id(&u), UART_IIR_THRI);
	/* Disabling ETBEI drops the latch. */
	uart_write(&u, UART_IER, 0);
	uart_write(&u, UART_IER, UART_IER_ERBFI);
	cr_assert_eq(uart_iir_id(&u), UART_IIR_NONE);
}

Test(uart16550, iir_read_does_not_clear_other_sources)
{
	uart_write(&u, UART_IER, UART_IER_ERBFI | UART_IER_ETBEI);
	uart_rx(&u, 'r');
	cr_assert_eq(uart_read(&u, UART_IIR), UART_IIR_RDI);
	cr_assert_eq(uart_read(&u, UART_IIR), UART_IIR_RDI);
	uart_read(&u, UART_RBR);
	/* THRE was pending all along beneath received data. */
	cr_assert_eq(uart_read(&u, UART_IIR), UART_IIR_THRI);
	cr_assert_eq(uart_read(&u, UART_IIR), UART_IIR_NONE);
}

Test(uart16550, iir_priority_order)
{
	uart_write(&u, UART_FCR, 0xc1);			/* trigger 14 */
	uart_write(&u, UART_IER, 0x0f);
	uart_write(&u, UART_MCR, UART_MCR_LOOP);	/* lines drop: MSR deltas */
	for (unsigned i = 0; i < 17; i++)		/* 14+ and one overrun */
		uart_rx(&u, (uint8_t)i);
	cr_assert_eq(uart_iir_id(&u), UART_IIR_RLSI);
	uart_read(&u, UART_LSR);
	cr_assert_eq(uart_iir_id(&u), UART_IIR_RDI);
	for (unsigned i = 0; i < 3; i++)
		uart_read(&u, UART_RBR);
	cr_assert_eq(uart_iir_id(&u), UART_IIR_CTI);
	while (uart_read(&u, UART_LSR) & UART_LSR_DR)
		uart_read(&u, UART_RBR);
	cr_assert_eq(uart_iir_id(&u), UART_IIR_THRI);
	uart_read(&u, UART_IIR);
	cr_assert_eq(uart_iir_id(&u), UART_IIR_MSI);
	uart_read(&u, UART_MSR);
	cr_assert_eq(uart_iir_id(&u), UART_IIR_NONE);
}

Test(uart16550, out2_gates_irq_line)
{
	uart_write(&u, UART_IER, UART_IER_ERBFI);
	uart_rx(&u, 'k');
	cr_assert_eq(uart_iir_id(&u), UART_IIR_RDI);
	cr_assert_not(uart_irq_line(&u));
	uart_write(&u, UART_MCR, UART_MCR_OUT2 | UART_MCR_DTR | UART_MCR_RTS);
	cr_assert(uart_irq_line(&u));
	uart_write(&u, UART_MCR, UART_MCR_OUT2 | UART_MCR_LOOP);
	cr_assert_not(uart_irq_line(&u));
	cr_assert_eq(uart_iir_id(&u), UART_IIR_RDI);
}

Test(uart16550, loopback_tx_to_rx_and_msr_mirror)
{
	/* Linux autoconfig: MCR = LOOP | 0x0a must read MSR & 0xf0 = 0x90. */
	uart_write(&u, UART_MCR, UART_MCR_LOOP | 0x0a);
	cr_assert_eq(uart_read(&u, UART_MSR) & 0xf0, 0x90);
	uart_write(&u, UART_MCR, UART_MCR_LOOP | 0x0f);
	cr_assert_eq(uart_read(&u, UART_MSR) & 0xf0, 0xf0);
	uart_write(&u, UART_MCR, UART_MCR_LOOP);
	cr_assert_eq(uart_read(&u, UART_MSR), 0x0f);	/* all four deltas */
	cr_assert_eq(uart_read(&u, UART_MSR), 0x00);	/* cleared by the read */
	cr_assert_eq(uart_write(&u, UART_THR, 0xa5), -1);
	cr_assert(uart_read(&u, UART_LSR) & UART_LSR_DR);
	cr_assert_eq(uart_read(&u, UART_RBR), 0xa5);
	uart_write(&u, UART_MCR, 0);
	cr_assert_eq(uart_read(&u, UART_MSR), 0xb0 | UART_MSR_DCTS | UART_MSR_DDSR |
		     UART_MSR_DDCD);
}

Test(uart16550, ri_trailing_edge_only)
{
	uart_write(&u, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT1);
	cr_assert_eq(uart_read(&u, UART_MSR) & UART_MSR_TERI, 0);
	uart_write(&u, UART_MCR, UART_MCR_LOOP);
	cr_assert(uart_read(&u, UART_MSR) & UART_MSR_TERI);
}

Test(uart16550, save_load_roundtrip)
{
	struct uart16550 v;
	uint8_t b[UART_STATE_LEN], c[UART_STATE_LEN];

	uart_write(&u, UART_FCR, 0x81);
	uart_write(&u, UART_IER, 0x03);
	uart_write(&u, UART_MCR, 0x0b);
	uart_write(&u, UART_SCR, 0x42);
	for (unsigned i = 0; i < 20; i++)	/* wraps the ring, overruns */
		uart_rx(&u, (uint8_t)(i + 1));
	uart_read(&u, UART_RBR);
	uart_read(&u, UART_RBR);
	uart_rx(&u, 99);
	uart_save(&u, b);
	uart_reset(&v);
	cr_assert_eq(uart_load(&v, b, sizeof(b)), 0);
	uart_save(&v, c);
	cr_assert_arr_eq(b, c, sizeof(b));
	cr_assert_eq(uart_read(&v, UART_LSR) & UART_LSR_OE, UART_LSR_OE);
	cr_assert_eq(uart_read(&v, UART_RBR), 3);
	cr_assert_eq(uart_read(&v, UART_SCR), 0x42);
	cr_assert_eq(uart_iir_id(&v), uart_iir_id(&u));
}

Test(uart16550, load_rejects_bad_input_unchanged)
{
	struct uart16550 before;
	uint8_t b[UART_STATE_LEN], bad[UART_STATE_LEN];
	static const struct { unsigned off; uint8_t val; } muts[] = {
		{ 0, 2 }, { 1, 0x10 }, { 3, 0x20 }, { 4, 0x01 }, { 5, 0x00 },
		{ 9, 0x02 }, { 9, 0x40 }, { 10, 2 }, { 11, 2 }, { 12, 1 },
	};

	uart_write(&u, UART_SCR, 7);
	uart_save(&u, b);
	memcpy(&before, &u, sizeof(u));
	cr_assert_eq(uart_load(&u, b, sizeof(b) - 1), -EINVAL);
	for (size_t i = 0; i < sizeof(muts) / sizeof(muts[0]); i++) {
		memcpy(bad, b, sizeof(b));
		bad[muts[i].off] = muts[i].val;
		cr_assert_eq(uart_load(&u, bad, sizeof(bad)), -EINVAL, "mutation %zu", i);
	}
	cr_assert_eq(memcmp(&before, &u, sizeof(u)), 0);
	/* FIFO on accepts 16 queued bytes; off only 1. */
	memcpy(bad, b, sizeof(b));
	bad[9] = 0x01, bad[11] = 16;
	cr_assert_eq(uart_load(&u, bad, sizeof(bad)), 0);
	bad[11] = 17;
	cr_assert_eq(uart_load(&u, bad, sizeof(bad)), -EINVAL);
}
