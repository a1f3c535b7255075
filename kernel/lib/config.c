/*
 * Host configuration file parser.  LOADER-SAFE: see config.h for the libc
 * subset this file may use.  Messages are built with the cfg_msg helpers
 * below instead of snprintf.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/config.h"

#define CFG_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define CFG_KEY_ECHO_MAX	32	/* longest key quoted back in a message */

/* ---- bounded message builder (always NUL-terminated, truncates) ---- */

struct cfg_msg {
	char *buf;
	size_t cap;	/* including the NUL */
	size_t len;
};

static void msg_init(struct cfg_msg *m, char *buf, size_t cap)
{
	m->buf = buf;
	m->cap = cap;
	m->len = 0;
	buf[0] = '\0';
}

static void msg_putn(struct cfg_msg *m, const char *s, size_t n)
{
	size_t room = m->cap - 1 - m->len;

	if (n > room)
		n = room;
	memcpy(m->buf + m->len, s, n);
	m->len += n;
	m->buf[m->len] = '\0';
}

static void msg_puts(struct cfg_msg *m, const char *s)
{
	msg_putn(m, s, strlen(s));
}

static void msg_putu(struct cfg_msg *m, uint32_t v)
{
	char tmp[10];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	msg_putn(m, tmp + i, sizeof(tmp) - i);
}

static void msg_put_ipv4(struct cfg_msg *m, uint32_t a)
{
	for (int shift = 24; shift >= 0; shift -= 8) {
		msg_putu(m, (a >> shift) & 0xff);
		if (shift)
			msg_puts(m, ".");
	}
}

static void msg_put_cidr(struct cfg_msg *m, const struct cfg_ipv4 *c)
{
	msg_put_ipv4(m, c->addr);
	msg_puts(m, "/");
	msg_putu(m, c->prefix);
}

/* Quote a key back to the user: only [a-z0-9_] reaches here, but bound it. */
static void msg_put_key(struct cfg_msg *m, const char *k, size_t n)
{
	msg_puts(m, "'");
	if (n > CFG_KEY_ECHO_MAX) {
		msg_putn(m, k, CFG_KEY_ECHO_MAX);
		msg_puts(m, "...");
	} else {
		msg_putn(m, k, n);
	}
	msg_puts(m, "'");
}

/* ---- small parsers ---- */

static bool cfg_is_ws(char c)
{
	return c == ' ' || c == '\t';
}

static bool cfg_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Parse a decimal number of at most max_digits digits, no sign, no leading
 * zero unless the number is "0".  Advances *s.  Returns false on error.
 */
static bool cfg_parse_dec(const char **s, unsigned max_digits, uint32_t *out)
{
	const char *p = *s;
	uint32_t v = 0;
	unsigned n = 0;

	while (cfg_is_digit(p[n])) {
		if (n == max_digits)
			return false;
		v = v * 10 + (uint32_t)(p[n] - '0');
		n++;
	}
	if (n == 0 || (n > 1 && p[0] == '0'))
		return false;
	*s = p + n;
	*out = v;
	return true;
}

static bool cfg_parse_quad(const char **s, uint32_t *out)
{
	uint32_t addr = 0, part;

	for (int i = 0; i < 4; i++) {
		if (i && *(*s)++ != '.')
			return false;
		if (!cfg_parse_dec(s, 3, &part) || part > 255)
			return false;
		addr = addr << 8 | part;
	}
	*out = addr;
	return true;
}

int cfg_parse_ipv4(const char *s, uint32_t *out)
{
	uint32_t a;

	if (!s || !out || !cfg_parse_quad(&s, &a) || *s)
		return -EINVAL;
	*out = a;
	return 0;
}

int cfg_parse_cidr(const char *s, struct cfg_ipv4 *out)
{
	uint32_t a, p;

	if (!s || !out || !cfg_parse_quad(&s, &a) || *s++ != '/')
		return -EINVAL;
	if (!cfg_parse_dec(&s, 2, &p) || p > 32 || *s)
		return -EINVAL;
	out->addr = a;
	out->prefix = (uint8_t)p;
	return 0;
}

