/*
 * mmio: instruction forms against the hypervisor's test device, a 4 KiB
 * register file at guest-physical 0xFEB00000 (offset 0: read-only ID
 * 'TEST').  Paging is off, so every access below is an MMIO exit the
 * hypervisor must decode and emulate.  The exact instruction forms are
 * chosen with inline asm so the compiler cannot pick others.
 *
 * With the command-line word `segs` it also reaches the device through
 * FS:, GS: and SS: overrides on segments whose bases are non-zero, so the
 * hypervisor must use the guest's current segment bases, not stale ones.
 */
#include "guest.h"

#ifndef DEV_BASE		/* overridable to self-test the checks against RAM */
#define DEV_BASE	0xFEB00000u
#endif
#define DEV_ID		0x54455354u	/* 'TEST' */
#define STRING_DWORDS	64

/* EFLAGS bits the ALU checks compare (SDM Vol. 1, 3.4.3.1). */
#define FL_CF		(1u << 0)
#define FL_ZF		(1u << 6)
#define FL_SF		(1u << 7)
#define FL_OF		(1u << 11)
#define FL_MASK		(FL_CF | FL_ZF | FL_SF | FL_OF)

static uint32_t ram_src[STRING_DWORDS];
static uint32_t ram_dst[STRING_DWORDS];

static inline volatile void *reg(uint32_t off)
{
	return (volatile void *)(uintptr_t)(DEV_BASE + off);
}

static uint32_t rd32(uint32_t off)
{
	uint32_t v;

	__asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(reg(off)) : "memory");
	return v;
}

static uint16_t rd16(uint32_t off)
{
	uint16_t v;

	__asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(reg(off)) : "memory");
	return v;
}

static uint8_t rd8(uint32_t off)
{
	uint8_t v;

	__asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(reg(off)) : "memory");
	return v;
}

static void wr32(uint32_t off, uint32_t v)
{
	__asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(reg(off)) : "memory");
}

static void wr16(uint32_t off, uint16_t v)
{
	__asm__ volatile("movw %0, (%1)" : : "r"(v), "r"(reg(off)) : "memory");
}

static void wr8(uint32_t off, uint8_t v)
{
	__asm__ volatile("movb %0, (%1)" : : "q"(v), "r"(reg(off)) : "memory");
}

static void check_id(void)
{
	uint32_t id = rd32(0);

	guest_check("id_register", id == DEV_ID, "read 0x%08x", id);
	wr32(0, 0);
	id = rd32(0);
	guest_check("id_read_only", id == DEV_ID, "read 0x%08x after write",
		    id);
}

static void check_sizes(void)
{
	uint32_t v;
	uint8_t b0, b1, b2, b3;
	uint16_t w0, w1;

	wr32(0x10, 0x11223344);
	v = rd32(0x10);
	guest_check("mov_dword", v == 0x11223344, "read 0x%08x", v);
	b0 = rd8(0x10);
	b1 = rd8(0x11);
	b2 = rd8(0x12);
	b3 = rd8(0x13);
	guest_check("mov_byte_read", b0 == 0x44 && b1 == 0x33 && b2 == 0x22 &&
		    b3 == 0x11, "bytes %x %x %x %x", b0, b1, b2, b3);
	w0 = rd16(0x10);
	w1 = rd16(0x12);
	guest_check("mov_word_read", w0 == 0x3344 && w1 == 0x1122,
		    "words %x %x", w0, w1);
	wr8(0x11, 0xaa);
	v = rd32(0x10);
	guest_check("mov_byte_write", v == 0x1122aa44, "read 0x%08x", v);
	wr16(0x12, 0xbeef);
	v = rd32(0x10);
	guest_check("mov_word_write", v == 0xbeefaa44, "read 0x%08x", v);
}

/* MOV with an immediate source (C7/C6 /0) and with a moffs (A1/A3). */
static void check_imm_moffs(void)
{
	uint32_t v, m;

	__asm__ volatile("movl $0xcafef00d, (%0)\n\t"
			 "movw $0x1234, 4(%0)\n\t"
			 "movb $0x56, 6(%0)\n\t"
			 "movb $0x78, 7(%0)"
			 : : "r"(reg(0x20)) : "memory");
	v = rd32(0x20);
	m = rd32(0x24);
	guest_check("mov_imm_store", v == 0xcafef00d && m == 0x78561234,
		    "read 0x%08x 0x%08x", v, m);
	__asm__ volatile("movl %%eax, %c1"
			 : : "a"(0x0badcafeu), "i"(DEV_BASE + 0x28) : "memory");
	__asm__ volatile("movl %c1, %%eax"
			 : "=a"(v) : "i"(DEV_BASE + 0x28) : "memory");
	guest_check("mov_moffs", v == 0x0badcafe, "read 0x%08x", v);
}

