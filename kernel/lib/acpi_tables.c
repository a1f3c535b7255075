/*
 * ACPI static table parsing through a caller-supplied mapper.
 *
 * Every multi-byte field is read with byteorder.h's little-endian loads
 * (tables are packed and often unaligned), and every read is preceded by a
 * check against the length the table was mapped with.  A table's length is
 * taken once from its header and never re-read, so the mapped size is the
 * only bound ever used.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/acpi_tables.h"
#include "kernel/lib/byteorder.h"

#define ACPI_HDR_LEN		36	/* ACPI 6.5 Table 5.4: SDT header */
#define ACPI_RSDP_V1_LEN	20	/* ACPI 6.5 Table 5.3 */
#define ACPI_RSDP_V2_LEN	36
#define ACPI_RSDP_MAX_LEN	4096	/* far above any real RSDP */

struct acpi_walk {
	acpi_map_fn map;
	void *ctx;
	struct acpi_info *out;
};

/* ACPI 6.5 5.2.3.2: 12 bytes, address at offset 4. */
static void rd_gas(const uint8_t *p, struct acpi_gas *g)
{
	g->space = p[0];
	g->bit_width = p[1];
	g->bit_offset = p[2];
	g->access_size = p[3];
	g->address = ld_le64(p + 4);
}

/* Does a field of size bytes at off lie inside a table of len bytes? */
static bool acpi_has(uint32_t len, uint32_t off, uint32_t size)
{
	return off <= len && size <= len - off;
}

uint8_t acpi_sum8(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + b[i]);
	return sum;
}

bool acpi_checksum_ok(const void *p, size_t len)
{
	return acpi_sum8(p, len) == 0;
}

static const uint8_t *acpi_map(struct acpi_walk *w, uint64_t phys, size_t len)
{
	if (phys == 0 || len > UINT64_MAX - phys)
		return NULL;
	return w->map(w->ctx, phys, len);
}

enum acpi_load_err {
	ACPI_LOAD_OK,
	ACPI_LOAD_UNMAPPED,
	ACPI_LOAD_SIGNATURE,
	ACPI_LOAD_LENGTH,
	ACPI_LOAD_CHECKSUM,
};

/*
 * Map a whole SDT: header first, then its length (bounded), then the body,
 * whose checksum covers the full length (ACPI 6.5 5.2.6).  sig may be NULL.
 */
static enum acpi_load_err acpi_load(struct acpi_walk *w, uint64_t phys, const char *sig,
				    const uint8_t **tp, uint32_t *lenp)
{
	const uint8_t *h = acpi_map(w, phys, ACPI_HDR_LEN), *t;
	uint32_t len;

	if (!h)
		return ACPI_LOAD_UNMAPPED;
	if (sig && memcmp(h, sig, 4))
		return ACPI_LOAD_SIGNATURE;
	len = ld_le32(h + 4);
	if (len < ACPI_HDR_LEN || len > ACPI_MAX_TABLE_LEN)
		return ACPI_LOAD_LENGTH;
	t = acpi_map(w, phys, len);
	if (!t)
		return ACPI_LOAD_UNMAPPED;
	if (!acpi_checksum_ok(t, len))
		return ACPI_LOAD_CHECKSUM;
	*tp = t;
	*lenp = len;
	return ACPI_LOAD_OK;
}

/* ---- MADT (ACPI 6.5 5.2.12) ---- */

static void acpi_add_cpu(struct acpi_info *o, uint32_t apic_id, uint32_t uid,
			 uint32_t flags, bool x2apic)
{
	bool enabled = flags & 1, online_capable = flags & 2;

	/* "If zero, this processor is unusable" unless Online Capable. */
	if (!enabled && !online_capable)
		return;
	for (int i = 0; i < o->ncpus; i++) {
		if (o->cpu[i].apic_id == apic_id) {
			o->madt_errors++;	/* listed twice: keep the first */
			return;
		}
	}
	if (o->ncpus == ACPI_MAX_CPUS) {
		o->dropped++;
		return;
	}
	o->cpu[o->ncpus++] = (struct acpi_cpu){ apic_id, uid, enabled,
						 !enabled && online_capable, x2apic };
}

