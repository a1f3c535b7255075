/*
 * Quick migration through shared storage: `vm save NAME to=DISK` writes a
 * paused guest's whole state to a LUN, and `vm restore NAME from=DISK`
 * on any host that reaches the LUN starts it again there.
 *
 * The save area (migrate/savearea.h) is a header block and a quick
 * migration stream: the same encoder and records as a network quick
 * migration (stream.h: CONFIG, one FINAL round with every page, every
 * vCPU, the devices, END), so a restore runs the same decoder and the
 * same destination checks and creation path (mig_dst.c) as an incoming
 * migration.  The header goes last, after a FLUSH, and is flushed itself:
 * a save that did not finish leaves no valid header.  A restore marks the
 * header RESTORED (flushed) before the guest starts, so one save starts
 * at most one copy unless the operator says `force`.
 *
 * One save or restore at a time, as a state machine on the boot CPU's main
 * loop ("migsave" service): the disk I/O is asynchronous (storage/blk.h),
 * SAVE_NCHUNK chunks of SAVE_CHUNK bytes in flight, never a busy wait.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/mgmt/console.h"
#include "kernel/devices/devices.h"
#include "kernel/devices/vdev.h"
#include "kernel/kernel.h"
#include "kernel/lib/byteorder.h"
#include "kernel/platform/mainloop.h"
#include "kernel/virt/vm.h"
#include "lwip/netif.h"
#include "lwip/ip4_addr.h"
#include "migrate/migrate.h"
#include "migrate/savearea.h"
#include "storage/blk.h"

#define SAVE_CHUNK		(1u << 20)
#define SAVE_NCHUNK		4		/* 4 MiB in flight */
#define SAVE_TAIL_BYTES		(2u << 20)	/* vCPUs, devices, END */
#define SAVE_DRAIN_US		(12 * 1000000ull)
#define SAVE_START_WARN_US	(10 * 1000000ull)

enum sv_op { OP_NONE, OP_SAVE, OP_RESTORE };

enum sv_phase {
	PH_IDLE,
	/* save */
	PH_DRAIN, PH_WRITE, PH_FLUSH1, PH_HEADER, PH_FLUSH2,
	/* restore */
	PH_READHDR, PH_STREAM, PH_MARK, PH_MARK_FLUSH, PH_TAKEOVER, PH_STARTING,
	PH_DONE, PH_FAILED,
};

static const char *const sv_phase_names[] = {
	"idle", "draining the guest's devices", "writing the stream", "flushing the stream",
	"writing the header", "flushing the header", "reading the header", "reading the stream",
	"marking the save restored", "flushing the mark", "taking the guest's disks over",
	"starting", "done", "failed",
};

enum ch_state { CH_FREE, CH_FILL, CH_IO, CH_READY };

struct sv_chunk {
	struct blk_req req;
	uint8_t *buf;
	uint64_t seq;		/* chunk number in the stream */
	uint32_t len;		/* stream bytes in it */
	uint32_t fed;		/* restore: bytes given to the decoder */
	enum ch_state st;
};

struct mig_save {
	enum sv_op op;
	enum sv_phase phase;
	char name[VM_NAME_MAX];
	char disk[32];
	struct vm *vm;
	struct blk_disk *d;
	uint32_t bs;
	uint64_t nblocks;
	bool force, rename, paused_by_us, quiesced, wake, header_sent;
	/* The stream. */
	struct sv_chunk ch[SAVE_NCHUNK];
	unsigned inflight;		/* requests out (chunks, header, flushes) */
	int io_err;
	uint64_t next_seq;		/* save: next chunk to fill; restore: to read */
	uint64_t feed_seq;		/* restore: next chunk for the decoder */
	uint64_t stream_len;
	/* save */
	struct mig_enc enc;
	uint8_t *encbuf, *tailbuf;
	size_t enccap;
	const uint8_t *pend;
	size_t pend_len;
	uint64_t npages, next_page;
	int stage;			/* 0 pages, 1 tail, 2 last chunk, 3 wait */
	uint64_t pause_tsc;
	/* restore */
	struct mig_dec *dec;
	uint64_t *seen;
	struct mig_config *cfg;
	bool preparing;
	uint64_t pages;
	/* Both. */
	struct blk_req hreq;		/* header reads and writes, flushes */
	uint8_t *hdrbuf;
	struct savearea_hdr hdr;
	uint64_t t_start, t_pause, t_end, bytes;
	bool start_warned;
	uint64_t t_started;
	char why[MIG_REASON_MAX + 64];
};

static struct mig_save sv;
static bool sv_registered;

static void sv_service(void);

static bool sv_pending(void)
{
	bool w = sv.wake;

	sv.wake = false;
	return w || sv.phase == PH_DRAIN || sv.phase == PH_STARTING;
}

static const struct mainloop_service sv_svc = {
	.name = "migsave",
	.service = sv_service,
	.pending = sv_pending,
};

static bool sv_busy(void)
{
	return sv.phase != PH_IDLE && sv.phase != PH_DONE && sv.phase != PH_FAILED;
}

