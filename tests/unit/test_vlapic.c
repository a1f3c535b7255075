/*
 * Unit tests for kernel/devices/model/vlapic.c: register masks, priority,
 * acceptance, IPIs, destination matching, x2APIC MSRs, the timer and the
 * migration record, against the values SDM Vol. 3A chapter 11 gives.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/vlapic.h"
#include "kernel/lib/byteorder.h"

static struct vlapic L;
static struct vlapic_effects FX;
static uint64_t t_now = 100000;

static uint32_t rd(uint32_t off)
{
	uint32_t v = 0xdeadbeef;

	cr_assert_eq(vlapic_mmio_read(&L, off, &v, t_now), 0, "read %#x", off);
	return v;
}

static void wr(uint32_t off, uint32_t v)
{
	cr_assert_eq(vlapic_mmio_write(&L, off, v, t_now, &FX), 0, "write %#x", off);
}

static uint64_t msr_rd(uint32_t msr)
{
	uint64_t v = 0;

	cr_assert_eq(vlapic_msr_read(&L, msr, &v, t_now), 0, "rdmsr %#x", msr);
	return v;
}

static int msr_wr(uint32_t msr, uint64_t v)
{
	return vlapic_msr_write(&L, msr, v, t_now, &FX);
}

/* The latched ESR after a write-to-update. */
static uint32_t esr(void)
{
	wr(VLAPIC_ESR, 0);
	return rd(VLAPIC_ESR);
}

/* A software-enabled xAPIC with ID 3. */
static void t_up(void)
{
	t_now = 100000;
	vlapic_reset(&L, 3, true);
	wr(VLAPIC_SVR, 0x1ff);
}

static void t_x2(void)
{
	t_up();
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, 0xfee00000u | VLAPIC_BASE_EN | VLAPIC_BASE_EXTD |
			    VLAPIC_BASE_BSP), 0);
}

static struct apic_msg fixed(uint8_t vec, bool level)
{
	return (struct apic_msg){ .vector = vec, .dm = APIC_DM_FIXED, .level = level,
				  .assert = true };
}

static void give(uint8_t vec, bool level)
{
	struct apic_msg m = fixed(vec, level);

	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_NONE, "vector %#x", vec);
}

static bool in_irr(unsigned v)
{
	return rd(VLAPIC_IRR0 + (v / 32) * 16) & (1u << (v % 32));
}

static bool in_isr(unsigned v)
{
	return rd(VLAPIC_ISR0 + (v / 32) * 16) & (1u << (v % 32));
}

static bool in_tmr(unsigned v)
{
	return rd(VLAPIC_TMR0 + (v / 32) * 16) & (1u << (v % 32));
}

/* ---- reset and registers ---- */

Test(vlapic, reset_values)
{
	vlapic_reset(&L, 3, true);
	cr_assert_eq(msr_rd(MSR_IA32_APIC_BASE), 0xfee00900u);
	cr_assert_eq(rd(VLAPIC_ID), 0x03000000u);
	cr_assert_eq(rd(VLAPIC_VER), 0x00050014u);
	cr_assert_eq(rd(VLAPIC_TPR), 0);
	cr_assert_eq(rd(VLAPIC_APR), 0);
	cr_assert_eq(rd(VLAPIC_PPR), 0);
	cr_assert_eq(rd(VLAPIC_LDR), 0);
	cr_assert_eq(rd(VLAPIC_DFR), 0xffffffffu);
	cr_assert_eq(rd(VLAPIC_SVR), 0xffu);
	for (uint32_t off = VLAPIC_LVT_TIMER; off <= VLAPIC_LVT_ERROR; off += 16)
		cr_assert_eq(rd(off), 0x00010000u, "lvt %#x", off);
	for (unsigned i = 0; i < 8; i++) {
		cr_assert_eq(rd(VLAPIC_ISR0 + 16 * i), 0);
		cr_assert_eq(rd(VLAPIC_TMR0 + 16 * i), 0);
		cr_assert_eq(rd(VLAPIC_IRR0 + 16 * i), 0);
	}
	cr_assert_eq(rd(VLAPIC_ICR_LO), 0);
	cr_assert_eq(rd(VLAPIC_ICR_HI), 0);
	cr_assert_eq(rd(VLAPIC_TIMER_ICR), 0);
	cr_assert_eq(rd(VLAPIC_TIMER_CCR), 0);
	cr_assert_eq(rd(VLAPIC_TIMER_DCR), 0);
	cr_assert_eq(rd(VLAPIC_ESR), 0);
	cr_assert_eq(vlapic_timer_deadline(&L), 0);
	cr_assert_eq(vlapic_pending(&L), -1);

	vlapic_reset(&L, 0x41, false);
	cr_assert_eq(msr_rd(MSR_IA32_APIC_BASE), 0xfee00800u);
	cr_assert_eq(rd(VLAPIC_ID), 0x41000000u);
	cr_assert_eq(vlapic_id(&L), 0x41);
}

/* Write all ones, then all zeros; read back through the masks. */
Test(vlapic, register_write_masks)
{
	static const struct { uint32_t off, ones, zeros; } t[] = {
		{ VLAPIC_ID, 0xff000000u, 0 },
		{ VLAPIC_TPR, 0xffu, 0 },
		{ VLAPIC_LDR, 0xff000000u, 0 },
		{ VLAPIC_DFR, 0xffffffffu, 0x0fffffffu },
		{ VLAPIC_SVR, 0x3ffu, 0 },
		{ VLAPIC_ICR_HI, 0xff000000u, 0 },
		{ VLAPIC_LVT_TIMER, 0x000700ffu, 0 },
		{ VLAPIC_LVT_THERMAL, 0x000107ffu, 0 },
		{ VLAPIC_LVT_PERF, 0x000107ffu, 0 },
		{ VLAPIC_LVT_LINT0, 0x0001a7ffu, 0 },
		{ VLAPIC_LVT_LINT1, 0x0001a7ffu, 0 },
		{ VLAPIC_LVT_ERROR, 0x000100ffu, 0 },
		{ VLAPIC_TIMER_DCR, 0xbu, 0 },
		{ VLAPIC_TIMER_ICR, 0xffffffffu, 0 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		t_up();
		wr(t[i].off, 0xffffffffu);
		cr_assert_eq(rd(t[i].off), t[i].ones, "%#x ones: %#x", t[i].off, rd(t[i].off));
		if (t[i].off == VLAPIC_SVR)	/* keep it enabled for the zeros */
			continue;
		wr(t[i].off, 0);
		cr_assert_eq(rd(t[i].off), t[i].zeros, "%#x zeros", t[i].off);
	}
	cr_assert_eq(esr(), 0);
}

Test(vlapic, read_only_registers_ignore_writes)
{
	static const uint32_t ro[] = {
		VLAPIC_VER, VLAPIC_APR, VLAPIC_PPR, VLAPIC_RRD, VLAPIC_TIMER_CCR,
		VLAPIC_ISR0, VLAPIC_ISR0 + 0x70, VLAPIC_TMR0 + 0x10, VLAPIC_IRR0 + 0x30,
	};

	t_up();
	give(0x80, true);
	vlapic_ack(&L, 0x80);
	give(0x71, false);
	wr(VLAPIC_TPR, 0x20);
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
		uint32_t before = rd(ro[i]);

		wr(ro[i], 0xffffffffu);
		wr(ro[i], 0);
		cr_assert_eq(rd(ro[i]), before, "%#x changed", ro[i]);
	}
	cr_assert_eq(rd(VLAPIC_VER), VLAPIC_VERSION);
	cr_assert_eq(rd(VLAPIC_PPR), 0x80);
	cr_assert(in_isr(0x80) && in_tmr(0x80) && in_irr(0x71));
	cr_assert_eq(esr(), 0);		/* read-only is no illegal address */
}

