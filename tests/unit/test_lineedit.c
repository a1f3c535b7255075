/* Unit tests for kernel/lib/lineedit.c (serial line editor). */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernel/lib/lineedit.h"

/*
 * A minimal VT100 model of one terminal row: it understands exactly the
 * bytes the editor may send and fails the test on anything else.
 */
#define LET_COLS (LEDIT_MAX + 8)

struct let_term {
	char row[LET_COLS];
	int col;
	int bells, newlines;
	char raw[4096];		/* bytes of the last feed */
	size_t raw_len;
	int state;		/* 0 plain, 1 after ESC, 2 in CSI */
	int param;
	int origin;		/* columns the prompt takes before the line */
};

static void let_echo(void *ctx, const char *s, size_t n)
{
	struct let_term *t = ctx;

	cr_assert(n > 0);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (t->raw_len < sizeof(t->raw))
			t->raw[t->raw_len++] = c;
		if (t->state == 1) {
			cr_assert_eq(c, '[', "ESC not followed by [");
			t->state = 2;
			t->param = -1;
			continue;
		}
		if (t->state == 2) {
			if (c >= '0' && c <= '9') {
				t->param = (t->param < 0 ? 0 : t->param * 10) + (c - '0');
				continue;
			}
			int p = t->param < 0 ? 1 : t->param;
			t->state = 0;
			if (c == 'D')
				t->col -= p;
			else if (c == 'C')
				t->col += p;
			else if (c == 'K' && t->param < 0)
				memset(t->row + t->col, ' ', LET_COLS - (size_t)t->col);
			else
				cr_assert_fail("unexpected CSI final %c", c);
			cr_assert(t->col >= 0 && t->col < LET_COLS, "cursor off the row");
			continue;
		}
		if (c == '\x1b') {
			t->state = 1;
		} else if (c == '\b') {
			cr_assert(t->col > 0, "BS at column 0");
			t->col--;
		} else if (c == '\a') {
			t->bells++;
		} else if (c == '\r') {
			t->col = 0;
		} else if (c == '\n') {
			t->newlines++;
			memset(t->row, ' ', sizeof(t->row));
		} else {
			cr_assert(c >= 0x20 && c <= 0x7e, "non-printable 0x%02x echoed",
				  (unsigned char)c);
			cr_assert(t->col < LET_COLS - 1);
			t->row[t->col++] = c;
		}
	}
}

static void let_term_init(struct let_term *t)
{
	memset(t, 0, sizeof(*t));
	memset(t->row, ' ', sizeof(t->row));
}

/* The terminal must show exactly the editor's line, cursor included. */
static void let_check_screen(const struct ledit *e, const struct let_term *t)
{
	cr_assert_eq(t->state, 0, "echo ended inside an escape sequence");
	cr_assert_eq(t->col - t->origin, e->cur, "terminal col %d, editor cursor %d",
		     t->col - t->origin, e->cur);
	cr_assert(memcmp(t->row + t->origin, e->buf, e->len) == 0,
		  "screen '%.*s' != line '%s'", (int)e->len, t->row + t->origin, e->buf);
	for (int i = t->origin + e->len; i < LET_COLS; i++)
		cr_assert_eq(t->row[i], ' ', "stale char at col %d", i);
}

static void let_check_invariants(const struct ledit *e)
{
	cr_assert(e->len <= LEDIT_MAX);
	cr_assert(e->cur <= e->len);
	cr_assert_eq(strlen(e->buf), e->len);
	for (int i = 0; i < e->len; i++)
		cr_assert(e->buf[i] >= 0x20 && e->buf[i] <= 0x7e);
}

/* Feed a string; returns the last non-NONE result (or NONE). */
static int let_type(struct ledit *e, struct let_term *t, const char *s, size_t n)
{
	int last = LEDIT_NONE;

	for (size_t i = 0; i < n; i++) {
		t->raw_len = 0;
		int r = ledit_feed(e, (uint8_t)s[i], let_echo, t);
		if (r != LEDIT_NONE)
			last = r;
		let_check_invariants(e);
		let_check_screen(e, t);
	}
	return last;
}

#define LET_TYPE(e, t, lit) let_type((e), (t), (lit), sizeof(lit) - 1)

static struct ledit let_e;
static struct let_term let_t;

