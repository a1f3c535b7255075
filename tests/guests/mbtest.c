/*
 * mbtest: what a test-suite kernel (kvm-unit-tests style) expects from a
 * Multiboot loader and the PC it runs on.
 *   - argv[0]: the command line's first word is the kernel's file name
 *     (QEMU's -kernel does this), then the operator's words
 *   - the first module holds KEY=VALUE lines (kvm-unit-tests' environment,
 *     QEMU -initrd); the test's env file says MBTEST_KEY=hello-env
 *   - GDTR at entry points at a valid flat GDT (CS 0x08, data 0x10), not
 *     at guest address 0: with the loader's GDT loaded again, a #UD taken
 *     through this guest's IDT returns (the IRET reloads CS from it)
 *   - fw_cfg at 0x510/0x511: signature "QEMU", CPU count, RAM size
 *   - pc-testdev 0xe0 reads back 1-, 2- and 4-byte writes; 0xe4 takes one
 *   - PIT channel 0 at 1 kHz through the 8259 (ICW1-4) and the LAPIC's
 *     LINT0 in ExtINT mode (virtual wire, SDM Vol. 3A 11.5.1): HLT wakes
 *     on IRQ0 ticks that are never early against the TSC
 * Command line words: "expect=NAME" is the wanted argv[0].
 */
#include "guest.h"

#define LAPIC		0xfee00000u
#define LVT_LINT0	0x350
#define APIC_SVR	0x0f0
#define GDT_GPA		0x9fc00u
#define VEC_PIT		0x20
#define GATE_INTR32	0x8e
#define PIT_HZ		1193182u

struct gate {
	uint16_t off_lo, sel;
	uint8_t zero, type;
	uint16_t off_hi;
} __attribute__((packed));

struct dtr {
	uint16_t limit;
	uint32_t base;
} __attribute__((packed));

struct mod {
	uint32_t start, end, string, reserved;
};

extern struct dtr mb_entry_gdtr;
extern const uint32_t exc_stub_table[32];
volatile uint32_t mbt_ticks, mbt_ud;
void mbt_irq0(void);
void mbt_ud_stub(void);

/* IRQ0: count, non-specific EOI to the master 8259, return.  #UD: count,
 * step over the 2-byte UD2, return. */
__asm__(".text\n"
	".globl mbt_irq0\nmbt_irq0:\n"
	"\tpushl %eax\n\tlock incl mbt_ticks\n"
	"\tmovb $0x20, %al\n\toutb %al, $0x20\n\tpopl %eax\n\tiret\n"
	".globl mbt_ud_stub\nmbt_ud_stub:\n"
	"\tlock incl mbt_ud\n\taddl $2, (%esp)\n\tiret\n");

static struct gate idt[256] __attribute__((aligned(8)));

static void set_gate(int vec, void (*fn)(void))
{
	uint32_t a = (uint32_t)(uintptr_t)fn;

	idt[vec] = (struct gate){ (uint16_t)a, 0x08, 0, GATE_INTR32, (uint16_t)(a >> 16) };
}

static uint64_t udiv(uint64_t n, uint32_t d)
{
	uint64_t q = 0, r = 0;

	for (int i = 63; i >= 0; i--) {
		r = (r << 1) | ((n >> i) & 1);
		if (r >= d) {
			r -= d;
			q |= 1ull << i;
		}
	}
	return q;
}

static bool word_is(const char *s, const char *w)
{
	size_t n = strlen(w);

	return !memcmp(s, w, n) && (s[n] == ' ' || s[n] == 0);
}

static void check_argv0(const char *cl)
{
	const char *e = cl;

	/* expect=NAME is somewhere after the first word. */
	while (*e && !(e[0] == ' ' && !memcmp(e + 1, "expect=", 7)))
		e++;
	if (*e) {
		char want[64];
		size_t n = 0;

		e += 8;
		while (e[n] && e[n] != ' ' && n < sizeof(want) - 1) {
			want[n] = e[n];
			n++;
		}
		want[n] = 0;
		guest_check("argv0_is_program", word_is(cl, want), "cmdline \"%s\", want \"%s\" first",
			    cl, want);
	} else {
		guest_check("argv0_is_program", false, "no expect= in \"%s\"", cl);
	}
}

static void check_env(const struct mb_info *bi)
{
	const struct mod *m = (const struct mod *)(uintptr_t)bi->mods_addr;
	const char *p, *end, *key = "MBTEST_KEY=";
	bool found = false;

	if (!(bi->flags & (1u << 3)) || bi->mods_count < 1) {
		guest_check("env_module", false, "flags 0x%x mods_count %u", bi->flags,
			    bi->mods_count);
		return;
	}
	guest_check("env_module_aligned", (m->start & 0xfff) == 0 && m->end > m->start,
		    "module 0 at 0x%x-0x%x", m->start, m->end);
	p = (const char *)(uintptr_t)m->start;
	end = (const char *)(uintptr_t)m->end;
	/* Lines of KEY=VALUE; find ours at a line start. */
	for (const char *l = p; l < end; ) {
		size_t n = strlen(key);

		if ((size_t)(end - l) >= n + 9 && !memcmp(l, key, n) &&
		    !memcmp(l + n, "hello-env", 9))
			found = true;
		while (l < end && *l != '\n')
			l++;
		l++;
	}
	guest_check("env_key_value", found, "no MBTEST_KEY=hello-env line in %u bytes",
		    m->end - m->start);
}

