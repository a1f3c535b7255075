/*
 * dwriter: the guest's durable-write probe for tests/lab/linux_mig_tests.py
 * (static, for the busybox initramfs).
 *
 *   dwriter DEV run=HEX [base=BYTES] [slots=N] [count=N] [rate=N]
 *
 * Appends 4 KiB records to DEV with O_DIRECT, each followed by
 * fdatasync() (a virtio-blk FLUSH), so a record is durable on the LUN when
 * its seq is reported.  Record seq S (1, 2, ...) goes to slot (S - 1) %
 * slots at base + slot * 4096: the log wraps, the newest records win.
 *
 *   offset  size  field
 *   0       8     magic "TERNDWR1"
 *   8       8     run (the run= value: records of an earlier run differ)
 *   16      8     seq
 *   24      4     record size (4096)
 *   28      4     CRC-32 (IEEE 802.3, zlib's) of the whole record with
 *                 this field zero
 *   32      4064  payload: pseudo-random bytes from (run, seq)
 * all little-endian.
 *
 * rate=N records a second at most (0: as fast as the disk goes, the
 * default 50); count=N stops after N records.  SIGUSR1 prints the status
 * line; SIGTERM/SIGINT finish the record under way and stop.  Both print
 *   dwriter: durable SEQ records N errors E gap MS ms [stopped]
 * where SEQ is the last record whose fdatasync returned 0 and MS the
 * longest time between two durable records (a migration's stall).  A failed write
 * or flush is printed, counted, and retried after 100 ms (same seq).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DW_REC		4096
#define DW_HDR		32
#define NSEC		1000000000LL

struct dw_cfg {
	const char *dev;
	uint64_t run, base, slots, count;
	long rate;
};

struct dw_stats {
	uint64_t durable, records, errors;
	int64_t gap_ns;		/* the longest time between two durable records */
};

static volatile sig_atomic_t dw_stop, dw_report;

static void dw_on_term(int sig)
{
	(void)sig;
	dw_stop = 1;
}

static void dw_on_usr1(int sig)
{
	(void)sig;
	dw_report = 1;
}

static int64_t dw_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * NSEC + t.tv_nsec;
}

/* CRC-32 as in IEEE 802.3 (reflected, polynomial 0xedb88320), bitwise. */
static uint32_t dw_crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & -(c & 1));
	}
	return ~c;
}

static void dw_put(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* splitmix64: a different payload for every (run, seq). */
static uint64_t dw_mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void dw_fill(uint8_t *rec, uint64_t run, uint64_t seq)
{
	uint64_t s = run ^ (seq * 0x2545f4914f6cdd1dull);

	memcpy(rec, "TERNDWR1", 8);
	dw_put(rec + 8, run, 8);
	dw_put(rec + 16, seq, 8);
	dw_put(rec + 24, DW_REC, 4);
	dw_put(rec + 28, 0, 4);
	for (int i = DW_HDR; i < DW_REC; i += 8)
		dw_put(rec + i, dw_mix(&s), 8);
	dw_put(rec + 28, dw_crc32(rec, DW_REC), 4);
}

static void dw_status(const struct dw_stats *st, const char *tail)
{
	printf("dwriter: durable %llu records %llu errors %llu gap %lld ms%s\n",
	       (unsigned long long)st->durable, (unsigned long long)st->records,
	       (unsigned long long)st->errors, (long long)(st->gap_ns / 1000000), tail);
	fflush(stdout);
}

/* Write and flush one record; 0 or -errno. */
static int dw_put_record(int fd, const struct dw_cfg *c, uint8_t *rec, uint64_t seq)
{
	off_t off = (off_t)(c->base + ((seq - 1) % c->slots) * DW_REC);
	ssize_t n = pwrite(fd, rec, DW_REC, off);

	if (n != DW_REC)
		return n < 0 ? -errno : -EIO;
	if (fdatasync(fd) < 0)
		return -errno;
	return 0;
}

static void dw_pace(const struct dw_cfg *c, int64_t *next)
{
	struct timespec t;

	if (!c->rate)
		return;
	*next += NSEC / c->rate;
	if (dw_now() > *next + NSEC)	/* after a pause: no burst */
		*next = dw_now();
	t.tv_sec = *next / NSEC;
	t.tv_nsec = *next % NSEC;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR && !dw_stop)
		if (dw_report)
			break;
}

