/*
 * The receiving side of a migration: one incoming guest at a time.
 *
 * The stream is decoded as it arrives (migrate/stream.h checks every
 * length, index, order rule and checksum).  CONFIG runs the pre-flight
 * here: CPUID identity, free memory and CPU, the guest's image on this
 * host's ESP, a free name.  Then the VM is created, not started, and its
 * pages are written as they come.  After a verified END the destination
 * says READY, and only a COMMIT makes it start the guest.  Whatever goes
 * wrong before COMMIT discards the VM and everything it held.
 *
 * The one incoming slot (dst) is claimed only by an authenticated source:
 * a connection waits in a small pending pool (DST_PENDING_MAX, at most
 * DST_PENDING_PER_ADDR from one address, the oldest evicted for a
 * newcomer, kernel/lib/peer_gate.h) until the TLS handshake proved the key
 * and its HELLO line arrived, within DST_PENDING_US.  A stranger that
 * connects and stays silent never holds the slot (issue #17).  Peers not on
 * `migrate_allow` are dropped at accept, before any TLS work.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "kernel/mgmt/console.h"
#include "kernel/devices/devices.h"
#include "kernel/devices/vdev.h"
#include "kernel/kernel.h"
#include "kernel/lib/config.h"
#include "kernel/lib/peer_gate.h"
#include "kernel/virt/vm.h"
#include "net/stack.h"
#include "migrate/mig_conn.h"
#include "migrate/mig_mac.h"

#define DST_IDLE_US		(15 * 1000000ull)	/* silence before COMMIT */
#define DST_MEM_MARGIN		((uint64_t)8 << 20)		/* page tables, devices */

/*
 * STREAM also covers the pre-flight: the devices' prepare (log in to the
 * guest's LUNs, register this host's key) runs after CONFIG, before
 * ACCEPTED, while the source waits.  After COMMIT, TAKEOVER pre-empts the
 * source's reservations and STARTING waits for every vCPU to run here
 * before RESUMED goes out (the source destroys its copy on RESUMED).
 */
enum dst_phase { DST_IDLE, DST_STREAM, DST_READY, DST_TAKEOVER, DST_STARTING, DST_RUNNING,
		 DST_FAILED };

static const char *const dst_phase_names[] = {
	"idle", "receiving", "ready (waiting for COMMIT)", "taking the guest's disks over",
	"starting", "resumed", "failed",
};

#define DST_START_WARN_US	(10 * 1000000ull)	/* no entry yet: say so */
/*
 * Two hosts' TSC rates, as each calibrated its own at boot, count as the
 * same within 2 %.  The rates compared are measurements: on a loaded
 * 2-core lab box two identical nested hosts calibrated 0.1-0.6 % apart.
 * Hosts whose TSCs really differ are other SKUs, whose brand string the
 * CPUID identity refuses already, or differ by a bus-clock step (100 MHz,
 * 3 % and more at 3 GHz).  Tern does not scale the guest's TSC, so such a
 * difference must be refused.
 */
#define DST_TSC_PPM		20000

#define DST_TOKEN_LEN		32

struct mig_dst {
	enum dst_phase phase;
	struct mig_conn *conn;		/* TLS: control, and the stream when encrypted
					 * (a claimed dst_pend's, else dst_none) */
	struct mig_conn dconn;		/* encrypt=off: the plain data link */
	bool hello, plain, dconn_used;
	uint8_t token[DST_TOKEN_LEN];	/* what the data link must send first */
	uint32_t token_have;
	uint8_t nonce_src[MIG_MAC_NONCE_LEN];	/* from HELLO 2 */
	struct mig_mac mac;		/* encrypt=off: the records' MAC */
	uint8_t *hold;			/* MIG_DATA_MAX: a record until its tag */
	struct mig_dec *dec;
	uint64_t *seen;
	struct vm *vm;
	char name[MIG_NAME_MAX + 1];
	char peer[24];
	char why[MIG_REASON_MAX];
	uint64_t started_us, pages;
	uint64_t t_dec_us;		/* decoding and writing pages */
	uint64_t close_since;
	bool close_pending;
	bool preparing;			/* devices' prepare out; no ACCEPTED yet */
	uint64_t t_commit, t_started;
	bool start_warned;
	struct mig_config *cfg;		/* CONFIG, kept while devices prepare */
};

