/*
 * Unit tests for kernel/lib/acpi_build.c: fields at their ACPI 6.5
 * offsets, byte-exact MADT entries and DSDT AML, every checksum, and a
 * cross-check that the kernel's own host parser (kernel/lib/acpi_tables.c)
 * reads the generated tables back to the same CPUs, IOAPIC, overrides,
 * FADT and \_S5.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/acpi_build.h"
#include "kernel/lib/acpi_tables.h"
#include "kernel/lib/byteorder.h"

#define T_BASE		0xe0000ull
#define T_BUF		4096

static uint8_t t_buf[T_BUF];

/* The DSDT body for SLP_TYP 5, as iasl compiles:
 *	Name (_S5, Package (0x04) { 0x05, 0x05, Zero, Zero })
 *	Scope (\_SB) { Device (COM1) {
 *		Name (_HID, EisaId ("PNP0501"))
 *		Name (_UID, One)
 *		Name (_CRS, ResourceTemplate () {
 *			IO (Decode16, 0x03F8, 0x03F8, 0x00, 0x08)
 *			IRQNoFlags () {4} }) } } */
static const uint8_t t_aml[] = {
	0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00,
	0x10, 0x33, '\\', '_', 'S', 'B', '_',
	0x5b, 0x82, 0x2b, 'C', 'O', 'M', '1',
	0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01,
	0x08, '_', 'U', 'I', 'D', 0x01,
	0x08, '_', 'C', 'R', 'S', 0x11, 0x10, 0x0a, 0x0d,
	0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08,
	0x22, 0x10, 0x00,
	0x79, 0x00,
};

static int t_build(struct acpi_build_cfg *cfg, struct acpi_build_layout *l)
{
	const char *why = NULL;
	int rc;

	memset(t_buf, 0xa5, sizeof(t_buf));
	rc = acpi_build(cfg, t_buf, sizeof(t_buf), l, &why);
	cr_assert(rc == 0 || why, "no reason for %d", rc);
	return rc;
}