/* Buffers go only once no request can still write into them. */
static void sv_free(void)
{
	if (sv.inflight)
		return;
	for (int i = 0; i < SAVE_NCHUNK; i++) {
		free(sv.ch[i].buf);
		sv.ch[i].buf = NULL;
	}
	free(sv.encbuf);
	free(sv.tailbuf);
	free(sv.hdrbuf);
	free(sv.dec);
	free(sv.seen);
	free(sv.cfg);
	sv.encbuf = sv.tailbuf = sv.hdrbuf = NULL;
	sv.dec = NULL;
	sv.seen = NULL;
	sv.cfg = NULL;
}

static int sv_alloc(void)
{
	for (int i = 0; i < SAVE_NCHUNK; i++) {
		sv.ch[i].buf = malloc(SAVE_CHUNK);
		sv.ch[i].st = CH_FREE;
		if (!sv.ch[i].buf)
			return -ENOMEM;
	}
	sv.hdrbuf = malloc(SAVEAREA_HDR_LEN);
	return sv.hdrbuf ? 0 : -ENOMEM;
}

static const char *sv_host(void)
{
	const char *h = console_hostname();

	return h ? h : "";
}

static void sv_addr(char *buf, size_t len)
{
	buf[0] = '\0';
	if (netif_default && !ip4_addr_isany_val(*netif_ip4_addr(netif_default)))
		snprintf(buf, len, "%s", ip4addr_ntoa(netif_ip4_addr(netif_default)));
}

static void sv_io_done(struct blk_req *r)
{
	struct sv_chunk *c = r->priv;

	sv.inflight--;
	if (r->err < 0 && !sv.io_err)
		sv.io_err = r->err;
	if (c)
		c->st = sv.op == OP_SAVE ? CH_FREE : CH_READY;
	sv.wake = true;
}

static int sv_submit(struct blk_req *r, enum blk_op op, unsigned flags, uint64_t byte_off,
		     void *buf, uint32_t bytes, void *priv)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->op = op;
	r->flags = flags;
	r->lba = byte_off / sv.bs;
	r->count = (bytes + sv.bs - 1) / sv.bs;
	r->buf = buf;
	r->done = sv_io_done;
	r->priv = priv;
	rc = blk_submit(sv.d, r);
	if (!rc)
		sv.inflight++;
	return rc;
}

/* ---- save ---- */

/* Before the header: the guest runs on here, as it was. */
static void sv_save_fail(const char *why)
{
	snprintf(sv.why, sizeof(sv.why), "%s", why);
	if (sv.vm) {
		if (sv.quiesced || sv.phase == PH_DRAIN)
			vdev_unquiesce_all(sv.vm);
		if (sv.paused_by_us && sv.vm->state == VM_PAUSED)
			vm_resume(sv.vm);
		sv.vm->migrating = false;
	}
	sv.phase = PH_FAILED;
	sv.t_end = time_us();
	pr_warn("migrate: vm save %s to %s failed: %s; it keeps running here", sv.name,
		sv.disk, why);
	sv_free();
}

/* The header may be on the disk: never two copies, so the guest stays. */
static void sv_save_fail_late(const char *why)
{
	snprintf(sv.why, sizeof(sv.why), "%s while writing the header: the save on %s may "
		 "be valid, so %s stays paused here (check with 'vm restore' elsewhere, or "
		 "'vm resume' once the save is known bad)", why, sv.disk, sv.name);
	if (sv.vm)
		sv.vm->migrating = false;
	sv.phase = PH_FAILED;
	sv.t_end = time_us();
	pr_err("migrate: vm save %s: %s", sv.name, sv.why);
	sv_free();
}

/* The chunk being filled, or a free one started as the next chunk. */
static struct sv_chunk *sv_fill_chunk(void)
{
	for (int i = 0; i < SAVE_NCHUNK; i++)
		if (sv.ch[i].st == CH_FILL)
			return &sv.ch[i];
	for (int i = 0; i < SAVE_NCHUNK; i++) {
		if (sv.ch[i].st == CH_FREE) {
			sv.ch[i].st = CH_FILL;
			sv.ch[i].seq = sv.next_seq++;
			sv.ch[i].len = 0;
			return &sv.ch[i];
		}
	}
	return NULL;
}

static int sv_write_chunk(struct sv_chunk *c)
{
	uint32_t padded = (c->len + sv.bs - 1) / sv.bs * sv.bs;

	memset(c->buf + c->len, 0, padded - c->len);
	c->st = CH_IO;
	return sv_submit(&c->req, BLK_WRITE, 0, SAVEAREA_STREAM_OFF + c->seq * SAVE_CHUNK,
			 c->buf, padded, c);
}

/* vCPUs, devices and END into the tail buffer, in one go (the guest is
 * paused and its devices quiet). */
