/*
 * One virtual local APIC, xAPIC and x2APIC (SDM Vol. 3A chapter 11).
 *
 * Pure: no locking, no clock of its own.  Every call whose result depends
 * on time takes `now`, the guest TSC; the APIC timer counts at the TSC
 * rate divided by the divide configuration (CPUID 0x15 tells the guest the
 * core crystal runs at the TSC rate).  The glue (kernel/virt/irq.c) owns
 * the locking, routes struct apic_msg between APICs, arms a host timer at
 * vlapic_timer_deadline() and injects vlapic_pending() vectors.
 *
 * The glue should look at vlapic_pending() before every guest entry: TPR
 * writes, EOIs, self-IPIs and local interrupts all change it.
 *
 * State is one plain struct without pointers; vlapic_save/vlapic_load
 * turn it into a versioned little-endian record.
 */
#ifndef TERN_DEVICES_MODEL_VLAPIC_H
#define TERN_DEVICES_MODEL_VLAPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kernel/devices/model/apic_msg.h"

#define VLAPIC_BASE_DEFAULT	0xfee00000u
#define VLAPIC_BASE_BSP		(1u << 8)
#define VLAPIC_BASE_EXTD	(1u << 10)	/* x2APIC mode */
#define VLAPIC_BASE_EN		(1u << 11)	/* global enable */

#define VLAPIC_VERSION		0x00050014u	/* 6 LVTs, version 0x14 */

#define MSR_IA32_APIC_BASE	0x1bu
#define MSR_IA32_TSC_DEADLINE	0x6e0u
#define MSR_X2APIC_FIRST	0x800u
#define MSR_X2APIC_LAST		0x8ffu

/* Register offsets in the 4 KiB page (SDM table 11-1). */
enum vlapic_reg {
	VLAPIC_ID = 0x020,
	VLAPIC_VER = 0x030,
	VLAPIC_TPR = 0x080,
	VLAPIC_APR = 0x090,
	VLAPIC_PPR = 0x0a0,
	VLAPIC_EOI = 0x0b0,
	VLAPIC_RRD = 0x0c0,
	VLAPIC_LDR = 0x0d0,
	VLAPIC_DFR = 0x0e0,
	VLAPIC_SVR = 0x0f0,
	VLAPIC_ISR0 = 0x100,
	VLAPIC_TMR0 = 0x180,
	VLAPIC_IRR0 = 0x200,
	VLAPIC_ESR = 0x280,
	VLAPIC_LVT_CMCI = 0x2f0,
	VLAPIC_ICR_LO = 0x300,
	VLAPIC_ICR_HI = 0x310,
	VLAPIC_LVT_TIMER = 0x320,
	VLAPIC_LVT_THERMAL = 0x330,
	VLAPIC_LVT_PERF = 0x340,
	VLAPIC_LVT_LINT0 = 0x350,
	VLAPIC_LVT_LINT1 = 0x360,
	VLAPIC_LVT_ERROR = 0x370,
	VLAPIC_TIMER_ICR = 0x380,
	VLAPIC_TIMER_CCR = 0x390,
	VLAPIC_TIMER_DCR = 0x3e0,
	VLAPIC_SELF_IPI = 0x3f0,	/* x2APIC only (MSR 0x83f) */
};

/* LVT indexes into struct vlapic.lvt, in register order. */
enum vlapic_lvt {
	VLAPIC_LVT_T = 0,	/* timer */
	VLAPIC_LVT_TH,		/* thermal */
	VLAPIC_LVT_PMC,		/* performance counters */
	VLAPIC_LVT_L0,		/* LINT0 */
	VLAPIC_LVT_L1,		/* LINT1 */
	VLAPIC_LVT_ERR,		/* error */
	VLAPIC_NR_LVT,
};

#define VLAPIC_LVT_MASKED	(1u << 16)
#define VLAPIC_LVT_LEVEL	(1u << 15)	/* LINT0/1 trigger mode */
#define VLAPIC_LVT_REMOTE_IRR	(1u << 14)
#define VLAPIC_TIMER_MODE_SHIFT	17
#define VLAPIC_TIMER_ONESHOT	0u
#define VLAPIC_TIMER_PERIODIC	1u
#define VLAPIC_TIMER_TSCDL	2u

#define VLAPIC_SVR_ENABLE	(1u << 8)

/* Error status bits (SDM 11.5.3, figure 11-9). */
#define VLAPIC_ESR_SEND_ILLEGAL_VEC	(1u << 5)
#define VLAPIC_ESR_RECV_ILLEGAL_VEC	(1u << 6)
#define VLAPIC_ESR_ILLEGAL_REG		(1u << 7)

