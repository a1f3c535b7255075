/*
 * Virtual local APIC: registers, acceptance, priority, timer, x2APIC MSRs
 * and the migration record (SDM Vol. 3A chapter 11).  Pure; see vlapic.h.
 */
#include <errno.h>
#include <string.h>

#include "kernel/devices/model/vlapic.h"
#include "kernel/lib/byteorder.h"

/* Writable bits of each LVT (SDM 11.5.1, figure 11-8).  Delivery status
 * (bit 12) and remote IRR (bit 14) are read-only. */
static const uint32_t vlapic_lvt_wmask[VLAPIC_NR_LVT] = {
	[VLAPIC_LVT_T] = 0x000700ff,	/* vector, mask, mode 18:17 */
	[VLAPIC_LVT_TH] = 0x000107ff,	/* vector, delivery mode, mask */
	[VLAPIC_LVT_PMC] = 0x000107ff,
	[VLAPIC_LVT_L0] = 0x0001a7ff,	/* + polarity 13, trigger 15 */
	[VLAPIC_LVT_L1] = 0x0001a7ff,
	[VLAPIC_LVT_ERR] = 0x000100ff,	/* vector, mask */
};

#define VLAPIC_LVT_STATUS	(1u << 12)
/* ICR low: vector, delivery mode, destination mode, level, trigger,
 * shorthand (SDM 11.6.1, figure 11-12); bit 12 (status) reads idle. */
#define VLAPIC_ICR_LO_MASK	0x000cefffu
#define VLAPIC_ICR_LO_WMASK	(VLAPIC_ICR_LO_MASK & ~VLAPIC_LVT_STATUS)
#define VLAPIC_SVR_MASK		0x000003ffu	/* no EOI-broadcast suppression */
#define VLAPIC_DCR_MASK		0x0000000bu
#define VLAPIC_ESR_MASK		(VLAPIC_ESR_SEND_ILLEGAL_VEC | VLAPIC_ESR_RECV_ILLEGAL_VEC | \
				 VLAPIC_ESR_ILLEGAL_REG)

/* ---- small helpers ---- */

static bool vec_test(const uint32_t *r, unsigned v)
{
	return r[v >> 5] & (1u << (v & 31));
}

static void vec_set(uint32_t *r, unsigned v)
{
	r[v >> 5] |= 1u << (v & 31);
}

static void vec_clear(uint32_t *r, unsigned v)
{
	r[v >> 5] &= ~(1u << (v & 31));
}

/* Highest set vector of a 256-bit ISR/IRR/TMR, or -1. */
static int vec_highest(const uint32_t *r)
{
	for (int i = 7; i >= 0; i--)
		if (r[i])
			return i * 32 + 31 - __builtin_clz(r[i]);
	return -1;
}

bool vlapic_hw_enabled(const struct vlapic *l)
{
	return l->apic_base & VLAPIC_BASE_EN;
}

bool vlapic_x2apic_mode(const struct vlapic *l)
{
	return (l->apic_base & (VLAPIC_BASE_EN | VLAPIC_BASE_EXTD)) ==
	       (VLAPIC_BASE_EN | VLAPIC_BASE_EXTD);
}

static bool vlapic_sw_enabled(const struct vlapic *l)
{
	return l->svr & VLAPIC_SVR_ENABLE;
}

uint32_t vlapic_id(const struct vlapic *l)
{
	return vlapic_x2apic_mode(l) ? l->apic_id : l->id_reg >> 24;
}

/* x2APIC logical ID: cluster ID in 31:16, one bit of 16 in 15:0
 * (SDM 11.12.10.2). */
static uint32_t vlapic_x2apic_ldr(uint32_t id)
{
	return ((id >> 4) << 16) | (1u << (id & 0xf));
}

/* Set a vector in IRR from a local source or a message.  Vectors 0-15
 * are illegal (SDM 11.5.2): flag "received illegal vector" instead. */
static bool vlapic_set_irr(struct vlapic *l, unsigned vec, bool level);

/* Latch an error and raise the error LVT (SDM 11.5.3). */
static void vlapic_error(struct vlapic *l, uint32_t bit)
{
	uint32_t lvt = l->lvt[VLAPIC_LVT_ERR];
	unsigned vec = lvt & 0xff;

	l->esr_pending |= bit;
	/* An illegal error vector would recurse: it is simply dropped. */
	if (!(lvt & VLAPIC_LVT_MASKED) && vec >= 16 && vlapic_hw_enabled(l)) {
		vec_set(l->irr, vec);
		vec_clear(l->tmr, vec);
	}
}

static bool vlapic_set_irr(struct vlapic *l, unsigned vec, bool level)
{
	if (vec < 16) {
		vlapic_error(l, VLAPIC_ESR_RECV_ILLEGAL_VEC);
		return false;
	}
	vec_set(l->irr, vec);
	if (level)
		vec_set(l->tmr, vec);
	else
		vec_clear(l->tmr, vec);
	return true;
}

