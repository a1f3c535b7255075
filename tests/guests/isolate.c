/*
 * isolate: proves that guests cannot see each other's memory.
 *
 *   fill   writes a marker (magic + the page's own address) at the start
 *          of every page from 4 MiB to the end of RAM, reports, then keeps
 *          running so the marker stays live in host memory.
 *   scan   reads the start of every page of its own RAM: it must find no
 *          marker (another VM's memory is not reachable, and memory handed
 *          back by a destroyed VM was scrubbed), and every page above
 *          4 MiB must still be zero.
 */
#include "guest.h"

#define FILL_START	0x400000u
#define PAGE		4096u
#define MARKER		0x4e52455454534554ull	/* "TESTTERN" */

static uint32_t ram_end(const struct mb_info *bi)
{
	return 0x100000u + bi->mem_upper * 1024u;
}

static void fill(uint32_t end)
{
	uint32_t a, n = 0;

	for (a = FILL_START; a + PAGE <= end; a += PAGE, n++) {
		volatile uint64_t *p = (volatile uint64_t *)a;

		p[0] = MARKER;
		p[1] = a;
	}
	guest_printf("ISOLATE filled %u pages\n", n);
	for (;;)
		__asm__ volatile("pause");
}

static void scan(uint32_t end)
{
	uint32_t a, markers = 0, dirty = 0;

	for (a = 0; a + PAGE <= end; a += PAGE) {
		volatile uint64_t *p = (volatile uint64_t *)a;

		if (p[0] == MARKER)
			markers++;
		if (a >= FILL_START && (p[0] | p[1]))
			dirty++;
	}
	guest_check("no_foreign_marker", markers == 0, "%u pages carry another VM's marker",
		    markers);
	guest_check("fresh_ram_zero", dirty == 0, "%u pages above 4 MiB not zero", dirty);
	guest_done();
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	const struct mb_info *bi;
	const char *cmd;

	guest_init("isolate", magic, info);
	bi = guest_boot_info();
	cmd = guest_cmdline(bi);
	if (!bi || !(bi->flags & MB_INFO_MEM)) {
		guest_check("mem_info", false, "no memory information");
		guest_done();
	}
	if (guest_cmdline_has(cmd, "fill"))
		fill(ram_end(bi));
	if (guest_cmdline_has(cmd, "scan"))
		scan(ram_end(bi));
	guest_check("cmdline", false, "expected 'fill' or 'scan'");
	guest_done();
}