static void check_gdt(void)
{
	const uint32_t *g = (const uint32_t *)GDT_GPA;
	struct dtr d = { 0x17, GDT_GPA }, i = { sizeof(idt) - 1, (uint32_t)(uintptr_t)idt };

	guest_check("entry_gdtr", mb_entry_gdtr.base == GDT_GPA && mb_entry_gdtr.limit == 0x17,
		    "GDTR at entry base 0x%x limit 0x%x", mb_entry_gdtr.base,
		    mb_entry_gdtr.limit);
	guest_check("entry_gdt_flat", g[0] == 0 && g[1] == 0 && g[2] == 0xffff &&
		    g[3] == 0x00cf9b00u && g[4] == 0xffff && g[5] == 0x00cf9300u,
		    "GDT %08x %08x %08x %08x %08x %08x", g[0], g[1], g[2], g[3], g[4], g[5]);
	/* Back onto the loader's GDT, as a kernel that never loaded its own,
	 * then a #UD: the IRET reloads CS 0x08 from that GDT. */
	set_gate(6, mbt_ud_stub);
	__asm__ volatile("lgdt %0\n\tlidt %1\n\tljmp $0x08, $1f\n1:\n"
			 "\tmovw $0x10, %%ax\n\tmovw %%ax, %%ds\n\tmovw %%ax, %%ss\n"
			 "\tud2\n" : : "m"(d), "m"(i) : "eax", "memory");
	guest_check("ud_before_own_gdt", mbt_ud == 1, "%u #UD handled", mbt_ud);
}

static void check_fwcfg(const struct mb_info *bi)
{
	char sig[5];
	uint32_t cpus = 0;
	uint64_t ram = 0;

	outw(0x510, 0x0000);			/* FW_CFG_SIGNATURE */
	for (int k = 0; k < 4; k++)
		sig[k] = (char)inb(0x511);
	sig[4] = 0;
	guest_check("fwcfg_signature", !memcmp(sig, "QEMU", 4), "signature \"%s\"", sig);
	outw(0x510, 0x0005);			/* FW_CFG_NB_CPUS, 16-bit LE */
	for (int k = 0; k < 2; k++)
		cpus |= (uint32_t)inb(0x511) << (8 * k);
	guest_check("fwcfg_cpus", cpus == 1, "CPU count %u", cpus);
	outw(0x510, 0x0003);			/* FW_CFG_RAM_SIZE, 64-bit LE */
	for (int k = 0; k < 8; k++)
		ram |= (uint64_t)inb(0x511) << (8 * k);
	guest_check("fwcfg_ram", ram == 0x100000ull + bi->mem_upper * 1024ull,
		    "RAM size 0x%x%08x, mem_upper %u KiB", (uint32_t)(ram >> 32),
		    (uint32_t)ram, bi->mem_upper);
}

static void check_testdev(void)
{
	uint32_t b, w, l;

	outl(0xe0, 0);
	outb(0xe0, 0x5a);
	b = inb(0xe0);
	outw(0xe0, 0xbeef);
	w = inw(0xe0);
	outl(0xe0, 0xcafef00du);
	l = inl(0xe0);
	guest_check("testdev_scratch", b == 0x5a && w == 0xbeef && l == 0xcafef00du,
		    "read back 0x%x 0x%x 0x%x", b, w, l);
	outl(0xe4, 0);				/* flush page: accepted, no effect */
	guest_check("testdev_e4", inl(0xe0) == 0xcafef00du, "scratch 0x%x after 0xe4",
		    inl(0xe0));
}

static void check_pit(void)
{
	uint32_t r[4], div = PIT_HZ / 1000;
	uint64_t hz, t0, dt, end;

	guest_cpuid(0x15, 0, r);
	hz = r[2] ? udiv((uint64_t)r[2] * (r[1] ? r[1] : 1), r[0] ? r[0] : 1) : 0;
	set_gate(VEC_PIT, mbt_irq0);
	/* 8259 master: ICW1 edge+ICW4, ICW2 base 0x20, ICW3 slave on 2,
	 * ICW4 8086 mode; then mask all but IRQ0.  Slave: all masked. */
	outb(0x20, 0x11);
	outb(0x21, VEC_PIT);
	outb(0x21, 0x04);
	outb(0x21, 0x01);
	outb(0xa0, 0x11);
	outb(0xa1, 0x28);
	outb(0xa1, 0x02);
	outb(0xa1, 0x01);
	outb(0xa1, 0xff);
	outb(0x21, 0xfe);
	/* LAPIC enabled, LINT0 ExtINT, unmasked: the 8259 is the wire. */
	*(volatile uint32_t *)(LAPIC + APIC_SVR) = 0x1ff;
	*(volatile uint32_t *)(LAPIC + LVT_LINT0) = 0x700;
	outb(0x43, 0x34);			/* channel 0, lo/hi, rate generator */
	outb(0x40, (uint8_t)div);
	outb(0x40, (uint8_t)(div >> 8));
	t0 = guest_rdtsc();
	end = t0 + (hz ? hz * 5 : 5000000000ull);
	while (mbt_ticks < 20 && guest_rdtsc() < end)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
	dt = guest_rdtsc() - t0;
	outb(0x21, 0xff);
	/* 20 ticks of 1 ms: never fewer than 19 ms (coalescing may only
	 * make them fewer, never early). */
	guest_check("pit_ticks_wake_hlt", mbt_ticks >= 20, "%u IRQ0 ticks", mbt_ticks);
	guest_check("pit_not_early", hz && dt >= udiv(hz * 19, 1000), "%u ticks in %u us",
		    mbt_ticks, hz ? (uint32_t)udiv(dt, (uint32_t)udiv(hz, 1000000)) : 0);
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	const char *cl;

	guest_init("mbtest", magic, info);
	for (int v = 0; v < 32; v++)
		set_gate(v, (void (*)(void))exc_stub_table[v]);
	cl = guest_cmdline(info);
	check_argv0(cl);
	check_env(info);
	check_gdt();
	check_fwcfg(info);
	check_testdev();
	check_pit();
	guest_done();
}
