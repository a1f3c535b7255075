/*
 * The guest devices of this stage, all on the generic bus:
 *   - a 16550A UART at 0x3f8 on IRQ 4 (model/uart16550.c) whose output
 *     lines go to the host log with the VM's name, and to the serial
 *     console while `vm console` is attached;
 *   - an exit port at 0xf4 compatible with QEMU's isa-debug-exit;
 *   - a 4 KiB MMIO scratch device at 0xfeb00000 for the emulation tests.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/mgmt/console.h"
#include "kernel/devices/devices.h"
#include "kernel/devices/vdev.h"
#include "kernel/devices/vpci.h"
#include "kernel/devices/pc.h"
#include "kernel/platform/spinlock.h"
#include "kernel/devices/model/uart16550.h"
#include "kernel/lib/byteorder.h"
#include "kernel/virt/irq.h"

#define UART_LINE_MAX	200
#define UART_RX_RING	256
#define UART_GSI	4	/* COM1 */
#define TESTDEV_ID	0x54455354u	/* "TEST" */

struct vuart {
	struct vm *vm;
	struct spinlock lock;		/* the model; vCPUs and the console */
	struct uart16550 regs;
	bool irq;			/* the level last sent to vm_irq_line */
	char line[UART_LINE_MAX + 1];
	size_t len;
	uint8_t rx[UART_RX_RING];	/* host input the FIFO has no room for */
	volatile uint32_t rx_head, rx_tail;
	char prefix[VM_NAME_MAX + 8];
	/* The VM's other PC devices (pc.c): struct vm has one pointer for
	 * the devices besides the test device, and it points here. */
	struct pc_devs *pc;
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

/* Under u->lock: move queued host input into the receiver while it has
 * room (so the host never overruns the guest), then pass the interrupt
 * line on when it changed. */
static void vuart_sync(struct vuart *u)
{
	bool level;

	while (uart_rx_room(&u->regs) &&
	       u->rx_tail != __atomic_load_n(&u->rx_head, __ATOMIC_ACQUIRE)) {
		uart_rx(&u->regs, u->rx[u->rx_tail]);
		u->rx_tail = (u->rx_tail + 1) % UART_RX_RING;
	}
	level = uart_irq_line(&u->regs);
	if (level != u->irq) {
		u->irq = level;
		vm_irq_line(u->vm, UART_GSI, level);
	}
}

/* The console CPU is the only producer of u->rx. */
int vuart_push_rx(struct vm *vm, uint8_t c)
{
	struct vuart *u = vm->uart;
	uint32_t next;
	uint64_t f;

	if (!u)
		return -ENODEV;
	next = (u->rx_head + 1) % UART_RX_RING;
	if (next == u->rx_tail)
		return -ENOSPC;
	u->rx[u->rx_head] = c;
	__atomic_store_n(&u->rx_head, next, __ATOMIC_RELEASE);
	f = spin_lock_irqsave(&u->lock);
	vuart_sync(u);
	spin_unlock_irqrestore(&u->lock, f);
	return 0;
}

static int vuart_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct vuart *u = ctx;
	uint64_t f = spin_lock_irqsave(&u->lock);

	(void)size;
	*val = uart_read(&u->regs, (unsigned)off);
	vuart_sync(u);
	spin_unlock_irqrestore(&u->lock, f);
	return 0;
}

static int vuart_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct vuart *u = ctx;
	uint64_t f = spin_lock_irqsave(&u->lock);
	int c;

	(void)size;
	c = uart_write(&u->regs, (unsigned)off, (uint8_t)val);
	if (c >= 0)
		vuart_tx(u, (uint8_t)c);
	vuart_sync(u);
	spin_unlock_irqrestore(&u->lock, f);
	return 0;
}