static bool t_sum0(const uint8_t *p, uint32_t len)
{
	uint8_t s = 0;

	for (uint32_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s == 0;
}

/* SDT header (Table 5.4) and checksum of the table at offset off. */
static void t_sdt(uint32_t off, const char *sig, uint32_t len, uint8_t rev)
{
	const uint8_t *t = t_buf + off;

	cr_assert_eq(memcmp(t, sig, 4), 0, "%s", sig);
	cr_assert_eq(ld_le32(t + 4), len, "%s length", sig);
	cr_assert_eq(t[8], rev, "%s revision", sig);
	cr_assert(t_sum0(t, len), "%s checksum", sig);
	cr_assert_eq(memcmp(t + 10, "TERN  ", 6), 0);
	cr_assert_eq(memcmp(t + 16, "TERNVM  ", 8), 0);
	cr_assert_eq(ld_le32(t + 24), 1);
	cr_assert_eq(memcmp(t + 28, "TERN", 4), 0);
	cr_assert_eq(ld_le32(t + 32), 1);
}

static void t_gas_io(const uint8_t *g, uint16_t port, uint8_t bits, uint8_t access)
{
	cr_assert_eq(g[0], 1);			/* System I/O */
	cr_assert_eq(g[1], bits);
	cr_assert_eq(g[2], 0);
	cr_assert_eq(g[3], access);
	cr_assert_eq(ld_le64(g + 4), port);
}

Test(acpi_build, layout)
{
	static const int counts[] = { 1, 4, 64 };
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;

	for (int k = 0; k < 3; k++) {
		int n = counts[k];
		uint32_t madt_end = 528 + 82 + 8 * n;

		acpi_build_defaults(&cfg, n, T_BASE);
		cr_assert_eq(t_build(&cfg, &l), 0);
		cr_assert_eq(l.rsdp, 0);
		cr_assert_eq(l.facs, 64);
		cr_assert_eq(l.xsdt, 128);
		cr_assert_eq(l.rsdt, 192);
		cr_assert_eq(l.fadt, 240);
		cr_assert_eq(l.madt, 528);
		cr_assert_eq(l.dsdt, (madt_end + 15) & ~15u);
		cr_assert_eq(l.size, l.dsdt + 36 + sizeof(t_aml));
		/* Nothing written past the end. */
		for (uint32_t i = l.size; i < T_BUF; i++)
			cr_assert_eq(t_buf[i], 0xa5);
	}
	cr_assert_eq(l.size, 1238);
}

Test(acpi_build, rsdp)
{
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;
	const uint8_t *r = t_buf;

	acpi_build_defaults(&cfg, 2, T_BASE);
	cr_assert_eq(t_build(&cfg, &l), 0);
	cr_assert_eq(memcmp(r, "RSD PTR ", 8), 0);
	cr_assert(t_sum0(r, 20), "RSDP checksum (first 20 bytes)");
	cr_assert(t_sum0(r, 36), "RSDP extended checksum");
	cr_assert_eq(memcmp(r + 9, "TERN  ", 6), 0);
	cr_assert_eq(r[15], 2);
	cr_assert_eq(ld_le32(r + 16), T_BASE + l.rsdt);
	cr_assert_eq(ld_le32(r + 20), 36);
	cr_assert_eq(ld_le64(r + 24), T_BASE + l.xsdt);
	cr_assert_eq(r[33] | r[34] | r[35], 0);
}

Test(acpi_build, roots_and_facs)
{
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;
	const uint8_t *f;

	acpi_build_defaults(&cfg, 2, T_BASE);
	cr_assert_eq(t_build(&cfg, &l), 0);
	t_sdt(l.xsdt, "XSDT", 52, 1);
	cr_assert_eq(ld_le64(t_buf + l.xsdt + 36), T_BASE + l.fadt);
	cr_assert_eq(ld_le64(t_buf + l.xsdt + 44), T_BASE + l.madt);
	t_sdt(l.rsdt, "RSDT", 44, 1);
	cr_assert_eq(ld_le32(t_buf + l.rsdt + 36), T_BASE + l.fadt);
	cr_assert_eq(ld_le32(t_buf + l.rsdt + 40), T_BASE + l.madt);
	/* FACS, Table 5.14: 64 bytes, 64-byte aligned, no checksum. */
	f = t_buf + l.facs;
	cr_assert_eq((T_BASE + l.facs) % 64, 0);
	cr_assert_eq(memcmp(f, "FACS", 4), 0);
	cr_assert_eq(ld_le32(f + 4), 64);
	cr_assert_eq(f[32], 2);
	for (int i = 8; i < 64; i++)
		if (i != 32)
			cr_assert_eq(f[i], 0, "FACS byte %d", i);
}

Test(acpi_build, fadt_defaults)
{
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;
	const uint8_t *t;
	uint32_t flags;

	acpi_build_defaults(&cfg, 2, T_BASE);
	cr_assert_eq(t_build(&cfg, &l), 0);
	t = t_buf + l.fadt;
	t_sdt(l.fadt, "FACP", 276, 6);
	cr_assert_eq(t[131], 5);			/* FADT Minor Version */
	cr_assert_eq(ld_le32(t + 36), T_BASE + l.facs);	/* FIRMWARE_CTRL */
	cr_assert_eq(ld_le32(t + 40), T_BASE + l.dsdt);	/* DSDT */
	cr_assert_eq(ld_le64(t + 132), 0);		/* X_FIRMWARE_CTRL */
	cr_assert_eq(ld_le64(t + 140), T_BASE + l.dsdt);	/* X_DSDT */
	cr_assert_eq(ld_le16(t + 46), 9);		/* SCI_INT */
	cr_assert_eq(ld_le32(t + 48), 0);		/* SMI_CMD */
	cr_assert_eq(t[52] | t[53], 0);			/* ACPI_ENABLE/DISABLE */
	cr_assert_eq(ld_le32(t + 56), 0x600);		/* PM1a_EVT_BLK */
	cr_assert_eq(ld_le32(t + 60), 0);		/* PM1b_EVT_BLK */
	cr_assert_eq(ld_le32(t + 64), 0x604);		/* PM1a_CNT_BLK */
	cr_assert_eq(ld_le32(t + 76), 0);		/* PM_TMR_BLK */
	cr_assert_eq(ld_le32(t + 80), 0);		/* GPE0_BLK */
	cr_assert_eq(t[88], 4);				/* PM1_EVT_LEN */
	cr_assert_eq(t[89], 2);				/* PM1_CNT_LEN */
	cr_assert_eq(t[91], 0);				/* PM_TMR_LEN */
	cr_assert_eq(t[92], 0);				/* GPE0_BLK_LEN */
	cr_assert_eq(ld_le16(t + 96), 101);		/* no C2 */
	cr_assert_eq(ld_le16(t + 98), 1001);		/* no C3 */
	cr_assert_eq(ld_le16(t + 109), 0x0005);		/* legacy devices, no VGA */
	flags = ld_le32(t + 112);
	cr_assert_eq(flags, 1u << 0 | 1u << 2 | 1u << 4 | 1u << 5 | 1u << 10 | 1u << 19);
	cr_assert_eq(flags & (1u << 20), 0, "not hardware-reduced");
	t_gas_io(t + 116, 0xcf9, 8, 1);			/* RESET_REG */
	cr_assert_eq(t[128], 0x06);			/* RESET_VALUE */
	t_gas_io(t + 148, 0x600, 32, 2);		/* X_PM1a_EVT_BLK */
	t_gas_io(t + 172, 0x604, 16, 2);		/* X_PM1a_CNT_BLK */
	for (int off = 208; off < 276; off++)		/* X_PM_TMR .. end */
		cr_assert_eq(t[off], 0, "FADT byte %d", off);
}

Test(acpi_build, fadt_options)
{
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;
	const uint8_t *t;

	acpi_build_defaults(&cfg, 2, T_BASE);
	cfg.pm1a_evt = 0xb000;
	cfg.pm1a_cnt = 0xb004;
	cfg.pm_tmr = 0xb008;
	cfg.pm_tmr_32bit = 1;
	cfg.gpe0 = 0xafe0;
	cfg.gpe0_len = 4;
	cfg.reset_port = 0x64;
	cfg.reset_value = 0xfe;
	cfg.boot_arch = ACPI_BOOT_LEGACY_DEVICES | ACPI_BOOT_8042;
	cr_assert_eq(t_build(&cfg, &l), 0);
	t = t_buf + l.fadt;
	t_sdt(l.fadt, "FACP", 276, 6);
	cr_assert_eq(ld_le32(t + 56), 0xb000);
	cr_assert_eq(ld_le32(t + 64), 0xb004);
	cr_assert_eq(ld_le32(t + 76), 0xb008);
	cr_assert_eq(t[91], 4);
	cr_assert_eq(ld_le32(t + 80), 0xafe0);
	cr_assert_eq(t[92], 4);
	cr_assert_eq(ld_le16(t + 109), 0x0003);
	cr_assert_neq(ld_le32(t + 112) & (1u << 8), 0, "TMR_VAL_EXT");
	t_gas_io(t + 116, 0x64, 8, 1);
	cr_assert_eq(t[128], 0xfe);
	t_gas_io(t + 208, 0xb008, 32, 3);		/* X_PM_TMR_BLK */
	t_gas_io(t + 220, 0xafe0, 32, 1);		/* X_GPE0_BLK */
	cfg.pm_tmr_32bit = 0;
	cr_assert_eq(t_build(&cfg, &l), 0);
	cr_assert_eq(ld_le32(t + 112) & (1u << 8), 0);
}

Test(acpi_build, madt_bytes)
{
	static const uint8_t tail[] = {
		0x01, 0x0c, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xfe, 0x00, 0x00, 0x00, 0x00,
		0x02, 0x0a, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x02, 0x0a, 0x00, 0x09, 0x09, 0x00, 0x00, 0x00, 0x0d, 0x00,
		0x04, 0x06, 0xff, 0x00, 0x00, 0x01,
	};
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;
	const uint8_t *t;
	int n = 5;

	acpi_build_defaults(&cfg, n, T_BASE);
	cr_assert_eq(t_build(&cfg, &l), 0);
	t = t_buf + l.madt;
	t_sdt(l.madt, "APIC", 44 + 8 * n + sizeof(tail), 5);
	cr_assert_eq(ld_le32(t + 36), 0xfee00000);
	cr_assert_eq(ld_le32(t + 40), 1);		/* PCAT_COMPAT */
	for (int i = 0; i < n; i++) {
		const uint8_t want[] = { 0, 8, (uint8_t)i, (uint8_t)i, 1, 0, 0, 0 };

		cr_assert_eq(memcmp(t + 44 + 8 * i, want, 8), 0, "LAPIC entry %d", i);
	}
	cr_assert_eq(memcmp(t + 44 + 8 * n, tail, sizeof(tail)), 0);
}

Test(acpi_build, dsdt_aml_bytes)
{
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;

	acpi_build_defaults(&cfg, 1, T_BASE);
	cr_assert_eq(t_build(&cfg, &l), 0);
	t_sdt(l.dsdt, "DSDT", 36 + sizeof(t_aml), 2);
	cr_assert_eq(memcmp(t_buf + l.dsdt + 36, t_aml, sizeof(t_aml)), 0);
	cr_assert_eq(l.size, l.dsdt + 36 + sizeof(t_aml));
}

Test(acpi_build, dsdt_s5_small_values)
{
	static const uint8_t s5_0[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04,
					0x00, 0x00, 0x00, 0x00 };
	static const uint8_t s5_1[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04,
					0x01, 0x01, 0x00, 0x00 };
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;

	acpi_build_defaults(&cfg, 1, T_BASE);
	cfg.s5_slp_typ = 0;
	cr_assert_eq(t_build(&cfg, &l), 0);
	cr_assert_eq(memcmp(t_buf + l.dsdt + 36, s5_0, sizeof(s5_0)), 0);
	cr_assert_eq(memcmp(t_buf + l.dsdt + 36 + sizeof(s5_0), t_aml + 14, sizeof(t_aml) - 14), 0);
	t_sdt(l.dsdt, "DSDT", 36 + sizeof(t_aml) - 2, 2);
	cfg.s5_slp_typ = 1;
	cr_assert_eq(t_build(&cfg, &l), 0);
	cr_assert_eq(memcmp(t_buf + l.dsdt + 36, s5_1, sizeof(s5_1)), 0);
	cfg.s5_slp_typ = 7;
	cr_assert_eq(t_build(&cfg, &l), 0);
	cr_assert_eq(t_buf[l.dsdt + 36 + 9], 7);
}

static void t_refused(struct acpi_build_cfg *cfg, size_t size, int err, const char *part)
{
	struct acpi_build_layout l = { 0 };
	const char *why = NULL;
	int rc;

	memset(t_buf, 0xa5, sizeof(t_buf));
	rc = acpi_build(cfg, t_buf, size, &l, &why);
	cr_assert_eq(rc, err, "rc %d want %d (%s)", rc, err, why ? why : "-");
	cr_assert(why && strstr(why, part), "why \"%s\" want \"%s\"", why ? why : "-", part);
	cr_assert_eq(l.size, 0);
	for (size_t i = 0; i < sizeof(t_buf); i++)
		cr_assert_eq(t_buf[i], 0xa5, "byte %zu written on refusal", i);
}

Test(acpi_build, refusals)
{
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;

	acpi_build_defaults(&cfg, 0, T_BASE);
	t_refused(&cfg, T_BUF, -EINVAL, "vCPU count");
	cfg.ncpus = 65;
	t_refused(&cfg, T_BUF, -EINVAL, "vCPU count");
	cfg.ncpus = -1;
	t_refused(&cfg, T_BUF, -EINVAL, "vCPU count");
	acpi_build_defaults(&cfg, 64, T_BASE + 16);
	t_refused(&cfg, T_BUF, -EINVAL, "64-byte aligned");
	acpi_build_defaults(&cfg, 64, 0xfffffc00);
	t_refused(&cfg, T_BUF, -EINVAL, "4 GiB");
	cfg.base = 1ull << 32;
	t_refused(&cfg, T_BUF, -EINVAL, "4 GiB");
	cfg.base = UINT64_MAX & ~63ull;
	t_refused(&cfg, T_BUF, -EINVAL, "4 GiB");
	acpi_build_defaults(&cfg, 64, T_BASE);
	t_refused(&cfg, 1237, -ENOSPC, "too small");
	t_refused(&cfg, 0, -ENOSPC, "too small");
	cr_assert_eq(acpi_build(&cfg, NULL, 4096, &l, NULL), -ENOSPC);
	cr_assert_eq(acpi_build(&cfg, t_buf, 1238, &l, NULL), 0);
	cfg.s5_slp_typ = 8;
	t_refused(&cfg, T_BUF, -EINVAL, "SLP_TYP");
}

Test(acpi_build, port_refusals)
{
	struct acpi_build_cfg cfg;

	acpi_build_defaults(&cfg, 1, T_BASE);
	cfg.pm1a_evt = 0;
	t_refused(&cfg, T_BUF, -EINVAL, "required");
	acpi_build_defaults(&cfg, 1, T_BASE);
	cfg.reset_port = 0;
	t_refused(&cfg, T_BUF, -EINVAL, "required");
	acpi_build_defaults(&cfg, 1, T_BASE);
	cfg.pm1a_cnt = 0x603;				/* inside the event block */
	t_refused(&cfg, T_BUF, -EINVAL, "overlap");
	acpi_build_defaults(&cfg, 1, T_BASE);
	cfg.pm_tmr = 0x602;
	t_refused(&cfg, T_BUF, -EINVAL, "overlap");
	acpi_build_defaults(&cfg, 1, T_BASE);
	cfg.reset_port = 0x605;
	t_refused(&cfg, T_BUF, -EINVAL, "overlap");
	acpi_build_defaults(&cfg, 1, T_BASE);
	cfg.gpe0 = 0x5fe;
	cfg.gpe0_len = 4;
	t_refused(&cfg, T_BUF, -EINVAL, "overlap");
	cfg.gpe0 = 0xafe0;
	cfg.gpe0_len = 3;
	t_refused(&cfg, T_BUF, -EINVAL, "even");
	cfg.gpe0_len = 0;
	t_refused(&cfg, T_BUF, -EINVAL, "even");
	acpi_build_defaults(&cfg, 1, T_BASE);
	cfg.pm1a_evt = 0xfffe;
	t_refused(&cfg, T_BUF, -EINVAL, "0xffff");
	/* Adjacent blocks are fine. */
	acpi_build_defaults(&cfg, 1, T_BASE);
	cfg.pm1a_cnt = 0x604;
	cfg.pm_tmr = 0x608;
	cfg.gpe0 = 0x60c;
	cfg.gpe0_len = 2;
	cfg.reset_port = 0x60e;
	cr_assert_eq(acpi_build(&cfg, t_buf, T_BUF, &(struct acpi_build_layout){ 0 }, NULL), 0);
}

/* ---- parse back with the host parser ---- */

struct t_mem {
	uint64_t base;
	uint32_t size;
};

/* t_buf seen at base; nothing outside the tables can be mapped. */
static const void *t_map(void *ctx, uint64_t phys, size_t len)
{
	const struct t_mem *m = ctx;

	if (phys < m->base || phys - m->base > m->size || len > m->size - (phys - m->base))
		return NULL;
	return t_buf + (phys - m->base);
}

static void t_parse(int n, uint8_t slp, struct acpi_info *o)
{
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;
	const char *why = NULL;

	acpi_build_defaults(&cfg, n, T_BASE);
	cfg.s5_slp_typ = slp;
	cr_assert_eq(t_build(&cfg, &l), 0);
	cr_assert_eq(acpi_parse(T_BASE + l.rsdp, t_map, &(struct t_mem){ T_BASE, l.size }, o, &why),
		     0, "%s", why);
	cr_assert_eq(o->sdt_phys, T_BASE + l.xsdt);
	cr_assert_eq(o->dsdt_phys, T_BASE + l.dsdt);
}

static void t_check_info(const struct acpi_info *o, int n, uint8_t slp)
{
	cr_assert_eq(o->bad_tables, 0);
	cr_assert(o->has_madt && o->has_fadt && !o->has_hpet && !o->has_mcfg);
	cr_assert_eq(o->madt_errors, 0);
	cr_assert_eq(o->dropped, 0);
	cr_assert_eq(o->lapic_phys, 0xfee00000);
	cr_assert(o->pcat_compat);
	cr_assert_eq(o->ncpus, n);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(o->cpu[i].apic_id, (uint32_t)i);
		cr_assert_eq(o->cpu[i].acpi_uid, (uint32_t)i);
		cr_assert(o->cpu[i].enabled && !o->cpu[i].x2apic);
	}
	cr_assert_eq(o->nioapic, 1);
	cr_assert_eq(o->ioapic[0].phys, 0xfec00000);
	cr_assert_eq(o->ioapic[0].gsi_base, 0);
	cr_assert_eq(o->niso, 2);
	cr_assert(o->iso[0].source == 0 && o->iso[0].gsi == 2 && o->iso[0].flags == 0);
	cr_assert(o->iso[1].source == 9 && o->iso[1].gsi == 9 && o->iso[1].flags == 0xd);
	cr_assert_eq(o->fadt_revision, 6);
	cr_assert_eq(o->fadt_len, 276);
	cr_assert(!o->hw_reduced);
	cr_assert_eq(o->sci_irq, 9);
	cr_assert_eq(o->pm1a_cnt, 0x604);
	cr_assert_eq(o->smi_cmd, 0);
	cr_assert_eq(o->pm_tmr_port, 0);
	cr_assert(o->reset_supported);
	cr_assert_eq(o->reset_reg.space, ACPI_GAS_IO);
	cr_assert_eq(o->reset_reg.address, 0xcf9);
	cr_assert_eq(o->reset_value, 0x06);
	cr_assert(o->has_s5);
	cr_assert_eq(o->s5_slp_typa, slp);
	cr_assert_eq(o->s5_slp_typb, slp);
}

