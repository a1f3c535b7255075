/*
 * x86 instruction decoder and interpreter for guest MMIO accesses.
 *
 * The decoder reads bytes strictly in order through one helper that knows
 * both limits (the bytes the caller has, and the architectural 15), so
 * "truncated" and "too long" cannot be confused and nothing is ever read
 * past avail.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/x86_decode.h"

/* Decoder state: the prefixes seen so far and the read position. */
struct x86_dec {
	const uint8_t *b;
	size_t avail, pos;
	int mode;
	uint8_t rex;		/* 0 or 0x40-0x4F, only if right before the opcode */
	bool p66, p67, lock;
	int seg;		/* override or -1 */
	int rep;
};

/* ModRM fields, with REX extensions applied to reg. */
struct x86_modrm {
	int mod, reg, rm;
};

#define REX_W	0x8
#define REX_R	0x4
#define REX_X	0x2
#define REX_B	0x1

static int dec_u8(struct x86_dec *d, uint8_t *v)
{
	if (d->pos >= X86_MAX_INSN_LEN)
		return -EINVAL;
	if (d->pos >= d->avail)
		return -EAGAIN;
	*v = d->b[d->pos++];
	return 0;
}

/* An n-byte little-endian field, zero-extended. */
static int dec_uint(struct x86_dec *d, int n, uint64_t *v)
{
	uint64_t x = 0;

	*v = 0;
	for (int k = 0; k < n; k++) {
		uint8_t byte;
		int rc = dec_u8(d, &byte);

		if (rc)
			return rc;
		x |= (uint64_t)byte << (8 * k);
	}
	*v = x;
	return 0;
}

uint64_t x86_trunc(uint64_t val, int size)
{
	return size >= 8 ? val : val & ((1ull << (8 * size)) - 1);
}

uint64_t x86_sext(uint64_t val, int size)
{
	int shift = 64 - 8 * size;

	if (size >= 8 || size <= 0)
		return val;
	return (uint64_t)((int64_t)(val << shift) >> shift);
}

/*
 * Legacy prefixes (SDM Vol. 2A 2.1.1) in any order and number, then REX.
 * A REX that is followed by another prefix is ignored (2.2.1).
 */
static int dec_prefixes(struct x86_dec *d, uint8_t *opcode)
{
	static const int8_t segpfx[8] = {
		[0] = X86_SEG_ES, [1] = X86_SEG_CS, [2] = X86_SEG_SS, [3] = X86_SEG_DS,
	};

	for (;;) {
		uint8_t b;
		int rc = dec_u8(d, &b);

		if (rc)
			return rc;
		switch (b) {
		case 0x26: case 0x2e: case 0x36: case 0x3e:
			d->seg = segpfx[(b >> 3) & 3];
			break;
		case 0x64: case 0x65:
			d->seg = b == 0x64 ? X86_SEG_FS : X86_SEG_GS;
			break;
		case 0x66:
			d->p66 = true;
			break;
		case 0x67:
			d->p67 = true;
			break;
		case 0xf0:
			d->lock = true;
			break;
		case 0xf2: case 0xf3:
			d->rep = b == 0xf3 ? X86_REP : X86_REPNE;
			break;
		default:
			if (d->mode == X86_MODE_64 && (b & 0xf0) == 0x40) {
				d->rex = b;
				continue;
			}
			*opcode = b;
			return 0;
		}
		d->rex = 0;
	}
}

/* Operand size for non-byte forms: SDM Vol. 1 3.6.1, Table 3-4. */
static int dec_opsize(const struct x86_dec *d)
{
	if (d->mode == X86_MODE_64 && (d->rex & REX_W))
		return 8;
	if (d->mode == X86_MODE_16)
		return d->p66 ? 4 : 2;
	return d->p66 ? 2 : 4;
}

static int dec_addrsize(const struct x86_dec *d)
{
	if (d->mode == X86_MODE_64)
		return d->p67 ? 4 : 8;
	if (d->mode == X86_MODE_32)
		return d->p67 ? 2 : 4;
	return d->p67 ? 4 : 2;
}