static void let_setup(void)
{
	ledit_init(&let_e);
	let_term_init(&let_t);
}

TestSuite(lineedit, .init = let_setup);

Test(lineedit, plain_typing_echoes_exactly)
{
	const char *text = "vm create web mem=64M";
	char echoed[128] = "";
	size_t n = 0;

	for (const char *p = text; *p; p++) {
		let_t.raw_len = 0;
		cr_assert_eq(ledit_feed(&let_e, (uint8_t)*p, let_echo, &let_t), LEDIT_NONE);
		memcpy(echoed + n, let_t.raw, let_t.raw_len);
		n += let_t.raw_len;
	}
	echoed[n] = '\0';
	cr_assert_str_eq(echoed, text);
	let_t.raw_len = 0;
	cr_assert_eq(ledit_feed(&let_e, '\r', let_echo, &let_t), LEDIT_LINE);
	cr_assert_eq(let_t.raw_len, 2);
	cr_assert(memcmp(let_t.raw, "\r\n", 2) == 0);
	cr_assert_str_eq(ledit_line(&let_e), text);
	cr_assert_eq(let_e.len, 0);
}

Test(lineedit, null_echo_is_allowed)
{
	for (const char *p = "abc\x1b[D\x7fX\r"; *p; p++)
		ledit_feed(&let_e, (uint8_t)*p, NULL, NULL);
	cr_assert_str_eq(ledit_line(&let_e), "aXc");
}

Test(lineedit, cursor_and_insert)
{
	LET_TYPE(&let_e, &let_t, "hello\x1b[D\x1b[DX");
	cr_assert_str_eq(let_e.buf, "helXlo");
	cr_assert_eq(let_e.cur, 4);
	LET_TYPE(&let_e, &let_t, "\x01<");	/* ^A */
	cr_assert_str_eq(let_e.buf, "<helXlo");
	cr_assert_eq(let_e.cur, 1);
	LET_TYPE(&let_e, &let_t, "\x05>");	/* ^E */
	cr_assert_str_eq(let_e.buf, "<helXlo>");
	LET_TYPE(&let_e, &let_t, "\x1b[H\x1b[C\x1b[C");
	cr_assert_eq(let_e.cur, 2);
	LET_TYPE(&let_e, &let_t, "\x1b[F");
	cr_assert_eq(let_e.cur, 8);
	LET_TYPE(&let_e, &let_t, "\x1bOH");	/* SS3 home */
	cr_assert_eq(let_e.cur, 0);
	LET_TYPE(&let_e, &let_t, "\x1b[D");	/* left at column 0: nothing */
	cr_assert_eq(let_e.cur, 0);
	LET_TYPE(&let_e, &let_t, "\x1b[4~");	/* vt220 end */
	cr_assert_eq(let_e.cur, 8);
	LET_TYPE(&let_e, &let_t, "\x1b[C");	/* right at the end: nothing */
	cr_assert_eq(let_e.cur, 8);
	LET_TYPE(&let_e, &let_t, "\x1b[1~\x1bOC\x1b[1;5C");	/* home, right, ctrl-right */
	cr_assert_eq(let_e.cur, 2);
}

Test(lineedit, backspace_and_delete)
{
	LET_TYPE(&let_e, &let_t, "abcdef\x7f");
	cr_assert_str_eq(let_e.buf, "abcde");
	LET_TYPE(&let_e, &let_t, "\x1b[D\x1b[D\b");	/* 0x08 too */
	cr_assert_str_eq(let_e.buf, "abde");
	cr_assert_eq(let_e.cur, 2);
	LET_TYPE(&let_e, &let_t, "\x1b[3~");
	cr_assert_str_eq(let_e.buf, "abe");
	cr_assert_eq(let_e.cur, 2);
	LET_TYPE(&let_e, &let_t, "\x1b[3~\x1b[3~");	/* second one at the end: nothing */
	cr_assert_str_eq(let_e.buf, "ab");
	LET_TYPE(&let_e, &let_t, "\x01\x7f");	/* backspace at column 0: nothing */
	cr_assert_str_eq(let_e.buf, "ab");
	/* At the end of the line, backspace is the classic BS SP BS. */
	LET_TYPE(&let_e, &let_t, "\x05");
	let_t.raw_len = 0;
	ledit_feed(&let_e, 0x7f, let_echo, &let_t);
	cr_assert_eq(let_t.raw_len, 3);
	cr_assert(memcmp(let_t.raw, "\b \b", 3) == 0);
}

