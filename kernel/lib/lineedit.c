/*
 * Serial console line editor: a byte-at-a-time state machine that edits
 * one line and redraws it with a handful of VT100 sequences (ECMA-48):
 * BS to step left, CUB/CUF (ESC [ n D / C) to move, EL (ESC [ K) to clear
 * to the end of the line.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel/lib/lineedit.h"

_Static_assert(LEDIT_HIST >= 1 && LEDIT_HIST <= 255,
	       "hist_head and hist_count are uint8_t");
_Static_assert(LEDIT_MAX <= 0xffff, "len and cur are uint16_t");

enum { ESC_NONE, ESC_ESC, ESC_CSI, ESC_SS3 };

/* Keys after decoding, whatever byte sequence produced them. */
enum ledit_key {
	KEY_UP, KEY_DOWN, KEY_RIGHT, KEY_LEFT, KEY_HOME, KEY_END, KEY_DELETE,
};

struct ledit_out {
	ledit_echo_fn fn;
	void *ctx;
};

static void out(const struct ledit_out *o, const char *s, size_t n)
{
	if (o->fn && n)
		o->fn(o->ctx, s, n);
}

/* Move the terminal cursor n columns; dir is 'D' (left) or 'C' (right). */
static void out_move(const struct ledit_out *o, char dir, unsigned n)
{
	char seq[12];
	char digits[6];
	size_t len = 0, nd = 0;

	if (n == 0)
		return;
	if (n == 1 && dir == 'D') {
		out(o, "\b", 1);
		return;
	}
	seq[len++] = '\x1b';
	seq[len++] = '[';
	if (n > 1) {
		while (n) {
			digits[nd++] = (char)('0' + n % 10);
			n /= 10;
		}
		while (nd)
			seq[len++] = digits[--nd];
	}
	seq[len++] = dir;
	out(o, seq, len);
}

static void ledit_reset_line(struct ledit *e)
{
	e->len = 0;
	e->cur = 0;
	e->buf[0] = '\0';
	e->browse = -1;
}

void ledit_init(struct ledit *e)
{
	memset(e, 0, sizeof(*e));
	ledit_reset_line(e);
}

const char *ledit_line(const struct ledit *e)
{
	return e->done;
}

/* ---- editing ---- */

static void ledit_insert(struct ledit *e, char c, const struct ledit_out *o)
{
	if (e->len >= LEDIT_MAX) {
		out(o, "\a", 1);
		return;
	}
	memmove(e->buf + e->cur + 1, e->buf + e->cur, (size_t)(e->len - e->cur));
	e->buf[e->cur] = c;
	e->len++;
	e->buf[e->len] = '\0';
	/* Draw the new character and the tail it pushed right, step back. */
	out(o, e->buf + e->cur, (size_t)(e->len - e->cur));
	e->cur++;
	out_move(o, 'D', (unsigned)(e->len - e->cur));
}

/* Remove the character at pos and redraw from the cursor (already at pos). */
static void ledit_remove_at(struct ledit *e, uint16_t pos, const struct ledit_out *o)
{
	unsigned tail;

	memmove(e->buf + pos, e->buf + pos + 1, (size_t)(e->len - pos - 1));
	e->len--;
	e->buf[e->len] = '\0';
	tail = (unsigned)(e->len - pos);
	out(o, e->buf + pos, tail);
	out(o, " ", 1);
	out_move(o, 'D', tail + 1);
}

static void ledit_backspace(struct ledit *e, const struct ledit_out *o)
{
	if (e->cur == 0)
		return;
	e->cur--;
	out(o, "\b", 1);
	ledit_remove_at(e, e->cur, o);
}

static void ledit_delete(struct ledit *e, const struct ledit_out *o)
{
	if (e->cur < e->len)
		ledit_remove_at(e, e->cur, o);
}

/*
 * Delete from column from to the cursor and redraw the tail there: ^U
 * (from 0) and ^W (from the word's start), as readline.
 */
static void ledit_cut(struct ledit *e, uint16_t from, const struct ledit_out *o)
{
	if (from >= e->cur)
		return;
	out_move(o, 'D', (unsigned)(e->cur - from));
	memmove(e->buf + from, e->buf + e->cur, (size_t)(e->len - e->cur) + 1);
	e->len = (uint16_t)(e->len - (e->cur - from));
	e->cur = from;
	out(o, e->buf + from, (size_t)(e->len - from));
	out(o, "\x1b[K", 3);
	out_move(o, 'D', (unsigned)(e->len - from));
}

/* ^W: where the word before the cursor starts, blanks after it included. */
static uint16_t ledit_word_start(const struct ledit *e)
{
	uint16_t s = e->cur;

	while (s > 0 && e->buf[s - 1] == ' ')
		s--;
	while (s > 0 && e->buf[s - 1] != ' ')
		s--;
	return s;
}