/* 16-bit forms: SDM Vol. 2A Table 2-1. */
static int dec_ea16(struct x86_dec *d, const struct x86_modrm *m, struct x86_insn *i,
		    bool *ss_default)
{
	static const int8_t base[8] = { X86_RBX, X86_RBX, X86_RBP, X86_RBP,
					X86_RSI, X86_RDI, X86_RBP, X86_RBX };
	static const int8_t index[8] = { X86_RSI, X86_RDI, X86_RSI, X86_RDI,
					 X86_REG_NONE, X86_REG_NONE, X86_REG_NONE,
					 X86_REG_NONE };
	uint64_t disp = 0;
	int rc = 0;

	i->ea.base = base[m->rm];
	i->ea.index = index[m->rm];
	if (m->mod == 0 && m->rm == 6) {
		i->ea.base = X86_REG_NONE;
		rc = dec_uint(d, 2, &disp);
		disp = x86_sext(disp, 2);
	} else if (m->mod == 1) {
		rc = dec_uint(d, 1, &disp);
		disp = x86_sext(disp, 1);
	} else if (m->mod == 2) {
		rc = dec_uint(d, 2, &disp);
		disp = x86_sext(disp, 2);
	}
	i->ea.disp = (int64_t)disp;
	*ss_default = i->ea.base == X86_RBP;
	return rc;
}

/* 32/64-bit forms: SDM Vol. 2A Tables 2-2, 2-3 and 2.2.1.6 (RIP-relative). */
static int dec_ea32(struct x86_dec *d, const struct x86_modrm *m, struct x86_insn *i,
		    bool *ss_default)
{
	uint64_t disp = 0;
	int rc, dispsz = m->mod == 1 ? 1 : m->mod == 2 ? 4 : 0;
	int rm = m->rm;

	i->ea.base = rm | (d->rex & REX_B ? 8 : 0);
	if (rm == 4) {
		uint8_t sib;
		int idx;

		rc = dec_u8(d, &sib);
		if (rc)
			return rc;
		idx = ((sib >> 3) & 7) | (d->rex & REX_X ? 8 : 0);
		i->ea.index = idx == X86_RSP ? X86_REG_NONE : idx;
		i->ea.scale = 1 << (sib >> 6);
		i->ea.base = (sib & 7) | (d->rex & REX_B ? 8 : 0);
		if ((sib & 7) == 5 && m->mod == 0) {
			i->ea.base = X86_REG_NONE;
			dispsz = 4;
		}
	} else if (rm == 5 && m->mod == 0) {
		i->ea.base = X86_REG_NONE;
		i->ea.rip_rel = d->mode == X86_MODE_64;
		dispsz = 4;
	}
	rc = dec_uint(d, dispsz, &disp);
	i->ea.disp = (int64_t)x86_sext(disp, dispsz);
	/* SS is the default only for rSP/rBP themselves, not r12/r13. */
	*ss_default = i->ea.base == X86_RSP || i->ea.base == X86_RBP;
	return rc;
}

/* The effective segment for a memory operand: SDM Vol. 1 3.7.4, 3.3.7.1. */
static int dec_seg(const struct x86_dec *d, int dflt)
{
	if (d->seg < 0)
		return dflt;
	if (d->mode == X86_MODE_64 && d->seg != X86_SEG_FS && d->seg != X86_SEG_GS)
		return dflt;
	return d->seg;
}

/*
 * ModRM and everything that hangs off it.  Register-only forms (mod 3) are
 * not MMIO accesses and are reported as unsupported.
 */
static int dec_modrm(struct x86_dec *d, struct x86_insn *i, struct x86_modrm *m)
{
	bool ss_default = false;
	uint8_t b;
	int rc = dec_u8(d, &b);

	if (rc)
		return rc;
	m->mod = b >> 6;
	m->reg = ((b >> 3) & 7) | (d->rex & REX_R ? 8 : 0);
	m->rm = b & 7;
	if (m->mod == 3)
		return -ENOTSUP;
	i->ea.scale = 1;
	if (i->addrsize == 2)
		rc = dec_ea16(d, m, i, &ss_default);
	else
		rc = dec_ea32(d, m, i, &ss_default);
	if (rc)
		return rc;
	i->seg = dec_seg(d, ss_default ? X86_SEG_SS : X86_SEG_DS);
	return 0;
}

