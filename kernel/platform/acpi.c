/*
 * ACPI glue: parse the firmware's tables once (lib/acpi_tables.c does the
 * bounds-checked work), then offer power-off, reboot and the PM timer.
 */
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/kernel.h"
#include "kernel/lib/acpi_tables.h"

#define PM1_SLP_EN	(1u << 13)	/* ACPI 6.4 4.8.3.2.1 */
#define PM1_SLP_TYP_SHIFT 10
#define ACPI_SPACE_MEM	0
#define ACPI_SPACE_IO	1

static struct acpi_info acpi;
static bool acpi_ok;

static const void *acpi_map(void *ctx, uint64_t phys, size_t len)
{
	(void)ctx;
	if (phys + len < phys || phys + len > boot_info->max_phys)
		return NULL;
	return phys_to_virt(phys);
}

void acpi_init(uint64_t rsdp_phys)
{
	const char *why = "no RSDP";

	if (rsdp_phys && acpi_parse(rsdp_phys, acpi_map, NULL, &acpi, &why) == 0) {
		acpi_ok = true;
		pr_info("acpi: rev %u, %d CPUs, %d IOAPICs, HPET %s, PM timer %s",
			acpi.revision, acpi.ncpus, acpi.nioapic,
			acpi.has_hpet ? "yes" : "no",
			acpi.pm_tmr_port ? "yes" : "no");
		return;
	}
	pr_warn("acpi: no usable ACPI tables (%s): no IOAPIC, HPET or S5; CPUs from UEFI MP services", why);
}

const struct acpi_info *acpi_get(void)
{
	return acpi_ok ? &acpi : NULL;
}

uint32_t acpi_pm_timer_read(void)
{
	if (!acpi_ok || !acpi.pm_tmr_port)
		return 0;
	return inl((uint16_t)acpi.pm_tmr_port);
}

/* UEFI runtime ResetSystem (UEFI 2.9 8.5.1), called through the identity
 * map: Tern never calls SetVirtualAddressMap, so physical mode is valid. */
enum { EFI_RESET_COLD = 0, EFI_RESET_SHUTDOWN = 2 };
typedef void (__attribute__((ms_abi)) *efi_reset_fn)(int type, uint64_t status,
						     uint64_t size, void *data);

static void efi_reset(int type)
{
	const uint8_t *rt;
	efi_reset_fn fn;

	if (!boot_info->efi_runtime_phys)
		return;
	rt = phys_to_virt(boot_info->efi_runtime_phys);
	/* EFI_TABLE_HEADER (24 bytes), then 10 function pointers: ResetSystem
	 * is the 11th entry. */
	memcpy(&fn, rt + 24 + 10 * 8, sizeof(fn));
	if (fn)
		fn(type, 0, 0, NULL);
}

/* S5 soft-off: write SLP_TYPx|SLP_EN to PM1a (and PM1b when present). */
int acpi_poweroff(void)
{
	if (!acpi_ok || !acpi.has_s5 || !acpi.pm1a_cnt) {
		pr_info("acpi: no \\_S5 or PM1 control block");
		return -1;
	}
	pr_info("acpi: entering S5 (power off)");
	irq_disable();
	outw((uint16_t)acpi.pm1a_cnt,
	     (uint16_t)((acpi.s5_slp_typa << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN));
	if (acpi.pm1b_cnt)
		outw((uint16_t)acpi.pm1b_cnt,
		     (uint16_t)((acpi.s5_slp_typb << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN));
	udelay(100000);
	return -1;	/* still here: the platform ignored us */
}

int system_poweroff(void)
{
	acpi_poweroff();
	pr_info("power: trying UEFI ResetSystem(shutdown)");
	efi_reset(EFI_RESET_SHUTDOWN);
	return -1;
}

static void reset_via_fadt(void)
{
	const struct acpi_gas *r = &acpi.reset_reg;

	if (!acpi_ok || !acpi.reset_supported)
		return;
	if (r->space == ACPI_SPACE_IO)
		outb((uint16_t)r->address, acpi.reset_value);
	else if (r->space == ACPI_SPACE_MEM)
		*(volatile uint8_t *)phys_to_virt(r->address) = acpi.reset_value;
	udelay(50000);
}

/* FADT reset register, then the PCI reset port 0xcf9, then the keyboard
 * controller, then a triple fault: the usual ladder real firmware needs. */
void acpi_reboot(void)
{
	static const uint8_t null_idt[10];

	pr_info("acpi: rebooting");
	irq_disable();
	reset_via_fadt();
	efi_reset(EFI_RESET_COLD);
	outb(0xcf9, 0x02);
	udelay(10);
	outb(0xcf9, 0x06);
	udelay(50000);
	outb(0x64, 0xfe);
	udelay(50000);
	__asm__ volatile("lidt %0; int3" : : "m"(null_idt));
	cpu_halt_forever();
}
