/*
 * PCI enumeration: ECAM (PCI Express Base 4.0 section 7.2.2, windows from
 * the ACPI MCFG table, PCI Firmware 3.2 section 4.1.2), else configuration
 * mechanism #1 on ports 0xCF8/0xCFC (PCI Local Bus 3.0 section 3.2.2.3.2)
 * for machines without MCFG such as QEMU's i440FX "pc".
 *
 * The scan starts at the first bus of the window and follows PCI-to-PCI
 * bridges (type 1 headers) to their secondary buses, each bus visited at
 * most once and never outside the window, so a bad bridge cannot loop it.
 * Only the buses visited are mapped (1 MiB of ECAM each).
 */
#include <errno.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/kernel.h"
#include "net/pci.h"
#include "kernel/lib/acpi_tables.h"

#define ECAM_BUS_BYTES		(1u << 20)
#define PCI_MAX_DEPTH		8
#define CF8_ADDR		0xcf8
#define CF8_DATA		0xcfc
#define VEC_DEVICE_LAST		0xef	/* 0xf0 and up are the kernel's */
#define PCI_MAP_MAX		(64u << 20)	/* NIC register windows are small */

static struct pci_dev devs[PCI_MAX_DEVS];
static int ndevs;
static bool use_ecam;
static uint64_t ecam_base;
static uint8_t ecam_bus_start, ecam_bus_end;
static volatile uint8_t *ecam_bus_map[256];
static uint8_t visited[256 / 8];

const char *pci_access_method(void)
{
	return use_ecam ? "ecam" : "legacy";
}

/* ---- raw access by bus/dev/fn ---- */

static volatile uint8_t *ecam_fn(uint8_t bus, uint8_t dev, uint8_t fn)
{
	if (bus < ecam_bus_start || bus > ecam_bus_end)
		return NULL;
	if (!ecam_bus_map[bus]) {
		uint64_t pa = ecam_base + ((uint64_t)(bus - ecam_bus_start) << 20);

		ecam_bus_map[bus] = mmio_map(pa, ECAM_BUS_BYTES);
		if (!ecam_bus_map[bus])
			return NULL;
	}
	return ecam_bus_map[bus] + ((uint32_t)dev << 15 | (uint32_t)fn << 12);
}

static void cf8_select(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	outl(CF8_ADDR, 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 |
		       (uint32_t)fn << 8 | (off & 0xfc));
}

static uint32_t raw_read32(volatile uint8_t *ecam, uint8_t bus, uint8_t dev,
			   uint8_t fn, uint16_t off)
{
	if (ecam)
		return *(volatile uint32_t *)(ecam + (off & 0xffc));
	if (off >= 256)
		return 0xffffffffu;
	cf8_select(bus, dev, fn, off);
	return inl(CF8_DATA);
}

uint32_t pci_read32(struct pci_dev *d, uint16_t off)
{
	return raw_read32(d->ecam, d->bus, d->dev, d->fn, off);
}

uint16_t pci_read16(struct pci_dev *d, uint16_t off)
{
	return (uint16_t)(pci_read32(d, off & ~3) >> ((off & 2) * 8));
}

uint8_t pci_read8(struct pci_dev *d, uint16_t off)
{
	return (uint8_t)(pci_read32(d, off & ~3) >> ((off & 3) * 8));
}

void pci_write32(struct pci_dev *d, uint16_t off, uint32_t v)
{
	if (d->ecam) {
		*(volatile uint32_t *)(d->ecam + (off & 0xffc)) = v;
	} else if (off < 256) {
		cf8_select(d->bus, d->dev, d->fn, off);
		outl(CF8_DATA, v);
	}
}

void pci_write16(struct pci_dev *d, uint16_t off, uint16_t v)
{
	if (d->ecam) {
		*(volatile uint16_t *)(d->ecam + (off & 0xffe)) = v;
	} else if (off < 256) {
		cf8_select(d->bus, d->dev, d->fn, off);
		outw(CF8_DATA + (off & 2), v);
	}
}

