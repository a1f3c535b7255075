/*
 * Bus 0 of a PCI host bridge (see pci_host.h).
 *
 * A function's registers are bytes with two masks, so one write path
 * serves every register: a written byte keeps its read-only bits, takes
 * the writable ones and clears the write-1-to-clear ones.  BAR sizing
 * falls out of the masks (PCI 3.0 6.2.5.1): the address bits below the
 * size and the type bits are read-only, so writing all ones reads back
 * the size mask with the type bits.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/pci_host.h"
#include "kernel/lib/byteorder.h"
#include "kernel/lib/pci_caps.h"

#define PCIH_CF8_ENABLE		(1u << 31)
#define PCIH_HEADER_SIZE	0x40
#define PCIH_SUBSYS_VENDOR	0x2c
#define PCIH_INTERRUPT_PIN	0x3d
#define PCIH_CACHE_LINE		0x0c
#define PCIH_LATENCY		0x0d
#define PCIH_STATUS_W1C		0xf900u	/* parity, aborts, SERR (PCI 3.0 6.2.3) */
#define PCIH_BAR_TYPE_MEM64	0x4u
#define PCIH_BAR_PREFETCH_BIT	0x8u

void pcih_func_init(struct pcih_func *f, uint16_t vendor, uint16_t device,
		    uint32_t class_rev, uint16_t subsys_vendor, uint16_t subsys_id)
{
	memset(f, 0, sizeof(*f));
	st_le16(f->cfg + PCI_VENDOR_ID, vendor);
	st_le16(f->cfg + PCI_DEVICE_ID, device);
	st_le32(f->cfg + PCI_CLASS_REV, class_rev);
	f->cfg[PCI_HEADER_TYPE] = 0;	/* type 0, single function */
	st_le16(f->cfg + PCIH_SUBSYS_VENDOR, subsys_vendor);
	st_le16(f->cfg + PCIH_SUBSYS_VENDOR + 2, subsys_id);
	f->cfg[PCIH_INTERRUPT_PIN] = 0;	/* MSI-X only */
	st_le16(f->wmask + PCI_COMMAND, PCI_CMD_IO | PCI_CMD_MEMORY | PCI_CMD_MASTER |
		PCI_CMD_INTX_DISABLE);
	st_le16(f->w1cmask + PCI_STATUS, PCIH_STATUS_W1C);
	/* Scratch registers software writes and expects back. */
	f->wmask[PCIH_CACHE_LINE] = 0xff;
	f->wmask[PCIH_LATENCY] = 0xff;
	f->wmask[PCI_INTERRUPT_LINE] = 0xff;
	f->cap_next = PCIH_HEADER_SIZE;
}

int pcih_add_cap(struct pcih_func *f, uint8_t id, uint8_t len)
{
	unsigned off = (f->cap_next + 3u) & ~3u;

	if (len < 2)
		return -EINVAL;
	if (off < PCIH_HEADER_SIZE || off + len > PCIH_CFG_SIZE)
		return -ENOSPC;
	f->cfg[off] = id;
	f->cfg[off + 1] = 0;
	if (f->cap_last)
		f->cfg[f->cap_last + 1] = (uint8_t)off;
	else
		f->cfg[PCI_CAP_PTR] = (uint8_t)off;
	f->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	f->cap_last = (uint8_t)off;
	f->cap_next = (uint8_t)(off + len);	/* 0 when full: the next add fails */
	return (int)off;
}

uint64_t pcih_bar_addr(const struct pcih_func *f, int i)
{
	uint32_t lo;
	uint64_t a;

	if (i < 0 || i > 5 || !f->bar[i].size)
		return 0;
	lo = ld_le32(f->cfg + PCI_BAR0 + 4 * i);
	if (f->bar[i].flags & PCIH_BAR_IO)
		return lo & 0xfffcu;
	a = lo & ~0xfu;
	if ((f->bar[i].flags & PCIH_BAR_MEM64) && i < 5)
		a |= (uint64_t)ld_le32(f->cfg + PCI_BAR0 + 4 * (i + 1)) << 32;
	return a;
}

static bool pcih_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Check one BAR description; returns the number of slots it takes (1 or
 * 2), 0 for an empty slot, -EINVAL for a bad one. */
