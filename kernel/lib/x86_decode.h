/*
 * x86 instruction decoder and interpreter for guest MMIO accesses.
 *
 * QEMU's SVM has neither decode assists nor NRIP save, so on a nested page
 * fault to an emulated device the hypervisor fetches up to 15 bytes at the
 * guest's CS:RIP and decodes them here.  Pure: no state, no allocation.
 *
 * Scope: the memory forms of the instructions compilers and drivers emit for
 * MMIO (MOV, MOVZX/MOVSX/MOVSXD, the eight ALU ops and TEST, XCHG, CMPXCHG,
 * MOVS/STOS/LODS).  Everything else -- SSE/AVX moves, register-only forms,
 * INC/DEC/NOT/NEG, bit tests -- decodes to -ENOTSUP so the caller can inject
 * a fault or stop the guest instead of guessing.
 *
 * Typical MMIO exit path:
 *	x86_decode(bytes, n, mode, &insn)	(-EAGAIN: fetch more, retry)
 *	x86_exec(&insn, &regs, mmio_access, ctx)
 * x86_exec performs the access through the callback, updates registers and
 * flags, and advances RIP (see there for REP).
 *
 * Layout references: Intel SDM Vol. 2A ch. 2 (instruction format, ModRM,
 * SIB, REX) and Vol. 2 instruction pages; AMD APM Vol. 3 ch. 1.
 */
#ifndef TERN_LIB_X86_DECODE_H
#define TERN_LIB_X86_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SDM Vol. 2A 2.3.11: longer instructions raise #GP. */
#define X86_MAX_INSN_LEN	15

/*
 * Guest code size, from the CS descriptor and EFER: 64 when EFER.LMA and
 * CS.L, else 32 when CS.D, else 16 (real mode, vm86, 16-bit protected).
 */
#define X86_MODE_16	16
#define X86_MODE_32	32
#define X86_MODE_64	64

/* GPR indices, in ModRM/REX encoding order. */
enum {
	X86_RAX, X86_RCX, X86_RDX, X86_RBX, X86_RSP, X86_RBP, X86_RSI, X86_RDI,
	X86_R8, X86_R9, X86_R10, X86_R11, X86_R12, X86_R13, X86_R14, X86_R15,
};
#define X86_REG_NONE	(-1)

/* Segment registers, in the Sreg encoding order of SDM Vol. 2A 3.1.1.3. */
enum { X86_SEG_ES, X86_SEG_CS, X86_SEG_SS, X86_SEG_DS, X86_SEG_FS, X86_SEG_GS };

/* REP prefixes as decoded (rep field). */
#define X86_REP		1	/* F3 */
#define X86_REPNE	2	/* F2 */

/* RFLAGS bits (SDM Vol. 1 3.4.3). */
#define X86_FL_CF	(1ull << 0)
#define X86_FL_PF	(1ull << 2)
#define X86_FL_AF	(1ull << 4)
#define X86_FL_ZF	(1ull << 6)
#define X86_FL_SF	(1ull << 7)
#define X86_FL_DF	(1ull << 10)
#define X86_FL_OF	(1ull << 11)
#define X86_FL_ARITH	(X86_FL_CF | X86_FL_PF | X86_FL_AF | X86_FL_ZF | \
			 X86_FL_SF | X86_FL_OF)

enum x86_op {
	X86_OP_NONE,
	X86_OP_MOV_TO_MEM,	/* mem = reg (88/89/A2/A3) or imm (C6/C7) */
	X86_OP_MOV_FROM_MEM,	/* reg = mem (8A/8B/A0/A1) */
	X86_OP_MOVZX,		/* reg(regsize) = zero-extended mem(opsize) */
	X86_OP_MOVSX,		/* reg(regsize) = sign-extended mem(opsize); 63 too */
	X86_OP_ALU,		/* alu kind; mem_is_dst picks mem op= src or reg op= mem */
	X86_OP_TEST,		/* flags of mem & (reg or imm) */
	X86_OP_XCHG,		/* swap mem and reg */
	X86_OP_CMPXCHG,		/* 0F B0/B1 with the accumulator */
	X86_OP_MOVS,		/* ES:[rDI] = seg:[rSI] */
	X86_OP_STOS,		/* ES:[rDI] = rAX */
	X86_OP_LODS,		/* rAX = seg:[rSI] */
};

/* ALU kinds: the first eight equal the ModRM.reg digit of opcodes 80-83. */
enum x86_alu {
	X86_ALU_ADD, X86_ALU_OR, X86_ALU_ADC, X86_ALU_SBB,
	X86_ALU_AND, X86_ALU_SUB, X86_ALU_XOR, X86_ALU_CMP,
	X86_ALU_TEST,
};

/* Effective address = base + index * scale + disp (+ next RIP if rip_rel). */
struct x86_ea {
	int base;		/* GPR index or X86_REG_NONE */
	int index;		/* GPR index or X86_REG_NONE */
	int scale;		/* 1, 2, 4 or 8 */
	int64_t disp;		/* sign-extended; a moffs is stored here as is */
	bool rip_rel;
};

