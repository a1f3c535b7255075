/*
 * Per-CPU descriptor tables, GS-based per-CPU data and FPU/SSE enablement.
 */
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"

struct percpu *cpu_table[MAX_CPUS];
volatile uint32_t cpus_online;
uint32_t cpus_total = 1;

struct idt_gate {
	uint16_t off0;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off1;
	uint32_t off2;
	uint32_t zero;
} __attribute__((packed));

struct dt_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

extern const uint64_t isr_table[256];
static struct idt_gate idt[256] __attribute__((aligned(16)));

static void idt_set(int v, uint64_t handler, int ist)
{
	idt[v].off0 = handler & 0xffff;
	idt[v].sel = GDT_KCODE;
	idt[v].ist = ist;
	idt[v].type = 0x8e;	/* present, DPL 0, 64-bit interrupt gate */
	idt[v].off1 = (handler >> 16) & 0xffff;
	idt[v].off2 = handler >> 32;
	idt[v].zero = 0;
}

/* One IDT serves every CPU; the IST stacks make #DF, NMI and #MC safe even
 * when the kernel stack itself is the problem (SDM Vol. 3A 6.14.5). */
void idt_init(void)
{
	int v;

	for (v = 0; v < 256; v++)
		idt_set(v, isr_table[v], 0);
	idt_set(2, isr_table[2], IST_NMI);
	idt_set(8, isr_table[8], IST_DF);
	idt_set(18, isr_table[18], IST_MC);
}

struct percpu *cpu_alloc(uint32_t id, uint32_t apic_id)
{
	size_t pages = (sizeof(struct percpu) + PAGE_SIZE - 1) / PAGE_SIZE;
	struct percpu *p = page_alloc(pages);
	int i;

	if (!p)
		return NULL;
	p->kstack = page_alloc(KSTACK_SIZE / PAGE_SIZE);
	if (!p->kstack) {
		page_free(p, pages);
		return NULL;
	}
	p->self = p;
	p->id = id;
	p->apic_id = apic_id;
	for (i = 0; i < 3; i++) {
		uint8_t *ist = page_alloc(ISTACK_SIZE / PAGE_SIZE);

		if (!ist)
			return NULL;	/* boot-time only; the caller stops */
		p->tss.ist[i] = (uint64_t)(ist + ISTACK_SIZE);
	}
	p->tss.rsp[0] = (uint64_t)(p->kstack + KSTACK_SIZE);
	p->tss.iomap_base = sizeof(struct tss);
	cpu_table[id] = p;
	return p;
}

static void gdt_load(struct percpu *p)
{
	uint64_t tss = (uint64_t)&p->tss;
	struct dt_ptr gp = { sizeof(p->gdt) - 1, (uint64_t)p->gdt };

	p->gdt[0] = 0;
	p->gdt[1] = 0x00af9b000000ffffull;	/* 64-bit code, DPL 0 */
	p->gdt[2] = 0x00cf93000000ffffull;	/* data, DPL 0 */
	/* 16-byte available 64-bit TSS descriptor, SDM Vol. 3A 8.2.3 */
	p->gdt[3] = (sizeof(struct tss) - 1) | ((tss & 0xffffff) << 16) |
		    (0x89ull << 40) | (((tss >> 24) & 0xff) << 56);
	p->gdt[4] = tss >> 32;
	__asm__ volatile(
		"lgdt %0\n\t"
		"mov %1, %%ds\n\t"
		"mov %1, %%es\n\t"
		"mov %1, %%ss\n\t"
		"xor %%eax, %%eax\n\t"
		"mov %%eax, %%fs\n\t"
		"mov %%eax, %%gs\n\t"
		"pushq %2\n\t"
		"lea 1f(%%rip), %%rax\n\t"
		"pushq %%rax\n\t"
		"lretq\n"
		"1:\n\t"
		"ltr %w3\n\t"
		:
		: "m"(gp), "r"((uint64_t)GDT_KDATA), "i"(GDT_KCODE),
		  "r"((uint16_t)GDT_TSS)
		: "rax", "memory");
}

/* Newlib and GCC-generated code use SSE, so every CPU needs it on, and
 * XSAVE where present so guest state can later be switched in full. */
void fpu_init_cpu(void)
{
	uint32_t a, b, c, d;
	uint64_t cr4 = read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT;

	write_cr0((read_cr0() & ~(CR0_EM | CR0_TS)) | CR0_MP | CR0_NE | CR0_WP);
	cpuid(1, 0, &a, &b, &c, &d);
	if (c & (1u << 26))
		cr4 |= CR4_OSXSAVE;
	write_cr4(cr4);
	if (cr4 & CR4_OSXSAVE) {
		/* x87 | SSE, plus AVX when the CPU has it (XCR0 bit 2). */
		uint64_t xcr0 = 3 | ((c & (1u << 28)) ? 4 : 0);

		__asm__ volatile("xsetbv" : : "c"(0), "a"((uint32_t)xcr0),
				 "d"((uint32_t)(xcr0 >> 32)));
	}
	__asm__ volatile("fninit");
}

void cpu_setup(struct percpu *p)
{
	struct dt_ptr ip = { sizeof(idt) - 1, (uint64_t)idt };

	/* SSE first: GCC may use it anywhere, gdt_load included.  The IDT
	 * next, so a fault in what follows is reported, not a triple fault. */
	fpu_init_cpu();
	__asm__ volatile("lidt %0" : : "m"(ip));
	gdt_load(p);
	/* After the selector reload: a null GS load may clear the base. */
	wrmsr(MSR_GS_BASE, (uint64_t)p);
	wrmsr(MSR_KERNEL_GS_BASE, 0);
	/* Global pages survive CR3 writes for the kernel mappings. */
	write_cr4(read_cr4() | CR4_PGE);
}
