/*
 * The sending side of a migration (one at a time), as a state machine on
 * the boot CPU's main loop:
 *
 *   CONNECT    TLS to the destination's migrate_port (the key must match)
 *   PREFLIGHT  stream header + CONFIG (with this host's CPUID identity);
 *              the destination checks and answers ACCEPTED or REFUSED
 *   PRECOPY    live: dirty logging on, round 0 sends every page, each next
 *              round the pages dirtied meanwhile, until the rest fits the
 *              downtime target at the measured bandwidth; if the dirty set
 *              does not shrink, the vCPU is throttled step by step
 *   STOPCOPY   pause, last harvest, FINAL round, vCPU and devices, END
 *              (quick migration starts here, with every page)
 *   WAIT_READY the destination verifies the whole image
 *   COMMIT     COMMIT sent: no way back; on RESUMED the local copy goes
 *
 * Before COMMIT every failure, cancel or timeout stops dirty logging,
 * lifts the throttle and resumes the guest here.  After it the guest stays
 * paused here whatever happens (migrate.h).
 *
 * Pages are copied into a bounce buffer before they are summed and sent:
 * a running guest may write a page between its checksum and its copy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/mgmt/console.h"
#include "kernel/devices/devices.h"
#include "kernel/devices/vdev.h"
#include "kernel/kernel.h"
#include "kernel/virt/vm.h"
#include "kernel/lib/bitops.h"
#include "migrate/downtime.h"
#include "migrate/mig_conn.h"
#include "migrate/mig_mac.h"
#include "net/stack.h"

#define SRC_BUF_PAGES		MIG_BATCH_MAX
#define SRC_TAIL_BYTES		(1u << 20)	/* every device record */
/* Auto-converge steps, in thousandths of the guest's time held back. */
#define SRC_STEPS		9
static const uint32_t src_throttle_steps[SRC_STEPS] = {
	0, 300, 500, 700, 850, 950, 990, 998, 999,
};
/* At the last step, rounds that still do not shrink before the copy
 * stops anyway (and the downtime goes over the target). */
#define SRC_STUCK_ROUNDS	2

enum src_phase { SRC_IDLE, SRC_CONNECT, SRC_PREFLIGHT, SRC_PRECOPY, SRC_STOPCOPY,
		 SRC_WAIT_READY, SRC_COMMIT, SRC_DONE, SRC_FAILED, SRC_CANCELLED };

static const char *const src_phase_names[] = {
	"idle", "connecting", "pre-flight", "pre-copy", "stop-and-copy",
	"verifying", "committed", "done", "failed", "cancelled",
};

struct mig_src {
	enum src_phase phase;
	struct mig_params p;
	struct vm *vm;
	char name[VM_NAME_MAX];
	char addr[24];
	struct mig_conn conn;		/* TLS: control, and the stream when encrypted */
	struct mig_conn dconn;		/* encrypt=off: the plain data link */
	struct mig_conn *out;		/* where the stream goes now */
	bool out_ready;			/* out is up (and sent its token) */
	uint8_t token[32];
	uint8_t nonce[MIG_MAC_NONCE_LEN];	/* ours, for the data link's key */
	struct mig_mac mac;		/* encrypt=off: the records' MAC */
	struct mig_enc enc;
	uint8_t *buf;			/* encoder output */
	uint8_t *bounce;		/* SRC_BUF_PAGES page copies */
	size_t cap;
	size_t handed;			/* buf[0..handed) is with the connection */
	uint64_t npages;
	uint64_t *todo;			/* pages left in the current round */
	uint64_t *dirty;		/* harvest scratch */
	uint64_t cursor, round_left;
	uint32_t round;
	bool final, tail_sent, paused_by_us, dirty_on;
	bool draining, quiesced;	/* devices: stopping, stopped */
	uint64_t t_drain;
	uint64_t pause_tsc;		/* host TSC at the pause: the guest's clock stops */
	/* The tail (vCPUs, devices), captured at once after the last
	 * harvest and encoded record by record as buffer space allows. */
	struct src_tail_rec {
		char name[MIG_NAME_MAX + 1];
		uint32_t version, off, len;
	} *tail_recs;
	uint8_t *tail_buf;
	uint32_t tail_n, tail_used, tail_next, vcpu_next;
	int step;			/* index into src_throttle_steps */
	int stuck;			/* rounds at the last step, not shrinking */
	/* Measurements (µs, bytes, pages). */
	uint64_t t_start, t_pause, t_commit, t_round;
	uint64_t round_bytes0, bw_bps, dirty_bps, last_dirty, est_down_ms;
	uint64_t downtime_ms, total_ms;
	/* The estimate's parts (migrate/downtime.h) and what the stop cost. */
	uint32_t est_fixed_ms;
	bool est_measured;		/* est_fixed_ms from this link, not the prior */
	uint64_t est_pages_ms, final_pages;
	uint64_t t_final_open, t_tail_start, t_tail_sent, t_ready;
	uint32_t fixed_ms;		/* measured at RESUMED */
	bool converged;			/* pre-copy stopped because the rest fit */
	uint64_t round_pages[MIG_ROUNDS_KEPT];
	uint64_t tb_t0, tb_sent0;	/* bandwidth cap window */
	uint64_t t_fill_us;		/* reading and encoding pages */
	uint64_t dlost_us;		/* the data link closed; waiting for why */
	char dlost_why[128];
	char why[160];
};

