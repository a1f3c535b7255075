/*
 * The migration stream codec: the bytes a source host sends and a
 * destination host checks.  Pure: no hardware, no allocation, no global
 * state; the encoder writes into a buffer the caller gives, the decoder
 * parses arbitrary chunks into storage the caller gives.  The kernel's
 * migration code, the unit tests and the fuzzer compile this same file.
 *
 * Incoming streams are hostile.  The decoder checks every length, index,
 * count, reserved field, checksum and the order of the records, and turns
 * every problem into a negative errno with a reason string.  It never
 * reads or writes outside its buffers, whatever the bytes.
 *
 * ---- Wire format, version 2 (all integers little-endian, no padding) ----
 *
 * Stream header, 16 bytes:
 *	0  u8[8] magic "TERN-MIG"
 *	8  u16   version (2; a reader takes only its own version)
 *	10 u16   flags: bit 0 LIVE (rounds may resend pages); others 0
 *	12 u32   hcrc: CRC32C of bytes 0..11
 *
 * Then records, each a 16-byte header, meta_len bytes of metadata and
 * data_len bytes of page data:
 *	0  u16   type: 1 CONFIG, 2 ROUND, 3 RAM, 4 VCPU, 5 DEVICE, 6 END
 *	2  u16   reserved, 0
 *	4  u32   meta_len, <= MIG_META_MAX
 *	8  u32   data_len, 0 except in RAM, <= MIG_BATCH_MAX * 4096
 *	12 u32   rcrc: CRC32C of header bytes 0..11 and the metadata, started
 *		 from the previous record's rcrc (the first record's from
 *		 hcrc).  The chain makes a dropped, repeated or reordered
 *		 record fail at the next record; page data is covered by the
 *		 page CRCs, which sit in the metadata, so every byte of the
 *		 stream is under exactly one CRC and data is summed once.
 *
 * CONFIG metadata (first record, exactly once): 40 fixed bytes, the
 * strings, the device words, the CPUID entries.
 *	0  u64   mem_size: bytes of guest RAM, a multiple of 4096, >= 4096,
 *		 <= MIG_PAGES_MAX pages (and the destination's bitmap)
 *	8  u32   nvcpus, 1..MIG_VCPUS_MAX
 *	12 u32   tsc_khz: the guest's TSC rate in kHz; 0 unknown, else
 *		 MIG_TSC_KHZ_MIN..MIG_TSC_KHZ_MAX (1 MHz to 20 GHz)
 *	16 u16   kind: 0 Multiboot, 1 Linux bzImage, 2 Linux PVH (enum mig_kind)
 *	18 u16   name_len 1..MIG_NAME_MAX, [A-Za-z0-9._-]
 *	20 u16   path_len 0..MIG_PATH_MAX: the kernel image
 *	22 u16   initrd_len 0..MIG_PATH_MAX: the initrd, Linux kinds only
 *	24 u16   modules_len 0..MIG_PATH_MAX: Multiboot modules, "A,B"
 *	26 u16   cmdline_len 0..MIG_CMDLINE_MAX
 *	28 u16   ndevspecs 0..MIG_DEVSPECS_MAX
 *	30 u16   ncpuid 0..MIG_CPUID_MAX
 *	32 u64   reserved, 0
 *	40       name, kernel path, initrd path, modules, cmdline bytes (no
 *		 NUL; all but the name printable ASCII 0x20..0x7e), then
 *		 ndevspecs device words, each u16 len 1..MIG_DEVSPEC_MAX and
 *		 len bytes: printable ASCII without spaces (0x21..0x7e) of the
 *		 form KEY=VALUE, KEY [a-z]+ and VALUE not empty ("disk=web",
 *		 "nic=02:00:00:00:00:01"), no word twice; then ncpuid entries
 *		 of 24 bytes: u32 leaf, subleaf, eax, ebx, ecx, edx (the CPUID
 *		 the guest sees, for the destination to compare with its own)
 *	The record is 40 + the five string lengths + 2 * ndevspecs + the
 *	word lengths + 24 * ncpuid bytes, exactly.
 *
 * ROUND metadata, 16 bytes: one before each round's RAM records.
 *	0  u32   round: 0 first, then +1 each time
 *	4  u32   flags: bit 0 FINAL (stop-and-copy); others 0
 *	8  u64   pages: page entries the round's RAM records will carry,
 *		 <= the VM's pages; checked when the round ends
 *
 * RAM metadata: 8 + 16 * count bytes, then the data of the DATA pages in
 * entry order, 4096 bytes each (data_len = 4096 * data pages):
 *	0  u32   count, 1..MIG_BATCH_MAX
 *	4  u32   reserved, 0
 *	8  count entries of 16 bytes:
 *	   0  u64 page index (guest-physical address / 4096), < VM pages
 *	   8  u8  kind: 0 DATA, 1 ZERO (no data: the page is all zero)
 *	   9  u8[3] reserved, 0
 *	   12 u32 CRC32C of the page's 4096 bytes (0 for ZERO)
 *	A page may come many times in a live stream (the last copy wins),
 *	exactly once in a quick one (no LIVE flag; one round).
 *
 * VCPU metadata: MIG_VCPU_FIXED (440) + 16 * nmsrs + xsave_len bytes.
 *	0   u32  index < nvcpus, each exactly once
 *	4   u32  flags: bit 0 interrupt shadow, bit 1 NMIs blocked; others 0
 *	8   u64  gpr[16] in x86 encoding order (RAX RCX RDX RBX RSP RBP RSI
 *		 RDI R8..R15)
 *	136 u64  rip, rflags, cr0, cr2, cr3, cr4, cr8, efer, xcr0, dr0, dr1,
 *		 dr2, dr3, dr6, dr7, tsc (the guest's TSC value)
 *	264 8 segments ES CS SS DS FS GS LDTR TR, 16 bytes each: u16 sel,
 *		 u16 attr (SVM packed layout), u32 limit, u64 base
 *	392 gdtr, idtr, 16 bytes each: u64 base, u32 limit <= 0xffff, u32 0
 *	424 u8   cpl 0..3
 *	425 u8   event flags: bit 0 valid, bit 1 has error code; others 0
 *	426 u8   event vector; 427 u8 event type 0..7 (all 0 unless valid)
 *	428 u32  event error code (0 unless valid and has error code)
 *	432 u32  nmsrs 0..MIG_MSRS_MAX
 *	436 u32  xsave_len 0..MIG_XSAVE_MAX
 *	440      nmsrs entries: u32 msr, u32 reserved 0, u64 value; then the
 *		 FPU/XSAVE image (standard format, opaque here).  Other MSRs
 *		 (PAT, STAR, LSTAR, SYSENTER_*, KERNEL_GS_BASE, ...) go in
 *		 the list, by their architectural numbers.
 *
 * DEVICE metadata: 12 + name_len + blob_len bytes, names unique, at most
 * MIG_DEVICES_MAX (128) records:
 *	0  u16   name_len 1..MIG_NAME_MAX, [A-Za-z0-9._-]
 *	2  u16   reserved, 0
 *	4  u32   version of the device's own state format
 *	8  u32   blob_len 0..MIG_BLOB_MAX
 *	12       name, then the blob (the device model parses it, and must
 *		 treat it as hostile too)
 *
 * END metadata, 32 bytes: the sender's totals, which must match.
 *	0  u64   pages: page entries in all RAM records
 *	8  u32   rounds; 12 u32 vcpus; 16 u32 devices; 20 u32 reserved 0
 *	24 u64   bytes: stream bytes before this record's header
 *
 * Record MACs (the encrypt=off data link).  Once the two ends agree on a
 * key (mig_enc_mac, mig_dec_mac; over TLS, see migrate.h), every later
 * record is followed by a 16-byte tag: ChaCha20-Poly1305 (RFC 8439
 * section 2.8) of an empty plaintext, with
 *	nonce: 4 zero bytes, then u64 seq (the record's number in the
 *	stream, CONFIG is 0);
 *	additional data: the 16-byte record header, the metadata and the
 *	page data.
 * The decoder holds a whole record until its tag matched: no field is
 * parsed and no page is delivered before.  The key is per migration, so a
 * record replayed from an older stream or spliced from another migration
 * fails; seq makes a repeated, dropped or moved record fail too.  The tag
 * is negotiated, not flagged in the stream header: the header and CONFIG
 * go over TLS before the key exists.
 *
 * Order: header, CONFIG, then (ROUND, RAM*)+ , VCPU x nvcpus, DEVICE*,
 * END, and nothing after.  A round's page count must match before the
 * next ROUND, VCPU, DEVICE or END.  END is accepted only when every page
 * of the VM and every vCPU arrived: then the image is complete.
 *
 * ---- Errors (decoder; the encoder refuses the same things) ----
 *	-EBADMSG	 malformed: magic, header CRC, reserved bits, unknown
 *			 type or page kind, lengths that disagree, bad names,
 *			 strings or device words (not
 *			 KEY=VALUE), an initrd with a Multiboot kind
 *	-EPROTONOSUPPORT a version but MIG_VERSION (version 1 too), or flags
 *			 this build does not know
 *	-EMSGSIZE	 meta_len or data_len over the record limits
 *	-E2BIG		 a count or a length over its limit
 *	-ERANGE		 page or vCPU index out of range; VM too big for the
 *			 destination's bitmap; CONFIG kind or TSC rate out of
 *			 range
 *	-EPROTO		 order: a record where it may not be, duplicates,
 *			 round counts, END totals, bytes after END
 *	-EIO		 record CRC: corrupt, dropped or reordered record
 *	-EILSEQ		 page data CRC
 *	-EACCES		 record MAC: altered, replayed or from another key
 *	-ENOENT		 END, but pages or vCPUs never arrived
 *	-ENODATA	 the stream stopped before END (mig_dec_finish)
 *	-ENOSPC		 encoder: the output buffer is full (nothing written)
 *	-EINVAL		 encoder: no pages, or a NULL XSAVE image or device state
 *	A callback's own negative return stops the decoder with that value.
 */
