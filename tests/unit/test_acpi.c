/*
 * Unit tests and a mutation fuzz test for kernel/lib/acpi_tables.c.
 *
 * Tables are built in a fake physical memory.  The mapper copies each
 * request to the very end of a heap block of its own, so ASan flags any
 * read past what the parser asked to map.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/acpi_tables.h"

#define AT_BASE		0x10000ull
#define AT_SIZE		0x20000ull
#define AT_RSDP		0x10000ull
#define AT_XSDT		0x11000ull
#define AT_RSDT		0x11800ull
#define AT_FADT		0x12000ull
#define AT_MADT		0x13000ull
#define AT_HPET		0x16000ull
#define AT_MCFG		0x17000ull
#define AT_SSDT		0x18000ull
#define AT_DSDT		0x19000ull
#define AT_DSDT2	0x1a000ull
#define AT_MAXMAPS	4096

struct at_mem {
	uint8_t mem[AT_SIZE];
	int nmaps;
	uint64_t ntables;	/* root entries written */
	uint64_t tables[16];
};

/*
 * Mapping slot i always uses block i, allocated once: a malloc per mapping
 * would churn through ASan's quarantine and dominate the fuzz run time.
 */
static uint8_t *at_blocks[AT_MAXMAPS];

static const void *at_map(void *ctx, uint64_t phys, size_t len)
{
	struct at_mem *m = ctx;
	uint8_t *copy;

	if (phys < AT_BASE || phys - AT_BASE > AT_SIZE || len > AT_SIZE - (phys - AT_BASE))
		return NULL;
	if (m->nmaps == AT_MAXMAPS)
		cr_assert_fail("mapper called too often");
	if (!at_blocks[m->nmaps])
		at_blocks[m->nmaps] = malloc(AT_SIZE);
	if (!at_blocks[m->nmaps])
		cr_assert_fail("out of memory");
	copy = at_blocks[m->nmaps++] + AT_SIZE - len;
	memcpy(copy, m->mem + (phys - AT_BASE), len);
	return copy;
}

/* Every pointer handed out may be reused from here on. */
static void at_unmap_all(struct at_mem *m)
{
	m->nmaps = 0;
}

static int at_parse(struct at_mem *m, struct acpi_info *o, const char **why)
{
	int rc;

	*why = NULL;
	rc = acpi_parse(AT_RSDP, at_map, m, o, why);
	at_unmap_all(m);
	return rc;
}

static uint8_t *at_p(struct at_mem *m, uint64_t phys)
{
	if (phys < AT_BASE || phys >= AT_BASE + AT_SIZE)
		cr_assert_fail("bad test address %#lx", (unsigned long)phys);
	return m->mem + (phys - AT_BASE);
}

