/*
 * ACPI table generation for guests, pure.  Every field is written with
 * byteorder.h's little-endian stores at the offset its ACPI 6.5 table
 * gives, into a buffer cleared first, so reserved fields are zero.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/acpi_build.h"
#include "kernel/lib/acpi_tables.h"
#include "kernel/lib/byteorder.h"

#define AB_OEM_ID		"TERN  "	/* 6 bytes */
#define AB_OEM_TABLE_ID		"TERNVM  "	/* 8 bytes */
#define AB_CREATOR_ID		"TERN"
#define AB_HDR_LEN		36		/* Table 5.4 */
#define AB_RSDP_LEN		36		/* Table 5.3 */
#define AB_FACS_LEN		64		/* Table 5.14 */
#define AB_FADT_LEN		276		/* Table 5.9, revision 6 */
#define AB_GAS_LEN		12		/* Table 5.1 */

/* MADT entry lengths (5.2.12.2, .3, .5, .7) and the fixed part. */
#define AB_MADT_FIXED		44
#define AB_MADT_LAPIC_LEN	8
#define AB_MADT_IOAPIC_LEN	12
#define AB_MADT_ISO_LEN		10
#define AB_MADT_NMI_LEN		6
#define AB_AML_MAX		512		/* our DSDT body is ~250 bytes */
#define AB_MCFG_LEN		60		/* PCI Firmware 3.2 4.1.2: one entry */
#define AB_4G			(1ull << 32)

static int ab_fail(const char **why, const char *msg, int rc)
{
	if (why)
		*why = msg;
	return rc;
}

static uint32_t ab_align(uint32_t v, uint32_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Make the bytes of p[0, len) sum to zero through p[at] (5.2.6, 5.2.5.3). */
static void ab_checksum(uint8_t *p, uint32_t len, uint32_t at)
{
	p[at] = 0;
	p[at] = (uint8_t)-acpi_sum8(p, len);
}

/* System Description Table Header, Table 5.4; checksummed last. */
static void ab_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	st_le32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, AB_OEM_ID, 6);
	memcpy(t + 16, AB_OEM_TABLE_ID, 8);
	st_le32(t + 24, 1);			/* OEM Revision */
	memcpy(t + 28, AB_CREATOR_ID, 4);
	st_le32(t + 32, 1);			/* Creator Revision */
}

/* Generic Address Structure, Table 5.1: access size 1 byte .. 4 dword. */
static void ab_gas_io(uint8_t *g, uint16_t port, uint8_t bytes, uint8_t access)
{
	g[0] = ACPI_GAS_IO;
	g[1] = (uint8_t)(bytes * 8);
	g[2] = 0;
	g[3] = access;
	st_le64(g + 4, port);
}

/* ---- AML (20.2), with PkgLength in its shortest form like iasl ---- */

struct aml {
	uint8_t b[AB_AML_MAX];
	uint32_t len;
	bool overflow;
};