/* ---- reset ---- */

/* Register state after RESET (SDM 11.4.7.1) but for the ID register;
 * the base and IDs are the caller's. */
static void vlapic_regs_reset(struct vlapic *l)
{
	l->tpr = 0;
	l->ldr = vlapic_x2apic_mode(l) ? vlapic_x2apic_ldr(l->apic_id) : 0;
	l->dfr = 0xffffffffu;
	l->svr = 0xff;
	l->esr = 0;
	l->esr_pending = 0;
	l->icr_lo = 0;
	l->icr_hi = 0;
	for (int i = 0; i < VLAPIC_NR_LVT; i++)
		l->lvt[i] = VLAPIC_LVT_MASKED;
	memset(l->isr, 0, sizeof(l->isr));
	memset(l->tmr, 0, sizeof(l->tmr));
	memset(l->irr, 0, sizeof(l->irr));
	l->timer_icr = 0;
	l->timer_dcr = 0;
	l->deadline = 0;
}

void vlapic_reset(struct vlapic *l, uint32_t apic_id, bool bsp)
{
	memset(l, 0, sizeof(*l));
	l->apic_id = apic_id;
	l->apic_base = VLAPIC_BASE_DEFAULT | VLAPIC_BASE_EN | (bsp ? VLAPIC_BASE_BSP : 0);
	l->id_reg = apic_id << 24;
	vlapic_regs_reset(l);
}

/* INIT: as RESET but the ID register and IA32_APIC_BASE (hence the mode)
 * stay (SDM 11.4.7.3). */
void vlapic_init_signal(struct vlapic *l)
{
	vlapic_regs_reset(l);
}

/* ---- priority and delivery to the CPU ---- */

/* PPR (SDM 11.8.3.1): TPR if its class is at least the highest
 * in-service class, else that class. */
uint8_t vlapic_ppr(const struct vlapic *l)
{
	int isrv = vec_highest(l->isr);
	uint32_t isrc = isrv < 0 ? 0 : (uint32_t)isrv & 0xf0;

	if ((l->tpr & 0xf0) >= isrc)
		return (uint8_t)l->tpr;
	return (uint8_t)isrc;
}

/*
 * Highest IRR vector whose class beats the PPR's (SDM 11.8.3.1).  A
 * software-disabled APIC still holds and delivers what is already in IRR
 * (SDM 11.4.7.2); a globally disabled one delivers nothing.
 */
int vlapic_pending(const struct vlapic *l)
{
	int v;

	if (!vlapic_hw_enabled(l))
		return -1;
	v = vec_highest(l->irr);
	if (v < 0 || ((unsigned)v & 0xf0) <= (vlapic_ppr(l) & 0xf0u))
		return -1;
	return v;
}

void vlapic_ack(struct vlapic *l, int vector)
{
	if (vector < 16 || vector > 255 || !vec_test(l->irr, (unsigned)vector))
		return;
	vec_clear(l->irr, (unsigned)vector);
	vec_set(l->isr, (unsigned)vector);
}

/* EOI: retire the highest in-service vector (SDM 11.8.5); a level one is
 * reported for the IOAPIC, and frees LINT0's remote IRR (SDM 11.5.1). */
static void vlapic_eoi(struct vlapic *l, struct vlapic_effects *fx)
{
	int v = vec_highest(l->isr);
	uint32_t *l0 = &l->lvt[VLAPIC_LVT_L0];

	if (v < 0)
		return;
	vec_clear(l->isr, (unsigned)v);
	if (!vec_test(l->tmr, (unsigned)v))
		return;
	fx->eoi_level = true;
	fx->eoi_vector = (uint8_t)v;
	if ((*l0 & 0xff) == (uint32_t)v && (*l0 & VLAPIC_LVT_LEVEL))
		*l0 &= ~VLAPIC_LVT_REMOTE_IRR;
}

/* ---- messages ---- */

bool vlapic_match(const struct vlapic *l, const struct apic_msg *m)
{
	uint32_t me = vlapic_id(l);
	uint32_t bcast = m->x2apic ? 0xffffffffu : 0xffu;

	if (!vlapic_hw_enabled(l))
		return false;
	switch (m->shorthand) {
	case APIC_SH_SELF:
		return m->src_id == me;
	case APIC_SH_ALL:
		return true;
	case APIC_SH_OTHERS:
		return m->src_id != me;
	}
	if (m->dest == bcast)
		return true;
	if (!m->logical)
		return m->dest == me;
	if (vlapic_x2apic_mode(l))	/* cluster 31:16, bitmap 15:0 */
		return (m->dest >> 16) == (l->ldr >> 16) && (m->dest & l->ldr & 0xffff);
	/* xAPIC logical (SDM 11.6.2.2): flat model is a bitmap, cluster
	 * model a cluster in 7:4 and a bitmap in 3:0. */
	uint32_t d = m->dest & 0xff, ldr = l->ldr >> 24;

	if ((l->dfr >> 28) == 0xf)
		return d & ldr;
	return (d >> 4) == (ldr >> 4) && (d & ldr & 0xf);
}

