/*
 * Bus 0 of a PCI host bridge: configuration mechanism #1 (ports
 * 0xcf8/0xcfc, PCI 3.0 3.2.2.3.2), the ECAM window (PCIe base 7.2.2),
 * generic type 0 functions whose registers are a byte array with
 * writable and write-1-to-clear masks, BAR sizing and assignment (PCI 3.0
 * 6.2.5.1) and the dispatch of memory accesses to the BAR that decodes
 * them.
 *
 * Pure: the owner of a function (a virtio transport, a NIC model) fills
 * its header with pcih_func_init and pcih_add_cap, describes its BARs and
 * registers it with pcih_add, which assigns the BARs like firmware would.
 * The glue routes port I/O, ECAM and MMIO here and holds a lock around
 * every call.
 */
#ifndef TERN_DEVICES_MODEL_PCI_HOST_H
#define TERN_DEVICES_MODEL_PCI_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCIH_DEVS		32	/* device numbers on bus 0 */
#define PCIH_CFG_SIZE		256
#define PCIH_ECAM_SIZE		(1u << 20)	/* bus 0 only */
#define PCIH_IO_BASE		0xc000u		/* where I/O BARs are assigned */
#define PCIH_IO_LIMIT		0x10000u

/* struct pcih_func.bar[].flags */
#define PCIH_BAR_MEM64		(1u << 0)	/* takes slots i and i + 1 */
#define PCIH_BAR_IO		(1u << 1)
#define PCIH_BAR_PREFETCH	(1u << 2)

/* The host bridge in slot 0, as on QEMU's q35 (Intel 82G33 MCH). */
#define PCIH_BRIDGE_VENDOR	0x8086
#define PCIH_BRIDGE_DEVICE	0x29c0

struct pcih_func {
	uint8_t cfg[PCIH_CFG_SIZE];
	uint8_t wmask[PCIH_CFG_SIZE];	/* bits the guest may write */
	uint8_t w1cmask[PCIH_CFG_SIZE];	/* bits a written 1 clears */
	struct {
		uint64_t size;		/* power of two; 0: no BAR */
		uint8_t flags;
	} bar[6];
	/* After a config write landed (the owner sees COMMAND, MSI-X). */
	void (*cfg_written)(void *ctx, uint16_t off, int size);
	/* Before a config read (optional: the owner refreshes a window
	 * such as virtio's PCI configuration access capability). */
	void (*cfg_read)(void *ctx, uint16_t off, int size);
	int (*bar_read)(void *ctx, int bar, uint64_t off, int size, uint64_t *val);
	int (*bar_write)(void *ctx, int bar, uint64_t off, int size, uint64_t val);
	void *ctx;
	const char *name;		/* for `vm info` */
	uint8_t cap_next;		/* first free byte for pcih_add_cap */
	uint8_t cap_last;		/* offset of the last capability, 0: none */
};

struct pci_host {
	struct pcih_func *dev[PCIH_DEVS];
	struct pcih_func bridge;
	uint32_t cf8;			/* CONFIG_ADDRESS */
	uint64_t mmio_base, mmio_size;
	uint64_t mmio_next;		/* assignment cursor in the window */
	uint32_t io_next;		/* assignment cursor for I/O BARs */
};

/*
 * Fill a type 0 header: IDs, class_rev (class code << 8 | revision),
 * subsystem IDs, COMMAND writable bits IO|MEM|MASTER|INTX_DISABLE, STATUS
 * error bits write-1-to-clear, interrupt pin 0 (no INTx), no BARs, no
 * capabilities.  The owner then sets bar[], ops, ctx and name.
 */
void pcih_func_init(struct pcih_func *f, uint16_t vendor, uint16_t device,
		    uint32_t class_rev, uint16_t subsys_vendor, uint16_t subsys_id);

/* Append a capability of len bytes (id and next included) to the list,
 * from 0x40 up, 4-byte aligned; returns its offset or -ENOSPC/-EINVAL. */
int pcih_add_cap(struct pcih_func *f, uint8_t id, uint8_t len);

/* Current address of BAR i (an I/O port for an I/O BAR), 0 when the BAR
 * is not implemented or not assigned. */
uint64_t pcih_bar_addr(const struct pcih_func *f, int i);

/* The BAR window [mmio_base, mmio_base + mmio_size) must lie below 4 GiB
 * (32-bit BARs).  Creates the host bridge in slot 0. */
int pcih_init(struct pci_host *h, uint64_t mmio_base, uint64_t mmio_size);

/*
 * Register f as device devno (1..31), function 0, and assign its BARs:
 * memory BARs naturally aligned in the window, I/O BARs from 0xc000.
 * -EINVAL for a bad slot or BAR description, -EBUSY for a taken slot,
 * -ENOSPC when the window is full.
 */
int pcih_add(struct pci_host *h, int devno, struct pcih_func *f);

/* Enumeration: devno -> function (NULL when empty); count includes the
 * bridge. */
struct pcih_func *pcih_get(struct pci_host *h, int devno);
int pcih_count(const struct pci_host *h);

/*
 * Configuration mechanism #1.  Ports 0xcf8..0xcff; other ports -ENOENT.
 * CONFIG_ADDRESS takes dword accesses only: byte and word accesses to
 * 0xcf8..0xcfb return -ENOENT too, so the glue can route them elsewhere
 * (0xcf9 is the reset control register of ICH chipsets).  Data accesses
 * that miss (no function, bus != 0, function != 0, enable clear) read all
 * ones and drop writes.
 */
int pcih_io_read(struct pci_host *h, uint16_t port, int size, uint32_t *val);
int pcih_io_write(struct pci_host *h, uint16_t port, int size, uint32_t val);

/*
 * ECAM, off = bus << 20 | dev << 15 | fn << 12 | reg inside the 1 MiB
 * window of bus 0 (-ENOENT beyond it).  Accesses of 1, 2 or 4 bytes that
 * do not cross a dword; others read all ones.  0x100..0xfff read 0 (no
 * extended capabilities).
 */
int pcih_ecam_read(struct pci_host *h, uint32_t off, int size, uint32_t *val);
int pcih_ecam_write(struct pci_host *h, uint32_t off, int size, uint32_t val);

/*
 * A guest memory access at gpa: the function whose memory BAR decodes it
 * (COMMAND.MEM set, the whole access inside the BAR) gets bar_read or
 * bar_write with the offset.  -ENOENT when nobody decodes it (the caller
 * reads all ones and drops writes).
 */
int pcih_mmio_read(struct pci_host *h, uint64_t gpa, int size, uint64_t *val);
int pcih_mmio_write(struct pci_host *h, uint64_t gpa, int size, uint64_t val);

/*
 * Migration record: version, CONFIG_ADDRESS, then the config space of
 * every present function.  Load refuses (-EINVAL, *h untouched) a record
 * whose layout of functions differs or whose read-only bits differ from
 * what this build produced (another device, revision or BAR layout).
 */
#define PCIH_SAVE_VERSION	1
size_t pcih_save_size(const struct pci_host *h);
int pcih_save(const struct pci_host *h, uint8_t *buf, size_t len);
int pcih_load(struct pci_host *h, const uint8_t *buf, size_t len);

#endif