Test(acpi_build, parse_back)
{
	static struct acpi_info o;

	for (int n = 1; n <= ACPI_BUILD_MAX_CPUS; n++) {
		uint8_t slp = (uint8_t)(n % 8);

		t_parse(n, slp, &o);
		cr_assert(o.xsdt);
		cr_assert_eq(o.revision, 2);
		t_check_info(&o, n, slp);
	}
}

/* An ACPI 1.0 reader takes the RSDT: the same tables. */
Test(acpi_build, parse_back_through_rsdt)
{
	static struct acpi_info o;
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;
	const char *why = NULL;

	acpi_build_defaults(&cfg, 3, T_BASE);
	cr_assert_eq(t_build(&cfg, &l), 0);
	/* RSDP revision 0: 15 goes 2 -> 0, so the checksum goes up by 2. */
	t_buf[15] = 0;
	t_buf[8] = (uint8_t)(t_buf[8] + 2);
	cr_assert(t_sum0(t_buf, 20));
	cr_assert_eq(acpi_parse(T_BASE, t_map, &(struct t_mem){ T_BASE, l.size }, &o, &why), 0,
		     "%s", why);
	cr_assert(!o.xsdt);
	cr_assert_eq(o.sdt_phys, T_BASE + l.rsdt);
	t_check_info(&o, 3, 5);
}

