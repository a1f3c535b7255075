#!/usr/bin/env python3
"""Network console and lab tests: two Tern hosts in QEMU on one private
LAN inside a network namespace (tests/lab/netlab.py), once per NIC model.

Each model gets the same checks: hosts ping each other and the namespace;
ternctl and `openssl s_client -psk` run commands over TLS with the key;
a wrong key, plain TCP and a silent client are refused and the refusal is
logged; four clients run 1,000 commands each in parallel; oversized lines,
random bytes and idle clients are cut off while another client keeps
being served; the client slots are bounded.  A host without a secret does
not listen at all.

    python3 tests/lab/netcon_tests.py [--only REGEX] [--nic MODEL]
"""

import argparse
import json
import os
import pty
import random
import re
import select
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402
import netlab  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TERNCTL = os.path.join(REPO, "build", "tools", "ternctl")
NICS = ("virtio-net-pci", "e1000e")
PORT = 7023
IDLE_S = 8              # console_idle_timeout of the lab hosts
HANDSHAKE_S = 4         # NETCON_HANDSHAKE_US in net/stack/netcon.c
SLOTS = 8               # NETCON_MAX_CLIENTS
CFG = None
check = ternlab.check
_labs = {}


def lab(nic):
    """The running two-host lab for nic (other labs are stopped first)."""
    if nic in _labs:
        return _labs[nic]
    stop_labs()
    lb = netlab.NetLab(hosts=2, esp_dir=CFG.esp, nic=nic, logdir=CFG.logdir,
                       idle=IDLE_S)
    lb.start()
    try:
        lb.wait_prompts(120)
        lb.secret_path = lb.secret_file()
        lb.wrong_path = os.path.join(lb.tmpdir, "wrong-secret")
        with open(lb.wrong_path, "w") as f:
            f.write("not-the-lab-secret\n")
        for i, h in enumerate(lb.hosts):
            wait_log(h, rf"netcon: listening on TCP port {PORT}", 30)
    except BaseException:
        lb.stop()
        raise
    _labs[nic] = lb
    return lb


def stop_labs():
    for lb in list(_labs.values()):
        lb.stop()
    _labs.clear()