/* Smallest valid length of each entry type we read (ACPI 6.5 5.2.12.x). */
static uint8_t acpi_madt_min_len(uint8_t type)
{
	switch (type) {
	case 0: return 8;	/* Processor Local APIC */
	case 1: return 12;	/* I/O APIC */
	case 2: return 10;	/* Interrupt Source Override */
	case 5: return 12;	/* Local APIC Address Override */
	case 9: return 16;	/* Processor Local x2APIC */
	default: return 2;
	}
}

static void acpi_madt_entry(struct acpi_info *o, const uint8_t *e, uint8_t len)
{
	if (len < acpi_madt_min_len(e[0])) {
		o->madt_errors++;
		return;
	}
	switch (e[0]) {
	case 0:
		/* 0xff is the xAPIC broadcast ID, never a real CPU. */
		if (e[3] == 0xff)
			o->madt_errors++;
		else
			acpi_add_cpu(o, e[3], e[2], ld_le32(e + 4), false);
		break;
	case 1:
		if (o->nioapic == ACPI_MAX_IOAPICS) {
			o->dropped++;
			break;
		}
		o->ioapic[o->nioapic++] = (struct acpi_ioapic){ e[2], ld_le32(e + 4), ld_le32(e + 8) };
		break;
	case 2:
		if (o->niso == ACPI_MAX_ISOS) {
			o->dropped++;
			break;
		}
		o->iso[o->niso++] = (struct acpi_iso){ e[2], e[3], ld_le32(e + 4), ld_le16(e + 8) };
		break;
	case 5:
		o->lapic_phys = ld_le64(e + 4);
		break;
	case 9:
		if (ld_le32(e + 4) == UINT32_MAX)
			o->madt_errors++;
		else
			acpi_add_cpu(o, ld_le32(e + 4), ld_le32(e + 12), ld_le32(e + 8), true);
		break;
	default:
		break;	/* 4 (LAPIC NMI) and everything newer: not needed */
	}
}

static void acpi_parse_madt(struct acpi_info *o, const uint8_t *t, uint32_t len)
{
	uint32_t off = 44;

	o->has_madt = true;
	if (!acpi_has(len, 36, 8)) {
		o->madt_errors++;
		return;
	}
	o->lapic_phys = ld_le32(t + 36);
	o->pcat_compat = ld_le32(t + 40) & 1;
	while (off < len) {
		uint8_t elen;

		if (len - off < 2) {
			o->madt_errors++;
			break;
		}
		elen = t[off + 1];
		/* A zero length would loop forever; an overrun reads past. */
		if (elen < 2 || elen > len - off) {
			o->madt_errors++;
			break;
		}
		acpi_madt_entry(o, t + off, elen);
		off += elen;
	}
}

/* ---- FADT (ACPI 6.5 5.2.9, Table 5.9 offsets) ---- */

#define FADT_DSDT		40
#define FADT_SCI_INT		46
#define FADT_SMI_CMD		48
#define FADT_ACPI_ENABLE	52
#define FADT_PM1A_CNT		64
#define FADT_PM1B_CNT		68
#define FADT_PM_TMR		76
#define FADT_PM_TMR_LEN		91
#define FADT_BOOT_ARCH		109
#define FADT_FLAGS		112
#define FADT_RESET_REG		116
#define FADT_RESET_VALUE	128
#define FADT_X_DSDT		140
#define FADT_X_PM1A_CNT		172
#define FADT_X_PM1B_CNT		184
#define FADT_X_PM_TMR		208
#define ACPI_GAS_LEN		12

