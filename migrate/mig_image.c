/*
 * The glue between a VM and a migration stream that the three users of
 * the stream share: the network source (mig_src.c), the network
 * destination (mig_dst.c) and the save area (mig_save.c).  One copy of
 * the CONFIG a VM is described by, of the VM created from a CONFIG, of
 * the decoder callbacks that write pages, vCPUs and devices into it, and
 * of "the guest runs here now".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/kernel.h"
#include "kernel/devices/vdev.h"
#include "kernel/virt/vm.h"
#include "migrate/migrate.h"

static enum mig_kind mig_kind_of(const struct vm *vm)
{
	return vm->kind == GUEST_LINUX ? MIG_KIND_LINUX :
	       vm->kind == GUEST_LINUX_PVH ? MIG_KIND_LINUX_PVH : MIG_KIND_MULTIBOOT;
}

static const char *const mig_kind_names[] = { "a Multiboot kernel", "a Linux bzImage",
					      "a Linux vmlinux (PVH)" };

int mig_image_movable(const struct vm *vm, char *why, size_t len)
{
	if (vm->committed_away) {
		snprintf(why, len, "%s was handed to another host by an earlier migration "
			 "(COMMIT): check there first", vm->name);
		return -EINVAL;
	}
	if (vm->nvcpus > MIG_VCPUS_MAX || vm->ndevs > MIG_DEVSPECS_MAX) {
		snprintf(why, len, "%s has %d vCPUs and %d devices; a migration carries at most "
			 "%d and %d", vm->name, vm->nvcpus, vm->ndevs, MIG_VCPUS_MAX,
			 MIG_DEVSPECS_MAX);
		return -EOPNOTSUPP;
	}
	return 0;
}

void mig_image_config(const struct vm *vm, const char *name, struct mig_config *c)
{
	memset(c, 0, sizeof(*c));
	c->mem_size = vm->mem_size;
	c->nvcpus = (uint32_t)vm->nvcpus;
	c->kind = mig_kind_of(vm);
	c->tsc_khz = (uint32_t)(tsc_hz() / 1000);
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->kernel_path, sizeof(c->kernel_path), "%s", vm->kernel_path);
	snprintf(c->initrd_path, sizeof(c->initrd_path), "%s", vm->initrd_path);
	snprintf(c->modules, sizeof(c->modules), "%s", vm->module_paths);
	snprintf(c->cmdline, sizeof(c->cmdline), "%s", vm->cmdline);
	for (int i = 0; i < vm->ndevs && i < MIG_DEVSPECS_MAX; i++)
		vdev_spec_exact(vm, i, c->devspecs[c->ndevspecs++], sizeof(c->devspecs[0]));
	c->ncpuid = mig_cpuid_identity(c->cpuid, MIG_CPUID_MAX);
}

int mig_image_emit(void *enc, const char *name, uint32_t version, const void *blob,
		   uint32_t len)
{
	struct mig_device d = { .version = version, .blob_len = len, .blob = blob };

	snprintf(d.name, sizeof(d.name), "%s", name);
	return mig_enc_device(enc, &d);
}

/*
 * The VM a CONFIG describes, from this host's copy of the guest's files
 * (of the same kind, or the guest would reboot into something else), with
 * its devices on the resources their prepare made ready.  On failure
 * nothing is left and why says it.
 */
int mig_image_create(const struct mig_config *c, struct vm **out, char *why, size_t len)
{
	const char *specs[MIG_DEVSPECS_MAX];
	struct vm *vm;
	int rc;

	*out = NULL;
	rc = vm_create_mods(c->name, c->mem_size, c->kernel_path, c->initrd_path, c->modules,
			    c->cmdline, (int)c->nvcpus, why, len);
	if (rc < 0)
		return rc;
	vm = vm_find(c->name);
	if (mig_kind_of(vm) != c->kind) {
		snprintf(why, len, "%s is %s here, %s there", c->kernel_path,
			 mig_kind_names[mig_kind_of(vm)], mig_kind_names[c->kind]);
		vm_destroy(vm);
		return -EXDEV;
	}
	for (uint32_t i = 0; i < c->ndevspecs; i++)
		specs[i] = c->devspecs[i];
	/* vm_add_devices destroys the VM when it fails. */
	rc = vm_add_devices(vm, specs, (int)c->ndevspecs, why, len);
	if (rc < 0)
		return rc;
	*out = vm;
	return 0;
}

/* ---- decoder callbacks' bodies: vm NULL means "not created yet" ---- */

int mig_image_page(struct mig_dec *d, struct vm *vm, uint64_t index, const void *data)
{
	uint8_t *h = vm ? vm_gpa_to_hva(vm, index * PAGE_SIZE, PAGE_SIZE) : NULL;

	if (!h)
		return mig_dec_fail(d, -ERANGE, "page %lu outside the VM", index);
	if (data)
		memcpy(h, data, PAGE_SIZE);
	else
		memset(h, 0, PAGE_SIZE);
	return 0;
}

int mig_image_vcpu(struct mig_dec *d, struct vm *vm, const struct mig_vcpu *v)
{
	char why[MIG_REASON_MAX];
	int rc;

	if (!vm)
		return mig_dec_fail(d, -EPROTO, "vCPU state before the VM exists");
	rc = mig_state_apply(vm, v, why, sizeof(why));
	return rc < 0 ? mig_dec_fail(d, rc, "vCPU state: %s", why) : 0;
}

int mig_image_device(struct mig_dec *d, struct vm *vm, const struct mig_device *dev)
{
	int rc;

	if (!vm)
		return mig_dec_fail(d, -EPROTO, "device state before the VM exists");
	rc = mig_devices_load(vm, dev->name, dev->version, dev->blob, dev->blob_len);
	if (rc < 0)
		return mig_dec_fail(d, rc, "device %s v%u: %s", dev->name, dev->version,
				    rc == -ENOENT ? "unknown here" : "state does not parse");
	return 0;
}

/*
 * Whether a started image runs here: every vCPU's loop is on its CPU, and
 * each has entered the guest, or waits in it (HLT, or for its SIPI) as it
 * did at the pause.  Only then may the host that gave it up forget it.
 */
bool mig_image_runs(const struct vm *vm)
{
	for (int i = 0; i < vm->nvcpus; i++) {
		const struct vcpu *v = &vm->vcpus[i];

		if (!vm_vcpu_on_cpu(v) && !v->entries)
			return false;
		if (!v->entries && !v->halted && v->mp_state != VCPU_MP_WAIT_SIPI)
			return false;
	}
	return true;
}