/*
 * A destination that refuses the data link's stream (a record MAC that
 * does not match, say) says why over TLS and drops the data link; the
 * drop may come first.  Its reason is worth this long a wait.
 */
#define SRC_DLOST_GRACE_US	(3 * 1000000ull)

static struct mig_src src;
/* The stop's fixed cost per destination, kept across migrations. */
static struct mig_dt_table src_dt;

static uint64_t src_bytes(void)
{
	return src.conn.c.bytes_out + src.dconn.c.bytes_out;
}

static void src_free_buffers(void)
{
	free(src.tail_recs);
	free(src.tail_buf);
	src.tail_recs = NULL;
	src.tail_buf = NULL;
	free(src.buf);
	free(src.bounce);
	free(src.todo);
	free(src.dirty);
	src.buf = src.bounce = NULL;
	src.todo = src.dirty = NULL;
	mig_mac_free(&src.mac);
}

static void src_throttle(uint32_t pm)
{
	if (src.vm)
		for (int i = 0; i < src.vm->nvcpus; i++)
			src.vm->vcpus[i].throttle_pm = pm;
}

static void src_unthrottle(void)
{
	src_throttle(0);
}

/* Before COMMIT: put everything back as it was and say why. */
static void src_fail(const char *why, bool cancelled)
{
	if (src.phase == SRC_IDLE || src.phase >= SRC_DONE)
		return;
	if (src.phase == SRC_COMMIT) {
		snprintf(src.why, sizeof(src.why), "after COMMIT: %s; %s stays paused here "
			 "(the destination may be running it: check there before "
			 "'vm resume')", why, src.name);
		pr_err("migrate: %s", src.why);
		src.phase = SRC_FAILED;
		src.vm->migrating = false;
		return;
	}
	snprintf(src.why, sizeof(src.why), "%s", why);
	src_unthrottle();
	if (src.dirty_on) {
		dirty_stop(src.vm);
		src.dirty_on = false;
	}
	if (src.draining || src.quiesced)
		vdev_unquiesce_all(src.vm);
	src.draining = src.quiesced = false;
	if (src.paused_by_us && src.vm->state == VM_PAUSED)
		vm_resume(src.vm);
	src.vm->migrating = false;
	src.phase = cancelled ? SRC_CANCELLED : SRC_FAILED;
	src.total_ms = (time_us() - src.t_start) / 1000;
	pr_warn("migrate: %s to %s %s: %s; it keeps running here", src.name, src.addr,
		cancelled ? "cancelled" : "failed", why);
}

/* ---- rounds ---- */

static uint64_t src_count(const uint64_t *bits)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < (src.npages + 63) / 64; w++)
		n += (uint64_t)bit_popcount64(bits[w]);
	return n;
}

static int src_open_round(uint32_t flags)
{
	uint64_t n = src_count(src.todo);
	int rc;

	rc = mig_enc_round(&src.enc, src.round, flags, n);
	if (rc < 0)
		return rc;
	src.final = flags & MIG_ROUND_FINAL;
	src.cursor = 0;
	src.round_left = n;
	src.t_round = time_us();
	src.round_bytes0 = src.enc.bytes;
	if (src.round < MIG_ROUNDS_KEPT)
		src.round_pages[src.round] = n;
	return 0;
}

/*
 * Pause, then let the devices drain: a disk request in flight completes
 * into guest memory (and the dirty log) before the last harvest, so the
 * destination gets its data and its used-ring entry, and no request is
 * left for anyone to redo.  A disk that stays stuck longer than the
 * destination waits for a silent source (15 s) fails the migration, and
 * the guest runs on here.
 */
#define SRC_DRAIN_US		(12 * 1000000ull)

static int src_stop_and_copy(void)
{
	int rc;

	if (src.vm->state == VM_RUNNING) {
		rc = vm_pause(src.vm);
		if (rc < 0)
			return rc;
		src.paused_by_us = true;
	}
	src.t_pause = src.t_drain = time_us();
	src.pause_tsc = rdtsc();
	src.draining = true;
	src.phase = SRC_STOPCOPY;
	return 0;
}