#ifndef TERN_MIGRATE_STREAM_H
#define TERN_MIGRATE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIG_MAGIC		"TERN-MIG"
#define MIG_VERSION		2
#define MIG_F_LIVE		(1u << 0)

#define MIG_HDR_LEN		16
#define MIG_REC_HDR_LEN		16
#define MIG_TAG_LEN		16	/* record MAC, when one is agreed */
#define MIG_MAC_KEY_LEN		32
#define MIG_PAGE_SIZE		4096

enum mig_rec_type {
	MIG_REC_CONFIG = 1, MIG_REC_ROUND, MIG_REC_RAM, MIG_REC_VCPU,
	MIG_REC_DEVICE, MIG_REC_END,
};

enum { MIG_PAGE_DATA = 0, MIG_PAGE_ZERO = 1 };

/* Limits: what a well-behaved sender stays within, and a receiver's
 * memory for one record is sized by. */
#define MIG_NAME_MAX		31
#define MIG_PATH_MAX		255
#define MIG_CMDLINE_MAX		1023
#define MIG_CPUID_MAX		128
#define MIG_VCPUS_MAX		64	/* the vCPU mask is one u64 */
#define MIG_PAGES_MAX		(1ull << 28)	/* 1 TiB of guest RAM */
#define MIG_BATCH_MAX		64	/* pages per RAM record */
#define MIG_MSRS_MAX		256
#define MIG_XSAVE_MAX		16384
#define MIG_BLOB_MAX		65536
#define MIG_DEVICES_MAX		128	/* platform, per-vCPU APICs, PCI */
#define MIG_DEVSPECS_MAX	8	/* disk= and nic= words in CONFIG */
#define MIG_DEVSPEC_MAX		47
#define MIG_TSC_KHZ_MIN		1000		/* 1 MHz; 0 means unknown */
#define MIG_TSC_KHZ_MAX		20000000	/* 20 GHz */
#define MIG_VCPU_FIXED		440
#define MIG_META_MAX		(12 + MIG_NAME_MAX + MIG_BLOB_MAX)	/* DEVICE */
#define MIG_DATA_MAX		(MIG_BATCH_MAX * MIG_PAGE_SIZE)

