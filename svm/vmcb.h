/*
 * The VMCB, AMD APM Vol. 2 Appendix B (Layout of VMCB): a 4 KiB page with
 * the control area at 0x000 and the state-save area at 0x400.  Offsets are
 * checked at compile time against the manual's table.
 */
#ifndef TERN_SVM_VMCB_H
#define TERN_SVM_VMCB_H

#include <stddef.h>
#include <stdint.h>

struct vmcb_seg {
	uint16_t sel;
	uint16_t attr;
	uint32_t limit;
	uint64_t base;
} __attribute__((packed));

struct vmcb_control {
	uint32_t intercept_cr;		/* 0x000: reads 15:0, writes 31:16 */
	uint32_t intercept_dr;		/* 0x004 */
	uint32_t intercept_exc;		/* 0x008 */
	uint32_t intercept_misc1;	/* 0x00c */
	uint32_t intercept_misc2;	/* 0x010 */
	uint32_t intercept_misc3;	/* 0x014 */
	uint8_t reserved0[0x03c - 0x018];
	uint16_t pause_thresh;		/* 0x03c */
	uint16_t pause_count;		/* 0x03e */
	uint64_t iopm_pa;		/* 0x040 */
	uint64_t msrpm_pa;		/* 0x048 */
	uint64_t tsc_offset;		/* 0x050 */
	uint32_t asid;			/* 0x058 */
	uint8_t tlb_control;		/* 0x05c */
	uint8_t reserved1[3];
	uint64_t vintr;			/* 0x060 */
	uint64_t int_state;		/* 0x068: bit 0 interrupt shadow */
	uint64_t exit_code;		/* 0x070 */
	uint64_t exit_info1;		/* 0x078 */
	uint64_t exit_info2;		/* 0x080 */
	uint64_t exit_int_info;		/* 0x088 */
	uint64_t np_enable;		/* 0x090 */
	uint8_t reserved2[0x0a8 - 0x098];
	uint64_t event_inj;		/* 0x0a8 */
	uint64_t n_cr3;			/* 0x0b0 */
	uint64_t lbr_virt;		/* 0x0b8 */
	uint32_t clean;			/* 0x0c0 */
	uint32_t reserved3;
	uint64_t next_rip;		/* 0x0c8 */
	uint8_t insn_len;		/* 0x0d0 */
	uint8_t insn_bytes[15];		/* 0x0d1 */
	uint8_t reserved4[0x400 - 0x0e0];
} __attribute__((packed));

struct vmcb_save {
	struct vmcb_seg es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr; /* 0x400 */
	uint8_t reserved0[0x4cb - 0x4a0];
	uint8_t cpl;			/* 0x4cb */
	uint32_t reserved1;
	uint64_t efer;			/* 0x4d0 */
	uint8_t reserved2[0x548 - 0x4d8];
	uint64_t cr4;			/* 0x548 */
	uint64_t cr3;			/* 0x550 */
	uint64_t cr0;			/* 0x558 */
	uint64_t dr7;			/* 0x560 */
	uint64_t dr6;			/* 0x568 */
	uint64_t rflags;		/* 0x570 */
	uint64_t rip;			/* 0x578 */
	uint8_t reserved3[0x5d8 - 0x580];
	uint64_t rsp;			/* 0x5d8 */
	uint8_t reserved4[0x5f8 - 0x5e0];
	uint64_t rax;			/* 0x5f8 */
	uint64_t star;			/* 0x600 */
	uint64_t lstar;			/* 0x608 */
	uint64_t cstar;			/* 0x610 */
	uint64_t sfmask;		/* 0x618 */
	uint64_t kernel_gs_base;	/* 0x620 */
	uint64_t sysenter_cs;		/* 0x628 */
	uint64_t sysenter_esp;		/* 0x630 */
	uint64_t sysenter_eip;		/* 0x638 */
	uint64_t cr2;			/* 0x640 */
	uint8_t reserved5[0x668 - 0x648];
	uint64_t g_pat;			/* 0x668 */
	uint64_t dbgctl;		/* 0x670 */
} __attribute__((packed));

struct vmcb {
	struct vmcb_control c;
	struct vmcb_save s;
} __attribute__((packed));

