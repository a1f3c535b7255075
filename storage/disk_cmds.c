/*
 * The `disk` console commands.  They block their console, as `ping` does,
 * and wait in mainloop_wait() (disk_wait), which keeps the network, the
 * disks, migrations and the other consoles running; every wait has a bound.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/kernel.h"
#include "kernel/mgmt/console.h"
#include "kernel/lib/cmd.h"
#include "kernel/platform/mainloop.h"
#include "net/stack.h"
#include "storage/disk.h"
#include "storage/disk_cmds.h"
#include "storage/storage.h"

#define ATTACH_US	(30 * 1000000ull)
#define CTL_US		(30 * 1000000ull)

/* Keep every service running until pred(arg) or the timeout. */
bool disk_wait(disk_wait_pred pred, void *arg, uint64_t timeout_us)
{
	return mainloop_wait(pred, arg, time_us() + timeout_us);
}

static bool ctl_done_pred(void *arg)
{
	return ((struct blk_disk *)arg)->ctl_done;
}

static bool attach_pred(void *arg)
{
	struct blk_disk *d = arg;

	return d->state == DISK_READY || d->state == DISK_FAILED || d->state == DISK_LOST;
}

int disk_busy_refuse(struct cmd_out *o, const char *cmd)
{
	if (!net_stack_busy())
		return 0;
	cmd_printf(o, "error: %s: not from inside the network stack\n", cmd);
	return -EBUSY;
}

struct blk_disk *disk_find_or_say(struct cmd_out *o, const char *cmd, const char *name)
{
	struct blk_disk *d = blk_find(name);

	if (!d)
		cmd_printf(o, "error: %s: no disk '%s' (see disk list)\n", cmd, name);
	return d;
}

static void size_text(char *buf, size_t cap, uint64_t bytes)
{
	if (bytes >= (1ull << 30))
		snprintf(buf, cap, "%llu.%llu GiB", (unsigned long long)(bytes >> 30),
			 (unsigned long long)((bytes >> 20) & 1023) * 10 / 1024);
	else
		snprintf(buf, cap, "%llu MiB", (unsigned long long)(bytes >> 20));
}

/* ---- attach, detach ---- */

static void detach_now(struct blk_disk *d);

int disk_cmd_attach(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct disk_spec spec;
	struct blk_disk *d;
	const char *why = NULL;
	char url[300], size[32];
	int rc;

	(void)ctx;
	if (disk_busy_refuse(o, "disk attach"))
		return -EBUSY;
	if (disk_spec_parse(argc, argv, &spec, &why) < 0) {
		cmd_printf(o, "error: disk attach: %s\n", why);
		return -EINVAL;
	}
	rc = disk_attach(&spec, false, &d);
	if (rc < 0) {
		cmd_printf(o, "error: disk attach: %s\n", rc == -EEXIST ? "that name is taken" :
			   rc == -ENOSPC ? "8 disks are attached already" : cmd_strerror(rc));
		return rc;
	}
	disk_spec_url(&spec, url, sizeof(url));
	console_progress(ctx, "login", 0, 1);
	if (!disk_wait(attach_pred, d, ATTACH_US))
		disk_set_why(d, -ETIMEDOUT, "no answer in %llu s", ATTACH_US / 1000000);
	if (d->state != DISK_READY) {
		cmd_printf(o, "error: disk attach: %s: %s\n", url, d->why[0] ? d->why : "failed");
		rc = d->err ? d->err : -EIO;
		detach_now(d);
		return rc;
	}
	size_text(size, sizeof(size), d->nblocks * d->block_size);
	cmd_printf(o, "disk %s: %s ready: %s %s, %s (%llu blocks of %u bytes)%s%s\n",
		   d->spec.name, url, d->inq.vendor, d->inq.product, size,
		   (unsigned long long)d->nblocks, d->block_size,
		   d->pr_ok ? ", registered" : ", no reservations",
		   d->resv.held && d->resv.key == d->key ? ", reserved by this host" : "");
	return 0;
}

static bool logged_out_pred(void *arg)
{
	struct blk_disk *d = arg;

	return d->link.sess.state != ISCSI_SESS_LOGOUT;
}