static void at_w(struct at_mem *m, uint64_t phys, uint64_t v, int n)
{
	uint8_t *p = at_p(m, phys);

	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t at_r32(struct at_mem *m, uint64_t phys)
{
	const uint8_t *p = at_p(m, phys);

	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void at_fix(uint8_t *p, size_t len, size_t csum_off)
{
	uint8_t sum = 0;

	p[csum_off] = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	p[csum_off] = (uint8_t)-sum;
}

/* Re-checksum the SDT at phys using its (bounded) length field. */
static void at_csum(struct at_mem *m, uint64_t phys)
{
	uint64_t len = at_r32(m, phys + 4);

	if (len > AT_BASE + AT_SIZE - phys)
		len = AT_BASE + AT_SIZE - phys;
	if (len >= 10)
		at_fix(at_p(m, phys), (size_t)len, 9);
}

static void at_hdr(struct at_mem *m, uint64_t phys, const char *sig, uint32_t len, uint8_t rev)
{
	memset(at_p(m, phys), 0, len);
	memcpy(at_p(m, phys), sig, 4);
	at_w(m, phys + 4, len, 4);
	at_w(m, phys + 8, rev, 1);
	memcpy(at_p(m, phys + 10), "TERNOE", 6);
	memcpy(at_p(m, phys + 16), "TESTTBL ", 8);
}

static void at_rsdp(struct at_mem *m, uint8_t rev, uint64_t xsdt)
{
	uint8_t *r = at_p(m, AT_RSDP);

	memset(r, 0, 36);
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, "TERNOE", 6);
	r[15] = rev;
	at_w(m, AT_RSDP + 16, AT_RSDT, 4);
	at_fix(r, 20, 8);
	if (rev >= 2) {
		at_w(m, AT_RSDP + 20, 36, 4);
		at_w(m, AT_RSDP + 24, xsdt, 8);
		at_fix(r, 36, 32);
	}
}

/* XSDT and RSDT listing the same tables. */
static void at_roots(struct at_mem *m)
{
	uint32_t n = (uint32_t)m->ntables;

	at_hdr(m, AT_XSDT, "XSDT", 36 + 8 * n, 1);
	at_hdr(m, AT_RSDT, "RSDT", 36 + 4 * n, 1);
	for (uint32_t i = 0; i < n; i++) {
		at_w(m, AT_XSDT + 36 + 8 * i, m->tables[i], 8);
		at_w(m, AT_RSDT + 36 + 4 * i, m->tables[i], 4);
	}
	at_csum(m, AT_XSDT);
	at_csum(m, AT_RSDT);
}

static void at_gas(struct at_mem *m, uint64_t phys, uint8_t space, uint8_t width, uint64_t addr)
{
	at_w(m, phys, space, 1);
	at_w(m, phys + 1, width, 1);
	at_w(m, phys + 2, 0, 1);
	at_w(m, phys + 3, 1, 1);
	at_w(m, phys + 4, addr, 8);
}

/* ACPI 6 FADT, 276 bytes: X_ fields agree with the legacy ones. */
static void at_fadt6(struct at_mem *m)
{
	uint64_t f = AT_FADT;

	at_hdr(m, f, "FACP", 276, 6);
	at_w(m, f + 40, AT_DSDT2, 4);	/* legacy DSDT: must lose to X_DSDT */
	at_w(m, f + 46, 9, 2);
	at_w(m, f + 48, 0xb2, 4);
	at_w(m, f + 52, 0xf1, 1);
	at_w(m, f + 64, 0x604, 4);
	at_w(m, f + 68, 0, 4);
	at_w(m, f + 76, 0x608, 4);
	at_w(m, f + 91, 4, 1);
	at_w(m, f + 109, 0x0003, 2);
	at_w(m, f + 112, (1u << 8) | (1u << 10) | (1u << 4), 4);
	at_gas(m, f + 116, 1, 8, 0xcf9);
	at_w(m, f + 128, 0x06, 1);
	at_w(m, f + 140, AT_DSDT, 8);
	at_gas(m, f + 172, 1, 16, 0x604);
	at_gas(m, f + 208, 1, 32, 0x608);
	at_csum(m, f);
}

/* ACPI 1.0 FADT, 116 bytes: legacy fields only. */
static void at_fadt1(struct at_mem *m)
{
	uint64_t f = AT_FADT;

	at_hdr(m, f, "FACP", 116, 1);
	at_w(m, f + 40, AT_DSDT, 4);
	at_w(m, f + 46, 9, 2);
	at_w(m, f + 48, 0xb2, 4);
	at_w(m, f + 52, 0xe1, 1);
	at_w(m, f + 64, 0x404, 4);
	at_w(m, f + 68, 0x484, 4);
	at_w(m, f + 76, 0x408, 4);
	at_w(m, f + 91, 4, 1);
	at_w(m, f + 112, 1u << 10, 4);	/* RESET_REG_SUP, but no room for it */
	at_csum(m, f);
}

struct at_madt {
	struct at_mem *m;
	uint64_t at;
};

static void at_madt_begin(struct at_madt *b, struct at_mem *m)
{
	b->m = m;
	b->at = AT_MADT + 44;
	at_hdr(m, AT_MADT, "APIC", 44, 5);
	at_w(m, AT_MADT + 36, 0xfee00000, 4);
	at_w(m, AT_MADT + 40, 1, 4);
}

static void at_madt_raw(struct at_madt *b, const uint8_t *e, uint8_t len)
{
	memcpy(at_p(b->m, b->at), e, len);
	b->at += len;
}

static void at_madt_lapic(struct at_madt *b, uint8_t uid, uint8_t id, uint32_t flags)
{
	uint8_t e[8] = { 0, 8, uid, id, (uint8_t)flags, (uint8_t)(flags >> 8), 0, 0 };

	at_madt_raw(b, e, 8);
}

static void at_madt_x2apic(struct at_madt *b, uint32_t id, uint32_t uid, uint32_t flags)
{
	uint8_t e[16] = { 9, 16 };

	memcpy(e + 4, &id, 4);
	memcpy(e + 8, &flags, 4);
	memcpy(e + 12, &uid, 4);
	at_madt_raw(b, e, 16);
}

static void at_madt_ioapic(struct at_madt *b, uint8_t id, uint32_t addr, uint32_t gsi)
{
	uint8_t e[12] = { 1, 12, id, 0 };

	memcpy(e + 4, &addr, 4);
	memcpy(e + 8, &gsi, 4);
	at_madt_raw(b, e, 12);
}

static void at_madt_iso(struct at_madt *b, uint8_t src, uint32_t gsi, uint16_t flags)
{
	uint8_t e[10] = { 2, 10, 0, src };

	memcpy(e + 4, &gsi, 4);
	memcpy(e + 8, &flags, 2);
	at_madt_raw(b, e, 10);
}

static void at_madt_end(struct at_madt *b)
{
	at_w(b->m, AT_MADT + 4, b->at - AT_MADT, 4);
	at_csum(b->m, AT_MADT);
}

static void at_madt_std(struct at_mem *m)
{
	static const uint8_t nmi[6] = { 4, 6, 0xff, 5, 0, 1 };
	uint8_t ovr[12] = { 5, 12, 0, 0 };
	uint64_t lapic = 0x1fee00000ull;
	struct at_madt b;

	at_madt_begin(&b, m);
	at_madt_lapic(&b, 0, 0, 1);
	at_madt_lapic(&b, 1, 1, 1);
	at_madt_lapic(&b, 2, 2, 0);		/* disabled: skipped */
	at_madt_lapic(&b, 3, 3, 2);		/* online capable: kept */
	at_madt_x2apic(&b, 0x100, 4, 1);
	at_madt_lapic(&b, 5, 1, 1);		/* duplicate APIC ID 1 */
	at_madt_ioapic(&b, 2, 0xfec00000, 0);
	at_madt_iso(&b, 0, 2, 0);
	at_madt_iso(&b, 9, 9, 0xd);
	at_madt_raw(&b, nmi, 6);
	memcpy(ovr + 4, &lapic, 8);
	at_madt_raw(&b, ovr, 12);
	at_madt_end(&b);
}

static void at_hpet(struct at_mem *m)
{
	at_hdr(m, AT_HPET, "HPET", 56, 1);
	at_w(m, AT_HPET + 36, 0x8086a201, 4);
	at_gas(m, AT_HPET + 40, 0, 64, 0xfed00000);
	at_w(m, AT_HPET + 52, 0, 1);
	at_w(m, AT_HPET + 53, 0x80, 2);
	at_csum(m, AT_HPET);
}

static void at_mcfg_entry(struct at_mem *m, int i, uint64_t base, uint16_t seg,
			  uint8_t start, uint8_t end)
{
	uint64_t e = AT_MCFG + 44 + 16 * (uint64_t)i;

	at_w(m, e, base, 8);
	at_w(m, e + 8, seg, 2);
	at_w(m, e + 10, start, 1);
	at_w(m, e + 11, end, 1);
	at_w(m, AT_MCFG + 4, 44 + 16 * (uint64_t)(i + 1), 4);
	at_csum(m, AT_MCFG);
}

static void at_mcfg(struct at_mem *m)
{
	at_hdr(m, AT_MCFG, "MCFG", 44, 1);
	at_mcfg_entry(m, 0, 0xb0000000, 0, 0, 255);
	at_mcfg_entry(m, 1, 0xc0000000, 1, 0, 0x3f);
}

/* A DSDT holding body[0, n). */
static void at_dsdt(struct at_mem *m, uint64_t phys, const void *body, size_t n)
{
	at_hdr(m, phys, "DSDT", (uint32_t)(36 + n), 2);
	memcpy(at_p(m, phys + 36), body, n);
	at_csum(m, phys);
}

/*
 * Name(_S5_, Package(count){ elems }) with a PkgLength of pkgbytes bytes,
 * after two decoys: the string "_S5_" with no NameOp, and a Method named
 * _S5_ whose PkgLength byte happens to be 0x08 like a NameOp.
 */
static size_t at_s5(uint8_t *out, int pkgbytes, uint8_t count, const uint8_t *elems,
		    size_t elen, bool root)
{
	static const uint8_t decoys[] = {
		0x10, 0x05, '_', 'S', 'B', '_', 0x0d, '_', 'S', '5', '_', 0x00,
		0x14, 0x08, '_', 'S', '5', '_', 0x00, 0xa4, 0x00, 0x00,
	};
	size_t n = 0, total = (size_t)pkgbytes + 1 + elen;

	memcpy(out, decoys, sizeof(decoys));
	n += sizeof(decoys);
	out[n++] = 0x08;
	if (root)
		out[n++] = '\\';
	memcpy(out + n, "_S5_", 4);
	n += 4;
	out[n++] = 0x12;
	if (pkgbytes == 1) {
		cr_assert_lt(total, 64);
		out[n++] = (uint8_t)total;
	} else {
		out[n++] = (uint8_t)((pkgbytes - 1) << 6 | (total & 0xf));
		for (int i = 1; i < pkgbytes; i++)
			out[n++] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	out[n++] = count;
	memcpy(out + n, elems, elen);
	n += elen;
	out[n++] = 0x5b;	/* trailing ExtOpPrefix byte: more AML follows */
	return n;
}

static void at_build(struct at_mem *m)
{
	static const uint8_t el[] = { 0x0a, 0x05, 0x0a, 0x07, 0x00, 0x00 };
	static const uint8_t el2[] = { 0x01, 0x01, 0x00, 0x00 };
	uint8_t body[128];
	size_t n;

	memset(m, 0, sizeof(*m));
	at_fadt6(m);
	at_madt_std(m);
	at_hpet(m);
	at_mcfg(m);
	at_hdr(m, AT_SSDT, "SSDT", 40, 2);	/* unused; bad checksum ignored */
	n = at_s5(body, 1, 4, el, sizeof(el), false);
	at_dsdt(m, AT_DSDT, body, n);
	n = at_s5(body, 1, 4, el2, sizeof(el2), false);
	at_dsdt(m, AT_DSDT2, body, n);
	m->ntables = 5;
	m->tables[0] = AT_FADT;
	m->tables[1] = AT_MADT;
	m->tables[2] = AT_HPET;
	m->tables[3] = AT_MCFG;
	m->tables[4] = AT_SSDT;
	at_roots(m);
	at_rsdp(m, 2, AT_XSDT);
}

static struct at_mem at_m;
static struct acpi_info at_o;

Test(acpi, checksum)
{
	uint8_t b[4] = { 1, 2, 3, 0xfa };

	cr_assert(acpi_checksum_ok(b, 4));
	cr_assert(!acpi_checksum_ok(b, 3));
	cr_assert(acpi_checksum_ok(b, 0));
	b[0] = 2;
	cr_assert(!acpi_checksum_ok(b, 4));
}

Test(acpi, full_v2)
{
	const char *why;

	at_build(&at_m);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.revision, 2);
	cr_assert(at_o.xsdt);
	cr_assert_eq(at_o.sdt_phys, AT_XSDT);
	cr_assert_eq(at_o.bad_tables, 0);

	cr_assert(at_o.has_madt);
	cr_assert_eq(at_o.lapic_phys, 0x1fee00000ull);
	cr_assert(at_o.pcat_compat);
	cr_assert_eq(at_o.ncpus, 4);
	cr_assert_eq(at_o.cpu[0].apic_id, 0);
	cr_assert(at_o.cpu[0].enabled && !at_o.cpu[0].online_capable && !at_o.cpu[0].x2apic);
	cr_assert_eq(at_o.cpu[1].apic_id, 1);
	cr_assert_eq(at_o.cpu[1].acpi_uid, 1);
	cr_assert_eq(at_o.cpu[2].apic_id, 3);
	cr_assert(!at_o.cpu[2].enabled && at_o.cpu[2].online_capable);
	cr_assert_eq(at_o.cpu[3].apic_id, 0x100);
	cr_assert_eq(at_o.cpu[3].acpi_uid, 4);
	cr_assert(at_o.cpu[3].enabled && at_o.cpu[3].x2apic);
	cr_assert_eq(at_o.madt_errors, 1);	/* the duplicate */
	cr_assert_eq(at_o.dropped, 0);
	cr_assert_eq(at_o.nioapic, 1);
	cr_assert_eq(at_o.ioapic[0].id, 2);
	cr_assert_eq(at_o.ioapic[0].phys, 0xfec00000);
	cr_assert_eq(at_o.ioapic[0].gsi_base, 0);
	cr_assert_eq(at_o.niso, 2);
	cr_assert_eq(at_o.iso[0].source, 0);
	cr_assert_eq(at_o.iso[0].gsi, 2);
	cr_assert_eq(at_o.iso[1].bus, 0);
	cr_assert_eq(at_o.iso[1].source, 9);
	cr_assert_eq(at_o.iso[1].gsi, 9);
	cr_assert_eq(at_o.iso[1].flags, 0xd);

	cr_assert(at_o.has_hpet);
	cr_assert_eq(at_o.hpet_phys, 0xfed00000);
	cr_assert_eq(at_o.hpet_comparators, 3);
	cr_assert_eq(at_o.hpet_min_tick, 0x80);

	cr_assert(at_o.has_fadt);
	cr_assert_eq(at_o.fadt_revision, 6);
	cr_assert_eq(at_o.fadt_len, 276);
	cr_assert_eq(at_o.sci_irq, 9);
	cr_assert_eq(at_o.pm_tmr_port, 0x608);
	cr_assert(at_o.pm_tmr_32bit);
	cr_assert_eq(at_o.pm1a_cnt, 0x604);
	cr_assert_eq(at_o.pm1b_cnt, 0);
	cr_assert_eq(at_o.smi_cmd, 0xb2);
	cr_assert_eq(at_o.acpi_enable, 0xf1);
	cr_assert_eq(at_o.boot_arch_flags, 3);
	cr_assert_eq(at_o.fadt_flags, (1u << 8) | (1u << 10) | (1u << 4));
	cr_assert(!at_o.hw_reduced);
	cr_assert(at_o.reset_supported);
	cr_assert_eq(at_o.reset_reg.space, ACPI_GAS_IO);
	cr_assert_eq(at_o.reset_reg.bit_width, 8);
	cr_assert_eq(at_o.reset_reg.address, 0xcf9);
	cr_assert_eq(at_o.reset_value, 6);
	cr_assert_eq(at_o.dsdt_phys, AT_DSDT);	/* X_DSDT wins */

	cr_assert(at_o.has_s5);
	cr_assert_eq(at_o.s5_slp_typa, 5);
	cr_assert_eq(at_o.s5_slp_typb, 7);

	cr_assert(at_o.has_mcfg);
	cr_assert_eq(at_o.nmcfg, 2);
	cr_assert_eq(at_o.mcfg[0].base, 0xb0000000);
	cr_assert_eq(at_o.mcfg[0].bus_end, 255);
	cr_assert_eq(at_o.mcfg[1].base, 0xc0000000);
	cr_assert_eq(at_o.mcfg[1].segment, 1);
	cr_assert_eq(at_o.mcfg[1].bus_start, 0);
	cr_assert_eq(at_o.mcfg[1].bus_end, 0x3f);
}

Test(acpi, rsdp_v1_uses_rsdt)
{
	const char *why;

	at_build(&at_m);
	at_rsdp(&at_m, 0, 0);
	/* The XSDT is garbage now; a v1 RSDP must never look at it. */
	at_w(&at_m, AT_XSDT, 0, 4);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.revision, 0);
	cr_assert(!at_o.xsdt);
	cr_assert_eq(at_o.sdt_phys, AT_RSDT);
	cr_assert_eq(at_o.ncpus, 4);
	cr_assert(at_o.has_s5);
}

