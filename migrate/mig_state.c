/*
 * What a migration moves besides RAM: the vCPU's architectural state, its
 * FPU image and the device models' state, between struct vcpu / struct vm
 * and the stream's arch-neutral records (migrate/stream.h).  Also the
 * CPUID identity both ends compare before anything moves.
 *
 * Capture runs on the management CPU with the VM paused (the vCPU parked
 * in its loop, so v->st and the vendor state are at rest).  Apply runs on
 * a created, never-started VM; everything in the record is checked first,
 * because the stream is input from the network.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/lib/msr_rules.h"
#include "kernel/lib/vcpu_check.h"
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/devices/devices.h"
#include "kernel/devices/vdev.h"
#include "kernel/virt/irq.h"
#include "kernel/virt/vm.h"
#include "migrate/migrate.h"

/* Leaves the guest can see, with the subleaves that matter (cpuid.c). */
static const struct { uint32_t leaf, sub; } mig_id_leaves[] = {
	{ 0, 0 }, { 1, 0 }, { 2, 0 }, { 4, 0 }, { 4, 1 }, { 4, 2 }, { 4, 3 },
	{ 7, 0 }, { 0xd, 0 }, { 0xd, 1 }, { 0xd, 2 },
	{ 0x40000000, 0 },
	{ 0x80000000, 0 }, { 0x80000001, 0 }, { 0x80000002, 0 }, { 0x80000003, 0 },
	{ 0x80000004, 0 }, { 0x80000005, 0 }, { 0x80000006, 0 }, { 0x80000007, 0 },
	{ 0x80000008, 0 },
};

/*
 * The guest-visible CPUID of this host, as a fresh vCPU 0 would see it:
 * vendor, family/model/stepping, brand and every feature bit.  Two hosts
 * whose lists differ cannot take each other's guests.
 */
uint32_t mig_cpuid_identity(struct mig_cpuid *out, uint32_t max)
{
	static struct vcpu probe;	/* id 0, reset state */
	uint32_t n = 0, r[4];

	for (size_t i = 0; i < ARRAY_SIZE(mig_id_leaves) && n < max; i++) {
		cpuid_policy(&probe, mig_id_leaves[i].leaf, mig_id_leaves[i].sub, r);
		out[n++] = (struct mig_cpuid){ mig_id_leaves[i].leaf, mig_id_leaves[i].sub,
					       r[0], r[1], r[2], r[3] };
	}
	return n;
}

/* The first leaf where the two lists differ, described into why. */
int mig_cpuid_compare(const struct mig_cpuid *theirs, uint32_t n, char *why, size_t len)
{
	struct mig_cpuid mine[MIG_CPUID_MAX];
	uint32_t m = mig_cpuid_identity(mine, MIG_CPUID_MAX);

	if (n != m) {
		snprintf(why, len, "CPUID lists differ (%u leaves here, %u there)", m, n);
		return -EXDEV;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct mig_cpuid *a = &mine[i], *b = &theirs[i];

		if (a->leaf != b->leaf || a->subleaf != b->subleaf || a->eax != b->eax ||
		    a->ebx != b->ebx || a->ecx != b->ecx || a->edx != b->edx) {
			snprintf(why, len, "CPU differs at CPUID leaf %#x.%u: here "
				 "%08x %08x %08x %08x, source %08x %08x %08x %08x",
				 a->leaf, a->subleaf, a->eax, a->ebx, a->ecx, a->edx,
				 b->eax, b->ebx, b->ecx, b->edx);
			return -EXDEV;
		}
	}
	return 0;
}

static void seg_out(struct mig_seg *d, const struct vcpu_seg *s)
{
	*d = (struct mig_seg){ s->sel, s->attr, s->limit, s->base };
}

static void seg_in(struct vcpu_seg *d, const struct mig_seg *s)
{
	*d = (struct vcpu_seg){ s->sel, s->attr, s->limit, s->base };
}

/* vCPU idx of a paused VM into *m; m->xsave points at the live FPU page,
 * valid until the VM runs again. */
