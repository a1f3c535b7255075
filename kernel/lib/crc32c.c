/*
 * CRC32C, reflected polynomial 0x82f63b78, initial value and final XOR
 * 0xffffffff (RFC 3720 appendix B.4).  Slicing-by-8: eight 256-entry
 * tables built on first use, eight bytes a step; about 1 cycle a byte.
 */
#include <stdbool.h>
#include <string.h>
#include "kernel/lib/byteorder.h"
#include "kernel/lib/crc32c.h"

#define CRC32C_POLY	0x82f63b78u

static uint32_t crc32c_tab[8][256];
static bool crc32c_ready;

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc32c_tab[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc32c_tab[t][i] = (crc32c_tab[t - 1][i] >> 8) ^
					   crc32c_tab[0][crc32c_tab[t - 1][i] & 0xff];
	/* Building twice from two CPUs gives the same tables: no lock. */
	__atomic_store_n(&crc32c_ready, true, __ATOMIC_RELEASE);
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (!__atomic_load_n(&crc32c_ready, __ATOMIC_ACQUIRE))
		crc32c_init();
	crc = ~crc;
	while (len >= 8) {
		uint64_t w = ld_le64(p) ^ crc;	/* slicing-by-8 reads LE words */

		crc = crc32c_tab[7][w & 0xff] ^ crc32c_tab[6][(w >> 8) & 0xff] ^
		      crc32c_tab[5][(w >> 16) & 0xff] ^ crc32c_tab[4][(w >> 24) & 0xff] ^
		      crc32c_tab[3][(w >> 32) & 0xff] ^ crc32c_tab[2][(w >> 40) & 0xff] ^
		      crc32c_tab[1][(w >> 48) & 0xff] ^ crc32c_tab[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc32c_tab[0][(crc ^ *p++) & 0xff];
	return ~crc;
}
