/*
 * ports: port I/O to nothing reads all-ones and writes vanish, as on
 * an ISA/PCI bus with no decoder claiming the cycle; the COM1 scratch
 * register (16550 SCR, offset 7) keeps what is written.
 */
#include "guest.h"

#define PORT_UNUSED_A	0x1230
#define PORT_UNUSED_B	0xE000
#define COM1_SCR	0x3FF

static void check_unused_reads(const char *name, uint16_t port)
{
	uint8_t b = inb(port);
	uint16_t w = inw(port);
	uint32_t l = inl(port);

	guest_check(name, b == 0xff && w == 0xffff && l == 0xffffffffu,
		    "port 0x%x: inb 0x%x inw 0x%x inl 0x%x", port, b, w, l);
}

static void check_unused_writes(const char *name, uint16_t port)
{
	uint32_t l;

	outb(port, 0x5a);
	outw(port, 0x1234);
	outl(port, 0xdeadbeef);
	/* Reaching here means no fault; the writes must not be latched. */
	l = inl(port);
	guest_check(name, l == 0xffffffffu, "port 0x%x reads 0x%x after writes",
		    port, l);
}

static void check_scratch(void)
{
	static const uint8_t pattern[] = { 0x5a, 0xa5, 0x00, 0xff, 0x3c };
	unsigned int i;
	uint8_t v;

	for (i = 0; i < sizeof(pattern); i++) {
		outb(COM1_SCR, pattern[i]);
		v = inb(COM1_SCR);
		if (v != pattern[i])
			break;
	}
	guest_check("uart_scratch", i == sizeof(pattern),
		    "wrote 0x%x read 0x%x", i < sizeof(pattern) ? pattern[i] : 0,
		    i < sizeof(pattern) ? v : 0);
}

void guest_main(uint32_t magic, const struct mb_info *info)
{
	guest_init("ports", magic, info);
	check_unused_reads("unused_read_1230", PORT_UNUSED_A);
	check_unused_reads("unused_read_e000", PORT_UNUSED_B);
	check_unused_writes("unused_write_1230", PORT_UNUSED_A);
	check_unused_writes("unused_write_e000", PORT_UNUSED_B);
	check_scratch();
	guest_done();
}
