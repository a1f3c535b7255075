/*
 * Unit tests and fuzz test for kernel/lib/x86_decode.c.
 *
 * The encodings in the tables were written from the SDM and cross-checked
 * against GNU as/objdump when the tests were written; the ALU flags are
 * checked against the host CPU at run time.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/x86_decode.h"

#define XN	X86_REG_NONE
#define XB(...)	.n = sizeof((uint8_t[]){ __VA_ARGS__ }), .b = { __VA_ARGS__ }
#define XEA(b_, i_, s_, d_)	.ea = { (b_), (i_), (s_), (d_), false }
#define XRIP(d_)		.ea = { XN, XN, 1, (d_), true }

struct xd_case {
	int mode;
	uint8_t n;
	uint8_t b[15];
	struct x86_insn w;
};

/* Shorthands for the common shapes. */
#define XMOVST(len_, sz_, as_, reg_, seg_) \
	.len = (len_), .opsize = (sz_), .regsize = (sz_), .addrsize = (as_), \
	.op = X86_OP_MOV_TO_MEM, .reg = (reg_), .seg = (seg_), .mem_is_dst = true, \
	.mem_write = true
#define XMOVLD(len_, sz_, as_, reg_, seg_) \
	.len = (len_), .opsize = (sz_), .regsize = (sz_), .addrsize = (as_), \
	.op = X86_OP_MOV_FROM_MEM, .reg = (reg_), .seg = (seg_)
#define XIMM(len_, sz_, as_, imm_, seg_) \
	.len = (len_), .opsize = (sz_), .regsize = (sz_), .addrsize = (as_), \
	.op = X86_OP_MOV_TO_MEM, .reg = XN, .has_imm = true, .imm = (imm_), \
	.seg = (seg_), .mem_is_dst = true, .mem_write = true
#define XALU(len_, kind_, sz_, reg_, dst_, wr_) \
	.len = (len_), .opsize = (sz_), .regsize = (sz_), .addrsize = 8, \
	.op = X86_OP_ALU, .alu = (kind_), .reg = (reg_), .seg = X86_SEG_DS, \
	.mem_is_dst = (dst_), .mem_write = (wr_)
#define XALUI(len_, kind_, sz_, as_, imm_, wr_) \
	.len = (len_), .opsize = (sz_), .regsize = (sz_), .addrsize = (as_), \
	.op = X86_OP_ALU, .alu = (kind_), .reg = XN, .has_imm = true, .imm = (imm_), \
	.seg = X86_SEG_DS, .mem_is_dst = true, .mem_write = (wr_)