static void aml_put(struct aml *a, const void *p, uint32_t n)
{
	if (a->overflow || n > AB_AML_MAX - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->b + a->len, p, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t v)
{
	aml_put(a, &v, 1);
}

/* Reserve the two bytes of a PkgLength; aml_pkg_end fills it in. */
static uint32_t aml_pkg_begin(struct aml *a)
{
	uint32_t at = a->len;

	aml_put(a, "\0\0", 2);
	return at;
}

/*
 * 20.2.4 PkgLength: the length counts its own bytes.  One byte holds up
 * to 63; two bytes hold bits 3:0 in the lead (with bit 6 set: one byte
 * follows) and bits 11:4 in the next.
 */
static void aml_pkg_end(struct aml *a, uint32_t at)
{
	uint32_t body = a->len - at - 2;

	if (a->overflow)
		return;
	if (body + 1 <= 63) {
		a->b[at] = (uint8_t)(body + 1);
		memmove(a->b + at + 1, a->b + at + 2, body);
		a->len--;
	} else if (body + 2 <= 0xfff) {
		a->b[at] = (uint8_t)(0x40 | ((body + 2) & 0xf));
		a->b[at + 1] = (uint8_t)((body + 2) >> 4);
	} else {
		a->overflow = true;
	}
}

/* An integer as iasl writes a small constant: ZeroOp, OneOp, BytePrefix. */
static void aml_small_int(struct aml *a, uint8_t v)
{
	if (v > 1)
		aml_byte(a, 0x0a);
	aml_byte(a, v);
}

/* Name(_S5_, Package(4){typ, typ, 0, 0}): 7.4.2, SLP_TYPa then SLP_TYPb. */
static void aml_s5(struct aml *a, uint8_t typ)
{
	uint32_t pkg;

	aml_put(a, "\x08_S5_", 5);		/* NameOp NameSeg */
	aml_byte(a, 0x12);			/* PackageOp */
	pkg = aml_pkg_begin(a);
	aml_byte(a, 4);				/* NumElements */
	aml_small_int(a, typ);
	aml_small_int(a, typ);
	aml_small_int(a, 0);
	aml_small_int(a, 0);
	aml_pkg_end(a, pkg);
}

/*
 * _CRS of a 16550 at COM1: IO(Decode16, 0x3f8, 0x3f8, 0, 8) (6.4.2.5,
 * Table 6.41), IRQNoFlags(){4} (6.4.2.1, Table 6.36, the 2-byte form:
 * edge, active high), End Tag (6.4.2.9) with a zero checksum ("treated
 * as if the checksum operation succeeded").
 */
static void aml_com1_crs(struct aml *a)
{
	static const uint8_t crs[] = {
		0x47, 0x01, ACPI_BUILD_COM1_PORT & 0xff, ACPI_BUILD_COM1_PORT >> 8,
		ACPI_BUILD_COM1_PORT & 0xff, ACPI_BUILD_COM1_PORT >> 8, 0x00, 0x08,
		0x22, 1u << ACPI_BUILD_COM1_IRQ, 0x00,
		0x79, 0x00,
	};
	uint32_t pkg;

	aml_put(a, "\x08_CRS", 5);
	aml_byte(a, 0x11);			/* BufferOp */
	pkg = aml_pkg_begin(a);
	aml_byte(a, 0x0a);			/* BufferSize: BytePrefix */
	aml_byte(a, sizeof(crs));
	aml_put(a, crs, sizeof(crs));
	aml_pkg_end(a, pkg);
}

/* Scope(\_SB_) { Device(name) { ...: the caller adds the body, then
 * closes both with aml_sb_device_end. */
static void aml_sb_device_begin(struct aml *a, const char name[4], uint32_t pkg[2])
{
	aml_byte(a, 0x10);			/* ScopeOp */
	pkg[0] = aml_pkg_begin(a);
	aml_put(a, "\\_SB_", 5);
	aml_put(a, "\x5b\x82", 2);		/* DeviceOp */
	pkg[1] = aml_pkg_begin(a);
	aml_put(a, name, 4);
}

static void aml_sb_device_end(struct aml *a, const uint32_t pkg[2])
{
	aml_pkg_end(a, pkg[1]);
	aml_pkg_end(a, pkg[0]);
}

/*
 * Scope(\_SB_) { Device(COM1) { _HID EisaId("PNP0501"), _UID One, _CRS } }.
 * EisaId packs three letters in 5 bits each ('P' 'N' 'P' = 0x41d0, stored
 * big-endian) then the product number 0x0501: 0x0105d041 little-endian.
 */
static void aml_com1(struct aml *a)
{
	static const uint8_t hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01 };
	uint32_t pkg[2];

	aml_sb_device_begin(a, "COM1", pkg);
	aml_put(a, hid, sizeof(hid));
	aml_put(a, "\x08_UID\x01", 6);		/* Name(_UID, One) */
	aml_com1_crs(a);
	aml_sb_device_end(a, pkg);
}

/*
 * _CRS of the PCI root bridge (ACPI 6.5 6.4.3.5): WordBusNumber 0-0
 * (resource type 2, flags MinFixed|MaxFixed, a producer), IO(Decode16)
 * for config mechanism #1 at 0xcf8 (8 ports, consumed), WordIO windows
 * around it (ISA ranges: type-specific 3), a DWordMemory window
 * (read-write, non-cacheable) for the BARs, End Tag.  The layout is the
 * one QEMU's q35 tables give Linux, which never touches the windows
 * beyond assigning BARs that firmware left at zero.
 */
