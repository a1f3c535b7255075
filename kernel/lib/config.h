/*
 * Host configuration file parser (tern.cfg).
 *
 * LOADER-SAFE: the UEFI loader parses the file too, so that a malformed
 * configuration is refused before anything boots.  The implementation
 * therefore uses only memcpy/memset/memcmp/memchr/strlen/strcmp/strncmp/
 * strchr from libc; no snprintf.
 *
 * Format, one setting per line:
 *
 *	# full-line comment
 *	key = value		# comment after whitespace
 *	secret = "has # and spaces, \" and \\ escaped"
 *
 * Surrounding whitespace is trimmed, CRLF line ends are accepted, blank
 * lines are skipped.  A '#' starts a comment only at the start of a line
 * or after whitespace, so an unquoted value may contain '#'.  Unknown or
 * duplicate keys, lines longer than CFG_LINE_MAX, NUL or other control
 * bytes (except tab) are errors.
 */
#ifndef TERN_LIB_CONFIG_H
#define TERN_LIB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFG_NAME_MAX	64	/* hostname buffer: 63 chars + NUL */
#define CFG_SECRET_MAX	128	/* secret buffer: 127 chars + NUL */
#define CFG_LINE_MAX	255	/* characters per line, line end excluded */

/* log_level values; the numeric order is the verbosity order. */
enum {
	CFG_LOG_ERROR = 0,
	CFG_LOG_WARN = 1,
	CFG_LOG_INFO = 2,
	CFG_LOG_DEBUG = 3,
};

#define CFG_DEFAULT_HOSTNAME	"tern"
#define CFG_DEFAULT_CONSOLE_PORT 7023
#define CFG_DEFAULT_CONSOLE_IDLE 300	/* seconds */
#define CFG_DEFAULT_MIGRATE_PORT 7024
#define CFG_DISKS_MAX		8	/* `disk =` lines */
#define CFG_VMS_MAX		8	/* `vm =` lines */
#define CFG_CONSOLE_IDLE_MIN	5
#define CFG_CONSOLE_IDLE_MAX	86400
#define CFG_ALLOW_MAX		8	/* entries of one `*_allow =` list */

struct cfg_ipv4 {
	uint32_t addr;		/* host byte order: 10.0.0.5 is 0x0a000005 */
	uint8_t prefix;		/* 0..32 */
};

/*
 * Peers a listener accepts (`console_allow =`, `migrate_allow =`): up to
 * CFG_ALLOW_MAX addresses or prefixes.  n == 0 means anyone (no list).
 */
struct cfg_allow {
	unsigned n;
	struct cfg_ipv4 e[CFG_ALLOW_MAX];	/* a single address is /32 */
};

struct tern_config {
	char hostname[CFG_NAME_MAX];	/* NUL-terminated RFC 1123 label */
	bool addr_dhcp;			/* true unless a static address is set */
	struct cfg_ipv4 address;	/* valid when has_address */
	bool has_address;
	bool has_gateway;
	uint32_t gateway;		/* host byte order, valid when has_gateway */
	uint16_t console_port;		/* TCP port of the network console */
	uint32_t console_idle_s;	/* idle timeout of a network console client */
	uint16_t migrate_port;		/* TCP port for incoming migrations */
	struct cfg_allow console_allow;	/* who may connect to the console port */
	struct cfg_allow migrate_allow;	/* and to the migration ports */
	bool has_secret;
	char secret[CFG_SECRET_MAX];	/* NUL-terminated, valid when has_secret */
	int log_level;			/* CFG_LOG_* */
	bool has_serial_console;	/* serial console enabled (default on) */
	unsigned ndisks;		/* `disk = NAME URL [options]` lines, */
	char disks[CFG_DISKS_MAX][CFG_LINE_MAX + 1];	/* as written */
	unsigned nvms;			/* `vm = NAME key=value... [autostart]` */
	char vms[CFG_VMS_MAX][CFG_LINE_MAX + 1];	/* as written, see */
	int vm_lines[CFG_VMS_MAX];	/* cfg_parse_vm; and their line numbers */
};