static bool idle_pred(void *arg)
{
	struct blk_disk *d = arg;

	return d->active == 0 && !d->q_head && !d->ctl_busy;
}

/* Drain, give the reservation back, log out, free: each step bounded. */
static void detach_now(struct blk_disk *d)
{
	if (d->state == DISK_READY)
		disk_wait(idle_pred, d, 10 * 1000000ull);
	if (d->state == DISK_READY && disk_release_start(d) == 0)
		disk_wait(ctl_done_pred, d, 5 * 1000000ull);
	d->state = DISK_DETACHING;
	if (iscsi_sess_logout(&d->link.sess) == 0)
		disk_wait(logged_out_pred, d, 3 * 1000000ull);
	disk_free(d);
}

int disk_cmd_detach(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct blk_disk *d;

	(void)ctx, (void)argc;
	if (disk_busy_refuse(o, "disk detach"))
		return -EBUSY;
	d = disk_find_or_say(o, "disk detach", argv[0]);
	if (!d)
		return -ENOENT;
	if (d->holder[0]) {
		cmd_printf(o, "error: disk detach: %s is the disk of vm %s (destroy the VM first)\n",
			   argv[0], d->holder);
		return -EBUSY;
	}
	detach_now(d);
	cmd_printf(o, "disk %s: detached\n", argv[0]);
	return 0;
}

/* ---- list, info ---- */

int disk_cmd_list(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	char url[300], size[32];
	int n = 0;

	(void)ctx, (void)argc, (void)argv;
	cmd_printf(o, "%-8s %-11s %10s %6s  %s\n", "NAME", "STATE", "SIZE", "BLOCK", "TARGET");
	for (int i = 0; i < DISK_MAX; i++) {
		struct blk_disk *d = disk_table[i];

		if (!d)
			continue;
		n++;
		disk_spec_url(&d->spec, url, sizeof(url));
		size_text(size, sizeof(size), d->nblocks * d->block_size);
		cmd_printf(o, "%-8s %-11s %10s %6u  %s\n", d->spec.name, disk_state_name(d->state),
			   d->t_ready_us ? size : "-", d->block_size, url);
	}
	if (!n)
		cmd_printf(o, "(no disks: disk attach NAME iscsi://PORTAL/IQN/LUN)\n");
	return 0;
}

/* What Tern sends of UNMAP and WRITE SAME, then what the LUN said
 * (VPD 0xb0, 0xb2): Tern's limits are capped at DISK_PROV_BYTES. */
static void info_provisioning(struct cmd_out *o, const struct blk_disk *d)
{
	cmd_printf(o, "provisioning:");
	if (!d->can_unmap && !d->can_write_same)
		cmd_printf(o, " none");
	if (d->can_unmap)
		cmd_printf(o, " UNMAP (max %u blocks, %u ranges)%s", d->max_unmap_blocks,
			   d->max_unmap_descs, d->can_write_same ? "," : "");
	if (d->can_write_same)
		cmd_printf(o, " WRITE SAME (max %llu blocks%s)",
			   (unsigned long long)d->max_ws_blocks,
			   d->ws_unmap ? ", may unmap" : "");
	if (d->have_b0)
		cmd_printf(o, "; LUN limits: unmap %u blocks, %u ranges, write same %llu blocks",
			   d->limits.max_unmap_lbas, d->limits.max_unmap_descs,
			   (unsigned long long)d->limits.max_ws_blocks);
	if (d->have_b2)
		cmd_printf(o, "; %s provisioning%s\n", d->lbp.prov_type == 2 ? "thin" :
			   d->lbp.prov_type == 1 ? "resource" : "full",
			   d->lbp.lbprz ? ", unmapped blocks read zeros" : "");
	else
		cmd_printf(o, "; no LBP page\n");
}

