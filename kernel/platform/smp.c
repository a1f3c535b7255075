/*
 * Bringing up every CPU in the MADT (INIT-SIPI-SIPI, SDM Vol. 3A 9.4.4.1)
 * and running work on a chosen CPU through an IPI-driven call queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/lib/acpi_tables.h"

extern const uint8_t tramp_start[], tramp_end[];
extern uint8_t tramp_gdt_ptr[], tramp_pm_jump[], tramp_lm_jump[];
extern uint8_t tramp_cr3[], tramp_stack[], tramp_percpu[], tramp_entry[];
extern const uint64_t tramp_pm32_off, tramp_lm64_off, tramp_gdt_off;

#define AP_START_TIMEOUT_US	500000

/* Calls run from each CPU's main loop (or between guest entries), never
 * inside the interrupt: a call may run for a long time, a vCPU for ever. */
static void ipi_call_handler(struct trap_frame *f, void *ctx)
{
	(void)f, (void)ctx;
}

static void ipi_kick_handler(struct trap_frame *f, void *ctx)
{
	(void)f, (void)ctx;	/* only wakes the CPU from HLT */
}

static void apic_error_handler(struct trap_frame *f, void *ctx)
{
	(void)f, (void)ctx;
	pr_warn("apic: error interrupt on CPU %u", this_cpu()->id);
}

/* Drain this CPU's queue.  Calls run with interrupts off, in order. */
bool smp_calls_waiting(void)
{
	return __atomic_load_n(&this_cpu()->calls, __ATOMIC_ACQUIRE) != NULL;
}

void smp_handle_calls(void)
{
	struct percpu *p = this_cpu();
	struct smp_call *c, *next;
	uint64_t f;

	/* Runs after every guest exit: skip the lock when nothing is queued. */
	if (!__atomic_load_n(&p->calls, __ATOMIC_ACQUIRE))
		return;
	f = spin_lock_irqsave(&p->call_lock);
	c = p->calls;
	p->calls = NULL;
	spin_unlock_irqrestore(&p->call_lock, f);
	/* The list was pushed LIFO: reverse it to keep submission order. */
	for (next = NULL; c; ) {
		struct smp_call *n = c->next;

		c->next = next;
		next = c;
		c = n;
	}
	for (c = next; c; c = next) {
		int queued = SMP_CALL_QUEUED;

		next = c->next;
		/* A caller that gave up withdrew it: it must not run (its
		 * argument may be gone), and it is ours to free. */
		if (!__atomic_compare_exchange_n(&c->state, &queued, SMP_CALL_STARTED,
						 false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			free(c);
			continue;
		}
		c->fn(c->arg);
		if (c->waited)
			__atomic_store_n(&c->state, SMP_CALL_DONE, __ATOMIC_RELEASE);
		else
			free(c);
	}
}

/*
 * The caller's side of a waited call.  Only the start is bounded: a CPU
 * that stopped serving calls (interrupts off, spinning, wedged in a
 * guest without exits) never starts one, and its caller -- often the
 * management CPU, from `cpus` or VT-x's save-state and PML paths -- must
 * not hang with it.  Withdrawing is a race with the target's start, won
 * by one compare-and-swap; a call that started runs to its end (its fn
 * may be using the caller's arguments), and the functions sent this way
 * are short (`vm benchexit` runs its own measured loop).
 */
static int wait_started_call(struct smp_call *c, uint32_t cpu)
{
	uint64_t deadline = time_us() + SMP_CALL_TIMEOUT_MS * 1000ull;

	for (;;) {
		int st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE), queued = SMP_CALL_QUEUED;

		if (st == SMP_CALL_DONE) {
			free(c);
			return 0;
		}
		if (st == SMP_CALL_QUEUED && time_us() >= deadline &&
		    __atomic_compare_exchange_n(&c->state, &queued, SMP_CALL_WITHDRAWN,
						false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			/* The target frees it if it ever gets to its queue. */
			pr_warn("smp: CPU %u did not answer a cross-CPU call within %u ms",
				cpu, SMP_CALL_TIMEOUT_MS);
			return -ETIMEDOUT;
		}
		cpu_relax();
	}
}

/*
 * Run fn(arg) on CPU `cpu`.  The record is on the heap either way: without
 * wait the target frees it once the call has run; with wait the caller
 * does, or, when it gave up (-ETIMEDOUT), the target.
 */
int smp_call(uint32_t cpu, smp_fn fn, void *arg, bool wait)
{
	struct percpu *p;
	struct smp_call *c;
	uint64_t f;

	if (cpu >= MAX_CPUS || !(p = cpu_table[cpu]) || !p->online)
		return -ENODEV;
	if (p == this_cpu()) {
		f = irq_save();
		fn(arg);
		irq_restore(f);
		return 0;
	}
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct smp_call){ .fn = fn, .arg = arg, .state = SMP_CALL_QUEUED,
				.waited = wait };
	f = spin_lock_irqsave(&p->call_lock);
	c->next = p->calls;
	p->calls = c;
	spin_unlock_irqrestore(&p->call_lock, f);
	lapic_send_ipi(p->apic_id, VEC_IPI_CALL);
	/* A CPU in a guest sees the call only after an exit: see vcpu_kick. */
	if (p->runs_vcpu)
		lapic_send_nmi(p->apic_id);
	return wait ? wait_started_call(c, cpu) : 0;
}

