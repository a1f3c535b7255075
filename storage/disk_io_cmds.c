/*
 * Operator I/O verbs on a disk: `disk read` (SHA-256 of blocks), `disk
 * write` (fill blocks with a byte, then flush), `disk unmap` and `disk
 * zero` (UNMAP, WRITE SAME of zeros, then flush), `disk flush` and `disk
 * bench`.  They go through the same asynchronous queue guest devices use
 * (blk.h), so they exercise splitting, barriers and reconnects too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbedtls/sha256.h"

#include "kernel/kernel.h"
#include "kernel/mgmt/console.h"
#include "kernel/lib/cmd.h"
#include "net/stack.h"
#include "storage/disk.h"
#include "storage/disk_cmds.h"

#define IO_US		(120 * 1000000ull)	/* beyond the replacement timeout */
#define RW_CHUNK	(1u << 20)		/* bytes per request */
#define RW_DEPTH	4			/* write requests in flight */
#define BENCH_DEPTH_MAX	32
#define BENCH_BS_MAX	(1u << 20)

struct io_run {
	struct blk_disk *d;
	unsigned inflight, depth;
	int err;
	uint64_t ios, bytes;
	struct blk_req req[BENCH_DEPTH_MAX];
	bool busy[BENCH_DEPTH_MAX];
};

static void io_done(struct blk_req *r)
{
	struct io_run *run = r->priv;

	run->busy[r - run->req] = false;
	run->inflight--;
	if (r->err && !run->err)
		run->err = r->err;
	if (!r->err) {
		run->ios++;
		run->bytes += (uint64_t)r->count * run->d->block_size;
	}
}

static bool io_idle_pred(void *arg)
{
	return ((struct io_run *)arg)->inflight == 0;
}

static bool io_room_pred(void *arg)
{
	struct io_run *run = arg;

	return run->inflight < run->depth || run->err;
}

/* Queue one request in a free slot (wait for one with io_room_pred). */
static int io_submit(struct io_run *run, enum blk_op op, unsigned flags, uint64_t lba,
		     uint32_t count, void *buf)
{
	struct blk_req *r = NULL;
	int rc;

	for (unsigned i = 0; i < run->depth && !r; i++)
		if (!run->busy[i])
			r = &run->req[i], run->busy[i] = true;
	if (!r)
		return -EBUSY;
	memset(r, 0, sizeof(*r));
	r->op = op;
	r->flags = flags;
	r->lba = lba;
	r->count = count;
	r->buf = buf;
	r->done = io_done;
	r->priv = run;
	run->inflight++;
	rc = blk_submit(run->d, r);
	if (rc < 0)
		run->inflight--, run->busy[r - run->req] = false;
	return rc;
}

/* The error line for a failed run: a lost disk is said plainly. */
static int io_fail(struct cmd_out *o, const char *cmd, struct blk_disk *d, int err)
{
	if (err == -EACCES)	/* d->why says "this host lost the disk: ..." */
		cmd_printf(o, "error: %s: %s: %s\n", cmd, d->spec.name,
			   d->state == DISK_LOST ? d->why :
			   "this host lost the disk: RESERVATION CONFLICT");
	else if (err == -ETIMEDOUT)
		cmd_printf(o, "error: %s: %s: timed out (%s)\n", cmd, d->spec.name,
			   d->why[0] ? d->why : "no answer");
	else
		cmd_printf(o, "error: %s: %s: %s%s%s\n", cmd, d->spec.name, cmd_strerror(err),
			   d->why[0] ? ": " : "", d->why);
	return err;
}

/* NAME LBA COUNT: the disk, checked against its size. */
static struct blk_disk *io_args(struct cmd_out *o, const char *cmd, char **argv,
				uint64_t *lba, uint64_t *count)
{
	struct blk_disk *d;
	uint32_t bs;
	uint64_t nb;

	if (disk_busy_refuse(o, cmd))
		return NULL;
	d = disk_find_or_say(o, cmd, argv[0]);
	if (!d)
		return NULL;
	if (blk_geometry(d, &bs, &nb) < 0) {
		cmd_printf(o, "error: %s: %s is %s\n", cmd, d->spec.name, disk_state_name(d->state));
		return NULL;
	}
	if (cmd_parse_u64(argv[1], lba) < 0 || cmd_parse_u64(argv[2], count) < 0 || !*count ||
	    *lba >= nb || *count > nb - *lba) {
		cmd_printf(o, "error: %s: LBA and COUNT must lie inside the disk's %llu blocks\n",
			   cmd, (unsigned long long)nb);
		return NULL;
	}
	return d;
}