/*
 * A message routed here.  FIXED/LOWPRI need a software-enabled APIC
 * (SDM 11.4.7.2: a software-disabled APIC responds to NMI, INIT, SMI and
 * SIPI only); level de-asserts carry nothing (SDM 11.6.1).
 */
int vlapic_accept(struct vlapic *l, const struct apic_msg *m)
{
	if (!vlapic_hw_enabled(l))
		return VLAPIC_ACC_IGNORED;
	switch (m->dm) {
	case APIC_DM_FIXED:
	case APIC_DM_LOWPRI:
		if ((m->level && !m->assert) || !vlapic_sw_enabled(l))
			return VLAPIC_ACC_IGNORED;
		return vlapic_set_irr(l, m->vector, m->level) ? VLAPIC_ACC_NONE
							       : VLAPIC_ACC_IGNORED;
	case APIC_DM_NMI:
		return VLAPIC_ACC_NMI;
	case APIC_DM_INIT:
		return m->level && !m->assert ? VLAPIC_ACC_IGNORED : VLAPIC_ACC_INIT;
	case APIC_DM_SIPI:
		return VLAPIC_ACC_SIPI;
	case APIC_DM_EXTINT:
		return VLAPIC_ACC_EXTINT;
	default:			/* SMI: not modelled; reserved */
		return VLAPIC_ACC_IGNORED;
	}
}

/* An ICR write (SDM 11.6.1): build the IPI.  Reserved delivery modes 3
 * and 7 send nothing; an illegal fixed vector sets "send illegal vector"
 * and sends nothing. */
static void vlapic_send_ipi(struct vlapic *l, struct vlapic_effects *fx)
{
	uint32_t lo = l->icr_lo;
	uint8_t dm = (lo >> 8) & 7, vec = lo & 0xff;
	struct apic_msg *m = &fx->ipi_msg;

	if (dm == 3 || dm == APIC_DM_EXTINT)
		return;
	if ((dm == APIC_DM_FIXED || dm == APIC_DM_LOWPRI) && vec < 16) {
		vlapic_error(l, VLAPIC_ESR_SEND_ILLEGAL_VEC);
		return;
	}
	memset(m, 0, sizeof(*m));
	m->x2apic = vlapic_x2apic_mode(l);
	m->dest = m->x2apic ? l->icr_hi : l->icr_hi >> 24;
	m->vector = vec;
	m->dm = dm;
	m->shorthand = (lo >> 18) & 3;
	m->logical = lo & (1u << 11);
	m->level = lo & (1u << 15);
	/* Level 0 only means something for a level-triggered INIT (the
	 * INIT level de-assert); modern CPUs issue it as 1 otherwise. */
	m->assert = !(dm == APIC_DM_INIT && m->level && !(lo & (1u << 14)));
	m->src_id = vlapic_id(l);
	fx->ipi = true;
}

/*
 * LINT0/LINT1 (SDM 11.5.1): ExtINT is level-sensitive (asks the 8259
 * while asserted); NMI and INIT take the rising edge; fixed follows the
 * trigger bit on LINT0, LINT1 is always edge.  A globally disabled APIC
 * passes the pins through as INTR and NMI (SDM 11.4.3).
 */
int vlapic_lint(struct vlapic *l, int pin, bool level)
{
	uint32_t lvt;
	bool rising;

	if (pin != 0 && pin != 1)
		return VLAPIC_ACC_IGNORED;
	rising = level && !(l->lint_level & (1u << pin));
	l->lint_level = (uint8_t)((l->lint_level & ~(1u << pin)) | ((unsigned)level << pin));
	if (!vlapic_hw_enabled(l)) {
		if (pin == 0)
			return level ? VLAPIC_ACC_EXTINT : VLAPIC_ACC_IGNORED;
		return rising ? VLAPIC_ACC_NMI : VLAPIC_ACC_IGNORED;
	}
	lvt = l->lvt[VLAPIC_LVT_L0 + pin];
	if (lvt & VLAPIC_LVT_MASKED)
		return VLAPIC_ACC_IGNORED;
	switch ((lvt >> 8) & 7) {
	case APIC_DM_EXTINT:
		return level ? VLAPIC_ACC_EXTINT : VLAPIC_ACC_IGNORED;
	case APIC_DM_NMI:
		return rising ? VLAPIC_ACC_NMI : VLAPIC_ACC_IGNORED;
	case APIC_DM_INIT:
		return rising ? VLAPIC_ACC_INIT : VLAPIC_ACC_IGNORED;
	case APIC_DM_FIXED:
		break;
	default:
		return VLAPIC_ACC_IGNORED;
	}
	if (pin == 0 && (lvt & VLAPIC_LVT_LEVEL)) {
		if (!level || (lvt & VLAPIC_LVT_REMOTE_IRR) || !vlapic_set_irr(l, lvt & 0xff, true))
			return VLAPIC_ACC_IGNORED;
		l->lvt[VLAPIC_LVT_L0] |= VLAPIC_LVT_REMOTE_IRR;
		return VLAPIC_ACC_NONE;
	}
	if (!rising || !vlapic_set_irr(l, lvt & 0xff, false))
		return VLAPIC_ACC_IGNORED;
	return VLAPIC_ACC_NONE;
}

