#!/usr/bin/env python3
"""Hostile-stream tests of the migration destination: one Tern host in
QEMU on a private LAN (tests/lab/netlab.py) takes streams written by an
independent Python encoder (tests/lab/migstream.py), sent with
`openssl s_client -psk` over TLS 1.2 to its migrate_port.

A valid stream must be ACCEPTED, verified (READY 1024), and after COMMIT
the guest must run here: it folds its whole memory and prints the result,
which must equal what the encoder computed over the pages it sent.
Corrupt page data, a corrupt record, a truncated stream, a page beyond the
VM, records out of order, an oversized record, a CPU that differs, a wrong
key and plain-TCP garbage must each be refused with a clear reason, leave
no VM behind, and leave the host serving.

    python3 tests/lab/mig_hostile_tests.py [--only REGEX] [--list]

Two regression tests: a uart state blob may not write control bytes into
the host log, and a TCP peer that never speaks TLS may not keep later
migrations out.

vcpu_forged_*: one restored vCPU field at a time (XCR0, XSTATE_BV,
XCOMP_BV, MXCSR, CR0, CR4, EFER, RFLAGS, a segment base, GDTR, an MSR) is
refused before COMMIT with its reason; then a valid migration still works.
fpu_restore_fault_stops_vm_only: a restore that faults anyway stops that
VM alone (exception fixup), on a lab CPU with XSAVE (-cpu max).
"""

import argparse
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402
import netlab  # noqa: E402
import migstream as ms  # noqa: E402
from guest_tests import Console  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PORT = 7024             # migrate_port, the default
KERNEL = "guests/hello.elf"
XSAVE_CPU = "max"
PEER = r"10\.77\.0\.254:\d+"
# A peer that never completed the TLS handshake: logged as a failed
# incoming migration (no name yet) or as a refusal.
UNAUTH_LOG = rf"W migrate: refused a connection from {PEER}: [^\n]+"
CFG = None
check = ternlab.check
_lab = None


# ---- the lab: one destination host ----

def lab(cpu=None):
    """cpu: a QEMU -cpu other than the lab's default (a lab on another
    CPU replaces the current one)."""
    global _lab
    if (_lab is not None and all(h.alive() for h in _lab.hosts) and
            getattr(_lab, "cpu_model", None) == cpu):
        return _lab
    stop_lab()
    lb = netlab.NetLab(hosts=1, esp_dir=CFG.esp, logdir=CFG.logdir,
                       **({"cpu": cpu} if cpu else {}))
    lb.cpu_model = cpu
    lb.start()
    try:
        lb.wait_prompts(120)
        h = lb.hosts[0]
        wait_log(h, rf"migrate: accepting migrations on TCP port {PORT}", 60)
        lb.con = Console(h)
        lb.identity = ms.parse_identity(lb.con.run("migrate identity"))
        check(len(lb.identity) >= 4 and lb.identity[0].leaf == 0,
              f"`migrate identity` gave {len(lb.identity)} leaves: {lb.identity}")
    except BaseException:
        lb.stop()
        raise
    _lab = lb
    return lb


def stop_lab():
    global _lab
    if _lab is not None:
        _lab.stop()
        _lab = None


def wait_log(h, pattern, timeout=20, since=0):
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
                f"output since the mark:\n{h.output()[since:][-2500:]}")
        time.sleep(0.2)


# ---- a migration client: openssl s_client with the lab's key ----