static void info_session(struct cmd_out *o, const struct blk_disk *d)
{
	const struct iscsi_params *p = &d->link.sess.params;

	cmd_printf(o, "initiator:   %s (ISID %012llx)\n", d->initiator,
		   (unsigned long long)d->scfg.isid);
	cmd_printf(o, "connection:  %s, session %s, TSIH %u, %llu login(s), %u reconnect(s)\n",
		   iscsi_link_state_name(d->link.st),
		   d->link.sess.state == ISCSI_SESS_FULL ? "full feature" :
		   d->link.sess.state == ISCSI_SESS_LOGIN ? "login" : "down",
		   d->link.sess.tsih, (unsigned long long)d->logins, d->reconnects);
	if (d->logins)
		cmd_printf(o, "negotiated:  HeaderDigest=%s DataDigest=%s MaxRecvDSL=%u "
			   "target MaxRecvDSL=%u MaxBurst=%u FirstBurst=%u InitialR2T=%s "
			   "ImmediateData=%s auth=%s\n",
			   p->header_digest ? "CRC32C" : "None", p->data_digest ? "CRC32C" : "None",
			   p->max_recv_dsl, p->target_max_recv_dsl, p->max_burst, p->first_burst,
			   p->initial_r2t ? "Yes" : "No", p->immediate_data ? "Yes" : "No",
			   d->spec.chap ? (d->spec.mutual ? "CHAP (mutual)" : "CHAP") : "None");
	cmd_printf(o, "sequence:    CmdSN %u ExpCmdSN %u MaxCmdSN %u ExpStatSN %u\n",
		   d->link.sess.cmdsn, d->link.sess.exp_cmdsn, d->link.sess.max_cmdsn,
		   d->link.sess.exp_statsn);
	cmd_printf(o, "traffic:     %llu bytes in, %llu out; %llu PDUs in, %llu out\n",
		   (unsigned long long)d->link.bytes_in, (unsigned long long)d->link.bytes_out,
		   (unsigned long long)d->link.pdus_in, (unsigned long long)d->link.pdus_out);
}

static void info_pr(struct cmd_out *o, const struct blk_disk *d)
{
	if (!d->pr_ok) {
		cmd_printf(o, "reservation: not supported by the target (no fencing)\n");
		return;
	}
	cmd_printf(o, "key:         %016llx (%s)\n", (unsigned long long)d->key,
		   !d->registered ? "not registered" :
		   d->aptpl ? "registered; APTPL: kept through a target restart" :
		   "registered; no APTPL: the target forgets it when restarted");
	if (d->resv.held)
		cmd_printf(o, "reservation: type %u held by %016llx%s\n", d->resv.type,
			   (unsigned long long)d->resv.key,
			   d->resv.key == d->key ? " (this host)" : "");
	else
		cmd_printf(o, "reservation: none known\n");
}

int disk_cmd_info(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct blk_disk *d;
	const struct disk_stats *s;
	char url[300], size[32];
	uint64_t nio;

	(void)ctx, (void)argc;
	d = disk_find_or_say(o, "disk info", argv[0]);
	if (!d)
		return -ENOENT;
	s = &d->st;
	nio = s->reads + s->writes + s->flushes + s->unmaps + s->zeroes;
	disk_spec_url(&d->spec, url, sizeof(url));
	size_text(size, sizeof(size), d->nblocks * d->block_size);
	cmd_printf(o, "name:        %s\nstate:       %s\ntarget:      %s\n", d->spec.name,
		   disk_state_name(d->state), url);
	if (d->why[0])
		cmd_printf(o, "last error:  %s\n", d->why);
	if (d->t_ready_us) {
		cmd_printf(o, "device:      %s %s %s, serial %s\n", d->inq.vendor, d->inq.product,
			   d->inq.revision, d->serial[0] ? d->serial : "-");
		cmd_printf(o, "identifier:  %s\n", d->lu_id[0] ? d->lu_id : "-");
		cmd_printf(o, "capacity:    %s, %llu blocks of %u bytes, %u bytes per command\n",
			   size, (unsigned long long)d->nblocks, d->block_size, d->max_xfer);
		info_provisioning(o, d);
	}
	info_session(o, d);
	info_pr(o, d);
	cmd_printf(o, "queue:       %u active, %u SCSI commands in flight, %u write bytes\n",
		   d->active, d->parts, d->wr_inflight);
	cmd_printf(o, "io:          %llu reads (%llu bytes), %llu writes (%llu bytes), %llu flushes, "
		   "%llu unmaps (%llu blocks), %llu write-zeroes (%llu blocks), "
		   "%llu errors, %llu sent again (retries, reconnects), %llu conflicts, mean latency %llu us\n",
		   (unsigned long long)s->reads, (unsigned long long)s->rd_bytes,
		   (unsigned long long)s->writes, (unsigned long long)s->wr_bytes,
		   (unsigned long long)s->flushes, (unsigned long long)s->unmaps,
		   (unsigned long long)s->unmap_blocks, (unsigned long long)s->zeroes,
		   (unsigned long long)s->zero_blocks, (unsigned long long)s->errors,
		   (unsigned long long)s->reissued, (unsigned long long)s->conflicts,
		   (unsigned long long)(nio ? s->lat_us / nio : 0));
	return 0;
}