static int sv_encode_tail(void)
{
	static struct mig_vcpu v;
	int rc;

	mig_enc_rewind(&sv.enc);
	sv.enc.buf = sv.tailbuf;
	sv.enc.cap = SAVE_TAIL_BYTES;
	for (int i = 0; i < sv.vm->nvcpus; i++) {
		rc = mig_state_capture(sv.vm, i, sv.pause_tsc, &v);
		if (!rc)
			rc = mig_enc_vcpu(&sv.enc, &v);
		if (rc < 0)
			return rc;
	}
	rc = mig_devices_save(sv.vm, sv.pause_tsc, mig_image_emit, &sv.enc);
	if (!rc)
		rc = mig_enc_end(&sv.enc);
	if (rc < 0)
		return rc;
	sv.pend = sv.tailbuf;
	sv.pend_len = sv.enc.len;
	return 0;
}

static int sv_encode_pages(void)
{
	struct mig_page pages[MIG_BATCH_MAX];
	unsigned n = 0;

	mig_enc_rewind(&sv.enc);
	while (n < MIG_BATCH_MAX && sv.next_page < sv.npages) {
		void *h = vm_gpa_to_hva(sv.vm, sv.next_page * PAGE_SIZE, PAGE_SIZE);

		if (!h)
			return -EFAULT;
		pages[n++] = (struct mig_page){ sv.next_page++, h };
	}
	int rc = mig_enc_ram(&sv.enc, pages, n);

	if (rc < 0)
		return rc;
	sv.pend = sv.encbuf;
	sv.pend_len = sv.enc.len;
	return 0;
}

/* Copy what is pending into chunks and produce more, until the chunks
 * are all out; the completions call us again. */
static int sv_pump(void)
{
	int rc;

	for (;;) {
		if (sv.pend_len) {
			struct sv_chunk *c = sv_fill_chunk();
			size_t n;

			if (!c)
				return 0;
			n = SAVE_CHUNK - c->len < sv.pend_len ? SAVE_CHUNK - c->len : sv.pend_len;
			memcpy(c->buf + c->len, sv.pend, n);
			c->len += (uint32_t)n;
			sv.pend += n;
			sv.pend_len -= n;
			sv.stream_len += n;
			if (c->len == SAVE_CHUNK && (rc = sv_write_chunk(c)) < 0)
				return rc;
			continue;
		}
		if (sv.stage == 0 && sv.next_page < sv.npages) {
			rc = sv_encode_pages();
		} else if (sv.stage == 0) {
			sv.stage = 1;
			rc = sv_encode_tail();
		} else if (sv.stage == 1) {
			struct sv_chunk *c = NULL;

			for (int i = 0; i < SAVE_NCHUNK; i++)
				if (sv.ch[i].st == CH_FILL)
					c = &sv.ch[i];
			sv.stage = 2;
			rc = c ? sv_write_chunk(c) : 0;
		} else {
			if (sv.inflight)
				return 0;
			if (sv.stream_len + SAVEAREA_STREAM_OFF > sv.nblocks * sv.bs)
				return -ENOSPC;
			sv.phase = PH_FLUSH1;
			return sv_submit(&sv.hreq, BLK_FLUSH, BLK_F_BARRIER, 0, NULL, 0, NULL);
		}
		if (rc < 0)
			return rc;
	}
}

static void sv_save_header(void)
{
	struct savearea_hdr *h = &sv.hdr;

	memset(h, 0, sizeof(*h));
	h->version = SAVEAREA_VERSION;
	h->state = SAVEAREA_VALID;
	h->stream_off = SAVEAREA_STREAM_OFF;
	h->stream_len = sv.stream_len;
	h->mem_size = sv.vm->mem_size;
	h->nvcpus = (uint32_t)sv.vm->nvcpus;
	h->save_ms = (uint32_t)((time_us() - sv.t_pause) / 1000);
	snprintf(h->name, sizeof(h->name), "%s", sv.name);
	snprintf(h->host, sizeof(h->host), "%s", sv_host());
	sv_addr(h->addr, sizeof(h->addr));
	if (savearea_encode(h, sv.hdrbuf) < 0) {
		sv_save_fail("the header does not encode (a bad host name?)");
		return;
	}
	sv.phase = PH_HEADER;
	sv.header_sent = true;
	if (sv_submit(&sv.hreq, BLK_WRITE, BLK_F_BARRIER | BLK_F_FUA, 0, sv.hdrbuf,
		      SAVEAREA_HDR_LEN, NULL) < 0)
		sv_save_fail_late("cannot submit the header");
}

static void sv_save_done(void)
{
	struct vm *vm = sv.vm;

	sv.t_end = time_us();
	sv.bytes = sv.stream_len + SAVEAREA_HDR_LEN;
	sv.phase = PH_DONE;
	vm->migrating = false;
	vm_stop(vm, "saved to disk");
	vm_destroy(vm);
	sv.vm = NULL;
	pr_info("migrate: %s saved to %s in %lu ms (%lu ms paused before the header), "
		"%lu bytes, %lu MiB of RAM", sv.name, sv.disk, (sv.t_end - sv.t_start) / 1000,
		(uint64_t)sv.hdr.save_ms, sv.bytes, sv.hdr.mem_size >> 20);
	sv_free();
}

