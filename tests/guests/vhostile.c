/*
 * vhostile: a hostile virtio 1.x driver.  It finds Tern's virtio-blk and
 * virtio-net PCI functions by config mechanism #1, brings them up the
 * way the spec asks, then hands them malformed rings (a descriptor loop,
 * an avail index that jumps past the queue size, a head outside the
 * table, a buffer outside guest RAM, a readable descriptor after a
 * writable one) and garbage in every register it can reach.  Each bad
 * ring must end in DEVICE_NEEDS_RESET (VIRTIO 1.1 2.1.2) with the used
 * ring untouched, and a reset plus a good GET_ID must bring the disk
 * back.  The net device is left failed on purpose: the lab test reads
 * the reason from `vm info`.
 *
 * Paging is off, so the BARs (0xe01xxxxx) are plain pointers.  Command
 * line: "only=blk" or "only=net" runs one part (default both);
 * "flood=N" adds N break-and-reset rounds on the disk; "straddle" adds a
 * dword access across the end of the PCI BAR window (see
 * garbage_bar_moves).
 */
#include "guest.h"

/* PCI config mechanism #1 (PCI Local Bus 3.0 3.2.2.3.2). */
#define PCI_ADDR	0xcf8
#define PCI_DATA	0xcfc
#define PCI_VENDOR	0x00
#define PCI_COMMAND	0x04
#define PCI_CMD_MEM	0x0002
#define PCI_CMD_MASTER	0x0004
#define PCI_STATUS_CAPS	0x0010		/* in the upper half of dword 0x04 */
#define PCI_CAP_PTR	0x34
#define PCI_BAR4	0x20
#define PCI_CAP_VNDR	0x09
#define PCI_CAP_MSIX	0x11

#define VIRTIO_VENDOR	0x1af4
#define DEV_NET		0x1041
#define DEV_BLK		0x1042

/* virtio_pci_cap cfg_type (4.1.4) */
#define CAP_COMMON	1
#define CAP_NOTIFY	2
#define CAP_ISR		3
#define CAP_DEVICE	4

/* Common configuration (4.1.4.3). */
#define CC_DFSELECT	0x00
#define CC_DF		0x04
#define CC_GFSELECT	0x08
#define CC_GF		0x0c
#define CC_MSIX_CONFIG	0x10
#define CC_NUM_QUEUES	0x12
#define CC_STATUS	0x14
#define CC_Q_SELECT	0x16
#define CC_Q_SIZE	0x18
#define CC_Q_MSIX	0x1a
#define CC_Q_ENABLE	0x1c
#define CC_Q_NOTIFY_OFF	0x1e
#define CC_Q_DESC	0x20
#define CC_Q_DRIVER	0x28
#define CC_Q_DEVICE	0x30
#define CC_LEN		0x38

/* device_status (2.1) */
#define ST_ACK		0x01
#define ST_DRIVER	0x02
#define ST_DRIVER_OK	0x04
#define ST_FEATURES_OK	0x08
#define ST_NEEDS_RESET	0x40

#define DESC_F_NEXT	1
#define DESC_F_WRITE	2
#define DESC_F_INDIRECT	4
#define F_INDIRECT_DESC	28		/* VIRTIO_F_INDIRECT_DESC (6) */

#define QSIZE		8
#define MAX_Q		3
#define WILD_ADDR	0xd0000000u	/* no RAM there with mem=16M */
#define BLK_T_GET_ID	8		/* 5.2.6 */
#define BLK_ID_BYTES	20
#define NET_HDR_LEN	12		/* virtio_net_hdr with VERSION_1 (5.1.6) */
#define MSI_NO_VECTOR	0xffff

/* Poll budget: generous for any TSC rate up to ~5 GHz (about 2 s). */
#define POLL_CYCLES	10000000000ull

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct vavail {
	uint16_t flags, idx, ring[QSIZE], used_event;
};

struct vused {
	uint16_t flags, idx;
	struct { uint32_t id, len; } ring[QSIZE];
	uint16_t avail_event;
};

/* One page per ring part, per queue, per device. */
struct vq_mem {
	struct vdesc desc[QSIZE] __attribute__((aligned(4096)));
	struct vavail avail __attribute__((aligned(4096)));
	struct vused used __attribute__((aligned(4096)));
};

struct vdev {
	const char *name;
	int slot;
	uint32_t bar;
	uint32_t common, notify, isr, device, notify_mult, notify_len;
	uint8_t msix_cap;
	uint32_t msix_table;
	uint16_t msix_n;
	uint16_t nq;
	uint16_t qoff[MAX_Q];
	uint16_t avail_idx[MAX_Q];
	struct vq_mem *q;
	/* Hostile set-ups: extra feature bits (0..31) to ask for, and ring
	 * addresses for queue 0 instead of its pages (0: the page). */
	uint32_t feat_lo;
	uint32_t ovr_desc, ovr_avail, ovr_used;
};