/* ^K: delete from the cursor to the end of the line. */
static void ledit_cut_tail(struct ledit *e, const struct ledit_out *o)
{
	if (e->cur == e->len)
		return;
	e->len = e->cur;
	e->buf[e->len] = '\0';
	out(o, "\x1b[K", 3);
}

/* Show s instead of the current line, cursor at its end. */
static void ledit_replace(struct ledit *e, const char *s, const struct ledit_out *o)
{
	size_t n = strlen(s);

	if (n > LEDIT_MAX)
		n = LEDIT_MAX;
	out_move(o, 'D', e->cur);
	memmove(e->buf, s, n);
	e->buf[n] = '\0';
	e->len = (uint16_t)n;
	e->cur = (uint16_t)n;
	out(o, e->buf, n);
	out(o, "\x1b[K", 3);
}

static void ledit_cursor(struct ledit *e, int key, const struct ledit_out *o)
{
	switch (key) {
	case KEY_LEFT:
		if (e->cur > 0) {
			e->cur--;
			out_move(o, 'D', 1);
		}
		break;
	case KEY_RIGHT:
		if (e->cur < e->len) {
			e->cur++;
			out_move(o, 'C', 1);
		}
		break;
	case KEY_HOME:
		out_move(o, 'D', e->cur);
		e->cur = 0;
		break;
	case KEY_END:
		out_move(o, 'C', (unsigned)(e->len - e->cur));
		e->cur = e->len;
		break;
	}
}

/* ---- history ---- */

static const char *ledit_hist(const struct ledit *e, int back)
{
	return e->hist[(e->hist_head + LEDIT_HIST - back) % LEDIT_HIST];
}

static void ledit_hist_add(struct ledit *e, const char *line)
{
	size_t i = strspn(line, " ");

	if (line[i] == '\0')
		return;
	if (e->hist_count && strcmp(ledit_hist(e, 0), line) == 0)
		return;
	if (e->hist_count)
		e->hist_head = (uint8_t)((e->hist_head + 1) % LEDIT_HIST);
	memcpy(e->hist[e->hist_head], line, strlen(line) + 1);
	if (e->hist_count < LEDIT_HIST)
		e->hist_count++;
}

static void ledit_browse(struct ledit *e, int key, const struct ledit_out *o)
{
	if (key == KEY_UP) {
		if (e->browse + 1 >= e->hist_count) {
			out(o, "\a", 1);
			return;
		}
		if (e->browse < 0)
			memcpy(e->saved, e->buf, (size_t)e->len + 1);
		e->browse++;
		ledit_replace(e, ledit_hist(e, e->browse), o);
		return;
	}
	if (e->browse < 0) {
		out(o, "\a", 1);
		return;
	}
	e->browse--;
	ledit_replace(e, e->browse < 0 ? e->saved : ledit_hist(e, e->browse), o);
}

static void ledit_key(struct ledit *e, int key, const struct ledit_out *o)
{
	if (key == KEY_UP || key == KEY_DOWN)
		ledit_browse(e, key, o);
	else if (key == KEY_DELETE)
		ledit_delete(e, o);
	else
		ledit_cursor(e, key, o);
}

/* ---- escape sequences ---- */

/* The final byte of ESC [ A..D/H/F or ESC O A..D/H/F. */
static int ledit_letter_key(uint8_t c)
{
	switch (c) {
	case 'A': return KEY_UP;
	case 'B': return KEY_DOWN;
	case 'C': return KEY_RIGHT;
	case 'D': return KEY_LEFT;
	case 'H': return KEY_HOME;
	case 'F': return KEY_END;
	default: return -1;
	}
}

/* First numeric CSI parameter, or -1 if absent or not plain digits. */
static int ledit_csi_param(const struct ledit *e)
{
	int v = 0;
	uint8_t i;

	for (i = 0; i < e->csi_len && e->csi[i] != ';'; i++) {
		if (e->csi[i] < '0' || e->csi[i] > '9')
			return -1;
		v = v * 10 + (e->csi[i] - '0');
	}
	return i ? v : -1;
}

/* A complete CSI sequence; anything not recognised is dropped. */
static void ledit_csi(struct ledit *e, uint8_t final, const struct ledit_out *o)
{
	int key = -1;

	if (e->csi_long)
		return;
	if (final == '~') {
		switch (ledit_csi_param(e)) {
		case 1: case 7: key = KEY_HOME; break;
		case 4: case 8: key = KEY_END; break;
		case 3: key = KEY_DELETE; break;
		}
	} else if (e->csi_len == 0 || ledit_csi_param(e) == 1) {
		/* Plain, or "1;<modifier>" as sent with Shift/Ctrl/Alt. */
		key = ledit_letter_key(final);
	}
	if (key >= 0)
		ledit_key(e, key, o);
}