/*
 * An I/O port from a FADT register: the X_ GAS when the table is long enough
 * to hold it and it is non-zero ("X_... If this field contains a nonzero
 * value, OSPM must ignore the legacy field"), else the legacy 32-bit block
 * address.  Only System I/O space is supported: anything else yields 0.
 */
static uint32_t acpi_fadt_port(const uint8_t *t, uint32_t len, uint32_t legacy_off,
			       uint32_t x_off)
{
	uint64_t addr;

	if (acpi_has(len, x_off, ACPI_GAS_LEN)) {
		struct acpi_gas g;

		rd_gas(t + x_off, &g);
		if (g.address)
			return g.space == ACPI_GAS_IO && g.address <= 0xffff ?
			       (uint32_t)g.address : 0;
	}
	if (!acpi_has(len, legacy_off, 4))
		return 0;
	addr = ld_le32(t + legacy_off);
	return addr <= 0xffff ? (uint32_t)addr : 0;
}

static void acpi_fadt_reset(struct acpi_info *o, const uint8_t *t, uint32_t len)
{
	struct acpi_gas *g = &o->reset_reg;

	if (!acpi_has(len, FADT_RESET_VALUE, 1))
		return;
	rd_gas(t + FADT_RESET_REG, g);
	o->reset_value = t[FADT_RESET_VALUE];
	/* Table 5.9 RESET_REG: only I/O, memory and PCI config space. */
	o->reset_supported = (o->fadt_flags & ACPI_FADT_RESET_REG_SUP) && g->address &&
			     (g->space == ACPI_GAS_MEMORY || g->space == ACPI_GAS_IO ||
			      g->space == ACPI_GAS_PCI_CONFIG);
}

static void acpi_parse_fadt(struct acpi_info *o, const uint8_t *t, uint32_t len)
{
	o->has_fadt = true;
	o->fadt_revision = t[8];
	o->fadt_len = len;
	if (acpi_has(len, FADT_X_DSDT, 8) && ld_le64(t + FADT_X_DSDT))
		o->dsdt_phys = ld_le64(t + FADT_X_DSDT);
	else if (acpi_has(len, FADT_DSDT, 4))
		o->dsdt_phys = ld_le32(t + FADT_DSDT);
	if (acpi_has(len, FADT_FLAGS, 4))
		o->fadt_flags = ld_le32(t + FADT_FLAGS);
	if (acpi_has(len, FADT_BOOT_ARCH, 2))
		o->boot_arch_flags = ld_le16(t + FADT_BOOT_ARCH);
	acpi_fadt_reset(o, t, len);

	/*
	 * 5.2.9: with HW_REDUCED_ACPI set, OSPM ignores the fields of the ACPI
	 * hardware register interface (offsets 46-108 and 148-232) and flag
	 * bits such as TMR_VAL_EXT: leave them all absent.
	 */
	o->hw_reduced = o->fadt_flags & ACPI_FADT_HW_REDUCED;
	if (o->hw_reduced)
		return;
	if (acpi_has(len, FADT_SCI_INT, 2))
		o->sci_irq = ld_le16(t + FADT_SCI_INT);
	if (acpi_has(len, FADT_SMI_CMD, 4))
		o->smi_cmd = ld_le32(t + FADT_SMI_CMD);
	if (acpi_has(len, FADT_ACPI_ENABLE, 1))
		o->acpi_enable = t[FADT_ACPI_ENABLE];
	o->pm1a_cnt = acpi_fadt_port(t, len, FADT_PM1A_CNT, FADT_X_PM1A_CNT);
	o->pm1b_cnt = acpi_fadt_port(t, len, FADT_PM1B_CNT, FADT_X_PM1B_CNT);
	o->pm_tmr_port = acpi_fadt_port(t, len, FADT_PM_TMR, FADT_X_PM_TMR);
	/* PM_TMR_LEN "must be 4" if the timer is supported, 0 if not. */
	if (acpi_has(len, FADT_PM_TMR_LEN, 1) && t[FADT_PM_TMR_LEN] != 4)
		o->pm_tmr_port = 0;
	o->pm_tmr_32bit = o->pm_tmr_port && (o->fadt_flags & ACPI_FADT_TMR_VAL_EXT);
}