/* ---- timer (SDM 11.5.4) ---- */

/* Mode from LVT bits 18:17; the reserved 3 behaves as one-shot. */
static unsigned vlapic_timer_mode(const struct vlapic *l)
{
	unsigned m = (l->lvt[VLAPIC_LVT_T] >> VLAPIC_TIMER_MODE_SHIFT) & 3;

	return m == 3 ? VLAPIC_TIMER_ONESHOT : m;
}

/* Divide configuration bits 3,1:0 (figure 11-10): 111b is 1, else
 * 2 << value. */
static uint64_t vlapic_timer_div(const struct vlapic *l)
{
	unsigned v = ((l->timer_dcr >> 1) & 4) | (l->timer_dcr & 3);

	return v == 7 ? 1 : 2ull << v;
}

static uint64_t vlapic_nonzero(uint64_t t)
{
	return t ? t : 1;
}

uint64_t vlapic_timer_deadline(const struct vlapic *l)
{
	if (!vlapic_hw_enabled(l) || (l->lvt[VLAPIC_LVT_T] & VLAPIC_LVT_MASKED))
		return 0;
	return l->deadline;
}

/*
 * Expire at or after the deadline.  A periodic timer that missed several
 * periods raises one interrupt and keeps its phase: the next deadline is
 * the first period boundary after now, found by one division, never a
 * loop per lost tick.
 */
bool vlapic_timer_expire(struct vlapic *l, uint64_t now)
{
	uint32_t lvt = l->lvt[VLAPIC_LVT_T];
	bool raised = false;

	if (!l->deadline || now < l->deadline)
		return false;
	if (!(lvt & VLAPIC_LVT_MASKED))
		raised = vlapic_set_irr(l, lvt & 0xff, false);
	if (vlapic_timer_mode(l) == VLAPIC_TIMER_PERIODIC && l->timer_icr) {
		uint64_t period = l->timer_icr * vlapic_timer_div(l);
		uint64_t k = (now - l->deadline) / period + 1;

		l->deadline = vlapic_nonzero(l->deadline + k * period);
	} else {
		l->deadline = 0;
	}
	return raised;
}

/* Current count: the counts left until the deadline, rounded up (the
 * counter steps once per divided clock); 0 once a one-shot has run out. */
static uint32_t vlapic_timer_ccr(const struct vlapic *l, uint64_t now)
{
	uint64_t div = vlapic_timer_div(l), period, rem;
	unsigned mode = vlapic_timer_mode(l);

	if (mode == VLAPIC_TIMER_TSCDL || !l->deadline || !l->timer_icr)
		return 0;
	period = l->timer_icr * div;
	if (now < l->deadline)
		rem = l->deadline - now;
	else if (mode == VLAPIC_TIMER_ONESHOT)
		return 0;
	else
		rem = period - (now - l->deadline) % period;
	if (rem > period)
		rem = period;
	return (uint32_t)((rem + div - 1) / div);
}

static void vlapic_timer_start(struct vlapic *l, uint64_t now)
{
	if (!l->timer_icr)
		l->deadline = 0;
	else
		l->deadline = vlapic_nonzero(now + l->timer_icr * vlapic_timer_div(l));
}

/* A new divisor: the count left stays, it now runs at the new rate. */
static void vlapic_timer_set_dcr(struct vlapic *l, uint32_t val, uint64_t now)
{
	uint32_t cur;

	vlapic_timer_expire(l, now);
	cur = vlapic_timer_ccr(l, now);
	l->timer_dcr = val & VLAPIC_DCR_MASK;
	if (vlapic_timer_mode(l) != VLAPIC_TIMER_TSCDL && l->deadline && cur)
		l->deadline = vlapic_nonzero(now + cur * vlapic_timer_div(l));
}

/* ---- register access shared by MMIO and x2APIC MSRs ---- */

static int vlapic_lvt_index(uint32_t off)
{
	if (off < VLAPIC_LVT_TIMER || off > VLAPIC_LVT_ERROR)
		return -1;
	return (int)((off - VLAPIC_LVT_TIMER) >> 4);
}