static void check_extend(void)
{
	uint32_t zb, sb, zw, sw, zb3, sb3;
	volatile void *p = reg(0x30);

	wr32(0x30, 0x8081f07f);
	__asm__ volatile("movzbl (%1), %0" : "=r"(zb) : "r"(p) : "memory");
	__asm__ volatile("movsbl (%1), %0" : "=r"(sb) : "r"(p) : "memory");
	__asm__ volatile("movzwl (%1), %0" : "=r"(zw) : "r"(p) : "memory");
	__asm__ volatile("movswl (%1), %0" : "=r"(sw) : "r"(p) : "memory");
	__asm__ volatile("movzbl 3(%1), %0" : "=r"(zb3) : "r"(p) : "memory");
	__asm__ volatile("movsbl 3(%1), %0" : "=r"(sb3) : "r"(p) : "memory");
	guest_check("movzx_byte", zb == 0x7f && zb3 == 0x80, "0x%x 0x%x",
		    zb, zb3);
	guest_check("movsx_byte", sb == 0x7f && sb3 == 0xffffff80,
		    "0x%x 0x%x", sb, sb3);
	guest_check("movzx_word", zw == 0xf07f, "0x%x", zw);
	guest_check("movsx_word", sw == 0xfffff07f, "0x%x", sw);
}

/* First dword index at device offset `off` that differs from want[], or -1. */
static int first_mismatch(uint32_t off, const uint32_t *want, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (rd32(off + 4 * i) != want[i])
			return (int)i;
	return -1;
}

static void check_stos(void)
{
	uint32_t want[STRING_DWORDS], edi, ecx, before, after;
	unsigned int i;
	int bad;

	wr32(0xfc, 0x600df00d);
	wr32(0x200, 0x600df00d);
	__asm__ volatile("cld\n\trep stosl"
			 : "=D"(edi), "=c"(ecx)
			 : "D"(reg(0x100)), "c"(STRING_DWORDS), "a"(0xc0ffee11u)
			 : "memory");
	for (i = 0; i < STRING_DWORDS; i++)
		want[i] = 0xc0ffee11u;
	bad = first_mismatch(0x100, want, STRING_DWORDS);
	before = rd32(0xfc);
	after = rd32(0x200);
	guest_check("rep_stosd", bad < 0 && before == 0x600df00d &&
		    after == 0x600df00d, "dword %d read 0x%08x guards %08x %08x",
		    bad, bad < 0 ? 0 : rd32(0x100 + 4 * (uint32_t)bad),
		    before, after);
	guest_check("rep_stosd_regs", ecx == 0 && edi == DEV_BASE + 0x200,
		    "ecx=0x%x edi=0x%x", ecx, edi);
}

static void movs(volatile void *dst, const volatile void *src,
		 unsigned int n, uint32_t *esi, uint32_t *edi, uint32_t *ecx)
{
	__asm__ volatile("cld\n\trep movsl"
			 : "=S"(*esi), "=D"(*edi), "=c"(*ecx)
			 : "S"(src), "D"(dst), "c"(n)
			 : "memory");
}

static void check_movs(void)
{
	uint32_t esi, edi, ecx, v;
	unsigned int i;
	int bad;

	for (i = 0; i < STRING_DWORDS; i++) {
		ram_src[i] = (i * 0x01010101u) ^ 0x5a5a0000u ^ (i << 28);
		ram_dst[i] = 0;
	}
	movs(reg(0x300), ram_src, STRING_DWORDS, &esi, &edi, &ecx);
	bad = first_mismatch(0x300, ram_src, STRING_DWORDS);
	guest_check("rep_movsd_to_mmio", bad < 0, "dword %d", bad);
	guest_check("rep_movsd_to_mmio_regs", ecx == 0 &&
		    esi == (uint32_t)(uintptr_t)(ram_src + STRING_DWORDS) &&
		    edi == DEV_BASE + 0x400, "esi=0x%x edi=0x%x ecx=0x%x",
		    esi, edi, ecx);
	movs(ram_dst, reg(0x300), STRING_DWORDS, &esi, &edi, &ecx);
	for (i = 0; i < STRING_DWORDS && ram_dst[i] == ram_src[i]; i++)
		;
	v = i < STRING_DWORDS ? ram_dst[i] : 0;
	guest_check("rep_movsd_from_mmio", i == STRING_DWORDS,
		    "dword %u read 0x%08x want 0x%08x", i, v,
		    i < STRING_DWORDS ? ram_src[i] : 0);
	guest_check("rep_movsd_from_mmio_regs", ecx == 0 &&
		    esi == DEV_BASE + 0x400 &&
		    edi == (uint32_t)(uintptr_t)(ram_dst + STRING_DWORDS),
		    "esi=0x%x edi=0x%x ecx=0x%x", esi, edi, ecx);
}

