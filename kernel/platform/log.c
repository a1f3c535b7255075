/*
 * The host log: leveled messages with a microsecond timestamp, kept in a
 * ring buffer for `log N` and echoed to the serial console.
 *
 * log_lock protects the ring.  Messages are formatted into a stack buffer
 * first so the lock is held only for the copy.
 */
#include <stdio.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/kernel.h"
#include "kernel/platform/spinlock.h"
#include "kernel/lib/logring.h"

#define LOG_LINE_MAX	256
#define LOG_RING_SIZE	(256 * 1024)

static char log_storage[LOG_RING_SIZE];
static struct logring log_ring;
static struct spinlock log_lock = SPINLOCK_INIT;
static int log_level = LOG_INFO;
static const char level_tag[] = "EWID";
/*
 * Echo to the serial console.  Until the console runs, lines are echoed
 * as they are logged.  After that, only the boot CPU writes the console:
 * every CPU leaves its lines in the ring and calls the console's kick,
 * which prints them in order with a command's output while one runs, or
 * else above the line being edited (console.c says how), so a message
 * never lands in the middle of the operator's typing.
 */
static bool echo_deferred;
static uint64_t echo_seq;		/* next ring line to echo */
static uint64_t echo_want;		/* ring end after the last echoable line */
static void (*echo_kick)(void);

void log_init(void)
{
	logring_init(&log_ring, log_storage, sizeof(log_storage));
}

void log_set_level(int level)
{
	log_level = level;
}

static void echo_line(int level, uint64_t ts, const char *text, size_t len)
{
	char head[32];
	int n = snprintf(head, sizeof(head), "[%5lu.%06lu] %c ", ts / 1000000,
			 ts % 1000000, level_tag[level & 3]);

	serial_write(head, (size_t)n);
	serial_write(text, len);
	serial_write("\n", 1);
}

static void echo_one(void *ctx, const struct logring_entry *e)
{
	(void)ctx;
	if (e->level <= log_level)
		echo_line(e->level, e->ts_us, e->text, e->len);
}

/* Boot CPU only: print every line logged since the last call. */
size_t log_echo_pending(void)
{
	uint64_t f = spin_lock_irqsave(&log_lock);
	size_t n = 0;

	if (logring_next_seq(&log_ring) != echo_seq)
		n = logring_since(&log_ring, echo_seq, (size_t)-1, echo_one, NULL);
	echo_seq = logring_next_seq(&log_ring);
	spin_unlock_irqrestore(&log_lock, f);
	return n;
}

bool log_echo_waiting(void)
{
	return echo_deferred && __atomic_load_n(&echo_want, __ATOMIC_ACQUIRE) > echo_seq;
}

void log_defer_echo(void (*kick)(void))
{
	echo_kick = kick;
	echo_seq = logring_next_seq(&log_ring);
	echo_deferred = true;
}

static void log_store(int level, const char *text, size_t len, bool echo)
{
	uint64_t ts = time_us(), f;

	f = spin_lock_irqsave(&log_lock);
	logring_push(&log_ring, level, ts, text, len);
	if (!echo_deferred)
		echo_seq = logring_next_seq(&log_ring);
	else if (echo)
		echo_want = logring_next_seq(&log_ring);
	spin_unlock_irqrestore(&log_lock, f);
	if (!echo_deferred) {
		if (echo)
			echo_line(level, ts, text, len);
		return;
	}
	/* The console decides when they can be printed (console.c): a
	 * line is never written into the middle of one being typed. */
	if (echo && echo_kick)
		echo_kick();
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
	char buf[LOG_LINE_MAX];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t len;

	if (n < 0)
		return;
	len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	log_store(level, buf, len, level <= log_level);
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_line(int level, const char *prefix, const char *text, size_t len)
{
	char buf[LOG_LINE_MAX];
	size_t p = strlen(prefix);

	if (p > sizeof(buf) / 2)
		p = sizeof(buf) / 2;
	memcpy(buf, prefix, p);
	if (len > sizeof(buf) - p)
		len = sizeof(buf) - p;
	memcpy(buf + p, text, len);
	/* Guest output is stored, not echoed (`log N` and `vm console` show it). */
	log_store(level == LOG_INFO ? LOG_DEBUG : level, buf, p + len, false);
}

struct tail_ctx {
	void (*cb)(void *ctx, int level, uint64_t ts_us, const char *text,
		   size_t len);
	void *ctx;
};

static void tail_one(void *ctx, const struct logring_entry *e)
{
	struct tail_ctx *t = ctx;

	t->cb(t->ctx, e->level, e->ts_us, e->text, e->len);
}

/* The callback runs with the log locked: it must not log. */
size_t log_tail(size_t n, void (*cb)(void *ctx, int level, uint64_t ts_us,
				     const char *text, size_t len), void *ctx)
{
	struct tail_ctx t = { cb, ctx };
	uint64_t f = spin_lock_irqsave(&log_lock);
	size_t got = logring_tail(&log_ring, n, tail_one, &t);

	spin_unlock_irqrestore(&log_lock, f);
	return got;
}

/* The exception path: format on the stack, bypass every log lock but the
 * UART's own, which cannot be held by a CPU that is still running code. */
void panic_printf(const char *fmt, ...)
{
	char buf[LOG_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		serial_write(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void panic(const char *fmt, ...)
{
	char buf[LOG_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	irq_disable();
	panic_printf("\n*** PANIC: %s\n", buf);
	cpu_halt_forever();
}