static struct vq_mem blk_q[1];
static struct vq_mem net_q[MAX_Q];
static uint8_t blk_hdr[16] __attribute__((aligned(16)));
static uint8_t blk_id[BLK_ID_BYTES] __attribute__((aligned(16)));
static uint8_t blk_status __attribute__((aligned(16)));
static struct vdesc blk_ind[4] __attribute__((aligned(16)));

/* ---- PCI config ---- */

static uint32_t cfg_addr(int slot, uint8_t off)
{
	return 0x80000000u | (uint32_t)slot << 11 | (off & 0xfcu);
}

static uint32_t pci_rd(int slot, uint8_t off)
{
	outl(PCI_ADDR, cfg_addr(slot, off));
	return inl(PCI_DATA);
}

static void pci_wr(int slot, uint8_t off, uint32_t v)
{
	outl(PCI_ADDR, cfg_addr(slot, off));
	outl(PCI_DATA, v);
}

static uint8_t pci_rd8(int slot, uint8_t off)
{
	return (uint8_t)(pci_rd(slot, off) >> (8 * (off & 3)));
}

/* ---- MMIO ---- */

static uint32_t rd32(uint32_t a)
{
	return *(volatile uint32_t *)(uintptr_t)a;
}

static uint16_t rd16(uint32_t a)
{
	return *(volatile uint16_t *)(uintptr_t)a;
}

static uint8_t rd8(uint32_t a)
{
	return *(volatile uint8_t *)(uintptr_t)a;
}

static void wr32(uint32_t a, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)a = v;
}

static void wr16(uint32_t a, uint16_t v)
{
	*(volatile uint16_t *)(uintptr_t)a = v;
}

static void wr8(uint32_t a, uint8_t v)
{
	*(volatile uint8_t *)(uintptr_t)a = v;
}

static void barrier(void)
{
	__asm__ volatile("lock; addl $0, (%%esp)" : : : "memory", "cc");
}

/* ---- discovery ---- */

static void cap_vendor(struct vdev *d, uint8_t p)
{
	uint8_t type = pci_rd8(d->slot, p + 3), bar = pci_rd8(d->slot, p + 4);
	uint32_t off = pci_rd(d->slot, p + 8), len = pci_rd(d->slot, p + 12);

	if (bar != 4)
		return;
	switch (type) {
	case CAP_COMMON: d->common = d->bar + off; break;
	case CAP_ISR: d->isr = d->bar + off; break;
	case CAP_DEVICE: d->device = d->bar + off; break;
	case CAP_NOTIFY:
		d->notify = d->bar + off;
		d->notify_len = len;
		d->notify_mult = pci_rd(d->slot, p + 16);
		break;
	}
}

/* A memory BAR's base, or 0 when it is not one we can reach. */
static uint32_t bar_base(int slot, uint8_t bir)
{
	uint32_t lo, hi = 0;

	if (bir > 5)
		return 0;
	lo = pci_rd(slot, (uint8_t)(0x10 + 4 * bir));
	if (lo & 1)
		return 0;
	if ((lo & 6) == 4 && bir < 5)
		hi = pci_rd(slot, (uint8_t)(0x14 + 4 * bir));
	return hi ? 0 : lo & ~0xfu;
}

/* MSI-X (PCI 3.0 6.8.2): table size N-1 in message control, table
 * offset and BIR in the next dword.  Tern puts the table in BAR 4. */
static void cap_msix(struct vdev *d, uint8_t p)
{
	uint32_t ctl = pci_rd(d->slot, p) >> 16, tab = pci_rd(d->slot, p + 4);
	uint32_t base = bar_base(d->slot, (uint8_t)(tab & 7));

	d->msix_cap = p;
	d->msix_n = (uint16_t)((ctl & 0x7ff) + 1);
	if (base)
		d->msix_table = base + (tab & ~7u);
}

/* Walk the capability list (PCI 3.0 6.7); bounded against a loop. */
static bool find_caps(struct vdev *d)
{
	uint8_t p;
	int n;

	if (!((pci_rd(d->slot, PCI_COMMAND) >> 16) & PCI_STATUS_CAPS))
		return false;
	p = pci_rd8(d->slot, PCI_CAP_PTR) & 0xfc;
	for (n = 0; p >= 0x40 && n < 48; n++) {
		uint8_t id = pci_rd8(d->slot, p);

		if (id == PCI_CAP_VNDR)
			cap_vendor(d, p);
		else if (id == PCI_CAP_MSIX)
			cap_msix(d, p);
		p = pci_rd8(d->slot, p + 1) & 0xfc;
	}
	return d->common && d->notify && d->isr && d->device && d->msix_table;
}