void pci_reload_cfg(struct pci_dev *d)
{
	uint16_t off;

	for (off = 0; off < PCI_CFG_SIZE; off += 4) {
		uint32_t v = pci_read32(d, off);

		memcpy(d->cfg + off, &v, 4);
	}
}

/* ---- BARs ---- */

/*
 * Size BARs by writing all ones and reading back (PCI 3.0 6.2.5.1), with
 * decoding off meanwhile so the device never answers at a bogus address.
 */
static void size_bars(struct pci_dev *d)
{
	uint16_t cmd = pci_read16(d, PCI_COMMAND);
	int i;

	pci_write16(d, PCI_COMMAND, cmd & ~(PCI_CMD_IO | PCI_CMD_MEMORY));
	for (i = 0; i < 6; i++) {
		uint16_t off = PCI_BAR0 + 4 * i;
		uint32_t lo = pci_read32(d, off), hi = 0, mlo, mhi = 0;
		bool is64 = pci_bar_is_64(lo) && i < 5;

		pci_write32(d, off, 0xffffffffu);
		mlo = pci_read32(d, off);
		pci_write32(d, off, lo);
		if (is64) {
			hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, 0xffffffffu);
			mhi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, hi);
		}
		if (pci_bar_decode(lo, hi, mlo, mhi, &d->bar[i]) < 0)
			pr_warn("pci %02x:%02x.%u: BAR%d %#x/%#x is malformed: ignored",
				d->bus, d->dev, d->fn, i, lo, mlo);
		if (is64)
			i++;
	}
	pci_write16(d, PCI_COMMAND, cmd);
}

volatile void *pci_map_bar(struct pci_dev *d, int i)
{
	if (i < 0 || i > 5 || !d->bar[i].size || d->bar[i].io || !d->bar[i].base ||
	    d->bar[i].size > PCI_MAP_MAX)
		return NULL;
	if (!d->bar_map[i])
		d->bar_map[i] = mmio_map(d->bar[i].base, d->bar[i].size);
	return d->bar_map[i];
}

void pci_enable(struct pci_dev *d, bool io, bool master)
{
	uint16_t cmd = pci_read16(d, PCI_COMMAND) | PCI_CMD_MEMORY;

	if (io)
		cmd |= PCI_CMD_IO;
	if (master)
		cmd |= PCI_CMD_MASTER;
	pci_write16(d, PCI_COMMAND, cmd);
}

/* ---- enumeration ---- */

static void add_function(uint8_t bus, uint8_t dev, uint8_t fn,
			 volatile uint8_t *ecam)
{
	struct pci_dev *d;

	if (ndevs >= PCI_MAX_DEVS) {
		pr_warn("pci: more than %d functions: %02x:%02x.%u ignored",
			PCI_MAX_DEVS, bus, dev, fn);
		return;
	}
	d = &devs[ndevs++];
	memset(d, 0, sizeof(*d));
	d->bus = bus, d->dev = dev, d->fn = fn, d->ecam = ecam;
	d->irq_mode = "none";
	pci_reload_cfg(d);
	d->vendor = pci_read16(d, PCI_VENDOR_ID);
	d->device = pci_read16(d, PCI_DEVICE_ID);
	d->rev = d->cfg[PCI_CLASS_REV];
	d->prog_if = d->cfg[PCI_CLASS_REV + 1];
	d->subclass = d->cfg[PCI_CLASS_REV + 2];
	d->class_code = d->cfg[PCI_CLASS_REV + 3];
	d->hdr_type = d->cfg[PCI_HEADER_TYPE];
	/* Sizing toggles decoding: only for the NICs we are about to drive. */
	if ((d->hdr_type & 0x7f) == 0 && d->class_code == 0x02)
		size_bars(d);
	pr_debug("pci %02x:%02x.%u %04x:%04x class %02x%02x", bus, dev, fn,
		 d->vendor, d->device, d->class_code, d->subclass);
}

