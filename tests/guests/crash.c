/*
 * crash: misbehaves on purpose, as chosen by the command line, so the
 * tests can check that the hypervisor stops only this VM:
 *   triple  zero-limit IDT, then INT3: #GP, #DF, shutdown (SDM Vol. 3, 6.15)
 *   ud      zero-limit IDT, then UD2: the same triple fault from a #UD
 *   hlt     CLI; HLT forever: the vCPU never wakes
 *   wild    write to guest-physical 0xF0000000: no RAM, no device there
 *   garbage fill 64 KiB at 8 MiB with pseudo-random bytes, drop the IDT and
 *           jump into them: whatever they do must stay inside this VM
 *   invd    INVD three times: the hypervisor must let the guest go on (it
 *           then passes its checks and exits 0x10)
 *   tss     LTR, then a far JMP to another TSS: a task switch (SDM Vol. 3A
 *           8.3), which Tern does not emulate: the VM alone must stop
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

static void crash_invd(void)
{
	volatile uint32_t after = 0;
	int i;

	guest_puts("CRASH invd: three INVDs\n");
	for (i = 0; i < 3; i++) {
		__asm__ volatile("invd" : : : "memory");
		after++;
	}
	guest_check("invd_continues", after == 3, "after=%u", after);
	guest_done();
}

/* A 32-bit TSS (SDM Vol. 3A 8.2.1): only its size matters here. */
struct tss32 {
	uint32_t words[26];
} __attribute__((aligned(16)));

static struct tss32 tss_cur, tss_next;

/* The entry.S GDT (code 0x08, data 0x10) plus two available 32-bit TSS
 * descriptors (type 9): 0x18 becomes TR, 0x20 is the target. */
static uint64_t tss_gdt[5] __attribute__((aligned(8)));

static uint64_t tss_desc(const struct tss32 *t)
{
	uint64_t base = (uintptr_t)t, limit = sizeof(*t) - 1;

	return (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ull << 40 |
	       ((limit >> 16) & 0xf) << 48 | (base >> 24) << 56;
}

static void crash_tss(void)
{
	struct { uint16_t limit; uint32_t base; } __attribute__((packed)) d;

	tss_gdt[0] = 0;
	tss_gdt[1] = 0x00CF9B000000FFFFull;
	tss_gdt[2] = 0x00CF93000000FFFFull;
	tss_gdt[3] = tss_desc(&tss_cur);
	tss_gdt[4] = tss_desc(&tss_next);
	d.limit = sizeof(tss_gdt) - 1;
	d.base = (uintptr_t)tss_gdt;
	guest_puts("CRASH tss: ljmp to a TSS (task switch)\n");
	__asm__ volatile("lgdt %0\n\tmov $0x18, %%ax\n\tltr %%ax"
			 : : "m"(d) : "eax", "memory");
	__asm__ volatile("ljmp $0x20, $0" : : : "memory");
	survived("tss");
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
	else if (guest_cmdline_has(cmd, "invd"))
		crash_invd();
	else if (guest_cmdline_has(cmd, "tss"))
		crash_tss();
	guest_puts("CRASH usage: command line must hold triple, ud, hlt, "
		   "wild, garbage, invd or tss\n");
	guest_exit(GUEST_EXIT_FAIL);
}