/* ---- reservations ---- */

/* Start a control sequence and wait for it; says what went wrong. */
static int run_ctl(struct cmd_out *o, const char *cmd, struct blk_disk *d,
		   int (*start)(struct blk_disk *d))
{
	int rc = start(d);

	if (rc == 0 && !disk_wait(ctl_done_pred, d, CTL_US))
		rc = -ETIMEDOUT;
	else if (rc == 0)
		rc = d->ctl_result;
	if (rc == -EACCES)
		cmd_printf(o, "error: %s: %s: this host lost the disk (RESERVATION CONFLICT)\n",
			   cmd, d->spec.name);
	else if (rc == -EOPNOTSUPP)
		cmd_printf(o, "error: %s: %s: the target has no persistent reservations\n",
			   cmd, d->spec.name);
	else if (rc == -EAGAIN || rc == -ENOTCONN)
		cmd_printf(o, "error: %s: %s is %s; try again when it is ready\n", cmd,
			   d->spec.name, disk_state_name(d->state));
	else if (rc == -EBUSY && d->ctl_busy)
		cmd_printf(o, "error: %s: %s: another control command is running\n", cmd,
			   d->spec.name);
	else if (rc < 0 && rc != -EBUSY)
		cmd_printf(o, "error: %s: %s: %s\n", cmd, d->spec.name, cmd_strerror(rc));
	return rc;
}

int disk_cmd_fence(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct blk_disk *d;
	int rc;

	(void)ctx, (void)argc;
	if (disk_busy_refuse(o, "disk fence"))
		return -EBUSY;
	d = disk_find_or_say(o, "disk fence", argv[0]);
	if (!d)
		return -ENOENT;
	rc = run_ctl(o, "disk fence", d, disk_fence_start);
	if (rc == -EBUSY && !d->ctl_busy) {
		cmd_printf(o, "error: disk fence: %s: pre-empted %u key(s) but %016llx still "
			   "holds a reservation of type %u\n", d->spec.name, d->preempted,
			   (unsigned long long)d->resv.key, d->resv.type);
		return rc;
	}
	if (rc < 0)
		return rc;
	cmd_printf(o, "disk %s: fenced: pre-empted %u other key(s); reservation (type %u, "
		   "Write Exclusive - Registrants Only) held by this host, key %016llx\n",
		   d->spec.name, d->preempted, d->resv.type, (unsigned long long)d->key);
	return 0;
}

/* After a fence by another host (the disk is lost here), or to make sure
 * this host's key is still registered: the sequence a migration's
 * prepare runs (disk_rejoin_start). */
int disk_cmd_rejoin(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct blk_disk *d;
	bool was_lost;
	int rc;

	(void)ctx, (void)argc;
	if (disk_busy_refuse(o, "disk rejoin"))
		return -EBUSY;
	d = disk_find_or_say(o, "disk rejoin", argv[0]);
	if (!d)
		return -ENOENT;
	was_lost = d->state == DISK_LOST;
	rc = run_ctl(o, "disk rejoin", d, disk_rejoin_start);
	if (rc < 0)
		return rc;
	cmd_printf(o, "disk %s: rejoined: key %016llx %s%s; reservation %s\n", d->spec.name,
		   (unsigned long long)d->key,
		   d->had_key ? "was still registered" : "registered again",
		   was_lost ? ", the disk is ready again" : "",
		   !d->resv.held ? "none" : d->resv.key == d->key ? "held by this host" :
		   "held by another host (Write Exclusive - Registrants Only: this host may write)");
	return 0;
}