static const struct xd_case xd_cases[] = {
	/* ---- 64-bit ---- */
	{ 64, XB(0x89, 0x03), { XMOVST(2, 4, 8, X86_RAX, X86_SEG_DS), XEA(X86_RBX, XN, 1, 0) } },
	{ 64, XB(0x88, 0x4e, 0x12), { XMOVST(3, 1, 8, X86_RCX, X86_SEG_DS), XEA(X86_RSI, XN, 1, 0x12) } },
	/* AH without REX: GPR 0 bits 15:8 */
	{ 64, XB(0x88, 0x27), { XMOVST(2, 1, 8, X86_RAX, X86_SEG_DS), .high8 = true,
				XEA(X86_RDI, XN, 1, 0) } },
	/* SIL: an empty REX turns encoding 6 into SIL */
	{ 64, XB(0x40, 0x88, 0x37), { XMOVST(3, 1, 8, X86_RSI, X86_SEG_DS), XEA(X86_RDI, XN, 1, 0) } },
	{ 64, XB(0x4c, 0x89, 0x0d, 0x78, 0x56, 0x34, 0x12),
	  { XMOVST(7, 8, 8, X86_R9, X86_SEG_DS), XRIP(0x12345678) } },
	/* rSP base via SIB: SS default */
	{ 64, XB(0x4c, 0x8b, 0x24, 0x24), { XMOVLD(4, 8, 8, X86_R12, X86_SEG_SS), XEA(X86_RSP, XN, 1, 0) } },
	{ 64, XB(0x4a, 0x8b, 0x94, 0xdd, 0x80, 0x00, 0x00, 0x00),
	  { XMOVLD(8, 8, 8, X86_RDX, X86_SEG_SS), XEA(X86_RBP, X86_R11, 8, 0x80) } },
	/* r13 base: DS, not SS */
	{ 64, XB(0x41, 0x8b, 0x45, 0x10), { XMOVLD(4, 4, 8, X86_RAX, X86_SEG_DS), XEA(X86_R13, XN, 1, 0x10) } },
	/* no base, REX.X index 12 (not "no index") */
	{ 64, XB(0x42, 0x8b, 0x04, 0xa5, 0, 0, 0, 0),
	  { XMOVLD(8, 4, 8, X86_RAX, X86_SEG_DS), XEA(XN, X86_R12, 4, 0) } },
	{ 64, XB(0x8b, 0x04, 0x24), { XMOVLD(3, 4, 8, X86_RAX, X86_SEG_SS), XEA(X86_RSP, XN, 1, 0) } },
	{ 64, XB(0xc7, 0x00, 0xef, 0xbe, 0xad, 0xde), { XIMM(6, 4, 8, 0xdeadbeef, X86_SEG_DS), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x48, 0xc7, 0x40, 0x08, 0xff, 0xff, 0xff, 0xff),
	  { XIMM(8, 8, 8, UINT64_MAX, X86_SEG_DS), XEA(X86_RAX, XN, 1, 8) } },
	{ 64, XB(0x66, 0xc7, 0x00, 0x34, 0x12), { XIMM(5, 2, 8, 0x1234, X86_SEG_DS), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0xc6, 0x00, 0x7f), { XIMM(3, 1, 8, 0x7f, X86_SEG_DS), XEA(X86_RAX, XN, 1, 0) } },
	/* disp32 sign extension */
	{ 64, XB(0xc6, 0x80, 0x00, 0xff, 0xff, 0xff, 0x80),
	  { XIMM(7, 1, 8, 0x80, X86_SEG_DS), XEA(X86_RAX, XN, 1, -256) } },
	/* 64-bit moffs */
	{ 64, XB(0xa1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11),
	  { XMOVLD(9, 4, 8, X86_RAX, X86_SEG_DS), XEA(XN, XN, 1, 0x1122334455667788) } },
	{ 64, XB(0xa2, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11),
	  { XMOVST(9, 1, 8, X86_RAX, X86_SEG_DS), XEA(XN, XN, 1, 0x1122334455667788) } },
	{ 64, XB(0x48, 0xa3, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x91),
	  { XMOVST(10, 8, 8, X86_RAX, X86_SEG_DS), XEA(XN, XN, 1, (int64_t)0x9122334455667788ull) } },
	/* 32-bit moffs with 67 */
	{ 64, XB(0x67, 0xa1, 0x44, 0x33, 0x22, 0x11),
	  { XMOVLD(6, 4, 4, X86_RAX, X86_SEG_DS), XEA(XN, XN, 1, 0x11223344) } },
	{ 64, XB(0x0f, 0xb6, 0x08), { .len = 3, .opsize = 1, .regsize = 4, .addrsize = 8,
				      .op = X86_OP_MOVZX, .reg = X86_RCX, .seg = X86_SEG_DS,
				      XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x4c, 0x0f, 0xb7, 0x40, 0x02), { .len = 5, .opsize = 2, .regsize = 8, .addrsize = 8,
						  .op = X86_OP_MOVZX, .reg = X86_R8, .seg = X86_SEG_DS,
						  XEA(X86_RAX, XN, 1, 2) } },
	{ 64, XB(0x66, 0x0f, 0xbe, 0x08), { .len = 4, .opsize = 1, .regsize = 2, .addrsize = 8,
					    .op = X86_OP_MOVSX, .reg = X86_RCX, .seg = X86_SEG_DS,
					    XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x0f, 0xbf, 0x08), { .len = 3, .opsize = 2, .regsize = 4, .addrsize = 8,
				      .op = X86_OP_MOVSX, .reg = X86_RCX, .seg = X86_SEG_DS,
				      XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x48, 0x63, 0x10), { .len = 3, .opsize = 4, .regsize = 8, .addrsize = 8,
				      .op = X86_OP_MOVSX, .reg = X86_RDX, .seg = X86_SEG_DS,
				      XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x85, 0x08), { .len = 2, .opsize = 4, .regsize = 4, .addrsize = 8,
				.op = X86_OP_TEST, .alu = X86_ALU_TEST, .reg = X86_RCX,
				.seg = X86_SEG_DS, .mem_is_dst = true, XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0xf6, 0x00, 0x80), { .len = 3, .opsize = 1, .regsize = 1, .addrsize = 8,
				      .op = X86_OP_TEST, .alu = X86_ALU_TEST, .reg = XN,
				      .has_imm = true, .imm = 0x80, .seg = X86_SEG_DS,
				      .mem_is_dst = true, XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0xf7, 0x40, 0x04, 0x00, 0x00, 0x00, 0x80),
	  { .len = 7, .opsize = 4, .regsize = 4, .addrsize = 8, .op = X86_OP_TEST,
	    .alu = X86_ALU_TEST, .reg = XN, .has_imm = true, .imm = 0x80000000,
	    .seg = X86_SEG_DS, .mem_is_dst = true, XEA(X86_RAX, XN, 1, 4) } },
	{ 64, XB(0x83, 0x08, 0x10), { XALUI(3, X86_ALU_OR, 4, 8, 0x10, true), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0xf0, 0x83, 0x08, 0x10), { XALUI(4, X86_ALU_OR, 4, 8, 0x10, true), .lock = true,
					    XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x48, 0x83, 0x20, 0xf0), { XALUI(4, X86_ALU_AND, 8, 8, 0xfffffffffffffff0ull, true),
					    XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x66, 0x83, 0x00, 0x80), { XALUI(4, X86_ALU_ADD, 2, 8, 0xff80, true),
					    XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x66, 0x81, 0x00, 0x34, 0x12), { XALUI(5, X86_ALU_ADD, 2, 8, 0x1234, true),
						  XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x48, 0x81, 0x28, 0x00, 0x00, 0x00, 0x80),
	  { XALUI(7, X86_ALU_SUB, 8, 8, 0xffffffff80000000ull, true), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x80, 0x38, 0x01), { XALUI(3, X86_ALU_CMP, 1, 8, 1, false), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x80, 0x10, 0x01), { XALUI(3, X86_ALU_ADC, 1, 8, 1, true), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x83, 0x18, 0xff), { XALUI(3, X86_ALU_SBB, 4, 8, 0xffffffff, true), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x83, 0x30, 0x01), { XALUI(3, X86_ALU_XOR, 4, 8, 1, true), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x29, 0x10), { XALU(2, X86_ALU_SUB, 4, X86_RDX, true, true), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x33, 0x10), { XALU(2, X86_ALU_XOR, 4, X86_RDX, false, false), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x4c, 0x3b, 0x10), { XALU(3, X86_ALU_CMP, 8, X86_R10, false, false), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x4c, 0x39, 0x10), { XALU(3, X86_ALU_CMP, 8, X86_R10, true, false), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x00, 0x00), { XALU(2, X86_ALU_ADD, 1, X86_RAX, true, true), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x0a, 0x38), { XALU(2, X86_ALU_OR, 1, X86_RBX, false, false), .high8 = true,
				XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x21, 0x08), { XALU(2, X86_ALU_AND, 4, X86_RCX, true, true), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x11, 0x08), { XALU(2, X86_ALU_ADC, 4, X86_RCX, true, true), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x1b, 0x08), { XALU(2, X86_ALU_SBB, 4, X86_RCX, false, false), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x87, 0x00), { .len = 2, .opsize = 4, .regsize = 4, .addrsize = 8, .op = X86_OP_XCHG,
				.reg = X86_RAX, .seg = X86_SEG_DS, .mem_is_dst = true, .mem_write = true,
				XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0xf0, 0x0f, 0xb1, 0x08), { .len = 4, .opsize = 4, .regsize = 4, .addrsize = 8,
					    .op = X86_OP_CMPXCHG, .reg = X86_RCX, .lock = true,
					    .seg = X86_SEG_DS, .mem_is_dst = true, .mem_write = true,
					    XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0xf3, 0xa4), { .len = 2, .opsize = 1, .regsize = 1, .addrsize = 8, .op = X86_OP_MOVS,
				.reg = X86_RAX, .rep = X86_REP, .seg = X86_SEG_DS, .mem_is_dst = true,
				.mem_write = true, XEA(X86_RSI, XN, 1, 0) } },
	{ 64, XB(0xf3, 0xab), { .len = 2, .opsize = 4, .regsize = 4, .addrsize = 8, .op = X86_OP_STOS,
				.reg = X86_RAX, .rep = X86_REP, .seg = X86_SEG_ES, .mem_is_dst = true,
				.mem_write = true, XEA(X86_RDI, XN, 1, 0) } },
	/* STOS ignores a segment override, LODS honours FS */
	{ 64, XB(0x64, 0xaa), { .len = 2, .opsize = 1, .regsize = 1, .addrsize = 8, .op = X86_OP_STOS,
				.reg = X86_RAX, .seg = X86_SEG_ES, .mem_is_dst = true,
				.mem_write = true, XEA(X86_RDI, XN, 1, 0) } },
	{ 64, XB(0x64, 0x48, 0xad), { .len = 3, .opsize = 8, .regsize = 8, .addrsize = 8,
				      .op = X86_OP_LODS, .reg = X86_RAX, .seg = X86_SEG_FS,
				      XEA(X86_RSI, XN, 1, 0) } },
	{ 64, XB(0xf2, 0x67, 0x66, 0xa5), { .len = 4, .opsize = 2, .regsize = 2, .addrsize = 4,
					    .op = X86_OP_MOVS, .reg = X86_RAX, .rep = X86_REPNE,
					    .seg = X86_SEG_DS, .mem_is_dst = true, .mem_write = true,
					    XEA(X86_RSI, XN, 1, 0) } },
	{ 64, XB(0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00),
	  { XMOVLD(9, 8, 8, X86_RAX, X86_SEG_FS), XEA(XN, XN, 1, 0x28) } },
	/* ES override is ignored in 64-bit mode */
	{ 64, XB(0x26, 0x8b, 0x00), { XMOVLD(3, 4, 8, X86_RAX, X86_SEG_DS), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x65, 0x8b, 0x45, 0x00), { XMOVLD(4, 4, 8, X86_RAX, X86_SEG_GS), XEA(X86_RBP, XN, 1, 0) } },
	{ 64, XB(0x67, 0x8b, 0x08), { XMOVLD(3, 4, 4, X86_RCX, X86_SEG_DS), XEA(X86_RAX, XN, 1, 0) } },
	{ 64, XB(0x67, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00), { XMOVLD(7, 4, 4, X86_RAX, X86_SEG_DS), XRIP(0x10) } },
	/* REX.W beats 66; a REX before a legacy prefix is dropped */
	{ 64, XB(0x66, 0x48, 0x89, 0x03), { XMOVST(4, 8, 8, X86_RAX, X86_SEG_DS), XEA(X86_RBX, XN, 1, 0) } },
	{ 64, XB(0x48, 0x66, 0x89, 0x03), { XMOVST(4, 2, 8, X86_RAX, X86_SEG_DS), XEA(X86_RBX, XN, 1, 0) } },
	{ 64, XB(0x4d, 0x89, 0x44, 0x24, 0xf8),
	  { XMOVST(5, 8, 8, X86_R8, X86_SEG_DS), XEA(X86_R12, XN, 1, -8) } },

	/* ---- 32-bit ---- */
	{ 32, XB(0x89, 0x03), { XMOVST(2, 4, 4, X86_RAX, X86_SEG_DS), XEA(X86_RBX, XN, 1, 0) } },
	{ 32, XB(0x8b, 0x45, 0x00), { XMOVLD(3, 4, 4, X86_RAX, X86_SEG_SS), XEA(X86_RBP, XN, 1, 0) } },
	{ 32, XB(0x66, 0x89, 0x44, 0x7e, 0x10),
	  { XMOVST(5, 2, 4, X86_RAX, X86_SEG_DS), XEA(X86_RSI, X86_RDI, 2, 0x10) } },
	/* mod 0 rm 5 is absolute, not RIP-relative, outside 64-bit mode */
	{ 32, XB(0x8b, 0x0d, 0xb0, 0x00, 0xe0, 0xfe),
	  { XMOVLD(6, 4, 4, X86_RCX, X86_SEG_DS), XEA(XN, XN, 1, (int32_t)0xfee000b0) } },
	{ 32, XB(0xa1, 0x78, 0x56, 0x34, 0x12), { XMOVLD(5, 4, 4, X86_RAX, X86_SEG_DS), XEA(XN, XN, 1, 0x12345678) } },
	{ 32, XB(0xa3, 0xb0, 0x00, 0xe0, 0xfe), { XMOVST(5, 4, 4, X86_RAX, X86_SEG_DS), XEA(XN, XN, 1, 0xfee000b0) } },
	{ 32, XB(0x67, 0x8a, 0x00), { XMOVLD(3, 1, 2, X86_RAX, X86_SEG_DS), XEA(X86_RBX, X86_RSI, 1, 0) } },
	{ 32, XB(0x36, 0xc7, 0x00, 0x01, 0x00, 0x00, 0x00),
	  { XIMM(7, 4, 4, 1, X86_SEG_SS), XEA(X86_RAX, XN, 1, 0) } },
	{ 32, XB(0x26, 0x89, 0x03), { XMOVST(3, 4, 4, X86_RAX, X86_SEG_ES), XEA(X86_RBX, XN, 1, 0) } },
	{ 32, XB(0x82, 0x08, 0x01), { XALUI(3, X86_ALU_OR, 1, 4, 1, true), XEA(X86_RAX, XN, 1, 0) } },
	/* 0x48 is DEC EAX here, so REX.W does not exist: 66 makes 16-bit */
	{ 32, XB(0x66, 0xc7, 0x00, 0x34, 0x12), { XIMM(5, 2, 4, 0x1234, X86_SEG_DS), XEA(X86_RAX, XN, 1, 0) } },

	/* ---- 16-bit ---- */
	{ 16, XB(0x89, 0x00), { XMOVST(2, 2, 2, X86_RAX, X86_SEG_DS), XEA(X86_RBX, X86_RSI, 1, 0) } },
	{ 16, XB(0xa1, 0x34, 0x12), { XMOVLD(3, 2, 2, X86_RAX, X86_SEG_DS), XEA(XN, XN, 1, 0x1234) } },
	{ 16, XB(0x8b, 0x4e, 0x10), { XMOVLD(3, 2, 2, X86_RCX, X86_SEG_SS), XEA(X86_RBP, XN, 1, 0x10) } },
	{ 16, XB(0x66, 0x89, 0x05), { XMOVST(3, 4, 2, X86_RAX, X86_SEG_DS), XEA(X86_RDI, XN, 1, 0) } },
	{ 16, XB(0x67, 0x8b, 0x03), { XMOVLD(3, 2, 4, X86_RAX, X86_SEG_DS), XEA(X86_RBX, XN, 1, 0) } },
	{ 16, XB(0xc7, 0x43, 0xfe, 0xaa, 0x55),
	  { XIMM(5, 2, 2, 0x55aa, X86_SEG_SS), XEA(X86_RBP, X86_RDI, 1, -2) } },
	/* [disp16] and [bp+si+disp16] */
	{ 16, XB(0x8b, 0x1e, 0x00, 0x80), { XMOVLD(4, 2, 2, X86_RBX, X86_SEG_DS), XEA(XN, XN, 1, -0x8000) } },
	{ 16, XB(0x8a, 0xa2, 0x34, 0x12), { XMOVLD(4, 1, 2, X86_RAX, X86_SEG_SS), .high8 = true,
					    XEA(X86_RBP, X86_RSI, 1, 0x1234) } },
	{ 16, XB(0x2e, 0x88, 0x07), { XMOVST(3, 1, 2, X86_RAX, X86_SEG_CS), XEA(X86_RBX, XN, 1, 0) } },
	{ 16, XB(0x3e, 0x89, 0x46, 0x02), { XMOVST(4, 2, 2, X86_RAX, X86_SEG_DS), XEA(X86_RBP, XN, 1, 2) } },
	{ 16, XB(0xf3, 0xab), { .len = 2, .opsize = 2, .regsize = 2, .addrsize = 2, .op = X86_OP_STOS,
				.reg = X86_RAX, .rep = X86_REP, .seg = X86_SEG_ES, .mem_is_dst = true,
				.mem_write = true, XEA(X86_RDI, XN, 1, 0) } },
	{ 16, XB(0x66, 0x0f, 0xb7, 0x07), { .len = 4, .opsize = 2, .regsize = 4, .addrsize = 2,
					    .op = X86_OP_MOVZX, .reg = X86_RAX, .seg = X86_SEG_DS,
					    XEA(X86_RBX, XN, 1, 0) } },
};