/* Devices quiet: the last harvest and the FINAL round. */
static int src_final_round(void)
{
	int rc;

	if (src.dirty_on) {
		if (dirty_harvest(src.vm, src.dirty) < 0)
			return -EIO;
		for (uint64_t w = 0; w < (src.npages + 63) / 64; w++)
			src.todo[w] |= src.dirty[w];
	}
	rc = src_open_round(MIG_ROUND_FINAL);
	src.final_pages = src.round_left;
	src.t_final_open = time_us();
	return rc;
}

/* 0 with src.draining still set: not yet (asked again from the loop). */
static int src_drain_step(void)
{
	int rc = vdev_quiesce_all(src.vm);

	if (rc == -EAGAIN) {
		if (time_us() - src.t_drain > SRC_DRAIN_US) {
			snprintf(src.enc.reason, sizeof(src.enc.reason), "the guest's devices "
				 "did not go quiet within %llu s (a disk request still out?)",
				 SRC_DRAIN_US / 1000000);
			return -ETIMEDOUT;
		}
		return 0;
	}
	if (rc < 0)
		return rc;
	src.draining = false;
	src.quiesced = true;
	if (time_us() - src.t_drain > 2000)
		pr_info("migrate: %s: devices drained in %lu ms", src.name,
			(time_us() - src.t_drain) / 1000);
	return src_final_round();
}

/* The tail's size before it exists: each vCPU's record (registers and
 * the XSAVE area) and each device's, generously. */
static uint64_t src_tail_guess(void)
{
	return (uint64_t)src.vm->nvcpus * (VCPU_FPU_AREA + 2048) +
	       (uint64_t)(src.vm->ndevs + 8) * 4096;
}

/* The stop if it came now, with d pages dirty: the fixed part this link
 * has cost before (or the prior) plus the pages at the measured rate. */
static void src_estimate(uint64_t d)
{
	src.est_pages_ms = mig_dt_pages_ms(d, src.bw_bps);
	src.est_fixed_ms = mig_dt_fixed(&src_dt, src.addr, src_tail_guess(), src.bw_bps,
					&src.est_measured);
	src.est_down_ms = src.est_fixed_ms + src.est_pages_ms;
}

/* A pre-copy round is out: harvest and choose the next step. */
static int src_round_done(void)
{
	uint64_t now = time_us(), dt = now - src.t_round + 1;
	uint64_t rb = src.enc.bytes - src.round_bytes0;
	bool shrinking;
	long d;

	if (rb > (1u << 20) || !src.bw_bps)
		src.bw_bps = rb * 1000000 / dt;
	d = dirty_harvest(src.vm, src.dirty);
	if (d < 0)
		return -EIO;
	memcpy(src.todo, src.dirty, (src.npages + 63) / 64 * 8);
	src.dirty_bps = (uint64_t)d * PAGE_SIZE * 1000000 / dt;
	src_estimate((uint64_t)d);
	src.round++;
	shrinking = (uint64_t)d * 10 <= src.last_dirty * 9;
	src.last_dirty = (uint64_t)d;
	src.converged = mig_dt_fits(src.est_fixed_ms, src.est_pages_ms, src.p.downtime_ms);
	if (src.converged || src.round >= MIG_MAX_ROUNDS)
		return src_stop_and_copy();
	if (src.round < 2 || shrinking)
		return src_open_round(0);
	/* Not converging: hold the vCPU back a step more (auto-converge). */
	if (src.step < SRC_STEPS - 1) {
		src.step++;
		src_throttle(src_throttle_steps[src.step]);
		pr_info("migrate: %s: dirty set not shrinking (%ld pages), throttle %u.%u%%",
			src.name, d, src_throttle_steps[src.step] / 10,
			src_throttle_steps[src.step] % 10);
	} else if (++src.stuck >= SRC_STUCK_ROUNDS) {
		pr_warn("migrate: %s dirties memory faster than the link moves it even "
			"at the last throttle step: stopping to copy the rest", src.name);
		return src_stop_and_copy();
	}
	return src_open_round(0);
}

/* Every device record, captured at once into the tail buffer. */
static int src_capture_device(void *ctx, const char *name, uint32_t version,
			      const void *blob, uint32_t len)
{
	struct src_tail_rec *r;

	(void)ctx;
	if (src.tail_n == MIG_DEVICES_MAX || len > SRC_TAIL_BYTES - src.tail_used) {
		snprintf(src.enc.reason, sizeof(src.enc.reason), "device state over %u records "
			 "or %u bytes", MIG_DEVICES_MAX, SRC_TAIL_BYTES);
		return -E2BIG;
	}
	r = &src.tail_recs[src.tail_n++];
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->version = version;
	r->off = src.tail_used;
	r->len = len;
	memcpy(src.tail_buf + src.tail_used, blob, len);
	src.tail_used += len;
	return 0;
}