Test(vlapic, icr_low_mask_and_idle_status)
{
	t_up();
	wr(VLAPIC_ICR_LO, 0xffffffffu);	/* delivery mode 7: reserved, nothing sent */
	cr_assert_eq(rd(VLAPIC_ICR_LO), 0x000cefffu);
	cr_assert_not(FX.ipi);
	wr(VLAPIC_ICR_LO, 0x1030);	/* status bit written: reads idle */
	cr_assert_eq(rd(VLAPIC_ICR_LO), 0x0030);
	cr_assert(FX.ipi);
}

Test(vlapic, software_disable_forces_lvt_masks)
{
	t_up();
	for (uint32_t off = VLAPIC_LVT_TIMER; off <= VLAPIC_LVT_ERROR; off += 16) {
		wr(off, 0x40);
		cr_assert_eq(rd(off), 0x40, "%#x", off);
	}
	wr(VLAPIC_SVR, 0xff);		/* software disable: every mask set */
	for (uint32_t off = VLAPIC_LVT_TIMER; off <= VLAPIC_LVT_ERROR; off += 16) {
		cr_assert_eq(rd(off), 0x10040, "%#x", off);
		wr(off, 0x41);		/* cannot clear it while disabled */
		cr_assert_eq(rd(off), 0x10041, "%#x", off);
	}
	wr(VLAPIC_SVR, 0x1ff);
	wr(VLAPIC_LVT_LINT0, 0x41);
	cr_assert_eq(rd(VLAPIC_LVT_LINT0), 0x41);
}

Test(vlapic, illegal_register_addresses)
{
	static const uint32_t bad[] = { 0x000, 0x010, 0x040, 0x050, 0x2f0, 0x2a0, 0x3a0,
					0x3f0, 0x400, 0xff0, 0x024, 0x3e8 };
	uint32_t v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t_up();
		cr_assert_eq(rd(bad[i]), 0, "%#x", bad[i]);
		cr_assert_eq(esr(), VLAPIC_ESR_ILLEGAL_REG, "%#x", bad[i]);
		wr(bad[i], 0x12345678);
		cr_assert_eq(esr(), VLAPIC_ESR_ILLEGAL_REG, "%#x", bad[i]);
		cr_assert_eq(esr(), 0);
	}
	cr_assert_eq(vlapic_mmio_read(&L, 0x21, &v, t_now), -EINVAL);
	cr_assert_eq(vlapic_mmio_read(&L, 0x1000, &v, t_now), -EINVAL);
	cr_assert_eq(vlapic_mmio_write(&L, 0x82, 1, t_now, &FX), -EINVAL);
	cr_assert_eq(rd(VLAPIC_TPR), 0);
	cr_assert_eq(esr(), 0);
}

Test(vlapic, esr_write_to_update_and_error_lvt)
{
	t_up();
	wr(VLAPIC_LVT_ERROR, 0xfe);
	rd(0x2f0);				/* illegal register */
	cr_assert_eq(rd(VLAPIC_ESR), 0);	/* not latched yet */
	cr_assert(in_irr(0xfe));		/* error interrupt raised */
	wr(VLAPIC_ESR, 0);
	cr_assert_eq(rd(VLAPIC_ESR), 0x80);
	cr_assert_eq(rd(VLAPIC_ESR), 0x80);	/* reads do not clear */
	{
		struct apic_msg m = fixed(7, false);

		cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_IGNORED);
	}
	wr(VLAPIC_ESR, 0xffffffffu);		/* the value written is ignored */
	cr_assert_eq(rd(VLAPIC_ESR), VLAPIC_ESR_RECV_ILLEGAL_VEC);
	cr_assert_not(in_irr(7));
	cr_assert_eq(esr(), 0);
}

Test(vlapic, masked_error_lvt_raises_nothing)
{
	t_up();
	wr(VLAPIC_LVT_ERROR, 0x100fe);
	rd(0x2f0);
	cr_assert_not(in_irr(0xfe));
	cr_assert_eq(esr(), 0x80);
}

/* ---- priority, acceptance, ack and EOI ---- */

Test(vlapic, ppr_arithmetic)
{
	static const struct { uint8_t tpr; int isr; uint8_t ppr; } t[] = {
		{ 0x00, -1, 0x00 }, { 0x35, -1, 0x35 }, { 0x35, 0x41, 0x40 },
		{ 0x45, 0x41, 0x45 }, { 0x40, 0x4f, 0x40 }, { 0x4f, 0x50, 0x50 },
		{ 0xff, 0xfe, 0xff }, { 0x10, 0xef, 0xe0 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		t_up();
		wr(VLAPIC_TPR, t[i].tpr);
		if (t[i].isr >= 0) {
			give((uint8_t)t[i].isr, false);
			vlapic_ack(&L, t[i].isr);
		}
		cr_assert_eq(rd(VLAPIC_PPR), t[i].ppr, "case %zu", i);
		cr_assert_eq(vlapic_ppr(&L), t[i].ppr);
	}
}

Test(vlapic, pending_priority_and_nesting)
{
	t_up();
	give(0x31, false);
	give(0x52, false);
	give(0x51, false);
	cr_assert_eq(vlapic_pending(&L), 0x52);
	wr(VLAPIC_TPR, 0x50);			/* same class: blocked */
	cr_assert_eq(vlapic_pending(&L), -1);
	wr(VLAPIC_TPR, 0x4f);
	cr_assert_eq(vlapic_pending(&L), 0x52);
	wr(VLAPIC_TPR, 0);
	vlapic_ack(&L, 0x52);
	cr_assert(in_isr(0x52) && !in_irr(0x52));
	cr_assert_eq(vlapic_pending(&L), -1);	/* 0x51 is the in-service class */
	give(0x61, false);
	cr_assert_eq(vlapic_pending(&L), 0x61);	/* nests above */
	vlapic_ack(&L, 0x61);
	cr_assert_eq(rd(VLAPIC_PPR), 0x60);
	wr(VLAPIC_EOI, 0);
	cr_assert_not(in_isr(0x61));
	cr_assert(in_isr(0x52));
	cr_assert(!FX.ipi && !FX.eoi_level && !FX.timer_changed);
	cr_assert_eq(vlapic_pending(&L), -1);
	wr(VLAPIC_EOI, 0);
	cr_assert_eq(vlapic_pending(&L), 0x51);
	vlapic_ack(&L, 0x51);
	wr(VLAPIC_EOI, 0);
	cr_assert_eq(vlapic_pending(&L), 0x31);
	vlapic_ack(&L, 0x31);
	wr(VLAPIC_EOI, 0);
	cr_assert_eq(vlapic_pending(&L), -1);
	wr(VLAPIC_EOI, 0);			/* nothing in service: harmless */
	cr_assert_not(FX.eoi_level);
	cr_assert_eq(rd(VLAPIC_PPR), 0);
}

Test(vlapic, ack_of_absent_vector_ignored)
{
	t_up();
	give(0x40, false);
	vlapic_ack(&L, 0x41);
	vlapic_ack(&L, 5);
	vlapic_ack(&L, -1);
	vlapic_ack(&L, 256);
	cr_assert(in_irr(0x40));
	for (unsigned i = 0; i < 8; i++)
		cr_assert_eq(rd(VLAPIC_ISR0 + 16 * i), 0);
}

Test(vlapic, level_eoi_reported)
{
	t_up();
	give(0x40, true);
	cr_assert(in_tmr(0x40));
	give(0x90, false);
	cr_assert_not(in_tmr(0x90));
	vlapic_ack(&L, 0x90);
	vlapic_ack(&L, 0x40);
	wr(VLAPIC_EOI, 0);			/* 0x90: edge */
	cr_assert_not(FX.eoi_level);
	wr(VLAPIC_EOI, 0);			/* 0x40: level */
	cr_assert(FX.eoi_level);
	cr_assert_eq(FX.eoi_vector, 0x40);
	/* An edge message on a level vector clears its TMR bit. */
	give(0x40, false);
	cr_assert_not(in_tmr(0x40));
}

Test(vlapic, accept_by_mode_and_state)
{
	struct apic_msg m = fixed(0x40, false);

	t_up();
	m.dm = APIC_DM_NMI;
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_NMI);
	m.dm = APIC_DM_INIT;
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_INIT);
	m.level = true;
	m.assert = false;
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_IGNORED);	/* de-assert */
	m = fixed(0x98, false);
	m.dm = APIC_DM_SIPI;
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_SIPI);
	m.dm = APIC_DM_EXTINT;
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_EXTINT);
	m.dm = APIC_DM_SMI;
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_IGNORED);
	m = fixed(0x40, true);
	m.assert = false;
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_IGNORED);
	m.dm = APIC_DM_LOWPRI;
	m.assert = true;
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_NONE);
	cr_assert(in_irr(0x40) && in_tmr(0x40));
	cr_assert_eq(vlapic_pending(&L), 0x40);

	/* Software-disabled: fixed dropped, NMI/INIT/SIPI still taken,
	 * what is in IRR still delivered (SDM 11.4.7.2). */
	wr(VLAPIC_SVR, 0xff);
	m = fixed(0x50, false);
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_IGNORED);
	cr_assert_not(in_irr(0x50));
	cr_assert_eq(vlapic_pending(&L), 0x40);
	m.dm = APIC_DM_NMI;
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_NMI);
	m.dm = APIC_DM_SIPI;
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_SIPI);

	/* Globally disabled: nothing. */
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, 0xfee00000u), 0);
	m.dm = APIC_DM_NMI;
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_IGNORED);
	m.dm = APIC_DM_INIT;
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_IGNORED);
	cr_assert_eq(vlapic_pending(&L), -1);
}