/* HLT until an interrupt; the TSC spent asleep feeds the idle statistics. */
void cpu_idle_once(void)
{
	struct percpu *p = this_cpu();
	uint64_t t0 = rdtsc();

	p->idle_since = t0;
	cpu_idle();
	p->idle_since = 0;
	p->idle_tsc += rdtsc() - t0;
}

/* Includes the sleep in progress, so a CPU parked for hours reads idle. */
uint64_t cpu_idle_cycles(const struct percpu *p, uint64_t now)
{
	uint64_t since = p->idle_since;

	return p->idle_tsc + (since && now > since ? now - since : 0);
}

static void __attribute__((noreturn)) ap_entry(struct percpu *p)
{
	cpu_setup(p);
	/* Guest state is checked against the boot CPU's capabilities: a CPU
	 * that differs stays offline (start_ap: "did not start"). */
	if (!cpu_caps_agree())
		cpu_halt_forever();
	lapic_init_cpu();
	__atomic_store_n(&p->online, true, __ATOMIC_RELEASE);
	__atomic_fetch_add(&cpus_online, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		irq_disable();
		if (!p->calls) {
			cpu_idle_once();
			continue;
		}
		irq_enable();
		smp_handle_calls();
	}
}

static void tramp_patch(uint8_t *page, uint64_t phys, const uint8_t *sym,
			uint64_t value, size_t bytes)
{
	memcpy(page + (sym - tramp_start), &value, bytes);
	(void)phys;
}

static void tramp_install(uint64_t phys)
{
	uint8_t *page = phys_to_virt(phys);

	memcpy(page, tramp_start, (size_t)(tramp_end - tramp_start));
	tramp_patch(page, phys, tramp_gdt_ptr + 2, phys + tramp_gdt_off, 4);
	tramp_patch(page, phys, tramp_pm_jump, phys + tramp_pm32_off, 4);
	tramp_patch(page, phys, tramp_lm_jump, phys + tramp_lm64_off, 4);
	tramp_patch(page, phys, tramp_cr3, read_cr3(), 8);
	tramp_patch(page, phys, tramp_entry, (uint64_t)ap_entry, 8);
}

static bool start_ap(struct percpu *p, uint64_t tramp)
{
	uint8_t *page = phys_to_virt(tramp);
	uint64_t waited;
	int sipi;

	tramp_patch(page, tramp, tramp_stack, (uint64_t)(p->kstack + KSTACK_SIZE), 8);
	tramp_patch(page, tramp, tramp_percpu, (uint64_t)p, 8);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	lapic_send_init(p->apic_id);
	udelay(10000);
	for (sipi = 0; sipi < 2 && !p->online; sipi++) {
		lapic_send_sipi(p->apic_id, (uint8_t)(tramp >> 12));
		for (waited = 0; waited < AP_START_TIMEOUT_US && !p->online; waited += 100)
			udelay(100);
	}
	return p->online;
}

/* The CPU list: the ACPI MADT, else what UEFI's MP services reported. */
static uint32_t cpu_list(uint32_t *ids, uint32_t max)
{
	const struct acpi_info *a = acpi_get();
	uint32_t n = 0;
	int i;

	if (a && a->ncpus) {
		for (i = 0; i < a->ncpus && n < max; i++)
			if (a->cpu[i].enabled)
				ids[n++] = a->cpu[i].apic_id;
		return n;
	}
	for (i = 0; i < (int)boot_info->cpu_count && n < max; i++)
		ids[n++] = boot_info->cpu_apic_ids[i];
	if (n)
		pr_info("smp: no ACPI MADT: using the firmware's MP services list");
	return n;
}

void smp_boot_aps(void)
{
	static uint32_t ids[BOOT_MAX_CPUS];
	uint64_t tramp = boot_info->trampoline_phys;
	uint32_t me = lapic_id(), next = 1, n, i;

	irq_register(VEC_IPI_CALL, ipi_call_handler, NULL);
	irq_register(VEC_IPI_KICK, ipi_kick_handler, NULL);
	irq_register(VEC_APIC_ERROR, apic_error_handler, NULL);
	n = cpu_list(ids, BOOT_MAX_CPUS);
	cpus_total = n ? n : 1;
	if (!tramp || n <= 1)
		goto out;
	tramp_install(tramp);
	for (i = 0; i < n && next < MAX_CPUS; i++) {
		struct percpu *p;

		if (ids[i] == me)
			continue;
		p = cpu_alloc(next, ids[i]);
		if (!p) {
			pr_err("smp: out of memory for CPU %u", next);
			break;
		}
		if (!start_ap(p, tramp)) {
			pr_err("smp: CPU with APIC ID %u did not start", p->apic_id);
			cpu_table[next] = NULL;
			continue;
		}
		next++;
	}
out:
	pr_info("smp: %u of %u CPUs online", cpus_online, cpus_total);
}
