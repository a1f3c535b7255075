/* Unit tests for kernel/lib/config.c (host configuration parser). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/config.h"

/* Parse a NUL-terminated string; returns rc and fills c/e. */
static int cfgt_parse(const char *s, struct tern_config *c, struct cfg_error *e)
{
	return cfg_parse(s, strlen(s), c, e);
}

/* Expect an error on `line` whose message equals `msg` exactly. */
static void cfgt_expect_err(const char *text, int line, const char *msg)
{
	struct tern_config c;
	struct cfg_error e;

	int rc = cfgt_parse(text, &c, &e);
	cr_assert_eq(rc, -EINVAL, "accepted: %s", text);
	cr_expect_eq(e.line, line, "line %d != %d for: %s", e.line, line, text);
	if (msg)
		cr_expect_str_eq(e.msg, msg, "for input: %s", text);
}

/* Expect an error on `line` whose message contains `part`. */
static void cfgt_expect_err_has(const char *text, int line, const char *part)
{
	struct tern_config c;
	struct cfg_error e;

	int rc = cfgt_parse(text, &c, &e);
	cr_assert_eq(rc, -EINVAL, "accepted: %s", text);
	cr_expect_eq(e.line, line, "line %d != %d for: %s", e.line, line, text);
	cr_expect(strstr(e.msg, part), "'%s' lacks '%s'", e.msg, part);
}

static void cfgt_ok(const char *text, struct tern_config *c)
{
	struct cfg_error e;
	int rc = cfgt_parse(text, c, &e);

	cr_assert_eq(rc, 0, "rejected '%s': %s", text, e.msg);
	cr_assert_eq(e.msg[0], '\0');
}

Test(config, defaults)
{
	struct tern_config c;

	memset(&c, 0xa5, sizeof(c));
	cfg_defaults(&c);
	cr_expect_str_eq(c.hostname, "tern");
	cr_expect(c.addr_dhcp);
	cr_expect(!c.has_address);
	cr_expect(!c.has_gateway);
	cr_expect_eq(c.console_port, 7023);
	cr_expect(!c.has_secret);
	cr_expect_eq(c.secret[0], '\0');
	cr_expect_eq(c.log_level, CFG_LOG_INFO);
	cr_expect(c.has_serial_console);
}

Test(config, empty_and_comments_only)
{
	struct tern_config c;

	cfgt_ok("", &c);
	cr_expect_str_eq(c.hostname, "tern");
	cfgt_ok("\n\n   \n\t\n# comment\n   # indented comment\n", &c);
	cr_expect_eq(c.console_port, 7023);
	cr_assert_eq(cfg_parse(NULL, 0, &c, NULL), 0);
	cr_assert_eq(cfg_parse(NULL, 5, &c, NULL), -EINVAL);
	cr_assert_eq(cfg_parse("x", 1, NULL, NULL), -EINVAL);
}

Test(config, full_file)
{
	struct tern_config c;

	cfgt_ok("# Tern host config\n"
		"hostname = node-7\n"
		"address = 10.0.0.5/24   # static\n"
		"gateway = 10.0.0.1\n"
		"console_port = 9000\n"
		"secret = \"s3cret # with hash\"\n"
		"log_level = debug\n"
		"serial_console = off\n", &c);
	cr_expect_str_eq(c.hostname, "node-7");
	cr_expect(!c.addr_dhcp);
	cr_expect(c.has_address);
	cr_expect_eq(c.address.addr, 0x0a000005u);
	cr_expect_eq(c.address.prefix, 24);
	cr_expect(c.has_gateway);
	cr_expect_eq(c.gateway, 0x0a000001u);
	cr_expect_eq(c.console_port, 9000);
	cr_expect(c.has_secret);
	cr_expect_str_eq(c.secret, "s3cret # with hash");
	cr_expect_eq(c.log_level, CFG_LOG_DEBUG);
	cr_expect(!c.has_serial_console);
}