/* The reg operand; 8-bit encodings 4-7 mean AH..BH unless a REX is present. */
static void dec_set_reg(const struct x86_dec *d, struct x86_insn *i, int reg)
{
	i->reg = reg;
	if (i->opsize == 1 && !d->rex && reg >= 4 && reg < 8) {
		i->reg = reg - 4;
		i->high8 = true;
	}
}

/* An immediate of min(opsize, 4) bytes, or 1 with byte_imm. */
static int dec_imm(struct x86_dec *d, struct x86_insn *i, bool byte_imm)
{
	int n = byte_imm ? 1 : i->opsize > 4 ? 4 : i->opsize;
	uint64_t v;
	int rc = dec_uint(d, n, &v);

	if (rc)
		return rc;
	i->has_imm = true;
	i->imm = x86_trunc(x86_sext(v, n), i->opsize);
	return 0;
}

/* A ModRM instruction "op r/m, reg" or "op reg, r/m". */
static int dec_rm_reg(struct x86_dec *d, struct x86_insn *i, enum x86_op op,
		      bool byte, bool mem_is_dst)
{
	struct x86_modrm m;
	int rc;

	i->op = op;
	i->opsize = i->regsize = byte ? 1 : dec_opsize(d);
	i->mem_is_dst = mem_is_dst;
	i->mem_write = mem_is_dst && op != X86_OP_TEST;
	rc = dec_modrm(d, i, &m);
	if (rc)
		return rc;
	dec_set_reg(d, i, m.reg);
	return 0;
}

/* The ModRM part of 80-83, C6/C7, F6/F7; the caller checks the digit in
 * m->reg, then reads the immediate. */
static int dec_rm_digit(struct x86_dec *d, struct x86_insn *i, bool byte,
			struct x86_modrm *m)
{
	i->opsize = i->regsize = byte ? 1 : dec_opsize(d);
	i->mem_is_dst = true;
	return dec_modrm(d, i, m);
}

static int dec_group1(struct x86_dec *d, struct x86_insn *i, uint8_t op)
{
	struct x86_modrm m;
	int rc;

	if (op == 0x82 && d->mode == X86_MODE_64)
		return -EINVAL;		/* #UD in 64-bit mode */
	rc = dec_rm_digit(d, i, op != 0x81 && op != 0x83, &m);
	if (rc)
		return rc;
	i->op = X86_OP_ALU;
	i->alu = (enum x86_alu)(m.reg & 7);
	i->mem_write = i->alu != X86_ALU_CMP;
	return dec_imm(d, i, op != 0x81);
}

static int dec_mov_imm(struct x86_dec *d, struct x86_insn *i, uint8_t op)
{
	struct x86_modrm m;
	int rc = dec_rm_digit(d, i, op == 0xc6, &m);

	if (rc)
		return rc;
	if ((m.reg & 7) != 0)
		return -EINVAL;		/* C6/C7 /1-/7 with memory: #UD */
	i->op = X86_OP_MOV_TO_MEM;
	i->mem_write = true;
	return dec_imm(d, i, false);
}

/* F6/F7: only /0, TEST with an immediate (NOT, NEG, MUL, DIV are not MMIO
 * material). */
static int dec_group3(struct x86_dec *d, struct x86_insn *i, uint8_t op)
{
	struct x86_modrm m;
	int rc = dec_rm_digit(d, i, op == 0xf6, &m);

	if (rc)
		return rc;
	if ((m.reg & 7) != 0)
		return -ENOTSUP;
	i->op = X86_OP_TEST;
	i->alu = X86_ALU_TEST;
	return dec_imm(d, i, false);
}

