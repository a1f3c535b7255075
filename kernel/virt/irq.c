/*
 * Guest interrupt routing and delivery: the glue around the pure models
 * (kernel/devices/model/vlapic.c, vioapic.c).
 *
 *   device line --vm_irq_line--> IOAPIC --apic_msg--> LAPIC(s) --> vCPU
 *            (GSI 0-15) ------> 8259 pair --INTR--> vCPU 0's LINT0 (ExtINT)
 *   LAPIC ICR (IPI) ------------------apic_msg------> LAPIC(s)
 *
 * The 8259 pair reaches vCPU 0 only, and only while its LAPIC is disabled
 * or LINT0 is programmed ExtINT, unmasked (SDM Vol. 3A 11.5.1: the
 * virtual-wire mode an OS leaves behind before it switches to the IOAPIC).
 * Device timers (the PIT, the RTC) run on vCPU 0's loop too.
 *
 * Locking: vm->irqchip->lock guards the IOAPIC and the 8259s;
 * vcpu->lapic_lock guards
 * that vCPU's LAPIC.  The order is chip, then LAPIC: the IOAPIC delivers
 * while its lock is held, and a LAPIC's effects (IPIs, EOIs to the IOAPIC)
 * are carried out only after its lock is dropped.
 *
 * A vCPU looks at its LAPIC before every entry (irq_before_entry): it
 * runs the LAPIC timer, injects the highest deliverable vector when the
 * guest can take it, and otherwise asks the vendor for an exit at the
 * interrupt window.  Another CPU that makes an interrupt pending posts
 * VCPU_REQ_EVENT and kicks the vCPU's host CPU with an NMI (vcpu.c says
 * why an NMI).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/devices/devices.h"
#include "kernel/devices/model/irqrec.h"
#include "kernel/devices/model/vioapic.h"
#include "kernel/devices/model/vpic.h"
#include "kernel/devices/model/vlapic.h"
#include "kernel/virt/irq.h"
#include "kernel/virt/vm.h"

#define IOAPIC_GPA	0xfec00000ull
#define IOAPIC_LEN	0x1000
#define LAPIC_LEN	0x1000
/* A guest timer further out than this is re-checked then: bounds the
 * arithmetic, costs one exit an hour. */
#define TIMER_MAX_US	3600000000ull

struct irqchip {
	struct spinlock lock;
	struct vioapic ioapic;
	struct vpic pic;
	uint32_t lines;			/* GSI levels, as the devices set them */
	uint64_t msgs;			/* messages delivered */
};

static uint64_t guest_tsc(const struct vcpu *v)
{
	return rdtsc() + v->st.tsc_offset;
}

static struct vcpu *current_vcpu(struct vm *vm)
{
	struct vcpu *v = this_cpu()->vcpu;

	return v && v->vm == vm ? v : NULL;
}

/* Make v look at its interrupt state: post the request, and kick it out
 * of the guest or out of HLT unless it runs here or a kick is on its way. */
static void kick(struct vcpu *v)
{
	uint32_t old = __atomic_fetch_or(&v->requests, VCPU_REQ_EVENT, __ATOMIC_ACQ_REL);
	struct percpu *p;

	if ((old & VCPU_REQ_EVENT) || !v->running || this_cpu()->vcpu == v)
		return;
	p = cpu_table[v->host_cpu];
	if (p && p != this_cpu())
		lapic_send_nmi(p->apic_id);
}

static void accept_one(struct vcpu *v, const struct apic_msg *m)
{
	uint64_t f = spin_lock_irqsave(&v->lapic_lock);
	int acc = vlapic_accept(v->lapic, m);

	spin_unlock_irqrestore(&v->lapic_lock, f);
	switch (acc) {
	case VLAPIC_ACC_NONE:
		break;
	case VLAPIC_ACC_NMI:
		v->nmi_pending = true;
		break;
	case VLAPIC_ACC_INIT:
		v->init_pending = true;
		break;
	case VLAPIC_ACC_SIPI:
		/* Only a vCPU waiting for SIPI acts on it (SDM 9.4.4.1); the
		 * vCPU's loop decides, after any INIT ahead of it. */
		v->sipi_vector = m->vector;
		__atomic_store_n(&v->sipi_pending, true, __ATOMIC_RELEASE);
		break;
	default:
		return;		/* ExtINT without a PIC, SMI, or dropped */
	}
	kick(v);
}

