/*
 * Console command language: tokenizer, dispatcher, help, JSON replies and
 * argument parsers.  See cmd.h for the reply format.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernel/lib/cmd.h"

#define CMD_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define CMD_ECHO_MAX		48	/* user text quoted in an error */
#define CMD_MSG_MAX		384	/* one dispatcher error message */
#define CMD_HELP_COL_MAX	40	/* widest "name args" column */

/* ---- output ---- */

void cmd_write(struct cmd_out *o, const char *s, size_t n)
{
	if (o && o->write && n)
		o->write(o->ctx, s, n);
}

void cmd_puts(struct cmd_out *o, const char *s)
{
	cmd_write(o, s, strlen(s));
}

void cmd_printf(struct cmd_out *o, const char *fmt, ...)
{
	char buf[CMD_PRINTF_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	cmd_write(o, buf, (size_t)n);
}

/* ---- errno text (no strerror: the kernel's libc table is not ours) ---- */

static const struct {
	int err;
	const char *text;
} cmd_errtab[] = {
	{ EPERM, "not permitted" },
	{ ENOENT, "not found" },
	{ EINTR, "interrupted" },
	{ EIO, "I/O error" },
	{ ENXIO, "no such device or address" },
	{ E2BIG, "too big" },
	{ ENOEXEC, "bad executable format" },
	{ EBADF, "bad descriptor" },
	{ EAGAIN, "try again" },
	{ ENOMEM, "out of memory" },
	{ EACCES, "permission denied" },
	{ EFAULT, "bad address" },
	{ EBUSY, "busy" },
	{ EEXIST, "already exists" },
	{ ENODEV, "no such device" },
	{ EINVAL, "invalid argument" },
	{ ENOSPC, "no space left" },
	{ EROFS, "read-only" },
	{ EPIPE, "broken pipe" },
	{ ERANGE, "out of range" },
	{ ENOSYS, "not implemented" },
	{ ENOTEMPTY, "not empty" },
	{ ENOTSUP, "not supported" },
	{ EOPNOTSUPP, "not supported" },
	{ EOVERFLOW, "value too large" },
	{ EBADMSG, "bad message" },
	{ EPROTO, "protocol error" },
	{ EMSGSIZE, "message too long" },
	{ ENOBUFS, "no buffer space" },
	{ EADDRINUSE, "address in use" },
	{ ENETUNREACH, "network unreachable" },
	{ EHOSTUNREACH, "host unreachable" },
	{ ECONNREFUSED, "connection refused" },
	{ ECONNRESET, "connection reset" },
	{ ENOTCONN, "not connected" },
	{ ETIMEDOUT, "timed out" },
	{ EALREADY, "already in progress" },
	{ EINPROGRESS, "in progress" },
	{ ECANCELED, "canceled" },
};

const char *cmd_strerror(int err)
{
	if (err < 0)
		err = -err;
	for (size_t i = 0; i < CMD_ARRAY_SIZE(cmd_errtab); i++)
		if (cmd_errtab[i].err == err)
			return cmd_errtab[i].text;
	return "unknown error";
}

/* ---- tokenizer ---- */

static bool cmd_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int cmd_tokenize(char *line, char **argv, int max, const char **err)
{
	const char *dummy;
	char *r = line;
	int argc = 0;

	if (!err)
		err = &dummy;
	*err = NULL;
	if (!line)
		return 0;
	for (;;) {
		char *w;
		bool quoted = false;

		while (cmd_is_blank(*r))
			r++;
		if (!*r)
			break;
		if (argc >= max) {
			*err = "too many arguments";
			return -E2BIG;
		}
		/* Rewrite in place: the write cursor never passes the reader. */
		w = r;
		argv[argc++] = w;
		for (;;) {
			char c = *r;

			if (!c) {
				if (quoted) {
					*err = "unterminated quote";
					return -EINVAL;
				}
				break;
			}
			r++;
			if (!quoted && cmd_is_blank(c))
				break;
			if (c == '"') {
				quoted = !quoted;
				continue;
			}
			if (quoted && c == '\\' && (*r == '"' || *r == '\\'))
				c = *r++;
			*w++ = c;
		}
		*w = '\0';
	}
	if (argc < max)
		argv[argc] = NULL;
	return argc;
}

/* ---- argument parsers ---- */

static int cmd_digit(char c, unsigned base)
{
	unsigned d;

	if (c >= '0' && c <= '9')
		d = (unsigned)(c - '0');
	else if (c >= 'a' && c <= 'f')
		d = (unsigned)(c - 'a' + 10);
	else if (c >= 'A' && c <= 'F')
		d = (unsigned)(c - 'A' + 10);
	else
		return -1;
	return d < base ? (int)d : -1;
}

/* Parse digits in base until a non-digit; *end gets the stop position.
 * Returns 0, -EINVAL (no digits) or -ERANGE. */
static int cmd_parse_digits(const char *s, unsigned base, uint64_t *out,
			    const char **end)
{
	uint64_t v = 0;
	bool overflow = false;
	const char *p = s;
	int d;

	while ((d = cmd_digit(*p, base)) >= 0) {
		if (v > (UINT64_MAX - (unsigned)d) / base)
			overflow = true;
		else
			v = v * base + (unsigned)d;
		p++;
	}
	*end = p;
	if (p == s)
		return -EINVAL;
	if (overflow)
		return -ERANGE;
	*out = v;
	return 0;
}

static bool cmd_is_hex_prefix(const char *s)
{
	return s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
}

int cmd_parse_u64(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v = 0;
	int rc;

	if (!s || !out)
		return -EINVAL;
	if (cmd_is_hex_prefix(s))
		rc = cmd_parse_digits(s + 2, 16, &v, &end);
	else
		rc = cmd_parse_digits(s, 10, &v, &end);
	/* Garbage after the digits beats overflow: "99...9x" is a typo. */
	if (*end)
		return -EINVAL;
	if (rc)
		return rc;
	*out = v;
	return 0;
}

static unsigned cmd_unit_shift(char c)
{
	switch (c) {
	case 'k': case 'K': return 10;
	case 'm': case 'M': return 20;
	case 'g': case 'G': return 30;
	case 't': case 'T': return 40;
	default: return 0;
	}
}

int cmd_parse_size(const char *s, uint64_t *bytes)
{
	const char *p;
	uint64_t v = 0;
	unsigned shift;
	int rc;

	if (!s || !bytes)
		return -EINVAL;
	if (cmd_is_hex_prefix(s))
		return cmd_parse_u64(s, bytes);
	rc = cmd_parse_digits(s, 10, &v, &p);
	if (p == s)
		return -EINVAL;
	shift = cmd_unit_shift(*p);
	if (shift) {
		p++;
		if (p[0] == 'i' && p[1] == 'B')
			p += 2;
		else if (p[0] == 'B')
			p++;
	} else if (*p == 'B') {
		p++;
	}
	if (*p)
		return -EINVAL;
	if (rc)
		return rc;
	if (v > (UINT64_MAX >> shift))
		return -ERANGE;
	*bytes = v << shift;
	return 0;
}

int cmd_parse_kv(const char *tok, const char *key, const char **val)
{
	size_t kl;

	if (!tok || !key || !val)
		return 0;
	kl = strlen(key);
	if (kl == 0 || strncmp(tok, key, kl) != 0 || tok[kl] != '=')
		return 0;
	*val = tok + kl + 1;
	return 1;
}

/* ---- command names ---- */

/* Next word of a command name or topic: skips blanks, returns its length. */
static size_t cmd_word(const char **p)
{
	const char *s = *p;
	size_t n = 0;

	while (cmd_is_blank(*s))
		s++;
	while (s[n] && !cmd_is_blank(s[n]))
		n++;
	*p = s;
	return n;
}

/*
 * How many leading words of name equal tokens argv[0..argc).  *full is set
 * when every word of name matched.
 */
static int cmd_name_match(const char *name, int argc, char **argv, bool *full)
{
	const char *p = name;
	int k = 0;
	size_t wl;

	*full = false;
	while ((wl = cmd_word(&p)) != 0) {
		if (k == argc || strncmp(p, argv[k], wl) != 0 || argv[k][wl])
			return k;
		p += wl;
		k++;
	}
	*full = k > 0;
	return k;
}

struct cmd_match {
	const struct cmd_def *def;	/* longest full match, or NULL */
	int words;			/* tokens consumed by def's name */
	int prefix;			/* longest partial match, in words */
};

static void cmd_lookup(const struct cmd_def *tab, size_t n, int argc,
		       char **argv, struct cmd_match *m)
{
	m->def = NULL;
	m->words = 0;
	m->prefix = 0;
	for (size_t i = 0; i < n; i++) {
		bool full;
		int k;

		if (!tab[i].name || !tab[i].fn)
			continue;
		k = cmd_name_match(tab[i].name, argc, argv, &full);
		if (full && k > m->words) {
			m->def = &tab[i];
			m->words = k;
		} else if (!full && k > m->prefix) {
			m->prefix = k;
		}
	}
}

/* Copy user text for an error message: printable ASCII only, bounded. */
static void cmd_sanitize(char *dst, size_t cap, const char *src)
{
	size_t i = 0;

	for (; src[i] && i < CMD_ECHO_MAX && i + 4 < cap; i++)
		dst[i] = (src[i] >= 0x20 && src[i] <= 0x7e) ? src[i] : '?';
	if (src[i] && i + 4 <= cap) {
		memcpy(dst + i, "...", 3);
		i += 3;
	}
	dst[i] = '\0';
}

/* argv[0..k) joined with single spaces into buf. */
static void cmd_join(char *buf, size_t cap, int k, char **argv)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < k && len < cap; i++) {
		int n = snprintf(buf + len, cap - len, "%s%s", i ? " " : "", argv[i]);
		if (n < 0)
			break;
		len += (size_t)n;
	}
}