static void aml_word_range(struct aml *a, uint8_t type, uint8_t tflags, uint16_t min,
			   uint16_t max)
{
	uint8_t d[16] = { 0x88, 0x0d, 0x00, type, 0x0c, tflags };

	st_le16(d + 8, min);
	st_le16(d + 10, max);
	st_le16(d + 14, (uint16_t)(max - min + 1));
	aml_put(a, d, sizeof(d));
}

static void aml_pci_crs(struct aml *a, uint32_t mmio, uint32_t size)
{
	static const uint8_t cf8[] = { 0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08 };
	uint8_t mem[26] = { 0x87, 0x17, 0x00, 0x00, 0x0c, 0x01 };
	uint32_t pkg;

	st_le32(mem + 10, mmio);
	st_le32(mem + 14, mmio + size - 1);
	st_le32(mem + 22, size);
	aml_put(a, "\x08_CRS", 5);
	aml_byte(a, 0x11);			/* BufferOp */
	pkg = aml_pkg_begin(a);
	aml_byte(a, 0x0a);			/* BufferSize: BytePrefix */
	aml_byte(a, 3 * 16 + sizeof(cf8) + sizeof(mem) + 2);
	aml_word_range(a, 2, 0, 0, 0);		/* bus 0 */
	aml_put(a, cf8, sizeof(cf8));
	aml_word_range(a, 1, 3, 0x0000, 0x0cf7);
	aml_word_range(a, 1, 3, 0x0d00, 0xffff);
	aml_put(a, mem, sizeof(mem));
	aml_put(a, "\x79\x00", 2);
	aml_pkg_end(a, pkg);
}

/*
 * Scope(\_SB_) { Device(PCI0) { _HID EisaId("PNP0A08") (PCI Express
 * root), _CID EisaId("PNP0A03"), _UID Zero, _SEG Zero, _BBN Zero, _CRS } }:
 * what Linux's acpi_pci_root driver needs to scan bus 0.  No _PRT: the
 * functions have no INTx pin (MSI-X only, like Cloud Hypervisor's).
 */
static void aml_pci0(struct aml *a, uint32_t mmio, uint32_t size)
{
	static const uint8_t ids[] = {
		0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08,
		0x08, '_', 'C', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03,
		0x08, '_', 'U', 'I', 'D', 0x00,
		0x08, '_', 'S', 'E', 'G', 0x00,
		0x08, '_', 'B', 'B', 'N', 0x00,
	};
	uint32_t pkg[2];

	aml_sb_device_begin(a, "PCI0", pkg);
	aml_put(a, ids, sizeof(ids));
	aml_pci_crs(a, mmio, size);
	aml_sb_device_end(a, pkg);
}

/* ---- tables ---- */

/* RSDP, 5.2.5.3 Table 5.3: revision 2, both checksums. */
static void ab_rsdp(uint8_t *r, uint64_t base, const struct acpi_build_layout *l)
{
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, AB_OEM_ID, 6);
	r[15] = 2;
	st_le32(r + 16, (uint32_t)(base + l->rsdt));
	st_le32(r + 20, AB_RSDP_LEN);
	st_le64(r + 24, base + l->xsdt);
	ab_checksum(r, 20, 8);			/* first 20 bytes */
	ab_checksum(r, AB_RSDP_LEN, 32);	/* Extended Checksum */
}

/* FACS, 5.2.10 Table 5.14: no checksum; version 2 (with the 64-bit
 * waking vector and OSPM flags, as current firmware reports). */
static void ab_facs(uint8_t *f)
{
	memcpy(f, "FACS", 4);
	st_le32(f + 4, AB_FACS_LEN);
	f[32] = 2;
}

static uint32_t ab_root_entries(const struct acpi_build_layout *l)
{
	return l->mcfg ? 3 : 2;
}

/* XSDT (5.2.8, 64-bit entries) or RSDT (5.2.7, 32-bit): FADT, MADT, MCFG. */
static void ab_root(uint8_t *t, bool x, uint64_t base, const struct acpi_build_layout *l)
{
	uint32_t esz = x ? 8 : 4, len = AB_HDR_LEN + ab_root_entries(l) * esz;

	ab_header(t, x ? "XSDT" : "RSDT", len, 1);
	st_le_n(t + AB_HDR_LEN, base + l->fadt, esz);
	st_le_n(t + AB_HDR_LEN + esz, base + l->madt, esz);
	if (l->mcfg)
		st_le_n(t + AB_HDR_LEN + 2 * esz, base + l->mcfg, esz);
	ab_checksum(t, len, 9);
}

