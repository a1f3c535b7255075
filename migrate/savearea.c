/*
 * The save area's header block codec (migrate/savearea.h).  Pure: the
 * kernel's `vm save` / `vm restore` and the unit tests build this file.
 * The header is read from a shared LUN any host may have written: every
 * field is checked, and nothing is read outside the block.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kernel/lib/crc32c.h"
#include "migrate/savearea.h"

#define OFF_MAGIC	0
#define OFF_VERSION	8
#define OFF_STATE	10
#define OFF_RSVD0	12
#define OFF_STREAM_OFF	16
#define OFF_STREAM_LEN	24
#define OFF_MEM		32
#define OFF_NVCPUS	40
#define OFF_SAVE_MS	44
#define OFF_NAME	48
#define OFF_HOST	80
#define OFF_ADDR	144
#define OFF_RBY		168
#define OFF_RSVD1	232
#define OFF_HCRC	252

static void sa_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void sa_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void sa_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t sa_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t sa_get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t sa_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int sa_fail(char *why, size_t wlen, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int sa_fail(char *why, size_t wlen, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && wlen) {
		va_start(ap, fmt);
		vsnprintf(why, wlen, fmt, ap);
		va_end(ap);
	}
	return err;
}

static bool sa_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > SAVEAREA_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool sa_printable(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* The rules encode and decode share. */
static int sa_check(const struct savearea_hdr *h, char *why, size_t wlen)
{
	if (h->version != SAVEAREA_VERSION)
		return sa_fail(why, wlen, -EPROTONOSUPPORT, "save area format version %u "
			       "(this host knows %u)", h->version, SAVEAREA_VERSION);
	if (h->state != SAVEAREA_VALID && h->state != SAVEAREA_RESTORED)
		return sa_fail(why, wlen, -EBADMSG, "bad state %u", h->state);
	if (h->stream_off != SAVEAREA_STREAM_OFF)
		return sa_fail(why, wlen, -EBADMSG, "stream offset %llu (must be %llu)",
			       (unsigned long long)h->stream_off, SAVEAREA_STREAM_OFF);
	if (h->stream_len < SAVEAREA_STREAM_MIN || h->stream_len > SAVEAREA_STREAM_MAX)
		return sa_fail(why, wlen, -EBADMSG, "stream length %llu out of range",
			       (unsigned long long)h->stream_len);
	if (!h->mem_size || h->mem_size % 4096)
		return sa_fail(why, wlen, -EBADMSG, "memory size %llu not whole pages",
			       (unsigned long long)h->mem_size);
	if (h->nvcpus < 1 || h->nvcpus > SAVEAREA_VCPUS_MAX)
		return sa_fail(why, wlen, -EBADMSG, "%u vCPUs out of range", h->nvcpus);
	if (!sa_name_ok(h->name))
		return sa_fail(why, wlen, -EBADMSG, "bad VM name");
	if (!sa_printable(h->host, SAVEAREA_HOST_MAX) ||
	    !sa_printable(h->addr, SAVEAREA_ADDR_MAX) ||
	    !sa_printable(h->restored_by, SAVEAREA_HOST_MAX))
		return sa_fail(why, wlen, -EBADMSG, "bad host name or address");
	if (h->state == SAVEAREA_VALID && h->restored_by[0])
		return sa_fail(why, wlen, -EBADMSG, "a valid save names a restoring host");
	return 0;
}

int savearea_encode(const struct savearea_hdr *h, uint8_t *out)
{
	if (sa_check(h, NULL, 0) < 0)
		return -EINVAL;
	memset(out, 0, SAVEAREA_HDR_LEN);
	memcpy(out + OFF_MAGIC, SAVEAREA_MAGIC, 8);
	sa_put16(out + OFF_VERSION, h->version);
	sa_put16(out + OFF_STATE, h->state);
	sa_put64(out + OFF_STREAM_OFF, h->stream_off);
	sa_put64(out + OFF_STREAM_LEN, h->stream_len);
	sa_put64(out + OFF_MEM, h->mem_size);
	sa_put32(out + OFF_NVCPUS, h->nvcpus);
	sa_put32(out + OFF_SAVE_MS, h->save_ms);
	memcpy(out + OFF_NAME, h->name, strlen(h->name));
	memcpy(out + OFF_HOST, h->host, strlen(h->host));
	memcpy(out + OFF_ADDR, h->addr, strlen(h->addr));
	memcpy(out + OFF_RBY, h->restored_by, strlen(h->restored_by));
	sa_put32(out + OFF_HCRC, crc32c(CRC32C_INIT, out, OFF_HCRC));
	return 0;
}

/* A NUL-padded field of n bytes: the string, and nothing but NULs after. */
static bool sa_field(const uint8_t *p, size_t n, char *dst)
{
	size_t len = strnlen((const char *)p, n);

	if (len == n)
		return false;		/* the last byte must be a NUL */
	for (size_t i = len; i < n; i++)
		if (p[i])
			return false;
	memcpy(dst, p, len);
	dst[len] = '\0';
	return true;
}

static bool sa_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

int savearea_decode(const uint8_t *buf, size_t len, struct savearea_hdr *h, char *why,
		    size_t wlen)
{
	if (len < SAVEAREA_HDR_USED)
		return sa_fail(why, wlen, -EBADMSG, "header block of %zu bytes", len);
	memset(h, 0, sizeof(*h));
	if (memcmp(buf + OFF_MAGIC, SAVEAREA_MAGIC, 8))
		return sa_fail(why, wlen, -ENOENT, "no save on this disk (no %s header)",
			       SAVEAREA_MAGIC);
	h->version = sa_get16(buf + OFF_VERSION);
	/* A newer format may lay the header out otherwise: the version
	 * speaks before the CRC. */
	if (h->version != SAVEAREA_VERSION)
		return sa_fail(why, wlen, -EPROTONOSUPPORT, "save area format version %u "
			       "(this host knows %u)", h->version, SAVEAREA_VERSION);
	if (sa_get32(buf + OFF_HCRC) != crc32c(CRC32C_INIT, buf, OFF_HCRC))
		return sa_fail(why, wlen, -EIO, "the header's CRC does not match (torn "
			       "or corrupt header)");
	h->state = sa_get16(buf + OFF_STATE);
	h->stream_off = sa_get64(buf + OFF_STREAM_OFF);
	h->stream_len = sa_get64(buf + OFF_STREAM_LEN);
	h->mem_size = sa_get64(buf + OFF_MEM);
	h->nvcpus = sa_get32(buf + OFF_NVCPUS);
	h->save_ms = sa_get32(buf + OFF_SAVE_MS);
	if (sa_get32(buf + OFF_RSVD0) || !sa_zero(buf + OFF_RSVD1, OFF_HCRC - OFF_RSVD1))
		return sa_fail(why, wlen, -EBADMSG, "reserved bytes not zero");
	if (!sa_field(buf + OFF_NAME, OFF_HOST - OFF_NAME, h->name) ||
	    !sa_field(buf + OFF_HOST, OFF_ADDR - OFF_HOST, h->host) ||
	    !sa_field(buf + OFF_ADDR, OFF_RBY - OFF_ADDR, h->addr) ||
	    !sa_field(buf + OFF_RBY, OFF_RSVD1 - OFF_RBY, h->restored_by))
		return sa_fail(why, wlen, -EBADMSG, "a string field is not NUL-padded");
	return sa_check(h, why, wlen);
}

const char *savearea_state_name(unsigned state)
{
	return state == SAVEAREA_VALID ? "valid" : state == SAVEAREA_RESTORED ? "restored" :
	       "unknown";
}
