/*
 * Legacy PC devices on the port bus:
 *   - the ACPI PM1a event and control blocks (0x600, 6 bytes) and the
 *     reset register 0xcf9 the FADT announces (model/acpi_pm.c), SCI on
 *     IRQ 9;
 *   - the 8254 PIT at 0x40-0x43 (model/vpit.c), channel 0 on IRQ 0
 *     through devices_timer_deadline/run;
 *   - the MC146818 RTC and CMOS at 0x70/0x71 (model/vrtc.c) on IRQ 8,
 *     starting from the host's wall clock at VM creation;
 *   - for Multiboot test kernels written for QEMU: fw_cfg's I/O ports
 *     0x510/0x511 (model/fwcfg.c) and pc-testdev's 0xe0 scratch register,
 *     its byte-wise alias at 0xe8, the flush-page port 0xe4 (a no-op) and
 *     the IRQ-line ports 0x2000-0x2017 (QEMU hw/misc/pc-testdev.c);
 *   - the keyboard controller's ports 0x60-0x64: only the CPU reset line
 *     (command 0xfe) and port 0x61 (port B: the PIT's gate 2 and OUT2)
 *     are modelled.  The FADT leaves
 *     IAPC_BOOT_ARCH's 8042 flag clear and the DSDT has no PNP0303, so
 *     Linux marks the i8042 "firmware absent" (arch/x86/kernel/acpi/boot.c
 *     acpi_parse_fadt) and never probes; a guest that does sees status
 *     0x1c -- system flag, command last, not inhibited, no output byte --
 *     so i8042_flush() finds nothing to drain and command replies time out.
 * One lock covers them: a guest that powers off or resets stops itself
 * only, after the lock is dropped.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/kernel.h"
#include "kernel/devices/pc.h"
#include "kernel/devices/model/acpi_pm.h"
#include "kernel/devices/model/fwcfg.h"
#include "kernel/devices/model/vpit.h"
#include "kernel/devices/model/vrtc.h"
#include "kernel/platform/spinlock.h"
#include "kernel/lib/byteorder.h"
#include "kernel/virt/irq.h"

#define PC_PM_BASE	0x600	/* acpi_build: PM1a_EVT 0x600, PM1a_CNT 0x604 */
#define PC_PMTMR_PORT	0x608	/* guest_linux.c announces it in the FADT */
#define PC_RST_PORT	0xcf9
#define PC_S5_TYP	5
#define PC_SCI_GSI	9
#define PC_KBC_BASE	0x60
#define PC_KBC_STATUS	0x1c	/* 8042 status: SYS, A2 (command), INH */
#define PC_PIT_BASE	0x40
#define PC_PIT_GSI	2	/* ISA IRQ 0: the MADT overrides it to GSI 2 */
#define PC_RTC_BASE	0x70
#define PC_RTC_GSI	8
#define PC_FWCFG_BASE	0x510
#define PC_TESTDEV_BASE	0xe0	/* 0xe0 scratch, 0xe4 flush page, 0xe8 bytes */
#define PC_IRQDEV_BASE	0x2000

struct pc_devs {
	struct vm *vm;
	struct spinlock lock;
	struct acpi_pm pm;
	struct vpit pit;
	struct vrtc rtc;
	struct fwcfg fwcfg;
	uint32_t scratch;	/* pc-testdev's register */
	bool sci, rtc_irq;	/* the levels last sent to vm_irq_line */
	bool sleep_logged;
};

/* Under pc->lock. */
static void pc_sci_sync(struct pc_devs *pc)
{
	bool level = acpi_pm_sci(&pc->pm);

	if (level != pc->sci) {
		pc->sci = level;
		vm_irq_line(pc->vm, PC_SCI_GSI, level);
	}
}

/* Without the lock: the VM stops or restarts itself, nothing else. */
static void pc_act(struct pc_devs *pc, enum acpi_pm_action a, uint8_t slp_typ,
		   const char *why)
{
	switch (a) {
	case ACPI_PM_POWEROFF:
		vm_guest_stopped(pc->vm, VM_STOPPED, "powered off by the guest (ACPI S5)");
		break;
	case ACPI_PM_RESET:
		vm_guest_reset(pc->vm, why);
		break;
	case ACPI_PM_SLEEP:
		if (!pc->sleep_logged) {
			pc->sleep_logged = true;
			pr_info("vm %s: ignored ACPI sleep request SLP_TYP %u (only S5 is supported)",
				pc->vm->name, slp_typ);
		}
		break;
	default:
		break;
	}
}

static int pc_pm_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct pc_devs *pc = ctx;
	uint64_t f = spin_lock_irqsave(&pc->lock);

	*val = acpi_pm_read(&pc->pm, (unsigned)off, size);
	spin_unlock_irqrestore(&pc->lock, f);
	return 0;
}