/* Longest reason string, NUL included. */
#define MIG_REASON_MAX		192

struct mig_cpuid {
	uint32_t leaf, subleaf, eax, ebx, ecx, edx;
};

/* CONFIG kind: how the guest was loaded (the destination checks its own
 * copy of the files gives the same). */
enum mig_kind { MIG_KIND_MULTIBOOT = 0, MIG_KIND_LINUX = 1, MIG_KIND_LINUX_PVH = 2 };

struct mig_config {
	uint64_t mem_size;
	uint32_t nvcpus;
	uint32_t kind;				/* enum mig_kind */
	uint32_t tsc_khz;			/* the guest's TSC rate, 0: unknown */
	char name[MIG_NAME_MAX + 1];		/* NUL-terminated */
	char kernel_path[MIG_PATH_MAX + 1];
	char initrd_path[MIG_PATH_MAX + 1];	/* "" for none */
	char modules[MIG_PATH_MAX + 1];		/* Multiboot "A,B", "" for none */
	char cmdline[MIG_CMDLINE_MAX + 1];
	uint32_t ndevspecs;			/* "disk=web", "nic=02:..:01" */
	char devspecs[MIG_DEVSPECS_MAX][MIG_DEVSPEC_MAX + 1];
	uint32_t ncpuid;
	struct mig_cpuid cpuid[MIG_CPUID_MAX];
};