/*
 * Wait for the run to drain: a request never outlives its buffer.  The
 * disk fails any command unanswered for 60 s and any wait for a target
 * away 30 s (disk.c), so the second wait ends too; IO_US only chooses
 * when the command reports a timeout.
 */
static int io_drain(struct io_run *run)
{
	if (!disk_wait(io_idle_pred, run, IO_US)) {
		disk_wait(io_idle_pred, run, ~0ull >> 2);
		return -ETIMEDOUT;
	}
	return run->err;
}

int disk_cmd_read(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct io_run run = { .depth = 1 };
	mbedtls_sha256_context sha;
	uint64_t lba, count, done = 0, t0 = time_us();
	uint8_t *buf, h[32];
	uint32_t per;
	int rc = 0;

	(void)argc;
	run.d = io_args(o, "disk read", argv, &lba, &count);
	if (!run.d)
		return -EINVAL;
	per = RW_CHUNK / run.d->block_size;
	buf = malloc(RW_CHUNK);
	if (!buf)
		return -ENOMEM;
	mbedtls_sha256_init(&sha);
	mbedtls_sha256_starts_ret(&sha, 0);
	while (!rc && done < count) {
		uint32_t n = count - done < per ? (uint32_t)(count - done) : per;

		rc = io_submit(&run, BLK_READ, 0, lba + done, n, buf);
		if (!rc)
			rc = io_drain(&run);
		if (!rc)
			mbedtls_sha256_update_ret(&sha, buf, (size_t)n * run.d->block_size);
		done += n;
		console_progress(ctx, "read", done, count);
	}
	mbedtls_sha256_finish_ret(&sha, h);
	mbedtls_sha256_free(&sha);
	free(buf);
	if (rc)
		return io_fail(o, "disk read", run.d, rc);
	for (int i = 0; i < 32; i++)
		cmd_printf(o, "%02x", h[i]);
	cmd_printf(o, "  %s blocks %llu+%llu (%llu bytes) in %llu ms\n", run.d->spec.name,
		   (unsigned long long)lba, (unsigned long long)count,
		   (unsigned long long)count * run.d->block_size,
		   (unsigned long long)(time_us() - t0) / 1000);
	return 0;
}

int disk_cmd_write(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct io_run run = { .depth = RW_DEPTH };
	uint64_t lba, count, val, done = 0, t0 = time_us();
	uint8_t *buf;
	uint32_t per;
	int rc = 0;

	(void)argc;
	run.d = io_args(o, "disk write", argv, &lba, &count);
	if (!run.d)
		return -EINVAL;
	if (cmd_parse_u64(argv[3], &val) < 0 || val > 255) {
		cmd_printf(o, "error: disk write: BYTE is 0..255 (0xab)\n");
		return -EINVAL;
	}
	per = RW_CHUNK / run.d->block_size;
	buf = malloc(RW_CHUNK);
	if (!buf)
		return -ENOMEM;
	memset(buf, (int)val, RW_CHUNK);
	/* Every request reads the same bytes: RW_DEPTH of them in flight. */
	while (!rc && !run.err && done < count) {
		uint32_t n = count - done < per ? (uint32_t)(count - done) : per;

		if (!disk_wait(io_room_pred, &run, IO_US))
			rc = -ETIMEDOUT;
		else if (!run.err)
			rc = io_submit(&run, BLK_WRITE, 0, lba + done, n, buf);
		done += n;
		console_progress(ctx, "write", done, count);
	}
	/* Acknowledged means on stable storage: a flush after the writes. */
	if (!rc && !run.err && disk_wait(io_room_pred, &run, IO_US) && !run.err)
		rc = io_submit(&run, BLK_FLUSH, 0, 0, 0, NULL);
	rc = io_drain(&run) ?: rc;
	free(buf);
	if (rc)
		return io_fail(o, "disk write", run.d, rc);
	cmd_printf(o, "%s: wrote blocks %llu+%llu (%llu bytes of 0x%02llx) and flushed, in %llu ms\n",
		   run.d->spec.name, (unsigned long long)lba, (unsigned long long)count,
		   (unsigned long long)count * run.d->block_size, (unsigned long long)val,
		   (unsigned long long)(time_us() - t0) / 1000);
	return 0;
}

