/*
 * The one vCPU run loop, shared by both vendors.  Each vCPU owns a host
 * CPU: the loop services requests, enters the guest through hv->vcpu_run,
 * and dispatches on the generic exit kind.  A handler returns VCPU_RESUME
 * or VCPU_PARK; nothing a guest does can stop the host.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/lib/vcpu_check.h"
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/virt/irq.h"
#include "kernel/virt/vm.h"

/* A waiter repeats a kick that was not answered this often (vcpu_kick). */
#define REKICK_US	1000
#define ANSWER_POLL_US	20

static const char *const exit_names[EXIT_KIND_MAX] = {
#define EXIT_KIND_NAME(kind, name)	[EXIT_##kind] = name,
	EXIT_KINDS(EXIT_KIND_NAME)
#undef EXIT_KIND_NAME
};

const char *exit_kind_name(enum exit_kind k)
{
	return k < EXIT_KIND_MAX ? exit_names[k] : "?";
}

void vcpu_inject_exception(struct vcpu *v, uint8_t vector, bool has_error,
			   uint32_t error)
{
	v->pending = (struct vcpu_event){ .valid = true, .vector = vector,
		.type = EVENT_EXCEPTION, .has_error = has_error, .error = error };
}

/*
 * Make the vCPU look at its requests: an NMI, not a fixed IPI.  NMI exiting
 * forces an exit whatever the guest does (SDM Vol. 3C 25.2, APM 15.9), and
 * wakes a host CPU in HLT; an external interrupt did not force an exit from
 * a guest running with IF=0 under Bochs 2.7's VMX (seen in the VT-x suite).
 * The host's NMI handler only counts it, so an NMI that lands after the
 * loop checked its requests but before guest entry (or before park()'s
 * HLT) leaves no trace: vcpu_request kicks again every REKICK_US until
 * answered.
 */
static void vcpu_kick(struct vcpu *v)
{
	struct percpu *p = cpu_table[v->host_cpu];

	if (p && p != this_cpu())
		lapic_send_nmi(p->apic_id);
}

/* Whether the vCPU has acted on posting (on) or withdrawing (!on) req.
 * One that left its loop has nothing left to do; a parked one takes a
 * flush at its next entry. */
static bool answered(const struct vcpu *v, uint32_t req, bool on)
{
	if (!v->running)
		return true;
	switch (req) {
	case VCPU_REQ_PAUSE:
		return v->parked == on;
	case VCPU_REQ_FLUSH:
		return v->parked ||
		       !(__atomic_load_n(&v->requests, __ATOMIC_ACQUIRE) & VCPU_REQ_FLUSH);
	default:
		return false;	/* STOP: only leaving the loop answers it */
	}
}

/*
 * The one way the management CPU asks a vCPU for something: post (on) or
 * withdraw (!on) request req, then kick the vCPU until it answers.
 * Returns 0, or -ETIMEDOUT after timeout_us without an answer.
 */
int vcpu_request(struct vcpu *v, uint32_t req, bool on, uint64_t timeout_us)
{
	uint64_t waited;

	if (on)
		__atomic_fetch_or(&v->requests, req, __ATOMIC_ACQ_REL);
	else
		__atomic_fetch_and(&v->requests, ~req, __ATOMIC_ACQ_REL);
	for (waited = 0; !answered(v, req, on); waited += ANSWER_POLL_US) {
		if (waited >= timeout_us)
			return -ETIMEDOUT;
		if (waited % REKICK_US == 0)
			vcpu_kick(v);
		udelay(ANSWER_POLL_US);
	}
	return 0;
}

static bool wait_over(const struct vcpu *v, uint32_t set, uint32_t clear,
		      uint64_t until)
{
	uint32_t r = __atomic_load_n(&v->requests, __ATOMIC_ACQUIRE);

	return (r & set) || (~r & clear) || (until && time_us() >= until);
}

/*
 * The one idle wait of a vCPU's own CPU: HLT, serving cross-CPU calls,
 * until a request in set is posted, a request in clear is withdrawn, or
 * time_us() reaches until (0: no deadline; a deadline needs a running
 * LAPIC tick to wake up for).  The check after CLI closes the window
 * between the test and the HLT (cpu_idle: STI's shadow covers HLT).
 */
