/*
 * rio: the guest side of tests/bench/linux_io.py, static so the busybox
 * initramfs can run it.
 *
 *   rio disk DEV read|write seq|rand BS SECONDS DEPTH
 *	O_DIRECT I/O of BS bytes on DEV for SECONDS with DEPTH threads
 *	(one request each in flight: queue depth DEPTH), sequential per
 *	thread or at random aligned offsets; prints
 *	"rio: N ios, B bytes, S s, X MB/s, Y iops".
 *   rio tcp ADDR PORT MIB
 *	connect and send MIB MiB of zeros; prints "rio: B bytes, S s, X Mbit/s".
 *
 * A write destroys what DEV held.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#define RIO_MAX_DEPTH	64

struct rio_job {
	int fd;
	int write, rand;
	size_t bs;
	uint64_t size, start;
	double until;
	uint64_t ios;
	int err;
	unsigned seed;
};

static double rio_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *rio_worker(void *arg)
{
	struct rio_job *j = arg;
	uint64_t blocks = j->size / j->bs, next = j->start / j->bs;
	void *buf;

	if (posix_memalign(&buf, 4096, j->bs)) {
		j->err = ENOMEM;
		return NULL;
	}
	memset(buf, 0x5a, j->bs);
	while (rio_now() < j->until) {
		uint64_t b = j->rand ? (uint64_t)rand_r(&j->seed) * 65536u % blocks : next++ % blocks;
		ssize_t n = j->write ? pwrite(j->fd, buf, j->bs, (off_t)(b * j->bs)) :
				       pread(j->fd, buf, j->bs, (off_t)(b * j->bs));

		if (n != (ssize_t)j->bs) {
			j->err = n < 0 ? errno : EIO;
			break;
		}
		j->ios++;
	}
	free(buf);
	return NULL;
}

static int rio_disk(int argc, char **argv)
{
	struct rio_job jobs[RIO_MAX_DEPTH];
	pthread_t th[RIO_MAX_DEPTH];
	uint64_t size = 0, ios = 0;
	int depth, fd, write, rand;
	double secs, t0, dt;
	size_t bs;

	if (argc != 7)
		return 2;
	write = !strcmp(argv[2], "write");
	rand = !strcmp(argv[3], "rand");
	bs = strtoul(argv[4], NULL, 0);
	secs = atof(argv[5]);
	depth = atoi(argv[6]);
	if (bs < 512 || bs % 512 || depth < 1 || depth > RIO_MAX_DEPTH)
		return 2;
	fd = open(argv[1], (write ? O_RDWR : O_RDONLY) | O_DIRECT);
	if (fd < 0 || ioctl(fd, BLKGETSIZE64, &size) < 0 || size < bs * (uint64_t)depth) {
		perror(argv[1]);
		return 1;
	}
	t0 = rio_now();
	for (int i = 0; i < depth; i++) {
		jobs[i] = (struct rio_job){ .fd = fd, .write = write, .rand = rand, .bs = bs,
					    .size = size, .start = size / depth * i,
					    .until = t0 + secs, .seed = 12345u + i };
		pthread_create(&th[i], NULL, rio_worker, &jobs[i]);
	}
	for (int i = 0; i < depth; i++) {
		pthread_join(th[i], NULL);
		ios += jobs[i].ios;
		if (jobs[i].err) {
			fprintf(stderr, "rio: %s\n", strerror(jobs[i].err));
			return 1;
		}
	}
	dt = rio_now() - t0;
	printf("rio: %llu ios, %llu bytes, %.2f s, %.2f MB/s, %.0f iops\n",
	       (unsigned long long)ios, (unsigned long long)(ios * bs), dt,
	       (double)(ios * bs) / dt / 1e6, (double)ios / dt);
	return 0;
}

static int rio_tcp(int argc, char **argv)
{
	static char buf[65536];
	struct sockaddr_in a = { .sin_family = AF_INET };
	uint64_t total, sent = 0;
	double t0, dt;
	int s;

	if (argc != 4)
		return 2;
	total = strtoull(argv[3], NULL, 0) << 20;
	a.sin_port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1)
		return 2;
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("rio: connect");
		return 1;
	}
	t0 = rio_now();
	while (sent < total) {
		size_t n = total - sent < sizeof(buf) ? total - sent : sizeof(buf);
		ssize_t w = send(s, buf, n, 0);

		if (w <= 0) {
			perror("rio: send");
			return 1;
		}
		sent += (uint64_t)w;
	}
	shutdown(s, SHUT_WR);
	while (recv(s, buf, sizeof(buf), 0) > 0)
		;
	dt = rio_now() - t0;
	printf("rio: %llu bytes, %.2f s, %.1f Mbit/s\n", (unsigned long long)sent, dt,
	       (double)sent * 8 / dt / 1e6);
	close(s);
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 2;

	if (argc > 1 && !strcmp(argv[1], "disk"))
		rc = rio_disk(argc - 1, argv + 1);
	else if (argc > 1 && !strcmp(argv[1], "tcp"))
		rc = rio_tcp(argc - 1, argv + 1);
	if (rc == 2)
		fprintf(stderr, "usage: rio disk DEV read|write seq|rand BS SECONDS DEPTH\n"
				"       rio tcp ADDR PORT MIB\n");
	return rc;
}