/* ---- HPET (IA-PC HPET 1.0a, 3.2.4 Table 3) ---- */

static void acpi_parse_hpet(struct acpi_info *o, const uint8_t *t, uint32_t len)
{
	struct acpi_gas g;
	uint32_t id;

	if (!acpi_has(len, 40, ACPI_GAS_LEN)) {
		o->bad_tables++;
		return;
	}
	id = ld_le32(t + 36);
	rd_gas(t + 40, &g);
	/* The block is memory-mapped; any other space is unusable. */
	if (g.space != ACPI_GAS_MEMORY || g.address == 0)
		return;
	o->has_hpet = true;
	o->hpet_phys = g.address;
	/* Event Timer Block ID bits 12:8: number of comparators minus one. */
	o->hpet_comparators = (uint8_t)(((id >> 8) & 0x1f) + 1);
	if (acpi_has(len, 52, 1))
		o->hpet_number = t[52];
	if (acpi_has(len, 53, 2))
		o->hpet_min_tick = ld_le16(t + 53);
}

/* ---- MCFG (PCI Firmware 3.2, 4.1.2 Tables 4-2 and 4-3) ---- */

static void acpi_parse_mcfg(struct acpi_info *o, const uint8_t *t, uint32_t len)
{
	o->has_mcfg = true;
	/* 8 reserved bytes after the header, then 16-byte entries. */
	for (uint32_t off = 44; acpi_has(len, off, 16); off += 16) {
		const uint8_t *e = t + off;

		if (e[10] > e[11] || ld_le64(e) == 0)
			continue;	/* empty bus range or no window: useless */
		if (o->nmcfg == ACPI_MAX_MCFG) {
			o->dropped++;
			continue;
		}
		o->mcfg[o->nmcfg++] = (struct acpi_mcfg){ ld_le64(e), ld_le16(e + 8), e[10], e[11] };
	}
}

/* ---- DSDT \_S5_ (ACPI 6.5 20.2: AML grammar) ---- */

#define AML_ZERO_OP	0x00
#define AML_ONE_OP	0x01
#define AML_NAME_OP	0x08
#define AML_BYTE_PFX	0x0a
#define AML_WORD_PFX	0x0b
#define AML_DWORD_PFX	0x0c
#define AML_QWORD_PFX	0x0e
#define AML_PACKAGE_OP	0x12
#define AML_ONES_OP	0xff

/*
 * PkgLength (20.2.4): bits 7:6 of the lead byte count the bytes that
 * follow (0-3).  With none, bits 5:0 are the length; otherwise bits 3:0 are
 * the low nibble and each following byte adds 8 more bits.  The length
 * counts from the lead byte itself.  *pos moves past the encoding; *end
 * becomes the package end, checked against limit.
 */
static bool aml_pkg_length(const uint8_t *b, uint32_t *pos, uint32_t limit, uint32_t *end)
{
	uint32_t start = *pos, n, len;

	if (start >= limit)
		return false;
	n = b[start] >> 6;
	if (n > limit - start - 1)
		return false;
	if (n == 0) {
		len = b[start] & 0x3f;
	} else {
		len = b[start] & 0x0f;
		for (uint32_t i = 0; i < n; i++)
			len |= (uint32_t)b[start + 1 + i] << (4 + 8 * i);
	}
	if (len < n + 1 || len > limit - start)
		return false;
	*pos = start + 1 + n;
	*end = start + len;
	return true;
}

