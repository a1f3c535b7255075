/*
 * Unit tests for kernel/devices/model/pci_host.c: configuration mechanism
 * #1 (PCI 3.0 3.2.2.3.2), ECAM (PCIe 7.2.2), read-only / writable /
 * write-1-to-clear bits, BAR sizing and assignment (PCI 3.0 6.2.5.1), the
 * capability list, MMIO dispatch and the migration record.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/devices/model/pci_host.h"
#include "kernel/lib/byteorder.h"
#include "kernel/lib/pci_caps.h"

#define T_BASE	0xc0000000ull
#define T_SIZE	0x3eb00000ull
#define T_DEV	3

static struct pci_host H;
static struct pcih_func F;

static struct {
	int reads, writes, bar, size;
	uint64_t off, val;
	int written_off, written_size, nwritten;
} seen;

static int t_bar_read(void *ctx, int bar, uint64_t off, int size, uint64_t *val)
{
	cr_assert_eq(ctx, &seen);
	seen.reads++;
	seen.bar = bar;
	seen.off = off;
	seen.size = size;
	*val = 0x1122334455667788ull;
	return 0;
}

static int t_bar_write(void *ctx, int bar, uint64_t off, int size, uint64_t val)
{
	cr_assert_eq(ctx, &seen);
	seen.writes++;
	seen.bar = bar;
	seen.off = off;
	seen.size = size;
	seen.val = val;
	return 0;
}

static void t_cfg_written(void *ctx, uint16_t off, int size)
{
	cr_assert_eq(ctx, &seen);
	seen.written_off = off;
	seen.written_size = size;
	seen.nwritten++;
}

/* A function with a 4 KiB 32-bit BAR 0, a 16 KiB 64-bit prefetchable
 * BAR 2 and 32 I/O ports at BAR 4. */
static void t_func(struct pcih_func *f)
{
	pcih_func_init(f, 0x1234, 0x5678, 0x02000001, 0x1af4, 7);
	f->bar[0].size = 0x1000;
	f->bar[2].size = 0x4000;
	f->bar[2].flags = PCIH_BAR_MEM64 | PCIH_BAR_PREFETCH;
	f->bar[4].size = 0x20;
	f->bar[4].flags = PCIH_BAR_IO;
	f->bar_read = t_bar_read;
	f->bar_write = t_bar_write;
	f->cfg_written = t_cfg_written;
	f->ctx = &seen;
	f->name = "test";
}

static void setup(void)
{
	memset(&seen, 0, sizeof(seen));
	cr_assert_eq(pcih_init(&H, T_BASE, T_SIZE), 0);
	t_func(&F);
	cr_assert_eq(pcih_add(&H, T_DEV, &F), 0);
}

TestSuite(pci_host, .init = setup);