static bool matches(struct vcpu *v, const struct apic_msg *m)
{
	uint64_t f = spin_lock_irqsave(&v->lapic_lock);
	bool hit = vlapic_match(v->lapic, m);

	spin_unlock_irqrestore(&v->lapic_lock, f);
	return hit;
}

/* Lowest priority (SDM 11.6.2.4): the matching LAPIC with the lowest
 * processor priority takes it; ties go to the lowest vCPU index. */
static struct vcpu *lowest_priority(struct vm *vm, const struct apic_msg *m)
{
	struct vcpu *best = NULL;
	uint8_t best_ppr = 0xff;
	int i;

	for (i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		uint64_t f;
		uint8_t ppr;

		if (!v->lapic || !matches(v, m))
			continue;
		f = spin_lock_irqsave(&v->lapic_lock);
		ppr = vlapic_ppr(v->lapic);
		spin_unlock_irqrestore(&v->lapic_lock, f);
		if (!best || ppr < best_ppr) {
			best = v;
			best_ppr = ppr;
		}
	}
	return best;
}

void vm_irq_msg(struct vm *vm, const struct apic_msg *m)
{
	struct irqchip *chip = vm->irqchip;
	int i;

	if (chip)
		__atomic_fetch_add(&chip->msgs, 1, __ATOMIC_RELAXED);
	if (m->dm == APIC_DM_LOWPRI && m->shorthand == APIC_SH_NONE) {
		struct vcpu *v = lowest_priority(vm, m);

		if (v)
			accept_one(v, m);
		return;
	}
	for (i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->lapic && matches(v, m))
			accept_one(v, m);
	}
}

/* The 8259's INTR went (or stays) high: vCPU 0 must look.  Chip lock held. */
static void pic_kick(struct vm *vm, struct irqchip *chip)
{
	if (vpic_output(&chip->pic) && vm->nvcpus)
		kick(&vm->vcpus[0]);
}

static void ioapic_send(void *ctx, const struct apic_msg *m)
{
	vm_irq_msg(ctx, m);
}

void vm_irq_line(struct vm *vm, unsigned gsi, bool level)
{
	struct irqchip *chip = vm->irqchip;
	uint64_t f;

	if (!chip || gsi >= VM_NR_GSI)
		return;
	f = spin_lock_irqsave(&chip->lock);
	if (level)
		chip->lines |= 1u << gsi;
	else
		chip->lines &= ~(1u << gsi);
	vioapic_set_line(&chip->ioapic, gsi, level, ioapic_send, vm);
	/* ISA IRQ n is GSI n, but for the timer: IRQ 0 is GSI 2 (the MADT's
	 * interrupt source override); the 8259's IR2 is the cascade. */
	if (gsi < 16 && gsi != 0)
		vpic_set_irq(&chip->pic, gsi == 2 ? 0 : gsi, level);
	pic_kick(vm, chip);
	spin_unlock_irqrestore(&chip->lock, f);
}

/* Split so nothing overflows for TSC rates below 18 GHz, without a
 * 128-bit division (no libgcc in the kernel). */
static uint64_t tsc_to_ns(uint64_t t)
{
	uint64_t hz = tsc_hz();

	return hz ? t / hz * 1000000000u + t % hz * 1000000000u / hz : time_us() * 1000;
}

uint64_t vm_time_ns(void)
{
	return tsc_to_ns(rdtsc());
}

