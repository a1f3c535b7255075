/*
 * fw_cfg items, legacy I/O interface (QEMU docs/specs/fw_cfg.rst: the
 * selector register resets the data offset; reads past an item's end
 * return 0; the ID item's bit 0 says the traditional interface exists).
 */
#include <errno.h>
#include <string.h>
#include "kernel/devices/model/fwcfg.h"
#include "kernel/lib/byteorder.h"

void fwcfg_reset(struct fwcfg *f, uint64_t ram_size, uint16_t ncpus)
{
	memset(f, 0, sizeof(*f));
	f->ram_size = ram_size;
	f->ncpus = ncpus;
}

void fwcfg_select(struct fwcfg *f, uint16_t key)
{
	f->sel = key;
	f->off = 0;
}

/* The selected item into buf (at most 8 bytes); its length. */
static unsigned fwcfg_item(const struct fwcfg *f, uint8_t *buf)
{
	switch (f->sel) {
	case FWCFG_SIGNATURE: memcpy(buf, "QEMU", 4); return 4;
	case FWCFG_ID: st_le32(buf, 1); return 4;
	case FWCFG_RAM_SIZE: st_le64(buf, f->ram_size); return 8;
	case FWCFG_NB_CPUS:
	case FWCFG_MAX_CPUS: st_le16(buf, f->ncpus); return 2;
	case FWCFG_FILE_DIR: st_be32(buf, 0); return 4;
	default: return 0;
	}
}

uint8_t fwcfg_read(struct fwcfg *f)
{
	uint8_t buf[8];
	unsigned len = fwcfg_item(f, buf);

	if (f->off >= len)
		return 0;
	return buf[f->off++];
}

/* v1: version, zero, LE16 selector, LE32 offset. */
void fwcfg_save(const struct fwcfg *f, uint8_t *b)
{
	b[0] = FWCFG_STATE_V;
	b[1] = 0;
	st_le16(b + 2, f->sel);
	st_le32(b + 4, f->off);
}

int fwcfg_load(struct fwcfg *f, const uint8_t *b, size_t len)
{
	if (len != FWCFG_STATE_LEN || b[0] != FWCFG_STATE_V || b[1])
		return -EINVAL;
	f->sel = ld_le16(b + 2);
	f->off = ld_le32(b + 4);
	return 0;
}
