/*
 * Explicit-endian loads and stores of wire and table fields.
 *
 *	ld_le16 ld_le32 ld_le64		ACPI tables, PCI config space, virtio,
 *	st_le16 st_le32 st_le64		the migration stream, CRC32C digests
 *	ld_le_n st_le_n			1 to 8 bytes, the width a variable
 *	ld_be16 ld_be24 ld_be32 ld_be64	network headers, iSCSI, SCSI
 *	st_be16 st_be24 st_be32 st_be64	(RFC 1700 "network byte order")
 *
 * The name says the byte order of the field in memory; the value is
 * always the host's.  The pointer may have any alignment and any type:
 * the fixed widths go through memcpy, which C11 defines for unaligned and
 * type-punned bytes where a cast like *(uint32_t *)p is undefined (and
 * traps under UBSan), and which compilers turn into one mov (plus one
 * bswap for the foreign order).  24-bit fields (iSCSI DataSegmentLength,
 * SCSI transfer lengths) and the n-byte forms have no integer type to
 * copy into, so they go a byte at a time.
 *
 * Pure and header-only: the kernel, the unit tests and the fuzzers share it.
 */
#ifndef TERN_LIB_BYTEORDER_H
#define TERN_LIB_BYTEORDER_H

#include <stdint.h>

#if !defined(__BYTE_ORDER__) || (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__ && \
				 __BYTE_ORDER__ != __ORDER_BIG_ENDIAN__)
#error "byteorder.h: unknown host byte order"
#endif

/*
 * The raw accesses, host order.  __builtin_memcpy, not memcpy: the kernel
 * builds with -ffreestanding, where a plain memcpy stays a call; the
 * builtin with a constant size is always expanded inline.
 */
static inline uint16_t bo_ld16(const void *p)
{
	uint16_t v;

	__builtin_memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t bo_ld32(const void *p)
{
	uint32_t v;

	__builtin_memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t bo_ld64(const void *p)
{
	uint64_t v;

	__builtin_memcpy(&v, p, sizeof(v));
	return v;
}

static inline void bo_st16(void *p, uint16_t v)
{
	__builtin_memcpy(p, &v, sizeof(v));
}

static inline void bo_st32(void *p, uint32_t v)
{
	__builtin_memcpy(p, &v, sizeof(v));
}

static inline void bo_st64(void *p, uint64_t v)
{
	__builtin_memcpy(p, &v, sizeof(v));
}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define BO_LE16(x)	(x)
#define BO_LE32(x)	(x)
#define BO_LE64(x)	(x)
#define BO_BE16(x)	__builtin_bswap16(x)
#define BO_BE32(x)	__builtin_bswap32(x)
#define BO_BE64(x)	__builtin_bswap64(x)
#else
#define BO_LE16(x)	__builtin_bswap16(x)
#define BO_LE32(x)	__builtin_bswap32(x)
#define BO_LE64(x)	__builtin_bswap64(x)
#define BO_BE16(x)	(x)
#define BO_BE32(x)	(x)
#define BO_BE64(x)	(x)
#endif

/* ---- little-endian ---- */

static inline uint16_t ld_le16(const void *p)
{
	return BO_LE16(bo_ld16(p));
}

static inline uint32_t ld_le32(const void *p)
{
	return BO_LE32(bo_ld32(p));
}

static inline uint64_t ld_le64(const void *p)
{
	return BO_LE64(bo_ld64(p));
}

static inline void st_le16(void *p, uint16_t v)
{
	bo_st16(p, BO_LE16(v));
}

static inline void st_le32(void *p, uint32_t v)
{
	bo_st32(p, BO_LE32(v));
}

static inline void st_le64(void *p, uint64_t v)
{
	bo_st64(p, BO_LE64(v));
}

/* ---- big-endian ---- */

static inline uint16_t ld_be16(const void *p)
{
	return BO_BE16(bo_ld16(p));
}

static inline uint32_t ld_be32(const void *p)
{
	return BO_BE32(bo_ld32(p));
}

static inline uint64_t ld_be64(const void *p)
{
	return BO_BE64(bo_ld64(p));
}

static inline void st_be16(void *p, uint16_t v)
{
	bo_st16(p, BO_BE16(v));
}

static inline void st_be32(void *p, uint32_t v)
{
	bo_st32(p, BO_BE32(v));
}

static inline void st_be64(void *p, uint64_t v)
{
	bo_st64(p, BO_BE64(v));
}

/*
 * n bytes (1 to 8), least significant first: a field whose width is data,
 * such as an AML integer or a guest's 1-, 2- or 4-byte access to a register
 * window.  st_le_n drops the bits of v above 8 * n.
 */
static inline uint64_t ld_le_n(const void *p, unsigned int n)
{
	const uint8_t *b = p;
	uint64_t v = 0;

	for (unsigned int i = 0; i < n && i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static inline void st_le_n(void *p, uint64_t v, unsigned int n)
{
	uint8_t *b = p;

	for (unsigned int i = 0; i < n && i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

/* Three bytes, most significant first; st_be24 drops bits 24..31 of v. */
static inline uint32_t ld_be24(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2];
}

static inline void st_be24(void *p, uint32_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)(v >> 16);
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)v;
}

#undef BO_LE16
#undef BO_LE32
#undef BO_LE64
#undef BO_BE16
#undef BO_BE32
#undef BO_BE64

#endif
