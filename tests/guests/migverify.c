/*
 * migverify: the migration-verification guest.
 *
 * Every page of [4 MiB + 4 KiB, top of RAM - 64 KiB) holds a 64-bit
 * counter in its first 8 bytes.  Pass p walks the pages in order and
 * stores p into each, so at any instant the pages read, in order,
 * p, p, ..., p, p-1, ..., p-1: a prefix of the current pass and a suffix
 * of the last one.  Before each store the guest checks the page still
 * holds p-1 (the value it left there one pass ago): a page that lost a
 * write, came back stale or was torn across a migration fails at once
 * with "MIGVERIFY FAIL" and exit code 0x11.  The host checks the same
 * shape from outside with `vm memcheck` (kernel/lib/migverify.c).
 *
 * The page at 4 MiB is a header the host reads: magic, first counter
 * page, page count, and the pass and page the guest is at.
 *
 * Command line: "delay=N" spins N iterations between pages from the second
 * pass on (a low dirty rate; 0, the default, dirties as fast as the vCPU
 * runs; the first pass always runs flat out); "passes=N"
 * stops after N passes with exit code 0x10.
 */
#include "guest.h"
#include "../../kernel/lib/migverify.h"

#define HDR_ADDR	((uint32_t)MIGV_HDR_GPA)
#define REGION_START	(HDR_ADDR + 0x1000u)
#define REGION_TAIL	0x00010000u
#define PAGE_SHIFT	12

static volatile uint64_t *counter(uint32_t i)
{
	return (volatile uint64_t *)(uintptr_t)(REGION_START + (i << PAGE_SHIFT));
}

static void spin(uint64_t n)
{
	for (volatile uint64_t i = 0; i < n; i++)
		__asm__ volatile("pause");
}

static void fail(uint32_t page, uint64_t want, uint64_t got)
{
	guest_printf("MIGVERIFY FAIL page %u want %llu got %llu\n", page,
		     (unsigned long long)want, (unsigned long long)got);
	guest_exit(GUEST_EXIT_FAIL);
}

static void run(volatile struct migv_hdr *h, uint32_t npages, uint64_t delay,
		uint64_t passes)
{
	uint64_t p;

	for (p = 1; !passes || p <= passes; p++) {
		guest_store64(&h->pass, p);
		for (uint32_t i = 0; i < npages; i++) {
			uint64_t got = guest_load64(counter(i));

			if (got != p - 1)
				fail(i, p - 1, got);
			guest_store64(counter(i), p);
			guest_store64(&h->page, i + 1);
			/* Pass 1 runs flat out, so every page holds data
			 * before the guest settles to its pace. */
			if (delay && p > 1)
				spin(delay);
		}
		if (p <= 3 || !(p & 255))
			guest_printf("MIGVERIFY pass %llu ok\n", (unsigned long long)p);
	}
	guest_printf("MIGVERIFY done %llu passes\n", (unsigned long long)passes);
	guest_done();
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	volatile struct migv_hdr *h = (volatile struct migv_hdr *)(uintptr_t)HDR_ADDR;
	uint64_t delay = 0, passes = 0;
	const char *cmd;
	uint32_t end, npages;

	guest_init("migverify", magic, info);
	cmd = guest_cmdline(guest_boot_info());
	end = guest_region_end(guest_boot_info(), REGION_START, REGION_TAIL);
	guest_check("region", end != 0, "mem_upper too small or missing");
	if (!end)
		guest_done();
	npages = (end - REGION_START) >> PAGE_SHIFT;
	guest_cmdline_u64(cmd, "delay", &delay);
	guest_cmdline_u64(cmd, "passes", &passes);
	/* Start from zeros whatever the memory held. */
	for (uint32_t i = 0; i < npages; i++)
		guest_store64(counter(i), 0);
	guest_store64(&h->first, REGION_START);
	guest_store64(&h->npages, npages);
	guest_store64(&h->pass, 0);
	guest_store64(&h->page, 0);
	guest_store64(&h->magic, MIGV_MAGIC);
	guest_printf("MIGVERIFY region 0x%08x-0x%08x pages %u delay %llu\n",
		     REGION_START, end, npages, (unsigned long long)delay);
	run(h, npages, delay, passes);
}
