/*
 * The host log: leveled messages with a microsecond timestamp, kept in a
 * ring buffer for `log N` and echoed to the serial console.
 *
 * log_lock protects the ring.  Messages are formatted into a stack buffer
 * first so the lock is held only for the copy.
 */
#include <stdio.h>
#include <string.h>
#include "arch.h"
#include "kernel.h"
#include "spinlock.h"
#include "lib/logring.h"

#define LOG_LINE_MAX	256
#define LOG_RING_SIZE	(256 * 1024)

static char log_storage[LOG_RING_SIZE];
static struct logring log_ring;
static struct spinlock log_lock = SPINLOCK_INIT;
static int log_level = LOG_INFO;
static const char level_tag[] = "EWID";

void log_init(void)
{
	logring_init(&log_ring, log_storage, sizeof(log_storage));
}

void log_set_level(int level)
{
	log_level = level;
}

static void log_store(int level, const char *text, size_t len, bool echo)
{
	uint64_t ts = time_us(), f;
	char head[32];
	int n;

	f = spin_lock_irqsave(&log_lock);
	logring_push(&log_ring, level, ts, text, len);
	spin_unlock_irqrestore(&log_lock, f);
	if (!echo)
		return;
	n = snprintf(head, sizeof(head), "[%5lu.%06lu] %c ", ts / 1000000,
		     ts % 1000000, level_tag[level & 3]);
	serial_write(head, (size_t)n);
	serial_write(text, len);
	serial_write("\n", 1);
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
	/* Guest output is stored, not echoed: it would garble the console. */
	log_store(level, buf, p + len, false);
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
