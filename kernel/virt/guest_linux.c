/*
 * Linux guests: the x86 64-bit boot protocol (Linux
 * Documentation/arch/x86/boot.rst, "64-bit BOOT PROTOCOL").  The pure
 * lib/bzimage.c plans where everything goes and builds the zero page and
 * the boot GDT and page tables; lib/acpi_build.c writes the ACPI tables.
 * This file copies the kernel and the initrd from the ESP into guest RAM
 * and sets vCPU 0's entry state: long mode with paging, CS = __BOOT_CS,
 * DS = ES = SS = __BOOT_DS, interrupts off, RSI = the zero page.
 *
 * An uncompressed vmlinux (ELF64 with Xen's XEN_ELFNOTE_PHYS32_ENTRY
 * note) boots through PVH instead (Xen docs/misc/pvh.pandoc): lib/pvh.c
 * plans it and builds struct hvm_start_info; vCPU 0 starts in 32-bit flat
 * protected mode at the note's entry with EBX = the start info.  This
 * skips the in-guest decompressor, minutes of work under Bochs.
 *
 * Guest physical layout: bzimage.h (zero page 0x7000, boot tables from
 * 0x8000, command line 0x20000, kernel at pref_address, initrd high), and
 * the ACPI tables at GL_ACPI_GPA in the range the E820 map reserves below
 * 1 MiB, where Linux also scans for the RSDP (ACPI 6.5 5.2.5.1).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/platform/x86.h"
#include "kernel/kernel.h"
#include "kernel/lib/acpi_build.h"
#include "kernel/devices/vpci.h"
#include "kernel/lib/bzimage.h"
#include "kernel/lib/pvh.h"
#include "kernel/virt/guest_load.h"

#define GL_ACPI_GPA	0xe0000u
#define GL_ACPI_SIZE	0x10000u	/* to 0xf0000; the tables need ~1.3 KiB */
#define GL_DEFAULT_CMDLINE	"console=ttyS0"
#define GL_TSC_OPT	"tsc_early_khz="

/* SVM packed attributes (vm.h) of the boot GDT's descriptors and of the
 * system segments VMX entry demands in long mode (SDM Vol. 3C 27.3.1.2:
 * TR a present busy 64-bit TSS, type 11; LDTR, if usable, a present LDT). */
#define GL_ATTR_CODE64	0xa9b	/* G, L, P, S, type 0xb (exec/read, accessed) */
#define GL_ATTR_DATA	0xc93	/* G, D/B, P, S, type 0x3 (read/write, accessed) */
#define GL_ATTR_TSS64	0x08b	/* P, busy 64-bit TSS */
#define GL_ATTR_LDT	0x082	/* P, LDT */

bool guest_is_bzimage(const uint8_t *img, uint64_t size)
{
	/* boot.rst: "HdrS" at 0x202 marks a kernel with a setup header. */
	return size >= 0x206 && !memcmp(img + 0x202, "HdrS", 4);
}

/* Does the space-separated line already hold an option starting with opt? */
static bool has_opt(const char *line, const char *opt)
{
	size_t n = strlen(opt);
	const char *p = line;

	while (*p) {
		while (*p == ' ')
			p++;
		if (!strncmp(p, opt, n))
			return true;
		while (*p && *p != ' ')
			p++;
	}
	return false;
}

/*
 * The line the guest sees: the operator's, or "console=ttyS0" when empty
 * (the UART is the only console a guest has), plus tsc_early_khz=<host
 * TSC kHz> unless given: on AMD Linux takes the TSC rate from CPUID 0x15
 * only on Intel and would otherwise calibrate against the PIT (DESIGN.md).
 * Guests run on the host's TSC (offset only), so the host's rate is theirs.
 */
static int effective_cmdline(struct vm *vm, char *err, size_t errlen)
{
	const char *base = vm->cmdline[0] ? vm->cmdline : GL_DEFAULT_CMDLINE;
	uint64_t khz = tsc_hz() / 1000;
	int n;

	if (has_opt(base, GL_TSC_OPT) || !khz)
		n = snprintf(vm->boot_cmdline, sizeof(vm->boot_cmdline), "%s", base);
	else
		n = snprintf(vm->boot_cmdline, sizeof(vm->boot_cmdline), "%s " GL_TSC_OPT "%lu",
			     base, khz);
	if (n < 0 || (size_t)n >= sizeof(vm->boot_cmdline)) {
		snprintf(err, errlen, "command line longer than %zu characters",
			 sizeof(vm->boot_cmdline) - 1);
		return -E2BIG;
	}
	return 0;
}

static void seg64(struct vcpu_seg *s, uint16_t sel, uint16_t attr)
{
	s->sel = sel;
	s->attr = attr;
	s->limit = 0xffffffff;
	s->base = 0;
}