struct x86_insn {
	uint8_t len;		/* bytes, prefixes included; <= 15 */
	uint8_t opsize;		/* bytes of the memory access: 1, 2, 4, 8 */
	uint8_t regsize;	/* bytes of the register operand: = opsize
				 * except for MOVZX/MOVSX (2, 4, 8) */
	uint8_t addrsize;	/* 2, 4, 8 */
	enum x86_op op;
	enum x86_alu alu;	/* X86_OP_ALU; X86_ALU_TEST for X86_OP_TEST */
	/*
	 * Register operand (GPR index 0-15, REX.R applied), or X86_REG_NONE
	 * with an immediate.  rAX for A0-A3 and string ops.  high8: an 8-bit
	 * AH/CH/DH/BH operand (no REX, encoding 4-7); reg is then the GPR
	 * (RAX..RBX) whose bits 15:8 are meant.
	 */
	int reg;
	bool high8;
	bool has_imm;
	uint64_t imm;		/* the immediate operand as an opsize-byte value:
				 * sign-extended from its encoded width, masked */
	int rep;		/* 0, X86_REP or X86_REPNE; string ops only */
	bool lock;
	/*
	 * Segment of the memory operand after overrides (the source for
	 * MOVS/LODS; STOS and the MOVS destination always use ES).  In 64-bit
	 * mode ES/CS/SS/DS overrides are ignored (SDM Vol. 1 3.3.7.1).
	 */
	int seg;
	/*
	 * mem_is_dst: memory is the destination (first, Intel order) operand,
	 * also for CMP/TEST, which compute mem - src / mem & src.
	 * mem_write: the instruction stores to memory (CMPXCHG: may store).
	 */
	bool mem_is_dst;
	bool mem_write;
	struct x86_ea ea;	/* rSI (MOVS/LODS) or rDI (STOS) for string ops */
};

/*
 * Decode the instruction in bytes[0, avail) for mode X86_MODE_16/32/64.
 * Returns 0 with *out filled; -EAGAIN if the instruction continues past
 * avail (fetch more bytes, e.g. from the next page, and retry); -EINVAL if
 * it is malformed (longer than 15 bytes, LOCK where it #UDs, a reserved
 * ModRM.reg digit, a bad mode); -ENOTSUP for a valid instruction outside
 * the supported set, including forms without a memory operand.  On error
 * *out is cleared.
 */
int x86_decode(const uint8_t *bytes, size_t avail, int mode, struct x86_insn *out);

/*
 * Offset of the memory operand inside its segment (the caller adds the
 * segment base), truncated to the address size.  next_rip is the address of
 * the following instruction, for RIP-relative operands.
 */
uint64_t x86_ea(const struct x86_insn *i, const uint64_t gpr[16], uint64_t next_rip);

/*
 * result = dst op src on size bytes (1, 2, 4, 8), with CF PF AF ZF SF OF
 * in *rflags_inout updated as the hardware does (AF is cleared by the
 * logical ops, where the SDM leaves it undefined); other flag bits are kept.
 * ADC/SBB read CF from *rflags_inout.  CMP and TEST do not write *result,
 * which may then be NULL.  Returns 0, or -EINVAL for a bad kind or size.
 */
int x86_alu(int kind, uint64_t dst, uint64_t src, int size, uint64_t *result,
	    uint64_t *rflags_inout);

/*
 * Register writes follow SDM Vol. 1 3.4.1.1: 8- and 16-bit writes merge
 * into the register, 32-bit writes zero-extend to 64 bits (in 16/32-bit
 * modes the upper half is invisible to the guest, so this is safe there
 * too), 64-bit writes replace.  high8 selects bits 15:8 (size 1, reg 0-3).
 * Invalid reg/size combinations write nothing (read returns 0).
 */
void x86_write_reg(uint64_t gpr[16], int reg, bool high8, int size, uint64_t val);
uint64_t x86_read_reg(const uint64_t gpr[16], int reg, bool high8, int size);

/* val truncated to size bytes, and sign-extended from size bytes to 64. */
uint64_t x86_trunc(uint64_t val, int size);
uint64_t x86_sext(uint64_t val, int size);

struct x86_regs {
	uint64_t gpr[16];
	uint64_t rip;
	uint64_t rflags;
};

/*
 * Guest memory access for x86_exec: read (write == false) into *val, or
 * write *val, size bytes at offset off of segment seg (X86_SEG_*); off is
 * already truncated to the address size, the callback adds the segment base
 * and does the translation and MMIO dispatch.  Returns 0 or a negative
 * errno, which x86_exec returns unchanged.
 */
typedef int (*x86_mem_fn)(void *ctx, int seg, uint64_t off, int size, bool write,
			  uint64_t *val);

/*
 * Execute a decoded instruction against regs: memory accesses go through
 * mem, then registers and flags are updated and RIP advanced by len.  If a
 * callback fails, its error is returned and regs are left unchanged (a
 * memory write may already have happened only for MOVS, whose write is the
 * last access).  String ops run one iteration per call; with a REP prefix,
 * RIP stays on the instruction while rCX (at the address size) is non-zero
 * afterwards, so the guest re-executes it (SDM Vol. 2B REP: interruptible
 * between iterations).  A REP with rCX == 0 only advances RIP.  CMPXCHG does
 * not write memory back when the comparison fails, unlike the hardware's
 * locked bus cycle, so a device sees no spurious write.
 * Returns 0, the callback's error, or -EINVAL for an undecoded insn.
 */
int x86_exec(const struct x86_insn *i, struct x86_regs *regs, x86_mem_fn mem, void *ctx);

#endif
