/*
 * Per-CPU descriptor tables, GS-based per-CPU data and FPU/SSE enablement.
 */
#include <string.h>
#include "kernel/lib/vcpu_check.h"
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

/*
 * What this CPU lets a guest's FPU and control state be (vcpu_check.h):
 * XSAVE and the XCR0 fpu_init_cpu set, the XSAVE area size under it (SDM
 * Vol. 1 13.5: CPUID.(0xD,0).EBX), MXCSR_MASK from an FXSAVE image (SDM
 * Vol. 1 11.6.6), and the CR4/EFER features and MAXPHYADDR from CPUID.
 */
static void caps_probe(struct vcpu_host_caps *c)
{
	uint8_t fx[512] __attribute__((aligned(16)));
	struct vcpu_cpuid_words w = { 0 };
	uint32_t a, b, cx, d, max, emax;

	memset(c, 0, sizeof(*c));
	c->fpu_area = HOST_FPU_AREA;
	c->xsave = read_cr4() & CR4_OSXSAVE;
	if (c->xsave) {
		__asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
		c->xcr0 = ((uint64_t)d << 32) | a;
		cpuid(0xd, 0, &a, &b, &cx, &d);
		c->xsave_size = b;
	}
	__asm__ volatile("fxsave64 %0" : "=m"(fx));
	memcpy(&c->mxcsr_mask, fx + XSAVE_MXCSR_MASK_OFF, 4);
	if (!c->mxcsr_mask)
		c->mxcsr_mask = MXCSR_MASK_DEFAULT;
	cpuid(0, 0, &max, &b, &cx, &d);
	cpuid(1, 0, &a, &b, &w.l1_ecx, &w.l1_edx);
	if (max >= 7)
		cpuid(7, 0, &a, &w.l7_ebx, &w.l7_ecx, &d);
	cpuid(0x80000000, 0, &emax, &b, &cx, &d);
	if (emax >= 0x80000001)
		cpuid(0x80000001, 0, &a, &b, &cx, &w.e1_edx);
	if (emax >= 0x80000008)
		cpuid(0x80000008, 0, &w.e8_eax, &b, &cx, &d);
	vcpu_caps_from_cpuid(c, &w);
}

/* The boot CPU's, probed once in cpu_setup: every check of guest state
 * and every FPU switch uses these, on any CPU (cpu_caps_agree). */
static struct vcpu_host_caps boot_caps;

const struct vcpu_host_caps *cpu_host_caps(void)
{
	return &boot_caps;
}

/* An AP that would restore or allow different state than the boot CPU
 * cannot run guests checked against the boot CPU's capabilities. */
bool cpu_caps_agree(void)
{
	struct vcpu_host_caps mine;

	caps_probe(&mine);
	if (!memcmp(&mine, &boot_caps, sizeof(mine)))
		return true;
	pr_err("cpu: CPU %u differs from the boot CPU: XCR0 %#lx/%#lx, XSAVE %u/%u "
	       "bytes, MXCSR_MASK %#x/%#x, CR4 %#lx/%#lx, EFER %#lx/%#lx; not used",
	       this_cpu()->id, mine.xcr0, boot_caps.xcr0, mine.xsave_size,
	       boot_caps.xsave_size, mine.mxcsr_mask, boot_caps.mxcsr_mask,
	       mine.cr4_ok, boot_caps.cr4_ok, mine.efer_ok, boot_caps.efer_ok);
	return false;
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
	if (p->id == 0) {
		caps_probe(&boot_caps);
		if (boot_caps.xsave_size > HOST_FPU_AREA)
			pr_err("cpu: XSAVE area of %u bytes exceeds the vCPU's %u",
			       boot_caps.xsave_size, HOST_FPU_AREA);
	}
}