static uint32_t cf8(unsigned bus, unsigned dev, unsigned fn, unsigned reg)
{
	return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t io_cfg_read(unsigned dev, unsigned reg, int size)
{
	uint32_t v = 0xdead;

	cr_assert_eq(pcih_io_write(&H, 0xcf8, 4, cf8(0, dev, 0, reg)), 0);
	cr_assert_eq(pcih_io_read(&H, (uint16_t)(0xcfc + (reg & 3)), size, &v), 0);
	return v;
}

static void io_cfg_write(unsigned dev, unsigned reg, int size, uint32_t val)
{
	cr_assert_eq(pcih_io_write(&H, 0xcf8, 4, cf8(0, dev, 0, reg)), 0);
	cr_assert_eq(pcih_io_write(&H, (uint16_t)(0xcfc + (reg & 3)), size, val), 0);
}

static uint32_t ecam_read(unsigned dev, unsigned reg, int size)
{
	uint32_t v = 0xdead;

	cr_assert_eq(pcih_ecam_read(&H, dev << 15 | reg, size, &v), 0);
	return v;
}

Test(pci_host, cf8_latch_and_widths)
{
	uint32_t v;

	cr_assert_eq(pcih_io_write(&H, 0xcf8, 4, 0x80001803u), 0);
	cr_assert_eq(pcih_io_read(&H, 0xcf8, 4, &v), 0);
	cr_assert_eq(v, 0x80001800u, "bits 1:0 read 0");
	/* Byte and word accesses to 0xcf8..0xcfb are not ours (0xcf9). */
	cr_assert_eq(pcih_io_write(&H, 0xcf9, 1, 6), -ENOENT);
	cr_assert_eq(pcih_io_read(&H, 0xcf8, 2, &v), -ENOENT);
	cr_assert_eq(pcih_io_read(&H, 0xcf7, 1, &v), -ENOENT);
	cr_assert_eq(pcih_io_read(&H, 0xd00, 4, &v), -ENOENT);
	cr_assert_eq(pcih_io_read(&H, 0xcf8, 4, &v), 0);
	cr_assert_eq(v, 0x80001800u, "latch unchanged by the byte write");

	cr_assert_eq(io_cfg_read(T_DEV, 0, 4), 0x56781234u);
	cr_assert_eq(io_cfg_read(T_DEV, 0, 2), 0x1234u);
	cr_assert_eq(io_cfg_read(T_DEV, 2, 2), 0x5678u);
	cr_assert_eq(io_cfg_read(T_DEV, 1, 1), 0x12u);
	cr_assert_eq(io_cfg_read(T_DEV, 3, 1), 0x56u);
	cr_assert_eq(io_cfg_read(T_DEV, 0x08, 4), 0x02000001u);
	cr_assert_eq(io_cfg_read(T_DEV, 0x2c, 4), 0x00071af4u);
	cr_assert_eq(io_cfg_read(T_DEV, 0x3d, 1), 0, "no INTx pin");
	/* A dword at 0xcfd would cross the data register: all ones. */
	cr_assert_eq(pcih_io_read(&H, 0xcfd, 4, &v), 0);
	cr_assert_eq(v, 0xffffffffu);
}

Test(pci_host, absent_functions_read_all_ones)
{
	uint32_t v;

	cr_assert_eq(io_cfg_read(5, 0, 4), 0xffffffffu);
	cr_assert_eq(io_cfg_read(5, 0, 2), 0xffffu);
	cr_assert_eq(io_cfg_read(5, 0, 1), 0xffu);
	/* Bus 1, function 1 of a present device. */
	cr_assert_eq(pcih_io_write(&H, 0xcf8, 4, cf8(1, T_DEV, 0, 0)), 0);
	cr_assert_eq(pcih_io_read(&H, 0xcfc, 4, &v), 0);
	cr_assert_eq(v, 0xffffffffu);
	cr_assert_eq(pcih_io_write(&H, 0xcf8, 4, cf8(0, T_DEV, 1, 0)), 0);
	cr_assert_eq(pcih_io_read(&H, 0xcfc, 4, &v), 0);
	cr_assert_eq(v, 0xffffffffu);
	/* Enable bit clear. */
	cr_assert_eq(pcih_io_write(&H, 0xcf8, 4, cf8(0, T_DEV, 0, 0) & 0x7fffffffu), 0);
	cr_assert_eq(pcih_io_read(&H, 0xcfc, 2, &v), 0);
	cr_assert_eq(v, 0xffffu);
	cr_assert_eq(pcih_io_write(&H, 0xcfc, 2, 0x0002), 0);
	cr_assert_eq(F.cfg[PCI_COMMAND], 0, "write with enable clear dropped");
	/* Writes to an absent device land nowhere (and do not crash). */
	io_cfg_write(9, 0x04, 2, 0xffff);
	cr_assert_eq(io_cfg_read(9, 0x04, 2), 0xffffu);
}

Test(pci_host, bridge_in_slot0)
{
	cr_assert_eq(io_cfg_read(0, 0, 4), (uint32_t)PCIH_BRIDGE_DEVICE << 16 | PCIH_BRIDGE_VENDOR);
	cr_assert_eq(io_cfg_read(0, 0x08, 4) >> 8, 0x060000u);
	cr_assert_eq(io_cfg_read(0, 0x0e, 1), 0);
	for (unsigned r = 0x10; r < 0x28; r += 4) {
		io_cfg_write(0, r, 4, 0xffffffffu);
		cr_assert_eq(io_cfg_read(0, r, 4), 0, "bridge BAR %#x", r);
	}
	cr_assert_eq(pcih_count(&H), 2);
	cr_assert_eq(pcih_get(&H, 0), &H.bridge);
	cr_assert_eq(pcih_get(&H, T_DEV), &F);
	cr_assert_null(pcih_get(&H, 4));
	cr_assert_null(pcih_get(&H, 32));
	cr_assert_str_eq(pcih_get(&H, T_DEV)->name, "test");
}

Test(pci_host, masks_readonly_writable_w1c)
{
	io_cfg_write(T_DEV, PCI_COMMAND, 2, 0xffff);
	cr_assert_eq(io_cfg_read(T_DEV, PCI_COMMAND, 2), 0x0407u);
	cr_assert_eq(seen.nwritten, 1);
	cr_assert_eq(seen.written_off, PCI_COMMAND);
	cr_assert_eq(seen.written_size, 2);
	io_cfg_write(T_DEV, 0, 4, 0);
	cr_assert_eq(io_cfg_read(T_DEV, 0, 4), 0x56781234u, "IDs are read-only");
	io_cfg_write(T_DEV, PCI_INTERRUPT_LINE, 1, 0x0b);
	cr_assert_eq(io_cfg_read(T_DEV, PCI_INTERRUPT_LINE, 1), 0x0b);
	/* A status error bit the device set: a written 0 keeps it, a 1
	 * clears it. */
	F.cfg[PCI_STATUS + 1] |= 0x20;	/* received master abort */
	io_cfg_write(T_DEV, PCI_STATUS, 2, 0);
	cr_assert_eq(io_cfg_read(T_DEV, PCI_STATUS, 2) & 0x2000, 0x2000u);
	io_cfg_write(T_DEV, PCI_STATUS, 2, 0xffff);
	cr_assert_eq(io_cfg_read(T_DEV, PCI_STATUS, 2) & 0x2000, 0);
}

Test(pci_host, ecam)
{
	uint32_t v;

	cr_assert_eq(ecam_read(T_DEV, 0, 4), 0x56781234u);
	cr_assert_eq(ecam_read(T_DEV, 2, 2), 0x5678u);
	cr_assert_eq(ecam_read(T_DEV, 0x0b, 1), 0x02u);
	cr_assert_eq(ecam_read(T_DEV, 0x100, 4), 0, "no extended caps");
	cr_assert_eq(ecam_read(T_DEV, 0xffc, 4), 0);
	cr_assert_eq(ecam_read(6, 0, 4), 0xffffffffu);
	cr_assert_eq(pcih_ecam_read(&H, T_DEV << 15 | 1 << 12, 4, &v), 0);
	cr_assert_eq(v, 0xffffffffu, "function 1");
	cr_assert_eq(pcih_ecam_read(&H, T_DEV << 15 | 2, 4, &v), 0);
	cr_assert_eq(v, 0xffffffffu, "crosses a dword");
	cr_assert_eq(pcih_ecam_read(&H, PCIH_ECAM_SIZE, 4, &v), -ENOENT);
	cr_assert_eq(pcih_ecam_write(&H, PCIH_ECAM_SIZE + 4, 4, 0), -ENOENT);
	cr_assert_eq(pcih_ecam_write(&H, T_DEV << 15 | PCI_COMMAND, 2, PCI_CMD_MEMORY), 0);
	cr_assert_eq(io_cfg_read(T_DEV, PCI_COMMAND, 2), PCI_CMD_MEMORY);
	cr_assert_eq(pcih_ecam_write(&H, T_DEV << 15 | 0x100, 4, 0xffffffffu), 0);
	cr_assert_eq(ecam_read(T_DEV, 0x100, 4), 0);
}

/* Size a BAR the way firmware does and decode it with the driver-side
 * decoder. */
static void t_size(unsigned bar, uint32_t *lo, uint32_t *mlo, uint32_t *hi, uint32_t *mhi,
		   bool is64)
{
	unsigned r = PCI_BAR0 + 4 * bar;

	*lo = io_cfg_read(T_DEV, r, 4);
	io_cfg_write(T_DEV, r, 4, 0xffffffffu);
	*mlo = io_cfg_read(T_DEV, r, 4);
	io_cfg_write(T_DEV, r, 4, *lo);
	*hi = *mhi = 0;
	if (is64) {
		*hi = io_cfg_read(T_DEV, r + 4, 4);
		io_cfg_write(T_DEV, r + 4, 4, 0xffffffffu);
		*mhi = io_cfg_read(T_DEV, r + 4, 4);
		io_cfg_write(T_DEV, r + 4, 4, *hi);
	}
}

Test(pci_host, bar_sizing_and_assignment)
{
	uint32_t lo, mlo, hi, mhi;
	struct pci_bar_info b0, b2, b4;

	t_size(0, &lo, &mlo, &hi, &mhi, false);
	cr_assert_eq(mlo, 0xfffff000u);
	cr_assert_eq(pci_bar_decode(lo, hi, mlo, mhi, &b0), 0);
	cr_assert_eq(b0.size, 0x1000);
	cr_assert(!b0.mem64 && !b0.io);

	t_size(2, &lo, &mlo, &hi, &mhi, true);
	cr_assert_eq(mlo, 0xffffc00cu);
	cr_assert_eq(mhi, 0xffffffffu);
	cr_assert_eq(pci_bar_decode(lo, hi, mlo, mhi, &b2), 0);
	cr_assert_eq(b2.size, 0x4000);
	cr_assert(b2.mem64 && b2.prefetch);

	t_size(4, &lo, &mlo, &hi, &mhi, false);
	cr_assert_eq(mlo, 0x0000ffe1u);
	cr_assert_eq(pci_bar_decode(lo, 0, mlo, 0, &b4), 0);
	cr_assert(b4.io);
	cr_assert_eq(b4.size, 0x20);
	cr_assert_geq(b4.base, PCIH_IO_BASE);

	/* Unimplemented BARs read 0 after all ones. */
	io_cfg_write(T_DEV, PCI_BAR0 + 4, 4, 0xffffffffu);
	cr_assert_eq(io_cfg_read(T_DEV, PCI_BAR0 + 4, 4), 0);
	io_cfg_write(T_DEV, PCI_BAR0 + 20, 4, 0xffffffffu);
	cr_assert_eq(io_cfg_read(T_DEV, PCI_BAR0 + 20, 4), 0);

	/* Assigned like firmware: in the window, naturally aligned, apart. */
	cr_assert_eq(pcih_bar_addr(&F, 0), b0.base);
	cr_assert_eq(pcih_bar_addr(&F, 2), b2.base);
	cr_assert_eq(pcih_bar_addr(&F, 4), b4.base);
	cr_assert_eq(pcih_bar_addr(&F, 1), 0);
	cr_assert_geq(b0.base, T_BASE);
	cr_assert_leq(b2.base + b2.size, T_BASE + T_SIZE);
	cr_assert_eq(b0.base % b0.size, 0);
	cr_assert_eq(b2.base % b2.size, 0);
	cr_assert(b0.base + b0.size <= b2.base || b2.base + b2.size <= b0.base);
}

Test(pci_host, add_errors)
{
	static struct pcih_func g;

	t_func(&g);
	cr_assert_eq(pcih_add(&H, 0, &g), -EINVAL);
	cr_assert_eq(pcih_add(&H, 32, &g), -EINVAL);
	cr_assert_eq(pcih_add(&H, T_DEV, &g), -EBUSY);
	g.bar[0].size = 0x1800;
	cr_assert_eq(pcih_add(&H, 7, &g), -EINVAL, "not a power of two");
	t_func(&g);
	g.bar[5].size = 0x1000;
	g.bar[5].flags = PCIH_BAR_MEM64;
	cr_assert_eq(pcih_add(&H, 7, &g), -EINVAL, "64-bit BAR in slot 5");
	t_func(&g);
	g.bar[3].size = 0x10;
	cr_assert_eq(pcih_add(&H, 7, &g), -EINVAL, "upper half of BAR 2 taken");
	t_func(&g);
	g.bar[0].size = 0x80000000ull;
	cr_assert_eq(pcih_add(&H, 7, &g), -ENOSPC, "does not fit the window");
	cr_assert_null(pcih_get(&H, 7));
	t_func(&g);
	cr_assert_eq(pcih_add(&H, 7, &g), 0);
	cr_assert_neq(pcih_bar_addr(&g, 0), pcih_bar_addr(&F, 0));
	cr_assert_eq(pcih_init(&H, 0xffff0000ull, 0x20000), -EINVAL, "above 4 GiB");
}

Test(pci_host, capability_list)
{
	static struct pcih_func g;
	int a, b, c;

	pcih_func_init(&g, 1, 2, 0, 0, 0);
	cr_assert_eq(g.cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST, 0);
	cr_assert_eq(pci_cap_find(g.cfg, sizeof(g.cfg), 0x09, 0), -ENOENT);
	a = pcih_add_cap(&g, 0x11, 12);
	b = pcih_add_cap(&g, 0x09, 10);
	c = pcih_add_cap(&g, 0x09, 16);
	cr_assert_eq(a, 0x40);
	cr_assert_eq(b, 0x4c);
	cr_assert_eq(c, 0x58, "4-byte aligned after a 10-byte cap");
	cr_assert(g.cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST);
	cr_assert_eq(g.cfg[PCI_CAP_PTR], 0x40);
	cr_assert_eq(pci_cap_find(g.cfg, sizeof(g.cfg), 0x11, 0), a);
	cr_assert_eq(pci_cap_find(g.cfg, sizeof(g.cfg), 0x09, 0), b);
	cr_assert_eq(pci_cap_find(g.cfg, sizeof(g.cfg), 0x09, (uint8_t)b), c);
	cr_assert_eq(pci_cap_find(g.cfg, sizeof(g.cfg), 0x09, (uint8_t)c), -ENOENT);
	cr_assert_eq(pcih_add_cap(&g, 0x09, 1), -EINVAL);
	while ((a = pcih_add_cap(&g, 0x05, 24)) > 0)
		cr_assert_leq(a + 24, 256);
	cr_assert_eq(a, -ENOSPC);
	cr_assert_eq(pcih_add_cap(&g, 0x05, 12), -ENOSPC);
	cr_assert_eq(pcih_add_cap(&g, 0x05, 4), 0xf8);
	cr_assert_eq(pcih_add_cap(&g, 0x05, 4), 0xfc, "the last dword");
	cr_assert_eq(pcih_add_cap(&g, 0x05, 2), -ENOSPC);
}

Test(pci_host, mmio_dispatch_and_relocation)
{
	uint64_t v, a0 = pcih_bar_addr(&F, 0), a2 = pcih_bar_addr(&F, 2);

	cr_assert_eq(pcih_mmio_read(&H, a0 + 0x10, 4, &v), -ENOENT, "COMMAND.MEM clear");
	io_cfg_write(T_DEV, PCI_COMMAND, 2, PCI_CMD_MEMORY);
	cr_assert_eq(pcih_mmio_read(&H, a0 + 0x10, 4, &v), 0);
	cr_assert_eq(v, 0x1122334455667788ull);
	cr_assert_eq(seen.bar, 0);
	cr_assert_eq(seen.off, 0x10);
	cr_assert_eq(seen.size, 4);
	cr_assert_eq(pcih_mmio_write(&H, a2 + 0x3ff8, 8, 42), 0);
	cr_assert_eq(seen.bar, 2);
	cr_assert_eq(seen.off, 0x3ff8);
	cr_assert_eq(seen.val, 42);
	cr_assert_eq(pcih_mmio_write(&H, a2 + 0x3ffc, 8, 1), -ENOENT, "crosses the end");
	cr_assert_eq(pcih_mmio_read(&H, a0 - 4, 4, &v), -ENOENT);

	/* The guest moves BAR 0, and BAR 2 above 4 GiB. */
	io_cfg_write(T_DEV, PCI_BAR0, 4, 0xd0000000u);
	io_cfg_write(T_DEV, PCI_BAR0 + 8, 4, 0x80000000u);
	io_cfg_write(T_DEV, PCI_BAR0 + 12, 4, 0x2);
	cr_assert_eq(pcih_bar_addr(&F, 0), 0xd0000000ull);
	cr_assert_eq(pcih_bar_addr(&F, 2), 0x280000000ull);
	cr_assert_eq(pcih_mmio_read(&H, a0 + 0x10, 4, &v), -ENOENT, "old address");
	seen.reads = 0;
	cr_assert_eq(pcih_mmio_read(&H, 0xd0000ffcull, 4, &v), 0);
	cr_assert_eq(seen.reads, 1);
	cr_assert_eq(seen.off, 0xffc);
	cr_assert_eq(pcih_mmio_write(&H, 0x280000100ull, 2, 7), 0);
	cr_assert_eq(seen.bar, 2);
	cr_assert_eq(seen.off, 0x100);
	/* I/O BARs are not memory. */
	cr_assert_eq(pcih_mmio_read(&H, pcih_bar_addr(&F, 4), 1, &v), -ENOENT);
	/* Memory decode off again. */
	io_cfg_write(T_DEV, PCI_COMMAND, 2, 0);
	cr_assert_eq(pcih_mmio_write(&H, 0xd0000000ull, 4, 1), -ENOENT);
}

Test(pci_host, save_load_round_trip)
{
	static struct pci_host h2;
	static struct pcih_func f2;
	uint8_t rec[2048], rec2[2048];
	int n;

	io_cfg_write(T_DEV, PCI_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_MASTER);
	io_cfg_write(T_DEV, PCI_BAR0, 4, 0xd0000000u);
	io_cfg_write(T_DEV, PCI_INTERRUPT_LINE, 1, 5);
	cr_assert_eq(pcih_io_write(&H, 0xcf8, 4, cf8(0, T_DEV, 0, 0x10)), 0);
	cr_assert_eq(pcih_save(&H, rec, 10), -ENOSPC);
	n = pcih_save(&H, rec, sizeof(rec));
	cr_assert_eq((size_t)n, pcih_save_size(&H));

	cr_assert_eq(pcih_init(&h2, T_BASE, T_SIZE), 0);
	t_func(&f2);
	cr_assert_eq(pcih_add(&h2, T_DEV, &f2), 0);
	cr_assert_eq(pcih_load(&h2, rec, (size_t)n), 0);
	cr_assert_eq(memcmp(f2.cfg, F.cfg, 256), 0);
	cr_assert_eq(h2.cf8, H.cf8);
	cr_assert_eq(pcih_bar_addr(&f2, 0), 0xd0000000ull);
	cr_assert_eq(pcih_save(&h2, rec2, sizeof(rec2)), n);
	cr_assert_eq(memcmp(rec, rec2, (size_t)n), 0);
}

Test(pci_host, load_refuses_other_layouts)
{
	static struct pci_host h2;
	static struct pcih_func f2;
	uint8_t rec[2048], bad[2048], before[2048];
	size_t fo = 8 + 260 + 4;	/* cfg of the second function (T_DEV) */
	int n = pcih_save(&H, rec, sizeof(rec));
	struct { size_t off; uint8_t x; } cases[] = {
		{ 0, 0x01 },			/* version */
		{ 1, 0x01 },			/* count */
		{ 2, 0x01 },			/* reserved */
		{ 4, 0x01 },			/* CONFIG_ADDRESS bit 0 */
		{ 8 + 260, 0x01 },		/* devno */
		{ fo + 0, 0x01 },		/* vendor */
		{ fo + 0x08, 0x01 },		/* revision */
		{ fo + 0x0e, 0x80 },		/* multi-function */
		{ fo + 0x10, 0x08 },		/* BAR 0 type bits */
		{ fo + 0x10, 0x10 },		/* BAR 0 size bits */
		{ fo + 0x18, 0x04 },		/* BAR 2 64-bit type */
		{ fo + 0x04, 0x08 },		/* COMMAND special cycles */
		{ fo + 0x06, 0x10 },		/* STATUS cap list */
		{ fo + 0x3d, 0x01 },		/* interrupt pin */
	};

	cr_assert_eq(pcih_init(&h2, T_BASE, T_SIZE), 0);
	t_func(&f2);
	cr_assert_eq(pcih_add(&h2, T_DEV, &f2), 0);
	cr_assert_eq(pcih_save(&h2, before, sizeof(before)), n);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, rec, (size_t)n);
		bad[cases[i].off] ^= cases[i].x;
		cr_assert_eq(pcih_load(&h2, bad, (size_t)n), -EINVAL, "case %zu", i);
	}
	cr_assert_eq(pcih_load(&h2, rec, (size_t)n - 1), -EINVAL);
	cr_assert_eq(pcih_save(&h2, bad, sizeof(bad)), n);
	cr_assert_eq(memcmp(bad, before, (size_t)n), 0, "untouched after refusals");
	/* Writable and write-1-to-clear bits may differ. */
	memcpy(bad, rec, (size_t)n);
	bad[fo + 0x04] ^= PCI_CMD_MEMORY;
	bad[fo + 0x07] ^= 0x20;
	bad[fo + 0x3c] ^= 0xff;
	cr_assert_eq(pcih_load(&h2, bad, (size_t)n), 0);
	/* A host with another device in the slot refuses. */
	cr_assert_eq(pcih_init(&h2, T_BASE, T_SIZE), 0);
	t_func(&f2);
	cr_assert_eq(pcih_add(&h2, T_DEV + 1, &f2), 0);
	cr_assert_eq(pcih_load(&h2, rec, (size_t)n), -EINVAL);
}