static void vcpu_wait(struct vcpu *v, uint32_t set, uint32_t clear, uint64_t until)
{
	v->where = VCPU_ASLEEP;
	while (!wait_over(v, set, clear, until)) {
		smp_handle_calls();
		irq_disable();
		this_cpu()->halting = true;
		if (wait_over(v, set, clear, until)) {
			this_cpu()->halting = false;
			irq_enable();
			break;
		}
		cpu_idle_once();
		this_cpu()->halting = false;
	}
	v->where = VCPU_IN_HOST;
}

static void advance(struct vcpu *v, const struct vcpu_exit *e)
{
	v->st.rip = e->next_rip;
	v->st.int_shadow = false;
}

static int handle_cpuid(struct vcpu *v, const struct vcpu_exit *e)
{
	uint32_t out[4];

	cpuid_policy(v, (uint32_t)v->st.gpr[GPR_RAX], (uint32_t)v->st.gpr[GPR_RCX], out);
	v->st.gpr[GPR_RAX] = out[0];
	v->st.gpr[GPR_RBX] = out[1];
	v->st.gpr[GPR_RCX] = out[2];
	v->st.gpr[GPR_RDX] = out[3];
	advance(v, e);
	return VCPU_RESUME;
}

static int handle_msr(struct vcpu *v, const struct vcpu_exit *e)
{
	uint32_t msr = (uint32_t)v->st.gpr[GPR_RCX];
	uint64_t val = 0;

	if (e->kind == EXIT_RDMSR) {
		if (msr_read(v, msr, &val) < 0)
			goto gp;
		v->st.gpr[GPR_RAX] = (uint32_t)val;
		v->st.gpr[GPR_RDX] = val >> 32;
	} else {
		val = (v->st.gpr[GPR_RDX] << 32) | (uint32_t)v->st.gpr[GPR_RAX];
		if (msr_write(v, msr, val) < 0)
			goto gp;
	}
	advance(v, e);
	return VCPU_RESUME;
gp:
	vcpu_inject_exception(v, EXC_GP, true, 0);
	return VCPU_RESUME;
}

static int handle_io(struct vcpu *v, const struct vcpu_exit *e)
{
	struct vm *vm = v->vm;
	uint64_t mask = e->io.size == 4 ? 0xffffffffull : (1ull << (e->io.size * 8)) - 1;
	uint64_t val = ~0ull;

	if (e->io.string) {
		vm_guest_stopped(vm, VM_FAILED, "string port I/O (port %#x) is not "
				 "emulated yet", e->io.port);
		return VCPU_PARK;
	}
	if (e->io.in) {
		if (bus_read(&vm->pio, e->io.port, e->io.size, &val) < 0)
			val = ~0ull;	/* nothing there: the bus floats high */
		if (e->io.size == 4)
			v->st.gpr[GPR_RAX] = val & mask;
		else
			v->st.gpr[GPR_RAX] = (v->st.gpr[GPR_RAX] & ~mask) | (val & mask);
	} else {
		bus_write(&vm->pio, e->io.port, e->io.size, v->st.gpr[GPR_RAX] & mask);
	}
	if (vm->state != VM_RUNNING && vm->state != VM_PAUSED)
		return VCPU_PARK;	/* the exit port stopped it */
	advance(v, e);
	return VCPU_RESUME;
}

static int handle_stage2(struct vcpu *v, const struct vcpu_exit *e)
{
	struct vm *vm = v->vm;

	if (e->s2.gpa < vm->mem_size) {
		if (e->s2.write && dirty_wp_fault(v, e->s2.gpa))
			return VCPU_RESUME;
		vm_guest_stopped(vm, VM_FAILED, "unexpected stage-2 fault in RAM at "
				 "gpa %#lx (%s) rip %#lx", e->s2.gpa,
				 e->s2.write ? "write" : e->s2.fetch ? "fetch" : "read",
				 v->st.rip);
		return VCPU_PARK;
	}
	if (!e->s2.fetch && bus_find(&vm->mmio, e->s2.gpa, 1))
		return mmio_emulate(v, e) < 0 ? VCPU_PARK : VCPU_RESUME;
	vm_guest_stopped(vm, VM_FAILED, "guest touched unbacked gpa %#lx (%s) at "
			 "rip %#lx", e->s2.gpa,
			 e->s2.write ? "write" : e->s2.fetch ? "fetch" : "read",
			 v->st.rip);
	return VCPU_PARK;
}

/*
 * HLT: the vCPU sleeps on its host CPU until an interrupt it would take,
 * an NMI, INIT or SIPI arrives (another CPU posts VCPU_REQ_EVENT and
 * kicks), or its LAPIC timer is due (a host one-shot wakes the CPU).  The
 * request is withdrawn before each look, so a kick that lands in between
 * is seen by the wait.  Returns false when a request of the management
 * CPU cut the wait short (pause, stop, or a stage-2 flush, which dirty
 * logging waits for while an idle tickless guest may halt for seconds):
 * the vCPU is still halted, and its loop answers the request first.
 */