/*
 * vCPUs, devices, END: the last bytes of the stream, one record per call
 * as the buffer allows (-ENOSPC leaves nothing half-written: the caller
 * sends and comes back).  The vCPUs are read from the parked vCPUs as
 * they go; the device records were taken together when the tail began.
 */
static int src_tail(void)
{
	static struct mig_vcpu v;
	int rc;

	if (!src.tail_recs) {
		src.t_tail_start = time_us();
		src.tail_recs = calloc(MIG_DEVICES_MAX, sizeof(*src.tail_recs));
		src.tail_buf = malloc(SRC_TAIL_BYTES);
		if (!src.tail_recs || !src.tail_buf)
			return -ENOMEM;
		src.tail_n = src.tail_used = src.tail_next = src.vcpu_next = 0;
		rc = mig_devices_save(src.vm, src.pause_tsc, src_capture_device, NULL);
		if (rc < 0)
			return rc;
	}
	while (src.vcpu_next < (uint32_t)src.vm->nvcpus) {
		rc = mig_state_capture(src.vm, (int)src.vcpu_next, src.pause_tsc, &v);
		if (!rc)
			rc = mig_enc_vcpu(&src.enc, &v);
		if (rc < 0)
			goto out;
		src.vcpu_next++;
	}
	while (src.tail_next < src.tail_n) {
		const struct src_tail_rec *r = &src.tail_recs[src.tail_next];

		rc = mig_image_emit(&src.enc, r->name, r->version, src.tail_buf + r->off,
				    r->len);
		if (rc < 0)
			goto out;
		src.tail_next++;
	}
	rc = mig_enc_end(&src.enc);
	if (!rc) {
		src.tail_sent = true;
		src.t_tail_sent = time_us();
	}
out:
	/* Full: what is in the buffer goes first, then the next record. */
	if (rc == -ENOSPC) {
		src.enc.reason[0] = '\0';
		return 0;
	}
	return rc;
}

/* Up to one record of pages from the round into the encoder. */
static int src_fill_pages(void)
{
	struct mig_page pages[SRC_BUF_PAGES];
	unsigned n = 0;

	while (n < SRC_BUF_PAGES && src.round_left) {
		uint64_t w = src.cursor / 64, bits = src.todo[w] >> (src.cursor % 64);

		if (!bits) {
			src.cursor = (w + 1) * 64;
			continue;
		}
		src.cursor += (uint64_t)__builtin_ctzll(bits);
		src.todo[src.cursor / 64] &= ~(1ull << (src.cursor % 64));
		uint8_t *copy = src.bounce + (size_t)n * PAGE_SIZE;

		if (vm_read_gpa(src.vm, src.cursor * PAGE_SIZE, copy, PAGE_SIZE) < 0)
			return -EFAULT;
		pages[n++] = (struct mig_page){ src.cursor, copy };
		src.cursor++;
		src.round_left--;
	}
	return n ? mig_enc_ram(&src.enc, pages, n) : 0;
}

/* Fill the encoder buffer with the next records; 0 with e.len == 0 when
 * there is nothing more to send now. */
static int src_fill(void)
{
	int rc = 0;

	while (!rc && !src.tail_sent &&
	       src.enc.cap - src.enc.len >= mig_ram_record_max(SRC_BUF_PAGES)) {
		if (src.draining) {
			rc = src_drain_step();
			if (src.draining)
				break;
		} else if (src.round_left)
			rc = src_fill_pages();
		else if (src.final)
			rc = src_tail();
		else
			rc = src_round_done();
	}
	return rc;
}

/* Within the bandwidth cap? (bytes since the window start) */
static bool src_rate_ok(void)
{
	uint64_t now = time_us(), allowed;

	if (!src.p.bandwidth_mbs)
		return true;
	if (now - src.tb_t0 > 1000000) {
		src.tb_t0 = now;
		src.tb_sent0 = src_bytes();
	}
	allowed = (uint64_t)src.p.bandwidth_mbs * 1000000 * (now - src.tb_t0 + 1) / 1000000;
	return src_bytes() - src.tb_sent0 < allowed + (64u << 10);
}

/* Hand the encoder's buffer to the connection. */
static void src_send_buffer(void)
{
	src.handed = src.enc.len;
	mig_conn_bulk(src.out, src.buf, src.enc.len);
}

/*
 * The connection took buf[0..handed): start the buffer over, keeping any
 * record appended since (a ROUND opened from a callback, say).
 */
static void src_rewind(void)
{
	size_t tail = src.enc.len - src.handed;

	memmove(src.buf, src.buf + src.handed, tail);
	mig_enc_rewind(&src.enc);
	src.enc.len = tail;
	src.handed = 0;
}

