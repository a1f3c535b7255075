/*
 * A VM's PCI bus 0: the host bridge model on the VM's buses, its lock
 * and MSI delivery (see vpci.h).
 */
#include <errno.h>
#include <stdlib.h>
#include "kernel/kernel.h"
#include "kernel/devices/vpci.h"
#include "kernel/devices/model/apic_msg.h"
#include "kernel/devices/model/pci_host.h"
#include "kernel/platform/spinlock.h"
#include "kernel/virt/irq.h"
#include "kernel/virt/vm.h"

#define VPCI_CF8	0xcf8
#define VPCI_NSLOTS	32

struct vpci {
	struct spinlock lock;
	struct pci_host host;
	/* The reset control register at 0xcf9 sits inside the config ports
	 * (PIIX4/ICH datasheets: a byte access there is not a config
	 * cycle); pc.c's handler is kept here and called for it. */
	struct bus_dev rst;
	bool has_rst;
	int next_slot;
	uint64_t bad_msis;
};

static struct vpci *vpci_of(void *ctx)
{
	return ((struct vm *)ctx)->vpci;
}

static bool vpci_is_rst(const struct vpci *p, uint64_t off, int size)
{
	return p->has_rst && off == 1 && size == 1;
}

/* Config mechanism #1 at 0xcf8-0xcff, and the reset register. */
static int vpci_io_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct vpci *p = vpci_of(ctx);
	uint64_t f;

	if (vpci_is_rst(p, off, size))
		return p->rst.read ? p->rst.read(p->rst.ctx, 0, 1, val) : (*val = 0, 0);
	f = spin_lock_irqsave(&p->lock);
	uint32_t v = 0;
	int rc = pcih_io_read(&p->host, (uint16_t)(VPCI_CF8 + off), size, &v);

	spin_unlock_irqrestore(&p->lock, f);
	*val = rc < 0 ? (size == 8 ? ~0ull : (1ull << (size * 8)) - 1) : v;
	return 0;
}

static int vpci_io_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct vpci *p = vpci_of(ctx);
	uint64_t f;

	if (vpci_is_rst(p, off, size))
		return p->rst.write ? p->rst.write(p->rst.ctx, 0, 1, val) : 0;
	f = spin_lock_irqsave(&p->lock);
	pcih_io_write(&p->host, (uint16_t)(VPCI_CF8 + off), size, (uint32_t)val);
	spin_unlock_irqrestore(&p->lock, f);
	return 0;
}

static int vpci_ecam_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct vpci *p = vpci_of(ctx);
	uint64_t f = spin_lock_irqsave(&p->lock);
	uint32_t v = 0;
	int rc = size <= 4 ? pcih_ecam_read(&p->host, (uint32_t)off, size, &v) : -EINVAL;

	spin_unlock_irqrestore(&p->lock, f);
	*val = rc < 0 ? (size == 8 ? ~0ull : (1ull << (size * 8)) - 1) : v;
	return 0;
}

static int vpci_ecam_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct vpci *p = vpci_of(ctx);
	uint64_t f = spin_lock_irqsave(&p->lock);

	if (size <= 4)
		pcih_ecam_write(&p->host, (uint32_t)off, size, (uint32_t)val);
	spin_unlock_irqrestore(&p->lock, f);
	return 0;
}

/*
 * The BAR window: a BAR the guest placed there, or -ENOENT, which stops
 * the VM as any access to nothing does (kernel/virt/mmio.c).  A PC would
 * master-abort and read all ones, but no OS touches window space it has
 * not given a BAR, so such an access is a wild pointer worth stopping on.
 */
static int vpci_mmio_read(void *ctx, uint64_t off, int size, uint64_t *val)
{
	struct vpci *p = vpci_of(ctx);
	uint64_t f = spin_lock_irqsave(&p->lock);
	int rc = pcih_mmio_read(&p->host, VPCI_MMIO_BASE + off, size, val);

	spin_unlock_irqrestore(&p->lock, f);
	return rc < 0 ? -ENOENT : 0;
}