Test(acpi, rsdp_v2_without_xsdt)
{
	const char *why;

	at_build(&at_m);
	at_rsdp(&at_m, 2, 0);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.revision, 2);
	cr_assert(!at_o.xsdt);
	cr_assert_eq(at_o.sdt_phys, AT_RSDT);
	cr_assert(at_o.has_fadt && at_o.has_hpet);
}

/* A broken root is fatal, and leaves nothing half-filled. */
static void at_expect_fatal(const char *want)
{
	const char *why;

	memset(&at_o, 0x5a, sizeof(at_o));
	cr_assert_eq(at_parse(&at_m, &at_o, &why), -EINVAL);
	cr_assert_str_eq(why, want);
	cr_assert_eq(at_o.ncpus, 0);
	cr_assert(!at_o.has_fadt);
}

Test(acpi, root_errors_fatal)
{
	at_build(&at_m);
	at_p(&at_m, AT_RSDP)[0] = 'X';
	at_expect_fatal("bad RSDP signature");

	at_build(&at_m);
	at_p(&at_m, AT_RSDP)[16] ^= 1;
	at_expect_fatal("bad RSDP checksum");

	/* v1 checksum fixed up, extended one left stale. */
	at_build(&at_m);
	at_w(&at_m, AT_RSDP + 24, AT_RSDT, 8);
	at_expect_fatal("bad RSDP extended checksum");

	at_build(&at_m);
	at_w(&at_m, AT_RSDP + 20, 20, 4);
	at_fix(at_p(&at_m, AT_RSDP), 36, 32);
	at_expect_fatal("bad RSDP length");

	at_build(&at_m);
	at_p(&at_m, AT_XSDT + 40)[0] ^= 0x10;
	at_expect_fatal("bad root table checksum");

	at_build(&at_m);
	memcpy(at_p(&at_m, AT_XSDT), "RSDT", 4);
	at_csum(&at_m, AT_XSDT);
	at_expect_fatal("bad root table signature");

	at_build(&at_m);
	at_w(&at_m, AT_XSDT + 4, 35, 4);
	at_expect_fatal("bad root table length");

	at_build(&at_m);
	at_w(&at_m, AT_XSDT + 4, ACPI_MAX_TABLE_LEN + 1, 4);
	at_expect_fatal("bad root table length");

	/* Length runs off the end of mappable memory. */
	at_build(&at_m);
	at_w(&at_m, AT_XSDT + 4, 0x100000, 4);
	at_expect_fatal("root table not mappable");

	at_build(&at_m);
	at_rsdp(&at_m, 2, 0x7000000000ull);
	at_expect_fatal("root table not mappable");
}

