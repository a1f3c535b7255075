/*
 * debug: debug exceptions, alignment checks and the debug registers.
 *
 * Default mode: each exception must reach the guest's own handler exactly
 * once, with the architectural state (SDM Vol. 3B 18.2.3, 18.3.1; Vol. 3A
 * 6.15 #AC), whether or not the hypervisor intercepts it:
 *   #DB single step  POPF sets TF: one trap after the next instruction,
 *                    DR6.BS set
 *   #DB breakpoint   DR0 = an instruction, DR7.L0: one fault there, DR6.B0
 *   #AC              CR0.AM, EFLAGS.AC and a misaligned load at CPL 3:
 *                    one fault at the load, error code 0
 * "noac" skips the #AC part: QEMU's TCG does not implement alignment
 * checking (EFLAGS.AC only means SMAP there).
 * Command line "drset": write DR0-3 with a pattern (seed=N), check it
 * reads back, exit.  "drcheck": DR0-3 must read 0 and DR6 its reset value
 * 0xFFFF0FF0 (SDM Vol. 3B 18.2): another VM's values must never show.
 */
#include "guest.h"

#define CR0_AM		(1u << 18)
#define EFLAGS_TF	(1u << 8)
#define EFLAGS_AC	(1u << 18)
#define DR6_B0		(1u << 0)
#define DR6_BS		(1u << 14)
#define DR6_RESET	0xFFFF0FF0u
#define DR7_L0		(1u << 0)
#define VEC_DB		1
#define VEC_AC		17
#define VEC_BACK	0x30		/* user mode's way back to CPL 0 */
#define NVEC		(VEC_BACK + 1)
#define SEL_KCODE	0x08
#define SEL_KDATA	0x10
#define SEL_UCODE	0x1b		/* 0x18 | RPL 3 */
#define SEL_UDATA	0x23		/* 0x20 | RPL 3 */
#define SEL_TSS		0x28

struct dbg_frame {
	uint32_t edi, esi, ebp, esp_unused, ebx, edx, ecx, eax;
	uint32_t error;			/* 0 for #DB (the stub pushes it) */
	uint32_t eip, cs, eflags;
};

struct gate {
	uint16_t off_lo, sel;
	uint8_t zero, type;
	uint16_t off_hi;
} __attribute__((packed));

struct tss32 {
	uint32_t link, esp0, ss0, rest[23];
} __attribute__((aligned(16)));

extern const uint32_t exc_stub_table[32];
void dbg_db_stub(void);
void dbg_ac_stub(void);
void dbg_back_stub(void);
void dbg_run_user(void (*fn)(void));
void dbg_user_ac(void);
void dbg_handle(struct dbg_frame *f, uint32_t vector);
extern const char dbg_tf_after[], dbg_bp_insn[], dbg_ac_insn[];

static uint64_t gdt[6] __attribute__((aligned(8)));
static struct gate idt[NVEC];
static struct tss32 tss;
static uint8_t ring0_stack[4096] __attribute__((aligned(16)));
uint8_t dbg_user_stack[4096] __attribute__((aligned(16)));
uint32_t dbg_saved_esp;
uint32_t dbg_ac_buf[4];

/* What the handlers saw. */
static volatile unsigned n_db, n_ac;
static volatile uint32_t seen_eip, seen_cs, seen_dr6, seen_error;

/* Stubs: the same frame for both (#DB pushes no error code: push 0). */
__asm__(
	".text\n"
	".globl dbg_db_stub\n"
	"dbg_db_stub:\n\tpushl $0\n\tpushal\n\tpushl $1\n\tjmp 1f\n"
	".globl dbg_ac_stub\n"
	"dbg_ac_stub:\n\tpushal\n\tpushl $17\n"
	"1:\n\tmov %esp, %eax\n\tadd $4, %eax\n\tpushl %eax\n"
	"\tcall dbg_handle\n\tadd $8, %esp\n\tpopal\n\tadd $4, %esp\n\tiret\n"
	/* int $0x30 from CPL 3: back to dbg_run_user's caller at CPL 0. */
	".globl dbg_back_stub\n"
	"dbg_back_stub:\n\tmov $0x10, %ax\n\tmov %ax, %ds\n\tmov %ax, %es\n"
	"\tmov %ax, %fs\n\tmov %ax, %gs\n"
	"\tmov dbg_saved_esp, %esp\n\tpop %edi\n\tpop %esi\n\tpop %ebx\n"
	"\tpop %ebp\n\tret\n"
	/* dbg_run_user(fn): IRET to fn at CPL 3 with EFLAGS.AC set. */
	".globl dbg_run_user\n"
	"dbg_run_user:\n\tpush %ebp\n\tpush %ebx\n\tpush %esi\n\tpush %edi\n"
	"\tmov %esp, dbg_saved_esp\n\tmov 20(%esp), %eax\n"
	"\tpushl $0x23\n\tpushl $dbg_user_stack+4096\n\tpushl $0x40002\n"
	"\tpushl $0x1b\n\tpushl %eax\n"
	"\tmov $0x23, %cx\n\tmov %cx, %ds\n\tmov %cx, %es\n\tiret\n"
	/* At CPL 3: one misaligned 4-byte load, then back. */
	".globl dbg_user_ac\n"
	"dbg_user_ac:\n\tmov $dbg_ac_buf+1, %edx\n"
	".globl dbg_ac_insn\n"
	"dbg_ac_insn:\n\tmovl (%edx), %eax\n\tint $0x30\n");