static int vpci_mmio_write(void *ctx, uint64_t off, int size, uint64_t val)
{
	struct vpci *p = vpci_of(ctx);
	uint64_t f = spin_lock_irqsave(&p->lock);
	int rc = pcih_mmio_write(&p->host, VPCI_MMIO_BASE + off, size, val);

	spin_unlock_irqrestore(&p->lock, f);
	return rc < 0 ? -ENOENT : 0;
}

int vpci_create(struct vm *vm)
{
	struct vpci *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	pcih_init(&p->host, VPCI_MMIO_BASE, VPCI_MMIO_SIZE);
	p->next_slot = 1;
	vm->vpci = p;
	p->has_rst = bus_remove(&vm->pio, VPCI_CF8 + 1, &p->rst) == 0;
	rc = bus_add(&vm->pio, &(struct bus_dev){ "pci-cfg", VPCI_CF8, 8, vpci_io_read,
						  vpci_io_write, vm });
	if (!rc)
		rc = bus_add(&vm->mmio, &(struct bus_dev){ "pci-ecam", VPCI_ECAM, VPCI_ECAM_SIZE,
							   vpci_ecam_read, vpci_ecam_write, vm });
	if (!rc)
		rc = bus_add(&vm->mmio, &(struct bus_dev){ "pci-bars", VPCI_MMIO_BASE,
							   VPCI_MMIO_SIZE, vpci_mmio_read,
							   vpci_mmio_write, vm });
	return rc;
}

void vpci_destroy(struct vm *vm)
{
	free(vm->vpci);
	vm->vpci = NULL;
}

int vpci_add(struct vm *vm, struct pcih_func *fn)
{
	struct vpci *p = vm->vpci;
	uint64_t f;
	int slot, rc;

	if (!p)
		return -ENODEV;
	f = spin_lock_irqsave(&p->lock);
	slot = p->next_slot;
	rc = slot < VPCI_NSLOTS ? pcih_add(&p->host, slot, fn) : -ENOSPC;
	if (!rc)
		p->next_slot++;
	spin_unlock_irqrestore(&p->lock, f);
	return rc < 0 ? rc : slot;
}

uint64_t vpci_lock(struct vm *vm)
{
	return spin_lock_irqsave(&((struct vpci *)vm->vpci)->lock);
}

void vpci_unlock(struct vm *vm, uint64_t flags)
{
	spin_unlock_irqrestore(&((struct vpci *)vm->vpci)->lock, flags);
}

size_t vpci_save_size(struct vm *vm)
{
	struct vpci *p = vm->vpci;

	return p ? pcih_save_size(&p->host) : 0;
}

int vpci_save(struct vm *vm, uint8_t *buf, size_t cap)
{
	struct vpci *p = vm->vpci;
	uint64_t f;
	int rc;

	if (!p)
		return -ENODEV;
	f = spin_lock_irqsave(&p->lock);
	rc = pcih_save(&p->host, buf, cap);
	spin_unlock_irqrestore(&p->lock, f);
	return rc;
}

int vpci_load(struct vm *vm, const uint8_t *buf, size_t len)
{
	struct vpci *p = vm->vpci;
	uint64_t f;
	int rc;

	if (!p)
		return -ENODEV;
	f = spin_lock_irqsave(&p->lock);
	rc = pcih_load(&p->host, buf, len);
	spin_unlock_irqrestore(&p->lock, f);
	return rc;
}

void vpci_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
	struct vpci *p = vm->vpci;
	struct apic_msg m;

	if (apic_msg_from_msi(addr, data, &m))
		vm_irq_msg(vm, &m);
	else if (p && p->bad_msis++ == 0)	/* the guest programmed it: say so once */
		pr_warn("vm %s: MSI to %#lx (data %#x) is not an interrupt: dropped", vm->name,
			(unsigned long)addr, data);
}