static bool find_dev(struct vdev *d, uint16_t devid)
{
	uint32_t lo, hi;

	for (int s = 0; s < 32; s++) {
		if (pci_rd(s, PCI_VENDOR) == ((uint32_t)devid << 16 | VIRTIO_VENDOR)) {
			d->slot = s;
			break;
		}
	}
	if (d->slot < 0)
		return false;
	lo = pci_rd(d->slot, PCI_BAR4);
	hi = pci_rd(d->slot, PCI_BAR4 + 4);
	guest_printf("VH %s at 00:%02x.0 bar4 %08x:%08x\n", d->name, d->slot, hi, lo);
	/* A 64-bit memory BAR (type 10b) below 4 GiB, or we cannot reach it. */
	if ((lo & 7) != 4 || hi)
		return false;
	d->bar = lo & ~0xfu;
	pci_wr(d->slot, PCI_COMMAND, (pci_rd(d->slot, PCI_COMMAND) & 0xffff) |
	       PCI_CMD_MEM | PCI_CMD_MASTER);
	return true;
}

/* ---- the driver side ---- */

static uint8_t status(const struct vdev *d)
{
	return rd8(d->common + CC_STATUS);
}

/* Poll for status bits (or for 0 when want is 0). */
static bool wait_status(const struct vdev *d, uint8_t want)
{
	uint64_t t0 = guest_rdtsc();

	do {
		uint8_t s = status(d);

		if (want ? (s & want) == want : s == 0)
			return true;
		outb(0x80, 0);
	} while (guest_rdtsc() - t0 < POLL_CYCLES);
	return false;
}

static bool reset(const struct vdev *d)
{
	wr8(d->common + CC_STATUS, 0);
	return wait_status(d, 0);
}

static void wr64(uint32_t a, const volatile void *p, uint32_t ovr)
{
	wr32(a, ovr ? ovr : (uint32_t)(uintptr_t)p);
	wr32(a + 4, 0);
}

static bool setup_queue(struct vdev *d, uint16_t q, uint16_t vector)
{
	struct vq_mem *m = &d->q[q];
	uint16_t max;

	memset(m, 0, sizeof(*m));
	d->avail_idx[q] = 0;
	wr16(d->common + CC_Q_SELECT, q);
	max = rd16(d->common + CC_Q_SIZE);
	if (max < QSIZE) {
		guest_printf("VH %s: queue %u max size %u\n", d->name, q, max);
		return false;
	}
	wr16(d->common + CC_Q_SIZE, QSIZE);
	wr16(d->common + CC_Q_MSIX, vector);
	wr64(d->common + CC_Q_DESC, m->desc, q ? 0 : d->ovr_desc);
	wr64(d->common + CC_Q_DRIVER, &m->avail, q ? 0 : d->ovr_avail);
	wr64(d->common + CC_Q_DEVICE, &m->used, q ? 0 : d->ovr_used);
	d->qoff[q] = rd16(d->common + CC_Q_NOTIFY_OFF);
	wr16(d->common + CC_Q_ENABLE, 1);
	return rd16(d->common + CC_Q_ENABLE) == 1 && rd16(d->common + CC_Q_SIZE) == QSIZE;
}

static uint64_t dev_features(const struct vdev *d)
{
	uint32_t lo, hi;

	wr32(d->common + CC_DFSELECT, 0);
	lo = rd32(d->common + CC_DF);
	wr32(d->common + CC_DFSELECT, 1);
	hi = rd32(d->common + CC_DF);
	return (uint64_t)hi << 32 | lo;
}

/* The init sequence of 3.1.1 with VERSION_1 as the only feature (plus
 * d->feat_lo for the indirect shapes). */
static bool dev_init(struct vdev *d, uint16_t vector)
{
	uint8_t s = ST_ACK | ST_DRIVER;

	if (!reset(d))
		return false;
	wr8(d->common + CC_STATUS, ST_ACK);
	wr8(d->common + CC_STATUS, s);
	if (!(dev_features(d) & (1ull << 32)))
		return false;
	wr32(d->common + CC_GFSELECT, 0);
	wr32(d->common + CC_GF, d->feat_lo);
	wr32(d->common + CC_GFSELECT, 1);
	wr32(d->common + CC_GF, 1);
	s |= ST_FEATURES_OK;
	wr8(d->common + CC_STATUS, s);
	if (!(status(d) & ST_FEATURES_OK))
		return false;
	wr16(d->common + CC_MSIX_CONFIG, vector);
	for (uint16_t q = 0; q < d->nq; q++)
		if (!setup_queue(d, q, vector))
			return false;
	s |= ST_DRIVER_OK;
	wr8(d->common + CC_STATUS, s);
	return status(d) == s;
}

