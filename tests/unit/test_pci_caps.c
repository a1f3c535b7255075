/* PCI config decoding: capability walk (cycles, bad pointers), BAR sizing,
 * MSI/MSI-X fields, MSI message format; a deterministic fuzz. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/lib/pci_caps.h"

static void cfg_with_caps(uint8_t *cfg)
{
	memset(cfg, 0, PCI_CFG_SIZE);
	cfg[PCI_STATUS] = PCI_STATUS_CAP_LIST;
	cfg[PCI_CAP_PTR] = 0x40;
	cfg[0x40] = PCI_CAP_MSIX, cfg[0x41] = 0x50;
	cfg[0x50] = PCI_CAP_VENDOR, cfg[0x51] = 0x60;
	cfg[0x60] = PCI_CAP_VENDOR, cfg[0x61] = 0x70;
	cfg[0x70] = PCI_CAP_MSI, cfg[0x71] = 0x00;
}

Test(pci_caps, walk_finds_each_and_next)
{
	uint8_t cfg[PCI_CFG_SIZE];

	cfg_with_caps(cfg);
	cr_assert_eq(pci_cap_find(cfg, sizeof(cfg), PCI_CAP_MSIX, 0), 0x40);
	cr_assert_eq(pci_cap_find(cfg, sizeof(cfg), PCI_CAP_MSI, 0), 0x70);
	cr_assert_eq(pci_cap_find(cfg, sizeof(cfg), PCI_CAP_VENDOR, 0), 0x50);
	cr_assert_eq(pci_cap_find(cfg, sizeof(cfg), PCI_CAP_VENDOR, 0x50), 0x60);
	cr_assert_eq(pci_cap_find(cfg, sizeof(cfg), PCI_CAP_VENDOR, 0x60), -ENOENT);
	cr_assert_eq(pci_cap_find(cfg, sizeof(cfg), 0x10, 0), -ENOENT);
}

Test(pci_caps, no_list_cycle_and_bad_pointer)
{
	uint8_t cfg[PCI_CFG_SIZE];

	cfg_with_caps(cfg);
	cfg[PCI_STATUS] = 0;
	cr_assert_eq(pci_cap_find(cfg, sizeof(cfg), PCI_CAP_MSI, 0), -ENOENT);
	cfg_with_caps(cfg);
	cfg[0x71] = 0x40;	/* back to the start */
	cr_assert_eq(pci_cap_find(cfg, sizeof(cfg), 0x33, 0), -ELOOP);
	cfg_with_caps(cfg);
	cfg[0x51] = 0x20;	/* into the header */
	cr_assert_eq(pci_cap_find(cfg, sizeof(cfg), PCI_CAP_MSI, 0), -EINVAL);
	cfg_with_caps(cfg);
	cfg[0x61] = 0xff;	/* reserved bits masked: 0xfc, the last dword */
	cr_assert_eq(pci_cap_find(cfg, sizeof(cfg), PCI_CAP_MSI, 0), -ENOENT);
	cr_assert_eq(pci_cap_find(cfg, 0xfd, PCI_CAP_MSI, 0), -EINVAL);
	cr_assert_eq(pci_cap_find(cfg, 0x30, PCI_CAP_MSI, 0), -EINVAL);
}

Test(pci_caps, bars)
{
	struct pci_bar_info b;

	/* 32-bit memory, 128 KiB at 0xfeb80000. */
	cr_assert_eq(pci_bar_decode(0xfeb80000, 0, 0xfffe0000, 0, &b), 0);
	cr_assert_eq(b.base, 0xfeb80000);
	cr_assert_eq(b.size, 0x20000);
	cr_assert(!b.io && !b.mem64);
	/* 64-bit prefetchable, 16 KiB above 4 GiB. */
	cr_assert(pci_bar_is_64(0x0000000c));
	cr_assert_eq(pci_bar_decode(0x0000000c, 0x8, 0xffffc00c, 0xffffffff, &b), 0);
	cr_assert_eq(b.base, 0x800000000ull);
	cr_assert_eq(b.size, 0x4000);
	cr_assert(b.mem64 && b.prefetch);
	/* I/O, 32 ports, upper half hard-wired to zero. */
	cr_assert_eq(pci_bar_decode(0xc041, 0, 0x0000ffe1, 0, &b), 0);
	cr_assert(b.io);
	cr_assert_eq(b.base, 0xc040);
	cr_assert_eq(b.size, 32);
	/* Not implemented. */
	cr_assert_eq(pci_bar_decode(0, 0, 0, 0, &b), 0);
	cr_assert_eq(b.size, 0);
	/* Reserved type, misaligned base, non-power-of-two size. */
	cr_assert_eq(pci_bar_decode(0x2, 0, 0xfffff002, 0, &b), -EINVAL);
	cr_assert_eq(pci_bar_decode(0xfeb81000, 0, 0xfffe0000, 0, &b), -EINVAL);
	cr_assert_eq(b.size, 0);
	cr_assert_eq(pci_bar_decode(0xfeb80000, 0, 0xfffd0000, 0, &b), -EINVAL);
}