static int vlapic_reg_read(struct vlapic *l, uint32_t off, uint32_t *val, uint64_t now)
{
	int i = vlapic_lvt_index(off);

	if (i >= 0) {
		*val = l->lvt[i];
		return 0;
	}
	if (off >= VLAPIC_ISR0 && off < VLAPIC_ESR) {
		const uint32_t *r = off < VLAPIC_TMR0 ? l->isr : off < VLAPIC_IRR0 ? l->tmr : l->irr;

		*val = r[(off >> 4) & 7];
		return 0;
	}
	switch (off) {
	case VLAPIC_ID:
		*val = vlapic_x2apic_mode(l) ? l->apic_id : l->id_reg;
		return 0;
	case VLAPIC_VER:
		*val = VLAPIC_VERSION;
		return 0;
	case VLAPIC_TPR:
		*val = l->tpr;
		return 0;
	case VLAPIC_PPR:
		*val = vlapic_ppr(l);
		return 0;
	case VLAPIC_APR:	/* arbitration priority: not modelled, reads 0 */
	case VLAPIC_EOI:
	case VLAPIC_RRD:
		*val = 0;
		return 0;
	case VLAPIC_LDR:
		*val = l->ldr;
		return 0;
	case VLAPIC_DFR:
		*val = l->dfr;
		return 0;
	case VLAPIC_SVR:
		*val = l->svr;
		return 0;
	case VLAPIC_ESR:
		*val = l->esr;
		return 0;
	case VLAPIC_ICR_LO:
		*val = l->icr_lo;
		return 0;
	case VLAPIC_ICR_HI:
		*val = l->icr_hi;
		return 0;
	case VLAPIC_TIMER_ICR:
		*val = l->timer_icr;
		return 0;
	case VLAPIC_TIMER_CCR:
		*val = vlapic_timer_ccr(l, now);
		return 0;
	case VLAPIC_TIMER_DCR:
		*val = l->timer_dcr;
		return 0;
	}
	return -ENOENT;
}

static void vlapic_lvt_write(struct vlapic *l, int i, uint32_t val, uint64_t now,
			     struct vlapic_effects *fx)
{
	uint32_t old = l->lvt[i];

	val &= vlapic_lvt_wmask[i];
	if (!vlapic_sw_enabled(l))	/* SDM 11.4.7.2: masks stay set */
		val |= VLAPIC_LVT_MASKED;
	if (i == VLAPIC_LVT_T) {
		/* Let an expiry due under the old entry happen first. */
		vlapic_timer_expire(l, now);
		l->lvt[i] = val;
		/* SDM 11.5.4.1: a mode switch disarms (as KVM: both
		 * the initial count and IA32_TSC_DEADLINE clear). */
		if ((old ^ val) & (3u << VLAPIC_TIMER_MODE_SHIFT)) {
			l->deadline = 0;
			l->timer_icr = 0;
		}
		fx->timer_changed = true;
		return;
	}
	if (i == VLAPIC_LVT_L0 && (val & VLAPIC_LVT_LEVEL))
		val |= old & VLAPIC_LVT_REMOTE_IRR;
	l->lvt[i] = val;
}

static void vlapic_svr_write(struct vlapic *l, uint32_t val, uint64_t now,
			     struct vlapic_effects *fx)
{
	l->svr = val & VLAPIC_SVR_MASK;
	if (vlapic_sw_enabled(l))
		return;
	vlapic_timer_expire(l, now);
	for (int i = 0; i < VLAPIC_NR_LVT; i++)
		l->lvt[i] |= VLAPIC_LVT_MASKED;
	fx->timer_changed = true;
}

/* -ENOENT for an offset that is no register; read-only ones ignore. */
static int vlapic_reg_write(struct vlapic *l, uint32_t off, uint32_t val, uint64_t now,
			    struct vlapic_effects *fx)
{
	int i = vlapic_lvt_index(off);

	if (i >= 0) {
		vlapic_lvt_write(l, i, val, now, fx);
		return 0;
	}
	if (off >= VLAPIC_ISR0 && off < VLAPIC_ESR)
		return 0;
	switch (off) {
	case VLAPIC_ID:		/* writable in xAPIC mode (SDM 11.4.6) */
		l->id_reg = val & 0xff000000u;
		return 0;
	case VLAPIC_TPR:
		l->tpr = val & 0xff;
		return 0;
	case VLAPIC_EOI:
		vlapic_eoi(l, fx);
		return 0;
	case VLAPIC_LDR:
		l->ldr = val & 0xff000000u;
		return 0;
	case VLAPIC_DFR:
		l->dfr = (val & 0xf0000000u) | 0x0fffffffu;
		return 0;
	case VLAPIC_SVR:
		vlapic_svr_write(l, val, now, fx);
		return 0;
	case VLAPIC_ESR:	/* write-to-update (SDM 11.5.3) */
		l->esr = l->esr_pending;
		l->esr_pending = 0;
		return 0;
	case VLAPIC_ICR_LO:
		l->icr_lo = val & VLAPIC_ICR_LO_WMASK;
		vlapic_send_ipi(l, fx);
		return 0;
	case VLAPIC_ICR_HI:
		l->icr_hi = val & 0xff000000u;
		return 0;
	case VLAPIC_TIMER_ICR:	/* ignored in TSC-deadline mode */
		if (vlapic_timer_mode(l) == VLAPIC_TIMER_TSCDL)
			return 0;
		l->timer_icr = val;
		vlapic_timer_start(l, now);
		fx->timer_changed = true;
		return 0;
	case VLAPIC_TIMER_DCR:
		vlapic_timer_set_dcr(l, val, now);
		fx->timer_changed = true;
		return 0;
	case VLAPIC_VER:
	case VLAPIC_APR:
	case VLAPIC_PPR:
	case VLAPIC_RRD:
	case VLAPIC_TIMER_CCR:
		return 0;
	}
	return -ENOENT;
}

