/* Bit helpers shared by the pure modules (bitmaps, page tables). */
#ifndef TERN_LIB_BITOPS_H
#define TERN_LIB_BITOPS_H

#include <stdint.h>

/*
 * Population count without __builtin_popcountll: without -mpopcnt GCC turns
 * that into a call to libgcc's __popcountdi2, which the freestanding builds
 * (kernel and loader) do not link.
 */
static inline unsigned bit_popcount64(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

#endif
