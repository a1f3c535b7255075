/*
 * The ACPI fixed hardware a guest's FADT announces (kernel/lib/acpi_build.h):
 * the PM1a event block (PM1_STS, PM1_EN) and control block (PM1_CNT),
 * which acpi_build places back to back, and the reset register RST_CNT
 * (I/O 0xcf9).  Pure: the glue (kernel/devices/pc.c) acts on the returned
 * action and drives the SCI line from acpi_pm_sci().
 */
#ifndef TERN_DEVICES_MODEL_ACPI_PM_H
#define TERN_DEVICES_MODEL_ACPI_PM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Offsets in the 6-byte window: PM1_STS 0, PM1_EN 2, PM1_CNT 4. */
#define ACPI_PM_WINDOW		6

/* PM1_STS / PM1_EN bits (ACPI 6.5 tables 4.16, 4.17). */
#define ACPI_PM1_TMR		(1u << 0)
#define ACPI_PM1_GBL		(1u << 5)
#define ACPI_PM1_PWRBTN		(1u << 8)
#define ACPI_PM1_SLPBTN		(1u << 9)
#define ACPI_PM1_RTC		(1u << 10)
#define ACPI_PM1_WAK_STS	(1u << 15)

/* PM1_CNT bits (ACPI 6.5 table 4.18). */
#define ACPI_PM1_SCI_EN		(1u << 0)
#define ACPI_PM1_BM_RLD		(1u << 1)
#define ACPI_PM1_GBL_RLS	(1u << 2)
#define ACPI_PM1_SLP_TYP_SHIFT	10
#define ACPI_PM1_SLP_EN		(1u << 13)

/* RST_CNT bits (Intel ICH9 datasheet 13.7.5, "Reset Control Register"). */
#define ACPI_RST_SYS		0x02	/* 1: hard reset, 0: soft */
#define ACPI_RST_CPU		0x04	/* writing 1 starts the reset */
#define ACPI_RST_FULL		0x08

enum acpi_pm_action {
	ACPI_PM_NONE,
	ACPI_PM_POWEROFF,	/* SLP_EN with SLP_TYP = the S5 type */
	ACPI_PM_SLEEP,		/* SLP_EN with another type: not supported */
	ACPI_PM_RESET,
};

struct acpi_pm {
	uint16_t sts, en, cnt;
	uint8_t rst;		/* RST_CNT as latched (SYS_RST, FULL_RST) */
	uint8_t s5_typ;		/* the SLP_TYP the DSDT's \_S5 names */
	uint8_t slp_typ;	/* the type of the last SLP_EN write */
};

#define ACPI_PM_STATE_V		1
#define ACPI_PM_STATE_LEN	8

void acpi_pm_reset(struct acpi_pm *p, uint8_t s5_typ);

/* The ACPI PM timer (ACPI 6.5 4.8.3.3): 3.579545 MHz, 32 bits wide
 * (TMR_VAL_EXT), its value at now_ns of guest time. */
#define ACPI_PM_TIMER_HZ	3579545u
uint32_t acpi_pm_timer(uint64_t now_ns);
/* size 1, 2 or 4 bytes at off; bytes past the window read as 0xff. */
uint32_t acpi_pm_read(const struct acpi_pm *p, unsigned off, int size);
enum acpi_pm_action acpi_pm_write(struct acpi_pm *p, unsigned off, int size, uint32_t val);
uint8_t acpi_pm_rst_read(const struct acpi_pm *p);
enum acpi_pm_action acpi_pm_rst_write(struct acpi_pm *p, uint8_t val);
/* A fixed event (ACPI_PM1_PWRBTN ...) sets its status bit. */
void acpi_pm_event(struct acpi_pm *p, uint16_t sts);
/* The SCI line: an enabled status bit is set. */
bool acpi_pm_sci(const struct acpi_pm *p);

void acpi_pm_save(const struct acpi_pm *p, uint8_t *b);
int acpi_pm_load(struct acpi_pm *p, const uint8_t *b, size_t len);

#endif