/* Called from the stubs with (frame, vector) on the stack, cdecl. */
void dbg_handle(struct dbg_frame *f, uint32_t vector)
{
	uint32_t dr6;

	seen_eip = f->eip;
	seen_cs = f->cs;
	seen_error = f->error;
	if (vector == VEC_DB) {
		n_db++;
		__asm__ volatile("mov %%dr6, %0" : "=r"(dr6));
		seen_dr6 = dr6;
		/* Stop the cause: TF in the frame, the breakpoint in DR7;
		 * clear DR6 as a handler must (SDM Vol. 3B 18.2.3). */
		f->eflags &= ~EFLAGS_TF;
		__asm__ volatile("mov %0, %%dr7" : : "r"(0x400u));
		__asm__ volatile("mov %0, %%dr6" : : "r"(DR6_RESET));
	} else {
		n_ac++;
		f->eflags &= ~EFLAGS_AC;	/* the load then succeeds */
	}
}

static void set_gate(unsigned v, void (*fn)(void), uint8_t type)
{
	idt[v].off_lo = (uint16_t)(uintptr_t)fn;
	idt[v].off_hi = (uint16_t)((uintptr_t)fn >> 16);
	idt[v].sel = SEL_KCODE;
	idt[v].zero = 0;
	idt[v].type = type;
}

/* A GDT with ring-3 code and data and a TSS (for the way into CPL 0), and
 * an IDT: the runtime's reporting stubs, ours for #DB and #AC, and a
 * DPL-3 gate back (SDM Vol. 3A 6.12.1). */
static void setup_tables(void)
{
	struct { uint16_t limit; uint32_t base; } __attribute__((packed)) d;
	uint64_t base = (uintptr_t)&tss, limit = sizeof(tss) - 1;
	unsigned v;

	gdt[1] = 0x00CF9B000000FFFFull;
	gdt[2] = 0x00CF93000000FFFFull;
	gdt[3] = 0x00CFFB000000FFFFull;		/* code, DPL 3 */
	gdt[4] = 0x00CFF3000000FFFFull;		/* data, DPL 3 */
	gdt[5] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ull << 40 |
		 (base >> 24) << 56;
	tss.ss0 = SEL_KDATA;
	tss.esp0 = (uintptr_t)ring0_stack + sizeof(ring0_stack);
	d.limit = sizeof(gdt) - 1;
	d.base = (uintptr_t)gdt;
	__asm__ volatile("lgdt %0\n\tmov %1, %%ax\n\tltr %%ax"
			 : : "m"(d), "i"(SEL_TSS) : "eax", "memory");
	for (v = 0; v < 32; v++)
		set_gate(v, (void (*)(void))(uintptr_t)exc_stub_table[v], 0x8E);
	set_gate(VEC_DB, dbg_db_stub, 0x8E);
	set_gate(VEC_AC, dbg_ac_stub, 0x8E);
	set_gate(VEC_BACK, dbg_back_stub, 0xEE);	/* DPL 3 */
	d.limit = sizeof(idt) - 1;
	d.base = (uintptr_t)idt;
	__asm__ volatile("lidt %0" : : "m"(d) : "memory");
}

static void reset_seen(void)
{
	n_db = n_ac = 0;
	seen_eip = seen_cs = seen_dr6 = seen_error = 0;
}

static void __attribute__((noinline)) check_single_step(void)
{
	reset_seen();
	__asm__ volatile("pushf\n\torl $0x100, (%%esp)\n\tpopf\n\tnop\n"
			 ".globl dbg_tf_after\ndbg_tf_after:\n\tnop" : : : "memory");
	guest_check("db_single_step_once", n_db == 1, "%u #DB", n_db);
	guest_check("db_single_step_state",
		    seen_eip == (uintptr_t)dbg_tf_after && (seen_dr6 & DR6_BS) &&
		    !(seen_dr6 & 0xf), "eip 0x%x (want 0x%x) dr6 0x%x", seen_eip,
		    (uint32_t)(uintptr_t)dbg_tf_after, seen_dr6);
}