static uint32_t cfg_mask(uint8_t prefix)
{
	return prefix ? ~(uint32_t)0 << (32 - prefix) : 0;
}

/* One entry of an allow list, w[0..n): an address (a /32) or a prefix. */
static int cfg_allow_entry(const char *w, size_t n, struct cfg_ipv4 *e,
			   struct cfg_msg *m)
{
	char word[20];			/* "255.255.255.255/32" and a NUL */
	struct cfg_ipv4 net;

	if (n >= sizeof(word)) {
		msg_puts(m, "an entry is too long for an address or prefix");
		return -EINVAL;
	}
	memcpy(word, w, n);
	word[n] = '\0';
	if (!cfg_parse_ipv4(word, &e->addr)) {
		e->prefix = 32;
		return 0;
	}
	if (cfg_parse_cidr(word, e)) {
		msg_puts(m, "expected addresses like 10.0.0.5 or prefixes like 10.0.0.0/24, got '");
		msg_puts(m, word);
		msg_puts(m, "'");
		return -EINVAL;
	}
	net = (struct cfg_ipv4){ e->addr & cfg_mask(e->prefix), e->prefix };
	if (net.addr != e->addr) {
		msg_put_cidr(m, e);
		msg_puts(m, " has host bits set (did you mean ");
		msg_put_cidr(m, &net);
		msg_puts(m, "?)");
		return -EINVAL;
	}
	return 0;
}

/* Not strspn/strcspn: the loader links this file without them
 * (boot/mini_libc.c). */
static int cfg_allow_words(const char *s, struct cfg_allow *out, struct cfg_msg *m)
{
	struct cfg_allow a = { 0 };

	for (;;) {
		size_t n = 0;

		while (cfg_is_ws(*s) || *s == ',')
			s++;
		if (!*s)
			break;
		while (s[n] && !cfg_is_ws(s[n]) && s[n] != ',')
			n++;
		if (a.n == CFG_ALLOW_MAX) {
			msg_puts(m, "more than ");
			msg_putu(m, CFG_ALLOW_MAX);
			msg_puts(m, " entries");
			return -EINVAL;
		}
		if (cfg_allow_entry(s, n, &a.e[a.n], m) < 0)
			return -EINVAL;
		a.n++;
		s += n;
	}
	if (!a.n) {
		msg_puts(m, "expected at least one address or prefix");
		return -EINVAL;
	}
	*out = a;
	return 0;
}

int cfg_parse_allow(const char *s, struct cfg_allow *out, char *msg, size_t msglen)
{
	struct cfg_msg m;
	char dummy[1];

	msg_init(&m, msg && msglen ? msg : dummy, msg && msglen ? msglen : sizeof(dummy));
	if (!s || !out) {
		msg_puts(&m, "no list");
		return -EINVAL;
	}
	return cfg_allow_words(s, out, &m);
}

bool cfg_allow_match(const struct cfg_allow *a, uint32_t addr)
{
	if (!a->n)
		return true;
	for (unsigned i = 0; i < a->n; i++)
		if ((addr & cfg_mask(a->e[i].prefix)) == a->e[i].addr)
			return true;
	return false;
}

static const char *const cfg_level_names[] = {
	[CFG_LOG_ERROR] = "error",
	[CFG_LOG_WARN] = "warn",
	[CFG_LOG_INFO] = "info",
	[CFG_LOG_DEBUG] = "debug",
};

const char *cfg_log_level_name(int lvl)
{
	if (lvl < 0 || (size_t)lvl >= CFG_ARRAY_SIZE(cfg_level_names))
		return "?";
	return cfg_level_names[lvl];
}