static int pc_pm_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct pc_devs *pc = ctx;
	uint64_t f = spin_lock_irqsave(&pc->lock);
	enum acpi_pm_action a = acpi_pm_write(&pc->pm, (unsigned)off, size, (uint32_t)val);
	uint8_t typ = pc->pm.slp_typ;

	pc_sci_sync(pc);
	spin_unlock_irqrestore(&pc->lock, f);
	pc_act(pc, a, typ, NULL);
	return 0;
}

/*
 * The PM timer needs no state: the guest's time base read at its rate.
 * Linux's clocksource watchdog checks the TSC against it; without one it
 * uses jiffies, which lag whenever the guest is starved of host CPU (a
 * loaded lab), and then wrongly gives up the TSC.  It counts the guest's
 * own TSC, not the host's clock: after a migration the guest's TSC goes
 * on from the pause on another host's counter, and a PM timer that
 * jumped by the downtime (or by the two hosts' uptimes) would make the
 * watchdog call the TSC unstable.
 */
static int pc_pmtmr_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct pc_devs *pc = ctx;

	(void)off, (void)size;
	*val = acpi_pm_timer(vm_guest_ns(pc->vm));
	return 0;
}

static int pc_pmtmr_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	(void)ctx, (void)off, (void)size, (void)val;
	return 0;	/* read-only */
}

static int pc_rst_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct pc_devs *pc = ctx;
	uint64_t f = spin_lock_irqsave(&pc->lock);

	(void)off, (void)size;
	*val = acpi_pm_rst_read(&pc->pm);
	spin_unlock_irqrestore(&pc->lock, f);
	return 0;
}

static int pc_rst_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct pc_devs *pc = ctx;
	uint64_t f = spin_lock_irqsave(&pc->lock);
	enum acpi_pm_action a = acpi_pm_rst_write(&pc->pm, (uint8_t)val);

	(void)off, (void)size;
	spin_unlock_irqrestore(&pc->lock, f);
	pc_act(pc, a, 0, (val & ACPI_RST_SYS) ? "hard reset through port 0xcf9" :
		"soft reset through port 0xcf9");
	return 0;
}

/* ---- 0x60-0x64: keyboard controller and port B ---- */

static int pc_kbc_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct pc_devs *pc = ctx;
	uint64_t f;

	(void)size;
	switch (off) {
	case 0: *val = 0; break;		/* no output byte */
	case 1:
		f = spin_lock_irqsave(&pc->lock);
		*val = vpit_port61_read(&pc->pit, vm_time_ns());
		spin_unlock_irqrestore(&pc->lock, f);
		break;
	case 4: *val = PC_KBC_STATUS; break;
	default: *val = 0xff; break;
	}
	return 0;
}

static int pc_kbc_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct pc_devs *pc = ctx;

	(void)size;
	if (off == 1) {
		uint64_t f = spin_lock_irqsave(&pc->lock);

		vpit_port61_write(&pc->pit, (uint8_t)val, vm_time_ns());
		spin_unlock_irqrestore(&pc->lock, f);
		return 0;
	}
	/* Commands 0xf0-0xff pulse output-port bits 3:0 low for those bits
	 * clear in the command; bit 0 is the CPU reset line (IBM PC AT
	 * Technical Reference, 8042 commands).  0xfe pulses only it. */
	if (off == 4 && (val & 0xf1) == 0xf0)
		pc_act(pc, ACPI_PM_RESET, 0, "keyboard controller command 0xfe");
	return 0;
}

/* ---- 0x40-0x43: PIT ---- */

static int pc_pit_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct pc_devs *pc = ctx;
	uint64_t f = spin_lock_irqsave(&pc->lock);

	(void)size;
	*val = vpit_read(&pc->pit, (unsigned)off, vm_time_ns());
	spin_unlock_irqrestore(&pc->lock, f);
	return 0;
}

static int pc_pit_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct pc_devs *pc = ctx;
	uint64_t f = spin_lock_irqsave(&pc->lock);

	(void)size;
	vpit_write(&pc->pit, (unsigned)off, (uint8_t)val, vm_time_ns());
	spin_unlock_irqrestore(&pc->lock, f);
	return 0;
}

/* ---- 0x70-0x71: RTC and CMOS ---- */

/* Under pc->lock. */
static void pc_rtc_sync(struct pc_devs *pc)
{
	bool level = vrtc_irq(&pc->rtc);

	if (level != pc->rtc_irq) {
		pc->rtc_irq = level;
		vm_irq_line(pc->vm, PC_RTC_GSI, level);
	}
}