/* A connection on migrate_port before it claims dst (see the top). */
struct dst_pend {
	bool used, claimed, evicted, done;
	uint32_t addr;
	uint64_t since_us, done_us;
	char peer[24];
	struct mig_conn mc;
};

#define DST_PENDING_MAX		4
#define DST_PENDING_PER_ADDR	2
/* TCP accept to HELLO: a TLS handshake (at most about 0.5 s in the lab's nested TCG,
 * see netcon.c) and one line. */
#define DST_PENDING_US		(4 * 1000000ull)
#define DST_LOG_WINDOW_US	(10 * 1000000ull)
#define DST_LOG_BURST		5

/* + 1 claimed, + 1 evicted and not closed yet (the main loop closes). */
static struct dst_pend dst_pend[DST_PENDING_MAX + 2];
static struct mig_conn dst_none;	/* dst.conn while no source holds dst */
static struct mig_dst dst = { .conn = &dst_none };
static struct cfg_allow dst_allow;
static struct peer_log dst_log = { .window_us = DST_LOG_WINDOW_US, .burst = DST_LOG_BURST };
static struct altcp_pcb *dst_listen;
static uint16_t dst_data_port;		/* 0: no plain data link here */

/* The last migration that got as far as naming its guest, for `migrate
 * status` (a refused stranger does not overwrite it). */
static struct {
	char name[MIG_NAME_MAX + 1];
	char peer[24];
	char why[MIG_REASON_MAX];
	enum dst_phase phase;
	uint64_t pages, t_dec_us;
} dst_last;

#define DST_LINGER_US		(5 * 1000000ull)	/* last line out, then close */

static void dst_discard_vm(void)
{
	if (dst.vm) {
		vm_destroy(dst.vm);
		dst.vm = NULL;
	}
}

/* A refusal before the slot, logged within dst_log's limits. */
#define dst_refuse_log(...)	conn_log_refusal(&dst_log, "migrate", __VA_ARGS__)

/* Main loop: free what a finished attempt holds. */
static void dst_cleanup(void)
{
	mig_conn_close(&dst.dconn, dst.phase == DST_FAILED);
	mig_conn_close(dst.conn, dst.phase == DST_FAILED);
	if (dst.conn != &dst_none)
		((struct dst_pend *)((char *)dst.conn - offsetof(struct dst_pend, mc)))->used =
			false;
	dst.conn = &dst_none;
	free(dst.dec);
	free(dst.seen);
	free(dst.cfg);
	free(dst.hold);
	mig_mac_free(&dst.mac);
	dst.hold = NULL;
	dst.dec = NULL;
	dst.seen = NULL;
	dst.cfg = NULL;
	dst.close_pending = false;
}

static void dst_fail(const char *why)
{
	/* From COMMIT on the guest is this host's: nothing the source or
	 * the link does may discard it. */
	if (dst.phase == DST_IDLE || dst.phase >= DST_TAKEOVER)
		return;
	snprintf(dst.why, sizeof(dst.why), "%s", why);
	if (dst.preparing)
		vdev_cancel(&dst);
	dst.preparing = false;
	if (dst.name[0])
		pr_err("migrate: incoming %s from %s failed: %s; nothing kept", dst.name,
		       dst.peer, why);
	else
		pr_warn("migrate: refused a connection from %s: %s", dst.peer, why);
	if (dst.conn->c.pcb && !conn_failed(&dst.conn->c))
		mig_conn_line(dst.conn, "FAILED %s", why);
	/* A VM that never started is ours to drop; vm_destroy only stops
	 * and frees it, which is safe from lwIP callbacks. */
	dst_discard_vm();
	dst.phase = DST_FAILED;
	dst.close_pending = true;
}

static int dst_refuse(int rc, const char *why);

/* ---- pre-flight, on CONFIG ---- */