void cfg_defaults(struct tern_config *c)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->hostname, CFG_DEFAULT_HOSTNAME, sizeof(CFG_DEFAULT_HOSTNAME));
	c->addr_dhcp = true;
	c->console_port = CFG_DEFAULT_CONSOLE_PORT;
	c->console_idle_s = CFG_DEFAULT_CONSOLE_IDLE;
	c->migrate_port = CFG_DEFAULT_MIGRATE_PORT;
	c->log_level = CFG_LOG_INFO;
	c->has_serial_console = true;
}

/*
 * ---- key handlers ----
 * Each gets the unquoted value (NUL-terminated, 1..CFG_LINE_MAX chars, no
 * control bytes) and either updates *c and returns 0, or leaves *c alone,
 * appends the problem to *m (which already holds "line N: key: ") and
 * returns -EINVAL.
 */

/* RFC 1123 section 2.1: a label is letters, digits and '-', may start
 * with a digit, must not start or end with '-', 1..63 characters. */
static int cfg_set_hostname(struct tern_config *c, const char *v, size_t n,
			    struct cfg_msg *m)
{
	if (n > CFG_NAME_MAX - 1) {
		msg_puts(m, "must be 1..63 characters");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		char ch = v[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  cfg_is_digit(ch) || ch == '-';
		if (!ok) {
			msg_puts(m, "invalid character (letters, digits and '-' only)");
			return -EINVAL;
		}
	}
	if (v[0] == '-' || v[n - 1] == '-') {
		msg_puts(m, "must not start or end with '-'");
		return -EINVAL;
	}
	memcpy(c->hostname, v, n + 1);
	return 0;
}

static int cfg_set_address(struct tern_config *c, const char *v, size_t n,
			   struct cfg_msg *m)
{
	struct cfg_ipv4 a;
	uint32_t host_mask;

	(void)n;
	if (strcmp(v, "dhcp") == 0) {
		c->addr_dhcp = true;
		c->has_address = false;
		memset(&c->address, 0, sizeof(c->address));
		return 0;
	}
	if (cfg_parse_cidr(v, &a)) {
		msg_puts(m, "expected CIDR like 10.0.0.5/24 or 'dhcp'");
		return -EINVAL;
	}
	/* 0/8 "this network", 127/8 loopback, 224/4 multicast and 240/4
	 * reserved cannot be a host's own address (RFC 1122 3.2.1.3). */
	if ((a.addr >> 24) == 0 || (a.addr >> 24) == 127 || (a.addr >> 28) >= 14) {
		msg_put_ipv4(m, a.addr);
		msg_puts(m, " is not a unicast host address");
		return -EINVAL;
	}
	if (a.prefix == 0) {
		msg_puts(m, "prefix /0 is not a subnet");
		return -EINVAL;
	}
	/* /31 (RFC 3021) and /32 have no network or broadcast address. */
	host_mask = ~cfg_mask(a.prefix);
	if (a.prefix <= 30 && ((a.addr & host_mask) == 0 ||
			       (a.addr & host_mask) == host_mask)) {
		msg_put_cidr(m, &a);
		msg_puts(m, (a.addr & host_mask) ? " is the broadcast address"
						 : " is the network address");
		return -EINVAL;
	}
	c->address = a;
	c->has_address = true;
	c->addr_dhcp = false;
	return 0;
}

static int cfg_set_gateway(struct tern_config *c, const char *v, size_t n,
			   struct cfg_msg *m)
{
	uint32_t g;

