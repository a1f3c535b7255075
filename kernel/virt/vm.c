/*
 * VM lifecycle: guest RAM in 2 MiB host chunks mapped through the stage-2
 * engine, devices on the bus, a Multiboot kernel loaded from the ESP, and
 * vCPUs placed one per free application processor.
 *
 * All lifecycle calls come from the management CPU; a vCPU only changes
 * its VM's state through vm_guest_stopped().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/devices/devices.h"
#include "kernel/devices/vdev.h"
#include "kernel/virt/irq.h"
#include "kernel/virt/vm.h"
#include "kernel/virt/guest_load.h"
#include "kernel/platform/mainloop.h"

#define VM_MEM_MIN	(4ull << 20)
#define VM_MEM_MAX	(64ull << 30)
#define STOP_WAIT_US	2000000

static struct vm *vms[VM_MAX];
static struct spinlock vm_lock = SPINLOCK_INIT;

static const char *const state_names[] = {
	"created", "running", "paused", "stopped", "failed",
};

const char *vm_state_name(enum vm_state s)
{
	return s <= VM_FAILED ? state_names[s] : "?";
}

struct vm *vm_find(const char *name)
{
	int i;

	for (i = 0; i < VM_MAX; i++)
		if (vms[i] && !strcmp(vms[i]->name, name))
			return vms[i];
	return NULL;
}

void vm_foreach(void (*fn)(struct vm *vm, void *ctx), void *ctx)
{
	int i;

	for (i = 0; i < VM_MAX; i++)
		if (vms[i])
			fn(vms[i], ctx);
}

/* A VM stops as a whole: the vCPU (or device) that stopped it posts
 * STOP to the others and kicks them, without waiting (it may be a vCPU,
 * which must not spin on its siblings). */
static void stop_other_vcpus(struct vm *vm)
{
	struct percpu *self = this_cpu();
	int i;

	for (i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		struct percpu *p = cpu_table[v->host_cpu];

		if (!v->running || self->vcpu == v)
			continue;
		__atomic_fetch_or(&v->requests, VCPU_REQ_STOP, __ATOMIC_ACQ_REL);
		if (p && p != self)
			lapic_send_nmi(p->apic_id);
	}
}

void vm_guest_stopped(struct vm *vm, enum vm_state st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vm->stop_reason, sizeof(vm->stop_reason), fmt, ap);
	va_end(ap);
	vm->state = st;
	stop_other_vcpus(vm);
	if (st == VM_FAILED)
		pr_err("vm %s: stopped: %s", vm->name, vm->stop_reason);
	else
		pr_info("vm %s: stopped: %s", vm->name, vm->stop_reason);
}

/* A reset stops every vCPU now; vm_service restarts the VM once they
 * have all left their loops.  Only this VM is affected. */
void vm_guest_reset(struct vm *vm, const char *why)
{
	if (vm->state != VM_RUNNING)
		return;
	vm->reset_pending = true;
	vm_guest_stopped(vm, VM_STOPPED, "guest reset (%s)", why);
}

/* ---- guest memory ---- */

void *vm_gpa_to_hva(struct vm *vm, uint64_t gpa, size_t len)
{
	uint64_t off = gpa % GUEST_CHUNK;

	if (gpa >= vm->mem_size || len > vm->mem_size - gpa || off + len > GUEST_CHUNK)
		return NULL;
	return (uint8_t *)phys_to_virt(vm->chunks[gpa / GUEST_CHUNK].hpa) + off;
}

static int copy_gpa(struct vm *vm, uint64_t gpa, void *buf, size_t len, bool write)
{
	uint8_t *p = buf;

	while (len) {
		size_t n = GUEST_CHUNK - gpa % GUEST_CHUNK;
		uint8_t *h;

		n = n < len ? n : len;
		h = vm_gpa_to_hva(vm, gpa, n);
		if (!h)
			return -EFAULT;
		if (write)
			memcpy(h, p, n);
		else
			memcpy(p, h, n);
		gpa += n;
		p += n;
		len -= n;
	}
	return 0;
}

int vm_read_gpa(struct vm *vm, uint64_t gpa, void *buf, size_t len)
{
	return copy_gpa(vm, gpa, buf, len, false);
}

int vm_write_gpa(struct vm *vm, uint64_t gpa, const void *buf, size_t len)
{
	return copy_gpa(vm, gpa, (void *)buf, len, true);
}

static void *s2_alloc_table(void *ctx, uint64_t *phys)
{
	void *p = page_alloc(1);

	(void)ctx;
	if (p)
		*phys = virt_to_phys(p);
	return p;
}