static int pcih_bar_check(const struct pcih_func *f, int i)
{
	uint64_t size = f->bar[i].size;
	uint8_t fl = f->bar[i].flags;

	if (!size)
		return fl ? -EINVAL : 0;
	if (!pcih_pow2(size))
		return -EINVAL;
	if (fl & PCIH_BAR_IO)
		return (fl & ~PCIH_BAR_IO) || size < 4 || size > 256 ? -EINVAL : 1;
	if (size < 16 || size > (1ull << 31))
		return -EINVAL;
	if (fl & PCIH_BAR_MEM64) {
		if (i == 5 || f->bar[i + 1].size || f->bar[i + 1].flags)
			return -EINVAL;
		return 2;
	}
	return 1;
}

/* Type bits, writable mask and address of one BAR (slots i, i + 1). */
static void pcih_bar_program(struct pcih_func *f, int i, uint64_t addr)
{
	uint64_t size = f->bar[i].size;
	uint8_t fl = f->bar[i].flags;
	uint8_t *r = f->cfg + PCI_BAR0 + 4 * i, *w = f->wmask + PCI_BAR0 + 4 * i;

	if (fl & PCIH_BAR_IO) {
		st_le32(r, (uint32_t)addr | 1u);
		st_le32(w, (uint32_t)~(size - 1) & 0xfffcu);	/* 16-bit ports */
		return;
	}
	st_le32(r, (uint32_t)addr | (fl & PCIH_BAR_MEM64 ? PCIH_BAR_TYPE_MEM64 : 0) |
		(fl & PCIH_BAR_PREFETCH ? PCIH_BAR_PREFETCH_BIT : 0));
	st_le32(w, (uint32_t)~(size - 1) & ~0xfu);
	if (fl & PCIH_BAR_MEM64) {
		st_le32(r + 4, (uint32_t)(addr >> 32));
		st_le32(w + 4, 0xffffffffu);
	}
}