uint64_t vm_guest_ns(struct vm *vm)
{
	return tsc_to_ns(vm->nvcpus ? rdtsc() + vm->vcpus[0].st.tsc_offset : rdtsc());
}

/* What a LAPIC write asked for, done with no LAPIC lock held. */
static void apply_effects(struct vcpu *v, const struct vlapic_effects *fx)
{
	struct irqchip *chip = v->vm->irqchip;

	if (fx->eoi_level && chip) {
		uint64_t f = spin_lock_irqsave(&chip->lock);

		vioapic_eoi(&chip->ioapic, fx->eoi_vector, ioapic_send, v->vm);
		spin_unlock_irqrestore(&chip->lock, f);
	}
	if (fx->ipi)
		vm_irq_msg(v->vm, &fx->ipi_msg);
	if (fx->timer_changed)
		v->host_timer_us = 0;	/* re-arm before the next entry */
}

/* ---- the LAPIC page and the IOAPIC on the MMIO bus ---- */

static int lapic_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct vcpu *v = current_vcpu(ctx);
	uint32_t r = 0;
	uint64_t f;

	*val = 0;
	if (!v || size != 4 || (off & 3))
		return 0;	/* odd shapes read as nothing (SDM 11.4.1) */
	f = spin_lock_irqsave(&v->lapic_lock);
	if (vlapic_mmio_read(v->lapic, (uint32_t)off, &r, guest_tsc(v)) == 0)
		*val = r;
	spin_unlock_irqrestore(&v->lapic_lock, f);
	return 0;
}

static int lapic_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct vcpu *v = current_vcpu(ctx);
	struct vlapic_effects fx;
	uint64_t f;
	int rc;

	if (!v || size != 4 || (off & 3))
		return 0;
	memset(&fx, 0, sizeof(fx));
	f = spin_lock_irqsave(&v->lapic_lock);
	rc = vlapic_mmio_write(v->lapic, (uint32_t)off, (uint32_t)val, guest_tsc(v), &fx);
	spin_unlock_irqrestore(&v->lapic_lock, f);
	if (rc == 0)
		apply_effects(v, &fx);
	return 0;
}

static int ioapic_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct irqchip *chip = ((struct vm *)ctx)->irqchip;
	uint32_t r = 0;
	uint64_t f = spin_lock_irqsave(&chip->lock);

	if (vioapic_mmio_read(&chip->ioapic, (uint32_t)off, size, &r) < 0)
		r = 0;
	spin_unlock_irqrestore(&chip->lock, f);
	*val = r;
	return 0;
}

static int ioapic_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct irqchip *chip = ((struct vm *)ctx)->irqchip;
	uint64_t f = spin_lock_irqsave(&chip->lock);

	vioapic_mmio_write(&chip->ioapic, (uint32_t)off, size, (uint32_t)val, ioapic_send, ctx);
	spin_unlock_irqrestore(&chip->lock, f);
	return 0;
}

/* The 8259 pair and its ELCR on the port bus: byte registers, so a
 * wider access touches its first port only. */
static int pic_io(struct vm *vm, uint16_t port, bool write, uint64_t *val)
{
	struct irqchip *chip = vm->irqchip;
	uint64_t f = spin_lock_irqsave(&chip->lock);

	if (write) {
		vpic_port_write(&chip->pic, port, (uint8_t)*val);
		pic_kick(vm, chip);
	} else {
		*val = vpic_port_read(&chip->pic, port);
	}
	spin_unlock_irqrestore(&chip->lock, f);
	return 0;
}

static int pic1_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	(void)size;
	return pic_io(ctx, (uint16_t)(0x20 + off), false, val);
}

static int pic1_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	(void)size;
	return pic_io(ctx, (uint16_t)(0x20 + off), true, &val);
}

static int pic2_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	(void)size;
	return pic_io(ctx, (uint16_t)(0xa0 + off), false, val);
}