static void sv_save_step(void)
{
	int rc;

	if (sv.phase == PH_DRAIN) {
		rc = vdev_quiesce_all(sv.vm);
		if (rc == -EAGAIN) {
			if (time_us() - sv.t_pause > SAVE_DRAIN_US)
				sv_save_fail("the guest's devices did not go quiet within 12 s");
			return;
		}
		if (rc < 0) {
			sv_save_fail(cmd_strerror(rc));
			return;
		}
		sv.quiesced = true;
		sv.phase = PH_WRITE;
	}
	if (sv.io_err) {
		char why[96];

		snprintf(why, sizeof(why), "disk %s: %s", sv.disk, cmd_strerror(sv.io_err));
		if (sv.header_sent)
			sv_save_fail_late(why);
		else
			sv_save_fail(why);
		return;
	}
	if (sv.phase == PH_WRITE) {
		rc = sv_pump();
		if (rc < 0) {
			char why[MIG_REASON_MAX + 48];

			snprintf(why, sizeof(why), rc == -ENOSPC ? "the stream does not fit on %s" :
				 "stream: %s", rc == -ENOSPC ? sv.disk : sv.enc.reason[0] ?
				 sv.enc.reason : cmd_strerror(rc));
			sv_save_fail(why);
		}
		return;
	}
	if (sv.inflight)
		return;
	if (sv.phase == PH_FLUSH1) {
		sv_save_header();
	} else if (sv.phase == PH_HEADER) {
		sv.phase = PH_FLUSH2;
		if (sv_submit(&sv.hreq, BLK_FLUSH, BLK_F_BARRIER, 0, NULL, 0, NULL) < 0)
			sv_save_fail_late("cannot submit the last flush");
	} else if (sv.phase == PH_FLUSH2) {
		sv_save_done();
	}
}

/* A disk this host has attached and no VM holds. */
static int sv_open_disk(const char *name, char *why, size_t len)
{
	sv.d = blk_find(name);
	if (!sv.d) {
		snprintf(why, len, "no disk named '%s' (attach it first)", name);
		return -ENOENT;
	}
	if (blk_holder(sv.d)[0]) {
		snprintf(why, len, "disk %s is held by VM %s", name, blk_holder(sv.d));
		return -EBUSY;
	}
	if (blk_geometry(sv.d, &sv.bs, &sv.nblocks) < 0) {
		snprintf(why, len, "disk %s is not ready", name);
		return -ENODEV;
	}
	if (!sv.bs || SAVEAREA_HDR_LEN % sv.bs || SAVE_CHUNK % sv.bs) {
		snprintf(why, len, "disk %s has %u-byte blocks (a save area needs a divisor "
			 "of 4096)", name, sv.bs);
		return -EINVAL;
	}
	snprintf(sv.disk, sizeof(sv.disk), "%s", name);
	return 0;
}

static void sv_reset(enum sv_op op, const char *name)
{
	sv_free();
	if (sv.inflight)
		return;
	memset(&sv, 0, sizeof(sv));
	sv.op = op;
	snprintf(sv.name, sizeof(sv.name), "%s", name);
	sv.t_start = time_us();
	if (!sv_registered && mainloop_register(&sv_svc) == 0)
		sv_registered = true;
}

static int sv_save_start(struct vm *vm, const char *disk, char *why, size_t len)
{
	static struct mig_config c;
	uint64_t worst;
	int rc;

	if (vm->state != VM_RUNNING && vm->state != VM_PAUSED) {
		snprintf(why, len, "%s is %s: only a running or paused VM is saved", vm->name,
			 vm_state_name(vm->state));
		return -EINVAL;
	}
	if (vm->migrating) {
		snprintf(why, len, "%s is migrating", vm->name);
		return -EBUSY;
	}
	rc = mig_image_movable(vm, why, len);
	if (rc < 0)
		return rc;
	sv_reset(OP_SAVE, vm->name);
	if (sv.inflight) {
		snprintf(why, len, "the last save or restore still has disk requests out");
		return -EBUSY;
	}
	rc = sv_open_disk(disk, why, len);
	if (rc < 0)
		goto fail;
	/* Every page with data: the most the stream can take. */
	sv.npages = vm->mem_size / PAGE_SIZE;
	worst = SAVEAREA_STREAM_OFF + (sv.npages + MIG_BATCH_MAX - 1) / MIG_BATCH_MAX *
		mig_ram_record_max(MIG_BATCH_MAX) + SAVE_TAIL_BYTES + 65536;
	if (worst > sv.nblocks * sv.bs) {
		snprintf(why, len, "disk %s holds %lu MiB; a save of %s may need %lu MiB",
			 disk, sv.nblocks * sv.bs >> 20, vm->name, (worst >> 20) + 1);
		rc = -ENOSPC;
		goto fail;
	}
	sv.vm = vm;
	sv.enccap = mig_ram_record_max(MIG_BATCH_MAX) + 65536;
	sv.encbuf = malloc(sv.enccap);
	sv.tailbuf = malloc(SAVE_TAIL_BYTES);
	rc = sv.encbuf && sv.tailbuf ? sv_alloc() : -ENOMEM;
	if (!rc)
		rc = mig_enc_init(&sv.enc, sv.encbuf, sv.enccap, 0);
	if (!rc) {
		mig_image_config(vm, vm->name, &c);
		rc = mig_enc_config(&sv.enc, &c);
	}
	if (!rc)
		rc = mig_enc_round(&sv.enc, 0, MIG_ROUND_FINAL, sv.npages);
	if (rc < 0) {
		snprintf(why, len, "%s", sv.enc.reason[0] ? sv.enc.reason : cmd_strerror(rc));
		goto fail;
	}
	sv.pend = sv.encbuf;
	sv.pend_len = sv.enc.len;
	if (vm->state == VM_RUNNING) {
		rc = vm_pause(vm);
		if (rc < 0) {
			snprintf(why, len, "cannot pause %s", vm->name);
			goto fail;
		}
		sv.paused_by_us = true;
	}
	vm->migrating = true;
	sv.t_pause = time_us();
	sv.pause_tsc = rdtsc();
	sv.phase = PH_DRAIN;
	pr_info("migrate: saving %s (%lu MiB, %d vCPUs) to %s", vm->name, vm->mem_size >> 20,
		vm->nvcpus, disk);
	return 0;
fail:
	sv.vm = NULL;
	sv.phase = PH_FAILED;
	snprintf(sv.why, sizeof(sv.why), "%s", why);
	sv_free();
	return rc;
}