/* DF=1: the string walks down from the last element (SDM Vol. 1, 3.4.3.2). */
static void check_movs_backward(void)
{
	uint32_t esi, edi, ecx;
	int bad;

	__asm__ volatile("std\n\trep movsl\n\tcld"
			 : "=S"(esi), "=D"(edi), "=c"(ecx)
			 : "S"(ram_src + 7), "D"(reg(0x51c)), "c"(8)
			 : "memory");
	bad = first_mismatch(0x500, ram_src, 8);
	guest_check("rep_movsd_backward", bad < 0 && ecx == 0 &&
		    esi == (uint32_t)(uintptr_t)ram_src - 4 &&
		    edi == DEV_BASE + 0x4fc, "dword %d esi=0x%x edi=0x%x",
		    bad, esi, edi);
}

#define ALU(insn, ptr, src, cons) ({					\
	uint32_t fl_;							\
	__asm__ volatile(insn " %2, (%1)\n\tpushfl\n\tpopl %0"		\
			 : "=r"(fl_) : "r"(ptr), cons(src)		\
			 : "memory", "cc");				\
	fl_ & FL_MASK;							\
})

static void alu_check(const char *name, uint32_t off, uint32_t want,
		      uint32_t flags, uint32_t want_flags)
{
	uint32_t v = rd32(off);

	guest_check(name, v == want && flags == want_flags,
		    "value 0x%08x (want 0x%08x) flags 0x%x (want 0x%x)",
		    v, want, flags, want_flags);
}

static void check_alu(void)
{
	volatile void *p = reg(0x40);
	uint32_t fl;

	wr32(0x40, 0xffffffff);
	fl = ALU("addl", p, 1u, "r");
	alu_check("add_mem_carry", 0x40, 0, fl, FL_CF | FL_ZF);
	wr32(0x40, 0x7fffffff);
	fl = ALU("addl", p, 1, "i");		/* 83 /0 ib */
	alu_check("add_mem_imm_overflow", 0x40, 0x80000000, fl, FL_SF | FL_OF);
	wr32(0x40, 0x0f0f0000);
	fl = ALU("orl", p, 0x80u, "r");
	alu_check("or_mem", 0x40, 0x0f0f0080, fl, 0);
	fl = ALU("orb", p, 0x80, "i");		/* 80 /1 ib, byte operand */
	alu_check("or_mem_byte_imm", 0x40, 0x0f0f0080, fl, FL_SF);
	wr32(0x40, 0xf0f0f0f0);
	fl = ALU("andl", p, 0x0f0f0f0fu, "r");
	alu_check("and_mem", 0x40, 0, fl, FL_ZF);
	wr32(0x40, 0x80000000);
	fl = ALU("xorl", p, 1u, "r");
	alu_check("xor_mem", 0x40, 0x80000001, fl, FL_SF);
	fl = ALU("xorl", p, 0x12345678, "i");	/* 81 /6 id */
	alu_check("xor_mem_imm", 0x40, 0x92345679, fl, FL_SF);
}

static void check_test_cmp(void)
{
	volatile void *p = reg(0x44);
	uint32_t fl, reg_v = 5;

	wr32(0x44, 0x00ff0000);
	fl = ALU("testl", p, 0x0000ff00u, "r");
	alu_check("test_mem_zero", 0x44, 0x00ff0000, fl, FL_ZF);
	fl = ALU("testl", p, 0x00010000u, "r");
	alu_check("test_mem_nonzero", 0x44, 0x00ff0000, fl, 0);
	wr32(0x44, 5);
	fl = ALU("cmpl", p, 7u, "r");		/* 5 - 7: borrow */
	alu_check("cmp_mem_below", 0x44, 5, fl, FL_CF | FL_SF);
	fl = ALU("cmpl", p, 5u, "r");
	alu_check("cmp_mem_equal", 0x44, 5, fl, FL_ZF);
	wr32(0x44, 0x80000000);
	fl = ALU("cmpl", p, 1, "i");		/* 0x80000000 - 1: overflow */
	alu_check("cmp_mem_imm_overflow", 0x44, 0x80000000, fl, FL_OF);
	wr32(0x44, 7);
	__asm__ volatile("cmpl (%1), %2\n\tpushfl\n\tpopl %0"	/* 3B: 5 - 7 */
			 : "=r"(fl) : "r"(p), "r"(reg_v) : "memory", "cc");
	alu_check("cmp_reg_mem", 0x44, 7, fl & FL_MASK, FL_CF | FL_SF);
}

