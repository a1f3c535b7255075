/*
 * The console command language, shared by the serial console and the
 * network console.  Pure: no hardware, no allocation, no global state.
 *
 * A command table is an array of struct cmd_def.  Names may have several
 * words ("vm create"); dispatch picks the longest name whose words all
 * match the leading tokens of the line, checks the argument count and calls
 * the handler with the remaining tokens.
 *
 * Reply format.  Plain mode: whatever the handler prints; every error is
 * ONE line starting "error: ".  JSON mode: exactly one object per reply on
 * one line, ended by "\n":
 *	{"ok":true,"cmd":"status","output":"..."}
 *	{"ok":true,"cmd":"log","output":"...","truncated":true}
 *	{"ok":false,"cmd":"vm create","error":"vm create: not found"}
 *	{"ok":false,"cmd":"vm create","error":"...","output":"text printed before the error"}
 * A failing handler's last non-empty output line becomes "error" (with its
 * "error: " prefix removed); anything printed before it stays in "output".
 * Strings are valid JSON: control bytes and bytes that are not valid UTF-8
 * are written as \u00XX.
 *
 * Stack: dispatch itself uses about 2 KiB and cmd_printf about 1.3 KiB,
 * plus the handler's own; JSON dispatch also captures the handler's output
 * in CMD_JSON_CAPTURE bytes of stack, so run it on a thread with at least
 * 32 KiB of stack.  Callers serialise: nothing here locks.
 */
#ifndef TERN_LIB_CMD_H
#define TERN_LIB_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMD_MAX_ARGS		32	/* tokens per line, command words included */
#define CMD_LINE_MAX		1024	/* characters per line, NUL excluded */
#define CMD_PRINTF_MAX		1024	/* one cmd_printf expansion; longer is cut */
#define CMD_JSON_CAPTURE	(16 * 1024)	/* handler output kept in JSON mode */
#define CMD_ARGS_ANY		(-1)	/* max_args: no limit beyond CMD_MAX_ARGS */

/* Output sink.  write() gets raw bytes, not NUL-terminated. */
struct cmd_out {
	void (*write)(void *ctx, const char *s, size_t n);
	void *ctx;
};

/* Opaque to this module: owned by the console, passed through to handlers. */
struct cmd_ctx;

struct cmd_def {
	const char *name;	/* one or more words separated by single spaces */
	const char *args;	/* usage of the arguments, e.g. "[N]"; may be NULL */
	const char *help;	/* one-line description */
	int min_args, max_args;	/* after the name; max_args may be CMD_ARGS_ANY */
	/* argv[0] is the first token after the name; argv[argc] is NULL.
	 * Returns 0 or a negative errno.  On error it should print its own
	 * "error: <name>: ..." line; if it prints nothing, dispatch does.
	 * A row with a NULL fn is listed by cmd_help but never dispatched. */
	int (*fn)(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
};

/* Raw output helpers. */
void cmd_write(struct cmd_out *o, const char *s, size_t n);
void cmd_puts(struct cmd_out *o, const char *s);

/* Formatted output; one expansion is cut at CMD_PRINTF_MAX - 1 bytes. */
void cmd_printf(struct cmd_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Split line in place into at most max tokens.  Tokens are separated by
 * blanks (space, tab, CR, LF).  Double quotes group characters and may
 * appear inside a token (key="a b" gives key=a b); inside quotes \" and \\
 * are escapes, any other backslash is literal.  "" is an empty token.
 * Returns the token count (argv[count] = NULL when count < max), or
 * -EINVAL with *err = "unterminated quote", or -E2BIG with
 * *err = "too many arguments".  err may be NULL.
 */
int cmd_tokenize(char *line, char **argv, int max, const char **err);

/*
 * Run one line against tab[0..n).  line is NUL-terminated and not
 * modified.  Returns the handler's return value, 0 for a blank line (which
 * prints nothing), -EINVAL for a line that does not parse or has a wrong
 * argument count, -ENOENT for an unknown command, -E2BIG for too many
 * tokens or a line longer than CMD_LINE_MAX.
 */
int cmd_dispatch(const struct cmd_def *tab, size_t n, struct cmd_ctx *ctx,
		 const char *line, struct cmd_out *o, bool json);

/*
 * A front end whose commands may wait while other front ends run (the
 * boot CPU's main loop, kernel/platform/mainloop.h) passes a guard: enter
 * runs after the line parsed and before the handler, and a negative return
 * (-EBUSY: this command is already running) refuses it with
 * "error: NAME: already running (...)"; leave runs after the handler.
 */
struct cmd_guard {
	int (*enter)(void *arg, const struct cmd_def *d);
	void (*leave)(void *arg, const struct cmd_def *d);
	void *arg;
};

int cmd_dispatch_guarded(const struct cmd_def *tab, size_t n, struct cmd_ctx *ctx,
			 const char *line, struct cmd_out *o, bool json,
			 const struct cmd_guard *g);

/*
 * Print the command list, names and args aligned in one column, help text
 * in the next.  topic (NULL or "" for all) selects the commands whose name
 * starts with topic's words ("vm" lists "vm create" and "vm list", not
 * "vmx").  A topic that matches nothing prints an error line.
 */
void cmd_help(const struct cmd_def *tab, size_t n, const char *topic,
	      struct cmd_out *o);

/* Short lowercase text for a negative (or positive) errno value;
 * "unknown error" for a value not in the table. */
const char *cmd_strerror(int err);

/* Decimal, or hex with 0x/0X; the whole string; 0, -EINVAL or -ERANGE. */
int cmd_parse_u64(const char *s, uint64_t *out);

/*
 * A byte count: decimal digits with an optional binary unit K, M, G or T
 * (case-insensitive, 1024-based) optionally followed by "B" or "iB", or a
 * plain "B" ("4096B").  A 0x hex number is accepted without a unit.
 * 0, -EINVAL, or -ERANGE when the result does not fit in 64 bits.
 */
int cmd_parse_size(const char *s, uint64_t *bytes);

/* "mem=64M" with key "mem" sets *val to "64M" and returns 1; else 0. */
int cmd_parse_kv(const char *tok, const char *key, const char **val);

#endif