int disk_cmd_keys(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct blk_disk *d;
	int rc;

	(void)ctx, (void)argc;
	if (disk_busy_refuse(o, "disk keys"))
		return -EBUSY;
	d = disk_find_or_say(o, "disk keys", argv[0]);
	if (!d)
		return -ENOENT;
	rc = run_ctl(o, "disk keys", d, disk_keys_start);
	if (rc < 0)
		return rc;
	cmd_printf(o, "registered keys: %u\n", d->nkeys);
	for (unsigned i = 0; i < d->nkeys; i++)
		cmd_printf(o, "  %016llx%s\n", (unsigned long long)d->keys[i],
			   d->keys[i] == d->key ? " (this host)" : "");
	if (d->resv.held)
		cmd_printf(o, "reservation: type %u, holder %016llx%s\n", d->resv.type,
			   (unsigned long long)d->resv.key, d->resv.key == d->key ? " (this host)" : "");
	else
		cmd_printf(o, "reservation: none\n");
	return 0;
}

/* ---- discovery (RFC 7143 appendix C: SendTargets) ---- */

#define DISCOVER_MAX	16

struct discover {
	struct iscsi_link link;
	struct iscsi_sess_cfg cfg;
	char initiator[96];
	struct iscsi_target out[DISCOVER_MAX];
	unsigned count;
	int err;
	bool done, gone;
	char why[96];
};

static void discover_event(void *owner, enum iscsi_sess_event ev, int err, uint32_t arg,
			   const char *why)
{
	struct discover *v = owner;

	if (ev == ISCSI_SESS_EV_LOGGED_IN) {
		int rc = iscsi_sess_sendtargets(&v->link.sess, v->out, DISCOVER_MAX);

		if (rc < 0)
			v->err = rc, v->done = true;
	} else if (ev == ISCSI_SESS_EV_SENDTARGETS) {
		v->err = err;
		v->count = arg;
		v->done = true;
	} else if (ev == ISCSI_SESS_EV_FAILED && !v->done) {
		v->err = err;
		snprintf(v->why, sizeof(v->why), "%s", why ? why : "failed");
		v->done = true;
	}
}

static void discover_down(void *owner, int err, const char *why)
{
	struct discover *v = owner;

	if (!v->done) {
		v->err = err;
		snprintf(v->why, sizeof(v->why), "%s", why);
		v->done = true;
	}
	v->gone = true;
}

static void discover_task(void *owner, const struct iscsi_sess_done *x)
{
	(void)owner, (void)x;
}

static bool discover_pred(void *arg)
{
	return ((struct discover *)arg)->done;
}

static bool discover_gone_pred(void *arg)
{
	struct discover *v = arg;

	return v->gone || v->link.sess.state != ISCSI_SESS_LOGOUT;
}

static void discover_print(struct cmd_out *o, const struct discover *v)
{
	unsigned n = v->count < DISCOVER_MAX ? v->count : DISCOVER_MAX;

	for (unsigned i = 0; i < n; i++) {
		cmd_printf(o, "%s\n", v->out[i].name);
		for (unsigned j = 0; j < v->out[i].nportals; j++)
			cmd_printf(o, "  portal %s:%u,%u\n", v->out[i].portals[j].host,
				   v->out[i].portals[j].port, v->out[i].portals[j].tpgt);
	}
	cmd_printf(o, "%u target(s)%s\n", v->count, v->count > n ? " (first 16 shown)" : "");
}