static int dst_preflight(const struct mig_config *c, char *why, size_t len)
{
	uint64_t total, used, freeb;
	int rc;

	rc = mig_cpuid_compare(c->cpuid, c->ncpuid, why, len);
	if (rc < 0)
		return rc;
	if (dst.plain && !dst_data_port) {
		snprintf(why, len, "encrypt=off is not available here (no plain data port)");
		return -EPROTONOSUPPORT;
	}
	if (c->tsc_khz) {
		uint64_t mine = tsc_hz() / 1000, d = mine > c->tsc_khz ? mine - c->tsc_khz :
						     c->tsc_khz - mine;

		if (d * 1000000 > (uint64_t)c->tsc_khz * DST_TSC_PPM) {
			snprintf(why, len, "TSC runs at %lu kHz here, %u kHz there, and this "
				 "host does not scale the guest's TSC", mine, c->tsc_khz);
			return -EXDEV;
		}
	}
	if (vm_free_cpus() < (int)c->nvcpus) {
		snprintf(why, len, "%u vCPUs need %u free CPUs, %d free here", c->nvcpus,
			 c->nvcpus, vm_free_cpus());
		return -EBUSY;
	}
	if (vm_find(c->name)) {
		snprintf(why, len, "a VM named %s already exists here", c->name);
		return -EEXIST;
	}
	mm_stats(&total, &used, &freeb);
	if (freeb < c->mem_size + DST_MEM_MARGIN) {
		snprintf(why, len, "not enough memory: the guest needs %lu MiB, %lu MiB free",
			 (c->mem_size + DST_MEM_MARGIN) >> 20, freeb >> 20);
		return -ENOMEM;
	}
	return 0;
}

/*
 * encrypt=off: the rest of the stream comes over a plain TCP link to
 * dst_data_port, which must first send the one-time token given here
 * over TLS, from the TLS peer's address.  Every record on it carries a
 * MAC keyed from this TLS session and both nonces (migrate/stream.h,
 * "Record MACs").  From now on the TLS link carries control lines only.
 */
static int dst_offer_data_link(void)
{
	char hex[2 * DST_TOKEN_LEN + 1], nhex[2 * MIG_MAC_NONCE_LEN + 1];
	uint8_t nonce[MIG_MAC_NONCE_LEN];
	size_t olen, nlen;
	int rc;

	if (tern_entropy_poll(NULL, dst.token, sizeof(dst.token), &olen) < 0 ||
	    tern_entropy_poll(NULL, nonce, sizeof(nonce), &nlen) < 0 ||
	    olen != sizeof(dst.token) || nlen != sizeof(nonce))
		return mig_dec_fail(dst.dec, -EIO, "no random token for the data link");
	dst.hold = malloc(MIG_DATA_MAX);
	if (!dst.hold)
		return dst_refuse(-ENOMEM, "out of memory");
	rc = mig_conn_mac(dst.conn, dst.nonce_src, nonce, &dst.mac);
	if (rc < 0)
		return dst_refuse(rc, "cannot key the data link's MAC");
	/* CONFIG came over TLS; the first record on the data link is next. */
	mig_dec_mac(dst.dec, mig_mac_tag, &dst.mac, dst.hold);
	mig_hex_put(hex, dst.token, sizeof(dst.token));
	mig_hex_put(nhex, nonce, sizeof(nonce));
	dst.conn->c.raw = false;
	mig_conn_line(dst.conn, "ACCEPTED data=%u token=%s nonce=%s", dst_data_port, hex,
		      nhex);
	return 0;
}

static int dst_refuse(int rc, const char *why)
{
	pr_warn("migrate: refused %s from %s: %s", dst.name, dst.peer, why);
	mig_conn_line(dst.conn, "REFUSED %s", why);
	dst_discard_vm();
	dst.phase = DST_FAILED;
	snprintf(dst.why, sizeof(dst.why), "refused: %s", why);
	dst.close_pending = true;
	return mig_dec_fail(dst.dec, rc, "pre-flight: %s", why);
}

/* The devices could be prepared: create the VM (mig_image_create) and
 * accept the stream. */