/* MCFG, PCI Firmware 3.2 4.1.2 Table 4-3: one allocation, segment 0,
 * buses 0-0. */
static void ab_mcfg(uint8_t *t, uint64_t ecam)
{
	ab_header(t, "MCFG", AB_MCFG_LEN, 1);
	st_le64(t + 44, ecam);
	st_le16(t + 52, 0);
	t[54] = 0;
	t[55] = 0;
	ab_checksum(t, AB_MCFG_LEN, 9);
}

/* FADT Flags (Table 5.10) we claim. */
#define FADT_F_WBINVD		(1u << 0)	/* required since ACPI 2.0 */
#define FADT_F_PROC_C1		(1u << 2)	/* HLT works on every CPU */
#define FADT_F_PWR_BUTTON	(1u << 4)	/* no fixed power button */
#define FADT_F_SLP_BUTTON	(1u << 5)	/* no fixed sleep button */
#define FADT_F_FORCE_APIC_PHYS	(1u << 19)	/* no logical flat mode */

/* One register block: legacy 32-bit address and length, and its X_ GAS. */
static void ab_fadt_blk(uint8_t *t, uint32_t off, uint32_t len_off, uint32_t x_off,
			uint16_t port, uint8_t len, uint8_t access)
{
	if (!port)
		return;
	st_le32(t + off, port);
	t[len_off] = len;
	ab_gas_io(t + x_off, port, len, access);
}

/* FADT, 5.2.9 Table 5.9 (offsets in the comments' order), revision 6.5. */
static void ab_fadt(uint8_t *t, const struct acpi_build_cfg *c, uint64_t base,
		    const struct acpi_build_layout *l)
{
	uint32_t flags = FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_PWR_BUTTON |
			 FADT_F_SLP_BUTTON | ACPI_FADT_RESET_REG_SUP | FADT_F_FORCE_APIC_PHYS;

	ab_header(t, "FACP", AB_FADT_LEN, 6);
	st_le32(t + 36, (uint32_t)(base + l->facs));	/* FIRMWARE_CTRL */
	st_le32(t + 40, (uint32_t)(base + l->dsdt));	/* DSDT */
	st_le16(t + 46, ACPI_BUILD_SCI_IRQ);		/* SCI_INT */
	/* SMI_CMD (48), ACPI_ENABLE/DISABLE: 0, no SMM to hand over from. */
	ab_fadt_blk(t, 56, 88, 148, c->pm1a_evt, 4, 2);	/* PM1a_EVT_BLK */
	ab_fadt_blk(t, 64, 89, 172, c->pm1a_cnt, 2, 2);	/* PM1a_CNT_BLK */
	ab_fadt_blk(t, 76, 91, 208, c->pm_tmr, 4, 3);	/* PM_TMR_BLK */
	ab_fadt_blk(t, 80, 92, 220, c->gpe0, c->gpe0_len, 1);	/* GPE0_BLK */
	/* P_LVL2/3_LAT above 100/1000: C2 and C3 not supported. */
	st_le16(t + 96, 101);
	st_le16(t + 98, 1001);
	st_le16(t + 109, c->boot_arch);			/* IAPC_BOOT_ARCH */
	if (c->pm_tmr && c->pm_tmr_32bit)
		flags |= ACPI_FADT_TMR_VAL_EXT;
	st_le32(t + 112, flags);
	ab_gas_io(t + 116, c->reset_port, 1, 1);	/* RESET_REG */
	t[128] = c->reset_value;			/* RESET_VALUE */
	t[131] = 5;					/* FADT Minor Version */
	/* X_FIRMWARE_CTRL (132) stays 0: "If the FIRMWARE_CTRL field
	 * contains a non zero value then this field must be zero." */
	st_le64(t + 140, base + l->dsdt);		/* X_DSDT */
	ab_checksum(t, AB_FADT_LEN, 9);
}

static uint32_t ab_madt_len(int ncpus)
{
	return AB_MADT_FIXED + (uint32_t)ncpus * AB_MADT_LAPIC_LEN + AB_MADT_IOAPIC_LEN +
	       2 * AB_MADT_ISO_LEN + AB_MADT_NMI_LEN;
}

