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
#include <stdint.h>

struct vm;
struct cmd_out;
struct virtio_dev;

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

	/*
	 * Migration (issue 15, migrate/).  All run on the boot CPU's main
	 * loop.  Hooks a type leaves NULL mean "nothing to do".
	 */
	/* The virtio transport and rings of inst: vdev.c saves and loads
	 * them (virtio_dev_save/load) around the type's own record. */
	struct virtio_dev *(*virtio)(void *inst);
	/* The back end's own state after the transport's: bytes written,
	 * or -ENOSPC; load: 0, or -EINVAL leaving the device as it was. */
	int (*save)(void *inst, uint8_t *buf, size_t cap);
	int (*load)(void *inst, const uint8_t *buf, size_t len);
	/* Source, VM paused: stop touching guest memory (no new requests,
	 * no frames written into RX buffers).  0 once nothing is in flight
	 * (every started request completed into the used ring), -EAGAIN
	 * while draining (asked again).  It stays quiet until unquiesce
	 * (the migration failed; the guest runs on here) or destroy. */
	int (*quiesce)(void *inst);
	void (*unquiesce)(void *inst);
	/* Destination, before ACCEPTED: could this host create the device
	 * from arg, and make its resources ready (log in, register the
	 * reservation key)?  Calls done(ctx, 0 or -errno, why) once, maybe
	 * before returning; returns 0, or -errno with why set and no call. */
	int (*prepare)(const char *arg, void (*done)(void *ctx, int rc, const char *why),
		       void *ctx, char *why, size_t len);
	/* Destination at COMMIT, guest not yet running: take the resource
	 * over from the source (pre-empt its reservation), then done(). */
	int (*takeover)(void *inst, void (*done)(void *ctx, int rc, const char *why),
			void *ctx, char *why, size_t len);
	/* Destination, once the guest has entered: process what the rings
	 * hold already, announce the NIC's MAC, and so on. */
	void (*resumed)(void *inst);
	/* Source: the value after "key=" that rebuilds inst exactly on
	 * another host and under another name (nic=auto derives its MAC
	 * from the VM's name, which `migrate ... as=NAME` changes); NULL:
	 * the words the VM was created with already do. */
	void (*spec)(void *inst, char *buf, size_t len);
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
/* The words that rebuild device i elsewhere (vdev_type.spec), for the
 * migration stream's CONFIG. */
void vdev_spec_exact(const struct vm *vm, int i, char *buf, size_t len);

/*
 * Migration, over the hooks above, for migrate/ (boot CPU).
 *
 * vdev_save_all emits the VM's PCI host ("pci") and one record per
 * device ("vdev.N", N its index in dev_specs); vdev_load takes one such
 * record into a VM created with the same specs: 0, -ENOENT (not a vdev
 * record), -EINVAL (does not parse; the device is left as it was).
 */
typedef int (*vdev_emit_fn)(void *ctx, const char *name, uint32_t version, const void *blob,
			    uint32_t len);
int vdev_save_all(struct vm *vm, vdev_emit_fn emit, void *ctx);
int vdev_load(struct vm *vm, const char *name, uint32_t version, const void *blob,
	      uint32_t len);
/* 0 when every device is quiet, -EAGAIN while one drains. */
int vdev_quiesce_all(struct vm *vm);
void vdev_unquiesce_all(struct vm *vm);
/* Each spec's prepare in turn, then done(ctx, rc, why) once (the first
 * failure stops it).  0, or -errno with why set and no call. */
int vdev_prepare_all(const char *const *specs, int n,
		     void (*done)(void *ctx, int rc, const char *why), void *ctx,
		     char *why, size_t len);
/* Each device's takeover in turn, then done() once. */
int vdev_takeover_all(struct vm *vm, void (*done)(void *ctx, int rc, const char *why),
		      void *ctx, char *why, size_t len);
void vdev_resumed_all(struct vm *vm);
/* The caller gives up on its prepare/takeover chains with this ctx (the
 * migration is torn down): they end without calling done(), and the back
 * ends' later answers are ignored.  (vdev_destroy_all instead ends a
 * takeover of that VM with done(ctx, -ECANCELED, ...).) */
void vdev_cancel(void *ctx);

#endif
