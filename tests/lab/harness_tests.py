#!/usr/bin/env python3
"""Harness tests: ternlab's one command exchange against a scripted Tern
console, no emulator.  The console promises (kernel/mgmt/console.c) that a
batch of host log lines arrives as CR ESC [ K, the lines, then the prompt
and the partial input drawn again.  Such a batch can arrive at any byte
boundary relative to the harness: half of it before a command is typed,
the rest after; or in the middle of the echo.  Every split is tried, and
every exchange must return the command's output, whole, in a few ms.

The race the Bochs suite lost three times in a row ('tern> ern> vm info
h1': the previous prompt was being redrawn when the next command was
typed) is the case "split inside the redraw before the command".

    python3 tests/lab/harness_tests.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402

PROMPT = ternlab.TERN_PROMPT
LOG = "[   12.345678] I vm h1: stopped: guest wrote exit code 0x10 to port 0xf4"
BATCH = "\r\x1b[K" + LOG + "\r\n"
OUTPUT = {"vm info h1": "name: h1\r\nstate: stopped\r\n", "version": "Tern 0.1.0\r\n"}


class ScriptedConsole(ternlab._ConsoleHost):
    """A console whose serial bytes the test scripts: typed characters are
    echoed, Enter prints the command's output and a prompt, and pending
    bytes (the rest of a log batch) go out before the next echo, or after
    the echo's k-th character."""

    kind = "scripted"

    def __init__(self):
        super().__init__("/", "scripted", "/tmp", "harness")
        self._sock = True
        self.line = ""
        self.before_echo = ""       # sent when typing starts
        self.mid_echo = None        # (k, text): sent after k typed chars

    def feed(self, text):
        self._append(text)

    def send(self, text):
        data = text.decode() if isinstance(text, bytes) else text
        if self.before_echo:
            self.feed(self.before_echo)
            self.before_echo = ""
        for ch in data:
            if ch == "\r":
                cmd, self.line = self.line, ""
                self.feed("\r\n" + OUTPUT.get(cmd, f"error: unknown '{cmd}'\r\n")
                          + PROMPT)
                continue
            self.line += ch
            self.feed(ch)
            if self.mid_echo and self.mid_echo[0] == len(self.line):
                self.feed(self.mid_echo[1] + PROMPT + self.line)
                self.mid_echo = None


def fresh():
    con = ScriptedConsole()
    con.feed("[    0.100000] I console ready\r\n" + PROMPT)
    return con


def check_exchange(con, cmd, what):
    t0 = time.monotonic()
    raw, clean = con.exchange(cmd, timeout=2)
    took = time.monotonic() - t0
    want = OUTPUT[cmd].replace("\r", "")
    ternlab.check(clean == want, f"{what}: output {clean!r}, want {want!r}")
    ternlab.check(raw.startswith(PROMPT + cmd + "\n"),
                  f"{what}: raw does not start with the echo: {raw!r}")
    ternlab.check(took < 0.5, f"{what}: took {took:.2f} s")
    return raw


def t_batch_split_around_the_next_command():
    """A log batch after the prompt, split at every byte: the first part
    arrives before the command is typed, the rest just after."""
    redraw = BATCH + PROMPT
    for k in range(len(redraw) + 1):
        con = fresh()
        check_exchange(con, "version", f"k={k} first")
        con.feed(redraw[:k])
        con.before_echo = redraw[k:]
        check_exchange(con, "vm info h1", f"split {k} of {len(redraw)}")
        text = con.output()
        ternlab.check(text.count(LOG + "\n") == 1,
                      f"split {k}: the log line is not one whole line:\n{text}")


def t_batch_in_the_middle_of_the_echo():
    """A batch after each typed character: the echo is whole once the
    erased line is forgotten."""
    cmd = "vm info h1"
    for k in range(1, len(cmd) + 1):
        con = fresh()
        con.mid_echo = (k, BATCH)
        raw = check_exchange(con, cmd, f"after {k} typed characters")
        ternlab.check(LOG not in raw, f"k={k}: the log line is inside the output")
        ternlab.check(LOG + "\n" + PROMPT + cmd + "\n" in con.output(),
                      f"k={k}: no log line above the redrawn echo:\n{con.output()}")


def t_promise_check_accepts_and_refuses():
    """check_console_promise: the console's own form passes; a log line
    written into a typed line, or an erase without its redraw, fails."""
    good = PROMPT + "vm i" + BATCH + PROMPT + "vm info h1\r\n"
    batches, typing = ternlab.check_console_promise(good)
    ternlab.check((batches, typing) == (1, 1), f"good stream: {batches}, {typing}")
    for bad in (PROMPT + "vm i" + LOG + "\r\nnfo h1\r\n",
                PROMPT + "\r\x1b[K" + "vm info h1\r\n" + PROMPT):
        try:
            ternlab.check_console_promise(bad)
        except ternlab.TestFailure:
            continue
        raise ternlab.TestFailure(f"accepted a broken stream: {bad!r}")


TESTS = [
    ("batch_split_around_the_next_command", t_batch_split_around_the_next_command),
    ("batch_in_the_middle_of_the_echo", t_batch_in_the_middle_of_the_echo),
    ("promise_check_accepts_and_refuses", t_promise_check_accepts_and_refuses),
]


if __name__ == "__main__":
    sys.exit(ternlab.run_suite(TESTS, "/tmp", lambda: None))
