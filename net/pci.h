/*
 * PCI enumeration and configuration access for the NIC drivers: ECAM from
 * the ACPI MCFG table, the legacy 0xCF8/0xCFC ports where there is none.
 * Boot CPU only, during net_init (no locking).
 */
#ifndef TERN_NET_PCI_H
#define TERN_NET_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include "kernel/platform/cpu.h"
#include "kernel/lib/pci_caps.h"

#define PCI_MAX_DEVS	64

struct pci_dev {
	uint16_t seg;
	uint8_t bus, dev, fn;
	uint16_t vendor, device;
	uint8_t class_code, subclass, prog_if, rev;
	uint8_t hdr_type;
	volatile uint8_t *ecam;		/* this function's 4 KiB, or NULL */
	struct pci_bar_info bar[6];	/* sized; size 0 = none */
	void *bar_map[6];		/* mmio_map of memory BARs, on demand */
	uint8_t cfg[PCI_CFG_SIZE];	/* copy taken at scan time */
	uint8_t irq_vector;		/* 0 = none (polled) */
	const char *irq_mode;		/* "msi-x", "msi", "poll" */
};

int pci_init(void);			/* scan once; returns devices found */
int pci_count(void);
struct pci_dev *pci_get(int i);
const char *pci_access_method(void);	/* "ecam" or "legacy" */

uint8_t pci_read8(struct pci_dev *d, uint16_t off);
uint16_t pci_read16(struct pci_dev *d, uint16_t off);
uint32_t pci_read32(struct pci_dev *d, uint16_t off);
void pci_write16(struct pci_dev *d, uint16_t off, uint16_t v);
void pci_write32(struct pci_dev *d, uint16_t off, uint32_t v);

/* Refresh d->cfg from the device (after enabling things). */
void pci_reload_cfg(struct pci_dev *d);

/* Set memory (and io) decoding and bus mastering in the command register. */
void pci_enable(struct pci_dev *d, bool io, bool master);

/* Uncached mapping of memory BAR i (cached in d->bar_map); NULL if absent. */
volatile void *pci_map_bar(struct pci_dev *d, int i);

/* Next free vector from VEC_IRQ_BASE, registered with fn; 0 when none. */
uint8_t pci_alloc_vector(irq_handler fn, void *ctx);

/*
 * Route the device's interrupt to the boot CPU at a new vector: MSI-X
 * entry 0 (prefer_msix) or MSI, else nothing.  Sets d->irq_vector and
 * d->irq_mode ("poll" when neither works: the caller polls from the tick;
 * INTx would need the ACPI _PRT, which Tern does not evaluate).
 * Returns the vector or a negative errno.
 */
int pci_setup_irq(struct pci_dev *d, bool prefer_msix, irq_handler fn, void *ctx);

#endif