/* ---- random configurations ---- */

static uint64_t t_rng = 0x243f6a8885a308d3ull;

static uint64_t t_rand(void)
{
	t_rng ^= t_rng << 13;
	t_rng ^= t_rng >> 7;
	t_rng ^= t_rng << 17;
	return t_rng;
}

static uint16_t t_port(void)
{
	static const uint16_t ports[] = { 0, 0x600, 0x604, 0x608, 0x60c, 0xcf9, 0xb000, 0xfffc,
					  0xffff };

	return t_rand() % 2 ? ports[t_rand() % 9] : (uint16_t)t_rand();
}

static void t_random_cfg(struct acpi_build_cfg *c)
{
	static const uint64_t bases[] = { 0xe0000, 0xf0000, 0xfffc0, 0x7fe0000, 0xfffff000,
					  0xfffffa00, 1ull << 32 };

	acpi_build_defaults(c, (int)(t_rand() % 70) - 2, bases[t_rand() % 7]);
	if (t_rand() % 8 == 0)
		c->base += t_rand() % 64;
	if (t_rand() % 2) {
		c->pm1a_evt = t_port();
		c->pm1a_cnt = t_port();
		c->pm_tmr = t_port();
		c->gpe0 = t_port();
		c->gpe0_len = (uint8_t)(t_rand() % 3 ? 2 * (t_rand() % 8) : t_rand());
		c->reset_port = t_port();
	}
	c->pm_tmr_32bit = (uint8_t)(t_rand() & 1);
	c->reset_value = (uint8_t)t_rand();
	c->s5_slp_typ = (uint8_t)(t_rand() % 10);
	c->boot_arch = (uint16_t)t_rand();
}