static bool halt_wait(struct vcpu *v)
{
	const uint32_t cut = VCPU_REQ_STOP | VCPU_REQ_PAUSE | VCPU_REQ_FLUSH;
	const uint32_t wake = cut | VCPU_REQ_EVENT;
	uint64_t until;

	while (!v->pending.valid) {
		__atomic_fetch_and(&v->requests, ~VCPU_REQ_EVENT, __ATOMIC_ACQ_REL);
		if (__atomic_load_n(&v->requests, __ATOMIC_ACQUIRE) & cut)
			return false;
		if (irq_halt_check(v, &until))
			break;
		vcpu_wait(v, wake, 0, until);
	}
	return true;
}

/* A pause (or a migration) that comes while the guest sits in HLT leaves
 * it halted: it must not run on past the HLT without an interrupt. */
static int handle_hlt(struct vcpu *v, const struct vcpu_exit *e)
{
	advance(v, e);
	v->halted = !halt_wait(v);
	return VCPU_RESUME;
}

/* Guest FPU/SSE/AVX state and XCR0 travel with the guest (XSAVE when the
 * host has it: SDM Vol. 1 13.8; SVM does not switch them, APM 15.5.1).
 * What the host has was probed once at boot on every CPU (cpu.c). */
_Static_assert(VCPU_FPU_AREA == HOST_FPU_AREA, "the probed FPU area size");

static int handle_xsetbv(struct vcpu *v, const struct vcpu_exit *e)
{
	uint64_t val = (v->st.gpr[GPR_RDX] << 32) | (uint32_t)v->st.gpr[GPR_RAX];

	if ((uint32_t)v->st.gpr[GPR_RCX] != 0 || !vcpu_xcr0_valid(val, cpu_host_caps())) {
		vcpu_inject_exception(v, EXC_GP, true, 0);
		return VCPU_RESUME;
	}
	v->st.xcr0 = val;
	advance(v, e);
	return VCPU_RESUME;
}

static void dump_state(struct vcpu *v, const struct vcpu_exit *e)
{
	pr_err("vm %s vcpu %d: exit %s raw %#lx info1 %#lx info2 %#lx",
	       v->vm->name, v->id, exit_kind_name(e->kind), e->raw_reason,
	       e->raw_info1, e->raw_info2);
	pr_err("  rip %#lx rsp %#lx rflags %#lx cr0 %#lx cr3 %#lx cr4 %#lx efer %#lx",
	       v->st.rip, v->st.gpr[GPR_RSP], v->st.rflags, v->st.cr0,
	       v->st.cr3, v->st.cr4, v->st.efer);
	pr_err("  rax %#lx rbx %#lx rcx %#lx rdx %#lx", v->st.gpr[GPR_RAX],
	       v->st.gpr[GPR_RBX], v->st.gpr[GPR_RCX], v->st.gpr[GPR_RDX]);
}

static const char *task_switch_src(uint64_t src)
{
	static const char *const names[] = { "CALL", "IRET", "JMP", "task gate" };

	return src < 4 ? names[src] : "?";
}

/*
 * An intercepted #DB or #AC goes back to the guest unchanged (the vendor
 * already put the #DB's DR6 bits in place).  An event whose delivery the
 * exception interrupted was re-queued first; it is delivered again and
 * the fault recurs, so the exception is not queued over it.
 */
static int handle_exception(struct vcpu *v, const struct vcpu_exit *e)
{
	if (!v->pending.valid)
		vcpu_inject_exception(v, e->exc.vector, e->exc.has_error, e->exc.error);
	return VCPU_RESUME;
}

/*
 * A machine check while the guest ran is the host's: the hardware error
 * is logged from the machine-check MSRs (SDM Vol. 3B 16.3), and the VM
 * whose work it interrupted stops, since its memory or state may be
 * damaged.  It is never forwarded to the guest.
 */
#define MSR_MC0_STATUS		0x401
#define MCI_STATUS_VAL		(1ull << 63)

