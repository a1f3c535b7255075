/*
 * STAND-IN (net/switch/vnet.c's branch): the device-side virtqueue API as
 * specified for issue 14.  The real header and kernel/devices/model/vring.c
 * come from the vring branch; this file is to be replaced by it on merge.
 * Until then tests/unit/vring_stub.h implements vring_read/vring_write for
 * the unit tests and the fuzzer (VIRTIO 1.1 2.6.4.2: readable descriptors
 * precede writable ones in a chain).  vring_read/vring_write return the
 * bytes copied, short at the end of the chain, or -EFAULT.
 */
#ifndef TERN_MODEL_VRING_H
#define TERN_MODEL_VRING_H

#include <stdbool.h>
#include <stdint.h>

struct vring_mem { void *(*map)(void *ctx, uint64_t gpa, uint32_t len, bool write); void *ctx; }; /* len ≤ 4096, never crossing a 4 KiB page */
struct vring_seg { uint64_t gpa; uint32_t len; bool write; };
struct vring_chain { uint16_t head; uint16_t nseg; uint32_t rlen, wlen; struct vring_seg seg[260]; };
int vring_read(const struct vring_mem *m, const struct vring_chain *c, uint32_t off, void *buf, uint32_t len);  /* readable bytes from off; bytes or -EFAULT */
int vring_write(const struct vring_mem *m, const struct vring_chain *c, uint32_t off, const void *buf, uint32_t len); /* writable bytes */

#endif