static int pic2_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	(void)size;
	return pic_io(ctx, (uint16_t)(0xa0 + off), true, &val);
}

static int elcr_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	(void)size;
	return pic_io(ctx, (uint16_t)(0x4d0 + off), false, val);
}

static int elcr_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	(void)size;
	return pic_io(ctx, (uint16_t)(0x4d0 + off), true, &val);
}

int irq_msr_read(struct vcpu *v, uint32_t msr, uint64_t *val)
{
	uint64_t f;
	int rc;

	if (!v->lapic)
		return -ENOENT;
	f = spin_lock_irqsave(&v->lapic_lock);
	rc = vlapic_msr_read(v->lapic, msr, val, guest_tsc(v));
	spin_unlock_irqrestore(&v->lapic_lock, f);
	return rc;
}

int irq_msr_write(struct vcpu *v, uint32_t msr, uint64_t val)
{
	struct vlapic_effects fx;
	uint64_t f;
	int rc;

	if (!v->lapic)
		return -ENOENT;
	memset(&fx, 0, sizeof(fx));
	f = spin_lock_irqsave(&v->lapic_lock);
	rc = vlapic_msr_write(v->lapic, msr, val, guest_tsc(v), &fx);
	spin_unlock_irqrestore(&v->lapic_lock, f);
	if (rc == 0)
		apply_effects(v, &fx);
	return rc;
}

/* ---- per-VM and per-vCPU set-up ---- */

int irq_vm_init(struct vm *vm)
{
	const struct bus_dev lapic = { "lapic", VLAPIC_BASE_DEFAULT, LAPIC_LEN,
				       lapic_read, lapic_write, vm };
	const struct bus_dev ioapic = { "ioapic", IOAPIC_GPA, IOAPIC_LEN,
					ioapic_read, ioapic_write, vm };
	const struct bus_dev pic[] = {
		{ "pic-master", 0x20, 2, pic1_read, pic1_write, vm },
		{ "pic-slave", 0xa0, 2, pic2_read, pic2_write, vm },
		{ "elcr", 0x4d0, 2, elcr_read, elcr_write, vm },
	};
	struct irqchip *chip = calloc(1, sizeof(*chip));
	int i;

	if (!chip)
		return -ENOMEM;
	chip->lock = (struct spinlock)SPINLOCK_INIT;
	vioapic_reset(&chip->ioapic, 0);
	vpic_reset(&chip->pic);
	vm->irqchip = chip;
	for (i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		v->lapic = calloc(1, sizeof(*v->lapic));
		if (!v->lapic)
			return -ENOMEM;
		v->lapic_lock = (struct spinlock)SPINLOCK_INIT;
		vlapic_reset(v->lapic, (uint32_t)i, i == 0);
		v->mp_state = i == 0 ? VCPU_MP_RUNNABLE : VCPU_MP_WAIT_SIPI;
	}
	if (bus_add(&vm->mmio, &lapic) < 0 || bus_add(&vm->mmio, &ioapic) < 0)
		return -ENOSPC;
	for (i = 0; i < (int)ARRAY_SIZE(pic); i++)
		if (bus_add(&vm->pio, &pic[i]) < 0)
			return -ENOSPC;
	return 0;
}

void irq_vm_free(struct vm *vm)
{
	int i;

	for (i = 0; i < vm->nvcpus; i++) {
		free(vm->vcpus[i].lapic);
		vm->vcpus[i].lapic = NULL;
	}
	free(vm->irqchip);
	vm->irqchip = NULL;
}

/* ---- migration records (formats in model/irqrec.h) ---- */

/* The VM is paused: every vCPU is parked, only devices still post.
 * host_tsc: the host's TSC at the pause, the instant the guest's clock
 * stops (its LAPIC timers keep their distance from it). */