def wait_log(h, pattern, timeout=15, since=0):
    """Wait until the host's serial output (from offset since) matches."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        m = rx.search(h.output(), since)
        if m:
            return m
        if time.monotonic() > deadline:
            raise ternlab.TestFailure(
                f"{h.name}: no {pattern!r} in the log within {timeout} s; "
                f"last output:\n{h.output()[-1500:]}")
        time.sleep(0.2)


def ternctl(lb, i, args, secret=None, stdin=None, timeout=120):
    argv = ["ip", "netns", "exec", lb.ns, TERNCTL, "--host", lb.address(i),
            "--secret-file", secret or lb.secret_path, *args]
    return subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def psk_hex(secret):
    return secret.encode().hex()


def s_client(lb, i, data, secret=None, timeout=30):
    """openssl s_client -psk: send data, return (stdout bytes, rc).  The
    server closes (quit, error) or the timeout ends it."""
    argv = ["ip", "netns", "exec", lb.ns, "openssl", "s_client", "-quiet",
            "-connect", f"{lb.address(i)}:{PORT}", "-tls1_2",
            "-psk_identity", "tern", "-psk", psk_hex(secret or lb.secret)]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    if data:
        p.stdin.write(data)
        p.stdin.flush()
    # stdin stays open: only the server's close (or the timeout) ends it.
    try:
        out = _read_all(p.stdout, timeout)
        rc = p.wait(timeout=5) if out is not None else None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdin.close()
    return (out or b""), rc


def _read_all(f, timeout):
    """Read f to EOF; None when the timeout ends it first."""
    buf = []
    t = threading.Thread(target=lambda: buf.append(f.read()))
    t.daemon = True
    t.start()
    t.join(timeout)
    return buf[0] if buf else None


def ns_python(lb, code, timeout=60):
    """Run a Python snippet inside the namespace (plain sockets)."""
    r = subprocess.run(["ip", "netns", "exec", lb.ns, sys.executable, "-c", code],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    return r.stdout.strip()


class Session:
    """A long-lived ternctl session (stdin not a tty: one command a line,
    one JSON reply a line)."""

    def __init__(self, lb, i):
        argv = ["ip", "netns", "exec", lb.ns, TERNCTL, "--host", lb.address(i),
                "--secret-file", lb.secret_path, "--json"]
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)

    def run(self, line, timeout=30):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = []
        t = threading.Thread(target=lambda: out.append(self.p.stdout.readline()))
        t.start()
        t.join(timeout)
        check(out and out[0], f"session: no reply to {line!r} within {timeout} s")
        return json.loads(out[0])

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(10)
        except Exception:
            self.p.kill()
            self.p.wait()


# ---- the checks, run once per NIC model ----

def t_ping(lb):
    a, b = lb.hosts
    for src, dst in ((a, 1), (b, 0)):
        out = src.command(f"ping {lb.address(dst)} 3", timeout=30)
        check(re.search(r"^3 packets transmitted, 3 received, 0% packet loss", out, re.M),
              f"{src.name}: ping {lb.address(dst)}:\n{out}")
    for i in range(2):
        r = lb.ns_run(["ping", "-c", "3", "-i", "0.2", "-W", "2", lb.address(i)])
        check(r.returncode == 0 and " 0% packet loss" in r.stdout,
              f"namespace: ping {lb.address(i)}:\n{r.stdout}")
    # And Tern pings the namespace's own address.
    out = a.command(f"ping {netlab.BRIDGE_ADDR} 2", timeout=30)
    check("2 received, 0% packet loss" in out, f"ping the bridge:\n{out}")


def t_console(lb):
    for i, h in enumerate(lb.hosts):
        r = ternctl(lb, i, ["status"])
        check(r.returncode == 0, f"ternctl status on {h.name}: rc {r.returncode}\n{r.stderr}")
        check(f"hostname: {h.name}" in r.stdout, f"status from {h.name}:\n{r.stdout}")
    r = ternctl(lb, 1, ["--json", "vm", "list"])
    rep = json.loads(r.stdout)
    check(r.returncode == 0 and rep["ok"] is True and rep["cmd"] == "vm list",
          f"--json vm list: {r.stdout}")
    r = ternctl(lb, 0, ["vm", "info", "nosuch"])
    check(r.returncode == 1 and r.stderr.startswith("error: "),
          f"a failing command: rc {r.returncode}, stderr {r.stderr!r}")
    r = ternctl(lb, 0, ["frob"])
    check(r.returncode == 1 and "unknown command" in r.stderr, f"frob: {r.stderr!r}")
    # A standard client: text mode, then JSON mode, then quit.
    out, rc = s_client(lb, 0, b"status\n--json\nversion\nquit\n")
    text = out.decode(errors="replace")
    check("hostname: tern-a" in text, f"s_client status:\n{text}")
    lines = [l for l in text.splitlines() if l.startswith("{")]
    check(len(lines) == 2 and json.loads(lines[1])["cmd"] == "version",
          f"s_client --json replies:\n{text}")
    check(rc is not None, "s_client: `quit` did not close the connection")


def t_refused(lb):
    a = lb.hosts[0]
    mark = len(a.output())
    r = ternctl(lb, 0, ["status"], secret=lb.wrong_path)
    check(r.returncode == 3 and "hostname" not in r.stdout,
          f"wrong key: rc {r.returncode}, out {r.stdout!r} err {r.stderr!r}")
    wait_log(a, r"W netcon: refused 10\.77\.0\.254:\d+: TLS handshake failed \(wrong key\?\)",
             since=mark)
    out, _ = s_client(lb, 0, b"status\n", secret="another-key")
    check(b"hostname" not in out, f"s_client with a wrong key got {out!r}")
    # Plain TCP: a command in clear gets nothing back but a close.
    got = ns_python(lb, f"""
import socket
s = socket.create_connection(("{lb.address(0)}", {PORT}), timeout=10)
s.sendall(b"status\\n")
data = b""
try:
    while True:
        c = s.recv(4096)
        if not c:
            break
        data += c
except OSError as e:
    print("closed:", type(e).__name__)