static int exitport_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct vm *vm = ctx;

	(void)off, (void)size;
	if (vm->uart) {
		struct vuart *u = vm->uart;
		uint64_t f = spin_lock_irqsave(&u->lock);

		vuart_flush(u);
		spin_unlock_irqrestore(&u->lock, f);
	}
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
	uart_reset(&u->regs);
	*(uint32_t *)regs = TESTDEV_ID;
	snprintf(u->prefix, sizeof(u->prefix), "[%s] ", vm->name);
	vm->uart = u;
	vm->testdev = regs;
	rc = pc_create(vm, &u->pc);
	if (!rc)
		rc = bus_add(&vm->pio, &(struct bus_dev){ "uart", 0x3f8, 8, vuart_read,
							  vuart_write, u });
	if (!rc)
		rc = bus_add(&vm->pio, &(struct bus_dev){ "exit", 0xf4, 4, NULL,
							  exitport_write, vm });
	if (!rc)
		rc = bus_add(&vm->mmio, &(struct bus_dev){ "testdev", TESTDEV_BASE,
							   TESTDEV_SIZE, testdev_read,
							   testdev_write, regs });
	/* After pc_create: its reset register 0xcf9 must match before the
	 * PCI config ports 0xcf8-0xcff (bus.c takes the first match). */
	if (!rc)
		rc = vpci_create(vm);
	/* Devices a restart rebuilds from the words the VM was created with
	 * (none yet when the VM is new: vdev_add follows vm_create). */
	if (!rc && vm->ndevs) {
		char err[120];

		rc = vdev_create_all(vm, err, sizeof(err));
		if (rc < 0)
			pr_err("vm %s: %s", vm->name, err);
	}
	return rc;
}

/* ---- migration: each model's state as a named, versioned blob ---- */

#define VUART_STATE_V1	1	/* the register-only UART before the model */
#define VUART_STATE_V	2
#define VUART_V1_REGS	8	/* ier lcr mcr scr dll dlm fcr, pad */
#define VUART_HDR	(UART_STATE_LEN + 4)
#define TESTDEV_STATE_V	1

/* uart v2: the model's state (uart_save), u16 partial-line length, u16
 * queued input bytes, the line, the input. */
static int vuart_save(struct vuart *u, uint8_t *b, size_t cap, uint32_t *len)
{
	uint16_t nrx = (uint16_t)((u->rx_head - u->rx_tail + UART_RX_RING) % UART_RX_RING);
	uint16_t nl = (uint16_t)u->len;
	size_t n = VUART_HDR + nl + nrx;

	if (n > cap)
		return -ENOSPC;
	uart_save(&u->regs, b);
	st_le16(b + UART_STATE_LEN, nl);
	st_le16(b + UART_STATE_LEN + 2, nrx);
	memcpy(b + VUART_HDR, u->line, nl);
	for (uint16_t i = 0; i < nrx; i++)
		b[VUART_HDR + nl + i] = u->rx[(u->rx_tail + i) % UART_RX_RING];
	*len = (uint32_t)n;
	return 0;
}

/* A v1 register file through the model's own write path: the divisor
 * behind DLAB, then the rest, MSR deltas of a loopback MCR cleared. */
static void vuart_regs_v1(struct uart16550 *r, const uint8_t *b)
{
	uart_reset(r);
	uart_write(r, UART_LCR, UART_LCR_DLAB);
	uart_write(r, UART_DLL, b[4]);
	uart_write(r, UART_DLM, b[5]);
	uart_write(r, UART_LCR, 0);
	uart_write(r, UART_IER, b[0]);
	uart_write(r, UART_FCR, b[6] & ~(UART_FCR_CLR_RX | UART_FCR_CLR_TX));
	uart_write(r, UART_MCR, b[2]);
	uart_write(r, UART_SCR, b[3]);
	uart_write(r, UART_LCR, b[1]);
	uart_read(r, UART_MSR);
}

/* The partial line goes to the host log: only what vuart_tx itself would
 * have stored (printable ASCII and tab), never escape codes or line
 * breaks from the network. */
