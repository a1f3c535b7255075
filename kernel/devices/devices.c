/*
 * The guest devices of this stage, all on the generic bus:
 *   - a 16550 UART at 0x3f8 whose output lines go to the host log with the
 *     VM's name, and to the serial console while `vm console` is attached;
 *   - an exit port at 0xf4 compatible with QEMU's isa-debug-exit;
 *   - a 4 KiB MMIO scratch device at 0xfeb00000 for the emulation tests.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/mgmt/console.h"
#include "kernel/devices/devices.h"
#include "kernel/platform/spinlock.h"

#define UART_LINE_MAX	200
#define UART_RX_RING	256
#define LSR_DR		0x01
#define LSR_THRE	0x20
#define LSR_TEMT	0x40
#define LCR_DLAB	0x80
#define TESTDEV_ID	0x54455354u	/* "TEST" */

struct vuart {
	struct vm *vm;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	char line[UART_LINE_MAX + 1];
	size_t len;
	uint8_t rx[UART_RX_RING];
	volatile uint32_t rx_head, rx_tail;
	char prefix[VM_NAME_MAX + 8];
};

static struct vm *attached_vm;

void vuart_attach(struct vm *vm)
{
	__atomic_store_n(&attached_vm, vm, __ATOMIC_RELEASE);
}

struct vm *vuart_attached(void)
{
	return __atomic_load_n(&attached_vm, __ATOMIC_ACQUIRE);
}

static void vuart_flush(struct vuart *u)
{
	if (!u->len)
		return;
	log_line(LOG_INFO, u->prefix, u->line, u->len);
	u->len = 0;
}

static void vuart_tx(struct vuart *u, uint8_t c)
{
	if (__atomic_load_n(&attached_vm, __ATOMIC_ACQUIRE) == u->vm)
		serial_write((const char *)&c, 1);
	if (c == '\n') {
		vuart_flush(u);
		return;
	}
	if (c == '\r')
		return;
	u->line[u->len++] = (c >= 0x20 && c < 0x7f) || c == '\t' ? (char)c : '?';
	if (u->len == UART_LINE_MAX)
		vuart_flush(u);
}

int vuart_push_rx(struct vm *vm, uint8_t c)
{
	struct vuart *u = vm->uart;
	uint32_t next;

	if (!u)
		return -ENODEV;
	next = (u->rx_head + 1) % UART_RX_RING;
	if (next == u->rx_tail)
		return -ENOSPC;
	u->rx[u->rx_head] = c;
	__atomic_store_n(&u->rx_head, next, __ATOMIC_RELEASE);
	return 0;
}

static uint8_t vuart_rx(struct vuart *u)
{
	uint8_t c;

	if (u->rx_tail == __atomic_load_n(&u->rx_head, __ATOMIC_ACQUIRE))
		return 0;
	c = u->rx[u->rx_tail];
	u->rx_tail = (u->rx_tail + 1) % UART_RX_RING;
	return c;
}

/* Register file per the 16550 data sheet; no interrupts yet (no virtual
 * interrupt controller), so software polls LSR as the test guests do. */
static int vuart_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct vuart *u = ctx;
	bool dlab = u->lcr & LCR_DLAB;

	(void)size;
	switch (off) {
	case 0: *val = dlab ? u->dll : vuart_rx(u); break;
	case 1: *val = dlab ? u->dlm : u->ier; break;
	case 2: *val = (u->fcr & 1) ? 0xc1 : 0x01; break;	/* no IRQ pending */
	case 3: *val = u->lcr; break;
	case 4: *val = u->mcr; break;
	case 5:
		*val = LSR_THRE | LSR_TEMT |
		       (u->rx_tail != u->rx_head ? LSR_DR : 0);
		break;
	case 6: *val = 0xb0; break;	/* DCD, DSR, CTS */
	default: *val = u->scr; break;
	}
	return 0;
}

static int vuart_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct vuart *u = ctx;
	bool dlab = u->lcr & LCR_DLAB;

	(void)size;
	switch (off) {
	case 0: if (dlab) u->dll = val; else vuart_tx(u, (uint8_t)val); break;
	case 1: if (dlab) u->dlm = val; else u->ier = val & 0x0f; break;
	case 2: u->fcr = val; break;
	case 3: u->lcr = val; break;
	case 4: u->mcr = val & 0x1f; break;
	case 7: u->scr = val; break;
	default: break;		/* LSR/MSR are read-only */
	}
	return 0;
}

static int exitport_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct vm *vm = ctx;

	(void)off, (void)size;
	if (vm->uart)
		vuart_flush(vm->uart);
	vm->exit_code = (int)(val & 0xff);
	vm_guest_stopped(vm, VM_STOPPED, "guest wrote exit code %#x to port 0xf4",
			 vm->exit_code);
	return 0;
}

/* The ID lives in bytes 0-3 of the register file; writes skip them. */
static int testdev_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	*val = 0;
	memcpy(val, (uint8_t *)ctx + off, (size_t)size);
	return 0;
}

static int testdev_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	uint8_t *regs = ctx;
	uint64_t i;

	for (i = 0; i < (uint64_t)size; i++)
		if (off + i >= 4)	/* the ID register ignores writes */
			regs[off + i] = (uint8_t)(val >> (8 * i));
	return 0;
}