/* Interrupt Source Override, 5.2.12.5 Table 5.25 (bus 0 = ISA). */
static uint8_t *ab_iso(uint8_t *e, uint8_t irq, uint32_t gsi, uint16_t mps_flags)
{
	e[0] = 2;
	e[1] = AB_MADT_ISO_LEN;
	e[2] = 0;
	e[3] = irq;
	st_le32(e + 4, gsi);
	st_le16(e + 8, mps_flags);
	return e + AB_MADT_ISO_LEN;
}

/*
 * MADT, 5.2.12 Table 5.19, revision 5 (ACPI 6.3+, the Online Capable
 * flag; Linux reads it from revision 5 on).  Processor Local APIC
 * entries (Table 5.22, flags bit 0 Enabled), one I/O APIC (Table 5.24),
 * IRQ0 -> GSI2 (the PIT on IOAPIC pin 2) and the SCI level/active-high
 * (MPS INTI flags, Table 5.26: polarity 01 high, trigger 11 level), and
 * LINT1 as NMI on every processor (Table 5.28, UID 0xff = all).
 */
static void ab_madt(uint8_t *t, int ncpus)
{
	uint32_t len = ab_madt_len(ncpus);
	uint8_t *e = t + AB_MADT_FIXED;

	ab_header(t, "APIC", len, 5);
	st_le32(t + 36, ACPI_BUILD_LAPIC);
	st_le32(t + 40, 1);				/* PCAT_COMPAT */
	for (int i = 0; i < ncpus; i++, e += AB_MADT_LAPIC_LEN) {
		e[0] = 0;
		e[1] = AB_MADT_LAPIC_LEN;
		e[2] = (uint8_t)i;			/* ACPI Processor UID */
		e[3] = (uint8_t)i;			/* APIC ID */
		st_le32(e + 4, 1);			/* Enabled */
	}
	e[0] = 1;
	e[1] = AB_MADT_IOAPIC_LEN;
	e[2] = ACPI_BUILD_IOAPIC_ID;
	st_le32(e + 4, ACPI_BUILD_IOAPIC);
	st_le32(e + 8, 0);				/* GSI base */
	e += AB_MADT_IOAPIC_LEN;
	e = ab_iso(e, 0, 2, 0);
	e = ab_iso(e, ACPI_BUILD_SCI_IRQ, ACPI_BUILD_SCI_IRQ, 0x000d);
	e[0] = 4;
	e[1] = AB_MADT_NMI_LEN;
	e[2] = 0xff;
	st_le16(e + 3, 0);				/* conforming */
	e[5] = 1;					/* LINT1 */
	ab_checksum(t, len, 9);
}

/* DSDT, 5.2.11.1: revision 2 (64-bit AML integers). */
static void ab_dsdt(uint8_t *t, const struct aml *a)
{
	ab_header(t, "DSDT", AB_HDR_LEN + a->len, 2);
	memcpy(t + AB_HDR_LEN, a->b, a->len);
	ab_checksum(t, AB_HDR_LEN + a->len, 9);
}

/* ---- configuration ---- */

void acpi_build_defaults(struct acpi_build_cfg *cfg, int ncpus, uint64_t base)
{
	*cfg = (struct acpi_build_cfg){
		.ncpus = ncpus, .base = base, .pm1a_evt = 0x600, .pm1a_cnt = 0x604,
		.reset_port = 0xcf9, .reset_value = 0x06, .s5_slp_typ = 5,
		.boot_arch = ACPI_BOOT_LEGACY_DEVICES | ACPI_BOOT_VGA_NOT_PRESENT,
	};
}

static bool ab_ports_overlap(uint16_t (*r)[2], int n)
{
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (r[i][0] < r[j][0] + r[j][1] && r[j][0] < r[i][0] + r[i][1])
				return true;
	return false;
}

static int ab_check_ports(const struct acpi_build_cfg *c, const char **why)
{
	uint16_t r[5][2];
	int n = 0;

	if (!c->pm1a_evt || !c->pm1a_cnt || !c->reset_port)
		return ab_fail(why, "PM1a event, PM1a control and reset ports are required",
			       -EINVAL);
	if (c->gpe0 && (c->gpe0_len == 0 || c->gpe0_len % 2))
		return ab_fail(why, "GPE0 block length must be even and non-zero", -EINVAL);
	r[n][0] = c->pm1a_evt, r[n++][1] = 4;
	r[n][0] = c->pm1a_cnt, r[n++][1] = 2;
	r[n][0] = c->reset_port, r[n++][1] = 1;
	if (c->pm_tmr)
		r[n][0] = c->pm_tmr, r[n++][1] = 4;
	if (c->gpe0)
		r[n][0] = c->gpe0, r[n++][1] = c->gpe0_len;
	for (int i = 0; i < n; i++)
		if ((uint32_t)r[i][0] + r[i][1] > 0x10000)
			return ab_fail(why, "I/O block runs past port 0xffff", -EINVAL);
	if (ab_ports_overlap(r, n))
		return ab_fail(why, "ACPI I/O blocks overlap", -EINVAL);
	return 0;
}

