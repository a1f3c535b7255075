/*
 * The iSCSI fuzz harness (fuzz_iscsi.c) as the seed generator
 * (iscsi_seeds.c) drives it: the seeds are recorded by playing a target
 * against the very harness the fuzzer runs, so they follow every detail
 * of its set-up (tasks, tags, clock) without copying it.
 *
 * An input is FZI_HDR mode bytes, then the bytes a target sends:
 *	m[0]	FZI_* session options
 *	m[1]	FZI_T_* tasks and owner actions
 *	m[2]	chunking: 0 feeds the stream whole, else seeds the chunk sizes
 *	m[3]	FZI_C_* clock, retries, limits
 *	m[4]	the m[4]-th send fails (0: none)
 */
#ifndef TERN_TESTS_FUZZ_ISCSI_H
#define TERN_TESTS_FUZZ_ISCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/lib/iscsi_session.h"

#define FZI_HDR		5

/* m[0] */
#define FZI_CHAP	0x01	/* AuthMethod=CHAP */
#define FZI_MUTUAL	0x02	/* mutual CHAP (with FZI_CHAP) */
#define FZI_DISCOVERY	0x04	/* discovery session: SendTargets, no tasks */
#define FZI_HDIGEST	0x08	/* offer HeaderDigest=CRC32C */
#define FZI_DDIGEST	0x10	/* offer DataDigest=CRC32C */
#define FZI_NO_R2T	0x20	/* offer InitialR2T=No */
#define FZI_NO_IMM	0x40	/* offer ImmediateData=No */
#define FZI_MD5_CONST	0x80	/* an MD5 stub with a constant digest */

/* m[1] */
#define FZI_T_READ	0x01	/* READ(10), 4 KiB */
#define FZI_T_WRITE	0x02	/* WRITE(10), 12 KiB */
#define FZI_T_TUR	0x04	/* TEST UNIT READY, no data */
#define FZI_T_HOLD	0x08	/* held session, a ctl READ CAPACITY(16) per login */
#define FZI_T_BIGWRITE	0x10	/* WRITE(16), 80 KiB: several R2Ts */
#define FZI_T_RESUBMIT	0x20	/* submit each task again once, from done() */
#define FZI_T_LOGOUT	0x40	/* log out when idle */
#define FZI_T_PROBES	0x80	/* INQUIRY, VPD 0x83, REPORT LUNS, PR IN, SYNC */

/* m[3] */
#define FZI_C_STEP	0x07	/* index into the per-PDU clock steps */
#define FZI_C_PING	0x08	/* NOP-Out pings after 3 s idle */
#define FZI_C_RETRY(m)	(((m) >> 4) & 3)	/* cfg.max_retries */
#define FZI_C_SMALL	0x40	/* MaxRecvDataSegmentLength 512, AHS up to 64 */

#define FZI_IQN_I	"iqn.2024-01.org.tern:fuzz"
#define FZI_IQN_T	"iqn.2024-01.org.tern:disk1"
#define FZI_CHAP_NAME	"host1"
#define FZI_CHAP_TNAME	"disk1"
#define FZI_SECRET	"initiator-secret"
#define FZI_TSECRET	"target-secret-00"
#define FZI_TIMEOUT_MS	10000
#define FZI_PING_MS	3000

/* A stand-in for MD5 (the CHAP tests check the real one). */
int fzi_md5(const struct iscsi_chunk *parts, unsigned n, uint8_t d[ISCSI_MD5_LEN]);

/* What the harness sends before the end of the input, for the seeds. */
struct fzi_tap {
	void *ctx;
	void (*sent)(void *ctx, const struct iscsi_bhs *h, const uint8_t *data, uint32_t dlen,
		     const uint8_t *wire, size_t len);
};

/*
 * Run one input: whole or in chunks (m[2]).  *hash sums up what the
 * session did (sent PDUs, completions, events).  Returns 0, or -1 for an
 * input too short.  Any violation is a __builtin_trap().
 */
int fzi_run(const uint8_t *in, size_t n, bool chunked, const struct fzi_tap *tap,
	    uint64_t *hash);

/* The libFuzzer entry: fzi_run whole, and chunked when m[2] says so. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