/* How many blocks one UNMAP/WRITE_ZEROES request of a console command
 * covers: more than one command's worth, so the block layer's split at
 * the LUN's limits (and DISK_PROV_BYTES) is what the console exercises. */
#define PROV_CHUNK	(1u << 31)

/* `disk unmap` and `disk zero`: the range in PROV_CHUNK requests, RW_DEPTH
 * in flight, then a flush.  flags: BLK_F_UNMAP for `disk zero ... unmap`. */
static int prov_run(struct cmd_ctx *ctx, struct cmd_out *o, char **argv, bool zero,
		    unsigned flags)
{
	const char *cmd = zero ? "disk zero" : "disk unmap";
	struct io_run run = { .depth = RW_DEPTH };
	uint64_t lba, count, done = 0, t0 = time_us();
	struct blk_limits lim;
	int rc = 0;

	run.d = io_args(o, cmd, argv, &lba, &count);
	if (!run.d)
		return -EINVAL;
	if (blk_limits(run.d, &lim) < 0 || !(zero ? lim.write_zeroes : lim.unmap)) {
		cmd_printf(o, "error: %s: %s does not support %s (see 'disk info')\n", cmd,
			   run.d->spec.name, zero ? "WRITE SAME" : "UNMAP");
		return -EOPNOTSUPP;
	}
	while (!rc && !run.err && done < count) {
		uint32_t n = count - done < PROV_CHUNK ? (uint32_t)(count - done) : PROV_CHUNK;

		if (!disk_wait(io_room_pred, &run, IO_US))
			rc = -ETIMEDOUT;
		else if (!run.err)
			rc = io_submit(&run, zero ? BLK_WRITE_ZEROES : BLK_UNMAP, flags, lba + done,
				       n, NULL);
		done += n;
		console_progress(ctx, zero ? "zero" : "unmap", done, count);
	}
	if (!rc && !run.err && disk_wait(io_room_pred, &run, IO_US) && !run.err)
		rc = io_submit(&run, BLK_FLUSH, 0, 0, 0, NULL);
	rc = io_drain(&run) ?: rc;
	if (rc)
		return io_fail(o, cmd, run.d, rc);
	cmd_printf(o, "%s: %s blocks %llu+%llu (%llu bytes) and flushed, in %llu ms\n",
		   run.d->spec.name, !zero ? "unmapped" : flags ? "zeroed (may unmap)" : "zeroed",
		   (unsigned long long)lba,
		   (unsigned long long)count, (unsigned long long)count * run.d->block_size,
		   (unsigned long long)(time_us() - t0) / 1000);
	return 0;
}

int disk_cmd_unmap(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	(void)argc;
	return prov_run(ctx, o, argv, false, 0);
}

int disk_cmd_zero(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct blk_disk *d;
	struct blk_limits lim;

	if (argc > 3 && strcmp(argv[3], "unmap")) {
		cmd_printf(o, "error: disk zero: expected NAME LBA COUNT [unmap]\n");
		return -EINVAL;
	}
	/* The UNMAP bit only where the LUN takes it (LBPWS): say so rather
	 * than let the block layer drop it. */
	d = argc > 3 ? blk_find(argv[0]) : NULL;
	if (d && blk_limits(d, &lim) == 0 && lim.write_zeroes && !lim.wz_unmap) {
		cmd_printf(o, "error: disk zero: %s does not take WRITE SAME with UNMAP\n",
			   argv[0]);
		return -EOPNOTSUPP;
	}
	return prov_run(ctx, o, argv, true, argc > 3 ? BLK_F_UNMAP : 0);
}