/* ---- JSON ---- */

/* Small write-combining buffer so escaping does not call write per byte. */
struct cmd_jbuf {
	struct cmd_out *o;
	size_t len;
	char buf[256];
};

static void jb_flush(struct cmd_jbuf *jb)
{
	cmd_write(jb->o, jb->buf, jb->len);
	jb->len = 0;
}

static void jb_putn(struct cmd_jbuf *jb, const char *s, size_t n)
{
	while (n) {
		size_t room = sizeof(jb->buf) - jb->len;
		size_t k = n < room ? n : room;

		memcpy(jb->buf + jb->len, s, k);
		jb->len += k;
		s += k;
		n -= k;
		if (jb->len == sizeof(jb->buf))
			jb_flush(jb);
	}
}

static void jb_puts(struct cmd_jbuf *jb, const char *s)
{
	jb_putn(jb, s, strlen(s));
}

/*
 * Length of the well-formed UTF-8 sequence at s, or 0.  RFC 3629 section 4:
 * no overlong forms, no surrogates (ED A0..BF), nothing above U+10FFFF.
 */
static size_t cmd_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* A JSON string literal (RFC 8259 section 7), quotes included. */
static void jb_str(struct cmd_jbuf *jb, const char *str, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	jb_putn(jb, "\"", 1);
	while (i < n) {
		unsigned char c = s[i];
		size_t ul = cmd_utf8_len(s + i, n - i);
		char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			jb_putn(jb, esc, 2);
		} else if (c == '\n') {
			jb_putn(jb, "\\n", 2);
		} else if (c == '\t') {
			jb_putn(jb, "\\t", 2);
		} else if (c == '\r') {
			jb_putn(jb, "\\r", 2);
		} else if (c < 0x20 || c == 0x7f || ul == 0) {
			/* Invalid UTF-8 is sent as U+00XX: lossy but valid. */
			jb_putn(jb, esc, 6);
		} else {
			jb_putn(jb, str + i, ul);
			i += ul;
			continue;
		}
		i++;
	}
	jb_putn(jb, "\"", 1);
}