int mig_state_capture(struct vm *vm, int idx, uint64_t host_tsc, struct mig_vcpu *m)
{
	struct vcpu *v = &vm->vcpus[idx];
	const struct vcpu_state *st = &v->st;

	if (idx < 0 || idx >= vm->nvcpus)
		return -ERANGE;
	if (vm->state != VM_PAUSED || (v->running && !v->parked))
		return -EBUSY;
	/* A vCPU still waiting for its SIPI never ran: its state is the
	 * reset state it will be given at SIPI, nothing to save from the
	 * hardware (whose VMCS/VMCB may not hold it yet). */
	if (v->vendor)
		hv->save_state(v);
	memset(m, 0, sizeof(*m));
	m->index = (uint32_t)idx;
	memcpy(m->gpr, st->gpr, sizeof(m->gpr));
	m->rip = st->rip;
	m->rflags = st->rflags;
	m->cr0 = st->cr0;
	m->cr2 = st->cr2;
	m->cr3 = st->cr3;
	m->cr4 = st->cr4;
	m->efer = st->efer;
	m->xcr0 = st->xcr0;
	memcpy(m->dr, st->dr, sizeof(m->dr));
	m->dr6 = st->dr6;
	m->dr7 = st->dr7;
	/* The guest's clock at the pause (host_tsc): the destination
	 * continues it from there, so no time passes for the guest while it
	 * is stopped -- however long a quick migration copies.  Its PM timer
	 * and LAPIC deadlines count on the same clock. */
	m->tsc = host_tsc + st->tsc_offset;
	for (int i = 0; i < SEG_COUNT; i++)
		seg_out(&m->seg[i], &st->seg[i]);
	m->gdtr = (struct mig_dtr){ st->gdtr.base, st->gdtr.limit };
	m->idtr = (struct mig_dtr){ st->idtr.base, st->idtr.limit };
	m->cpl = st->cpl;
	m->flags = st->int_shadow ? MIG_VCPU_INT_SHADOW : 0;
	if (v->pending.valid) {
		m->event_flags = MIG_EVENT_VALID |
				 (v->pending.has_error ? MIG_EVENT_HAS_ERROR : 0);
		m->event_vector = v->pending.vector;
		m->event_type = v->pending.type;
		m->event_error = v->pending.has_error ? v->pending.error : 0;
	}
	for (size_t i = 0; i < msr_nmigrated; i++) {
		m->msrs[m->nmsrs].index = msr_migrated[i];
		msr_state_get(st, msr_migrated[i], &m->msrs[m->nmsrs].value);
		m->nmsrs++;
	}
	m->xsave_len = VCPU_FPU_AREA;
	m->xsave = v->fpu_guest;
	return 0;
}

/* The record as kernel/lib/vcpu_check.c sees it.  msrs: the caller's
 * MIG_MSRS_MAX array (the management CPU's, one record at a time). */
static void check_in(struct vcpu_check_in *in, const struct mig_vcpu *m,
		     struct vcpu_check_msr *msrs)
{
	*in = (struct vcpu_check_in){
		.rflags = m->rflags, .cr0 = m->cr0, .cr3 = m->cr3, .cr4 = m->cr4,
		.efer = m->efer, .xcr0 = m->xcr0, .dr6 = m->dr6, .dr7 = m->dr7,
		.gdtr_base = m->gdtr.base, .gdtr_limit = m->gdtr.limit,
		.idtr_base = m->idtr.base, .idtr_limit = m->idtr.limit,
		.event_valid = m->event_flags & MIG_EVENT_VALID,
		.event_has_error = m->event_flags & MIG_EVENT_HAS_ERROR,
		.event_type = m->event_type, .event_vector = m->event_vector,
		.nmsrs = m->nmsrs, .msrs = msrs, .fpu = m->xsave, .fpu_len = m->xsave_len,
	};
	memcpy(in->dr, m->dr, sizeof(in->dr));
	for (int i = 0; i < VCHK_NSEG; i++)
		in->seg[i] = (struct vcpu_check_seg){ m->seg[i].sel, m->seg[i].attr,
						      m->seg[i].limit, m->seg[i].base };
	for (uint32_t i = 0; i < m->nmsrs && i < MIG_MSRS_MAX; i++)
		msrs[i] = (struct vcpu_check_msr){ m->msrs[i].index, m->msrs[i].value };
}

/*
 * Checks every field of a hostile record against this host's boot-time
 * capabilities (cpu.c) before any of it is used: a value the hardware
 * would refuse is refused here, while the source still holds the guest.
 */
static int mig_vcpu_check(const struct mig_vcpu *m, int nvcpus, char *why, size_t len)
{
	static struct vcpu_check_msr msrs[MIG_MSRS_MAX];
	struct vcpu_check_in in;

	_Static_assert((int)SEG_COUNT == (int)VCHK_NSEG, "segment order");
	if (m->index >= (uint32_t)nvcpus) {
		snprintf(why, len, "vCPU %u of a %d-vCPU guest", m->index, nvcpus);
		return -ERANGE;
	}
	if (m->nmsrs > MIG_MSRS_MAX) {
		snprintf(why, len, "%u MSRs", m->nmsrs);
		return -EINVAL;
	}
	check_in(&in, m, msrs);
	return vcpu_state_check(&in, cpu_host_caps(), why, len);
}

