/*
 * Guest kernels come from files the loader read from the ESP (boot
 * modules).  A file with a Linux setup header ("HdrS" at 0x202) boots
 * through the Linux 64-bit boot protocol, an ELF64 with Xen's
 * XEN_ELFNOTE_PHYS32_ENTRY note (an uncompressed vmlinux) through PVH
 * (both guest_linux.c).  Multiboot v1: the pure lib/multiboot.c plans every copy and
 * builds the info structure; this file copies into guest RAM and sets the
 * architectural entry state of Multiboot spec 3.2: 32-bit protected mode,
 * paging off, flat 4 GiB segments, EAX = 0x2BADB002, EBX = info.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/platform/x86.h"
#include "kernel/virt/guest_load.h"
#include "kernel/lib/multiboot.h"

#define ATTR_CODE32	0xc9b	/* G, D/B, P, S, type 0xb (exec/read, accessed) */
#define ATTR_DATA32	0xc93	/* G, D/B, P, S, type 0x3 (read/write, accessed) */
#define ATTR_TSS32	0x08b	/* P, busy 32-bit TSS */
#define ATTR_LDT	0x082	/* P, LDT */

const struct boot_module *module_find(const char *path)
{
	uint32_t i;

	/* Accept "guests/x.elf", "tern/guests/x.elf" and "/tern/guests/x.elf". */
	while (*path == '/')
		path++;
	for (i = 0; i < boot_info->module_count; i++) {
		const char *n = boot_info->modules[i].name;

		if (!strcmp(n, path) || (!strncmp(n, "tern/", 5) && !strcmp(n + 5, path)))
			return &boot_info->modules[i];
	}
	return NULL;
}

static void set_seg(struct vcpu_seg *s, uint16_t sel, uint16_t attr, uint32_t limit)
{
	s->sel = sel;
	s->attr = attr;
	s->limit = limit;
	s->base = 0;
}

/*
 * 32-bit protected mode, paging off, flat 4 GiB segments (CS 0x08 code,
 * the rest 0x10 data), IF clear: the entry state of Multiboot spec 3.2
 * and of Xen's PVH ABI (docs/misc/pvh.pandoc) alike.  TR is a busy 32-bit
 * TSS and LDTR a present LDT so VMX entry accepts the state (SDM Vol. 3C
 * 27.3.1.2); GDTR and IDTR are left at base 0 for the kernel to replace.
 */
void guest_flat32_state(struct vcpu *v, uint32_t eip, uint32_t eax, uint32_t ebx)
{
	struct vcpu_state *st = &v->st;
	int i;

	memset(st, 0, sizeof(*st));
	st->gpr[GPR_RAX] = eax;
	st->gpr[GPR_RBX] = ebx;
	st->rip = eip;
	st->rflags = 0x2;
	st->cr0 = CR0_PE | CR0_ET;
	st->dr6 = 0xffff0ff0;
	st->dr7 = 0x400;
	st->pat = 0x0007040600070406ull;	/* power-on PAT, SDM Vol. 3A 12.12.4 */
	st->xcr0 = 1;
	for (i = 0; i < SEG_COUNT; i++)
		set_seg(&st->seg[i], 0x10, ATTR_DATA32, 0xffffffff);
	set_seg(&st->seg[SEG_CS], 0x08, ATTR_CODE32, 0xffffffff);
	set_seg(&st->seg[SEG_TR], 0, ATTR_TSS32, 0x67);
	set_seg(&st->seg[SEG_LDTR], 0, ATTR_LDT, 0xffff);
	st->gdtr.limit = 0xffff;
	st->idtr.limit = 0xffff;
}

/* Split "A,B,C" and find each file on the ESP; fills mods (string: the
 * path as given, as GRUB passes a module's command line). */
static int find_modules(struct vm *vm, const struct boot_module **found,
			struct mb_module *mods, char *names, char *err, size_t errlen)
{
	char *p = names, *comma;
	int n = 0;

	snprintf(names, sizeof(vm->module_paths), "%s", vm->module_paths);
	while (*p) {
		comma = strchr(p, ',');
		if (comma)
			*comma = 0;
		if (n == MB_MAX_MODS) {
			snprintf(err, errlen, "more than %d Multiboot modules", MB_MAX_MODS);
			return -E2BIG;
		}
		found[n] = module_find(p);
		if (!found[n]) {
			snprintf(err, errlen, "module '%s' is not on the ESP (files under "
				 "\\tern\\ are loaded at boot)", p);
			return -ENOENT;
		}
		mods[n] = (struct mb_module){ found[n]->size, p, 0 };
		n++;
		if (!comma)
			break;
		p = comma + 1;
	}
	return n;
}