Test(lineedit, kill_line)
{
	LET_TYPE(&let_e, &let_t, "remove keep\x1b[D\x1b[D\x1b[D\x1b[D");
	LET_TYPE(&let_e, &let_t, "\x15");
	cr_assert_str_eq(let_e.buf, "keep");
	cr_assert_eq(let_e.cur, 0);
	LET_TYPE(&let_e, &let_t, "\x15");	/* at column 0: nothing */
	cr_assert_str_eq(let_e.buf, "keep");
	LET_TYPE(&let_e, &let_t, "\x05\x15");
	cr_assert_str_eq(let_e.buf, "");
}

Test(lineedit, kill_to_end)
{
	LET_TYPE(&let_e, &let_t, "hello world\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D");
	LET_TYPE(&let_e, &let_t, "\x0b");	/* ^K */
	cr_assert_str_eq(let_e.buf, "hello ");
	cr_assert_eq(let_e.cur, 6);
	let_t.raw_len = 0;
	ledit_feed(&let_e, 0x0b, let_echo, &let_t);	/* at the end: nothing */
	cr_assert_eq(let_t.raw_len, 0);
	LET_TYPE(&let_e, &let_t, "\x01\x0b");
	cr_assert_str_eq(let_e.buf, "");
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "x\r"), LEDIT_LINE);
	cr_assert_str_eq(ledit_line(&let_e), "x");
}

Test(lineedit, delete_word)
{
	LET_TYPE(&let_e, &let_t, "vm create  web");
	LET_TYPE(&let_e, &let_t, "\x17");	/* ^W */
	cr_assert_str_eq(let_e.buf, "vm create  ");
	LET_TYPE(&let_e, &let_t, "\x17");	/* the blanks go with the word */
	cr_assert_str_eq(let_e.buf, "vm ");
	cr_assert_eq(let_e.cur, 3);
	/* In the middle: the tail moves left and the rest of the row clears. */
	LET_TYPE(&let_e, &let_t, "\x15" "alpha beta gamma\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D");
	LET_TYPE(&let_e, &let_t, "\x17");
	cr_assert_str_eq(let_e.buf, "alpha gamma");
	cr_assert_eq(let_e.cur, 6);
	LET_TYPE(&let_e, &let_t, "\x01");
	let_t.raw_len = 0;
	ledit_feed(&let_e, 0x17, let_echo, &let_t);	/* at column 0: nothing */
	cr_assert_eq(let_t.raw_len, 0);
	cr_assert_str_eq(let_e.buf, "alpha gamma");
}

Test(lineedit, ctrl_d_ends_input_only_at_an_empty_line)
{
	let_t.raw_len = 0;
	cr_assert_eq(ledit_feed(&let_e, 0x04, let_echo, &let_t), LEDIT_EOF);
	cr_assert_eq(let_t.raw_len, 0, "^D echoed something");
	LET_TYPE(&let_e, &let_t, "ab\x1b[D");
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "\x04"), LEDIT_NONE);
	cr_assert_str_eq(let_e.buf, "ab");
	cr_assert_eq(let_e.cur, 1);
	/* Emptied by editing, by ^C or by a finished line: EOF again. */
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "\x05\x15\x04"), LEDIT_EOF);
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "x\x03\x04"), LEDIT_EOF);
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "y\r"), LEDIT_LINE);
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "\x04"), LEDIT_EOF);
	cr_assert_str_eq(ledit_line(&let_e), "y");
}

Test(lineedit, ctrl_c)
{
	LET_TYPE(&let_e, &let_t, "first\r");
	LET_TYPE(&let_e, &let_t, "abc");
	let_t.raw_len = 0;
	cr_assert_eq(ledit_feed(&let_e, 0x03, let_echo, &let_t), LEDIT_INTR);
	cr_assert_eq(let_t.raw_len, 4);
	cr_assert(memcmp(let_t.raw, "^C\r\n", 4) == 0);
	cr_assert_eq(let_e.len, 0);
	cr_assert_eq(let_e.cur, 0);
	/* The interrupted line did not reach history. */
	LET_TYPE(&let_e, &let_t, "\x1b[A");
	cr_assert_str_eq(let_e.buf, "first");
}