static void scan_bus(uint8_t bus, int depth);

static void scan_function(uint8_t bus, uint8_t dev, uint8_t fn,
			  volatile uint8_t *ecam, int depth)
{
	uint32_t hdr = raw_read32(ecam, bus, dev, fn, 0x0c) >> 16 & 0x7f;

	add_function(bus, dev, fn, ecam);
	if (hdr == 1) {
		uint32_t buses = raw_read32(ecam, bus, dev, fn, 0x18);
		uint8_t sec = (uint8_t)(buses >> 8);

		/* A secondary bus must lie below this one (PCI-to-PCI Bridge
		 * 1.2 section 3.2.5.3); anything else is a bad bridge. */
		if (sec > bus && depth < PCI_MAX_DEPTH)
			scan_bus(sec, depth + 1);
	}
}

static void scan_bus(uint8_t bus, int depth)
{
	uint8_t dev, fn;

	if (visited[bus / 8] & (1u << (bus % 8)))
		return;
	visited[bus / 8] |= (uint8_t)(1u << (bus % 8));
	if (use_ecam && (bus < ecam_bus_start || bus > ecam_bus_end))
		return;
	for (dev = 0; dev < 32; dev++) {
		for (fn = 0; fn < 8; fn++) {
			volatile uint8_t *ecam = NULL;
			uint32_t id;

			if (use_ecam && !(ecam = ecam_fn(bus, dev, fn)))
				return;
			id = raw_read32(ecam, bus, dev, fn, 0);
			if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0) {
				if (fn == 0)
					break;
				continue;
			}
			scan_function(bus, dev, fn, ecam, depth);
			/* Header type bit 7: other functions exist. */
			if (fn == 0 && !(raw_read32(ecam, bus, dev, 0, 0x0c) & (1u << 23)))
				break;
		}
	}
}

static bool legacy_present(void)
{
	uint32_t saved;
	bool ok;

	/* Mechanism #1 keeps bit 31 of what was written to 0xCF8. */
	saved = inl(CF8_ADDR);
	outl(CF8_ADDR, 0x80000000u);
	ok = inl(CF8_ADDR) == 0x80000000u;
	outl(CF8_ADDR, saved);
	return ok;
}

int pci_init(void)
{
	const struct acpi_info *a = acpi_get();
	int i;

	if (ndevs)
		return ndevs;
	for (i = 0; a && a->has_mcfg && i < a->nmcfg; i++) {
		const struct acpi_mcfg *m = &a->mcfg[i];

		if (m->segment != 0 || m->bus_end < m->bus_start || !m->base)
			continue;
		use_ecam = true;
		ecam_base = m->base;
		ecam_bus_start = m->bus_start;
		ecam_bus_end = m->bus_end;
		break;
	}
	if (!use_ecam && !legacy_present()) {
		pr_info("pci: no MCFG and no configuration ports: no PCI");
		return 0;
	}
	scan_bus(use_ecam ? ecam_bus_start : 0, 0);
	pr_info("pci: %d functions (%s%s)", ndevs, pci_access_method(),
		use_ecam ? "" : ", no MCFG");
	return ndevs;
}

int pci_count(void)
{
	return ndevs;
}

struct pci_dev *pci_get(int i)
{
	return i >= 0 && i < ndevs ? &devs[i] : NULL;
}

/* ---- interrupts ---- */

uint8_t pci_alloc_vector(irq_handler fn, void *ctx)
{
	unsigned int v;

	for (v = VEC_IRQ_BASE; v <= VEC_DEVICE_LAST; v++)
		if (irq_register((uint8_t)v, fn, ctx) == 0)
			return (uint8_t)v;
	return 0;
}