Test(acpi, rsdp_unmappable)
{
	const char *why = NULL;

	at_build(&at_m);
	cr_assert_eq(acpi_parse(0x1000, at_map, &at_m, &at_o, &why), -EINVAL);
	cr_assert_str_eq(why, "RSDP not mappable");
	cr_assert_eq(acpi_parse(0, at_map, &at_m, &at_o, NULL), -EINVAL);
	at_unmap_all(&at_m);
}

Test(acpi, bad_child_tables_skipped)
{
	const char *why;

	at_build(&at_m);
	at_p(&at_m, AT_FADT + 60)[0] ^= 1;		/* FADT checksum broken */
	at_w(&at_m, AT_HPET + 4, 20, 4);		/* HPET length too short */
	at_csum(&at_m, AT_HPET);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.bad_tables, 2);
	cr_assert(!at_o.has_fadt);
	cr_assert(!at_o.has_hpet);
	cr_assert(!at_o.has_s5);			/* DSDT only via FADT */
	cr_assert_eq(at_o.ncpus, 4);
	cr_assert_eq(at_o.nmcfg, 2);
}

Test(acpi, unmappable_and_null_entries)
{
	const char *why;

	at_build(&at_m);
	at_m.tables[3] = 0x7fff0000;	/* MCFG pointer nowhere */
	at_m.tables[4] = 0;		/* null entry: ignored */
	at_roots(&at_m);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.bad_tables, 1);
	cr_assert_eq(at_o.nmcfg, 0);
	cr_assert(at_o.has_fadt);
}