/* ComputationalData integer (20.2.3) or a constant object (20.2.5.1). */
static bool aml_integer(const uint8_t *b, uint32_t *pos, uint32_t end, uint64_t *v)
{
	static const uint8_t width[] = { [AML_BYTE_PFX] = 1, [AML_WORD_PFX] = 2,
					 [AML_DWORD_PFX] = 4, [AML_QWORD_PFX] = 8 };
	uint32_t p = *pos;
	uint8_t op, w;

	if (p >= end)
		return false;
	op = b[p++];
	if (op == AML_ZERO_OP || op == AML_ONE_OP || op == AML_ONES_OP) {
		*v = op == AML_ONES_OP ? UINT64_MAX : op;
		*pos = p;
		return true;
	}
	w = op < sizeof(width) ? width[op] : 0;
	if (!w || w > end - p)
		return false;
	*v = ld_le_n(b + p, w);
	*pos = p + w;
	return true;
}

/*
 * Package at pos: PackageOp PkgLength NumElements PackageElementList.
 * As ACPICA does for _Sx_, a one-element package packs SLP_TYPa in bits
 * 7:0 and SLP_TYPb in bits 15:8 of its single integer.
 */
static bool aml_s5_package(struct acpi_info *o, const uint8_t *b, uint32_t pos, uint32_t limit)
{
	uint32_t end;
	uint64_t a, bv;
	uint8_t count;

	if (pos >= limit || b[pos++] != AML_PACKAGE_OP)
		return false;
	if (!aml_pkg_length(b, &pos, limit, &end) || pos >= end)
		return false;
	count = b[pos++];
	if (count == 0 || !aml_integer(b, &pos, end, &a))
		return false;
	if (count == 1) {
		bv = a >> 8;
	} else if (!aml_integer(b, &pos, end, &bv)) {
		return false;
	}
	o->has_s5 = true;
	o->s5_slp_typa = (uint8_t)a;
	o->s5_slp_typb = (uint8_t)bv;
	return true;
}

/*
 * Without an AML interpreter, find "Name(_S5_, Package(){...})" by its
 * byte pattern: NameOp, an optional root prefix '\', the NameSeg, then a
 * package of integers.  A _S5_ computed by a method is not supported.
 * Every match that fails to decode is skipped and the scan goes on.
 */
static void acpi_parse_dsdt(struct acpi_info *o, const uint8_t *t, uint32_t len)
{
	const uint8_t *b = t + ACPI_HDR_LEN;
	uint32_t n = len - ACPI_HDR_LEN;

	for (uint32_t i = 1; n >= 4 && i <= n - 4; i++) {
		uint32_t j = i;

		if (memcmp(b + i, "_S5_", 4))
			continue;
		if (b[j - 1] == '\\')
			j--;
		if (j == 0 || b[j - 1] != AML_NAME_OP)
			continue;
		if (aml_s5_package(o, b, i + 4, n))
			return;
	}
}

/* ---- Root ---- */

static const char *const acpi_root_err[] = {
	[ACPI_LOAD_UNMAPPED] = "root table not mappable",
	[ACPI_LOAD_SIGNATURE] = "bad root table signature",
	[ACPI_LOAD_LENGTH] = "bad root table length",
	[ACPI_LOAD_CHECKSUM] = "bad root table checksum",
};

static int acpi_fail(const char **why, const char *msg)
{
	*why = msg;
	return -EINVAL;
}

/* RSDP, ACPI 6.5 5.2.5.3: the 1.0 checksum covers 20 bytes, the extended
 * checksum the whole Length for revision 2 and later. */