/* ---- MMIO ---- */

static int vlapic_mmio_check(const struct vlapic *l, uint32_t off)
{
	if ((off & 3) || off > 0xff0)
		return -EINVAL;
	if (!vlapic_hw_enabled(l) || vlapic_x2apic_mode(l))
		return -ENODEV;
	return 0;
}

int vlapic_mmio_read(struct vlapic *l, uint32_t off, uint32_t *val, uint64_t now)
{
	int rc = vlapic_mmio_check(l, off);

	*val = 0;
	if (rc)
		return rc;
	/* Registers sit at 16-byte boundaries; the other dwords are
	 * reserved and read 0. */
	if ((off & 0xf) || vlapic_reg_read(l, off, val, now) == -ENOENT) {
		*val = 0;
		vlapic_error(l, VLAPIC_ESR_ILLEGAL_REG);
	}
	return 0;
}

int vlapic_mmio_write(struct vlapic *l, uint32_t off, uint32_t val, uint64_t now,
		      struct vlapic_effects *fx)
{
	int rc = vlapic_mmio_check(l, off);

	memset(fx, 0, sizeof(*fx));
	if (rc)
		return rc;
	if ((off & 0xf) || vlapic_reg_write(l, off, val, now, fx) == -ENOENT)
		vlapic_error(l, VLAPIC_ESR_ILLEGAL_REG);
	return 0;
}

/* ---- MSRs ---- */

/*
 * IA32_APIC_BASE (SDM 11.4.4, 11.12.5): EN/EXTD 0/1 is invalid, x2APIC
 * may only be left by disabling, and entered only from xAPIC.  Global
 * disable resets the registers but the ID (SDM 11.4.3: the APIC "may
 * return to" the power-up state; 11.12.5.1: leaving x2APIC keeps the
 * x2APIC ID and its low 8 bits as the xAPIC ID); entering x2APIC derives
 * the LDR from the x2APIC ID (11.12.10.2).
 */
static int vlapic_base_write(struct vlapic *l, uint64_t val, struct vlapic_effects *fx)
{
	bool en = val & VLAPIC_BASE_EN, x2 = val & VLAPIC_BASE_EXTD;
	bool was_en = vlapic_hw_enabled(l), was_x2 = vlapic_x2apic_mode(l);

	if ((val & ~(uint64_t)(VLAPIC_BASE_BSP | VLAPIC_BASE_EXTD | VLAPIC_BASE_EN)) !=
	    VLAPIC_BASE_DEFAULT)
		return -EINVAL;
	if ((x2 && !en) || (was_x2 && en && !x2) || (!was_en && x2))
		return -EINVAL;
	l->apic_base = val;
	if (was_en && !en) {
		if (was_x2)
			l->id_reg = l->apic_id << 24;
		vlapic_regs_reset(l);
		fx->timer_changed = true;
	} else if (x2 && !was_x2) {
		l->ldr = vlapic_x2apic_ldr(l->apic_id);
	}
	return 0;
}

/* x2APIC register of an MSR (SDM 11.12.1.2, table 11-6). */
static uint32_t vlapic_msr_off(uint32_t msr)
{
	return (msr - MSR_X2APIC_FIRST) << 4;
}

/* Offsets with no x2APIC MSR at all. */
static bool vlapic_x2_absent(uint32_t off)
{
	return off == VLAPIC_APR || off == VLAPIC_RRD || off == VLAPIC_DFR ||
	       off == VLAPIC_ICR_HI || off == VLAPIC_LVT_CMCI;
}

static int vlapic_x2_read(struct vlapic *l, uint32_t msr, uint64_t *val, uint64_t now)
{
	uint32_t off = vlapic_msr_off(msr), v;

	if (vlapic_x2_absent(off) || off == VLAPIC_EOI || off == VLAPIC_SELF_IPI)
		return -EINVAL;
	if (off == VLAPIC_ICR_LO) {
		*val = (uint64_t)l->icr_hi << 32 | l->icr_lo;
		return 0;
	}
	if (vlapic_reg_read(l, off, &v, now))
		return -EINVAL;
	*val = v;
	return 0;
}