Test(lineedit, line_endings)
{
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "a\r"), LEDIT_LINE);
	cr_assert_str_eq(ledit_line(&let_e), "a");
	/* LF right after CR is swallowed: no empty line. */
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "\n"), LEDIT_NONE);
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "b\n"), LEDIT_LINE);
	cr_assert_str_eq(ledit_line(&let_e), "b");
	/* A second LF is a line of its own (empty). */
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "\n"), LEDIT_LINE);
	cr_assert_str_eq(ledit_line(&let_e), "");
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "\r"), LEDIT_LINE);
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "\r"), LEDIT_LINE);
	/* CR, then a key, then LF: the LF counts. */
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "c\rd\n"), LEDIT_LINE);
	cr_assert_str_eq(ledit_line(&let_e), "d");
	cr_assert_eq(let_t.newlines, 7);
}

Test(lineedit, overflow_rings_bell)
{
	char big[LEDIT_MAX + 10];

	memset(big, 'x', sizeof(big));
	LET_TYPE(&let_e, &let_t, "");
	let_type(&let_e, &let_t, big, sizeof(big));
	cr_assert_eq(let_e.len, LEDIT_MAX);
	cr_assert_eq(let_t.bells, 10);
	/* Inserting in the middle of a full line is refused too. */
	LET_TYPE(&let_e, &let_t, "\x01y");
	cr_assert_eq(let_e.buf[0], 'x');
	cr_assert_eq(let_t.bells, 11);
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "\r"), LEDIT_LINE);
	cr_assert_eq(strlen(ledit_line(&let_e)), LEDIT_MAX);
}

Test(lineedit, history_navigation)
{
	LET_TYPE(&let_e, &let_t, "one\rtwo\rtwo\r\r   \rthree\r");
	LET_TYPE(&let_e, &let_t, "draft");
	LET_TYPE(&let_e, &let_t, "\x1b[A");
	cr_assert_str_eq(let_e.buf, "three");
	LET_TYPE(&let_e, &let_t, "\x1bOA");
	cr_assert_str_eq(let_e.buf, "two");	/* duplicate stored once */
	LET_TYPE(&let_e, &let_t, "\x1b[A");
	cr_assert_str_eq(let_e.buf, "one");
	cr_assert_eq(let_t.bells, 0);
	LET_TYPE(&let_e, &let_t, "\x1b[A");	/* oldest: bell, unchanged */
	cr_assert_str_eq(let_e.buf, "one");
	cr_assert_eq(let_t.bells, 1);
	LET_TYPE(&let_e, &let_t, "\x1b[B\x1b[B");
	cr_assert_str_eq(let_e.buf, "three");
	LET_TYPE(&let_e, &let_t, "\x1bOB");
	cr_assert_str_eq(let_e.buf, "draft");	/* the line being typed is back */
	cr_assert_eq(let_e.cur, 5);
	LET_TYPE(&let_e, &let_t, "\x1b[B");
	cr_assert_eq(let_t.bells, 2);
	/* Recall, edit, submit: the edited line becomes the newest entry. */
	LET_TYPE(&let_e, &let_t, "\x15\x1b[A\x1b[A\x7f!\r");
	cr_assert_str_eq(ledit_line(&let_e), "tw!");
	LET_TYPE(&let_e, &let_t, "\x1b[A");
	cr_assert_str_eq(let_e.buf, "tw!");
	LET_TYPE(&let_e, &let_t, "\x1b[A");
	cr_assert_str_eq(let_e.buf, "three");
}

Test(lineedit, history_ring_keeps_newest)
{
	char line[16];

	for (int i = 0; i < LEDIT_HIST + 10; i++) {
		int n = snprintf(line, sizeof(line), "cmd%d\r", i);
		let_type(&let_e, &let_t, line, (size_t)n);
	}
	for (int i = LEDIT_HIST + 9; i >= 10; i--) {
		LET_TYPE(&let_e, &let_t, "\x1b[A");
		snprintf(line, sizeof(line), "cmd%d", i);
		cr_assert_str_eq(let_e.buf, line);
	}
	cr_assert_eq(let_t.bells, 0);
	LET_TYPE(&let_e, &let_t, "\x1b[A");
	cr_assert_eq(let_t.bells, 1);
	cr_assert_str_eq(let_e.buf, "cmd10");
}