Test(pci_caps, msi_msix_fields)
{
	uint8_t cfg[PCI_CFG_SIZE];
	struct pci_msi_info mi;
	struct pci_msix_info xi;

	cfg_with_caps(cfg);
	cfg[0x72] = 0x80 | 0x06;	/* 64-bit, multiple message capable 8 */
	cfg[0x73] = 0x01;		/* per-vector masking */
	cr_assert_eq(pci_msi_decode(cfg, sizeof(cfg), 0x70, &mi), 0);
	cr_assert(mi.addr64 && mi.per_vector_mask);
	cr_assert_eq(mi.data_off, 0x0c);
	cr_assert_eq(mi.mask_off, 0x10);
	cr_assert_eq(mi.max_vectors, 8);
	cr_assert_eq(pci_msi_decode(cfg, 0x80, 0x70, &mi), -EINVAL);

	cfg[0x42] = 0x02;		/* table size 3 */
	cfg[0x44] = 0x01;		/* table in BAR1 at 0 */
	cfg[0x48] = 0x01, cfg[0x49] = 0x08;	/* PBA in BAR1 at 0x800 */
	cr_assert_eq(pci_msix_decode(cfg, sizeof(cfg), 0x40, &xi), 0);
	cr_assert_eq(xi.table_size, 3);
	cr_assert_eq(xi.table_bar, 1);
	cr_assert_eq(xi.table_off, 0);
	cr_assert_eq(xi.pba_off, 0x800);
	cfg[0x44] = 0x07;
	cr_assert_eq(pci_msix_decode(cfg, sizeof(cfg), 0x40, &xi), -EINVAL);
}

Test(pci_caps, msi_message)
{
	uint64_t a;
	uint32_t d;

	cr_assert_eq(pci_msi_message(3, 0x31, &a, &d), 0);
	cr_assert_eq(a, 0xfee03000ull);
	cr_assert_eq(d, 0x31);
	cr_assert_eq(pci_msi_message(256, 0x31, &a, &d), -EINVAL);
	cr_assert_eq(pci_msi_message(0, 3, &a, &d), -EINVAL);
}

Test(pci_caps, fuzz_random_config_space)
{
	uint8_t cfg[PCI_CFG_SIZE];
	struct pci_bar_info b;
	struct pci_msi_info mi;
	struct pci_msix_info xi;
	int i, j;

	srand(20240601);
	for (i = 0; i < 50000; i++) {
		for (j = 0; j < PCI_CFG_SIZE; j++)
			cfg[j] = (uint8_t)rand();
		size_t len = 0x40 + (size_t)rand() % (PCI_CFG_SIZE - 0x40 + 1);
		int off = pci_cap_find(cfg, len, (uint8_t)rand(), 0);

		cr_assert(off == -ENOENT || off == -ELOOP || off == -EINVAL ||
			  (off >= 0x40 && (size_t)off + 2 <= len && !(off & 3)));
		if (off > 0) {
			if (pci_msi_decode(cfg, len, (uint8_t)off, &mi) == 0)
				cr_assert((size_t)off + mi.data_off + 2 <= len);
			if (pci_msix_decode(cfg, len, (uint8_t)off, &xi) == 0)
				cr_assert(xi.table_bar <= 5 && xi.table_size >= 1 &&
					  xi.table_size <= 2048);
		}
		uint32_t lo = (uint32_t)rand() << 1 ^ (uint32_t)rand();
		uint32_t m = (uint32_t)rand() << 1 ^ (uint32_t)rand();
		if (pci_bar_decode(lo, (uint32_t)rand(), m, (uint32_t)rand(), &b) == 0 &&
		    b.size)
			cr_assert(!(b.size & (b.size - 1)) && !(b.base & (b.size - 1)));
	}
}