int disk_cmd_discover(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	static const struct iscsi_link_ops ops = {
		.done = discover_task, .event = discover_event, .down = discover_down,
	};
	struct disk_spec spec;
	struct discover *v;
	char url[300];
	const char *why;
	int rc;

	(void)ctx, (void)argc;
	if (disk_busy_refuse(o, "disk discover"))
		return -EBUSY;
	snprintf(url, sizeof(url), "iscsi://%s/iqn.2026-11.org.tern-hv:discovery/0", argv[0]);
	if (disk_url_parse(url, &spec, &why) < 0) {
		cmd_printf(o, "error: disk discover: expected ADDR[:PORT]: %s\n", why);
		return -EINVAL;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	snprintf(v->initiator, sizeof(v->initiator), "iqn.2026-11.org.tern-hv:discovery");
	v->cfg.initiator_name = v->initiator;
	v->cfg.discovery = true;
	v->cfg.isid = 0x800000000000ull | (tern_random_u64() & 0xffffffffffull);
	iscsi_params_defaults(&v->cfg.want);
	v->cfg.want.max_recv_dsl = 65536;
	v->cfg.timeout_ms = 10000;
	rc = iscsi_link_init(&v->link, &v->cfg, spec.addr, spec.port, 64 * 1024, &ops, v);
	if (rc == 0)
		rc = iscsi_link_connect(&v->link);
	if (rc == 0 && !disk_wait(discover_pred, v, CTL_US))
		rc = -ETIMEDOUT;
	if (rc == 0 && v->err)
		rc = v->err;
	if (rc == 0) {
		discover_print(o, v);
		if (iscsi_sess_logout(&v->link.sess) == 0)
			disk_wait(discover_gone_pred, v, 3 * 1000000ull);
	} else {
		cmd_printf(o, "error: disk discover: %s: %s\n", argv[0],
			   v->why[0] ? v->why : cmd_strerror(rc));
	}
	iscsi_link_free(&v->link);
	free(v);
	return rc;
}

/* The `disk` commands (handlers here and in disk_io_cmds.c). */
const struct cmd_def disk_cmds[] = {
	{ "disk attach", "NAME iscsi://ADDR[:PORT]/IQN/LUN [chap=USER:SECRET] "
	  "[mutual=USER:SECRET] [digest=none|crc32c|header|data]",
	  "log in to an iSCSI LUN and attach it as disk NAME", 2, 5, disk_cmd_attach },
	{ "disk detach", "NAME", "drain, release the reservation, log out", 1, 1, disk_cmd_detach },
	{ "disk list", "", "disks with state, size and target", 0, 0, disk_cmd_list },
	{ "disk info", "NAME", "device, capacity, session, reservation, I/O counters",
	  1, 1, disk_cmd_info },
	{ "disk discover", "ADDR[:PORT]", "list the targets a portal offers (SendTargets)",
	  1, 1, disk_cmd_discover },
	{ "disk read", "NAME LBA COUNT", "read blocks, print their SHA-256", 3, 3, disk_cmd_read },
	{ "disk write", "NAME LBA COUNT BYTE", "fill blocks with one byte value, then flush",
	  4, 4, disk_cmd_write },
	{ "disk unmap", "NAME LBA COUNT", "deallocate blocks (UNMAP), then flush", 3, 3,
	  disk_cmd_unmap },
	{ "disk zero", "NAME LBA COUNT [unmap]", "zero blocks (WRITE SAME; unmap: the target "
	  "may deallocate them), then flush", 3, 4, disk_cmd_zero },
	{ "disk flush", "NAME", "SYNCHRONIZE CACHE", 1, 1, disk_cmd_flush },
	{ "disk fence", "NAME", "pre-empt every other host's key: only this host may write",
	  1, 1, disk_cmd_fence },
	{ "disk rejoin", "NAME", "register this host's key again after another host fenced "
	  "it; the disk is ready again", 1, 1, disk_cmd_rejoin },
	{ "disk keys", "NAME", "registered reservation keys and the holder", 1, 1, disk_cmd_keys },
	{ "disk bench", "NAME read|write seq|rand BS SECONDS [depth=N]",
	  "throughput at a queue depth (destroys data on write)", 5, 6, disk_cmd_bench },
	{ "disk barriercheck", "NAME [rounds=N]", "check that barriers order writes on the "
	  "target (overwrites blocks 0..63)", 1, 2, disk_cmd_barriercheck },
};
const size_t disk_ncmds = ARRAY_SIZE(disk_cmds);