static void linux_state(struct vcpu *v, const struct bzi_entry_regs *r)
{
	struct vcpu_state *st = &v->st;
	int i;

	memset(st, 0, sizeof(*st));
	st->gpr[GPR_RSI] = r->rsi;
	st->rip = r->rip;
	st->rflags = r->rflags;		/* IF clear: "interrupt must be disabled" */
	st->cr0 = r->cr0;
	st->cr3 = r->cr3;
	st->cr4 = r->cr4;
	st->efer = r->efer;
	st->dr6 = 0xffff0ff0;
	st->dr7 = 0x400;
	st->pat = 0x0007040600070406ull;	/* power-on PAT, SDM Vol. 3A 12.12.4 */
	st->xcr0 = 1;
	for (i = 0; i < SEG_COUNT; i++)
		seg64(&st->seg[i], r->ds, GL_ATTR_DATA);
	seg64(&st->seg[SEG_CS], r->cs, GL_ATTR_CODE64);
	seg64(&st->seg[SEG_TR], 0, GL_ATTR_TSS64);
	st->seg[SEG_TR].limit = 0x67;
	seg64(&st->seg[SEG_LDTR], 0, GL_ATTR_LDT);
	st->seg[SEG_LDTR].limit = 0xffff;
	st->gdtr.base = r->gdt_base;
	st->gdtr.limit = r->gdt_limit;
	st->idtr.limit = 0;		/* no IDT until the kernel loads one */
}

static int build_acpi(struct vm *vm, uint64_t *rsdp, char *err, size_t errlen)
{
	struct acpi_build_cfg cfg;
	struct acpi_build_layout lay;
	const char *why = "";
	uint8_t *buf = vm_gpa_to_hva(vm, GL_ACPI_GPA, GL_ACPI_SIZE);

	acpi_build_defaults(&cfg, vm->nvcpus, GL_ACPI_GPA);
	/* The PM timer (kernel/devices/pc.c): a steady reference for the
	 * guest's clocksource watchdog. */
	cfg.pm_tmr = 0x608;
	cfg.pm_tmr_32bit = 1;
	/* PCI bus 0 (kernel/devices/vpci.c): virtio disks and NICs. */
	cfg.pci_ecam = VPCI_ECAM;
	cfg.pci_mmio_base = VPCI_MMIO_BASE;
	cfg.pci_mmio_size = VPCI_MMIO_SIZE;
	if (!buf || acpi_build(&cfg, buf, GL_ACPI_SIZE, &lay, &why) < 0) {
		snprintf(err, errlen, "ACPI tables: %s", buf ? why : "no guest RAM at 0xe0000");
		return -EINVAL;
	}
	*rsdp = GL_ACPI_GPA + lay.rsdp;
	return 0;
}

/* Copy the plan's pieces; the zero page and the tables are built in place
 * (each lies inside one 2 MiB chunk: bzimage.h's layout below 1 MiB). */
static int place(struct vm *vm, const uint8_t *img, const uint8_t *initrd,
		 const struct bzi_plan *p, const struct bzi_request *req,
		 struct bzi_entry_regs *regs, const char **why)
{
	uint8_t *zp = vm_gpa_to_hva(vm, p->zero_page_gpa, BZI_ZERO_PAGE_SIZE);
	uint8_t *area = vm_gpa_to_hva(vm, BZI_LOADER_AREA, BZI_LOADER_AREA_END - BZI_LOADER_AREA);

	*why = "guest RAM too small for the plan";
	if (!zp || !area ||
	    vm_write_gpa(vm, p->kernel_gpa, img + p->kernel_src_off, p->kernel_len) < 0 ||
	    vm_write_gpa(vm, p->cmdline_gpa, req->cmdline, p->cmdline_len) < 0 ||
	    (p->initrd_size && vm_write_gpa(vm, p->initrd_gpa, initrd, p->initrd_size) < 0))
		return -ENOSPC;
	if (bzi_build_zero_page(zp, p, req, why) < 0)
		return -EINVAL;
	if (bzi_build_boot_tables(area, BZI_LOADER_AREA_END - BZI_LOADER_AREA, p, regs) < 0)
		return -ENOSPC;
	return 0;
}

/*
 * What both Linux paths share: the initrd module, the E820 map, the
 * effective command line and the ACPI tables, gathered into req.
 */
static int linux_request(struct vm *vm, struct bzi_request *req, struct bzi_e820 *map,
			 const struct boot_module **rd, char *err, size_t errlen)
{
	int rc;

	memset(req, 0, sizeof(*req));
	*rd = NULL;
	if (vm->initrd_path[0] && !(*rd = module_find(vm->initrd_path))) {
		snprintf(err, errlen, "initrd '%s' is not on the ESP (files under \\tern\\ are "
			 "loaded at boot)", vm->initrd_path);
		return -ENOENT;
	}
	req->map = map;
	req->nmap = bzi_default_e820(vm->mem_size, map, BZI_E820_MAX - 1);
	if (req->nmap < 0 || vm->mem_size > VPCI_ECAM) {
		snprintf(err, errlen, "%s: a Linux guest needs 2 MiB to %lu MiB of RAM (its PCI "
			 "windows start at %#lx)", vm->kernel_path, (unsigned long)(VPCI_ECAM >> 20),
			 (unsigned long)VPCI_ECAM);
		return -EINVAL;
	}
	/* The ECAM window reserved, as firmware does: Linux uses MMCONFIG
	 * only for a window E820 or ACPI reserves (arch/x86/pci/mmconfig-shared.c,
	 * is_mmconf_reserved); it goes before the IOAPIC hole, the last. */
	map[req->nmap] = map[req->nmap - 1];
	map[req->nmap - 1] = (struct bzi_e820){ VPCI_ECAM, VPCI_ECAM_SIZE, BZI_E820_RESERVED };
	req->nmap++;
	rc = effective_cmdline(vm, err, errlen);
	if (!rc)
		rc = build_acpi(vm, &req->acpi_rsdp, err, errlen);
	if (rc)
		return rc;
	req->cmdline = vm->boot_cmdline;
	req->initrd_size = *rd ? (*rd)->size : 0;
	return 0;
}