/*
 * Data segments based inside the device (SDM Vol. 3A 3.4.5): a 4 GiB
 * read/write segment, accessed bit preset, with the base split over the
 * descriptor.  Entries 1 and 2 repeat rt/entry.S's flat code and data.
 */
#define SEL_DATA	0x10
#define SEL_FS_DEV	0x18
#define SEL_GS_DEV	0x20
#define SEL_SS_DEV	0x28
#define FS_DEV_BASE	DEV_BASE
#define GS_DEV_BASE	(DEV_BASE + 0x700u)
#define SS_DEV_BASE	(DEV_BASE + 0x780u)

static uint64_t data_desc(uint32_t base)
{
	return 0x00CF93000000FFFFull | ((uint64_t)(base & 0xffffffu) << 16) |
	       ((uint64_t)(base >> 24) << 56);
}

static uint64_t seg_gdt[6] __attribute__((aligned(8)));

static void seg_gdt_load(void)
{
	struct { uint16_t limit; uint32_t base; } __attribute__((packed)) d;

	seg_gdt[1] = 0x00CF9B000000FFFFull;
	seg_gdt[2] = 0x00CF93000000FFFFull;
	seg_gdt[3] = data_desc(FS_DEV_BASE);
	seg_gdt[4] = data_desc(GS_DEV_BASE);
	seg_gdt[5] = data_desc(SS_DEV_BASE);
	d.limit = sizeof(seg_gdt) - 1;
	d.base = (uint32_t)(uintptr_t)seg_gdt;
	__asm__ volatile("lgdt %0" : : "m"(d) : "memory");
	__asm__ volatile("mov %w0, %%fs\n\tmov %w1, %%gs"
			 : : "r"(SEL_FS_DEV), "r"(SEL_GS_DEV) : "memory");
}

/* Through FS and GS: a store lands at base + offset, a load reads there. */
static void check_fs_gs(void)
{
	uint32_t v, w;

	wr32(0x604, 0x0f5f5f5f);
	__asm__ volatile("movl %1, %%fs:(%2)\n\tmovl %%fs:4(%2), %0"
			 : "=&r"(v) : "r"(0xf5000001u), "r"(0x600u) : "memory");
	w = rd32(0x600);
	guest_check("mmio_fs_base", w == 0xf5000001u && v == 0x0f5f5f5f,
		    "device 0x600 reads 0x%08x, fs:4 read 0x%08x", w, v);
	wr32(0x714, 0x06565656);
	__asm__ volatile("movl %1, %%gs:(%2)\n\tmovl %%gs:4(%2), %0"
			 : "=&r"(v) : "r"(0x65000002u), "r"(0x10u) : "memory");
	w = rd32(0x710);
	guest_check("mmio_gs_base", w == 0x65000002u && v == 0x06565656,
		    "device 0x710 reads 0x%08x, gs:0x14 read 0x%08x", w, v);
}

/* Through SS, for two instructions only: nothing may touch the stack
 * while SS is based in the device (interrupts are off). */
static void check_ss(void)
{
	uint32_t v, w, old;

	wr32(0x78c, 0x055a55a5);
	__asm__ volatile("mov %%ss, %w1\n\t"
			 "mov %w3, %%ss\n\t"
			 "movl %4, %%ss:(%2)\n\t"
			 "movl %%ss:4(%2), %0\n\t"
			 "mov %w1, %%ss"
			 : "=&r"(v), "=&r"(old)
			 : "r"(0x8u), "r"(SEL_SS_DEV), "r"(0x55000003u) : "memory");
	w = rd32(0x788);
	guest_check("mmio_ss_base", w == 0x55000003u && v == 0x055a55a5,
		    "device 0x788 reads 0x%08x, ss:0xc read 0x%08x", w, v);
}

static void check_seg_bases(void)
{
	seg_gdt_load();
	check_fs_gs();
	check_ss();
	__asm__ volatile("mov %w0, %%fs\n\tmov %w0, %%gs"
			 : : "r"(SEL_DATA) : "memory");
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	guest_init("mmio", magic, info);
	check_id();
	check_sizes();
	check_imm_moffs();
	check_extend();
	check_stos();
	check_movs();
	check_movs_backward();
	check_alu();
	check_test_cmp();
	if (guest_cmdline_has(guest_cmdline(info), "segs"))
		check_seg_bases();
	guest_done();
}
