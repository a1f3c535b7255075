/*
 * Guest interrupt routing and delivery: the glue around the pure models
 * (kernel/devices/model/vlapic.c, vioapic.c).
 *
 *   device line --vm_irq_line--> IOAPIC --apic_msg--> LAPIC(s) --> vCPU
 *   LAPIC ICR (IPI) ------------------apic_msg------> LAPIC(s)
 *
 * Locking: vm->irqchip->lock guards the IOAPIC; vcpu->lapic_lock guards
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
#include <stdlib.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/devices/model/vioapic.h"
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
		uint8_t ppr;

		if (!v->lapic || !matches(v, m))
			continue;
		ppr = vlapic_ppr(v->lapic);
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
	spin_unlock_irqrestore(&chip->lock, f);
}

uint64_t vm_time_ns(void)
{
	uint64_t hz = tsc_hz(), t = rdtsc();

	/* Split so nothing overflows for TSC rates below 18 GHz, without a
	 * 128-bit division (no libgcc in the kernel). */
	return hz ? t / hz * 1000000000u + t % hz * 1000000000u / hz : time_us() * 1000;
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
	struct irqchip *chip = calloc(1, sizeof(*chip));
	int i;

	if (!chip)
		return -ENOMEM;
	chip->lock = (struct spinlock)SPINLOCK_INIT;
	vioapic_reset(&chip->ioapic, 0);
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

/* INIT (SDM 9.1.1, 11.4.7.3): the LAPIC keeps its ID and base; the vCPU
 * waits for a start-up IPI. */
void irq_init_signal(struct vcpu *v)
{
	uint64_t f = spin_lock_irqsave(&v->lapic_lock);

	vlapic_init_signal(v->lapic);
	spin_unlock_irqrestore(&v->lapic_lock, f);
	v->nmi_pending = false;
	v->pending.valid = false;
}

/* ---- delivery to the guest ---- */

static bool interruptible(const struct vcpu *v)
{
	return (v->st.rflags & RFLAGS_IF) && !v->st.int_shadow && !v->pending.valid;
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
 * timer's deadline (guest TSC dl; 0: none).  Returns the time_us() of
 * that deadline, 0 for none.  While migration throttles the vCPU, its
 * 1 kHz tick does the waking. */
static uint64_t arm_host_timer(struct vcpu *v, uint64_t dl, uint64_t now)
{
	uint64_t hz = tsc_hz(), t = time_us(), delta, due;

	if (!dl || !hz)
		return 0;
	delta = dl > now ? dl - now : 0;
	/* Rounded up: waking before the guest's deadline only loops. */
	delta = delta / hz * 1000000u + (delta % hz * 1000000u + hz - 1) / hz;
	due = t + (delta < TIMER_MAX_US ? delta : TIMER_MAX_US);
	if (v->tick_on)
		return due;
	if (v->host_timer_us && v->host_timer_us <= due && v->host_timer_us > t)
		return due;	/* an earlier one is armed: it re-checks */
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
	uint64_t now = guest_tsc(v), dl, f;
	int vec;

	if (!v->lapic)
		return;
	dl = run_timer(v, now);
	if (v->nmi_pending && !v->pending.valid && !v->st.int_shadow) {
		v->nmi_pending = false;
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
	arm_host_timer(v, dl, now);
}

/*
 * A halted vCPU (HLT, SDM Vol. 2A): whether it must wake now -- an NMI,
 * INIT or SIPI, or an interrupt it would take (with RFLAGS.IF clear only
 * the former wake it) -- and, if not, the time_us() at which to look
 * again (0: only an event can wake it).
 */
bool irq_halt_check(struct vcpu *v, uint64_t *wake_us)
{
	uint64_t now = guest_tsc(v), dl, f;
	int vec;

	*wake_us = 0;
	if (!v->lapic)
		return false;
	if (v->nmi_pending || v->init_pending || v->sipi_pending)
		return true;
	dl = run_timer(v, now);
	f = spin_lock_irqsave(&v->lapic_lock);
	vec = vlapic_pending(v->lapic);
	spin_unlock_irqrestore(&v->lapic_lock, f);
	if (vec >= 0 && (v->st.rflags & RFLAGS_IF))
		return true;
	*wake_us = arm_host_timer(v, dl, now);
	return false;
}

void irq_stats(struct vm *vm, uint64_t *msgs, uint32_t *lines)
{
	struct irqchip *chip = vm->irqchip;

	*msgs = chip ? chip->msgs : 0;
	*lines = chip ? chip->lines : 0;
}
