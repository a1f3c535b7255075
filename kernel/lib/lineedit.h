/*
 * Serial console line editor.  Pure: bytes in, VT100 redraw bytes out.
 *
 * The caller feeds every received byte to ledit_feed() and writes the bytes
 * passed to its echo callback back to the terminal.  Editing keys:
 *
 *	printable ASCII		insert at the cursor
 *	Backspace (7f, 08)	delete before the cursor
 *	ESC [ 3 ~		delete at the cursor
 *	ESC [ D / ESC [ C	cursor left / right (also ESC O D / C)
 *	ESC [ H, ESC [ 1 ~, ^A	home;  ESC [ F, ESC [ 4 ~, ^E  end
 *	ESC [ A / ESC [ B	history previous / next (also ESC O A / B)
 *	^U			delete from the start of the line to the cursor
 *	^K			delete from the cursor to the end of the line
 *	^W			delete the word before the cursor (and the
 *				blanks between it and the cursor)
 *	^C			abandon the line: LEDIT_INTR
 *	^D			on an empty line: LEDIT_EOF, nothing echoed (a
 *				network client ends its session; the serial
 *				console has no end and ignores it); else ignored
 *	CR or LF		end the line: LEDIT_LINE (LF right after CR ignored)
 *
 * Unknown escape sequences are consumed whole and ignored; other control
 * bytes and bytes >= 0x80 are ignored.  A full line rings the bell.  The
 * redraw assumes the terminal's cursor sits where this editor last left it
 * and that the line does not wrap (LEDIT_MAX plus the prompt should fit the
 * terminal width, or wrapped lines redraw imperfectly).
 *
 * Output that is not the editor's (asynchronous log lines) is never written
 * into the line being edited.  The caller brackets it with ledit_hide() and
 * ledit_show(), once per batch of such output, and the terminal then shows:
 *
 *	CR ESC [ K		(the prompt and the partial line are erased)
 *	LINE CR LF ...		(the other output, whole lines from column 0)
 *	PROMPT PARTIAL		(redrawn once, on a fresh line)
 *	ESC [ n D		(only if the cursor was not at the end)
 *
 * A script that reads the console can rely on this: treat CR ESC [ K as
 * "forget the current line so far" and every other line is whole, each log
 * line starts a line, and a command's echo "PROMPT COMMAND" CR LF stands on
 * a line of its own however many batches arrived while it was typed.
 *
 * One struct per terminal; not thread-safe (the caller serialises).
 */
#ifndef TERN_LIB_LINEEDIT_H
#define TERN_LIB_LINEEDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The sizes may be defined before this header is included, the same for
 * every file of one program (ternctl builds with -DLEDIT_MAX=1024, the
 * network console's CMD_LINE_MAX, and -DLEDIT_HIST=200).
 */
#ifndef LEDIT_MAX
#define LEDIT_MAX	256	/* characters per line, NUL excluded */
#endif
#ifndef LEDIT_HIST
#define LEDIT_HIST	32	/* history entries kept */
#endif
#define LEDIT_CSI_MAX	8	/* parameter bytes kept of one CSI sequence */

enum { LEDIT_NONE = 0, LEDIT_LINE = 1, LEDIT_INTR = 2, LEDIT_EOF = 3 };

typedef void (*ledit_echo_fn)(void *ctx, const char *s, size_t n);

struct ledit {
	char buf[LEDIT_MAX + 1];	/* line being edited, NUL-terminated */
	uint16_t len, cur;		/* length and cursor, 0 <= cur <= len */
	uint8_t esc;			/* escape parser state */
	uint8_t csi_len;		/* parameter bytes in csi[] */
	bool csi_long;			/* parameters overflowed csi[] */
	bool after_cr;			/* last byte was CR: swallow one LF */
	char csi[LEDIT_CSI_MAX];	/* CSI parameter bytes */

	char hist[LEDIT_HIST][LEDIT_MAX + 1];	/* ring, hist_head = newest */
	uint8_t hist_head, hist_count;
	int16_t browse;			/* -1: editing; else entries back */
	char saved[LEDIT_MAX + 1];	/* line being typed when browsing began */

	char done[LEDIT_MAX + 1];	/* the line returned by ledit_line() */
};

void ledit_init(struct ledit *e);

/*
 * Feed one input byte.  echo (may be NULL) receives the bytes to send to
 * the terminal.  Returns LEDIT_LINE when a line is complete (read it with
 * ledit_line()), LEDIT_INTR on ^C, LEDIT_EOF on ^D in an empty line, else
 * LEDIT_NONE.
 */
int ledit_feed(struct ledit *e, uint8_t c, ledit_echo_fn echo, void *ctx);

/* The line completed by the last LEDIT_LINE; valid until the next feed. */
const char *ledit_line(const struct ledit *e);

/*
 * Asynchronous output (see above).  ledit_hide() erases the prompt and the
 * partial line, leaving the cursor at column 0 of an empty row; the caller
 * then writes whole lines, each ending in a newline; ledit_show() draws
 * prompt and the partial line again, cursor where it was.  Neither changes
 * the line being edited or a half-received escape sequence.
 */
void ledit_hide(const struct ledit *e, ledit_echo_fn echo, void *ctx);
void ledit_show(const struct ledit *e, const char *prompt, ledit_echo_fn echo,
		void *ctx);

#endif