Test(vlapic, accept_illegal_vectors)
{
	t_up();
	for (unsigned v = 0; v < 16; v++) {
		struct apic_msg m = fixed((uint8_t)v, false);

		cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_IGNORED);
	}
	cr_assert_eq(rd(VLAPIC_IRR0), 0);
	cr_assert_eq(esr(), VLAPIC_ESR_RECV_ILLEGAL_VEC);
	give(16, false);
	cr_assert_eq(rd(VLAPIC_IRR0), 1u << 16);
	cr_assert_eq(vlapic_pending(&L), 16);
}

Test(vlapic, init_signal_keeps_id_and_base)
{
	t_up();
	wr(VLAPIC_ID, 0x07000000);
	wr(VLAPIC_TPR, 0x30);
	wr(VLAPIC_LDR, 0x01000000);
	wr(VLAPIC_LVT_LINT0, 0x700);
	give(0x40, false);
	vlapic_init_signal(&L);
	cr_assert_eq(rd(VLAPIC_ID), 0x07000000);
	cr_assert_eq(msr_rd(MSR_IA32_APIC_BASE), 0xfee00900u);
	cr_assert_eq(rd(VLAPIC_TPR), 0);
	cr_assert_eq(rd(VLAPIC_LDR), 0);
	cr_assert_eq(rd(VLAPIC_SVR), 0xff);
	cr_assert_eq(rd(VLAPIC_LVT_LINT0), 0x10000);
	cr_assert_not(in_irr(0x40));

	t_x2();
	vlapic_init_signal(&L);
	cr_assert(vlapic_x2apic_mode(&L));
	cr_assert_eq(msr_rd(0x80d), 0x8);	/* LDR still derived */
	cr_assert_eq(msr_rd(0x80f), 0xff);
}

/* ---- IPIs ---- */

static struct apic_msg t_icr(uint32_t hi, uint32_t lo)
{
	wr(VLAPIC_ICR_HI, hi);
	wr(VLAPIC_ICR_LO, lo);
	cr_assert(FX.ipi, "icr %#x", lo);
	return FX.ipi_msg;
}

Test(vlapic, icr_to_messages)
{
	struct apic_msg m;

	t_up();
	m = t_icr(0x05000000, 0x4031);
	cr_assert_eq(m.dest, 5);
	cr_assert_eq(m.vector, 0x31);
	cr_assert_eq(m.dm, APIC_DM_FIXED);
	cr_assert_eq(m.shorthand, APIC_SH_NONE);
	cr_assert(!m.logical && !m.level && m.assert && !m.x2apic);
	cr_assert_eq(m.src_id, 3);
	cr_assert_eq(rd(VLAPIC_ICR_LO), 0x4031);

	m = t_icr(0x0f000000, 0x4400 | 0x800);	/* NMI, logical */
	cr_assert_eq(m.dm, APIC_DM_NMI);
	cr_assert(m.logical);
	cr_assert_eq(m.dest, 0x0f);

	m = t_icr(0x02000000, 0xc500);		/* INIT assert, level */
	cr_assert_eq(m.dm, APIC_DM_INIT);
	cr_assert(m.level && m.assert);
	m = t_icr(0x02000000, 0x8500);		/* INIT de-assert (Linux sends it) */
	cr_assert(m.level && !m.assert);
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_IGNORED);
	m = t_icr(0x02000000, 0x0500);		/* INIT, level bit 0, edge */
	cr_assert(!m.level && m.assert);
	cr_assert_eq(vlapic_accept(&L, &m), VLAPIC_ACC_INIT);

	m = t_icr(0x02000000, 0x4698);		/* SIPI */
	cr_assert_eq(m.dm, APIC_DM_SIPI);
	cr_assert_eq(m.vector, 0x98);

	m = t_icr(0, 0x40000 | 0x40);
	cr_assert_eq(m.shorthand, APIC_SH_SELF);
	cr_assert(vlapic_match(&L, &m));
	m = t_icr(0, 0x80000 | 0x40);
	cr_assert_eq(m.shorthand, APIC_SH_ALL);
	cr_assert(vlapic_match(&L, &m));
	m = t_icr(0, 0xc0000 | 0x40);
	cr_assert_eq(m.shorthand, APIC_SH_OTHERS);
	cr_assert_not(vlapic_match(&L, &m));
	cr_assert_eq(esr(), 0);
}

Test(vlapic, icr_illegal_and_reserved)
{
	t_up();
	wr(VLAPIC_ICR_LO, 0x4003);		/* fixed vector 3 */
	cr_assert_not(FX.ipi);
	cr_assert_eq(esr(), VLAPIC_ESR_SEND_ILLEGAL_VEC);
	wr(VLAPIC_ICR_LO, 0x4103);		/* lowest priority vector 3 */
	cr_assert_not(FX.ipi);
	cr_assert_eq(esr(), VLAPIC_ESR_SEND_ILLEGAL_VEC);
	wr(VLAPIC_ICR_LO, 0x4300);		/* delivery mode 3: reserved */
	cr_assert_not(FX.ipi);
	wr(VLAPIC_ICR_LO, 0x4400);		/* NMI: vector ignored */
	cr_assert(FX.ipi);
	cr_assert_eq(esr(), 0);
}

/* ---- destinations ---- */

static struct apic_msg dst(uint32_t dest, bool logical, uint8_t sh, uint32_t src)
{
	return (struct apic_msg){ .dest = dest, .logical = logical, .shorthand = sh,
				  .src_id = src, .dm = APIC_DM_FIXED, .vector = 0x40 };
}

static bool mt(uint32_t dest, bool logical, uint8_t sh, uint32_t src)
{
	struct apic_msg m = dst(dest, logical, sh, src);

	return vlapic_match(&L, &m);
}

Test(vlapic, match_xapic_physical_and_shorthands)
{
	t_up();
	cr_assert(mt(3, false, 0, 9));
	cr_assert_not(mt(4, false, 0, 9));
	cr_assert(mt(0xff, false, 0, 9));
	cr_assert_not(mt(0x103, false, 0, 9));
	cr_assert(mt(0, false, APIC_SH_SELF, 3));
	cr_assert_not(mt(3, false, APIC_SH_SELF, 4));
	cr_assert(mt(0, false, APIC_SH_ALL, 4));
	cr_assert(mt(0, false, APIC_SH_ALL, 3));
	cr_assert(mt(3, false, APIC_SH_OTHERS, 4));
	cr_assert_not(mt(3, false, APIC_SH_OTHERS, 3));
	wr(VLAPIC_ID, 0x09000000);		/* the written ID is the one matched */
	cr_assert(mt(9, false, 0, 0));
	cr_assert_not(mt(3, false, 0, 0));
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, 0xfee00000u), 0);
	cr_assert_not(mt(0xff, false, 0, 0));
	cr_assert_not(mt(0, false, APIC_SH_ALL, 0));
}