/* A0-A3: the offset is addrsize bytes wide (SDM Vol. 2A 2.2.1.4). */
static int dec_moffs(struct x86_dec *d, struct x86_insn *i, uint8_t op)
{
	uint64_t off;
	int rc;

	i->opsize = i->regsize = op & 1 ? dec_opsize(d) : 1;
	i->op = op & 2 ? X86_OP_MOV_TO_MEM : X86_OP_MOV_FROM_MEM;
	i->mem_is_dst = i->mem_write = op & 2;
	i->reg = X86_RAX;
	i->ea.scale = 1;
	i->seg = dec_seg(d, X86_SEG_DS);
	rc = dec_uint(d, i->addrsize, &off);
	if (rc)
		return rc;
	i->ea.disp = (int64_t)off;
	return 0;
}

static int dec_string(struct x86_dec *d, struct x86_insn *i, uint8_t op)
{
	i->opsize = i->regsize = op & 1 ? dec_opsize(d) : 1;
	i->rep = d->rep;
	i->reg = X86_RAX;
	i->ea.scale = 1;
	switch (op & ~1) {
	case 0xa4:
		i->op = X86_OP_MOVS;
		i->mem_is_dst = i->mem_write = true;
		i->ea.base = X86_RSI;
		i->seg = dec_seg(d, X86_SEG_DS);
		break;
	case 0xaa:
		i->op = X86_OP_STOS;
		i->mem_is_dst = i->mem_write = true;
		i->ea.base = X86_RDI;
		i->seg = X86_SEG_ES;	/* not overridable */
		break;
	default:
		i->op = X86_OP_LODS;
		i->ea.base = X86_RSI;
		i->seg = dec_seg(d, X86_SEG_DS);
		break;
	}
	return 0;
}

/* 0F B6/B7 MOVZX, 0F BE/BF MOVSX, 63 MOVSXD: memory size != register size. */
static int dec_movx(struct x86_dec *d, struct x86_insn *i, enum x86_op op, int memsize)
{
	struct x86_modrm m;
	int rc;

	i->op = op;
	i->regsize = dec_opsize(d);
	i->opsize = memsize;
	rc = dec_modrm(d, i, &m);
	if (rc)
		return rc;
	i->reg = m.reg;		/* never 8-bit, so never high8 */
	return 0;
}

static int dec_0f(struct x86_dec *d, struct x86_insn *i)
{
	uint8_t op;
	int rc = dec_u8(d, &op);

	if (rc)
		return rc;
	switch (op) {
	case 0xb0: case 0xb1:
		return dec_rm_reg(d, i, X86_OP_CMPXCHG, op == 0xb0, true);
	case 0xb6: case 0xb7:
		return dec_movx(d, i, X86_OP_MOVZX, op == 0xb6 ? 1 : 2);
	case 0xbe: case 0xbf:
		return dec_movx(d, i, X86_OP_MOVSX, op == 0xbe ? 1 : 2);
	default:
		return -ENOTSUP;
	}
}

static int dec_opcode(struct x86_dec *d, struct x86_insn *i, uint8_t op)
{
	if (op < 0x40 && (op & 7) < 4) {
		int rc = dec_rm_reg(d, i, X86_OP_ALU, !(op & 1), !(op & 2));

		i->alu = (enum x86_alu)(op >> 3);
		if (i->alu == X86_ALU_CMP)
			i->mem_write = false;
		return rc;
	}
	switch (op) {
	case 0x0f:
		return dec_0f(d, i);
	case 0x63:
		if (d->mode != X86_MODE_64)
			return -ENOTSUP;	/* ARPL */
		return dec_movx(d, i, X86_OP_MOVSX, d->rex & REX_W ? 4 : dec_opsize(d));
	case 0x80: case 0x81: case 0x82: case 0x83:
		return dec_group1(d, i, op);
	case 0x84: case 0x85: {
		int rc = dec_rm_reg(d, i, X86_OP_TEST, op == 0x84, true);

		i->alu = X86_ALU_TEST;
		return rc;
	}
	case 0x86: case 0x87:
		return dec_rm_reg(d, i, X86_OP_XCHG, op == 0x86, true);
	case 0x88: case 0x89:
		return dec_rm_reg(d, i, X86_OP_MOV_TO_MEM, op == 0x88, true);
	case 0x8a: case 0x8b:
		return dec_rm_reg(d, i, X86_OP_MOV_FROM_MEM, op == 0x8a, false);
	case 0xa0: case 0xa1: case 0xa2: case 0xa3:
		return dec_moffs(d, i, op);
	case 0xa4: case 0xa5: case 0xaa: case 0xab: case 0xac: case 0xad:
		return dec_string(d, i, op);
	case 0xc6: case 0xc7:
		return dec_mov_imm(d, i, op);
	case 0xf6: case 0xf7:
		return dec_group3(d, i, op);
	default:
		return -ENOTSUP;
	}
}

