/*
 * Tests-only vring_read/vring_write until kernel/devices/model/vring.c is
 * merged (the Makefile defines TERN_VRING_STUB while that file is absent).
 * Include it from exactly one translation unit per binary.  Semantics as
 * specified: offsets count only the readable (or writable) bytes of the
 * chain in segment order; every access goes through m->map a page at a
 * time; the count is short at the end of the chain, an unmapped page is
 * -EFAULT (as the vring branch's vring.h documents).
 */
#ifndef TERN_TESTS_VRING_STUB_H
#define TERN_TESTS_VRING_STUB_H

#include <errno.h>
#include <string.h>

#include "kernel/devices/model/vring.h"

#ifdef TERN_VRING_STUB
static int vs_copy(const struct vring_mem *m, const struct vring_chain *c, bool write,
		   uint32_t off, uint8_t *buf, uint32_t len)
{
	uint32_t done = 0;

	for (unsigned i = 0; i < c->nseg && done < len; i++) {
		const struct vring_seg *s = &c->seg[i];
		uint32_t skip, n;

		if (s->write != write)
			continue;
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		skip = off;
		off = 0;
		while (skip < s->len && done < len) {
			uint64_t gpa = s->gpa + skip;
			uint32_t in_page = 4096 - (uint32_t)(gpa & 4095);
			uint8_t *p;

			n = s->len - skip;
			n = n < in_page ? n : in_page;
			n = n < len - done ? n : len - done;
			p = m->map(m->ctx, gpa, n, write);
			if (!p)
				return -EFAULT;
			if (write)
				memcpy(p, buf + done, n);
			else
				memcpy(buf + done, p, n);
			done += n;
			skip += n;
		}
	}
	return (int)done;	/* short at the end of the chain */
}

int vring_read(const struct vring_mem *m, const struct vring_chain *c, uint32_t off,
	       void *buf, uint32_t len)
{
	return vs_copy(m, c, false, off, buf, len);
}

int vring_write(const struct vring_mem *m, const struct vring_chain *c, uint32_t off,
		const void *buf, uint32_t len)
{
	return vs_copy(m, c, true, off, (uint8_t *)(uintptr_t)buf, len);
}
#endif

#endif