static int acpi_parse_rsdp(struct acpi_walk *w, uint64_t rsdp, const char **why)
{
	const uint8_t *r = acpi_map(w, rsdp, ACPI_RSDP_V1_LEN);
	uint32_t len;
	uint64_t xsdt;

	if (!r)
		return acpi_fail(why, "RSDP not mappable");
	if (memcmp(r, "RSD PTR ", 8))
		return acpi_fail(why, "bad RSDP signature");
	if (!acpi_checksum_ok(r, ACPI_RSDP_V1_LEN))
		return acpi_fail(why, "bad RSDP checksum");
	w->out->revision = r[15];
	w->out->sdt_phys = ld_le32(r + 16);
	if (r[15] < 2)
		return 0;
	r = acpi_map(w, rsdp, ACPI_RSDP_V2_LEN);
	if (!r)
		return acpi_fail(why, "RSDP not mappable");
	len = ld_le32(r + 20);
	if (len < ACPI_RSDP_V2_LEN || len > ACPI_RSDP_MAX_LEN)
		return acpi_fail(why, "bad RSDP length");
	xsdt = ld_le64(r + 24);
	r = acpi_map(w, rsdp, len);
	if (!r)
		return acpi_fail(why, "RSDP not mappable");
	if (!acpi_checksum_ok(r, len))
		return acpi_fail(why, "bad RSDP extended checksum");
	if (xsdt) {
		w->out->sdt_phys = xsdt;
		w->out->xsdt = true;
	}
	return 0;
}

static void acpi_dispatch(struct acpi_walk *w, uint64_t phys)
{
	static const char *const sigs[] = { "FACP", "APIC", "HPET", "MCFG" };
	struct acpi_info *o = w->out;
	const bool seen[] = { o->has_fadt, o->has_madt, o->has_hpet, o->has_mcfg };
	const uint8_t *h = acpi_map(w, phys, ACPI_HDR_LEN), *t;
	uint32_t len;
	size_t k;

	if (!h) {
		o->bad_tables++;
		return;
	}
	for (k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
		if (!memcmp(h, sigs[k], 4))
			break;
	/* Tables we do not use are never mapped whole or checksummed. */
	if (k == sizeof(sigs) / sizeof(sigs[0]) || seen[k])
		return;
	if (acpi_load(w, phys, sigs[k], &t, &len) != ACPI_LOAD_OK) {
		o->bad_tables++;
		return;
	}
	switch (k) {
	case 0: acpi_parse_fadt(o, t, len); break;
	case 1: acpi_parse_madt(o, t, len); break;
	case 2: acpi_parse_hpet(o, t, len); break;
	default: acpi_parse_mcfg(o, t, len); break;
	}
}

static void acpi_load_dsdt(struct acpi_walk *w)
{
	const uint8_t *t;
	uint32_t len;

	if (!w->out->dsdt_phys)
		return;
	if (acpi_load(w, w->out->dsdt_phys, "DSDT", &t, &len) != ACPI_LOAD_OK) {
		w->out->bad_tables++;
		return;
	}
	acpi_parse_dsdt(w->out, t, len);
}

int acpi_parse(uint64_t rsdp_phys, acpi_map_fn map, void *ctx,
	       struct acpi_info *out, const char **why)
{
	struct acpi_walk w = { map, ctx, out };
	const char *dummy;
	const uint8_t *t;
	uint32_t len, esz, n;
	enum acpi_load_err err;
	int rc;

	if (!why)
		why = &dummy;
	memset(out, 0, sizeof(*out));
	rc = acpi_parse_rsdp(&w, rsdp_phys, why);
	if (rc)
		goto fail;
	err = acpi_load(&w, out->sdt_phys, out->xsdt ? "XSDT" : "RSDT", &t, &len);
	if (err != ACPI_LOAD_OK) {
		rc = acpi_fail(why, acpi_root_err[err]);
		goto fail;
	}
	esz = out->xsdt ? 8 : 4;
	n = (len - ACPI_HDR_LEN) / esz;
	if (n > ACPI_MAX_SDT_ENTRIES)
		n = ACPI_MAX_SDT_ENTRIES;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = t + ACPI_HDR_LEN + i * esz;
		uint64_t phys = out->xsdt ? ld_le64(e) : ld_le32(e);

		if (phys)
			acpi_dispatch(&w, phys);
	}
	acpi_load_dsdt(&w);
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return rc;
}