static void s2_free_table(void *ctx, void *va, uint64_t phys)
{
	(void)ctx, (void)phys;
	page_free(va, 1);
}

static void *s2_p2v(void *ctx, uint64_t phys)
{
	(void)ctx;
	return phys_to_virt(phys);
}

static void free_memory(struct vm *vm)
{
	uint64_t i;

	if (vm->s2.root)
		s2_destroy(&vm->s2);
	for (i = 0; vm->chunks && i < vm->nchunks; i++)
		if (vm->chunks[i].hpa)
			page_free_phys(vm->chunks[i].hpa, GUEST_CHUNK / PAGE_SIZE);
	free(vm->chunks);
	vm->chunks = NULL;
}

static int alloc_memory(struct vm *vm, char *err, size_t errlen)
{
	const struct s2_mm mm = { s2_alloc_table, s2_free_table, s2_p2v, NULL };
	uint64_t i;
	int rc;

	vm->nchunks = vm->mem_size / GUEST_CHUNK;
	vm->chunks = calloc(vm->nchunks, sizeof(*vm->chunks));
	if (!vm->chunks || s2_init(&vm->s2, hv_caps->s2fmt, &mm) < 0)
		goto oom;
	for (i = 0; i < vm->nchunks; i++) {
		uint64_t hpa = page_alloc_phys_aligned(GUEST_CHUNK / PAGE_SIZE,
						       GUEST_CHUNK / PAGE_SIZE);

		if (!hpa)
			goto oom;
		vm->chunks[i].hpa = hpa;
		memset(phys_to_virt(hpa), 0, GUEST_CHUNK);
		rc = s2_map(&vm->s2, i * GUEST_CHUNK, hpa, GUEST_CHUNK, S2_RWX,
			    S2_MT_WB, S2_ALLOW_2M);
		if (rc < 0)
			goto oom;
	}
	return 0;
oom:
	snprintf(err, errlen, "not enough host memory for %lu MiB of guest RAM",
		 vm->mem_size >> 20);
	free_memory(vm);
	return -ENOMEM;
}

static int alloc_vcpus(struct vm *vm)
{
	int i;

	for (i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		v->vm = vm;
		v->id = i;
		v->fpu_guest = page_alloc(1);
		v->fpu_host = page_alloc(1);
		if (!v->fpu_guest || !v->fpu_host)
			return -ENOMEM;
		/* FXSAVE image defaults: FCW 0x37f, MXCSR 0x1f80 (SDM Vol. 1 10.5.1). */
		*(uint16_t *)v->fpu_guest = 0x37f;
		*(uint32_t *)(v->fpu_guest + 24) = 0x1f80;
	}
	return 0;
}

static void free_vcpus(struct vm *vm)
{
	int i;

	for (i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->vendor)
			hv->vcpu_free(v);
		if (v->fpu_guest)
			page_free(v->fpu_guest, 1);
		if (v->fpu_host)
			page_free(v->fpu_host, 1);
	}
}

static void vm_free(struct vm *vm)
{
	devices_destroy(vm);
	irq_vm_free(vm);
	free_vcpus(vm);
	free_memory(vm);
	free(vm->dirty.bits);
	free(vm);
}

static int check_create(const char *name, uint64_t mem, int nvcpus, char *err,
			size_t errlen)
{
	size_t i, n = strlen(name);

	if (!hv) {
		snprintf(err, errlen, "no virtualisation on this host: %s", hv_status());
		return -ENODEV;
	}
	if (!n || n >= VM_NAME_MAX) {
		snprintf(err, errlen, "name must be 1..%d characters", VM_NAME_MAX - 1);
		return -EINVAL;
	}
	for (i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'A' && name[i] <= 'Z') || name[i] == '-' || name[i] == '_')) {
			snprintf(err, errlen, "name may hold only letters, digits, '-' and '_'");
			return -EINVAL;
		}
	if (vm_find(name)) {
		snprintf(err, errlen, "a VM named '%s' exists", name);
		return -EEXIST;
	}
	if (mem < VM_MEM_MIN || mem > VM_MEM_MAX || mem % GUEST_CHUNK) {
		snprintf(err, errlen, "mem must be a multiple of 2M between 4M and 64G");
		return -EINVAL;
	}
	if (nvcpus < 1 || nvcpus > VM_MAX_VCPUS) {
		snprintf(err, errlen, "vcpus=%d: a VM has 1 to %d vCPUs", nvcpus,
			 VM_MAX_VCPUS);
		return -EINVAL;
	}
	return 0;
}