#define XD_NCASES	(sizeof(xd_cases) / sizeof(xd_cases[0]))

static void xd_expect(const struct xd_case *c, size_t k, const struct x86_insn *got)
{
	const struct x86_insn *w = &c->w;

	cr_assert_eq(got->len, w->len, "case %zu: len %u", k, got->len);
	cr_assert_eq(got->op, w->op, "case %zu: op %d", k, got->op);
	cr_assert_eq(got->alu, w->alu, "case %zu: alu %d", k, got->alu);
	cr_assert_eq(got->opsize, w->opsize, "case %zu: opsize %u", k, got->opsize);
	cr_assert_eq(got->regsize, w->regsize, "case %zu: regsize %u", k, got->regsize);
	cr_assert_eq(got->addrsize, w->addrsize, "case %zu: addrsize %u", k, got->addrsize);
	cr_assert_eq(got->reg, w->reg, "case %zu: reg %d", k, got->reg);
	cr_assert_eq(got->high8, w->high8, "case %zu: high8", k);
	cr_assert_eq(got->has_imm, w->has_imm, "case %zu: has_imm", k);
	cr_assert_eq(got->imm, w->imm, "case %zu: imm %#llx", k, (unsigned long long)got->imm);
	cr_assert_eq(got->rep, w->rep, "case %zu: rep", k);
	cr_assert_eq(got->lock, w->lock, "case %zu: lock", k);
	cr_assert_eq(got->seg, w->seg, "case %zu: seg %d", k, got->seg);
	cr_assert_eq(got->mem_is_dst, w->mem_is_dst, "case %zu: mem_is_dst", k);
	cr_assert_eq(got->mem_write, w->mem_write, "case %zu: mem_write", k);
	cr_assert_eq(got->ea.base, w->ea.base, "case %zu: base %d", k, got->ea.base);
	cr_assert_eq(got->ea.index, w->ea.index, "case %zu: index %d", k, got->ea.index);
	cr_assert_eq(got->ea.scale, w->ea.scale, "case %zu: scale %d", k, got->ea.scale);
	cr_assert_eq(got->ea.disp, w->ea.disp, "case %zu: disp %lld", k, (long long)got->ea.disp);
	cr_assert_eq(got->ea.rip_rel, w->ea.rip_rel, "case %zu: rip_rel", k);
}