static int ab_check_cfg(const struct acpi_build_cfg *c, const char **why)
{
	if (c->ncpus < 1 || c->ncpus > ACPI_BUILD_MAX_CPUS)
		return ab_fail(why, "vCPU count outside 1..64", -EINVAL);
	if (c->base % 64)
		return ab_fail(why, "table base not 64-byte aligned (FACS)", -EINVAL);
	if (c->s5_slp_typ > 7)
		return ab_fail(why, "S5 SLP_TYP does not fit in 3 bits", -EINVAL);
	if (c->pci_ecam && (c->pci_ecam % ACPI_BUILD_ECAM_SIZE || !c->pci_mmio_size ||
			    c->pci_mmio_base % 4096 || c->pci_mmio_size % 4096 ||
			    (uint64_t)c->pci_mmio_base + c->pci_mmio_size > AB_4G))
		return ab_fail(why, "PCI windows misaligned or past 4 GiB", -EINVAL);
	return ab_check_ports(c, why);
}

static void ab_layout(int ncpus, bool pci, uint32_t dsdt_len, struct acpi_build_layout *l)
{
	uint32_t n = pci ? 3 : 2;

	l->rsdp = 0;
	l->facs = ab_align(AB_RSDP_LEN, 64);
	l->xsdt = ab_align(l->facs + AB_FACS_LEN, 16);
	l->rsdt = ab_align(l->xsdt + AB_HDR_LEN + n * 8, 16);
	l->fadt = ab_align(l->rsdt + AB_HDR_LEN + n * 4, 16);
	l->madt = ab_align(l->fadt + AB_FADT_LEN, 16);
	l->mcfg = pci ? ab_align(l->madt + ab_madt_len(ncpus), 16) : 0;
	l->dsdt = ab_align(pci ? l->mcfg + AB_MCFG_LEN : l->madt + ab_madt_len(ncpus), 16);
	l->size = l->dsdt + dsdt_len;
}

int acpi_build(const struct acpi_build_cfg *cfg, uint8_t *buf, size_t size,
	       struct acpi_build_layout *out, const char **why)
{
	struct acpi_build_layout l;
	struct aml aml = { .len = 0 };
	int rc = ab_check_cfg(cfg, why);

	if (rc)
		return rc;
	aml_s5(&aml, cfg->s5_slp_typ);
	aml_com1(&aml);
	if (cfg->pci_ecam)
		aml_pci0(&aml, cfg->pci_mmio_base, cfg->pci_mmio_size);
	if (aml.overflow)
		return ab_fail(why, "DSDT body too long", -EINVAL);
	ab_layout(cfg->ncpus, cfg->pci_ecam != 0, AB_HDR_LEN + aml.len, &l);
	/* The RSDT and FADT hold 32-bit addresses. */
	if (cfg->base >= AB_4G || l.size > AB_4G - cfg->base)
		return ab_fail(why, "ACPI tables would reach past 4 GiB", -EINVAL);
	if (!buf || size < l.size)
		return ab_fail(why, "buffer too small for the ACPI tables", -ENOSPC);
	memset(buf, 0, l.size);
	ab_facs(buf + l.facs);
	ab_dsdt(buf + l.dsdt, &aml);
	ab_madt(buf + l.madt, cfg->ncpus);
	if (l.mcfg)
		ab_mcfg(buf + l.mcfg, cfg->pci_ecam);
	ab_fadt(buf + l.fadt, cfg, cfg->base, &l);
	ab_root(buf + l.xsdt, true, cfg->base, &l);
	ab_root(buf + l.rsdt, false, cfg->base, &l);
	ab_rsdp(buf + l.rsdp, cfg->base, &l);
	*out = l;
	return 0;
}