Test(vlapic, match_xapic_logical_flat_and_cluster)
{
	t_up();
	wr(VLAPIC_LDR, 0x04000000);		/* flat, bit 2 */
	cr_assert(mt(0x04, true, 0, 9));
	cr_assert(mt(0x0c, true, 0, 9));
	cr_assert_not(mt(0x08, true, 0, 9));
	cr_assert(mt(0xff, true, 0, 9));
	cr_assert_not(mt(0x00, true, 0, 9));
	cr_assert_not(mt(0x04, false, 0, 9));

	wr(VLAPIC_DFR, 0x0fffffff);		/* cluster model */
	wr(VLAPIC_LDR, 0x21000000);		/* cluster 2, bit 0 */
	cr_assert(mt(0x21, true, 0, 9));
	cr_assert(mt(0x23, true, 0, 9));
	cr_assert_not(mt(0x11, true, 0, 9));
	cr_assert_not(mt(0x22, true, 0, 9));
	cr_assert_not(mt(0x31, true, 0, 9));
	cr_assert(mt(0xff, true, 0, 9));
}

Test(vlapic, match_x2apic)
{
	struct apic_msg m;

	t_up();
	vlapic_reset(&L, 0x25, false);
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, 0xfee00000u | VLAPIC_BASE_EN | VLAPIC_BASE_EXTD),
		     0);
	cr_assert_eq(msr_rd(0x80d), 0x00020020u);	/* cluster 2, bit 5 */
	cr_assert_eq(msr_rd(0x802), 0x25);
	m = dst(0x25, false, 0, 0);
	m.x2apic = true;
	cr_assert(vlapic_match(&L, &m));
	m.dest = 0x125;
	cr_assert_not(vlapic_match(&L, &m));
	m.dest = 0xff;				/* not a broadcast in x2APIC */
	cr_assert_not(vlapic_match(&L, &m));
	m.dest = 0xffffffffu;
	cr_assert(vlapic_match(&L, &m));
	m.logical = true;
	m.dest = 0x00020020u;
	cr_assert(vlapic_match(&L, &m));
	m.dest = 0x0002ffffu;
	cr_assert(vlapic_match(&L, &m));
	m.dest = 0x00010020u;
	cr_assert_not(vlapic_match(&L, &m));
	m.dest = 0x00020010u;
	cr_assert_not(vlapic_match(&L, &m));
	/* An 8-bit (IOAPIC) message still broadcasts with 0xff. */
	m = dst(0xff, false, 0, 0);
	cr_assert(vlapic_match(&L, &m));
	m = dst(0x25, false, APIC_SH_SELF, 0x25);
	cr_assert(vlapic_match(&L, &m));
}

/* ---- x2APIC ---- */

Test(vlapic, apic_base_transitions)
{
	const uint64_t b = 0xfee00000u, en = VLAPIC_BASE_EN, x2 = VLAPIC_BASE_EXTD;

	t_up();
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b | x2), -EINVAL);	/* invalid state */
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, 0xfec00000u | en), -EINVAL);	/* moved */
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b | en | 1), -EINVAL);	/* reserved */
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b | en | (1u << 9)), -EINVAL);
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b | en | (1ull << 52)), -EINVAL);
	cr_assert_eq(msr_rd(MSR_IA32_APIC_BASE), b | en | VLAPIC_BASE_BSP);
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b | en), 0);	/* BSP flag writable */
	cr_assert_eq(msr_rd(MSR_IA32_APIC_BASE), b | en);

	wr(VLAPIC_TPR, 0x20);
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b | en | x2), 0);	/* xAPIC -> x2APIC */
	cr_assert(vlapic_x2apic_mode(&L));
	cr_assert_eq(msr_rd(0x808), 0x20);		/* state kept */
	cr_assert_eq(msr_rd(0x80d), 0x8);		/* ID 3: cluster 0, bit 3 */
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b | en), -EINVAL);	/* x2APIC -> xAPIC */
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b | x2), -EINVAL);
	cr_assert(vlapic_x2apic_mode(&L));
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b | en | x2), 0);	/* no change */
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b), 0);		/* x2APIC -> disabled */
	cr_assert_not(vlapic_hw_enabled(&L));
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b | en | x2), -EINVAL);	/* disabled -> x2 */
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b | x2), -EINVAL);
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, b | en), 0);		/* disabled -> xAPIC */
	cr_assert_eq(rd(VLAPIC_ID), 0x03000000);
	cr_assert_eq(rd(VLAPIC_TPR), 0);		/* reset by the disable */
	cr_assert_eq(rd(VLAPIC_SVR), 0xff);
	cr_assert_eq(rd(VLAPIC_LDR), 0);
	cr_assert_eq(rd(VLAPIC_LVT_TIMER), 0x10000);
}

Test(vlapic, global_disable_keeps_written_xapic_id)
{
	uint32_t v;

	t_up();
	wr(VLAPIC_ID, 0x0a000000);
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, 0xfee00000u), 0);
	cr_assert_eq(vlapic_mmio_read(&L, VLAPIC_ID, &v, t_now), -ENODEV);
	cr_assert_eq(vlapic_mmio_write(&L, VLAPIC_TPR, 0x10, t_now, &FX), -ENODEV);
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, 0xfee00000u | VLAPIC_BASE_EN), 0);
	cr_assert_eq(rd(VLAPIC_ID), 0x0a000000);
	cr_assert_eq(rd(VLAPIC_TPR), 0);
}

Test(vlapic, msr_access_in_xapic_mode)
{
	uint64_t v;

	t_up();
	cr_assert_eq(vlapic_msr_read(&L, 0x802, &v, t_now), -EINVAL);
	cr_assert_eq(vlapic_msr_read(&L, 0x8ff, &v, t_now), -EINVAL);
	cr_assert_eq(msr_wr(0x808, 0), -EINVAL);
	cr_assert_eq(vlapic_msr_read(&L, 0x10, &v, t_now), -ENOENT);
	cr_assert_eq(vlapic_msr_read(&L, 0x7ff, &v, t_now), -ENOENT);
	cr_assert_eq(vlapic_msr_read(&L, 0x900, &v, t_now), -ENOENT);
	cr_assert_eq(msr_wr(0x10, 0), -ENOENT);
	cr_assert_eq(msr_rd(MSR_IA32_TSC_DEADLINE), 0);
}