/* ,"key":"value" */
static void jb_field(struct cmd_jbuf *jb, const char *key, const char *v, size_t n)
{
	jb_puts(jb, ",\"");
	jb_puts(jb, key);
	jb_puts(jb, "\":");
	jb_str(jb, v, n);
}

static void cmd_json_reply(struct cmd_out *o, bool ok, const char *cmd,
			   const char *error, const char *out, size_t out_len,
			   bool truncated)
{
	struct cmd_jbuf jb = { .o = o, .len = 0 };

	jb_puts(&jb, ok ? "{\"ok\":true" : "{\"ok\":false");
	jb_field(&jb, "cmd", cmd, strlen(cmd));
	if (error)
		jb_field(&jb, "error", error, strlen(error));
	if (ok || out_len)
		jb_field(&jb, "output", out, out_len);
	if (truncated)
		jb_puts(&jb, ",\"truncated\":true");
	jb_puts(&jb, "}\n");
	jb_flush(&jb);
}

/* An error the dispatcher itself detected: one line in either mode. */
static int cmd_fail(struct cmd_out *o, bool json, const char *cmd,
		    const char *msg, int rc)
{
	if (json)
		cmd_json_reply(o, false, cmd, msg, NULL, 0, false);
	else
		cmd_printf(o, "error: %s\n", msg);
	return rc;
}

