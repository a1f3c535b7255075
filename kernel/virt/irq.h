/*
 * Guest interrupt routing (kernel/virt/irq.c): device models raise and
 * lower interrupt lines by GSI; the VM's IOAPIC (and, for GSI 0-15, its
 * 8259 pair) turn them into messages for the vCPUs' local APICs.  Any
 * CPU may call these: a vCPU that must look at a new interrupt is kicked.
 */
#ifndef TERN_VIRT_IRQ_H
#define TERN_VIRT_IRQ_H

#include <stdbool.h>
#include <stdint.h>
#include "kernel/devices/model/apic_msg.h"

struct vm;
struct vcpu;

#define VM_NR_GSI	24

/* A device's interrupt line: level true = asserted.  Edge-triggered
 * devices (ISA) pulse it: assert then de-assert, or hold it and drop it
 * when the cause is gone; the controllers see the rising edge. */
void vm_irq_line(struct vm *vm, unsigned gsi, bool level);

/* Deliver one APIC-bus message (an MSI, an IPI) to the vCPUs it names. */
void vm_irq_msg(struct vm *vm, const struct apic_msg *m);

/* Per VM / vCPU (vm.c): the IOAPIC, one LAPIC per vCPU, their MMIO. */
int irq_vm_init(struct vm *vm);
void irq_vm_free(struct vm *vm);
void irq_init_signal(struct vcpu *v);

/* The vCPU's own CPU (vcpu.c): before each entry, and while halted. */
void irq_before_entry(struct vcpu *v);
bool irq_entry_late(struct vcpu *v);
bool irq_halt_check(struct vcpu *v, uint64_t *wake_us);

/* The LAPIC's MSRs; -ENOENT for any other MSR, -EINVAL for #GP. */
int irq_msr_read(struct vcpu *v, uint32_t msr, uint64_t *val);
int irq_msr_write(struct vcpu *v, uint32_t msr, uint64_t val);

void irq_stats(struct vm *vm, uint64_t *msgs, uint32_t *lines);
void irq_vcpu_describe(struct vcpu *v, char *buf, size_t len);

/* The guest's time base for device models: nanoseconds since host boot,
 * from the TSC (all vCPUs of a VM share one TSC offset). */
uint64_t vm_time_ns(void);
/* The guest's time base: vCPU 0's TSC (all share one offset) in ns. */
uint64_t vm_guest_ns(struct vm *vm);

/* Migration: "irqchip" (IOAPIC, 8259s, line levels) and "lapic.N" per
 * vCPU (LAPIC, run state, posted INIT/SIPI/NMI).  Save on a paused VM
 * (host_tsc: the host's TSC at the pause, where the guest's clock stops);
 * load into a created one after its vCPU records (the LAPIC timer counts
 * from vCPU 0's TSC at the pause): 0, -ENOENT (not ours), -EINVAL. */
typedef int (*irq_emit_fn)(void *ctx, const char *name, uint32_t version, const void *blob,
			   uint32_t len);
int irq_state_save(struct vm *vm, uint64_t host_tsc, irq_emit_fn emit, void *ctx);
int irq_state_load(struct vm *vm, const char *name, uint32_t version, const void *blob,
	     uint32_t len);

#endif