Test(x86_decode, encodings_table)
{
	for (size_t k = 0; k < XD_NCASES; k++) {
		const struct xd_case *c = &xd_cases[k];
		uint8_t buf[32];
		struct x86_insn insn;
		int rc;

		cr_assert_eq(c->n, c->w.len, "case %zu: table length mismatch", k);
		/* Trailing bytes must not be consumed. */
		memset(buf, 0x90, sizeof(buf));
		memcpy(buf, c->b, c->n);
		rc = x86_decode(buf, sizeof(buf), c->mode, &insn);
		cr_assert_eq(rc, 0, "case %zu: rc %d", k, rc);
		xd_expect(c, k, &insn);
		/* Exactly the instruction's bytes suffice. */
		cr_assert_eq(x86_decode(c->b, c->n, c->mode, &insn), 0, "case %zu", k);
		cr_assert_eq(insn.len, c->n);
	}
}

Test(x86_decode, truncation_asks_for_more)
{
	for (size_t k = 0; k < XD_NCASES; k++) {
		const struct xd_case *c = &xd_cases[k];
		struct x86_insn insn;

		for (size_t avail = 0; avail < c->n; avail++) {
			memset(&insn, 0x5a, sizeof(insn));
			cr_assert_eq(x86_decode(c->b, avail, c->mode, &insn), -EAGAIN,
				     "case %zu avail %zu", k, avail);
			cr_assert_eq(insn.len, 0);
			cr_assert_eq(insn.op, X86_OP_NONE);
		}
	}
	/* NULL with nothing available is just "need more". */
	struct x86_insn insn;

	cr_assert_eq(x86_decode(NULL, 5, X86_MODE_64, &insn), -EAGAIN);
}

Test(x86_decode, rip_relative)
{
	static const uint8_t b[] = { 0x4c, 0x89, 0x0d, 0x78, 0x56, 0x34, 0x12 };
	static const uint8_t b67[] = { 0x67, 0x8b, 0x05, 0xf0, 0xff, 0xff, 0xff };
	uint64_t gpr[16] = { 0 };
	struct x86_insn i;

	for (int r = 0; r < 16; r++)
		gpr[r] = 0x1111111111111111ull * (uint64_t)r;
	cr_assert_eq(x86_decode(b, sizeof(b), X86_MODE_64, &i), 0);
	cr_assert(i.ea.rip_rel);
	cr_assert_eq(x86_ea(&i, gpr, 0xffffffff80001000ull + i.len), 0xffffffff9234667full);
	/* Negative displacement, and EIP-relative wrapping at 4 GiB with 67. */
	cr_assert_eq(x86_decode(b67, sizeof(b67), X86_MODE_64, &i), 0);
	cr_assert_eq(i.ea.disp, -16);
	cr_assert_eq(x86_ea(&i, gpr, 0x100000005ull), 0xfffffff5ull);
	cr_assert_eq(x86_ea(&i, gpr, 0x1000), 0xff0);
}

Test(x86_decode, ea_arithmetic)
{
	uint64_t gpr[16] = { 0 };
	struct x86_insn i;
	static const uint8_t sib[] = { 0x4a, 0x8b, 0x94, 0xdd, 0x80, 0x00, 0x00, 0x00 };
	static const uint8_t bpsi[] = { 0x8b, 0x02 };		/* mov ax,[bp+si] */
	static const uint8_t bpdi8[] = { 0x8b, 0x43, 0xfe };	/* mov ax,[bp+di-2] */
	static const uint8_t m32[] = { 0x67, 0x8b, 0x44, 0x88, 0x04 };	/* [eax+ecx*4+4] */

	cr_assert_eq(x86_decode(sib, sizeof(sib), X86_MODE_64, &i), 0);
	gpr[X86_RBP] = 0x1000;
	gpr[X86_R11] = 3;
	cr_assert_eq(x86_ea(&i, gpr, 0), 0x1000 + 24 + 0x80);
	gpr[X86_RBP] = UINT64_MAX;
	cr_assert_eq(x86_ea(&i, gpr, 0), 24 + 0x80 - 1);

	/* 16-bit addressing wraps at 64 KiB. */
	cr_assert_eq(x86_decode(bpsi, sizeof(bpsi), X86_MODE_16, &i), 0);
	cr_assert_eq(i.seg, X86_SEG_SS);
	gpr[X86_RBP] = 0x1234ffff;
	gpr[X86_RSI] = 0x00000002;
	cr_assert_eq(x86_ea(&i, gpr, 0), 1);
	cr_assert_eq(x86_decode(bpdi8, sizeof(bpdi8), X86_MODE_16, &i), 0);
	gpr[X86_RBP] = 1;
	gpr[X86_RDI] = 0;
	cr_assert_eq(x86_ea(&i, gpr, 0), 0xffff);

	/* 32-bit addressing in 64-bit mode truncates to 32 bits. */
	cr_assert_eq(x86_decode(m32, sizeof(m32), X86_MODE_64, &i), 0);
	cr_assert_eq(i.addrsize, 4);
	gpr[X86_RAX] = 0xabcdef00fffffff0ull;
	gpr[X86_RCX] = 4;
	cr_assert_eq(x86_ea(&i, gpr, 0), 4);
}

Test(x86_decode, prefixes_in_any_order)
{
	/* es/fs, 66, 67, f0 in every order before xchg [bx+si], ax-ish: 87 00 */
	static const uint8_t pfx[4] = { 0x64, 0x66, 0x67, 0xf0 };
	int perm[4] = { 0, 1, 2, 3 }, n = 0;

	/* Heap's algorithm over the 24 orders, iteratively. */
	int c[4] = { 0 }, k = 1;

	for (;;) {
		uint8_t b[6];
		struct x86_insn i;

		for (int j = 0; j < 4; j++)
			b[j] = pfx[perm[j]];
		b[4] = 0x87;
		b[5] = 0x00;
		cr_assert_eq(x86_decode(b, sizeof(b), X86_MODE_32, &i), 0);
		cr_assert_eq(i.len, 6);
		cr_assert_eq(i.op, X86_OP_XCHG);
		cr_assert_eq(i.opsize, 2);
		cr_assert_eq(i.addrsize, 2);
		cr_assert_eq(i.seg, X86_SEG_FS);
		cr_assert(i.lock);
		cr_assert_eq(i.ea.base, X86_RBX);
		cr_assert_eq(i.ea.index, X86_RSI);
		n++;
		while (k < 4 && c[k] >= k) {
			c[k] = 0;
			k++;
		}
		if (k == 4)
			break;
		int s = k % 2 ? c[k] : 0, t = perm[s];

		perm[s] = perm[k];
		perm[k] = t;
		c[k]++;
		k = 1;
	}
	cr_assert_eq(n, 24);
}

Test(x86_decode, repeated_prefixes_last_wins)
{
	static const uint8_t segs[] = { 0x2e, 0x65, 0x26, 0x89, 0x03 };
	static const uint8_t reps[] = { 0xf3, 0xf2, 0xa4 };
	static const uint8_t rexes[] = { 0x48, 0x41, 0x89, 0x03 };
	struct x86_insn i;

	cr_assert_eq(x86_decode(segs, sizeof(segs), X86_MODE_32, &i), 0);
	cr_assert_eq(i.seg, X86_SEG_ES);
	cr_assert_eq(x86_decode(reps, sizeof(reps), X86_MODE_32, &i), 0);
	cr_assert_eq(i.rep, X86_REPNE);
	/* Only the REX right before the opcode counts. */
	cr_assert_eq(x86_decode(rexes, sizeof(rexes), X86_MODE_64, &i), 0);
	cr_assert_eq(i.opsize, 4);
	cr_assert_eq(i.ea.base, X86_R11);
}