Test(acpi, first_table_of_a_kind_wins)
{
	const char *why;

	at_build(&at_m);
	/* A second, different MADT listed after the first. */
	memcpy(at_p(&at_m, AT_SSDT), at_p(&at_m, AT_MADT), 44);
	at_w(&at_m, AT_SSDT + 36, 0xdead0000, 4);
	at_csum(&at_m, AT_SSDT);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.lapic_phys, 0x1fee00000ull);
	cr_assert_eq(at_o.ncpus, 4);
}

Test(acpi, fadt_rev1_short)
{
	const char *why;

	at_build(&at_m);
	at_fadt1(&at_m);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert(at_o.has_fadt);
	cr_assert_eq(at_o.fadt_len, 116);
	cr_assert_eq(at_o.dsdt_phys, AT_DSDT);
	cr_assert_eq(at_o.pm_tmr_port, 0x408);
	cr_assert(!at_o.pm_tmr_32bit);
	cr_assert_eq(at_o.pm1a_cnt, 0x404);
	cr_assert_eq(at_o.pm1b_cnt, 0x484);
	cr_assert_eq(at_o.acpi_enable, 0xe1);
	cr_assert_eq(at_o.fadt_flags, 1u << 10);
	/* RESET_REG_SUP set, but a 116-byte FADT has no RESET_REG. */
	cr_assert(!at_o.reset_supported);
	cr_assert(at_o.has_s5);
	cr_assert_eq(at_o.s5_slp_typa, 5);
}

Test(acpi, fadt_x_fields)
{
	const char *why;

	/* X_PM_TMR_BLK in memory space: unsupported, so no PM timer at all
	 * (the legacy port must not be used behind the GAS's back). */
	at_build(&at_m);
	at_gas(&at_m, AT_FADT + 208, 0, 32, 0xfe000008);
	/* X_PM1a zero: fall back to the legacy block. */
	at_gas(&at_m, AT_FADT + 172, 0, 0, 0);
	at_w(&at_m, AT_FADT + 64, 0x1804, 4);
	/* X_PM1b in I/O space but beyond 16 bits: absent. */
	at_gas(&at_m, AT_FADT + 184, 1, 16, 0x10000);
	/* X_DSDT zero: legacy DSDT (the one with {1,1}). */
	at_w(&at_m, AT_FADT + 140, 0, 8);
	/* Reset register in an unsupported space. */
	at_gas(&at_m, AT_FADT + 116, 3, 8, 0x40);
	at_csum(&at_m, AT_FADT);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.pm_tmr_port, 0);
	cr_assert(!at_o.pm_tmr_32bit);
	cr_assert_eq(at_o.pm1a_cnt, 0x1804);
	cr_assert_eq(at_o.pm1b_cnt, 0);
	cr_assert_eq(at_o.dsdt_phys, AT_DSDT2);
	cr_assert(!at_o.reset_supported);
	cr_assert(at_o.has_s5);
	cr_assert_eq(at_o.s5_slp_typa, 1);
	cr_assert_eq(at_o.s5_slp_typb, 1);

	/* PM_TMR_LEN 0 means no timer even with a port. */
	at_build(&at_m);
	at_fadt1(&at_m);
	at_w(&at_m, AT_FADT + 91, 0, 1);
	at_csum(&at_m, AT_FADT);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.pm_tmr_port, 0);
}

Test(acpi, fadt_hw_reduced)
{
	const char *why;

	at_build(&at_m);
	at_w(&at_m, AT_FADT + 112, (1u << 20) | (1u << 10) | (1u << 8), 4);
	at_csum(&at_m, AT_FADT);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert(at_o.hw_reduced);
	cr_assert_eq(at_o.pm_tmr_port, 0);
	cr_assert(!at_o.pm_tmr_32bit);
	cr_assert_eq(at_o.pm1a_cnt, 0);
	cr_assert_eq(at_o.smi_cmd, 0);
	cr_assert_eq(at_o.sci_irq, 0);
	/* Reset register and DSDT are still valid on reduced hardware. */
	cr_assert(at_o.reset_supported);
	cr_assert(at_o.has_s5);
}

/* Each FADT field is read only when the table is long enough to hold it. */
Test(acpi, fadt_every_length)
{
	const char *why;

	for (uint32_t len = 36; len <= 276; len++) {
		at_build(&at_m);
		at_w(&at_m, AT_FADT + 4, len, 4);
		at_csum(&at_m, AT_FADT);
		cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
		cr_assert(at_o.has_fadt);
		cr_assert_eq(at_o.fadt_len, len);
		cr_assert_eq(at_o.dsdt_phys, len >= 148 ? AT_DSDT : len >= 44 ? AT_DSDT2 : 0,
			     "len %u", len);
		cr_assert_eq(at_o.sci_irq, len >= 48 ? 9 : 0);
		cr_assert_eq(at_o.acpi_enable, len >= 53 ? 0xf1 : 0);
		cr_assert_eq(at_o.pm1a_cnt, len >= 68 ? 0x604 : 0);
		/* Legacy port at 76..79 but PM_TMR_LEN (91) unknown until 92. */
		cr_assert_eq(at_o.pm_tmr_port, len >= 80 ? 0x608 : 0, "len %u", len);
		cr_assert_eq(at_o.boot_arch_flags, len >= 111 ? 3 : 0);
		cr_assert_eq(at_o.fadt_flags, len >= 116 ? 0x510u : 0);
		cr_assert_eq(at_o.pm_tmr_32bit, len >= 116);
		cr_assert_eq(at_o.reset_supported, len >= 129, "len %u", len);
	}
}

