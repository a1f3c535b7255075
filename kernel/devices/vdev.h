/*
 * Guest devices that live in other subsystems (storage/'s virtio disks,
 * net/'s virtio NICs) register a type here, named by the `vm create` key
 * that asks for one ("disk=NAME", "nic=MAC|auto"); the VM code creates
 * and destroys them through it and never includes the subsystems.
 *
 * A VM keeps the words it was created with, so a guest reset (and, later,
 * an incoming migration) builds the same devices again.
 */
#ifndef TERN_DEVICES_VDEV_H
#define TERN_DEVICES_VDEV_H

#include <stdbool.h>
#include <stddef.h>

struct vm;
struct cmd_out;

struct vdev_type {
	const char *key;		/* "disk" */
	/* Build device number index (0, 1... among this type's) of vm from
	 * the value after "key="; on failure *err says why. */
	int (*create)(struct vm *vm, const char *arg, int index, void **inst, char *err,
		      size_t errlen);
	/* Unplug (the VM is going or restarting); the back end frees inst
	 * once nothing it started is still out. */
	void (*destroy)(void *inst);
	/* vm info: one or more lines, each starting with two spaces. */
	void (*info)(void *inst, struct cmd_out *o);
};

/* Boot CPU, at subsystem start-up: -ENOSPC, -EEXIST. */
int vdev_register(const struct vdev_type *t);
/* Whether word is "key=..." for a registered key. */
bool vdev_is_spec(const char *word);
/* Record spec on a VM not yet started and create the device. */
int vdev_add(struct vm *vm, const char *spec, char *err, size_t errlen);
/* The recorded devices, again (a restart); destroy them all. */
int vdev_create_all(struct vm *vm, char *err, size_t errlen);
void vdev_destroy_all(struct vm *vm);
void vdev_info(struct vm *vm, struct cmd_out *o);
/* "disk=a nic=auto": the VM's device words, for `vm info` and migration. */
void vdev_specs(const struct vm *vm, char *buf, size_t len);

#endif
