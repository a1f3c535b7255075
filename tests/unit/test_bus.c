/* Device bus: range claims, overlap refusal, dispatch offsets, misses. */
#include <criterion/criterion.h>
#include <errno.h>
#include "kernel/lib/bus.h"

struct fake {
	uint64_t last_off, last_val;
	int last_size, reads, writes;
};

static int fake_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct fake *f = ctx;

	f->reads++;
	f->last_off = off;
	f->last_size = size;
	*val = 0x1122334455667788ull;
	return 0;
}

static int fake_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct fake *f = ctx;

	f->writes++;
	f->last_off = off;
	f->last_size = size;
	f->last_val = val;
	return 0;
}

Test(bus, dispatch_with_offsets)
{
	struct bus b = { 0 };
	struct fake f = { 0 };
	uint64_t v = 0;

	cr_assert_eq(bus_add(&b, &(struct bus_dev){ "dev", 0x1000, 0x100, fake_read,
						    fake_write, &f }), 0);
	cr_assert_eq(bus_read(&b, 0x1010, 4, &v), 0);
	cr_assert_eq(f.last_off, 0x10);
	cr_assert_eq(f.last_size, 4);
	cr_assert_eq(v, 0x1122334455667788ull);
	cr_assert_eq(bus_write(&b, 0x10ff, 1, 0xab), 0);
	cr_assert_eq(f.last_off, 0xff);
	cr_assert_eq(f.last_val, 0xab);
}

Test(bus, misses_and_straddles)
{
	struct bus b = { 0 };
	struct fake f = { 0 };
	uint64_t v;

	bus_add(&b, &(struct bus_dev){ "dev", 0x1000, 0x100, fake_read, fake_write, &f });
	cr_assert_eq(bus_read(&b, 0xfff, 1, &v), -ENOENT);
	cr_assert_eq(bus_read(&b, 0x1100, 1, &v), -ENOENT);
	/* An access that runs off the end of the device is not claimed. */
	cr_assert_eq(bus_write(&b, 0x10fe, 4, 1), -ENOENT);
	cr_assert_eq(b.unclaimed, 3);
	cr_assert_eq(f.reads + f.writes, 0);
}

Test(bus, overlap_and_capacity_refused)
{
	struct bus b = { 0 };
	int i;

	cr_assert_eq(bus_add(&b, &(struct bus_dev){ "a", 0x100, 0x10, NULL, NULL, NULL }), 0);
	cr_assert_eq(bus_add(&b, &(struct bus_dev){ "b", 0x10f, 0x10, NULL, NULL, NULL }), -EBUSY);
	cr_assert_eq(bus_add(&b, &(struct bus_dev){ "c", 0x0f8, 0x10, NULL, NULL, NULL }), -EBUSY);
	cr_assert_eq(bus_add(&b, &(struct bus_dev){ "d", 0, 0, NULL, NULL, NULL }), -ENOSPC);
	cr_assert_eq(bus_add(&b, &(struct bus_dev){ "e", ~0ull - 4, 0x10, NULL, NULL, NULL }),
		     -ENOSPC);
	for (i = 1; i < BUS_MAX_DEVS; i++)
		cr_assert_eq(bus_add(&b, &(struct bus_dev){ "f", 0x1000u * i, 0x10, NULL,
							    NULL, NULL }), 0);
	cr_assert_eq(bus_add(&b, &(struct bus_dev){ "g", 0x100000, 0x10, NULL, NULL, NULL }),
		     -ENOSPC);
}

Test(bus, write_only_device_reads_unclaimed)
{
	struct bus b = { 0 };
	struct fake f = { 0 };
	uint64_t v;

	bus_add(&b, &(struct bus_dev){ "exit", 0xf4, 4, NULL, fake_write, &f });
	cr_assert_eq(bus_read(&b, 0xf4, 1, &v), -ENOENT);
	cr_assert_eq(bus_write(&b, 0xf4, 1, 0x10), 0);
	cr_assert_eq(f.last_val, 0x10);
}

/* A device taken off makes room for one that overlaps it (the PCI config
 * ports take over the reset register at 0xcf9, kernel/devices/vpci.c). */
Test(bus, remove_then_overlap)
{
	struct bus b = { 0 };
	struct fake f = { 0 };
	struct bus_dev old;
	uint64_t v;

	cr_assert_eq(bus_add(&b, &(struct bus_dev){ "reset", 0xcf9, 1, fake_read, fake_write, &f }), 0);
	cr_assert_eq(bus_add(&b, &(struct bus_dev){ "other", 0x60, 1, fake_read, fake_write, &f }), 0);
	cr_assert_eq(bus_add(&b, &(struct bus_dev){ "pci", 0xcf8, 8, fake_read, fake_write, &f }),
		     -EBUSY);
	cr_assert_eq(bus_remove(&b, 0xcf8, &old), -ENOENT, "only a device's base matches");
	cr_assert_eq(bus_remove(&b, 0xcf9, &old), 0);
	cr_assert_str_eq(old.name, "reset");
	cr_assert_eq(old.len, 1);
	cr_assert_eq(b.n, 1);
	cr_assert_eq(bus_read(&b, 0xcf9, 1, &v), -ENOENT);
	cr_assert_eq(bus_read(&b, 0x60, 1, &v), 0, "the other device is still there");
	cr_assert_eq(bus_add(&b, &(struct bus_dev){ "pci", 0xcf8, 8, fake_read, fake_write, &f }), 0);
	cr_assert_eq(bus_remove(&b, 0xcf9, NULL), -ENOENT);
}