	(void)n;
	if (cfg_parse_ipv4(v, &g)) {
		msg_puts(m, "expected an IPv4 address like 10.0.0.1");
		return -EINVAL;
	}
	c->gateway = g;
	c->has_gateway = true;
	return 0;
}

/* "1".."65535" into *out; the message names the range. */
static int cfg_port(const char *v, uint16_t *out, struct cfg_msg *m)
{
	const char *p = v;
	uint32_t port;

	if (!cfg_parse_dec(&p, 5, &port) || *p || port < 1 || port > 65535) {
		msg_puts(m, "expected a port number 1..65535");
		return -EINVAL;
	}
	*out = (uint16_t)port;
	return 0;
}

static int cfg_set_console_port(struct tern_config *c, const char *v, size_t n,
				struct cfg_msg *m)
{
	(void)n;
	return cfg_port(v, &c->console_port, m);
}

static int cfg_set_migrate_port(struct tern_config *c, const char *v, size_t n,
				struct cfg_msg *m)
{
	(void)n;
	return cfg_port(v, &c->migrate_port, m);
}

/* Seconds a network console connection may stay silent before it is
 * closed: long enough for an operator to read, short enough that a dead
 * peer does not hold one of the few client slots for long. */
static int cfg_set_console_idle(struct tern_config *c, const char *v, size_t n,
				struct cfg_msg *m)
{
	const char *p = v;
	uint32_t secs;

	(void)n;
	if (!cfg_parse_dec(&p, 5, &secs) || *p || secs < CFG_CONSOLE_IDLE_MIN ||
	    secs > CFG_CONSOLE_IDLE_MAX) {
		msg_puts(m, "expected seconds 5..86400");
		return -EINVAL;
	}
	c->console_idle_s = secs;
	return 0;
}

/* Peers refused at accept, before any TLS work (README: access lists). */
static int cfg_set_console_allow(struct tern_config *c, const char *v, size_t n,
				 struct cfg_msg *m)
{
	(void)n;
	return cfg_allow_words(v, &c->console_allow, m);
}

static int cfg_set_migrate_allow(struct tern_config *c, const char *v, size_t n,
				 struct cfg_msg *m)
{
	(void)n;
	return cfg_allow_words(v, &c->migrate_allow, m);
}

/* Never quote the value back: it is a credential. */
static int cfg_set_secret(struct tern_config *c, const char *v, size_t n,
			  struct cfg_msg *m)
{
	if (n > CFG_SECRET_MAX - 1) {
		msg_puts(m, "must be 1..127 characters");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (v[i] < 0x20 || v[i] > 0x7e) {
			msg_puts(m, "must be printable ASCII");
			return -EINVAL;
		}
	}
	memcpy(c->secret, v, n + 1);
	c->has_secret = true;
	return 0;
}

static int cfg_set_log_level(struct tern_config *c, const char *v, size_t n,
			     struct cfg_msg *m)
{
	(void)n;
	for (size_t i = 0; i < CFG_ARRAY_SIZE(cfg_level_names); i++) {
		if (strcmp(v, cfg_level_names[i]) == 0) {
			c->log_level = (int)i;
			return 0;
		}
	}
	msg_puts(m, "expected error, warn, info or debug");
	return -EINVAL;
}

static int cfg_set_serial_console(struct tern_config *c, const char *v,
				  size_t n, struct cfg_msg *m)
{
	(void)n;
	if (strcmp(v, "on") == 0) {
		c->has_serial_console = true;
	} else if (strcmp(v, "off") == 0) {
		c->has_serial_console = false;
	} else {
		msg_puts(m, "expected on or off");
		return -EINVAL;
	}
	return 0;
}

/* One `disk = NAME iscsi://... [options]` line each: the block layer
 * parses them (storage/lib/disk_spec.c) once the network is up; here the
 * count is bounded and the text kept. */
static int cfg_set_disk(struct tern_config *c, const char *v, size_t n,
			struct cfg_msg *m)
{
	if (c->ndisks >= CFG_DISKS_MAX) {
		msg_puts(m, "at most 8 disk lines");
		return -EINVAL;
	}
	memcpy(c->disks[c->ndisks], v, n);
	c->disks[c->ndisks][n] = '\0';
	c->ndisks++;
	return 0;
}

/* `vm = ...` lines: kept as text like disks; cfg_parse_vm reads them at
 * VM creation, so that a bad guest line costs that guest, not the host. */
static int cfg_set_vm(struct tern_config *c, const char *v, size_t n,
		      struct cfg_msg *m)
{
	if (c->nvms >= CFG_VMS_MAX) {
		msg_puts(m, "at most 8 vm lines");
		return -EINVAL;
	}
	memcpy(c->vms[c->nvms], v, n);
	c->vms[c->nvms][n] = '\0';
	c->nvms++;
	return 0;
}

typedef int (*cfg_set_fn)(struct tern_config *c, const char *v, size_t n,
			  struct cfg_msg *m);

struct cfg_key {
	const char *name;
	cfg_set_fn set;
	bool repeat;		/* may appear on several lines */
};

/* Adding a key: write a handler above and add one row here. */
static const struct cfg_key cfg_keys[] = {
	{ "hostname", cfg_set_hostname, false },
	{ "address", cfg_set_address, false },
	{ "gateway", cfg_set_gateway, false },
	{ "console_port", cfg_set_console_port, false },
	{ "console_idle_timeout", cfg_set_console_idle, false },
	{ "migrate_port", cfg_set_migrate_port, false },
	{ "console_allow", cfg_set_console_allow, false },
	{ "migrate_allow", cfg_set_migrate_allow, false },
	{ "secret", cfg_set_secret, false },
	{ "log_level", cfg_set_log_level, false },
	{ "serial_console", cfg_set_serial_console, false },
	{ "disk", cfg_set_disk, true },
	{ "vm", cfg_set_vm, true },
};

enum { CFG_NKEYS = CFG_ARRAY_SIZE(cfg_keys) };

/* ---- line parser ---- */

struct cfg_state {
	struct tern_config *c;
	struct cfg_msg *m;
	int lineno;
	int seen[CFG_NKEYS];	/* line that set each key, 0 if unset */
};

static int cfg_fail(struct cfg_state *st, const char *what)
{
	msg_puts(st->m, what);
	return -EINVAL;
}

static const struct cfg_key *cfg_find_key(const char *k, size_t n, size_t *idx)
{
	for (size_t i = 0; i < CFG_NKEYS; i++) {
		if (strlen(cfg_keys[i].name) == n &&
		    memcmp(cfg_keys[i].name, k, n) == 0) {
			*idx = i;
			return &cfg_keys[i];
		}
	}
	return NULL;
}

/* Line-level byte check: NUL and control bytes (tab aside) are refused
 * anywhere, comments included, so nothing invisible hides in the file. */
static int cfg_check_bytes(struct cfg_state *st, const char *s, size_t n)
{
	if (n > CFG_LINE_MAX)
		return cfg_fail(st, "line too long (max 255 characters)");
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == 0)
			return cfg_fail(st, "NUL byte");
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return cfg_fail(st, "control character");
	}
	return 0;
}