/*
 * Load *m into vCPU 0 of a created VM.  Architectural nonsense that slips
 * through (a bad segment, say) makes the first VMRUN fail, which stops
 * that VM only (vcpu.c), never the host.
 */
int mig_state_apply(struct vm *vm, const struct mig_vcpu *m, char *why, size_t len)
{
	int rc = mig_vcpu_check(m, vm->nvcpus, why, len);
	struct vcpu *v;
	struct vcpu_state *st;

	if (rc < 0)
		return rc;
	v = &vm->vcpus[m->index];
	st = &v->st;
	if (vm->state != VM_CREATED) {
		snprintf(why, len, "VM %s is %s", vm->name, vm_state_name(vm->state));
		return -EBUSY;
	}
	memcpy(st->gpr, m->gpr, sizeof(st->gpr));
	st->rip = m->rip;
	st->rflags = m->rflags | 2;	/* bit 1 reads 1; 0 from an AP before SIPI */
	st->cr0 = m->cr0;
	st->cr2 = m->cr2;
	st->cr3 = m->cr3;
	st->cr4 = m->cr4;
	st->efer = m->efer;
	st->xcr0 = m->xcr0;
	memcpy(st->dr, m->dr, sizeof(st->dr));
	st->dr6 = m->dr6;
	st->dr7 = m->dr7;
	for (int i = 0; i < SEG_COUNT; i++)
		seg_in(&st->seg[i], &m->seg[i]);
	st->gdtr.base = m->gdtr.base;
	st->gdtr.limit = m->gdtr.limit;
	st->idtr.base = m->idtr.base;
	st->idtr.limit = m->idtr.limit;
	st->cpl = m->cpl & 3;
	st->int_shadow = m->flags & MIG_VCPU_INT_SHADOW;
	for (uint32_t i = 0; i < m->nmsrs; i++) {
		if (msr_state_set(v, m->msrs[i].index, m->msrs[i].value) < 0) {
			snprintf(why, len, "MSR %#x = %#lx not accepted", m->msrs[i].index,
				 m->msrs[i].value);
			return -EINVAL;
		}
	}
	v->pending = (struct vcpu_event){
		.valid = m->event_flags & MIG_EVENT_VALID,
		.vector = m->event_vector,
		.type = m->event_type,
		.has_error = m->event_flags & MIG_EVENT_HAS_ERROR,
		.error = m->event_error,
	};
	memcpy(v->fpu_guest, m->xsave, VCPU_FPU_AREA);
	/* Set for real at start (mig_state_start): the clock runs on. */
	v->mig_tsc = m->tsc;
	return 0;
}

/*
 * Start a VM whose state came from a stream.  Its TSC continues from the
 * value vCPU 0 had at the source's pause, with one offset for every vCPU
 * (they shared one there too): the guest sees no time pass while it was
 * stopped, and its LAPIC deadlines, loaded against that same value
 * (irq_state_load), stay where they were on its clock.
 */
int mig_state_start(struct vm *vm, char *why, size_t len)
{
	uint64_t off = vm->vcpus[0].mig_tsc - rdtsc();

	for (int i = 0; i < vm->nvcpus; i++)
		vm->vcpus[i].st.tsc_offset = off;
	return vm_start(vm, why, len);
}

/* ---- every device record: interrupt controllers, platform, virtio ---- */

int mig_devices_save(struct vm *vm, uint64_t host_tsc, mig_emit_fn emit, void *ctx)
{
	int rc = irq_state_save(vm, host_tsc, emit, ctx);

	if (!rc)
		rc = devices_save(vm, emit, ctx);
	if (!rc)
		rc = vdev_save_all(vm, emit, ctx);
	return rc;
}

/* After every vCPU record (the LAPIC timers count from vCPU 0's TSC). */
int mig_devices_load(struct vm *vm, const char *name, uint32_t version, const void *blob,
		     uint32_t len)
{
	int rc = irq_state_load(vm, name, version, blob, len);

	if (rc == -ENOENT)
		rc = vdev_load(vm, name, version, blob, len);
	if (rc == -ENOENT)
		rc = devices_load(vm, name, version, blob, len);
	return rc;
}
