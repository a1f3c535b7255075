/* Unit tests for kernel/lib/cmd.c (console command language). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/cmd.h"

/* ---- output capture ---- */

struct cmdt_buf {
	char data[64 * 1024];
	size_t len;
	int writes;
};

static void cmdt_write(void *ctx, const char *s, size_t n)
{
	struct cmdt_buf *b = ctx;

	cr_assert(n > 0, "zero-length write");
	cr_assert(b->len + n < sizeof(b->data), "test buffer overflow");
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	b->writes++;
}

static struct cmdt_buf cmdt_out;
static struct cmd_out cmdt_o = { cmdt_write, &cmdt_out };

static void cmdt_reset(void)
{
	cmdt_out.len = 0;
	cmdt_out.writes = 0;
	cmdt_out.data[0] = '\0';
}

/* ---- a fake command table ---- */

struct cmd_ctx {
	int calls;
	int argc;
	char args[8][64];
	const char *last;
};

static void cmdt_record(struct cmd_ctx *c, const char *name, int argc, char **argv)
{
	c->calls++;
	c->last = name;
	c->argc = argc;
	cr_assert_null(argv[argc], "argv not NULL-terminated");
	for (int i = 0; i < argc && i < 8; i++)
		snprintf(c->args[i], sizeof(c->args[i]), "%s", argv[i]);
}

static int cmdt_status(struct cmd_ctx *c, struct cmd_out *o, int argc, char **argv)
{
	cmdt_record(c, "status", argc, argv);
	cmd_printf(o, "all %s\n", "good");
	return 0;
}

static int cmdt_generic(struct cmd_ctx *c, struct cmd_out *o, int argc, char **argv)
{
	(void)o;
	cmdt_record(c, "generic", argc, argv);
	return 0;
}

static int cmdt_vm_create(struct cmd_ctx *c, struct cmd_out *o, int argc, char **argv)
{
	cmdt_record(c, "vm create", argc, argv);
	cmd_printf(o, "created %s\n", argv[0]);
	return 0;
}

static int cmdt_echo(struct cmd_ctx *c, struct cmd_out *o, int argc, char **argv)
{
	cmdt_record(c, "echo", argc, argv);
	for (int i = 0; i < argc; i++)
		cmd_printf(o, "%s<%s>", i ? " " : "", argv[i]);
	cmd_puts(o, "\n");
	return 0;
}

static int cmdt_fail_silent(struct cmd_ctx *c, struct cmd_out *o, int argc, char **argv)
{
	(void)o;
	cmdt_record(c, "fail", argc, argv);
	return -EBUSY;
}

static int cmdt_fail_loud(struct cmd_ctx *c, struct cmd_out *o, int argc, char **argv)
{
	cmdt_record(c, "fail loud", argc, argv);
	cmd_puts(o, "partial line 1\npartial \"2\"\n");
	cmd_puts(o, "error: fail loud: disk on fire\n");
	return -EIO;
}

static int cmdt_fail_weird(struct cmd_ctx *c, struct cmd_out *o, int argc, char **argv)
{
	(void)o;
	cmdt_record(c, "fail weird", argc, argv);
	return -12345;
}