/* Parse a quoted value starting after the opening quote at s[*i]. */
static int cfg_quoted(struct cfg_state *st, const char *s, size_t n, size_t *i,
		      char *val, size_t *vlen)
{
	size_t j = *i + 1;

	for (;;) {
		if (j == n)
			return cfg_fail(st, "unterminated quote");
		if (s[j] == '"')
			break;
		if (s[j] == '\\') {
			if (j + 1 == n || (s[j + 1] != '"' && s[j + 1] != '\\'))
				return cfg_fail(st, "invalid escape in quotes (only \\\" and \\\\)");
			j++;
		}
		val[(*vlen)++] = s[j++];
	}
	j++;
	while (j < n && cfg_is_ws(s[j]))
		j++;
	if (j < n && s[j] != '#')
		return cfg_fail(st, "unexpected text after closing quote");
	*i = n;
	return 0;
}

/* Unquoted: up to a '#' that follows whitespace, trailing blanks trimmed. */
static int cfg_unquoted(struct cfg_state *st, const char *s, size_t n, size_t i,
			char *val, size_t *vlen, bool inner_quotes)
{
	size_t j;

	for (j = i; j < n; j++) {
		if (s[j] == '#' && cfg_is_ws(s[j - 1]))
			break;
		if (s[j] == '"' && !inner_quotes)
			return cfg_fail(st, "stray '\"' (quote the whole value)");
	}
	while (j > i && cfg_is_ws(s[j - 1]))
		j--;
	memcpy(val, s + i, j - i);
	*vlen = j - i;
	return 0;
}

