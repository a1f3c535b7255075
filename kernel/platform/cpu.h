/* Per-CPU state, descriptor tables and interrupt plumbing. */
#ifndef TERN_CPU_H
#define TERN_CPU_H

#include <stdbool.h>
#include <stdint.h>
#include "kernel/kernel.h"
#include "kernel/platform/spinlock.h"

#define GDT_KCODE	0x08
#define GDT_KDATA	0x10
#define GDT_TSS		0x18

#define IST_DF		1
#define IST_NMI		2
#define IST_MC		3
#define KSTACK_SIZE	(32 * 1024)
#define ISTACK_SIZE	(16 * 1024)

/* Interrupt vectors owned by the kernel (0-31 are exceptions). */
#define VEC_TIMER	0x20
#define VEC_SERIAL	0x21
#define VEC_IRQ_BASE	0x30	/* device IRQs allocated from here */
#define VEC_IPI_CALL	0xf0
#define VEC_IPI_KICK	0xf1
#define VEC_APIC_ERROR	0xfe
#define VEC_SPURIOUS	0xff

struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

typedef void (*smp_fn)(void *arg);

/* A call's life (smp.c): queued, then started by the target and done, or
 * withdrawn by a caller that stopped waiting before it started. */
enum { SMP_CALL_QUEUED, SMP_CALL_STARTED, SMP_CALL_DONE, SMP_CALL_WITHDRAWN };

struct smp_call {
	smp_fn fn;
	void *arg;
	int state;		/* SMP_CALL_*, atomic */
	bool waited;		/* a caller waits: it frees the record when done */
	struct smp_call *next;
};

/* How long smp_call(..., wait=true) waits for the target to start a call. */
#define SMP_CALL_TIMEOUT_MS	1000

struct percpu {
	struct percpu *self;		/* %gs:0, so this_cpu() is one load */
	uint32_t id;			/* dense index, 0 = boot CPU */
	uint32_t apic_id;
	volatile bool online;
	volatile bool dead;		/* stopped by an exception */
	volatile bool runs_vcpu;	/* inside vcpu_loop: IPIs need an NMI too */
	void *vcpu;			/* the struct vcpu it runs, for its LAPIC page */
	volatile bool halting;		/* checked its wake-up condition, HLT next */
	uint64_t gdt[5] __attribute__((aligned(16)));
	struct tss tss __attribute__((aligned(16)));
	uint8_t *kstack;		/* base of the KSTACK_SIZE stack */
	struct spinlock call_lock;
	struct smp_call *calls;		/* pending cross-CPU calls */
	uint64_t irqs;			/* interrupts taken */
	uint64_t nmis;
	uint64_t fixups;		/* faults resumed at a fixup (trap.c) */
	uint64_t idle_tsc;		/* TSC cycles spent in HLT */
	volatile uint64_t idle_since;	/* TSC at HLT entry, 0 when awake */
};

extern struct percpu *cpu_table[MAX_CPUS];
extern volatile uint32_t cpus_online;
extern uint32_t cpus_total;

static inline struct percpu *this_cpu(void)
{
	struct percpu *p;

	__asm__ volatile("mov %%gs:0, %0" : "=r"(p));
	return p;
}

/* The bytes of a vCPU's FPU image (VCPU_FPU_AREA): the XSAVE area under
 * the host's XCR0 must fit (cpu_setup checks CPUID leaf 0xD). */
#define HOST_FPU_AREA	4096

struct vcpu_host_caps;

/* cpu.c */
const struct vcpu_host_caps *cpu_host_caps(void);	/* probed at boot */
bool cpu_caps_agree(void);	/* an AP's own probe equals the boot CPU's */
struct percpu *cpu_alloc(uint32_t id, uint32_t apic_id);
void cpu_setup(struct percpu *p);	/* GDT, TSS, IDT, GS, FPU on this CPU */
void fpu_init_cpu(void);
void idt_init(void);

/* trap.c */
typedef void (*irq_handler)(struct trap_frame *f, void *ctx);
int irq_register(uint8_t vector, irq_handler fn, void *ctx);
void trap_dispatch(struct trap_frame *f);

/*
 * Exception fixups: an instruction that may fault on state from elsewhere
 * (XRSTOR of a migrated image, XSETBV of a guest's XCR0) gets an entry
 * (insn, fixup); a fault there resumes at fixup instead of stopping the
 * CPU.  EXTABLE_ENTRY goes in the instruction's asm, after its label.
 */
#define EXTABLE_ENTRY(insn, fixup)				\
	".pushsection .rodata.extable, \"a\"\n\t"			\
	".balign 8\n\t.quad " insn ", " fixup "\n\t.popsection\n\t"

/* apic.c */
void lapic_init_cpu(void);
uint32_t lapic_id(void);
void lapic_eoi(void);
void lapic_send_ipi(uint32_t apic_id, uint8_t vector);
void lapic_send_init(uint32_t apic_id);
void lapic_send_nmi(uint32_t apic_id);
void lapic_self_ipi(uint8_t vector);
void lapic_send_sipi(uint32_t apic_id, uint8_t page);
void lapic_timer_periodic(uint8_t vector, uint32_t hz);
void lapic_timer_oneshot(uint8_t vector, uint64_t us);
void lapic_timer_stop(void);
bool lapic_timer_running(void);
uint32_t lapic_timer_calibrate(void);	/* ticks per second */
void ioapic_init(void);
int ioapic_route_isa(uint8_t irq, uint8_t vector, uint32_t dest_apic);

/* smp.c */
void smp_boot_aps(void);
/* 0, or -ENODEV, -ENOMEM, or -ETIMEDOUT when the target did not start the
 * call within SMP_CALL_TIMEOUT_MS (logged with the CPU; the call then
 * never runs). */
int smp_call(uint32_t cpu, smp_fn fn, void *arg, bool wait);
void smp_handle_calls(void);
bool smp_calls_waiting(void);	/* calls queued for this CPU */
void cpu_idle_once(void);
uint64_t cpu_idle_cycles(const struct percpu *p, uint64_t now);

#endif