static int cmdt_bin(struct cmd_ctx *c, struct cmd_out *o, int argc, char **argv)
{
	char all[256];

	cmdt_record(c, "bin", argc, argv);
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	cmd_write(o, all, sizeof(all));
	cmd_puts(o, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80");
	return 0;
}

static int cmdt_big(struct cmd_ctx *c, struct cmd_out *o, int argc, char **argv)
{
	cmdt_record(c, "big", argc, argv);
	for (int i = 0; i < 2000; i++)
		cmd_printf(o, "line %04d\n", i);	/* 10 bytes each: 20000 */
	return 0;
}

static int cmdt_help(struct cmd_ctx *c, struct cmd_out *o, int argc, char **argv);

static const struct cmd_def cmdt_tab[] = {
	{ "status", "", "show status", 0, 0, cmdt_status },
	{ "log", "[N]", "show the last N log lines", 0, 1, cmdt_generic },
	{ "vm create", "NAME [mem=SIZE]", "create a VM", 1, 2, cmdt_vm_create },
	{ "vm list", NULL, "list VMs", 0, 0, cmdt_generic },
	{ "vm snapshot take", "NAME", "snapshot a VM", 1, 1, cmdt_generic },
	{ "echo", "ARGS...", "print the arguments", 0, CMD_ARGS_ANY, cmdt_echo },
	{ "fail", NULL, "fail silently", 0, 0, cmdt_fail_silent },
	{ "fail loud", NULL, "fail with output", 0, 0, cmdt_fail_loud },
	{ "fail weird", NULL, "fail with an odd errno", 0, 0, cmdt_fail_weird },
	{ "bin", NULL, "binary output", 0, 0, cmdt_bin },
	{ "big", NULL, "20000 bytes of output", 0, 0, cmdt_big },
	{ "help", "[TOPIC]", "this list", 0, CMD_ARGS_ANY, cmdt_help },
	{ NULL, NULL, "a hole in the table is skipped", 0, 0, cmdt_generic },
};
#define CMDT_N (sizeof(cmdt_tab) / sizeof(cmdt_tab[0]))

static int cmdt_help(struct cmd_ctx *c, struct cmd_out *o, int argc, char **argv)
{
	char topic[256] = "";

	cmdt_record(c, "help", argc, argv);
	for (int i = 0; i < argc; i++) {
		strncat(topic, " ", sizeof(topic) - strlen(topic) - 1);
		strncat(topic, argv[i], sizeof(topic) - strlen(topic) - 1);
	}
	cmd_help(cmdt_tab, CMDT_N, topic, o);
	return 0;
}

static struct cmd_ctx cmdt_ctx;

static int cmdt_run(const char *line, bool json)
{
	cmdt_reset();
	memset(&cmdt_ctx, 0, sizeof(cmdt_ctx));
	return cmd_dispatch(cmdt_tab, CMDT_N, &cmdt_ctx, line, &cmdt_o, json);
}

/* ---- a tiny JSON validator (RFC 8259) with field extraction ---- */

struct cmdt_json {
	const char *p, *end;
};

static bool cmdt_jvalue(struct cmdt_json *j, int depth);

static void cmdt_jws(struct cmdt_json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int cmdt_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Length of valid UTF-8 at s (independent of the module's own checker). */
static int cmdt_utf8(const unsigned char *s, size_t n)
{
	uint32_t cp;
	int len;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if ((size_t)len > n)
		return 0;
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
		return 0;
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Parse a string; decoded bytes go to out (\u00XX decodes to byte XX). */
static bool cmdt_jstring(struct cmdt_json *j, char *out, size_t cap, size_t *olen)
{
	size_t n = 0;

	if (j->p >= j->end || *j->p != '"')
		return false;
	j->p++;
	while (j->p < j->end) {
		unsigned char c = (unsigned char)*j->p;
		int ul;

		if (c == '"') {
			j->p++;
			if (olen)
				*olen = n;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			char e;
			if (j->end - j->p < 2)
				return false;
			e = j->p[1];
			j->p += 2;
			if (e == 'u') {
				int v = 0;
				if (j->end - j->p < 4)
					return false;
				for (int i = 0; i < 4; i++) {
					int h = cmdt_hexval(j->p[i]);
					if (h < 0)
						return false;
					v = v << 4 | h;
				}
				j->p += 4;
				cr_assert(v < 0x100, "module only emits \\u00XX");
				c = (unsigned char)v;
			} else {
				const char *m = strchr("\"\\/bfnrt", e);
				if (!e || !m)
					return false;
				c = (unsigned char)"\"\\/\b\f\n\r\t"[m - "\"\\/bfnrt"];
			}
			if (out && n < cap)
				out[n] = (char)c;
			n++;
			continue;
		}
		ul = cmdt_utf8((const unsigned char *)j->p, (size_t)(j->end - j->p));
		if (!ul)
			return false;
		for (int i = 0; i < ul; i++, n++)
			if (out && n < cap)
				out[n] = j->p[i];
		j->p += ul;
	}
	return false;
}

static bool cmdt_jvalue(struct cmdt_json *j, int depth)
{
	if (depth > 16)
		return false;
	cmdt_jws(j);
	if (j->p >= j->end)
		return false;
	switch (*j->p) {
	case '"':
		return cmdt_jstring(j, NULL, 0, NULL);
	case '{':
	case '[': {
		char close = *j->p == '{' ? '}' : ']';
		bool obj = close == '}';
		j->p++;
		cmdt_jws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		for (;;) {
			if (obj) {
				cmdt_jws(j);
				if (!cmdt_jstring(j, NULL, 0, NULL))
					return false;
				cmdt_jws(j);
				if (j->p >= j->end || *j->p++ != ':')
					return false;
			}
			if (!cmdt_jvalue(j, depth + 1))
				return false;
			cmdt_jws(j);
			if (j->p >= j->end)
				return false;
			if (*j->p == ',') {
				j->p++;
				continue;
			}
			if (*j->p++ != close)
				return false;
			return true;
		}
	}
	default:
		for (const char *const *w = (const char *const[]){ "true", "false", "null", NULL }; *w; w++) {
			size_t l = strlen(*w);
			if ((size_t)(j->end - j->p) >= l && memcmp(j->p, *w, l) == 0) {
				j->p += l;
				return true;
			}
		}
		/* Numbers are never emitted by the module: refuse them. */
		return false;
	}
}

/* The whole reply must be exactly one JSON object and a newline. */
static bool cmdt_json_valid(const char *s, size_t n)
{
	struct cmdt_json j = { s, s + n };

	if (n < 3 || s[n - 1] != '\n' || memchr(s, '\n', n - 1) || s[0] != '{')
		return false;
	if (!cmdt_jvalue(&j, 0))
		return false;
	return j.p == s + n - 1;
}

/* Find top-level "key": string value, decoded into out.  -1 if absent. */
static long cmdt_json_str(const char *s, const char *key, char *out, size_t cap)
{
	char pat[64];
	const char *at;
	struct cmdt_json j;
	size_t n;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	at = strstr(s, pat);
	if (!at)
		return -1;
	j.p = at + strlen(pat) - 1;
	j.end = s + strlen(s);
	if (!cmdt_jstring(&j, out, cap, &n))
		return -1;
	if (n < cap)
		out[n] = '\0';
	return (long)n;
}

/* ---- tokenizer ---- */

static int cmdt_tok(const char *in, char **argv, int max, const char **err, char *buf)
{
	strcpy(buf, in);
	return cmd_tokenize(buf, argv, max, err);
}

Test(cmd, tokenize_basic)
{
	char buf[256], *argv[8];
	const char *err = "x";

	cr_assert_eq(cmdt_tok("", argv, 8, &err, buf), 0);
	cr_assert_null(err);
	cr_assert_null(argv[0]);
	cr_assert_eq(cmdt_tok(" \t\r\n ", argv, 8, &err, buf), 0);
	cr_assert_eq(cmdt_tok("a", argv, 8, &err, buf), 1);
	cr_assert_str_eq(argv[0], "a");
	cr_assert_null(argv[1]);
	cr_assert_eq(cmdt_tok("  vm   create\tx  ", argv, 8, &err, buf), 3);
	cr_assert_str_eq(argv[0], "vm");
	cr_assert_str_eq(argv[1], "create");
	cr_assert_str_eq(argv[2], "x");
	cr_assert_eq(cmd_tokenize(NULL, argv, 8, NULL), 0);
}

Test(cmd, tokenize_quotes)
{
	char buf[256], *argv[8];
	const char *err;

	cr_assert_eq(cmdt_tok("say \"hello world\"  x", argv, 8, &err, buf), 3);
	cr_assert_str_eq(argv[1], "hello world");
	cr_assert_str_eq(argv[2], "x");
	cr_assert_eq(cmdt_tok("name=\"a b\" k=v", argv, 8, &err, buf), 2);
	cr_assert_str_eq(argv[0], "name=a b");
	cr_assert_str_eq(argv[1], "k=v");
	cr_assert_eq(cmdt_tok("\"\" \"\"x \"a\"\"b\"", argv, 8, &err, buf), 3);
	cr_assert_str_eq(argv[0], "");
	cr_assert_str_eq(argv[1], "x");
	cr_assert_str_eq(argv[2], "ab");
	cr_assert_eq(cmdt_tok("\"q\\\"uote\\\\\" \"\\n\"", argv, 8, &err, buf), 2);
	cr_assert_str_eq(argv[0], "q\"uote\\");
	cr_assert_str_eq(argv[1], "\\n");	/* unknown escape stays literal */
}

Test(cmd, tokenize_backslash_outside_quotes_is_literal)
{
	char buf[64], *argv[4];

	/* a\"b: the backslash is literal and the quote opens a quoted run. */
	cr_assert_eq(cmdt_tok("a\\\"b c\"", argv, 4, NULL, buf), 1);
	cr_assert_str_eq(argv[0], "a\\b c");
	cr_assert_eq(cmdt_tok("C:\\dir\\x", argv, 4, NULL, buf), 1);
	cr_assert_str_eq(argv[0], "C:\\dir\\x");
}

Test(cmd, tokenize_errors)
{
	char buf[256], *argv[4];
	const char *err = NULL;

	cr_assert_eq(cmdt_tok("a \"b c", argv, 4, &err, buf), -EINVAL);
	cr_assert_str_eq(err, "unterminated quote");
	cr_assert_eq(cmdt_tok("\"abc\\\"", argv, 4, &err, buf), -EINVAL);
	cr_assert_eq(cmdt_tok("a b c d", argv, 4, &err, buf), 4);
	cr_assert_eq(cmdt_tok("a b c d ", argv, 4, &err, buf), 4);
	cr_assert_eq(cmdt_tok("a b c d e", argv, 4, &err, buf), -E2BIG);
	cr_assert_str_eq(err, "too many arguments");
	cr_assert_eq(cmdt_tok("a", argv, 0, &err, buf), -E2BIG);
	cr_assert_eq(cmdt_tok("a \"", argv, 4, NULL, buf), -EINVAL);
}

/* ---- dispatch ---- */

Test(cmd, dispatch_simple)
{
	cr_assert_eq(cmdt_run("status", false), 0);
	cr_assert_str_eq(cmdt_out.data, "all good\n");
	cr_assert_eq(cmdt_ctx.calls, 1);
	cr_assert_eq(cmdt_run("   status   ", false), 0);
	cr_assert_str_eq(cmdt_out.data, "all good\n");
}

Test(cmd, dispatch_blank)
{
	cr_assert_eq(cmdt_run("", false), 0);
	cr_assert_eq(cmdt_out.len, 0);
	cr_assert_eq(cmdt_run(" \t ", true), 0);
	cr_assert_eq(cmdt_out.len, 0);
	cr_assert_eq(cmd_dispatch(cmdt_tab, CMDT_N, NULL, NULL, &cmdt_o, false), 0);
	cr_assert_eq(cmdt_ctx.calls, 0);
}

Test(cmd, dispatch_multiword_and_args)
{
	cr_assert_eq(cmdt_run("vm create web \"mem=64 M\"", false), 0);
	cr_assert_str_eq(cmdt_ctx.last, "vm create");
	cr_assert_eq(cmdt_ctx.argc, 2);
	cr_assert_str_eq(cmdt_ctx.args[0], "web");
	cr_assert_str_eq(cmdt_ctx.args[1], "mem=64 M");
	cr_assert_str_eq(cmdt_out.data, "created web\n");

	cr_assert_eq(cmdt_run("vm snapshot take a", false), 0);
	cr_assert_eq(cmdt_ctx.argc, 1);
	cr_assert_str_eq(cmdt_ctx.args[0], "a");

	cr_assert_eq(cmdt_run("log", false), 0);
	cr_assert_eq(cmdt_ctx.argc, 0);
	cr_assert_eq(cmdt_run("log 50", false), 0);
	cr_assert_eq(cmdt_ctx.argc, 1);
}

/* "fail" and "fail loud" both exist: the longer full match wins. */
Test(cmd, dispatch_longest_match)
{
	cr_assert_eq(cmdt_run("fail loud", false), -EIO);
	cr_assert_str_eq(cmdt_ctx.last, "fail loud");
	cr_assert_eq(cmdt_run("fail", false), -EBUSY);
	cr_assert_str_eq(cmdt_ctx.last, "fail");
	/* "fail louder" is not "fail loud": fail gets an argument and refuses. */
	cr_assert_eq(cmdt_run("fail louder", false), -EINVAL);
	cr_assert_str_eq(cmdt_out.data, "error: fail: too many arguments (usage: fail)\n");
	cr_assert_eq(cmdt_ctx.calls, 0);
}

Test(cmd, dispatch_lookup_errors)
{
	cr_assert_eq(cmdt_run("foo bar", false), -ENOENT);
	cr_assert_str_eq(cmdt_out.data, "error: unknown command 'foo' (try 'help')\n");
	cr_assert_eq(cmdt_run("vm", false), -EINVAL);
	cr_assert_str_eq(cmdt_out.data, "error: vm: missing subcommand (try 'help vm')\n");
	cr_assert_eq(cmdt_run("vm destroy x", false), -ENOENT);
	cr_assert_str_eq(cmdt_out.data,
			 "error: vm: unknown subcommand 'destroy' (try 'help vm')\n");
	cr_assert_eq(cmdt_run("vm snapshot", false), -EINVAL);
	cr_assert_str_eq(cmdt_out.data,
			 "error: vm snapshot: missing subcommand (try 'help vm snapshot')\n");
	cr_assert_eq(cmdt_run("vm snapshot drop", false), -ENOENT);
	cr_assert_eq(cmdt_run("VM list", false), -ENOENT);	/* case matters */
	cr_assert_eq(cmdt_ctx.calls, 0);
	/* User text in errors is sanitized and bounded. */
	cr_assert_eq(cmdt_run("\x1b[2Jxx", false), -ENOENT);
	cr_assert_str_eq(cmdt_out.data, "error: unknown command '?[2Jxx' (try 'help')\n");
	char lng[200];
	memset(lng, 'z', 150);
	lng[150] = '\0';
	cr_assert_eq(cmdt_run(lng, false), -ENOENT);
	cr_assert(strstr(cmdt_out.data, "zzz...' (try 'help')\n"));
	cr_assert(cmdt_out.len < 100);
}

Test(cmd, dispatch_arg_counts)
{
	cr_assert_eq(cmdt_run("log 1 2", false), -EINVAL);
	cr_assert_str_eq(cmdt_out.data, "error: log: too many arguments (usage: log [N])\n");
	cr_assert_eq(cmdt_run("vm create", false), -EINVAL);
	cr_assert_str_eq(cmdt_out.data,
			 "error: vm create: missing arguments (usage: vm create NAME [mem=SIZE])\n");
	cr_assert_eq(cmdt_run("vm list x", false), -EINVAL);
	cr_assert_str_eq(cmdt_out.data, "error: vm list: too many arguments (usage: vm list)\n");
	cr_assert_eq(cmdt_run("status x", false), -EINVAL);
	cr_assert_str_eq(cmdt_out.data, "error: status: too many arguments (usage: status)\n");
	cr_assert_eq(cmdt_ctx.calls, 0);
	/* CMD_ARGS_ANY: everything up to the token limit. */
	cr_assert_eq(cmdt_run("echo 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 "
			      "21 22 23 24 25 26 27 28 29 30 31", false), 0);
	cr_assert_eq(cmdt_ctx.argc, 31);
	cr_assert_eq(cmdt_run("echo 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 "
			      "21 22 23 24 25 26 27 28 29 30 31 32", false), -E2BIG);
	cr_assert_str_eq(cmdt_out.data, "error: too many arguments (max 32)\n");
}

Test(cmd, dispatch_parse_errors)
{
	char line[CMD_LINE_MAX + 2];

	cr_assert_eq(cmdt_run("echo \"abc", false), -EINVAL);
	cr_assert_str_eq(cmdt_out.data, "error: unterminated quote\n");
	memset(line, 'a', sizeof(line));
	line[CMD_LINE_MAX] = '\0';
	memcpy(line, "echo ", 5);
	cr_assert_eq(cmdt_run(line, false), 0);	/* exactly CMD_LINE_MAX */
	line[CMD_LINE_MAX] = 'a';
	line[CMD_LINE_MAX + 1] = '\0';
	cr_assert_eq(cmdt_run(line, false), -E2BIG);
	cr_assert_str_eq(cmdt_out.data, "error: line too long\n");
	cr_assert_eq(cmdt_run(line, true), -E2BIG);
	cr_assert_str_eq(cmdt_out.data, "{\"ok\":false,\"cmd\":\"\",\"error\":\"line too long\"}\n");
}

Test(cmd, dispatch_handler_errors)
{
	cr_assert_eq(cmdt_run("fail", false), -EBUSY);
	cr_assert_str_eq(cmdt_out.data, "error: fail: busy\n");
	cr_assert_eq(cmdt_run("fail weird", false), -12345);
	cr_assert_str_eq(cmdt_out.data, "error: fail weird: unknown error\n");
	cr_assert_eq(cmdt_run("fail loud", false), -EIO);
	cr_assert_str_eq(cmdt_out.data,
			 "partial line 1\npartial \"2\"\nerror: fail loud: disk on fire\n");
}

Test(cmd, json_success)
{
	cr_assert_eq(cmdt_run("status", true), 0);
	cr_assert_str_eq(cmdt_out.data, "{\"ok\":true,\"cmd\":\"status\",\"output\":\"all good\\n\"}\n");
	cr_assert_eq(cmdt_run("vm list", true), 0);
	cr_assert_str_eq(cmdt_out.data, "{\"ok\":true,\"cmd\":\"vm list\",\"output\":\"\"}\n");
	cr_assert_eq(cmdt_run("echo \"quote\\\" back\\\\slash\ttab\"", true), 0);
	cr_assert(cmdt_json_valid(cmdt_out.data, cmdt_out.len), "%s", cmdt_out.data);
	cr_assert_str_eq(cmdt_out.data,
			 "{\"ok\":true,\"cmd\":\"echo\",\"output\":"
			 "\"<quote\\\" back\\\\slash\\ttab>\\n\"}\n");
}

Test(cmd, json_errors)
{
	char v[512];

	cr_assert_eq(cmdt_run("fail", true), -EBUSY);
	cr_assert_str_eq(cmdt_out.data, "{\"ok\":false,\"cmd\":\"fail\",\"error\":\"fail: busy\"}\n");
	cr_assert_eq(cmdt_run("fail loud", true), -EIO);
	cr_assert(cmdt_json_valid(cmdt_out.data, cmdt_out.len), "%s", cmdt_out.data);
	cr_assert_eq(cmdt_json_str(cmdt_out.data, "error", v, sizeof(v)), 23);
	cr_assert_str_eq(v, "fail loud: disk on fire");
	cr_assert_gt(cmdt_json_str(cmdt_out.data, "output", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "partial line 1\npartial \"2\"\n");
	cr_assert(strncmp(cmdt_out.data, "{\"ok\":false,", 12) == 0);

	cr_assert_eq(cmdt_run("nope", true), -ENOENT);
	cr_assert_str_eq(cmdt_out.data,
			 "{\"ok\":false,\"cmd\":\"nope\",\"error\":\"unknown command 'nope' (try 'help')\"}\n");
	cr_assert_eq(cmdt_run("vm", true), -EINVAL);
	cr_assert_str_eq(cmdt_out.data,
			 "{\"ok\":false,\"cmd\":\"vm\",\"error\":\"vm: missing subcommand (try 'help vm')\"}\n");
	cr_assert_eq(cmdt_run("log 1 2", true), -EINVAL);
	cr_assert(cmdt_json_valid(cmdt_out.data, cmdt_out.len));
	cr_assert_geq(cmdt_json_str(cmdt_out.data, "error", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "log: too many arguments (usage: log [N])");
}

/* Every byte value survives the trip through JSON and the reply is valid. */
Test(cmd, json_binary_roundtrip)
{
	static char v[1024], expect[1024];
	size_t elen = 0;

	cr_assert_eq(cmdt_run("bin", true), 0);
	cr_assert(cmdt_json_valid(cmdt_out.data, cmdt_out.len), "%s", cmdt_out.data);
	long n = cmdt_json_str(cmdt_out.data, "output", v, sizeof(v));
	for (int i = 0; i < 256; i++)
		expect[elen++] = (char)i;
	const char *tail = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80";
	memcpy(expect + elen, tail, strlen(tail));
	elen += strlen(tail);
	cr_assert_eq((size_t)n, elen);
	cr_assert(memcmp(v, expect, elen) == 0);
	/* Valid UTF-8 passes through raw, invalid bytes become \u00XX. */
	cr_assert(strstr(cmdt_out.data, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
					"\\u00ed\\u00a0\\u0080 \\u00c0\\u00af "
					"\\u00f4\\u0090\\u0080\\u0080\""));
	cr_assert(strstr(cmdt_out.data, "\\u0000\\u0001"));
	cr_assert(strstr(cmdt_out.data, "\\u007f\\u0080"));
}

Test(cmd, json_truncation)
{
	char *v = malloc(CMD_JSON_CAPTURE + 16);

	cr_assert_eq(cmdt_run("big", true), 0);
	cr_assert(cmdt_json_valid(cmdt_out.data, cmdt_out.len));
	cr_assert(strstr(cmdt_out.data, ",\"truncated\":true}\n"));
	cr_assert_eq(cmdt_json_str(cmdt_out.data, "output", v, CMD_JSON_CAPTURE + 16),
		     CMD_JSON_CAPTURE);
	cr_assert(strncmp(v, "line 0000\nline 0001\n", 20) == 0);
	/* Plain mode is not bounded. */
	cr_assert_eq(cmdt_run("big", false), 0);
	cr_assert_eq(cmdt_out.len, 20000);
	free(v);
}

Test(cmd, help_all_and_topic)
{
	cr_assert_eq(cmdt_run("help vm", false), 0);
	cr_assert_str_eq(cmdt_out.data,
			 "  vm create NAME [mem=SIZE]  create a VM\n"
			 "  vm list                    list VMs\n"
			 "  vm snapshot take NAME      snapshot a VM\n");
	cr_assert_eq(cmdt_run("help vm snapshot", false), 0);
	cr_assert_str_eq(cmdt_out.data, "  vm snapshot take NAME  snapshot a VM\n");
	cr_assert_eq(cmdt_run("help", false), 0);
	int lines = 0;
	for (size_t i = 0; i < cmdt_out.len; i++)
		lines += cmdt_out.data[i] == '\n';
	cr_assert_eq(lines, (int)CMDT_N - 1);	/* the NULL-name row is skipped */
	cr_assert(strstr(cmdt_out.data, "  status                     show status\n"));
	cr_assert(strstr(cmdt_out.data, "  log [N]                    show the last"));
	/* Topics match whole words: "v" is not a prefix of "vm". */
	cr_assert_eq(cmdt_run("help v", false), 0);
	cr_assert_str_eq(cmdt_out.data, "error: help: no command matches 'v'\n");
	cmdt_reset();
	cmd_help(cmdt_tab, CMDT_N, NULL, &cmdt_o);
	cr_assert_eq(cmdt_out.data[0], ' ');
	cmdt_reset();
	cmd_help(cmdt_tab, CMDT_N, "fail", &cmdt_o);
	cr_assert(strstr(cmdt_out.data, "fail loud"));
	cr_assert(strstr(cmdt_out.data, "fail weird"));
	cr_assert(!strstr(cmdt_out.data, "status"));
}

Test(cmd, strerror_table)
{
	cr_assert_str_eq(cmd_strerror(-ENOENT), "not found");
	cr_assert_str_eq(cmd_strerror(ENOMEM), "out of memory");
	cr_assert_str_eq(cmd_strerror(-ETIMEDOUT), "timed out");
	cr_assert_str_eq(cmd_strerror(0), "unknown error");
	cr_assert_str_eq(cmd_strerror(-99999), "unknown error");
}

Test(cmd, printf_truncates)
{
	char big[3000];

	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cmdt_reset();
	cmd_printf(&cmdt_o, "%s", big);
	cr_assert_eq(cmdt_out.len, CMD_PRINTF_MAX - 1);
	cmdt_reset();
	cmd_printf(&cmdt_o, "%s", "");
	cr_assert_eq(cmdt_out.writes, 0);
	cmd_printf(NULL, "x");	/* no sink: no crash */
}

/* ---- number parsers ---- */

Test(cmd, parse_u64)
{
	uint64_t v = 7;

	cr_assert_eq(cmd_parse_u64("0", &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(cmd_parse_u64("18446744073709551615", &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(cmd_parse_u64("18446744073709551616", &v), -ERANGE);
	cr_assert_eq(cmd_parse_u64("99999999999999999999999", &v), -ERANGE);
	cr_assert_eq(cmd_parse_u64("0xffffffffffffffff", &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(cmd_parse_u64("0x1ffffffffffffffff", &v), -ERANGE);
	cr_assert_eq(cmd_parse_u64("0XaBc", &v), 0);
	cr_assert_eq(v, 0xabc);
	cr_assert_eq(cmd_parse_u64("007", &v), 0);
	cr_assert_eq(v, 7);
	const char *bad[] = { "", "0x", "x1", "-1", "+1", " 1", "1 ", "1a", "0xg", "1e3",
			      "99999999999999999999x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 42;
		cr_assert_eq(cmd_parse_u64(bad[i], &v), -EINVAL, "accepted '%s'", bad[i]);
		cr_assert_eq(v, 42, "wrote output on error");
	}
	cr_assert_eq(cmd_parse_u64(NULL, &v), -EINVAL);
}

Test(cmd, parse_size)
{
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "0", 0 }, { "4096", 4096 }, { "4096B", 4096 }, { "2K", 2048 },
		{ "2k", 2048 }, { "64M", 64ull << 20 }, { "64MB", 64ull << 20 },
		{ "64MiB", 64ull << 20 }, { "1G", 1ull << 30 }, { "3T", 3ull << 40 },
		{ "0x1000", 0x1000 }, { "16777215T", 16777215ull << 40 },
		{ "16777216T", 0 /* overflow: checked below */ },
	};
	uint64_t v;

	for (size_t i = 0; i + 1 < sizeof(good) / sizeof(good[0]); i++) {
		cr_assert_eq(cmd_parse_size(good[i].s, &v), 0, "%s", good[i].s);
		cr_assert_eq(v, good[i].v, "%s", good[i].s);
	}
	cr_assert_eq(cmd_parse_size("16777216T", &v), -ERANGE);
	cr_assert_eq(cmd_parse_size("18446744073709551616", &v), -ERANGE);
	cr_assert_eq(cmd_parse_size("17179869184G", &v), -ERANGE);
	cr_assert_eq(cmd_parse_size("17179869183G", &v), 0);
	const char *bad[] = { "", "M", "1X", "1MM", "1Mi", "1iB", "1Mb", "1 M", "-1M",
			      "1.5G", "0x10M", "1MBB", "1KiBx", "0x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(cmd_parse_size(bad[i], &v), -EINVAL, "accepted '%s'", bad[i]);
}

Test(cmd, parse_kv)
{
	const char *val = NULL;

	cr_assert_eq(cmd_parse_kv("mem=64M", "mem", &val), 1);
	cr_assert_str_eq(val, "64M");
	cr_assert_eq(cmd_parse_kv("mem=", "mem", &val), 1);
	cr_assert_str_eq(val, "");
	cr_assert_eq(cmd_parse_kv("memory=1", "mem", &val), 0);
	cr_assert_eq(cmd_parse_kv("mem", "mem", &val), 0);
	cr_assert_eq(cmd_parse_kv("me=1", "mem", &val), 0);
	cr_assert_eq(cmd_parse_kv("=1", "", &val), 0);
	cr_assert_eq(cmd_parse_kv(NULL, "mem", &val), 0);
}

/* ---- fuzz ---- */

static uint64_t cmdt_rng_state;

static uint32_t cmdt_rand(void)
{
	cmdt_rng_state = cmdt_rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(cmdt_rng_state >> 33);
}

Test(cmd, fuzz_dispatch)
{
	static const char *const words[] = {
		"vm", "create", "list", "snapshot", "take", "log", "status", "echo",
		"fail", "loud", "weird", "bin", "help", "mem=64M", "\"", "\\", "\"a b\"",
		"\\\"", " ", "  ", "\t", "x", "\xff", "\xc3\xa9", "\x01", "\"\"",
	};
	char line[CMD_LINE_MAX + 64];

	cmdt_rng_state = 7;
	for (int iter = 0; iter < 40000; iter++) {
		size_t len = 0;
		int nw = (int)(cmdt_rand() % 12);

		for (int k = 0; k < nw; k++) {
			const char *w;
			char rb[2] = { (char)(1 + cmdt_rand() % 255), 0 };

			w = (cmdt_rand() % 8) ? words[cmdt_rand() % (sizeof(words) / sizeof(words[0]))] : rb;
			size_t wl = strlen(w);
			if (len + wl + 1 >= sizeof(line))
				break;
			memcpy(line + len, w, wl);
			len += wl;
			if (cmdt_rand() % 3)
				line[len++] = ' ';
		}
		line[len] = '\0';
		if (iter % 500 == 0) {	/* around the length limit */
			memset(line, 'e', CMD_LINE_MAX + 1);
			line[CMD_LINE_MAX - 1 + (iter / 500) % 3] = '\0';
		}
		bool json = cmdt_rand() & 1;
		int rc = cmdt_run(line, json);

		if (json) {
			if (cmdt_out.len == 0)
				continue;	/* blank line */
			cr_assert(cmdt_json_valid(cmdt_out.data, cmdt_out.len),
				  "invalid JSON for '%s': %s", line, cmdt_out.data);
			cr_assert_eq(strncmp(cmdt_out.data, "{\"ok\":true,", 11) == 0, rc >= 0);
		} else if (rc < 0 && cmdt_ctx.calls == 0) {
			/* A dispatcher error: one line starting "error: ". */
			cr_assert(strncmp(cmdt_out.data, "error: ", 7) == 0, "%s", cmdt_out.data);
			cr_assert_eq(memchr(cmdt_out.data, '\n', cmdt_out.len),
				     cmdt_out.data + cmdt_out.len - 1);
			for (size_t i = 0; i < cmdt_out.len - 1; i++)
				cr_assert(cmdt_out.data[i] >= 0x20 && cmdt_out.data[i] < 0x7f,
					  "unsanitized byte in error");
		}
		cr_assert(cmdt_ctx.calls <= 1);
		if (rc == 0 && cmdt_ctx.calls == 0)
			cr_assert_eq(cmdt_out.len, 0, "rc 0 without a handler must be blank");
	}
}

Test(cmd, fuzz_tokenize)
{
	static const char alpha[] = "ab \t\"\\=\r\n";
	char in[64], buf[64], *argv[8];

	cmdt_rng_state = 99;
	for (int iter = 0; iter < 100000; iter++) {
		size_t n = cmdt_rand() % (sizeof(in) - 1);
		const char *err;

		for (size_t i = 0; i < n; i++)
			in[i] = alpha[cmdt_rand() % (sizeof(alpha) - 1)];
		in[n] = '\0';
		memcpy(buf, in, n + 1);
		int argc = cmd_tokenize(buf, argv, 8, &err);
		if (argc < 0) {
			cr_assert(argc == -EINVAL || argc == -E2BIG);
			cr_assert_not_null(err);
			continue;
		}
		/* Compare with a straightforward reference model. */
		char ref[8][64];
		int rn = 0;
		size_t rl = 0;
		bool in_tok = false, q = false;
		for (size_t i = 0; i <= n; i++) {
			char c = in[i];
			bool blank = c == ' ' || c == '\t' || c == '\r' || c == '\n';
			if (!c || (!q && blank)) {
				if (in_tok)
					ref[rn++][rl] = '\0';
				in_tok = false;
				if (!c)
					break;
				continue;
			}
			if (!in_tok) {
				cr_assert(rn < 8);
				in_tok = true;
				rl = 0;
			}
			if (c == '"')
				q = !q;
			else if (q && c == '\\' && (in[i + 1] == '"' || in[i + 1] == '\\'))
				ref[rn][rl++] = in[++i];
			else
				ref[rn][rl++] = c;
		}
		cr_assert(!q);
		cr_assert_eq(argc, rn, "'%s'", in);
		for (int i = 0; i < argc; i++) {
			cr_assert(argv[i] >= buf && argv[i] < buf + n + 1);
			cr_assert_str_eq(argv[i], ref[i], "'%s' token %d", in, i);
		}
		if (argc < 8)
			cr_assert_null(argv[argc]);
	}
}

/* ---- the re-entry guard (cmd_dispatch_guarded) ---- */

struct cmdt_guard_state {
	const struct cmd_def *running;
	int enters, leaves;
	const struct cmd_def *seen;
};

static int cmdt_enter(void *arg, const struct cmd_def *d)
{
	struct cmdt_guard_state *g = arg;

	g->enters++;
	g->seen = d;
	return g->running == d ? -EBUSY : 0;
}

static void cmdt_leave(void *arg, const struct cmd_def *d)
{
	struct cmdt_guard_state *g = arg;

	cr_assert_eq(d, g->seen, "leave for another command than enter");
	g->leaves++;
}

static int cmdt_guarded(struct cmdt_guard_state *gs, const char *line, bool json)
{
	const struct cmd_guard g = { cmdt_enter, cmdt_leave, gs };

	cmdt_reset();
	memset(&cmdt_ctx, 0, sizeof(cmdt_ctx));
	return cmd_dispatch_guarded(cmdt_tab, CMDT_N, &cmdt_ctx, line, &cmdt_o, json, &g);
}

Test(cmd, guard_brackets_the_handler)
{
	struct cmdt_guard_state gs = { 0 };

	cr_assert_eq(cmdt_guarded(&gs, "vm create web mem=64M", false), 0);
	cr_assert_eq(gs.enters, 1);
	cr_assert_eq(gs.leaves, 1);
	cr_assert_str_eq(gs.seen->name, "vm create");
	cr_assert_eq(cmdt_ctx.calls, 1);
}

Test(cmd, guard_refuses_a_command_already_running)
{
	struct cmdt_guard_state gs = { .running = &cmdt_tab[2] };	/* vm create */

	cr_assert_eq(cmdt_guarded(&gs, "vm create web", false), -EBUSY);
	cr_assert_eq(cmdt_ctx.calls, 0, "the handler ran");
	cr_assert_eq(gs.leaves, 0, "leave without a run");
	cr_assert_str_eq(cmdt_out.data, "error: vm create: already running (on another "
			 "console); try again when it ends\n");
	/* Other commands still run. */
	cr_assert_eq(cmdt_guarded(&gs, "status", false), 0);
	cr_assert_eq(cmdt_ctx.calls, 1);
}

Test(cmd, guard_refusal_in_json)
{
	struct cmdt_guard_state gs = { .running = &cmdt_tab[0] };	/* status */

	cr_assert_eq(cmdt_guarded(&gs, "status", true), -EBUSY);
	cr_assert(strstr(cmdt_out.data, "\"ok\":false"), "%s", cmdt_out.data);
	cr_assert(strstr(cmdt_out.data, "already running"), "%s", cmdt_out.data);
}

Test(cmd, guard_not_called_for_a_bad_line)
{
	struct cmdt_guard_state gs = { 0 };

	cr_assert_lt(cmdt_guarded(&gs, "frob", false), 0);
	cr_assert_lt(cmdt_guarded(&gs, "vm create", false), 0);	/* missing NAME */
	cr_assert_eq(gs.enters, 0);
}