static int dst_create(const struct mig_config *c)
{
	char why[MIG_REASON_MAX];
	int rc = mig_image_create(c, &dst.vm, why, sizeof(why));

	if (rc < 0)
		return dst_refuse(rc, why);
	pr_info("migrate: accepted %s (%lu MiB, %u vCPUs%s%s) from %s%s", c->name,
		c->mem_size >> 20, c->nvcpus, c->ndevspecs ? ", " : "",
		c->ndevspecs ? "with devices" : "", dst.peer,
		dst.plain ? ", data unencrypted" : "");
	if (!dst.plain) {
		mig_conn_line(dst.conn, "ACCEPTED");
		return 0;
	}
	return dst_offer_data_link();
}

/* The devices' prepare finished (maybe before vdev_prepare_all returned). */
static void dst_prepared(void *ctx, int rc, const char *why)
{
	(void)ctx;
	if (!dst.preparing)
		return;		/* an attempt that failed meanwhile (vdev_cancel) */
	dst.preparing = false;
	if (rc < 0)
		dst_refuse(rc, why && why[0] ? why : cmd_strerror(rc));
	else
		dst_create(dst.cfg);
	dst.conn->c.wake = true;
}

static int dst_on_config(void *ctx, const struct mig_config *c)
{
	const char *specs[MIG_DEVSPECS_MAX];
	char why[MIG_REASON_MAX];
	int rc;

	(void)ctx;
	snprintf(dst.name, sizeof(dst.name), "%s", c->name);
	rc = dst_preflight(c, why, sizeof(why));
	if (rc < 0)
		return dst_refuse(rc, why);
	if (!dst.cfg)
		dst.cfg = malloc(sizeof(*dst.cfg));
	if (!dst.cfg)
		return dst_refuse(-ENOMEM, "out of memory");
	*dst.cfg = *c;
	for (uint32_t i = 0; i < c->ndevspecs; i++)
		specs[i] = c->devspecs[i];
	dst.preparing = true;
	rc = vdev_prepare_all(specs, (int)c->ndevspecs, dst_prepared, &dst, why, sizeof(why));
	if (rc < 0) {
		dst.preparing = false;
		return dst_refuse(rc, why);
	}
	return 0;
}

/* ---- the image ---- */

static int dst_on_page(void *ctx, uint64_t index, const void *data)
{
	int rc = mig_image_page(dst.dec, dst.vm, index, data);

	(void)ctx;
	dst.pages += rc == 0;
	return rc;
}

static int dst_on_vcpu(void *ctx, const struct mig_vcpu *v)
{
	(void)ctx;
	return mig_image_vcpu(dst.dec, dst.vm, v);
}

static int dst_on_device(void *ctx, const struct mig_device *d)
{
	(void)ctx;
	return mig_image_device(dst.dec, dst.vm, d);
}

static const struct mig_dec_ops dst_dec_ops = {
	.config = dst_on_config,
	.page = dst_on_page,
	.vcpu = dst_on_vcpu,
	.device = dst_on_device,
};

/* ---- the connection ---- */

static int dst_on_data(void *owner, const void *p, size_t n)
{
	int rc;

	(void)owner;
	if (dst.phase != DST_STREAM)
		return -EPROTO;
	if (dst.preparing) {
		dst_fail("stream data before ACCEPTED");
		return -EPROTO;
	}
	uint64_t t0 = time_us();
	rc = mig_dec_feed(dst.dec, p, n);
	dst.t_dec_us += time_us() - t0;
	if (rc < 0) {
		if (dst.phase == DST_STREAM)
			dst_fail(dst.dec->reason);
		return rc;
	}
	if (mig_dec_complete(dst.dec)) {
		/* Verified: every page and the vCPU are here.  From now on the
		 * source speaks in lines (COMMIT). */
		dst.phase = DST_READY;
		dst.conn->c.raw = false;
		pr_info("migrate: %s from %s complete and verified (%lu page copies); "
			"waiting for COMMIT", dst.name, dst.peer, dst.pages);
		mig_conn_line(dst.conn, "READY %lu", dst.pages);
	}
	return 0;
}

/*
 * The first line; then the stream follows.  "HELLO 1 data=tls", or "HELLO
 * 2 data=plain nonce=HEX" (encrypt=off with record MACs).  A source that
 * asks for encrypt=off in version 1 predates the MACs: refused by name.
 */