static void src_produce(void)
{
	int rc;

	while (src.out_ready && mig_conn_bulk_done(src.out) && src_rate_ok()) {
		if (src.tail_sent) {
			src.phase = SRC_WAIT_READY;
			return;
		}
		src_rewind();
		uint64_t tf = time_us();
		rc = src_fill();
		src.t_fill_us += time_us() - tf;
		if (rc < 0) {
			char why[MIG_REASON_MAX + 32];

			snprintf(why, sizeof(why), "stream: %s", src.enc.reason[0] ?
				 src.enc.reason : cmd_strerror(rc));
			src_fail(why, false);
			return;
		}
		if (!src.enc.len)
			return;
		src_send_buffer();
	}
}

/* ---- the connection ---- */

static int src_send_config(void)
{
	static struct mig_config c;

	mig_image_config(src.vm, src.p.as_name[0] ? src.p.as_name : src.vm->name, &c);
	return mig_enc_config(&src.enc, &c);
}

/*
 * "HELLO 1 data=tls", or "HELLO 2 data=plain nonce=HEX": version 2 is
 * encrypt=off with record MACs, so a destination that predates them
 * refuses it by its first line instead of taking an unauthenticated link.
 */
static int src_hello(void)
{
	char hex[2 * MIG_MAC_NONCE_LEN + 1];
	size_t olen;

	if (!src.p.plain)
		return mig_conn_line(&src.conn, "HELLO 1 data=tls");
	if (tern_entropy_poll(NULL, src.nonce, sizeof(src.nonce), &olen) < 0 ||
	    olen != sizeof(src.nonce))
		return -EIO;
	mig_hex_put(hex, src.nonce, sizeof(src.nonce));
	return mig_conn_line(&src.conn, "HELLO 2 data=plain nonce=%s", hex);
}

static void src_on_connected(void *owner)
{
	(void)owner;
	if (src.phase != SRC_CONNECT)
		return;
	src.phase = SRC_PREFLIGHT;
	if (src_hello() < 0) {
		src_fail("no random nonce for the data link", false);
		return;
	}
	if (src_send_config() < 0) {
		src_fail(src.enc.reason, false);
		return;
	}
	src_send_buffer();
}

/* encrypt=off: the plain data link is up; the token goes first. */
static void src_on_data_connected(void *owner)
{
	(void)owner;
	mig_conn_bulk(&src.dconn, src.token, sizeof(src.token));
	src.out_ready = true;
	src.conn.c.wake = true;
}

static void src_on_data_lost(void *owner, const char *why)
{
	char msg[128];

	(void)owner;
	/* READY said END arrived: the data link has done its work, and its
	 * close (the destination's clean-up, racing RESUMED) is no failure. */
	if (src.phase == SRC_COMMIT)
		return;
	snprintf(msg, sizeof(msg), "data link: %s", why);
	if (src.phase < SRC_COMMIT && mig_conn_up(&src.conn)) {
		if (!src.dlost_us) {
			snprintf(src.dlost_why, sizeof(src.dlost_why), "%s", msg);
			src.dlost_us = time_us();
		}
		return;
	}
	src_fail(msg, false);
}

static const struct mig_conn_ops src_dconn_ops = {
	.connected = src_on_data_connected,
	.lost = src_on_data_lost,
};

/*
 * "ACCEPTED data=PORT token=HEX nonce=HEX": key the record MACs from the
 * TLS session and both nonces, then open the plain data link.
 */
static int src_open_data_link(const char *line)
{
	uint8_t theirs[MIG_MAC_NONCE_LEN];
	unsigned port;
	int rc;

	if (sscanf(line, "ACCEPTED data=%u", &port) != 1 || port < 1 || port > 65535 ||
	    mig_hex_field(line, "token", src.token, sizeof(src.token)) ||
	    mig_hex_field(line, "nonce", theirs, sizeof(theirs)))
		return -EPROTO;
	rc = mig_conn_mac(&src.conn, src.nonce, theirs, &src.mac);
	if (rc < 0)
		return rc;
	/* CONFIG went over TLS; every record from here on carries a tag. */
	mig_enc_mac(&src.enc, mig_mac_tag, &src.mac);
	mig_conn_init(&src.dconn, &src_dconn_ops, &src, true);
	rc = mig_conn_connect(&src.dconn, src.addr, (uint16_t)port);
	if (rc < 0)
		return rc;
	src.out = &src.dconn;
	src.out_ready = false;
	return 0;
}

static void src_accepted(void)
{
	int rc = 0;

	if (src.p.mode == MIG_QUICK) {
		rc = src_stop_and_copy();
	} else {
		rc = dirty_start(src.vm, dirty_best_mode());
		if (!rc) {
			src.dirty_on = true;
			src.phase = SRC_PRECOPY;
			rc = src_open_round(0);
		}
	}
	if (rc < 0)
		src_fail(src.enc.reason[0] ? src.enc.reason : cmd_strerror(rc), false);
}