int guest_load_linux(struct vm *vm, const uint8_t *img, uint64_t size, char *err, size_t errlen)
{
	static struct bzi_plan plan;
	struct bzi_e820 map[BZI_E820_MAX];
	struct bzi_request req;
	const struct boot_module *rd;
	struct bzi_entry_regs regs;
	const char *why = "";
	int rc;

	rc = linux_request(vm, &req, map, &rd, err, errlen);
	if (rc)
		return rc;
	rc = bzi_plan(img, size, &req, &plan, &why);
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot boot this Linux kernel in %lu MiB: %s",
			 vm->kernel_path, vm->mem_size >> 20, why);
		return rc;
	}
	rc = place(vm, img, rd ? phys_to_virt(rd->phys) : NULL, &plan, &req, &regs, &why);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", vm->kernel_path, why);
		return rc;
	}
	linux_state(&vm->vcpus[0], &regs);
	vm->kind = GUEST_LINUX;
	vm->linux_proto = plan.hdr.version;
	pr_info("vm %s: Linux boot protocol %u.%02u, kernel at %#lx, initrd %lu KiB at %#lx, "
		"entry %#lx", vm->name, plan.hdr.version >> 8, plan.hdr.version & 0xff,
		plan.kernel_gpa, plan.initrd_size >> 10, plan.initrd_gpa, plan.entry64);
	return 0;
}

/* ---- PVH ---- */

bool guest_is_pvh(const uint8_t *img, uint64_t size)
{
	uint32_t entry;

	return pvh_find_entry(img, size, &entry, NULL) == 0;
}

/* Copy the segments, zero their .bss, write the command line, the initrd
 * and the start info page (inside one 2 MiB chunk: it is at 0x7000). */
static int pvh_place(struct vm *vm, const uint8_t *img, const uint8_t *initrd,
		     const struct pvh_plan *p, const struct bzi_request *req, const char **why)
{
	uint8_t *info = vm_gpa_to_hva(vm, p->info_gpa, PVH_INFO_SIZE);

	*why = "guest RAM too small for the plan";
	if (!info)
		return -ENOSPC;
	for (int i = 0; i < p->nseg; i++) {
		const struct pvh_seg *s = &p->seg[i];

		if (vm_write_gpa(vm, s->gpa, img + s->src_off, s->filesz) < 0 ||
		    guest_zero_gpa(vm, s->gpa + s->filesz, s->memsz - s->filesz) < 0)
			return -ENOSPC;
	}
	if (vm_write_gpa(vm, p->cmdline_gpa, req->cmdline, p->cmdline_len) < 0 ||
	    (p->initrd_size && vm_write_gpa(vm, p->initrd_gpa, initrd, p->initrd_size) < 0))
		return -ENOSPC;
	return pvh_build_start_info(info, p, req, why);
}

int guest_load_linux_pvh(struct vm *vm, const uint8_t *img, uint64_t size, char *err,
			 size_t errlen)
{
	static struct pvh_plan plan;
	struct bzi_e820 map[BZI_E820_MAX];
	struct bzi_request req;
	const struct boot_module *rd;
	const char *why = "";
	int rc;

	rc = linux_request(vm, &req, map, &rd, err, errlen);
	if (rc)
		return rc;
	rc = pvh_plan(img, size, &req, &plan, &why);
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot boot this vmlinux by PVH in %lu MiB: %s",
			 vm->kernel_path, vm->mem_size >> 20, why);
		return rc;
	}
	rc = pvh_place(vm, img, rd ? phys_to_virt(rd->phys) : NULL, &plan, &req, &why);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", vm->kernel_path, why);
		return rc;
	}
	/* pvh.pandoc: EBX = the start info; EAX is unspecified. */
	guest_flat32_state(&vm->vcpus[0], plan.entry, 0, (uint32_t)plan.info_gpa);
	vm->kind = GUEST_LINUX_PVH;
	vm->linux_proto = 0;
	pr_info("vm %s: Linux PVH, kernel at %#lx-%#lx, initrd %lu KiB at %#lx, entry %#x",
		vm->name, plan.kernel_lo, plan.kernel_hi, plan.initrd_size >> 10,
		plan.initrd_gpa, plan.entry);
	return 0;
}