print("reply-bytes", len(data), b"hostname" in data)
""")
    check("hostname" not in got.replace("False", "") and "reply-bytes" in got,
          f"plain TCP: {got}")
    wait_log(a, r"W netcon: refused 10\.77\.0\.254:\d+: not a TLS 1\.2 PSK client",
             since=mark)
    # A client that connects and says nothing loses its slot.
    t0 = time.monotonic()
    got = ns_python(lb, f"""
import socket, time
s = socket.create_connection(("{lb.address(0)}", {PORT}), timeout=30)
t = time.monotonic()
try:
    d = s.recv(1)
except OSError:
    d = b""
print("closed-after", round(time.monotonic() - t, 1), len(d))
""", timeout=40)
    m = re.search(r"closed-after ([\d.]+)", got)
    check(m and HANDSHAKE_S - 1 <= float(m.group(1)) <= HANDSHAKE_S + 5,
          f"silent client: {got} (after {time.monotonic() - t0:.1f} s)")
    wait_log(a, rf"refused 10\.77\.0\.254:\d+: no TLS handshake within {HANDSHAKE_S} s",
             since=mark)
    r = ternctl(lb, 0, ["status"])
    check(r.returncode == 0, f"host stopped serving after refusals: {r.stderr}")


def t_parallel(lb):
    cmds = ["version", "status", "vm list", "netcon", "help vm", "log 3", "cpus"]
    n = 1000
    script = "".join(f"{cmds[k % len(cmds)]}\n" for k in range(n))
    results = [None] * 4

    def client(k):
        results[k] = ternctl(lb, k % 2, ["--json"], stdin=script, timeout=600)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    for k, r in enumerate(results):
        check(r is not None and r.returncode == 0,
              f"client {k}: rc {r and r.returncode}: {r and r.stderr[-300:]}")
        replies = [json.loads(l) for l in r.stdout.splitlines()]
        check(len(replies) == n, f"client {k}: {len(replies)} replies, want {n}")
        bad = [x for x in replies if x.get("ok") is not True]
        check(not bad, f"client {k}: {len(bad)} failed replies, first {bad[:1]}")
        for j, x in enumerate(replies):
            want = cmds[j % len(cmds)]
            check(x["cmd"] == want.split(" ")[0] or x["cmd"] == want or
                  want.startswith(x["cmd"]),
                  f"client {k}: reply {j} is for {x['cmd']!r}, want {want!r}")
    print(f"  4 clients x {n} commands in {dt:.1f} s "
          f"({4 * n / dt:.0f} commands/s)", flush=True)
    for i in range(2):
        out = ternctl(lb, i, ["netcon"]).stdout
        m = re.search(r"(\d+) commands served", out)
        check(m and int(m.group(1)) >= 2 * n, f"netcon on host {i}:\n{out}")


def t_hostile(lb):
    a = lb.hosts[0]
    s = Session(lb, 0)
    try:
        rep = s.run("version")
        check(rep["ok"], f"session: {rep}")
        mark = len(a.output())
        out, rc = s_client(lb, 0, b"x" * 3000 + b"\nstatus\n")
        check(out.startswith(b"error: line too long") and b"hostname" not in out
              and rc is not None, f"oversized line: rc {rc}, got {out[:200]!r}")
        wait_log(a, r"W netcon: 10\.77\.0\.254:\d+: line too long: closing", since=mark)
        rng = random.Random(1234)
        junk = bytes(rng.randrange(256) for _ in range(4096)) + b"\x00\x01"
        out, rc = s_client(lb, 0, junk)
        check(out.startswith(b"error: binary data") and rc is not None,
              f"random bytes: rc {rc}, got {out[:200]!r}")
        wait_log(a, r"W netcon: 10\.77\.0\.254:\d+: binary data on the console: closing",
                 since=mark)
        # 20 KB of commands in one go (one 16 KiB TLS record decodes at
        # once): more unanswered input than the server buffers.
        out, rc = s_client(lb, 0, b"version\n" * 2500)
        check(b"error: too much input without waiting for replies" in out
              and rc is not None, f"pipelined flood: rc {rc}, got {out[-200:]!r}")
        # Plain-TCP junk, then the long-lived session still answers.
        ns_python(lb, f"""
import socket, os
s = socket.create_connection(("{lb.address(0)}", {PORT}), timeout=10)
try:
    s.sendall(os.urandom(65536))
    s.recv(10)
except OSError:
    pass