/*
 * Advance the escape parser.  Returns true if c was consumed; false if c
 * must be handled as an ordinary byte (it aborted a sequence).
 */
static bool ledit_escape(struct ledit *e, uint8_t c, const struct ledit_out *o)
{
	uint8_t state = e->esc;

	e->esc = ESC_NONE;
	switch (state) {
	case ESC_ESC:
		if (c == '[') {
			e->esc = ESC_CSI;
			e->csi_len = 0;
			e->csi_long = false;
			return true;
		}
		if (c == 'O') {
			e->esc = ESC_SS3;
			return true;
		}
		/* ESC <printable> (Alt-key) is swallowed; controls act. */
		return c >= 0x20 && c != 0x7f;
	case ESC_CSI:
		/* ECMA-48 5.4: parameter bytes 0x30-0x3f, intermediates
		 * 0x20-0x2f, final 0x40-0x7e. */
		if (c >= 0x20 && c <= 0x3f) {
			e->esc = ESC_CSI;
			if (c >= 0x30 && e->csi_len < LEDIT_CSI_MAX)
				e->csi[e->csi_len++] = (char)c;
			else
				e->csi_long = true;	/* too long or intermediate */
			return true;
		}
		if (c >= 0x40 && c <= 0x7e) {
			ledit_csi(e, c, o);
			return true;
		}
		return false;
	case ESC_SS3:
		if (c >= 0x40 && c <= 0x7e) {
			int key = ledit_letter_key(c);
			if (key >= 0)
				ledit_key(e, key, o);
			return true;
		}
		return false;
	default:
		return false;
	}
}

/* ---- asynchronous output ---- */

void ledit_hide(const struct ledit *e, ledit_echo_fn echo, void *ctx)
{
	const struct ledit_out o = { echo, ctx };

	(void)e;
	/* CR, then EL with no parameter: erase from column 0 to the end
	 * (ECMA-48 8.3.41), whatever the cursor's column was. */
	out(&o, "\r\x1b[K", 4);
}

void ledit_show(const struct ledit *e, const char *prompt, ledit_echo_fn echo,
		void *ctx)
{
	const struct ledit_out o = { echo, ctx };

	out(&o, prompt, strlen(prompt));
	out(&o, e->buf, e->len);
	out_move(&o, 'D', (unsigned)(e->len - e->cur));
}

/* ---- input ---- */

static int ledit_enter(struct ledit *e, const struct ledit_out *o)
{
	memcpy(e->done, e->buf, (size_t)e->len + 1);
	ledit_hist_add(e, e->done);
	ledit_reset_line(e);
	out(o, "\r\n", 2);
	return LEDIT_LINE;
}

/* A control byte (or DEL, or a byte >= 0x80); returns ledit_feed()'s value. */
static int ledit_control(struct ledit *e, uint8_t c, bool after_cr,
			 const struct ledit_out *o)
{
	switch (c) {
	case 0x1b:
		e->esc = ESC_ESC;
		break;
	case 0x7f:
	case '\b':
		ledit_backspace(e, o);
		break;
	case '\r':
		e->after_cr = true;
		return ledit_enter(e, o);
	case '\n':
		if (after_cr)
			break;	/* the LF of a CRLF pair */
		return ledit_enter(e, o);
	case 0x01:	/* ^A */
		ledit_cursor(e, KEY_HOME, o);
		break;
	case 0x05:	/* ^E */
		ledit_cursor(e, KEY_END, o);
		break;
	case 0x15:	/* ^U */
		ledit_cut(e, 0, o);
		break;
	case 0x17:	/* ^W */
		ledit_cut(e, ledit_word_start(e), o);
		break;
	case 0x0b:	/* ^K */
		ledit_cut_tail(e, o);
		break;
	case 0x03:	/* ^C */
		ledit_reset_line(e);
		out(o, "^C\r\n", 4);
		return LEDIT_INTR;
	case 0x04:	/* ^D: the caller's to act on, and only at an empty line */
		return e->len == 0 ? LEDIT_EOF : LEDIT_NONE;
	default:
		break;	/* other controls and bytes >= 0x80 */
	}
	return LEDIT_NONE;
}

int ledit_feed(struct ledit *e, uint8_t c, ledit_echo_fn echo, void *ctx)
{
	const struct ledit_out o = { echo, ctx };
	bool after_cr = e->after_cr;

	e->after_cr = false;
	if (e->esc != ESC_NONE && ledit_escape(e, c, &o))
		return LEDIT_NONE;
	if (c >= 0x20 && c <= 0x7e) {
		ledit_insert(e, (char)c, &o);
		return LEDIT_NONE;
	}
	return ledit_control(e, c, after_cr, &o);
}
