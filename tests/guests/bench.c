/*
 * bench: exit round-trip and memory-write costs seen from inside a guest,
 * for tests/bench/.  The command line picks one measurement:
 *   op=cpuid|pio|hypercall n=N    N intercepted instructions, cycles each
 *   op=write mb=M passes=P        64-bit stores over M MiB from 4 MiB, P times
 * and prints "BENCH <op> n=<N> cycles=<total>" (TSC cycles).  Waits for a
 * key on the UART between runs when "wait" is given, so the host can
 * switch dirty-logging modes between passes.
 */
#include "guest.h"

#define WRITE_BASE	0x400000u

static bool is_intel(void)
{
	uint32_t r[4];

	guest_cpuid(0, 0, r);
	return r[1] == 0x756e6547;	/* "Genu" */
}

static void hypercall(bool intel)
{
	uint32_t a = 0;

	if (intel)
		__asm__ volatile("vmcall" : "+a"(a) : : "memory");
	else
		__asm__ volatile("vmmcall" : "+a"(a) : : "memory");
}

static uint64_t run_exits(const char *op, uint64_t n)
{
	bool intel = is_intel();
	uint64_t t0 = guest_rdtsc(), i;
	uint32_t r[4];

	for (i = 0; i < n; i++) {
		if (op[0] == 'c')
			guest_cpuid(0, 0, r);
		else if (op[0] == 'p')
			(void)inb(0x1230);
		else
			hypercall(intel);
	}
	return guest_rdtsc() - t0;
}

static uint64_t run_write(uint32_t mb, uint32_t passes)
{
	uint64_t t0 = guest_rdtsc();
	uint32_t p, a, end = WRITE_BASE + mb * 0x100000u;

	for (p = 0; p < passes; p++)
		for (a = WRITE_BASE; a < end; a += 8)
			*(volatile uint64_t *)a = ((uint64_t)p << 32) | a;
	return guest_rdtsc() - t0;
}

static void wait_key(void)
{
	while (!(inb(0x3fd) & 1))
		__asm__ volatile("pause");
	(void)inb(0x3f8);
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	const char *cmd;
	uint64_t n = 100000, mb = 16, passes = 4, runs = 1, r;

	guest_init("bench", magic, info);
	cmd = guest_cmdline(guest_boot_info());
	guest_cmdline_u64(cmd, "n", &n);
	guest_cmdline_u64(cmd, "mb", &mb);
	guest_cmdline_u64(cmd, "passes", &passes);
	guest_cmdline_u64(cmd, "runs", &runs);
	for (r = 0; r < runs; r++) {
		if (guest_cmdline_has(cmd, "wait"))
			wait_key();
		if (guest_cmdline_has(cmd, "op=write"))
			guest_printf("BENCH write bytes=%llu cycles=%llu\n",
				     (unsigned long long)(mb * passes << 20),
				     (unsigned long long)run_write((uint32_t)mb, (uint32_t)passes));
		else if (guest_cmdline_has(cmd, "op=cpuid"))
			guest_printf("BENCH cpuid n=%llu cycles=%llu\n", (unsigned long long)n,
				     (unsigned long long)run_exits("cpuid", n));
		else if (guest_cmdline_has(cmd, "op=pio"))
			guest_printf("BENCH pio n=%llu cycles=%llu\n", (unsigned long long)n,
				     (unsigned long long)run_exits("pio", n));
		else if (guest_cmdline_has(cmd, "op=hypercall"))
			guest_printf("BENCH hypercall n=%llu cycles=%llu\n", (unsigned long long)n,
				     (unsigned long long)run_exits("hypercall", n));
	}
	guest_done();
}
