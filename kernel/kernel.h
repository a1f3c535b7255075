/* Core kernel services shared by every subsystem. */
#ifndef TERN_KERNEL_H
#define TERN_KERNEL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kernel/platform/bootinfo.h"

#define PAGE_SIZE	4096ul
#define PAGE_SHIFT	12
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a)	(((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define MAX_CPUS	64

/* ---- log.c: leveled log, ring buffer, serial sink ---- */
enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_init(void);
void log_set_level(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);
/* A line from elsewhere (a guest's UART): stored and shown as-is. */
void log_line(int level, const char *prefix, const char *text, size_t len);
size_t log_echo_pending(void);		/* console CPU: print new lines */
bool log_echo_waiting(void);
void log_defer_echo(void (*kick)(void));
size_t log_tail(size_t n, void (*cb)(void *ctx, int level, uint64_t ts_us,
				     const char *text, size_t len), void *ctx);

#define pr_err(...)	log_msg(LOG_ERROR, __VA_ARGS__)
#define pr_warn(...)	log_msg(LOG_WARN, __VA_ARGS__)
#define pr_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define pr_debug(...)	log_msg(LOG_DEBUG, __VA_ARGS__)

/* Raw, lock-free output for the exception path: never blocks on log locks. */
void panic_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* ---- serial.c: 16550 UART ---- */
void serial_init(uint16_t port);
void serial_write(const char *s, size_t n);
int serial_getc(void);		/* -1 when the FIFO is empty */
void serial_enable_rx_irq(void);
bool serial_present(void);

/* ---- mm.c: physical pages, direct map, heap ---- */
static inline void *phys_to_virt(uint64_t pa)
{
	return (void *)(uintptr_t)(pa + DIRECT_MAP_BASE);
}

uint64_t virt_to_phys(const void *va);
void mm_init(const struct boot_info *bi);
void *page_alloc(size_t pages);			/* zeroed, direct-mapped */
void *page_alloc_below(size_t pages, uint64_t limit);
void page_free(void *va, size_t pages);
uint64_t page_alloc_phys_aligned(size_t pages, size_t align_pages);	/* 0 = none */
void page_free_phys(uint64_t pa, size_t pages);
void mm_stats(uint64_t *total, uint64_t *used, uint64_t *free_bytes);
void *mmio_map(uint64_t phys, size_t len);	/* uncached view */
void *mm_heap_grow(intptr_t incr);		/* sbrk backend; NULL when full */

/* ---- time.c: TSC, reference timers, LAPIC timer ---- */
void time_init(void);
uint64_t time_us(void);			/* since boot */
uint64_t wall_clock_ns(void);		/* since 1970 UTC, 0 if unknown */
uint64_t tsc_hz(void);
void udelay(uint64_t us);
const char *time_source(void);

/* ---- acpi.c ---- */
struct acpi_info;
const struct acpi_info *acpi_get(void);
void acpi_init(uint64_t rsdp_phys);
int acpi_poweroff(void);
int system_poweroff(void);		/* ACPI S5, else UEFI ResetSystem */
void acpi_reboot(void) __attribute__((noreturn));
uint32_t acpi_pm_timer_read(void);	/* 0 if absent */

/* ---- boot state ---- */
extern const struct boot_info *boot_info;
extern uint64_t boot_tsc_at_entry;

#endif