int disk_cmd_flush(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct io_run run = { .depth = 1 };
	uint64_t t0 = time_us();
	int rc;

	(void)ctx, (void)argc;
	if (disk_busy_refuse(o, "disk flush"))
		return -EBUSY;
	run.d = disk_find_or_say(o, "disk flush", argv[0]);
	if (!run.d)
		return -ENOENT;
	rc = io_submit(&run, BLK_FLUSH, 0, 0, 0, NULL);
	if (!rc)
		rc = io_drain(&run);
	if (rc)
		return io_fail(o, "disk flush", run.d, rc);
	cmd_printf(o, "%s: flushed in %llu us\n", run.d->spec.name,
		   (unsigned long long)(time_us() - t0));
	return 0;
}

/* ---- bench ---- */

struct bench {
	struct io_run run;
	bool write, rand;
	uint32_t bs, blocks;
	unsigned depth;
	uint64_t seconds, span, next;
	uint8_t *buf;
};

static int bench_args(struct cmd_out *o, int argc, char **argv, struct bench *b)
{
	uint64_t bs = 0, secs = 0, depth = 8;
	const char *v;

	b->write = !strcmp(argv[1], "write");
	b->rand = !strcmp(argv[2], "rand");
	if ((!b->write && strcmp(argv[1], "read")) || (!b->rand && strcmp(argv[2], "seq")) ||
	    cmd_parse_size(argv[3], &bs) < 0 || cmd_parse_u64(argv[4], &secs) < 0) {
		cmd_printf(o, "error: disk bench: expected NAME read|write seq|rand BS SECONDS "
			   "[depth=N]\n");
		return -EINVAL;
	}
	if (argc > 5 && (!cmd_parse_kv(argv[5], "depth", &v) || cmd_parse_u64(v, &depth) < 0)) {
		cmd_printf(o, "error: disk bench: expected depth=1..32\n");
		return -EINVAL;
	}
	if (!bs || bs > BENCH_BS_MAX || bs % b->run.d->block_size || !secs || secs > 60 ||
	    !depth || depth > BENCH_DEPTH_MAX) {
		cmd_printf(o, "error: disk bench: BS is a multiple of %u up to 1M, SECONDS 1..60, "
			   "depth 1..32\n", b->run.d->block_size);
		return -EINVAL;
	}
	b->bs = (uint32_t)bs;
	b->blocks = b->bs / b->run.d->block_size;
	b->seconds = secs;
	b->depth = b->run.depth = (unsigned)depth;
	b->span = b->run.d->nblocks / b->blocks;	/* whole requests that fit */
	return b->span ? 0 : -EINVAL;
}

static uint64_t bench_lba(struct bench *b)
{
	uint64_t i = b->rand ? tern_random_u64() % b->span : b->next++ % b->span;

	return i * b->blocks;
}

int disk_cmd_bench(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	uint64_t t0, end, us;
	int rc = 0;

	(void)ctx;
	if (!b)
		return -ENOMEM;
	if (disk_busy_refuse(o, "disk bench") ||
	    !(b->run.d = disk_find_or_say(o, "disk bench", argv[0])) ||
	    b->run.d->state != DISK_READY || bench_args(o, argc, argv, b) < 0 ||
	    !(b->buf = malloc((size_t)b->bs * b->depth))) {
		if (b->run.d && b->run.d->state != DISK_READY)
			cmd_printf(o, "error: disk bench: %s is %s\n", argv[0],
				   disk_state_name(b->run.d->state));
		free(b);
		return -EINVAL;
	}
	memset(b->buf, 0x5a, (size_t)b->bs * b->depth);
	t0 = time_us();
	end = t0 + b->seconds * 1000000;
	while (!rc && !b->run.err && time_us() < end) {
		unsigned slot;

		if (!disk_wait(io_room_pred, &b->run, IO_US)) {
			rc = -ETIMEDOUT;
			break;
		}
		for (slot = 0; slot < b->depth && b->run.busy[slot]; slot++)
			;
		if (!b->run.err && slot < b->depth)
			rc = io_submit(&b->run, b->write ? BLK_WRITE : BLK_READ, 0, bench_lba(b),
				       b->blocks, b->buf + (size_t)slot * b->bs);
	}
	rc = io_drain(&b->run) ?: rc;
	us = time_us() - t0;
	if (rc) {
		io_fail(o, "disk bench", b->run.d, rc);
	} else {
		uint64_t kbps = b->run.bytes * 1000 / (us ? us : 1);	/* kB/s = bytes/ms */

		cmd_printf(o, "bench %s %s %s bs=%u depth=%u: %llu ios %llu.%llu MB/s %llu IOPS "
			   "in %llu.%llu s\n", argv[0], argv[1], argv[2], b->bs, b->depth,
			   (unsigned long long)b->run.ios, (unsigned long long)kbps / 1000,
			   (unsigned long long)(kbps % 1000) / 100,
			   (unsigned long long)(b->run.ios * 1000000 / (us ? us : 1)),
			   (unsigned long long)us / 1000000, (unsigned long long)(us / 100000) % 10);
	}
	free(b->buf);
	free(b);
	return rc;
}

