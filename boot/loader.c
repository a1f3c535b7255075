/*
 * Tern's UEFI loader (\EFI\BOOT\BOOTX64.EFI).
 *
 * Reads \tern\tern.cfg, \tern\kernel.elf and every other file under \tern\
 * from the volume it was loaded from, validates the configuration and the
 * kernel with the same pure parsers the kernel and the unit tests use, builds
 * the kernel's page tables, leaves boot services and jumps.
 *
 * Every failure before ExitBootServices prints "tern-boot: error: ..." and
 * returns to the firmware, which moves on to its next boot option.
 */
#include "boot/loader.h"
#include "kernel/lib/config.h"
#include "version.h"

#define KERNEL_PATH	L"\\tern\\kernel.elf"
#define CONFIG_PATH	L"\\tern\\tern.cfg"
#define MODULE_MAX_SIZE	(1ull << 30)
#define DIR_DEPTH_MAX	3

static void boot_error(const CHAR16 *what, const char *why)
{
	Print(L"tern-boot: error: %s: %a\r\n", what, why);
	Print(L"tern-boot: returning to firmware\r\n");
	/* Leave a human time to read it; tests look for the line above. */
	uefi_call_wrapper(BS->Stall, 1, 2000000);
}

/* Kept allocations are recorded so a failed boot gives them all back. */
static struct {
	UINT64 phys;
	UINTN pages;
} boot_allocs[BOOT_MAX_MODULES + 16];
static UINTN boot_nallocs;

EFI_STATUS boot_alloc_pages(UINTN pages, UINT64 max_addr, UINT64 *phys)
{
	EFI_PHYSICAL_ADDRESS addr = max_addr ? max_addr : ~0ull;
	EFI_ALLOCATE_TYPE how = max_addr ? AllocateMaxAddress : AllocateAnyPages;

	if (boot_nallocs >= sizeof(boot_allocs) / sizeof(boot_allocs[0]))
		return EFI_OUT_OF_RESOURCES;
	if (EFI_ERROR(uefi_call_wrapper(BS->AllocatePages, 4, how,
					TERN_EFI_MEM_KEEP, pages, &addr)))
		return EFI_OUT_OF_RESOURCES;
	boot_allocs[boot_nallocs].phys = addr;
	boot_allocs[boot_nallocs++].pages = pages;
	*phys = addr;
	return EFI_SUCCESS;
}

static void boot_free_pages(UINT64 phys)
{
	UINTN i;

	for (i = 0; i < boot_nallocs; i++) {
		if (boot_allocs[i].phys != phys)
			continue;
		uefi_call_wrapper(BS->FreePages, 2, phys, boot_allocs[i].pages);
		boot_allocs[i] = boot_allocs[--boot_nallocs];
		return;
	}
}

static void boot_free_all(void)
{
	while (boot_nallocs)
		boot_free_pages(boot_allocs[boot_nallocs - 1].phys);
}

UINT64 boot_rdtsc(void)
{
	UINT32 lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((UINT64)hi << 32) | lo;
}

/* Read a whole file into kept pages.  Returns the size via *size. */
static EFI_STATUS read_file(EFI_FILE_HANDLE fh, UINT64 *phys, UINT64 *size)
{
	EFI_FILE_INFO *info = LibFileInfo(fh);
	UINTN len, got;
	UINT64 addr;
	EFI_STATUS st;

	if (!info)
		return EFI_DEVICE_ERROR;
	len = info->FileSize;
	FreePool(info);
	if (len > MODULE_MAX_SIZE)
		return EFI_BAD_BUFFER_SIZE;
	st = boot_alloc_pages(EFI_SIZE_TO_PAGES(len ? len : 1), 0, &addr);
	if (EFI_ERROR(st))
		return st;
	got = len;
	st = uefi_call_wrapper(fh->Read, 3, fh, &got, (void *)(UINTN)addr);
	if (EFI_ERROR(st) || got != len) {
		boot_free_pages(addr);
		return EFI_ERROR(st) ? st : EFI_END_OF_FILE;
	}
	*phys = addr;
	*size = len;
	return EFI_SUCCESS;
}

static EFI_STATUS open_path(struct loader *ld, const CHAR16 *path,
			    EFI_FILE_HANDLE *fh)
{
	return uefi_call_wrapper(ld->root->Open, 5, ld->root, fh,
				 (CHAR16 *)path, EFI_FILE_MODE_READ, 0);
}