""")
        rep = s.run("status")
        check(rep["ok"] and "hostname: tern-a" in rep["output"],
              f"the other client after the junk: {rep}")
        out = a.command("status", timeout=20)
        check("hostname: tern-a" in out, f"serial console after the junk:\n{out}")
    finally:
        s.close()


def t_idle(lb):
    t0 = time.monotonic()
    out, rc = s_client(lb, 1, None, timeout=IDLE_S + 20)
    dt = time.monotonic() - t0
    check(b"error: idle timeout" in out and rc is not None,
          f"idle client: rc {rc}, got {out!r} after {dt:.1f} s")
    check(IDLE_S - 1 <= dt <= IDLE_S + 8, f"idle timeout after {dt:.1f} s, want {IDLE_S}")
    wait_log(lb.hosts[1], r"netcon: 10\.77\.0\.254:\d+: idle timeout: closing")


def t_slots(lb):
    a = lb.hosts[0]
    sessions = []
    try:
        for k in range(SLOTS):
            s = Session(lb, 0)
            sessions.append(s)
            try:
                s.run("version")
            except Exception:
                raise ternlab.TestFailure(
                    f"session {k + 1} did not open; `netcon`:\n"
                    f"{a.command('netcon', timeout=20)}")
        mark = len(a.output())
        # A ninth client proves its key, then hears that every session is
        # taken (the slot is claimed only after TLS, issue #17).
        r = ternctl(lb, 0, ["status"], timeout=30)
        check(r.returncode != 0 and "hostname:" not in r.stdout,
              f"a ninth client was served (rc {r.returncode}): {r.stdout}")
        check("all 8 sessions are busy" in r.stdout + r.stderr,
              f"a ninth client: rc {r.returncode}: {r.stdout}{r.stderr}")
        wait_log(a, r"netcon: 10\.77\.0\.254:\d+: all 8 sessions are busy: closing",
                 since=mark)
        rep = sessions[0].run("netcon")
        check(rep["output"].count(" open ") == SLOTS, f"netcon:\n{rep['output']}")
    finally:
        for s in sessions:
            s.close()
    deadline = time.monotonic() + 10
    while True:
        r = ternctl(lb, 0, ["status"])
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    check(r.returncode == 0, f"slots not freed after the sessions ended: {r.stderr}")


def t_progress(lb):
    """A long command in JSON mode sends progress lines ahead of its one
    reply; ternctl keeps them off stdout."""
    r = ternctl(lb, 1, ["vm", "create", "pd", "mem=16M", "kernel=guests/dirty.elf"])
    check(r.returncode == 0, f"vm create: {r.stderr}")
    try:
        r = ternctl(lb, 1, ["vm", "start", "pd"])
        check(r.returncode == 0, f"vm start: {r.stderr}")
        out, rc = s_client(lb, 1, b"--json vm dirtycheck pd rounds=3\nquit\n", timeout=60)
        objs = [json.loads(l) for l in out.decode().splitlines() if l.startswith("{")]
        prog = [o["progress"] for o in objs if "progress" in o]
        check([(p["phase"], p["done"], p["total"]) for p in prog] ==
              [("round", 1, 3), ("round", 2, 3), ("round", 3, 3)],
              f"progress lines: {prog}")
        check(len(objs) == 4 and "progress" not in objs[-1] and objs[-1]["ok"]
              and "dirtycheck PASS" in objs[-1]["output"], f"reply: {objs[-1:]}")
        r = ternctl(lb, 1, ["vm", "dirtycheck", "pd", "rounds=2"])
        check(r.returncode == 0 and "progress" not in r.stdout and
              "dirtycheck PASS" in r.stdout, f"ternctl: {r.stdout!r} {r.stderr!r}")
    finally:
        ternctl(lb, 1, ["vm", "destroy", "pd"])


def t_serial_while_remote(lb):
    """The boot CPU logs while the serial console is in use: ternctl
    creates and destroys a VM over and over (each logs on the boot CPU,
    from the network console's service), while commands are typed at the
    serial console.  Each serial command must come back whole, and the raw
    serial text must keep the console's promise (kernel/mgmt/console.c): no log
    line inside a typed line."""
    h = lb.hosts[0]
    raw_start = len(h.raw_output())
    stop = threading.Event()
    remote = {"runs": 0, "errors": []}

    def churn():
        while not stop.is_set():
            for args in (["vm", "create", "sw", "mem=16M",
                          "kernel=guests/hello.elf"], ["vm", "destroy", "sw"]):
                r = ternctl(lb, 0, args, timeout=60)
                if r.returncode != 0:
                    remote["errors"].append(f"{args}: {r.stderr.strip()}")
                remote["runs"] += 1

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        for i in range(24):
            cmd = ("version", "status", "vm list")[i % 3]
            out = h.exchange(cmd, 30)[1]
            want = {"version": r"(?m)^Tern \S+", "status": r"(?m)^hostname: tern-a$",
                    "vm list": r"(?m)^NAME\s+STATE"}[cmd]
            check(re.search(want, out), f"serial {cmd!r} answered:\n{out}")
    finally:
        stop.set()
        t.join(90)
        ternctl(lb, 0, ["vm", "destroy", "sw"], timeout=60)
    check(not remote["errors"], f"ternctl failed: {remote['errors'][:3]}")
    check(remote["runs"] >= 4, f"only {remote['runs']} remote commands ran")
    text = h.output()
    check(re.search(r"(?m)^\[\s*\d+\.\d+\] I vm sw: created", text),
          "no whole 'vm sw: created' log line on the serial console")
    batches, typing = ternlab.check_console_promise(h.raw_output()[raw_start:])
    check(batches >= 1, "no log line came while the prompt was shown")
    print(f"  {remote['runs']} remote commands, {batches} redraws, {typing} in "
          f"the middle of a typed command", flush=True)


class PtyTernctl:
    """ternctl's interactive mode on a pseudo-terminal, as a person runs it:
    stdin and stdout are a tty, so it edits lines with kernel/lib/lineedit.c
    in raw mode.  Keys go in as the bytes a terminal sends."""

    def __init__(self, lb, i):
        argv = ["ip", "netns", "exec", lb.ns, TERNCTL, "--host", lb.address(i),
                "--secret-file", lb.secret_path]
        self.master, slave = pty.openpty()
        self.p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                  start_new_session=True)
        os.close(slave)
        self.buf = b""
        self.pos = 0
        self.prompt = re.escape(f"tern@{lb.address(i)}> ".encode())

    def _read(self, timeout):
        """False on timeout, None at EOF (ternctl exited)."""
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return None
        self.buf += data
        return bool(data) or None

    def expect(self, pattern, timeout=30):
        """The output from the last match up to the next match of pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf, self.pos)
            if m:
                got = self.buf[self.pos:m.end()]
                self.pos = m.end()
                return got
            left = deadline - time.monotonic()
            if left <= 0 or self._read(left) is None:
                raise ternlab.TestFailure(
                    f"ternctl on a pty: no {pattern!r} within {timeout} s; output:\n"
                    f"{self.buf[self.pos:][-1500:]!r}")

    def line(self, keys, timeout=60):
        """Type keys (ending in Enter) at a prompt; the output up to the
        next prompt.  Only at a prompt: ternctl drops type-ahead."""
        os.write(self.master, keys)
        return self.expect(self.prompt, timeout)

    def send(self, keys):
        os.write(self.master, keys)

    def wait(self, timeout=15):
        deadline = time.monotonic() + timeout
        while self.p.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        return self.p.poll()

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        os.close(self.master)


