/*
 * dirty: memory dirtier for the dirty-log invariant test.  Picks pages
 * in [4 MiB, top of RAM - 64 KiB) with xorshift32 and stores a global
 * 64-bit sequence number (incremented on every write) in the first 8
 * bytes of the page, so a checker can order any page against any
 * harvest.  Command line: "writes=N" stops after N writes (default:
 * forever) and then checks every write by replaying the PRNG; "seed=N"
 * changes the PRNG seed.
 */
#include "guest.h"

#define REGION_START	0x00400000u		/* 4 MiB: above the image */
#define REGION_TAIL	0x00010000u		/* 64 KiB left alone at the top */
#define PAGE_SHIFT	12
#define PROGRESS_MASK	((1ull << 20) - 1)
#define DEFAULT_SEED	0x2545F491u

static uint64_t seq;

/*
 * Marsaglia, "Xorshift RNGs" (J. Stat. Softw. 8(14), 2003): the
 * (13, 17, 5) triple has full period 2^32 - 1 for non-zero state.
 */
static uint32_t xorshift32(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

static void dirty_loop(uint32_t npages, uint64_t limit, uint32_t seed)
{
	uint32_t page;

	while (!limit || seq < limit) {
		/* Multiply-shift maps the 32-bit draw onto [0, npages). */
		page = (uint32_t)(((uint64_t)xorshift32(&seed) * npages) >> 32);
		seq++;
		guest_store64((volatile uint64_t *)(uintptr_t)
			(REGION_START + (page << PAGE_SHIFT)), seq);
		if (!(seq & PROGRESS_MASK))
			guest_printf("DIRTY progress %llu\n",
				     (unsigned long long)seq);
	}
}

/*
 * After a bounded run, replay the PRNG: the page of write i must hold a
 * value in [i, limit].  Catches lost or misplaced writes, e.g. across a
 * migration that happened while the guest ran.
 */
static void verify(uint32_t npages, uint64_t limit, uint32_t seed)
{
	uint64_t i, v = 0;
	uint32_t page = 0;

	for (i = 1; i <= limit; i++) {
		page = (uint32_t)(((uint64_t)xorshift32(&seed) * npages) >> 32);
		v = *(volatile uint64_t *)(uintptr_t)
			(REGION_START + (page << PAGE_SHIFT));
		if (v < i || v > limit)
			break;
	}
	guest_check("verify", i > limit, "write %llu page %u holds %llu",
		    (unsigned long long)i, page, (unsigned long long)v);
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	const char *cmd;
	uint64_t limit = 0, seed = DEFAULT_SEED;
	uint32_t end, npages;

	guest_init("dirty", magic, info);
	cmd = guest_cmdline(guest_boot_info());
	end = guest_region_end(guest_boot_info(), REGION_START, REGION_TAIL);
	guest_check("region", end != 0, "mem_upper too small or missing");
	if (!end)
		guest_done();
	npages = (end - REGION_START) >> PAGE_SHIFT;
	guest_cmdline_u64(cmd, "writes", &limit);
	if (guest_cmdline_u64(cmd, "seed", &seed) && !(uint32_t)seed)
		seed = DEFAULT_SEED;	/* xorshift state must be non-zero */
	guest_printf("DIRTY region 0x%08x-0x%08x pages %u writes %llu "
		     "seed 0x%x\n", REGION_START, end, npages, (unsigned long long)limit,
		     (uint32_t)seed);
	dirty_loop(npages, limit, (uint32_t)seed);
	guest_printf("DIRTY done %llu\n", (unsigned long long)seq);
	guest_check("writes", seq == limit, "seq %llu", (unsigned long long)seq);
	verify(npages, limit, (uint32_t)seed);
	guest_done();
}