/*
 * One guest declared in tern.cfg:
 *
 *	vm = NAME mem=SIZE kernel=PATH [initrd=PATH] [cmdline="..."]
 *	     [vcpus=N] [autostart]
 *
 * The values are those of the `vm create` command; SIZE is decimal with
 * an optional K, M or G suffix.  cmdline's quotes may hold spaces but no
 * '"' and no " #" (which starts a comment).  The line is kept as text by
 * cfg_parse, so a bad one never stops the host from booting: the kernel
 * parses it with cfg_parse_vm when it creates the guests, and logs why.
 */
#define CFG_VM_NAME_MAX		32
#define CFG_VM_PATH_MAX		96
#define CFG_VM_CMDLINE_MAX	256
#define CFG_VM_DEVS_MAX		8	/* disk= and nic= words per vm line */
#define CFG_VM_DEV_MAX		48	/* one such word */

struct cfg_vm {
	char name[CFG_VM_NAME_MAX];
	uint64_t mem;			/* bytes */
	uint32_t vcpus;			/* 1 unless given */
	char kernel[CFG_VM_PATH_MAX];
	char initrd[CFG_VM_PATH_MAX];	/* "" for none */
	char cmdline[CFG_VM_CMDLINE_MAX];
	/* "disk=NAME" and "nic=MAC|auto" words, in order, as written. */
	unsigned ndevs;
	char devs[CFG_VM_DEVS_MAX][CFG_VM_DEV_MAX];
	bool autostart;
};

struct cfg_error {
	int line;	/* 1-based line of the error, 0 when not tied to a line */
	char msg[128];	/* complete message, e.g. "line 3: address: ..." */
};

/* Fill *c with the built-in defaults. */
void cfg_defaults(struct tern_config *c);

/*
 * Parse len bytes of text (need not be NUL-terminated) into *out, which is
 * first reset to the defaults.  Returns 0, or -EINVAL with *err filled in
 * (err may be NULL); on error *out holds the defaults plus every line that
 * was accepted before the failing one.  The secret is never echoed into
 * an error message.
 */
int cfg_parse(const char *text, size_t len, struct tern_config *out,
	      struct cfg_error *err);

/*
 * Strict dotted quad "a.b.c.d": four decimal parts 0..255 with no leading
 * zeros (so "010" cannot be read as octal by some other tool), nothing
 * before or after.  Returns 0 or -EINVAL.
 */
int cfg_parse_ipv4(const char *s, uint32_t *out);

/* "a.b.c.d/p" with p 0..32 (no leading zeros).  Returns 0 or -EINVAL. */
int cfg_parse_cidr(const char *s, struct cfg_ipv4 *out);

/*
 * An allow list: addresses "a.b.c.d" and prefixes "a.b.c.d/p", separated
 * by spaces or commas, at most CFG_ALLOW_MAX.  A prefix's host bits must
 * be zero (10.1.2.0/24, not 10.1.2.3/24: which one was meant?).  Returns
 * 0, or -EINVAL with a one-line reason in msg[0, msglen).
 */
int cfg_parse_allow(const char *s, struct cfg_allow *out, char *msg, size_t msglen);

/* addr (host byte order) is on the list, or the list is empty. */
bool cfg_allow_match(const struct cfg_allow *a, uint32_t addr);

/*
 * Parse the text of a `vm =` line (as kept in tern_config.vms) into *out.
 * Returns 0, or -EINVAL with a one-line reason in msg[0, msglen) (e.g.
 * "unknown key 'memory'", "mem=SIZE and kernel=PATH are required").
 * Names, paths and sizes are checked for form only; vm_create checks the
 * rest (ranges, the files on the ESP).
 */
int cfg_parse_vm(const char *line, struct cfg_vm *out, char *msg, size_t msglen);

/* "error", "warn", "info", "debug", or "?" for an out-of-range level. */
const char *cfg_log_level_name(int lvl);

#endif