Test(vlapic, msr_access_in_x2apic_mode)
{
	static const uint32_t absent[] = { 0x800, 0x801, 0x809, 0x80c, 0x80e, 0x82f, 0x831,
					   0x83a, 0x840, 0x8ff };
	static const uint32_t ro[] = { 0x802, 0x803, 0x80a, 0x80d, 0x810, 0x817, 0x818,
				       0x820, 0x827, 0x839 };
	uint64_t v;
	uint32_t m;

	t_x2();
	cr_assert_eq(vlapic_mmio_read(&L, VLAPIC_ID, &m, t_now), -ENODEV);
	cr_assert_eq(m, 0);
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
		cr_assert_eq(vlapic_msr_read(&L, absent[i], &v, t_now), -EINVAL, "%#x", absent[i]);
		cr_assert_eq(msr_wr(absent[i], 0), -EINVAL, "%#x", absent[i]);
	}
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
		cr_assert_eq(vlapic_msr_read(&L, ro[i], &v, t_now), 0, "%#x", ro[i]);
		cr_assert_eq(msr_wr(ro[i], v), -EINVAL, "%#x", ro[i]);
	}
	cr_assert_eq(msr_rd(0x802), 3);
	cr_assert_eq(msr_rd(0x803), VLAPIC_VERSION);
	/* Write-only EOI and SELF IPI. */
	cr_assert_eq(vlapic_msr_read(&L, 0x80b, &v, t_now), -EINVAL);
	cr_assert_eq(vlapic_msr_read(&L, 0x83f, &v, t_now), -EINVAL);
	cr_assert_eq(msr_wr(0x80b, 1), -EINVAL);
	cr_assert_eq(msr_wr(0x80b, 0), 0);
	/* Reserved bits #GP (SDM 11.12.1.3). */
	cr_assert_eq(msr_wr(0x808, 0x100), -EINVAL);
	cr_assert_eq(msr_wr(0x808, 1ull << 32), -EINVAL);
	cr_assert_eq(msr_wr(0x808, 0x2f), 0);
	cr_assert_eq(msr_rd(0x808), 0x2f);
	cr_assert_eq(msr_wr(0x80f, 0x1000 | 0x1ff), -EINVAL);
	cr_assert_eq(msr_wr(0x80f, 0x3ff), 0);
	cr_assert_eq(msr_wr(0x828, 1), -EINVAL);
	cr_assert_eq(msr_wr(0x828, 0), 0);
	cr_assert_eq(msr_wr(0x83e, 0x10), -EINVAL);
	cr_assert_eq(msr_wr(0x83e, 0xb), 0);
	cr_assert_eq(msr_rd(0x83e), 0xb);
	cr_assert_eq(msr_wr(0x832, 0x80000), -EINVAL);	/* timer bit 19 */
	cr_assert_eq(msr_wr(0x835, 0x1a7ff), 0);
	cr_assert_eq(msr_rd(0x835), 0x1a7ff);
	cr_assert_eq(msr_wr(0x837, 0x700), -EINVAL);	/* error LVT has no mode */
	cr_assert_eq(msr_wr(0x838, 0xffffffffu), 0);
	cr_assert_eq(msr_rd(0x838), 0xffffffffu);
	cr_assert_eq(msr_wr(0x838, 1ull << 32), -EINVAL);
}

Test(vlapic, x2apic_icr_and_self_ipi)
{
	struct apic_msg m;
	uint64_t v;

	t_x2();
	cr_assert_eq(msr_wr(0x830, (0x12345678ull << 32) | 0x4831), 0);
	cr_assert(FX.ipi);
	m = FX.ipi_msg;
	cr_assert_eq(m.dest, 0x12345678u);
	cr_assert(m.x2apic && m.logical && m.assert);
	cr_assert_eq(m.vector, 0x31);
	cr_assert_eq(m.src_id, 3);
	cr_assert_eq(msr_rd(0x830), (0x12345678ull << 32) | 0x4831);
	cr_assert_eq(msr_wr(0x830, 0x1031), -EINVAL);	/* bit 12 reserved in x2APIC */
	cr_assert_eq(msr_wr(0x830, 0x100031), -EINVAL);
	cr_assert_eq(msr_wr(0x831, 0), -EINVAL);

	cr_assert_eq(msr_wr(0x83f, 0x41), 0);
	cr_assert_not(FX.ipi);
	cr_assert_eq(vlapic_msr_read(&L, 0x820 + 2, &v, t_now), 0);
	cr_assert_eq(v, 1u << 1);			/* vector 0x41 */
	cr_assert_eq(vlapic_pending(&L), 0x41);
	cr_assert_eq(msr_wr(0x83f, 0x141), -EINVAL);
	cr_assert_eq(msr_wr(0x83f, 0x5), 0);		/* illegal: ESR, no IRR */
	cr_assert_eq(msr_rd(0x820), 0);
	cr_assert_eq(msr_wr(0x828, 0), 0);
	cr_assert_eq(msr_rd(0x828), VLAPIC_ESR_RECV_ILLEGAL_VEC);
}

/* ---- LINT pins ---- */

Test(vlapic, lint_modes)
{
	t_up();
	cr_assert_eq(vlapic_lint(&L, 0, true), VLAPIC_ACC_IGNORED);	/* masked */
	cr_assert_eq(vlapic_lint(&L, 0, false), VLAPIC_ACC_IGNORED);
	wr(VLAPIC_LVT_LINT0, 0x700);			/* ExtINT: level */
	cr_assert_eq(vlapic_lint(&L, 0, true), VLAPIC_ACC_EXTINT);
	cr_assert_eq(vlapic_lint(&L, 0, true), VLAPIC_ACC_EXTINT);
	cr_assert_eq(vlapic_lint(&L, 0, false), VLAPIC_ACC_IGNORED);
	wr(VLAPIC_LVT_LINT1, 0x400);			/* NMI: rising edge */
	cr_assert_eq(vlapic_lint(&L, 1, true), VLAPIC_ACC_NMI);
	cr_assert_eq(vlapic_lint(&L, 1, true), VLAPIC_ACC_IGNORED);
	cr_assert_eq(vlapic_lint(&L, 1, false), VLAPIC_ACC_IGNORED);
	cr_assert_eq(vlapic_lint(&L, 1, true), VLAPIC_ACC_NMI);
	cr_assert_eq(vlapic_lint(&L, 1, false), VLAPIC_ACC_IGNORED);
	wr(VLAPIC_LVT_LINT1, 0x8050);			/* fixed; LINT1 is edge anyway */
	cr_assert_eq(vlapic_lint(&L, 1, true), VLAPIC_ACC_NONE);
	cr_assert(in_irr(0x50) && !in_tmr(0x50));
	cr_assert_eq(vlapic_lint(&L, 1, true), VLAPIC_ACC_IGNORED);
	cr_assert_eq(vlapic_lint(&L, 2, true), VLAPIC_ACC_IGNORED);
	cr_assert_eq(vlapic_lint(&L, -1, true), VLAPIC_ACC_IGNORED);
}

Test(vlapic, lint0_level_remote_irr)
{
	t_up();
	wr(VLAPIC_LVT_LINT0, 0x8060);
	cr_assert_eq(vlapic_lint(&L, 0, true), VLAPIC_ACC_NONE);
	cr_assert(in_irr(0x60) && in_tmr(0x60));
	cr_assert_eq(rd(VLAPIC_LVT_LINT0), 0xc060);	/* remote IRR */
	wr(VLAPIC_LVT_LINT0, 0x8060);			/* read-only bit survives */
	cr_assert_eq(rd(VLAPIC_LVT_LINT0), 0xc060);
	cr_assert_eq(vlapic_lint(&L, 0, true), VLAPIC_ACC_IGNORED);
	vlapic_ack(&L, 0x60);
	wr(VLAPIC_EOI, 0);
	cr_assert(FX.eoi_level);
	cr_assert_eq(FX.eoi_vector, 0x60);
	cr_assert_eq(rd(VLAPIC_LVT_LINT0), 0x8060);
	cr_assert_eq(vlapic_lint(&L, 0, true), VLAPIC_ACC_NONE);
	cr_assert(in_irr(0x60));
}

Test(vlapic, lint_when_globally_disabled)
{
	t_up();
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, 0xfee00000u), 0);
	cr_assert_eq(vlapic_lint(&L, 0, true), VLAPIC_ACC_EXTINT);	/* INTR */
	cr_assert_eq(vlapic_lint(&L, 0, false), VLAPIC_ACC_IGNORED);
	cr_assert_eq(vlapic_lint(&L, 1, true), VLAPIC_ACC_NMI);
	cr_assert_eq(vlapic_lint(&L, 1, true), VLAPIC_ACC_IGNORED);
}

/* ---- timer ---- */

#define LVT_ONESHOT(v)	(v)
#define LVT_PERIODIC(v)	((1u << 17) | (v))
#define LVT_TSCDL(v)	((2u << 17) | (v))

