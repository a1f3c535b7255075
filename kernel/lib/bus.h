/*
 * The device bus: device models register port or MMIO ranges here and
 * never see VMX or SVM.  Accesses are 1, 2, 4 or 8 bytes at an offset
 * inside the device's range.
 */
#ifndef TERN_BUS_H
#define TERN_BUS_H

#include <stdint.h>

#define BUS_MAX_DEVS	16

struct bus_dev {
	const char *name;
	uint64_t base, len;
	int (*read)(void *ctx, uint64_t off, int size, uint64_t *val);
	int (*write)(void *ctx, uint64_t off, int size, uint64_t val);
	void *ctx;
};

struct bus {
	int n;
	struct bus_dev dev[BUS_MAX_DEVS];
	uint64_t unclaimed;	/* accesses nobody answered */
};

int bus_add(struct bus *b, const struct bus_dev *d);
/* -ENOENT when no device claims addr; the caller decides what that means
 * (all-ones for ports, a stopped VM for wild MMIO). */
int bus_read(struct bus *b, uint64_t addr, int size, uint64_t *val);
int bus_write(struct bus *b, uint64_t addr, int size, uint64_t val);
const struct bus_dev *bus_find(const struct bus *b, uint64_t addr, int size);
/* Take the device registered at base off the bus (a copy in *out, may be
 * NULL): -ENOENT when none starts there. */
int bus_remove(struct bus *b, uint64_t base, struct bus_dev *out);

#endif