/* Copy the placed modules, the GDT and the info into guest memory. */
static int multiboot_extras(struct vm *vm, const struct mb_load_plan *plan, uint32_t *info_gpa,
			    char *err, size_t errlen)
{
	static const struct boot_module *found[MB_MAX_MODS];
	static struct mb_module mods[MB_MAX_MODS];
	static char names[sizeof(vm->module_paths)], cmdline[512];
	uint8_t gdt[MB_GDT_SIZE], *area;
	const char *why = "";
	int n, k;

	n = find_modules(vm, found, mods, names, err, errlen);
	if (n < 0)
		return n;
	if (mb_plan_modules(plan, vm->mem_size, mods, n, &why) < 0) {
		snprintf(err, errlen, "%s: %s (%lu MiB)", vm->kernel_path, why,
			 vm->mem_size >> 20);
		return -ENOSPC;
	}
	for (k = 0; k < n; k++)
		if (vm_write_gpa(vm, mods[k].start, phys_to_virt(found[k]->phys), found[k]->size) < 0)
			goto nospace;
	mb_build_gdt(gdt);
	if (vm_write_gpa(vm, MB_GDT_GPA, gdt, sizeof(gdt)) < 0)
		goto nospace;
	/* argv[0] is the kernel's path, as QEMU's -kernel gives it. */
	if (mb_make_cmdline(cmdline, sizeof(cmdline), vm->kernel_path, vm->cmdline) >=
	    sizeof(cmdline)) {
		snprintf(err, errlen, "%s: command line too long", vm->kernel_path);
		return -E2BIG;
	}
	area = vm_gpa_to_hva(vm, MB_INFO_GPA, MB_INFO_SIZE);
	if (!area || mb_build_info_mods(area, MB_INFO_SIZE, MB_INFO_GPA, vm->mem_size, cmdline,
					"Tern", mods, n, info_gpa) < 0)
		goto nospace;
	return 0;
nospace:
	snprintf(err, errlen, "%s: cannot place the kernel, its modules or its boot "
		 "information in %lu MiB", vm->kernel_path, vm->mem_size >> 20);
	return -ENOSPC;
}

/* Zero guest RAM [gpa, gpa + len): a .bss the image does not carry. */
int guest_zero_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	static const uint8_t zeros[4096];
	uint64_t done = 0;

	while (done < len) {
		uint64_t n = len - done;

		n = n < sizeof(zeros) ? n : sizeof(zeros);
		if (vm_write_gpa(vm, gpa + done, zeros, n) < 0)
			return -1;
		done += n;
	}
	return 0;
}

static int copy_plan(struct vm *vm, const uint8_t *img, const struct mb_load_plan *p)
{
	int i;

	for (i = 0; i < p->ncopy; i++)
		if (vm_write_gpa(vm, p->copy[i].dst_gpa, img + p->copy[i].src_off,
				 p->copy[i].len) < 0)
			return -1;
	for (i = 0; i < p->nzero; i++)
		if (guest_zero_gpa(vm, p->zero[i].dst_gpa, p->zero[i].len) < 0)
			return -1;
	return 0;
}

int guest_load(struct vm *vm, char *err, size_t errlen)
{
	const struct boot_module *m = module_find(vm->kernel_path);
	static struct mb_load_plan plan;
	struct mb_entry_state es;
	const char *why = "";
	uint32_t info_gpa;
	const uint8_t *img;
	int rc;

	if (!m) {
		snprintf(err, errlen, "kernel '%s' is not on the ESP (files under "
			 "\\tern\\ are loaded at boot)", vm->kernel_path);
		return -ENOENT;
	}
	img = phys_to_virt(m->phys);
	if (guest_is_bzimage(img, m->size))
		return guest_load_linux(vm, img, m->size, err, errlen);
	/* Only an ELF64 with Xen's PHYS32_ENTRY note claims PVH: a Multiboot
	 * ELF32 (or an ELF64 without the note) goes on to the Multiboot path. */
	if (guest_is_pvh(img, m->size))
		return guest_load_linux_pvh(vm, img, m->size, err, errlen);
	if (vm->initrd_path[0]) {
		snprintf(err, errlen, "%s: initrd= is for Linux kernels; this is no bzImage "
			 "nor PVH vmlinux",
			 vm->kernel_path);
		return -EINVAL;
	}
	if (mb_plan_load(img, m->size, vm->mem_size, &plan, &why) < 0) {
		snprintf(err, errlen, "%s: neither a Linux bzImage (no \"HdrS\" at 0x202), "
			 "a PVH vmlinux (no Xen PHYS32_ENTRY note) nor a loadable "
			 "Multiboot kernel: %s", vm->kernel_path, why);
		return -ENOEXEC;
	}
	if (copy_plan(vm, img, &plan) < 0) {
		snprintf(err, errlen, "%s: cannot place the kernel in %lu MiB",
			 vm->kernel_path, vm->mem_size >> 20);
		return -ENOSPC;
	}
	rc = multiboot_extras(vm, &plan, &info_gpa, err, errlen);
	if (rc < 0)
		return rc;
	mb_entry_regs(&plan, info_gpa, &es);
	guest_flat32_state(&vm->vcpus[0], es.eip, es.eax, es.ebx);
	/* The flat GDT multiboot_extras wrote: a fault before the kernel's
	 * own LGDT reloads CS 0x08 from it (multiboot.h). */
	vm->vcpus[0].st.gdtr.base = es.gdtr_base;
	vm->vcpus[0].st.gdtr.limit = es.gdtr_limit;
	vm->kind = GUEST_MULTIBOOT;
	snprintf(vm->boot_cmdline, sizeof(vm->boot_cmdline), "%s", vm->cmdline);
	return 0;
}
