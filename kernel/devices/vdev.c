/*
 * The registry of guest device types from other subsystems (vdev.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/kernel.h"
#include "kernel/devices/vdev.h"
#include "kernel/devices/virtio_dev.h"
#include "kernel/devices/vpci.h"
#include "kernel/lib/byteorder.h"
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

static void vdev_chains_cancel(struct vm *vm);

void vdev_destroy_all(struct vm *vm)
{
	vdev_chains_cancel(vm);
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

/* ---- migration ---- */

void vdev_spec_exact(const struct vm *vm, int i, char *buf, size_t len)
{
	const struct vm_dev *d = &vm->devs[i];
	size_t key;

	snprintf(buf, len, "%s", vm->dev_specs[i]);
	if (!d->type || !d->inst || !d->type->spec)
		return;
	key = strlen(d->type->key);
	if (len <= key + 1)
		return;
	snprintf(buf, len, "%s=", d->type->key);
	d->type->spec(d->inst, buf + key + 1, len - key - 1);
}

/*
 * "vdev.N", version VDEV_SAVE_VERSION (little-endian):
 *	0	u8	VDEV_SAVE_VERSION
 *	1	3 zero bytes
 *	4	u32	length of the transport's record (0: not a virtio device)
 *	8	char[8]	the type's key, NUL-padded ("nic", "disk"): a record
 *			for another kind of device is refused
 *	16	u32	length of the type's own record (0: none)
 *	20	4 zero bytes
 *	24	virtio_dev_save's record, then the type's save()
 */
#define VDEV_SAVE_VERSION	1
#define VDEV_HDR		24
#define VDEV_KEY_LEN		8
#define VDEV_BLOB_MAX		16384

/* One device's blob at a time, on the boot CPU (migrate/'s callers). */
static uint8_t vdev_blob[VDEV_BLOB_MAX];
static uint8_t vdev_undo[VDEV_BLOB_MAX];

static struct virtio_dev *vdev_virtio(const struct vm_dev *vd)
{
	return vd->type->virtio ? vd->type->virtio(vd->inst) : NULL;
}

/* The transport and rings, under the bus lock as every virtio_dev call. */
static int vdev_vd_save(struct vm *vm, struct virtio_dev *d, uint8_t *buf, size_t cap)
{
	uint64_t f = vpci_lock(vm);
	int rc = virtio_dev_save(d, buf, cap);

	vpci_unlock(vm, f);
	return rc;
}

static int vdev_vd_load(struct vm *vm, struct virtio_dev *d, const uint8_t *buf, size_t len)
{
	uint64_t f = vpci_lock(vm);
	int rc = virtio_dev_load(d, buf, len);

	vpci_unlock(vm, f);
	return rc;
}

/* Device i's blob into vdev_blob: its length or -ENOSPC. */
static int vdev_save_one(struct vm *vm, int i)
{
	const struct vm_dev *vd = &vm->devs[i];
	struct virtio_dev *d = vdev_virtio(vd);
	int vlen = 0, tlen = 0;

	memset(vdev_blob, 0, VDEV_HDR);
	vdev_blob[0] = VDEV_SAVE_VERSION;
	strncpy((char *)vdev_blob + 8, vd->type->key, VDEV_KEY_LEN);
	if (d) {
		vlen = vdev_vd_save(vm, d, vdev_blob + VDEV_HDR, VDEV_BLOB_MAX - VDEV_HDR);
		if (vlen < 0)
			return vlen;
	}
	if (vd->type->save) {
		/* Without the bus lock: the back end takes what it needs. */
		tlen = vd->type->save(vd->inst, vdev_blob + VDEV_HDR + vlen,
				      VDEV_BLOB_MAX - VDEV_HDR - (size_t)vlen);
		if (tlen < 0)
			return tlen;
	}
	st_le32(vdev_blob + 4, (uint32_t)vlen);
	st_le32(vdev_blob + 16, (uint32_t)tlen);
	return VDEV_HDR + vlen + tlen;
}