struct mig_round {
	uint32_t round;
	uint32_t flags;
	uint64_t pages;
};
#define MIG_ROUND_FINAL		(1u << 0)

struct mig_seg {
	uint16_t sel, attr;
	uint32_t limit;
	uint64_t base;
};

struct mig_dtr {
	uint64_t base;
	uint32_t limit;
};

struct mig_msr {
	uint32_t index;
	uint64_t value;
};

#define MIG_VCPU_INT_SHADOW	(1u << 0)
#define MIG_VCPU_NMI_BLOCKED	(1u << 1)
#define MIG_EVENT_VALID		(1u << 0)
#define MIG_EVENT_HAS_ERROR	(1u << 1)

/* Arch-neutral vCPU state; the field order is the wire order. */
struct mig_vcpu {
	uint32_t index;
	uint32_t flags;
	uint64_t gpr[16];
	uint64_t rip, rflags, cr0, cr2, cr3, cr4, cr8, efer, xcr0;
	uint64_t dr[4], dr6, dr7, tsc;
	struct mig_seg seg[8];		/* ES CS SS DS FS GS LDTR TR */
	struct mig_dtr gdtr, idtr;
	uint8_t cpl;
	uint8_t event_flags, event_vector, event_type;
	uint32_t event_error;
	uint32_t nmsrs;
	struct mig_msr msrs[MIG_MSRS_MAX];
	uint32_t xsave_len;
	const uint8_t *xsave;	/* decoder: valid during the callback */
};

struct mig_device {
	char name[MIG_NAME_MAX + 1];
	uint32_t version;
	uint32_t blob_len;
	const uint8_t *blob;	/* decoder: valid during the callback */
};

struct mig_end {
	uint64_t pages;
	uint32_t rounds, vcpus, devices;
	uint64_t bytes;
};