static bool vuart_line_ok(const uint8_t *l, uint16_t nl)
{
	for (uint16_t i = 0; i < nl; i++)
		if ((l[i] < 0x20 || l[i] >= 0x7f) && l[i] != '\t' && l[i] != '?')
			return false;
	return true;
}

static int vuart_load(struct vuart *u, uint32_t version, const uint8_t *b, uint32_t len)
{
	uint32_t hdr = version == VUART_STATE_V1 ? VUART_V1_REGS + 4 : VUART_HDR;
	struct uart16550 r;
	uint16_t nl, nrx;
	uint64_t f;

	if (len < hdr)
		return -EINVAL;
	nl = ld_le16(b + hdr - 4);
	nrx = ld_le16(b + hdr - 2);
	if (nl >= UART_LINE_MAX || nrx >= UART_RX_RING || len != hdr + nl + nrx ||
	    !vuart_line_ok(b + hdr, nl))
		return -EINVAL;
	if (version == VUART_STATE_V1)
		vuart_regs_v1(&r, b);
	else if (uart_load(&r, b, UART_STATE_LEN) < 0)
		return -EINVAL;
	f = spin_lock_irqsave(&u->lock);
	u->regs = r;
	memcpy(u->line, b + hdr, nl);
	u->len = nl;
	memcpy(u->rx, b + hdr + nl, nrx);
	u->rx_tail = 0;
	u->rx_head = nrx;
	vuart_sync(u);
	spin_unlock_irqrestore(&u->lock, f);
	return 0;
}

int devices_save(struct vm *vm, int (*emit)(void *ctx, const char *name, uint32_t version,
					    const void *blob, uint32_t len), void *ctx)
{
	static uint8_t blob[VUART_HDR + UART_LINE_MAX + UART_RX_RING];
	uint32_t len;
	int rc;

	rc = vuart_save(vm->uart, blob, sizeof(blob), &len);
	if (!rc)
		rc = emit(ctx, "uart", VUART_STATE_V, blob, len);
	if (!rc)
		rc = emit(ctx, "testdev", TESTDEV_STATE_V, vm->testdev, TESTDEV_SIZE);
	if (!rc)
		rc = pc_save(((struct vuart *)vm->uart)->pc, emit, ctx);
	return rc;
}

int devices_load(struct vm *vm, const char *name, uint32_t version, const void *blob,
		 uint32_t len)
{
	if (!strcmp(name, "uart") && (version == VUART_STATE_V || version == VUART_STATE_V1))
		return vuart_load(vm->uart, version, blob, len);
	if (!strcmp(name, "testdev") && version == TESTDEV_STATE_V) {
		if (len != TESTDEV_SIZE)
			return -EINVAL;
		/* The ID register is the model's, not the stream's. */
		memcpy((uint8_t *)vm->testdev + 4, (const uint8_t *)blob + 4, TESTDEV_SIZE - 4);
		return 0;
	}
	return pc_load(((struct vuart *)vm->uart)->pc, name, version, blob, len);
}

uint64_t devices_timer_deadline(struct vm *vm, uint64_t now_ns)
{
	struct vuart *u = vm->uart;

	return u && u->pc ? pc_timer_deadline(u->pc, now_ns) : 0;
}

void devices_timer_run(struct vm *vm, uint64_t now_ns)
{
	struct vuart *u = vm->uart;

	if (u && u->pc)
		pc_timer_run(u->pc, now_ns);
}

void devices_destroy(struct vm *vm)
{
	struct vuart *u = vm->uart;

	if (u) {
		vuart_flush(u);
		if (u->pc)
			pc_destroy(u->pc);
	}
	if (attached_vm == vm)
		vuart_attach(NULL);
	vdev_destroy_all(vm);
	vpci_destroy(vm);
	free(vm->uart);
	free(vm->testdev);
	vm->uart = vm->testdev = NULL;
}