/* Bits an x2APIC WRMSR may set without #GP (SDM 11.12.1.3); ~0u: any. */
static uint32_t vlapic_x2_wmask(uint32_t off)
{
	int i = vlapic_lvt_index(off);

	if (i >= 0)
		return vlapic_lvt_wmask[i] | VLAPIC_LVT_STATUS |
		       (i == VLAPIC_LVT_L0 || i == VLAPIC_LVT_L1 ? VLAPIC_LVT_REMOTE_IRR : 0);
	switch (off) {
	case VLAPIC_TPR:
	case VLAPIC_SELF_IPI:
		return 0xff;
	case VLAPIC_SVR:
		return VLAPIC_SVR_MASK;
	case VLAPIC_TIMER_DCR:
		return VLAPIC_DCR_MASK;
	case VLAPIC_TIMER_ICR:
		return ~0u;
	}
	return 0;		/* EOI, ESR: only 0 may be written */
}

static bool vlapic_x2_writable(uint32_t off)
{
	return vlapic_lvt_index(off) >= 0 || off == VLAPIC_TPR || off == VLAPIC_SELF_IPI ||
	       off == VLAPIC_SVR || off == VLAPIC_TIMER_DCR || off == VLAPIC_TIMER_ICR ||
	       off == VLAPIC_EOI || off == VLAPIC_ESR;
}

static int vlapic_x2_write(struct vlapic *l, uint32_t msr, uint64_t val, uint64_t now,
			   struct vlapic_effects *fx)
{
	uint32_t off = vlapic_msr_off(msr);

	if (off == VLAPIC_ICR_LO) {	/* one 64-bit register */
		if ((uint32_t)val & ~VLAPIC_ICR_LO_WMASK)
			return -EINVAL;
		l->icr_hi = (uint32_t)(val >> 32);
		l->icr_lo = (uint32_t)val;
		vlapic_send_ipi(l, fx);
		return 0;
	}
	if (!vlapic_x2_writable(off) || (val >> 32) || ((uint32_t)val & ~vlapic_x2_wmask(off)))
		return -EINVAL;
	if (off == VLAPIC_SELF_IPI) {	/* fixed, edge, to self (11.12.11) */
		if (vlapic_sw_enabled(l))
			vlapic_set_irr(l, (uint32_t)val, false);
		return 0;
	}
	return vlapic_reg_write(l, off, (uint32_t)val, now, fx);
}

/* IA32_TSC_DEADLINE (SDM 11.5.4.1): only in TSC-deadline mode; reads 0
 * when disarmed or in another mode, writes there are ignored. */
static uint64_t vlapic_tscdl_read(struct vlapic *l, uint64_t now)
{
	vlapic_timer_expire(l, now);
	if (!vlapic_hw_enabled(l) || vlapic_timer_mode(l) != VLAPIC_TIMER_TSCDL)
		return 0;
	return l->deadline;
}

int vlapic_msr_read(struct vlapic *l, uint32_t msr, uint64_t *val, uint64_t now)
{
	*val = 0;
	if (msr == MSR_IA32_APIC_BASE) {
		*val = l->apic_base;
		return 0;
	}
	if (msr == MSR_IA32_TSC_DEADLINE) {
		*val = vlapic_tscdl_read(l, now);
		return 0;
	}
	if (msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST)
		return -ENOENT;
	if (!vlapic_x2apic_mode(l))
		return -EINVAL;
	return vlapic_x2_read(l, msr, val, now);
}

int vlapic_msr_write(struct vlapic *l, uint32_t msr, uint64_t val, uint64_t now,
		     struct vlapic_effects *fx)
{
	memset(fx, 0, sizeof(*fx));
	if (msr == MSR_IA32_APIC_BASE)
		return vlapic_base_write(l, val, fx);
	if (msr == MSR_IA32_TSC_DEADLINE) {
		if (vlapic_hw_enabled(l) && vlapic_timer_mode(l) == VLAPIC_TIMER_TSCDL) {
			l->deadline = val;
			fx->timer_changed = true;
		}
		return 0;
	}
	if (msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST)
		return -ENOENT;
	if (!vlapic_x2apic_mode(l))
		return -EINVAL;
	return vlapic_x2_write(l, msr, val, now, fx);
}

/* ---- migration record ---- */

/* Layout (little-endian):
 *   0 version  1 flags (bit 0: timer armed)  2 lint_level  3 zero
 *   4 apic_base (8)  12 timer ticks left (8)
 *  20 apic_id id_reg tpr ldr dfr svr esr esr_pending icr_lo icr_hi (4 each)
 *  60 lvt[6]  84 isr[8]  116 tmr[8]  148 irr[8]  180 timer_icr  184 timer_dcr
 */
#define VLAPIC_REC_U32	20