static int handle_mce(struct vcpu *v)
{
	uint64_t cap = rdmsr(MSR_MCG_CAP), mcg = rdmsr(MSR_MCG_STATUS);
	unsigned banks = cap & 0xff, i;

	pr_err("vm %s vcpu %d: host machine check during guest execution on "
	       "CPU %u: MCG_STATUS %#lx", v->vm->name, v->id, this_cpu()->id, mcg);
	for (i = 0; i < banks && i < 32; i++) {
		uint64_t st = rdmsr(MSR_MC0_STATUS + 4 * i);

		if (st & MCI_STATUS_VAL)
			pr_err("  bank %u: status %#lx", i, st);
	}
	vm_guest_stopped(v->vm, VM_FAILED, "host machine check while the guest "
			 "ran (MCG_STATUS %#lx); not forwarded to the guest", mcg);
	return VCPU_PARK;
}

static int handle_exit(struct vcpu *v, const struct vcpu_exit *e)
{
	switch (e->kind) {
	case EXIT_EXTINT:
	case EXIT_NMI:
		return VCPU_RESUME;	/* taken by the host after STGI */
	case EXIT_HANDLED:
		return VCPU_RESUME;	/* the vendor finished it */
	case EXIT_IRQ_WINDOW:
		return VCPU_RESUME;	/* irq_before_entry injects now */
	case EXIT_CPUID:
		return handle_cpuid(v, e);
	case EXIT_RDMSR:
	case EXIT_WRMSR:
		return handle_msr(v, e);
	case EXIT_IO:
		return handle_io(v, e);
	case EXIT_STAGE2:
		return handle_stage2(v, e);
	case EXIT_HLT:
		return handle_hlt(v, e);
	case EXIT_HYPERCALL:
		v->st.gpr[GPR_RAX] = (uint64_t)-38;	/* -ENOSYS: none defined yet */
		advance(v, e);
		return VCPU_RESUME;
	case EXIT_XSETBV:
		return handle_xsetbv(v, e);
	case EXIT_UD_INSN:
		vcpu_inject_exception(v, EXC_UD, false, 0);
		return VCPU_RESUME;
	case EXIT_EXCEPTION:
		return handle_exception(v, e);
	case EXIT_MCE:
		return handle_mce(v);
	case EXIT_TASK_SWITCH:
		/* A 64-bit guest cannot switch tasks; a 32-bit one can, but no
		 * guest Tern runs needs it: this VM alone stops, saying why. */
		vm_guest_stopped(v->vm, VM_FAILED, "task switch not supported (to TSS "
				 "%#lx by %s) at rip %#lx", e->raw_info1,
				 task_switch_src(e->raw_info2), v->st.rip);
		return VCPU_PARK;
	case EXIT_SHUTDOWN:
		vm_guest_stopped(v->vm, VM_FAILED, "triple fault (shutdown) at rip %#lx",
				 v->st.rip);
		return VCPU_PARK;
	case EXIT_ENTRY_FAIL:
		dump_state(v, e);
		vm_guest_stopped(v->vm, VM_FAILED, "VM entry failed (invalid guest state)");
		return VCPU_PARK;
	default:
		dump_state(v, e);
		vm_guest_stopped(v->vm, VM_FAILED, "unhandled exit %#lx", e->raw_reason);
		return VCPU_PARK;
	}
}

/* XSETBV and XRSTOR/FXRSTOR of state from elsewhere: a fault (a value
 * vcpu_check.c missed) resumes at the fixup label and returns -EFAULT. */
static int xsetbv0_safe(uint64_t v)
{
	__asm__ goto("1: xsetbv\n\t" EXTABLE_ENTRY("1b", "%l[fault]")
		     : : "c"(0), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : : fault);
	return 0;
fault:
	return -EFAULT;
}

static void fpu_save(uint8_t *area, uint64_t mask)
{
	if (cpu_host_caps()->xsave)
		__asm__ volatile("xsave64 %0" : "+m"(*area)
				 : "a"((uint32_t)mask), "d"((uint32_t)(mask >> 32)));
	else
		__asm__ volatile("fxsave64 %0" : "+m"(*area));
}

static int fpu_restore(uint8_t *area, uint64_t mask)
{
	if (cpu_host_caps()->xsave)
		__asm__ goto("1: xrstor64 %0\n\t" EXTABLE_ENTRY("1b", "%l[fault]")
			     : : "m"(*area), "a"((uint32_t)mask),
			       "d"((uint32_t)(mask >> 32)) : : fault);
	else
		__asm__ goto("1: fxrstor64 %0\n\t" EXTABLE_ENTRY("1b", "%l[fault]")
			     : : "m"(*area) : : fault);
	return 0;
fault:
	return -EFAULT;
}

