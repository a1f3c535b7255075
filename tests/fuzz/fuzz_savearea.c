/*
 * libFuzzer target for the save area's header codec (make fuzz-savearea):
 * migrate/savearea.c reads a block any host with the LUN may have written.
 *
 * Input: up to SAVEAREA_HDR_USED bytes of header block (the rest zero).
 * When bit 0 of the first byte is set, the magic and version are put in
 * and the CRC is sealed over what the input gives, so the fuzzer reaches
 * the field checks instead of dying at the CRC.  Checked: decode never
 * reads or writes outside its buffers (ASan), refuses with one of the
 * documented errors and a reason, and whatever it accepts encodes back to
 * the very same 256 bytes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/crc32c.h"
#include "migrate/savearea.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_check(bool cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t blk[SAVEAREA_HDR_LEN], again[SAVEAREA_HDR_LEN];
	struct savearea_hdr h;
	char why[160];
	int rc;

	memset(blk, 0, sizeof(blk));
	memcpy(blk, data, size < SAVEAREA_HDR_USED ? size : SAVEAREA_HDR_USED);
	if (size && (data[0] & 1)) {
		uint32_t c;

		memcpy(blk, SAVEAREA_MAGIC, 8);
		blk[8] = SAVEAREA_VERSION;
		blk[9] = 0;
		c = crc32c(CRC32C_INIT, blk, 252);
		for (int i = 0; i < 4; i++)
			blk[252 + i] = (uint8_t)(c >> (8 * i));
	}
	why[0] = '\0';
	rc = savearea_decode(blk, sizeof(blk), &h, why, sizeof(why));
	if (rc < 0) {
		fz_check(rc == -ENOENT || rc == -EPROTONOSUPPORT || rc == -EIO ||
			 rc == -EBADMSG);
		fz_check(why[0] != '\0');
		return 0;
	}
	fz_check(savearea_encode(&h, again) == 0);
	fz_check(!memcmp(again, blk, SAVEAREA_HDR_USED));
	return 0;
}
