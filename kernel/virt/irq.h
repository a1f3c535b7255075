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

/* The guest's time base for device models: nanoseconds since host boot,
 * from the TSC (all vCPUs of a VM share one TSC offset). */
uint64_t vm_time_ns(void);

#endif