Test(x86_decode, fifteen_byte_limit)
{
	uint8_t b[32];
	struct x86_insn i;

	/* 13 prefixes + 89 03 = 15 bytes: legal. */
	memset(b, 0x66, sizeof(b));
	b[13] = 0x89;
	b[14] = 0x03;
	cr_assert_eq(x86_decode(b, sizeof(b), X86_MODE_64, &i), 0);
	cr_assert_eq(i.len, 15);
	cr_assert_eq(i.opsize, 2);
	/* 14 prefixes + 89 03 = 16 bytes: #GP, however many bytes we have. */
	memset(b, 0x66, sizeof(b));
	b[14] = 0x89;
	b[15] = 0x03;
	cr_assert_eq(x86_decode(b, sizeof(b), X86_MODE_64, &i), -EINVAL);
	cr_assert_eq(x86_decode(b, 15, X86_MODE_64, &i), -EINVAL);
	/* With fewer than 15 bytes in hand it may still be fine: ask for more. */
	cr_assert_eq(x86_decode(b, 14, X86_MODE_64, &i), -EAGAIN);
	/* Operands that run past byte 15. */
	memset(b, 0x3e, sizeof(b));
	memcpy(b + 6, (const uint8_t[]){ 0xc7, 0x80, 1, 2, 3, 4, 5, 6, 7, 8 }, 10);
	cr_assert_eq(x86_decode(b, sizeof(b), X86_MODE_32, &i), -EINVAL);
	memcpy(b + 5, (const uint8_t[]){ 0xc7, 0x80, 1, 2, 3, 4, 5, 6, 7, 8 }, 10);
	cr_assert_eq(x86_decode(b + 0, sizeof(b), X86_MODE_32, &i), 0);
	cr_assert_eq(i.len, 15);
	cr_assert_eq(i.imm, 0x08070605);
	cr_assert_eq(i.ea.disp, 0x04030201);
}

struct xd_bad {
	int mode;
	uint8_t n;
	uint8_t b[15];
	int rc;
};

Test(x86_decode, refusals)
{
	static const struct xd_bad bad[] = {
		{ 64, XB(0x89, 0xc3), -ENOTSUP },		/* mov ebx, eax: no memory */
		{ 64, XB(0x0f, 0x10, 0x00), -ENOTSUP },	/* movups */
		{ 64, XB(0x66, 0x0f, 0x6f, 0x00), -ENOTSUP },	/* movdqa */
		{ 64, XB(0xc5, 0xf8, 0x28, 0x00), -ENOTSUP },	/* vmovaps */
		{ 64, XB(0x0f, 0x38, 0xf0, 0x00), -ENOTSUP },	/* movbe */
		{ 64, XB(0xff, 0x00), -ENOTSUP },		/* inc dword [rax] */
		{ 64, XB(0xf7, 0x10), -ENOTSUP },		/* not dword [rax] */
		{ 64, XB(0xa6), -ENOTSUP },			/* cmpsb */
		{ 64, XB(0x8e, 0x00), -ENOTSUP },		/* mov es, [rax] */
		{ 32, XB(0x63, 0x00), -ENOTSUP },		/* arpl */
		{ 32, XB(0x40), -ENOTSUP },			/* inc eax, not REX */
		{ 64, XB(0xf0, 0x89, 0x03), -EINVAL },		/* lock mov */
		{ 64, XB(0xf0, 0x39, 0x03), -EINVAL },		/* lock cmp */
		{ 64, XB(0xf0, 0x83, 0x38, 0x01), -EINVAL },	/* lock cmp imm */
		{ 64, XB(0xf0, 0x8b, 0x03), -EINVAL },		/* lock load */
		{ 64, XB(0xf0, 0x03, 0x03), -EINVAL },		/* lock add reg, mem */
		{ 64, XB(0xf0, 0xa5), -EINVAL },		/* lock movs */
		{ 64, XB(0xc7, 0x08, 1, 0, 0, 0), -EINVAL },	/* C7 /1 */
		{ 64, XB(0xc6, 0x38, 1), -EINVAL },		/* C6 /7 with memory */
		{ 64, XB(0x82, 0x00, 1), -EINVAL },		/* 82 in 64-bit mode */
	};
	struct x86_insn i;

	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		memset(&i, 0x5a, sizeof(i));
		cr_assert_eq(x86_decode(bad[k].b, bad[k].n, bad[k].mode, &i), bad[k].rc,
			     "case %zu", k);
		cr_assert_eq(i.len, 0, "case %zu", k);
	}
	cr_assert_eq(x86_decode((const uint8_t[]){ 0x89, 0x03 }, 2, 48, &i), -EINVAL);
	cr_assert_eq(x86_decode((const uint8_t[]){ 0x89, 0x03 }, 2, 0, &i), -EINVAL);
}

Test(x86_decode, register_access)
{
	uint64_t g[16];

	for (int r = 0; r < 16; r++)
		g[r] = 0x0123456789abcdefull;
	x86_write_reg(g, X86_RAX, false, 1, 0x1ff);
	cr_assert_eq(g[X86_RAX], 0x0123456789abcdffull);
	x86_write_reg(g, X86_RBX, true, 1, 0x55);
	cr_assert_eq(g[X86_RBX], 0x0123456789ab55efull);
	x86_write_reg(g, X86_RCX, false, 2, 0x12345);
	cr_assert_eq(g[X86_RCX], 0x0123456789ab2345ull);
	x86_write_reg(g, X86_RDX, false, 4, 0xfffffffff0000001ull);
	cr_assert_eq(g[X86_RDX], 0xf0000001ull);
	x86_write_reg(g, X86_R15, false, 8, 0xfedcba9876543210ull);
	cr_assert_eq(g[X86_R15], 0xfedcba9876543210ull);
	x86_write_reg(g, X86_RSI, false, 1, 0);		/* SIL */
	cr_assert_eq(g[X86_RSI], 0x0123456789abcd00ull);

	/* Invalid combinations write nothing. */
	x86_write_reg(g, X86_RSP, true, 1, 0);
	x86_write_reg(g, X86_RAX, true, 2, 0);
	x86_write_reg(g, 16, false, 8, 0);
	x86_write_reg(g, -1, false, 8, 0);
	x86_write_reg(g, X86_RDI, false, 3, 0);
	cr_assert_eq(g[X86_RSP], 0x0123456789abcdefull);
	cr_assert_eq(g[X86_RDI], 0x0123456789abcdefull);
	cr_assert_eq(g[X86_RAX], 0x0123456789abcdffull);

	cr_assert_eq(x86_read_reg(g, X86_RBX, true, 1), 0x55);
	cr_assert_eq(x86_read_reg(g, X86_RBX, false, 1), 0xef);
	cr_assert_eq(x86_read_reg(g, X86_RBX, false, 2), 0x55ef);
	cr_assert_eq(x86_read_reg(g, X86_RBX, false, 4), 0x89ab55ef);
	cr_assert_eq(x86_read_reg(g, X86_RBX, false, 8), 0x0123456789ab55efull);
	cr_assert_eq(x86_read_reg(g, X86_R8, true, 1), 0);
	cr_assert_eq(x86_read_reg(g, 99, false, 1), 0);
	cr_assert_eq(x86_sext(0x80, 1), 0xffffffffffffff80ull);
	cr_assert_eq(x86_sext(0x7fff, 2), 0x7fff);
	cr_assert_eq(x86_sext(0x80000000, 4), 0xffffffff80000000ull);
	cr_assert_eq(x86_trunc(0x123456789ull, 4), 0x23456789);
}

/* ---- ALU flags against the host CPU ---- */

static uint64_t xd_rng_state;

static uint64_t xd_rand(void)
{
	/* xorshift64*: deterministic for a fixed seed. */
	xd_rng_state ^= xd_rng_state >> 12;
	xd_rng_state ^= xd_rng_state << 25;
	xd_rng_state ^= xd_rng_state >> 27;
	return xd_rng_state * 2685821657736338717ull;
}

/* Operands that hit the edges (0, 1, sign bit, all ones) half the time. */
static uint64_t xd_operand(void)
{
	static const uint64_t edge[] = { 0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff,
					 0x7fffffff, 0x80000000, 0xffffffff,
					 0x7fffffffffffffffull, 0x8000000000000000ull,
					 UINT64_MAX, 0x0f, 0x10 };
	uint64_t r = xd_rand();

	if (r & 1)
		return edge[(r >> 1) % (sizeof(edge) / sizeof(edge[0]))];
	return xd_rand();
}

