/*
 * CRC32C (Castagnoli, RFC 3720 section 12.1 and appendix B.4): iSCSI
 * header and data digests, and the migration stream's page checksums.
 * Pure: a table-driven software CRC, the same in the kernel and the host
 * tests.
 */
#ifndef TERN_LIB_CRC32C_H
#define TERN_LIB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#define CRC32C_INIT	0u

/*
 * Continue crc (CRC32C_INIT to start) over buf[0..len).  The value is
 * final after each call: crc32c(crc32c(0, a), b) == crc32c(0, a || b).
 * crc32c(0, "123456789") == 0xe3069283.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
