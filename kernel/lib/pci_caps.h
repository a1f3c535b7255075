/*
 * PCI configuration-space decoding over a byte copy of the space: the
 * capability list walk, BAR sizing arithmetic and the MSI/MSI-X capability
 * fields.  Pure: the kernel reads config space into a buffer and hands it
 * here, so a device's bad values (a looping list, an out-of-range pointer,
 * a BAR that is not a power of two) are caught in one tested place.
 *
 * References: PCI Local Bus Specification 3.0 sections 6.2.5 (BARs), 6.7
 * (capability list), 6.8.1 (MSI), 6.8.2 (MSI-X).
 */
#ifndef TERN_LIB_PCI_CAPS_H
#define TERN_LIB_PCI_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCI_CFG_SIZE		256	/* the conventional header + caps */

#define PCI_VENDOR_ID		0x00
#define PCI_DEVICE_ID		0x02
#define PCI_COMMAND		0x04
#define PCI_STATUS		0x06
#define PCI_CLASS_REV		0x08
#define PCI_HEADER_TYPE		0x0e
#define PCI_BAR0		0x10
#define PCI_SECONDARY_BUS	0x19	/* type 1 header */
#define PCI_SUBORDINATE_BUS	0x1a
#define PCI_CAP_PTR		0x34
#define PCI_INTERRUPT_LINE	0x3c

#define PCI_CMD_IO		(1u << 0)
#define PCI_CMD_MEMORY		(1u << 1)
#define PCI_CMD_MASTER		(1u << 2)
#define PCI_CMD_INTX_DISABLE	(1u << 10)
#define PCI_STATUS_CAP_LIST	(1u << 4)

#define PCI_CAP_MSI		0x05
#define PCI_CAP_VENDOR		0x09
#define PCI_CAP_MSIX		0x11

/*
 * Offset of the first capability with this id that comes after the one at
 * offset after (0: from the start of the list).  -ENOENT when there is
 * none or the device has no list, -ELOOP when the list is longer than it
 * can be (a cycle), -EINVAL for a pointer outside [0x40, len - 2].
 */
int pci_cap_find(const uint8_t *cfg, size_t len, uint8_t id, uint8_t after);

struct pci_bar_info {
	uint64_t base;		/* bus address (I/O port for io BARs) */
	uint64_t size;		/* 0: the BAR is not implemented */
	bool io, mem64, prefetch;
};

/*
 * Decode one BAR from its value (lo, and hi for the upper half of a 64-bit
 * BAR) and what it read back after all ones were written (mask_lo,
 * mask_hi).  Returns 0, or -EINVAL for a reserved type or a size that is
 * not a power of two or a base not aligned to it.
 */
int pci_bar_decode(uint32_t lo, uint32_t hi, uint32_t mask_lo, uint32_t mask_hi,
		   struct pci_bar_info *out);

/* True when a BAR value says 64-bit memory (it takes two slots). */
bool pci_bar_is_64(uint32_t lo);

struct pci_msi_info {
	bool addr64, per_vector_mask;
	uint8_t data_off;	/* message data register, from the cap start */
	uint8_t mask_off;	/* mask bits register, when per_vector_mask */
	uint8_t max_vectors;	/* 1..32 */
};

/* Decode the MSI capability at off; -EINVAL when it does not fit. */
int pci_msi_decode(const uint8_t *cfg, size_t len, uint8_t off,
		   struct pci_msi_info *out);

struct pci_msix_info {
	uint16_t table_size;	/* entries, 1..2048 */
	uint8_t table_bar, pba_bar;
	uint32_t table_off, pba_off;
};

/* Decode the MSI-X capability at off; -EINVAL when it does not fit or
 * names a BAR index above 5. */
int pci_msix_decode(const uint8_t *cfg, size_t len, uint8_t off,
		    struct pci_msix_info *out);

/* MSI address/data for a fixed, edge, physical-destination interrupt to
 * one local APIC (Intel SDM Vol. 3A 11.11.1-11.11.2); -EINVAL for an APIC
 * id above 255 or a vector below 16. */
int pci_msi_message(uint32_t apic_id, uint8_t vector, uint64_t *addr,
		    uint32_t *data);

#endif