/* Order and counting rules, one copy for both ends of the stream. */
enum mig_phase { MIG_PH_HEADER, MIG_PH_CONFIG, MIG_PH_RAM, MIG_PH_VCPU,
		 MIG_PH_DEVICE, MIG_PH_DONE };

struct mig_order {
	enum mig_phase phase;
	uint32_t flags;		/* stream header flags */
	uint64_t npages;	/* from CONFIG */
	uint32_t nvcpus;
	uint32_t rounds;	/* ROUND records so far */
	bool final;		/* a FINAL round was opened */
	uint64_t round_pages;	/* declared by the open round */
	uint64_t round_seen;	/* page entries in the open round */
	uint64_t pages;		/* page entries in the whole stream */
	uint64_t vcpu_mask;
	uint32_t ndevices;
	char devices[MIG_DEVICES_MAX][MIG_NAME_MAX + 1];
};

/*
 * The record MAC (see "Record MACs" above): tag[0..MIG_TAG_LEN) over seq
 * and the record's three parts.  0, or a negative errno.  The codec stays
 * pure; migrate/mig_mac.c gives ChaCha20-Poly1305 from mbedTLS.
 */
typedef int (*mig_mac_fn)(void *ctx, uint64_t seq, const uint8_t *hdr,
			  const uint8_t *meta, uint32_t meta_len,
			  const uint8_t *data, uint32_t data_len, uint8_t *tag);

/* ---- encoder ---- */

struct mig_page {
	uint64_t index;
	const void *data;	/* 4096 bytes, or NULL for a zero page */
};

struct mig_enc {
	uint8_t *buf;		/* output; the caller sends buf[0..len) */
	size_t cap, len;
	uint64_t bytes;		/* stream bytes produced, all buffers */
	uint32_t chain;		/* rcrc of the last record */
	uint64_t nrec;		/* records written: the next one's seq */
	mig_mac_fn mac;		/* NULL: records go without a tag */
	void *mac_ctx;
	struct mig_order ord;
	char reason[MIG_REASON_MAX];
};

/*
 * Start a stream into buf[0..cap) and write its header.  flags: MIG_F_*.
 * 0, -EPROTONOSUPPORT (unknown flags) or -ENOSPC.
 */
int mig_enc_init(struct mig_enc *e, void *buf, size_t cap, uint32_t flags);

/* The caller sent buf[0..len): reuse the buffer from its start. */
void mig_enc_rewind(struct mig_enc *e);

/* From the next record on, follow each with its MAC tag (fn(ctx, ...)).
 * fn failing fails the record with its errno, and the stream with it. */
void mig_enc_mac(struct mig_enc *e, mig_mac_fn fn, void *ctx);

/*
 * Append one record.  0, or a negative errno with e->reason set; nothing
 * is written on error (-ENOSPC: send, rewind and retry).  The encoder
 * refuses what the decoder would refuse: limits, indexes and order.
 * mig_enc_ram sends pages[0..n) in one record, n <= MIG_BATCH_MAX; all-zero
 * pages go as ZERO entries without data.
 */
int mig_enc_config(struct mig_enc *e, const struct mig_config *c);
int mig_enc_round(struct mig_enc *e, uint32_t round, uint32_t flags, uint64_t pages);
int mig_enc_ram(struct mig_enc *e, const struct mig_page *pages, unsigned n);
int mig_enc_vcpu(struct mig_enc *e, const struct mig_vcpu *v);
int mig_enc_device(struct mig_enc *e, const struct mig_device *d);
int mig_enc_end(struct mig_enc *e);

/* Worst-case bytes of a RAM record of n pages, for sizing buffers. */
size_t mig_ram_record_max(unsigned n);

/* ---- decoder ---- */

/*
 * Callbacks, any of which may be NULL.  Pointers are valid only during
 * the call.  page() gets data NULL for a zero page; a page's data has
 * been checked against its CRC before the call.  A negative return
 * stops the stream with that errno (see mig_dec_fail for a reason).
 */