static EFI_STATUS load_config(struct loader *ld)
{
	struct tern_config cfg;
	struct cfg_error err;
	EFI_FILE_HANDLE fh;
	EFI_STATUS st;

	if (EFI_ERROR(open_path(ld, CONFIG_PATH, &fh))) {
		boot_error(CONFIG_PATH, "not found (make installs a default)");
		return EFI_NOT_FOUND;
	}
	st = read_file(fh, &ld->bi->config_phys, &ld->bi->config_size);
	uefi_call_wrapper(fh->Close, 1, fh);
	if (EFI_ERROR(st)) {
		boot_error(CONFIG_PATH, "cannot be read");
		return st;
	}
	if (cfg_parse((const char *)(UINTN)ld->bi->config_phys,
		      ld->bi->config_size, &cfg, &err) < 0) {
		boot_error(CONFIG_PATH, err.msg);
		return EFI_LOAD_ERROR;
	}
	Print(L"tern-boot: config ok: hostname %a\r\n", cfg.hostname);
	return EFI_SUCCESS;
}

static void copy_segments(struct loader *ld, const UINT8 *file)
{
	UINT64 span = ld->kimg.vmax - ld->kimg.vmin;
	int i;

	ZeroMem((void *)(UINTN)ld->kernel_phys, span);
	for (i = 0; i < ld->kimg.nseg; i++) {
		const struct elf_seg *s = &ld->kimg.seg[i];
		UINT8 *dst = (UINT8 *)(UINTN)(ld->kernel_phys +
					      (s->vaddr - ld->kimg.vmin));

		CopyMem(dst, (void *)(file + s->file_off), s->filesz);
	}
}

static EFI_STATUS load_kernel(struct loader *ld)
{
	const char *why = "unknown";
	EFI_FILE_HANDLE fh;
	UINT64 phys, size, pages;
	EFI_STATUS st;

	if (EFI_ERROR(open_path(ld, KERNEL_PATH, &fh))) {
		boot_error(KERNEL_PATH, "not found");
		return EFI_NOT_FOUND;
	}
	st = read_file(fh, &phys, &size);
	uefi_call_wrapper(fh->Close, 1, fh);
	if (EFI_ERROR(st)) {
		boot_error(KERNEL_PATH, "cannot be read");
		return st;
	}
	if (elf_parse((void *)(UINTN)phys, size, 64, 62, &ld->kimg, &why) < 0 ||
	    elf_check_range(&ld->kimg, KERNEL_VIRT_BASE,
			    KERNEL_VIRT_BASE + KERNEL_MAX_SIZE, &why) < 0 ||
	    (ld->kimg.vmin != KERNEL_VIRT_BASE && (why = "image does not start at the kernel base"))) {
		boot_error(KERNEL_PATH, why);
		st = EFI_LOAD_ERROR;
		goto out;
	}
	pages = (ld->kimg.vmax - ld->kimg.vmin) / EFI_PAGE_SIZE;
	st = boot_alloc_pages(pages, 0, &ld->kernel_phys);
	if (EFI_ERROR(st)) {
		boot_error(KERNEL_PATH, "no memory for the image");
		goto out;
	}
	copy_segments(ld, (const UINT8 *)(UINTN)phys);
	ld->bi->kernel_phys = ld->kernel_phys;
	ld->bi->kernel_pages = pages;
	Print(L"tern-boot: kernel ok: %ld KiB, entry %lx\r\n",
	      size / 1024, ld->kimg.entry);
out:
	boot_free_pages(phys);
	return st;
}

/* Module names are ASCII paths relative to the volume root, '/'-separated. */
static int module_name(char *out, const CHAR16 *dir, const CHAR16 *leaf)
{
	UINTN n = 0;
	const CHAR16 *p;

	for (p = dir; *p; p++) {
		if (n + 2 >= BOOT_MODULE_NAME_MAX || *p > 0x7e)
			return -1;
		if (n == 0 && *p == L'\\')
			continue;
		out[n++] = *p == L'\\' ? '/' : (char)*p;
	}
	out[n++] = '/';
	for (p = leaf; *p; p++) {
		if (n + 1 >= BOOT_MODULE_NAME_MAX || *p > 0x7e)
			return -1;
		out[n++] = (char)*p;
	}
	out[n] = 0;
	return 0;
}

