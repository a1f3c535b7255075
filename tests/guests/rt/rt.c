/*
 * Guest runtime: COM1 console, a small printf, CHECK reporting, exit,
 * and the IDT with an "expected fault" hook.
 */
#include "guest.h"

#define COM1		0x3F8
#define COM1_LSR	(COM1 + 5)
#define LSR_THRE	(1u << 5)	/* THR empty (16550 datasheet, LSR bit 5) */
#define UART_POLLS	100000		/* a broken LSR must not hang the guest */
#define DEBUG_EXIT_PORT	0xF4		/* QEMU isa-debug-exit compatible */

#define EXC_VECTORS	32
#define GATE_INTR32	0x8E		/* present, DPL 0, 32-bit interrupt gate */
#define SEL_CODE	0x08

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t zero;
	uint8_t type;
	uint16_t off_hi;
} __attribute__((packed));

struct idt_desc {
	uint16_t limit;
	uint32_t base;
} __attribute__((packed));

extern const uint32_t exc_stub_table[EXC_VECTORS];

static const char *guest_name = "?";
static unsigned int checks_pass;
static unsigned int checks_fail;
static struct idt_gate idt[EXC_VECTORS];

/* Fault expectation: written by the test, consumed by the handler. */
static volatile int expect_vector = -1;
static volatile uint8_t expect_skip;
static volatile int fault_vector = -1;
static volatile uint32_t fault_error;

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;

	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;

	while (n--)
		*dp++ = *sp++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;

	if (dp <= sp)
		return memcpy(d, s, n);
	while (n--)
		dp[n] = sp[n];
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *ap = a, *bp = b;

	for (; n; n--, ap++, bp++)
		if (*ap != *bp)
			return *ap - *bp;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

void guest_putc(char c)
{
	unsigned int i;

	if (c == '\n')
		guest_putc('\r');
	for (i = 0; i < UART_POLLS; i++)
		if (inb(COM1_LSR) & LSR_THRE)
			break;
	outb(COM1, (uint8_t)c);
}

void guest_puts(const char *s)
{
	while (*s)
		guest_putc(*s++);
}

/*
 * n / 10 for a 64-bit n without libgcc: two DIVs whose quotients fit in
 * 32 bits (the high remainder is < 10, so EDX:EAX / 10 cannot overflow).
 */
static uint64_t div10(uint64_t n, unsigned int *rem)
{
	uint32_t hi = (uint32_t)(n >> 32), lo = (uint32_t)n;
	uint32_t qhi = hi / 10, r = hi % 10, qlo;

	__asm__("divl %4" : "=a"(qlo), "=d"(r) : "a"(lo), "d"(r), "rm"(10u));
	*rem = r;
	return ((uint64_t)qhi << 32) | qlo;
}

struct fmt_spec {
	bool left;
	bool zero_pad;
	unsigned int width;
	unsigned int longs;
};

static void put_padded(const char *digits, unsigned int len,
		       const struct fmt_spec *spec, bool neg)
{
	unsigned int used = len + (neg ? 1 : 0);
	bool zero = spec->zero_pad && !spec->left;

	if (neg && zero)
		guest_putc('-');
	for (; !spec->left && used < spec->width; used++)
		guest_putc(zero ? '0' : ' ');
	if (neg && !zero)
		guest_putc('-');
	while (len)
		guest_putc(digits[--len]);
	for (; used < spec->width; used++)
		guest_putc(' ');
}

static void put_number(uint64_t v, unsigned int base, bool neg,
		       const struct fmt_spec *spec)
{
	char buf[24];
	unsigned int len = 0, rem;

	do {
		if (base == 16) {
			buf[len++] = "0123456789abcdef"[v & 0xf];
			v >>= 4;
		} else {
			v = div10(v, &rem);
			buf[len++] = (char)('0' + rem);
		}
	} while (v && len < sizeof(buf));
	put_padded(buf, len, spec, neg);
}

static void put_arg(char conv, const struct fmt_spec *spec, va_list *ap)
{
	uint64_t u;
	int64_t s;

	switch (conv) {
	case 'd':
	case 'i':
		s = spec->longs >= 2 ? va_arg(*ap, long long) :
		    spec->longs ? va_arg(*ap, long) : va_arg(*ap, int);
		put_number(s < 0 ? -(uint64_t)s : (uint64_t)s, 10, s < 0, spec);
		break;
	case 'u':
	case 'x':
	case 'X':
		u = spec->longs >= 2 ? va_arg(*ap, unsigned long long) :
		    spec->longs ? va_arg(*ap, unsigned long) :
		    va_arg(*ap, unsigned int);
		put_number(u, conv == 'u' ? 10 : 16, false, spec);
		break;
	case 'p':
		guest_puts("0x");
		put_number((uintptr_t)va_arg(*ap, void *), 16, false, spec);
		break;
	case 'c':
		guest_putc((char)va_arg(*ap, int));
		break;
	case 's': {
		const char *str = va_arg(*ap, const char *);

		guest_puts(str ? str : "(null)");
		break;
	}
	case '%':
		guest_putc('%');
		break;
	default:
		guest_putc('%');
		guest_putc(conv);
		break;
	}
}