/* ---- running a handler ---- */

struct cmd_sink {
	struct cmd_out *next;	/* plain mode: forward here */
	size_t count;		/* bytes the handler wrote */
	char *cap;		/* JSON mode: capture buffer */
	size_t cap_size, cap_len;
	bool truncated;
};

static void cmd_sink_write(void *ctx, const char *s, size_t n)
{
	struct cmd_sink *k = ctx;

	k->count += n;
	if (!k->cap) {
		cmd_write(k->next, s, n);
		return;
	}
	if (n > k->cap_size - k->cap_len) {
		n = k->cap_size - k->cap_len;
		k->truncated = true;
	}
	memcpy(k->cap + k->cap_len, s, n);
	k->cap_len += n;
}

static int cmd_run_plain(const struct cmd_def *d, struct cmd_ctx *ctx,
			 struct cmd_out *o, int argc, char **argv)
{
	struct cmd_sink k = { .next = o };
	struct cmd_out so = { cmd_sink_write, &k };
	int rc = d->fn(ctx, &so, argc, argv);

	if (rc < 0 && k.count == 0)
		cmd_printf(o, "error: %s: %s\n", d->name, cmd_strerror(rc));
	return rc;
}

/* Kept out of line so the 16 KiB capture is only on the stack in JSON mode. */
static __attribute__((noinline)) int
cmd_run_json(const struct cmd_def *d, struct cmd_ctx *ctx, struct cmd_out *o,
	     int argc, char **argv)
{
	char cap[CMD_JSON_CAPTURE];
	char msg[CMD_MSG_MAX];
	struct cmd_sink k = { .cap = cap, .cap_size = sizeof(cap) };
	struct cmd_out so = { cmd_sink_write, &k };
	size_t end, start, text;
	int rc = d->fn(ctx, &so, argc, argv);

	if (rc >= 0) {
		cmd_json_reply(o, true, d->name, NULL, cap, k.cap_len, k.truncated);
		return rc;
	}
	/* The error is the last non-empty line; what precedes it is output. */
	end = k.cap_len;
	while (end && (cap[end - 1] == '\n' || cap[end - 1] == '\r'))
		end--;
	if (end == 0) {
		snprintf(msg, sizeof(msg), "%s: %s", d->name, cmd_strerror(rc));
		cmd_json_reply(o, false, d->name, msg, NULL, 0, k.truncated);
		return rc;
	}
	start = end;
	while (start && cap[start - 1] != '\n')
		start--;
	text = start;
	if (end - text >= 7 && memcmp(cap + text, "error: ", 7) == 0)
		text += 7;
	if (end - text > sizeof(msg) - 1)
		end = text + sizeof(msg) - 1;
	memcpy(msg, cap + text, end - text);
	msg[end - text] = '\0';
	cmd_json_reply(o, false, d->name, msg, cap, start, k.truncated);
	return rc;
}

/* Length of s, or max when s is at least max long (s may be unterminated
 * beyond that point as far as this function cares). */
static size_t cmd_bounded_len(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n])
		n++;
	return n;
}

static int cmd_lookup_fail(struct cmd_out *o, bool json, int argc, char **argv,
			   const struct cmd_match *m)
{
	char msg[CMD_MSG_MAX], name[96], tok[CMD_ECHO_MAX + 4];

	if (m->prefix == 0) {
		cmd_sanitize(tok, sizeof(tok), argv[0]);
		snprintf(msg, sizeof(msg), "unknown command '%s' (try 'help')", tok);
		return cmd_fail(o, json, tok, msg, -ENOENT);
	}
	cmd_join(name, sizeof(name), m->prefix, argv);
	if (m->prefix == argc) {
		snprintf(msg, sizeof(msg), "%s: missing subcommand (try 'help %s')",
			 name, name);
		return cmd_fail(o, json, name, msg, -EINVAL);
	}
	cmd_sanitize(tok, sizeof(tok), argv[m->prefix]);
	snprintf(msg, sizeof(msg), "%s: unknown subcommand '%s' (try 'help %s')",
		 name, tok, name);
	return cmd_fail(o, json, name, msg, -ENOENT);
}

int cmd_dispatch(const struct cmd_def *tab, size_t n, struct cmd_ctx *ctx,
		 const char *line, struct cmd_out *o, bool json)
{
	return cmd_dispatch_guarded(tab, n, ctx, line, o, json, NULL);
}