int devices_create(struct vm *vm)
{
	struct vuart *u = calloc(1, sizeof(*u));
	uint8_t *regs = calloc(1, TESTDEV_SIZE);
	int rc;

	if (!u || !regs) {
		free(u);
		free(regs);
		return -ENOMEM;
	}
	u->vm = vm;
	*(uint32_t *)regs = TESTDEV_ID;
	snprintf(u->prefix, sizeof(u->prefix), "[%s] ", vm->name);
	vm->uart = u;
	vm->testdev = regs;
	rc = bus_add(&vm->pio, &(struct bus_dev){ "uart", 0x3f8, 8, vuart_read,
						  vuart_write, u });
	if (!rc)
		rc = bus_add(&vm->pio, &(struct bus_dev){ "exit", 0xf4, 4, NULL,
							  exitport_write, vm });
	if (!rc)
		rc = bus_add(&vm->mmio, &(struct bus_dev){ "testdev", TESTDEV_BASE,
							   TESTDEV_SIZE, testdev_read,
							   testdev_write, regs });
	return rc;
}

/* ---- migration: each model's state as a named, versioned blob ---- */

#define VUART_STATE_V	1
#define VUART_REGS	8	/* ier lcr mcr scr dll dlm fcr, pad */
#define TESTDEV_STATE_V	1

/* uart v1: 8 register bytes, u16 partial-line length, u16 queued input
 * bytes, the line, the input. */
static int vuart_save(struct vuart *u, uint8_t *b, size_t cap, uint32_t *len)
{
	uint16_t nrx = (uint16_t)((u->rx_head - u->rx_tail + UART_RX_RING) % UART_RX_RING);
	uint16_t nl = (uint16_t)u->len;
	size_t n = VUART_REGS + 4 + nl + nrx;

	if (n > cap)
		return -ENOSPC;
	memset(b, 0, VUART_REGS);
	b[0] = u->ier, b[1] = u->lcr, b[2] = u->mcr, b[3] = u->scr;
	b[4] = u->dll, b[5] = u->dlm, b[6] = u->fcr;
	memcpy(b + VUART_REGS, &nl, 2);
	memcpy(b + VUART_REGS + 2, &nrx, 2);
	memcpy(b + VUART_REGS + 4, u->line, nl);
	for (uint16_t i = 0; i < nrx; i++)
		b[VUART_REGS + 4 + nl + i] = u->rx[(u->rx_tail + i) % UART_RX_RING];
	*len = (uint32_t)n;
	return 0;
}

static int vuart_load(struct vuart *u, const uint8_t *b, uint32_t len)
{
	uint16_t nl, nrx;

	if (len < VUART_REGS + 4)
		return -EINVAL;
	memcpy(&nl, b + VUART_REGS, 2);
	memcpy(&nrx, b + VUART_REGS + 2, 2);
	if (nl >= UART_LINE_MAX || nrx >= UART_RX_RING ||
	    len != (uint32_t)VUART_REGS + 4 + nl + nrx)
		return -EINVAL;
	/* The partial line goes to the host log: only what vuart_tx itself
	 * would have stored (printable ASCII and tab), never escape codes
	 * or line breaks from the network. */
	for (uint16_t i = 0; i < nl; i++) {
		uint8_t c = b[VUART_REGS + 4 + i];

		if ((c < 0x20 || c >= 0x7f) && c != '\t' && c != '?')
			return -EINVAL;
	}
	u->ier = b[0] & 0x0f, u->lcr = b[1], u->mcr = b[2] & 0x1f, u->scr = b[3];
	u->dll = b[4], u->dlm = b[5], u->fcr = b[6];
	memcpy(u->line, b + VUART_REGS + 4, nl);
	u->len = nl;
	memcpy(u->rx, b + VUART_REGS + 4 + nl, nrx);
	u->rx_tail = 0;
	u->rx_head = nrx;
	return 0;
}

int devices_save(struct vm *vm, int (*emit)(void *ctx, const char *name, uint32_t version,
					    const void *blob, uint32_t len), void *ctx)
{
	static uint8_t blob[VUART_REGS + 4 + UART_LINE_MAX + UART_RX_RING];
	uint32_t len;
	int rc;

	rc = vuart_save(vm->uart, blob, sizeof(blob), &len);
	if (!rc)
		rc = emit(ctx, "uart", VUART_STATE_V, blob, len);
	if (!rc)
		rc = emit(ctx, "testdev", TESTDEV_STATE_V, vm->testdev, TESTDEV_SIZE);
	return rc;
}

int devices_load(struct vm *vm, const char *name, uint32_t version, const void *blob,
		 uint32_t len)
{
	if (!strcmp(name, "uart") && version == VUART_STATE_V)
		return vuart_load(vm->uart, blob, len);
	if (!strcmp(name, "testdev") && version == TESTDEV_STATE_V) {
		if (len != TESTDEV_SIZE)
			return -EINVAL;
		/* The ID register is the model's, not the stream's. */
		memcpy((uint8_t *)vm->testdev + 4, (const uint8_t *)blob + 4, TESTDEV_SIZE - 4);
		return 0;
	}
	return -ENOENT;
}

void devices_destroy(struct vm *vm)
{
	if (vm->uart)
		vuart_flush(vm->uart);
	if (attached_vm == vm)
		vuart_attach(NULL);
	free(vm->uart);
	free(vm->testdev);
	vm->uart = vm->testdev = NULL;
}