static void kick(const struct vdev *d, uint16_t q)
{
	barrier();
	wr16(d->notify + (uint32_t)d->qoff[q] * d->notify_mult, q);
}

/* Publish head at the next avail slot and notify. */
static void post(struct vdev *d, uint16_t q, uint16_t head)
{
	struct vq_mem *m = &d->q[q];
	uint16_t i = d->avail_idx[q];

	((volatile struct vavail *)&m->avail)->ring[i % QSIZE] = head;
	barrier();
	((volatile struct vavail *)&m->avail)->idx = (uint16_t)(i + 1);
	d->avail_idx[q] = (uint16_t)(i + 1);
	kick(d, q);
}

static uint16_t used_idx(const struct vdev *d, uint16_t q)
{
	return ((volatile struct vused *)&d->q[q].used)->idx;
}

static bool wait_used(const struct vdev *d, uint16_t q, uint16_t idx)
{
	uint64_t t0 = guest_rdtsc();

	do {
		if (used_idx(d, q) == idx)
			return true;
		outb(0x80, 0);
	} while (guest_rdtsc() - t0 < POLL_CYCLES);
	return false;
}

static void set_desc(struct vdesc *t, int i, uint32_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	volatile struct vdesc *v = &t[i];

	v->addr = addr;
	v->len = len;
	v->flags = flags;
	v->next = next;
}

/* The good GET_ID chain of 5.2.6 at descriptors 0..2. */
static void getid_chain(struct vdesc *t)
{
	memset(blk_hdr, 0, sizeof(blk_hdr));
	blk_hdr[0] = BLK_T_GET_ID;
	memset(blk_id, 0, sizeof(blk_id));
	blk_status = 0xff;
	set_desc(t, 0, (uint32_t)(uintptr_t)blk_hdr, 16, DESC_F_NEXT, 1);
	set_desc(t, 1, (uint32_t)(uintptr_t)blk_id, BLK_ID_BYTES, DESC_F_WRITE | DESC_F_NEXT, 2);
	set_desc(t, 2, (uint32_t)(uintptr_t)&blk_status, 1, DESC_F_WRITE, 0);
}

/* Reset, init, one GET_ID: NULL when the disk answered it properly,
 * else what went wrong. */
static const char *blk_get_id(struct vdev *d, uint16_t vector)
{
	struct vq_mem *m = &d->q[0];
	bool nonzero = false;
	uint32_t len;

	if (!dev_init(d, vector)) {
		guest_printf("VH blk: init failed, status %02x\n", status(d));
		return "init failed";
	}
	getid_chain(m->desc);
	post(d, 0, 0);
	if (!wait_used(d, 0, 1)) {
		guest_printf("VH blk: GET_ID: used idx %u status %02x\n", used_idx(d, 0), status(d));
		return "no used entry";
	}
	for (int i = 0; i < BLK_ID_BYTES; i++)
		nonzero |= ((volatile uint8_t *)blk_id)[i] != 0;
	len = ((volatile struct vused *)&m->used)->ring[0].len;
	guest_printf("VH blk: GET_ID status %u len %u id '", *(volatile uint8_t *)&blk_status, len);
	for (int i = 0; i < BLK_ID_BYTES && blk_id[i]; i++)
		guest_putc(blk_id[i] >= 0x20 && blk_id[i] < 0x7f ? (char)blk_id[i] : '.');
	guest_puts("'\n");
	if (*(volatile uint8_t *)&blk_status != 0 || !nonzero || len < BLK_ID_BYTES + 1 ||
	    ((volatile struct vused *)&m->used)->ring[0].id != 0) {
		return "bad answer";
	}
	return NULL;
}

/* ---- blk: the malformed rings ---- */

enum shape {
	SH_LOOP, SH_JUMP, SH_HEAD, SH_WILD, SH_ORDER,
	SH_DESC_WILD, SH_AVAIL_WILD, SH_USED_WILD, SH_MISALIGN,
	SH_IND_NESTED, SH_IND_WILD, SH_IND_LEN, SH_IND_LOOP,
	SH_COUNT
};
#define SH_FIRST_IND	SH_IND_NESTED

static const char *const shape_name[SH_COUNT] = {
	"blk_loop", "blk_avail_jump", "blk_head_range", "blk_wild_addr", "blk_order",
	"blk_desc_table_wild", "blk_avail_ring_wild", "blk_used_ring_wild", "blk_ring_misaligned",
	"blk_indirect_nested", "blk_indirect_wild", "blk_indirect_len", "blk_indirect_loop",
};