class MigClient:
    """openssl s_client to the destination's migrate_port.  send() writes
    from a thread (the destination may stop reading); the destination's
    control lines are collected as they come."""

    def __init__(self, lb, secret=None, close_on_eof=False):
        argv = ["ip", "netns", "exec", lb.ns, "openssl", "s_client", "-quiet",
                "-connect", f"{lb.address(0)}:{PORT}", "-tls1_2",
                "-psk_identity", "tern",
                "-psk", (secret if secret is not None else lb.secret).encode().hex()]
        if close_on_eof:
            argv.append("-no_ign_eof")      # -quiet implies -ign_eof
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.lines = []
        self.stderr = b""
        self._q = queue.Queue()
        self._eof = threading.Event()
        self._writers = []
        self._hello_done = False
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self):
        for raw in iter(self.p.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            self.lines.append(line)
            self._q.put(line)
        self._eof.set()
        self._q.put(None)

    def _read_err(self):
        self.stderr = self.p.stderr.read()

    def send(self, data, then_close=False, hello=True):
        """The first send() starts with the protocol's HELLO line (hello=
        False leaves it out, to test a source that does not say it)."""
        if not self._hello_done:
            self._hello_done = True
            if hello:
                data = b"HELLO 1 data=tls\n" + data

        def write():
            try:
                self.p.stdin.write(data)
                self.p.stdin.flush()
                if then_close:
                    self.p.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass
        t = threading.Thread(target=write, daemon=True)
        t.start()
        self._writers.append(t)

    def received(self):
        err = self.stderr.decode(errors="replace").strip()[-600:]
        return (f"control lines received: {self.lines!r}; s_client "
                f"{'exited ' + str(self.p.returncode) if self.p.poll() is not None else 'running'}"
                + (f"; stderr: {err}" if err else ""))

    def expect(self, pattern, timeout=30, what=""):
        """The next control line; it must match pattern."""
        try:
            line = self._q.get(timeout=timeout)
        except queue.Empty:
            line = False
        if line is None:
            self._q.put(None)       # stays at EOF
            self.p.wait(5)
        check(line and re.search(pattern, line),
              f"{what}: wanted a line matching {pattern!r}, got "
              f"{'nothing within %d s' % timeout if line is False else ('the connection closed' if line is None else repr(line))}; "
              f"{self.received()}")
        return line

    def wait_closed(self, timeout=20, what=""):
        """The destination closes the connection (s_client then exits)."""
        ok = self._eof.wait(timeout)
        if ok:
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                ok = False
        check(ok, f"{what}: the connection was still open after {timeout} s; "
              f"{self.received()}")

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass


def ns_python(lb, code, timeout=60):
    r = subprocess.run(["ip", "netns", "exec", lb.ns, sys.executable, "-c", code],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    return r.stdout.strip()


# ---- host-side checks ----

def vm_rows(lb):
    """{name: state} from `vm list`."""
    rows = {}
    for ln in lb.con.lines("vm list"):
        parts = ln.split()
        if parts and parts[0] != "NAME" and len(parts) >= 2:
            rows[parts[0]] = parts[1]
    return rows


def check_no_vm(lb, name, what):
    """`vm list` is empty (every test destroys what it made)."""
    rows = vm_rows(lb)
    check(not rows, f"{what}: `vm list` should be empty (no {name}), shows {rows}")


def check_serving(lb, what):
    out = lb.con.run("status")
    check(re.search(r"hostname: tern-a", out), f"{what}: `status` on the serial console:\n{out}")
    mig = lb.con.run("migrate status")
    check("receiving" not in mig and "waiting for COMMIT" not in mig,
          f"{what}: the destination is still busy:\n{mig}")
    return mig


def wait_idle(lb, timeout=20):
    """The destination dropped its last connection: `migrate status` no
    longer says receiving / waiting (a new connection during the clean-up
    is refused as a second migration)."""
    deadline = time.monotonic() + timeout
    while True:
        mig = lb.con.run("migrate status")
        if "receiving" not in mig and "waiting for COMMIT" not in mig:
            time.sleep(0.5)     # the main loop closes the old link next
            return mig
        if time.monotonic() > deadline:
            raise ternlab.TestFailure(f"destination still busy after {timeout} s:\n{mig}")
        time.sleep(0.5)


def token():
    return "%08x" % random.getrandbits(32)


def stream_for(lb, name, **kw):
    guest = ms.make_guest(token())
    return guest, ms.quick_stream(guest, name, lb.identity, kernel_path=KERNEL, **kw)


def expect_failed(lb, name, data, want, what, accepted=True, closed=True):
    """Send data; expect ACCEPTED (if the CONFIG was fine) then one FAILED
    line matching want; the log says nothing was kept; no VM is left.
    data should end with the record that fails: after FAILED the
    destination aborts the link (RST), and a client still writing then
    may never read the line (s_client exits on the write error)."""
    h = lb.hosts[0]
    mark = len(h.output())
    c = MigClient(lb)
    try:
        c.send(data)
        if accepted:
            c.expect(r"^ACCEPTED$", 60, what)
        line = c.expect(r"^FAILED ", 60, what)
        check(re.search(want, line), f"{what}: FAILED line {line!r} does not match {want!r}")
        if closed:
            c.wait_closed(20, what)
    finally:
        c.close()
    wait_log(h, rf"E migrate: incoming {re.escape(name)} from {PEER} failed: .*; nothing kept",
             20, mark)
    wait_idle(lb)
    check_no_vm(lb, name, what)
    return line


def run_valid(lb, name, after_commit=b""):
    """The whole hand-off with a valid stream; the guest then runs here
    and prints the fold of the memory it was given.  after_commit: bytes
    the source sends in the same write as COMMIT."""
    h = lb.hosts[0]
    guest, w = stream_for(lb, name)
    mark = len(h.output())
    t0 = time.monotonic()
    c = MigClient(lb)
    try:
        c.send(w.data())
        c.expect(r"^ACCEPTED$", 60, "valid stream")
        c.expect(rf"^READY {guest.npages}$", 60, "valid stream")
        t_ready = time.monotonic() - t0
        c.send(b"COMMIT\n" + after_commit)
        c.expect(r"^RESUMED$", 30, "valid stream after COMMIT")
        c.wait_closed(20, "valid stream after RESUMED")
    finally:
        c.close()
    wait_log(h, rf"I migrate: {re.escape(name)} from {PEER} complete and verified "
             rf"\({guest.npages} page copies\)", 20, mark)
    wait_log(h, rf"I migrate: {re.escape(name)} from {PEER} resumed here", 20, mark)
    rows = vm_rows(lb)
    check(rows.get(name) == "running", f"after RESUMED: `vm list` shows {rows}")
    want = f"[{name}] {guest.expected_line()}"
    deadline = time.monotonic() + 60
    while True:
        log = lb.con.raw("log 60", 30)
        if want in log:
            break
        got = re.findall(rf"\[{re.escape(name)}\] [^\n]*", log)
        check(not got, f"the guest printed {got}, want {want!r}")
        check(time.monotonic() < deadline,
              f"the migrated guest never printed {want!r}; `vm info {name}`:\n"
              f"{lb.con.run('vm info ' + name)}")
        time.sleep(1)
    print(f"  {len(w)} bytes, {len(w.records)} records; READY after {t_ready:.1f} s; "
          f"guest says {guest.expected_line()!r}", flush=True)
    out = lb.con.run(f"vm destroy {name}")
    check(name not in vm_rows(lb), f"vm destroy {name}: {out}")
    wait_idle(lb)
    return guest, w


# ---- the tests ----

def t_valid():
    lb = lab()
    run_valid(lb, "mh-valid")
    check_serving(lb, "after a valid migration")


def t_line_after_commit():
    """A source that says more after COMMIT (here in the same segment,
    while the destination takes the disks over and starts the guest)
    cannot make it drop a guest that is its own from COMMIT on."""
    lb = lab()
    run_valid(lb, "mh-after", after_commit=b"COMMIT\nHELLO 1 data=tls\n")
    check_serving(lb, "after lines that followed COMMIT")


def t_corrupt():
    lb = lab()
    name = "mh-corrupt"
    # A byte in the middle of a DATA page: its page CRC fails.
    guest, w = stream_for(lb, name)
    bad = bytearray(w.data())
    bad[w.page_offsets[511] + 2048] ^= 0x01
    rec = next(r for r in w.records if r.data_start <= w.page_offsets[511] < r.end)
    expect_failed(lb, name, bytes(bad[:rec.end]),
                  r"^FAILED record \d+ \(RAM\) at byte \d+: page 511: data CRC 0x[0-9a-f]+, "
                  r"the record says 0x[0-9a-f]+$", "page data flipped")
    # A byte of a RAM record's entry table (a page index): the record CRC.
    guest, w = stream_for(lb, name)
    bad = bytearray(w.data())
    rec = w.find(ms.REC_RAM, 5)
    bad[rec.meta_start + 8 + 16 * 10] ^= 0x04
    expect_failed(lb, name, bytes(bad[:rec.end]),
                         r"^FAILED record 8 \(RAM\) at byte %d: record checksum mismatch"
                         % rec.start, "RAM metadata flipped")
    # A byte of a record header: the ROUND record's own checksum field.
    guest, w = stream_for(lb, name)
    bad = bytearray(w.data())
    rec = w.find(ms.REC_ROUND)
    bad[rec.start + 13] ^= 0x01
    expect_failed(lb, name, bytes(bad[:rec.end]),
                  r"^FAILED record 2 \(ROUND\) at byte %d: record checksum mismatch"
                  % rec.start, "record header flipped (rcrc)")
    # The VCPU record header's reserved field: refused before the CRC.
    guest, w = stream_for(lb, name)
    bad = bytearray(w.data())
    rec = w.find(ms.REC_VCPU)
    bad[rec.start + 2] ^= 0x80
    expect_failed(lb, name, bytes(bad[:rec.end]),
                  r"^FAILED record 19 \(VCPU\) at byte %d: reserved header bits set$"
                  % rec.start, "record header flipped (reserved)")
    # A byte of the vCPU state itself (rip): the record CRC.
    guest, w = stream_for(lb, name)
    bad = bytearray(w.data())
    rec = w.find(ms.REC_VCPU)
    bad[rec.meta_start + 136 + 1] ^= 0x10
    expect_failed(lb, name, bytes(bad[:rec.end]),
                  r"^FAILED record \d+ \(VCPU\) at byte %d: record checksum mismatch"
                  % rec.start, "VCPU metadata flipped")
    check_serving(lb, "after corrupt streams")
    run_valid(lb, "mh-after-corrupt")


def t_truncated():
    lb = lab()
    h = lb.hosts[0]
    name = "mh-trunc"
    guest, w = stream_for(lb, name)
    rec = w.find(ms.REC_RAM, 7)        # pages 448..511: page 511 is DATA
    cut = rec.data_start + 1000
    check(rec.data_len > 0, "the cut must fall inside page data")
    mark = len(h.output())
    c = MigClient(lb, close_on_eof=True)
    try:
        c.send(w.data()[:cut])
        c.expect(r"^ACCEPTED$", 60, "truncated stream")
        # Only now end s_client's input: it sends close_notify and exits.
        c._writers[-1].join(30)
        c.p.stdin.close()
        c.wait_closed(30, "truncated stream")
        extra = [l for l in c.lines if l != "ACCEPTED"]
        check(not extra, f"truncated stream: unexpected lines {extra}")
    finally:
        c.close()
    wait_log(h, rf"E migrate: incoming {name} from {PEER} failed: [^\n]*; nothing kept",
             30, mark)
    wait_idle(lb)
    check_no_vm(lb, name, "truncated stream")
    mig = check_serving(lb, "after a truncated stream")
    check(re.search(rf"incoming: {name} from {PEER}: failed", mig),
          f"`migrate status` after the truncated stream:\n{mig}")


def t_order():
    lb = lab()
    name = "mh-order"
    n = 1024
    # A page index beyond the VM, CRCs all correct.
    w = ms.StreamWriter()
    w.config(n * ms.PAGE_SIZE, name, KERNEL, "", lb.identity)
    w.round(0, ms.ROUND_FINAL, n)
    w.ram([(i, None) for i in range(64)])
    w.ram([(i, None) for i in range(64, 100)] + [(n + 5, None)])
    expect_failed(lb, name, w.data(),
                  r"^FAILED record 4 \(RAM\) at byte %d: page 1029 beyond the 1024 pages "
                  r"of the VM$" % w.records[-1].start, "page beyond the VM")
    # A round that announces more pages than the VM has.
    w = ms.StreamWriter()
    w.config(n * ms.PAGE_SIZE, name, KERNEL, "", lb.identity)
    w.round(0, ms.ROUND_FINAL, n + 1)
    expect_failed(lb, name, w.data(),
                  r"^FAILED record 2 \(ROUND\) .*round 0 of 1025 pages, but the VM has 1024$",
                  "round larger than the VM")
    # A second CONFIG, after some RAM.
    w = ms.StreamWriter()
    w.config(n * ms.PAGE_SIZE, name, KERNEL, "", lb.identity)
    w.round(0, ms.ROUND_FINAL, n)
    w.ram([(i, None) for i in range(64)])
    w.config(n * ms.PAGE_SIZE, name, KERNEL, "", lb.identity)
    expect_failed(lb, name, w.data(),
                  r"^FAILED record 4 \(CONFIG\) at byte \d+: CONFIG in the RAM section$",
                  "second CONFIG")
    # END before the vCPU: every page sent, no VCPU record.
    guest, w = stream_for(lb, name, stop_before=ms.REC_VCPU)
    w.end()
    expect_failed(lb, name, w.data(),
                  r"^FAILED record \d+ \(END\) at byte \d+: vcpu 0 of 1 never sent$",
                  "END before the vCPU")
    # A DEVICE before the vCPU.
    guest, w = stream_for(lb, name, stop_before=ms.REC_VCPU)
    w.device("uart", 1, ms.uart_blob())
    expect_failed(lb, name, w.data(),
                  r"^FAILED record \d+ \(DEVICE\) at byte \d+: DEVICE before the vCPUs$",
                  "DEVICE before the vCPU")
    # Oversized: a RAM record header that claims more page data than a
    # record may carry (the destination must not wait for 65 pages).
    w = ms.StreamWriter()
    w.config(n * ms.PAGE_SIZE, name, KERNEL, "", lb.identity)
    w.round(0, ms.ROUND_FINAL, n)
    w.record(ms.REC_RAM, ms.u32(1) + ms.u32(0) + ms.u64(0) + bytes(4) + ms.u32(0),
             data_len=65 * ms.PAGE_SIZE)
    expect_failed(lb, name, w.data(),
                  r"^FAILED record 3 \(RAM\) at byte \d+: 266240 bytes of page data "
                  r"\(at most 262144\)$", "oversized RAM record")
    # Oversized metadata.
    w = ms.StreamWriter()
    w.config(n * ms.PAGE_SIZE, name, KERNEL, "", lb.identity)
    w.record(ms.REC_ROUND, bytes(16), meta_len=ms.META_MAX + 1)
    expect_failed(lb, name, w.data(),
                  r"^FAILED record 2 \(ROUND\) at byte \d+: %d bytes of metadata "
                  r"\(at most %d\)$" % (ms.META_MAX + 1, ms.META_MAX),
                  "oversized metadata")
    check_serving(lb, "after out-of-order streams")


def t_preflight_cpuid():
    lb = lab()
    h = lb.hosts[0]
    name = "mh-cpuid"
    ident = list(lb.identity)
    k = next(i for i, c in enumerate(ident) if c.leaf == 1)
    ident[k] = ident[k]._replace(ecx=ident[k].ecx ^ (1 << 28))     # AVX, say
    # The header and CONFIG only: the destination answers there, and a
    # client still writing when the link is aborted may miss the line.
    w = ms.StreamWriter()
    w.config(ms.GUEST_MEM, name, KERNEL, "", ident)
    mark = len(h.output())
    c = MigClient(lb)
    try:
        c.send(w.data())
        line = c.expect(r"^REFUSED ", 60, "CPUID differs")
        c1 = ident[k]
        want = ("REFUSED CPU differs at CPUID leaf 0x1.0: here %08x %08x %08x %08x, "
                "source %08x %08x %08x %08x" % (
                    c1.eax, c1.ebx, c1.ecx ^ (1 << 28), c1.edx, c1.eax, c1.ebx, c1.ecx, c1.edx))
        check(line == want, f"CPUID differs: got {line!r}, want {want!r}")
        c.wait_closed(20, "CPUID differs")
        check(c.lines == [line], f"CPUID differs: lines {c.lines}")
    finally:
        c.close()
    wait_log(h, rf"W migrate: refused {name} from {PEER}: CPU differs at CPUID leaf 0x1\.0",
             20, mark)
    check(not re.search(r"vm mh-cpuid: created", h.output()[mark:]),
          "a VM was created for a refused CPU")
    # A list one leaf short is refused too.
    wait_idle(lb)
    w = ms.StreamWriter()
    w.config(ms.GUEST_MEM, name, KERNEL, "", lb.identity[:-1])
    c = MigClient(lb)
    try:
        c.send(w.data())
        line = c.expect(r"^REFUSED ", 60, "CPUID list short")
        check(re.search(r"CPUID lists differ \(%d leaves here, %d there\)"
                        % (len(lb.identity), len(lb.identity) - 1), line),
              f"CPUID list short: {line!r}")
        c.wait_closed(20, "CPUID list short")
    finally:
        c.close()
    wait_idle(lb)
    check_no_vm(lb, name, "CPUID differs")
    check_serving(lb, "after a refused pre-flight")


def t_wrong_key():
    lb = lab()
    h = lb.hosts[0]
    name = "mh-key"
    guest, w = stream_for(lb, name)
    mark = len(h.output())
    c = MigClient(lb, secret="not-the-lab-secret")
    try:
        c.send(w.data())
        c.wait_closed(30, "wrong key")
        check(not c.lines, f"wrong key: the destination said {c.lines}")
        check(c.p.returncode != 0, f"wrong key: s_client exited {c.p.returncode}; "
              f"{c.received()}")
    finally:
        c.close()
    # The destination saw the link fail and kept nothing.
    wait_log(h, UNAUTH_LOG, 20, mark)
    wait_idle(lb)
    out = h.output()[mark:]
    check(not re.search(rf"accepted {name}|vm {name}: created", out),
          f"wrong key: the destination went further than the handshake:\n{out[-1500:]}")
    check_no_vm(lb, name, "wrong key")
    check_serving(lb, "after a wrong key")
    probe_listener(lb, "after a wrong key")


def t_no_hello():
    """A source that starts the stream without the HELLO line."""
    lb = lab()
    h = lb.hosts[0]
    mark = len(h.output())
    guest = ms.make_guest(token())
    w = ms.quick_stream(guest, "mh-nohello", lb.identity, kernel_path=KERNEL)
    c = MigClient(lb)
    try:
        c.send(w.data(), hello=False)
        # Binary where the HELLO line should be: the link is dropped.
        c.wait_closed(20, "no HELLO")
        check(not any(l.startswith(("ACCEPTED", "READY")) for l in c.lines),
              f"no HELLO: {c.received()}")
    finally:
        c.close()
    wait_log(h, rf"W migrate: refused a connection from {PEER}: malformed control line",
             20, mark)
    wait_idle(lb)
    check("mh-nohello" not in lb.con.raw("vm list", 30), "a VM was created without HELLO")


def t_plain_without_macs():
    """A source from before the record MACs asks for encrypt=off with
    "HELLO 1 data=plain": refused by name over TLS, before any stream is
    taken (issue #17)."""
    lb = lab()
    h = lb.hosts[0]
    mark = len(h.output())
    c = MigClient(lb)
    try:
        c.send(b"HELLO 1 data=plain\n", hello=False)
        c.expect(r"^FAILED the source sends encrypt=off without record MACs \(an older "
                 r"Tern\): upgrade it, or migrate with encrypt=on$", 30, "HELLO 1 data=plain")
        c.wait_closed(20, "HELLO 1 data=plain")
    finally:
        c.close()
    wait_log(h, rf"W migrate: refused a connection from {PEER}: the source sends "
                r"encrypt=off without record MACs", 20, mark)
    wait_idle(lb)


def t_garbage():
    lb = lab()
    h = lb.hosts[0]
    mark = len(h.output())
    got = ns_python(lb, f"""
import random, socket, time
rng = random.Random(7024)
junk = bytes(rng.randrange(256) for _ in range(65536))
s = socket.create_connection(("{lb.address(0)}", {PORT}), timeout=20)
t = time.monotonic()
data = b""
try:
    s.sendall(junk)
    while True:
        c = s.recv(4096)
        if not c:
            break
        data += c
    how = "eof"
except OSError as e:
    how = type(e).__name__
print("closed", how, round(time.monotonic() - t, 1), "reply", len(data), b"ACCEPTED" in data)
""", timeout=60)
    m = re.match(r"closed (\S+) ([\d.]+) reply (\d+) (True|False)$", got)
    check(m and m.group(1) != "timeout" and m.group(4) == "False",
          f"plain TCP garbage: {got}")
    check(float(m.group(2)) < 15, f"plain TCP garbage: closed only after {m.group(2)} s")
    wait_log(h, UNAUTH_LOG, 20, mark)
    wait_idle(lb)
    out = h.output()[mark:]
    check(not re.search(r"I migrate: accepted", out), f"garbage was accepted:\n{out[-1500:]}")
    check(not vm_rows(lb), f"garbage: `vm list` shows {vm_rows(lb)}")
    check_serving(lb, "after plain-TCP garbage")
    probe_listener(lb, "after plain-TCP garbage")


def probe_listener(lb, what):
    """The listener still answers: a CONFIG for a VM too big to fit gets
    a REFUSED line back (cheap: nothing is created)."""
    w = ms.StreamWriter()
    w.config(2 << 30, "mh-probe", KERNEL, "", lb.identity)
    c = MigClient(lb)
    try:
        c.send(w.data())
        c.expect(r"^REFUSED not enough memory", 60, f"{what}: probe")
        c.wait_closed(20, f"{what}: probe")
    finally:
        c.close()
    wait_idle(lb)


# ---- regressions ----

def t_uart_line_injection():
    """A uart blob's partial line goes to the host log when the VM's UART
    is freed: a hostile stream must not write escape sequences or fake log
    lines there.  vuart_load refuses such a blob."""
    lb = lab()
    name = "mh-uart"
    fake = "[    1.000000] E fake: forged by the stream"
    blob = ms.uart_blob(line=b"\x1b[2J\x1b[31mred\r\n" + fake.encode())
    guest = ms.make_guest(token())
    w = ms.quick_stream(guest, name, lb.identity, kernel_path=KERNEL, stop_before=ms.REC_END,
                        devices=[("uart", 1, blob), ("testdev", 1, ms.testdev_blob())])
    w.end(pages=5)                  # wrong total: FAILED, the VM is discarded
    c = MigClient(lb)
    try:
        c.send(w.data())
        c.expect(r"^ACCEPTED$", 60, "uart blob")
        c.expect(r"^FAILED ", 60, "uart blob")
    finally:
        c.close()
    wait_idle(lb)
    log = lb.con.raw("log 12", 30)
    check(not re.search(rf"(?m)^{re.escape(fake)}", log) and "\x1b[2J" not in log,
          f"the stream's UART line reached the host log unfiltered:\n{log!r}")


def t_silent_peer_blocks_listener():
    """A TCP peer that connects to migrate_port and never speaks TLS is
    dropped after 4 s (it never held the incoming slot: that is claimed
    after TLS and HELLO), and the next migration is taken although that
    peer still holds its dead link open."""
    lb = lab()
    h = lb.hosts[0]
    mark = len(h.output())
    silent = subprocess.Popen(
        ["ip", "netns", "exec", lb.ns, sys.executable, "-c",
         f"import socket, time\ns = socket.create_connection(('{lb.address(0)}', {PORT}))\n"
         f"time.sleep(60)"])
    try:
        wait_log(h, rf"migrate: refused a connection from {PEER}: no TLS handshake and "
                 rf"HELLO within 4 s", 30, mark)
        time.sleep(2)
        mark = len(h.output())
        try:
            probe_listener(lb, "while a silent peer holds its dead link")
        except ternlab.TestFailure as e:
            raise ternlab.TestFailure(f"{e}\nhost log since:\n{h.output()[mark:][-800:]}")
    finally:
        silent.kill()
        silent.wait()


# ---- forged vCPU fields (issue #17 item 1) ----
#
# Each case changes one restored field of an otherwise valid vCPU record.
# The destination must refuse it before COMMIT (FAILED "vCPU state: ..."
# naming the field), keep no VM and keep serving.  The lab CPU (qemu64 +
# SVM) has no XSAVE, no AVX and no PKE, so XCR0 = 7 and an AVX XSTATE_BV
# are exactly the "host without AVX" case of the issue.

def _v_xcr0_avx(v):
    v.xcr0 = 7


def _v_xstate_bv(v):
    v.xsave = ms.xsave_image(xstate_bv=0x7)


def _v_xcomp_bv(v):
    v.xsave = ms.xsave_image(xcomp_bv=1 << 63)


def _v_mxcsr(v):
    v.xsave = ms.xsave_image(mxcsr=0x1F80 | 1 << 16)


def _v_cr0(v):
    v.cr0 = 0x11 | 1 << 32


def _v_cr4(v):
    v.cr4 = 1 << 22             # PKE: qemu64 has no protection keys


def _v_efer(v):
    v.efer = 1 << 12            # SVME: never the guest's


def _v_rflags(v):
    v.rflags = 0x2 | 1 << 22


def _v_seg_base(v):
    v.seg[5].base = 0x0000800000000000      # GS


def _v_gdtr(v):
    v.gdtr.base = 0x0000800000000000


def _v_msr(v):
    v.msrs = [(m, 0x0000800000000000 if m == ms.MSR_LSTAR else val)
              for m, val in v.msrs]


VCPU_CASES = [
    ("xcr0_avx", _v_xcr0_avx, r"XCR0 0x7 "),
    ("xstate_bv", _v_xstate_bv, r"XSTATE_BV 0x7 "),
    ("xcomp_bv", _v_xcomp_bv, r"XCOMP_BV 0x8000000000000000"),
    ("mxcsr", _v_mxcsr, r"MXCSR 0x11f80"),
    ("cr0", _v_cr0, r"CR0 0x100000011"),
    ("cr4", _v_cr4, r"CR4 0x400000"),
    ("efer", _v_efer, r"EFER 0x1000"),
    ("rflags", _v_rflags, r"RFLAGS 0x400002"),
    ("seg_base", _v_seg_base, r"GS base 0x800000000000 "),
    ("gdtr_base", _v_gdtr, r"GDTR base 0x800000000000 "),
    ("msr", _v_msr, r"MSR 0xc0000082 = 0x800000000000"),
]


def _vcpu_case(forge, want):
    def t():
        lb = lab()
        name = "mh-xstate"
        v = ms.flat32_vcpu(ms.GUEST_CODE_GPA)
        forge(v)
        _, w = stream_for(lb, name, vcpu=v, stop_before=ms.REC_DEVICE)
        expect_failed(lb, name, w.data(), r"^FAILED .*vCPU state: .*" + want,
                      f"forged vCPU field ({want})")
        check_serving(lb, f"after a forged vCPU field ({want})")
    return t


def t_vcpu_valid_after():
    """After the refusals, a good migration still works here."""
    lb = lab()
    run_valid(lb, "mh-after-xstate")
    check_serving(lb, "after forged vCPU fields")


def t_fpu_restore_fault():
    """A restore that faults anyway (a rule vcpu_check.c might miss) stops
    that VM with the reason; its host CPU survives and runs the next one.
    The guest spins on OUT 0x80, so it is entered again and again;
    `vm fpufault` sets MXCSR bit 31 and an XSAVE header reserved byte in
    its paused FPU image.  The lab CPU has XSAVE here: QEMU's TCG FXRSTOR
    ignores reserved MXCSR bits, its XRSTOR checks the header."""
    lb = lab(XSAVE_CPU)
    h = lb.hosts[0]
    name = "mh-fpufault"
    guest = ms.make_guest(token())
    code = bytearray(ms.PAGE_SIZE)
    code[:4] = bytes.fromhex("e680ebfc")       # 1: out %al,$0x80 ; jmp 1b
    guest.pages[ms.GUEST_CODE_GPA // ms.PAGE_SIZE] = bytes(code)
    w = ms.quick_stream(guest, name, lb.identity, kernel_path=KERNEL)
    mark = len(h.output())
    c = MigClient(lb)
    try:
        c.send(w.data())
        c.expect(r"^ACCEPTED$", 60, "spinning guest")
        c.expect(rf"^READY {guest.npages}$", 60, "spinning guest")
        c.send(b"COMMIT\n")
        c.expect(r"^RESUMED$", 30, "spinning guest after COMMIT")
        c.wait_closed(20, "spinning guest after RESUMED")
    finally:
        c.close()
    wait_idle(lb)
    check(vm_rows(lb).get(name) == "running", f"before the fault: {vm_rows(lb)}")
    out = lb.con.run(f"vm pause {name}")
    check(re.search(rf"vm {name} paused", out), f"vm pause: {out}")
    out = lb.con.run(f"vm fpufault {name}")
    check(re.search(rf"vm {name} vCPU 0: MXCSR 0x8000[0-9a-f]{{4}}, XSAVE header byte 16 "
                    r"0x1 in its FPU image", out),
          f"vm fpufault: {out}")
    lb.con.run(f"vm resume {name}")
    wait_log(h, rf"vm {name}: .*vCPU 0: XRSTOR of its FPU image faulted on this host "
                r"\(XCR0 0x[0-9a-f]+\); the guest was not entered", 30, mark)
    rows = vm_rows(lb)
    check(rows.get(name) == "failed", f"after the fault: `vm list` shows {rows}")
    log = h.output()[mark:]
    check("EXCEPTION" not in log and "stopped\n" not in log.replace("CPU", ""),
          f"a host CPU reported an exception:\n{log[-2500:]}")
    check_serving(lb, "after a faulting FPU restore")
    out = lb.con.run(f"vm destroy {name}")
    check(name not in vm_rows(lb), f"vm destroy {name}: {out}")
    run_valid(lb, "mh-after-fpufault")
    stop_lab()


TESTS = [("valid_stream_accepted", t_valid),
         ("lines_after_commit_ignored", t_line_after_commit),
         ("corrupt_byte_refused", t_corrupt),
         ("truncated_stream_refused", t_truncated),
         ("oversized_and_out_of_order", t_order),
         ("preflight_refused_cpuid", t_preflight_cpuid),
         ("wrong_key", t_wrong_key),
         ("garbage_plain_tcp", t_garbage),
         ("plain_without_macs_refused", t_plain_without_macs),
         ("no_hello_refused", t_no_hello),
         ("uart_line_injection_refused", t_uart_line_injection),
         ("silent_peer_does_not_block", t_silent_peer_blocks_listener)]
TESTS += [("vcpu_forged_" + n, _vcpu_case(f, w)) for n, f, w in VCPU_CASES]
TESTS += [("vcpu_forged_then_valid", t_vcpu_valid_after),
          ("fpu_restore_fault_stops_vm_only", t_fpu_restore_fault)]


def main(argv=None):
    global CFG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="REGEX")
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "test-logs"))
    ap.add_argument("--list", action="store_true")
    CFG = ap.parse_args(argv)
    CFG.esp = os.path.abspath(CFG.esp)
    CFG.logdir = os.path.abspath(CFG.logdir)
    chosen = [(n, fn) for n, fn in TESTS if not CFG.only or re.search(CFG.only, n)]
    if CFG.list:
        for name, _ in chosen:
            print(name)
        return 0
    try:
        for tool, pkg in (("openssl", "openssl"), ("ip", "iproute2"),
                          ("qemu-system-x86_64", "qemu-system-x86")):
            ternlab.require_tool(tool, pkg)
        if not os.path.isfile(os.path.join(CFG.esp, "tern", KERNEL)):
            raise ternlab.LabError(f"{CFG.esp}/tern/{KERNEL} missing: run make")
    except ternlab.LabError as e:
        print(f"FAIL setup: {e}", flush=True)
        print("0 passed, 1 failed")
        return 1
    return ternlab.run_suite(chosen, CFG.logdir, stop_lab)


if __name__ == "__main__":
    sys.exit(main())