static uint32_t *vlapic_rec_u32(struct vlapic *l, int i)
{
	uint32_t *const f[] = {
		&l->apic_id, &l->id_reg, &l->tpr, &l->ldr, &l->dfr, &l->svr, &l->esr,
		&l->esr_pending, &l->icr_lo, &l->icr_hi,
	};

	if (i < 10)
		return f[i];
	if (i < 16)
		return &l->lvt[i - 10];
	if (i < 24)
		return &l->isr[i - 16];
	if (i < 32)
		return &l->tmr[i - 24];
	if (i < 40)
		return &l->irr[i - 32];
	return i == 40 ? &l->timer_icr : &l->timer_dcr;
}

#define VLAPIC_REC_NR_U32	42

int vlapic_save(const struct vlapic *l, uint8_t *buf, size_t len, uint64_t now)
{
	struct vlapic c = *l;
	uint64_t left = c.deadline > now ? c.deadline - now : 0;

	if (len < VLAPIC_SAVE_SIZE)
		return -ENOSPC;
	buf[0] = VLAPIC_SAVE_VERSION;
	buf[1] = c.deadline != 0;
	buf[2] = c.lint_level;
	buf[3] = 0;
	st_le64(buf + 4, c.apic_base);
	st_le64(buf + 12, left);
	for (int i = 0; i < VLAPIC_REC_NR_U32; i++)
		st_le32(buf + VLAPIC_REC_U32 + 4 * i, *vlapic_rec_u32(&c, i));
	return VLAPIC_SAVE_SIZE;
}

static bool vlapic_valid_regs(const struct vlapic *l)
{
	bool x2 = vlapic_x2apic_mode(l);

	if ((l->apic_base & ~(uint64_t)(VLAPIC_BASE_BSP | VLAPIC_BASE_EXTD | VLAPIC_BASE_EN)) !=
	    VLAPIC_BASE_DEFAULT ||
	    (l->apic_base & (VLAPIC_BASE_EN | VLAPIC_BASE_EXTD)) == VLAPIC_BASE_EXTD)
		return false;
	if ((l->id_reg & 0x00ffffffu) || (l->tpr & ~0xffu) || (l->svr & ~VLAPIC_SVR_MASK) ||
	    (l->esr & ~VLAPIC_ESR_MASK) || (l->esr_pending & ~VLAPIC_ESR_MASK) ||
	    (l->icr_lo & ~VLAPIC_ICR_LO_WMASK) || (l->timer_dcr & ~VLAPIC_DCR_MASK))
		return false;
	if (x2 ? l->ldr != vlapic_x2apic_ldr(l->apic_id)
	       : (l->ldr & 0x00ffffffu) || (l->icr_hi & 0x00ffffffu))
		return false;
	if ((l->dfr & 0x0fffffffu) != 0x0fffffffu || ((l->dfr >> 28) != 0 && (l->dfr >> 28) != 0xf))
		return false;
	for (int i = 0; i < VLAPIC_NR_LVT; i++) {
		uint32_t ok = vlapic_lvt_wmask[i] | (i == VLAPIC_LVT_L0 ? VLAPIC_LVT_REMOTE_IRR : 0);

		if ((l->lvt[i] & ~ok) || (!vlapic_sw_enabled(l) && !(l->lvt[i] & VLAPIC_LVT_MASKED)))
			return false;
	}
	/* Vectors 0-15 never enter ISR, TMR or IRR. */
	return !(l->isr[0] & 0xffff) && !(l->tmr[0] & 0xffff) && !(l->irr[0] & 0xffff);
}

/* The timer fields agree with the mode: TSC-deadline mode has no initial
 * count; the others are armed only with one, and no further than one
 * period out. */
static bool vlapic_valid_timer(const struct vlapic *l, bool armed, uint64_t left)
{
	if (armed && !vlapic_hw_enabled(l))
		return false;
	if (vlapic_timer_mode(l) == VLAPIC_TIMER_TSCDL)
		return l->timer_icr == 0;
	if (!armed)
		return true;
	return l->timer_icr && left <= l->timer_icr * vlapic_timer_div(l);
}

int vlapic_load(struct vlapic *l, const uint8_t *buf, size_t len, uint64_t now)
{
	struct vlapic c;
	uint64_t left;
	bool armed;

	if (len != VLAPIC_SAVE_SIZE || buf[0] != VLAPIC_SAVE_VERSION || (buf[1] & ~1u) ||
	    (buf[2] & ~3u) || buf[3])
		return -EINVAL;
	memset(&c, 0, sizeof(c));
	armed = buf[1] & 1;
	c.lint_level = buf[2];
	c.apic_base = ld_le64(buf + 4);
	left = ld_le64(buf + 12);
	for (int i = 0; i < VLAPIC_REC_NR_U32; i++)
		*vlapic_rec_u32(&c, i) = ld_le32(buf + VLAPIC_REC_U32 + 4 * i);
	if (!vlapic_valid_regs(&c) || !vlapic_valid_timer(&c, armed, left) ||
	    (!armed && left))
		return -EINVAL;
	c.deadline = armed ? vlapic_nonzero(now + left) : 0;
	*l = c;
	return 0;
}