Test(config, hostname)
{
	struct tern_config c;
	char buf[200];

	cfgt_ok("hostname=a", &c);
	cr_expect_str_eq(c.hostname, "a");
	cfgt_ok("hostname = 1st-Host9", &c);
	cr_expect_str_eq(c.hostname, "1st-Host9");
	/* 63 characters is the RFC 1123 maximum. */
	snprintf(buf, sizeof(buf), "hostname = %063d", 0);
	buf[11] = 'h';
	cfgt_ok(buf, &c);
	cr_expect_eq(strlen(c.hostname), 63);
	snprintf(buf, sizeof(buf), "hostname = h%063d", 0);
	cfgt_expect_err(buf, 1, "line 1: hostname: must be 1..63 characters");
	cfgt_expect_err("hostname = -abc", 1, "line 1: hostname: must not start or end with '-'");
	cfgt_expect_err("hostname = abc-", 1, "line 1: hostname: must not start or end with '-'");
	cfgt_expect_err("hostname = a_b", 1,
			"line 1: hostname: invalid character (letters, digits and '-' only)");
	cfgt_expect_err_has("hostname = a.b", 1, "invalid character");
	cfgt_expect_err("hostname = \"a b\"", 1, NULL);
	cfgt_expect_err("hostname = \"\"", 1, "line 1: hostname: empty value");
	cfgt_expect_err("hostname =", 1, "line 1: hostname: empty value");
	cfgt_expect_err("hostname =   # nothing", 1, "line 1: hostname: empty value");
}

Test(config, address)
{
	struct tern_config c;

	cfgt_ok("address = dhcp", &c);
	cr_expect(c.addr_dhcp);
	cr_expect(!c.has_address);
	cfgt_ok("address = 192.168.1.10/16", &c);
	cr_expect_eq(c.address.addr, 0xc0a8010au);
	cr_expect_eq(c.address.prefix, 16);
	cfgt_ok("address = 10.0.0.1/32", &c);
	cfgt_ok("address = 10.0.0.0/31", &c);	/* RFC 3021 point-to-point */
	cfgt_ok("address = 10.0.0.1/31", &c);

	const char *bad_syntax[] = {
		"address = 10.0.0.5", "address = 10.0.0.5/", "address = 10.0.0.5/33",
		"address = 10.0.0.5/024", "address = 10.0.0/24", "address = 10.0.0.256/24",
		"address = 010.0.0.5/24", "address = DHCP", "address = 10.0.0.5/24/1",
		"address = 10.0.0.5 /24", "address = 1.2.3.4.5/8", "address = -1.0.0.0/8",
		"address = 10.0.0.5/+8", "address = 10..0.5/24",
	};
	for (size_t i = 0; i < sizeof(bad_syntax) / sizeof(bad_syntax[0]); i++)
		cfgt_expect_err(bad_syntax[i], 1,
				"line 1: address: expected CIDR like 10.0.0.5/24 or 'dhcp'");
	cfgt_expect_err("address = 10.0.0.0/24", 1,
			"line 1: address: 10.0.0.0/24 is the network address");
	cfgt_expect_err("address = 10.0.0.255/24", 1,
			"line 1: address: 10.0.0.255/24 is the broadcast address");
	cfgt_expect_err("address = 127.0.0.1/8", 1,
			"line 1: address: 127.0.0.1 is not a unicast host address");
	cfgt_expect_err_has("address = 224.0.0.1/24", 1, "not a unicast host address");
	cfgt_expect_err_has("address = 0.1.2.3/24", 1, "not a unicast host address");
	cfgt_expect_err("address = 10.0.0.5/0", 1, "line 1: address: prefix /0 is not a subnet");
}

Test(config, gateway)
{
	struct tern_config c;

	cfgt_ok("address = 10.1.2.3/16\ngateway = 10.1.255.254\n", &c);
	cr_expect_eq(c.gateway, 0x0a01fffeu);
	/* Order does not matter: the subnet check runs after the last line. */
	cfgt_ok("gateway = 10.1.0.1\naddress = 10.1.2.3/16\n", &c);
	cfgt_expect_err("gateway = 10.0.0.1\n", 1,
			"line 1: gateway: requires a static address (address is dhcp)");
	cfgt_expect_err("address = dhcp\n\ngateway = 10.0.0.1\n", 3,
			"line 3: gateway: requires a static address (address is dhcp)");
	cfgt_expect_err("address = 10.0.0.5/24\n# x\ngateway = 10.0.1.1\n", 3,
			"line 3: gateway 10.0.1.1 is outside address 10.0.0.5/24 (line 1)");
	cfgt_expect_err("gateway = 192.168.0.1\nhostname = x\naddress = 10.0.0.5/8\n", 1,
			"line 1: gateway 192.168.0.1 is outside address 10.0.0.5/8 (line 3)");
	cfgt_expect_err("address = 10.0.0.5/24\ngateway = 10.0.0.5\n", 2,
			"line 2: gateway: equals the host's own address");
	cfgt_expect_err("gateway = 10.0.0.1/24", 1,
			"line 1: gateway: expected an IPv4 address like 10.0.0.1");
	cfgt_expect_err("gateway = 10.0.0.01", 1, NULL);
	cfgt_expect_err("gateway = dhcp", 1, NULL);
}

