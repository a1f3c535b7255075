/*
 * Dirty logging over the stage-2 engine: one bit per 4 KiB guest page.
 *
 *   D-bit mode: hardware sets the stage-2 dirty bit; a harvest tests and
 *               clears it (NPT always has D bits; EPT when A/D is on).
 *   WP mode:    every page is write-protected; the first write faults,
 *               is logged and the page made writable again; a harvest
 *               re-protects the pages it reports.
 *
 * Invariant (the one KVM's dirty_log_test checks; `vm dirtycheck` checks
 * it here): a page written after harvest N is reported at harvest N+1.  A harvest only completes after the vCPU's TLB was flushed,
 * because a cached writable or already-dirty translation would let a write
 * through without a fault or a D-bit update (APM Vol. 2 15.25.x; SDM
 * Vol. 3C 29.4).  The caller copies page contents after the harvest.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/virt/vm.h"

#define FLUSH_WAIT_US	1000000

static const char *const mode_names[] = { "off", "d-bit", "write-protect", "pml" };

const char *dirty_mode_name(enum dirty_mode m)
{
	return m <= DIRTY_PML ? mode_names[m] : "?";
}

/* The policy migration and `vm dirty` use: PML drains a log instead of
 * walking the tables, D bits cost no faults, write-protect works anywhere. */
enum dirty_mode dirty_best_mode(void)
{
	if (hv_caps->dirty_modes & (1u << DIRTY_PML))
		return DIRTY_PML;
	if (hv_caps->dirty_modes & (1u << DIRTY_DBIT))
		return DIRTY_DBIT;
	return DIRTY_WP;
}

/* Make sure no stale stage-2 translation survives before we return.  A
 * vCPU that is not in the guest picks the flush up at its next entry. */