static int vm_slot(struct vm *vm)
{
	uint64_t f = spin_lock_irqsave(&vm_lock);
	int i;

	for (i = 0; i < VM_MAX; i++)
		if (!vms[i]) {
			vms[i] = vm;
			vm->id = i;
			break;
		}
	spin_unlock_irqrestore(&vm_lock, f);
	return i < VM_MAX ? 0 : -ENOSPC;
}

/*
 * The top of the PC's 32-bit space (IOAPIC, HPET, LAPIC, flash: 0xfec00000
 * to 4 GiB) holds chipset devices an OS may probe: what Tern does not
 * model there reads as all ones and ignores writes, as an unclaimed cycle
 * does on a PC, instead of stopping the guest.  Elsewhere an access to
 * nothing still stops the VM (a wild pointer, not a probe).
 */
static int hole_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	(void)ctx, (void)off;
	*val = size == 8 ? ~0ull : (1ull << (size * 8)) - 1;
	return 0;
}

static int hole_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	(void)ctx, (void)off, (void)size, (void)val;
	return 0;
}

static int add_pc_holes(struct vm *vm)
{
	const struct bus_dev holes[] = {
		{ "pc-chipset", 0xfec01000ull, 0xfee00000ull - 0xfec01000ull,
		  hole_read, hole_write, vm },
		{ "pc-flash", 0xfee01000ull, 0x100000000ull - 0xfee01000ull,
		  hole_read, hole_write, vm },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(holes); i++)
		if (bus_add(&vm->mmio, &holes[i]) < 0)
			return -ENOSPC;
	return 0;
}

int vm_create(const char *name, uint64_t mem, const char *kernel, const char *initrd,
	      const char *cmdline, int nvcpus, char *err, size_t errlen)
{
	return vm_create_mods(name, mem, kernel, initrd, NULL, cmdline, nvcpus, err, errlen);
}