static void add_module(struct loader *ld, EFI_FILE_HANDLE dir,
		       const CHAR16 *dirpath, EFI_FILE_INFO *fi)
{
	struct boot_module *m;
	EFI_FILE_HANDLE fh;

	if (ld->bi->module_count >= BOOT_MAX_MODULES) {
		Print(L"tern-boot: warning: more than %d files, skipping %s\r\n",
		      BOOT_MAX_MODULES, fi->FileName);
		return;
	}
	m = &ld->bi->modules[ld->bi->module_count];
	if (module_name(m->name, dirpath, fi->FileName) < 0) {
		Print(L"tern-boot: warning: skipping %s (name)\r\n", fi->FileName);
		return;
	}
	if (EFI_ERROR(uefi_call_wrapper(dir->Open, 5, dir, &fh, fi->FileName,
					EFI_FILE_MODE_READ, 0)))
		return;
	if (EFI_ERROR(read_file(fh, &m->phys, &m->size)))
		Print(L"tern-boot: warning: cannot read %s\r\n", fi->FileName);
	else
		ld->bi->module_count++;
	uefi_call_wrapper(fh->Close, 1, fh);
}

static void load_dir(struct loader *ld, EFI_FILE_HANDLE dir,
		     const CHAR16 *path, int depth);

static void visit_entry(struct loader *ld, EFI_FILE_HANDLE dir,
			const CHAR16 *path, EFI_FILE_INFO *fi, int depth)
{
	CHAR16 sub[256];
	EFI_FILE_HANDLE child;

	if (fi->FileName[0] == L'.')
		return;
	if (!(fi->Attribute & EFI_FILE_DIRECTORY)) {
		add_module(ld, dir, path, fi);
		return;
	}
	if (depth >= DIR_DEPTH_MAX || StrLen(path) + StrLen(fi->FileName) + 2 > 255)
		return;
	StrCpy(sub, path);
	StrCat(sub, L"\\");
	StrCat(sub, fi->FileName);
	if (EFI_ERROR(uefi_call_wrapper(dir->Open, 5, dir, &child, fi->FileName,
					EFI_FILE_MODE_READ, 0)))
		return;
	load_dir(ld, child, sub, depth + 1);
	uefi_call_wrapper(child->Close, 1, child);
}

/* Every file under \tern\ becomes a module (guest images, later disks' keys). */
static void load_dir(struct loader *ld, EFI_FILE_HANDLE dir,
		     const CHAR16 *path, int depth)
{
	UINT8 buf[SIZE_OF_EFI_FILE_INFO + 512] __attribute__((aligned(8)));

	for (;;) {
		UINTN len = sizeof(buf);

		if (EFI_ERROR(uefi_call_wrapper(dir->Read, 3, dir, &len, buf)) || !len)
			return;
		visit_entry(ld, dir, path, (EFI_FILE_INFO *)buf, depth);
	}
}

static void load_modules(struct loader *ld)
{
	EFI_FILE_HANDLE dir;

	if (EFI_ERROR(open_path(ld, L"\\tern", &dir)))
		return;
	load_dir(ld, dir, L"\\tern", 0);
	uefi_call_wrapper(dir->Close, 1, dir);
	Print(L"tern-boot: %d files loaded from \\tern\\\r\n", ld->bi->module_count);
}

static UINT64 find_rsdp(void)
{
	EFI_GUID acpi20 = ACPI_20_TABLE_GUID, acpi10 = ACPI_TABLE_GUID;
	UINTN i;

	for (i = 0; i < ST->NumberOfTableEntries; i++)
		if (!CompareGuid(&ST->ConfigurationTable[i].VendorGuid, &acpi20))
			return (UINT64)(UINTN)ST->ConfigurationTable[i].VendorTable;
	for (i = 0; i < ST->NumberOfTableEntries; i++)
		if (!CompareGuid(&ST->ConfigurationTable[i].VendorGuid, &acpi10))
			return (UINT64)(UINTN)ST->ConfigurationTable[i].VendorTable;
	return 0;
}

/* EFI_MP_SERVICES_PROTOCOL (UEFI PI spec Vol. 2 13.4); gnu-efi lacks it. */
#define MP_SERVICES_GUID { 0x3fdda605, 0xa76e, 0x4f46, \
	{ 0xad, 0x29, 0x12, 0xf4, 0x53, 0x1b, 0x3d, 0x08 } }
#define MP_PROC_ENABLED	(1u << 1)

struct mp_proc_info {
	UINT64 processor_id;		/* the local APIC ID */
	UINT32 status;
	UINT32 package, core, thread;
	UINT8 extended[24];		/* PI 1.7 extended topology: unused */
};

struct mp_services {
	EFI_STATUS (EFIAPI *get_count)(struct mp_services *self, UINTN *n, UINTN *enabled);
	EFI_STATUS (EFIAPI *get_info)(struct mp_services *self, UINTN i, struct mp_proc_info *out);
};

/* Record the firmware's view of the CPUs: the kernel falls back to it when
 * the ACPI MADT is missing. */