Test(config, console_port)
{
	struct tern_config c;

	cfgt_ok("console_port = 1", &c);
	cr_expect_eq(c.console_port, 1);
	cfgt_ok("console_port = 65535", &c);
	cr_expect_eq(c.console_port, 65535);
	const char *bad[] = { "0", "65536", "99999", "123456", "-1", "+80", "80a",
			      "0x50", "080", "8 0", "4294967297" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char line[64];
		snprintf(line, sizeof(line), "console_port = %s", bad[i]);
		cfgt_expect_err(line, 1, "line 1: console_port: expected a port number 1..65535");
	}
}

Test(config, migrate_port)
{
	struct tern_config c;

	cfgt_ok("hostname = a", &c);
	cr_expect_eq(c.migrate_port, 7024);
	cfgt_ok("migrate_port = 9000", &c);
	cr_expect_eq(c.migrate_port, 9000);
	cfgt_expect_err("migrate_port = 0", 1, "line 1: migrate_port: expected a port number 1..65535");
	cfgt_expect_err("migrate_port = 70000", 1, "line 1: migrate_port: expected a port number 1..65535");
}

Test(config, console_idle_timeout)
{
	struct tern_config c;

	cfgt_ok("hostname = a", &c);
	cr_expect_eq(c.console_idle_s, CFG_DEFAULT_CONSOLE_IDLE);
	cfgt_ok("console_idle_timeout = 5", &c);
	cr_expect_eq(c.console_idle_s, 5);
	cfgt_ok("console_idle_timeout = 86400", &c);
	cr_expect_eq(c.console_idle_s, 86400);
	const char *bad[] = { "0", "4", "86401", "99999", "-1", "10s", "0x10",
			      "123456" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char line[64];
		snprintf(line, sizeof(line), "console_idle_timeout = %s", bad[i]);
		cfgt_expect_err(line, 1, "line 1: console_idle_timeout: expected seconds 5..86400");
	}
}

Test(config, secret)
{
	struct tern_config c;
	struct cfg_error e;
	char buf[300];

	cfgt_ok("secret = x", &c);
	cr_expect(c.has_secret);
	cr_expect_str_eq(c.secret, "x");
	cfgt_ok("secret = two words  ", &c);
	cr_expect_str_eq(c.secret, "two words");
	cfgt_ok("secret = \"  \\\"quoted\\\" \\\\ back  \"  # c", &c);
	cr_expect_str_eq(c.secret, "  \"quoted\" \\ back  ");
	cfgt_ok("secret = a#b", &c);	/* '#' not after whitespace */
	cr_expect_str_eq(c.secret, "a#b");

	memset(buf, 0, sizeof(buf));
	strcpy(buf, "secret = ");
	memset(buf + 9, 'k', 127);
	cfgt_ok(buf, &c);
	cr_expect_eq(strlen(c.secret), 127);
	strcat(buf, "Z");
	cr_assert_eq(cfgt_parse(buf, &c, &e), -EINVAL);
	cr_expect_str_eq(e.msg, "line 1: secret: must be 1..127 characters");
	cr_expect(!strstr(e.msg, "kkk"), "secret echoed");
	cfgt_expect_err("secret = caf\xc3\xa9", 1, "line 1: secret: must be printable ASCII");
	cfgt_expect_err("secret = \"\"", 1, "line 1: secret: empty value");
}

Test(config, log_level)
{
	struct tern_config c;
	const char *names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++) {
		char line[40];
		snprintf(line, sizeof(line), "log_level = %s", names[i]);
		cfgt_ok(line, &c);
		cr_expect_eq(c.log_level, i);
		cr_expect_str_eq(cfg_log_level_name(i), names[i]);
	}
	cr_expect_str_eq(cfg_log_level_name(-1), "?");
	cr_expect_str_eq(cfg_log_level_name(4), "?");
	cfgt_expect_err("log_level = DEBUG", 1,
			"line 1: log_level: expected error, warn, info or debug");
	cfgt_expect_err("log_level = 3", 1, NULL);
	cfgt_expect_err("log_level = \"info \"", 1, NULL);
}

Test(config, serial_console)
{
	struct tern_config c;

	cfgt_ok("serial_console = off", &c);
	cr_expect(!c.has_serial_console);
	cfgt_ok("serial_console = on", &c);
	cr_expect(c.has_serial_console);
	cfgt_expect_err("serial_console = yes", 1, "line 1: serial_console: expected on or off");
}