int vm_create_mods(const char *name, uint64_t mem, const char *kernel, const char *initrd,
		   const char *modules, const char *cmdline, int nvcpus, char *err,
		   size_t errlen)
{
	struct vm *vm;
	int rc = check_create(name, mem, nvcpus, err, errlen);

	if (rc < 0)
		return rc;
	if (modules && strlen(modules) >= sizeof(vm->module_paths)) {
		snprintf(err, errlen, "module list longer than %zu characters",
			 sizeof(vm->module_paths) - 1);
		return -E2BIG;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	strncpy(vm->name, name, sizeof(vm->name) - 1);
	strncpy(vm->kernel_path, kernel, sizeof(vm->kernel_path) - 1);
	strncpy(vm->initrd_path, initrd ? initrd : "", sizeof(vm->initrd_path) - 1);
	strncpy(vm->cmdline, cmdline ? cmdline : "", sizeof(vm->cmdline) - 1);
	strncpy(vm->module_paths, modules ? modules : "", sizeof(vm->module_paths) - 1);
	vm->mem_size = mem;
	vm->nvcpus = nvcpus;
	vm->exit_code = -1;
	vm->state = VM_CREATED;
	rc = alloc_memory(vm, err, errlen);
	if (!rc && (rc = alloc_vcpus(vm)) < 0)
		snprintf(err, errlen, "out of memory for vCPU state");
	if (!rc && (rc = irq_vm_init(vm)) < 0)
		snprintf(err, errlen, "cannot create the interrupt controllers (%d)", rc);
	if (!rc && (rc = devices_create(vm)) < 0)
		snprintf(err, errlen, "cannot create devices (%d)", rc);
	if (!rc && (rc = add_pc_holes(vm)) < 0)
		snprintf(err, errlen, "cannot map the chipset window (%d)", rc);
	if (!rc)
		rc = guest_load(vm, err, errlen);
	if (!rc && (rc = vm_slot(vm)) < 0)
		snprintf(err, errlen, "too many VMs (max %d)", VM_MAX);
	if (rc < 0) {
		vm_free(vm);
		return rc;
	}
	pr_info("vm %s: created, %lu MiB, kernel %s", name, mem >> 20, kernel);
	return 0;
}

/* The devices of a new VM, in order (vdev.h); any failure destroys the VM
 * again, so a create with a bad device leaves nothing behind. */
int vm_add_devices(struct vm *vm, const char *const *specs, int n, char *err, size_t errlen)
{
	int rc = 0;

	if (!vm) {
		snprintf(err, errlen, "the VM went away");
		return -ENOENT;
	}
	for (int i = 0; i < n && !rc; i++)
		rc = vdev_add(vm, specs[i], err, errlen);
	if (rc < 0)
		vm_destroy(vm);
	return rc;
}

static bool cpu_taken(uint32_t cpu)
{
	int i, j;

	for (i = 0; i < VM_MAX; i++)
		for (j = 0; vms[i] && j < vms[i]->nvcpus; j++)
			if (vms[i]->vcpus[j].running && vms[i]->vcpus[j].host_cpu == cpu)
				return true;
	return false;
}

static bool cpu_free(uint32_t c)
{
	return hv_cpu_usable(c) && cpu_table[c] && cpu_table[c]->online && !cpu_taken(c);
}

int vm_pick_cpu(uint32_t *out)
{
	for (uint32_t c = 1; c < MAX_CPUS; c++)
		if (cpu_free(c)) {
			*out = c;
			return 0;
		}
	return -EBUSY;
}

int vm_free_cpus(void)
{
	int n = 0;

	for (uint32_t c = 1; c < MAX_CPUS; c++)
		n += cpu_free(c);
	return n;
}

/* Whether v's host CPU is inside v's loop now (it started there). */
bool vm_vcpu_on_cpu(const struct vcpu *v)
{
	const struct percpu *p = v->host_cpu < MAX_CPUS ? cpu_table[v->host_cpu] : NULL;

	return p && p->vcpu == v;
}

/* One free host CPU per vCPU, each marked taken (running) as it is
 * picked so the next pick skips it; all or none. */
static int pick_cpus(struct vm *vm)
{
	int i;

	for (i = 0; i < vm->nvcpus; i++) {
		if (vm_pick_cpu(&vm->vcpus[i].host_cpu) < 0) {
			while (i--)
				vm->vcpus[i].running = false;
			return -EBUSY;
		}
		vm->vcpus[i].running = true;
	}
	return 0;
}

static void unpick_cpus(struct vm *vm, int from)
{
	for (; from < vm->nvcpus; from++)
		vm->vcpus[from].running = false;
}

/*
 * Every vCPU gets its own host CPU and its loop; vCPU 0 runs the kernel,
 * the others wait for INIT and SIPI from it (mp_state, set by
 * irq_vm_init).
 */
int vm_start(struct vm *vm, char *err, size_t errlen)
{
	int i, rc;

	if (vm->state != VM_CREATED) {
		snprintf(err, errlen, "VM is %s; only a created VM starts "
			 "(destroy and create it again)", vm_state_name(vm->state));
		return -EINVAL;
	}
	if (pick_cpus(vm) < 0) {
		snprintf(err, errlen, "not enough free CPUs: %d vCPUs need %d "
			 "application processors no other vCPU uses", vm->nvcpus,
			 vm->nvcpus);
		return -EBUSY;
	}
	for (i = 0; i < vm->nvcpus; i++) {
		rc = hv->vcpu_init(&vm->vcpus[i]);
		if (rc < 0) {
			unpick_cpus(vm, 0);
			snprintf(err, errlen, "vCPU %d set-up failed (%d)", i, rc);
			return rc;
		}
	}
	vm->state = VM_RUNNING;
	for (i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		rc = smp_call(v->host_cpu, vcpu_loop, v, false);
		if (rc < 0) {
			unpick_cpus(vm, i);
			snprintf(err, errlen, "cannot reach CPU %u (%d)", v->host_cpu, rc);
			vm_stop(vm, "start failed");
			if (!i)
				vm->state = VM_CREATED;
			return rc;
		}
	}
	if (vm->nvcpus == 1)
		pr_info("vm %s: started on CPU %u", vm->name, vm->vcpus[0].host_cpu);
	else
		pr_info("vm %s: started, %d vCPUs from CPU %u", vm->name, vm->nvcpus,
			vm->vcpus[0].host_cpu);
	return 0;
}

static void withdraw(struct vm *vm, uint32_t req)
{
	int i;

	for (i = 0; i < vm->nvcpus; i++)
		__atomic_fetch_and(&vm->vcpus[i].requests, ~req, __ATOMIC_ACQ_REL);
}

int vm_pause(struct vm *vm)
{
	int i;

	if (vm->state != VM_RUNNING)
		return -EINVAL;
	for (i = 0; i < vm->nvcpus; i++)
		if (vcpu_request(&vm->vcpus[i], VCPU_REQ_PAUSE, true, STOP_WAIT_US) < 0) {
			withdraw(vm, VCPU_REQ_PAUSE);
			return -ETIMEDOUT;
		}
	if (vm->state == VM_RUNNING)
		vm->state = VM_PAUSED;
	return 0;
}

int vm_resume(struct vm *vm)
{
	int i;

	if (vm->state != VM_PAUSED)
		return -EINVAL;
	vm->state = VM_RUNNING;
	/* park() checks the request and then HLTs; an NMI between the two is
	 * spent in the host and the CPU sleeps on (an application processor
	 * has no tick): vcpu_request kicks until the vCPU has left park().
	 * A vCPU that does not answer still resumes when it wakes. */
	for (i = 0; i < vm->nvcpus; i++)
		vcpu_request(&vm->vcpus[i], VCPU_REQ_PAUSE, false, STOP_WAIT_US);
	return 0;
}

int vm_stop(struct vm *vm, const char *why)
{
	int i, rc = 0;

	vm->reset_pending = false;	/* the operator's word is the last */
	for (i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->running && vcpu_request(v, VCPU_REQ_STOP, true, STOP_WAIT_US) < 0)
			rc = -ETIMEDOUT;
	}
	if (rc < 0)
		return rc;
	if (vm->state == VM_RUNNING || vm->state == VM_PAUSED)
		vm_guest_stopped(vm, VM_STOPPED, "%s", why);
	return 0;
}