static void find_cpus(struct boot_info *bi)
{
	EFI_GUID guid = MP_SERVICES_GUID;
	struct mp_services *mp;
	struct mp_proc_info info;
	UINTN n = 0, enabled = 0, i;

	if (EFI_ERROR(uefi_call_wrapper(BS->LocateProtocol, 3, &guid, NULL, (void **)&mp)) ||
	    EFI_ERROR(mp->get_count(mp, &n, &enabled)))
		return;
	for (i = 0; i < n && bi->cpu_count < BOOT_MAX_CPUS; i++) {
		if (EFI_ERROR(mp->get_info(mp, i, &info)) ||
		    !(info.status & MP_PROC_ENABLED))
			continue;
		bi->cpu_apic_ids[bi->cpu_count++] = (UINT32)info.processor_id;
	}
}

/* Days from 1970-01-01 to y-m-d, Gregorian (the March-based year puts the
 * leap day last: 153-day five-month cycles, 1461-day four-year cycles). */
static INT64 days_since_1970(INT64 y, UINTN m, UINTN d)
{
	INT64 era, yoe, doy;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (INT64)((m + 9) % 12) + 2) / 5 + (INT64)d - 1;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* The guests' RTCs start from this (UEFI 2.9 8.3.1 GetTime).  The time is
 * taken as UTC: firmware that keeps UTC reports TimeZone as
 * EFI_UNSPECIFIED_TIMEZONE, as OVMF does; a zone, if any, is ignored. */
static void read_wall_clock(struct boot_info *bi)
{
	EFI_TIME t;
	EFI_STATUS st = uefi_call_wrapper(RT->GetTime, 2, &t, NULL);

	if (EFI_ERROR(st) || t.Year < 1970 || t.Month < 1 || t.Month > 12 ||
	    t.Day < 1 || t.Day > 31 || t.Hour > 23 || t.Minute > 59 || t.Second > 59) {
		Print(L"tern-boot: warning: no firmware time (%r); guest clocks start in 1970\r\n", st);
		return;
	}
	bi->wall_tsc = boot_rdtsc();
	bi->wall_epoch_s = (UINT64)days_since_1970(t.Year, t.Month, t.Day) * 86400 +
			   t.Hour * 3600u + t.Minute * 60u + t.Second;
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	struct loader ld = { .image = image };
	EFI_LOADED_IMAGE *li;
	EFI_STATUS st;
	UINT64 tsc0 = boot_rdtsc();

	InitializeLib(image, systab);
	Print(L"tern-boot: Tern UEFI loader " TERN_VERSION_W L"\r\n");
	st = uefi_call_wrapper(BS->HandleProtocol, 3, image,
			       &LoadedImageProtocol, (void **)&li);
	if (EFI_ERROR(st) || !(ld.root = LibOpenRoot(li->DeviceHandle))) {
		boot_error(L"boot volume", "cannot open the volume this loader came from");
		return EFI_LOAD_ERROR;
	}
	if (EFI_ERROR(boot_alloc_pages(EFI_SIZE_TO_PAGES(sizeof(*ld.bi)),
				       0xffffffffull, &ld.bi_phys))) {
		boot_error(L"memory", "no memory for boot info");
		st = EFI_OUT_OF_RESOURCES;
		goto fail;
	}
	ld.bi = (struct boot_info *)(UINTN)ld.bi_phys;
	ZeroMem(ld.bi, sizeof(*ld.bi));
	ld.bi->magic = BOOT_INFO_MAGIC;
	ld.bi->version = BOOT_INFO_VERSION;
	ld.bi->size = sizeof(*ld.bi);
	ld.bi->loader_tsc = tsc0;
	st = load_config(&ld);
	if (!EFI_ERROR(st))
		st = load_kernel(&ld);
	if (EFI_ERROR(st))
		goto fail;
	load_modules(&ld);
	ld.bi->rsdp_phys = find_rsdp();
	ld.bi->efi_runtime_phys = (UINT64)(UINTN)ST->RuntimeServices;
	read_wall_clock(ld.bi);
	find_cpus(ld.bi);
	if (!ld.bi->rsdp_phys)
		Print(L"tern-boot: warning: firmware published no ACPI RSDP\r\n");
	st = boot_finish(&ld);
	if (EFI_ERROR(st))
		goto fail;
	__builtin_unreachable();
fail:
	uefi_call_wrapper(ld.root->Close, 1, ld.root);
	boot_free_all();
	return EFI_ERROR(st) ? st : EFI_LOAD_ERROR;
}