/* LOCK is legal only on read-modify-write memory forms (SDM Vol. 2A LOCK). */
static bool dec_lock_ok(const struct x86_insn *i)
{
	switch (i->op) {
	case X86_OP_ALU:
		return i->mem_write;
	case X86_OP_XCHG:
	case X86_OP_CMPXCHG:
		return true;
	default:
		return false;
	}
}

int x86_decode(const uint8_t *bytes, size_t avail, int mode, struct x86_insn *out)
{
	struct x86_dec d = { .b = bytes, .avail = bytes ? avail : 0, .mode = mode, .seg = -1 };
	uint8_t op;
	int rc;

	memset(out, 0, sizeof(*out));
	if (mode != X86_MODE_16 && mode != X86_MODE_32 && mode != X86_MODE_64)
		return -EINVAL;
	rc = dec_prefixes(&d, &op);
	if (rc)
		goto fail;
	out->reg = out->ea.base = out->ea.index = X86_REG_NONE;
	out->addrsize = (uint8_t)dec_addrsize(&d);
	rc = dec_opcode(&d, out, op);
	if (rc)
		goto fail;
	if (d.lock && !dec_lock_ok(out)) {
		rc = -EINVAL;
		goto fail;
	}
	out->lock = d.lock;
	out->len = (uint8_t)d.pos;
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return rc;
}

/* ---- Emulation helpers ---- */

uint64_t x86_ea(const struct x86_insn *i, const uint64_t gpr[16], uint64_t next_rip)
{
	uint64_t a = (uint64_t)i->ea.disp;

	if (i->ea.rip_rel)
		a += next_rip;
	if (i->ea.base >= 0 && i->ea.base < 16)
		a += gpr[i->ea.base];
	if (i->ea.index >= 0 && i->ea.index < 16)
		a += gpr[i->ea.index] * (uint64_t)i->ea.scale;
	return x86_trunc(a, i->addrsize);
}

