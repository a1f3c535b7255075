/*
 * MMIO emulation: the instruction behind a stage-2 fault on a device
 * range is fetched from guest memory, decoded and executed by the pure
 * lib/x86_decode.c, with every memory operand routed either to guest RAM
 * or to the MMIO bus.  Used on hosts without decode assists (QEMU TCG) and
 * for string instructions everywhere.
 */
#include <errno.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/virt/vm.h"
#include "kernel/lib/x86_decode.h"

#define REP_BURST	4096	/* string iterations per exit before re-entry */

static int read_pte(struct vcpu *v, uint64_t pa, int size, uint64_t *pte)
{
	*pte = 0;
	return vm_read_gpa(v->vm, pa, pte, size);
}

/* Long mode or PAE walk (SDM Vol. 3A 4.4, 4.5); 2M/1G pages honoured. */
static int walk_pae(struct vcpu *v, uint64_t la, uint64_t *gpa)
{
	bool lm = v->st.efer & EFER_LMA;
	int level = lm ? 4 : 3, shift = lm ? 39 : 30;
	uint64_t table = v->st.cr3 & (lm ? PTE_ADDR : 0xffffffe0ull), e;

	for (; level > 0; level--, shift -= 9) {
		uint64_t idx = (la >> shift) & (level == 3 && !lm ? 3 : 511);

		if (read_pte(v, table + idx * 8, 8, &e) < 0 || !(e & PTE_P))
			return -EFAULT;
		/* PS means a 2 MiB page in a PDE, and 1 GiB in a long-mode PDPTE. */
		if ((e & PTE_PS) && (level == 2 || (lm && level == 3))) {
			uint64_t span = 1ull << shift;

			*gpa = (e & PTE_ADDR & ~(span - 1)) | (la & (span - 1));
			return 0;
		}
		table = e & PTE_ADDR;
	}
	*gpa = table | (la & 0xfff);
	return 0;
}

/* Legacy 32-bit paging with optional 4 MiB pages (SDM Vol. 3A 4.3). */
static int walk_32(struct vcpu *v, uint64_t la, uint64_t *gpa)
{
	uint64_t pde, pte;

	if (read_pte(v, (v->st.cr3 & 0xfffff000ull) + ((la >> 22) & 0x3ff) * 4, 4, &pde) < 0 ||
	    !(pde & PTE_P))
		return -EFAULT;
	if ((pde & PTE_PS) && (v->st.cr4 & CR4_PSE)) {
		*gpa = (pde & 0xffc00000ull) | (la & 0x3fffff);
		return 0;
	}
	if (read_pte(v, (pde & 0xfffff000ull) + ((la >> 12) & 0x3ff) * 4, 4, &pte) < 0 ||
	    !(pte & PTE_P))
		return -EFAULT;
	*gpa = (pte & 0xfffff000ull) | (la & 0xfff);
	return 0;
}

int gva_to_gpa(struct vcpu *v, uint64_t la, bool write, uint64_t *gpa)
{
	(void)write;
	if (!(v->st.cr0 & CR0_PG)) {
		*gpa = la & 0xffffffffull;
		return 0;
	}
	if (v->st.cr4 & CR4_PAE)
		return walk_pae(v, la, gpa);
	return walk_32(v, la & 0xffffffffull, gpa);
}

static int guest_mode(const struct vcpu *v)
{
	const struct vcpu_seg *cs = &v->st.seg[SEG_CS];

	if ((v->st.efer & EFER_LMA) && (cs->attr & SEG_ATTR_L))
		return X86_MODE_64;
	return (cs->attr & SEG_ATTR_DB) ? X86_MODE_32 : X86_MODE_16;
}

static uint64_t seg_base(const struct vcpu *v, int seg)
{
	/* 64-bit mode: only FS and GS have bases (SDM Vol. 1 3.3.7.1). */
	if (guest_mode(v) == X86_MODE_64 && seg != X86_SEG_FS && seg != X86_SEG_GS)
		return 0;
	return v->st.seg[seg].base;
}