/* ---- restore ---- */

static void rs_fail(const char *why)
{
	if (sv.phase == PH_FAILED || sv.phase == PH_DONE)
		return;
	snprintf(sv.why, sizeof(sv.why), "%s", why);
	if (sv.preparing)
		vdev_cancel(&sv);
	sv.preparing = false;
	if (sv.vm) {
		vm_destroy(sv.vm);
		sv.vm = NULL;
	}
	sv.phase = PH_FAILED;
	sv.t_end = time_us();
	pr_err("migrate: vm restore %s from %s failed: %s; nothing kept", sv.name, sv.disk, why);
	/* May run inside a decoder callback: the service frees the buffers. */
	sv.wake = true;
}

/* The devices' prepare ended: create the VM and read on. */
static void rs_prepared(void *ctx, int rc, const char *why)
{
	char w[MIG_REASON_MAX];

	(void)ctx;
	if (!sv.preparing)
		return;		/* an attempt that ended meanwhile */
	sv.preparing = false;
	sv.wake = true;
	if (rc < 0) {
		rs_fail(why && why[0] ? why : cmd_strerror(rc));
		return;
	}
	rc = mig_image_create(sv.cfg, &sv.vm, w, sizeof(w));
	if (rc < 0)
		rs_fail(w);
}

static int rs_on_config(void *ctx, const struct mig_config *c)
{
	const char *specs[MIG_DEVSPECS_MAX];
	char why[MIG_REASON_MAX];
	size_t dl = strlen(sv.disk);
	int rc;

	(void)ctx;
	if (strcmp(c->name, sv.hdr.name))
		return mig_dec_fail(sv.dec, -EBADMSG, "the stream holds %s, the header says %s",
				    c->name, sv.hdr.name);
	*sv.cfg = *c;
	snprintf(sv.cfg->name, sizeof(sv.cfg->name), "%s", sv.name);
	for (uint32_t i = 0; i < c->ndevspecs; i++) {
		specs[i] = c->devspecs[i];
		if (!strncmp(c->devspecs[i], "disk=", 5) && !strncmp(c->devspecs[i] + 5, sv.disk, dl) &&
		    (c->devspecs[i][5 + dl] == '\0' || c->devspecs[i][5 + dl] == ':'))
			return mig_dec_fail(sv.dec, -EINVAL, "the save disk %s is one of the "
					    "guest's own disks", sv.disk);
	}
	rc = mig_dst_preflight(sv.cfg, why, sizeof(why));
	if (rc < 0)
		return mig_dec_fail(sv.dec, rc, "pre-flight: %s", why);
	sv.preparing = true;
	rc = vdev_prepare_all(specs, (int)c->ndevspecs, rs_prepared, &sv,
			      why, sizeof(why));
	if (rc < 0) {
		sv.preparing = false;
		return mig_dec_fail(sv.dec, rc, "devices: %s", why);
	}
	return 0;
}

static int rs_on_page(void *ctx, uint64_t index, const void *data)
{
	int rc = mig_image_page(sv.dec, sv.vm, index, data);

	(void)ctx;
	sv.pages += rc == 0;
	return rc;
}

static int rs_on_vcpu(void *ctx, const struct mig_vcpu *v)
{
	(void)ctx;
	return mig_image_vcpu(sv.dec, sv.vm, v);
}

static int rs_on_device(void *ctx, const struct mig_device *d)
{
	(void)ctx;
	return mig_image_device(sv.dec, sv.vm, d);
}

static const struct mig_dec_ops rs_dec_ops = {
	.config = rs_on_config,
	.page = rs_on_page,
	.vcpu = rs_on_vcpu,
	.device = rs_on_device,
};