Test(acpi, madt_walk_errors)
{
	static const uint8_t zero_len[2] = { 0, 0 };
	static const uint8_t short_lapic[4] = { 0, 4, 7, 7 };
	static const uint8_t overrun[8] = { 0, 40, 6, 6, 1, 0, 0, 0 };
	const char *why;
	struct at_madt b;

	/* A zero-length entry stops the walk; entries before it stand. */
	at_build(&at_m);
	at_madt_begin(&b, &at_m);
	at_madt_lapic(&b, 0, 0, 1);
	at_madt_raw(&b, zero_len, 2);
	at_madt_lapic(&b, 1, 1, 1);
	at_madt_end(&b);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.ncpus, 1);
	cr_assert_eq(at_o.madt_errors, 1);

	/* Too short for its type: skipped, the walk goes on. */
	at_build(&at_m);
	at_madt_begin(&b, &at_m);
	at_madt_raw(&b, short_lapic, 4);
	at_madt_lapic(&b, 1, 1, 1);
	at_madt_end(&b);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.ncpus, 1);
	cr_assert_eq(at_o.cpu[0].apic_id, 1);
	cr_assert_eq(at_o.madt_errors, 1);

	/* An entry running past the table end is not used. */
	at_build(&at_m);
	at_madt_begin(&b, &at_m);
	at_madt_lapic(&b, 0, 0, 1);
	at_madt_raw(&b, overrun, 8);
	at_madt_end(&b);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.ncpus, 1);
	cr_assert_eq(at_o.madt_errors, 1);

	/* A single trailing byte. */
	at_build(&at_m);
	at_madt_begin(&b, &at_m);
	at_madt_lapic(&b, 0, 0, 1);
	at_madt_raw(&b, zero_len, 1);
	at_madt_end(&b);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.ncpus, 1);
	cr_assert_eq(at_o.madt_errors, 1);

	/* Invalid IDs: xAPIC 0xff and x2APIC 0xffffffff. */
	at_build(&at_m);
	at_madt_begin(&b, &at_m);
	at_madt_lapic(&b, 0, 0xff, 1);
	at_madt_x2apic(&b, UINT32_MAX, 1, 1);
	at_madt_x2apic(&b, 0x200, 2, 3);	/* enabled + online capable */
	at_madt_end(&b);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.ncpus, 1);
	cr_assert(at_o.cpu[0].enabled && !at_o.cpu[0].online_capable);
	cr_assert_eq(at_o.madt_errors, 2);

	/* Header-only MADT, and one too short for its fixed fields. */
	at_build(&at_m);
	at_madt_begin(&b, &at_m);
	at_madt_end(&b);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert(at_o.has_madt && at_o.ncpus == 0 && at_o.madt_errors == 0);
	cr_assert_eq(at_o.lapic_phys, 0xfee00000);
	at_w(&at_m, AT_MADT + 4, 40, 4);
	at_csum(&at_m, AT_MADT);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.madt_errors, 1);
	cr_assert_eq(at_o.lapic_phys, 0);
}

Test(acpi, madt_limits)
{
	const char *why;
	struct at_madt b;

	at_build(&at_m);
	at_madt_begin(&b, &at_m);
	for (uint32_t i = 0; i < ACPI_MAX_CPUS + 44; i++)
		at_madt_x2apic(&b, 0x1000 + i, i, 1);
	for (uint8_t i = 0; i < ACPI_MAX_IOAPICS + 3; i++)
		at_madt_ioapic(&b, i, 0xfec00000u + 0x1000u * i, 24u * i);
	for (uint8_t i = 0; i < ACPI_MAX_ISOS + 5; i++)
		at_madt_iso(&b, i, i, 0);
	at_madt_end(&b);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.ncpus, ACPI_MAX_CPUS);
	cr_assert_eq(at_o.cpu[ACPI_MAX_CPUS - 1].apic_id, 0x1000 + ACPI_MAX_CPUS - 1);
	cr_assert_eq(at_o.nioapic, ACPI_MAX_IOAPICS);
	cr_assert_eq(at_o.ioapic[7].gsi_base, 24 * 7);
	cr_assert_eq(at_o.niso, ACPI_MAX_ISOS);
	cr_assert_eq(at_o.dropped, 44 + 3 + 5);
	cr_assert_eq(at_o.madt_errors, 0);
}

Test(acpi, hpet_variants)
{
	const char *why;

	at_build(&at_m);
	at_gas(&at_m, AT_HPET + 40, 1, 64, 0xfed00000);	/* I/O space: unusable */
	at_csum(&at_m, AT_HPET);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert(!at_o.has_hpet);
	cr_assert_eq(at_o.bad_tables, 0);

	at_build(&at_m);
	at_w(&at_m, AT_HPET + 36, 0x1f00, 4);
	at_w(&at_m, AT_HPET + 4, 52, 4);	/* no number / min tick */
	at_csum(&at_m, AT_HPET);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert(at_o.has_hpet);
	cr_assert_eq(at_o.hpet_comparators, 32);
	cr_assert_eq(at_o.hpet_min_tick, 0);
}

Test(acpi, mcfg_variants)
{
	const char *why;

	at_build(&at_m);
	at_mcfg_entry(&at_m, 2, 0xd0000000, 2, 0x80, 0x7f);	/* start > end: skipped */
	at_mcfg_entry(&at_m, 3, 0, 3, 0, 1);			/* no base: skipped */
	for (int i = 4; i < 8; i++)
		at_mcfg_entry(&at_m, i, 0xe0000000 + 0x1000000ull * (uint64_t)i, (uint16_t)i, 0, 0);
	/* A partial trailing entry is ignored. */
	at_w(&at_m, AT_MCFG + 4, at_r32(&at_m, AT_MCFG + 4) + 15, 4);
	at_csum(&at_m, AT_MCFG);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert_eq(at_o.nmcfg, ACPI_MAX_MCFG);
	cr_assert_eq(at_o.mcfg[2].segment, 4);
	cr_assert_eq(at_o.mcfg[3].segment, 5);
	cr_assert_eq(at_o.dropped, 2);
}

/* Parse a DSDT body alone (the FADT points at AT_DSDT). */
static void at_s5_parse(const uint8_t *body, size_t n)
{
	const char *why;

	at_build(&at_m);
	at_dsdt(&at_m, AT_DSDT, body, n);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
}