Test(vlapic, timer_one_shot_each_divisor)
{
	static const struct { uint32_t dcr; uint64_t div; } t[] = {
		{ 0x0, 2 }, { 0x1, 4 }, { 0x2, 8 }, { 0x3, 16 },
		{ 0x8, 32 }, { 0x9, 64 }, { 0xa, 128 }, { 0xb, 1 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t t0 = 100000, div = t[i].div, dl = t0 + 1000 * div;

		t_up();
		wr(VLAPIC_TIMER_DCR, t[i].dcr);
		cr_assert(FX.timer_changed);
		wr(VLAPIC_LVT_TIMER, LVT_ONESHOT(0x30));
		cr_assert(FX.timer_changed);
		wr(VLAPIC_TIMER_ICR, 1000);
		cr_assert(FX.timer_changed);
		cr_assert_eq(vlapic_timer_deadline(&L), dl, "dcr %#x", t[i].dcr);
		cr_assert_eq(rd(VLAPIC_TIMER_CCR), 1000);
		t_now = t0 + div - 1;
		cr_assert_eq(rd(VLAPIC_TIMER_CCR), 1000);	/* steps once per div ticks */
		t_now = t0 + div;
		cr_assert_eq(rd(VLAPIC_TIMER_CCR), 999);
		t_now = t0 + 500 * div;
		cr_assert_eq(rd(VLAPIC_TIMER_CCR), 500);
		t_now = dl - 1;
		cr_assert_eq(rd(VLAPIC_TIMER_CCR), 1);
		cr_assert_not(vlapic_timer_expire(&L, dl - 1));
		cr_assert_not(in_irr(0x30));
		t_now = dl;
		cr_assert_eq(rd(VLAPIC_TIMER_CCR), 0);
		cr_assert(vlapic_timer_expire(&L, dl));
		cr_assert(in_irr(0x30));
		cr_assert_eq(vlapic_timer_deadline(&L), 0);
		cr_assert_eq(rd(VLAPIC_TIMER_CCR), 0);
		cr_assert_eq(rd(VLAPIC_TIMER_ICR), 1000);
		cr_assert_not(vlapic_timer_expire(&L, dl + 5000));
	}
}

Test(vlapic, timer_restart_and_stop)
{
	t_up();
	wr(VLAPIC_TIMER_DCR, 0xb);
	wr(VLAPIC_LVT_TIMER, 0x30);
	wr(VLAPIC_TIMER_ICR, 100);
	t_now += 50;
	wr(VLAPIC_TIMER_ICR, 100);		/* rewriting restarts */
	cr_assert_eq(vlapic_timer_deadline(&L), t_now + 100);
	wr(VLAPIC_TIMER_ICR, 0);		/* 0 stops */
	cr_assert(FX.timer_changed);
	cr_assert_eq(vlapic_timer_deadline(&L), 0);
	cr_assert_eq(rd(VLAPIC_TIMER_CCR), 0);
	cr_assert_not(vlapic_timer_expire(&L, t_now + 1000));
}

Test(vlapic, timer_periodic_rearm_and_coalesce)
{
	t_up();
	t_now = 1000;
	wr(VLAPIC_TIMER_DCR, 0xb);
	wr(VLAPIC_LVT_TIMER, LVT_PERIODIC(0x31));
	wr(VLAPIC_TIMER_ICR, 100);
	cr_assert_eq(vlapic_timer_deadline(&L), 1100);
	cr_assert(vlapic_timer_expire(&L, 1100));
	cr_assert_eq(vlapic_timer_deadline(&L), 1200);
	t_now = 1150;
	cr_assert_eq(rd(VLAPIC_TIMER_CCR), 50);
	t_now = 1250;				/* due but not expired: wrapped */
	cr_assert_eq(rd(VLAPIC_TIMER_CCR), 50);
	vlapic_ack(&L, 0x31);
	wr(VLAPIC_EOI, 0);
	/* Missed 1200..1500: one interrupt, phase kept. */
	cr_assert(vlapic_timer_expire(&L, 1555));
	cr_assert(in_irr(0x31));
	cr_assert_eq(vlapic_timer_deadline(&L), 1600);
	t_now = 1555;
	cr_assert_eq(rd(VLAPIC_TIMER_CCR), 45);
	cr_assert_not(vlapic_timer_expire(&L, 1599));
	/* A huge gap costs one division, not a loop. */
	cr_assert(vlapic_timer_expire(&L, 1600 + 100ull * 1000000000ull + 7));
	cr_assert_eq(vlapic_timer_deadline(&L), 1600 + 100ull * 1000000000ull + 100);
}

Test(vlapic, timer_divide_change_keeps_count)
{
	t_up();
	t_now = 10000;
	wr(VLAPIC_TIMER_DCR, 0xb);
	wr(VLAPIC_LVT_TIMER, 0x30);
	wr(VLAPIC_TIMER_ICR, 1000);
	t_now = 10400;
	wr(VLAPIC_TIMER_DCR, 0x0);		/* divide by 2 from here */
	cr_assert(FX.timer_changed);
	cr_assert_eq(rd(VLAPIC_TIMER_CCR), 600);
	cr_assert_eq(vlapic_timer_deadline(&L), 10400 + 1200);
	t_now = 10402;
	cr_assert_eq(rd(VLAPIC_TIMER_CCR), 599);
}

Test(vlapic, timer_tsc_deadline)
{
	t_up();
	wr(VLAPIC_LVT_TIMER, LVT_TSCDL(0x32));
	cr_assert_eq(msr_wr(MSR_IA32_TSC_DEADLINE, 500000), 0);
	cr_assert(FX.timer_changed);
	cr_assert_eq(msr_rd(MSR_IA32_TSC_DEADLINE), 500000);
	cr_assert_eq(vlapic_timer_deadline(&L), 500000);
	wr(VLAPIC_TIMER_ICR, 1000);		/* ignored in this mode */
	cr_assert_eq(rd(VLAPIC_TIMER_ICR), 0);
	cr_assert_eq(rd(VLAPIC_TIMER_CCR), 0);
	cr_assert_eq(vlapic_timer_deadline(&L), 500000);
	cr_assert_not(vlapic_timer_expire(&L, 499999));
	cr_assert(vlapic_timer_expire(&L, 500000));
	cr_assert(in_irr(0x32));
	cr_assert_eq(msr_rd(MSR_IA32_TSC_DEADLINE), 0);
	cr_assert_eq(vlapic_timer_deadline(&L), 0);
	/* A deadline in the past fires at the next expiry check. */
	cr_assert_eq(msr_wr(MSR_IA32_TSC_DEADLINE, 5), 0);
	cr_assert_eq(vlapic_timer_deadline(&L), 5);
	cr_assert(vlapic_timer_expire(&L, t_now));
	/* Writing 0 disarms. */
	cr_assert_eq(msr_wr(MSR_IA32_TSC_DEADLINE, 700000), 0);
	cr_assert_eq(msr_wr(MSR_IA32_TSC_DEADLINE, 0), 0);
	cr_assert_eq(vlapic_timer_deadline(&L), 0);
	cr_assert_eq(msr_rd(MSR_IA32_TSC_DEADLINE), 0);
}

Test(vlapic, timer_mode_switches_disarm)
{
	t_up();
	wr(VLAPIC_LVT_TIMER, LVT_TSCDL(0x32));
	cr_assert_eq(msr_wr(MSR_IA32_TSC_DEADLINE, 500000), 0);
	wr(VLAPIC_LVT_TIMER, LVT_ONESHOT(0x32));	/* leave TSC-deadline mode */
	cr_assert(FX.timer_changed);
	cr_assert_eq(vlapic_timer_deadline(&L), 0);
	cr_assert_eq(msr_rd(MSR_IA32_TSC_DEADLINE), 0);
	cr_assert_eq(msr_wr(MSR_IA32_TSC_DEADLINE, 600000), 0);	/* ignored */
	cr_assert_eq(vlapic_timer_deadline(&L), 0);
	cr_assert_eq(msr_rd(MSR_IA32_TSC_DEADLINE), 0);

	wr(VLAPIC_TIMER_ICR, 1000);
	cr_assert_neq(vlapic_timer_deadline(&L), 0);
	wr(VLAPIC_LVT_TIMER, LVT_ONESHOT(0x33));	/* same mode: keeps running */
	cr_assert_neq(vlapic_timer_deadline(&L), 0);
	wr(VLAPIC_LVT_TIMER, LVT_TSCDL(0x33));		/* enter TSC-deadline mode */
	cr_assert_eq(vlapic_timer_deadline(&L), 0);
	cr_assert_eq(rd(VLAPIC_TIMER_ICR), 0);
	cr_assert_eq(msr_rd(MSR_IA32_TSC_DEADLINE), 0);
	cr_assert_not(vlapic_timer_expire(&L, t_now + 1000000));
	cr_assert_eq(rd(VLAPIC_IRR0 + 0x10), 0);
}

Test(vlapic, timer_masked)
{
	t_up();
	wr(VLAPIC_TIMER_DCR, 0xb);
	wr(VLAPIC_LVT_TIMER, 0x10030);
	wr(VLAPIC_TIMER_ICR, 100);
	cr_assert_eq(vlapic_timer_deadline(&L), 0);	/* nothing to wake for */
	t_now += 40;
	cr_assert_eq(rd(VLAPIC_TIMER_CCR), 60);		/* but it counts */
	t_now += 60;
	cr_assert_eq(rd(VLAPIC_TIMER_CCR), 0);
	t_now += 10;
	wr(VLAPIC_LVT_TIMER, 0x30);			/* unmask after it ran out */
	cr_assert_not(in_irr(0x30));
	cr_assert_eq(vlapic_timer_deadline(&L), 0);
	cr_assert_not(vlapic_timer_expire(&L, t_now));

	/* Unmasked while still counting: fires at its deadline. */
	wr(VLAPIC_LVT_TIMER, 0x10030);
	wr(VLAPIC_TIMER_ICR, 100);
	t_now += 30;
	wr(VLAPIC_LVT_TIMER, 0x30);
	cr_assert_eq(vlapic_timer_deadline(&L), t_now + 70);
	cr_assert(vlapic_timer_expire(&L, t_now + 70));

	/* Masked expiry raises nothing. */
	wr(VLAPIC_LVT_TIMER, 0x10030);
	wr(VLAPIC_TIMER_ICR, 100);
	cr_assert_not(vlapic_timer_expire(&L, t_now + 100));
	vlapic_ack(&L, 0x30);
	cr_assert_eq(vlapic_pending(&L), -1);

	/* A masked TSC deadline passes silently; the MSR then reads 0. */
	wr(VLAPIC_LVT_TIMER, LVT_TSCDL(0x10030));
	cr_assert_eq(msr_wr(MSR_IA32_TSC_DEADLINE, t_now + 10), 0);
	cr_assert_eq(msr_rd(MSR_IA32_TSC_DEADLINE), t_now + 10);
	t_now += 10;
	cr_assert_eq(msr_rd(MSR_IA32_TSC_DEADLINE), 0);
	cr_assert_eq(vlapic_pending(&L), -1);
}

Test(vlapic, timer_illegal_vector)
{
	t_up();
	wr(VLAPIC_TIMER_DCR, 0xb);
	wr(VLAPIC_LVT_TIMER, 0x05);
	wr(VLAPIC_TIMER_ICR, 10);
	cr_assert_not(vlapic_timer_expire(&L, t_now + 10));
	cr_assert_eq(rd(VLAPIC_IRR0), 0);
	cr_assert_eq(esr(), VLAPIC_ESR_RECV_ILLEGAL_VEC);
}

Test(vlapic, software_disable_stops_timer_interrupts)
{
	t_up();
	wr(VLAPIC_TIMER_DCR, 0xb);
	wr(VLAPIC_LVT_TIMER, 0x30);
	wr(VLAPIC_TIMER_ICR, 100);
	wr(VLAPIC_SVR, 0xff);
	cr_assert(FX.timer_changed);
	cr_assert_eq(vlapic_timer_deadline(&L), 0);
	cr_assert_not(vlapic_timer_expire(&L, t_now + 100));
}

/* ---- migration record ---- */

/* Field by field: struct padding is not state. */
static void t_same(const struct vlapic *a, const struct vlapic *b)
{
	cr_assert_eq(a->apic_base, b->apic_base);
	cr_assert_eq(a->deadline, b->deadline);
	cr_assert_eq(a->apic_id, b->apic_id);
	cr_assert_eq(a->id_reg, b->id_reg);
	cr_assert_eq(a->tpr, b->tpr);
	cr_assert_eq(a->ldr, b->ldr);
	cr_assert_eq(a->dfr, b->dfr);
	cr_assert_eq(a->svr, b->svr);
	cr_assert_eq(a->esr, b->esr);
	cr_assert_eq(a->esr_pending, b->esr_pending);
	cr_assert_eq(a->icr_lo, b->icr_lo);
	cr_assert_eq(a->icr_hi, b->icr_hi);
	cr_assert_eq(memcmp(a->lvt, b->lvt, sizeof(a->lvt)), 0);
	cr_assert_eq(memcmp(a->isr, b->isr, sizeof(a->isr)), 0);
	cr_assert_eq(memcmp(a->tmr, b->tmr, sizeof(a->tmr)), 0);
	cr_assert_eq(memcmp(a->irr, b->irr, sizeof(a->irr)), 0);
	cr_assert_eq(a->timer_icr, b->timer_icr);
	cr_assert_eq(a->timer_dcr, b->timer_dcr);
	cr_assert_eq(a->lint_level, b->lint_level);
}

static uint8_t rec[VLAPIC_SAVE_SIZE];

/* A busy xAPIC: IDs, priorities, vectors in flight, a running timer. */
static void t_busy(void)
{
	t_up();
	wr(VLAPIC_ID, 0x05000000);
	wr(VLAPIC_LDR, 0x21000000);
	wr(VLAPIC_DFR, 0x0fffffff);
	wr(VLAPIC_TPR, 0x20);
	wr(VLAPIC_ICR_HI, 0x07000000);
	wr(VLAPIC_ICR_LO, 0x4041);
	wr(VLAPIC_LVT_LINT0, 0x8060);
	vlapic_lint(&L, 0, true);
	wr(VLAPIC_LVT_LINT1, 0x400);
	wr(VLAPIC_LVT_ERROR, 0xfe);
	give(0x80, true);
	vlapic_ack(&L, 0x80);
	give(0x91, false);
	rd(0x2f0);
	wr(VLAPIC_TIMER_DCR, 0x1);
	wr(VLAPIC_LVT_TIMER, LVT_PERIODIC(0xef));
	wr(VLAPIC_TIMER_ICR, 5000);
	t_now += 1234;
}

Test(vlapic, save_load_round_trip)
{
	struct vlapic src, dst_l;
	uint64_t left;

	t_busy();
	src = L;
	cr_assert_eq(vlapic_save(&L, rec, 10, t_now), -ENOSPC);
	cr_assert_eq(vlapic_save(&L, rec, sizeof(rec), t_now), VLAPIC_SAVE_SIZE);
	cr_assert_eq(rec[0], VLAPIC_SAVE_VERSION);
	left = L.deadline - t_now;
	cr_assert_eq(ld_le64(rec + 12), left);
	memset(&dst_l, 0xa5, sizeof(dst_l));
	cr_assert_eq(vlapic_load(&dst_l, rec, sizeof(rec), 7000000), 0);
	cr_assert_eq(dst_l.deadline, 7000000 + left);
	dst_l.deadline = src.deadline;
	t_same(&dst_l, &src);
	/* The copy counts on from the destination's TSC. */
	L = dst_l;
	L.deadline = 7000000 + left;
	t_now = 7000000;
	cr_assert_eq(rd(VLAPIC_TIMER_CCR), (uint32_t)((left + 3) / 4));
	cr_assert(vlapic_timer_expire(&L, 7000000 + left));
	cr_assert_eq(vlapic_timer_deadline(&L), 7000000 + left + 20000);
}

Test(vlapic, save_load_x2apic_and_tsc_deadline)
{
	struct vlapic src, out;

	t_x2();
	cr_assert_eq(msr_wr(0x832, LVT_TSCDL(0x40)), 0);
	cr_assert_eq(msr_wr(MSR_IA32_TSC_DEADLINE, t_now + 999), 0);
	src = L;
	cr_assert_eq(vlapic_save(&L, rec, sizeof(rec), t_now), VLAPIC_SAVE_SIZE);
	cr_assert_eq(vlapic_load(&out, rec, sizeof(rec), 50), 0);
	cr_assert(vlapic_x2apic_mode(&out));
	cr_assert_eq(vlapic_timer_deadline(&out), 50 + 999);
	out.deadline = src.deadline;
	t_same(&out, &src);

	/* A timer already due saves 0 ticks left and fires on arrival. */
	cr_assert_eq(vlapic_save(&L, rec, sizeof(rec), t_now + 5000), VLAPIC_SAVE_SIZE);
	cr_assert_eq(rec[1], 1);
	cr_assert_eq(ld_le64(rec + 12), 0);
	cr_assert_eq(vlapic_load(&out, rec, sizeof(rec), 0), 0);
	cr_assert_neq(vlapic_timer_deadline(&out), 0);
	cr_assert(vlapic_timer_expire(&out, 1));
}

Test(vlapic, save_load_reset_state)
{
	struct vlapic out;

	vlapic_reset(&L, 0, false);
	cr_assert_eq(vlapic_save(&L, rec, sizeof(rec), 0), VLAPIC_SAVE_SIZE);
	cr_assert_eq(vlapic_load(&out, rec, sizeof(rec), 0), 0);
	t_same(&out, &L);
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, 0xfee00000u), 0);
	cr_assert_eq(vlapic_save(&L, rec, sizeof(rec), 0), VLAPIC_SAVE_SIZE);
	cr_assert_eq(vlapic_load(&out, rec, sizeof(rec), 0), 0);
	cr_assert_not(vlapic_hw_enabled(&out));
}

