/*
 * The save area of `vm save` / `vm restore` (migrate/mig_save.c): a
 * quick migration stream (migrate/stream.h) on a shared LUN, after one
 * header block that says whether the stream is a whole save.  Pure: the
 * header block's codec only; the unit tests compile this same file.
 *
 * ---- Layout of the disk ----
 *	bytes 0..4095	the header block (SAVEAREA_HDR_LEN; the disk's block
 *			size must divide it)
 *	bytes 4096..	the stream, stream_len bytes, zero-padded to a block
 *
 * ---- Header block, format version 1 (little-endian, no padding) ----
 *	0   u8[8]  magic "TERNSAVE"
 *	8   u16    version (1; a reader takes only versions it knows)
 *	10  u16    state: 1 VALID (a whole save, never restored), 2 RESTORED
 *		   (a restore took it: a second one needs `force`)
 *	12  u32    reserved, 0
 *	16  u64    stream_off: the stream's first byte on the disk, 4096
 *	24  u64    stream_len: bytes of stream, 32..SAVEAREA_STREAM_MAX
 *	32  u64    mem_size: the guest's RAM in bytes (for the operator)
 *	40  u32    nvcpus (for the operator), 1..MIG_VCPUS_MAX
 *	44  u32    save_ms: how long the save took (pause to header)
 *	48  u8[32] name: the VM, [A-Za-z0-9._-], NUL-padded, 1..31 chars
 *	80  u8[64] host: the saving host's name, printable, NUL-padded
 *	144 u8[24] addr: the saving host's address, printable, NUL-padded
 *	168 u8[64] restored_by: the restoring host ("" while VALID)
 *	232 u8[20] reserved, 0
 *	252 u32    hcrc: CRC32C of bytes 0..251
 *	256..4095  zero (not checked: a reader looks at the first 256 bytes)
 *
 * The saving host writes the stream, flushes, then writes this block and
 * flushes again: a crash before the header leaves the old header (or none)
 * in place, never a "valid" header over a partial stream.  The stream's
 * own checksums (stream.h) cover its bytes; the header's CRC covers the
 * header only.
 *
 * Errors (savearea_decode):
 *	-ENOENT		 no magic: there is no save on this disk
 *	-EPROTONOSUPPORT a format version this build does not know
 *	-EIO		 the header's CRC does not match (a torn or corrupt block)
 *	-EBADMSG	 a field out of range: state, reserved bytes, offsets,
 *			 lengths, a name or string that is not what it must be
 */
#ifndef TERN_MIGRATE_SAVEAREA_H
#define TERN_MIGRATE_SAVEAREA_H

#include <stddef.h>
#include <stdint.h>

#define SAVEAREA_MAGIC		"TERNSAVE"
#define SAVEAREA_VERSION	1
#define SAVEAREA_HDR_LEN	4096		/* the block on the disk */
#define SAVEAREA_HDR_USED	256		/* the bytes that carry the header */
#define SAVEAREA_STREAM_OFF	4096ull
#define SAVEAREA_STREAM_MIN	32ull		/* a stream header and a record header */
#define SAVEAREA_STREAM_MAX	(1ull << 42)	/* 4 TiB: 1 TiB of RAM and its metadata */
#define SAVEAREA_NAME_MAX	31
#define SAVEAREA_HOST_MAX	63
#define SAVEAREA_ADDR_MAX	23
#define SAVEAREA_VCPUS_MAX	64

enum savearea_state { SAVEAREA_VALID = 1, SAVEAREA_RESTORED = 2 };

struct savearea_hdr {
	uint16_t version;
	uint16_t state;			/* enum savearea_state */
	uint64_t stream_off, stream_len;
	uint64_t mem_size;
	uint32_t nvcpus;
	uint32_t save_ms;
	char name[SAVEAREA_NAME_MAX + 1];
	char host[SAVEAREA_HOST_MAX + 1];
	char addr[SAVEAREA_ADDR_MAX + 1];
	char restored_by[SAVEAREA_HOST_MAX + 1];
};

/*
 * Write h as a header block into out[0..SAVEAREA_HDR_LEN) (zeros after
 * the header; version and stream_off are taken from h, so a caller sets
 * them to SAVEAREA_VERSION and SAVEAREA_STREAM_OFF).  0, or -EINVAL with
 * nothing promised about out when a field is one decode would refuse.
 */
int savearea_encode(const struct savearea_hdr *h, uint8_t *out);

/* Read and check a header block of len bytes (>= SAVEAREA_HDR_USED);
 * why (may be NULL) gets the reason of a refusal.  See the errors above. */
int savearea_decode(const uint8_t *buf, size_t len, struct savearea_hdr *h, char *why,
		    size_t wlen);

const char *savearea_state_name(unsigned state);

#endif
