/* Virtio split virtqueue arithmetic and capability decoding; see virtq.h. */
#include <errno.h>
#include "kernel/lib/byteorder.h"
#include "kernel/lib/virtq.h"

int virtq_layout(uint32_t n, struct virtq_layout *l)
{
	if (!n || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return -EINVAL;
	l->desc = 0;
	l->avail = 16u * n;
	/* flags, idx, ring[n], used_event */
	l->used = (l->avail + 6u + 2u * n + 3u) & ~(size_t)3;
	/* flags, idx, ring[n] of 8 bytes, avail_event */
	l->total = l->used + 6u + 8u * n;
	return 0;
}

int virtq_used_pending(uint16_t last_seen, uint16_t used_idx, uint32_t n)
{
	uint16_t d = (uint16_t)(used_idx - last_seen);

	return d > n ? -EIO : d;
}

bool virtq_used_ok(const struct virtq_used_elem *e, uint32_t n, uint32_t buf_len)
{
	return e->id < n && e->len <= buf_len;
}

int virtio_pci_cap_decode(const uint8_t *cfg, size_t len, uint8_t off,
			  struct virtio_pci_cap *out)
{
	uint8_t cap_len;

	/* struct virtio_pci_cap: vndr, next, cap_len, cfg_type, bar, id,
	 * padding[2], offset, length (16 bytes); notify adds a multiplier. */
	if (!cfg || (size_t)off + 16 > len)
		return -EINVAL;
	cap_len = cfg[off + 2];
	if (cap_len < 16 || (size_t)off + cap_len > len)
		return -EINVAL;
	out->cfg_type = cfg[off + 3];
	out->bar = cfg[off + 4];
	out->offset = ld_le32(cfg + off + 8);
	out->length = ld_le32(cfg + off + 12);
	out->notify_mult = 0;
	if (out->cfg_type == VIRTIO_PCI_CAP_NOTIFY) {
		if (cap_len < 20)
			return -EINVAL;
		out->notify_mult = ld_le32(cfg + off + 16);
	}
	if (out->bar > 5 || out->offset + (uint64_t)out->length > 0xffffffffull)
		return -EINVAL;
	return 0;
}

bool virtio_region_fits(uint64_t bar_size, uint32_t offset, uint32_t length,
			uint32_t need)
{
	return length >= need && (uint64_t)offset + length <= bar_size;
}