def t_interactive(lb):
    """ternctl without a command, on a pseudo-terminal: the editing keys,
    history (CSI and SS3 arrows), Ctrl-C dropping a line, a line longer
    than the serial console's, blank lines, and Ctrl-D ending the session
    only at an empty line, with the last command's exit status."""
    left, right, up, down = b"\x1b[D", b"\x1b[C", b"\x1b[A", b"\x1b[B"
    name = lb.hosts[0].name
    t = PtyTernctl(lb, 0)
    try:
        t.expect(t.prompt, 30)
        out = t.line(b"stXatus" + left * 4 + b"\x7f\r")
        check(f"hostname: {name}".encode() in out, f"Backspace mid-line: {out!r}")
        # ^A, right, insert, ^E, ^W, left, ^K: "help zedit" reaches the host.
        out = t.line(b"hlp wordone\x01" + right + b"e\x05\x17zq1" + left * 2 +
                     b"\x0bedit\r")
        check(b"no command matches 'zedit'" in out, f"^A ^E ^W ^K: {out!r}")
        out = t.line(up + up + down + up + b"\r")
        check(f"hostname: {name}".encode() in out, f"history (CSI): {out!r}")
        out = t.line(b"garbage words\x15version\r")
        check(b"Tern " in out and b"garbage" not in out.split(b"\n", 1)[-1],
              f"^U: {out!r}")
        t.send(b"vm destroy nosuch")
        out = t.line(b"\x03")
        check(re.search(rb"\^C\r+\n", out), f"^C: {out!r}")
        after_intr = t.pos
        out = t.line(b"\x1bOA" * 3 + b"\r")
        check(b"no command matches 'zedit'" in out, f"history (SS3): {out!r}")
        out = t.line(b"   \r")
        check(re.fullmatch(rb"   \r+\n" + t.prompt, out), f"a blank line: {out!r}")
        word = b"y" * 400            # over the serial console's 256
        out = t.line(b"help " + word + b"\r")
        check(b"\a" not in out and out.startswith(b"help " + word + b"\r") and
              b"no command matches 'yyyy" in out, f"a 405-character line: {out[-200:]!r}")
        out = t.line(b"status\r")
        check(b"nosuch" not in t.buf[after_intr:], "the line dropped by ^C was run")
        t.send(b"ab\x04")
        time.sleep(0.5)
        check(t.p.poll() is None, "^D on a non-empty line ended ternctl")
        t.send(b"\x15\x04")
        rc = t.wait()
        check(rc == 0, f"^D at an empty prompt: exit status {rc} (want 0, "
              f"the last command's)")
    finally:
        t.close()