static int pc_rtc_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct pc_devs *pc = ctx;
	uint64_t f = spin_lock_irqsave(&pc->lock);

	(void)size;
	*val = vrtc_read(&pc->rtc, (unsigned)off, vm_time_ns());
	pc_rtc_sync(pc);
	spin_unlock_irqrestore(&pc->lock, f);
	return 0;
}

static int pc_rtc_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct pc_devs *pc = ctx;
	uint64_t f = spin_lock_irqsave(&pc->lock);

	(void)size;
	vrtc_write(&pc->rtc, (unsigned)off, (uint8_t)val, vm_time_ns());
	pc_rtc_sync(pc);
	spin_unlock_irqrestore(&pc->lock, f);
	return 0;
}

/* ---- fw_cfg and pc-testdev ---- */

static int pc_fwcfg_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct pc_devs *pc = ctx;
	uint64_t f = spin_lock_irqsave(&pc->lock);

	(void)size;
	*val = off == 1 ? fwcfg_read(&pc->fwcfg) : 0;
	spin_unlock_irqrestore(&pc->lock, f);
	return 0;
}

static int pc_fwcfg_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct pc_devs *pc = ctx;
	uint64_t f = spin_lock_irqsave(&pc->lock);

	/* The selector is 16 bits wide; the data port takes no writes. */
	if (off == 0 && size == 2)
		fwcfg_select(&pc->fwcfg, (uint16_t)val);
	spin_unlock_irqrestore(&pc->lock, f);
	return 0;
}

/* Byte i of the 12-port window: the scratch register at 0-3 and 8-11. */
static uint8_t *pc_scratch_byte(struct pc_devs *pc, uint64_t i)
{
	if (i < 4)
		return (uint8_t *)&pc->scratch + i;
	if (i >= 8 && i < 12)
		return (uint8_t *)&pc->scratch + (i - 8);
	return NULL;
}

static int pc_testdev_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct pc_devs *pc = ctx;
	uint64_t f = spin_lock_irqsave(&pc->lock);

	*val = 0;
	for (int i = 0; i < size; i++) {
		uint8_t *b = pc_scratch_byte(pc, off + (uint64_t)i);

		*val |= (uint64_t)(b ? *b : 0) << (8 * i);
	}
	spin_unlock_irqrestore(&pc->lock, f);
	return 0;
}

static int pc_testdev_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct pc_devs *pc = ctx;
	uint64_t f = spin_lock_irqsave(&pc->lock);

	for (int i = 0; i < size; i++) {
		uint8_t *b = pc_scratch_byte(pc, off + (uint64_t)i);

		if (b)
			*b = (uint8_t)(val >> (8 * i));
	}
	spin_unlock_irqrestore(&pc->lock, f);
	return 0;
}

static int pc_irqdev_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	(void)ctx, (void)off, (void)size;
	*val = 0;
	return 0;
}

/* A byte at 0x2000 + n sets this VM's GSI n to (value != 0). */
static int pc_irqdev_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct pc_devs *pc = ctx;

	if (size == 1)
		vm_irq_line(pc->vm, (unsigned)off, val & 0xff);
	return 0;
}

int pc_create(struct vm *vm, struct pc_devs **out)
{
	struct pc_devs *pc = calloc(1, sizeof(*pc));
	int rc;

	if (!pc)
		return -ENOMEM;
	pc->vm = vm;
	acpi_pm_reset(&pc->pm, PC_S5_TYP);
	vpit_reset(&pc->pit);
	vrtc_reset(&pc->rtc, wall_clock_ns(), vm_time_ns());
	fwcfg_reset(&pc->fwcfg, vm->mem_size, (uint16_t)vm->nvcpus);
	*out = pc;
	rc = bus_add(&vm->pio, &(struct bus_dev){ "acpi-pm", PC_PM_BASE, ACPI_PM_WINDOW,
						  pc_pm_read, pc_pm_write, pc });
	if (!rc)
		rc = bus_add(&vm->pio, &(struct bus_dev){ "pm-timer", PC_PMTMR_PORT, 4,
							  pc_pmtmr_read, pc_pmtmr_write, pc });
	if (!rc)
		rc = bus_add(&vm->pio, &(struct bus_dev){ "reset", PC_RST_PORT, 1,
							  pc_rst_read, pc_rst_write, pc });
	if (!rc)
		rc = bus_add(&vm->pio, &(struct bus_dev){ "kbc", PC_KBC_BASE, 5,
							  pc_kbc_read, pc_kbc_write, pc });
	if (!rc)
		rc = bus_add(&vm->pio, &(struct bus_dev){ "pit", PC_PIT_BASE, 4,
							  pc_pit_read, pc_pit_write, pc });
	if (!rc)
		rc = bus_add(&vm->pio, &(struct bus_dev){ "rtc", PC_RTC_BASE, 2,
							  pc_rtc_read, pc_rtc_write, pc });
	if (!rc)
		rc = bus_add(&vm->pio, &(struct bus_dev){ "fw_cfg", PC_FWCFG_BASE, 2,
							  pc_fwcfg_read, pc_fwcfg_write, pc });
	if (!rc)
		rc = bus_add(&vm->pio, &(struct bus_dev){ "pc-testdev", PC_TESTDEV_BASE, 12,
							  pc_testdev_read, pc_testdev_write,
							  pc });
	if (!rc)
		rc = bus_add(&vm->pio, &(struct bus_dev){ "pc-testdev-irq", PC_IRQDEV_BASE,
							  VM_NR_GSI, pc_irqdev_read,
							  pc_irqdev_write, pc });
	return rc;
}

