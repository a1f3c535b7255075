/*
 * crash: misbehaves on purpose, as chosen by the command line, so the
 * tests can check that the hypervisor stops only this VM:
 *   triple  zero-limit IDT, then INT3: #GP, #DF, shutdown (SDM Vol. 3, 6.15)
 *   ud      zero-limit IDT, then UD2: the same triple fault from a #UD
 *   hlt     CLI; HLT forever: the vCPU never wakes
 *   wild    write to guest-physical 0xF0000000: no RAM, no device there
 *   garbage fill 64 KiB at 8 MiB with pseudo-random bytes, drop the IDT and
 *           jump into them: whatever they do must stay inside this VM
 * If the VM is still running afterwards it says so and exits 0x12.
 */
#include "guest.h"

#define WILD_ADDR	0xF0000000u

struct idt_desc {
	uint16_t limit;
	uint32_t base;
} __attribute__((packed));

static void load_empty_idt(void)
{
	static const struct idt_desc empty = { 0, 0 };

	__asm__ volatile("lidt %0" : : "m"(empty) : "memory");
}

static void survived(const char *mode)
{
	guest_printf("CRASH %s survived\n", mode);
	guest_exit(GUEST_EXIT_SURVIVED);
}

static void crash_triple(void)
{
	guest_puts("CRASH triple: zero-limit IDT, then int3\n");
	load_empty_idt();
	__asm__ volatile("int3" : : : "memory");
	survived("triple");
}

static void crash_ud(void)
{
	guest_puts("CRASH ud: zero-limit IDT, then ud2\n");
	load_empty_idt();
	__asm__ volatile("ud2" : : : "memory");
	survived("ud");
}

static void crash_hlt(void)
{
	guest_puts("CRASH hlt: cli; hlt forever\n");
	for (;;)
		__asm__ volatile("cli; hlt" : : : "memory");
}

static void crash_wild(void)
{
	volatile uint32_t *p = (volatile uint32_t *)(uintptr_t)WILD_ADDR;
	uint32_t v;

	guest_printf("CRASH wild: writing to guest-physical 0x%08x\n",
		     WILD_ADDR);
	*p = 0xdeadbeef;
	v = *p;
	guest_printf("CRASH wild: read back 0x%08x\n", v);
	survived("wild");
}

#define GARBAGE_ADDR	0x800000u
#define GARBAGE_LEN	0x10000u

static void crash_garbage(void)
{
	uint8_t *code = (uint8_t *)(uintptr_t)GARBAGE_ADDR;
	uint32_t x = 0x9e3779b9u, i;

	guest_printf("CRASH garbage: executing %u random bytes at 0x%08x\n",
		     GARBAGE_LEN, GARBAGE_ADDR);
	for (i = 0; i < GARBAGE_LEN; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		code[i] = (uint8_t)x;
	}
	load_empty_idt();
	((void (*)(void))(uintptr_t)GARBAGE_ADDR)();
	survived("garbage");
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	const char *cmd;

	guest_init("crash", magic, info);
	cmd = guest_cmdline(guest_boot_info());
	if (guest_cmdline_has(cmd, "triple"))
		crash_triple();
	else if (guest_cmdline_has(cmd, "ud"))
		crash_ud();
	else if (guest_cmdline_has(cmd, "hlt"))
		crash_hlt();
	else if (guest_cmdline_has(cmd, "wild"))
		crash_wild();
	else if (guest_cmdline_has(cmd, "garbage"))
		crash_garbage();
	guest_puts("CRASH usage: command line must hold triple, ud, hlt, "
		   "wild or garbage\n");
	guest_exit(GUEST_EXIT_FAIL);
}