Test(lineedit, unknown_sequences_are_consumed)
{
	/* Function keys, bracketed paste markers, mouse, Alt-x, F1 via SS3. */
	LET_TYPE(&let_e, &let_t, "a\x1b[1;5Pb\x1b[200~c\x1b[201~\x1b[<0;10;5Md\x1bxe\x1bOPf"
		 "\x1b[15~g\x1b[2Ah\x1b[ qi");
	cr_assert_str_eq(let_e.buf, "abcdefghi");
	/* Very long parameter strings are consumed too. */
	LET_TYPE(&let_e, &let_t, "\x1b[1;2;3;4;5;6;7;8;9;10;11;12Dj");
	cr_assert_str_eq(let_e.buf, "abcdefghij");
	cr_assert_eq(let_e.cur, 10);
	/* A control byte aborts a sequence and acts. */
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "\x1b[12\r"), LEDIT_LINE);
	cr_assert_str_eq(ledit_line(&let_e), "abcdefghij");
	/* ESC ESC [ A: the second ESC restarts the sequence. */
	LET_TYPE(&let_e, &let_t, "\x1b\x1b[A");
	cr_assert_str_eq(let_e.buf, "abcdefghij");
}

Test(lineedit, ignored_bytes)
{
	LET_TYPE(&let_e, &let_t, "a\tb\x00\x02\x7f\xff\xc3\xa9" "c\x1f");
	cr_assert_str_eq(let_e.buf, "ac");
}

static uint64_t let_rng_state;

static uint32_t let_rand(void)
{
	let_rng_state = let_rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(let_rng_state >> 33);
}

/* Random keystrokes: the screen model must always match the editor. */
Test(lineedit, fuzz)
{
	static const char *const keys[] = {
		"\x1b[A", "\x1b[B", "\x1b[C", "\x1b[D", "\x1b[H", "\x1b[F", "\x1b[3~",
		"\x1bOA", "\x1bOD", "\x7f", "\b", "\x01", "\x05", "\x15", "\r", "\n",
		"\x03", "\x1b", "\x1b[", "\x1b[1;", "~", "[", "\x0b", "\x17", "\x04",
	};
	int lines = 0;

	let_rng_state = 1234;
	for (int iter = 0; iter < 150000; iter++) {
		uint32_t r = let_rand();
		const char *s;
		char one[2] = { 0, 0 };
		int res;

		if (r % 10 < 5) {
			one[0] = (char)(0x20 + let_rand() % 95);
			s = one;
		} else if (r % 10 < 8) {
			s = keys[let_rand() % (sizeof(keys) / sizeof(keys[0]))];
		} else {
			one[0] = (char)(let_rand() & 0xff);
			if (one[0] == 0)
				one[0] = 'z';
			s = one;
		}
		res = let_type(&let_e, &let_t, s, strlen(s));
		if (res == LEDIT_LINE) {
			const char *l = ledit_line(&let_e);
			lines++;
			cr_assert(strlen(l) <= LEDIT_MAX);
			for (const char *p = l; *p; p++)
				cr_assert(*p >= 0x20 && *p <= 0x7e);
		}
	}
	cr_assert_gt(lines, 1000);
	for (int i = 0; i < let_e.hist_count; i++)
		cr_assert(strlen(let_e.hist[i]) > 0 && strlen(let_e.hist[i]) <= LEDIT_MAX);
}

/* ---- asynchronous output: the console's promise (lineedit.h) ---- */

#define LET_PROMPT "tern> "

/* Hide, write one log line as the console does, show; returns the bytes. */
static const char *let_async(struct ledit *e, struct let_term *t, const char *line)
{
	static char all[4096];
	size_t n = 0;

	t->raw_len = 0;
	ledit_hide(e, let_echo, t);
	cr_assert_eq(t->col, 0, "hide left the cursor at col %d", t->col);
	for (int i = 0; i < LET_COLS; i++)
		cr_assert_eq(t->row[i], ' ', "hide left '%c' at col %d", t->row[i], i);
	let_echo(t, line, strlen(line));
	let_echo(t, "\r\n", 2);
	ledit_show(e, LET_PROMPT, let_echo, t);
	memcpy(all, t->raw, t->raw_len);
	n = t->raw_len;
	all[n] = '\0';
	cr_assert(memcmp(t->row, LET_PROMPT, strlen(LET_PROMPT)) == 0,
		  "prompt not redrawn: '%.20s'", t->row);
	let_check_screen(e, t);
	return all;
}