static void at_s5_expect(int pkgbytes, uint8_t count, const uint8_t *el, size_t elen,
			 bool root, bool ok, uint8_t a, uint8_t b)
{
	uint8_t body[600];
	size_t n = at_s5(body, pkgbytes, count, el, elen, root);

	at_s5_parse(body, n);
	cr_assert_eq(at_o.has_s5, ok, "pkgbytes %d count %u", pkgbytes, count);
	if (ok) {
		cr_assert_eq(at_o.s5_slp_typa, a);
		cr_assert_eq(at_o.s5_slp_typb, b);
	}
}

Test(acpi, s5_encodings)
{
	static const uint8_t bytes[] = { 0x0a, 0x05, 0x0a, 0x06, 0x00, 0x00 };
	static const uint8_t zero_one[] = { 0x00, 0x01 };
	static const uint8_t words[] = { 0x0b, 0x07, 0x00, 0x0c, 0x03, 0, 0, 0 };
	static const uint8_t qword_ones[] = { 0x0e, 2, 0, 0, 0, 0, 0, 0, 0, 0xff };
	static const uint8_t packed[] = { 0x0b, 0x05, 0x06 };
	static const uint8_t method_call[] = { 0x5f, 0x53, 0x35, 0x54, 0x00 };
	static const uint8_t cut_word[] = { 0x0a, 0x05, 0x0b, 0x01 };
	uint8_t big[300];

	at_s5_expect(1, 4, bytes, sizeof(bytes), false, true, 5, 6);
	at_s5_expect(2, 4, bytes, sizeof(bytes), false, true, 5, 6);
	at_s5_expect(3, 4, bytes, sizeof(bytes), true, true, 5, 6);
	at_s5_expect(4, 4, bytes, sizeof(bytes), false, true, 5, 6);
	at_s5_expect(1, 2, zero_one, sizeof(zero_one), true, true, 0, 1);
	at_s5_expect(1, 2, words, sizeof(words), false, true, 7, 3);
	at_s5_expect(2, 2, qword_ones, sizeof(qword_ones), false, true, 2, 0xff);
	/* One integer packs SLP_TYPa in bits 7:0, SLP_TYPb in 15:8. */
	at_s5_expect(1, 1, packed, sizeof(packed), false, true, 5, 6);
	at_s5_expect(1, 0, bytes, sizeof(bytes), false, false, 0, 0);
	at_s5_expect(1, 2, method_call, sizeof(method_call), false, false, 0, 0);
	/* The word constant's second byte lies outside the package. */
	at_s5_expect(1, 2, cut_word, sizeof(cut_word), false, false, 0, 0);

	/* A package long enough to need the 2-byte PkgLength for real. */
	memset(big, 0x00, sizeof(big));
	big[0] = 0x0a;
	big[1] = 3;
	at_s5_expect(2, 200, big, sizeof(big), false, true, 3, 0);
}

