/*
 * libFuzzer target for the PVH planner (make fuzz-pvh).
 *
 * Input: an 8-byte prefix, then the ELF image.
 *	byte 0		bits 1:0 pick the guest RAM size, bit 3 forces a valid
 *			ELF64 x86-64 ident, type, machine and program header
 *			entry size so that mutations reach the checks behind
 *	bytes 1-4	initrd size (little-endian; 0 = none)
 *	bytes 5-6	command line length
 *	byte 7		unused
 * The image is copied to a heap block of exactly its size, so ASan sees
 * any read past its end.  On every accepted input the plan's invariants
 * are checked independently of the planner: segments inside the file and
 * inside RAM between 1 MiB and 4 GiB, disjoint; the entry inside a
 * segment's file bytes; the initrd in RAM, page aligned, clear of the
 * kernel; and a start info page that says the same.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "kernel/lib/pvh.h"

#define FZ_PREFIX	8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_cmdline[4096];
static uint8_t fz_page[PVH_INFO_SIZE];

static void fz_check(bool cond)
{
	if (!cond)
		__builtin_trap();
}

static bool fz_in_one_ram(const struct bzi_request *req, uint64_t a, uint64_t len)
{
	if (len == 0 || a + len > BZI_4G)
		return false;
	for (int i = 0; i < req->nmap; i++)
		if (req->map[i].type == BZI_E820_RAM && a >= req->map[i].addr &&
		    a + len <= req->map[i].addr + req->map[i].size)
			return true;
	return false;
}

static void fz_check_plan(const struct pvh_plan *p, const struct bzi_request *req, size_t size)
{
	bool entry_in = false;

	fz_check(p->nseg >= 1 && p->nseg <= PVH_MAX_SEGS);
	for (int i = 0; i < p->nseg; i++) {
		const struct pvh_seg *s = &p->seg[i];

		fz_check(s->src_off <= size && s->filesz <= size - s->src_off);
		fz_check(s->filesz <= s->memsz && s->gpa >= 0x100000);
		fz_check(fz_in_one_ram(req, s->gpa, s->memsz));
		fz_check(s->gpa >= p->kernel_lo && s->gpa + s->memsz <= p->kernel_hi);
		if (p->entry >= s->gpa && p->entry < s->gpa + s->filesz)
			entry_in = true;
		for (int j = 0; j < i; j++)
			fz_check(s->gpa + s->memsz <= p->seg[j].gpa ||
				 p->seg[j].gpa + p->seg[j].memsz <= s->gpa);
	}
	fz_check(entry_in);
	fz_check(fz_in_one_ram(req, p->info_gpa, PVH_INFO_SIZE));
	fz_check(fz_in_one_ram(req, p->cmdline_gpa, p->cmdline_len));
	fz_check(p->initrd_size == req->initrd_size);
	if (p->initrd_size) {
		fz_check(fz_in_one_ram(req, p->initrd_gpa, p->initrd_size));
		fz_check((p->initrd_gpa & 0xfff) == 0 && p->initrd_gpa >= 0x100000);
		fz_check(p->initrd_gpa + p->initrd_size <= p->kernel_lo ||
			 p->initrd_gpa >= p->kernel_hi);
	}
	fz_check(pvh_build_start_info(fz_page, p, req, NULL) == 0);
	fz_check(ld_le32(fz_page) == PVH_START_MAGIC);
	fz_check(ld_le32(fz_page + 12) == (p->initrd_size ? 1u : 0u));
	fz_check(ld_le32(fz_page + 48) == (uint32_t)req->nmap);
}

static void fz_force_header(uint8_t *img, size_t size)
{
	if (size < 64)
		return;
	memcpy(img, "\x7f" "ELF\x02\x01\x01", 7);
	st_le16(img + 16, 2);		/* ET_EXEC */
	st_le16(img + 18, 62);		/* EM_X86_64 */
	st_le16(img + 54, 56);		/* e_phentsize */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t rams[] = { 2ull << 20, 64ull << 20, 256ull << 20, 0xfec00000ull };
	struct bzi_e820 map[8];
	struct bzi_request req = { .map = map };
	static struct pvh_plan plan;
	uint8_t *img;
	uint16_t clen;
	int rc;

	if (size < FZ_PREFIX)
		return 0;
	req.nmap = bzi_default_e820(rams[data[0] & 3], map, 8);
	req.initrd_size = ld_le32(data + 1);
	clen = (uint16_t)(ld_le16(data + 5) % sizeof(fz_cmdline));
	memset(fz_cmdline, 'x', clen);
	fz_cmdline[clen] = 0;
	req.cmdline = fz_cmdline;
	req.acpi_rsdp = 0xe0000;
	size -= FZ_PREFIX;
	img = malloc(size ? size : 1);
	if (!img)
		return 0;
	memcpy(img, data + FZ_PREFIX, size);
	if (data[0] & 8)
		fz_force_header(img, size);
	rc = pvh_plan(img, size, &req, &plan, NULL);
	if (rc == 0)
		fz_check_plan(&plan, &req, size);
	else
		fz_check(plan.nseg == 0 && plan.entry == 0);
	free(img);
	return 0;
}
