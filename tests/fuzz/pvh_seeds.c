/*
 * Seeds for fuzz_pvh: small ELF64 images shaped like Debian's vmlinux
 * (text at 16 MiB, data with a .bss, a PT_NOTE with Xen notes and the
 * PHYS32_ENTRY one), behind fuzz_pvh's 8-byte prefix, with and without
 * an initrd.  Usage: pvh_seeds DIR.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernel/lib/byteorder.h"

#define S_SIZE	0x1c00u

static uint8_t s_buf[8 + S_SIZE];

static void s_phdr(uint8_t *img, int i, uint32_t type, uint64_t off, uint64_t paddr,
		   uint64_t filesz, uint64_t memsz)
{
	uint8_t *ph = img + 64 + i * 56;

	st_le32(ph, type);
	st_le32(ph + 4, type == 1 ? 7 : 4);
	st_le64(ph + 8, off);
	st_le64(ph + 16, 0xffffffff80000000ull + paddr);
	st_le64(ph + 24, paddr);
	st_le64(ph + 32, filesz);
	st_le64(ph + 40, memsz);
	st_le64(ph + 48, type == 1 ? 0x200000 : 4);
}

static uint32_t s_note(uint8_t *n, const char *name, uint32_t type, const void *desc,
		       uint32_t descsz)
{
	uint32_t namesz = (uint32_t)strlen(name) + 1;

	st_le32(n, namesz);
	st_le32(n + 4, descsz);
	st_le32(n + 8, type);
	memcpy(n + 12, name, namesz);
	memcpy(n + 12 + ((namesz + 3) & ~3u), desc, descsz);
	return 12 + ((namesz + 3) & ~3u) + ((descsz + 3) & ~3u);
}

static void s_build(uint32_t initrd, uint8_t ramsel)
{
	uint8_t *img = s_buf + 8;
	uint32_t entry = 0x01000850, len = 0;

	memset(s_buf, 0, sizeof(s_buf));
	s_buf[0] = ramsel;
	st_le32(s_buf + 1, initrd);
	st_le16(s_buf + 5, 13);
	memcpy(img, "\x7f" "ELF\x02\x01\x01", 7);
	st_le16(img + 16, 2);
	st_le16(img + 18, 62);
	st_le32(img + 20, 1);
	st_le64(img + 24, 0x1000000);
	st_le64(img + 32, 64);
	st_le16(img + 52, 64);
	st_le16(img + 54, 56);
	st_le16(img + 56, 3);
	len += s_note(img + 0x200 + len, "Xen", 6, "linux", 6);
	len += s_note(img + 0x200 + len, "Xen", 18, &entry, 4);
	s_phdr(img, 0, 1, 0x400, 0x1000000, 0x1000, 0x1000);
	s_phdr(img, 1, 1, 0x1400, 0x1200000, 0x800, 0x3000);
	s_phdr(img, 2, 4, 0x200, 0, len, len);
}

static int s_write(const char *dir, const char *name)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(s_buf, 1, sizeof(s_buf), f) != sizeof(s_buf)) {
		perror(path);
		return 1;
	}
	return fclose(f) != 0;
}

int main(int argc, char **argv)
{
	int bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	s_build(0, 2);
	bad |= s_write(argv[1], "vmlinux-no-initrd");
	s_build(0x150000, 2);
	bad |= s_write(argv[1], "vmlinux-initrd");
	s_build(0x400000, 1 | 8);
	bad |= s_write(argv[1], "vmlinux-small-ram");
	return bad;
}