#if defined(__x86_64__)
/*
 * Run "mn src, dst" on the host with the given input flags; returns the
 * output RFLAGS.  The stack pointer is moved below the red zone first,
 * because push/pop would otherwise clobber it.
 */
#define XD_ASM(mn, m) \
	__asm__ volatile("sub $128, %%rsp\n\tpush %[fi]\n\tpopf\n\t" \
			 mn " %" m "[s], %" m "[d]\n\t" \
			 "pushf\n\tpop %[fo]\n\tadd $128, %%rsp" \
			 : [d] "+r"(d), [fo] "=&r"(fo) : [s] "r"(s), [fi] "r"(fi) \
			 : "cc", "memory")
#define XD_SIZES(mn) \
	switch (size) { \
	case 1: XD_ASM(mn "b", "b"); break; \
	case 2: XD_ASM(mn "w", "w"); break; \
	case 4: XD_ASM(mn "l", "k"); break; \
	default: XD_ASM(mn "q", "q"); break; \
	}

static uint64_t xd_host_alu(int kind, int size, uint64_t d, uint64_t s, uint64_t fi,
			    uint64_t *res)
{
	uint64_t fo = 0;

	switch (kind) {
	case X86_ALU_ADD: XD_SIZES("add"); break;
	case X86_ALU_OR: XD_SIZES("or"); break;
	case X86_ALU_ADC: XD_SIZES("adc"); break;
	case X86_ALU_SBB: XD_SIZES("sbb"); break;
	case X86_ALU_AND: XD_SIZES("and"); break;
	case X86_ALU_SUB: XD_SIZES("sub"); break;
	case X86_ALU_XOR: XD_SIZES("xor"); break;
	case X86_ALU_CMP: XD_SIZES("cmp"); break;
	default: XD_SIZES("test"); break;
	}
	*res = d;
	return fo;
}

Test(x86_decode, alu_flags_match_host)
{
	static const int sizes[4] = { 1, 2, 4, 8 };

	xd_rng_state = 0x5eed1234abcdull;
	for (int n = 0; n < 40000; n++) {
		int kind = (int)(xd_rand() % 9), size = sizes[xd_rand() % 4];
		uint64_t d = xd_operand(), s = xd_operand();
		/* Random arithmetic flags in, plus bits that must survive. */
		uint64_t fi = 0x2 | (xd_rand() & X86_FL_ARITH);
		uint64_t fl = fi | X86_FL_DF | (1ull << 9) | (1ull << 21);
		uint64_t hres, hfl, res = 0xdeadull, cmpmask = X86_FL_ARITH;
		uint64_t dt = x86_trunc(d, size);

		hfl = xd_host_alu(kind, size, dt, x86_trunc(s, size), fi, &hres);
		cr_assert_eq(x86_alu(kind, d, s, size, &res, &fl), 0);
		/* AF is undefined after the logical ops (SDM AND/OR/XOR/TEST). */
		if (kind == X86_ALU_AND || kind == X86_ALU_OR || kind == X86_ALU_XOR ||
		    kind == X86_ALU_TEST)
			cmpmask &= ~X86_FL_AF;
		if ((fl & cmpmask) != (hfl & cmpmask))
			cr_assert_fail("kind %d size %d d %#llx s %#llx fi %#llx: flags %#llx host %#llx",
				       kind, size, (unsigned long long)d, (unsigned long long)s,
				       (unsigned long long)fi, (unsigned long long)(fl & cmpmask),
				       (unsigned long long)(hfl & cmpmask));
		if ((fl & ~X86_FL_ARITH) != ((fi & ~X86_FL_ARITH) | X86_FL_DF | (1ull << 9) | (1ull << 21)))
			cr_assert_fail("non-arithmetic flags changed");
		if (kind == X86_ALU_CMP || kind == X86_ALU_TEST) {
			if (res != 0xdeadull)
				cr_assert_fail("cmp/test wrote a result");
		} else if (res != x86_trunc(hres, size)) {
			cr_assert_fail("kind %d size %d: result %#llx host %#llx", kind, size,
				       (unsigned long long)res, (unsigned long long)hres);
		}
	}
}
#endif

Test(x86_decode, alu_known_values)
{
	uint64_t fl = 0, r = 0;

	cr_assert_eq(x86_alu(X86_ALU_ADD, 0x7f, 1, 1, &r, &fl), 0);
	cr_assert_eq(r, 0x80);
	cr_assert_eq(fl, X86_FL_OF | X86_FL_SF | X86_FL_AF);
	fl = X86_FL_CF;
	cr_assert_eq(x86_alu(X86_ALU_ADC, UINT64_MAX, 0, 8, &r, &fl), 0);
	cr_assert_eq(r, 0);
	cr_assert_eq(fl, X86_FL_CF | X86_FL_ZF | X86_FL_PF | X86_FL_AF);
	fl = X86_FL_CF;
	cr_assert_eq(x86_alu(X86_ALU_SBB, 5, 5, 4, &r, &fl), 0);
	cr_assert_eq(r, 0xffffffff);
	cr_assert_eq(fl, X86_FL_CF | X86_FL_SF | X86_FL_PF | X86_FL_AF);
	fl = 0;
	cr_assert_eq(x86_alu(X86_ALU_CMP, 3, 3, 2, NULL, &fl), 0);
	cr_assert_eq(fl, X86_FL_ZF | X86_FL_PF);
	cr_assert_eq(x86_alu(9, 1, 1, 4, &r, &fl), -EINVAL);
	cr_assert_eq(x86_alu(X86_ALU_ADD, 1, 1, 3, &r, &fl), -EINVAL);
	cr_assert_eq(x86_alu(-1, 1, 1, 4, &r, &fl), -EINVAL);
}

/* ---- Interpreter, against a fake device of 256 bytes ---- */

struct xd_dev {
	uint64_t base;		/* offset of mem[0] */
	uint8_t mem[256];
	int seg_seen[8], nacc, fail_at;	/* fail_at: access number that errors */
	bool wrote;
};

static int xd_dev_access(void *ctx, int seg, uint64_t off, int size, bool write, uint64_t *val)
{
	struct xd_dev *dv = ctx;

	if (dv->nacc < 8)
		dv->seg_seen[dv->nacc] = seg;
	if (++dv->nacc == dv->fail_at)
		return -EFAULT;
	if (off < dv->base || off - dv->base > sizeof(dv->mem) - (size_t)size)
		return -ERANGE;
	if (write) {
		memcpy(dv->mem + (off - dv->base), val, (size_t)size);
		dv->wrote = true;
	} else {
		*val = 0;
		memcpy(val, dv->mem + (off - dv->base), (size_t)size);
	}
	return 0;
}

static void xd_run(const uint8_t *b, size_t n, int mode, struct x86_regs *r, struct xd_dev *dv,
		   int want)
{
	struct x86_insn i;

	cr_assert_eq(x86_decode(b, n, mode, &i), 0);
	cr_assert_eq(x86_exec(&i, r, xd_dev_access, dv), want);
}

static uint64_t xd_dev_u64(const struct xd_dev *dv, size_t at)
{
	uint64_t v;

	memcpy(&v, dv->mem + at, sizeof(v));
	return v;
}