/* One corruption of the busy record: offset, new little-endian value of
 * the given width (1, 4 or 8 bytes). */
struct t_bad {
	const char *what;
	unsigned off, width;
	uint64_t val;
};

static void t_expect_rejected(const uint8_t *good, const struct t_bad *b)
{
	uint8_t r[VLAPIC_SAVE_SIZE];
	struct vlapic keep, out;

	memcpy(r, good, sizeof(r));
	if (b->width == 1)
		r[b->off] = (uint8_t)b->val;
	else if (b->width == 4)
		st_le32(r + b->off, (uint32_t)b->val);
	else
		st_le64(r + b->off, b->val);
	memset(&out, 0x5a, sizeof(out));
	memcpy(&keep, &out, sizeof(keep));
	cr_assert_eq(vlapic_load(&out, r, sizeof(r), 1000), -EINVAL, "%s", b->what);
	cr_assert_eq(memcmp(&out, &keep, sizeof(out)), 0, "%s touched *l", b->what);
}

#define U32(i)	(20 + 4 * (i))

Test(vlapic, load_rejects_corruption)
{
	static const struct t_bad bad[] = {
		{ "version", 0, 1, 2 },
		{ "version 0", 0, 1, 0 },
		{ "flags", 1, 1, 3 },
		{ "lint level", 2, 1, 4 },
		{ "pad", 3, 1, 1 },
		{ "base reserved bit", 4, 8, 0xfee00901ull },
		{ "base bit 9", 4, 8, 0xfee00b00ull },
		{ "base moved", 4, 8, 0xfec00900ull },
		{ "base high", 4, 8, 0x1000fee00900ull },
		{ "extd without en", 4, 8, 0xfee00500ull },
		{ "timer left too far", 12, 8, 4ull * 5000 + 1 },
		{ "id low bits", U32(1), 4, 0x05000001 },
		{ "tpr", U32(2), 4, 0x100 },
		{ "ldr low bits", U32(3), 4, 0x21000010 },
		{ "dfr low bits", U32(4), 4, 0x00000000 },
		{ "dfr model", U32(4), 4, 0x5fffffff },
		{ "svr reserved", U32(5), 4, 0x11ff },
		{ "esr", U32(6), 4, 0x1 },
		{ "esr pending", U32(7), 4, 0x10 },
		{ "icr lo status", U32(8), 4, 0x1041 },
		{ "icr lo reserved", U32(8), 4, 0x100041 },
		{ "icr hi low bits", U32(9), 4, 0x07000001 },
		{ "lvt timer bit 19", U32(10), 4, 0x800ef | (1u << 17) },
		{ "lvt thermal status", U32(11), 4, 0x11000 },
		{ "lvt lint1 remote irr", U32(14), 4, 0x4400 },
		{ "lvt error mode", U32(15), 4, 0x4fe },
		{ "isr vector 3", U32(16), 4, 0x8 },
		{ "tmr vector 15", U32(24), 4, 0x8000 },
		{ "irr vector 0", U32(32), 4, 0x1 },
		{ "dcr", U32(41), 4, 0x4 },
	};
	uint8_t good[VLAPIC_SAVE_SIZE];
	struct vlapic out;

	t_busy();
	cr_assert_eq(vlapic_save(&L, good, sizeof(good), t_now), VLAPIC_SAVE_SIZE);
	cr_assert_eq(vlapic_load(&out, good, sizeof(good), 1000), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		t_expect_rejected(good, &bad[i]);
	cr_assert_eq(vlapic_load(&out, good, sizeof(good) - 1, 0), -EINVAL);
	{
		uint8_t big[VLAPIC_SAVE_SIZE + 1];

		memcpy(big, good, sizeof(good));
		big[VLAPIC_SAVE_SIZE] = 0;
		cr_assert_eq(vlapic_load(&out, big, sizeof(big), 0), -EINVAL);
	}
}

Test(vlapic, load_rejects_inconsistent_modes)
{
	static const struct t_bad bad[] = {
		{ "armed without count", U32(40), 4, 0 },
		{ "unmasked lvt while sw-disabled", U32(5), 4, 0x0ff },
	};
	static const struct t_bad bad_idle[] = {
		{ "left while idle", 12, 8, 5 },
	};
	static const struct t_bad bad_x2[] = {
		{ "x2apic ldr", U32(3), 4, 0x00000004 },
		{ "tscdl with count", U32(40), 4, 10 },
	};
	static const struct t_bad bad_off[] = {
		{ "armed while disabled", 1, 1, 1 },
	};
	uint8_t good[VLAPIC_SAVE_SIZE];

	t_busy();
	cr_assert_eq(vlapic_save(&L, good, sizeof(good), t_now), VLAPIC_SAVE_SIZE);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		t_expect_rejected(good, &bad[i]);

	t_up();
	cr_assert_eq(vlapic_save(&L, good, sizeof(good), t_now), VLAPIC_SAVE_SIZE);
	t_expect_rejected(good, &bad_idle[0]);

	t_x2();
	cr_assert_eq(msr_wr(0x832, LVT_TSCDL(0x40)), 0);
	cr_assert_eq(msr_wr(MSR_IA32_TSC_DEADLINE, t_now + 999), 0);
	cr_assert_eq(vlapic_save(&L, good, sizeof(good), t_now), VLAPIC_SAVE_SIZE);
	for (size_t i = 0; i < sizeof(bad_x2) / sizeof(bad_x2[0]); i++)
		t_expect_rejected(good, &bad_x2[i]);

	t_up();
	cr_assert_eq(msr_wr(MSR_IA32_APIC_BASE, 0xfee00000u), 0);
	cr_assert_eq(vlapic_save(&L, good, sizeof(good), t_now), VLAPIC_SAVE_SIZE);
	t_expect_rejected(good, &bad_off[0]);
}
