/*
 * The registry of guest device types from other subsystems (vdev.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/devices/vdev.h"
#include "kernel/lib/cmd.h"
#include "kernel/virt/vm.h"

#define VDEV_MAX_TYPES	4

static const struct vdev_type *vdev_types[VDEV_MAX_TYPES];
static int vdev_ntypes;

int vdev_register(const struct vdev_type *t)
{
	for (int i = 0; i < vdev_ntypes; i++)
		if (!strcmp(vdev_types[i]->key, t->key))
			return -EEXIST;
	if (vdev_ntypes == VDEV_MAX_TYPES)
		return -ENOSPC;
	vdev_types[vdev_ntypes++] = t;
	return 0;
}

/* The type whose key starts spec, and where its value begins. */
static const struct vdev_type *vdev_lookup(const char *spec, const char **arg)
{
	for (int i = 0; i < vdev_ntypes; i++) {
		size_t k = strlen(vdev_types[i]->key);

		if (!strncmp(spec, vdev_types[i]->key, k) && spec[k] == '=') {
			*arg = spec + k + 1;
			return vdev_types[i];
		}
	}
	return NULL;
}

bool vdev_is_spec(const char *word)
{
	const char *arg;

	return vdev_lookup(word, &arg) != NULL;
}

static int vdev_index(const struct vm *vm, const struct vdev_type *t, int upto)
{
	int n = 0;

	for (int i = 0; i < upto; i++)
		n += vm->devs[i].type == t;
	return n;
}

static int vdev_create_one(struct vm *vm, int i, char *err, size_t errlen)
{
	const char *arg;
	const struct vdev_type *t = vdev_lookup(vm->dev_specs[i], &arg);

	if (!t) {
		snprintf(err, errlen, "'%s': no such device kind here", vm->dev_specs[i]);
		return -ENOENT;
	}
	vm->devs[i].type = t;
	vm->devs[i].inst = NULL;
	return t->create(vm, arg, vdev_index(vm, t, i), &vm->devs[i].inst, err, errlen);
}

int vdev_add(struct vm *vm, const char *spec, char *err, size_t errlen)
{
	int i = vm->ndevs, rc;

	if (vm->state != VM_CREATED) {
		snprintf(err, errlen, "devices are added before the VM starts");
		return -EBUSY;
	}
	if (i == VM_MAX_DEVS) {
		snprintf(err, errlen, "a VM has at most %d devices", VM_MAX_DEVS);
		return -ENOSPC;
	}
	if (strlen(spec) >= VM_DEV_SPEC_MAX) {
		snprintf(err, errlen, "'%s': longer than %d characters", spec,
			 VM_DEV_SPEC_MAX - 1);
		return -E2BIG;
	}
	strcpy(vm->dev_specs[i], spec);
	rc = vdev_create_one(vm, i, err, errlen);
	if (rc < 0) {
		vm->devs[i].type = NULL;
		return rc;
	}
	vm->ndevs++;
	return 0;
}

int vdev_create_all(struct vm *vm, char *err, size_t errlen)
{
	int rc = 0;

	for (int i = 0; i < vm->ndevs && !rc; i++)
		rc = vdev_create_one(vm, i, err, errlen);
	return rc;
}

void vdev_destroy_all(struct vm *vm)
{
	for (int i = vm->ndevs - 1; i >= 0; i--) {
		if (vm->devs[i].type && vm->devs[i].inst)
			vm->devs[i].type->destroy(vm->devs[i].inst);
		vm->devs[i].inst = NULL;
	}
}

void vdev_info(struct vm *vm, struct cmd_out *o)
{
	for (int i = 0; i < vm->ndevs; i++)
		if (vm->devs[i].type && vm->devs[i].inst && vm->devs[i].type->info)
			vm->devs[i].type->info(vm->devs[i].inst, o);
}

void vdev_specs(const struct vm *vm, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < vm->ndevs && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? " " : "", vm->dev_specs[i]);
}