static void dst_on_hello(char *line)
{
	if (!strcmp(line, "HELLO 1 data=tls")) {
		dst.hello = true;
		dst.conn->c.raw = true;
		return;
	}
	if (!strncmp(line, "HELLO 2 data=plain ", 19) &&
	    !mig_hex_field(line, "nonce", dst.nonce_src, sizeof(dst.nonce_src))) {
		dst.hello = dst.plain = true;
		dst.conn->c.raw = true;
		return;
	}
	if (!strcmp(line, "HELLO 1 data=plain")) {
		dst_fail("the source sends encrypt=off without record MACs (an older "
			 "Tern): upgrade it, or migrate with encrypt=on");
		return;
	}
	dst_fail("the source speaks another protocol (no HELLO 1 or 2)");
}

static void dst_start(void)
{
	char why[MIG_REASON_MAX];

	if (mig_state_start(dst.vm, why, sizeof(why)) < 0) {
		pr_err("migrate: %s committed but cannot start here: %s; the source "
		       "keeps it paused", dst.name, why);
		mig_conn_line(dst.conn, "FAILED cannot start: %s", why);
		dst_discard_vm();
		dst.phase = DST_FAILED;
		snprintf(dst.why, sizeof(dst.why), "committed, cannot start: %s", why);
		dst.close_pending = true;
		return;
	}
	dst.phase = DST_STARTING;
	dst.t_started = time_us();
	dst.start_warned = false;
}

static void dst_check_started(void)
{
	struct vm *vm = dst.vm;

	if (vm->state != VM_RUNNING) {
		pr_err("migrate: %s stopped before it ran here (%s); the source keeps it "
		       "paused", dst.name, vm->stop_reason);
		mig_conn_line(dst.conn, "FAILED the guest stopped at start: %s",
			      vm->stop_reason);
		dst.phase = DST_FAILED;
		snprintf(dst.why, sizeof(dst.why), "committed, stopped at start: %s",
			 vm->stop_reason);
		dst.vm = NULL;		/* the operator's to look at, not ours */
		dst.close_pending = true;
		return;
	}
	if (!mig_image_runs(vm)) {
		if (!dst.start_warned && time_us() - dst.t_started > DST_START_WARN_US) {
			dst.start_warned = true;
			pr_warn("migrate: %s: a vCPU has not entered the guest %lu s after "
				"the start; RESUMED waits", dst.name, (uint64_t)(DST_START_WARN_US / 1000000));
		}
		return;
	}
	dst.phase = DST_RUNNING;
	dst.vm = NULL;		/* an ordinary VM from now on */
	mig_conn_line(dst.conn, "RESUMED");
	pr_info("migrate: %s from %s resumed here (%lu ms after the first byte, %lu ms "
		"after COMMIT)", dst.name, dst.peer, (time_us() - dst.started_us) / 1000,
		(time_us() - dst.t_commit) / 1000);
	/* The rings' waiting work, and the NICs' announcements. */
	vdev_resumed_all(vm);
	dst.close_pending = true;
}

/* The devices' takeover finished: a failure is said, not fatal (the
 * source is paused for good and this host is a registrant that can
 * write; only the fence against a misbehaving source is missing). */
static void dst_taken_over(void *ctx, int rc, const char *why)
{
	(void)ctx;
	if (dst.phase != DST_TAKEOVER)
		return;
	if (rc < 0)
		pr_warn("migrate: %s: could not take its disks over from the source (%s): "
			"starting it anyway; fence the source by hand ('disk fence')",
			dst.name, why && why[0] ? why : cmd_strerror(rc));
	else if (time_us() - dst.t_commit > 2000)
		pr_info("migrate: %s: disks taken over in %lu ms", dst.name,
			(time_us() - dst.t_commit) / 1000);
	dst_start();
	dst.conn->c.wake = true;
}