static void let_prompt_setup(void)
{
	let_setup();
	let_t.origin = (int)strlen(LET_PROMPT);
	let_echo(&let_t, LET_PROMPT, strlen(LET_PROMPT));
}

Test(lineedit, async_output_erases_then_redraws_once, .init = let_prompt_setup)
{
	const char *raw;

	LET_TYPE(&let_e, &let_t, "vm inf");
	raw = let_async(&let_e, &let_t, "[    1.000000] I vm h1: stopped");
	/* The exact bytes a script can rely on: erase, line, prompt, input. */
	cr_assert_str_eq(raw, "\r\x1b[K[    1.000000] I vm h1: stopped\r\ntern> vm inf");
	LET_TYPE(&let_e, &let_t, "o h1");
	let_t.origin = 0;	/* Enter starts a new row, no prompt yet */
	cr_assert_eq(LET_TYPE(&let_e, &let_t, "\r"), LEDIT_LINE);
	cr_assert_str_eq(ledit_line(&let_e), "vm info h1");
}

Test(lineedit, async_output_at_an_empty_prompt, .init = let_prompt_setup)
{
	const char *raw = let_async(&let_e, &let_t, "[    2.000000] W x");

	cr_assert_str_eq(raw, "\r\x1b[K[    2.000000] W x\r\ntern> ");
	cr_assert_eq(let_e.len, 0);
}

Test(lineedit, async_output_keeps_the_cursor_mid_line, .init = let_prompt_setup)
{
	const char *raw;

	LET_TYPE(&let_e, &let_t, "vm info h1\x1b[D\x1b[D\x1b[D");
	cr_assert_eq(let_e.cur, 7);
	raw = let_async(&let_e, &let_t, "[    3.000000] I y");
	cr_assert_str_eq(raw, "\r\x1b[K[    3.000000] I y\r\ntern> vm info h1\x1b[3D");
	/* Typing goes on at the same place on the screen. */
	LET_TYPE(&let_e, &let_t, "X");
	cr_assert_str_eq(let_e.buf, "vm infoX h1");
	cr_assert_eq(let_t.col - let_t.origin, 8);
}

Test(lineedit, async_output_inside_an_escape_sequence, .init = let_prompt_setup)
{
	LET_TYPE(&let_e, &let_t, "abc\x1b[");
	/* The output arrives between ESC [ and the final byte of a key. */
	let_async(&let_e, &let_t, "[    4.000000] I z");
	LET_TYPE(&let_e, &let_t, "D");
	cr_assert_eq(let_e.cur, 2, "the arrow key was lost or typed");
	cr_assert_str_eq(let_e.buf, "abc");
}

Test(lineedit, async_output_while_browsing_history, .init = let_prompt_setup)
{
	LET_TYPE(&let_e, &let_t, "status");
	let_t.origin = 0;
	LET_TYPE(&let_e, &let_t, "\r");
	let_t.origin = (int)strlen(LET_PROMPT);
	let_echo(&let_t, LET_PROMPT, strlen(LET_PROMPT));
	LET_TYPE(&let_e, &let_t, "ver\x1b[A");
	cr_assert_str_eq(let_e.buf, "status");
	let_async(&let_e, &let_t, "[    5.000000] I w");
	LET_TYPE(&let_e, &let_t, "\x1b[B");
	cr_assert_str_eq(let_e.buf, "ver", "the saved line was lost");
}

Test(lineedit, async_output_many_batches_leave_one_echo_line, .init = let_prompt_setup)
{
	const char *cmd = "vm create web mem=64M";

	/* One batch after every key: the editor state never changes. */
	for (size_t i = 0; cmd[i]; i++) {
		let_type(&let_e, &let_t, cmd + i, 1);
		let_async(&let_e, &let_t, "[    6.000000] I v");
	}
	cr_assert_str_eq(let_e.buf, cmd);
	cr_assert(memcmp(let_t.row, "tern> vm create web mem=64M ", 28) == 0);
}
