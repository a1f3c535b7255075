/*
 * Test helper for the migration stream: recompute the checksums of a
 * stream that a test or the fuzzer edited, so the edit reaches the checks
 * behind the CRCs.  It reads the wire format on its own (stream.h, with
 * kernel/lib/byteorder.h for the fields), with no help from the codec, and
 * never trusts a length: it stops at the first record that does not fit.
 * Shared by tests/unit/test_migstream.c and tests/fuzz/fuzz_migstream.c.
 */
#ifndef TERN_TESTS_MIG_RESEAL_H
#define TERN_TESTS_MIG_RESEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kernel/lib/byteorder.h"
#include "kernel/lib/crc32c.h"
#include "migrate/stream.h"

/* The page CRCs in the entries of the RAM record at h (bounded by end). */
static inline void mrs_fix_pages(uint8_t *h, const uint8_t *end)
{
	uint32_t meta = ld_le32(h + 4);
	uint8_t *data = h + MIG_REC_HDR_LEN + meta;
	uint32_t n;

	if (meta < 8)
		return;
	n = ld_le32(h + MIG_REC_HDR_LEN);
	if (n > (meta - 8) / 16)
		n = (meta - 8) / 16;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *e = h + MIG_REC_HDR_LEN + 8 + 16 * i;

		if (e[8] != MIG_PAGE_DATA)
			continue;
		if (end - data < MIG_PAGE_SIZE)
			return;
		st_le32(e + 12, crc32c(CRC32C_INIT, data, MIG_PAGE_SIZE));
		data += MIG_PAGE_SIZE;
	}
}

/*
 * Rewrite the header CRC and every record CRC (and, with fix_pages, the
 * page CRCs) of buf[0..len).  Returns the records resealed.
 */
static inline unsigned mig_reseal(uint8_t *buf, size_t len, bool fix_pages)
{
	uint64_t off = MIG_HDR_LEN;
	unsigned n = 0;
	uint32_t chain;

	if (len < MIG_HDR_LEN)
		return 0;
	chain = crc32c(CRC32C_INIT, buf, 12);
	st_le32(buf + 12, chain);
	while (len - off >= MIG_REC_HDR_LEN) {
		uint8_t *h = buf + off;
		uint64_t meta = ld_le32(h + 4), data = ld_le32(h + 8);

		if (meta > len - off - MIG_REC_HDR_LEN)
			break;
		if (fix_pages && (h[0] | h[1] << 8) == MIG_REC_RAM)
			mrs_fix_pages(h, buf + len);
		chain = crc32c(crc32c(chain, h, 12), h + MIG_REC_HDR_LEN, meta);
		st_le32(h + 12, chain);
		n++;
		off += MIG_REC_HDR_LEN + meta + data;
		if (off > len)
			break;
	}
	return n;
}

#endif