static int cfg_line(struct cfg_state *st, const char *s, size_t n)
{
	char val[CFG_LINE_MAX + 1];
	size_t i = 0, kstart, klen, vlen = 0, idx = 0;
	const struct cfg_key *key;
	int rc;

	rc = cfg_check_bytes(st, s, n);
	if (rc)
		return rc;
	while (i < n && cfg_is_ws(s[i]))
		i++;
	if (i == n || s[i] == '#')
		return 0;

	kstart = i;
	while (i < n && !cfg_is_ws(s[i]) && s[i] != '=')
		i++;
	klen = i - kstart;
	for (size_t k = kstart; k < i; k++) {
		char ch = s[k];
		if (!((ch >= 'a' && ch <= 'z') || cfg_is_digit(ch) || ch == '_'))
			return cfg_fail(st, "invalid key (expected 'key = value')");
	}
	while (i < n && cfg_is_ws(s[i]))
		i++;
	if (klen == 0 || i == n || s[i] != '=') {
		if (klen == 0)
			return cfg_fail(st, "missing key before '='");
		msg_puts(st->m, "missing '=' after ");
		msg_put_key(st->m, s + kstart, klen);
		return -EINVAL;
	}
	key = cfg_find_key(s + kstart, klen, &idx);
	if (!key) {
		msg_puts(st->m, "unknown key ");
		msg_put_key(st->m, s + kstart, klen);
		return -EINVAL;
	}
	if (st->seen[idx] && !key->repeat) {
		msg_puts(st->m, "duplicate key ");
		msg_put_key(st->m, s + kstart, klen);
		msg_puts(st->m, " (first set on line ");
		msg_putu(st->m, (uint32_t)st->seen[idx]);
		return cfg_fail(st, ")");
	}

	msg_puts(st->m, key->name);
	msg_puts(st->m, ": ");
	i++;
	while (i < n && cfg_is_ws(s[i]))
		i++;
	if (i < n && s[i] == '"')
		rc = cfg_quoted(st, s, n, &i, val, &vlen);
	else
		/* A vm line's cmdline="..." is quoted inside the value. */
		rc = cfg_unquoted(st, s, n, i, val, &vlen, key->set == cfg_set_vm);
	if (rc)
		return rc;
	if (vlen == 0)
		return cfg_fail(st, "empty value");
	val[vlen] = '\0';
	rc = key->set(st->c, val, vlen, st->m);
	if (rc)
		return rc;
	if (key->set == cfg_set_vm)
		st->c->vm_lines[st->c->nvms - 1] = st->lineno;
	st->seen[idx] = st->lineno;
	return 0;
}

static void msg_put_line(struct cfg_msg *m, int lineno)
{
	msg_puts(m, "line ");
	msg_putu(m, (uint32_t)lineno);
	msg_puts(m, ": ");
}

/* Cross-key rules, checked once every line has been read. */
static int cfg_check_final(struct cfg_state *st)
{
	const struct tern_config *c = st->c;
	size_t gw_idx = 0, addr_idx = 0;
	uint32_t mask;

	if (!c->has_gateway)
		return 0;
	cfg_find_key("gateway", 7, &gw_idx);
	cfg_find_key("address", 7, &addr_idx);
	st->lineno = st->seen[gw_idx];
	msg_init(st->m, st->m->buf, st->m->cap);
	msg_put_line(st->m, st->lineno);
	if (!c->has_address)
		return cfg_fail(st, "gateway: requires a static address (address is dhcp)");
	if (c->gateway == c->address.addr)
		return cfg_fail(st, "gateway: equals the host's own address");
	mask = cfg_mask(c->address.prefix);
	if ((c->gateway & mask) != (c->address.addr & mask)) {
		msg_puts(st->m, "gateway ");
		msg_put_ipv4(st->m, c->gateway);
		msg_puts(st->m, " is outside address ");
		msg_put_cidr(st->m, &c->address);
		msg_puts(st->m, " (line ");
		msg_putu(st->m, (uint32_t)st->seen[addr_idx]);
		return cfg_fail(st, ")");
	}
	return 0;
}

