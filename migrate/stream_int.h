/*
 * Inside the migration stream codec: the field writers and reader, and
 * the checks and order rules both ends share (stream.c), so the encoder
 * (stream_enc.c) can never write what the decoder (stream_dec.c) refuses.
 * The wire is little-endian whatever the host is, and no field is assumed
 * to be aligned: every integer goes through kernel/lib/byteorder.h.
 */
#ifndef TERN_MIGRATE_STREAM_INT_H
#define TERN_MIGRATE_STREAM_INT_H

#include <string.h>
#include "kernel/lib/byteorder.h"
#include "migrate/stream.h"

_Static_assert(MIG_VCPU_FIXED + 16 * MIG_MSRS_MAX + MIG_XSAVE_MAX <= MIG_META_MAX,
	       "VCPU record must fit the metadata buffer");
_Static_assert(40 + MIG_NAME_MAX + 3 * MIG_PATH_MAX + MIG_CMDLINE_MAX +
	       MIG_DEVSPECS_MAX * (2 + MIG_DEVSPEC_MAX) + 24 * MIG_CPUID_MAX <= MIG_META_MAX,
	       "CONFIG must fit too");
_Static_assert(8 + 16 * MIG_BATCH_MAX <= MIG_META_MAX, "and RAM");

#define CONFIG_FIXED	40
#define ROUND_LEN	16
#define RAM_FIXED	8
#define RAM_ENTRY	16
#define DEVICE_FIXED	12
#define END_LEN		32

/*
 * Writers for a record being built field by field: each stores one
 * little-endian field at p (kernel/lib/byteorder.h) and returns the byte
 * after it.
 */
static inline uint8_t *put_le16(uint8_t *p, uint16_t v)
{
	st_le16(p, v);
	return p + 2;
}

static inline uint8_t *put_le32(uint8_t *p, uint32_t v)
{
	st_le32(p, v);
	return p + 4;
}

static inline uint8_t *put_le64(uint8_t *p, uint64_t v)
{
	st_le64(p, v);
	return p + 8;
}

static inline uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
	if (n)
		memcpy(p, src, n);
	return p + n;
}

/*
 * A reader over one record's metadata.  The decoder checks the exact
 * length before it reads, so running off the end is a bug in this file;
 * the reader still refuses to, and returns zeros.
 */
struct rd {
	const uint8_t *p;
	uint32_t len, off;
};

static inline const uint8_t *rd_take(struct rd *r, uint32_t n)
{
	const uint8_t *p = r->p + r->off;

	if (n > r->len - r->off) {
		r->off = r->len;
		return NULL;
	}
	r->off += n;
	return p;
}

static inline uint8_t rd8(struct rd *r)
{
	const uint8_t *p = rd_take(r, 1);

	return p ? *p : 0;
}

static inline uint16_t rd16(struct rd *r)
{
	const uint8_t *p = rd_take(r, 2);

	return p ? ld_le16(p) : 0;
}

static inline uint32_t rd32(struct rd *r)
{
	const uint8_t *p = rd_take(r, 4);

	return p ? ld_le32(p) : 0;
}

static inline uint64_t rd64(struct rd *r)
{
	const uint8_t *p = rd_take(r, 8);

	return p ? ld_le64(p) : 0;
}

static inline void rd_copy(struct rd *r, void *dst, uint32_t n)
{
	const uint8_t *p = rd_take(r, n);

	if (p && n)
		memcpy(dst, p, n);
}

/* The 16 u64 registers after the GPRs, in wire order. */
#define VCPU_REGS(v) { &(v)->rip, &(v)->rflags, &(v)->cr0, &(v)->cr2, &(v)->cr3, \
     &(v)->cr4, &(v)->cr8, &(v)->efer, &(v)->xcr0, &(v)->dr[0], &(v)->dr[1], \
     &(v)->dr[2], &(v)->dr[3], &(v)->dr6, &(v)->dr7, &(v)->tsc }

/* CONFIG's string lengths, as sent (strnlen on the source's NUL-terminated
 * fields, so one too long shows as its limit + 1). */
struct mig_lens {
	size_t name, path, initrd, modules, cmdline;
	size_t devspec[MIG_DEVSPECS_MAX];
};

/* Format a reason into why (MIG_REASON_MAX bytes); returns err. */
__attribute__((format(printf, 3, 4)))
int mig_why_set(char *why, int err, const char *fmt, ...);

/* Field checks; why gets the reason. */
int mig_check_config(const struct mig_config *c, const struct mig_lens *l,
		     uint64_t cap, char *why);
int mig_check_vcpu(const struct mig_vcpu *v, char *why);
int mig_check_device(const struct mig_device *d, size_t name_len, char *why);

/* Order rules: each changes o only when it returns 0. */
void mig_ord_init(struct mig_order *o, uint32_t flags);
int mig_ord_config(struct mig_order *o, uint64_t npages, uint32_t nvcpus,
		   char *why);
int mig_ord_round(struct mig_order *o, const struct mig_round *r, char *why);
int mig_ord_ram(struct mig_order *o, uint32_t n, char *why);
int mig_ord_vcpu(struct mig_order *o, uint32_t index, char *why);
int mig_ord_device(struct mig_order *o, const char *name, char *why);
int mig_ord_end(struct mig_order *o, char *why);

#endif