static void src_on_line(void *owner, char *line)
{
	(void)owner;
	if (src.phase == SRC_PREFLIGHT && !strcmp(line, "ACCEPTED") && !src.p.plain) {
		src_accepted();
	} else if (src.phase == SRC_PREFLIGHT && !strncmp(line, "ACCEPTED data=", 14) &&
		   src.p.plain) {
		if (src_open_data_link(line) < 0) {
			src_fail("cannot open the plain data link", false);
			return;
		}
		src_accepted();
	} else if (!strncmp(line, "REFUSED ", 8) || !strncmp(line, "FAILED ", 7)) {
		char why[MIG_LINE_MAX + 32];

		snprintf(why, sizeof(why), "the destination %s", line[0] == 'R' ?
			 "refused: " : "failed: ");
		strncat(why, strchr(line, ' ') + 1, sizeof(why) - strlen(why) - 1);
		src_fail(why, false);
	} else if ((src.phase == SRC_WAIT_READY || (src.phase == SRC_STOPCOPY && src.tail_sent)) &&
		   !strncmp(line, "READY ", 6)) {
		/* READY may overtake our own "all sent" bookkeeping: the
		 * destination checked END, so every byte of ours arrived (seen
		 * over loopback, where the answer comes within one poll). */
		/* The point of no return: from here the guest never runs here. */
		src.phase = SRC_COMMIT;
		src.vm->committed_away = true;
		src.t_commit = src.t_ready = time_us();
		mig_conn_line(&src.conn, "COMMIT");
	} else if (src.phase == SRC_COMMIT && !strcmp(line, "RESUMED")) {
		uint64_t now = time_us();

		/* Pause to RESUMED's arrival: an upper bound on the downtime,
		 * high by RESUMED's one-way flight. */
		src.downtime_ms = (now - src.t_pause) / 1000;
		src.total_ms = (now - src.t_start) / 1000;
		/* The fixed part: the downtime less the time the final pages
		 * took to go out (measured, not estimated), from stops that
		 * came because the rest fit: a quick or forced one is mostly
		 * pages and says little about the rest. */
		if (src.converged)
			src.fixed_ms = mig_dt_record(&src_dt, src.addr, src.downtime_ms,
						     (src.t_tail_start - src.t_final_open) / 1000);
		src.phase = SRC_DONE;
		src.vm->migrating = false;
		vm_stop(src.vm, "migrated away");
		vm_destroy(src.vm);
		src.vm = NULL;
		pr_info("migrate: %s moved to %s in %lu ms, downtime %lu ms, %lu rounds, "
			"%lu bytes", src.name, src.addr, src.total_ms, src.downtime_ms,
			(uint64_t)src.round + 1, src_bytes());
	} else {
		char why[96];
		size_t i;

		/* Name the line (printable bytes only) so a log tells what came. */
		snprintf(why, sizeof(why), "unexpected line from the destination in %s: '%.40s'",
			 src_phase_names[src.phase], line);
		for (i = 0; why[i]; i++)
			if ((unsigned char)why[i] < 0x20 || (unsigned char)why[i] > 0x7e)
				why[i] = '?';
		src_fail(why, false);
	}
}

static void src_on_lost(void *owner, const char *why)
{
	(void)owner;
	src_fail(why, false);
}

static const struct mig_conn_ops src_conn_ops = {
	.connected = src_on_connected,
	.line = src_on_line,
	.lost = src_on_lost,
};

/* ---- the operator's side ---- */

static int src_alloc(void)
{
	size_t words = (src.npages + 63) / 64;

	src.cap = mig_ram_record_max(SRC_BUF_PAGES) * 2;
	src.buf = malloc(src.cap);
	src.bounce = malloc((size_t)SRC_BUF_PAGES * PAGE_SIZE);
	src.todo = malloc(words * 8);
	src.dirty = calloc(words, 8);
	if (!src.buf || !src.bounce || !src.todo || !src.dirty)
		return -ENOMEM;
	memset(src.todo, 0xff, words * 8);
	if (src.npages % 64)
		src.todo[words - 1] = (1ull << (src.npages % 64)) - 1;
	return 0;
}