void pc_destroy(struct pc_devs *pc)
{
	free(pc);
}

/* ---- timers ---- */

static uint64_t pc_min_deadline(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

uint64_t pc_timer_deadline(struct pc_devs *pc, uint64_t now_ns)
{
	uint64_t f = spin_lock_irqsave(&pc->lock);
	uint64_t d = pc_min_deadline(vpit_irq_deadline(&pc->pit),
				     vrtc_deadline(&pc->rtc, now_ns));

	spin_unlock_irqrestore(&pc->lock, f);
	return d;
}

/* IRQ 0 is an ISA edge: one pulse per due period (coalesced by vpit). */
void pc_timer_run(struct pc_devs *pc, uint64_t now_ns)
{
	uint64_t f = spin_lock_irqsave(&pc->lock);
	bool tick = vpit_irq_run(&pc->pit, now_ns);

	vrtc_run(&pc->rtc, now_ns);
	pc_rtc_sync(pc);
	spin_unlock_irqrestore(&pc->lock, f);
	if (tick) {
		vm_irq_line(pc->vm, PC_PIT_GSI, true);
		vm_irq_line(pc->vm, PC_PIT_GSI, false);
	}
}

/* ---- migration ---- */

int pc_save(struct pc_devs *pc, int (*emit)(void *ctx, const char *name, uint32_t version,
					    const void *blob, uint32_t len), void *ctx)
{
	uint8_t pm[ACPI_PM_STATE_LEN], pit[VPIT_STATE_LEN], rtc[VRTC_STATE_LEN];
	uint8_t fw[FWCFG_STATE_LEN], scratch[4];
	uint64_t f = spin_lock_irqsave(&pc->lock);
	uint64_t now = vm_time_ns();
	int rc;

	acpi_pm_save(&pc->pm, pm);
	vpit_save(&pc->pit, now, pit);
	vrtc_save(&pc->rtc, now, rtc);
	fwcfg_save(&pc->fwcfg, fw);
	st_le32(scratch, pc->scratch);
	spin_unlock_irqrestore(&pc->lock, f);
	rc = emit(ctx, "acpi-pm", ACPI_PM_STATE_V, pm, sizeof(pm));
	if (!rc)
		rc = emit(ctx, "pit", VPIT_STATE_V, pit, sizeof(pit));
	if (!rc)
		rc = emit(ctx, "rtc", VRTC_STATE_V, rtc, sizeof(rtc));
	if (!rc)
		rc = emit(ctx, "fw_cfg", FWCFG_STATE_V, fw, sizeof(fw));
	if (!rc)
		rc = emit(ctx, "pc-testdev", 1, scratch, sizeof(scratch));
	return rc;
}

int pc_load(struct pc_devs *pc, const char *name, uint32_t version, const void *blob,
	    uint32_t len)
{
	uint64_t f;
	int rc = -ENOENT;

	f = spin_lock_irqsave(&pc->lock);
	if (!strcmp(name, "acpi-pm") && version == ACPI_PM_STATE_V) {
		rc = acpi_pm_load(&pc->pm, blob, len);
		if (!rc)
			pc_sci_sync(pc);
	} else if (!strcmp(name, "pit") && version == VPIT_STATE_V) {
		rc = vpit_load(&pc->pit, vm_time_ns(), blob, len);
	} else if (!strcmp(name, "rtc") && version == VRTC_STATE_V) {
		rc = vrtc_load(&pc->rtc, vm_time_ns(), blob, len);
		if (!rc)
			pc_rtc_sync(pc);
	} else if (!strcmp(name, "fw_cfg") && version == FWCFG_STATE_V) {
		rc = fwcfg_load(&pc->fwcfg, blob, len);
	} else if (!strcmp(name, "pc-testdev") && version == 1) {
		rc = len == 4 ? 0 : -EINVAL;
		if (!rc)
			pc->scratch = ld_le32(blob);
	}
	spin_unlock_irqrestore(&pc->lock, f);
	return rc;
}