static uint64_t guest_xcr0(const struct vcpu *v)
{
	return v->st.xcr0 ? v->st.xcr0 : 1;	/* 1 at reset (SDM Vol. 1 13.3) */
}

/*
 * The guest's FPU/SSE/AVX registers are in the CPU only from
 * vcpu_fpu_enter to vcpu_fpu_leave, which the vendors call right around
 * VMRUN (with GIF clear) and VMLAUNCH/VMRESUME (with interrupts off).
 * The kernel is built with SSE (Newlib, GCC's memcpy and struct copies),
 * so any C code in between could change a guest XMM register behind its
 * back; svm/, vmx/ and this file are built -mgeneral-regs-only and the
 * Makefile fails the build if their objects use an XMM/YMM register
 * (check-no-sse).  An NMI taken in the VMX window saves the SSE state
 * around its handler (isr.S).
 *
 * Both directions run with the host's XCR0 and its full mask: XSAVE only
 * saves the components XCR0 enables (SDM Vol. 1 13.8), and a guest whose
 * XCR0 is still 1 (x87 only, the reset value) uses XMM registers all the
 * same; saving under its XCR0 would lose them at every exit.
 */
int vcpu_fpu_enter(struct vcpu *v)
{
	const struct vcpu_host_caps *c = cpu_host_caps();
	uint64_t gx = guest_xcr0(v);

	fpu_save(v->fpu_host, c->xcr0);
	if (fpu_restore(v->fpu_guest, c->xcr0) < 0) {
		v->fpu_fault = c->xsave ? "XRSTOR of its FPU image" : "FXRSTOR of its FPU image";
		goto host;
	}
	if (c->xsave && gx != c->xcr0 && xsetbv0_safe(gx) < 0) {
		v->fpu_fault = "XSETBV of its XCR0";
		goto host;
	}
	return 0;
host:
	fpu_restore(v->fpu_host, c->xcr0);	/* the host's own image */
	return -EFAULT;
}

void vcpu_fpu_leave(struct vcpu *v)
{
	const struct vcpu_host_caps *c = cpu_host_caps();

	if (c->xsave && guest_xcr0(v) != c->xcr0)
		xsetbv0_safe(c->xcr0);	/* the host's own value: cannot fault */
	fpu_save(v->fpu_guest, c->xcr0);
	fpu_restore(v->fpu_host, c->xcr0);
}

/* The FPU switch is the vendor's, around the entry instruction itself. */
static void run_once(struct vcpu *v, struct vcpu_exit *e)
{
	v->where = VCPU_IN_GUEST;
	__atomic_store_n(&v->entries, v->entries + 1, __ATOMIC_RELEASE);
	hv->vcpu_run(v, e);
	v->where = VCPU_IN_HOST;
}

/*
 * Auto-converge (migration): hold the guest back pm thousandths of the
 * time.  For every stretch it ran, it sleeps ran * pm / (1000 - pm), so the
 * share is exact whatever the length of the stretches.  A LAPIC tick on
 * this CPU bounds each stretch (a busy guest may not exit on its own for
 * seconds).
 */
#define THROTTLE_TICK_HZ	1000
#define THROTTLE_MAX_SLEEP_US	1000000

static void throttle_tick(struct vcpu *v, bool on)
{
	if (on && !v->tick_on)
		lapic_timer_periodic(VEC_TIMER, THROTTLE_TICK_HZ);
	else if (!on && v->tick_on)
		lapic_timer_stop();
	if (on != v->tick_on)
		v->host_timer_us = 0;	/* the one-shot for guest timers is gone */
	v->tick_on = on;
}

static void throttle(struct vcpu *v, uint64_t ran_us)
{
	uint32_t pm = v->throttle_pm;
	uint64_t sleep, end;

	if (!pm || pm > 999) {
		throttle_tick(v, false);
		return;
	}
	throttle_tick(v, true);
	sleep = ran_us * pm / (1000 - pm);
	end = time_us() + (sleep < THROTTLE_MAX_SLEEP_US ? sleep : THROTTLE_MAX_SLEEP_US);
	vcpu_wait(v, VCPU_REQ_PAUSE | VCPU_REQ_STOP, 0, end);
}

/*
 * A start-up IPI (SDM Vol. 3A 9.4.4.1, 11.6.1): the application processor
 * begins in real mode at vector * 4 KiB, CS = vector << 8, with the rest
 * of the INIT state (SDM Vol. 3A 10.1.1 table 10-1).  The TSC offset is
 * the VM's, shared by every vCPU.
 */