int irq_state_save(struct vm *vm, uint64_t host_tsc, irq_emit_fn emit, void *ctx)
{
	struct irqchip *chip = vm->irqchip;
	static struct irqrec_chip c;
	static struct irqrec_lapic l;
	uint8_t b[IRQREC_CHIP_LEN > IRQREC_LAPIC_LEN ? IRQREC_CHIP_LEN : IRQREC_LAPIC_LEN];
	char name[16];
	uint64_t f;
	int rc, i;

	if (!chip)
		return 0;
	f = spin_lock_irqsave(&chip->lock);
	c = (struct irqrec_chip){ chip->lines, chip->ioapic, chip->pic };
	spin_unlock_irqrestore(&chip->lock, f);
	rc = irqrec_chip_encode(&c, b, sizeof(b));
	if (!rc)
		rc = emit(ctx, "irqchip", IRQREC_CHIP_V, b, IRQREC_CHIP_LEN);
	for (i = 0; i < vm->nvcpus && !rc; i++) {
		struct vcpu *v = &vm->vcpus[i];

		f = spin_lock_irqsave(&v->lapic_lock);
		l.lapic = *v->lapic;
		spin_unlock_irqrestore(&v->lapic_lock, f);
		l.mp_state = v->mp_state == VCPU_MP_WAIT_SIPI ? IRQREC_MP_WAIT_SIPI :
			     IRQREC_MP_RUNNABLE;
		l.flags = (v->init_pending ? IRQREC_F_INIT : 0) |
			  (v->sipi_pending ? IRQREC_F_SIPI : 0) |
			  (v->nmi_pending ? IRQREC_F_NMI : 0) |
			  (v->nmi_masked ? IRQREC_F_NMI_MASKED : 0) |
			  (v->halted && l.mp_state == IRQREC_MP_RUNNABLE ? IRQREC_F_HALTED : 0);
		l.sipi_vector = v->sipi_vector;
		rc = irqrec_lapic_encode(&l, host_tsc + v->st.tsc_offset, b, sizeof(b));
		snprintf(name, sizeof(name), "lapic.%d", i);
		if (!rc)
			rc = emit(ctx, name, IRQREC_LAPIC_V, b, IRQREC_LAPIC_LEN);
	}
	return rc < 0 ? rc : 0;
}

static int irqchip_load(struct vm *vm, const uint8_t *b, uint32_t len)
{
	struct irqchip *chip = vm->irqchip;
	static struct irqrec_chip c;
	uint64_t f;

	if (irqrec_chip_decode(b, len, &c) < 0)
		return -EINVAL;
	f = spin_lock_irqsave(&chip->lock);
	chip->lines = c.lines;
	chip->ioapic = c.ioapic;
	chip->pic = c.pic;
	spin_unlock_irqrestore(&chip->lock, f);
	return 0;
}

/* now: the guest's TSC at the source's pause (the vCPU record's), which
 * is where the destination's guest clock continues. */
static int lapic_load(struct vcpu *v, const uint8_t *b, uint32_t len, uint64_t now)
{
	static struct irqrec_lapic r;
	uint64_t f;

	if (irqrec_lapic_decode(b, len, now, (uint32_t)v->id, &r) < 0)
		return -EINVAL;
	f = spin_lock_irqsave(&v->lapic_lock);
	*v->lapic = r.lapic;
	spin_unlock_irqrestore(&v->lapic_lock, f);
	v->mp_state = r.mp_state == IRQREC_MP_WAIT_SIPI ? VCPU_MP_WAIT_SIPI : VCPU_MP_RUNNABLE;
	v->init_pending = r.flags & IRQREC_F_INIT;
	v->sipi_pending = r.flags & IRQREC_F_SIPI;
	v->nmi_pending = r.flags & IRQREC_F_NMI;
	v->nmi_masked = r.flags & IRQREC_F_NMI_MASKED;
	v->halted = r.flags & IRQREC_F_HALTED;
	v->sipi_vector = r.sipi_vector;
	v->host_timer_us = 0;
	return 0;
}