int cfg_parse(const char *text, size_t len, struct tern_config *out,
	      struct cfg_error *err)
{
	struct cfg_error dummy;
	struct cfg_state st;
	struct cfg_msg m;
	size_t pos = 0;
	int rc;

	if (!err)
		err = &dummy;
	err->line = 0;
	msg_init(&m, err->msg, sizeof(err->msg));
	if (!out)
		return -EINVAL;
	cfg_defaults(out);
	if (!text && len) {
		msg_puts(&m, "no configuration text");
		return -EINVAL;
	}
	memset(&st, 0, sizeof(st));
	st.c = out;
	st.m = &m;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		size_t n = end - pos;

		if (st.lineno == 0x7fffffff) {
			msg_puts(&m, "too many lines");
			return -EINVAL;
		}
		st.lineno++;
		if (n && text[pos + n - 1] == '\r')
			n--;
		msg_init(&m, err->msg, sizeof(err->msg));
		msg_put_line(&m, st.lineno);
		rc = cfg_line(&st, text + pos, n);
		if (rc) {
			err->line = st.lineno;
			return rc;
		}
		pos = nl ? end + 1 : len;
	}
	rc = cfg_check_final(&st);
	if (rc) {
		err->line = st.lineno;
		return rc;
	}
	msg_init(&m, err->msg, sizeof(err->msg));
	return 0;
}

/* ---- `vm =` lines ---- */

/* One word of a vm line: [*p, end) up to whitespace, with a key="..."
 * value's quotes taken as part of it.  Returns false for an unterminated
 * quote. */
static bool vm_word(const char **p, const char **start, size_t *len)
{
	const char *q = *p;
	bool quoted = false;

	while (cfg_is_ws(*q))
		q++;
	*start = q;
	while (*q && (quoted || !cfg_is_ws(*q))) {
		if (*q == '"')
			quoted = !quoted;
		q++;
	}
	*len = (size_t)(q - *start);
	*p = q;
	return !quoted;
}

/* Copy a value into out[0, cap): "..." unquoted, no quote inside; only
 * a command line may be empty. */
static bool vm_value(const char *v, size_t n, char *out, size_t cap, bool may_be_empty)
{
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		v++;
		n -= 2;
	}
	if ((n == 0 && !may_be_empty) || n >= cap || memchr(v, '"', n))
		return false;
	memcpy(out, v, n);
	out[n] = '\0';
	return true;
}

/* Decimal bytes with an optional K, M or G suffix, at most 1 TiB. */
static bool vm_size(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0, mul = 1;
	size_t i;

	if (n && (v[n - 1] == 'K' || v[n - 1] == 'k'))
		mul = 1ull << 10;
	else if (n && (v[n - 1] == 'M' || v[n - 1] == 'm'))
		mul = 1ull << 20;
	else if (n && (v[n - 1] == 'G' || v[n - 1] == 'g'))
		mul = 1ull << 30;
	if (mul != 1)
		n--;
	if (n == 0 || n > 13)
		return false;
	for (i = 0; i < n; i++) {
		if (!cfg_is_digit(v[i]))
			return false;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (x > (1ull << 40) / mul)
		return false;
	*out = x * mul;
	return true;
}

static bool vm_name_ok(const char *v, size_t n)
{
	if (n == 0 || n >= CFG_VM_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = v[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || cfg_is_digit(ch) ||
		      ch == '-' || ch == '_'))
			return false;
	}
	return true;
}

/* key=value: is the word this key?  *v, *vn get the value. */
static bool vm_kv(const char *w, size_t n, const char *key, const char **v, size_t *vn)
{
	size_t k = strlen(key);

	if (n <= k || memcmp(w, key, k) || w[k] != '=')
		return false;
	*v = w + k + 1;
	*vn = n - k - 1;
	return true;
}