Test(config, syntax_errors_and_line_numbers)
{
	cfgt_expect_err("hostname = a\n\n# c\nfoo = 1\n", 4, "line 4: unknown key 'foo'");
	cfgt_expect_err("hostname = a\nhostname = b\n", 2,
			"line 2: duplicate key 'hostname' (first set on line 1)");
	/* A duplicate is an error even when both values agree. */
	cfgt_expect_err("log_level = info\nlog_level = info", 2, NULL);
	cfgt_expect_err("\nhostname tern\n", 2, "line 2: missing '=' after 'hostname'");
	cfgt_expect_err("hostname\n", 1, "line 1: missing '=' after 'hostname'");
	cfgt_expect_err("= value\n", 1, "line 1: missing key before '='");
	cfgt_expect_err("Hostname = a\n", 1, "line 1: invalid key (expected 'key = value')");
	cfgt_expect_err("host-name = a\n", 1, NULL);
	cfgt_expect_err("secret = \"abc\n", 1, "line 1: secret: unterminated quote");
	cfgt_expect_err("secret = \"abc\\\"\n", 1, "line 1: secret: unterminated quote");
	cfgt_expect_err("secret = \"a\\nb\"\n", 1,
			"line 1: secret: invalid escape in quotes (only \\\" and \\\\)");
	cfgt_expect_err("secret = \"ab\" cd\n", 1,
			"line 1: secret: unexpected text after closing quote");
	cfgt_expect_err("secret = ab\"cd\"\n", 1,
			"line 1: secret: stray '\"' (quote the whole value)");
	cfgt_expect_err("hostname = a\x01\n", 1, "line 1: control character");
	cfgt_expect_err("# comment with \x1b escape\n", 1, "line 1: control character");
	cfgt_expect_err("hostname = a\rb\n", 1, "line 1: control character");
	/* The unknown key is quoted back, bounded. */
	cfgt_expect_err("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa = 1\n", 1,
			"line 1: unknown key 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
}

Test(config, error_keeps_earlier_lines)
{
	struct tern_config c;
	struct cfg_error e;

	cr_assert_eq(cfgt_parse("hostname = early\nconsole_port = 0\nlog_level = debug\n",
				&c, &e), -EINVAL);
	cr_expect_eq(e.line, 2);
	cr_expect_str_eq(c.hostname, "early");
	cr_expect_eq(c.console_port, 7023);
	cr_expect_eq(c.log_level, CFG_LOG_INFO);
	/* NULL err is allowed. */
	cr_expect_eq(cfg_parse("x", 1, &c, NULL), -EINVAL);
}

Test(config, nul_byte_and_unterminated_text)
{
	struct tern_config c;
	struct cfg_error e;
	const char text[] = "hostname = ab\0cd\n";

	cr_assert_eq(cfg_parse(text, sizeof(text) - 1, &c, &e), -EINVAL);
	cr_expect_str_eq(e.msg, "line 1: NUL byte");
	/* Only len bytes are read: "hostname = abXXXX" cut to "hostname = ab". */
	char *heap = malloc(13);
	memcpy(heap, "hostname = ab", 13);
	cr_assert_eq(cfg_parse(heap, 13, &c, &e), 0, "%s", e.msg);
	cr_expect_str_eq(c.hostname, "ab");
	free(heap);
}

Test(config, crlf_and_whitespace)
{
	struct tern_config c;

	cfgt_ok("\thostname\t=\tcr-lf \t\r\n\r\nconsole_port=99\r\n# c\r\n", &c);
	cr_expect_str_eq(c.hostname, "cr-lf");
	cr_expect_eq(c.console_port, 99);
	cfgt_ok("hostname=nonl", &c);	/* no final newline */
	cr_expect_str_eq(c.hostname, "nonl");
	cfgt_ok("secret=\"q\"#c\n", &c);
	cr_expect_str_eq(c.secret, "q");
}

Test(config, line_length_limit)
{
	struct tern_config c;
	struct cfg_error e;
	char buf[600];

	/* 255 characters (a comment) is fine, CR not counted. */
	memset(buf, 'x', sizeof(buf));
	buf[0] = '#';
	memcpy(buf + 255, "\r\nhostname=y\n", 13);
	cr_assert_eq(cfg_parse(buf, 255 + 13, &c, &e), 0, "%s", e.msg);
	cr_expect_str_eq(c.hostname, "y");
	memset(buf, 'x', sizeof(buf));
	buf[0] = '\n';
	buf[1] = '#';
	buf[257] = '\n';
	cr_assert_eq(cfg_parse(buf, 258, &c, &e), -EINVAL);
	cr_expect_eq(e.line, 2);
	cr_expect_str_eq(e.msg, "line 2: line too long (max 255 characters)");
}

Test(config, ipv4_parsers)
{
	uint32_t a;
	struct cfg_ipv4 n;

	cr_expect_eq(cfg_parse_ipv4("0.0.0.0", &a), 0);
	cr_expect_eq(a, 0);
	cr_expect_eq(cfg_parse_ipv4("255.255.255.255", &a), 0);
	cr_expect_eq(a, 0xffffffffu);
	cr_expect_eq(cfg_parse_ipv4("1.2.3.4", &a), 0);
	cr_expect_eq(a, 0x01020304u);
	const char *bad[] = { "", "1", "1.2.3", "1.2.3.4.", ".1.2.3.4", "1.2.3.256",
			      "01.2.3.4", "1.2.3.00", "1.2.3.0004", " 1.2.3.4", "1.2.3.4 ",
			      "1.2.3.-4", "1.2.3.4/8", "a.b.c.d", "1.2.3.4x", "1..3.4" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(cfg_parse_ipv4(bad[i], &a), -EINVAL, "accepted '%s'", bad[i]);
	cr_expect_eq(cfg_parse_ipv4(NULL, &a), -EINVAL);

	cr_expect_eq(cfg_parse_cidr("10.0.0.0/0", &n), 0);
	cr_expect_eq(n.prefix, 0);
	cr_expect_eq(cfg_parse_cidr("10.0.0.7/32", &n), 0);
	cr_expect_eq(n.addr, 0x0a000007u);
	cr_expect_eq(n.prefix, 32);
	const char *badc[] = { "10.0.0.7", "10.0.0.7/", "10.0.0.7/33", "10.0.0.7/08",
			       "10.0.0.7/100", "10.0.0.7/8 ", "/8", "10.0.0.7/-1" };
	for (size_t i = 0; i < sizeof(badc) / sizeof(badc[0]); i++)
		cr_expect_eq(cfg_parse_cidr(badc[i], &n), -EINVAL, "accepted '%s'", badc[i]);
}

/* Exhaustive-ish: every quad with parts from an interesting set round-trips. */
Test(config, ipv4_roundtrip)
{
	const unsigned parts[] = { 0, 1, 9, 10, 99, 100, 199, 200, 249, 250, 255 };
	const size_t np = sizeof(parts) / sizeof(parts[0]);

	for (size_t i = 0; i < np * np * np * np; i++) {
		unsigned p[4] = { parts[i % np], parts[i / np % np],
				  parts[i / np / np % np], parts[i / np / np / np] };
		char s[20];
		uint32_t a;

		snprintf(s, sizeof(s), "%u.%u.%u.%u", p[0], p[1], p[2], p[3]);
		cr_assert_eq(cfg_parse_ipv4(s, &a), 0, "%s", s);
		cr_assert_eq(a, (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]);
	}
}

static uint64_t cfgt_rng_state;

static uint32_t cfgt_rand(void)
{
	cfgt_rng_state = cfgt_rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(cfgt_rng_state >> 33);
}

/* Mutate a valid file; the parser must never crash, must keep NUL-terminated
 * fields, and a successful parse must satisfy every documented invariant. */
Test(config, fuzz)
{
	static const char base[] =
		"# cfg\nhostname = node-1\naddress = 10.0.0.5/24 # s\n"
		"gateway = 10.0.0.1\r\nconsole_port = 7023\n"
		"secret = \"a \\\"b\\\" # c\"\nlog_level = warn\nserial_console = on\n";
	static const char alphabet[] = "=#\"\\ \t\r\n/.0123456789abcdhlpx-_";
	char buf[512];
	unsigned accepted = 0;

	cfgt_rng_state = 42;
	for (int iter = 0; iter < 60000; iter++) {
		size_t len = sizeof(base) - 1;
		struct tern_config c;
		struct cfg_error e;

		memcpy(buf, base, len);
		int muts = 1 + (int)(cfgt_rand() % 6);
		for (int k = 0; k < muts; k++) {
			size_t at = cfgt_rand() % (len + 1);
			uint32_t r = cfgt_rand();
			char ch = (r & 0x100) ? alphabet[r % (sizeof(alphabet) - 1)]
					      : (char)(r & 0xff);
			switch (cfgt_rand() % 3) {
			case 0:
				if (at < len)
					buf[at] = ch;
				break;
			case 1:
				if (len < sizeof(buf)) {
					memmove(buf + at + 1, buf + at, len - at);
					buf[at] = ch;
					len++;
				}
				break;
			default:
				if (at < len) {
					memmove(buf + at, buf + at + 1, len - at - 1);
					len--;
				}
			}
		}
		/* Heap copy of exactly len bytes: ASan catches any over-read. */
		char *copy = malloc(len ? len : 1);
		memcpy(copy, buf, len);
		int rc = cfg_parse(copy, len, &c, &e);
		free(copy);
		cr_assert(memchr(e.msg, 0, sizeof(e.msg)));
		cr_assert(memchr(c.hostname, 0, sizeof(c.hostname)));
		cr_assert(memchr(c.secret, 0, sizeof(c.secret)));
		if (rc) {
			cr_assert_eq(rc, -EINVAL);
			cr_assert(strncmp(e.msg, "line ", 5) == 0, "%s", e.msg);
			cr_assert(e.line >= 1);
			continue;
		}
		accepted++;
		cr_assert_eq(e.msg[0], '\0');
		size_t hl = strlen(c.hostname);
		cr_assert(hl >= 1 && hl <= 63);
		cr_assert(c.console_port >= 1);
		cr_assert(c.log_level >= CFG_LOG_ERROR && c.log_level <= CFG_LOG_DEBUG);
		cr_assert(c.addr_dhcp == !c.has_address);
		if (c.has_gateway) {
			uint32_t m = c.address.prefix ? ~0u << (32 - c.address.prefix) : 0;
			cr_assert(c.has_address);
			cr_assert_eq(c.gateway & m, c.address.addr & m);
		}
		if (c.has_secret)
			for (const char *p = c.secret; *p; p++)
				cr_assert(*p >= 0x20 && *p <= 0x7e);
	}
	/* The mutations must leave a meaningful share of valid files. */
	cr_expect(accepted > 1000, "only %u accepted", accepted);
}

/* `disk` is the one key that may repeat: one line per disk, up to 8. */
Test(config, disk_lines_repeat)
{
	struct tern_config c;
	struct cfg_error e;
	char text[2048] = "";

	cr_assert_eq(cfgt_parse("disk = d0 iscsi://10.0.0.1/iqn.2026-11.x:y/1 chap=u:secret\n"
				"disk = d1 iscsi://10.0.0.1:3261/iqn.2026-11.x:z/0\n", &c, &e), 0,
		     "%s", e.msg);
	cr_assert_eq(c.ndisks, 2);
	cr_expect_str_eq(c.disks[0], "d0 iscsi://10.0.0.1/iqn.2026-11.x:y/1 chap=u:secret");
	cr_expect_str_eq(c.disks[1], "d1 iscsi://10.0.0.1:3261/iqn.2026-11.x:z/0");
	for (int i = 0; i < 9; i++)
		strcat(text, "disk = d iscsi://10.0.0.1/iqn.2026-11.x:y/1\n");
	cfgt_expect_err(text, 9, "line 9: disk: at most 8 disk lines");
	/* Other keys still refuse a second line. */
	cfgt_expect_err("hostname = a\nhostname = b\n", 2, NULL);
}

/* ---- `vm =` lines (kept as text, parsed by cfg_parse_vm) ---- */

Test(config, vm_lines_kept_with_line_numbers)
{
	struct tern_config c;

	cfgt_ok("hostname = h\n"
		"vm = lx mem=256M kernel=linux/vmlinuz initrd=linux/initrd.gz "
		"cmdline=\"console=ttyS0 quiet\" autostart   # the Linux guest\n"
		"\n"
		"vm = mb mem=16M kernel=guests/hello.elf\n", &c);
	cr_assert_eq(c.nvms, 2);
	cr_expect_str_eq(c.vms[0], "lx mem=256M kernel=linux/vmlinuz initrd=linux/initrd.gz "
			 "cmdline=\"console=ttyS0 quiet\" autostart");
	cr_expect_eq(c.vm_lines[0], 2);
	cr_expect_str_eq(c.vms[1], "mb mem=16M kernel=guests/hello.elf");
	cr_expect_eq(c.vm_lines[1], 4);
}

Test(config, vm_lines_at_most_8_and_bad_lines_do_not_fail_the_file)
{
	char text[1024] = "";
	struct tern_config c;

	/* A line cfg_parse_vm refuses still parses as a config line: the host
	 * boots and the kernel reports the guest's error. */
	cfgt_ok("vm = lx memory=1G\nvm = lx mem=1G kernel=k\n", &c);
	cr_expect_eq(c.nvms, 2);
	for (int i = 0; i < 9; i++)
		strcat(text, "vm = v mem=16M kernel=k\n");
	cfgt_expect_err(text, 9, "line 9: vm: at most 8 vm lines");
	/* Quotes inside a vm value are allowed; elsewhere still refused. */
	cfgt_expect_err_has("hostname = a\"b\n", 1, "stray");
}

Test(config, vm_parse_full)
{
	struct cfg_vm v;
	char msg[128];

	cr_assert_eq(cfg_parse_vm("lx mem=256M kernel=linux/vmlinuz initrd=linux/initrd.gz "
				  "cmdline=\"console=ttyS0 loglevel=7\" vcpus=2 autostart",
				  &v, msg, sizeof(msg)), 0, "%s", msg);
	cr_expect_str_eq(v.name, "lx");
	cr_expect_eq(v.mem, 256ull << 20);
	cr_expect_str_eq(v.kernel, "linux/vmlinuz");
	cr_expect_str_eq(v.initrd, "linux/initrd.gz");
	cr_expect_str_eq(v.cmdline, "console=ttyS0 loglevel=7");
	cr_expect_eq(v.vcpus, 2);
	cr_expect(v.autostart);
}

Test(config, vm_parse_defaults_and_sizes)
{
	struct cfg_vm v;

	cr_assert_eq(cfg_parse_vm("  mb   kernel=guests/hello.elf mem=16777216  ", &v, NULL, 0), 0);
	cr_expect_str_eq(v.name, "mb");
	cr_expect_eq(v.mem, 16ull << 20);
	cr_expect_eq(v.vcpus, 1);
	cr_expect_str_eq(v.initrd, "");
	cr_expect_str_eq(v.cmdline, "");
	cr_expect(!v.autostart);
	cr_assert_eq(cfg_parse_vm("a mem=2G kernel=k", &v, NULL, 0), 0);
	cr_expect_eq(v.mem, 2ull << 30);
	cr_assert_eq(cfg_parse_vm("a mem=512k kernel=k cmdline=\"\"", &v, NULL, 0), 0);
	cr_expect_eq(v.mem, 512ull << 10);
	cr_expect_str_eq(v.cmdline, "");
	cr_assert_eq(cfg_parse_vm("a mem=1M kernel=k cmdline=plain", &v, NULL, 0), 0);
	cr_expect_str_eq(v.cmdline, "plain");
}

static void vmt_bad(const char *line, const char *part)
{
	struct cfg_vm v;
	char msg[128];

	cr_assert_eq(cfg_parse_vm(line, &v, msg, sizeof(msg)), -EINVAL, "accepted: %s", line);
	cr_expect(strstr(msg, part), "'%s': message '%s' lacks '%s'", line, msg, part);
}

Test(config, vm_parse_errors)
{
	vmt_bad("", "NAME");
	vmt_bad("bad.name mem=1M kernel=k", "NAME");
	vmt_bad("abcdefghijabcdefghijabcdefghij012 mem=1M kernel=k", "at most 31");
	vmt_bad("lx memory=1G kernel=k", "unknown key 'memory'");
	vmt_bad("lx mem=1G kernel=k start", "unknown key 'start'");
	vmt_bad("lx kernel=k", "mem=SIZE and kernel=PATH are required");
	vmt_bad("lx mem=1G", "mem=SIZE and kernel=PATH are required");
	vmt_bad("lx mem=1T kernel=k", "mem:");
	vmt_bad("lx mem=0 kernel=k", "mem:");
	vmt_bad("lx mem=M kernel=k", "mem:");
	vmt_bad("lx mem=2048G kernel=k", "mem:");
	vmt_bad("lx mem=1M kernel=k vcpus=0", "vcpus");
	vmt_bad("lx mem=1M kernel=k vcpus=2M", "vcpus");
	vmt_bad("lx mem=1M kernel=k vcpus=", "vcpus");
	vmt_bad("lx mem=1M kernel=k cmdline=\"open", "unterminated quote");
	vmt_bad("lx mem=1M kernel=k cmdline=\"a\"b\"\"", "cmdline");
	vmt_bad("lx mem=1M kernel=k initrd=", "initrd");
	vmt_bad("lx mem=1M kernel=\"\"", "kernel");
}

Test(config, vm_parse_long_values)
{
	char line[600], path[120];
	struct cfg_vm v;

	memset(path, 'p', sizeof(path) - 1);
	path[sizeof(path) - 1] = 0;
	snprintf(line, sizeof(line), "lx mem=1M kernel=%s", path);
	vmt_bad(line, "kernel: path empty, too long");
	path[CFG_VM_PATH_MAX - 1] = 0;
	snprintf(line, sizeof(line), "lx mem=1M kernel=%s", path);
	cr_assert_eq(cfg_parse_vm(line, &v, NULL, 0), 0);
	cr_expect_eq(strlen(v.kernel), CFG_VM_PATH_MAX - 1);
}

/* disk= and nic= words are kept whole and in order, for the devices to
 * check when the VM is created. */
Test(config, vm_parse_devices)
{
	struct cfg_vm v;
	char line[700];
	int n = 0;

	cr_assert_eq(cfg_parse_vm("lx mem=256M kernel=k disk=sys nic=auto disk=data "
				  "nic=52:54:00:12:34:56 autostart", &v, NULL, 0), 0);
	cr_assert_eq(v.ndevs, 4);
	cr_expect_str_eq(v.devs[0], "disk=sys");
	cr_expect_str_eq(v.devs[1], "nic=auto");
	cr_expect_str_eq(v.devs[2], "disk=data");
	cr_expect_str_eq(v.devs[3], "nic=52:54:00:12:34:56");
	cr_expect(v.autostart);
	n = snprintf(line, sizeof(line), "lx mem=1M kernel=k");
	for (int i = 0; i < CFG_VM_DEVS_MAX + 1; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " disk=d%d", i);
	vmt_bad(line, "at most 8");
	vmt_bad("lx mem=1M kernel=k disk=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "too long");
	vmt_bad("lx mem=1M kernel=k nic=\"x\"", "quoted");
}

/* console_allow / migrate_allow: addresses and prefixes, host bits refused. */
Test(config, allow_lists)
{
	struct tern_config c;
	struct cfg_error e;

	cr_assert_eq(cfgt_parse("console_allow = 10.77.0.254, 192.168.0.0/16\n"
				"migrate_allow = 10.0.0.0/8 10.78.0.1\n", &c, &e), 0, "%s", e.msg);
	cr_expect_eq(c.console_allow.n, 2);
	cr_expect_eq(c.console_allow.e[0].addr, 0x0a4d00feu);
	cr_expect_eq(c.console_allow.e[0].prefix, 32);
	cr_expect(cfg_allow_match(&c.console_allow, 0x0a4d00feu));
	cr_expect_not(cfg_allow_match(&c.console_allow, 0x0a4d00fdu));
	cr_expect(cfg_allow_match(&c.console_allow, 0xc0a8ff01u));
	cr_expect_not(cfg_allow_match(&c.console_allow, 0xc0a90001u));
	cr_expect_eq(c.migrate_allow.n, 2);
	cr_expect(cfg_allow_match(&c.migrate_allow, 0x0affffffu));
	cr_expect_not(cfg_allow_match(&c.migrate_allow, 0x0b000000u));

	cr_assert_eq(cfgt_parse("hostname = a\n", &c, &e), 0);
	cr_expect_eq(c.console_allow.n, 0);
	cr_expect(cfg_allow_match(&c.console_allow, 0x01020304u), "no list: anyone");

	cfgt_expect_err("console_allow = 10.77.0.1/24\n", 1,
			"line 1: console_allow: 10.77.0.1/24 has host bits set "
			"(did you mean 10.77.0.0/24?)");
	cfgt_expect_err_has("migrate_allow = 10.77.0.1 bogus\n", 1, "got 'bogus'");
	cfgt_expect_err_has("console_allow = ,, ,\n", 1, "at least one");
	cfgt_expect_err_has("console_allow = 1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5 6.6.6.6 "
			    "7.7.7.7 8.8.8.8 9.9.9.9\n", 1, "more than 8");
	cfgt_expect_err_has("console_allow = 10.0.0.0/33\n", 1, "expected addresses");
	cfgt_expect_err_has("console_allow = 1.1.1.1\nconsole_allow = 2.2.2.2\n", 2, "");
}

Test(config, allow_parse_direct)
{
	struct cfg_allow a = { 0 };
	char msg[128];

	cr_expect_eq(cfg_parse_allow("0.0.0.0/0", &a, msg, sizeof(msg)), 0);
	cr_expect(cfg_allow_match(&a, 0xffffffffu));
	cr_expect_eq(cfg_parse_allow("255.255.255.255/32255", &a, msg, sizeof(msg)), -EINVAL);
	cr_expect(strstr(msg, "too long"), "%s", msg);
	cr_expect_eq(cfg_parse_allow(NULL, &a, msg, sizeof(msg)), -EINVAL);
	cr_expect_eq(cfg_parse_allow("1.2.3.4", &a, NULL, 0), 0);
}