/* One operand access: RAM through the direct map, anything else through
 * the MMIO bus.  Accesses never straddle pages for MMIO-sized operands. */
static int access_gpa(struct vcpu *v, uint64_t gpa, int size, bool write, uint64_t *val)
{
	struct vm *vm = v->vm;

	if (gpa + (uint64_t)size <= vm->mem_size) {
		if (write) {
			if (vm->dirty_mode != DIRTY_OFF)
				dirtymap_mark(&vm->dirty, gpa);
			return vm_write_gpa(vm, gpa, val, size);
		}
		*val = 0;
		return vm_read_gpa(vm, gpa, val, size);
	}
	if (write)
		return bus_write(&vm->mmio, gpa, size, *val);
	return bus_read(&vm->mmio, gpa, size, val);
}

static int mem_cb(void *ctx, int seg, uint64_t off, int size, bool write, uint64_t *val)
{
	struct vcpu *v = ctx;
	uint64_t la = seg_base(v, seg) + off, gpa;

	if (gva_to_gpa(v, la, write, &gpa) < 0)
		return -EFAULT;
	return access_gpa(v, gpa, size, write, val);
}

static int fetch_insn(struct vcpu *v, const struct vcpu_exit *e, uint8_t *buf)
{
	uint64_t la = seg_base(v, X86_SEG_CS) + v->st.rip, gpa;
	int i;

	if (e->insn_nbytes) {
		memcpy(buf, e->insn_bytes, e->insn_nbytes);
		return e->insn_nbytes;
	}
	/* Byte by byte: an instruction may cross into another guest page. */
	for (i = 0; i < X86_MAX_INSN_LEN; i++) {
		if (gva_to_gpa(v, la + i, false, &gpa) < 0 ||
		    vm_read_gpa(v->vm, gpa, &buf[i], 1) < 0)
			break;
	}
	return i;
}

int mmio_emulate(struct vcpu *v, const struct vcpu_exit *e)
{
	uint8_t bytes[X86_MAX_INSN_LEN];
	struct x86_insn insn;
	struct x86_regs regs;
	int n = fetch_insn(v, e, bytes), rc, iter = 0;
	uint64_t start_rip = v->st.rip;

	rc = x86_decode(bytes, (size_t)n, guest_mode(v), &insn);
	if (rc < 0) {
		vm_guest_stopped(v->vm, VM_FAILED, "cannot emulate MMIO instruction at "
				 "rip %#lx (gpa %#lx, %02x %02x %02x %02x): %s",
				 v->st.rip, e->s2.gpa, bytes[0], bytes[1], bytes[2],
				 bytes[3], rc == -ENOTSUP ? "unsupported" : "undecodable");
		return rc;
	}
	memcpy(regs.gpr, v->st.gpr, sizeof(regs.gpr));
	regs.rip = v->st.rip;
	regs.rflags = v->st.rflags;
	do {
		rc = x86_exec(&insn, &regs, mem_cb, v);
	} while (rc == 0 && insn.rep && regs.rip == start_rip && ++iter < REP_BURST);
	if (rc == -ENOENT) {
		/* Inside a window (the PCI BARs' one) where nothing decodes. */
		vm_guest_stopped(v->vm, VM_FAILED, "guest touched unbacked gpa %#lx (%s) at "
				 "rip %#lx: no device decodes it", e->s2.gpa,
				 e->s2.write ? "write" : "read", v->st.rip);
		return rc;
	}
	if (rc < 0) {
		vm_guest_stopped(v->vm, VM_FAILED, "MMIO access at rip %#lx (gpa %#lx) "
				 "failed: %d", v->st.rip, e->s2.gpa, rc);
		return rc;
	}
	memcpy(v->st.gpr, regs.gpr, sizeof(regs.gpr));
	v->st.rip = regs.rip;
	v->st.rflags = regs.rflags;
	v->st.int_shadow = false;
	return 0;
}