/* Ring placement for the shapes that lie about where the rings are. */
static void shape_rings(struct vdev *d, enum shape s)
{
	d->ovr_desc = s == SH_DESC_WILD ? WILD_ADDR :
		      s == SH_MISALIGN ? (uint32_t)(uintptr_t)d->q[0].desc + 8 : 0;
	d->ovr_avail = s == SH_AVAIL_WILD ? WILD_ADDR : 0;
	d->ovr_used = s == SH_USED_WILD ? WILD_ADDR : 0;
	d->feat_lo = s >= SH_FIRST_IND ? 1u << F_INDIRECT_DESC : 0;
}

/* desc 0 -> an indirect table holding the good GET_ID chain. */
static void indirect_chain(struct vdesc *t)
{
	getid_chain(blk_ind);
	set_desc(t, 0, (uint32_t)(uintptr_t)blk_ind, 3 * sizeof(struct vdesc), DESC_F_INDIRECT, 0);
}

static void shape_build_ind(struct vdev *d, enum shape s)
{
	struct vdesc *t = d->q[0].desc;
	uint32_t hdr = (uint32_t)(uintptr_t)blk_hdr, ind = (uint32_t)(uintptr_t)blk_ind;

	indirect_chain(t);
	switch (s) {
	case SH_IND_NESTED:	/* 2.6.5.3.1: no indirect inside an indirect table */
		set_desc(blk_ind, 0, ind, 3 * sizeof(struct vdesc), DESC_F_INDIRECT, 0);
		break;
	case SH_IND_WILD:	/* the table itself outside RAM */
		set_desc(t, 0, WILD_ADDR, 3 * sizeof(struct vdesc), DESC_F_INDIRECT, 0);
		break;
	case SH_IND_LEN:	/* not a whole number of descriptors */
		set_desc(t, 0, ind, 40, DESC_F_INDIRECT, 0);
		break;
	case SH_IND_LOOP:	/* a loop inside the table */
		set_desc(blk_ind, 0, hdr, 16, DESC_F_NEXT, 1);
		set_desc(blk_ind, 1, hdr, 16, DESC_F_NEXT, 0);
		break;
	default:
		break;
	}
}

/* Build the bad ring; the avail index is written here, then the kick. */
static void shape_build(struct vdev *d, enum shape s)
{
	struct vq_mem *m = &d->q[0];
	volatile struct vavail *a = &m->avail;
	uint32_t hdr = (uint32_t)(uintptr_t)blk_hdr, id = (uint32_t)(uintptr_t)blk_id;
	uint32_t st = (uint32_t)(uintptr_t)&blk_status;

	getid_chain(m->desc);
	a->ring[0] = 0;
	a->idx = 1;
	switch (s) {
	case SH_LOOP:		/* 0 -> 1 -> 0 -> ... (2.6.5.2: no loops) */
		set_desc(m->desc, 0, hdr, 16, DESC_F_NEXT, 1);
		set_desc(m->desc, 1, hdr, 16, DESC_F_NEXT, 0);
		break;
	case SH_JUMP:		/* more new entries than the ring holds */
		for (int i = 0; i < QSIZE; i++)
			a->ring[i] = 0;
		a->idx = QSIZE + 5;
		break;
	case SH_HEAD:		/* a head that names no descriptor */
		a->ring[0] = QSIZE + 3;
		break;
	case SH_WILD:		/* a buffer where the guest has no RAM */
		set_desc(m->desc, 1, WILD_ADDR, BLK_ID_BYTES, DESC_F_WRITE | DESC_F_NEXT, 2);
		break;
	case SH_ORDER:		/* 2.6.4.2: writable descriptors come last */
		set_desc(m->desc, 0, id, BLK_ID_BYTES, DESC_F_WRITE | DESC_F_NEXT, 1);
		set_desc(m->desc, 1, hdr, 16, DESC_F_NEXT, 2);
		set_desc(m->desc, 2, st, 1, DESC_F_WRITE, 0);
		break;
	default:
		if (s >= SH_FIRST_IND)
			shape_build_ind(d, s);
		break;
	}
	d->avail_idx[0] = a->idx;
}