struct mig_dec_ops {
	int (*config)(void *ctx, const struct mig_config *c);
	int (*round)(void *ctx, const struct mig_round *r);
	int (*page)(void *ctx, uint64_t index, const void *data);
	int (*vcpu)(void *ctx, const struct mig_vcpu *v);
	int (*device)(void *ctx, const struct mig_device *d);
	int (*end)(void *ctx, const struct mig_end *e);
};

enum mig_dec_state { MIG_DS_HDR, MIG_DS_RHDR, MIG_DS_META, MIG_DS_DATA,
		     MIG_DS_HOLD, MIG_DS_TAG, MIG_DS_DONE, MIG_DS_FAILED };

/* 79,472 bytes on x86-64 (struct mig_enc 4,400): allocate it, do not put it
 * on a kernel stack. */
struct mig_dec {
	const struct mig_dec_ops *ops;
	void *ctx;
	uint64_t *seen;		/* caller's bitmap, bit per page */
	uint64_t seen_cap;	/* pages the bitmap can hold */
	uint64_t seen_count;	/* distinct pages received */
	enum mig_dec_state st;
	int err;
	uint64_t bytes;		/* consumed so far */
	uint64_t rec_start;	/* stream offset of the current record */
	uint64_t nrec;		/* records completed */
	uint32_t chain;
	struct mig_order ord;
	mig_mac_fn mac;		/* set: records from the next one carry a tag */
	void *mac_ctx;
	uint8_t *hold;		/* MIG_DATA_MAX bytes: page data until its tag */
	bool rec_mac;		/* the current record carries a tag */
	uint8_t tag[MIG_TAG_LEN];
	/* The record being assembled. */
	uint8_t hdr[MIG_REC_HDR_LEN];
	uint32_t have;		/* bytes of the current part so far */
	uint16_t type;
	uint32_t meta_len, data_len;
	uint32_t ent, nent;	/* RAM: next entry, entries */
	uint8_t meta[MIG_META_MAX];
	uint8_t page[MIG_PAGE_SIZE];
	union {
		struct mig_config config;
		struct mig_vcpu vcpu;
		struct mig_device device;
	} u;
	char reason[MIG_REASON_MAX];
};

/* Bytes of bitmap for npages (whole u64 words). */
size_t mig_bitmap_bytes(uint64_t npages);

/*
 * Ready d for a new stream.  seen holds mig_bitmap_bytes(cap) bytes and
 * bounds the VM a CONFIG may announce (cap pages).
 */
void mig_dec_init(struct mig_dec *d, const struct mig_dec_ops *ops, void *ctx,
		  uint64_t *seen, uint64_t cap);

/*
 * From the next record the decoder starts on, every record must be
 * followed by its MAC tag (fn(ctx, ...)), checked before the record is
 * parsed or any of its pages delivered; hold is MIG_DATA_MAX bytes of the
 * caller's where a RAM record's pages wait for their tag.
 */
void mig_dec_mac(struct mig_dec *d, mig_mac_fn fn, void *ctx, uint8_t *hold);

/*
 * Parse buf[0..len), any split of the stream.  0 when every byte was
 * taken; a negative errno (and d->reason) at the first problem, and the
 * same one on every later call.
 */
int mig_dec_feed(struct mig_dec *d, const void *buf, size_t len);

/*
 * The transport closed: 0 only after a verified END with every page and
 * vCPU received (mig_dec_complete), else -ENODATA or the earlier error.
 */
int mig_dec_finish(struct mig_dec *d);

/* True once END was verified: the destination holds a whole image. */
bool mig_dec_complete(const struct mig_dec *d);

/* For callbacks: stop with err (negative errno) and a formatted reason. */
int mig_dec_fail(struct mig_dec *d, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

const char *mig_rec_name(unsigned type);

#endif
