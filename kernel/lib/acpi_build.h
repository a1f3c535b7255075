/*
 * Per-VM ACPI tables for Linux guests, pure: an RSDP, XSDT and RSDT, a
 * FADT (revision 6, full ACPI hardware, not hardware-reduced), a FACS, a
 * MADT (one enabled Local APIC per vCPU, one IOAPIC, the ISA overrides)
 * a DSDT in AML with \_S5 (soft-off), COM1 and optionally a PCI host
 * bridge, with its MCFG.  With these a stock
 * kernel finds its CPUs, interrupt routing, reset and power-off without
 * command-line options.
 *
 * Not wired into the VM loader yet (kernel/virt is being reworked): the
 * loader will build the tables into guest memory at cfg->base (normally in
 * the BIOS area 0xe0000-0xfffff, where Linux scans for the RSDP, ACPI 6.5
 * 5.2.5.1), mark that range reserved in the E820 map, optionally pass
 * base + layout.rsdp in boot_params.acpi_rsdp_addr, and its device models
 * must answer the ports chosen here:
 *	PM1a event block (4 bytes: PM1_STS, PM1_EN) and control block (2
 *	bytes, PM1_CNT; SMI_CMD is 0, so there is no SMM handoff (ACPI 6.5
 *	Table 5.9 SMI_CMD) and SCI_EN should read 1), and a write of
 *	SLP_TYP = s5_slp_typ with SLP_EN means power off;
 *	the reset register (default I/O 0xcf9, value 0x06);
 *	the optional PM timer and GPE0 block; SCI on IRQ 9 (level, high).
 *
 * Layout in the buffer (offsets in struct acpi_build_layout):
 *	RSDP at 0 (16-byte aligned), FACS (64-byte aligned), XSDT, RSDT,
 *	FADT, MADT, DSDT, each 16-byte aligned; about 1.3 KiB for 64 vCPUs.
 *
 * References: ACPI 6.5 sections 5.2.5 (RSDP), 5.2.7 (RSDT), 5.2.8 (XSDT),
 * 5.2.9 (FADT), 5.2.10 (FACS), 5.2.11.1 (DSDT), 5.2.12 (MADT), 6.4
 * (resource descriptors), 7.4.2 (\_Sx), 20.2 (AML grammar).
 */
#ifndef TERN_LIB_ACPI_BUILD_H
#define TERN_LIB_ACPI_BUILD_H

#include <stddef.h>
#include <stdint.h>

#define ACPI_BUILD_MAX_CPUS	64
#define ACPI_BUILD_LAPIC	0xfee00000u
#define ACPI_BUILD_IOAPIC	0xfec00000u
#define ACPI_BUILD_IOAPIC_ID	0		/* as QEMU's; APIC IDs are 0..n-1 */
#define ACPI_BUILD_SCI_IRQ	9
#define ACPI_BUILD_COM1_PORT	0x3f8
#define ACPI_BUILD_COM1_IRQ	4
#define ACPI_BUILD_ECAM_SIZE	(1u << 20)	/* bus 0 only (PCIe 7.2.2) */

/* What the caller chooses; acpi_build_defaults fills the usual values. */
struct acpi_build_cfg {
	int ncpus;		/* 1..64: Local APIC IDs and UIDs 0..ncpus-1 */
	uint64_t base;		/* GPA of buf[0]: 64-byte aligned, below 4 GiB */
	uint16_t pm1a_evt;	/* I/O port of the PM1a event block */
	uint16_t pm1a_cnt;	/* I/O port of the PM1a control block */
	uint16_t pm_tmr;	/* 0: no PM timer */
	uint8_t pm_tmr_32bit;	/* TMR_VAL_EXT: the timer counts 32 bits */
	uint16_t gpe0;		/* 0: no GPE0 block */
	uint8_t gpe0_len;	/* bytes, even: status half then enable half */
	uint16_t reset_port;	/* RESET_REG, System I/O space */
	uint8_t reset_value;
	uint8_t s5_slp_typ;	/* 0..7, PM1_CNT SLP_TYP for soft-off */
	uint16_t boot_arch;	/* IAPC_BOOT_ARCH, ACPI_BOOT_* of acpi_tables.h */
	/*
	 * PCI bus 0 behind a host bridge (\_SB.PCI0, PNP0A08), 0 for none:
	 * its ECAM window (1 MiB, one bus, in an MCFG table) and the 32-bit
	 * memory window where BARs live; config mechanism #1 at 0xcf8 is
	 * always claimed with it.
	 */
	uint64_t pci_ecam;
	uint32_t pci_mmio_base, pci_mmio_size;
};

/* Offsets in the buffer of each table, and the bytes used. */
struct acpi_build_layout {
	uint32_t rsdp, facs, xsdt, rsdt, fadt, madt, mcfg, dsdt;	/* mcfg 0: none */
	uint32_t size;
};

/*
 * ncpus vCPUs, tables at base; PM1a event block at port 0x600, control at
 * 0x604, no PM timer and no GPE0, reset 0x06 to 0xcf9, S5 SLP_TYP 5,
 * boot_arch LEGACY_DEVICES | VGA_NOT_PRESENT (no i8042 announced).
 */
void acpi_build_defaults(struct acpi_build_cfg *cfg, int ncpus, uint64_t base);

/*
 * Write the tables for cfg into buf[0, size).  Returns 0 with *out filled;
 * -EINVAL for a bad cfg (vCPU count, alignment, tables reaching past
 * 4 GiB, overlapping or absent ports, SLP_TYP above 7); -ENOSPC if size
 * is too small.  *why (may be NULL) gets a one-line reason.  The bytes
 * of buf past out->size are left alone.
 */
int acpi_build(const struct acpi_build_cfg *cfg, uint8_t *buf, size_t size,
	       struct acpi_build_layout *out, const char **why);

#endif
