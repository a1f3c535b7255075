/* Unit tests for kernel/devices/model/fwcfg.c: the items Multiboot test
 * kernels read, reads past the end, unknown keys, save/load. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "kernel/devices/model/fwcfg.h"

static struct fwcfg f;

static uint64_t read_n(unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)fwcfg_read(&f) << (8 * i);
	return v;
}

static void setup(void)
{
	fwcfg_reset(&f, 256ull << 20, 4);
}

TestSuite(fwcfg, .init = setup);

Test(fwcfg, signature_and_id)
{
	char sig[5] = { 0 };

	fwcfg_select(&f, FWCFG_SIGNATURE);
	for (int i = 0; i < 4; i++)
		sig[i] = (char)fwcfg_read(&f);
	cr_assert_str_eq(sig, "QEMU");
	cr_assert_eq(fwcfg_read(&f), 0);			/* past the end */
	fwcfg_select(&f, FWCFG_ID);
	cr_assert_eq(read_n(4), 1);
}

Test(fwcfg, ram_and_cpus)
{
	fwcfg_select(&f, FWCFG_RAM_SIZE);
	cr_assert_eq(read_n(8), 256ull << 20);
	fwcfg_select(&f, FWCFG_NB_CPUS);
	cr_assert_eq(read_n(2), 4);
	fwcfg_select(&f, FWCFG_MAX_CPUS);
	cr_assert_eq(read_n(4), 4);				/* 2 bytes, then 0 */
	/* Reselecting starts over. */
	fwcfg_select(&f, FWCFG_NB_CPUS);
	cr_assert_eq(fwcfg_read(&f), 4);
}

Test(fwcfg, unknown_key_and_empty_dir)
{
	fwcfg_select(&f, 0x4242);
	cr_assert_eq(read_n(8), 0);
	fwcfg_select(&f, FWCFG_FILE_DIR);
	cr_assert_eq(read_n(4), 0);
}

Test(fwcfg, save_load)
{
	struct fwcfg g;
	uint8_t b[FWCFG_STATE_LEN];

	fwcfg_select(&f, FWCFG_RAM_SIZE);
	fwcfg_read(&f);
	fwcfg_read(&f);
	fwcfg_read(&f);
	fwcfg_save(&f, b);
	fwcfg_reset(&g, 256ull << 20, 4);
	cr_assert_eq(fwcfg_load(&g, b, sizeof(b)), 0);
	cr_assert_eq(fwcfg_read(&g), (uint8_t)((256ull << 20) >> 24));
	b[1] = 1;
	cr_assert_eq(fwcfg_load(&g, b, sizeof(b)), -EINVAL);
	cr_assert_eq(fwcfg_load(&g, b, sizeof(b) - 1), -EINVAL);
	cr_assert_eq(g.off, 4);
}
