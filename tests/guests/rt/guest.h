/*
 * Runtime for Tern's bare-metal test guests: 32-bit protected mode,
 * paging off, booted by a Multiboot v1 loader (the hypervisor, GRUB or
 * QEMU -kernel).  Console on the COM1 16550, exit through port 0xF4.
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MB_BOOT_MAGIC		0x2BADB002u	/* EAX at entry (Multiboot 0.6.96 3.2) */
#define MB_INFO_MEM		(1u << 0)
#define MB_INFO_CMDLINE		(1u << 2)
#define MB_INFO_MMAP		(1u << 6)
#define MB_MMAP_AVAILABLE	1u

/* Exit codes the integration tests look for. */
#define GUEST_EXIT_PASS		0x10
#define GUEST_EXIT_FAIL		0x11
#define GUEST_EXIT_SURVIVED	0x12	/* crash guest: misbehaviour did not stop it */
#define GUEST_EXIT_EXCEPTION	0x7f

/* Multiboot 0.6.96 section 3.3: boot information (the part we use). */
struct mb_info {
	uint32_t flags;
	uint32_t mem_lower;		/* KiB below 1 MiB */
	uint32_t mem_upper;		/* KiB from 1 MiB to the first hole */
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods_count;
	uint32_t mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length;
	uint32_t mmap_addr;
} __attribute__((packed));

/* One memory map entry; `size` does not count itself. */
struct mb_mmap_entry {
	uint32_t size;
	uint64_t addr;
	uint64_t len;
	uint32_t type;
} __attribute__((packed));

/* Register frame built by the exception stubs in entry.S. */
struct guest_frame {
	uint32_t edi, esi, ebp, esp_unused, ebx, edx, ecx, eax;
	uint32_t vector, error;
	uint32_t eip, cs, eflags;
};

/* Provided by each guest. */
void guest_main(uint32_t magic, const struct mb_info *info);

/* Console */
void guest_putc(char c);
void guest_puts(const char *s);
void guest_vprintf(const char *fmt, va_list ap);
void guest_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Setup and reporting */
void guest_init(const char *name, uint32_t magic, const struct mb_info *info);
void guest_set_name(const char *name);
const struct mb_info *guest_boot_info(void);
bool guest_mmap_covers(const struct mb_info *info, uint64_t base, uint64_t len);
const char *guest_cmdline(const struct mb_info *info);
bool guest_cmdline_has(const char *cmdline, const char *word);
bool guest_cmdline_u64(const char *cmdline, const char *key, uint64_t *val);
void guest_check(const char *name, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void guest_done(void) __attribute__((noreturn));
void guest_exit(uint8_t code) __attribute__((noreturn));

/*
 * End of the usable RAM above start, with tail bytes left alone at the top
 * (from mem_upper, capped at 4 GiB, page aligned), or 0 when the guest has
 * less than one page there.
 */
uint32_t guest_region_end(const struct mb_info *bi, uint32_t start, uint32_t tail);

/* Untearable 64-bit memory access without SSE (LOCK CMPXCHG8B, SDM Vol.
 * 2A): the hypervisor may stop the vCPU between any two instructions, and
 * a migration or dirty-log check must never see half a counter. */
void guest_store64(volatile uint64_t *p, uint64_t v);
uint64_t guest_load64(volatile uint64_t *p);

/* Exceptions */
void guest_idt_install(void);
void guest_expect_fault(uint8_t vector, uint8_t skip_len);
int guest_fault_taken(uint32_t *error);
void guest_exception(struct guest_frame *f);

/* libc bits gcc may emit calls to even with -ffreestanding */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;

	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline void guest_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

static inline uint64_t guest_rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline uint32_t guest_read_cr4(void)
{
	uint32_t v;

	__asm__ volatile("mov %%cr4, %0" : "=r"(v));
	return v;
}

#endif