static void __attribute__((noinline)) check_breakpoint(void)
{
	reset_seen();
	__asm__ volatile("mov %0, %%dr0\n\tmov %1, %%dr7\n\tnop\n"
			 ".globl dbg_bp_insn\ndbg_bp_insn:\n\tnop"
			 : : "r"((uint32_t)(uintptr_t)dbg_bp_insn), "r"(0x400u | DR7_L0)
			 : "memory");
	guest_check("db_breakpoint_once", n_db == 1, "%u #DB", n_db);
	guest_check("db_breakpoint_state",
		    seen_eip == (uintptr_t)dbg_bp_insn && (seen_dr6 & DR6_B0) &&
		    !(seen_dr6 & DR6_BS), "eip 0x%x (want 0x%x) dr6 0x%x", seen_eip,
		    (uint32_t)(uintptr_t)dbg_bp_insn, seen_dr6);
	__asm__ volatile("mov %0, %%dr0" : : "r"(0u));
}

static void __attribute__((noinline)) check_alignment(void)
{
	uint32_t cr0;

	reset_seen();
	__asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
	__asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | CR0_AM) : "memory");
	dbg_run_user(dbg_user_ac);
	__asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
	guest_check("ac_once", n_ac == 1 && n_db == 0, "%u #AC %u #DB", n_ac, n_db);
	guest_check("ac_state", seen_eip == (uintptr_t)dbg_ac_insn &&
		    seen_cs == SEL_UCODE && seen_error == 0,
		    "eip 0x%x (want 0x%x) cs 0x%x error 0x%x", seen_eip,
		    (uint32_t)(uintptr_t)dbg_ac_insn, seen_cs, seen_error);
}

static void read_drs(uint32_t dr[4], uint32_t *dr6)
{
	__asm__ volatile("mov %%dr0, %0" : "=r"(dr[0]));
	__asm__ volatile("mov %%dr1, %0" : "=r"(dr[1]));
	__asm__ volatile("mov %%dr2, %0" : "=r"(dr[2]));
	__asm__ volatile("mov %%dr3, %0" : "=r"(dr[3]));
	__asm__ volatile("mov %%dr6, %0" : "=r"(*dr6));
}

static void dr_set(uint32_t seed)
{
	uint32_t want[4], got[4], dr6;
	int i, bad = -1;

	for (i = 0; i < 4; i++)
		want[i] = 0x10000000u * (i + 1) + seed * 0x1111u + 0x40;
	__asm__ volatile("mov %0, %%dr0" : : "r"(want[0]));
	__asm__ volatile("mov %0, %%dr1" : : "r"(want[1]));
	__asm__ volatile("mov %0, %%dr2" : : "r"(want[2]));
	__asm__ volatile("mov %0, %%dr3" : : "r"(want[3]));
	/* DR6 bits the CPU sets on #DB; software may write them (18.2.3). */
	__asm__ volatile("mov %0, %%dr6" : : "r"(DR6_RESET | 0xf));
	/* Exits in between: the values must survive them. */
	for (i = 0; i < 100; i++)
		(void)inb(0x3FD);
	read_drs(got, &dr6);
	for (i = 0; i < 4; i++)
		if (got[i] != want[i])
			bad = i;
	guest_check("dr_set_readback", bad < 0 && dr6 == (DR6_RESET | 0xf),
		    "dr0-3 0x%x 0x%x 0x%x 0x%x dr6 0x%x", got[0], got[1], got[2],
		    got[3], dr6);
}

static void dr_check(void)
{
	uint32_t got[4], dr6;

	read_drs(got, &dr6);
	guest_printf("DEBUG dr0-3 0x%x 0x%x 0x%x 0x%x dr6 0x%x\n", got[0], got[1],
		     got[2], got[3], dr6);
	guest_check("dr_fresh_zero", !got[0] && !got[1] && !got[2] && !got[3],
		    "dr0-3 0x%x 0x%x 0x%x 0x%x", got[0], got[1], got[2], got[3]);
	guest_check("dr6_fresh_reset", dr6 == DR6_RESET, "dr6 0x%x", dr6);
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	const char *cmd;
	uint64_t seed = 1;

	guest_init("debug", magic, info);
	cmd = guest_cmdline(guest_boot_info());
	guest_cmdline_u64(cmd, "seed", &seed);
	if (guest_cmdline_has(cmd, "drset")) {
		dr_set((uint32_t)seed);
	} else if (guest_cmdline_has(cmd, "drcheck")) {
		dr_check();
	} else {
		setup_tables();
		check_single_step();
		check_breakpoint();
		if (guest_cmdline_has(cmd, "noac"))
			guest_puts("DEBUG #AC skipped (noac)\n");
		else
			check_alignment();
	}
	guest_done();
}