int vm_destroy(struct vm *vm)
{
	uint64_t f;
	int rc = vm_stop(vm, "destroyed by the operator");

	if (rc < 0)
		return rc;
	f = spin_lock_irqsave(&vm_lock);
	vms[vm->id] = NULL;
	spin_unlock_irqrestore(&vm_lock, f);
	pr_info("vm %s: destroyed", vm->name);
	vm_free(vm);
	return 0;
}

/* ---- guest resets ---- */

static bool vcpus_out(const struct vm *vm)
{
	int i;

	for (i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i].running)
			return false;
	return true;
}

/* Power-on state for every vCPU: vendor state rebuilt by vm_start, the
 * FPU image at its defaults (SDM Vol. 1 10.5.1), no posted events. */
static void reset_vcpus(struct vm *vm)
{
	int i;

	for (i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->vendor)
			hv->vcpu_free(v);
		memset(&v->st, 0, sizeof(v->st));
		memset(v->fpu_guest, 0, VCPU_FPU_AREA);
		*(uint16_t *)v->fpu_guest = 0x37f;
		*(uint32_t *)(v->fpu_guest + 24) = 0x1f80;
		v->pending.valid = false;
		v->requests = 0;
		v->init_pending = v->sipi_pending = v->nmi_pending = false;
		v->halted = false;
		v->irq_window = false;
		v->host_timer_us = 0;
	}
}

/*
 * The guest reset (ACPI reset register, 0xcf9, the keyboard controller):
 * RAM cleared, the interrupt controllers and devices made anew, the
 * kernel loaded again, and the VM started as the operator's `vm start`
 * would.  A failure leaves it stopped, with the reason.
 */
static void vm_restart(struct vm *vm)
{
	char err[160];
	bool attached = vuart_attached() == vm;
	uint64_t i;

	vm->reset_pending = false;
	memcpy(vm->last_reset, vm->stop_reason, sizeof(vm->last_reset));
	vm->stop_reason[0] = '\0';
	devices_destroy(vm);
	irq_vm_free(vm);
	memset(&vm->pio, 0, sizeof(vm->pio));
	memset(&vm->mmio, 0, sizeof(vm->mmio));
	for (i = 0; i < vm->nchunks; i++)
		memset(phys_to_virt(vm->chunks[i].hpa), 0, GUEST_CHUNK);
	reset_vcpus(vm);
	vm->exit_code = -1;
	vm->resets++;
	if (irq_vm_init(vm) < 0 || devices_create(vm) < 0 || add_pc_holes(vm) < 0) {
		vm_guest_stopped(vm, VM_FAILED, "reset: cannot recreate its devices");
		return;
	}
	if (attached)
		vuart_attach(vm);
	vm->state = VM_CREATED;
	if (guest_load(vm, err, sizeof(err)) < 0 || vm_start(vm, err, sizeof(err)) < 0) {
		vm_guest_stopped(vm, VM_FAILED, "reset: %s", err);
		return;
	}
	pr_info("vm %s: restarted after a guest reset (%u so far)", vm->name, vm->resets);
}

static void restart_if_ready(struct vm *vm, void *ctx)
{
	(void)ctx;
	if (vm->reset_pending && vcpus_out(vm))
		vm_restart(vm);
}

static void vm_service(void)
{
	vm_foreach(restart_if_ready, NULL);
}

static void any_reset(struct vm *vm, void *ctx)
{
	if (vm->reset_pending && vcpus_out(vm))
		*(bool *)ctx = true;
}

static bool vm_service_pending(void)
{
	bool any = false;

	vm_foreach(any_reset, &any);
	return any;
}

void vm_services_start(void)
{
	static const struct mainloop_service svc = {
		"vm", vm_service, vm_service_pending, 0,
	};

	mainloop_register(&svc);
}