CHECKS = [("ping", t_ping), ("console_tls", t_console), ("refused", t_refused),
          ("parallel_4x1000", t_parallel), ("hostile_input", t_hostile),
          ("idle_timeout", t_idle), ("client_slots", t_slots),
          ("progress", t_progress), ("serial_while_remote", t_serial_while_remote),
          ("interactive_pty", t_interactive)]


def make_test(nic, fn):
    return lambda: fn(lab(nic))


def t_no_secret():
    stop_labs()
    with netlab.NetLab(hosts=1, esp_dir=CFG.esp, logdir=CFG.logdir,
                       secrets={0: None}) as lb:
        lb.wait_prompts(120)
        h = lb.hosts[0]
        wait_log(h, r"W netcon: no secret in tern\.cfg: not listening on the network")
        got = ns_python(lb, f"""
import socket
try:
    socket.create_connection(("{lb.address(0)}", {PORT}), timeout=10)
    print("connected")
except ConnectionRefusedError:
    print("refused")
""")
        check(got == "refused", f"a host without a secret: {got}")
        out = h.command("netcon", timeout=20)
        check("network console: off (no secret in tern.cfg)" in out, out)


def main(argv=None):
    global CFG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="REGEX")
    ap.add_argument("--nic", action="append", choices=NICS)
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "test-logs"))
    ap.add_argument("--list", action="store_true")
    CFG = ap.parse_args(argv)
    CFG.esp = os.path.abspath(CFG.esp)
    CFG.logdir = os.path.abspath(CFG.logdir)
    tests = []
    for nic in CFG.nic or NICS:
        short = nic.replace("-pci", "").replace("-", "_")
        tests += [(f"{name}_{short}", make_test(nic, fn)) for name, fn in CHECKS]
    tests.append(("no_secret_no_listener", t_no_secret))
    chosen = [(n, fn) for n, fn in tests if not CFG.only or re.search(CFG.only, n)]
    if CFG.list:
        for name, _ in chosen:
            print(name)
        return 0
    for tool, pkg in (("openssl", "openssl"), ("ping", "iputils-ping"),
                      ("ip", "iproute2")):
        ternlab.require_tool(tool, pkg)
    if not os.access(TERNCTL, os.X_OK):
        raise ternlab.LabError(f"{TERNCTL} missing: run make")
    return ternlab.run_suite(chosen, CFG.logdir, stop_labs)


if __name__ == "__main__":
    sys.exit(main())
