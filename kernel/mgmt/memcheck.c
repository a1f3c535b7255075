/*
 * `vm memcheck NAME`: prove from outside that the migration-verification
 * guest's memory is whole (tests/guests/migverify.c, lib/migverify.h).
 * The VM is paused for the scan, so the counters stand still, and resumed
 * afterwards if it was running.
 */
#include <errno.h>
#include <string.h>
#include "kernel/mgmt/console.h"
#include "kernel/virt/vm.h"
#include "kernel/mgmt/vm_cmds.h"
#include "kernel/lib/migverify.h"

struct memcheck_ctx {
	struct vm *vm;
	uint64_t first;
	int err;
};

static uint64_t memcheck_get(void *arg, uint64_t i)
{
	struct memcheck_ctx *m = arg;
	uint64_t v = 0;

	if (vm_read_gpa(m->vm, m->first + i * PAGE_SIZE, &v, sizeof(v)) < 0)
		m->err = -EFAULT;
	return v;
}

static int memcheck_hdr(struct vm *vm, struct migv_hdr *h, struct cmd_out *o)
{
	if (vm_read_gpa(vm, MIGV_HDR_GPA, h, sizeof(*h)) < 0 || h->magic != MIGV_MAGIC) {
		cmd_printf(o, "error: vm memcheck: %s does not run the migverify guest "
			   "(no header at 0x%llx)\n", vm->name, MIGV_HDR_GPA);
		return -ENOENT;
	}
	if (h->first % PAGE_SIZE || h->npages == 0 || h->first >= vm->mem_size ||
	    h->npages > (vm->mem_size - h->first) / PAGE_SIZE) {
		cmd_printf(o, "error: vm memcheck: header out of range (first 0x%lx, %lu pages)\n",
			   h->first, h->npages);
		return -EINVAL;
	}
	return 0;
}

int vm_cmd_memcheck(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct vm *vm = vm_find(argv[0]);
	struct memcheck_ctx m = { .vm = vm };
	struct migv_result r;
	struct migv_hdr h;
	bool paused = false;
	int rc;

	(void)ctx, (void)argc;
	if (!vm) {
		cmd_printf(o, "error: vm memcheck: no VM named '%s'\n", argv[0]);
		return -ENOENT;
	}
	if (vm->migrating) {
		cmd_printf(o, "error: vm memcheck: %s is migrating\n", vm->name);
		return -EBUSY;
	}
	if (vm->state == VM_RUNNING) {
		rc = vm_pause(vm);
		if (rc < 0) {
			cmd_printf(o, "error: vm memcheck: cannot pause %s (%s)\n", vm->name,
				   cmd_strerror(rc));
			return rc;
		}
		paused = true;
	}
	rc = memcheck_hdr(vm, &h, o);
	if (!rc) {
		m.first = h.first;
		rc = migv_check(memcheck_get, &m, h.npages, h.pass, &r);
		if (m.err)
			rc = m.err;
	}
	if (paused)
		vm_resume(vm);
	if (rc == -EIO) {
		cmd_printf(o, "memcheck FAIL pages=%lu pass=%lu: page %lu holds %lu, want %lu\n",
			   h.npages, h.pass, r.bad_page, r.bad_value, r.want);
		return rc;
	}
	if (rc == 0)
		cmd_printf(o, "memcheck PASS pages=%lu pass=%lu boundary=%lu\n", h.npages,
			   h.pass, r.boundary);
	else if (rc != -ENOENT && rc != -EINVAL)
		cmd_printf(o, "error: vm memcheck: %s\n", cmd_strerror(rc));
	return rc;
}
