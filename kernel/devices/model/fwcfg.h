/*
 * QEMU's firmware configuration interface, the legacy I/O form only (QEMU
 * docs/specs/fw_cfg.rst): a 16-bit selector at 0x510 and an 8-bit data
 * port at 0x511 that streams the selected item from its start.  Enough for
 * Multiboot test kernels (kvm-unit-tests reads the CPU count and RAM size
 * this way): no DMA, no writable items, an empty file directory.
 */
#ifndef TERN_DEVICES_MODEL_FWCFG_H
#define TERN_DEVICES_MODEL_FWCFG_H

#include <stddef.h>
#include <stdint.h>

#define FWCFG_SIGNATURE	0x0000	/* "QEMU" */
#define FWCFG_ID	0x0001	/* LE32 features: bit 0 traditional I/O */
#define FWCFG_RAM_SIZE	0x0003	/* LE64 bytes */
#define FWCFG_NB_CPUS	0x0005	/* LE16 */
#define FWCFG_MAX_CPUS	0x000f	/* LE16 */
#define FWCFG_FILE_DIR	0x0019	/* BE32 count, then entries */

struct fwcfg {
	uint64_t ram_size;
	uint16_t ncpus;
	uint16_t sel;
	uint32_t off;		/* the next data byte of the selected item */
};

#define FWCFG_STATE_V	1
#define FWCFG_STATE_LEN	8

void fwcfg_reset(struct fwcfg *f, uint64_t ram_size, uint16_t ncpus);
void fwcfg_select(struct fwcfg *f, uint16_t key);
/* The next byte of the item; 0 past its end or for an unknown key. */
uint8_t fwcfg_read(struct fwcfg *f);

/* Only the guest's position travels: the items are the VM's own. */
void fwcfg_save(const struct fwcfg *f, uint8_t *b);
int fwcfg_load(struct fwcfg *f, const uint8_t *b, size_t len);

#endif