static void dst_on_line(void *owner, char *line)
{
	char why[MIG_REASON_MAX];

	(void)owner;
	if (dst.phase == DST_STREAM && !dst.hello) {
		dst_on_hello(line);
		return;
	}
	if (dst.phase >= DST_TAKEOVER)
		return;		/* after COMMIT the source has nothing to say */
	if (dst.phase != DST_READY || strcmp(line, "COMMIT")) {
		dst_fail("unexpected control line from the source");
		return;
	}
	/* The source is paused for good: the guest's disks become this
	 * host's (its reservations pre-empt the source's), then it runs
	 * here, whatever happens to the connection now. */
	dst.phase = DST_TAKEOVER;
	dst.t_commit = time_us();
	if (vdev_takeover_all(dst.vm, dst_taken_over, &dst, why, sizeof(why)) < 0)
		dst_taken_over(&dst, -EIO, why);
}

static void dst_on_lost(void *owner, const char *why)
{
	(void)owner;
	if (dst.phase == DST_STREAM || dst.phase == DST_READY)
		dst_fail(why);
	dst.close_pending = true;
}

/* The plain data link: the token, then stream bytes. */
static int dst_on_plain_data(void *owner, const void *p, size_t n)
{
	const uint8_t *b = p;

	(void)owner;
	while (dst.token_have < DST_TOKEN_LEN && n) {
		if (*b != dst.token[dst.token_have]) {
			dst_fail("the data link sent a wrong token");
			return -EACCES;
		}
		dst.token_have++;
		b++;
		n--;
	}
	return n ? dst_on_data(NULL, b, n) : 0;
}

static void dst_on_data_lost(void *owner, const char *why)
{
	(void)owner;
	if (dst.phase == DST_STREAM)
		dst_fail(why);
}

static const struct mig_conn_ops dst_dconn_ops = {
	.data = dst_on_plain_data,
	.lost = dst_on_data_lost,
};

/* The data link must come from the address the TLS link came from (a
 * stranger's connection is refused and the offer stays open). */
static bool dst_from_tls_peer(struct altcp_pcb *pcb)
{
	char peer[24];
	size_t n = strcspn(dst.peer, ":");

	conn_peer(pcb, peer, sizeof(peer));
	if (strcspn(peer, ":") == n && !strncmp(peer, dst.peer, n))
		return true;
	pr_warn("migrate: refused a data link from %s: %s came over TLS from %.*s",
		peer, dst.name, (int)n, dst.peer);
	return false;
}

static int dst_data_accept(void *arg, struct altcp_pcb *pcb)
{
	(void)arg;
	if (!cfg_allow_match(&dst_allow, conn_peer_addr(pcb)))
		return -EACCES;
	/* Only the link just offered over TLS, and only once. */
	if (dst.phase != DST_STREAM || !dst.plain || dst.dconn_used || !dst.vm)
		return -EACCES;
	if (!dst_from_tls_peer(pcb))
		return -EACCES;
	dst.dconn_used = true;
	dst.token_have = 0;
	mig_conn_init(&dst.dconn, &dst_dconn_ops, &dst, true);
	dst.dconn.c.raw = true;
	mig_conn_accepted(&dst.dconn, pcb);
	return 0;
}

static const struct mig_conn_ops dst_conn_ops = {
	.data = dst_on_data,
	.line = dst_on_line,
	.lost = dst_on_lost,
};

static void dst_remember(void)
{
	if (!dst.name[0])
		return;
	snprintf(dst_last.name, sizeof(dst_last.name), "%s", dst.name);
	snprintf(dst_last.peer, sizeof(dst_last.peer), "%s", dst.peer);
	snprintf(dst_last.why, sizeof(dst_last.why), "%s", dst.why);
	dst_last.phase = dst.phase;
	dst_last.pages = dst.pages;
	dst_last.t_dec_us = dst.t_dec_us;
}