void guest_vprintf(const char *fmt, va_list ap)
{
	va_list aq;

	va_copy(aq, ap);
	while (*fmt) {
		struct fmt_spec spec = { false, false, 0, 0 };

		if (*fmt != '%') {
			guest_putc(*fmt++);
			continue;
		}
		fmt++;
		for (; *fmt == '-' || *fmt == '0'; fmt++) {
			if (*fmt == '-')
				spec.left = true;
			else
				spec.zero_pad = true;
		}
		while (*fmt >= '0' && *fmt <= '9' && spec.width < 64)
			spec.width = spec.width * 10 + (unsigned int)(*fmt++ - '0');
		while (*fmt == 'l') {
			spec.longs++;
			fmt++;
		}
		if (!*fmt)
			break;
		put_arg(*fmt++, &spec, &aq);
	}
	va_end(aq);
}

void guest_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	guest_vprintf(fmt, ap);
	va_end(ap);
}

void guest_set_name(const char *name)
{
	guest_name = name;
}

void guest_exit(uint8_t code)
{
	outb(DEBUG_EXIT_PORT, code);
	for (;;)
		__asm__ volatile("cli; hlt");
}

void guest_check(const char *name, bool ok, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		checks_pass++;
		guest_printf("CHECK %s: PASS\n", name);
		return;
	}
	checks_fail++;
	guest_printf("CHECK %s: FAIL ", name);
	va_start(ap, fmt);
	guest_vprintf(fmt, ap);
	va_end(ap);
	guest_putc('\n');
}

void guest_done(void)
{
	guest_printf("GUEST %s DONE pass=%u fail=%u\n", guest_name,
		     checks_pass, checks_fail);
	guest_exit(checks_fail ? GUEST_EXIT_FAIL : GUEST_EXIT_PASS);
}

void guest_idt_install(void)
{
	struct idt_desc desc;
	unsigned int v;

	for (v = 0; v < EXC_VECTORS; v++) {
		idt[v].off_lo = (uint16_t)exc_stub_table[v];
		idt[v].off_hi = (uint16_t)(exc_stub_table[v] >> 16);
		idt[v].sel = SEL_CODE;
		idt[v].zero = 0;
		idt[v].type = GATE_INTR32;
	}
	desc.limit = sizeof(idt) - 1;
	desc.base = (uint32_t)(uintptr_t)idt;
	__asm__ volatile("lidt %0" : : "m"(desc) : "memory");
}

/*
 * The next exception `vector` is expected: the handler records it and
 * resumes `skip_len` bytes past the faulting instruction.  Faults
 * (SDM 6.5) report the EIP of the faulting instruction itself, so the
 * caller knows the length (RDMSR/WRMSR: 2 bytes, 0F 32 / 0F 30).
 */
void guest_expect_fault(uint8_t vector, uint8_t skip_len)
{
	fault_vector = -1;
	fault_error = 0;
	expect_skip = skip_len;
	__asm__ volatile("" : : : "memory");
	expect_vector = vector;
	__asm__ volatile("" : : : "memory");
}

/* The vector taken since guest_expect_fault(), or -1; ends the expectation. */
int guest_fault_taken(uint32_t *error)
{
	int v;

	__asm__ volatile("" : : : "memory");
	expect_vector = -1;
	v = fault_vector;
	if (error)
		*error = fault_error;
	return v;
}

void guest_exception(struct guest_frame *f)
{
	if (expect_vector >= 0 && (uint32_t)expect_vector == f->vector) {
		fault_vector = (int)f->vector;
		fault_error = f->error;
		f->eip += expect_skip;
		expect_vector = -1;
		return;
	}
	guest_printf("GUEST EXCEPTION vector %u error 0x%x eip 0x%08x\n",
		     f->vector, f->error, f->eip);
	guest_printf("  eax=%08x ebx=%08x ecx=%08x edx=%08x esi=%08x edi=%08x "
		     "ebp=%08x eflags=%08x\n", f->eax, f->ebx, f->ecx, f->edx,
		     f->esi, f->edi, f->ebp, f->eflags);
	guest_exit(GUEST_EXIT_EXCEPTION);
}

/* CMPXCHG8B retried with the value it read back until it wins. */
void guest_store64(volatile uint64_t *p, uint64_t v)
{
	uint32_t lo = 0, hi = 0;

	__asm__ volatile("1: lock cmpxchg8b %0\n\tjnz 1b"
			 : "+m"(*p), "+a"(lo), "+d"(hi)
			 : "b"((uint32_t)v), "c"((uint32_t)(v >> 32))
			 : "memory", "cc");
}

/* CMPXCHG8B with equal old and new values reads atomically. */
uint64_t guest_load64(volatile uint64_t *p)
{
	uint32_t lo = 0, hi = 0;

	__asm__ volatile("lock cmpxchg8b %0"
			 : "+m"(*p), "+a"(lo), "+d"(hi)
			 : "b"(0), "c"(0)
			 : "memory", "cc");
	return ((uint64_t)hi << 32) | lo;
}

uint32_t guest_region_end(const struct mb_info *bi, uint32_t start, uint32_t tail)
{
	uint64_t top;

	if (!bi || !(bi->flags & MB_INFO_MEM))
		return 0;
	top = 0x100000ull + (uint64_t)bi->mem_upper * 1024;
	if (top > 0xFFFFF000ull)
		top = 0xFFFFF000ull;	/* 32-bit, paging off */
	top &= ~0xfffull;
	if (top < (uint64_t)start + tail + 0x1000)
		return 0;
	return (uint32_t)top - tail;
}