/* ---- barrier check ---- */

#define BC_WRITES	16
#define BC_BLOCKS	64

/*
 * Ordering against the real target: BC_WRITES writes of one byte value to
 * the same blocks, all in flight at once, then a BARRIER write of another
 * value, then a plain read.  The barrier may start only after every
 * earlier write completed, and the read only after the barrier: the read
 * must see the barrier's bytes, every round.  Without the ordering the
 * target (tgt runs 16 backing-store threads) may finish an early write
 * last, and the read sees its bytes.
 */
static int bc_round(struct io_run *run, uint8_t *wbuf, uint8_t *bbuf, uint8_t *rbuf,
		    uint64_t lba)
{
	int rc = 0;

	for (unsigned i = 0; !rc && i < BC_WRITES; i++)
		rc = io_submit(run, BLK_WRITE, 0, lba, BC_BLOCKS, wbuf);
	if (!rc)
		rc = io_submit(run, BLK_WRITE, BLK_F_BARRIER, lba, BC_BLOCKS, bbuf);
	if (!rc)
		rc = io_submit(run, BLK_READ, 0, lba, BC_BLOCKS, rbuf);
	return io_drain(run) ?: rc;
}

int disk_cmd_barriercheck(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct io_run *run = calloc(1, sizeof(*run));
	uint64_t rounds = 20, lba = 0, bad = 0;
	const char *v;
	uint8_t *buf = NULL;
	size_t len;
	int rc = 0;

	if (!run)
		return -ENOMEM;
	run->depth = BC_WRITES + 2;
	if (disk_busy_refuse(o, "disk barriercheck") ||
	    !(run->d = disk_find_or_say(o, "disk barriercheck", argv[0]))) {
		free(run);
		return -EINVAL;
	}
	if ((argc > 1 && (!cmd_parse_kv(argv[1], "rounds", &v) || cmd_parse_u64(v, &rounds) < 0 ||
			  !rounds || rounds > 1000)) || run->d->state != DISK_READY ||
	    run->d->nblocks < BC_BLOCKS) {
		cmd_printf(o, "error: disk barriercheck: a ready disk, rounds=1..1000\n");
		free(run);
		return -EINVAL;
	}
	len = (size_t)BC_BLOCKS * run->d->block_size;
	buf = malloc(3 * len);
	for (uint64_t r = 0; buf && !rc && r < rounds; r++) {
		memset(buf, (int)(2 * r) & 0xff, len);
		memset(buf + len, (int)(2 * r + 1) & 0xff, len);
		memset(buf + 2 * len, 0, len);
		rc = bc_round(run, buf, buf + len, buf + 2 * len, lba);
		if (!rc && memcmp(buf + len, buf + 2 * len, len))
			bad++;
		console_progress(ctx, "rounds", r + 1, rounds);
	}
	free(buf);
	if (!buf)
		rc = -ENOMEM;
	if (rc) {
		io_fail(o, "disk barriercheck", run->d, rc);
	} else {
		cmd_printf(o, "barriercheck %s: %llu rounds of %u parallel writes, a barrier write "
			   "and a read: %llu read(s) saw bytes from before the barrier: %s\n",
			   argv[0], (unsigned long long)rounds, BC_WRITES, (unsigned long long)bad,
			   bad ? "FAIL" : "PASS");
		rc = bad ? -EIO : 0;
	}
	free(run);
	return rc;
}