int mig_src_start(struct vm *vm, const char *addr, uint16_t port,
		  const struct mig_params *p, char *why, size_t len)
{
	int rc;

	if (src.phase > SRC_IDLE && src.phase < SRC_DONE) {
		snprintf(why, len, "%s is migrating already (one at a time)", src.name);
		return -EBUSY;
	}
	if (vm->state != VM_RUNNING && vm->state != VM_PAUSED) {
		snprintf(why, len, "%s is %s: only a running or paused VM migrates",
			 vm->name, vm_state_name(vm->state));
		return -EINVAL;
	}
	/* What the stream cannot say is refused before anything moves. */
	rc = mig_image_movable(vm, why, len);
	if (rc < 0)
		return rc;
	src_free_buffers();
	memset(&src, 0, sizeof(src));
	src.vm = vm;
	src.p = *p;
	src.npages = vm->mem_size / PAGE_SIZE;
	snprintf(src.name, sizeof(src.name), "%s", vm->name);
	snprintf(src.addr, sizeof(src.addr), "%s", addr);
	rc = src_alloc();
	if (!rc)
		rc = mig_enc_init(&src.enc, src.buf, src.cap,
				  p->mode == MIG_LIVE ? MIG_F_LIVE : 0);
	if (rc < 0) {
		snprintf(why, len, "out of memory");
		src_free_buffers();
		return rc;
	}
	mig_conn_init(&src.conn, &src_conn_ops, &src, false);
	mig_conn_init(&src.dconn, &src_dconn_ops, &src, true);
	src.out = &src.conn;
	src.out_ready = true;
	src.t_start = src.tb_t0 = time_us();
	src.phase = SRC_CONNECT;
	vm->migrating = true;
	rc = mig_conn_connect(&src.conn, addr, port);
	if (rc < 0) {
		vm->migrating = false;
		src.phase = SRC_FAILED;
		snprintf(why, len, rc == -ENOENT ? "no secret in tern.cfg: migration "
			 "needs the pre-shared key" : rc == -EINVAL ? "bad address '%s'" :
			 "cannot connect to %s", addr);
		snprintf(src.why, sizeof(src.why), "%s", why);
		return rc;
	}
	pr_info("migrate: %s to %s:%u (%s) started", vm->name, addr, port,
		p->mode == MIG_LIVE ? "live" : "quick");
	return 0;
}

int mig_src_cancel(char *why, size_t len)
{
	if (src.phase == SRC_IDLE || src.phase >= SRC_DONE) {
		snprintf(why, len, "no migration in progress");
		return -ENOENT;
	}
	if (src.phase == SRC_COMMIT) {
		snprintf(why, len, "too late: %s is committed to %s", src.name, src.addr);
		return -EBUSY;
	}
	src_fail("cancelled by the operator", true);
	return 0;
}

bool mig_src_pending(void)
{
	bool w = src.conn.c.wake || src.dconn.c.wake;

	src.conn.c.wake = src.dconn.c.wake = false;
	if (src.phase == SRC_FAILED || src.phase == SRC_CANCELLED || src.phase == SRC_DONE)
		return src.conn.c.pcb || src.dconn.c.pcb;
	/* Draining devices: ask them again on every pass of the loop. */
	return (w || src.draining) && (src.phase == SRC_PRECOPY || src.phase == SRC_STOPCOPY);
}

/*
 * Nothing went out and nothing came in for SRC_STALL_US: a cut link or a
 * dead destination (TCP alone would retry for minutes).  While the
 * bandwidth cap holds the sender back, silence is expected.
 */
#define SRC_STALL_US	(10 * 1000000ull)

static bool mig_src_stalled(void)
{
	uint64_t now = time_us(), last = src.conn.c.last_rx_us;

	if (src.conn.c.last_tx_us > last)
		last = src.conn.c.last_tx_us;
	if (src.dconn.c.last_tx_us > last)
		last = src.dconn.c.last_tx_us;
	if ((mig_conn_bulk_done(src.out) && !src_rate_ok()) || src.draining)
		return false;
	return now > last && now - last > SRC_STALL_US;
}

void mig_src_service(void)
{
	if (src.phase == SRC_IDLE)
		return;
	if (src.phase >= SRC_DONE) {
		mig_conn_close(&src.dconn, src.phase != SRC_DONE);
		if (src.conn.c.pcb && !conn_tx_queued(&src.conn.c))
			mig_conn_close(&src.conn, src.phase != SRC_DONE);
		if (!src.conn.c.pcb && src.buf)
			src_free_buffers();
		return;
	}
	if (src.vm->state != VM_RUNNING && src.vm->state != VM_PAUSED) {
		src_fail("the guest stopped during the migration", false);
		return;
	}
	if (src.phase != SRC_COMMIT && time_us() - src.t_start > src.p.timeout_s * 1000000ull) {
		src_fail("timed out", false);
		return;
	}
	if (src.phase != SRC_COMMIT && mig_src_stalled()) {
		src_fail(src.phase == SRC_CONNECT ? "no connection within 10 s (host down or "
			 "unreachable?)" : "the link stalled (nothing moved for 10 s)", false);
		return;
	}
	if (src.dlost_us) {
		/* Nothing more to send; the destination's FAILED line, if it
		 * comes, fails the migration with its reason first. */
		if (time_us() - src.dlost_us > SRC_DLOST_GRACE_US)
			src_fail(src.dlost_why, false);
		return;
	}
	if (src.phase == SRC_COMMIT && time_us() - src.t_commit > 30000000ull) {
		src_fail("no RESUMED from the destination within 30 s", false);
		return;
	}
	if (src.phase == SRC_PRECOPY || src.phase == SRC_STOPCOPY)
		src_produce();
}

