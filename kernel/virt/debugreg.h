/*
 * The guest's DR0-DR3 (and, for VT-x, DR6), loaded by hand around guest
 * entry on both vendors: neither the VMCB nor the VMCS holds them (APM
 * Vol. 2 15.5.1: VMRUN switches DR6 and DR7 only; SDM Vol. 3C 25.4.1: the
 * VMCS holds DR7 only).  Without this a guest reads the values the
 * previous guest on the same host CPU left behind.
 *
 * Tern never uses the debug registers itself, so outside a guest DR0-DR3
 * hold 0 and DR6 its reset value on every CPU that runs guests
 * (dr_host_reset at enable), and only what differs is written: a guest
 * that never touches them costs four DR reads per exit.  KVM instead
 * intercepts MOV DR until a guest first uses them; this is simpler.
 *
 * Header-only: the vendors call it in their entry window, which is built
 * -mgeneral-regs-only (Makefile NOSSE_OBJS).
 */
#ifndef TERN_DEBUGREG_H
#define TERN_DEBUGREG_H

#include <stdint.h>
#include "kernel/virt/vm.h"

#define DR6_RESET	0xffff0ff0ull	/* SDM Vol. 3B 18.2.3 */
#define DR7_RESET	0x400ull

static inline uint64_t dr_read(int i)
{
	uint64_t v = 0;

	switch (i) {
	case 0: __asm__ volatile("mov %%db0, %0" : "=r"(v)); break;
	case 1: __asm__ volatile("mov %%db1, %0" : "=r"(v)); break;
	case 2: __asm__ volatile("mov %%db2, %0" : "=r"(v)); break;
	case 3: __asm__ volatile("mov %%db3, %0" : "=r"(v)); break;
	case 6: __asm__ volatile("mov %%db6, %0" : "=r"(v)); break;
	}
	return v;
}

static inline void dr_write(int i, uint64_t v)
{
	switch (i) {
	case 0: __asm__ volatile("mov %0, %%db0" : : "r"(v)); break;
	case 1: __asm__ volatile("mov %0, %%db1" : : "r"(v)); break;
	case 2: __asm__ volatile("mov %0, %%db2" : : "r"(v)); break;
	case 3: __asm__ volatile("mov %0, %%db3" : : "r"(v)); break;
	case 6: __asm__ volatile("mov %0, %%db6" : : "r"(v)); break;
	case 7: __asm__ volatile("mov %0, %%db7" : : "r"(v)); break;
	}
}

/* The host's debug state, on each CPU before its first guest. */
static inline void dr_host_reset(void)
{
	dr_write(7, DR7_RESET);
	for (int i = 0; i < 4; i++)
		dr_write(i, 0);
	dr_write(6, DR6_RESET);
}

/* Just before entry: the guest's DR0-3 (and DR6 where with_dr6). */
static inline void dr_guest_enter(struct vcpu *v, bool with_dr6)
{
	for (int i = 0; i < 4; i++)
		if (v->st.dr[i])
			dr_write(i, v->st.dr[i]);
	if (with_dr6 && v->st.dr6 != DR6_RESET)
		dr_write(6, v->st.dr6);
}

/* Just after the exit: the guest's values back into v->st (it writes
 * them without exits), the host's into the registers. */
static inline void dr_guest_leave(struct vcpu *v, bool with_dr6)
{
	for (int i = 0; i < 4; i++) {
		v->st.dr[i] = dr_read(i);
		if (v->st.dr[i])
			dr_write(i, 0);
	}
	if (with_dr6) {
		v->st.dr6 = dr_read(6);
		if (v->st.dr6 != DR6_RESET)
			dr_write(6, DR6_RESET);
	}
}

#endif