static bool x86_size_ok(int size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

void x86_write_reg(uint64_t gpr[16], int reg, bool high8, int size, uint64_t val)
{
	if (reg < 0 || reg > 15 || !x86_size_ok(size) || (high8 && (size != 1 || reg > 3)))
		return;
	if (high8)
		gpr[reg] = (gpr[reg] & ~0xff00ull) | (val & 0xff) << 8;
	else if (size == 1)
		gpr[reg] = (gpr[reg] & ~0xffull) | (val & 0xff);
	else if (size == 2)
		gpr[reg] = (gpr[reg] & ~0xffffull) | (val & 0xffff);
	else
		gpr[reg] = x86_trunc(val, size);
}

uint64_t x86_read_reg(const uint64_t gpr[16], int reg, bool high8, int size)
{
	if (reg < 0 || reg > 15 || !x86_size_ok(size) || (high8 && (size != 1 || reg > 3)))
		return 0;
	if (high8)
		return (gpr[reg] >> 8) & 0xff;
	return x86_trunc(gpr[reg], size);
}

/* PF reflects the low byte only: set when it has an even number of ones. */
static bool x86_parity(uint64_t v)
{
	uint8_t b = (uint8_t)v;

	b ^= b >> 4;
	b ^= b >> 2;
	b ^= b >> 1;
	return !(b & 1);
}

/*
 * Flag rules from the SDM Vol. 2 ADD/ADC/SUB/SBB/CMP pages: OF is a signed
 * overflow (operands of equal sign for add, different for sub, result of
 * the other sign), AF the carry/borrow out of bit 3.
 */
int x86_alu(int kind, uint64_t dst, uint64_t src, int size, uint64_t *result,
	    uint64_t *rflags_inout)
{
	uint64_t top, r, fl = 0;
	uint64_t c = *rflags_inout & X86_FL_CF ? 1 : 0;
	bool cf = false, of = false, af = false;

	if (!x86_size_ok(size) || kind < X86_ALU_ADD || kind > X86_ALU_TEST)
		return -EINVAL;
	top = 1ull << (8 * size - 1);
	dst = x86_trunc(dst, size);
	src = x86_trunc(src, size);
	switch (kind) {
	case X86_ALU_ADD:
	case X86_ALU_ADC:
		if (kind == X86_ALU_ADD)
			c = 0;
		r = x86_trunc(dst + src + c, size);
		cf = r < dst || (c && r == dst);
		of = (dst ^ r) & (src ^ r) & top;
		af = (dst ^ src ^ r) & 0x10;
		break;
	case X86_ALU_SUB:
	case X86_ALU_CMP:
	case X86_ALU_SBB:
		if (kind != X86_ALU_SBB)
			c = 0;
		r = x86_trunc(dst - src - c, size);
		cf = dst < src || (c && dst == src);
		of = (dst ^ src) & (dst ^ r) & top;
		af = (dst ^ src ^ r) & 0x10;
		break;
	case X86_ALU_OR:
		r = dst | src;
		break;
	case X86_ALU_XOR:
		r = dst ^ src;
		break;
	default:	/* AND, TEST */
		r = dst & src;
		break;
	}
	fl |= cf ? X86_FL_CF : 0;
	fl |= of ? X86_FL_OF : 0;
	fl |= af ? X86_FL_AF : 0;
	fl |= x86_parity(r) ? X86_FL_PF : 0;
	fl |= r == 0 ? X86_FL_ZF : 0;
	fl |= r & top ? X86_FL_SF : 0;
	*rflags_inout = (*rflags_inout & ~X86_FL_ARITH) | fl;
	if (kind != X86_ALU_CMP && kind != X86_ALU_TEST && result)
		*result = r;
	return 0;
}

/* ---- Interpreter ---- */

/* The value the instruction stores or combines: immediate or register. */
static uint64_t exec_src(const struct x86_insn *i, const uint64_t gpr[16])
{
	if (i->has_imm)
		return i->imm;
	return x86_read_reg(gpr, i->reg, i->high8, i->opsize);
}

/* One iteration of MOVS/STOS/LODS (SDM Vol. 2B: MOVS, STOS, LODS, REP). */
static int exec_string(const struct x86_insn *i, struct x86_regs *r, x86_mem_fn mem,
		       void *ctx)
{
	uint64_t g[16], val = 0, step = r->rflags & X86_FL_DF ? -(uint64_t)i->opsize : i->opsize;
	int a = i->addrsize, rc = 0;

	if (i->rep && x86_read_reg(r->gpr, X86_RCX, false, a) == 0) {
		r->rip += i->len;
		return 0;
	}
	memcpy(g, r->gpr, sizeof(g));
	if (i->op == X86_OP_STOS)
		val = x86_read_reg(g, X86_RAX, false, i->opsize);
	else
		rc = mem(ctx, i->seg, x86_read_reg(g, X86_RSI, false, a), i->opsize, false, &val);
	if (!rc && i->op != X86_OP_LODS)
		rc = mem(ctx, X86_SEG_ES, x86_read_reg(g, X86_RDI, false, a), i->opsize,
			 true, &val);
	if (rc)
		return rc;
	if (i->op == X86_OP_LODS)
		x86_write_reg(g, X86_RAX, false, i->opsize, val);
	if (i->op != X86_OP_STOS)
		x86_write_reg(g, X86_RSI, false, a, g[X86_RSI] + step);
	if (i->op != X86_OP_LODS)
		x86_write_reg(g, X86_RDI, false, a, g[X86_RDI] + step);
	if (i->rep)
		x86_write_reg(g, X86_RCX, false, a, g[X86_RCX] - 1);
	memcpy(r->gpr, g, sizeof(g));
	if (!i->rep || x86_read_reg(g, X86_RCX, false, a) == 0)
		r->rip += i->len;
	return 0;
}

/* CMPXCHG: compare the accumulator with memory (SDM Vol. 2A CMPXCHG). */
static int exec_cmpxchg(const struct x86_insn *i, uint64_t g[16], uint64_t *fl,
			uint64_t m, uint64_t *out, bool *write)
{
	uint64_t acc = x86_read_reg(g, X86_RAX, false, i->opsize);

	x86_alu(X86_ALU_CMP, acc, m, i->opsize, NULL, fl);
	if (*fl & X86_FL_ZF) {
		*out = exec_src(i, g);
		*write = true;
	} else {
		x86_write_reg(g, X86_RAX, false, i->opsize, m);
	}
	return 0;
}

/*
 * Compute the effect of a non-string instruction given the memory operand's
 * old value m: registers g and flags fl are updated in place, *out and
 * *write give the store, if any.
 */
static int exec_compute(const struct x86_insn *i, uint64_t g[16], uint64_t *fl, uint64_t m,
			uint64_t *out, bool *write)
{
	uint64_t v;

	*write = false;
	switch (i->op) {
	case X86_OP_MOV_TO_MEM:
		*out = exec_src(i, g);
		*write = true;
		return 0;
	case X86_OP_MOV_FROM_MEM:
	case X86_OP_MOVZX:
		x86_write_reg(g, i->reg, i->high8, i->regsize, m);
		return 0;
	case X86_OP_MOVSX:
		x86_write_reg(g, i->reg, false, i->regsize, x86_sext(m, i->opsize));
		return 0;
	case X86_OP_TEST:
		return x86_alu(X86_ALU_TEST, m, exec_src(i, g), i->opsize, NULL, fl);
	case X86_OP_XCHG:
		*out = exec_src(i, g);
		*write = true;
		x86_write_reg(g, i->reg, i->high8, i->opsize, m);
		return 0;
	case X86_OP_CMPXCHG:
		return exec_cmpxchg(i, g, fl, m, out, write);
	case X86_OP_ALU:
		if (!i->mem_is_dst) {
			/* reg op= mem; CMP leaves v, and so the register, as is */
			v = x86_read_reg(g, i->reg, i->high8, i->opsize);
			if (x86_alu(i->alu, v, m, i->opsize, &v, fl))
				return -EINVAL;
			x86_write_reg(g, i->reg, i->high8, i->opsize, v);
			return 0;
		}
		if (x86_alu(i->alu, m, exec_src(i, g), i->opsize, out, fl))
			return -EINVAL;
		*write = i->alu != X86_ALU_CMP;
		return 0;
	default:
		return -EINVAL;
	}
}

int x86_exec(const struct x86_insn *i, struct x86_regs *regs, x86_mem_fn mem, void *ctx)
{
	uint64_t g[16], fl = regs->rflags, m = 0, out = 0, off;
	bool write;
	int rc;

	if (!mem || i->len == 0 || i->op == X86_OP_NONE || !x86_size_ok(i->opsize))
		return -EINVAL;
	if (i->op == X86_OP_MOVS || i->op == X86_OP_STOS || i->op == X86_OP_LODS)
		return exec_string(i, regs, mem, ctx);
	memcpy(g, regs->gpr, sizeof(g));
	off = x86_ea(i, g, regs->rip + i->len);
	if (i->op != X86_OP_MOV_TO_MEM) {
		rc = mem(ctx, i->seg, off, i->opsize, false, &m);
		if (rc)
			return rc;
		m = x86_trunc(m, i->opsize);
	}
	rc = exec_compute(i, g, &fl, m, &out, &write);
	if (rc)
		return rc;
	if (write) {
		rc = mem(ctx, i->seg, off, i->opsize, true, &out);
		if (rc)
			return rc;
	}
	memcpy(regs->gpr, g, sizeof(g));
	regs->rflags = fl;
	regs->rip += i->len;
	return 0;
}