Test(x86_decode, exec_moves)
{
	struct xd_dev dv = { .base = 0xfee00000 };
	struct x86_regs r = { .rip = 0x1000 };

	r.gpr[X86_RBX] = 0xfee00010;
	r.gpr[X86_RAX] = 0x1122334455667788ull;
	xd_run((const uint8_t[]){ 0x48, 0x89, 0x03 }, 3, 64, &r, &dv, 0);	/* mov [rbx],rax */
	cr_assert_eq(xd_dev_u64(&dv, 0x10), 0x1122334455667788ull);
	cr_assert_eq(r.rip, 0x1003);
	xd_run((const uint8_t[]){ 0x8b, 0x4b, 0x04 }, 3, 64, &r, &dv, 0);	/* mov ecx,[rbx+4] */
	cr_assert_eq(r.gpr[X86_RCX], 0x11223344);
	r.gpr[X86_RDX] = UINT64_MAX;
	xd_run((const uint8_t[]){ 0x8a, 0x73, 0x07 }, 3, 64, &r, &dv, 0);	/* mov dh,[rbx+7] */
	cr_assert_eq(r.gpr[X86_RDX], 0xffffffffffff11ffull);
	xd_run((const uint8_t[]){ 0x48, 0x0f, 0xbe, 0x53, 0x00 }, 5, 64, &r, &dv, 0); /* movsx rdx,byte [rbx] */
	cr_assert_eq(r.gpr[X86_RDX], 0xffffffffffffff88ull);
	xd_run((const uint8_t[]){ 0x0f, 0xb7, 0x53, 0x00 }, 4, 64, &r, &dv, 0);	/* movzx edx,word [rbx] */
	cr_assert_eq(r.gpr[X86_RDX], 0x7788);
	xd_run((const uint8_t[]){ 0x48, 0x63, 0x53, 0x04 }, 4, 64, &r, &dv, 0);	/* movsxd rdx,[rbx+4] */
	cr_assert_eq(r.gpr[X86_RDX], 0x11223344);
	xd_run((const uint8_t[]){ 0xc7, 0x43, 0x08, 0x00, 0x00, 0x00, 0x80 }, 7, 64, &r, &dv, 0);
	cr_assert_eq(xd_dev_u64(&dv, 0x18), 0x80000000ull);
	/* moffs in 32-bit mode: mov eax,[0xfee00018] */
	xd_run((const uint8_t[]){ 0xa1, 0x18, 0x00, 0xe0, 0xfe }, 5, 32, &r, &dv, 0);
	cr_assert_eq(r.gpr[X86_RAX], 0x80000000ull);
	cr_assert_eq(dv.seg_seen[dv.nacc - 1], X86_SEG_DS);
	/* xchg [rbx],cl */
	r.gpr[X86_RCX] = 0xab;
	xd_run((const uint8_t[]){ 0x86, 0x0b }, 2, 64, &r, &dv, 0);
	cr_assert_eq(r.gpr[X86_RCX], 0x88);
	cr_assert_eq(dv.mem[0x10], 0xab);
	cr_assert_eq(r.rip, 0x1000 + 3 + 3 + 3 + 5 + 4 + 4 + 7 + 5 + 2);
}

Test(x86_decode, exec_alu_and_cmp_direction)
{
	struct xd_dev dv = { .base = 0 };
	struct x86_regs r = { .rip = 0 };

	dv.mem[0] = 5;
	r.gpr[X86_RCX] = 7;
	/* cmp [rax],cl computes 5 - 7: borrow */
	xd_run((const uint8_t[]){ 0x38, 0x08 }, 2, 64, &r, &dv, 0);
	cr_assert(r.rflags & X86_FL_CF);
	cr_assert(r.rflags & X86_FL_SF);
	/* cmp cl,[rax] computes 7 - 5 */
	xd_run((const uint8_t[]){ 0x3a, 0x08 }, 2, 64, &r, &dv, 0);
	cr_assert_eq(r.rflags & (X86_FL_CF | X86_FL_SF | X86_FL_ZF), 0);
	cr_assert_eq(r.gpr[X86_RCX], 7);
	cr_assert_not(dv.wrote);
	/* sub cl,[rax] -> cl = 2; sub [rax],cl -> mem = 3 */
	xd_run((const uint8_t[]){ 0x2a, 0x08 }, 2, 64, &r, &dv, 0);
	cr_assert_eq(r.gpr[X86_RCX], 2);
	xd_run((const uint8_t[]){ 0x28, 0x08 }, 2, 64, &r, &dv, 0);
	cr_assert_eq(dv.mem[0], 3);
	/* lock or dword [rax], 0x100 */
	xd_run((const uint8_t[]){ 0xf0, 0x81, 0x08, 0x00, 0x01, 0x00, 0x00 }, 7, 64, &r, &dv, 0);
	cr_assert_eq(xd_dev_u64(&dv, 0), 0x103);
	/* test byte [rax], 4 -> ZF */
	dv.wrote = false;
	xd_run((const uint8_t[]){ 0xf6, 0x00, 0x04 }, 3, 64, &r, &dv, 0);
	cr_assert(r.rflags & X86_FL_ZF);
	cr_assert_not(dv.wrote);
	/* and qword [rax], -16 with sign-extended imm8 */
	memset(dv.mem, 0xff, 8);
	xd_run((const uint8_t[]){ 0x48, 0x83, 0x20, 0xf0 }, 4, 64, &r, &dv, 0);
	cr_assert_eq(xd_dev_u64(&dv, 0), 0xfffffffffffffff0ull);
	cr_assert(r.rflags & X86_FL_SF);
}

Test(x86_decode, exec_cmpxchg)
{
	struct xd_dev dv = { .base = 0 };
	struct x86_regs r = { 0 };

	dv.mem[8] = 42;
	r.gpr[X86_RBX] = 8;
	r.gpr[X86_RAX] = 41;
	r.gpr[X86_RCX] = 99;
	/* lock cmpxchg [rbx],ecx: mismatch loads eax, no write */
	xd_run((const uint8_t[]){ 0xf0, 0x0f, 0xb1, 0x0b }, 4, 64, &r, &dv, 0);
	cr_assert_eq(r.gpr[X86_RAX], 42);
	cr_assert_not(r.rflags & X86_FL_ZF);
	cr_assert_not(dv.wrote);
	xd_run((const uint8_t[]){ 0xf0, 0x0f, 0xb1, 0x0b }, 4, 64, &r, &dv, 0);
	cr_assert(r.rflags & X86_FL_ZF);
	cr_assert_eq(dv.mem[8], 99);
	cr_assert_eq(r.rip, 8);
}

Test(x86_decode, exec_strings)
{
	struct xd_dev dv = { .base = 0 };
	struct x86_regs r = { .rip = 0x500 };
	static const uint8_t rep_stosw[] = { 0xf3, 0x66, 0xab };
	struct x86_insn i;
	int iter = 0;

	r.gpr[X86_RAX] = 0xbeef;
	r.gpr[X86_RDI] = 0x20;
	r.gpr[X86_RCX] = 3;
	cr_assert_eq(x86_decode(rep_stosw, sizeof(rep_stosw), X86_MODE_64, &i), 0);
	while (r.rip == 0x500) {
		cr_assert_eq(x86_exec(&i, &r, xd_dev_access, &dv), 0);
		cr_assert(++iter <= 3);
	}
	cr_assert_eq(iter, 3);
	cr_assert_eq(r.rip, 0x503);
	cr_assert_eq(r.gpr[X86_RCX], 0);
	cr_assert_eq(r.gpr[X86_RDI], 0x26);
	cr_assert_eq(dv.mem[0x20], 0xef);
	cr_assert_eq(dv.mem[0x25], 0xbe);
	cr_assert_eq(dv.seg_seen[0], X86_SEG_ES);
	/* rCX == 0: nothing happens but RIP moves. */
	r.rip = 0x500;
	dv.nacc = 0;
	cr_assert_eq(x86_exec(&i, &r, xd_dev_access, &dv), 0);
	cr_assert_eq(dv.nacc, 0);
	cr_assert_eq(r.rip, 0x503);

	/* movsd backwards (DF=1), 16-bit addressing wraps SI and DI. */
	r = (struct x86_regs){ .rip = 0x10, .rflags = X86_FL_DF };
	r.gpr[X86_RSI] = 0xffff0040;
	r.gpr[X86_RDI] = 0x50;
	memcpy(dv.mem + 0x40, "\x01\x02\x03\x04", 4);
	dv.nacc = 0;
	xd_run((const uint8_t[]){ 0x66, 0xa5 }, 2, 16, &r, &dv, 0);
	cr_assert_eq(memcmp(dv.mem + 0x50, "\x01\x02\x03\x04", 4), 0);
	cr_assert_eq(r.gpr[X86_RSI], 0xffff003c);
	cr_assert_eq(r.gpr[X86_RDI], 0x4c);
	cr_assert_eq(dv.seg_seen[0], X86_SEG_DS);
	cr_assert_eq(dv.seg_seen[1], X86_SEG_ES);
	cr_assert_eq(r.rip, 0x12);
	/* lodsb with a GS override */
	r.gpr[X86_RSI] = 0x50;
	r.gpr[X86_RAX] = 0x1234;
	r.rflags = 0;
	dv.nacc = 0;
	xd_run((const uint8_t[]){ 0x65, 0xac }, 2, 32, &r, &dv, 0);
	cr_assert_eq(r.gpr[X86_RAX], 0x1201);
	cr_assert_eq(r.gpr[X86_RSI], 0x51);
	cr_assert_eq(dv.seg_seen[0], X86_SEG_GS);
}

