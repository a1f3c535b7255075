/* PCI configuration-space decoding; see pci_caps.h. */
#include <errno.h>
#include "kernel/lib/byteorder.h"
#include "kernel/lib/pci_caps.h"

#define CAP_FIRST	0x40	/* caps live after the 64-byte header */
#define CAP_MAX_WALK	48	/* (256 - 64) / 4: more means a cycle */

int pci_cap_find(const uint8_t *cfg, size_t len, uint8_t id, uint8_t after)
{
	unsigned int off, steps;

	if (!cfg || len < CAP_FIRST || len > PCI_CFG_SIZE)
		return -EINVAL;
	if (!(ld_le16(cfg + PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return -ENOENT;
	/* The bottom two bits of every pointer are reserved (PCI 3.0 6.7). */
	off = cfg[PCI_CAP_PTR] & 0xfc;
	for (steps = 0; off; steps++) {
		if (steps >= CAP_MAX_WALK)
			return -ELOOP;
		if (off < CAP_FIRST || off + 2 > len)
			return -EINVAL;
		if (after) {
			if (off == after)
				after = 0;
		} else if (cfg[off] == id) {
			return (int)off;
		}
		off = cfg[off + 1] & 0xfc;
	}
	return -ENOENT;
}

bool pci_bar_is_64(uint32_t lo)
{
	return !(lo & 1) && ((lo >> 1) & 3) == 2;
}

static bool pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

int pci_bar_decode(uint32_t lo, uint32_t hi, uint32_t mask_lo, uint32_t mask_hi,
		   struct pci_bar_info *out)
{
	uint64_t mask;

	*out = (struct pci_bar_info){ 0 };
	if (lo & 1) {
		/* I/O: bits 31:2 are the address; a device may leave the
		 * upper 16 bits hard-wired to zero (PCI 3.0 6.2.5.1). */
		out->io = true;
		mask = mask_lo & ~3u;
		if (mask && !(mask & 0xffff0000u))
			mask |= 0xffff0000u;
		out->base = lo & ~3u;
		out->size = mask ? (uint32_t)(~(uint32_t)mask + 1) : 0;
	} else {
		switch ((lo >> 1) & 3) {
		case 0:
			mask = mask_lo & ~0xfu;
			out->base = lo & ~0xfu;
			out->size = mask ? (uint32_t)(~(uint32_t)mask + 1) : 0;
			break;
		case 2:
			out->mem64 = true;
			mask = (uint64_t)mask_hi << 32 | (mask_lo & ~0xfu);
			out->base = (uint64_t)hi << 32 | (lo & ~0xfu);
			out->size = mask ? ~mask + 1 : 0;
			break;
		default:
			return -EINVAL;	/* 1 was "below 1 MiB", now reserved */
		}
		out->prefetch = lo & 8;
	}
	if (!out->size)
		return 0;
	if (!pow2(out->size) || (out->base & (out->size - 1))) {
		out->size = 0;
		return -EINVAL;
	}
	return 0;
}

int pci_msi_decode(const uint8_t *cfg, size_t len, uint8_t off,
		   struct pci_msi_info *out)
{
	uint16_t ctl;
	size_t need;

	if (!cfg || len > PCI_CFG_SIZE || off < CAP_FIRST || (size_t)off + 4 > len)
		return -EINVAL;
	ctl = ld_le16(cfg + off + 2);
	out->addr64 = ctl & (1u << 7);
	out->per_vector_mask = ctl & (1u << 8);
	out->data_off = out->addr64 ? 0x0c : 0x08;
	out->mask_off = out->addr64 ? 0x10 : 0x0c;
	out->max_vectors = (uint8_t)(1u << (((ctl >> 1) & 7) > 5 ? 5 : (ctl >> 1) & 7));
	need = (size_t)off + out->data_off + 2;
	if (out->per_vector_mask)
		need = (size_t)off + out->mask_off + 4;
	return need > len ? -EINVAL : 0;
}

int pci_msix_decode(const uint8_t *cfg, size_t len, uint8_t off,
		    struct pci_msix_info *out)
{
	uint32_t t, p;

	if (!cfg || len > PCI_CFG_SIZE || off < CAP_FIRST || (size_t)off + 12 > len)
		return -EINVAL;
	out->table_size = (uint16_t)((ld_le16(cfg + off + 2) & 0x7ff) + 1);
	t = ld_le32(cfg + off + 4);
	p = ld_le32(cfg + off + 8);
	out->table_bar = t & 7;
	out->table_off = t & ~7u;
	out->pba_bar = p & 7;
	out->pba_off = p & ~7u;
	return out->table_bar > 5 || out->pba_bar > 5 ? -EINVAL : 0;
}

int pci_msi_message(uint32_t apic_id, uint8_t vector, uint64_t *addr,
		    uint32_t *data)
{
	if (apic_id > 255 || vector < 16)
		return -EINVAL;
	/* Destination ID in bits 19:12, RH = DM = 0: physical mode. */
	*addr = 0xfee00000ull | (uint64_t)apic_id << 12;
	/* Delivery mode 000 (fixed), trigger mode 0 (edge). */
	*data = vector;
	return 0;
}
