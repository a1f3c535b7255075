/*
 * ACPI PM1 fixed registers and the 0xcf9 reset register.  References:
 * ACPI 6.5 section 4.8.3.1 (PM1 event grouping: status bits are cleared
 * by writing 1, section 4.8.3.1.1) and 4.8.3.2.1 (PM1 control: SLP_EN and
 * GBL_RLS are write-only and read 0; SCI_EN is set by hardware when the
 * FADT has no SMI_CMD, i.e. the platform is always in ACPI mode); Intel
 * ICH9 datasheet 13.7.5 for RST_CNT.
 */
#include <errno.h>
#include <string.h>
#include "kernel/devices/model/acpi_pm.h"
#include "kernel/lib/byteorder.h"

#define ACPI_PM1_STS_BITS	(ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | \
				 ACPI_PM1_SLPBTN | ACPI_PM1_RTC | ACPI_PM1_WAK_STS)
#define ACPI_PM1_EN_BITS	(ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | \
				 ACPI_PM1_SLPBTN | ACPI_PM1_RTC)
/* What PM1_CNT keeps: SCI_EN, BM_RLD, SLP_TYP. */
#define ACPI_PM1_CNT_KEEP	(ACPI_PM1_SCI_EN | ACPI_PM1_BM_RLD | \
				 (7u << ACPI_PM1_SLP_TYP_SHIFT))

/* Split so the product never overflows: whole seconds, then the rest. */
uint32_t acpi_pm_timer(uint64_t now_ns)
{
	uint64_t s = now_ns / 1000000000u, r = now_ns % 1000000000u;

	return (uint32_t)(s * ACPI_PM_TIMER_HZ + r * ACPI_PM_TIMER_HZ / 1000000000u);
}

void acpi_pm_reset(struct acpi_pm *p, uint8_t s5_typ)
{
	memset(p, 0, sizeof(*p));
	p->cnt = ACPI_PM1_SCI_EN;
	p->s5_typ = s5_typ & 7;
}

static uint8_t acpi_pm_byte(const struct acpi_pm *p, unsigned off)
{
	switch (off) {
	case 0: return (uint8_t)p->sts;
	case 1: return (uint8_t)(p->sts >> 8);
	case 2: return (uint8_t)p->en;
	case 3: return (uint8_t)(p->en >> 8);
	case 4: return (uint8_t)p->cnt;
	case 5: return (uint8_t)(p->cnt >> 8);
	default: return 0xff;
	}
}

uint32_t acpi_pm_read(const struct acpi_pm *p, unsigned off, int size)
{
	uint32_t v = 0;

	for (int i = 0; i < size && i < 4; i++)
		v |= (uint32_t)acpi_pm_byte(p, off + (unsigned)i) << (8 * i);
	return v;
}

/* The 16-bit value and byte mask an access writes into the register at
 * reg (0, 2 or 4). */
static uint16_t acpi_pm_lane(unsigned off, int size, uint32_t val, unsigned reg,
			     uint16_t *mask)
{
	uint16_t v = 0;

	*mask = 0;
	for (int i = 0; i < size && i < 4; i++) {
		unsigned b = off + (unsigned)i;

		if (b == reg || b == reg + 1) {
			v |= (uint16_t)(((val >> (8 * i)) & 0xff) << (8 * (b - reg)));
			*mask |= (uint16_t)(0xff << (8 * (b - reg)));
		}
	}
	return v;
}

static enum acpi_pm_action acpi_pm_write_cnt(struct acpi_pm *p, uint16_t v, uint16_t m)
{
	uint16_t n = (uint16_t)((p->cnt & ~m) | (v & m));

	p->cnt = (uint16_t)((n & ACPI_PM1_CNT_KEEP) | ACPI_PM1_SCI_EN);
	if (!(m & 0xff00) || !(v & ACPI_PM1_SLP_EN))
		return ACPI_PM_NONE;
	p->slp_typ = (uint8_t)((n >> ACPI_PM1_SLP_TYP_SHIFT) & 7);
	return p->slp_typ == p->s5_typ ? ACPI_PM_POWEROFF : ACPI_PM_SLEEP;
}

enum acpi_pm_action acpi_pm_write(struct acpi_pm *p, unsigned off, int size, uint32_t val)
{
	uint16_t v, m;

	v = acpi_pm_lane(off, size, val, 0, &m);
	p->sts &= (uint16_t)~(v & m);
	v = acpi_pm_lane(off, size, val, 2, &m);
	p->en = (uint16_t)(((p->en & ~m) | (v & m)) & ACPI_PM1_EN_BITS);
	v = acpi_pm_lane(off, size, val, 4, &m);
	return m ? acpi_pm_write_cnt(p, v, m) : ACPI_PM_NONE;
}

uint8_t acpi_pm_rst_read(const struct acpi_pm *p)
{
	return p->rst;
}

/* Setting RST_CPU starts the reset SYS_RST selects (hard or soft: the
 * same to a VM); other writes latch SYS_RST and FULL_RST for the next
 * one, which is how Linux's reboot=pci writes 0x02 then 0x06. */
enum acpi_pm_action acpi_pm_rst_write(struct acpi_pm *p, uint8_t val)
{
	p->rst = val & (ACPI_RST_SYS | ACPI_RST_FULL);
	return (val & ACPI_RST_CPU) ? ACPI_PM_RESET : ACPI_PM_NONE;
}

void acpi_pm_event(struct acpi_pm *p, uint16_t sts)
{
	p->sts |= sts & ACPI_PM1_STS_BITS;
}

bool acpi_pm_sci(const struct acpi_pm *p)
{
	return (p->cnt & ACPI_PM1_SCI_EN) && (p->sts & p->en & ACPI_PM1_EN_BITS);
}

/* v1: version, sts, en, cnt (LE16 each), rst. */
void acpi_pm_save(const struct acpi_pm *p, uint8_t *b)
{
	b[0] = ACPI_PM_STATE_V;
	st_le16(b + 1, p->sts);
	st_le16(b + 3, p->en);
	st_le16(b + 5, p->cnt);
	b[7] = p->rst;
}

int acpi_pm_load(struct acpi_pm *p, const uint8_t *b, size_t len)
{
	uint16_t sts, en, cnt;

	if (len != ACPI_PM_STATE_LEN || b[0] != ACPI_PM_STATE_V)
		return -EINVAL;
	sts = ld_le16(b + 1), en = ld_le16(b + 3), cnt = ld_le16(b + 5);
	if ((sts & ~ACPI_PM1_STS_BITS) || (en & ~ACPI_PM1_EN_BITS) ||
	    (cnt & ~ACPI_PM1_CNT_KEEP) || !(cnt & ACPI_PM1_SCI_EN) ||
	    (b[7] & ~(ACPI_RST_SYS | ACPI_RST_FULL)))
		return -EINVAL;
	p->sts = sts, p->en = en, p->cnt = cnt, p->rst = b[7];
	return 0;
}
