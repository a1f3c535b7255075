/* Virtqueue layout, used-ring index checks, virtio PCI capabilities. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/lib/virtq.h"

Test(virtq, layout)
{
	struct virtq_layout l;

	cr_assert_eq(virtq_layout(256, &l), 0);
	cr_assert_eq(l.desc, 0);
	cr_assert_eq(l.avail, 4096);
	cr_assert_eq(l.used, 4096 + 520);	/* 6 + 512 rounded up to 4 */
	cr_assert_eq(l.total, 4616 + 6 + 2048);
	cr_assert_eq(l.used % 4, 0);
	cr_assert_eq(virtq_layout(1, &l), 0);
	cr_assert_eq(l.used, 24);
	cr_assert_eq(virtq_layout(0, &l), -EINVAL);
	cr_assert_eq(virtq_layout(100, &l), -EINVAL);
	cr_assert_eq(virtq_layout(65536, &l), -EINVAL);
}

Test(virtq, used_pending_wraps_and_rejects)
{
	cr_assert_eq(virtq_used_pending(10, 12, 256), 2);
	cr_assert_eq(virtq_used_pending(65535, 1, 256), 2);
	cr_assert_eq(virtq_used_pending(5, 5, 256), 0);
	cr_assert_eq(virtq_used_pending(0, 256, 256), 256);
	cr_assert_eq(virtq_used_pending(0, 257, 256), -EIO);
	cr_assert_eq(virtq_used_pending(10, 9, 256), -EIO);	/* went back */
}

Test(virtq, used_elem)
{
	struct virtq_used_elem e = { 255, 2048 };

	cr_assert(virtq_used_ok(&e, 256, 2048));
	e.id = 256;
	cr_assert(!virtq_used_ok(&e, 256, 2048));
	e.id = 0, e.len = 2049;
	cr_assert(!virtq_used_ok(&e, 256, 2048));
}

static void put_cap(uint8_t *cfg, uint8_t off, uint8_t type, uint8_t bar,
		    uint32_t offset, uint32_t length, uint8_t cap_len)
{
	cfg[off] = 0x09;
	cfg[off + 2] = cap_len;
	cfg[off + 3] = type;
	cfg[off + 4] = bar;
	memcpy(cfg + off + 8, &offset, 4);
	memcpy(cfg + off + 12, &length, 4);
}

Test(virtq, pci_caps)
{
	uint8_t cfg[256] = { 0 };
	struct virtio_pci_cap c;
	uint32_t mult = 4;

	put_cap(cfg, 0x40, VIRTIO_PCI_CAP_COMMON, 4, 0, 0x1000, 16);
	cr_assert_eq(virtio_pci_cap_decode(cfg, sizeof(cfg), 0x40, &c), 0);
	cr_assert_eq(c.cfg_type, VIRTIO_PCI_CAP_COMMON);
	cr_assert_eq(c.bar, 4);
	cr_assert_eq(c.length, 0x1000);
	put_cap(cfg, 0x50, VIRTIO_PCI_CAP_NOTIFY, 4, 0x3000, 0x1000, 20);
	memcpy(cfg + 0x60, &mult, 4);
	cr_assert_eq(virtio_pci_cap_decode(cfg, sizeof(cfg), 0x50, &c), 0);
	cr_assert_eq(c.notify_mult, 4);
	cr_assert_eq(c.offset, 0x3000);
	/* Notify without its multiplier, a bad BAR, a wrapping region. */
	put_cap(cfg, 0x50, VIRTIO_PCI_CAP_NOTIFY, 4, 0x3000, 0x1000, 16);
	cr_assert_eq(virtio_pci_cap_decode(cfg, sizeof(cfg), 0x50, &c), -EINVAL);
	put_cap(cfg, 0x40, VIRTIO_PCI_CAP_COMMON, 6, 0, 0x1000, 16);
	cr_assert_eq(virtio_pci_cap_decode(cfg, sizeof(cfg), 0x40, &c), -EINVAL);
	put_cap(cfg, 0x40, VIRTIO_PCI_CAP_COMMON, 0, 0xfffff000u, 0x2000, 16);
	cr_assert_eq(virtio_pci_cap_decode(cfg, sizeof(cfg), 0x40, &c), -EINVAL);
	cr_assert_eq(virtio_pci_cap_decode(cfg, sizeof(cfg), 0xf8, &c), -EINVAL);

	cr_assert(virtio_region_fits(0x4000, 0x3000, 0x1000, 2));
	cr_assert(!virtio_region_fits(0x4000, 0x3001, 0x1000, 2));
	cr_assert(!virtio_region_fits(0x4000, 0, 1, 2));
}

Test(virtq, fuzz_indices_and_caps)
{
	uint8_t cfg[256];
	struct virtio_pci_cap c;
	int i, j;

	srand(4242);
	for (i = 0; i < 100000; i++) {
		uint16_t last = (uint16_t)rand(), idx = (uint16_t)rand();
		uint32_t n = 1u << (rand() % 16);
		int p = virtq_used_pending(last, idx, n);

		cr_assert(p == -EIO || (p >= 0 && (uint32_t)p <= n &&
					(uint16_t)(last + p) == idx));
	}
	for (i = 0; i < 20000; i++) {
		for (j = 0; j < 256; j++)
			cfg[j] = (uint8_t)rand();
		uint8_t off = (uint8_t)rand();

		if (virtio_pci_cap_decode(cfg, sizeof(cfg), off, &c) == 0)
			cr_assert(c.bar <= 5 && (uint64_t)c.offset + c.length <= 0xffffffffull &&
				  (size_t)off + cfg[off + 2] <= sizeof(cfg));
	}
}
