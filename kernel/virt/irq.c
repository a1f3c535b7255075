/*
 * Guest interrupt routing: lines from device models to the IOAPIC and
 * the 8259 pair, messages to the vCPUs' local APICs.  (Being built: the
 * controllers are wired in by the interrupt work of issue 13.)
 */
#include "kernel/platform/arch.h"
#include "kernel/virt/irq.h"
#include "kernel/virt/vm.h"

void vm_irq_line(struct vm *vm, unsigned gsi, bool level)
{
	(void)vm, (void)gsi, (void)level;
}

void vm_irq_msg(struct vm *vm, const struct apic_msg *m)
{
	(void)vm, (void)m;
}

uint64_t vm_time_ns(void)
{
	uint64_t hz = tsc_hz(), t = rdtsc();

	/* Split so nothing overflows for TSC rates below 18 GHz, without a
	 * 128-bit division (no libgcc in the kernel). */
	return hz ? t / hz * 1000000000u + t % hz * 1000000000u / hz : time_us() * 1000;
}
