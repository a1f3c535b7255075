/*
 * hello: the smallest useful guest.  Prints the boot information and
 * checks that the memory map offers RAM at 1 MiB covering this image.
 * With spin=N on its command line it first spins N million PAUSEs without
 * an exit, so tests can have guests stop while the console is in use.
 */
#include "guest.h"

#define ONE_MIB		0x100000u

extern char __image_start[], __image_end[];

void guest_main(uint32_t magic, const struct mb_info *info)
{
	uint32_t image_len = (uint32_t)(__image_end - __image_start);
	const struct mb_info *bi;
	uint64_t spin = 0;

	guest_init("hello", magic, info);
	guest_puts("Hello from a Tern test guest\n");
	bi = guest_boot_info();
	guest_cmdline_u64(guest_cmdline(bi), "spin", &spin);
	for (uint64_t i = 0; i < spin * 1000000; i++)
		__asm__ volatile("pause");
	guest_check("mem_info", bi && (bi->flags & MB_INFO_MEM) &&
		    bi->mem_upper * 1024ull >= image_len,
		    "flags=0x%x mem_upper=%u", bi ? bi->flags : 0,
		    bi ? bi->mem_upper : 0);
	guest_check("mmap_covers_image",
		    guest_mmap_covers(bi, ONE_MIB, image_len),
		    "no available entry covers 0x%x-0x%x", ONE_MIB,
		    ONE_MIB + image_len);
	guest_done();
}