_Static_assert(offsetof(struct vmcb, c.exit_code) == 0x070, "vmcb exit_code");
_Static_assert(offsetof(struct vmcb, c.n_cr3) == 0x0b0, "vmcb n_cr3");
_Static_assert(offsetof(struct vmcb, c.insn_bytes) == 0x0d1, "vmcb insn_bytes");
_Static_assert(offsetof(struct vmcb, s.es) == 0x400, "vmcb save");
_Static_assert(offsetof(struct vmcb, s.tr) == 0x490, "vmcb tr");
_Static_assert(offsetof(struct vmcb, s.cpl) == 0x4cb, "vmcb cpl");
_Static_assert(offsetof(struct vmcb, s.efer) == 0x4d0, "vmcb efer");
_Static_assert(offsetof(struct vmcb, s.cr4) == 0x548, "vmcb cr4");
_Static_assert(offsetof(struct vmcb, s.rip) == 0x578, "vmcb rip");
_Static_assert(offsetof(struct vmcb, s.rsp) == 0x5d8, "vmcb rsp");
_Static_assert(offsetof(struct vmcb, s.rax) == 0x5f8, "vmcb rax");
_Static_assert(offsetof(struct vmcb, s.cr2) == 0x640, "vmcb cr2");
_Static_assert(offsetof(struct vmcb, s.g_pat) == 0x668, "vmcb g_pat");

/* Intercept bits, APM Vol. 2 Appendix B table B-1. */
#define SVM_MISC1_INTR		(1u << 0)
#define SVM_MISC1_NMI		(1u << 1)
#define SVM_MISC1_SMI		(1u << 2)
#define SVM_MISC1_INIT		(1u << 3)
#define SVM_MISC1_VINTR		(1u << 4)
#define SVM_MISC1_CPUID		(1u << 18)
#define SVM_MISC1_IRET		(1u << 20)
#define SVM_MISC1_INVD		(1u << 22)
#define SVM_MISC1_HLT		(1u << 24)
#define SVM_MISC1_INVLPGA	(1u << 26)
#define SVM_MISC1_IOIO		(1u << 27)
#define SVM_MISC1_MSR		(1u << 28)
#define SVM_MISC1_TASKSW	(1u << 29)
#define SVM_MISC1_SHUTDOWN	(1u << 31)
#define SVM_MISC2_VMRUN		(1u << 0)
#define SVM_MISC2_VMMCALL	(1u << 1)
#define SVM_MISC2_VMLOAD	(1u << 2)
#define SVM_MISC2_VMSAVE	(1u << 3)
#define SVM_MISC2_STGI		(1u << 4)
#define SVM_MISC2_CLGI		(1u << 5)
#define SVM_MISC2_SKINIT	(1u << 6)
#define SVM_MISC2_MONITOR	(1u << 10)
#define SVM_MISC2_MWAIT		(1u << 11)
#define SVM_MISC2_MWAIT_COND	(1u << 12)
#define SVM_MISC2_XSETBV	(1u << 13)

/* Exit codes, APM Vol. 2 Appendix C. */
#define SVM_EXIT_EXCP_BASE	0x040	/* + the vector */
#define SVM_EXIT_INTR		0x060
#define SVM_EXIT_NMI		0x061
#define SVM_EXIT_SMI		0x062
#define SVM_EXIT_INIT		0x063
#define SVM_EXIT_VINTR		0x064
#define SVM_EXIT_CPUID		0x072
#define SVM_EXIT_IRET		0x074
#define SVM_EXIT_INVD		0x076
#define SVM_EXIT_HLT		0x078
#define SVM_EXIT_INVLPGA	0x07a
#define SVM_EXIT_IOIO		0x07b
#define SVM_EXIT_MSR		0x07c
#define SVM_EXIT_TASKSW		0x07d
#define SVM_EXIT_SHUTDOWN	0x07f
#define SVM_EXIT_VMRUN		0x080
#define SVM_EXIT_VMMCALL	0x081
#define SVM_EXIT_VMLOAD		0x082
#define SVM_EXIT_VMSAVE		0x083
#define SVM_EXIT_STGI		0x084
#define SVM_EXIT_CLGI		0x085
#define SVM_EXIT_SKINIT		0x086
#define SVM_EXIT_MONITOR	0x08a
#define SVM_EXIT_MWAIT		0x08b
#define SVM_EXIT_MWAIT_COND	0x08c
#define SVM_EXIT_XSETBV		0x08d
#define SVM_EXIT_NPF		0x400
#define SVM_EXIT_INVALID	0xffffffffu	/* compare the low 32 bits */

/* EXITINFO2 of a task-switch intercept (APM Vol. 2 15.14.1 / table C-1). */
#define SVM_TASKSW_IRET		(1ull << 36)
#define SVM_TASKSW_JMP		(1ull << 38)

#define SVM_EVTINJ_VALID	(1u << 31)
#define SVM_EVTINJ_EV		(1u << 11)

#endif