Test(x86_decode, exec_failure_leaves_registers)
{
	struct xd_dev dv = { .base = 0, .fail_at = 2 };
	struct x86_regs r = { .rip = 0x77 }, before;

	r.gpr[X86_RCX] = 5;
	r.gpr[X86_RSI] = 0;
	r.gpr[X86_RDI] = 8;
	before = r;
	/* rep movsb: the write (access 2) fails */
	xd_run((const uint8_t[]){ 0xf3, 0xa4 }, 2, 64, &r, &dv, -EFAULT);
	cr_assert_eq(memcmp(&r, &before, sizeof(r)), 0);
	/* xchg: the write fails after the read */
	dv.nacc = 0;
	xd_run((const uint8_t[]){ 0x87, 0x0e }, 2, 64, &r, &dv, -EFAULT);
	cr_assert_eq(memcmp(&r, &before, sizeof(r)), 0);
	/* a load whose read fails */
	dv.nacc = 0;
	dv.fail_at = 1;
	xd_run((const uint8_t[]){ 0x8b, 0x0e }, 2, 64, &r, &dv, -EFAULT);
	cr_assert_eq(memcmp(&r, &before, sizeof(r)), 0);
	/* an undecoded instruction or no callback */
	struct x86_insn none = { 0 };

	cr_assert_eq(x86_exec(&none, &r, xd_dev_access, &dv), -EINVAL);
	cr_assert_eq(x86_decode((const uint8_t[]){ 0x89, 0x03 }, 2, 64, &none), 0);
	cr_assert_eq(x86_exec(&none, &r, NULL, &dv), -EINVAL);
}

/* ---- Fuzz ---- */

#define XD_F_CHECK(c) do { if (!(c)) cr_assert_fail("fuzz invariant: %s", #c); } while (0)

static int xd_f_access(void *ctx, int seg, uint64_t off, int size, bool write, uint64_t *val)
{
	uint64_t *count = ctx;

	(void)off;
	XD_F_CHECK(seg >= X86_SEG_ES && seg <= X86_SEG_GS);
	XD_F_CHECK(size == 1 || size == 2 || size == 4 || size == 8);
	if (!write)
		*val = xd_rand();
	return ++*count % 7 == 0 ? -EIO : 0;
}

/* Bytes biased towards prefixes and supported opcodes, so deep paths run. */
static uint8_t xd_f_byte(void)
{
	static const uint8_t hot[] = { 0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e,
				       0x64, 0x65, 0x40, 0x48, 0x4c, 0x41, 0x0f, 0x88, 0x89,
				       0x8a, 0x8b, 0xc6, 0xc7, 0x80, 0x81, 0x83, 0xf6, 0xf7,
				       0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xaa, 0xab, 0xac,
				       0xad, 0x63, 0xb6, 0xb7, 0xbe, 0xbf, 0xb0, 0xb1, 0x84,
				       0x85, 0x86, 0x87, 0x04, 0x24, 0x05, 0x44, 0x84 };
	uint64_t r = xd_rand();

	if (r % 3 == 0)
		return hot[(r >> 8) % sizeof(hot)];
	return (uint8_t)(r >> 16);
}

Test(x86_decode, fuzz)
{
	static const int modes[3] = { X86_MODE_16, X86_MODE_32, X86_MODE_64 };
	uint64_t count = 0;
	int ok = 0;

	xd_rng_state = 0x0123456789abcdefull;
	for (int n = 0; n < 300000; n++) {
		uint8_t b[20];
		size_t avail = (size_t)(xd_rand() % 21);
		int mode = modes[xd_rand() % 3], rc, rc2;
		struct x86_insn i, i2;
		struct x86_regs r;

		for (size_t k = 0; k < sizeof(b); k++)
			b[k] = xd_f_byte();
		rc = x86_decode(b, avail, mode, &i);
		XD_F_CHECK(rc == 0 || rc == -EAGAIN || rc == -EINVAL || rc == -ENOTSUP);
		if (rc) {
			XD_F_CHECK(i.len == 0 && i.op == X86_OP_NONE);
			continue;
		}
		ok++;
		XD_F_CHECK(i.len >= 1 && i.len <= X86_MAX_INSN_LEN && i.len <= avail);
		XD_F_CHECK(i.op != X86_OP_NONE);
		XD_F_CHECK(i.opsize == 1 || i.opsize == 2 || i.opsize == 4 || i.opsize == 8);
		XD_F_CHECK(i.regsize >= i.opsize);
		XD_F_CHECK(i.addrsize == 2 || i.addrsize == 4 || i.addrsize == 8);
		XD_F_CHECK(mode == X86_MODE_64 || (i.opsize < 8 && i.addrsize < 8));
		XD_F_CHECK(i.reg >= X86_REG_NONE && i.reg < 16);
		XD_F_CHECK(!i.high8 || (i.reg >= 0 && i.reg < 4 && i.opsize == 1));
		XD_F_CHECK(i.ea.base >= X86_REG_NONE && i.ea.base < 16);
		XD_F_CHECK(i.ea.index >= X86_REG_NONE && i.ea.index < 16);
		XD_F_CHECK(i.ea.scale == 1 || i.ea.scale == 2 || i.ea.scale == 4 || i.ea.scale == 8);
		XD_F_CHECK(i.seg >= X86_SEG_ES && i.seg <= X86_SEG_GS);
		XD_F_CHECK(!i.ea.rip_rel || mode == X86_MODE_64);
		XD_F_CHECK(i.has_imm == (i.reg == X86_REG_NONE));
		XD_F_CHECK(i.imm == x86_trunc(i.imm, i.opsize));
		/* Same answer from exactly len bytes; EAGAIN from any fewer. */
		rc2 = x86_decode(b, i.len, mode, &i2);
		XD_F_CHECK(rc2 == 0 && memcmp(&i, &i2, sizeof(i)) == 0);
		rc2 = x86_decode(b, xd_rand() % i.len, mode, &i2);
		XD_F_CHECK(rc2 == -EAGAIN);
		/* And it executes without tripping the sanitizers. */
		for (int k = 0; k < 16; k++)
			r.gpr[k] = xd_rand();
		r.rip = xd_rand();
		r.rflags = xd_rand();
		struct x86_regs before = r;

		rc2 = x86_exec(&i, &r, xd_f_access, &count);
		XD_F_CHECK(rc2 == 0 || rc2 == -EIO);
		if (rc2)
			XD_F_CHECK(memcmp(&r, &before, sizeof(r)) == 0);
		else
			XD_F_CHECK(r.rip == before.rip || r.rip == before.rip + i.len);
	}
	/* The generator must actually reach the decoder's success paths. */
	cr_assert_gt(ok, 5000);
}