static void blk_shape(struct vdev *d, enum shape s)
{
	char name[48];
	const char *n = shape_name[s], *why;
	size_t l = strlen(n);
	bool fail_seen, idle;
	uint8_t st;

	shape_rings(d, s);
	memset(blk_ind, 0, sizeof(blk_ind));
	/* A misaligned ring fails at DRIVER_OK (2.6 alignment table), so
	 * its init is expected to end in NEEDS_RESET, not in DRIVER_OK. */
	if (!dev_init(d, MSI_NO_VECTOR) && s != SH_MISALIGN) {
		memcpy(name, n, l);
		memcpy(name + l, "_init", 6);
		guest_check(name, false, "status %02x", status(d));
		shape_rings(d, SH_LOOP);
		return;
	}
	shape_build(d, s);
	wr16(d->common + CC_Q_SELECT, 0);
	guest_printf("VH %s: queue size %u avail idx %u ring[0] %u\n", n,
		     rd16(d->common + CC_Q_SIZE), d->q[0].avail.idx, d->q[0].avail.ring[0]);
	kick(d, 0);
	fail_seen = wait_status(d, ST_NEEDS_RESET);
	st = status(d);
	idle = used_idx(d, 0) == 0;
	memcpy(name, n, l);
	memcpy(name + l, "_needs_reset", 13);
	guest_check(name, fail_seen, "status %02x", st);
	memcpy(name + l, "_used_idle", 11);
	guest_check(name, idle, "used idx %u", used_idx(d, 0));
	if (s == SH_LOOP) {
		/* A failed device stays stopped: a good request now, at the
		 * next slot, must not be served until the reset. */
		getid_chain(d->q[0].desc);
		post(d, 0, 0);
		for (int i = 0; i < 20000; i++)
			outb(0x80, 0);
		guest_check("blk_stays_stopped", used_idx(d, 0) == 0 &&
			    (status(d) & ST_NEEDS_RESET), "used idx %u status %02x",
			    used_idx(d, 0), status(d));
	}
	shape_rings(d, SH_LOOP);
	why = blk_get_id(d, MSI_NO_VECTOR);
	if (s == SH_LOOP) {
		guest_check("blk_recovers_after_reset", !why, "%s", why);
	} else {
		memcpy(name + l, "_recovers", 10);
		guest_check(name, !why, "%s", why);
	}
}

/* flood=N: N rounds of break the ring, reset, break it again.  Each
 * round costs the guest a few dozen exits; the host says something each
 * time (the report asks whether that is rate-limited). */
static void blk_flood(struct vdev *d, uint64_t rounds)
{
	uint64_t t0 = guest_rdtsc(), seen = 0;

	for (uint64_t i = 0; i < rounds; i++) {
		dev_init(d, MSI_NO_VECTOR);
		shape_build(d, SH_LOOP);
		kick(d, 0);
		seen += wait_status(d, ST_NEEDS_RESET);
	}
	guest_printf("VH blk: flood %u rounds, needs-reset seen %u, %u Mi cycles\n",
		     (uint32_t)rounds, (uint32_t)seen,
		     (uint32_t)((guest_rdtsc() - t0) >> 20));
	guest_check("blk_flood_needs_reset", seen == rounds, "%u of %u", (uint32_t)seen,
		    (uint32_t)rounds);
}

/* ---- garbage ---- */

static void garbage_msix(struct vdev *d)
{
	uint32_t end = d->msix_table + 0x1000u;	/* the table page and its slack */

	for (uint32_t a = d->msix_table; a < end; a += 4)
		wr32(a, 0xffffffffu);
}

/* MSI-X on with an all-ones table entry, then a completion that sends
 * through it: the host must drop an MSI that is not an interrupt. */
static void garbage_msi(struct vdev *d)
{
	uint32_t c = pci_rd(d->slot, d->msix_cap);
	const char *why;

	pci_wr(d->slot, d->msix_cap, c | 0x80000000u);
	for (uint16_t v = 0; v < d->msix_n; v++) {
		wr32(d->msix_table + 16u * v, 0xffffffffu);
		wr32(d->msix_table + 16u * v + 4, 0xffffffffu);
		wr32(d->msix_table + 16u * v + 8, 0xffffffffu);
		wr32(d->msix_table + 16u * v + 12, 0);		/* unmasked */
	}
	why = blk_get_id(d, 0);
	guest_check("blk_garbage_msi_get_id", !why, "%s", why);
	pci_wr(d->slot, d->msix_cap, c & 0x7fffffffu);
}

static void garbage_common(struct vdev *d)
{
	static const uint8_t w2[] = { CC_MSIX_CONFIG, CC_NUM_QUEUES, CC_Q_SELECT, CC_Q_SIZE,
				      CC_Q_MSIX, CC_Q_ENABLE, CC_Q_NOTIFY_OFF };

	for (uint32_t o = 0; o < CC_LEN + 8; o += 4)
		wr32(d->common + o, 0xffffffffu);
	/* The natural widths too, so the writes are not just ignored. */
	for (unsigned i = 0; i < sizeof(w2); i++)
		wr16(d->common + w2[i], 0xffff);
	for (uint32_t o = CC_Q_DESC; o < CC_LEN; o += 4)
		wr32(d->common + o, 0xffffffffu);
	for (uint32_t o = 0; o < CC_LEN; o++)
		wr8(d->common + o, 0xff);
	wr8(d->common + CC_STATUS, 0xff);
}

