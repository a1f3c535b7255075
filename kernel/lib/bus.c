/* Device bus dispatch: a short linear table, ranges never overlap. */
#include <errno.h>
#include <stddef.h>
#include "kernel/lib/bus.h"

const struct bus_dev *bus_find(const struct bus *b, uint64_t addr, int size)
{
	int i;

	for (i = 0; i < b->n; i++) {
		const struct bus_dev *d = &b->dev[i];

		if (addr >= d->base && addr - d->base + (uint64_t)size <= d->len)
			return d;
	}
	return NULL;
}

int bus_add(struct bus *b, const struct bus_dev *d)
{
	int i;

	if (b->n == BUS_MAX_DEVS || !d->len || d->base + d->len < d->base)
		return -ENOSPC;
	for (i = 0; i < b->n; i++)
		if (d->base < b->dev[i].base + b->dev[i].len &&
		    b->dev[i].base < d->base + d->len)
			return -EBUSY;
	b->dev[b->n++] = *d;
	return 0;
}

int bus_read(struct bus *b, uint64_t addr, int size, uint64_t *val)
{
	const struct bus_dev *d = bus_find(b, addr, size);

	if (!d || !d->read) {
		b->unclaimed++;
		return -ENOENT;
	}
	return d->read(d->ctx, addr - d->base, size, val);
}

int bus_write(struct bus *b, uint64_t addr, int size, uint64_t val)
{
	const struct bus_dev *d = bus_find(b, addr, size);

	if (!d || !d->write) {
		b->unclaimed++;
		return -ENOENT;
	}
	return d->write(d->ctx, addr - d->base, size, val);
}

int bus_remove(struct bus *b, uint64_t base, struct bus_dev *out)
{
	for (int i = 0; i < b->n; i++)
		if (b->dev[i].base == base) {
			if (out)
				*out = b->dev[i];
			b->dev[i] = b->dev[--b->n];
			return 0;
		}
	return -ENOENT;
}