/* What the stop cost against what was expected, and where it went:
 * pause to the last byte handed over (drain, final pages, records),
 * then the destination's check (READY), then COMMIT to RESUMED. */
static void src_print_stop(struct cmd_out *o)
{
	if (src.p.mode != MIG_LIVE || !src.t_tail_sent || !src.t_ready)
		return;
	cmd_printf(o, "downtime: measured %lu ms, estimated %lu ms (fixed %u %s + "
		   "%lu ms of dirty pages, target %u); fixed part measured %u ms\n",
		   src.downtime_ms, src.est_down_ms, src.est_fixed_ms,
		   src.est_measured ? "measured" : "prior", src.est_pages_ms,
		   src.p.downtime_ms, src.fixed_ms);
	cmd_printf(o, "stop: drain %lu ms, %lu final pages %lu ms, records %lu ms, then "
		   "%lu ms to READY and %lu ms to RESUMED\n",
		   (src.t_final_open - src.t_pause) / 1000, src.final_pages,
		   (src.t_tail_start - src.t_final_open) / 1000,
		   (src.t_tail_sent - src.t_tail_start) / 1000,
		   (src.t_ready - src.t_tail_sent) / 1000,
		   src.downtime_ms - (src.t_ready - src.t_pause) / 1000);
}

static void src_print_rounds(struct cmd_out *o)
{
	uint32_t n = src.round + 1 < MIG_ROUNDS_KEPT ? src.round + 1 : MIG_ROUNDS_KEPT;

	cmd_printf(o, "pages per round:");
	for (uint32_t i = 0; i < n; i++)
		cmd_printf(o, " %lu", src.round_pages[i]);
	cmd_printf(o, "%s\n", src.round + 1 > MIG_ROUNDS_KEPT ? " ..." : "");
}

void mig_src_status(struct cmd_out *o)
{
	uint64_t now = time_us();

	if (src.phase == SRC_IDLE) {
		cmd_printf(o, "outgoing: none\n");
		return;
	}
	cmd_printf(o, "outgoing: %s to %s, %s%s: %s%s%s%s\n", src.name, src.addr,
		   src.p.mode == MIG_LIVE ? "live" : "quick",
		   src.p.plain ? " unencrypted" : "", src_phase_names[src.phase],
		   src.draining ? " (the guest's devices are draining)" : "",
		   src.why[0] ? ": " : "", src.why);
	if (src.phase == SRC_DONE) {
		cmd_printf(o, "report: total %lu ms, downtime %lu ms, %lu bytes sent, "
			   "%u rounds, throttle %u.%u%%\n", src.total_ms, src.downtime_ms,
			   src_bytes(), src.round + 1, src_throttle_steps[src.step] / 10,
			   src_throttle_steps[src.step] % 10);
		src_print_rounds(o);
		src_print_stop(o);
		return;
	}
	if (src.phase >= SRC_DONE) {
		cmd_printf(o, "report: gave up after %lu ms, %lu bytes sent\n", src.total_ms,
			   src_bytes());
		return;
	}
	cmd_printf(o, "progress: round %u, %lu of %lu pages sent%s\n", src.round,
		   src.round < MIG_ROUNDS_KEPT ? src.round_pages[src.round] - src.round_left : 0,
		   src.round < MIG_ROUNDS_KEPT ? src.round_pages[src.round] : 0,
		   src.final ? " (final)" : "");
	/* Until a round ends, the rate so far in this one. */
	uint64_t bw = src.bw_bps;

	if (!bw && src.t_round && now > src.t_round)
		bw = (src.enc.bytes - src.round_bytes0) * 1000000 / (now - src.t_round);
	cmd_printf(o, "sent: %lu bytes in %lu ms; bandwidth %lu KB/s, dirty rate %lu KB/s, "
		   "estimated downtime %lu ms (target %u)\n", src_bytes(),
		   (now - src.t_start) / 1000, bw / 1000, src.dirty_bps / 1000,
		   src.est_down_ms, src.p.downtime_ms);
	if (src.bw_bps)
		cmd_printf(o, "estimate: fixed %u ms (%s) + dirty pages %lu ms\n",
			   src.est_fixed_ms, src.est_measured ? "measured on this link" :
			   "prior: no migration to this host yet", src.est_pages_ms);
	cmd_printf(o, "throttle: %u.%u%%\n", src_throttle_steps[src.step] / 10,
		   src_throttle_steps[src.step] % 10);
	cmd_printf(o, "cpu: encode %lu ms, send %lu ms\n", src.t_fill_us / 1000,
		   (src.conn.c.t_push_us + src.dconn.c.t_push_us) / 1000);
}