static int setup_msix(struct pci_dev *d, uint64_t addr, uint32_t data)
{
	struct pci_msix_info mi;
	volatile uint32_t *entry;
	volatile uint8_t *tab;
	int cap = pci_cap_find(d->cfg, PCI_CFG_SIZE, PCI_CAP_MSIX, 0);
	uint16_t ctl;

	if (cap < 0 || pci_msix_decode(d->cfg, PCI_CFG_SIZE, (uint8_t)cap, &mi) < 0)
		return -ENODEV;
	if (!d->bar[mi.table_bar].size ||
	    (uint64_t)mi.table_off + 16u * mi.table_size > d->bar[mi.table_bar].size)
		return -EINVAL;
	tab = pci_map_bar(d, mi.table_bar);
	if (!tab)
		return -ENOMEM;
	/* Enable with the whole function masked, fill entry 0, unmask
	 * (PCI 3.0 6.8.2.3-6.8.2.9). */
	ctl = pci_read16(d, (uint16_t)(cap + 2));
	pci_write16(d, (uint16_t)(cap + 2), ctl | 0xc000);
	entry = (volatile uint32_t *)(tab + mi.table_off);
	entry[0] = (uint32_t)addr;
	entry[1] = (uint32_t)(addr >> 32);
	entry[2] = data;
	entry[3] = 0;			/* vector control: unmasked */
	pci_write16(d, (uint16_t)(cap + 2), (ctl | 0x8000) & ~0x4000);
	return 0;
}

static int setup_msi(struct pci_dev *d, uint64_t addr, uint32_t data)
{
	struct pci_msi_info mi;
	int cap = pci_cap_find(d->cfg, PCI_CFG_SIZE, PCI_CAP_MSI, 0);
	uint16_t ctl;

	if (cap < 0 || pci_msi_decode(d->cfg, PCI_CFG_SIZE, (uint8_t)cap, &mi) < 0)
		return -ENODEV;
	pci_write32(d, (uint16_t)(cap + 4), (uint32_t)addr);
	if (mi.addr64)
		pci_write32(d, (uint16_t)(cap + 8), 0);
	pci_write16(d, (uint16_t)(cap + mi.data_off), (uint16_t)data);
	if (mi.per_vector_mask)
		pci_write32(d, (uint16_t)(cap + mi.mask_off), 0);
	/* One vector (Multiple Message Enable 000), then enable. */
	ctl = pci_read16(d, (uint16_t)(cap + 2));
	pci_write16(d, (uint16_t)(cap + 2), (uint16_t)((ctl & ~0x70) | 1));
	return 0;
}

int pci_setup_irq(struct pci_dev *d, bool prefer_msix, irq_handler fn, void *ctx)
{
	uint64_t addr;
	uint32_t data;
	uint8_t vec;
	int r = -ENODEV;

	d->irq_mode = "poll";
	d->irq_vector = 0;
	if (pci_cap_find(d->cfg, PCI_CFG_SIZE, PCI_CAP_MSIX, 0) < 0 &&
	    pci_cap_find(d->cfg, PCI_CFG_SIZE, PCI_CAP_MSI, 0) < 0)
		return -ENODEV;		/* no vector wasted on a polled device */
	vec = pci_alloc_vector(fn, ctx);
	if (!vec)
		return -EBUSY;
	if (pci_msi_message(cpu_table[0]->apic_id, vec, &addr, &data) < 0)
		return -EINVAL;	/* vector stays registered: harmless */
	if (prefer_msix && (r = setup_msix(d, addr, data)) == 0)
		d->irq_mode = "msi-x";
	else if ((r = setup_msi(d, addr, data)) == 0)
		d->irq_mode = "msi";
	else if (!prefer_msix && (r = setup_msix(d, addr, data)) == 0)
		d->irq_mode = "msi-x";
	if (r < 0)
		return r;
	/* Message interrupts only: keep INTx quiet (PCI 3.0 6.2.2). */
	pci_write16(d, PCI_COMMAND, pci_read16(d, PCI_COMMAND) | PCI_CMD_INTX_DISABLE);
	d->irq_vector = vec;
	pci_reload_cfg(d);
	return vec;
}
