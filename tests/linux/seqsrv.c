/*
 * seqsrv: the guest side of tests/lab/linux_mig_tests.py, static so the
 * busybox initramfs can run it.
 *
 *   seqsrv serve PORT [rate=N] [bin] [once]
 *	listen on PORT and stream sequence numbers to one connection at a
 *	time, N records a second (200 by default), for as long as it lasts:
 *	"seq 0\n", "seq 1\n", ... or, with bin, little-endian u64s.  A record
 *	is never split across a pause: after one (a migration's downtime) the
 *	schedule restarts from now, so the client sees the gap, not a burst.
 *	once: exit after the first connection.  SIGTERM ends it.
 *   seqsrv clock
 *	one line "clock real S.N mono S.N boot S.N" (busybox's date has no
 *	%N): CLOCK_REALTIME, CLOCK_MONOTONIC and CLOCK_BOOTTIME in ns.
 *
 * Reports go to stdout, one line each, prefixed "seqsrv: ".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NSEC	1000000000LL

static volatile sig_atomic_t seq_stop;

static void seq_on_signal(int sig)
{
	(void)sig;
	seq_stop = 1;
}

static int64_t seq_ns(clockid_t id)
{
	struct timespec t;

	clock_gettime(id, &t);
	return (int64_t)t.tv_sec * NSEC + t.tv_nsec;
}

static void seq_sleep_until(int64_t when)
{
	struct timespec t = { .tv_sec = when / NSEC, .tv_nsec = when % NSEC };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR && !seq_stop)
		;
}

static void seq_print_clock(const char *name, clockid_t id)
{
	int64_t t = seq_ns(id);

	printf(" %s %lld.%09lld", name, (long long)(t / NSEC), (long long)(t % NSEC));
}

static int seq_clock(void)
{
	printf("clock");
	seq_print_clock("real", CLOCK_REALTIME);
	seq_print_clock("mono", CLOCK_MONOTONIC);
	seq_print_clock("boot", CLOCK_BOOTTIME);
	printf("\n");
	return 0;
}

/* Write all of buf; 0, or -errno (EPIPE/ECONNRESET: the client went). */
static int seq_send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR && !seq_stop)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int seq_record(char *buf, uint64_t seq, int bin)
{
	if (!bin)
		return snprintf(buf, 32, "seq %llu\n", (unsigned long long)seq);
	for (int i = 0; i < 8; i++)
		buf[i] = (char)(seq >> (8 * i));
	return 8;
}

/* Stream to one client until it goes or SIGTERM; the records sent. */
static uint64_t seq_stream(int fd, long rate, int bin, int *err)
{
	int64_t step = NSEC / rate, next = seq_ns(CLOCK_MONOTONIC), late_max = 0;
	uint64_t seq = 0;
	char buf[32];

	*err = 0;
	while (!seq_stop) {
		int64_t now;
		int n = seq_record(buf, seq, bin);

		seq_sleep_until(next);
		now = seq_ns(CLOCK_MONOTONIC);
		if (now - next > late_max)
			late_max = now - next;
		*err = seq_send_all(fd, buf, (size_t)n);
		if (*err)
			break;
		seq++;
		next += step;
		/* Behind by more than a record: start the schedule again. */
		if (now > next + step)
			next = now + step;
	}
	printf("seqsrv: the sender was up to %lld ms late\n", (long long)(late_max / 1000000));
	return seq;
}

static int seq_listen(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int seq_serve(int port, long rate, int bin, int once)
{
	struct sockaddr_in peer;
	socklen_t plen;
	int lfd = seq_listen(port), one = 1;

	if (lfd < 0) {
		printf("seqsrv: cannot listen on port %d: %s\n", port, strerror(errno));
		return 1;
	}
	printf("seqsrv: listening on port %d, %ld records/s, %s\n", port, rate,
	       bin ? "binary u64" : "text");
	fflush(stdout);
	while (!seq_stop) {
		int fd, err;
		uint64_t n;

		plen = sizeof(peer);
		fd = accept(lfd, (struct sockaddr *)&peer, &plen);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			printf("seqsrv: accept: %s\n", strerror(errno));
			break;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		printf("seqsrv: connection from %s:%u\n", inet_ntoa(peer.sin_addr),
		       ntohs(peer.sin_port));
		fflush(stdout);
		n = seq_stream(fd, rate, bin, &err);
		printf("seqsrv: sent %llu records, ended: %s\n", (unsigned long long)n,
		       err ? strerror(-err) : "stopped");
		fflush(stdout);
		close(fd);
		if (once)
			break;
	}
	close(lfd);
	return 0;
}

static int seq_usage(void)
{
	fprintf(stderr, "usage: seqsrv serve PORT [rate=N] [bin] [once] | seqsrv clock\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = seq_on_signal };
	long rate = 200;
	int port, bin = 0, once = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "clock"))
		return seq_clock();
	if (argc < 3 || strcmp(argv[1], "serve"))
		return seq_usage();
	port = atoi(argv[2]);
	for (int i = 3; i < argc; i++) {
		if (!strncmp(argv[i], "rate=", 5))
			rate = atol(argv[i] + 5);
		else if (!strcmp(argv[i], "bin"))
			bin = 1;
		else if (!strcmp(argv[i], "once"))
			once = 1;
		else
			return seq_usage();
	}
	if (port <= 0 || port > 65535 || rate <= 0 || rate > 100000)
		return seq_usage();
	/* No SA_RESTART: a blocked accept or send returns EINTR and we stop. */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return seq_serve(port, rate, bin, once);
}