/* The source proved the key and said HELLO: it takes dst, if free. */
static int dst_claim(struct dst_pend *p)
{
	if ((dst.phase >= DST_STREAM && dst.phase <= DST_STARTING) || dst.close_pending)
		return -EBUSY;
	dst.dec = malloc(sizeof(*dst.dec));
	dst.seen = malloc(mig_bitmap_bytes(MIG_PAGES_MAX >> 8));
	if (!dst.dec || !dst.seen) {
		free(dst.dec);
		free(dst.seen);
		dst.dec = NULL;
		dst.seen = NULL;
		return -ENOMEM;
	}
	dst_remember();
	memset(dst.seen, 0, mig_bitmap_bytes(MIG_PAGES_MAX >> 8));
	mig_dec_init(dst.dec, &dst_dec_ops, &dst, dst.seen, MIG_PAGES_MAX >> 8);
	snprintf(dst.peer, sizeof(dst.peer), "%s", p->peer);
	dst.name[0] = dst.why[0] = '\0';
	dst.vm = NULL;
	dst.pages = 0;
	dst.t_dec_us = 0;
	dst.phase = DST_STREAM;
	dst.started_us = p->since_us;
	dst.hello = dst.plain = dst.dconn_used = false;
	mig_conn_init(&dst.dconn, &dst_dconn_ops, &dst, true);
	/* The link is dst's now: its callbacks go to dst's handlers. */
	p->claimed = true;
	p->mc.ops = &dst_conn_ops;
	p->mc.owner = &dst;
	dst.conn = &p->mc;
	return 0;
}

/* The first line of a pending connection: TLS is up (data came through). */
static void dst_pend_line(void *owner, char *line)
{
	struct dst_pend *p = owner;
	int rc;

	if (strncmp(line, "HELLO ", 6)) {
		rc = -EPROTO;
	} else {
		rc = dst_claim(p);
		if (!rc) {
			dst_on_line(&dst, line);
			return;
		}
	}
	dst_refuse_log("refused a connection from %s: %s", p->peer,
		       rc == -EBUSY ? "another incoming migration is under way" :
		       rc == -ENOMEM ? "out of memory" : "no HELLO line");
	mig_conn_line(&p->mc, "FAILED %s", rc == -EBUSY ?
		      "another incoming migration is under way" : "refused");
	p->done = true;
	p->done_us = time_us();
}

static void dst_pend_lost(void *owner, const char *why)
{
	struct dst_pend *p = owner;

	if (!p->done && !p->evicted)
		dst_refuse_log("refused a connection from %s: %s", p->peer, why);
	p->done = true;
	p->done_us = time_us();
}

static const struct mig_conn_ops dst_pend_ops = {
	.line = dst_pend_line,
	.lost = dst_pend_lost,
};

static bool dst_pend_waiting(const struct dst_pend *p)
{
	return p->used && !p->claimed && !p->done && !p->evicted;
}

/* Room for a connection from addr: the victim is closed by the service. */
static void dst_evict_for(uint32_t addr)
{
	struct peer_pend v[DST_PENDING_MAX + 2];
	struct dst_pend *p;
	int i;

	for (i = 0; i < DST_PENDING_MAX + 2; i++)
		v[i] = (struct peer_pend){ dst_pend_waiting(&dst_pend[i]), dst_pend[i].addr,
					   dst_pend[i].since_us };
	i = peer_pend_victim(v, DST_PENDING_MAX + 2, addr, DST_PENDING_MAX,
			     DST_PENDING_PER_ADDR);
	if (i < 0)
		return;
	p = &dst_pend[i];
	p->evicted = true;
	dst_refuse_log("refused a connection from %s: no HELLO after %lu ms, and a newer "
		       "connection needs its place", p->peer,
		       (time_us() - p->since_us) / 1000);
}

static int dst_accept(void *arg, struct altcp_pcb *pcb)
{
	uint32_t addr = conn_peer_addr(pcb);
	struct dst_pend *p = NULL;
	char peer[24];

	(void)arg;
	conn_peer(pcb, peer, sizeof(peer));
	if (!cfg_allow_match(&dst_allow, addr)) {
		dst_refuse_log("refused a connection from %s: not on migrate_allow", peer);
		return -EACCES;		/* aborted at once: no TLS work */
	}
	dst_evict_for(addr);
	for (int i = 0; i < DST_PENDING_MAX + 2 && !p; i++)
		if (!dst_pend[i].used)
			p = &dst_pend[i];
	if (!p) {
		dst_refuse_log("refused a connection from %s: too many at once", peer);
		return -EBUSY;
	}
	*p = (struct dst_pend){ .used = true, .addr = addr, .since_us = time_us() };
	snprintf(p->peer, sizeof(p->peer), "%s", peer);
	mig_conn_init(&p->mc, &dst_pend_ops, p, false);
	mig_conn_accepted(&p->mc, pcb);
	return 0;
}