/* Accepted: every table checksums and parses back.  Refused: untouched. */
Test(acpi_build, random_configs)
{
	static struct acpi_info o;
	int ok = 0, bad = 0;

	for (int iter = 0; iter < 4000; iter++) {
		struct acpi_build_cfg c;
		struct acpi_build_layout l = { 0 };
		size_t size = t_rand() % 4 ? T_BUF : t_rand() % 1400;
		const char *why = NULL;
		int rc;

		t_random_cfg(&c);
		memset(t_buf, 0xa5, sizeof(t_buf));
		rc = acpi_build(&c, t_buf, size, &l, &why);
		if (rc) {
			cr_assert(rc == -EINVAL || rc == -ENOSPC, "rc %d", rc);
			cr_assert(why && *why);
			cr_assert(t_buf[0] == 0xa5 && t_buf[size ? size - 1 : 0] == 0xa5);
			bad++;
			continue;
		}
		ok++;
		cr_assert(l.size <= size && c.base + l.size <= (1ull << 32));
		cr_assert(size == T_BUF ? t_buf[l.size] == 0xa5 : true);
		cr_assert(t_sum0(t_buf, 20) && t_sum0(t_buf, 36));
		cr_assert_eq(acpi_parse(c.base, t_map, &(struct t_mem){ c.base, l.size }, &o, &why),
			     0, "%s", why);
		cr_assert_eq(o.bad_tables, 0);
		cr_assert_eq(o.ncpus, c.ncpus);
		cr_assert_eq(o.nioapic, 1);
		cr_assert(o.has_s5 && o.s5_slp_typa == c.s5_slp_typ);
		cr_assert_eq(o.pm1a_cnt, c.pm1a_cnt);
		cr_assert_eq(o.pm_tmr_port, c.pm_tmr);
		cr_assert_eq(o.pm_tmr_32bit, c.pm_tmr && c.pm_tmr_32bit);
		cr_assert(o.reset_supported && o.reset_reg.address == c.reset_port &&
			  o.reset_value == c.reset_value);
		cr_assert_eq(o.boot_arch_flags, c.boot_arch);
	}
	cr_assert(ok > 500 && bad > 500, "accepted %d refused %d", ok, bad);
}