static int flush_vcpus(struct vm *vm)
{
	int i, rc;

	for (i = 0; i < vm->nvcpus; i++) {
		rc = vcpu_request(&vm->vcpus[i], VCPU_REQ_FLUSH, true, FLUSH_WAIT_US);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int ensure_map(struct vm *vm)
{
	uint64_t npages = vm->mem_size / PAGE_SIZE;
	uint64_t *bits;

	if (vm->dirty.bits)
		return 0;
	bits = calloc(1, dirtymap_bytes(npages));
	if (!bits)
		return -ENOMEM;
	dirtymap_init(&vm->dirty, bits, 0, npages);
	return 0;
}

int dirty_start(struct vm *vm, enum dirty_mode mode)
{
	uint64_t f;
	int rc;

	if (vm->dirty_mode != DIRTY_OFF)
		return -EALREADY;
	if (mode == DIRTY_OFF || !(hv_caps->dirty_modes & (1u << mode)))
		return -EOPNOTSUPP;
	rc = ensure_map(vm);
	if (rc < 0)
		return rc;
	/* Empty the map first and publish the mode before any page is
	 * protected: a write fault that races with the loop below is then
	 * logged (and counts for the first harvest), never taken for a bug. */
	dirtymap_harvest(&vm->dirty, NULL);
	vm->dirty_harvests = 0;
	f = spin_lock_irqsave(&vm->s2_lock);
	vm->dirty_mode = mode;
	/* Split first: one D bit per 2 MiB would report 512 pages per write. */
	rc = s2_split(&vm->s2, 0, vm->mem_size);
	if (!rc && (mode == DIRTY_DBIT || mode == DIRTY_PML))
		rc = s2_clear_dirty_all(&vm->s2, 0, vm->mem_size);
	if (!rc && mode == DIRTY_WP)
		rc = s2_protect(&vm->s2, 0, vm->mem_size, S2_R | S2_X);
	if (rc < 0) {
		s2_protect(&vm->s2, 0, vm->mem_size, S2_RWX);
		vm->dirty_mode = DIRTY_OFF;
	}
	spin_unlock_irqrestore(&vm->s2_lock, f);
	if (rc < 0) {
		flush_vcpus(vm);
		return rc;
	}
	rc = flush_vcpus(vm);
	/* A vCPU that did not answer may still run on stale translations:
	 * the log would miss its writes.  Give logging up whole, so the
	 * caller can fail cleanly and try again later. */
	if (rc < 0)
		dirty_stop(vm);
	return rc;
}

/*
 * PML mode (Intel, SDM Vol. 3C 28.3.6): the CPU logs a page's GPA when it
 * sets the page's EPT D bit, so only a page whose D bit is clear gets
 * logged again.  A harvest drains every vCPU's log into the map (on the
 * vCPU's CPU: hv->pml_drain), takes the map, clears the D bits of exactly
 * the pages it reports, and flushes: a later write sets D again, is logged,
 * and shows at the next harvest.  Pages logged after the drain keep their
 * D bit and their log entry until then.
 */
static long pml_drain_all(struct vm *vm)
{
	long rc;
	int i;

	for (i = 0; i < vm->nvcpus; i++) {
		if (!vm->vcpus[i].vendor || !hv->pml_drain)
			continue;
		rc = hv->pml_drain(&vm->vcpus[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static long pml_clear_reported(struct vm *vm, const uint64_t *bits)
{
	int64_t i;
	int rc;

	for (i = dirtymap_next(bits, vm->dirty.npages, 0); i >= 0;
	     i = dirtymap_next(bits, vm->dirty.npages, (uint64_t)i + 1)) {
		rc = s2_clear_dirty_all(&vm->s2, (uint64_t)i * PAGE_SIZE, PAGE_SIZE);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Get-and-clear into out (may be NULL); returns the number of pages. */
long dirty_harvest(struct vm *vm, uint64_t *out)
{
	uint64_t f, *tmp = NULL, n;
	long rc = 0;

	if (vm->dirty_mode == DIRTY_OFF)
		return -EINVAL;
	if (vm->dirty_mode == DIRTY_DBIT) {
		f = spin_lock_irqsave(&vm->s2_lock);
		rc = s2_harvest_dirty(&vm->s2, 0, vm->mem_size, vm->dirty.bits);
		spin_unlock_irqrestore(&vm->s2_lock, f);
	} else if (vm->dirty_mode == DIRTY_WP) {
		tmp = malloc(dirtymap_bytes(vm->dirty.npages));
		if (!tmp)
			return -ENOMEM;
	} else if (vm->dirty_mode == DIRTY_PML) {
		rc = pml_drain_all(vm);
		if (rc < 0)
			return rc;
		tmp = malloc(dirtymap_bytes(vm->dirty.npages));
		if (!tmp)
			return -ENOMEM;
	}
	if (rc < 0)
		return rc;
	n = dirtymap_harvest(&vm->dirty, tmp ? tmp : out);
	if (tmp) {
		f = spin_lock_irqsave(&vm->s2_lock);
		if (vm->dirty_mode == DIRTY_PML)
			rc = pml_clear_reported(vm, tmp);
		else
			rc = s2_write_protect_bitmap(&vm->s2, 0, tmp, vm->dirty.npages);
		spin_unlock_irqrestore(&vm->s2_lock, f);
		if (out)
			memcpy(out, tmp, dirtymap_bytes(vm->dirty.npages));
		free(tmp);
		if (rc < 0)
			return rc;
	}
	rc = flush_vcpus(vm);
	if (rc < 0)
		return rc;
	vm->dirty_harvests++;
	return (long)n;
}

void dirty_stop(struct vm *vm)
{
	uint64_t f;

	if (vm->dirty_mode == DIRTY_OFF)
		return;
	f = spin_lock_irqsave(&vm->s2_lock);
	if (vm->dirty_mode == DIRTY_WP)
		s2_protect(&vm->s2, 0, vm->mem_size, S2_RWX);
	vm->dirty_mode = DIRTY_OFF;
	spin_unlock_irqrestore(&vm->s2_lock, f);
	flush_vcpus(vm);
}

static bool s2_writable(struct vm *vm, uint64_t gpa)
{
	unsigned perm = 0;
	uint64_t hpa;
	int level;
	bool dirty;

	return s2_lookup(&vm->s2, gpa, &hpa, &perm, &level, &dirty) == 0 &&
	       (perm & S2_W);
}

/* A write fault on a protected RAM page: log it and let the write through.
 * Runs on the vCPU's own CPU, so its flush is simply the next entry's. */
bool dirty_wp_fault(struct vcpu *v, uint64_t gpa)
{
	struct vm *vm = v->vm;
	uint64_t f, page = gpa & ~(PAGE_SIZE - 1);
	bool ok;

	f = spin_lock_irqsave(&vm->s2_lock);
	if (vm->dirty_mode == DIRTY_WP) {
		dirtymap_mark(&vm->dirty, page);
		ok = s2_protect(&vm->s2, page, PAGE_SIZE, S2_RWX) == 0;
	} else {
		/* Logging stopped while this fault was in flight: dirty_stop
		 * gave write access back, so retrying the write is enough.
		 * Without logging ever started, a write fault in RAM is a bug. */
		ok = vm->dirty.bits && s2_writable(vm, page);
	}
	spin_unlock_irqrestore(&vm->s2_lock, f);
	hv->flush_stage2(v);
	return ok;
}