int irq_state_load(struct vm *vm, const char *name, uint32_t version, const void *blob,
		   uint32_t len)
{
	unsigned idx;
	char tail;

	if (!vm->irqchip)
		return -ENOENT;
	if (!strcmp(name, "irqchip") && version == IRQREC_CHIP_V)
		return irqchip_load(vm, blob, len);
	if (sscanf(name, "lapic.%u%c", &idx, &tail) == 1 && version == IRQREC_LAPIC_V) {
		if (idx >= (unsigned)vm->nvcpus)
			return -EINVAL;
		return lapic_load(&vm->vcpus[idx], blob, len, vm->vcpus[0].mig_tsc);
	}
	return -ENOENT;
}

/* INIT (SDM 9.1.1, 11.4.7.3): the LAPIC keeps its ID and base; the vCPU
 * waits for a start-up IPI. */
void irq_init_signal(struct vcpu *v)
{
	uint64_t f = spin_lock_irqsave(&v->lapic_lock);

	vlapic_init_signal(v->lapic);
	spin_unlock_irqrestore(&v->lapic_lock, f);
	v->nmi_pending = false;
	v->nmi_masked = false;
	v->pending.valid = false;
}

/* ---- delivery to the guest ---- */

static bool interruptible(const struct vcpu *v)
{
	return (v->st.rflags & RFLAGS_IF) && !v->st.int_shadow && !v->pending.valid;
}

/* vCPU 0 takes the 8259's INTR through LINT0 in ExtINT mode, or
 * directly while its LAPIC is disabled.  Chip lock held. */
static bool pic_routed(struct vcpu *v)
{
	uint64_t f = spin_lock_irqsave(&v->lapic_lock);
	uint32_t lvt = v->lapic->lvt[VLAPIC_LVT_L0];
	bool on = !vlapic_hw_enabled(v->lapic) ||
		  (!(lvt & VLAPIC_LVT_MASKED) && ((lvt >> 8) & 7) == APIC_DM_EXTINT);

	spin_unlock_irqrestore(&v->lapic_lock, f);
	return on;
}

/* An 8259 request for vCPU 0: -1 none, -2 pending but not takeable now,
 * else the vector, acknowledged (INTA). */
static int pic_take(struct vcpu *v, bool take)
{
	struct irqchip *chip = v->vm->irqchip;
	int vec = -1;
	uint64_t f;

	if (v->id != 0 || !chip)
		return -1;
	f = spin_lock_irqsave(&chip->lock);
	if (vpic_output(&chip->pic) && pic_routed(v))
		vec = take ? vpic_ack(&chip->pic) : -2;
	spin_unlock_irqrestore(&chip->lock, f);
	return vec;
}

/* vCPU 0 runs the device timers (PIT, RTC); the ns deadline still ahead,
 * or 0. */
static uint64_t run_device_timers(struct vcpu *v)
{
	uint64_t now, dl;

	if (v->id != 0)
		return 0;
	now = vm_time_ns();
	dl = devices_timer_deadline(v->vm, now);
	if (dl && dl <= now) {
		devices_timer_run(v->vm, now);
		dl = devices_timer_deadline(v->vm, now);
	}
	return dl > now ? dl : 0;
}

/* Run the LAPIC timer up to now; the deadline still ahead, or 0. */
static uint64_t run_timer(struct vcpu *v, uint64_t now)
{
	uint64_t f = spin_lock_irqsave(&v->lapic_lock);
	uint64_t dl = vlapic_timer_deadline(v->lapic);

	if (dl && dl <= now) {
		vlapic_timer_expire(v->lapic, now);
		dl = vlapic_timer_deadline(v->lapic);
	}
	spin_unlock_irqrestore(&v->lapic_lock, f);
	return dl;
}

/* Arm this CPU's LAPIC timer so the vCPU gets back here by the guest
 * timer's deadline (guest TSC dl; 0: none) and the device timers' (dev_ns,
 * vm_time_ns; 0: none).  Returns the time_us() of the earlier, 0 for none.
 * While migration throttles the vCPU, its 1 kHz tick does the waking. */