static void garbage_notify(struct vdev *d)
{
	uint16_t nq = rd16(d->common + CC_NUM_QUEUES);
	uint32_t mult = d->notify_mult ? d->notify_mult : 4;

	for (uint32_t q = nq; q < 64; q++) {
		wr16(d->notify + q * mult, (uint16_t)q);
		wr32(d->notify + q * mult, 0xffffffffu);
	}
	/* And the rest of the notify area beyond its capability length. */
	for (uint32_t o = d->notify_len; o < d->notify_len + 0x100; o += 2)
		wr16(d->notify + o, 0xffff);
}

static void garbage(struct vdev *d)
{
	uint8_t st;

	garbage_msix(d);
	garbage_msi(d);
	garbage_common(d);
	garbage_notify(d);
	for (uint32_t o = 0; o < 0x100; o += 4)		/* device config, read-only */
		wr32(d->device + o, 0xffffffffu);
	wr8(d->isr, 0xff);
	st = status(d);
	(void)rd8(d->isr);
	guest_printf("VH blk: status after garbage %02x\n", st);
	guest_check("garbage_survived", true, "status %02x", st);
}

/* ---- the parts ---- */

/* The control for the indirect shapes: a good GET_ID through an
 * indirect table works, so their failures are the malformation's. */
static bool blk_indirect_ok(struct vdev *d)
{
	bool ok;

	d->feat_lo = 1u << F_INDIRECT_DESC;
	ok = dev_init(d, MSI_NO_VECTOR);
	if (ok) {
		indirect_chain(d->q[0].desc);
		post(d, 0, 0);
		ok = wait_used(d, 0, 1) && *(volatile uint8_t *)&blk_status == 0 &&
		     blk_id[0] && ((volatile struct vused *)&d->q[0].used)->ring[0].len >= 21;
	}
	guest_check("blk_indirect_get_id", ok, "status %02x used idx %u blk status %u",
		    status(d), used_idx(d, 0), *(volatile uint8_t *)&blk_status);
	d->feat_lo = 0;
	return ok;
}

static void run_blk(struct vdev *d)
{
	uint64_t flood = 0;
	bool ind;

	d->nq = 1;
	d->q = blk_q;
	ind = dev_features(d) & (1u << F_INDIRECT_DESC);
	if (ind)
		ind = blk_indirect_ok(d);
	else
		guest_printf("NOTE blk: no VIRTIO_F_INDIRECT_DESC offered: indirect shapes skipped\n");
	for (int s = 0; s < SH_COUNT; s++)
		if (ind || s < SH_FIRST_IND)
			blk_shape(d, (enum shape)s);
	if (guest_cmdline_u64(guest_cmdline(guest_boot_info()), "flood", &flood) && flood)
		blk_flood(d, flood);
	garbage(d);
}

/* BAR 4 moved where it should not be, reached there, and moved back:
 * onto the NIC's BAR, across the end of the PCI window into the test
 * device at 0xfeb00000, into guest RAM, onto ECAM, and to 0.  Afterwards
 * the disk must still answer.  With `straddle` a dword access also
 * straddles 0xfeb00000 (the BAR's last 2 bytes and the test device's
 * first 2); Tern stops the VM for that one (an MMIO access no single
 * device claims), so it is not in the default run. */
static void garbage_bar_moves(struct vdev *d, const struct vdev *other, bool straddle)
{
	static const uint32_t spots[] = { 0, 0xfeafc000u, 0x00800000u, 0xe0000000u, 0 };
	uint32_t lo = pci_rd(d->slot, PCI_BAR4), hi = pci_rd(d->slot, PCI_BAR4 + 4);
	uint32_t v = 0;
	const char *why;

	for (unsigned i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
		uint32_t a = i ? spots[i] : other->bar;

		if (!i && !a)
			continue;	/* no NIC found */
		pci_wr(d->slot, PCI_BAR4, a | (lo & 0xf));
		pci_wr(d->slot, PCI_BAR4 + 4, 0);
		if (!a || a >= 0xe0100000u) {
			v ^= rd8(a + CC_STATUS);
			v ^= rd32(a + CC_DF);
		}
		if (a == 0xfeafc000u) {
			v ^= rd32(a + 0x3ffc);		/* the BAR's last dword */
			wr32(a + 0x3ffc, 0xffffffffu);
			v ^= rd32(0xfeb00000u);		/* the test device's ID */
			if (straddle) {
				guest_printf("VH blk: straddling 0xfeb00000\n");
				v ^= rd32(a + 0x3ffe);
				wr32(a + 0x3ffe, 0xffffffffu);
			}
		}
	}
	pci_wr(d->slot, PCI_BAR4, lo);
	pci_wr(d->slot, PCI_BAR4 + 4, hi);
	guest_printf("VH blk: BAR moves done (%08x), back at %08x\n", v, pci_rd(d->slot, PCI_BAR4));
	why = blk_get_id(d, MSI_NO_VECTOR);
	guest_check("blk_bar_moved_back_get_id", !why, "%s", why);
}