/* The handler, between the guard's enter and leave. */
static int cmd_run(const struct cmd_def *d, struct cmd_ctx *ctx, struct cmd_out *o,
		   bool json, int argc, char **argv, const struct cmd_guard *g)
{
	char msg[CMD_MSG_MAX];
	int rc;

	if (g && (rc = g->enter(g->arg, d)) < 0) {
		snprintf(msg, sizeof(msg), "%s: already running (%s); try again when it "
			 "ends", d->name, rc == -EBUSY ? "on another console" : cmd_strerror(rc));
		return cmd_fail(o, json, d->name, msg, rc);
	}
	if (json)
		rc = cmd_run_json(d, ctx, o, argc, argv);
	else
		rc = cmd_run_plain(d, ctx, o, argc, argv);
	if (g)
		g->leave(g->arg, d);
	return rc;
}

int cmd_dispatch_guarded(const struct cmd_def *tab, size_t n, struct cmd_ctx *ctx,
			 const char *line, struct cmd_out *o, bool json,
			 const struct cmd_guard *g)
{
	char buf[CMD_LINE_MAX + 1];
	char *argv[CMD_MAX_ARGS + 1];
	char msg[CMD_MSG_MAX];
	struct cmd_match m;
	const struct cmd_def *d;
	const char *err;
	size_t len;
	int argc, nargs;

	if (!line)
		return 0;
	len = cmd_bounded_len(line, CMD_LINE_MAX + 1);
	if (len > CMD_LINE_MAX)
		return cmd_fail(o, json, "", "line too long", -E2BIG);
	memcpy(buf, line, len + 1);
	argc = cmd_tokenize(buf, argv, CMD_MAX_ARGS, &err);
	if (argc < 0) {
		snprintf(msg, sizeof(msg), "%s (max %d)", err, CMD_MAX_ARGS);
		return cmd_fail(o, json, "", argc == -E2BIG ? msg : err, argc);
	}
	if (argc == 0)
		return 0;
	argv[argc] = NULL;
	cmd_lookup(tab, n, argc, argv, &m);
	if (!m.def)
		return cmd_lookup_fail(o, json, argc, argv, &m);

	d = m.def;
	nargs = argc - m.words;
	if (nargs < d->min_args || (d->max_args >= 0 && nargs > d->max_args)) {
		bool args = d->args && d->args[0];

		snprintf(msg, sizeof(msg), "%s: %s arguments (usage: %s%s%s)", d->name,
			 nargs < d->min_args ? "missing" : "too many", d->name,
			 args ? " " : "", args ? d->args : "");
		return cmd_fail(o, json, d->name, msg, -EINVAL);
	}
	return cmd_run(d, ctx, o, json, nargs, argv + m.words, g);
}

/* ---- help ---- */

/* Do topic's words equal the leading words of name? */
static bool cmd_topic_match(const char *name, const char *topic)
{
	const char *t = topic, *nm = name;
	size_t tl, nl;

	while ((tl = cmd_word(&t)) != 0) {
		nl = cmd_word(&nm);
		if (nl != tl || strncmp(nm, t, tl) != 0)
			return false;
		t += tl;
		nm += nl;
	}
	return true;
}

void cmd_help(const struct cmd_def *tab, size_t n, const char *topic,
	      struct cmd_out *o)
{
	char col[CMD_HELP_COL_MAX + 1], tok[CMD_ECHO_MAX + 4];
	int width = 0;
	size_t shown = 0;

	if (!topic)
		topic = "";
	while (cmd_is_blank(*topic))
		topic++;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			const struct cmd_def *d = &tab[i];
			int w;

			if (!d->name || !cmd_topic_match(d->name, topic))
				continue;
			w = snprintf(col, sizeof(col), "%s%s%s", d->name,
				     d->args && d->args[0] ? " " : "",
				     d->args ? d->args : "");
			if (w < 0)
				continue;
			if (w > CMD_HELP_COL_MAX)
				w = CMD_HELP_COL_MAX;
			if (pass == 0) {
				width = w > width ? w : width;
				shown++;
				continue;
			}
			cmd_printf(o, "  %-*s  %s\n", width, col, d->help ? d->help : "");
		}
		if (shown == 0) {
			cmd_sanitize(tok, sizeof(tok), topic);
			cmd_printf(o, "error: help: no command matches '%s'\n", tok);
			return;
		}
	}
}