/* Reads out for the next chunks, in order, as chunks come free. */
static int rs_read_ahead(void)
{
	uint64_t nchunks = (sv.stream_len + SAVE_CHUNK - 1) / SAVE_CHUNK;

	for (int i = 0; i < SAVE_NCHUNK && sv.next_seq < nchunks; i++) {
		struct sv_chunk *c = &sv.ch[i];
		uint64_t left = sv.stream_len - sv.next_seq * SAVE_CHUNK;
		int rc;

		if (c->st != CH_FREE)
			continue;
		c->seq = sv.next_seq++;
		c->len = left < SAVE_CHUNK ? (uint32_t)left : SAVE_CHUNK;
		c->fed = 0;
		c->st = CH_IO;
		rc = sv_submit(&c->req, BLK_READ, 0, SAVEAREA_STREAM_OFF + c->seq * SAVE_CHUNK,
			       c->buf, c->len, c);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Feed the chunks that are here, in order.  The stream header and CONFIG
 * go alone: CONFIG starts the devices' prepare, and the pages need the VM
 * it creates. */
static int rs_feed(void)
{
	for (;;) {
		struct sv_chunk *c = NULL;
		uint32_t n;
		int rc;

		if (sv.preparing || sv.phase != PH_STREAM)
			return 0;
		for (int i = 0; i < SAVE_NCHUNK; i++)
			if (sv.ch[i].st == CH_READY && sv.ch[i].seq == sv.feed_seq)
				c = &sv.ch[i];
		if (!c)
			return 0;
		n = c->len - c->fed;
		if (c->seq == 0 && c->fed == 0 && c->len >= MIG_HDR_LEN + MIG_REC_HDR_LEN) {
			uint64_t cfg_end = MIG_HDR_LEN + MIG_REC_HDR_LEN +
					   (uint64_t)ld_le32(c->buf + MIG_HDR_LEN + 4);

			if (cfg_end < n)
				n = (uint32_t)cfg_end;
		}
		rc = mig_dec_feed(sv.dec, c->buf + c->fed, n);
		if (rc < 0)
			return rc;
		c->fed += n;
		if (c->fed == c->len) {
			c->st = CH_FREE;
			sv.feed_seq++;
		}
		if (sv.feed_seq * SAVE_CHUNK >= sv.stream_len)
			return mig_dec_finish(sv.dec) < 0 ? -ENODATA : 1;
		rc = rs_read_ahead();
		if (rc < 0)
			return rc;
	}
}

static void rs_taken_over(void *ctx, int rc, const char *why)
{
	char w[MIG_REASON_MAX];

	(void)ctx;
	if (sv.phase != PH_TAKEOVER)
		return;
	sv.wake = true;
	if (rc < 0)
		pr_warn("migrate: %s: could not take its disks over (%s): starting it anyway; "
			"fence the saving host by hand ('disk fence')", sv.name,
			why && why[0] ? why : cmd_strerror(rc));
	if (mig_state_start(sv.vm, w, sizeof(w)) < 0) {
		snprintf(sv.why, sizeof(sv.why), "cannot start: %s (the save is marked restored: "
			 "'force' to try again)", w);
		vm_destroy(sv.vm);
		sv.vm = NULL;
		sv.phase = PH_FAILED;
		pr_err("migrate: vm restore %s: %s", sv.name, sv.why);
		sv_free();
		return;
	}
	sv.phase = PH_STARTING;
	sv.t_started = time_us();
}

static void rs_mark(void)
{
	char why[MIG_REASON_MAX];

	sv.hdr.state = SAVEAREA_RESTORED;
	snprintf(sv.hdr.restored_by, sizeof(sv.hdr.restored_by), "%s", sv_host());
	if (!sv.hdr.restored_by[0])
		snprintf(sv.hdr.restored_by, sizeof(sv.hdr.restored_by), "?");
	if (savearea_encode(&sv.hdr, sv.hdrbuf) < 0) {
		rs_fail("the restored mark does not encode");
		return;
	}
	sv.phase = PH_MARK;
	if (sv_submit(&sv.hreq, BLK_WRITE, BLK_F_BARRIER | BLK_F_FUA, 0, sv.hdrbuf,
		      SAVEAREA_HDR_LEN, NULL) < 0) {
		snprintf(why, sizeof(why), "cannot write the header of %s", sv.disk);
		rs_fail(why);
	}
}

static void rs_check_header(bool force, bool any)
{
	char why[MIG_REASON_MAX];
	int rc = savearea_decode(sv.hdrbuf, SAVEAREA_HDR_LEN, &sv.hdr, why, sizeof(why));
	char msg[MIG_REASON_MAX + 64];

	if (rc < 0) {
		snprintf(msg, sizeof(msg), "disk %s: %s", sv.disk, why);
		rs_fail(msg);
		return;
	}
	if (strcmp(sv.hdr.name, sv.name) && !any) {
		snprintf(msg, sizeof(msg), "the save on %s is of VM %s, not %s ('any' restores "
			 "it as %s)", sv.disk, sv.hdr.name, sv.name, sv.name);
		rs_fail(msg);
		return;
	}
	if (sv.hdr.state == SAVEAREA_RESTORED && !force) {
		snprintf(msg, sizeof(msg), "the save of %s on %s was restored already by %s "
			 "('force' to restore it again)", sv.hdr.name, sv.disk,
			 sv.hdr.restored_by);
		rs_fail(msg);
		return;
	}
	if (SAVEAREA_STREAM_OFF + sv.hdr.stream_len > sv.nblocks * sv.bs) {
		snprintf(msg, sizeof(msg), "the header's stream (%lu bytes) runs past the end "
			 "of %s", sv.hdr.stream_len, sv.disk);
		rs_fail(msg);
		return;
	}
	sv.stream_len = sv.hdr.stream_len;
	sv.dec = malloc(sizeof(*sv.dec));
	sv.seen = calloc(1, mig_bitmap_bytes(MIG_PAGES_MAX >> 8));
	sv.cfg = malloc(sizeof(*sv.cfg));
	if (!sv.dec || !sv.seen || !sv.cfg) {
		rs_fail("out of memory");
		return;
	}
	mig_dec_init(sv.dec, &rs_dec_ops, NULL, sv.seen, MIG_PAGES_MAX >> 8);
	sv.phase = PH_STREAM;
	sv.t_pause = time_us();
	if (rs_read_ahead() < 0)
		rs_fail("cannot read the save disk");
}

static void rs_step(void)
{
	int rc;

	if (sv.io_err && sv.phase != PH_STARTING && sv.phase != PH_TAKEOVER) {
		char why[96];

		snprintf(why, sizeof(why), "disk %s: %s", sv.disk, cmd_strerror(sv.io_err));
		rs_fail(why);
		return;
	}
	if (sv.phase == PH_READHDR) {
		if (!sv.inflight)
			rs_check_header(sv.force, sv.rename);
	} else if (sv.phase == PH_STREAM) {
		rc = rs_feed();
		if (rc < 0) {
			rs_fail(sv.dec->reason[0] ? sv.dec->reason : cmd_strerror(rc));
		} else if (rc > 0) {
			pr_info("migrate: %s read back from %s and verified (%lu pages)", sv.name,
				sv.disk, sv.pages);
			rs_mark();
		}
	} else if (sv.phase == PH_MARK && !sv.inflight) {
		sv.phase = PH_MARK_FLUSH;
		if (sv_submit(&sv.hreq, BLK_FLUSH, BLK_F_BARRIER, 0, NULL, 0, NULL) < 0)
			rs_fail("cannot flush the header");
	} else if (sv.phase == PH_MARK_FLUSH && !sv.inflight) {
		char why[MIG_REASON_MAX];

		/* The save is ours: the guest's disks become this host's, then
		 * it runs here (its TSC goes on from the pause). */
		sv.phase = PH_TAKEOVER;
		if (vdev_takeover_all(sv.vm, rs_taken_over, &sv, why, sizeof(why)) < 0)
			rs_taken_over(&sv, -EIO, why);
	} else if (sv.phase == PH_STARTING) {
		struct vm *vm = sv.vm;

		if (vm->state != VM_RUNNING) {
			snprintf(sv.why, sizeof(sv.why), "stopped at start: %s", vm->stop_reason);
			sv.vm = NULL;
			sv.phase = PH_FAILED;
			pr_err("migrate: vm restore %s: %s", sv.name, sv.why);
			sv_free();
			return;
		}
		if (!mig_image_runs(sv.vm)) {
			if (!sv.start_warned && time_us() - sv.t_started > SAVE_START_WARN_US) {
				sv.start_warned = true;
				pr_warn("migrate: %s: a vCPU has not entered the guest 10 s after "
					"the start", sv.name);
			}
			return;
		}
		sv.phase = PH_DONE;
		sv.vm = NULL;
		sv.t_end = time_us();
		sv.bytes = sv.stream_len + SAVEAREA_HDR_LEN;
		vdev_resumed_all(vm);
		pr_info("migrate: %s restored from %s in %lu ms, %lu bytes, %lu MiB of RAM "
			"(saved by %s)", sv.name, sv.disk, (sv.t_end - sv.t_start) / 1000, sv.bytes,
			sv.hdr.mem_size >> 20, sv.hdr.host[0] ? sv.hdr.host : "?");
		sv_free();
	}
}

static int rs_start(const char *name, const char *disk, bool force, bool any, char *why,
		    size_t len)
{
	int rc;

	if (vm_find(name)) {
		snprintf(why, len, "a VM named %s exists here", name);
		return -EEXIST;
	}
	if (strlen(name) > MIG_NAME_MAX) {
		snprintf(why, len, "name %s is too long", name);
		return -EINVAL;
	}
	sv_reset(OP_RESTORE, name);
	if (sv.inflight) {
		snprintf(why, len, "the last save or restore still has disk requests out");
		return -EBUSY;
	}
	sv.force = force;
	sv.rename = any;
	rc = sv_open_disk(disk, why, len);
	if (!rc)
		rc = sv_alloc();
	if (!rc) {
		sv.phase = PH_READHDR;
		rc = sv_submit(&sv.hreq, BLK_READ, 0, 0, sv.hdrbuf, SAVEAREA_HDR_LEN, NULL);
		if (rc < 0)
			snprintf(why, len, "cannot read disk %s", disk);
	} else if (rc == -ENOMEM) {
		snprintf(why, len, "out of memory");
	}
	if (rc < 0) {
		sv.phase = PH_FAILED;
		snprintf(sv.why, sizeof(sv.why), "%s", why);
		sv_free();
		return rc;
	}
	pr_info("migrate: restoring %s from %s", name, disk);
	return 0;
}

/* ---- the main loop and the operator ---- */

static void sv_service(void)
{
	if (sv.phase == PH_DONE || sv.phase == PH_FAILED || sv.phase == PH_IDLE) {
		sv_free();
		return;
	}
	if (sv.op == OP_SAVE) {
		if (sv.vm->state != VM_RUNNING && sv.vm->state != VM_PAUSED) {
			sv_save_fail("the guest stopped during the save");
			return;
		}
		sv_save_step();
	} else {
		rs_step();
	}
}

static void sv_status(struct cmd_out *o)
{
	uint64_t now = sv.phase == PH_DONE || sv.phase == PH_FAILED ? sv.t_end : time_us();

	if (sv.op == OP_NONE) {
		cmd_printf(o, "save/restore: none yet\n");
		return;
	}
	cmd_printf(o, "%s: %s %s %s: %s%s%s\n", sv.op == OP_SAVE ? "save" : "restore", sv.name,
		   sv.op == OP_SAVE ? "to" : "from", sv.disk, sv_phase_names[sv.phase],
		   sv.why[0] ? ": " : "", sv.why);
	if (sv.phase == PH_DONE)
		cmd_printf(o, "report: %s in %lu ms, %lu bytes, %lu MiB of RAM, %u vCPUs%s%s\n",
			   sv.op == OP_SAVE ? "saved" : "restored", (now - sv.t_start) / 1000,
			   sv.bytes, sv.hdr.mem_size >> 20, sv.hdr.nvcpus,
			   sv.op == OP_RESTORE ? ", saved by " : "",
			   sv.op == OP_RESTORE ? sv.hdr.host : "");
	else
		cmd_printf(o, "progress: %lu of %lu stream bytes, %lu ms\n",
			   sv.op == OP_SAVE ? sv.stream_len : sv.feed_seq * SAVE_CHUNK,
			   sv.op == OP_SAVE ? sv.npages * PAGE_SIZE : sv.stream_len,
			   (now - sv.t_start) / 1000);
}

int mig_cmd_save(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct vm *vm;
	const char *disk = NULL;
	char why[160];
	int rc;

	(void)ctx;
	if (argc == 1 && !strcmp(argv[0], "status")) {
		sv_status(o);
		return 0;
	}
	for (int i = 1; i < argc; i++)
		if (!cmd_parse_kv(argv[i], "to", &disk) || !disk[0]) {
			cmd_printf(o, "error: vm save: bad option '%s' (to=DISK)\n", argv[i]);
			return -EINVAL;
		}
	if (!disk) {
		cmd_printf(o, "error: vm save: which disk? (to=DISK)\n");
		return -EINVAL;
	}
	vm = vm_find(argv[0]);
	if (!vm) {
		cmd_printf(o, "error: vm save: no VM named '%s'\n", argv[0]);
		return -ENOENT;
	}
	if (sv_busy()) {
		cmd_printf(o, "error: vm save: a %s of %s is under way (one at a time)\n",
			   sv.op == OP_SAVE ? "save" : "restore", sv.name);
		return -EBUSY;
	}
	rc = sv_save_start(vm, disk, why, sizeof(why));
	if (rc < 0) {
		cmd_printf(o, "error: vm save: %s\n", why);
		return rc;
	}
	cmd_printf(o, "saving %s to %s; 'vm save status' shows progress and the result\n",
		   vm->name, disk);
	return 0;
}

int mig_cmd_restore(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	const char *disk = NULL;
	bool force = false, any = false;
	char why[160];
	int rc;

	(void)ctx;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "force"))
			force = true;
		else if (!strcmp(argv[i], "any"))
			any = true;
		else if (!cmd_parse_kv(argv[i], "from", &disk) || !disk[0]) {
			cmd_printf(o, "error: vm restore: bad option '%s' (from=DISK force any)\n",
				   argv[i]);
			return -EINVAL;
		}
	}
	if (!disk) {
		cmd_printf(o, "error: vm restore: which disk? (from=DISK)\n");
		return -EINVAL;
	}
	if (sv_busy()) {
		cmd_printf(o, "error: vm restore: a %s of %s is under way (one at a time)\n",
			   sv.op == OP_SAVE ? "save" : "restore", sv.name);
		return -EBUSY;
	}
	rc = rs_start(argv[0], disk, force, any, why, sizeof(why));
	if (rc < 0) {
		cmd_printf(o, "error: vm restore: %s\n", why);
		return rc;
	}
	cmd_printf(o, "restoring %s from %s; 'vm save status' shows progress and the result\n",
		   argv[0], disk);
	return 0;
}