/* Last of all: all-ones into every dword of the disk's config space
 * (BARs, COMMAND, the capabilities), and a config address no device
 * has.  The host must stay up and the function still answer. */
static void garbage_pci_cfg(struct vdev *d)
{
	uint32_t id;

	for (uint32_t o = 0; o < 0x100; o += 4)
		pci_wr(d->slot, (uint8_t)o, 0xffffffffu);
	outl(PCI_ADDR, 0xffffffffu);
	(void)inl(PCI_DATA);
	outl(PCI_DATA, 0xffffffffu);
	outl(PCI_ADDR, 0x7ffffffcu);	/* enable bit clear */
	outl(PCI_DATA, 0xffffffffu);
	id = pci_rd(d->slot, PCI_VENDOR);
	guest_printf("VH blk: BAR4 after config garbage %08x:%08x\n",
		     pci_rd(d->slot, PCI_BAR4 + 4), pci_rd(d->slot, PCI_BAR4));
	guest_check("garbage_pci_cfg_survived", id == ((uint32_t)DEV_BLK << 16 | VIRTIO_VENDOR),
		    "id %08x", id);
}

static void run_net(struct vdev *d)
{
	struct vq_mem *tx;
	bool fail_seen;
	uint8_t st;

	d->nq = 3;
	d->q = net_q;
	if (!dev_init(d, MSI_NO_VECTOR)) {
		guest_check("net_init", false, "status %02x", status(d));
		return;
	}
	guest_check("net_init", true, " ");
	tx = &d->q[1];
	/* One readable descriptor: net header and frame, outside RAM. */
	set_desc(tx->desc, 0, WILD_ADDR, NET_HDR_LEN + 60, 0, 0);
	post(d, 1, 0);
	fail_seen = wait_status(d, ST_NEEDS_RESET);
	st = status(d);
	guest_check("net_wild_tx_needs_reset", fail_seen, "status %02x", st);
	guest_check("net_wild_tx_used_idle", used_idx(d, 1) == 0, "used idx %u", used_idx(d, 1));
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	struct vdev blk = { .name = "blk", .slot = -1 }, net = { .name = "net", .slot = -1 };
	const char *cmd;
	bool do_blk, do_net, bf, nf;

	guest_init("vhostile", magic, info);
	cmd = guest_cmdline(info);
	do_blk = !guest_cmdline_has(cmd, "only=net");
	do_net = !guest_cmdline_has(cmd, "only=blk");
	bf = find_dev(&blk, DEV_BLK);
	nf = find_dev(&net, DEV_NET);
	guest_check("blk_found", !do_blk || bf, "no virtio-blk function with a reachable BAR 4");
	guest_check("net_found", !do_net || nf, "no virtio-net function with a reachable BAR 4");
	if (do_blk && bf) {
		bool ok = find_caps(&blk);

		guest_check("blk_caps", ok, "common %x notify %x isr %x device %x msix %x",
			    blk.common, blk.notify, blk.isr, blk.device, blk.msix_table);
		guest_printf("VH blk: common %x notify %x (x%u, %u bytes) isr %x device %x msix %x (%u)\n",
			     blk.common, blk.notify, blk.notify_mult, blk.notify_len, blk.isr,
			     blk.device, blk.msix_table, blk.msix_n);
	}
	if (do_net && nf) {
		bool ok = find_caps(&net);

		guest_check("net_caps", ok, "common %x notify %x isr %x device %x msix %x",
			    net.common, net.notify, net.isr, net.device, net.msix_table);
		guest_printf("VH net: common %x notify %x (x%u, %u bytes) isr %x device %x msix %x (%u)\n",
			     net.common, net.notify, net.notify_mult, net.notify_len, net.isr,
			     net.device, net.msix_table, net.msix_n);
	}
	if (do_blk && bf && blk.common) {
		uint64_t f = dev_features(&blk);

		guest_check("blk_version_1", f & (1ull << 32), "features %08x%08x",
			    (uint32_t)(f >> 32), (uint32_t)f);
	}
	if (do_net && nf && net.common) {
		uint64_t f = dev_features(&net);

		guest_check("net_version_1", f & (1ull << 32), "features %08x%08x",
			    (uint32_t)(f >> 32), (uint32_t)f);
	}
	if (do_blk && bf && blk.common && blk.notify)
		run_blk(&blk);
	if (do_net && nf && net.common && net.notify)
		run_net(&net);
	if (do_blk && bf && blk.common) {
		garbage_bar_moves(&blk, &net, guest_cmdline_has(cmd, "straddle"));
		garbage_pci_cfg(&blk);
	}
	guest_done();
}