/* Main loop: close what failed, was evicted or did not say HELLO in time. */
static void dst_pend_service(void)
{
	uint64_t now = time_us();

	conn_log_flush(&dst_log, "migrate");
	for (int i = 0; i < DST_PENDING_MAX + 2; i++) {
		struct dst_pend *p = &dst_pend[i];

		if (!p->used || p->claimed)
			continue;
		if (dst_pend_waiting(p) && now - p->since_us > DST_PENDING_US) {
			dst_refuse_log("refused a connection from %s: no TLS handshake and "
				       "HELLO within %llu s", p->peer, DST_PENDING_US / 1000000);
			p->evicted = true;
		}
		/* A FAILED line goes out first, if the peer reads it soon. */
		if (p->done && p->mc.c.pcb && conn_tx_queued(&p->mc.c) &&
		    now - p->done_us < DST_LINGER_US)
			continue;
		if (p->done || p->evicted) {
			mig_conn_close(&p->mc, p->evicted || conn_failed(&p->mc.c));
			p->used = false;
		}
	}
}

static bool dst_pend_due(void)
{
	for (int i = 0; i < DST_PENDING_MAX + 2; i++)
		if (dst_pend[i].used && !dst_pend[i].claimed &&
		    (dst_pend[i].evicted || dst_pend[i].done))
			return true;
	return false;
}

int mig_dst_listen(uint16_t port, const struct cfg_allow *allow)
{
	int rc;

	dst_allow = *allow;
	dst_listen = conn_listen(true, port, DST_PENDING_MAX, dst_accept, NULL, &rc);
	if (!dst_listen)
		return rc;
	/* The plain data link of encrypt=off, next to it. */
	if (!conn_listen(false, (uint16_t)(port + 1), 1, dst_data_accept, NULL, &rc)) {
		pr_warn("migrate: no plain data port %u: encrypt=off is refused", port + 1);
		return 0;
	}
	dst_data_port = (uint16_t)(port + 1);
	return 0;
}

bool mig_dst_pending(void)
{
	return dst.close_pending || dst.phase == DST_STARTING || dst_pend_due();
}

void mig_dst_service(void)
{
	dst_pend_service();
	uint64_t last = dst.conn->c.last_rx_us > dst.dconn.c.last_rx_us ? dst.conn->c.last_rx_us
									: dst.dconn.c.last_rx_us;

	if ((dst.phase == DST_STREAM || dst.phase == DST_READY) &&
	    time_us() - last > DST_IDLE_US)
		dst_fail("the source went silent");
	if (dst.phase == DST_STARTING)
		dst_check_started();
	if (!dst.close_pending)
		return;
	if (!dst.close_since)
		dst.close_since = time_us();
	/* Let the last line (READY/RESUMED/REFUSED) go out first, if TLS is
	 * up and the peer reads it within DST_LINGER_US. */
	if (mig_conn_up(dst.conn) && conn_tx_queued(&dst.conn->c) &&
	    time_us() - dst.close_since < DST_LINGER_US)
		return;
	dst_remember();
	dst_cleanup();
	dst.close_since = 0;
}

void mig_dst_status(struct cmd_out *o)
{
	bool now = dst.name[0] && dst.phase != DST_IDLE;

	if (!now && !dst_last.name[0]) {
		cmd_printf(o, "incoming: none yet\n");
		return;
	}
	cmd_printf(o, "incoming: %s from %s: %s%s%s\n", now ? dst.name : dst_last.name,
		   now ? dst.peer : dst_last.peer,
		   dst_phase_names[now ? dst.phase : dst_last.phase],
		   (now ? dst.why : dst_last.why)[0] ? ": " : "", now ? dst.why : dst_last.why);
	cmd_printf(o, "incoming cpu: decode %lu ms, %lu page copies\n",
		   (now ? dst.t_dec_us : dst_last.t_dec_us) / 1000,
		   now ? dst.pages : dst_last.pages);
}

/* ---- for `vm restore` (mig_save.c): the same checks ---- */

int mig_dst_preflight(const struct mig_config *c, char *why, size_t len)
{
	return dst_preflight(c, why, len);
}