static void dw_loop(int fd, const struct dw_cfg *c, uint8_t *rec, struct dw_stats *st)
{
	int64_t next = dw_now(), last = dw_now();
	uint64_t seq = 1;
	int rc;

	dw_fill(rec, c->run, seq);
	while (!dw_stop && (!c->count || st->records < c->count)) {
		if (dw_report) {
			dw_report = 0;
			dw_status(st, "");
		}
		rc = dw_put_record(fd, c, rec, seq);
		if (rc < 0) {
			st->errors++;
			printf("dwriter: seq %llu: %s\n", (unsigned long long)seq, strerror(-rc));
			fflush(stdout);
			usleep(100000);
			continue;
		}
		if (dw_now() - last > st->gap_ns)
			st->gap_ns = dw_now() - last;
		last = dw_now();
		st->durable = seq;
		st->records++;
		dw_fill(rec, c->run, ++seq);
		dw_pace(c, &next);
	}
}

static int dw_arg(const char *a, const char *key, uint64_t *v)
{
	size_t n = strlen(key);

	if (strncmp(a, key, n) || a[n] != '=')
		return 0;
	*v = strtoull(a + n + 1, NULL, 0);
	return 1;
}

static int dw_parse(int argc, char **argv, struct dw_cfg *c)
{
	uint64_t rate = 50;
	int have_run = 0;

	*c = (struct dw_cfg){ .base = 8 << 20, .slots = 4096 };
	if (argc < 3)
		return -1;
	c->dev = argv[1];
	for (int i = 2; i < argc; i++) {
		if (dw_arg(argv[i], "run", &c->run)) {
			c->run = strtoull(argv[i] + 4, NULL, 16);
			have_run = 1;
		} else if (!dw_arg(argv[i], "base", &c->base) &&
			   !dw_arg(argv[i], "slots", &c->slots) &&
			   !dw_arg(argv[i], "count", &c->count) &&
			   !dw_arg(argv[i], "rate", &rate)) {
			return -1;
		}
	}
	c->rate = (long)rate;
	if (!have_run || !c->slots || c->base % DW_REC || rate > 100000)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction term = { .sa_handler = dw_on_term }, usr1 = { .sa_handler = dw_on_usr1 };
	struct dw_stats st = { 0 };
	struct dw_cfg c;
	uint8_t *rec;
	int fd;

	if (dw_parse(argc, argv, &c) < 0) {
		fprintf(stderr, "usage: dwriter DEV run=HEX [base=BYTES] [slots=N] [count=N] "
			"[rate=N]\n");
		return 2;
	}
	fd = open(c.dev, O_WRONLY | O_DIRECT);
	if (fd < 0 || posix_memalign((void **)&rec, 4096, DW_REC)) {
		printf("dwriter: %s: %s\n", c.dev, strerror(errno));
		return 1;
	}
	/* No SA_RESTART: a sleep ends early and the loop looks at the flags. */
	sigaction(SIGTERM, &term, NULL);
	sigaction(SIGINT, &term, NULL);
	sigaction(SIGUSR1, &usr1, NULL);
	printf("dwriter: run %llx on %s, %llu slots of 4096 bytes at %llu, rate %ld/s\n",
	       (unsigned long long)c.run, c.dev, (unsigned long long)c.slots,
	       (unsigned long long)c.base, c.rate);
	fflush(stdout);
	dw_loop(fd, &c, rec, &st);
	dw_status(&st, " stopped");
	close(fd);
	return st.errors ? 1 : 0;
}
