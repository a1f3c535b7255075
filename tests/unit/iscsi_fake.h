/*
 * Shared by the iSCSI session tests, the fuzz harness and its seed
 * generator: a stand-in MD5 (CHAP needs only a deterministic 16-byte
 * function to test the exchange; the real one is mbedTLS's) and a blank
 * response BHS from the target.
 */
#ifndef TERN_TESTS_ISCSI_FAKE_H
#define TERN_TESTS_ISCSI_FAKE_H

#include <stdint.h>
#include <string.h>

#include "storage/lib/iscsi_chap.h"
#include "storage/lib/iscsi_pdu.h"

static inline int iscsi_fake_md5(const struct iscsi_chunk *parts, unsigned n,
				 uint8_t d[ISCSI_MD5_LEN])
{
	uint64_t a = 1469598103934665603ull, b = 7;

	for (unsigned i = 0; i < n; i++)
		for (size_t k = 0; k < parts[i].n; k++) {
			a = (a ^ ((const uint8_t *)parts[i].p)[k]) * 1099511628211ull;
			b = b * 31 + (a >> 17);
		}
	memcpy(d, &a, 8);
	memcpy(d + 8, &b, 8);
	return 0;
}

/* A target PDU with F set, the ITT given and no TTT. */
static inline struct iscsi_bhs iscsi_fake_rsp(uint8_t op, uint32_t itt)
{
	struct iscsi_bhs h;

	memset(&h, 0, sizeof(h));
	h.opcode = op;
	h.flags = ISCSI_F_FINAL;
	h.itt = itt;
	h.ttt = ISCSI_RSVD_TAG;
	return h;
}

#endif