/* ---- the PCI host bridge ---- */

/* What iasl 20200925 compiles for (DefinitionBlock body):
 *	Scope (\_SB) { Device (PCI0) {
 *		Name (_HID, EisaId ("PNP0A08"))  Name (_CID, EisaId ("PNP0A03"))
 *		Name (_UID, Zero)  Name (_SEG, Zero)  Name (_BBN, Zero)
 *		Name (_CRS, ResourceTemplate () {
 *			WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
 *				0, 0, 0, 0, 1)
 *			IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
 *			WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode,
 *				EntireRange, 0, 0x0000, 0x0CF7, 0, 0x0CF8)
 *			WordIO (..., 0, 0x0D00, 0xFFFF, 0, 0xF300)
 *			DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed,
 *				NonCacheable, ReadWrite, 0, 0xE0100000, 0xFEAFFFFF, 0,
 *				0x1EA00000) }) } }
 * except that iasl's optimiser drops the root prefix of \_SB at the root
 * (PkgLength 0x942, "_SB_"); Tern keeps "\_SB_", as in the COM1 scope,
 * one byte longer (ACPI 6.5 20.2.2: both name the same scope). */
static const uint8_t t_pci_aml[] = {
	0x10, 0x43, 0x09, '\\', 0x5f, 0x53, 0x42, 0x5f, 0x5b, 0x82, 0x4a, 0x08, 0x50, 0x43, 0x49,
	0x30, 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0c, 0x41, 0xd0, 0x0a, 0x08, 0x08, 0x5f, 0x43,
	0x49, 0x44, 0x0c, 0x41, 0xd0, 0x0a, 0x03, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x00, 0x08,
	0x5f, 0x53, 0x45, 0x47, 0x00, 0x08, 0x5f, 0x42, 0x42, 0x4e, 0x00, 0x08, 0x5f, 0x43,
	0x52, 0x53, 0x11, 0x48, 0x05, 0x0a, 0x54, 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x47, 0x01, 0xf8, 0x0c, 0xf8,
	0x0c, 0x01, 0x08, 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0xf7,
	0x0c, 0x00, 0x00, 0xf8, 0x0c, 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00,
	0x0d, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf3, 0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0xe0, 0xff, 0xff, 0xaf, 0xfe, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xa0, 0x1e, 0x79, 0x00,
};