static uint64_t arm_host_timer(struct vcpu *v, uint64_t dl, uint64_t now, uint64_t dev_ns)
{
	uint64_t hz = tsc_hz(), t = time_us(), delta, due = 0;

	if (dl && hz) {
		delta = dl > now ? dl - now : 0;
		/* Rounded up: waking before the guest's deadline only loops. */
		delta = delta / hz * 1000000u + (delta % hz * 1000000u + hz - 1) / hz;
		due = t + (delta < TIMER_MAX_US ? delta : TIMER_MAX_US);
	}
	if (dev_ns) {
		uint64_t n = vm_time_ns(), d = dev_ns > n ? (dev_ns - n + 999) / 1000 : 0;

		d = t + (d < TIMER_MAX_US ? d : TIMER_MAX_US);
		due = due && due < d ? due : d;
	}
	if (!due)
		return 0;
	if (v->tick_on)
		return due;
	/* An earlier one still counting re-checks then.  Its count, not the
	 * time it was armed for, says whether it fired: the host LAPIC timer
	 * and the TSC need not agree to the microsecond (under QEMU they do
	 * not), and a timer that fired "early" must not be trusted to come. */
	if (v->host_timer_us == due && lapic_timer_running())
		return due;
	lapic_timer_oneshot(VEC_TIMER, due > t ? due - t : 1);
	v->host_timer_us = due;
	return due;
}

/*
 * Before every entry: the timer, an NMI, then the highest deliverable
 * vector if the guest can take it now (RFLAGS.IF, no STI/MOV SS shadow,
 * no event already being injected: SDM Vol. 3C 26.3.1.5), else an exit
 * at the interrupt window.  The vector moves to the ISR when injected;
 * an injection the exit cuts short is re-queued by the vendor.
 */
void irq_before_entry(struct vcpu *v)
{
	uint64_t now = guest_tsc(v), dl, dev, f;
	int vec;

	if (!v->lapic)
		return;
	dev = run_device_timers(v);
	dl = run_timer(v, now);
	v->timer_due = dl;
	v->dev_due_ns = dev;
	v->nmi_window = false;
	if (v->nmi_pending && v->nmi_masked) {
		v->nmi_window = true;
	} else if (v->nmi_pending && !v->pending.valid && !v->st.int_shadow) {
		v->nmi_pending = false;
		v->nmi_masked = true;
		v->pending = (struct vcpu_event){ .valid = true, .vector = 2,
						  .type = EVENT_NMI };
	}
	v->irq_window = false;
	f = spin_lock_irqsave(&v->lapic_lock);
	vec = vlapic_pending(v->lapic);
	if (vec >= 0) {
		if (interruptible(v)) {
			vlapic_ack(v->lapic, vec);
			v->pending = (struct vcpu_event){ .valid = true,
				.vector = (uint8_t)vec, .type = EVENT_EXT_INT };
			v->irqs_injected++;
		} else {
			v->irq_window = true;
		}
	}
	spin_unlock_irqrestore(&v->lapic_lock, f);
	if (vec < 0 && !v->irq_window) {
		vec = pic_take(v, interruptible(v));
		if (vec >= 0) {
			v->pending = (struct vcpu_event){ .valid = true,
				.vector = (uint8_t)vec, .type = EVENT_EXT_INT };
			v->irqs_injected++;
		} else if (vec == -2) {
			v->irq_window = true;
		}
	}
	arm_host_timer(v, dl, now, dev);
}