struct vlapic {
	uint64_t apic_base;		/* IA32_APIC_BASE */
	uint64_t deadline;		/* guest TSC of the next expiry, 0: not armed */
	uint32_t apic_id;		/* initial APIC ID = x2APIC ID */
	uint32_t id_reg;		/* xAPIC ID register (bits 31:24) */
	uint32_t tpr, ldr, dfr, svr;
	uint32_t esr;			/* as last latched by an ESR write */
	uint32_t esr_pending;		/* errors since that write */
	uint32_t icr_lo, icr_hi;
	uint32_t lvt[VLAPIC_NR_LVT];
	uint32_t isr[8], tmr[8], irr[8];
	uint32_t timer_icr;		/* initial count */
	uint32_t timer_dcr;		/* divide configuration */
	uint8_t lint_level;		/* bit n: last level seen on LINTn */
};

/* What a register or MSR write asks the glue to do. */
struct vlapic_effects {
	bool ipi;			/* send ipi_msg (ICR write), src_id filled */
	struct apic_msg ipi_msg;
	bool eoi_level;			/* EOI of level-triggered eoi_vector */
	uint8_t eoi_vector;
	bool timer_changed;		/* re-read vlapic_timer_deadline() */
};

/* vlapic_accept / vlapic_lint results. */
enum vlapic_acc {
	VLAPIC_ACC_NONE = 0,		/* vector set in IRR, nothing else */
	VLAPIC_ACC_NMI,
	VLAPIC_ACC_INIT,
	VLAPIC_ACC_SIPI,		/* start-up vector in the message */
	VLAPIC_ACC_EXTINT,		/* take the vector from the 8259 */
	VLAPIC_ACC_IGNORED,		/* dropped (disabled, masked, SMI, ...) */
};

void vlapic_reset(struct vlapic *l, uint32_t apic_id, bool bsp);
void vlapic_init_signal(struct vlapic *l);

bool vlapic_hw_enabled(const struct vlapic *l);
bool vlapic_x2apic_mode(const struct vlapic *l);
/* The ID a message's dest and src_id use in the current mode. */
uint32_t vlapic_id(const struct vlapic *l);

/*
 * 4-byte, 4-aligned access at off (0..0xff0) of the APIC page.  -EINVAL
 * for any other shape, -ENODEV when the MMIO page is not there (APIC
 * globally disabled or in x2APIC mode: SDM 11.12.1.2): the glue then
 * treats the access as one to nothing (reads 0).  Unknown offsets: 0 with
 * ESR bit 7 set, reads 0.  fx is cleared by every write.
 */
int vlapic_mmio_read(struct vlapic *l, uint32_t off, uint32_t *val, uint64_t now);
int vlapic_mmio_write(struct vlapic *l, uint32_t off, uint32_t val, uint64_t now,
		      struct vlapic_effects *fx);

/*
 * IA32_APIC_BASE, IA32_TSC_DEADLINE and (in x2APIC mode) 0x800-0x8ff.
 * -ENOENT: not an APIC MSR (the glue falls through); -EINVAL: #GP.
 * Moving the APIC base away from 0xfee00000 is refused with -EINVAL.
 */
int vlapic_msr_read(struct vlapic *l, uint32_t msr, uint64_t *val, uint64_t now);
int vlapic_msr_write(struct vlapic *l, uint32_t msr, uint64_t val, uint64_t now,
		     struct vlapic_effects *fx);

/* Does m (already a message on the bus) name this APIC? */
bool vlapic_match(const struct vlapic *l, const struct apic_msg *m);
/* Accept a message routed here; enum vlapic_acc. */
int vlapic_accept(struct vlapic *l, const struct apic_msg *m);
/* A level change on LINT0 (pin 0) or LINT1 (pin 1); enum vlapic_acc. */
int vlapic_lint(struct vlapic *l, int pin, bool level);

uint8_t vlapic_ppr(const struct vlapic *l);
/* The vector to inject now, or -1. */
int vlapic_pending(const struct vlapic *l);
/* The CPU took vector (INTA): IRR -> ISR. */
void vlapic_ack(struct vlapic *l, int vector);

/*
 * The guest TSC at which the timer next needs attention, 0 if never.
 * A masked timer reports 0: it raises nothing, and the state it would
 * change (current count, IA32_TSC_DEADLINE) is brought up to date from
 * `now` by every read and by the LVT write that unmasks it.
 */
uint64_t vlapic_timer_deadline(const struct vlapic *l);
/* Run the timer up to now; true if that set the timer vector in IRR. */
bool vlapic_timer_expire(struct vlapic *l, uint64_t now);

/* Migration record: fixed little-endian layout, version byte first. */
#define VLAPIC_SAVE_VERSION	1
#define VLAPIC_SAVE_SIZE	188
int vlapic_save(const struct vlapic *l, uint8_t *buf, size_t len, uint64_t now);
int vlapic_load(struct vlapic *l, const uint8_t *buf, size_t len, uint64_t now);

#endif