static void t_pci_cfg(struct acpi_build_cfg *cfg, int n)
{
	acpi_build_defaults(cfg, n, T_BASE);
	cfg->pci_ecam = 0xe0000000;
	cfg->pci_mmio_base = 0xe0100000;
	cfg->pci_mmio_size = 0x1ea00000;
}

Test(acpi_build, pci_dsdt_matches_iasl)
{
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;

	t_pci_cfg(&cfg, 2);
	cr_assert_eq(t_build(&cfg, &l), 0);
	t_sdt(l.dsdt, "DSDT", 36 + sizeof(t_aml) + sizeof(t_pci_aml), 2);
	cr_assert_eq(memcmp(t_buf + l.dsdt + 36, t_aml, sizeof(t_aml)), 0);
	cr_assert_eq(memcmp(t_buf + l.dsdt + 36 + sizeof(t_aml), t_pci_aml, sizeof(t_pci_aml)),
		     0, "PCI0 AML differs from iasl's");
	t_sdt(l.mcfg, "MCFG", 60, 1);
	cr_assert_eq(ld_le64(t_buf + l.mcfg + 44), 0xe0000000);
	cr_assert_eq(t_buf[l.mcfg + 55], 0, "end bus");
	/* The roots list three tables now. */
	t_sdt(l.xsdt, "XSDT", 36 + 3 * 8, 1);
	t_sdt(l.rsdt, "RSDT", 36 + 3 * 4, 1);
	cr_assert_eq(ld_le64(t_buf + l.xsdt + 36 + 16), T_BASE + l.mcfg);
	cr_assert_eq(ld_le32(t_buf + l.rsdt + 36 + 8), T_BASE + l.mcfg);
}