/*
 * The vendor's last look before entering, with interrupts held (SVM:
 * GIF clear; VMX: IF clear): from here on a host interrupt or kick makes
 * the guest exit at once, but one that came between irq_before_entry and
 * here was taken by the host and would be lost -- the guest would run
 * past its timer's deadline, or with a kick unseen, until it exits on its
 * own.  True: do not enter, go round the loop.  Lock-free and cheap.
 *
 * Never twice in a row: a guest timer with a period shorter than one trip
 * round the loop (a periodic count of 1) would otherwise keep the vCPU out
 * of its guest for good.  The second time it enters; irq_before_entry has
 * armed the host one-shot for what is due, so it exits again at once.
 */
static bool entry_late(const struct vcpu *v)
{
	uint32_t r = __atomic_load_n(&v->requests, __ATOMIC_ACQUIRE);

	if (r & (VCPU_REQ_EVENT | VCPU_REQ_STOP | VCPU_REQ_PAUSE | VCPU_REQ_FLUSH))
		return true;
	if (v->timer_due && guest_tsc(v) >= v->timer_due)
		return true;
	return v->dev_due_ns && vm_time_ns() >= v->dev_due_ns;
}

bool irq_entry_late(struct vcpu *v)
{
	bool late = !v->late_bail && entry_late(v);

	v->late_bail = late;
	return late;
}

/*
 * A halted vCPU (HLT, SDM Vol. 2A): whether it must wake now -- an NMI,
 * INIT or SIPI, or an interrupt it would take (with RFLAGS.IF clear only
 * the former wake it) -- and, if not, the time_us() at which to look
 * again (0: only an event can wake it).
 */
bool irq_halt_check(struct vcpu *v, uint64_t *wake_us)
{
	uint64_t now = guest_tsc(v), dl, dev, f;
	int vec;

	*wake_us = 0;
	if (!v->lapic)
		return false;
	if ((v->nmi_pending && !v->nmi_masked) || v->init_pending || v->sipi_pending)
		return true;
	dev = run_device_timers(v);
	dl = run_timer(v, now);
	f = spin_lock_irqsave(&v->lapic_lock);
	vec = vlapic_pending(v->lapic);
	spin_unlock_irqrestore(&v->lapic_lock, f);
	if ((vec >= 0 || pic_take(v, false) == -2) && (v->st.rflags & RFLAGS_IF))
		return true;
	*wake_us = arm_host_timer(v, dl, now, dev);
	return false;
}

void irq_stats(struct vm *vm, uint64_t *msgs, uint32_t *lines)
{
	struct irqchip *chip = vm->irqchip;

	*msgs = chip ? chip->msgs : 0;
	*lines = chip ? chip->lines : 0;
}

/* One line for `vm info`: the LAPIC's timer, what waits and what runs. */
void irq_vcpu_describe(struct vcpu *v, char *buf, size_t len)
{
	uint64_t now = guest_tsc(v), dl, f, hz = tsc_hz();
	uint32_t lvt, tpr;
	int pend, isr = -1, i;
	long long us;

	if (!v->lapic) {
		snprintf(buf, len, "no LAPIC");
		return;
	}
	f = spin_lock_irqsave(&v->lapic_lock);
	dl = vlapic_timer_deadline(v->lapic);
	lvt = v->lapic->lvt[VLAPIC_LVT_T];
	tpr = v->lapic->tpr;
	pend = vlapic_pending(v->lapic);
	for (i = 255; i >= 0 && isr < 0; i--)
		if (v->lapic->isr[i / 32] & (1u << (i % 32)))
			isr = i;
	spin_unlock_irqrestore(&v->lapic_lock, f);
	us = !dl || !hz ? 0 : dl >= now ? (long long)((dl - now) / (hz / 1000000 ? hz / 1000000 : 1))
					: -(long long)((now - dl) / (hz / 1000000 ? hz / 1000000 : 1));
	snprintf(buf, len, "timer %s%s%lld us, lvt %#x, tpr %#x, pending %d, in service %d, "
		 "host timer %s", dl ? "due in " : "off", dl ? "" : " ", dl ? us : 0LL, lvt, tpr,
		 pend, isr, v->host_timer_us ? "armed" : "idle");
}