int vdev_save_all(struct vm *vm, vdev_emit_fn emit, void *ctx)
{
	char name[16];
	int rc, n;

	if (vm->vpci) {
		n = vpci_save(vm, vdev_blob, sizeof(vdev_blob));
		if (n < 0)
			return n;
		rc = emit(ctx, "pci", PCIH_SAVE_VERSION, vdev_blob, (uint32_t)n);
		if (rc < 0)
			return rc;
	}
	for (int i = 0; i < vm->ndevs; i++) {
		if (!vm->devs[i].type || !vm->devs[i].inst)
			continue;
		n = vdev_save_one(vm, i);
		if (n < 0)
			return n;
		snprintf(name, sizeof(name), "vdev.%d", i);
		rc = emit(ctx, name, VDEV_SAVE_VERSION, vdev_blob, (uint32_t)n);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* "vdev.N" -> N, or -1. */
static int vdev_record_index(const char *name)
{
	int n = 0;

	if (strncmp(name, "vdev.", 5) || !name[5] || (name[5] == '0' && name[6]))
		return -1;
	for (const char *p = name + 5; *p; p++) {
		if (*p < '0' || *p > '9' || n >= VM_MAX_DEVS)
			return -1;
		n = n * 10 + (*p - '0');
	}
	return n;
}

/* The header's fields against device vd: 0, with the two lengths. */
static int vdev_check_hdr(const struct vm_dev *vd, const uint8_t *b, uint32_t len,
			  uint32_t *vlen, uint32_t *tlen)
{
	char key[VDEV_KEY_LEN] = { 0 };

	strncpy(key, vd->type->key, VDEV_KEY_LEN);
	if (len < VDEV_HDR || b[0] != VDEV_SAVE_VERSION || b[1] || b[2] || b[3] ||
	    ld_le32(b + 20) || memcmp(b + 8, key, VDEV_KEY_LEN))
		return -EINVAL;
	*vlen = ld_le32(b + 4);
	*tlen = ld_le32(b + 16);
	if (*vlen > len - VDEV_HDR || *tlen != len - VDEV_HDR - *vlen)
		return -EINVAL;
	if (*tlen && !vd->type->load)
		return -EINVAL;
	return 0;
}

static int vdev_load_one(struct vm *vm, int i, const uint8_t *b, uint32_t len)
{
	const struct vm_dev *vd = &vm->devs[i];
	struct virtio_dev *d;
	uint32_t vlen, tlen;
	int undo = 0, rc;

	if (!vd->type || !vd->inst || vdev_check_hdr(vd, b, len, &vlen, &tlen) < 0)
		return -EINVAL;
	/* The transport's part is there exactly when this device has one. */
	d = vdev_virtio(vd);
	if (!vlen != !d)
		return -EINVAL;
	/* The transport goes first; should the type's record be refused,
	 * the device gets its old transport back (it was built from the
	 * same code, so that record always loads). */
	if (d) {
		undo = vdev_vd_save(vm, d, vdev_undo, sizeof(vdev_undo));
		if (undo < 0)
			return -EINVAL;
		if (vdev_vd_load(vm, d, b + VDEV_HDR, vlen) < 0)
			return -EINVAL;
	}
	rc = vd->type->load ? vd->type->load(vd->inst, b + VDEV_HDR + vlen, tlen) : 0;
	if (rc < 0 && d && vdev_vd_load(vm, d, vdev_undo, (size_t)undo) < 0)
		pr_warn("vm %s: device %d: could not restore its transport", vm->name, i);
	return rc < 0 ? -EINVAL : 0;
}

int vdev_load(struct vm *vm, const char *name, uint32_t version, const void *blob,
	      uint32_t len)
{
	int i;

	if (!strcmp(name, "pci")) {
		if (version != PCIH_SAVE_VERSION)
			return -EINVAL;
		return vpci_load(vm, blob, len) < 0 ? -EINVAL : 0;
	}
	if (strncmp(name, "vdev.", 5))
		return -ENOENT;
	i = vdev_record_index(name);
	if (i < 0 || i >= vm->ndevs || version != VDEV_SAVE_VERSION)
		return -EINVAL;
	return vdev_load_one(vm, i, blob, len);
}

int vdev_quiesce_all(struct vm *vm)
{
	int rc = 0;

	/* Every device is asked each time, so they drain side by side. */
	for (int i = 0; i < vm->ndevs; i++) {
		const struct vm_dev *vd = &vm->devs[i];
		int r;

		if (!vd->type || !vd->inst || !vd->type->quiesce)
			continue;
		r = vd->type->quiesce(vd->inst);
		if (r < 0 && (rc == 0 || rc == -EAGAIN))
			rc = r;
	}
	return rc;
}

void vdev_unquiesce_all(struct vm *vm)
{
	for (int i = 0; i < vm->ndevs; i++)
		if (vm->devs[i].type && vm->devs[i].inst && vm->devs[i].type->unquiesce)
			vm->devs[i].type->unquiesce(vm->devs[i].inst);
}

void vdev_resumed_all(struct vm *vm)
{
	for (int i = 0; i < vm->ndevs; i++)
		if (vm->devs[i].type && vm->devs[i].inst && vm->devs[i].type->resumed)
			vm->devs[i].type->resumed(vm->devs[i].inst);
}

/*
 * Asynchronous chains (prepare, takeover): one hook at a time, each
 * given done() with a token naming (chain slot, generation, step) rather
 * than a pointer, so a late or repeated call -- the back end answered
 * twice, or after the chain ended or its VM went -- finds a stale token
 * and is ignored instead of advancing the wrong step or touching freed
 * memory.  The caller's done() runs exactly once: at the end, at the
 * first failure, or from vdev_destroy_all (-ECANCELED).
 */
#define VDEV_CHAINS	4

typedef void (*vdev_done_fn)(void *ctx, int rc, const char *why);

struct vdev_chain {
	bool used;
	bool takeover;
	uint32_t gen;
	int n, next, waiting;		/* steps; the next to start; the one out, -1 */
	struct vm *vm;			/* takeover */
	const struct vdev_type *type[VM_MAX_DEVS];	/* prepare */
	char arg[VM_MAX_DEVS][VM_DEV_SPEC_MAX];		/* prepare */
	vdev_done_fn done;
	void *ctx;
	char why[96];
};

static struct vdev_chain vdev_chains[VDEV_CHAINS];
static uint64_t vdev_stale_dones;

static void *vdev_token(const struct vdev_chain *c, int step)
{
	uintptr_t slot = (uintptr_t)(c - vdev_chains);

	return (void *)(((uintptr_t)c->gen << 16) | slot << 8 | (uintptr_t)step);
}

static struct vdev_chain *vdev_chain_new(vdev_done_fn done, void *ctx)
{
	for (int i = 0; i < VDEV_CHAINS; i++) {
		struct vdev_chain *c = &vdev_chains[i];

		if (c->used)
			continue;
		memset(c->type, 0, sizeof(c->type));
		c->used = true;
		c->gen = (c->gen + 1) & 0xffffff;
		if (!c->gen)
			c->gen = 1;	/* a token is never NULL */
		c->next = 0;
		c->waiting = -1;
		c->vm = NULL;
		c->done = done;
		c->ctx = ctx;
		c->why[0] = '\0';
		return c;
	}
	return NULL;
}

/* The end: the slot is free (and its tokens stale) before done() runs,
 * which may start another chain. */
static void vdev_chain_end(struct vdev_chain *c, int rc, const char *why)
{
	vdev_done_fn done = c->done;
	void *ctx = c->ctx;
	char w[sizeof(c->why)];

	snprintf(w, sizeof(w), "%s", why ? why : "");
	c->used = false;
	c->gen = (c->gen + 1) & 0xffffff;
	done(ctx, rc, w);
}

static void vdev_step_done(void *token, int rc, const char *why);
static void vdev_chain_run(struct vdev_chain *c);

/* Start step i: 1 when it is out (done() comes), 0 when there was
 * nothing to do, < 0 when it failed at once (c->why set). */
static int vdev_chain_step(struct vdev_chain *c, int i)
{
	c->why[0] = '\0';
	if (c->takeover) {
		const struct vm_dev *vd = &c->vm->devs[i];

		if (!vd->type || !vd->inst || !vd->type->takeover)
			return 0;
		c->waiting = i;
		return vd->type->takeover(vd->inst, vdev_step_done, vdev_token(c, i), c->why,
					  sizeof(c->why)) ?: 1;
	}
	if (!c->type[i]->prepare)
		return 0;
	c->waiting = i;
	return c->type[i]->prepare(c->arg[i], vdev_step_done, vdev_token(c, i), c->why,
				   sizeof(c->why)) ?: 1;
}

static void vdev_chain_run(struct vdev_chain *c)
{
	while (c->next < c->n) {
		uint32_t gen = c->gen;
		int i = c->next++, rc = vdev_chain_step(c, i);

		if (rc > 0)
			return;		/* done() continues it, maybe already did */
		if (rc < 0) {
			/* A hook that both answered and failed broke its
			 * contract: its answer stands. */
			if (!c->used || c->gen != gen || c->waiting != i)
				return;
			if (!c->why[0])
				snprintf(c->why, sizeof(c->why), "device %d: error %d", i, rc);
			c->waiting = -1;
			vdev_chain_end(c, rc, c->why);
			return;
		}
	}
	vdev_chain_end(c, 0, "");
}

static void vdev_step_done(void *token, int rc, const char *why)
{
	uintptr_t t = (uintptr_t)token;
	unsigned slot = (t >> 8) & 0xff;
	struct vdev_chain *c = slot < VDEV_CHAINS ? &vdev_chains[slot] : NULL;

	if (!c || !c->used || c->gen != (uint32_t)(t >> 16) || c->waiting != (int)(t & 0xff)) {
		if (vdev_stale_dones++ == 0)
			pr_warn("vdev: a device answered a step that was over (ignored)");
		return;
	}
	c->waiting = -1;
	if (rc < 0) {
		vdev_chain_end(c, rc, why && why[0] ? why : "a device could not be made ready");
		return;
	}
	vdev_chain_run(c);
}

int vdev_prepare_all(const char *const *specs, int n, vdev_done_fn done, void *ctx, char *why,
		     size_t len)
{
	struct vdev_chain *c;

	if (n < 0 || n > VM_MAX_DEVS) {
		snprintf(why, len, "%d devices: a VM has at most %d", n, VM_MAX_DEVS);
		return -E2BIG;
	}
	c = vdev_chain_new(done, ctx);
	if (!c) {
		snprintf(why, len, "too many device preparations at once");
		return -EBUSY;
	}
	for (int i = 0; i < n; i++) {
		const char *arg;

		c->type[i] = vdev_lookup(specs[i], &arg);
		if (!c->type[i] || strlen(specs[i]) >= VM_DEV_SPEC_MAX) {
			snprintf(why, len, "'%s': no such device kind here", specs[i]);
			c->used = false;
			return -ENOENT;
		}
		snprintf(c->arg[i], sizeof(c->arg[i]), "%s", arg);
	}
	c->takeover = false;
	c->n = n;
	vdev_chain_run(c);
	return 0;
}

int vdev_takeover_all(struct vm *vm, vdev_done_fn done, void *ctx, char *why, size_t len)
{
	struct vdev_chain *c = vdev_chain_new(done, ctx);

	if (!c) {
		snprintf(why, len, "too many device takeovers at once");
		return -EBUSY;
	}
	c->takeover = true;
	c->vm = vm;
	c->n = vm->ndevs;
	vdev_chain_run(c);
	return 0;
}

/* The VM's devices are going: its takeover ends now, and the back ends'
 * late answers find stale tokens. */
static void vdev_chains_cancel(struct vm *vm)
{
	for (int i = 0; i < VDEV_CHAINS; i++) {
		struct vdev_chain *c = &vdev_chains[i];

		if (c->used && c->takeover && c->vm == vm)
			vdev_chain_end(c, -ECANCELED, "the VM's devices were destroyed");
	}
}

void vdev_cancel(void *ctx)
{
	for (int i = 0; i < VDEV_CHAINS; i++) {
		struct vdev_chain *c = &vdev_chains[i];

		if (c->used && c->ctx == ctx) {
			c->used = false;
			c->gen = (c->gen + 1) & 0xffffff;
		}
	}
}
