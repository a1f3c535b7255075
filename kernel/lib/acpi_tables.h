/*
 * ACPI static table parsing: RSDP, RSDT/XSDT, FADT, MADT, HPET, MCFG and
 * the \_S5_ object of the DSDT.  Pure: all memory is reached through a
 * caller-supplied mapper, so the kernel hands its direct map and the unit
 * tests hand a fake physical memory.
 *
 * References: ACPI 6.5 chapter 5.2 (tables), 20.2 (AML grammar); IA-PC HPET
 * specification 1.0a section 3.2.4; PCI Firmware specification 3.2 section
 * 4.1.2 (MCFG).
 */
#ifndef TERN_LIB_ACPI_TABLES_H
#define TERN_LIB_ACPI_TABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Map len bytes at physical address phys; NULL if that cannot be done.
 * A returned pointer must stay valid until acpi_parse returns.  The data
 * is only read, and never assumed to be aligned.
 */
typedef const void *(*acpi_map_fn)(void *ctx, uint64_t phys, size_t len);

#define ACPI_MAX_CPUS		256
#define ACPI_MAX_IOAPICS	8
#define ACPI_MAX_ISOS		24
#define ACPI_MAX_MCFG		4
#define ACPI_MAX_TABLE_LEN	(16u << 20)	/* refuse anything larger */
#define ACPI_MAX_SDT_ENTRIES	256		/* root entries looked at */

/* Generic Address Structure, ACPI 6.5 5.2.3.2. */
#define ACPI_GAS_MEMORY		0
#define ACPI_GAS_IO		1
#define ACPI_GAS_PCI_CONFIG	2

struct acpi_gas {
	uint8_t space, bit_width, bit_offset, access_size;
	uint64_t address;
};

/* FADT Flags, ACPI 6.5 Table 5.10. */
#define ACPI_FADT_TMR_VAL_EXT	(1u << 8)
#define ACPI_FADT_RESET_REG_SUP	(1u << 10)
#define ACPI_FADT_HW_REDUCED	(1u << 20)

/* FADT IAPC_BOOT_ARCH, ACPI 6.5 Table 5.11. */
#define ACPI_BOOT_LEGACY_DEVICES	(1u << 0)
#define ACPI_BOOT_8042			(1u << 1)
#define ACPI_BOOT_VGA_NOT_PRESENT	(1u << 2)
#define ACPI_BOOT_MSI_NOT_SUPPORTED	(1u << 3)
#define ACPI_BOOT_CMOS_RTC_NOT_PRESENT	(1u << 5)

struct acpi_cpu {
	uint32_t apic_id;
	uint32_t acpi_uid;
	bool enabled;		/* usable now */
	bool online_capable;	/* disabled, but may be brought online */
	bool x2apic;		/* came from a type 9 entry */
};

struct acpi_ioapic {
	uint8_t id;
	uint32_t phys;
	uint32_t gsi_base;
};

struct acpi_iso {
	uint8_t bus, source;
	uint32_t gsi;
	uint16_t flags;		/* MPS INTI flags: polarity bits 1:0, trigger 3:2 */
};

struct acpi_mcfg {
	uint64_t base;
	uint16_t segment;
	uint8_t bus_start, bus_end;
};

struct acpi_info {
	/* Root. */
	uint8_t revision;	/* RSDP revision: 0 = ACPI 1.0, 2 = 2.0+ */
	uint64_t sdt_phys;	/* the XSDT or RSDT actually walked */
	bool xsdt;
	int bad_tables;		/* unmappable, bad length/checksum: skipped */

	/* MADT (ACPI 6.5 5.2.12). */
	bool has_madt;
	uint64_t lapic_phys;	/* widened: type 5 overrides with 64 bits */
	bool pcat_compat;	/* dual 8259s present: mask them */
	int ncpus;
	struct acpi_cpu cpu[ACPI_MAX_CPUS];
	int nioapic;
	struct acpi_ioapic ioapic[ACPI_MAX_IOAPICS];
	int niso;
	struct acpi_iso iso[ACPI_MAX_ISOS];
	int madt_errors;	/* malformed entries skipped or walk cut short */
	int dropped;		/* valid entries lost to the array limits */

	/* HPET. */
	bool has_hpet;
	uint64_t hpet_phys;
	uint8_t hpet_comparators;	/* 1..32 */
	uint8_t hpet_number;
	uint16_t hpet_min_tick;

	/* FADT (ACPI 6.5 5.2.9).  Ports are 0 when absent or not in I/O space. */
	bool has_fadt;
	uint8_t fadt_revision;
	uint32_t fadt_len;
	uint16_t sci_irq;
	uint32_t pm_tmr_port;
	bool pm_tmr_32bit;
	uint32_t pm1a_cnt, pm1b_cnt;
	uint32_t smi_cmd;
	uint8_t acpi_enable;
	uint16_t boot_arch_flags;
	uint32_t fadt_flags;
	bool hw_reduced;
	bool reset_supported;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint64_t dsdt_phys;

	/* DSDT \_S5_: SLP_TYPa/b values for soft-off (ACPI 6.5 7.4.2). */
	bool has_s5;
	uint8_t s5_slp_typa, s5_slp_typb;

	/* MCFG: ECAM windows. */
	bool has_mcfg;
	int nmcfg;
	struct acpi_mcfg mcfg[ACPI_MAX_MCFG];
};

/* The bytes of p[0, len) summed modulo 256 (ACPI 6.5 5.2.6), and whether
 * that is 0: the checker here, the table builder in acpi_build.c. */
uint8_t acpi_sum8(const void *p, size_t len);
bool acpi_checksum_ok(const void *p, size_t len);

/*
 * Fill *out from the tables reachable from the RSDP at rsdp_phys.
 * Returns 0, or -EINVAL with *why set when the RSDP or root table is
 * missing or corrupt.  Any other bad table is skipped and counted in
 * out->bad_tables; the first table of each signature wins.
 */
int acpi_parse(uint64_t rsdp_phys, acpi_map_fn map, void *ctx,
	       struct acpi_info *out, const char **why);

#endif
