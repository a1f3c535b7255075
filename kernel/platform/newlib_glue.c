/*
 * The system-call hooks Newlib expects from its host.  Newlib for
 * x86_64-elf is built with MISSING_SYSCALL_NAMES, so the hooks carry no
 * leading underscore.  There are no files: stdout/stderr go to the serial
 * console, everything else fails with a proper errno.
 */
#include <errno.h>
#include <reent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/times.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/kernel.h"

#undef errno
extern int errno;

int write(int fd, const void *buf, size_t n);
int read(int fd, void *buf, size_t n);
void *sbrk(ptrdiff_t incr);
int close(int fd);
int fstat(int fd, struct stat *st);
int isatty(int fd);
off_t lseek(int fd, off_t off, int whence);
void _exit(int code);
int kill(int pid, int sig);
int getpid(void);
int open(const char *path, int flags, ...);
int gettimeofday(struct timeval *tv, void *tz);
clock_t times(struct tms *t);
void __malloc_lock(struct _reent *r);
void __malloc_unlock(struct _reent *r);

int write(int fd, const void *buf, size_t n)
{
	if (fd != 1 && fd != 2) {
		errno = EBADF;
		return -1;
	}
	serial_write(buf, n);
	return (int)n;
}

int read(int fd, void *buf, size_t n)
{
	(void)fd, (void)buf, (void)n;
	errno = EBADF;
	return -1;
}

void *sbrk(ptrdiff_t incr)
{
	void *p = mm_heap_grow(incr);

	if (!p) {
		errno = ENOMEM;
		return (void *)-1;
	}
	return p;
}

int close(int fd)
{
	(void)fd;
	errno = EBADF;
	return -1;
}

int fstat(int fd, struct stat *st)
{
	if (fd < 0 || fd > 2) {
		errno = EBADF;
		return -1;
	}
	st->st_mode = S_IFCHR;
	return 0;
}

int isatty(int fd)
{
	return fd >= 0 && fd <= 2;
}

off_t lseek(int fd, off_t off, int whence)
{
	(void)fd, (void)off, (void)whence;
	errno = ESPIPE;
	return -1;
}

/* abort() and exit() land here: a kernel bug, never guest input. */
void _exit(int code)
{
	panic("newlib _exit(%d) called", code);
}

int kill(int pid, int sig)
{
	(void)pid, (void)sig;
	errno = EINVAL;
	return -1;
}

int getpid(void)
{
	return 1;
}

int open(const char *path, int flags, ...)
{
	(void)path, (void)flags;
	errno = ENOENT;
	return -1;
}

int gettimeofday(struct timeval *tv, void *tz)
{
	uint64_t us = time_us();

	(void)tz;
	tv->tv_sec = (time_t)(us / 1000000);
	tv->tv_usec = (suseconds_t)(us % 1000000);
	return 0;
}

clock_t times(struct tms *t)
{
	clock_t c = (clock_t)(time_us() / 1000);

	t->tms_utime = c;
	t->tms_stime = t->tms_cutime = t->tms_cstime = 0;
	return c;
}

/*
 * nano-malloc keeps global free lists, so calls from several CPUs must be
 * serialised.  The lock is recursive per CPU (Newlib may re-enter through
 * sbrk) and disables interrupts so an IRQ handler that allocates cannot
 * deadlock against the CPU it interrupted.
 */
static volatile int malloc_owner = -1;
static int malloc_depth;
static uint64_t malloc_flags;

void __malloc_lock(struct _reent *r)
{
	uint64_t f = irq_save();
	int me = (int)this_cpu()->id;

	(void)r;
	if (malloc_owner == me) {
		malloc_depth++;
		return;
	}
	while (!__atomic_compare_exchange_n(&malloc_owner, &(int){ -1 }, me, false,
					    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		cpu_relax();
	malloc_depth = 1;
	malloc_flags = f;
}

void __malloc_unlock(struct _reent *r)
{
	(void)r;
	if (--malloc_depth)
		return;
	__atomic_store_n(&malloc_owner, -1, __ATOMIC_RELEASE);
	irq_restore(malloc_flags);
}