Test(acpi, s5_bounds)
{
	static const uint8_t name_at_end[] = { 0x08, '_', 'S', '5', '_' };
	static const uint8_t pkg_at_end[] = { 0x08, '_', 'S', '5', '_', 0x12 };
	static const uint8_t len_past_end[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x3f, 0x02, 0x0a, 5 };
	static const uint8_t len_bytes_past_end[] = { 0x08, '_', 'S', '5', '_', 0x12, 0xc4 };
	static const uint8_t len_too_small[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x01, 0x02, 0x00, 0x00 };
	static const uint8_t no_count[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x01 };
	/* 2-byte PkgLength 0x80: past the end (a decoder that forgot the
	 * 4-bit shift of the second byte would read 8 and accept it). */
	static const uint8_t len2_past_end[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x40, 0x08,
						 0x02, 0x0a, 0x05, 0x0a, 0x05, 0, 0, 0, 0, 0 };
	/* 2-byte PkgLength 0x10, exactly to the end of the body. */
	static const uint8_t len2_exact[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x40, 0x01,
					      0x02, 0x0a, 0x04, 0x0a, 0x03, 0, 0, 0, 0, 0,
					      0, 0, 0, 0 };
	/* Package claims one byte more than the table has. */
	static const uint8_t len_one_over[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x02,
						0x0a, 0x05, 0x0a };
	static const uint8_t short_body[] = { '_', 'S', '5' };
	static const uint8_t at_start[] = { '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0x00, 0x00 };
	/* The first candidate is broken, the second good: the scan goes on. */
	static const uint8_t second[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x7f,
					  0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0x01, 0x00 };

	at_s5_parse(name_at_end, sizeof(name_at_end));
	cr_assert(!at_o.has_s5);
	at_s5_parse(pkg_at_end, sizeof(pkg_at_end));
	cr_assert(!at_o.has_s5);
	at_s5_parse(len_past_end, sizeof(len_past_end));
	cr_assert(!at_o.has_s5);
	at_s5_parse(len_bytes_past_end, sizeof(len_bytes_past_end));
	cr_assert(!at_o.has_s5);
	at_s5_parse(len_too_small, sizeof(len_too_small));
	cr_assert(!at_o.has_s5);
	at_s5_parse(no_count, sizeof(no_count));
	cr_assert(!at_o.has_s5);
	at_s5_parse(len2_past_end, sizeof(len2_past_end));
	cr_assert(!at_o.has_s5);
	at_s5_parse(len_one_over, sizeof(len_one_over));
	cr_assert(!at_o.has_s5);
	at_s5_parse(len2_exact, sizeof(len2_exact));
	cr_assert(at_o.has_s5);
	cr_assert_eq(at_o.s5_slp_typa, 4);
	cr_assert_eq(at_o.s5_slp_typb, 3);
	at_s5_parse(len2_exact, sizeof(len2_exact) - 1);
	cr_assert(!at_o.has_s5);
	at_s5_parse(short_body, sizeof(short_body));
	cr_assert(!at_o.has_s5);
	at_s5_parse(short_body, 0);
	cr_assert(!at_o.has_s5);
	at_s5_parse(at_start, sizeof(at_start));
	cr_assert(!at_o.has_s5);
	at_s5_parse(second, sizeof(second));
	cr_assert(at_o.has_s5);
	cr_assert_eq(at_o.s5_slp_typa, 1);
	cr_assert_eq(at_o.s5_slp_typb, 0);
}

Test(acpi, dsdt_problems)
{
	const char *why;

	at_build(&at_m);
	memcpy(at_p(&at_m, AT_DSDT), "SSDT", 4);
	at_csum(&at_m, AT_DSDT);
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert(!at_o.has_s5);
	cr_assert_eq(at_o.bad_tables, 1);

	at_build(&at_m);
	at_p(&at_m, AT_DSDT + 40)[0] ^= 0x40;
	cr_assert_eq(at_parse(&at_m, &at_o, &why), 0, "%s", why);
	cr_assert(!at_o.has_s5);
	cr_assert_eq(at_o.bad_tables, 1);
}

/* ---- Fuzz ---- */

static uint64_t at_rng;

static uint64_t at_rand(void)
{
	at_rng ^= at_rng >> 12;
	at_rng ^= at_rng << 25;
	at_rng ^= at_rng >> 27;
	return at_rng * 2685821657736338717ull;
}

/*
 * Criterion reports every passing cr_assert to its runner; the fuzz loop
 * checks quietly and fails loudly.
 */
#define AT_F_CHECK(c) do { if (!(c)) cr_assert_fail("fuzz invariant: %s", #c); } while (0)

static void at_f_invariants(int rc, const struct acpi_info *o)
{
	if (rc) {
		AT_F_CHECK(rc == -EINVAL);
		AT_F_CHECK(o->ncpus == 0);
		AT_F_CHECK(!o->has_fadt && !o->has_madt && !o->has_s5);
		return;
	}
	AT_F_CHECK(o->ncpus >= 0 && o->ncpus <= ACPI_MAX_CPUS);
	AT_F_CHECK(o->nioapic >= 0 && o->nioapic <= ACPI_MAX_IOAPICS);
	AT_F_CHECK(o->niso >= 0 && o->niso <= ACPI_MAX_ISOS);
	AT_F_CHECK(o->nmcfg >= 0 && o->nmcfg <= ACPI_MAX_MCFG);
	AT_F_CHECK(o->bad_tables >= 0 && o->madt_errors >= 0 && o->dropped >= 0);
	for (int i = 0; i < o->ncpus; i++) {
		AT_F_CHECK(o->cpu[i].enabled != o->cpu[i].online_capable);
		for (int j = 0; j < i; j++)
			AT_F_CHECK(o->cpu[i].apic_id != o->cpu[j].apic_id);
	}
	for (int i = 0; i < o->nmcfg; i++)
		AT_F_CHECK(o->mcfg[i].bus_start <= o->mcfg[i].bus_end && o->mcfg[i].base);
	AT_F_CHECK(o->pm_tmr_port <= 0xffff && o->pm1a_cnt <= 0xffff && o->pm1b_cnt <= 0xffff);
	AT_F_CHECK(!o->pm_tmr_32bit || o->pm_tmr_port);
	if (o->hw_reduced)
		AT_F_CHECK(!o->pm_tmr_port && !o->pm1a_cnt && !o->sci_irq);
	if (o->has_hpet)
		AT_F_CHECK(o->hpet_comparators >= 1 && o->hpet_comparators <= 32 && o->hpet_phys);
	if (o->reset_supported)
		AT_F_CHECK(o->reset_reg.address && o->reset_reg.space <= 2);
	AT_F_CHECK(!o->has_s5 || o->dsdt_phys);
}

static const uint64_t at_f_tables[] = { AT_RSDP, AT_XSDT, AT_RSDT, AT_FADT, AT_MADT,
					AT_HPET, AT_MCFG, AT_DSDT };

static void at_f_mutate(struct at_mem *m)
{
	const uint64_t *tables = at_f_tables;
	const size_t ntables = sizeof(at_f_tables) / sizeof(at_f_tables[0]);
	int k = 1 + (int)(at_rand() % 4);

	while (k--) {
		uint64_t t = tables[at_rand() % ntables];
		uint64_t off = at_rand() % (t == AT_MADT ? 160 : t == AT_FADT ? 280 : 64);
		uint64_t r = at_rand() % 8;

		if (r < 3)
			at_p(m, t + off)[0] ^= (uint8_t)(1u << (at_rand() % 8));
		else if (r < 5)
			at_p(m, t + off)[0] = (uint8_t)at_rand();
		else if (r < 6)
			at_w(m, t + off, at_rand() % 2 ? 0 : UINT32_MAX, 4);
		else if (r < 7)	/* length fields: shrink or grow */
			at_w(m, t + 4, at_r32(m, t + 4) + at_rand() % 64 - 32, 4);
		else
			at_p(m, t + off)[0] = (uint8_t)(at_rand() % 0x14);
	}
	/* Mostly repair checksums, or the parsers behind them never run. */
	if (at_rand() % 8) {
		for (size_t i = 1; i < ntables; i++)
			at_csum(m, tables[i]);
		at_fix(at_p(m, AT_RSDP), 20, 8);
		at_fix(at_p(m, AT_RSDP), 36, 32);
	}
}

Test(acpi, fuzz_mutations)
{
	static struct at_mem base;
	int ok = 0, with_cpus = 0, with_s5 = 0;

	at_build(&base);
	memcpy(&at_m, &base, sizeof(base));
	at_rng = 0xacb1d5ull;
	for (int i = 0; i < 50000; i++) {
		const char *why;
		int rc;

		/* Mutations only touch the first 0x200 bytes of each table. */
		for (size_t t = 0; t < sizeof(at_f_tables) / sizeof(at_f_tables[0]); t++)
			memcpy(at_p(&at_m, at_f_tables[t]), at_p(&base, at_f_tables[t]), 0x200);
		at_f_mutate(&at_m);
		memset(&at_o, 0xa5, sizeof(at_o));
		rc = at_parse(&at_m, &at_o, &why);
		at_f_invariants(rc, &at_o);
		if (rc == 0) {
			ok++;
			with_cpus += at_o.ncpus > 0;
			with_s5 += at_o.has_s5;
		} else {
			cr_assert_not_null(why);
		}
	}
	/* The mutations must reach the table parsers, not just the RSDP. */
	cr_assert_gt(ok, 10000, "ok %d", ok);
	cr_assert_gt(with_cpus, 10000, "cpus %d", with_cpus);
	cr_assert_gt(with_s5, 10000, "s5 %d", with_s5);
}