static uint64_t pcih_align(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Check every BAR, then place them (nothing changes on an error). */
static int pcih_assign(struct pci_host *h, struct pcih_func *f)
{
	uint64_t addr[6] = { 0 }, mmio = h->mmio_next, io = h->io_next;

	for (int i = 0; i < 6; i++) {
		int n = pcih_bar_check(f, i);

		if (n < 0)
			return n;
		if (!n)
			continue;
		if (f->bar[i].flags & PCIH_BAR_IO) {
			addr[i] = pcih_align(io, f->bar[i].size);
			io = addr[i] + f->bar[i].size;
			if (io > PCIH_IO_LIMIT)
				return -ENOSPC;
		} else {
			addr[i] = pcih_align(mmio, f->bar[i].size);
			mmio = addr[i] + f->bar[i].size;
			if (mmio > h->mmio_base + h->mmio_size)
				return -ENOSPC;
		}
		i += n - 1;
	}
	for (int i = 0; i < 6; i++) {
		if (f->bar[i].size)
			pcih_bar_program(f, i, addr[i]);
		if (f->bar[i].flags & PCIH_BAR_MEM64)
			i++;
	}
	h->mmio_next = mmio;
	h->io_next = (uint32_t)io;
	return 0;
}

int pcih_init(struct pci_host *h, uint64_t mmio_base, uint64_t mmio_size)
{
	memset(h, 0, sizeof(*h));
	if (!mmio_size || mmio_base + mmio_size > (1ull << 32) || mmio_base + mmio_size < mmio_base)
		return -EINVAL;
	h->mmio_base = mmio_base;
	h->mmio_size = mmio_size;
	h->mmio_next = mmio_base;
	h->io_next = PCIH_IO_BASE;
	pcih_func_init(&h->bridge, PCIH_BRIDGE_VENDOR, PCIH_BRIDGE_DEVICE, 0x06000000u,
		       0x1af4, 0x1100);
	h->bridge.name = "host bridge";
	h->dev[0] = &h->bridge;
	return 0;
}

int pcih_add(struct pci_host *h, int devno, struct pcih_func *f)
{
	int err;

	if (devno < 1 || devno >= PCIH_DEVS || !f)
		return -EINVAL;
	if (h->dev[devno])
		return -EBUSY;
	err = pcih_assign(h, f);
	if (err)
		return err;
	h->dev[devno] = f;
	return 0;
}

struct pcih_func *pcih_get(struct pci_host *h, int devno)
{
	return devno >= 0 && devno < PCIH_DEVS ? h->dev[devno] : NULL;
}

int pcih_count(const struct pci_host *h)
{
	int n = 0;

	for (int i = 0; i < PCIH_DEVS; i++)
		n += h->dev[i] != NULL;
	return n;
}

/* ---- configuration space ---- */

static struct pcih_func *pcih_lookup(struct pci_host *h, unsigned bus, unsigned dev,
				     unsigned fn)
{
	/* Our functions are never multi-function: only function 0. */
	if (bus || fn || dev >= PCIH_DEVS)
		return NULL;
	return h->dev[dev];
}

static bool pcih_size_ok(unsigned reg, int size)
{
	return (size == 1 || size == 2 || size == 4) && (reg & 3) + (unsigned)size <= 4;
}

static uint32_t pcih_cfg_read(struct pcih_func *f, unsigned reg, int size)
{
	if (reg >= PCIH_CFG_SIZE)
		return 0;
	if (f->cfg_read)
		f->cfg_read(f->ctx, (uint16_t)reg, size);
	return (uint32_t)ld_le_n(f->cfg + reg, (unsigned)size);
}

static void pcih_cfg_write(struct pcih_func *f, unsigned reg, int size, uint32_t val)
{
	if (reg >= PCIH_CFG_SIZE)
		return;
	for (int i = 0; i < size; i++) {
		unsigned o = reg + (unsigned)i;
		uint8_t b = (uint8_t)(val >> (8 * i));

		f->cfg[o] = (uint8_t)((f->cfg[o] & ~f->wmask[o]) | (b & f->wmask[o]));
		f->cfg[o] &= (uint8_t)~(b & f->w1cmask[o]);
	}
	if (f->cfg_written)
		f->cfg_written(f->ctx, (uint16_t)reg, size);
}

static uint32_t pcih_ones(int size)
{
	return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

int pcih_io_read(struct pci_host *h, uint16_t port, int size, uint32_t *val)
{
	struct pcih_func *f;
	unsigned reg;

	if (port < 0xcf8 || port > 0xcff)
		return -ENOENT;
	if (port < 0xcfc) {
		if (port != 0xcf8 || size != 4)
			return -ENOENT;
		*val = h->cf8;
		return 0;
	}
	reg = (h->cf8 & 0xfc) + (port - 0xcfcu);
	*val = pcih_ones(size == 1 || size == 2 ? size : 4);
	if (!(h->cf8 & PCIH_CF8_ENABLE) || !pcih_size_ok(port - 0xcfcu, size))
		return 0;
	f = pcih_lookup(h, (h->cf8 >> 16) & 0xff, (h->cf8 >> 11) & 0x1f, (h->cf8 >> 8) & 7);
	if (f)
		*val = pcih_cfg_read(f, reg, size);
	return 0;
}

int pcih_io_write(struct pci_host *h, uint16_t port, int size, uint32_t val)
{
	struct pcih_func *f;

	if (port < 0xcf8 || port > 0xcff)
		return -ENOENT;
	if (port < 0xcfc) {
		if (port != 0xcf8 || size != 4)
			return -ENOENT;
		h->cf8 = val & ~3u;	/* bits 1:0 are reserved, read 0 */
		return 0;
	}
	if (!(h->cf8 & PCIH_CF8_ENABLE) || !pcih_size_ok(port - 0xcfcu, size))
		return 0;
	f = pcih_lookup(h, (h->cf8 >> 16) & 0xff, (h->cf8 >> 11) & 0x1f, (h->cf8 >> 8) & 7);
	if (f)
		pcih_cfg_write(f, (h->cf8 & 0xfc) + (port - 0xcfcu), size, val);
	return 0;
}

int pcih_ecam_read(struct pci_host *h, uint32_t off, int size, uint32_t *val)
{
	struct pcih_func *f;
	unsigned reg = off & 0xfff;

	if (off >= PCIH_ECAM_SIZE)
		return -ENOENT;
	*val = pcih_ones(size == 1 || size == 2 ? size : 4);
	if (!pcih_size_ok(reg, size))
		return 0;
	f = pcih_lookup(h, 0, (off >> 15) & 0x1f, (off >> 12) & 7);
	if (f)
		*val = pcih_cfg_read(f, reg, size);	/* extended space: 0 */
	return 0;
}

int pcih_ecam_write(struct pci_host *h, uint32_t off, int size, uint32_t val)
{
	struct pcih_func *f;

	if (off >= PCIH_ECAM_SIZE)
		return -ENOENT;
	if (!pcih_size_ok(off & 0xfff, size))
		return 0;
	f = pcih_lookup(h, 0, (off >> 15) & 0x1f, (off >> 12) & 7);
	if (f)
		pcih_cfg_write(f, off & 0xfff, size, val);
	return 0;
}

/* ---- BAR dispatch ---- */

/* The function and BAR that decode [gpa, gpa + size), or NULL. */
static struct pcih_func *pcih_decode(struct pci_host *h, uint64_t gpa, int size, int *bar,
				     uint64_t *off)
{
	if (size < 1 || size > 8)
		return NULL;
	for (int d = 1; d < PCIH_DEVS; d++) {
		struct pcih_func *f = h->dev[d];

		if (!f || !(ld_le16(f->cfg + PCI_COMMAND) & PCI_CMD_MEMORY))
			continue;
		for (int i = 0; i < 6; i++) {
			uint64_t a = pcih_bar_addr(f, i), sz = f->bar[i].size;

			if (!sz || (f->bar[i].flags & PCIH_BAR_IO) || !a)
				continue;
			if (gpa >= a && gpa - a < sz && sz - (gpa - a) >= (uint64_t)size) {
				*bar = i;
				*off = gpa - a;
				return f;
			}
		}
	}
	return NULL;
}

int pcih_mmio_read(struct pci_host *h, uint64_t gpa, int size, uint64_t *val)
{
	uint64_t off;
	int bar;
	struct pcih_func *f = pcih_decode(h, gpa, size, &bar, &off);

	if (!f || !f->bar_read)
		return -ENOENT;
	return f->bar_read(f->ctx, bar, off, size, val);
}

int pcih_mmio_write(struct pci_host *h, uint64_t gpa, int size, uint64_t val)
{
	uint64_t off;
	int bar;
	struct pcih_func *f = pcih_decode(h, gpa, size, &bar, &off);

	if (!f || !f->bar_write)
		return -ENOENT;
	return f->bar_write(f->ctx, bar, off, size, val);
}

/* ---- migration ---- */

/* Record: version, count, 2 reserved, CONFIG_ADDRESS; per function its
 * devno, 3 reserved bytes and 256 config bytes. */
#define PCIH_REC_HDR	8
#define PCIH_REC_FUNC	(4 + PCIH_CFG_SIZE)

size_t pcih_save_size(const struct pci_host *h)
{
	return PCIH_REC_HDR + (size_t)pcih_count(h) * PCIH_REC_FUNC;
}

int pcih_save(const struct pci_host *h, uint8_t *buf, size_t len)
{
	size_t need = pcih_save_size(h), p = PCIH_REC_HDR;

	if (len < need)
		return -ENOSPC;
	memset(buf, 0, need);
	buf[0] = PCIH_SAVE_VERSION;
	buf[1] = (uint8_t)pcih_count(h);
	st_le32(buf + 4, h->cf8);
	for (int d = 0; d < PCIH_DEVS; d++) {
		if (!h->dev[d])
			continue;
		buf[p] = (uint8_t)d;
		memcpy(buf + p + 4, h->dev[d]->cfg, PCIH_CFG_SIZE);
		p += PCIH_REC_FUNC;
	}
	return (int)need;
}

/* Bits neither the guest nor the device changes must be what this build
 * produced; writable and write-1-to-clear bits may hold anything. */
static bool pcih_cfg_compatible(const struct pcih_func *f, const uint8_t *cfg)
{
	for (unsigned i = 0; i < PCIH_CFG_SIZE; i++) {
		uint8_t ro = (uint8_t)~(f->wmask[i] | f->w1cmask[i]);

		if ((cfg[i] ^ f->cfg[i]) & ro)
			return false;
	}
	return true;
}

int pcih_load(struct pci_host *h, const uint8_t *buf, size_t len)
{
	size_t p = PCIH_REC_HDR;
	uint32_t cf8;

	if (len != pcih_save_size(h) || buf[0] != PCIH_SAVE_VERSION ||
	    buf[1] != pcih_count(h) || buf[2] || buf[3])
		return -EINVAL;
	cf8 = ld_le32(buf + 4);
	if (cf8 & 3)
		return -EINVAL;
	for (int d = 0; d < PCIH_DEVS; d++) {
		if (!h->dev[d])
			continue;
		if (buf[p] != d || buf[p + 1] || buf[p + 2] || buf[p + 3] ||
		    !pcih_cfg_compatible(h->dev[d], buf + p + 4))
			return -EINVAL;
		p += PCIH_REC_FUNC;
	}
	p = PCIH_REC_HDR;
	for (int d = 0; d < PCIH_DEVS; d++) {
		if (!h->dev[d])
			continue;
		memcpy(h->dev[d]->cfg, buf + p + 4, PCIH_CFG_SIZE);
		p += PCIH_REC_FUNC;
	}
	h->cf8 = cf8;
	return 0;
}