static int vm_word_set(struct cfg_vm *out, const char *w, size_t n, struct cfg_msg *m)
{
	const char *v;
	size_t vn;
	uint64_t x;

	if (n == 9 && !memcmp(w, "autostart", 9)) {
		out->autostart = true;
		return 0;
	}
	if (vm_kv(w, n, "mem", &v, &vn)) {
		if (vm_size(v, vn, &out->mem) && out->mem)
			return 0;
		msg_puts(m, "mem: expected a size like 256M");
	} else if (vm_kv(w, n, "vcpus", &v, &vn)) {
		/* A plain number: vm_size without a suffix. */
		if (vm_size(v, vn, &x) && cfg_is_digit(v[vn - 1]) && x >= 1 && x <= 255) {
			out->vcpus = (uint32_t)x;
			return 0;
		}
		msg_puts(m, "vcpus: expected a number 1..255");
	} else if (vm_kv(w, n, "kernel", &v, &vn)) {
		if (vm_value(v, vn, out->kernel, sizeof(out->kernel), false))
			return 0;
		msg_puts(m, "kernel: path empty, too long or quoted badly");
	} else if (vm_kv(w, n, "initrd", &v, &vn)) {
		if (vm_value(v, vn, out->initrd, sizeof(out->initrd), false))
			return 0;
		msg_puts(m, "initrd: path empty, too long or quoted badly");
	} else if (vm_kv(w, n, "cmdline", &v, &vn)) {
		if (vm_value(v, vn, out->cmdline, sizeof(out->cmdline), true))
			return 0;
		msg_puts(m, "cmdline: too long or quoted badly");
	} else if (vm_kv(w, n, "disk", &v, &vn) || vm_kv(w, n, "nic", &v, &vn)) {
		/* Checked by the device when the VM is created (vdev.h); here
		 * only that the word is one plain token that fits. */
		if (out->ndevs == CFG_VM_DEVS_MAX)
			msg_puts(m, "at most 8 disk= and nic= words");
		else if (n >= CFG_VM_DEV_MAX || memchr(w, '"', n))
			msg_puts(m, "disk=/nic=: value too long or quoted");
		else {
			memcpy(out->devs[out->ndevs], w, n);
			out->devs[out->ndevs++][n] = '\0';
			return 0;
		}
	} else {
		const char *eq = memchr(w, '=', n);

		msg_puts(m, "unknown key ");
		msg_put_key(m, w, eq ? (size_t)(eq - w) : n);
		msg_puts(m, " (mem, kernel, initrd, cmdline, vcpus, disk, nic, autostart)");
	}
	return -EINVAL;
}

int cfg_parse_vm(const char *line, struct cfg_vm *out, char *msg, size_t msglen)
{
	char dummy[1];
	struct cfg_msg m;
	const char *p = line, *w;
	size_t n;
	int rc;

	msg_init(&m, msg && msglen ? msg : dummy, msg && msglen ? msglen : sizeof(dummy));
	memset(out, 0, sizeof(*out));
	out->vcpus = 1;
	if (!line || !vm_word(&p, &w, &n) || !vm_name_ok(w, n)) {
		msg_puts(&m, "expected 'NAME key=value...' (name: letters, digits, '-', '_', "
			 "at most 31)");
		return -EINVAL;
	}
	memcpy(out->name, w, n);
	out->name[n] = '\0';
	for (;;) {
		if (!vm_word(&p, &w, &n)) {
			msg_puts(&m, "unterminated quote");
			return -EINVAL;
		}
		if (n == 0)
			break;
		rc = vm_word_set(out, w, n, &m);
		if (rc)
			return rc;
	}
	if (!out->mem || !out->kernel[0]) {
		msg_puts(&m, "mem=SIZE and kernel=PATH are required");
		return -EINVAL;
	}
	return 0;
}