static void sipi_state(struct vcpu *v, uint8_t vector)
{
	struct vcpu_state *st = &v->st;
	uint64_t tsc_offset = st->tsc_offset;
	int i;

	memset(st, 0, sizeof(*st));
	st->tsc_offset = tsc_offset;
	st->rflags = 0x2;
	st->cr0 = CR0_ET | CR0_CD | CR0_NW;
	st->dr6 = 0xffff0ff0;
	st->dr7 = 0x400;
	st->pat = 0x0007040600070406ull;
	st->xcr0 = 1;
	for (i = 0; i < SEG_COUNT; i++)
		st->seg[i] = (struct vcpu_seg){ 0, 0x93, 0xffff, 0 };
	st->seg[SEG_CS] = (struct vcpu_seg){ (uint16_t)(vector << 8), 0x9b, 0xffff,
					     (uint64_t)vector << 12 };
	st->seg[SEG_TR].attr = 0x8b;
	st->seg[SEG_LDTR].attr = 0x82;
	st->gdtr.limit = 0xffff;
	st->idtr.limit = 0xffff;
	v->pending.valid = false;
	hv->load_state(v);
	pr_info("vm %s: vCPU %d started at %#x:0000 (SIPI)", v->vm->name, v->id,
		vector << 8);
}

/* INIT and SIPI posted by other vCPUs; false while it waits for SIPI. */
static bool mp_runnable(struct vcpu *v)
{
	if (__atomic_exchange_n(&v->init_pending, false, __ATOMIC_ACQ_REL)) {
		irq_init_signal(v);
		v->mp_state = VCPU_MP_WAIT_SIPI;
		v->halted = false;
	}
	if (__atomic_exchange_n(&v->sipi_pending, false, __ATOMIC_ACQ_REL) &&
	    v->mp_state == VCPU_MP_WAIT_SIPI) {
		sipi_state(v, v->sipi_vector);
		v->mp_state = VCPU_MP_RUNNABLE;
	}
	return v->mp_state == VCPU_MP_RUNNABLE;
}

static void park(struct vcpu *v)
{
	v->parked = true;
	vcpu_wait(v, VCPU_REQ_STOP, VCPU_REQ_PAUSE, 0);
	v->parked = false;
}

/* Runs on the vCPU's host CPU, entered through smp_call. */
void vcpu_loop(void *arg)
{
	struct vcpu *v = arg;
	struct vcpu_exit e;

	v->running = true;
	this_cpu()->runs_vcpu = true;
	this_cpu()->vcpu = v;
	for (;;) {
		uint32_t req = __atomic_fetch_and(&v->requests, ~VCPU_REQ_EVENT,
						  __ATOMIC_ACQ_REL);

		smp_handle_calls();
		if (req & VCPU_REQ_STOP)
			break;
		if (req & VCPU_REQ_PAUSE) {
			park(v);
			continue;
		}
		if (req & VCPU_REQ_FLUSH) {
			__atomic_fetch_and(&v->requests, ~VCPU_REQ_FLUSH, __ATOMIC_ACQ_REL);
			hv->flush_stage2(v);
		}
		if (!mp_runnable(v)) {
			vcpu_wait(v, VCPU_REQ_STOP | VCPU_REQ_PAUSE | VCPU_REQ_FLUSH |
				  VCPU_REQ_EVENT, 0, 0);
			continue;
		}
		if (v->halted) {
			v->halted = !halt_wait(v);
			if (v->halted)
				continue;
		}
		irq_before_entry(v);
		if (v->throttle_pm || v->tick_on) {
			uint64_t t0 = time_us();

			run_once(v, &e);
			throttle(v, time_us() - t0);
		} else {
			run_once(v, &e);
		}
		if (v->fpu_fault) {
			vm_guest_stopped(v->vm, VM_FAILED, "vCPU %d: %s faulted on this host "
					 "(XCR0 %#lx); the guest was not entered", v->id,
					 v->fpu_fault, guest_xcr0(v));
			break;
		}
		v->exits[e.kind < EXIT_KIND_MAX ? e.kind : EXIT_UNKNOWN]++;
		v->exits_total++;
		if (handle_exit(v, &e) != VCPU_RESUME)
			break;
	}
	if (v->tick_on || v->host_timer_us) {
		lapic_timer_stop();
		v->tick_on = false;
		v->host_timer_us = 0;
	}
	this_cpu()->vcpu = NULL;
	this_cpu()->runs_vcpu = false;
	v->running = false;
}