Test(acpi_build, pci_parse_back)
{
	static struct acpi_info o;
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;
	const char *why = NULL;

	t_pci_cfg(&cfg, 4);
	cr_assert_eq(t_build(&cfg, &l), 0);
	cr_assert_eq(acpi_parse(T_BASE + l.rsdp, t_map, &(struct t_mem){ T_BASE, l.size }, &o, &why),
		     0, "%s", why);
	cr_assert_eq(o.bad_tables, 0);
	cr_assert(o.has_mcfg && o.has_madt && o.has_fadt);
	cr_assert_eq(o.nmcfg, 1);
	cr_assert_eq(o.mcfg[0].base, 0xe0000000);
	cr_assert_eq(o.mcfg[0].segment, 0);
	cr_assert_eq(o.mcfg[0].bus_start, 0);
	cr_assert_eq(o.mcfg[0].bus_end, 0);
	cr_assert_eq(o.ncpus, 4);
}

Test(acpi_build, pci_refusals)
{
	struct acpi_build_cfg cfg;
	struct acpi_build_layout l;

	t_pci_cfg(&cfg, 1);
	cfg.pci_ecam = 0xe0080000;		/* not 1 MiB aligned */
	cr_assert_eq(t_build(&cfg, &l), -EINVAL);
	t_pci_cfg(&cfg, 1);
	cfg.pci_mmio_size = 0;
	cr_assert_eq(t_build(&cfg, &l), -EINVAL);
	t_pci_cfg(&cfg, 1);
	cfg.pci_mmio_base = 0xfff00000;		/* runs past 4 GiB */
	cr_assert_eq(t_build(&cfg, &l), -EINVAL);
}
