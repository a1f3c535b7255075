/*
 * Exception reports and interrupt dispatch.
 *
 * An exception in Tern itself is a Tern bug: the report gives the vector,
 * error code, every register and a frame-pointer stack trace, then this CPU
 * stops with interrupts off.  Other CPUs keep running, so the management
 * console usually survives a crash on a guest's CPU.
 */
#include <errno.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"

static const char *const exc_names[32] = {
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint",
	"#OF overflow", "#BR bound range", "#UD invalid opcode",
	"#NM device not available", "#DF double fault", "coprocessor overrun",
	"#TS invalid TSS", "#NP segment not present", "#SS stack fault",
	"#GP general protection", "#PF page fault", "reserved",
	"#MF x87 error", "#AC alignment check", "#MC machine check",
	"#XM SIMD error", "#VE virtualization", "#CP control protection",
	"reserved", "reserved", "reserved", "reserved", "reserved", "reserved",
	"#HV hypervisor injection", "#VC VMM communication", "#SX security",
	"reserved",
};

static struct {
	irq_handler fn;
	void *ctx;
} irq_table[256];

int irq_register(uint8_t vector, irq_handler fn, void *ctx)
{
	if (vector < 32 || irq_table[vector].fn)
		return -EBUSY;
	irq_table[vector].ctx = ctx;
	__atomic_store_n(&irq_table[vector].fn, fn, __ATOMIC_RELEASE);
	return 0;
}

/* Only follow frame pointers that stay inside kernel-owned memory. */
static bool frame_ok(uint64_t fp)
{
	return fp >= DIRECT_MAP_BASE && !(fp & 7) &&
	       fp < 0xfffffffffffff000ull;
}

static void stack_trace(uint64_t rip, uint64_t rbp)
{
	int depth;

	panic_printf("stack trace (addr2line -e build/kernel.elf ADDR):\n");
	panic_printf("  [0] %016lx\n", rip);
	for (depth = 1; depth < 24 && frame_ok(rbp); depth++) {
		uint64_t *fp = (uint64_t *)rbp;

		if (!fp[1])
			break;
		panic_printf("  [%d] %016lx\n", depth, fp[1]);
		if (fp[0] <= rbp)
			break;	/* stacks grow down: a loop or garbage */
		rbp = fp[0];
	}
}

static void dump_regs(const struct trap_frame *f)
{
	panic_printf("RIP %016lx CS %04lx RFLAGS %016lx\n", f->rip, f->cs, f->rflags);
	panic_printf("RSP %016lx SS %04lx\n", f->rsp, f->ss);
	panic_printf("RAX %016lx RBX %016lx RCX %016lx\n", f->rax, f->rbx, f->rcx);
	panic_printf("RDX %016lx RSI %016lx RDI %016lx\n", f->rdx, f->rsi, f->rdi);
	panic_printf("RBP %016lx R8  %016lx R9  %016lx\n", f->rbp, f->r8, f->r9);
	panic_printf("R10 %016lx R11 %016lx R12 %016lx\n", f->r10, f->r11, f->r12);
	panic_printf("R13 %016lx R14 %016lx R15 %016lx\n", f->r13, f->r14, f->r15);
	panic_printf("CR0 %016lx CR2 %016lx CR3 %016lx CR4 %016lx\n",
		     read_cr0(), read_cr2(), read_cr3(), read_cr4());
}

static void __attribute__((noreturn)) exception(struct trap_frame *f)
{
	struct percpu *p = this_cpu();

	panic_printf("\n*** EXCEPTION on CPU %u: vector %lu (%s), error code %#lx\n",
		     p ? p->id : 0, f->vector, exc_names[f->vector & 31], f->error);
	dump_regs(f);
	stack_trace(f->rip, f->rbp);
	panic_printf("*** CPU %u stopped\n", p ? p->id : 0);
	if (p) {
		p->dead = true;
		p->online = false;
		__atomic_fetch_sub(&cpus_online, 1, __ATOMIC_SEQ_CST);
	}
	cpu_halt_forever();
}

struct extable {
	uint64_t insn, fixup;
};

extern const struct extable __extable_start[], __extable_end[];

/* A fault on an instruction with a fixup (cpu.h EXTABLE_ENTRY) resumes
 * at the fixup: the caller reports it and stops only its VM. */
static bool extable_fixup(struct trap_frame *f)
{
	const struct extable *e;

	if (f->cs & 3)
		return false;
	for (e = __extable_start; e < __extable_end; e++)
		if (e->insn == f->rip) {
			f->rip = e->fixup;
			this_cpu()->fixups++;
			return true;
		}
	return false;
}

void trap_dispatch(struct trap_frame *f)
{
	uint64_t v = f->vector;

	/* NMIs reach the host after a guest exit (STGI), or from a watchdog:
	 * counted, never fatal. */
	if (v == 2) {
		struct percpu *p = this_cpu();

		p->nmis++;
		/* A kick that lands between a vCPU's last look at its requests
		 * and its HLT (interrupts off, but NMIs are not) would leave it
		 * asleep: a self-IPI, held pending until STI, wakes the HLT. */
		if (p->halting)
			lapic_self_ipi(VEC_IPI_KICK);
		return;
	}
	if (v < 32 && v != 18 && extable_fixup(f))
		return;
	if (v < 32)
		exception(f);
	if (v == VEC_SPURIOUS)
		return;		/* no EOI for spurious, SDM Vol. 3A 11.9 */
	this_cpu()->irqs++;
	if (irq_table[v].fn)
		irq_table[v].fn(f, irq_table[v].ctx);
	lapic_eoi();
}
